//! keepalived's `virtual_server_group` through `appliance run`, in network
//! namespaces, on the nftables dataplane: a keepalived.conf (with a TOML
//! beside it choosing the dataplane) whose group is an address range of
//! three VIPs on port 80 and one VIP on port 8080, served by one
//! `virtual_server group` (round robin, NAT) in front of two nginx real
//! servers, each with one TCP_CHECK. The real servers route back through
//! the director; the client is on another subnet, routed through it too.
//!
//! Witnesses: every group address answers round robin; `nft list ruleset`
//! holds one service map per address and port; `appliance status` shows
//! one virtual server (`group web`) with one check per real server;
//! stopping rs2's nginx takes it out of all four services at once, with
//! one timeline event; the operator naming the group disables rs1 in all
//! four.

use appliance::daemon::status::Status;
use appliance::timeline::EventKind;
use appliance::vrrp::machine::State;
use appliance_tests::appliance_bin;
use appliance_tests::daemon::Daemon;
use appliance_tests::netns::{Host, Lan};
use appliance_tests::timeline::Entry;
use appliance_tests::web::{Nginx, curl};
use std::net::{IpAddr, SocketAddr};
use std::process::Output;
use std::time::{Duration, Instant};

/// Net(162): the director, the VIPs and the real servers.
const DIRECTOR: &str = "10.162.0.1";
const RS1: &str = "10.162.0.11";
const RS2: &str = "10.162.0.12";
/// Net(163): the client's subnet, routed through the director.
const DIRECTOR_C: &str = "10.163.0.1";
const CLIENT: &str = "10.163.0.50";
/// The group's services, as curl and nft name them.
const SERVICES: [(&str, u16); 4] = [
    ("10.162.0.100", 80),
    ("10.162.0.101", 80),
    ("10.162.0.102", 80),
    ("10.162.0.100", 8080),
];
const REQUEST_TIMEOUT: Duration = Duration::from_millis(500);
/// A failed TCP_CHECK acts within a delay_loop and a connect timeout; this
/// covers a loaded machine.
const WITHIN: Duration = Duration::from_secs(10);

const KEEPALIVED_CONF: &str = "\
global_defs {
  router_id director
}
vrrp_instance VI_1 {
  state MASTER
  interface eth0
  virtual_router_id 162
  priority 100
  advert_int 1
  virtual_ipaddress {
    10.162.0.100/24
    10.162.0.101/24
    10.162.0.102/24
  }
}
virtual_server_group web {
  10.162.0.100-102 80
  10.162.0.100 8080
}
virtual_server group web {
  delay_loop 1
  lb_algo rr
  lb_kind NAT
  protocol TCP
  real_server 10.162.0.11 80 {
    TCP_CHECK {
      connect_timeout 1
    }
  }
  real_server 10.162.0.12 80 {
    TCP_CHECK {
      connect_timeout 1
    }
  }
}
";

fn url((ip, port): (&str, u16)) -> String {
    format!("http://{ip}:{port}/")
}

/// `n` answers from one service, one connection each (`None`: failed).
fn answers(client: &Host, service: (&str, u16), n: usize) -> Vec<Option<String>> {
    (0..n)
        .map(|_| {
            curl(client, &url(service), REQUEST_TIMEOUT)
                .expect("running curl")
                .map(|body| body.trim().to_string())
        })
        .collect()
}

/// Round robin over rs1 and rs2: every answer from one of them, each
/// different from the one before.
fn alternating(answers: &[Option<String>]) -> bool {
    answers.iter().all(Option::is_some)
        && answers.windows(2).all(|w| w[0] != w[1])
        && answers
            .iter()
            .all(|a| matches!(a.as_deref(), Some("rs1" | "rs2")))
}

fn all_from(name: &str) -> impl Fn(&[Option<String>]) -> bool + '_ {
    move |answers| answers.iter().all(|a| a.as_deref() == Some(name))
}

