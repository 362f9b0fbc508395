//! keepalived's `track_file` through the running daemon, in network
//! namespaces: an appliance `m` (priority 150) and `b` (priority 100) on a
//! LAN, VRRPv2, advert_int 1, `m` tracking a file the test writes.
//!
//! - weight -10: writing 6 to the file takes m to 90, below b, which
//!   preempts; writing 0 gives m its 150 back and it preempts in turn;
//! - weight 0: a non-zero value puts m in FAULT at once (it resigns, b
//!   takes over after its Skew_Time); deleting the file reads as 0 and m
//!   leaves FAULT and preempts back.
//!
//! The daemon watches the file with inotify, so each change is acted on
//! as the test's write closes the file: the priority or state change is
//! asserted to follow the write within scheduling delay.

use appliance::timeline::EventKind;
use appliance::vrrp::Priority;
use appliance::vrrp::machine::State;
use appliance_tests::pair::{Net, Pair, Side, assert_interval};
use appliance_tests::timeline::Entry;
use appliance_tests::vrrp_conf::{Instance, TrackFile};
use std::path::PathBuf;
use std::time::Duration;

/// Scheduling delays on a loaded machine.
const LATE: Duration = Duration::from_millis(400);
/// Waits for something expected within a protocol interval get this much
/// slack before the test gives up.
const SLACK: Duration = Duration::from_secs(3);
/// How long a VIP is watched to stay where it is after a change.
const SETTLE: Duration = Duration::from_secs(2);

fn priority(value: u8) -> Priority {
    Priority::from_u8(value)
}

/// The tracked file, in a directory the test owns.
struct Tracked {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Tracked {
    fn new(initial: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("state");
        std::fs::write(&path, initial).expect("write the tracked file");
        Self { _dir: dir, path }
    }

    fn write(&self, value: &str) {
        std::fs::write(&self.path, value).expect("write the tracked file");
    }

    fn remove(&self) {
        std::fs::remove_file(&self.path).expect("remove the tracked file");
    }

    fn conf(&self) -> TrackFile {
        TrackFile::new("state", &self.path.display().to_string())
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

/// value × weight: 6 × -10 lowers m from 150 to 90, below b's 100; b
/// preempts one Master_Down_Interval later and m steps down to BACKUP.
/// Writing 0 restores 150 and m preempts b one of its own
/// Master_Down_Intervals later.
#[test]
fn a_tracked_files_value_times_its_weight_moves_the_vip_over_and_back() {
    let net = Net(155);
    let file = Tracked::new("0\n");
    let vip = Net::cidr(&net.vip());
    let m = Instance::new("m", 155, 150, &vip)
        .initial_master()
        .track_file(file.conf().weight(-10));
    let b = Instance::new("b", 155, 100, &vip);
    let mut p = Pair::start(net, m, b, &net.vip()).expect("m and b elect m");
    p.hold(Side::M, SETTLE).expect("m alone holds the VIP");
    let advert = p.m.next_advert(SLACK).expect("m advertises");
    assert_eq!(advert.advert(), Some(priority(150)), "value 0 adds nothing");

    let six = p.mark("write 6 to m's tracked file");
    file.write("6\n");
    let dropped = wait_priority(&mut p, 150, 90, &six);
    assert_interval(
        "file written to m at priority 90",
        dropped.since(&six),
        Duration::ZERO,
        Duration::ZERO,
        LATE,
    );
    let b_mdi = p.b_conf.master_down_interval();
    let b_master = wait_entered(&mut p, Side::B, State::Master, &six, b_mdi + SLACK);
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
        .expect("b holds the VIP while m is at 90");

    let zero = p.mark("write 0 to m's tracked file");
    file.write("0\n");
    let raised = wait_priority(&mut p, 90, 150, &zero);
    assert_interval(
        "file written to m at priority 150",
        raised.since(&zero),
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
}

/// Weight 0: a non-zero value is a failure. m enters FAULT as the write
/// closes the file, resigns with priority 0 and drops the VIP; b takes
/// over after its Skew_Time. Removing the file reads as 0: m leaves FAULT
/// for BACKUP and preempts back.
#[test]
fn a_weight_zero_file_with_a_non_zero_value_faults_the_master_until_it_is_removed() {
    let net = Net(156);
    let file = Tracked::new("0\n");
    let vip = Net::cidr(&net.vip());
    let m = Instance::new("m", 156, 150, &vip)
        .initial_master()
        .track_file(file.conf().weight(0));
    let b = Instance::new("b", 156, 100, &vip);
    let mut p = Pair::start(net, m, b, &net.vip()).expect("m and b elect m");
    p.hold(Side::M, SETTLE).expect("m alone holds the VIP");

    let one = p.mark("write 1 to m's tracked file");
    file.write("1\n");
    let m_fault = wait_entered(&mut p, Side::M, State::Fault, &one, SLACK);
    assert_eq!(m_fault.event.detail, "track state failed");
    assert_interval(
        "file written to m FAULT",
        m_fault.since(&one),
        Duration::ZERO,
        Duration::ZERO,
        LATE,
    );
    let resign =
        p.m.wait_event("m resigning", SLACK, |e| {
            e.after(&one) && e.advert() == Some(Priority::RESIGN)
        })
        .expect("m resigns as it enters FAULT");
    let b_master = wait_entered(&mut p, Side::B, State::Master, &one, SLACK);
    assert_interval(
        "m's priority 0 advert to b MASTER",
        b_master.since(&resign),
        p.b_conf.skew(),
        Duration::from_millis(50),
        LATE,
    );
    p.wait_holder(Side::B, SLACK).expect("the VIP on b alone");
    p.hold(Side::B, SETTLE)
        .expect("b holds the VIP while m is in FAULT");

    let gone = p.mark("remove m's tracked file");
    file.remove();
    let m_backup = wait_entered(&mut p, Side::M, State::Backup, &gone, SLACK);
    assert_eq!(m_backup.event.detail, "track state recovered");
    assert_interval(
        "file removed to m BACKUP",
        m_backup.since(&gone),
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
