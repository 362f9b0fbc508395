//! A VRRP router: its units (lone instances and sync groups) and what each
//! instance accepts from the wire. It takes a datagram as a socket handed
//! it over (the socket, the IP context, the bytes), applies every receive
//! rule ([`receive`](super::receive)), hands the advert to its instance's
//! machine and returns the machine's actions tagged with the instance, or
//! the [`Rejection`] to count. The daemon and the simulator each drive one
//! router per node, so they demultiplex and judge adverts the same way.

use super::machine::{Action, Input};
use super::packet::IpContext;
use super::receive::{self, Listener, Refused};
use super::unit::Unit;
use crate::clock::Instant;
use std::collections::BTreeMap;

/// The units of one router and their instances' listeners.
#[derive(Debug)]
pub struct Router<K> {
    units: Vec<Unit>,
    /// By unit, then by member, in the unit's member order.
    listeners: Vec<Vec<Listener<K>>>,
    /// Datagrams no instance took, by [`Rejection::name`].
    drops: BTreeMap<&'static str, u64>,
}

/// An advert a router took: the unit and member it went to, and what its
/// machine (or sync group) made of it.
#[derive(Debug)]
pub struct Delivered {
    pub unit: usize,
    pub member: usize,
    /// Tagged with the instance's name.
    pub actions: Vec<(String, Action)>,
}

impl<K> Default for Router<K> {
    fn default() -> Self {
        Self {
            units: Vec::new(),
            listeners: Vec::new(),
            drops: BTreeMap::new(),
        }
    }
}

impl<K: PartialEq> Router<K> {
    /// Adds a unit with one listener per member, in member order; its
    /// index is the number of units before it.
    pub fn push(&mut self, unit: Unit, listeners: Vec<Listener<K>>) {
        self.units.push(unit);
        self.listeners.push(listeners);
    }

    /// Removes the unit at `index` (later ones move down by one).
    pub fn remove(&mut self, index: usize) -> Option<Unit> {
        if index >= self.units.len() {
            return None;
        }
        self.listeners.remove(index);
        Some(self.units.remove(index))
    }

    pub fn units(&self) -> &[Unit] {
        &self.units
    }

    pub fn units_mut(&mut self) -> &mut [Unit] {
        &mut self.units
    }

    /// The listener of `member` of the unit at `index`, to change what it
    /// expects (a reload's new VIPs) without forgetting whom it heard.
    pub fn listener_mut(&mut self, index: usize, member: usize) -> Option<&mut Listener<K>> {
        self.listeners.get_mut(index)?.get_mut(member)
    }

