//! Health checks driving the nftables dataplane, in network namespaces: a
//! director running `appliance run` (one VRRP instance, master alone, and
//! a masquerading round-robin virtual server) in front of two nginx real
//! servers and a sorry server, and a client curling the VIP. Stopping nginx
//! on rs1 takes it out of the rotation within the configured check time;
//! starting it again brings round robin back; with every real server down
//! the sorry server answers. `appliance status --json` and the timeline
//! (snapshot of its order) witness each step, and so does the Prometheus
//! metrics endpoint, scraped from the client (and linted by Prometheus'
//! `promtool check metrics`). A reload with other virtual
//! servers reprograms the dataplane and restarts the checker on them, and
//! the reload metrics count it, then a rejected one.

use appliance::daemon::status::Status;
use appliance::timeline::EventKind;
use appliance::vrrp::machine::State;
use appliance_tests::appliance_bin;
use appliance_tests::daemon::{Daemon, refused_start};
use appliance_tests::netns::{Host, Lan};
use appliance_tests::timeline::{self, Entry};
use appliance_tests::web::{Nginx, curl};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

const VIP: &str = "10.110.0.100";
const RS1: &str = "10.110.0.11";
const RS2: &str = "10.110.0.12";
const SORRY: &str = "10.110.0.13";
const URL: &str = "http://10.110.0.100/";
const REQUEST_TIMEOUT: Duration = Duration::from_millis(500);
/// The director's metrics endpoint, on its LAN address.
const METRICS: &str = "http://10.110.0.1:9650/metrics";

/// The checks' timing as configured below: delay_loop 1s, connect_timeout
/// 1s, retry 1, delay_before_retry 1s.
const DELAY_LOOP: Duration = Duration::from_secs(1);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const DELAY_BEFORE_RETRY: Duration = Duration::from_secs(1);
/// Scheduling, reconcile and curl latency on a loaded test machine.
const SLACK: Duration = Duration::from_secs(2);

/// Longest time from a real server failing to its removal: the next run
/// is at most a delay_loop away, then each of 1 + retry attempts may take
/// the connect timeout, with delay_before_retry between them.
fn down_bound() -> Duration {
    DELAY_LOOP + CONNECT_TIMEOUT * 2 + DELAY_BEFORE_RETRY + SLACK
}

/// Longest time from a real server recovering to its return: one passing
/// run, at most a delay_loop away.
fn up_bound() -> Duration {
    DELAY_LOOP + CONNECT_TIMEOUT + SLACK
}

fn config() -> String {
    config_with(&[RS1, RS2])
}

fn config_with(real_servers: &[&str]) -> String {
    format!(
        "[global]\nrouter_id = \"director\"\ndataplane = \"nftables\"\n\
         metrics_listen = \"10.110.0.1:9650\"\n\n\
         [[vrrp_instance]]\nname = \"VI_1\"\nstate = \"BACKUP\"\ninterface = \"eth0\"\n\
         virtual_router_id = 110\npriority = 100\nadvert_int = \"1s\"\n\n\
         [[vrrp_instance.virtual_ipaddress]]\naddress = \"{VIP}/24\"\n\n\
         [[virtual_server]]\ndelay_loop = \"1s\"\nlb_algo = \"rr\"\nlb_kind = \"NAT\"\n\
         protocol = \"TCP\"\nmasquerade = true\nsorry_server = \"{SORRY}:80\"\n\n\
         [virtual_server.service]\naddress = \"{VIP}:80\"\n\n{}",
        real_servers
            .iter()
            .map(|rs| real_server(rs))
            .collect::<String>(),
    )
}

fn real_server(address: &str) -> String {
    format!(
        "[[virtual_server.real_server]]\naddress = \"{address}:80\"\nweight = 1\n\n\
         [[virtual_server.real_server.check]]\ntype = \"TCP_CHECK\"\nconnect_timeout = \"1s\"\n\
         retry = 1\ndelay_before_retry = \"1s\"\n\n"
    )
}

