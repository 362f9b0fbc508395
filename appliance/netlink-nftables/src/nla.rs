//! The nf_tables netlink attributes, encoded and decoded in one place, after
//! the kernel's `include/uapi/linux/netfilter/nf_tables.h`:
//!
//! - table (`NFTA_TABLE_*`): [`TableAttr`]; chain (`NFTA_CHAIN_*`,
//!   `NFTA_HOOK_*`): [`ChainAttr`], [`HookAttr`];
//! - rule (`NFTA_RULE_*`): [`RuleAttr`], whose expressions are [`Expr`];
//! - set (`NFTA_SET_*`): [`SetAttr`]; set elements
//!   (`NFTA_SET_ELEM_LIST_*`, `NFTA_SET_ELEM_*`): [`ElemListAttr`],
//!   [`ElemAttr`];
//! - data (`NFTA_DATA_*`, `NFTA_VERDICT_*`) inside those.
//!
//! Integers inside nf_tables attributes are big-endian (registers, lengths,
//! handles); strings carry their NUL; nested attributes set
//! `NLA_F_NESTED`, as nft (libmnl) sends them. Only what the appliance
//! reads back is decoded ([`RuleAttr`]'s userdata, set elements); the rest
//! decodes as `Other`.

use netlink_packet_core::{
    DecodeError, DefaultNla, Emitable, NLA_F_NESTED, Nla, NlaBuffer, NlasIterator, Parseable,
    parse_string,
};

/// Nested attributes have this flag in their kind; parsers mask it off.
const KIND_MASK: u16 = !(NLA_F_NESTED | netlink_packet_core::NLA_F_NET_BYTEORDER);

const TABLE_NAME: u16 = 1;
const TABLE_FLAGS: u16 = 2;

const CHAIN_TABLE: u16 = 1;
const CHAIN_NAME: u16 = 3;
const CHAIN_HOOK: u16 = 4;
const CHAIN_POLICY: u16 = 5;
const CHAIN_TYPE: u16 = 7;

const HOOK_HOOKNUM: u16 = 1;
const HOOK_PRIORITY: u16 = 2;

const RULE_TABLE: u16 = 1;
const RULE_CHAIN: u16 = 2;
const RULE_HANDLE: u16 = 3;
const RULE_EXPRESSIONS: u16 = 4;
const RULE_USERDATA: u16 = 7;

const LIST_ELEM: u16 = 1;

const EXPR_NAME: u16 = 1;
const EXPR_DATA: u16 = 2;

const SET_TABLE: u16 = 1;
const SET_NAME: u16 = 2;
const SET_FLAGS: u16 = 3;
const SET_KEY_TYPE: u16 = 4;
const SET_KEY_LEN: u16 = 5;
const SET_DATA_TYPE: u16 = 6;
const SET_DATA_LEN: u16 = 7;
const SET_ID: u16 = 10;
const SET_USERDATA: u16 = 13;
const SET_EXPR: u16 = 17;

const ELEM_LIST_TABLE: u16 = 1;
const ELEM_LIST_SET: u16 = 2;
const ELEM_LIST_ELEMENTS: u16 = 3;
const ELEM_LIST_SET_ID: u16 = 4;

const ELEM_KEY: u16 = 1;
const ELEM_DATA: u16 = 2;
const ELEM_EXPR: u16 = 7;
const ELEM_EXPRESSIONS: u16 = 10;

const COUNTER_BYTES: u16 = 1;
const COUNTER_PACKETS: u16 = 2;

const DATA_VALUE: u16 = 1;
const DATA_VERDICT: u16 = 2;

const VERDICT_CODE: u16 = 1;
const VERDICT_CHAIN: u16 = 2;

/// `NFT_SET_*` flags.
pub mod set_flags {
    pub const ANONYMOUS: u32 = 0x1;
    pub const CONSTANT: u32 = 0x2;
    pub const MAP: u32 = 0x8;
}

/// Netfilter hooks (`NF_INET_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    PreRouting = 0,
    LocalOut = 3,
    PostRouting = 4,
}

/// Verdict codes (`NF_DROP`, `NF_ACCEPT`, `NFT_JUMP`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Drop,
    Accept,
    Jump(String),
}

