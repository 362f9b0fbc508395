//! The seed's VRRP features through the running daemon, in network
//! namespaces (the simulator's scenarios `track_script_master`,
//! `nopreempt_return`, `preempt_delay` and `sync_group` check the same
//! cores with a virtual clock): an appliance `m` (priority 150) and `b`
//! (priority 100) on a LAN, VRRPv2, advert_int 1.
//!
//! - the seed's `chk_nginx` as a tracked `vrrp_script` with a negative
//!   weight: its failure lowers m below b, which preempts, and its
//!   recovery lets m preempt back;
//! - `track_interface` without weight: a second interface losing carrier
//!   takes m to FAULT (it resigns, b takes over after its Skew_Time) and
//!   back;
//! - `nopreempt`: m restarted does not take the VIP back from b;
//! - `preempt_delay`: m restarted takes it back only once the delay has
//!   run from the first advert of b it heard;
//! - `vrrp_sync_group`: one member's failed script moves both VIPs to b
//!   together, and the groups' own notify scripts run once per change;
//!   an interface the group itself tracks losing carrier faults both
//!   members and moves both VIPs, and back.
//!
//! A tracked script tests for a file the test creates and removes (the
//! seed's checks nginx). Every test snapshots the order of both nodes'
//! timeline events; intervals are asserted numerically.

use appliance::timeline::EventKind;
use appliance::vrrp::Priority;
use appliance::vrrp::machine::State;
use appliance_tests::pair::{Net, Pair, Side, assert_interval};
use appliance_tests::timeline::Entry;
use appliance_tests::vrrp_conf::{Instance, Script, SyncGroup};
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// A timer may fire a little early relative to the wall clock stamps
/// (the advert's stamp is taken after it was sent).
const EARLY: Duration = Duration::from_millis(50);
/// Scheduling delays on a loaded machine.
const LATE: Duration = Duration::from_millis(400);
/// Waits for something expected within a protocol interval get this much
/// slack before the test gives up (the bounds are asserted separately).
const SLACK: Duration = Duration::from_secs(3);
/// An advert stamped this close to a change on its receiver may have been
/// received on either side of it (the sender stamps it just after sending,
/// the receiver handles it a moment later).
const RACE: Duration = Duration::from_millis(50);
/// The tracked scripts' `interval` ([`Script::new`]'s).
const INTERVAL: Duration = Duration::from_secs(1);
/// How long a VIP is watched to stay where it is after a change.
const SETTLE: Duration = Duration::from_secs(2);

