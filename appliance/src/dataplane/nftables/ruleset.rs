//! The appliance's nftables ruleset as a pure function of the model: what
//! the table holds for each virtual service, how a scheduler becomes a
//! rule, and which requests carry out one [`Op`]. Sans-IO.
//!
//! The table `inet appliance` is the appliance's alone:
//!
//! ```text
//! table inet appliance {
//!     map tcp_10.0.1.100_80 {                 # the service's real servers
//!         type ipv4_addr . inet_service : mark    # and weights (the model)
//!         elements = { 10.0.2.11 . 8080 : 0x00000003, ... }
//!     }
//!     chain prerouting  { type nat hook prerouting priority dstnat;  jump services }
//!     chain output      { type nat hook output priority dstnat;      jump services }
//!     chain services {                        # one rule per service
//!         ip daddr 10.0.1.100 tcp dport 80
//!             dnat ip to numgen inc mod 4 map { 0 : 10.0.2.11 . 8080, ... }
//!             comment "appliance TCP 10.0.1.100:80 wrr"
//!     }
//!     chain postrouting { type nat hook postrouting priority srcnat;
//!         ct original ip daddr 10.0.1.100 ct original proto-dst 80 masquerade
//!             comment "appliance TCP 10.0.1.100:80" }  # only with masquerade
//!     ...                                     # the counters: [`traffic`]
//! }
//! ```
//!
//! Reading back needs no decoding of expressions: the rule's comment names
//! the service, its scheduler and options; the named map lists the real
//! servers with their weights (weight 0 included, though such a server is
//! in no pick list). Every change to a service replaces its rule in one
//! batch (one nf_tables transaction): new connections see the old rule or
//! the new one, and established ones keep their conntrack NAT binding.

use super::nla::{
    CtDir, CtKey, Expr, Hook, MetaKey, NumgenType, PayloadBase, Reg, Verdict, set_flags,
};
use super::request::{
    BaseChain, ChainType, ELEMENTS_PER_MESSAGE, Elements, Request, SetSpec, addr_bytes,
    parse_target, target_bytes,
};
use super::traffic;
use crate::dataplane::capability;
use crate::dataplane::pick::{Generator, Pick, pick};
use crate::dataplane::{
    Choice, Destination, Family, Forwarding, Op, Protocol, SchedFlags, Scheduler, ServiceKey,
    VirtualService, Weight,
};
use std::collections::BTreeMap;
use std::net::SocketAddr;

/// The regular chain holding one rule per service.
pub const SERVICES: &str = "services";
pub const PREROUTING: &str = "prerouting";
pub const OUTPUT: &str = "output";
pub const POSTROUTING: &str = "postrouting";
/// The first word of every comment the appliance writes.
const TAG: &str = "appliance";
/// Fixed jhash seed: the kernel draws a random one when none is given,
/// which would move every client to another server at each rule change.
const JHASH_SEED: u32 = 0x6170_706c;
/// `NFT_SET_ID` of the anonymous pick map within its batch.
const PICK_SET_ID: u32 = 1;
/// Name of an anonymous map created in a batch: the kernel numbers it.
const ANONYMOUS_MAP: &str = "__map%d";

/// nft's data type numbers, for `nft list` to print the maps.
mod datatype {
    pub(super) const INTEGER: u32 = 4;
    pub(super) const IPADDR: u32 = 7;
    pub(super) const IP6ADDR: u32 = 8;
    pub(super) const INET_SERVICE: u32 = 13;
    pub(super) const MARK: u32 = 19;
    /// A concatenation: each type shifted by nft's `TYPE_BITS` (6).
    pub(super) fn concat(a: u32, b: u32) -> u32 {
        (a << 6) | b
    }
}

/// `NFPROTO_IPV4` / `NFPROTO_IPV6`.
fn nfproto(family: Family) -> u8 {
    match family {
        Family::Ipv4 => 2,
        Family::Ipv6 => 10,
    }
}

/// Bytes of an address of `family` in a register.
fn addr_len(family: Family) -> u32 {
    match family {
        Family::Ipv4 => 4,
        Family::Ipv6 => 16,
    }
}

/// The weight in a real-servers map element: network order, as `nft
/// list` reads a map's data.
pub fn weight_bytes(weight: Weight) -> Vec<u8> {
    weight.get().to_be_bytes().to_vec()
}

/// The name of a service's real-servers map: `tcp_10.0.1.100_80`,
/// `udp_2001:db8::1_53`.
pub fn map_name(key: &ServiceKey) -> String {
    match key {
        ServiceKey::Socket { protocol, address } => format!(
            "{}_{}_{}",
            protocol.name().to_ascii_lowercase(),
            address.ip(),
            address.port()
        ),
        ServiceKey::Fwmark { family, mark } => format!("fwm{}_{mark}", nfproto(*family)),
    }
}

/// nft's rule comment as userdata: TLV type 0, length with the NUL.
pub fn comment_userdata(text: &str) -> Vec<u8> {
    let mut out = vec![0, u8::try_from(text.len() + 1).unwrap_or(u8::MAX)];
    out.extend(text.as_bytes());
    out.push(0);
    out
}

/// The comment in a rule's userdata, if it has one.
pub fn parse_comment_userdata(mut udata: &[u8]) -> Option<String> {
    while let [kind, len, rest @ ..] = udata {
        let value = rest.get(..usize::from(*len))?;
        if *kind == 0 {
            let text = value.strip_suffix(&[0]).unwrap_or(value);
            return String::from_utf8(text.to_vec()).ok();
        }
        udata = rest.get(usize::from(*len)..)?;
    }
    None
}

