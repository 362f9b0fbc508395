//! Maglev hashing (Eisenbud et al., NSDI 2016, §3.4) as IPVS's `mh`
//! scheduler builds its lookup table (net/netfilter/ipvs/ip_vs_mh.c): each
//! real server walks the table's slots in its own order (an offset and a
//! skip from two fixed-key hashes of its address and port), and the servers
//! take turns claiming the next free slot of their walk, a server of weight
//! `w` taking `w` (reduced) slots a turn, until every slot is claimed.
//!
//! The table depends only on the servers, their order and their weights,
//! never on a director's state: every director given the same servers in
//! the same order builds the same table, so any of them sends a client to
//! the same server. The order matters a little: the same servers in
//! another order contend for a few slots differently (a fraction of a
//! percent of flows), which is why IPVS directors agree only while their
//! servers were added in the same order. Removing a server frees only its slots; the others
//! keep theirs, up to the slots the freed ones cascade into (Maglev's
//! "minimal disruption", a few percent). Pure.

use siphasher::sip::SipHasher13;
use std::hash::Hasher;
use std::net::{IpAddr, SocketAddr};

/// A table's size (a prime) and the weight bits it keeps: weights, divided
/// by their greatest common divisor, are shifted right until the largest
/// fits in `weight_bits` bits, so no server's turn is longer than that.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub size: u32,
    pub weight_bits: u32,
}

/// IPVS's table with `CONFIG_IP_VS_MH_TAB_INDEX=12` (its default, and
/// Debian's): 4093 slots.
pub const IPVS: Shape = Shape {
    size: 4093,
    weight_bits: 6,
};

/// The nftables dataplane's table: 65537 slots (a prime above 2^16), so a
/// server's share is exact to 0.002 %.
pub const NFTABLES: Shape = Shape {
    size: 65537,
    weight_bits: 8,
};

/// ip_vs_mh.c's two fixed hsiphash keys (`generate_hash_secret`): the same
/// on every director.
const KEY_OFFSET: u64 = 2_654_435_761;
const KEY_SKIP: u64 = 2_654_446_892;

/// ip_vs_mh.c's `ip_vs_mh_hashkey`: the port plus the address (an IPv6
/// address folded to 32 bits by XOR), hashed by hsiphash, which on a 64-bit
/// kernel is SipHash-1-3 truncated to 32 bits, over the sum's bytes in the
/// host's order (little-endian: x86-64 and arm64).
pub fn hash(address: IpAddr, port: u16, key: u64) -> u32 {
    let folded = match address {
        IpAddr::V4(v4) => u32::from(v4),
        IpAddr::V6(v6) => {
            let o = v6.octets();
            (0..4)
                .map(|i| u32::from_be_bytes([o[4 * i], o[4 * i + 1], o[4 * i + 2], o[4 * i + 3]]))
                .fold(0, |acc, word| acc ^ word)
        }
    };
    let v = u32::from(port).wrapping_add(folded);
    let mut hasher = SipHasher13::new_with_keys(key, key);
    hasher.write(&v.to_le_bytes());
    // Truncating is the kernel's: hsiphash returns 32 bits.
    hasher.finish() as u32
}

/// The slot a client's address (and port, with `mh-port`) falls in, as
/// `ip_vs_mh_get` looks it up.
pub fn slot(shape: Shape, client: IpAddr, port: u16) -> u32 {
    hash(client, port, KEY_OFFSET) % shape.size
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Why a table cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("{servers} real servers do not fit a Maglev table of {size} slots")]
    TooMany { servers: usize, size: u32 },
}

