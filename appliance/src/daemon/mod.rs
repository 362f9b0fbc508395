//! The tokio driver: wires the sans-IO VRRP units to raw sockets, VIPs,
//! gratuitous ARP / NA, track scripts, link events, signals and the
//! timeline. It makes no protocol decision: every input goes to a machine
//! and every action the machine returns is carried out here, in order.
//!
//! One task owns all state and runs the event loop; socket readers, track
//! scripts and the link watch are tasks that feed it through a channel.
//! SIGTERM and SIGINT resign (priority 0), remove the VIPs and return;
//! SIGHUP reloads the config, keeping the running one if the new one is
//! invalid.
//!
//! The virtual servers go to the kernel's load balancer through the
//! dataplane's reconcile, at start and on every reload; both directors keep
//! them whatever their VRRP state (as keepalived does), so a takeover needs
//! no dataplane work. The services stay in the kernel when the daemon stops:
//! a restart reconciles instead of flushing live connections. The IPVS
//! connection sync daemon follows its VRRP instance's state ([`lvs`]).
//!
//! The health checker runs for the virtual servers: each of its pool
//! reports becomes the desired table ([`pools`]) and goes through the same
//! reconcile; its transitions go to the timeline. `appliance status` asks
//! over a local socket ([`status`]), where `appliance reload` asks for a
//! reload too. Under systemd the loop reports readiness, its state and
//! reloads, and feeds the watchdog ([`systemd`]).

mod lvs;
pub mod plan;
mod pools;
pub mod status;
pub mod systemd;
mod timeline_log;

use crate::check::runner::{self, Report};
use crate::clock::Instant;
use crate::config::model::VirtualServer;
use crate::config::{self, Config, Diagnostics};
use crate::dataplane::{self, Backend, Reconciler, ServiceKey, Table};
use crate::metrics::Metrics;
use crate::net::IfIndex;
use crate::net::gratuitous::Announcer;
use crate::net::link::{LinkEvent, LinkWatch};
use crate::net::socket::{self, Received, VrrpSocket};
use crate::net::vip::{self, Addresses, Link};
use crate::script::{self, Program};
use crate::timeline::{Event as TimelineEvent, EventKind};
use crate::vrrp::group::SyncGroup;
use crate::vrrp::machine::{Action, Input, Machine, State, TrackName};
use crate::vrrp::packet::{
    self, Addresses as PacketAddresses, Expected, ExpectedVersion, IpContext, Packet, Rejection,
    Repr, Seconds, Variant,
};
use crate::vrrp::receive::{self, Delivery, Listener};
use crate::vrrp::unit::Unit;
use crate::vrrp::{Centiseconds, Version};
use lvs::Lvs;
use plan::{InstancePlan, Plan, ScriptPlan, UnitPlan};
use pools::Pools;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use timeline_log::TimelineLog;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn};

/// How long a notify program may run before it is killed.
const NOTIFY_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause after a socket error, so a broken socket cannot spin the loop.
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
    /// A reload whose config was valid but some of which failed to apply.
    #[error("reload applied in part: {0}")]
    PartialReload(String),
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

/// What `appliance check-config` and init check before a start: the file
/// loads and validates, and what the daemon derives from it (its VRRP plan,
/// the kernel's table) can be built.
pub fn check_config(file: &Path) -> Result<Config, CheckError> {
    let config = config::load_file(file).map_err(CheckError::Invalid)?;
    plan::plan(&config, "check-config").map_err(|source| CheckError::Plan {
        file: file.to_path_buf(),
        source,
    })?;
    dataplane::from_config(&config.virtual_server).map_err(|source| CheckError::Table {
        file: file.to_path_buf(),
        source,
    })?;
    Ok(config)
}

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn run(options: Options) -> Result<(), Error> {
    let config = config::load_file(&options.config).map_err(Error::Config)?;
    let plan = plan::plan(&config, &hostname())?;
    let pools = Pools::new(&config.virtual_server)?;
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

    raise_file_limit();
    let mut daemon = Daemon::new(options, plan, timeline, config.global.dataplane)?;
    // The host's own addresses first: the metrics endpoint, the VRRP
    // sockets and the dataplane may need them.
    crate::net::setup::apply(&config.network).await?;
    // Before the VRRP or the dataplane touch the kernel: an address that
    // cannot be bound stops the start.
    daemon.serve_metrics(config.global.metrics_listen).await?;
    daemon.servers = config.virtual_server.clone();
    daemon.program(pools.configured().clone())?;
    daemon.start_checks(&config.virtual_server, pools)?;
    daemon.serve_status();
    if let Err(e) = daemon.start().await {
        // Nothing half-started stays: VIPs of the units that did start,
        // the checker, the status socket.
        daemon.shutdown().await;
        return Err(e);
    }
    let status = daemon.status_line();
    daemon.systemd.ready(status);
    let mut watchdog = systemd::Notifier::watchdog_interval().map(|every| {
        info!(every = ?every, "feeding the service manager's watchdog");
        let mut interval = tokio::time::interval(every);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        interval
    });
    loop {
        let sleep = daemon.next_deadline();
        tokio::select! {
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
            _ = sighup.recv() => {
                // Logged, and kept for `appliance status`, by reload itself.
                let _ = daemon.reload().await;
            }
            Some(event) = daemon.events.recv() => daemon.on_event(event).await,
            () = sleep => daemon.on_timers().await,
            () = tick(&mut watchdog) => daemon.systemd.watchdog(),
        }
    }
    daemon.systemd.stopping();
    daemon.shutdown().await;
    Ok(())
}

/// The next tick of `interval`, or never without one.
async fn tick(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Raises the soft limit on open files to the hard one: each running
/// full-connect health check holds a socket, and the default soft limit
/// (1024) is far below what thousands of real servers need. The hard limit
/// is the administrator's (systemd's `LimitNOFILE=`).
fn raise_file_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => debug!(from = soft, to = hard, "raised the open files limit"),
            Err(e) => warn!(soft, hard, error = %e, "raising the open files limit failed"),
        },
        Ok(_) => {}
        Err(e) => warn!(error = %e, "reading the open files limit failed"),
    }
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into())
}

