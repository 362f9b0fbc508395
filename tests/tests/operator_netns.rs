//! The operator's commands on a running director (`appliance disable`,
//! `enable`, `weight`, `drain`), in network namespaces with the nftables
//! dataplane: a director holding the VIP, two real servers (busybox httpd
//! answering their own name) and a client on one LAN; the virtual server
//! masquerades, so the real servers answer through the director. What the
//! client gets through the VIP, `nft list ruleset` and `appliance status`
//! are the witnesses; conntrack is what a drain counts.

use appliance_tests::appliance_bin;
use appliance_tests::daemon::Daemon;
use appliance_tests::netns::{Host, Lan};
use appliance_tests::timeline::{self, Entry};
use appliance_tests::toml_conf::Director;
use appliance_tests::web::{self, Httpd};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

const NET: u8 = 125;
const RS1: &str = "10.125.0.11:8080";
const RS2: &str = "10.125.0.12:8080";

struct Setup {
    lan: Lan,
    _servers: Vec<Httpd>,
}

/// The director's config: wrr over the two real servers with `weights`
/// (each checked by TCP_CHECK).
fn config(weights: (u32, u32)) -> String {
    config_with(&[], &[(RS1, weights.0), (RS2, weights.1)])
}

/// The director's config with more `[global]` lines and these real
/// servers and weights.
fn config_with(global: &[&str], real_servers: &[(&str, u32)]) -> String {
    let check = r#"check = [{ type = "TCP_CHECK", connect_timeout = "1s", retry = 0 }]"#;
    let mut director = Director::new("d", NET).with("MASTER", 150);
    director.global = global.iter().map(ToString::to_string).collect();
    let mut text = format!(
        "{}\n[[virtual_server]]\nlb_algo = \"wrr\"\nlb_kind = \"NAT\"\nprotocol = \"TCP\"\n\
         delay_loop = \"1s\"\nmasquerade = true\n\n[virtual_server.service]\naddress = \"10.{NET}.0.100:80\"\n",
        director.render()
    );
    for (address, weight) in real_servers {
        text += &format!(
            "\n[[virtual_server.real_server]]\naddress = \"{address}\"\nweight = {weight}\n{check}\n"
        );
    }
    text
}

fn setup() -> Setup {
    let mut lan = Lan::new().expect("lan");
    lan.add_host("d", &[&format!("10.{NET}.0.1/24")])
        .expect("director");
    lan.add_host("rs1", &[&format!("10.{NET}.0.11/24")])
        .expect("rs1");
    lan.add_host("rs2", &[&format!("10.{NET}.0.12/24")])
        .expect("rs2");
    lan.add_host("client", &[&format!("10.{NET}.0.50/24")])
        .expect("client");
    let director = lan.host("d");
    director
        .sysctl("net.ipv4.ip_forward", "1")
        .expect("ip_forward");
    let servers = ["rs1", "rs2"]
        .map(|name| Httpd::start(lan.host(name), 8080).expect("busybox httpd"))
        .into();
    Setup {
        lan,
        _servers: servers,
    }
}

impl Setup {
    fn host(&self, name: &str) -> &Host {
        self.lan.host(name)
    }

    /// Starts the director on `config` and waits until it holds the VIP
    /// and both real servers answer through it.
    fn start(&self, config: &str) -> Daemon {
        let d = Daemon::start_toml(self.host("d"), config).expect("the director starts");
        self.host("d")
            .wait_address(
                format!("10.{NET}.0.100").parse().unwrap(),
                true,
                Duration::from_secs(10),
            )
            .expect("the director takes the VIP");
        self.wait_answers(&["rs1", "rs2"], "both real servers answer");
        d
    }

    /// The bodies of `n` successive `GET /` through the VIP.
    fn get(&self, n: usize) -> Vec<String> {
        self.host("client")
            .enter(move || {
                (0..n)
                    .map(|_| web::body(request(connect())).expect("an HTTP answer"))
                    .collect::<Vec<_>>()
            })
            .expect("enter client")
    }

