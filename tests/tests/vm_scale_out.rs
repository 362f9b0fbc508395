//! Scale-out on IPVS (Debian's kernel under qemu; IPVS is per network
//! namespace, so three directors fit in one VM): FRR's bgpd and zebra in
//! a router namespace spread a client's connections over three directors
//! by ECMP (layer-4 hash); each director runs the daemon with `[bgp]`
//! and an `mh` (mh-port) DR service over the same four real servers, which
//! answer the client directly.
//!
//! ```text
//!  client 10.0.1.50 ── router 10.0.1.1 / 10.0.0.1 (FRR) ── d1 d2 d3 10.0.0.11-13
//!                                                       └─ rs1..rs4 10.0.0.21-24
//! ```
//! (one bridge, two subnets.)
//!
//! What it shows: when a director dies (SIGKILL, link down) the router
//! drops it within its hold timer, and with `lvs_sloppy_tcp` (the
//! daemon sets IPVS's `sloppy_tcp` in its namespace) every
//! established connection survives, those the dead director carried
//! included: the router sends them to another director, whose IPVS takes
//! the mid-stream packets as connections of their own and picks the same
//! real server (every director's `mh` table is the same). Without
//! `sloppy_tcp` the moved connections break (the other director's IPVS
//! takes only a SYN as a new connection): the test can tell.

use appliance_tests::vm::{Vm, VmOutput, scenario, section};
use std::time::Duration;

const VIP: &str = "10.0.100.100";
const DIRECTORS: [(&str, &str); 3] = [
    ("d1", "10.0.0.11"),
    ("d2", "10.0.0.12"),
    ("d3", "10.0.0.13"),
];
const SERVERS: [(&str, &str); 4] = [
    ("rs1", "10.0.0.21"),
    ("rs2", "10.0.0.22"),
    ("rs3", "10.0.0.23"),
    ("rs4", "10.0.0.24"),
];
/// Long-lived connections from the client.
const CONNECTIONS: usize = 24;

fn director(address: &str, sloppy: bool) -> String {
    let servers: String = SERVERS
        .iter()
        .map(|(_, ip)| format!("[[virtual_server.real_server]]\naddress = \"{ip}:80\"\n\n"))
        .collect();
    format!(
        "[global]\nrouter_id = \"{address}\"\ndataplane = \"ipvs\"\nlvs_sloppy_tcp = {sloppy}\n\n\
         [bgp]\nlocal_as = 65001\nrouter_id = \"{address}\"\nconnect_retry = \"1s\"\n\
         announce = [\"{VIP}/32\"]\n\n[[bgp.peer]]\naddress = \"10.0.0.1\"\nremote_as = 65000\n\n\
         [[virtual_server]]\nservice = {{ address = \"{VIP}:80\" }}\nlb_algo = \"mh\"\n\
         lb_kind = \"DR\"\nsched_flags = {{ port = true }}\n\n{servers}"
    )
}

fn router() -> String {
    let neighbors: String = DIRECTORS
        .iter()
        .map(|(_, ip)| format!(" neighbor {ip} remote-as 65001\n"))
        .collect();
    format!(
        "hostname router\nlog stdout\nrouter bgp 65000\n bgp router-id 10.0.0.1\n\
         no bgp ebgp-requires-policy\n timers bgp 1 3\n{neighbors}\
         address-family ipv4 unicast\n  maximum-paths 8\n exit-address-family\n"
    )
}