/// What the feeder tasks tell the event loop.
enum Event {
    Packet {
        socket: SocketKey,
        received: Received,
    },
    Script {
        name: String,
        success: bool,
    },
    Link(LinkEvent),
    /// A health checker's report; `generation` tells which checker sent it
    /// (a reload starts a new one while the old one's may still be queued).
    Check {
        generation: u64,
        report: Report,
    },
    /// A status client waits for this answer.
    Status(oneshot::Sender<status::Status>),
    /// A client asks for a reload and waits for its outcome: what changed,
    /// or why the config was rejected.
    Reload(oneshot::Sender<Result<String, String>>),
}

/// One VRRP socket per interface and family.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct SocketKey {
    interface: String,
    ipv6: bool,
}

/// An instance as it runs: its plan and what the system told us about it.
struct RunningInstance {
    plan: InstancePlan,
    socket: SocketKey,
    /// Our address on the interface: the adverts' source and tie-breaker.
    src: IpAddr,
    /// What it accepts from the wire.
    listener: Listener<SocketKey>,
}

struct RunningUnit {
    plan: UnitPlan,
    unit: Unit,
    instances: Vec<RunningInstance>,
}

struct Daemon {
    options: Options,
    plan: Plan,
    origin: tokio::time::Instant,
    addresses: Addresses,
    units: Vec<RunningUnit>,
    sockets: HashMap<SocketKey, Arc<VrrpSocket>>,
    /// Interface facts by name, looked up once (index, MAC).
    links: HashMap<String, Link>,
    announcers: HashMap<String, Announcer>,
    /// Last known state of each interface, to forward changes only.
    link_up: HashMap<String, bool>,
    events: mpsc::Receiver<Event>,
    sender: mpsc::Sender<Event>,
    tasks: Vec<JoinHandle<()>>,
    script_tasks: Vec<JoinHandle<()>>,
    timeline: TimelineLog,
    /// Dropped adverts by reason (logged at shutdown; also in `metrics`).
    drops: BTreeMap<&'static str, u64>,
    /// Counters for the metrics endpoint, kept whether or not it is served.
    metrics: Arc<Metrics>,
    /// Where the metrics endpoint listens, from start (changing it takes a
    /// restart).
    metrics_listen: Option<SocketAddr>,
    /// The kernel's load balancer, opened once there is something to
    /// program, and the table last programmed.
    dataplane: Option<Reconciler<Box<dyn Backend>>>,
    table: Table,
    /// The sync daemon and the IPVS timeouts.
    lvs: Lvs,
    /// The config's `dataplane` choice, kept from start (changing it takes
    /// a restart).
    choice: Option<dataplane::Choice>,
    /// The virtual servers checked, their pools, and the checker of them
    /// (none without virtual servers).
    servers: Vec<VirtualServer>,
    pools: Option<Pools>,
    checker: Option<(runner::Handle, JoinHandle<()>)>,
    /// Counts checkers started, so reports of a stopped one are ignored.
    generation: u64,
    /// The status socket, once bound (removed on shutdown).
    status_socket: Option<PathBuf>,
    /// The service manager, when there is one.
    systemd: systemd::Notifier,
    /// Each instance's last state change, for `appliance status`.
    transitions: HashMap<String, Transition>,
    /// When the daemon started (wall clock, RFC 3339), and how the last
    /// reload ended.
    started: String,
    last_reload: Option<status::ReloadStatus>,
}

/// An instance's last state change.
struct Transition {
    from: State,
    to: State,
    reason: String,
    /// Wall clock, RFC 3339, and the daemon's clock.
    wall: String,
    at: Instant,
}

impl Daemon {
    fn new(
        options: Options,
        plan: Plan,
        timeline: TimelineLog,
        choice: Option<dataplane::Choice>,
    ) -> Result<Self, Error> {
        let (sender, events) = mpsc::channel(1024);
        Ok(Self {
            options,
            plan,
            origin: tokio::time::Instant::now(),
            addresses: Addresses::connect()?,
            units: Vec::new(),
            sockets: HashMap::new(),
            links: HashMap::new(),
            announcers: HashMap::new(),
            link_up: HashMap::new(),
            events,
            sender,
            tasks: Vec::new(),
            script_tasks: Vec::new(),
            timeline,
            drops: BTreeMap::new(),
            metrics: Arc::new(Metrics::new()),
            metrics_listen: None,
            dataplane: None,
            table: Table::new(),
            lvs: Lvs::new(),
            choice,
            servers: Vec::new(),
            pools: None,
            checker: None,
            generation: 0,
            status_socket: None,
            systemd: systemd::Notifier::default(),
            transitions: HashMap::new(),
            started: status::wall_now(),
            last_reload: None,
        })
    }

    /// Makes the kernel's load balancer hold `table` (only the difference
    /// is applied). A config without virtual servers opens no backend,
    /// unless an earlier run left services of ours to remove.
    /// The backend is chosen once, when first opened (IPVS when the kernel
    /// has it, else nftables, unless the config's `dataplane` forces one);
    /// changing `dataplane` in the config takes a restart.
    fn program(&mut self, table: Table) -> Result<(), Error> {
        let state = self.options.state_dir.join("dataplane.json");
        if self.dataplane.is_none() {
            if table.is_empty() && !state.exists() {
                return Ok(());
            }
            let backend = dataplane::open_backend(self.choice)?;
            info!(backend = backend.name(), "dataplane opened");
            self.dataplane = Some(Reconciler::new(backend, Some(state))?);
        }
        let withheld = self.withheld();
        let kernel: Table = table
            .iter()
            .filter(|(key, _)| !withheld.contains(key))
            .map(|(key, service)| (*key, service.clone()))
            .collect();
        if let Some(reconciler) = &mut self.dataplane {
            let report = match reconciler.reconcile(&kernel) {
                Ok(report) => report,
                Err(e) => {
                    self.metrics.dataplane_error(reconciler.backend().name());
                    return Err(e.into());
                }
            };
            self.metrics.dataplane_applied(&report);
            info!(services = kernel.len(), withheld = withheld.len(), %report, "dataplane reconciled");
        }
        self.table = table;
        Ok(())
    }