    /// The datagrams no instance took so far, by reason.
    pub fn drops(&self) -> &BTreeMap<&'static str, u64> {
        &self.drops
    }

    /// The datagram `bytes` that `socket` received in `ctx`, at `now`: the
    /// actions of the instance it is for, or why no instance takes it
    /// (counted in [`Router::drops`]).
    pub fn receive(
        &mut self,
        socket: &K,
        ctx: &IpContext,
        bytes: &[u8],
        now: Instant,
    ) -> Result<Delivered, Refused<(usize, usize)>> {
        let listeners = self.listeners.iter().enumerate().flat_map(|(u, members)| {
            members
                .iter()
                .enumerate()
                .map(move |(m, listener)| ((u, m), listener))
        });
        let accepted = match receive::receive(listeners, socket, ctx, bytes) {
            Ok(accepted) => accepted,
            Err(refused) => {
                *self.drops.entry(refused.rejection.name()).or_default() += 1;
                return Err(refused);
            }
        };
        let (unit, member) = accepted.to;
        if let Some(listener) = self.listeners.get_mut(unit).and_then(|l| l.get_mut(member)) {
            listener.known = Some(ctx.src());
        }
        let actions = match self.units.get_mut(unit) {
            Some(u) => u.handle_instance(now, member, Input::Advert(accepted.advert)),
            None => Vec::new(),
        };
        Ok(Delivered {
            unit,
            member,
            actions,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vrrp::machine::{InstanceConfig, Machine, State};
    use crate::vrrp::packet::{
        Addresses, Auth, Expected, ExpectedVersion, MULTICAST_V4, Packet, Rejection, Repr, Seconds,
        TTL, Variant,
    };
    use crate::vrrp::receive::Delivery;
    use crate::vrrp::{Centiseconds, Priority, Vrid};
    use std::net::Ipv4Addr;

    const OURS: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const PEER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

    fn vrid(n: u32) -> Vrid {
        Vrid::new(n).unwrap()
    }

    fn router(vrids: &[u32]) -> Router<&'static str> {
        router_with(vrids, None, false)
    }

    /// Routers whose instances expect `addresses` in adverts, and skip
    /// the check for a known sender when `skip`.
    fn router_with(
        vrids: &[u32],
        addresses: Option<Addresses>,
        skip: bool,
    ) -> Router<&'static str> {
        let mut router = Router::default();
        for &n in vrids {
            let config = InstanceConfig::new(format!("VI_{n}"), vrid(n), OURS.into());
            let listener = Listener {
                socket: "eth0",
                delivery: Delivery::Multicast {
                    group: MULTICAST_V4.into(),
                },
                expected: Expected {
                    vrid: vrid(n),
                    protocol: ExpectedVersion::V2 {
                        adver_int: Seconds(1),
                        auth: Auth::None,
                    },
                    addresses: addresses.clone(),
                },
                adver_int: Centiseconds(100),
                skip_known_addresses: skip,
                known: None,
            };
            let mut unit = Unit::Solo(Box::new(Machine::new(config)));
            unit.handle_all(Instant::ZERO, &Input::Startup);
            router.push(unit, vec![listener]);
        }
        router
    }

    fn advert(n: u32, priority: u8) -> (IpContext, Vec<u8>) {
        advert_from(PEER, n, priority, &[Ipv4Addr::new(10, 0, 0, 100)])
    }

    fn advert_from(src: Ipv4Addr, n: u32, priority: u8, vips: &[Ipv4Addr]) -> (IpContext, Vec<u8>) {
        let ctx = IpContext::V4 {
            src,
            dst: MULTICAST_V4,
            ttl: TTL,
        };
        let repr = Repr {
            vrid: vrid(n),
            priority: Priority::from_u8(priority),
            variant: Variant::V2 {
                adver_int: Seconds(1),
                auth: Auth::None,
            },
            addresses: Addresses::V4(vips.to_vec()),
        };
        let mut bytes = vec![0; repr.buffer_len()];
        repr.emit(&mut Packet::new_unchecked(&mut bytes[..]), &ctx)
            .unwrap();
        (ctx, bytes)
    }

    #[test]
    fn an_advert_goes_to_the_instance_of_its_vrid_and_socket() {
        let mut r = router(&[51, 52]);
        let (ctx, bytes) = advert(52, 200);
        let delivered = r.receive(&"eth0", &ctx, &bytes, Instant::ZERO).unwrap();
        assert_eq!((delivered.unit, delivered.member), (1, 0));
        assert!(
            delivered.actions.iter().all(|(name, _)| name == "VI_52"),
            "{:?}",
            delivered.actions
        );
        assert_eq!(r.units()[1].machines()[0].state(), State::Backup);
    }

    #[test]
    fn what_no_instance_takes_is_a_rejection() {
        let mut r = router(&[51]);
        let (ctx, bytes) = advert(99, 200);
        assert!(matches!(
            r.receive(&"eth0", &ctx, &bytes, Instant::ZERO),
            Err(Refused {
                rejection: Rejection::UnknownVrid(_),
                to: None,
            })
        ));
        let (ctx, bytes) = advert(51, 200);
        assert!(matches!(
            r.receive(&"eth1", &ctx, &bytes, Instant::ZERO),
            Err(Refused {
                rejection: Rejection::UnknownVrid(_),
                to: None,
            })
        ));
        assert!(
            r.receive(&"eth0", &ctx, &bytes[..4], Instant::ZERO)
                .is_err()
        );
    }

    #[test]
    fn a_removed_unit_takes_its_listeners_with_it() {
        let mut r = router(&[51, 52]);
        assert!(r.remove(0).is_some());
        let (ctx, bytes) = advert(51, 200);
        assert!(r.receive(&"eth0", &ctx, &bytes, Instant::ZERO).is_err());
        let (ctx, bytes) = advert(52, 200);
        let delivered = r.receive(&"eth0", &ctx, &bytes, Instant::ZERO).unwrap();
        assert_eq!(delivered.unit, 0);
        assert!(r.remove(5).is_none());
    }

    /// keepalived's `skip_check_adv_addr`: once a router's advert was taken
    /// with our addresses, its later adverts are not checked for them (a
    /// master reloaded with one more VIP keeps its backups); a router not
    /// yet heard from is checked, and without the option every advert is.
    #[test]
    fn a_known_sender_skips_the_address_check_only_with_the_option() {
        let ours = Ipv4Addr::new(10, 0, 0, 100);
        let more = [ours, Ipv4Addr::new(10, 0, 0, 101)];
        let other = Ipv4Addr::new(10, 0, 0, 3);
        for skip in [true, false] {
            let mut r = router_with(&[51], Some(Addresses::V4(vec![ours])), skip);
            let (ctx, bytes) = advert_from(PEER, 51, 200, &more);
            assert!(
                matches!(
                    r.receive(&"eth0", &ctx, &bytes, Instant::ZERO),
                    Err(Refused {
                        rejection: Rejection::AddressCountMismatch { .. },
                        to: Some((0, 0)),
                    })
                ),
                "a sender not heard from is checked"
            );
            let (ctx, bytes) = advert_from(PEER, 51, 200, &[ours]);
            assert!(r.receive(&"eth0", &ctx, &bytes, Instant::ZERO).is_ok());
            let (ctx, bytes) = advert_from(PEER, 51, 200, &more);
            assert_eq!(
                r.receive(&"eth0", &ctx, &bytes, Instant::ZERO).is_ok(),
                skip,
                "skip {skip}"
            );
            let (ctx, bytes) = advert_from(other, 51, 200, &more);
            assert!(
                r.receive(&"eth0", &ctx, &bytes, Instant::ZERO).is_err(),
                "another sender is checked"
            );
        }
    }
}