/// The service rule's comment: `appliance TCP 10.0.1.100:80 wrr`, then
/// ` masquerade` and ` mh-port` when set.
pub fn describe(service: &VirtualService) -> String {
    let mut text = format!("{TAG} {} {}", service.key, service.scheduler.name());
    if service.masquerade {
        text.push_str(" masquerade");
    }
    if service.sched_flags.port {
        text.push_str(" mh-port");
    }
    text
}

/// What a service rule's comment keeps of its service: what the rule and
/// its map do not say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub scheduler: Scheduler,
    pub masquerade: bool,
    pub sched_flags: SchedFlags,
}

impl Settings {
    pub fn of(service: &VirtualService) -> Self {
        Self {
            scheduler: service.scheduler,
            masquerade: service.masquerade,
            sched_flags: service.sched_flags,
        }
    }
}

/// The postrouting rule's comment: `appliance TCP 10.0.1.100:80`.
pub fn describe_key(key: &ServiceKey) -> String {
    format!("{TAG} {key}")
}

/// What a service rule's comment says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Described {
    pub key: ServiceKey,
    /// The settings, or why they cannot be read.
    pub settings: Result<Settings, String>,
}

/// Reads a comment written by [`describe`] or [`describe_key`]; `None` if
/// it is not the appliance's.
pub fn parse_description(text: &str) -> Option<Described> {
    let mut words = text.split(' ');
    if words.next()? != TAG {
        return None;
    }
    let protocol = match words.next()? {
        "TCP" => Protocol::Tcp,
        "UDP" => Protocol::Udp,
        "SCTP" => Protocol::Sctp,
        _ => return None,
    };
    let address: SocketAddr = words.next()?.parse().ok()?;
    let key = ServiceKey::Socket { protocol, address };
    let settings = match words.next() {
        None => Err("no scheduler in the rule's comment".to_owned()),
        Some(name) => match scheduler_named(name) {
            None => Err(format!("scheduler '{name}' is unknown")),
            Some(scheduler) => options(scheduler, words),
        },
    };
    Some(Described { key, settings })
}

/// The options after the scheduler, each at most once, in
/// [`describe`]'s order.
fn options<'a>(
    scheduler: Scheduler,
    words: impl Iterator<Item = &'a str>,
) -> Result<Settings, String> {
    let mut settings = Settings {
        scheduler,
        masquerade: false,
        sched_flags: SchedFlags::default(),
    };
    let mut expected = ["masquerade", "mh-port"].into_iter();
    for word in words {
        if !expected.any(|e| e == word) {
            return Err(format!("unknown option '{word}' in the rule's comment"));
        }
        match word {
            "masquerade" => settings.masquerade = true,
            _ => settings.sched_flags.port = true,
        }
    }
    Ok(settings)
}

fn scheduler_named(name: &str) -> Option<Scheduler> {
    Scheduler::parse(name).or((name == Scheduler::Random.name()).then_some(Scheduler::Random))
}

/// What the kernel holds for one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledService {
    pub service: VirtualService,
    /// Handle of the rule in [`SERVICES`].
    pub rule: u64,
    /// Handle of its masquerade rule in [`POSTROUTING`].
    pub masquerade_rule: Option<u64>,
}

/// What the kernel holds in the appliance's table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Installed {
    pub table_exists: bool,
    /// Whether the table has the [`traffic`] counters (a table made by an
    /// appliance before them has not).
    pub counting: bool,
    pub services: BTreeMap<ServiceKey, InstalledService>,
}

/// The nat chains: prerouting and output at dstnat (-100), postrouting at
/// srcnat (100).
pub const BASE_CHAINS: [BaseChain; 3] = [
    BaseChain {
        name: PREROUTING,
        kind: ChainType::Nat,
        hook: Hook::PreRouting,
        priority: -100,
    },
    BaseChain {
        name: OUTPUT,
        kind: ChainType::Nat,
        hook: Hook::LocalOut,
        priority: -100,
    },
    BaseChain {
        name: POSTROUTING,
        kind: ChainType::Nat,
        hook: Hook::PostRouting,
        priority: 100,
    },
];

/// An operation the ruleset cannot carry out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("{0}: the nftables dataplane cannot do it: {1}")]
    Refused(ServiceKey, String),
    #[error("{0} is not in the appliance's nftables table")]
    Absent(ServiceKey),
    #[error("{0} is already in the appliance's nftables table")]
    Exists(ServiceKey),
    #[error("{service} has no real server {address}")]
    NoDestination {
        service: ServiceKey,
        address: SocketAddr,
    },
}