impl Verdict {
    fn code(&self) -> i32 {
        match self {
            Self::Drop => 0,
            Self::Accept => 1,
            Self::Jump(_) => -3,
        }
    }
}

/// A string attribute's value: the bytes and their NUL.
fn string_len(s: &str) -> usize {
    s.len() + 1
}

fn emit_string(s: &str, buffer: &mut [u8]) {
    let (text, nul) = buffer.split_at_mut(s.len());
    text.copy_from_slice(s.as_bytes());
    nul.fill(0);
}

fn parse_be32(value: &[u8]) -> Result<u32, DecodeError> {
    let bytes: [u8; 4] = value
        .try_into()
        .map_err(|_| DecodeError::from(format!("u32 of {} bytes", value.len())))?;
    Ok(u32::from_be_bytes(bytes))
}

fn parse_be64(value: &[u8]) -> Result<u64, DecodeError> {
    let bytes: [u8; 8] = value
        .try_into()
        .map_err(|_| DecodeError::from(format!("u64 of {} bytes", value.len())))?;
    Ok(u64::from_be_bytes(bytes))
}

/// A nested list of attributes of one kind.
fn nested_len<T: Nla>(items: &[T]) -> usize {
    items.buffer_len()
}

fn parse_nested<T>(
    value: &[u8],
    one: impl Fn(&NlaBuffer<&[u8]>) -> Result<T, DecodeError>,
) -> Result<Vec<T>, DecodeError> {
    NlasIterator::new(value).map(|nla| one(&nla?)).collect()
}

/// A table attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableAttr {
    Name(String),
    Flags(u32),
    Other(DefaultNla),
}

impl Nla for TableAttr {
    fn value_len(&self) -> usize {
        match self {
            Self::Name(s) => string_len(s),
            Self::Flags(_) => 4,
            Self::Other(nla) => nla.value_len(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            Self::Name(_) => TABLE_NAME,
            Self::Flags(_) => TABLE_FLAGS,
            Self::Other(nla) => nla.kind(),
        }
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        match self {
            Self::Name(s) => emit_string(s, buffer),
            Self::Flags(v) => buffer.copy_from_slice(&v.to_be_bytes()),
            Self::Other(nla) => nla.emit_value(buffer),
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Parseable<NlaBuffer<&'a T>> for TableAttr {
    fn parse(buf: &NlaBuffer<&'a T>) -> Result<Self, DecodeError> {
        let value = buf.value();
        Ok(match buf.kind() & KIND_MASK {
            TABLE_NAME => Self::Name(parse_string(value)?),
            TABLE_FLAGS => Self::Flags(parse_be32(value)?),
            _ => Self::Other(DefaultNla::parse(buf)?),
        })
    }
}

/// A base chain's hook (nested in [`ChainAttr::Hook`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookAttr {
    Number(Hook),
    Priority(i32),
}

impl Nla for HookAttr {
    fn value_len(&self) -> usize {
        4
    }

    fn kind(&self) -> u16 {
        match self {
            Self::Number(_) => HOOK_HOOKNUM,
            Self::Priority(_) => HOOK_PRIORITY,
        }
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        let v = match self {
            Self::Number(h) => *h as u32,
            Self::Priority(p) => u32::from_be_bytes(p.to_be_bytes()),
        };
        buffer.copy_from_slice(&v.to_be_bytes());
    }
}

/// A chain attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainAttr {
    Table(String),
    Name(String),
    Hook(Vec<HookAttr>),
    /// The base chain's default verdict.
    Policy(Verdict),
    /// `filter`, `nat`, `route`.
    Type(String),
}

impl Nla for ChainAttr {
    fn value_len(&self) -> usize {
        match self {
            Self::Table(s) | Self::Name(s) | Self::Type(s) => string_len(s),
            Self::Hook(attrs) => nested_len(attrs),
            Self::Policy(_) => 4,
        }
    }

