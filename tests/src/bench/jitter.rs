//! The master's advert timing under pressure (`make bench`, jitter_bench):
//! the appliance and keepalived side by side as master of a VRRPv3 pair
//! advertising every 100 ms, their adverts timed by tcpdump as they leave
//! the master's interface (the kernel's timestamps: what the master did,
//! not the queueing a flood causes on the way), while
//! - nothing else happens (the baseline);
//! - a third host floods the LAN with VRRP packets, 100,000 a second by
//!   default: garbage, bad checksums and other VRIDs (`flood`), and the
//!   same with a quarter of adverts of the master's own VRID at a lower
//!   priority (`flood, lower priority`), which a master answers with an
//!   advert of its own (RFC 5798 §6.4.3: rate-limited here);
//! - the master reloads a config of many virtual servers: parsing it, and
//!   programming the kernel's table over netlink, whose answers are slow
//!   at that size (the appliance's nftables dataplane; keepalived has no
//!   IPVS to program in this kernel, so its reload is the parse alone);
//! - the kernel does not answer netlink at all while a reload's table
//!   waits to be programmed (`stalled netlink`): the appliance built with
//!   its fail points, whose netlink reads hold for the whole window. Only
//!   the appliance: keepalived's netlink cannot be held from outside (its
//!   IPVS work runs in a checker process apart from VRRP anyway).
//!
//! Goal: every interval within ± 20 ms of 100 ms and no transition; with
//! lower-priority adverts, whose answers add adverts between the timed
//! ones, no gap longer than 120 ms and at most one answer per interval.

use super::Error;
use super::director::{self, BACKUP, Daemon, Implementation, MASTER, State};
use crate::adverts::AdvertLog;
use crate::netns::{Host, Lan};
use appliance::vrrp::packet::{Addresses, IpContext, MULTICAST_V4, Packet, Repr, Variant};
use appliance::vrrp::{Centiseconds, Priority, Version, Vrid};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const MASTER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const BACKUP_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const FLOODER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 3);
const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 100);
/// The VRID of [`director::keepalived_conf`].
const VRID: u8 = 51;
const ADVERT: Centiseconds = Centiseconds(10);
/// How far an interval may stray from the advert interval.
pub const TOLERANCE: Duration = Duration::from_millis(20);

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
    pub appliance: PathBuf,
    /// How long each scenario is timed.
    pub window: Duration,
    /// The flood's rate, packets per second.
    pub pps: u64,
    /// Virtual servers in the reloaded config.
    pub services: usize,
    /// The appliance built with its fail points (`--features
    /// failpoints`), for the stalled-netlink row.
    pub stalling: PathBuf,
    /// Whether keepalived runs beside the appliance.
    pub keepalived: bool,
}

/// What happens while the master's adverts are timed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    Idle,
    Flood,
    FloodLower,
    Reload,
    StalledNetlink,
}

impl Scenario {
    pub const ALL: [Scenario; 5] = [
        Scenario::Idle,
        Scenario::Flood,
        Scenario::FloodLower,
        Scenario::Reload,
        Scenario::StalledNetlink,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Idle => "idle",
            Scenario::Flood => "flood",
            Scenario::FloodLower => "flood, lower priority",
            Scenario::Reload => "reload",
            Scenario::StalledNetlink => "stalled netlink",
        }
    }
}

/// The master's adverts in one scenario, as they left its interface.
#[derive(Clone, Debug, PartialEq)]
pub struct Timing {
    pub adverts: usize,
    pub mean: Duration,
    /// The longest time without an advert.
    pub max_gap: Duration,
    /// The 99th percentile and the largest distance of an interval from
    /// the advert interval.
    pub p99_deviation: Duration,
    pub max_deviation: Duration,
}

/// The timing of adverts seen at `times`, against `nominal`.
pub fn timing(times: &[Duration], nominal: Duration) -> Option<Timing> {
    let intervals: Vec<Duration> = times
        .windows(2)
        .map(|w| w[1].saturating_sub(w[0]))
        .collect();
    if intervals.is_empty() {
        return None;
    }
    let mut deviations: Vec<Duration> = intervals.iter().map(|i| i.abs_diff(nominal)).collect();
    deviations.sort();
    let p99 = deviations[(deviations.len() * 99).div_ceil(100).saturating_sub(1)];
    let total: Duration = intervals.iter().sum();
    Some(Timing {
        adverts: times.len(),
        mean: total / u32::try_from(intervals.len()).unwrap_or(u32::MAX),
        max_gap: intervals.iter().copied().max().unwrap_or_default(),
        p99_deviation: p99,
        max_deviation: deviations.last().copied().unwrap_or_default(),
    })
}

