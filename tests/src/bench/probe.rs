//! What the client sees: a TCP service on each director that names it, a
//! prober that connects to the VIP every few milliseconds, a watch on the
//! VRRP adverts reaching the client, and the outage computed from probes.

use super::Error;
use crate::netns::Host;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the client starts a probe.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(5);
/// How long a probe may take. A lost SYN is only sent again after 1 s, so
/// any value well under that gives the same verdict.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(100);
/// The port every director serves its name on.
pub const PORT: u16 = 80;
/// IP protocol number of VRRP.
const VRRP_PROTOCOL: i32 = 112;
/// RFC 3768 / RFC 5798 IPv4 multicast group of the adverts.
const VRRP_GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);

/// Serves `name` (one byte) to every TCP connection on 0.0.0.0:[`PORT`] in
/// `host`, for as long as the process runs, so whichever director holds
/// the VIP answers and the answer says which one it was.
pub fn serve_name(host: &Host, name: u8) -> Result<(), Error> {
    serve(host, move |mut stream| {
        // A client that gave up already is no concern of the server.
        let _ = stream.write_all(&[name]);
    })
}

/// Listens on 0.0.0.0:[`PORT`] in `host` and hands each connection to
/// `handle`, on the listener's thread, for as long as the process runs (a
/// bench keeps its LAN for the whole run); returns once it listens.
pub fn serve(host: &Host, handle: impl Fn(TcpStream) + Send + 'static) -> Result<(), Error> {
    let (bound, bound_rx) = mpsc::channel();
    drop(host.enter_background(move || {
        let listener = match TcpListener::bind((Ipv4Addr::UNSPECIFIED, PORT)) {
            Ok(l) => {
                let _ = bound.send(Ok(()));
                l
            }
            Err(e) => {
                let _ = bound.send(Err(e));
                return;
            }
        };
        for stream in listener.incoming().flatten() {
            handle(stream);
        }
    })?);
    let what = || format!("listening on 0.0.0.0:{PORT} in {}", host.name());
    match bound_rx.recv_timeout(Duration::from_secs(5)) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(source)) => Err(Error::Io {
            what: what(),
            source,
        }),
        Err(_) => Err(Error::Io {
            what: what(),
            source: std::io::Error::other("the listener thread did not start"),
        }),
    }
}

/// One probe: a TCP connect to the VIP and a one-byte read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probe {
    pub sent: Instant,
    /// The name of the director that answered; `None` when the probe failed
    /// or timed out.
    pub answer: Option<u8>,
}

/// Probes a target from inside a host until stopped.
pub struct Prober {
    stop: Arc<AtomicBool>,
    probes: Arc<Mutex<Vec<Probe>>>,
    thread: JoinHandle<crate::netns::Result<std::io::Result<()>>>,
}

impl Prober {
    /// Starts probing `target` every [`PROBE_INTERVAL`] from `client`.
    pub fn start(client: &Host, target: SocketAddrV4) -> Result<Self, Error> {
        let stop = Arc::new(AtomicBool::new(false));
        let probes = Arc::new(Mutex::new(Vec::new()));
        let thread = client.enter_background({
            let stop = stop.clone();
            let probes = probes.clone();
            move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map(|rt| rt.block_on(probe_loop(target.into(), stop, probes)))
            }
        })?;
        Ok(Self {
            stop,
            probes,
            thread,
        })
    }

    /// The completed probes so far, in the order they were sent.
    pub fn snapshot(&self) -> Vec<Probe> {
        let mut probes = self
            .probes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        probes.sort_by_key(|p| p.sent);
        probes
    }

    /// Waits until `count` probes in a row were answered by `name`; returns
    /// when the first of them was sent.
    pub fn wait_steady(&self, name: u8, count: usize, within: Duration) -> Option<Instant> {
        let start = Instant::now();
        while start.elapsed() < within {
            let probes = self.snapshot();
            let run = probes
                .iter()
                .rev()
                .take_while(|p| p.answer == Some(name))
                .count();
            if run >= count {
                return probes.get(probes.len() - run).map(|p| p.sent);
            }
            std::thread::sleep(PROBE_INTERVAL);
        }
        None
    }

    /// Waits until `outage` finds an outage in the probes sent since
    /// `since`, then until every probe sent before the recovery completed.
    pub fn wait_recovery(
        &self,
        since: Instant,
        old: u8,
        new: u8,
        within: Duration,
    ) -> Option<Duration> {
        let start = Instant::now();
        while start.elapsed() < within {
            if outage(&self.snapshot(), since, old, new).is_some() {
                std::thread::sleep(PROBE_TIMEOUT + 4 * PROBE_INTERVAL);
                return outage(&self.snapshot(), since, old, new);
            }
            std::thread::sleep(PROBE_INTERVAL);
        }
        None
    }

    /// Stops probing and waits for the prober thread.
    pub fn stop(self) -> Result<(), Error> {
        self.stop.store(true, Ordering::Relaxed);
        let joined = self
            .thread
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
        joined.map_err(|source| Error::Io {
            what: "running the prober".into(),
            source,
        })
    }
}

