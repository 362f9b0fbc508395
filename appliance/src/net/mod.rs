//! The network I/O the daemon needs, and nothing else: virtual addresses
//! over rtnetlink (`vip`), the director's own addresses (`address`), gratuitous ARP and unsolicited neighbour
//! advertisements (`gratuitous`), raw VRRP sockets (`socket`), link state
//! (`link`), virtual MAC interfaces (`vmac`), and the host's own settings
//! from `[network]` (`setup`), kernel parameters among them (`sysctl`). No
//! protocol decisions live here.

pub mod address;
pub mod gratuitous;
pub mod link;
pub(crate) mod promote;
pub(crate) mod setup;
pub mod socket;
pub(crate) mod sysctl;
pub mod vip;
pub mod vmac;

/// An interface by kernel index, as rtnetlink and socket options name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IfIndex(pub u32);

impl std::fmt::Display for IfIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}
