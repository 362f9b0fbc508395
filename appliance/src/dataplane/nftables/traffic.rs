//! What the nftables dataplane counts per service and real server, as IPVS
//! does: connections, and packets and bytes each way, kept by nf_tables in
//! sets whose elements carry counters; and the rates from successive
//! reads. Sans-IO: the requests that create and fill the sets, the element
//! keys, and the arithmetic.
//!
//! ```text
//! table inet appliance {
//!     set traffic_in_ipv4 {           # one element per service and server
//!         type inet_proto . ipv4_addr . inet_service . ipv4_addr . inet_service
//!         counter
//!         elements = { tcp . 10.0.1.100 . 80 . 10.0.2.11 . 8080 counter packets 4 bytes 240 }
//!     }
//!     set traffic_out_ipv4 { ... }  set traffic_new_ipv4 { ... }  (and _ipv6)
//!     chain traffic_new { type nat hook postrouting priority 99;
//!         ct original protocol . ct original ip daddr . ct original proto-dst
//!             . ct reply ip saddr . ct reply proto-src @traffic_new_ipv4 }
//!     chain traffic_prerouting { type filter hook prerouting priority 0;
//!         iif lo accept                # sent by the director: counted in output
//!         jump traffic }
//!     chain traffic_output     { type filter hook output priority 0;     jump traffic }
//!     chain traffic {
//!         ct direction original <the same key> @traffic_in_ipv4
//!         ct direction reply    <the same key> @traffic_out_ipv4
//!     }
//! }
//! ```
//!
//! The key is read from conntrack, not from the packet: after the DNAT the
//! original tuple still names the service and the reply tuple the real
//! server, for every packet either way, masqueraded or not. Connections
//! are counted in a nat chain because nf_tables calls those for a
//! connection's first packet only, as IPVS counts a connection once (a
//! filter chain's `ct state new` would also count each retransmitted SYN).
//! Elements come and go with the real servers (added with one, removed
//! with it), never with a weight change, so the counts run from the
//! server's addition, as IPVS's do.

use super::nla::{CtDir, CtKey, Expr, Hook, MetaKey, Reg, Verdict};
use super::request::{BaseChain, ChainType, ELEMENTS_PER_MESSAGE, Request, SetSpec, target_bytes};
use crate::dataplane::ipvs::listing::Traffic;
use crate::dataplane::{Family, ServiceKey};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The regular chain both counting base chains jump to.
pub const TRAFFIC: &str = "traffic";
pub const TRAFFIC_NEW: &str = "traffic_new";
pub const TRAFFIC_PREROUTING: &str = "traffic_prerouting";
pub const TRAFFIC_OUTPUT: &str = "traffic_output";

/// The chains that hold only the counting rules.
pub const CHAINS: [&str; 4] = [TRAFFIC, TRAFFIC_NEW, TRAFFIC_PREROUTING, TRAFFIC_OUTPUT];

/// The loopback interface's index, the same in every network namespace.
const LOOPBACK_IFINDEX: u32 = 1;

/// Batch ids of the sets, after the ruleset's own.
const FIRST_SET_ID: u32 = 16;

/// The counting base chains. Connections at srcnat - 1, so that they are
/// counted before the appliance's masquerade (at srcnat) sets the source;
/// packets at filter priority, after the DNAT has set the reply tuple.
pub const BASE_CHAINS: [BaseChain; 3] = [
    BaseChain {
        name: TRAFFIC_NEW,
        kind: ChainType::Nat,
        hook: Hook::PostRouting,
        priority: 99,
    },
    BaseChain {
        name: TRAFFIC_PREROUTING,
        kind: ChainType::Filter,
        hook: Hook::PreRouting,
        priority: 0,
    },
    BaseChain {
        name: TRAFFIC_OUTPUT,
        kind: ChainType::Filter,
        hook: Hook::LocalOut,
        priority: 0,
    },
];

