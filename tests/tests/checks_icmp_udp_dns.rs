//! PING_CHECK, UDP_CHECK and DNS_CHECK against a real kernel, in network
//! namespaces on 10.150.0.0/24 (and fd00:150::/64): a director running `appliance run` with
//! one virtual server per check in front of a host `rs`, whose services
//! this test runs in threads inside its namespace (a UDP echo server that
//! can turn to answering garbage, a bare UDP socket that never answers,
//! and a DNS responder whose rcode the test sets). Each real server is
//! made to fail the way its check sees (the pinged address removed, a
//! reply that does not match, a closed port's ICMP unreachable, SERVFAIL
//! preceded by a NOERROR answer with the wrong id) and then to recover;
//! the timeline witnesses each down and up, and `appliance status --json`
//! the failure each check saw.

use appliance::daemon::status::Status;
use appliance::timeline::EventKind;
use appliance_tests::daemon::Daemon;
use appliance_tests::netns::{Host, Lan};
use appliance_tests::timeline::Entry;
use appliance_tests::toml_conf::Director;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::Duration;

const NET: u8 = 150;
const DIRECTOR: &str = "10.150.0.1";
/// The real server host's own address, where its UDP and DNS services are.
const RS: &str = "10.150.0.2";
/// A second address of the real server host: the pinged one, removed and
/// put back.
const PINGED: &str = "10.150.0.3";
/// The same over IPv6 (raw ICMPv6 has no IP header and the kernel's
/// checksum).
const PINGED_V6: &str = "fd00:150::3";
const ECHO_PORT: u16 = 7;
const SILENT_PORT: u16 = 9;
const DNS_PORT: u16 = 53;

/// The checks' timing below (delay_loop 1 s, connect_timeout 1 s, one
/// retry after 1 s) plus scheduling slack on a loaded 2-core machine.
const WITHIN: Duration = Duration::from_secs(15);

fn config() -> String {
    let check = |kind: &str, extra: &str| {
        format!(
            "check = [{{ type = \"{kind}\", connect_timeout = \"1s\", retry = 1, \
             delay_before_retry = \"1s\"{extra} }}]"
        )
    };
    let vs = |port: u16, protocol: &str, rs: SocketAddr, check: String| {
        format!(
            "\n[[virtual_server]]\nlb_algo = \"rr\"\nlb_kind = \"NAT\"\nprotocol = \"{protocol}\"\n\
             delay_loop = \"1s\"\n\n[virtual_server.service]\naddress = \"10.{NET}.0.100:{port}\"\n\n\
             [[virtual_server.real_server]]\naddress = \"{rs}\"\nweight = 1\n{check}\n"
        )
    };
    format!(
        "{}{}{}{}{}{}",
        Director::new("d", NET).with("MASTER", 200).render(),
        vs(80, "TCP", pinged(), check("PING_CHECK", "")),
        vs_v6(pinged_v6(), check("PING_CHECK", "")),
        vs(
            ECHO_PORT,
            "UDP",
            at(ECHO_PORT),
            check(
                "UDP_CHECK",
                ", payload = \"ca fe 01\", require_reply = \"ca fe X1\""
            )
        ),
        vs(SILENT_PORT, "UDP", at(SILENT_PORT), check("UDP_CHECK", "")),
        vs(
            DNS_PORT,
            "UDP",
            at(DNS_PORT),
            check(
                "DNS_CHECK",
                ", record_type = \"A\", name = \"www.example.test\""
            )
        ),
    )
}

fn vs_v6(rs: SocketAddr, check: String) -> String {
    format!(
        "\n[[virtual_server]]\nlb_algo = \"rr\"\nlb_kind = \"NAT\"\nprotocol = \"TCP\"\n\
         delay_loop = \"1s\"\n\n[virtual_server.service]\naddress = \"[fd00:{NET}::100]:80\"\n\n\
         [[virtual_server.real_server]]\naddress = \"{rs}\"\nweight = 1\n{check}\n"
    )
}

fn pinged_v6() -> SocketAddr {
    SocketAddr::new(PINGED_V6.parse().unwrap(), 80)
}

fn at(port: u16) -> SocketAddr {
    SocketAddr::new(RS.parse().unwrap(), port)
}

fn pinged() -> SocketAddr {
    SocketAddr::new(PINGED.parse().unwrap(), 80)
}

/// What the echo server does with a datagram.
const ECHO: u8 = 0;
const GARBAGE: u8 = 1;

