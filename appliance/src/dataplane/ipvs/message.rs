//! The requests the IPVS backend sends, built from the dataplane model,
//! in the messages of `netlink_packet_ipvs`.

use crate::dataplane::{Destination, Family, Forwarding, ServiceKey, VirtualService};
pub use netlink_packet_ipvs::message::{Command, FAMILY_VERSION, IpvsMessage};
use netlink_packet_ipvs::nla::{
    AF_INET, AF_INET6, CmdAttr, DaemonAttr, DestAttr, InetAddr, SvcAttr, flags,
};
use std::net::IpAddr;

/// The kernel's number for a family.
pub fn af_number(family: Family) -> u16 {
    match family {
        Family::Ipv4 => AF_INET,
        Family::Ipv6 => AF_INET6,
    }
}

/// A kernel address read as `family`.
pub fn ip_of(addr: InetAddr, family: Family) -> IpAddr {
    match family {
        Family::Ipv4 => IpAddr::V4(addr.ipv4()),
        Family::Ipv6 => IpAddr::V6(addr.ipv6()),
    }
}

/// The family for a kernel number.
pub fn af_family(number: u16) -> Option<Family> {
    match number {
        AF_INET => Some(Family::Ipv4),
        AF_INET6 => Some(Family::Ipv6),
        _ => None,
    }
}

/// The attributes naming a service (all a delete or a dump of its
/// destinations needs).
pub fn service_key_attrs(key: &ServiceKey) -> Vec<SvcAttr> {
    match key {
        ServiceKey::Socket { protocol, address } => vec![
            SvcAttr::Family(af_number(Family::of(address.ip()))),
            SvcAttr::Protocol(protocol.number()),
            SvcAttr::Addr(InetAddr::from_ip(address.ip())),
            SvcAttr::Port(address.port()),
        ],
        ServiceKey::Fwmark { family, mark } => {
            vec![SvcAttr::Family(af_number(*family)), SvcAttr::Fwmark(*mark)]
        }
    }
}

/// The 4 netmask bytes for a persistence prefix: see [`SvcAttr::Netmask`].
pub fn netmask_bytes(family: Family, prefix: u8) -> [u8; 4] {
    match family {
        Family::Ipv4 => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(prefix.min(32)))
                .unwrap_or(0);
            mask.to_be_bytes()
        }
        Family::Ipv6 => u32::from(prefix).to_ne_bytes(),
    }
}

/// The persistence prefix for kernel netmask bytes, if they are one.
pub fn netmask_prefix(family: Family, bytes: [u8; 4]) -> Option<u8> {
    match family {
        Family::Ipv4 => {
            let mask = u32::from_be_bytes(bytes);
            let ones = mask.leading_ones();
            (mask.checked_shl(ones).unwrap_or(0) == 0).then_some(ones as u8)
        }
        Family::Ipv6 => u8::try_from(u32::from_ne_bytes(bytes))
            .ok()
            .filter(|p| *p <= 128),
    }
}

/// A service's full attributes, as `NEW_SERVICE` and `SET_SERVICE` need
/// them. Without persistence the timeout is 0 and the netmask the
/// family's full one, as ipvsadm sends.
pub fn service_attrs(svc: &VirtualService) -> Vec<SvcAttr> {
    let family = svc.key.family();
    let mut bits = 0;
    if svc.persistence.is_some() {
        bits |= flags::PERSISTENT;
    }
    if svc.one_packet {
        bits |= flags::ONEPACKET;
    }
    if svc.sched_flags.fallback {
        bits |= flags::SCHED1;
    }
    if svc.sched_flags.port {
        bits |= flags::SCHED2;
    }
    let (timeout, prefix) = match svc.persistence {
        Some(p) => (p.timeout, p.prefix),
        None => (0, family.max_prefix()),
    };
    let mut attrs = service_key_attrs(&svc.key);
    attrs.extend([
        SvcAttr::SchedName(svc.scheduler.name().to_string()),
        SvcAttr::Flags {
            flags: bits,
            mask: u32::MAX,
        },
        SvcAttr::Timeout(timeout),
        SvcAttr::Netmask(netmask_bytes(family, prefix)),
    ]);
    attrs
}

/// `IP_VS_CONN_F_*` forwarding numbers.
pub fn forwarding_number(f: Forwarding) -> u32 {
    match f {
        Forwarding::Nat => 0,
        Forwarding::Local => 1,
        Forwarding::Tunnel => 2,
        Forwarding::DirectRoute => 3,
    }
}

pub fn forwarding_from_number(n: u32) -> Option<Forwarding> {
    match n & 0x7 {
        0 => Some(Forwarding::Nat),
        1 => Some(Forwarding::Local),
        2 => Some(Forwarding::Tunnel),
        3 => Some(Forwarding::DirectRoute),
        _ => None,
    }
}