fn script(sloppy: bool) -> String {
    let mut s = String::from("set -e\n");
    s += &scenario::wait_for(
        "for f in /tmp/d1.log /tmp/d2.log /tmp/d3.log /tmp/zebra.log /tmp/bgpd.log; do \
         echo \"== $f\" >&2; tail -n 30 $f >&2 || true; done\n\
         ip -n router route >&2 || true",
    );
    s += &format!(
        "hops() {{ [ $(ip -n router route show {VIP} | grep -c 'nexthop via') -eq $1 ]; }}\n\
         lines() {{ [ $(wc -l < $1) -ge $2 ]; }}\n"
    );
    s += &scenario::bridge("br0");
    s += &scenario::host("br0", "router", "10.0.0.1");
    s += &scenario::host("br0", "client", "10.0.1.50");
    for (name, ip) in DIRECTORS.iter().chain(&SERVERS) {
        s += &scenario::host("br0", name, ip);
    }
    s += "ip -n router addr add 10.0.1.1/24 dev eth0\n\
          ip -n client route add default via 10.0.1.1\n";
    for (key, value) in [
        ("net.ipv4.ip_forward", "1"),
        ("net.ipv4.conf.all.send_redirects", "0"),
        ("net.ipv4.conf.eth0.send_redirects", "0"),
        ("net.ipv4.fib_multipath_hash_policy", "1"),
    ] {
        s += &format!("ip netns exec router sysctl -qw {key}={value}\n");
    }
    // Real servers: the VIP on lo (DR), the way back to the client by the
    // router, an echo server per connection.
    for (name, _) in SERVERS {
        s += &scenario::dr_real_server(name, VIP);
        s += &format!(
            "ip -n {name} route add 10.0.1.0/24 via 10.0.0.1\n\
             ip netns exec {name} nc -ll -p 80 -e /bin/cat &\n"
        );
    }
    // FRR drops to the frr user, whose vty group must hold it.
    s += &format!(
        "mkdir -p /etc\n\
         echo 'frr:x:100:101::/nonexistent:/bin/false' >> /etc/passwd\n\
         echo 'frr:x:101:' >> /etc/group\necho 'frrvty:x:102:frr' >> /etc/group\n\
         mkdir -p /run/frr-router\n\
         printf 'log stdout\\n' > /run/frr-router/zebra.conf\n\
         cat > /run/frr-router/bgpd.conf <<'EOF'\n{}EOF\n\
         chown -R 100:101 /run/frr-router\n\
         for d in zebra bgpd; do\n\
         \x20 ip netns exec router /usr/lib/frr/$d -f /run/frr-router/$d.conf -i /run/frr-router/$d.pid \
         -z /run/frr-router/zserv.api --vty_socket /run/frr-router -P 0 > /tmp/$d.log 2>&1 &\n\
         \x20 wait_for 20 \"$d to start\" test -e /run/frr-router/$d.vty\n\
         done\n",
        router()
    );
    for (name, ip) in DIRECTORS {
        s += &format!(
            "ip -n {name} addr add {VIP}/32 dev lo\n\
             cat > /root/{name}.toml <<'EOF'\n{}EOF\n\
             ip netns exec {name} appliance run --config /root/{name}.toml --state-dir /run/{name} \
             > /tmp/{name}.log 2>&1 &\n\
             {name}=$!\n",
            director(ip, sloppy)
        );
    }
    s += "wait_for 90 'three next hops' hops 3\n\
          echo '--- sloppy_tcp'\n\
          for d in d1 d2 d3; do echo \"$d $(ip netns exec $d cat /proc/sys/net/ipv4/vs/sloppy_tcp)\"; done\n";
    // Long-lived connections: a numbered line every 200 ms each, echoed.
    s += &format!(
        "for k in $(seq {CONNECTIONS}); do\n\
         \x20 ( i=0; while [ ! -e /tmp/stop ]; do i=$((i+1)); echo $i; sleep 0.2; done ) \
         | ip netns exec client nc {VIP} 80 > /tmp/c$k 2> /dev/null &\n\
         done\n\
         for k in $(seq {CONNECTIONS}); do wait_for 30 \"connection $k\" lines /tmp/c$k 3; done\n\
         echo '--- carried'\n\
         for d in d1 d2 d3; do echo \"$d $(ip netns exec $d ipvsadm -Lnc | grep -c ESTABLISHED)\"; done\n"
    );
    // d2 dies without a word: the router's hold timer (3 s) drops it.
    // Then each connection's lines are counted 5 s apart, once TCP's
    // retransmissions have had time to find the new path.
    s += &format!(
        "kill -9 $d2\nip -n d2 link set eth0 down\n\
         wait_for 15 'two next hops' hops 2\n\
         sleep 8\n\
         for k in $(seq {CONNECTIONS}); do eval before$k=$(wc -l < /tmp/c$k); done\n\
         sleep 5\n\
         echo '--- connections'\n\
         for k in $(seq {CONNECTIONS}); do eval b=\\$before$k; echo \"$k $b $(wc -l < /tmp/c$k)\"; done\n\
         echo '--- taken over'\n\
         for d in d1 d3; do echo \"$d $(ip netns exec $d ipvsadm -Lnc | grep -c ESTABLISHED)\"; done\n\
         touch /tmp/stop\n\
         kill $d1 $d3\n\
         echo '--- end'\n"
    );
    s
}

