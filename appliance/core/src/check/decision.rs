//! The health-check decision core, sans-IO: which probe runs when, and what
//! each probe's outcome does to its real server (up, down, weight), to its
//! virtual server's quorum and to the sorry server. Pure: the driver feeds
//! outcomes with `now` and gets [`Action`]s back; no clock, socket or
//! thread here. Every rule follows keepalived's checker (check_api.c,
//! check_data.c, check_tcp.c, check_misc.c, ipwrapper.c) and says so.
//!
//! Its input is its own ([`VirtualPlan`], [`RealPlan`], [`Timing`]): the
//! daemon's planner (`appliance::check::plan`) builds them from the config
//! and keeps the notify programs, which the core only names.

use crate::clock::Instant;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// keepalived's BOOTSTRAP_DELAY: every checker's first run waits one second
/// after start (plus its random warmup).
pub const BOOTSTRAP_DELAY: Duration = Duration::from_secs(1);

/// Index of a virtual server: its position in the config's `virtual_server`
/// list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VsId(pub u32);

/// Index of a real server across all virtual servers, in config order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RsId(pub u32);

/// Index of one check (probe) across all real servers, in config order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProbeId(pub u32);

/// Index of one `FILE_CHECK` across all real servers, in config order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId(pub u32);

/// Why a probe failed. Small and `Copy` so a status view can keep the last
/// one of every check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// No answer within the timeout (connect, TLS, request or response, or
    /// a script that ran too long).
    Timeout,
    /// The connection failed (refused, unreachable...).
    Connect(std::io::ErrorKind),
    /// The TLS handshake failed.
    Tls,
    /// The answer had another status code than expected.
    Status(u16),
    /// The body's MD5 differs from `digest`.
    Digest,
    /// The body does not match `regex` (or matches it, with
    /// `regex_no_match`).
    Regex,
    /// The answer is not HTTP or was cut short.
    BadResponse,
    /// A UDP_CHECK's reply does not match `require_reply` (or its length
    /// bounds).
    Reply,
    /// A DNS_CHECK's answer has this error rcode (SERVFAIL, REFUSED...).
    Rcode(u8),
    /// The check program exited with this code (1, or 2..=255 without
    /// `misc_dynamic`).
    Exit(i32),
    /// A signal ended the check program.
    Signal(i32),
    /// A FILE_CHECK's tracked file holds this value, which fails it.
    TrackFile(i64),
    /// The check program could not be started (or, for a half-open
    /// TCP_CHECK, the prober that sends its SYN is gone; for a PING_CHECK,
    /// the raw socket was refused: no CAP_NET_RAW).
    NotStarted,
    /// The director could not run the check: its own resources ran out.
    /// Says nothing of the real server, so it changes nothing (see
    /// [`Checker::probe_done`]).
    Local(LocalFault),
}

/// A resource of the director's that a check needed and did not get.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LocalFault {
    /// No file descriptor (EMFILE, ENFILE).
    Descriptors,
    /// No memory or buffer space (ENOMEM, ENOBUFS).
    Memory,
    /// No process or local port (EAGAIN: fork's limit, or every
    /// ephemeral port in use).
    Exhausted,
    /// The probe's own code panicked: a bug of the director's, logged
    /// with where it happened.
    Panicked,
}

impl LocalFault {
    /// A stable short name, to count by.
    pub fn name(self) -> &'static str {
        match self {
            Self::Descriptors => "descriptors",
            Self::Memory => "memory",
            Self::Exhausted => "exhausted",
            Self::Panicked => "panic",
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Timeout => f.write_str("timed out"),
            Failure::Connect(kind) => write!(f, "connect failed: {kind}"),
            Failure::Tls => f.write_str("TLS handshake failed"),
            Failure::Status(code) => write!(f, "unexpected status {code}"),
            Failure::Digest => f.write_str("body digest mismatch"),
            Failure::Regex => f.write_str("body regex mismatch"),
            Failure::BadResponse => f.write_str("malformed or truncated answer"),
            Failure::Reply => f.write_str("reply does not match require_reply"),
            Failure::Rcode(code) => write!(f, "DNS answer with rcode {code}"),
            Failure::Exit(code) => write!(f, "exited with {code}"),
            Failure::Signal(sig) => write!(f, "killed by signal {sig}"),
            Failure::TrackFile(value) => write!(f, "tracked file holds {value}"),
            Failure::NotStarted => f.write_str("could not start"),
            Failure::Local(LocalFault::Panicked) => f.write_str(
                "not run: the check panicked (the director's fault, not the real server's)",
            ),
            Failure::Local(fault) => write!(
                f,
                "not run: the director is out of {} (its fault, not the real server's)",
                match fault {
                    LocalFault::Descriptors => "file descriptors",
                    LocalFault::Memory => "memory",
                    LocalFault::Exhausted | LocalFault::Panicked => "processes or local ports",
                }
            ),
        }
    }
}

/// A weight set by a `misc_dynamic` MISC_CHECK.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DynamicWeight {
    /// Exit 0: back to the configured weight.
    Configured,
    /// Exit 2..=255: the exit code minus 2.
    Set(u32),
}

/// What one probe run found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Up,
    /// Up, and the weight is set (`misc_dynamic`).
    UpWeighted(DynamicWeight),
    Down(Failure),
}

impl Outcome {
    pub fn is_up(&self) -> bool {
        !matches!(self, Outcome::Down(_))
    }
}

/// What the operator set for a real server, over what its checks find
/// (`appliance enable|disable|drain|weight`). The checks go on whatever it
/// is, so the status still tells the server's health.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Admin {
    #[serde(default)]
    pub mode: Mode,
    /// A weight in place of the configured (or `misc_dynamic`) one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
}

