//! The BGP speaker ([`Speaker`]): one task per `[[bgp.peer]]` drives an
//! [`appliance_core::bgp::session::Session`] over its TCP connection; the
//! control loop tells every task which of `bgp.announce` the director can
//! serve now ([`servable`]), and stops them (withdraw, Cease) before
//! anything else at a shutdown. [`DirectorDrain`] decides when a director
//! that withdrew everything (`appliance drain-director`) may stop.

use super::status::BgpPeerStatus as PeerStatus;
use crate::config::model::{Bgp, BgpPeer};
use crate::dataplane::{ServiceKey, Table};
use appliance_core::bgp::encode_message;
use appliance_core::bgp::frame::{Framer, Received};
use appliance_core::bgp::session::{Action, Input, Phase, Session, Settings};
use appliance_core::clock::Instant;
use ipnet::IpNet;
use std::collections::BTreeSet;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a write may wait on a peer that reads nothing.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a stop waits for the peers to be told.
const STOP_WAIT: Duration = Duration::from_secs(2);

/// The prefixes of `announce` that hold the address of a service in
/// `table`, not `withheld`, with at least one real server taking
/// connections.
pub(crate) fn servable(
    announce: &[IpNet],
    table: &Table,
    withheld: &BTreeSet<ServiceKey>,
) -> BTreeSet<IpNet> {
    let live: Vec<IpAddr> = table
        .iter()
        .filter(|(key, _)| !withheld.contains(key))
        .filter(|(_, service)| service.destinations.values().any(|d| d.weight.get() > 0))
        .filter_map(|(key, _)| match key {
            ServiceKey::Socket { address, .. } => Some(address.ip()),
            ServiceKey::Fwmark { .. } => None,
        })
        .collect();
    announce
        .iter()
        .filter(|prefix| live.iter().any(|a| prefix.contains(a)))
        .copied()
        .collect()
}

/// The running speaker.
pub(crate) struct Speaker {
    settings: Bgp,
    announce: watch::Sender<BTreeSet<IpNet>>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    status: Vec<Arc<Mutex<PeerStatus>>>,
}

impl Speaker {
    /// Starts a session with each peer of `settings`, announcing nothing
    /// until told.
    pub(crate) fn start(settings: &Bgp) -> Self {
        let (announce, _) = watch::channel(BTreeSet::new());
        let (stop, _) = watch::channel(false);
        let origin = tokio::time::Instant::now();
        let mut tasks = Vec::new();
        let mut status = Vec::new();
        for peer in &settings.peer {
            let shown = Arc::new(Mutex::new(PeerStatus {
                peer: SocketAddr::new(peer.address, peer.port),
                state: "idle".into(),
                advertised: Vec::new(),
                last_error: None,
            }));
            let session = Settings {
                local_as: settings.local_as,
                peer_as: peer.remote_as,
                router_id: settings.router_id,
                hold_time: settings.hold_time,
                connect_retry: settings.connect_retry,
                next_hop_ipv4: settings.next_hop_ipv4,
                next_hop_ipv6: settings.next_hop_ipv6,
            };
            let driver = Driver {
                peer: peer.clone(),
                session: Session::new(session, Instant::ZERO),
                origin,
                stream: None,
                framer: Framer::new(),
                connecting: None,
                status: shown.clone(),
            };
            tasks.push(tokio::spawn(
                driver.run(announce.subscribe(), stop.subscribe()),
            ));
            status.push(shown);
        }
        info!(
            peers = settings.peer.len(),
            local_as = settings.local_as,
            "BGP speaker started"
        );
        Self {
            settings: settings.clone(),
            announce,
            stop,
            tasks,
            status,
        }
    }

    pub(crate) fn settings(&self) -> &Bgp {
        &self.settings
    }

    /// Announces `prefixes` from now on (and withdraws the rest).
    pub(crate) fn announce(&self, prefixes: BTreeSet<IpNet>) {
        self.announce.send_if_modified(|current| {
            if *current == prefixes {
                return false;
            }
            info!(
                prefixes = ?prefixes.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "BGP announcement changed"
            );
            *current = prefixes;
            true
        });
    }

    /// Keeps the sessions and changes only what is announced, if the new
    /// settings differ from the running ones in `announce` alone.
    pub(crate) fn can_keep(&self, settings: &Bgp) -> bool {
        Bgp {
            announce: settings.announce.clone(),
            ..self.settings.clone()
        } == *settings
    }

    pub(crate) fn take_settings(&mut self, settings: &Bgp) {
        self.settings = settings.clone();
    }

