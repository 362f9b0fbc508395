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
