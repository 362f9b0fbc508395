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
//! connection table (`ipvsadm -Lnc`) says which port went where. A
//! second test sets a server's weight to 0 instead (`inhibit_on_failure`)
//! with `mh-fallback`: IPVS keeps its table, and only that server's flows
//! move. What
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

/// The service with `servers`; `fallback` sets `mh-fallback`.
fn config(servers: &[(&str, &str, u32)], fallback: bool) -> String {
    let mut toml = format!(
        "[global]\ndataplane = \"ipvs\"\n\n[[virtual_server]]\n\
         service = {{ address = \"{VIP}:80\" }}\nlb_algo = \"mh\"\nlb_kind = \"NAT\"\n\
         sched_flags = {{ port = true, fallback = {fallback} }}\n\n"
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

/// The scenario: each round applies its config, then opens `FLOWS`
/// connections from source ports on from its first port; sections
/// `table I`, `flows I`, `conns I` for round I.
fn script(rounds: &[(String, u16)]) -> String {
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
    for (i, (toml, first)) in rounds.iter().enumerate() {
        script += &format!(
            "cat > /root/{i}.toml <<'EOF'\n{toml}EOF\n\
             {APPLY} /root/{i}.toml\n\
             echo '--- table {i}'\nip netns exec dir ipvsadm -Ln --nosort\n\
             echo '--- flows {i}'\n{}\
             echo '--- conns {i}'\nip netns exec dir ipvsadm -Lnc\n",
            flows(*first)
        );
    }
    script += "echo '--- end'\n";
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

fn run(rounds: &[(String, u16)]) -> VmOutput {
    let out = Vm::builder()
        .file(appliance_tests::appliance_bin(), "/usr/bin/appliance")
        .script(script(rounds))
        .timeout(Duration::from_secs(280))
        .run()
        .unwrap();
    out.assert_success();
    out
}

/// Round `round`'s servers in the kernel's order, and the real server
/// each of its ports went to.
fn observed(
    out: &VmOutput,
    round: usize,
    first: u16,
) -> (Vec<(SocketAddr, u32)>, BTreeMap<u16, IpAddr>) {
    let servers = listed(&section(&out.stdout, &format!("table {round}")));
    let answers = section(&out.stdout, &format!("flows {round}"));
    assert_eq!(
        answers.len(),
        usize::from(FLOWS),
        "every flow answered\n{out}"
    );
    // The connections of this round: the earlier rounds' are still
    // listed (TIME_WAIT).
    let ports: BTreeSet<u16> = (first..first + FLOWS).collect();
    let got: BTreeMap<u16, IpAddr> = connections(&section(&out.stdout, &format!("conns {round}")))
        .into_iter()
        .filter(|(port, _)| ports.contains(port))
        .collect();
    assert_eq!(got.len(), ports.len(), "a connection per port\n{out}");
    (servers, got)
}

#[test]
fn ipvs_mh_sends_each_flow_where_the_model_s_table_says_before_and_after_a_removal() {
    let without_rs2: Vec<_> = SERVERS.iter().copied().filter(|s| s.0 != "rs2").collect();
    let rounds = [
        (config(&SERVERS, false), FIRST_PORTS[0]),
        (config(&without_rs2, false), FIRST_PORTS[1]),
    ];
    let out = run(&rounds);
    for (round, (_, first)) in rounds.iter().enumerate() {
        let count = if round == 0 { 4 } else { 3 };
        let (servers, got) = observed(&out, round, *first);
        assert_eq!(servers.len(), count, "{out}");
        let ports: BTreeSet<u16> = got.keys().copied().collect();
        let want = predicted(&servers, &ports);
        assert_eq!(got, want, "round {round}: IPVS against the model\n{out}");
        let mut sorted = servers.clone();
        sorted.sort();
        assert_ne!(
            predicted(&sorted, &ports),
            want,
            "round {round}: the ports cannot tell the kernel's order from the sorted one"
        );
        if count < SERVERS.len() {
            let removed: IpAddr = SERVERS[1].1.parse().unwrap();
            assert!(!got.values().any(|rs| *rs == removed), "{out}");
        }
        let used: BTreeSet<IpAddr> = got.values().copied().collect();
        assert_eq!(used.len(), count, "every server took some\n{out}");
    }
}

/// A real server set to weight 0 (what `inhibit_on_failure` does on a
/// failed check) keeps its slots, since IPVS builds the table from each
/// server's last weight above 0: with `mh-fallback` only the flows of
/// its slots go elsewhere, every other flow stays on its server, and the
/// kernel's list keeps its order (no re-add at the head when it is back).
#[test]
fn ipvs_mh_with_fallback_moves_only_a_weight_0_server_s_flows() {
    let inhibited: Vec<_> = SERVERS
        .iter()
        .map(|&(name, addr, weight)| (name, addr, if name == "rs2" { 0 } else { weight }))
        .collect();
    let rounds = [
        (config(&SERVERS, true), FIRST_PORTS[0]),
        (config(&inhibited, true), FIRST_PORTS[0] + FLOWS),
    ];
    let out = run(&rounds);
    let (servers, got) = observed(&out, 0, rounds[0].1);
    let ports: BTreeSet<u16> = got.keys().copied().collect();
    assert_eq!(
        got,
        predicted(&servers, &ports),
        "IPVS against the model\n{out}"
    );
    let (after, got) = observed(&out, 1, rounds[1].1);
    let addresses = |list: &[(SocketAddr, u32)]| list.iter().map(|s| s.0).collect::<Vec<_>>();
    assert_eq!(
        addresses(&after),
        addresses(&servers),
        "the same order\n{out}"
    );
    let ports: BTreeSet<u16> = got.keys().copied().collect();
    // The table of before the weight change: IPVS keeps it.
    let table = predicted(&servers, &ports);
    let rs2: IpAddr = SERVERS[1].1.parse().unwrap();
    let theirs = table.values().filter(|rs| **rs == rs2).count();
    assert!(
        theirs > 0,
        "no port of the round falls in rs2's slots: pick others"
    );
    for (port, rs) in &got {
        if table[port] == rs2 {
            assert_ne!(*rs, rs2, "port {port} still went to rs2\n{out}");
        } else {
            assert_eq!(*rs, table[port], "port {port} moved\n{out}");
        }
    }
}