    /// The services of virtual servers held only while their VRRP instance
    /// is MASTER (`only_when_master`) whose instance is not MASTER now.
    fn withheld(&self) -> BTreeSet<ServiceKey> {
        self.servers
            .iter()
            .filter_map(|vs| {
                let instance = vs.only_when_master.as_ref()?;
                let master = self
                    .units
                    .iter()
                    .flat_map(|u| u.unit.machines())
                    .any(|m| m.name() == instance && m.state() == State::Master);
                if master {
                    return None;
                }
                dataplane::from_config(std::slice::from_ref(vs))
                    .ok()?
                    .into_keys()
                    .next()
            })
            .collect()
    }

    fn now(&self) -> Instant {
        Instant::from_duration(self.origin.elapsed())
    }

    /// Starts checking `servers` (whose table `pools` was built from); its
    /// reports come to the event loop. Nothing runs without virtual
    /// servers.
    fn start_checks(&mut self, servers: &[VirtualServer], pools: Pools) -> Result<(), Error> {
        self.servers = servers.to_vec();
        self.pools = Some(pools);
        if servers.is_empty() {
            return Ok(());
        }
        let options = runner::Options {
            origin: self.origin,
            metrics: Some(self.metrics.clone()),
            ..runner::Options::default()
        };
        let (handle, reports) = runner::spawn(servers, options)?;
        self.generation += 1;
        let forward = tokio::spawn(forward_reports(
            reports,
            self.generation,
            self.sender.clone(),
        ));
        self.checker = Some((handle, forward));
        info!(virtual_servers = servers.len(), "health checker started");
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
                sender.send(Event::Status(tx)).await.ok()?;
                rx.await.ok()
            }
        };
        self.tasks.push(tokio::spawn(crate::metrics::serve(
            listener,
            self.metrics.clone(),
            status,
        )));
        info!(%listen, "metrics endpoint ready");
        Ok(())
    }

    /// Serves `appliance status`. Without the socket (no permission on its
    /// directory, say) the daemon runs on: its real work needs none.
    fn serve_status(&mut self) {
        let path = self.options.socket.clone();
        match status::bind(&path) {
            Ok(listener) => {
                let sender = self.sender.clone();
                self.tasks
                    .push(tokio::spawn(status::serve(listener, sender)));
                info!(socket = %path.display(), "status socket ready");
                self.status_socket = Some(path);
            }
            Err(e) => {
                warn!(socket = %path.display(), error = %e, "no status socket: `appliance status` cannot reach this daemon");
            }
        }
    }

    /// Stops the checker, waiting for its `omega` notifiers.
    async fn stop_checks(&mut self) {
        if let Some((handle, forward)) = self.checker.take() {
            forward.abort();
            handle.shutdown().await;
            info!("health checker stopped");
        }
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
                if pools.set(vs, destinations) {
                    let table = pools.desired();
                    if let Err(e) = self.program(table) {
                        error!(error = %e, "dataplane: applying a health change failed");
                    }
                }
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
            } => (
                vs,
                EventKind::RealServer {
                    address,
                    alive,
                    weight,
                },
                status::describe(&cause),
                at,
            ),
            Report::Quorum {
                vs,
                up,
                weight_sum,
                threshold,
                at,
                ..
            } => (
                vs,
                EventKind::Quorum {
                    up,
                    weight_sum,
                    threshold,
                },
                String::new(),
                at,
            ),
            Report::SorryServer { vs, active, at, .. } => {
                (vs, EventKind::SorryServer { active }, String::new(), at)
            }
        };
        let service = pools.key(vs).map(|key| key.to_string());
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
        if let Err(e) = self.timeline.append(&event) {
            warn!(error = %e, "writing the timeline failed");
        }
    }

    /// The answer to `appliance status`.
    async fn status(&self) -> status::Status {
        let now = self.now();
        let instances = self
            .units
            .iter()
            .flat_map(|u| u.unit.machines().iter().zip(&u.instances))
            .map(|(m, running)| {
                let transition = self.transitions.get(m.name());
                status::InstanceStatus {
                    name: m.name().to_string(),
                    vrid: m.config().vrid.get(),
                    state: m.state(),
                    priority: m.priority(),
                    base_priority: m.config().priority,
                    interface: running.plan.interface.clone(),
                    vips: running
                        .plan
                        .all_vips()
                        .map(|(dev, vip)| format!("{}/{} dev {dev}", vip.addr, vip.prefix_len))
                        .collect(),
                    in_state_ms: transition
                        .map(|t| now.as_micros().saturating_sub(t.at.as_micros()) / 1000),
                    last_transition: transition.map(|t| status::TransitionStatus {
                        from: t.from,
                        to: t.to,
                        reason: t.reason.clone(),
                        at: t.wall.clone(),
                    }),
                }
            })
            .collect();
        let checked = match &self.checker {
            Some((handle, _)) => handle.status().await.unwrap_or_default(),
            None => Vec::new(),
        };
        let pools = self.pools.as_ref();
        let started = std::time::SystemTime::now() - self.origin.elapsed();
        let virtual_servers = status::virtual_servers(
            checked,
            |vs| {
                pools
                    .and_then(|p| p.key(vs.vs))
                    .map_or_else(|| format!("{:?}", vs.service), |key| key.to_string())
            },
            |at| status::wall(started + Duration::from_micros(at.as_micros())),
        );
        status::Status {
            node: self.plan.node.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            pid: std::process::id(),
            config: self.options.config.clone(),
            started: self.started.clone(),
            last_reload: self.last_reload.clone(),
            dataplane: self
                .dataplane
                .as_ref()
                .map(|r| r.backend().name().to_string()),
            instances,
            virtual_servers,
        }
    }

    /// The service manager's status line.
    fn status_line(&self) -> String {
        systemd::status_line(
            self.units
                .iter()
                .flat_map(|u| u.unit.machines())
                .map(|m| (m.name(), m.state())),
            self.dataplane.as_ref().map(|r| r.backend().name()),
        )
    }

    async fn start(&mut self) -> Result<(), Error> {
        let watch = LinkWatch::subscribe().map_err(|source| Error::Io {
            what: "subscribing to link events".into(),
            source,
        })?;
        let sender = self.sender.clone();
        self.tasks.push(tokio::spawn(forward_links(watch, sender)));
        self.spawn_scripts();
        self.lvs.configure(self.plan.lvs.clone(), None);
        let plans = self.plan.units.clone();
        for plan in plans {
            let unit = self.build_unit(plan).await?;
            self.units.push(unit);
        }
        info!(node = %self.plan.node, units = self.units.len(), "started");
        for index in 0..self.units.len() {
            self.start_unit(index).await;
        }
        Ok(())
    }

    /// Resolves a unit's interfaces and addresses and opens what it needs.
    async fn build_unit(&mut self, plan: UnitPlan) -> Result<RunningUnit, Error> {
        let (unit, instances) = match &plan {
            UnitPlan::Solo(instance) => {
                let (running, machine) = self.build_instance(instance).await?;
                (Unit::Solo(Box::new(machine)), vec![running])
            }
            UnitPlan::Group { name, members } => {
                let mut instances = Vec::new();
                let mut machines = Vec::new();
                for instance in members {
                    let (running, machine) = self.build_instance(instance).await?;
                    instances.push(running);
                    machines.push(machine);
                }
                (
                    Unit::Group(SyncGroup::new(name.clone(), machines)),
                    instances,
                )
            }
        };
        Ok(RunningUnit {
            plan,
            unit,
            instances,
        })
    }

    async fn build_instance(
        &mut self,
        instance: &InstancePlan,
    ) -> Result<(RunningInstance, Machine), Error> {
        let link = self.link(&instance.interface).await?;
        let src = match instance.unicast_src {
            Some(src) => src,
            None => self.primary_address(&link, instance.ipv6).await?,
        };
        let key = SocketKey {
            interface: instance.interface.clone(),
            ipv6: instance.ipv6,
        };
        let unicast = !instance.unicast_peers.is_empty();
        self.open_socket(&key, link.index, src, unicast)?;
        for (dev, _) in instance.all_vips() {
            let link = self.link(dev).await?;
            self.announcer(&link)?;
        }
        let running = RunningInstance {
            listener: listener(instance, key.clone()),
            plan: instance.clone(),
            socket: key,
            src,
        };
        Ok((running, Machine::new(instance.resolve(src))))
    }

    /// Removes the unit's VIPs left on the system (by a daemon that was
    /// killed, or by hand), as keepalived does at startup ("removing
    /// VIPs"): a machine starting as backup must not answer for them. An
    /// address owner's VIPs are its own addresses, and stay.
    async fn remove_leftover_vips(&self, index: usize) {
        let Some(unit) = self.units.get(index) else {
            return;
        };
        let owner = |i: &&RunningInstance| i.plan.machine.priority == crate::vrrp::Priority::OWNER;
        for instance in unit.instances.iter().filter(|i| !owner(i)) {
            for (dev, vip) in instance.plan.all_vips() {
                let Some(link) = self.links.get(dev) else {
                    continue;
                };
                if let Err(e) = self.addresses.remove(link.index, vip).await {
                    warn!(instance = %instance.plan.name(), vip = %vip.addr, error = %e, "removing a leftover VIP failed");
                }
            }
        }
    }

    /// Starts a unit's machines, then tells them about interfaces that are
    /// down and tracked interfaces as they are now.
    async fn start_unit(&mut self, index: usize) {
        self.remove_leftover_vips(index).await;
        let now = self.now();
        let Some(unit) = self.units.get_mut(index) else {
            return;
        };
        let actions = unit.unit.handle_all(now, &Input::Startup);
        self.perform(index, now, actions).await;
        let Some(unit) = self.units.get(index) else {
            return;
        };
        let mut inputs = Vec::new();
        for (member, instance) in unit.instances.iter().enumerate() {
            inputs.push((Some(member), instance.plan.interface.clone(), false));
            for track in &instance.plan.machine.tracks {
                if matches!(track.kind, crate::vrrp::machine::TrackKind::Interface) {
                    inputs.push((None, track.name.0.clone(), true));
                }
            }
        }
        for (member, interface, tracked) in inputs {
            let up = match self.addresses.link(&interface).await {
                Ok(link) => link.up,
                Err(e) => {
                    warn!(interface, error = %e, "interface state unknown; taking it as down");
                    false
                }
            };
            self.link_up.insert(interface.clone(), up);
            let input = if tracked {
                Input::Interface {
                    name: TrackName(interface),
                    up,
                }
            } else if up {
                continue;
            } else {
                Input::Link { up }
            };
            let now = self.now();
            let Some(unit) = self.units.get_mut(index) else {
                return;
            };
            let actions = match member {
                Some(m) => unit.unit.handle_instance(now, m, input),
                None => unit.unit.handle_all(now, &input),
            };
            self.perform(index, now, actions).await;
        }
    }

    async fn link(&mut self, name: &str) -> Result<Link, Error> {
        if let Some(link) = self.links.get(name) {
            return Ok(link.clone());
        }
        let link = self.addresses.link(name).await?;
        self.links.insert(name.to_string(), link.clone());
        Ok(link)
    }

    /// The interface's first IPv4 address, or its IPv6 link-local address
    /// (RFC 5798 §5.1.2.1: v3 over IPv6 is sent from the link-local).
    async fn primary_address(&self, link: &Link, ipv6: bool) -> Result<IpAddr, Error> {
        let addresses = self.addresses.list(link.index).await?;
        addresses
            .into_iter()
            .map(|(addr, _)| addr)
            .find(|addr| match addr {
                IpAddr::V4(_) => !ipv6,
                IpAddr::V6(a) => ipv6 && a.is_unicast_link_local(),
            })
            .ok_or_else(|| Error::NoAddress {
                interface: link.name.clone(),
                family: if ipv6 { "IPv6 link-local" } else { "IPv4" },
            })
    }

    fn open_socket(
        &mut self,
        key: &SocketKey,
        ifindex: IfIndex,
        src: IpAddr,
        unicast: bool,
    ) -> Result<(), Error> {
        if self.sockets.contains_key(key) {
            return Ok(());
        }
        let socket = Arc::new(VrrpSocket::open(&key.interface, ifindex, src, unicast)?);
        self.sockets.insert(key.clone(), socket.clone());
        self.tasks.push(tokio::spawn(read_socket(
            socket,
            key.clone(),
            self.sender.clone(),
        )));
        Ok(())
    }

    fn announcer(&mut self, link: &Link) -> Result<(), Error> {
        if self.announcers.contains_key(&link.name) {
            return Ok(());
        }
        let Some(mac) = link
            .mac
            .as_deref()
            .and_then(|m| <[u8; 6]>::try_from(m).ok())
        else {
            warn!(interface = %link.name, "no Ethernet address: VIPs on it are not announced");
            return Ok(());
        };
        let announcer = Announcer::new(link.index, mac).map_err(|source| Error::Announcer {
            interface: link.name.clone(),
            source,
        })?;
        self.announcers.insert(link.name.clone(), announcer);
        Ok(())
    }

    fn spawn_scripts(&mut self) {
        for task in self.script_tasks.drain(..) {
            task.abort();
        }
        for script in self.plan.scripts.clone() {
            self.script_tasks
                .push(tokio::spawn(run_script(script, self.sender.clone())));
        }
    }

    /// Sleeps until the earliest machine timer.
    fn next_deadline(&self) -> tokio::time::Sleep {
        let next = self
            .units
            .iter()
            .filter_map(|u| u.unit.poll_timeout())
            .min();
        let at = match next {
            Some(at) => self.origin + Duration::from_micros(at.as_micros()),
            // Nothing armed: wake up only for events.
            None => tokio::time::Instant::now() + Duration::from_secs(3600),
        };
        tokio::time::sleep_until(at)
    }

    async fn on_timers(&mut self) {
        let now = self.now();
        for index in 0..self.units.len() {
            let Some(unit) = self.units.get_mut(index) else {
                continue;
            };
            if unit.unit.poll_timeout().is_some_and(|at| at <= now) {
                let actions = unit.unit.handle_timeout(now);
                self.perform(index, now, actions).await;
            }
        }
    }

    async fn on_event(&mut self, event: Event) {
        match event {
            Event::Packet { socket, received } => self.on_packet(&socket, received).await,
            Event::Script { name, success } => {
                debug!(script = %name, success, "track script result");
                self.broadcast(Input::Script {
                    name: TrackName(name),
                    success,
                })
                .await;
            }
            Event::Link(link) => {
                if self.link_up.insert(link.name.clone(), link.up) == Some(link.up) {
                    return;
                }
                info!(interface = %link.name, up = link.up, "link changed");
                self.broadcast(Input::Interface {
                    name: TrackName(link.name.clone()),
                    up: link.up,
                })
                .await;
                for index in 0..self.units.len() {
                    let members: Vec<usize> = self.units[index]
                        .instances
                        .iter()
                        .enumerate()
                        .filter(|(_, i)| i.plan.interface == link.name)
                        .map(|(m, _)| m)
                        .collect();
                    for member in members {
                        let now = self.now();
                        let actions = self.units[index].unit.handle_instance(
                            now,
                            member,
                            Input::Link { up: link.up },
                        );
                        self.perform(index, now, actions).await;
                    }
                }
            }
            Event::Check { generation, report } => self.on_check(generation, report),
            Event::Status(reply) => {
                let _ = reply.send(self.status().await);
            }
            Event::Reload(reply) => {
                let outcome = self.reload().await.map_err(|e| e.to_string());
                let _ = reply.send(outcome);
            }
        }
    }

    async fn broadcast(&mut self, input: Input) {
        for index in 0..self.units.len() {
            let now = self.now();
            let actions = self.units[index].unit.handle_all(now, &input);
            self.perform(index, now, actions).await;
        }
    }

    fn drop_advert(&mut self, from: IpAddr, rejection: &Rejection) {
        *self.drops.entry(rejection.name()).or_default() += 1;
        self.metrics.advert_dropped(rejection.name());
        debug!(%from, reason = rejection.name(), detail = %rejection, "advert dropped");
    }

    async fn on_packet(&mut self, key: &SocketKey, received: Received) {
        let ctx = match (received.src, received.dst) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => IpContext::V4 {
                src,
                dst,
                ttl: received.ttl,
            },
            (IpAddr::V6(src), IpAddr::V6(dst)) => IpContext::V6 {
                src,
                dst,
                hop_limit: received.ttl,
            },
            _ => return,
        };
        let listeners = self.units.iter().enumerate().flat_map(|(u, unit)| {
            unit.instances
                .iter()
                .enumerate()
                .map(move |(m, i)| ((u, m), &i.listener))
        });
        let accepted = match receive::receive(listeners, key, &ctx, &received.payload) {
            Ok(accepted) => accepted,
            Err(rejection) => return self.drop_advert(received.src, &rejection),
        };
        let (index, member) = accepted.to;
        self.metrics
            .advert_received(self.units[index].instances[member].plan.name());
        let now = self.now();
        let actions =
            self.units[index]
                .unit
                .handle_instance(now, member, Input::Advert(accepted.advert));
        self.perform(index, now, actions).await;
    }

    /// Carries out a unit's actions, in order, and records them.
    async fn perform(&mut self, index: usize, now: Instant, actions: Vec<(String, Action)>) {
        // An instance that gates `only_when_master` services changed state:
        // the dataplane follows once the actions are done.
        let mut gates_services = false;
        let mut state_changed = false;
        for (name, action) in actions {
            let Some(instance) = self
                .units
                .get(index)
                .and_then(|u| u.instances.iter().find(|i| i.plan.name() == name))
            else {
                continue;
            };
            match &action {
                Action::SendAdvert {
                    priority,
                    adver_int,
                } => {
                    self.send_advert(instance, *priority, *adver_int).await;
                }
                Action::AddVips => {
                    for (dev, vip) in instance.plan.all_vips() {
                        let result = match self.links.get(dev) {
                            Some(link) => self.addresses.add(link.index, vip).await,
                            None => Err(vip::Error::NoSuchInterface(dev.clone())),
                        };
                        if let Err(e) = result {
                            error!(instance = %name, vip = %vip.addr, error = %e, "adding VIP failed");
                        }
                    }
                }
                Action::RemoveVips => {
                    for (dev, vip) in instance.plan.all_vips() {
                        let result = match self.links.get(dev) {
                            Some(link) => self.addresses.remove(link.index, vip).await,
                            None => Err(vip::Error::NoSuchInterface(dev.clone())),
                        };
                        if let Err(e) = result {
                            error!(instance = %name, vip = %vip.addr, error = %e, "removing VIP failed");
                        }
                    }
                }
                Action::SendGratuitous { repeat, .. } => {
                    for (dev, vip) in instance.plan.all_vips() {
                        let Some(announcer) = self.announcers.get(dev) else {
                            continue;
                        };
                        for _ in 0..*repeat {
                            let sent = match vip.addr {
                                IpAddr::V4(a) => announcer.arp(a),
                                IpAddr::V6(a) => announcer.neighbour_advertisement(a),
                            };
                            if let Err(e) = sent {
                                warn!(instance = %name, error = %e, "announcing VIP failed");
                            }
                        }
                    }
                }
                Action::Notify { state } => notify(
                    &instance.plan,
                    *state,
                    current_priority(&self.units[index], &name),
                ),
                Action::StateChanged { from, to, reason } => {
                    info!(instance = %name, vrid = %instance.plan.machine.vrid, %from, %to, %reason, "state changed");
                    self.transitions.insert(
                        name.clone(),
                        Transition {
                            from: *from,
                            to: *to,
                            reason: reason.to_string(),
                            wall: status::wall_now(),
                            at: now,
                        },
                    );
                    state_changed = true;
                    self.metrics.vrrp_transition(&name, *from, *to);
                    self.lvs.state_changed(&name, *to);
                    gates_services |= self
                        .servers
                        .iter()
                        .any(|vs| vs.only_when_master.as_deref() == Some(name.as_str()));
                }
                Action::PriorityChanged { from, to } => {
                    info!(instance = %name, %from, %to, "effective priority changed");
                }
            }
            let (kind, detail) = EventKind::of_action(&action);
            let event = TimelineEvent {
                at: now,
                node: self.plan.node.clone(),
                instance: Some(name),
                kind,
                detail,
            };
            if let Err(e) = self.timeline.append(&event) {
                warn!(error = %e, "writing the timeline failed");
            }
        }
        if gates_services && let Err(e) = self.program(self.table.clone()) {
            error!(error = %e, "programming the dataplane for the new VRRP state failed");
        }
        if state_changed {
            let status = self.status_line();
            self.systemd.status(status);
        }
    }

    async fn send_advert(
        &self,
        instance: &RunningInstance,
        priority: crate::vrrp::Priority,
        adver_int: Centiseconds,
    ) {
        let Some(socket) = self.sockets.get(&instance.socket) else {
            return;
        };
        let plan = &instance.plan;
        let variant = match plan.version() {
            // v2 carries whole seconds; the config check keeps v2 intervals whole.
            Version::V2 => Variant::V2 {
                adver_int: Seconds(u8::try_from(adver_int.0 / 100).unwrap_or(u8::MAX)),
                auth: plan.auth,
            },
            Version::V3 => Variant::V3 {
                max_adver_int: adver_int,
            },
        };
        let repr = Repr {
            vrid: plan.machine.vrid,
            priority,
            variant,
            addresses: advertised(plan),
        };
        let destinations: Vec<IpAddr> = if plan.unicast_peers.is_empty() {
            vec![socket::multicast_group(instance.src)]
        } else {
            plan.unicast_peers.clone()
        };
        for dst in destinations {
            let ctx = match (instance.src, dst) {
                (IpAddr::V4(src), IpAddr::V4(dst)) => IpContext::V4 {
                    src,
                    dst,
                    ttl: packet::TTL,
                },
                (IpAddr::V6(src), IpAddr::V6(dst)) => IpContext::V6 {
                    src,
                    dst,
                    hop_limit: packet::TTL,
                },
                _ => {
                    error!(instance = %plan.name(), %dst, "peer of the other address family");
                    continue;
                }
            };
            let mut buffer = vec![0u8; repr.buffer_len()];
            if let Err(e) = repr.emit(&mut Packet::new_unchecked(&mut buffer[..]), &ctx) {
                error!(instance = %plan.name(), error = %e, "building the advert failed");
                return;
            }
            match socket.send(instance.src, dst, &buffer).await {
                Ok(()) => self.metrics.advert_sent(plan.name()),
                Err(e) => {
                    warn!(instance = %plan.name(), error = %e, "sending the advert failed");
                }
            }
        }
    }

    /// SIGHUP or `appliance reload`: [`Self::apply_reload`], told to the
    /// service manager and kept for `appliance status`.
    async fn reload(&mut self) -> Result<String, Error> {
        self.systemd.reloading();
        let outcome = self.apply_reload().await;
        self.last_reload = Some(status::ReloadStatus {
            at: status::wall_now(),
            applied: outcome.is_ok(),
            message: match &outcome {
                Ok(summary) => summary.clone(),
                Err(e) => e.to_string(),
            },
        });
        let status = self.status_line();
        self.systemd.ready(status);
        outcome
    }

    /// Loads the config again and applies it if it is valid, returning
    /// what changed. Units whose plan is unchanged keep running untouched;
    /// a lone instance whose only change is its priority gets the new
    /// priority; anything else that changed stops (resigning if master) and
    /// starts anew. A part that fails to apply is logged and the rest goes
    /// on; the reload then reports each failed part.
    async fn apply_reload(&mut self) -> Result<String, Error> {
        // Everything the new config implies is built before anything is
        // applied, so an invalid part rejects the whole reload.
        let loaded = config::load_file(&self.options.config)
            .map_err(Error::Config)
            .and_then(|c| {
                let plan = plan::plan(&c, &hostname())?;
                let pools = Pools::new(&c.virtual_server)?;
                Ok((c, plan, pools))
            });
        let (config, new, pools) = match loaded {
            Ok(loaded) => loaded,
            Err(e) => {
                error!(config = %self.options.config.display(), error = %e, "reload rejected; the running config stays");
                return Err(e);
            }
        };
        let mut failed = Vec::new();
        if let Err(e) = crate::net::setup::apply(&config.network).await {
            error!(error = %e, "reload: applying the network settings failed");
            failed.push(format!("network: {e}"));
        }
        if config.global.metrics_listen != self.metrics_listen {
            warn!(
                running = ?self.metrics_listen,
                configured = ?config.global.metrics_listen,
                "reload: metrics_listen changed; the endpoint moves at the next restart"
            );
        }
        let mut changed = Vec::new();
        if config.virtual_server != self.servers {
            changed.push(format!(
                "virtual servers reloaded ({})",
                config.virtual_server.len()
            ));
            failed.extend(self.reload_virtual_servers(&config, pools).await);
        }
        if new == self.plan {
            info!("reload: VRRP unchanged");
        } else {
            let (restarted, reprioritised, started, errors) = self.reload_units(new).await;
            failed.extend(errors);
            for (count, what) in [
                (reprioritised, "given a new priority"),
                (restarted, "stopped"),
                (started, "started"),
            ] {
                if count > 0 {
                    changed.push(format!("{count} VRRP unit(s) {what}"));
                }
            }
            if changed.is_empty() {
                changed.push("VRRP settings changed".into());
            }
        }
        info!(units = self.units.len(), "reloaded");
        if failed.is_empty() {
            Ok(if changed.is_empty() {
                "config unchanged".into()
            } else {
                changed.join(", ")
            })
        } else {
            Err(Error::PartialReload(failed.join("; ")))
        }
    }

    /// Moves the VRRP units to the plan `new`. Returns how many units were
    /// stopped, given a new priority and started, and what failed.
    async fn reload_units(&mut self, new: Plan) -> (usize, usize, usize, Vec<String>) {
        let (mut stopped, mut reprioritised, mut started) = (0, 0, 0);
        let mut failed = Vec::new();
        let mut index = 0;
        while index < self.units.len() {
            let current = &self.units[index].plan;
            if new.units.contains(current) {
                index += 1;
            } else if let Some(changed) = priority_only_change(current, &new.units) {
                let now = self.now();
                let unit = &mut self.units[index];
                let priority = changed.machine.priority;
                if let Some(instance) = unit.instances.first_mut() {
                    instance.plan = changed.clone();
                }
                unit.plan = UnitPlan::Solo(Box::new(changed));
                let actions = unit.unit.handle_all(now, &Input::SetPriority(priority));
                self.perform(index, now, actions).await;
                reprioritised += 1;
                index += 1;
            } else {
                self.stop_unit(index).await;
                self.units.remove(index);
                stopped += 1;
            }
        }
        let scripts_changed = new.scripts != self.plan.scripts;
        self.plan = new;
        if scripts_changed {
            self.spawn_scripts();
        }
        let added: Vec<UnitPlan> = self
            .plan
            .units
            .iter()
            .filter(|p| !self.units.iter().any(|u| u.plan == **p))
            .cloned()
            .collect();
        for plan in added {
            match self.build_unit(plan).await {
                Ok(unit) => {
                    self.units.push(unit);
                    self.start_unit(self.units.len() - 1).await;
                    started += 1;
                }
                Err(e) => {
                    error!(error = %e, "reload: a unit could not start");
                    failed.push(format!("a VRRP unit could not start: {e}"));
                }
            }
        }
        let state = self.plan.lvs.sync_daemon.as_ref().and_then(|sync| {
            self.units
                .iter()
                .flat_map(|u| u.unit.machines())
                .find(|m| m.name() == sync.instance)
                .map(Machine::state)
        });
        self.lvs.configure(self.plan.lvs.clone(), state);
        (stopped, reprioritised, started, failed)
    }

    /// Reload of changed virtual servers: the configured table is
    /// programmed and the checker starts anew on them. Returns what
    /// failed.
    async fn reload_virtual_servers(&mut self, config: &Config, pools: Pools) -> Vec<String> {
        let mut failed = Vec::new();
        self.servers = config.virtual_server.clone();
        if let Err(e) = self.program(pools.configured().clone()) {
            error!(error = %e, "reload: programming the dataplane failed");
            failed.push(e.to_string());
        }
        self.stop_checks().await;
        if let Err(e) = self.start_checks(&config.virtual_server, pools) {
            error!(error = %e, "reload: the health checker could not start");
            failed.push(e.to_string());
        }
        failed
    }

    async fn stop_unit(&mut self, index: usize) {
        let now = self.now();
        let Some(unit) = self.units.get_mut(index) else {
            return;
        };
        let actions = unit.unit.handle_all(now, &Input::Shutdown);
        self.perform(index, now, actions).await;
    }

    async fn shutdown(&mut self) {
        info!("shutting down");
        for index in 0..self.units.len() {
            self.stop_unit(index).await;
        }
        self.stop_checks().await;
        for task in self.tasks.drain(..).chain(self.script_tasks.drain(..)) {
            task.abort();
        }
        if let Some(path) = self.status_socket.take()
            && let Err(e) = std::fs::remove_file(&path)
        {
            debug!(socket = %path.display(), error = %e, "removing the status socket failed");
        }
        info!(drops = ?self.drops, "stopped");
    }
}