/// A UDP server on `port` in `host` until `stop`: echoes each datagram, or
/// answers `00` per `mode`. Polls `stop` every 100 ms.
fn echo_server(host: &Host, mode: Arc<AtomicU8>, stop: Arc<AtomicBool>) {
    host.enter_background(move || {
        let socket = UdpSocket::bind(at(ECHO_PORT)).expect("binding the echo server");
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut buf = [0u8; 512];
        while !stop.load(Ordering::Relaxed) {
            let Ok((len, from)) = socket.recv_from(&mut buf) else {
                continue;
            };
            let answer = match mode.load(Ordering::Relaxed) {
                ECHO => &buf[..len],
                _ => &[0u8][..],
            };
            let _ = socket.send_to(answer, from);
        }
    })
    .expect("entering rs");
}

/// A DNS responder on port 53 in `host` until `stop`: answers each query
/// with the rcode in `rcode`; before an error answer it sends a NOERROR
/// answer with another id, which must not count.
fn dns_server(host: &Host, rcode: Arc<AtomicU8>, stop: Arc<AtomicBool>) {
    host.enter_background(move || {
        let socket = UdpSocket::bind(at(DNS_PORT)).expect("binding the DNS responder");
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut buf = [0u8; 512];
        while !stop.load(Ordering::Relaxed) {
            let Ok((len, from)) = socket.recv_from(&mut buf) else {
                continue;
            };
            if len < 12 || buf[2] & 0x80 != 0 {
                continue;
            }
            // The question is echoed back, with no records: NOERROR alone
            // is what the check asks.
            let mut answer = buf[..len].to_vec();
            answer[2] |= 0x84; // QR, AA
            answer[3] = 0x80; // RA
            let code = rcode.load(Ordering::Relaxed);
            if code != 0 {
                let mut stray = answer.clone();
                stray[1] ^= 0x5a;
                let _ = socket.send_to(&stray, from);
            }
            answer[3] |= code;
            let _ = socket.send_to(&answer, from);
        }
    })
    .expect("entering rs");
}

fn real_server_event(address: SocketAddr, up: bool) -> impl Fn(&Entry) -> bool {
    move |e| {
        matches!(e.event.kind, EventKind::RealServer { address: a, alive, .. }
            if a == address && alive == up)
    }
}

fn status(director: &Host, daemon: &Daemon) -> Status {
    daemon.status(director).expect("appliance status --json")
}

/// The kind and last result of `address`'s check, per `appliance status`.
fn last_check(status: &Status, address: SocketAddr) -> (String, bool, String) {
    let rs = status
        .virtual_servers
        .iter()
        .flat_map(|vs| &vs.real_servers)
        .find(|rs| rs.address == address)
        .unwrap_or_else(|| panic!("{address} is not in {status:?}"));
    let check = rs.checks.first().expect("one check");
    let last = check.last.as_ref().expect("a check that ran");
    (check.kind.clone(), rs.alive, last.result.clone())
}

/// Counts the timeline's transitions of `address` to `up`.
fn transitions(daemon: &Daemon, address: SocketAddr, up: bool) -> usize {
    daemon
        .timeline()
        .expect("the timeline")
        .iter()
        .filter(|e| real_server_event(address, up)(e))
        .count()
}

