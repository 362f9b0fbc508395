//! The IPVS backend: the kernel's "IPVS" generic netlink family, spoken
//! directly (no ipvsadm): services and destinations (list, add, edit,
//! delete), timeouts, and the connection sync daemon.
//!
//! - [`nla`]: the attributes and [`message::IpvsMessage`], from the
//!   `netlink-packet-ipvs` crate; [`message`]: the requests built from the
//!   model; [`listing`]: what the kernel answers, and `ipvsadm -Ln`'s
//!   layout;
//! - this module: [`Ipvs`], a blocking netlink client in the calling
//!   thread's network namespace, and its [`Backend`] implementation.

pub mod listing;
pub mod message;

pub use netlink_packet_ipvs::nla;

use crate::dataplane::netlink;
use crate::dataplane::{Backend, Op, ServiceKey, Snapshot};
use listing::{DaemonEntry, Listing, ServiceEntry};
use message::{Command, IpvsMessage};
use netlink_packet_core::{NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload};
use netlink_packet_generic::GenlMessage;
use netlink_packet_generic::ctrl::nlas::GenlCtrlAttrs;
use netlink_packet_generic::ctrl::{GenlCtrl, GenlCtrlCmd};
use netlink_sys::Socket;
use netlink_sys::protocols::NETLINK_GENERIC;
use nla::{CmdAttr, DaemonAttr, InfoAttr};
use serde::Serialize;
use std::collections::VecDeque;
use std::io;

/// Bytes of requests sent in one datagram at most. The kernel carries out
/// a datagram's messages in order and answers only those that ask for an
/// acknowledgement, or fail; only each datagram's last message asks, so a
/// table costs a system call per datagram rather than two per operation.
const BATCH_BYTES: usize = 32 * 1024;
/// Operations in one datagram at most: if every one failed, the errors of
/// [`BATCHES_IN_FLIGHT`] datagrams (each quoting its request) must still
/// fit the socket's receive buffer.
const BATCH_OPS: usize = 256;
/// Datagrams sent and not yet acknowledged at most: one being carried out
/// while the next waits, so the kernel never waits for us.
const BATCHES_IN_FLIGHT: usize = 2;

/// The requests of one [`Ipvs::pipeline`]: how many were sent, how many
/// are known done, and the first that failed. Sequence numbers count up
/// from `first`, one per operation.
struct Window {
    len: usize,
    first: u32,
    sent: usize,
    /// The last operation of each datagram in flight, oldest first: its
    /// acknowledgement says the datagram's operations are all done.
    ends: VecDeque<usize>,
    answered: usize,
    failed: Option<(usize, i32)>,
}

impl Window {
    fn new(len: usize, first: u32) -> Self {
        Self {
            len,
            first,
            sent: 0,
            ends: VecDeque::new(),
            answered: 0,
            failed: None,
        }
    }

    /// The first operation of the next datagram, if one may go now: none
    /// once one has failed, nor while [`BATCHES_IN_FLIGHT`] are unanswered.
    fn next_to_send(&self) -> Option<usize> {
        (self.sent < self.len && self.ends.len() < BATCHES_IN_FLIGHT && self.failed.is_none())
            .then_some(self.sent)
    }

    /// A datagram went with the operations up to `last`.
    fn sent(&mut self, last: usize) {
        self.sent = last + 1;
        self.ends.push_back(last);
    }

    /// The first operation not known done yet.
    fn pending(&self) -> usize {
        self.answered
    }

    /// The kernel's answer to `sequence`: an acknowledgement, or `errno`.
    /// Answers to nothing this window sent are ignored.
    fn answered(&mut self, sequence: u32, errno: Option<i32>) {
        let index = sequence.wrapping_sub(self.first) as usize;
        if index >= self.sent {
            return;
        }
        if let Some(errno) = errno
            && self.failed.is_none_or(|(first, _)| index < first)
        {
            self.failed = Some((index, errno));
        }
        if let Some(at) = self.ends.iter().position(|end| *end == index) {
            self.ends.drain(..=at);
            self.answered = index + 1;
        }
    }

