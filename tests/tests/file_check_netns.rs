//! keepalived's `FILE_CHECK` through the running daemon, in network
//! namespaces: a director running `appliance run` (one VRRP instance,
//! master alone, and a masquerading weighted round-robin virtual server on the
//! nftables dataplane) in front of two nginx real servers, and a client
//! curling the VIP. rs1 has a FILE_CHECK of weight 0: writing 1 to its file
//! takes rs1 out of the rotation at once, writing 0 brings it back. rs2 has
//! one of weight 2: writing 3 to its file makes its weight 1 + 3 × 2 = 7.
//! `appliance status --json`, the timeline and the answers through the VIP
//! witness each step.

use appliance::daemon::status::{RealServerStatus, Status};
use appliance::timeline::EventKind;
use appliance::vrrp::machine::State;
use appliance_tests::daemon::Daemon;
use appliance_tests::netns::{Host, Lan};
use appliance_tests::timeline::Entry;
use appliance_tests::web::{Nginx, curl};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

const VIP: &str = "10.157.0.100";
const RS1: &str = "10.157.0.11";
const RS2: &str = "10.157.0.12";
const URL: &str = "http://10.157.0.100/";
const REQUEST_TIMEOUT: Duration = Duration::from_millis(500);
/// A file change is acted on as the write closes the file: this covers
/// the reconcile and scheduling on a loaded machine.
const SLACK: Duration = Duration::from_secs(2);

fn config(rs1_file: &Path, rs2_file: &Path) -> String {
    format!(
        "[global]\nrouter_id = \"director\"\ndataplane = \"nftables\"\n\n\
         [[track_file]]\nname = \"rs1_maintenance\"\nfile = \"{}\"\nweight = 0\n\n\
         [[track_file]]\nname = \"rs2_boost\"\nfile = \"{}\"\n\n\
         [[vrrp_instance]]\nname = \"VI_1\"\nstate = \"BACKUP\"\ninterface = \"eth0\"\n\
         virtual_router_id = 157\npriority = 100\nadvert_int = \"1s\"\n\n\
         [[vrrp_instance.virtual_ipaddress]]\naddress = \"{VIP}/24\"\n\n\
         [[virtual_server]]\ndelay_loop = \"1s\"\nlb_algo = \"wrr\"\nlb_kind = \"NAT\"\n\
         protocol = \"TCP\"\nmasquerade = true\n\n\
         [virtual_server.service]\naddress = \"{VIP}:80\"\n\n\
         [[virtual_server.real_server]]\naddress = \"{RS1}:80\"\nweight = 1\n\
         file_check = [{{ track_file = \"rs1_maintenance\" }}]\n\n\
         [[virtual_server.real_server]]\naddress = \"{RS2}:80\"\nweight = 1\n\
         file_check = [{{ track_file = \"rs2_boost\", weight = 2 }}]\n",
        rs1_file.display(),
        rs2_file.display(),
    )
}

fn addr(ip: &str) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), 80)
}

/// `n` answers through the VIP, one connection each (`None`: failed).
fn answers(client: &Host, n: usize) -> Vec<Option<String>> {
    (0..n)
        .map(|_| {
            curl(client, URL, REQUEST_TIMEOUT)
                .expect("running curl")
                .map(|body| body.trim().to_string())
        })
        .collect()
}

