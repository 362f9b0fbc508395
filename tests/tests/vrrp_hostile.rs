//! Hostile adverts against a running pair, through real sockets in network
//! namespaces. A third host on the LAN forges what a routed attacker could
//! send: adverts with priority 255 for the pair's VRID and VIP, addressed
//! to the master's unicast address (the TTL a router would leave). A
//! multicast instance takes adverts only to the VRRP group with TTL 255, so
//! the master keeps the VIP and counts the drops.

use appliance::vrrp::packet::{Addresses, Auth, IpContext, Packet, Repr, Seconds, Variant};
use appliance::vrrp::{Priority, Vrid};
use appliance_tests::pair::{Net, Pair, Side};
use appliance_tests::vrrp_conf::Instance;
use socket2::{Domain, Protocol, Socket, Type};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

/// A version 2 advert for `vrid` listing `vip`, as `src` would send it to
/// `dst` with `ttl`.
fn forged(vrid: u8, vip: Ipv4Addr, src: Ipv4Addr, dst: Ipv4Addr, ttl: u8) -> Vec<u8> {
    let repr = Repr {
        vrid: Vrid::new(u32::from(vrid)).unwrap(),
        priority: Priority::OWNER,
        variant: Variant::V2 {
            adver_int: Seconds(1),
            auth: Auth::None,
        },
        addresses: Addresses::V4(vec![vip]),
    };
    let mut bytes = vec![0; repr.buffer_len()];
    repr.emit(
        &mut Packet::new_unchecked(&mut bytes[..]),
        &IpContext::V4 { src, dst, ttl },
    )
    .unwrap();
    bytes
}

#[test]
fn a_multicast_master_ignores_priority_255_sent_to_its_unicast_address() {
    let net = Net(105);
    let vip = Net::cidr(&net.vip());
    let m = Instance::new("m", 105, 150, &vip).initial_master();
    let b = Instance::new("b", 105, 100, &vip);
    let mut p = Pair::start(net, m, b, &net.vip()).expect("m and b elect m");

    let attacker: Ipv4Addr = "10.105.0.10".parse().unwrap();
    let target: Ipv4Addr = net.m().parse().unwrap();
    let vip: Ipv4Addr = net.vip().parse().unwrap();
    let sender = p
        .lan
        .host("c")
        .enter_background(move || {
            let socket = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(112)))
                .expect("raw VRRP socket");
            socket.set_ttl_v4(64).expect("TTL 64");
            let to = SocketAddrV4::new(target, 0).into();
            for _ in 0..30 {
                socket
                    .send_to(&forged(105, vip, attacker, target, 64), &to)
                    .expect("send the forged advert");
                std::thread::sleep(Duration::from_millis(100));
            }
        })
        .unwrap();
    // Three advert intervals and more: the first forged advert would have
    // made m a backup at once, and b would have taken over.
    p.hold(Side::M, Duration::from_secs(4))
        .expect("m keeps the VIP, b never takes it");
    sender.join().unwrap().unwrap();
    p.m.wait_log("not_to_group", Duration::from_secs(5))
        .expect("m counts the forged adverts as not sent to the group");
    assert!(
        !p.m.log().contains("higher priority 255"),
        "m never yielded to the forger:\n{}",
        p.m.log()
    );
}

/// A flood reaches the daemon only where it could matter: the kernel's
/// socket filter keeps VRRP adverts of the instances' VRIDs alone, so
/// garbage and other routers' adverts never wake the daemon nor fill its
/// socket's buffer. Adverts of m's VRID still arrive (these have a bad
/// checksum, which m counts).
#[test]
fn the_kernel_drops_packets_of_other_vrids_and_garbage() {
    let net = Net(118);
    let vip = Net::cidr(&net.vip());
    let m = Instance::new("m", 118, 150, &vip).initial_master();
    let b = Instance::new("b", 118, 100, &vip);
    let mut p = Pair::start(net, m, b, &net.vip()).expect("m and b elect m");
    let flooder: Ipv4Addr = "10.118.0.10".parse().unwrap();
    let group = Ipv4Addr::new(224, 0, 0, 18);
    let vip: Ipv4Addr = net.vip().parse().unwrap();
    let sender = p
        .lan
        .host("c")
        .enter_background(move || {
            let socket = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(112)))
                .expect("raw VRRP socket");
            socket.set_multicast_ttl_v4(255).expect("TTL 255");
            socket
                .set_multicast_if_v4(&flooder)
                .expect("multicast interface");
            let to = SocketAddrV4::new(group, 0).into();
            let mut bad_checksum = forged(118, vip, flooder, group, 255);
            bad_checksum[6] ^= 0xff;
            for i in 0..200u8 {
                let other = forged(119 + i % 100, vip, flooder, group, 255);
                let garbage = [i, 0xff, 0, 0, 1, 2, 3, 4];
                for packet in [&other[..], &garbage[..]] {
                    socket.send_to(packet, &to).expect("send");
                }
                if i % 20 == 0 {
                    socket.send_to(&bad_checksum, &to).expect("send");
                }
            }
        })
        .unwrap();
    sender.join().unwrap().unwrap();
    p.m.wait_log("reason=\"bad_checksum\"", Duration::from_secs(5))
        .expect("m's own VRID reaches it");
    std::thread::sleep(Duration::from_millis(500));
    let log = p.m.log();
    let count = |reason: &str| log.matches(&format!("reason=\"{reason}\"")).count();
    assert_eq!(
        count("bad_checksum"),
        10,
        "every advert of m's VRID arrived"
    );
    for filtered in ["unknown_vrid", "bad_version", "bad_type", "truncated"] {
        assert_eq!(
            count(filtered),
            0,
            "{filtered}: the kernel should have dropped these\n{log}"
        );
    }
}