    /// Every datagram sent is answered, and nothing more will be sent.
    fn done(&self) -> bool {
        self.ends.is_empty() && self.next_to_send().is_none()
    }

    /// The first failure: its operation's index and errno.
    fn outcome(&self) -> Result<(), (usize, i32)> {
        self.failed.map_or(Ok(()), Err)
    }
}

/// Where a netlink header holds its flags (after the length and type).
const FLAGS_OFFSET: usize = 6;

/// The request that carries out `op`.
fn operation(op: &Op) -> IpvsMessage {
    match op {
        Op::AddService(s) => message::set_service(Command::NewService, s),
        Op::EditService(s) => message::set_service(Command::SetService, s),
        Op::DeleteService(k) => message::del_service(k),
        Op::AddDestination {
            service,
            destination,
        } => message::set_dest(Command::NewDest, service, destination),
        Op::EditDestination {
            service,
            destination,
        } => message::set_dest(Command::SetDest, service, destination),
        Op::DeleteDestination { service, address } => message::del_dest(service, *address),
    }
}

/// An IPVS failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "the kernel has no IPVS (generic netlink family \"IPVS\" not found: load the ip_vs module)"
    )]
    NotAvailable,
    #[error("netlink socket: {0}")]
    Socket(io::Error),
    #[error("{what}: the kernel refused: {source}")]
    Kernel { what: String, source: io::Error },
    #[error("{what}: undecodable answer: {reason}")]
    Decode { what: String, reason: String },
    /// One of a batch of operations, which the caller names.
    #[error("the kernel refused: {source}{}", hint.as_ref().map(|h| format!(" ({h})")).unwrap_or_default())]
    Refused {
        source: io::Error,
        hint: Option<String>,
    },
}

/// What an operation's refusal most likely means, where the errno alone
/// misleads: IPVS answers ENOENT to a service whose scheduler it cannot
/// load (no module `ip_vs_<name>` in this kernel).
fn refusal_hint(op: &Op, errno: i32) -> Option<String> {
    match op {
        Op::AddService(s) | Op::EditService(s) if errno == libc::ENOENT => {
            let name = s.scheduler.name();
            Some(format!(
                "the kernel has no scheduler '{name}': module ip_vs_{name} is missing"
            ))
        }
        _ => None,
    }
}

/// Sync daemon role (`IP_VS_STATE_MASTER` / `IP_VS_STATE_BACKUP`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncRole {
    /// Sends this director's connections.
    Master,
    /// Receives the master's connections.
    Backup,
}

impl SyncRole {
    fn state(self) -> u32 {
        match self {
            Self::Master => 1,
            Self::Backup => 2,
        }
    }
}

/// A connection sync daemon, keepalived's `lvs_sync_daemon INTERFACE
/// INSTANCE [id SYNCID] [maxlen LEN] [port PORT] [ttl TTL] [group ADDR]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncDaemon {
    pub role: SyncRole,
    /// Interface the sync messages go out of or come in on.
    pub interface: String,
    /// Sync id (0..=255): master and backup must agree; keepalived
    /// defaults it to the VRRP instance's virtual router id.
    pub sync_id: u8,
    /// Largest sync message payload; the kernel's default when `None`.
    pub max_len: Option<u16>,
    /// Multicast group; the kernel's (224.0.0.81) when `None`.
    pub group: Option<std::net::IpAddr>,
    /// UDP port; the kernel's (8848) when `None`.
    pub port: Option<u16>,
    /// Multicast TTL; the kernel's (1) when `None`.
    pub ttl: Option<u8>,
}

/// IPVS connection timeouts in seconds; `None` leaves one unchanged when
/// setting (0 in the kernel also means "unchanged").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Timeouts {
    pub tcp: Option<u32>,
    pub tcp_fin: Option<u32>,
    pub udp: Option<u32>,
}

/// A blocking client of the kernel's IPVS family.
pub struct Ipvs {
    socket: Socket,
    family_id: u16,
    sequence: u32,
}

