//! Link state: an interface as the kernel reports it ([`Link`]), whether
//! it can carry traffic now, and a stream of
//! changes from rtnetlink's link multicast group (what `ip monitor link`
//! shows), so tracked interfaces and our own interface drive FAULT.

use super::IfIndex;
use futures::StreamExt;
use futures::channel::mpsc::UnboundedReceiver;
use rtnetlink::MulticastGroup;
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};

/// A change in an interface's ability to carry traffic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkEvent {
    pub index: IfIndex,
    pub name: String,
    /// Administratively up and with carrier (IFF_UP and IFF_LOWER_UP);
    /// false also when the interface was deleted.
    pub up: bool,
}

/// An interface as the kernel reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub index: IfIndex,
    pub name: String,
    /// The hardware address (6 bytes on Ethernet), if the link has one.
    pub mac: Option<Vec<u8>>,
    /// Up with carrier, as [`is_up`] says.
    pub up: bool,
}

/// Whether a link message says the interface carries traffic.
pub fn is_up(msg: &LinkMessage) -> bool {
    msg.header.flags.contains(LinkFlags::Up) && msg.header.flags.contains(LinkFlags::LowerUp)
}

/// Link changes in the current network namespace.
pub struct LinkWatch {
    messages: UnboundedReceiver<(
        NetlinkMessage<RouteNetlinkMessage>,
        rtnetlink::sys::SocketAddr,
    )>,
}

impl LinkWatch {
    /// Subscribes to link changes; the netlink I/O runs as a task on the
    /// current tokio runtime.
    pub fn subscribe() -> std::io::Result<Self> {
        let (connection, _handle, messages) =
            rtnetlink::new_multicast_connection(&[MulticastGroup::Link])?;
        tokio::spawn(connection);
        Ok(Self { messages })
    }

    /// The next change; `None` when the netlink connection is gone.
    pub async fn next(&mut self) -> Option<LinkEvent> {
        loop {
            let (msg, _) = self.messages.next().await?;
            let NetlinkPayload::InnerMessage(inner) = msg.payload else {
                continue;
            };
            let (msg, deleted) = match inner {
                RouteNetlinkMessage::NewLink(m) => (m, false),
                RouteNetlinkMessage::DelLink(m) => (m, true),
                _ => continue,
            };
            let link = link_from(&msg);
            return Some(LinkEvent {
                index: link.index,
                name: link.name,
                up: !deleted && is_up(&msg),
            });
        }
    }
}

/// The interface a link message describes.
pub(crate) fn link_from(msg: &LinkMessage) -> Link {
    let mut name = String::new();
    let mut mac = None;
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::IfName(n) => name = n.clone(),
            LinkAttribute::Address(a) => mac = Some(a.clone()),
            _ => {}
        }
    }
    Link {
        index: IfIndex(msg.header.index),
        name,
        mac,
        up: is_up(msg),
    }
}
