//! When each probe runs next: the runner's schedule, a timing wheel of
//! [`TICK`]s. Probes start on the tick at or after their due time, so a
//! tick's slot holds them all and scheduling one costs a push, where a
//! heap of 10,000 deadlines cost a dozen comparisons (and cache misses)
//! per probe. Probes due beyond the wheel's horizon wait in a heap until
//! the wheel comes near them.

use super::TICK;
use super::decision::ProbeId;
use crate::clock::Instant;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Slots of the wheel: its horizon is this many ticks (10.24 s), past
/// every usual `delay_loop` and retry delay.
const SLOTS: u64 = 1024;

/// The probes waiting to run, by tick.
pub struct Due {
    slots: Vec<Vec<ProbeId>>,
    /// The tick the wheel is at: every earlier tick's slot is empty, and
    /// slot `t % SLOTS` holds tick `t` for `t` in `cursor..cursor + SLOTS`.
    cursor: u64,
    /// Probes in the slots.
    in_slots: usize,
    /// Probes due at or beyond `cursor + SLOTS`, by tick.
    far: BinaryHeap<Reverse<(u64, ProbeId)>>,
}

impl Default for Due {
    fn default() -> Self {
        Self::new()
    }
}

fn tick_micros() -> u64 {
    TICK.as_micros() as u64
}

impl Due {
    pub fn new() -> Self {
        Self {
            slots: (0..SLOTS).map(|_| Vec::new()).collect(),
            cursor: 0,
            in_slots: 0,
            far: BinaryHeap::new(),
        }
    }

    /// Schedules `probe` for `at` (a time the wheel has served already
    /// means its next tick).
    pub fn push(&mut self, at: Instant, probe: ProbeId) {
        let tick = at.as_micros().div_ceil(tick_micros()).max(self.cursor);
        if tick < self.cursor + SLOTS {
            self.slots[(tick % SLOTS) as usize].push(probe);
            self.in_slots += 1;
        } else {
            self.far.push(Reverse((tick, probe)));
        }
    }

    /// A probe due by `now`, earliest tick first; `None` when none is.
    pub fn pop(&mut self, now: Instant) -> Option<ProbeId> {
        let now_tick = now.as_micros() / tick_micros();
        while self.cursor <= now_tick {
            if let Some(probe) = self.slots[(self.cursor % SLOTS) as usize].pop() {
                self.in_slots -= 1;
                return Some(probe);
            }
            if self.in_slots == 0 {
                // Nothing on the wheel: jump to the earliest far probe.
                let next = self.far.peek().map_or(now_tick + 1, |Reverse((t, _))| *t);
                self.cursor = next.min(now_tick + 1).max(self.cursor + 1);
            } else {
                self.cursor += 1;
            }
            self.pull_near();
        }
        None
    }

    /// When the earliest probe is due: the start of its tick.
    pub fn next(&self) -> Option<Instant> {
        let tick = if self.in_slots > 0 {
            (self.cursor..self.cursor + SLOTS)
                .find(|t| !self.slots[(t % SLOTS) as usize].is_empty())
        } else {
            self.far.peek().map(|Reverse((t, _))| *t)
        }?;
        Some(Instant::from_micros(tick.saturating_mul(tick_micros())))
    }

    /// Moves the far probes the wheel now reaches into their slots.
    fn pull_near(&mut self) {
        while let Some(&Reverse((tick, probe))) = self.far.peek() {
            if tick >= self.cursor + SLOTS {
                break;
            }
            self.far.pop();
            let tick = tick.max(self.cursor);
            self.slots[(tick % SLOTS) as usize].push(probe);
            self.in_slots += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ms(ms: u64) -> Instant {
        Instant::from_micros(ms * 1000)
    }

    fn drain(due: &mut Due, now: Instant) -> Vec<u32> {
        let mut out: Vec<u32> = std::iter::from_fn(|| due.pop(now)).map(|p| p.0).collect();
        out.sort_unstable();
        out
    }

    #[test]
    fn probes_run_on_the_tick_at_or_after_their_time() {
        let mut due = Due::new();
        due.push(ms(0), ProbeId(0));
        due.push(ms(3), ProbeId(1));
        due.push(ms(10), ProbeId(2));
        due.push(ms(11), ProbeId(3));
        assert_eq!(due.next(), Some(ms(0)));
        assert_eq!(drain(&mut due, ms(0)), [0]);
        assert_eq!(due.next(), Some(ms(10)));
        assert_eq!(drain(&mut due, ms(9)), Vec::<u32>::new());
        assert_eq!(drain(&mut due, ms(10)), [1, 2]);
        assert_eq!(due.next(), Some(ms(20)));
        assert_eq!(drain(&mut due, ms(25)), [3]);
        assert_eq!(due.next(), None);
    }

    #[test]
    fn a_late_runner_gets_every_probe_it_missed_and_past_times_are_due_now() {
        let mut due = Due::new();
        for i in 0..50 {
            due.push(ms(u64::from(i) * 7), ProbeId(i));
        }
        assert_eq!(drain(&mut due, ms(1000)), (0..50).collect::<Vec<_>>());
        // Scheduled for a time already served: the next tick.
        due.push(ms(500), ProbeId(99));
        assert_eq!(due.next(), Some(ms(1010)));
        assert_eq!(drain(&mut due, ms(1005)), Vec::<u32>::new());
        assert_eq!(drain(&mut due, ms(1010)), [99]);
    }

    #[test]
    fn probes_beyond_the_horizon_wait_and_come_in_order() {
        let mut due = Due::new();
        let horizon = TICK * SLOTS as u32;
        due.push(Instant::ZERO + horizon * 3, ProbeId(3));
        due.push(
            Instant::ZERO + horizon + Duration::from_millis(5),
            ProbeId(1),
        );
        due.push(ms(20), ProbeId(0));
        assert_eq!(due.next(), Some(ms(20)));
        assert_eq!(drain(&mut due, ms(20)), [0]);
        // Only the far heap is left: the next is its earliest.
        assert_eq!(due.next(), Some(Instant::ZERO + horizon + TICK));
        assert_eq!(drain(&mut due, Instant::ZERO + horizon), Vec::<u32>::new());
        assert_eq!(drain(&mut due, Instant::ZERO + horizon + TICK), [1]);
        // Long idle stretches are jumped over, not walked tick by tick.
        assert_eq!(due.next(), Some(Instant::ZERO + horizon * 3));
        assert_eq!(drain(&mut due, Instant::ZERO + horizon * 3), [3]);
        assert_eq!(due.next(), None);
    }

    #[test]
    fn a_wheel_that_walks_on_keeps_every_probe() {
        // A probe every 7 ms for 30 s of wheel time, each rescheduled 1 s,
        // 3 s or 12 s later: none lost, none early.
        let mut due = Due::new();
        let mut pending = std::collections::HashMap::new();
        for i in 0..200u32 {
            let at = ms(u64::from(i) * 7);
            due.push(at, ProbeId(i));
            pending.insert(i, at);
        }
        let mut now = Instant::ZERO;
        let mut runs = 0;
        while now < ms(30_000) {
            while let Some(probe) = due.pop(now) {
                let at = pending[&probe.0];
                assert!(at <= now, "probe {} due {at} ran at {now}", probe.0);
                assert!(now.saturating_since(at) < TICK, "probe {} late", probe.0);
                let later = [1000, 3000, 12_000][(probe.0 % 3) as usize];
                let next = now + Duration::from_millis(later);
                due.push(next, probe);
                pending.insert(probe.0, next);
                runs += 1;
            }
            now = now + TICK;
        }
        assert!(runs > 200 * 3, "{runs}");
    }
}