/// A directory of files the tracked scripts test for, and `rec.sh`, which
/// appends its arguments as a line to `out/calls` (a notify's record).
/// Readable by anyone and `out` writable by anyone, in case the scripts
/// run as an unprivileged user.
struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = dir.path().join("out");
        std::fs::create_dir(&out).expect("out dir");
        chmod(dir.path(), 0o755);
        chmod(&out, 0o777);
        let rec = dir.path().join("rec.sh");
        std::fs::write(
            &rec,
            format!("#!/bin/sh\necho \"$*\" >> {}/calls\n", out.display()),
        )
        .expect("write rec.sh");
        chmod(&rec, 0o755);
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A tracked script's command: succeeds while `name` exists.
    fn test(&self, name: &str) -> String {
        format!("test -e {}", self.path(name).display())
    }

    /// Creates or removes `name`.
    fn set(&self, name: &str, present: bool) {
        let path = self.path(name);
        let done = if present {
            std::fs::write(&path, "")
        } else {
            std::fs::remove_file(&path)
        };
        done.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }

    /// A notify command recording `tag` and the arguments given after it.
    fn rec(&self, tag: &str) -> String {
        format!("{} {tag}", self.path("rec.sh").display())
    }

    /// Every recorded run so far, one line of arguments each.
    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.path("out/calls"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Waits until the runs recorded after the first `from` include
    /// `expected` (in any order); returns them.
    fn wait_calls(&self, from: usize, expected: &[&str], within: Duration) -> Vec<String> {
        let start = Instant::now();
        loop {
            let calls: Vec<String> = self.calls().into_iter().skip(from).collect();
            if expected.iter().all(|e| calls.iter().any(|c| c == e)) {
                return calls;
            }
            assert!(
                start.elapsed() < within,
                "notifies {expected:?} not all run within {within:?}; runs: {calls:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Asserts the runs recorded after the first `from` are `expected`,
    /// each once, in any order.
    fn assert_calls(&self, from: usize, expected: &[&str]) {
        let mut calls: Vec<String> = self.calls().into_iter().skip(from).collect();
        calls.sort();
        let mut expected: Vec<String> = expected.iter().map(|e| e.to_string()).collect();
        expected.sort();
        assert_eq!(calls, expected, "the notifies run, each once");
    }
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

fn priority(value: u8) -> Priority {
    Priority::from_u8(value)
}

fn parse(addr: &str) -> IpAddr {
    addr.parse().expect("an address")
}

/// The adverts (priority above 0) in a timeline.
fn adverts(timeline: &[Entry]) -> Vec<Entry> {
    timeline
        .iter()
        .filter(|e| e.advert().is_some_and(|p| p.get() > 0))
        .cloned()
        .collect()
}

/// Of `adverts`, the ones the receiver may have handled last before
/// `change` (a change of its own): the last stamped more than [`RACE`]
/// before it, and those stamped within [`RACE`] of it.
fn last_heard_before(adverts: &[Entry], change: SystemTime) -> Vec<Entry> {
    let mut candidates: Vec<Entry> = adverts
        .iter()
        .rfind(|e| e.wall + RACE <= change)
        .cloned()
        .into_iter()
        .collect();
    candidates.extend(
        adverts
            .iter()
            .filter(|e| e.wall + RACE > change && e.wall < change + RACE)
            .cloned(),
    );
    candidates
}

/// Of `adverts`, the ones the receiver may have handled first after
/// `change`: those stamped within [`RACE`] of it, and the first stamped
/// more than [`RACE`] after it.
fn first_heard_after(adverts: &[Entry], change: SystemTime) -> Vec<Entry> {
    let mut candidates: Vec<Entry> = adverts
        .iter()
        .filter(|e| e.wall + RACE > change && e.wall < change + RACE)
        .cloned()
        .collect();
    candidates.extend(adverts.iter().find(|e| e.wall >= change + RACE).cloned());
    candidates
}

/// Asserts `took` happened `expected` after one of `anchors` (within
/// EARLY/LATE): the anchor is an advert that only one of its candidates
/// can have been, as far as the stamps tell.
fn assert_interval_after_one(what: &str, anchors: &[Entry], took: &Entry, expected: Duration) {
    assert!(!anchors.is_empty(), "{what}: no advert to measure from");
    let fits = |a: &Entry| {
        let measured = took.since(a);
        measured + EARLY >= expected && measured <= expected + LATE
    };
    let anchor = anchors.iter().find(|a| fits(a)).unwrap_or(&anchors[0]);
    if anchors.len() > 1 {
        let all: Vec<Duration> = anchors.iter().map(|a| took.since(a)).collect();
        eprintln!(
            "{what}: {} candidate adverts, measured {all:?}",
            anchors.len()
        );
    }
    assert_interval(what, took.since(anchor), expected, EARLY, LATE);
}

/// How far apart two entries are, in either order.
fn apart(a: &Entry, b: &Entry) -> Duration {
    a.since(b).max(b.since(a))
}

/// Waits until `side` holds every one of `vips` and the other side none.
fn wait_holder_of_all(p: &Pair, side: Side, vips: &[IpAddr], within: Duration) {
    for &vip in vips {
        p.host(side)
            .wait_address(vip, true, within)
            .unwrap_or_else(|e| panic!("{} takes {vip}: {e}", side.name()));
        p.host(side.other())
            .wait_address(vip, false, within)
            .unwrap_or_else(|e| panic!("{} gives up {vip}: {e}", side.other().name()));
    }
}

/// Checks, every 50 ms for `period`, that `side` holds every one of
/// `vips` and the other side none.
fn hold_all(p: &Pair, side: Side, vips: &[IpAddr], period: Duration) {
    let start = Instant::now();
    while start.elapsed() < period {
        for &vip in vips {
            let held = p.host(side).has_address(vip).expect("addresses");
            let dual = p.host(side.other()).has_address(vip).expect("addresses");
            assert!(
                held && !dual,
                "{vip} after {:?}: on {}: {held}, on {}: {dual}; expected on {} only",
                start.elapsed(),
                side.name(),
                side.other().name(),
                side.name()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The first entry of `side`'s timeline (of `instance`, if given) after
/// `since` that entered `state`, waited for.
fn wait_entered(
    p: &mut Pair,
    side: Side,
    instance: Option<&str>,
    state: State,
    since: &Entry,
    within: Duration,
) -> Entry {
    let daemon = match side {
        Side::M => &mut p.m,
        Side::B => &mut p.b,
    };
    let what = format!(
        "{} {} entering {state}",
        side.name(),
        instance.unwrap_or("the instance")
    );
    daemon
        .wait_event(&what, within, |e| {
            e.after(since)
                && e.entered() == Some(state)
                && instance.is_none_or(|i| e.event.instance.as_deref() == Some(i))
        })
        .unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// The seed's chk_nginx (its script stops keepalived when nginx will not
/// start again) as keepalived setups usually write it: a script that exits
/// non-zero while the service is down, with a negative weight. `m` (150)
/// tracks one that fails while the test removes its file, weight -60, so
/// it drops to 90, below `b` (100). b, hearing only lower adverts,
/// preempts one Master_Down_Interval after m's last advert at 150; m steps
/// down. Once the file is back, m is at 150 again and preempts b one
/// Master_Down_Interval after the last advert of b it accepted. As in the
/// seed, both directors track their own chk_nginx, `state MASTER` on m.
#[test]
fn a_failing_chk_script_with_negative_weight_hands_the_vip_over_and_back() {
    let net = Net(142);
    let files = Files::new();
    files.set("m-nginx", true);
    files.set("b-nginx", true);
    let vip = Net::cidr(&net.vip());
    let check = |node: &str| Script::new("chk_nginx", &files.test(&format!("{node}-nginx")));
    let m = Instance::new("m", 142, 150, &vip)
        .initial_master()
        .auth_pass("secret")
        .track_script(check("m").weight(-60));
    let b = Instance::new("b", 142, 100, &vip)
        .auth_pass("secret")
        .track_script(check("b").weight(-60));
    let mut p = Pair::start(net, m, b, &net.vip()).expect("m and b elect m");
    p.hold(Side::M, SETTLE).expect("m alone holds the VIP");
    let advert = p.m.next_advert(SLACK).expect("m advertises");
    assert_eq!(advert.advert(), Some(priority(150)), "{advert:?}");

    let down = p.mark("remove m's file: chk_nginx fails");
    files.set("m-nginx", false);
    let dropped =
        p.m.wait_event("m's priority dropping", INTERVAL + SLACK, |e| {
            e.after(&down)
                && e.event.kind
                    == EventKind::Priority {
                        from: priority(150),
                        to: priority(90),
                    }
        })
        .expect("the failed script lowers m's priority by 60");
    assert_interval(
        "file removed to m at priority 90",
        dropped.since(&down),
        INTERVAL,
        INTERVAL,
        LATE,
    );
    let b_mdi = p.b_conf.master_down_interval();
    let b_master = wait_entered(&mut p, Side::B, None, State::Master, &down, b_mdi + SLACK);
    assert!(
        b_master
            .event
            .detail
            .starts_with(&format!("preempt: ignored priority 90 from {}", net.m())),
        "b preempts m's lowered adverts: {}",
        b_master.event.detail
    );
    let m_adverts = adverts(&p.m.timeline().unwrap());
    let last_150 = m_adverts
        .iter()
        .rfind(|e| e.wall < dropped.wall)
        .expect("m advertised before its priority dropped");
    assert_eq!(last_150.advert(), Some(priority(150)));
    assert!(
        m_adverts.iter().any(|e| e.after(&dropped)
            && e.wall < b_master.wall
            && e.advert() == Some(priority(90))),
        "m advertised priority 90 before b took over"
    );
    assert_interval(
        "m's last advert at 150 to b MASTER",
        b_master.since(last_150),
        b_mdi,
        EARLY,
        LATE,
    );
    let m_backup = wait_entered(&mut p, Side::M, None, State::Backup, &b_master, SLACK);
    assert_eq!(
        m_backup.event.detail,
        format!("higher priority 100 from {}", net.b())
    );
    p.wait_holder(Side::B, SLACK).expect("the VIP on b alone");
    p.hold(Side::B, SETTLE)
        .expect("b holds the VIP while m's check fails");

    let up = p.mark("create m's file: chk_nginx passes");
    files.set("m-nginx", true);
    let raised =
        p.m.wait_event("m's priority rising", INTERVAL + SLACK, |e| {
            e.after(&up)
                && e.event.kind
                    == EventKind::Priority {
                        from: priority(90),
                        to: priority(150),
                    }
        })
        .expect("the recovered script gives m its priority back");
    assert_interval(
        "file created to m at priority 150",
        raised.since(&up),
        INTERVAL,
        INTERVAL,
        LATE,
    );
    let mdi = p.m_conf.master_down_interval();
    let m_master = wait_entered(&mut p, Side::M, None, State::Master, &raised, mdi + SLACK);
    assert!(
        m_master
            .event
            .detail
            .starts_with(&format!("preempt: ignored priority 100 from {}", net.b())),
        "{}",
        m_master.event.detail
    );
    let heard = last_heard_before(&adverts(&p.b.timeline().unwrap()), raised.wall);
    assert_interval_after_one(
        "b's last advert m accepted to m MASTER",
        &heard,
        &m_master,
        mdi,
    );
    wait_entered(&mut p, Side::B, None, State::Backup, &m_master, SLACK);
    p.wait_holder(Side::M, SLACK).expect("the VIP back on m");
    p.hold(Side::M, SETTLE)
        .expect("m alone holds the VIP after preempting");
    insta::assert_snapshot!(p.render_order().unwrap());
}

/// Gives m a second interface, `eth1`: a veth whose peer (`eth1-peer`,
/// also on m) the test takes down to cut eth1's carrier.
fn m_with_eth1(lan: &appliance_tests::netns::Lan) -> appliance_tests::error::Result<()> {
    let m = lan.host("m");
    m.ip(&[
        "link",
        "add",
        "eth1",
        "type",
        "veth",
        "peer",
        "name",
        "eth1-peer",
    ])?;
    m.ip(&["link", "set", "eth1-peer", "up"])?;
    m.ip(&["link", "set", "eth1", "up"])?;
    Ok(())
}

/// `track_interface` without weight, as keepalived: `m` tracks a second
/// interface `eth1` (a veth whose peer the test takes down, so eth1 loses
/// carrier while eth0 stays up). m goes to FAULT at once, resigns with
/// priority 0 and drops the VIP; b takes over after its Skew_Time. With
/// eth1's carrier back, m leaves FAULT for BACKUP and preempts one
/// Master_Down_Interval later.
#[test]
fn a_tracked_interface_losing_carrier_faults_the_master_and_hands_the_vip_over_and_back() {
    let net = Net(143);
    let vip = Net::cidr(&net.vip());
    let m = Instance::new("m", 143, 150, &vip)
        .initial_master()
        .track_interface("eth1");
    let b = Instance::new("b", 143, 100, &vip);
    let mut p = Pair::start_with(net, m, b, &net.vip(), m_with_eth1).expect("m and b elect m");
    p.hold(Side::M, SETTLE).expect("m alone holds the VIP");

    let cut = p.mark("take eth1's peer down: m's eth1 loses carrier");
    p.host(Side::M)
        .ip(&["link", "set", "eth1-peer", "down"])
        .unwrap();
    let m_fault = wait_entered(&mut p, Side::M, None, State::Fault, &cut, SLACK);
    assert_eq!(m_fault.event.detail, "track eth1 failed");
    assert_interval(
        "eth1's carrier lost to m FAULT",
        m_fault.since(&cut),
        Duration::ZERO,
        Duration::ZERO,
        LATE,
    );
    let resign =
        p.m.wait_event("m resigning", SLACK, |e| {
            e.after(&cut) && e.advert() == Some(Priority::RESIGN)
        })
        .expect("m resigns as it enters FAULT");
    let b_master = wait_entered(&mut p, Side::B, None, State::Master, &cut, SLACK);
    assert_interval(
        "m's priority 0 advert to b MASTER",
        b_master.since(&resign),
        p.b_conf.skew(),
        EARLY,
        LATE,
    );
    p.wait_holder(Side::B, SLACK).expect("the VIP on b alone");
    p.hold(Side::B, SETTLE)
        .expect("b holds the VIP while m is in FAULT");
    assert!(
        p.host(Side::M)
            .ip(&["link", "show", "eth0"])
            .is_ok_and(|out| { String::from_utf8_lossy(&out.stdout).contains("LOWER_UP") }),
        "m's eth0 kept its carrier: the fault is eth1's"
    );

    let restore = p.mark("bring eth1's peer up");
    p.host(Side::M)
        .ip(&["link", "set", "eth1-peer", "up"])
        .unwrap();
    let m_backup = wait_entered(&mut p, Side::M, None, State::Backup, &restore, SLACK);
    assert_eq!(m_backup.event.detail, "track eth1 recovered");
    let mdi = p.m_conf.master_down_interval();
    let m_master = wait_entered(&mut p, Side::M, None, State::Master, &m_backup, mdi + SLACK);
    assert_interval(
        "m BACKUP to m MASTER (preempt)",
        m_master.since(&m_backup),
        mdi,
        EARLY,
        LATE,
    );
    wait_entered(&mut p, Side::B, None, State::Backup, &m_master, SLACK);
    p.wait_holder(Side::M, SLACK).expect("the VIP back on m");
    p.hold(Side::M, SETTLE)
        .expect("m alone holds the VIP after preempting");
    insta::assert_snapshot!(p.render_order().unwrap());
}

/// `nopreempt` on both (both `state BACKUP`, as keepalived requires): `m`
/// stops, `b` takes over; m, started again with its higher priority,
/// stays BACKUP well past its Master_Down_Interval (without nopreempt it
/// preempts then: vrrp_failover's restart test). It is still a backup
/// that works: when b stops, m takes over after its Skew_Time.
#[test]
fn with_nopreempt_a_restarted_higher_priority_master_leaves_the_vip_on_the_backup() {
    let net = Net(140);
    let vip = Net::cidr(&net.vip());
    let m = Instance::new("m", 140, 150, &vip).nopreempt();
    let b = Instance::new("b", 140, 100, &vip).nopreempt();
    let mut p = Pair::start(net, m, b, &net.vip()).expect("m and b elect m");

    p.mark("SIGTERM m");
    p.m.stop().unwrap();
    p.wait_holder(Side::B, SLACK).expect("b takes the VIP");
    let restart = p.mark("start m again");
    let m_host = p.lan.host("m");
    p.m.restart(m_host).unwrap();
    wait_entered(&mut p, Side::M, None, State::Backup, &restart, SLACK);
    let mdi = p.m_conf.master_down_interval();
    p.hold(Side::B, mdi * 2)
        .expect("b keeps the VIP: m does not preempt");
    let m_master =
        p.m.timeline()
            .unwrap()
            .into_iter()
            .find(|e| e.after(&restart) && e.entered() == Some(State::Master));
    assert!(m_master.is_none(), "m preempted: {m_master:?}");

    let stop_b = p.mark("SIGTERM b");
    p.b.stop().unwrap();
    let resign =
        p.b.timeline()
            .unwrap()
            .into_iter()
            .find(|e| e.after(&stop_b) && e.advert() == Some(Priority::RESIGN))
            .expect("b sent a priority 0 advert when it stopped");
    let m_master = wait_entered(&mut p, Side::M, None, State::Master, &stop_b, SLACK);
    assert_interval(
        "b's priority 0 advert to m MASTER",
        m_master.since(&resign),
        p.m_conf.skew(),
        EARLY,
        LATE,
    );
    p.host(Side::M)
        .wait_address(p.vip, true, SLACK)
        .expect("m takes the VIP");
    insta::assert_snapshot!(p.render_order().unwrap());
}

/// `preempt_delay` (4.5 s: half an advert interval away from any advert
/// of b, so which adverts fall inside it is not a race): `m`, started
/// again after b took over, accepts b's lower adverts until 4.5 s after
/// the first it heard, then ignores them and preempts one
/// Master_Down_Interval after the last it accepted, about 7.4 s after the
/// first instead of vrrp_failover's 3.4 s.
#[test]
fn with_preempt_delay_a_restarted_higher_priority_master_waits_before_preempting() {
    const DELAY: Duration = Duration::from_millis(4500);
    let net = Net(141);
    let vip = Net::cidr(&net.vip());
    let m = Instance::new("m", 141, 150, &vip).preempt_delay_ms(4500);
    let b = Instance::new("b", 141, 100, &vip);
    let mut p = Pair::start(net, m, b, &net.vip()).expect("m and b elect m");

    p.mark("SIGTERM m");
    p.m.stop().unwrap();
    p.wait_holder(Side::B, SLACK).expect("b takes the VIP");
    let restart = p.mark("start m again");
    let m_host = p.lan.host("m");
    p.m.restart(m_host).unwrap();
    let m_backup = wait_entered(&mut p, Side::M, None, State::Backup, &restart, SLACK);
    p.hold(Side::B, DELAY)
        .expect("b keeps the VIP during m's preempt delay");
    let mdi = p.m_conf.master_down_interval();
    let m_master = wait_entered(&mut p, Side::M, None, State::Master, &m_backup, mdi + SLACK);
    assert!(
        m_master
            .event
            .detail
            .starts_with(&format!("preempt: ignored priority 100 from {}", net.b())),
        "{}",
        m_master.event.detail
    );
    let b_adverts = adverts(&p.b.timeline().unwrap());
    let mut accepted_last: Vec<Entry> = Vec::new();
    for first in first_heard_after(&b_adverts, m_backup.wall) {
        let last = b_adverts
            .iter()
            .rfind(|e| e.wall < first.wall + DELAY)
            .expect("the first advert itself")
            .clone();
        if !accepted_last.iter().any(|a| a.wall == last.wall) {
            accepted_last.push(last);
        }
    }
    assert_interval_after_one(
        "b's last advert within m's preempt delay to m MASTER",
        &accepted_last,
        &m_master,
        mdi,
    );
    assert!(
        m_master.since(&m_backup) >= DELAY + mdi - INTERVAL - EARLY,
        "m preempted {:?} after it started: before its delay and Master_Down_Interval",
        m_master.since(&m_backup)
    );
    wait_entered(&mut p, Side::B, None, State::Backup, &m_master, SLACK);
    p.wait_holder(Side::M, SLACK).expect("the VIP back on m");
    insta::assert_snapshot!(p.render_order().unwrap());
}

/// A `vrrp_sync_group` G of VI_1 (VRID 144) and VI_2 (VRID 145), one VIP
/// each, on both directors, with the group's own `notify_master`,
/// `notify_backup`, `notify_fault` and `notify` recording their runs. m's
/// VI_1 tracks a script without weight: its failure takes VI_1 to FAULT
/// and the group takes VI_2 with it; both resign, and b's two instances
/// take both VIPs after their Skew_Time, together. The file back, m's
/// group leaves FAULT and preempts both. Each group change runs the
/// group's notifies once (not once per member), `notify` with `GROUP G
/// STATE 0` appended.
#[test]
fn a_sync_group_member_failing_moves_both_vips_and_runs_the_groups_notifies() {
    let net = Net(144);
    let files = Files::new();
    files.set("m-gw", true);
    let vip1 = format!("10.{}.0.100", net.0);
    let vip2 = format!("10.{}.0.101", net.0);
    let vips = [parse(&vip1), parse(&vip2)];
    let director = |node: &str, priority: u8| {
        let group = SyncGroup::new(
            "G",
            vec![Instance::new(node, 145, priority, &Net::cidr(&vip2)).named("VI_2")],
        )
        .notify("notify_master", &files.rec(&format!("{node}-master")))
        .notify("notify_backup", &files.rec(&format!("{node}-backup")))
        .notify("notify_fault", &files.rec(&format!("{node}-fault")))
        .notify("notify", &files.rec(&format!("{node}-notify")));
        Instance::new(node, 144, priority, &Net::cidr(&vip1))
            .named("VI_1")
            .sync_group(group)
    };
    let m = director("m", 150).track_script(Script::new("chk_gw", &files.test("m-gw")));
    let b = director("b", 100);
    let mut p = Pair::start(net, m, b, &vip1).expect("m and b elect m");
    wait_holder_of_all(&p, Side::M, &vips, SLACK);
    files.wait_calls(
        0,
        &[
            "m-backup",
            "m-notify GROUP G BACKUP 0",
            "m-master",
            "m-notify GROUP G MASTER 0",
            "b-backup",
            "b-notify GROUP G BACKUP 0",
        ],
        SLACK,
    );
    hold_all(&p, Side::M, &vips, SETTLE);
    files.assert_calls(
        0,
        &[
            "m-backup",
            "m-notify GROUP G BACKUP 0",
            "m-master",
            "m-notify GROUP G MASTER 0",
            "b-backup",
            "b-notify GROUP G BACKUP 0",
        ],
    );

    let runs = files.calls().len();
    let down = p.mark("remove m's file: VI_1's chk_gw fails");
    files.set("m-gw", false);
    let m_fault1 = wait_entered(
        &mut p,
        Side::M,
        Some("VI_1"),
        State::Fault,
        &down,
        INTERVAL + SLACK,
    );
    assert_eq!(m_fault1.event.detail, "track chk_gw failed");
    assert_interval(
        "file removed to m's VI_1 FAULT",
        m_fault1.since(&down),
        INTERVAL,
        INTERVAL,
        LATE,
    );
    let m_fault2 = wait_entered(&mut p, Side::M, Some("VI_2"), State::Fault, &down, SLACK);
    assert_eq!(m_fault2.event.detail, "sync group");
    let m_timeline = p.m.timeline().unwrap();
    let mut b_masters = Vec::new();
    for instance in ["VI_1", "VI_2"] {
        let resign = m_timeline
            .iter()
            .find(|e| {
                e.after(&down)
                    && e.advert() == Some(Priority::RESIGN)
                    && e.event.instance.as_deref() == Some(instance)
            })
            .unwrap_or_else(|| panic!("m's {instance} resigned as it entered FAULT"))
            .clone();
        let b_master = wait_entered(&mut p, Side::B, Some(instance), State::Master, &down, SLACK);
        assert_interval(
            &format!("m's {instance} priority 0 advert to b's {instance} MASTER"),
            b_master.since(&resign),
            p.b_conf.skew(),
            EARLY,
            LATE,
        );
        b_masters.push(b_master);
    }
    assert!(
        apart(&b_masters[0], &b_masters[1]) <= LATE,
        "b's members went master {:?} apart, not together",
        apart(&b_masters[0], &b_masters[1])
    );
    wait_holder_of_all(&p, Side::B, &vips, SLACK);
    let failover = [
        "m-fault",
        "m-notify GROUP G FAULT 0",
        "b-master",
        "b-notify GROUP G MASTER 0",
    ];
    files.wait_calls(runs, &failover, SLACK);
    hold_all(&p, Side::B, &vips, SETTLE);
    files.assert_calls(runs, &failover);

    let runs = files.calls().len();
    let up = p.mark("create m's file: chk_gw passes");
    files.set("m-gw", true);
    let mut m_masters = Vec::new();
    for instance in ["VI_1", "VI_2"] {
        let m_backup = wait_entered(
            &mut p,
            Side::M,
            Some(instance),
            State::Backup,
            &up,
            INTERVAL + SLACK,
        );
        let mdi = p.m_conf.master_down_interval();
        let m_master = wait_entered(
            &mut p,
            Side::M,
            Some(instance),
            State::Master,
            &m_backup,
            mdi + SLACK,
        );
        assert_interval(
            &format!("m's {instance} BACKUP to MASTER (preempt)"),
            m_master.since(&m_backup),
            mdi,
            EARLY,
            LATE,
        );
        m_masters.push(m_master);
    }
    assert!(
        apart(&m_masters[0], &m_masters[1]) <= LATE,
        "m's members went master {:?} apart, not together",
        apart(&m_masters[0], &m_masters[1])
    );
    // b's VI_1 hears m's VI_1 and takes VI_2 along (sync group), maybe
    // before m's VI_2 advert arrives.
    let first = m_masters
        .iter()
        .min_by_key(|e| e.wall)
        .expect("two members")
        .clone();
    for instance in ["VI_1", "VI_2"] {
        wait_entered(
            &mut p,
            Side::B,
            Some(instance),
            State::Backup,
            &first,
            SLACK,
        );
    }
    wait_holder_of_all(&p, Side::M, &vips, SLACK);
    let recovery = [
        "m-backup",
        "m-notify GROUP G BACKUP 0",
        "m-master",
        "m-notify GROUP G MASTER 0",
        "b-backup",
        "b-notify GROUP G BACKUP 0",
    ];
    let calls = files.wait_calls(runs, &recovery, SLACK);
    let at = |line: &str| calls.iter().position(|c| c == line);
    assert!(
        at("m-backup") < at("m-master"),
        "m's group notified BACKUP before MASTER: {calls:?}"
    );
    hold_all(&p, Side::M, &vips, SETTLE);
    files.assert_calls(runs, &recovery);
    insta::assert_snapshot!(p.render_order().unwrap());
}

/// A `vrrp_sync_group` G of VI_1 (VRID 164) and VI_2 (VRID 165) whose
/// own `track_interface { eth1 }` (keepalived gives it to every member)
/// is on m: eth1 losing carrier takes both of m's members to FAULT, both
/// resign and b takes both VIPs; carrier back, m's members leave FAULT
/// and preempt both VIPs back.
#[test]
fn an_interface_tracked_by_the_sync_group_itself_faults_both_members_and_back() {
    let net = Net(164);
    let vip1 = format!("10.{}.0.100", net.0);
    let vip2 = format!("10.{}.0.101", net.0);
    let vips = [parse(&vip1), parse(&vip2)];
    let director = |node: &str, priority: u8, tracked: bool| {
        let mut group = SyncGroup::new(
            "G",
            vec![Instance::new(node, 165, priority, &Net::cidr(&vip2)).named("VI_2")],
        );
        if tracked {
            group = group.track_interface("eth1");
        }
        Instance::new(node, 164, priority, &Net::cidr(&vip1))
            .named("VI_1")
            .sync_group(group)
    };
    let m = director("m", 150, true);
    let b = director("b", 100, false);
    let mut p = Pair::start_with(net, m, b, &vip1, m_with_eth1).expect("m and b elect m");
    wait_holder_of_all(&p, Side::M, &vips, SLACK);
    hold_all(&p, Side::M, &vips, SETTLE);

    let cut = p.mark("take eth1's peer down: m's eth1 loses carrier");
    p.host(Side::M)
        .ip(&["link", "set", "eth1-peer", "down"])
        .unwrap();
    for instance in ["VI_1", "VI_2"] {
        let fault = wait_entered(&mut p, Side::M, Some(instance), State::Fault, &cut, SLACK);
        assert_interval(
            &format!("eth1's carrier lost to m's {instance} FAULT"),
            fault.since(&cut),
            Duration::ZERO,
            Duration::ZERO,
            LATE,
        );
        wait_entered(&mut p, Side::B, Some(instance), State::Master, &cut, SLACK);
    }
    wait_holder_of_all(&p, Side::B, &vips, SLACK);
    hold_all(&p, Side::B, &vips, SETTLE);

    let restore = p.mark("bring eth1's peer up");
    p.host(Side::M)
        .ip(&["link", "set", "eth1-peer", "up"])
        .unwrap();
    let mdi = p.m_conf.master_down_interval();
    for instance in ["VI_1", "VI_2"] {
        wait_entered(
            &mut p,
            Side::M,
            Some(instance),
            State::Master,
            &restore,
            mdi + SLACK,
        );
    }
    wait_holder_of_all(&p, Side::M, &vips, SLACK);
    hold_all(&p, Side::M, &vips, SETTLE);
}
