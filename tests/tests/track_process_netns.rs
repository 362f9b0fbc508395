//! keepalived's `vrrp_track_process` through the running daemon, in network
//! namespaces: an appliance `m` (priority 150) and `b` (priority 100) on a
//! LAN, VRRPv2, advert_int 1, `m` tracking processes the test starts and
//! kills (network namespaces share the host's processes, so the daemon in
//! m's namespace sees them).
//!
//! - weight -60, matched by process name: a copy of `sleep` under a name
//!   of this test's own. Killing it takes m to 90, below b, which
//!   preempts; starting it again gives m its 150 back and it preempts in
//!   turn; a reload that tracks a name nothing runs drops m again;
//! - weight 0, quorum 2, matched by full command (`sleep 14601`): with
//!   one of the two killed, m enters FAULT and b takes over; a second one
//!   started again brings m back. A `sleep 146010` runs throughout and is
//!   not counted (the parameter must match exactly): the control.
//!
//! The daemon reads /proc every 200 ms, so each change is asserted to
//! follow the kill or the start within that plus scheduling delay.

use appliance::timeline::EventKind;
use appliance::vrrp::Priority;
use appliance::vrrp::machine::State;
use appliance_tests::pair::{Net, Pair, Side, assert_interval};
use appliance_tests::timeline::Entry;
use appliance_tests::vrrp_conf::{Instance, TrackProcess};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The daemon's /proc reading interval plus scheduling delays on a loaded
/// machine.
const LATE: Duration = Duration::from_millis(200 + 600);
/// Waits for something expected within a protocol interval get this much
/// slack before the test gives up.
const SLACK: Duration = Duration::from_secs(3);
/// How long a VIP is watched to stay where it is after a change.
const SETTLE: Duration = Duration::from_secs(2);

fn priority(value: u8) -> Priority {
    Priority::from_u8(value)
}

/// A tracked process: killed (and reaped) when dropped.
struct Running(Child);

impl Running {
    fn start(program: &Path, args: &[&str]) -> Self {
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", program.display()));
        Self(child)
    }

