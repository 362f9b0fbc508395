//! The VRRP driver: the sans-IO units wired to raw sockets, VIPs,
//! gratuitous ARP / NA, track scripts, files and processes, notify
//! programs and link events. It
//! makes no protocol decision: every datagram goes through the receive
//! rules ([`crate::vrrp::receive`]) to a machine, and every action a
//! machine returns is carried out here, in order.
//!
//! It runs on a thread of its own with its own event loop, so nothing else
//! the daemon does (programming the kernel's table, parsing a reload,
//! waiting for notifiers, health checks, status and metrics) can delay an
//! advert: a stall longer than 3 x advert_int would make two masters. It
//! feeds the service manager's watchdog, so a stall of its own is seen.
//! The rest of the daemon talks to it through [`Handle`]: commands in
//! (reload a plan, shut down), state changes out, and a [`Snapshot`] of
//! the instances that status reads without asking.

use super::Error;
use super::announce::Announcements;
use super::plan::{InstancePlan, Notify, Plan, ScriptPlan, UnitPlan};
use super::retry::Backoff;
use super::status;
use super::systemd;
use super::timeline_log::TimelineLog;
use super::track_file;
use super::track_process;
use crate::clock::Instant;
use crate::metrics::Metrics;
use crate::net::IfIndex;
use crate::net::gratuitous::Announcer;
use crate::net::link::Link;
use crate::net::link::{LinkEvent, LinkWatch};
use crate::net::promote::Promotions;
use crate::net::socket::{Received, VrrpSocket};
use crate::net::vip::{self, Addresses};
use crate::net::vmac::{self, Vmacs};
use crate::notify_fifo;
use crate::script::{self, Program};
use crate::timeline::{Event as TimelineEvent, EventKind};
use crate::vrrp::group::SyncGroup;
use crate::vrrp::machine::{Action, Input, Machine, State, TrackKind, TrackName};
use crate::vrrp::packet::{
    self, Addresses as PacketAddresses, Expected, ExpectedVersion, IpContext, Packet, Repr,
    Seconds, Variant,
};
use crate::vrrp::receive::{Delivery, Listener, Refused};
use crate::vrrp::router::Router;
use crate::vrrp::unit::Unit;
use crate::vrrp::{Centiseconds, Priority, Version};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};
use tracing::{Instrument, debug, error, info, warn};

/// How long a notify program may run before it is killed.
const NOTIFY_TIMEOUT: Duration = Duration::from_secs(30);
/// Notify programs running at once; more wait for a slot, so a flapping
/// instance cannot fork without limit.
const NOTIFY_SLOTS: usize = 16;

/// What the rest of the daemon asks of the VRRP driver.
pub(super) enum Command {
    /// Move the units to a new plan; the answer says what changed.
    Reload {
        /// Boxed: a plan is much larger than the other commands.
        plan: Box<Plan>,
        reply: oneshot::Sender<ReloadOutcome>,
    },
    /// Hand the MASTER instances over (all, or `instance` or the sync
    /// group of that name): the answer names those now handing over.
    Switchover {
        instance: Option<String>,
        to: Option<IpAddr>,
        reply: oneshot::Sender<Result<Vec<String>, String>>,
    },
    /// Resign, remove the VIPs and stop.
    Shutdown(oneshot::Sender<()>),
    /// Stop as for a restart: no resignation, the VIPs stay, so that the
    /// next start resumes (`resume`).
    Detach(oneshot::Sender<()>),
}

/// What a reload of the units did.
#[derive(Debug, Default)]
pub(super) struct ReloadOutcome {
    pub stopped: usize,
    pub reprioritised: usize,
    /// Lone instances whose only change is their VIPs, changed in place.
    pub readdressed: usize,
    pub started: usize,
    pub failed: Vec<String>,
}

/// What the VRRP driver tells the rest of the daemon.
#[derive(Debug)]
pub(super) enum Report {
    /// An instance changed state (the dataplane and the sync daemon
    /// follow some instances).
    StateChanged {
        instance: String,
        to: State,
        /// The router a switchover handed over to.
        taker: Option<IpAddr>,
    },
    /// A sync group changed state (for its alert mail).
    GroupChanged { group: String, to: State },
}

/// The instances as they are, for status and the service manager.
#[derive(Debug, Default, Clone)]
pub(super) struct Snapshot {
    pub instances: Vec<InstanceView>,
    /// Units of the plan that could not start, retried until they do.
    pub pending: Vec<PendingUnit>,
}

/// A unit of the plan that is not running: why, and how often it failed.
#[derive(Debug, Clone)]
pub(super) struct PendingUnit {
    pub name: String,
    pub error: String,
    pub failures: u32,
}

/// One instance in a [`Snapshot`].
#[derive(Debug, Clone)]
pub(super) struct InstanceView {
    pub name: String,
    pub vrid: u8,
    pub state: State,
    pub priority: Priority,
    pub base_priority: Priority,
    pub interface: String,
    pub vips: Vec<String>,
    pub transition: Option<Transition>,
}

/// An instance's last state change.
#[derive(Debug, Clone)]
pub(super) struct Transition {
    pub from: State,
    pub to: State,
    pub reason: String,
    /// Wall clock, RFC 3339, and the daemon's clock.
    pub wall: String,
    pub at: Instant,
}

/// The rest of the daemon's end of the VRRP driver (its reports come on
/// the receiver [`Handle::start`] returns beside it).
pub(super) struct Handle {
    commands: mpsc::Sender<Command>,
    snapshot: Arc<Mutex<Snapshot>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// What the driver is started with.
pub(super) struct Setup {
    pub plan: Plan,
    /// The daemon's clock origin, shared so timeline times agree.
    pub origin: tokio::time::Instant,
    pub timeline: Arc<Mutex<TimelineLog>>,
    pub metrics: Arc<Metrics>,
    /// The notify FIFOs each state change is written to.
    pub fifo: notify_fifo::Sink,
}

impl Handle {
    /// Starts the driver on its own thread and waits until its units have
    /// started (or failed to: nothing of them is left then).
    pub(super) async fn start(
        setup: Setup,
    ) -> Result<(Self, mpsc::UnboundedReceiver<Report>), Error> {
        let (commands_tx, commands) = mpsc::channel(16);
        let (reports_tx, reports) = mpsc::unbounded_channel();
        let snapshot = Arc::new(Mutex::new(Snapshot::default()));
        let (started_tx, started) = oneshot::channel();
        let shared = snapshot.clone();
        let thread = std::thread::Builder::new()
            .name("vrrp".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(source) => {
                        let _ = started_tx.send(Err(Error::Io {
                            what: "starting the VRRP event loop".into(),
                            source,
                        }));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let mut driver = match Driver::new(setup, commands, reports_tx, shared) {
                        Ok(driver) => driver,
                        Err(e) => {
                            let _ = started_tx.send(Err(e));
                            return;
                        }
                    };
                    if let Err(e) = driver.start().await {
                        driver.shutdown().await;
                        let _ = started_tx.send(Err(e));
                        return;
                    }
                    let _ = started_tx.send(Ok(()));
                    driver.run().await;
                });
            })
            .map_err(|source| Error::Io {
                what: "starting the VRRP thread".into(),
                source,
            })?;
        let outcome = started.await.unwrap_or_else(|_| {
            Err(Error::Io {
                what: "starting VRRP".into(),
                source: std::io::Error::other("the VRRP thread ended"),
            })
        });
        let mut handle = Self {
            commands: commands_tx,
            snapshot,
            thread: Some(thread),
        };
        match outcome {
            Ok(()) => Ok((handle, reports)),
            Err(e) => {
                handle.join();
                Err(e)
            }
        }
    }

    /// The instances as they are now.
    pub(super) fn snapshot(&self) -> Snapshot {
        self.snapshot
            .lock()
            .map(|s| s.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    /// Moves the units to `plan`.
    pub(super) async fn reload(&self, plan: Plan) -> ReloadOutcome {
        let (reply, answer) = oneshot::channel();
        if self
            .commands
            .send(Command::Reload {
                plan: Box::new(plan),
                reply,
            })
            .await
            .is_err()
        {
            return ReloadOutcome {
                failed: vec!["the VRRP driver is not running".into()],
                ..ReloadOutcome::default()
            };
        }
        answer.await.unwrap_or_else(|_| ReloadOutcome {
            failed: vec!["the VRRP driver stopped during the reload".into()],
            ..ReloadOutcome::default()
        })
    }

    /// Starts a switchover of the MASTER instances (all, or `instance`),
    /// to peer `to` if given: the names of those now handing over, or why
    /// none is.
    pub(super) async fn switchover(
        &self,
        instance: Option<String>,
        to: Option<IpAddr>,
    ) -> Result<Vec<String>, String> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Switchover {
                instance,
                to,
                reply,
            })
            .await
            .map_err(|_| "the VRRP driver is not running".to_string())?;
        answer
            .await
            .unwrap_or_else(|_| Err("the VRRP driver stopped".into()))
    }

    /// Resigns every master, removes the VIPs and ends the thread.
    pub(super) async fn shutdown(mut self) {
        let (reply, done) = oneshot::channel();
        if self.commands.send(Command::Shutdown(reply)).await.is_ok() {
            let _ = done.await;
        }
        self.join();
    }

    /// Ends the thread as for a restart: masters neither resign nor
    /// remove their VIPs.
    pub(super) async fn detach(mut self) {
        let (reply, done) = oneshot::channel();
        if self.commands.send(Command::Detach(reply)).await.is_ok() {
            let _ = done.await;
        }
        self.join();
    }

    fn join(&mut self) {
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            error!("the VRRP thread panicked");
        }
    }
}