async fn probe_loop(target: SocketAddr, stop: Arc<AtomicBool>, probes: Arc<Mutex<Vec<Probe>>>) {
    let mut tick = tokio::time::interval(PROBE_INTERVAL);
    // Keep the grid: after a stall, go on from now instead of bursting.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let probes = probes.clone();
        tokio::spawn(async move {
            let sent = Instant::now();
            let answer = tokio::time::timeout(PROBE_TIMEOUT, ask(target))
                .await
                .ok()
                .and_then(Result::ok);
            probes
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(Probe { sent, answer });
        });
    }
    // Let the probes in flight finish, so none is cut short.
    tokio::time::sleep(PROBE_TIMEOUT).await;
}

async fn ask(target: SocketAddr) -> std::io::Result<u8> {
    use tokio::io::AsyncReadExt;
    let mut stream = tokio::net::TcpStream::connect(target).await?;
    stream.read_u8().await
}

/// The client-visible outage in `probes` (sorted by send time), counting
/// only probes sent at or after `since`: from the first probe not answered
/// by `old` to the first probe after it answered by `new`, send time to
/// send time. Zero when `new` answered without any probe failing; `None`
/// while `new` has not answered.
pub fn outage(probes: &[Probe], since: Instant, old: u8, new: u8) -> Option<Duration> {
    let mut window = probes.iter().filter(|p| p.sent >= since);
    let first_miss = window.find(|p| p.answer != Some(old))?;
    if first_miss.answer == Some(new) {
        return Some(Duration::ZERO);
    }
    let recovery = window.find(|p| p.answer == Some(new))?;
    Some(recovery.sent - first_miss.sent)
}