    fn kind(&self) -> u16 {
        match self {
            Self::Table(_) => CHAIN_TABLE,
            Self::Name(_) => CHAIN_NAME,
            Self::Hook(_) => CHAIN_HOOK | NLA_F_NESTED,
            Self::Policy(_) => CHAIN_POLICY,
            Self::Type(_) => CHAIN_TYPE,
        }
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        match self {
            Self::Table(s) | Self::Name(s) | Self::Type(s) => emit_string(s, buffer),
            Self::Hook(attrs) => attrs.as_slice().emit(buffer),
            Self::Policy(v) => buffer.copy_from_slice(&v.code().to_be_bytes()),
        }
    }
}

/// A rule attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleAttr {
    Table(String),
    Chain(String),
    /// The kernel's handle of the rule, unique in its table.
    Handle(u64),
    Expressions(Vec<Expr>),
    /// Opaque to the kernel; nft reads it as TLVs (type 0: comment).
    UserData(Vec<u8>),
    Other(DefaultNla),
}

impl Nla for RuleAttr {
    fn value_len(&self) -> usize {
        match self {
            Self::Table(s) | Self::Chain(s) => string_len(s),
            Self::Handle(_) => 8,
            Self::Expressions(exprs) => nested_len(exprs),
            Self::UserData(bytes) => bytes.len(),
            Self::Other(nla) => nla.value_len(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            Self::Table(_) => RULE_TABLE,
            Self::Chain(_) => RULE_CHAIN,
            Self::Handle(_) => RULE_HANDLE,
            Self::Expressions(_) => RULE_EXPRESSIONS | NLA_F_NESTED,
            Self::UserData(_) => RULE_USERDATA,
            Self::Other(nla) => nla.kind(),
        }
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        match self {
            Self::Table(s) | Self::Chain(s) => emit_string(s, buffer),
            Self::Handle(h) => buffer.copy_from_slice(&h.to_be_bytes()),
            Self::Expressions(exprs) => exprs.as_slice().emit(buffer),
            Self::UserData(bytes) => buffer.copy_from_slice(bytes),
            Self::Other(nla) => nla.emit_value(buffer),
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Parseable<NlaBuffer<&'a T>> for RuleAttr {
    fn parse(buf: &NlaBuffer<&'a T>) -> Result<Self, DecodeError> {
        let value = buf.value();
        Ok(match buf.kind() & KIND_MASK {
            RULE_TABLE => Self::Table(parse_string(value)?),
            RULE_CHAIN => Self::Chain(parse_string(value)?),
            RULE_HANDLE => Self::Handle(parse_be64(value)?),
            RULE_USERDATA => Self::UserData(value.to_vec()),
            // Expressions are written, never read back: the userdata says
            // what the rule is.
            _ => Self::Other(DefaultNla::parse(buf)?),
        })
    }
}

/// A register: the kernel's 4-byte registers `NFT_REG32_00..15` are 8..23;
/// `NFT_REG_1` (1) is the 16-byte register starting at `NFT_REG32_00`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reg(pub u32);

impl Reg {
    /// `NFT_REG_1`.
    pub const R1: Reg = Reg(1);
    /// `NFT_REG_2`.
    pub const R2: Reg = Reg(2);

    /// The 4-byte register `bytes` bytes after the start of `NFT_REG_1`
    /// (a multiple of 4).
    pub fn after_r1(bytes: u32) -> Reg {
        Reg(8 + bytes / 4)
    }

    /// The 4-byte register `bytes` bytes after the start of `NFT_REG_2`
    /// (a multiple of 4).
    pub fn after_r2(bytes: u32) -> Reg {
        Reg(12 + bytes / 4)
    }
}

/// `NFT_META_*` keys the appliance uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaKey {
    /// The input interface's index, 4 bytes in host order.
    Iif = 4,
    /// The packet's family (`NFPROTO_IPV4` / `NFPROTO_IPV6`), 1 byte.
    NfProto = 15,
    /// The transport protocol number, 1 byte.
    L4Proto = 16,
}

/// Payload bases (`NFT_PAYLOAD_*_HEADER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadBase {
    Network = 1,
    Transport = 2,
}

/// Conntrack keys (`NFT_CT_*`) the appliance uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CtKey {
    /// The packet's direction (`IP_CT_DIR_*`), 1 byte; read without one.
    Direction = 1,
    /// The transport protocol number, 1 byte.
    Protocol = 10,
    ProtoSrc = 11,
    ProtoDst = 12,
    SrcIp = 19,
    DstIp = 20,
    SrcIp6 = 21,
    DstIp6 = 22,
}

