//! A kernel slow to answer netlink stalls the dataplane and nothing else.
//! A fail point (failpoint.rs, armed through FAILPOINTS in the test build)
//! holds every netlink read of the master `m` while a file exists: the
//! kernel, as far as `m` can tell, does not answer. Meanwhile a real server
//! fails its check; `m` still answers `appliance status` (which shows the
//! server down), records the change on its timeline, applies a reload of
//! its VRRP priority, and keeps its VIP (its backup `b` never takes over),
//! while the kernel's table, not yet reprogrammed, still holds the server.
//! Once the kernel answers again, the table loses the server.

use appliance::timeline::EventKind;
use appliance::vrrp::machine::State;
use appliance_tests::daemon::Daemon;
use appliance_tests::netns::{Host, Lan};
use appliance_tests::toml_conf::{Director, virtual_server};
use std::net::{IpAddr, TcpListener};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const SLACK: Duration = Duration::from_secs(10);
const NET: u8 = 121;

fn config(name: &str, priority: u8, state: &'static str) -> String {
    const CHECKED: &str = r#"weight = 1
check = [{ type = "TCP_CHECK", connect_timeout = "1s" }]"#;
    format!(
        "{}{}",
        Director::new(name, NET).with(state, priority).render(),
        virtual_server(
            &format!("10.{NET}.0.100:80"),
            "rr",
            &[
                (&format!("10.{NET}.0.1:8080"), CHECKED),
                (&format!("10.{NET}.0.1:8081"), CHECKED)
            ]
        )
    )
}

/// m's nftables ruleset.
fn ruleset(m: &Host) -> String {
    let out = m
        .run("nft", &["list", "ruleset"])
        .expect("nft list ruleset (Debian package nftables)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether `ruleset` leads to the real server on `port`.
fn holds(ruleset: &str, port: u16) -> bool {
    ruleset.contains(&format!("10.{NET}.0.1 . {port}"))
}

/// Waits until `pred` holds of m's ruleset.
fn wait_ruleset(m: &Host, what: &str, pred: impl Fn(&str) -> bool) {
    let start = Instant::now();
    loop {
        let rules = ruleset(m);
        if pred(&rules) {
            return;
        }
        assert!(start.elapsed() < SLACK, "{what}:\n{rules}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs `ask` on a thread and waits up to `within` for its answer: a
/// daemon whose control loop is stuck would leave it hanging.
fn answered<T: Send + 'static>(
    within: Duration,
    ask: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(ask());
    });
    rx.recv_timeout(within).ok()
}

#[test]
fn a_stalled_kernel_delays_the_table_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let stall = dir.path().join("stall");
    let mut lan = Lan::new().expect("lan");
    lan.add_host("m", &[&format!("10.{NET}.0.1/24")])
        .expect("host m");
    lan.add_host("b", &[&format!("10.{NET}.0.2/24")])
        .expect("host b");
    let host_m = lan.host("m");
    let listen = |port: u16| {
        host_m
            .enter(move || TcpListener::bind(format!("10.{NET}.0.1:{port}")))
            .unwrap()
            .expect("real server listens")
    };
    let _first = listen(8080);
    let second = listen(8081);
    let failpoints = format!("dataplane-netlink=hold({})", stall.display());
    let m = Daemon::start_toml_env(
        host_m,
        &config("m", 150, "MASTER"),
        &[("FAILPOINTS", &failpoints)],
    )
    .expect("m starts");
    assert!(
        !m.log().contains("this build has no fail points"),
        "target/debug/appliance was built without its fail points (a build of the \
         appliance crate alone): build it with `cargo build --workspace --bins`"
    );
    let b = Daemon::start_toml(lan.host("b"), &config("b", 100, "BACKUP")).expect("b starts");
    let vip: IpAddr = format!("10.{NET}.0.100").parse().unwrap();
    host_m
        .wait_address(vip, true, SLACK)
        .expect("m takes the VIP");
    wait_ruleset(host_m, "the table holds both real servers", |r| {
        holds(r, 8080) && holds(r, 8081)
    });

    // The kernel stops answering; then 8081 goes down.
    std::fs::write(&stall, b"").unwrap();
    let since = Instant::now();
    drop(second);
    let socket = m.socket_path();
    let down = |status: &appliance::daemon::status::Status| {
        status
            .virtual_servers
            .iter()
            .flat_map(|vs| &vs.real_servers)
            .any(|rs| rs.address.port() == 8081 && !rs.alive)
    };
    loop {
        let path = socket.clone();
        let status = answered(SLACK, move || appliance::daemon::status::query(&path))
            .expect("m answers `appliance status` while the kernel does not answer it")
            .expect("m's status");
        if down(&status) {
            break;
        }
        assert!(
            since.elapsed() < SLACK,
            "m's status shows 8081 down within {SLACK:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let recorded = m.timeline().unwrap().into_iter().any(|e| {
        matches!(e.event.kind, EventKind::RealServer { address, alive: false, .. }
            if address.port() == 8081)
    });
    assert!(recorded, "m's timeline records 8081 down:\n{}", m.log());
    let held = ruleset(host_m);
    assert!(
        holds(&held, 8081),
        "while stalled, the kernel still holds 8081 (the stall is real):\n{held}"
    );

    // A reload of the VRRP priority applies meanwhile.
    m.write_config(&config("m", 160, "MASTER")).unwrap();
    let path = socket.clone();
    let summary = answered(SLACK, move || {
        appliance::daemon::status::reload(&path, SLACK)
    })
    .expect("m answers a reload while the kernel does not answer it")
    .expect("the reload applies");
    assert!(
        summary.contains("given a new priority"),
        "the reload gives VI_1 its new priority: {summary}"
    );
    let status = appliance::daemon::status::query(&socket).expect("m's status");
    assert_eq!(
        status.instances.first().map(|i| i.priority),
        Some(appliance::vrrp::Priority::new(160).unwrap()),
        "VI_1 runs at the new priority"
    );

    // Five seconds in all, past b's master-down interval (3 x 1 s + skew):
    // m's adverts never stopped.
    let left = Duration::from_secs(5).saturating_sub(since.elapsed());
    appliance_tests::pair::hold(host_m, lan.host("b"), vip, left)
        .expect("m keeps the VIP, b does not take it");
    let b_master = b
        .timeline()
        .unwrap()
        .into_iter()
        .any(|e| e.entered() == Some(State::Master));
    assert!(!b_master, "b became master:\n{}", b.log());
    assert!(
        holds(&ruleset(host_m), 8081),
        "the stall held for the whole test"
    );

    // The kernel answers again: the latest table goes in.
    std::fs::remove_file(&stall).unwrap();
    wait_ruleset(
        host_m,
        "once the kernel answers, the table loses 8081 and keeps 8080",
        |r| !holds(r, 8081) && holds(r, 8080),
    );
}
