//! IPVS connection sync across a failover, on a real kernel under qemu.
//!
//! Two directors, A (MASTER, priority 150) and B (BACKUP, 100), run
//! `appliance run` with the same keepalived.conf but for state and priority:
//! VRRP v2 on one bridge, the VIP, an LVS-DR service towards two real
//! servers (VIP on `lo`, arp_ignore/arp_announce), and
//! `lvs_sync_daemon eth0 VI_1`. A client holds one TCP connection through
//! the VIP that carries a numbered line every 100 ms, echoed back by the
//! real server, so any break shows as missing lines. Then the master dies
//! and B takes over: the SAME connection must go on.
//!
//! The planned operations keep it too: `appliance switchover` hands the
//! VIP to B (A forwards until B advertises), and a restart of A (`kill -9`
//! and start again within Master_Down_Interval) resumes as MASTER, so B
//! never takes over and the connection stays on A; so does a reload of A
//! that changes a real server's weight (a diff: the instance untouched).
//! Each snapshots the directors' merged timeline.
//!
//! The negative control runs the same without `lvs_sync_daemon`: B's IPVS
//! has no entry for the connection, so B's own stack resets it. That the
//! control breaks shows the test measures the sync, not something else.

use appliance_tests::timeline;
use appliance_tests::vm::{Vm, VmOutput, scenario, section};
use std::path::Path;
use std::time::Duration;

const VIP: &str = "10.0.0.100";
const CLIENT: &str = "10.0.0.2";
const PORT: u16 = 7000;

/// How the master dies.
#[derive(Clone, Copy)]
enum Death {
    /// SIGKILL, and its link cut: a killed process leaves the kernel's VIP
    /// and IPVS table in place, still forwarding, which a dead director
    /// does not.
    Kill,
    /// SIGTERM: the appliance resigns (priority 0) and removes the VIP.
    Term,
    /// Not a death: `appliance switchover`, make-before-break.
    Switchover,
    /// Not a death either: SIGKILL and a start again at once, which
    /// resumes as MASTER.
    Restart,
    /// Nor this: a reload of A's config with a real server's weight
    /// changed, applied as a diff (the VRRP instance untouched).
    Reload,
}

impl Death {
    /// Whether B ends up holding the VIP.
    fn moves(self) -> bool {
        !matches!(self, Self::Restart | Self::Reload)
    }
}

fn config(router: &str, state: &str, priority: u8, sync: bool) -> String {
    let sync = if sync {
        "  lvs_sync_daemon eth0 VI_1\n  lvs_timeouts tcp 600\n"
    } else {
        ""
    };
    format!(
        "global_defs {{\n  router_id {router}\n{sync}}}\n\
         vrrp_instance VI_1 {{\n  state {state}\n  interface eth0\n  virtual_router_id 51\n  \
         priority {priority}\n  advert_int 1\n  virtual_ipaddress {{\n    {VIP}/32\n  }}\n}}\n\
         virtual_server {VIP} {PORT} {{\n  lb_algo rr\n  lb_kind DR\n  protocol TCP\n  \
         real_server 10.0.0.11 {PORT}\n  real_server 10.0.0.12 {PORT}\n}}\n"
    )
}

