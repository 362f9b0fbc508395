//! Idle clients by the thousand cannot starve the director. A daemon held
//! to 512 file descriptors checks a live real server every second while
//! 1,500 idle TCP connections sit on its metrics endpoint and 1,500 idle
//! clients on its status socket: both serve a bounded number at once and
//! close the rest, so the daemon's descriptors stay few, the health check
//! keeps its server UP, and status answers once the idle clients are gone.

use appliance::timeline::EventKind;
use appliance_tests::daemon::Daemon;
use appliance_tests::netns::Lan;
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

const CONFIG: &str = r#"
[global]
router_id = "d"
dataplane = "nftables"
metrics_listen = "10.109.0.1:9100"

[[vrrp_instance]]
name = "VI_1"
state = "BACKUP"
interface = "eth0"
virtual_router_id = 109
priority = 150
advert_int = "1s"

[[vrrp_instance.virtual_ipaddress]]
address = "10.109.0.100/24"

[[virtual_server]]
lb_algo = "rr"
lb_kind = "NAT"
protocol = "TCP"
delay_loop = "1s"

[virtual_server.service]
address = "10.109.0.100:80"

[[virtual_server.real_server]]
address = "10.109.0.1:8080"
weight = 1
check = [{ type = "TCP_CHECK", connect_timeout = "1s" }]
"#;

const IDLE: usize = 1_500;

fn descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(Iterator::count)
        .unwrap_or(0)
}

#[test]
fn idle_clients_hold_no_descriptors_the_checks_need() {
    // This test holds 3,000 sockets itself.
    let (_, hard) =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap();
    nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, hard, hard).unwrap();
    let mut lan = Lan::new().expect("lan");
    lan.add_host("d", &["10.109.0.1/24"]).expect("host d");
    let d = lan.host("d");
    // The real server: a listening socket (the kernel completes the
    // checks' handshakes).
    let _real_server = d
        .enter(|| std::net::TcpListener::bind("10.109.0.1:8080"))
        .unwrap()
        .expect("real server listens");
    let daemon = Daemon::start_toml(d, CONFIG).expect("start d");
    let pid = daemon.pid().unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let limited = std::process::Command::new("prlimit")
        .args(["--pid", &pid.to_string(), "--nofile=512:512"])
        .status()
        .expect("prlimit (Debian package util-linux)");
    assert!(limited.success(), "prlimit --nofile=512:512");

    let tcp = d
        .enter(|| {
            (0..IDLE)
                .filter_map(|_| {
                    TcpStream::connect_timeout(
                        &"10.109.0.1:9100".parse().unwrap(),
                        Duration::from_millis(200),
                    )
                    .ok()
                })
                .collect::<Vec<_>>()
        })
        .unwrap();
    let unix: Vec<UnixStream> = (0..IDLE)
        .filter_map(|_| UnixStream::connect(daemon.socket_path()).ok())
        .collect();
    eprintln!(
        "idle clients connected: {} TCP, {} on the status socket",
        tcp.len(),
        unix.len()
    );
    let start = Instant::now();
    let mut most = 0;
    while start.elapsed() < Duration::from_secs(8) {
        most = most.max(descriptors(pid));
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(tcp);
    drop(unix);
    eprintln!("MEASURED descriptors of the daemon under the idle flood: at most {most}");
    assert!(
        most < 200,
        "the daemon held {most} descriptors for idle clients"
    );
    let down: Vec<_> = daemon
        .timeline()
        .unwrap()
        .into_iter()
        .filter(|e| matches!(e.event.kind, EventKind::RealServer { alive: false, .. }))
        .collect();
    assert!(down.is_empty(), "the real server was taken out: {down:?}");
    // The idle clients are gone: status answers again.
    let asked = Instant::now();
    loop {
        match appliance::daemon::status::query(&daemon.socket_path()) {
            Ok(status) => {
                assert_eq!(status.virtual_servers.len(), 1);
                break;
            }
            Err(e) => assert!(
                asked.elapsed() < Duration::from_secs(15),
                "status does not answer: {e}"
            ),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
