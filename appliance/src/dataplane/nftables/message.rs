//! nf_tables netlink messages: the `nfgenmsg` header and the attributes of
//! [`super::nla`], the requests of [`super::ruleset`] as messages, and the
//! batch that makes them one transaction (`NFNL_MSG_BATCH_BEGIN` ...
//! `NFNL_MSG_BATCH_END`).

use super::nla::{
    ChainAttr, ElemAttr, ElemListAttr, Element, HookAttr, RuleAttr, SetAttr, TableAttr, Verdict,
};
use super::ruleset::{FAMILY_INET, Request, TABLE};
use netlink_packet_core::{
    DecodeError, Emitable, NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_DUMP, NLM_F_REQUEST,
    NetlinkDeserializable, NetlinkHeader, NetlinkMessage, NetlinkPayload, NetlinkSerializable,
    NlaBuffer, NlasIterator, Parseable,
};

/// `NFNL_SUBSYS_NFTABLES`: the high byte of an nf_tables message type.
const SUBSYS_NFTABLES: u16 = 10;
/// `NFNL_MSG_BATCH_BEGIN` / `_END`.
const BATCH_BEGIN: u16 = 16;
const BATCH_END: u16 = 17;
/// `NFNETLINK_V0`.
const NFNETLINK_V0: u8 = 0;

/// `NFT_MSG_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    NewTable = 0,
    GetTable = 1,
    DelTable = 2,
    NewChain = 3,
    NewRule = 6,
    GetRule = 7,
    DelRule = 8,
    NewSet = 9,
    DelSet = 11,
    NewSetElem = 12,
    GetSetElem = 13,
    DelSetElem = 14,
}

impl Command {
    const ALL: [Command; 12] = [
        Self::NewTable,
        Self::GetTable,
        Self::DelTable,
        Self::NewChain,
        Self::NewRule,
        Self::GetRule,
        Self::DelRule,
        Self::NewSet,
        Self::DelSet,
        Self::NewSetElem,
        Self::GetSetElem,
        Self::DelSetElem,
    ];

    fn from_number(n: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|c| *c as u8 == n)
    }
}

/// A message's attributes, by object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    None,
    Table(Vec<TableAttr>),
    Chain(Vec<ChainAttr>),
    Rule(Vec<RuleAttr>),
    Set(Vec<SetAttr>),
    Elements(Vec<ElemListAttr>),
    /// An answer the appliance does not read.
    Other(Vec<u8>),
}

/// What a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    BatchBegin,
    BatchEnd,
    Nft(Command),
    Other(u16),
}

/// One nfnetlink message: `nfgenmsg` (family, version, resource id) and
/// attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NftMessage {
    pub kind: Kind,
    /// `NFPROTO_*` of the table (`AF_UNSPEC` for batch markers).
    pub family: u8,
    /// Big-endian on the wire; the subsystem for batch markers.
    pub res_id: u16,
    pub body: Body,
}

impl NftMessage {
    pub fn new(command: Command, body: Body) -> Self {
        Self {
            kind: Kind::Nft(command),
            family: FAMILY_INET,
            res_id: 0,
            body,
        }
    }

    fn batch(kind: Kind) -> Self {
        Self {
            kind,
            family: 0,
            res_id: SUBSYS_NFTABLES,
            body: Body::None,
        }
    }
}

impl Emitable for Body {
    fn buffer_len(&self) -> usize {
        match self {
            Self::None => 0,
            Self::Table(a) => a.as_slice().buffer_len(),
            Self::Chain(a) => a.as_slice().buffer_len(),
            Self::Rule(a) => a.as_slice().buffer_len(),
            Self::Set(a) => a.as_slice().buffer_len(),
            Self::Elements(a) => a.as_slice().buffer_len(),
            Self::Other(b) => b.len(),
        }
    }

    fn emit(&self, buffer: &mut [u8]) {
        match self {
            Self::None => {}
            Self::Table(a) => a.as_slice().emit(buffer),
            Self::Chain(a) => a.as_slice().emit(buffer),
            Self::Rule(a) => a.as_slice().emit(buffer),
            Self::Set(a) => a.as_slice().emit(buffer),
            Self::Elements(a) => a.as_slice().emit(buffer),
            Self::Other(b) => buffer.copy_from_slice(b),
        }
    }
}

impl NetlinkSerializable for NftMessage {
    fn message_type(&self) -> u16 {
        match self.kind {
            Kind::BatchBegin => BATCH_BEGIN,
            Kind::BatchEnd => BATCH_END,
            Kind::Nft(c) => (SUBSYS_NFTABLES << 8) | c as u16,
            Kind::Other(t) => t,
        }
    }

    fn buffer_len(&self) -> usize {
        4 + self.body.buffer_len()
    }

    fn serialize(&self, buffer: &mut [u8]) {
        let (header, rest) = buffer.split_at_mut(4);
        header[0] = self.family;
        header[1] = NFNETLINK_V0;
        header[2..4].copy_from_slice(&self.res_id.to_be_bytes());
        self.body.emit(rest);
    }
}

fn parse_attrs<T>(payload: &[u8]) -> Result<Vec<T>, DecodeError>
where
    T: for<'a> Parseable<NlaBuffer<&'a [u8]>>,
{
    NlasIterator::new(payload)
        .map(|nla| T::parse(&nla?))
        .collect()
}

impl NetlinkDeserializable for NftMessage {
    type Error = DecodeError;

