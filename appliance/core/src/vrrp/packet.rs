//! The VRRP advertisement on the wire (RFC 3768 version 2, RFC 5798
//! version 3), in smoltcp's style: `Packet` is a zero-copy view with one
//! accessor per field, `Repr` is what the packet means, `IpContext` is what
//! the IP header around it said. `Repr::parse` applies every receive rule
//! the RFCs state about the packet itself (§7.1 of both); `validate` applies
//! the rules that depend on the local instance's configuration.

use super::{Centiseconds, Priority, Version, Vrid};
use crate::checksum::{self, fold, sum_words};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// IP protocol number (IPv4) and next header (IPv6) of VRRP.
pub const IP_PROTOCOL: u8 = 112;
/// TTL / hop limit VRRP sends with, and the only one a receiver accepts.
pub const TTL: u8 = 255;
/// RFC 5798 §5.1.1.2: the IPv4 multicast group.
pub const MULTICAST_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// RFC 5798 §5.1.2.2: the IPv6 multicast group.
pub const MULTICAST_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);
/// The only message type VRRP defines.
pub const TYPE_ADVERTISEMENT: u8 = 1;
/// Length of the fixed header, before the addresses.
pub const HEADER_LEN: usize = field::ADDRESSES;
/// Length of the VRRPv2 authentication data after the addresses.
pub const AUTH_DATA_LEN: usize = 8;

mod field {
    use std::ops::Range;

    /// Version in the high nibble, type in the low one.
    pub const VER_TYPE: usize = 0;
    pub const VRID: usize = 1;
    pub const PRIORITY: usize = 2;
    pub const COUNT: usize = 3;
    /// Version 2: authentication type.
    pub const AUTH_TYPE: usize = 4;
    /// Version 2: advertisement interval, seconds.
    pub const ADVER_INT: usize = 5;
    /// Version 3: 4 reserved bits, then 12 bits of centiseconds.
    pub const MAX_ADVER_INT: Range<usize> = 4..6;
    pub const CHECKSUM: Range<usize> = 6..8;
    /// Start of the addresses; version 2 puts 8 bytes of auth data after them.
    pub const ADDRESSES: usize = 8;
}

/// Largest value of the 12-bit v3 Max Adver Int field.
pub const MAX_ADVER_INT_MAX: u16 = 0x0fff;

/// The address family of the IP header a packet came in (or goes out) with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    Ipv4,
    Ipv6,
}

impl Family {
    /// Bytes one address of this family takes in the packet.
    pub const fn address_len(self) -> usize {
        match self {
            Family::Ipv4 => 4,
            Family::Ipv6 => 16,
        }
    }

    const fn other(self) -> Family {
        match self {
            Family::Ipv4 => Family::Ipv6,
            Family::Ipv6 => Family::Ipv4,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::Ipv4 => "IPv4",
            Family::Ipv6 => "IPv6",
        })
    }
}

/// What the IP header carrying the advertisement said: the addresses (the
/// v3 checksum covers them) and the TTL / hop limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IpContext {
    V4 {
        src: Ipv4Addr,
        dst: Ipv4Addr,
        ttl: u8,
    },
    V6 {
        src: Ipv6Addr,
        dst: Ipv6Addr,
        hop_limit: u8,
    },
}

impl IpContext {
    pub fn family(&self) -> Family {
        match self {
            IpContext::V4 { .. } => Family::Ipv4,
            IpContext::V6 { .. } => Family::Ipv6,
        }
    }

    pub fn src(&self) -> IpAddr {
        match *self {
            IpContext::V4 { src, .. } => src.into(),
            IpContext::V6 { src, .. } => src.into(),
        }
    }

    pub fn dst(&self) -> IpAddr {
        match *self {
            IpContext::V4 { dst, .. } => dst.into(),
            IpContext::V6 { dst, .. } => dst.into(),
        }
    }

    /// The IPv4 TTL or the IPv6 hop limit.
    pub fn ttl(&self) -> u8 {
        match *self {
            IpContext::V4 { ttl, .. } => ttl,
            IpContext::V6 { hop_limit, .. } => hop_limit,
        }
    }

    /// One's-complement sum of the RFC 5798 §5.2.8 pseudo-header for a VRRP
    /// message of `len` bytes.
    fn pseudo_header_sum(&self, len: usize) -> u64 {
        let (src, dst) = match *self {
            IpContext::V4 { src, dst, .. } => (IpAddr::V4(src), IpAddr::V4(dst)),
            IpContext::V6 { src, dst, .. } => (IpAddr::V6(src), IpAddr::V6(dst)),
        };
        checksum::pseudo_header_sum(src, dst, IP_PROTOCOL, len)
    }
}

/// Why received bytes are not a valid VRRP advertisement: the RFC receive
/// rules that need no local configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("truncated: {len} bytes where the header and its {count} addresses need {need}")]
    Truncated { len: usize, count: u8, need: usize },
    #[error("TTL/hop limit {0}: a multicast advertisement must arrive with 255")]
    BadTtl(u8),
    #[error("version {0}: only 2 and 3 exist")]
    BadVersion(u8),
    #[error("message type {0}: only 1 (advertisement) exists")]
    BadType(u8),
    #[error("VRID 0 is not a virtual router")]
    BadVrid,
    #[error("VRRP version 2 over IPv6: RFC 3768 is IPv4-only")]
    V2OverIpv6,
    #[error("length {len}: {count} {family} addresses make {expected}")]
    BadLength {
        len: usize,
        count: u8,
        family: Family,
        expected: usize,
    },
    #[error(
        "{count} addresses have the length of {found} addresses but the packet came over {family}"
    )]
    AddressFamily {
        count: u8,
        found: Family,
        family: Family,
    },
    #[error("checksum {found:#06x} where the packet sums to {computed:#06x}")]
    BadChecksum { found: u16, computed: u16 },
    #[error("authentication type {0}: only 0 (none), 1 (simple text) and 2 (IP AH) exist")]
    BadAuthType(u8),
}

/// Why a `Repr` cannot be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmitError {
    #[error("buffer of {len} bytes for an advertisement of {need}")]
    BufferLength { len: usize, need: usize },
    #[error("{0} addresses: the count field holds at most 255")]
    TooManyAddresses(usize),
    #[error("max advertisement interval {0} cs: the field holds at most 4095")]
    IntervalTooLong(u16),
    #[error("{addresses} addresses in an {ip} packet")]
    FamilyMismatch { addresses: Family, ip: Family },
    #[error("VRRP version 2 over IPv6: RFC 3768 is IPv4-only")]
    V2OverIpv6,
}

