//! The IPVS generic netlink attributes, encoded and decoded in one place,
//! after the kernel's `include/uapi/linux/ip_vs.h` (attribute numbers) and
//! `net/netfilter/ipvs/ip_vs_ctl.c` (their types):
//!
//! - command level (`IPVS_CMD_ATTR_*`): [`CmdAttr`], with the service,
//!   destination and daemon ones nested;
//! - service (`IPVS_SVC_ATTR_*`): [`SvcAttr`];
//! - destination (`IPVS_DEST_ATTR_*`): [`DestAttr`];
//! - sync daemon (`IPVS_DAEMON_ATTR_*`): [`DaemonAttr`];
//! - `IPVS_CMD_GET_INFO`'s answer (`IPVS_INFO_ATTR_*`): [`InfoAttr`];
//! - a service's or destination's counters and rates
//!   (`IPVS_STATS_ATTR_*`, nested in `*_ATTR_STATS` and `*_ATTR_STATS64`):
//!   [`Stats`].
//!
//! Byte order follows ipvsadm's libipvs: ports are in network order inside
//! a host-order `u16` attribute, addresses are the 16-byte
//! `union nf_inet_addr`, and an IPv4 persistence netmask is the mask in
//! network order while an IPv6 one is a host-order prefix length.
//! Nested attributes go without `NLA_F_NESTED`, as libnl sends them; the
//! kernel accepts both.

use netlink_packet_core::{
    DecodeError, DefaultNla, Emitable, Nla, NlaBuffer, NlasIterator, Parseable, parse_string,
    parse_u8, parse_u16, parse_u16_be, parse_u32, parse_u32_be, parse_u64,
};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const SVC_AF: u16 = 1;
const SVC_PROTOCOL: u16 = 2;
const SVC_ADDR: u16 = 3;
const SVC_PORT: u16 = 4;
const SVC_FWMARK: u16 = 5;
const SVC_SCHED_NAME: u16 = 6;
const SVC_FLAGS: u16 = 7;
const SVC_TIMEOUT: u16 = 8;
const SVC_NETMASK: u16 = 9;
const SVC_STATS: u16 = 10;
const SVC_PE_NAME: u16 = 11;
const SVC_STATS64: u16 = 12;

const DEST_ADDR: u16 = 1;
const DEST_PORT: u16 = 2;
const DEST_FWD_METHOD: u16 = 3;
const DEST_WEIGHT: u16 = 4;
const DEST_U_THRESH: u16 = 5;
const DEST_L_THRESH: u16 = 6;
const DEST_ACTIVE_CONNS: u16 = 7;
const DEST_INACT_CONNS: u16 = 8;
const DEST_PERSIST_CONNS: u16 = 9;
const DEST_STATS: u16 = 10;
const DEST_ADDR_FAMILY: u16 = 11;
const DEST_STATS64: u16 = 12;

const DAEMON_STATE: u16 = 1;
const DAEMON_MCAST_IFN: u16 = 2;
const DAEMON_SYNC_ID: u16 = 3;
const DAEMON_SYNC_MAXLEN: u16 = 4;
const DAEMON_MCAST_GROUP: u16 = 5;
const DAEMON_MCAST_GROUP6: u16 = 6;
const DAEMON_MCAST_PORT: u16 = 7;
const DAEMON_MCAST_TTL: u16 = 8;

const CMD_SERVICE: u16 = 1;
const CMD_DEST: u16 = 2;
const CMD_DAEMON: u16 = 3;
const CMD_TIMEOUT_TCP: u16 = 4;
const CMD_TIMEOUT_TCP_FIN: u16 = 5;
const CMD_TIMEOUT_UDP: u16 = 6;

const INFO_VERSION: u16 = 1;
const INFO_CONN_TAB_SIZE: u16 = 2;

/// `IPVS_STATS_ATTR_CONNS` to `IPVS_STATS_ATTR_OUTBPS`, in order.
const STATS_KINDS: std::ops::RangeInclusive<u16> = 1..=10;
/// `IPVS_STATS_ATTR_INBYTES` and `_OUTBYTES`: 64 bits in `*_ATTR_STATS`
/// too, where the others are 32.
const STATS_BYTES: [u16; 2] = [4, 5];

/// Address families as the kernel numbers them.
pub const AF_INET: u16 = 2;
pub const AF_INET6: u16 = 10;

