//! Scale-out on IPVS in a VM (the topology and scenario:
//! appliance_tests::scale_out): three directors behind FRR's ECMP, each
//! with the daemon announcing the VIP over BGP and an `mh` DR service over
//! the same four real servers; long-lived connections spread over them.
//!
//! What it shows: when a director's box dies (link down, daemon killed)
//! the router drops it within its hold timer, and with `lvs_sloppy_tcp`
//! (the daemon sets IPVS's `sloppy_tcp` in its namespace) every
//! established connection survives, those the dead director carried
//! included: the router sends them to another director, whose IPVS takes
//! the mid-stream packets as connections of their own and picks the same
//! real server (every director's `mh` table is the same). Without
//! `sloppy_tcp` the moved connections break (the other director's IPVS
//! takes only a SYN as a new connection): the test can tell. A daemon
//! killed on a box that stays up is dropped at once (its socket closes).

use appliance_tests::scale_out::{self, Options, Outcome};
use std::time::Duration;

const CONNECTIONS: usize = 24;
/// d1 dies: an end of the router's multipath ranges, so the router moves
/// some of the survivors' flows too (d2's middle range would not).
const DEAD: usize = 0;

fn run(sloppy: bool) -> Outcome {
    let options = Options {
        sloppy,
        connections: CONNECTIONS,
        dead: DEAD,
    };
    let out = scale_out::vm(&appliance_tests::appliance_bin(), options)
        .unwrap()
        .run()
        .unwrap();
    out.assert_success();
    let outcome = Outcome::read(&out, options).unwrap();
    eprintln!("{outcome:?}");
    assert!(
        outcome.sloppy_tcp.values().all(|on| *on == sloppy),
        "sloppy_tcp as configured: {:?}\n{out}",
        outcome.sloppy_tcp
    );
    // Every director carried some connections before one died.
    assert_eq!(
        outcome.carried.values().sum::<usize>(),
        CONNECTIONS,
        "{out}"
    );
    assert!(outcome.carried.values().all(|n| *n > 0), "{out}");
    // A flow keeps its director until the route changes (the client's
    // flow hash is fixed, as a router across a wire would hash it).
    assert_eq!(outcome.unsettled, 0, "{out}");
    // Cut off, d1 is dropped by the router's hold timer (3 s, sent each
    // second): not before it could have expired (TCG's slow clock makes
    // "after" loose).
    assert!(
        outcome.cut_off >= Duration::from_secs(1) && outcome.cut_off <= Duration::from_secs(20),
        "cut off: {:?}\n{out}",
        outcome.cut_off
    );
    // Killed with its box up, d2 is dropped well within the hold time.
    assert!(
        outcome.killed < Duration::from_secs(2),
        "killed: {:?}\n{out}",
        outcome.killed
    );
    outcome
}

#[test]
fn with_sloppy_tcp_no_established_connection_breaks_when_a_director_dies() {
    let outcome = run(true);
    assert!(outcome.broken.is_empty(), "broken: {:?}", outcome.broken);
}

#[test]
fn without_sloppy_tcp_the_dead_director_s_connections_break() {
    let outcome = run(false);
    assert!(
        outcome.broken.len() >= outcome.on_dead(),
        "{} on {}, broken {:?}",
        outcome.on_dead(),
        outcome.dead,
        outcome.broken
    );
}