impl Ipvs {
    /// Opens a netlink socket and looks up the IPVS family.
    pub fn open() -> Result<Self, Error> {
        let socket =
            netlink::open(NETLINK_GENERIC, netlink::ANSWER_TIMEOUT).map_err(Error::Socket)?;
        let mut ipvs = Self {
            socket,
            family_id: 0,
            sequence: 0,
        };
        ipvs.family_id = ipvs.resolve_family()?;
        Ok(ipvs)
    }

    fn resolve_family(&mut self) -> Result<u16, Error> {
        let genl = GenlMessage::from_payload(GenlCtrl {
            cmd: GenlCtrlCmd::GetFamily,
            nlas: vec![GenlCtrlAttrs::FamilyName(
                netlink_packet_ipvs::FAMILY_NAME.to_owned(),
            )],
        });
        let answers = match self.exchange(genl, NLM_F_REQUEST | NLM_F_ACK, "family lookup") {
            Err(Error::Kernel { source, .. }) if source.raw_os_error() == Some(libc::ENOENT) => {
                return Err(Error::NotAvailable);
            }
            other => other?,
        };
        answers
            .iter()
            .flat_map(|g: &GenlMessage<GenlCtrl>| &g.payload.nlas)
            .find_map(|nla| match nla {
                GenlCtrlAttrs::FamilyId(id) => Some(*id),
                _ => None,
            })
            .ok_or(Error::NotAvailable)
    }

