//! Planned operations on a pool of real servers (`make bench`,
//! `operations_bench --vm`): what a client loses while the operator drains
//! a real server or reloads a changed weight, the appliance and keepalived
//! side by side. Both need IPVS, which the host's kernel lacks, so this
//! runs in the VM (`operations_bench --pool` inside it).
//!
//! One LAN: the client, a director holding the VIP (LVS-DR, wrr, a TCP
//! check per real server) and three real servers. The client probes the
//! VIP every 5 ms (a new connection, whose first byte names the real
//! server) and holds 50 long-lived connections, each carrying a line every
//! 100 ms that the real server echoes; a connection that gets no echo
//! within 2 s, or an error, is broken. The operation comes once all of
//! them are open; 4 s later the long-lived connections end cleanly, as a
//! drain expects them to.
//! - drain of `rs1`: `appliance drain` (weight 0, out once its connections
//!   ended) beside keepalived's way, the server taken out of the config
//!   and a reload (keepalived has no drain);
//! - reload with `rs1`'s weight changed from 1 to 3: SIGHUP under both;
//! - restart of the director: `kill -9` and a start at once (a crash, or
//!   an upgrade), under both, over the table the killed one left;
//! - switchover to a second director (VRRP, the connection sync daemon
//!   warm): `appliance switchover` beside keepalived's way, a clean stop
//!   (priority 0). The others run on the first director alone, the VIP
//!   added by hand.

use super::director::{self, Daemon, Implementation, Role};
use super::probe::{PROBE_INTERVAL, Probe, Prober};
use super::{Error, kill_all_in};
use crate::netns::{Host, Lan};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const DIRECTOR_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 3);
/// The second director, for the switchover.
const BACKUP_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 4);
const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 100);
/// The port the real servers serve on, the VIP's too.
const PORT: u16 = super::probe::PORT;
/// The real servers: name (what they answer), address.
const SERVERS: [(u8, Ipv4Addr); 3] = [
    (b'1', Ipv4Addr::new(10, 0, 0, 11)),
    (b'2', Ipv4Addr::new(10, 0, 0, 12)),
    (b'3', Ipv4Addr::new(10, 0, 0, 13)),
];
/// The real server the operations change.
const OPERATED: Ipv4Addr = SERVERS[0].1;
/// Long-lived connections the client holds across each operation.
pub const LONG_LIVED: usize = 50;
/// How often a long-lived connection sends a line.
const LINE_INTERVAL: Duration = Duration::from_millis(100);
/// An echo later than this breaks the connection (a dropped packet is
/// sent again within it; a stalled connection is not).
const ECHO_TIMEOUT: Duration = Duration::from_secs(2);
/// From the operation to the long-lived connections' clean end.
const HOLD: Duration = Duration::from_secs(4);
/// Probes in a row answered before the operation.
const STEADY_PROBES: usize = 20;

/// What the operator does to the pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    Drain,
    Reweight,
    Restart,
    Switchover,
}

impl Operation {
    pub const ALL: [Operation; 4] = [
        Operation::Drain,
        Operation::Reweight,
        Operation::Restart,
        Operation::Switchover,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Operation::Drain => "drain of a real server",
            Operation::Reweight => "reload with a changed weight",
            Operation::Restart => "restart of the director",
            Operation::Switchover => "switchover to the other director",
        }
    }

    /// How each implementation does it.
    fn how(self, implementation: &Implementation) -> &'static str {
        match (self, implementation) {
            (Operation::Drain, Implementation::Appliance(_)) => "appliance drain",
            (Operation::Drain, Implementation::Keepalived) => "removed from the config, SIGHUP",
            (Operation::Reweight, _) => "SIGHUP",
            (Operation::Restart, _) => "kill -9, start",
            (Operation::Switchover, Implementation::Appliance(_)) => "appliance switchover",
            (Operation::Switchover, Implementation::Keepalived) => "stop (priority 0)",
        }
    }

    /// The config after the operation (the drain's is keepalived's).
    fn weights(self) -> Vec<(Ipv4Addr, u32)> {
        SERVERS
            .iter()
            .filter(|(_, ip)| self != Operation::Drain || *ip != OPERATED)
            .map(|(_, ip)| {
                let weight = if self == Operation::Reweight && *ip == OPERATED {
                    3
                } else {
                    1
                };
                (*ip, weight)
            })
            .collect()
    }
}

