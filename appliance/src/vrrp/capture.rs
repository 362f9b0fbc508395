//! Reading VRRP advertisements out of capture files (`appliance decode`):
//! pcap and pcapng, on Ethernet (with 802.1Q tags), Linux cooked (SLL and
//! SLL2) and raw IP links. Each VRRP packet becomes one `Record`, a
//! malformed one included (with its `error`), so that a capture of a
//! misbehaving peer can be read whole.

use super::packet::{self, IpContext, Packet, Password, Repr};
use etherparse::{
    EtherType, IpNumber, LaxNetSlice, LaxSlicedPacket, LinuxSllProtocolType, LinuxSllSlice,
};
use pcap_file::DataLink;
use pcap_file::pcap::PcapParser;
use pcap_file::pcapng::{Block, PcapNgParser};
use serde::Serialize;
use std::io::Read;
use std::net::IpAddr;

/// One VRRP packet of a capture. Fields the packet is too short to hold
/// are left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Record {
    /// 1-based position of the packet in the file, as tcpdump and
    /// Wireshark number them.
    pub frame: u64,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// The IPv4 TTL or the IPv6 hop limit.
    pub ttl: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u8>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub msg_type: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vrid: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u8>,
    /// Version 2 only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_type: Option<u8>,
    /// Version 2 only: the 8 bytes of auth data up to the first NUL, other
    /// bytes escaped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth: Option<String>,
    /// Version 2 only, seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adver_int: Option<u8>,
    /// Version 3 only, centiseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_adver_int_cs: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checksum: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checksum_ok: Option<bool>,
    /// The addresses present, read as the IP header's family.
    pub addresses: Vec<IpAddr>,
    /// Why the packet is not a valid advertisement, if it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Why a capture file cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("reading the capture")]
    Io(#[from] std::io::Error),
    #[error("not a pcap or pcapng file (starts with {0:02x?})")]
    NotPcap(Vec<u8>),
    #[error("bad {format} file header")]
    Header {
        format: &'static str,
        #[source]
        source: pcap_file::PcapError,
    },
    #[error("bad {format} record after frame {frame}")]
    Record {
        format: &'static str,
        frame: u64,
        #[source]
        source: pcap_file::PcapError,
    },
    #[error(
        "frame {frame}: link type {link:?} is not supported (Ethernet, Linux cooked SLL/SLL2 and raw IP are)"
    )]
    UnsupportedLink { frame: u64, link: DataLink },
    #[error("frame {frame}: pcapng interface {interface} is not described before its packets")]
    UnknownInterface { frame: u64, interface: u32 },
}

const PCAP_MAGICS: [[u8; 4]; 4] = [
    [0xa1, 0xb2, 0xc3, 0xd4],
    [0xd4, 0xc3, 0xb2, 0xa1],
    [0xa1, 0xb2, 0x3c, 0x4d],
    [0x4d, 0x3c, 0xb2, 0xa1],
];
const PCAPNG_MAGIC: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];

/// Reads a whole pcap or pcapng capture and decodes every VRRP packet in
/// it (IPv4 protocol or IPv6 next header 112), in file order.
pub fn decode_pcap<R: Read>(mut reader: R) -> Result<Vec<Record>, CaptureError> {
    let mut bytes = Vec::new();
    reader.read_to_end(&mut bytes)?;
    match bytes.get(..4).and_then(|m| <[u8; 4]>::try_from(m).ok()) {
        Some(magic) if PCAP_MAGICS.contains(&magic) => decode_classic(&bytes),
        Some(PCAPNG_MAGIC) => decode_ng(&bytes),
        _ => Err(CaptureError::NotPcap(
            bytes.iter().take(4).copied().collect(),
        )),
    }
}

fn decode_classic(bytes: &[u8]) -> Result<Vec<Record>, CaptureError> {
    let (mut rest, parser) = PcapParser::new(bytes).map_err(|source| CaptureError::Header {
        format: "pcap",
        source,
    })?;
    let link = parser.header().datalink;
    let mut records = Vec::new();
    let mut frame = 0;
    while !rest.is_empty() {
        let (next, packet) =
            parser
                .next_raw_packet(rest)
                .map_err(|source| CaptureError::Record {
                    format: "pcap",
                    frame,
                    source,
                })?;
        frame += 1;
        records.extend(decode_frame(frame, link, &packet.data)?);
        rest = next;
    }
    Ok(records)
}

fn decode_ng(bytes: &[u8]) -> Result<Vec<Record>, CaptureError> {
    let (mut rest, mut parser) =
        PcapNgParser::new(bytes).map_err(|source| CaptureError::Header {
            format: "pcapng",
            source,
        })?;
    let mut records = Vec::new();
    let mut frame = 0;
    while !rest.is_empty() {
        let (next, block) = parser
            .next_block(rest)
            .map_err(|source| CaptureError::Record {
                format: "pcapng",
                frame,
                source,
            })?;
        rest = next;
        let (interface, data) = match &block {
            Block::EnhancedPacket(p) => (p.interface_id, &p.data),
            Block::Packet(p) => (u32::from(p.interface_id), &p.data),
            Block::SimplePacket(p) => (0, &p.data),
            _ => continue,
        };
        frame += 1;
        let link = usize::try_from(interface)
            .ok()
            .and_then(|i| parser.interfaces().get(i))
            .map(|idb| idb.linktype)
            .ok_or(CaptureError::UnknownInterface { frame, interface })?;
        records.extend(decode_frame(frame, link, data)?);
    }
    Ok(records)
}

