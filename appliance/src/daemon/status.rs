//! `appliance status`: what the running daemon reports over its local Unix
//! socket, and both ends of that exchange. The protocol is one JSON request
//! line and one JSON response line per connection, typed by the structs
//! here (shared by the daemon and the command).

use crate::check::decision::{DynamicWeight, Outcome};
use crate::clock::Instant;
use crate::vrrp::Priority;
use crate::vrrp::machine::State;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::io::{BufRead, BufReader, Read as _, Write as _};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

/// The default socket, beside the dataplane's record.
pub const DEFAULT_SOCKET: &str = "/run/appliance/appliance.sock";
/// How long either end waits for the other.
const TIMEOUT: Duration = Duration::from_secs(5);
/// Longest request line read.
const MAX_REQUEST: u64 = 4096;

/// What a client asks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case")]
pub enum Request {
    Status,
    /// Read the config again and apply it (as SIGHUP does), answering when
    /// it is applied or why it was rejected. Only root or the daemon's own
    /// user may ask.
    Reload,
    /// Change what the operator sets for a real server (`appliance enable
    /// |disable|drain|weight`): in every virtual server that has it, or in
    /// the one `service` names. Answered once the kernel holds the change
    /// (a drain: once its connections ended or its time ran out). Only
    /// root or the daemon's user may ask.
    Admin {
        real_server: SocketAddr,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        service: Option<String>,
        change: Change,
    },
    /// A planned, make-before-break handover of this director's MASTER
    /// instances (all, or `instance` or the sync group of that name) to
    /// their backups, answered when each has handed over (or no router
    /// took it). Only root or the daemon's user may ask.
    Switchover {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        instance: Option<String>,
        /// The peer to hand over to, among several backups.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<IpAddr>,
    },
    /// Take this director out of a scale-out group: withdraw its BGP
    /// routes, wait until its announced services have no active
    /// connection or see no more packets (at most `timeout_ms`), then
    /// stop the daemon; answered at the stop. Only root or the daemon's
    /// user may ask.
    DrainDirector {
        timeout_ms: u64,
    },
}

/// What an operator changes of a real server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// Back in its pool while its checks pass (ends a drain, keeps an
    /// operator's weight).
    Enable,
    /// Out of its pool at once.
    Disable,
    /// Weight 0 (no new connections), then out once its active
    /// connections ended, or after `timeout_ms`.
    Drain { timeout_ms: u64 },
    /// This weight in place of the configured one; none: the configured
    /// one again.
    Weight { weight: Option<u32> },
}

/// What the daemon answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Response {
    Status(Box<Status>),
    Reloaded {
        summary: String,
    },
    /// What an operator's change did.
    Changed {
        summary: String,
    },
    Error {
        message: String,
    },
}

/// The daemon's state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub node: String,
    /// The daemon's version, process id, config file, and when it started
    /// (wall clock, RFC 3339, UTC).
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub pid: u32,
    #[serde(default)]
    pub config: PathBuf,
    #[serde(default)]
    pub started: String,
    /// The last reload (SIGHUP or `appliance reload`), if any.
    #[serde(default)]
    pub last_reload: Option<ReloadStatus>,
    /// The kernel load balancer programmed ("ipvs", "nftables"); none
    /// until the config has a virtual server.
    #[serde(default)]
    pub dataplane: Option<String>,
    /// Parts of the config that are not running (a VRRP unit that could
    /// not start, a failed dataplane programming, a checker that could not
    /// start), retried until they do.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<FaultStatus>,
    pub instances: Vec<InstanceStatus>,
    pub virtual_servers: Vec<VirtualServerStatus>,
    /// The BGP sessions, with `[bgp]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bgp_peers: Vec<BgpPeerStatus>,
}

/// A BGP session: its peer, its state (`idle`, `connect`, `opensent`,
/// `openconfirm`, `established`, `stopped`), what the peer holds from
/// it, and why it last went down.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BgpPeerStatus {
    pub peer: std::net::SocketAddr,
    pub state: String,
    pub advertised: Vec<ipnet::IpNet>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// A part of the config that is not running.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultStatus {
    /// What: `VRRP unit VI_2`, `dataplane`, `health checker`.
    pub part: String,
    pub error: String,
    /// Failed attempts in a row.
    pub failures: u32,
}

/// How a reload ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadStatus {
    /// Wall clock, RFC 3339.
    pub at: String,
    pub applied: bool,
    /// What changed, or why the new config was rejected.
    pub message: String,
}

/// A VRRP instance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceStatus {
    pub name: String,
    pub vrid: u8,
    pub state: State,
    /// Effective priority (after tracking).
    pub priority: Priority,
    /// Configured priority.
    pub base_priority: Priority,
    /// The interface its adverts go out on.
    #[serde(default)]
    pub interface: String,
    /// Its VIPs as `ADDRESS/LEN dev IFACE` (virtual_ipaddress and
    /// virtual_ipaddress_excluded).
    #[serde(default)]
    pub vips: Vec<String>,
    /// The transition into the current state.
    #[serde(default)]
    pub last_transition: Option<TransitionStatus>,
    /// How long it has been in its state, in milliseconds.
    #[serde(default)]
    pub in_state_ms: Option<u64>,
}