/// The scenario as a busybox ash script; sections of its stdout carry
/// what the test checks.
fn scenario(sync: bool, death: Death) -> String {
    let mut s = String::from("set -e\n");
    s += &scenario::wait_for(
        "for f in /tmp/a.log /tmp/b.log; do echo \"== $f\" >&2; cat $f >&2 || true; done",
    );
    s += &"holds_vip() { ip -n $1 -4 addr show eth0 | grep -q \" $VIP/32\"; }\n\
         lines() { [ $(wc -l < /tmp/echo) -ge $1 ]; }\n"
        .replace("$VIP", VIP);
    s += &scenario::mark(&["/tmp/a.tl", "/tmp/b.tl"]);
    s += &scenario::bridge("br0");
    for (name, addr) in [
        ("client", CLIENT),
        ("a", "10.0.0.3"),
        ("b", "10.0.0.4"),
        ("rs1", "10.0.0.11"),
        ("rs2", "10.0.0.12"),
    ] {
        s += &scenario::host("br0", name, addr);
    }
    // Real servers: the VIP on lo, never answered for nor announced; an
    // echo server per connection.
    for (name, addr) in [("rs1", "10.0.0.11"), ("rs2", "10.0.0.12")] {
        s += &scenario::dr_real_server(name, VIP);
        s += &format!(
            "ip netns exec {name} nc -ll -p {PORT} -e /bin/cat &\n\
             wait_for 10 'the echo server of {name}' sh -c \
             \"echo ping | ip netns exec client timeout 2 nc {addr} {PORT} | grep -q ping\"\n"
        );
    }
    s += &format!(
        "cat > /root/a.conf <<'EOF'\n{}EOF\n\
         cat > /root/b.conf <<'EOF'\n{}EOF\n",
        config("A", "MASTER", 150, sync),
        config("B", "BACKUP", 100, sync)
    );
    // B first, so it is a backup (receiving) before A has connections.
    s += "mark start-b\n\
          ip netns exec b appliance run --config /root/b.conf --state-dir /run/b --timeline /tmp/b.tl > /tmp/b.log 2>&1 &\n\
          b=$!\n";
    s += &format!(
        "wait_for 10 \"B's IPVS service\" sh -c \"ip netns exec b ipvsadm -Ln | grep -q ':{PORT} '\"\n"
    );
    if sync {
        s += "wait_for 10 \"B's backup sync daemon\" sh -c \"ip netns exec b ipvsadm -L --daemon | grep -q '^backup'\"\n";
    }
    // B alone becomes master first (then A, of higher priority, preempts
    // it): one order of events, whatever the machine's speed.
    s += "wait_for 15 'B to hold the VIP alone' holds_vip b\n\
          mark start-a\n\
          ip netns exec a appliance run --config /root/a.conf --state-dir /run/a --timeline /tmp/a.tl > /tmp/a.log 2>&1 &\n\
          a=$!\n\
          wait_for 15 'A to hold the VIP' holds_vip a\n";
    if sync {
        s += "wait_for 10 \"A's master sync daemon\" sh -c \"ip netns exec a ipvsadm -L --daemon | grep -q '^master'\"\n";
    }
    s += "! holds_vip b\n";
    // The long-lived connection: a numbered line every 100 ms until told
    // to stop, then `end`; nc half-closes on the generator's EOF, the echo
    // server then closes, and nc exits.
    s += &format!(
        "( i=0; while [ ! -e /tmp/stop ]; do i=$((i+1)); echo $i; sleep 0.1; done; echo end ) \
         | ip netns exec client nc {VIP} {PORT} > /tmp/echo 2> /tmp/nc.err &\n\
         client=$!\n\
         wait_for 10 'the connection to carry 10 lines' lines 10\n"
    );
    // The witness: B's IPVS has the connection (or, without the sync
    // daemon, has not), before the failover.
    if sync {
        s += &format!(
            "wait_for 10 'the connection on B' sh -c \"ip netns exec b ipvsadm -Lnc | grep -q '{CLIENT}:.*{VIP}:{PORT}'\"\n"
        );
    } else {
        s += "sleep 3\n";
    }
    s += "echo '--- b connections before'\nip netns exec b ipvsadm -Lnc\n\
          echo '--- b timeouts'\nip netns exec b ipvsadm -L --timeout\n\
          before=$(wc -l < /tmp/echo)\n\
          echo \"--- before\"\necho $before\n";
    s += match death {
        Death::Kill => "mark kill-a\nkill -9 $a\nip -n a link set eth0 down\n",
        Death::Term => "mark stop-a\nkill -TERM $a\nwait $a || echo \"A exited $?\"\n",
        Death::Switchover => {
            "mark switchover\n\
             echo '--- switchover'\nip netns exec a appliance switchover --socket /run/a/appliance.sock\n"
        }
        Death::Reload => {
            "mark reload-a\n\
             sed 's/real_server 10.0.0.12 \\([0-9]*\\)$/real_server 10.0.0.12 \\1 {\\n    weight 2\\n  }/' /root/a.conf > /root/a2.conf\n\
             mv /root/a2.conf /root/a.conf\n\
             echo '--- reload'\nip netns exec a appliance reload --socket /run/a/appliance.sock\n\
             echo '--- a table after reload'\nip netns exec a ipvsadm -Ln\n"
        }
        Death::Restart => {
            "mark kill-a\nkill -9 $a\nwait $a || true\n\
             mark start-a\n\
             ip netns exec a appliance run --config /root/a.conf --state-dir /run/a --timeline /tmp/a.tl >> /tmp/a.log 2>&1 &\n\
             a=$!\n"
        }
    };
    s += if death.moves() {
        "wait_for 15 'B to take the VIP' holds_vip b\n"
    } else {
        // Longer than B's Master_Down_Interval (3 × 1 s + skew).
        "sleep 5\nholds_vip a\n! holds_vip b\n"
    };
    s += "echo '--- b daemons after'\nip netns exec b ipvsadm -L --daemon\n\
          echo '--- a daemons after'\nip netns exec a ipvsadm -L --daemon\n";
    // Data must go on flowing after the takeover (TCP's retransmission
    // backoff may take a few seconds to try again); a broken connection
    // ends the client instead.
    s += "i=0\n\
          while kill -0 $client 2> /dev/null && ! lines $((before + 20)) && [ $i -lt 200 ]; do\n\
          \x20 i=$((i+1)); sleep 0.1\n\
          done\n\
          touch /tmp/stop\n\
          i=0\n\
          while kill -0 $client 2> /dev/null && [ $i -lt 100 ]; do i=$((i+1)); sleep 0.1; done\n\
          kill $client 2> /dev/null && echo 'the client hung' >&2 || true\n\
          sleep 2\n";
    s += &format!(
        "echo '--- b stats'\nip netns exec b ipvsadm -Ln --stats -t {VIP}:{PORT}\n\
         echo '--- echo'\ncat /tmp/echo\n\
         echo '--- nc'\ncat /tmp/nc.err\n\
         echo '--- a timeline'\ncat /tmp/a.tl\n\
         echo '--- b timeline'\ncat /tmp/b.tl\n\
         echo '--- marks'\ncat /tmp/marks\n\
         echo '--- a.log'\ncat /tmp/a.log\n\
         echo '--- b.log'\ncat /tmp/b.log\n\
         kill $a $b 2> /dev/null || true\n"
    );
    s
}