/// Whether the operator lets a real server take connections.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// In the pool while its checks pass.
    #[default]
    Enabled,
    /// Kept in the pool with weight 0 (as `inhibit_on_failure` keeps a
    /// failed server): its connections go on, no new ones come. The driver
    /// disables it once they have ended.
    Draining,
    /// Out of the pool, whatever its checks find.
    Disabled,
}

impl Mode {
    /// A stable word, for the status and the log.
    pub fn name(self) -> &'static str {
        match self {
            Self::Enabled => "enabled",
            Self::Draining => "draining",
            Self::Disabled => "disabled",
        }
    }
}

/// Something a `notify_*` / `quorum_*` program is run for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotifyTarget {
    /// The real server's `notify_up`.
    RsUp(RsId),
    /// The real server's `notify_down`.
    RsDown(RsId),
    /// The virtual server's `quorum_up`.
    QuorumUp(VsId),
    /// The virtual server's `quorum_down`.
    QuorumDown(VsId),
}

/// What the driver must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Run `probe` at `at` (and report its outcome to
    /// [`Checker::probe_done`]). A probe has at most one pending schedule.
    Schedule { probe: ProbeId, at: Instant },
    /// A real server's health or effective weight changed.
    Server { rs: RsId, alive: bool, weight: u32 },
    /// The operator changed a real server's [`Admin`]; `weight` is what it
    /// now weighs in its pool (0 while draining, down or out).
    Admin { rs: RsId, admin: Admin, weight: u32 },
    /// The virtual server gained or lost its quorum: the summed weight of
    /// its live real servers against the threshold that was crossed.
    Quorum {
        vs: VsId,
        up: bool,
        weight_sum: u64,
        threshold: i64,
    },
    /// The sorry server entered (`active`) or left the pool.
    SorryServer { vs: VsId, active: bool },
    /// The virtual server's destinations changed: read [`Checker::pool`].
    /// At most one per virtual server per call.
    Pool { vs: VsId },
    /// Run this notify program (the planner keeps the programs).
    Notify(NotifyTarget),
}

/// A destination the dataplane should hold for a virtual server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Destination {
    pub address: SocketAddr,
    /// IPVS weight; 0 keeps the server but sends it no new connections
    /// (`inhibit_on_failure`, or a `misc_dynamic` weight of 0).
    pub weight: u32,
}

/// A probe's timing parameters, from its check block and virtual server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// `delay_loop`: time between runs.
    pub delay_loop: Duration,
    /// `retry`: failed attempts tolerated before a failure counts.
    pub retry: u32,
    /// `delay_before_retry`: pause before each retry.
    pub delay_before_retry: Duration,
    /// `warmup`: upper bound of the random delay before the first run.
    pub warmup: Duration,
    /// keepalived times MISC_CHECK's next run from when the script started
    /// (check_misc.c `last_ran`), network checks from when they finished.
    pub from_start: bool,
}

/// A virtual server as the checker sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VirtualPlan {
    /// keepalived's `quorum`: the live weight the pool needs.
    pub quorum: u32,
    /// keepalived's `hysteresis` around the quorum.
    pub hysteresis: u32,
    pub sorry_server: Option<SocketAddr>,
    /// Checks start failed: no real server is in until its checks pass.
    pub alpha: bool,
    /// The notifies run at shutdown as if every server went down.
    pub omega: bool,
    /// Whether a `quorum_up` program is configured.
    pub quorum_up: bool,
    /// Whether a `quorum_down` program is configured.
    pub quorum_down: bool,
    /// keepalived's `ha_suspend`: the probes run only while this address
    /// is on one of the director's interfaces.
    pub suspend_without: Option<IpAddr>,
    pub real_servers: Vec<RealPlan>,
}

/// A real server as the checker sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RealPlan {
    pub address: SocketAddr,
    /// The configured weight.
    pub weight: u32,
    /// `inhibit_on_failure`: a failed server stays in with weight 0.
    pub inhibit: bool,
    /// Whether a `notify_up` program is configured.
    pub notify_up: bool,
    /// Whether a `notify_down` program is configured.
    pub notify_down: bool,
    /// Each check's timing, in config order.
    pub checks: Vec<Timing>,
    /// Its `FILE_CHECK`s, in config order: no probes, the driver feeds
    /// each tracked file's value ([`Checker::file_value`]).
    pub files: Vec<FileRule>,
    /// What the operator set (kept by the driver across reloads).
    pub admin: Admin,
}

/// keepalived's `FILE_CHECK`: what a tracked file's value does to its real
/// server (check_file.c, track_file.c
/// `process_update_checker_track_file_status`). With weight 0, a non-zero
/// value (a zero one with `reverse`) is a failed check; otherwise value ×
/// weight (negated with `reverse`) is added to the server's weight, which
/// stays within 0..=2³¹−1, and only a product of −2³¹ or less fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileRule {
    pub weight: i32,
    pub reverse: bool,
}

impl FileRule {
    /// The weight change a value makes; `None` when it fails the check.
    fn effect(self, value: i64) -> Option<i64> {
        if self.weight == 0 {
            return ((value != 0) == self.reverse).then_some(0);
        }
        let sign = if self.reverse { -1 } else { 1 };
        let product = i128::from(value) * i128::from(self.weight) * sign;
        let product = product.clamp(i128::from(i32::MIN), i128::from(i32::MAX));
        (product > i128::from(i32::MIN)).then(|| i64::try_from(product).unwrap_or_default())
    }
}

/// The last outcome of a probe, for status views.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LastOutcome {
    pub at: Instant,
    pub outcome: Outcome,
}

#[derive(Clone, Debug)]
struct ProbeState {
    rs: RsId,
    timing: Timing,
    /// keepalived's `checker->is_up`.
    is_up: bool,
    /// keepalived's `checker->has_run`: the first outcome is decisive.
    has_run: bool,
    /// keepalived's `retry_it`: failed attempts in the current series.
    retry_it: u32,
    /// When the pending run was due (MISC_CHECK's `last_ran`).
    due: Instant,
    last: Option<LastOutcome>,
}

