//! Consistent hashing with the nftables dataplane (`lb_algo = "mh"`, a
//! Maglev table of 65537 slots), on the host's kernel in network
//! namespaces: two directors, each with its own VIP and the same four real
//! servers (busybox httpd answering their own name), and a client on one
//! LAN. `appliance dataplane apply` programs each director.
//!
//! What it shows: a flow (the client's address and source port, with
//! `mh-port`) reaches the same real server through either director, the
//! table being built from the servers alone; and a real server's removal
//! moves its own flows and almost no other.

use appliance_tests::appliance_bin;
use appliance_tests::netns::{Host, Lan};
use appliance_tests::web::{self, Httpd};
use std::collections::BTreeMap;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

const SERVERS: [&str; 4] = ["10.168.0.11", "10.168.0.12", "10.168.0.13", "10.168.0.14"];
const CLIENT: &str = "10.168.0.50";
/// The client's source ports: one flow each.
const FLOWS: std::ops::Range<u16> = 21000..21300;

fn config(vip: &str, servers: &[&str]) -> String {
    let servers: String = servers
        .iter()
        .map(|ip| format!("[[virtual_server.real_server]]\naddress = \"{ip}:8080\"\n\n"))
        .collect();
    format!(
        "[global]\ndataplane = \"nftables\"\n\n\
         [[virtual_server]]\nservice = {{ address = \"{vip}:80\" }}\nlb_algo = \"mh\"\n\
         sched_flags = {{ port = true }}\nmasquerade = true\n\n{servers}"
    )
}

/// Writes `toml` as `host`'s config and runs `appliance dataplane apply`
/// there; returns its report.
fn apply(host: &Host, dir: &Path, toml: &str) -> String {
    let config = dir.join(format!("{}.toml", host.name()));
    std::fs::write(&config, toml).expect("config");
    let state = dir.join(format!("{}.json", host.name()));
    let path = |p: &Path| p.to_str().expect("utf-8 path").to_owned();
    let out = host
        .run(
            appliance_bin(),
            &[
                "dataplane",
                "apply",
                "--config",
                &path(&config),
                "--state",
                &path(&state),
            ],
        )
        .expect("appliance dataplane apply");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The real server each flow reaches through `vip`: one `GET /` from each
/// of the client's source ports.
fn answers(client: &Host, vip: &'static str) -> BTreeMap<u16, String> {
    client
        .enter(move || {
            FLOWS
                .map(|port| {
                    let socket =
                        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
                            .expect("socket");
                    socket.set_reuse_address(true).expect("SO_REUSEADDR");
                    let local: SocketAddr = format!("{CLIENT}:{port}").parse().unwrap();
                    socket.bind(&local.into()).expect("bind the flow's port");
                    let remote: SocketAddr = format!("{vip}:80").parse().unwrap();
                    socket
                        .connect_timeout(&remote.into(), Duration::from_secs(5))
                        .unwrap_or_else(|e| panic!("flow {port} to {vip}: {e}"));
                    let mut stream = TcpStream::from(socket);
                    stream
                        .set_read_timeout(Some(Duration::from_secs(5)))
                        .expect("timeout");
                    stream
                        .write_all(b"GET / HTTP/1.0\r\n\r\n")
                        .expect("send request");
                    (port, web::body(stream).expect("an HTTP answer"))
                })
                .collect()
        })
        .expect("enter client")
}

#[test]
fn a_flow_reaches_the_same_server_through_any_director_and_only_a_removed_server_s_flows_move() {
    let mut lan = Lan::new().expect("lan");
    lan.add_host("d1", &["10.168.0.1/24", "10.168.0.100/24"])
        .expect("d1");
    lan.add_host("d2", &["10.168.0.2/24", "10.168.0.101/24"])
        .expect("d2");
    for (i, ip) in SERVERS.iter().enumerate() {
        let name = format!("rs{}", i + 1);
        lan.add_host(&name, &[&format!("{ip}/24")]).expect("rs");
    }
    lan.add_host("client", &[&format!("{CLIENT}/24")])
        .expect("client");
    for d in ["d1", "d2"] {
        let host = lan.host(d);
        host.sysctl("net.ipv4.ip_forward", "1").expect("ip_forward");
        for conf in ["all", "eth0"] {
            host.sysctl(&format!("net.ipv4.conf.{conf}.send_redirects"), "0")
                .expect("send_redirects");
        }
    }
    let _servers: Vec<Httpd> = (1..=SERVERS.len())
        .map(|i| Httpd::start(lan.host(&format!("rs{i}")), 8080).expect("busybox httpd"))
        .collect();
    let dir = tempfile::tempdir().expect("tempdir");

    // d2 gets its servers in another order: the table is built from the
    // servers in address order, whatever order the config lists them in.
    let mut reversed = SERVERS;
    reversed.reverse();
    let report = apply(
        lan.host("d1"),
        dir.path(),
        &config("10.168.0.100", &SERVERS),
    );
    assert!(report.starts_with("nftables: 5 change(s)"), "{report}");
    apply(
        lan.host("d2"),
        dir.path(),
        &config("10.168.0.101", &reversed),
    );

    let client = lan.host("client");
    let through_d1 = answers(client, "10.168.0.100");
    let through_d2 = answers(client, "10.168.0.101");
    assert_eq!(through_d1, through_d2, "the directors disagree");
    let mut shares: BTreeMap<&str, usize> = BTreeMap::new();
    for server in through_d1.values() {
        *shares.entry(server.as_str()).or_default() += 1;
    }
    // 300 flows over 4 servers: each gets some (75 expected).
    assert_eq!(shares.len(), 4, "{shares:?}");
    assert!(shares.values().all(|n| *n >= 40), "{shares:?}");

    // rs2 leaves d1: its flows go elsewhere, the others stay (Maglev moves
    // at most about 1 % more of the table).
    let without_rs2: Vec<&str> = SERVERS
        .iter()
        .copied()
        .filter(|s| *s != SERVERS[1])
        .collect();
    apply(
        lan.host("d1"),
        dir.path(),
        &config("10.168.0.100", &without_rs2),
    );
    let after = answers(client, "10.168.0.100");
    let mut moved_others = Vec::new();
    for (port, before) in &through_d1 {
        let now = &after[port];
        if before == "rs2" {
            assert_ne!(now, "rs2", "flow {port} still on the removed server");
        } else if now != before {
            moved_others.push((*port, before.clone(), now.clone()));
        }
    }
    assert!(
        moved_others.len() * 100 <= 3 * FLOWS.len(),
        "flows moved off servers that stayed: {moved_others:?}"
    );
}