fn run(test: &str, sync: bool, death: Death) -> VmOutput {
    let out = Vm::builder()
        .file(appliance_tests::appliance_bin(), "/usr/bin/appliance")
        .script(scenario(sync, death))
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

/// The echoed numbers (which must count 1, 2, 3, ... with no gap: one
/// TCP stream) and whether the client's `end` came back.
fn echoed(out: &VmOutput) -> (u32, bool) {
    let lines = section(&out.stdout, "echo");
    let mut count = 0;
    let mut ended = false;
    for line in lines {
        if line == "end" {
            ended = true;
            continue;
        }
        assert!(!ended, "nothing after end: {line}\n{out}");
        let n: u32 = line
            .parse()
            .unwrap_or_else(|_| panic!("not a number: {line}\n{out}"));
        assert_eq!(n, count + 1, "the stream skipped\n{out}");
        count = n;
    }
    (count, ended)
}

/// The directors' merged timeline with the test's marks, in the order
/// [`timeline::render_order`] snapshots.
fn merged_order(out: &VmOutput) -> String {
    let parse = |name: &str| {
        let text = section(&out.stdout, &format!("{name} timeline")).join("\n") + "\n";
        timeline::parse(&text, Path::new(&format!("/tmp/{name}.tl")))
            .unwrap_or_else(|e| panic!("{e}\n{out}"))
    };
    let (a, b) = (parse("a"), parse("b"));
    let marks = timeline::marks(&section(&out.stdout, "marks").join("\n"), &[&a, &b])
        .unwrap_or_else(|e| panic!("{e}\n{out}"));
    timeline::render_order(&timeline::merge(&[&a, &b, &marks]))
}

fn before(out: &VmOutput) -> u32 {
    section(&out.stdout, "before")
        .first()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("no line count before the failover\n{out}"))
}

/// Whether B's `ipvsadm -Lnc` lists the client's connection to the VIP.
fn b_had_the_connection(out: &VmOutput) -> bool {
    section(&out.stdout, "b connections before")
        .iter()
        .any(|l| {
            l.starts_with("TCP")
                && l.contains(&format!(" {CLIENT}:"))
                && l.contains(&format!(" {VIP}:{PORT} "))
        })
}

