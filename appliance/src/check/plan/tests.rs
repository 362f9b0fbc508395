//! The decision core's rules, driven from config text through the
//! planner: what each probe's outcome does to its real server, quorum and
//! sorry server, as keepalived does it.

use super::*;
use crate::check::decision::*;
use crate::check::misc::misc_outcome;
use crate::clock::Instant;
use crate::config::model::Config;
use crate::script::Outcome as Script;
use std::time::Duration;

fn t(ms: u64) -> Instant {
    Instant::from_micros(ms * 1000)
}

fn vss(toml_text: &str) -> Vec<VirtualServer> {
    toml::from_str::<Config>(toml_text).unwrap().virtual_server
}

fn start(toml_text: &str) -> (Checker, Vec<Action>) {
    Checker::start(&plan(&vss(toml_text), &[]), t(0), |_| Duration::ZERO).unwrap()
}

const FAIL: Outcome = Outcome::Down(Failure::Timeout);
const P0: ProbeId = ProbeId(0);

fn sched(probe: u32, ms: u64) -> Action {
    Action::Schedule {
        probe: ProbeId(probe),
        at: t(ms),
    }
}

fn dest(addr: &str, weight: u32) -> Destination {
    Destination {
        address: addr.parse().unwrap(),
        weight,
    }
}

/// One TCP-checked server, retry 2, 1 s between retries, 5 s loop.
const ONE: &str = r#"
[[virtual_server]]
service = { address = "10.0.0.1:80" }
delay_loop = "5s"
[[virtual_server.real_server]]
address = "10.0.1.1:80"
weight = 3
check = [{ type = "TCP_CHECK", retry = 2, delay_before_retry = "1s" }]
"#;

#[test]
fn start_puts_servers_in_and_schedules_after_bootstrap_and_warmup() {
    let servers = vss(ONE);
    let mut asked = Vec::new();
    let (checker, actions) = Checker::start(&plan(&servers, &[]), t(0), |max| {
        asked.push(max);
        Duration::from_millis(1500)
    })
    .unwrap();
    // warmup unset: drawn up to delay_loop; first run at 1 s + the draw.
    assert_eq!(asked, vec![Duration::from_secs(5)]);
    assert_eq!(actions, vec![Action::Pool { vs: VsId(0) }, sched(0, 2500)]);
    assert_eq!(checker.pool(VsId(0)), vec![dest("10.0.1.1:80", 3)]);
    assert_eq!(checker.quorum_state(VsId(0)), Some((true, false)));
}

#[test]
fn a_failure_counts_after_retry_attempts_spaced_by_delay_before_retry() {
    let (mut c, _) = start(ONE);
    assert_eq!(c.probe_done(P0, Outcome::Up, t(1010)), vec![sched(0, 6010)]);
    // Two tolerated failures, each bringing the next run 1 s closer.
    assert_eq!(c.probe_done(P0, FAIL, t(6020)), vec![sched(0, 7020)]);
    assert_eq!(c.probe_done(P0, FAIL, t(7030)), vec![sched(0, 8030)]);
    assert_eq!(c.pool(VsId(0)).len(), 1);
    // The third failure takes it down; the quorum (1) goes with it.
    assert_eq!(
        c.probe_done(P0, FAIL, t(8040)),
        vec![
            Action::Server {
                rs: RsId(0),
                alive: false,
                weight: 3
            },
            Action::Pool { vs: VsId(0) },
            Action::Quorum {
                vs: VsId(0),
                up: false,
                weight_sum: 0,
                threshold: 1
            },
            sched(0, 13_040),
        ]
    );
    assert!(c.pool(VsId(0)).is_empty());
    // Down checks are not retried: the next run is a whole loop away.
    assert_eq!(c.probe_done(P0, FAIL, t(13_050)), vec![sched(0, 18_050)]);
    // One success is enough to come back.
    assert_eq!(
        c.probe_done(P0, Outcome::Up, t(18_060)),
        vec![
            Action::Server {
                rs: RsId(0),
                alive: true,
                weight: 3
            },
            Action::Pool { vs: VsId(0) },
            Action::Quorum {
                vs: VsId(0),
                up: true,
                weight_sum: 3,
                threshold: 1
            },
            sched(0, 23_060),
        ]
    );
    assert_eq!(c.pool(VsId(0)), vec![dest("10.0.1.1:80", 3)]);
}

