//! Pacing of announcements on one interface: keepalived's
//! `vrrp_garp_interval` and `vrrp_gna_interval`, the least time between two
//! gratuitous ARPs (or two unsolicited neighbour advertisements) sent on an
//! interface, so that a switch or a host rate-limiting them drops none.
//!
//! An announcement offered when the interface's last one is older than the
//! interval goes out at once; otherwise it waits in order behind the ones
//! already waiting, each sent one interval after the one before. With a
//! zero interval nothing ever waits.
//!
//! keepalived keeps one pending flag per address, so a burst of
//! `garp_master_repeat` announcements for one VIP collapses to one while
//! the interface is paced; here every announcement of the burst is sent,
//! paced, because the repeat count is what the admin asked for.

use crate::clock::Instant;
use std::collections::VecDeque;
use std::time::Duration;

/// One interface's pacing of one kind of announcement.
#[derive(Clone, Debug)]
pub struct Pacer<T> {
    interval: Duration,
    /// When the last announcement went out.
    last: Option<Instant>,
    waiting: VecDeque<T>,
}

impl<T> Pacer<T> {
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            last: None,
            waiting: VecDeque::new(),
        }
    }

    /// A reload may change the interval; what waits is then paced by the
    /// new one.
    pub fn set_interval(&mut self, interval: Duration) {
        self.interval = interval;
    }

    /// Offers an announcement: returns it if it is to go out now (the
    /// caller sends it), or keeps it for [`Pacer::poll`].
    pub fn offer(&mut self, item: T, now: Instant) -> Option<T> {
        if self.waiting.is_empty() && self.free_at().is_none_or(|at| at <= now) {
            self.last = Some(now);
            return Some(item);
        }
        self.waiting.push_back(item);
        None
    }

    /// The next waiting announcement if its time has come (the caller
    /// sends it and polls again).
    pub fn poll(&mut self, now: Instant) -> Option<T> {
        if self.deadline().is_some_and(|at| at <= now) {
            self.last = Some(now);
            return self.waiting.pop_front();
        }
        None
    }

    /// When the next waiting announcement is due, if one waits.
    pub fn deadline(&self) -> Option<Instant> {
        if self.waiting.is_empty() {
            return None;
        }
        Some(self.free_at().unwrap_or(Instant::ZERO))
    }

    /// How many announcements wait.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    fn free_at(&self) -> Option<Instant> {
        self.last.map(|last| last + self.interval)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Instant {
        Instant::from_micros(ms * 1000)
    }

    #[test]
    fn without_an_interval_everything_goes_at_once() {
        let mut p = Pacer::new(Duration::ZERO);
        for i in 0..5 {
            assert_eq!(p.offer(i, at(0)), Some(i));
        }
        assert_eq!(p.deadline(), None);
    }

    #[test]
    fn a_burst_is_spread_one_interval_apart_in_order() {
        let mut p = Pacer::new(Duration::from_millis(100));
        assert_eq!(p.offer('a', at(1000)), Some('a'));
        assert_eq!(p.offer('b', at(1000)), None);
        assert_eq!(p.offer('c', at(1010)), None);
        assert_eq!(p.waiting(), 2);
        assert_eq!(p.deadline(), Some(at(1100)));
        assert_eq!(p.poll(at(1099)), None, "not before the interval");
        assert_eq!(p.poll(at(1100)), Some('b'));
        assert_eq!(p.poll(at(1100)), None, "one per interval");
        // A late wake-up paces the next from when this one went.
        assert_eq!(p.deadline(), Some(at(1200)));
        assert_eq!(p.poll(at(1250)), Some('c'));
        assert_eq!(p.deadline(), None);
        // Quiet for an interval: the next goes at once again.
        assert_eq!(p.offer('d', at(1350)), Some('d'));
    }

    #[test]
    fn an_offer_never_jumps_the_queue() {
        let mut p = Pacer::new(Duration::from_millis(100));
        assert_eq!(p.offer(1, at(0)), Some(1));
        assert_eq!(p.offer(2, at(50)), None);
        // The interval has passed, but 2 waits first.
        assert_eq!(p.offer(3, at(150)), None);
        assert_eq!(p.poll(at(150)), Some(2));
        assert_eq!(p.poll(at(250)), Some(3));
    }

    #[test]
    fn a_shorter_interval_after_a_reload_applies_to_what_waits() {
        let mut p = Pacer::new(Duration::from_secs(10));
        assert_eq!(p.offer(1, at(0)), Some(1));
        assert_eq!(p.offer(2, at(0)), None);
        p.set_interval(Duration::from_millis(10));
        assert_eq!(p.poll(at(10)), Some(2));
    }
}