fn dest_key_attrs(address: std::net::SocketAddr) -> Vec<DestAttr> {
    vec![
        DestAttr::Addr(InetAddr::from_ip(address.ip())),
        DestAttr::Port(address.port()),
        DestAttr::AddrFamily(match address.ip() {
            IpAddr::V4(_) => AF_INET,
            IpAddr::V6(_) => af_number(Family::Ipv6),
        }),
    ]
}

/// A destination's full attributes, as `NEW_DEST` and `SET_DEST` need.
pub fn dest_attrs(dest: &Destination) -> Vec<DestAttr> {
    let mut attrs = dest_key_attrs(dest.address);
    attrs.extend([
        DestAttr::FwdMethod(forwarding_number(dest.forwarding)),
        DestAttr::Weight(dest.weight.get()),
        DestAttr::UThreshold(dest.upper_threshold),
        DestAttr::LThreshold(dest.lower_threshold),
    ]);
    attrs
}

/// The request adding (`NewService`) or changing (`SetService`) a service.
pub fn set_service(cmd: Command, svc: &VirtualService) -> IpvsMessage {
    IpvsMessage::new(cmd, vec![CmdAttr::Service(service_attrs(svc))])
}

pub fn del_service(key: &ServiceKey) -> IpvsMessage {
    IpvsMessage::new(
        Command::DelService,
        vec![CmdAttr::Service(service_key_attrs(key))],
    )
}

/// The request adding (`NewDest`) or changing (`SetDest`) a destination.
pub fn set_dest(cmd: Command, key: &ServiceKey, dest: &Destination) -> IpvsMessage {
    IpvsMessage::new(
        cmd,
        vec![
            CmdAttr::Service(service_key_attrs(key)),
            CmdAttr::Dest(dest_attrs(dest)),
        ],
    )
}

pub fn del_dest(key: &ServiceKey, address: std::net::SocketAddr) -> IpvsMessage {
    IpvsMessage::new(
        Command::DelDest,
        vec![
            CmdAttr::Service(service_key_attrs(key)),
            CmdAttr::Dest(dest_key_attrs(address)),
        ],
    )
}

/// The dump request for a service's destinations.
pub fn get_dests(key: &ServiceKey) -> IpvsMessage {
    IpvsMessage::new(
        Command::GetDest,
        vec![CmdAttr::Service(service_key_attrs(key))],
    )
}

pub fn new_daemon(attrs: Vec<DaemonAttr>) -> IpvsMessage {
    IpvsMessage::new(Command::NewDaemon, vec![CmdAttr::Daemon(attrs)])
}