/// A read/write view of a VRRP advertisement (the IP payload).
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it: for writing into a buffer of
    /// `Repr::buffer_len()` bytes. Accessors panic if the buffer is shorter
    /// than `check_len` requires; use `new_checked` for received bytes.
    pub fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// `new_unchecked` followed by `check_len`.
    pub fn new_checked(buffer: T) -> Result<Packet<T>, Error> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Makes sure no accessor can panic: the buffer holds the fixed header,
    /// the number of addresses the count field announces (at least 4 bytes
    /// each: the family is only known from the IP header, see `Repr::parse`)
    /// and, for version 2, the authentication data.
    pub fn check_len(&self) -> Result<(), Error> {
        self.check_header_len()?;
        let data = self.buffer.as_ref();
        let len = data.len();
        let count = data.get(field::COUNT).copied().unwrap_or(0);
        let need = self.addresses_end_min(data) + self.auth_len(data);
        if len < need {
            Err(Error::Truncated { len, count, need })
        } else {
            Ok(())
        }
    }

    /// Makes sure the fixed-field accessors (up to `checksum`) cannot
    /// panic; the variable part may still be short (see `check_len`).
    pub fn check_header_len(&self) -> Result<(), Error> {
        let data = self.buffer.as_ref();
        if data.len() < HEADER_LEN {
            let count = data.get(field::COUNT).copied().unwrap_or(0);
            return Err(Error::Truncated {
                len: data.len(),
                count,
                need: HEADER_LEN,
            });
        }
        Ok(())
    }

    fn addresses_end_min(&self, data: &[u8]) -> usize {
        let count = data.get(field::COUNT).copied().unwrap_or(0);
        field::ADDRESSES + usize::from(count) * Family::Ipv4.address_len()
    }

    fn auth_len(&self, data: &[u8]) -> usize {
        match data.get(field::VER_TYPE) {
            Some(b) if b >> 4 == 2 => AUTH_DATA_LEN,
            _ => 0,
        }
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The whole message.
    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// The version field (high nibble of the first byte).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_TYPE] >> 4
    }

    /// The type field (low nibble of the first byte).
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::VER_TYPE] & 0x0f
    }

    pub fn vrid(&self) -> u8 {
        self.buffer.as_ref()[field::VRID]
    }

    pub fn priority(&self) -> u8 {
        self.buffer.as_ref()[field::PRIORITY]
    }

    /// The number of addresses the packet announces.
    pub fn count(&self) -> u8 {
        self.buffer.as_ref()[field::COUNT]
    }

    /// Version 2: the authentication type.
    pub fn auth_type(&self) -> u8 {
        self.buffer.as_ref()[field::AUTH_TYPE]
    }

    /// Version 2: the advertisement interval in seconds.
    pub fn adver_int(&self) -> u8 {
        self.buffer.as_ref()[field::ADVER_INT]
    }

    /// Version 3: the reserved bits before the interval (sent as 0,
    /// ignored on reception).
    pub fn reserved(&self) -> u8 {
        self.buffer.as_ref()[field::MAX_ADVER_INT.start] >> 4
    }

    /// Version 3: the maximum advertisement interval in centiseconds.
    pub fn max_adver_int(&self) -> u16 {
        let data = self.buffer.as_ref();
        let hi = data[field::MAX_ADVER_INT.start];
        let lo = data[field::MAX_ADVER_INT.end - 1];
        u16::from_be_bytes([hi, lo]) & MAX_ADVER_INT_MAX
    }

    pub fn checksum(&self) -> u16 {
        let data = self.buffer.as_ref();
        u16::from_be_bytes([data[field::CHECKSUM.start], data[field::CHECKSUM.end - 1]])
    }

    /// The bytes after the fixed header, less the version 2 authentication
    /// data: the addresses, of the IP header's family.
    pub fn address_bytes(&self) -> &[u8] {
        let data = self.buffer.as_ref();
        let end = data.len().saturating_sub(self.auth_len(data));
        data.get(field::ADDRESSES..end).unwrap_or(&[])
    }

    /// The addresses read as IPv4: at most `count()`, as many as there are.
    pub fn ipv4_addresses(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        self.address_bytes()
            .chunks_exact(4)
            .filter_map(|b| <[u8; 4]>::try_from(b).ok())
            .map(Ipv4Addr::from)
            .take(usize::from(self.count()))
    }

    /// The addresses read as IPv6: at most `count()`, as many as there are.
    pub fn ipv6_addresses(&self) -> impl Iterator<Item = Ipv6Addr> + '_ {
        self.address_bytes()
            .chunks_exact(16)
            .filter_map(|b| <[u8; 16]>::try_from(b).ok())
            .map(Ipv6Addr::from)
            .take(usize::from(self.count()))
    }

    /// Version 2: the 8 bytes of authentication data after the announced
    /// addresses (`None` for other versions).
    pub fn auth_data(&self) -> Option<[u8; AUTH_DATA_LEN]> {
        if self.version() != 2 {
            return None;
        }
        let data = self.buffer.as_ref();
        let start = self.addresses_end_min(data);
        data.get(start..start + AUTH_DATA_LEN)
            .and_then(|b| b.try_into().ok())
    }

    /// The value the checksum field must hold: over the message alone for
    /// version 2 (RFC 3768 §5.3.8), with the IP pseudo-header for version 3
    /// (RFC 5798 §5.2.8).
    pub fn compute_checksum(&self, ctx: &IpContext) -> u16 {
        let data = self.buffer.as_ref();
        let before = data.get(..field::CHECKSUM.start).unwrap_or(data);
        let after = data.get(field::CHECKSUM.end..).unwrap_or(&[]);
        let acc = sum_words(sum_words(self.pseudo_sum(ctx), before), after);
        !fold(acc)
    }

    /// Whether the checksum field is right (see `compute_checksum`).
    pub fn verify_checksum(&self, ctx: &IpContext) -> bool {
        fold(sum_words(self.pseudo_sum(ctx), self.buffer.as_ref())) == 0xffff
    }

    fn pseudo_sum(&self, ctx: &IpContext) -> u64 {
        let data = self.buffer.as_ref();
        match data.get(field::VER_TYPE) {
            Some(b) if b >> 4 == 2 => 0,
            _ => ctx.pseudo_header_sum(data.len()),
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_version(&mut self, value: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_TYPE];
        *b = (*b & 0x0f) | (value << 4);
    }

    pub fn set_msg_type(&mut self, value: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_TYPE];
        *b = (*b & 0xf0) | (value & 0x0f);
    }

    pub fn set_vrid(&mut self, value: u8) {
        self.buffer.as_mut()[field::VRID] = value;
    }

    pub fn set_priority(&mut self, value: u8) {
        self.buffer.as_mut()[field::PRIORITY] = value;
    }

    pub fn set_count(&mut self, value: u8) {
        self.buffer.as_mut()[field::COUNT] = value;
    }

    /// Version 2.
    pub fn set_auth_type(&mut self, value: u8) {
        self.buffer.as_mut()[field::AUTH_TYPE] = value;
    }

    /// Version 2.
    pub fn set_adver_int(&mut self, value: u8) {
        self.buffer.as_mut()[field::ADVER_INT] = value;
    }

    /// Version 3: writes the low 12 bits and zeroes the reserved bits.
    pub fn set_max_adver_int(&mut self, value: u16) {
        let bytes = (value & MAX_ADVER_INT_MAX).to_be_bytes();
        self.buffer.as_mut()[field::MAX_ADVER_INT].copy_from_slice(&bytes);
    }

    pub fn set_checksum(&mut self, value: u16) {
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&value.to_be_bytes());
    }

    /// The address area, to write addresses into (see `address_bytes`).
    pub fn address_bytes_mut(&mut self) -> &mut [u8] {
        let auth = self.auth_len(self.buffer.as_ref());
        let data = self.buffer.as_mut();
        let end = data.len().saturating_sub(auth);
        data.get_mut(field::ADDRESSES..end).unwrap_or(&mut [])
    }

    /// Version 2: writes the 8 bytes of authentication data after the
    /// announced addresses; set version and count first.
    pub fn set_auth_data(&mut self, value: &[u8; AUTH_DATA_LEN]) {
        let start = self.addresses_end_min(self.buffer.as_ref());
        self.buffer.as_mut()[start..start + AUTH_DATA_LEN].copy_from_slice(value);
    }

    /// Computes and writes the checksum; set every other field first.
    pub fn fill_checksum(&mut self, ctx: &IpContext) {
        let checksum = self.compute_checksum(ctx);
        self.set_checksum(checksum);
    }
}

/// Version 2 advertisement interval: whole seconds, 1 byte on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Seconds(pub u8);

impl Seconds {
    pub fn to_centiseconds(self) -> Centiseconds {
        Centiseconds::from_secs(u16::from(self.0))
    }
}

impl fmt::Display for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}s", self.0)
    }
}

/// A version 2 simple text password as it travels: the configured string
/// cut to 8 bytes and padded with NULs (keepalived's `auth_pass`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Password(pub [u8; AUTH_DATA_LEN]);