/// `union nf_inet_addr`: an IPv4 address fills the first 4 of 16 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InetAddr(pub [u8; 16]);

impl InetAddr {
    pub fn from_ip(ip: IpAddr) -> Self {
        let mut bytes = [0u8; 16];
        match ip {
            IpAddr::V4(v4) => {
                for (slot, b) in bytes.iter_mut().zip(v4.octets()) {
                    *slot = b;
                }
            }
            IpAddr::V6(v6) => bytes = v6.octets(),
        }
        Self(bytes)
    }

    /// The address read as IPv4: its first 4 bytes.
    pub fn ipv4(self) -> Ipv4Addr {
        let b = self.0;
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }

    /// The address read as IPv6.
    pub fn ipv6(self) -> Ipv6Addr {
        Ipv6Addr::from(self.0)
    }

    fn parse(value: &[u8]) -> Result<Self, DecodeError> {
        // The kernel copies what it is given into a zeroed union, and so do we.
        if value.len() > 16 {
            return Err(format!("address of {} bytes, at most 16", value.len()).into());
        }
        let mut bytes = [0u8; 16];
        for (slot, b) in bytes.iter_mut().zip(value) {
            *slot = *b;
        }
        Ok(Self(bytes))
    }
}

/// Service flags (`IP_VS_SVC_F_*`) and `struct ip_vs_flags`.
pub mod flags {
    pub const PERSISTENT: u32 = 0x0001;
    /// Set by the kernel on every service it holds.
    pub const HASHED: u32 = 0x0002;
    pub const ONEPACKET: u32 = 0x0004;
    pub const SCHED1: u32 = 0x0008;
    pub const SCHED2: u32 = 0x0010;
    pub const SCHED3: u32 = 0x0020;
}

/// A service's or destination's statistics (`struct ip_vs_kstats`):
/// counters since it was added, and the kernel estimator's rates (per
/// second, averaged over a few seconds).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Connections scheduled.
    pub conns: u64,
    pub in_pkts: u64,
    pub out_pkts: u64,
    pub in_bytes: u64,
    pub out_bytes: u64,
    /// Connections per second.
    pub cps: u64,
    pub in_pps: u64,
    pub out_pps: u64,
    /// Bytes per second.
    pub in_bps: u64,
    pub out_bps: u64,
}

impl Stats {
    fn fields(&self) -> [u64; 10] {
        [
            self.conns,
            self.in_pkts,
            self.out_pkts,
            self.in_bytes,
            self.out_bytes,
            self.cps,
            self.in_pps,
            self.out_pps,
            self.in_bps,
            self.out_bps,
        ]
    }

    fn field(&mut self, kind: u16) -> Option<&mut u64> {
        Some(match kind {
            1 => &mut self.conns,
            2 => &mut self.in_pkts,
            3 => &mut self.out_pkts,
            4 => &mut self.in_bytes,
            5 => &mut self.out_bytes,
            6 => &mut self.cps,
            7 => &mut self.in_pps,
            8 => &mut self.out_pps,
            9 => &mut self.in_bps,
            10 => &mut self.out_bps,
            _ => return None,
        })
    }

    /// The width of `kind`'s value: all 64 bits in `*_ATTR_STATS64`.
    fn width(kind: u16, wide: bool) -> usize {
        if wide || STATS_BYTES.contains(&kind) {
            8
        } else {
            4
        }
    }

    fn value_len(wide: bool) -> usize {
        STATS_KINDS.map(|k| 4 + Self::width(k, wide)).sum()
    }

    fn emit(&self, buffer: &mut [u8], wide: bool) {
        let mut at = 0;
        for (kind, value) in STATS_KINDS.zip(self.fields()) {
            let width = Self::width(kind, wide);
            let len = u16::try_from(4 + width).unwrap_or(u16::MAX);
            buffer[at..at + 2].copy_from_slice(&len.to_ne_bytes());
            buffer[at + 2..at + 4].copy_from_slice(&kind.to_ne_bytes());
            match width {
                8 => buffer[at + 4..at + 12].copy_from_slice(&value.to_ne_bytes()),
                _ => buffer[at + 4..at + 8]
                    .copy_from_slice(&u32::try_from(value).unwrap_or(u32::MAX).to_ne_bytes()),
            }
            at += 4 + width;
        }
    }

