//! The daemon's network I/O in namespaces, with independent witnesses:
//! `ip addr` for VIPs, tcpdump for gratuitous ARP and neighbour
//! advertisements, a second host's socket for VRRP packets.

use appliance::net::IfIndex;
use appliance::net::gratuitous::Announcer;
use appliance::net::link::LinkWatch;
use appliance::net::socket::{MULTICAST_V4, MULTICAST_V6, VrrpSocket};
use appliance::net::vip::{Addresses, Vip};
use appliance_tests::netns::{Host, Lan};
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::Stdio;
use std::time::Duration;

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

fn pair() -> Lan {
    let mut lan = Lan::new().expect("lan");
    lan.add_host("a", &["10.96.0.1/24", "10.96.0.51/24", "fd96::1/64"])
        .expect("host a");
    lan.add_host("b", &["10.96.0.2/24", "fd96::2/64"])
        .expect("host b");
    lan
}

fn ip_addr_show(host: &Host) -> String {
    String::from_utf8_lossy(
        &host
            .ip(&["addr", "show", "dev", "eth0"])
            .expect("ip addr")
            .stdout,
    )
    .into_owned()
}

#[test]
fn vips_are_added_with_labels_idempotently_and_removed() {
    let lan = pair();
    let a = lan.host("a");
    let v4 = Vip {
        addr: "10.96.0.100".parse().unwrap(),
        prefix_len: 24,
        label: Some("eth0:vi1".into()),
        scope: None,
    };
    let v6 = Vip {
        addr: "fd96::100".parse().unwrap(),
        prefix_len: 64,
        label: None,
        scope: None,
    };
    let (v4c, v6c) = (v4.clone(), v6.clone());
    let listed = a
        .enter(move || {
            block_on(async move {
                let addrs = Addresses::connect().expect("rtnetlink");
                let eth0 = addrs.link("eth0").await.expect("eth0");
                for _ in 0..2 {
                    addrs.add(eth0.index, &v4c).await.expect("add v4");
                    addrs.add(eth0.index, &v6c).await.expect("add v6");
                }
                addrs.list(eth0.index).await.expect("list")
            })
        })
        .unwrap();
    assert!(listed.contains(&(v4.addr, 24)), "{listed:?}");
    assert!(listed.contains(&(v6.addr, 64)), "{listed:?}");

    let shown = ip_addr_show(a);
    assert!(
        shown.contains("inet 10.96.0.100/24") && shown.contains("eth0:vi1"),
        "{shown}"
    );
    let v6_line = shown
        .lines()
        .find(|l| l.contains("fd96::100/64"))
        .expect("v6 VIP shown");
    assert!(!v6_line.contains("tentative"), "VIP skips DAD: {v6_line}");
    assert_eq!(
        shown.matches("10.96.0.100").count(),
        1,
        "added once: {shown}"
    );

    let (v4c, v6c) = (v4.clone(), v6.clone());
    a.enter(move || {
        block_on(async move {
            let addrs = Addresses::connect().expect("rtnetlink");
            let eth0 = addrs.link("eth0").await.expect("eth0");
            for _ in 0..2 {
                addrs.remove(eth0.index, &v4c).await.expect("remove v4");
                addrs.remove(eth0.index, &v6c).await.expect("remove v6");
            }
        })
    })
    .unwrap();
    let shown = ip_addr_show(a);
    assert!(
        !shown.contains("10.96.0.100") && !shown.contains("fd96::100"),
        "{shown}"
    );
    assert!(
        shown.contains("10.96.0.1/24"),
        "the host's own address stays: {shown}"
    );
}

#[test]
fn an_unknown_interface_is_a_clear_error() {
    let lan = pair();
    let err = lan
        .host("a")
        .enter(|| {
            block_on(async {
                Addresses::connect()
                    .expect("rtnetlink")
                    .link("nope0")
                    .await
                    .unwrap_err()
            })
        })
        .unwrap();
    assert_eq!(err.to_string(), "no interface named nope0");
}