/// One row of the table.
#[derive(Clone, Debug)]
pub struct Row {
    pub implementation: &'static str,
    pub scenario: Scenario,
    pub timing: Option<Timing>,
    pub window: Duration,
    /// State changes of either director during the window.
    pub transitions: usize,
    /// The flood's rate reached, the reload's size.
    pub load: String,
}

impl Row {
    /// Whether the row meets the goal of its scenario.
    pub fn meets_goal(&self) -> bool {
        let Some(t) = &self.timing else {
            return false;
        };
        let nominal = Duration::from_millis(u64::from(ADVERT.0) * 10);
        if self.transitions > 0 {
            return false;
        }
        match self.scenario {
            // Answers to lower priorities add adverts: the timed ones must
            // still come on time, and answers be one per interval at most.
            Scenario::FloodLower => {
                let allowed = 2 * (self.window.as_millis() / nominal.as_millis()) as usize + 2;
                t.max_gap <= nominal + TOLERANCE && t.adverts <= allowed
            }
            _ => t.max_deviation <= TOLERANCE,
        }
    }
}

/// The flood's packets, sent in turn: garbage of several lengths, adverts
/// with a bad checksum, adverts of other VRIDs, and (when `lower`) adverts
/// of the master's VRID at priority 1.
pub fn flood_packets(lower: bool) -> Vec<Vec<u8>> {
    let ctx = IpContext::V4 {
        src: FLOODER_IP,
        dst: MULTICAST_V4,
        ttl: 255,
    };
    let advert = |vrid: u8, priority: u8| {
        let repr = Repr {
            vrid: Vrid::new(u32::from(vrid)).expect("a VRID in range"),
            priority: Priority::from_u8(priority),
            variant: Variant::V3 {
                max_adver_int: ADVERT,
            },
            addresses: Addresses::V4(vec![VIP]),
        };
        let mut bytes = vec![0; repr.buffer_len()];
        repr.emit(&mut Packet::new_unchecked(&mut bytes), &ctx)
            .expect("the flood's advert emits");
        bytes
    };
    let mut packets = Vec::new();
    for round in 0u8..4 {
        packets.push(
            (0..(8 + usize::from(round) * 13))
                .map(|i| (i as u8).wrapping_mul(31).wrapping_add(round))
                .collect(),
        );
        let mut bad = advert(VRID, 200);
        bad[6] ^= 0xff;
        packets.push(bad);
        packets.push(advert(VRID + 1 + round, 254));
        if lower {
            packets.push(advert(VRID, 1));
        }
    }
    packets
}

/// Sends `packets` in turn from `host` to the VRRP group at `pps` until
/// `stop`; returns how many went out.
fn flood(
    host: &Host,
    packets: Vec<Vec<u8>>,
    pps: u64,
    stop: Arc<AtomicBool>,
) -> Result<std::thread::JoinHandle<crate::netns::Result<u64>>, Error> {
    Ok(host.enter_background(move || {
        use socket2::{Domain, Protocol, Socket, Type};
        let socket = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(112)))
            .expect("a raw VRRP socket (run as root)");
        socket.set_multicast_ttl_v4(255).expect("multicast TTL");
        socket.set_multicast_loop_v4(false).expect("multicast loop");
        socket
            .set_multicast_if_v4(&FLOODER_IP)
            .expect("multicast interface");
        let to = SocketAddrV4::new(MULTICAST_V4, 0).into();
        let start = Instant::now();
        let mut sent: u64 = 0;
        while !stop.load(Ordering::Relaxed) {
            for packet in &packets {
                // A full queue drops the packet: the rate reached says so.
                if socket.send_to(packet, &to).is_ok() {
                    sent += 1;
                }
            }
            let due =
                u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX) * pps / 1_000_000;
            if sent > due {
                std::thread::sleep(Duration::from_micros((sent - due) * 1_000_000 / pps));
            }
        }
        sent
    })?)
}

