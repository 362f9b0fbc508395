//! IPVS on a real kernel (Debian's, under qemu): the modules load, and an
//! LVS-NAT service configured with ipvsadm alone balances HTTP requests
//! across two real servers, the baseline the appliance will replace.

use appliance_tests::vm::{Error, Vm, VmOutput, scenario, section};
use std::time::Duration;

fn report(test: &str, out: &VmOutput) {
    println!(
        "{test}: boot to scenario {:.2?}, whole VM run {:.2?}",
        out.boot, out.elapsed
    );
}

/// The harness itself: the scenario's stdout (large, ending without a
/// newline), stderr and exit code reach the host whole and apart.
#[test]
fn scenario_output_and_exit_code_reach_the_host_whole() {
    let out = Vm::builder()
        .script("seq 1 20000; printf end; echo oops >&2; exit 7")
        .run()
        .unwrap();
    report("harness", &out);
    let expected: String = (1..=20000).map(|i| format!("{i}\n")).collect::<String>() + "end";
    assert_eq!(out.exit_code, 7, "{out}");
    assert!(
        out.stdout == expected,
        "stdout differs ({} bytes, want {})\n{out}",
        out.stdout.len(),
        expected.len()
    );
    assert_eq!(out.stderr, "oops\n");
}

/// A scenario that hangs is cut off at the timeout, with the console.
#[test]
fn a_hanging_scenario_times_out() {
    let err = Vm::builder()
        .script("echo waiting; sleep 600")
        .timeout(Duration::from_secs(30))
        .run()
        .unwrap_err();
    match err {
        Error::Timeout {
            after,
            console,
            stdout,
            ..
        } => {
            assert_eq!(after, Duration::from_secs(30));
            assert_eq!(stdout, "waiting\n");
            assert!(console.contains("@@VM-SCENARIO-START@@"), "{console}");
        }
        other => panic!("expected a timeout, got {other}"),
    }
}

#[test]
fn modules_load_and_ipvsadm_reads_the_kernels_table() {
    let out = Vm::builder()
        .file(appliance_tests::appliance_bin(), "/usr/bin/appliance")
        .script(
            "echo '--- ipvsadm'; ipvsadm -Ln\n\
             echo '--- proc'; cat /proc/net/ip_vs\n\
             echo '--- modules'; cut -d' ' -f1 /proc/modules\n\
             echo '--- appliance'; appliance --version\n",
        )
        .run()
        .unwrap();
    report("modules", &out);
    out.assert_success();
    let stdout = &out.stdout;
    for name in ["ipvsadm", "proc"] {
        let header = section(stdout, name);
        assert!(
            header
                .first()
                .is_some_and(|l| l.starts_with("IP Virtual Server version ")),
            "{name}: no IPVS version header\n{out}"
        );
    }
    let loaded = section(stdout, "modules");
    for module in [
        "ip_vs",
        "ip_vs_rr",
        "ip_vs_wrr",
        "ip_vs_lc",
        "ip_vs_wlc",
        "ip_vs_sh",
        "ip_vs_dh",
        "ip_vs_mh",
        "ip_vs_sed",
        "ip_vs_nq",
        "ip_vs_lblc",
        "ip_vs_lblcr",
        "nf_conntrack",
        "veth",
        "bridge",
        "ipip",
    ] {
        assert!(loaded.contains(&module), "{module} not loaded\n{out}");
    }
    assert_eq!(
        section(stdout, "appliance"),
        [format!("appliance {}", env!("CARGO_PKG_VERSION"))],
        "{out}"
    );
}

/// Real servers: (name, address).
const REAL_SERVERS: [(&str, &str); 2] = [("rs1", "10.0.2.11"), ("rs2", "10.0.2.12")];
const VIP: &str = "10.0.1.100";

