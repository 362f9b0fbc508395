//! Scale-out on IPVS (Debian's kernel under qemu; IPVS is per network
//! namespace, so three directors fit in one VM), shared by the test
//! (tests/vm_scale_out.rs) and the benchmark (`scaleout_bench`): FRR's
//! bgpd and zebra in a router namespace spread a client's long-lived
//! connections over three directors by ECMP (layer-4 hash); each director
//! runs the daemon with `[bgp]` and an `mh` (mh-port) DR service over the
//! same four real servers, which answer the client directly.
//!
//! ```text
//!  client 10.0.1.50 ── router 10.0.1.1 / 10.0.0.1 (FRR) ── d1 d2 d3 10.0.0.11-13
//!                                                       └─ rs1..rs4 10.0.0.21-24
//! ```
//! (one bridge, two subnets.)
//!
//! The scenario: a director's box dies (link down, then the daemon
//! killed), so only the router's hold timer (3 s) drops it; each
//! connection's lines are counted 5 s apart once TCP's retransmissions
//! have had time to find the new path. Then the next director's daemon
//! alone is killed (link up): its socket's close ends the session at once.
//!
//! Sections of the output, `--- NAME`:
//! - `sloppy_tcp`: `DIRECTOR VALUE` as each director's IPVS has it;
//! - `carried`: `DIRECTOR COUNT` of live connections before;
//! - `ports before`, `ports after`: `DIRECTOR PORT`, the client ports of
//!   each director's live IPVS connections (established, a packet in the
//!   last 5 s: IPVS keeps a connection that went elsewhere until its
//!   timeout) before one dies and once the survivors took over (a port on
//!   a second director is a flow the router moved);
//! - `route before`, `route after`: the router's route to the VIP;
//! - `router events`: its route and neighbour changes (`ip monitor`) from
//!   the connections' start, the fault marked;
//! - `connections`: `K BEFORE AFTER`, connection K's echoed lines 5 s
//!   apart (not more: broken);
//! - `converged`: `FAULT SECONDS`, from the fault to the router's route
//!   holding one next hop less (`cut-off`: the dead box; `killed`: the
//!   next director's daemon),
//!   read from /proc/uptime (10 ms steps) by a poll every 10 ms.

use crate::vm::{Vm, VmBuilder, VmOutput, scenario, section};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

pub const VIP: &str = "10.0.100.100";
pub const DIRECTORS: [(&str, &str); 3] = [
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
/// What one run does.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// `lvs_sloppy_tcp` in every director's config.
    pub sloppy: bool,
    /// Long-lived connections from the client.
    pub connections: usize,
    /// The index in [`DIRECTORS`] of the director whose box dies; the
    /// next one's daemon is killed afterwards. Which one dies matters to
    /// the router: Linux's multipath hash gives each next hop a range of
    /// the hash in turn, and dropping the middle one leaves the others'
    /// ranges' flows where they were, dropping an end one does not.
    pub dead: usize,
}

impl Options {
    fn dead(&self) -> &'static str {
        DIRECTORS[self.dead % DIRECTORS.len()].0
    }

    fn killed(&self) -> &'static str {
        DIRECTORS[(self.dead + 1) % DIRECTORS.len()].0
    }

    /// How often each connection sends a line: 200 ms, or slower for more
    /// than 24 of them (at most ~120 lines a second in all).
    pub fn interval(&self) -> Duration {
        Duration::from_millis(200).max(Duration::from_millis(1000) * self.connections as u32 / 120)
    }

    fn survivors(&self) -> String {
        let dead = self.dead();
        let names: Vec<&str> = DIRECTORS
            .iter()
            .map(|d| d.0)
            .filter(|d| *d != dead)
            .collect();
        names.join(" ")
    }
}

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

/// Prints `--- NAME` and `DIRECTOR PORT` for each live connection of
/// `directors` (see `live` in the script).
fn ports(name: &str, directors: &str) -> String {
    format!(
        "echo '--- {name}'\n\
         for d in {directors}; do live $d | sed \"s/^/$d /\"; done\n"
    )
}