    /// Sends `payload` and collects the answers up to the end of a dump or
    /// the acknowledgement.
    fn exchange<F>(
        &mut self,
        mut payload: GenlMessage<F>,
        flags: u16,
        what: &str,
    ) -> Result<Vec<GenlMessage<F>>, Error>
    where
        F: netlink_packet_generic::GenlFamily
            + netlink_packet_core::Emitable
            + netlink_packet_core::ParseableParametrized<[u8], netlink_packet_generic::GenlHeader>
            + std::fmt::Debug,
    {
        self.sequence = self.sequence.wrapping_add(1);
        payload.set_resolved_family_id(self.family_id);
        let mut request = NetlinkMessage::from(payload);
        request.header.flags = flags;
        request.header.sequence_number = self.sequence;
        request.finalize();
        let mut buf = vec![0; request.buffer_len()];
        request.serialize(&mut buf);
        self.socket.send(&buf, 0).map_err(Error::Socket)?;

        let decode = |reason: String| Error::Decode {
            what: what.to_string(),
            reason,
        };
        let mut answers = Vec::new();
        loop {
            let data = netlink::receive(&mut self.socket, netlink::ANSWER_TIMEOUT)
                .map_err(Error::Socket)?;
            for one in crate::dataplane::netlink::messages(&data) {
                let one = one.map_err(decode)?;
                let message = NetlinkMessage::<GenlMessage<F>>::deserialize(one)
                    .map_err(|e| decode(e.to_string()))?;
                if message.header.sequence_number != self.sequence {
                    continue;
                }
                match message.payload {
                    NetlinkPayload::InnerMessage(m) => answers.push(m),
                    NetlinkPayload::Done(_) => return Ok(answers),
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            None => Ok(answers),
                            Some(code) => Err(Error::Kernel {
                                what: what.to_string(),
                                source: io::Error::from_raw_os_error(-code.get()),
                            }),
                        };
                    }
                    _ => {}
                }
            }
        }
    }

    /// Carries out `ops` in order, [`BATCH_OPS`] to a datagram and
    /// [`BATCHES_IN_FLIGHT`] datagrams in flight: the kernel handles one
    /// socket's requests in the order sent, so sending the next before the
    /// last is acknowledged changes nothing but the round trips. On a failure, the index of the first operation
    /// that failed (those after it that were already sent stay applied;
    /// the next reconcile reads them back).
    fn pipeline(&mut self, ops: &[Op]) -> Result<(), (usize, Error)> {
        let mut window = Window::new(ops.len(), self.sequence.wrapping_add(1));
        self.send_ready(ops, &mut window)?;
        while !window.done() {
            self.read_answers(ops, &mut window)?;
            self.send_ready(ops, &mut window)?;
        }
        window.outcome().map_err(|(index, errno)| {
            (
                index,
                Error::Refused {
                    source: io::Error::from_raw_os_error(errno),
                    hint: ops.get(index).and_then(|op| refusal_hint(op, errno)),
                },
            )
        })
    }

    /// Sends the datagrams the window lets go now.
    fn send_ready(&mut self, ops: &[Op], window: &mut Window) -> Result<(), (usize, Error)> {
        let mut datagram = Vec::with_capacity(BATCH_BYTES);
        while let Some(first) = window.next_to_send() {
            datagram.clear();
            let mut last = None;
            for (index, op) in ops.iter().enumerate().skip(first).take(BATCH_OPS) {
                let mut genl = GenlMessage::from_payload(operation(op));
                genl.set_resolved_family_id(self.family_id);
                let mut request = NetlinkMessage::from(genl);
                request.header.flags = NLM_F_REQUEST;
                request.header.sequence_number = window.first.wrapping_add(index as u32);
                request.finalize();
                let len = request.buffer_len();
                if last.is_some() && datagram.len() + len > BATCH_BYTES {
                    break;
                }
                let start = datagram.len();
                datagram.resize(start + len, 0);
                request.serialize(&mut datagram[start..]);
                datagram.resize(datagram.len().next_multiple_of(4), 0);
                last = Some((index, start));
            }
            let Some((last, start)) = last else {
                break;
            };
            // The datagram's last request asks to be acknowledged.
            let flags = NLM_F_REQUEST | NLM_F_ACK;
            datagram[start + FLAGS_OFFSET..start + FLAGS_OFFSET + 2]
                .copy_from_slice(&flags.to_ne_bytes());
            self.socket
                .send(&datagram, 0)
                .map_err(|e| (first, Error::Socket(e)))?;
            self.sequence = window.first.wrapping_add(last as u32);
            window.sent(last);
        }
        Ok(())
    }

    /// Reads one datagram of answers to the window's requests.
    fn read_answers(&mut self, ops: &[Op], window: &mut Window) -> Result<(), (usize, Error)> {
        let pending = window.pending();
        let decode = |reason: String| {
            (
                pending,
                Error::Decode {
                    what: ops
                        .get(pending)
                        .map(ToString::to_string)
                        .unwrap_or_default(),
                    reason,
                },
            )
        };
        let data = netlink::receive(&mut self.socket, netlink::ANSWER_TIMEOUT)
            .map_err(|e| (pending, Error::Socket(e)))?;
        for one in netlink::messages(&data) {
            let message =
                NetlinkMessage::<GenlMessage<IpvsMessage>>::deserialize(one.map_err(decode)?)
                    .map_err(|e| decode(e.to_string()))?;
            if let NetlinkPayload::Error(e) = message.payload {
                window.answered(
                    message.header.sequence_number,
                    e.code.map(|code| -code.get()),
                );
            }
        }
        Ok(())
    }

    fn request(&mut self, msg: IpvsMessage, what: &str) -> Result<Vec<IpvsMessage>, Error> {
        let answers = self.exchange(
            GenlMessage::from_payload(msg),
            NLM_F_REQUEST | NLM_F_ACK,
            what,
        )?;
        Ok(answers.into_iter().map(|g| g.payload).collect())
    }

    fn dump(&mut self, msg: IpvsMessage, what: &str) -> Result<Vec<IpvsMessage>, Error> {
        let answers = self.exchange(
            GenlMessage::from_payload(msg),
            NLM_F_REQUEST | NLM_F_DUMP,
            what,
        )?;
        Ok(answers.into_iter().map(|g| g.payload).collect())
    }

    /// The IPVS version code and connection table size.
    pub fn info(&mut self) -> Result<(u32, u32), Error> {
        let answers = self.request(IpvsMessage::new(Command::GetInfo, vec![]), "get info")?;
        let mut version = 0;
        let mut size = 0;
        for attr in answers.iter().flat_map(|m| &m.info) {
            match attr {
                InfoAttr::Version(v) => version = *v,
                InfoAttr::ConnTabSize(s) => size = *s,
                InfoAttr::Other(_) => {}
            }
        }
        Ok((version, size))
    }

    /// Every service with its destinations, sorted as ipvsadm sorts.
    pub fn services(&mut self) -> Result<Vec<ServiceEntry>, Error> {
        let answers = self.dump(
            IpvsMessage::new(Command::GetService, vec![]),
            "list services",
        )?;
        let mut services = Vec::new();
        for attrs in answers.iter().flat_map(|m| &m.attrs) {
            let CmdAttr::Service(attrs) = attrs else {
                continue;
            };
            let mut entry = listing::service_entry(attrs).map_err(|reason| Error::Decode {
                what: "list services".into(),
                reason,
            })?;
            entry.destinations = self.destinations(&entry.key)?;
            services.push(entry);
        }
        services.sort_by_key(|s| s.sort_key());
        Ok(services)
    }

    fn destinations(&mut self, key: &ServiceKey) -> Result<Vec<listing::DestEntry>, Error> {
        let what = format!("list destinations of {key}");
        let answers = self.dump(message::get_dests(key), &what)?;
        let mut dests = Vec::new();
        for attrs in answers.iter().flat_map(|m| &m.attrs) {
            let CmdAttr::Dest(attrs) = attrs else {
                continue;
            };
            dests.push(listing::dest_entry(attrs, key.family()).map_err(|reason| {
                Error::Decode {
                    what: what.clone(),
                    reason,
                }
            })?);
        }
        dests.sort_by_key(|d| d.address);
        Ok(dests)
    }

    /// The whole table, as `appliance ipvs list` prints it.
    pub fn listing(&mut self) -> Result<Listing, Error> {
        let (version, size) = self.info()?;
        Ok(Listing {
            version: listing::version_string(version),
            conn_table_size: size,
            services: self.services()?,
        })
    }

    /// The current connection timeouts.
    pub fn timeouts(&mut self) -> Result<Timeouts, Error> {
        let answers = self.request(IpvsMessage::new(Command::GetConfig, vec![]), "get timeouts")?;
        let mut t = Timeouts::default();
        for attr in answers.iter().flat_map(|m| &m.attrs) {
            match attr {
                CmdAttr::TimeoutTcp(v) => t.tcp = Some(*v),
                CmdAttr::TimeoutTcpFin(v) => t.tcp_fin = Some(*v),
                CmdAttr::TimeoutUdp(v) => t.udp = Some(*v),
                _ => {}
            }
        }
        Ok(t)
    }

    /// Sets the given timeouts, leaving the others.
    pub fn set_timeouts(&mut self, t: Timeouts) -> Result<(), Error> {
        let attrs = [
            t.tcp.map(CmdAttr::TimeoutTcp),
            t.tcp_fin.map(CmdAttr::TimeoutTcpFin),
            t.udp.map(CmdAttr::TimeoutUdp),
        ]
        .into_iter()
        .flatten()
        .collect();
        self.request(IpvsMessage::new(Command::SetConfig, attrs), "set timeouts")
            .map(drop)
    }

    /// The running sync daemons.
    pub fn sync_daemons(&mut self) -> Result<Vec<DaemonEntry>, Error> {
        let answers = self.dump(
            IpvsMessage::new(Command::GetDaemon, vec![]),
            "list sync daemons",
        )?;
        Ok(answers
            .iter()
            .flat_map(|m| &m.attrs)
            .filter_map(|a| match a {
                CmdAttr::Daemon(attrs) => Some(listing::daemon_entry(attrs)),
                _ => None,
            })
            .collect())
    }

    /// Starts a sync daemon.
    pub fn start_sync_daemon(&mut self, d: &SyncDaemon) -> Result<(), Error> {
        let mut attrs = vec![
            DaemonAttr::State(d.role.state()),
            DaemonAttr::McastIfn(d.interface.clone()),
            DaemonAttr::SyncId(u32::from(d.sync_id)),
        ];
        attrs.extend(d.max_len.map(DaemonAttr::SyncMaxlen));
        attrs.extend(d.group.map(|g| match g {
            std::net::IpAddr::V4(v4) => DaemonAttr::McastGroup(v4),
            std::net::IpAddr::V6(v6) => DaemonAttr::McastGroup6(v6),
        }));
        attrs.extend(d.port.map(DaemonAttr::McastPort));
        attrs.extend(d.ttl.map(DaemonAttr::McastTtl));
        let what = format!("start {:?} sync daemon on {}", d.role, d.interface);
        self.request(message::new_daemon(attrs), &what).map(drop)
    }

    /// Stops the sync daemon of `role`.
    pub fn stop_sync_daemon(&mut self, role: SyncRole) -> Result<(), Error> {
        let what = format!("stop {role:?} sync daemon");
        self.request(message::del_daemon(role.state()), &what)
            .map(drop)
    }
}

