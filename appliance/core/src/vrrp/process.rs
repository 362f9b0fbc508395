//! keepalived's `vrrp_track_process`, without I/O: which processes match a
//! tracked process ([`Pattern`]) and when the number of them running makes
//! or breaks its quorum ([`Quorum`]), with `fork_delay` and
//! `terminate_delay`. The driver counts the matching processes and feeds
//! each count with the time; a quorum change is an
//! [`Input::Process`](crate::vrrp::machine::Input::Process) for the
//! instances tracking it.

use crate::clock::Instant;
use std::time::Duration;

/// How a tracked process's parameters are compared (keepalived's
/// `param_match`; `None` in [`Pattern::params`] compares none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamMatch {
    /// Exactly the parameters given, no more (with none given: a process
    /// without parameters).
    Exact,
    /// The parameters given, the last one possibly longer in the process.
    Initial,
    /// The parameters given, possibly followed by more.
    Partial,
}

/// What a tracked process's processes look like.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    /// The process name (`comm`), or with `full_command` the command's
    /// first word (`argv[0]`), compared exactly.
    pub name: String,
    /// How the parameters after the name are compared; `None`: they are not.
    pub params: Option<(ParamMatch, Vec<String>)>,
    /// Match `/proc/PID/cmdline` rather than the process name.
    pub full_command: bool,
}

impl Pattern {
    /// Whether a process matches, given its name (`comm`) and its command
    /// line as the kernel shows it (NUL-terminated words).
    pub fn matches(&self, comm: &[u8], cmdline: &[u8]) -> bool {
        if !self.full_command {
            return comm == self.name.as_bytes();
        }
        let (first, rest) = match cmdline.iter().position(|&b| b == 0) {
            Some(end) => (&cmdline[..end], &cmdline[end + 1..]),
            None => (cmdline, &[][..]),
        };
        if first != self.name.as_bytes() {
            return false;
        }
        let Some((how, params)) = &self.params else {
            return true;
        };
        // keepalived compares bytes: each parameter followed by its NUL.
        let mut wanted = Vec::new();
        for p in params {
            wanted.extend_from_slice(p.as_bytes());
            wanted.push(0);
        }
        match how {
            ParamMatch::Exact => rest == wanted.as_slice(),
            ParamMatch::Partial => rest.starts_with(&wanted),
            ParamMatch::Initial => {
                // Without the last NUL: the last parameter may go on.
                let stem = &wanted[..wanted.len().saturating_sub(1)];
                rest.len() >= wanted.len() && rest.starts_with(stem)
            }
        }
    }
}

/// A tracked process's quorum settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuorumConfig {
    /// Fewest matching processes for the quorum (keepalived's default 1).
    pub min: u32,
    /// Most matching processes for the quorum (keepalived: unbounded).
    pub max: u32,
    /// How long a quorum gained by a process starting waits before it
    /// counts (a stop in the meantime cancels it).
    pub fork_delay: Duration,
    /// How long a quorum lost by a process ending waits before it counts (a
    /// start in the meantime cancels it).
    pub terminate_delay: Duration,
}

impl QuorumConfig {
    fn holds(&self, count: u32) -> bool {
        (self.min..=self.max).contains(&count)
    }
}

/// A delayed quorum change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pending {
    /// A start crossed a bound (`fork_delay`).
    Fork(Instant),
    /// An end crossed a bound (`terminate_delay`).
    Terminate(Instant),
}

/// One tracked process's count and quorum, as keepalived's
/// `check_process_fork` / `check_process_termination` move them. The
/// driver sees counts rather than each fork and exit: starts and ends
/// between two counts that leave the quorum as it was are not seen.
#[derive(Clone, Debug)]
pub struct Quorum {
    cfg: QuorumConfig,
    count: u32,
    /// The quorum as reported; `None` before the first count.
    held: Option<bool>,
    pending: Option<Pending>,
}

impl Quorum {
    pub fn new(cfg: QuorumConfig) -> Self {
        Self {
            cfg,
            count: 0,
            held: None,
            pending: None,
        }
    }

    /// The number of matching processes last counted.
    pub fn running(&self) -> u32 {
        self.count
    }

    /// The quorum as last reported.
    pub fn held(&self) -> Option<bool> {
        self.held
    }

    /// The number of matching processes running now; the new quorum if it
    /// changed. The first count decides the quorum at once (keepalived's
    /// start-up reading of /proc), without delay.
    pub fn count(&mut self, now: Instant, count: u32) -> Option<bool> {
        let before = std::mem::replace(&mut self.count, count);
        if self.held.is_none() {
            return self.report(self.cfg.holds(count));
        }
        if self.cfg.holds(before) == self.cfg.holds(count) {
            return None;
        }
        if count > before {
            match self.pending {
                // The end that was about to count is undone.
                Some(Pending::Terminate(_)) => self.pending = None,
                _ if !self.cfg.fork_delay.is_zero() => {
                    self.pending = Some(Pending::Fork(now + self.cfg.fork_delay));
                    return None;
                }
                _ => {}
            }
        } else {
            match self.pending {
                // The start that was about to count is undone.
                Some(Pending::Fork(_)) => self.pending = None,
                _ if !self.cfg.terminate_delay.is_zero() => {
                    self.pending = Some(Pending::Terminate(now + self.cfg.terminate_delay));
                    return None;
                }
                _ => {}
            }
        }
        self.report(self.cfg.holds(count))
    }

