//! The running daemon fails over and back: an appliance master `m`
//! (priority 150) and backup `b` (priority 100) on a LAN, VRRPv2 with PASS
//! authentication, advert_int 1. Losing the master (cable cut, crash)
//! hands the VIP to the backup one Master_Down_Interval after the
//! master's last advert; the master preempts when it comes back; a master
//! that stops resigns and the backup takes over after Skew_Time. Each
//! test snapshots the order of both nodes' timeline events.

use appliance::vrrp::machine::State;
use appliance_tests::pair::{Net, Pair, Side, assert_interval};
use appliance_tests::vrrp_conf::Instance;
use std::time::{Duration, SystemTime};

/// A timer may fire a little early relative to the wall clock stamps
/// (the advert's stamp is taken after it was sent).
const EARLY: Duration = Duration::from_millis(50);
/// Scheduling delays on a loaded machine.
const LATE: Duration = Duration::from_millis(400);
/// Waits for something expected within a protocol interval get this much
/// slack before the test gives up (the bounds are asserted separately).
const SLACK: Duration = Duration::from_secs(3);

fn pair(net: Net, vrid: u8) -> Pair {
    let vip = Net::cidr(&net.vip());
    let m = Instance::new("m", vrid, 150, &vip)
        .initial_master()
        .auth_pass("secret");
    let b = Instance::new("b", vrid, 100, &vip).auth_pass("secret");
    Pair::start(net, m, b, &net.vip()).expect("m and b elect m")
}

/// After `last` (m's last advert before it went away), `b` becomes master
/// one Master_Down_Interval later and holds the VIP; returns b's entry.
fn backup_takes_over(p: &mut Pair, what: &str, last: &appliance_tests::timeline::Entry) {
    let mdi = p.b_conf.master_down_interval();
    p.host(Side::B)
        .wait_address(p.vip, true, mdi + SLACK)
        .expect("b takes the VIP");
    let b_master =
        p.b.wait_event("b becoming master", SLACK, |e| {
            e.after(last) && e.entered() == Some(State::Master)
        })
        .expect("b's timeline");
    assert_interval(
        &format!("{what}: m's last advert to b MASTER"),
        b_master.since(last),
        mdi,
        EARLY,
        LATE,
    );
    let added =
        p.b.wait_event("b adding the VIPs", SLACK, |e| {
            e.after(&b_master) && e.event.kind == appliance::timeline::EventKind::VipsAdded
        })
        .expect("b's timeline");
    assert_interval(
        &format!("{what}: m's last advert to b's VIPs added"),
        added.since(last),
        mdi,
        EARLY,
        LATE,
    );
    p.b.wait_notify(State::Master, &b_master, SLACK)
        .expect("b's takeover completes");
}

/// `m`, back as backup since `since`, preempts b one Master_Down_Interval
/// (its own) later, and b steps down.
fn master_preempts(p: &mut Pair, what: &str, since: &appliance_tests::timeline::Entry) {
    let mdi = p.m_conf.master_down_interval();
    let m_master =
        p.m.wait_event("m becoming master again", mdi + SLACK, |e| {
            e.after(since) && e.entered() == Some(State::Master)
        })
        .expect("m preempts");
    assert_interval(
        &format!("{what}: m BACKUP to m MASTER (preempt)"),
        m_master.since(since),
        mdi,
        EARLY,
        LATE,
    );
    p.b.wait_event("b stepping down", SLACK, |e| {
        e.after(&m_master) && e.entered() == Some(State::Backup)
    })
    .expect("b steps down when m preempts");
    p.wait_holder(Side::M, SLACK).expect("the VIP back on m");
    p.hold(Side::M, Duration::from_secs(2))
        .expect("m alone holds the VIP after preempting");
}

