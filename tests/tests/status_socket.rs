//! The status socket tells the config's paths, addresses and real servers,
//! so it is not everyone's: mode 0600 (root and the daemon's user), or 0660
//! with `status_group`, whose members may read the status but not reload.
//! Each client's credentials are checked too, whatever the file's mode.

use appliance_tests::appliance_bin;
use appliance_tests::daemon::Daemon;
use appliance_tests::netns::{Host, Lan};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Output;

fn config(group: Option<&str>) -> String {
    let group = group.map_or(String::new(), |g| format!("status_group = \"{g}\"\n"));
    format!(
        r#"
[global]
router_id = "d"
{group}
[[vrrp_instance]]
name = "VI_1"
state = "BACKUP"
interface = "eth0"
virtual_router_id = 115
priority = 100
advert_int = "1s"

[[vrrp_instance.virtual_ipaddress]]
address = "10.115.0.100/24"
"#
    )
}

/// `appliance ARGS --socket SOCKET` as `nobody` with primary group
/// `group` and no other.
fn as_nobody(host: &Host, group: &str, daemon: &Daemon, command: &str) -> Output {
    let socket = daemon.socket_path();
    host.command_as("nobody", group, None, appliance_bin())
        .args([command, "--socket", socket.to_str().expect("utf-8 path")])
        .output()
        .expect("setpriv (Debian package util-linux)")
}

fn start(host: &Host, group: Option<&str>) -> Daemon {
    let daemon = Daemon::start_toml(host, &config(group)).expect("the daemon starts");
    // The daemon's directory is the test's (0700): let others reach the
    // socket, so only the socket's own mode and the credentials decide.
    let dir = daemon.socket_path().parent().unwrap().to_path_buf();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    daemon
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn the_socket_is_root_s_alone_without_a_status_group() {
    let mut lan = Lan::new().expect("lan");
    lan.add_host("d", &["10.115.0.1/24"]).expect("host d");
    let host = lan.host("d");
    let daemon = start(host, None);
    let meta = std::fs::metadata(daemon.socket_path()).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{meta:?}");
    let out = as_nobody(host, "nogroup", &daemon, "status");
    assert!(
        !out.status.success(),
        "nobody read the status: {}",
        text(&out)
    );
    assert!(text(&out).contains("permission denied"), "{}", text(&out));
}

#[test]
fn the_status_group_reads_the_status_and_no_one_else_does() {
    let mut lan = Lan::new().expect("lan");
    lan.add_host("d", &["10.116.0.1/24"]).expect("host d");
    let host = lan.host("d");
    let daemon = start(host, Some("nogroup"));
    let meta = std::fs::metadata(daemon.socket_path()).unwrap();
    let nogroup = nix::unistd::Group::from_name("nogroup")
        .unwrap()
        .expect("group nogroup");
    assert_eq!(meta.permissions().mode() & 0o777, 0o660, "{meta:?}");
    assert_eq!(meta.gid(), nogroup.gid.as_raw());
    let read = as_nobody(host, "nogroup", &daemon, "status");
    assert!(read.status.success(), "the group reads: {}", text(&read));
    assert!(text(&read).contains("VRRP VI_1"), "{}", text(&read));
    let reload = as_nobody(host, "nogroup", &daemon, "reload");
    assert!(
        !reload.status.success(),
        "the group reloaded: {}",
        text(&reload)
    );
    assert!(
        text(&reload).contains("reload refused"),
        "{}",
        text(&reload)
    );
    // Nor may it change a real server (refused before the daemon looks
    // for it).
    let socket = daemon.socket_path();
    let disable = host
        .command_as("nobody", "nogroup", None, appliance_bin())
        .args([
            "disable",
            "10.116.0.11:8080",
            "--socket",
            socket.to_str().expect("utf-8 path"),
        ])
        .output()
        .expect("setpriv (Debian package util-linux)");
    assert!(
        !disable.status.success(),
        "the group changed a real server: {}",
        text(&disable)
    );
    assert!(
        text(&disable).contains("change refused: only root or the daemon's user may ask"),
        "{}",
        text(&disable)
    );
    let other = as_nobody(host, "daemon", &daemon, "status");
    assert!(
        !other.status.success(),
        "another group read: {}",
        text(&other)
    );
    assert!(
        text(&other).contains("permission denied"),
        "{}",
        text(&other)
    );
}
