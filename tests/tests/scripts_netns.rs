//! Scripts as the running daemon runs them (docs/config.md, "Scripts"):
//! as the user `script_user` names, without the daemon's ambient
//! capabilities or its environment; a sync group's own notifies on
//! failover; `enable_script_security` refusing a script anyone may change.
//! Each notify script records what it got (`id -u`, its capability lines,
//! its arguments and environment) in a directory anyone may write.

use appliance_tests::appliance_bin;
use appliance_tests::daemon::Daemon;
use appliance_tests::netns::Lan;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The scripts' fixed `PATH` (appliance/src/script/mod.rs).
const SCRIPT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A directory holding `record.sh`, which writes what it ran with to
/// `out/<first argument>`, and the `out` directory anyone may write; all
/// of it readable by anyone (a script run as nobody must reach it).
struct Scripts {
    dir: tempfile::TempDir,
}

impl Scripts {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = dir.path().join("out");
        std::fs::create_dir(&out).expect("out dir");
        chmod(dir.path(), 0o755);
        chmod(&out, 0o777);
        let script = dir.path().join("record.sh");
        // /proc/$$ is the shell's own: the environment and capabilities it
        // was started with.
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\n\
                 f={out}/$1\n\
                 {{\n\
                 echo \"uid $(id -u)\"\n\
                 grep -E '^Cap(Amb|Eff):' /proc/$$/status\n\
                 echo \"args $*\"\n\
                 tr '\\0' '\\n' < /proc/$$/environ | sed 's/^/env /'\n\
                 }} > \"$f.tmp\" && mv \"$f.tmp\" \"$f\"\n\
                 echo \"$*\" >> {out}/calls\n",
                out = out.display()
            ),
        )
        .expect("write record.sh");
        chmod(&script, 0o755);
        Self { dir }
    }

    fn script(&self) -> PathBuf {
        self.dir.path().join("record.sh")
    }

    /// What the script wrote as `name`, once it has.
    fn wait(&self, name: &str, within: Duration) -> String {
        let path = self.dir.path().join("out").join(name);
        let start = Instant::now();
        loop {
            if let Ok(text) = std::fs::read_to_string(&path) {
                return text;
            }
            assert!(
                start.elapsed() < within,
                "{} not written within {within:?}",
                path.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every run so far, one line of arguments each.
    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("out/calls"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// The value of `key` in the record's `key value` lines.
fn field<'a>(record: &'a str, key: &str) -> Option<&'a str> {
    record
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .map(|v| v.trim_start_matches([':', ' ', '\t']))
}

/// The names of the variables in the record.
fn variables(record: &str) -> Vec<&str> {
    record
        .lines()
        .filter_map(|l| l.strip_prefix("env "))
        .filter_map(|kv| kv.split('=').next())
        .collect()
}

/// What every record must show: no capabilities, and the documented
/// environment only.
fn assert_unprivileged_and_clean(record: &str) {
    assert_eq!(
        field(record, "CapAmb"),
        Some("0000000000000000"),
        "{record}"
    );
    assert_eq!(
        field(record, "CapEff"),
        Some("0000000000000000"),
        "{record}"
    );
    for name in variables(record) {
        assert!(
            ["PATH", "LANG", "LC_ALL", "TZ"].contains(&name),
            "{name} passed to the script:\n{record}"
        );
    }
    assert!(
        record.contains(&format!("env PATH={SCRIPT_PATH}\n")),
        "{record}"
    );
}

/// One BACKUP instance whose `notify` is the recording script (it runs at
/// start, on entering BACKUP).
fn instance(script: &Path) -> String {
    format!(
        "vrrp_instance VI_1 {{\n    state BACKUP\n    interface eth0\n    virtual_router_id 116\n    \
         priority 100\n    advert_int 1\n    notify \"{} start\"\n    virtual_ipaddress {{\n        \
         10.116.0.100/24\n    }}\n}}\n",
        script.display()
    )
}

#[test]
fn a_root_daemon_runs_notifies_as_script_user_without_capabilities_or_its_environment() {
    let scripts = Scripts::new();
    let mut lan = Lan::new().expect("lan");
    lan.add_host("m", &["10.116.0.1/24"]).expect("host");
    let config = format!(
        "global_defs {{\n    script_user nobody\n}}\n{}",
        instance(&scripts.script())
    );
    let daemon = Daemon::start(lan.host("m"), &config).expect("daemon starts");
    let record = scripts.wait("start", Duration::from_secs(5));
    assert_eq!(field(&record, "uid"), Some("65534"), "{record}");
    assert_eq!(
        field(&record, "args"),
        Some("start INSTANCE VI_1 BACKUP 100"),
        "{record}"
    );
    assert_unprivileged_and_clean(&record);
    // The harness gives the daemon these; the script gets none.
    assert!(!variables(&record).contains(&"RUST_LOG"), "{record}");
    drop(daemon);
}

#[test]
fn a_daemon_with_ambient_capabilities_does_not_pass_them_to_its_scripts() {
    const CAPS: &str = "-all,+net_admin,+net_raw";
    let scripts = Scripts::new();
    let mut lan = Lan::new().expect("lan");
    lan.add_host("m", &["10.116.0.1/24"]).expect("host");
    // Config and state where the nobody daemon can read and write them.
    let state = tempfile::tempdir().expect("state dir");
    chmod(state.path(), 0o777);
    let config = state.path().join("keepalived.conf");
    std::fs::write(&config, instance(&scripts.script())).expect("write config");
    chmod(&config, 0o644);
    let mut cmd = lan
        .host("m")
        .command_as("nobody", "nogroup", Some(CAPS), appliance_bin());
    cmd.arg("run")
        .arg("--config")
        .arg(&config)
        .arg("--state-dir")
        .arg(state.path());
    let _daemon = lan
        .host("m")
        .spawn(&mut cmd)
        .unwrap_or_else(|e| panic!("{e} (setpriv is in the Debian package util-linux)"));
    let record = scripts.wait("start", Duration::from_secs(10));
    // No keepalived_script, no script_user: the daemon's own user.
    assert_eq!(field(&record, "uid"), Some("65534"), "{record}");
    assert_unprivileged_and_clean(&record);
}

/// A director with sync group G (VI_1 and VI_2), whose own notify_master
/// and notify are the recording script.
fn grouped(router: &str, priority: u8, script: &Path) -> String {
    let s = script.display();
    let instance = |name: &str, vrid: u8, vip: &str| {
        format!(
            "vrrp_instance {name} {{\n    state BACKUP\n    interface eth0\n    virtual_router_id {vrid}\n    \
             priority {priority}\n    advert_int 0.1\n    version 3\n    virtual_ipaddress {{\n        \
             {vip}/24\n    }}\n}}\n"
        )
    };
    format!(
        "global_defs {{\n    router_id {router}\n}}\n\
         vrrp_sync_group G {{\n    group {{\n        VI_1\n        VI_2\n    }}\n    \
         notify_master \"{s} {router}-group-master\"\n    notify \"{s} {router}-group\"\n}}\n{}{}",
        instance("VI_1", 116, "10.116.0.100"),
        instance("VI_2", 117, "10.116.0.101"),
    )
}

#[test]
fn a_sync_groups_notify_master_runs_when_the_backup_takes_over() {
    let scripts = Scripts::new();
    let mut lan = Lan::new().expect("lan");
    lan.add_host("m", &["10.116.0.1/24"]).expect("host m");
    lan.add_host("b", &["10.116.0.2/24"]).expect("host b");
    let vip = "10.116.0.101".parse().unwrap();
    let mut m = Daemon::start(lan.host("m"), &grouped("m", 150, &scripts.script())).expect("m");
    lan.host("m")
        .wait_address(vip, true, Duration::from_secs(5))
        .expect("m holds the VIPs");
    scripts.wait("m-group-master", Duration::from_secs(5));
    let b = Daemon::start(lan.host("b"), &grouped("b", 100, &scripts.script())).expect("b");
    scripts.wait("b-group", Duration::from_secs(5));
    assert!(
        scripts
            .calls()
            .contains(&"b-group GROUP G BACKUP 0".to_string()),
        "{:?}",
        scripts.calls()
    );
    assert!(
        !scripts
            .calls()
            .iter()
            .any(|c| c.starts_with("b-group-master")),
        "b is backup: {:?}",
        scripts.calls()
    );

    // m resigns; b's group goes master, and so do its notifies.
    m.stop().expect("m stops");
    let record = scripts.wait("b-group-master", Duration::from_secs(5));
    assert_eq!(field(&record, "uid"), Some("0"), "{record}");
    let start = Instant::now();
    while !scripts
        .calls()
        .contains(&"b-group GROUP G MASTER 0".to_string())
    {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            scripts.calls()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    lan.host("b")
        .wait_address(vip, true, Duration::from_secs(1))
        .expect("b holds the VIPs");
    drop(b);
}

fn check_config(config: &Path) -> std::process::Output {
    Command::new(appliance_bin())
        .arg("check-config")
        .arg(config)
        .output()
        .expect("run appliance check-config")
}

#[test]
fn enable_script_security_refuses_a_script_anyone_may_change() {
    let dir = tempfile::tempdir().expect("temp dir");
    let script = dir.path().join("notify.sh");
    std::fs::write(&script, "#!/bin/sh\n").expect("write the script");
    chmod(&script, 0o777);
    let config = dir.path().join("keepalived.conf");
    std::fs::write(
        &config,
        format!(
            "global_defs {{\n    script_user root\n    enable_script_security\n}}\n\
             vrrp_instance VI_1 {{\n    interface eth0\n    virtual_router_id 1\n    \
             notify_master {}\n}}\n",
            script.display()
        ),
    )
    .expect("write the config");
    let out = check_config(&config);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "{c}:8:5: vrrp_instance 'VI_1' notify_master: '{s}' runs as root, but {s} is writable by everyone (enable_script_security refuses it)\n",
            c = config.display(),
            s = script.display()
        )
    );
    // Only root may change it now: accepted.
    chmod(&script, 0o755);
    let out = check_config(&config);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