#[test]
fn a_cut_link_fails_over_within_master_down_interval_and_the_master_preempts_on_restore() {
    let mut p = pair(Net(91), 91);
    p.hold(Side::M, Duration::from_secs(2))
        .expect("m alone holds the VIP");

    p.m.next_advert(SLACK).expect("m advertises");
    let cut = p.mark("cut m's link");
    p.host(Side::M).cut_link().unwrap();
    let last = p.m.last_advert(SystemTime::now()).unwrap();
    backup_takes_over(&mut p, "link cut", &last);
    p.m.wait_notify(State::Fault, &cut, SLACK)
        .expect("m sees its link down and goes to FAULT");
    p.host(Side::M)
        .wait_address(p.vip, false, SLACK)
        .expect("m in FAULT drops the VIP");

    let restore = p.mark("restore m's link");
    p.host(Side::M).restore_link().unwrap();
    let m_backup =
        p.m.wait_event("m leaving FAULT", SLACK, |e| {
            e.after(&restore) && e.entered() == Some(State::Backup)
        })
        .expect("m sees its link up");
    master_preempts(&mut p, "link restored", &m_backup);
    insta::assert_snapshot!(p.render_order().unwrap());
}

/// keepalived's `dont_track_primary`: the master's own link going down
/// leaves it MASTER with its VIP (the backup, hearing nothing, takes over
/// too); once the link is back the higher priority wins again. The test
/// above is its control: the same cut takes a tracking master to FAULT.
#[test]
fn with_dont_track_primary_a_cut_link_leaves_the_master_in_master() {
    let net = Net(133);
    let vip = Net::cidr(&net.vip());
    let m = Instance::new("m", 133, 150, &vip)
        .initial_master()
        .dont_track_primary();
    let b = Instance::new("b", 133, 100, &vip);
    let mut p = Pair::start(net, m, b, &net.vip()).expect("m and b elect m");
    p.hold(Side::M, Duration::from_secs(2))
        .expect("m alone holds the VIP");

    let cut = p.mark("cut m's link");
    p.host(Side::M).cut_link().unwrap();
    let mdi = p.b_conf.master_down_interval();
    p.host(Side::B)
        .wait_address(p.vip, true, mdi + SLACK)
        .expect("b, hearing nothing, takes the VIP");
    assert!(
        p.host(Side::M).addresses().unwrap().contains(&p.vip),
        "m keeps its VIP while its link is down"
    );
    let changes: Vec<_> =
        p.m.timeline()
            .unwrap()
            .into_iter()
            .filter(|e| e.after(&cut) && e.entered().is_some())
            .collect();
    assert!(changes.is_empty(), "m changed state: {changes:?}");

    let restore = p.mark("restore m's link");
    p.host(Side::M).restore_link().unwrap();
    p.b.wait_event("b stepping down", SLACK, |e| {
        e.after(&restore) && e.entered() == Some(State::Backup)
    })
    .expect("b hears m's higher priority and steps down");
    p.wait_holder(Side::M, SLACK).expect("the VIP on m alone");
    p.hold(Side::M, Duration::from_secs(2))
        .expect("m alone holds the VIP after the heal");
}

#[test]
fn a_killed_master_fails_over_within_master_down_interval_and_preempts_when_restarted() {
    let mut p = pair(Net(92), 92);
    p.m.next_advert(SLACK).expect("m advertises");
    p.mark("kill -9 m");
    p.m.kill().unwrap();
    let last = p.m.last_advert(SystemTime::now()).unwrap();
    backup_takes_over(&mut p, "kill -9", &last);

    assert!(
        p.host(Side::M).has_address(p.vip).unwrap(),
        "a killed daemon leaves its VIP behind"
    );
    let restart = p.mark("restart m");
    let m_host = p.lan.host("m");
    p.m.restart(m_host).unwrap();
    // keepalived removes leftover VIPs at startup: a killed master's VIP
    // must not stay on it while it is backup.
    p.host(Side::M)
        .wait_address(p.vip, false, Duration::from_secs(1))
        .expect("the restarted m removes the VIP its killed run left");
    let m_backup =
        p.m.wait_event("m starting as backup", SLACK, |e| {
            e.after(&restart) && e.entered() == Some(State::Backup)
        })
        .expect("m starts");
    master_preempts(&mut p, "restart", &m_backup);
    insta::assert_snapshot!(p.render_order().unwrap());
}

