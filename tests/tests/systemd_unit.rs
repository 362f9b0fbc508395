//! The Debian package (`make deb`) installed into a Debian host whose PID 1
//! is systemd (the systemd image), and its unit run as shipped: it waits
//! for a config, starts as `Type=notify` with a status line, serves
//! `appliance status` on its runtime directory's socket, applies a
//! `systemctl reload` (and fails one whose config is invalid, keeping the
//! running one), logs to the journal with syslog priorities, is restarted
//! by the watchdog when its event loop stalls, and releases the VIP on
//! `systemctl stop`.

use appliance::daemon::status::Status;
use appliance::vrrp::machine::State;
use appliance_tests::containers::{Container, ExecOutput, Lab, images};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const DIRECTOR: u8 = 2;
const RS1: u8 = 11;
const RS2: u8 = 12;
const VIP: u8 = 100;
const CONFIG: &str = "etc/appliance/appliance.toml";

/// The package `make deb` built (`make test` builds it before the suite).
fn deb() -> Vec<u8> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).expect("read Cargo.toml");
    let version = manifest
        .lines()
        .skip_while(|l| l.trim() != "[workspace.package]")
        .find_map(|l| l.strip_prefix("version = "))
        .map(|v| v.trim().trim_matches('"').to_string())
        .expect("a version under [workspace.package]");
    let path = root.join(format!("target/debian/appliance_{version}_amd64.deb"));
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}: build the Debian package first with `make deb` (`make test` does)",
            path.display()
        )
    })
}

/// One director: VI_1 holding the VIP alone, and the VIP's port 80 over
/// the real servers given, each TCP-checked.
fn config(lab: &Lab, priority: u8, real_servers: &[u8]) -> String {
    let mut text = format!(
        "[[vrrp_instance]]\n\
         name = \"VI_1\"\n\
         interface = \"eth0\"\n\
         virtual_router_id = 51\n\
         priority = {priority}\n\
         advert_int = \"1s\"\n\
         virtual_ipaddress = [{{ address = \"{}/24\" }}]\n\
         \n\
         [[virtual_server]]\n\
         service = {{ address = \"{}:80\" }}\n\
         protocol = \"TCP\"\n\
         delay_loop = \"1s\"\n\
         lb_algo = \"rr\"\n\
         lb_kind = \"NAT\"\n",
        lab.address(VIP),
        lab.address(VIP)
    );
    for rs in real_servers {
        text.push_str(&format!(
            "\n[[virtual_server.real_server]]\n\
             address = \"{}:80\"\n\
             check = [{{ type = \"TCP_CHECK\", connect_timeout = \"1s\" }}]\n",
            lab.address(*rs)
        ));
    }
    text
}

/// Runs `cmd` in the host; fails the test, with what it printed, unless it
/// exits 0.
fn ok(lab: &Lab, host: &Container, cmd: &[&str]) -> ExecOutput {
    let out = lab.exec(host, cmd).expect("exec");
    assert_eq!(out.code, 0, "{cmd:?}: {}{}", out.stdout, out.stderr);
    out
}

/// `systemctl show -p NAME --value appliance`.
fn property(lab: &Lab, host: &Container, name: &str) -> String {
    ok(
        lab,
        host,
        &["systemctl", "show", "-p", name, "--value", "appliance"],
    )
    .stdout
    .trim()
    .to_string()
}

fn status(lab: &Lab, host: &Container) -> Status {
    let out = ok(lab, host, &["appliance", "status", "--json"]);
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout))
}

fn has_vip(lab: &Lab, host: &Container) -> bool {
    let out = ok(
        lab,
        host,
        &["ip", "-o", "-4", "addr", "show", "dev", "eth0"],
    );
    out.stdout.contains(&format!("{}/24", lab.address(VIP)))
}