/// A connection's directions (`IP_CT_DIR_*`): which tuple a `ct` key is
/// read from, and what [`CtKey::Direction`] loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CtDir {
    Original = 0,
    Reply = 1,
}

/// Number generators (`NFT_NG_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumgenType {
    Incremental = 0,
    Random = 1,
}

/// An expression of a rule, with the attributes the appliance sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// `meta load KEY => dreg`.
    Meta { dreg: Reg, key: MetaKey },
    /// `cmp eq sreg DATA`.
    CmpEq { sreg: Reg, data: Vec<u8> },
    /// `payload load LEN @ BASE + OFFSET => dreg`.
    Payload {
        dreg: Reg,
        base: PayloadBase,
        offset: u32,
        len: u32,
    },
    /// `ct load KEY => dreg`, from the tuple of `dir` when there is one.
    Ct {
        dreg: Reg,
        key: CtKey,
        dir: Option<CtDir>,
    },
    /// `numgen dreg = TYPE mod MODULUS` (host-order u32).
    Numgen {
        dreg: Reg,
        kind: NumgenType,
        modulus: u32,
    },
    /// `hash dreg = jhash(sreg, LEN, SEED) % mod MODULUS` (host-order u32).
    Jhash {
        sreg: Reg,
        dreg: Reg,
        len: u32,
        modulus: u32,
        seed: u32,
    },
    /// `lookup sreg set NAME dreg`: the map's data into `dreg`. `set_id`
    /// names a set created in the same batch.
    Lookup {
        sreg: Reg,
        dreg: Reg,
        set: String,
        set_id: u32,
    },
    /// `lookup sreg set NAME`: whether the key is in the set, which
    /// updates the element's counter when the set has them.
    InSet { sreg: Reg, set: String },
    /// `nat dnat FAMILY addr_min ADDR proto_min PROTO`.
    Dnat { family: u8, addr: Reg, proto: Reg },
    /// `masq`.
    Masquerade,
    /// `immediate reg 0 VERDICT`.
    Verdict(Verdict),
}

/// An expression's own attributes (inside `NFTA_EXPR_DATA`), or a data
/// attribute's (`NFTA_DATA_*`, `NFTA_VERDICT_*`).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Attr {
    U32(u16, u32),
    U8(u16, u8),
    Str(u16, String),
    Bytes(u16, Vec<u8>),
    Nested(u16, Vec<Attr>),
}

impl Nla for Attr {
    fn value_len(&self) -> usize {
        match self {
            Self::U32(..) => 4,
            Self::U8(..) => 1,
            Self::Str(_, s) => string_len(s),
            Self::Bytes(_, b) => b.len(),
            Self::Nested(_, attrs) => attrs.as_slice().buffer_len(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            Self::U32(k, _) | Self::U8(k, _) | Self::Str(k, _) | Self::Bytes(k, _) => *k,
            Self::Nested(k, _) => *k | NLA_F_NESTED,
        }
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        match self {
            Self::U32(_, v) => buffer.copy_from_slice(&v.to_be_bytes()),
            Self::U8(_, v) => buffer.copy_from_slice(&[*v]),
            Self::Str(_, s) => emit_string(s, buffer),
            Self::Bytes(_, b) => buffer.copy_from_slice(b),
            Self::Nested(_, attrs) => attrs.as_slice().emit(buffer),
        }
    }
}

/// `NFTA_DATA_VALUE` in an attribute of kind `kind`.
fn data_value(kind: u16, bytes: &[u8]) -> Attr {
    Attr::Nested(kind, vec![Attr::Bytes(DATA_VALUE, bytes.to_vec())])
}

/// `NFTA_DATA_VERDICT` in an attribute of kind `kind`.
fn data_verdict(kind: u16, v: &Verdict) -> Attr {
    let mut attrs = vec![Attr::U32(
        VERDICT_CODE,
        u32::from_be_bytes(v.code().to_be_bytes()),
    )];
    if let Verdict::Jump(chain) = v {
        attrs.push(Attr::Str(VERDICT_CHAIN, chain.clone()));
    }
    Attr::Nested(kind, vec![Attr::Nested(DATA_VERDICT, attrs)])
}

impl Expr {
    fn name(&self) -> &'static str {
        match self {
            Self::Meta { .. } => "meta",
            Self::CmpEq { .. } => "cmp",
            Self::Payload { .. } => "payload",
            Self::Ct { .. } => "ct",
            Self::Numgen { .. } => "numgen",
            Self::Jhash { .. } => "hash",
            Self::Lookup { .. } | Self::InSet { .. } => "lookup",
            Self::Dnat { .. } => "nat",
            Self::Masquerade => "masq",
            Self::Verdict(_) => "immediate",
        }
    }

