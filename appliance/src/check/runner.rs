//! The checker's driver: one tokio task runs every probe of a config
//! against the decision core. Due probes wait on a timing wheel
//! ([`Due`]) and start on the checker's [`TICK`](super::TICK); running
//! ones are futures polled by that same task (no task or thread per
//! server), at most `max_in_flight` at once. Half-open TCP checks are no
//! futures at all: the runner hands them to its [`syn::Prober`], which
//! sends a tick's SYNs in one burst. Transitions go out on an unbounded
//! channel as [`Report`]s (few: only changes), which the daemon logs (once)
//! and turns into timeline events and dataplane reconciles; notify programs
//! run here, each bounded by a timeout.

use super::decision::{
    Action, Admin, Checker, Destination, Failure, FileId, LastOutcome, LocalFault, Mode,
    NotifyTarget, Outcome, ProbeId, RsId, TooMany, VsId,
};
use super::due::Due;

use super::probe::{Probe, Start};
use super::syn::{self, Done, socket::Family};
use super::tick_deadline;
use super::{dns, http, misc, ping, plan, smtp, tcp, udp};
use crate::clock;
use crate::config::model::{Check, Protocol, Service, TrackedFile, VirtualServer};
use crate::daemon::plan::FilePlan;
use crate::daemon::track_file::{self, Watch};
use crate::metrics::Metrics;
use crate::net::address::{AddressWatch, LocalAddresses};
use crate::notify_fifo;
use crate::script;
use crate::script::check::{Scripts, Unchecked};
use futures::FutureExt;
use futures::stream::{FuturesUnordered, StreamExt};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

/// How the runner behaves.
#[derive(Clone)]
pub struct Options {
    /// Most probes running at once (each holds a socket or a process);
    /// due probes beyond it wait their turn.
    pub max_in_flight: usize,
    /// Bound on each notify program's run.
    pub notify_timeout: Duration,
    /// Time zero of the [`clock::Instant`]s in reports (the daemon's
    /// timeline origin).
    pub origin: tokio::time::Instant,
    /// Where each probe's duration is recorded, if anywhere.
    pub metrics: Option<Arc<Metrics>>,
    /// How MISC_CHECK and notify programs run (their users, their paths).
    pub scripts: Arc<Scripts>,
    /// What the operator set for real servers (by virtual server and
    /// address), in force from the start: a disabled server is never in
    /// a pool, not even the first one.
    pub admin: Vec<(VsId, SocketAddr, Admin)>,
    /// The config's `track_file`s, which FILE_CHECKs read.
    pub track_files: Vec<TrackedFile>,
    /// The notify FIFOs each real server and quorum change is written to.
    pub fifo: notify_fifo::Sink,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            max_in_flight: 1024,
            notify_timeout: Duration::from_secs(30),
            origin: tokio::time::Instant::now(),
            metrics: None,
            scripts: Arc::default(),
            admin: Vec::new(),
            track_files: Vec::new(),
            fifo: notify_fifo::Sink::default(),
        }
    }
}

/// A change the checker made, for the daemon.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Report {
    /// A real server went up or down, or its effective weight changed;
    /// `cause` is the probe outcome that did it.
    Server {
        vs: VsId,
        service: Service,
        address: SocketAddr,
        alive: bool,
        weight: u32,
        cause: Outcome,
        at: clock::Instant,
    },
    /// The virtual server gained or lost its quorum.
    Quorum {
        vs: VsId,
        service: Service,
        up: bool,
        weight_sum: u64,
        threshold: i64,
        at: clock::Instant,
    },
    /// The operator changed a real server's [`Admin`]; `weight` is what it
    /// now weighs in its pool.
    Admin {
        vs: VsId,
        service: Service,
        address: SocketAddr,
        /// In the pool: its checks pass and it is not disabled.
        alive: bool,
        admin: Admin,
        weight: u32,
        at: clock::Instant,
    },
    /// The sorry server entered or left the pool.
    SorryServer {
        vs: VsId,
        service: Service,
        active: bool,
        at: clock::Instant,
    },
    /// The destinations the dataplane should now hold for the virtual
    /// server (the whole set: reconcile to it). Sent once at start for every
    /// virtual server, then after changes, at most once per batch of
    /// completed probes.
    Pool {
        vs: VsId,
        service: Service,
        destinations: Vec<Destination>,
        at: clock::Instant,
    },
}