impl Backend for Ipvs {
    fn name(&self) -> &'static str {
        "ipvs"
    }

    fn capability(&self) -> crate::dataplane::Choice {
        crate::dataplane::Choice::Ipvs
    }

    fn read(&mut self) -> Result<Snapshot, crate::dataplane::Error> {
        let mut snapshot = Snapshot::default();
        for entry in self.services()? {
            match entry.to_model() {
                Ok(svc) => {
                    snapshot.table.insert(entry.key, svc);
                }
                Err(reason) => {
                    snapshot.unreadable.insert(entry.key, reason);
                }
            }
        }
        Ok(snapshot)
    }

    fn apply(&mut self, op: &Op) -> Result<(), crate::dataplane::Error> {
        self.request(operation(op), &op.to_string())?;
        Ok(())
    }

    fn apply_all(&mut self, ops: &[Op]) -> Result<(), (usize, crate::dataplane::Error)> {
        self.pipeline(ops).map_err(|(i, e)| (i, e.into()))
    }

    /// IPVS counts them itself, per destination: one dump per service.
    fn connections(
        &mut self,
        wanted: &[(ServiceKey, std::net::SocketAddr)],
    ) -> Result<Vec<crate::dataplane::Connections>, crate::dataplane::Error> {
        let mut dumped: std::collections::BTreeMap<ServiceKey, Vec<listing::DestEntry>> =
            std::collections::BTreeMap::new();
        let mut out = Vec::with_capacity(wanted.len());
        for (key, address) in wanted {
            let dests = match dumped.entry(*key) {
                std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::btree_map::Entry::Vacant(e) => e.insert(self.destinations(key)?),
            };
            out.push(
                dests
                    .iter()
                    .find(|d| d.address == *address)
                    .map(|d| crate::dataplane::Connections {
                        active: d.active_conns,
                        inactive: d.inactive_conns,
                        pinned: d.active_conns.saturating_add(d.inactive_conns),
                        traffic: Some(d.stats),
                    })
                    .unwrap_or_default(),
            );
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_keeps_its_datagrams_in_flight_and_ends_when_each_is_acknowledged() {
        let mut w = Window::new(10, 7);
        assert_eq!(w.next_to_send(), Some(0));
        w.sent(3);
        assert_eq!(w.next_to_send(), Some(4));
        w.sent(7);
        assert_eq!(w.next_to_send(), None, "{BATCHES_IN_FLIGHT} in flight");
        // An answer to something never sent is not ours.
        w.answered(7 + 500, None);
        assert_eq!(w.next_to_send(), None);
        // The first datagram's last request is acknowledged: all of it is done.
        w.answered(7 + 3, None);
        assert_eq!(w.pending(), 4);
        assert_eq!(w.next_to_send(), Some(8));
        w.sent(9);
        w.answered(7 + 7, None);
        assert!(!w.done());
        w.answered(7 + 9, None);
        assert!(w.done());
        assert_eq!(w.outcome(), Ok(()));
    }

    #[test]
    fn a_window_reports_the_first_failure_and_sends_no_more() {
        let mut w = Window::new(10, u32::MAX - 1);
        w.sent(3);
        // Sequence numbers wrap: the third operation is sequence 0. A failure
        // in the middle of a datagram is answered on its own.
        w.answered(0, Some(libc::EEXIST));
        assert_eq!(w.next_to_send(), None, "nothing more after a failure");
        assert!(!w.done(), "the rest of the datagram is still carried out");
        w.answered(1, Some(libc::ENOENT));
        assert!(w.done(), "the last one's answer, an error here, ends it");
        assert_eq!(w.outcome(), Err((2, libc::EEXIST)));
    }
}