/// The requests of one batch carrying out `op` on what is `installed`.
pub fn plan(op: &Op, installed: &Installed) -> Result<Vec<Request>, PlanError> {
    let current = |key: &ServiceKey| installed.services.get(key).ok_or(PlanError::Absent(*key));
    let mut out = Vec::new();
    let last_goes = matches!(op, Op::DeleteService(key)
        if installed.services.len() == 1 && installed.services.contains_key(key));
    if installed.table_exists && !installed.counting && !last_goes {
        out.extend(counting(installed));
    }
    match op {
        Op::AddService(svc) => {
            if installed.services.contains_key(&svc.key) {
                return Err(PlanError::Exists(svc.key));
            }
            if !installed.table_exists {
                out.extend(skeleton());
            }
            let settings = svc.settings();
            out.push(Request::NewSet(weights_map(&settings.key)));
            out.extend(service_rules(&settings)?);
        }
        Op::EditService(svc) => {
            let have = current(&svc.key)?;
            let new = VirtualService {
                destinations: have.service.destinations.clone(),
                ..svc.clone()
            };
            out.extend(remove_rules(have));
            out.extend(service_rules(&new)?);
        }
        Op::DeleteService(key) => {
            let have = current(key)?;
            if last_goes {
                // The last service: the table goes, with its chains.
                out.push(Request::DelTable);
            } else {
                out.extend(remove_rules(have));
                out.push(Request::DelSet(map_name(key)));
                let servers: Vec<SocketAddr> = have.service.destinations.keys().copied().collect();
                out.extend(traffic::remove(key, &servers));
            }
        }
        Op::AddDestination {
            service,
            destination,
        }
        | Op::EditDestination {
            service,
            destination,
        } => {
            let have = current(service)?;
            let mut new = have.service.clone();
            let existed = new
                .destinations
                .insert(destination.address, destination.clone())
                .is_some();
            if matches!(op, Op::EditDestination { .. }) && !existed {
                return Err(PlanError::NoDestination {
                    service: *service,
                    address: destination.address,
                });
            }
            out.extend(remove_rules(have));
            out.extend(service_rules(&new)?);
            let key = target_bytes(destination.address);
            if existed {
                out.push(Request::DelElements {
                    set: map_name(service),
                    keys: vec![key.clone()],
                });
            }
            out.push(Request::NewElements {
                set: map_name(service),
                set_id: None,
                elements: vec![(key, weight_bytes(destination.weight))],
            });
            if !existed {
                out.extend(traffic::add(service, &[destination.address]));
            }
        }
        Op::DeleteDestination { service, address } => {
            let have = current(service)?;
            let mut new = have.service.clone();
            if new.destinations.remove(address).is_none() {
                return Err(PlanError::NoDestination {
                    service: *service,
                    address: *address,
                });
            }
            out.extend(remove_rules(have));
            out.extend(service_rules(&new)?);
            out.push(Request::DelElements {
                set: map_name(service),
                keys: vec![target_bytes(*address)],
            });
            out.extend(traffic::remove(service, &[*address]));
        }
    }
    Ok(out)
}

/// The counters for a table made before them: the sets, chains and rules,
/// and an element for each real server already there. Their counts start
/// now.
fn counting(installed: &Installed) -> Vec<Request> {
    let mut out = traffic::skeleton();
    for (key, have) in &installed.services {
        let servers: Vec<SocketAddr> = have.service.destinations.keys().copied().collect();
        out.extend(traffic::add(key, &servers));
    }
    out
}

/// The table, its chains and the jumps into [`SERVICES`].
fn skeleton() -> Vec<Request> {
    let mut out = vec![Request::NewTable];
    out.extend(BASE_CHAINS.map(Request::NewBaseChain));
    out.push(Request::NewChain(SERVICES));
    for chain in [PREROUTING, OUTPUT] {
        out.push(Request::NewRule {
            chain,
            exprs: vec![Expr::Verdict(Verdict::Jump(SERVICES.to_owned()))],
            comment: None,
        });
    }
    out.extend(traffic::skeleton());
    out
}

fn remove_rules(have: &InstalledService) -> Vec<Request> {
    let mut out = vec![Request::DelRule {
        chain: SERVICES,
        handle: have.rule,
    }];
    if let Some(handle) = have.masquerade_rule {
        out.push(Request::DelRule {
            chain: POSTROUTING,
            handle,
        });
    }
    out
}

/// A service's real-servers map (created empty).
fn weights_map(key: &ServiceKey) -> SetSpec {
    let family = key.family();
    SetSpec {
        name: map_name(key),
        id: PICK_SET_ID + 1,
        flags: set_flags::MAP,
        key_type: target_type(family),
        key_len: addr_len(family) + 4,
        data: Some((datatype::MARK, 4)),
        counter: false,
        userdata: Vec::new(),
    }
}

fn target_type(family: Family) -> u32 {
    let addr = match family {
        Family::Ipv4 => datatype::IPADDR,
        Family::Ipv6 => datatype::IP6ADDR,
    };
    datatype::concat(addr, datatype::INET_SERVICE)
}

