//! The failover benchmark (`make bench`): the appliance and keepalived side
//! by side on one netns LAN, the client's outage when the master's link is
//! cut or the master stops cleanly, for VRRPv2 at 1 s and VRRPv3 at 100 ms.
//!
//! Trials alternate between the implementations so a drift of the machine
//! (load, frequency) weighs on both alike.

pub mod data;
pub mod director;
pub mod jitter;
pub mod operations;
pub mod plot;
pub mod pool;
pub mod probe;
pub mod report;

use crate::netns::{self, Host, Lan};
use appliance::vrrp::machine::{master_down_interval, skew};
use appliance::vrrp::{Centiseconds, Version};
use director::{BACKUP, Daemon, Implementation, MASTER, State};
use probe::{AdvertWatch, Prober};
use report::{Machine, Row, Samples};
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Trials per implementation and scenario when `TRIALS` is not set.
pub const DEFAULT_TRIALS: usize = 10;

const MASTER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const BACKUP_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 3);
const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 100);
/// What each director's server answers.
const MASTER_NAME: u8 = b'm';
const BACKUP_NAME: u8 = b'b';
/// Probes in a row the master must answer before the fault.
const STEADY_PROBES: usize = 20;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Netns(#[from] netns::Error),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{daemon}: {what}; its log ends with:\n{tail}")]
    Daemon {
        daemon: String,
        what: String,
        tail: String,
    },
    #[error(
        "keepalived: not found; install the Debian package keepalived (scripts/install-deps does)"
    )]
    NoKeepalived,
    #[error("ipvsadm: not found; install the Debian package ipvsadm (scripts/install-deps does)")]
    NoIpvsadm,
    #[error("{} is missing: build it with `cargo build --release -p appliance` (make bench does)", .0.display())]
    NoAppliance(PathBuf),
    #[error("{} is missing: the appliance built with its fail points, for the stalled-netlink row: \
             `cargo build --release -p appliance --features failpoints` and copy it there (make bench does)", .0.display())]
    NoStallingAppliance(PathBuf),
    #[error("{implementation}, {scenario}: {what}")]
    Trial {
        implementation: &'static str,
        scenario: String,
        what: String,
    },
}

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
    pub trials: usize,
    /// The release `appliance` binary.
    pub appliance: PathBuf,
}

/// The fault injected into the master.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    LinkCut,
    CleanStop,
}

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Fault::LinkCut => "link cut",
            Fault::CleanStop => "clean stop",
        }
    }
}

/// A VRRP version with its advert interval.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Protocol {
    pub version: Version,
    pub advert: Centiseconds,
}

impl Protocol {
    pub const V2_1S: Protocol = Protocol {
        version: Version::V2,
        advert: Centiseconds(100),
    };
    pub const V3_100MS: Protocol = Protocol {
        version: Version::V3,
        advert: Centiseconds(10),
    };

    pub(super) fn name(self) -> String {
        let version = match self.version {
            Version::V2 => "v2",
            Version::V3 => "v3",
        };
        format!("{version}, {}", ms_text(self.advert_duration()))
    }

    pub(super) fn advert_duration(self) -> Duration {
        Duration::from_micros(self.advert.as_micros())
    }

    /// The protocol's bound on the outage after `fault`, and its formula.
    pub fn bound(self, fault: Fault) -> (Duration, String) {
        let skew = skew(self.version, BACKUP.priority, self.advert);
        match fault {
            Fault::LinkCut => (
                master_down_interval(self.version, BACKUP.priority, self.advert),
                format!(
                    "Master_Down_Interval = 3 × {} + Skew_Time {}",
                    ms_text(self.advert_duration()),
                    ms_text(skew)
                ),
            ),
            Fault::CleanStop => (skew, "Skew_Time".to_string()),
        }
    }
}

fn ms_text(d: Duration) -> String {
    if d.subsec_micros() == 0 && d.as_secs() > 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_secs_f64() * 1000.0)
    }
}

/// The LAN, the client's instruments and the configs, kept for the run.
pub(super) struct Bench {
    lan: Lan,
    adverts: AdvertWatch,
    pub(super) dir: tempfile::TempDir,
}

