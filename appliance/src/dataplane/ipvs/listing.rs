//! The kernel's IPVS table as read: entries decoded from dump answers with
//! the kernel's own ranges (any scheduler name, any weight), their
//! conversion into the dataplane model, and `ipvsadm -Ln`'s text layout.

use super::message::{af_family, ip_of};
use super::message::{forwarding_from_number, netmask_prefix};
use super::nla::{DaemonAttr, DestAttr, Stats, SvcAttr, flags};
use crate::dataplane::{
    Destination, Family, Forwarding, Persistence, Protocol, SchedFlags, Scheduler, ServiceKey,
    VirtualService, Weight,
};
use serde::Serialize;
use std::fmt::{self, Write};
use std::net::{IpAddr, SocketAddr};

/// A service as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceEntry {
    pub key: ServiceKey,
    pub scheduler: String,
    /// `IP_VS_SVC_F_*` bits.
    pub flags: u32,
    /// Persistence timeout, seconds.
    pub timeout: u32,
    /// Persistence granularity as a prefix length.
    pub netmask_prefix: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pe_name: Option<String>,
    pub stats: Traffic,
    pub destinations: Vec<DestEntry>,
}

/// A destination as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DestEntry {
    pub address: SocketAddr,
    pub forwarding: Forwarding,
    pub weight: u32,
    pub upper_threshold: u32,
    pub lower_threshold: u32,
    pub active_conns: u32,
    pub inactive_conns: u32,
    pub persistent_conns: u32,
    pub stats: Traffic,
}

/// A service's or destination's counters since it was added and the
/// kernel estimator's rates (per second over a few seconds), as
/// `ipvsadm -L --stats` and `--rate` show them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Traffic {
    pub conns: u64,
    pub in_packets: u64,
    pub out_packets: u64,
    pub in_bytes: u64,
    pub out_bytes: u64,
    pub conns_per_second: u64,
    pub in_packets_per_second: u64,
    pub out_packets_per_second: u64,
    pub in_bytes_per_second: u64,
    pub out_bytes_per_second: u64,
}

impl From<Stats> for Traffic {
    fn from(s: Stats) -> Self {
        Self {
            conns: s.conns,
            in_packets: s.in_pkts,
            out_packets: s.out_pkts,
            in_bytes: s.in_bytes,
            out_bytes: s.out_bytes,
            conns_per_second: s.cps,
            in_packets_per_second: s.in_pps,
            out_packets_per_second: s.out_pps,
            in_bytes_per_second: s.in_bps,
            out_bytes_per_second: s.out_bps,
        }
    }
}

impl Traffic {
    /// From counters and rates in [`Traffic::counters`]' order:
    /// connections, packets in and out, bytes in and out.
    pub fn from_parts(counters: [u64; 5], rates: [u64; 5]) -> Self {
        let [conns, in_packets, out_packets, in_bytes, out_bytes] = counters;
        let [
            conns_per_second,
            in_packets_per_second,
            out_packets_per_second,
            in_bytes_per_second,
            out_bytes_per_second,
        ] = rates;
        Self {
            conns,
            in_packets,
            out_packets,
            in_bytes,
            out_bytes,
            conns_per_second,
            in_packets_per_second,
            out_packets_per_second,
            in_bytes_per_second,
            out_bytes_per_second,
        }
    }

    /// Adds `other`'s counters and rates (a real server in several kernel
    /// services of a group).
    pub fn add(&mut self, other: &Traffic) {
        for (a, b) in [
            (&mut self.conns, other.conns),
            (&mut self.in_packets, other.in_packets),
            (&mut self.out_packets, other.out_packets),
            (&mut self.in_bytes, other.in_bytes),
            (&mut self.out_bytes, other.out_bytes),
            (&mut self.conns_per_second, other.conns_per_second),
            (&mut self.in_packets_per_second, other.in_packets_per_second),
            (
                &mut self.out_packets_per_second,
                other.out_packets_per_second,
            ),
            (&mut self.in_bytes_per_second, other.in_bytes_per_second),
            (&mut self.out_bytes_per_second, other.out_bytes_per_second),
        ] {
            *a = a.saturating_add(b);
        }
    }

