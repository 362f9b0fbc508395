//! A panic is contained where it happens. Fail points (failpoint.rs,
//! armed through FAILPOINTS in the test build) make a health check, a
//! status request, a metrics request or the whole checker panic on the
//! master `m` of a pair: the master keeps its VIP (its backup `b` never
//! takes over), the other checks go on, the checker is started again, and
//! status and metrics answer the next client. A panic in VRRP itself is
//! the one that stops the daemon: it releases its VIPs and exits with an
//! error, so its service manager restarts it and `b` takes over meanwhile.

use appliance::timeline::EventKind;
use appliance::vrrp::machine::State;
use appliance_tests::daemon::Daemon;
use appliance_tests::netns::Lan;
use appliance_tests::toml_conf::{Director, virtual_server};
use std::io::{Read, Write};
use std::net::{IpAddr, TcpStream};
use std::time::{Duration, Instant};

const SLACK: Duration = Duration::from_secs(10);

fn config(net: u8, name: &str, priority: u8, state: &'static str) -> String {
    let mut director = Director::new(name, net).with(state, priority);
    director
        .global
        .push(format!("metrics_listen = \"10.{net}.0.1:9100\""));
    format!(
        "{}{}",
        director.render(),
        virtual_server(
            &format!("10.{net}.0.100:80"),
            "rr",
            &[(
                &format!("10.{net}.0.1:8080"),
                r#"weight = 1
check = [{ type = "TCP_CHECK", connect_timeout = "1s" }]"#
            )]
        )
    )
}

struct Lab {
    lan: Lan,
    m: Daemon,
    b: Daemon,
    vip: IpAddr,
    _real_server: std::net::TcpListener,
}

/// m (priority 150, armed with `failpoints`) and b (100) on 10.<net>.0.0/24;
/// returns once m holds the VIP. m's address is also the real server's
/// (a listening socket: the kernel answers the checks).
fn lab(net: u8, failpoints: &str) -> Lab {
    let mut lan = Lan::new().expect("lan");
    lan.add_host("m", &[&format!("10.{net}.0.1/24")])
        .expect("host m");
    lan.add_host("b", &[&format!("10.{net}.0.2/24")])
        .expect("host b");
    let real_server = lan
        .host("m")
        .enter(move || std::net::TcpListener::bind(format!("10.{net}.0.1:8080")))
        .unwrap()
        .expect("real server listens");
    let m = Daemon::start_toml_env(
        lan.host("m"),
        &config(net, "m", 150, "MASTER"),
        &[("FAILPOINTS", failpoints)],
    )
    .expect("m starts");
    assert!(
        !m.log().contains("this build has no fail points"),
        "target/debug/appliance was built without its fail points (a build of the \
         appliance crate alone): build it with `cargo build --workspace --bins`"
    );
    let b = Daemon::start_toml(
        lan.host("b"),
        &config(net, "b", 100, "BACKUP")
            .replace(&format!("10.{net}.0.1:9100"), &format!("10.{net}.0.2:9100")),
    )
    .expect("b starts");
    let vip: IpAddr = format!("10.{net}.0.100").parse().unwrap();
    lan.host("m")
        .wait_address(vip, true, SLACK)
        .expect("m takes the VIP");
    Lab {
        lan,
        m,
        b,
        vip,
        _real_server: real_server,
    }
}

impl Lab {
    /// m holds the VIP for `period` and b never became master.
    fn m_holds(&self, period: Duration) {
        appliance_tests::pair::hold(self.lan.host("m"), self.lan.host("b"), self.vip, period)
            .expect("m keeps the VIP, b does not take it");
        let b_master = self
            .b
            .timeline()
            .unwrap()
            .into_iter()
            .any(|e| e.entered() == Some(State::Master));
        assert!(!b_master, "b became master:\n{}", self.b.log());
    }