/// The keepalived.conf of the director, under both implementations: the
/// VIP's LVS-DR service over `servers` (address, weight).
pub fn conf(servers: &[(Ipv4Addr, u32)]) -> String {
    "global_defs {\n  router_id pool-bench\n}\n".to_string() + &virtual_server(servers)
}

/// The keepalived.conf of a director of the pair: VRRP holds the VIP, the
/// connection sync daemon follows the instance.
pub fn pair_conf(role: Role, servers: &[(Ipv4Addr, u32)]) -> String {
    format!(
        "global_defs {{\n  router_id pool-{state}\n  lvs_sync_daemon eth0 VI_1\n}}\n\
         vrrp_instance VI_1 {{\n  state {state}\n  interface eth0\n  virtual_router_id 51\n  \
         priority {priority}\n  advert_int 1\n  virtual_ipaddress {{\n    {VIP}/32\n  }}\n}}\n",
        state = role.state,
        priority = role.priority,
    ) + &virtual_server(servers)
}

/// The VIP's LVS-DR service over `servers` (address, weight).
fn virtual_server(servers: &[(Ipv4Addr, u32)]) -> String {
    let mut text = format!(
        "virtual_server {VIP} {PORT} {{\n  delay_loop 1\n  lb_algo wrr\n  \
         lb_kind DR\n  protocol TCP\n"
    );
    for (ip, weight) in servers {
        let _ = write!(
            text,
            "  real_server {ip} {PORT} {{\n    weight {weight}\n    \
             TCP_CHECK {{\n      connect_timeout 1\n    }}\n  }}\n"
        );
    }
    text + "}\n"
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
    /// Probes sent from the operation on that got no answer.
    pub lost: usize,
    /// Long-lived connections that broke.
    pub broken: usize,
}

/// One operation: what the client saw in each trial.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub operation: Operation,
    pub appliance: Vec<Seen>,
    pub keepalived: Vec<Seen>,
}

/// The LAN, its servers, and where the configs go.
struct Pool {
    lan: Lan,
    dir: tempfile::TempDir,
}

impl Pool {
    fn new() -> Result<Self, Error> {
        let mut lan = Lan::new()?;
        lan.add_host("client", &[&format!("{CLIENT_IP}/24")])?;
        lan.add_host("director", &[&format!("{DIRECTOR_IP}/24")])?;
        lan.add_host("backup", &[&format!("{BACKUP_IP}/24")])?;
        for (name, ip) in SERVERS {
            let host = lan.add_host(&format!("rs{}", char::from(name)), &[&format!("{ip}/24")])?;
            // LVS-DR: the VIP on lo, neither answered for in ARP nor used
            // as a source towards the LAN.
            for conf in ["all", "eth0"] {
                host.sysctl(&format!("net.ipv4.conf.{conf}.arp_ignore"), "1")?;
                host.sysctl(&format!("net.ipv4.conf.{conf}.arp_announce"), "2")?;
            }
            host.ip(&["addr", "add", &format!("{VIP}/32"), "dev", "lo"])?;
            serve(host, name)?;
        }
        let dir = tempfile::tempdir().map_err(|source| Error::Io {
            what: "creating a temporary directory".into(),
            source,
        })?;
        Ok(Self { lan, dir })
    }

    fn director(&self) -> &Host {
        self.lan.host("director")
    }

    fn backup(&self) -> &Host {
        self.lan.host("backup")
    }