    fn kill(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `sleep`, copied under `name` in a directory the test owns: a process
/// name no other test runs.
struct Renamed {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Renamed {
    fn new(name: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join(name);
        std::fs::copy("/bin/sleep", &path).expect("copy sleep");
        Self { _dir: dir, path }
    }

    fn start(&self) -> Running {
        Running::start(&self.path, &["3600"])
    }
}

fn wait_entered(p: &mut Pair, side: Side, state: State, since: &Entry, within: Duration) -> Entry {
    let daemon = match side {
        Side::M => &mut p.m,
        Side::B => &mut p.b,
    };
    let what = format!("{} entering {state}", side.name());
    daemon
        .wait_event(&what, within, |e| {
            e.after(since) && e.entered() == Some(state)
        })
        .unwrap_or_else(|e| panic!("{what}: {e}"))
}

fn wait_priority(p: &mut Pair, from: u8, to: u8, since: &Entry) -> Entry {
    p.m.wait_event(&format!("m's priority {from} to {to}"), SLACK, |e| {
        e.after(since)
            && e.event.kind
                == EventKind::Priority {
                    from: priority(from),
                    to: priority(to),
                }
    })
    .unwrap_or_else(|e| panic!("m's priority {from} to {to}: {e}"))
}

/// Weight -60 while the process is not running: killed, m drops from 150
/// to 90, below b's 100; b preempts one Master_Down_Interval later and m
/// steps down to BACKUP. Started again, m is back at 150 and preempts b
/// one of its own Master_Down_Intervals later.
#[test]
fn a_tracked_process_ending_lowers_the_priority_and_the_vip_moves_over_and_back() {
    let net = Net(145);
    let sleep = Renamed::new("tp145weight");
    let running = sleep.start();
    let vip = Net::cidr(&net.vip());
    let m = Instance::new("m", 145, 150, &vip)
        .initial_master()
        .track_process(TrackProcess::new("app", &["tp145weight"]).weight(-60));
    let b = Instance::new("b", 145, 100, &vip);
    let mut p = Pair::start(net, m, b, &net.vip()).expect("m and b elect m");
    p.hold(Side::M, SETTLE).expect("m alone holds the VIP");
    let advert = p.m.next_advert(SLACK).expect("m advertises");
    assert_eq!(
        advert.advert(),
        Some(priority(150)),
        "the process runs: nothing taken off"
    );

    let killed = p.mark("kill m's tracked process");
    running.kill();
    let dropped = wait_priority(&mut p, 150, 90, &killed);
    assert_interval(
        "process killed to m at priority 90",
        dropped.since(&killed),
        Duration::ZERO,
        Duration::ZERO,
        LATE,
    );
    let b_mdi = p.b_conf.master_down_interval();
    let b_master = wait_entered(&mut p, Side::B, State::Master, &killed, b_mdi + SLACK);
    assert!(
        b_master
            .event
            .detail
            .starts_with(&format!("preempt: ignored priority 90 from {}", net.m())),
        "b preempts m's lowered adverts: {}",
        b_master.event.detail
    );
    let m_backup = wait_entered(&mut p, Side::M, State::Backup, &b_master, SLACK);
    assert_eq!(
        m_backup.event.detail,
        format!("higher priority 100 from {}", net.b())
    );
    p.wait_holder(Side::B, SLACK).expect("the VIP on b alone");
    p.hold(Side::B, SETTLE)
        .expect("b holds the VIP while the process is gone");

    let started = p.mark("start m's tracked process again");
    let _running = sleep.start();
    let raised = wait_priority(&mut p, 90, 150, &started);
    assert_interval(
        "process started to m at priority 150",
        raised.since(&started),
        Duration::ZERO,
        Duration::ZERO,
        LATE,
    );
    let mdi = p.m_conf.master_down_interval();
    let m_master = wait_entered(&mut p, Side::M, State::Master, &raised, mdi + SLACK);
    assert!(
        m_master
            .event
            .detail
            .starts_with(&format!("preempt: ignored priority 100 from {}", net.b())),
        "{}",
        m_master.event.detail
    );
    wait_entered(&mut p, Side::B, State::Backup, &m_master, SLACK);
    p.wait_holder(Side::M, SLACK).expect("the VIP back on m");
    p.hold(Side::M, SETTLE)
        .expect("m alone holds the VIP after preempting");

    // A reload that points the tracked process at a name nothing runs
    // (the instance unchanged): counted afresh, m drops to 90 and b
    // preempts, its instance kept running (no resignation).
    let moved = Instance::new("m", 145, 150, &vip)
        .initial_master()
        .track_process(TrackProcess::new("app", &["tp145absent"]).weight(-60));
    p.m.write_config(&moved.render()).expect("m's new config");
    let reload = p.mark("reload m tracking a process that does not run");
    p.m.signal("HUP").expect("SIGHUP m");
    wait_priority(&mut p, 150, 90, &reload);
    let b_master = wait_entered(&mut p, Side::B, State::Master, &reload, b_mdi + SLACK);
    assert!(
        b_master
            .event
            .detail
            .starts_with(&format!("preempt: ignored priority 90 from {}", net.m())),
        "b preempts m's lowered adverts, not a resignation: {}",
        b_master.event.detail
    );
    p.wait_holder(Side::B, SLACK)
        .expect("the VIP on b after the reload");
}

/// Weight 0 and quorum 2 on the full command `sleep 14601`: two run, m is
/// master. One killed leaves one (the `sleep 146010` beside them does not
/// count): m enters FAULT, resigns, and b takes over after its Skew_Time.
/// A second one started again: m leaves FAULT for BACKUP and preempts.
#[test]
fn losing_a_tracked_process_quorum_faults_the_master_until_it_is_back() {
    let net = Net(146);
    let sleep = Path::new("sleep");
    let first = Running::start(sleep, &["14601"]);
    let _second = Running::start(sleep, &["14601"]);
    let _control = Running::start(sleep, &["146010"]);
    let vip = Net::cidr(&net.vip());
    let m = Instance::new("m", 146, 150, &vip)
        .initial_master()
        .track_process(
            TrackProcess::new("pair", &["sleep", "14601"])
                .full_command()
                .quorum(2),
        );
    let b = Instance::new("b", 146, 100, &vip);
    let mut p = Pair::start(net, m, b, &net.vip()).expect("m and b elect m");
    p.hold(Side::M, SETTLE).expect("m alone holds the VIP");

    let killed = p.mark("kill one of m's two tracked processes");
    first.kill();
    let m_fault = wait_entered(&mut p, Side::M, State::Fault, &killed, SLACK);
    assert_eq!(m_fault.event.detail, "track pair failed");
    assert_interval(
        "one of two killed to m FAULT",
        m_fault.since(&killed),
        Duration::ZERO,
        Duration::ZERO,
        LATE,
    );
    let resign =
        p.m.wait_event("m resigning", SLACK, |e| {
            e.after(&killed) && e.advert() == Some(Priority::RESIGN)
        })
        .expect("m resigns as it enters FAULT");
    let b_master = wait_entered(&mut p, Side::B, State::Master, &killed, SLACK);
    assert_interval(
        "m's priority 0 advert to b MASTER",
        b_master.since(&resign),
        p.b_conf.skew(),
        Duration::from_millis(50),
        Duration::from_millis(400),
    );
    p.wait_holder(Side::B, SLACK).expect("the VIP on b alone");
    p.hold(Side::B, SETTLE)
        .expect("b holds the VIP while m lacks its quorum");

    let started = p.mark("start a second tracked process again");
    let _again = Running::start(sleep, &["14601"]);
    let m_backup = wait_entered(&mut p, Side::M, State::Backup, &started, SLACK);
    assert_eq!(m_backup.event.detail, "track pair recovered");
    assert_interval(
        "second process started to m BACKUP",
        m_backup.since(&started),
        Duration::ZERO,
        Duration::ZERO,
        LATE,
    );
    let mdi = p.m_conf.master_down_interval();
    let m_master = wait_entered(&mut p, Side::M, State::Master, &m_backup, mdi + SLACK);
    wait_entered(&mut p, Side::B, State::Backup, &m_master, SLACK);
    p.wait_holder(Side::M, SLACK).expect("the VIP back on m");
    p.hold(Side::M, SETTLE)
        .expect("m alone holds the VIP again");
}