fn script(options: Options) -> String {
    let Options {
        sloppy,
        connections,
        ..
    } = options;
    let (dead, killed) = (options.dead(), options.killed());
    let mut s = String::from("set -e\n");
    s += &scenario::wait_for(
        "for f in /tmp/d1.log /tmp/d2.log /tmp/d3.log /tmp/zebra.log /tmp/bgpd.log; do \
         echo \"== $f\" >&2; tail -n 30 $f >&2 || true; done\n\
         ip -n router route >&2 || true",
    );
    s += &format!(
        "# hops N: the route to the VIP has N next hops (one is written without `nexthop`).\n\
         hops() {{ [ $(ip -n router route show {VIP} | awk '/nexthop via/ || /^[0-9].* via / {{ n++ }} END {{ print n + 0 }}') -eq $1 ]; }}\n\
         lines() {{ [ $(wc -l < $1) -ge $2 ]; }}\n\
         now() {{ cut -d' ' -f1 /proc/uptime; }}\n\
         # live DIRECTOR: the client ports of its established IPVS connections\n\
         # that saw a packet in the last 5 s. IPVS keeps a connection the router\n\
         # moved away until its timeout runs out: listed, but not live.\n\
         live() {{\n\
         \x20 tcp=$(ip netns exec $1 ipvsadm -L --timeout | awk '{{ print $(NF - 2) }}')\n\
         \x20 ip netns exec $1 ipvsadm -Lnc | awk -v tcp=$tcp '$3 == \"ESTABLISHED\" {{\n\
         \x20   split($2, t, \":\"); split($4, a, \":\")\n\
         \x20   if (t[1] * 60 + t[2] >= tcp - 5) print a[2] }}'\n\
         }}\n\
         # converged FAULT HOPS START: polls every 10 ms until the route has\n\
         # HOPS next hops (at most 30 s), prints FAULT and the seconds since START.\n\
         converged() {{\n\
         \x20 while ! hops $2; do\n\
         \x20   awk -v a=$3 -v b=$(now) 'BEGIN {{ exit !(b - a < 30) }}' || \
         {{ echo \"timed out waiting for $2 next hops\" >&2; exit 1; }}\n\
         \x20   sleep 0.01\n\
         \x20 done\n\
         \x20 echo \"$1 $(awk -v a=$3 -v b=$(now) 'BEGIN {{ printf \"%.2f\", b - a }}')\" >> /tmp/converged\n\
         }}\n"
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
    // The client's packets reach the router with the hash its TCP socket
    // gave them (one kernel: a veth keeps skb->hash), which the router's
    // multipath takes instead of hashing the ports, and TCP draws a new one
    // on a retransmission timeout or a duplicate segment: flows would hop
    // between directors with no route change. A router across a wire
    // hashes the 5-tuple, a fixed choice per flow; so is a hash never
    // redrawn.
    s += "ip netns exec client sysctl -qw net.core.txrehash=0\n";
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
          ip -t -n router monitor route neigh >> /tmp/router-events 2>&1 &\n\
          echo '--- sloppy_tcp'\n\
          for d in d1 d2 d3; do echo \"$d $(ip netns exec $d cat /proc/sys/net/ipv4/vs/sloppy_tcp)\"; done\n";
    // Long-lived connections: a numbered line every `interval` each,
    // echoed; the interval grows with their number, since each line costs
    // the emulated CPU a process.
    let interval = options.interval().as_secs_f64();
    s += &format!(
        "for k in $(seq {connections}); do\n\
         \x20 ( i=0; while [ ! -e /tmp/stop ]; do i=$((i+1)); echo $i; sleep {interval}; done ) \
         | ip netns exec client nc {VIP} 80 > /tmp/c$k 2> /dev/null &\n\
         done\n\
         for k in $(seq {connections}); do wait_for 30 \"connection $k\" lines /tmp/c$k 3; done\n\
         echo '--- carried'\n\
         for d in d1 d2 d3; do echo \"$d $(live $d | wc -l)\"; done\n"
    );
    s += &ports("ports before", "d1 d2 d3");
    s += &format!(
        "echo '--- route before'\nip -n router route show {VIP}\n\
         echo \"=== $(date) {dead} dies\" >> /tmp/router-events\n"
    );
    // A box dies: its link first, so no word reaches the router, whose
    // hold timer (3 s) drops it.
    s += &format!(
        "start=$(now)\n\
         ip -n {dead} link set eth0 down\nkill -9 ${dead}\n\
         converged cut-off 2 $start\n\
         sleep 8\n\
         for k in $(seq {connections}); do eval before$k=$(wc -l < /tmp/c$k); done\n\
         sleep 5\n\
         echo '--- connections'\n\
         for k in $(seq {connections}); do eval b=\\$before$k; echo \"$k $b $(wc -l < /tmp/c$k)\"; done\n"
    );
    s += &ports("ports after", &options.survivors());
    s += &format!("echo '--- route after'\nip -n router route show {VIP}\n");
    // The next director's daemon alone dies: the kernel closes its session.
    s += &format!(
        "touch /tmp/stop\n\
         start=$(now)\n\
         kill -9 ${killed}\n\
         converged killed 1 $start\n\
         echo '--- converged'\ncat /tmp/converged\n\
         echo '--- router events'\ncat /tmp/router-events\n\
         for d in d1 d2 d3; do eval kill \\$$d 2> /dev/null || true; done\n\
         echo '--- end'\n"
    );
    s
}

/// The VM for one run with `appliance` (the binary put in the guest).
pub fn vm(appliance: &Path, options: Options) -> crate::vm::Result<VmBuilder> {
    let mut vm = Vm::builder()
        .file(appliance, "/usr/bin/appliance")
        .memory_mb(1024)
        .script(script(options))
        .timeout(Duration::from_secs(300 + 2 * options.connections as u64));
    for program in ["/usr/lib/frr/zebra", "/usr/lib/frr/bgpd"] {
        let path = crate::vm::require_tool(program, "frr")?;
        vm = vm.file(path, program);
    }
    Ok(vm)
}

/// What a run's output says.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The director whose box died.
    pub dead: String,
    /// Each director's `sloppy_tcp`.
    pub sloppy_tcp: BTreeMap<String, bool>,
    /// Established connections per director before one died.
    pub carried: BTreeMap<String, usize>,
    /// The connections whose lines stopped flowing after it died, as
    /// `K BEFORE AFTER` lines.
    pub broken: Vec<String>,
    /// Connections of the surviving directors that the router sent to the
    /// other survivor after it died (seen only where IPVS takes them up
    /// mid-stream: with `sloppy_tcp`).
    pub moved_between_survivors: usize,
    /// Connections live on two directors in one listing: the router moved
    /// them within the last seconds, apart from the fault (see `router
    /// events`); left out of `moved_between_survivors`.
    pub unsettled: usize,
    /// From the dead director's link going down to the router dropping it.
    pub cut_off: Duration,
    /// From the next director's daemon being killed to the router
    /// dropping it.
    pub killed: Duration,
}