impl Password {
    /// The wire form of a configured password: longer ones are cut to 8
    /// bytes, as keepalived does (`aminglinux` travels as `aminglin`).
    pub fn from_config(text: &str) -> Password {
        let mut bytes = [0u8; AUTH_DATA_LEN];
        for (to, from) in bytes.iter_mut().zip(text.as_bytes()) {
            *to = *from;
        }
        Password(bytes)
    }

    /// Compares without an early exit, so timing does not reveal how much
    /// of a guess was right.
    pub fn matches(&self, other: &Password) -> bool {
        self.0
            .iter()
            .zip(other.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }

    /// Printable form: up to the first NUL, other bytes escaped.
    pub fn to_text(&self) -> String {
        let end = self.0.iter().position(|&b| b == 0).unwrap_or(AUTH_DATA_LEN);
        self.0.get(..end).unwrap_or(&[]).escape_ascii().to_string()
    }
}

impl fmt::Debug for Password {
    // Not the password itself: Debug output ends up in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(..)")
    }
}

/// Version 2 authentication (RFC 3768 §5.3.6; types 1 and 2 are kept for
/// interoperation with RFC 2338 routers).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Auth {
    /// Type 0: the auth data is sent as zeros and ignored on reception.
    None,
    /// Type 1: the auth data is a password in clear text.
    Pass(Password),
    /// Type 2: IPsec AH in the IP layer authenticates; the auth data is
    /// sent as zeros and ignored on reception.
    Ah,
}

impl Auth {
    /// The auth type field.
    pub fn type_code(&self) -> u8 {
        match self {
            Auth::None => 0,
            Auth::Pass(_) => 1,
            Auth::Ah => 2,
        }
    }
}

/// The fields whose presence or meaning depends on the version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Variant {
    /// RFC 3768.
    V2 { adver_int: Seconds, auth: Auth },
    /// RFC 5798: the interval is 12 bits of centiseconds (0..=4095).
    V3 { max_adver_int: Centiseconds },
}

/// The virtual addresses an advertisement lists, of the IP header's family.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Addresses {
    V4(Vec<Ipv4Addr>),
    V6(Vec<Ipv6Addr>),
}

impl Addresses {
    pub fn family(&self) -> Family {
        match self {
            Addresses::V4(_) => Family::Ipv4,
            Addresses::V6(_) => Family::Ipv6,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Addresses::V4(a) => a.len(),
            Addresses::V6(a) => a.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn iter(&self) -> impl Iterator<Item = IpAddr> + '_ {
        let v4 = match self {
            Addresses::V4(a) => a.as_slice(),
            Addresses::V6(_) => &[],
        };
        let v6 = match self {
            Addresses::V6(a) => a.as_slice(),
            Addresses::V4(_) => &[],
        };
        v4.iter()
            .map(|a| IpAddr::from(*a))
            .chain(v6.iter().map(|a| IpAddr::from(*a)))
    }

    pub fn contains(&self, addr: IpAddr) -> bool {
        match (self, addr) {
            (Addresses::V4(a), IpAddr::V4(x)) => a.contains(&x),
            (Addresses::V6(a), IpAddr::V6(x)) => a.contains(&x),
            _ => false,
        }
    }
}

/// What an advertisement says. The checksum is not part of it: `emit`
/// computes it and `parse` rejects a wrong one.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Repr {
    pub vrid: Vrid,
    pub priority: Priority,
    pub variant: Variant,
    pub addresses: Addresses,
}

impl Repr {
    pub fn version(&self) -> Version {
        match self.variant {
            Variant::V2 { .. } => Version::V2,
            Variant::V3 { .. } => Version::V3,
        }
    }

    /// Reads a received advertisement, applying the receive rules of
    /// RFC 3768 §7.1 and RFC 5798 §7.1 that need no configuration: TTL
    /// 255, version 2 or 3 (2 only over IPv4), type advertisement, length
    /// matching the count of addresses of the IP header's family (plus the
    /// v2 auth data), checksum, v2 auth type 0, 1 or 2, VRID not 0.
    ///
    /// The TTL is only checked for a multicast destination: advertisements
    /// sent to unicast peers (keepalived's `unicast_peer`, outside the
    /// RFCs) may cross routers, and keepalived does not check their TTL.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>, ctx: &IpContext) -> Result<Repr, Error> {
        packet.check_len()?;
        if ctx.dst().is_multicast() && ctx.ttl() != TTL {
            return Err(Error::BadTtl(ctx.ttl()));
        }
        let version = match packet.version() {
            2 => Version::V2,
            3 => Version::V3,
            v => return Err(Error::BadVersion(v)),
        };
        let family = ctx.family();
        if version == Version::V2 && family == Family::Ipv6 {
            return Err(Error::V2OverIpv6);
        }
        if packet.msg_type() != TYPE_ADVERTISEMENT {
            return Err(Error::BadType(packet.msg_type()));
        }
        let count = packet.count();
        let len = packet.as_bytes().len();
        let trailer = if version == Version::V2 {
            AUTH_DATA_LEN
        } else {
            0
        };
        let len_for = |f: Family| HEADER_LEN + usize::from(count) * f.address_len() + trailer;
        if len != len_for(family) {
            if count > 0 && len == len_for(family.other()) {
                return Err(Error::AddressFamily {
                    count,
                    found: family.other(),
                    family,
                });
            }
            return Err(Error::BadLength {
                len,
                count,
                family,
                expected: len_for(family),
            });
        }
        if !packet.verify_checksum(ctx) {
            return Err(Error::BadChecksum {
                found: packet.checksum(),
                computed: packet.compute_checksum(ctx),
            });
        }
        let variant = match version {
            Version::V2 => {
                let auth = match packet.auth_type() {
                    0 => Auth::None,
                    1 => Auth::Pass(Password(packet.auth_data().unwrap_or_default())),
                    2 => Auth::Ah,
                    t => return Err(Error::BadAuthType(t)),
                };
                Variant::V2 {
                    adver_int: Seconds(packet.adver_int()),
                    auth,
                }
            }
            Version::V3 => Variant::V3 {
                max_adver_int: Centiseconds(packet.max_adver_int()),
            },
        };
        let vrid = Vrid::new(u32::from(packet.vrid())).map_err(|_| Error::BadVrid)?;
        let addresses = match family {
            Family::Ipv4 => Addresses::V4(packet.ipv4_addresses().collect()),
            Family::Ipv6 => Addresses::V6(packet.ipv6_addresses().collect()),
        };
        Ok(Repr {
            vrid,
            priority: Priority::from_u8(packet.priority()),
            variant,
            addresses,
        })
    }

    /// Length of the message `emit` writes.
    pub fn buffer_len(&self) -> usize {
        let trailer = match self.variant {
            Variant::V2 { .. } => AUTH_DATA_LEN,
            Variant::V3 { .. } => 0,
        };
        HEADER_LEN + self.addresses.len() * self.addresses.family().address_len() + trailer
    }

    /// Writes the advertisement, checksum included, into a buffer of
    /// exactly `buffer_len()` bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut Packet<T>,
        ctx: &IpContext,
    ) -> Result<(), EmitError> {
        let family = self.addresses.family();
        if family != ctx.family() {
            return Err(EmitError::FamilyMismatch {
                addresses: family,
                ip: ctx.family(),
            });
        }
        match self.variant {
            Variant::V2 { .. } if family == Family::Ipv6 => return Err(EmitError::V2OverIpv6),
            Variant::V3 { max_adver_int } if max_adver_int.0 > MAX_ADVER_INT_MAX => {
                return Err(EmitError::IntervalTooLong(max_adver_int.0));
            }
            _ => {}
        }
        let count = u8::try_from(self.addresses.len())
            .map_err(|_| EmitError::TooManyAddresses(self.addresses.len()))?;
        let (len, need) = (packet.as_bytes().len(), self.buffer_len());
        if len != need {
            return Err(EmitError::BufferLength { len, need });
        }
        packet.set_msg_type(TYPE_ADVERTISEMENT);
        packet.set_vrid(self.vrid.get());
        packet.set_priority(self.priority.get());
        packet.set_count(count);
        match self.variant {
            Variant::V2 { adver_int, auth } => {
                packet.set_version(2);
                packet.set_auth_type(auth.type_code());
                packet.set_adver_int(adver_int.0);
                let data = match auth {
                    Auth::Pass(password) => password.0,
                    Auth::None | Auth::Ah => [0; AUTH_DATA_LEN],
                };
                packet.set_auth_data(&data);
            }
            Variant::V3 { max_adver_int } => {
                packet.set_version(3);
                packet.set_max_adver_int(max_adver_int.0);
            }
        }
        let slots = packet.address_bytes_mut();
        match &self.addresses {
            Addresses::V4(addrs) => {
                for (slot, addr) in slots.chunks_exact_mut(4).zip(addrs) {
                    slot.copy_from_slice(&addr.octets());
                }
            }
            Addresses::V6(addrs) => {
                for (slot, addr) in slots.chunks_exact_mut(16).zip(addrs) {
                    slot.copy_from_slice(&addr.octets());
                }
            }
        }
        packet.fill_checksum(ctx);
        Ok(())
    }
}

