//! Health checks drive IPVS, on a real kernel under qemu: the seed's
//! LVS-DR director config (`seed-lvs-dr.conf`, only its addresses and
//! interface rewritten) runs under `appliance run`; a real server's httpd
//! stops and its TCP_CHECK takes it out of the kernel's table (or, with
//! `inhibit_on_failure`, to weight 0); it starts again and is back at
//! weight 100. `ipvsadm` is the witness, the client's requests the proof,
//! and `appliance status --json` must agree.

use appliance::daemon::status::Status;
use appliance_tests::vm::{Vm, VmOutput, scenario, section};
use std::time::Duration;

const SEED: &str = include_str!("../fixtures/keepalived/seed-lvs-dr.conf");
/// The seed's VIP, 192.168.188.200, once its subnet is rewritten.
const VIP: &str = "10.0.0.200";
const RS1: &str = "10.0.0.129";
const RS2: &str = "10.0.0.137";
const SOCKET: &str = "/tmp/director/appliance.sock";

/// The seed on the guest's bridge: the same host numbers in 10.0.0.0/24,
/// `eth0` for `ens33`.
fn seed_in_guest() -> String {
    SEED.replace("ens33", "eth0")
        .replace("192.168.188.", "10.0.0.")
}

/// A TCP_CHECK's timings, as the config has them.
struct Timings {
    delay_loop: u64,
    connect_timeout: u64,
    retry: u64,
    delay_before_retry: u64,
}

impl Timings {
    /// The seed's own.
    const SEED: Timings = Timings {
        delay_loop: 10,
        connect_timeout: 10,
        retry: 3,
        delay_before_retry: 3,
    };

    /// Longest from a server's failure to its removal once its check has
    /// passed: the next run is at most `delay_loop` away, then `retry`
    /// retries `delay_before_retry` apart, each of the `retry + 1` runs
    /// taking up to `connect_timeout` (a refused connect takes none).
    fn detection(&self) -> Duration {
        Duration::from_secs(
            self.delay_loop
                + self.retry * self.delay_before_retry
                + (self.retry + 1) * self.connect_timeout,
        )
    }

    /// Longest from a failed server's recovery to its return: a down check
    /// is probed every `delay_loop`, and one success is enough.
    fn recovery(&self) -> Duration {
        Duration::from_secs(self.delay_loop + self.connect_timeout)
    }
}

/// Slack for the poll, the reconcile and the netlink round trip.
const SLACK: Duration = Duration::from_secs(2);