/// A state change of an instance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransitionStatus {
    pub from: State,
    pub to: State,
    pub reason: String,
    /// Wall clock, RFC 3339.
    pub at: String,
}

/// A virtual server and its real servers as the checker sees them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VirtualServerStatus {
    /// The kernel service: `TCP 10.0.0.100:80`, `FWM 5`; or `group NAME`
    /// for a `virtual_server group` (several kernel services).
    pub service: String,
    pub quorum_up: bool,
    pub sorry_server_active: bool,
    /// `ha_suspend`: its checks are held, its address is not on the
    /// director.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspended: bool,
    pub real_servers: Vec<RealServerStatus>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RealServerStatus {
    pub address: SocketAddr,
    pub alive: bool,
    pub weight: u32,
    /// What the operator set: `enabled`, `draining`, `disabled`.
    #[serde(default = "enabled")]
    pub admin: String,
    /// The weight the operator set in place of the configured one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator_weight: Option<u32>,
    pub checks: Vec<CheckStatus>,
    /// What the kernel holds for it (over every kernel service of a
    /// group); absent when the dataplane did not answer in time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections: Option<ConnectionStatus>,
}

/// A real server's connections as the kernel counts them, and with IPVS
/// its traffic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionStatus {
    /// Established TCP connections.
    pub active: u32,
    /// The others: opening, closing, UDP.
    pub inactive: u32,
    /// Counted since it entered the kernel's table, and the rates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic: Option<crate::dataplane::ipvs::listing::Traffic>,
}