#[test]
fn a_success_inside_a_retry_series_ends_it() {
    let (mut c, _) = start(ONE);
    c.probe_done(P0, Outcome::Up, t(1000));
    c.probe_done(P0, FAIL, t(6000));
    c.probe_done(P0, FAIL, t(7000));
    assert_eq!(
        c.probe_done(P0, Outcome::Up, t(8000)),
        vec![sched(0, 13_000)]
    );
    // A fresh series: two more failures are tolerated again.
    assert_eq!(c.probe_done(P0, FAIL, t(13_000)), vec![sched(0, 14_000)]);
    assert_eq!(c.probe_done(P0, FAIL, t(14_000)), vec![sched(0, 15_000)]);
    assert_eq!(c.server_state(RsId(0)), Some((true, 3)));
}

#[test]
fn the_first_outcome_is_decisive() {
    let (mut c, _) = start(ONE);
    let actions = c.probe_done(P0, FAIL, t(1000));
    assert_eq!(
        actions.first(),
        Some(&Action::Server {
            rs: RsId(0),
            alive: false,
            weight: 3
        })
    );
    assert_eq!(actions.last(), Some(&sched(0, 6000)));
}

const ALPHA: &str = r#"
[[virtual_server]]
service = { address = "10.0.0.1:80" }
delay_loop = "2s"
alpha = true
sorry_server = "10.0.9.9:80"
quorum_down = { program = "/bin/qdown" }
quorum_up = { program = "/bin/qup" }
[[virtual_server.real_server]]
address = "10.0.1.1:80"
notify_down = { program = "/bin/down" }
notify_up = { program = "/bin/up" }
check = [{ type = "TCP_CHECK" }]
[[virtual_server.real_server]]
address = "10.0.1.2:80"
inhibit_on_failure = true
check = [{ type = "TCP_CHECK", warmup = "0s" }]
"#;

#[test]
fn alpha_starts_down_with_the_sorry_server_and_announces_a_first_failure() {
    let (mut c, actions) = start(ALPHA);
    assert_eq!(
        actions,
        vec![
            Action::SorryServer {
                vs: VsId(0),
                active: true
            },
            Action::Pool { vs: VsId(0) },
            Action::Quorum {
                vs: VsId(0),
                up: false,
                weight_sum: 0,
                threshold: 1
            },
            Action::Notify(NotifyTarget::QuorumDown(VsId(0))),
            sched(0, 1000),
            sched(1, 1000),
        ]
    );
    // The inhibited server stays with weight 0; the sorry server serves.
    assert_eq!(
        c.pool(VsId(0)),
        vec![dest("10.0.1.2:80", 0), dest("10.0.9.9:80", 1)]
    );
    assert_eq!(
        c.probe_done(P0, FAIL, t(1000)),
        vec![
            Action::Notify(NotifyTarget::RsDown(RsId(0))),
            sched(0, 3000)
        ]
    );
    assert_eq!(
        c.probe_done(ProbeId(1), Outcome::Up, t(1000)),
        vec![
            Action::Server {
                rs: RsId(1),
                alive: true,
                weight: 1
            },
            Action::Pool { vs: VsId(0) },
            Action::SorryServer {
                vs: VsId(0),
                active: false
            },
            Action::Quorum {
                vs: VsId(0),
                up: true,
                weight_sum: 1,
                threshold: 1
            },
            Action::Notify(NotifyTarget::QuorumUp(VsId(0))),
            sched(1, 3000),
        ]
    );
    assert_eq!(c.pool(VsId(0)), vec![dest("10.0.1.2:80", 1)]);
    let up = c.probe_done(P0, Outcome::Up, t(3000));
    assert!(up.contains(&Action::Notify(NotifyTarget::RsUp(RsId(0)))));
    assert_eq!(
        Programs::of(&vss(ALPHA))
            .get(NotifyTarget::RsUp(RsId(0)))
            .map(|c| c.program.as_str()),
        Some("/bin/up")
    );
    assert_eq!(
        c.pool(VsId(0)),
        vec![dest("10.0.1.1:80", 1), dest("10.0.1.2:80", 1)]
    );
}