/// Polls the VIP until four answers in a row satisfy `ok`, failing after
/// `within`.
fn wait_answers(
    client: &Host,
    within: Duration,
    what: &str,
    ok: impl Fn(&[Option<String>]) -> bool,
) {
    let start = Instant::now();
    loop {
        let got = answers(client, 4);
        if ok(&got) {
            return;
        }
        assert!(
            start.elapsed() < within,
            "{what}: not within {within:?}; last answers {got:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn all_from(answers: &[Option<String>], name: &str) -> bool {
    answers.iter().all(|a| a.as_deref() == Some(name))
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

fn status(director: &Host, daemon: &Daemon) -> Status {
    daemon.status(director).expect("appliance status --json")
}

fn real_server(status: &Status, ip: &str) -> RealServerStatus {
    let vs = status.virtual_servers.first().expect("one virtual server");
    vs.real_servers
        .iter()
        .find(|rs| rs.address == addr(ip))
        .unwrap_or_else(|| panic!("{ip} is not in {status:?}"))
        .clone()
}

/// Polls `appliance status` until `ip`'s real server is `alive` with
/// `weight`; returns it.
fn wait_real_server(
    director: &Host,
    daemon: &Daemon,
    ip: &str,
    alive: bool,
    weight: u32,
) -> RealServerStatus {
    let start = Instant::now();
    loop {
        let rs = real_server(&status(director, daemon), ip);
        if rs.alive == alive && rs.weight == weight {
            return rs;
        }
        assert!(
            start.elapsed() < SLACK,
            "{ip}: not alive={alive} weight={weight} within {SLACK:?}: {rs:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn real_server_event(address: SocketAddr, up: bool, weight: u32) -> impl Fn(&Entry) -> bool {
    move |e| {
        e.event.kind
            == EventKind::RealServer {
                address,
                alive: up,
                weight,
            }
    }
}

/// The LAN: a director, two real servers and a client.
fn setup() -> Lan {
    let mut lan = Lan::new().expect("lan");
    lan.add_host("director", &["10.157.0.1/24"])
        .expect("director");
    for (name, ip) in [("rs1", RS1), ("rs2", RS2)] {
        lan.add_host(name, &[&format!("{ip}/24")]).expect(name);
    }
    lan.add_host("client", &["10.157.0.50/24"]).expect("client");
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
fn file_checks_take_a_real_server_out_and_back_and_change_a_weight() {
    let files = tempfile::tempdir().expect("temp dir");
    let rs1_file = files.path().join("rs1");
    let rs2_file = files.path().join("rs2");
    std::fs::write(&rs1_file, "0\n").expect("rs1's file");
    // rs2's file does not exist yet: it reads as 0.
    let lan = setup();
    let director = lan.host("director");
    let client = lan.host("client");
    let _rs1 = Nginx::start(lan.host("rs1")).expect("nginx on rs1");
    let _rs2 = Nginx::start(lan.host("rs2")).expect("nginx on rs2");

    let mut daemon =
        Daemon::start_toml(director, &config(&rs1_file, &rs2_file)).expect("appliance run");
    daemon
        .wait_event(
            "the director becoming master",
            Duration::from_secs(10),
            |e| e.entered() == Some(State::Master),
        )
        .expect("master");
    director
        .wait_address(VIP.parse::<IpAddr>().unwrap(), true, Duration::from_secs(5))
        .expect("the VIP on the director");
    wait_answers(client, SLACK * 2, "round robin at start", alternating);
    let start = status(director, &daemon);
    for ip in [RS1, RS2] {
        let rs = real_server(&start, ip);
        assert!(rs.alive && rs.weight == 1, "{rs:?}");
        assert_eq!(
            rs.checks
                .iter()
                .map(|c| (c.kind.as_str(), c.up))
                .collect::<Vec<_>>(),
            [("FILE_CHECK", true)]
        );
    }

    // Weight 0: a non-zero value fails rs1's check.
    let mark = Entry::mark("write 1 to rs1's file");
    std::fs::write(&rs1_file, "1\n").expect("write rs1's file");
    let rs1 = wait_real_server(director, &daemon, RS1, false, 1);
    assert_eq!(
        rs1.checks.first().map(|c| (c.kind.as_str(), c.up)),
        Some(("FILE_CHECK", false))
    );
    let down = daemon
        .wait_event("rs1 going down", SLACK, |e| {
            e.after(&mark) && real_server_event(addr(RS1), false, 1)(e)
        })
        .expect("the timeline has rs1 down");
    assert!(
        down.since(&mark) < SLACK,
        "rs1 down {:?} after the write",
        down.since(&mark)
    );
    wait_answers(client, SLACK, "rs2 alone", |a| all_from(a, "rs2"));

    let mark = Entry::mark("write 0 to rs1's file");
    std::fs::write(&rs1_file, "0\n").expect("write rs1's file");
    wait_real_server(director, &daemon, RS1, true, 1);
    daemon
        .wait_event("rs1 coming back", SLACK, |e| {
            e.after(&mark) && real_server_event(addr(RS1), true, 1)(e)
        })
        .expect("the timeline has rs1 up");
    wait_answers(client, SLACK, "round robin again", alternating);

    // Weight 2 over rs2's configured 1: 3 makes it 7.
    let mark = Entry::mark("write 3 to rs2's file");
    std::fs::write(&rs2_file, "3\n").expect("write rs2's file");
    wait_real_server(director, &daemon, RS2, true, 7);
    daemon
        .wait_event("rs2's weight 7", SLACK, |e| {
            e.after(&mark) && real_server_event(addr(RS2), true, 7)(e)
        })
        .expect("the timeline has rs2's new weight");
    // Seven of eight connections to rs2 (weighted round robin).
    let got = answers(client, 16);
    let to_rs2 = got.iter().filter(|a| a.as_deref() == Some("rs2")).count();
    assert!(
        got.iter().all(Option::is_some) && (12..=15).contains(&to_rs2),
        "rs2 weighted 7 against rs1's 1: {got:?}"
    );
    // Removing the file reads as 0: back to 1.
    std::fs::remove_file(&rs2_file).expect("remove rs2's file");
    wait_real_server(director, &daemon, RS2, true, 1);
    wait_answers(client, SLACK, "round robin at the end", alternating);
}