/// What a set counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Count {
    /// Connections: packets of the nat chain, one per connection.
    New,
    /// Packets and bytes from clients to the real server.
    In,
    /// Packets and bytes from the real server back.
    Out,
}

impl Count {
    pub const ALL: [Count; 3] = [Count::New, Count::In, Count::Out];

    fn word(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::In => "in",
            Self::Out => "out",
        }
    }
}

const FAMILIES: [Family; 2] = [Family::Ipv4, Family::Ipv6];

fn family_word(family: Family) -> &'static str {
    match family {
        Family::Ipv4 => "ipv4",
        Family::Ipv6 => "ipv6",
    }
}

/// `traffic_in_ipv4`.
pub fn set_name(count: Count, family: Family) -> String {
    format!("traffic_{}_{}", count.word(), family_word(family))
}

/// Every counting set, with what it counts.
pub fn sets() -> impl Iterator<Item = (Count, Family, String)> {
    FAMILIES.into_iter().flat_map(|family| {
        Count::ALL
            .into_iter()
            .map(move |count| (count, family, set_name(count, family)))
    })
}

/// Bytes of `protocol . address . port . address . port` in registers:
/// each part padded to 4 bytes.
fn key_len(family: Family) -> u32 {
    let addr = match family {
        Family::Ipv4 => 4,
        Family::Ipv6 => 16,
    };
    4 + addr + 4 + addr + 4
}

/// nft's data types of the key, for `nft list`.
fn key_type(family: Family) -> u32 {
    const INET_PROTOCOL: u32 = 12;
    const IPADDR: u32 = 7;
    const IP6ADDR: u32 = 8;
    const INET_SERVICE: u32 = 13;
    let addr = match family {
        Family::Ipv4 => IPADDR,
        Family::Ipv6 => IP6ADDR,
    };
    [INET_PROTOCOL, addr, INET_SERVICE, addr, INET_SERVICE]
        .into_iter()
        .fold(0, |acc, t| (acc << 6) | t)
}

/// A real server's element key in its service's family's sets; `None` for
/// a firewall-mark service (which the nftables dataplane refuses).
pub fn element_key(service: &ServiceKey, server: SocketAddr) -> Option<Vec<u8>> {
    let ServiceKey::Socket { protocol, address } = service else {
        return None;
    };
    let mut key = vec![u8::try_from(protocol.number()).unwrap_or(u8::MAX), 0, 0, 0];
    key.extend(target_bytes(*address));
    key.extend(target_bytes(server));
    Some(key)
}

/// The sets, the chains and their rules: what a table holds before its
/// first real server.
pub fn skeleton() -> Vec<Request> {
    let mut out: Vec<Request> = sets()
        .zip(FIRST_SET_ID..)
        .map(|((_, family, name), id)| {
            Request::NewSet(SetSpec {
                name,
                id,
                flags: 0,
                key_type: key_type(family),
                key_len: key_len(family),
                data: None,
                counter: true,
                userdata: Vec::new(),
            })
        })
        .collect();
    out.extend(BASE_CHAINS.map(Request::NewBaseChain));
    out.push(Request::NewChain(TRAFFIC));
    for family in FAMILIES {
        out.push(Request::NewRule {
            chain: TRAFFIC_NEW,
            exprs: lookup(family, Count::New),
            comment: None,
        });
    }
    // A packet the director sends itself (to a real server on it) passes
    // output, then prerouting again from loopback: counted once, in output.
    out.push(Request::NewRule {
        chain: TRAFFIC_PREROUTING,
        exprs: vec![
            Expr::Meta {
                dreg: Reg::R1,
                key: MetaKey::Iif,
            },
            Expr::CmpEq {
                sreg: Reg::R1,
                data: LOOPBACK_IFINDEX.to_ne_bytes().to_vec(),
            },
            Expr::Verdict(Verdict::Accept),
        ],
        comment: None,
    });
    for chain in [TRAFFIC_PREROUTING, TRAFFIC_OUTPUT] {
        out.push(Request::NewRule {
            chain,
            exprs: vec![Expr::Verdict(Verdict::Jump(TRAFFIC.to_owned()))],
            comment: None,
        });
    }
    for family in FAMILIES {
        for (count, dir) in [(Count::In, CtDir::Original), (Count::Out, CtDir::Reply)] {
            let mut exprs = vec![
                Expr::Ct {
                    dreg: Reg::R1,
                    key: CtKey::Direction,
                    dir: None,
                },
                Expr::CmpEq {
                    sreg: Reg::R1,
                    data: vec![dir as u8],
                },
            ];
            exprs.extend(lookup(family, count));
            out.push(Request::NewRule {
                chain: TRAFFIC,
                exprs,
                comment: None,
            });
        }
    }
    out
}

