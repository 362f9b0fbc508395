//! Half-open TCP checks (`half_open = true`) between two network
//! namespaces on a bridge, a director and a real server, over IPv4 and
//! IPv6: a listener is up, a closed port is refused, SYNs dropped by the
//! server's nftables or sent to an address nobody holds time out, and
//! `bindto` picks the source, and ICMP unreachables fail a probe as they
//! fail a connect. The witnesses are on the server's side: its
//! listener never accepts a connection and keeps no half-open one, and
//! the director is left with no socket once the prober stops. Last, the
//! runner drives half-open checks from a TOML config.

use appliance::check::decision::{Failure, Outcome};
use appliance::check::runner::{self, Options};
use appliance::check::syn::Prober;
use appliance::check::syn::socket::Family;
use appliance::config::model::Config;
use appliance_tests::netns::{Host, Lan};
use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_millis(1500);
const REFUSED: Outcome = Outcome::Down(Failure::Connect(ErrorKind::ConnectionRefused));

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// Probes every `(target, bindto)` at once on `prober` and waits for all
/// of them: each one's outcome and how long it took, in order.
async fn probe_all(
    prober: &mut Prober<usize>,
    probes: &[(&str, Option<&str>)],
) -> Vec<(Outcome, Duration)> {
    probe_all_within(prober, probes, TIMEOUT).await
}

/// [`probe_all`] with its own timeout.
async fn probe_all_within(
    prober: &mut Prober<usize>,
    probes: &[(&str, Option<&str>)],
    timeout: Duration,
) -> Vec<(Outcome, Duration)> {
    let start = prober.now();
    for (i, (target, bind)) in probes.iter().enumerate() {
        let bind = bind.map(|b| b.parse().unwrap());
        prober.start(start, i, addr(target), bind, timeout);
    }
    prober.flush();
    let mut results = vec![None; probes.len()];
    while results.iter().any(Option::is_none) {
        let now = prober.now();
        for done in prober.done() {
            results[done.token] = Some((done.outcome, now.saturating_since(start)));
        }
        if results.iter().any(Option::is_none) {
            prober.wait().await.expect("the prober's sockets");
        }
    }
    results.into_iter().flatten().collect()
}

fn lan() -> Lan {
    let mut lan = Lan::new().expect("lan");
    lan.add_host(
        "director",
        &["10.121.0.1/24", "10.121.0.2/24", "fd00:121::1/64"],
    )
    .expect("director");
    lan.add_host("rs", &["10.121.0.11/24", "fd00:121::11/64"])
        .expect("real server");
    lan
}

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

/// Listeners on the real server, which the test never accepts from.
fn listeners(rs: &Host, addrs: &[&str]) -> Vec<TcpListener> {
    let addrs: Vec<SocketAddr> = addrs.iter().map(|a| addr(a)).collect();
    rs.enter(move || {
        addrs
            .iter()
            .map(|a| {
                let l = TcpListener::bind(a).expect("listen");
                l.set_nonblocking(true).expect("nonblocking");
                l
            })
            .collect()
    })
    .expect("entering the real server")
}