    fn counters(&self) -> [u64; 5] {
        [
            self.conns,
            self.in_packets,
            self.out_packets,
            self.in_bytes,
            self.out_bytes,
        ]
    }

    fn rates(&self) -> [u64; 5] {
        [
            self.conns_per_second,
            self.in_packets_per_second,
            self.out_packets_per_second,
            self.in_bytes_per_second,
            self.out_bytes_per_second,
        ]
    }
}

/// Which of ipvsadm's tables a listing prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// `ipvsadm -Ln`: schedulers, forwarding, weights, connections.
    Table,
    /// `ipvsadm -Ln --stats`: the counters.
    Stats,
    /// `ipvsadm -Ln --rate`: the rates.
    Rate,
}

/// The whole table with the kernel's IPVS version: what `appliance ipvs
/// list` prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Listing {
    /// `1.2.1`.
    pub version: String,
    /// Connection hash table size.
    pub conn_table_size: u32,
    /// Sorted as ipvsadm sorts: fwmark, family, protocol, address, port.
    pub services: Vec<ServiceEntry>,
}

/// A sync daemon as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DaemonEntry {
    /// `IP_VS_STATE_MASTER` 1 or `IP_VS_STATE_BACKUP` 2.
    pub state: u32,
    pub interface: String,
    pub sync_id: u32,
    /// Sync message payload size (0: not reported).
    pub max_len: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<IpAddr>,
    /// UDP port (0: not reported).
    pub port: u16,
    /// Multicast TTL (0: not reported).
    pub ttl: u8,
}

/// One line as `ipvsadm -L --daemon` prints it.
impl fmt::Display for DaemonEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let role = if self.state == 1 { "master" } else { "backup" };
        write!(
            f,
            "{role} sync daemon (mcast={}, syncid={}",
            self.interface, self.sync_id
        )?;
        if self.max_len != 0 {
            write!(f, ", maxlen={}", self.max_len)?;
        }
        if let Some(group) = self.group {
            write!(f, ", group={group}")?;
        }
        if self.port != 0 {
            write!(f, ", port={}", self.port)?;
        }
        if self.ttl != 0 {
            write!(f, ", ttl={}", self.ttl)?;
        }
        write!(f, ")")
    }
}

/// A service from a dump answer's attributes (destinations empty).
pub fn service_entry(attrs: &[SvcAttr]) -> Result<ServiceEntry, String> {
    let mut af = None;
    let mut protocol = None;
    let mut addr = None;
    let mut port = None;
    let mut fwmark = None;
    let mut scheduler = None;
    let mut svc_flags = 0;
    let mut timeout = 0;
    let mut netmask = None;
    let mut pe_name = None;
    let (mut stats, mut stats64) = (None, None);
    for a in attrs {
        match a {
            SvcAttr::Family(v) => af = Some(*v),
            SvcAttr::Protocol(v) => protocol = Some(*v),
            SvcAttr::Addr(v) => addr = Some(*v),
            SvcAttr::Port(v) => port = Some(*v),
            SvcAttr::Fwmark(v) => fwmark = Some(*v),
            SvcAttr::SchedName(v) => scheduler = Some(v.clone()),
            SvcAttr::Flags { flags, .. } => svc_flags = *flags,
            SvcAttr::Timeout(v) => timeout = *v,
            SvcAttr::Netmask(v) => netmask = Some(*v),
            SvcAttr::PeName(v) if !v.is_empty() => pe_name = Some(v.clone()),
            SvcAttr::Stats(v) => stats = Some(*v),
            SvcAttr::Stats64(v) => stats64 = Some(*v),
            SvcAttr::PeName(_) | SvcAttr::Other(_) => {}
        }
    }
    let af = af.ok_or("service without address family")?;
    let family = af_family(af).ok_or_else(|| format!("service of address family {af}"))?;
    let key = match (fwmark, protocol, addr, port) {
        (Some(mark), ..) if mark != 0 => ServiceKey::Fwmark { family, mark },
        (_, Some(p), Some(addr), Some(port)) => ServiceKey::Socket {
            protocol: Protocol::from_number(p).ok_or_else(|| format!("service of protocol {p}"))?,
            address: SocketAddr::new(ip_of(addr, family), port),
        },
        _ => return Err("service with neither fwmark nor address".into()),
    };
    let netmask = netmask.ok_or_else(|| format!("{key}: no netmask"))?;
    Ok(ServiceEntry {
        key,
        scheduler: scheduler.ok_or_else(|| format!("{key}: no scheduler"))?,
        flags: svc_flags,
        timeout,
        netmask_prefix: netmask_prefix(family, netmask)
            .ok_or_else(|| format!("{key}: netmask {netmask:?} is not a prefix"))?,
        pe_name,
        stats: stats64.or(stats).unwrap_or_default().into(),
        destinations: Vec::new(),
    })
}

