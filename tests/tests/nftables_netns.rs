//! The nftables dataplane on the host's kernel, in network namespaces: a
//! director with the VIP, two real servers (busybox httpd answering their
//! own name) and a client on one LAN. The virtual server masquerades (the
//! real servers answer the director, which un-NATs), so no second LAN is
//! needed. `appliance dataplane apply` programs it; `nft list ruleset` is
//! the independent witness of what the kernel holds.

use appliance::dataplane::ipvs::listing::Traffic;
use appliance::dataplane::nftables::Nftables;
use appliance::dataplane::{Backend, Protocol, ServiceKey};
use appliance_tests::appliance_bin;
use appliance_tests::netns::{Host, Lan};
use appliance_tests::web::{self, Httpd};
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

const VIP: &str = "10.97.0.100";
const RS1: &str = "10.97.0.11";
const RS2: &str = "10.97.0.12";

struct Setup {
    lan: Lan,
    dir: tempfile::TempDir,
    _servers: Vec<Httpd>,
}

fn setup() -> Setup {
    let mut lan = Lan::new().expect("lan");
    lan.add_host("director", &["10.97.0.1/24", &format!("{VIP}/24")])
        .expect("director");
    lan.add_host("rs1", &[&format!("{RS1}/24")]).expect("rs1");
    lan.add_host("rs2", &[&format!("{RS2}/24")]).expect("rs2");
    lan.add_host("client", &["10.97.0.50/24"]).expect("client");
    let director = lan.host("director");
    director
        .sysctl("net.ipv4.ip_forward", "1")
        .expect("ip_forward");
    // Forwarding back out of the interface it came in on is the point here,
    // not a route worth telling the client about.
    for conf in ["all", "eth0"] {
        director
            .sysctl(&format!("net.ipv4.conf.{conf}.send_redirects"), "0")
            .expect("send_redirects");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let servers = ["rs1", "rs2"]
        .map(|name| Httpd::start(lan.host(name), 8080).expect("busybox httpd"))
        .into();
    Setup {
        lan,
        dir,
        _servers: servers,
    }
}

impl Setup {
    fn host(&self, name: &str) -> &Host {
        self.lan.host(name)
    }

    /// Writes `toml` as the config and runs `appliance dataplane apply` on
    /// the director; returns its report.
    fn apply(&self, toml: &str) -> String {
        let config = self.dir.path().join("appliance.toml");
        std::fs::write(&config, toml).expect("config");
        let state = self.dir.path().join("dataplane.json");
        let out = self
            .host("director")
            .run(
                appliance_bin(),
                &[
                    "dataplane",
                    "apply",
                    "--config",
                    path(&config),
                    "--state",
                    path(&state),
                ],
            )
            .expect("appliance dataplane apply");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn ruleset(&self) -> String {
        let out = self
            .host("director")
            .run("nft", &["list", "ruleset"])
            .expect("nft list ruleset (Debian package nftables)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The bodies of `n` successive `GET /` through the VIP, one
    /// connection each.
    fn get(&self, n: usize) -> Vec<String> {
        self.host("client")
            .enter(move || (0..n).map(|_| http_get()).collect::<Vec<_>>())
            .expect("enter client")
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn vip() -> SocketAddr {
    SocketAddr::new(VIP.parse().unwrap(), 80)
}

fn connect() -> TcpStream {
    let stream = TcpStream::connect_timeout(&vip(), Duration::from_secs(5)).expect("connect VIP");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    stream
}

fn http_get() -> String {
    let mut stream = connect();
    stream
        .write_all(b"GET / HTTP/1.0\r\n\r\n")
        .expect("send request");
    web::body(stream).expect("an HTTP answer")
}

fn config(lb_algo: &str, weights: (u32, u32)) -> String {
    format!(
        "[global]\ndataplane = \"nftables\"\n\n\
         [[virtual_server]]\nservice = {{ address = \"{VIP}:80\" }}\nlb_algo = \"{lb_algo}\"\nmasquerade = true\n\n\
         [[virtual_server.real_server]]\naddress = \"{RS1}:8080\"\nweight = {}\n\n\
         [[virtual_server.real_server]]\naddress = \"{RS2}:8080\"\nweight = {}\n",
        weights.0, weights.1
    )
}

#[test]
fn round_robin_weights_live_changes_and_removal() {
    let s = setup();

    let report = s.apply(&config("rr", (1, 1)));
    assert!(report.starts_with("nftables: 3 change(s)"), "{report}");
    assert_eq!(s.get(4), ["rs1", "rs2", "rs1", "rs2"]);
    let ruleset = s.ruleset();
    assert!(ruleset.contains("table inet appliance {"), "{ruleset}");
    assert!(
        ruleset.contains(&format!(
            "ip daddr {VIP} tcp dport 80 dnat ip to numgen inc mod 2 map {{ 0 : {RS1} . 8080, 1 : {RS2} . 8080 }}"
        )),
        "{ruleset}"
    );
    assert!(
        ruleset.contains(&format!(
            "ct original ip daddr {VIP} ct original proto-dst 80 masquerade"
        )),
        "{ruleset}"
    );
    assert_eq!(s.apply(&config("rr", (1, 1))), "nftables: in sync\n");

    // wrr 3:1 sends as IPVS does: three to rs1, then one to rs2.
    s.apply(&config("wrr", (3, 1)));
    assert_eq!(
        s.get(8),
        ["rs1", "rs1", "rs1", "rs2", "rs1", "rs1", "rs1", "rs2"]
    );

    // An open connection (to rs1: the counter is back at the list's start)
    // survives a live weight change; new ones follow the new weights.
    let held = s
        .host("client")
        .enter(|| {
            let mut stream = connect();
            stream
                .write_all(b"GET / HTTP/1.0\r\n")
                .expect("half a request");
            stream
        })
        .expect("enter client");
    let report = s.apply(&config("wrr", (1, 3)));
    assert_eq!(
        report,
        format!(
            "nftables: 2 change(s)\n  edit {RS1}:8080 of TCP {VIP}:80\n  edit {RS2}:8080 of TCP {VIP}:80\n"
        )
    );
    let finished = s
        .host("client")
        .enter(move || {
            let mut stream = held;
            stream.write_all(b"\r\n").expect("rest of the request");
            web::body(stream).expect("an HTTP answer")
        })
        .expect("enter client");
    assert_eq!(finished, "rs1");
    assert_eq!(s.get(4), ["rs2", "rs2", "rs1", "rs2"]);

    // Weight 0 takes rs2 out of the pick list but not out of the table.
    s.apply(&config("wrr", (1, 0)));
    assert_eq!(s.get(3), ["rs1", "rs1", "rs1"]);
    let ruleset = s.ruleset();
    assert!(
        ruleset.contains(&format!("{RS2} . 8080 : 0x00000000")),
        "{ruleset}"
    );
    assert_eq!(s.apply(&config("wrr", (1, 0))), "nftables: in sync\n");

    // A config without virtual servers removes the table, and only it.
    let report = s.apply("[global]\ndataplane = \"nftables\"\n");
    assert_eq!(
        report,
        format!("nftables: 1 change(s)\n  delete service TCP {VIP}:80\n")
    );
    assert!(!s.ruleset().contains("appliance"), "{}", s.ruleset());
}

#[test]
fn without_ipvs_the_kernel_choice_is_nftables() {
    let mut lan = Lan::new().expect("lan");
    let host = lan.add_host("director", &["10.97.1.1/24"]).expect("host");
    let name = host
        .enter(|| appliance::dataplane::open_backend(None).map(|b| b.name()))
        .expect("enter")
        .expect("open a backend");
    assert_eq!(name, "nftables");
}

#[test]
fn other_tables_are_left_alone_and_refusals_change_nothing() {
    let s = setup();
    let director = s.host("director");
    director
        .run("nft", &["add", "table", "inet", "theirs"])
        .expect("nft add table (Debian package nftables)");
    s.apply(&config("rr", (1, 1)));
    let before = s.ruleset();
    assert!(before.contains("table inet theirs"), "{before}");

    // lc is IPVS-only: refused at check and at apply, the kernel untouched.
    let bad = config("lc", (1, 1));
    let file = s.dir.path().join("bad.toml");
    std::fs::write(&file, &bad).expect("config");
    let check = std::process::Command::new(appliance_bin())
        .args(["check-config", path(&file)])
        .output()
        .expect("appliance check-config");
    assert!(!check.status.success());
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(
        stderr.contains(&format!(
            "virtual_server TCP {VIP}:80: lb_algo lc is not available with the nftables dataplane"
        )),
        "{stderr}"
    );
    assert_eq!(s.ruleset(), before);
    assert_eq!(s.get(2), ["rs1", "rs2"]);

    s.apply("[global]\ndataplane = \"nftables\"\n");
    let after = s.ruleset();
    assert!(after.contains("table inet theirs"), "{after}");
    assert!(!after.contains("appliance"), "{after}");
}

/// Each real server's traffic as the backend reads it from the director's
/// counting sets (and its rates, from the reads `nft` has seen before).
fn traffic(s: &Setup, nft: Nftables) -> (Nftables, Vec<Option<Traffic>>) {
    let wanted: Vec<(ServiceKey, SocketAddr)> = [RS1, RS2]
        .map(|rs| (service(), SocketAddr::new(rs.parse().unwrap(), 8080)))
        .into();
    s.host("director")
        .enter(move || {
            let mut nft = nft;
            let read = nft.connections(&wanted).expect("read the connections");
            (nft, read.into_iter().map(|c| c.traffic).collect())
        })
        .expect("enter director")
}

fn service() -> ServiceKey {
    ServiceKey::Socket {
        protocol: Protocol::Tcp,
        address: vip(),
    }
}

/// `counter packets P bytes B` of `rs`'s element in `nft list set`'s
/// output of `set`: the kernel's own account, read by nft.
fn nft_counter(s: &Setup, set: &str, rs: &str) -> (u64, u64) {
    let out = s
        .host("director")
        .run("nft", &["list", "set", "inet", "appliance", set])
        .expect("nft list set (Debian package nftables)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let element = format!("tcp . {VIP} . 80 . {rs} . 8080 counter packets ");
    let at = text
        .find(&element)
        .unwrap_or_else(|| panic!("no element {element:?} in {text}"));
    let words: Vec<&str> = text[at + element.len()..].split_whitespace().collect();
    assert_eq!(words[1], "bytes", "{text}");
    (
        words[0].parse().expect("packets"),
        words[2].trim_end_matches(',').parse().expect("bytes"),
    )
}

/// What conntrack's accounting (`nf_conntrack_acct`) holds for the
/// director's connections to the VIP's `port` answered by `rs`:
/// how many, and their packets and bytes in, then out, summed.
fn conntrack_accounting(s: &Setup, port: u16, rs: &str) -> (u64, [u64; 4]) {
    let out = s
        .host("director")
        .run("cat", &["/proc/net/nf_conntrack"])
        .expect("reading /proc/net/nf_conntrack");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut found = 0;
    let mut sums = [0; 4];
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let values = |key: &str| -> Vec<&str> {
            fields.iter().filter_map(|f| f.strip_prefix(key)).collect()
        };
        let (dst, dport, src, sport) = (
            values("dst="),
            values("dport="),
            values("src="),
            values("sport="),
        );
        if dst.first() != Some(&VIP)
            || dport.first() != Some(&port.to_string().as_str())
            || src.get(1) != Some(&rs)
        {
            continue;
        }
        assert_eq!(sport.get(1), Some(&"8080"), "{line}");
        let numbers =
            |key| -> Vec<u64> { values(key).iter().map(|v| v.parse().expect(line)).collect() };
        let (packets, bytes) = (numbers("packets="), numbers("bytes="));
        assert_eq!(
            (packets.len(), bytes.len()),
            (2, 2),
            "accounting off? {line}"
        );
        found += 1;
        for (sum, value) in sums
            .iter_mut()
            .zip([packets[0], bytes[0], packets[1], bytes[1]])
        {
            *sum += value;
        }
    }
    (found, sums)
}

#[test]
fn traffic_is_counted_per_real_server_from_its_addition() {
    let s = setup();
    s.apply(&config("rr", (1, 1)));
    let nft = s
        .host("director")
        .enter(Nftables::open)
        .expect("enter director")
        .expect("open nftables");
    let (nft, before) = traffic(&s, nft);
    assert_eq!(before, [Some(Traffic::default()), Some(Traffic::default())]);

    // Two connections to each: counted once each, with every packet both
    // ways (after the DNAT and the masquerade), as conntrack's own
    // accounting counts them.
    s.host("director")
        .sysctl("net.netfilter.nf_conntrack_acct", "1")
        .expect("conntrack accounting");
    assert_eq!(s.get(4), ["rs1", "rs2", "rs1", "rs2"]);
    // The connections' last ACKs, after the answers were read.
    std::thread::sleep(Duration::from_millis(300));
    let (nft, read) = traffic(&s, nft);
    for (t, rs) in read.iter().zip([RS1, RS2]) {
        let t = t.expect("traffic");
        assert_eq!(t.conns, 2, "{rs}: {t:?}");
        assert_eq!(
            conntrack_accounting(&s, 80, rs),
            (2, [t.in_packets, t.in_bytes, t.out_packets, t.out_bytes]),
            "{rs}: {t:?}"
        );
        assert!(
            t.in_packets >= 2 * 4 && t.out_packets >= 2 * 3,
            "{rs}: {t:?}"
        );
        assert_eq!(
            nft_counter(&s, "traffic_in_ipv4", rs),
            (t.in_packets, t.in_bytes),
            "{rs}"
        );
        assert_eq!(
            nft_counter(&s, "traffic_out_ipv4", rs),
            (t.out_packets, t.out_bytes),
            "{rs}"
        );
        assert_eq!(nft_counter(&s, "traffic_new_ipv4", rs).0, t.conns, "{rs}");
    }

    // A weight change keeps the counts; more traffic 2 s or more after the
    // last read gives rates.
    s.apply(&config("wrr", (3, 1)));
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(s.get(4), ["rs1", "rs1", "rs1", "rs2"]);
    let (nft, read) = traffic(&s, nft);
    let [rs1, rs2] = [read[0].unwrap(), read[1].unwrap()];
    assert_eq!((rs1.conns, rs2.conns), (5, 3));
    assert!(rs1.conns_per_second >= 1, "{rs1:?}");
    assert!(
        rs1.in_bytes_per_second > 0 && rs1.out_packets_per_second > 0,
        "{rs1:?}"
    );

    // A real server removed and added again counts from zero.
    s.apply(&config("wrr", (3, 1)).replace(&format!("{RS2}:8080"), "10.97.0.13:8080"));
    s.apply(&config("wrr", (3, 1)));
    let (nft, read) = traffic(&s, nft);
    assert_eq!(read[0].map(|t| t.conns), Some(5));
    assert_eq!(read[1], Some(Traffic::default()));

    // A table made before the counters (as an older appliance left it):
    // no traffic until the next change adds them, with an element for each
    // server already there.
    let old = "flush chain inet appliance traffic_prerouting\n\
               flush chain inet appliance traffic_output\n\
               flush chain inet appliance traffic_new\n\
               flush chain inet appliance traffic\n\
               delete chain inet appliance traffic_prerouting\n\
               delete chain inet appliance traffic_output\n\
               delete chain inet appliance traffic_new\n\
               delete chain inet appliance traffic\n";
    let sets: String = ["new", "in", "out"]
        .iter()
        .flat_map(|c| {
            ["ipv4", "ipv6"].map(|f| format!("delete set inet appliance traffic_{c}_{f}\n"))
        })
        .collect();
    let script = s.dir.path().join("old.nft");
    std::fs::write(&script, format!("{old}{sets}")).expect("nft script");
    s.host("director")
        .run("nft", &["-f", path(&script)])
        .expect("nft -f (Debian package nftables)");
    assert!(!s.ruleset().contains("traffic"), "{}", s.ruleset());
    let (nft, read) = traffic(&s, nft);
    assert_eq!(read, [None, None]);
    assert_eq!(s.apply(&config("wrr", (3, 1))), "nftables: in sync\n");
    s.apply(&config("wrr", (1, 1)));
    assert_eq!(s.get(2).len(), 2);
    let (_, read) = traffic(&s, nft);
    assert_eq!(
        read.iter().map(|t| t.map(|t| t.conns)).collect::<Vec<_>>(),
        [Some(1), Some(1)]
    );
}

/// A client on the director itself, to a real server on it too: each
/// packet leaves through output and comes back through loopback's
/// prerouting, and is counted once, as conntrack counts it.
#[test]
fn traffic_from_the_director_to_a_server_on_it_counts_each_packet_once() {
    let s = setup();
    let _own = Httpd::start(s.host("director"), 8080).expect("busybox httpd on the director");
    s.apply(&format!(
        "[global]\ndataplane = \"nftables\"\n\n\
         [[virtual_server]]\nservice = {{ address = \"{VIP}:80\" }}\nlb_algo = \"rr\"\n\n\
         [[virtual_server.real_server]]\naddress = \"10.97.0.1:8080\"\n"
    ));
    s.host("director")
        .sysctl("net.netfilter.nf_conntrack_acct", "1")
        .expect("conntrack accounting");
    let bodies = s
        .host("director")
        .enter(|| (0..3).map(|_| http_get()).collect::<Vec<_>>())
        .expect("enter director");
    assert_eq!(bodies, ["director", "director", "director"]);
    std::thread::sleep(Duration::from_millis(300));
    let wanted = vec![(service(), "10.97.0.1:8080".parse().unwrap())];
    let read = s
        .host("director")
        .enter(move || {
            Nftables::open()
                .map(|mut nft| nft.connections(&wanted))
                .expect("open nftables")
                .expect("read the connections")
        })
        .expect("enter director");
    let t = read[0].traffic.expect("traffic");
    assert_eq!(t.conns, 3, "{t:?}");
    assert_eq!(
        conntrack_accounting(&s, 80, "10.97.0.1"),
        (3, [t.in_packets, t.in_bytes, t.out_packets, t.out_bytes]),
        "{t:?}"
    );
}
