//! Half-open TCP_CHECK (`half_open = true`), as F5's "TCP Half Open"
//! monitor: a bare SYN to the real server, up on its SYN-ACK, down on a RST
//! or when nothing answers within `connect_timeout`. The kernel resets the
//! half-open connection as soon as the SYN-ACK arrives (see [`socket`]), so
//! the server never accepts anything and neither end builds a socket: on a
//! director checking thousands of servers a second, that is most of a full
//! connect's kernel work saved (docs/benchmarks-checker.md).
//!
//! One tokio task serves every half-open probe of the checker over one raw
//! socket per address family: probes hand it requests over a channel and
//! await their outcome; the task sends the SYNs, reads the answers and
//! keeps time, the decisions being [`flights`]'s. What it reports is what a
//! full connect reports: up, `connect failed: connection refused`, `timed
//! out`, or the error sending the SYN (no route, a `bindto` address that
//! is not ours). An ICMP unreachable is not listened for: it shows as a
//! timeout.

pub mod flights;
pub mod segment;
pub mod socket;

use super::decision::{Failure, Outcome};
use crate::clock;
use flights::{Done, Flights, Transmit};
use segment::{Answer, SYN_LEN, Segment, Syn};
use socket::{Family, ProbeSocket, RECV_BUFFER};
use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// How long the source address looked up for a target is used before it
/// is looked up again (it is also looked up again after any probe of that
/// target that got no answer). Checksums cover it, and a SYN from an
/// address no longer ours would go unanswered; asking on every probe costs
/// a fifth of a half-open probe's kernel time.
const SOURCE_MAX_AGE: Duration = Duration::from_secs(10);
/// SYNs sent in a burst before the answers are read: on loopback and fast
/// LANs answers arrive while a burst goes out, and the raw socket's
/// receive buffer (about 200 kB by default) holds only a few hundred.
const SENDS_PER_READ: usize = 64;

/// The prober could not start.
#[derive(Debug, thiserror::Error)]
#[error("half-open TCP checks: opening the {family} raw socket (needs CAP_NET_RAW): {source}")]
pub struct Error {
    family: Family,
    #[source]
    source: io::Error,
}

struct Request {
    target: SocketAddr,
    bind: Option<IpAddr>,
    timeout: Duration,
    reply: oneshot::Sender<Outcome>,
}

/// Starts half-open probes; one clone per check.
#[derive(Clone)]
pub struct Handle {
    requests: mpsc::UnboundedSender<Request>,
}

impl Handle {
    /// One half-open TCP_CHECK run of `target`, from `bind` if set, within
    /// `timeout`.
    pub async fn probe(
        &self,
        target: SocketAddr,
        bind: Option<IpAddr>,
        timeout: Duration,
    ) -> Outcome {
        let (reply, outcome) = oneshot::channel();
        let request = Request {
            target,
            bind,
            timeout,
            reply,
        };
        if self.requests.send(request).is_err() {
            return Outcome::Down(Failure::NotStarted);
        }
        outcome.await.unwrap_or(Outcome::Down(Failure::NotStarted))
    }
}

/// The prober's task, owned by the checker.
pub struct Prober {
    task: tokio::task::JoinHandle<()>,
}

