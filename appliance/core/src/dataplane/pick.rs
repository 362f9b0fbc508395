//! How the nftables dataplane schedules as IPVS would: a generator (an
//! incrementing counter, a random number, a hash of an address) indexes a
//! list of real servers in which weights become repetitions, or, for `mh`,
//! a Maglev lookup table ([`super::maglev`]). Sans-IO: the rule that
//! carries a [`Pick`] is built in `appliance::dataplane::nftables`.

use super::{Scheduler, VirtualService, maglev};
use std::net::SocketAddr;

/// The most entries a pick list may have: weights, divided by their
/// greatest common divisor, must sum to at most this.
pub const MAX_PICKS: u32 = 1024;

/// What feeds the pick list's index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generator {
    /// `numgen inc`: the next index at each new connection.
    RoundRobin,
    /// `numgen random`.
    Random,
    /// `jhash` of the client's address.
    SourceHash,
    /// `jhash` of the destination address.
    DestinationHash,
    /// `jhash` of the client's address (and source port with `mh-port`)
    /// into a Maglev table of [`maglev::NFTABLES`]'s size.
    Maglev { port: bool },
}

/// A scheduler as nftables does it: index `i` of the generator's output
/// (modulo the list's length) picks `targets[i]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pick {
    pub generator: Generator,
    pub targets: Vec<SocketAddr>,
}

/// How `service` picks its real server, or why nftables cannot do it as
/// IPVS would. Servers of weight 0 are in no pick list.
pub fn pick(service: &VirtualService) -> Result<Pick, String> {
    let active: Vec<(SocketAddr, u32)> = service
        .destinations
        .values()
        .filter(|d| d.weight.get() > 0)
        .map(|d| (d.address, d.weight.get()))
        .collect();
    let (generator, targets) = match service.scheduler {
        // IPVS rr and dh ignore weights other than 0.
        Scheduler::Rr => (
            Generator::RoundRobin,
            active.iter().map(|(a, _)| *a).collect(),
        ),
        Scheduler::Dh => (
            Generator::DestinationHash,
            active.iter().map(|(a, _)| *a).collect(),
        ),
        Scheduler::Wrr => (Generator::RoundRobin, wrr_sequence(&active)),
        Scheduler::Random => (Generator::Random, expanded(&active)),
        Scheduler::Sh => (Generator::SourceHash, expanded(&active)),
        Scheduler::Mh => {
            // Every director builds the same table from the same servers:
            // in address order, whatever order they were added in.
            let table = maglev::table(maglev::NFTABLES, &active).map_err(|e| e.to_string())?;
            let targets = table
                .into_iter()
                .flatten()
                .filter_map(|i| active.get(i as usize).map(|(a, _)| *a))
                .collect();
            return Ok(Pick {
                generator: Generator::Maglev {
                    port: service.sched_flags.port,
                },
                targets,
            });
        }
        other => {
            let default = if other == Scheduler::KEEPALIVED_DEFAULT {
                " (keepalived's default when lb_algo is not written)"
            } else {
                ""
            };
            return Err(format!(
                "lb_algo {}{default} is not available with the nftables dataplane: use rr, wrr, sh, dh, mh or random",
                other.name()
            ));
        }
    };
    if targets.len() > MAX_PICKS as usize {
        return Err(format!(
            "weights divided by their greatest common divisor sum to {}, above the nftables \
             dataplane's {MAX_PICKS}",
            targets.len()
        ));
    }
    Ok(Pick { generator, targets })
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Weights divided by their greatest common divisor.
fn reduced(active: &[(SocketAddr, u32)]) -> Vec<(SocketAddr, u32)> {
    let g = active.iter().fold(0, |g, (_, w)| gcd(g, *w)).max(1);
    active.iter().map(|(a, w)| (*a, w / g)).collect()
}

/// Each server as many times as its reduced weight, grouped.
fn expanded(active: &[(SocketAddr, u32)]) -> Vec<SocketAddr> {
    reduced(active)
        .into_iter()
        .flat_map(|(a, w)| std::iter::repeat_n(a, w as usize))
        .collect()
}

/// IPVS wrr's own order: at each step down from the largest weight, every
/// server whose weight reaches it (3:1 gives a a a b; 2:2:1 gives a b a b
/// c), so an incrementing counter over the list sends what IPVS sends.
fn wrr_sequence(active: &[(SocketAddr, u32)]) -> Vec<SocketAddr> {
    let reduced = reduced(active);
    let max = reduced.iter().map(|(_, w)| *w).max().unwrap_or(0);
    (1..=max)
        .rev()
        .flat_map(|cw| {
            reduced
                .iter()
                .filter(move |(_, w)| *w >= cw)
                .map(|(a, _)| *a)
        })
        .collect()
}
