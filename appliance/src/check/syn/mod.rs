//! Half-open TCP_CHECK (`half_open = true`), as F5's "TCP Half Open"
//! monitor: a bare SYN to the real server, up on its SYN-ACK, down on a RST
//! or when nothing answers within `connect_timeout`. The kernel resets the
//! half-open connection as soon as the SYN-ACK arrives (see [`socket`]), so
//! the server never accepts anything and neither end builds a socket: on a
//! director checking thousands of servers a second, that is most of a full
//! connect's kernel work saved (docs/benchmarks-checker.md).
//!
//! The [`Prober`] serves every half-open probe of the checker over one raw
//! socket per address family. It is no task of its own: the runner starts
//! probes on it as they come due, a tick's worth at a time, and awaits
//! [`Prober::wait`] beside its other work, so a probe costs no future, no
//! channel and no wake-up of its own, and its SYN goes out in one burst
//! with the tick's others. The decisions (which answer is whose, when to
//! send again, when to give up) are [`flights`]'s. What a probe reports is
//! what a full connect reports: up, `connect failed: connection refused`,
//! `timed out`, the error an ICMP unreachable quoting the SYN carries (no
//! route to host, refused), or the error sending the SYN (no route, a
//! `bindto` address that is not ours).

pub mod flights;
pub mod segment;
pub mod socket;

use super::decision::{Failure, Outcome};
use super::tick_deadline;
use crate::clock;
pub use flights::Done;
use flights::{Flights, Transmit};
use rustc_hash::FxHashMap;
use segment::{Answer, Quote, SYN_LEN, Segment, Syn};
use socket::{BATCH, Family, ProbeSocket};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// How long the source address looked up for a target is used before it
/// is looked up again (it is also looked up again after any probe of that
/// target that got no answer). Checksums cover it, and a SYN from an
/// address no longer ours would go unanswered; asking on every probe costs
/// a fifth of a half-open probe's kernel time.
const SOURCE_MAX_AGE: Duration = Duration::from_secs(10);

/// The prober could not start.
#[derive(Debug, thiserror::Error)]
#[error("half-open TCP checks: opening the {family} raw socket (needs CAP_NET_RAW): {source}")]
pub struct Error {
    family: Family,
    #[source]
    source: io::Error,
}

/// The half-open probes in flight, each known by the caller's token `T`.
/// Started probes' SYNs go out on [`flush`](Self::flush); finished probes
/// collect in [`done`](Self::done) until the caller takes them.
pub struct Prober<T> {
    origin: tokio::time::Instant,
    v4: Option<Lane<T>>,
    v6: Option<Lane<T>>,
    done: Vec<Done<T>>,
}

/// One family's socket and probes.
struct Lane<T> {
    socket: ProbeSocket,
    flights: Flights<T>,
    /// SYNs waiting to be sent: started since the last flush, or waiting
    /// for room in the socket's send buffer.
    pending: Vec<Transmit>,
    /// IPv4: the source address for each target address, and when it was
    /// looked up.
    sources: FxHashMap<IpAddr, (IpAddr, clock::Instant)>,
}

impl<T> Prober<T> {
    /// Opens the sockets of `families` (on the current tokio runtime). Its
    /// instants count from `origin`.
    pub fn open(families: &[Family], origin: tokio::time::Instant) -> Result<Self, Error> {
        let mut prober = Prober {
            origin,
            v4: None,
            v6: None,
            done: Vec::new(),
        };
        for &family in families {
            let socket = ProbeSocket::open(family).map_err(|source| Error { family, source })?;
            tracing::info!(%family, port = socket.port(), "half-open probe port reserved");
            let lane = Lane {
                flights: Flights::new(socket.port(), isn_source()),
                socket,
                pending: Vec::new(),
                sources: FxHashMap::default(),
            };
            match family {
                Family::V4 => prober.v4 = Some(lane),
                Family::V6 => prober.v6 = Some(lane),
            }
        }
        Ok(prober)
    }

    /// Now, counted from the origin.
    pub fn now(&self) -> clock::Instant {
        clock::Instant::from_duration(
            tokio::time::Instant::now().saturating_duration_since(self.origin),
        )
    }

    /// Starts a half-open probe of `target`, from `bind` if set, that fails
    /// after `timeout`. Its SYN waits for the next [`flush`](Self::flush).
    pub fn start(
        &mut self,
        now: clock::Instant,
        token: T,
        target: SocketAddr,
        bind: Option<IpAddr>,
        timeout: Duration,
    ) {
        let lane = match Family::of(target.ip()) {
            Family::V4 => self.v4.as_mut(),
            Family::V6 => self.v6.as_mut(),
        };
        match lane {
            Some(lane) => lane.start(now, token, target, bind, timeout, &mut self.done),
            // The checker opens the families its config needs.
            None => self.done.push(Done {
                token,
                target,
                outcome: Outcome::Down(Failure::Connect(io::ErrorKind::Unsupported)),
            }),
        }
    }