impl ConnectionStatus {
    /// Adds the kernel's count for one of its services.
    pub fn add(&mut self, c: &crate::dataplane::Connections) {
        self.active = self.active.saturating_add(c.active);
        self.inactive = self.inactive.saturating_add(c.inactive);
        if let Some(t) = c.traffic {
            let sum = self.traffic.get_or_insert_with(Default::default);
            sum.add(&t);
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckStatus {
    /// keepalived's keyword: `TCP_CHECK`, `HTTP_GET`, `SSL_GET`, `MISC_CHECK`,
    /// `PING_CHECK`, `UDP_CHECK`, `DNS_CHECK`.
    pub kind: String,
    pub up: bool,
    /// The last run, if one completed.
    pub last: Option<LastCheck>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastCheck {
    /// Microseconds since the daemon started.
    pub at: Instant,
    /// The same, as wall clock (RFC 3339).
    #[serde(default)]
    pub wall: String,
    pub up: bool,
    pub result: String,
    /// How long it took (the check's latency), in microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_us: Option<u64>,
}

fn enabled() -> String {
    "enabled".into()
}

/// A check's latency, in the unit that reads best: `850 µs`, `12.5 ms`,
/// `2.00 s`.
pub fn latency(us: u64) -> String {
    match us {
        0..1_000 => format!("{us} µs"),
        1_000..1_000_000 => format!("{:.1} ms", us as f64 / 1e3),
        _ => format!("{:.2} s", us as f64 / 1e6),
    }
}

/// Closes a check's parenthesis, with its latency when known.
fn took(f: &mut fmt::Formatter<'_>, latency_us: Option<u64>) -> fmt::Result {
    match latency_us {
        Some(us) => write!(f, ", took {})", latency(us)),
        None => f.write_str(")"),
    }
}

/// A check's result in words, for the status and the timeline.
pub fn describe(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Up => "check passed".into(),
        Outcome::UpWeighted(DynamicWeight::Configured) => "check passed, configured weight".into(),
        Outcome::UpWeighted(DynamicWeight::Set(w)) => format!("check passed, weight {w}"),
        Outcome::Down(failure) => failure.to_string(),
    }
}

/// ```text
/// node director  appliance 0.1.0  pid 812  up since 2026-12-04 17:06:18 UTC
/// config /etc/appliance/appliance.toml
/// last reload 2026-12-04 17:10:02 UTC: applied (config unchanged)
/// dataplane ipvs
/// VRRP VI_1  vrid 51  MASTER for 3m 12s  priority 100 (base 100)
///   interface eth0  VIPs 10.0.0.100/24 dev eth0
///   since 2026-12-04 17:06:21 UTC: BACKUP -> MASTER (master down: no advert for 3.414967s)
/// TCP 10.0.0.100:80  quorum up
///   10.0.0.11:8080  UP  weight 1  TCP_CHECK up (at 2026-12-04 17:06:20 UTC: check passed)
/// ```
impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node {}", self.node)?;
        if !self.version.is_empty() {
            write!(f, "  appliance {}  pid {}", self.version, self.pid)?;
        }
        if !self.started.is_empty() {
            write!(f, "  up since {}", readable(&self.started))?;
        }
        writeln!(f)?;
        if !self.config.as_os_str().is_empty() {
            writeln!(f, "config {}", self.config.display())?;
        }
        if let Some(reload) = &self.last_reload {
            let outcome = if reload.applied {
                "applied"
            } else {
                "REJECTED"
            };
            writeln!(
                f,
                "last reload {}: {outcome} ({})",
                readable(&reload.at),
                reload
                    .message
                    .trim_end()
                    .replace(":\n", ": ")
                    .replace('\n', "; ")
            )?;
        }
        if let Some(dataplane) = &self.dataplane {
            writeln!(f, "dataplane {dataplane}")?;
        }
        for fault in &self.faults {
            writeln!(
                f,
                "NOT RUNNING {}: {} (failed {} time(s), retrying)",
                fault.part, fault.error, fault.failures
            )?;
        }
        for i in &self.instances {
            write!(f, "VRRP {}  vrid {}  {}", i.name, i.vrid, i.state)?;
            if let Some(ms) = i.in_state_ms {
                write!(f, " for {}", span(ms))?;
            }
            writeln!(f, "  priority {} (base {})", i.priority, i.base_priority)?;
            if !i.interface.is_empty() {
                write!(f, "  interface {}", i.interface)?;
                if !i.vips.is_empty() {
                    write!(f, "  VIPs {}", i.vips.join(", "))?;
                }
                writeln!(f)?;
            }
            if let Some(t) = &i.last_transition {
                writeln!(
                    f,
                    "  since {}: {} -> {} ({})",
                    readable(&t.at),
                    t.from,
                    t.to,
                    t.reason
                )?;
            }
        }
        for vs in &self.virtual_servers {
            write!(
                f,
                "{}  quorum {}",
                vs.service,
                if vs.quorum_up { "up" } else { "down" }
            )?;
            if vs.sorry_server_active {
                f.write_str("  sorry server active")?;
            }
            writeln!(f)?;
            for rs in &vs.real_servers {
                let health = if rs.alive { "UP" } else { "DOWN" };
                write!(f, "  {}  {health}  weight {}", rs.address, rs.weight)?;
                if let Some(weight) = rs.operator_weight {
                    write!(f, " (operator's {weight})")?;
                }
                if rs.admin != "enabled" {
                    write!(f, "  {}", rs.admin.to_uppercase())?;
                }
                if let Some(c) = &rs.connections {
                    write!(f, "  conns {}/{}", c.active, c.inactive)?;
                    if let Some(t) = &c.traffic {
                        write!(f, " (in {} B, out {} B)", t.in_bytes, t.out_bytes)?;
                    }
                }
                for c in &rs.checks {
                    write!(f, "  {} {}", c.kind, if c.up { "up" } else { "down" })?;
                    match &c.last {
                        Some(last) if !last.wall.is_empty() => {
                            write!(f, " (at {}: {}", readable(&last.wall), last.result)?;
                            took(f, last.latency_us)?;
                        }
                        Some(last) => {
                            write!(f, " (at {}: {}", last.at, last.result)?;
                            took(f, last.latency_us)?;
                        }
                        None => f.write_str(" (not run yet)")?,
                    }
                }
                writeln!(f)?;
            }
        }
        for peer in &self.bgp_peers {
            write!(f, "BGP peer {}  {}", peer.peer, peer.state)?;
            if !peer.advertised.is_empty() {
                let prefixes: Vec<String> =
                    peer.advertised.iter().map(ToString::to_string).collect();
                write!(f, "  announcing {}", prefixes.join(", "))?;
            }
            if let Some(error) = &peer.last_error {
                write!(f, "  (last down: {error})")?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

/// An RFC 3339 time as people read it: `2026-12-04 17:06:18 UTC`.
pub(crate) fn readable(rfc3339: &str) -> String {
    match humantime::parse_rfc3339(rfc3339) {
        Ok(time) => format!(
            "{} UTC",
            humantime::format_rfc3339_seconds(time)
                .to_string()
                .trim_end_matches('Z')
                .replacen('T', " ", 1)
        ),
        Err(_) => rfc3339.to_string(),
    }
}

/// A duration in whole units: `45s`, `3m 12s`, `2h 5m`, `4d 1h`.
pub(crate) fn span(ms: u64) -> String {
    let s = ms / 1000;
    let (d, h, m) = (s / 86_400, s / 3600 % 24, s / 60 % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{}s", s % 60),
        (0, 0, m) => format!("{m}m {}s", s % 60),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

/// The wall clock now, as the status and the timeline write it.
pub fn wall_now() -> String {
    wall(std::time::SystemTime::now())
}

/// `time` as RFC 3339 in UTC, to the microsecond.
pub fn wall(time: std::time::SystemTime) -> String {
    humantime::format_rfc3339_micros(time).to_string()
}

/// Asking the daemon failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Nothing listens on the socket: no daemon runs, or it runs with
    /// another `--socket`.
    #[error("no appliance daemon answers at {path} (is it running?)")]
    NotRunning { path: PathBuf },
    #[error(
        "status socket {path}: permission denied (ask as root, the daemon's user or a member of its status_group)"
    )]
    PermissionDenied { path: PathBuf },
    #[error("status socket {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("status socket {path}: bad answer: {source}")]
    Format {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{message}")]
    Refused { message: String },
}

/// Asks the daemon listening on `path` for its status.
pub fn query(path: &Path) -> Result<Status, Error> {
    match ask(path, &Request::Status, TIMEOUT)? {
        Response::Status(status) => Ok(*status),
        other => Err(unexpected(path, other)),
    }
}

/// Asks the daemon listening on `path` to reload its config and waits, up
/// to `timeout`, for the outcome: what changed, or why the config was
/// rejected ([`Error::Refused`]).
pub fn reload(path: &Path, timeout: Duration) -> Result<String, Error> {
    match ask(path, &Request::Reload, timeout)? {
        Response::Reloaded { summary } => Ok(summary),
        other => Err(unexpected(path, other)),
    }
}

/// Asks the daemon listening on `path` to change what the operator sets
/// for `real_server` (in `service`, or wherever it is), waiting up to
/// `timeout` for the answer: what changed, or why it was refused.
pub fn admin(
    path: &Path,
    real_server: SocketAddr,
    service: Option<String>,
    change: Change,
    timeout: Duration,
) -> Result<String, Error> {
    let request = Request::Admin {
        real_server,
        service,
        change,
    };
    match ask(path, &request, timeout)? {
        Response::Changed { summary } => Ok(summary),
        other => Err(unexpected(path, other)),
    }
}

/// Asks the daemon listening on `path` to hand its MASTER instances (or
/// `instance`) over (to peer `to`, if given), waiting up to `timeout` for
/// the outcome.
pub fn switchover(
    path: &Path,
    instance: Option<String>,
    to: Option<IpAddr>,
    timeout: Duration,
) -> Result<String, Error> {
    match ask(path, &Request::Switchover { instance, to }, timeout)? {
        Response::Changed { summary } => Ok(summary),
        other => Err(unexpected(path, other)),
    }
}

/// Asks the daemon at `path` to drain this director (withdraw its BGP
/// routes, wait for its traffic to end or move, at most `timeout`, stop)
/// and returns how it ended.
pub fn drain_director(path: &Path, timeout: Duration) -> Result<String, Error> {
    let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
    // The answer comes at the end of the drain, a little after the
    // deadline at worst.
    let wait = timeout + Duration::from_secs(30);
    match ask(path, &Request::DrainDirector { timeout_ms }, wait)? {
        Response::Changed { summary } => Ok(summary),
        other => Err(unexpected(path, other)),
    }
}

fn unexpected(path: &Path, response: Response) -> Error {
    match response {
        Response::Error { message } => Error::Refused { message },
        other => Error::Refused {
            message: format!(
                "status socket {}: unexpected answer {other:?}",
                path.display()
            ),
        },
    }
}

fn ask(path: &Path, request: &Request, timeout: Duration) -> Result<Response, Error> {
    let io = |source: std::io::Error| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let format = |source| Error::Format {
        path: path.to_path_buf(),
        source,
    };
    let mut stream = std::os::unix::net::UnixStream::connect(path).map_err(|e| {
        use std::io::ErrorKind;
        match e.kind() {
            ErrorKind::NotFound | ErrorKind::ConnectionRefused => Error::NotRunning {
                path: path.to_path_buf(),
            },
            ErrorKind::PermissionDenied => Error::PermissionDenied {
                path: path.to_path_buf(),
            },
            _ => io(e),
        }
    })?;
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(TIMEOUT)).map_err(io)?;
    let mut line = serde_json::to_string(request).map_err(format)?;
    line.push('\n');
    stream.write_all(line.as_bytes()).map_err(io)?;
    let mut answer = String::new();
    BufReader::new(stream.take(64 << 20))
        .read_line(&mut answer)
        .map_err(io)?;
    serde_json::from_str(&answer).map_err(format)
}

/// Binds the daemon's socket, replacing a stale one left by a daemon that
/// died, and creating its directory. The socket is the daemon's alone
/// (0600), or its group's too (0660) when `group` is given: the status
/// tells the config's paths, addresses and real servers.
pub fn bind(path: &Path, group: Option<nix::unistd::Gid>) -> std::io::Result<UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let listener = UnixListener::bind(path)?;
    // Whatever the umask made of it; clients are also checked one by one
    // (`Access`), so the moment before this is no opening.
    let mode = if group.is_some() { 0o660 } else { 0o600 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    if let Some(gid) = group {
        nix::unistd::chown(path, None, Some(gid)).map_err(std::io::Error::from)?;
    }
    Ok(listener)
}

/// Who may do what over the status socket, by the peer's credentials:
/// root and the daemon's own user everything, members of the status group
/// (if any) read the status, anyone else nothing.
#[derive(Clone, Copy, Debug)]
pub struct Access {
    pub owner: u32,
    pub group: Option<u32>,
}

/// What a peer may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Allowed {
    Everything,
    Read,
    Nothing,
}

impl Access {
    fn of(&self, uid: u32, gid: u32, pid: Option<i32>) -> Allowed {
        if uid == 0 || uid == self.owner {
            return Allowed::Everything;
        }
        match self.group {
            Some(group) if gid == group || pid.is_some_and(|p| supplementary(p, group)) => {
                Allowed::Read
            }
            _ => Allowed::Nothing,
        }
    }
}

/// Whether process `pid` has `gid` among its supplementary groups (the
/// socket's credentials carry only the primary one).
fn supplementary(pid: i32, gid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|status| {
        status
            .lines()
            .find_map(|l| l.strip_prefix("Groups:"))
            .is_some_and(|groups| {
                groups
                    .split_whitespace()
                    .any(|g| g.parse::<u32>() == Ok(gid))
            })
    })
}

/// Clients served at once; one more is closed at once. Each holds a
/// descriptor, and idle ones by the thousand must not take those the
/// health checks need.
pub const MAX_CLIENTS: usize = 32;

/// Pause after a failed accept (out of descriptors, say), so it cannot
/// spin the loop.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// What a client asks of the daemon's control loop, with where the
/// answer goes.
#[derive(Debug)]
pub enum Ask {
    Status(oneshot::Sender<Status>),
    /// What changed, or why the config was rejected.
    Reload(oneshot::Sender<Result<String, String>>),
    /// A switchover: what it did, or why not.
    Switchover {
        instance: Option<String>,
        to: Option<IpAddr>,
        reply: oneshot::Sender<Result<String, String>>,
    },
    /// An operator's change of a real server: what it did, or why not.
    Admin {
        real_server: SocketAddr,
        service: Option<String>,
        change: Change,
        reply: oneshot::Sender<Result<String, String>>,
    },
    /// `appliance drain-director`: how the drain ended, or why not.
    DrainDirector {
        timeout: Duration,
        reply: oneshot::Sender<Result<String, String>>,
    },
}

/// Accepts clients; each one's request goes to the control loop as an
/// [`Ask`] and its answer back to the client. At most [`MAX_CLIENTS`] at
/// once, each given [`TIMEOUT`] to ask and to take the answer.
pub(super) async fn serve<E: From<Ask> + Send + 'static>(
    listener: UnixListener,
    sender: mpsc::Sender<E>,
    access: Access,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CLIENTS));
    loop {
        match listener.accept().await {
            Ok((stream, _)) => match slots.clone().try_acquire_owned() {
                Ok(slot) => {
                    let sender = sender.clone();
                    tokio::spawn(async move {
                        answer(stream, sender, access).await;
                        drop(slot);
                    });
                }
                Err(_) => debug!(
                    max = MAX_CLIENTS,
                    "status socket: client refused, too many at once"
                ),
            },
            Err(e) => {
                warn!(error = %e, "status socket: accept failed");
                tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
            }
        }
    }
}

