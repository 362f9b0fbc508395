//! The vocabulary of an nf_tables batch: the requests the ruleset and the
//! traffic counters plan ([`Request`]), the chains and sets they create,
//! and how nft lays out an `address . port` key. Pure data; [`super::message`]
//! turns it into messages.

use super::nla::{Expr, Hook};
use std::net::{IpAddr, SocketAddr};

/// The appliance's table.
pub const TABLE: &str = "appliance";
/// `NFPROTO_INET`: one table for IPv4 and IPv6.
pub const FAMILY_INET: u8 = 1;

/// An address's bytes, in network order.
pub fn addr_bytes(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}

/// `addr . port` as nft lays out the concatenation: the address, then the
/// port in network order padded to 4 bytes.
pub fn target_bytes(target: SocketAddr) -> Vec<u8> {
    let mut bytes = addr_bytes(target.ip());
    bytes.extend(target.port().to_be_bytes());
    bytes.extend([0, 0]);
    bytes
}

/// The inverse of [`target_bytes`].
pub fn parse_target(bytes: &[u8]) -> Option<SocketAddr> {
    let (ip, port) = match bytes.len() {
        8 => {
            let a: [u8; 4] = bytes.get(..4)?.try_into().ok()?;
            (IpAddr::from(a), bytes.get(4..6)?)
        }
        20 => {
            let a: [u8; 16] = bytes.get(..16)?.try_into().ok()?;
            (IpAddr::from(a), bytes.get(16..18)?)
        }
        _ => return None,
    };
    let port = u16::from_be_bytes(port.try_into().ok()?);
    Some(SocketAddr::new(ip, port))
}

/// The most elements one request carries: a message's elements are one
/// attribute, whose length is 16 bits (64 KiB), and an element of an IPv6
/// map takes 44 bytes.
pub const ELEMENTS_PER_MESSAGE: usize = 1024;

/// A map's elements as the kernel holds them: `(key, data)` bytes.
pub type Elements = Vec<(Vec<u8>, Vec<u8>)>;

/// A base chain's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainType {
    Nat,
    Filter,
}

impl ChainType {
    pub fn name(self) -> &'static str {
        match self {
            Self::Nat => "nat",
            Self::Filter => "filter",
        }
    }
}

/// A base chain of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BaseChain {
    pub name: &'static str,
    pub kind: ChainType,
    pub hook: Hook,
    pub priority: i32,
}

/// A set or map to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetSpec {
    pub name: String,
    pub id: u32,
    pub flags: u32,
    pub key_type: u32,
    pub key_len: u32,
    /// A map's data: nft's type number and the length.
    pub data: Option<(u32, u32)>,
    /// Whether each element counts what matches it.
    pub counter: bool,
    pub userdata: Vec<u8>,
}

/// One request of a batch (one nf_tables message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    NewTable,
    DelTable,
    NewBaseChain(BaseChain),
    NewChain(&'static str),
    NewRule {
        chain: &'static str,
        exprs: Vec<Expr>,
        comment: Option<String>,
    },
    DelRule {
        chain: &'static str,
        handle: u64,
    },
    NewSet(SetSpec),
    DelSet(String),
    NewElements {
        set: String,
        set_id: Option<u32>,
        elements: Elements,
    },
    /// Elements of a set (not a map): keys alone.
    NewKeys {
        set: String,
        keys: Vec<Vec<u8>>,
    },
    DelElements {
        set: String,
        keys: Vec<Vec<u8>>,
    },
}

/// For errors: which request of a batch the kernel refused.
impl std::fmt::Display for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NewTable => write!(f, "create table inet {TABLE}"),
            Self::DelTable => write!(f, "delete table inet {TABLE}"),
            Self::NewBaseChain(c) => write!(f, "create chain {}", c.name),
            Self::NewChain(name) => write!(f, "create chain {name}"),
            Self::NewRule {
                chain,
                comment: Some(c),
                ..
            } => write!(f, "add rule \"{c}\" to chain {chain}"),
            Self::NewRule { chain, .. } => write!(f, "add rule to chain {chain}"),
            Self::DelRule { chain, handle } => write!(f, "delete rule {handle} of chain {chain}"),
            Self::NewSet(s) if s.data.is_some() => write!(f, "create map {}", s.name),
            Self::NewSet(s) => write!(f, "create set {}", s.name),
            Self::DelSet(name) => write!(f, "delete map {name}"),
            Self::NewElements { set, elements, .. } => {
                write!(f, "add {} element(s) to map {set}", elements.len())
            }
            Self::NewKeys { set, keys } => {
                write!(f, "add {} element(s) to set {set}", keys.len())
            }
            Self::DelElements { set, keys } => {
                write!(f, "delete {} element(s) from {set}", keys.len())
            }
        }
    }
}