/// The key from conntrack into consecutive 4-byte registers, and its
/// lookup in `count`'s set. A connection of the other family stops at the
/// first address (conntrack has no such address), so the rule needs no
/// family match.
fn lookup(family: Family, count: Count) -> Vec<Expr> {
    let (src, dst, addr_len) = match family {
        Family::Ipv4 => (CtKey::SrcIp, CtKey::DstIp, 4),
        Family::Ipv6 => (CtKey::SrcIp6, CtKey::DstIp6, 16),
    };
    let parts = [
        (CtKey::Protocol, CtDir::Original, 4),
        (dst, CtDir::Original, addr_len),
        (CtKey::ProtoDst, CtDir::Original, 4),
        (src, CtDir::Reply, addr_len),
        (CtKey::ProtoSrc, CtDir::Reply, 4),
    ];
    let mut offset = 0;
    let mut exprs = Vec::new();
    for (key, dir, len) in parts {
        exprs.push(Expr::Ct {
            dreg: Reg::after_r1(offset),
            key,
            dir: Some(dir),
        });
        offset += len;
    }
    exprs.push(Expr::InSet {
        sreg: Reg::after_r1(0),
        set: set_name(count, family),
    });
    exprs
}

/// The requests adding `servers` of `service` to the sets.
pub fn add(service: &ServiceKey, servers: &[SocketAddr]) -> Vec<Request> {
    per_set(service, servers, |set, keys| Request::NewKeys { set, keys })
}

/// The requests removing `servers` of `service` from the sets.
pub fn remove(service: &ServiceKey, servers: &[SocketAddr]) -> Vec<Request> {
    per_set(service, servers, |set, keys| Request::DelElements {
        set,
        keys,
    })
}