/// What a local instance expects of the advertisements it receives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expected {
    pub vrid: Vrid,
    pub protocol: ExpectedVersion,
    /// The configured virtual addresses; `None` (the simulator's routers,
    /// which carry none) skips the check.
    pub addresses: Option<Addresses>,
}

/// The version-specific expectations. Version 3 has none beyond the
/// version: a backup learns the master's interval (RFC 5798 §6.4.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpectedVersion {
    V2 { adver_int: Seconds, auth: Auth },
    V3,
}

/// Why a received advertisement is dropped: the `Error`s of `parse` and the
/// per-instance rules of `validate`, one flat list to count by.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("truncated: {len} bytes where {need} are needed")]
    Truncated { len: usize, need: usize },
    #[error("TTL/hop limit {0}, not 255")]
    BadTtl(u8),
    #[error("version {0}: only 2 and 3 exist")]
    BadVersion(u8),
    #[error("message type {0}: only 1 (advertisement) exists")]
    BadType(u8),
    #[error("VRID 0 is not a virtual router")]
    BadVrid,
    #[error("VRRP version 2 over IPv6")]
    V2OverIpv6,
    #[error("length {len} does not match the count of addresses (expected {expected})")]
    BadLength { len: usize, expected: usize },
    #[error("addresses of {found} in an {family} packet")]
    AddressFamily { found: Family, family: Family },
    #[error("checksum {found:#06x}, expected {computed:#06x}")]
    BadChecksum { found: u16, computed: u16 },
    #[error("authentication type {0}: only 0, 1 and 2 exist")]
    BadAuthType(u8),
    #[error("VRID {0} is not one of ours")]
    UnknownVrid(Vrid),
    #[error("version {got}, this instance runs {expected}")]
    VersionMismatch { got: Version, expected: Version },
    #[error("authentication type {got}, this instance uses {expected}")]
    AuthTypeMismatch { got: u8, expected: u8 },
    #[error("wrong password")]
    AuthMismatch,
    #[error("advertisement interval {got}, this instance uses {expected}")]
    IntervalMismatch { got: Seconds, expected: Seconds },
    #[error("{got} addresses, this instance has {expected}")]
    AddressCountMismatch { got: usize, expected: usize },
    #[error("address {missing} of this instance is not in the advertisement")]
    AddressMismatch { missing: IpAddr },
    #[error("sent to {dst}, not to the VRRP group: a multicast instance takes only the group")]
    NotToGroup { dst: IpAddr },
    #[error("sent to the group {dst}: a unicast instance takes only adverts to its address")]
    NotUnicast { dst: IpAddr },
    #[error("{from} is not one of this instance's unicast peers")]
    UnknownPeer { from: IpAddr },
    #[error("advertisement interval 0")]
    ZeroInterval,
    #[error("advertisement interval {} cs, outside {}..={} cs", got.0, min.0, max.0)]
    IntervalOutOfRange {
        got: Centiseconds,
        min: Centiseconds,
        max: Centiseconds,
    },
}

impl Rejection {
    /// A stable short name, to count drops by.
    pub fn name(&self) -> &'static str {
        match self {
            Rejection::Truncated { .. } => "truncated",
            Rejection::BadTtl(_) => "bad_ttl",
            Rejection::BadVersion(_) => "bad_version",
            Rejection::BadType(_) => "bad_type",
            Rejection::BadVrid => "bad_vrid",
            Rejection::V2OverIpv6 => "v2_over_ipv6",
            Rejection::BadLength { .. } => "bad_length",
            Rejection::AddressFamily { .. } => "address_family",
            Rejection::BadChecksum { .. } => "bad_checksum",
            Rejection::BadAuthType(_) => "bad_auth_type",
            Rejection::UnknownVrid(_) => "unknown_vrid",
            Rejection::VersionMismatch { .. } => "version_mismatch",
            Rejection::AuthTypeMismatch { .. } => "auth_type_mismatch",
            Rejection::AuthMismatch => "auth_mismatch",
            Rejection::IntervalMismatch { .. } => "interval_mismatch",
            Rejection::AddressCountMismatch { .. } => "address_count_mismatch",
            Rejection::AddressMismatch { .. } => "address_mismatch",
            Rejection::NotToGroup { .. } => "not_to_group",
            Rejection::NotUnicast { .. } => "not_unicast",
            Rejection::UnknownPeer { .. } => "unknown_peer",
            Rejection::ZeroInterval => "zero_interval",
            Rejection::IntervalOutOfRange { .. } => "interval_out_of_range",
        }
    }
}

impl From<Error> for Rejection {
    fn from(e: Error) -> Rejection {
        match e {
            Error::Truncated { len, need, .. } => Rejection::Truncated { len, need },
            Error::BadTtl(t) => Rejection::BadTtl(t),
            Error::BadVersion(v) => Rejection::BadVersion(v),
            Error::BadType(t) => Rejection::BadType(t),
            Error::BadVrid => Rejection::BadVrid,
            Error::V2OverIpv6 => Rejection::V2OverIpv6,
            Error::BadLength { len, expected, .. } => Rejection::BadLength { len, expected },
            Error::AddressFamily { found, family, .. } => {
                Rejection::AddressFamily { found, family }
            }
            Error::BadChecksum { found, computed } => Rejection::BadChecksum { found, computed },
            Error::BadAuthType(t) => Rejection::BadAuthType(t),
        }
    }
}

