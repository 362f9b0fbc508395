//! The netns harness itself: hosts on a LAN talk, a cut link and a
//! partition stop them, restoring heals, and teardown leaves nothing.

use appliance_tests::netns::Lan;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

/// Whether `client` completes a TCP handshake with a listener on
/// `server` (a handshake needs packets both ways).
fn talks(lan: &Lan, server: &str, client: &str, addr: SocketAddr) -> bool {
    let listener = lan
        .host(server)
        .enter(move || TcpListener::bind(addr).expect("bind in server netns"))
        .expect("enter server netns");
    listener
        .set_nonblocking(true)
        .expect("non-blocking listener");
    let connected = lan
        .host(client)
        .enter(move || TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok())
        .expect("enter client netns");
    connected && listener.accept().is_ok()
}

#[test]
fn hosts_talk_links_cut_partitions_heal_and_teardown_is_complete() {
    let names: Vec<String>;
    {
        let mut lan = Lan::new().expect("lan");
        lan.add_host("a", &["10.98.0.1/24", "fd98::1/64"])
            .expect("host a");
        lan.add_host("b", &["10.98.0.2/24", "fd98::2/64"])
            .expect("host b");
        lan.add_host("c", &["10.98.0.3/24"]).expect("host c");
        names = ["a", "b", "c"]
            .iter()
            .map(|h| lan.host(h).netns().to_string())
            .collect();

        let v4: SocketAddr = "10.98.0.1:7000".parse().unwrap();
        let v6: SocketAddr = "[fd98::1]:7001".parse().unwrap();
        assert!(talks(&lan, "a", "b", v4), "b reaches a over IPv4");
        assert!(talks(&lan, "a", "b", v6), "b reaches a over IPv6");

        lan.host("a").cut_link().unwrap();
        assert!(!talks(&lan, "a", "b", v4), "a cut link stops traffic");
        lan.host("a").restore_link().unwrap();
        assert!(talks(&lan, "a", "b", v4), "restored link carries traffic");

        lan.partition(&[&["a"], &["b", "c"]]).unwrap();
        assert!(!talks(&lan, "a", "b", v4), "partition separates a from b");
        assert!(
            talks(&lan, "b", "c", "10.98.0.2:7002".parse().unwrap()),
            "b and c still talk"
        );
        lan.heal().unwrap();
        assert!(
            talks(&lan, "a", "b", v4),
            "healed partition carries traffic"
        );

        assert!(
            lan.host("a")
                .has_address("10.98.0.1".parse().unwrap())
                .unwrap()
        );
        let routes = lan.host("a").ip(&["route", "show", "default"]).unwrap();
        assert!(routes.stdout.is_empty(), "hosts have no default route");
    }
    let list = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    for name in names {
        assert!(
            !list.contains(&name),
            "{name} left behind after drop: {list}"
        );
    }
}

#[test]
fn a_panicking_test_still_kills_its_processes_and_deletes_its_namespaces() {
    let (tx, rx) = std::sync::mpsc::channel();
    let result = std::panic::catch_unwind(move || {
        let mut lan = Lan::new().expect("lan");
        lan.add_host("a", &["10.97.0.1/24"]).expect("host a");
        let host = lan.host("a");
        let sleeper = host
            .spawn(host.command("sleep").arg("600"))
            .expect("spawn sleep");
        tx.send((host.netns().to_string(), sleeper.id())).unwrap();
        panic!("the test fails here");
    });
    assert!(result.is_err(), "the closure panicked");
    let (netns, pid) = rx.recv().unwrap();
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "process {pid} outlived its test"
    );
    let list = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&list.stdout).contains(&netns),
        "{netns} outlived its test"
    );
}