/// `count` virtual servers (no checks: the reload's cost is the parse and
/// the kernel's table).
fn services(count: usize) -> String {
    let mut text = String::new();
    for i in 0..count {
        let _ = write!(
            text,
            "virtual_server 10.1.{}.{} 80 {{\n  lb_algo rr\n  lb_kind NAT\n  protocol TCP\n  \
             real_server 10.0.0.10 8080 {{\n    weight 1\n  }}\n}}\n",
            i / 250,
            i % 250 + 1
        );
    }
    text
}

/// Runs every scenario for each implementation.
pub fn run(options: &Options) -> Result<Vec<Row>, Error> {
    if !options.appliance.exists() {
        return Err(Error::NoAppliance(options.appliance.clone()));
    }
    if !options.stalling.exists() {
        return Err(Error::NoStallingAppliance(options.stalling.clone()));
    }
    let mut implementations = vec![Implementation::Appliance(options.appliance.clone())];
    if options.keepalived {
        super::which("keepalived").ok_or(Error::NoKeepalived)?;
        implementations.push(Implementation::Keepalived);
    }
    let mut rows = Vec::new();
    let stalling = [Implementation::Appliance(options.stalling.clone())];
    for scenario in Scenario::ALL {
        let implementations = match scenario {
            Scenario::StalledNetlink => &stalling[..],
            _ => &implementations[..],
        };
        for implementation in implementations {
            let row = trial(options, implementation, scenario)?;
            eprintln!(
                "{} {}: {:?}, {} transition(s), {}",
                row.implementation,
                scenario.name(),
                row.timing,
                row.transitions,
                row.load
            );
            rows.push(row);
        }
    }
    Ok(rows)
}

fn trial(
    options: &Options,
    implementation: &Implementation,
    scenario: Scenario,
) -> Result<Row, Error> {
    let mut lan = Lan::new()?;
    lan.add_host("m", &[&format!("{MASTER_IP}/24")])?;
    lan.add_host("b", &[&format!("{BACKUP_IP}/24")])?;
    lan.add_host("f", &[&format!("{FLOODER_IP}/24")])?;
    let dir = tempfile::tempdir().map_err(|source| Error::Io {
        what: "a directory for the configs".into(),
        source,
    })?;
    // Armed only in the stalled-netlink row (and read only by the build
    // with fail points): m's netlink reads hold while this file exists.
    let stall = dir.path().join("stall");
    let failpoints = format!("dataplane-netlink=hold({})", stall.display());
    let start = |host: &Host, text: String| -> Result<Daemon, Error> {
        let path = dir.path().join(format!("{}.conf", host.name()));
        write(&path, &text)?;
        Daemon::start_env(
            implementation,
            host,
            &path,
            dir.path(),
            &[("FAILPOINTS", &failpoints)],
        )
    };
    let conf = |role| director::keepalived_conf(role, Version::V3, ADVERT, VIP);
    let m = start(lan.host("m"), conf(MASTER))?;
    m.wait_state(State::Master, Duration::from_secs(15))?;
    let b = start(lan.host("b"), conf(BACKUP))?;
    b.wait_state(State::Backup, Duration::from_secs(15))?;
    // Settled: the backup has seen the master for a while.
    std::thread::sleep(Duration::from_secs(2));
    let changes = (m.changes(), b.changes());
    let failed = |e: crate::error::Error| Error::Trial {
        implementation: implementation.name(),
        scenario: scenario.name().into(),
        what: e.to_string(),
    };
    let capture = AdvertLog::start(lan.host("m"), IpAddr::V4(MASTER_IP)).map_err(failed)?;
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let (flooder, load) = match scenario {
        Scenario::Idle => (None, String::new()),
        Scenario::Flood | Scenario::FloodLower => {
            let packets = flood_packets(scenario == Scenario::FloodLower);
            let handle = flood(lan.host("f"), packets, options.pps, stop.clone())?;
            (Some(handle), String::new())
        }
        Scenario::Reload => {
            let path = dir.path().join("m.conf");
            write(&path, &(conf(MASTER) + &services(options.services)))?;
            m.reload()?;
            (None, format!("{} virtual servers", options.services))
        }
        Scenario::StalledNetlink => {
            write(&stall, "")?;
            let path = dir.path().join("m.conf");
            write(&path, &(conf(MASTER) + &services(options.services)))?;
            m.reload()?;
            (
                None,
                format!(
                    "{} virtual servers, kernel silent for the window",
                    options.services
                ),
            )
        }
    };
    std::thread::sleep(options.window);
    stop.store(true, Ordering::Relaxed);
    let times = capture.stop().map_err(failed)?;
    let elapsed = started.elapsed();
    if stall.exists() {
        // The row counts only if the kernel's table really waited.
        let rules = lan
            .host("m")
            .run("nft", &["list", "ruleset"])
            .map_err(|e| m.failure(format!("nft list ruleset: {e}")))?;
        if String::from_utf8_lossy(&rules.stdout).contains("10.1.0.1") {
            return Err(m.failure(
                "the reloaded services reached the kernel: the stall did not hold".into(),
            ));
        }
        std::fs::remove_file(&stall).map_err(|source| Error::Io {
            what: format!("removing {}", stall.display()),
            source,
        })?;
    }
    let load = match flooder {
        Some(handle) => {
            let sent = handle
                .join()
                .map_err(|_| m.failure("the flooder panicked".into()))??;
            format!("{:.0} packets/s", sent as f64 / elapsed.as_secs_f64())
        }
        None => load,
    };
    let transitions = (m.changes() - changes.0) + (b.changes() - changes.1);
    if m.state() != Some(State::Master) || b.state() != Some(State::Backup) {
        eprintln!(
            "{} {}: the pair did not hold: m {:?}, b {:?}\n{}\n{}",
            implementation.name(),
            scenario.name(),
            m.state(),
            b.state(),
            m.failure("master".into()),
            b.failure("backup".into())
        );
    }
    let nominal = Duration::from_millis(u64::from(ADVERT.0) * 10);
    let row = Row {
        implementation: implementation.name(),
        scenario,
        timing: timing(&times, nominal),
        window: elapsed,
        transitions,
        load,
    };
    // A reload may still be programming the kernel: SIGTERM would wait for
    // it. The LAN goes with its namespaces.
    b.stop()?;
    m.kill()?;
    Ok(row)
}

