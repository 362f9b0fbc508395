//! The install path a packager takes: `make install` into a staging
//! directory, `make uninstall`, and the Debian package of `make deb`
//! (target/debian/appliance_<version>_amd64.deb), each checked file by file
//! with the tools a packager has (make, gzip, bash, dpkg-deb).
//!
//! The static release binary takes minutes to build (LTO), so no test
//! builds it: `make test` runs `make deb` first, which builds it
//! (target/x86_64-unknown-linux-gnu/release/appliance) and the package.
//! `make install` runs with `BINARY=` the debug binary beside these tests;
//! the package tests read what `make deb` made and pack that static binary
//! again.

use appliance::cli::docs::man_pages;
use appliance_tests::appliance_bin;
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The source tree (the workspace's root).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the workspace")
        .to_path_buf()
}

/// `tool`'s path, or a failure that names its Debian package.
fn require(tool: &str, package: &'static str) -> PathBuf {
    appliance_tests::vm::require_tool(tool, package).unwrap_or_else(|e| panic!("{e}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `cmd`; a failure shows its stderr.
fn run(cmd: &mut Command) -> Output {
    let shown = format!("{cmd:?}");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{shown}: {e}"));
    assert!(
        out.status.success(),
        "{shown}: {}\n{}{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

/// `make -C <root> TARGET VARS...`, as a packager types it (not as a
/// sub-make of `make test`: the outer make's flags are dropped).
fn make(target: &str, vars: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new(require("make", "make"));
    cmd.arg("-C")
        .arg(root())
        .arg("--no-print-directory")
        .arg(target)
        .env_remove("MAKEFLAGS")
        .env_remove("MFLAGS")
        .env_remove("MAKELEVEL");
    for (name, value) in vars {
        cmd.arg(format!("{name}={}", value.display()));
    }
    run(&mut cmd)
}

/// The man pages the binary writes, as installed: `appliance.8.gz`, ...
fn man_page_files() -> Vec<String> {
    man_pages("")
        .into_iter()
        .map(|page| format!("{}.gz", page.file_name))
        .collect()
}

/// Every file `make install` puts under `prefix` (the unit under
/// `unit_dir`, the zsh completion in `zsh_dir`), by absolute path.
fn installed_files(prefix: &str, unit_dir: &str, zsh_dir: &str) -> BTreeSet<String> {
    let mut files: BTreeSet<String> = [
        format!("{prefix}/sbin/appliance"),
        format!("{unit_dir}/appliance.service"),
        format!("{prefix}/share/bash-completion/completions/appliance"),
        format!("{zsh_dir}/_appliance"),
        format!("{prefix}/share/fish/vendor_completions.d/appliance.fish"),
        format!("{prefix}/share/doc/appliance/README.md"),
        format!("{prefix}/share/doc/appliance/config.md"),
        format!("{prefix}/share/doc/appliance/examples/appliance.toml"),
        format!("{prefix}/share/doc/appliance/examples/keepalived.conf"),
    ]
    .into();
    for page in man_page_files() {
        files.insert(format!("{prefix}/share/man/man8/{page}"));
    }
    files
}

/// The regular files under `dir`, by path relative to it with a leading
/// `/` (as installed).
fn files_under(dir: &Path) -> BTreeSet<String> {
    fn walk(dir: &Path, base: &Path, files: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).expect("read a staged directory") {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                walk(&path, base, files);
            } else {
                let rel = path.strip_prefix(base).expect("under the base");
                files.insert(format!("/{}", rel.display()));
            }
        }
    }
    let mut files = BTreeSet::new();
    if dir.exists() {
        walk(dir, dir, &mut files);
    }
    files
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// A man page installed as `gzip -9n` writes it: no file name or time in
/// the header (reproducible), a section 8 `.TH` line first.
fn check_man_page(path: &Path) {
    let bytes = std::fs::read(path).expect("read a man page");
    let name = path.display();
    assert_eq!(&bytes[..3], &[0x1f, 0x8b, 8], "{name} is not gzip");
    assert_eq!(bytes[3] & 0x08, 0, "{name}'s gzip header names the file");
    assert_eq!(&bytes[4..8], &[0; 4], "{name}'s gzip header has a time");
    let page = run(Command::new(require("gzip", "gzip")).arg("-dc").arg(path)).stdout;
    let title = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".8.gz"))
        .expect("a page.8.gz");
    let first = text(&page).lines().next().unwrap_or_default().to_string();
    assert!(
        first.starts_with(&format!(".TH {title} 8 ")),
        "{name} starts with {first:?}"
    );
    assert!(text(&page).contains(".SH NAME"), "{name} has no NAME");
}

/// The bash completion script loads, registers `appliance`, and completes
/// its commands.
fn check_bash_completion(path: &Path) {
    let script = "source \"$1\"; complete -p appliance; \
                  COMP_WORDS=(appliance check); COMP_CWORD=1; \
                  _appliance appliance check appliance; echo \"${COMPREPLY[*]}\"; \
                  COMP_WORDS=(appliance ipvs ''); COMP_CWORD=2; \
                  _appliance appliance '' ipvs; echo \"${COMPREPLY[*]}\"";
    let out = run(Command::new(require("bash", "bash"))
        .args(["-c", script, "bash"])
        .arg(path));
    let out = text(&out.stdout);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[0].starts_with("complete ")
            && lines[0].contains("-F _appliance")
            && lines[0].ends_with(" appliance"),
        "{out}"
    );
    assert_eq!(lines[1], "check-config", "{out}");
    for word in ["list", "timeout", "sync-daemon"] {
        assert!(lines[2].split(' ').any(|w| w == word), "{out}");
    }
}

fn check_examples(binary: &Path, examples: &Path) {
    for name in ["appliance.toml", "keepalived.conf"] {
        let example = examples.join(name);
        let out = run(Command::new(binary).arg("check-config").arg(&example));
        assert_eq!(text(&out.stdout), format!("{}: ok\n", example.display()));
    }
}

#[test]
fn make_install_puts_every_file_in_its_place_and_uninstall_removes_them() {
    let dest = tempfile::tempdir().expect("temp dir");
    let binary = appliance_bin();
    make(
        "install",
        &[("DESTDIR", dest.path()), ("BINARY", binary.as_path())],
    );
    let at = |path: &str| dest.path().join(path.trim_start_matches('/'));

    assert_eq!(
        files_under(dest.path()),
        installed_files(
            "/usr/local",
            "/usr/local/lib/systemd/system",
            "/usr/local/share/zsh/site-functions",
        ),
        "make install with the default PREFIX"
    );
    for file in files_under(dest.path()) {
        let expected = if file.ends_with("/sbin/appliance") {
            0o755
        } else {
            0o644
        };
        assert_eq!(mode(&at(&file)), expected, "{file}'s mode");
    }

    let installed = at("/usr/local/sbin/appliance");
    let out = run(Command::new(&installed).arg("--version"));
    assert_eq!(text(&out.stdout), format!("appliance {VERSION}\n"));

    let unit = std::fs::read_to_string(at("/usr/local/lib/systemd/system/appliance.service"))
        .expect("read the unit");
    assert!(
        !unit.contains('@'),
        "placeholders left in the unit:\n{unit}"
    );
    for line in [
        "ExecStartPre=/usr/local/sbin/appliance check-config ${CONFIG}\n",
        "ExecStart=/usr/local/sbin/appliance run --config ${CONFIG} ",
        "ExecReload=/usr/local/sbin/appliance reload\n",
        "Environment=CONFIG=/etc/appliance/appliance.toml\n",
        "EnvironmentFile=-/etc/default/appliance\n",
        "ConditionPathExists=|/etc/appliance/appliance.toml\n",
    ] {
        assert!(unit.contains(line), "no {line:?} in the unit:\n{unit}");
    }
    let source = std::fs::read_to_string(root().join("appliance/systemd/appliance.service.in"))
        .expect("read the unit's template");
    assert_eq!(
        unit,
        source
            .replace("@SBINDIR@", "/usr/local/sbin")
            .replace("@SYSCONFDIR@", "/etc"),
        "the unit is its template with the paths filled in, nothing else"
    );

    for page in man_page_files() {
        check_man_page(&at(&format!("/usr/local/share/man/man8/{page}")));
    }
    check_bash_completion(&at(
        "/usr/local/share/bash-completion/completions/appliance",
    ));
    let zsh = std::fs::read_to_string(at("/usr/local/share/zsh/site-functions/_appliance"))
        .expect("read the zsh completion");
    assert!(zsh.starts_with("#compdef appliance\n"), "{zsh}");
    let fish = std::fs::read_to_string(at(
        "/usr/local/share/fish/vendor_completions.d/appliance.fish",
    ))
    .expect("read the fish completion");
    assert!(fish.contains("complete -c appliance "), "{fish}");

    for (installed, source) in [("README.md", "README.md"), ("config.md", "docs/config.md")] {
        assert_eq!(
            std::fs::read(at(&format!("/usr/local/share/doc/appliance/{installed}")))
                .expect("read an installed doc"),
            std::fs::read(root().join(source)).expect("read a doc"),
            "{installed}"
        );
    }
    check_examples(&installed, &at("/usr/local/share/doc/appliance/examples"));

    make("uninstall", &[("DESTDIR", dest.path())]);
    assert_eq!(
        files_under(dest.path()),
        BTreeSet::new(),
        "left by make uninstall"
    );
    assert!(!at("/usr/local/share/doc/appliance").exists());
}

#[test]
fn make_install_fills_in_the_directories_it_is_given() {
    let dest = tempfile::tempdir().expect("temp dir");
    let binary = appliance_bin();
    make(
        "install",
        &[
            ("DESTDIR", dest.path()),
            ("BINARY", binary.as_path()),
            ("PREFIX", Path::new("/opt/lb")),
            ("SYSCONFDIR", Path::new("/srv/etc")),
            ("UNITDIR", Path::new("/etc/systemd/system")),
        ],
    );
    assert_eq!(
        files_under(dest.path()),
        installed_files(
            "/opt/lb",
            "/etc/systemd/system",
            "/opt/lb/share/zsh/site-functions"
        )
    );
    let unit = std::fs::read_to_string(dest.path().join("etc/systemd/system/appliance.service"))
        .expect("read the unit");
    for line in [
        "ExecStart=/opt/lb/sbin/appliance run --config ${CONFIG} ",
        "ConditionPathExists=|/srv/etc/appliance/appliance.toml\n",
        "EnvironmentFile=-/srv/etc/default/appliance\n",
    ] {
        assert!(unit.contains(line), "no {line:?} in the unit:\n{unit}");
    }
}

/// The package `make deb` made (`make test` makes it first).
fn built_deb() -> PathBuf {
    let deb = root().join(format!("target/debian/appliance_{VERSION}_amd64.deb"));
    assert!(
        deb.is_file(),
        "{} is missing: run `make deb` (make test does)",
        deb.display()
    );
    deb
}

/// The static binary `make deb` built.
fn static_binary() -> PathBuf {
    let binary = root().join("target/x86_64-unknown-linux-gnu/release/appliance");
    assert!(
        binary.is_file(),
        "{} is missing: run `make deb` (make test does)",
        binary.display()
    );
    binary
}

fn dpkg_deb(args: &[&str], deb: &Path) -> String {
    let mut cmd = Command::new(require("dpkg-deb", "dpkg"));
    cmd.args(args).arg(deb);
    text(&run(&mut cmd).stdout)
}

/// The package's files, as `dpkg-deb --contents` lists them: path (without
/// the leading `.`) to permissions, owner and size.
fn deb_contents(deb: &Path) -> BTreeMap<String, (String, String, u64)> {
    dpkg_deb(&["--contents"], deb)
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(
                fields.len(),
                6,
                "an unexpected dpkg-deb --contents line: {line}"
            );
            let path = fields[5].trim_start_matches('.').to_string();
            let size = fields[2].parse().expect("a size");
            (path, (fields[0].to_string(), fields[1].to_string(), size))
        })
        .collect()
}

