//! One BGP peer's session (RFC 4271 §8), for a speaker that only
//! announces: the director connects to the router, opens, keeps the
//! session alive and sends UPDATEs so the router holds exactly the
//! prefixes the daemon says it can serve; what the router sends is
//! checked for framing and state, and otherwise ignored (a director
//! forwards by its own table, not by routes it learns).
//!
//! The session never listens: the router's own connection attempts find
//! no listener, and ours is the only connection (no collision to resolve).
//!
//! Sans-IO: [`Session::handle`] takes an [`Input`] and the time, and
//! returns [`Action`]s; [`Session::deadline`] says when to call it next
//! with [`Input::Tick`].

use crate::clock::Instant;
use bytes::Bytes;
use ipnet::IpNet;
use rustbgpd_wire::attribute::{AsPath, AsPathSegment, MpReachNlri, MpUnreachNlri, Origin};
use rustbgpd_wire::nlri::{Ipv4NlriEntry, Ipv4Prefix, Ipv6Prefix, NlriEntry, Prefix};
use rustbgpd_wire::notification::{cease_subcode, open_subcode};
use rustbgpd_wire::{
    Afi, Capability, Ipv4UnicastMode, Message, NotificationCode, NotificationMessage, OpenMessage,
    Safi, UpdateMessage, attribute::PathAttribute,
};
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

/// The 2-octet AS field's stand-in for a 4-octet AS (RFC 6793).
const AS_TRANS: u16 = 23456;
/// The hold timer while the peer's OPEN is awaited (RFC 4271 §8: "a large
/// value", 4 minutes suggested).
const OPEN_HOLD: Duration = Duration::from_secs(240);
/// Prefixes per UPDATE: well inside 4096 bytes for either family (an IPv6
/// host route takes 17 bytes of NLRI).
const PREFIXES_PER_UPDATE: usize = 200;

/// What the session is configured with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub local_as: u32,
    pub peer_as: u32,
    pub router_id: Ipv4Addr,
    /// The hold time proposed; the session uses the lower of it and the
    /// peer's (0: neither keepalives nor a hold timer).
    pub hold_time: u16,
    /// How long after a failed connection or a lost session the next
    /// attempt starts.
    pub connect_retry: Duration,
    /// The next hops announced for each family; the session's own local
    /// address serves its family when none is given.
    pub next_hop_ipv4: Option<Ipv4Addr>,
    pub next_hop_ipv6: Option<Ipv6Addr>,
}

/// Where the session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Waiting to connect (at `retry`).
    Idle {
        retry: Instant,
    },
    /// A connection attempt is under way.
    Connecting,
    OpenSent,
    OpenConfirm,
    Established,
    /// Stopped for good ([`Input::Stop`]).
    Stopped,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Time passed (see [`Session::deadline`]).
    Tick,
    /// The TCP connection is up, from `local`.
    Connected { local: IpAddr },
    /// The connection attempt failed.
    ConnectFailed { reason: String },
    /// The peer sent a message.
    Received(Message),
    /// The peer sent bytes that are not a message (from the framer): the
    /// NOTIFICATION it is owed.
    Malformed {
        notification: NotificationMessage,
        reason: String,
    },
    /// The connection closed (by the peer, or an error).
    Closed { reason: String },
    /// The prefixes to announce from now on.
    Announce(BTreeSet<IpNet>),
    /// Stop for good: withdraw everything, say goodbye (Cease,
    /// administrative shutdown) and close.
    Stop,
}

/// What the driver should do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Open a TCP connection to the peer.
    Connect,
    Send(Message),
    /// Close the connection (after sending what came before).
    Close,
    /// The session came up (for the log and the status).
    Up {
        peer_as: u32,
        hold_time: u16,
    },
    /// The session went down, and why.
    Down {
        reason: String,
    },
}

/// One peer's session.
#[derive(Debug)]
pub struct Session {
    settings: Settings,
    phase: Phase,
    /// The connection's local address (the next hop of its family).
    local: Option<IpAddr>,
    /// The negotiated hold time, once the peer's OPEN came.
    hold_time: u16,
    four_octet_as: bool,
    hold_deadline: Option<Instant>,
    keepalive_due: Option<Instant>,
    /// What the daemon wants announced, and what the peer was sent.
    desired: BTreeSet<IpNet>,
    advertised: BTreeSet<IpNet>,
}