    fn conf_path(&self) -> PathBuf {
        self.dir.path().join("keepalived.conf")
    }

    fn write_conf(&self, servers: &[(Ipv4Addr, u32)]) -> Result<(), Error> {
        self.write(&self.conf_path(), &conf(servers))
    }

    fn write(&self, path: &std::path::Path, text: &str) -> Result<(), Error> {
        std::fs::write(path, text).map_err(|source| Error::Io {
            what: format!("writing {}", path.display()),
            source,
        })
    }

    /// Both directors as a trial expects them: no daemon, no table, no
    /// VIP, no state of the appliance's last run (a drained server stays
    /// disabled in it).
    fn reset(&self) -> Result<(), Error> {
        for host in [self.director(), self.backup()] {
            kill_all_in(host)?;
            host.run("ipvsadm", &["-C"])?;
            if host.has_address(IpAddr::V4(VIP))? {
                host.ip(&["addr", "del", &format!("{VIP}/32"), "dev", "eth0"])?;
            }
            let state = self.dir.path().join(host.name());
            if state.exists() {
                std::fs::remove_dir_all(&state).map_err(|source| Error::Io {
                    what: format!("removing {}", state.display()),
                    source,
                })?;
            }
        }
        Ok(())
    }

    /// The two directors under `implementation`, the first MASTER (it
    /// preempted the second, which was master alone first), each with the
    /// table and its sync daemon in the role of its instance.
    fn start_pair(
        &self,
        implementation: &Implementation,
        servers: &[(Ipv4Addr, u32)],
    ) -> Result<(Daemon, Daemon), Error> {
        let run_dir = self.dir.path();
        let (master_conf, backup_conf) = (run_dir.join("master.conf"), run_dir.join("backup.conf"));
        self.write(&master_conf, &pair_conf(director::MASTER, servers))?;
        self.write(&backup_conf, &pair_conf(director::BACKUP, servers))?;
        let backup = Daemon::start(implementation, self.backup(), &backup_conf, run_dir)?;
        self.backup()
            .wait_address(IpAddr::V4(VIP), true, Duration::from_secs(15))
            .map_err(|e| backup.failure(e.to_string()))?;
        let master = Daemon::start(implementation, self.director(), &master_conf, run_dir)?;
        self.director()
            .wait_address(IpAddr::V4(VIP), true, Duration::from_secs(15))
            .map_err(|e| master.failure(e.to_string()))?;
        self.backup()
            .wait_address(IpAddr::V4(VIP), false, Duration::from_secs(5))
            .map_err(|e| backup.failure(e.to_string()))?;
        for (host, daemon, role) in [
            (self.director(), &master, "master"),
            (self.backup(), &backup, "backup"),
        ] {
            self.wait_table_in(host, servers, daemon)?;
            let start = Instant::now();
            while !String::from_utf8_lossy(&host.run("ipvsadm", &["-L", "--daemon"])?.stdout)
                .contains(&format!("{role} sync daemon"))
            {
                if start.elapsed() > Duration::from_secs(10) {
                    return Err(daemon.failure(format!("no {role} sync daemon after 10 s")));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Ok((master, backup))
    }

    /// Waits until the backup's IPVS holds `count` established connections
    /// to the VIP, synced from the master.
    fn wait_synced(&self, count: usize, daemon: &Daemon) -> Result<(), Error> {
        let start = Instant::now();
        loop {
            let out = self.backup().run("ipvsadm", &["-Lnc"])?;
            let synced = String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|l| l.contains("ESTABLISHED") && l.contains(&format!(" {VIP}:{PORT} ")))
                .count();
            if synced >= count {
                return Ok(());
            }
            if start.elapsed() > Duration::from_secs(10) {
                return Err(daemon.failure(format!(
                    "{synced} of {count} connections synced to the backup after 10 s"
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `host`'s IPVS destinations, with their weights, as `ipvsadm -Ln`
    /// shows them.
    fn destinations(&self, host: &Host) -> Result<Vec<(Ipv4Addr, u32)>, Error> {
        // The whole table (the only service is the VIP's): the service
        // alone is an error while it is not there yet.
        let out = host.run("ipvsadm", &["-Ln"])?;
        Ok(destinations_in(&String::from_utf8_lossy(&out.stdout)))
    }

    /// Waits until the director's table schedules to `servers`: a drained
    /// server the appliance keeps at weight 0 (while IPVS tracks its
    /// connections) is out.
    fn wait_table(&self, servers: &[(Ipv4Addr, u32)], daemon: &Daemon) -> Result<(), Error> {
        self.wait_table_in(self.director(), servers, daemon)
    }

    /// [`Self::wait_table`] on `host`.
    fn wait_table_in(
        &self,
        host: &Host,
        servers: &[(Ipv4Addr, u32)],
        daemon: &Daemon,
    ) -> Result<(), Error> {
        let start = Instant::now();
        let mut want = servers.to_vec();
        want.sort();
        loop {
            let mut have = self.destinations(host)?;
            have.retain(|(_, weight)| *weight > 0);
            have.sort();
            if have == want {
                return Ok(());
            }
            if start.elapsed() > Duration::from_secs(20) {
                return Err(daemon.failure(format!(
                    "the IPVS table holds {have:?} after 20 s, not {want:?}"
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The real servers `ipvsadm -Ln` lists (`  -> 10.0.0.11:80  Route  1 …`).
fn destinations_in(text: &str) -> Vec<(Ipv4Addr, u32)> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next()? == "->").then_some(())?;
            let address: SocketAddrV4 = words.next()?.parse().ok()?;
            let weight = words.nth(1)?.parse().ok()?;
            Some((*address.ip(), weight))
        })
        .collect()
}

/// A real server in `host` on 0.0.0.0:[`PORT`]: each connection gets
/// `name` (one byte), then its own lines echoed until it closes, on a
/// thread of its own (which inherits the listener's namespace).
fn serve(host: &Host, name: u8) -> Result<(), Error> {
    super::probe::serve(host, move |mut stream| {
        std::thread::spawn(move || {
            use std::io::{Read, Write};
            if stream.write_all(&[name]).is_err() {
                return;
            }
            let mut buf = [0u8; 512];
            while let Ok(n @ 1..) = stream.read(&mut buf) {
                if stream.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        });
    })
}

/// The client's long-lived connections: open, each carrying a numbered
/// line every [`LINE_INTERVAL`] until told to end.
struct LongLived {
    end: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<crate::netns::Result<std::io::Result<Vec<Held>>>>,
}

/// How one long-lived connection went.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Held {
    /// The real server that answered it.
    server: u8,
    /// Why it broke, if it did.
    broken: Option<String>,
}

impl LongLived {
    /// Opens `count` connections to the VIP from `client`; returns once
    /// each has its server's name.
    fn open(client: &Host, count: usize) -> Result<Self, Error> {
        let end = Arc::new(AtomicBool::new(false));
        let (opened, opened_rx) = mpsc::channel();
        let thread = client.enter_background({
            let end = end.clone();
            move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map(|rt| {
                        rt.block_on(async {
                            let target = SocketAddr::from(SocketAddrV4::new(VIP, PORT));
                            let tasks: Vec<_> = (0..count)
                                .map(|_| tokio::spawn(hold(target, end.clone(), opened.clone())))
                                .collect();
                            let mut held = Vec::new();
                            for task in tasks {
                                held.push(task.await.unwrap_or_else(|e| Held {
                                    server: 0,
                                    broken: Some(e.to_string()),
                                }));
                            }
                            held
                        })
                    })
            }
        })?;
        for _ in 0..count {
            match opened_rx.recv_timeout(Duration::from_secs(10)) {
                Ok(Ok(())) => {}
                Ok(Err(why)) => {
                    end.store(true, Ordering::Relaxed);
                    return Err(Error::Io {
                        what: "opening the long-lived connections".into(),
                        source: std::io::Error::other(why),
                    });
                }
                Err(_) => {
                    end.store(true, Ordering::Relaxed);
                    return Err(Error::Io {
                        what: "opening the long-lived connections".into(),
                        source: std::io::Error::other("not all open after 10 s"),
                    });
                }
            }
        }
        Ok(Self { end, thread })
    }

    /// Ends every connection cleanly and says how each went.
    fn end(self) -> Result<Vec<Held>, Error> {
        self.end.store(true, Ordering::Relaxed);
        let joined = self
            .thread
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
        joined.map_err(|source| Error::Io {
            what: "running the long-lived connections".into(),
            source,
        })
    }
}

/// One long-lived connection: its server's name, then a numbered line
/// every [`LINE_INTERVAL`], each echoed within [`ECHO_TIMEOUT`]; at `end`,
/// a last line, its echo, and a clean close.
async fn hold(
    target: SocketAddr,
    end: Arc<AtomicBool>,
    opened: mpsc::Sender<Result<(), String>>,
) -> Held {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let connect = async {
        let mut stream = tokio::net::TcpStream::connect(target).await?;
        let server = stream.read_u8().await?;
        Ok::<_, std::io::Error>((stream, server))
    };
    let (mut stream, server) = match tokio::time::timeout(ECHO_TIMEOUT, connect).await {
        Ok(Ok(connected)) => connected,
        Ok(Err(e)) => {
            let _ = opened.send(Err(e.to_string()));
            return Held {
                server: 0,
                broken: Some(e.to_string()),
            };
        }
        Err(_) => {
            let _ = opened.send(Err("connect timed out".into()));
            return Held {
                server: 0,
                broken: Some("connect timed out".into()),
            };
        }
    };
    let _ = opened.send(Ok(()));
    let mut line = 0u64;
    let broken = loop {
        let last = end.load(Ordering::Relaxed);
        line += 1;
        let text = if last {
            "end\n".to_string()
        } else {
            format!("{line}\n")
        };
        let exchange = async {
            stream.write_all(text.as_bytes()).await?;
            let mut echo = vec![0u8; text.len()];
            stream.read_exact(&mut echo).await?;
            Ok::<_, std::io::Error>(echo == text.as_bytes())
        };
        match tokio::time::timeout(ECHO_TIMEOUT, exchange).await {
            Ok(Ok(true)) => {}
            Ok(Ok(false)) => break Some(format!("line {line}: echoed wrong")),
            Ok(Err(e)) => break Some(format!("line {line}: {e}")),
            Err(_) => break Some(format!("line {line}: no echo within {ECHO_TIMEOUT:?}")),
        }
        if last {
            break stream
                .shutdown()
                .await
                .err()
                .map(|e| format!("closing: {e}"));
        }
        tokio::time::sleep(LINE_INTERVAL).await;
    };
    Held { server, broken }
}

/// Runs each operation for `options.trials` trials per implementation,
/// alternating between them.
pub fn run(options: &Options) -> Result<Vec<Row>, Error> {
    if !options.appliance.exists() {
        return Err(Error::NoAppliance(options.appliance.clone()));
    }
    super::which("keepalived").ok_or(Error::NoKeepalived)?;
    super::which("ipvsadm").ok_or(Error::NoIpvsadm)?;
    let pool = Pool::new()?;
    let implementations = [
        Implementation::Appliance(options.appliance.clone()),
        Implementation::Keepalived,
    ];
    let mut rows = Vec::new();
    for operation in Operation::ALL {
        let [appliance, keepalived] = super::alternate(
            options.trials,
            &implementations,
            |trial, implementation| {
                let one = trial_of(&pool, implementation, operation)?;
                eprintln!(
                    "{}, trial {trial}/{}, {}: {} probe(s) lost, {} of {LONG_LIVED} long-lived connection(s) broken",
                    operation.name(),
                    options.trials,
                    implementation.name(),
                    one.lost,
                    one.broken,
                );
                Ok(one)
            },
        )?;
        rows.push(Row {
            operation,
            appliance,
            keepalived,
        });
    }
    Ok(rows)
}

/// One trial: a fresh daemon on an empty table, the client steady, the
/// operation, the long-lived connections' end.
fn trial_of(
    pool: &Pool,
    implementation: &Implementation,
    operation: Operation,
) -> Result<Seen, Error> {
    let director = pool.director();
    pool.reset()?;
    let before: Vec<(Ipv4Addr, u32)> = SERVERS.iter().map(|(_, ip)| (*ip, 1)).collect();
    let run_dir = pool.dir.path();
    let (mut daemon, other) = if operation == Operation::Switchover {
        let (master, backup) = pool.start_pair(implementation, &before)?;
        (master, Some(backup))
    } else {
        director.ip(&["addr", "add", &format!("{VIP}/32"), "dev", "eth0"])?;
        pool.write_conf(&before)?;
        let daemon = Daemon::start(implementation, director, &pool.conf_path(), run_dir)?;
        pool.wait_table(&before, &daemon)?;
        (daemon, None)
    };
    let trial_error = |what: String| Error::Trial {
        implementation: implementation.name(),
        scenario: operation.name().into(),
        what,
    };
    let prober = Prober::start(pool.lan.host("client"), SocketAddrV4::new(VIP, PORT))?;
    if !wait_steady(&prober) {
        let probes = prober.snapshot();
        let _ = prober.stop();
        return Err(trial_error(format!(
            "the client never got {STEADY_PROBES} answers in a row ({})",
            super::probe::summary(&probes)
        )));
    }
    let held = LongLived::open(pool.lan.host("client"), LONG_LIVED)?;
    if operation == Operation::Switchover {
        pool.wait_synced(LONG_LIVED, &daemon)?;
    }
    let start = Instant::now();
    let after = operation.weights();
    let drain = match (operation, implementation) {
        (Operation::Drain, Implementation::Appliance(bin)) => {
            let socket = run_dir.join(director.name()).join("appliance.sock");
            let mut cmd = director.command(bin);
            cmd.arg("drain")
                .arg(format!("{OPERATED}:{PORT}"))
                .args(["--timeout", "30s", "--socket"])
                .arg(&socket)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            Some(cmd.spawn().map_err(|source| Error::Io {
                what: "appliance drain".into(),
                source,
            })?)
        }
        (Operation::Switchover, Implementation::Appliance(bin)) => {
            let socket = run_dir.join(director.name()).join("appliance.sock");
            let out = director
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
                return Err(daemon.failure(format!(
                    "appliance switchover: {}",
                    String::from_utf8_lossy(&out.stderr)
                )));
            }
            None
        }
        (Operation::Switchover, Implementation::Keepalived) => {
            daemon.terminate()?;
            None
        }
        (Operation::Restart, _) => {
            // Reaped, and keepalived's children gone, before the new one
            // starts.
            daemon.kill()?;
            kill_all_in(director)?;
            daemon = Daemon::start(implementation, director, &pool.conf_path(), run_dir)?;
            None
        }
        _ => {
            pool.write_conf(&after)?;
            daemon.reload()?;
            None
        }
    };
    std::thread::sleep(HOLD.saturating_sub(start.elapsed()));
    let held = held.end()?;
    match drain {
        Some(drain) => {
            let out = drain.wait_with_output().map_err(|source| Error::Io {
                what: "appliance drain".into(),
                source,
            })?;
            let said = String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr);
            if !out.status.success() || !said.contains("no active connection left") {
                let _ = prober.stop();
                return Err(daemon.failure(format!("appliance drain: {said}")));
            }
            // Drained: out of scheduling, as keepalived's reload left it.
            pool.wait_table(&after, &daemon)?;
        }
        None if operation == Operation::Switchover => pool
            .backup()
            .wait_address(IpAddr::V4(VIP), true, Duration::from_secs(5))
            .map(drop)
            .map_err(|e| daemon.failure(e.to_string()))?,
        None => pool.wait_table(&after, &daemon)?,
    }
    // The probes of the settled table too.
    std::thread::sleep(Duration::from_millis(500));
    let probes = prober.snapshot();
    prober.stop()?;
    daemon.stop()?;
    if let Some(other) = other {
        other.stop()?;
    }
    let lost: Vec<String> = probes
        .iter()
        .filter(|p| p.sent >= start && p.answer.is_none())
        .map(|p| format!("+{} ms", (p.sent - start).as_millis()))
        .collect();
    if !lost.is_empty() {
        eprintln!(
            "{}, {}: probes lost at {} (the long-lived connections ended at +{} ms)",
            implementation.name(),
            operation.name(),
            lost.join(", "),
            HOLD.as_millis()
        );
    }
    let broken: Vec<&Held> = held.iter().filter(|h| h.broken.is_some()).collect();
    if !broken.is_empty() {
        eprintln!(
            "{}, {}: broken: {}",
            implementation.name(),
            operation.name(),
            broken
                .iter()
                .map(|h| format!(
                    "rs{} ({})",
                    char::from(h.server),
                    h.broken.as_deref().unwrap_or_default()
                ))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(Seen {
        lost: lost_since(&probes, start),
        broken: broken.len(),
    })
}

/// Waits (up to 5 s) for [`STEADY_PROBES`] answered probes in a row.
fn wait_steady(prober: &Prober) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        let probes = prober.snapshot();
        if probes.len() >= STEADY_PROBES
            && probes
                .iter()
                .rev()
                .take(STEADY_PROBES)
                .all(|p| p.answer.is_some())
        {
            return true;
        }
        std::thread::sleep(PROBE_INTERVAL);
    }
    false
}

/// Probes sent at or after `since` that got no answer.
fn lost_since(probes: &[Probe], since: Instant) -> usize {
    probes
        .iter()
        .filter(|p| p.sent >= since && p.answer.is_none())
        .count()
}

/// The section `make bench` appends to docs/benchmarks.md; `vm` says
/// where it ran.
pub fn table(options: &Options, rows: &[Row], vm: &str) -> String {
    let mut out = format!(
        "## Planned operations on real servers: probes lost, connections broken (in a VM)\n\n\
         Generated by `make bench` (tests/src/bench/pool.rs): IPVS, so in a VM ({vm}). \
         A director holds the VIP (LVS-DR, wrr, a TCP check per real server) over three \
         real servers; the client connects to the VIP every {} ms and holds {LONG_LIVED} \
         long-lived connections, each carrying a line every {} ms that its real server \
         echoes. The operator drains the first real server, changes its weight, \
         restarts the director, or hands the VIP over to a second director (VRRPv2 at \
         1 s, `lvs_sync_daemon` on both, the connections synced before the \
         switchover); {} s later the long-lived \
         connections end cleanly. Each cell is the median (and the worst) over {} trials \
         of the probes lost from the operation on (no answer within 100 ms) and of the \
         long-lived connections broken (no echo within {} s). Goal: 0 and 0 for the \
         appliance.\n\n\
         How each implementation does it:\n\n\
         | operation | appliance | keepalived |\n\
         |---|---|---|\n",
        PROBE_INTERVAL.as_millis(),
        LINE_INTERVAL.as_millis(),
        HOLD.as_secs(),
        options.trials,
        ECHO_TIMEOUT.as_secs(),
    );
    let appliance = Implementation::Appliance(options.appliance.clone());
    let cell = |values: Vec<usize>| {
        let (median, worst) = super::report::median_and_worst(values);
        format!("{median} ({worst})")
    };
    for row in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            row.operation.name(),
            row.operation.how(&appliance),
            row.operation.how(&Implementation::Keepalived),
        );
    }
    out.push_str(
        "\nProbes lost and long-lived connections broken, median (worst):\n\n\
         | operation | appliance lost | appliance broken | keepalived lost | keepalived broken |\n\
         |---|---:|---:|---:|---:|\n",
    );
    for row in rows {
        let cells = |seen: &[Seen]| {
            format!(
                "{} | {}",
                cell(seen.iter().map(|s| s.lost).collect()),
                cell(seen.iter().map(|s| s.broken).collect())
            )
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
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
        let rows: Vec<Row> = Operation::ALL
            .into_iter()
            .map(|operation| Row {
                operation,
                appliance: vec![Seen::default()],
                keepalived: vec![Seen {
                    lost: 41,
                    broken: 50,
                }],
            })
            .collect();
        let text = table(&options, &rows, "a VM");
        let widest = super::super::report::widest_table(&text);
        assert!(widest <= super::super::report::MAX_COLUMNS, "{text}");
        for line in [
            "| restart of the director | kill -9, start | kill -9, start |",
            "| restart of the director | 0 (0) | 0 (0) | 41 (41) | 50 (50) |",
        ] {
            assert!(text.contains(line), "{line}\n{text}");
        }
    }

    #[test]
    fn ipvsadm_destinations_are_read_with_their_weights() {
        let text = "IP Virtual Server version 1.2.1 (size=4096)\n\
                    Prot LocalAddress:Port Scheduler Flags\n\
                    \x20 -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n\
                    TCP  10.0.0.100:80 wrr\n\
                    \x20 -> 10.0.0.11:80                 Route   3      17         0\n\
                    \x20 -> 10.0.0.12:80                 Route   1      16         2\n";
        assert_eq!(
            destinations_in(text),
            [
                (Ipv4Addr::new(10, 0, 0, 11), 3),
                (Ipv4Addr::new(10, 0, 0, 12), 1)
            ]
        );
    }

    #[test]
    fn the_operations_configs_differ_only_in_the_first_server() {
        assert_eq!(
            Operation::Drain.weights(),
            [(SERVERS[1].1, 1), (SERVERS[2].1, 1)]
        );
        assert_eq!(
            Operation::Reweight.weights(),
            [(SERVERS[0].1, 3), (SERVERS[1].1, 1), (SERVERS[2].1, 1)]
        );
        for operation in [Operation::Restart, Operation::Switchover] {
            assert_eq!(operation.weights(), SERVERS.map(|(_, ip)| (ip, 1)));
        }
    }

    #[test]
    fn the_appliance_accepts_the_pool_conf() {
        let dir = tempfile::tempdir().unwrap();
        let texts = Operation::ALL
            .iter()
            .map(|operation| conf(&operation.weights()))
            .chain(
                [director::MASTER, director::BACKUP]
                    .map(|role| pair_conf(role, &Operation::Switchover.weights())),
            );
        for text in texts {
            let path = dir.path().join("keepalived.conf");
            std::fs::write(&path, &text).unwrap();
            if let Err(e) = appliance::config::load_file(&path) {
                panic!("{text}\n{e}");
            }
        }
    }

    #[test]
    fn losses_count_from_the_operation_on() {
        let t0 = Instant::now();
        let probe = |ms, answer| Probe {
            sent: t0 + Duration::from_millis(ms),
            answer,
        };
        let probes = [
            probe(0, None),
            probe(5, Some(b'1')),
            probe(10, None),
            probe(15, Some(b'2')),
        ];
        assert_eq!(lost_since(&probes, t0 + Duration::from_millis(5)), 1);
        assert_eq!(lost_since(&probes, t0), 2);
    }
}