#[test]
fn the_deb_has_the_control_fields_and_files_a_bookworm_system_expects() {
    let deb = built_deb();
    let fields = dpkg_deb(&["--field"], &deb);
    let field = |name: &str| {
        fields
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{name}: ")))
            .map(str::to_string)
    };
    assert_eq!(field("Package").as_deref(), Some("appliance"), "{fields}");
    assert_eq!(field("Version").as_deref(), Some(VERSION), "{fields}");
    assert_eq!(field("Architecture").as_deref(), Some("amd64"), "{fields}");
    assert_eq!(field("Section").as_deref(), Some("net"), "{fields}");
    assert_eq!(field("Priority").as_deref(), Some("optional"), "{fields}");
    assert_eq!(field("Recommends").as_deref(), Some("ipvsadm"), "{fields}");
    for absent in ["Depends", "Pre-Depends", "Suggests", "Conflicts"] {
        assert_eq!(field(absent), None, "{fields}");
    }
    let maintainer = field("Maintainer").unwrap_or_default();
    assert!(
        maintainer.contains(" <") && maintainer.ends_with('>'),
        "{fields}"
    );
    assert!(
        field("Description").is_some_and(|d| d.contains("LVS director")),
        "{fields}"
    );

    let contents = deb_contents(&deb);
    let files: BTreeSet<String> = contents
        .iter()
        .filter(|(_, (perms, _, _))| perms.starts_with('-'))
        .map(|(path, _)| path.clone())
        .collect();
    let mut expected = installed_files(
        "/usr",
        "/lib/systemd/system",
        "/usr/share/zsh/vendor-completions",
    );
    expected.extend([
        "/usr/share/doc/appliance/copyright".to_string(),
        "/usr/share/doc/appliance/changelog.gz".to_string(),
        "/usr/share/lintian/overrides/appliance".to_string(),
    ]);
    assert_eq!(
        files, expected,
        "the package's files (a .deb older than the command line? run `make deb`)"
    );
    for (path, (perms, owner, _)) in &contents {
        assert_eq!(owner, "root/root", "{path}");
        assert!(!path.starts_with("/etc"), "the package ships {path}");
        let want = match perms.chars().next() {
            Some('d') => "drwxr-xr-x",
            _ if path == "/usr/sbin/appliance" => "-rwxr-xr-x",
            _ => "-rw-r--r--",
        };
        assert_eq!(perms, want, "{path}");
    }

    // Installed-Size as dpkg-gencontrol counts it: KiB per file rounded up,
    // 1 per directory (not the top one).
    let size: u64 = contents
        .iter()
        .filter(|(path, _)| path.as_str() != "/")
        .map(|(_, (perms, _, size))| {
            if perms.starts_with('-') {
                size.div_ceil(1024)
            } else {
                1
            }
        })
        .sum();
    assert_eq!(field("Installed-Size"), Some(size.to_string()), "{fields}");
}