    /// The nested attributes of either form: each value is read by its
    /// length, so a kernel that widens one still reads right; unknown
    /// ones (`IPVS_STATS_ATTR_PAD`, newer) are skipped.
    fn parse(value: &[u8]) -> Result<Self, DecodeError> {
        let mut stats = Self::default();
        for nla in NlasIterator::new(value) {
            let nla = nla?;
            let v = nla.value();
            let number = match v.len() {
                4 => u64::from(parse_u32(v)?),
                8 => parse_u64(v)?,
                _ => continue,
            };
            if let Some(field) = stats.field(nla.kind()) {
                *field = number;
            }
        }
        Ok(stats)
    }
}

/// A service attribute (nested in [`CmdAttr::Service`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SvcAttr {
    /// `AF_INET` or `AF_INET6`.
    Family(u16),
    /// IP protocol number.
    Protocol(u16),
    Addr(InetAddr),
    Port(u16),
    Fwmark(u32),
    SchedName(String),
    /// `struct ip_vs_flags`: which bits to set (`mask`) to what (`flags`).
    Flags {
        flags: u32,
        mask: u32,
    },
    /// Persistence timeout in seconds.
    Timeout(u32),
    /// The 4 bytes as sent: see the module documentation.
    Netmask([u8; 4]),
    /// Persistence engine (`sip`).
    PeName(String),
    /// `IPVS_SVC_ATTR_STATS`: the older form, some counters 32 bits.
    Stats(Stats),
    /// `IPVS_SVC_ATTR_STATS64`.
    Stats64(Stats),
    /// Anything newer kernels add.
    Other(DefaultNla),
}

/// A destination attribute (nested in [`CmdAttr::Dest`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DestAttr {
    Addr(InetAddr),
    Port(u16),
    /// `IP_VS_CONN_F_MASQ` 0, `LOCALNODE` 1, `TUNNEL` 2, `DROUTE` 3.
    FwdMethod(u32),
    Weight(u32),
    UThreshold(u32),
    LThreshold(u32),
    ActiveConns(u32),
    InactiveConns(u32),
    PersistentConns(u32),
    /// The destination's own family (it may differ from the service's
    /// with tunnelling).
    AddrFamily(u16),
    /// `IPVS_DEST_ATTR_STATS`: the older form, some counters 32 bits.
    Stats(Stats),
    /// `IPVS_DEST_ATTR_STATS64`.
    Stats64(Stats),
    Other(DefaultNla),
}

/// A sync daemon attribute (nested in [`CmdAttr::Daemon`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DaemonAttr {
    /// `IP_VS_STATE_MASTER` 1 or `IP_VS_STATE_BACKUP` 2.
    State(u32),
    /// Interface the daemon sends or listens on.
    McastIfn(String),
    SyncId(u32),
    /// Largest sync message payload.
    SyncMaxlen(u16),
    McastGroup(Ipv4Addr),
    McastGroup6(Ipv6Addr),
    /// UDP port, host order.
    McastPort(u16),
    McastTtl(u8),
    Other(DefaultNla),
}

/// A command-level attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CmdAttr {
    Service(Vec<SvcAttr>),
    Dest(Vec<DestAttr>),
    Daemon(Vec<DaemonAttr>),
    /// Seconds.
    TimeoutTcp(u32),
    TimeoutTcpFin(u32),
    TimeoutUdp(u32),
    Other(DefaultNla),
}

/// An attribute of `IPVS_CMD_GET_INFO`'s answer. Its numbers overlap
/// [`CmdAttr`]'s, so the command decides which enum a message holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InfoAttr {
    /// `IP_VS_VERSION_CODE`: 0x010201 is 1.2.1.
    Version(u32),
    /// Size of the connection hash table.
    ConnTabSize(u32),
    Other(DefaultNla),
}

fn emit_string(buffer: &mut [u8], s: &str) {
    let bytes = s.as_bytes();
    buffer[..bytes.len()].copy_from_slice(bytes);
    buffer[bytes.len()] = 0;
}

fn emit_nested<T: Nla>(buffer: &mut [u8], attrs: &[T]) {
    attrs.emit(buffer)
}

fn nested_len<T: Nla>(attrs: &[T]) -> usize {
    attrs.buffer_len()
}

