//! Real-server health checks, keepalived's checker: the sans-IO decision
//! core ([`decision`]), the async probes ([`tcp`], [`http`], [`misc`], and
//! [`syn`] for half-open TCP checks) and the runner that drives them for
//! every real server of a config on one tokio task ([`runner`]), on the
//! schedule [`due`] keeps.

pub mod decision;
pub mod due;
pub mod http;
pub mod misc;
pub mod runner;
pub mod syn;
pub mod tcp;

use crate::clock;
use std::time::Duration;

/// The checker's timers fire on this tick: probes due within one tick
/// start together and their SYNs go out in one burst, so 10,000 checks a
/// second cost a hundred wake-ups rather than thousands. A probe starts at
/// most one tick late, which no `delay_loop` (whole seconds, or at least
/// tens of milliseconds) notices.
pub const TICK: Duration = Duration::from_millis(10);

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