    /// Sends the SYNs waiting, as far as the sockets take them.
    pub fn flush(&mut self) {
        for lane in [&mut self.v4, &mut self.v6].into_iter().flatten() {
            lane.flush(&mut self.done);
        }
    }

    /// The probes finished since last asked.
    pub fn done(&mut self) -> std::vec::Drain<'_, Done<T>> {
        self.done.drain(..)
    }

    /// Waits until answers arrive or a probe is due to be sent again or to
    /// fail (on the [`TICK`](super::TICK)), and handles that. SYNs a full
    /// send buffer held back are sent again on the next tick (a socket
    /// waited on for room would have the kernel wake epoll for every SYN
    /// sent). Cancel-safe: nothing is taken before the wait ends. An error
    /// is the reactor's: the prober cannot go on.
    pub async fn wait(&mut self) -> io::Result<()> {
        let held_back = [&self.v4, &self.v6]
            .into_iter()
            .flatten()
            .any(|lane| !lane.pending.is_empty());
        let next_tick = held_back.then(|| self.now() + Duration::from_micros(1));
        let next = [&mut self.v4, &mut self.v6]
            .into_iter()
            .flatten()
            .filter_map(|lane| lane.flights.poll_timeout())
            .chain(next_tick)
            .min();
        let origin = self.origin;
        let timer = async move {
            match next {
                Some(at) => tokio::time::sleep_until(tick_deadline(origin, at)).await,
                None => std::future::pending().await,
            }
        };
        // Only the sockets are held across the wait (the rest is not Sync).
        tokio::select! {
            ready = readable(socket(&self.v4)) => ready?,
            ready = readable(socket(&self.v6)) => ready?,
            () = timer => {}
        }
        let now = self.now();
        for lane in [&mut self.v4, &mut self.v6].into_iter().flatten() {
            lane.receive(&mut self.done);
            lane.expire(now, &mut self.done);
            lane.flush(&mut self.done);
        }
        Ok(())
    }
}

/// A lane's socket.
fn socket<T>(lane: &Option<Lane<T>>) -> Option<&ProbeSocket> {
    lane.as_ref().map(|lane| &lane.socket)
}

/// Waits for answers on a socket; forever without one.
async fn readable(socket: Option<&ProbeSocket>) -> io::Result<()> {
    match socket {
        Some(socket) => socket.readable().await,
        None => std::future::pending().await,
    }
}

impl<T> Lane<T> {
    fn start(
        &mut self,
        now: clock::Instant,
        token: T,
        target: SocketAddr,
        bind: Option<IpAddr>,
        timeout: Duration,
        done: &mut Vec<Done<T>>,
    ) {
        let source = match bind {
            Some(ip) => Ok(ip),
            None => self.source(now, target),
        };
        match source {
            Ok(source) => {
                let syn = self.flights.start(now, token, source, target, timeout);
                self.pending.extend(syn);
            }
            // No route: what a connect would say.
            Err(e) => done.push(Done {
                token,
                target,
                outcome: Outcome::Down(failure(&e)),
            }),
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

    /// Sends the pending SYNs until the socket's buffer is full, a batch
    /// of the same source at a time, reading answers after each batch.
    fn flush(&mut self, done: &mut Vec<Done<T>>) {
        let mut taken = 0;
        let mut segments = [[0u8; SYN_LEN]; BATCH];
        let mut targets = [IpAddr::V4(Ipv4Addr::UNSPECIFIED); BATCH];
        while let Some(first) = self.pending.get(taken) {
            let source = first.source;
            let batch = &self.pending[taken..];
            let len = batch
                .iter()
                .take(BATCH)
                .take_while(|t| t.source == source)
                .count();
            for ((bytes, target), transmit) in
                segments.iter_mut().zip(&mut targets).zip(&batch[..len])
            {
                self.emit(transmit, bytes);
                *target = transmit.target.ip();
            }
            match self
                .socket
                .send_batch(source, &segments[..len], &targets[..len])
            {
                // The kernel sends at least one or says why not; were it
                // ever none, that SYN is lost and sent again on its RTO.
                Ok(sent) => taken += sent.clamp(1, len),
                // A full send buffer: the rest goes on the next tick.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    let first = self.pending[taken];
                    taken += 1;
                    let from = done.len();
                    self.flights.failed(&first, failure(&e), done);
                    self.forget_sources(&done[from..]);
                }
            }
            self.receive(done);
        }
        self.pending.drain(..taken);
    }

    /// Writes the SYN of `transmit` into `bytes`.
    fn emit(&self, transmit: &Transmit, bytes: &mut [u8; SYN_LEN]) {
        let family = self.socket.family();
        let syn = Syn {
            src_port: self.socket.port(),
            dst_port: transmit.target.port(),
            seq: transmit.seq,
            mss: family.mss(),
        };
        let addresses = match family {
            Family::V4 => Some((transmit.source, transmit.target.ip())),
            Family::V6 => None,
        };
        syn.emit(&mut Segment::new_unchecked(&mut bytes[..]), addresses);
    }

    /// Reads every answer and ICMP error waiting.
    fn receive(&mut self, done: &mut Vec<Done<T>>) {
        // Each ICMP error queued on the socket also sets the socket's
        // pending error, which the next read returns: that is when the
        // error queue is read (not on every read, a system call each).
        // Bounded, should some other error persist.
        let mut pending_errors = 0;
        loop {
            let flights = &mut self.flights;
            let read = self.socket.recv_batch(|from, tcp| {
                if let Ok(answer) = Segment::new_checked(tcp).and_then(|s| Answer::parse(&s)) {
                    flights.answer(from, &answer, done);
                }
            });
            match read {
                Ok(read) if read == BATCH => {}
                Ok(_) => return,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) if pending_errors < BATCH => {
                    pending_errors += 1;
                    self.receive_errors(done);
                }
                Err(error) => {
                    tracing::warn!(%error, family = %self.socket.family(), "half-open prober: receive failed");
                    return;
                }
            }
        }
    }