fn write(path: &Path, text: &str) -> Result<(), Error> {
    std::fs::write(path, text).map_err(|source| Error::Io {
        what: format!("writing {}", path.display()),
        source,
    })
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

/// The Markdown section `make bench` appends to docs/benchmarks.md.
pub fn table(options: &Options, rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## Advert timing under pressure\n\n\
         `jitter_bench`: the master of a VRRPv3 pair advertising every 100 ms, \
         its adverts timed by tcpdump as they leave its interface for {} s per \
         row (transitions: of either director); `flood`: a \
         third host sends {} VRRP packets/s (garbage, bad checksums, other VRIDs), \
         `flood, lower priority` adds adverts of the master's VRID at priority 1 \
         (each answered by an advert, at most one per interval here); `reload`: \
         SIGHUP with {} virtual servers added (the appliance parses them and \
         programs nftables, whose netlink answers are slow at that size; \
         keepalived has no IPVS in this kernel); `stalled netlink`: the same \
         reload while the kernel does not answer netlink for the whole window \
         (the appliance built with its fail points holds every netlink read; \
         keepalived's cannot be held from outside, so it has no row). \
         keepalived logs every invalid \
         packet it receives, here to its console, which the bench reads through \
         a pipe to follow its state: at a flood's rate those writes can hold it \
         up, where syslog would drop lines instead. Goal: \
         every interval within ± 20 ms, no transition (with lower priorities: \
         no gap over 120 ms).\n",
        options.window.as_secs(),
        options.pps,
        options.services
    );
    out.push_str(
        "Intervals between the master's adverts, ms:\n\n\
         | scenario | implementation | mean interval | longest gap | p99 deviation | max deviation |\n\
         |---|---|---:|---:|---:|---:|\n",
    );
    for row in rows {
        let [mean, gap, p99, max] = match &row.timing {
            Some(t) => [t.mean, t.max_gap, t.p99_deviation, t.max_deviation].map(ms),
            None => ["-".to_owned(), "-".into(), "-".into(), "-".into()],
        };
        let _ = writeln!(
            out,
            "| {} | {} | {mean} | {gap} | {p99} | {max} |",
            row.scenario.name(),
            row.implementation,
        );
    }
    out.push_str(
        "\nAdverts timed, transitions (of either director), the load and the goal:\n\n\
         | scenario | implementation | adverts | transitions | load | goal |\n\
         |---|---|---:|---:|---|---|\n",
    );
    for row in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            row.scenario.name(),
            row.implementation,
            row.timing.as_ref().map_or(0, |t| t.adverts),
            row.transitions,
            row.load,
            if row.meets_goal() { "met" } else { "MISSED" }
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: &[u64]) -> Vec<Duration> {
        ms.iter().map(|&m| Duration::from_millis(m)).collect()
    }

    #[test]
    fn timing_of_steady_and_late_adverts() {
        let nominal = Duration::from_millis(100);
        let steady = timing(&at(&[0, 100, 200, 300]), nominal).unwrap();
        assert_eq!(steady.adverts, 4);
        assert_eq!(steady.mean, nominal);
        assert_eq!(steady.max_deviation, Duration::ZERO);
        let late = timing(&at(&[0, 100, 250, 300]), nominal).unwrap();
        assert_eq!(late.max_gap, Duration::from_millis(150));
        assert_eq!(late.max_deviation, Duration::from_millis(50));
        assert_eq!(timing(&at(&[5]), nominal), None);
    }

    #[test]
    fn goals_per_scenario() {
        let nominal = Duration::from_millis(100);
        let row = |scenario, times: &[u64], transitions| Row {
            implementation: "appliance",
            scenario,
            timing: timing(&at(times), nominal),
            window: Duration::from_millis(400),
            transitions,
            load: String::new(),
        };
        assert!(row(Scenario::Flood, &[0, 100, 210, 300], 0).meets_goal());
        assert!(!row(Scenario::Flood, &[0, 100, 230, 300], 0).meets_goal());
        assert!(!row(Scenario::Idle, &[0, 100, 200, 300], 1).meets_goal());
        // Answers between the timed adverts: fine while the gaps hold.
        assert!(row(Scenario::FloodLower, &[0, 40, 100, 140, 200, 300], 0).meets_goal());
        assert!(!row(Scenario::FloodLower, &[0, 40, 100, 240, 300], 0).meets_goal());
    }

    #[test]
    fn the_tables_fit_a_page() {
        let options = Options {
            appliance: PathBuf::from("appliance"),
            window: Duration::from_secs(20),
            pps: 100_000,
            services: 300,
            stalling: PathBuf::from("appliance-failpoints"),
            keepalived: true,
        };
        let nominal = Duration::from_millis(100);
        let rows = [
            Row {
                implementation: "appliance",
                scenario: Scenario::Idle,
                timing: timing(&at(&[0, 100, 200, 301]), nominal),
                window: Duration::from_millis(400),
                transitions: 0,
                load: String::new(),
            },
            Row {
                implementation: "keepalived",
                scenario: Scenario::Flood,
                timing: None,
                window: Duration::from_millis(400),
                transitions: 1,
                load: "99468 packets/s".into(),
            },
        ];
        let text = table(&options, &rows);
        let widest = super::super::report::widest_table(&text);
        assert!(widest <= super::super::report::MAX_COLUMNS, "{text}");
        for line in [
            "| idle | appliance | 100.3 | 101.0 | 1.0 | 1.0 |",
            "| flood | keepalived | - | - | - | - |",
            "| idle | appliance | 4 | 0 |  | met |",
            "| flood | keepalived | 0 | 1 | 99468 packets/s | MISSED |",
        ] {
            assert!(text.contains(line), "{line}\n{text}");
        }
    }

    #[test]
    fn the_flood_holds_every_kind() {
        let packets = flood_packets(true);
        assert_eq!(packets.len(), 16);
        // The lower-priority adverts are valid: VRID 51, priority 1.
        let lower = &packets[3];
        let ctx = IpContext::V4 {
            src: FLOODER_IP,
            dst: MULTICAST_V4,
            ttl: 255,
        };
        let repr = Repr::parse(&Packet::new_checked(&lower[..]).unwrap(), &ctx).unwrap();
        assert_eq!((repr.vrid.get(), repr.priority.get()), (VRID, 1));
        let bad = &packets[1];
        assert!(Repr::parse(&Packet::new_checked(&bad[..]).unwrap(), &ctx).is_err());
        assert_eq!(flood_packets(false).len(), 12);
    }
}
