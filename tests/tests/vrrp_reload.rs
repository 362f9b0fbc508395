//! SIGHUP reloads the config of a running daemon: a new priority takes
//! effect at once (a backup raised above the master preempts it), and an
//! invalid config is logged and rejected while the running one goes on
//! (the master keeps the VIP and still reloads a valid config later).

use appliance::timeline::EventKind;
use appliance::vrrp::machine::State;
use appliance_tests::pair::{Net, Pair, Side};
use appliance_tests::vrrp_conf::Instance;
use std::time::Duration;

const SLACK: Duration = Duration::from_secs(3);
const LATE: Duration = Duration::from_millis(400);

fn pair(net: Net, vrid: u8) -> Pair {
    let vip = Net::cidr(&net.vip());
    let m = Instance::new("m", vrid, 150, &vip).initial_master();
    let b = Instance::new("b", vrid, 100, &vip);
    Pair::start(net, m, b, &net.vip()).expect("m and b elect m")
}

#[test]
fn a_backup_reloaded_with_a_higher_priority_preempts_the_master() {
    let mut p = pair(Net(97), 97);
    let raised = p.b_conf.clone().priority(200);
    p.b.write_config(&raised.render()).unwrap();
    let hup = p.mark("b's priority 100 -> 200, SIGHUP b");
    p.b.signal("HUP").unwrap();
    p.b.wait_event("b's new priority", SLACK, |e| {
        e.after(&hup)
            && matches!(e.event.kind, EventKind::Priority { from, to } if from.get() == 100 && to.get() == 200)
    })
    .expect("b takes the new priority");
    // b ignores m's adverts from now on: it becomes master when the
    // timer armed by the last advert it accepted expires, at most one
    // Master_Down_Interval (at the old priority) after the reload.
    let bound = p.b_conf.master_down_interval() + LATE;
    let b_master =
        p.b.wait_event("b preempting", bound + SLACK, |e| {
            e.after(&hup) && e.entered() == Some(State::Master)
        })
        .expect("b preempts m");
    let took = b_master.since(&hup);
    eprintln!("MEASURED reload: SIGHUP to b MASTER: {took:?} (at most {bound:?})");
    assert!(took <= bound, "b preempted {took:?} after the reload");
    assert!(
        b_master.event.detail.starts_with("preempt"),
        "{}",
        b_master.event.detail
    );
    p.m.wait_event("m stepping down", SLACK, |e| {
        e.after(&b_master) && e.entered() == Some(State::Backup)
    })
    .expect("m steps down");
    p.wait_holder(Side::B, SLACK).expect("the VIP on b");
    p.hold(Side::B, Duration::from_secs(2))
        .expect("b alone holds the VIP");
    insta::assert_snapshot!(p.render_order().unwrap());
}

#[test]
fn an_invalid_config_is_rejected_and_the_running_one_kept() {
    let mut p = pair(Net(98), 98);
    let valid = p.m_conf.render();
    // A VRID out of range: the config loads no more.
    p.m.write_config(&valid.replace("virtual_router_id 98", "virtual_router_id 300"))
        .unwrap();
    let hup = p.mark("invalid config, SIGHUP m");
    p.m.signal("HUP").unwrap();
    p.m.wait_log("reload rejected; the running config stays", SLACK)
        .expect("m logs the rejection");
    assert!(
        p.m.log().contains("virtual_router_id"),
        "the log names the problem:\n{}",
        p.m.log()
    );
    // Longer than b's Master_Down_Interval: had m stopped advertising,
    // b would have taken over.
    p.hold(
        Side::M,
        p.b_conf.master_down_interval() + Duration::from_secs(1),
    )
    .expect("m keeps the VIP");
    assert!(p.m.running().unwrap(), "m still runs");
    let changes: Vec<_> =
        p.m.timeline()
            .unwrap()
            .into_iter()
            .filter(|e| {
                e.after(&hup)
                    && matches!(
                        e.event.kind,
                        EventKind::State { .. }
                            | EventKind::Priority { .. }
                            | EventKind::VipsAdded
                            | EventKind::VipsRemoved
                    )
            })
            .map(|e| e.event.kind)
            .collect();
    assert!(changes.is_empty(), "m changed nothing: {changes:?}");

    // The daemon still reloads: a valid config with a priority below b's
    // hands the VIP to b.
    p.m.write_config(&p.m_conf.clone().priority(50).render())
        .unwrap();
    let hup = p.mark("m's priority 150 -> 50, SIGHUP m");
    p.m.signal("HUP").unwrap();
    let b_master =
        p.b.wait_event(
            "b preempting",
            p.b_conf.master_down_interval() + SLACK,
            |e| e.after(&hup) && e.entered() == Some(State::Master),
        )
        .expect("b preempts the lowered m");
    p.m.wait_event("m stepping down", SLACK, |e| {
        e.after(&b_master) && e.entered() == Some(State::Backup)
    })
    .expect("m steps down");
    p.wait_holder(Side::B, SLACK).expect("the VIP on b");
    insta::assert_snapshot!(p.render_order().unwrap());
}

#[test]
fn a_config_including_a_fifo_is_rejected_without_blocking_the_daemon() {
    let mut p = pair(Net(106), 106);
    let dir = p.m.config_path().parent().unwrap().to_path_buf();
    let fifo = dir.join("fifo.conf");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    // Reading a FIFO no one writes to blocks: read on the daemon's loop,
    // it would stop the adverts and b would take over.
    p.m.write_config(&format!(
        "{}include {}\n",
        p.m_conf.render(),
        fifo.display()
    ))
    .unwrap();
    p.mark("config includes a FIFO, SIGHUP m");
    p.m.signal("HUP").unwrap();
    p.m.wait_log("reload rejected; the running config stays", SLACK)
        .expect("m rejects the config at once");
    assert!(
        p.m.log().contains("not a regular file (a FIFO)"),
        "the log says why:\n{}",
        p.m.log()
    );
    p.hold(
        Side::M,
        p.b_conf.master_down_interval() + Duration::from_secs(1),
    )
    .expect("m keeps the VIP");
}