    /// Waits until the answers through the VIP come from exactly `names`.
    fn wait_answers(&self, names: &[&str], what: &str) {
        let start = Instant::now();
        loop {
            let mut got = self.get(4);
            got.sort();
            got.dedup();
            if got == names {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "{what}: answers from {got:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn ruleset(&self) -> String {
        let out = self
            .host("d")
            .run("nft", &["list", "ruleset"])
            .expect("nft (Debian package nftables)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A connection to the VIP with half a request sent: established, its
    /// answer held back until [`finish`].
    fn hold(&self) -> TcpStream {
        self.host("client")
            .enter(|| {
                let mut stream = connect();
                stream
                    .write_all(b"GET / HTTP/1.0\r\n")
                    .expect("half a request");
                stream
            })
            .expect("enter client")
    }
}

/// `appliance ARGS --socket SOCKET` on the director.
fn appliance(host: &Host, d: &Daemon, args: &[&str]) -> Output {
    let socket = d.socket_path();
    host.command(appliance_bin())
        .args(args)
        .args(["--socket", socket.to_str().expect("utf-8 path")])
        .output()
        .expect("appliance")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `appliance ARGS` and returns what it printed; it must succeed.
fn ok(host: &Host, d: &Daemon, args: &[&str]) -> String {
    let out = appliance(host, d, args);
    assert!(out.status.success(), "appliance {args:?}: {}", text(&out));
    text(&out)
}

/// The `admin` field of `address` in `appliance status --json`.
fn admin_of(host: &Host, d: &Daemon, address: &str) -> String {
    let status: serde_json::Value =
        serde_json::from_str(&ok(host, d, &["status", "--json"])).expect("status JSON");
    status["virtual_servers"][0]["real_servers"]
        .as_array()
        .expect("real servers")
        .iter()
        .find(|rs| rs["address"] == address)
        .map(|rs| rs["admin"].as_str().unwrap_or_default().to_owned())
        .unwrap_or_else(|| panic!("{address} not in the status: {status}"))
}

fn connect() -> TcpStream {
    let vip: SocketAddr = format!("10.{NET}.0.100:80").parse().unwrap();
    let stream = TcpStream::connect_timeout(&vip, Duration::from_secs(5)).expect("connect VIP");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream
}

fn request(mut stream: TcpStream) -> TcpStream {
    stream
        .write_all(b"GET / HTTP/1.0\r\n\r\n")
        .expect("send request");
    stream
}

/// Ends a held request and returns its answer's body.
fn finish(host: &Host, mut stream: TcpStream) -> String {
    host.enter(move || {
        stream.write_all(b"\r\n").expect("rest of the request");
        web::body(stream).expect("an HTTP answer")
    })
    .expect("enter client")
}

#[test]
fn disable_enable_and_weight_hold_across_a_reload_and_a_restart() {
    let s = setup();
    let d_host = s.host("d");
    let mut d = s.start(&config((1, 1)));

    let said = ok(d_host, &d, &["disable", RS2]);
    assert!(
        said.contains(&format!("{RS2} of TCP 10.{NET}.0.100:80: disabled")),
        "{said}"
    );
    // Answered once the kernel holds it: no wait needed.
    assert_eq!(s.get(4), ["rs1"; 4]);
    assert!(!s.ruleset().contains("10.125.0.12"), "{}", s.ruleset());
    assert_eq!(admin_of(d_host, &d, RS2), "disabled");
    let timeline = d.timeline().expect("timeline");
    assert!(
        timeline
            .iter()
            .any(|e| e.event.detail == "operator: disabled"),
        "the timeline has the operator's change"
    );
    // Asked again: nothing to do, said so.
    assert!(ok(d_host, &d, &["disable", RS2]).contains("1 already so"));

    // A reload that leaves rs2's block alone keeps it out.
    assert!(ok(d_host, &d, &["reload"]).contains("reloaded"));
    assert_eq!(s.get(4), ["rs1"; 4]);

    // So does a restart, even one without a clean stop: the setting is
    // recorded, and the first table the new daemon programs has it.
    d.kill().expect("kill -9");
    d.restart(d_host).expect("restart");
    assert!(!s.ruleset().contains("10.125.0.12"), "{}", s.ruleset());
    assert_eq!(admin_of(d_host, &d, RS2), "disabled");
    assert_eq!(s.get(4), ["rs1"; 4]);

    ok(d_host, &d, &["enable", RS2]);
    assert_eq!(admin_of(d_host, &d, RS2), "enabled");
    s.wait_answers(&["rs1", "rs2"], "rs2 is back");

    // An operator's weight: wrr 3:1.
    ok(d_host, &d, &["weight", RS1, "3"]);
    let mut got = s.get(8);
    got.sort();
    assert_eq!(got.iter().filter(|b| *b == "rs1").count(), 6, "{got:?}");
    // A config that changes rs1's block drops the operator's weight: the
    // config speaks last (1:1 again).
    d.write_config(&config((2, 2))).expect("config");
    ok(d_host, &d, &["reload"]);
    let got = s.get(8);
    assert_eq!(got.iter().filter(|b| *b == "rs1").count(), 4, "{got:?}");

    // A real server the config does not have is refused, naming those it
    // has; a weight out of range too.
    let out = appliance(d_host, &d, &["disable", "10.125.0.99:8080"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("no real server 10.125.0.99:8080 in the config; it has"),
        "{}",
        text(&out)
    );
    let out = appliance(d_host, &d, &["weight", RS1, "70000"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("out of range"), "{}", text(&out));
}

#[test]
fn a_drain_waits_for_the_open_connection_then_takes_the_server_out() {
    let s = setup();
    let d_host = s.host("d");
    let client = s.host("client");
    let mut marks = vec![Entry::mark("started")];
    let d = s.start(&config((1, 1)));

    // A drain whose connection does not end in time: out at the timeout.
    marks.push(Entry::mark("hold a connection on rs2, drain it for 3 s"));
    let held = held_on_rs2(&s, &d);
    let said = ok(d_host, &d, &["drain", RS2, "--timeout", "3s"]);
    assert!(
        said.contains("drain timed out after") && said.contains("with 1 active connection(s)"),
        "{said}"
    );
    assert_eq!(admin_of(d_host, &d, RS2), "disabled");
    // Taken out of the table, the server still finishes what it had.
    assert_eq!(finish(client, held), "rs2");
    marks.push(Entry::mark("enable rs2"));
    ok(d_host, &d, &["enable", RS2]);
    s.wait_answers(&["rs1", "rs2"], "rs2 is back");

    // A drain that ends with its connection.
    marks.push(Entry::mark("hold a connection on rs2, drain it for 60 s"));
    let held = held_on_rs2(&s, &d);
    let socket = d.socket_path();
    let mut drain = d_host
        .spawn(
            d_host
                .command(appliance_bin())
                .args([
                    "drain",
                    RS2,
                    "--timeout",
                    "60s",
                    "--socket",
                    socket.to_str().expect("utf-8 path"),
                ])
                .stdout(Stdio::piped()),
        )
        .expect("appliance drain");
    // While it drains, rs2 keeps its place in the table at weight 0 and new
    // connections go to rs1 only. The status says "draining" as soon as the
    // setting is recorded; the table is the witness of it being applied.
    let start = Instant::now();
    while !s.ruleset().contains("10.125.0.12 . 8080 : 0x00000000") {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "rs2 never at weight 0: {}",
            s.ruleset()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(admin_of(d_host, &d, RS2), "draining");
    assert_eq!(s.get(4), ["rs1"; 4]);
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        drain.try_wait().expect("drain").is_none(),
        "the drain ended with a connection open"
    );
    marks.push(Entry::mark("the connection ends"));
    assert_eq!(finish(client, held), "rs2");
    let status = drain.wait(Duration::from_secs(10)).expect("the drain ends");
    let mut out = String::new();
    drain
        .take_stdout()
        .expect("stdout")
        .read_to_string(&mut out)
        .expect("read");
    assert!(status.success(), "{out}");
    assert!(
        out.contains("drained in") && out.contains("no active connection left; now disabled"),
        "{out}"
    );
    assert_eq!(admin_of(d_host, &d, RS2), "disabled");
    assert!(!s.ruleset().contains("10.125.0.12"), "{}", s.ruleset());
    let merged = timeline::merge(&[&d.timeline().expect("timeline"), &marks]);
    insta::assert_snapshot!(timeline::render_order(&merged));
}

/// A connection held open on rs2: rs1 is out while it is made.
fn held_on_rs2(s: &Setup, d: &Daemon) -> TcpStream {
    let d_host = s.host("d");
    ok(d_host, d, &["disable", RS1]);
    let held = s.hold();
    ok(d_host, d, &["enable", RS1]);
    held
}

#[test]
fn with_graceful_remove_a_reload_drains_a_removed_real_server_first() {
    let s = setup();
    let d_host = s.host("d");
    let graceful = ["graceful_remove = \"60s\""];
    let mut marks = vec![Entry::mark("started")];
    let d = s.start(&config_with(&graceful, &[(RS1, 1), (RS2, 1)]));
    marks.push(Entry::mark("hold a connection on rs2"));
    let held = held_on_rs2(&s, &d);

    // rs2 leaves the config: it stays in the table at weight 0 while its
    // connection lasts, and new connections go to rs1.
    d.write_config(&config_with(&graceful, &[(RS1, 1)]))
        .expect("config");
    marks.push(Entry::mark("reload without rs2"));
    let said = ok(d_host, &d, &["reload"]);
    assert!(
        said.contains("1 removed real server(s) drain first (graceful_remove)"),
        "{said}"
    );
    assert_eq!(s.get(4), ["rs1"; 4]);
    std::thread::sleep(Duration::from_secs(2));
    let ruleset = s.ruleset();
    assert!(
        ruleset.contains("10.125.0.12 . 8080 : 0x00000000"),
        "{ruleset}"
    );
    marks.push(Entry::mark("the connection ends"));
    assert_eq!(finish(s.host("client"), held), "rs2");

    // Its connection over, it goes.
    let start = Instant::now();
    while s.ruleset().contains("10.125.0.12") {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the drained real server stays:\n{}\n{}",
            s.ruleset(),
            d.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(d.log().contains("drain ended"), "{}", d.log());
    let merged = timeline::merge(&[&d.timeline().expect("timeline"), &marks]);
    insta::assert_snapshot!(timeline::render_order(&merged));
}

#[test]
fn without_graceful_remove_a_reload_removes_a_real_server_at_once() {
    let s = setup();
    let d_host = s.host("d");
    let d = s.start(&config((1, 1)));
    let held = held_on_rs2(&s, &d);
    d.write_config(&config_with(&[], &[(RS1, 1)]))
        .expect("config");
    let said = ok(d_host, &d, &["reload"]);
    assert!(!said.contains("graceful_remove"), "{said}");
    assert!(!s.ruleset().contains("10.125.0.12"), "{}", s.ruleset());
    // conntrack keeps the connection's translation: it still ends well.
    assert_eq!(finish(s.host("client"), held), "rs2");
}
