//! The appliance programs IPVS itself, on a real kernel under qemu: the
//! same LVS-NAT and LVS-DR topologies as vm_ipvs.rs, but the services come
//! from a config through `appliance dataplane apply`, with ipvsadm only as
//! the independent witness.

use appliance_tests::vm::{Vm, VmOutput, scenario, section};
use std::time::Duration;

const VIP: &str = "10.0.1.100";
const REAL_SERVERS: [(&str, &str); 2] = [("rs1", "10.0.2.11"), ("rs2", "10.0.2.12")];

fn run(test: &str, script: String) -> VmOutput {
    let out = Vm::builder()
        .file(appliance_tests::appliance_bin(), "/usr/bin/appliance")
        .script(script)
        .timeout(Duration::from_secs(120))
        .run()
        .unwrap();
    println!(
        "{test}: boot to scenario {:.2?}, whole VM run {:.2?}",
        out.boot, out.elapsed
    );
    out.assert_success();
    out
}

/// `cat > path` of `text`, as a script line.
fn write_file(path: &str, text: &str) -> String {
    format!("cat > {path} <<'EOF'\n{text}EOF\n")
}

/// Starts busybox httpd answering `name` in namespace `name`, then waits
/// until `from_ns` reaches it at `addr`.
fn http_server(name: &str, addr: &str, from_ns: &str) -> String {
    format!(
        "mkdir -p /srv/{name}\n\
         echo {name} > /srv/{name}/index.html\n\
         ip netns exec {name} httpd -p 80 -h /srv/{name}\n\
         up=0\n\
         for i in $(seq 50); do\n\
         \x20 if ip netns exec {from_ns} timeout 2 wget -qO /dev/null http://{addr}/; then up=1; break; fi\n\
         \x20 sleep 0.1\n\
         done\n\
         [ $up = 1 ] || {{ echo '{name} never answered' >&2; exit 1; }}\n"
    )
}

/// LVS-NAT in namespaces: client 10.0.1.2 --veth-- director (front
/// 10.0.1.1 + VIP; back 10.0.2.1) --bridge-- rs1 10.0.2.11, rs2 10.0.2.12
/// (httpd answering their name, default route via the director).
fn nat_topology() -> String {
    let mut script = String::from("set -e\n");
    script += &scenario::bridge("br-back");
    script += "for ns in client dir; do ip netns add $ns; ip -n $ns link set lo up; done\n\
         ip link add eth0 netns client type veth peer name front netns dir\n\
         ip -n client addr add 10.0.1.2/24 dev eth0\n\
         ip -n client link set eth0 up\n\
         ip -n dir addr add 10.0.1.1/24 dev front\n";
    script += &format!("ip -n dir addr add {VIP}/32 dev front\n");
    script += "ip -n dir link set front up\n\
               ip link add p-dir type veth peer name back netns dir\n\
               ip link set p-dir master br-back up\n\
               ip -n dir addr add 10.0.2.1/24 dev back\n\
               ip -n dir link set back up\n\
               ip netns exec dir sysctl -qw net.ipv4.ip_forward=1\n";
    for (name, addr) in REAL_SERVERS {
        script += &scenario::host("br-back", name, addr);
        script += &format!("ip -n {name} route add default via 10.0.2.1\n");
        script += &http_server(name, addr, "dir");
    }
    script
}

/// `count` GETs from the client to `url`, one answer per line.
fn gets(url: &str, count: usize) -> String {
    format!(
        "for i in $(seq {count}); do\n\
         \x20 ip netns exec client timeout 5 wget -qO- {url}\n\
         done\n"
    )
}

const APPLY: &str =
    "ip netns exec dir appliance dataplane apply --state /run/appliance/dataplane.json --config";