/// The service's rule (with its pick map) and its masquerade rule.
fn service_rules(service: &VirtualService) -> Result<Vec<Request>, PlanError> {
    let refused = |reason: String| PlanError::Refused(service.key, reason);
    if let Some(first) = capability::refusals(Choice::Nftables, service)
        .into_iter()
        .next()
    {
        return Err(refused(first.reason));
    }
    let ServiceKey::Socket { protocol, address } = service.key else {
        return Err(refused("fwmark services are not available".into()));
    };
    let pick = pick(service).map_err(refused)?;
    let family = service.key.family();
    let mut out = Vec::new();
    let mut exprs = match_service(family, protocol, address);
    if pick.targets.is_empty() {
        // No server to send to: new connections are dropped, as IPVS does.
        exprs.push(Expr::Verdict(Verdict::Drop));
    } else {
        out.push(Request::NewSet(SetSpec {
            name: ANONYMOUS_MAP.to_owned(),
            id: PICK_SET_ID,
            flags: set_flags::ANONYMOUS | set_flags::CONSTANT | set_flags::MAP,
            key_type: datatype::INTEGER,
            key_len: 4,
            data: Some((target_type(family), addr_len(family) + 4)),
            counter: false,
            // nft's NFTNL_UDATA_SET_KEYBYTEORDER: host (1), so that `nft
            // list` prints the indices as numbers.
            userdata: [vec![0, 4], 1u32.to_ne_bytes().to_vec()].concat(),
        }));
        let elements: Elements = pick
            .targets
            .iter()
            .zip(0u32..)
            .map(|(t, i)| (i.to_ne_bytes().to_vec(), target_bytes(*t)))
            .collect();
        // A message's elements are one attribute, whose length is 16 bits:
        // a Maglev table's 65537 go in messages of their own.
        out.extend(
            elements
                .chunks(ELEMENTS_PER_MESSAGE)
                .map(|chunk| Request::NewElements {
                    set: ANONYMOUS_MAP.to_owned(),
                    set_id: Some(PICK_SET_ID),
                    elements: chunk.to_vec(),
                }),
        );
        exprs.extend(pick_exprs(family, &pick));
    }
    out.push(Request::NewRule {
        chain: SERVICES,
        exprs,
        comment: Some(describe(service)),
    });
    if service.masquerade {
        let mut exprs = vec![
            Expr::Meta {
                dreg: Reg::R1,
                key: MetaKey::NfProto,
            },
            Expr::CmpEq {
                sreg: Reg::R1,
                data: vec![nfproto(family)],
            },
            Expr::Meta {
                dreg: Reg::R1,
                key: MetaKey::L4Proto,
            },
            Expr::CmpEq {
                sreg: Reg::R1,
                data: vec![protocol_byte(protocol)],
            },
        ];
        exprs.extend([
            Expr::Ct {
                dreg: Reg::R1,
                key: match family {
                    Family::Ipv4 => CtKey::DstIp,
                    Family::Ipv6 => CtKey::DstIp6,
                },
                dir: Some(CtDir::Original),
            },
            Expr::CmpEq {
                sreg: Reg::R1,
                data: addr_bytes(address.ip()),
            },
            Expr::Ct {
                dreg: Reg::R1,
                key: CtKey::ProtoDst,
                dir: Some(CtDir::Original),
            },
            Expr::CmpEq {
                sreg: Reg::R1,
                data: address.port().to_be_bytes().to_vec(),
            },
            Expr::Masquerade,
        ]);
        out.push(Request::NewRule {
            chain: POSTROUTING,
            exprs,
            comment: Some(describe_key(&service.key)),
        });
    }
    Ok(out)
}

fn protocol_byte(protocol: Protocol) -> u8 {
    u8::try_from(protocol.number()).unwrap_or(u8::MAX)
}

/// `meta nfproto F meta l4proto P ip daddr A tcp dport N`.
fn match_service(family: Family, protocol: Protocol, address: SocketAddr) -> Vec<Expr> {
    let daddr_offset = match family {
        Family::Ipv4 => 16,
        Family::Ipv6 => 24,
    };
    vec![
        Expr::Meta {
            dreg: Reg::R1,
            key: MetaKey::NfProto,
        },
        Expr::CmpEq {
            sreg: Reg::R1,
            data: vec![nfproto(family)],
        },
        Expr::Meta {
            dreg: Reg::R1,
            key: MetaKey::L4Proto,
        },
        Expr::CmpEq {
            sreg: Reg::R1,
            data: vec![protocol_byte(protocol)],
        },
        Expr::Payload {
            dreg: Reg::R1,
            base: PayloadBase::Network,
            offset: daddr_offset,
            len: addr_len(family),
        },
        Expr::CmpEq {
            sreg: Reg::R1,
            data: addr_bytes(address.ip()),
        },
        // TCP, UDP and SCTP all have the destination port at offset 2.
        Expr::Payload {
            dreg: Reg::R1,
            base: PayloadBase::Transport,
            offset: 2,
            len: 2,
        },
        Expr::CmpEq {
            sreg: Reg::R1,
            data: address.port().to_be_bytes().to_vec(),
        },
    ]
}

/// The generator into register 1, the map lookup, and the DNAT to the
/// address (register 1) and port (the 4-byte register after the address).
fn pick_exprs(family: Family, pick: &Pick) -> Vec<Expr> {
    let modulus = u32::try_from(pick.targets.len()).unwrap_or(u32::MAX);
    let len = addr_len(family);
    let hash_of = |offset: u32| {
        [
            Expr::Payload {
                dreg: Reg::R2,
                base: PayloadBase::Network,
                offset,
                len,
            },
            Expr::Jhash {
                sreg: Reg::R2,
                dreg: Reg::R1,
                len,
                modulus,
                seed: JHASH_SEED,
            },
        ]
    };
    let (saddr, daddr) = match family {
        Family::Ipv4 => (12, 16),
        Family::Ipv6 => (8, 24),
    };
    let numgen = |kind| {
        vec![Expr::Numgen {
            dreg: Reg::R1,
            kind,
            modulus,
        }]
    };
    let mut exprs = match pick.generator {
        Generator::RoundRobin => numgen(NumgenType::Incremental),
        Generator::Random => numgen(NumgenType::Random),
        Generator::SourceHash | Generator::Maglev { port: false } => hash_of(saddr).to_vec(),
        Generator::DestinationHash => hash_of(daddr).to_vec(),
        Generator::Maglev { port: true } => vec![
            Expr::Payload {
                dreg: Reg::R2,
                base: PayloadBase::Network,
                offset: saddr,
                len,
            },
            // TCP, UDP and SCTP all have the source port at offset 0; the
            // register's other two bytes are zeroed by the load.
            Expr::Payload {
                dreg: Reg::after_r2(len),
                base: PayloadBase::Transport,
                offset: 0,
                len: 2,
            },
            Expr::Jhash {
                sreg: Reg::R2,
                dreg: Reg::R1,
                len: len + 4,
                modulus,
                seed: JHASH_SEED,
            },
        ],
    };
    exprs.push(Expr::Lookup {
        sreg: Reg::R1,
        dreg: Reg::R1,
        set: ANONYMOUS_MAP.to_owned(),
        set_id: PICK_SET_ID,
    });
    exprs.push(Expr::Dnat {
        family: nfproto(family),
        addr: Reg::R1,
        proto: Reg::after_r1(len),
    });
    exprs
}

