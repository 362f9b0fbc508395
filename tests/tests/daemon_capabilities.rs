//! The daemon needs CAP_NET_ADMIN and CAP_NET_RAW and nothing else: run as
//! an unprivileged user holding only those two, it still becomes master,
//! adds its VIP and removes it again on SIGTERM, and its half-open health
//! checks (raw sockets) work.

use appliance_tests::netns::{Host, Lan};
use appliance_tests::{appliance_bin, fixture};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const CAPS: &str = "-all,+net_admin,+net_raw";

/// `appliance` as `nobody`, holding only NET_ADMIN and NET_RAW.
fn as_nobody(host: &Host, args: &[&std::ffi::OsStr]) -> Command {
    let mut cmd = host.command_as("nobody", "nogroup", Some(CAPS), appliance_bin());
    cmd.args(args);
    cmd
}

#[test]
fn runs_as_nobody_with_only_net_admin_and_net_raw() {
    let mut lan = Lan::new().expect("lan");
    lan.add_host("m", &["10.99.0.1/24"]).expect("host");
    let host = lan.host("m");
    let config = fixture("keepalived/netns-master-v2.conf");
    // A state directory nobody may write: the daemon's lock lives there
    // (as under systemd's RuntimeDirectory= with User=).
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .expect("chmod the state dir");
    let mut cmd = as_nobody(
        host,
        &[
            "run".as_ref(),
            "--config".as_ref(),
            config.as_os_str(),
            "--state-dir".as_ref(),
            dir.path().as_os_str(),
        ],
    );
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

#[test]
fn half_open_checks_run_as_nobody_with_only_net_admin_and_net_raw() {
    let mut lan = Lan::new().expect("lan");
    lan.add_host("m", &["10.99.0.1/24"]).expect("host");
    let host = lan.host("m");
    let dir = tempfile::tempdir().expect("tempdir");
    // nobody writes its state (the status socket, the dataplane record).
    let state = dir.path().join("state");
    std::fs::create_dir(&state).expect("state dir");
    std::fs::set_permissions(&state, std::os::unix::fs::PermissionsExt::from_mode(0o777))
        .expect("chmod");
    let config = dir.path().join("half-open.toml");
    std::fs::write(
        &config,
        "[global]\n\
         dataplane = \"nftables\"\n\
         [[virtual_server]]\n\
         service = { address = \"10.99.0.100:80\" }\n\
         delay_loop = \"1s\"\n\
         lb_algo = \"rr\"\n\
         [[virtual_server.real_server]]\n\
         address = \"10.99.0.1:8080\"\n\
         check = [{ type = \"TCP_CHECK\", connect_timeout = \"1s\", half_open = true }]\n\
         [[virtual_server.real_server]]\n\
         address = \"10.99.0.1:8081\"\n\
         check = [{ type = \"TCP_CHECK\", connect_timeout = \"1s\", half_open = true }]\n",
    )
    .expect("config");
    // A listener on 8080 only (it never needs to accept); 8081 is closed.
    let listener = host
        .spawn(host.command("busybox").args(["nc", "-l", "-p", "8080"]))
        .expect("busybox nc");
    let mut cmd = as_nobody(
        host,
        &[
            "run".as_ref(),
            "--config".as_ref(),
            config.as_os_str(),
            "--state-dir".as_ref(),
            state.as_os_str(),
        ],
    );
    let mut daemon = host.spawn(&mut cmd).expect("daemon");

    let socket = state.join("appliance.sock");
    let deadline = Instant::now() + Duration::from_secs(15);
    let alive = loop {
        let status = appliance::daemon::status::query(Path::new(&socket)).ok();
        let checked: Option<Vec<(String, bool)>> = status.and_then(|s| {
            let servers = &s.virtual_servers.first()?.real_servers;
            servers
                .iter()
                .all(|r| r.checks.iter().all(|c| c.last.is_some()))
                .then(|| {
                    servers
                        .iter()
                        .map(|r| (r.address.to_string(), r.alive))
                        .collect()
                })
        });
        if let Some(checked) = checked {
            break checked;
        }
        assert!(
            Instant::now() < deadline,
            "no check results from the daemon"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        alive,
        [
            ("10.99.0.1:8080".to_string(), true),
            ("10.99.0.1:8081".to_string(), false)
        ]
    );
    daemon.signal("TERM").expect("SIGTERM");
    assert!(daemon.wait(Duration::from_secs(5)).expect("exit").success());
    listener.signal("KILL").expect("stop nc");
}