/// A destination from a dump answer's attributes; `family` is the
/// service's, used when the kernel does not say the destination's own.
pub fn dest_entry(attrs: &[DestAttr], family: Family) -> Result<DestEntry, String> {
    let mut addr = None;
    let mut port = None;
    let mut af = None;
    let mut entry = DestEntry {
        address: SocketAddr::new(IpAddr::from([0, 0, 0, 0]), 0),
        forwarding: Forwarding::Nat,
        weight: 0,
        upper_threshold: 0,
        lower_threshold: 0,
        active_conns: 0,
        inactive_conns: 0,
        persistent_conns: 0,
        stats: Traffic::default(),
    };
    let mut fwd = None;
    let (mut stats, mut stats64) = (None, None);
    for a in attrs {
        match a {
            DestAttr::Addr(v) => addr = Some(*v),
            DestAttr::Port(v) => port = Some(*v),
            DestAttr::AddrFamily(v) => af = Some(*v),
            DestAttr::FwdMethod(v) => fwd = Some(*v),
            DestAttr::Weight(v) => entry.weight = *v,
            DestAttr::UThreshold(v) => entry.upper_threshold = *v,
            DestAttr::LThreshold(v) => entry.lower_threshold = *v,
            DestAttr::ActiveConns(v) => entry.active_conns = *v,
            DestAttr::InactiveConns(v) => entry.inactive_conns = *v,
            DestAttr::PersistentConns(v) => entry.persistent_conns = *v,
            DestAttr::Stats(v) => stats = Some(*v),
            DestAttr::Stats64(v) => stats64 = Some(*v),
            DestAttr::Other(_) => {}
        }
    }
    entry.stats = stats64.or(stats).unwrap_or_default().into();
    let family = match af {
        Some(n) => af_family(n).ok_or_else(|| format!("destination of address family {n}"))?,
        None => family,
    };
    let (Some(addr), Some(port)) = (addr, port) else {
        return Err("destination without address or port".into());
    };
    entry.address = SocketAddr::new(ip_of(addr, family), port);
    let fwd = fwd.ok_or_else(|| format!("destination {}: no forwarding method", entry.address))?;
    entry.forwarding = forwarding_from_number(fwd)
        .ok_or_else(|| format!("destination {}: forwarding method {fwd}", entry.address))?;
    Ok(entry)
}

/// A sync daemon from a dump answer's attributes.
pub fn daemon_entry(attrs: &[DaemonAttr]) -> DaemonEntry {
    let mut entry = DaemonEntry {
        state: 0,
        interface: String::new(),
        sync_id: 0,
        max_len: 0,
        group: None,
        port: 0,
        ttl: 0,
    };
    for a in attrs {
        match a {
            DaemonAttr::State(v) => entry.state = *v,
            DaemonAttr::McastIfn(v) => entry.interface = v.clone(),
            DaemonAttr::SyncId(v) => entry.sync_id = *v,
            DaemonAttr::SyncMaxlen(v) => entry.max_len = *v,
            DaemonAttr::McastGroup(v) => entry.group = Some(IpAddr::V4(*v)),
            DaemonAttr::McastGroup6(v) => entry.group = Some(IpAddr::V6(*v)),
            DaemonAttr::McastPort(v) => entry.port = *v,
            DaemonAttr::McastTtl(v) => entry.ttl = *v,
            DaemonAttr::Other(_) => {}
        }
    }
    entry
}

