//! The half-open prober's core, sans-IO: the SYNs in flight, which reply
//! answers which probe, when a SYN is sent again and when a probe times
//! out. The driver feeds it requests, replies and `now`, and sends the
//! [`Transmit`]s it returns; no socket or clock here.
//!
//! A probe is answered by the reply from its target that acknowledges its
//! SYN's sequence number plus one: a SYN-ACK (up) or a RST (refused). A SYN
//! without answer is sent again after 1 s, then 2 s, 4 s... (Linux's
//! initial RTO and backoff), as a connect's would be, until the probe's
//! timeout: one lost packet costs a full connect no failure, and must not
//! cost this probe one either.
//!
//! Probes of one target from one source share a flight: a second SYN from
//! the same port while the first is unanswered would meet the server's
//! half-open connection and get a bare ACK instead of an answer, so the
//! later probe waits for the earlier one's answer. When a probe of a shared
//! flight times out, the others get a fresh SYN (new sequence number, RTO
//! back to 1 s), so each is answered within its own timeout or fails on it.

use super::segment::{Answer, Verdict};
use crate::check::decision::{Failure, Outcome};
use crate::clock::Instant;
use rustc_hash::FxHashMap;
use smallvec::SmallVec;
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Wait before the first retransmission of an unanswered SYN: Linux's
/// TCP_TIMEOUT_INIT (RFC 6298 §2.1 allows 1 s).
pub const INITIAL_RTO: Duration = Duration::from_secs(1);

/// A SYN to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Our address; for the checksum and the kernel's source choice.
    pub source: IpAddr,
    pub target: SocketAddr,
    pub seq: u32,
}

/// A finished probe.
#[derive(Debug, PartialEq, Eq)]
pub struct Done<T> {
    pub token: T,
    pub target: SocketAddr,
    pub outcome: Outcome,
}

/// The probes in flight from one probe port, each identified by the
/// caller's token `T`.
pub struct Flights<T> {
    port: u16,
    /// Initial sequence numbers: random in the daemon, so that a reply
    /// cannot be forged without seeing the SYN.
    isn: Box<dyn FnMut() -> u32 + Send>,
    /// A target has one flight per source, nearly always just one: kept
    /// inline, so a flight costs no allocation of its own. The keys are
    /// configured targets (answers only look up), so a fast hash that an
    /// attacker could collide is safe here.
    targets: FxHashMap<SocketAddr, SmallVec<[Flight<T>; 1]>>,
    /// When each flight has work next. A flight has one live entry, the one
    /// at its [`Flight::next`]; the others (superseded, or of a flight
    /// answered since) are dropped when they come up. So a probe answered
    /// at once costs one entry, kept until its first retransmission would
    /// have been due.
    timers: BinaryHeap<Reverse<Timer>>,
    /// Orders timers due at the same instant (all a tick's probes are):
    /// by when they were set, so the heap compares no addresses.
    timers_set: u64,
}

/// One SYN's wait for an answer, and the probes waiting on it.
struct Flight<T> {
    source: IpAddr,
    seq: u32,
    rto: Duration,
    retransmit_at: Instant,
    probes: SmallVec<[Probe<T>; 1]>,
}

impl<T> Flight<T> {
    /// The next retransmission or deadline.
    fn next(&self) -> Instant {
        self.probes
            .iter()
            .map(|p| p.deadline)
            .fold(self.retransmit_at, Instant::min)
    }
}

struct Probe<T> {
    deadline: Instant,
    token: T,
}

#[derive(Clone, Copy, Debug)]
struct Timer {
    at: Instant,
    set: u64,
    target: SocketAddr,
    seq: u32,
}

impl PartialEq for Timer {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Timer {}

impl PartialOrd for Timer {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Timer {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.set).cmp(&(other.at, other.set))
    }
}

impl<T> Flights<T> {
    /// Probes sent from `port`, with initial sequence numbers from `isn`.
    pub fn new(port: u16, isn: Box<dyn FnMut() -> u32 + Send>) -> Self {
        Self {
            port,
            isn,
            targets: FxHashMap::default(),
            timers: BinaryHeap::new(),
            timers_set: 0,
        }
    }