/// The probes as runs of one outcome, e.g. "12 × m, 3 × failed, 40 × b".
pub fn summary(probes: &[Probe]) -> String {
    let mut runs: Vec<(Option<u8>, usize)> = Vec::new();
    for p in probes {
        match runs.last_mut() {
            Some((answer, count)) if *answer == p.answer => *count += 1,
            _ => runs.push((p.answer, 1)),
        }
    }
    runs.iter()
        .map(|(answer, count)| match answer {
            Some(name) => format!("{count} × {}", char::from(*name)),
            None => format!("{count} × failed"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The VRRP adverts the client receives, with their arrival time.
pub struct AdvertWatch {
    adverts: mpsc::Receiver<(Instant, Ipv4Addr, u8)>,
}

impl AdvertWatch {
    /// Joins the VRRP group on the client's `eth0` (`local` is its address)
    /// and reports every advert until the process exits.
    pub fn start(client: &Host, local: Ipv4Addr) -> Result<Self, Error> {
        use socket2::{Domain, Protocol, Socket, Type};
        let (tx, adverts) = mpsc::channel();
        let (ready, ready_rx) = mpsc::channel();
        drop(client.enter_background(move || {
            let opened = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(VRRP_PROTOCOL)))
                .and_then(|s| s.join_multicast_v4(&VRRP_GROUP, &local).map(|()| s));
            let socket = match opened {
                Ok(s) => {
                    let _ = ready.send(Ok(()));
                    s
                }
                Err(e) => {
                    let _ = ready.send(Err(e));
                    return;
                }
            };
            let mut buf = [0u8; 1500];
            loop {
                let Ok(len) = (&socket).read(&mut buf) else {
                    continue;
                };
                let at = Instant::now();
                if let Some((src, priority)) = parse_advert(buf.get(..len).unwrap_or(&[]))
                    && tx.send((at, src, priority)).is_err()
                {
                    return;
                }
            }
        })?);
        let what = "opening a raw VRRP socket in the client".to_string();
        match ready_rx.recv_timeout(Duration::from_secs(5)) {
            Ok(Ok(())) => Ok(Self { adverts }),
            Ok(Err(source)) => Err(Error::Io { what, source }),
            Err(_) => Err(Error::Io {
                what,
                source: std::io::Error::other("the advert watch thread did not start"),
            }),
        }
    }

    /// Waits for the next advert from `from` with a non-zero priority
    /// (adverts received before this call do not count); returns when it
    /// arrived.
    pub fn next_from(&self, from: Ipv4Addr, within: Duration) -> Option<Instant> {
        while self.adverts.try_recv().is_ok() {}
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            match self.adverts.recv_timeout(left) {
                Ok((at, src, priority)) if src == from && priority > 0 => return Some(at),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }
}

/// Source address and priority of an IPv4 VRRP packet as a raw socket
/// hands it over (IP header included).
fn parse_advert(packet: &[u8]) -> Option<(Ipv4Addr, u8)> {
    let header_len = usize::from(packet.first()? & 0x0f) * 4;
    let src: [u8; 4] = packet.get(12..16)?.try_into().ok()?;
    // VRRP: version/type, VRID, priority.
    let priority = *packet.get(header_len + 2)?;
    Some((Ipv4Addr::from(src), priority))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probes(start: Instant, answers: &[Option<u8>]) -> Vec<Probe> {
        answers
            .iter()
            .enumerate()
            .map(|(i, &answer)| Probe {
                sent: start + PROBE_INTERVAL * u32::try_from(i).unwrap(),
                answer,
            })
            .collect()
    }

    #[test]
    fn outage_runs_from_first_miss_to_first_answer_of_the_new_master() {
        let t = Instant::now();
        let p = probes(
            t,
            &[Some(b'm'), Some(b'm'), None, None, None, Some(b'b'), None],
        );
        assert_eq!(outage(&p, t, b'm', b'b'), Some(PROBE_INTERVAL * 3));
    }

    #[test]
    fn the_old_master_answering_after_a_miss_is_not_a_recovery() {
        let t = Instant::now();
        let p = probes(t, &[Some(b'm'), None, Some(b'm'), None]);
        assert_eq!(outage(&p, t, b'm', b'b'), None);
    }

    #[test]
    fn a_handover_without_a_miss_is_no_outage() {
        let t = Instant::now();
        let p = probes(t, &[Some(b'm'), Some(b'b')]);
        assert_eq!(outage(&p, t, b'm', b'b'), Some(Duration::ZERO));
    }

    #[test]
    fn probes_before_since_do_not_count() {
        let t = Instant::now();
        let p = probes(t, &[None, Some(b'm'), None, Some(b'b')]);
        let since = t + PROBE_INTERVAL;
        assert_eq!(outage(&p, since, b'm', b'b'), Some(PROBE_INTERVAL));
    }

    #[test]
    fn summary_counts_runs() {
        let t = Instant::now();
        let p = probes(t, &[Some(b'm'), Some(b'm'), None, Some(b'b')]);
        assert_eq!(summary(&p), "2 × m, 1 × failed, 1 × b");
    }

    #[test]
    fn parse_advert_reads_source_and_priority() {
        let mut packet = vec![0u8; 20 + 8];
        packet[0] = 0x45;
        packet[12..16].copy_from_slice(&[10, 0, 0, 1]);
        packet[20] = 0x21;
        packet[21] = 51;
        packet[22] = 150;
        assert_eq!(
            parse_advert(&packet),
            Some((Ipv4Addr::new(10, 0, 0, 1), 150))
        );
        assert_eq!(parse_advert(&packet[..21]), None);
    }
}