#[test]
fn inhibit_on_failure_keeps_a_failed_server_with_weight_zero() {
    let (mut c, _) = start(ALPHA);
    c.probe_done(P0, Outcome::Up, t(1000));
    c.probe_done(ProbeId(1), Outcome::Up, t(1000));
    // retry 1 (the default): the second failure counts.
    c.probe_done(ProbeId(1), FAIL, t(3000));
    assert_eq!(c.server_state(RsId(1)), Some((true, 1)));
    c.probe_done(ProbeId(1), FAIL, t(4000));
    assert_eq!(
        c.pool(VsId(0)),
        vec![dest("10.0.1.1:80", 1), dest("10.0.1.2:80", 0)]
    );
}

#[test]
fn all_checks_of_a_server_must_pass() {
    let text = r#"
[[virtual_server]]
service = { address = "10.0.0.1:80" }
delay_loop = "1s"
[[virtual_server.real_server]]
address = "10.0.1.1:80"
check = [{ type = "TCP_CHECK", retry = 0 }, { type = "TCP_CHECK", retry = 0, connect_port = 81 }]
"#;
    let (mut c, _) = start(text);
    let (a, b) = (ProbeId(0), ProbeId(1));
    assert_eq!(c.server_probes(RsId(0)).collect::<Vec<_>>(), vec![a, b]);
    c.probe_done(a, FAIL, t(1000));
    assert_eq!(c.server_state(RsId(0)), Some((false, 1)));
    c.probe_done(b, FAIL, t(1000));
    c.probe_done(a, Outcome::Up, t(2000));
    assert_eq!(c.server_state(RsId(0)), Some((false, 1)), "b still fails");
    let actions = c.probe_done(b, Outcome::Up, t(2000));
    assert_eq!(c.server_state(RsId(0)), Some((true, 1)));
    assert!(actions.contains(&Action::Pool { vs: VsId(0) }));
}

#[test]
fn misc_exit_codes_follow_keepalived() {
    assert_eq!(misc_outcome(&Script::Exited(0), false), Outcome::Up);
    assert_eq!(
        misc_outcome(&Script::Exited(1), true),
        Outcome::Down(Failure::Exit(1))
    );
    assert_eq!(
        misc_outcome(&Script::Exited(7), false),
        Outcome::Down(Failure::Exit(7))
    );
    assert_eq!(
        misc_outcome(&Script::Exited(7), true),
        Outcome::UpWeighted(DynamicWeight::Set(5))
    );
    assert_eq!(
        misc_outcome(&Script::Exited(2), true),
        Outcome::UpWeighted(DynamicWeight::Set(0))
    );
    assert_eq!(
        misc_outcome(&Script::Exited(255), true),
        Outcome::UpWeighted(DynamicWeight::Set(253))
    );
    assert_eq!(
        misc_outcome(&Script::Exited(0), true),
        Outcome::UpWeighted(DynamicWeight::Configured)
    );
    assert_eq!(
        misc_outcome(&Script::TimedOut, true),
        Outcome::Down(Failure::Timeout)
    );
    assert_eq!(
        misc_outcome(&Script::Signalled(9), false),
        Outcome::Down(Failure::Signal(9))
    );
}

const DYNAMIC: &str = r#"
[[virtual_server]]
service = { address = "10.0.0.1:80" }
delay_loop = "10s"
quorum = 4
[[virtual_server.real_server]]
address = "10.0.1.1:80"
weight = 5
check = [{ type = "MISC_CHECK", misc_path = { program = "/bin/chk" }, misc_dynamic = true, warmup = "0s" }]
"#;