/// `m`, started again after `since`, resumes as master (no election)
/// and holds the VIP well past b's Master_Down_Interval; b never took
/// over.
fn resumes_and_keeps_the_vip(p: &mut Pair, since: &appliance_tests::timeline::Entry) {
    let resumed =
        p.m.wait_event("m resuming as master", SLACK, |e| {
            e.after(since) && e.entered() == Some(State::Master)
        })
        .expect("m resumes");
    assert!(
        resumed.event.detail.starts_with("resumed"),
        "m resumed rather than won an election: {:?}",
        resumed.event.detail
    );
    p.hold(
        Side::M,
        p.b_conf.master_down_interval() + Duration::from_secs(1),
    )
    .expect("m holds the VIP throughout");
    let b_master =
        p.b.timeline()
            .unwrap()
            .into_iter()
            .find(|e| e.after(since) && e.entered() == Some(State::Master));
    assert!(b_master.is_none(), "b took over: {b_master:?}");
}

#[test]
fn a_master_restarted_within_master_down_interval_resumes_and_the_backup_never_takes_over() {
    let mut p = pair(Net(126), 126);
    p.m.next_advert(SLACK).expect("m advertises");
    let kill = p.mark("kill -9 m, restart m");
    p.m.kill().unwrap();
    p.m.restart(p.lan.host("m")).unwrap();
    resumes_and_keeps_the_vip(&mut p, &kill);
    // A clean stop resigns and leaves nothing to resume: the next start
    // is an ordinary one.
    p.m.stop().unwrap();
    p.host(Side::B)
        .wait_address(p.vip, true, SLACK)
        .expect("b takes the VIP");
    let again = p.mark("start m after a clean stop");
    p.m.restart(p.lan.host("m")).unwrap();
    p.m.wait_event("m starting as backup", SLACK, |e| {
        e.after(&again) && e.entered() == Some(State::Backup)
    })
    .expect("m starts as backup");
    insta::assert_snapshot!(p.render_order().unwrap());
}

/// An upgrade: SIGQUIT stops the master without resigning and leaves its
/// VIP; the new binary, started at once, resumes. The VIP never leaves m,
/// b never takes over.
#[test]
fn a_master_stopped_for_a_restart_keeps_its_vip_and_resumes() {
    let mut p = pair(Net(130), 130);
    p.m.next_advert(SLACK).expect("m advertises");
    let quit = p.mark("SIGQUIT m, start m");
    p.m.signal("QUIT").unwrap();
    let status = p.m.wait_exit().unwrap();
    assert!(status.success(), "SIGQUIT is a clean exit: {status:?}");
    assert!(
        p.host(Side::M).has_address(p.vip).unwrap(),
        "m keeps its VIP across the restart"
    );
    p.m.restart(p.lan.host("m")).unwrap();
    resumes_and_keeps_the_vip(&mut p, &quit);
    let m_resigned =
        p.m.timeline()
            .unwrap()
            .into_iter()
            .find(|e| e.after(&quit) && e.advert().is_some_and(|p| p.get() == 0));
    assert!(m_resigned.is_none(), "m resigned: {m_resigned:?}");
}

#[test]
fn a_stopped_master_resigns_and_the_backup_takes_over_after_skew_time() {
    let mut p = pair(Net(93), 93);
    p.mark("SIGTERM m");
    p.m.stop().unwrap();
    let resign =
        p.m.timeline()
            .unwrap()
            .into_iter()
            .rev()
            .find(|e| e.advert().is_some_and(|p| p.get() == 0))
            .expect("m sent a priority 0 advert when it stopped");
    assert!(
        !p.host(Side::M).has_address(p.vip).unwrap(),
        "m removed the VIP before exiting"
    );
    p.host(Side::B)
        .wait_address(p.vip, true, SLACK)
        .expect("b takes the VIP");
    let b_master =
        p.b.wait_event("b becoming master", SLACK, |e| {
            e.after(&resign) && e.entered() == Some(State::Master)
        })
        .expect("b's timeline");
    assert_interval(
        "SIGTERM: m's priority 0 advert to b MASTER",
        b_master.since(&resign),
        p.b_conf.skew(),
        EARLY,
        LATE,
    );
    p.hold(Side::B, Duration::from_secs(1))
        .expect("b alone holds the VIP");
    insta::assert_snapshot!(p.render_order().unwrap());
}
