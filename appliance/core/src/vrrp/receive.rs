//! The receive path of a VRRP router: RFC 3768 §7.1, RFC 5798 §7.1 and
//! keepalived's unicast rules. A datagram as a socket handed it over (IP
//! addresses, TTL, bytes) is parsed, demultiplexed by VRID to one of the
//! router's [`Listener`]s, checked against how that instance's adverts
//! travel ([`Delivery`]) and what it expects, and comes out as the
//! [`Advert`] its machine takes or as a [`Rejection`] to count. The daemon
//! and the simulator both receive through here, so a rule the simulator
//! exercises is the rule the daemon applies.

use crate::vrrp::Centiseconds;
use crate::vrrp::machine::Advert;
use crate::vrrp::packet::{self, Expected, IpContext, Packet, Rejection, Repr, TTL, Variant};
use std::net::IpAddr;

/// A learned (v3) interval may be this many times shorter or longer than
/// our own: a peer configured differently still works, while a forged
/// advert cannot stretch Master_Down_Interval to minutes (40.95 s × 3) or
/// shrink it to a few milliseconds.
pub const INTERVAL_FACTOR: u16 = 10;

/// How an instance's adverts travel, which decides who can send one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// To the instance's multicast group (the RFCs' 224.0.0.18, ff02::12,
    /// unless configured) with TTL / hop limit 255, so only a neighbour on
    /// the link can send one (RFC 5798 §5.1.1.3). An advert sent to one of
    /// our unicast addresses, or to another group, is refused whatever its
    /// TTL: otherwise any routed host knowing the VRID could hold the VIPs.
    Multicast { group: IpAddr },
    /// keepalived's `unicast_peer`: to one of our addresses, from one of
    /// `peers` (always checked: keepalived checks only with
    /// `vrrp_check_unicast_src`). Peers may be routed, so any TTL will do.
    Unicast { peers: Vec<IpAddr> },
}

/// What one local instance accepts, on which socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listener<K> {
    /// The socket the instance receives on (the driver's key for it).
    pub socket: K,
    pub delivery: Delivery,
    pub expected: Expected,
    /// Our configured interval, to bound a learned one.
    pub adver_int: Centiseconds,
    /// keepalived's `skip_check_adv_addr`: the addresses in an advert from
    /// the router we last took one from are not checked again (they were
    /// when it was first heard), so a master that changes its VIPs, as a
    /// rolling reload does, keeps its backups.
    pub skip_known_addresses: bool,
    /// The source of the last advert this instance took.
    pub known: Option<IpAddr>,
}

impl<K> Listener<K> {
    /// The range of v3 intervals this instance learns from a master.
    pub fn interval_bounds(&self) -> (Centiseconds, Centiseconds) {
        let own = self.adver_int.0.max(1);
        (
            Centiseconds((own / INTERVAL_FACTOR).max(1)),
            Centiseconds(own.saturating_mul(INTERVAL_FACTOR).min(4095)),
        )
    }

    fn admits(&self, ctx: &IpContext) -> Result<(), Rejection> {
        let dst = ctx.dst();
        match &self.delivery {
            Delivery::Multicast { group } => {
                if dst != *group {
                    return Err(Rejection::NotToGroup { dst });
                }
                if ctx.ttl() != TTL {
                    return Err(Rejection::BadTtl(ctx.ttl()));
                }
            }
            Delivery::Unicast { peers } => {
                if dst.is_multicast() {
                    return Err(Rejection::NotUnicast { dst });
                }
                if !peers.contains(&ctx.src()) {
                    return Err(Rejection::UnknownPeer { from: ctx.src() });
                }
            }
        }
        Ok(())
    }

    fn interval(&self, repr: &Repr) -> Result<Centiseconds, Rejection> {
        match repr.variant {
            Variant::V2 { adver_int, .. } => Ok(adver_int.to_centiseconds()),
            Variant::V3 { max_adver_int } => {
                if max_adver_int.0 == 0 {
                    return Err(Rejection::ZeroInterval);
                }
                let (min, max) = self.interval_bounds();
                if max_adver_int < min || max_adver_int > max {
                    return Err(Rejection::IntervalOutOfRange {
                        got: max_adver_int,
                        min,
                        max,
                    });
                }
                Ok(max_adver_int)
            }
        }
    }
}

/// Where an accepted advert goes: the listener's id and what its machine
/// takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Accepted<Id> {
    pub to: Id,
    pub advert: Advert,
}

/// A datagram no instance took: why, and the instance its VRID named on
/// that socket, if one did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused<Id> {
    pub rejection: Rejection,
    pub to: Option<Id>,
}