/// The TCP sockets of `host` in `state` (as `ss` names them).
fn sockets(host: &Host, state: &str) -> String {
    let out = host
        .run("ss", &["-Htan", "state", state])
        .expect("ss (Debian package iproute2)");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The TCP and raw sockets of the namespace this thread is in.
fn own_sockets() -> String {
    let out = std::process::Command::new("ss")
        .args(["-Htwan"])
        .output()
        .expect("ss (Debian package iproute2)");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}

#[test]
fn listening_is_up_closed_is_refused_and_nothing_is_accepted() {
    let lan = lan();
    let rs = lan.host("rs");
    let held = listeners(rs, &["10.121.0.11:80", "[fd00:121::11]:80"]);
    let (outcomes, open, fds_before, fds_after, left) = lan
        .host("director")
        .enter(|| {
            block_on(async {
                let before = open_fds();
                let mut prober =
                    Prober::open(&[Family::V4, Family::V6], tokio::time::Instant::now())
                        .expect("prober");
                let open = own_sockets();
                let mut outcomes = probe_all(
                    &mut prober,
                    &[
                        ("10.121.0.11:80", None),
                        ("10.121.0.11:81", None),
                        ("[fd00:121::11]:80", None),
                        ("[fd00:121::11]:81", None),
                    ],
                )
                .await;
                // Probed again at once: the server kept nothing from the
                // first round that would get in the way.
                outcomes.extend(probe_all(&mut prober, &[("10.121.0.11:80", None)]).await);
                drop(prober);
                let outcomes: Vec<Outcome> = outcomes.into_iter().map(|(o, _)| o).collect();
                (outcomes, open, before, open_fds(), own_sockets())
            })
        })
        .expect("entering the director");
    assert_eq!(
        outcomes,
        vec![Outcome::Up, REFUSED, Outcome::Up, REFUSED, Outcome::Up]
    );
    for listener in &held {
        match listener.accept() {
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            other => panic!("the listener accepted something: {other:?}"),
        }
    }
    // The director's kernel reset each half-open connection.
    assert_eq!(sockets(rs, "syn-recv"), "");
    assert_eq!(sockets(rs, "established"), "");
    // One raw socket per family while it runs (the reserved ports, bound
    // and not listening, do not show); nothing once it stopped.
    assert_eq!(open.lines().count(), 2, "{open}");
    assert_eq!(left, "");
    assert_eq!(
        fds_after, fds_before,
        "the stopped prober left descriptors open"
    );
}

#[test]
fn dropped_or_unanswered_syns_time_out_and_bindto_picks_the_source() {
    let lan = lan();
    let rs = lan.host("rs");
    let _held = listeners(rs, &["10.121.0.11:80", "10.121.0.11:82"]);
    // The server drops every SYN to port 82, and those from 10.121.0.2.
    let rules = "add table inet probe\n\
                 add chain inet probe input { type filter hook input priority 0; }\n\
                 add rule inet probe input tcp dport 82 drop\n\
                 add rule inet probe input ip saddr 10.121.0.2 drop\n";
    let script = std::env::temp_dir().join(format!("half-open-{}.nft", std::process::id()));
    std::fs::write(&script, rules).expect("writing the nftables script");
    rs.run("nft", &["-f", &script.to_string_lossy()])
        .expect("nft (Debian package nftables)");
    let _ = std::fs::remove_file(&script);

    let results = lan
        .host("director")
        .enter(|| {
            block_on(async {
                let mut prober =
                    Prober::open(&[Family::V4], tokio::time::Instant::now()).expect("prober");
                let probes = [
                    // The route's source is 10.121.0.1: answered.
                    ("10.121.0.11:80", None),
                    ("10.121.0.11:80", Some("10.121.0.1")),
                    ("10.121.0.11:80", Some("10.121.0.2")),
                    ("10.121.0.11:82", None),
                    // Nobody holds it: ARP fails, later than the timeout.
                    ("10.121.0.99:80", None),
                    // Not an address of the director's.
                    ("10.121.0.11:80", Some("10.121.0.50")),
                ];
                let results = probe_all(&mut prober, &probes).await;
                probes
                    .into_iter()
                    .zip(results)
                    .map(|((target, bind), (outcome, took))| {
                        (
                            target,
                            bind.map(|b| b.parse::<IpAddr>().unwrap()),
                            outcome,
                            took,
                        )
                    })
                    .collect::<Vec<_>>()
            })
        })
        .expect("entering the director");
    for (target, bind, outcome, took) in results {
        let case = format!("{target} from {bind:?}: {outcome:?} after {took:?}");
        match (target, bind.map(|b| b.to_string())) {
            ("10.121.0.11:80", None) => assert_eq!(outcome, Outcome::Up, "{case}"),
            ("10.121.0.11:80", Some(b)) if b == "10.121.0.1" => {
                assert_eq!(outcome, Outcome::Up, "{case}")
            }
            ("10.121.0.11:80", Some(b)) if b == "10.121.0.50" => {
                assert!(
                    matches!(outcome, Outcome::Down(Failure::Connect(_))),
                    "{case}"
                );
                assert!(took < TIMEOUT, "{case}");
            }
            _ => {
                assert_eq!(outcome, Outcome::Down(Failure::Timeout), "{case}");
                // The SYN went out again after 1 s; the timeout still holds.
                assert!(took >= TIMEOUT && took < TIMEOUT * 2, "{case}");
            }
        }
    }
}

/// The server's firewall rejects SYNs with ICMP errors (host unreachable,
/// port unreachable; over IPv4 and IPv6): each half-open probe fails at
/// once with the error a full connect from the same director meets, not
/// after its timeout.
#[test]
fn icmp_unreachables_fail_a_probe_as_they_fail_a_connect() {
    let lan = lan();
    let rs = lan.host("rs");
    let _held = listeners(
        rs,
        &[
            "10.121.0.11:83",
            "10.121.0.11:84",
            "[fd00:121::11]:83",
            "[fd00:121::11]:84",
        ],
    );
    let rules = "add table inet probe\n\
                 add chain inet probe input { type filter hook input priority 0; }\n\
                 add rule inet probe input meta nfproto ipv4 tcp dport 83 reject with icmp type host-unreachable\n\
                 add rule inet probe input meta nfproto ipv6 tcp dport 83 reject with icmpv6 type addr-unreachable\n\
                 add rule inet probe input tcp dport 84 reject with icmpx type port-unreachable\n";
    let script = std::env::temp_dir().join(format!("half-open-icmp-{}.nft", std::process::id()));
    std::fs::write(&script, rules).expect("writing the nftables script");
    rs.run("nft", &["-f", &script.to_string_lossy()])
        .expect("nft (Debian package nftables)");
    let _ = std::fs::remove_file(&script);
    let targets = [
        "10.121.0.11:83",
        "10.121.0.11:84",
        "[fd00:121::11]:83",
        "[fd00:121::11]:84",
    ];
    let (probed, connects) = lan
        .host("director")
        .enter(move || {
            let connects: Vec<ErrorKind> = targets
                .iter()
                .map(|t| {
                    std::net::TcpStream::connect_timeout(&addr(t), TIMEOUT)
                        .map(|_| ErrorKind::Other)
                        .unwrap_or_else(|e| e.kind())
                })
                .collect();
            let probed = block_on(async {
                let mut prober =
                    Prober::open(&[Family::V4, Family::V6], tokio::time::Instant::now())
                        .expect("prober");
                let probes: Vec<(&str, Option<&str>)> =
                    targets.iter().map(|t| (*t, None)).collect();
                probe_all(&mut prober, &probes).await
            });
            (probed, connects)
        })
        .expect("entering the director");
    assert_eq!(
        connects,
        vec![
            ErrorKind::HostUnreachable,
            ErrorKind::ConnectionRefused,
            ErrorKind::HostUnreachable,
            ErrorKind::ConnectionRefused,
        ],
        "what a full connect meets"
    );
    for ((target, (outcome, took)), connect) in targets.iter().zip(&probed).zip(&connects) {
        assert_eq!(
            *outcome,
            Outcome::Down(Failure::Connect(*connect)),
            "{target}"
        );
        // Well before the first retransmission, let alone the timeout.
        assert!(
            *took < Duration::from_millis(500),
            "{target}: after {took:?}"
        );
    }
}

/// More SYNs than the raw socket's send buffer holds while a slow link
/// (a token bucket on the director's `eth0`) drains them: the prober sends
/// what the buffer takes (the kernel says ENOBUFS for the rest), holds the
/// rest back and sends it on later ticks. Answered probes all come back up
/// before any retransmission; probes whose SYNs the server drops all get
/// their SYN onto the wire before they time out, though no answer wakes
/// the prober to send them.
#[test]
fn syns_a_full_send_buffer_holds_back_go_out_on_later_ticks() {
    const PROBES: u16 = 1000;
    let lan = lan();
    let rs = lan.host("rs");
    let answered: Vec<String> = (0..PROBES)
        .map(|i| format!("10.121.0.11:{}", 30_000 + i))
        .collect();
    let answered_refs: Vec<&str> = answered.iter().map(String::as_str).collect();
    let _held = listeners(rs, &answered_refs);
    let dropped: Vec<String> = (0..PROBES)
        .map(|i| format!("10.121.0.11:{}", 40_000 + i))
        .collect();
    let rules = "add table inet probe\n\
                 add chain inet probe input { type filter hook input priority 0; }\n\
                 add counter inet probe dropped\n\
                 add rule inet probe input tcp dport 40000-40999 counter name dropped drop\n";
    let script = std::env::temp_dir().join(format!("half-open-full-{}.nft", std::process::id()));
    std::fs::write(&script, rules).expect("writing the nftables script");
    rs.run("nft", &["-f", &script.to_string_lossy()])
        .expect("nft (Debian package nftables)");
    let _ = std::fs::remove_file(&script);
    let director = lan.host("director");
    // 2 Mbit/s: 1,000 SYNs (74 bytes on the wire each) take 0.3 s to
    // leave, while the buffer holds a few hundred.
    director
        .run(
            "tc",
            &[
                "qdisc", "replace", "dev", "eth0", "root", "tbf", "rate", "2mbit", "burst", "4kb",
                "latency", "2s",
            ],
        )
        .expect("tc (Debian package iproute2)");
    // Less than the first retransmission: each SYN goes out once.
    let short = Duration::from_millis(800);
    let (up, down) = director
        .enter(move || {
            block_on(async {
                let mut prober =
                    Prober::open(&[Family::V4], tokio::time::Instant::now()).expect("prober");
                let probes: Vec<(&str, Option<&str>)> =
                    answered.iter().map(|t| (t.as_str(), None)).collect();
                let up = probe_all_within(&mut prober, &probes, short).await;
                let probes: Vec<(&str, Option<&str>)> =
                    dropped.iter().map(|t| (t.as_str(), None)).collect();
                let down = probe_all_within(&mut prober, &probes, short).await;
                (up, down)
            })
        })
        .expect("entering the director");
    let not_up = up.iter().find(|(outcome, _)| *outcome != Outcome::Up);
    assert_eq!(not_up, None, "of {PROBES} answered probes");
    let not_timed_out = down
        .iter()
        .find(|(outcome, _)| *outcome != Outcome::Down(Failure::Timeout));
    assert_eq!(not_timed_out, None, "of {PROBES} dropped probes");
    let out = rs
        .run("nft", &["list", "counter", "inet", "probe", "dropped"])
        .expect("nft (Debian package nftables)");
    let counter = String::from_utf8_lossy(&out.stdout);
    assert!(
        counter.contains(&format!("packets {PROBES} ")),
        "every dropped probe's SYN, once, reached the server: {counter}"
    );
    let stats = director
        .run("tc", &["-s", "qdisc", "show", "dev", "eth0"])
        .expect("tc (Debian package iproute2)");
    let stats = String::from_utf8_lossy(&stats.stdout);
    assert!(
        stats.contains("dropped 0"),
        "the link dropped SYNs: {stats}"
    );
}

#[test]
fn the_runner_drives_half_open_checks_from_the_config() {
    let lan = lan();
    let rs = lan.host("rs");
    let held = listeners(rs, &["10.121.0.11:80", "[fd00:121::11]:80"]);
    let text = "[[virtual_server]]\nservice = { address = \"10.121.0.100:80\" }\ndelay_loop = \"1s\"\n\
         [[virtual_server.real_server]]\naddress = \"10.121.0.11:80\"\n\
         check = [{ type = \"TCP_CHECK\", connect_timeout = \"1s\", half_open = true, warmup = \"0s\" }]\n\
         [[virtual_server.real_server]]\naddress = \"10.121.0.11:81\"\n\
         check = [{ type = \"TCP_CHECK\", connect_timeout = \"1s\", half_open = true, warmup = \"0s\" }]\n\
         [[virtual_server]]\nservice = { address = \"[fd00:121::100]:80\" }\ndelay_loop = \"1s\"\n\
         [[virtual_server.real_server]]\naddress = \"[fd00:121::11]:80\"\n\
         check = [{ type = \"TCP_CHECK\", connect_timeout = \"1s\", half_open = true, warmup = \"0s\" }]\n";
    let servers = toml::from_str::<Config>(text).unwrap().virtual_server;
    let (states, left) = lan
        .host("director")
        .enter(move || {
            block_on(async move {
                let (handle, _reports) =
                    runner::spawn(&servers, Options::default()).expect("runner");
                // Bootstrap (1 s), then a probe every second: a few runs.
                tokio::time::sleep(Duration::from_millis(3500)).await;
                let status = handle.status().await.expect("status");
                handle.shutdown().await;
                let states = status
                    .iter()
                    .flat_map(|vs| &vs.servers)
                    .map(|rs| {
                        let check = &rs.checks[0];
                        (
                            rs.address,
                            check.kind,
                            check.up,
                            check.last.map(|l| l.outcome),
                        )
                    })
                    .collect::<Vec<_>>();
                (states, own_sockets())
            })
        })
        .expect("entering the director");
    assert_eq!(
        states,
        vec![
            (addr("10.121.0.11:80"), "TCP_CHECK", true, Some(Outcome::Up)),
            (addr("10.121.0.11:81"), "TCP_CHECK", false, Some(REFUSED)),
            (
                addr("[fd00:121::11]:80"),
                "TCP_CHECK",
                true,
                Some(Outcome::Up)
            ),
        ]
    );
    for listener in &held {
        assert!(listener.accept().is_err(), "a half-open check was accepted");
    }
    assert_eq!(left, "", "the stopped checker left sockets");
}
