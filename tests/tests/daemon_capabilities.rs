//! The daemon needs CAP_NET_ADMIN and CAP_NET_RAW and nothing else: run as
//! an unprivileged user holding only those two, it still becomes master,
//! adds its VIP and removes it again on SIGTERM.

use appliance_tests::netns::Lan;
use appliance_tests::{appliance_bin, fixture};
use std::time::Duration;

#[test]
fn runs_as_nobody_with_only_net_admin_and_net_raw() {
    let mut lan = Lan::new().expect("lan");
    lan.add_host("m", &["10.99.0.1/24"]).expect("host");
    let host = lan.host("m");
    let caps = "-all,+net_admin,+net_raw";
    let mut cmd = host.command("setpriv");
    cmd.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
        .args([
            format!("--inh-caps={caps}"),
            format!("--ambient-caps={caps}"),
            format!("--bounding-set={caps}"),
        ])
        .arg(appliance_bin())
        .args(["run", "--config"])
        .arg(fixture("keepalived/netns-master-v2.conf"));
    let mut daemon = host
        .spawn(&mut cmd)
        .unwrap_or_else(|e| panic!("{e} (setpriv is in the Debian package util-linux)"));

    let vip = "10.99.0.100".parse().unwrap();
    // Alone on the LAN: master after Master_Down_Interval (3.41 s).
    host.wait_address(vip, true, Duration::from_secs(10))
        .expect("VIP added without root");
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", daemon.id())).expect("daemon status");
    let effective = status
        .lines()
        .find(|l| l.starts_with("CapEff:"))
        .expect("CapEff line");
    assert_eq!(
        effective.split_whitespace().nth(1),
        Some("0000000000003000"),
        "only NET_ADMIN and NET_RAW"
    );

    daemon.signal("TERM").expect("SIGTERM");
    let exit = daemon
        .wait(Duration::from_secs(5))
        .expect("daemon exits on SIGTERM");
    assert!(exit.success(), "clean exit: {exit:?}");
    host.wait_address(vip, false, Duration::from_secs(1))
        .expect("VIP removed on shutdown");
}