impl<Id> From<Rejection> for Refused<Id> {
    fn from(rejection: Rejection) -> Self {
        Self {
            rejection,
            to: None,
        }
    }
}

/// Runs one datagram received on `socket` through every receive rule and
/// finds the instance it is for among `listeners`.
pub fn receive<'a, K, Id>(
    listeners: impl IntoIterator<Item = (Id, &'a Listener<K>)>,
    socket: &K,
    ctx: &IpContext,
    bytes: &[u8],
) -> Result<Accepted<Id>, Refused<Id>>
where
    K: PartialEq + 'a,
    Id: Copy,
{
    let repr = Packet::new_checked(bytes)
        .and_then(|p| Repr::parse(&p, ctx))
        .map_err(Rejection::from)?;
    let (to, listener) = listeners
        .into_iter()
        .find(|(_, l)| l.socket == *socket && l.expected.vrid == repr.vrid)
        .ok_or(Rejection::UnknownVrid(repr.vrid))?;
    let refused = |rejection| Refused {
        rejection,
        to: Some(to),
    };
    listener.admits(ctx).map_err(refused)?;
    let known = listener.skip_known_addresses && listener.known == Some(ctx.src());
    packet::validate(&repr, &listener.expected, !known).map_err(refused)?;
    let adver_int = listener.interval(&repr).map_err(refused)?;
    Ok(Accepted {
        to,
        advert: Advert {
            from: ctx.src(),
            priority: repr.priority,
            adver_int,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vrrp::packet::{Addresses, Auth, ExpectedVersion, MULTICAST_V4, Seconds};
    use crate::vrrp::{Priority, Vrid};
    use std::net::Ipv4Addr;

    const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);
    const PEER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
    const US: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

    fn listener(delivery: Delivery, v3: bool) -> Listener<u8> {
        Listener {
            socket: 0,
            delivery,
            expected: Expected {
                vrid: Vrid::new(51).unwrap(),
                protocol: if v3 {
                    ExpectedVersion::V3
                } else {
                    ExpectedVersion::V2 {
                        adver_int: Seconds(1),
                        auth: Auth::None,
                    }
                },
                addresses: Some(Addresses::V4(vec![VIP])),
            },
            adver_int: Centiseconds(100),
            skip_known_addresses: false,
            known: None,
        }
    }

    fn advert(v3_interval: Option<u16>, priority: u8, ctx: &IpContext) -> Vec<u8> {
        let repr = Repr {
            vrid: Vrid::new(51).unwrap(),
            priority: Priority::from_u8(priority),
            variant: match v3_interval {
                Some(cs) => Variant::V3 {
                    max_adver_int: Centiseconds(cs),
                },
                None => Variant::V2 {
                    adver_int: Seconds(1),
                    auth: Auth::None,
                },
            },
            addresses: Addresses::V4(vec![VIP]),
        };
        let mut bytes = vec![0; repr.buffer_len()];
        repr.emit(&mut Packet::new_unchecked(&mut bytes[..]), ctx)
            .unwrap();
        bytes
    }

    const GROUP: Delivery = Delivery::Multicast {
        group: IpAddr::V4(MULTICAST_V4),
    };

    fn ctx(src: Ipv4Addr, dst: Ipv4Addr, ttl: u8) -> IpContext {
        IpContext::V4 { src, dst, ttl }
    }

    fn run(l: &Listener<u8>, ctx: &IpContext, bytes: &[u8]) -> Result<Advert, Rejection> {
        receive([(7usize, l)], &0, ctx, bytes)
            .map(|a| {
                assert_eq!(a.to, 7);
                a.advert
            })
            .map_err(|r| r.rejection)
    }

    #[test]
    fn a_multicast_instance_takes_adverts_to_the_group_with_ttl_255() {
        let l = listener(GROUP, true);
        let c = ctx(PEER, MULTICAST_V4, 255);
        let got = run(&l, &c, &advert(Some(100), 200, &c)).unwrap();
        assert_eq!(got.from, IpAddr::V4(PEER));
        assert_eq!(got.priority, Priority::from_u8(200));
        assert_eq!(got.adver_int, Centiseconds(100));
    }

    #[test]
    fn a_multicast_instance_refuses_adverts_to_its_unicast_address_whatever_the_ttl() {
        let l = listener(GROUP, true);
        for ttl in [64, 255] {
            let c = ctx(Ipv4Addr::new(198, 51, 100, 9), US, ttl);
            assert_eq!(
                run(&l, &c, &advert(Some(4095), 255, &c)),
                Err(Rejection::NotToGroup { dst: US.into() }),
                "ttl {ttl}"
            );
        }
    }

    #[test]
    fn a_multicast_instance_takes_only_its_own_group() {
        let own = Ipv4Addr::new(224, 0, 0, 19);
        let l = listener(Delivery::Multicast { group: own.into() }, true);
        let c = ctx(PEER, own, 255);
        assert!(run(&l, &c, &advert(Some(100), 200, &c)).is_ok());
        let c = ctx(PEER, MULTICAST_V4, 255);
        assert_eq!(
            run(&l, &c, &advert(Some(100), 200, &c)),
            Err(Rejection::NotToGroup {
                dst: MULTICAST_V4.into()
            })
        );
    }

    #[test]
    fn a_multicast_advert_with_a_lower_ttl_crossed_a_router() {
        let l = listener(GROUP, false);
        let c = ctx(PEER, MULTICAST_V4, 254);
        assert_eq!(
            run(&l, &c, &advert(None, 200, &c)),
            Err(Rejection::BadTtl(254))
        );
    }

    #[test]
    fn a_unicast_instance_takes_its_routed_peers() {
        let l = listener(
            Delivery::Unicast {
                peers: vec![IpAddr::V4(PEER)],
            },
            false,
        );
        let c = ctx(PEER, US, 60);
        assert!(run(&l, &c, &advert(None, 200, &c)).is_ok());
    }

    #[test]
    fn a_unicast_instance_refuses_strangers_and_the_group() {
        let l = listener(
            Delivery::Unicast {
                peers: vec![IpAddr::V4(PEER)],
            },
            false,
        );
        let stranger = Ipv4Addr::new(192, 0, 2, 66);
        let c = ctx(stranger, US, 255);
        assert_eq!(
            run(&l, &c, &advert(None, 255, &c)),
            Err(Rejection::UnknownPeer {
                from: stranger.into()
            })
        );
        let c = ctx(PEER, MULTICAST_V4, 255);
        assert_eq!(
            run(&l, &c, &advert(None, 255, &c)),
            Err(Rejection::NotUnicast {
                dst: MULTICAST_V4.into()
            })
        );
    }

    #[test]
    fn a_learned_interval_is_bounded_and_zero_is_refused() {
        let l = listener(GROUP, true);
        assert_eq!(l.interval_bounds(), (Centiseconds(10), Centiseconds(1000)));
        let c = ctx(PEER, MULTICAST_V4, 255);
        assert_eq!(
            run(&l, &c, &advert(Some(0), 200, &c)),
            Err(Rejection::ZeroInterval)
        );
        for cs in [9, 1001, 4095] {
            assert_eq!(
                run(&l, &c, &advert(Some(cs), 200, &c)),
                Err(Rejection::IntervalOutOfRange {
                    got: Centiseconds(cs),
                    min: Centiseconds(10),
                    max: Centiseconds(1000),
                }),
                "{cs} cs"
            );
        }
        for cs in [10, 1000] {
            assert!(run(&l, &c, &advert(Some(cs), 200, &c)).is_ok(), "{cs} cs");
        }
    }

    #[test]
    fn bounds_stay_inside_what_the_wire_carries() {
        let mut l = listener(GROUP, true);
        l.adver_int = Centiseconds(1);
        assert_eq!(l.interval_bounds(), (Centiseconds(1), Centiseconds(10)));
        l.adver_int = Centiseconds(4000);
        assert_eq!(l.interval_bounds(), (Centiseconds(400), Centiseconds(4095)));
    }

    #[test]
    fn the_vrid_picks_the_listener_on_that_socket() {
        let l = listener(GROUP, false);
        let c = ctx(PEER, MULTICAST_V4, 255);
        let bytes = advert(None, 200, &c);
        assert_eq!(
            receive([(0usize, &l)], &1, &c, &bytes),
            Err(Refused {
                rejection: Rejection::UnknownVrid(Vrid::new(51).unwrap()),
                to: None,
            })
        );
    }

    /// A refusal names the instance its VRID picked (for the metrics'
    /// `instance` label), and none when no instance has it or the packet
    /// is not VRRP at all.
    #[test]
    fn a_refusal_names_the_instance_the_vrid_picked() {
        let l = listener(GROUP, false);
        let c = ctx(PEER, US, 255);
        let bytes = advert(None, 200, &c);
        assert_eq!(
            receive([(3usize, &l)], &0, &c, &bytes),
            Err(Refused {
                rejection: Rejection::NotToGroup { dst: US.into() },
                to: Some(3),
            })
        );
        assert_eq!(
            receive([(3usize, &l)], &0, &c, &bytes[..4]).map_err(|r| r.to),
            Err(None)
        );
    }
}
