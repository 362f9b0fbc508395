//! When to try again a part of the config that could not be applied: a
//! VRRP unit whose interface or address is missing, a dataplane reconcile
//! that failed half way, a checker that could not start. The part stays
//! wanted and is retried, 1 s after the failure and then twice as long
//! each time up to [`CEILING`], until it applies or a reload drops it; an
//! event that may have fixed it (its interface appearing) retries at once.

use std::time::Duration;
use tokio::time::Instant;

/// The first wait after a failure.
const FIRST: Duration = Duration::from_secs(1);
/// The longest wait between attempts: short enough that a part fixed by
/// hand comes back soon, long enough that a lasting failure logs little.
pub(super) const CEILING: Duration = Duration::from_secs(10);

/// A failing part's attempts and the next one's time; idle when nothing
/// fails.
#[derive(Debug, Default, Clone)]
pub(super) struct Backoff {
    failures: u32,
    due: Option<Instant>,
}

impl Backoff {
    /// An attempt failed at `now`: the next is due after the current wait,
    /// which then doubles.
    pub(super) fn failed(&mut self, now: Instant) {
        let wait = FIRST
            .saturating_mul(1 << self.failures.min(16))
            .min(CEILING);
        self.failures = self.failures.saturating_add(1);
        self.due = Some(now + wait);
    }

    /// It applied: nothing is due.
    pub(super) fn succeeded(&mut self) {
        *self = Self::default();
    }

    /// Something that may have fixed it happened: try at `now`.
    pub(super) fn hurry(&mut self, now: Instant) {
        if self.due.is_some() {
            self.due = Some(now);
        }
    }

    /// When the next attempt is due, if one is.
    pub(super) fn due(&self) -> Option<Instant> {
        self.due
    }

    /// Failed attempts in a row.
    pub(super) fn failures(&self) -> u32 {
        self.failures
    }

    /// Sleeps until the next attempt, or forever when none is due.
    pub(super) async fn wait(&self) {
        match self.due {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_ceiling_and_reset_on_success() {
        let now = Instant::now();
        let mut backoff = Backoff::default();
        assert_eq!(backoff.due(), None);
        let mut waits = Vec::new();
        for _ in 0..6 {
            backoff.failed(now);
            waits.push(backoff.due().unwrap() - now);
        }
        let secs: Vec<u64> = waits.iter().map(Duration::as_secs).collect();
        assert_eq!(secs, [1, 2, 4, 8, 10, 10]);
        assert_eq!(backoff.failures(), 6);
        backoff.hurry(now);
        assert_eq!(backoff.due(), Some(now));
        backoff.succeeded();
        assert_eq!((backoff.due(), backoff.failures()), (None, 0));
    }

    #[test]
    fn hurrying_an_idle_backoff_schedules_nothing() {
        let mut backoff = Backoff::default();
        backoff.hurry(Instant::now());
        assert_eq!(backoff.due(), None);
    }

    #[test]
    fn many_failures_do_not_overflow() {
        let now = Instant::now();
        let mut backoff = Backoff::default();
        for _ in 0..100 {
            backoff.failed(now);
        }
        assert_eq!(backoff.due(), Some(now + CEILING));
    }
}
