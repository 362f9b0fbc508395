//! The dataplane's model: what the kernel's load balancer should hold
//! (virtual services and their real servers), whatever backend programs it.
//!
//! - this module: the model ([`Table`] of [`VirtualService`]s keyed by
//!   [`ServiceKey`]) and its value types;
//! - [`diff`]: the pure desired-vs-actual diff into [`diff::Op`]s;
//! - [`capability`]: what each backend can hold, stated once;
//! - [`pick`]: how the nftables dataplane spreads connections as an IPVS
//!   scheduler would.
//!
//! The backends themselves (netlink, the ownership record, the read-diff-
//! apply loop) are the daemon's: `appliance::dataplane`.

pub mod capability;
pub mod diff;
pub mod maglev;
pub mod pick;

pub use diff::Op;

use crate::range::RangeError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// Address family of a service or destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Family {
    #[serde(rename = "IPv4")]
    Ipv4,
    #[serde(rename = "IPv6")]
    Ipv6,
}

impl Family {
    pub fn of(addr: IpAddr) -> Self {
        match addr {
            IpAddr::V4(_) => Self::Ipv4,
            IpAddr::V6(_) => Self::Ipv6,
        }
    }

    /// Longest prefix of an address of this family: 32 or 128.
    pub fn max_prefix(self) -> u8 {
        match self {
            Self::Ipv4 => 32,
            Self::Ipv6 => 128,
        }
    }
}

/// Transport protocol of an address-and-port service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Protocol {
    #[serde(rename = "TCP")]
    Tcp,
    #[serde(rename = "UDP")]
    Udp,
    #[serde(rename = "SCTP")]
    Sctp,
}

impl Protocol {
    /// The IP protocol number.
    pub fn number(self) -> u16 {
        match self {
            Self::Tcp => 6,
            Self::Udp => 17,
            Self::Sctp => 132,
        }
    }

    pub fn from_number(n: u16) -> Option<Self> {
        match n {
            6 => Some(Self::Tcp),
            17 => Some(Self::Udp),
            132 => Some(Self::Sctp),
            _ => None,
        }
    }

    /// The name ipvsadm prints: TCP, UDP, SCTP.
    pub fn name(self) -> &'static str {
        match self {
            Self::Tcp => "TCP",
            Self::Udp => "UDP",
            Self::Sctp => "SCTP",
        }
    }
}

/// What identifies a virtual service in the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceKey {
    /// Protocol, virtual address and port.
    Socket {
        protocol: Protocol,
        address: SocketAddr,
    },
    /// Packets carrying this firewall mark, of one address family.
    Fwmark { family: Family, mark: u32 },
}

impl ServiceKey {
    pub fn family(&self) -> Family {
        match self {
            Self::Socket { address, .. } => Family::of(address.ip()),
            Self::Fwmark { family, .. } => *family,
        }
    }
}

/// `TCP 10.0.0.1:80`, `UDP [2001:db8::1]:53`, `FWM 5`, `FWM 5 IPv6`.
impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Socket { protocol, address } => write!(f, "{} {address}", protocol.name()),
            Self::Fwmark {
                family: Family::Ipv4,
                mark,
            } => write!(f, "FWM {mark}"),
            Self::Fwmark {
                family: Family::Ipv6,
                mark,
            } => write!(f, "FWM {mark} IPv6"),
        }
    }
}

/// Scheduler flags: their meaning depends on the scheduler (`sh` and `mh`
/// give them one; the kernel stores them for any scheduler).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SchedFlags {
    /// `sh-fallback` / `mh-fallback` (IP_VS_SVC_F_SCHED1): pick another
    /// server when the hashed one is unavailable.
    pub fallback: bool,
    /// `sh-port` / `mh-port` (IP_VS_SVC_F_SCHED2): hash the source port
    /// too.
    pub port: bool,
}

impl SchedFlags {
    pub fn any(self) -> bool {
        self.fallback || self.port
    }

    /// Neither flag (serde's `skip_serializing_if`).
    pub fn is_none(&self) -> bool {
        !self.any()
    }
}

/// Client persistence: connections from one client (or one client network)
/// go to the same real server for `timeout` seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Persistence {
    /// Seconds an idle persistence entry lives (non-zero).
    pub timeout: u32,
    /// Client network granularity as a prefix length: 32 (IPv4) or 128
    /// (IPv6) means per client address.
    pub prefix: u8,
}

/// A virtual service and its real servers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VirtualService {
    pub key: ServiceKey,
    pub scheduler: Scheduler,
    #[serde(default)]
    pub sched_flags: SchedFlags,
    /// `None`: every connection is scheduled on its own.
    #[serde(default)]
    pub persistence: Option<Persistence>,
    /// One-packet scheduling (`ops`): each UDP datagram is scheduled alone.
    #[serde(default)]
    pub one_packet: bool,
    /// Source NAT to the director's address towards the real servers (an
    /// nftables dataplane extension; IPVS refuses it).
    #[serde(default)]
    pub masquerade: bool,
    /// Real servers by address and port.
    #[serde(default)]
    pub destinations: BTreeMap<SocketAddr, Destination>,
}

impl VirtualService {
    /// The service's own settings equal (destinations not compared).
    pub fn same_settings(&self, other: &VirtualService) -> bool {
        self.key == other.key
            && self.scheduler == other.scheduler
            && self.sched_flags == other.sched_flags
            && self.persistence == other.persistence
            && self.one_packet == other.one_packet
            && self.masquerade == other.masquerade
    }

