//! SMTP_CHECK against a real kernel, in network namespaces on
//! 10.151.0.0/24: a director running `appliance run` on a keepalived.conf
//! with one virtual server in front of two real servers on a host `rs`,
//! whose SMTP servers this test runs (tests/src/smtp_server.rs) and
//! records. Real server A (10.151.0.2:25) has one SMTP_CHECK with its own
//! `helo_name`; real server B (10.151.0.3:25) has one with keepalived's
//! deprecated `host` blocks, one per SMTP server it must find answering
//! (port 25 and 2525 of its address; with no connection keyword of the
//! block's own, as keepalived, no third check of the real server itself).
//!
//! A goes down when its server refuses the greeting (554), when it
//! refuses the HELO (554) and when it stops (its port closed), and comes
//! back up each time the server answers again; `appliance status --json`
//! shows the failure seen, and the server's records the check's own
//! conversation. B, the control, stays up all along, until one of its
//! two servers stops: then it goes down alone and comes back with it.

use appliance::daemon::status::Status;
use appliance::timeline::EventKind;
use appliance_tests::daemon::Daemon;
use appliance_tests::netns::{Host, Lan};
use appliance_tests::smtp_server::{Mode, SmtpServer};
use appliance_tests::vrrp_conf::Instance;
use std::net::SocketAddr;
use std::time::Duration;

const DIRECTOR: &str = "10.151.0.1";
const A: &str = "10.151.0.2:25";
const B: &str = "10.151.0.3:25";
/// B's second SMTP server, its second `host` block.
const B2: &str = "10.151.0.3:2525";

/// The check's timing (delay_loop 1 s, connect_timeout 1 s, one retry
/// after 1 s) plus scheduling slack on a loaded 2-core machine.
const WITHIN: Duration = Duration::from_secs(15);

fn addr(text: &str) -> SocketAddr {
    text.parse().expect("a socket address")
}

fn config() -> String {
    let vs = "virtual_server 10.151.0.100 25 {\n  delay_loop 1\n  lb_algo rr\n  lb_kind NAT\n  \
              protocol TCP\n  real_server 10.151.0.2 25 {\n    SMTP_CHECK {\n      \
              connect_timeout 1\n      retry 1\n      delay_before_retry 1\n      \
              helo_name director.test\n    }\n  }\n  real_server 10.151.0.3 25 {\n    \
              SMTP_CHECK {\n      retry 1\n      delay_before_retry 1\n      \
              host {\n        connect_ip 10.151.0.3\n        connect_timeout 1\n      }\n      \
              host {\n        connect_ip 10.151.0.3\n        connect_port 2525\n        \
              connect_timeout 1\n      }\n    }\n  }\n}\n";
    Instance::new("d", 151, 200, "10.151.0.100/24")
        .initial_master()
        .block(vs)
        .render()
}

fn status(director: &Host, daemon: &Daemon) -> Status {
    daemon.status(director).expect("appliance status --json")
}

/// Whether `address` is alive, and each of its checks' kind, state and
/// last result, per `appliance status`.
fn checks(status: &Status, address: SocketAddr) -> (bool, Vec<(String, bool, String)>) {
    let rs = status
        .virtual_servers
        .iter()
        .flat_map(|vs| &vs.real_servers)
        .find(|rs| rs.address == address)
        .unwrap_or_else(|| panic!("{address} is not in {status:?}"));
    let checks = rs
        .checks
        .iter()
        .map(|c| {
            let last = c
                .last
                .as_ref()
                .map(|l| l.result.clone())
                .unwrap_or_default();
            (c.kind.clone(), c.up, last)
        })
        .collect();
    (rs.alive, checks)
}