impl Bench {
    pub(super) fn new() -> Result<Self, Error> {
        let mut lan = Lan::new()?;
        lan.add_host("master", &[&format!("{MASTER_IP}/24")])?;
        lan.add_host("backup", &[&format!("{BACKUP_IP}/24")])?;
        lan.add_host("client", &[&format!("{CLIENT_IP}/24")])?;
        // A namespace inherits the host's IPv4 forwarding. A director that
        // forwards would, right after dropping the VIP, route the client's
        // packets on to the new master once it learns its MAC, hiding
        // part of the outage: the bench measures VRRP, not that.
        for name in ["master", "backup", "client"] {
            lan.host(name).sysctl("net.ipv4.ip_forward", "0")?;
        }
        probe::serve_name(lan.host("master"), MASTER_NAME)?;
        probe::serve_name(lan.host("backup"), BACKUP_NAME)?;
        let adverts = AdvertWatch::start(lan.host("client"), CLIENT_IP)?;
        let dir = tempfile::tempdir().map_err(|source| Error::Io {
            what: "creating a temporary directory".into(),
            source,
        })?;
        Ok(Self { lan, adverts, dir })
    }

    pub(super) fn host(&self, name: &str) -> &Host {
        self.lan.host(name)
    }

    pub(super) fn write_conf(
        &self,
        role: director::Role,
        protocol: Protocol,
    ) -> Result<PathBuf, Error> {
        let path = self.dir.path().join(format!(
            "{}-{}.conf",
            role.state.to_lowercase(),
            protocol.advert.0
        ));
        let text = director::keepalived_conf(role, protocol.version, protocol.advert, VIP);
        std::fs::write(&path, text).map_err(|source| Error::Io {
            what: format!("writing {}", path.display()),
            source,
        })?;
        Ok(path)
    }

    /// Puts the topology back as a trial expects it, whatever the last one
    /// left: link up, no VIP, no daemon, an empty ARP cache on the client.
    pub(super) fn reset(&self) -> Result<(), Error> {
        let master = self.host("master");
        master.restore_link()?;
        for host in [master, self.host("backup")] {
            kill_all_in(host)?;
            if host.has_address(IpAddr::V4(VIP))? {
                host.ip(&["addr", "del", &format!("{VIP}/24"), "dev", "eth0"])?;
            }
        }
        self.host("client")
            .ip(&["neigh", "flush", "dev", "eth0"])
            .map(drop)?;
        // A killed appliance's record of its masters would make the next
        // trial's master resume rather than be elected.
        for name in ["master", "backup"] {
            let record = self.dir.path().join(name).join("vrrp.json");
            if record.exists() {
                std::fs::remove_file(&record).map_err(|source| Error::Io {
                    what: format!("removing {}", record.display()),
                    source,
                })?;
            }
        }
        Ok(())
    }

    /// A master and a backup of `implementation`, elected, the backup
    /// hearing the master.
    pub(super) fn start_pair(
        &self,
        implementation: &Implementation,
        protocol: Protocol,
        confs: &(PathBuf, PathBuf),
    ) -> Result<(Daemon, Daemon), Error> {
        self.reset()?;
        let advert = protocol.advert_duration();
        let (master_host, backup_host) = (self.host("master"), self.host("backup"));
        let run_dir = self.dir.path();
        // The master first, alone, so the election has one outcome; then
        // the backup, which must hear the master before the fault.
        let startup = advert * 4 + Duration::from_secs(5);
        let master = Daemon::start(implementation, master_host, &confs.0, run_dir)?;
        master.wait_state(State::Master, startup)?;
        master_host
            .wait_address(IpAddr::V4(VIP), true, startup)
            .map_err(|e| master.failure(e.to_string()))?;
        let backup = Daemon::start(implementation, backup_host, &confs.1, run_dir)?;
        backup.wait_state(State::Backup, startup)?;
        if self.adverts.next_from(MASTER_IP, advert * 3).is_none() {
            return Err(master.failure("no advert reached the client".into()));
        }
        if backup_host.has_address(IpAddr::V4(VIP))? {
            return Err(backup.failure("holds the VIP while BACKUP".into()));
        }
        Ok((master, backup))
    }

