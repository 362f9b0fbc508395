//! A stop lets the notify programs it starts run to their end: an
//! instance's `notify_stop` that takes a second (removing a route, telling
//! a monitor) finishes after SIGTERM, as keepalived's does, instead of
//! being killed when the daemon exits.

use appliance_tests::daemon::Daemon;
use appliance_tests::netns::Lan;
use std::time::Duration;

const NET: u8 = 123;

#[test]
fn notify_stop_runs_to_its_end_when_the_daemon_stops() {
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("stopped");
    let mut lan = Lan::new().expect("lan");
    lan.add_host("d", &[&format!("10.{NET}.0.1/24")])
        .expect("host d");
    let config = format!(
        r#"
[global]
router_id = "d"

[[vrrp_instance]]
name = "VI_1"
state = "BACKUP"
interface = "eth0"
virtual_router_id = {NET}
priority = 100
advert_int = "1s"
notify_stop = {{ program = "/bin/sh", args = ["-c", "sleep 1; echo done > {}"] }}

[[vrrp_instance.virtual_ipaddress]]
address = "10.{NET}.0.100/24"
"#,
        record.display()
    );
    let mut d = Daemon::start_toml(lan.host("d"), &config).expect("d starts");
    std::thread::sleep(Duration::from_millis(500));
    let status = d.stop().expect("d stops");
    assert!(status.success(), "d exits cleanly: {status:?}\n{}", d.log());
    let written = std::fs::read_to_string(&record).unwrap_or_default();
    assert_eq!(
        written.trim(),
        "done",
        "notify_stop ran to its end before d exited:\n{}",
        d.log()
    );
}
