//! Planned operations on the master (`make bench`, operations_bench): the
//! probes a client loses, connecting to the VIP every 5 ms, while the
//! operator
//! - hands the VIP over to the backup: `appliance switchover` (the master
//!   resigns but keeps forwarding until the backup has taken over) beside
//!   keepalived's way, a clean stop (its priority 0 advert);
//! - restarts the master: `kill -9` and start again at once (a crash, or
//!   an upgrade to a new binary), under both; the appliance resumes as
//!   master when it is back within its Master_Down_Interval.
//!
//! On the failover bench's LAN (each director serves its name, the client
//! probes the VIP), for VRRPv2 at 1 s and VRRPv3 at 100 ms. Goal: no
//! probe lost by the appliance; keepalived's losses beside it. (Drain and
//! reload of real servers need a load balancer, which keepalived has only
//! with IPVS: this kernel has none, so they are [`super::pool`]'s, in a
//! VM.)

use super::director::{BACKUP, Daemon, Implementation, MASTER};
use super::probe::{self, PROBE_INTERVAL, Prober};
use super::{Bench, Error, MASTER_NAME, Protocol, STEADY_PROBES, VIP};
use std::fmt::Write as _;
use std::net::SocketAddrV4;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// What the operator does to the master.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    Switchover,
    Restart,
}

impl Operation {
    pub const ALL: [Operation; 2] = [Operation::Switchover, Operation::Restart];

    pub fn name(self) -> &'static str {
        match self {
            Operation::Switchover => "planned switchover",
            Operation::Restart => "restart (kill -9, start)",
        }
    }

    /// How each implementation does it.
    fn how(self, implementation: &Implementation) -> &'static str {
        match (self, implementation) {
            (Operation::Switchover, Implementation::Appliance(_)) => "appliance switchover",
            (Operation::Switchover, Implementation::Keepalived) => "stop (priority 0)",
            (Operation::Restart, _) => "kill -9, start",
        }
    }
}

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
    pub trials: usize,
    pub appliance: PathBuf,
}

/// What the client saw in one trial.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Seen {
    /// Probes that got no answer.
    pub lost: usize,
    /// Times the answering director changed: a move of the VIP, which
    /// breaks the connections to the one it left.
    pub moves: usize,
}

/// One operation under one protocol: what the client saw in each trial.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub protocol: String,
    pub operation: Operation,
    pub appliance: Vec<Seen>,
    pub keepalived: Vec<Seen>,
}

/// Runs every operation under both protocols, trials alternating between
/// the implementations.
pub fn run(options: &Options) -> Result<Vec<Row>, Error> {
    if !options.appliance.exists() {
        return Err(Error::NoAppliance(options.appliance.clone()));
    }
    super::which("keepalived").ok_or(Error::NoKeepalived)?;
    let bench = Bench::new()?;
    let implementations = [
        Implementation::Appliance(options.appliance.clone()),
        Implementation::Keepalived,
    ];
    let mut rows = Vec::new();
    for protocol in [Protocol::V2_1S, Protocol::V3_100MS] {
        let confs = (
            bench.write_conf(MASTER, protocol)?,
            bench.write_conf(BACKUP, protocol)?,
        );
        for operation in Operation::ALL {
            let [appliance, keepalived] =
                super::alternate(options.trials, &implementations, |trial, implementation| {
                    let one = trial_of(&bench, implementation, protocol, operation, &confs)?;
                    eprintln!(
                        "{}, {}, trial {trial}/{}, {}: {} probe(s) lost, {} move(s) of the VIP",
                        protocol.name(),
                        operation.name(),
                        options.trials,
                        implementation.name(),
                        one.lost,
                        one.moves,
                    );
                    Ok(one)
                })?;
            rows.push(Row {
                protocol: protocol.name(),
                operation,
                appliance,
                keepalived,
            });
        }
    }
    bench.reset()?;
    Ok(rows)
}

/// One trial: what the client saw from the operation until the VIP has
/// settled (twice the backup's Master_Down_Interval and a second).
fn trial_of(
    bench: &Bench,
    implementation: &Implementation,
    protocol: Protocol,
    operation: Operation,
    confs: &(PathBuf, PathBuf),
) -> Result<Seen, Error> {
    let (master, backup) = bench.start_pair(implementation, protocol, confs)?;
    let master_host = bench.host("master");
    let trial_error = |what: String| Error::Trial {
        implementation: implementation.name(),
        scenario: format!("{}, {}", protocol.name(), operation.name()),
        what,
    };
    let prober = Prober::start(bench.host("client"), SocketAddrV4::new(VIP, probe::PORT))?;
    if prober
        .wait_steady(MASTER_NAME, STEADY_PROBES, Duration::from_secs(3))
        .is_none()
    {
        let summary = probe::summary(&prober.snapshot());
        let _ = prober.stop();
        return Err(trial_error(format!(
            "the client never got steady answers from the master ({summary})"
        )));
    }
    let start = Instant::now();
    // The master running after the operation, if any.
    let master = match (operation, implementation) {
        (Operation::Switchover, Implementation::Appliance(bin)) => {
            let socket = bench.dir.path().join("master").join("appliance.sock");
            let out = master_host
                .command(bin)
                .arg("switchover")
                .arg("--socket")
                .arg(&socket)
                .output()
                .map_err(|source| Error::Io {
                    what: "appliance switchover".into(),
                    source,
                })?;
            if !out.status.success() {
                let _ = prober.stop();
                return Err(master.failure(format!(
                    "appliance switchover: {}",
                    String::from_utf8_lossy(&out.stderr)
                )));
            }
            Some(master)
        }
        (Operation::Switchover, Implementation::Keepalived) => {
            master.terminate()?;
            Some(master)
        }
        (Operation::Restart, _) => {
            // Reaped, and every other process of the master (keepalived's
            // children) gone, before the new one starts.
            master.kill()?;
            super::kill_all_in(master_host)?;
            Some(Daemon::start(
                implementation,
                master_host,
                &confs.0,
                bench.dir.path(),
            )?)
        }
    };
    let mdi = appliance::vrrp::machine::master_down_interval(
        protocol.version,
        BACKUP.priority,
        protocol.advert,
    );
    std::thread::sleep(mdi * 2 + Duration::from_secs(1));
    let seen = seen(&prober.snapshot(), start);
    prober.stop()?;
    backup.stop()?;
    if let Some(master) = master {
        master.stop()?;
    }
    super::kill_all_in(master_host)?;
    Ok(seen)
}

