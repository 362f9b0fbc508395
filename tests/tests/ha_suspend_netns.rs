//! keepalived's `ha_suspend` through the running daemon, in network
//! namespaces, from a keepalived.conf: a director (master of a VRRP
//! instance on another address) with two virtual
//! servers on addresses it does not have yet, each with the same real
//! server (nginx on rs1, stopped at first) under a TCP_CHECK; only the
//! first has `ha_suspend`.
//!
//! - While the first one's address is missing its check does not run: its
//!   real server keeps its start state (alive) and no check is recorded,
//!   while the other virtual server's check runs and takes it out.
//! - The address added to the director (as a VRRP master would), the
//!   check runs at once and takes the real server out there too; nginx
//!   started, both bring it back.
//! - The address removed, the check is held again: nginx stopped, the
//!   other virtual server takes the real server out and the suspended one
//!   keeps it, with its last check no newer than the removal.
//!
//! `appliance status --json` is the witness: `suspended`, each real
//! server's state and its check's last run.

use appliance::daemon::status::{RealServerStatus, Status, VirtualServerStatus};
use appliance_tests::daemon::Daemon;
use appliance_tests::netns::{Host, Lan};
use appliance_tests::web::Nginx;
use std::time::{Duration, Instant};

const SUSPENDED_VIP: &str = "10.160.0.100";
const OTHER_VIP: &str = "10.160.0.101";
const RS1: &str = "10.160.0.11";
/// A check due within a second (`delay_loop 1`), on a loaded machine.
const SLACK: Duration = Duration::from_secs(5);

fn config() -> String {
    let vs = |vip: &str, suspend: bool| {
        format!(
            "virtual_server {vip} 80 {{\n  delay_loop 1\n  lb_algo rr\n  lb_kind NAT\n  \
             protocol TCP\n{}  real_server {RS1} 80 {{\n    TCP_CHECK {{\n      \
             connect_timeout 1\n      retry 0\n    }}\n  }}\n}}\n",
            if suspend { "  ha_suspend\n" } else { "" }
        )
    };
    format!(
        "global_defs {{\n  router_id director\n}}\n\
         vrrp_instance VI_1 {{\n  state MASTER\n  interface eth0\n  virtual_router_id 160\n  \
         priority 100\n  advert_int 1\n  virtual_ipaddress {{\n    10.160.0.200/24\n  }}\n}}\n{}{}",
        vs(SUSPENDED_VIP, true),
        vs(OTHER_VIP, false)
    )
}

fn virtual_server(status: &Status, vip: &str) -> VirtualServerStatus {
    let service = format!("TCP {vip}:80");
    status
        .virtual_servers
        .iter()
        .find(|vs| vs.service == service)
        .unwrap_or_else(|| panic!("{service} is not in {status:?}"))
        .clone()
}

fn rs(vs: &VirtualServerStatus) -> RealServerStatus {
    vs.real_servers.first().expect("one real server").clone()
}

/// Polls `appliance status` until `ok` holds of it; returns it.
fn wait_status(
    director: &Host,
    daemon: &Daemon,
    what: &str,
    ok: impl Fn(&Status) -> bool,
) -> Status {
    let start = Instant::now();
    loop {
        let status = daemon.status(director).expect("appliance status --json");
        if ok(&status) {
            return status;
        }
        assert!(
            start.elapsed() < SLACK,
            "{what}: not within {SLACK:?}: {status:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn ha_suspend_holds_the_checks_while_the_virtual_address_is_missing() {
    let mut lan = Lan::new().expect("lan");
    lan.add_host("director", &["10.160.0.1/24"])
        .expect("director");
    lan.add_host("rs1", &[&format!("{RS1}/24")]).expect("rs1");
    let director = lan.host("director");
    let daemon = Daemon::start(director, &config()).expect("appliance run");

    // Nothing listens on rs1: the other virtual server's check takes it
    // out; the suspended one never checks it.
    let status = wait_status(director, &daemon, "the other check failing", |s| {
        !rs(&virtual_server(s, OTHER_VIP)).alive
    });
    std::thread::sleep(Duration::from_secs(2));
    let status = daemon.status(director).unwrap_or(status);
    let held = virtual_server(&status, SUSPENDED_VIP);
    assert!(held.suspended, "{held:?}");
    let held_rs = rs(&held);
    assert!(
        held_rs.alive,
        "its real server keeps its start state: {held_rs:?}"
    );
    assert_eq!(held_rs.checks[0].last, None, "no check ran: {held_rs:?}");
    assert!(!virtual_server(&status, OTHER_VIP).suspended);

    director
        .ip(&["addr", "add", &format!("{SUSPENDED_VIP}/32"), "dev", "eth0"])
        .expect("adding the address");
    wait_status(director, &daemon, "the resumed check failing", |s| {
        let vs = virtual_server(s, SUSPENDED_VIP);
        !vs.suspended && !rs(&vs).alive && rs(&vs).checks[0].last.is_some()
    });

    let nginx = Nginx::start(lan.host("rs1")).expect("nginx on rs1");
    wait_status(director, &daemon, "both checks passing", |s| {
        [SUSPENDED_VIP, OTHER_VIP]
            .iter()
            .all(|vip| rs(&virtual_server(s, vip)).alive)
    });

    director
        .ip(&["addr", "del", &format!("{SUSPENDED_VIP}/32"), "dev", "eth0"])
        .expect("removing the address");
    let removed = wait_status(director, &daemon, "suspended again", |s| {
        virtual_server(s, SUSPENDED_VIP).suspended
    });
    let last_before = rs(&virtual_server(&removed, SUSPENDED_VIP)).checks[0]
        .last
        .clone()
        .expect("a check ran while the address was there");
    nginx.stop().expect("stopping nginx");
    wait_status(director, &daemon, "the other check failing again", |s| {
        !rs(&virtual_server(s, OTHER_VIP)).alive
    });
    std::thread::sleep(Duration::from_secs(2));
    let status = daemon.status(director).expect("appliance status --json");
    let held_rs = rs(&virtual_server(&status, SUSPENDED_VIP));
    assert!(held_rs.alive, "held, it keeps its real server: {held_rs:?}");
    let last = held_rs.checks[0].last.clone().expect("the earlier check");
    // A check already running at the removal may finish after it; none
    // starts later (nginx stopped after it would have failed it).
    assert!(
        last.at <= last_before.at + Duration::from_secs(2),
        "{last:?} after {last_before:?}"
    );
}