impl Outcome {
    /// Reads a run's sections; an error names what is missing.
    pub fn read(out: &VmOutput, options: Options) -> Result<Outcome, String> {
        let pairs = |name: &str| -> Vec<(String, String)> {
            section(&out.stdout, name)
                .iter()
                .filter_map(|line| {
                    let (a, b) = line.split_once(' ')?;
                    Some((a.to_owned(), b.trim().to_owned()))
                })
                .collect()
        };
        let sloppy_tcp = pairs("sloppy_tcp")
            .into_iter()
            .map(|(d, v)| (d, v == "1"))
            .collect::<BTreeMap<_, _>>();
        let carried = pairs("carried")
            .into_iter()
            .map(|(d, n)| Ok((d, n.parse().map_err(|e| format!("carried {n}: {e}"))?)))
            .collect::<Result<BTreeMap<String, usize>, String>>()?;
        if sloppy_tcp.len() != DIRECTORS.len() || carried.len() != DIRECTORS.len() {
            return Err(format!(
                "a director's sloppy_tcp or count is missing\n{out}"
            ));
        }
        let connections = section(&out.stdout, "connections");
        if connections.len() != options.connections {
            return Err(format!(
                "{} of {} connections counted\n{out}",
                connections.len(),
                options.connections
            ));
        }
        let mut broken = Vec::new();
        for line in connections {
            let v: Vec<usize> = line
                .split_whitespace()
                .map(|n| n.parse().map_err(|e| format!("connections {line}: {e}")))
                .collect::<Result<_, _>>()?;
            if v.len() != 3 {
                return Err(format!("connections: {line}"));
            }
            if v[2] <= v[1] {
                broken.push(line.to_owned());
            }
        }
        let before = pairs("ports before");
        let after = pairs("ports after");
        let mut unsettled = BTreeSet::new();
        for listing in [&before, &after] {
            let mut seen = BTreeSet::new();
            for (_, port) in listing.iter() {
                if !seen.insert(port) {
                    unsettled.insert(port);
                }
            }
        }
        let dead = options.dead();
        let moved_between_survivors = before
            .iter()
            .filter(|(d, port)| d != dead && !unsettled.contains(port))
            .filter(|(d, port)| after.iter().any(|(e, p)| e != d && p == port))
            .map(|(_, port)| port)
            .collect::<BTreeSet<_>>()
            .len();
        let converged = pairs("converged");
        let seconds = |fault: &str| -> Result<Duration, String> {
            let (_, text) = converged
                .iter()
                .find(|(f, _)| f == fault)
                .ok_or_else(|| format!("no convergence time for {fault}\n{out}"))?;
            let s: f64 = text
                .parse()
                .map_err(|e| format!("converged {fault} {text}: {e}"))?;
            Ok(Duration::from_secs_f64(s))
        };
        Ok(Outcome {
            dead: dead.to_owned(),
            sloppy_tcp,
            carried,
            broken,
            moved_between_survivors,
            unsettled: unsettled.len(),
            cut_off: seconds("cut-off")?,
            killed: seconds("killed")?,
        })
    }

    /// Established connections on the director whose box died.
    pub fn on_dead(&self) -> usize {
        self.carried.get(&self.dead).copied().unwrap_or(0)
    }
}