impl Session {
    /// A session that connects at `now`.
    pub fn new(settings: Settings, now: Instant) -> Self {
        Self {
            settings,
            phase: Phase::Idle { retry: now },
            local: None,
            hold_time: 0,
            four_octet_as: false,
            hold_deadline: None,
            keepalive_due: None,
            desired: BTreeSet::new(),
            advertised: BTreeSet::new(),
        }
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The prefixes the peer holds from this session.
    pub fn advertised(&self) -> &BTreeSet<IpNet> {
        &self.advertised
    }

    /// When the session next needs an [`Input::Tick`].
    pub fn deadline(&self) -> Option<Instant> {
        let timers = [self.hold_deadline, self.keepalive_due]
            .into_iter()
            .flatten()
            .min();
        match self.phase {
            Phase::Idle { retry } => Some(retry),
            Phase::Stopped => None,
            _ => timers,
        }
    }

    pub fn handle(&mut self, input: Input, now: Instant) -> Vec<Action> {
        match input {
            Input::Tick => self.tick(now),
            Input::Connected { local } => self.connected(local, now),
            Input::ConnectFailed { reason } => match self.phase {
                Phase::Connecting => self.down(reason, now, Vec::new()),
                _ => Vec::new(),
            },
            Input::Received(message) => self.received(message, now),
            Input::Malformed {
                notification,
                reason,
            } => self.fail(notification, format!("malformed message: {reason}"), now),
            Input::Closed { reason } => match self.phase {
                Phase::Idle { .. } | Phase::Stopped => Vec::new(),
                _ => self.down(format!("connection closed: {reason}"), now, Vec::new()),
            },
            Input::Announce(prefixes) => {
                self.desired = prefixes;
                match self.phase {
                    Phase::Established => self.updates(),
                    _ => Vec::new(),
                }
            }
            Input::Stop => self.stop(),
        }
    }

    fn tick(&mut self, now: Instant) -> Vec<Action> {
        match self.phase {
            Phase::Idle { retry } if now >= retry => {
                self.phase = Phase::Connecting;
                return vec![Action::Connect];
            }
            Phase::Idle { .. } | Phase::Connecting | Phase::Stopped => return Vec::new(),
            _ => {}
        }
        if self.hold_deadline.is_some_and(|at| now >= at) {
            return self.fail(
                NotificationMessage::new(NotificationCode::HoldTimerExpired, 0, Bytes::new()),
                "hold timer expired".into(),
                now,
            );
        }
        match self.keepalive_due {
            Some(at) if now >= at => {
                self.keepalive_due = Some(now + self.keepalive_interval());
                vec![Action::Send(Message::Keepalive)]
            }
            _ => Vec::new(),
        }
    }

    fn connected(&mut self, local: IpAddr, now: Instant) -> Vec<Action> {
        if self.phase != Phase::Connecting {
            return vec![Action::Close];
        }
        self.local = Some(local);
        self.phase = Phase::OpenSent;
        self.hold_deadline = Some(now + OPEN_HOLD);
        vec![Action::Send(Message::Open(self.open()))]
    }

    fn open(&self) -> OpenMessage {
        let mut capabilities = vec![Capability::MultiProtocol {
            afi: Afi::Ipv4,
            safi: Safi::Unicast,
        }];
        if self.announces_ipv6() {
            capabilities.push(Capability::MultiProtocol {
                afi: Afi::Ipv6,
                safi: Safi::Unicast,
            });
        }
        capabilities.push(Capability::FourOctetAs {
            asn: self.settings.local_as,
        });
        OpenMessage {
            version: 4,
            my_as: u16::try_from(self.settings.local_as).unwrap_or(AS_TRANS),
            hold_time: self.settings.hold_time,
            bgp_identifier: self.settings.router_id,
            capabilities,
        }
    }

    /// Whether IPv6 prefixes can be announced (a next hop of the family).
    fn announces_ipv6(&self) -> bool {
        self.settings.next_hop_ipv6.is_some() || self.local.is_some_and(|a| a.is_ipv6())
    }

    fn received(&mut self, message: Message, now: Instant) -> Vec<Action> {
        match (self.phase, message) {
            (_, Message::Notification(n)) => self.down(
                format!("the peer sent a notification: {n:?}"),
                now,
                vec![Action::Close],
            ),
            (Phase::OpenSent, Message::Open(open)) => self.opened(&open, now),
            (Phase::OpenConfirm, Message::Keepalive) => {
                self.phase = Phase::Established;
                self.restart_hold(now);
                let mut actions = vec![Action::Up {
                    peer_as: self.settings.peer_as,
                    hold_time: self.hold_time,
                }];
                actions.extend(self.updates());
                actions
            }
            (Phase::Established, Message::Keepalive | Message::Update(_)) => {
                self.restart_hold(now);
                Vec::new()
            }
            (Phase::Established, Message::RouteRefresh(_)) => {
                // Everything again, as asked.
                self.advertised.clear();
                self.updates()
            }
            (phase, message) => self.fail(
                NotificationMessage::new(NotificationCode::FsmError, 0, Bytes::new()),
                format!("unexpected {:?} in {phase:?}", message.message_type()),
                now,
            ),
        }
    }

    fn opened(&mut self, open: &OpenMessage, now: Instant) -> Vec<Action> {
        let peer_as = open.four_byte_as();
        let refuse = |subcode, reason: String| {
            (
                NotificationMessage::new(NotificationCode::OpenMessage, subcode, Bytes::new()),
                reason,
            )
        };
        let refusal = if peer_as != self.settings.peer_as {
            Some(refuse(
                open_subcode::BAD_PEER_AS,
                format!(
                    "the peer's AS is {peer_as}, configured {}",
                    self.settings.peer_as
                ),
            ))
        } else if open.hold_time == 1 || open.hold_time == 2 {
            Some(refuse(
                open_subcode::UNACCEPTABLE_HOLD_TIME,
                format!("the peer's hold time {} s is under 3 s", open.hold_time),
            ))
        } else if open.bgp_identifier.is_unspecified()
            || (open.bgp_identifier == self.settings.router_id && peer_as == self.settings.local_as)
        {
            Some(refuse(
                open_subcode::BAD_BGP_IDENTIFIER,
                format!(
                    "the peer's identifier {} is not usable",
                    open.bgp_identifier
                ),
            ))
        } else {
            None
        };
        if let Some((notification, reason)) = refusal {
            return self.fail(notification, reason, now);
        }
        self.four_octet_as = open
            .capabilities
            .iter()
            .any(|c| matches!(c, Capability::FourOctetAs { .. }));
        self.hold_time = self.settings.hold_time.min(open.hold_time);
        self.phase = Phase::OpenConfirm;
        self.restart_hold(now);
        self.keepalive_due = (self.hold_time > 0).then(|| now + self.keepalive_interval());
        vec![Action::Send(Message::Keepalive)]
    }

    fn keepalive_interval(&self) -> Duration {
        Duration::from_secs(u64::from(self.hold_time)) / 3
    }

    fn restart_hold(&mut self, now: Instant) {
        self.hold_deadline =
            (self.hold_time > 0).then(|| now + Duration::from_secs(u64::from(self.hold_time)));
    }

    /// The UPDATEs that take the peer from `advertised` to `desired`.
    fn updates(&mut self) -> Vec<Action> {
        let announce: Vec<IpNet> = self
            .desired
            .iter()
            .filter(|p| !self.advertised.contains(p) && self.next_hop(p).is_some())
            .copied()
            .collect();
        let withdraw: Vec<IpNet> = self
            .advertised
            .iter()
            .filter(|p| !self.desired.contains(p) || self.next_hop(p).is_none())
            .copied()
            .collect();
        let mut actions = Vec::new();
        for family in [Afi::Ipv4, Afi::Ipv6] {
            let of = |prefixes: &[IpNet]| -> Vec<IpNet> {
                prefixes
                    .iter()
                    .filter(|p| family_of(p) == family)
                    .copied()
                    .collect()
            };
            for chunk in of(&withdraw).chunks(PREFIXES_PER_UPDATE) {
                actions.push(Action::Send(Message::Update(
                    self.withdrawal(family, chunk),
                )));
            }
            for chunk in of(&announce).chunks(PREFIXES_PER_UPDATE) {
                actions.push(Action::Send(Message::Update(
                    self.announcement(family, chunk),
                )));
            }
        }
        for p in &withdraw {
            self.advertised.remove(p);
        }
        self.advertised.extend(announce);
        actions
    }

    fn next_hop(&self, prefix: &IpNet) -> Option<IpAddr> {
        match (prefix, self.local) {
            (IpNet::V4(_), _) if self.settings.next_hop_ipv4.is_some() => {
                self.settings.next_hop_ipv4.map(IpAddr::V4)
            }
            (IpNet::V6(_), _) if self.settings.next_hop_ipv6.is_some() => {
                self.settings.next_hop_ipv6.map(IpAddr::V6)
            }
            (IpNet::V4(_), Some(local @ IpAddr::V4(_)))
            | (IpNet::V6(_), Some(local @ IpAddr::V6(_))) => Some(local),
            _ => None,
        }
    }

    fn path(&self) -> Vec<PathAttribute> {
        let ibgp = self.settings.peer_as == self.settings.local_as;
        let mut path = vec![
            PathAttribute::Origin(Origin::Igp),
            PathAttribute::AsPath(AsPath {
                segments: if ibgp {
                    Vec::new()
                } else {
                    vec![AsPathSegment::AsSequence(vec![self.settings.local_as])]
                },
            }),
        ];
        if ibgp {
            path.push(PathAttribute::LocalPref(100));
        }
        path
    }

    fn announcement(&self, family: Afi, prefixes: &[IpNet]) -> UpdateMessage {
        let mut path = self.path();
        let next_hop = prefixes.first().and_then(|p| self.next_hop(p));
        match (family, next_hop) {
            (Afi::Ipv4, Some(IpAddr::V4(next_hop))) => {
                path.push(PathAttribute::NextHop(next_hop));
                UpdateMessage::build(
                    &ipv4_entries(prefixes),
                    &[],
                    &path,
                    self.four_octet_as,
                    false,
                    Ipv4UnicastMode::Body,
                )
            }
            (_, next_hop) => {
                path.push(PathAttribute::MpReachNlri(Box::new(MpReachNlri {
                    afi: family,
                    safi: Safi::Unicast,
                    next_hop: next_hop.unwrap_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
                    link_local_next_hop: None,
                    announced: entries(prefixes),
                    flowspec_announced: Vec::new(),
                    evpn_announced: Vec::new(),
                    bgpls_announced: Vec::new(),
                    vpn_announced: Vec::new(),
                    labeled_announced: Vec::new(),
                    rtc_announced: Vec::new(),
                })));
                UpdateMessage::build(
                    &[],
                    &[],
                    &path,
                    self.four_octet_as,
                    false,
                    Ipv4UnicastMode::MpReach,
                )
            }
        }
    }

    fn withdrawal(&self, family: Afi, prefixes: &[IpNet]) -> UpdateMessage {
        match family {
            Afi::Ipv4 => UpdateMessage::build(
                &[],
                &ipv4_entries(prefixes),
                &[],
                self.four_octet_as,
                false,
                Ipv4UnicastMode::Body,
            ),
            _ => UpdateMessage::build(
                &[],
                &[],
                &[PathAttribute::MpUnreachNlri(Box::new(MpUnreachNlri {
                    afi: family,
                    safi: Safi::Unicast,
                    withdrawn: entries(prefixes),
                    flowspec_withdrawn: Vec::new(),
                    evpn_withdrawn: Vec::new(),
                    bgpls_withdrawn: Vec::new(),
                    vpn_withdrawn: Vec::new(),
                    labeled_withdrawn: Vec::new(),
                    rtc_withdrawn: Vec::new(),
                }))],
                self.four_octet_as,
                false,
                Ipv4UnicastMode::MpReach,
            ),
        }
    }

    /// Sends `notification`, closes, and goes down for `reason`.
    fn fail(
        &mut self,
        notification: NotificationMessage,
        reason: String,
        now: Instant,
    ) -> Vec<Action> {
        match self.phase {
            Phase::Idle { .. } | Phase::Stopped | Phase::Connecting => Vec::new(),
            _ => self.down(
                reason,
                now,
                vec![
                    Action::Send(Message::Notification(notification)),
                    Action::Close,
                ],
            ),
        }
    }

    /// The session is over: `actions` end it, the peer forgets what it
    /// was sent, and the next attempt waits `connect_retry`.
    fn down(&mut self, reason: String, now: Instant, mut actions: Vec<Action>) -> Vec<Action> {
        let was_up = self.phase != Phase::Connecting;
        self.phase = Phase::Idle {
            retry: now + self.settings.connect_retry,
        };
        self.forget();
        if was_up {
            actions.push(Action::Down { reason });
        }
        actions
    }

    fn forget(&mut self) {
        self.local = None;
        self.hold_deadline = None;
        self.keepalive_due = None;
        self.advertised.clear();
    }

    fn stop(&mut self) -> Vec<Action> {
        let mut actions = Vec::new();
        match self.phase {
            Phase::Stopped => return actions,
            Phase::Idle { .. } => {}
            Phase::Connecting => actions.push(Action::Close),
            phase => {
                if phase == Phase::Established {
                    // The withdrawals first: a peer that takes the
                    // NOTIFICATION alone drops them all the same, but one
                    // reading the UPDATEs moves traffic before the close.
                    self.desired.clear();
                    actions.extend(self.updates());
                }
                actions.push(Action::Send(Message::Notification(
                    NotificationMessage::new(
                        NotificationCode::Cease,
                        cease_subcode::ADMINISTRATIVE_SHUTDOWN,
                        Bytes::new(),
                    ),
                )));
                actions.push(Action::Close);
                actions.push(Action::Down {
                    reason: "stopped".into(),
                });
            }
        }
        self.phase = Phase::Stopped;
        self.forget();
        actions
    }
}

fn family_of(prefix: &IpNet) -> Afi {
    match prefix {
        IpNet::V4(_) => Afi::Ipv4,
        IpNet::V6(_) => Afi::Ipv6,
    }
}

fn ipv4_entries(prefixes: &[IpNet]) -> Vec<Ipv4NlriEntry> {
    prefixes
        .iter()
        .filter_map(|p| match p {
            IpNet::V4(p) => Some(Ipv4NlriEntry {
                path_id: 0,
                prefix: Ipv4Prefix::new(p.network(), p.prefix_len()),
            }),
            IpNet::V6(_) => None,
        })
        .collect()
}

fn entries(prefixes: &[IpNet]) -> Vec<NlriEntry> {
    prefixes
        .iter()
        .map(|p| NlriEntry {
            path_id: 0,
            prefix: match p {
                IpNet::V4(p) => Prefix::V4(Ipv4Prefix::new(p.network(), p.prefix_len())),
                IpNet::V6(p) => Prefix::V6(Ipv6Prefix::new(p.network(), p.prefix_len())),
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustbgpd_wire::encode_message;

    const LOCAL: &str = "192.0.2.1";

    fn settings() -> Settings {
        Settings {
            local_as: 65001,
            peer_as: 65000,
            router_id: "192.0.2.1".parse().unwrap(),
            hold_time: 9,
            connect_retry: Duration::from_secs(5),
            next_hop_ipv4: None,
            next_hop_ipv6: None,
        }
    }

    fn at(secs: u64) -> Instant {
        Instant::from_duration(Duration::from_secs(secs))
    }

    fn prefixes(list: &[&str]) -> BTreeSet<IpNet> {
        list.iter().map(|p| p.parse().unwrap()).collect()
    }

    fn peer_open(asn: u32, hold_time: u16) -> Message {
        Message::Open(OpenMessage {
            version: 4,
            my_as: u16::try_from(asn).unwrap_or(AS_TRANS),
            hold_time,
            bgp_identifier: "192.0.2.254".parse().unwrap(),
            capabilities: vec![Capability::FourOctetAs { asn }],
        })
    }

    /// A session taken to Established at second 0, `announced` wanted
    /// before; returns it and the actions of the last step.
    fn established(settings: Settings, announced: &[&str]) -> (Session, Vec<Action>) {
        let peer_as = settings.peer_as;
        let mut session = Session::new(settings, at(0));
        session.handle(Input::Announce(prefixes(announced)), at(0));
        assert_eq!(session.handle(Input::Tick, at(0)), vec![Action::Connect]);
        let sent = session.handle(
            Input::Connected {
                local: LOCAL.parse().unwrap(),
            },
            at(0),
        );
        assert!(
            matches!(sent[..], [Action::Send(Message::Open(_))]),
            "{sent:?}"
        );
        let sent = session.handle(Input::Received(peer_open(peer_as, 30)), at(0));
        assert_eq!(sent, vec![Action::Send(Message::Keepalive)]);
        let actions = session.handle(Input::Received(Message::Keepalive), at(0));
        assert_eq!(session.phase(), Phase::Established);
        (session, actions)
    }

    /// What the UPDATEs among `actions` announce and withdraw, with the
    /// next hop and AS path of the announcements; each checked to encode
    /// within 4096 bytes.
    #[derive(Debug, Default, PartialEq)]
    struct Sent {
        announced: BTreeSet<IpNet>,
        withdrawn: BTreeSet<IpNet>,
        next_hops: BTreeSet<IpAddr>,
        as_paths: BTreeSet<Vec<u32>>,
    }

    fn sent(actions: &[Action]) -> Sent {
        let mut out = Sent::default();
        let net = |p: &Prefix| -> IpNet {
            match p {
                Prefix::V4(p) => format!("{}/{}", p.addr, p.len).parse().unwrap(),
                Prefix::V6(p) => format!("{}/{}", p.addr, p.len).parse().unwrap(),
            }
        };
        for action in actions {
            let Action::Send(Message::Update(update)) = action else {
                continue;
            };
            let bytes = encode_message(&Message::Update(update.clone())).unwrap();
            assert!(bytes.len() <= 4096, "{} bytes", bytes.len());
            let parsed = update.parse(true, false, &[]).unwrap();
            out.announced
                .extend(parsed.announced.iter().map(|e| net(&Prefix::V4(e.prefix))));
            out.withdrawn
                .extend(parsed.withdrawn.iter().map(|e| net(&Prefix::V4(e.prefix))));
            for attribute in &parsed.attributes {
                match attribute {
                    PathAttribute::NextHop(hop) => {
                        out.next_hops.insert(IpAddr::V4(*hop));
                    }
                    PathAttribute::AsPath(path) => {
                        out.as_paths.insert(
                            path.segments
                                .iter()
                                .flat_map(|s| match s {
                                    AsPathSegment::AsSequence(v) | AsPathSegment::AsSet(v) => {
                                        v.clone()
                                    }
                                })
                                .collect(),
                        );
                    }
                    PathAttribute::MpReachNlri(reach) => {
                        out.next_hops.insert(reach.next_hop);
                        out.announced
                            .extend(reach.announced.iter().map(|e| net(&e.prefix)));
                    }
                    PathAttribute::MpUnreachNlri(unreach) => {
                        out.withdrawn
                            .extend(unreach.withdrawn.iter().map(|e| net(&e.prefix)));
                    }
                    _ => {}
                }
            }
        }
        out
    }

    #[test]
    fn the_open_offers_both_families_and_the_four_octet_as() {
        let mut session = Session::new(
            Settings {
                local_as: 4_200_000_001,
                next_hop_ipv6: Some("2001:db8::1".parse().unwrap()),
                ..settings()
            },
            at(0),
        );
        session.handle(Input::Tick, at(0));
        let sent = session.handle(
            Input::Connected {
                local: LOCAL.parse().unwrap(),
            },
            at(0),
        );
        let [Action::Send(Message::Open(open))] = &sent[..] else {
            panic!("{sent:?}");
        };
        assert_eq!(open.my_as, AS_TRANS);
        assert_eq!(open.four_byte_as(), 4_200_000_001);
        assert_eq!(open.hold_time, 9);
        assert!(open.capabilities.contains(&Capability::MultiProtocol {
            afi: Afi::Ipv6,
            safi: Safi::Unicast
        }));
        assert_eq!(session.phase(), Phase::OpenSent);
    }

    #[test]
    fn once_established_it_announces_what_was_wanted_with_its_address_as_next_hop() {
        let (session, actions) = established(settings(), &["10.0.0.100/32", "10.0.0.101/32"]);
        assert_eq!(
            actions[0],
            Action::Up {
                peer_as: 65000,
                hold_time: 9
            }
        );
        assert_eq!(
            sent(&actions),
            Sent {
                announced: prefixes(&["10.0.0.100/32", "10.0.0.101/32"]),
                next_hops: [LOCAL.parse().unwrap()].into(),
                as_paths: [vec![65001]].into(),
                ..Sent::default()
            }
        );
        assert_eq!(
            session.advertised(),
            &prefixes(&["10.0.0.100/32", "10.0.0.101/32"])
        );
    }

    #[test]
    fn a_change_sends_only_the_difference() {
        let (mut session, _) = established(settings(), &["10.0.0.100/32", "10.0.0.101/32"]);
        let actions = session.handle(
            Input::Announce(prefixes(&["10.0.0.101/32", "10.0.0.102/32"])),
            at(1),
        );
        let got = sent(&actions);
        assert_eq!(got.announced, prefixes(&["10.0.0.102/32"]));
        assert_eq!(got.withdrawn, prefixes(&["10.0.0.100/32"]));
        assert_eq!(
            session.handle(
                Input::Announce(prefixes(&["10.0.0.101/32", "10.0.0.102/32"])),
                at(2)
            ),
            vec![]
        );
    }

    #[test]
    fn ipv6_prefixes_go_in_mp_reach_and_need_a_next_hop_of_their_family() {
        let (_, actions) = established(settings(), &["10.0.0.100/32", "2001:db8::100/128"]);
        assert_eq!(sent(&actions).announced, prefixes(&["10.0.0.100/32"]));
        let (mut session, actions) = established(
            Settings {
                next_hop_ipv6: Some("2001:db8::1".parse().unwrap()),
                ..settings()
            },
            &["10.0.0.100/32", "2001:db8::100/128"],
        );
        let got = sent(&actions);
        assert_eq!(
            got.announced,
            prefixes(&["10.0.0.100/32", "2001:db8::100/128"])
        );
        assert!(got.next_hops.contains(&"2001:db8::1".parse().unwrap()));
        let actions = session.handle(Input::Announce(prefixes(&["10.0.0.100/32"])), at(1));
        assert_eq!(sent(&actions).withdrawn, prefixes(&["2001:db8::100/128"]));
    }

    #[test]
    fn an_ibgp_peer_gets_an_empty_as_path_and_a_local_preference() {
        let (mut session, actions) = established(
            Settings {
                peer_as: 65001,
                ..settings()
            },
            &[],
        );
        assert_eq!(actions.len(), 1, "{actions:?}");
        let actions = session.handle(Input::Announce(prefixes(&["10.0.0.100/32"])), at(1));
        let [Action::Send(Message::Update(update))] = &actions[..] else {
            panic!("{actions:?}");
        };
        let parsed = update.parse(true, false, &[]).unwrap();
        assert!(parsed.attributes.contains(&PathAttribute::LocalPref(100)));
        assert_eq!(sent(&actions).as_paths, [vec![]].into());
    }

    #[test]
    fn thousands_of_prefixes_go_in_updates_that_fit_the_message_size() {
        let many: Vec<String> = (0..2000u32)
            .map(|i| format!("10.{}.{}.1/32", i / 250, i % 250))
            .collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let (_, actions) = established(settings(), &many);
        assert_eq!(sent(&actions).announced.len(), 2000);
        assert_eq!(actions.len(), 1 + 2000 / PREFIXES_PER_UPDATE);
    }

    #[test]
    fn keepalives_go_every_third_of_the_hold_time_and_the_hold_timer_ends_a_silent_session() {
        let (mut session, _) = established(settings(), &["10.0.0.100/32"]);
        assert_eq!(session.deadline(), Some(at(3)));
        assert_eq!(
            session.handle(Input::Tick, at(3)),
            vec![Action::Send(Message::Keepalive)]
        );
        // The peer's keepalive at 5 restarts the hold timer: 14.
        session.handle(Input::Received(Message::Keepalive), at(5));
        assert_eq!(
            session.handle(Input::Tick, at(6)),
            vec![Action::Send(Message::Keepalive)]
        );
        session.handle(Input::Tick, at(9));
        session.handle(Input::Tick, at(12));
        let actions = session.handle(Input::Tick, at(14));
        assert_eq!(
            actions,
            vec![
                Action::Send(Message::Notification(NotificationMessage::new(
                    NotificationCode::HoldTimerExpired,
                    0,
                    Bytes::new()
                ))),
                Action::Close,
                Action::Down {
                    reason: "hold timer expired".into()
                }
            ]
        );
        assert_eq!(session.phase(), Phase::Idle { retry: at(19) });
        assert!(session.advertised().is_empty());
    }

    #[test]
    fn a_lost_session_reconnects_after_connect_retry_and_announces_everything_again() {
        let (mut session, _) = established(settings(), &["10.0.0.100/32"]);
        let actions = session.handle(
            Input::Closed {
                reason: "reset".into(),
            },
            at(1),
        );
        assert_eq!(
            actions,
            vec![Action::Down {
                reason: "connection closed: reset".into()
            }]
        );
        assert_eq!(session.handle(Input::Tick, at(5)), vec![]);
        assert_eq!(session.handle(Input::Tick, at(6)), vec![Action::Connect]);
        assert_eq!(
            session.handle(
                Input::ConnectFailed {
                    reason: "refused".into()
                },
                at(6)
            ),
            vec![]
        );
        assert_eq!(session.deadline(), Some(at(11)));
        session.handle(Input::Tick, at(11));
        session.handle(
            Input::Connected {
                local: LOCAL.parse().unwrap(),
            },
            at(11),
        );
        session.handle(Input::Received(peer_open(65000, 90)), at(11));
        let actions = session.handle(Input::Received(Message::Keepalive), at(11));
        assert_eq!(sent(&actions).announced, prefixes(&["10.0.0.100/32"]));
    }

    #[test]
    fn a_wrong_peer_as_is_refused_with_bad_peer_as() {
        let mut session = Session::new(settings(), at(0));
        session.handle(Input::Tick, at(0));
        session.handle(
            Input::Connected {
                local: LOCAL.parse().unwrap(),
            },
            at(0),
        );
        let actions = session.handle(Input::Received(peer_open(65099, 90)), at(0));
        let [
            Action::Send(Message::Notification(n)),
            Action::Close,
            Action::Down { reason },
        ] = &actions[..]
        else {
            panic!("{actions:?}");
        };
        assert_eq!(
            (n.code, n.subcode),
            (NotificationCode::OpenMessage, open_subcode::BAD_PEER_AS)
        );
        assert!(reason.contains("65099"), "{reason}");
        assert_eq!(session.phase(), Phase::Idle { retry: at(5) });
    }

    #[test]
    fn a_hold_time_of_one_or_two_seconds_is_refused() {
        let mut session = Session::new(settings(), at(0));
        session.handle(Input::Tick, at(0));
        session.handle(
            Input::Connected {
                local: LOCAL.parse().unwrap(),
            },
            at(0),
        );
        let actions = session.handle(Input::Received(peer_open(65000, 2)), at(0));
        assert!(matches!(
            &actions[0],
            Action::Send(Message::Notification(n))
                if n.subcode == open_subcode::UNACCEPTABLE_HOLD_TIME
        ));
    }

    #[test]
    fn a_message_out_of_turn_is_a_state_machine_error() {
        let mut session = Session::new(settings(), at(0));
        session.handle(Input::Tick, at(0));
        session.handle(
            Input::Connected {
                local: LOCAL.parse().unwrap(),
            },
            at(0),
        );
        let actions = session.handle(Input::Received(Message::Keepalive), at(0));
        assert!(matches!(
            &actions[0],
            Action::Send(Message::Notification(n)) if n.code == NotificationCode::FsmError
        ));
        assert!(matches!(session.phase(), Phase::Idle { .. }));
    }

    #[test]
    fn a_notification_from_the_peer_ends_the_session_without_an_answer() {
        let (mut session, _) = established(settings(), &["10.0.0.100/32"]);
        let actions = session.handle(
            Input::Received(Message::Notification(NotificationMessage::new(
                NotificationCode::Cease,
                cease_subcode::ADMINISTRATIVE_RESET,
                Bytes::new(),
            ))),
            at(1),
        );
        assert!(
            matches!(actions[..], [Action::Close, Action::Down { .. }]),
            "{actions:?}"
        );
    }

    #[test]
    fn stop_withdraws_everything_says_cease_and_never_reconnects() {
        let (mut session, _) = established(settings(), &["10.0.0.100/32", "10.0.0.101/32"]);
        let actions = session.handle(Input::Stop, at(1));
        assert_eq!(
            sent(&actions).withdrawn,
            prefixes(&["10.0.0.100/32", "10.0.0.101/32"])
        );
        assert!(actions.contains(&Action::Send(Message::Notification(
            NotificationMessage::new(
                NotificationCode::Cease,
                cease_subcode::ADMINISTRATIVE_SHUTDOWN,
                Bytes::new()
            )
        ))));
        assert_eq!(
            &actions[actions.len() - 2..],
            &[
                Action::Close,
                Action::Down {
                    reason: "stopped".into()
                }
            ]
        );
        assert_eq!(session.phase(), Phase::Stopped);
        assert_eq!(session.deadline(), None);
        assert_eq!(session.handle(Input::Tick, at(100)), vec![]);
        assert_eq!(
            session.handle(Input::Announce(prefixes(&["10.0.0.100/32"])), at(100)),
            vec![]
        );
    }

    #[test]
    fn frr_s_own_stream_establishes_the_session() {
        // What FRR 8.4's bgpd sent a peer (captured): its OPEN (hold 9 s,
        // AS 65000, many capabilities), KEEPALIVE, UPDATEs of IPv4 and
        // IPv6 (a link-local next hop too), KEEPALIVEs.
        let stream = include_bytes!("../../../../fuzz/seeds/bgp_stream/frr-8.4-whole");
        let received = crate::bgp::frame::Framer::new().push(&stream[1..]);
        let kinds: Vec<_> = received
            .iter()
            .map(|r| match r {
                crate::bgp::frame::Received::Message(m) => m.message_type(),
                other => panic!("{other:?}"),
            })
            .collect();
        use rustbgpd_wire::MessageType::{Keepalive, Open, Update};
        assert_eq!(
            kinds,
            [Open, Keepalive, Update, Update, Keepalive, Keepalive]
        );
        let mut session = Session::new(settings(), at(0));
        session.handle(Input::Announce(prefixes(&["10.0.0.100/32"])), at(0));
        session.handle(Input::Tick, at(0));
        session.handle(
            Input::Connected {
                local: LOCAL.parse().unwrap(),
            },
            at(0),
        );
        let mut actions = Vec::new();
        for r in received {
            let crate::bgp::frame::Received::Message(m) = r else {
                unreachable!()
            };
            actions.extend(session.handle(Input::Received(m), at(1)));
        }
        assert_eq!(session.phase(), Phase::Established);
        assert!(actions.contains(&Action::Up {
            peer_as: 65000,
            hold_time: 9
        }));
        assert_eq!(sent(&actions).announced, prefixes(&["10.0.0.100/32"]));
    }

    #[test]
    fn a_route_refresh_sends_everything_again() {
        let (mut session, _) = established(settings(), &["10.0.0.100/32"]);
        let actions = session.handle(
            Input::Received(Message::RouteRefresh(
                rustbgpd_wire::RouteRefreshMessage::new(Afi::Ipv4, Safi::Unicast),
            )),
            at(1),
        );
        assert_eq!(sent(&actions).announced, prefixes(&["10.0.0.100/32"]));
    }
}