/// The takeover kept the connection: B had it before, it carried lines
/// after, through B, to the end.
fn assert_survived(out: &VmOutput) {
    assert!(
        b_had_the_connection(out),
        "B's IPVS had the synced connection before the failover\n{out}"
    );
    let (count, ended) = echoed(out);
    let before = before(out);
    assert!(
        ended && count >= before + 20,
        "the same connection went on after the takeover: {before} lines before, {count} in all, end {ended}\n{out}"
    );
    // Through B: its service counted the packets (DR: client to server).
    let in_packets = section(&out.stdout, "b stats")
        .iter()
        .find(|l| l.starts_with("TCP"))
        .and_then(|l| l.split_whitespace().nth(3)?.parse::<u64>().ok());
    assert!(
        in_packets.is_some_and(|p| p > 0),
        "B forwarded the connection's packets: {in_packets:?}\n{out}"
    );
    // B's sync daemon switched to master with its instance; the config's
    // timeout reached the kernel.
    let daemons = section(&out.stdout, "b daemons after");
    assert!(
        daemons.len() == 1 && daemons[0].starts_with("master sync daemon (mcast=eth0, syncid=51"),
        "{out}"
    );
    assert_eq!(
        section(&out.stdout, "b timeouts"),
        ["Timeout (tcp tcpfin udp): 600 120 300"],
        "{out}"
    );
}

#[test]
fn with_the_sync_daemon_a_connection_survives_the_masters_sigkill() {
    let out = run("sigkill", true, Death::Kill);
    assert_survived(&out);
}

#[test]
fn with_the_sync_daemon_a_connection_survives_the_masters_sigterm() {
    let out = run("sigterm", true, Death::Term);
    assert_survived(&out);
    // As keepalived, a stopping director stops its sync daemon.
    assert_eq!(
        section(&out.stdout, "a daemons after"),
        Vec::<&str>::new(),
        "{out}"
    );
}

#[test]
fn with_the_sync_daemon_a_connection_survives_a_switchover() {
    let out = run("switchover", true, Death::Switchover);
    assert_survived(&out);
    let said = section(&out.stdout, "switchover").join("\n");
    assert!(
        said.contains("VI_1 BACKUP (switchover: 10.0.0.4 took over)"),
        "{out}"
    );
    // A kept forwarding until B advertised, then stepped down; its sync
    // daemon follows its instance into backup.
    let daemons = section(&out.stdout, "a daemons after");
    assert!(
        daemons.len() == 1 && daemons[0].starts_with("backup sync daemon (mcast=eth0, syncid=51"),
        "{out}"
    );
    insta::assert_snapshot!(merged_order(&out));
}

/// A's `operation` kept A master and the connection on: it carried 20
/// lines more to its end, and B was master once only, alone before A
/// started.
fn assert_stayed_on_a(out: &VmOutput, operation: &str) {
    let (count, ended) = echoed(out);
    let before = before(out);
    assert!(
        ended && count >= before + 20,
        "the connection went on across A's {operation}: {before} lines before, {count} in all, end {ended}\n{out}"
    );
    let b_log = section(&out.stdout, "b.log").join("\n");
    assert_eq!(
        b_log.matches("to=MASTER").count(),
        1,
        "B never took over across A's {operation}\n{out}"
    );
}

/// A restart within Master_Down_Interval: A resumes as MASTER with the
/// kernel's table and connections as it left them, B never takes over,
/// and the connection carries on through A.
#[test]
fn a_connection_survives_a_restart_of_the_master() {
    let out = run("restart", true, Death::Restart);
    assert_stayed_on_a(&out, "restart");
    let a_log = section(&out.stdout, "a.log").join("\n");
    assert!(a_log.contains("resumed"), "A resumed as master\n{out}");
    insta::assert_snapshot!(merged_order(&out));
}

#[test]
fn without_the_sync_daemon_the_connection_breaks_on_failover() {
    let out = run("no sync", false, Death::Kill);
    assert!(
        !b_had_the_connection(&out),
        "without the sync daemon B knows nothing of the connection\n{out}"
    );
    let (count, ended) = echoed(&out);
    assert!(
        count >= before(&out) && !ended,
        "the connection should break at the takeover, got {count} lines, end {ended}\n{out}"
    );
}

/// A reload that changes a real server's weight, on the master with its
/// connection flowing: applied as a diff, the instance untouched (no state
/// change, no advert gap B would take over in), the connection on.
#[test]
fn a_connection_survives_a_reload_of_the_master() {
    let out = run("reload", true, Death::Reload);
    let said = section(&out.stdout, "reload").join("\n");
    assert!(said.contains("reloaded"), "{said}\n{out}");
    let table = section(&out.stdout, "a table after reload");
    assert!(
        table.iter().any(|l| {
            let fields: Vec<&str> = l.split_whitespace().take(4).collect();
            fields == ["->", &format!("10.0.0.12:{PORT}"), "Route", "2"]
        }),
        "the new weight is in A's table\n{out}"
    );
    assert_stayed_on_a(&out, "reload");
    insta::assert_snapshot!(merged_order(&out));
}