#[derive(Clone, Copy, Debug)]
struct FileState {
    rs: RsId,
    check: FileRule,
    /// No value was fed yet: the first one is the start state, which
    /// keepalived sets without notifying.
    fed: bool,
    /// Whether the value fails the check.
    failed: bool,
    /// keepalived's `cur_weight`: what the value adds to the weight.
    adjust: i64,
}

#[derive(Clone, Debug)]
struct RsState {
    vs: VsId,
    address: SocketAddr,
    /// Configured weight (keepalived's `iweight`).
    configured_weight: u32,
    /// keepalived's `effective_weight` (changed by `misc_dynamic`).
    weight: u32,
    inhibit: bool,
    alive: bool,
    admin: Admin,
    /// keepalived's `num_failed_checkers`.
    failed: u32,
    notify_up: bool,
    notify_down: bool,
    probes: std::ops::Range<u32>,
    files: std::ops::Range<u32>,
    /// The sum of its FILE_CHECKs' `adjust`.
    file_adjust: i64,
}

#[derive(Clone, Debug)]
struct VsState {
    quorum: u32,
    hysteresis: u32,
    sorry_server: Option<SocketAddr>,
    alpha: bool,
    omega: bool,
    notify_quorum_up: bool,
    notify_quorum_down: bool,
    quorum_up: bool,
    sorry_active: bool,
    suspend_without: Option<IpAddr>,
    /// Its probes are held: `suspend_without` is not on the director.
    suspended: bool,
    servers: std::ops::Range<u32>,
}

/// Indexes of a reload's real servers, probes and file checks, each with
/// the one of the previous checker it continues.
#[derive(Default)]
struct Pairs {
    servers: Vec<(usize, usize)>,
    probes: Vec<(usize, usize)>,
    files: Vec<(usize, usize)>,
}

/// The checker of every real server of a config.
#[derive(Clone, Debug)]
pub struct Checker {
    vss: Vec<VsState>,
    rss: Vec<RsState>,
    probes: Vec<ProbeState>,
    files: Vec<FileState>,
}

/// A config the checker cannot index (more than `u32::MAX` entries).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("too many {what} for the checker ({count})")]
pub struct TooMany {
    pub what: &'static str,
    pub count: usize,
}

fn index(what: &'static str, count: usize) -> Result<u32, TooMany> {
    u32::try_from(count).map_err(|_| TooMany { what, count })
}

/// Collects actions, folding repeated `Pool` marks into one per virtual
/// server.
struct Out<'a> {
    actions: &'a mut Vec<Action>,
}

impl Out<'_> {
    fn push(&mut self, action: Action) {
        if let Action::Pool { vs } = action
            && self.actions.contains(&Action::Pool { vs })
        {
            return;
        }
        self.actions.push(action);
    }
}

impl Checker {
    /// Builds the checker for `servers` and starts it at `now`. `draw(max)`
    /// returns a random duration in `0..=max` for each probe's warmup (a
    /// parameter so tests are deterministic).
    ///
    /// Initial state, as keepalived (check_data.c, ipwrapper.c
    /// `init_service_rs`/`init_service_vs`):
    /// - without `alpha` every check starts up, so every real server is in
    ///   the pool; with `alpha` every check starts failed, so no real server
    ///   is (an `inhibit_on_failure` one is, with weight 0) until its checks
    ///   pass. A real server without checks is always up.
    /// - the first outcome of a check is decisive: its first failure takes
    ///   the server down without retries (`retry_it = retry`).
    /// - the quorum starts up if the live weight reaches `quorum +
    ///   hysteresis`; if it starts down and there is a sorry server, the
    ///   sorry server goes in and `quorum_down` runs.
    /// - each probe first runs after [`BOOTSTRAP_DELAY`] plus a random part
    ///   of its `warmup`, so checks of many servers do not start together.
    pub fn start(
        servers: &[VirtualPlan],
        now: Instant,
        draw: impl FnMut(Duration) -> Duration,
    ) -> Result<(Self, Vec<Action>), TooMany> {
        let mut checker = Self::build(servers, now, draw)?;
        let carried = vec![false; checker.vss.len()];
        let actions = checker.initial_actions(&carried, now)?;
        Ok((checker, actions))
    }

    /// The checker for `servers` after a reload: a virtual server `i` for
    /// which `carry[i]` names one of `previous` with the same plan keeps
    /// that one's state (its servers' health and weights, its quorum and
    /// sorry server, its probes' verdicts, retries and schedule: a probe
    /// overdue, or cut short by the reload, runs at `now`), and nothing
    /// is announced for it but its pool. The others start as
    /// [`Checker::start`] starts them. A reload that leaves a virtual
    /// server alone thus neither restarts its checks nor puts a failed
    /// server back in its pool.
    pub fn resume(
        servers: &[VirtualPlan],
        previous: &Checker,
        carry: &[Option<VsId>],
        now: Instant,
        draw: impl FnMut(Duration) -> Duration,
    ) -> Result<(Self, Vec<Action>), TooMany> {
        let mut checker = Self::build(servers, now, draw)?;
        let mut carried = vec![false; checker.vss.len()];
        for (index, from) in carry.iter().enumerate().take(checker.vss.len()) {
            if let Some(from) = from {
                carried[index] = checker.carry(index, previous, *from);
            }
        }
        let actions = checker.initial_actions(&carried, now)?;
        Ok((checker, actions))
    }

