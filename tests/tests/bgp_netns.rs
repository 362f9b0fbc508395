//! Scale-out with BGP on the host's kernel, in network namespaces: three
//! directors (the nftables dataplane, `mh`) announce one anycast VIP to
//! an FRR router, which spreads the client's flows over them by ECMP
//! (layer-4 hash); four real servers behind them (busybox httpd naming
//! itself). The directors run the daemon with `[bgp]`.
//!
//! ```text
//!  client 10.169.1.50 ── router 10.169.1.1 / 10.169.0.1 (FRR, AS 65000)
//!                           │ ECMP to 10.169.100.100/32
//!          d1 10.169.0.11, d2 .12, d3 .13 (AS 65001) ── rs1..rs4 .21-.24
//! ```
//! (one bridge, two subnets: the router forwards between them.)
//!
//! What it shows: each director is a next hop while it runs and can
//! serve; a flow reaches the same real server whichever director the
//! router picks, before and after one dies (`mh` on every director); a
//! killed director is withdrawn at once (its session's socket closes), a
//! stopped one says Cease first, a director with no real server left
//! withdraws and announces again when one is back, and one cut off is
//! withdrawn by the router's hold timer.

use appliance_tests::daemon::Daemon;
use appliance_tests::frr::Router;
use appliance_tests::netns::{Host, Lan};
use appliance_tests::web::{self, Httpd};
use std::collections::BTreeMap;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

const VIP: &str = "10.169.100.100";
const CLIENT: &str = "10.169.1.50";
const DIRECTORS: [(&str, &str); 3] = [
    ("d1", "10.169.0.11"),
    ("d2", "10.169.0.12"),
    ("d3", "10.169.0.13"),
];
const SERVERS: [(&str, &str); 4] = [
    ("rs1", "10.169.0.21"),
    ("rs2", "10.169.0.22"),
    ("rs3", "10.169.0.23"),
    ("rs4", "10.169.0.24"),
];
/// The client's source ports: one flow each.
const FLOWS: std::ops::Range<u16> = 22000..22120;

fn router_conf() -> String {
    let neighbors: String = DIRECTORS
        .iter()
        .map(|(_, ip)| format!(" neighbor {ip} remote-as 65001\n"))
        .collect();
    // A short hold time on the router's side (the session takes the lower
    // one): a director cut off goes within 3 s.
    format!(
        "hostname router\nlog stdout\n\
         router bgp 65000\n bgp router-id 10.169.0.1\n no bgp ebgp-requires-policy\n\
         timers bgp 1 3\n{neighbors}\
         address-family ipv4 unicast\n  maximum-paths 8\n exit-address-family\n"
    )
}

fn director_conf(address: &str) -> String {
    let servers: String = SERVERS
        .iter()
        .map(|(_, ip)| {
            format!(
                "[[virtual_server.real_server]]\naddress = \"{ip}:8080\"\n\n\
                 [[virtual_server.real_server.check]]\ntype = \"TCP_CHECK\"\n\
                 connect_timeout = \"2s\"\nretry = 2\ndelay_before_retry = \"1s\"\n\n"
            )
        })
        .collect();
    format!(
        "[global]\nrouter_id = \"{address}\"\ndataplane = \"nftables\"\n\n\
         [bgp]\nlocal_as = 65001\nrouter_id = \"{address}\"\nconnect_retry = \"1s\"\n\
         announce = [\"{VIP}/32\"]\n\n\
         [[bgp.peer]]\naddress = \"10.169.0.1\"\nremote_as = 65000\n\n\
         [[virtual_server]]\nservice = {{ address = \"{VIP}:80\" }}\ndelay_loop = \"1s\"\n\
         lb_algo = \"mh\"\nsched_flags = {{ port = true }}\nmasquerade = true\n\n{servers}"
    )
}