/// Removes every VIP of `plan` (but an address owner's), from outside the
/// driver: when its thread died, a master's VIPs would otherwise stay up
/// with no one advertising them, beside the peer that takes them over.
pub(super) async fn release_vips(plan: &Plan) {
    let addresses = match Addresses::connect() {
        Ok(addresses) => addresses,
        Err(e) => {
            error!(error = %e, "cannot release the VIPs");
            return;
        }
    };
    let instances = plan
        .units
        .iter()
        .flat_map(UnitPlan::instances)
        .filter(|i| i.machine.priority != Priority::OWNER);
    for instance in instances {
        for (dev, vip) in instance.all_vips() {
            let removed = match addresses.link(dev).await {
                Ok(link) => addresses.remove(link.index, vip).await,
                Err(e) => Err(e),
            };
            match removed {
                Ok(()) => info!(instance = %instance.name(), vip = %vip.addr, "VIP released"),
                Err(e) => {
                    warn!(instance = %instance.name(), vip = %vip.addr, error = %e, "releasing a VIP failed")
                }
            }
        }
    }
    // Their virtual MAC interfaces too (the owner's as well: nothing
    // answers on them now).
    for vmac in plan
        .units
        .iter()
        .flat_map(UnitPlan::instances)
        .filter_map(|i| i.vmac.as_ref())
    {
        match vmac::delete_leftover(&vmac.name).await {
            Ok(()) => info!(interface = %vmac.name, "virtual MAC interface removed"),
            Err(e) => {
                warn!(interface = %vmac.name, error = %e, "removing a virtual MAC interface failed")
            }
        }
    }
}

/// What the feeder tasks tell the driver's loop.
enum Event {
    Packet {
        socket: SocketKey,
        received: Received,
    },
    Script {
        name: String,
        success: bool,
    },
    /// A tracked file holds a new value.
    File(track_file::Change),
    /// A tracked process gained or lost its quorum.
    Process(track_process::Change),
    Link(LinkEvent),
}

/// One VRRP socket per interface, family and multicast group (`None`:
/// unicast only), so an instance of another group, or a unicast one, on
/// the same interface gets a socket that joined what it needs.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct SocketKey {
    interface: String,
    ipv6: bool,
    group: Option<IpAddr>,
}

/// An instance as it runs: its plan and what the system told us about it.
struct RunningInstance {
    plan: InstancePlan,
    socket: SocketKey,
    /// Our address on the interface: the adverts' source and tie-breaker.
    src: IpAddr,
    /// Its events happen in this span (`vrrp{instance vrid}`).
    span: tracing::Span,
}

/// A unit's plan and its instances as they run; the unit itself (its
/// machines) and what they accept from the wire are in the driver's
/// [`Router`], at the same index.
struct RunningUnit {
    plan: UnitPlan,
    instances: Vec<RunningInstance>,
}

struct Driver {
    plan: Plan,
    origin: tokio::time::Instant,
    addresses: Addresses,
    units: Vec<RunningUnit>,
    /// The units' machines and listeners, index for index with `units`.
    router: Router<SocketKey>,
    sockets: HashMap<SocketKey, Arc<VrrpSocket>>,
    /// The instances' virtual MAC interfaces (`use_vmac`).
    vmacs: Vmacs,
    promotions: Promotions,
    /// Interface facts by name, looked up once (index, MAC).
    links: HashMap<String, Link>,
    announcements: Announcements,
    /// Last known state of each interface, to forward changes only.
    link_up: HashMap<String, bool>,
    events: mpsc::Receiver<Event>,
    sender: mpsc::Sender<Event>,
    commands: mpsc::Receiver<Command>,
    reports: mpsc::UnboundedSender<Report>,
    tasks: Vec<JoinHandle<()>>,
    /// Each socket's reader.
    socket_tasks: HashMap<SocketKey, JoinHandle<()>>,
    script_tasks: Vec<JoinHandle<()>>,
    /// The watch over the tracked files.
    file_task: Option<JoinHandle<()>>,
    /// The tracked files that are watched, by name, at their real paths.
    file_paths: BTreeMap<String, PathBuf>,
    /// Each tracked file's last value, to log changes once.
    file_values: HashMap<String, i64>,
    /// The count of the tracked processes.
    process_task: Option<JoinHandle<()>>,
    /// Each tracked process's quorum, as last counted.
    process_quorums: HashMap<String, bool>,
    timeline: Arc<Mutex<TimelineLog>>,
    metrics: Arc<Metrics>,
    /// Each instance's last state change.
    transitions: HashMap<String, Transition>,
    snapshot: Arc<Mutex<Snapshot>>,
    notifiers: Notifiers,
    systemd: systemd::Notifier,
    /// Units of the plan that could not start (by name: why), and when
    /// to try them again.
    pending: BTreeMap<String, String>,
    retry: Backoff,
}