    /// `NFTA_<EXPR>_*` attributes, in the order nft sends them.
    fn attrs(&self) -> Vec<Attr> {
        use Attr::{Str, U8, U32};
        match self {
            Self::Meta { dreg, key } => vec![U32(2, *key as u32), U32(1, dreg.0)],
            Self::CmpEq { sreg, data } => vec![U32(1, sreg.0), U32(2, 0), data_value(3, data)],
            Self::Payload {
                dreg,
                base,
                offset,
                len,
            } => vec![
                U32(1, dreg.0),
                U32(2, *base as u32),
                U32(3, *offset),
                U32(4, *len),
            ],
            Self::Ct { dreg, key, dir } => {
                let mut attrs = vec![U32(1, dreg.0), U32(2, *key as u32)];
                attrs.extend(dir.map(|d| U8(3, d as u8)));
                attrs
            }
            Self::Numgen {
                dreg,
                kind,
                modulus,
            } => vec![
                U32(1, dreg.0),
                U32(2, *modulus),
                U32(3, *kind as u32),
                U32(4, 0),
            ],
            Self::Jhash {
                sreg,
                dreg,
                len,
                modulus,
                seed,
            } => vec![
                U32(1, sreg.0),
                U32(2, dreg.0),
                U32(3, *len),
                U32(4, *modulus),
                U32(5, *seed),
                U32(6, 0),
                U32(7, 0),
            ],
            Self::Lookup {
                sreg,
                dreg,
                set,
                set_id,
            } => vec![
                Str(1, set.clone()),
                U32(2, sreg.0),
                U32(3, dreg.0),
                U32(4, *set_id),
            ],
            Self::InSet { sreg, set } => vec![Str(1, set.clone()), U32(2, sreg.0)],
            Self::Dnat {
                family,
                addr,
                proto,
            } => vec![
                U32(1, 1),
                U32(2, u32::from(*family)),
                U32(3, addr.0),
                U32(5, proto.0),
            ],
            Self::Masquerade => vec![],
            Self::Verdict(v) => vec![U32(1, 0), data_verdict(2, v)],
        }
    }

    /// The list element: the name, then the data when there is any.
    fn element(&self) -> Vec<Attr> {
        let mut parts = vec![Attr::Str(EXPR_NAME, self.name().to_owned())];
        let data = self.attrs();
        if !data.is_empty() {
            parts.push(Attr::Nested(EXPR_DATA, data));
        }
        parts
    }
}

/// An expression is one list element: its name and its nested data.
impl Nla for Expr {
    fn value_len(&self) -> usize {
        self.element().as_slice().buffer_len()
    }

    fn kind(&self) -> u16 {
        LIST_ELEM | NLA_F_NESTED
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        self.element().as_slice().emit(buffer)
    }
}

/// A set (or map) attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetAttr {
    Table(String),
    Name(String),
    Flags(u32),
    /// nft's data type number of the key (for `nft list` only).
    KeyType(u32),
    KeyLen(u32),
    DataType(u32),
    DataLen(u32),
    /// Names the set within the batch that creates it.
    Id(u32),
    /// nft's TLVs (byte order of key and data, for `nft list`).
    UserData(Vec<u8>),
    /// Every element counts the packets and bytes that match it
    /// (`NFTA_SET_EXPR` of a `counter`), from zero when it is added.
    Counter,
}

/// The `counter` expression with no attributes of its own: what a set's
/// elements get.
fn counter_expr() -> [Attr; 1] {
    [Attr::Str(EXPR_NAME, "counter".to_owned())]
}

