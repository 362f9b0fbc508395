//! The half-open prober's receive side: TCP answers as its raw sockets
//! hand them over (IPv4 with the IP header, IPv6 without), and ICMP errors
//! quoting one of its SYNs, fed to the flights of a few probes in flight
//! while time passes and more probes start. The input is a script of
//! steps, each a byte choosing the step and its operands. Every probe ends
//! exactly once (answered, failed or timed out, and timed out only once
//! its timeout has passed), none is left after the longest timeout, and
//! every SYN sent parses back with its sequence number and checksum.

use appliance::check::decision::{Failure, Outcome};
use appliance::check::syn::flights::{Done, Flights, Transmit};
use appliance::check::syn::segment::{Answer, Quote, SYN_LEN, Segment, Syn};
use appliance::check::syn::socket::{Family, ipv4_payload};
use appliance::clock::Instant;
use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// The probe port: the one the captured answers in the seeds go to.
const PORT: u16 = 40000;
/// The first initial sequence numbers, those of the captured SYNs the
/// seeds' answers acknowledge (check/syn/segment.rs's tests); a counter
/// after them.
const FIRST_ISNS: [u32; 3] = [0x1122_3344, 0x5566_7788, 0x99aa_bbcc];

fn targets() -> [SocketAddr; 4] {
    [
        SocketAddr::from(([127, 0, 0, 1], 8080)),
        SocketAddr::from(([127, 0, 0, 1], 8081)),
        SocketAddr::from((Ipv6Addr::LOCALHOST, 8080)),
        SocketAddr::from(([10, 0, 0, 1], 80)),
    ]
}

/// The probes started, by token: target and deadline.
struct Probes {
    flights: Flights<usize>,
    now: Instant,
    started: Vec<(SocketAddr, Instant)>,
    done: Vec<Done<usize>>,
}

impl Probes {
    fn start(&mut self, target: SocketAddr, other_source: bool, timeout: Duration) {
        // IPv6 SYNs leave the source to the kernel, as the daemon's do.
        let source = match target {
            SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + u8::from(other_source))),
            SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        let token = self.started.len();
        self.started.push((target, self.now + timeout));
        if let Some(transmit) = self.flights.start(self.now, token, source, target, timeout) {
            sends(&transmit);
        }
    }

    fn answer(&mut self, from: IpAddr, tcp: &[u8]) {
        if let Ok(answer) = Segment::new_checked(tcp).and_then(|s| Answer::parse(&s)) {
            self.flights.answer(from, &answer, &mut self.done);
        }
    }

    fn expire(&mut self, now: Instant) {
        self.now = now;
        let (expired, transmits) = self.flights.expire(now);
        for done in &expired {
            assert_eq!(done.outcome, Outcome::Down(Failure::Timeout));
            let (_, deadline) = self.started[done.token];
            assert!(deadline <= now, "probe {} timed out early", done.token);
        }
        self.done.extend(expired);
        transmits.iter().for_each(sends);
    }
}

pub fn syn_answer(data: &[u8]) {
    let mut isns = FIRST_ISNS.into_iter();
    let mut counter = 0u32;
    let isn = move || {
        isns.next().unwrap_or_else(|| {
            counter = counter.wrapping_add(0x0101_0101);
            counter
        })
    };
    let mut probes = Probes {
        flights: Flights::new(PORT, Box::new(isn)),
        now: Instant::ZERO,
        started: Vec::new(),
        done: Vec::new(),
    };
    let targets = targets();
    // A probe of each target, and a second of the first sharing its flight.
    for target in [targets[0], targets[1], targets[2], targets[0], targets[3]] {
        probes.start(target, false, Duration::from_secs(5));
    }
    let mut input = data;
    while let Some((&step, rest)) = input.split_first() {
        input = rest;
        match step % 5 {
            // An IPv4 packet as the raw socket reads it.
            0 => {
                let packet = take(&mut input);
                if let Some((from, tcp)) = ipv4_payload(packet) {
                    probes.answer(IpAddr::V4(from), tcp);
                }
            }
            // A TCP segment from one of the IPv6 targets' addresses.
            1 => {
                let segment = take(&mut input);
                probes.answer(IpAddr::V6(Ipv6Addr::LOCALHOST), segment);
            }
            // An ICMP error: the quoted packet was going to the target
            // the next byte picks.
            2 => {
                let Some((&pick, rest)) = input.split_first() else {
                    break;
                };
                input = rest;
                let quoted = take(&mut input);
                let to = targets[usize::from(pick) % targets.len()].ip();
                if let Some(quote) = Quote::parse(quoted)
                    && quote.src_port == PORT
                {
                    let target = SocketAddr::new(to, quote.dst_port);
                    let error = ErrorKind::HostUnreachable;
                    probes
                        .flights
                        .unreachable(target, quote.seq, error, &mut probes.done);
                }
            }
            // Time passes: up to 25.5 s.
            3 => {
                let Some((&tenths, rest)) = input.split_first() else {
                    break;
                };
                input = rest;
                let now = probes.now + Duration::from_millis(u64::from(tenths) * 100);
                probes.expire(now);
            }
            // Another probe: target, source and timeout (0.1 to 25.6 s).
            _ => {
                let Some((&[pick, tenths], rest)) = input.split_first_chunk::<2>() else {
                    break;
                };
                input = rest;
                let target = targets[usize::from(pick) % targets.len()];
                let timeout = Duration::from_millis((u64::from(tenths) + 1) * 100);
                probes.start(target, pick & 0x80 != 0, timeout);
            }
        }
    }
    let last = probes
        .started
        .iter()
        .map(|&(_, deadline)| deadline)
        .fold(probes.now, Instant::max);
    probes.expire(last);
    assert_eq!(probes.flights.poll_timeout(), None, "flights left over");
    let mut ended: Vec<usize> = probes.done.iter().map(|d| d.token).collect();
    ended.sort_unstable();
    let all: Vec<usize> = (0..probes.started.len()).collect();
    assert_eq!(ended, all, "each probe ends exactly once");
    for done in &probes.done {
        assert_eq!(done.target, probes.started[done.token].0);
    }
}

/// A length byte and that many bytes (fewer at the end of the input).
fn take<'a>(input: &mut &'a [u8]) -> &'a [u8] {
    let Some((&len, rest)) = input.split_first() else {
        return &[];
    };
    let (taken, rest) = rest.split_at(usize::from(len).min(rest.len()));
    *input = rest;
    taken
}

/// The SYN the prober would send for `transmit` parses back as sent.
fn sends(transmit: &Transmit) {
    let family = Family::of(transmit.target.ip());
    let syn = Syn {
        src_port: PORT,
        dst_port: transmit.target.port(),
        seq: transmit.seq,
        mss: family.mss(),
    };
    let mut bytes = [0u8; SYN_LEN];
    let addresses = (transmit.source, transmit.target.ip());
    syn.emit(&mut Segment::new_unchecked(&mut bytes[..]), Some(addresses));
    let segment = Segment::new_checked(&bytes[..]).expect("a SYN is a whole segment");
    assert_eq!(segment.seq_number(), transmit.seq);
    assert_eq!(segment.dst_port(), transmit.target.port());
    assert_eq!(
        segment.checksum(),
        segment.compute_checksum(addresses.0, addresses.1)
    );
}