impl Driver {
    fn new(
        setup: Setup,
        commands: mpsc::Receiver<Command>,
        reports: mpsc::UnboundedSender<Report>,
        snapshot: Arc<Mutex<Snapshot>>,
    ) -> Result<Self, Error> {
        let (sender, events) = mpsc::channel(1024);
        let announcements = Announcements::new(setup.plan.pacing);
        Ok(Self {
            plan: setup.plan,
            origin: setup.origin,
            addresses: Addresses::connect()?,
            units: Vec::new(),
            router: Router::default(),
            sockets: HashMap::new(),
            vmacs: Vmacs::connect()?,
            promotions: Promotions::default(),
            links: HashMap::new(),
            announcements,
            link_up: HashMap::new(),
            events,
            sender,
            commands,
            reports,
            tasks: Vec::new(),
            socket_tasks: HashMap::new(),
            script_tasks: Vec::new(),
            file_task: None,
            file_paths: BTreeMap::new(),
            file_values: HashMap::new(),
            process_task: None,
            process_quorums: HashMap::new(),
            timeline: setup.timeline,
            metrics: setup.metrics,
            transitions: HashMap::new(),
            snapshot,
            notifiers: Notifiers {
                fifo: setup.fifo,
                ..Notifiers::default()
            },
            systemd: systemd::Notifier::default(),
            pending: BTreeMap::new(),
            retry: Backoff::default(),
        })
    }

    fn now(&self) -> Instant {
        Instant::from_duration(self.origin.elapsed())
    }

    async fn start(&mut self) -> Result<(), Error> {
        let watch = LinkWatch::subscribe().map_err(|source| Error::Io {
            what: "subscribing to link events".into(),
            source,
        })?;
        let sender = self.sender.clone();
        self.tasks.push(tokio::spawn(forward_links(watch, sender)));
        self.spawn_scripts();
        self.watch_files(false);
        self.count_processes();
        self.promote_secondaries();
        let plans = self.plan.units.clone();
        for plan in plans {
            let (running, unit, listeners) = self.build_unit(plan).await?;
            self.units.push(running);
            self.router.push(unit, listeners);
        }
        info!(node = %self.plan.node, units = self.units.len(), "started");
        for index in 0..self.units.len() {
            self.start_unit(index).await;
        }
        self.refilter();
        self.publish();
        Ok(())
    }

    /// The loop: packets, timers, scripts, link changes and commands, and
    /// the service manager's watchdog, until a shutdown.
    async fn run(&mut self) {
        let mut watchdog = systemd::Notifier::watchdog_interval().map(|every| {
            info!(every = ?every, "feeding the service manager's watchdog");
            let mut interval = tokio::time::interval(every);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            interval
        });
        loop {
            let sleep = self.next_deadline();
            let retry = self.retry.clone();
            tokio::select! {
                Some(event) = self.events.recv() => self.on_event(event).await,
                () = sleep => self.on_timers().await,
                () = retry.wait() => self.retry_pending().await,
                () = super::tick(&mut watchdog) => self.systemd.watchdog(),
                () = self.notifiers.ended() => {}
                command = self.commands.recv() => match command {
                    Some(Command::Reload { plan, reply }) => {
                        let outcome = self.reload_units(*plan).await;
                        self.publish();
                        let _ = reply.send(outcome);
                    }
                    Some(Command::Switchover {
                        instance,
                        to,
                        reply,
                    }) => {
                        let outcome = self.switchover(instance.as_deref(), to).await;
                        let _ = reply.send(outcome);
                    }
                    Some(Command::Shutdown(reply)) => {
                        self.shutdown().await;
                        let _ = reply.send(());
                        return;
                    }
                    Some(Command::Detach(reply)) => {
                        for task in self
                            .tasks
                            .drain(..)
                            .chain(self.socket_tasks.drain().map(|(_, task)| task))
                            .chain(self.script_tasks.drain(..))
                            .chain(self.file_task.take())
            .chain(self.process_task.take())
                            .chain(self.process_task.take())
                        {
                            task.abort();
                        }
                        info!("VRRP stopped for a restart: no resignation, the VIPs stay");
                        let _ = reply.send(());
                        return;
                    }
                    None => {
                        self.shutdown().await;
                        return;
                    }
                },
            }
        }
    }

    /// Hands over the MASTER instances of the units `instance` names (its
    /// own unit, or the sync group of that name; every unit without one),
    /// to peer `to` if given: each must have it as a unicast peer.
    async fn switchover(
        &mut self,
        instance: Option<&str>,
        to: Option<IpAddr>,
    ) -> Result<Vec<String>, String> {
        let named = |unit: &RunningUnit| {
            instance.is_none_or(|name| {
                unit.plan.name() == name || unit.instances.iter().any(|i| i.plan.name() == name)
            })
        };
        let units: Vec<usize> = self
            .units
            .iter()
            .enumerate()
            .filter(|(_, unit)| named(unit))
            .map(|(index, _)| index)
            .collect();
        if let (Some(name), true) = (instance, units.is_empty()) {
            let known: Vec<&str> = self
                .router
                .units()
                .iter()
                .flat_map(|u| u.machines())
                .map(|m| m.name())
                .collect();
            return Err(format!(
                "no VRRP instance or sync group {name}; the instances are {}",
                known.join(", ")
            ));
        }
        if let Some(to) = to {
            for index in &units {
                for running in &self.units[*index].instances {
                    peer_of(&running.plan, to)?;
                }
            }
        }
        let now = self.now();
        let mut handing = Vec::new();
        for index in units {
            let Some(unit) = self.router.units_mut().get_mut(index) else {
                continue;
            };
            let masters: Vec<String> = unit
                .machines()
                .iter()
                .filter(|m| m.state() == State::Master)
                .map(|m| m.name().to_string())
                .collect();
            if masters.is_empty() {
                continue;
            }
            let actions = unit.handle_all(now, &Input::Switchover { to });
            self.perform(index, now, actions).await;
            handing.extend(masters);
        }
        if handing.is_empty() {
            return Err(match instance {
                Some(name) => {
                    format!("{name} is not MASTER here: a switchover hands over from the master")
                }
                None => {
                    "no instance is MASTER here: a switchover hands over from the master".into()
                }
            });
        }
        info!(instances = ?handing, "switchover: resigned, keeping the VIPs until a new master advertises");
        Ok(handing)
    }

    /// Puts the instances as they are now where status reads them.
    fn publish(&self) {
        let instances = self
            .router
            .units()
            .iter()
            .zip(&self.units)
            .flat_map(|(unit, u)| unit.machines().iter().zip(&u.instances))
            .map(|(m, running)| InstanceView {
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
                transition: self.transitions.get(m.name()).cloned(),
            })
            .collect();
        let pending = self
            .pending
            .iter()
            .map(|(name, error)| PendingUnit {
                name: name.clone(),
                error: error.clone(),
                failures: self.retry.failures(),
            })
            .collect();
        let snapshot = Snapshot { instances, pending };
        match self.snapshot.lock() {
            Ok(mut shared) => *shared = snapshot,
            Err(poisoned) => *poisoned.into_inner() = snapshot,
        }
    }

    async fn shutdown(&mut self) {
        for index in 0..self.units.len() {
            self.stop_unit(index).await;
        }
        self.vmacs.remove_all().await;
        self.promotions.set(&std::collections::BTreeSet::new());
        for task in self
            .tasks
            .drain(..)
            .chain(self.socket_tasks.drain().map(|(_, task)| task))
            .chain(self.script_tasks.drain(..))
            .chain(self.file_task.take())
        {
            task.abort();
        }
        self.publish();
        self.notifiers.finish().await;
        info!(drops = ?self.router.drops(), "VRRP stopped");
    }

    /// Resolves a unit's interfaces and addresses and opens what it needs.
    async fn build_unit(
        &mut self,
        plan: UnitPlan,
    ) -> Result<(RunningUnit, Unit, Vec<Listener<SocketKey>>), Error> {
        match self.build_unit_parts(plan.clone()).await {
            Ok(built) => Ok(built),
            Err(e) => {
                // No half-made unit: the virtual MAC interfaces its first
                // members got go with it.
                self.remove_vmacs(&plan).await;
                Err(e)
            }
        }
    }