#[test]
fn the_deb_installs_a_working_binary_unit_and_maintainer_scripts() {
    let deb = built_deb();
    let dir = tempfile::tempdir().expect("temp dir");
    let (data, control) = (dir.path().join("data"), dir.path().join("DEBIAN"));
    run(Command::new(require("dpkg-deb", "dpkg"))
        .arg("-x")
        .arg(&deb)
        .arg(&data));
    run(Command::new(require("dpkg-deb", "dpkg"))
        .arg("-e")
        .arg(&deb)
        .arg(&control));

    let binary = data.join("usr/sbin/appliance");
    let out = run(Command::new(&binary).arg("--version"));
    assert_eq!(text(&out.stdout), format!("appliance {VERSION}\n"));
    check_examples(&binary, &data.join("usr/share/doc/appliance/examples"));
    let unit = std::fs::read_to_string(data.join("lib/systemd/system/appliance.service"))
        .expect("read the unit");
    assert!(!unit.contains('@'), "{unit}");
    assert!(
        unit.contains("ExecStart=/usr/sbin/appliance run --config ${CONFIG} "),
        "{unit}"
    );
    assert!(
        unit.contains("ConditionPathExists=|/etc/appliance/appliance.toml\n"),
        "{unit}"
    );
    for page in man_page_files() {
        check_man_page(&data.join(format!("usr/share/man/man8/{page}")));
    }
    check_bash_completion(&data.join("usr/share/bash-completion/completions/appliance"));

    // DEBIAN/: no conffiles (nothing under /etc), md5sums for every file.
    let mut control_files: Vec<String> = std::fs::read_dir(&control)
        .expect("read DEBIAN")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    control_files.sort();
    assert_eq!(
        control_files,
        ["control", "md5sums", "postinst", "postrm", "prerm"]
    );
    let md5sums = std::fs::read_to_string(control.join("md5sums")).expect("read md5sums");
    let listed: BTreeSet<String> = md5sums
        .lines()
        .filter_map(|line| line.split_once("  "))
        .map(|(_, path)| format!("/{path}"))
        .collect();
    assert_eq!(listed, files_under(&data), "{md5sums}");
    run(Command::new("md5sum")
        .args(["--check", "--quiet"])
        .arg(control.join("md5sums"))
        .current_dir(&data));

    // The maintainer scripts: dh_installsystemd's, valid sh.
    let script = |name: &str| {
        let path = control.join(name);
        assert_eq!(mode(&path), 0o755, "{name}'s mode");
        run(Command::new("sh").arg("-n").arg(&path));
        let text = std::fs::read_to_string(&path).expect("read a maintainer script");
        assert!(text.starts_with("#!/bin/sh\n"), "{name}:\n{text}");
        text
    };
    let postinst = script("postinst");
    for line in [
        "deb-systemd-helper unmask 'appliance.service'",
        "deb-systemd-helper enable 'appliance.service'",
        "if [ -d /run/systemd/system ]; then",
        "systemctl --system daemon-reload",
        "deb-systemd-invoke $_dh_action 'appliance.service'",
    ] {
        assert!(
            postinst.contains(line),
            "no {line:?} in postinst:\n{postinst}"
        );
    }
    let prerm = script("prerm");
    assert!(
        prerm.contains("[ \"$1\" = remove ]")
            && prerm.contains("deb-systemd-invoke stop 'appliance.service'"),
        "{prerm}"
    );
    let postrm = script("postrm");
    for line in [
        "deb-systemd-helper mask 'appliance.service'",
        "deb-systemd-helper purge 'appliance.service'",
        "deb-systemd-helper unmask 'appliance.service'",
    ] {
        assert!(postrm.contains(line), "no {line:?} in postrm:\n{postrm}");
    }
}

