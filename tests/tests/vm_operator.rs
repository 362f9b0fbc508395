//! The operator's commands on IPVS, on a real kernel under qemu: the seed's
//! LVS-DR director (`seed-lvs-dr.conf`, its addresses and interface
//! rewritten) runs under `appliance run`; `appliance weight`, `disable`,
//! `enable` and `drain` change its real servers, with `ipvsadm -Ln` as the
//! witness of the kernel's table and its connection counts, and the
//! client's requests as the proof. A drain waits for a connection held open
//! on the drained server (IPVS's ActiveConn), then takes the server out of
//! scheduling; it stays in the kernel at weight 0 until IPVS forgets its
//! closed connections too (their FIN_WAIT timeout, 30 s here): deleted
//! sooner, it would make IPVS drop a new connection from a client port one
//! of them used, which the test makes (`curl --local-port`) and which must
//! be answered.

use appliance_tests::timeline;
use appliance_tests::vm::{Vm, VmOutput, scenario, section};
use std::path::Path;
use std::time::Duration;

const SEED: &str = include_str!("../fixtures/keepalived/seed-lvs-dr.conf");
const VIP: &str = "10.0.0.200";
const RS1: &str = "10.0.0.129";
const RS2: &str = "10.0.0.137";
const SOCKET: &str = "/tmp/director/appliance.sock";
const TIMELINE: &str = "/tmp/director.tl";

fn scenario() -> String {
    let config = SEED
        .replace("ens33", "eth0")
        .replace("192.168.188.", "10.0.0.")
        .replace("delay_loop 10", "delay_loop 1")
        .replace("connect_timeout 10", "connect_timeout 1");
    let mut s = String::from("set -e\n");
    s += &scenario::wait_for(
        "ip netns exec director ipvsadm -Ln >&2 || true\ncat /tmp/director.log >&2 || true",
    );
    s += &"op() { ip netns exec director appliance \"$@\" --socket $SOCKET; }\n\
         status() { ip netns exec director appliance status --json --socket $SOCKET; }\n\
         # lists ADDR WEIGHT: the director's table has ADDR as a Route with WEIGHT.\n\
         lists() { ip netns exec director ipvsadm -Ln | grep -Eq \"^ +-> $1:80 +Route +$2 \"; }\n\
         both_at_100() { lists $RS1 100 && lists $RS2 100; }\n\
         holds_vip() { ip -n director -4 addr show eth0 | grep -q \" $VIP/32\"; }\n\
         draining() { status | grep -q '\"admin\": \"draining\"'; }\n\
         requests() { for i in 1 2 3 4; do ip netns exec client timeout 5 wget -qO- http://$VIP/; done; }\n\
         # from_port PORT: a request from the client's port PORT.\n\
         from_port() { ip netns exec client curl -sS --max-time 5 --local-port $1 http://$VIP/; }\n"
        .replace("$SOCKET", SOCKET)
        .replace("$VIP", VIP)
        .replace("$RS1", RS1)
        .replace("$RS2", RS2);
    s += &scenario::mark(&[TIMELINE]);
    s += &scenario::bridge("br0");
    for (name, addr) in [
        ("director", "10.0.0.1"),
        ("client", "10.0.0.2"),
        ("rs1", RS1),
        ("rs2", RS2),
    ] {
        s += &scenario::host("br0", name, addr);
    }
    for (name, addr) in [("rs1", RS1), ("rs2", RS2)] {
        s += &scenario::dr_real_server(name, VIP);
        s += &scenario::httpd(name, addr, "client");
    }
    s += &format!("cat > /root/director.conf <<'EOF'\n{config}EOF\n");
    // Closed connections tracked for 30 s rather than 2 min.
    s += "ip netns exec director ipvsadm --set 900 30 300\n";
    s += &format!(
        "ip netns exec director appliance run --config /root/director.conf --state-dir /tmp/director \
         --timeline {TIMELINE} > /tmp/director.log 2>&1 &\n\
         wait_for 15 'the director to hold the VIP' holds_vip\n"
    );
    s += &format!(
        "wait_for 10 'both real servers at weight 100' both_at_100\n\
         mark weight\n\
         echo '--- weight'\nop weight {RS1}:80 5\n\
         echo '--- table weight'\nip netns exec director ipvsadm -Ln\n\
         mark disable\n\
         echo '--- disable'\nop disable {RS1}:80\n\
         echo '--- table disabled'\nip netns exec director ipvsadm -Ln\n\
         echo '--- requests disabled'\nrequests\n\
         echo '--- from port 40000 disabled'\nfrom_port 40000\n\
         # A connection held open on rs2 (rs1 is out): no request sent, so\n\
         # httpd waits for one.\n\
         sleep 120 | ip netns exec client nc {VIP} 80 &\n\
         held=$!\n\
         wait_for 5 'the held connection' sh -c \"ip netns exec director ipvsadm -Ln | grep -Eq '^ +-> {RS2}:80 +Route +100 +1 '\"\n\
         mark enable\n\
         op enable {RS1}:80 > /dev/null\n\
         mark drain\n\
         op drain {RS2}:80 --timeout 60s > /tmp/drain.out 2>&1 &\n\
         drain=$!\n\
         wait_for 5 'the drain to start' draining\n\
         echo '--- table draining'\nip netns exec director ipvsadm -Ln\n\
         echo '--- requests draining'\nrequests\n\
         sleep 2\n\
         echo '--- still draining'\n\
         if kill -0 $drain 2>/dev/null; then echo yes; else echo no; fi\n\
         mark close\n\
         kill $held\n\
         wait $drain\n\
         echo '--- drained'\ncat /tmp/drain.out\n\
         echo '--- table drained'\nip netns exec director ipvsadm -Ln\n\
         echo '--- connections drained'\nip netns exec director ipvsadm -Lnc\n\
         echo '--- from port 40000 drained'\nfrom_port 40000 || true\n\
         wait_for 60 'rs2 out of the kernel once IPVS forgot its connections' sh -c \"! ip netns exec director ipvsadm -Ln | grep -q '{RS2}:80'\"\n\
         echo '--- table forgotten'\nip netns exec director ipvsadm -Ln\n\
         echo '--- timeline'\ncat {TIMELINE}\n\
         echo '--- marks'\ncat /tmp/marks\n\
         echo '--- log'\ncat /tmp/director.log\n"
    );
    s
}