impl Nla for SetAttr {
    fn value_len(&self) -> usize {
        match self {
            Self::Table(s) | Self::Name(s) => string_len(s),
            Self::UserData(b) => b.len(),
            Self::Counter => counter_expr().as_slice().buffer_len(),
            _ => 4,
        }
    }

    fn kind(&self) -> u16 {
        match self {
            Self::Counter => SET_EXPR | NLA_F_NESTED,
            Self::Table(_) => SET_TABLE,
            Self::Name(_) => SET_NAME,
            Self::Flags(_) => SET_FLAGS,
            Self::KeyType(_) => SET_KEY_TYPE,
            Self::KeyLen(_) => SET_KEY_LEN,
            Self::DataType(_) => SET_DATA_TYPE,
            Self::DataLen(_) => SET_DATA_LEN,
            Self::Id(_) => SET_ID,
            Self::UserData(_) => SET_USERDATA,
        }
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        match self {
            Self::Table(s) | Self::Name(s) => emit_string(s, buffer),
            Self::UserData(b) => buffer.copy_from_slice(b),
            Self::Counter => counter_expr().as_slice().emit(buffer),
            Self::Flags(v)
            | Self::KeyType(v)
            | Self::KeyLen(v)
            | Self::DataType(v)
            | Self::DataLen(v)
            | Self::Id(v) => buffer.copy_from_slice(&v.to_be_bytes()),
        }
    }
}

/// One set element's attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ElemAttr {
    Key(Vec<u8>),
    Data(Vec<u8>),
    /// The element's counter (`NFTA_SET_ELEM_EXPR`): what it holds when
    /// read back, where it starts when sent.
    Counter(Counter),
    Other(DefaultNla),
}

/// A `counter` expression's packets and bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counter {
    pub packets: u64,
    pub bytes: u64,
}

impl Counter {
    fn expr(&self) -> [Attr; 2] {
        [
            Attr::Str(EXPR_NAME, "counter".to_owned()),
            Attr::Nested(
                EXPR_DATA,
                vec![
                    Attr::Bytes(COUNTER_BYTES, self.bytes.to_be_bytes().to_vec()),
                    Attr::Bytes(COUNTER_PACKETS, self.packets.to_be_bytes().to_vec()),
                ],
            ),
        ]
    }
}