/// Counts the timeline's transitions of `address` to `up`.
fn transitions(daemon: &Daemon, address: SocketAddr, up: bool) -> usize {
    daemon
        .timeline()
        .expect("the timeline")
        .iter()
        .filter(|e| {
            matches!(e.event.kind, EventKind::RealServer { address: a, alive, .. }
                if a == address && alive == up)
        })
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
fn smtp_check_takes_a_real_server_out_when_its_smtp_server_refuses_or_stops_and_back() {
    let mut lan = Lan::new().expect("lan");
    lan.add_host("d", &[&format!("{DIRECTOR}/24")])
        .expect("director");
    lan.add_host("rs", &["10.151.0.2/24", "10.151.0.3/24"])
        .expect("real server host");
    let director = lan.host("d");
    let rs = lan.host("rs");
    let mut a = Some(SmtpServer::start(rs, addr(A)).expect("A's SMTP server"));
    let _b = SmtpServer::start(rs, addr(B)).expect("B's SMTP server");
    let mut b2 = Some(SmtpServer::start(rs, addr(B2)).expect("B's second SMTP server"));

    let mut daemon = Daemon::start(director, &config()).expect("appliance run");
    // Both pass their first runs: neither ever leaves.
    std::thread::sleep(Duration::from_secs(4));
    let first = status(director, &daemon);
    let (alive, a_checks) = checks(&first, addr(A));
    assert!(alive, "{a_checks:?}");
    assert_eq!(a_checks.len(), 1);
    assert_eq!(
        (a_checks[0].0.as_str(), a_checks[0].1),
        ("SMTP_CHECK", true)
    );
    let (alive, b_checks) = checks(&first, addr(B));
    assert!(alive, "{b_checks:?}");
    assert_eq!(b_checks.len(), 2, "one check per host block: {b_checks:?}");
    assert!(
        b_checks
            .iter()
            .all(|(kind, up, _)| kind == "SMTP_CHECK" && *up)
    );
    for address in [addr(A), addr(B)] {
        assert_eq!(transitions(&daemon, address, false), 0, "{address}");
    }
    // keepalived's conversation: HELO with the name, then QUIT.
    let server = a.as_ref().expect("running");
    let session = server
        .wait_session(WITHIN, |s| !s.lines.is_empty())
        .expect("A checked");
    assert_eq!(session.lines, ["HELO director.test", "QUIT"]);
    let session = b2
        .as_ref()
        .expect("running")
        .wait_session(WITHIN, |s| !s.lines.is_empty())
        .expect("B's second host checked");
    assert_eq!(
        session.lines,
        ["HELO smtpchecker.keepalived.org", "QUIT"],
        "keepalived's default helo_name"
    );

    // A fails three ways, each time back up when its server answers.
    let ups = transitions(&daemon, addr(A), true);
    for (n, (what, expected)) in [
        ("A's server refuses the greeting", "unexpected status 554"),
        ("A's server refuses the HELO", "unexpected status 554"),
        ("A's server stops", "connect failed: connection refused"),
    ]
    .into_iter()
    .enumerate()
    {
        match n {
            0 => server_of(&a).set_mode(Mode::RefuseGreeting),
            1 => server_of(&a).set_mode(Mode::RefuseHelo),
            _ => a = None,
        }
        wait_transition(&mut daemon, addr(A), false, n + 1, what);
        let (alive, a_checks) = checks(&status(director, &daemon), addr(A));
        assert!(!alive, "{what}");
        assert_eq!(a_checks[0].2, expected, "{what}");
        match a.as_ref() {
            Some(server) => server.set_mode(Mode::Relay),
            None => a = Some(SmtpServer::start(rs, addr(A)).expect("A's SMTP server again")),
        }
        wait_transition(
            &mut daemon,
            addr(A),
            true,
            ups + n + 1,
            &format!("{what}, then answers"),
        );
    }
    // The control: B never left while A flapped.
    assert_eq!(transitions(&daemon, addr(B), false), 0);

    // B's second host stops: B goes down with one check of two failed,
    // and comes back with it.
    drop(b2.take());
    wait_transition(
        &mut daemon,
        addr(B),
        false,
        1,
        "B's second SMTP server stops",
    );
    let (alive, b_checks) = checks(&status(director, &daemon), addr(B));
    assert!(!alive);
    let states: Vec<bool> = b_checks.iter().map(|(_, up, _)| *up).collect();
    assert_eq!(states, [true, false], "{b_checks:?}");
    let b_ups = transitions(&daemon, addr(B), true);
    let _b2 = SmtpServer::start(rs, addr(B2)).expect("B's second SMTP server again");
    wait_transition(
        &mut daemon,
        addr(B),
        true,
        b_ups + 1,
        "B's second SMTP server is back",
    );
    assert!(
        daemon.running().expect("the daemon's state"),
        "{}",
        daemon.log()
    );
}

fn server_of(server: &Option<SmtpServer>) -> &SmtpServer {
    server.as_ref().expect("the server runs")
}
