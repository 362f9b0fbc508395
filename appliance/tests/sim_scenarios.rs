//! Runs every scenario in `tests/scenarios/` through the simulator and
//! snapshots its timeline; then checks the RFC timings of a few scenarios
//! explicitly, so a wrong snapshot cannot be accepted unnoticed.

use appliance::clock::Instant;
use appliance::sim;
use appliance::timeline::Timeline;
use appliance::vrrp::machine::State;
use std::path::Path;

fn run_file(path: &Path) -> Timeline {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    sim::run_toml(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn run(name: &str) -> Timeline {
    run_file(&Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/scenarios/{name}.toml")))
}

/// When `node`'s instance became `to`, in order.
fn entered(t: &Timeline, node: &str, instance: &str, to: State) -> Vec<Instant> {
    t.transitions(node, instance)
        .filter(|x| x.2 == to)
        .map(|x| x.0)
        .collect()
}

fn at(micros: u64) -> Instant {
    Instant::from_micros(micros)
}

#[test]
fn scenario_timelines() {
    insta::glob!("scenarios/*.toml", |path| {
        insta::assert_snapshot!(run_file(path).render());
    });
}

#[test]
fn cold_start_master_after_its_master_down_interval() {
    let t = run("cold_start_pair");
    // 3 s + (256 - 150)/256 s, floored to the microsecond.
    assert_eq!(entered(&t, "a", "VI_1", State::Master), vec![at(3_414_062)]);
    assert!(entered(&t, "b", "VI_1", State::Master).is_empty());
}

#[test]
fn master_crash_takeover_is_3_609375_s_after_last_advert() {
    let t = run("master_crash");
    // a's adverts: 3.414062 + k s; the last before the 10 s crash is 9.414062 s.
    let takeover = entered(&t, "b", "VI_1", State::Master);
    assert_eq!(takeover, vec![at(9_414_062 + 3_609_375)]);
}

#[test]
fn clean_shutdown_takeover_after_skew_time() {
    let t = run("clean_shutdown");
    assert_eq!(
        entered(&t, "b", "VI_1", State::Master),
        vec![at(10_000_000 + 609_375)]
    );
}

#[test]
fn preempt_and_nopreempt_on_return() {
    let t = run("preempt_return");
    assert_eq!(
        entered(&t, "a", "VI_1", State::Master),
        vec![at(3_414_062), at(23_414_062)]
    );
    assert_eq!(
        entered(&t, "b", "VI_1", State::Backup).last(),
        Some(&at(23_414_062))
    );
    let t = run("nopreempt_return");
    assert_eq!(entered(&t, "a", "VI_1", State::Master), vec![at(3_414_062)]);
}

#[test]
fn preempt_delay_postpones_preemption() {
    let t = run("preempt_delay");
    let a = entered(&t, "a", "VI_1", State::Master);
    assert_eq!(a.last(), Some(&at(29_023_437 + 3_414_062)));
}

#[test]
fn partition_gives_split_brain_and_heal_resolves_it() {
    let t = run("partition_heal");
    assert_eq!(
        entered(&t, "b", "VI_1", State::Master),
        vec![at(13_023_437)]
    );
    assert!(
        entered(&t, "a", "VI_1", State::Backup)
            .iter()
            .all(|x| *x < at(1_000_000))
    );
    assert_eq!(
        entered(&t, "b", "VI_1", State::Backup).last(),
        Some(&at(20_023_437))
    );
}

#[test]
fn failing_track_script_lets_backup_preempt() {
    let t = run("track_script_master");
    assert_eq!(
        entered(&t, "b", "VI_1", State::Master),
        vec![at(10_414_062 + 3_609_375)]
    );
}

#[test]
fn sync_group_members_fail_over_together() {
    let t = run("sync_group");
    for instance in ["VI_1", "VI_2"] {
        assert_eq!(
            entered(&t, "a", instance, State::Fault),
            vec![at(10_000_000)],
            "{instance}"
        );
        assert_eq!(
            entered(&t, "b", instance, State::Master),
            vec![at(10_609_375)],
            "{instance}"
        );
    }
}

#[test]
fn equal_priorities_elect_the_highest_address() {
    let t = run("three_equal");
    for node in ["a", "b", "c"] {
        assert_eq!(
            entered(&t, node, "VI_1", State::Master),
            vec![at(3_609_375)],
            "{node}"
        );
    }
    let last = |node| t.transitions(node, "VI_1").last().map(|x| x.2);
    assert_eq!(last("a"), Some(State::Backup));
    assert_eq!(last("b"), Some(State::Backup));
    assert_eq!(last("c"), Some(State::Master));
}

#[test]
fn v3_fast_adverts_fail_over_in_361_ms() {
    let t = run("v3_fast");
    // 300 ms + 106 * 100 ms / 256, floored.
    assert_eq!(entered(&t, "a", "VI_1", State::Master), vec![at(341_406)]);
    // Last advert at 0.341406 + 46 * 0.1 s; then 300 ms + 60.937 ms.
    assert_eq!(
        entered(&t, "b", "VI_1", State::Master),
        vec![at(4_941_406 + 360_937)]
    );
}

#[test]
fn link_cut_means_fault_then_preempt_on_return() {
    let t = run("link_cut");
    assert_eq!(entered(&t, "a", "VI_1", State::Fault), vec![at(10_000_000)]);
    assert_eq!(
        entered(&t, "b", "VI_1", State::Master),
        vec![at(13_023_437)]
    );
    assert_eq!(
        entered(&t, "a", "VI_1", State::Master).last(),
        Some(&at(18_414_062))
    );
}

#[test]
fn timeline_serialises_as_json_lines() {
    let t = run("master_crash");
    let text = t.to_json_lines().expect("serialisable");
    assert_eq!(Timeline::from_json_lines(&text).expect("parses back"), t);
}

#[test]
fn forged_adverts_from_off_the_link_leave_the_master_in_place() {
    let t = run("forged_off_link");
    let dropped: Vec<&str> = t
        .events()
        .iter()
        .filter_map(|e| match &e.kind {
            appliance::timeline::EventKind::Dropped { reason } => Some(reason.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(dropped, ["not_to_group", "not_to_group", "bad_ttl"]);
    // Only the advert a neighbour could send (to the group, TTL 255) at 8 s
    // moves a.
    assert_eq!(
        entered(&t, "a", "VI_1", State::Backup),
        [at(0), at(8_000_000)]
    );
}

#[test]
fn forged_intervals_are_not_learned() {
    let t = run("forged_intervals");
    // a's last advert before its 8 s crash went out at 7.414062 s; b's
    // Master_Down_Interval is still 3 x 1 s + skew, not 3 x 40.95 s.
    assert_eq!(
        entered(&t, "b", "VI_1", State::Master),
        [at(7_414_062 + 3_609_375)]
    );
}