    /// One trial: returns the outage, or `None` if the new master never
    /// answered.
    fn trial(
        &self,
        implementation: &Implementation,
        protocol: Protocol,
        fault: Fault,
        confs: &(PathBuf, PathBuf),
    ) -> Result<Option<Duration>, Error> {
        let (master, backup) = self.start_pair(implementation, protocol, confs)?;
        let advert = protocol.advert_duration();
        let master_host = self.host("master");
        let trial_error = |what: String| Error::Trial {
            implementation: implementation.name(),
            scenario: format!("{}, {}", protocol.name(), fault.name()),
            what,
        };
        let prober = Prober::start(self.host("client"), SocketAddrV4::new(VIP, probe::PORT))?;
        let Some(steady) = prober.wait_steady(MASTER_NAME, STEADY_PROBES, Duration::from_secs(3))
        else {
            let summary = probe::summary(&prober.snapshot());
            let _ = prober.stop();
            return Err(trial_error(format!(
                "the client never got {STEADY_PROBES} answers in a row from the master (probes: {summary})"
            )));
        };
        match fault {
            Fault::LinkCut => {
                // Right after an advert: the backup's timer runs the full
                // Master_Down_Interval, the worst case.
                if self.adverts.next_from(MASTER_IP, advert * 3).is_none() {
                    let _ = prober.stop();
                    return Err(master.failure("no advert reached the client".into()));
                }
                master_host.cut_link()?;
            }
            Fault::CleanStop => master.terminate()?,
        }
        let (bound, _) = protocol.bound(fault);
        let outage = prober.wait_recovery(
            steady,
            MASTER_NAME,
            BACKUP_NAME,
            bound + Duration::from_secs(2),
        );
        if outage.is_none() {
            eprintln!(
                "{}: the backup never answered (probes: {})\n{}",
                implementation.name(),
                probe::summary(&prober.snapshot()),
                backup.failure("log".into()),
            );
        }
        prober.stop()?;
        backup.stop()?;
        // A master whose link was cut is in FAULT; SIGTERM still stops it.
        // After a clean stop it has exited already.
        master.stop()?;
        Ok(outage)
    }
}

/// Runs `trial` (given the trial's number) `trials` times for each of
/// `implementations`, alternating between them so that a drift of the
/// machine weighs on both alike; returns each one's results, in order.
pub(super) fn alternate<T>(
    trials: usize,
    implementations: &[Implementation; 2],
    mut trial: impl FnMut(usize, &Implementation) -> Result<T, Error>,
) -> Result<[Vec<T>; 2], Error> {
    let mut results = [Vec::new(), Vec::new()];
    for number in 1..=trials {
        for (implementation, results) in implementations.iter().zip(results.iter_mut()) {
            results.push(trial(number, implementation)?);
        }
    }
    Ok(results)
}

/// Kills every process left in a director's namespace (a daemon that did
/// not stop, keepalived's children), never this process, and waits until
/// they are gone (a daemon started next would find their lock or pid file).
pub(super) fn kill_all_in(host: &Host) -> Result<(), Error> {
    let me = std::process::id();
    let others = || -> Result<Vec<i32>, Error> {
        let out = std::process::Command::new("ip")
            .args(["netns", "pids", host.netns()])
            .output()
            .map_err(|source| Error::Io {
                what: "ip netns pids".into(),
                source,
            })?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
            .filter(|&p| u32::try_from(p).is_ok_and(|p| p != me))
            .collect())
    };
    for pid in others()? {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let start = Instant::now();
    while !others()?.is_empty() {
        if start.elapsed() > Duration::from_secs(5) {
            return Err(Error::Io {
                what: format!("killing the processes in {}", host.name()),
                source: std::io::Error::other("still there after 5 s"),
            });
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

/// Runs the whole benchmark; returns the table's rows.
pub fn run(options: &Options) -> Result<Vec<Row>, Error> {
    if !options.appliance.exists() {
        return Err(Error::NoAppliance(options.appliance.clone()));
    }
    which("keepalived").ok_or(Error::NoKeepalived)?;
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
        for fault in [Fault::LinkCut, Fault::CleanStop] {
            let (bound, bound_formula) = protocol.bound(fault);
            let mut samples = [Samples::default(), Samples::default()];
            for trial in 1..=options.trials {
                for (implementation, samples) in implementations.iter().zip(samples.iter_mut()) {
                    let started = Instant::now();
                    let outage = bench.trial(implementation, protocol, fault, &confs)?;
                    eprintln!(
                        "{}, {}, trial {trial}/{}, {}: {} (trial took {:.1} s)",
                        protocol.name(),
                        fault.name(),
                        options.trials,
                        implementation.name(),
                        outage.map_or_else(
                            || "no recovery".to_string(),
                            |d| format!("outage {:.1} ms", d.as_secs_f64() * 1000.0)
                        ),
                        started.elapsed().as_secs_f64(),
                    );
                    match outage {
                        Some(d) => samples.outages.push(d),
                        None => samples.lost += 1,
                    }
                }
            }
            let [appliance, keepalived] = samples;
            rows.push(Row {
                protocol: protocol.name(),
                fault: fault.name().into(),
                bound,
                bound_formula,
                appliance,
                keepalived,
            });
        }
    }
    bench.reset()?;
    Ok(rows)
}

pub(super) fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join(program))
        .find(|p| p.is_file())
}