/// Polls every service until four answers in a row from each satisfy
/// `ok`, failing after `within`.
fn wait_every_service(
    client: &Host,
    within: Duration,
    what: &str,
    ok: impl Fn(&[Option<String>]) -> bool,
) {
    let start = Instant::now();
    loop {
        let got: Vec<_> = SERVICES
            .iter()
            .map(|s| (*s, answers(client, *s, 4)))
            .collect();
        if got.iter().all(|(_, a)| ok(a)) {
            return;
        }
        assert!(
            start.elapsed() < within,
            "{what}: not within {within:?}; last answers {got:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Each service map of the director's ruleset, by name
/// (`tcp_10.162.0.100_80`), with its text.
fn maps(director: &Host) -> Vec<(String, String)> {
    let out = director
        .run("nft", &["list", "ruleset"])
        .expect("nft (Debian package nftables)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut maps = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in text.lines() {
        let trimmed = line.trim();
        if let Some(rest) = trimmed.strip_prefix("map ") {
            if let Some(done) = current.take() {
                maps.push(done);
            }
            let name = rest.trim_end_matches('{').trim().to_string();
            current = Some((name, String::new()));
        } else if trimmed.starts_with("chain ") || trimmed.starts_with("set ") {
            if let Some(done) = current.take() {
                maps.push(done);
            }
        } else if let Some((_, body)) = &mut current {
            body.push_str(line);
            body.push('\n');
        }
    }
    maps.extend(current);
    maps
}

/// The real servers (of rs1, rs2) in each of the group's service maps.
fn members(director: &Host) -> Vec<(String, Vec<&'static str>)> {
    let maps = maps(director);
    SERVICES
        .iter()
        .map(|(ip, port)| {
            let name = format!("tcp_{ip}_{port}");
            let body = maps
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, b)| b.clone())
                .unwrap_or_else(|| panic!("no map {name} in the ruleset: {maps:?}"));
            let held = [RS1, RS2]
                .into_iter()
                .filter(|rs| body.contains(rs))
                .collect();
            (name, held)
        })
        .collect()
}

/// Polls the ruleset until every service map holds `want`. The four
/// services change in one nftables transaction: a poll never sees them
/// differ.
fn wait_members(director: &Host, want: &[&str], what: &str) {
    let start = Instant::now();
    loop {
        let got = members(director);
        assert!(
            got.windows(2).all(|w| w[0].1 == w[1].1),
            "{what}: the group's services differ: {got:?}"
        );
        if got.iter().all(|(_, held)| held == want) {
            return;
        }
        assert!(
            start.elapsed() < WITHIN,
            "{what}: every service map should hold {want:?}: {got:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn status(director: &Host, daemon: &Daemon) -> Status {
    daemon.status(director).expect("appliance status --json")
}

/// `appliance ARGS --socket SOCKET` on the director.
fn appliance(host: &Host, daemon: &Daemon, args: &[&str]) -> Output {
    let socket = daemon.socket_path();
    let out = host
        .command(appliance_bin())
        .args(args)
        .args(["--socket", socket.to_str().expect("utf-8 path")])
        .output()
        .expect("running appliance");
    assert!(
        out.status.success(),
        "appliance {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn setup() -> Lan {
    let mut lan = Lan::new().expect("lan");
    lan.add_host(
        "director",
        &[&format!("{DIRECTOR}/24"), &format!("{DIRECTOR_C}/24")],
    )
    .expect("director");
    for (name, ip) in [("rs1", RS1), ("rs2", RS2)] {
        let host = lan.add_host(name, &[&format!("{ip}/24")]).expect(name);
        host.ip(&["route", "add", "default", "via", DIRECTOR])
            .expect("the real server's route back through the director");
    }
    let client = lan
        .add_host("client", &[&format!("{CLIENT}/24")])
        .expect("client");
    client
        .ip(&["route", "add", "10.162.0.0/24", "via", DIRECTOR_C])
        .expect("the client's route to the VIPs");
    let director = lan.host("director");
    director
        .sysctl("net.ipv4.ip_forward", "1")
        .expect("ip_forward");
    for conf in ["all", "eth0"] {
        director
            .sysctl(&format!("net.ipv4.conf.{conf}.send_redirects"), "0")
            .expect("send_redirects");
    }
    lan
}

#[test]
fn a_group_serves_every_entry_and_checks_each_real_server_once() {
    let lan = setup();
    let director = lan.host("director");
    let client = lan.host("client");
    let _rs1 = Nginx::start(lan.host("rs1")).expect("nginx on rs1");
    let rs2 = Nginx::start(lan.host("rs2")).expect("nginx on rs2");

    let dir = tempfile::tempdir().expect("temp dir");
    let conf = dir.path().join("keepalived.conf");
    std::fs::write(&conf, KEEPALIVED_CONF).expect("writing keepalived.conf");
    let toml = format!(
        "keepalived_conf = \"{}\"\n\n[global]\ndataplane = \"nftables\"\n",
        conf.display()
    );
    let mut daemon = Daemon::start_toml(director, &toml).expect("appliance run");
    daemon
        .wait_event("the director becoming master", WITHIN, |e| {
            e.entered() == Some(State::Master)
        })
        .expect("master");
    for ip in ["10.162.0.100", "10.162.0.101", "10.162.0.102"] {
        director
            .wait_address(ip.parse::<IpAddr>().unwrap(), true, WITHIN)
            .expect("the VIP on the director");
    }

    // One kernel service per address and port, each with both servers.
    wait_members(director, &[RS1, RS2], "at start");
    wait_every_service(client, WITHIN, "round robin at start", alternating);

    // One virtual server, one check per real server.
    let start = status(director, &daemon);
    assert_eq!(start.virtual_servers.len(), 1, "{start:?}");
    let vs = &start.virtual_servers[0];
    assert_eq!(vs.service, "group web");
    assert_eq!(vs.real_servers.len(), 2, "{vs:?}");
    for rs in &vs.real_servers {
        assert!(rs.alive, "{rs:?}");
        assert_eq!(
            rs.checks
                .iter()
                .map(|c| c.kind.as_str())
                .collect::<Vec<_>>(),
            ["TCP_CHECK"],
            "{rs:?}"
        );
    }

    // rs2 stops: its one check fails, and it leaves all four services.
    let mark = Entry::mark("stop rs2's nginx");
    rs2.stop().expect("stopping nginx on rs2");
    wait_members(director, &[RS1], "after rs2 stopped");
    wait_every_service(client, WITHIN, "rs1 alone", all_from("rs1"));
    let rs2_address = SocketAddr::new(RS2.parse().unwrap(), 80);
    daemon
        .wait_event("rs2 going down", WITHIN, |e| {
            e.after(&mark)
                && matches!(e.event.kind, EventKind::RealServer { address, alive: false, .. }
                    if address == rs2_address)
        })
        .expect("the timeline has rs2 down");
    let downs = daemon
        .timeline()
        .expect("timeline")
        .into_iter()
        .filter(|e| {
            e.after(&mark)
                && matches!(e.event.kind, EventKind::RealServer { address, .. }
                    if address == rs2_address)
        })
        .count();
    assert_eq!(downs, 1, "one check, one event for the whole group");

    // The operator names the group: rs1 leaves every service; control:
    // naming a service the group does not have changes nothing.
    let rs1 = format!("{RS1}:80");
    let refused = director
        .command(appliance_bin())
        .args([
            "disable",
            &rs1,
            "--service",
            "TCP 10.162.0.103:80",
            "--socket",
        ])
        .arg(daemon.socket_path())
        .output()
        .expect("running appliance");
    assert!(!refused.status.success(), "no such service: refused");
    wait_members(director, &[RS1], "after the refused request");
    appliance(
        director,
        &daemon,
        &["disable", &rs1, "--service", "group web"],
    );
    wait_members(director, &[], "rs1 disabled by the group's name");
    appliance(
        director,
        &daemon,
        &["enable", &rs1, "--service", "10.162.0.101:80"],
    );
    wait_members(
        director,
        &[RS1],
        "rs1 enabled by one of the group's services",
    );
    wait_every_service(client, WITHIN, "rs1 back", all_from("rs1"));
}