    /// The service without its destinations.
    pub fn settings(&self) -> VirtualService {
        VirtualService {
            destinations: BTreeMap::new(),
            ..self.clone()
        }
    }
}

/// How the director forwards packets to a real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Forwarding {
    /// NAT (masquerading).
    #[serde(rename = "NAT")]
    Nat,
    /// Direct routing.
    #[serde(rename = "DR")]
    DirectRoute,
    /// IP-in-IP tunnelling.
    #[serde(rename = "TUN")]
    Tunnel,
    /// The real server is the director itself: the kernel sets this on its
    /// own when a destination's address is local, whatever was asked.
    #[serde(rename = "LOCAL")]
    Local,
}

impl Forwarding {
    /// Whether a destination the kernel reports with `self` matches one
    /// configured with `desired`. A local destination matches any method,
    /// since the kernel replaced the requested one.
    pub fn satisfies(self, desired: Forwarding) -> bool {
        self == desired || self == Self::Local
    }
}

/// A real server of a virtual service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Destination {
    pub address: SocketAddr,
    pub weight: Weight,
    pub forwarding: Forwarding,
    /// Stop sending new connections above this many (0: no limit).
    #[serde(default)]
    pub upper_threshold: u32,
    /// Resume below this many after the upper threshold was hit (0: no
    /// limit).
    #[serde(default)]
    pub lower_threshold: u32,
}

impl Destination {
    /// Whether the kernel's `self` already is the configured `desired`.
    pub fn satisfies(&self, desired: &Destination) -> bool {
        self.address == desired.address
            && self.weight == desired.weight
            && self.forwarding.satisfies(desired.forwarding)
            && self.upper_threshold == desired.upper_threshold
            && self.lower_threshold == desired.lower_threshold
    }
}

/// A whole table of virtual services.
pub type Table = BTreeMap<ServiceKey, VirtualService>;

/// What a backend read from the kernel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// The services the model can express.
    pub table: Table,
    /// Services present in the kernel that the model cannot express (an
    /// unknown scheduler, a weight above 65535), with the reason. Nobody
    /// but their creator touches them.
    pub unreadable: BTreeMap<ServiceKey, String>,
}

/// Which kernel load balancer programs the virtual servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Choice {
    /// IPVS over generic netlink: every scheduler and forwarding method.
    Ipvs,
    /// nf_tables NAT rules: NAT only; rr, wrr, sh, dh and random.
    Nftables,
}

/// Scheduler (`lb_algo` / `lvs_sched`): the kernel's IPVS schedulers, and
/// `random`, an appliance extension of the nftables dataplane (TOML only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheduler {
    Rr,
    Wrr,
    Lc,
    Wlc,
    Lblc,
    Lblcr,
    Dh,
    Sh,
    Sed,
    Nq,
    Mh,
    Fo,
    Ovf,
    Twos,
    /// Weighted random (nftables dataplane only): each new connection goes
    /// to a server drawn with probability proportional to its weight.
    Random,
}

impl Scheduler {
    /// The kernel's IPVS schedulers: the names keepalived.conf accepts.
    pub const ALL: [Scheduler; 14] = [
        Self::Rr,
        Self::Wrr,
        Self::Lc,
        Self::Wlc,
        Self::Lblc,
        Self::Lblcr,
        Self::Dh,
        Self::Sh,
        Self::Sed,
        Self::Nq,
        Self::Mh,
        Self::Fo,
        Self::Ovf,
        Self::Twos,
    ];

    /// keepalived's scheduler when `lb_algo` is not written.
    pub const KEEPALIVED_DEFAULT: Scheduler = Self::Wlc;

    /// The kernel's scheduler name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Rr => "rr",
            Self::Wrr => "wrr",
            Self::Lc => "lc",
            Self::Wlc => "wlc",
            Self::Lblc => "lblc",
            Self::Lblcr => "lblcr",
            Self::Dh => "dh",
            Self::Sh => "sh",
            Self::Sed => "sed",
            Self::Nq => "nq",
            Self::Mh => "mh",
            Self::Fo => "fo",
            Self::Ovf => "ovf",
            Self::Twos => "twos",
            Self::Random => "random",
        }
    }

    /// One of [`Scheduler::ALL`] by its kernel name (`random` is not one).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == s)
    }
}

/// IPVS weight of a real server: 0..=65535, keepalived's default 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct Weight(u32);

impl Weight {
    pub const MAX: u32 = 65535;
    /// No new connections.
    pub const ZERO: Weight = Weight(0);

    pub fn new(value: u32) -> Result<Self, RangeError> {
        if value <= Self::MAX {
            Ok(Self(value))
        } else {
            Err(RangeError {
                what: "weight",
                value,
                min: 0,
                max: Self::MAX,
            })
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

/// keepalived's real server weight default: 1.
impl Default for Weight {
    fn default() -> Self {
        Self(1)
    }
}

impl TryFrom<u32> for Weight {
    type Error = RangeError;
    fn try_from(value: u32) -> Result<Self, RangeError> {
        Self::new(value)
    }
}

impl From<Weight> for u32 {
    fn from(w: Weight) -> u32 {
        w.0
    }
}

impl fmt::Display for Weight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