/// Sends `payload` from a to `dst` and returns what b's socket received.
fn vrrp_roundtrip(
    family: IpAddr,
    dst: IpAddr,
    src: Option<IpAddr>,
    group: Option<IpAddr>,
) -> appliance::net::socket::Received {
    let lan = pair();
    let receiver = lan
        .host("b")
        .enter_background(move || {
            block_on(async move {
                let sock =
                    VrrpSocket::open("eth0", index_of("eth0"), family, group).expect("b socket");
                tokio::time::timeout(Duration::from_secs(5), sock.recv()).await
            })
        })
        .unwrap();
    // Give b time to join the group before a sends; resend until b has it.
    let sender = lan
        .host("a")
        .enter_background(move || {
            block_on(async move {
                let sock =
                    VrrpSocket::open("eth0", index_of("eth0"), family, group).expect("a socket");
                for _ in 0..50 {
                    sock.send(
                        src.unwrap_or(family),
                        dst,
                        &[0x31, 51, 150, 1, 0, 100, 0, 0],
                    )
                    .await
                    .expect("send");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
        })
        .unwrap();
    let got = receiver
        .join()
        .unwrap()
        .unwrap()
        .expect("b received within 5 s")
        .expect("usable packet");
    sender.join().unwrap().unwrap();
    got
}

fn index_of(ifname: &str) -> IfIndex {
    IfIndex(nix::net::if_::if_nametoindex(ifname).expect("interface index"))
}

#[test]
fn ipv4_multicast_adverts_arrive_with_ttl_255() {
    let group = IpAddr::from(MULTICAST_V4);
    let got = vrrp_roundtrip("0.0.0.0".parse().unwrap(), group, None, Some(group));
    assert_eq!(got.src, IpAddr::from([10, 96, 0, 1]));
    assert_eq!(got.dst, IpAddr::from(MULTICAST_V4));
    assert_eq!(got.ttl, 255);
    assert_eq!(got.payload, vec![0x31, 51, 150, 1, 0, 100, 0, 0]);
}

#[test]
fn ipv6_multicast_adverts_arrive_from_the_link_local_with_hop_limit_255() {
    let group = IpAddr::from(MULTICAST_V6);
    let got = vrrp_roundtrip("::".parse().unwrap(), group, None, Some(group));
    match got.src {
        IpAddr::V6(src) => assert!(src.is_unicast_link_local(), "source {src} is link-local"),
        other => panic!("IPv6 source expected, got {other}"),
    }
    assert_eq!(got.dst, IpAddr::from(MULTICAST_V6));
    assert_eq!(got.ttl, 255);
    assert_eq!(got.payload, vec![0x31, 51, 150, 1, 0, 100, 0, 0]);
}

/// `vrrp_mcast_group4/6`: a socket joined to another group gets the
/// adverts sent to it.
#[test]
fn adverts_to_a_configured_group_arrive() {
    for (family, group) in [("0.0.0.0", "224.0.0.99"), ("::", "ff02::99")] {
        let group: IpAddr = group.parse().unwrap();
        let got = vrrp_roundtrip(family.parse().unwrap(), group, None, Some(group));
        assert_eq!(got.dst, group);
        assert_eq!(got.ttl, 255);
    }
}

#[test]
fn unicast_adverts_use_the_configured_source() {
    // A secondary address: the kernel would pick the primary, 10.96.0.1.
    let lan_src: IpAddr = "10.96.0.51".parse().unwrap();
    let got = vrrp_roundtrip(
        "0.0.0.0".parse().unwrap(),
        "10.96.0.2".parse().unwrap(),
        Some(lan_src),
        None,
    );
    assert_eq!(got.src, lan_src);
    assert_eq!(got.dst, IpAddr::from([10, 96, 0, 2]));
    assert_eq!(got.ttl, 255);
}

/// Starts tcpdump on b's eth0 with `filter`, waits until it listens, runs
/// `send` and returns tcpdump's first line.
fn witness(lan: &Lan, filter: &str, send: impl FnOnce()) -> String {
    let b = lan.host("b");
    let mut cmd = b.command("tcpdump");
    cmd.args(["-i", "eth0", "-n", "-l", "-c", "1", "-e", filter])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut tcpdump = b
        .spawn(&mut cmd)
        .unwrap_or_else(|e| panic!("{e} (install the Debian package tcpdump)"));
    let stderr = tcpdump.take_stderr().expect("tcpdump stderr");
    let mut lines = BufReader::new(stderr).lines();
    loop {
        match lines.next() {
            Some(Ok(line)) if line.contains("listening on") => break,
            Some(Ok(_)) => continue,
            other => panic!("tcpdump did not start: {other:?}"),
        }
    }
    send();
    let stdout = tcpdump.take_stdout().expect("tcpdump stdout");
    tcpdump
        .wait(Duration::from_secs(5))
        .expect("tcpdump saw a packet within 5 s");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("tcpdump output");
    line
}

fn mac_of(host: &Host) -> [u8; 6] {
    let out = host.ip(&["-o", "link", "show", "eth0"]).unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mac = text
        .split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .expect("link/ether");
    let bytes: Vec<u8> = mac
        .split(':')
        .map(|h| u8::from_str_radix(h, 16).unwrap())
        .collect();
    bytes.try_into().unwrap()
}

#[test]
fn gratuitous_arp_announces_the_vip_from_our_mac() {
    let lan = pair();
    let a = lan.host("a");
    let mac = mac_of(a);
    let line = witness(&lan, "arp", || {
        a.enter(move || {
            let announcer = Announcer::new(index_of("eth0"), mac).expect("announcer");
            announcer
                .arp(Ipv4Addr::new(10, 96, 0, 100))
                .expect("send GARP");
        })
        .unwrap();
    });
    let mac_text = mac
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":");
    assert!(
        line.contains(&format!("{mac_text} > ff:ff:ff:ff:ff:ff")),
        "{line}"
    );
    assert!(
        line.contains("Request who-has 10.96.0.100 tell 10.96.0.100"),
        "{line}"
    );
}

#[test]
fn unsolicited_neighbour_advertisement_announces_the_vip() {
    let lan = pair();
    let a = lan.host("a");
    let mac = mac_of(a);
    let line = witness(&lan, "icmp6 and ip6[40] == 136", || {
        a.enter(move || {
            let announcer = Announcer::new(index_of("eth0"), mac).expect("announcer");
            announcer
                .neighbour_advertisement("fd96::100".parse::<Ipv6Addr>().unwrap())
                .expect("send NA");
        })
        .unwrap();
    });
    assert!(line.contains("> ff02::1"), "{line}");
    assert!(
        line.contains("neighbor advertisement, tgt is fd96::100"),
        "{line}"
    );
}

#[test]
fn link_watch_reports_carrier_loss_and_return() {
    let lan = pair();
    let a = lan.host("a");
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let watcher = a
        .enter_background(move || {
            block_on(async move {
                let mut watch = LinkWatch::subscribe().expect("subscribe");
                ready_tx.send(()).unwrap();
                let mut seen = Vec::new();
                let mut last = true;
                while seen.len() < 2 {
                    let event = tokio::time::timeout(Duration::from_secs(5), watch.next())
                        .await
                        .expect("a link event within 5 s")
                        .expect("watch open");
                    if event.name == "eth0" && event.up != last {
                        last = event.up;
                        seen.push(event.up);
                    }
                }
                seen
            })
        })
        .unwrap();
    ready_rx.recv().unwrap();
    a.cut_link().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    a.restore_link().unwrap();
    assert_eq!(watcher.join().unwrap().unwrap(), vec![false, true]);
}