    /// Starts anew the units with a virtual MAC interface on `base`, an
    /// interface made again: the kernel deleted their macvlans with the
    /// old one (keepalived makes them again when it comes back). Those that
    /// cannot start yet (no address on it yet) wait as pending units.
    async fn remake_vmacs_on(&mut self, base: &str) {
        let mut index = 0;
        let mut stopped = false;
        while index < self.units.len() {
            let on_base = self.units[index]
                .instances
                .iter()
                .any(|i| i.plan.vmac.is_some() && i.plan.interface == base);
            if on_base {
                info!(interface = base, unit = %self.units[index].plan.name(), "the interface is back: the unit starts again with a new virtual MAC interface");
                self.stop_unit(index).await;
                let plan = self.units.remove(index).plan;
                self.remove_vmacs(&plan).await;
                self.router.remove(index);
                stopped = true;
            } else {
                index += 1;
            }
        }
        if stopped {
            // What was opened on the old interface is bound to it.
            self.drop_sockets_on(base);
            self.announcements.remove(base);
            let (_, failed) = self.start_pending().await;
            if !failed.is_empty() {
                warn!(failed = %failed.join("; "), "VRRP units wait to start again");
            }
            self.publish();
        }
    }

    /// Deletes the virtual MAC interfaces of `plan`'s instances, with the
    /// sockets and announcers on them (bound to an interface that is
    /// gone; one made again under the name gets new ones).
    async fn remove_vmacs(&mut self, plan: &UnitPlan) {
        for vmac in plan.instances().iter().filter_map(|i| i.vmac.as_ref()) {
            self.vmacs.remove(&vmac.name).await;
            self.links.remove(&vmac.name);
            self.announcements.remove(&vmac.name);
            self.drop_sockets_on(&vmac.name);
        }
    }

    /// Closes the sockets on `interface` and ends their readers.
    fn drop_sockets_on(&mut self, interface: &str) {
        let keys: Vec<SocketKey> = self
            .sockets
            .keys()
            .filter(|k| k.interface == interface)
            .cloned()
            .collect();
        for key in keys {
            self.sockets.remove(&key);
            if let Some(task) = self.socket_tasks.remove(&key) {
                task.abort();
            }
        }
    }