/// The new plan of a lone instance whose only change is its priority.
fn priority_only_change(old: &UnitPlan, new: &[UnitPlan]) -> Option<InstancePlan> {
    let UnitPlan::Solo(old) = old else {
        return None;
    };
    new.iter().find_map(|p| match p {
        UnitPlan::Solo(n) if n.name() == old.name() => {
            let mut same = InstancePlan::clone(n);
            same.machine.priority = old.machine.priority;
            (same == **old).then(|| InstancePlan::clone(n))
        }
        _ => None,
    })
}

fn current_priority(unit: &RunningUnit, name: &str) -> crate::vrrp::Priority {
    unit.unit
        .machines()
        .iter()
        .find(|m| m.name() == name)
        .map_or(crate::vrrp::Priority::DEFAULT, Machine::priority)
}

/// The addresses an advert lists: the advertised VIPs of the instance's
/// family.
fn advertised(plan: &InstancePlan) -> PacketAddresses {
    if plan.ipv6 {
        PacketAddresses::V6(
            plan.vips
                .iter()
                .filter_map(|(_, v)| match v.addr {
                    IpAddr::V6(a) => Some(a),
                    IpAddr::V4(_) => None,
                })
                .collect(),
        )
    } else {
        PacketAddresses::V4(
            plan.vips
                .iter()
                .filter_map(|(_, v)| match v.addr {
                    IpAddr::V4(a) => Some(a),
                    IpAddr::V6(_) => None,
                })
                .collect(),
        )
    }
}

