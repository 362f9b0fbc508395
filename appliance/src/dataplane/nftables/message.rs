//! The nf_tables requests of [`super::ruleset`] as messages of
//! `netlink_packet_nftables`, and the batch that makes them one
//! transaction.

use super::nla::{
    ChainAttr, ElemAttr, ElemListAttr, Element, HookAttr, RuleAttr, SetAttr, TableAttr, Verdict,
};
use super::request::{FAMILY_INET, Request, TABLE};
use netlink_packet_core::{NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_REQUEST};
pub use netlink_packet_nftables::message::{Body, Command, DUMP, GET, Kind, NftMessage, frame};

/// A message about the appliance's table (of the `inet` family).
fn message(command: Command, body: Body) -> NftMessage {
    NftMessage::new(FAMILY_INET, command, body)
}

/// A request message with its flags.
pub fn request_message(request: &Request) -> (NftMessage, u16) {
    let table = || TABLE.to_owned();
    let new = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE;
    let del = NLM_F_REQUEST | NLM_F_ACK;
    match request {
        Request::NewTable => (
            message(
                Command::NewTable,
                Body::Table(vec![TableAttr::Name(table()), TableAttr::Flags(0)]),
            ),
            new,
        ),
        Request::DelTable => (
            message(
                Command::DelTable,
                Body::Table(vec![TableAttr::Name(table())]),
            ),
            del,
        ),
        Request::NewBaseChain(chain) => (
            message(
                Command::NewChain,
                Body::Chain(vec![
                    ChainAttr::Table(table()),
                    ChainAttr::Name(chain.name.to_owned()),
                    ChainAttr::Hook(vec![
                        HookAttr::Number(chain.hook),
                        HookAttr::Priority(chain.priority),
                    ]),
                    ChainAttr::Policy(Verdict::Accept),
                    ChainAttr::Type(chain.kind.name().to_owned()),
                ]),
            ),
            new,
        ),
        Request::NewChain(name) => (
            message(
                Command::NewChain,
                Body::Chain(vec![
                    ChainAttr::Table(table()),
                    ChainAttr::Name((*name).to_owned()),
                ]),
            ),
            new,
        ),
        Request::NewRule {
            chain,
            exprs,
            comment,
        } => {
            let mut attrs = vec![
                RuleAttr::Table(table()),
                RuleAttr::Chain((*chain).to_owned()),
                RuleAttr::Expressions(exprs.clone()),
            ];
            attrs.extend(
                comment
                    .as_deref()
                    .map(|c| RuleAttr::UserData(super::ruleset::comment_userdata(c))),
            );
            (
                message(Command::NewRule, Body::Rule(attrs)),
                new | NLM_F_APPEND,
            )
        }
        Request::DelRule { chain, handle } => (
            message(
                Command::DelRule,
                Body::Rule(vec![
                    RuleAttr::Table(table()),
                    RuleAttr::Chain((*chain).to_owned()),
                    RuleAttr::Handle(*handle),
                ]),
            ),
            del,
        ),
        Request::NewSet(spec) => {
            let mut attrs = vec![
                SetAttr::Table(table()),
                SetAttr::Name(spec.name.clone()),
                SetAttr::Flags(spec.flags),
                SetAttr::KeyType(spec.key_type),
                SetAttr::KeyLen(spec.key_len),
            ];
            if let Some((kind, len)) = spec.data {
                attrs.extend([SetAttr::DataType(kind), SetAttr::DataLen(len)]);
            }
            attrs.push(SetAttr::Id(spec.id));
            if spec.counter {
                attrs.push(SetAttr::Counter);
            }
            if !spec.userdata.is_empty() {
                attrs.push(SetAttr::UserData(spec.userdata.clone()));
            }
            (message(Command::NewSet, Body::Set(attrs)), new)
        }
        Request::DelSet(name) => (
            message(
                Command::DelSet,
                Body::Set(vec![SetAttr::Table(table()), SetAttr::Name(name.clone())]),
            ),
            del,
        ),
        Request::NewElements {
            set,
            set_id,
            elements,
        } => {
            let mut attrs = vec![ElemListAttr::Table(table()), ElemListAttr::Set(set.clone())];
            attrs.extend(set_id.map(ElemListAttr::SetId));
            attrs.push(ElemListAttr::Elements(
                elements
                    .iter()
                    .map(|(k, d)| {
                        Element(vec![ElemAttr::Key(k.clone()), ElemAttr::Data(d.clone())])
                    })
                    .collect(),
            ));
            (message(Command::NewSetElem, Body::Elements(attrs)), new)
        }
        Request::NewKeys { set, keys } => (message(Command::NewSetElem, keys_of(set, keys)), new),
        Request::DelElements { set, keys } => {
            (message(Command::DelSetElem, keys_of(set, keys)), del)
        }
    }
}