fn run(sloppy: bool) -> VmOutput {
    let mut vm = Vm::builder()
        .file(appliance_tests::appliance_bin(), "/usr/bin/appliance")
        .memory_mb(1024)
        .script(script(sloppy))
        .timeout(Duration::from_secs(280));
    for program in ["/usr/lib/frr/zebra", "/usr/lib/frr/bgpd"] {
        let path = appliance_tests::vm::require_tool(program, "frr").unwrap();
        vm = vm.file(path, program);
    }
    let out = vm.run().unwrap();
    out.assert_success();
    out
}

/// Each director's count in a `NAME COUNT` section.
fn counts(lines: &[&str]) -> Vec<(String, usize)> {
    lines
        .iter()
        .filter_map(|line| {
            let (name, count) = line.split_once(' ')?;
            Some((name.to_owned(), count.trim().parse().ok()?))
        })
        .collect()
}

/// The connections whose lines stopped flowing after d2 died.
fn broken(out: &VmOutput) -> Vec<String> {
    let lines = section(&out.stdout, "connections");
    assert_eq!(lines.len(), CONNECTIONS, "{out}");
    lines
        .iter()
        .filter(|line| {
            let v: Vec<usize> = line
                .split_whitespace()
                .map(|n| n.parse().expect("a count"))
                .collect();
            v[2] <= v[1]
        })
        .map(|line| (*line).to_owned())
        .collect()
}

/// Each director's IPVS has `sloppy_tcp` as its config says.
fn sloppy_tcp(out: &VmOutput, on: bool) {
    let got = section(&out.stdout, "sloppy_tcp");
    assert_eq!(got.len(), 3, "{out}");
    for line in got {
        let value = line.split_whitespace().nth(1);
        assert_eq!(value, Some(if on { "1" } else { "0" }), "{line}\n{out}");
    }
}

/// Every director carried some connections before d2 died.
fn spread(out: &VmOutput) {
    let carried = counts(&section(&out.stdout, "carried"));
    assert_eq!(carried.len(), 3, "{out}");
    assert_eq!(
        carried.iter().map(|(_, n)| n).sum::<usize>(),
        CONNECTIONS,
        "{out}"
    );
    assert!(carried.iter().all(|(_, n)| *n > 0), "{carried:?}\n{out}");
}

#[test]
fn with_sloppy_tcp_no_established_connection_breaks_when_a_director_dies() {
    let out = run(true);
    sloppy_tcp(&out, true);
    spread(&out);
    let broken = broken(&out);
    eprintln!(
        "sloppy_tcp: carried {:?}, then {:?}, broken {}",
        counts(&section(&out.stdout, "carried")),
        counts(&section(&out.stdout, "taken over")),
        broken.len()
    );
    assert!(broken.is_empty(), "broken: {broken:?}\n{out}");
}

#[test]
fn without_sloppy_tcp_the_dead_director_s_connections_break() {
    let out = run(false);
    sloppy_tcp(&out, false);
    spread(&out);
    let d2 = counts(&section(&out.stdout, "carried"))
        .into_iter()
        .find(|(name, _)| name == "d2")
        .map(|(_, n)| n)
        .expect("d2's count");
    let broken = broken(&out);
    eprintln!(
        "no sloppy_tcp: carried {:?}, broken {}",
        counts(&section(&out.stdout, "carried")),
        broken.len()
    );
    assert!(broken.len() >= d2, "{d2} on d2, broken {broken:?}\n{out}");
}