/// The directors the router's kernel sends `vip` to.
fn next_hops(router: &Host, vip: &str) -> Vec<String> {
    let out = router
        .ip(&["route", "show", &format!("{vip}/32")])
        .expect("ip route");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut hops: Vec<String> = text
        .split_whitespace()
        .collect::<Vec<_>>()
        .windows(2)
        .filter(|w| w[0] == "via")
        .map(|w| w[1].to_owned())
        .collect();
    hops.sort();
    hops
}

/// Waits until the router sends `vip` to exactly `want`; returns how
/// long that took.
fn wait_hops(router: &Host, vip: &str, want: &[&str], within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let hops = next_hops(router, vip);
        if hops == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "the router's next hops for {vip} are {hops:?}, not {want:?}, after {within:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_next_hops(router: &Host, want: &[&str], within: Duration) -> Duration {
    wait_hops(router, VIP, want, within)
}

/// The real server each flow reaches: one `GET /` from each of the
/// client's source ports.
fn answers(client: &Host) -> BTreeMap<u16, String> {
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
                    let remote: SocketAddr = format!("{VIP}:80").parse().unwrap();
                    socket
                        .connect_timeout(&remote.into(), Duration::from_secs(5))
                        .unwrap_or_else(|e| panic!("flow {port}: {e}"));
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

/// The director the router's hash picks for each flow.
fn routed(router: &Host) -> BTreeMap<u16, String> {
    FLOWS
        .map(|port| {
            let out = router
                .ip(&[
                    "route",
                    "get",
                    VIP,
                    "from",
                    CLIENT,
                    "iif",
                    "eth0",
                    "ipproto",
                    "tcp",
                    "sport",
                    &port.to_string(),
                    "dport",
                    "80",
                ])
                .expect("ip route get");
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let via = text
                .split_whitespace()
                .skip_while(|w| *w != "via")
                .nth(1)
                .unwrap_or_else(|| panic!("no next hop in {text:?}"))
                .to_owned();
            (port, via)
        })
        .collect()
}

/// What each running director's checker thinks of the real servers, for
/// a failure's message.
fn health(lan: &Lan, daemons: &BTreeMap<&str, Daemon>) -> String {
    let mut text = String::new();
    for (name, daemon) in daemons {
        if let Ok(status) = daemon.status(lan.host(name)) {
            for vs in &status.virtual_servers {
                for rs in &vs.real_servers {
                    text += &format!("{name}: {} alive={}\n", rs.address, rs.alive);
                }
            }
        }
    }
    text
}

fn servers(lan: &Lan) -> Vec<Httpd> {
    SERVERS
        .iter()
        .map(|(name, _)| Httpd::start(lan.host(name), 8080).expect("busybox httpd"))
        .collect()
}

/// The client's packets reach the router with the hash its TCP socket
/// gave them (one kernel: a veth keeps skb->hash), which the router's
/// multipath takes instead of hashing the ports, and TCP draws a new one on
/// a retransmission timeout or a duplicate segment: a flow would hop to
/// another director with no route change. A router across a wire hashes
/// the 5-tuple, a fixed choice per flow; so is a hash never redrawn.
fn fixed_flow_hash(lan: &Lan) {
    lan.host("client")
        .sysctl("net.core.txrehash", "0")
        .expect("client sysctl");
}

#[test]
fn directors_announce_the_vip_while_they_can_serve_it_and_flows_keep_their_real_server() {
    let mut lan = Lan::new().expect("lan");
    lan.add_host("router", &["10.169.0.1/24", "10.169.1.1/24"])
        .expect("router");
    for (name, ip) in DIRECTORS.iter().chain(&SERVERS) {
        lan.add_host(name, &[&format!("{ip}/24")]).expect("host");
    }
    lan.add_host("client", &[&format!("{CLIENT}/24")])
        .expect("client");
    let router = lan.host("router");
    for (key, value) in [
        ("net.ipv4.ip_forward", "1"),
        ("net.ipv4.conf.all.send_redirects", "0"),
        ("net.ipv4.conf.eth0.send_redirects", "0"),
        // ECMP by the flow's ports too, not the addresses alone.
        ("net.ipv4.fib_multipath_hash_policy", "1"),
    ] {
        router.sysctl(key, value).expect("router sysctl");
    }
    for (name, _) in DIRECTORS {
        let host = lan.host(name);
        host.sysctl("net.ipv4.ip_forward", "1").expect("ip_forward");
        host.ip(&["route", "add", "10.169.1.0/24", "via", "10.169.0.1"])
            .expect("route to the clients");
    }
    lan.host("client")
        .ip(&["route", "add", "10.169.100.0/24", "via", "10.169.1.1"])
        .expect("route to the VIPs");
    fixed_flow_hash(&lan);
    let mut httpds = servers(&lan);
    let frr = Router::start(router, &router_conf()).expect("FRR");

    let mut daemons: BTreeMap<&str, Daemon> = DIRECTORS
        .iter()
        .map(|(name, ip)| {
            let daemon = Daemon::start_toml_without_vrrp(lan.host(name), &director_conf(ip))
                .expect("director starts");
            (*name, daemon)
        })
        .collect();
    wait_next_hops(
        router,
        &["10.169.0.11", "10.169.0.12", "10.169.0.13"],
        Duration::from_secs(30),
    );
    let status = daemons["d1"].status(lan.host("d1")).expect("status");
    let [peer] = &status.bgp_peers[..] else {
        panic!("{:?}", status.bgp_peers);
    };
    assert_eq!(peer.state, "established");
    assert_eq!(peer.advertised, vec![format!("{VIP}/32").parse().unwrap()]);
    let summary = frr
        .vtysh(router, "show bgp ipv4 unicast summary")
        .expect("vtysh");
    assert_eq!(
        summary.matches("65001").count(),
        3,
        "three sessions from AS 65001:\n{summary}"
    );

    // Every director carries some of the flows, and each flow reaches the
    // real server the Maglev table gives it, whichever director that is.
    let client = lan.host("client");
    let via = routed(router);
    for (_, ip) in DIRECTORS {
        let carried = via.values().filter(|v| *v == ip).count();
        assert!(
            carried >= 15,
            "{ip} carries {carried} of {} flows",
            FLOWS.len()
        );
    }
    let before = answers(client);

    // d2 dies: its session's socket closes with it, and the router drops
    // it at once; its flows go to d1 and d3 and reach the same servers.
    daemons.get_mut("d2").unwrap().kill().expect("kill d2");
    let took = wait_next_hops(
        router,
        &["10.169.0.11", "10.169.0.13"],
        Duration::from_secs(2),
    );
    eprintln!("killed director withdrawn in {took:?}");
    let moved: Vec<u16> = via
        .iter()
        .filter(|(_, v)| *v == "10.169.0.12")
        .map(|(port, _)| *port)
        .collect();
    assert!(!moved.is_empty());
    assert_eq!(
        answers(client),
        before,
        "a flow changed real server\n{}",
        health(&lan, &daemons)
    );

    // d3 stops: it withdraws and says goodbye (Cease) before it exits.
    daemons.get_mut("d3").unwrap().stop().expect("stop d3");
    wait_next_hops(router, &["10.169.0.11"], Duration::from_secs(2));
    let neighbor = frr
        .vtysh(router, "show bgp neighbors 10.169.0.13")
        .expect("vtysh");
    assert!(
        neighbor.contains("Administrative Shutdown"),
        "d3 did not say Cease:\n{neighbor}"
    );
    assert!(daemons["d3"].log().contains("BGP speaker stopped"));

    // No real server left: d1 can serve nothing and withdraws; one back,
    // it announces again.
    httpds.clear();
    wait_next_hops(router, &[], Duration::from_secs(15));
    let status = daemons["d1"].status(lan.host("d1")).expect("status");
    assert_eq!(status.bgp_peers[0].state, "established");
    assert!(status.bgp_peers[0].advertised.is_empty());
    httpds = servers(&lan);
    wait_next_hops(router, &["10.169.0.11"], Duration::from_secs(15));
    // All four back in d1's table before the flows are compared (the
    // route came back with the first).
    let start = Instant::now();
    while health(&lan, &daemons).matches("alive=true").count() < SERVERS.len() {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "{}",
            health(&lan, &daemons)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        answers(client),
        before,
        "a flow changed real server\n{}",
        health(&lan, &daemons)
    );

    // d1 is cut off without a word: the router's hold timer (3 s)
    // withdraws it.
    lan.host("d1").cut_link().expect("cut d1");
    let took = wait_next_hops(router, &[], Duration::from_secs(6));
    eprintln!("cut-off director withdrawn in {took:?}");
    drop(httpds);
}

/// One director, two VIPs: a reload that changes `announce` alone keeps
/// the session (the router counts one connection) and changes the routes;
/// one that changes the session's settings starts it again; one without
/// `[bgp]` withdraws everything.
#[test]
fn a_reload_changes_what_is_announced_and_restarts_the_session_only_when_its_settings_change() {
    const VIPS: [&str; 2] = ["10.170.100.100", "10.170.100.101"];
    let mut lan = Lan::new().expect("lan");
    lan.add_host("router", &["10.170.0.1/24"]).expect("router");
    lan.add_host("d1", &["10.170.0.11/24"]).expect("d1");
    lan.add_host("rs1", &["10.170.0.21/24"]).expect("rs1");
    let router = lan.host("router");
    let _httpd = Httpd::start(lan.host("rs1"), 8080).expect("busybox httpd");
    let frr = Router::start(
        router,
        "hostname router\nlog stdout\nrouter bgp 65000\n bgp router-id 10.170.0.1\n\
         no bgp ebgp-requires-policy\n neighbor 10.170.0.11 remote-as 65001\n",
    )
    .expect("FRR");
    let config = |announce: &[&str], hold_time: u16| -> String {
        let services: String = VIPS
            .iter()
            .map(|vip| {
                format!(
                    "[[virtual_server]]\nservice = {{ address = \"{vip}:80\" }}\nlb_algo = \"mh\"\n\
                     masquerade = true\n\n[[virtual_server.real_server]]\naddress = \"10.170.0.21:8080\"\n\n"
                )
            })
            .collect();
        let bgp = if announce.is_empty() {
            String::new()
        } else {
            let prefixes: Vec<String> = announce.iter().map(|v| format!("\"{v}/32\"")).collect();
            format!(
                "[bgp]\nlocal_as = 65001\nrouter_id = \"10.170.0.11\"\nhold_time = {hold_time}\n\
                 connect_retry = \"1s\"\nannounce = [{}]\n\n\
                 [[bgp.peer]]\naddress = \"10.170.0.1\"\nremote_as = 65000\n\n",
                prefixes.join(", ")
            )
        };
        format!("[global]\nrouter_id = \"d1\"\ndataplane = \"nftables\"\n\n{bgp}{services}")
    };
    let mut d1 =
        Daemon::start_toml_without_vrrp(lan.host("d1"), &config(&VIPS[..1], 9)).expect("d1 starts");
    let hops = |vip: &str, want: &[&str]| {
        wait_hops(router, vip, want, Duration::from_secs(15));
    };
    hops(VIPS[0], &["10.170.0.11"]);
    assert_eq!(next_hops(router, VIPS[1]), Vec::<String>::new());
    let established = || {
        frr.vtysh(router, "show bgp neighbors 10.170.0.11")
            .expect("vtysh")
            .lines()
            .find(|l| l.contains("Connections established"))
            .map(str::trim)
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(established(), "Connections established 1; dropped 0");

    let reload = |d1: &mut Daemon, text: &str, needle: &str| {
        d1.write_config(text).expect("config");
        d1.signal("HUP").expect("SIGHUP");
        d1.wait_log(needle, Duration::from_secs(10)).expect(needle);
    };
    reload(
        &mut d1,
        &config(&VIPS, 9),
        "reload: BGP announcements changed",
    );
    hops(VIPS[1], &["10.170.0.11"]);
    hops(VIPS[0], &["10.170.0.11"]);
    assert_eq!(established(), "Connections established 1; dropped 0");

    reload(&mut d1, &config(&VIPS, 6), "reload: BGP sessions restarted");
    let start = Instant::now();
    while established() != "Connections established 2; dropped 1" {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "the session did not start again: {}",
            established()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    hops(VIPS[0], &["10.170.0.11"]);
    hops(VIPS[1], &["10.170.0.11"]);

    reload(&mut d1, &config(&[], 6), "reload: BGP speaker stopped");
    hops(VIPS[0], &[]);
    hops(VIPS[1], &[]);
    let socket = d1.socket_path();
    let refused = lan
        .host("d1")
        .run(
            appliance_tests::appliance_bin(),
            &["drain-director", "--socket", &socket.to_string_lossy()],
        )
        .expect_err("drain-director without [bgp]");
    assert!(
        refused.to_string().contains("no [bgp] in the config"),
        "{refused}"
    );
}

/// `appliance drain-director` on one of two directors under a steady
/// stream of requests: its route leaves the router at once, it stops
/// once its services see no more traffic, and no request fails from the
/// stop. The route change itself may break a request in flight at that
/// moment: on this dataplane (NAT with masquerade, conntrack) a
/// connection whose first packets went through the drained director and
/// whose next ones the router sends to the other breaks there, so a
/// failure is allowed only for a request begun before the router's route
/// was seen to change, and no more than two.
#[test]
fn drain_director_withdraws_waits_for_the_traffic_to_move_then_stops_losing_no_request_to_the_stop()
{
    const VIP: &str = "10.171.100.100";
    let mut lan = Lan::new().expect("lan");
    lan.add_host("router", &["10.171.0.1/24", "10.171.1.1/24"])
        .expect("router");
    for (name, ip) in [
        ("d1", "10.171.0.11"),
        ("d2", "10.171.0.12"),
        ("rs1", "10.171.0.21"),
        ("rs2", "10.171.0.22"),
    ] {
        lan.add_host(name, &[&format!("{ip}/24")]).expect("host");
    }
    lan.add_host("client", &["10.171.1.50/24"]).expect("client");
    let router = lan.host("router");
    for (key, value) in [
        ("net.ipv4.ip_forward", "1"),
        ("net.ipv4.conf.all.send_redirects", "0"),
        ("net.ipv4.conf.eth0.send_redirects", "0"),
        ("net.ipv4.fib_multipath_hash_policy", "1"),
    ] {
        router.sysctl(key, value).expect("router sysctl");
    }
    for name in ["d1", "d2"] {
        let host = lan.host(name);
        host.sysctl("net.ipv4.ip_forward", "1").expect("ip_forward");
        host.ip(&["route", "add", "10.171.1.0/24", "via", "10.171.0.1"])
            .expect("route to the clients");
    }
    lan.host("client")
        .ip(&["route", "add", "10.171.100.0/24", "via", "10.171.1.1"])
        .expect("route to the VIP");
    fixed_flow_hash(&lan);
    let _httpds: Vec<Httpd> = ["rs1", "rs2"]
        .iter()
        .map(|name| Httpd::start(lan.host(name), 8080).expect("busybox httpd"))
        .collect();
    let _frr = Router::start(
        router,
        "hostname router\nlog stdout\nrouter bgp 65000\n bgp router-id 10.171.0.1\n\
         no bgp ebgp-requires-policy\n timers bgp 1 3\n neighbor 10.171.0.11 remote-as 65001\n\
         neighbor 10.171.0.12 remote-as 65001\n address-family ipv4 unicast\n  maximum-paths 8\n\
         exit-address-family\n",
    )
    .expect("FRR");
    let config = |address: &str| {
        format!(
            "[global]\nrouter_id = \"{address}\"\ndataplane = \"nftables\"\n\n\
             [bgp]\nlocal_as = 65001\nrouter_id = \"{address}\"\nconnect_retry = \"1s\"\n\
             announce = [\"{VIP}/32\"]\n\n[[bgp.peer]]\naddress = \"10.171.0.1\"\nremote_as = 65000\n\n\
             [[virtual_server]]\nservice = {{ address = \"{VIP}:80\" }}\nlb_algo = \"mh\"\n\
             sched_flags = {{ port = true }}\nmasquerade = true\n\n\
             [[virtual_server.real_server]]\naddress = \"10.171.0.21:8080\"\n\n\
             [[virtual_server.real_server]]\naddress = \"10.171.0.22:8080\"\n"
        )
    };
    let mut d1 =
        Daemon::start_toml_without_vrrp(lan.host("d1"), &config("10.171.0.11")).expect("d1 starts");
    let _d2 =
        Daemon::start_toml_without_vrrp(lan.host("d2"), &config("10.171.0.12")).expect("d2 starts");
    wait_hops(
        router,
        VIP,
        &["10.171.0.11", "10.171.0.12"],
        Duration::from_secs(30),
    );

    // A request every 20 ms from a new client port, until told to stop.
    let running = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let still = running.clone();
    let client = lan
        .host("client")
        .enter_background(move || {
            let (mut done, mut failed) = (0u32, Vec::new());
            while still.load(std::sync::atomic::Ordering::Relaxed) {
                let begun = Instant::now();
                let remote: SocketAddr = format!("{VIP}:80").parse().unwrap();
                let answer = TcpStream::connect_timeout(&remote, Duration::from_secs(2))
                    .and_then(|mut stream| {
                        stream.set_read_timeout(Some(Duration::from_secs(2)))?;
                        stream.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
                        Ok(stream)
                    })
                    .map_err(|e| e.to_string())
                    .and_then(|stream| web::body(stream).map_err(|e| e.to_string()));
                match answer {
                    Ok(_) => done += 1,
                    Err(e) => failed.push((begun, e)),
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            (done, failed)
        })
        .expect("client");
    std::thread::sleep(Duration::from_secs(1));

    let socket = d1.socket_path();
    let d1_host = lan.host("d1");
    let drained = std::thread::scope(|scope| {
        let drain = scope.spawn(|| {
            d1_host
                .run(
                    appliance_tests::appliance_bin(),
                    &[
                        "drain-director",
                        "--timeout",
                        "30s",
                        "--socket",
                        &socket.to_string_lossy(),
                    ],
                )
                .expect("drain-director")
        });
        let took = wait_hops(router, VIP, &["10.171.0.12"], Duration::from_secs(2));
        let switched = Instant::now();
        eprintln!("drained director withdrawn in {took:?}");
        (drain.join().expect("drain-director thread"), switched)
    });
    let (drained, switched) = drained;
    let answer = String::from_utf8_lossy(&drained.stdout).into_owned();
    // The requests went to d2 once the router acted: d1's counters
    // stopped for 2 s.
    assert!(answer.starts_with("drained: no packet for 2s"), "{answer}");
    assert!(answer.trim_end().ends_with("; stopping"), "{answer}");
    assert!(d1.wait_exit().expect("d1 exits").success(), "{}", d1.log());
    assert!(d1.log().contains("director drained; stopping"));
    std::thread::sleep(Duration::from_secs(1));
    running.store(false, std::sync::atomic::Ordering::Relaxed);
    let (done, failed) = client.join().expect("client thread").expect("client");
    eprintln!("{answer}{done} requests during the drain, failed: {failed:?}");
    assert!(done > 50, "only {done} requests");
    let late: Vec<_> = failed
        .iter()
        .filter(|(begun, _)| *begun >= switched)
        .map(|(begun, e)| (begun.duration_since(switched), e))
        .collect();
    assert!(
        late.is_empty(),
        "requests begun after the router's switch failed (that long after it): {late:?}"
    );
    assert!(
        failed.len() <= 2,
        "more requests failed than were in flight at the switch: {failed:?}"
    );
}

/// IPv6 over an IPv6 session (MP-BGP), with VRRP beside it: the director
/// holds a router-facing address by VRRP and announces an anycast IPv6
/// VIP by BGP; the router's kernel routes the VIP to the director's
/// address and a client's request through it reaches the real server.
#[test]
fn an_ipv6_vip_is_announced_over_an_ipv6_session_beside_a_vrrp_instance() {
    const VIP: &str = "2001:db8:172::100";
    let mut lan = Lan::new().expect("lan");
    lan.add_host("router", &["fd00:172::1/64", "fd00:173::1/64"])
        .expect("router");
    lan.add_host("d1", &["10.172.0.11/24", "fd00:172::11/64"])
        .expect("d1");
    lan.add_host("rs1", &["fd00:172::21/64"]).expect("rs1");
    lan.add_host("client", &["fd00:173::50/64"])
        .expect("client");
    let router = lan.host("router");
    router
        .sysctl("net.ipv6.conf.all.forwarding", "1")
        .expect("forwarding");
    let d1 = lan.host("d1");
    d1.sysctl("net.ipv6.conf.all.forwarding", "1")
        .expect("forwarding");
    d1.ip(&["-6", "route", "add", "fd00:173::/64", "via", "fd00:172::1"])
        .expect("route to the clients");
    lan.host("client")
        .ip(&[
            "-6",
            "route",
            "add",
            "2001:db8:172::/64",
            "via",
            "fd00:173::1",
        ])
        .expect("route to the VIP");
    let _httpd = Httpd::start(lan.host("rs1"), 8080).expect("busybox httpd");
    let frr = Router::start(
        router,
        "hostname router\nlog stdout\nrouter bgp 65000\n bgp router-id 10.172.0.1\n\
         no bgp ebgp-requires-policy\n neighbor fd00:172::11 remote-as 65001\n\
         address-family ipv6 unicast\n  neighbor fd00:172::11 activate\n exit-address-family\n",
    )
    .expect("FRR");
    let config = format!(
        "[global]\nrouter_id = \"d1\"\ndataplane = \"nftables\"\n\n\
         [[vrrp_instance]]\nname = \"VI_1\"\nstate = \"MASTER\"\ninterface = \"eth0\"\n\
         virtual_router_id = 172\npriority = 100\nadvert_int = \"1s\"\n\n\
         [[vrrp_instance.virtual_ipaddress]]\naddress = \"10.172.0.10/24\"\n\n\
         [bgp]\nlocal_as = 65001\nrouter_id = \"10.172.0.11\"\nannounce = [\"{VIP}/128\"]\n\n\
         [[bgp.peer]]\naddress = \"fd00:172::1\"\nremote_as = 65000\n\n\
         [[virtual_server]]\nservice = {{ address = \"[{VIP}]:80\" }}\nlb_algo = \"mh\"\n\
         masquerade = true\n\n[[virtual_server.real_server]]\naddress = \"[fd00:172::21]:8080\"\n"
    );
    let daemon = Daemon::start_toml(d1, &config).expect("d1 starts");
    let start = Instant::now();
    loop {
        let out = router
            .ip(&["-6", "route", "show", &format!("{VIP}/128")])
            .expect("ip route");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.contains("via fd00:172::11") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no route to {VIP} via d1: {text:?}\n{}",
            frr.vtysh(router, "show bgp ipv6 unicast")
                .unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    d1.wait_address(
        "10.172.0.10".parse().unwrap(),
        true,
        Duration::from_secs(10),
    )
    .expect("the VRRP address on d1");
    let status = daemon.status(d1).expect("status");
    assert_eq!(status.instances[0].state.to_string(), "MASTER");
    assert_eq!(status.bgp_peers[0].state, "established");
    let answer = web::curl(
        lan.host("client"),
        &format!("http://[{VIP}]/"),
        Duration::from_secs(5),
    )
    .expect("curl")
    .expect("an answer through the IPv6 VIP");
    assert_eq!(answer.trim(), "rs1");
}
