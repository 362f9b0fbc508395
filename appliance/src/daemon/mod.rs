//! The daemon: [`run`] loads the config, starts each concern on its own
//! loop and waits for signals.
//!
//! - VRRP ([`vrrp`]) runs on a thread of its own, so nothing below can
//!   delay an advert; it feeds the service manager's watchdog.
//! - The kernel's load balancer is programmed on a thread of its own
//!   ([`programmer`]), given the table to hold at start, on every pool
//!   change and when an instance gating `only_when_master` services
//!   changes state: a kernel slow to answer delays nothing else.
//! - This loop (the control loop) owns the rest: the health checker's
//!   reports ([`pools`]) and transitions; the IPVS
//!   connection sync daemon, which follows its VRRP instance ([`lvs`]);
//!   `appliance status` and `appliance reload` over a local socket
//!   ([`status`], [`reload`]); the operator's real-server settings and
//!   drains ([`admin`], [`operator`]); planned handovers ([`switchover`]);
//!   the metrics endpoint; readiness, reloads and the status
//!   line for systemd ([`systemd`]); the alert mail, queued to a task of
//!   its own so a relay never holds anything up ([`mail`]).
//!
//! - The BGP speaker ([`bgp`]), when `[bgp]` is configured: the control
//!   loop tells it which anycast VIPs the kernel can serve after each
//!   table the dataplane thread applies; `appliance drain-director`
//!   withdraws everything and stops once the traffic ended or moved
//!   ([`drain_director`]).
//!
//! SIGTERM and SIGINT withdraw the BGP routes, resign (priority 0), remove
//! the VIPs and return;
//! SIGHUP reloads the config ([`reload`]), keeping the running one if the
//! new one is invalid. Both directors keep the virtual servers
//! whatever their VRRP state (as keepalived does), so a takeover needs no
//! dataplane work; the services stay in the kernel when the daemon stops,
//! so a restart reconciles instead of flushing live connections.

mod admin;
mod announce;
mod bgp;
mod drain_director;
mod lock;
mod lvs;
mod mail;
mod operator;
pub(crate) mod plan;
mod pools;
mod programmer;
mod reload;
mod resume;
mod retry;
pub mod status;
mod switchover;
pub(crate) mod systemd;
mod timeline_log;
pub(crate) mod track_file;
mod track_process;
mod vrrp;

use crate::check::runner::{self, Report};
use crate::clock::Instant;
use crate::config::model::{TrackedFile, VirtualServer, VirtualServerGroup};
use crate::config::{self, Config, Diagnostic, Diagnostics};
use crate::dataplane::{self, ServiceKey, Table};
use crate::metrics::Metrics;
use crate::net::{socket, vip};
use crate::notify_fifo::Fifos as NotifyFifos;
use crate::script::check::{self as script_check, Scripts};
use crate::timeline::{Event as TimelineEvent, EventKind};
use crate::vrrp::machine::State;
use lvs::Lvs;
use plan::Plan;
use pools::Pools;
use programmer::Programmer;
use reload::PendingReload;
use retry::Backoff;
use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use timeline_log::TimelineLog;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn};