/// An LVS-NAT director in namespaces inside the guest, set up with
/// ipvsadm only, then `requests` HTTP GETs from the client to the VIP.
///
/// client 10.0.1.2 --veth-- director (front 10.0.1.1 + VIP; back 10.0.2.1)
/// --bridge-- rs1 10.0.2.11, rs2 10.0.2.12 (busybox httpd answering their
/// own name, default route via the director).
fn lvs_nat(scheduler: &str, weights: [u32; 2], requests: usize) -> VmOutput {
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
        script += &format!(
            "ip -n {name} route add default via 10.0.2.1\n\
             mkdir -p /srv/{name}\n\
             echo {name} > /srv/{name}/index.html\n\
             ip netns exec {name} httpd -p 80 -h /srv/{name}\n\
             up=0\n\
             for i in $(seq 50); do\n\
             \x20 if ip netns exec dir timeout 2 wget -qO /dev/null http://{addr}/; then up=1; break; fi\n\
             \x20 sleep 0.1\n\
             done\n\
             [ $up = 1 ] || {{ echo '{name} never answered' >&2; exit 1; }}\n"
        );
    }
    script += &format!("ip netns exec dir ipvsadm -A -t {VIP}:80 -s {scheduler}\n");
    for ((_, addr), weight) in REAL_SERVERS.iter().zip(weights) {
        script +=
            &format!("ip netns exec dir ipvsadm -a -t {VIP}:80 -r {addr}:80 -m -w {weight}\n");
    }
    script += &format!(
        "echo '--- answers'\n\
         for i in $(seq {requests}); do\n\
         \x20 ip netns exec client timeout 5 wget -qO- http://{VIP}/\n\
         done\n\
         echo '--- ipvsadm'\n\
         ip netns exec dir ipvsadm -Ln\n"
    );
    let out = Vm::builder().script(script).run().unwrap();
    out.assert_success();
    out
}

/// Whether `ipvsadm -Ln` lists `addr` as a masqueraded real server with
/// this weight.
fn lists_real_server(ipvsadm: &[&str], addr: &str, weight: u32) -> bool {
    let want = [
        "->".to_string(),
        format!("{addr}:80"),
        "Masq".into(),
        weight.to_string(),
    ];
    ipvsadm.iter().any(|l| {
        let fields: Vec<&str> = l.split_whitespace().take(4).collect();
        fields == want
    })
}

#[test]
fn lvs_nat_round_robin_alternates_between_real_servers() {
    let out = lvs_nat("rr", [1, 1], 4);
    report("rr", &out);
    let answers = section(&out.stdout, "answers");
    assert_eq!(answers.len(), 4, "{out}");
    assert!(
        answers == ["rs1", "rs2", "rs1", "rs2"] || answers == ["rs2", "rs1", "rs2", "rs1"],
        "round robin should alternate, got {answers:?}\n{out}"
    );
    let table = section(&out.stdout, "ipvsadm");
    assert!(
        table
            .iter()
            .any(|l| l.starts_with(&format!("TCP  {VIP}:80 rr"))),
        "{out}"
    );
    for (_, addr) in REAL_SERVERS {
        assert!(lists_real_server(&table, addr, 1), "{addr}\n{out}");
    }
}

#[test]
fn lvs_nat_weighted_round_robin_follows_weights_3_to_1() {
    let out = lvs_nat("wrr", [3, 1], 8);
    report("wrr", &out);
    let answers = section(&out.stdout, "answers");
    assert_eq!(answers.len(), 8, "{out}");
    // Each cycle of four connections holds three for rs1 and one for rs2.
    for cycle in answers.chunks(4) {
        let rs1 = cycle.iter().filter(|a| **a == "rs1").count();
        let rs2 = cycle.iter().filter(|a| **a == "rs2").count();
        assert_eq!((rs1, rs2), (3, 1), "cycle {cycle:?} of {answers:?}\n{out}");
    }
    let table = section(&out.stdout, "ipvsadm");
    assert!(lists_real_server(&table, "10.0.2.11", 3), "{out}");
    assert!(lists_real_server(&table, "10.0.2.12", 1), "{out}");
}