/// The scenario: bridge with director 10.0.0.1, client 10.0.0.2, rs1 and
/// rs2 (LVS-DR real servers: VIP on `lo`, arp_ignore/arp_announce, httpd
/// answering its name); the director runs `config`. Sections carry the
/// tables, statuses, answers and the measured times in milliseconds.
fn scenario(config: &str, detection: Duration, recovery: Duration) -> String {
    let mut s = String::from("set -e\n");
    s += &scenario::wait_for(
        "ip netns exec director ipvsadm -Ln >&2 || true\ncat /tmp/director.log >&2 || true",
    );
    s += &"ms() { awk '{ printf \"%d\\n\", $1 * 1000 }' /proc/uptime; }\n\
         status() { ip netns exec director appliance status --json --socket $SOCKET; }\n\
         # lists ADDR WEIGHT: the director's table has ADDR as a Route with WEIGHT.\n\
         lists() { ip netns exec director ipvsadm -Ln | grep -Eq \"^ +-> $1:80 +Route +$2 \"; }\n\
         unlisted() { ! lists \"$@\"; }\n\
         both_at_100() { lists $RS1 100 && lists $RS2 100; }\n\
         holds_vip() { ip -n director -4 addr show eth0 | grep -q \" $VIP/32\"; }\n\
         rs1_down() { status | grep -q '\"alive\": false'; }\n\
         passed() { [ $(status | grep -c '\"result\": \"check passed\"') = 2 ]; }\n"
        .replace("$SOCKET", SOCKET)
        .replace("$RS1", RS1)
        .replace("$RS2", RS2)
        .replace("$VIP", VIP);
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
    s += "ip netns exec director appliance run --config /root/director.conf --state-dir /tmp/director \
          > /tmp/director.log 2>&1 &\n\
          director=$!\n";
    s += "wait_for 15 'the director to hold the VIP' holds_vip\n\
          wait_for 10 'both real servers at weight 100' both_at_100\n";
    // Both checks have passed once, so the checker is in its steady loop
    // and the bound below holds from the stop.
    let warmup = detection.as_secs() + 2;
    s += &format!(
        "wait_for {warmup} 'both checks to pass' passed\n\
         echo '--- before'\nip netns exec director ipvsadm -Ln\n\
         echo '--- requests before'\n\
         for i in 1 2 3 4; do ip netns exec client timeout 5 wget -qO- http://{VIP}/; done\n\
         kill $rs1\n\
         wait $rs1 || true\n\
         t0=$(ms)\n"
    );
    let bound = (detection + SLACK).as_secs();
    s += &format!(
        "wait_for {bound} 'rs1 to go down' rs1_down\n\
         wait_for 2 'the table to follow' unlisted {RS1} 100\n\
         echo \"--- detected ms\"\necho $(( $(ms) - t0 ))\n\
         echo '--- down'\nip netns exec director ipvsadm -Ln\n\
         echo '--- status down'\nstatus\n\
         echo '--- requests down'\n\
         for i in 1 2 3 4 5 6; do ip netns exec client timeout 5 wget -qO- http://{VIP}/; done\n\
         ip netns exec rs1 httpd -f -p 80 -h /srv/rs1 &\n\
         rs1=$!\n\
         t0=$(ms)\n"
    );
    let bound = (recovery + SLACK).as_secs();
    s += &format!(
        "wait_for {bound} 'rs1 to be back at weight 100' lists {RS1} 100\n\
         echo \"--- recovered ms\"\necho $(( $(ms) - t0 ))\n\
         echo '--- after'\nip netns exec director ipvsadm -Ln\n\
         sleep 2.5\n\
         echo '--- status after'\nstatus\n\
         echo '--- log'\ncat /tmp/director.log\n\
         kill $director $rs1 $rs2\n"
    );
    s
}

/// Runs the scenario and prints the boot, run and measured times.
fn run(test: &str, config: &str, timings: &Timings) -> VmOutput {
    let out = Vm::builder()
        .file(appliance_tests::appliance_bin(), "/usr/bin/appliance")
        .script(scenario(config, timings.detection(), timings.recovery()))
        .timeout(Duration::from_secs(240))
        .run()
        .unwrap();
    println!(
        "{test}: boot to scenario {:.2?}, whole VM run {:.2?}, detected in {:?} ms (bound {:?}), recovered in {:?} ms (bound {:?})",
        out.boot,
        out.elapsed,
        section(&out.stdout, "detected ms"),
        timings.detection() + SLACK,
        section(&out.stdout, "recovered ms"),
        timings.recovery() + SLACK,
    );
    out.assert_success();
    out
}

/// The measured milliseconds of section `name`, at most `bound`.
fn assert_within(out: &VmOutput, name: &str, bound: Duration) {
    let ms: u64 = section(&out.stdout, name)
        .first()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name}\n{out}"));
    assert!(
        Duration::from_millis(ms) <= bound,
        "{name}: {ms} ms, over the bound {bound:?}\n{out}"
    );
}

/// Whether `table` (ipvsadm -Ln lines) lists `addr:80` as a DR real server
/// with `weight`.
fn lists(table: &[&str], addr: &str, weight: u32) -> bool {
    let want = [
        "->".to_string(),
        format!("{addr}:80"),
        "Route".into(),
        weight.to_string(),
    ];
    table.iter().any(|l| {
        let fields: Vec<&str> = l.split_whitespace().take(4).collect();
        fields == want
    })
}

fn listed(table: &[&str], addr: &str) -> bool {
    table
        .iter()
        .any(|l| l.split_whitespace().nth(1) == Some(&format!("{addr}:80")))
}

fn status(out: &VmOutput, name: &str) -> Status {
    serde_json::from_str(&section(&out.stdout, name).join("\n"))
        .unwrap_or_else(|e| panic!("{name} is not a Status: {e}\n{out}"))
}