impl ServiceEntry {
    /// The service in the dataplane model, or why the model cannot hold
    /// it.
    pub fn to_model(&self) -> Result<VirtualService, String> {
        let scheduler = Scheduler::parse(&self.scheduler)
            .ok_or_else(|| format!("scheduler '{}' is unknown", self.scheduler))?;
        let persistence = (self.flags & flags::PERSISTENT != 0).then_some(Persistence {
            timeout: self.timeout,
            prefix: self.netmask_prefix,
        });
        let mut destinations = std::collections::BTreeMap::new();
        for d in &self.destinations {
            let weight =
                Weight::new(d.weight).map_err(|e| format!("destination {}: {e}", d.address))?;
            destinations.insert(
                d.address,
                Destination {
                    address: d.address,
                    weight,
                    forwarding: d.forwarding,
                    upper_threshold: d.upper_threshold,
                    lower_threshold: d.lower_threshold,
                },
            );
        }
        Ok(VirtualService {
            key: self.key,
            scheduler,
            sched_flags: SchedFlags {
                fallback: self.flags & flags::SCHED1 != 0,
                port: self.flags & flags::SCHED2 != 0,
            },
            persistence,
            one_packet: self.flags & flags::ONEPACKET != 0,
            masquerade: false,
            destinations,
        })
    }

    /// ipvsadm's sort key.
    pub fn sort_key(&self) -> (u32, Family, u16, IpAddr, u16) {
        match self.key {
            ServiceKey::Fwmark { family, mark } => (mark, family, 0, IpAddr::from([0, 0, 0, 0]), 0),
            ServiceKey::Socket { protocol, address } => (
                0,
                Family::of(address.ip()),
                protocol.number(),
                address.ip(),
                address.port(),
            ),
        }
    }
}

/// `ipvsadm`'s name of a forwarding method.
fn forward_name(f: Forwarding) -> &'static str {
    match f {
        Forwarding::Nat => "Masq",
        Forwarding::Local => "Local",
        Forwarding::Tunnel => "Tunnel",
        Forwarding::DirectRoute => "Route",
    }
}

/// An address and port as `ipvsadm -n` writes them: `10.0.0.1:80`,
/// `[2001:db8::1]:80`.
fn addr_port(addr: SocketAddr) -> String {
    addr.to_string()
}

/// ipvsadm's names for the scheduler flags of `scheduler`.
fn sched_flag_names(scheduler: &str, bits: u32) -> Vec<String> {
    [flags::SCHED1, flags::SCHED2, flags::SCHED3]
        .into_iter()
        .enumerate()
        .filter(|(_, f)| bits & f != 0)
        .map(|(i, _)| match (scheduler, i) {
            ("sh" | "mh", 0) => format!("{scheduler}-fallback"),
            ("sh" | "mh", 1) => format!("{scheduler}-port"),
            _ => format!("flag-{}", i + 1),
        })
        .collect()
}

/// A service as ipvsadm names it: `TCP  10.0.0.1:80`, `FWM  7 IPv6`.
fn service_name(key: ServiceKey) -> String {
    match key {
        ServiceKey::Fwmark {
            family: Family::Ipv4,
            mark,
        } => format!("FWM  {mark}"),
        ServiceKey::Fwmark {
            family: Family::Ipv6,
            mark,
        } => format!("FWM  {mark} IPv6"),
        ServiceKey::Socket { protocol, address } => {
            format!("{}  {}", protocol.name(), addr_port(address))
        }
    }
}