/// The director's metrics, scraped from `client`.
fn scrape(client: &Host) -> String {
    curl(client, METRICS, Duration::from_secs(5))
        .expect("running curl")
        .expect("scraping the metrics endpoint")
}

/// Prometheus' linter on a scrape: names, help and types as Prometheus'
/// conventions want them (`promtool check metrics`, which reads the text
/// format curl gets).
fn promtool_check(text: &str) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("promtool (package prometheus; make test installs it): {e}"));
    child
        .stdin
        .take()
        .expect("promtool's stdin")
        .write_all(text.as_bytes())
        .expect("writing the scrape to promtool");
    let out = child.wait_with_output().expect("promtool ends");
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics ({}): {}{}\n{text}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The value of the series `name{labels}` in a scrape, if it has one.
fn find_sample(text: &str, name: &str, labels: &str) -> Option<f64> {
    let prefix = if labels.is_empty() {
        format!("{name} ")
    } else {
        format!("{name}{{{labels}}} ")
    };
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.parse().ok())
}

/// The value of the series `name{labels}` in a scrape.
fn sample(text: &str, name: &str, labels: &str) -> f64 {
    find_sample(text, name, labels)
        .unwrap_or_else(|| panic!("no {name}{{{labels}}} in the scrape:\n{text}"))
}

/// A real server's `up` and `weight` series in a scrape.
fn scraped_real_server(text: &str, ip: &str) -> (f64, f64) {
    let labels = format!("service=\"TCP {VIP}:80\",real_server=\"{ip}:80\"");
    (
        sample(text, "appliance_real_server_up", &labels),
        sample(text, "appliance_real_server_weight", &labels),
    )
}

/// Sends the director, from `client`, a VRRPv2 advert for its VRID whose
/// interval (3 s) is not the instance's (1 s): it must drop it.
fn send_mismatched_advert(client: &Host) {
    client
        .enter(|| {
            let vip: std::net::Ipv4Addr = VIP.parse().unwrap();
            // v2 advertisement, VRID 110, priority 50, one address, no
            // authentication, interval 3 s; checksum over the packet.
            let mut packet = vec![0x21, 110, 50, 1, 0, 3, 0, 0];
            packet.extend(vip.octets());
            packet.extend([0; 8]);
            let sum = packet
                .chunks(2)
                .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
                .sum::<u32>();
            let folded = (sum & 0xffff) + (sum >> 16);
            let checksum = !(((folded & 0xffff) + (folded >> 16)) as u16);
            packet[6..8].copy_from_slice(&checksum.to_be_bytes());
            let socket = socket2::Socket::new(
                socket2::Domain::IPV4,
                socket2::Type::RAW,
                Some(socket2::Protocol::from(112)),
            )?;
            socket.set_multicast_ttl_v4(255)?;
            socket.set_multicast_if_v4(&"10.110.0.50".parse().unwrap())?;
            let group = SocketAddr::new("224.0.0.18".parse().unwrap(), 0);
            socket.send_to(&packet, &group.into()).map(drop)
        })
        .expect("entering the client")
        .expect("sending the advert");
}

fn addr(ip: &str) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), 80)
}

/// `n` answers through the VIP, one connection each (`None`: failed).
fn answers(client: &Host, n: usize) -> Vec<Option<String>> {
    (0..n)
        .map(|_| {
            curl(client, URL, REQUEST_TIMEOUT)
                .expect("running curl")
                .map(|body| body.trim().to_string())
        })
        .collect()
}

