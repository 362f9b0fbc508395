//! Adverts go out on time whatever else the daemon is doing: VRRP runs on
//! a loop of its own. A master with 100 ms adverts (a backup takes over
//! after 3 x 100 ms + skew without them) keeps its interval while a reload
//! reads and programs a large config, and while a reload waits for health
//! check notifiers that hang. tcpdump on the backup's side times the
//! master's adverts; the backup never takes over.

use appliance::vrrp::Version;
use appliance::vrrp::machine::State;
use appliance_tests::adverts::{AdvertLog, longest_gap};
use appliance_tests::pair::{Net, Pair, Side};
use appliance_tests::vrrp_conf::Instance;
use std::fmt::Write as _;
use std::time::Duration;

/// Three intervals: the gap that, with the skew, lets a backup take over.
const FAILOVER_GAP: Duration = Duration::from_millis(300);

fn pair(net: Net, vrid: u8) -> Pair {
    let vip = Net::cidr(&net.vip());
    let m = Instance::new("m", vrid, 150, &vip)
        .initial_master()
        .version(Version::V3)
        .advert_ms(100);
    let b = Instance::new("b", vrid, 100, &vip)
        .version(Version::V3)
        .advert_ms(100);
    Pair::start(net, m, b, &net.vip()).expect("m and b elect m")
}

/// Sends m SIGHUP and waits until it logs the reload's end; how long
/// that took.
fn reload(m: &appliance_tests::daemon::Daemon, within: Duration) -> Duration {
    let logged = m.log().len();
    let hup = std::time::Instant::now();
    m.signal("HUP").unwrap();
    while !m.log()[logged..].contains(" reloaded") {
        assert!(hup.elapsed() < within, "m reloads within {within:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    hup.elapsed()
}

/// Checks the adverts `log` saw and that b never became master since
/// `since`.
fn assert_on_time(p: &Pair, log: AdvertLog, since: &appliance_tests::timeline::Entry, what: &str) {
    let times = log.stop().expect("tcpdump's capture");
    assert!(times.len() > 10, "{what}: {} adverts seen", times.len());
    let gap = longest_gap(&times);
    eprintln!("MEASURED {what}: longest gap between m's adverts {gap:?}");
    assert!(
        gap < FAILOVER_GAP,
        "{what}: m's adverts stopped for {gap:?}, long enough for b to take over"
    );
    let took_over =
        p.b.timeline()
            .unwrap()
            .into_iter()
            .any(|e| e.after(since) && e.entered() == Some(State::Master));
    assert!(!took_over, "{what}: b became master");
    p.hold(Side::M, Duration::from_millis(500))
        .expect("m still holds the VIP");
}

#[test]
fn adverts_keep_their_interval_while_a_reload_loads_a_large_config() {
    let p = pair(Net(107), 107);
    let mut config = p.m_conf.render();
    // 200 virtual servers: reading, planning and programming them into
    // the kernel's table (nftables here) take seconds.
    for port in 1..=200 {
        let _ = write!(
            config,
            "virtual_server 10.107.1.1 {port} {{\n  lb_algo rr\n  lb_kind NAT\n  protocol TCP\n\
             \x20 real_server 10.107.2.1 80 {{\n    weight 1\n  }}\n}}\n"
        );
    }
    p.m.write_config(&config).unwrap();
    let log = AdvertLog::start(p.host(Side::B), Net(107).m().parse().unwrap()).expect("capture");
    let since = p.mark("200 virtual servers, SIGHUP m");
    reload(&p.m, Duration::from_secs(120));
    std::thread::sleep(Duration::from_millis(500));
    assert_on_time(&p, log, &since, "reload of 200 virtual servers");
}

#[test]
fn adverts_keep_their_interval_while_a_reload_waits_for_hanging_notifiers() {
    let p = pair(Net(108), 108);
    // omega: when the checker stops (a reload that changes the virtual
    // servers), each live real server's notify_down runs, and the
    // checker waits for them; these take 5 s.
    let checked = |delay: u32| {
        format!(
            "virtual_server 10.108.1.1 80 {{\n  lb_algo rr\n  lb_kind NAT\n  protocol TCP\n\
             \x20 delay_loop {delay}\n  omega\n\
             \x20 real_server 10.108.2.1 80 {{\n    weight 1\n    notify_down \"/bin/sleep 5\"\n\
             \x20   MISC_CHECK {{\n      misc_path /bin/true\n    }}\n  }}\n}}\n"
        )
    };
    p.m.write_config(&format!("{}{}", p.m_conf.render(), checked(1)))
        .unwrap();
    // m starts checking the real server, up from the start.
    reload(&p.m, Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(2));
    p.m.write_config(&format!("{}{}", p.m_conf.render(), checked(2)))
        .unwrap();
    let log = AdvertLog::start(p.host(Side::B), Net(108).m().parse().unwrap()).expect("capture");
    let since = p.mark("delay_loop 1 -> 2, SIGHUP m");
    let took = reload(&p.m, Duration::from_secs(30));
    assert!(
        took >= Duration::from_secs(4),
        "the reload waited for the 5 s notifier (it took {took:?})"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_on_time(&p, log, &since, "reload waiting 5 s for notifiers");
}

#[test]
fn adverts_keep_their_interval_while_10000_checks_run() {
    let p = pair(Net(117), 117);
    // The real servers: ports 10000-19999 of c, all led to one listener
    // that accepts and closes.
    let c = p.lan.host("c");
    c.run(
        "nft",
        &[
            "add table ip rs; add chain ip rs pre { type nat hook prerouting priority -100; }; \
           add rule ip rs pre tcp dport 10000-19999 redirect to :8080",
        ],
    )
    .expect("nft (Debian package nftables)");
    let listener = c
        .enter(|| std::net::TcpListener::bind("10.117.0.10:8080"))
        .unwrap()
        .expect("the real servers' listener");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            drop(stream);
        }
    });
    // 100 real servers with 100 checks each: 10,000 checks, every 2 s,
    // while the kernel's table stays small.
    let mut config = p.m_conf.render();
    config.push_str(
        "virtual_server 10.117.1.1 80 {\n  lb_algo rr\n  lb_kind NAT\n  protocol TCP\n  delay_loop 2\n",
    );
    for server in 0..100 {
        let _ = writeln!(config, "  real_server 10.117.0.10 {} {{", 10_000 + server);
        for check in 0..100 {
            let _ = writeln!(
                config,
                "    TCP_CHECK {{\n      connect_port {}\n      connect_timeout 1\n    }}",
                10_000 + server * 100 + check
            );
        }
        config.push_str("  }\n");
    }
    config.push_str("}\n");
    p.m.write_config(&config).unwrap();
    reload(&p.m, Duration::from_secs(60));
    let log = AdvertLog::start(p.host(Side::B), Net(117).m().parse().unwrap()).expect("capture");
    let since = p.mark("10,000 checks running");
    std::thread::sleep(Duration::from_secs(6));
    let status = appliance::daemon::status::query(&p.m.socket_path()).expect("m's status");
    let passed = status
        .virtual_servers
        .iter()
        .flat_map(|vs| &vs.real_servers)
        .flat_map(|rs| &rs.checks)
        .filter(|c| c.last.as_ref().is_some_and(|last| last.up))
        .count();
    eprintln!("MEASURED checks run and passed: {passed} of 10,000");
    assert!(passed > 9_000, "the checks run: {passed} of 10,000 passed");
    assert_on_time(&p, log, &since, "10,000 checks running");
}