#[test]
fn misc_dynamic_sets_the_weight_and_moves_the_quorum() {
    let (mut c, _) = start(DYNAMIC);
    // Exit 3: weight 1, below the quorum of 4.
    let actions = c.probe_done(P0, misc_outcome(&Script::Exited(3), true), t(1500));
    assert_eq!(
        actions,
        vec![
            Action::Server {
                rs: RsId(0),
                alive: true,
                weight: 1
            },
            Action::Pool { vs: VsId(0) },
            Action::Quorum {
                vs: VsId(0),
                up: false,
                weight_sum: 1,
                threshold: 4
            },
            // MISC_CHECK counts its loop from when the run was due (1 s).
            sched(0, 11_000),
        ]
    );
    assert_eq!(c.pool(VsId(0)), vec![dest("10.0.1.1:80", 1)]);
    // Exit 0 restores the configured weight, and the quorum.
    let actions = c.probe_done(P0, misc_outcome(&Script::Exited(0), true), t(11_200));
    assert!(actions.contains(&Action::Quorum {
        vs: VsId(0),
        up: true,
        weight_sum: 5,
        threshold: 4
    }));
    assert_eq!(c.server_state(RsId(0)), Some((true, 5)));
    assert_eq!(actions.last(), Some(&sched(0, 21_000)));
}

#[test]
fn a_misc_run_longer_than_its_loop_is_rescheduled_now() {
    let (mut c, _) = start(DYNAMIC);
    assert_eq!(
        c.probe_done(P0, Outcome::Up, t(30_000)).last(),
        Some(&sched(0, 30_000))
    );
}

const QUORUM: &str = r#"
[[virtual_server]]
service = { address = "10.0.0.1:80" }
delay_loop = "1s"
quorum = 2
hysteresis = 1
sorry_server = "10.0.9.9:80"
[[virtual_server.real_server]]
address = "10.0.1.1:80"
check = [{ type = "TCP_CHECK", retry = 0 }]
[[virtual_server.real_server]]
address = "10.0.1.2:80"
check = [{ type = "TCP_CHECK", retry = 0 }]
[[virtual_server.real_server]]
address = "10.0.1.3:80"
check = [{ type = "TCP_CHECK", retry = 0 }]
"#;

fn quorum_of(c: &Checker) -> bool {
    c.quorum_state(VsId(0)).unwrap().0
}

#[test]
fn quorum_is_lost_below_quorum_minus_hysteresis_and_back_at_quorum_plus_hysteresis() {
    let (mut c, _) = start(QUORUM);
    assert!(quorum_of(&c));
    c.probe_done(ProbeId(0), FAIL, t(1000));
    c.probe_done(ProbeId(1), FAIL, t(1000));
    // Live weight 1 = quorum - hysteresis: still held.
    assert!(quorum_of(&c));
    assert_eq!(c.pool(VsId(0)), vec![dest("10.0.1.3:80", 1)]);
    let actions = c.probe_done(ProbeId(2), FAIL, t(1000));
    assert!(actions.contains(&Action::SorryServer {
        vs: VsId(0),
        active: true
    }));
    assert!(!quorum_of(&c));
    assert_eq!(c.pool(VsId(0)), vec![dest("10.0.9.9:80", 1)]);
    // Two back: 2 < quorum + hysteresis = 3, the sorry server stays and
    // the live servers wait outside the pool.
    c.probe_done(ProbeId(0), Outcome::Up, t(2000));
    c.probe_done(ProbeId(1), Outcome::Up, t(2000));
    assert!(!quorum_of(&c));
    assert_eq!(c.pool(VsId(0)), vec![dest("10.0.9.9:80", 1)]);
    let actions = c.probe_done(ProbeId(2), Outcome::Up, t(2000));
    assert!(actions.contains(&Action::Quorum {
        vs: VsId(0),
        up: true,
        weight_sum: 3,
        threshold: 3
    }));
    assert_eq!(
        c.pool(VsId(0)),
        vec![
            dest("10.0.1.1:80", 1),
            dest("10.0.1.2:80", 1),
            dest("10.0.1.3:80", 1)
        ]
    );
}

