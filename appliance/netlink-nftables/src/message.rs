//! nf_tables netlink messages: the `nfgenmsg` header and the attributes of
//! [`crate::nla`], the batch markers that make messages one transaction
//! (`NFNL_MSG_BATCH_BEGIN` ... `NFNL_MSG_BATCH_END`), and a message's
//! bytes ([`frame`]).

use crate::nla::{ChainAttr, ElemListAttr, RuleAttr, SetAttr, TableAttr};
use netlink_packet_core::{
    DecodeError, Emitable, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NetlinkDeserializable,
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NetlinkSerializable, NlaBuffer, NlasIterator,
    Parseable,
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
    /// An nf_tables message about a table of `family` (`NFPROTO_*`).
    pub fn new(family: u8, command: Command, body: Body) -> Self {
        Self {
            kind: Kind::Nft(command),
            family,
            res_id: 0,
            body,
        }
    }

    /// A batch marker: [`Kind::BatchBegin`] or [`Kind::BatchEnd`].
    pub fn batch(kind: Kind) -> Self {
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