    fn deserialize(header: &NetlinkHeader, payload: &[u8]) -> Result<Self, DecodeError> {
        let (nfgen, attrs) = payload
            .split_at_checked(4)
            .ok_or_else(|| DecodeError::from("nfnetlink message shorter than its header"))?;
        let family = nfgen.first().copied().unwrap_or(0);
        let res_id = u16::from_be_bytes([
            nfgen.get(2).copied().unwrap_or(0),
            nfgen.get(3).copied().unwrap_or(0),
        ]);
        let t = header.message_type;
        let command = (t >> 8 == SUBSYS_NFTABLES)
            .then(|| Command::from_number((t & 0xff) as u8))
            .flatten();
        let (kind, body) = match command {
            Some(c @ (Command::NewTable | Command::GetTable | Command::DelTable)) => {
                (Kind::Nft(c), Body::Table(parse_attrs(attrs)?))
            }
            Some(c @ (Command::NewRule | Command::GetRule | Command::DelRule)) => {
                (Kind::Nft(c), Body::Rule(parse_attrs(attrs)?))
            }
            Some(c @ (Command::NewSetElem | Command::GetSetElem | Command::DelSetElem)) => {
                (Kind::Nft(c), Body::Elements(parse_attrs(attrs)?))
            }
            Some(c) => (Kind::Nft(c), Body::Other(attrs.to_vec())),
            None => (Kind::Other(t), Body::Other(attrs.to_vec())),
        };
        Ok(Self {
            kind,
            family,
            res_id,
            body,
        })
    }
}

/// A request message with its flags.
pub fn request_message(request: &Request) -> (NftMessage, u16) {
    let table = || TABLE.to_owned();
    let new = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE;
    let del = NLM_F_REQUEST | NLM_F_ACK;
    match request {
        Request::NewTable => (
            NftMessage::new(
                Command::NewTable,
                Body::Table(vec![TableAttr::Name(table()), TableAttr::Flags(0)]),
            ),
            new,
        ),
        Request::DelTable => (
            NftMessage::new(
                Command::DelTable,
                Body::Table(vec![TableAttr::Name(table())]),
            ),
            del,
        ),
        Request::NewBaseChain(chain) => (
            NftMessage::new(
                Command::NewChain,
                Body::Chain(vec![
                    ChainAttr::Table(table()),
                    ChainAttr::Name(chain.name.to_owned()),
                    ChainAttr::Hook(vec![
                        HookAttr::Number(chain.hook),
                        HookAttr::Priority(chain.priority),
                    ]),
                    ChainAttr::Policy(Verdict::Accept),
                    ChainAttr::Type("nat".to_owned()),
                ]),
            ),
            new,
        ),
        Request::NewChain(name) => (
            NftMessage::new(
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
                NftMessage::new(Command::NewRule, Body::Rule(attrs)),
                new | NLM_F_APPEND,
            )
        }
        Request::DelRule { chain, handle } => (
            NftMessage::new(
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
                SetAttr::DataType(spec.data_type),
                SetAttr::DataLen(spec.data_len),
                SetAttr::Id(spec.id),
            ];
            if !spec.userdata.is_empty() {
                attrs.push(SetAttr::UserData(spec.userdata.clone()));
            }
            (NftMessage::new(Command::NewSet, Body::Set(attrs)), new)
        }
        Request::DelSet(name) => (
            NftMessage::new(
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
            (
                NftMessage::new(Command::NewSetElem, Body::Elements(attrs)),
                new,
            )
        }
        Request::DelElements { set, keys } => (
            NftMessage::new(
                Command::DelSetElem,
                Body::Elements(vec![
                    ElemListAttr::Table(table()),
                    ElemListAttr::Set(set.clone()),
                    ElemListAttr::Elements(
                        keys.iter()
                            .map(|k| Element(vec![ElemAttr::Key(k.clone())]))
                            .collect(),
                    ),
                ]),
            ),
            del,
        ),
    }
}

/// The request to look the appliance's table up.
pub fn get_table() -> NftMessage {
    NftMessage::new(
        Command::GetTable,
        Body::Table(vec![TableAttr::Name(TABLE.to_owned())]),
    )
}

/// The dump request of the table's rules.
pub fn dump_rules() -> NftMessage {
    NftMessage::new(
        Command::GetRule,
        Body::Rule(vec![RuleAttr::Table(TABLE.to_owned())]),
    )
}

/// The dump request of a set's elements.
pub fn dump_elements(set: &str) -> NftMessage {
    NftMessage::new(
        Command::GetSetElem,
        Body::Elements(vec![
            ElemListAttr::Table(TABLE.to_owned()),
            ElemListAttr::Set(set.to_owned()),
        ]),
    )
}

/// Flags of a dump.
pub const DUMP: u16 = NLM_F_REQUEST | NLM_F_DUMP;
/// Flags of a lookup.
pub const GET: u16 = NLM_F_REQUEST | NLM_F_ACK;

/// One netlink message's bytes.
pub fn frame(message: NftMessage, flags: u16, sequence: u32) -> Vec<u8> {
    let mut m = NetlinkMessage::new(
        NetlinkHeader::default(),
        NetlinkPayload::InnerMessage(message),
    );
    m.header.flags = flags;
    m.header.sequence_number = sequence;
    m.finalize();
    let mut buf = vec![0; m.buffer_len()];
    m.serialize(&mut buf);
    buf
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
        let rule = NftMessage::new(
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

        let elements = NftMessage::new(
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