#[test]
fn pool_marks_are_folded_to_one_per_call() {
    let (mut c, _) = start(QUORUM);
    c.probe_done(ProbeId(0), FAIL, t(1000));
    c.probe_done(ProbeId(1), FAIL, t(1000));
    let actions = c.probe_done(ProbeId(2), FAIL, t(1000));
    let pools = actions
        .iter()
        .filter(|a| matches!(a, Action::Pool { .. }))
        .count();
    assert_eq!(pools, 1);
}

#[test]
fn omega_runs_down_notifiers_on_shutdown_and_plain_does_not() {
    let with = |omega: bool| {
        let text = format!(
            r#"
[[virtual_server]]
service = {{ address = "10.0.0.1:80" }}
omega = {omega}
quorum_down = {{ program = "/bin/qdown" }}
[[virtual_server.real_server]]
address = "10.0.1.1:80"
notify_down = {{ program = "/bin/down" }}
[[virtual_server.real_server]]
address = "10.0.1.2:80"
notify_down = {{ program = "/bin/down" }}
check = [{{ type = "TCP_CHECK", retry = 0 }}]
"#
        );
        let (mut c, _) = start(&text);
        c.probe_done(ProbeId(0), FAIL, t(1000));
        c.shutdown()
    };
    assert_eq!(
        with(true),
        vec![
            Action::Notify(NotifyTarget::RsDown(RsId(0))),
            Action::Notify(NotifyTarget::QuorumDown(VsId(0)))
        ]
    );
    assert_eq!(with(false), vec![]);
}

#[test]
fn a_server_without_checks_is_always_up() {
    let text = r#"
[[virtual_server]]
service = { fwmark = 7 }
alpha = true
[[virtual_server.real_server]]
address = "10.0.1.1:80"
"#;
    let (c, actions) = start(text);
    assert_eq!(c.pool(VsId(0)), vec![dest("10.0.1.1:80", 1)]);
    assert_eq!(actions, vec![Action::Pool { vs: VsId(0) }]);
}

#[test]
fn a_local_fault_changes_no_real_server_and_uses_no_retry() {
    let (mut c, _) = start(ONE);
    let local = Outcome::Down(Failure::Local(LocalFault::Descriptors));
    assert_eq!(c.probe_done(P0, Outcome::Up, t(1010)), vec![sched(0, 6010)]);
    // However many: the server stays in, at the normal period.
    for i in 0..10 {
        let now = 6010 + i * 5000;
        assert_eq!(c.probe_done(P0, local, t(now)), vec![sched(0, now + 5000)]);
    }
    assert_eq!(c.pool(VsId(0)), vec![dest("10.0.1.1:80", 3)]);
    // The retry count is untouched: three real failures still take it out.
    assert_eq!(c.probe_done(P0, FAIL, t(60_000)), vec![sched(0, 61_000)]);
    assert_eq!(c.probe_done(P0, local, t(61_000)), vec![sched(0, 66_000)]);
    assert_eq!(c.probe_done(P0, FAIL, t(66_000)), vec![sched(0, 67_000)]);
    assert!(
        c.probe_done(P0, FAIL, t(67_000))
            .contains(&Action::Pool { vs: VsId(0) })
    );
    assert!(c.pool(VsId(0)).is_empty());
}

#[test]
fn a_script_that_cannot_fork_is_a_local_fault() {
    let out_of_processes = Script::NotStarted {
        why: "Resource temporarily unavailable".into(),
        errno: Some(libc::EAGAIN),
    };
    assert_eq!(
        misc_outcome(&out_of_processes, false),
        Outcome::Down(Failure::Local(LocalFault::Exhausted))
    );
    let missing = Script::NotStarted {
        why: "No such file or directory".into(),
        errno: Some(libc::ENOENT),
    };
    assert_eq!(
        misc_outcome(&missing, false),
        Outcome::Down(Failure::NotStarted)
    );
}