    pub(crate) fn status(&self) -> Vec<PeerStatus> {
        self.status
            .iter()
            .map(|s| {
                s.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone()
            })
            .collect()
    }

    /// Withdraws everything and closes every session (Cease,
    /// administrative shutdown), waiting a little for the words to go out.
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(true);
        let deadline = tokio::time::Instant::now() + STOP_WAIT;
        for task in self.tasks {
            let abort = task.abort_handle();
            if tokio::time::timeout_at(deadline, task).await.is_err() {
                abort.abort();
            }
        }
        info!("BGP speaker stopped");
    }
}

type Connecting = Pin<Box<dyn Future<Output = std::io::Result<TcpStream>> + Send>>;

/// How long the announced services must stay still (no packet in; no
/// active connection where the dataplane counts no packets) before a
/// draining director counts its traffic as moved away or ended: longer
/// than the routers take to act on a withdrawal.
pub(crate) const QUIET: Duration = Duration::from_secs(2);

/// A drain of the whole director (`appliance drain-director`): its routes
/// are withdrawn, and it may stop once its announced services have stayed
/// still for [`QUIET`] (the routers moved their flows to other directors,
/// and what stayed is idle), or when `deadline` comes.
#[derive(Debug)]
pub(crate) struct DirectorDrain {
    started: tokio::time::Instant,
    deadline: tokio::time::Instant,
    /// What the last count showed (the packets in; 0 for no active
    /// connection when packets are not counted), and since when.
    still: Option<(u64, tokio::time::Instant)>,
}

/// What one count of the announced services' connections tells a drain.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Wait,
    /// Done, and why.
    Done(String),
}

impl DirectorDrain {
    pub(crate) fn new(now: tokio::time::Instant, timeout: Duration) -> Self {
        Self {
            started: now,
            deadline: now + timeout,
            still: None,
        }
    }

    /// Takes a count (active connections, and packets in when the
    /// dataplane counts them; an error when it could not count) at `now`.
    pub(crate) fn sample(
        &mut self,
        now: tokio::time::Instant,
        count: Result<(u64, Option<u64>), String>,
    ) -> Verdict {
        let took = now.duration_since(self.started);
        if let Ok((active, packets)) = &count {
            let mark = match packets {
                Some(packets) => Some(*packets),
                None if *active == 0 => Some(0),
                None => None,
            };
            match (mark, self.still) {
                (Some(mark), Some((last, since))) if mark == last => {
                    if now.duration_since(since) >= QUIET {
                        return Verdict::Done(match packets {
                            Some(_) => format!(
                                "no packet for {QUIET:?} ({active} connection(s) left idle), after {took:.1?}"
                            ),
                            None => format!("no active connection for {QUIET:?}, after {took:.1?}"),
                        });
                    }
                }
                (Some(mark), _) => self.still = Some((mark, now)),
                (None, _) => self.still = None,
            }
        }
        if now < self.deadline {
            return Verdict::Wait;
        }
        Verdict::Done(match count {
            Ok((active, _)) => {
                format!("time ran out after {took:.1?} with {active} active connection(s)")
            }
            Err(e) => format!("time ran out after {took:.1?}; the last count failed: {e}"),
        })
    }
}

/// The services of `table` on an address in `announce`: what a draining
/// director watches.
pub(crate) fn announced_services<'a>(
    announce: &'a [IpNet],
    table: &'a Table,
) -> impl Iterator<Item = (&'a ServiceKey, &'a crate::dataplane::VirtualService)> {
    table.iter().filter(|(key, _)| match key {
        ServiceKey::Socket { address, .. } => announce.iter().any(|p| p.contains(&address.ip())),
        ServiceKey::Fwmark { .. } => false,
    })
}

/// One peer's task: the session, its connection and the framer of what
/// the connection brings.
struct Driver {
    peer: BgpPeer,
    session: Session,
    origin: tokio::time::Instant,
    stream: Option<TcpStream>,
    framer: Framer,
    connecting: Option<Connecting>,
    status: Arc<Mutex<PeerStatus>>,
}

impl Driver {
    fn now(&self) -> Instant {
        Instant::from_duration(self.origin.elapsed())
    }