/// The VRRP record in one captured frame, if it carries VRRP.
fn decode_frame(frame: u64, link: DataLink, data: &[u8]) -> Result<Option<Record>, CaptureError> {
    let sliced = match link {
        DataLink::ETHERNET => LaxSlicedPacket::from_ethernet(data).ok(),
        DataLink::LINUX_SLL => {
            LinuxSllSlice::from_slice(data)
                .ok()
                .and_then(|sll| match sll.protocol_type() {
                    LinuxSllProtocolType::EtherType(ether_type) => {
                        let payload = data.get(sll.header_slice().len()..)?;
                        Some(LaxSlicedPacket::from_ether_type(ether_type, payload))
                    }
                    _ => None,
                })
        }
        DataLink::LINUX_SLL2 => sll2_payload(data)
            .map(|(ether_type, payload)| LaxSlicedPacket::from_ether_type(ether_type, payload)),
        DataLink::RAW | DataLink::IPV4 | DataLink::IPV6 => LaxSlicedPacket::from_ip(data).ok(),
        link => return Err(CaptureError::UnsupportedLink { frame, link }),
    };
    let Some(net) = sliced.and_then(|s| s.net) else {
        return Ok(None);
    };
    let (ctx, payload) = match &net {
        LaxNetSlice::Ipv4(ip) => {
            let header = ip.header();
            let ctx = IpContext::V4 {
                src: header.source_addr(),
                dst: header.destination_addr(),
                ttl: header.ttl(),
            };
            (ctx, ip.payload())
        }
        LaxNetSlice::Ipv6(ip) => {
            let header = ip.header();
            let ctx = IpContext::V6 {
                src: header.source_addr(),
                dst: header.destination_addr(),
                hop_limit: header.hop_limit(),
            };
            (ctx, ip.payload())
        }
        LaxNetSlice::Arp(_) => return Ok(None),
    };
    if payload.ip_number != IpNumber(packet::IP_PROTOCOL) {
        return Ok(None);
    }
    let mut record = decode_vrrp(frame, &ctx, payload.payload);
    if payload.fragmented {
        // A fragment's bytes are not the whole message: report, don't judge.
        record.error =
            Some("IP fragment: VRRP is never fragmented and fragments are not reassembled".into());
    }
    Ok(Some(record))
}

/// SLL2 (LINKTYPE_LINUX_SLL2) header: protocol type (2 bytes), reserved
/// (2), interface index (4), ARPHRD type (2), packet type (1), address
/// length (1), address (8). etherparse reads SLL but not SLL2.
fn sll2_payload(data: &[u8]) -> Option<(EtherType, &[u8])> {
    const SLL2_LEN: usize = 20;
    let protocol = data.get(..2)?;
    let ether_type = u16::from_be_bytes(protocol.try_into().ok()?);
    Some((EtherType(ether_type), data.get(SLL2_LEN..)?))
}

/// Reads the VRRP fields that are present and judges the packet with
/// `Repr::parse`.
fn decode_vrrp(frame: u64, ctx: &IpContext, bytes: &[u8]) -> Record {
    let mut record = Record {
        frame,
        src: ctx.src(),
        dst: ctx.dst(),
        ttl: ctx.ttl(),
        version: None,
        msg_type: None,
        vrid: None,
        priority: None,
        count: None,
        auth_type: None,
        auth: None,
        adver_int: None,
        max_adver_int_cs: None,
        checksum: None,
        checksum_ok: None,
        addresses: Vec::new(),
        error: None,
    };
    let packet = Packet::new_unchecked(bytes);
    if let Err(e) = packet.check_header_len() {
        record.error = Some(e.to_string());
        return record;
    }
    record.version = Some(packet.version());
    record.msg_type = Some(packet.msg_type());
    record.vrid = Some(packet.vrid());
    record.priority = Some(packet.priority());
    record.count = Some(packet.count());
    match packet.version() {
        2 => {
            record.auth_type = Some(packet.auth_type());
            record.auth = packet.auth_data().map(|a| Password(a).to_text());
            record.adver_int = Some(packet.adver_int());
        }
        3 => record.max_adver_int_cs = Some(packet.max_adver_int()),
        _ => {}
    }
    record.checksum = Some(packet.checksum());
    record.checksum_ok = Some(packet.verify_checksum(ctx));
    record.addresses = match ctx {
        IpContext::V4 { .. } => packet.ipv4_addresses().map(IpAddr::from).collect(),
        IpContext::V6 { .. } => packet.ipv6_addresses().map(IpAddr::from).collect(),
    };
    record.error = Repr::parse(&packet, ctx).err().map(|e| e.to_string());
    record
}