/// The counter in one expression (`NFTA_EXPR_NAME`, `NFTA_EXPR_DATA`), if it
/// is one.
fn parse_counter(expr: &[u8]) -> Result<Option<Counter>, DecodeError> {
    let mut is_counter = false;
    let mut counter = Counter::default();
    for nla in NlasIterator::new(expr) {
        let nla = nla?;
        match nla.kind() & KIND_MASK {
            EXPR_NAME => is_counter = parse_string(nla.value())? == "counter",
            EXPR_DATA => {
                for attr in NlasIterator::new(nla.value()) {
                    let attr = attr?;
                    match attr.kind() & KIND_MASK {
                        COUNTER_BYTES => counter.bytes = parse_be64(attr.value())?,
                        COUNTER_PACKETS => counter.packets = parse_be64(attr.value())?,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Ok(is_counter.then_some(counter))
}

impl Nla for ElemAttr {
    fn value_len(&self) -> usize {
        match self {
            Self::Key(b) | Self::Data(b) => Attr::Bytes(DATA_VALUE, b.clone()).buffer_len(),
            Self::Counter(c) => c.expr().as_slice().buffer_len(),
            Self::Other(nla) => nla.value_len(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            Self::Key(_) => ELEM_KEY | NLA_F_NESTED,
            Self::Data(_) => ELEM_DATA | NLA_F_NESTED,
            Self::Counter(_) => ELEM_EXPR | NLA_F_NESTED,
            Self::Other(nla) => nla.kind(),
        }
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        match self {
            Self::Key(b) | Self::Data(b) => Attr::Bytes(DATA_VALUE, b.clone()).emit(buffer),
            Self::Counter(c) => c.expr().as_slice().emit(buffer),
            Self::Other(nla) => nla.emit_value(buffer),
        }
    }
}

/// `NFTA_DATA_VALUE` inside a key or data attribute.
fn parse_data_value(value: &[u8]) -> Result<Vec<u8>, DecodeError> {
    for nla in NlasIterator::new(value) {
        let nla = nla?;
        if nla.kind() & KIND_MASK == DATA_VALUE {
            return Ok(nla.value().to_vec());
        }
    }
    Err("set element data without a value".into())
}

impl<'a, T: AsRef<[u8]> + ?Sized> Parseable<NlaBuffer<&'a T>> for ElemAttr {
    fn parse(buf: &NlaBuffer<&'a T>) -> Result<Self, DecodeError> {
        let value = buf.value();
        Ok(match buf.kind() & KIND_MASK {
            ELEM_KEY => Self::Key(parse_data_value(value)?),
            ELEM_DATA => Self::Data(parse_data_value(value)?),
            // One expression is sent alone, several as a list.
            ELEM_EXPR => match parse_counter(value)? {
                Some(counter) => Self::Counter(counter),
                None => Self::Other(DefaultNla::parse(buf)?),
            },
            ELEM_EXPRESSIONS => {
                let counters = parse_nested(value, |item| parse_counter(item.value()))?;
                match counters.into_iter().flatten().next() {
                    Some(counter) => Self::Counter(counter),
                    None => Self::Other(DefaultNla::parse(buf)?),
                }
            }
            _ => Self::Other(DefaultNla::parse(buf)?),
        })
    }
}

/// One element: a list item of [`ElemListAttr::Elements`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element(pub Vec<ElemAttr>);

impl Element {
    pub fn key(&self) -> Option<&[u8]> {
        self.0.iter().find_map(|a| match a {
            ElemAttr::Key(k) => Some(k.as_slice()),
            _ => None,
        })
    }

    pub fn data(&self) -> Option<&[u8]> {
        self.0.iter().find_map(|a| match a {
            ElemAttr::Data(d) => Some(d.as_slice()),
            _ => None,
        })
    }

    pub fn counter(&self) -> Option<Counter> {
        self.0.iter().find_map(|a| match a {
            ElemAttr::Counter(c) => Some(*c),
            _ => None,
        })
    }
}

impl Nla for Element {
    fn value_len(&self) -> usize {
        self.0.as_slice().buffer_len()
    }

    fn kind(&self) -> u16 {
        LIST_ELEM | NLA_F_NESTED
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        self.0.as_slice().emit(buffer)
    }
}

/// A set element message's attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ElemListAttr {
    Table(String),
    Set(String),
    /// Absent in a delete: every element goes (flush).
    Elements(Vec<Element>),
    SetId(u32),
    Other(DefaultNla),
}

impl Nla for ElemListAttr {
    fn value_len(&self) -> usize {
        match self {
            Self::Table(s) | Self::Set(s) => string_len(s),
            Self::Elements(e) => e.as_slice().buffer_len(),
            Self::SetId(_) => 4,
            Self::Other(nla) => nla.value_len(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            Self::Table(_) => ELEM_LIST_TABLE,
            Self::Set(_) => ELEM_LIST_SET,
            Self::Elements(_) => ELEM_LIST_ELEMENTS | NLA_F_NESTED,
            Self::SetId(_) => ELEM_LIST_SET_ID,
            Self::Other(nla) => nla.kind(),
        }
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        match self {
            Self::Table(s) | Self::Set(s) => emit_string(s, buffer),
            Self::Elements(e) => e.as_slice().emit(buffer),
            Self::SetId(v) => buffer.copy_from_slice(&v.to_be_bytes()),
            Self::Other(nla) => nla.emit_value(buffer),
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Parseable<NlaBuffer<&'a T>> for ElemListAttr {
    fn parse(buf: &NlaBuffer<&'a T>) -> Result<Self, DecodeError> {
        let value = buf.value();
        Ok(match buf.kind() & KIND_MASK {
            ELEM_LIST_TABLE => Self::Table(parse_string(value)?),
            ELEM_LIST_SET => Self::Set(parse_string(value)?),
            ELEM_LIST_ELEMENTS => Self::Elements(parse_nested(value, |item| {
                parse_nested(item.value(), |a| ElemAttr::parse(a)).map(Element)
            })?),
            _ => Self::Other(DefaultNla::parse(buf)?),
        })
    }
}
