//! The images and the demo's files: the appliance image is the static binary
//! alone, the real servers say who answered, the client reaches them over
//! the internal network, and compose/ agrees with the workspace.

use appliance::config::model::LbKind;
use appliance::vrrp::machine::State;
use appliance_tests::containers::{Lab, engine_objects, images};
use std::path::Path;
use std::time::Duration;

fn repo(rel: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

#[test]
fn appliance_image_runs_the_static_binary_alone() {
    let images = images().expect("images");
    let lab = Lab::new("appliance-image").expect("lab");
    let out = lab.run(&images.appliance, &["--version"]).expect("run");
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout.trim(),
        format!("appliance {}", env!("CARGO_PKG_VERSION"))
    );
    // FROM scratch plus the binary: one layer, nothing else to run.
    assert_eq!(lab.image_layers(&images.appliance).expect("inspect"), 1);
}

#[test]
fn real_servers_say_who_answered() {
    let images = images().expect("images");
    let lab = Lab::new("real-servers").expect("lab");
    let rs1 = lab.standalone_real_server(images, "rs1", 11).expect("rs1");
    let rs2 = lab.standalone_real_server(images, "rs2", 12).expect("rs2");
    let client = lab.client(images, 20).expect("client");
    for rs in [&rs1, &rs2] {
        let url = format!("http://{}/", rs.address);
        let out = lab
            .exec(
                &client,
                &[
                    "curl",
                    "-fsS",
                    "--retry",
                    "20",
                    "--retry-connrefused",
                    "--retry-delay",
                    "1",
                    &url,
                ],
            )
            .expect("curl");
        assert_eq!(out.code, 0, "curl {url}: {out:?}");
        assert_eq!(out.stdout.trim(), format!("{} {}", rs.role, rs.address));
    }
}

#[test]
fn compose_env_names_the_workspace_version() {
    let env = std::fs::read_to_string(repo("compose/.env")).expect("compose/.env");
    let version = env
        .lines()
        .find_map(|l| l.strip_prefix("APPLIANCE_VERSION="))
        .expect("compose/.env sets APPLIANCE_VERSION");
    assert_eq!(version, env!("CARGO_PKG_VERSION"), "compose/.env is stale");
}

#[test]
fn demo_director_configs_are_valid_and_peer_each_other() {
    let master = appliance::config::load_file(&repo("compose/master.toml"))
        .unwrap_or_else(|d| panic!("compose/master.toml:\n{d}"));
    let backup = appliance::config::load_file(&repo("compose/backup.toml"))
        .unwrap_or_else(|d| panic!("compose/backup.toml:\n{d}"));
    let m = master.vrrp_instance.first().expect("master instance");
    let b = backup.vrrp_instance.first().expect("backup instance");
    assert_eq!(m.unicast_peer, vec![b.unicast_src_ip.expect("backup src")]);
    assert_eq!(b.unicast_peer, vec![m.unicast_src_ip.expect("master src")]);
    assert!(m.priority > b.priority, "the master outranks the backup");
    // Both balance the VIP the same way, by LVS-NAT on whichever dataplane
    // the host has (README.md, "Demo layout").
    for config in [&master, &backup] {
        assert_eq!(config.global.dataplane, None, "IPVS or nftables, probed");
        let vs = config.virtual_server.first().expect("a virtual server");
        assert_eq!(vs.lb_kind, LbKind::Nat);
        assert!(!vs.masquerade, "the real servers route replies back");
        assert_eq!(vs.real_server.len(), 2, "rs1 and rs2");
        // Metrics and the status page on every address: the demo's
        // Prometheus scrapes them, a browser on the Docker host reads them.
        assert_eq!(config.global.metrics_listen, "0.0.0.0:9100".parse().ok());
        assert!(config.global.status_page);
    }
    assert_eq!(master.virtual_server, backup.virtual_server);
}

#[test]
fn a_lab_leaves_nothing_behind_even_when_its_test_panics() {
    let images = images().expect("images");
    let before = engine_objects().expect("engine objects");
    let panicked = std::panic::catch_unwind(|| {
        let lab = Lab::new("teardown").expect("lab");
        let conf = lab.demo_config("master").expect("config");
        let lone = lab.director(images, "lone", 2, &conf).expect("director");
        lab.client(images, 20).expect("client");
        // A throwaway container of the appliance image (it declares a
        // VOLUME: the anonymous volume must go too).
        lab.run(&images.appliance, &["--version"]).expect("run");
        lab.wait_state(&lone, State::Backup, Duration::from_secs(5))
            .expect("director starts");
        panic!("the test fails here");
    });
    assert!(panicked.is_err());
    let after = engine_objects().expect("engine objects");
    let left: Vec<_> = after.difference(&before).collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