    /// Takes over the state of `previous`'s virtual server `from` for
    /// virtual server `index`, if their shapes (servers, addresses, checks
    /// and their timings) are the same; whether it did.
    fn carry(&mut self, index: usize, previous: &Checker, from: VsId) -> bool {
        let Some(pairs) = self.pairs(index, previous, from) else {
            return false;
        };
        for (n, o) in pairs.servers {
            let (Some(old), Some(new)) = (previous.rss.get(o), self.rss.get_mut(n)) else {
                continue;
            };
            new.weight = old.weight;
            new.alive = old.alive;
            new.failed = old.failed;
            new.file_adjust = old.file_adjust;
        }
        for (n, o) in pairs.files {
            if let (Some(old), Some(new)) = (previous.files.get(o), self.files.get_mut(n)) {
                *new = *old;
            }
        }
        for (n, o) in pairs.probes {
            let (Some(old), Some(new)) = (previous.probes.get(o), self.probes.get_mut(n)) else {
                continue;
            };
            new.is_up = old.is_up;
            new.has_run = old.has_run;
            new.retry_it = old.retry_it;
            new.due = old.due;
            new.last = old.last;
        }
        if let (Some(new), Some(old)) = (self.vss.get_mut(index), previous.vss.get(from.0 as usize))
        {
            new.quorum_up = old.quorum_up;
            new.sorry_active = old.sorry_active;
        }
        true
    }

    /// Each real server and probe of virtual server `index` with its
    /// counterpart in `previous`'s `from`, if the two have the same shape:
    /// the same servers (address, configured weight) with the same checks
    /// (timings), in the same order.
    fn pairs(&self, index: usize, previous: &Checker, from: VsId) -> Option<Pairs> {
        let new = self.vss.get(index)?;
        let old = previous.vss.get(from.0 as usize)?;
        if new.servers.len() != old.servers.len() {
            return None;
        }
        let mut pairs = Pairs::default();
        for (n, o) in new.servers.clone().zip(old.servers.clone()) {
            let (new_rs, old_rs) = (self.rss.get(n as usize)?, previous.rss.get(o as usize)?);
            if new_rs.address != old_rs.address
                || new_rs.configured_weight != old_rs.configured_weight
                || new_rs.probes.len() != old_rs.probes.len()
                || new_rs.files.len() != old_rs.files.len()
            {
                return None;
            }
            for (nf, of) in new_rs.files.clone().zip(old_rs.files.clone()) {
                if self.files.get(nf as usize)?.check != previous.files.get(of as usize)?.check {
                    return None;
                }
                pairs.files.push((nf as usize, of as usize));
            }
            for (np, op) in new_rs.probes.clone().zip(old_rs.probes.clone()) {
                let same = self.probes.get(np as usize)?.timing
                    == previous.probes.get(op as usize)?.timing;
                if !same {
                    return None;
                }
                pairs.probes.push((np as usize, op as usize));
            }
            pairs.servers.push((n as usize, o as usize));
        }
        Some(pairs)
    }

    /// Every server and probe of `servers` in its initial state (see
    /// [`Checker::start`]), nothing announced yet.
    fn build(
        servers: &[VirtualPlan],
        now: Instant,
        mut draw: impl FnMut(Duration) -> Duration,
    ) -> Result<Self, TooMany> {
        let mut vss = Vec::with_capacity(servers.len());
        let mut rss = Vec::new();
        let mut probes = Vec::new();
        let mut files = Vec::new();
        for (vs_index, vs) in servers.iter().enumerate() {
            let vs_id = VsId(index("virtual servers", vs_index)?);
            let first_rs = index("real servers", rss.len())?;
            for rs in &vs.real_servers {
                let rs_id = RsId(index("real servers", rss.len())?);
                let first_probe = index("checks", probes.len())?;
                for &timing in &rs.checks {
                    probes.push(ProbeState {
                        rs: rs_id,
                        timing,
                        is_up: !vs.alpha,
                        has_run: false,
                        retry_it: timing.retry,
                        due: now + BOOTSTRAP_DELAY + draw(timing.warmup).min(timing.warmup),
                        last: None,
                    });
                }
                let probes_end = index("checks", probes.len())?;
                let first_file = index("file checks", files.len())?;
                files.extend(rs.files.iter().map(|&check| FileState {
                    rs: rs_id,
                    check,
                    fed: false,
                    failed: false,
                    adjust: 0,
                }));
                let files_end = index("file checks", files.len())?;
                let mut state = rs_state(vs_id, vs, rs, first_probe..probes_end);
                state.files = first_file..files_end;
                rss.push(state);
            }
            let last_rs = index("real servers", rss.len())?;
            vss.push(VsState {
                quorum: vs.quorum,
                hysteresis: vs.hysteresis,
                sorry_server: vs.sorry_server,
                alpha: vs.alpha,
                omega: vs.omega,
                notify_quorum_up: vs.quorum_up,
                notify_quorum_down: vs.quorum_down,
                quorum_up: false,
                sorry_active: false,
                suspend_without: vs.suspend_without,
                // The driver says which addresses the director has
                // before any probe is due.
                suspended: false,
                servers: first_rs..last_rs,
            });
        }
        Ok(Self {
            vss,
            rss,
            probes,
            files,
        })
    }

    /// The actions that announce a checker just built: each virtual
    /// server's quorum (not for a `carried` one, whose quorum was
    /// announced before) and pool, and every probe's first run.
    fn initial_actions(&mut self, carried: &[bool], now: Instant) -> Result<Vec<Action>, TooMany> {
        let mut actions = Vec::new();
        let mut out = Out {
            actions: &mut actions,
        };
        for i in 0..self.vss.len() {
            let vs = VsId(index("virtual servers", i)?);
            if !carried.get(i).copied().unwrap_or(false) {
                let (sum, _) = self.weight_sum(vs);
                let Some(state) = self.vss.get_mut(i) else {
                    continue;
                };
                // ipwrapper.c set_quorum_states().
                state.quorum_up = i64::try_from(sum).unwrap_or(i64::MAX)
                    >= i64::from(state.quorum) + i64::from(state.hysteresis);
                self.update_quorum(vs, true, &mut out);
            }
            out.push(Action::Pool { vs });
        }
        for (i, probe) in self.probes.iter().enumerate() {
            out.push(Action::Schedule {
                probe: ProbeId(index("checks", i)?),
                at: probe.due.max(now),
            });
        }
        Ok(actions)
    }