/// What `probes` (sorted by send time) sent at or after `since` saw; a
/// move counts from the last answer before it.
fn seen(probes: &[probe::Probe], since: Instant) -> Seen {
    let window = probes.iter().filter(|p| p.sent >= since);
    let lost = window.clone().filter(|p| p.answer.is_none()).count();
    let before = probes
        .iter()
        .filter(|p| p.sent < since)
        .filter_map(|p| p.answer)
        .next_back();
    let answers: Vec<u8> = before
        .into_iter()
        .chain(window.filter_map(|p| p.answer))
        .collect();
    let moves = answers.windows(2).filter(|w| w[0] != w[1]).count();
    Seen { lost, moves }
}

/// The section `make bench` appends to docs/benchmarks.md: how each
/// implementation does each operation, then what the client saw.
pub fn table(options: &Options, rows: &[Row]) -> String {
    let mut out = format!(
        "## Planned operations: probes lost\n\n\
         A client connects to the VIP every {} ms; each cell is the median \
         (and the worst) of the probes it lost over {} trials, from the \
         operation until the VIP settled, and how often the VIP moved (each \
         director answers its own name; a move breaks the connections to \
         the director it left). A lost probe is a connection the client \
         could not make within 100 ms. Goal: no probe lost by the \
         appliance, and no move but the one a switchover asks for.\n\n\
         How each implementation does it:\n\n\
         | operation | appliance | keepalived |\n\
         |---|---|---|\n",
        PROBE_INTERVAL.as_millis(),
        options.trials,
    );
    let appliance = Implementation::Appliance(options.appliance.clone());
    let mut operations: Vec<Operation> = Vec::new();
    for row in rows {
        if !operations.contains(&row.operation) {
            operations.push(row.operation);
        }
    }
    for operation in operations {
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            operation.name(),
            operation.how(&appliance),
            operation.how(&Implementation::Keepalived),
        );
    }
    out.push_str(
        "\nProbes lost, median (worst), and moves of the VIP, median:\n\n\
         | protocol | operation | appliance lost | appliance moves | keepalived lost | keepalived moves |\n\
         |---|---|---:|---:|---:|---:|\n",
    );
    for row in rows {
        let cells = |seen: &[Seen]| {
            let (lost, worst) =
                super::report::median_and_worst(seen.iter().map(|s| s.lost).collect());
            let (moves, _) =
                super::report::median_and_worst(seen.iter().map(|s| s.moves).collect());
            format!("{lost} ({worst}) | {moves}")
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            row.protocol,
            row.operation.name(),
            cells(&row.appliance),
            cells(&row.keepalived),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tables_fit_a_page() {
        let options = Options {
            trials: 5,
            appliance: PathBuf::from("appliance"),
        };
        let seen = |lost| vec![Seen { lost, moves: 1 }];
        let rows: Vec<Row> = ["v2, 1 s", "v3, 100 ms"]
            .into_iter()
            .flat_map(|protocol| {
                Operation::ALL.map(|operation| Row {
                    protocol: protocol.into(),
                    operation,
                    appliance: seen(0),
                    keepalived: seen(12),
                })
            })
            .collect();
        let text = table(&options, &rows);
        let widest = super::super::report::widest_table(&text);
        assert!(widest <= super::super::report::MAX_COLUMNS, "{text}");
        let how = "| planned switchover | appliance switchover | stop (priority 0) |";
        assert_eq!(text.matches(how).count(), 1, "{text}");
        assert!(
            text.contains("| v3, 100 ms | restart (kill -9, start) | 0 (0) | 1 | 12 (12) | 1 |"),
            "{text}"
        );
    }

    #[test]
    fn losses_and_moves_are_counted_from_the_operation_on() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let probe = |ms, answer| probe::Probe {
            sent: at(ms),
            answer,
        };
        let probes = [
            probe(0, None),
            probe(5, Some(b'm')),
            probe(10, Some(b'm')),
            probe(15, None),
            probe(20, Some(b'b')),
            probe(25, Some(b'b')),
            probe(30, Some(b'm')),
        ];
        assert_eq!(seen(&probes, at(5)), Seen { lost: 1, moves: 2 });
        assert_eq!(seen(&probes, at(25)), Seen { lost: 0, moves: 1 });
        // The answer before the operation counts: m, then only b after.
        assert_eq!(seen(&probes, at(15)), Seen { lost: 1, moves: 2 });
    }
}
