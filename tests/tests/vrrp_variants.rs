//! Pairs beyond multicast IPv4: unicast adverts (`unicast_src_ip` and
//! `unicast_peer`) and VRRPv3 over IPv6 (`native_ipv6`, an IPv6 VIP).
//! Each pair elects its master, sends adverts where it should (checked on
//! the wire with tcpdump), fails over and preempts.

use appliance::vrrp::Version;
use appliance::vrrp::machine::State;
use appliance_tests::netns::Host;
use appliance_tests::pair::{Net, Pair, Side, assert_interval};
use appliance_tests::vrrp_conf::Instance;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

const EARLY: Duration = Duration::from_millis(50);
const LATE: Duration = Duration::from_millis(400);
const SLACK: Duration = Duration::from_secs(3);

/// The first `count` VRRP packets tcpdump sees on `host`'s eth0, one line
/// each (`IP 10.95.0.1 > 10.95.0.2: VRRPv2, Advertisement, …`).
fn capture(host: &Host, ipv6: bool, count: usize) -> Vec<String> {
    let filter = if ipv6 {
        "ip6 proto 112"
    } else {
        "ip proto 112"
    };
    let out = host
        .run(
            "timeout",
            &[
                "10",
                "tcpdump",
                "-i",
                "eth0",
                "-n",
                "-l",
                "-c",
                &count.to_string(),
                filter,
            ],
        )
        .unwrap_or_else(|e| panic!("tcpdump (Debian package tcpdump) in {}: {e}", host.name()));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Cuts m's link right after an advert; b takes over one
/// Master_Down_Interval after that advert. Restores it; m preempts.
fn fail_over_and_back(p: &mut Pair, what: &str) {
    p.m.next_advert(SLACK).expect("m advertises");
    let cut = p.mark("cut m's link");
    p.host(Side::M).cut_link().unwrap();
    let last = p.m.last_advert(SystemTime::now()).unwrap();
    let mdi = p.b_conf.master_down_interval();
    let b_master =
        p.b.wait_event("b becoming master", mdi + SLACK, |e| {
            e.after(&cut) && e.entered() == Some(State::Master)
        })
        .expect("b takes over");
    assert_interval(
        &format!("{what}: m's last advert to b MASTER"),
        b_master.since(&last),
        mdi,
        EARLY,
        LATE,
    );
    p.wait_holder(Side::B, SLACK).expect("the VIP on b only");
    p.b.wait_notify(State::Master, &b_master, SLACK)
        .expect("b's takeover completes");

    let restore = p.mark("restore m's link");
    p.host(Side::M).restore_link().unwrap();
    p.m.wait_event(
        "m preempting",
        p.m_conf.master_down_interval() + SLACK,
        |e| e.after(&restore) && e.entered() == Some(State::Master),
    )
    .expect("m preempts");
    p.wait_holder(Side::M, SLACK).expect("the VIP back on m");
    p.hold(Side::M, Duration::from_secs(1))
        .expect("m alone holds the VIP");
}

#[test]
fn a_unicast_pair_advertises_to_its_peer_and_fails_over() {
    let net = Net(95);
    let vip = Net::cidr(&net.vip());
    let (m_ip, b_ip): (IpAddr, IpAddr) = (net.m().parse().unwrap(), net.b().parse().unwrap());
    let m = Instance::new("m", 95, 150, &vip)
        .initial_master()
        .unicast(m_ip, &[b_ip]);
    let b = Instance::new("b", 95, 100, &vip).unicast(b_ip, &[m_ip]);
    let mut p = Pair::start(net, m, b, &net.vip()).expect("m and b elect m");

    let packets = capture(p.host(Side::B), false, 3);
    assert_eq!(packets.len(), 3, "{packets:?}");
    for packet in &packets {
        assert!(
            packet.contains(&format!(
                " IP {m_ip} > {b_ip}: VRRPv2, Advertisement, vrid 95, prio 150"
            )),
            "a unicast advert from m to b: {packet}"
        );
    }
    fail_over_and_back(&mut p, "unicast");
    insta::assert_snapshot!(p.render_order().unwrap());
}

#[test]
fn an_ipv6_vrrpv3_pair_elects_fails_over_and_preempts() {
    let net = Net(96);
    let vip = Net::cidr(&net.vip6());
    let m = Instance::new("m", 96, 150, &vip)
        .initial_master()
        .version(Version::V3)
        .native_ipv6();
    let b = Instance::new("b", 96, 100, &vip)
        .version(Version::V3)
        .native_ipv6();
    let mut p = Pair::start(net, m, b, &net.vip6()).expect("m and b elect m");

    let packets = capture(p.host(Side::B), true, 2);
    assert_eq!(packets.len(), 2, "{packets:?}");
    for packet in &packets {
        assert!(
            packet.contains(" IP6 fe80::")
                && packet
                    .contains(" > ff02::12: VRRPv3, Advertisement, vrid 96, prio 150, intvl 100cs"),
            "a VRRPv3 advert from m's link-local address to ff02::12: {packet}"
        );
    }
    fail_over_and_back(&mut p, "IPv6 VRRPv3");
    insta::assert_snapshot!(p.render_order().unwrap());
}
