//! Virtual IP addresses on an interface, added and removed over rtnetlink.
//!
//! Adding an address that is already there and removing one that is gone
//! both succeed, so the driver can repeat an action after a restart or a
//! reload without tracking what the kernel already has. IPv6 VIPs skip
//! duplicate address detection (as keepalived's do): a VIP taken over from a
//! failed master must answer at once, not after DAD.

use super::IfIndex;
use super::link::{Link, link_from};
use crate::config::model::Scope;
use futures::TryStreamExt;
use rtnetlink::packet_route::address::{
    AddressAttribute, AddressFlags, AddressMessage, AddressScope,
};
use std::net::IpAddr;

/// A VIP as configured: address, prefix length, optional IPv4 label
/// (`eth0:vip`, as `ip addr` and `ifconfig` show it) and scope (the
/// kernel's, global, when not given).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Vip {
    pub addr: IpAddr,
    pub prefix_len: u8,
    pub label: Option<String>,
    pub scope: Option<Scope>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("opening an rtnetlink socket: {0}")]
    Connect(#[source] std::io::Error),
    #[error("no interface named {0}")]
    NoSuchInterface(String),
    #[error("interface {ifname}: {source}")]
    Link {
        ifname: String,
        #[source]
        source: rtnetlink::Error,
    },
    #[error("adding {addr}/{prefix_len} to interface {ifindex}: {source}")]
    Add {
        addr: IpAddr,
        prefix_len: u8,
        ifindex: IfIndex,
        #[source]
        source: rtnetlink::Error,
    },
    #[error("removing {addr} from interface {ifindex}: {source}")]
    Remove {
        addr: IpAddr,
        ifindex: IfIndex,
        #[source]
        source: rtnetlink::Error,
    },
    #[error("listing addresses of interface {ifindex}: {source}")]
    List {
        ifindex: IfIndex,
        #[source]
        source: rtnetlink::Error,
    },
}

/// A handle on the kernel's address tables. Cheap to clone.
#[derive(Clone)]
pub struct Addresses {
    handle: rtnetlink::Handle,
}

impl Addresses {
    /// Opens an rtnetlink connection in the current network namespace; its
    /// I/O runs as a task on the current tokio runtime.
    pub fn connect() -> Result<Self, Error> {
        let (connection, handle, _) = rtnetlink::new_connection().map_err(Error::Connect)?;
        tokio::spawn(connection);
        Ok(Self { handle })
    }

    /// The interface called `name`.
    pub async fn link(&self, name: &str) -> Result<Link, Error> {
        let mut links = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute();
        match links.try_next().await {
            Ok(Some(msg)) => Ok(link_from(&msg)),
            Ok(None) => Err(Error::NoSuchInterface(name.to_string())),
            // The kernel answers ENODEV for a name it doesn't know.
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => {
                Err(Error::NoSuchInterface(name.to_string()))
            }
            Err(source) => Err(Error::Link {
                ifname: name.to_string(),
                source,
            }),
        }
    }

    /// Adds `vip` to the interface; succeeds if it is already there.
    pub async fn add(&self, ifindex: IfIndex, vip: &Vip) -> Result<(), Error> {
        let mut request = self
            .handle
            .address()
            .add(ifindex.0, vip.addr, vip.prefix_len);
        let message = request.message_mut();
        if let Some(scope) = vip.scope {
            message.header.scope = match scope {
                Scope::Global => AddressScope::Universe,
                Scope::Site => AddressScope::Site,
                Scope::Link => AddressScope::Link,
                Scope::Host => AddressScope::Host,
                Scope::Nowhere => AddressScope::Nowhere,
            };
        }
        if let Some(label) = &vip.label {
            message
                .attributes
                .push(AddressAttribute::Label(label.clone()));
        }
        if vip.addr.is_ipv6() {
            message
                .attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        match request.execute().await {
            Ok(()) => Ok(()),
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::EEXIST => Ok(()),
            Err(source) => Err(Error::Add {
                addr: vip.addr,
                prefix_len: vip.prefix_len,
                ifindex,
                source,
            }),
        }
    }

    /// Removes `vip` from the interface; succeeds if it is not there.
    pub async fn remove(&self, ifindex: IfIndex, vip: &Vip) -> Result<(), Error> {
        let found = self.find(ifindex, vip.addr).await?;
        let Some(message) = found else { return Ok(()) };
        match self.handle.address().del(message).execute().await {
            Ok(()) => Ok(()),
            Err(rtnetlink::Error::NetlinkError(e))
                if e.raw_code() == -libc::EADDRNOTAVAIL || e.raw_code() == -libc::ENOENT =>
            {
                Ok(())
            }
            Err(source) => Err(Error::Remove {
                addr: vip.addr,
                ifindex,
                source,
            }),
        }
    }

    /// The addresses on the interface.
    pub async fn list(&self, ifindex: IfIndex) -> Result<Vec<(IpAddr, u8)>, Error> {
        let mut out = Vec::new();
        let mut stream = self
            .handle
            .address()
            .get()
            .set_link_index_filter(ifindex.0)
            .execute();
        while let Some(msg) = stream
            .try_next()
            .await
            .map_err(|source| Error::List { ifindex, source })?
        {
            if let Some(addr) = address_of(&msg) {
                out.push((addr, msg.header.prefix_len));
            }
        }
        Ok(out)
    }

    async fn find(&self, ifindex: IfIndex, addr: IpAddr) -> Result<Option<AddressMessage>, Error> {
        let mut stream = self
            .handle
            .address()
            .get()
            .set_link_index_filter(ifindex.0)
            .execute();
        while let Some(msg) = stream
            .try_next()
            .await
            .map_err(|source| Error::List { ifindex, source })?
        {
            if address_of(&msg) == Some(addr) {
                return Ok(Some(msg));
            }
        }
        Ok(None)
    }
}

/// The local address of an address message (IFA_LOCAL for IPv4, where
/// IFA_ADDRESS may be a peer; IFA_ADDRESS for IPv6).
fn address_of(msg: &AddressMessage) -> Option<IpAddr> {
    let local = msg.attributes.iter().find_map(|a| match a {
        AddressAttribute::Local(ip) => Some(*ip),
        _ => None,
    });
    local.or_else(|| {
        msg.attributes.iter().find_map(|a| match a {
            AddressAttribute::Address(ip) => Some(*ip),
            _ => None,
        })
    })
}
