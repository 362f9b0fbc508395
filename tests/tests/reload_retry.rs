//! A part of the config that could not be applied stays wanted: it is
//! retried until it applies, a reload of the same config retries it and
//! says it still fails (never "config unchanged"), and `appliance status`
//! shows it as NOT RUNNING meanwhile. A VRRP instance whose interface does
//! not exist yet starts once the interface appears; a dataplane programming
//! that failed (the ownership record could not be written) is applied once
//! the cause is gone.

use appliance_tests::appliance_bin;
use appliance_tests::daemon::Daemon;
use appliance_tests::netns::{Host, Lan};
use appliance_tests::vrrp_conf::Instance;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Longer than the retry's ceiling (10 s) with room for a loaded machine.
const RETRY: Duration = Duration::from_secs(20);
const SLACK: Duration = Duration::from_secs(5);

fn director(net: u8) -> (Lan, Daemon, Instance) {
    let mut lan = Lan::new().expect("lan");
    lan.add_host("m", &[&format!("10.{net}.0.1/24")])
        .expect("host m");
    let vip = format!("10.{net}.0.100/24");
    let conf = Instance::new("m", net, 150, &vip).initial_master();
    let daemon = Daemon::start(lan.host("m"), &conf.render()).expect("m starts");
    (lan, daemon, conf)
}

/// `appliance status` of `daemon`, as text.
fn status(host: &Host, daemon: &Daemon) -> String {
    let socket = daemon.socket_path();
    let out = host
        .run(
            appliance_bin(),
            &["status", "--socket", socket.to_str().expect("utf-8 path")],
        )
        .expect("appliance status");
    assert!(out.status.success(), "appliance status failed: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Sends SIGHUP and waits for the `nth` reload's outcome in the log; returns
/// that outcome's line.
fn reload(daemon: &Daemon, nth: usize) -> String {
    daemon.signal("HUP").expect("SIGHUP");
    let deadline = Instant::now() + SLACK;
    loop {
        let log = daemon.log();
        let outcomes: Vec<&str> = log
            .lines()
            .filter(|l| {
                l.contains("reloaded in part")
                    || l.contains(" reloaded ")
                    || l.contains("reload rejected")
            })
            .collect();
        if let Some(line) = outcomes.get(nth - 1) {
            return (*line).to_string();
        }
        assert!(
            Instant::now() < deadline,
            "no outcome of reload {nth} in the log:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_log(daemon: &Daemon, needle: &str, within: Duration) {
    let deadline = Instant::now() + within;
    while !daemon.log().contains(needle) {
        assert!(
            Instant::now() < deadline,
            "no '{needle}' in the log within {within:?}:\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn an_instance_on_a_missing_interface_starts_when_the_interface_appears() {
    let (lan, m, conf) = director(110);
    let host = lan.host("m");
    let late_vip: IpAddr = "10.210.0.100".parse().unwrap();
    m.write_config(&format!(
        "{}vrrp_instance LATE {{\n  state MASTER\n  interface late0\n  virtual_router_id 210\n  \
         priority 100\n  advert_int 1\n  virtual_ipaddress {{\n    10.210.0.100/24\n  }}\n}}\n",
        conf.render()
    ))
    .unwrap();
    let first = reload(&m, 1);
    assert!(
        first.contains("reloaded in part") && first.contains("no interface named late0"),
        "the reload says LATE did not start: {first}"
    );
    // The same config again: LATE is still wanted and still cannot start.
    let second = reload(&m, 2);
    assert!(
        second.contains("reloaded in part") && second.contains("LATE could not start"),
        "a second reload retries LATE and says it failed: {second}"
    );
    let text = status(host, &m);
    assert!(
        text.contains("NOT RUNNING VRRP unit LATE: "),
        "status shows LATE as not running:\n{text}"
    );
    // The interface appears (a veth pair: this kernel has no dummy
    // links): LATE starts without a reload and takes its VIP.
    host.ip(&[
        "link", "add", "late0", "type", "veth", "peer", "name", "late1",
    ])
    .expect("ip link add");
    host.ip(&["addr", "add", "10.210.0.1/24", "dev", "late0"])
        .expect("ip addr add");
    for link in ["late1", "late0"] {
        host.ip(&["link", "set", link, "up"])
            .expect("ip link set up");
    }
    let deadline = Instant::now() + RETRY;
    loop {
        let out = host
            .ip(&["-o", "addr", "show", "dev", "late0"])
            .expect("ip addr show");
        if String::from_utf8_lossy(&out.stdout).contains(&format!("{late_vip}/24")) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "LATE did not take its VIP on late0 within {RETRY:?}:\n{}",
            m.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    wait_log(&m, "VRRP units started on retry", SLACK);
    let text = status(host, &m);
    assert!(
        !text.contains("NOT RUNNING") && text.contains("VRRP LATE  vrid 210  MASTER"),
        "LATE runs as master:\n{text}"
    );
    // The first instance kept its VIP throughout.
    assert!(host.has_address("10.110.0.100".parse().unwrap()).unwrap());
}

#[test]
fn a_failed_dataplane_programming_is_retried_until_it_applies() {
    let (lan, m, conf) = director(111);
    let host = lan.host("m");
    // The ownership record is written through a new temporary file; a
    // directory where that file goes makes every write of it fail.
    let dir = m.config_path().parent().unwrap().to_path_buf();
    let blocker = dir.join(format!("dataplane.json.{}.tmp", m.pid().unwrap()));
    std::fs::create_dir(&blocker).unwrap();
    m.write_config(&format!(
        "{}virtual_server 10.111.0.100 80 {{\n  lb_algo rr\n  lb_kind NAT\n  protocol TCP\n  \
         real_server 10.111.0.11 8080 {{\n    weight 1\n  }}\n}}\n",
        conf.render()
    ))
    .unwrap();
    let first = reload(&m, 1);
    assert!(
        first.contains("reloaded in part") && first.contains("dataplane.json"),
        "the reload says the dataplane failed: {first}"
    );
    let second = reload(&m, 2);
    assert!(
        second.contains("reloaded in part") && second.contains("dataplane"),
        "a second reload retries the dataplane and says it failed: {second}"
    );
    let text = status(host, &m);
    assert!(
        text.contains("NOT RUNNING dataplane: "),
        "status shows the dataplane as not running:\n{text}"
    );
    let ruleset = || {
        let out = host
            .run("nft", &["list", "ruleset"])
            .expect("nft (Debian package nftables)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(
        !ruleset().contains("10.111.0.11"),
        "nothing programmed yet:\n{}",
        ruleset()
    );
    std::fs::remove_dir(&blocker).unwrap();
    wait_log(&m, "dataplane repaired", RETRY);
    assert!(
        ruleset().contains("10.111.0.11"),
        "the kernel holds the real server:\n{}",
        ruleset()
    );
    let text = status(host, &m);
    assert!(
        !text.contains("NOT RUNNING"),
        "nothing left failing:\n{text}"
    );
    let third = reload(&m, 3);
    assert!(
        third.contains("config unchanged"),
        "with everything running, the same config is unchanged: {third}"
    );
}