/// Whether `table` (ipvsadm -Ln lines) lists `addr` with this method and
/// weight.
fn lists(table: &[&str], addr: &str, method: &str, weight: u32) -> bool {
    let want = [
        "->".to_string(),
        addr.into(),
        method.into(),
        weight.to_string(),
    ];
    table.iter().any(|l| {
        let fields: Vec<&str> = l.split_whitespace().take(4).collect();
        fields == want
    })
}

#[test]
fn lvs_nat_from_config_round_robin_weights_listing_and_sync_daemon() {
    let config = format!(
        "virtual_server {VIP} 80 {{\n  lb_algo rr\n  lb_kind NAT\n  protocol TCP\n  \
         real_server 10.0.2.11 80 {{\n    weight 1\n  }}\n  \
         real_server 10.0.2.12 80 {{\n    weight 1\n  }}\n}}\n\
         virtual_server {VIP} 8080 {{\n  lb_algo wrr\n  lb_kind NAT\n  protocol TCP\n  persistence_timeout 0\n  \
         real_server 10.0.2.11 80 {{\n    weight 3\n  }}\n  \
         real_server 10.0.2.12 80 {{\n    weight 1\n  }}\n}}\n\
         virtual_server fwmark 7 {{\n  lb_algo sh\n  persistence_timeout 300\n  \
         persistence_granularity 255.255.255.0\n  real_server 10.0.2.11 80\n}}\n\
         virtual_server {VIP} 53 {{\n  protocol UDP\n  ops\n  lb_algo wlc\n  \
         real_server 10.0.2.12 53 {{\n    weight 2\n    uthreshold 100\n    lthreshold 10\n  }}\n}}\n"
    );
    let mut script = nat_topology();
    script += &write_file("/root/a.conf", &config);
    script += &format!("echo '--- apply'\n{APPLY} /root/a.conf\n");
    script += &format!("echo '--- rr'\n{}", gets(&format!("http://{VIP}/"), 4));
    script += &format!(
        "echo '--- wrr'\n{}",
        gets(&format!("http://{VIP}:8080/"), 8)
    );
    script += "echo '--- ipvsadm'\nip netns exec dir ipvsadm -Ln\n\
               echo '--- list'\nip netns exec dir appliance ipvs list\n\
               echo '--- json'\nip netns exec dir appliance ipvs list --json\n\
               sleep 3\n\
               echo '--- stats'\nip netns exec dir ipvsadm -Ln --stats\n\
               echo '--- our stats'\nip netns exec dir appliance ipvs list --stats\n\
               echo '--- exact'\nip netns exec dir ipvsadm -Ln --stats --exact\n\
               echo '--- our exact'\nip netns exec dir appliance ipvs list --stats --exact\n\
               echo '--- rate'\nip netns exec dir ipvsadm -Ln --rate\n\
               echo '--- our rate'\nip netns exec dir appliance ipvs list --rate\n\
               ip netns exec dir appliance ipvs sync-daemon start --role master --interface back --syncid 51\n\
               echo '--- daemon'\nip netns exec dir ipvsadm -L --daemon\n\
               echo '--- our daemon'\nip netns exec dir appliance ipvs sync-daemon list\n\
               ip netns exec dir appliance ipvs sync-daemon stop --role master\n\
               echo '--- daemon stopped'\nip netns exec dir ipvsadm -L --daemon\n\
               ip netns exec dir appliance ipvs timeout --tcp 1000 --tcpfin 100 --udp 200 > /dev/null\n\
               echo '--- timeout'\nip netns exec dir ipvsadm -L --timeout\n\
               echo '--- our timeout'\nip netns exec dir appliance ipvs timeout\n";
    let out = run("nat", script);
    let stdout = &out.stdout;

    let rr = section(stdout, "rr");
    assert!(
        rr == ["rs1", "rs2", "rs1", "rs2"] || rr == ["rs2", "rs1", "rs2", "rs1"],
        "round robin should alternate, got {rr:?}\n{out}"
    );
    let wrr = section(stdout, "wrr");
    assert_eq!(wrr.len(), 8, "{out}");
    for cycle in wrr.chunks(4) {
        let rs1 = cycle.iter().filter(|a| **a == "rs1").count();
        assert_eq!(rs1, 3, "cycle {cycle:?} of {wrr:?}\n{out}");
    }

    // The witness agrees with the config...
    let table = section(stdout, "ipvsadm");
    for line in [
        format!("TCP  {VIP}:80 rr"),
        format!("TCP  {VIP}:8080 wrr"),
        format!("UDP  {VIP}:53 wlc ops"),
        "FWM  7 sh persistent 300 mask 255.255.255.0".to_string(),
    ] {
        assert!(table.contains(&line.as_str()), "{line}\n{out}");
    }
    assert!(lists(&table, "10.0.2.11:80", "Masq", 3), "{out}");
    assert!(lists(&table, "10.0.2.12:53", "Masq", 2), "{out}");
    // ...and `appliance ipvs list` prints the same table, byte for byte.
    assert_eq!(section(stdout, "list"), table, "{out}");
    let json: serde_json::Value = serde_json::from_str(&section(stdout, "json").join("\n"))
        .unwrap_or_else(|e| panic!("{e}\n{out}"));
    assert_eq!(json["services"].as_array().map(Vec::len), Some(4), "{out}");
    assert_eq!(json["version"], "1.2.1", "{out}");
    // The counters as ipvsadm prints them, and the 4 GETs to :80 among
    // them: read once the kernel's estimator, which sums them every 2 s,
    // has taken the last GET (nothing moves them after). The rates, which
    // it moves on each pass, in the same layout.
    let stats = section(stdout, "stats");
    assert_eq!(section(stdout, "our stats"), stats, "{out}");
    assert_eq!(
        section(stdout, "our exact"),
        section(stdout, "exact"),
        "{out}"
    );
    let conns = |line: &&str| line.split_whitespace().nth(2).map(str::to_string);
    let rr = stats
        .iter()
        .find(|l| l.starts_with(&format!("TCP  {VIP}:80 ")))
        .and_then(conns);
    assert_eq!(rr.as_deref(), Some("4"), "{out}");
    let shape = |lines: Vec<&str>| -> Vec<String> {
        lines
            .iter()
            .map(|l| l.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
            .collect()
    };
    let rate = section(stdout, "rate");
    assert!(rate.len() > 3, "{out}");
    assert_eq!(shape(section(stdout, "our rate")), shape(rate), "{out}");
    let svc_stats = &json["services"][0]["stats"];
    assert!(svc_stats["conns"].is_u64(), "{out}");

    let daemon = section(stdout, "daemon");
    assert!(
        daemon.len() == 1 && daemon[0].starts_with("master sync daemon (mcast=back, syncid=51"),
        "{out}"
    );
    assert_eq!(section(stdout, "our daemon"), section(stdout, "daemon"));
    assert_eq!(
        section(stdout, "daemon stopped"),
        Vec::<&str>::new(),
        "{out}"
    );
    assert_eq!(
        section(stdout, "timeout"),
        ["Timeout (tcp tcpfin udp): 1000 100 200"],
        "{out}"
    );
    assert_eq!(section(stdout, "our timeout"), section(stdout, "timeout"));
}

#[test]
fn reconcile_applies_only_the_difference_and_leaves_foreign_services() {
    let rs = |w1: u32, w2: u32| {
        format!(
            "  real_server 10.0.2.11 80 {{\n    weight {w1}\n  }}\n  \
             real_server 10.0.2.12 80 {{\n    weight {w2}\n  }}\n"
        )
    };
    // 80 stays as it is; 81 changes scheduler and a weight; 82 goes; 83
    // comes.
    let a = format!(
        "virtual_server {VIP} 80 {{\n  lb_algo rr\n  protocol TCP\n{}}}\n\
         virtual_server {VIP} 81 {{\n  lb_algo rr\n  protocol TCP\n{}}}\n\
         virtual_server {VIP} 82 {{\n  lb_algo rr\n  protocol TCP\n{}}}\n",
        rs(1, 1),
        rs(1, 1),
        rs(1, 1)
    );
    let b = format!(
        "virtual_server {VIP} 80 {{\n  lb_algo rr\n  protocol TCP\n{}}}\n\
         virtual_server {VIP} 81 {{\n  lb_algo wrr\n  protocol TCP\n{}}}\n\
         virtual_server {VIP} 83 {{\n  lb_algo lc\n  protocol TCP\n{}}}\n",
        rs(1, 1),
        rs(1, 5),
        rs(1, 1)
    );
    let mut script = nat_topology();
    script += &write_file("/root/a.conf", &a);
    script += &write_file("/root/b.conf", &b);
    script += &format!(
        "ip netns exec dir ipvsadm -A -t {VIP}:9000 -s lc\n\
         ip netns exec dir ipvsadm -a -t {VIP}:9000 -r 10.0.2.11:80 -m\n\
         echo '--- apply a'\n{APPLY} /root/a.conf\n\
         echo '--- again'\n{APPLY} /root/a.conf\n"
    );
    // A connection through the unchanged service, idle during the
    // reconcile, then carrying a request. Once it is established, wait for
    // the kernel's estimator (every 2 s) to publish the counters.
    script += &format!(
        "( sleep 10; printf 'GET / HTTP/1.0\\r\\n\\r\\n'; sleep 2 ) | ip netns exec client nc {VIP} 80 > /tmp/held 2>&1 &\n\
         held=$!\n\
         for i in $(seq 50); do\n\
         \x20 ip netns exec dir ipvsadm -Lnc | grep -q ESTABLISHED && break\n\
         \x20 sleep 0.1\n\
         done\n\
         sleep 3\n\
         echo '--- before'\nip netns exec dir ipvsadm -Ln --stats -t {VIP}:80\n\
         echo '--- apply b'\n{APPLY} /root/b.conf\n\
         echo '--- connections'\nip netns exec dir ipvsadm -Ln -t {VIP}:80\n\
         echo '--- after'\nip netns exec dir ipvsadm -Ln --stats -t {VIP}:80\n\
         wait $held || true\n\
         echo '--- held'\ncat /tmp/held\n\
         echo '--- table'\nip netns exec dir ipvsadm -Ln\n"
    );
    let out = run("reconcile", script);
    let stdout = &out.stdout;

    assert_eq!(
        section(stdout, "apply a"),
        [
            "ipvs: 9 change(s)".to_string(),
            format!("  add service TCP {VIP}:80"),
            format!("  add 10.0.2.11:80 to TCP {VIP}:80"),
            format!("  add 10.0.2.12:80 to TCP {VIP}:80"),
            format!("  add service TCP {VIP}:81"),
            format!("  add 10.0.2.11:80 to TCP {VIP}:81"),
            format!("  add 10.0.2.12:80 to TCP {VIP}:81"),
            format!("  add service TCP {VIP}:82"),
            format!("  add 10.0.2.11:80 to TCP {VIP}:82"),
            format!("  add 10.0.2.12:80 to TCP {VIP}:82"),
            "  1 service(s) not ours left alone".to_string(),
        ],
        "{out}"
    );
    assert_eq!(
        section(stdout, "again"),
        ["ipvs: in sync", "  1 service(s) not ours left alone"],
        "{out}"
    );
    assert_eq!(
        section(stdout, "apply b"),
        [
            "ipvs: 6 change(s)".to_string(),
            format!("  delete service TCP {VIP}:82"),
            format!("  edit service TCP {VIP}:81"),
            format!("  edit 10.0.2.12:80 of TCP {VIP}:81"),
            format!("  add service TCP {VIP}:83"),
            format!("  add 10.0.2.11:80 to TCP {VIP}:83"),
            format!("  add 10.0.2.12:80 to TCP {VIP}:83"),
            "  1 service(s) not ours left alone".to_string(),
        ],
        "{out}"
    );
    // The unchanged service kept its counters (a re-created one starts
    // from zero) and its live connection, which then carried a request.
    let before = section(stdout, "before");
    let after = section(stdout, "after");
    let conns = |lines: &[&str]| -> Option<u64> {
        let line = lines.iter().find(|l| l.starts_with("TCP "))?;
        line.split_whitespace().nth(2)?.parse().ok()
    };
    assert!(conns(&before).is_some_and(|c| c >= 1), "{out}");
    assert_eq!(conns(&after), conns(&before), "{out}");
    let active: u32 = section(stdout, "connections")
        .iter()
        .filter(|l| l.trim_start().starts_with("->"))
        .filter_map(|l| l.split_whitespace().nth(4)?.parse::<u32>().ok())
        .sum();
    assert_eq!(active, 1, "one active connection survives\n{out}");
    let held = section(stdout, "held");
    assert!(
        held.iter().any(|l| *l == "rs1" || *l == "rs2"),
        "the held connection answered after the reconcile: {held:?}\n{out}"
    );
    // The hand-made service is untouched; 81 is edited; 82 gone; 83 new.
    let table = section(stdout, "table");
    assert!(
        table.contains(&format!("TCP  {VIP}:9000 lc").as_str()),
        "{out}"
    );
    assert!(
        table.contains(&format!("TCP  {VIP}:81 wrr").as_str()),
        "{out}"
    );
    assert!(
        table.contains(&format!("TCP  {VIP}:83 lc").as_str()),
        "{out}"
    );
    assert!(!table.iter().any(|l| l.contains(":82 ")), "{out}");
    assert!(lists(&table, "10.0.2.12:80", "Masq", 5), "{out}");
}

#[test]
fn lvs_dr_round_robin_through_the_vip() {
    // client, director and real servers on one bridge; the real servers
    // hold the VIP on lo and neither answer ARP for it nor announce it.
    let vip = "10.0.0.100";
    let mut script = String::from("set -e\n");
    script += &scenario::bridge("br0");
    for (name, addr) in [
        ("client", "10.0.0.2"),
        ("dir", "10.0.0.1"),
        ("rs1", "10.0.0.11"),
        ("rs2", "10.0.0.12"),
    ] {
        script += &scenario::host("br0", name, addr);
    }
    script += &format!("ip -n dir addr add {vip}/32 dev eth0\n");
    for (name, addr) in [("rs1", "10.0.0.11"), ("rs2", "10.0.0.12")] {
        script += &scenario::dr_real_server(name, vip);
        script += &http_server(name, addr, "client");
    }
    let config = format!(
        "virtual_server {vip} 80 {{\n  lb_algo rr\n  lb_kind DR\n  protocol TCP\n  \
         real_server 10.0.0.11 80\n  real_server 10.0.0.12 80\n}}\n"
    );
    script += &write_file("/root/dr.conf", &config);
    script += &format!(
        "echo '--- apply'\n{APPLY} /root/dr.conf\n\
         echo '--- answers'\n{}\
         echo '--- ipvsadm'\nip netns exec dir ipvsadm -Ln\n",
        gets(&format!("http://{vip}/"), 4)
    );
    let out = run("dr", script);
    let answers = section(&out.stdout, "answers");
    assert!(
        answers == ["rs1", "rs2", "rs1", "rs2"] || answers == ["rs2", "rs1", "rs2", "rs1"],
        "round robin through the VIP should alternate, got {answers:?}\n{out}"
    );
    let table = section(&out.stdout, "ipvsadm");
    assert!(
        table.contains(&format!("TCP  {vip}:80 rr").as_str()),
        "{out}"
    );
    assert!(lists(&table, "10.0.0.11:80", "Route", 1), "{out}");
    assert!(lists(&table, "10.0.0.12:80", "Route", 1), "{out}");
}

/// `count` virtual services × 4 real servers (NAT, rr), and a fifth real
/// server 10.9.0.N in services `extra`.
fn large_config(count: usize, extra: std::ops::Range<usize>) -> String {
    let mut conf = String::new();
    for i in 0..count {
        let (hi, lo) = (i / 250, i % 250 + 1);
        conf += &format!(
            "virtual_server 10.1.{hi}.{lo} 80 {{\n  lb_algo rr\n  lb_kind NAT\n  protocol TCP\n"
        );
        for r in 0..4 {
            conf += &format!("  real_server 10.{}.{hi}.{lo} 8080 {{\n  }}\n", 2 + r);
        }
        if extra.contains(&i) {
            conf += &format!("  real_server 10.9.{hi}.{lo} 8080 {{\n  }}\n");
        }
        conf += "}\n";
    }
    conf
}

/// A table of many datagrams' worth of operations goes in whole; an
/// operation the kernel refuses in the middle of one (a real server added
/// by hand behind the daemon's back, so the reload's add finds it there)
/// fails the reload's dataplane naming that operation, and the repair
/// reads the kernel again and completes the table.
#[test]
fn a_large_table_goes_in_batches_and_a_refused_operation_is_named_then_repaired() {
    const SERVICES: usize = 300;
    let mut script = String::from("set -e\nmkdir -p /run/a /etc/appliance\nip link set lo up\n");
    script += &write_file("/etc/appliance/a.conf", &large_config(SERVICES, 0..0));
    script += &write_file("/etc/appliance/b.conf", &large_config(SERVICES, 100..200));
    script += "cp /etc/appliance/a.conf /etc/appliance/keepalived.conf\n\
        appliance run --config /etc/appliance/keepalived.conf --state-dir /run/a > /tmp/run.log 2>&1 &\n\
        for i in $(seq 300); do grep -q 'dataplane reconciled' /tmp/run.log && break; sleep 0.1; done\n\
        echo '--- loaded'\n\
        ipvsadm -Ln | grep -c '^TCP'\n\
        ipvsadm -Ln | grep -c Masq\n\
        ipvsadm -a -t 10.1.0.150:80 -r 10.9.0.150:8080 -m\n\
        cp /etc/appliance/b.conf /etc/appliance/keepalived.conf\n\
        echo '--- reload'\n\
        appliance reload --socket /run/a/appliance.sock 2>&1 || echo \"exit $?\"\n\
        for i in $(seq 300); do grep -q 'dataplane repaired' /tmp/run.log && break; sleep 0.1; done\n\
        echo '--- repaired'\n\
        ipvsadm -Ln | grep -c Masq\n\
        ipvsadm -Ln | grep -c ' 10.9.'\n\
        echo '--- log'\n\
        grep -o 'dataplane operation failed.*' /tmp/run.log\n\
        grep -c 'dataplane repaired' /tmp/run.log\n";
    let out = run(
        "a_large_table_goes_in_batches_and_a_refused_operation_is_named_then_repaired",
        script,
    );
    // 300 × 5 operations: 1,500, six datagrams of at most 256.
    assert_eq!(section(&out.stdout, "loaded"), ["300", "1200"], "{out}");
    let reload = section(&out.stdout, "reload").join("\n");
    assert!(
        reload.contains("add 10.9.0.150:8080 to TCP 10.1.0.150:80") && reload.contains("exists"),
        "the reload names the refused operation: {reload}\n{out}"
    );
    assert_eq!(section(&out.stdout, "repaired"), ["1300", "100"], "{out}");
    let log = section(&out.stdout, "log").join("\n");
    assert!(
        log.contains("op=add 10.9.0.150:8080 to TCP 10.1.0.150:80"),
        "{log}"
    );
    assert!(log.ends_with("\n1"), "repaired once: {log}");
}