/// Waits for the `n`th transition of `address` to `up` in the timeline.
fn wait_transition(daemon: &mut Daemon, address: SocketAddr, up: bool, n: usize, what: &str) {
    let start = std::time::Instant::now();
    while transitions(daemon, address, up) < n {
        assert!(
            start.elapsed() < WITHIN,
            "{what}: no transition within {WITHIN:?}\n{}",
            daemon.log()
        );
        assert!(
            daemon.running().expect("the daemon's state"),
            "{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn ping_udp_and_dns_checks_take_real_servers_out_and_back() {
    let mut lan = Lan::new().expect("lan");
    lan.add_host("d", &[&format!("{DIRECTOR}/24"), "fd00:150::1/64"])
        .expect("director");
    lan.add_host(
        "rs",
        &[
            &format!("{RS}/24"),
            &format!("{PINGED}/24"),
            "fd00:150::2/64",
            &format!("{PINGED_V6}/64"),
        ],
    )
    .expect("real server host");
    let director = lan.host("d");
    let rs = lan.host("rs");
    // Every closed-port probe must get its ICMP unreachable, not the rate
    // limit's silence.
    rs.sysctl("net.ipv4.icmp_ratelimit", "0")
        .expect("icmp_ratelimit");

    let stop = Arc::new(AtomicBool::new(false));
    let echo_mode = Arc::new(AtomicU8::new(ECHO));
    let rcode = Arc::new(AtomicU8::new(0));
    echo_server(rs, echo_mode.clone(), stop.clone());
    dns_server(rs, rcode.clone(), stop.clone());
    // A socket that takes datagrams and never answers: silence is up.
    let silent = rs
        .enter(|| UdpSocket::bind(at(SILENT_PORT)))
        .expect("entering rs")
        .expect("binding the silent port");

    let mut daemon = Daemon::start_toml(director, &config()).expect("appliance run");
    // All four pass their first runs: no server ever leaves.
    std::thread::sleep(Duration::from_secs(4));
    let first = status(director, &daemon);
    for (address, kind) in [
        (pinged(), "PING_CHECK"),
        (pinged_v6(), "PING_CHECK"),
        (at(ECHO_PORT), "UDP_CHECK"),
        (at(SILENT_PORT), "UDP_CHECK"),
        (at(DNS_PORT), "DNS_CHECK"),
    ] {
        let (got, alive, result) = last_check(&first, address);
        assert_eq!((got.as_str(), alive), (kind, true), "{address}: {result}");
        assert_eq!(transitions(&daemon, address, false), 0, "{address}");
    }

    let ups: Vec<usize> = [
        pinged(),
        pinged_v6(),
        at(ECHO_PORT),
        at(SILENT_PORT),
        at(DNS_PORT),
    ]
    .into_iter()
    .map(|address| transitions(&daemon, address, true))
    .collect();

    // Each fails its own way.
    rs.ip(&["addr", "del", &format!("{PINGED}/24"), "dev", "eth0"])
        .expect("removing the pinged address");
    rs.ip(&["addr", "del", &format!("{PINGED_V6}/64"), "dev", "eth0"])
        .expect("removing the pinged IPv6 address");
    echo_mode.store(GARBAGE, Ordering::Relaxed);
    drop(silent);
    rcode.store(2, Ordering::Relaxed);
    for (address, what, result) in [
        (pinged(), "PING_CHECK of a removed address", "timed out"),
        (
            pinged_v6(),
            "PING_CHECK of a removed IPv6 address",
            "timed out",
        ),
        (
            at(ECHO_PORT),
            "UDP_CHECK answered with garbage",
            "reply does not match require_reply",
        ),
        (
            at(SILENT_PORT),
            "UDP_CHECK of a closed port",
            "connect failed: connection refused",
        ),
        (
            at(DNS_PORT),
            "DNS_CHECK answered SERVFAIL",
            "DNS answer with rcode 2",
        ),
    ] {
        wait_transition(&mut daemon, address, false, 1, what);
        let (_, alive, got) = last_check(&status(director, &daemon), address);
        assert!(!alive, "{what}");
        assert_eq!(got, result, "{what}");
    }

    // And recovers.
    rs.ip(&["addr", "add", &format!("{PINGED}/24"), "dev", "eth0"])
        .expect("putting the pinged address back");
    rs.ip(&["addr", "add", &format!("{PINGED_V6}/64"), "dev", "eth0"])
        .expect("putting the pinged IPv6 address back");
    echo_mode.store(ECHO, Ordering::Relaxed);
    let _silent = rs
        .enter(|| UdpSocket::bind(at(SILENT_PORT)))
        .expect("entering rs")
        .expect("binding the silent port again");
    rcode.store(0, Ordering::Relaxed);
    for ((address, what), before) in [
        (pinged(), "PING_CHECK of the address put back"),
        (pinged_v6(), "PING_CHECK of the IPv6 address put back"),
        (at(ECHO_PORT), "UDP_CHECK echoed again"),
        (at(SILENT_PORT), "UDP_CHECK of a silent port again"),
        (at(DNS_PORT), "DNS_CHECK answered NOERROR"),
    ]
    .into_iter()
    .zip(ups)
    {
        wait_transition(&mut daemon, address, true, before + 1, what);
        let (_, alive, got) = last_check(&status(director, &daemon), address);
        assert!(alive, "{what}: {got}");
    }
    stop.store(true, Ordering::Relaxed);
    daemon.stop().expect("stopping the daemon");
}
