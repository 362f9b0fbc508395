//! keepalived's `vrrp_track_process` on the system side: counting the
//! running processes that match each tracked process, by reading /proc.
//! Which processes match and when a count makes or breaks a quorum (with
//! its delays) is the VRRP core's business ([`crate::vrrp::process`]); what
//! a quorum does to an instance is the machine's
//! ([`crate::vrrp::machine::TrackKind::Process`]).
//!
//! keepalived follows forks, execs and exits through the kernel's proc
//! connector (netlink). The connector only works from the initial network
//! and PID namespaces (the kernel creates its socket in `init_net` and
//! refuses listeners in other PID namespaces), and the appliance runs in
//! network namespaces and containers, so the count is taken from /proc
//! instead, every [`SCAN_INTERVAL`]: the process list, and for each
//! process its name from `/proc/PID/stat` (zombies skipped, as keepalived
//! does) and its command line from `/proc/PID/cmdline` only when some
//! tracked process matches the full command (and only as many bytes as a
//! match needs: reading a command line can page a process in). Reading
//! every process costs some 10 to 30 µs of CPU each, so between full
//! readings, every [`FULL_EVERY`] scans, a scan reads only the processes
//! that are new since the last one or that matched: a matching process
//! ending (or exec'ing something else) and a new process that matches are
//! seen within one interval, a process that only comes to match later (an
//! exec of a process seen before, or a new one caught before its exec)
//! within a full reading's period. A process that starts and ends between
//! two scans is not seen, and neither is an end followed by a start that
//! leave the count as it was (keepalived sees both).

use super::plan::ProcessPlan;
use crate::clock::Instant;
use crate::vrrp::process::Quorum;
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::debug;

/// How often /proc is read.
pub(crate) const SCAN_INTERVAL: Duration = Duration::from_millis(200);

/// Every this many scans, every process is read (1 s).
pub(crate) const FULL_EVERY: u32 = 5;

/// A tracked process gained or lost its quorum.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Change {
    pub name: String,
    pub up: bool,
}

/// The tracked processes, their quorums and the clock they are fed with.
pub(crate) struct Counter {
    plans: Vec<ProcessPlan>,
    quorums: Vec<Quorum>,
    /// How much of a command line a match needs; `None` if no tracked
    /// process matches command lines.
    cmdline_limit: Option<u64>,
    origin: tokio::time::Instant,
    /// Where the processes are listed: /proc.
    proc: PathBuf,
    /// Each live process at the last scan, by PID: the plans it matched.
    seen: HashMap<u32, Vec<usize>>,
    /// Scans so far.
    scans: u32,
}

impl Counter {
    pub(crate) fn new(plans: &[ProcessPlan]) -> Self {
        Self::reading(plans, Path::new("/proc"))
    }

    fn reading(plans: &[ProcessPlan], proc: &Path) -> Self {
        let cmdline_limit = plans
            .iter()
            .filter(|p| p.pattern.full_command)
            .map(|p| {
                let params = p.pattern.params.as_ref().map_or(0, |(_, params)| {
                    params.iter().map(|w| w.len() + 1).sum::<usize>()
                });
                // One byte more than a match reads, to see that a command
                // goes on (for an exact match).
                (p.pattern.name.len() + 1 + params + 1) as u64
            })
            .max();
        Self {
            quorums: plans.iter().map(|p| Quorum::new(p.quorum)).collect(),
            plans: plans.to_vec(),
            cmdline_limit,
            origin: tokio::time::Instant::now(),
            proc: proc.to_path_buf(),
            seen: HashMap::new(),
            scans: 0,
        }
    }

    fn now(&self) -> Instant {
        Instant::from_duration(self.origin.elapsed())
    }

    /// Reads /proc (all of it the first time and every [`FULL_EVERY`]
    /// scans, else only new and matching processes) and feeds each tracked
    /// process's count; the quorums that changed (all of them the first
    /// time).
    pub(crate) fn count(&mut self) -> Vec<Change> {
        let full = self.scans.is_multiple_of(FULL_EVERY);
        self.scans = self.scans.wrapping_add(1);
        let mut seen = HashMap::new();
        for pid in pids(&self.proc) {
            let matched = match self.seen.remove(&pid) {
                Some(matched) if !full && matched.is_empty() => matched,
                _ => {
                    // A process may end at any point of this: it is then
                    // skipped.
                    let Some(process) = read(&self.proc, pid, self.cmdline_limit) else {
                        continue;
                    };
                    self.plans
                        .iter()
                        .enumerate()
                        .filter(|(_, plan)| plan.pattern.matches(&process.comm, &process.cmdline))
                        .map(|(i, _)| i)
                        .collect()
                }
            };
            seen.insert(pid, matched);
        }
        self.seen = seen;
        let now = self.now();
        let mut changes = Vec::new();
        for (i, (plan, quorum)) in self.plans.iter().zip(&mut self.quorums).enumerate() {
            let count = self.seen.values().filter(|m| m.contains(&i)).count();
            let count = u32::try_from(count).unwrap_or(u32::MAX);
            if quorum.held().is_none() || quorum.running() != count {
                debug!(track_process = %plan.name, count, "matching processes");
            }
            if let Some(up) = quorum.count(now, count) {
                changes.push(Change {
                    name: plan.name.clone(),
                    up,
                });
            }
        }
        changes
    }

