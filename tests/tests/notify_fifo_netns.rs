//! keepalived's notify FIFOs through the running daemon, in network
//! namespaces: an appliance `m` (priority 150) and `b` (priority 100) on a
//! LAN.
//!
//! - A failover: a reader the test started on `m`'s `vrrp_notify_fifo`
//!   before the daemon, and the `notify_fifo_script` `b`'s daemon starts
//!   on the `notify_fifo` it makes, see each instance's lines
//!   (`INSTANCE "VI_A" MASTER 150`...) in order, up to the STOP of each
//!   daemon's stop; the FIFO the daemon made goes with it, the test's
//!   stays.
//! - The checker: a TCP_CHECK real server that stops and starts listening
//!   gives `RS ... DOWN` and `VS ... DOWN`, then `UP` and `UP`, on the
//!   `lvs_notify_fifo`. Meanwhile `m`'s `vrrp_notify_fifo` is full (the
//!   test filled it and never reads): reloads write the states to it
//!   (`fifo_write_vrrp_states_on_reload`), the lines are dropped and
//!   logged, and `m`'s 100 ms adverts never miss a beat (tcpdump on `b`
//!   times them). Once the test drains it, the next reload's line comes
//!   through.
//! - keepalived's event lines and script: with `notify_priority_changes`,
//!   `m`'s tracked script failing and passing again gives
//!   `INSTANCE "VI_A" MASTER_PRIORITY 130` and `... 150`; a one-way cut
//!   (b no longer hears m, so b takes over while m stays master) makes m
//!   hear b's lower priority: `INSTANCE "VI_A" MASTER_RX_LOWER_PRI 150`
//!   and its `notify_master_rx_lower_pri` runs, once per advert
//!   interval, until the cut heals and b steps down.

use appliance::vrrp::Version;
use appliance::vrrp::machine::State;
use appliance_tests::adverts::{AdvertLog, longest_gap};
use appliance_tests::pair::{Net, Pair, Side};
use appliance_tests::vrrp_conf::{Instance, Script};
use appliance_tests::web::Httpd;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use std::io::BufRead;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Waits for something that happens within a protocol interval or a
/// check run get this much slack.
const SLACK: Duration = Duration::from_secs(10);
/// Three 100 ms intervals: the gap that, with the skew, lets a backup
/// take over.
const FAILOVER_GAP: Duration = Duration::from_millis(300);

/// The lines a reader took off a FIFO, in order.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<String>>>);

impl Lines {
    /// Reads `fifo` on a thread of its own: its open waits for a writer,
    /// its reads go on until the last writer closes it.
    fn read(fifo: &Path) -> Self {
        let lines = Self::default();
        let out = lines.clone();
        let fifo = fifo.to_path_buf();
        std::thread::spawn(move || {
            let file = std::fs::File::open(&fifo).expect("open the FIFO to read");
            for line in std::io::BufReader::new(file).lines() {
                let Ok(line) = line else { break };
                out.0.lock().unwrap().push(line);
            }
        });
        lines
    }