async fn answer<E: From<Ask>>(stream: UnixStream, sender: mpsc::Sender<E>, access: Access) {
    crate::fail_point!("status-connection");
    let allowed = stream
        .peer_cred()
        .map_or(Allowed::Nothing, |c| access.of(c.uid(), c.gid(), c.pid()));
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = tokio::io::BufReader::new(read.take(MAX_REQUEST));
    let response = match tokio::time::timeout(TIMEOUT, reader.read_line(&mut line)).await {
        Ok(Ok(_)) => match respond(&line, allowed, &sender).await {
            Some(response) => response,
            None => return,
        },
        Ok(Err(e)) => {
            debug!(error = %e, "status socket: read failed");
            return;
        }
        Err(_) => return,
    };
    let Ok(mut text) = serde_json::to_string(&response) else {
        return;
    };
    text.push('\n');
    match tokio::time::timeout(TIMEOUT, write.write_all(text.as_bytes())).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => debug!(error = %e, "status socket: write failed"),
        Err(_) => debug!("status socket: the client does not read its answer"),
    }
}

/// The answer to a request `line` from a peer `allowed` so much, asking
/// the control loop through `sender`; none if the loop is gone.
async fn respond<E: From<Ask>>(
    line: &str,
    allowed: Allowed,
    sender: &mpsc::Sender<E>,
) -> Option<Response> {
    let may_change = allowed == Allowed::Everything;
    let asked = |ask: Ask| async move { sender.send(ask.into()).await.ok() };
    Some(match serde_json::from_str::<Request>(line) {
        Ok(_) if allowed == Allowed::Nothing => Response::Error {
            message: "permission denied: only root, the daemon's user and its status_group may ask"
                .into(),
        },
        Ok(Request::Status) => {
            let (tx, rx) = oneshot::channel();
            asked(Ask::Status(tx)).await?;
            Response::Status(Box::new(rx.await.ok()?))
        }
        Ok(Request::Reload) if !may_change => Response::Error {
            message: "reload refused: only root or the daemon's user may ask".into(),
        },
        Ok(Request::Reload) => {
            let (tx, rx) = oneshot::channel();
            asked(Ask::Reload(tx)).await?;
            match rx.await.ok()? {
                Ok(summary) => Response::Reloaded { summary },
                Err(message) => Response::Error { message },
            }
        }
        Ok(Request::Switchover { .. }) if !may_change => Response::Error {
            message: "switchover refused: only root or the daemon's user may ask".into(),
        },
        Ok(Request::Switchover { instance, to }) => {
            let (reply, rx) = oneshot::channel();
            asked(Ask::Switchover {
                instance,
                to,
                reply,
            })
            .await?;
            match rx.await.ok()? {
                Ok(summary) => Response::Changed { summary },
                Err(message) => Response::Error { message },
            }
        }
        Ok(Request::Admin { .. }) if !may_change => Response::Error {
            message: "change refused: only root or the daemon's user may ask".into(),
        },
        Ok(Request::Admin {
            real_server,
            service,
            change,
        }) => {
            let (reply, rx) = oneshot::channel();
            asked(Ask::Admin {
                real_server,
                service,
                change,
                reply,
            })
            .await?;
            match rx.await.ok()? {
                Ok(summary) => Response::Changed { summary },
                Err(message) => Response::Error { message },
            }
        }
        Ok(Request::DrainDirector { .. }) if !may_change => Response::Error {
            message: "drain-director refused: only root or the daemon's user may ask".into(),
        },
        Ok(Request::DrainDirector { timeout_ms }) => {
            let (reply, rx) = oneshot::channel();
            asked(Ask::DrainDirector {
                timeout: Duration::from_millis(timeout_ms),
                reply,
            })
            .await?;
            match rx.await.ok()? {
                Ok(summary) => Response::Changed { summary },
                Err(message) => Response::Error { message },
            }
        }
        Err(e) => Response::Error {
            message: format!("bad request: {e}"),
        },
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::check::decision::Failure;

    /// A master with one real server down (its TCP check timed out).
    pub(crate) fn sample() -> Status {
        Status {
            node: "director".into(),
            version: "0.1.0".into(),
            pid: 812,
            config: PathBuf::from("/etc/appliance/appliance.toml"),
            started: "2026-12-04T17:06:18.000000Z".into(),
            last_reload: Some(ReloadStatus {
                at: "2026-12-04T17:10:02.500000Z".into(),
                applied: false,
                message: "invalid config:\nx.toml:3:1: unknown field `prio`\n".into(),
            }),
            dataplane: Some("ipvs".into()),
            faults: vec![FaultStatus {
                part: "VRRP unit VI_2".into(),
                error: "no interface named eth9".into(),
                failures: 3,
            }],
            instances: vec![InstanceStatus {
                name: "VI_1".into(),
                vrid: 51,
                state: State::Master,
                priority: Priority::from_u8(100),
                base_priority: Priority::from_u8(100),
                interface: "eth0".into(),
                vips: vec!["10.0.0.100/24 dev eth0".into()],
                last_transition: Some(TransitionStatus {
                    from: State::Backup,
                    to: State::Master,
                    reason: "master down: no advert for 3.414967s".into(),
                    at: "2026-12-04T17:06:21.414967Z".into(),
                }),
                in_state_ms: Some(192_400),
            }],
            virtual_servers: vec![VirtualServerStatus {
                service: "TCP 10.0.0.100:80".into(),
                quorum_up: true,
                sorry_server_active: false,
                suspended: false,
                real_servers: vec![RealServerStatus {
                    address: "10.0.0.11:8080".parse().unwrap(),
                    alive: false,
                    weight: 1,
                    admin: "enabled".into(),
                    operator_weight: None,
                    connections: Some(ConnectionStatus {
                        active: 2,
                        inactive: 5,
                        traffic: None,
                    }),
                    checks: vec![CheckStatus {
                        kind: "TCP_CHECK".into(),
                        up: false,
                        last: Some(LastCheck {
                            at: Instant::from_micros(3_000_000),
                            wall: "2026-12-04T17:06:21.000000Z".into(),
                            up: false,
                            result: describe(&Outcome::Down(Failure::Timeout)),
                            latency_us: Some(3_000_412),
                        }),
                    }],
                }],
            }],
            bgp_peers: Vec::new(),
        }
    }

    #[test]
    fn bgp_sessions_render_with_what_they_announce_and_why_they_last_went_down() {
        let status = Status {
            faults: Vec::new(),
            last_reload: None,
            instances: Vec::new(),
            virtual_servers: Vec::new(),
            bgp_peers: vec![
                BgpPeerStatus {
                    peer: "10.0.1.1:179".parse().unwrap(),
                    state: "established".into(),
                    advertised: vec![
                        "10.0.0.100/32".parse().unwrap(),
                        "10.0.0.101/32".parse().unwrap(),
                    ],
                    last_error: None,
                },
                BgpPeerStatus {
                    peer: "10.0.1.2:179".parse().unwrap(),
                    state: "idle".into(),
                    advertised: Vec::new(),
                    last_error: Some("connection closed: closed by the peer".into()),
                },
            ],
            ..sample()
        };
        let text = status.to_string();
        assert!(
            text.ends_with(
                "dataplane ipvs\n\
                 BGP peer 10.0.1.1:179  established  announcing 10.0.0.100/32, 10.0.0.101/32\n\
                 BGP peer 10.0.1.2:179  idle  (last down: connection closed: closed by the peer)\n"
            ),
            "{text}"
        );
        let json = serde_json::to_string(&status).unwrap();
        let back: Status = serde_json::from_str(&json).unwrap();
        assert_eq!(back, status);
    }

    #[test]
    fn renders_as_text() {
        assert_eq!(
            sample().to_string(),
            "node director  appliance 0.1.0  pid 812  up since 2026-12-04 17:06:18 UTC\n\
             config /etc/appliance/appliance.toml\n\
             last reload 2026-12-04 17:10:02 UTC: REJECTED (invalid config: x.toml:3:1: unknown field `prio`)\n\
             dataplane ipvs\n\
             NOT RUNNING VRRP unit VI_2: no interface named eth9 (failed 3 time(s), retrying)\n\
             VRRP VI_1  vrid 51  MASTER for 3m 12s  priority 100 (base 100)\n\
             \x20 interface eth0  VIPs 10.0.0.100/24 dev eth0\n\
             \x20 since 2026-12-04 17:06:21 UTC: BACKUP -> MASTER (master down: no advert for 3.414967s)\n\
             TCP 10.0.0.100:80  quorum up\n\
             \x20 10.0.0.11:8080  DOWN  weight 1  conns 2/5  TCP_CHECK down (at 2026-12-04 17:06:21 UTC: timed out, took 3.00 s)\n"
        );
    }

    #[test]
    fn latencies_read_in_the_unit_that_fits() {
        assert_eq!(latency(850), "850 µs");
        assert_eq!(latency(12_460), "12.5 ms");
        assert_eq!(latency(3_000_412), "3.00 s");
    }

    #[test]
    fn spans_read_in_whole_units() {
        assert_eq!(span(999), "0s");
        assert_eq!(span(45_000), "45s");
        assert_eq!(span(192_400), "3m 12s");
        assert_eq!(span(7_500_000), "2h 5m");
        assert_eq!(span(90_000_000), "1d 1h");
    }

    #[test]
    fn request_and_response_are_one_json_line_each() {
        assert_eq!(
            serde_json::to_string(&Request::Status).unwrap(),
            r#"{"request":"status"}"#
        );
        assert_eq!(
            serde_json::to_string(&Request::Reload).unwrap(),
            r#"{"request":"reload"}"#
        );
        let response = Response::Status(Box::new(sample()));
        let text = serde_json::to_string(&response).unwrap();
        assert!(!text.contains('\n'));
        assert!(
            text.starts_with(r#"{"status":{"node":"director""#),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<Response>(&text).unwrap(), response);
    }

    /// A daemon's half: answers status with [`sample`] and reloads with
    /// `reload`'s outcome.
    async fn serve_sample(path: &Path, reload: Result<String, String>) {
        let listener = bind(path, None).unwrap();
        let (sender, mut events) = mpsc::channel(4);
        let access = Access {
            owner: nix::unistd::geteuid().as_raw(),
            group: None,
        };
        tokio::spawn(serve(listener, sender, access));
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                match event {
                    Ask::Status(reply) => {
                        let _ = reply.send(sample());
                    }
                    Ask::Reload(reply) => {
                        let _ = reply.send(reload.clone());
                    }
                    Ask::Admin {
                        real_server,
                        service,
                        change,
                        reply,
                    } => {
                        let _ = reply.send(Ok(format!("{real_server} {service:?} {change:?}")));
                    }
                    Ask::Switchover {
                        instance, reply, ..
                    } => {
                        let _ = reply.send(Err(format!("{instance:?} is not MASTER")));
                    }
                    Ask::DrainDirector { timeout, reply } => {
                        let _ = reply.send(Ok(format!("drained within {timeout:?}")));
                    }
                }
            }
        });
    }

    #[test]
    fn peers_get_what_their_credentials_allow() {
        let access = Access {
            owner: 998,
            group: Some(4),
        };
        assert_eq!(access.of(0, 0, None), Allowed::Everything);
        assert_eq!(access.of(998, 998, None), Allowed::Everything);
        assert_eq!(access.of(1000, 4, None), Allowed::Read);
        assert_eq!(access.of(1000, 1000, None), Allowed::Nothing);
        let alone = Access {
            owner: 998,
            group: None,
        };
        assert_eq!(alone.of(1000, 4, None), Allowed::Nothing);
        // Supplementary groups come from /proc: this process's own.
        let me = std::process::id() as i32;
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let groups = status
            .lines()
            .find_map(|l| l.strip_prefix("Groups:"))
            .unwrap_or_default();
        if let Some(gid) = groups.split_whitespace().next() {
            let gid: u32 = gid.parse().unwrap();
            let access = Access {
                owner: 998,
                group: Some(gid),
            };
            assert_eq!(access.of(1000, 1000, Some(me)), Allowed::Read);
        }
        assert!(!supplementary(me, 4_000_000));
    }

    #[tokio::test]
    async fn the_socket_is_the_daemons_alone_or_its_groups() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("appliance.sock");
        let _alone = bind(&path, None).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let gid = nix::unistd::getegid();
        let _shared = bind(&path, Some(gid)).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o660);
        assert_eq!(meta.gid(), gid.as_raw());
    }

    #[tokio::test]
    async fn serves_a_client_over_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/appliance.sock");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "stale").unwrap();
        serve_sample(&path, Ok("config unchanged".into())).await;
        let query_path = path.clone();
        let got = tokio::task::spawn_blocking(move || query(&query_path))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, sample());
        let reloaded = tokio::task::spawn_blocking(move || reload(&path, TIMEOUT))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(reloaded, "config unchanged");
    }

    #[tokio::test]
    async fn drain_director_goes_to_the_daemon_with_its_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("appliance.sock");
        serve_sample(&path, Ok(String::new())).await;
        let answer =
            tokio::task::spawn_blocking(move || drain_director(&path, Duration::from_secs(90)))
                .await
                .unwrap()
                .unwrap();
        assert_eq!(answer, "drained within 90s");
        assert_eq!(
            serde_json::to_string(&Request::DrainDirector { timeout_ms: 1500 }).unwrap(),
            r#"{"request":"drain_director","timeout_ms":1500}"#
        );
    }

    #[tokio::test]
    async fn an_operators_change_goes_to_the_daemon_and_its_answer_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("appliance.sock");
        serve_sample(&path, Ok(String::new())).await;
        let rs: SocketAddr = "10.0.0.11:8080".parse().unwrap();
        let answer = tokio::task::spawn_blocking(move || {
            admin(
                &path,
                rs,
                Some("TCP 10.0.0.100:80".into()),
                Change::Drain { timeout_ms: 1500 },
                TIMEOUT,
            )
        })
        .await
        .unwrap()
        .unwrap();
        assert_eq!(
            answer,
            "10.0.0.11:8080 Some(\"TCP 10.0.0.100:80\") Drain { timeout_ms: 1500 }"
        );
        assert_eq!(
            serde_json::to_string(&Request::Admin {
                real_server: rs,
                service: None,
                change: Change::Weight { weight: Some(3) },
            })
            .unwrap(),
            r#"{"request":"admin","real_server":"10.0.0.11:8080","change":{"weight":{"weight":3}}}"#
        );
    }

    /// Only root and the daemon's user change anything: a member of the
    /// status group reads the status, and is refused a change (or a
    /// reload) with the reason, without the daemon hearing of it.
    #[tokio::test]
    async fn a_reader_is_refused_a_change() {
        let (sender, mut events) = mpsc::channel::<Ask>(4);
        let request = serde_json::to_string(&Request::Admin {
            real_server: "10.0.0.11:8080".parse().unwrap(),
            service: None,
            change: Change::Disable,
        })
        .unwrap();
        for (allowed, message) in [
            (
                Allowed::Read,
                "change refused: only root or the daemon's user may ask",
            ),
            (
                Allowed::Nothing,
                "permission denied: only root, the daemon's user and its status_group may ask",
            ),
        ] {
            let refused = respond(&request, allowed, &sender).await;
            assert_eq!(
                refused,
                Some(Response::Error {
                    message: message.into()
                })
            );
        }
        for request in [
            r#"{"request":"reload"}"#,
            r#"{"request":"switchover"}"#,
            r#"{"request":"drain_director","timeout_ms":1000}"#,
        ] {
            let refused = respond(request, Allowed::Read, &sender).await;
            assert!(
                matches!(refused, Some(Response::Error { .. })),
                "{refused:?}"
            );
        }
        assert!(events.try_recv().is_err(), "the daemon heard of it");
    }

    #[tokio::test]
    async fn a_rejected_reload_comes_back_as_its_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("appliance.sock");
        serve_sample(&path, Err("invalid config: x.toml:1:1: bad".into())).await;
        let err = tokio::task::spawn_blocking(move || reload(&path, TIMEOUT))
            .await
            .unwrap()
            .unwrap_err();
        assert!(matches!(err, Error::Refused { .. }), "{err:?}");
        assert_eq!(err.to_string(), "invalid config: x.toml:1:1: bad");
    }

    #[test]
    fn no_daemon_is_said_so_naming_the_socket_once() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.sock");
        let err = query(&missing).unwrap_err();
        assert!(matches!(err, Error::NotRunning { .. }), "{err:?}");
        let text = crate::logging::chain(&err);
        assert_eq!(text.matches("none.sock").count(), 1, "{text}");
        assert!(text.contains("is it running?"), "{text}");
        // A socket file nobody listens on (a daemon that was killed).
        let stale = dir.path().join("stale.sock");
        drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
        assert!(matches!(query(&stale), Err(Error::NotRunning { .. })));
    }
}