    /// Number of probes (ids are `0..probe_count()`).
    pub fn probe_count(&self) -> usize {
        self.probes.len()
    }

    /// The real server a probe checks.
    pub fn probe_server(&self, probe: ProbeId) -> Option<RsId> {
        self.probes.get(probe.0 as usize).map(|p| p.rs)
    }

    /// The virtual server a real server belongs to.
    pub fn server_vs(&self, rs: RsId) -> Option<VsId> {
        self.rss.get(rs.0 as usize).map(|r| r.vs)
    }

    /// A real server's address.
    pub fn server_address(&self, rs: RsId) -> Option<SocketAddr> {
        self.rss.get(rs.0 as usize).map(|r| r.address)
    }

    /// The probes (checks) of a real server.
    pub fn server_probes(&self, rs: RsId) -> impl Iterator<Item = ProbeId> + use<> {
        let range = self
            .rss
            .get(rs.0 as usize)
            .map_or(0..0, |r| r.probes.clone());
        range.map(ProbeId)
    }

    /// Number of file checks (ids are `0..file_count()`).
    pub fn file_count(&self) -> usize {
        self.files.len()
    }

    /// A file check's real server, and whether its value fails it.
    pub fn file_state(&self, file: FileId) -> Option<(RsId, bool)> {
        self.files.get(file.0 as usize).map(|f| (f.rs, f.failed))
    }

    /// The FILE_CHECKs of a real server.
    pub fn server_files(&self, rs: RsId) -> impl Iterator<Item = FileId> + use<> {
        let range = self
            .rss
            .get(rs.0 as usize)
            .map_or(0..0, |r| r.files.clone());
        range.map(FileId)
    }

    /// Feeds the value a FILE_CHECK's tracked file holds now (keepalived's
    /// `process_update_checker_track_file_status`):
    /// - a value that fails the check ([`FileRule`]) counts as a failed
    ///   check: the server is down while any of its checks is, and its
    ///   file's weight change is dropped;
    /// - one that passes a failed check counts as its success, with the
    ///   value's weight change;
    /// - otherwise the server's weight moves by the change, as
    ///   `misc_dynamic` moves it (`update_svr_wgt`).
    ///
    /// The first value fed is the start state: a server it takes down
    /// runs no `notify_down` (keepalived reads the files before its
    /// checkers start).
    pub fn file_value(&mut self, file: FileId, value: i64) -> Vec<Action> {
        let mut actions = Vec::new();
        let mut out = Out {
            actions: &mut actions,
        };
        let Some(f) = self.files.get_mut(file.0 as usize) else {
            return actions;
        };
        let first = !std::mem::replace(&mut f.fed, true);
        let effect = f.check.effect(value);
        let (rs_id, was_failed, old_adjust) = (f.rs, f.failed, f.adjust);
        let (failed, adjust) = match effect {
            Some(adjust) => (false, adjust),
            None => (true, 0),
        };
        if failed == was_failed && adjust == old_adjust {
            return actions;
        }
        f.failed = failed;
        f.adjust = adjust;
        let Some(rs) = self.rss.get_mut(rs_id.0 as usize) else {
            return actions;
        };
        let before = rs.effective_weight();
        rs.file_adjust += adjust - old_adjust;
        let (vs, alive, weight) = (rs.vs, rs.alive, rs.effective_weight());
        if failed != was_failed {
            let failed_before = rs.failed;
            rs.failed = if failed {
                rs.failed + 1
            } else {
                rs.failed.saturating_sub(1)
            };
            // The server's state follows its first failed check and its
            // last recovered one.
            if (failed && failed_before == 0) || (!failed && failed_before == 1) {
                self.perform_server_state(rs_id, !failed, !first, &mut out);
                return actions;
            }
        }
        if weight != before {
            out.push(Action::Server {
                rs: rs_id,
                alive,
                weight,
            });
            if alive {
                out.push(Action::Pool { vs });
            }
            self.update_quorum(vs, false, &mut out);
        }
        actions
    }

    /// Number of real servers (ids are `0..server_count()`).
    pub fn server_count(&self) -> usize {
        self.rss.len()
    }

    /// Number of virtual servers (ids are `0..vs_count()`).
    pub fn vs_count(&self) -> usize {
        self.vss.len()
    }

    /// The real servers of a virtual server.
    pub fn vs_servers(&self, vs: VsId) -> impl Iterator<Item = RsId> + use<> {
        let range = self
            .vss
            .get(vs.0 as usize)
            .map_or(0..0, |v| v.servers.clone());
        range.map(RsId)
    }

    /// A real server's health and effective weight.
    pub fn server_state(&self, rs: RsId) -> Option<(bool, u32)> {
        self.rss
            .get(rs.0 as usize)
            .map(|r| (r.alive, r.effective_weight()))
    }

    /// What the operator set for a real server.
    pub fn admin(&self, rs: RsId) -> Option<Admin> {
        self.rss.get(rs.0 as usize).map(|r| r.admin)
    }