/// Two virtual servers, each with one TCP-checked real server.
const TWO: &str = r#"
[[virtual_server]]
service = { address = "10.0.0.1:80" }
delay_loop = "5s"
omega = true
[[virtual_server.real_server]]
address = "10.0.1.1:80"
weight = 3
notify_down = { program = "/bin/down" }
check = [{ type = "TCP_CHECK", retry = 0 }]

[[virtual_server]]
service = { address = "10.0.0.2:80" }
delay_loop = "5s"
[[virtual_server.real_server]]
address = "10.0.2.1:80"
check = [{ type = "TCP_CHECK", retry = 0 }]
"#;

#[test]
fn a_resumed_virtual_server_keeps_its_state_and_announces_only_its_pool() {
    let plans = plan(&vss(TWO), &[]);
    let (mut previous, _) = Checker::start(&plans, t(0), |_| Duration::ZERO).unwrap();
    let failed = previous.probe_done(P0, FAIL, t(1000));
    assert!(failed.contains(&sched(0, 6000)));
    assert!(previous.pool(VsId(0)).is_empty());
    // The first virtual server is carried, the second starts anew.
    let (resumed, actions) =
        Checker::resume(&plans, &previous, &[Some(VsId(0)), None], t(2000), |_| {
            Duration::ZERO
        })
        .unwrap();
    assert!(
        resumed.pool(VsId(0)).is_empty(),
        "the failed server stays out"
    );
    assert_eq!(resumed.server_state(RsId(0)), Some((false, 3)));
    assert_eq!(
        actions,
        vec![
            Action::Pool { vs: VsId(0) },
            Action::Pool { vs: VsId(1) },
            // Its schedule goes on; the new one's first run is after the
            // bootstrap delay.
            sched(0, 6000),
            sched(1, 3000),
        ]
    );
    // Its next outcome is not a first one: a success after a failure
    // brings it back, as it would have without the reload.
    let mut resumed = resumed;
    let up = resumed.probe_done(P0, Outcome::Up, t(6000));
    assert!(up.contains(&Action::Server {
        rs: RsId(0),
        alive: true,
        weight: 3
    }));
}

#[test]
fn a_changed_virtual_server_is_not_carried() {
    let plans = plan(&vss(TWO), &[]);
    let (mut previous, _) = Checker::start(&plans, t(0), |_| Duration::ZERO).unwrap();
    previous.probe_done(P0, FAIL, t(1000));
    // Another weight: not the same virtual server any more.
    let changed = plan(&vss(&TWO.replace("weight = 3", "weight = 4")), &[]);
    let (resumed, _) =
        Checker::resume(&changed, &previous, &[Some(VsId(0)), None], t(2000), |_| {
            Duration::ZERO
        })
        .unwrap();
    assert_eq!(resumed.server_state(RsId(0)), Some((true, 4)));
    assert_eq!(resumed.pool(VsId(0)), vec![dest("10.0.1.1:80", 4)]);
}

#[test]
fn a_kept_virtual_server_runs_no_notifies_when_handed_over() {
    let (mut c, _) = start(TWO);
    assert_eq!(c.shutdown_except(&[true]), vec![]);
    let (mut c, _) = start(TWO);
    assert_eq!(
        c.shutdown_except(&[false]),
        vec![Action::Notify(NotifyTarget::RsDown(RsId(0)))]
    );
}

/// Two real servers of weight 10, quorum 15; the first has a FILE_CHECK
/// of `f` (taking the file's weight, 5), the second one of `g` with its
/// own weight 0.
const FILES: &str = r#"
[[track_file]]
name = "f"
file = "/run/f"
weight = 5

[[track_file]]
name = "g"
file = "/run/g"

[[virtual_server]]
service = { address = "10.0.0.1:80" }
quorum = 15
[[virtual_server.real_server]]
address = "10.0.1.1:80"
weight = 10
file_check = [{ track_file = "f" }]
[[virtual_server.real_server]]
address = "10.0.1.2:80"
weight = 10
file_check = [{ track_file = "g", weight = 0 }]
"#;