    async fn run(
        mut self,
        mut announce: watch::Receiver<BTreeSet<IpNet>>,
        mut stop: watch::Receiver<bool>,
    ) {
        let first = announce.borrow_and_update().clone();
        self.step(Input::Announce(first)).await;
        let mut buffer = vec![0u8; 8192];
        loop {
            let deadline = self
                .session
                .deadline()
                .map(|at| self.origin + Duration::from_micros(at.as_micros()));
            let input = tokio::select! {
                () = sleep_until(deadline) => Input::Tick,
                changed = announce.changed() => match changed {
                    Ok(()) => Input::Announce(announce.borrow_and_update().clone()),
                    Err(_) => Input::Stop,
                },
                _ = stop.changed() => Input::Stop,
                connected = connect_done(&mut self.connecting) => {
                    self.connecting = None;
                    match connected {
                        Ok(stream) => match stream.local_addr() {
                            Ok(local) => {
                                let _ = stream.set_nodelay(true);
                                self.stream = Some(stream);
                                Input::Connected { local: local.ip() }
                            }
                            Err(e) => Input::ConnectFailed { reason: e.to_string() },
                        },
                        Err(e) => Input::ConnectFailed { reason: e.to_string() },
                    }
                }
                read = read_some(&mut self.stream, &mut buffer) => match read {
                    Ok(0) => Input::Closed { reason: "closed by the peer".into() },
                    Ok(n) => {
                        let received = self.framer.push(&buffer[..n]);
                        for message in received {
                            let input = match message {
                                Received::Message(m) => Input::Received(m),
                                Received::Malformed { notification, reason } => {
                                    Input::Malformed { notification, reason }
                                }
                            };
                            self.step(input).await;
                        }
                        continue;
                    }
                    Err(e) => Input::Closed { reason: e.to_string() },
                },
            };
            let stopping = input == Input::Stop;
            self.step(input).await;
            if stopping {
                return;
            }
        }
    }

    /// Hands `input` to the session and carries out its actions; a write
    /// that fails becomes the connection's close.
    async fn step(&mut self, input: Input) {
        let now = self.now();
        let mut pending = vec![input];
        while let Some(input) = pending.pop() {
            for action in self.session.handle(input, now) {
                if let Some(next) = self.act(action).await {
                    pending.push(next);
                    break;
                }
            }
        }
        let mut shown = self
            .status
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        shown.state = match self.session.phase() {
            Phase::Idle { .. } => "idle",
            Phase::Connecting => "connect",
            Phase::OpenSent => "opensent",
            Phase::OpenConfirm => "openconfirm",
            Phase::Established => "established",
            Phase::Stopped => "stopped",
        }
        .into();
        shown.advertised = self.session.advertised().iter().copied().collect();
    }

    async fn act(&mut self, action: Action) -> Option<Input> {
        let peer = SocketAddr::new(self.peer.address, self.peer.port);
        match action {
            Action::Connect => {
                self.connecting = Some(Box::pin(connect(peer, self.peer.source)));
            }
            Action::Send(message) => {
                let bytes = match encode_message(&message) {
                    Ok(bytes) => bytes,
                    Err(e) => {
                        warn!(%peer, error = %e, "a BGP message could not be encoded");
                        return Some(Input::Closed {
                            reason: format!("encoding: {e}"),
                        });
                    }
                };
                let stream = self.stream.as_mut()?;
                let written = tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(&bytes)).await;
                match written {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        return Some(Input::Closed {
                            reason: e.to_string(),
                        });
                    }
                    Err(_) => {
                        return Some(Input::Closed {
                            reason: "the peer reads nothing".into(),
                        });
                    }
                }
            }
            Action::Close => {
                self.connecting = None;
                if let Some(mut stream) = self.stream.take() {
                    let _ = stream.shutdown().await;
                }
                self.framer = Framer::new();
            }
            Action::Up { peer_as, hold_time } => {
                info!(%peer, peer_as, hold_time, "BGP session established");
            }
            Action::Down { reason } => {
                warn!(%peer, %reason, "BGP session down");
                self.status
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .last_error = Some(reason);
                if let Some(stream) = self.stream.take() {
                    drop(stream);
                }
                self.framer = Framer::new();
            }
        }
        None
    }
}

async fn connect(peer: SocketAddr, source: Option<IpAddr>) -> std::io::Result<TcpStream> {
    let socket = match peer {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    if let Some(source) = source {
        socket.bind(SocketAddr::new(source, 0))?;
    }
    tokio::time::timeout(CONNECT_TIMEOUT, socket.connect(peer))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))?
}

async fn connect_done(connecting: &mut Option<Connecting>) -> std::io::Result<TcpStream> {
    match connecting {
        Some(future) => future.await,
        None => std::future::pending().await,
    }
}