    fn set_timer(&mut self, at: Instant, target: SocketAddr, seq: u32) {
        self.timers_set += 1;
        self.timers.push(Reverse(Timer {
            at,
            set: self.timers_set,
            target,
            seq,
        }));
    }

    /// Starts a probe of `target` from `source` that fails after `timeout`.
    /// Returns the SYN to send, or `None` when it joins a flight already
    /// waiting for that target's answer.
    pub fn start(
        &mut self,
        now: Instant,
        token: T,
        source: IpAddr,
        target: SocketAddr,
        timeout: Duration,
    ) -> Option<Transmit> {
        let probe = Probe {
            deadline: now + timeout,
            token,
        };
        let flights = self.targets.entry(target).or_default();
        if let Some(flight) = flights.iter_mut().find(|f| f.source == source) {
            let before = flight.next();
            flight.probes.push(probe);
            let (next, seq) = (flight.next(), flight.seq);
            if next < before {
                self.set_timer(next, target, seq);
            }
            return None;
        }
        let seq = fresh_seq(&mut self.isn, flights);
        let flight = Flight {
            source,
            seq,
            rto: INITIAL_RTO,
            retransmit_at: now + INITIAL_RTO,
            probes: smallvec::smallvec![probe],
        };
        let next = flight.next();
        flights.push(flight);
        self.set_timer(next, target, seq);
        Some(Transmit {
            source,
            target,
            seq,
        })
    }

    /// A reply from `from`: the probes it answers, if any, go to `done`.
    pub fn answer(&mut self, from: IpAddr, answer: &Answer, done: &mut Vec<Done<T>>) {
        if answer.dst_port != self.port {
            return;
        }
        let target = SocketAddr::new(from, answer.src_port);
        let outcome = match answer.verdict {
            Verdict::Listening => Outcome::Up,
            Verdict::Refused => {
                Outcome::Down(Failure::Connect(std::io::ErrorKind::ConnectionRefused))
            }
        };
        self.finish(target, answer.ack.wrapping_sub(1), outcome, done);
    }

    /// An ICMP error quoting our SYN to `target` with sequence number
    /// `seq`: that flight's probes fail as a connect would, with `error`,
    /// to `done`. A quote that matches no flight is ignored.
    pub fn unreachable(
        &mut self,
        target: SocketAddr,
        seq: u32,
        error: std::io::ErrorKind,
        done: &mut Vec<Done<T>>,
    ) {
        self.finish(target, seq, Outcome::Down(Failure::Connect(error)), done);
    }

    /// `transmit` could not be sent: its probes fail with `failure`, to
    /// `done`.
    pub fn failed(&mut self, transmit: &Transmit, failure: Failure, done: &mut Vec<Done<T>>) {
        self.finish(transmit.target, transmit.seq, Outcome::Down(failure), done);
    }

    fn finish(&mut self, target: SocketAddr, seq: u32, outcome: Outcome, done: &mut Vec<Done<T>>) {
        let Some(flights) = self.targets.get_mut(&target) else {
            return;
        };
        let Some(index) = flights.iter().position(|f| f.seq == seq) else {
            return;
        };
        let flight = flights.swap_remove(index);
        if flights.is_empty() {
            self.targets.remove(&target);
        }
        done.extend(flight.probes.into_iter().map(|p| Done {
            token: p.token,
            target,
            outcome,
        }));
    }