fn start_files(toml_text: &str) -> (Checker, Vec<Action>) {
    let config = toml::from_str::<Config>(toml_text).unwrap();
    Checker::start(
        &plan(&config.virtual_server, &config.track_file),
        t(0),
        |_| Duration::ZERO,
    )
    .unwrap()
}

const F: FileId = FileId(0);
const G: FileId = FileId(1);

#[test]
fn a_file_checks_value_times_its_weight_moves_the_servers_weight() {
    let (mut c, _) = start_files(FILES);
    assert_eq!(c.file_count(), 2);
    assert_eq!(
        c.file_value(F, 4),
        vec![
            Action::Server {
                rs: RsId(0),
                alive: true,
                weight: 30
            },
            Action::Pool { vs: VsId(0) },
        ]
    );
    assert_eq!(
        c.pool(VsId(0)),
        vec![dest("10.0.1.1:80", 30), dest("10.0.1.2:80", 10)]
    );
    // The same value again changes nothing; a negative product floors the
    // weight at 0 and the server stays in (with weight 0, as IPVS keeps
    // it).
    assert!(c.file_value(F, 4).is_empty());
    c.file_value(F, -3);
    assert_eq!(c.server_state(RsId(0)), Some((true, 0)));
    // The quorum (15) counts the weights: 0 + 10 is below it.
    assert_eq!(c.quorum_state(VsId(0)), Some((false, false)));
    c.file_value(F, 0);
    assert_eq!(c.server_state(RsId(0)), Some((true, 10)));
    assert_eq!(c.quorum_state(VsId(0)), Some((true, false)));
}

#[test]
fn a_weight_zero_file_check_takes_its_server_down_on_a_non_zero_value() {
    let text = FILES.replace(
        "file_check = [{ track_file = \"g\", weight = 0 }]",
        "file_check = [{ track_file = \"g\", weight = 0 }]\nnotify_down = { program = \"/bin/down\" }",
    );
    let (mut c, _) = start_files(&text);
    // The first value is the start state: down without notify_down.
    let actions = c.file_value(G, 1);
    assert!(
        actions.contains(&Action::Server {
            rs: RsId(1),
            alive: false,
            weight: 10
        }),
        "{actions:?}"
    );
    assert!(!actions.iter().any(|a| matches!(a, Action::Notify(_))));
    assert_eq!(c.pool(VsId(0)), vec![dest("10.0.1.1:80", 10)]);
    assert_eq!(c.file_state(G), Some((RsId(1), true)));
    c.file_value(G, 0);
    assert_eq!(c.pool(VsId(0)).len(), 2);
    // Later values notify as any check does.
    let actions = c.file_value(G, -7);
    assert!(actions.contains(&Action::Notify(NotifyTarget::RsDown(RsId(1)))));
}

#[test]
fn a_file_check_counts_among_the_servers_checks_and_reverse_inverts_it() {
    let text = r#"
[[track_file]]
name = "g"
file = "/run/g"
weight = 0
reverse = true

[[virtual_server]]
service = { address = "10.0.0.1:80" }
[[virtual_server.real_server]]
address = "10.0.1.1:80"
check = [{ type = "TCP_CHECK", retry = 0 }]
file_check = [{ track_file = "g" }]
"#;
    let (mut c, _) = start_files(text);
    // reverse with weight 0: a zero value fails.
    c.file_value(FileId(0), 0);
    assert_eq!(c.server_state(RsId(0)), Some((false, 1)));
    // The TCP check failing too, then the file passing: still down.
    c.probe_done(P0, FAIL, t(1000));
    c.file_value(FileId(0), 1);
    assert_eq!(c.server_state(RsId(0)).map(|s| s.0), Some(false));
    c.probe_done(P0, Outcome::Up, t(2000));
    assert_eq!(c.server_state(RsId(0)).map(|s| s.0), Some(true));
}