#[test]
fn build_deb_gives_the_same_bytes_twice_and_prints_size_and_checksum() {
    // A copy: both builds pack the same bytes even if the binary is built
    // again meanwhile.
    let dir = tempfile::tempdir().expect("temp dir");
    let binary = dir.path().join("appliance");
    std::fs::copy(static_binary(), &binary).expect("copy the static binary");
    let build = |out: &Path| {
        let printed = run(Command::new(root().join("scripts/build-deb"))
            .arg("--binary")
            .arg(&binary)
            .arg("--out")
            .arg(out)
            .env_remove("MAKEFLAGS")
            .env_remove("MFLAGS")
            .env_remove("MAKELEVEL"));
        let deb = out.join(format!("appliance_{VERSION}_amd64.deb"));
        let bytes = std::fs::read(&deb).expect("read the package");
        (text(&printed.stdout), deb, bytes)
    };
    let (printed, deb, first) = build(&dir.path().join("first"));
    let (_, _, second) = build(&dir.path().join("second"));
    assert!(first == second, "two builds of the package differ");

    let sum = run(Command::new("sha256sum").arg(&deb)).stdout;
    let sum = text(&sum)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string();
    assert_eq!(
        printed,
        format!("{}  {} bytes  sha256 {sum}\n", deb.display(), first.len())
    );
}
