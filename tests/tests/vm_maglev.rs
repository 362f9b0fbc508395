//! IPVS's `mh` scheduler against the appliance's model of it
//! (`appliance_core::dataplane::maglev`), on a real kernel (Debian's,
//! under qemu): every connection a client opens through an `mh` service
//! (with `mh-port`) goes to the real server the model's table predicts
//! for its source port, for a new service and again after one server is
//! removed. The model is given the servers in the kernel's own order
//! (`ipvsadm -Ln --nosort`: newest first, since IPVS adds a server at the
//! head of its list; a plain `-Ln` sorts them, and a table built in that
//! order differs from the kernel's on a few slots). Each connection leaves
//! from a source port the test picks (the client's port range narrowed to
//! that one port), so every run checks the same flows, and the kernel's
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
/// Connections opened before and after the removal, each from its own
/// source port.
const FLOWS: u16 = 64;
/// The first source port of each round. The rounds' ports do not overlap
/// (a port of the first round would meet its own connection, still in
/// TIME_WAIT, instead of the scheduler), and each round holds a port
/// whose slot a table built from the sorted listing gives to another
/// server than the kernel's does (34222, 34545), so the test can tell the
/// two orders apart (it checks that it can).
const FIRST_PORTS: [u16; 2] = [34200, 34530];
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

/// One GET from each of `FLOWS` source ports from `first`, one after the
/// other: one line with the answering server's name each.
fn flows(first: u16) -> String {
    format!(
        "for p in $(seq {first} {last}); do\n\
         \x20 ip netns exec client sysctl -qw net.ipv4.ip_local_port_range=\"$p $p\"\n\
         \x20 printf 'GET / HTTP/1.0\\r\\n\\r\\n' | ip netns exec client nc -w 4 {VIP} 80 | tail -n 1\n\
         done\n",
        last = first + FLOWS - 1
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
         echo '--- table'\nip netns exec dir ipvsadm -Ln --nosort\n\
         echo '--- flows'\n{}\
         echo '--- conns'\nip netns exec dir ipvsadm -Lnc\n\
         {APPLY} /root/without-rs2.toml\n\
         echo '--- table after'\nip netns exec dir ipvsadm -Ln --nosort\n\
         echo '--- flows after'\n{}\
         echo '--- conns after'\nip netns exec dir ipvsadm -Lnc\n\
         echo '--- end'\n",
        flows(FIRST_PORTS[0]),
        flows(FIRST_PORTS[1])
    );
    script
}

/// The real servers of the one service in an `ipvsadm -Ln --nosort`
/// listing, in its order (the kernel's), with their weights.
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
    for (table, flows, conns, count, first) in [
        ("table", "flows", "conns", 4, FIRST_PORTS[0]),
        (
            "table after",
            "flows after",
            "conns after",
            3,
            FIRST_PORTS[1],
        ),
    ] {
        let servers = listed(&section(stdout, table));
        assert_eq!(servers.len(), count, "{out}");
        let answers = section(stdout, flows);
        assert_eq!(
            answers.len(),
            usize::from(FLOWS),
            "every flow answered\n{out}"
        );
        // The connections of this round: the earlier round's are still
        // listed (TIME_WAIT).
        let ports: BTreeSet<u16> = (first..first + FLOWS).collect();
        let got: BTreeMap<u16, IpAddr> = connections(&section(stdout, conns))
            .into_iter()
            .filter(|(port, _)| ports.contains(port))
            .collect();
        assert_eq!(got.len(), ports.len(), "a connection per port\n{out}");
        let want = predicted(&servers, &ports);
        assert_eq!(got, want, "{table}: IPVS against the model\n{out}");
        let mut sorted = servers.clone();
        sorted.sort();
        assert_ne!(
            predicted(&sorted, &ports),
            want,
            "{table}: the ports cannot tell the kernel's order from the sorted one"
        );
        if count < SERVERS.len() {
            let removed: IpAddr = SERVERS[1].1.parse().unwrap();
            assert!(!got.values().any(|rs| *rs == removed), "{out}");
        }
        let used: BTreeSet<IpAddr> = got.values().copied().collect();
        assert_eq!(used.len(), count, "every server took some\n{out}");
    }
}
