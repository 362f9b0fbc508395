//! The flashable image, booted from its disk (firmware, bootloader, kernel,
//! the appliance as PID 1) under qemu, as a user boots it. Needs `make
//! image` (make test runs it): target/image/appliance.img and .qcow2.
//!
//! The pair: two copies of the image, each with its own appliance.toml
//! written into the config partition, boot as master and backup with their
//! NICs on a netns bridge shared with two nginx real servers and a client.
//! The client's requests to the VIP alternate between the real servers
//! (LVS-NAT on the VMs' IPVS; the real servers route their replies back
//! through the VIP as in the demo); the master VM is powered off (qemu
//! killed) and the backup takes over and serves.

use appliance_tests::image::{Disk, Firmware, Machine, Nic};
use appliance_tests::netns::{Host, Lan};
use appliance_tests::web::{Nginx, curl};
use std::path::Path;
use std::time::{Duration, Instant};

const VIP: &str = "10.131.0.100";
const MASTER: &str = "10.131.0.2";
const BACKUP: &str = "10.131.0.3";
/// Power-on to the appliance's prompt under TCG, with room for a loaded
/// machine running two VMs at once.
const BOOT: Duration = Duration::from_secs(180);

fn director(name: &str, address: &str, state: &str, priority: u8) -> String {
    format!(
        r#"# {name}, booted from the image.
[network.sysctl]
"net.ipv4.ip_forward" = "1"
"net.ipv4.conf.all.send_redirects" = "0"
"net.ipv4.conf.eth0.send_redirects" = "0"

[[network.interface]]
name = "eth0"
address = ["{address}/24"]

[global]
router_id = "{name}"
vrrp_garp_master_delay = "1s"

[[vrrp_instance]]
name = "VI_1"
state = "{state}"
interface = "eth0"
virtual_router_id = 131
priority = {priority}
advert_int = "1s"
virtual_ipaddress = [{{ address = "{VIP}/24" }}]

[[virtual_server]]
service = {{ address = "{VIP}:80" }}
protocol = "TCP"
delay_loop = "2s"
lb_algo = "rr"
lb_kind = "NAT"

[[virtual_server.real_server]]
address = "10.131.0.11:80"
check = [{{ type = "TCP_CHECK", connect_timeout = "2s" }}]

[[virtual_server.real_server]]
address = "10.131.0.12:80"
check = [{{ type = "TCP_CHECK", connect_timeout = "2s" }}]
"#
    )
}

/// A real server of the LVS-NAT pair: nginx, its replies routed back
/// through the VIP (the demo's images/nginx/route-replies), except to the
/// directors' own addresses (their health checks).
fn real_server(host: &Host) -> Nginx {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../images/nginx/route-replies");
    let out = host
        .run("sh", &[script.to_str().unwrap(), VIP, MASTER, BACKUP])
        .expect("route-replies");
    assert!(out.status.success(), "route-replies: {out:?}");
    Nginx::start(host).expect("nginx")
}