    /// The real servers at `address`, in every virtual server.
    pub fn servers_at(&self, address: SocketAddr) -> impl Iterator<Item = RsId> + '_ {
        self.rss
            .iter()
            .enumerate()
            .filter(move |(_, rs)| rs.address == address)
            .filter_map(|(i, _)| u32::try_from(i).ok().map(RsId))
    }

    /// The operator sets `rs`'s [`Admin`]: its pool and quorum follow at
    /// once (a disabled server is out and not live; a draining one stays
    /// in with weight 0; an operator's weight replaces the configured
    /// one), its checks go on, and no notify runs (they tell health, which
    /// did not change). Nothing happens if it is already so.
    pub fn set_admin(&mut self, rs_id: RsId, admin: Admin) -> Vec<Action> {
        let mut actions = Vec::new();
        let mut out = Out {
            actions: &mut actions,
        };
        let Some(rs) = self.rss.get_mut(rs_id.0 as usize) else {
            return actions;
        };
        if rs.admin == admin {
            return actions;
        }
        rs.admin = admin;
        let vs = rs.vs;
        let weight = if admin.mode == Mode::Disabled || !rs.alive {
            0
        } else {
            rs.serving_weight()
        };
        out.push(Action::Admin {
            rs: rs_id,
            admin,
            weight,
        });
        out.push(Action::Pool { vs });
        self.update_quorum(vs, false, &mut out);
        actions
    }

    /// The director's addresses are now those `present` says it has
    /// (keepalived's `update_checker_activity`): a virtual server with
    /// `ha_suspend` is suspended while its address is missing. Returns
    /// the virtual servers that changed, each with whether it is now
    /// suspended.
    pub fn addresses_changed(&mut self, present: impl Fn(IpAddr) -> bool) -> Vec<(VsId, bool)> {
        let mut changed = Vec::new();
        for (i, vs) in self.vss.iter_mut().enumerate() {
            let Some(address) = vs.suspend_without else {
                continue;
            };
            let suspended = !present(address);
            if suspended != vs.suspended {
                vs.suspended = suspended;
                changed.push((VsId(i as u32), suspended));
            }
        }
        changed
    }

    /// Whether some virtual server has `ha_suspend`.
    pub fn suspends(&self) -> bool {
        self.vss.iter().any(|v| v.suspend_without.is_some())
    }

    /// Whether a virtual server's probes are held (`ha_suspend`).
    pub fn is_suspended(&self, vs: VsId) -> bool {
        self.vss.get(vs.0 as usize).is_some_and(|v| v.suspended)
    }

    /// A probe that came due: `None` if it is to run, or, when its
    /// virtual server is suspended, the schedule of its next turn one
    /// `delay_loop` on. A held probe is neither a success nor a failure:
    /// its real server keeps its state and its retry count (keepalived
    /// leaves the checker's state as it was).
    pub fn hold_if_suspended(&mut self, probe: ProbeId, now: Instant) -> Option<Action> {
        let p = self.probes.get_mut(probe.0 as usize)?;
        let vs = self.rss.get(p.rs.0 as usize)?.vs;
        if !self.vss.get(vs.0 as usize)?.suspended {
            return None;
        }
        p.due = now + p.timing.delay_loop;
        Some(Action::Schedule { probe, at: p.due })
    }

    /// A probe's current verdict (keepalived's `is_up`) and last outcome.
    pub fn probe_state(&self, probe: ProbeId) -> Option<(bool, Option<LastOutcome>)> {
        self.probes.get(probe.0 as usize).map(|p| (p.is_up, p.last))
    }

    /// Whether the virtual server has its quorum, and whether its sorry
    /// server is in the pool.
    pub fn quorum_state(&self, vs: VsId) -> Option<(bool, bool)> {
        self.vss
            .get(vs.0 as usize)
            .map(|v| (v.quorum_up, v.sorry_active))
    }

    /// The destinations the dataplane should hold for `vs` (ipwrapper.c
    /// `perform_svr_state`, `perform_quorum_state`):
    /// - a live real server, with its effective weight, unless the sorry
    ///   server is in (keepalived then takes live servers out and leaves
    ///   real-server changes unapplied until the quorum is back); the
    ///   operator's weight replaces it, a draining server weighs 0, a
    ///   disabled one is out whatever else holds;
    /// - a real server that is not in that way but has
    ///   `inhibit_on_failure`, with weight 0 (kept, no new connections);
    /// - the sorry server while active, with weight 1 (keepalived's default
    ///   weight), once even if it is also a real server.
    pub fn pool(&self, vs: VsId) -> Vec<Destination> {
        let Some(state) = self.vss.get(vs.0 as usize) else {
            return Vec::new();
        };
        let mut out: Vec<Destination> = self
            .servers_of(state)
            .filter_map(|rs| {
                if rs.admin.mode == Mode::Disabled {
                    None
                } else if rs.alive && !state.sorry_active {
                    Some(Destination {
                        address: rs.address,
                        weight: rs.serving_weight(),
                    })
                } else if rs.inhibit {
                    Some(Destination {
                        address: rs.address,
                        weight: 0,
                    })
                } else {
                    None
                }
            })
            .collect();
        if let Some(sorry) = state.sorry_server.filter(|_| state.sorry_active) {
            out.retain(|d| d.address != sorry);
            out.push(Destination {
                address: sorry,
                weight: 1,
            });
        }
        out
    }

    /// Feeds the outcome of `probe`'s run, completed at `now`. Returns the
    /// consequences, always ending with the probe's next [`Action::Schedule`].
    ///
    /// Rules (keepalived's check_tcp.c `tcp_epilog`, check_misc.c, and
    /// ipwrapper.c `update_svr_checker_state`):
    /// - a `misc_dynamic` weight applies first, whatever the check's state:
    ///   a changed effective weight is reported, changes the pool if the
    ///   server is live, and may move the quorum (`update_svr_wgt`);
    /// - a success resets the retry series; if the check was down (or had
    ///   not run) it is up again at once: one success is enough;
    /// - a failure while the check is up (or has not run) starts or
    ///   continues a retry series: the first `retry` failures only bring
    ///   the next run forward to `delay_before_retry`; the one after takes
    ///   the check down. A check that is already down is not retried: it
    ///   is probed every `delay_loop` until it passes;
    /// - a real server is down as soon as one of its checks is down, and up
    ///   again when the last failed one passes;
    /// - in `alpha` mode a first failure runs `notify_down` (the start
    ///   state was never announced);
    /// - the next run is `delay_loop` (or `delay_before_retry` inside a
    ///   retry series) after the run finished; MISC_CHECK counts from when
    ///   the run was due, never earlier than `now`.
    pub fn probe_done(&mut self, probe: ProbeId, outcome: Outcome, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        let mut out = Out {
            actions: &mut actions,
        };
        let Some(p) = self.probes.get_mut(probe.0 as usize) else {
            return actions;
        };
        p.last = Some(LastOutcome { at: now, outcome });
        let rs = p.rs;
        let timing = p.timing;
        let started = p.due;
        if let Outcome::Down(Failure::Local(_)) = outcome {
            // The director's fault: neither a failure nor a success of the
            // real server. Its state and retry count stay; try again at the
            // next period.
            p.due = (now + timing.delay_loop).max(now);
            let at = p.due;
            out.push(Action::Schedule { probe, at });
            return actions;
        }

        if let Outcome::UpWeighted(dynamic) = outcome {
            self.set_weight(rs, dynamic, &mut out);
        }

        let Some(p) = self.probes.get_mut(probe.0 as usize) else {
            return actions;
        };
        let mut delay = timing.delay_loop;
        let mut transition = None;
        if outcome.is_up() {
            p.retry_it = 0;
            if !p.is_up || !p.has_run {
                transition = Some(true);
            }
        } else if p.is_up || !p.has_run {
            if p.retry_it < timing.retry {
                p.retry_it += 1;
                delay = timing.delay_before_retry;
                p.has_run = true;
            } else {
                p.retry_it = 0;
                transition = Some(false);
            }
        }
        if let Some(up) = transition {
            self.update_checker_state(probe, up, &mut out);
        }

        let Some(p) = self.probes.get_mut(probe.0 as usize) else {
            return actions;
        };
        p.has_run = true;
        let base = if timing.from_start { started } else { now };
        p.due = (base + delay).max(now);
        let at = p.due;
        out.push(Action::Schedule { probe, at });
        actions
    }

    /// Stops the checker: keepalived's `clear_services` with `omega`
    /// (ipwrapper.c `clear_service_rs`, `update_vs_notifies`): for a
    /// virtual server with `omega`, every live real server's `notify_down`
    /// runs, then its `quorum_down`; without `omega` nothing runs. All
    /// servers count as down afterwards; the dataplane's own teardown is
    /// the daemon's business.
    pub fn shutdown(&mut self) -> Vec<Action> {
        self.shutdown_except(&[])
    }

    /// [`Checker::shutdown`] but for the virtual servers whose `kept[i]` is
    /// true: a reload hands those to the next checker
    /// ([`Checker::resume`]), so they neither run notifies nor change.
    pub fn shutdown_except(&mut self, kept: &[bool]) -> Vec<Action> {
        let mut actions = Vec::new();
        for vs_index in 0..self.vss.len() {
            if kept.get(vs_index).copied().unwrap_or(false) {
                continue;
            }
            let Some(vs) = self.vss.get(vs_index) else {
                continue;
            };
            let omega = vs.omega;
            let has_quorum_down = vs.notify_quorum_down;
            let range = vs.servers.clone();
            for rs_index in range {
                let Some(rs) = self.rss.get_mut(rs_index as usize) else {
                    continue;
                };
                if rs.alive {
                    rs.alive = false;
                    if omega && rs.notify_down {
                        actions.push(Action::Notify(NotifyTarget::RsDown(RsId(rs_index))));
                    }
                }
            }
            if let Some(vs) = self.vss.get_mut(vs_index) {
                vs.quorum_up = false;
                vs.sorry_active = false;
            }
            if omega && has_quorum_down {
                let id = VsId(u32::try_from(vs_index).unwrap_or(u32::MAX));
                actions.push(Action::Notify(NotifyTarget::QuorumDown(id)));
            }
        }
        actions
    }

    fn servers_of<'a>(&'a self, vs: &VsState) -> impl Iterator<Item = &'a RsState> + 'a {
        let range = vs.servers.start as usize..vs.servers.end as usize;
        self.rss.get(range).into_iter().flatten()
    }

    /// keepalived's `weigh_live_realservers`: the summed effective weight
    /// of the live real servers (a disabled one is not live, a draining
    /// one weighs 0). Also returns how many are live.
    fn weight_sum(&self, vs: VsId) -> (u64, usize) {
        let Some(state) = self.vss.get(vs.0 as usize) else {
            return (0, 0);
        };
        self.servers_of(state)
            .filter(|rs| rs.alive && rs.admin.mode != Mode::Disabled)
            .fold((0, 0), |(sum, n), rs| {
                (sum + u64::from(rs.serving_weight()), n + 1)
            })
    }

    /// keepalived's `update_svr_checker_state` and `set_checker_state`.
    fn update_checker_state(&mut self, probe: ProbeId, up: bool, out: &mut Out<'_>) {
        let Some(p) = self.probes.get(probe.0 as usize) else {
            return;
        };
        let (rs_id, is_up, has_run) = (p.rs, p.is_up, p.has_run);
        let Some(rs) = self.rss.get(rs_id.0 as usize) else {
            return;
        };
        let alpha = self.vss.get(rs.vs.0 as usize).is_some_and(|vs| vs.alpha);
        if is_up == up {
            // First run confirming the start state: only alpha mode (down
            // from the start, never announced) notifies.
            if !has_run && (alpha || !up) {
                self.notify_rs(rs_id, out);
            }
            return;
        }
        let failed = rs.failed;
        if up && failed <= 1 {
            self.perform_server_state(rs_id, true, true, out);
        } else if !up && failed == 0 {
            self.perform_server_state(rs_id, false, true, out);
        }
        if let Some(p) = self.probes.get_mut(probe.0 as usize) {
            p.is_up = up;
        }
        if let Some(rs) = self.rss.get_mut(rs_id.0 as usize) {
            rs.failed = if up {
                rs.failed.saturating_sub(1)
            } else {
                rs.failed + 1
            };
        }
    }

    /// keepalived's `perform_svr_state`: the server enters or leaves the
    /// pool, its notify runs (if `notify`), and the quorum is
    /// re-evaluated.
    fn perform_server_state(&mut self, rs_id: RsId, alive: bool, notify: bool, out: &mut Out<'_>) {
        let Some(rs) = self.rss.get_mut(rs_id.0 as usize) else {
            return;
        };
        if rs.alive == alive {
            return;
        }
        rs.alive = alive;
        let (vs, weight) = (rs.vs, rs.serving_weight());
        out.push(Action::Server {
            rs: rs_id,
            alive,
            weight,
        });
        out.push(Action::Pool { vs });
        if notify {
            self.notify_rs(rs_id, out);
        }
        self.update_quorum(vs, false, out);
    }

    /// keepalived's `update_svr_wgt` for `misc_dynamic`.
    fn set_weight(&mut self, rs_id: RsId, dynamic: DynamicWeight, out: &mut Out<'_>) {
        let Some(rs) = self.rss.get_mut(rs_id.0 as usize) else {
            return;
        };
        let weight = match dynamic {
            DynamicWeight::Configured => rs.configured_weight,
            DynamicWeight::Set(w) => w,
        };
        if weight == rs.weight {
            return;
        }
        rs.weight = weight;
        let (vs, alive, weight) = (rs.vs, rs.alive, rs.effective_weight());
        out.push(Action::Server {
            rs: rs_id,
            alive,
            weight,
        });
        if alive {
            out.push(Action::Pool { vs });
        }
        self.update_quorum(vs, false, out);
    }

    fn notify_rs(&self, rs_id: RsId, out: &mut Out<'_>) {
        let Some(rs) = self.rss.get(rs_id.0 as usize) else {
            return;
        };
        let (target, configured) = if rs.alive {
            (NotifyTarget::RsUp(rs_id), rs.notify_up)
        } else {
            (NotifyTarget::RsDown(rs_id), rs.notify_down)
        };
        if configured {
            out.push(Action::Notify(target));
        }
    }

    /// keepalived's `update_quorum_state`:
    /// - while the quorum is down, it comes back when the live weight
    ///   reaches `quorum + hysteresis`: the sorry server leaves, the live
    ///   real servers return, `quorum_up` runs;
    /// - while it is up, it is lost when the live weight drops below
    ///   `quorum - hysteresis` or to 0: the sorry server (if any) replaces
    ///   the live real servers, `quorum_down` runs;
    /// - at start, a quorum that is down with a sorry server configured
    ///   brings the sorry server in and runs `quorum_down`.
    fn update_quorum(&mut self, vs_id: VsId, init: bool, out: &mut Out<'_>) {
        let (sum, _) = self.weight_sum(vs_id);
        let Some(vs) = self.vss.get_mut(vs_id.0 as usize) else {
            return;
        };
        let hysteresis = i64::from(vs.hysteresis);
        let threshold = i64::from(vs.quorum)
            + if vs.quorum_up {
                -hysteresis
            } else {
                hysteresis
            };
        let weight = i64::try_from(sum).unwrap_or(i64::MAX);
        if !vs.quorum_up && weight >= threshold {
            vs.quorum_up = true;
            if vs.sorry_active {
                vs.sorry_active = false;
                out.push(Action::SorryServer {
                    vs: vs_id,
                    active: false,
                });
                out.push(Action::Pool { vs: vs_id });
            }
            out.push(Action::Quorum {
                vs: vs_id,
                up: true,
                weight_sum: sum,
                threshold,
            });
            if vs.notify_quorum_up {
                out.push(Action::Notify(NotifyTarget::QuorumUp(vs_id)));
            }
        } else if (vs.quorum_up && (sum == 0 || weight < threshold))
            || (init && !vs.quorum_up && vs.sorry_server.is_some() && !vs.sorry_active)
        {
            vs.quorum_up = false;
            if vs.sorry_server.is_some() && !vs.sorry_active {
                vs.sorry_active = true;
                out.push(Action::SorryServer {
                    vs: vs_id,
                    active: true,
                });
                out.push(Action::Pool { vs: vs_id });
            }
            out.push(Action::Quorum {
                vs: vs_id,
                up: false,
                weight_sum: sum,
                threshold,
            });
            if vs.notify_quorum_down {
                out.push(Action::Notify(NotifyTarget::QuorumDown(vs_id)));
            }
        }
    }
}