#[test]
fn a_resumed_virtual_server_keeps_its_file_checks_state() {
    let config = toml::from_str::<Config>(FILES).unwrap();
    let plans = plan(&config.virtual_server, &config.track_file);
    let (mut previous, _) = Checker::start(&plans, t(0), |_| Duration::ZERO).unwrap();
    previous.file_value(F, 2);
    previous.file_value(G, 1);
    let (mut resumed, _) = Checker::resume(&plans, &previous, &[Some(VsId(0))], t(2000), |_| {
        Duration::ZERO
    })
    .unwrap();
    assert_eq!(resumed.server_state(RsId(0)), Some((true, 20)));
    assert_eq!(resumed.server_state(RsId(1)), Some((false, 10)));
    // The values read again after the reload change nothing.
    assert!(resumed.file_value(F, 2).is_empty());
    assert!(resumed.file_value(G, 1).is_empty());
    // A changed FILE_CHECK is not carried.
    let changed = FILES.replace("weight = 5", "weight = 6");
    let config = toml::from_str::<Config>(&changed).unwrap();
    let plans = plan(&config.virtual_server, &config.track_file);
    let (fresh, _) = Checker::resume(&plans, &previous, &[Some(VsId(0))], t(2000), |_| {
        Duration::ZERO
    })
    .unwrap();
    assert_eq!(fresh.server_state(RsId(0)), Some((true, 10)));
}

/// ONE with `ha_suspend`, and a second virtual server without it.
const SUSPENDING: &str = r#"
[[virtual_server]]
service = { address = "10.0.0.1:80" }
delay_loop = "5s"
ha_suspend = true
[[virtual_server.real_server]]
address = "10.0.1.1:80"
weight = 3
check = [{ type = "TCP_CHECK", retry = 2, delay_before_retry = "1s" }]
[[virtual_server]]
service = { address = "10.0.0.2:80" }
[[virtual_server.real_server]]
address = "10.0.1.1:80"
check = [{ type = "TCP_CHECK" }]
"#;

#[test]
fn ha_suspend_holds_probes_while_the_address_is_missing_and_keeps_their_state() {
    let (mut c, _) = start(SUSPENDING);
    let vip: std::net::IpAddr = "10.0.0.1".parse().unwrap();
    assert!(c.suspends());
    // Up, then one failure into a retry series, then the address goes.
    assert_eq!(c.probe_done(P0, Outcome::Up, t(10)), vec![sched(0, 5010)]);
    assert_eq!(c.probe_done(P0, FAIL, t(5010)), vec![sched(0, 6010)]);
    assert_eq!(c.addresses_changed(|_| false), vec![(VsId(0), true)]);
    assert_eq!(c.addresses_changed(|_| false), vec![], "no change, no news");
    assert!(c.is_suspended(VsId(0)) && !c.is_suspended(VsId(1)));
    // Held: scheduled a delay_loop on, the server untouched.
    assert_eq!(c.hold_if_suspended(P0, t(6010)), Some(sched(0, 11_010)));
    assert_eq!(
        c.hold_if_suspended(ProbeId(1), t(6010)),
        None,
        "not suspended"
    );
    assert_eq!(c.server_state(RsId(0)), Some((true, 3)));
    // Back: the probe runs, and its retry series goes on where it was
    // (a second failure is still within retry 2).
    assert_eq!(c.addresses_changed(|a| a == vip), vec![(VsId(0), false)]);
    assert_eq!(c.hold_if_suspended(P0, t(11_010)), None);
    assert_eq!(c.probe_done(P0, FAIL, t(11_020)), vec![sched(0, 12_020)]);
    assert_eq!(c.server_state(RsId(0)), Some((true, 3)));
}

#[test]
fn without_ha_suspend_nothing_is_ever_held() {
    let (mut c, _) = start(ONE);
    assert!(!c.suspends());
    assert_eq!(c.addresses_changed(|_| false), vec![]);
    assert_eq!(c.hold_if_suspended(P0, t(0)), None);
}