/// `count` requests to the VIP from the client, each retried for up to
/// `within` until it is answered: the answers.
fn answers(client: &Host, count: usize, within: Duration) -> Vec<String> {
    (0..count)
        .map(|i| {
            let deadline = Instant::now() + within;
            loop {
                if let Some(body) =
                    curl(client, &format!("http://{VIP}/"), Duration::from_secs(2)).expect("curl")
                {
                    return body.trim().to_string();
                }
                assert!(
                    Instant::now() < deadline,
                    "request {i} to the VIP unanswered for {within:?}"
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        })
        .collect()
}

fn assert_round_robin(answers: &[String]) {
    assert!(
        answers.iter().all(|a| a == "rs1" || a == "rs2"),
        "answers from elsewhere: {answers:?}"
    );
    for pair in answers.windows(2) {
        assert_ne!(pair[0], pair[1], "not round robin: {answers:?}");
    }
}

fn machine(lan: &Lan, name: &str, disk: &Disk, mac: &str) -> Machine {
    let tap = format!("tap-{name}");
    lan.add_tap(&tap).expect("tap");
    let nic = Nic {
        netns: lan.switch_netns().to_string(),
        tap,
        mac: mac.to_string(),
    };
    Machine::boot(name, disk.path(), "raw", Firmware::Bios, Some(&nic), false).expect("qemu")
}

#[test]
fn two_images_boot_from_disk_serve_the_vip_and_fail_over_when_the_master_powers_off() {
    let mut lan = Lan::new().expect("lan");
    lan.add_host("rs1", &["10.131.0.11/24"]).expect("rs1");
    lan.add_host("rs2", &["10.131.0.12/24"]).expect("rs2");
    lan.add_host("client", &["10.131.0.50/24"]).expect("client");
    let _rs1 = real_server(lan.host("rs1"));
    let _rs2 = real_server(lan.host("rs2"));

    let master_disk = Disk::copy_of_image().expect("master's disk");
    master_disk
        .write_config("appliance.toml", &director("master", MASTER, "MASTER", 150))
        .expect("master's config");
    let backup_disk = Disk::copy_of_image().expect("backup's disk");
    backup_disk
        .write_config("appliance.toml", &director("backup", BACKUP, "BACKUP", 100))
        .expect("backup's config");

    let mut master = machine(&lan, "master", &master_disk, "52:54:00:13:10:02");
    let mut backup = machine(&lan, "backup", &backup_disk, "52:54:00:13:10:03");

    let to_master = master.wait_for("to=MASTER", BOOT).expect("master");
    eprintln!("boot time, power-on to MASTER (two VMs under TCG at once): {to_master:.1?}");
    backup
        .wait_for("appliance> ", BOOT)
        .expect("backup's prompt");
    backup
        .wait_for("to=BACKUP", BOOT)
        .expect("backup is BACKUP");

    // Both real servers pass their checks before the first request.
    let client = lan.host("client");
    let before = answers(client, 6, Duration::from_secs(30));
    assert_round_robin(&before);

    let status = master
        .command("status", Duration::from_secs(20))
        .expect("status");
    assert!(
        status.contains("VI_1") && status.contains("MASTER"),
        "{status}"
    );
    assert!(
        status.contains("10.131.0.11:80") && status.contains("10.131.0.12:80"),
        "{status}"
    );

    // The log reaches the config partition within seconds (init shortens
    // the kernel's writeback delay): what an operator finds on the disk of
    // a director whose plug was pulled.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !master_disk
        .read_config_file("log/appliance.log")
        .is_ok_and(|log| log.contains("to=MASTER"))
    {
        assert!(
            Instant::now() < deadline,
            "the master's log on its disk never showed MASTER"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    master.power_off();
    let from = backup.console().len();
    backup
        .wait_for_from("to=MASTER", from, Duration::from_secs(15))
        .expect("the backup takes over");
    let after = answers(client, 6, Duration::from_secs(15));
    assert_round_robin(&after);

    let status = backup
        .command("status", Duration::from_secs(20))
        .expect("status");
    assert!(status.contains("MASTER"), "{status}");

    // What the master left on its config partition: its log and timeline,
    // with its rise to MASTER.
    let log = master_disk
        .read_config_file("log/appliance.log")
        .expect("the master's log");
    assert!(log.contains("config valid"), "{log}");
    assert!(log.contains("to=MASTER"), "{log}");
    let timeline = master_disk
        .read_config_file("log/timeline.jsonl")
        .expect("the master's timeline");
    assert!(
        timeline
            .lines()
            .any(|l| l.contains("MASTER") && l.contains("\"wall\"")),
        "{timeline}"
    );
}

#[test]
fn a_keepalived_conf_runs_with_the_network_from_network_toml_beside_it() {
    let mut lan = Lan::new().expect("lan");
    lan.add_host("client", &["10.131.0.50/24"]).expect("client");
    let disk = Disk::copy_of_image().expect("disk");
    disk.write_config(
        "keepalived.conf",
        &format!(
            "vrrp_instance VI_1 {{\n\
             \x20   state MASTER\n\
             \x20   interface eth0\n\
             \x20   virtual_router_id 133\n\
             \x20   priority 150\n\
             \x20   advert_int 1\n\
             \x20   virtual_ipaddress {{\n\
             \x20       {VIP}/24\n\
             \x20   }}\n\
             }}\n"
        ),
    )
    .expect("keepalived.conf");
    disk.write_config(
        "network.toml",
        &format!("[[network.interface]]\nname = \"eth0\"\naddress = [\"{MASTER}/24\"]\n"),
    )
    .expect("network.toml");

    let vm = machine(&lan, "keepalived", &disk, "52:54:00:13:10:07");
    vm.wait_for("network applied", BOOT)
        .expect("network.toml applied");
    vm.wait_for("to=MASTER", BOOT).expect("MASTER");
    let client = lan.host("client");
    for address in [MASTER, VIP] {
        let deadline = Instant::now() + Duration::from_secs(20);
        while client
            .run("busybox", &["ping", "-c", "1", "-W", "1", address])
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "no answer from {address}:\n{}",
                vm.console()
            );
        }
    }
}

#[test]
fn a_daemon_that_dies_is_started_again() {
    let mut lan = Lan::new().expect("lan");
    lan.add_host("client", &["10.131.0.50/24"]).expect("client");
    let disk = Disk::copy_of_image().expect("disk");
    // The daemon dies as a crash or the OOM killer would end it (SIGKILL):
    // its own notify_master kills it each time it becomes MASTER.
    let config = director("master", MASTER, "MASTER", 150).replace(
        "advert_int = \"1s\"",
        "advert_int = \"1s\"\nnotify_master = { program = \"/bin/busybox\", args = [\"killall\", \"-9\", \"appliance\"] }",
    );
    disk.write_config("appliance.toml", &config)
        .expect("config");

    let vm = machine(&lan, "restart", &disk, "52:54:00:13:10:08");
    let (_, first) = vm
        .wait_for_from("to=MASTER", 0, BOOT)
        .expect("MASTER the first time");
    let (_, died) = vm
        .wait_for_from(
            "appliance exited exit=signal SIGKILL",
            first,
            Duration::from_secs(20),
        )
        .expect("init sees the daemon die");
    let (_, restarted) = vm
        .wait_for_from("appliance started", died, Duration::from_secs(20))
        .expect("init starts it again");
    vm.wait_for_from("to=MASTER", restarted, Duration::from_secs(30))
        .expect("MASTER again");
}

#[test]
fn the_rescue_boot_option_gives_a_shell_then_boots_on() {
    let lan = Lan::new().expect("lan");
    // No config at all: init still brings the NIC up.
    let disk = Disk::copy_of_image().expect("disk");
    let mut vm = machine(&lan, "rescue", &disk, "52:54:00:13:10:06");
    // syslinux's prompt waits a second for a choice.
    vm.wait_for("boot: ", BOOT).expect("the boot prompt");
    vm.send("rescue").expect("choose rescue");
    vm.wait_for("rescue shell; exit it to boot on", BOOT)
        .expect("the rescue shell starts");
    std::thread::sleep(Duration::from_secs(1));
    let from = vm.console().len();
    vm.send(
        "cat /proc/cmdline /sys/class/net/eth0/flags; /bin/appliance --version; ls /config; exit",
    )
    .expect("shell commands");
    let (_, at) = vm
        .wait_for_from("example.toml", from, Duration::from_secs(30))
        .expect("the shell ran the commands");
    let shown = vm.console()[from..at].to_string();
    assert!(shown.contains("appliance.rescue"), "{shown}");
    // IFF_UP | IFF_BROADCAST | IFF_MULTICAST: eth0 is up.
    assert!(shown.contains("0x1003"), "{shown}");
    assert!(
        shown.contains(concat!("appliance ", env!("CARGO_PKG_VERSION"))),
        "{shown}"
    );
    vm.wait_for_from("appliance> ", at, BOOT)
        .expect("the boot goes on after the shell");
}

#[test]
fn an_invalid_config_is_reported_on_the_console_and_the_network_stays_up() {
    let mut lan = Lan::new().expect("lan");
    lan.add_host("client", &["10.131.0.50/24"]).expect("client");
    let disk = Disk::copy_of_image().expect("disk");
    // Priority 300 is out of range; the [network] part is fine.
    let config =
        director("master", MASTER, "MASTER", 150).replace("priority = 150", "priority = 300");
    disk.write_config("appliance.toml", &config)
        .expect("config");

    let mut vm = machine(&lan, "invalid", &disk, "52:54:00:13:10:09");
    vm.wait_for("/config/appliance.toml:", BOOT)
        .expect("the problem on the console");
    vm.wait_for("appliance> ", BOOT).expect("the prompt");
    let console = vm.console();
    let problem = console
        .lines()
        .find(|l| l.contains("/config/appliance.toml:"))
        .unwrap_or_default();
    assert!(problem.contains("priority"), "{problem}");
    assert!(
        !console.contains("to=MASTER"),
        "an invalid config was applied:\n{console}"
    );

    // The network part was applied: the appliance answers at its address.
    let client = lan.host("client");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // busybox's ping (iputils' is not installed); an error is no answer.
        if client
            .run("busybox", &["ping", "-c", "1", "-W", "1", MASTER])
            .is_ok()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no answer from {MASTER}:\n{}",
            vm.console()
        );
    }

    let check = vm
        .command("check-config", Duration::from_secs(20))
        .expect("check-config");
    assert!(check.contains("priority"), "{check}");
}

#[test]
fn the_qcow2_image_boots_under_uefi() {
    let qcow2 = appliance_tests::image::built("appliance.qcow2").expect("image");
    let mut vm = Machine::boot("uefi", &qcow2, "qcow2", Firmware::Uefi, None, true).expect("qemu");
    vm.wait_for("init: config partition", BOOT)
        .expect("the config partition");
    vm.wait_for("appliance> ", BOOT).expect("the prompt");
    let help = vm.command("help", Duration::from_secs(20)).expect("help");
    assert!(help.contains("status"), "{help}");
}