    fn get(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    /// Waits until `expected` are the lines so far.
    fn wait(&self, what: &str, expected: &[&str]) {
        wait_for(what, || self.get(), expected);
    }
}

/// The lines of the file the FIFO script appends to.
fn file_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Polls `get` until it returns `expected`, at most [`SLACK`]; fails if it
/// ever returns lines `expected` does not start with.
fn wait_for(what: &str, get: impl Fn() -> Vec<String>, expected: &[&str]) {
    let start = Instant::now();
    loop {
        let got = get();
        assert!(
            got.len() <= expected.len() && expected.iter().zip(&got).all(|(e, g)| e == g),
            "{what}: lines {got:?}, expected {expected:?}"
        );
        if got.len() == expected.len() {
            return;
        }
        assert!(
            start.elapsed() < SLACK,
            "{what}: lines {got:?} after {SLACK:?}, expected {expected:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn mkfifo(path: &Path) {
    nix::unistd::mkfifo(path, Mode::from_bits_truncate(0o600)).expect("mkfifo");
}

#[test]
fn a_failovers_lines_reach_a_reader_and_the_fifo_script_in_order() {
    let net = Net(147);
    let dir = tempfile::tempdir().expect("temp dir");
    let m_fifo = dir.path().join("m.fifo");
    let b_fifo = dir.path().join("b.fifo");
    let b_out = dir.path().join("b.lines");
    let script = dir.path().join("reader.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nwhile read -r line; do echo \"$line\" >> {}; done < \"$1\"\n",
            b_out.display()
        ),
    )
    .expect("write the FIFO script");
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod the FIFO script");
    // m's FIFO is the test's, read from before m starts.
    mkfifo(&m_fifo);
    let m_lines = Lines::read(&m_fifo);

    let vip = Net::cidr(&net.vip());
    let m = Instance::new("m", 147, 150, &vip)
        .initial_master()
        .global(&format!("vrrp_notify_fifo {}", m_fifo.display()));
    let b = Instance::new("b", 147, 100, &vip)
        .global(&format!("notify_fifo {}", b_fifo.display()))
        .global(&format!("notify_fifo_script {}", script.display()));
    let mut p = Pair::start(net, m, b, &net.vip()).expect("m and b elect m");
    // `state MASTER` below 255 starts as BACKUP, as in keepalived.
    let m_start = [
        "INSTANCE \"VI_A\" BACKUP 150",
        "INSTANCE \"VI_A\" MASTER 150",
    ];
    m_lines.wait("m at its start", &m_start);
    wait_for(
        "b's script at b's start",
        || file_lines(&b_out),
        &["INSTANCE \"VI_A\" BACKUP 100"],
    );
    let made = std::fs::metadata(&b_fifo).expect("b made its FIFO");
    assert!(std::os::unix::fs::FileTypeExt::is_fifo(&made.file_type()));

    let stop_m = p.mark("stop m");
    p.m.stop().expect("m stops");
    let mut m_all = m_start.to_vec();
    m_all.push("INSTANCE \"VI_A\" STOP 150");
    m_lines.wait("m after its stop", &m_all);
    assert!(m_fifo.exists(), "the test's FIFO stays after m's stop");
    p.b.wait_notify(State::Master, &stop_m, SLACK)
        .expect("b takes over");
    p.wait_holder(Side::B, SLACK).expect("the VIP on b");
    wait_for(
        "b's script after the takeover",
        || file_lines(&b_out),
        &[
            "INSTANCE \"VI_A\" BACKUP 100",
            "INSTANCE \"VI_A\" MASTER 100",
        ],
    );

    p.b.stop().expect("b stops");
    // What b wrote as it stopped reached its script before it ended.
    assert_eq!(
        file_lines(&b_out),
        [
            "INSTANCE \"VI_A\" BACKUP 100",
            "INSTANCE \"VI_A\" MASTER 100",
            "INSTANCE \"VI_A\" STOP 100",
        ]
    );
    assert!(!b_fifo.exists(), "b removed the FIFO it made");
    let log = p.b.log();
    assert!(log.contains("notify FIFO script started"), "{log}");
    assert!(log.contains("notify FIFO script ended"), "{log}");
}

/// Opens `fifo` read-write and non-blocking, as the test's own end.
fn open_rw(fifo: &Path) -> OwnedFd {
    nix::fcntl::open(
        fifo,
        OFlag::O_RDWR | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .expect("open the FIFO")
}

/// Fills the pipe behind `fd` until it takes no more.
fn fill(fd: &OwnedFd) {
    let junk = [b'x'; 4096];
    loop {
        match nix::unistd::write(fd, &junk) {
            Ok(_) => continue,
            Err(nix::errno::Errno::EAGAIN) => break,
            Err(e) => panic!("filling the FIFO: {e}"),
        }
    }
}

/// Reads what the pipe behind `fd` holds now.
fn drain(fd: &OwnedFd) -> Vec<u8> {
    let mut all = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match nix::unistd::read(fd, &mut buf) {
            Ok(0) | Err(nix::errno::Errno::EAGAIN) => return all,
            Ok(n) => all.extend_from_slice(&buf[..n]),
            Err(e) => panic!("draining the FIFO: {e}"),
        }
    }
}

/// Sends `m` SIGHUP and waits until it logs the reload's end.
fn reload(p: &Pair) {
    let logged = p.m.log().len();
    let hup = Instant::now();
    p.m.signal("HUP").expect("SIGHUP m");
    while !p.m.log()[logged..].contains(" reloaded") {
        assert!(hup.elapsed() < SLACK * 4, "m reloads");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn real_server_lines_reach_the_lvs_fifo_and_a_full_vrrp_fifo_never_delays_an_advert() {
    let net = Net(148);
    let dir = tempfile::tempdir().expect("temp dir");
    let vrrp_fifo = dir.path().join("vrrp.fifo");
    let lvs_fifo = dir.path().join("lvs.fifo");
    mkfifo(&vrrp_fifo);
    mkfifo(&lvs_fifo);
    // The VRRP FIFO: full before m starts, and nobody reads it.
    let held = open_rw(&vrrp_fifo);
    fill(&held);
    let lvs_lines = Lines::read(&lvs_fifo);

    let vip = Net::cidr(&net.vip());
    let m = Instance::new("m", 148, 150, &vip)
        .initial_master()
        .version(Version::V3)
        .advert_ms(100)
        .global(&format!("vrrp_notify_fifo {}", vrrp_fifo.display()))
        .global(&format!("lvs_notify_fifo {}", lvs_fifo.display()))
        .global("fifo_write_vrrp_states_on_reload");
    let b = Instance::new("b", 148, 100, &vip)
        .version(Version::V3)
        .advert_ms(100);
    let rs_ip = "10.148.0.20";
    let mut p =
        Pair::start(net, m, b, &net.vip()).expect("m elects itself with its VRRP FIFO full");
    p.lan
        .add_host("rs", &[&format!("{rs_ip}/24")])
        .expect("the real server's host");
    let log = AdvertLog::start(p.host(Side::B), net.m().parse().unwrap()).expect("tcpdump on b");
    let since = p.mark("capture m's adverts");

    // The checker: one real server behind a virtual server, added by a
    // reload (whose states go to the full FIFO and are dropped).
    let rs = Httpd::start(p.lan.host("rs"), 80).expect("httpd on rs");
    let virtual_server = format!(
        "virtual_server 10.148.1.1 80 {{\n  delay_loop 1\n  lb_algo rr\n  lb_kind NAT\n  protocol TCP\n\
         \x20 real_server {rs_ip} 80 {{\n    weight 1\n    TCP_CHECK {{\n      connect_timeout 1\n\
         \x20     retry 1\n      delay_before_retry 1\n    }}\n  }}\n}}\n"
    );
    p.m.write_config(&format!("{}{virtual_server}", p.m_conf.render()))
        .expect("write m's config");
    reload(&p);
    // Alive from the start, as keepalived has it: no line until a change.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(lvs_lines.get(), Vec::<String>::new());
    drop(rs);
    let down = [
        "RS [10.148.0.20]:tcp:80 [10.148.1.1]:tcp:80 DOWN",
        "VS [10.148.1.1]:tcp:80 DOWN",
    ];
    lvs_lines.wait("the real server stopped", &down);
    let _rs = Httpd::start(p.lan.host("rs"), 80).expect("httpd on rs again");
    let mut all = down.to_vec();
    all.extend([
        "RS [10.148.0.20]:tcp:80 [10.148.1.1]:tcp:80 UP",
        "VS [10.148.1.1]:tcp:80 UP",
    ]);
    lvs_lines.wait("the real server back", &all);
    for _ in 0..3 {
        reload(&p);
    }
    std::thread::sleep(Duration::from_millis(500));

    let times = log.stop().expect("tcpdump's capture");
    assert!(times.len() > 20, "{} adverts seen", times.len());
    let gap = longest_gap(&times);
    eprintln!("MEASURED longest gap between m's adverts with a full FIFO: {gap:?}");
    assert!(gap < FAILOVER_GAP, "m's adverts stopped for {gap:?}");
    let took_over =
        p.b.timeline()
            .unwrap()
            .into_iter()
            .any(|e| e.after(&since) && e.entered() == Some(State::Master));
    assert!(!took_over, "b became master");
    let m_log = p.m.log();
    assert_eq!(
        m_log.matches("notify FIFO full").count(),
        1,
        "one warning for the run of dropped lines:\n{m_log}"
    );

    // Control: drained, the FIFO takes the next reload's line.
    let junk = drain(&held);
    assert!(
        junk.iter().all(|&c| c == b'x'),
        "nothing but the test's filling got in"
    );
    reload(&p);
    let start = Instant::now();
    let mut got = Vec::new();
    while !got.ends_with(b"\n") {
        got.extend(drain(&held));
        assert!(start.elapsed() < SLACK, "a line after the drain: {got:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        String::from_utf8_lossy(&got),
        "INSTANCE \"VI_A\" MASTER 150\n"
    );
    assert!(p.m.log().contains("notify FIFO read again"));
    p.m.stop().expect("m stops");
    assert!(
        vrrp_fifo.exists() && lvs_fifo.exists(),
        "the test's FIFOs stay"
    );
}

/// Runs `nft ARGS` on b.
fn nft(p: &Pair, args: &[&str]) {
    let out = p
        .host(Side::B)
        .run("nft", args)
        .expect("nft runs (package nftables)");
    assert!(
        out.status.success(),
        "nft {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn priority_changes_and_a_lower_priority_heard_reach_the_fifo_and_the_script() {
    let net = Net(165);
    let dir = tempfile::tempdir().expect("temp dir");
    // The scripts may run as an unprivileged user (script_user).
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .expect("chmod the temp dir");
    let fifo = dir.path().join("m.fifo");
    let ok = dir.path().join("ok");
    let heard = dir.path().join("heard.lines");
    let script = dir.path().join("heard.sh");
    std::fs::write(
        &script,
        format!("#!/bin/sh\necho heard >> {}\n", heard.display()),
    )
    .expect("write the notify script");
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod the notify script");
    std::fs::write(&ok, "").expect("create the checked file");
    mkfifo(&fifo);
    let lines = Lines::read(&fifo);

    let vip = Net::cidr(&net.vip());
    let m = Instance::new("m", 165, 150, &vip)
        .initial_master()
        .global(&format!("vrrp_notify_fifo {}", fifo.display()))
        .track_script(
            Script::new("chk_ok", &format!("/usr/bin/test -e {}", ok.display())).weight(-20),
        )
        .line("notify_priority_changes")
        .line(&format!("notify_master_rx_lower_pri {}", script.display()));
    let b = Instance::new("b", 165, 100, &vip);
    let mut p = Pair::start(net, m, b, &net.vip()).expect("m and b elect m");
    let start = [
        "INSTANCE \"VI_A\" BACKUP 150",
        "INSTANCE \"VI_A\" MASTER 150",
    ];
    lines.wait("m at its start", &start);

    std::fs::remove_file(&ok).expect("remove the checked file");
    let mut expected = start.to_vec();
    expected.push("INSTANCE \"VI_A\" MASTER_PRIORITY 130");
    lines.wait("chk_ok failing", &expected);
    std::fs::write(&ok, "").expect("create the checked file again");
    expected.push("INSTANCE \"VI_A\" MASTER_PRIORITY 150");
    lines.wait("chk_ok passing again", &expected);
    p.hold(Side::M, Duration::from_secs(1))
        .expect("m stays master at 130 and 150, above b's 100");

    let cut = p.mark("b drops m's adverts");
    let m_addr = net.m();
    nft(&p, &["add", "table", "inet", "cut"]);
    nft(
        &p,
        &["add chain inet cut in { type filter hook input priority 0 ; }"],
    );
    nft(
        &p,
        &[
            "add rule inet cut in ip saddr",
            &m_addr,
            "ip protocol vrrp drop",
        ],
    );
    p.b.wait_notify(State::Master, &cut, SLACK)
        .expect("b, deaf to m, takes over");
    let rx_lower = "INSTANCE \"VI_A\" MASTER_RX_LOWER_PRI 150";
    wait_for(
        "m hearing b's lower priority",
        || {
            let mut got = lines.get();
            got.truncate(expected.len() + 1);
            got
        },
        &[expected.clone(), vec![rx_lower]].concat(),
    );
    wait_for(
        "notify_master_rx_lower_pri running",
        || file_lines(&heard).into_iter().take(1).collect(),
        &["heard"],
    );
    assert!(
        p.m.timeline()
            .unwrap()
            .iter()
            .all(|e| !e.after(&cut) || e.entered().is_none()),
        "m stayed master through the cut"
    );

    let heal = p.mark("b hears m again");
    nft(&p, &["delete", "table", "inet", "cut"]);
    p.b.wait_notify(State::Backup, &heal, SLACK)
        .expect("b, hearing m's 150, steps down");
    p.wait_holder(Side::M, SLACK).expect("the VIP on m alone");
    // What came in before b stepped down, then nothing more.
    std::thread::sleep(Duration::from_millis(500));
    let settled = lines.get();
    let heard_runs = file_lines(&heard).len();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(lines.get(), settled, "no line once b is backup again");
    assert_eq!(
        file_lines(&heard).len(),
        heard_runs,
        "no run once b is backup again"
    );
    let (before, events) = settled.split_at(expected.len());
    assert_eq!(before, expected);
    assert!(
        !events.is_empty() && events.iter().all(|l| l == rx_lower),
        "only MASTER_RX_LOWER_PRI lines during the cut: {events:?}"
    );
    // Once per advert interval at most: the cut lasted a few intervals.
    assert!(
        events.len() <= 10 && heard_runs == events.len(),
        "{} lines and {heard_runs} runs",
        events.len()
    );
}
