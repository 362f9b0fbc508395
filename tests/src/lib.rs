//! Harness for the appliance's integration tests: locating the built
//! binary and the fixtures, network namespaces, qemu VMs with IPVS, the
//! running daemon and its peers (keepalived, nginx, curl), containers of
//! the project's images, and the flashable image booted from its disk.

pub mod adverts;
pub mod bench;
pub mod browser;
pub mod containers;
pub mod daemon;
pub mod error;
pub mod frr;
pub mod image;
pub mod keepalived;
pub mod loopback;
pub mod netns;
pub mod pair;
pub mod scale_out;
pub mod smtp_server;
pub mod timeline;
pub mod toml_conf;
pub mod vm;
pub mod vrrp_conf;
pub mod web;

use std::path::PathBuf;

/// The `appliance` binary that `cargo nextest run --workspace` built beside
/// this test executable (target/<profile>/appliance).
pub fn appliance_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test>-<hash> -> target/<profile>/appliance
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test executable lives in target/<profile>/deps");
    let bin = profile_dir.join("appliance");
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build -p appliance` (make test does)",
        bin.display()
    );
    bin
}

/// A file under `tests/fixtures/`.
/// Every keepalived.conf fixture (`keepalived/NAME`, sorted; the files an
/// `include` pulls in are in a folder of their own and not listed).
pub fn keepalived_fixtures() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(fixture("keepalived"))
        .expect("reading the fixtures")
        .map(|e| e.expect("a fixture").path())
        .filter(|p| p.is_file())
        .map(|p| {
            let name = p.file_name().expect("a name").to_string_lossy();
            format!("keepalived/{name}")
        })
        .collect();
    names.sort();
    names
}

pub fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(rel)
}