/// Polls `what` until it holds or `within` has passed.
fn wait(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn journal(lab: &Lab, host: &Container, args: &[&str]) -> String {
    let mut cmd = vec!["journalctl", "-u", "appliance", "--no-pager"];
    cmd.extend_from_slice(args);
    ok(lab, host, &cmd).stdout
}

#[test]
fn the_packaged_unit_starts_reloads_logs_restarts_and_stops_under_systemd() {
    let images = images().expect("images");
    let lab = Lab::new("systemd-unit").expect("lab");
    lab.standalone_real_server(images, "rs1", RS1).expect("rs1");
    let host = lab
        .systemd_host(images, "director", DIRECTOR)
        .expect("a host running systemd");

    // Installed: enabled, and waiting for a config rather than failing.
    lab.upload(&host, &[("var/tmp/appliance.deb", &deb())])
        .expect("copy the package");
    ok(&lab, &host, &["dpkg", "-i", "/var/tmp/appliance.deb"]);
    assert_eq!(
        lab.exec(&host, &["systemctl", "is-enabled", "appliance"])
            .expect("exec")
            .stdout
            .trim(),
        "enabled"
    );
    assert_eq!(property(&lab, &host, "ActiveState"), "inactive");
    assert_eq!(property(&lab, &host, "ConditionResult"), "no");
    let verify = ok(
        &lab,
        &host,
        // The host has no man(1) to look the Documentation= pages up.
        &[
            "systemd-analyze",
            "verify",
            "--man=no",
            "/lib/systemd/system/appliance.service",
        ],
    );
    assert!(
        !verify.stderr.contains("appliance.service"),
        "systemd-analyze verify: {}",
        verify.stderr
    );

    // Started: `systemctl start` returns once the daemon said READY=1.
    lab.upload(&host, &[(CONFIG, config(&lab, 150, &[RS1]).as_bytes())])
        .expect("write the config");
    ok(&lab, &host, &["systemctl", "start", "appliance"]);
    assert_eq!(property(&lab, &host, "ActiveState"), "active");
    assert_eq!(property(&lab, &host, "Type"), "notify");
    assert_eq!(property(&lab, &host, "WatchdogUSec"), "10s");
    ok(
        &lab,
        &host,
        &["test", "-S", "/run/appliance/appliance.sock"],
    );
    let pid = property(&lab, &host, "MainPID");
    let limits = ok(&lab, &host, &["cat", &format!("/proc/{pid}/limits")]).stdout;
    let nofile = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("an open files limit");
    let soft_hard: Vec<&str> = nofile.split_whitespace().skip(3).take(2).collect();
    assert_eq!(
        soft_hard[0], soft_hard[1],
        "soft limit raised to hard: {nofile}"
    );
    wait(
        "VI_1 MASTER on the status line",
        Duration::from_secs(15),
        || property(&lab, &host, "StatusText") == "VI_1 MASTER; dataplane nftables",
    );
    assert!(has_vip(&lab, &host), "the VIP is on eth0");
    wait("rs1 up", Duration::from_secs(15), || {
        status(&lab, &host).virtual_servers[0].real_servers[0].alive
    });
    let running = status(&lab, &host);
    let vi_1 = &running.instances[0];
    assert_eq!(
        (vi_1.state, vi_1.interface.as_str()),
        (State::Master, "eth0")
    );
    assert_eq!(
        vi_1.vips,
        [format!("{}/24 dev eth0", lab.address(VIP))],
        "{running:?}"
    );
    assert_eq!(
        running.config,
        PathBuf::from("/etc/appliance/appliance.toml")
    );
    let text = ok(&lab, &host, &["appliance", "status"]).stdout;
    assert!(text.contains("VRRP VI_1  vrid 51  MASTER for "), "{text}");
    assert!(text.contains(" -> MASTER ("), "{text}");

    // Reloaded: applied when `systemctl reload` returns.
    lab.upload(
        &host,
        &[(CONFIG, config(&lab, 120, &[RS1, RS2]).as_bytes())],
    )
    .expect("write the config");
    ok(&lab, &host, &["systemctl", "reload", "appliance"]);
    let reloaded = status(&lab, &host);
    assert_eq!(reloaded.instances[0].base_priority.get(), 120);
    assert_eq!(reloaded.virtual_servers[0].real_servers.len(), 2);
    assert!(reloaded.last_reload.as_ref().is_some_and(|r| r.applied));
    assert_eq!(property(&lab, &host, "MainPID"), pid, "reloaded in place");

    // An invalid config: the reload fails, the reason is an error in the
    // journal, the running config stays.
    lab.upload(&host, &[(CONFIG, b"[[vrrp_instance]]\npriority = 300\n")])
        .expect("write the config");
    let rejected = lab
        .exec(&host, &["systemctl", "reload", "appliance"])
        .expect("exec");
    assert_ne!(rejected.code, 0, "a reload of an invalid config succeeded");
    assert_eq!(property(&lab, &host, "ActiveState"), "active");
    let errors = journal(&lab, &host, &["-p", "err", "-o", "cat"]);
    assert!(
        errors.contains("reload rejected"),
        "journalctl -p err:\n{errors}"
    );
    let kept = status(&lab, &host);
    assert_eq!(kept.instances[0].base_priority.get(), 120);
    assert!(kept.last_reload.as_ref().is_some_and(|r| !r.applied));
    lab.upload(
        &host,
        &[(CONFIG, config(&lab, 120, &[RS1, RS2]).as_bytes())],
    )
    .expect("write the config");

    // The journal: priorities from the levels, no time stamp or colour of
    // the daemon's own in the messages.
    let entries: Vec<serde_json::Value> = journal(&lab, &host, &["-o", "json"])
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|e| panic!("{e}: {l}"))
        })
        .filter(|e| e["_COMM"] == "appliance")
        .collect();
    let changed = entries
        .iter()
        .find(|e| {
            e["MESSAGE"]
                .as_str()
                .is_some_and(|m| m.contains("state changed"))
        })
        .expect("a state change in the journal");
    assert_eq!(changed["PRIORITY"], "6", "{changed}");
    let rejected = entries
        .iter()
        .find(|e| {
            e["MESSAGE"]
                .as_str()
                .is_some_and(|m| m.contains("reload rejected"))
        })
        .expect("the rejected reload in the journal");
    assert_eq!(rejected["PRIORITY"], "3", "{rejected}");
    for entry in &entries {
        let message = entry["MESSAGE"].as_str().unwrap_or_default();
        assert!(!message.contains('\x1b'), "colour: {message:?}");
        assert!(
            !message.starts_with("20"),
            "a time stamp of its own: {message:?}"
        );
    }

    // A stalled event loop stops feeding the watchdog: systemd kills the
    // daemon and starts it again, and it takes the VIP back.
    ok(
        &lab,
        &host,
        &[
            "systemctl",
            "kill",
            "--kill-whom=main",
            "--signal=SIGSTOP",
            "appliance",
        ],
    );
    wait("a restart by the watchdog", Duration::from_secs(40), || {
        property(&lab, &host, "NRestarts") == "1"
            && property(&lab, &host, "ActiveState") == "active"
    });
    assert_ne!(property(&lab, &host, "MainPID"), pid);
    let log = journal(&lab, &host, &["-o", "cat"]);
    assert!(log.contains("Watchdog timeout"), "{log}");
    wait(
        "MASTER again after the restart",
        Duration::from_secs(15),
        || property(&lab, &host, "StatusText") == "VI_1 MASTER; dataplane nftables",
    );
    assert!(has_vip(&lab, &host), "the VIP is back on eth0");

    // Stopped: the VIP released, the socket gone, the dataplane's record
    // kept for the next start, the timeline on disk.
    ok(&lab, &host, &["systemctl", "stop", "appliance"]);
    assert_eq!(property(&lab, &host, "ActiveState"), "inactive");
    assert_eq!(property(&lab, &host, "Result"), "success");
    assert!(!has_vip(&lab, &host), "the VIP stayed after stop");
    let socket = lab
        .exec(&host, &["test", "-e", "/run/appliance/appliance.sock"])
        .expect("exec");
    assert_ne!(socket.code, 0, "the status socket stayed");
    ok(
        &lab,
        &host,
        &["test", "-s", "/run/appliance/dataplane.json"],
    );
    let timeline = ok(&lab, &host, &["cat", "/var/log/appliance/timeline.jsonl"]).stdout;
    assert!(timeline.contains("\"MASTER\""), "{timeline}");
}
