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
//! network namespaces and containers, so the count is taken by reading
//! /proc every [`SCAN_INTERVAL`] instead: each process's name from
//! `/proc/PID/stat` (zombies skipped, as keepalived does), and its command
//! line from `/proc/PID/cmdline` only when some tracked process matches the
//! full command (and only as many bytes as a match needs: reading a
//! command line can page a process in). A start or an end is acted on
//! within one interval (plus the scan, well under a millisecond for a few
//! hundred processes); a process that starts and ends between two scans
//! is not seen, and neither is an end followed by a start that leave the
//! count as it was.

use super::plan::ProcessPlan;
use crate::clock::Instant;
use crate::vrrp::process::Quorum;
use std::io::Read;
use std::path::Path;
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::debug;

/// How often /proc is read.
pub(crate) const SCAN_INTERVAL: Duration = Duration::from_millis(200);

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
}

impl Counter {
    pub(crate) fn new(plans: &[ProcessPlan]) -> Self {
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
        }
    }

    fn now(&self) -> Instant {
        Instant::from_duration(self.origin.elapsed())
    }

    /// Reads /proc and feeds each tracked process's count; the quorums that
    /// changed (all of them the first time).
    pub(crate) fn count(&mut self) -> Vec<Change> {
        let processes = scan(Path::new("/proc"), self.cmdline_limit);
        let now = self.now();
        let mut changes = Vec::new();
        for (plan, quorum) in self.plans.iter().zip(&mut self.quorums) {
            let count = processes
                .iter()
                .filter(|p| plan.pattern.matches(&p.comm, &p.cmdline))
                .count();
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

/// The live processes under `proc` (threads are not listed there, only
/// thread group leaders, so a thread never counts as a process).
fn scan(proc: &Path, cmdline_limit: Option<u64>) -> Vec<Process> {
    let Ok(entries) = std::fs::read_dir(proc) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.as_encoded_bytes().iter().all(u8::is_ascii_digit) {
            continue;
        }
        let dir = entry.path();
        // A process may end at any point of this: it is then skipped.
        let Ok(stat) = std::fs::read(dir.join("stat")) else {
            continue;
        };
        let Some(comm) = live_comm(&stat) else {
            continue;
        };
        let cmdline = match cmdline_limit {
            Some(limit) => {
                let mut buf = Vec::new();
                let read = std::fs::File::open(dir.join("cmdline"))
                    .and_then(|f| f.take(limit).read_to_end(&mut buf));
                if read.is_err() {
                    continue;
                }
                buf
            }
            None => Vec::new(),
        };
        out.push(Process {
            comm: comm.to_vec(),
            cmdline,
        });
    }
    out
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

    #[test]
    fn a_scan_of_a_proc_tree_reads_names_and_command_lines_up_to_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let proc = dir.path();
        let process = |pid: &str, stat: &str, cmdline: &[u8]| {
            let d = proc.join(pid);
            std::fs::create_dir(&d).unwrap();
            std::fs::write(d.join("stat"), stat).unwrap();
            std::fs::write(d.join("cmdline"), cmdline).unwrap();
        };
        process("1", "1 (init) S 0", b"/sbin/init\0");
        process("20", "20 (sleep) S 1", b"sleep\x0014501\0");
        process("21", "21 (sleep) Z 1", b"");
        std::fs::create_dir(proc.join("self")).unwrap();
        let mut found = scan(proc, Some(9));
        found.sort_by(|a, b| a.comm.cmp(&b.comm));
        assert_eq!(
            found,
            [
                Process {
                    comm: b"init".to_vec(),
                    cmdline: b"/sbin/ini".to_vec(),
                },
                Process {
                    comm: b"sleep".to_vec(),
                    cmdline: b"sleep\x00145".to_vec(),
                },
            ]
        );
        assert!(scan(proc, None).iter().all(|p| p.cmdline.is_empty()));
    }

    #[tokio::test]
    async fn the_counter_sees_this_test_run_and_a_process_that_is_not_there() {
        let plan = |name: &str, pattern: Pattern| ProcessPlan {
            name: name.into(),
            pattern,
            quorum: QuorumConfig {
                min: 1,
                max: u32::MAX,
                fork_delay: Duration::ZERO,
                terminate_delay: Duration::ZERO,
            },
        };
        let mut child = std::process::Command::new("sleep")
            .arg("14599")
            .spawn()
            .unwrap();
        let plans = [
            plan(
                "sleeping",
                Pattern {
                    name: "sleep".into(),
                    params: Some((ParamMatch::Exact, vec!["14599".into()])),
                    full_command: true,
                },
            ),
            plan(
                "nothing",
                Pattern {
                    name: "no-such-process".into(),
                    params: None,
                    full_command: false,
                },
            ),
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
