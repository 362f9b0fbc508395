//! `[network]` in the appliance's config, in a network namespace: a
//! director whose eth0 is down and bare gets its link up, its MTU, its
//! address, a static route and its sysctls from the config alone, then
//! holds its VIP with VRRP over that address; the client reaches it. An
//! interface that does not exist stops the start, naming it.

use appliance::vrrp::machine::State;
use appliance_tests::daemon::{Daemon, refused_start};
use appliance_tests::netns::{Host, Lan};
use std::net::IpAddr;
use std::time::Duration;

const CONFIG: &str = r#"
[network.sysctl]
"net.ipv4.ip_forward" = "1"
"net.ipv4.conf.eth0.arp_ignore" = "1"

[[network.interface]]
name = "eth0"
address = ["10.120.0.2/24"]
mtu = 1400

[[network.route]]
destination = "10.121.0.0/16"
gateway = "10.120.0.1"

[[vrrp_instance]]
name = "VI_1"
state = "MASTER"
interface = "eth0"
virtual_router_id = 120
priority = 150
advert_int = "1s"
virtual_ipaddress = [{ address = "10.120.0.100/24" }]
"#;

fn output(host: &Host, program: &str, args: &[&str]) -> String {
    let out = host.run(program, args).expect(program);
    assert!(out.status.success(), "{program} {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_config_brings_up_the_directors_own_network() {
    let mut lan = Lan::new().expect("lan");
    lan.add_host("director", &[]).expect("director");
    lan.add_host("client", &["10.120.0.1/24"]).expect("client");
    let director = lan.host("director");
    director
        .ip(&["link", "set", "eth0", "down"])
        .expect("eth0 down");

    let mut daemon = Daemon::start_toml(director, CONFIG).expect("appliance run");
    daemon
        .wait_event(
            "the director becoming master",
            Duration::from_secs(10),
            |e| e.entered() == Some(State::Master),
        )
        .expect("master");

    let link = output(director, "ip", &["-o", "link", "show", "eth0"]);
    assert!(link.contains("mtu 1400") && link.contains(",UP"), "{link}");
    let addresses = output(director, "ip", &["-o", "-4", "addr", "show", "eth0"]);
    assert!(addresses.contains(" 10.120.0.2/24 "), "{addresses}");
    let routes = output(director, "ip", &["-4", "route", "show"]);
    assert!(
        routes.contains("10.121.0.0/16 via 10.120.0.1 dev eth0"),
        "{routes}"
    );
    let sysctl = |key: &str| {
        output(
            director,
            "cat",
            &[&format!("/proc/sys/{}", key.replace('.', "/"))],
        )
        .trim()
        .to_string()
    };
    assert_eq!(sysctl("net.ipv4.ip_forward"), "1");
    assert_eq!(sysctl("net.ipv4.conf.eth0.arp_ignore"), "1");
    // VRRP runs over the configured address: the client reaches the VIP.
    director
        .wait_address(
            "10.120.0.100".parse::<IpAddr>().unwrap(),
            true,
            Duration::from_secs(5),
        )
        .expect("the VIP on the director");
    let ping = lan
        .host("client")
        .run("busybox", &["ping", "-c", "1", "-W", "2", "10.120.0.100"])
        .expect("busybox ping (Debian package busybox)");
    assert!(ping.status.success(), "{ping:?}");
    daemon.stop().expect("stopping the daemon");
}

#[test]
fn an_interface_that_does_not_exist_stops_the_start_naming_it() {
    let mut lan = Lan::new().expect("lan");
    lan.add_host("director", &[]).expect("director");
    let director = lan.host("director");
    let refusal = refused_start(
        director,
        &CONFIG.replace("name = \"eth0\"", "name = \"eth9\""),
    )
    .expect("appliance run refuses to start");
    for said in [&refusal.stderr, &refusal.log] {
        assert!(
            said.contains("network: interface eth9: no such interface"),
            "{refusal:?}"
        );
    }
}
