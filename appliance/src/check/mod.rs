//! Real-server health checks, keepalived's checker: the sans-IO decision
//! core and schedule (`appliance_core::check`, re-exported here as
//! [`decision`] and [`due`]), the planner that feeds the core from the
//! config ([`plan`]), the probes behind one trait ([`probe`]: [`tcp`],
//! [`http`], [`misc`], [`ping`], [`udp`], [`dns`], [`smtp`], with [`syn`] sending
//! half-open TCP checks) and the runner that drives them for every real
//! server of a config on one tokio task ([`runner`]).

pub mod dns;
pub mod http;
pub mod misc;
pub mod ping;
pub mod plan;
pub(crate) mod probe;
pub mod runner;
pub mod smtp;
pub mod syn;
pub mod tcp;
pub mod udp;

pub(crate) use appliance_core::check::due;
pub use appliance_core::check::{TICK, decision};

use crate::clock;
use decision::LocalFault;
use std::time::Duration;

/// The director's own fault an errno stands for (out of descriptors,
/// memory or processes), if it is one: the check then says nothing about
/// the real server.
pub fn local_fault_of_errno(errno: i32) -> Option<LocalFault> {
    match errno {
        libc::EMFILE | libc::ENFILE => Some(LocalFault::Descriptors),
        libc::ENOMEM | libc::ENOBUFS => Some(LocalFault::Memory),
        libc::EAGAIN => Some(LocalFault::Exhausted),
        _ => None,
    }
}

/// The director's own fault an I/O error stands for, if it is one.
pub fn local_fault(error: &std::io::Error) -> Option<LocalFault> {
    error.raw_os_error().and_then(local_fault_of_errno)
}

/// When a timer for `at` (counted from `origin`) fires: `at` rounded up to
/// the next [`TICK`].
pub fn tick_deadline(origin: tokio::time::Instant, at: clock::Instant) -> tokio::time::Instant {
    let tick = TICK.as_micros() as u64;
    let micros = at.as_micros().div_ceil(tick).saturating_mul(tick);
    origin + Duration::from_micros(micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_round_up_to_the_tick() {
        let origin = tokio::time::Instant::now();
        let at = |micros| tick_deadline(origin, clock::Instant::from_micros(micros)) - origin;
        assert_eq!(at(0), Duration::ZERO);
        assert_eq!(at(1), TICK);
        assert_eq!(at(10_000), TICK);
        assert_eq!(at(10_001), TICK * 2);
        assert_eq!(at(1_234_567), Duration::from_millis(1240));
    }
}