    /// One GET /metrics to m; the body, or None when the connection closed
    /// without an answer.
    fn metrics(&self, net: u8) -> Option<String> {
        self.lan
            .host("m")
            .enter(move || {
                let mut stream = TcpStream::connect(format!("10.{net}.0.1:9100")).ok()?;
                stream.set_read_timeout(Some(SLACK)).ok()?;
                stream
                    .write_all(b"GET /metrics HTTP/1.1\r\nHost: m\r\nConnection: close\r\n\r\n")
                    .ok()?;
                let mut answer = String::new();
                stream.read_to_string(&mut answer).ok()?;
                answer.starts_with("HTTP/1.1 200").then_some(answer)
            })
            .unwrap()
    }

    /// Waits until `needle` is in m's log `count` times.
    fn wait_m_log(&self, needle: &str, count: usize) {
        let deadline = Instant::now() + SLACK;
        while self.m.log().matches(needle).count() < count {
            assert!(
                Instant::now() < deadline,
                "'{needle}' not {count} time(s) in m's log:\n{}",
                self.m.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until status says the real server is UP with a check passed
    /// after `after` (wall clock, RFC 3339).
    fn wait_checked_up(&self, after: &str) {
        let deadline = Instant::now() + SLACK;
        loop {
            let status = appliance::daemon::status::query(&self.m.socket_path());
            let fresh = status.as_ref().ok().and_then(|s| {
                let rs = s.virtual_servers.first()?.real_servers.first()?;
                let last = rs.checks.first()?.last.as_ref()?;
                (rs.alive && last.up && last.wall.as_str() > after).then_some(())
            });
            if fresh.is_some() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no passing check after {after}: {status:?}\n{}",
                self.m.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

fn wall_now() -> String {
    humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string()
}

#[test]
fn a_panicking_check_status_or_metrics_request_leaves_the_rest_running() {
    let net = 112;
    let lab = lab(
        net,
        "check-probe=1*panic(probe);status-connection=1*panic(status);\
         metrics-request=1*panic(metrics)",
    );
    lab.wait_m_log("what=probe", 1);
    // The first client of each panics its own task; the next is answered.
    assert!(
        appliance::daemon::status::query(&lab.m.socket_path()).is_err(),
        "the first status request panics"
    );
    assert!(
        lab.metrics(net).is_none(),
        "the first metrics request panics"
    );
    lab.wait_m_log("panicked", 3);
    let after = wall_now();
    lab.wait_checked_up(&after);
    let metrics = lab.metrics(net).expect("metrics answer the next request");
    assert!(
        metrics.contains(r#"appliance_check_local_faults_total{reason="panic"} 1"#),
        "the probe's panic is counted as the director's fault:\n{metrics}"
    );
    // The real server never went down: a panicking probe is not its fault.
    let down = lab
        .m
        .timeline()
        .unwrap()
        .into_iter()
        .any(|e| matches!(e.event.kind, EventKind::RealServer { alive: false, .. }));
    assert!(!down, "the real server was taken out:\n{}", lab.m.log());
    lab.m_holds(Duration::from_secs(4));
}

#[test]
fn a_checker_that_panics_is_started_again() {
    let net = 113;
    let lab = lab(net, "check-runner=5*off->1*panic(runner)");
    lab.wait_m_log("the health checker stopped unexpectedly", 1);
    lab.wait_m_log("health checker started on retry", 1);
    let after = wall_now();
    lab.wait_checked_up(&after);
    lab.m_holds(Duration::from_secs(4));
}

#[test]
fn a_panic_in_vrrp_stops_the_daemon_and_releases_its_vips() {
    let net = 114;
    let mut lab = lab(net, "vrrp-advert=3*off->1*panic(vrrp)");
    let status = lab.m.wait_exit().expect("m exits by itself");
    assert!(!status.success(), "m exits with an error: {status:?}");
    let log = lab.m.log();
    assert!(
        log.contains("VRRP stopped unexpectedly") && log.contains("VIP released"),
        "m says why it stopped and releases its VIP:\n{log}"
    );
    assert!(
        !lab.lan.host("m").has_address(lab.vip).unwrap(),
        "m left its VIP up"
    );
    lab.b
        .wait_event("b taking over", SLACK, |e| {
            e.entered() == Some(State::Master)
        })
        .expect("b takes over");
    lab.lan
        .host("b")
        .wait_address(lab.vip, true, SLACK)
        .expect("b holds the VIP");
}