impl RsState {
    /// What the server weighs in its pool while it is in: the operator's
    /// weight if set, else the effective one; 0 while draining.
    fn serving_weight(&self) -> u32 {
        match self.admin.mode {
            Mode::Draining => 0,
            Mode::Enabled | Mode::Disabled => {
                self.admin.weight.unwrap_or_else(|| self.effective_weight())
            }
        }
    }

    /// The configured (or `misc_dynamic`) weight with its FILE_CHECKs'
    /// changes, within keepalived's 0..=2³¹−1 (`real_weight`).
    fn effective_weight(&self) -> u32 {
        let total = i64::from(self.weight) + self.file_adjust;
        u32::try_from(total.clamp(0, i64::from(i32::MAX))).unwrap_or(0)
    }
}

fn rs_state(vs_id: VsId, vs: &VirtualPlan, rs: &RealPlan, probes: std::ops::Range<u32>) -> RsState {
    let failed = if vs.alpha {
        probes.end - probes.start
    } else {
        0
    };
    RsState {
        vs: vs_id,
        address: rs.address,
        configured_weight: rs.weight,
        weight: rs.weight,
        inhibit: rs.inhibit,
        alive: failed == 0,
        admin: rs.admin,
        failed,
        notify_up: rs.notify_up,
        notify_down: rs.notify_down,
        probes,
        files: 0..0,
        file_adjust: 0,
    }
}