/// Elements of `set` named by their keys alone.
fn keys_of(set: &str, keys: &[Vec<u8>]) -> Body {
    Body::Elements(vec![
        ElemListAttr::Table(TABLE.to_owned()),
        ElemListAttr::Set(set.to_owned()),
        ElemListAttr::Elements(
            keys.iter()
                .map(|k| Element(vec![ElemAttr::Key(k.clone())]))
                .collect(),
        ),
    ])
}

/// The request to look the appliance's table up.
pub fn get_table() -> NftMessage {
    message(
        Command::GetTable,
        Body::Table(vec![TableAttr::Name(TABLE.to_owned())]),
    )
}

/// The dump request of the table's rules.
pub fn dump_rules() -> NftMessage {
    message(
        Command::GetRule,
        Body::Rule(vec![RuleAttr::Table(TABLE.to_owned())]),
    )
}

/// The dump request of a set's elements.
pub fn dump_elements(set: &str) -> NftMessage {
    message(
        Command::GetSetElem,
        Body::Elements(vec![
            ElemListAttr::Table(TABLE.to_owned()),
            ElemListAttr::Set(set.to_owned()),
        ]),
    )
}

/// The requests as one transaction: the batch markers around them, message
/// `i` with sequence number `first + 1 + i` (the begin marker has `first`).
pub fn batch(requests: &[Request], first: u32) -> Vec<u8> {
    let mut out = frame(NftMessage::batch(Kind::BatchBegin), NLM_F_REQUEST, first);
    let mut seq = first;
    for request in requests {
        seq = seq.wrapping_add(1);
        let (message, flags) = request_message(request);
        out.extend(frame(message, flags, seq));
    }
    out.extend(frame(
        NftMessage::batch(Kind::BatchEnd),
        NLM_F_REQUEST,
        seq.wrapping_add(1),
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::nftables::nla::{ElemAttr, Expr, Reg};
    use crate::dataplane::nftables::ruleset::{Installed, InstalledService, plan};
    use crate::dataplane::{
        Destination, Forwarding, Op, Protocol, SchedFlags, Scheduler, ServiceKey, VirtualService,
        Weight,
    };
    use netlink_packet_core::{NetlinkMessage, NetlinkPayload};

    /// Hex, 16 bytes a line.
    fn hex(bytes: &[u8]) -> String {
        bytes
            .chunks(16)
            .map(|line| {
                line.chunks(4)
                    .map(|word| word.iter().map(|b| format!("{b:02x}")).collect::<String>())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Each message of the batch under what it does. Numbers the host
    /// writes in its own order (pick map keys, nft's byte-order note) are
    /// little-endian here: the snapshots are of an x86-64 host.
    fn render(requests: &[Request]) -> String {
        let bytes = batch(requests, 100);
        let mut out = String::new();
        let mut rest = bytes.as_slice();
        let mut titles = std::iter::once("batch begin".to_owned())
            .chain(requests.iter().map(ToString::to_string))
            .chain(std::iter::once("batch end".to_owned()));
        while !rest.is_empty() {
            let len = u32::from_ne_bytes(rest[..4].try_into().unwrap()) as usize;
            out.push_str(&format!(
                "# {}\n{}\n",
                titles.next().unwrap(),
                hex(&rest[..len])
            ));
            rest = &rest[len..];
        }
        out
    }

    fn service(scheduler: Scheduler, weights: &[(u8, u32)]) -> VirtualService {
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
            destinations: weights
                .iter()
                .map(|(last, w)| {
                    let address = std::net::SocketAddr::from(([10, 0, 2, *last], 8080));
                    (
                        address,
                        Destination {
                            address,
                            weight: Weight::new(*w).unwrap(),
                            forwarding: Forwarding::Nat,
                            upper_threshold: 0,
                            lower_threshold: 0,
                        },
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn batch_snapshots() {
        let first = plan(
            &Op::AddService(service(Scheduler::Rr, &[])),
            &Installed::default(),
        )
        .unwrap();
        insta::assert_snapshot!("first_service", render(&first));

        let mut have = service(Scheduler::Wrr, &[(11, 1)]);
        have.masquerade = true;
        let installed = Installed {
            table_exists: true,
            counting: true,
            services: [(
                have.key,
                InstalledService {
                    service: have.clone(),
                    rule: 4,
                    masquerade_rule: Some(7),
                },
            )]
            .into(),
        };
        let op = Op::AddDestination {
            service: have.key,
            destination: service(Scheduler::Wrr, &[(12, 2)])
                .destinations
                .into_values()
                .next()
                .unwrap(),
        };
        insta::assert_snapshot!(
            "add_wrr_destination_masquerade",
            render(&plan(&op, &installed).unwrap())
        );

        insta::assert_snapshot!(
            "delete_last_service",
            render(&plan(&Op::DeleteService(have.key), &installed).unwrap())
        );
    }

    #[test]
    fn query_snapshots() {
        insta::assert_snapshot!(
            "queries",
            [
                hex(&frame(get_table(), GET, 1)),
                hex(&frame(dump_rules(), DUMP, 2)),
                hex(&frame(dump_elements("tcp_10.0.1.100_80"), DUMP, 3)),
            ]
            .join("\n--\n")
        );
    }

    fn reparse(message: NftMessage, flags: u16) -> NftMessage {
        let bytes = frame(message, flags, 9);
        match NetlinkMessage::<NftMessage>::deserialize(&bytes)
            .unwrap()
            .payload
        {
            NetlinkPayload::InnerMessage(m) => m,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rules_and_elements_decode_what_the_appliance_reads() {
        let rule = message(
            Command::NewRule,
            Body::Rule(vec![
                RuleAttr::Table("appliance".into()),
                RuleAttr::Chain("services".into()),
                RuleAttr::Handle(0x1_0000_0002),
                RuleAttr::Expressions(vec![Expr::Meta {
                    dreg: Reg::R1,
                    key: crate::dataplane::nftables::nla::MetaKey::L4Proto,
                }]),
                RuleAttr::UserData(vec![0, 2, b'x', 0]),
            ]),
        );
        let Body::Rule(attrs) = reparse(rule, 0).body else {
            panic!("not a rule")
        };
        assert_eq!(
            attrs[..3],
            [
                RuleAttr::Table("appliance".into()),
                RuleAttr::Chain("services".into()),
                RuleAttr::Handle(0x1_0000_0002),
            ]
        );
        assert!(matches!(attrs[3], RuleAttr::Other(_)));
        assert_eq!(attrs[4], RuleAttr::UserData(vec![0, 2, b'x', 0]));

        let elements = message(
            Command::NewSetElem,
            Body::Elements(vec![
                ElemListAttr::Table("appliance".into()),
                ElemListAttr::Set("m".into()),
                ElemListAttr::Elements(vec![Element(vec![
                    ElemAttr::Key(vec![10, 0, 2, 11, 0x1f, 0x90, 0, 0]),
                    ElemAttr::Data(vec![0, 0, 0, 3]),
                ])]),
            ]),
        );
        let Body::Elements(attrs) = reparse(elements, 0).body else {
            panic!("not elements")
        };
        let ElemListAttr::Elements(list) = &attrs[2] else {
            panic!("{attrs:?}")
        };
        assert_eq!(list[0].key(), Some(&[10, 0, 2, 11, 0x1f, 0x90, 0, 0][..]));
        assert_eq!(list[0].data(), Some(&[0, 0, 0, 3][..]));
    }
}