impl Prober {
    /// Opens the sockets of `families` and starts the task on the current
    /// tokio runtime.
    pub fn start(families: &[Family]) -> Result<(Prober, Handle), Error> {
        let mut driver = Driver {
            origin: tokio::time::Instant::now(),
            v4: None,
            v6: None,
        };
        for &family in families {
            let socket = ProbeSocket::open(family).map_err(|source| Error { family, source })?;
            tracing::info!(%family, port = socket.port(), "half-open probe port reserved");
            let lane = Lane {
                flights: Flights::new(socket.port(), Box::new(|| fastrand::u32(..))),
                socket,
                pending: VecDeque::new(),
                sources: HashMap::new(),
            };
            match family {
                Family::V4 => driver.v4 = Some(lane),
                Family::V6 => driver.v6 = Some(lane),
            }
        }
        let (requests, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(driver.run(rx));
        Ok((Prober { task }, Handle { requests }))
    }

    /// Stops the task and closes its sockets; probes still running fail.
    pub async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

struct Driver {
    origin: tokio::time::Instant,
    v4: Option<Lane>,
    v6: Option<Lane>,
}

/// One family's socket and probes.
struct Lane {
    socket: ProbeSocket,
    flights: Flights<oneshot::Sender<Outcome>>,
    /// SYNs waiting for room in the socket's send buffer.
    pending: VecDeque<Transmit>,
    /// IPv4: the source address for each target address, and when it was
    /// looked up.
    sources: HashMap<IpAddr, (IpAddr, clock::Instant)>,
}

impl Driver {
    async fn run(mut self, mut requests: mpsc::UnboundedReceiver<Request>) {
        let sleep = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(sleep);
        let mut armed = None;
        loop {
            let next = [&mut self.v4, &mut self.v6]
                .into_iter()
                .flatten()
                .filter_map(|lane| lane.flights.poll_timeout())
                .min();
            if next != armed {
                if let Some(at) = next {
                    sleep
                        .as_mut()
                        .reset(self.origin + Duration::from_micros(at.as_micros()));
                }
                armed = next;
            }
            let result = tokio::select! {
                request = requests.recv() => {
                    let Some(request) = request else {
                        return;
                    };
                    let now = self.now();
                    self.start(now, request);
                    while let Ok(request) = requests.try_recv() {
                        self.start(now, request);
                    }
                    self.each(Lane::flush);
                    Ok(())
                }
                ready = readable(self.v4.as_ref().map(|l| &l.socket)) => ready.map(|()| {
                    self.v4.iter_mut().for_each(Lane::receive);
                }),
                ready = readable(self.v6.as_ref().map(|l| &l.socket)) => ready.map(|()| {
                    self.v6.iter_mut().for_each(Lane::receive);
                }),
                ready = writable(sending(&self.v4)) => ready.map(|()| {
                    self.v4.iter_mut().for_each(Lane::flush);
                }),
                ready = writable(sending(&self.v6)) => ready.map(|()| {
                    self.v6.iter_mut().for_each(Lane::flush);
                }),
                () = &mut sleep, if armed.is_some() => {
                    armed = None;
                    let now = self.now();
                    self.each(|lane| lane.expire(now));
                    Ok(())
                }
            };
            if let Err(error) = result {
                // The reactor is going away: nothing more can be probed.
                tracing::error!(%error, "half-open prober stopped");
                return;
            }
        }
    }

    fn now(&self) -> clock::Instant {
        clock::Instant::from_duration(
            tokio::time::Instant::now().saturating_duration_since(self.origin),
        )
    }

    fn each(&mut self, mut f: impl FnMut(&mut Lane)) {
        for lane in [&mut self.v4, &mut self.v6].into_iter().flatten() {
            f(lane);
        }
    }

    fn start(&mut self, now: clock::Instant, request: Request) {
        let lane = match Family::of(request.target.ip()) {
            Family::V4 => self.v4.as_mut(),
            Family::V6 => self.v6.as_mut(),
        };
        match lane {
            Some(lane) => lane.start(now, request),
            // The checker opens the families its config needs.
            None => {
                let _ = request
                    .reply
                    .send(Outcome::Down(Failure::Connect(io::ErrorKind::Unsupported)));
            }
        }
    }
}

/// Waits for answers on a lane's socket; forever without a lane.
async fn readable(socket: Option<&ProbeSocket>) -> io::Result<()> {
    match socket {
        Some(socket) => socket.readable().await,
        None => std::future::pending().await,
    }
}

/// The socket of a lane with SYNs waiting to be sent.
fn sending(lane: &Option<Lane>) -> Option<&ProbeSocket> {
    lane.as_ref()
        .filter(|lane| !lane.pending.is_empty())
        .map(|lane| &lane.socket)
}

/// Waits for room to send; forever without a socket.
async fn writable(socket: Option<&ProbeSocket>) -> io::Result<()> {
    match socket {
        Some(socket) => socket.writable().await,
        None => std::future::pending().await,
    }
}

impl Lane {
    fn start(&mut self, now: clock::Instant, request: Request) {
        let source = match request.bind {
            Some(ip) => Ok(ip),
            None => self.source(now, request.target),
        };
        match source {
            Ok(source) => {
                let syn =
                    self.flights
                        .start(now, request.reply, source, request.target, request.timeout);
                self.pending.extend(syn);
            }
            // No route: what a connect would say.
            Err(e) => {
                let _ = request
                    .reply
                    .send(Outcome::Down(Failure::Connect(e.kind())));
            }
        }
    }

    /// The source address for a SYN to `target` when no `bindto` says.
    fn source(&mut self, now: clock::Instant, target: SocketAddr) -> io::Result<IpAddr> {
        if self.socket.family() == Family::V6 {
            // The kernel chooses it and computes the checksum with it.
            return Ok(IpAddr::V6(Ipv6Addr::UNSPECIFIED));
        }
        if let Some(&(source, at)) = self.sources.get(&target.ip())
            && now.saturating_since(at) < SOURCE_MAX_AGE
        {
            return Ok(source);
        }
        let source = socket::route_source(target)?;
        self.sources.insert(target.ip(), (source, now));
        Ok(source)
    }

    /// Sends the pending SYNs until the socket's buffer is full, reading
    /// answers between bursts.
    fn flush(&mut self) {
        let mut sent = 0;
        while let Some(transmit) = self.pending.front().copied() {
            match self.send(&transmit) {
                Ok(()) => {
                    self.pending.pop_front();
                    sent += 1;
                    if sent % SENDS_PER_READ == 0 {
                        self.receive();
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    self.pending.pop_front();
                    let done = self.flights.failed(&transmit, Failure::Connect(e.kind()));
                    self.finish(done);
                }
            }
        }
    }

    fn send(&self, transmit: &Transmit) -> io::Result<()> {
        let family = self.socket.family();
        let syn = Syn {
            src_port: self.socket.port(),
            dst_port: transmit.target.port(),
            seq: transmit.seq,
            mss: family.mss(),
        };
        let mut bytes = [0u8; SYN_LEN];
        let addresses = match family {
            Family::V4 => Some((transmit.source, transmit.target.ip())),
            Family::V6 => None,
        };
        syn.emit(&mut Segment::new_unchecked(&mut bytes[..]), addresses);
        self.socket
            .send(&bytes, transmit.source, transmit.target.ip())
    }

    /// Reads every answer waiting.
    fn receive(&mut self) {
        let mut buf = [0u8; RECV_BUFFER];
        loop {
            let answer = match self.socket.recv(&mut buf) {
                Ok(Some((from, tcp))) => Segment::new_checked(tcp)
                    .and_then(|segment| Answer::parse(&segment))
                    .ok()
                    .map(|answer| (from, answer)),
                Ok(None) => None,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(error) => {
                    tracing::warn!(%error, family = %self.socket.family(), "half-open prober: receive failed");
                    return;
                }
            };
            if let Some((from, answer)) = answer {
                let done = self.flights.answer(from, &answer);
                self.finish(done);
            }
        }
    }

    fn expire(&mut self, now: clock::Instant) {
        let (done, transmits) = self.flights.expire(now);
        self.finish(done);
        self.pending.extend(transmits);
        self.flush();
    }

    fn finish(&mut self, done: Vec<Done<oneshot::Sender<Outcome>>>) {
        for Done {
            token,
            target,
            outcome,
        } in done
        {
            let answered = matches!(
                outcome,
                Outcome::Up | Outcome::Down(Failure::Connect(io::ErrorKind::ConnectionRefused))
            );
            // No answer: the source may be stale, look it up again next time.
            if !answered {
                self.sources.remove(&target.ip());
            }
            let _ = token.send(outcome);
        }
    }
}
