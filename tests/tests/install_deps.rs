//! scripts/install-deps against apt in a Debian container whose archive is
//! a local repository of packages made for the test, in the situation that
//! broke a fresh machine: a tool installed from a newer package than the
//! archive has (a backport), and a package to install that breaks that
//! version. The script must keep the tool (taking the archive's version of
//! its package), or refuse and change nothing when no version fits; and it
//! must judge by the tools present after apt, not the packages before.

use appliance_tests::containers::{Container, ExecOutput, Lab, images};
use std::path::PathBuf;

/// Builds the packages and the repository, and points apt at it alone:
/// - installed: tool-a 2.0 (not in the archive, as a backport is not);
/// - the archive: tool-a 1.0; tool-b, which needs tool-common 1.0, which
///   breaks tool-a 2.0; tool-c, which conflicts with every tool-a.
const SETUP: &str = r#"
set -eu
mk() {
  name=$1 version=$2 out=$3; shift 3
  d=$(mktemp -d)
  mkdir -p "$d/DEBIAN" "$d/usr/bin"
  printf '#!/bin/sh\necho %s %s\n' "$name" "$version" >"$d/usr/bin/$name"
  chmod 755 "$d/usr/bin/$name"
  {
    echo "Package: $name"; echo "Version: $version"; echo "Architecture: all"
    echo "Maintainer: install-deps test <test@example.invalid>"; echo "Description: $name"
    for line in "$@"; do echo "$line"; done
  } >"$d/DEBIAN/control"
  dpkg-deb --root-owner-group -b "$d" "$out/${name}_${version}_all.deb" >/dev/null
}
mkdir -p /repo /held
mk tool-a 2.0 /held
mk tool-a 1.0 /repo
mk tool-common 1.0 /repo "Breaks: tool-a (>= 2.0)"
mk tool-b 1.0 /repo "Depends: tool-common (= 1.0)"
mk tool-c 1.0 /repo "Conflicts: tool-a"
cd /repo
for f in *.deb; do
  dpkg-deb -f "$f"
  echo "Filename: ./$f"
  echo "Size: $(stat -c %s "$f")"
  echo "SHA256: $(sha256sum "$f" | cut -d' ' -f1)"
  echo
done >Packages
echo 'deb [trusted=yes] file:/repo ./' >/etc/apt/sources.list
rm -f /etc/apt/sources.list.d/*
apt-get update -qq
dpkg -i /held/tool-a_2.0_all.deb >/dev/null
"#;

fn script() -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/install-deps");
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn sh(lab: &Lab, c: &Container, script: &str) -> ExecOutput {
    lab.exec(c, &["bash", "-c", script]).expect("exec")
}

fn version(lab: &Lab, c: &Container, package: &str) -> String {
    let out = sh(
        lab,
        c,
        &format!("dpkg-query -W -f='${{Status}} ${{Version}}' {package} 2>/dev/null || true"),
    );
    out.stdout
        .strip_prefix("install ok installed ")
        .unwrap_or("not installed")
        .to_string()
}

/// A Debian container with the repository set up and the script in it.
fn host(lab: &Lab) -> Container {
    let images = images().expect("images");
    let c = lab.client(images, 10).expect("a Debian container");
    lab.upload(
        &c,
        &[
            ("opt/install-deps", &script()),
            ("opt/setup", SETUP.as_bytes()),
            ("opt/table-b", b"tool-a tool-a\ntool-b tool-b\n"),
            (
                "opt/table-c",
                b"# comment\ntool-a tool-a\n\ntool-c tool-c\n",
            ),
        ],
    )
    .expect("upload");
    let setup = sh(lab, &c, "bash /opt/setup");
    assert_eq!(setup.code, 0, "setup: {}{}", setup.stdout, setup.stderr);
    assert_eq!(version(lab, &c, "tool-a"), "2.0");
    c
}

#[test]
fn a_package_that_would_remove_a_tool_comes_with_a_version_of_it_that_fits() {
    let lab = Lab::new("install-deps-fits").expect("lab");
    let c = host(&lab);
    // apt left alone removes tool-a to install tool-b.
    let naive = sh(
        &lab,
        &c,
        "apt-get -s install -y --no-install-recommends tool-b",
    );
    assert!(
        naive.stdout.contains("Remv tool-a"),
        "the situation is not set up: {}",
        naive.stdout
    );
    let out = sh(&lab, &c, "bash /opt/install-deps --table /opt/table-b");
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr
            .contains("tool-a: apt would remove it; installing version 1.0 of it instead"),
        "{}",
        out.stderr
    );
    assert_eq!(version(&lab, &c, "tool-a"), "1.0");
    assert_eq!(version(&lab, &c, "tool-b"), "1.0");
    let tools = sh(&lab, &c, "tool-a && tool-b");
    assert_eq!(tools.stdout, "tool-a 1.0\ntool-b 1.0\n", "{}", tools.stderr);
    // And a second run finds every tool and does nothing.
    let again = sh(&lab, &c, "bash /opt/install-deps --table /opt/table-b");
    assert_eq!((again.code, again.stderr.as_str()), (0, ""));
}

#[test]
fn an_install_no_version_can_fit_is_refused_and_changes_nothing() {
    let lab = Lab::new("install-deps-refused").expect("lab");
    let c = host(&lab);
    let out = sh(&lab, &c, "bash /opt/install-deps --table /opt/table-c");
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("tool-a") && out.stderr.contains("nothing was changed"),
        "{}",
        out.stderr
    );
    assert_eq!(version(&lab, &c, "tool-a"), "2.0", "tool-a was touched");
    assert_eq!(version(&lab, &c, "tool-c"), "not installed");
    assert_eq!(sh(&lab, &c, "tool-a").stdout, "tool-a 2.0\n");
}

/// What counts is the tool: --check names a missing command, and a package
/// dpkg calls installed whose command is gone is installed again.
#[test]
fn a_missing_command_is_installed_whatever_dpkg_says() {
    let lab = Lab::new("install-deps-tools").expect("lab");
    let c = host(&lab);
    let installed = sh(&lab, &c, "bash /opt/install-deps --table /opt/table-b");
    assert_eq!(installed.code, 0, "{}", installed.stderr);
    sh(&lab, &c, "rm /usr/bin/tool-b");
    let check = sh(
        &lab,
        &c,
        "bash /opt/install-deps --check --table /opt/table-b",
    );
    assert_eq!(check.code, 1);
    assert!(
        check.stderr.contains("still missing: tool-b (tool-b)"),
        "{}",
        check.stderr
    );
    // dpkg still lists tool-b as installed: the script must go by the
    // command, and have apt put the package back.
    assert_eq!(version(&lab, &c, "tool-b"), "1.0");
    let out = sh(&lab, &c, "bash /opt/install-deps --table /opt/table-b");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("installing tool-b"), "{}", out.stderr);
    assert_eq!(sh(&lab, &c, "tool-b").stdout, "tool-b 1.0\n");
}
