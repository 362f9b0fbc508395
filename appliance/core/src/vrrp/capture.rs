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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vrrp::packet::{Addresses, Auth, Seconds, Variant};
    use crate::vrrp::{Centiseconds, Priority, Vrid};
    use etherparse::{LinuxSllPacketType, PacketBuilder, VlanId};
    use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
    use pcap_file::pcapng::PcapNgWriter;
    use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
    use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionBlock;
    use std::borrow::Cow;
    use std::net::{Ipv4Addr, Ipv6Addr};
    use std::path::Path;
    use std::time::Duration;

    const SRC4: [u8; 4] = [10, 99, 0, 2];
    const GROUP4: [u8; 4] = [224, 0, 0, 18];

    fn fixture(name: &str) -> std::fs::File {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/pcap")
            .join(name);
        std::fs::File::open(path).unwrap()
    }

    /// The VRRPv2 message of the fixture's first frame.
    fn vrrp_v2(priority: u8) -> Vec<u8> {
        let repr = Repr {
            vrid: Vrid::new(51).unwrap(),
            priority: Priority::from_u8(priority),
            variant: Variant::V2 {
                adver_int: Seconds(1),
                auth: Auth::Pass(Password::from_config("aminglinux")),
            },
            addresses: Addresses::V4(vec![Ipv4Addr::new(10, 99, 0, 100)]),
        };
        let ctx = IpContext::V4 {
            src: SRC4.into(),
            dst: GROUP4.into(),
            ttl: 255,
        };
        let mut bytes = vec![0; repr.buffer_len()];
        repr.emit(&mut Packet::new_unchecked(&mut bytes), &ctx)
            .unwrap();
        bytes
    }

    fn vrrp_v3_ipv6(src: Ipv6Addr, dst: Ipv6Addr) -> Vec<u8> {
        let repr = Repr {
            vrid: Vrid::new(53).unwrap(),
            priority: Priority::from_u8(120),
            variant: Variant::V3 {
                max_adver_int: Centiseconds(50),
            },
            addresses: Addresses::V6(vec!["fd00::100".parse().unwrap()]),
        };
        let ctx = IpContext::V6 {
            src,
            dst,
            hop_limit: 255,
        };
        let mut bytes = vec![0; repr.buffer_len()];
        repr.emit(&mut Packet::new_unchecked(&mut bytes), &ctx)
            .unwrap();
        bytes
    }

    fn ipv4(vrrp: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        PacketBuilder::ipv4(SRC4, GROUP4, 255)
            .write(&mut out, IpNumber::VRRP, vrrp)
            .unwrap();
        out
    }

    fn pcap(link: DataLink, frames: &[Vec<u8>]) -> Vec<u8> {
        let header = PcapHeader {
            datalink: link,
            ..PcapHeader::default()
        };
        let mut writer = PcapWriter::with_header(Vec::new(), header).unwrap();
        for frame in frames {
            let len = frame.len() as u32;
            writer
                .write_packet(&PcapPacket::new(Duration::ZERO, len, frame))
                .unwrap();
        }
        writer.into_writer()
    }

    fn pcapng(link: DataLink, frames: &[Vec<u8>]) -> Vec<u8> {
        let mut writer = PcapNgWriter::new(Vec::new()).unwrap();
        writer
            .write_pcapng_block(InterfaceDescriptionBlock::new(link, 65535))
            .unwrap();
        for frame in frames {
            let block = EnhancedPacketBlock {
                interface_id: 0,
                timestamp: Duration::ZERO,
                original_len: frame.len() as u32,
                data: Cow::Borrowed(frame),
                options: vec![],
            };
            writer.write_pcapng_block(block).unwrap();
        }
        writer.into_inner()
    }

    fn expected_first_frame() -> Record {
        Record {
            frame: 1,
            src: "10.99.0.2".parse().unwrap(),
            dst: "224.0.0.18".parse().unwrap(),
            ttl: 255,
            version: Some(2),
            msg_type: Some(1),
            vrid: Some(51),
            priority: Some(150),
            count: Some(1),
            auth_type: Some(1),
            auth: Some("aminglin".into()),
            adver_int: Some(1),
            max_adver_int_cs: None,
            checksum: Some(0xa14c),
            checksum_ok: Some(true),
            addresses: vec!["10.99.0.100".parse().unwrap()],
            error: None,
        }
    }

    #[test]
    fn decodes_the_keepalived_v2_capture() {
        let records = decode_pcap(fixture("keepalived-v2-pass.pcap")).unwrap();
        assert_eq!(records.len(), 10);
        assert_eq!(records[0], expected_first_frame());
        let priorities: Vec<_> = records.iter().map(|r| r.priority.unwrap()).collect();
        assert_eq!(priorities, [150, 150, 150, 0, 100, 100, 100, 100, 100, 0]);
        assert!(
            records
                .iter()
                .all(|r| r.checksum_ok == Some(true) && r.error.is_none())
        );
    }

    #[test]
    fn decodes_the_keepalived_v3_capture() {
        let records = decode_pcap(fixture("keepalived-v3.pcap")).unwrap();
        assert_eq!(records.len(), 11);
        assert!(
            records
                .iter()
                .all(|r| r.checksum_ok == Some(true) && r.error.is_none())
        );
        let v6 = &records[0];
        assert_eq!(
            v6.src,
            "fe80::7815:d6ff:fe16:7433".parse::<IpAddr>().unwrap()
        );
        assert_eq!(v6.dst, "ff02::12".parse::<IpAddr>().unwrap());
        assert_eq!(
            (v6.version, v6.vrid, v6.max_adver_int_cs),
            (Some(3), Some(53), Some(50))
        );
        assert_eq!(
            v6.addresses,
            [
                "fd00::100".parse::<IpAddr>().unwrap(),
                "fd00::101".parse().unwrap()
            ]
        );
        assert_eq!((v6.auth_type, v6.adver_int, &v6.auth), (None, None, &None));
        let v4 = &records[3];
        assert_eq!(
            (v4.vrid, v4.priority, v4.max_adver_int_cs),
            (Some(52), Some(200), Some(100))
        );
    }

    #[test]
    fn record_json_has_the_documented_keys() {
        let json = serde_json::to_value(expected_first_frame()).unwrap();
        let keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        for key in [
            "src",
            "dst",
            "ttl",
            "version",
            "type",
            "vrid",
            "priority",
            "count",
            "auth_type",
            "auth",
            "adver_int",
            "checksum_ok",
            "addresses",
        ] {
            assert!(keys.contains(&key), "{key} missing from {json}");
        }
        assert_eq!(json["addresses"][0], "10.99.0.100");
        assert_eq!(json["type"], 1);
        assert!(json.get("error").is_none());
    }

    #[test]
    fn pcapng_ethernet_with_vlan_tag() {
        let mut frame = Vec::new();
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [1, 0, 0x5e, 0, 0, 18])
            .single_vlan(VlanId::try_new(42).unwrap())
            .ipv4(SRC4, GROUP4, 255)
            .write(&mut frame, IpNumber::VRRP, &vrrp_v2(150))
            .unwrap();
        let records = decode_pcap(&pcapng(DataLink::ETHERNET, &[frame])[..]).unwrap();
        assert_eq!(records, [expected_first_frame()]);
    }

    #[test]
    fn linux_cooked_sll() {
        let mut frame = Vec::new();
        PacketBuilder::linux_sll(LinuxSllPacketType::OUTGOING, 6, [2, 0, 0, 0, 0, 1, 0, 0])
            .ipv4(SRC4, GROUP4, 255)
            .write(&mut frame, IpNumber::VRRP, &vrrp_v2(150))
            .unwrap();
        let records = decode_pcap(&pcap(DataLink::LINUX_SLL, &[frame])[..]).unwrap();
        assert_eq!(records, [expected_first_frame()]);
    }

    #[test]
    fn linux_cooked_sll2_ipv6() {
        let src: Ipv6Addr = "fe80::1".parse().unwrap();
        let dst: Ipv6Addr = "ff02::12".parse().unwrap();
        // protocol 0x86dd, reserved, ifindex 2, ARPHRD_ETHER, outgoing, 6-byte address.
        let mut frame = vec![
            0x86, 0xdd, 0, 0, 0, 0, 0, 2, 0, 1, 4, 6, 2, 0, 0, 0, 0, 1, 0, 0,
        ];
        PacketBuilder::ipv6(src.octets(), dst.octets(), 255)
            .write(&mut frame, IpNumber::VRRP, &vrrp_v3_ipv6(src, dst))
            .unwrap();
        let records = decode_pcap(&pcap(DataLink::LINUX_SLL2, &[frame])[..]).unwrap();
        assert_eq!(records.len(), 1);
        let record = &records[0];
        assert_eq!(
            (record.src, record.dst),
            (IpAddr::from(src), IpAddr::from(dst))
        );
        assert_eq!(
            (record.version, record.checksum_ok, &record.error),
            (Some(3), Some(true), &None)
        );
        assert_eq!(record.addresses, ["fd00::100".parse::<IpAddr>().unwrap()]);
    }

    #[test]
    fn raw_ip_links() {
        for link in [DataLink::RAW, DataLink::IPV4] {
            let records = decode_pcap(&pcap(link, &[ipv4(&vrrp_v2(150))])[..]).unwrap();
            assert_eq!(records, [expected_first_frame()], "{link:?}");
        }
    }

    #[test]
    fn other_traffic_is_skipped_and_frames_keep_their_numbers() {
        let mut udp = Vec::new();
        PacketBuilder::ipv4(SRC4, GROUP4, 64)
            .udp(5000, 5001)
            .write(&mut udp, &[1, 2, 3])
            .unwrap();
        let frames = [udp, vec![0x45], ipv4(&vrrp_v2(150))];
        let records = decode_pcap(&pcap(DataLink::RAW, &frames)[..]).unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].frame, 3);
    }

    #[test]
    fn malformed_vrrp_yields_a_record_with_its_error() {
        let mut bad_sum = vrrp_v2(150);
        bad_sum[2] = 151;
        let frames = [ipv4(&bad_sum), ipv4(&[0x21, 0x33, 0x96]), ipv4(&vrrp_v2(0))];
        let records = decode_pcap(&pcap(DataLink::RAW, &frames)[..]).unwrap();
        assert_eq!(records.len(), 3);
        assert_eq!(records[0].priority, Some(151));
        assert_eq!(records[0].checksum_ok, Some(false));
        assert!(
            records[0].error.as_deref().unwrap().contains("checksum"),
            "{:?}",
            records[0].error
        );
        assert_eq!((records[1].version, records[1].checksum_ok), (None, None));
        assert!(
            records[1].error.as_deref().unwrap().contains("truncated"),
            "{:?}",
            records[1].error
        );
        assert_eq!((records[2].priority, &records[2].error), (Some(0), &None));
    }

    #[test]
    fn wrong_ttl_is_reported() {
        let mut frame = Vec::new();
        PacketBuilder::ipv4(SRC4, GROUP4, 1)
            .write(&mut frame, IpNumber::VRRP, &vrrp_v2(150))
            .unwrap();
        let records = decode_pcap(&pcap(DataLink::RAW, &[frame])[..]).unwrap();
        assert_eq!(records[0].ttl, 1);
        assert_eq!(records[0].checksum_ok, Some(true));
        assert!(
            records[0].error.as_deref().unwrap().contains("TTL"),
            "{:?}",
            records[0].error
        );
    }

    #[test]
    fn fragments_are_reported_not_judged() {
        let mut frame = ipv4(&vrrp_v2(150));
        frame[6] |= 0x20; // more fragments
        let records = decode_pcap(&pcap(DataLink::RAW, &[frame])[..]).unwrap();
        assert!(
            records[0].error.as_deref().unwrap().contains("fragment"),
            "{:?}",
            records[0].error
        );
    }

    #[test]
    fn not_a_capture_is_an_error() {
        assert!(
            matches!(decode_pcap(&b"[workspace]\n"[..]), Err(CaptureError::NotPcap(m)) if m == b"[wor")
        );
        assert!(matches!(
            decode_pcap(&b""[..]),
            Err(CaptureError::NotPcap(_))
        ));
        let truncated = pcap(DataLink::RAW, &[ipv4(&vrrp_v2(150))]);
        assert!(matches!(
            decode_pcap(&truncated[..truncated.len() - 3]),
            Err(CaptureError::Record { frame: 0, .. })
        ));
    }

    #[test]
    fn unsupported_link_type_is_an_error() {
        let capture = pcap(DataLink::IEEE802_11, &[vec![0; 30]]);
        assert!(matches!(
            decode_pcap(&capture[..]),
            Err(CaptureError::UnsupportedLink {
                frame: 1,
                link: DataLink::IEEE802_11
            })
        ));
    }
}
