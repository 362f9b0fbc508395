//! `images/disk/build` is reproducible: two builds from the same inputs
//! (the static binary `make image` built, the cached kernel and busybox
//! packages, the bootloaders installed here) give the same bytes, and the
//! build prints each image's size and SHA-256.

use std::process::Command;

fn build(out: &std::path::Path) -> String {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let binary = root.join("target/x86_64-unknown-linux-gnu/release/appliance");
    assert!(
        binary.is_file(),
        "{} is missing: build the image with `make image` (make test does)",
        binary.display()
    );
    let result = Command::new(root.join("images/disk/build"))
        .arg("--binary")
        .arg(&binary)
        .arg("--out")
        .arg(out)
        .output()
        .expect("images/disk/build");
    assert!(
        result.status.success(),
        "images/disk/build: {}\n{}",
        result.status,
        String::from_utf8_lossy(&result.stderr)
    );
    String::from_utf8_lossy(&result.stdout).into_owned()
}

fn sha256(path: &std::path::Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn two_builds_from_the_same_inputs_are_identical_and_print_size_and_checksum() {
    let dir = tempfile::tempdir_in("/var/tmp").expect("tempdir");
    let (first, second) = (dir.path().join("first"), dir.path().join("second"));
    let printed = build(&first);
    build(&second);
    for name in ["appliance.img", "appliance.qcow2"] {
        let (a, b) = (first.join(name), second.join(name));
        let sum = sha256(&a);
        assert_eq!(sum, sha256(&b), "{name} differs between two builds");
        let size = std::fs::metadata(&a).expect("image").len();
        let line = printed
            .lines()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("no line for {name} in:\n{printed}"));
        assert!(
            line.contains(&format!("{size} bytes")) && line.contains(&sum),
            "{line}"
        );
        assert!(
            size < 64_000_000,
            "{name} is {size} bytes, over the 64 MB goal"
        );
    }
}
