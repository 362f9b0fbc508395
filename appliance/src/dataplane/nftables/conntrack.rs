//! The connections the kernel tracks to the nftables backend's real
//! servers, read from conntrack over netlink (ctnetlink, the messages from
//! the `netlink-packet-netfilter` crate): nftables keeps no count of the
//! connections open to a destination as IPVS does, but each connection it
//! forwarded is a conntrack entry whose reply comes from the real server.
//! What a drain waits on.

use super::Error;
use crate::dataplane::netlink;
use crate::dataplane::{Connections, Protocol, ServiceKey};
use netlink_packet_core::{
    NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_netfilter::conntrack::{
    ConntrackAttribute, ConntrackMessage, IPTuple, ProtoInfo, ProtoInfoTCP, ProtoTuple, Tuple,
};
use netlink_packet_netfilter::{
    NetfilterHeader, NetfilterMessage, NetfilterMessageInner, NetfilterProtoFamily,
};
use netlink_sys::protocols::NETLINK_NETFILTER;
use std::net::SocketAddr;

/// nfnetlink's message version.
const NFNETLINK_V0: u8 = 0;

/// conntrack's TCP_CONNTRACK_ESTABLISHED.
const ESTABLISHED: u8 = 3;

/// One tracked connection, as far as counting needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tracked {
    pub protocol: u8,
    /// Where the client sent it (the virtual service).
    pub original_destination: SocketAddr,
    /// Where the answers come from (the real server, after DNAT).
    pub reply_source: SocketAddr,
    pub established: bool,
}

/// Counts `tracked` per wanted service and destination: a connection to
/// the service's address (any, for a firewall-mark service) answered by
/// the destination; established TCP ones are active, the rest inactive.
pub fn count(tracked: &[Tracked], wanted: &[(ServiceKey, SocketAddr)]) -> Vec<Connections> {
    wanted
        .iter()
        .map(|(key, destination)| {
            let mut out = Connections::default();
            for t in tracked.iter().filter(|t| t.reply_source == *destination) {
                let ours = match key {
                    ServiceKey::Socket { protocol, address } => {
                        u16::from(t.protocol) == protocol.number()
                            && t.original_destination == *address
                    }
                    ServiceKey::Fwmark { .. } => true,
                };
                if !ours {
                    continue;
                }
                if t.established && u16::from(t.protocol) == Protocol::Tcp.number() {
                    out.active += 1;
                } else {
                    out.inactive += 1;
                }
            }
            out
        })
        .collect()
}

/// Every connection the kernel tracks (both address families).
pub fn dump() -> Result<Vec<Tracked>, Error> {
    let mut socket =
        netlink::open(NETLINK_NETFILTER, netlink::ANSWER_TIMEOUT).map_err(Error::Socket)?;
    let request = NetfilterMessage::new(
        NetfilterHeader::new(NetfilterProtoFamily::Unspec, NFNETLINK_V0, 0),
        ConntrackMessage::Get(Vec::new()),
    );
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    header.sequence_number = 1;
    let mut message = NetlinkMessage::new(header, NetlinkPayload::from(request));
    message.finalize();
    let mut bytes = vec![0; message.buffer_len()];
    message.serialize(&mut bytes);
    socket.send(&bytes, 0).map_err(Error::Socket)?;
    let what = "dump tracked connections";
    let decode = |reason: String| Error::Decode {
        what: what.into(),
        reason,
    };
    let mut tracked = Vec::new();
    loop {
        let data = netlink::receive(&mut socket, netlink::ANSWER_TIMEOUT).map_err(Error::Socket)?;
        for one in netlink::messages(&data) {
            let one = one.map_err(decode)?;
            let message = NetlinkMessage::<NetfilterMessage>::deserialize(one)
                .map_err(|e| decode(e.to_string()))?;
            match message.payload {
                NetlinkPayload::InnerMessage(NetfilterMessage {
                    inner: NetfilterMessageInner::Conntrack(ConntrackMessage::New(attrs)),
                    ..
                }) => tracked.extend(entry(&attrs)),
                NetlinkPayload::Done(_) => return Ok(tracked),
                NetlinkPayload::Error(e) => {
                    if let Some(code) = e.code {
                        return Err(Error::Kernel {
                            what: what.into(),
                            source: std::io::Error::from_raw_os_error(-code.get()),
                        });
                    }
                }
                _ => {}
            }
        }
    }
}