/// What an instance accepts (RFC 3768 §7.1, RFC 5798 §7.1).
fn listener(plan: &InstancePlan, socket: SocketKey) -> Listener<SocketKey> {
    let delivery = if plan.unicast_peers.is_empty() {
        Delivery::Multicast
    } else {
        Delivery::Unicast {
            peers: plan.unicast_peers.clone(),
        }
    };
    Listener {
        socket,
        delivery,
        expected: expected(plan),
        adver_int: plan.machine.adver_int,
    }
}

fn expected(plan: &InstancePlan) -> Expected {
    let protocol = match plan.version() {
        Version::V2 => ExpectedVersion::V2 {
            adver_int: Seconds(u8::try_from(plan.machine.adver_int.0 / 100).unwrap_or(u8::MAX)),
            auth: plan.auth,
        },
        Version::V3 => ExpectedVersion::V3,
    };
    Expected {
        vrid: plan.machine.vrid,
        protocol,
        addresses: Some(advertised(plan)),
    }
}

/// Runs the notify programs for a new state, without waiting for them
/// (keepalived's arguments: `notify` gets `INSTANCE <name> <STATE>
/// <priority>`, the per-state ones nothing extra).
fn notify(plan: &InstancePlan, state: State, priority: crate::vrrp::Priority) {
    let specific = match state {
        State::Master => &plan.notify.master,
        State::Backup => &plan.notify.backup,
        State::Fault => &plan.notify.fault,
        State::Initialize => &plan.notify.stop,
    };
    let state_word = match state {
        State::Initialize => "STOP".to_string(),
        other => other.to_string(),
    };
    let runs: Vec<(Program, Vec<String>)> = specific
        .iter()
        .map(|p| (p.clone(), Vec::new()))
        .chain(plan.notify.any.iter().map(|p| {
            (
                p.clone(),
                vec![
                    "INSTANCE".into(),
                    plan.name().to_string(),
                    state_word.clone(),
                    priority.to_string(),
                ],
            )
        }))
        .collect();
    for (program, args) in runs {
        let instance = plan.name().to_string();
        tokio::spawn(async move {
            let outcome = script::run(&program, &args, NOTIFY_TIMEOUT).await;
            if outcome.success() {
                debug!(instance, program = %program.path.display(), "notify ran");
            } else {
                warn!(instance, program = %program.path.display(), %outcome, "notify failed");
            }
        });
    }
}

async fn read_socket(socket: Arc<VrrpSocket>, key: SocketKey, sender: mpsc::Sender<Event>) {
    loop {
        match socket.recv().await {
            Ok(received) => {
                if sender
                    .send(Event::Packet {
                        socket: key.clone(),
                        received,
                    })
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Err(e) => {
                debug!(interface = %key.interface, error = %e, "receive failed");
                tokio::time::sleep(SOCKET_ERROR_BACKOFF).await;
            }
        }
    }
}

async fn run_script(script: ScriptPlan, sender: mpsc::Sender<Event>) {
    let mut interval = tokio::time::interval(script.interval);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let outcome = script::run(&script.program, &[], script.timeout).await;
        if !outcome.success() {
            debug!(script = %script.name, %outcome, "track script failed");
        }
        let event = Event::Script {
            name: script.name.clone(),
            success: outcome.success(),
        };
        if sender.send(event).await.is_err() {
            return;
        }
    }
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
}

async fn forward_links(mut watch: LinkWatch, sender: mpsc::Sender<Event>) {
    while let Some(event) = watch.next().await {
        if sender.send(Event::Link(event)).await.is_err() {
            return;
        }
    }
    error!("the link watch ended: interface changes are no longer seen");
}