/// The lookup table: for each slot, the index in `servers` of the server
/// that owns it, or `None` everywhere when no server has a weight.
/// `servers` are `(address, weight)` in the order IPVS holds them: newest
/// first, since it adds a server at the head of its list (`ipvsadm -Ln
/// --nosort` shows it; a plain `-Ln` sorts). A server of weight 0 owns no
/// slot.
pub fn table(shape: Shape, servers: &[(SocketAddr, u32)]) -> Result<Vec<Option<u32>>, Error> {
    let size = shape.size as usize;
    if servers.len() > size {
        return Err(Error::TooMany {
            servers: servers.len(),
            size: shape.size,
        });
    }
    let g = servers.iter().fold(0, |g, (_, w)| gcd(g, *w));
    let mut lookup = vec![None; size];
    if g == 0 {
        return Ok(lookup);
    }
    let max = servers.iter().map(|(_, w)| w / g).max().unwrap_or(0);
    // `fls(max) - bits`, as ip_vs_mh_shift_weight.
    let shift = (u32::BITS - max.leading_zeros()).saturating_sub(shape.weight_bits);
    struct Walk {
        perm: u32,
        skip: u32,
        turns: u32,
    }
    let mut walks: Vec<Walk> = servers
        .iter()
        .map(|(address, weight)| {
            let offset = hash(address.ip(), address.port(), KEY_OFFSET) % shape.size;
            let skip = hash(address.ip(), address.port(), KEY_SKIP) % (shape.size - 1) + 1;
            let reduced = (weight / g) >> shift;
            Walk {
                perm: offset,
                skip,
                turns: if reduced > 0 {
                    reduced
                } else {
                    u32::from(*weight != 0)
                },
            }
        })
        .collect();
    let mut taken = vec![false; size];
    let mut filled = 0;
    'fill: loop {
        for (index, walk) in (0u32..).zip(walks.iter_mut()) {
            for _ in 0..walk.turns {
                while taken[walk.perm as usize] {
                    walk.perm += walk.skip;
                    if walk.perm >= shape.size {
                        walk.perm -= shape.size;
                    }
                }
                taken[walk.perm as usize] = true;
                lookup[walk.perm as usize] = Some(index);
                filled += 1;
                if filled == size {
                    break 'fill;
                }
            }
        }
    }
    Ok(lookup)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn servers(n: u8, weight: u32) -> Vec<(SocketAddr, u32)> {
        (1..=n)
            .map(|i| (SocketAddr::from(([10, 0, 2, i], 8080)), weight))
            .collect()
    }

    fn shares(lookup: &[Option<u32>], n: usize) -> Vec<usize> {
        let mut counts = vec![0; n];
        for slot in lookup.iter().flatten() {
            counts[*slot as usize] += 1;
        }
        counts
    }

    #[test]
    fn equal_weights_share_the_table_almost_evenly() {
        for shape in [IPVS, NFTABLES] {
            let lookup = table(shape, &servers(4, 1)).unwrap();
            assert!(lookup.iter().all(Option::is_some));
            let even = shape.size as usize / 4;
            for share in shares(&lookup, 4) {
                // Maglev's imbalance is at most one turn per server.
                assert!(share.abs_diff(even) <= 1, "{share} vs {even}");
            }
        }
    }

    #[test]
    fn weights_are_shares() {
        let mut s = servers(3, 1);
        s[0].1 = 3;
        s[2].1 = 0;
        let lookup = table(NFTABLES, &s).unwrap();
        let counts = shares(&lookup, 3);
        assert_eq!(counts[2], 0);
        assert_eq!(counts[0] + counts[1], NFTABLES.size as usize);
        assert!(
            (counts[0] as f64 / counts[1] as f64 - 3.0).abs() < 0.01,
            "{counts:?}"
        );
    }

    #[test]
    fn no_weight_no_table_and_too_many_servers_is_an_error() {
        assert!(
            table(IPVS, &servers(2, 0))
                .unwrap()
                .iter()
                .all(Option::is_none)
        );
        assert!(table(IPVS, &[]).unwrap().iter().all(Option::is_none));
        let many: Vec<(SocketAddr, u32)> = (0..4094u32)
            .map(|i| (SocketAddr::from(([10, 1, (i >> 8) as u8, i as u8], 80)), 1))
            .collect();
        assert_eq!(
            table(IPVS, &many),
            Err(Error::TooMany {
                servers: 4094,
                size: 4093
            })
        );
    }

    /// The property the scale-out rests on: a server's removal moves its
    /// own clients and almost no one else's.
    #[test]
    fn removing_a_server_moves_its_share_and_at_most_one_percent_more() {
        for n in [3u8, 4, 8, 16] {
            let all = servers(n, 1);
            let before = table(NFTABLES, &all).unwrap();
            for gone in 0..n as usize {
                let mut rest = all.clone();
                rest.remove(gone);
                let after = table(NFTABLES, &rest).unwrap();
                let address =
                    |s: Option<u32>, list: &[(SocketAddr, u32)]| s.map(|i| list[i as usize].0);
                let moved = before
                    .iter()
                    .zip(&after)
                    .filter(|(b, a)| address(**b, &all) != address(**a, &rest))
                    .count();
                let own = before.iter().filter(|b| **b == Some(gone as u32)).count();
                let extra = (moved - own) as f64 / NFTABLES.size as f64;
                assert!(
                    extra <= 0.01,
                    "{n} servers, #{gone} removed: {extra:.4} moved beyond its share"
                );
            }
        }
    }

    #[test]
    fn the_table_depends_only_on_the_servers_and_their_order() {
        let s = servers(5, 2);
        assert_eq!(table(IPVS, &s).unwrap(), table(IPVS, &s).unwrap());
        let mut reversed = s.clone();
        reversed.reverse();
        let forward: Vec<_> = table(IPVS, &s)
            .unwrap()
            .iter()
            .map(|i| i.map(|i| s[i as usize].0))
            .collect();
        let backward: Vec<_> = table(IPVS, &reversed)
            .unwrap()
            .iter()
            .map(|i| i.map(|i| reversed[i as usize].0))
            .collect();
        // Another order is another table: IPVS's depends on the order the
        // servers were added.
        assert_ne!(forward, backward);
    }

    /// The kernel's input to the hash: port plus address, an IPv6 address
    /// folded by XOR of its four words. (That SipHash-1-3 with these keys
    /// is the kernel's hsiphash, and this table IPVS's, is checked against
    /// IPVS itself in a VM: tests/tests/vm_maglev.rs.)
    #[test]
    fn the_hash_is_of_port_plus_the_folded_address() {
        // 10.0.0.1:2 and 10.0.0.2:1 collide, as in the kernel.
        let a = hash("10.0.0.1".parse().unwrap(), 2, KEY_OFFSET);
        let b = hash("10.0.0.2".parse().unwrap(), 1, KEY_OFFSET);
        assert_eq!(a, b);
        assert_ne!(a, hash("10.0.0.1".parse().unwrap(), 2, KEY_SKIP));
        let v6 = hash("2001:db8::1".parse().unwrap(), 80, KEY_OFFSET);
        let folded = 0x2001_0db8u32 ^ 1;
        let v4 = hash(
            IpAddr::from(std::net::Ipv4Addr::from(folded)),
            80,
            KEY_OFFSET,
        );
        assert_eq!(v6, v4);
    }
}