fn per_set(
    service: &ServiceKey,
    servers: &[SocketAddr],
    request: impl Fn(String, Vec<Vec<u8>>) -> Request,
) -> Vec<Request> {
    let keys: Vec<Vec<u8>> = servers
        .iter()
        .filter_map(|s| element_key(service, *s))
        .collect();
    if keys.is_empty() {
        return Vec::new();
    }
    Count::ALL
        .into_iter()
        .flat_map(|count| {
            keys.chunks(ELEMENTS_PER_MESSAGE)
                .map(|chunk| request(set_name(count, service.family()), chunk.to_vec()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// What the sets held at one read: each element's packets and bytes, per
/// set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counted {
    pub sets: HashMap<Count, HashMap<Vec<u8>, Counter>>,
}

pub use super::nla::Counter;

impl Counted {
    /// An element's counts, in [`Traffic`]'s order: connections, packets
    /// in and out, bytes in and out. `None` when the sets do not hold it
    /// (a table made before them, not yet changed).
    pub fn counts(&self, key: &[u8]) -> Option<[u64; 5]> {
        let get = |count| self.sets.get(&count)?.get(key).copied();
        let (new, into, out) = (get(Count::New)?, get(Count::In)?, get(Count::Out)?);
        Some([
            new.packets,
            into.packets,
            out.packets,
            into.bytes,
            out.bytes,
        ])
    }
}

/// The shortest time rates are taken over: reads closer together keep the
/// last rates, so a page polled often shows no noise.
pub const RATE_INTERVAL: Duration = Duration::from_secs(2);

/// The rates of each element, from the counts of successive reads: the
/// difference over the time between them (at least [`RATE_INTERVAL`]), as
/// IPVS's estimator rates each destination over its last few seconds.
#[derive(Debug, Default)]
pub struct Rates {
    samples: HashMap<Vec<u8>, Sample>,
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    counts: [u64; 5],
    rates: [u64; 5],
}

impl Rates {
    /// Takes the counts of every element read at `now`, and forgets the
    /// elements no longer there.
    pub fn update(&mut self, now: Instant, counted: &Counted) {
        let keys: Vec<&Vec<u8>> = counted
            .sets
            .get(&Count::In)
            .map(|s| s.keys().collect())
            .unwrap_or_default();
        let mut samples = HashMap::with_capacity(keys.len());
        for key in keys {
            let Some(counts) = counted.counts(key) else {
                continue;
            };
            let sample = match self.samples.remove(key) {
                None => Sample {
                    at: now,
                    counts,
                    rates: [0; 5],
                },
                Some(last) => next(last, now, counts),
            };
            samples.insert(key.clone(), sample);
        }
        self.samples = samples;
    }

    /// The element's rates as of the last update.
    pub fn rates(&self, key: &[u8]) -> [u64; 5] {
        self.samples.get(key).map(|s| s.rates).unwrap_or_default()
    }
}

fn next(last: Sample, now: Instant, counts: [u64; 5]) -> Sample {
    let elapsed = now.saturating_duration_since(last.at);
    if counts
        .iter()
        .zip(&last.counts)
        .any(|(now, then)| now < then)
    {
        // The element was removed and added again between two reads: its
        // counts start over.
        return Sample {
            at: now,
            counts,
            rates: [0; 5],
        };
    }
    if elapsed < RATE_INTERVAL {
        return last;
    }
    let micros = elapsed.as_micros().max(1);
    let mut rates = [0; 5];
    for ((rate, now), then) in rates.iter_mut().zip(counts).zip(last.counts) {
        let per_second = u128::from(now - then) * 1_000_000 / micros;
        *rate = u64::try_from(per_second).unwrap_or(u64::MAX);
    }
    Sample {
        at: now,
        counts,
        rates,
    }
}

/// A real server's traffic as the sets and rates have it.
pub fn traffic(
    counted: &Counted,
    rates: &Rates,
    service: &ServiceKey,
    server: SocketAddr,
) -> Option<Traffic> {
    let key = element_key(service, server)?;
    let counts = counted.counts(&key)?;
    Some(Traffic::from_parts(counts, rates.rates(&key)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::Protocol;
    use crate::dataplane::nftables::message;
    use crate::dataplane::nftables::nla::{ElemAttr, ElemListAttr, Element};
    use netlink_packet_core::{Emitable, NLA_F_NESTED, NetlinkMessage, NlaBuffer, Parseable};

    fn tcp(address: &str) -> ServiceKey {
        ServiceKey::Socket {
            protocol: Protocol::Tcp,
            address: address.parse().unwrap(),
        }
    }

    #[test]
    fn keys_are_protocol_service_and_server_as_nft_concatenates_them() {
        let key = element_key(&tcp("10.0.1.100:80"), "10.0.2.11:8080".parse().unwrap());
        assert_eq!(
            key.unwrap(),
            [
                6, 0, 0, 0, 10, 0, 1, 100, 0, 80, 0, 0, 10, 0, 2, 11, 0x1f, 0x90, 0, 0
            ]
        );
        let v6 = ServiceKey::Socket {
            protocol: Protocol::Udp,
            address: "[2001:db8::1]:53".parse().unwrap(),
        };
        let key = element_key(&v6, "[2001:db8::2]:53".parse().unwrap()).unwrap();
        assert_eq!(key.len() as u32, key_len(Family::Ipv6));
        assert_eq!(key[0], 17);
        let fwmark = ServiceKey::Fwmark {
            family: Family::Ipv4,
            mark: 1,
        };
        assert_eq!(element_key(&fwmark, "10.0.2.11:80".parse().unwrap()), None);
        // nft's own numbers: `inet_proto . ipv4_addr . inet_service . ...`.
        assert_eq!(key_type(Family::Ipv4), 0x0c1c_d1cd);
    }

    #[test]
    fn the_lookups_fill_consecutive_registers_and_fit_in_them() {
        for (family, last) in [(Family::Ipv4, 12), (Family::Ipv6, 18)] {
            let exprs = lookup(family, Count::In);
            let regs: Vec<u32> = exprs
                .iter()
                .filter_map(|e| match e {
                    Expr::Ct { dreg, .. } => Some(dreg.0),
                    _ => None,
                })
                .collect();
            let addr = (key_len(family) - 12) / 8;
            assert_eq!(
                regs,
                [8, 9, 9 + addr, 10 + addr, 10 + 2 * addr],
                "{family:?}"
            );
            // NFT_REG32_15 (23) is the last register.
            assert_eq!(8 + key_len(family) / 4 - 1, last);
            assert_eq!(
                exprs.last(),
                Some(&Expr::InSet {
                    sreg: Reg(8),
                    set: set_name(Count::In, family)
                })
            );
        }
    }

    #[test]
    fn the_skeleton_makes_six_counting_sets_and_the_chains_that_fill_them() {
        let shown: Vec<String> = skeleton().iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "create set traffic_new_ipv4",
                "create set traffic_in_ipv4",
                "create set traffic_out_ipv4",
                "create set traffic_new_ipv6",
                "create set traffic_in_ipv6",
                "create set traffic_out_ipv6",
                "create chain traffic_new",
                "create chain traffic_prerouting",
                "create chain traffic_output",
                "create chain traffic",
                "add rule to chain traffic_new",
                "add rule to chain traffic_new",
                "add rule to chain traffic_prerouting",
                "add rule to chain traffic_prerouting",
                "add rule to chain traffic_output",
                "add rule to chain traffic",
                "add rule to chain traffic",
                "add rule to chain traffic",
                "add rule to chain traffic",
            ]
        );
        let Some(Request::NewSet(set)) = skeleton().into_iter().next() else {
            panic!("a set first")
        };
        assert!(set.counter && set.data.is_none(), "{set:?}");
        // The packets' rules take their direction first.
        let Some(Request::NewRule { exprs, .. }) = skeleton().pop() else {
            panic!("a rule last")
        };
        assert_eq!(
            exprs[..2],
            [
                Expr::Ct {
                    dreg: Reg::R1,
                    key: CtKey::Direction,
                    dir: None
                },
                Expr::CmpEq {
                    sreg: Reg::R1,
                    data: vec![CtDir::Reply as u8]
                }
            ]
        );
    }

    #[test]
    fn servers_come_and_go_in_their_family_s_three_sets() {
        let v6 = ServiceKey::Socket {
            protocol: Protocol::Udp,
            address: "[2001:db8::1]:53".parse().unwrap(),
        };
        let servers = ["[2001:db8::2]:53".parse().unwrap()];
        let shown = |r: Vec<Request>| r.iter().map(ToString::to_string).collect::<Vec<_>>();
        assert_eq!(
            shown(add(&v6, &servers)),
            [
                "add 1 element(s) to set traffic_new_ipv6",
                "add 1 element(s) to set traffic_in_ipv6",
                "add 1 element(s) to set traffic_out_ipv6",
            ]
        );
        assert_eq!(
            shown(remove(&tcp("10.0.1.100:80"), &[])),
            Vec::<String>::new()
        );
        assert_eq!(shown(remove(&v6, &servers)).len(), 3);
    }

    /// A kernel's answer to a dump of `traffic_in_ipv4` (6.18, after one
    /// local connection through the service), as captured: the counter comes
    /// as `NFTA_SET_ELEM_EXPR`, its attributes without `NLA_F_NESTED`.
    const KERNEL_DUMP: &str = concat!(
        "880000000c0a020001000000657a00000100000a0e0001006170706c69616e63",
        "6500000014000200747261666669635f696e5f6970763400500003004c000100",
        "1c00010018000100060000000a000164005000000a00020b1f9000002c000700",
        "0c000100636f756e746572001c0002000c00010000000000000001450c000200",
        "0000000000000006",
    );

    #[test]
    fn counters_decode_from_the_kernel_s_own_answer() {
        let bytes: Vec<u8> = (0..KERNEL_DUMP.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&KERNEL_DUMP[i..i + 2], 16).unwrap())
            .collect();
        let message = NetlinkMessage::<message::NftMessage>::deserialize(&bytes).unwrap();
        let netlink_packet_core::NetlinkPayload::InnerMessage(m) = message.payload else {
            panic!("{message:?}")
        };
        let message::Body::Elements(attrs) = m.body else {
            panic!("{m:?}")
        };
        let elements: Vec<Element> = attrs
            .into_iter()
            .filter_map(|a| match a {
                ElemListAttr::Elements(e) => Some(e),
                _ => None,
            })
            .flatten()
            .collect();
        let key = element_key(&tcp("10.0.1.100:80"), "10.0.2.11:8080".parse().unwrap());
        assert_eq!(elements.len(), 1);
        assert_eq!(elements[0].key().map(<[u8]>::to_vec), key);
        assert_eq!(
            elements[0].counter(),
            Some(Counter {
                packets: 6,
                bytes: 325
            })
        );
    }

    /// An element dump written by the message layer and decoded again: one
    /// element with its counter (`NFTA_SET_ELEM_EXPR`).
    #[test]
    fn counters_decode_from_an_element_dump() {
        let key = element_key(&tcp("10.0.1.100:80"), "10.0.2.11:8080".parse().unwrap()).unwrap();
        let counter = Counter {
            packets: 7,
            bytes: 4_000_000_000_000,
        };
        let sent = message::NftMessage::new(
            1,
            message::Command::NewSetElem,
            message::Body::Elements(vec![
                ElemListAttr::Table("appliance".into()),
                ElemListAttr::Set("traffic_in_ipv4".into()),
                ElemListAttr::Elements(vec![Element(vec![
                    ElemAttr::Key(key.clone()),
                    ElemAttr::Counter(counter),
                ])]),
            ]),
        );
        let bytes = message::frame(sent, message::DUMP, 1);
        let back = NetlinkMessage::<message::NftMessage>::deserialize(&bytes).unwrap();
        let netlink_packet_core::NetlinkPayload::InnerMessage(m) = back.payload else {
            panic!("{back:?}")
        };
        let message::Body::Elements(attrs) = m.body else {
            panic!("{m:?}")
        };
        let elements: Vec<Element> = attrs
            .into_iter()
            .filter_map(|a| match a {
                ElemListAttr::Elements(e) => Some(e),
                _ => None,
            })
            .flatten()
            .collect();
        assert_eq!(elements.len(), 1);
        assert_eq!(elements[0].key(), Some(key.as_slice()));
        assert_eq!(elements[0].counter(), Some(counter));

        // An element with several expressions has them in a list
        // (`NFTA_SET_ELEM_EXPRESSIONS`): the counter is found there too.
        let mut one = vec![0; ElemAttr::Counter(counter).buffer_len()];
        ElemAttr::Counter(counter).emit(&mut one);
        one[2..4].copy_from_slice(&(1u16 | NLA_F_NESTED).to_ne_bytes());
        let mut list = vec![0; 4];
        list[..2].copy_from_slice(&(4 + one.len() as u16).to_ne_bytes());
        list[2..4].copy_from_slice(&(10u16 | NLA_F_NESTED).to_ne_bytes());
        list.extend(one);
        let parsed = ElemAttr::parse(&NlaBuffer::new_checked(&list[..]).unwrap()).unwrap();
        assert_eq!(parsed, ElemAttr::Counter(counter));
    }

    fn counted(key: &[u8], new: u64, packets: [u64; 2], bytes: [u64; 2]) -> Counted {
        let mut counted = Counted::default();
        for (count, packets, bytes) in [
            (Count::New, new, 0),
            (Count::In, packets[0], bytes[0]),
            (Count::Out, packets[1], bytes[1]),
        ] {
            counted
                .sets
                .entry(count)
                .or_default()
                .insert(key.to_vec(), Counter { packets, bytes });
        }
        counted
    }

    #[test]
    fn counts_need_all_three_sets() {
        let c = counted(b"k", 2, [10, 8], [600, 9000]);
        assert_eq!(c.counts(b"k"), Some([2, 10, 8, 600, 9000]));
        assert_eq!(c.counts(b"other"), None);
        let mut partial = c.clone();
        partial.sets.remove(&Count::Out);
        assert_eq!(partial.counts(b"k"), None);
    }

    #[test]
    fn rates_are_taken_over_at_least_two_seconds_and_start_over_with_the_counts() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut rates = Rates::default();
        rates.update(at(0), &counted(b"k", 0, [0, 0], [0, 0]));
        assert_eq!(rates.rates(b"k"), [0; 5]);
        // Too soon: no rate yet, and the interval still runs from t0.
        rates.update(at(1000), &counted(b"k", 10, [100, 50], [1000, 5000]));
        assert_eq!(rates.rates(b"k"), [0; 5]);
        rates.update(at(2500), &counted(b"k", 10, [100, 50], [10_000, 50_000]));
        assert_eq!(rates.rates(b"k"), [4, 40, 20, 4000, 20_000]);
        // Reads in between keep the last rates.
        rates.update(at(3000), &counted(b"k", 99, [999, 999], [99_999, 99_999]));
        assert_eq!(rates.rates(b"k"), [4, 40, 20, 4000, 20_000]);
        // Counts below the last: the element was added again.
        rates.update(at(6000), &counted(b"k", 1, [1, 1], [60, 60]));
        assert_eq!(rates.rates(b"k"), [0; 5]);
        rates.update(at(8000), &counted(b"k", 3, [5, 5], [260, 460]));
        assert_eq!(rates.rates(b"k"), [1, 2, 2, 100, 200]);
        // An element gone is forgotten.
        rates.update(at(9000), &Counted::default());
        assert_eq!(rates.rates(b"k"), [0; 5]);
        assert!(rates.samples.is_empty());
    }

    #[test]
    fn a_server_s_traffic_joins_counts_and_rates() {
        let service = tcp("10.0.1.100:80");
        let server: SocketAddr = "10.0.2.11:8080".parse().unwrap();
        let key = element_key(&service, server).unwrap();
        let c = counted(&key, 2, [10, 8], [600, 9000]);
        let t = traffic(&c, &Rates::default(), &service, server).unwrap();
        assert_eq!(
            (
                t.conns,
                t.in_packets,
                t.out_packets,
                t.in_bytes,
                t.out_bytes
            ),
            (2, 10, 8, 600, 9000)
        );
        assert_eq!(t.conns_per_second, 0);
        let other: SocketAddr = "10.0.2.12:8080".parse().unwrap();
        assert_eq!(traffic(&c, &Rates::default(), &service, other), None);
    }
}