/// Whether `table` (ipvsadm -Ln lines) lists `addr:80` as a DR real server
/// with `weight` (and, if given, that many active connections).
fn lists(table: &[&str], addr: &str, weight: u32, active: Option<u32>) -> bool {
    let mut want = vec![
        "->".to_string(),
        format!("{addr}:80"),
        "Route".into(),
        weight.to_string(),
    ];
    want.extend(active.map(|a| a.to_string()));
    table.iter().any(|l| {
        let fields: Vec<&str> = l.split_whitespace().take(want.len()).collect();
        fields == want
    })
}

fn listed(table: &[&str], addr: &str) -> bool {
    table
        .iter()
        .any(|l| l.split_whitespace().nth(1) == Some(&format!("{addr}:80")))
}

#[test]
fn weight_disable_enable_and_drain_change_the_kernels_ipvs_table() {
    let out: VmOutput = Vm::builder()
        .file(appliance_tests::appliance_bin(), "/usr/bin/appliance")
        .file(
            appliance_tests::vm::require_tool("curl", "curl").unwrap(),
            "/usr/bin/curl",
        )
        .script(scenario())
        .timeout(Duration::from_secs(240))
        .run()
        .unwrap();
    println!(
        "boot to scenario {:.2?}, whole VM run {:.2?}",
        out.boot, out.elapsed
    );
    out.assert_success();
    let stdout = &out.stdout;
    let said = section(stdout, "weight").join("\n");
    assert!(
        said.contains(&format!(
            "{RS1}:80 of TCP {VIP}:80: enabled, weight 5 set by the operator"
        )),
        "{out}"
    );
    let table = section(stdout, "table weight");
    assert!(
        lists(&table, RS1, 5, None) && lists(&table, RS2, 100, None),
        "{out}"
    );
    let table = section(stdout, "table disabled");
    assert!(!listed(&table, RS1), "rs1 is out\n{out}");
    assert_eq!(section(stdout, "requests disabled"), ["rs2"; 4], "{out}");
    assert_eq!(
        section(stdout, "from port 40000 disabled"),
        ["rs2"],
        "{out}"
    );

    // Draining: rs2 stays at weight 0 with its held connection; rs1 is
    // back (at the operator's weight) and takes every new request.
    let table = section(stdout, "table draining");
    assert!(lists(&table, RS2, 0, Some(1)), "{out}");
    assert!(lists(&table, RS1, 5, None), "{out}");
    assert_eq!(section(stdout, "requests draining"), ["rs1"; 4], "{out}");
    assert_eq!(
        section(stdout, "still draining"),
        ["yes"],
        "the drain waits while the connection is open\n{out}"
    );
    let drained = section(stdout, "drained").join("\n");
    assert!(
        drained.contains(&format!("{RS2}:80 of TCP {VIP}:80 drained in"))
            && drained.contains("no active connection left; now disabled"),
        "{out}"
    );
    // Out of scheduling, still in the kernel for the connections IPVS
    // tracks: a new connection from a port one of them used reaches rs2.
    let table = section(stdout, "table drained");
    assert!(lists(&table, RS2, 0, Some(0)), "{out}");
    assert!(lists(&table, RS1, 5, None), "{out}");
    assert_eq!(
        section(stdout, "from port 40000 drained"),
        ["rs2"],
        "a reused client port must not be dropped\n{out}"
    );
    let table = section(stdout, "table forgotten");
    assert!(!listed(&table, RS2), "rs2 is out once forgotten\n{out}");
    assert!(lists(&table, RS1, 5, None), "{out}");

    let events = timeline::parse(
        &(section(stdout, "timeline").join("\n") + "\n"),
        Path::new(TIMELINE),
    )
    .unwrap_or_else(|e| panic!("{e}\n{out}"));
    let marks = timeline::marks(&section(stdout, "marks").join("\n"), &[&events])
        .unwrap_or_else(|e| panic!("{e}\n{out}"));
    insta::assert_snapshot!(timeline::render_order(&timeline::merge(&[&events, &marks])));
}