/// A service read back: its comment's settings and its map's elements
/// (`(key, data)` as the kernel holds them).
pub fn service_from(
    key: ServiceKey,
    settings: Settings,
    elements: &[(Vec<u8>, Vec<u8>)],
) -> Result<VirtualService, String> {
    let mut destinations = BTreeMap::new();
    for (k, data) in elements {
        let address = parse_target(k)
            .ok_or_else(|| format!("real-servers map key {k:02x?} is no address . port"))?;
        let raw: [u8; 4] = data
            .as_slice()
            .try_into()
            .map_err(|_| format!("weight of {address} has {} bytes", data.len()))?;
        let weight = Weight::new(u32::from_be_bytes(raw))
            .map_err(|e| format!("real server {address}: {e}"))?;
        destinations.insert(
            address,
            Destination {
                address,
                weight,
                forwarding: Forwarding::Nat,
                upper_threshold: 0,
                lower_threshold: 0,
            },
        );
    }
    Ok(VirtualService {
        key,
        scheduler: settings.scheduler,
        sched_flags: settings.sched_flags,
        persistence: None,
        one_packet: false,
        masquerade: settings.masquerade,
        destinations,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::{Persistence, SchedFlags};
    use std::net::IpAddr;

    fn dest(last: u8, weight: u32) -> Destination {
        Destination {
            address: SocketAddr::from(([10, 0, 2, last], 8080)),
            weight: Weight::new(weight).unwrap(),
            forwarding: Forwarding::Nat,
            upper_threshold: 0,
            lower_threshold: 0,
        }
    }

    fn service(scheduler: Scheduler, dests: &[Destination]) -> VirtualService {
        VirtualService {
            key: ServiceKey::Socket {
                protocol: Protocol::Tcp,
                address: "10.0.1.100:80".parse().unwrap(),
            },
            scheduler,
            sched_flags: SchedFlags::default(),
            persistence: None,
            one_packet: false,
            masquerade: false,
            destinations: dests.iter().map(|d| (d.address, d.clone())).collect(),
        }
    }

    /// The pick list as last address bytes.
    fn picks(scheduler: Scheduler, weights: &[(u8, u32)]) -> (Generator, Vec<u8>) {
        let dests: Vec<Destination> = weights.iter().map(|(l, w)| dest(*l, *w)).collect();
        let p = pick(&service(scheduler, &dests)).unwrap();
        let lasts = p
            .targets
            .iter()
            .map(|t| match t.ip() {
                IpAddr::V4(v4) => v4.octets()[3],
                IpAddr::V6(_) => unreachable!(),
            })
            .collect();
        (p.generator, lasts)
    }

    #[test]
    fn rr_and_dh_ignore_weights_but_zero() {
        assert_eq!(
            picks(Scheduler::Rr, &[(11, 5), (12, 1), (13, 0)]),
            (Generator::RoundRobin, vec![11, 12])
        );
        assert_eq!(
            picks(Scheduler::Dh, &[(11, 5), (12, 1), (13, 0)]),
            (Generator::DestinationHash, vec![11, 12])
        );
    }

    #[test]
    fn wrr_follows_the_ipvs_order_with_reduced_weights() {
        assert_eq!(
            picks(Scheduler::Wrr, &[(11, 3), (12, 1)]).1,
            [11, 11, 11, 12]
        );
        assert_eq!(
            picks(Scheduler::Wrr, &[(11, 2), (12, 2), (13, 1)]).1,
            [11, 12, 11, 12, 13]
        );
        assert_eq!(
            picks(Scheduler::Wrr, &[(11, 300), (12, 100), (13, 0)]),
            (Generator::RoundRobin, vec![11, 11, 11, 12])
        );
    }

    #[test]
    fn random_and_sh_repeat_each_server_by_weight() {
        assert_eq!(
            picks(Scheduler::Random, &[(11, 2), (12, 6)]),
            (Generator::Random, vec![11, 12, 12, 12])
        );
        assert_eq!(
            picks(Scheduler::Sh, &[(11, 1), (12, 2)]),
            (Generator::SourceHash, vec![11, 12, 12])
        );
    }

    #[test]
    fn no_server_with_weight_is_an_empty_pick_list() {
        assert_eq!(picks(Scheduler::Wrr, &[(11, 0)]).1, Vec::<u8>::new());
        assert_eq!(picks(Scheduler::Rr, &[]).1, Vec::<u8>::new());
    }

    #[test]
    fn mh_is_a_maglev_table_indexed_by_a_hash_of_the_client_and_its_port() {
        let mut svc = service(Scheduler::Mh, &[dest(13, 2), dest(11, 1), dest(12, 1)]);
        svc.sched_flags.port = true;
        let p = pick(&svc).unwrap();
        assert_eq!(p.generator, Generator::Maglev { port: true });
        assert_eq!(p.targets.len(), 65537);
        let share = |last: u8| {
            p.targets
                .iter()
                .filter(|t| **t == dest(last, 1).address)
                .count()
        };
        assert!(
            share(13).abs_diff(2 * share(11)) < 100,
            "{} {}",
            share(13),
            share(11)
        );
        assert_eq!(share(11) + share(12) + share(13), 65537);
        // Weight 0 owns no slot.
        svc.destinations
            .get_mut(&dest(12, 1).address)
            .unwrap()
            .weight = Weight::new(0).unwrap();
        assert_eq!(
            pick(&svc)
                .unwrap()
                .targets
                .iter()
                .filter(|t| **t == dest(12, 1).address)
                .count(),
            0
        );

        let have = VirtualService {
            destinations: BTreeMap::new(),
            ..svc.clone()
        };
        let op = Op::AddDestination {
            service: svc.key,
            destination: dest(11, 1),
        };
        let plan = plan(&op, &installed(&[have])).unwrap();
        let chunks: Vec<String> = shown(&plan)
            .into_iter()
            .filter(|r| r.contains("to map __map%d"))
            .collect();
        assert_eq!(chunks.len(), 65, "{chunks:?}");
        assert_eq!(chunks[0], "add 1024 element(s) to map __map%d");
        assert_eq!(chunks[64], "add 1 element(s) to map __map%d");
        let Some(Request::NewRule { exprs, .. }) = plan.iter().find(|r| {
            matches!(
                r,
                Request::NewRule {
                    chain: SERVICES,
                    ..
                }
            )
        }) else {
            panic!("{plan:?}")
        };
        assert_eq!(
            exprs[8..11],
            [
                Expr::Payload {
                    dreg: Reg::R2,
                    base: PayloadBase::Network,
                    offset: 12,
                    len: 4
                },
                Expr::Payload {
                    dreg: Reg(13),
                    base: PayloadBase::Transport,
                    offset: 0,
                    len: 2
                },
                Expr::Jhash {
                    sreg: Reg::R2,
                    dreg: Reg::R1,
                    len: 8,
                    modulus: 65537,
                    seed: JHASH_SEED
                },
            ]
        );

        // mh-fallback re-hashes where the table has no server: refused.
        svc.sched_flags.fallback = true;
        assert_eq!(
            capability::refusals(Choice::Nftables, &svc)
                .iter()
                .map(|r| r.field)
                .collect::<Vec<_>>(),
            ["lb_algo"]
        );
    }

    #[test]
    fn refuses_what_it_cannot_do() {
        let err = pick(&service(Scheduler::Wlc, &[dest(11, 1)])).unwrap_err();
        assert_eq!(
            err,
            "lb_algo wlc (keepalived's default when lb_algo is not written) is not available \
             with the nftables dataplane: use rr, wrr, sh, dh, mh or random"
        );
        let err = pick(&service(Scheduler::Wrr, &[dest(11, 1000), dest(12, 999)])).unwrap_err();
        assert!(
            err.contains("sum to 1999, above the nftables dataplane's 1024"),
            "{err}"
        );

        let mut svc = service(Scheduler::Lc, &[dest(11, 1)]);
        svc.persistence = Some(Persistence {
            timeout: 60,
            prefix: 32,
        });
        for d in svc.destinations.values_mut() {
            d.forwarding = Forwarding::DirectRoute;
            d.upper_threshold = 5;
        }
        let fields: Vec<&str> = capability::refusals(Choice::Nftables, &svc)
            .iter()
            .map(|r| r.field)
            .collect();
        assert_eq!(
            fields,
            ["lb_algo", "persistence_timeout", "lb_kind", "real_server"]
        );
        let fwmark = VirtualService {
            key: ServiceKey::Fwmark {
                family: Family::Ipv4,
                mark: 1,
            },
            ..service(Scheduler::Rr, &[])
        };
        assert_eq!(
            capability::refusals(Choice::Nftables, &fwmark)[0].field,
            "service"
        );
        assert!(
            capability::refusals(Choice::Nftables, &service(Scheduler::Sh, &[dest(11, 1)]))
                .is_empty()
        );
    }

    #[test]
    fn comments_round_trip() {
        let mut svc = service(Scheduler::Random, &[]);
        svc.masquerade = true;
        let text = describe(&svc);
        assert_eq!(text, "appliance TCP 10.0.1.100:80 random masquerade");
        let udata = comment_userdata(&text);
        assert_eq!(udata[..2], [0, 46]);
        assert_eq!(
            parse_comment_userdata(&udata).as_deref(),
            Some(text.as_str())
        );
        assert_eq!(
            parse_description(&text),
            Some(Described {
                key: svc.key,
                settings: Ok(Settings::of(&svc))
            })
        );
        let v6 = "appliance UDP [2001:db8::1]:53 sh";
        assert_eq!(
            parse_description(v6).unwrap().settings,
            Ok(Settings {
                scheduler: Scheduler::Sh,
                masquerade: false,
                sched_flags: SchedFlags::default()
            })
        );
        // mh-port is kept too: the rule read back hashes what it hashed.
        let mut mh = service(Scheduler::Mh, &[]);
        mh.sched_flags.port = true;
        mh.masquerade = true;
        let text = describe(&mh);
        assert_eq!(text, "appliance TCP 10.0.1.100:80 mh masquerade mh-port");
        assert_eq!(
            parse_description(&text).unwrap().settings,
            Ok(Settings::of(&mh))
        );
        for bad in [
            "mh mh-port masquerade",
            "mh masquerade masquerade",
            "rr fast",
        ] {
            assert!(
                parse_description(&format!("appliance TCP 10.0.1.100:80 {bad}"))
                    .unwrap()
                    .settings
                    .is_err(),
                "{bad}"
            );
        }
        assert_eq!(
            parse_description("appliance TCP 10.0.1.100:80 fast")
                .unwrap()
                .settings,
            Err("scheduler 'fast' is unknown".to_owned())
        );
        assert_eq!(parse_description("someone else's"), None);
        assert_eq!(
            parse_description(&describe_key(&svc.key)).unwrap().key,
            svc.key
        );
    }

    #[test]
    fn targets_and_weights_read_back() {
        for t in ["10.0.2.11:8080", "[2001:db8::2]:443"] {
            let t: SocketAddr = t.parse().unwrap();
            assert_eq!(parse_target(&target_bytes(t)), Some(t));
        }
        assert_eq!(
            target_bytes("10.0.2.11:8080".parse().unwrap()),
            [10, 0, 2, 11, 0x1f, 0x90, 0, 0]
        );
        let elements = vec![(
            target_bytes("10.0.2.11:8080".parse().unwrap()),
            weight_bytes(Weight::new(3).unwrap()),
        )];
        let wrr = service(Scheduler::Wrr, &[dest(11, 3)]);
        let svc = service_from(wrr.key, Settings::of(&wrr), &elements).unwrap();
        assert_eq!(svc, wrr);
        assert!(service_from(svc.key, Settings::of(&wrr), &[(vec![1], vec![])]).is_err());
    }

    fn installed(services: &[VirtualService]) -> Installed {
        Installed {
            table_exists: !services.is_empty(),
            counting: !services.is_empty(),
            services: services
                .iter()
                .zip(10..)
                .map(|(s, handle)| {
                    (
                        s.key,
                        InstalledService {
                            service: s.clone(),
                            rule: handle,
                            masquerade_rule: s.masquerade.then_some(handle + 100),
                        },
                    )
                })
                .collect(),
        }
    }

    fn shown(requests: &[Request]) -> Vec<String> {
        requests.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn the_first_service_creates_the_table() {
        let svc = service(Scheduler::Rr, &[]);
        let plan = plan(&Op::AddService(svc), &Installed::default()).unwrap();
        assert_eq!(
            shown(&plan),
            [
                "create table inet appliance",
                "create chain prerouting",
                "create chain output",
                "create chain postrouting",
                "create chain services",
                "add rule to chain prerouting",
                "add rule to chain output",
            ]
            .into_iter()
            .chain(
                traffic::skeleton()
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .iter()
                    .map(String::as_str)
            )
            .chain([
                "create map tcp_10.0.1.100_80",
                "add rule \"appliance TCP 10.0.1.100:80 rr\" to chain services",
            ])
            .collect::<Vec<_>>()
        );
        // Without servers, new connections are dropped.
        let Some(Request::NewRule { exprs, .. }) = plan.last() else {
            panic!("{plan:?}")
        };
        assert_eq!(exprs.last(), Some(&Expr::Verdict(Verdict::Drop)));
    }

    #[test]
    fn a_destination_change_replaces_the_rule_in_one_batch() {
        let mut have = service(Scheduler::Wrr, &[dest(11, 1), dest(12, 1)]);
        have.masquerade = true;
        let op = Op::EditDestination {
            service: have.key,
            destination: dest(11, 3),
        };
        let plan = plan(&op, &installed(&[have])).unwrap();
        assert_eq!(
            shown(&plan),
            [
                "delete rule 10 of chain services",
                "delete rule 110 of chain postrouting",
                "create map __map%d",
                "add 4 element(s) to map __map%d",
                "add rule \"appliance TCP 10.0.1.100:80 wrr masquerade\" to chain services",
                "add rule \"appliance TCP 10.0.1.100:80\" to chain postrouting",
                "delete 1 element(s) from tcp_10.0.1.100_80",
                "add 1 element(s) to map tcp_10.0.1.100_80",
            ]
        );
        let Some(Request::NewRule { exprs, .. }) = plan.get(4) else {
            panic!("{plan:?}")
        };
        assert_eq!(
            exprs[8..],
            [
                Expr::Numgen {
                    dreg: Reg::R1,
                    kind: NumgenType::Incremental,
                    modulus: 4
                },
                Expr::Lookup {
                    sreg: Reg::R1,
                    dreg: Reg::R1,
                    set: "__map%d".into(),
                    set_id: 1
                },
                Expr::Dnat {
                    family: 2,
                    addr: Reg::R1,
                    proto: Reg(9)
                },
            ]
        );
    }

    #[test]
    fn real_servers_are_counted_from_their_addition_to_their_removal() {
        let have = service(Scheduler::Wrr, &[dest(11, 1), dest(12, 1)]);
        let table = installed(std::slice::from_ref(&have));
        let counting = |plan: &[Request]| -> Vec<String> {
            plan.iter()
                .filter(|r| r.to_string().contains("traffic_"))
                .map(ToString::to_string)
                .collect()
        };
        let add = Op::AddDestination {
            service: have.key,
            destination: dest(13, 1),
        };
        assert_eq!(
            counting(&plan(&add, &table).unwrap()),
            [
                "add 1 element(s) to set traffic_new_ipv4",
                "add 1 element(s) to set traffic_in_ipv4",
                "add 1 element(s) to set traffic_out_ipv4",
            ]
        );
        // A weight change leaves the counts alone.
        let edit = Op::EditDestination {
            service: have.key,
            destination: dest(11, 5),
        };
        assert_eq!(
            counting(&plan(&edit, &table).unwrap()),
            Vec::<String>::new()
        );
        let edit = Op::EditService(service(Scheduler::Rr, &[]));
        assert_eq!(
            counting(&plan(&edit, &table).unwrap()),
            Vec::<String>::new()
        );
        let delete = Op::DeleteDestination {
            service: have.key,
            address: dest(12, 1).address,
        };
        assert_eq!(
            counting(&plan(&delete, &table).unwrap()),
            [
                "delete 1 element(s) from traffic_new_ipv4",
                "delete 1 element(s) from traffic_in_ipv4",
                "delete 1 element(s) from traffic_out_ipv4",
            ]
        );
        // A service going takes its servers' elements; the last one the
        // whole table.
        let other = VirtualService {
            key: ServiceKey::Socket {
                protocol: Protocol::Udp,
                address: "10.0.1.100:53".parse().unwrap(),
            },
            ..have.clone()
        };
        let two = installed(&[have.clone(), other]);
        assert_eq!(
            counting(&plan(&Op::DeleteService(have.key), &two).unwrap()),
            [
                "delete 2 element(s) from traffic_new_ipv4",
                "delete 2 element(s) from traffic_in_ipv4",
                "delete 2 element(s) from traffic_out_ipv4",
            ]
        );
    }

    #[test]
    fn a_table_made_before_the_counters_gets_them_at_its_next_change() {
        let have = service(Scheduler::Rr, &[dest(11, 1), dest(12, 1)]);
        let mut old = installed(std::slice::from_ref(&have));
        old.counting = false;
        let op = Op::EditDestination {
            service: have.key,
            destination: dest(11, 2),
        };
        let plan = plan(&op, &old).unwrap();
        let skeleton = traffic::skeleton();
        assert_eq!(plan[..skeleton.len()], skeleton);
        assert_eq!(
            shown(&plan[skeleton.len()..skeleton.len() + 3]),
            [
                "add 2 element(s) to set traffic_new_ipv4",
                "add 2 element(s) to set traffic_in_ipv4",
                "add 2 element(s) to set traffic_out_ipv4",
            ]
        );
        assert_eq!(
            shown(&plan[skeleton.len() + 3..]),
            shown(&super::plan(&op, &installed(std::slice::from_ref(&have))).unwrap())
        );
        // Deleting the last service deletes the table, counters or not.
        assert_eq!(
            shown(&super::plan(&Op::DeleteService(have.key), &old).unwrap()),
            ["delete table inet appliance"]
        );
    }

    #[test]
    fn ipv6_source_hash_hashes_16_bytes_and_takes_the_port_after_them() {
        let key = ServiceKey::Socket {
            protocol: Protocol::Udp,
            address: "[2001:db8::1]:53".parse().unwrap(),
        };
        let mut svc = VirtualService {
            key,
            ..service(Scheduler::Sh, &[])
        };
        let d = Destination {
            address: "[2001:db8::2]:53".parse().unwrap(),
            ..dest(0, 1)
        };
        svc.destinations.insert(d.address, d.clone());
        let have = VirtualService {
            destinations: BTreeMap::new(),
            ..svc.clone()
        };
        let op = Op::AddDestination {
            service: key,
            destination: d,
        };
        let plan = plan(&op, &installed(&[have])).unwrap();
        let Some(Request::NewRule { exprs, .. }) = plan.get(3) else {
            panic!("{plan:?}")
        };
        assert_eq!(
            exprs[4..],
            [
                Expr::Payload {
                    dreg: Reg::R1,
                    base: PayloadBase::Network,
                    offset: 24,
                    len: 16
                },
                Expr::CmpEq {
                    sreg: Reg::R1,
                    data: addr_bytes("2001:db8::1".parse().unwrap())
                },
                Expr::Payload {
                    dreg: Reg::R1,
                    base: PayloadBase::Transport,
                    offset: 2,
                    len: 2
                },
                Expr::CmpEq {
                    sreg: Reg::R1,
                    data: vec![0, 53]
                },
                Expr::Payload {
                    dreg: Reg::R2,
                    base: PayloadBase::Network,
                    offset: 8,
                    len: 16
                },
                Expr::Jhash {
                    sreg: Reg::R2,
                    dreg: Reg::R1,
                    len: 16,
                    modulus: 1,
                    seed: JHASH_SEED
                },
                Expr::Lookup {
                    sreg: Reg::R1,
                    dreg: Reg::R1,
                    set: "__map%d".into(),
                    set_id: 1
                },
                Expr::Dnat {
                    family: 10,
                    addr: Reg::R1,
                    proto: Reg(12)
                },
            ]
        );
    }

    #[test]
    fn deleting_the_last_service_deletes_the_table() {
        let a = service(Scheduler::Rr, &[dest(11, 1)]);
        let b = VirtualService {
            key: ServiceKey::Socket {
                protocol: Protocol::Udp,
                address: "10.0.1.100:53".parse().unwrap(),
            },
            ..a.clone()
        };
        assert_eq!(
            shown(
                &plan(
                    &Op::DeleteService(a.key),
                    &installed(std::slice::from_ref(&a))
                )
                .unwrap()
            ),
            ["delete table inet appliance"]
        );
        assert_eq!(
            shown(&plan(&Op::DeleteService(a.key), &installed(&[a.clone(), b])).unwrap()),
            [
                "delete rule 10 of chain services",
                "delete map tcp_10.0.1.100_80",
                "delete 1 element(s) from traffic_new_ipv4",
                "delete 1 element(s) from traffic_in_ipv4",
                "delete 1 element(s) from traffic_out_ipv4",
            ]
        );
    }

    #[test]
    fn refused_and_impossible_operations_are_errors() {
        let have = service(Scheduler::Rr, &[dest(11, 1)]);
        let lc = Op::EditService(service(Scheduler::Lc, &[]));
        assert!(matches!(
            plan(&lc, &installed(std::slice::from_ref(&have))),
            Err(PlanError::Refused(..))
        ));
        let missing = Op::EditDestination {
            service: have.key,
            destination: dest(12, 1),
        };
        assert_eq!(
            plan(&missing, &installed(std::slice::from_ref(&have))),
            Err(PlanError::NoDestination {
                service: have.key,
                address: dest(12, 1).address
            })
        );
        assert_eq!(
            plan(
                &Op::AddService(have.clone()),
                &installed(std::slice::from_ref(&have))
            ),
            Err(PlanError::Exists(have.key))
        );
        assert_eq!(
            plan(&Op::DeleteService(have.key), &Installed::default()),
            Err(PlanError::Absent(have.key))
        );
    }
}