    /// Fails the probes whose SYNs an ICMP error says cannot arrive.
    fn receive_errors(&mut self, done: &mut Vec<Done<T>>) {
        let (flights, port) = (&mut self.flights, self.socket.port());
        let read = self.socket.recv_errors(|target, quoted, error| {
            if let Some(quote) = Quote::parse(quoted)
                && quote.src_port == port
            {
                let target = SocketAddr::new(target, quote.dst_port);
                flights.unreachable(target, quote.seq, error, done);
            }
        });
        if let Err(error) = read {
            tracing::warn!(%error, family = %self.socket.family(), "half-open prober: reading ICMP errors failed");
        }
    }

    /// Fails the probes whose timeout has passed and queues the SYNs due
    /// again.
    fn expire(&mut self, now: clock::Instant, done: &mut Vec<Done<T>>) {
        let (expired, transmits) = self.flights.expire(now);
        self.forget_sources(&expired);
        done.extend(expired);
        self.pending.extend(transmits);
    }

    /// Forgets the source looked up for the targets of `finished` probes
    /// that got no answer: it may be stale, look it up again next time.
    fn forget_sources(&mut self, finished: &[Done<T>]) {
        for probe in finished {
            let answered = matches!(
                probe.outcome,
                Outcome::Up | Outcome::Down(Failure::Connect(io::ErrorKind::ConnectionRefused))
            );
            if !answered {
                self.sources.remove(&probe.target.ip());
            }
        }
    }
}

/// What a send error means: the director's own lack (no buffer space),
/// or what a connect would have said.
fn failure(e: &io::Error) -> Failure {
    crate::check::local_fault(e).map_or(Failure::Connect(e.kind()), Failure::Local)
}

/// Initial sequence numbers an off-path host cannot predict (RFC 6528's
/// concern): from the kernel's CSPRNG, drawn 256 at a time so 10,000
/// probes a second cost 40 getrandom(2) calls, not 10,000.
fn isn_source() -> Box<dyn FnMut() -> u32 + Send> {
    let mut pool = [0u8; 1024];
    let mut next = pool.len();
    Box::new(move || {
        if next == pool.len() {
            // getrandom(2) fails only before the kernel's pool is
            // initialised, which a running director is past; the probe
            // still works with the weaker generator.
            if getrandom::fill(&mut pool).is_err() {
                fastrand::fill(&mut pool);
            }
            next = 0;
        }
        let word = [pool[next], pool[next + 1], pool[next + 2], pool[next + 3]];
        next += 4;
        u32::from_ne_bytes(word)
    })
}

#[cfg(test)]
mod tests {
    use super::isn_source;

    #[test]
    fn sequence_numbers_do_not_follow_the_seeded_generator() {
        // fastrand's generator is fast, not secret: whoever learns its
        // state (it is seeded once per thread) predicts every number.
        fastrand::seed(7);
        let mut isn = isn_source();
        let ours: Vec<u32> = (0..600).map(|_| isn()).collect();
        let mut known = fastrand::Rng::with_seed(7);
        let predicted: Vec<u32> = (0..600).map(|_| known.u32(..)).collect();
        assert_ne!(ours, predicted);
        let distinct: std::collections::HashSet<_> = ours.iter().collect();
        assert!(distinct.len() > 590, "{} distinct of 600", distinct.len());
    }
}
