//! The dataplane: what the kernel's load balancer should hold (virtual
//! services and their real servers), independent of the backend that
//! programs it.
//!
//! - this module: the model ([`Table`] of [`VirtualService`]s keyed by
//!   [`ServiceKey`]) and the [`Backend`] trait a kernel interface implements;
//! - [`build`]: the model from the config's `virtual_server` blocks;
//! - [`diff`]: the pure desired-vs-actual diff into [`diff::Op`]s;
//! - [`reconcile`]: ownership (which kernel services are ours) and the
//!   read-diff-apply loop over a [`Backend`];
//! - [`ipvs`]: the IPVS backend over generic netlink;
//! - [`nftables`]: the nftables backend (NAT only) for kernels without
//!   IPVS; [`open_backend`] picks one.
//!
//! `docs/dataplane.md` describes the model and the ownership rule.

pub mod build;
pub mod capability;
pub mod diff;
pub mod ipvs;
pub mod netlink;
pub mod nftables;
pub mod reconcile;

pub use crate::config::model::{Dataplane as Choice, LbAlgo as Scheduler, Weight};
pub use build::{BuildError, from_config};
pub use diff::Op;
pub use reconcile::{Reconciler, Report};

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

impl From<crate::config::model::Protocol> for Protocol {
    fn from(p: crate::config::model::Protocol) -> Self {
        use crate::config::model::Protocol as P;
        match p {
            P::Tcp => Self::Tcp,
            P::Udp => Self::Udp,
            P::Sctp => Self::Sctp,
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

impl From<crate::config::model::LbKind> for Forwarding {
    fn from(k: crate::config::model::LbKind) -> Self {
        use crate::config::model::LbKind as K;
        match k {
            K::Nat => Self::Nat,
            K::Dr => Self::DirectRoute,
            K::Tun => Self::Tunnel,
        }
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

/// A dataplane failure: a backend's error, or the ownership record.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("IPVS: {0}")]
    Ipvs(#[from] ipvs::Error),
    /// Not a `#[source]`: the message already carries it.
    #[error("nftables: {0}")]
    Nftables(nftables::Error),
    #[error("{key}: the {backend} dataplane cannot do it: {reason}")]
    Unsupported {
        key: ServiceKey,
        backend: &'static str,
        reason: String,
    },
    #[error("dataplane state file {path}: {source}")]
    State {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("dataplane state file {path}: {source}")]
    StateFormat {
        path: std::path::PathBuf,
        source: serde_json::Error,
    },
    #[error("kernel service {key} is configured but cannot be read: {reason}")]
    Unreadable { key: ServiceKey, reason: String },
    #[error("{op}: {source}")]
    Apply { op: Op, source: Box<Error> },
    #[error("programming panicked (the log says where); the backend is opened anew next time")]
    Panicked,
}

impl From<nftables::Error> for Error {
    fn from(e: nftables::Error) -> Self {
        Self::Nftables(e)
    }
}

/// A kernel load balancer the reconcile can program.
///
/// Calls block on the kernel's answers (each read gives up after
/// [`netlink::ANSWER_TIMEOUT`]); the daemon makes them on its dataplane
/// thread, never on a loop that anything else waits for.
pub trait Backend {
    /// Short name for logs: "ipvs", "nftables".
    fn name(&self) -> &'static str;
    /// What this backend can hold ([`capability`]).
    fn capability(&self) -> Choice;
    /// Why this backend cannot hold `service` exactly, if it cannot; the
    /// reconcile refuses a table with such a service before touching the
    /// kernel.
    fn refuse(&self, service: &VirtualService) -> Option<String> {
        let reasons: Vec<String> = capability::refusals(self.capability(), service)
            .into_iter()
            .map(|r| r.reason)
            .collect();
        (!reasons.is_empty()).then(|| reasons.join("; "))
    }
    /// The kernel's current table.
    fn read(&mut self) -> Result<Snapshot, Error>;
    /// Carry out one operation.
    fn apply(&mut self, op: &Op) -> Result<(), Error>;
}

impl<B: Backend + ?Sized> Backend for Box<B> {
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn capability(&self) -> Choice {
        (**self).capability()
    }
    fn read(&mut self) -> Result<Snapshot, Error> {
        (**self).read()
    }
    fn apply(&mut self, op: &Op) -> Result<(), Error> {
        (**self).apply(op)
    }
}

/// The backend `choice` names, or without one IPVS when the kernel has it
/// (its generic netlink family resolves) and nftables otherwise; logs
/// which. Opens it in the calling thread's network namespace.
pub fn open_backend(choice: Option<Choice>) -> Result<Box<dyn Backend>, Error> {
    let backend: Box<dyn Backend> = match choice {
        Some(Choice::Ipvs) => Box::new(ipvs::Ipvs::open()?),
        Some(Choice::Nftables) => Box::new(nftables::Nftables::open()?),
        None => match ipvs::Ipvs::open() {
            Ok(ipvs) => Box::new(ipvs),
            Err(ipvs::Error::NotAvailable) => {
                tracing::info!("the kernel has no IPVS: using nftables");
                Box::new(nftables::Nftables::open()?)
            }
            Err(e) => return Err(e.into()),
        },
    };
    tracing::info!(
        backend = backend.name(),
        chosen = choice.is_some(),
        "dataplane"
    );
    Ok(backend)
}
