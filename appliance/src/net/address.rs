//! The director's own addresses, as the kernel has them: a dump of every
//! address on every interface, then the changes from rtnetlink's address
//! multicast groups (what `ip monitor address` shows). keepalived's
//! `ha_suspend` follows them.

use super::IfIndex;
use futures::StreamExt;
use futures::channel::mpsc::UnboundedReceiver;
use rtnetlink::MulticastGroup;
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};
use std::collections::BTreeSet;
use std::net::IpAddr;

/// The addresses on the director's interfaces, by interface: the same
/// address on two interfaces is there until both lose it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LocalAddresses(BTreeSet<(u32, IpAddr)>);

impl LocalAddresses {
    /// Whether some interface has `addr`.
    pub fn contains(&self, addr: IpAddr) -> bool {
        self.0.iter().any(|(_, a)| *a == addr)
    }

    fn apply(&mut self, index: IfIndex, addr: IpAddr, added: bool) {
        if added {
            self.0.insert((index.0, addr));
        } else {
            self.0.remove(&(index.0, addr));
        }
    }
}

/// The addresses of the current network namespace, kept up to date.
pub struct AddressWatch {
    messages: UnboundedReceiver<(
        NetlinkMessage<RouteNetlinkMessage>,
        rtnetlink::sys::SocketAddr,
    )>,
    addresses: LocalAddresses,
}

impl AddressWatch {
    /// Subscribes to address changes, then reads every address (after
    /// subscribing, so no change between the two is missed); the netlink
    /// I/O runs as a task on the current tokio runtime.
    pub async fn start() -> std::io::Result<Self> {
        let (connection, handle, messages) = rtnetlink::new_multicast_connection(&[
            MulticastGroup::Ipv4Ifaddr,
            MulticastGroup::Ipv6Ifaddr,
        ])?;
        tokio::spawn(connection);
        let mut addresses = LocalAddresses::default();
        let mut dump = handle.address().get().execute();
        while let Some(msg) = dump.next().await {
            let msg = msg.map_err(std::io::Error::other)?;
            if let Some((index, addr)) = address_of(&msg) {
                addresses.apply(index, addr, true);
            }
        }
        Ok(Self {
            messages,
            addresses,
        })
    }

    /// The addresses now.
    pub fn addresses(&self) -> &LocalAddresses {
        &self.addresses
    }

    /// Waits for the next change and applies it; `None` when the netlink
    /// connection is gone.
    pub async fn changed(&mut self) -> Option<&LocalAddresses> {
        loop {
            let (msg, _) = self.messages.next().await?;
            let NetlinkPayload::InnerMessage(inner) = msg.payload else {
                continue;
            };
            let (msg, added) = match inner {
                RouteNetlinkMessage::NewAddress(m) => (m, true),
                RouteNetlinkMessage::DelAddress(m) => (m, false),
                _ => continue,
            };
            if let Some((index, addr)) = address_of(&msg) {
                self.addresses.apply(index, addr, added);
                return Some(&self.addresses);
            }
        }
    }
}

/// The interface and local address a message is about: IPv4's
/// `IFA_LOCAL` (`IFA_ADDRESS` is the peer's on a point-to-point link),
/// else `IFA_ADDRESS`.
fn address_of(msg: &AddressMessage) -> Option<(IfIndex, IpAddr)> {
    let local = msg.attributes.iter().find_map(|a| match a {
        AddressAttribute::Local(ip) => Some(*ip),
        _ => None,
    });
    let address = msg.attributes.iter().find_map(|a| match a {
        AddressAttribute::Address(ip) => Some(*ip),
        _ => None,
    });
    Some((IfIndex(msg.header.index), local.or(address)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_on_two_interfaces_stays_until_both_lose_it() {
        let mut a = LocalAddresses::default();
        let vip: IpAddr = "10.0.0.100".parse().unwrap();
        a.apply(IfIndex(2), vip, true);
        a.apply(IfIndex(3), vip, true);
        a.apply(IfIndex(2), vip, false);
        assert!(a.contains(vip));
        a.apply(IfIndex(3), vip, false);
        assert!(!a.contains(vip));
    }
}