    /// The delays that ran out; the quorums that changed.
    fn timers(&mut self) -> Vec<Change> {
        let now = self.now();
        self.plans
            .iter()
            .zip(&mut self.quorums)
            .filter_map(|(plan, quorum)| {
                quorum.timer(now).map(|up| Change {
                    name: plan.name.clone(),
                    up,
                })
            })
            .collect()
    }

    /// The earliest delay to run out, on the tokio clock.
    fn next_timer(&self) -> Option<tokio::time::Instant> {
        self.quorums
            .iter()
            .filter_map(Quorum::poll_timeout)
            .min()
            .map(|at| self.origin + Duration::from_micros(at.as_micros()))
    }

    /// Counts every [`SCAN_INTERVAL`] (and when a delay runs out) and sends
    /// each quorum change, made a `T` by `wrap`, until the receiver is gone.
    pub(crate) async fn run<T>(mut self, sender: mpsc::Sender<T>, wrap: impl Fn(Change) -> T) {
        let mut next_scan = tokio::time::Instant::now() + SCAN_INTERVAL;
        loop {
            let wake = self.next_timer().map_or(next_scan, |t| t.min(next_scan));
            tokio::time::sleep_until(wake).await;
            let mut changes = Vec::new();
            if tokio::time::Instant::now() >= next_scan {
                changes = self.count();
                next_scan += SCAN_INTERVAL;
                // After a stall (a suspended machine), no burst of scans.
                next_scan = next_scan.max(tokio::time::Instant::now());
            }
            changes.extend(self.timers());
            for change in changes {
                if sender.send(wrap(change)).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// One process as /proc shows it.
#[derive(Debug, Default, PartialEq, Eq)]
struct Process {
    /// `comm`: the kernel's process name.
    comm: Vec<u8>,
    /// `cmdline`, at most the limit asked for; empty if not asked for.
    cmdline: Vec<u8>,
}

/// The processes listed under `proc` (threads are not listed there, only
/// thread group leaders, so a thread never counts as a process).
fn pids(proc: &Path) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir(proc) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect()
}

/// A live process's name and, with a limit, its command line up to it;
/// `None` for a zombie or a process gone.
fn read(proc: &Path, pid: u32, cmdline_limit: Option<u64>) -> Option<Process> {
    let dir = proc.join(pid.to_string());
    let stat = std::fs::read(dir.join("stat")).ok()?;
    let comm = live_comm(&stat)?.to_vec();
    let mut cmdline = Vec::new();
    if let Some(limit) = cmdline_limit {
        std::fs::File::open(dir.join("cmdline"))
            .and_then(|f| f.take(limit).read_to_end(&mut cmdline))
            .ok()?;
    }
    Some(Process { comm, cmdline })
}

/// The process name in a `/proc/PID/stat` line (`PID (NAME) STATE …`),
/// unless the process is a zombie (or dead): `None`. The name may hold
/// spaces and parentheses, so it ends at the last `)`.
fn live_comm(stat: &[u8]) -> Option<&[u8]> {
    let open = stat.iter().position(|&b| b == b'(')?;
    let close = stat.iter().rposition(|&b| b == b')')?;
    let comm = stat.get(open + 1..close)?;
    match stat.get(close + 2) {
        Some(b'Z' | b'X') | None => None,
        Some(_) => Some(comm),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vrrp::process::{ParamMatch, Pattern, QuorumConfig};

    #[test]
    fn the_name_is_read_between_the_outer_parentheses_and_zombies_are_skipped() {
        assert_eq!(live_comm(b"42 (sleep) S 1 42 42 0 -1"), Some(&b"sleep"[..]));
        assert_eq!(live_comm(b"7 (a (b) c) R 1 7"), Some(&b"a (b) c"[..]));
        assert_eq!(live_comm(b"9 (gone) Z 1 9"), None);
        assert_eq!(live_comm(b"9 (gone)"), None);
        assert_eq!(live_comm(b"garbage"), None);
    }

    /// A /proc-like tree the test writes.
    struct FakeProc(tempfile::TempDir);

    impl FakeProc {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            std::fs::create_dir(dir.path().join("self")).unwrap();
            Self(dir)
        }

        fn path(&self) -> &Path {
            self.0.path()
        }

        fn set(&self, pid: u32, comm: &str, state: char, cmdline: &[u8]) {
            let d = self.path().join(pid.to_string());
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("stat"), format!("{pid} ({comm}) {state} 1")).unwrap();
            std::fs::write(d.join("cmdline"), cmdline).unwrap();
        }

        fn end(&self, pid: u32) {
            std::fs::remove_dir_all(self.path().join(pid.to_string())).unwrap();
        }
    }

    #[test]
    fn processes_are_read_with_their_command_line_up_to_the_limit() {
        let proc = FakeProc::new();
        proc.set(1, "init", 'S', b"/sbin/init\0");
        proc.set(20, "sleep", 'S', b"sleep\x0014501\0");
        proc.set(21, "sleep", 'Z', b"");
        let mut pids = pids(proc.path());
        pids.sort_unstable();
        assert_eq!(pids, [1, 20, 21], "not 'self'");
        assert_eq!(
            read(proc.path(), 20, Some(9)),
            Some(Process {
                comm: b"sleep".to_vec(),
                cmdline: b"sleep\x00145".to_vec(),
            })
        );
        assert_eq!(
            read(proc.path(), 1, None),
            Some(Process {
                comm: b"init".to_vec(),
                cmdline: Vec::new(),
            })
        );
        assert_eq!(read(proc.path(), 21, Some(9)), None, "a zombie");
        assert_eq!(read(proc.path(), 99, None), None, "gone");
    }

    fn plan(name: &str, pattern: Pattern) -> ProcessPlan {
        ProcessPlan {
            name: name.into(),
            pattern,
            quorum: QuorumConfig {
                min: 1,
                max: u32::MAX,
                fork_delay: Duration::ZERO,
                terminate_delay: Duration::ZERO,
            },
        }
    }

    fn named(name: &str) -> Pattern {
        Pattern {
            name: name.into(),
            params: None,
            full_command: false,
        }
    }

    fn change(name: &str, up: bool) -> Change {
        Change {
            name: name.into(),
            up,
        }
    }

    #[test]
    fn between_full_readings_only_new_and_matching_processes_are_read() {
        let proc = FakeProc::new();
        proc.set(10, "shell", 'S', b"");
        let mut counter = Counter::reading(&[plan("app", named("app"))], proc.path());
        assert_eq!(counter.count(), [change("app", false)], "a full reading");
        // A new process that matches is read at once, and its end seen.
        proc.set(11, "app", 'S', b"");
        assert_eq!(counter.count(), [change("app", true)]);
        proc.end(11);
        assert_eq!(counter.count(), [change("app", false)]);
        // A matching process that execs something else is read again.
        proc.set(12, "app", 'S', b"");
        assert_eq!(counter.count(), [change("app", true)]);
        proc.set(12, "other", 'S', b"");
        assert_eq!(counter.count(), [change("app", false)]);
        // A process seen not matching that execs the tracked program is
        // seen at the next full reading (the 6th scan, 1 s).
        assert_eq!(counter.scans, FULL_EVERY);
        proc.set(10, "app", 'S', b"");
        assert_eq!(counter.count(), [change("app", true)]);
        let matching = |c: &Counter| c.seen.values().filter(|m| !m.is_empty()).count();
        proc.set(12, "app", 'S', b"");
        for _ in 1..FULL_EVERY {
            assert_eq!(counter.count(), []);
            assert_eq!(matching(&counter), 1, "12 is not read again yet");
        }
        assert_eq!(counter.count(), []);
        assert_eq!(matching(&counter), 2, "the full reading reads 12");
    }

    #[tokio::test]
    async fn the_counter_sees_this_test_run_and_a_process_that_is_not_there() {
        let mut child = std::process::Command::new("sleep")
            .arg("14599")
            .spawn()
            .unwrap();
        // spawn returns once the child execs, but the kernel sets its name and
        // arguments a moment later: wait until /proc shows them.
        let cmdline = format!("/proc/{}/cmdline", child.id());
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::fs::read(&cmdline).unwrap_or_default() != b"sleep\x0014599\x00" {
            assert!(
                std::time::Instant::now() < deadline,
                "sleep never showed in /proc"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        let plans = [
            plan(
                "sleeping",
                Pattern {
                    name: "sleep".into(),
                    params: Some((ParamMatch::Exact, vec!["14599".into()])),
                    full_command: true,
                },
            ),
            plan("nothing", named("no-such-process")),
        ];
        let mut counter = Counter::new(&plans);
        let changes = counter.count();
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(
            changes,
            [
                Change {
                    name: "sleeping".into(),
                    up: true
                },
                Change {
                    name: "nothing".into(),
                    up: false
                },
            ]
        );
        assert_eq!(
            counter.count(),
            [Change {
                name: "sleeping".into(),
                up: false
            }]
        );
    }
}
