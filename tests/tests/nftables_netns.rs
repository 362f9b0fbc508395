//! The nftables dataplane on the host's kernel, in network namespaces: a
//! director with the VIP, two real servers (busybox httpd answering their
//! own name) and a client on one LAN. The virtual server masquerades (the
//! real servers answer the director, which un-NATs), so no second LAN is
//! needed. `appliance dataplane apply` programs it; `nft list ruleset` is
//! the independent witness of what the kernel holds.

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
