//! `appliance check-config` and `appliance convert` driven as a user would.

use appliance::config::{Format, load_file, load_str};
use appliance_tests::{appliance_bin, fixture};
use std::path::Path;
use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(appliance_bin())
        .args(args)
        .output()
        .expect("run appliance")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn check_config_accepts_every_fixture() {
    for name in appliance_tests::keepalived_fixtures() {
        let name = name.as_str();
        let path = fixture(name);
        let out = run(&["check-config", path.to_str().expect("utf-8 path")]);
        assert!(out.status.success(), "{name}: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout), format!("{}: ok\n", path.display()));
    }
}

#[test]
fn check_config_lists_every_problem() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("keepalived.conf");
    std::fs::write(
        &path,
        "vrrp_instance VI_1 {\n    interface eth0\n    virtual_router_id 51\n    priority 0\n    use_ipvlan\n}\n\
         vrrp_instance VI_2 {\n    interface eth0\n    virtual_router_id 51\n    track_script {\n        chk_gone\n    }\n}\n",
    )
    .expect("write config");
    let out = run(&["check-config", path.to_str().expect("utf-8 path")]);
    assert!(!out.status.success());
    let p = path.display();
    assert_eq!(
        text(&out.stderr),
        format!(
            "{p}:4:5: vrrp_instance 'VI_1': priority 0 is out of range 1..=255 (0 is reserved for a resigning master)\n\
             {p}:5:5: keepalived's 'use_ipvlan' in vrrp_instance is not supported: not yet; `use_vmac` makes a macvlan with the virtual MAC\n\
             {p}:9:5: vrrp_instance 'VI_2': virtual_router_id 51 on interface eth0 (IPv4) is already used by vrrp_instance 'VI_1'\n\
             {p}:11:9: vrrp_instance 'VI_2' tracks unknown vrrp_script 'chk_gone'\n"
        )
    );
}

/// Keywords accepted with no effect and keepalived's defaults that
/// differ from what a reader may assume are warnings that name the place;
/// the file is still ok.
#[test]
fn check_config_warns_of_no_ops_and_of_keepalived_defaults() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("keepalived.conf");
    std::fs::write(
        &path,
        "global_defs {\n    no_checker_emails\n    notification_email {\n        ops@example.org\n    }\n}\n\
         vrrp_instance VI_1 {\n    interface eth0\n    virtual_router_id 51\n    smtp_alert\n}\n\
         virtual_server 10.0.0.1 53 {\n    real_server 10.0.1.1 53\n}\n",
    )
    .expect("write config");
    let out = run(&["check-config", path.to_str().expect("utf-8 path")]);
    let p = path.display();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), format!("{p}: ok\n"));
    assert_eq!(
        text(&out.stderr),
        format!(
            "{p}:2:5: warning: 'no_checker_emails' in global_defs has no effect: the appliance mails only when a real server itself goes up or down, which is what it asks\n\
             {p}:12:1: warning: virtual_server without 'protocol' is UDP, as in keepalived: write 'protocol TCP' for TCP\n"
        )
    );
    let converted = run(&["convert", path.to_str().expect("utf-8 path")]);
    assert!(
        text(&converted.stdout).contains("protocol = \"UDP\""),
        "{}",
        text(&converted.stdout)
    );
}

#[test]
fn check_config_points_into_included_files() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(dir.path().join("conf.d")).expect("mkdir");
    let main = dir.path().join("keepalived.conf");
    std::fs::write(&main, "include conf.d/*.conf\n").expect("write");
    let inc = dir.path().join("conf.d/vi.conf");
    std::fs::write(
        &inc,
        "vrrp_instance VI_1 {\n    interface eth0\n    virtual_router_id 300\n}\n",
    )
    .expect("write");
    let out = run(&["check-config", main.to_str().expect("utf-8 path")]);
    assert!(!out.status.success());
    assert_eq!(
        text(&out.stderr),
        format!(
            "{}:3:23: bad value '300' for 'virtual_router_id': expected an integer in 1..=255\n",
            inc.display()
        )
    );
}

#[test]
fn check_config_reports_toml_errors_with_positions() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("lb.toml");
    std::fs::write(&path, "[global]\nrouter_id = \"a\"\nvrrp_versoin = 3\n").expect("write");
    let out = run(&["check-config", path.to_str().expect("utf-8 path")]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with(&format!(
            "{}:3:1: unknown field `vrrp_versoin`",
            path.display()
        )),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn convert_output_loads_back_equal() {
    let dir = tempfile::tempdir().expect("temp dir");
    for name in appliance_tests::keepalived_fixtures() {
        let name = name.as_str();
        let path = fixture(name);
        let out = run(&["convert", path.to_str().expect("utf-8 path")]);
        assert!(out.status.success(), "{name}: {}", text(&out.stderr));
        let converted = dir.path().join("converted.toml");
        std::fs::write(&converted, &out.stdout).expect("write");
        let original = load_file(&path).expect("fixture loads");
        assert_eq!(
            load_file(&converted).expect("converted loads"),
            original,
            "{name}"
        );
        // And the converted file is itself accepted by check-config.
        let check = run(&["check-config", converted.to_str().expect("utf-8 path")]);
        assert!(check.status.success(), "{name}: {}", text(&check.stderr));
    }
}

#[test]
fn convert_is_idempotent_on_toml() {
    let path = fixture("keepalived/seed-lvs-dr.conf");
    let first = text(&run(&["convert", path.to_str().expect("utf-8 path")]).stdout);
    let config = load_str(Path::new("x.toml"), &first, Format::Toml).expect("loads");
    assert_eq!(config.to_toml_minimal().expect("serialises"), first);
}