/// Every attribute in `value`, parsed as `A`.
pub fn parse_all<A>(value: &[u8]) -> Result<Vec<A>, DecodeError>
where
    A: for<'a> Parseable<NlaBuffer<&'a [u8]>>,
{
    NlasIterator::new(value)
        .map(|nla| nla.and_then(|nla| A::parse(&nla)))
        .collect()
}

fn port_be(value: &[u8]) -> Result<u16, DecodeError> {
    parse_u16_be(value)
}

impl Nla for SvcAttr {
    fn value_len(&self) -> usize {
        match self {
            Self::Family(_) | Self::Protocol(_) | Self::Port(_) => 2,
            Self::Fwmark(_) | Self::Timeout(_) | Self::Netmask(_) => 4,
            Self::Addr(_) => 16,
            Self::SchedName(s) | Self::PeName(s) => s.len() + 1,
            Self::Flags { .. } => 8,
            Self::Stats(_) => Stats::value_len(false),
            Self::Stats64(_) => Stats::value_len(true),
            Self::Other(nla) => nla.value_len(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            Self::Family(_) => SVC_AF,
            Self::Protocol(_) => SVC_PROTOCOL,
            Self::Addr(_) => SVC_ADDR,
            Self::Port(_) => SVC_PORT,
            Self::Fwmark(_) => SVC_FWMARK,
            Self::SchedName(_) => SVC_SCHED_NAME,
            Self::Flags { .. } => SVC_FLAGS,
            Self::Timeout(_) => SVC_TIMEOUT,
            Self::Netmask(_) => SVC_NETMASK,
            Self::PeName(_) => SVC_PE_NAME,
            Self::Stats(_) => SVC_STATS,
            Self::Stats64(_) => SVC_STATS64,
            Self::Other(nla) => nla.kind(),
        }
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        match self {
            Self::Family(v) | Self::Protocol(v) => buffer[..2].copy_from_slice(&v.to_ne_bytes()),
            Self::Port(p) => buffer[..2].copy_from_slice(&p.to_be_bytes()),
            Self::Fwmark(v) | Self::Timeout(v) => buffer[..4].copy_from_slice(&v.to_ne_bytes()),
            Self::Addr(a) => buffer[..16].copy_from_slice(&a.0),
            Self::SchedName(s) | Self::PeName(s) => emit_string(buffer, s),
            Self::Flags { flags, mask } => {
                buffer[..4].copy_from_slice(&flags.to_ne_bytes());
                buffer[4..8].copy_from_slice(&mask.to_ne_bytes());
            }
            Self::Netmask(bytes) => buffer[..4].copy_from_slice(bytes),
            Self::Stats(stats) => stats.emit(buffer, false),
            Self::Stats64(stats) => stats.emit(buffer, true),
            Self::Other(nla) => nla.emit_value(buffer),
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Parseable<NlaBuffer<&'a T>> for SvcAttr {
    fn parse(buf: &NlaBuffer<&'a T>) -> Result<Self, DecodeError> {
        let v = buf.value();
        Ok(match buf.kind() {
            SVC_AF => Self::Family(parse_u16(v)?),
            SVC_PROTOCOL => Self::Protocol(parse_u16(v)?),
            SVC_ADDR => Self::Addr(InetAddr::parse(v)?),
            SVC_PORT => Self::Port(port_be(v)?),
            SVC_FWMARK => Self::Fwmark(parse_u32(v)?),
            SVC_SCHED_NAME => Self::SchedName(parse_string(v)?),
            SVC_FLAGS => {
                let (Some(f), Some(m)) = (v.get(..4), v.get(4..8)) else {
                    return Err(format!("service flags of {} bytes, want 8", v.len()).into());
                };
                Self::Flags {
                    flags: parse_u32(f)?,
                    mask: parse_u32(m)?,
                }
            }
            SVC_TIMEOUT => Self::Timeout(parse_u32(v)?),
            SVC_NETMASK => Self::Netmask(
                v.try_into()
                    .map_err(|_| format!("netmask of {} bytes, want 4", v.len()))?,
            ),
            SVC_PE_NAME => Self::PeName(parse_string(v)?),
            SVC_STATS => Self::Stats(Stats::parse(v)?),
            SVC_STATS64 => Self::Stats64(Stats::parse(v)?),
            _ => Self::Other(DefaultNla::parse(buf)?),
        })
    }
}

impl Nla for DestAttr {
    fn value_len(&self) -> usize {
        match self {
            Self::Addr(_) => 16,
            Self::Port(_) | Self::AddrFamily(_) => 2,
            Self::FwdMethod(_)
            | Self::Weight(_)
            | Self::UThreshold(_)
            | Self::LThreshold(_)
            | Self::ActiveConns(_)
            | Self::InactiveConns(_)
            | Self::PersistentConns(_) => 4,
            Self::Stats(_) => Stats::value_len(false),
            Self::Stats64(_) => Stats::value_len(true),
            Self::Other(nla) => nla.value_len(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            Self::Addr(_) => DEST_ADDR,
            Self::Port(_) => DEST_PORT,
            Self::FwdMethod(_) => DEST_FWD_METHOD,
            Self::Weight(_) => DEST_WEIGHT,
            Self::UThreshold(_) => DEST_U_THRESH,
            Self::LThreshold(_) => DEST_L_THRESH,
            Self::ActiveConns(_) => DEST_ACTIVE_CONNS,
            Self::InactiveConns(_) => DEST_INACT_CONNS,
            Self::PersistentConns(_) => DEST_PERSIST_CONNS,
            Self::AddrFamily(_) => DEST_ADDR_FAMILY,
            Self::Stats(_) => DEST_STATS,
            Self::Stats64(_) => DEST_STATS64,
            Self::Other(nla) => nla.kind(),
        }
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        match self {
            Self::Addr(a) => buffer[..16].copy_from_slice(&a.0),
            Self::Port(p) => buffer[..2].copy_from_slice(&p.to_be_bytes()),
            Self::AddrFamily(v) => buffer[..2].copy_from_slice(&v.to_ne_bytes()),
            Self::FwdMethod(v)
            | Self::Weight(v)
            | Self::UThreshold(v)
            | Self::LThreshold(v)
            | Self::ActiveConns(v)
            | Self::InactiveConns(v)
            | Self::PersistentConns(v) => buffer[..4].copy_from_slice(&v.to_ne_bytes()),
            Self::Stats(stats) => stats.emit(buffer, false),
            Self::Stats64(stats) => stats.emit(buffer, true),
            Self::Other(nla) => nla.emit_value(buffer),
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Parseable<NlaBuffer<&'a T>> for DestAttr {
    fn parse(buf: &NlaBuffer<&'a T>) -> Result<Self, DecodeError> {
        let v = buf.value();
        Ok(match buf.kind() {
            DEST_ADDR => Self::Addr(InetAddr::parse(v)?),
            DEST_PORT => Self::Port(port_be(v)?),
            DEST_FWD_METHOD => Self::FwdMethod(parse_u32(v)?),
            DEST_WEIGHT => Self::Weight(parse_u32(v)?),
            DEST_U_THRESH => Self::UThreshold(parse_u32(v)?),
            DEST_L_THRESH => Self::LThreshold(parse_u32(v)?),
            DEST_ACTIVE_CONNS => Self::ActiveConns(parse_u32(v)?),
            DEST_INACT_CONNS => Self::InactiveConns(parse_u32(v)?),
            DEST_PERSIST_CONNS => Self::PersistentConns(parse_u32(v)?),
            DEST_ADDR_FAMILY => Self::AddrFamily(parse_u16(v)?),
            DEST_STATS => Self::Stats(Stats::parse(v)?),
            DEST_STATS64 => Self::Stats64(Stats::parse(v)?),
            _ => Self::Other(DefaultNla::parse(buf)?),
        })
    }
}

impl Nla for DaemonAttr {
    fn value_len(&self) -> usize {
        match self {
            Self::State(_) | Self::SyncId(_) | Self::McastGroup(_) => 4,
            Self::McastIfn(s) => s.len() + 1,
            Self::SyncMaxlen(_) | Self::McastPort(_) => 2,
            Self::McastGroup6(_) => 16,
            Self::McastTtl(_) => 1,
            Self::Other(nla) => nla.value_len(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            Self::State(_) => DAEMON_STATE,
            Self::McastIfn(_) => DAEMON_MCAST_IFN,
            Self::SyncId(_) => DAEMON_SYNC_ID,
            Self::SyncMaxlen(_) => DAEMON_SYNC_MAXLEN,
            Self::McastGroup(_) => DAEMON_MCAST_GROUP,
            Self::McastGroup6(_) => DAEMON_MCAST_GROUP6,
            Self::McastPort(_) => DAEMON_MCAST_PORT,
            Self::McastTtl(_) => DAEMON_MCAST_TTL,
            Self::Other(nla) => nla.kind(),
        }
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        match self {
            Self::State(v) | Self::SyncId(v) => buffer[..4].copy_from_slice(&v.to_ne_bytes()),
            Self::McastIfn(s) => emit_string(buffer, s),
            Self::SyncMaxlen(v) | Self::McastPort(v) => {
                buffer[..2].copy_from_slice(&v.to_ne_bytes())
            }
            Self::McastGroup(a) => buffer[..4].copy_from_slice(&a.octets()),
            Self::McastGroup6(a) => buffer[..16].copy_from_slice(&a.octets()),
            Self::McastTtl(t) => buffer[0] = *t,
            Self::Other(nla) => nla.emit_value(buffer),
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Parseable<NlaBuffer<&'a T>> for DaemonAttr {
    fn parse(buf: &NlaBuffer<&'a T>) -> Result<Self, DecodeError> {
        let v = buf.value();
        Ok(match buf.kind() {
            DAEMON_STATE => Self::State(parse_u32(v)?),
            DAEMON_MCAST_IFN => Self::McastIfn(parse_string(v)?),
            DAEMON_SYNC_ID => Self::SyncId(parse_u32(v)?),
            DAEMON_SYNC_MAXLEN => Self::SyncMaxlen(parse_u16(v)?),
            DAEMON_MCAST_GROUP => Self::McastGroup(Ipv4Addr::from(parse_u32_be(v)?)),
            DAEMON_MCAST_GROUP6 => {
                let bytes: [u8; 16] = v
                    .try_into()
                    .map_err(|_| format!("IPv6 group of {} bytes", v.len()))?;
                Self::McastGroup6(Ipv6Addr::from(bytes))
            }
            DAEMON_MCAST_PORT => Self::McastPort(parse_u16(v)?),
            DAEMON_MCAST_TTL => Self::McastTtl(parse_u8(v)?),
            _ => Self::Other(DefaultNla::parse(buf)?),
        })
    }
}

impl Nla for CmdAttr {
    fn value_len(&self) -> usize {
        match self {
            Self::Service(a) => nested_len(a),
            Self::Dest(a) => nested_len(a),
            Self::Daemon(a) => nested_len(a),
            Self::TimeoutTcp(_) | Self::TimeoutTcpFin(_) | Self::TimeoutUdp(_) => 4,
            Self::Other(nla) => nla.value_len(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            Self::Service(_) => CMD_SERVICE,
            Self::Dest(_) => CMD_DEST,
            Self::Daemon(_) => CMD_DAEMON,
            Self::TimeoutTcp(_) => CMD_TIMEOUT_TCP,
            Self::TimeoutTcpFin(_) => CMD_TIMEOUT_TCP_FIN,
            Self::TimeoutUdp(_) => CMD_TIMEOUT_UDP,
            Self::Other(nla) => nla.kind(),
        }
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        match self {
            Self::Service(a) => emit_nested(buffer, a),
            Self::Dest(a) => emit_nested(buffer, a),
            Self::Daemon(a) => emit_nested(buffer, a),
            Self::TimeoutTcp(v) | Self::TimeoutTcpFin(v) | Self::TimeoutUdp(v) => {
                buffer[..4].copy_from_slice(&v.to_ne_bytes())
            }
            Self::Other(nla) => nla.emit_value(buffer),
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Parseable<NlaBuffer<&'a T>> for CmdAttr {
    fn parse(buf: &NlaBuffer<&'a T>) -> Result<Self, DecodeError> {
        let v = buf.value();
        Ok(match buf.kind() {
            CMD_SERVICE => Self::Service(parse_all(v)?),
            CMD_DEST => Self::Dest(parse_all(v)?),
            CMD_DAEMON => Self::Daemon(parse_all(v)?),
            CMD_TIMEOUT_TCP => Self::TimeoutTcp(parse_u32(v)?),
            CMD_TIMEOUT_TCP_FIN => Self::TimeoutTcpFin(parse_u32(v)?),
            CMD_TIMEOUT_UDP => Self::TimeoutUdp(parse_u32(v)?),
            _ => Self::Other(DefaultNla::parse(buf)?),
        })
    }
}

impl Nla for InfoAttr {
    fn value_len(&self) -> usize {
        match self {
            Self::Version(_) | Self::ConnTabSize(_) => 4,
            Self::Other(nla) => nla.value_len(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            Self::Version(_) => INFO_VERSION,
            Self::ConnTabSize(_) => INFO_CONN_TAB_SIZE,
            Self::Other(nla) => nla.kind(),
        }
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        match self {
            Self::Version(v) | Self::ConnTabSize(v) => {
                buffer[..4].copy_from_slice(&v.to_ne_bytes())
            }
            Self::Other(nla) => nla.emit_value(buffer),
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Parseable<NlaBuffer<&'a T>> for InfoAttr {
    fn parse(buf: &NlaBuffer<&'a T>) -> Result<Self, DecodeError> {
        let v = buf.value();
        Ok(match buf.kind() {
            INFO_VERSION => Self::Version(parse_u32(v)?),
            INFO_CONN_TAB_SIZE => Self::ConnTabSize(parse_u32(v)?),
            _ => Self::Other(DefaultNla::parse(buf)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes<T: Nla>(attr: &T) -> Vec<u8> {
        let mut buf = vec![0xaa; attr.buffer_len()];
        attr.emit(&mut buf);
        buf
    }

    fn roundtrip<A>(attr: A)
    where
        A: Nla + PartialEq + std::fmt::Debug + for<'a> Parseable<NlaBuffer<&'a [u8]>>,
    {
        let buf = bytes(&attr);
        let parsed: Vec<A> = parse_all(&buf).unwrap();
        assert_eq!(parsed, [attr]);
    }

    #[test]
    fn port_goes_in_network_order() {
        // len 6, type 4, 0x1f90 = 8080 big-endian, 2 bytes padding.
        assert_eq!(bytes(&SvcAttr::Port(8080)), [6, 0, 4, 0, 0x1f, 0x90, 0, 0]);
        assert_eq!(bytes(&DestAttr::Port(80)), [6, 0, 2, 0, 0, 80, 0, 0]);
    }

    #[test]
    fn ipv4_address_fills_the_union_front() {
        let b = bytes(&SvcAttr::Addr(InetAddr::from_ip(
            "10.0.1.100".parse().unwrap(),
        )));
        assert_eq!(b[..4], [20, 0, 3, 0]);
        assert_eq!(b[4..8], [10, 0, 1, 100]);
        assert!(b[8..].iter().all(|x| *x == 0));
    }

    #[test]
    fn a_4_byte_address_decodes_too() {
        let a = InetAddr::parse(&[192, 0, 2, 1]).unwrap();
        assert_eq!(IpAddr::V4(a.ipv4()), "192.0.2.1".parse::<IpAddr>().unwrap());
        assert!(InetAddr::parse(&[0; 17]).is_err());
    }

    #[test]
    fn scheduler_name_is_nul_terminated_and_padded() {
        assert_eq!(
            bytes(&SvcAttr::SchedName("wrr".into())),
            [8, 0, 6, 0, b'w', b'r', b'r', 0]
        );
        assert_eq!(
            bytes(&SvcAttr::SchedName("lblcr".into())),
            [10, 0, 6, 0, b'l', b'b', b'l', b'c', b'r', 0, 0, 0]
        );
    }

    #[test]
    fn flags_are_two_host_order_words() {
        assert_eq!(
            bytes(&SvcAttr::Flags {
                flags: flags::PERSISTENT,
                mask: u32::MAX
            }),
            [12, 0, 7, 0, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]
        );
    }

    #[test]
    fn nested_service_has_no_nested_flag() {
        let b = bytes(&CmdAttr::Service(vec![
            SvcAttr::Family(AF_INET),
            SvcAttr::Fwmark(5),
        ]));
        assert_eq!(
            b,
            [20, 0, 1, 0, 6, 0, 1, 0, 2, 0, 0, 0, 8, 0, 5, 0, 5, 0, 0, 0]
        );
    }

    #[test]
    fn every_attribute_roundtrips() {
        for a in [
            SvcAttr::Family(AF_INET6),
            SvcAttr::Protocol(132),
            SvcAttr::Addr(InetAddr::from_ip("2001:db8::1".parse().unwrap())),
            SvcAttr::Port(443),
            SvcAttr::Fwmark(7),
            SvcAttr::SchedName("mh".into()),
            SvcAttr::Flags {
                flags: flags::SCHED1 | flags::SCHED2,
                mask: u32::MAX,
            },
            SvcAttr::Timeout(300),
            SvcAttr::Netmask([255, 255, 255, 0]),
            SvcAttr::PeName("sip".into()),
            SvcAttr::Other(DefaultNla::new(13, vec![1, 2, 3, 4])),
            SvcAttr::Stats(some_stats()),
            SvcAttr::Stats64(Stats {
                conns: u64::from(u32::MAX) + 1,
                ..some_stats()
            }),
        ] {
            roundtrip(a);
        }
        for a in [
            DestAttr::Addr(InetAddr::from_ip("10.0.2.11".parse().unwrap())),
            DestAttr::Port(80),
            DestAttr::FwdMethod(3),
            DestAttr::Weight(65535),
            DestAttr::UThreshold(100),
            DestAttr::LThreshold(10),
            DestAttr::ActiveConns(1),
            DestAttr::InactiveConns(2),
            DestAttr::PersistentConns(3),
            DestAttr::AddrFamily(AF_INET),
            DestAttr::Stats(some_stats()),
            DestAttr::Stats64(some_stats()),
        ] {
            roundtrip(a);
        }
        for a in [
            DaemonAttr::State(1),
            DaemonAttr::McastIfn("eth0".into()),
            DaemonAttr::SyncId(51),
            DaemonAttr::SyncMaxlen(1472),
            DaemonAttr::McastGroup(Ipv4Addr::new(224, 0, 0, 81)),
            DaemonAttr::McastGroup6("ff02::8".parse().unwrap()),
            DaemonAttr::McastPort(8848),
            DaemonAttr::McastTtl(1),
        ] {
            roundtrip(a);
        }
        for a in [
            CmdAttr::TimeoutTcp(900),
            CmdAttr::TimeoutTcpFin(120),
            CmdAttr::TimeoutUdp(300),
            CmdAttr::Dest(vec![DestAttr::Port(80), DestAttr::Weight(1)]),
            CmdAttr::Daemon(vec![DaemonAttr::State(2)]),
        ] {
            roundtrip(a);
        }
        for a in [InfoAttr::Version(0x010201), InfoAttr::ConnTabSize(4096)] {
            roundtrip(a);
        }
    }

    fn some_stats() -> Stats {
        Stats {
            conns: 1,
            in_pkts: 2,
            out_pkts: 3,
            in_bytes: 1 << 40,
            out_bytes: 5,
            cps: 6,
            in_pps: 7,
            out_pps: 8,
            in_bps: 9,
            out_bps: 10,
        }
    }

    /// `IPVS_SVC_ATTR_STATS` as the kernel sends it: u32 counters but for
    /// the bytes; a `PAD` attribute and an unknown one are skipped.
    #[test]
    fn the_older_stats_form_reads_by_each_values_length() {
        let mut value = Vec::new();
        for (kind, bytes) in [
            (1u16, 7u32.to_ne_bytes().to_vec()),
            (4, (1u64 << 33).to_ne_bytes().to_vec()),
            (11, vec![0; 8]),
            (99, vec![1, 2, 3]),
        ] {
            let len = u16::try_from(4 + bytes.len()).unwrap();
            value.extend(len.to_ne_bytes());
            value.extend(kind.to_ne_bytes());
            value.extend(&bytes);
            value.resize(value.len().next_multiple_of(4), 0);
        }
        let stats = Stats::parse(&value).unwrap();
        assert_eq!((stats.conns, stats.in_bytes, stats.cps), (7, 1 << 33, 0));
    }

    #[test]
    fn truncated_attributes_are_errors_not_panics() {
        assert!(parse_all::<SvcAttr>(&[8, 0, 7, 0, 1, 0, 0, 0]).is_err());
        assert!(parse_all::<SvcAttr>(&[6, 0, 9, 0, 1, 0, 0, 0]).is_err());
        assert!(parse_all::<DestAttr>(&[5, 0, 4, 0, 1, 0, 0, 0]).is_err());
        assert!(parse_all::<CmdAttr>(&[40, 0, 1, 0]).is_err());
    }
}