/// Facts about this machine and the two daemons, for the report.
pub fn machine(options: &Options) -> Machine {
    let first_line = |mut cmd: std::process::Command| {
        cmd.output()
            .ok()
            .map(|o| {
                let text = if o.stdout.is_empty() {
                    o.stderr
                } else {
                    o.stdout
                };
                String::from_utf8_lossy(&text)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_string()
            })
            .unwrap_or_else(|| "unknown".into())
    };
    let mut keepalived = std::process::Command::new("keepalived");
    keepalived.arg("--version");
    let mut appliance = std::process::Command::new(&options.appliance);
    appliance.arg("--version");
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, name)| name.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    Machine {
        date: humantime::format_rfc3339_seconds(std::time::SystemTime::now())
            .to_string()
            .chars()
            .take(10)
            .collect(),
        nproc: std::thread::available_parallelism().map_or(0, usize::from),
        cpu,
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map_or_else(|_| "unknown".into(), |k| k.trim().to_string()),
        keepalived: first_line(keepalived),
        appliance: first_line(appliance),
        trials: options.trials,
    }
}

/// Adds `text` at the end of `path` (`make bench`'s docs/benchmarks.md),
/// which must exist.
pub fn append(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trials_alternate_between_the_implementations() {
        let both = [
            Implementation::Appliance(PathBuf::from("appliance")),
            Implementation::Keepalived,
        ];
        let mut order = Vec::new();
        let results = alternate(2, &both, |trial, implementation| {
            order.push((trial, implementation.name()));
            Ok(trial * 10)
        })
        .unwrap();
        assert_eq!(
            order,
            [
                (1, "appliance"),
                (1, "keepalived"),
                (2, "appliance"),
                (2, "keepalived")
            ]
        );
        assert_eq!(results, [vec![10, 20], vec![10, 20]]);
        assert!(alternate(2, &both, |_, _| Err::<(), _>(Error::NoKeepalived)).is_err());
    }

    #[test]
    fn bounds_follow_the_rfcs() {
        let (mdi, _) = Protocol::V2_1S.bound(Fault::LinkCut);
        assert_eq!(mdi, Duration::from_micros(3_609_375));
        let (skew, _) = Protocol::V2_1S.bound(Fault::CleanStop);
        assert_eq!(skew, Duration::from_micros(609_375));
        let (mdi, formula) = Protocol::V3_100MS.bound(Fault::LinkCut);
        assert_eq!(mdi, Duration::from_micros(360_937));
        assert_eq!(
            formula,
            "Master_Down_Interval = 3 × 100 ms + Skew_Time 60.937 ms"
        );
        let (skew, _) = Protocol::V3_100MS.bound(Fault::CleanStop);
        assert_eq!(skew, Duration::from_micros(60_937));
    }

    #[test]
    fn the_appliance_accepts_the_bench_conf() {
        let dir = tempfile::tempdir().unwrap();
        for protocol in [Protocol::V2_1S, Protocol::V3_100MS] {
            for role in [MASTER, BACKUP] {
                let path = dir.path().join("keepalived.conf");
                let text = director::keepalived_conf(role, protocol.version, protocol.advert, VIP);
                std::fs::write(&path, &text).unwrap();
                if let Err(e) = appliance::config::load_file(&path) {
                    panic!("{text}\n{e}");
                }
            }
        }
    }
}