    async fn build_unit_parts(
        &mut self,
        plan: UnitPlan,
    ) -> Result<(RunningUnit, Unit, Vec<Listener<SocketKey>>), Error> {
        let (unit, instances) = match &plan {
            UnitPlan::Solo(instance) => {
                let (running, machine) = self.build_instance(instance).await?;
                (Unit::Solo(Box::new(machine)), vec![running])
            }
            UnitPlan::Group { name, members, .. } => {
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
        let listeners = instances
            .iter()
            .map(|i| listener(&i.plan, i.socket.clone()))
            .collect();
        Ok((RunningUnit { plan, instances }, unit, listeners))
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
        if let Some(plan) = &instance.vmac {
            let spec = vmac::Spec {
                name: plan.name.clone(),
                mac: plan.mac,
            };
            let made = self.vmacs.ensure(&spec, &link).await?;
            self.links.insert(made.name.clone(), made);
        }
        let unicast = !instance.unicast_peers.is_empty();
        let key = SocketKey {
            interface: instance.advert_interface().to_string(),
            ipv6: instance.ipv6,
            group: (!unicast).then_some(instance.multicast_group),
        };
        let advert_link = self.link(&key.interface).await?;
        self.open_socket(&key, advert_link.index, src)?;
        for (dev, _) in instance.all_vips() {
            let link = self.link(dev).await?;
            self.announcer(&link)?;
        }
        let running = RunningInstance {
            span: tracing::info_span!("vrrp", instance = %instance.name(), vrid = %instance.machine.vrid),
            plan: instance.clone(),
            socket: key,
            src,
        };
        Ok((running, Machine::new(instance.resolve(src))))
    }

    /// Removes the unit's VIPs left on the system (by a daemon that was
    /// killed, or by hand), as keepalived does at startup ("removing
    /// VIPs"): a machine starting as backup must not answer for them. An
    /// address owner's VIPs are its own addresses, and stay; so do those of
    /// a master resuming after a restart, which never stopped answering.
    async fn remove_leftover_vips(&self, index: usize) {
        let Some(unit) = self.units.get(index) else {
            return;
        };
        let keeps = |i: &&RunningInstance| {
            i.plan.machine.priority == Priority::OWNER || i.plan.machine.resume_master
        };
        for instance in unit.instances.iter().filter(|i| !keeps(i)) {
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

    /// The names of unit `index`'s tracks of one kind.
    fn tracked(&self, index: usize, kind: fn(&TrackKind) -> bool) -> BTreeSet<String> {
        self.units
            .get(index)
            .into_iter()
            .flat_map(|u| &u.instances)
            .flat_map(|i| &i.plan.machine.tracks)
            .filter(|t| kind(&t.kind))
            .map(|t| t.name.0.clone())
            .collect()
    }

    /// Gives `input` to every machine of unit `index`, now.
    async fn feed(&mut self, index: usize, input: &Input) {
        let now = self.now();
        let Some(unit) = self.router.units_mut().get_mut(index) else {
            return;
        };
        let actions = unit.handle_all(now, input);
        self.perform(index, now, actions).await;
    }

    /// Starts a unit's machines, with the values of their tracked files
    /// read first (as keepalived reads them before it starts, so a file
    /// that faults an instance keeps it from ever being master), then tells
    /// them about interfaces that are down and tracked interfaces as they
    /// are now.
    async fn start_unit(&mut self, index: usize) {
        self.remove_leftover_vips(index).await;
        let files = self.tracked(index, |k| matches!(k, TrackKind::File { .. }));
        for name in files {
            if let Some(value) = self.read_file(&name) {
                let name = TrackName(name);
                self.feed(index, &Input::File { name, value }).await;
            }
        }
        let processes = self.tracked(index, |k| matches!(k, TrackKind::Process { .. }));
        for name in processes {
            if let Some(&up) = self.process_quorums.get(&name) {
                let name = TrackName(name);
                self.feed(index, &Input::Process { name, up }).await;
            }
        }
        let now = self.now();
        let Some(unit) = self.router.units_mut().get_mut(index) else {
            return;
        };
        let actions = unit.handle_all(now, &Input::Startup);
        self.perform(index, now, actions).await;
        let Some(unit) = self.units.get(index) else {
            return;
        };
        let mut inputs = Vec::new();
        for (member, instance) in unit.instances.iter().enumerate() {
            if instance.plan.track_primary {
                inputs.push((Some(member), instance.plan.interface.clone(), false));
            }
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
            let Some(unit) = self.router.units_mut().get_mut(index) else {
                return;
            };
            let actions = match member {
                Some(m) => unit.handle_instance(now, m, input),
                None => unit.handle_all(now, &input),
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

    fn open_socket(&mut self, key: &SocketKey, ifindex: IfIndex, src: IpAddr) -> Result<(), Error> {
        if self.sockets.contains_key(key) {
            return Ok(());
        }
        let socket = Arc::new(VrrpSocket::open(&key.interface, ifindex, src, key.group)?);
        self.sockets.insert(key.clone(), socket.clone());
        self.socket_tasks.insert(
            key.clone(),
            tokio::spawn(read_socket(socket, key.clone(), self.sender.clone())),
        );
        Ok(())
    }

    fn announcer(&mut self, link: &Link) -> Result<(), Error> {
        if self.announcements.contains(&link.name) {
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
        self.announcements.insert(link.name.clone(), announcer);
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

    /// Writes the tracked files' `init_file` values and watches the files
    /// (again, after a reload that changed them).
    fn watch_files(&mut self, reload: bool) {
        if let Some(task) = self.file_task.take() {
            task.abort();
        }
        self.file_paths.clear();
        if self.plan.files.is_empty() {
            return;
        }
        for file in &self.plan.files {
            track_file::init(file, reload);
        }
        match track_file::Watch::new(&self.plan.files) {
            Ok((mut watch, tracked)) => {
                self.file_paths = tracked.into_iter().collect();
                let sender = self.sender.clone();
                self.file_task = Some(tokio::spawn(async move {
                    loop {
                        match watch.changes().await {
                            Ok(changes) => {
                                for change in changes {
                                    if sender.send(Event::File(change)).await.is_err() {
                                        return;
                                    }
                                }
                            }
                            Err(e) => {
                                error!(error = %e, "the track file watch failed: file changes are no longer seen");
                                return;
                            }
                        }
                    }
                }));
            }
            Err(e) => {
                // keepalived goes on without the watch too ("Unable to
                // monitor track files"): the values read at each start
                // still count.
                error!(error = %e, "the track files cannot be watched: their changes are not seen");
                self.file_paths = self
                    .plan
                    .files
                    .iter()
                    .map(|f| (f.name.clone(), f.path.clone()))
                    .collect();
            }
        }
    }

    /// Counts the tracked processes now (so that instances start with their
    /// quorums known, as keepalived reads /proc before it starts them), and
    /// from then on every scan interval.
    fn count_processes(&mut self) {
        if let Some(task) = self.process_task.take() {
            task.abort();
        }
        self.process_quorums.clear();
        if self.plan.processes.is_empty() {
            return;
        }
        let mut counter = track_process::Counter::new(&self.plan.processes);
        for change in counter.count() {
            self.process_counted(&change);
        }
        let sender = self.sender.clone();
        self.process_task = Some(tokio::spawn(counter.run(sender, Event::Process)));
    }

    /// Logs and keeps a tracked process's new quorum.
    fn process_counted(&mut self, change: &track_process::Change) {
        if change.up {
            info!(track_process = %change.name, "tracked process quorum gained");
        } else {
            info!(track_process = %change.name, "tracked process quorum lost");
        }
        self.process_quorums.insert(change.name.clone(), change.up);
    }

    /// A tracked file's value now; `None` if it is not tracked (its
    /// directory is missing) or holds an unusable value.
    fn read_file(&mut self, name: &str) -> Option<i64> {
        let path = self.file_paths.get(name)?;
        let value = track_file::value_of(name, path)?;
        self.file_read(name, value);
        Some(value)
    }

    /// Logs a tracked file's value when it is new.
    fn file_read(&mut self, name: &str, value: i64) {
        if self.file_values.insert(name.to_string(), value) != Some(value) {
            info!(track_file = name, value, "track file value");
        }
    }

    /// Sleeps until the earliest machine timer.
    fn next_deadline(&self) -> tokio::time::Sleep {
        let next = self
            .router
            .units()
            .iter()
            .filter_map(Unit::poll_timeout)
            .chain(self.announcements.deadline())
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
        self.announcements.send_due(now);
        for index in 0..self.units.len() {
            let Some(unit) = self.router.units_mut().get_mut(index) else {
                continue;
            };
            if unit.poll_timeout().is_some_and(|at| at <= now) {
                let actions = unit.handle_timeout(now);
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
            Event::Process(change) => {
                self.process_counted(&change);
                self.broadcast(Input::Process {
                    name: TrackName(change.name),
                    up: change.up,
                })
                .await;
            }
            Event::File(change) => {
                self.file_read(&change.name, change.value);
                self.broadcast(Input::File {
                    name: TrackName(change.name),
                    value: change.value,
                })
                .await;
            }
            Event::Link(link) => {
                // An interface deleted and made again has a new index.
                if self
                    .links
                    .get(&link.name)
                    .is_some_and(|cached| cached.index != link.index)
                {
                    self.links.remove(&link.name);
                    // Cached again as it is now: the event may be a late
                    // one about a link gone since (a macvlan deleted and
                    // made again by a reload), whose successor the VIPs
                    // need.
                    if let Err(e) = self.link(&link.name).await {
                        debug!(interface = %link.name, error = %e, "interface gone");
                    }
                    self.remake_vmacs_on(&link.name).await;
                }
                let wanted = self.plan.units.iter().any(|p| {
                    self.pending.contains_key(p.name())
                        && p.instances().iter().any(|i| i.interface == link.name)
                });
                if wanted {
                    self.retry.hurry(tokio::time::Instant::now());
                }
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
                        .filter(|(_, i)| i.plan.track_primary && i.plan.interface == link.name)
                        .map(|(m, _)| m)
                        .collect();
                    for member in members {
                        let now = self.now();
                        let Some(unit) = self.router.units_mut().get_mut(index) else {
                            continue;
                        };
                        let actions =
                            unit.handle_instance(now, member, Input::Link { up: link.up });
                        self.perform(index, now, actions).await;
                    }
                }
            }
        }
    }

    async fn broadcast(&mut self, input: Input) {
        for index in 0..self.units.len() {
            let now = self.now();
            let Some(unit) = self.router.units_mut().get_mut(index) else {
                continue;
            };
            let actions = unit.handle_all(now, &input);
            self.perform(index, now, actions).await;
        }
    }

    /// Counts and logs a datagram no instance took, under the instance
    /// its VRID named (none for an unknown VRID or garbage).
    fn drop_advert(&mut self, from: IpAddr, refused: &Refused<(usize, usize)>) {
        let rejection = &refused.rejection;
        let instance = refused
            .to
            .and_then(|(unit, member)| self.units.get(unit)?.instances.get(member))
            .map_or("", |i| i.plan.name());
        self.metrics.advert_dropped(instance, rejection.name());
        debug!(%from, instance, reason = rejection.name(), detail = %rejection, "advert dropped");
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
        let now = self.now();
        let delivered = match self.router.receive(key, &ctx, &received.payload, now) {
            Ok(delivered) => delivered,
            Err(refused) => return self.drop_advert(received.src, &refused),
        };
        if let Some(instance) = self
            .units
            .get(delivered.unit)
            .and_then(|u| u.instances.get(delivered.member))
        {
            self.metrics.advert_received(instance.plan.name());
        }
        self.perform(delivered.unit, now, delivered.actions).await;
    }

    /// Carries out a unit's actions, in order, each in its instance's span,
    /// and records them.
    async fn perform(&mut self, index: usize, now: Instant, actions: Vec<(String, Action)>) {
        let mut changed = false;
        let mut reports = Vec::new();
        for (name, action) in actions {
            let Some(span) = self
                .units
                .get(index)
                .and_then(|u| u.instances.iter().find(|i| i.plan.name() == name))
                .map(|i| i.span.clone())
            else {
                continue;
            };
            changed |= self
                .perform_one(index, now, &name, &action, &mut reports)
                .instrument(span)
                .await;
            let (kind, detail) = EventKind::of_action(&action);
            let event = TimelineEvent {
                at: now,
                node: self.plan.node.clone(),
                instance: Some(name),
                kind,
                detail,
            };
            append(&self.timeline, &event);
        }
        // After its members' own: the group's notifies, through the same
        // bounded path.
        if let Some(unit) = self.units.get(index)
            && let UnitPlan::Group {
                notify: programs, ..
            } = &unit.plan
            && let Some((group, state)) = self
                .router
                .units_mut()
                .get_mut(index)
                .and_then(Unit::poll_group_state)
        {
            info!(group, %state, "sync group state changed");
            reports.push(Report::GroupChanged {
                group: group.to_string(),
                to: state,
            });
            self.notifiers.start(
                Notified::Group,
                group,
                programs,
                state,
                // keepalived gives a group's priority as 0.
                0,
            );
        }
        // The snapshot first: whoever acts on a report reads it.
        if changed {
            self.publish();
        }
        for report in reports {
            let _ = self.reports.send(report);
        }
    }

    /// Carries out one action of the instance `name`; whether it changed
    /// what the snapshot shows.
    async fn perform_one(
        &mut self,
        index: usize,
        now: Instant,
        name: &str,
        action: &Action,
        reports: &mut Vec<Report>,
    ) -> bool {
        let Some(instance) = self
            .units
            .get(index)
            .and_then(|u| u.instances.iter().find(|i| i.plan.name() == name))
        else {
            return false;
        };
        let mut changed = false;
        match action {
            Action::SendAdvert {
                priority,
                adver_int,
            } => {
                self.send_advert(instance, *priority, *adver_int, None)
                    .await;
            }
            Action::ResignTo { adver_int, to } => {
                self.send_advert(instance, Priority::RESIGN, *adver_int, Some(*to))
                    .await;
            }
            Action::AddVips | Action::RemoveVips => {
                let add = matches!(action, Action::AddVips);
                for (dev, vip) in instance.plan.all_vips() {
                    let result = match self.links.get(dev) {
                        Some(link) if add => self.addresses.add(link.index, vip).await,
                        Some(link) => self.addresses.remove(link.index, vip).await,
                        None => Err(vip::Error::NoSuchInterface(dev.clone())),
                    };
                    if let Err(e) = result {
                        let what = if add { "adding" } else { "removing" };
                        error!(vip = %vip.addr, error = %e, "{what} VIP failed");
                    }
                }
            }
            Action::SendGratuitous { repeat, .. } => {
                for (dev, vip) in instance.plan.all_vips() {
                    for _ in 0..*repeat {
                        self.announcements.announce(dev, vip.addr, now);
                    }
                }
            }
            Action::Notify { state } => self.notifiers.start(
                Notified::Instance,
                name,
                &instance.plan.notify,
                *state,
                current_priority(self.router.units().get(index), name).get(),
            ),
            Action::StateChanged { from, to, reason } => {
                info!(%from, %to, %reason, "state changed");
                self.transitions.insert(
                    name.to_string(),
                    Transition {
                        from: *from,
                        to: *to,
                        reason: reason.to_string(),
                        wall: status::wall_now(),
                        at: now,
                    },
                );
                changed = true;
                self.metrics.vrrp_transition(name, *from, *to);
                reports.push(Report::StateChanged {
                    instance: name.to_string(),
                    to: *to,
                    taker: match reason {
                        crate::vrrp::machine::Reason::Switchover { to } => Some(*to),
                        _ => None,
                    },
                });
            }
            Action::PriorityChanged { from, to } => {
                changed = true;
                info!(%from, %to, "effective priority changed");
                if instance.plan.priority_changes {
                    let master =
                        current_state(self.router.units().get(index), name) == State::Master;
                    self.notifiers
                        .write(&notify_fifo::priority_line(name, master, to.get()));
                }
            }
            Action::HeardLowerPriority { from, priority } => {
                info!(%from, %priority, "master heard a lower priority");
                let ours = current_priority(self.router.units().get(index), name).get();
                self.notifiers
                    .write(&notify_fifo::rx_lower_pri_line(name, ours));
                if let Some(program) = &instance.plan.rx_lower_pri {
                    self.notifiers
                        .spawn(Notified::Instance, name, program.clone(), Vec::new());
                }
            }
        }
        changed
    }

    /// Sends an advert to the instance's group or unicast peers, or to
    /// `only` that peer.
    async fn send_advert(
        &self,
        instance: &RunningInstance,
        priority: Priority,
        adver_int: Centiseconds,
        only: Option<IpAddr>,
    ) {
        let Some(socket) = self.sockets.get(&instance.socket) else {
            return;
        };
        crate::fail_point!("vrrp-advert");
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
        let destinations: Vec<IpAddr> = match only {
            Some(peer) => vec![peer],
            None if plan.unicast_peers.is_empty() => vec![plan.multicast_group],
            None => plan.unicast_peers.clone(),
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
                    error!(%dst, "peer of the other address family");
                    continue;
                }
            };
            let mut buffer = vec![0u8; repr.buffer_len()];
            if let Err(e) = repr.emit(&mut Packet::new_unchecked(&mut buffer[..]), &ctx) {
                error!(error = %e, "building the advert failed");
                return;
            }
            match socket.send(instance.src, dst, &buffer).await {
                Ok(()) => self.metrics.advert_sent(plan.name()),
                Err(e) => {
                    warn!(error = %e, "sending the advert failed");
                }
            }
        }
    }

    /// Moves the VRRP units to the plan `new`: unchanged units keep
    /// running untouched, a lone instance whose only change is its priority
    /// gets the new priority, one whose only change is its VIPs keeps its
    /// state and changes them in place, anything else that changed stops
    /// (resigning if master) and starts anew.
    async fn reload_units(&mut self, new: Plan) -> ReloadOutcome {
        let states_before = self.states();
        let states_on_reload = new.fifo_states_on_reload;
        let (mut stopped, mut reprioritised, mut readdressed) = (0, 0, 0);
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
                if let Some(machines) = self.router.units_mut().get_mut(index) {
                    let actions = machines.handle_all(now, &Input::SetPriority(priority));
                    self.perform(index, now, actions).await;
                }
                reprioritised += 1;
                index += 1;
            } else if let Some(changed) = vips_only_change(current, &new.units)
                && self.readdress(index, changed).await
            {
                readdressed += 1;
                index += 1;
            } else {
                self.stop_unit(index).await;
                let stopped_plan = self.units.remove(index).plan;
                self.remove_vmacs(&stopped_plan).await;
                self.router.remove(index);
                stopped += 1;
            }
        }
        let scripts_changed = new.scripts != self.plan.scripts;
        let files_changed = new.files != self.plan.files;
        let processes_changed = new.processes != self.plan.processes;
        self.announcements.set_pacing(new.pacing);
        self.plan = new;
        if scripts_changed {
            self.spawn_scripts();
        }
        if files_changed {
            // A file of the same name may be another one now: the kept
            // instances read them all again (new ones read at their start).
            self.watch_files(true);
            let names: Vec<String> = self.file_paths.keys().cloned().collect();
            for name in names {
                if let Some(value) = self.read_file(&name) {
                    self.broadcast(Input::File {
                        name: TrackName(name),
                        value,
                    })
                    .await;
                }
            }
        }
        if processes_changed {
            // Counted afresh, as keepalived's reload reads /proc again.
            self.count_processes();
            let quorums: Vec<(String, bool)> = self
                .process_quorums
                .iter()
                .map(|(name, &up)| (name.clone(), up))
                .collect();
            for (name, up) in quorums {
                self.broadcast(Input::Process {
                    name: TrackName(name),
                    up,
                })
                .await;
            }
        }
        if states_on_reload {
            // keepalived's `fifo_write_vrrp_states_on_reload`: the states
            // the reload did not change (those it changed were written as
            // they changed; new instances are written as they start).
            for (kind, name, state, priority) in self.states() {
                if state != State::Initialize
                    && states_before
                        .iter()
                        .any(|(k, n, s, _)| (*k, n.as_str(), *s) == (kind, name.as_str(), state))
                {
                    self.notifiers.write_line(kind, &name, state, priority);
                }
            }
        }
        let (started, failed) = self.start_pending().await;
        ReloadOutcome {
            stopped,
            reprioritised,
            readdressed,
            started,
            failed,
        }
    }

    /// Starts the plan's units that are not running (new in a reload, or
    /// failed before); returns how many started and why the others could
    /// not. Those stay pending and are retried with backoff.
    async fn start_pending(&mut self) -> (usize, Vec<String>) {
        self.promote_secondaries();
        let plans: Vec<UnitPlan> = self
            .plan
            .units
            .iter()
            .filter(|p| !self.units.iter().any(|u| u.plan == **p))
            .cloned()
            .collect();
        self.pending.clear();
        let (mut started, mut failed) = (0, Vec::new());
        for plan in plans {
            let name = plan.name().to_string();
            match self.build_unit(plan).await {
                Ok((running, unit, listeners)) => {
                    self.units.push(running);
                    self.router.push(unit, listeners);
                    self.start_unit(self.units.len() - 1).await;
                    started += 1;
                }
                Err(e) => {
                    failed.push(format!("VRRP unit {name} could not start: {e}"));
                    self.pending.insert(name, e.to_string());
                }
            }
        }
        if failed.is_empty() {
            self.retry.succeeded();
        } else {
            self.retry.failed(tokio::time::Instant::now());
        }
        self.refilter();
        (started, failed)
    }

    /// Sets `promote_secondaries` on the interfaces of the plan's
    /// instances that ask for it, and puts it back on those no longer.
    fn promote_secondaries(&mut self) {
        let wanted = self
            .plan
            .units
            .iter()
            .flat_map(UnitPlan::instances)
            .filter(|i| i.promote_secondaries)
            .map(|i| i.interface.clone())
            .collect();
        self.promotions.set(&wanted);
    }

    /// Tells each socket's kernel filter the VRIDs its instances use.
    fn refilter(&self) {
        for (key, socket) in &self.sockets {
            let mut vrids: Vec<u8> = self
                .units
                .iter()
                .flat_map(|u| &u.instances)
                .filter(|i| i.socket == *key)
                .map(|i| i.plan.machine.vrid.get())
                .collect();
            vrids.sort_unstable();
            vrids.dedup();
            match socket.only_vrids(&vrids) {
                Ok(()) => {
                    debug!(interface = %key.interface, ipv6 = key.ipv6, ?vrids, "socket filter set")
                }
                Err(e) => {
                    warn!(interface = %key.interface, error = %e, "setting the socket's VRID filter failed; every VRRP packet reaches the daemon")
                }
            }
        }
    }

    /// The retry of units that could not start.
    async fn retry_pending(&mut self) {
        let (started, failed) = self.start_pending().await;
        if started > 0 {
            info!(started, "VRRP units started on retry");
        }
        if !failed.is_empty() {
            let wait = self
                .retry
                .due()
                .map(|at| at.saturating_duration_since(tokio::time::Instant::now()));
            warn!(failures = self.retry.failures(), retry_in = ?wait, failed = %failed.join("; "), "VRRP units still cannot start");
        }
        self.publish();
    }

    /// Gives the lone instance at `index` the VIPs of `changed` without
    /// leaving its state, as keepalived's reload does: a master adds the
    /// new ones (and announces them) and removes the dropped ones, its next
    /// advert lists them, and its listener expects them. False, with
    /// nothing changed, when a new VIP's interface cannot be used: the
    /// instance is then restarted like any other change.
    async fn readdress(&mut self, index: usize, changed: InstancePlan) -> bool {
        for (dev, _) in changed.all_vips() {
            let ready = match self.link(dev).await {
                Ok(link) => self.announcer(&link).map(drop),
                Err(e) => Err(e),
            };
            if let Err(e) = ready {
                warn!(instance = %changed.name(), interface = %dev, error = %e, "VIPs cannot change in place; restarting the instance");
                return false;
            }
        }
        let Some(instance) = self.units.get(index).and_then(|u| u.instances.first()) else {
            return false;
        };
        let master = self
            .router
            .units()
            .get(index)
            .and_then(|u| u.machines().first())
            .is_some_and(|m| m.state() == State::Master);
        let old: Vec<(String, crate::net::vip::Vip)> = instance.plan.all_vips().cloned().collect();
        let new: Vec<(String, crate::net::vip::Vip)> = changed.all_vips().cloned().collect();
        if master {
            let now = self.now();
            for (dev, vip) in old.iter().filter(|v| !new.contains(v)) {
                if let Some(link) = self.links.get(dev)
                    && let Err(e) = self.addresses.remove(link.index, vip).await
                {
                    error!(vip = %vip.addr, error = %e, "removing VIP failed");
                }
            }
            for (dev, vip) in new.iter().filter(|v| !old.contains(v)) {
                if let Some(link) = self.links.get(dev)
                    && let Err(e) = self.addresses.add(link.index, vip).await
                {
                    error!(vip = %vip.addr, error = %e, "adding VIP failed");
                }
                for _ in 0..changed.machine.garp_master_repeat {
                    self.announcements.announce(dev, vip.addr, now);
                }
            }
        }
        info!(instance = %changed.name(), master, vips = new.len(), "VIPs changed in place");
        if let Some(listener) = self.router.listener_mut(index, 0) {
            listener.expected = expected(&changed);
        }
        let unit = &mut self.units[index];
        if let Some(instance) = unit.instances.first_mut() {
            instance.plan = changed.clone();
        }
        unit.plan = UnitPlan::Solo(Box::new(changed));
        self.publish();
        true
    }

    async fn stop_unit(&mut self, index: usize) {
        let now = self.now();
        let Some(unit) = self.router.units_mut().get_mut(index) else {
            return;
        };
        let actions = unit.handle_all(now, &Input::Shutdown);
        self.perform(index, now, actions).await;
    }
}

/// The new plan of a lone instance whose only change is its VIPs.
fn vips_only_change(old: &UnitPlan, new: &[UnitPlan]) -> Option<InstancePlan> {
    let UnitPlan::Solo(old) = old else {
        return None;
    };
    new.iter().find_map(|p| match p {
        UnitPlan::Solo(n) if n.name() == old.name() => {
            let mut same = InstancePlan::clone(n);
            same.vips.clone_from(&old.vips);
            same.excluded.clone_from(&old.excluded);
            (same == **old).then(|| InstancePlan::clone(n))
        }
        _ => None,
    })
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

impl Driver {
    /// Each sync group's and instance's state (and priority), groups
    /// first, as keepalived writes them.
    fn states(&self) -> Vec<(Notified, String, State, u8)> {
        let mut out = Vec::new();
        for unit in self.router.units() {
            if let Unit::Group(group) = unit {
                out.push((Notified::Group, group.name().to_string(), group.state(), 0));
            }
        }
        for machine in self.router.units().iter().flat_map(Unit::machines) {
            out.push((
                Notified::Instance,
                machine.name().to_string(),
                machine.state(),
                machine.priority().get(),
            ));
        }
        out
    }
}

fn current_state(unit: Option<&Unit>, name: &str) -> State {
    unit.into_iter()
        .flat_map(Unit::machines)
        .find(|m| m.name() == name)
        .map_or(State::Initialize, Machine::state)
}

fn current_priority(unit: Option<&Unit>, name: &str) -> Priority {
    unit.into_iter()
        .flat_map(Unit::machines)
        .find(|m| m.name() == name)
        .map_or(Priority::DEFAULT, Machine::priority)
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

/// Whether a switchover of `plan`'s instance can go to `to` alone: only
/// to one of its unicast peers. On the multicast group a resignation
/// reaches every backup, and an advert addressed to one router is refused
/// there (so that no routed host can claim the VIPs).
fn peer_of(plan: &InstancePlan, to: IpAddr) -> Result<(), String> {
    let name = plan.name();
    if plan.unicast_peers.is_empty() {
        return Err(format!(
            "{name} advertises to the multicast group, where a resignation reaches every \
             backup and the highest priority takes over: a switchover to {to} needs \
             unicast_peer, or {to} given the highest priority of the backups"
        ));
    }
    if !plan.unicast_peers.contains(&to) {
        let peers: Vec<String> = plan.unicast_peers.iter().map(ToString::to_string).collect();
        return Err(format!(
            "{to} is not a unicast peer of {name}; its peers are {}",
            peers.join(", ")
        ));
    }
    Ok(())
}

/// What an instance accepts (RFC 3768 §7.1, RFC 5798 §7.1).
fn listener(plan: &InstancePlan, socket: SocketKey) -> Listener<SocketKey> {
    let delivery = if plan.unicast_peers.is_empty() {
        Delivery::Multicast {
            group: plan.multicast_group,
        }
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
        skip_known_addresses: plan.skip_check_adv_addr,
        known: None,
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

/// What a notify is about: the first of `notify`'s arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Notified {
    Instance,
    Group,
}

/// The programs to run, with their extra arguments, when `name` enters
/// `state` (keepalived's `vrrp_notify.c`): the state's own program with
/// none, and `notify` with `INSTANCE|GROUP <name> <STATE> <priority>`.
fn notify_runs(
    kind: Notified,
    name: &str,
    programs: &Notify,
    state: State,
    priority: u8,
) -> Vec<(Program, Vec<String>)> {
    let specific = match state {
        State::Master => &programs.master,
        State::Backup => &programs.backup,
        State::Fault => &programs.fault,
        State::Initialize => &programs.stop,
    };
    let state_word = match state {
        State::Initialize => "STOP".to_string(),
        other => other.to_string(),
    };
    let kind = match kind {
        Notified::Instance => "INSTANCE",
        Notified::Group => "GROUP",
    };
    specific
        .iter()
        .map(|p| (p.clone(), Vec::new()))
        .chain(programs.any.iter().map(|p| {
            (
                p.clone(),
                vec![
                    kind.into(),
                    name.to_string(),
                    state_word.clone(),
                    priority.to_string(),
                ],
            )
        }))
        .collect()
}

/// The notify programs running: at most [`NOTIFY_SLOTS`] at once, each
/// bounded by [`NOTIFY_TIMEOUT`], and kept so a stop lets them finish.
struct Notifiers {
    slots: Arc<Semaphore>,
    running: JoinSet<()>,
    /// Where each change is written as a line, as its programs start.
    fifo: notify_fifo::Sink,
}

impl Default for Notifiers {
    fn default() -> Self {
        Self {
            slots: Arc::new(Semaphore::new(NOTIFY_SLOTS)),
            running: JoinSet::new(),
            fifo: notify_fifo::Sink::default(),
        }
    }
}

impl Notifiers {
    /// Runs the notify programs of `name` for its new state, without
    /// waiting for them.
    fn start(&mut self, kind: Notified, name: &str, programs: &Notify, state: State, priority: u8) {
        self.write_line(kind, name, state, priority);
        for (program, args) in notify_runs(kind, name, programs, state, priority) {
            self.spawn(kind, name, program, args);
        }
    }

    /// Runs one notify program of `name`, within the shared bound,
    /// without waiting for it.
    fn spawn(&mut self, kind: Notified, name: &str, program: Program, args: Vec<String>) {
        let name = name.to_string();
        let slots = self.slots.clone();
        self.running.spawn(async move {
            // Closed never: the driver owns the semaphore.
            let Ok(_slot) = slots.acquire().await else {
                return;
            };
            let outcome = script::run(&program, &args, NOTIFY_TIMEOUT).await;
            if outcome.success() {
                debug!(?kind, name, program = %program.path.display(), "notify ran");
            } else {
                warn!(?kind, name, program = %program.path.display(), %outcome, "notify failed");
            }
        });
    }

    /// The notify FIFO line for `name` in `state`.
    fn write_line(&self, kind: Notified, name: &str, state: State, priority: u8) {
        self.write(&match kind {
            Notified::Instance => notify_fifo::instance_line(name, state, priority),
            Notified::Group => notify_fifo::group_line(name, state),
        });
    }

    /// Writes `line` to the VRRP notify FIFOs, if any.
    fn write(&self, line: &str) {
        if !self.fifo.is_empty() {
            self.fifo.write(line);
        }
    }

    /// The next notify program to end (never, with none running), so the
    /// loop forgets those that ended.
    async fn ended(&mut self) {
        if self.running.join_next().await.is_none() {
            std::future::pending::<()>().await;
        }
    }

    /// Waits for the running programs (a stop's `notify_stop` among them)
    /// to end, as keepalived's run on after it: the end of this thread's
    /// runtime would kill them. Their own timeout bounds the wait.
    async fn finish(&mut self) {
        let all = async { while self.running.join_next().await.is_some() {} };
        if tokio::time::timeout(NOTIFY_TIMEOUT + Duration::from_secs(1), all)
            .await
            .is_err()
        {
            warn!("notify programs still running at the stop were ended");
        }
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
                tokio::time::sleep(super::SOCKET_ERROR_BACKOFF).await;
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

/// Appends to the timeline file shared with the rest of the daemon.
pub(super) fn append(timeline: &Mutex<TimelineLog>, event: &TimelineEvent) {
    let written = match timeline.lock() {
        Ok(mut log) => log.append(event),
        Err(poisoned) => poisoned.into_inner().append(event),
    };
    if let Err(e) = written {
        warn!(error = %e, "writing the timeline failed");
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::script::RunAs;

    fn program(path: &str, args: &[&str]) -> Program {
        Program {
            path: path.into(),
            args: args.iter().map(ToString::to_string).collect(),
            run_as: RunAs::Daemon,
        }
    }

    fn argv(runs: &[(Program, Vec<String>)]) -> Vec<Vec<String>> {
        runs.iter()
            .map(|(p, extra)| {
                std::iter::once(p.path.display().to_string())
                    .chain(p.args.iter().cloned())
                    .chain(extra.iter().cloned())
                    .collect()
            })
            .collect()
    }

    #[test]
    fn a_groups_notify_gets_group_name_state_and_priority_zero() {
        let programs = Notify {
            master: Some(program("/bin/g", &["master"])),
            stop: Some(program("/bin/g-stop", &[])),
            any: Some(program("/bin/g-any", &["x"])),
            ..Notify::default()
        };
        assert_eq!(
            argv(&notify_runs(
                Notified::Group,
                "VG_1",
                &programs,
                State::Master,
                0
            )),
            [
                vec!["/bin/g", "master"],
                vec!["/bin/g-any", "x", "GROUP", "VG_1", "MASTER", "0"],
            ]
        );
        assert_eq!(
            argv(&notify_runs(
                Notified::Group,
                "VG_1",
                &programs,
                State::Initialize,
                0
            )),
            [
                vec!["/bin/g-stop"],
                vec!["/bin/g-any", "x", "GROUP", "VG_1", "STOP", "0"],
            ]
        );
        // No backup program: `notify` alone.
        assert_eq!(
            argv(&notify_runs(
                Notified::Instance,
                "VI_1",
                &programs,
                State::Backup,
                100
            )),
            [vec!["/bin/g-any", "x", "INSTANCE", "VI_1", "BACKUP", "100"]]
        );
    }
}