/// A dumped entry, if it has what counting needs (an entry of another
/// protocol than TCP, UDP or SCTP has no ports and is skipped).
fn entry(attrs: &[ConntrackAttribute]) -> Option<Tracked> {
    let mut original = None;
    let mut reply = None;
    let mut established = false;
    for attr in attrs {
        match attr {
            ConntrackAttribute::CtaTupleOrig(tuple) => original = Some(endpoints(tuple)?),
            ConntrackAttribute::CtaTupleReply(tuple) => reply = Some(endpoints(tuple)?),
            ConntrackAttribute::CtaProtoInfo(info) => {
                established = info.iter().any(|i| {
                    matches!(i, ProtoInfo::TCP(tcp)
                        if tcp.contains(&ProtoInfoTCP::State(ESTABLISHED)))
                });
            }
            _ => {}
        }
    }
    let (protocol, _, original_destination) = original?;
    let (_, reply_source, _) = reply?;
    Some(Tracked {
        protocol,
        original_destination,
        reply_source,
        established,
    })
}

/// A tuple's protocol, source and destination.
fn endpoints(tuple: &[Tuple]) -> Option<(u8, SocketAddr, SocketAddr)> {
    let (mut src, mut dst, mut sport, mut dport, mut protocol) = (None, None, None, None, None);
    for part in tuple {
        match part {
            Tuple::Ip(ips) => {
                for ip in ips {
                    match ip {
                        IPTuple::SourceAddress(a) => src = Some(*a),
                        IPTuple::DestinationAddress(a) => dst = Some(*a),
                        _ => {}
                    }
                }
            }
            Tuple::Proto(protos) => {
                for p in protos {
                    match p {
                        ProtoTuple::Protocol(p) => protocol = Some(u8::from(*p)),
                        ProtoTuple::SourcePort(port) => sport = Some(*port),
                        ProtoTuple::DestinationPort(port) => dport = Some(*port),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Some((
        protocol?,
        SocketAddr::new(src?, sport?),
        SocketAddr::new(dst?, dport?),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_netfilter::conntrack::Protocol as CtProtocol;

    fn tuple(protocol: CtProtocol, src: &str, dst: &str) -> Vec<Tuple> {
        let (src, dst): (SocketAddr, SocketAddr) = (src.parse().unwrap(), dst.parse().unwrap());
        vec![
            Tuple::Ip(vec![
                IPTuple::SourceAddress(src.ip()),
                IPTuple::DestinationAddress(dst.ip()),
            ]),
            Tuple::Proto(vec![
                ProtoTuple::Protocol(protocol),
                ProtoTuple::SourcePort(src.port()),
                ProtoTuple::DestinationPort(dst.port()),
            ]),
        ]
    }

    fn tcp(client: &str, vip: &str, rs: &str, state: u8) -> Vec<ConntrackAttribute> {
        vec![
            ConntrackAttribute::CtaTupleOrig(tuple(CtProtocol::Tcp, client, vip)),
            ConntrackAttribute::CtaTupleReply(tuple(CtProtocol::Tcp, rs, client)),
            ConntrackAttribute::CtaProtoInfo(vec![ProtoInfo::TCP(vec![ProtoInfoTCP::State(
                state,
            )])]),
        ]
    }

    #[test]
    fn connections_are_counted_per_service_and_real_server() {
        let entries = [
            tcp(
                "10.0.0.5:40000",
                "10.0.1.100:80",
                "10.0.2.11:8080",
                ESTABLISHED,
            ),
            tcp(
                "10.0.0.5:40001",
                "10.0.1.100:80",
                "10.0.2.11:8080",
                ESTABLISHED,
            ),
            // TIME_WAIT: inactive.
            tcp("10.0.0.5:40002", "10.0.1.100:80", "10.0.2.11:8080", 7),
            tcp(
                "10.0.0.5:40003",
                "10.0.1.100:80",
                "10.0.2.12:8080",
                ESTABLISHED,
            ),
            // The same real server behind another service.
            tcp(
                "10.0.0.5:40004",
                "10.0.1.101:80",
                "10.0.2.11:8080",
                ESTABLISHED,
            ),
            // No reply tuple: not counted.
            vec![ConntrackAttribute::CtaTupleOrig(tuple(
                CtProtocol::Tcp,
                "10.0.0.5:1",
                "10.0.1.100:80",
            ))],
        ];
        let tracked: Vec<Tracked> = entries.iter().filter_map(|e| entry(e)).collect();
        assert_eq!(tracked.len(), 5);
        let service = ServiceKey::Socket {
            protocol: Protocol::Tcp,
            address: "10.0.1.100:80".parse().unwrap(),
        };
        let counts = count(
            &tracked,
            &[
                (service, "10.0.2.11:8080".parse().unwrap()),
                (service, "10.0.2.12:8080".parse().unwrap()),
                (service, "10.0.2.13:8080".parse().unwrap()),
            ],
        );
        assert_eq!(
            counts,
            [
                Connections {
                    active: 2,
                    inactive: 1,
                    pinned: 0,
                    traffic: None,
                },
                Connections {
                    active: 1,
                    inactive: 0,
                    pinned: 0,
                    traffic: None,
                },
                Connections::default(),
            ]
        );
    }
}