/// Polls the VIP until four answers in a row satisfy `ok`; returns how
/// long that took from `since`, failing after `within`.
fn wait_answers(
    client: &Host,
    since: Instant,
    within: Duration,
    what: &str,
    ok: impl Fn(&[Option<String>]) -> bool,
) -> Duration {
    loop {
        let got = answers(client, 4);
        if ok(&got) {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < within,
            "{what}: not within {within:?}; last answers {got:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn all_from(answers: &[Option<String>], name: &str) -> bool {
    answers.iter().all(|a| a.as_deref() == Some(name))
}

/// Round robin over rs1 and rs2: every answer from one of them, each
/// different from the one before.
fn alternating(answers: &[Option<String>]) -> bool {
    answers.iter().all(Option::is_some)
        && answers.windows(2).all(|w| w[0] != w[1])
        && answers
            .iter()
            .all(|a| matches!(a.as_deref(), Some("rs1" | "rs2")))
}

fn status(director: &Host, daemon: &Daemon) -> Status {
    daemon.status(director).expect("appliance status --json")
}

/// `appliance status` as text.
fn status_text(director: &Host, daemon: &Daemon) -> String {
    let socket = daemon.socket_path();
    let out = director
        .run(
            appliance_bin(),
            &["status", "--socket", socket.to_str().unwrap()],
        )
        .expect("appliance status");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether `ip`'s real server is alive, per `appliance status`.
fn alive(status: &Status, ip: &str) -> bool {
    let vs = status.virtual_servers.first().expect("one virtual server");
    vs.real_servers
        .iter()
        .find(|rs| rs.address == addr(ip))
        .unwrap_or_else(|| panic!("{ip} is not in {status:?}"))
        .alive
}

fn real_server_event(address: SocketAddr, up: bool) -> impl Fn(&Entry) -> bool {
    move |e| {
        matches!(e.event.kind, EventKind::RealServer { address: a, alive, .. }
            if a == address && alive == up)
    }
}

/// The LAN: a director, two real servers, a sorry server and a client.
fn setup() -> Lan {
    let mut lan = Lan::new().expect("lan");
    lan.add_host("director", &["10.110.0.1/24"])
        .expect("director");
    for (name, ip) in [("rs1", RS1), ("rs2", RS2), ("sorry", SORRY)] {
        lan.add_host(name, &[&format!("{ip}/24")]).expect(name);
    }
    lan.add_host("client", &["10.110.0.50/24"]).expect("client");
    let director = lan.host("director");
    director
        .sysctl("net.ipv4.ip_forward", "1")
        .expect("ip_forward");
    for conf in ["all", "eth0"] {
        director
            .sysctl(&format!("net.ipv4.conf.{conf}.send_redirects"), "0")
            .expect("send_redirects");
    }
    lan
}

#[test]
fn a_stopped_real_server_leaves_the_rotation_and_returns_and_the_sorry_server_answers_when_all_are_down()
 {
    let lan = setup();
    let director = lan.host("director");
    let client = lan.host("client");
    let rs1 = Nginx::start(lan.host("rs1")).expect("nginx on rs1");
    let rs2 = Nginx::start(lan.host("rs2")).expect("nginx on rs2");
    let _sorry = Nginx::start(lan.host("sorry")).expect("nginx on sorry");

    let mut daemon = Daemon::start_toml(director, &config()).expect("appliance run");
    daemon
        .wait_event(
            "the director becoming master",
            Duration::from_secs(10),
            |e| e.entered() == Some(State::Master),
        )
        .expect("master");
    director
        .wait_address(VIP.parse::<IpAddr>().unwrap(), true, Duration::from_secs(5))
        .expect("the VIP on the director");
    let mut marks = Vec::new();

    let start = Instant::now();
    wait_answers(
        client,
        start,
        SLACK * 2,
        "round robin at start",
        alternating,
    );
    let before = status(director, &daemon);
    assert!(alive(&before, RS1) && alive(&before, RS2), "{before:?}");
    // The answers' connections, closed now (TIME_WAIT), as conntrack
    // holds them for the nftables dataplane, and their traffic as its
    // counting sets have it: each connection a SYN, the request and the
    // ACKs in, the SYN-ACK and the answer out, each packet at least its
    // IP and TCP headers.
    for rs in &before.virtual_servers[0].real_servers {
        let c = rs
            .connections
            .unwrap_or_else(|| panic!("no connections in the status: {before:?}"));
        let t = c
            .traffic
            .unwrap_or_else(|| panic!("no traffic in the status: {before:?}"));
        assert!(c.active + c.inactive >= 1, "{before:?}");
        assert!(
            t.conns >= 1
                && t.in_packets >= 3 * t.conns
                && t.out_packets >= 2 * t.conns
                && t.in_bytes >= 40 * t.in_packets
                && t.out_bytes >= 40 * t.out_packets,
            "{before:?}"
        );
    }
    let instance = before.instances.first().expect("one VRRP instance");
    assert_eq!(
        (instance.name.as_str(), instance.state),
        ("VI_1", State::Master)
    );
    let metrics = scrape(client);
    let vi = r#"instance="VI_1""#;
    let held = |state: &str| {
        sample(
            &metrics,
            "appliance_real_server_connections",
            &format!("service=\"TCP {VIP}:80\",real_server=\"{RS1}:80\",state=\"{state}\""),
        )
    };
    assert!(held("active") + held("inactive") >= 1.0, "{metrics}");
    let rs1_labels = format!("service=\"TCP {VIP}:80\",real_server=\"{RS1}:80\"");
    assert!(
        sample(
            &metrics,
            "appliance_real_server_scheduled_connections_total",
            &rs1_labels
        ) >= 1.0,
        "{metrics}"
    );
    for direction in ["in", "out"] {
        for name in [
            "appliance_real_server_packets_total",
            "appliance_real_server_bytes_total",
        ] {
            let labels = format!("{rs1_labels},direction=\"{direction}\"");
            assert!(sample(&metrics, name, &labels) >= 1.0, "{metrics}");
        }
    }
    assert_eq!(
        sample(
            &metrics,
            "appliance_vrrp_state",
            r#"instance="VI_1",state="MASTER""#
        ),
        1.0
    );
    assert_eq!(
        sample(
            &metrics,
            "appliance_vrrp_state",
            r#"instance="VI_1",state="BACKUP""#
        ),
        0.0
    );
    assert_eq!(
        sample(
            &metrics,
            "appliance_vrrp_transitions_total",
            r#"instance="VI_1",from="BACKUP",to="MASTER""#
        ),
        1.0
    );
    assert!(sample(&metrics, "appliance_vrrp_adverts_sent_total", vi) >= 1.0);
    assert_eq!(sample(&metrics, "appliance_vrrp_priority", vi), 100.0);
    assert_eq!(scraped_real_server(&metrics, RS1), (1.0, 1.0));
    assert_eq!(scraped_real_server(&metrics, RS2), (1.0, 1.0));
    assert!(
        sample(
            &metrics,
            "appliance_check_duration_seconds_count",
            r#"check="TCP_CHECK""#
        ) >= 2.0
    );
    // The service, its two real servers (the sorry server joins later).
    let ops = |text: &str, op: &str| {
        sample(
            text,
            "appliance_dataplane_operations_total",
            &format!("backend=\"nftables\",operation=\"{op}\""),
        )
    };
    assert_eq!(ops(&metrics, "add_service"), 1.0);
    assert_eq!(ops(&metrics, "add_destination"), 2.0);
    // A foreign advert is dropped, and counted by the instance its VRID
    // names and why.
    send_mismatched_advert(client);
    let dropped = || {
        find_sample(
            &scrape(client),
            "appliance_vrrp_adverts_dropped_total",
            r#"instance="VI_1",reason="interval_mismatch""#,
        )
    };
    let sent = Instant::now();
    while dropped().is_none() {
        assert!(
            sent.elapsed() < SLACK,
            "the mismatched advert is not counted:\n{}",
            scrape(client)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(dropped(), Some(1.0));

    // rs1 fails: out of the rotation within the check time.
    marks.push(Entry::mark("stop nginx on rs1"));
    let stopped = Instant::now();
    rs1.stop().expect("stopping nginx on rs1");
    let took = wait_answers(client, stopped, down_bound(), "rs2 alone", |a| {
        all_from(a, "rs2")
    });
    assert!(took <= down_bound(), "rs1 removed after {took:?}");
    daemon
        .wait_event("rs1 down", SLACK, real_server_event(addr(RS1), false))
        .expect("the timeline has rs1 down");
    let down = status(director, &daemon);
    assert!(!alive(&down, RS1) && alive(&down, RS2), "{down:?}");
    let text = status_text(director, &daemon);
    let line = |rs: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(&format!("{rs}:80 ")))
            .unwrap_or_default()
    };
    assert!(
        text.contains("VRRP VI_1  vrid 110  MASTER for ")
            && text.contains("  priority 100 (base 100)")
            && line(RS1).contains(&format!("{RS1}:80  DOWN  weight 1  conns "))
            && line(RS1).contains("TCP_CHECK down")
            && line(RS2).contains(&format!("{RS2}:80  UP  weight 1  conns "))
            && line(RS2).contains("TCP_CHECK up"),
        "{text}"
    );
    let metrics = scrape(client);
    promtool_check(&metrics);
    assert_eq!(scraped_real_server(&metrics, RS1), (0.0, 1.0));
    assert_eq!(scraped_real_server(&metrics, RS2), (1.0, 1.0));
    assert!(ops(&metrics, "delete_destination") >= 1.0, "{metrics}");
    let rs1_check = &down.virtual_servers[0].real_servers[0].checks[0];
    assert_eq!(rs1_check.kind, "TCP_CHECK");
    assert!(!rs1_check.up, "{rs1_check:?}");
    assert!(
        rs1_check.last.as_ref().is_some_and(|l| !l.up),
        "{rs1_check:?}"
    );

    // rs1 recovers: round robin again.
    marks.push(Entry::mark("start nginx on rs1"));
    let started = Instant::now();
    let rs1 = Nginx::start(lan.host("rs1")).expect("nginx on rs1 again");
    let took = wait_answers(client, started, up_bound(), "round robin back", alternating);
    assert!(took <= up_bound(), "rs1 back after {took:?}");
    let up = status(director, &daemon);
    assert!(alive(&up, RS1) && alive(&up, RS2), "{up:?}");

    // Every real server fails, one after the other: the sorry server.
    marks.push(Entry::mark("stop nginx on rs1"));
    rs1.stop().expect("stopping nginx on rs1");
    daemon
        .wait_event("rs1 down again", down_bound(), |e| {
            real_server_event(addr(RS1), false)(e) && e.wall > marks[2].wall
        })
        .expect("rs1 down again");
    marks.push(Entry::mark("stop nginx on rs2"));
    let stopped = Instant::now();
    rs2.stop().expect("stopping nginx on rs2");
    let took = wait_answers(client, stopped, down_bound(), "the sorry server", |a| {
        all_from(a, "sorry")
    });
    assert!(took <= down_bound(), "sorry server after {took:?}");
    let sorry = status(director, &daemon);
    let vs = &sorry.virtual_servers[0];
    assert!(!vs.quorum_up && vs.sorry_server_active, "{sorry:?}");

    // rs2 back: the quorum returns and the sorry server leaves.
    marks.push(Entry::mark("start nginx on rs2"));
    let started = Instant::now();
    let _rs2 = Nginx::start(lan.host("rs2")).expect("nginx on rs2 again");
    let took = wait_answers(
        client,
        started,
        up_bound(),
        "rs2 after the sorry server",
        |a| all_from(a, "rs2"),
    );
    assert!(took <= up_bound(), "rs2 back after {took:?}");
    daemon
        .wait_event("sorry server off", SLACK, |e| {
            matches!(e.event.kind, EventKind::SorryServer { active: false })
        })
        .expect("the sorry server leaves");

    daemon.stop().expect("stopping the daemon");
    let events = daemon.timeline().expect("timeline");
    insta::assert_snapshot!(timeline::render_order(&timeline::merge(&[&events, &marks])));
}

#[test]
fn a_reload_with_other_virtual_servers_reprograms_and_checks_them() {
    let lan = setup();
    let director = lan.host("director");
    let client = lan.host("client");
    let _rs1 = Nginx::start(lan.host("rs1")).expect("nginx on rs1");
    let _rs2 = Nginx::start(lan.host("rs2")).expect("nginx on rs2");
    let mut daemon = Daemon::start_toml(director, &config()).expect("appliance run");
    director
        .wait_address(
            VIP.parse::<IpAddr>().unwrap(),
            true,
            Duration::from_secs(10),
        )
        .expect("the VIP on the director");
    let start = Instant::now();
    wait_answers(
        client,
        start,
        SLACK * 2,
        "round robin at start",
        alternating,
    );

    daemon.write_config(&config_with(&[RS1])).expect("config");
    let reloaded = Instant::now();
    daemon.signal("HUP").expect("SIGHUP");
    wait_answers(client, reloaded, SLACK * 2, "rs1 alone after reload", |a| {
        all_from(a, "rs1")
    });
    let status = status(director, &daemon);
    let servers: Vec<SocketAddr> = status.virtual_servers[0]
        .real_servers
        .iter()
        .map(|rs| rs.address)
        .collect();
    assert_eq!(servers, [addr(RS1)], "the checker runs on the new config");
    assert!(daemon.running().expect("daemon state"), "still running");

    // The reloads in the metrics: this one applied, then a broken file
    // rejected (the running config stays, and so does the time of the
    // last one that loaded).
    let metrics = scrape(client);
    let reloads = |text: &str, outcome: &str| {
        find_sample(
            text,
            "appliance_config_reloads_total",
            &format!("outcome=\"{outcome}\""),
        )
    };
    assert_eq!(reloads(&metrics, "applied"), Some(1.0), "{metrics}");
    assert_eq!(
        sample(
            &metrics,
            "appliance_config_reload_duration_seconds_count",
            ""
        ),
        1.0
    );
    assert_eq!(
        sample(&metrics, "appliance_config_last_reload_successful", ""),
        1.0
    );
    let loaded = sample(
        &metrics,
        "appliance_config_last_reload_success_timestamp_seconds",
        "",
    );
    daemon
        .write_config("[global\n")
        .expect("write a broken config");
    daemon.signal("HUP").expect("SIGHUP");
    let sent = Instant::now();
    let metrics = loop {
        let metrics = scrape(client);
        if reloads(&metrics, "rejected").is_some() {
            break metrics;
        }
        assert!(sent.elapsed() < SLACK, "no rejected reload:\n{metrics}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(reloads(&metrics, "rejected"), Some(1.0));
    assert_eq!(
        sample(&metrics, "appliance_config_last_reload_successful", ""),
        0.0
    );
    assert_eq!(
        sample(
            &metrics,
            "appliance_config_last_reload_success_timestamp_seconds",
            ""
        ),
        loaded
    );
    assert!(daemon.running().expect("daemon state"), "still running");
}

#[test]
fn a_metrics_address_that_cannot_be_bound_stops_the_start_with_nothing_applied() {
    let lan = setup();
    let director = lan.host("director");
    let refusal = refused_start(
        director,
        &config().replace("10.110.0.1:9650", "10.110.0.99:9650"),
    )
    .expect("appliance run refuses to start");
    // On the console and in the log file alike.
    for said in [&refusal.stderr, &refusal.log] {
        assert!(
            said.contains("metrics endpoint: binding 10.110.0.99:9650"),
            "{refusal:?}"
        );
    }
    // Neither the dataplane nor the VIP was touched.
    let tables = director
        .run("nft", &["list", "tables"])
        .expect("nft list tables (Debian package nftables)");
    let tables = String::from_utf8_lossy(&tables.stdout);
    assert!(!tables.contains("appliance"), "{tables}");
    assert!(
        !director
            .has_address(VIP.parse().unwrap())
            .expect("addresses"),
        "the VIP was added"
    );
}