pub fn del_daemon(state: u32) -> IpvsMessage {
    IpvsMessage::new(
        Command::DelDaemon,
        vec![CmdAttr::Daemon(vec![DaemonAttr::State(state)])],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::{Persistence, Protocol, SchedFlags, Scheduler, Weight};
    use netlink_packet_core::{
        Emitable, NLM_F_ACK, NLM_F_REQUEST, NetlinkMessage, ParseableParametrized,
    };
    use netlink_packet_generic::{GenlHeader, GenlMessage};

    /// The whole netlink message as the backend sends it, with a fixed
    /// family id and sequence number.
    fn wire(msg: IpvsMessage) -> Vec<u8> {
        let mut genl = GenlMessage::from_payload(msg);
        genl.set_resolved_family_id(0x24);
        let mut nl = NetlinkMessage::from(genl);
        nl.header.flags = NLM_F_REQUEST | NLM_F_ACK;
        nl.header.sequence_number = 1;
        nl.finalize();
        let mut buf = vec![0; nl.buffer_len()];
        nl.serialize(&mut buf);
        buf
    }

    /// Hex, 16 bytes a line, for snapshots.
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

    fn nat_service() -> VirtualService {
        VirtualService {
            key: ServiceKey::Socket {
                protocol: Protocol::Tcp,
                address: "10.0.1.100:80".parse().unwrap(),
            },
            scheduler: Scheduler::Rr,
            sched_flags: SchedFlags::default(),
            persistence: None,
            one_packet: false,
            masquerade: false,
            destinations: Default::default(),
        }
    }

    fn rs1() -> Destination {
        Destination {
            address: "10.0.2.11:80".parse().unwrap(),
            weight: Weight::new(1).unwrap(),
            forwarding: Forwarding::Nat,
            upper_threshold: 0,
            lower_threshold: 0,
        }
    }

    /// `ipvsadm -A -t 10.0.1.100:80 -s rr`, field by field.
    #[test]
    fn add_service_bytes() {
        #[rustfmt::skip]
        let expected: Vec<u8> = vec![
            // nlmsghdr: length 104, type 0x24 (family), flags REQUEST|ACK, seq 1, pid 0
            104, 0, 0, 0, 0x24, 0, 0x05, 0, 1, 0, 0, 0, 0, 0, 0, 0,
            // genlmsghdr: cmd NEW_SERVICE, version 1
            1, 1, 0, 0,
            // IPVS_CMD_ATTR_SERVICE, 84 bytes
            84, 0, 1, 0,
            //   AF = AF_INET
            6, 0, 1, 0, 2, 0, 0, 0,
            //   PROTOCOL = 6 (TCP)
            6, 0, 2, 0, 6, 0, 0, 0,
            //   ADDR = 10.0.1.100 in a 16-byte nf_inet_addr
            20, 0, 3, 0, 10, 0, 1, 100, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            //   PORT = 80, network order
            6, 0, 4, 0, 0, 80, 0, 0,
            //   SCHED_NAME = "rr\0"
            7, 0, 6, 0, b'r', b'r', 0, 0,
            //   FLAGS = { flags 0, mask ~0 }
            12, 0, 7, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff,
            //   TIMEOUT = 0
            8, 0, 8, 0, 0, 0, 0, 0,
            //   NETMASK = 255.255.255.255
            8, 0, 9, 0, 0xff, 0xff, 0xff, 0xff,
        ];
        assert_eq!(
            wire(set_service(Command::NewService, &nat_service())),
            expected
        );
    }

    #[test]
    fn message_snapshots() {
        let mut persistent = nat_service();
        persistent.key = ServiceKey::Socket {
            protocol: Protocol::Udp,
            address: "[2001:db8::1]:53".parse().unwrap(),
        };
        persistent.scheduler = Scheduler::Sh;
        persistent.sched_flags = SchedFlags {
            fallback: true,
            port: true,
        };
        persistent.one_packet = true;
        persistent.persistence = Some(Persistence {
            timeout: 300,
            prefix: 64,
        });
        let fwmark = ServiceKey::Fwmark {
            family: Family::Ipv4,
            mark: 7,
        };
        let mut dr = rs1();
        dr.forwarding = Forwarding::DirectRoute;
        dr.weight = Weight::new(100).unwrap();
        dr.upper_threshold = 1000;
        dr.lower_threshold = 10;
        insta::assert_snapshot!(
            "edit_service_ipv6_sh_persistent",
            hex(&wire(set_service(Command::SetService, &persistent)))
        );
        insta::assert_snapshot!("delete_fwmark_service", hex(&wire(del_service(&fwmark))));
        insta::assert_snapshot!(
            "add_dest_nat",
            hex(&wire(set_dest(
                Command::NewDest,
                &nat_service().key,
                &rs1()
            )))
        );
        insta::assert_snapshot!(
            "edit_dest_dr_thresholds",
            hex(&wire(set_dest(Command::SetDest, &fwmark, &dr)))
        );
        insta::assert_snapshot!(
            "delete_dest",
            hex(&wire(del_dest(&nat_service().key, rs1().address)))
        );
        insta::assert_snapshot!(
            "start_master_daemon",
            hex(&wire(new_daemon(vec![
                DaemonAttr::State(1),
                DaemonAttr::McastIfn("eth0".into()),
                DaemonAttr::SyncId(51),
            ])))
        );
    }

    #[test]
    fn messages_parse_back() {
        let msg = set_dest(Command::NewDest, &nat_service().key, &rs1());
        let mut buf = vec![0; msg.buffer_len()];
        msg.emit(&mut buf);
        let header = GenlHeader {
            cmd: Command::NewDest as u8,
            version: 1,
        };
        assert_eq!(IpvsMessage::parse_with_param(&buf, header).unwrap(), msg);
    }

    #[test]
    fn netmasks() {
        assert_eq!(netmask_bytes(Family::Ipv4, 24), [255, 255, 255, 0]);
        assert_eq!(netmask_bytes(Family::Ipv4, 32), [255; 4]);
        assert_eq!(netmask_bytes(Family::Ipv4, 0), [0; 4]);
        assert_eq!(netmask_bytes(Family::Ipv6, 64), 64u32.to_ne_bytes());
        for p in 0..=32 {
            assert_eq!(
                netmask_prefix(Family::Ipv4, netmask_bytes(Family::Ipv4, p)),
                Some(p)
            );
        }
        assert_eq!(netmask_prefix(Family::Ipv4, [255, 0, 255, 0]), None);
        assert_eq!(netmask_prefix(Family::Ipv6, 129u32.to_ne_bytes()), None);
        assert_eq!(netmask_prefix(Family::Ipv6, 48u32.to_ne_bytes()), Some(48));
    }
}