/// A number as ipvsadm's `print_largenum` writes it: right-aligned in 9
/// (one blank before a longer one) with `exact`, else above 99,999,999
/// in thousands (`K`), millions (`M`), billions (`G`) or trillions
/// (`T`).
fn large_number(n: u64, exact: bool) -> String {
    if exact || n < 100_000_000 {
        let digits = n.to_string();
        return format!("{digits:>width$}", width = (digits.len() + 1).max(9));
    }
    let (value, unit) = if n < 1_000_000_000 {
        (n / 1_000, 'K')
    } else if n < 100_000_000_000 {
        (n / 1_000_000, 'M')
    } else if n < 100_000_000_000_000 {
        (n / 1_000_000_000, 'G')
    } else {
        (n / 1_000_000_000_000, 'T')
    };
    format!("{value:>8}{unit}")
}

impl Listing {
    /// The listing in ipvsadm's `layout`, byte for byte (`exact`: its
    /// `--exact`, numbers in full).
    pub fn render(&self, layout: Layout, exact: bool) -> String {
        let numbers = match layout {
            Layout::Table => return self.to_string(),
            Layout::Stats => ["Conns", "InPkts", "OutPkts", "InBytes", "OutBytes"],
            Layout::Rate => ["CPS", "InPPS", "OutPPS", "InBPS", "OutBPS"],
        };
        let values = |t: &Traffic| match layout {
            Layout::Rate => t.rates(),
            _ => t.counters(),
        };
        let mut out = format!(
            "IP Virtual Server version {} (size={})\n{:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n  -> RemoteAddress:Port\n",
            self.version,
            self.conn_table_size,
            "Prot LocalAddress:Port",
            numbers[0],
            numbers[1],
            numbers[2],
            numbers[3],
            numbers[4]
        );
        for s in &self.services {
            out += &format!("{:<33}", service_name(s.key));
            for n in values(&s.stats) {
                out += &large_number(n, exact);
            }
            out.push('\n');
            for d in &s.destinations {
                out += &format!("  -> {:<28}", addr_port(d.address));
                for (i, n) in values(&d.stats).into_iter().enumerate() {
                    // ipvsadm prints a destination's first three rates
                    // with `%8u`, never in thousands.
                    if layout == Layout::Rate && i < 3 {
                        out += &format!(" {n:>8}");
                    } else {
                        out += &large_number(n, exact);
                    }
                }
                out.push('\n');
            }
        }
        out
    }
}

/// The listing in `ipvsadm -Ln`'s layout, byte for byte.
impl fmt::Display for Listing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "IP Virtual Server version {} (size={})",
            self.version, self.conn_table_size
        )?;
        writeln!(f, "Prot LocalAddress:Port Scheduler Flags")?;
        writeln!(
            f,
            "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn"
        )?;
        for s in &self.services {
            let family = s.key.family();
            let mut line = service_name(s.key);
            write!(line, " {}", s.scheduler)?;
            let names = sched_flag_names(&s.scheduler, s.flags);
            if !names.is_empty() {
                write!(line, " ({})", names.join(","))?;
            }
            if s.flags & flags::PERSISTENT != 0 {
                write!(line, " persistent {}", s.timeout)?;
                if s.netmask_prefix != family.max_prefix() {
                    match family {
                        Family::Ipv4 => {
                            let mask = u32::MAX
                                .checked_shl(32 - u32::from(s.netmask_prefix))
                                .unwrap_or(0);
                            write!(line, " mask {}", std::net::Ipv4Addr::from(mask))?;
                        }
                        Family::Ipv6 => write!(line, " mask {}", s.netmask_prefix)?,
                    }
                }
                if let Some(pe) = &s.pe_name {
                    write!(line, " pe {pe}")?;
                }
            }
            if s.flags & flags::ONEPACKET != 0 {
                line.push_str(" ops");
            }
            writeln!(f, "{line}")?;
            for d in &s.destinations {
                writeln!(
                    f,
                    "  -> {:<28} {:<7} {:<6} {:<10} {:<10}",
                    addr_port(d.address),
                    forward_name(d.forwarding),
                    d.weight,
                    d.active_conns,
                    d.inactive_conns
                )?;
            }
        }
        Ok(())
    }
}