/// A virtual server's state, for `appliance status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VsStatus {
    pub vs: VsId,
    pub service: Service,
    pub quorum_up: bool,
    pub sorry_active: bool,
    /// `ha_suspend` holds its checks.
    pub suspended: bool,
    pub servers: Vec<RsStatus>,
}

/// A real server's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RsStatus {
    pub address: SocketAddr,
    pub alive: bool,
    pub weight: u32,
    pub admin: Admin,
    pub checks: Vec<CheckStatus>,
}

/// A check's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckStatus {
    /// keepalived's keyword: `TCP_CHECK`, `HTTP_GET`, `SSL_GET`, `MISC_CHECK`,
    /// `PING_CHECK`, `UDP_CHECK`, `DNS_CHECK`.
    pub kind: &'static str,
    pub up: bool,
    pub last: Option<LastOutcome>,
    /// How long the last run took.
    pub took: Option<Duration>,
}

/// The runner could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    TooMany(#[from] TooMany),
    #[error("cannot set up TLS for SSL_GET: {0}")]
    Tls(#[from] rustls::Error),
    /// The config check compiles every regex first; this is a config that
    /// skipped it.
    #[error("url regex: {0}")]
    Regex(#[from] regex::Error),
    #[error(transparent)]
    HalfOpen(#[from] syn::Error),
    #[error(transparent)]
    Script(#[from] Unchecked),
}

enum Cmd {
    Status(oneshot::Sender<Vec<VsStatus>>),
    Shutdown(oneshot::Sender<()>),
    HandOver {
        kept: Vec<bool>,
        reply: oneshot::Sender<Checker>,
    },
    Admin {
        vs: VsId,
        address: SocketAddr,
        admin: Admin,
        reply: oneshot::Sender<Option<Vec<Destination>>>,
    },
}

/// Controls a running checker.
pub struct Handle {
    cmds: mpsc::Sender<Cmd>,
    task: tokio::task::JoinHandle<()>,
}

impl Handle {
    /// Every virtual server's state; `None` if the runner is gone.
    pub async fn status(&self) -> Option<Vec<VsStatus>> {
        let (tx, rx) = oneshot::channel();
        self.cmds.send(Cmd::Status(tx)).await.ok()?;
        rx.await.ok()
    }

    /// Stops the checker: running probes are dropped (their sockets closed,
    /// their scripts killed), then `omega` notifiers run (see
    /// [`Checker::shutdown`]) and are waited for, each at most the notify
    /// timeout.
    pub async fn shutdown(self) {
        let (tx, rx) = oneshot::channel();
        if self.cmds.send(Cmd::Shutdown(tx)).await.is_ok() {
            let _ = rx.await;
        }
        let _ = self.task.await;
    }

    /// Sets what the operator wants of the real server at `address` in
    /// virtual server `vs` ([`Checker::set_admin`]); its pool and quorum
    /// follow, reported as any change is. The virtual server's pool after
    /// the change, if it has such a server; `None` if the runner is gone.
    pub async fn admin(
        &self,
        vs: VsId,
        address: SocketAddr,
        admin: Admin,
    ) -> Option<Option<Vec<Destination>>> {
        let (reply, rx) = oneshot::channel();
        self.cmds
            .send(Cmd::Admin {
                vs,
                address,
                admin,
                reply,
            })
            .await
            .ok()?;
        rx.await.ok()
    }

    /// Stops the checker for a reload and returns its decision core, for
    /// [`spawn_resumed`]: as [`Handle::shutdown`], but the virtual servers
    /// whose `kept[i]` is true are handed over as they are (no notifies).
    /// `None` if the runner is gone.
    pub async fn hand_over(self, kept: Vec<bool>) -> Option<Checker> {
        let (reply, rx) = oneshot::channel();
        let sent = self.cmds.send(Cmd::HandOver { kept, reply }).await.is_ok();
        let checker = if sent { rx.await.ok() } else { None };
        let _ = self.task.await;
        checker
    }
}

/// What a reload hands the next checker: the previous decision core, and
/// for each new virtual server the previous one it continues, if its
/// config did not change ([`Checker::resume`]).
pub struct Resume {
    pub checker: Checker,
    pub carry: Vec<Option<VsId>>,
}

/// A probe's run as a future: its id, outcome and how long it took. A
/// probe that panics is the director's bug: its real server keeps its
/// state and the other probes, which share the runner's task, go on.
fn timed(id: ProbeId, probe: Pin<Box<dyn Future<Output = Outcome> + Send>>) -> ProbeFuture {
    Box::pin(async move {
        let start = tokio::time::Instant::now();
        #[allow(
            clippy::redundant_async_block,
            reason = "the block holds a fail point in the tests' build"
        )]
        let outcome = std::panic::AssertUnwindSafe(async move {
            crate::fail_point!("check-probe");
            probe.await
        })
        .catch_unwind()
        .await
        .unwrap_or(Outcome::Down(Failure::Local(LocalFault::Panicked)));
        (id, outcome, start.elapsed())
    })
}

type ProbeFuture = Pin<Box<dyn Future<Output = (ProbeId, Outcome, Duration)> + Send>>;

/// The address families of the half-open checks in `servers`.
fn half_open_families(servers: &[VirtualServer]) -> Vec<Family> {
    let mut families = Vec::new();
    for vs in servers {
        for rs in &vs.real_server {
            for check in &rs.check {
                if let Check::Tcp(c) = check
                    && c.half_open
                {
                    let family = Family::of(tcp::target(c, rs).ip());
                    if !families.contains(&family) {
                        families.push(family);
                    }
                }
            }
        }
    }
    families
}

/// Every check's probe, in config order (a probe's `ProbeId` is its index
/// here). SSL_GET probes share one TLS client.
fn probes(servers: &[VirtualServer], scripts: &Scripts) -> Result<Vec<Box<dyn Probe>>, Error> {
    let mut tls = None;
    let mut out: Vec<Box<dyn Probe>> = Vec::new();
    for vs in servers {
        for rs in &vs.real_server {
            for check in &rs.check {
                out.push(match check {
                    Check::Tcp(c) => Box::new(tcp::TcpProbe::new(c, rs)),
                    Check::HttpGet(c) => Box::new(http::HttpProbe::new(c, vs, rs, None)?),
                    Check::SslGet(c) => {
                        let connector = match &tls {
                            Some(connector) => connector,
                            None => tls.insert(http::tls_connector()?),
                        };
                        Box::new(http::HttpProbe::new(c, vs, rs, Some(connector.clone()))?)
                    }
                    Check::Misc(c) => Box::new(misc::MiscProbe::new(c, vs, scripts)?),
                    Check::Ping(c) => Box::new(ping::PingProbe::new(c, rs)),
                    Check::Udp(c) => Box::new(udp::UdpProbe::new(c, rs)),
                    Check::Dns(c) => Box::new(dns::DnsProbe::new(c, rs)),
                    Check::Smtp(c) => Box::new(smtp::SmtpProbe::new(c, rs)),
                });
            }
        }
    }
    Ok(out)
}

/// Starts checking every real server of `servers` on the current tokio
/// runtime. Returns the handle and the receiver of [`Report`]s; the first
/// reports are each virtual server's initial pool.
pub fn spawn(
    servers: &[VirtualServer],
    options: Options,
) -> Result<(Handle, mpsc::UnboundedReceiver<Report>), Error> {
    spawn_resumed(servers, options, None)
}

/// [`spawn`] after a reload: the virtual servers `resume` carries keep the
/// previous checker's state ([`Checker::resume`]).
pub fn spawn_resumed(
    servers: &[VirtualServer],
    options: Options,
    resume: Option<Resume>,
) -> Result<(Handle, mpsc::UnboundedReceiver<Report>), Error> {
    let families = half_open_families(servers);
    let prober = if families.is_empty() {
        None
    } else {
        Some(syn::Prober::open(&families, options.origin)?)
    };
    let probes = probes(servers, &options.scripts)?;
    let now = clock_now(options.origin);
    let draw = |max: Duration| {
        let micros = u64::try_from(max.as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(fastrand::u64(0..=micros))
    };
    let mut plans = plan::plan(servers, &options.track_files);
    if !options.fifo.is_empty() {
        // Every change is written to the FIFOs, where keepalived's notify
        // programs would run, whether programs are configured or not.
        for vs in &mut plans {
            vs.quorum_up = true;
            vs.quorum_down = true;
            for rs in &mut vs.real_servers {
                rs.notify_up = true;
                rs.notify_down = true;
            }
        }
    }
    for (vs, address, admin) in &options.admin {
        let servers = plans
            .get_mut(vs.0 as usize)
            .map_or(&mut [][..], |p| &mut p.real_servers[..]);
        for rs in servers.iter_mut().filter(|rs| rs.address == *address) {
            rs.admin = *admin;
        }
    }
    let (checker, actions) = match &resume {
        Some(resume) => Checker::resume(&plans, &resume.checker, &resume.carry, now, draw)?,
        None => Checker::start(&plans, now, draw)?,
    };
    let files = FileChecks::watch(servers, &options.track_files, resume.is_some());
    let (reports, rx) = mpsc::unbounded_channel();
    let (cmds, cmd_rx) = mpsc::channel(8);
    let mut runner = Runner {
        checker,
        took: vec![None; probes.len()],
        programs: plan::Programs::of(servers),
        services: servers.iter().map(|vs| vs.service.clone()).collect(),
        protocols: servers.iter().map(|vs| vs.protocol).collect(),
        probes,
        prober,
        half_open_done: Vec::new(),
        options,
        due: Due::new(),
        reports,
        notifies: tokio::task::JoinSet::new(),
        fault_logged: None,
        files,
        addresses: None,
    };
    let mut dirty = Vec::new();
    runner.apply(actions, None, now, &mut dirty);
    // The files' values before the first pool goes out, as keepalived
    // reads them before its checkers start.
    let paths: Vec<(String, PathBuf)> = runner.files.paths.clone();
    for (name, path) in paths {
        if let Some(value) = track_file::value_of(&name, &path) {
            runner.file_changed(&name, value, now, &mut dirty);
        }
    }
    runner.flush(&mut dirty, now);
    let task = tokio::spawn(runner.run(cmd_rx));
    Ok((Handle { cmds, task }, rx))
}

/// The FILE_CHECKs of a config: each one's file (by `FileId`), and the
/// watch over those files.
struct FileChecks {
    /// The tracked file's name of each FILE_CHECK, in `FileId` order.
    names: Vec<String>,
    /// The watched files, by name, at their real paths.
    paths: Vec<(String, PathBuf)>,
    watch: Option<Watch>,
}

impl FileChecks {
    /// Writes the files' `init_file` values (a reload only creates missing
    /// files) and watches them.
    fn watch(servers: &[VirtualServer], track_files: &[TrackedFile], reload: bool) -> Self {
        let mut names = Vec::new();
        let mut used: Vec<FilePlan> = Vec::new();
        for rs in servers.iter().flat_map(|vs| &vs.real_server) {
            for (_, file) in plan::file_checks(rs, track_files) {
                names.push(file.name.clone());
                if !used.iter().any(|f| f.name == file.name) {
                    used.push(FilePlan {
                        name: file.name.clone(),
                        path: file.file.clone(),
                        init: file.init_file,
                    });
                }
            }
        }
        if used.is_empty() {
            return Self {
                names,
                paths: Vec::new(),
                watch: None,
            };
        }
        for file in &used {
            track_file::init(file, reload);
        }
        match Watch::new(&used) {
            Ok((watch, paths)) => Self {
                names,
                paths,
                watch: Some(watch),
            },
            Err(e) => {
                // As keepalived ("Unable to monitor track files"): the
                // values read at the start still count.
                tracing::error!(error = %e, "the FILE_CHECK files cannot be watched: their changes are not seen");
                Self {
                    names,
                    paths: used.into_iter().map(|f| (f.name, f.path)).collect(),
                    watch: None,
                }
            }
        }
    }
}

/// Waits for changes to the tracked files; forever without a watch.
async fn file_changes(watch: Option<&mut Watch>) -> std::io::Result<Vec<track_file::Change>> {
    match watch {
        Some(watch) => watch.changes().await,
        None => std::future::pending().await,
    }
}

/// Waits for a change of the director's addresses; forever without a
/// watch (or once its netlink connection is gone).
async fn addresses_changed(watch: Option<&mut AddressWatch>) -> Option<&LocalAddresses> {
    match watch {
        Some(watch) => watch.changed().await,
        None => std::future::pending().await,
    }
}

/// Waits for the prober's next event and handles it; forever without one.
async fn half_open(prober: Option<&mut syn::Prober<HalfOpenToken>>) -> std::io::Result<()> {
    match prober {
        Some(prober) => prober.wait().await,
        None => std::future::pending().await,
    }
}

fn clock_now(origin: tokio::time::Instant) -> clock::Instant {
    clock::Instant::from_duration(tokio::time::Instant::now().saturating_duration_since(origin))
}

/// A half-open probe in the prober: its check and when it started.
type HalfOpenToken = (ProbeId, clock::Instant);

struct Runner {
    checker: Checker,
    /// How long each probe's last run took (its latency), in `ProbeId`
    /// order: the decision core keeps outcomes, not durations.
    took: Vec<Option<Duration>>,
    /// The notify programs the checker's actions name.
    programs: plan::Programs,
    /// Each virtual server's service, in `VsId` order.
    services: Vec<Service>,
    /// Each virtual server's protocol, in `VsId` order.
    protocols: Vec<Protocol>,
    probes: Vec<Box<dyn Probe>>,
    /// The half-open prober, if any check is half-open.
    prober: Option<syn::Prober<HalfOpenToken>>,
    /// The prober's finished probes, taken each turn (kept for its
    /// allocation).
    half_open_done: Vec<Done<HalfOpenToken>>,
    options: Options,
    due: Due,
    reports: mpsc::UnboundedSender<Report>,
    notifies: tokio::task::JoinSet<()>,
    /// When a local fault was last logged: one warning per period, not one
    /// per probe (thousands of probes hit the same limit together).
    fault_logged: Option<std::time::Instant>,
    files: FileChecks,
    /// The director's addresses, followed when a virtual server has
    /// `ha_suspend`.
    addresses: Option<AddressWatch>,
}

/// How often a run of local faults is logged.
const FAULT_LOG_PERIOD: Duration = Duration::from_secs(10);

impl Runner {
    /// A virtual server's service.
    fn service(&self, vs: VsId) -> Option<Service> {
        self.services.get(vs.0 as usize).cloned()
    }

    /// A check the director could not run: counted, logged now and then;
    /// the real server's state is untouched (the decision core's rule).
    fn local_fault(&mut self, fault: LocalFault) {
        if let Some(metrics) = &self.options.metrics {
            metrics.check_local_fault(fault.name());
        }
        let now = std::time::Instant::now();
        if self
            .fault_logged
            .is_none_or(|at| now.duration_since(at) >= FAULT_LOG_PERIOD)
        {
            self.fault_logged = Some(now);
            tracing::warn!(
                reason = fault.name(),
                detail = %Failure::Local(fault),
                "a health check could not run; real servers keep their state"
            );
        }
    }

    async fn run(mut self, mut cmds: mpsc::Receiver<Cmd>) {
        let mut running: FuturesUnordered<ProbeFuture> = FuturesUnordered::new();
        let mut dirty = Vec::new();
        self.watch_addresses().await;
        // One timer, re-armed only when the earliest deadline changes.
        let sleep = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(sleep);
        let mut armed = None;
        loop {
            crate::fail_point!("check-runner");
            let now = self.now();
            self.launch(now, &mut running);
            self.take_half_open(now, &mut dirty);
            self.flush(&mut dirty, now);
            let can_launch = running.len() < self.options.max_in_flight;
            let next = self
                .due
                .next()
                .filter(|_| can_launch)
                .map(|at| tick_deadline(self.options.origin, at));
            if next != armed {
                if let Some(deadline) = next {
                    sleep.as_mut().reset(deadline);
                }
                armed = next;
            }
            tokio::select! {
                cmd = cmds.recv() => match cmd {
                    Some(Cmd::Status(tx)) => {
                        let _ = tx.send(self.status());
                    }
                    Some(Cmd::Shutdown(tx)) => {
                        drop(running);
                        self.shutdown(&[]).await;
                        let _ = tx.send(());
                        return;
                    }
                    Some(Cmd::Admin { vs, address, admin, reply }) => {
                        let found = self.set_admin(vs, address, admin, &mut dirty);
                        let _ = reply.send(found.then(|| self.checker.pool(vs)));
                    }
                    Some(Cmd::HandOver { kept, reply }) => {
                        drop(running);
                        self.shutdown(&kept).await;
                        let _ = reply.send(self.checker);
                        return;
                    }
                    None => {
                        drop(running);
                        self.shutdown(&[]).await;
                        return;
                    }
                },
                Some((id, outcome, took)) = running.next(), if !running.is_empty() => {
                    let now = self.now();
                    self.completed(id, outcome, took, now, &mut dirty);
                    // Take every other finished probe too, so one burst of
                    // changes makes one pool report per virtual server.
                    while let Some(Some((id, outcome, took))) = running.next().now_or_never() {
                        self.completed(id, outcome, took, now, &mut dirty);
                    }
                }
                result = file_changes(self.files.watch.as_mut()) => match result {
                    Ok(changes) => {
                        let now = self.now();
                        for change in changes {
                            self.file_changed(&change.name, change.value, now, &mut dirty);
                        }
                    }
                    Err(error) => {
                        tracing::error!(%error, "the FILE_CHECK watch failed: file changes are no longer seen");
                        self.files.watch = None;
                    }
                },
                result = half_open(self.prober.as_mut()) => {
                    if let Err(error) = result {
                        // The reactor is going away: nothing more can be probed.
                        tracing::error!(%error, "half-open prober stopped");
                        self.prober = None;
                    }
                }
                Some(changed) = addresses_changed(self.addresses.as_mut()) => {
                    let changed = changed.clone();
                    self.suspend_where_missing(|a| changed.contains(a));
                }
                () = &mut sleep, if armed.is_some() => armed = None,
                Some(_) = self.notifies.join_next(), if !self.notifies.is_empty() => {}
            }
        }
    }

    fn now(&self) -> clock::Instant {
        clock_now(self.options.origin)
    }

    /// With a virtual server under `ha_suspend`, reads the director's
    /// addresses and follows them. Without a watch its checks run: a
    /// director that cannot tell is better checking than blind.
    async fn watch_addresses(&mut self) {
        if !self.checker.suspends() {
            return;
        }
        match AddressWatch::start().await {
            Ok(watch) => {
                let addresses = watch.addresses().clone();
                self.addresses = Some(watch);
                self.suspend_where_missing(|a| addresses.contains(a));
            }
            Err(error) => {
                tracing::error!(%error, "the director's addresses cannot be followed: ha_suspend's checks run regardless");
                self.suspend_where_missing(|_| true);
            }
        }
    }

    /// keepalived's `update_checker_activity`: each `ha_suspend` virtual
    /// server's checks run while its address is on the director.
    fn suspend_where_missing(&mut self, present: impl Fn(IpAddr) -> bool) {
        for (vs, suspended) in self.checker.addresses_changed(present) {
            let service = self.service(vs);
            if suspended {
                tracing::info!(
                    ?service,
                    "health checks suspended: the virtual address is not on the director (ha_suspend)"
                );
            } else {
                tracing::info!(
                    ?service,
                    "health checks resumed: the virtual address is on the director (ha_suspend)"
                );
            }
        }
    }

    /// Starts the probes due by `now`: futures in `running` (within
    /// `max_in_flight`), half-open ones in the prober, whose SYNs then go
    /// out together.
    fn launch(&mut self, now: clock::Instant, running: &mut FuturesUnordered<ProbeFuture>) {
        while running.len() < self.options.max_in_flight {
            let Some(id) = self.due.pop(now) else {
                break;
            };
            if let Some(Action::Schedule { probe, at }) = self.checker.hold_if_suspended(id, now) {
                self.due.push(at, probe);
                continue;
            }
            let Some(probe) = self.probes.get(id.0 as usize) else {
                continue;
            };
            match probe.start() {
                Start::Future(future) => running.push(timed(id, future)),
                Start::Syn {
                    target,
                    bind,
                    timeout,
                } => match &mut self.prober {
                    Some(prober) => prober.start(now, (id, now), target, bind, timeout),
                    None => self.half_open_done.push(Done {
                        token: (id, now),
                        target,
                        outcome: Outcome::Down(Failure::NotStarted),
                    }),
                },
            }
        }
        if let Some(prober) = &mut self.prober {
            prober.flush();
        }
    }

    /// Feeds the half-open probes that finished to the decision core.
    fn take_half_open(&mut self, now: clock::Instant, dirty: &mut Vec<VsId>) {
        let mut done = std::mem::take(&mut self.half_open_done);
        if let Some(prober) = &mut self.prober {
            done.extend(prober.done());
        }
        for Done {
            token: (id, started),
            outcome,
            ..
        } in done.drain(..)
        {
            self.completed(id, outcome, now.saturating_since(started), now, dirty);
        }
        self.half_open_done = done;
    }

    /// The operator's change of one real server, applied at once.
    fn set_admin(
        &mut self,
        vs: VsId,
        address: SocketAddr,
        admin: Admin,
        dirty: &mut Vec<VsId>,
    ) -> bool {
        let now = self.now();
        let servers: Vec<RsId> = self
            .checker
            .vs_servers(vs)
            .filter(|rs| self.checker.server_address(*rs) == Some(address))
            .collect();
        for rs in &servers {
            let actions = self.checker.set_admin(*rs, admin);
            self.apply(actions, None, now, dirty);
        }
        self.flush(dirty, now);
        !servers.is_empty()
    }

    fn completed(
        &mut self,
        id: ProbeId,
        outcome: Outcome,
        took: Duration,
        now: clock::Instant,
        dirty: &mut Vec<VsId>,
    ) {
        if let (Some(metrics), Some(probe)) =
            (&self.options.metrics, self.probes.get(id.0 as usize))
        {
            metrics.check_done(probe.kind(), took);
        }
        if let Some(slot) = self.took.get_mut(id.0 as usize) {
            *slot = Some(took);
        }
        if let Outcome::Down(Failure::Local(fault)) = outcome {
            self.local_fault(fault);
        }
        let actions = self.checker.probe_done(id, outcome, now);
        self.apply(actions, Some(outcome), now, dirty);
    }

    /// A tracked file holds `value`: every FILE_CHECK of it learns so.
    fn file_changed(&mut self, name: &str, value: i64, now: clock::Instant, dirty: &mut Vec<VsId>) {
        tracing::debug!(track_file = name, value, "FILE_CHECK value");
        let ids: Vec<FileId> = (0..self.files.names.len())
            .filter(|&i| self.files.names.get(i).is_some_and(|n| n == name))
            .filter_map(|i| u32::try_from(i).ok().map(FileId))
            .collect();
        for id in ids {
            let actions = self.checker.file_value(id, value);
            let failed = self
                .checker
                .file_state(id)
                .is_some_and(|(_, failed)| failed);
            let cause = if failed {
                Outcome::Down(Failure::TrackFile(value))
            } else {
                Outcome::Up
            };
            self.apply(actions, Some(cause), now, dirty);
        }
    }

    fn apply(
        &mut self,
        actions: Vec<Action>,
        cause: Option<Outcome>,
        at: clock::Instant,
        dirty: &mut Vec<VsId>,
    ) {
        for action in actions {
            match action {
                Action::Schedule { probe, at } => self.due.push(at, probe),
                Action::Pool { vs } => {
                    if !dirty.contains(&vs) {
                        dirty.push(vs);
                    }
                }
                Action::Server { rs, alive, weight } => {
                    if let Some(report) = self.server_report(rs, alive, weight, cause, at) {
                        let _ = self.reports.send(report);
                    }
                }
                Action::Quorum {
                    vs,
                    up,
                    weight_sum,
                    threshold,
                } => {
                    if let Some(service) = self.service(vs) {
                        let _ = self.reports.send(Report::Quorum {
                            vs,
                            service,
                            up,
                            weight_sum,
                            threshold,
                            at,
                        });
                    }
                }
                Action::SorryServer { vs, active } => {
                    if let Some(service) = self.service(vs) {
                        let _ = self.reports.send(Report::SorryServer {
                            vs,
                            service,
                            active,
                            at,
                        });
                    }
                }
                Action::Admin { rs, admin, weight } => {
                    let vs = self.checker.server_vs(rs);
                    let service = vs.and_then(|vs| self.service(vs));
                    let address = self.checker.server_address(rs);
                    let healthy = self
                        .checker
                        .server_state(rs)
                        .is_some_and(|(alive, _)| alive);
                    if let (Some(vs), Some(service), Some(address)) = (vs, service, address) {
                        let _ = self.reports.send(Report::Admin {
                            vs,
                            service,
                            address,
                            alive: healthy && admin.mode != Mode::Disabled,
                            admin,
                            weight,
                            at,
                        });
                    }
                }
                Action::Notify(target) => self.notify(target),
            }
        }
    }

    fn server_report(
        &self,
        rs: RsId,
        alive: bool,
        weight: u32,
        cause: Option<Outcome>,
        at: clock::Instant,
    ) -> Option<Report> {
        let vs = self.checker.server_vs(rs)?;
        let service = self.service(vs)?;
        let address = self.checker.server_address(rs)?;
        let cause = cause?;
        Some(Report::Server {
            vs,
            service,
            address,
            alive,
            weight,
            cause,
            at,
        })
    }

    /// keepalived's `do_rs_notifies` / `do_vs_notifies`: the line on the
    /// notify FIFOs, then the program if one is configured.
    fn notify(&mut self, target: NotifyTarget) {
        if !self.options.fifo.is_empty()
            && let Some(line) = self.fifo_line(target)
        {
            self.options.fifo.write(&line);
        }
        let Some(command) = self.programs.get(target) else {
            return;
        };
        let span = self.notify_span(target);
        let program = match self.options.scripts.program(command) {
            Ok(program) => program,
            Err(e) => {
                span.in_scope(|| tracing::error!(error = %e, "notify program not run"));
                return;
            }
        };
        let timeout = self.options.notify_timeout;
        self.notifies.spawn(
            async move {
                let outcome = script::run(&program, &[], timeout).await;
                if !outcome.success() {
                    tracing::warn!(program = %program.path.display(), %outcome, "notify program failed");
                }
            }
            .instrument(span),
        );
    }

    /// keepalived's notify FIFO line for `target`.
    fn fifo_line(&self, target: NotifyTarget) -> Option<String> {
        let (vs, rs, up) = match target {
            NotifyTarget::RsUp(rs) => (self.checker.server_vs(rs)?, Some(rs), true),
            NotifyTarget::RsDown(rs) => (self.checker.server_vs(rs)?, Some(rs), false),
            NotifyTarget::QuorumUp(vs) => (vs, None, true),
            NotifyTarget::QuorumDown(vs) => (vs, None, false),
        };
        let service = self.service(vs)?;
        let protocol = self.protocols.get(vs.0 as usize).copied()?;
        Some(match rs {
            Some(rs) => notify_fifo::real_server_line(
                self.checker.server_address(rs)?,
                service,
                protocol,
                up,
            ),
            None => notify_fifo::virtual_server_line(service, protocol, up),
        })
    }

    /// The span a notify program's events happen in: its virtual server,
    /// its real server if it has one, and which notify it is.
    fn notify_span(&self, target: NotifyTarget) -> tracing::Span {
        let (vs, rs, kind) = match target {
            NotifyTarget::RsUp(rs) => (self.checker.server_vs(rs), Some(rs), "notify_up"),
            NotifyTarget::RsDown(rs) => (self.checker.server_vs(rs), Some(rs), "notify_down"),
            NotifyTarget::QuorumUp(vs) => (Some(vs), None, "quorum_up"),
            NotifyTarget::QuorumDown(vs) => (Some(vs), None, "quorum_down"),
        };
        let service = match vs.and_then(|vs| self.service(vs)) {
            Some(Service::Address(address)) => address.to_string(),
            Some(Service::Fwmark(mark)) => format!("fwmark {mark}"),
            Some(Service::Group(name)) => format!("group {name}"),
            None => String::new(),
        };
        let real_server = rs
            .and_then(|rs| self.checker.server_address(rs))
            .map(|a| a.to_string());
        tracing::info_span!("virtual_server", %service, real_server, notify = kind)
    }

    fn flush(&mut self, dirty: &mut Vec<VsId>, at: clock::Instant) {
        for vs in dirty.drain(..) {
            if let Some(service) = self.service(vs) {
                let _ = self.reports.send(Report::Pool {
                    vs,
                    service,
                    destinations: self.checker.pool(vs),
                    at,
                });
            }
        }
    }

    fn status(&self) -> Vec<VsStatus> {
        (0..self.checker.vs_count())
            .filter_map(|i| {
                let vs = VsId(u32::try_from(i).ok()?);
                let (quorum_up, sorry_active) = self.checker.quorum_state(vs)?;
                Some(VsStatus {
                    vs,
                    service: self.service(vs)?,
                    quorum_up,
                    sorry_active,
                    suspended: self.checker.is_suspended(vs),
                    servers: self
                        .checker
                        .vs_servers(vs)
                        .filter_map(|rs| self.rs_status(rs))
                        .collect(),
                })
            })
            .collect()
    }

    fn rs_status(&self, rs: RsId) -> Option<RsStatus> {
        let (alive, weight) = self.checker.server_state(rs)?;
        Some(RsStatus {
            address: self.checker.server_address(rs)?,
            alive,
            weight,
            admin: self.checker.admin(rs)?,
            checks: self
                .checker
                .server_probes(rs)
                .filter_map(|probe| {
                    let (up, last) = self.checker.probe_state(probe)?;
                    Some(CheckStatus {
                        kind: self.probes.get(probe.0 as usize)?.kind(),
                        up,
                        last,
                        took: self.took.get(probe.0 as usize).copied().flatten(),
                    })
                })
                .chain(self.checker.server_files(rs).filter_map(|file| {
                    let (_, failed) = self.checker.file_state(file)?;
                    Some(CheckStatus {
                        kind: "FILE_CHECK",
                        up: !failed,
                        last: None,
                        took: None,
                    })
                }))
                .collect(),
        })
    }

    /// Stops probing; runs the notifies of a shutdown for the virtual
    /// servers not `kept` and waits for every notify.
    async fn shutdown(&mut self, kept: &[bool]) {
        // Closes its sockets; its probes are dropped.
        self.prober = None;
        for action in self.checker.shutdown_except(kept) {
            if let Action::Notify(target) = action {
                self.notify(target);
            }
        }
        while self.notifies.join_next().await.is_some() {}
    }
}