/// Real server `addr`'s (alive, weight) in `status`.
fn health(status: &Status, addr: &str, out: &VmOutput) -> (bool, u32) {
    let vs = status
        .virtual_servers
        .first()
        .unwrap_or_else(|| panic!("no virtual server\n{out}"));
    assert_eq!(vs.service, format!("TCP {VIP}:80"), "{out}");
    let rs = vs
        .real_servers
        .iter()
        .find(|rs| rs.address.to_string() == format!("{addr}:80"))
        .unwrap_or_else(|| panic!("{addr} not in the status\n{out}"));
    (rs.alive, rs.weight)
}

/// What both tests check: the table before (both at 100, wlc DR), the
/// client's answers, rs1's return, and the status agreeing throughout.
fn assert_common(out: &VmOutput, timings: &Timings) {
    let stdout = &out.stdout;
    let before = section(stdout, "before");
    assert!(
        before.contains(&format!("TCP  {VIP}:80 wlc").as_str()),
        "{out}"
    );
    assert!(
        lists(&before, RS1, 100) && lists(&before, RS2, 100),
        "{out}"
    );
    let answers = section(stdout, "requests before");
    assert_eq!(answers.len(), 4, "{out}");
    assert!(answers.iter().all(|a| *a == "rs1" || *a == "rs2"), "{out}");

    assert_within(out, "detected ms", timings.detection() + SLACK);
    assert_eq!(
        section(stdout, "requests down"),
        ["rs2"; 6],
        "every request goes to rs2 while rs1 is down\n{out}"
    );
    let down = status(out, "status down");
    assert!(!health(&down, RS1, out).0, "rs1 is down\n{out}");
    assert_eq!(health(&down, RS2, out), (true, 100), "{out}");

    assert_within(out, "recovered ms", timings.recovery() + SLACK);
    let after = section(stdout, "after");
    assert!(lists(&after, RS1, 100) && lists(&after, RS2, 100), "{out}");
    let up = status(out, "status after");
    assert_eq!(health(&up, RS1, out), (true, 100), "{out}");
    // IPVS's counters reach the status: rs2 took the 6 requests made while
    // rs1 was down (with DR the replies bypass the director). Debian's 6.1
    // kernel answers with the counters its estimator last summed, every
    // 2 s: the status is read 2.5 s after the last request (a read within
    // 1 s once showed 5 connections of 8).
    let rs2 = up.virtual_servers[0]
        .real_servers
        .iter()
        .find(|rs| rs.address.to_string() == format!("{RS2}:80"))
        .unwrap_or_else(|| panic!("rs2 not in the status\n{out}"));
    let traffic = rs2
        .connections
        .and_then(|c| c.traffic)
        .unwrap_or_else(|| panic!("no traffic for rs2 in the status\n{out}"));
    assert!(
        traffic.conns >= 6 && traffic.in_packets > 0 && traffic.in_bytes > 0,
        "{traffic:?}\n{out}"
    );
    assert_eq!(traffic.out_packets, 0, "{out}");
}

#[test]
fn the_seeds_tcp_check_removes_a_stopped_real_server_and_restores_it() {
    let config = seed_in_guest();
    let timings = Timings::SEED;
    let out = run("seed", &config, &timings);
    assert_common(&out, &timings);
    let down = section(&out.stdout, "down");
    assert!(!listed(&down, RS1), "rs1 is removed\n{out}");
    assert!(lists(&down, RS2, 100), "{out}");
}

#[test]
fn with_inhibit_on_failure_a_stopped_real_server_stays_at_weight_zero() {
    let rs1_block = format!("real_server {RS1} 80 {{\n        weight 100\n");
    let seed = seed_in_guest();
    assert!(seed.contains(&rs1_block), "the seed's rs1 block moved");
    let config = seed
        .replace(
            &rs1_block,
            &format!("{rs1_block}        inhibit_on_failure\n"),
        )
        .replace("delay_loop 10", "delay_loop 1")
        .replace("connect_timeout 10", "connect_timeout 1")
        .replace("nb_get_retry 3", "nb_get_retry 1")
        .replace("delay_before_retry 3", "delay_before_retry 1");
    let timings = Timings {
        delay_loop: 1,
        connect_timeout: 1,
        retry: 1,
        delay_before_retry: 1,
    };
    let out = run("inhibit", &config, &timings);
    assert_common(&out, &timings);
    let down = section(&out.stdout, "down");
    assert!(lists(&down, RS1, 0), "rs1 stays, at weight 0\n{out}");
    assert!(lists(&down, RS2, 100), "{out}");
}