    /// When [`Quorum::timer`] is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.pending? {
            Pending::Fork(at) | Pending::Terminate(at) => Some(at),
        }
    }

    /// A delay may have run out; the new quorum if it changed.
    pub fn timer(&mut self, now: Instant) -> Option<bool> {
        let due = self.poll_timeout().is_some_and(|at| at <= now);
        if !due {
            return None;
        }
        self.pending = None;
        self.report(self.cfg.holds(self.count))
    }

    fn report(&mut self, holds: bool) -> Option<bool> {
        (self.held.replace(holds) != Some(holds)).then_some(holds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(name: &str, params: Option<(ParamMatch, &[&str])>, full: bool) -> Pattern {
        Pattern {
            name: name.into(),
            params: params.map(|(how, p)| (how, p.iter().map(|s| s.to_string()).collect())),
            full_command: full,
        }
    }

    #[test]
    fn the_name_is_the_comm_unless_the_full_command_is_matched() {
        let p = pattern("nginx", None, false);
        assert!(p.matches(b"nginx", b"/usr/sbin/nginx\0-g\0"));
        assert!(!p.matches(b"nginx2", b"nginx\0"), "an exact match");
        let f = pattern("/usr/sbin/nginx", None, true);
        assert!(f.matches(b"other", b"/usr/sbin/nginx\0-g\0daemon off;\0"));
        assert!(!f.matches(b"nginx", b"nginx\0"));
        // A zombie's command line is empty.
        assert!(!f.matches(b"nginx", b""));
    }

    #[test]
    fn parameters_match_exactly_initially_or_partially() {
        let cmd = b"sleep\x00300\x00extra\x00";
        let exact = |p: &[&str]| pattern("sleep", Some((ParamMatch::Exact, p)), true);
        assert!(exact(&["300", "extra"]).matches(b"", cmd));
        assert!(!exact(&["300"]).matches(b"", cmd));
        assert!(!exact(&[]).matches(b"", cmd), "none means none");
        assert!(exact(&[]).matches(b"", b"sleep\0"));
        let partial = |p: &[&str]| pattern("sleep", Some((ParamMatch::Partial, p)), true);
        assert!(partial(&["300"]).matches(b"", cmd));
        assert!(!partial(&["30"]).matches(b"", cmd));
        assert!(partial(&[]).matches(b"", cmd));
        let initial = |p: &[&str]| pattern("sleep", Some((ParamMatch::Initial, p)), true);
        assert!(initial(&["300", "ext"]).matches(b"", cmd));
        assert!(initial(&["30"]).matches(b"", cmd));
        assert!(!initial(&["301"]).matches(b"", cmd));
        assert!(!initial(&["300", "extra", "x"]).matches(b"", cmd));
    }

    fn quorum(min: u32, max: u32, fork: u64, terminate: u64) -> Quorum {
        Quorum::new(QuorumConfig {
            min,
            max,
            fork_delay: Duration::from_secs(fork),
            terminate_delay: Duration::from_secs(terminate),
        })
    }

    fn at(secs: u64) -> Instant {
        Instant::from_micros(secs * 1_000_000)
    }

    #[test]
    fn the_first_count_decides_at_once_then_only_crossings_report() {
        let mut q = quorum(2, u32::MAX, 5, 5);
        assert_eq!(q.count(at(0), 1), Some(false), "no delay at start");
        assert_eq!(q.count(at(1), 1), None);
        let mut q = quorum(2, u32::MAX, 0, 0);
        assert_eq!(q.count(at(0), 3), Some(true));
        assert_eq!(q.count(at(1), 2), None, "still a quorum");
        assert_eq!(q.count(at(2), 1), Some(false));
        assert_eq!(q.count(at(3), 0), None);
        assert_eq!(q.count(at(4), 2), Some(true));
    }

    #[test]
    fn quorum_max_is_an_upper_bound_and_zero_means_none_may_run() {
        let mut q = quorum(1, 1, 0, 0);
        assert_eq!(q.count(at(0), 1), Some(true));
        assert_eq!(q.count(at(1), 2), Some(false));
        assert_eq!(q.count(at(2), 1), Some(true));
        let mut none = quorum(0, 0, 0, 0);
        assert_eq!(none.count(at(0), 0), Some(true));
        assert_eq!(none.count(at(1), 1), Some(false));
    }

    #[test]
    fn delays_hold_a_change_back_and_the_opposite_change_cancels_it() {
        let mut q = quorum(1, u32::MAX, 2, 3);
        assert_eq!(q.count(at(0), 1), Some(true));
        // An end waits terminate_delay.
        assert_eq!(q.count(at(10), 0), None);
        assert_eq!(q.poll_timeout(), Some(at(13)));
        assert_eq!(q.timer(at(12)), None, "not yet");
        assert_eq!(q.timer(at(13)), Some(false));
        assert_eq!(q.poll_timeout(), None);
        // A start waits fork_delay; an end before it cancels it.
        assert_eq!(q.count(at(20), 1), None);
        assert_eq!(q.poll_timeout(), Some(at(22)));
        assert_eq!(q.count(at(21), 0), None);
        assert_eq!(q.poll_timeout(), None);
        assert_eq!(q.held(), Some(false));
        // An end, then a start before terminate_delay: never lost.
        q.count(at(30), 1);
        assert_eq!(q.timer(at(32)), Some(true));
        assert_eq!(q.count(at(40), 0), None);
        assert_eq!(q.count(at(41), 1), None);
        assert_eq!((q.poll_timeout(), q.held()), (None, Some(true)));
    }

    #[test]
    fn a_delay_counts_the_processes_running_when_it_runs_out() {
        let mut q = quorum(2, 3, 1, 1);
        assert_eq!(q.count(at(0), 2), Some(true));
        // Too many (a start past quorum_max) waits fork_delay too.
        assert_eq!(q.count(at(1), 4), None);
        assert_eq!(q.timer(at(2)), Some(false));
        assert_eq!(q.count(at(3), 3), None, "an end: terminate_delay");
        assert_eq!(q.timer(at(4)), Some(true));
    }
}