/// `IP_VS_VERSION_CODE` as `1.2.1`.
pub fn version_string(code: u32) -> String {
    format!(
        "{}.{}.{}",
        (code >> 16) & 0xff,
        (code >> 8) & 0xff,
        code & 0xff
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::ipvs::message::service_attrs;
    use crate::dataplane::ipvs::nla::{AF_INET, InetAddr};

    fn entry(key: ServiceKey, scheduler: &str, flags: u32, dests: Vec<DestEntry>) -> ServiceEntry {
        ServiceEntry {
            key,
            scheduler: scheduler.into(),
            flags,
            timeout: 0,
            netmask_prefix: key.family().max_prefix(),
            pe_name: None,
            stats: Traffic::default(),
            destinations: dests,
        }
    }

    fn dest(addr: &str, forwarding: Forwarding, weight: u32) -> DestEntry {
        DestEntry {
            address: addr.parse().unwrap(),
            forwarding,
            weight,
            upper_threshold: 0,
            lower_threshold: 0,
            active_conns: 0,
            inactive_conns: 3,
            persistent_conns: 0,
            stats: Traffic::default(),
        }
    }

    #[test]
    fn renders_like_ipvsadm() {
        let tcp = ServiceKey::Socket {
            protocol: Protocol::Tcp,
            address: "10.0.1.100:80".parse().unwrap(),
        };
        let udp6 = ServiceKey::Socket {
            protocol: Protocol::Udp,
            address: "[2001:db8::1]:53".parse().unwrap(),
        };
        let mut persistent = entry(
            tcp,
            "wrr",
            flags::PERSISTENT | flags::HASHED,
            vec![
                dest("10.0.2.11:80", Forwarding::Nat, 3),
                dest("10.0.2.12:80", Forwarding::DirectRoute, 1),
            ],
        );
        persistent.timeout = 300;
        persistent.netmask_prefix = 24;
        let listing = Listing {
            version: version_string(0x010201),
            conn_table_size: 4096,
            services: vec![
                persistent,
                entry(
                    udp6,
                    "sh",
                    flags::HASHED | flags::SCHED1 | flags::SCHED2 | flags::ONEPACKET,
                    vec![dest("[2001:db8::2]:53", Forwarding::Tunnel, 1)],
                ),
                entry(
                    ServiceKey::Fwmark {
                        family: Family::Ipv4,
                        mark: 7,
                    },
                    "rr",
                    flags::HASHED,
                    vec![],
                ),
            ],
        };
        insta::assert_snapshot!(listing.to_string());
    }

    /// `ipvsadm -Ln --stats` and `--rate`, with and without `--exact`:
    /// the columns, a destination's first three rates never in thousands,
    /// and the counters of `*_ATTR_STATS64` over the older ones.
    #[test]
    fn stats_and_rates_render_like_ipvsadm() {
        let big = Stats {
            conns: 7,
            in_pkts: 123_456_789,
            out_pkts: 100_000_000_000,
            in_bytes: 1 << 50,
            out_bytes: 0,
            cps: 2,
            in_pps: 150_000_000,
            out_pps: 3,
            in_bps: 4_000_000_000,
            out_bps: 5,
        };
        let tcp = ServiceKey::Socket {
            protocol: Protocol::Tcp,
            address: "10.0.1.100:80".parse().unwrap(),
        };
        let mut svc = service_entry(&[
            SvcAttr::Family(super::super::nla::AF_INET),
            SvcAttr::Protocol(6),
            SvcAttr::Addr(super::super::nla::InetAddr::from_ip(
                "10.0.1.100".parse().unwrap(),
            )),
            SvcAttr::Port(80),
            SvcAttr::SchedName("rr".into()),
            SvcAttr::Netmask([255; 4]),
            SvcAttr::Stats64(big),
            SvcAttr::Stats(Stats::default()),
        ])
        .unwrap();
        assert_eq!(svc.key, tcp);
        assert_eq!(svc.stats.in_packets, 123_456_789, "STATS64 wins");
        let mut d = dest("10.0.2.11:80", Forwarding::Nat, 1);
        d.stats = big.into();
        svc.destinations = vec![d];
        let listing = Listing {
            version: version_string(0x010201),
            conn_table_size: 4096,
            services: vec![svc],
        };
        insta::assert_snapshot!(
            [
                listing.render(Layout::Stats, false),
                listing.render(Layout::Stats, true),
                listing.render(Layout::Rate, false),
                listing.render(Layout::Rate, true),
            ]
            .join("---\n")
        );
        assert_eq!(listing.render(Layout::Table, false), listing.to_string());
    }

    #[test]
    fn dump_attributes_become_an_entry_and_the_model() {
        let svc = VirtualService {
            key: ServiceKey::Socket {
                protocol: Protocol::Tcp,
                address: "10.0.1.100:80".parse().unwrap(),
            },
            scheduler: Scheduler::Sh,
            sched_flags: SchedFlags {
                fallback: true,
                port: false,
            },
            persistence: Some(Persistence {
                timeout: 60,
                prefix: 16,
            }),
            one_packet: false,
            masquerade: false,
            destinations: Default::default(),
        };
        let mut attrs = service_attrs(&svc);
        // The kernel answers with HASHED set.
        for a in &mut attrs {
            if let SvcAttr::Flags { flags: f, .. } = a {
                *f |= flags::HASHED;
            }
        }
        let mut e = service_entry(&attrs).unwrap();
        e.destinations.push(
            dest_entry(
                &[
                    DestAttr::Addr(InetAddr::from_ip("10.0.2.11".parse().unwrap())),
                    DestAttr::Port(80),
                    DestAttr::AddrFamily(AF_INET),
                    DestAttr::FwdMethod(3),
                    DestAttr::Weight(5),
                    DestAttr::UThreshold(0),
                    DestAttr::LThreshold(0),
                ],
                Family::Ipv4,
            )
            .unwrap(),
        );
        let model = e.to_model().unwrap();
        assert!(model.same_settings(&svc));
        let d = &model.destinations[&"10.0.2.11:80".parse().unwrap()];
        assert_eq!(d.forwarding, Forwarding::DirectRoute);
        assert_eq!(d.weight.get(), 5);
    }

    #[test]
    fn what_the_model_cannot_hold_says_why() {
        let key = ServiceKey::Fwmark {
            family: Family::Ipv4,
            mark: 1,
        };
        assert_eq!(
            entry(key, "newsched", 0, vec![]).to_model().unwrap_err(),
            "scheduler 'newsched' is unknown"
        );
        let heavy = entry(
            key,
            "rr",
            0,
            vec![dest("10.0.0.2:0", Forwarding::Nat, 70000)],
        );
        assert!(heavy.to_model().unwrap_err().contains("weight"));
    }

    #[test]
    fn daemon_line_like_ipvsadm() {
        let d = daemon_entry(&[
            DaemonAttr::State(1),
            DaemonAttr::McastIfn("back".into()),
            DaemonAttr::SyncId(51),
            DaemonAttr::SyncMaxlen(1472),
            DaemonAttr::McastGroup(std::net::Ipv4Addr::new(224, 0, 0, 81)),
            DaemonAttr::McastPort(8848),
            DaemonAttr::McastTtl(1),
        ]);
        assert_eq!(
            d.to_string(),
            "master sync daemon (mcast=back, syncid=51, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)"
        );
        let old_kernel = daemon_entry(&[
            DaemonAttr::State(2),
            DaemonAttr::McastIfn("eth0".into()),
            DaemonAttr::SyncId(0),
        ]);
        assert_eq!(
            old_kernel.to_string(),
            "backup sync daemon (mcast=eth0, syncid=0)"
        );
    }

    #[test]
    fn incomplete_dumps_are_errors() {
        assert!(service_entry(&[SvcAttr::Family(AF_INET)]).is_err());
        assert!(service_entry(&[SvcAttr::Fwmark(3)]).is_err());
        assert!(dest_entry(&[DestAttr::Port(80)], Family::Ipv4).is_err());
    }
}