    /// When [`Flights::expire`] has work next, if ever.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        while let Some(Reverse(timer)) = self.timers.peek() {
            if self.flight(timer).is_some_and(|f| f.next() == timer.at) {
                return Some(timer.at);
            }
            self.timers.pop();
        }
        None
    }

    fn flight(&self, timer: &Timer) -> Option<&Flight<T>> {
        self.targets
            .get(&timer.target)?
            .iter()
            .find(|f| f.seq == timer.seq)
    }

    /// Probes whose timeout has passed by `now` fail; unanswered SYNs due
    /// again are returned to send.
    pub fn expire(&mut self, now: Instant) -> (Vec<Done<T>>, Vec<Transmit>) {
        let mut done = Vec::new();
        let mut transmits = Vec::new();
        while let Some(Reverse(timer)) = self.timers.peek().copied() {
            if timer.at > now {
                break;
            }
            self.timers.pop();
            let target = timer.target;
            let Some(flights) = self.targets.get_mut(&target) else {
                continue;
            };
            let Some(index) = flights
                .iter()
                .position(|f| f.seq == timer.seq && f.next() == timer.at)
            else {
                continue;
            };
            let flight = &mut flights[index];
            let waiting = flight.probes.len();
            let mut i = 0;
            while i < flight.probes.len() {
                if flight.probes[i].deadline <= now {
                    done.push(Done {
                        token: flight.probes.swap_remove(i).token,
                        target,
                        outcome: Outcome::Down(Failure::Timeout),
                    });
                } else {
                    i += 1;
                }
            }
            if flight.probes.is_empty() {
                flights.swap_remove(index);
                if flights.is_empty() {
                    self.targets.remove(&target);
                }
                continue;
            }
            if flight.probes.len() < waiting {
                // The others start over with a SYN of their own.
                let seq = fresh_seq(&mut self.isn, flights);
                let flight = &mut flights[index];
                flight.seq = seq;
                flight.rto = INITIAL_RTO;
                flight.retransmit_at = now + INITIAL_RTO;
            } else if flight.retransmit_at <= now {
                flight.rto = flight.rto.saturating_mul(2);
                flight.retransmit_at = now + flight.rto;
            } else {
                // Not reached: next() came up, so a deadline or the
                // retransmission was due.
                continue;
            }
            let flight = &flights[index];
            let (next, source, seq) = (flight.next(), flight.source, flight.seq);
            self.set_timer(next, target, seq);
            transmits.push(Transmit {
                source,
                target,
                seq,
            });
        }
        (done, transmits)
    }
}