async fn read_some(stream: &mut Option<TcpStream>, buffer: &mut [u8]) -> std::io::Result<usize> {
    match stream {
        Some(stream) => stream.read(buffer).await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::{Destination, Forwarding, Protocol, Scheduler, VirtualService, Weight};

    fn table(services: &[(&str, &[u32])]) -> Table {
        services
            .iter()
            .map(|(address, weights)| {
                let key = ServiceKey::Socket {
                    protocol: Protocol::Tcp,
                    address: address.parse().unwrap(),
                };
                let mut service = VirtualService {
                    key,
                    scheduler: Scheduler::Rr,
                    sched_flags: Default::default(),
                    persistence: None,
                    one_packet: false,
                    masquerade: false,
                    destinations: Default::default(),
                };
                for (i, weight) in weights.iter().enumerate() {
                    let address: SocketAddr = format!("10.0.2.{}:80", 11 + i).parse().unwrap();
                    service.destinations.insert(
                        address,
                        Destination {
                            address,
                            weight: Weight::new(*weight).unwrap(),
                            forwarding: Forwarding::Nat,
                            upper_threshold: 0,
                            lower_threshold: 0,
                        },
                    );
                }
                (key, service)
            })
            .collect()
    }

    #[test]
    fn a_director_drain_ends_once_its_services_stayed_still_or_time_runs_out() {
        let t0 = tokio::time::Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut drain = DirectorDrain::new(t0, Duration::from_secs(30));
        assert_eq!(drain.sample(at(1000), Ok((3, Some(100)))), Verdict::Wait);
        assert_eq!(drain.sample(at(2000), Ok((3, Some(150)))), Verdict::Wait);
        // Still from 2 s on: done once it has been for QUIET.
        assert_eq!(drain.sample(at(3000), Ok((3, Some(150)))), Verdict::Wait);
        let Verdict::Done(why) = drain.sample(at(4000), Ok((3, Some(150)))) else {
            panic!("still waiting");
        };
        assert!(
            why.starts_with("no packet for 2s (3 connection(s) left idle)"),
            "{why}"
        );

        // No active connection at first is not enough: new ones may come
        // until the routers act on the withdrawal.
        let mut drain = DirectorDrain::new(t0, Duration::from_secs(30));
        assert_eq!(drain.sample(at(0), Ok((0, Some(100)))), Verdict::Wait);
        assert_eq!(drain.sample(at(1000), Ok((0, Some(120)))), Verdict::Wait);
        assert_eq!(drain.sample(at(2000), Ok((0, Some(120)))), Verdict::Wait);
        assert!(matches!(
            drain.sample(at(3000), Ok((0, Some(120)))),
            Verdict::Done(_)
        ));

        // Without packet counts, no active connection for QUIET; a failed
        // count changes nothing; the deadline ends it anyway.
        let mut drain = DirectorDrain::new(t0, Duration::from_secs(30));
        assert_eq!(drain.sample(at(0), Ok((0, None))), Verdict::Wait);
        assert_eq!(drain.sample(at(1000), Ok((1, None))), Verdict::Wait);
        assert_eq!(drain.sample(at(2000), Ok((0, None))), Verdict::Wait);
        assert_eq!(drain.sample(at(3000), Err("stalled".into())), Verdict::Wait);
        let Verdict::Done(why) = drain.sample(at(4000), Ok((0, None))) else {
            panic!("still waiting");
        };
        assert!(why.starts_with("no active connection for 2s"), "{why}");
        let mut drain = DirectorDrain::new(t0, Duration::from_secs(5));
        assert_eq!(drain.sample(at(1000), Ok((2, None))), Verdict::Wait);
        assert_eq!(drain.sample(at(4500), Err("stalled".into())), Verdict::Wait);
        let Verdict::Done(why) = drain.sample(at(5000), Ok((2, None))) else {
            panic!("still waiting");
        };
        assert!(
            why.contains("time ran out") && why.contains("2 active"),
            "{why}"
        );
    }

    #[test]
    fn a_prefix_is_servable_while_a_service_in_it_has_a_real_server_taking_connections() {
        let announce: Vec<IpNet> = ["10.0.0.100/32", "10.0.0.101/32", "10.0.0.102/32"]
            .iter()
            .map(|p| p.parse().unwrap())
            .collect();
        let table = table(&[
            ("10.0.0.100:80", &[1, 0]),
            ("10.0.0.101:80", &[0, 0]),
            ("10.0.0.101:443", &[]),
            ("10.0.0.200:80", &[1]),
        ]);
        let none = BTreeSet::new();
        assert_eq!(
            servable(&announce, &table, &none),
            ["10.0.0.100/32".parse().unwrap()].into()
        );
        assert_eq!(servable(&announce, &Table::new(), &none), BTreeSet::new());
        // A withheld service (only_when_master, not MASTER) serves nothing.
        let withheld = table.keys().copied().collect();
        assert_eq!(servable(&announce, &table, &withheld), BTreeSet::new());
    }
}
