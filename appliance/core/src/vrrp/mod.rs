//! VRRP (RFC 3768 version 2, RFC 5798 version 3): the protocol's value
//! types, the wire format (`packet`), the receive rules (`receive`), the
//! sans-IO state machine (`machine`), sync groups (`group`) and tracked
//! processes' quorum (`process`).

pub mod capture;
pub mod group;
pub mod machine;
pub mod packet;
pub mod process;
pub mod receive;
pub mod router;
pub mod unit;

use serde::{Deserialize, Serialize};
use std::fmt;

pub use crate::range::RangeError;

/// Virtual router identifier: 1..=255 (RFC 5798 §5.2.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct Vrid(u8);

impl Vrid {
    /// The lowest virtual router id.
    pub const MIN: Vrid = Vrid(1);

    pub fn new(value: u32) -> Result<Self, RangeError> {
        match u8::try_from(value) {
            Ok(v) if v >= 1 => Ok(Self(v)),
            _ => Err(RangeError {
                what: "virtual_router_id",
                value,
                min: 1,
                max: 255,
            }),
        }
    }

    pub fn get(self) -> u8 {
        self.0
    }
}

impl TryFrom<u32> for Vrid {
    type Error = RangeError;
    fn try_from(value: u32) -> Result<Self, RangeError> {
        Self::new(value)
    }
}

impl From<Vrid> for u32 {
    fn from(v: Vrid) -> u32 {
        u32::from(v.0)
    }
}

impl fmt::Display for Vrid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Router priority: 0 means "the master is resigning" and 255 is reserved
/// for the address owner (RFC 5798 §5.2.4). Configured backups use 1..=254.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct Priority(u8);

impl Priority {
    /// Sent by a master that is shutting down (RFC 5798 §6.4.3).
    pub const RESIGN: Priority = Priority(0);
    /// The router that owns the virtual addresses.
    pub const OWNER: Priority = Priority(255);
    /// keepalived's and the RFC's default priority.
    pub const DEFAULT: Priority = Priority(100);

    pub fn new(value: u32) -> Result<Self, RangeError> {
        u8::try_from(value).map(Self).map_err(|_| RangeError {
            what: "priority",
            value,
            min: 0,
            max: 255,
        })
    }

    pub const fn from_u8(value: u8) -> Self {
        Self(value)
    }

    pub fn get(self) -> u8 {
        self.0
    }
}

impl TryFrom<u32> for Priority {
    type Error = RangeError;
    fn try_from(value: u32) -> Result<Self, RangeError> {
        Self::new(value)
    }
}

impl From<Priority> for u32 {
    fn from(p: Priority) -> u32 {
        u32::from(p.0)
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// VRRP protocol version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub enum Version {
    /// RFC 3768: IPv4 only, whole-second adverts, optional PASS auth.
    V2,
    /// RFC 5798: IPv4 and IPv6, centisecond adverts, no auth.
    V3,
}

impl TryFrom<u32> for Version {
    type Error = RangeError;
    fn try_from(value: u32) -> Result<Self, RangeError> {
        match value {
            2 => Ok(Self::V2),
            3 => Ok(Self::V3),
            _ => Err(RangeError {
                what: "vrrp_version",
                value,
                min: 2,
                max: 3,
            }),
        }
    }
}

impl From<Version> for u32 {
    fn from(v: Version) -> u32 {
        match v {
            Version::V2 => 2,
            Version::V3 => 3,
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        u32::from(*self).fmt(f)
    }
}

/// Advertisement interval, kept in centiseconds (the v3 unit; v2 carries
/// whole seconds on the wire). v3 allows 1..=4095 cs (12 bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Centiseconds(pub u16);

impl Centiseconds {
    pub fn from_secs(secs: u16) -> Self {
        Self(secs.saturating_mul(100))
    }

    pub fn as_micros(self) -> u64 {
        u64::from(self.0) * 10_000
    }
}