/// Pause after a socket error, so a broken socket cannot spin a loop.
const SOCKET_ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// What `appliance run` was asked to do.
#[derive(Clone, Debug)]
pub struct Options {
    pub config: PathBuf,
    /// Append the failover timeline here, as JSON lines.
    pub timeline: Option<PathBuf>,
    /// Rotate the timeline file at this size (see [`crate::rotating`]).
    pub max_file_size: Option<u64>,
    /// Where the dataplane's ownership record lives (services the appliance
    /// created); `/run/appliance` by default, so it lasts as long as the
    /// kernel's tables.
    pub state_dir: PathBuf,
    /// Where `appliance status` finds the daemon.
    pub socket: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid config:\n{0}")]
    Config(Diagnostics),
    #[error(transparent)]
    Plan(#[from] plan::Error),
    #[error(transparent)]
    Table(#[from] dataplane::BuildError),
    #[error("health checker: {0}")]
    Checker(#[from] runner::Error),
    #[error("dataplane: {0}")]
    Dataplane(#[from] dataplane::Error),
    #[error(transparent)]
    Vip(#[from] vip::Error),
    #[error("network: {0}")]
    Network(#[from] crate::net::setup::Error),
    #[error(transparent)]
    Socket(#[from] socket::Error),
    #[error(transparent)]
    Vmac(#[from] crate::net::vmac::Error),
    #[error("interface {interface}: {source}")]
    Announcer {
        interface: String,
        #[source]
        source: crate::net::gratuitous::Error,
    },
    #[error("interface {interface} has no {family} address to send adverts from")]
    NoAddress {
        interface: String,
        family: &'static str,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Lock(#[from] lock::Error),
    /// A reload whose config was valid but some of which failed to apply.
    #[error("reload applied in part: {0}")]
    PartialReload(String),
    /// The VRRP thread ended while the daemon ran (it panicked): the
    /// daemon stops, so the service manager restarts it and the peer takes
    /// the VIPs meanwhile, rather than run on with no one advertising.
    #[error("VRRP stopped unexpectedly; the daemon stops (its service manager restarts it)")]
    VrrpStopped,
}

/// Why [`check_config`] refused a config.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// Problems in the file, each at its position.
    #[error("{0}")]
    Invalid(Diagnostics),
    /// The file is valid but the daemon cannot run it.
    #[error("{}: {source}", file.display())]
    Plan {
        file: PathBuf,
        #[source]
        source: plan::Error,
    },
    /// The file is valid but the kernel's load balancer cannot hold its
    /// virtual servers.
    #[error("{}: {source}", file.display())]
    Table {
        file: PathBuf,
        #[source]
        source: dataplane::BuildError,
    },
}

impl CheckError {
    /// One line per problem, as `appliance check-config` prints them:
    /// `FILE:LINE:COL: message`, or `FILE: problem`.
    pub fn lines(&self) -> Vec<String> {
        match self {
            Self::Invalid(diagnostics) => diagnostics.iter().map(ToString::to_string).collect(),
            other => vec![other.to_string()],
        }
    }
}

/// Loads and validates `file`, then checks its programs against this
/// system ([`script_check`]: their users, whether the daemon can become
/// them, who could change them), as this process would run them. The
/// warnings of both come back, in file order.
fn load_checked(file: &Path) -> Result<(Config, Scripts, Vec<Diagnostic>), Diagnostics> {
    let (config, map) = config::load_file_mapped(file)?;
    let checked = script_check::check(&config, &map, &script_check::System::read())?;
    let mut warnings = map.warnings();
    warnings.extend(checked.warnings);
    warnings.sort_by(|a, b| a.pos.cmp(&b.pos));
    Ok((config, checked.scripts, warnings))
}

/// [`load_checked`] for the daemon: the warnings are logged.
fn load(file: &Path) -> Result<(Config, Scripts), Diagnostics> {
    let (config, scripts, warnings) = load_checked(file)?;
    for warning in &warnings {
        warn!(at = %warning.pos, warning = %warning.message, "config");
    }
    Ok((config, scripts))
}

/// What `appliance check-config` and init check before a start: the file
/// loads and validates, its programs can run as configured, and what the
/// daemon derives from it (its VRRP plan, the kernel's table) can be built.
/// The config comes back with the warnings loading found.
pub fn check_config(file: &Path) -> Result<(Config, Vec<Diagnostic>), CheckError> {
    let (config, scripts, warnings) = load_checked(file).map_err(CheckError::Invalid)?;
    plan::plan(&config, &scripts, "check-config").map_err(|source| CheckError::Plan {
        file: file.to_path_buf(),
        source,
    })?;
    dataplane::from_config(&config.virtual_server, &config.virtual_server_group).map_err(
        |source| CheckError::Table {
            file: file.to_path_buf(),
            source,
        },
    )?;
    Ok((config, warnings))
}

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn run(options: Options) -> Result<(), Error> {
    let (config, scripts) = load(&options.config).map_err(Error::Config)?;
    let plan = plan::plan(&config, &scripts, &hostname())?;
    let pools = Pools::new(&config.virtual_server, &config.virtual_server_group)?;
    let timeline = TimelineLog::open(options.timeline.as_deref(), options.max_file_size).map_err(
        |source| Error::Io {
            what: "opening the timeline file".into(),
            source,
        },
    )?;
    let signals = |kind: SignalKind, name: &str| {
        signal(kind).map_err(|source| Error::Io {
            what: format!("installing the {name} handler"),
            source,
        })
    };
    let mut sigterm = signals(SignalKind::terminate(), "SIGTERM")?;
    let mut sigint = signals(SignalKind::interrupt(), "SIGINT")?;
    let mut sighup = signals(SignalKind::hangup(), "SIGHUP")?;
    let mut sigquit = signals(SignalKind::quit(), "SIGQUIT")?;

    // Before anything touches the system: a second daemon on the same
    // state would undo the first's work.
    let _lock = lock::acquire(&options.state_dir)?;
    raise_file_limit(descriptors_needed(&config));
    let mut daemon = Daemon::new(options, plan, timeline, config.global.dataplane)?;
    daemon.scripts = Arc::new(scripts);
    let node = daemon.plan.node.clone();
    daemon.alerts.configure(&config, &node, &hostname());
    // The host's own addresses first: the metrics endpoint, the VRRP
    // sockets and the dataplane may need them.
    crate::net::setup::apply(&config.network).await?;
    // Before the VRRP or the dataplane touch the kernel: an address that
    // cannot be bound stops the start.
    daemon.status_page.store(
        config.global.status_page,
        std::sync::atomic::Ordering::Relaxed,
    );
    daemon.serve_metrics(config.global.metrics_listen).await?;
    daemon.servers = config.virtual_server.clone();
    daemon.groups = config.virtual_server_group.clone();
    // What the operator set before a restart holds from the first table
    // on (for the real servers the config still has).
    let mut pools = pools;
    if let Err(e) = daemon
        .settings
        .forget_unknown(&config.virtual_server, &pools)
    {
        warn!(error = %e, "the operator's settings could not be recorded");
    }
    pools.set_admin(daemon.settings.overlay());
    // The start waits for the first table: a kernel that cannot hold it
    // stops the start.
    daemon.program(pools.desired());
    daemon.programmed().await?;
    // Announced from a table the kernel holds.
    if let Some(settings) = &config.bgp {
        daemon.bgp = Some(bgp::Speaker::start(settings));
        daemon.announce_servable();
    }
    // Before the checker and the VRRP driver, which write to them; from
    // here on every way out goes through `finish`, which closes them.
    daemon.fifos = Some(NotifyFifos::open(
        &config.global,
        &daemon.scripts,
        &daemon.metrics,
    ));
    daemon.start_checks(&config, pools, None)?;
    daemon.serve_status(config.global.status_group.as_deref())?;
    let mut reports = match daemon.start_vrrp().await {
        Ok(reports) => reports,
        Err(e) => {
            // Nothing half-started stays: the checker, the status socket
            // (VRPP removed what it had started itself).
            daemon.shutdown(None).await;
            return Err(e);
        }
    };
    let status = daemon.status_line();
    daemon.systemd.ready(status);
    let mut alive = tokio::time::interval(resume::period(&daemon.plan));
    loop {
        let repair = daemon.repair.clone();
        tokio::select! {
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
            _ = sigquit.recv() => {
                daemon.systemd.stopping();
                daemon.leave_for_restart().await;
                return Ok(());
            }
            _ = sighup.recv() => {
                // Logged, and kept for `appliance status`, by reload itself.
                daemon.reload(None).await;
            }
            Some(event) = daemon.events.recv() => {
                daemon.on_event(event).await;
                // What is already queued, before the kernel is told.
                for _ in 0..EVENT_BATCH {
                    let Ok(event) = daemon.events.try_recv() else {
                        break;
                    };
                    daemon.on_event(event).await;
                }
                daemon.program_pools();
            }
            Some(outcome) = daemon.outcomes.recv() => {
                daemon.on_programmed(outcome);
            }
            report = reports.recv() => match report {
                Some(report) => daemon.on_vrrp(report),
                None => {
                    daemon.systemd.stopping();
                    // The VIPs first: the rest may wait on the kernel.
                    vrrp::release_vips(&daemon.plan).await;
                    daemon.shutdown(None).await;
                    return Err(Error::VrrpStopped);
                }
            },
            () = repair.wait() => {
                daemon.repair();
            }
            () = tick(&mut daemon.drain_poll) => daemon.count_drained(),
            () = tick(&mut daemon.director_poll) => daemon.count_director(),
            _ = alive.tick() => {
                daemon.record_masters();
                daemon.answer_switchovers(true);
            }
        }
        // `appliance drain-director` ended: a stop like SIGTERM's.
        if daemon.stop_requested {
            break;
        }
    }
    daemon.systemd.stopping();
    daemon.shutdown(Some(&mut reports)).await;
    Ok(())
}

/// How long the alert mail still queued at a stop may take to go out.
const MAIL_AT_STOP: std::time::Duration = std::time::Duration::from_secs(5);

/// Events handled at most after the one that woke the control loop, before
/// the pools they changed are programmed.
const EVENT_BATCH: usize = 1024;

/// The next tick of `interval`, or never without one.
async fn tick(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Descriptors the daemon needs besides its checks: VRRP and netlink
/// sockets, status and metrics clients (32 each), log files, notifiers.
const BASE_DESCRIPTORS: u64 = 256;

/// The open files `config`'s checks need at once: one socket per
/// full-connect or HTTP check in flight (at most the runner's
/// `max_in_flight`), three pipes' worth per MISC_CHECK, plus the base.
fn descriptors_needed(config: &Config) -> u64 {
    let checks: u64 = config
        .virtual_server
        .iter()
        .flat_map(|vs| &vs.real_server)
        .map(|rs| rs.check.len() as u64)
        .sum();
    let in_flight = checks.min(runner::Options::default().max_in_flight as u64);
    BASE_DESCRIPTORS + in_flight * 3
}

/// The limit to set, if any: the soft limit up to the hard one, and the
/// hard one too when it is below `need` (which takes CAP_SYS_RESOURCE).
fn file_limit(soft: u64, hard: u64, need: u64) -> Option<(u64, u64)> {
    let hard = hard.max(need);
    (soft < hard).then_some((hard, hard))
}

/// Raises the open files limit to what the configured checks need, and
/// the soft limit to the hard one anyway: the default soft limit (1024) is
/// far below what thousands of real servers need. Raising the hard limit
/// takes CAP_SYS_RESOURCE; without it the administrator's (systemd's
/// `LimitNOFILE=`) stays, and a warning says it is too low.
fn raise_file_limit(need: u64) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok(limits) => limits,
        Err(e) => {
            warn!(error = %e, "reading the open files limit failed");
            return;
        }
    };
    let Some((to_soft, to_hard)) = file_limit(soft, hard, need) else {
        return;
    };
    match setrlimit(Resource::RLIMIT_NOFILE, to_soft, to_hard) {
        Ok(()) => debug!(
            from = soft,
            to = to_soft,
            need,
            "raised the open files limit"
        ),
        Err(e) if to_hard > hard => {
            let raised = setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok();
            warn!(
                limit = if raised { hard } else { soft },
                need,
                error = %e,
                "the open files limit is below what the checks need (raise LimitNOFILE=)"
            );
        }
        Err(e) => warn!(soft, hard, error = %e, "raising the open files limit failed"),
    }
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into())
}

/// What the feeder tasks tell the control loop.
enum Event {
    /// A health checker's report; `generation` tells which checker sent it
    /// (a reload starts a new one while the old one's may still be queued).
    Check { generation: u64, report: Report },
    /// A status or metrics client waits for an answer.
    Client(status::Ask),
    /// A checker's reports ended (it panicked, or was stopped).
    CheckerEnded { generation: u64 },
    /// The connections of draining real servers, counted by the dataplane
    /// thread.
    Counted {
        wanted: Vec<admin::Target>,
        result: Result<Vec<dataplane::Connections>, String>,
    },
    /// The connections of a draining director's announced services.
    DirectorCounted {
        result: Result<Vec<dataplane::Connections>, String>,
    },
}

impl From<status::Ask> for Event {
    fn from(ask: status::Ask) -> Self {
        Event::Client(ask)
    }
}

struct Daemon {
    options: Options,
    plan: Plan,
    origin: tokio::time::Instant,
    /// The VRRP driver, once started.
    vrrp: Option<vrrp::Handle>,
    /// Each instance's state as the VRRP driver last reported it.
    states: HashMap<String, State>,
    events: mpsc::Receiver<Event>,
    sender: mpsc::Sender<Event>,
    tasks: Vec<JoinHandle<()>>,
    timeline: Arc<Mutex<TimelineLog>>,
    /// Counters for the metrics endpoint, kept whether or not it is served.
    metrics: Arc<Metrics>,
    /// Where the metrics endpoint listens, from start (changing it takes a
    /// restart).
    metrics_listen: Option<SocketAddr>,
    /// Whether the metrics endpoint serves the status page (a reload
    /// turns it on or off at once).
    status_page: Arc<std::sync::atomic::AtomicBool>,
    /// The thread that programs the kernel's load balancer, its outcomes,
    /// the table the kernel should hold (the configured services with
    /// their healthy servers), and the backend that holds it once open.
    programmer: Option<Programmer>,
    outcomes: mpsc::UnboundedReceiver<programmer::Outcome>,
    table: Table,
    backend: Option<&'static str>,
    /// Why the kernel does not hold `table` (the last programming failed),
    /// and why the checker is not running though virtual servers are
    /// configured; both are retried on `repair`'s schedule.
    dataplane_fault: Option<String>,
    checker_fault: Option<String>,
    repair: Backoff,
    /// The sync daemon and the IPVS timeouts.
    lvs: Lvs,
    /// The virtual servers checked, their pools, and the checker of them
    /// (none without virtual servers).
    servers: Vec<VirtualServer>,
    /// The config's `virtual_server_group`s, which `servers` may name.
    groups: Vec<VirtualServerGroup>,
    /// The config's `track_file`s, for the servers' FILE_CHECKs.
    track_files: Vec<TrackedFile>,
    pools: Option<Pools>,
    checker: Option<(runner::Handle, JoinHandle<()>)>,
    /// How the checker's programs run (MISC_CHECK, notify_up/down,
    /// quorum_up/down).
    scripts: Arc<Scripts>,
    /// Counts checkers started, so reports of a stopped one are ignored.
    generation: u64,
    /// The status socket, once bound (removed on shutdown).
    status_socket: Option<PathBuf>,
    /// The service manager, when there is one.
    systemd: systemd::Notifier,
    /// When the daemon started (wall clock, RFC 3339), and how the last
    /// reload ended.
    started: String,
    last_reload: Option<status::ReloadStatus>,
    /// Reloads whose answer waits for the dataplane to apply their table.
    reloads: Vec<PendingReload>,
    /// What the operator set for real servers; the changes waiting for the
    /// dataplane, the drains in progress, their poll, and whether a count
    /// of their connections is under way.
    settings: admin::Settings,
    changes: Vec<operator::PendingChange>,
    drains: Vec<operator::Drain>,
    drain_poll: Option<tokio::time::Interval>,
    counting: bool,
    /// Whether the record of masters ([`resume`]) names any.
    masters_recorded: bool,
    /// Switchovers waiting for their instances to step down.
    switchovers: Vec<switchover::PendingSwitchover>,
    /// The checker changed a pool since the last table was programmed.
    pools_changed: bool,
    /// The notify FIFOs and their scripts, from start (changing them takes
    /// a restart).
    fifos: Option<NotifyFifos>,
    /// What mails, and the queue to the task that sends it.
    alerts: mail::Alerts,
    /// The BGP speaker, with `[bgp]`.
    bgp: Option<bgp::Speaker>,
    /// `appliance drain-director` under way, its poll, whether a count of
    /// its connections is out, and whether it asks the daemon to stop.
    director_drain: Option<drain_director::Pending>,
    director_poll: Option<tokio::time::Interval>,
    director_counting: bool,
    stop_requested: bool,
}

impl Daemon {
    /// The daemon, its dataplane thread started (the backend is chosen
    /// once, when it first has work: changing `dataplane` in the config
    /// takes a restart).
    fn new(
        options: Options,
        plan: Plan,
        timeline: TimelineLog,
        choice: Option<dataplane::Choice>,
    ) -> Result<Self, Error> {
        let (sender, events) = mpsc::channel(1024);
        let metrics = Arc::new(Metrics::new());
        let (programmer, outcomes) = Programmer::start(
            choice,
            options.state_dir.join("dataplane.json"),
            metrics.clone(),
        )
        .map_err(|source| Error::Io {
            what: "starting the dataplane thread".into(),
            source,
        })?;
        let settings = admin::Settings::load(options.state_dir.join("real-servers.json"));
        let alerts = mail::Alerts::start(metrics.clone());
        Ok(Self {
            options,
            plan,
            origin: tokio::time::Instant::now(),
            vrrp: None,
            states: HashMap::new(),
            events,
            sender,
            tasks: Vec::new(),
            timeline: Arc::new(Mutex::new(timeline)),
            metrics,
            metrics_listen: None,
            status_page: Arc::default(),
            programmer: Some(programmer),
            outcomes,
            table: Table::new(),
            backend: None,
            dataplane_fault: None,
            checker_fault: None,
            repair: Backoff::default(),
            lvs: Lvs::new(),
            servers: Vec::new(),
            groups: Vec::new(),
            track_files: Vec::new(),
            pools: None,
            checker: None,
            scripts: Arc::default(),
            generation: 0,
            status_socket: None,
            systemd: systemd::Notifier::default(),
            started: status::wall_now(),
            last_reload: None,
            reloads: Vec::new(),
            settings,
            changes: Vec::new(),
            drains: Vec::new(),
            drain_poll: None,
            counting: false,
            masters_recorded: false,
            switchovers: Vec::new(),
            fifos: None,
            pools_changed: false,
            alerts,
            bgp: None,
            director_drain: None,
            director_poll: None,
            director_counting: false,
            stop_requested: false,
        })
    }

    /// Makes the kernel's load balancer hold `table` (only the difference
    /// is applied), on the dataplane thread; returns the submission's
    /// generation, whose outcome comes to [`Self::on_programmed`].
    fn program(&mut self, table: Table) -> u64 {
        self.table = table;
        self.pools_changed = false;
        self.submit()
    }

    /// Programs the pools the checker changed since the last table, once
    /// for however many changed, and only if the table changed (a start's
    /// first pools are mostly the configured destinations).
    fn program_pools(&mut self) {
        if !std::mem::take(&mut self.pools_changed) {
            return;
        }
        if let Some(table) = self.pools.as_ref().map(Pools::desired)
            && table != self.table
        {
            self.program(table);
        }
    }

    /// Hands `self.table`, less the withheld services, to the dataplane
    /// thread.
    fn submit(&mut self) -> u64 {
        let withheld = self.withheld();
        let table: Table = self
            .table
            .iter()
            .filter(|(key, _)| !withheld.contains(key))
            .map(|(key, service)| (*key, service.clone()))
            .collect();
        let job = programmer::Job {
            table,
            withheld: withheld.len(),
        };
        self.programmer.as_mut().map_or(0, |p| p.submit(job))
    }

    /// Waits for the outcome of the last submission (acting on every
    /// outcome on the way), and returns it.
    async fn programmed(&mut self) -> Result<(), Error> {
        let awaited = self.programmer.as_ref().map_or(0, Programmer::submitted);
        while let Some(outcome) = self.outcomes.recv().await {
            let generation = outcome.generation;
            let error = self.on_programmed(outcome);
            if generation >= awaited {
                return error.map_or(Ok(()), |e| Err(e.into()));
            }
        }
        Err(Error::Io {
            what: "dataplane".into(),
            source: std::io::Error::other("the dataplane thread stopped"),
        })
    }

    /// The dataplane thread applied a submission (and the ones it replaced
    /// before their turn): its fault, if any, is kept and retried, and the
    /// reloads waiting for it are answered. Returns the failure, if any.
    fn on_programmed(&mut self, outcome: programmer::Outcome) -> Option<dataplane::Error> {
        if outcome.backend.is_some() {
            self.backend = outcome.backend;
        }
        let latest = self
            .programmer
            .as_ref()
            .is_none_or(|p| outcome.generation >= p.submitted());
        let failure = outcome.result.err();
        let error = failure.as_ref().map(ToString::to_string);
        // A failure of a table since replaced is still the kernel's state
        // until the newer one is applied; a success only clears the fault
        // once the latest table is in.
        if let Some(e) = &error {
            self.dataplane_fault = Some(e.clone());
        } else if latest && self.dataplane_fault.is_some() {
            self.dataplane_fault = None;
            info!(failures = self.repair.failures(), "dataplane repaired");
        }
        self.schedule_repair();
        self.answer_reloads(outcome.generation, error.as_deref());
        self.answer_changes(outcome.generation, error.as_deref());
        if latest {
            self.announce_servable();
        }
        failure
    }

    /// Tells the BGP speaker what the kernel can serve now: nothing while
    /// the dataplane is faulty (its state is unknown) or the director
    /// drains, else the announced
    /// prefixes holding a service that is not withheld and has a real
    /// server taking connections.
    fn announce_servable(&self) {
        let Some(speaker) = &self.bgp else {
            return;
        };
        let prefixes = if self.dataplane_fault.is_some() || self.director_draining() {
            BTreeSet::new()
        } else {
            bgp::servable(&speaker.settings().announce, &self.table, &self.withheld())
        };
        speaker.announce(prefixes);
    }

    /// Arms the repair timer while a part is down, disarms it otherwise.
    fn schedule_repair(&mut self) {
        if self.dataplane_fault.is_none() && self.checker_fault.is_none() {
            self.repair.succeeded();
        } else if self
            .repair
            .due()
            .is_none_or(|at| at <= tokio::time::Instant::now())
        {
            self.repair.failed(tokio::time::Instant::now());
        }
    }

    /// Tries again what failed: the dataplane's table (its outcome comes
    /// later), the checker. Returns the dataplane submission made, if any.
    fn repair(&mut self) -> Option<u64> {
        let submitted = match &self.dataplane_fault {
            Some(e) => {
                warn!(failures = self.repair.failures(), error = %e, "dataplane failing; applying the table again");
                Some(self.submit())
            }
            None => None,
        };
        if self.checker_fault.is_some() {
            match self.restart_checks(None) {
                Ok(()) => {
                    info!(
                        failures = self.repair.failures(),
                        "health checker started on retry"
                    );
                    self.checker_fault = None;
                }
                Err(e) => {
                    warn!(failures = self.repair.failures(), error = %e, "health checker still cannot start; retrying");
                    self.checker_fault = Some(e.to_string());
                }
            }
        }
        // Each failed round waits longer (a dataplane fault stands until
        // the thread reports its new outcome).
        if self.dataplane_fault.is_some() || self.checker_fault.is_some() {
            self.repair.failed(tokio::time::Instant::now());
        } else {
            self.repair.succeeded();
        }
        submitted
    }

    /// The services of virtual servers held only while their VRRP instance
    /// is MASTER (`only_when_master`) whose instance is not MASTER now.
    fn withheld(&self) -> BTreeSet<ServiceKey> {
        self.servers
            .iter()
            .filter(|vs| {
                vs.only_when_master
                    .as_ref()
                    .is_some_and(|instance| self.states.get(instance) != Some(&State::Master))
            })
            .filter_map(|vs| dataplane::build::services(vs, &self.groups).ok())
            .flatten()
            .map(|service| service.key)
            .collect()
    }

    fn now(&self) -> Instant {
        Instant::from_duration(self.origin.elapsed())
    }

    /// Starts checking `config`'s virtual servers (whose table `pools` was
    /// built from) and their FILE_CHECKs' files; its
    /// reports come to the event loop. Nothing runs without virtual
    /// servers.
    fn start_checks(
        &mut self,
        config: &Config,
        pools: Pools,
        resume: Option<runner::Resume>,
    ) -> Result<(), Error> {
        self.servers = config.virtual_server.clone();
        self.groups = config.virtual_server_group.clone();
        self.track_files = config.track_file.clone();
        self.pools = Some(pools);
        let outcome = self.restart_checks(resume);
        self.checker_fault = outcome.as_ref().err().map(ToString::to_string);
        self.schedule_repair();
        outcome
    }

    /// Starts the checker on `self.servers`, continuing what `resume`
    /// carries over a reload.
    fn restart_checks(&mut self, resume: Option<runner::Resume>) -> Result<(), Error> {
        if self.servers.is_empty() {
            return Ok(());
        }
        let admin = self
            .pools
            .as_ref()
            .map(|pools| self.settings.for_checker(&self.servers, pools))
            .unwrap_or_default();
        let options = runner::Options {
            origin: self.origin,
            metrics: Some(self.metrics.clone()),
            scripts: self.scripts.clone(),
            admin,
            track_files: self.track_files.clone(),
            fifo: self
                .fifos
                .as_ref()
                .map(|f| f.lvs.clone())
                .unwrap_or_default(),
            ..runner::Options::default()
        };
        let (handle, reports) = runner::spawn_resumed(&self.servers, options, resume)?;
        self.generation += 1;
        let forward = tokio::spawn(forward_reports(
            reports,
            self.generation,
            self.sender.clone(),
        ));
        self.checker = Some((handle, forward));
        info!(
            virtual_servers = self.servers.len(),
            "health checker started"
        );
        Ok(())
    }

    /// Serves Prometheus metrics on `listen`, when the config sets it. A
    /// listen address that cannot be bound stops the start: the operator
    /// asked for it.
    async fn serve_metrics(&mut self, listen: Option<SocketAddr>) -> Result<(), Error> {
        self.metrics_listen = listen;
        let Some(listen) = listen else {
            return Ok(());
        };
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|source| Error::Io {
                what: format!("metrics endpoint: binding {listen}"),
                source,
            })?;
        let sender = self.sender.clone();
        let status = move || {
            let sender = sender.clone();
            async move {
                let (tx, rx) = oneshot::channel();
                sender
                    .send(Event::Client(status::Ask::Status(tx)))
                    .await
                    .ok()?;
                rx.await.ok()
            }
        };
        let history = self
            .timeline
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .history();
        let page = crate::metrics::Page {
            on: self.status_page.clone(),
            history,
        };
        self.tasks.push(tokio::spawn(crate::metrics::serve(
            listener,
            self.metrics.clone(),
            page,
            status,
        )));
        info!(%listen, "metrics endpoint ready");
        Ok(())
    }

    /// Serves `appliance status`. Without the socket (no permission on its
    /// directory, say) the daemon runs on: its real work needs none.
    /// Serves `appliance status` on the socket, to root and the daemon's
    /// user, and for reading to `status_group`'s members. A group that
    /// does not exist stops the start (validation names it first).
    fn serve_status(&mut self, status_group: Option<&str>) -> Result<(), Error> {
        let group = match status_group {
            None => None,
            Some(name) => match crate::script::accounts::Accounts::read().group(name) {
                Some(gid) => Some(gid),
                None => {
                    return Err(Error::Io {
                        what: format!("status_group '{name}'"),
                        source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such group"),
                    });
                }
            },
        };
        let access = status::Access {
            owner: nix::unistd::geteuid().as_raw(),
            group,
        };
        let path = self.options.socket.clone();
        match status::bind(&path, group.map(nix::unistd::Gid::from_raw)) {
            Ok(listener) => {
                let sender = self.sender.clone();
                self.tasks
                    .push(tokio::spawn(status::serve(listener, sender, access)));
                info!(socket = %path.display(), group = status_group, "status socket ready");
                self.status_socket = Some(path);
            }
            Err(e) => {
                warn!(socket = %path.display(), error = %e, "no status socket: `appliance status` cannot reach this daemon");
            }
        }
        Ok(())
    }

    /// Stops the checker, waiting for its `omega` notifiers.
    async fn stop_checks(&mut self) {
        if let Some((handle, forward)) = self.checker.take() {
            forward.abort();
            handle.shutdown().await;
            info!("health checker stopped");
        }
    }

    /// Stops the checker for a reload, handing over the virtual servers
    /// whose `kept[i]` is true; its decision core, if it was running.
    async fn hand_over_checks(
        &mut self,
        kept: Vec<bool>,
    ) -> Option<crate::check::decision::Checker> {
        let (handle, forward) = self.checker.take()?;
        forward.abort();
        let checker = handle.hand_over(kept).await;
        info!("health checker stopped for the reload");
        checker
    }

    /// The current checker ended on its own (a stopped one is no longer
    /// current): it panicked. It is started again on the repair timer;
    /// the kernel keeps the pools as they were meanwhile.
    fn on_checker_ended(&mut self, generation: u64) {
        if generation != self.generation || self.checker.is_none() {
            return;
        }
        self.checker = None;
        error!("the health checker stopped unexpectedly; restarting it");
        self.checker_fault = Some("the health checker stopped unexpectedly".into());
        self.schedule_repair();
    }

    /// A health checker's report: a transition goes to the log and the
    /// timeline; a pool goes to the dataplane.
    fn on_check(&mut self, generation: u64, report: Report) {
        let Some(pools) = &mut self.pools else {
            return;
        };
        if generation != self.generation {
            debug!(generation, "report of a stopped checker ignored");
            return;
        }
        let (vs, kind, detail, at) = match report {
            Report::Pool {
                vs, destinations, ..
            } => {
                // Programmed once the reports already queued are in
                // (program_pools): a start or a reload reports every
                // virtual server's pool at once.
                self.pools_changed |= pools.set(vs, destinations);
                return;
            }
            Report::Server {
                vs,
                address,
                alive,
                weight,
                cause,
                at,
                ..
            } => {
                self.alerts
                    .real_server(&self.servers, vs.0 as usize, address, alive, &cause);
                (
                    vs,
                    EventKind::RealServer {
                        address,
                        alive,
                        weight,
                    },
                    status::describe(&cause),
                    at,
                )
            }
            Report::Quorum {
                vs,
                up,
                weight_sum,
                threshold,
                at,
                ..
            } => {
                self.alerts
                    .quorum(&self.servers, vs.0 as usize, up, weight_sum, threshold);
                (
                    vs,
                    EventKind::Quorum {
                        up,
                        weight_sum,
                        threshold,
                    },
                    String::new(),
                    at,
                )
            }
            Report::SorryServer { vs, active, at, .. } => {
                (vs, EventKind::SorryServer { active }, String::new(), at)
            }
            // Logged when the operator asked; the timeline gets it here,
            // where the checker applied it.
            Report::Admin {
                vs,
                address,
                alive,
                admin,
                weight,
                at,
                ..
            } => (
                vs,
                EventKind::RealServer {
                    address,
                    alive,
                    weight,
                },
                format!("operator: {}", admin::describe(admin)),
                at,
            ),
        };
        let service = pools.name(vs).map(str::to_string);
        match &kind {
            EventKind::RealServer {
                address,
                alive,
                weight,
            } => {
                info!(service, %address, alive, weight, cause = %detail, "real server changed");
            }
            EventKind::Quorum {
                up,
                weight_sum,
                threshold,
            } => info!(service, up, weight_sum, threshold, "quorum changed"),
            EventKind::SorryServer { active } => info!(service, active, "sorry server"),
            _ => {}
        }
        let event = TimelineEvent {
            at,
            node: self.plan.node.clone(),
            instance: service,
            kind,
            detail,
        };
        vrrp::append(&self.timeline, &event);
    }

    /// A VRRP state change: the sync daemon follows its instance, the
    /// services gated on the instance enter or leave the kernel, and the
    /// service manager's status line changes.
    fn on_vrrp(&mut self, report: vrrp::Report) {
        let (instance, to, taker) = match report {
            vrrp::Report::StateChanged {
                instance,
                to,
                taker,
            } => (instance, to, taker),
            vrrp::Report::GroupChanged { group, to } => {
                self.alerts.vrrp(true, &group, to);
                return;
            }
        };
        self.alerts.vrrp(false, &instance, to);
        self.states.insert(instance.clone(), to);
        self.record_masters();
        self.switched(&instance, to, taker);
        self.lvs.state_changed(&instance, to);
        let gates = self
            .servers
            .iter()
            .any(|vs| vs.only_when_master.as_deref() == Some(instance.as_str()));
        if gates {
            self.submit();
        }
        let status = self.status_line();
        self.systemd.status(status);
    }

    /// Records the instances that are MASTER now ([`resume`]).
    fn record_masters(&mut self) {
        let masters: Vec<String> = self
            .states
            .iter()
            .filter(|(_, state)| **state == State::Master)
            .map(|(name, _)| name.clone())
            .collect();
        if masters.is_empty() && !self.masters_recorded {
            return;
        }
        resume::record(&resume::path(&self.options.state_dir), &masters);
        self.masters_recorded = !masters.is_empty();
    }

    /// Starts the VRRP driver on its thread; its reports come on the
    /// receiver.
    async fn start_vrrp(&mut self) -> Result<mpsc::UnboundedReceiver<vrrp::Report>, Error> {
        self.lvs.configure(self.plan.lvs.clone(), None);
        // A master back from a restart within its Master_Down_Interval
        // resumes as master (only this start: reloads compare the plan).
        let record = resume::path(&self.options.state_dir);
        let (handle, reports) = vrrp::Handle::start(vrrp::Setup {
            plan: resume::apply(&self.plan, &record, std::time::SystemTime::now()),
            origin: self.origin,
            timeline: self.timeline.clone(),
            metrics: self.metrics.clone(),
            fifo: self
                .fifos
                .as_ref()
                .map(|f| f.vrrp.clone())
                .unwrap_or_default(),
        })
        .await?;
        self.vrrp = Some(handle);
        Ok(reports)
    }

    /// The instances as the VRRP driver last published them.
    fn instances(&self) -> Vec<vrrp::InstanceView> {
        self.vrrp
            .as_ref()
            .map(|v| v.snapshot().instances)
            .unwrap_or_default()
    }

    /// The answer to `appliance status`.
    /// Answers a status request with the kernel's connections to each
    /// real server, from a task of its own: the dataplane thread may be
    /// busy with a table, and this loop never waits for it (past
    /// [`CONNECTIONS_WAIT`] the answer goes without them).
    fn answer_status(
        &self,
        mut status: status::Status,
        wanted: Vec<Wanted>,
        reply: oneshot::Sender<status::Status>,
    ) {
        let Some(programmer) = self.programmer.as_ref().filter(|_| !wanted.is_empty()) else {
            let _ = reply.send(status);
            return;
        };
        let answer = programmer.connections(wanted.iter().map(|w| (w.key, w.address)).collect());
        tokio::spawn(async move {
            match tokio::time::timeout(CONNECTIONS_WAIT, answer).await {
                Ok(Ok(Ok(counts))) => {
                    for (w, count) in wanted.iter().zip(&counts) {
                        if let Some(rs) = status
                            .virtual_servers
                            .get_mut(w.vs)
                            .and_then(|vs| vs.real_servers.get_mut(w.rs))
                        {
                            rs.connections
                                .get_or_insert_with(Default::default)
                                .add(count);
                        }
                    }
                }
                Ok(Ok(Err(e))) => debug!(error = %e, "status: no connections from the dataplane"),
                Ok(Err(_)) | Err(_) => {
                    debug!("status: the dataplane did not count the connections in time")
                }
            }
            let _ = reply.send(status);
        });
    }

    /// The daemon's state, and the kernel services and real servers whose
    /// connections it shows.
    async fn status(&self) -> (status::Status, Vec<Wanted>) {
        let now = self.now();
        let instances = self
            .instances()
            .into_iter()
            .map(|view| status::InstanceStatus {
                in_state_ms: view
                    .transition
                    .as_ref()
                    .map(|t| now.as_micros().saturating_sub(t.at.as_micros()) / 1000),
                last_transition: view.transition.map(|t| status::TransitionStatus {
                    from: t.from,
                    to: t.to,
                    reason: t.reason,
                    at: t.wall,
                }),
                name: view.name,
                vrid: view.vrid,
                state: view.state,
                priority: view.priority,
                base_priority: view.base_priority,
                interface: view.interface,
                vips: view.vips,
            })
            .collect();
        let checked = match &self.checker {
            Some((handle, _)) => handle.status().await.unwrap_or_default(),
            None => Vec::new(),
        };
        let pools = self.pools.as_ref();
        let mut wanted = Vec::new();
        if let Some(pools) = pools {
            for (vs, checked) in checked.iter().enumerate() {
                for (rs, server) in checked.servers.iter().enumerate() {
                    for key in pools.keys(checked.vs) {
                        wanted.push(Wanted {
                            vs,
                            rs,
                            key: *key,
                            address: server.address,
                        });
                    }
                }
            }
        }
        let started = std::time::SystemTime::now() - self.origin.elapsed();
        let virtual_servers = virtual_servers(
            checked,
            |vs| {
                pools
                    .and_then(|p| p.name(vs.vs))
                    .map_or_else(|| format!("{:?}", vs.service), str::to_string)
            },
            |at| status::wall(started + Duration::from_micros(at.as_micros())),
        );
        let status = status::Status {
            node: self.plan.node.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            pid: std::process::id(),
            config: self.options.config.clone(),
            started: self.started.clone(),
            last_reload: self.last_reload.clone(),
            dataplane: self.backend.map(str::to_string),
            faults: self.faults(),
            instances,
            virtual_servers,
            bgp_peers: self
                .bgp
                .as_ref()
                .map(bgp::Speaker::status)
                .unwrap_or_default(),
        };
        (status, wanted)
    }

    /// What is not running and retried: VRRP units, the dataplane, the
    /// checker.
    fn faults(&self) -> Vec<status::FaultStatus> {
        let pending = self
            .vrrp
            .as_ref()
            .map(|v| v.snapshot().pending)
            .unwrap_or_default();
        let units = pending.into_iter().map(|p| status::FaultStatus {
            part: format!("VRRP unit {}", p.name),
            error: p.error,
            failures: p.failures,
        });
        let local = [
            ("dataplane", &self.dataplane_fault),
            ("health checker", &self.checker_fault),
        ]
        .into_iter()
        .filter_map(|(part, fault)| {
            fault.as_ref().map(|error| status::FaultStatus {
                part: part.into(),
                error: error.clone(),
                failures: self.repair.failures(),
            })
        });
        units.chain(local).collect()
    }

    /// The service manager's status line.
    fn status_line(&self) -> String {
        let instances = self.instances();
        systemd::status_line(
            instances.iter().map(|i| (i.name.as_str(), i.state)),
            self.backend,
        )
    }

    async fn on_event(&mut self, event: Event) {
        // A client is answered only after the pools reported before it
        // went to the dataplane: what it is told is what is programmed.
        if !matches!(event, Event::Check { .. }) {
            self.program_pools();
        }
        match event {
            Event::Check { generation, report } => self.on_check(generation, report),
            Event::Client(status::Ask::Status(reply)) => {
                let (status, wanted) = self.status().await;
                self.answer_status(status, wanted, reply);
            }
            Event::Client(status::Ask::Reload(reply)) => self.reload(Some(reply)).await,
            Event::Client(status::Ask::Admin {
                real_server,
                service,
                change,
                reply,
            }) => self.operator(real_server, service, change, reply).await,
            Event::Client(status::Ask::Switchover {
                instance,
                to,
                reply,
            }) => {
                self.switchover(instance, to, reply).await;
            }
            Event::Client(status::Ask::DrainDirector { timeout, reply }) => {
                self.drain_director(timeout, reply);
            }
            Event::CheckerEnded { generation } => self.on_checker_ended(generation),
            Event::Counted { wanted, result } => self.on_counted(wanted, result).await,
            Event::DirectorCounted { result } => self.on_director_counted(result),
        }
    }

    /// SIGQUIT: stops as for a restart (an upgrade to a new binary): the
    /// masters neither resign nor remove their VIPs, the kernel's table
    /// stays, and the record says they were master just now, so a start
    /// within their Master_Down_Interval resumes and the backups never
    /// notice.
    async fn leave_for_restart(&mut self) {
        info!("stopping for a restart: the VIPs and the kernel's table stay");
        if let Some(speaker) = self.bgp.take() {
            speaker.stop().await;
        }
        if let Some(vrrp) = self.vrrp.take() {
            vrrp.detach().await;
        }
        self.record_masters();
        self.stop_checks().await;
        self.finish().await;
    }

    /// Stops everything; the VRRP driver's last `reports` (its instances
    /// stopping) are acted on, so gated services leave the kernel.
    async fn shutdown(&mut self, reports: Option<&mut mpsc::UnboundedReceiver<vrrp::Report>>) {
        info!("shutting down");
        // The routers first: flows move to the other directors while this
        // one still forwards.
        if let Some(speaker) = self.bgp.take() {
            speaker.stop().await;
        }
        if let Some(vrrp) = self.vrrp.take() {
            vrrp.shutdown().await;
        }
        if let Some(reports) = reports {
            while let Ok(report) = reports.try_recv() {
                self.on_vrrp(report);
            }
        }
        // Resigned: a clean stop leaves nothing to resume.
        resume::record(&resume::path(&self.options.state_dir), &[]);
        self.stop_checks().await;
        self.finish().await;
    }

    /// The end of a stop: the last table applied, the tasks and the status
    /// socket gone.
    async fn finish(&mut self) {
        // After the VRRP driver's and the checker's last lines.
        if let Some(fifos) = self.fifos.take() {
            fifos.close().await;
        }
        // The last table (gated services out) is applied before the end.
        if let Some(programmer) = self.programmer.take() {
            programmer.shutdown().await;
        }
        for task in self.tasks.drain(..) {
            task.abort();
        }
        // The last alerts (instances stopping) get a little time to go.
        self.alerts.finish(MAIL_AT_STOP).await;
        if let Some(path) = self.status_socket.take()
            && let Err(e) = std::fs::remove_file(&path)
        {
            debug!(socket = %path.display(), error = %e, "removing the status socket failed");
        }
        info!("stopped");
    }
}

/// The status view of the checker's virtual servers; `service` names each.
/// `wall` turns a check's time (since the daemon started) into wall clock.
/// A real server of a status answer (by its index there) in one kernel
/// service.
struct Wanted {
    vs: usize,
    rs: usize,
    key: ServiceKey,
    address: SocketAddr,
}

/// How long a status answer waits for the dataplane's connection counts.
const CONNECTIONS_WAIT: Duration = Duration::from_millis(500);

fn virtual_servers(
    checker: Vec<runner::VsStatus>,
    service: impl Fn(&runner::VsStatus) -> String,
    wall: impl Fn(Instant) -> String,
) -> Vec<status::VirtualServerStatus> {
    checker
        .into_iter()
        .map(|vs| status::VirtualServerStatus {
            service: service(&vs),
            quorum_up: vs.quorum_up,
            sorry_server_active: vs.sorry_active,
            suspended: vs.suspended,
            real_servers: vs
                .servers
                .into_iter()
                .map(|rs| status::RealServerStatus {
                    address: rs.address,
                    alive: rs.alive,
                    weight: rs.weight,
                    admin: rs.admin.mode.name().to_string(),
                    operator_weight: rs.admin.weight,
                    connections: None,
                    checks: rs
                        .checks
                        .into_iter()
                        .map(|c| status::CheckStatus {
                            kind: c.kind.to_string(),
                            up: c.up,
                            last: c.last.map(|l| status::LastCheck {
                                at: l.at,
                                wall: wall(l.at),
                                up: l.outcome.is_up(),
                                result: status::describe(&l.outcome),
                                latency_us: c
                                    .took
                                    .map(|t| u64::try_from(t.as_micros()).unwrap_or(u64::MAX)),
                            }),
                        })
                        .collect(),
                })
                .collect(),
        })
        .collect()
}

async fn forward_reports(
    mut reports: mpsc::UnboundedReceiver<Report>,
    generation: u64,
    sender: mpsc::Sender<Event>,
) {
    while let Some(report) = reports.recv().await {
        if sender
            .send(Event::Check { generation, report })
            .await
            .is_err()
        {
            return;
        }
    }
    let _ = sender.send(Event::CheckerEnded { generation }).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_limit_rises_to_what_the_checks_need() {
        // Soft below hard: up to hard.
        assert_eq!(file_limit(1024, 524_288, 3_328), Some((524_288, 524_288)));
        // Hard below the need: both to the need.
        assert_eq!(file_limit(1024, 2048, 3_328), Some((3_328, 3_328)));
        // Already enough and equal: nothing to do.
        assert_eq!(file_limit(4096, 4096, 3_328), None);
    }

    #[test]
    fn checks_in_flight_are_bounded_by_the_runner() {
        let mut config = Config::default();
        assert_eq!(descriptors_needed(&config), BASE_DESCRIPTORS);
        let text = "virtual_server 10.0.0.1 80 {\n  protocol TCP\n  real_server 10.0.0.2 80 {\n    TCP_CHECK {\n    }\n  }\n}\n";
        let (one, _, diagnostics) = crate::config::keepalived::load_str(Path::new("k.conf"), text);
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        config.virtual_server = one.virtual_server;
        assert_eq!(descriptors_needed(&config), BASE_DESCRIPTORS + 3);
        let server = config.virtual_server[0].real_server[0].clone();
        config.virtual_server[0].real_server = vec![server; 5_000];
        assert_eq!(descriptors_needed(&config), BASE_DESCRIPTORS + 1024 * 3);
    }
}
