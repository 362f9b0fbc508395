//! The core crate's boundary: nothing it builds on may do I/O of its own.
//! tokio, nix and libc are the crates through which the daemon reaches the
//! kernel; none of them may appear in this crate's dependency tree (its
//! tests' dev-dependencies aside), or a core could start blocking.

use std::process::Command;

const FORBIDDEN: [&str; 3] = ["tokio", "nix", "libc"];

#[test]
fn the_core_builds_on_no_crate_that_does_io() {
    let cargo = option_env!("CARGO").unwrap_or("cargo");
    let output = Command::new(cargo)
        .args([
            "tree",
            "--locked",
            "--package",
            env!("CARGO_PKG_NAME"),
            "--edges",
            "normal,build",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo runs");
    assert!(
        output.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let tree = String::from_utf8(output.stdout).expect("cargo tree prints UTF-8");
    let names: Vec<&str> = tree
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    assert!(
        names.contains(&env!("CARGO_PKG_NAME")) && names.contains(&"serde"),
        "cargo tree listed an unexpected tree:\n{tree}"
    );
    let found: Vec<&str> = names
        .iter()
        .copied()
        .filter(|name| FORBIDDEN.contains(name))
        .collect();
    assert!(
        found.is_empty(),
        "appliance-core depends on {found:?}; the cores must stay sans-IO:\n{tree}"
    );
}