/// A sequence number no other flight to the same target uses, so that an
/// answer matches one flight only.
fn fresh_seq<T>(isn: &mut Box<dyn FnMut() -> u32 + Send>, flights: &[Flight<T>]) -> u32 {
    loop {
        let seq = isn();
        if !flights.iter().any(|f| f.seq == seq) {
            return seq;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::ErrorKind;

    const PORT: u16 = 40000;

    fn at(ms: u64) -> Instant {
        Instant::from_micros(ms * 1000)
    }

    fn source() -> IpAddr {
        IpAddr::from([10, 0, 0, 1])
    }

    fn target() -> SocketAddr {
        "10.0.0.11:80".parse().unwrap()
    }

    /// Sequence numbers 1000, 2000, 3000...
    fn flights() -> Flights<&'static str> {
        let mut next = 0;
        Flights::new(
            PORT,
            Box::new(move || {
                next += 1000;
                next
            }),
        )
    }

    fn answer(seq: u32, verdict: Verdict) -> Answer {
        Answer {
            src_port: 80,
            dst_port: PORT,
            ack: seq.wrapping_add(1),
            verdict,
        }
    }

    fn answered(
        f: &mut Flights<&'static str>,
        from: IpAddr,
        answer: &Answer,
    ) -> Vec<Done<&'static str>> {
        let mut done = Vec::new();
        f.answer(from, answer, &mut done);
        done
    }

    fn failed(
        f: &mut Flights<&'static str>,
        transmit: &Transmit,
        failure: Failure,
    ) -> Vec<Done<&'static str>> {
        let mut done = Vec::new();
        f.failed(transmit, failure, &mut done);
        done
    }

    fn done(token: &'static str, outcome: Outcome) -> Done<&'static str> {
        Done {
            token,
            target: target(),
            outcome,
        }
    }

    #[test]
    fn a_syn_ack_is_up_and_a_reset_is_refused() {
        let mut f = flights();
        let syn = f.start(at(0), "a", source(), target(), Duration::from_secs(2));
        assert_eq!(
            syn,
            Some(Transmit {
                source: source(),
                target: target(),
                seq: 1000
            })
        );
        assert_eq!(
            answered(&mut f, target().ip(), &answer(1000, Verdict::Listening)),
            vec![done("a", Outcome::Up)]
        );
        // Nothing left to wait for: no timer comes up.
        assert_eq!(f.poll_timeout(), None);

        f.start(at(10), "b", source(), target(), Duration::from_secs(2));
        assert_eq!(
            answered(&mut f, target().ip(), &answer(2000, Verdict::Refused)),
            vec![done(
                "b",
                Outcome::Down(Failure::Connect(ErrorKind::ConnectionRefused))
            )]
        );
    }

    #[test]
    fn replies_that_answer_no_probe_are_ignored() {
        let mut f = flights();
        f.start(at(0), "a", source(), target(), Duration::from_secs(2));
        let right = answer(1000, Verdict::Listening);
        for wrong in [
            Answer { ack: 1000, ..right },
            Answer { ack: 2001, ..right },
            Answer {
                dst_port: PORT + 1,
                ..right
            },
            Answer {
                src_port: 81,
                ..right
            },
        ] {
            assert_eq!(answered(&mut f, target().ip(), &wrong), vec![]);
        }
        assert_eq!(
            answered(&mut f, IpAddr::from([10, 0, 0, 12]), &right),
            vec![]
        );
        assert_eq!(
            answered(&mut f, target().ip(), &right),
            vec![done("a", Outcome::Up)]
        );
        // A duplicate (the server sending its SYN-ACK again) finds nothing.
        assert_eq!(answered(&mut f, target().ip(), &right), vec![]);
    }

    #[test]
    fn an_unanswered_syn_is_sent_again_with_backoff_until_the_timeout() {
        let mut f = flights();
        f.start(at(0), "a", source(), target(), Duration::from_secs(5));
        let again = Transmit {
            source: source(),
            target: target(),
            seq: 1000,
        };
        assert_eq!(f.poll_timeout(), Some(at(1000)));
        assert_eq!(f.expire(at(999)), (vec![], vec![]));
        assert_eq!(f.expire(at(1000)), (vec![], vec![again]));
        // 2 s later (3 s), then the timeout (5 s) before the next (7 s).
        assert_eq!(f.poll_timeout(), Some(at(3000)));
        assert_eq!(f.expire(at(3000)), (vec![], vec![again]));
        assert_eq!(f.poll_timeout(), Some(at(5000)));
        assert_eq!(
            f.expire(at(5000)),
            (vec![done("a", Outcome::Down(Failure::Timeout))], vec![])
        );
        assert_eq!(f.poll_timeout(), None);
        // A late answer finds nothing.
        assert_eq!(
            answered(&mut f, target().ip(), &answer(1000, Verdict::Listening)),
            vec![]
        );
    }

    #[test]
    fn an_answer_to_a_retransmitted_syn_counts() {
        let mut f = flights();
        f.start(at(0), "a", source(), target(), Duration::from_secs(2));
        f.expire(at(1000));
        assert_eq!(
            answered(&mut f, target().ip(), &answer(1000, Verdict::Listening)),
            vec![done("a", Outcome::Up)]
        );
        assert_eq!(f.poll_timeout(), None);
    }

    #[test]
    fn probes_of_one_target_from_one_source_share_the_answer() {
        let mut f = flights();
        assert!(
            f.start(at(0), "a", source(), target(), Duration::from_secs(2))
                .is_some()
        );
        assert_eq!(
            f.start(at(100), "b", source(), target(), Duration::from_secs(2)),
            None
        );
        assert_eq!(
            answered(&mut f, target().ip(), &answer(1000, Verdict::Listening)),
            vec![done("a", Outcome::Up), done("b", Outcome::Up)]
        );
        assert_eq!(f.poll_timeout(), None);
    }

    #[test]
    fn when_the_first_of_a_shared_flight_times_out_the_others_get_a_new_syn() {
        let mut f = flights();
        f.start(at(0), "a", source(), target(), Duration::from_millis(1500));
        f.start(at(500), "b", source(), target(), Duration::from_secs(2));
        assert_eq!(f.expire(at(1000)).1.len(), 1);
        let (done_a, fresh) = f.expire(at(1500));
        assert_eq!(done_a, vec![done("a", Outcome::Down(Failure::Timeout))]);
        assert_eq!(
            fresh,
            vec![Transmit {
                source: source(),
                target: target(),
                seq: 2000
            }]
        );
        // An answer to the old SYN no longer counts; the new one's does.
        assert_eq!(
            answered(&mut f, target().ip(), &answer(1000, Verdict::Listening)),
            vec![]
        );
        assert_eq!(
            answered(&mut f, target().ip(), &answer(2000, Verdict::Refused)),
            vec![done(
                "b",
                Outcome::Down(Failure::Connect(ErrorKind::ConnectionRefused))
            )]
        );
        assert_eq!(f.poll_timeout(), None);
    }

    #[test]
    fn other_sources_fly_apart_with_distinct_sequence_numbers() {
        // An ISN source that repeats itself: the second flight to the same
        // target must still get a number of its own.
        let mut values = vec![7, 7, 7, 9].into_iter();
        let mut f: Flights<&str> = Flights::new(PORT, Box::new(move || values.next().unwrap_or(0)));
        let other = IpAddr::from([10, 0, 0, 2]);
        let first = f.start(at(0), "a", source(), target(), Duration::from_secs(2));
        let second = f.start(at(0), "b", other, target(), Duration::from_secs(2));
        assert_eq!(first.map(|t| t.seq), Some(7));
        assert_eq!(second.map(|t| (t.source, t.seq)), Some((other, 9)));
        assert_eq!(
            answered(&mut f, target().ip(), &answer(9, Verdict::Listening)),
            vec![done("b", Outcome::Up)]
        );
        assert_eq!(
            answered(&mut f, target().ip(), &answer(7, Verdict::Listening)),
            vec![done("a", Outcome::Up)]
        );
    }

    #[test]
    fn a_syn_that_cannot_be_sent_fails_its_probes() {
        let mut f = flights();
        let syn = f
            .start(at(0), "a", source(), target(), Duration::from_secs(2))
            .unwrap();
        f.start(at(0), "b", source(), target(), Duration::from_secs(2));
        let failure = Failure::Connect(ErrorKind::NetworkUnreachable);
        assert_eq!(
            failed(&mut f, &syn, failure),
            vec![
                done("a", Outcome::Down(failure)),
                done("b", Outcome::Down(failure))
            ]
        );
        assert_eq!(f.poll_timeout(), None);
    }

    #[test]
    fn an_icmp_error_quoting_a_syn_fails_that_flight_only() {
        let mut f = flights();
        let syn = f
            .start(at(0), "a", source(), target(), Duration::from_secs(2))
            .unwrap();
        let other = SocketAddr::from(([10, 0, 0, 12], 80));
        f.start(at(0), "b", source(), other, Duration::from_secs(2));
        let mut done_now = Vec::new();
        // A quote of another sequence number, or of a target we never
        // probed, fails nothing.
        f.unreachable(
            target(),
            syn.seq + 1,
            ErrorKind::HostUnreachable,
            &mut done_now,
        );
        f.unreachable(
            SocketAddr::from(([10, 0, 0, 13], 80)),
            syn.seq,
            ErrorKind::HostUnreachable,
            &mut done_now,
        );
        assert_eq!(done_now, vec![]);
        f.unreachable(target(), syn.seq, ErrorKind::HostUnreachable, &mut done_now);
        let failure = Failure::Connect(ErrorKind::HostUnreachable);
        assert_eq!(done_now, vec![done("a", Outcome::Down(failure))]);
        // b still waits for its answer.
        assert_eq!(f.poll_timeout(), Some(at(1000)));
    }
}
