//! The VRRP pair in containers (the appliance image and the demo's
//! configs), balancing the VIP's HTTP port over two nginx real servers
//! (LVS-NAT, the real servers' replies routed back through the VIP): the client's requests to the VIP go round robin to
//! rs1 and rs2; the master holds the VIP; stopped, paused or cut off the
//! network, the backup takes it over, and the answers keep coming. The
//! failover tests snapshot the merged failover timeline of both directors
//! (event order exact, times checked within bounds apart).

use appliance::timeline::EventKind;
use appliance::vrrp::machine::State;
use appliance_tests::containers::{
    Container, ExecOutput, HTTP_PORT, Images, Lab, VIP, images, is_mark, is_state,
};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

const RS1: u8 = 11;
const RS2: u8 = 12;
const CLIENT: u8 = 20;
/// Startup takes master_down_interval (3 adverts + skew) before MASTER.
const START: Duration = Duration::from_secs(10);

struct Pair {
    lab: Lab,
    images: &'static Images,
    master: Container,
    backup: Container,
    rs1: Container,
    rs2: Container,
    client: Container,
}

/// Starts the real servers and the client, then the master, waits until it
/// holds the VIP, then the backup: the start of the timeline is the same
/// every run.
fn pair(test: &str) -> Pair {
    let images = images().expect("images");
    let lab = Lab::new(test).expect("lab");
    let rs1 = lab.real_server(images, "rs1", RS1).expect("rs1");
    let rs2 = lab.real_server(images, "rs2", RS2).expect("rs2");
    let client = lab.client(images, CLIENT).expect("client");
    let (master, backup) = lab
        .demo_directors(images, START)
        .expect("master MASTER, backup BACKUP");
    // One more advert of the master reaches the backup (and resolves its
    // address): a resign right after is then sent at once, not queued
    // behind an ARP request that the stopping container never sees
    // answered.
    let adverts = |lab: &Lab| {
        lab.timeline(&master)
            .expect("master timeline")
            .iter()
            .filter(|l| matches!(l.event.kind, EventKind::Advert { .. }))
            .count()
    };
    let before = adverts(&lab);
    let start = Instant::now();
    while adverts(&lab) <= before {
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "the master sends no advert"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let pair = Pair {
        lab,
        images,
        master,
        backup,
        rs1,
        rs2,
        client,
    };
    pair.assert_holders(&["master"]);
    pair
}

impl Pair {
    fn vip(&self) -> Ipv4Addr {
        self.lab.address(VIP)
    }

    /// Exactly `holders` have the VIP on their eth0 (read with `ip`).
    fn assert_holders(&self, holders: &[&str]) {
        let mut have = Vec::new();
        for c in [&self.master, &self.backup] {
            let addrs = self.lab.addresses(self.images, c).expect("addresses");
            if addrs.contains(&self.vip()) {
                have.push(c.role.as_str());
            }
        }
        assert_eq!(have, holders, "who holds the VIP {}", self.vip());
    }

    fn url(&self) -> String {
        format!("http://{}:{HTTP_PORT}/", self.vip())
    }

    /// What a real server's page says: "`role` `address`".
    fn page(rs: &Container) -> String {
        format!("{} {}", rs.role, rs.address)
    }

    /// `n` requests from the client to the VIP, one after the other: each
    /// answer's page, or "FAIL" for a request that got none within `timeout`.
    fn requests(&self, n: u32, timeout: &str) -> Vec<String> {
        let out = self
            .lab
            .exec(
                &self.client,
                &["sh", "-c", &requests_script(n, timeout, "0", &self.url())],
            )
            .expect("curl");
        assert_eq!(out.code, 0, "the request loop: {out:?}");
        out.stdout.lines().map(str::to_string).collect()
    }

    /// Waits until the client's requests to the VIP reach both real
    /// servers (the director has programmed its dataplane).
    fn await_balancing(&self, within: Duration) {
        let start = Instant::now();
        let want = [Self::page(&self.rs1), Self::page(&self.rs2)];
        loop {
            let answers = self.requests(2, "1");
            if want.iter().all(|w| answers.contains(w)) {
                return;
            }
            assert!(
                start.elapsed() < within,
                "the VIP does not balance over both real servers within {within:?}: {answers:?}\n\
                 master logs:\n{}",
                self.lab.logs(&self.master).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn timeline(&self) -> appliance_tests::containers::Merged {
        self.lab
            .merged_timeline(&[&self.master, &self.backup])
            .expect("timelines")
    }
}

/// A shell loop (run in the client) of `n` curls to `url`, `pause` seconds
/// apart, each printing the page or "FAIL".
fn requests_script(n: u32, timeout: &str, pause: &str, url: &str) -> String {
    format!(
        "i=0; while [ $i -lt {n} ]; do \
         curl -fsS --max-time {timeout} {url} 2>/dev/null || echo FAIL; \
         i=$((i + 1)); sleep {pause}; done"
    )
}

/// Whether `answers` alternate between two different pages.
fn alternate(answers: &[String]) -> bool {
    answers.len() >= 2
        && answers[0] != answers[1]
        && answers
            .iter()
            .enumerate()
            .all(|(i, a)| a == &answers[i % 2])
}

fn assert_within(what: &str, delay: Duration, min: Duration, max: Duration) {
    assert!(
        (min..=max).contains(&delay),
        "{what} took {delay:?}, expected between {min:?} and {max:?}"
    );
}

#[test]
fn stopped_master_resigns_backup_takes_over_master_comes_back() {
    let p = pair("stop");
    p.lab.mark("stop master");
    p.lab.stop(&p.master).expect("stop");
    p.lab
        .wait_state(&p.backup, State::Master, Duration::from_secs(5))
        .expect("backup takes over");
    p.assert_holders(&["backup"]);

    p.lab.mark("start master");
    p.lab.start(&p.master).expect("start");
    p.lab
        .wait_state(&p.backup, State::Backup, START)
        .expect("backup steps down");
    p.lab
        .wait_state(&p.master, State::Master, START)
        .expect("master preempts");
    p.assert_holders(&["master"]);

    let t = p.timeline();
    // A resigning master sends priority 0: the backup waits only its skew
    // time ((256 - 100) / 256 s), not the master down interval.
    assert_within(
        "takeover after stop",
        t.delay(is_mark("stop master"), is_state("backup", State::Master))
            .unwrap(),
        Duration::from_millis(300),
        Duration::from_millis(2000),
    );
    // The restarted master starts as backup and preempts after its master
    // down interval (3 x 1s + (256 - 150) / 256 s).
    assert_within(
        "preemption after start",
        t.delay(is_mark("start master"), is_state("master", State::Master))
            .unwrap(),
        Duration::from_millis(3000),
        Duration::from_millis(5000),
    );
    insta::assert_snapshot!(t.render());
}

#[test]
fn paused_master_is_taken_over_and_steps_back_in_on_unpause() {
    let p = pair("pause");
    p.lab.mark("pause master");
    p.lab.pause(&p.master).expect("pause");
    p.lab
        .wait_state(&p.backup, State::Master, START)
        .expect("backup takes over");
    // The frozen master still has the VIP on its interface, as a hung
    // host would.
    p.assert_holders(&["master", "backup"]);

    p.lab.mark("unpause master");
    p.lab.unpause(&p.master).expect("unpause");
    p.lab
        .wait_state(&p.backup, State::Backup, START)
        .expect("backup steps down");
    p.assert_holders(&["master"]);

    let t = p.timeline();
    // No goodbye: the backup waits its master down interval, less what had
    // passed since the last advert (up to 1s).
    assert_within(
        "takeover after pause",
        t.delay(is_mark("pause master"), is_state("backup", State::Master))
            .unwrap(),
        Duration::from_millis(2500),
        Duration::from_millis(4500),
    );
    insta::assert_snapshot!(t.render());
}

#[test]
fn disconnected_master_faults_and_backup_takes_over() {
    let p = pair("disconnect");
    p.lab.mark("disconnect master");
    p.lab.disconnect(&p.master).expect("disconnect");
    p.lab
        .wait_state(&p.master, State::Fault, Duration::from_secs(5))
        .expect("master faults");
    p.lab
        .wait_state(&p.backup, State::Master, START)
        .expect("backup takes over");
    p.assert_holders(&["backup"]);

    let t = p.timeline();
    assert_within(
        "takeover after disconnect",
        t.delay(
            is_mark("disconnect master"),
            is_state("backup", State::Master),
        )
        .unwrap(),
        Duration::from_millis(2500),
        Duration::from_millis(4500),
    );
    insta::assert_snapshot!(t.render());
}

#[test]
fn client_requests_to_the_vip_go_round_robin_over_the_real_servers() {
    let p = pair("round-robin");
    p.await_balancing(START);
    let answers = p.requests(6, "2");
    assert!(
        alternate(&answers),
        "answers through the VIP do not alternate: {answers:?}"
    );
    let pages = [Pair::page(&p.rs1), Pair::page(&p.rs2)];
    assert!(
        pages.iter().all(|page| answers.contains(page)),
        "answers through the VIP are not from rs1 and rs2: {answers:?}"
    );
    // The director balances with IPVS when the host kernel has it (the
    // probe loads ip_vs if the host has the module, which makes
    // /proc/net/ip_vs appear) and with nftables otherwise, and says which.
    let expected = if std::path::Path::new("/proc/net/ip_vs").exists() {
        "ipvs"
    } else {
        "nftables"
    };
    let out = p
        .lab
        .exec(&p.master, &["appliance", "status", "--json"])
        .expect("appliance status");
    assert_eq!(out.code, 0, "{out:?}");
    let status: appliance::daemon::status::Status =
        serde_json::from_str(&out.stdout).expect("status JSON");
    assert_eq!(status.dataplane.as_deref(), Some(expected), "{status:?}");
}

/// How the master is taken away in [`answers_keep_coming`].
#[derive(Clone, Copy, Debug)]
enum Cut {
    /// Stopped: it resigns (priority 0) and the backup takes over after
    /// its skew time, under a second.
    Stop,
    /// Frozen, still holding the VIP: the backup takes over after the
    /// master down interval (3 x 1 s + skew) and its gratuitous ARP moves
    /// the client and the real servers to it.
    Pause,
    /// Cut off the network: as a pause, seen from the others.
    Disconnect,
}

/// Requests to the VIP every 0.1 s (each waiting at most 1 s) while the
/// master is taken away after about 2 s: every answer is from rs1 or rs2,
/// the failures are one window no longer than the takeover, and the
/// backup then balances round robin.
fn answers_keep_coming(test: &str, cut: Cut) {
    let p = pair(test);
    p.await_balancing(START);
    const N: usize = 100;
    let log = "/tmp/answers";
    let script = format!(
        "({}; echo DONE) >{log} 2>&1 &",
        requests_script(N as u32, "1", "0.1", &p.url())
    );
    let started = p
        .lab
        .exec(&p.client, &["sh", "-c", &script])
        .expect("start the request loop");
    assert_eq!(started.code, 0, "{started:?}");
    std::thread::sleep(Duration::from_secs(2));
    // Each failed request costs its 1 s timeout: the takeover window in
    // seconds, plus one for the client's ARP entry moving to the backup.
    let max_failures = match cut {
        Cut::Stop => {
            p.lab.stop(&p.master).expect("stop");
            3
        }
        Cut::Pause => {
            p.lab.pause(&p.master).expect("pause");
            6
        }
        Cut::Disconnect => {
            p.lab.disconnect(&p.master).expect("disconnect");
            6
        }
    };
    p.lab
        .wait_state(&p.backup, State::Master, START)
        .expect("backup takes over");
    let start = Instant::now();
    let answers: Vec<String> = loop {
        let ExecOutput { stdout, .. } = p.lab.exec(&p.client, &["cat", log]).expect("cat");
        if stdout.lines().last() == Some("DONE") {
            let mut lines: Vec<String> = stdout.lines().map(str::to_string).collect();
            lines.pop();
            break lines;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the request loop did not end: {stdout}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    if let Cut::Pause = cut {
        p.lab.unpause(&p.master).expect("unpause");
    }
    assert_eq!(answers.len(), N, "{answers:?}");
    let pages = [Pair::page(&p.rs1), Pair::page(&p.rs2)];
    let failed: Vec<usize> = (0..answers.len())
        .filter(|&i| answers[i] == "FAIL")
        .collect();
    assert!(
        answers.iter().all(|a| a == "FAIL" || pages.contains(a)),
        "answers not from rs1 or rs2: {answers:?}"
    );
    println!("{cut:?}: {} of {N} requests failed", failed.len());
    assert!(
        failed.len() <= max_failures,
        "{} requests failed across the takeover ({cut:?}, at most {max_failures}): {answers:?}",
        failed.len()
    );
    if let (Some(first), Some(last)) = (failed.first(), failed.last()) {
        assert!(
            last - first < max_failures,
            "failures are not one window: {answers:?}"
        );
    }
    // The last 20 (2 s or more after the takeover): the backup balances
    // them round robin.
    let tail = &answers[N - 20..];
    assert!(
        tail.iter().all(|a| a != "FAIL") && alternate(tail),
        "the backup's answers do not alternate over rs1 and rs2: {answers:?}"
    );
}

#[test]
fn answers_keep_coming_from_the_backup_across_a_master_stop() {
    answers_keep_coming("balance-stop", Cut::Stop);
}

#[test]
fn answers_keep_coming_from_the_backup_across_a_master_pause() {
    answers_keep_coming("balance-pause", Cut::Pause);
}

#[test]
fn answers_keep_coming_from_the_backup_across_a_master_disconnect() {
    answers_keep_coming("balance-disconnect", Cut::Disconnect);
}