/// The per-instance receive rules (RFC 3768 §7.1, RFC 5798 §7.1, in
/// keepalived's order): our VRID, our version, for version 2 our auth type,
/// password and interval, then our addresses (count, then each present)
/// when `check_addresses`.
pub fn validate(repr: &Repr, expected: &Expected, check_addresses: bool) -> Result<(), Rejection> {
    if repr.vrid != expected.vrid {
        return Err(Rejection::UnknownVrid(repr.vrid));
    }
    match (repr.variant, expected.protocol) {
        (
            Variant::V2 { adver_int, auth },
            ExpectedVersion::V2 {
                adver_int: want_int,
                auth: want,
            },
        ) => {
            if auth.type_code() != want.type_code() {
                return Err(Rejection::AuthTypeMismatch {
                    got: auth.type_code(),
                    expected: want.type_code(),
                });
            }
            if let (Auth::Pass(got), Auth::Pass(want)) = (auth, want)
                && !got.matches(&want)
            {
                return Err(Rejection::AuthMismatch);
            }
            if adver_int != want_int {
                return Err(Rejection::IntervalMismatch {
                    got: adver_int,
                    expected: want_int,
                });
            }
        }
        (Variant::V3 { .. }, ExpectedVersion::V3) => {}
        (_, want) => {
            let expected = match want {
                ExpectedVersion::V2 { .. } => Version::V2,
                ExpectedVersion::V3 => Version::V3,
            };
            return Err(Rejection::VersionMismatch {
                got: repr.version(),
                expected,
            });
        }
    }
    if let Some(ours) = expected.addresses.as_ref().filter(|_| check_addresses) {
        if repr.addresses.len() != ours.len() {
            return Err(Rejection::AddressCountMismatch {
                got: repr.addresses.len(),
                expected: ours.len(),
            });
        }
        if let Some(missing) = ours.iter().find(|a| !repr.addresses.contains(*a)) {
            return Err(Rejection::AddressMismatch { missing });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // keepalived 2.2.7, from tests/fixtures/pcap/keepalived-v2-pass.pcap
    // (`tcpdump -XX`, bytes after the IPv4 header): VRID 51, PASS auth
    // "aminglinux" (8 bytes on the wire), advert_int 1, VIP 10.99.0.100.
    // Frame 1: the master at priority 150.
    static V2_PRIO150: [u8; 20] = [
        0x21, 0x33, 0x96, 0x01, 0x01, 0x01, 0xa1, 0x4c, 0x0a, 0x63, 0x00, 0x64, 0x61, 0x6d, 0x69,
        0x6e, 0x67, 0x6c, 0x69, 0x6e,
    ];
    // Frame 4: the same master resigning on shutdown (priority 0).
    static V2_PRIO0: [u8; 20] = [
        0x21, 0x33, 0x00, 0x01, 0x01, 0x01, 0x37, 0x4d, 0x0a, 0x63, 0x00, 0x64, 0x61, 0x6d, 0x69,
        0x6e, 0x67, 0x6c, 0x69, 0x6e,
    ];
    // keepalived 2.2.7 with vrrp_version 3, from
    // tests/fixtures/pcap/keepalived-v3.pcap (config in
    // tests/fixtures/keepalived/capture-v3.conf). Frame 4: IPv4,
    // 10.99.0.2 > 224.0.0.18, VRID 52, priority 200, 100 cs, two VIPs.
    static V3_IPV4: [u8; 16] = [
        0x31, 0x34, 0xc8, 0x02, 0x00, 0x64, 0x05, 0xde, 0x0a, 0x63, 0x00, 0x64, 0x0a, 0x63, 0x00,
        0x65,
    ];
    // Frame 1: IPv6, fe80::7815:d6ff:fe16:7433 > ff02::12, VRID 53,
    // priority 120, 50 cs, VIPs fd00::100 and fd00::101.
    static V3_IPV6: [u8; 40] = [
        0x31, 0x35, 0x78, 0x02, 0x00, 0x32, 0x9b, 0x05, 0xfd, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0xfd, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x01,
    ];

    fn ctx_v2() -> IpContext {
        IpContext::V4 {
            src: Ipv4Addr::new(10, 99, 0, 2),
            dst: Ipv4Addr::new(224, 0, 0, 18),
            ttl: 255,
        }
    }

    fn ctx_v3_ipv4() -> IpContext {
        ctx_v2()
    }

    fn ctx_v3_ipv6() -> IpContext {
        IpContext::V6 {
            src: "fe80::7815:d6ff:fe16:7433".parse().unwrap(),
            dst: "ff02::12".parse().unwrap(),
            hop_limit: 255,
        }
    }

    fn vrid(v: u32) -> Vrid {
        Vrid::new(v).unwrap()
    }

    fn repr_v2(priority: u8) -> Repr {
        Repr {
            vrid: vrid(51),
            priority: Priority::from_u8(priority),
            variant: Variant::V2 {
                adver_int: Seconds(1),
                auth: Auth::Pass(Password::from_config("aminglinux")),
            },
            addresses: Addresses::V4(vec![Ipv4Addr::new(10, 99, 0, 100)]),
        }
    }

    fn repr_v3_ipv4() -> Repr {
        Repr {
            vrid: vrid(52),
            priority: Priority::from_u8(200),
            variant: Variant::V3 {
                max_adver_int: Centiseconds(100),
            },
            addresses: Addresses::V4(vec![
                Ipv4Addr::new(10, 99, 0, 100),
                Ipv4Addr::new(10, 99, 0, 101),
            ]),
        }
    }

    fn repr_v3_ipv6() -> Repr {
        Repr {
            vrid: vrid(53),
            priority: Priority::from_u8(120),
            variant: Variant::V3 {
                max_adver_int: Centiseconds(50),
            },
            addresses: Addresses::V6(vec![
                "fd00::100".parse().unwrap(),
                "fd00::101".parse().unwrap(),
            ]),
        }
    }

    fn emit(repr: &Repr, ctx: &IpContext) -> Vec<u8> {
        // 0xa5 everywhere, so that a field emit forgets shows.
        let mut bytes = vec![0xa5; repr.buffer_len()];
        repr.emit(&mut Packet::new_unchecked(&mut bytes), ctx)
            .unwrap();
        bytes
    }

    /// `bytes` changed by `change`, with the checksum made right again so
    /// that only the rule under test is broken.
    fn altered(
        bytes: &[u8],
        ctx: &IpContext,
        change: impl FnOnce(&mut Packet<&mut Vec<u8>>),
    ) -> Vec<u8> {
        let mut bytes = bytes.to_vec();
        let mut packet = Packet::new_unchecked(&mut bytes);
        change(&mut packet);
        packet.fill_checksum(ctx);
        bytes
    }

    fn parse(bytes: &[u8], ctx: &IpContext) -> Result<Repr, Error> {
        Repr::parse(&Packet::new_checked(bytes)?, ctx)
    }

    #[test]
    fn deconstruct_v2_priority_150() {
        let packet = Packet::new_checked(&V2_PRIO150[..]).unwrap();
        assert_eq!(packet.version(), 2);
        assert_eq!(packet.msg_type(), 1);
        assert_eq!(packet.vrid(), 51);
        assert_eq!(packet.priority(), 150);
        assert_eq!(packet.count(), 1);
        assert_eq!(packet.auth_type(), 1);
        assert_eq!(packet.adver_int(), 1);
        assert_eq!(packet.checksum(), 0xa14c);
        assert_eq!(
            packet.ipv4_addresses().collect::<Vec<_>>(),
            [Ipv4Addr::new(10, 99, 0, 100)]
        );
        assert_eq!(packet.auth_data(), Some(*b"aminglin"));
        assert!(packet.verify_checksum(&ctx_v2()));
        assert_eq!(packet.compute_checksum(&ctx_v2()), 0xa14c);
    }

    #[test]
    fn deconstruct_v2_priority_0() {
        let packet = Packet::new_checked(&V2_PRIO0[..]).unwrap();
        assert_eq!(packet.priority(), 0);
        assert_eq!(packet.vrid(), 51);
        assert_eq!(packet.checksum(), 0x374d);
        assert!(packet.verify_checksum(&ctx_v2()));
    }

    #[test]
    fn parse_v2() {
        assert_eq!(parse(&V2_PRIO150, &ctx_v2()), Ok(repr_v2(150)));
        let resign = parse(&V2_PRIO0, &ctx_v2()).unwrap();
        assert_eq!(resign, repr_v2(0));
        assert_eq!(resign.priority, Priority::RESIGN);
        assert_eq!(resign.version(), Version::V2);
    }

    #[test]
    fn construct_v2() {
        assert_eq!(emit(&repr_v2(150), &ctx_v2()), V2_PRIO150);
        assert_eq!(emit(&repr_v2(0), &ctx_v2()), V2_PRIO0);
    }

    #[test]
    fn v2_checksum_does_not_cover_the_ip_header() {
        let elsewhere = IpContext::V4 {
            src: Ipv4Addr::new(192, 0, 2, 9),
            dst: Ipv4Addr::new(224, 0, 0, 18),
            ttl: 255,
        };
        assert_eq!(parse(&V2_PRIO150, &elsewhere), Ok(repr_v2(150)));
    }

    #[test]
    fn deconstruct_parse_construct_v3_ipv4() {
        let packet = Packet::new_checked(&V3_IPV4[..]).unwrap();
        assert_eq!(packet.version(), 3);
        assert_eq!(packet.msg_type(), 1);
        assert_eq!(packet.vrid(), 52);
        assert_eq!(packet.priority(), 200);
        assert_eq!(packet.count(), 2);
        assert_eq!(packet.reserved(), 0);
        assert_eq!(packet.max_adver_int(), 100);
        assert_eq!(packet.checksum(), 0x05de);
        assert_eq!(packet.auth_data(), None);
        assert!(packet.verify_checksum(&ctx_v3_ipv4()));
        assert_eq!(Repr::parse(&packet, &ctx_v3_ipv4()), Ok(repr_v3_ipv4()));
        assert_eq!(emit(&repr_v3_ipv4(), &ctx_v3_ipv4()), V3_IPV4);
    }

    #[test]
    fn deconstruct_parse_construct_v3_ipv6() {
        let packet = Packet::new_checked(&V3_IPV6[..]).unwrap();
        assert_eq!(packet.version(), 3);
        assert_eq!(packet.vrid(), 53);
        assert_eq!(packet.priority(), 120);
        assert_eq!(packet.count(), 2);
        assert_eq!(packet.max_adver_int(), 50);
        assert_eq!(packet.checksum(), 0x9b05);
        let addrs: Vec<Ipv6Addr> = packet.ipv6_addresses().collect();
        assert_eq!(
            addrs,
            [
                "fd00::100".parse::<Ipv6Addr>().unwrap(),
                "fd00::101".parse().unwrap()
            ]
        );
        assert!(packet.verify_checksum(&ctx_v3_ipv6()));
        assert_eq!(Repr::parse(&packet, &ctx_v3_ipv6()), Ok(repr_v3_ipv6()));
        assert_eq!(emit(&repr_v3_ipv6(), &ctx_v3_ipv6()), V3_IPV6);
    }

    /// The v3 checksums, summed by etherparse's own RFC 1071 code over the
    /// pseudo-headers of RFC 5798 §5.2.8 (RFC 768 layout for IPv4, RFC 8200
    /// §8.1 for IPv6), agree with keepalived's and with ours.
    #[test]
    fn v3_checksums_agree_with_an_independent_sum() {
        use etherparse::checksum::Sum16BitWords;
        let mut v4 = V3_IPV4;
        v4[6..8].fill(0);
        let sum = Sum16BitWords::new()
            .add_4bytes([10, 99, 0, 2])
            .add_4bytes([224, 0, 0, 18])
            .add_2bytes([0, IP_PROTOCOL])
            .add_2bytes((v4.len() as u16).to_be_bytes())
            .add_slice(&v4);
        assert_eq!(u16::from_be(sum.ones_complement()), 0x05de);

        let mut v6 = V3_IPV6;
        v6[6..8].fill(0);
        let IpContext::V6 { src, dst, .. } = ctx_v3_ipv6() else {
            unreachable!()
        };
        let sum = Sum16BitWords::new()
            .add_16bytes(src.octets())
            .add_16bytes(dst.octets())
            .add_4bytes((v6.len() as u32).to_be_bytes())
            .add_4bytes([0, 0, 0, IP_PROTOCOL])
            .add_slice(&v6);
        assert_eq!(u16::from_be(sum.ones_complement()), 0x9b05);
    }

    #[test]
    fn v3_checksum_covers_the_pseudo_header() {
        let other_src = IpContext::V4 {
            src: Ipv4Addr::new(10, 99, 0, 3),
            dst: Ipv4Addr::new(224, 0, 0, 18),
            ttl: 255,
        };
        assert!(matches!(
            parse(&V3_IPV4, &other_src),
            Err(Error::BadChecksum { found: 0x05de, .. })
        ));
    }

    // One test per receive rule of RFC 3768 §7.1 / RFC 5798 §7.1.

    #[test]
    fn rule_ttl_must_be_255() {
        let ctx = IpContext::V4 {
            src: Ipv4Addr::new(10, 99, 0, 2),
            dst: Ipv4Addr::new(224, 0, 0, 18),
            ttl: 254,
        };
        assert_eq!(parse(&V2_PRIO150, &ctx), Err(Error::BadTtl(254)));
        let IpContext::V6 { src, dst, .. } = ctx_v3_ipv6() else {
            unreachable!()
        };
        let ctx = IpContext::V6 {
            src,
            dst,
            hop_limit: 1,
        };
        assert_eq!(parse(&V3_IPV6, &ctx), Err(Error::BadTtl(1)));
    }

    #[test]
    fn rule_ttl_is_not_checked_for_unicast_peers() {
        let ctx = IpContext::V4 {
            src: Ipv4Addr::new(10, 99, 0, 2),
            dst: Ipv4Addr::new(10, 99, 0, 3),
            ttl: 64,
        };
        assert_eq!(parse(&V2_PRIO150, &ctx), Ok(repr_v2(150)));
    }

    #[test]
    fn rule_version_must_be_2_or_3() {
        for v in [0, 1, 4, 15] {
            // A version other than 2 drops the auth trailer: keep 3's layout.
            let bytes = altered(&V3_IPV4, &ctx_v3_ipv4(), |p| p.set_version(v));
            assert_eq!(parse(&bytes, &ctx_v3_ipv4()), Err(Error::BadVersion(v)));
        }
    }

    #[test]
    fn rule_version_2_is_ipv4_only() {
        let ctx = IpContext::V6 {
            src: "fe80::1".parse().unwrap(),
            dst: "ff02::12".parse().unwrap(),
            hop_limit: 255,
        };
        assert_eq!(parse(&V2_PRIO150, &ctx), Err(Error::V2OverIpv6));
    }

    #[test]
    fn rule_type_must_be_advertisement() {
        let bytes = altered(&V2_PRIO150, &ctx_v2(), |p| p.set_msg_type(2));
        assert_eq!(parse(&bytes, &ctx_v2()), Err(Error::BadType(2)));
    }

    #[test]
    fn rule_checksum_must_be_right() {
        let mut bytes = V2_PRIO150;
        // Priority 150 -> 151 adds 0x0100 to the sum.
        bytes[2] = 151;
        assert_eq!(
            parse(&bytes, &ctx_v2()),
            Err(Error::BadChecksum {
                found: 0xa14c,
                computed: 0xa04c
            })
        );
    }

    #[test]
    fn rule_length_must_match_the_count_of_addresses() {
        // One byte more than the count says.
        let mut long = V3_IPV4.to_vec();
        long.push(0);
        assert_eq!(
            parse(&long, &ctx_v3_ipv4()),
            Err(Error::BadLength {
                len: 17,
                count: 2,
                family: Family::Ipv4,
                expected: 16
            })
        );
        // A count larger than the addresses present.
        let bytes = altered(&V3_IPV4, &ctx_v3_ipv4(), |p| p.set_count(3));
        assert_eq!(
            Packet::new_checked(&bytes[..]).err(),
            Some(Error::Truncated {
                len: 16,
                count: 3,
                need: 20
            })
        );
        // v2: the 8 auth bytes are part of the length.
        assert_eq!(
            Packet::new_checked(&V2_PRIO150[..16]).err(),
            Some(Error::Truncated {
                len: 16,
                count: 1,
                need: 20
            })
        );
        assert_eq!(
            Packet::new_checked(&V2_PRIO150[..7]).err(),
            Some(Error::Truncated {
                len: 7,
                count: 1,
                need: 8
            })
        );
        // IPv6: the count must be of 16-byte addresses.
        let bytes = altered(&V3_IPV6[..24], &ctx_v3_ipv6(), |_| {});
        assert_eq!(
            parse(&bytes, &ctx_v3_ipv6()),
            Err(Error::BadLength {
                len: 24,
                count: 2,
                family: Family::Ipv6,
                expected: 40
            })
        );
    }

    #[test]
    fn rule_addresses_must_be_of_the_ip_header_family() {
        // A v3 IPv4 advertisement (2 addresses of 4 bytes) in an IPv6 packet.
        let bytes = altered(&V3_IPV4, &ctx_v3_ipv6(), |_| {});
        assert_eq!(
            parse(&bytes, &ctx_v3_ipv6()),
            Err(Error::AddressFamily {
                count: 2,
                found: Family::Ipv4,
                family: Family::Ipv6
            })
        );
        // And the IPv6 one in an IPv4 packet.
        let bytes = altered(&V3_IPV6, &ctx_v3_ipv4(), |_| {});
        assert_eq!(
            parse(&bytes, &ctx_v3_ipv4()),
            Err(Error::AddressFamily {
                count: 2,
                found: Family::Ipv6,
                family: Family::Ipv4
            })
        );
    }

    #[test]
    fn rule_v2_auth_type_must_be_0_1_or_2() {
        let bytes = altered(&V2_PRIO150, &ctx_v2(), |p| p.set_auth_type(3));
        assert_eq!(parse(&bytes, &ctx_v2()), Err(Error::BadAuthType(3)));
        let none = altered(&V2_PRIO150, &ctx_v2(), |p| p.set_auth_type(0));
        assert!(matches!(
            parse(&none, &ctx_v2()).unwrap().variant,
            Variant::V2 {
                auth: Auth::None,
                ..
            }
        ));
        let ah = altered(&V2_PRIO150, &ctx_v2(), |p| p.set_auth_type(2));
        assert!(matches!(
            parse(&ah, &ctx_v2()).unwrap().variant,
            Variant::V2 { auth: Auth::Ah, .. }
        ));
    }

    #[test]
    fn rule_vrid_0_is_invalid() {
        let bytes = altered(&V2_PRIO150, &ctx_v2(), |p| p.set_vrid(0));
        assert_eq!(parse(&bytes, &ctx_v2()), Err(Error::BadVrid));
    }

    #[test]
    fn v3_reserved_bits_are_ignored() {
        let bytes = altered(&V3_IPV4, &ctx_v3_ipv4(), |p| {
            let interval = p.max_adver_int();
            let data: &mut [u8] = p.buffer.as_mut();
            data[field::MAX_ADVER_INT.start] |= 0xf0;
            assert_eq!(p.max_adver_int(), interval);
        });
        assert_eq!(parse(&bytes, &ctx_v3_ipv4()), Ok(repr_v3_ipv4()));
    }

    fn expected_v2() -> Expected {
        Expected {
            vrid: vrid(51),
            protocol: ExpectedVersion::V2 {
                adver_int: Seconds(1),
                auth: Auth::Pass(Password::from_config("aminglinux")),
            },
            addresses: Some(Addresses::V4(vec![Ipv4Addr::new(10, 99, 0, 100)])),
        }
    }

    #[test]
    fn validate_accepts_the_captured_advertisements() {
        assert_eq!(validate(&repr_v2(150), &expected_v2(), true), Ok(()));
        assert_eq!(validate(&repr_v2(0), &expected_v2(), true), Ok(()));
        let expected_v3 = Expected {
            vrid: vrid(53),
            protocol: ExpectedVersion::V3,
            addresses: Some(repr_v3_ipv6().addresses),
        };
        assert_eq!(validate(&repr_v3_ipv6(), &expected_v3, true), Ok(()));
    }

    #[test]
    fn validate_unknown_vrid() {
        let expected = Expected {
            vrid: vrid(52),
            ..expected_v2()
        };
        assert_eq!(
            validate(&repr_v2(150), &expected, true),
            Err(Rejection::UnknownVrid(vrid(51)))
        );
    }

    #[test]
    fn validate_version_mismatch() {
        let expected = Expected {
            vrid: vrid(52),
            protocol: ExpectedVersion::V2 {
                adver_int: Seconds(1),
                auth: Auth::None,
            },
            addresses: None,
        };
        assert_eq!(
            validate(&repr_v3_ipv4(), &expected, true),
            Err(Rejection::VersionMismatch {
                got: Version::V3,
                expected: Version::V2
            })
        );
        let expected = Expected {
            protocol: ExpectedVersion::V3,
            ..expected_v2()
        };
        assert_eq!(
            validate(&repr_v2(150), &expected, true),
            Err(Rejection::VersionMismatch {
                got: Version::V2,
                expected: Version::V3
            })
        );
    }

    #[test]
    fn validate_auth_type_mismatch() {
        let expected = Expected {
            protocol: ExpectedVersion::V2 {
                adver_int: Seconds(1),
                auth: Auth::None,
            },
            ..expected_v2()
        };
        assert_eq!(
            validate(&repr_v2(150), &expected, true),
            Err(Rejection::AuthTypeMismatch {
                got: 1,
                expected: 0
            })
        );
    }

    #[test]
    fn validate_password_mismatch() {
        let expected = Expected {
            protocol: ExpectedVersion::V2 {
                adver_int: Seconds(1),
                auth: Auth::Pass(Password::from_config("aminglix")),
            },
            ..expected_v2()
        };
        assert_eq!(
            validate(&repr_v2(150), &expected, true),
            Err(Rejection::AuthMismatch)
        );
        // Only the 8 bytes that travel count, as with keepalived.
        let expected = Expected {
            protocol: ExpectedVersion::V2 {
                adver_int: Seconds(1),
                auth: Auth::Pass(Password::from_config("aminglin-and-more")),
            },
            ..expected_v2()
        };
        assert_eq!(validate(&repr_v2(150), &expected, true), Ok(()));
    }

    #[test]
    fn validate_v2_interval_mismatch() {
        let expected = Expected {
            protocol: ExpectedVersion::V2 {
                adver_int: Seconds(2),
                auth: Auth::Pass(Password::from_config("aminglinux")),
            },
            ..expected_v2()
        };
        assert_eq!(
            validate(&repr_v2(150), &expected, true),
            Err(Rejection::IntervalMismatch {
                got: Seconds(1),
                expected: Seconds(2)
            })
        );
    }

    #[test]
    fn validate_v3_learns_the_interval() {
        let mut repr = repr_v3_ipv4();
        repr.variant = Variant::V3 {
            max_adver_int: Centiseconds(37),
        };
        let expected = Expected {
            vrid: vrid(52),
            protocol: ExpectedVersion::V3,
            addresses: None,
        };
        assert_eq!(validate(&repr, &expected, true), Ok(()));
    }

    #[test]
    fn validate_address_count_mismatch() {
        let expected = Expected {
            addresses: Some(Addresses::V4(vec![
                Ipv4Addr::new(10, 99, 0, 100),
                Ipv4Addr::new(10, 99, 0, 101),
            ])),
            ..expected_v2()
        };
        assert_eq!(
            validate(&repr_v2(150), &expected, true),
            Err(Rejection::AddressCountMismatch {
                got: 1,
                expected: 2
            })
        );
    }

    #[test]
    fn validate_address_mismatch() {
        let expected = Expected {
            addresses: Some(Addresses::V4(vec![Ipv4Addr::new(10, 99, 0, 200)])),
            ..expected_v2()
        };
        assert_eq!(
            validate(&repr_v2(150), &expected, true),
            Err(Rejection::AddressMismatch {
                missing: "10.99.0.200".parse().unwrap()
            })
        );
        // The order of the addresses does not matter.
        let mut repr = repr_v3_ipv4();
        repr.addresses = Addresses::V4(vec![
            Ipv4Addr::new(10, 99, 0, 101),
            Ipv4Addr::new(10, 99, 0, 100),
        ]);
        let expected = Expected {
            vrid: vrid(52),
            protocol: ExpectedVersion::V3,
            addresses: Some(repr_v3_ipv4().addresses),
        };
        assert_eq!(validate(&repr, &expected, true), Ok(()));
    }

    #[test]
    fn validate_address_check_can_be_skipped() {
        let expected = Expected {
            addresses: None,
            ..expected_v2()
        };
        let mut repr = repr_v2(150);
        repr.addresses = Addresses::V4(vec![]);
        assert_eq!(validate(&repr, &expected, true), Ok(()));
    }

    #[test]
    fn parse_errors_are_rejections() {
        let bytes = altered(&V2_PRIO150, &ctx_v2(), |p| p.set_msg_type(7));
        let rejection: Rejection = parse(&bytes, &ctx_v2()).unwrap_err().into();
        assert_eq!(rejection, Rejection::BadType(7));
    }

    #[test]
    fn password_wire_form() {
        assert_eq!(Password::from_config("aminglinux").0, *b"aminglin");
        assert_eq!(Password::from_config("1111").0, *b"1111\0\0\0\0");
        assert_eq!(Password::from_config("1111").to_text(), "1111");
        assert_eq!(Password(*b"a\"b\x01\0zzz").to_text(), "a\\\"b\\x01");
        assert_eq!(
            format!("{:?}", Password::from_config("secret")),
            "Password(..)"
        );
    }

    #[test]
    fn emit_refuses_what_does_not_fit() {
        let mut buf = [0u8; 64];
        let v6 = ctx_v3_ipv6();
        let mut repr = repr_v3_ipv4();
        assert_eq!(
            repr.emit(&mut Packet::new_unchecked(&mut buf[..16]), &v6),
            Err(EmitError::FamilyMismatch {
                addresses: Family::Ipv4,
                ip: Family::Ipv6
            })
        );
        assert_eq!(
            repr.emit(&mut Packet::new_unchecked(&mut buf[..]), &ctx_v3_ipv4()),
            Err(EmitError::BufferLength { len: 64, need: 16 })
        );
        repr.variant = Variant::V3 {
            max_adver_int: Centiseconds(4096),
        };
        assert_eq!(
            repr.emit(&mut Packet::new_unchecked(&mut buf[..16]), &ctx_v3_ipv4()),
            Err(EmitError::IntervalTooLong(4096))
        );
        repr.variant = Variant::V3 {
            max_adver_int: Centiseconds(100),
        };
        repr.addresses = Addresses::V4(vec![Ipv4Addr::LOCALHOST; 256]);
        assert_eq!(
            repr.emit(&mut Packet::new_unchecked(&mut buf[..]), &ctx_v3_ipv4()),
            Err(EmitError::TooManyAddresses(256))
        );
        let mut repr = repr_v3_ipv6();
        repr.variant = Variant::V2 {
            adver_int: Seconds(1),
            auth: Auth::None,
        };
        assert_eq!(
            repr.emit(&mut Packet::new_unchecked(&mut buf[..]), &v6),
            Err(EmitError::V2OverIpv6)
        );
    }

    fn arb_ctx_v4() -> impl Strategy<Value = IpContext> {
        (any::<Ipv4Addr>(), any::<Ipv4Addr>()).prop_map(|(src, dst)| IpContext::V4 {
            src,
            dst,
            ttl: 255,
        })
    }

    fn arb_ctx_v6() -> impl Strategy<Value = IpContext> {
        (any::<Ipv6Addr>(), any::<Ipv6Addr>()).prop_map(|(src, dst)| IpContext::V6 {
            src,
            dst,
            hop_limit: 255,
        })
    }

    fn arb_auth() -> impl Strategy<Value = Auth> {
        prop_oneof![
            Just(Auth::None),
            Just(Auth::Ah),
            any::<[u8; 8]>().prop_map(|p| Auth::Pass(Password(p))),
        ]
    }

    fn arb_head() -> impl Strategy<Value = (Vrid, Priority)> {
        (1u32..=255, any::<u8>()).prop_map(|(v, p)| (vrid(v), Priority::from_u8(p)))
    }

    /// (repr, ctx) for each of v2/IPv4, v3/IPv4, v3/IPv6.
    fn arb_repr_ctx() -> impl Strategy<Value = (Repr, IpContext)> {
        let v4_addrs = proptest::collection::vec(any::<Ipv4Addr>(), 0..=20).prop_map(Addresses::V4);
        let v6_addrs = proptest::collection::vec(any::<Ipv6Addr>(), 0..=20).prop_map(Addresses::V6);
        let v2 = (
            arb_head(),
            any::<u8>(),
            arb_auth(),
            v4_addrs.clone(),
            arb_ctx_v4(),
        )
            .prop_map(|((vrid, priority), secs, auth, addresses, ctx)| {
                let variant = Variant::V2 {
                    adver_int: Seconds(secs),
                    auth,
                };
                (
                    Repr {
                        vrid,
                        priority,
                        variant,
                        addresses,
                    },
                    ctx,
                )
            });
        let v3 = |addrs: BoxedStrategy<Addresses>, ctx: BoxedStrategy<IpContext>| {
            (arb_head(), 0..=MAX_ADVER_INT_MAX, addrs, ctx).prop_map(
                |((vrid, priority), cs, addresses, ctx)| {
                    let variant = Variant::V3 {
                        max_adver_int: Centiseconds(cs),
                    };
                    (
                        Repr {
                            vrid,
                            priority,
                            variant,
                            addresses,
                        },
                        ctx,
                    )
                },
            )
        };
        prop_oneof![
            v2,
            v3(v4_addrs.boxed(), arb_ctx_v4().boxed()),
            v3(v6_addrs.boxed(), arb_ctx_v6().boxed()),
        ]
    }

    proptest! {
        #[test]
        fn emit_then_parse_round_trips((repr, ctx) in arb_repr_ctx()) {
            let bytes = emit(&repr, &ctx);
            let packet = Packet::new_checked(&bytes[..]).unwrap();
            prop_assert!(packet.verify_checksum(&ctx));
            prop_assert_eq!(Repr::parse(&packet, &ctx), Ok(repr));
        }

        #[test]
        fn arbitrary_bytes_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..200),
            ctx in prop_oneof![arb_ctx_v4(), arb_ctx_v6()],
            ttl in any::<u8>(),
        ) {
            let ctx = match ctx {
                IpContext::V4 { src, dst, .. } => IpContext::V4 { src, dst, ttl },
                IpContext::V6 { src, dst, .. } => IpContext::V6 { src, dst, hop_limit: ttl },
            };
            if let Ok(packet) = Packet::new_checked(&bytes[..]) {
                let _ = (packet.version(), packet.msg_type(), packet.vrid(), packet.priority());
                let _ = (packet.count(), packet.auth_type(), packet.adver_int(), packet.reserved());
                let _ = (packet.max_adver_int(), packet.checksum(), packet.auth_data());
                let _ = (packet.ipv4_addresses().count(), packet.ipv6_addresses().count());
                let _ = (packet.verify_checksum(&ctx), packet.compute_checksum(&ctx));
                if let Ok(repr) = Repr::parse(&packet, &ctx) {
                    // Whatever parses is a valid advertisement: it re-emits to the same bytes
                    // (less what receivers ignore).
                    let again = emit(&repr, &ctx);
                    prop_assert_eq!(Repr::parse(&Packet::new_checked(&again[..]).unwrap(), &ctx), Ok(repr));
                }
            }
            // Bytes checked only for the header: the variable part's
            // accessors must cope with whatever follows.
            let packet = Packet::new_unchecked(&bytes[..]);
            if packet.check_header_len().is_ok() {
                let _ = (packet.address_bytes().len(), packet.auth_data(), packet.verify_checksum(&ctx));
                let _ = (packet.ipv4_addresses().count(), packet.ipv6_addresses().count());
            }
        }
    }
}
