//! The nftables backend, for kernels without IPVS: NAT-mode virtual
//! services as nf_tables rules in the appliance's own table (`inet
//! appliance`), spoken over netlink directly (no `nft` binary).
//!
//! - [`nla`]: the attributes, from the `netlink-packet-nftables` crate
//!   (as are the messages); [`request`]: what a batch's requests do;
//!   [`message`]: the requests as messages, and their batches;
//! - [`ruleset`]: the model as rules, schedulers as number generators and
//!   hashes over pick maps, and the requests of each operation (pure);
//! - [`conntrack`]: the connections to each real server, from conntrack;
//! - [`traffic`]: what nf_tables counts per real server (connections,
//!   packets, bytes), and the rates;
//! - this module: [`Nftables`], a blocking netlink client in the calling
//!   thread's network namespace, and its [`Backend`] implementation.
//!
//! What it cannot do as IPVS would (DR, TUN, schedulers other than rr,
//! wrr, sh, dh, mh and random, persistence, one-packet scheduling, thresholds,
//! fwmark services) is refused, never approximated: at config check when
//! the config says `dataplane = "nftables"`, and before any change at
//! reconcile.

pub mod conntrack;
pub mod message;
pub mod request;
pub mod ruleset;
pub mod traffic;

pub use netlink_packet_nftables::nla;

use crate::dataplane::netlink;
use crate::dataplane::{Backend, Op, ServiceKey, Snapshot};
use message::{Body, NftMessage};
use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
use netlink_sys::Socket;
use netlink_sys::protocols::NETLINK_NETFILTER;
use nla::RuleAttr;
use request::Request;
use ruleset::{Installed, InstalledService, PlanError};
use std::collections::BTreeMap;
use std::io;

/// An nftables failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("netlink socket: {0}")]
    Socket(io::Error),
    #[error("{what}: the kernel refused: {source}")]
    Kernel { what: String, source: io::Error },
    #[error("{what}: undecodable answer: {reason}")]
    Decode { what: String, reason: String },
    #[error(
        "rule {handle} in chain {chain} of table inet appliance is not the appliance's (the table is the appliance's alone)"
    )]
    Foreign { chain: String, handle: u64 },
    #[error(transparent)]
    Plan(#[from] PlanError),
}

/// A blocking client of the kernel's nf_tables, owning table `inet
/// appliance`.
pub struct Nftables {
    socket: Socket,
    sequence: u32,
    /// The rates from the counters' successive reads.
    rates: traffic::Rates,
}

/// How an exchange ends.
enum Expect {
    /// Acknowledgements for every sequence number in the range.
    Acks { first: u32, last: u32 },
    /// A dump, ended by `NLMSG_DONE`.
    Dump,
}

impl Nftables {
    /// Opens a netfilter netlink socket and checks that nf_tables answers.
    pub fn open() -> Result<Self, Error> {
        let socket =
            netlink::open(NETLINK_NETFILTER, netlink::ANSWER_TIMEOUT).map_err(Error::Socket)?;
        let mut nft = Self {
            socket,
            sequence: 0,
            rates: traffic::Rates::default(),
        };
        nft.table_exists()?;
        Ok(nft)
    }

    fn next_sequence(&mut self) -> u32 {
        self.sequence = self.sequence.wrapping_add(1);
        self.sequence
    }

    /// Sends `bytes` and collects the answers' messages until `expect` is
    /// met. `what(seq)` names the request a kernel error refers to.
    fn exchange(
        &mut self,
        bytes: &[u8],
        expect: Expect,
        dump_seq: u32,
        what: &dyn Fn(u32) -> String,
    ) -> Result<Vec<NftMessage>, Error> {
        self.socket.send(bytes, 0).map_err(Error::Socket)?;
        let (first, last) = match expect {
            Expect::Acks { first, last } => (first, last),
            Expect::Dump => (dump_seq, dump_seq),
        };
        let mut pending = last.wrapping_sub(first).wrapping_add(1);
        let decode = |reason: String| Error::Decode {
            what: what(first),
            reason,
        };
        let mut answers = Vec::new();
        loop {
            let data = netlink::receive(&mut self.socket, netlink::ANSWER_TIMEOUT)
                .map_err(Error::Socket)?;
            for one in crate::dataplane::netlink::messages(&data) {
                let one = one.map_err(decode)?;
                let message = NetlinkMessage::<NftMessage>::deserialize(one)
                    .map_err(|e| decode(e.to_string()))?;
                let seq = message.header.sequence_number;
                // A failed commit is reported against the batch's begin
                // marker, one before `first`.
                let begin = first.wrapping_sub(1);
                if seq.wrapping_sub(first) > last.wrapping_sub(first) && seq != begin {
                    continue;
                }
                match message.payload {
                    NetlinkPayload::InnerMessage(m) => answers.push(m),
                    NetlinkPayload::Done(_) => return Ok(answers),
                    NetlinkPayload::Error(e) => match e.code {
                        Some(code) => {
                            return Err(Error::Kernel {
                                what: what(seq),
                                source: io::Error::from_raw_os_error(-code.get()),
                            });
                        }
                        None => {
                            pending = pending.saturating_sub(1);
                            if pending == 0 {
                                return Ok(answers);
                            }
                        }
                    },
                    _ => {}
                }
            }
        }
    }

    fn query(
        &mut self,
        message: NftMessage,
        flags: u16,
        what: &str,
    ) -> Result<Vec<NftMessage>, Error> {
        let seq = self.next_sequence();
        let bytes = message::frame(message, flags, seq);
        let expect = if flags & netlink_packet_core::NLM_F_DUMP == netlink_packet_core::NLM_F_DUMP {
            Expect::Dump
        } else {
            Expect::Acks {
                first: seq,
                last: seq,
            }
        };
        self.exchange(&bytes, expect, seq, &|_| what.to_owned())
    }

    /// Whether table `inet appliance` exists.
    pub fn table_exists(&mut self) -> Result<bool, Error> {
        match self.query(
            message::get_table(),
            message::GET,
            "look up table inet appliance",
        ) {
            Ok(_) => Ok(true),
            Err(Error::Kernel { source, .. }) if source.raw_os_error() == Some(libc::ENOENT) => {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Carries out `requests` as one transaction: all or nothing.
    fn transact(&mut self, requests: &[Request], op: &str) -> Result<(), Error> {
        if requests.is_empty() {
            return Ok(());
        }
        let begin = self.next_sequence();
        let count = u32::try_from(requests.len()).unwrap_or(u32::MAX);
        let first = begin.wrapping_add(1);
        let last = begin.wrapping_add(count);
        self.sequence = last.wrapping_add(1);
        let bytes = message::batch(requests, begin);
        self.make_room(bytes.len())?;
        let what = |seq: u32| match requests.get(seq.wrapping_sub(first) as usize) {
            Some(request) => format!("{op}: {request}"),
            None => format!("{op}: commit"),
        };
        self.exchange(&bytes, Expect::Acks { first, last }, 0, &what)
            .map(drop)
    }

    /// Grows the socket's send buffer to hold a batch of `len` bytes: a
    /// batch is one datagram, and a Maglev table's is megabytes, above the
    /// default limit. `SO_SNDBUFFORCE` (the daemon has CAP_NET_ADMIN)
    /// passes `net.core.wmem_max`, as nft does.
    fn make_room(&mut self, len: usize) -> Result<(), Error> {
        use nix::sys::socket::{getsockopt, setsockopt, sockopt};
        let have =
            getsockopt(&self.socket, sockopt::SndBuf).map_err(|e| Error::Socket(e.into()))?;
        // The kernel keeps some of the buffer for its own accounting.
        let want = len.saturating_add(64 * 1024);
        if have >= want {
            return Ok(());
        }
        setsockopt(&self.socket, sockopt::SndBufForce, &want).map_err(|e| Error::Kernel {
            what: format!("a send buffer of {want} bytes for a batch of {len}"),
            source: e.into(),
        })
    }

    /// What the table holds, and the services whose settings cannot be
    /// read (with why).
    pub fn installed(&mut self) -> Result<(Installed, BTreeMap<ServiceKey, String>), Error> {
        let mut installed = Installed::default();
        let mut unreadable = BTreeMap::new();
        if !self.table_exists()? {
            return Ok((installed, unreadable));
        }
        installed.table_exists = true;
        let rules = self.query(
            message::dump_rules(),
            message::DUMP,
            "list rules of table inet appliance",
        )?;
        let mut masquerade = BTreeMap::new();
        for rule in rules {
            let Body::Rule(attrs) = rule.body else {
                continue;
            };
            let mut chain = String::new();
            let mut handle = 0;
            let mut comment = None;
            for attr in attrs {
                match attr {
                    RuleAttr::Chain(c) => chain = c,
                    RuleAttr::Handle(h) => handle = h,
                    RuleAttr::UserData(u) => comment = ruleset::parse_comment_userdata(&u),
                    _ => {}
                }
            }
            let described = comment.as_deref().and_then(ruleset::parse_description);
            if traffic::CHAINS.contains(&chain.as_str()) && described.is_none() {
                installed.counting = true;
                continue;
            }
            match (chain.as_str(), described) {
                (ruleset::PREROUTING | ruleset::OUTPUT, None) => {}
                (ruleset::POSTROUTING, Some(d)) => {
                    masquerade.insert(d.key, handle);
                }
                (ruleset::SERVICES, Some(d)) => match d.settings {
                    Ok(settings) => {
                        let set = ruleset::map_name(&d.key);
                        let elements = self.elements(&set)?;
                        match ruleset::service_from(d.key, settings, &elements) {
                            Ok(service) => {
                                installed.services.insert(
                                    d.key,
                                    InstalledService {
                                        service,
                                        rule: handle,
                                        masquerade_rule: None,
                                    },
                                );
                            }
                            Err(reason) => {
                                unreadable.insert(d.key, reason);
                            }
                        }
                    }
                    Err(reason) => {
                        unreadable.insert(d.key, reason);
                    }
                },
                _ => return Err(Error::Foreign { chain, handle }),
            }
        }
        for (key, handle) in masquerade {
            match installed.services.get_mut(&key) {
                Some(s) => s.masquerade_rule = Some(handle),
                None if unreadable.contains_key(&key) => {}
                None => {
                    return Err(Error::Foreign {
                        chain: ruleset::POSTROUTING.to_owned(),
                        handle,
                    });
                }
            }
        }
        Ok((installed, unreadable))
    }

    /// A map's elements as `(key, data)`.
    fn elements(&mut self, set: &str) -> Result<request::Elements, Error> {
        Ok(self
            .dump_elements(set)?
            .into_iter()
            .map(|e| {
                (
                    e.key().unwrap_or_default().to_vec(),
                    e.data().unwrap_or_default().to_vec(),
                )
            })
            .collect())
    }

    fn dump_elements(&mut self, set: &str) -> Result<Vec<nla::Element>, Error> {
        let answers = self.query(
            message::dump_elements(set),
            message::DUMP,
            &format!("list set {set} of table inet appliance"),
        )?;
        let mut out = Vec::new();
        for answer in answers {
            let Body::Elements(attrs) = answer.body else {
                continue;
            };
            for attr in attrs {
                if let nla::ElemListAttr::Elements(elements) = attr {
                    out.extend(elements);
                }
            }
        }
        Ok(out)
    }

    /// What the counting sets hold, and the rates updated from it; empty
    /// when the table has no counters (yet).
    pub fn counted(&mut self) -> Result<traffic::Counted, Error> {
        let mut counted = traffic::Counted::default();
        for (count, _, set) in traffic::sets() {
            let elements = match self.dump_elements(&set) {
                Ok(elements) => elements,
                Err(Error::Kernel { source, .. })
                    if source.raw_os_error() == Some(libc::ENOENT) =>
                {
                    return Ok(traffic::Counted::default());
                }
                Err(e) => return Err(e),
            };
            let into = counted.sets.entry(count).or_default();
            for e in elements {
                if let (Some(key), Some(counter)) = (e.key(), e.counter()) {
                    into.insert(key.to_vec(), counter);
                }
            }
        }
        self.rates.update(std::time::Instant::now(), &counted);
        Ok(counted)
    }
}

impl Backend for Nftables {
    fn name(&self) -> &'static str {
        "nftables"
    }

    fn capability(&self) -> crate::dataplane::Choice {
        crate::dataplane::Choice::Nftables
    }

    fn read(&mut self) -> Result<Snapshot, crate::dataplane::Error> {
        let (installed, unreadable) = self.installed()?;
        Ok(Snapshot {
            table: installed
                .services
                .into_iter()
                .map(|(k, s)| (k, s.service))
                .collect(),
            unreadable,
        })
    }

    fn apply(&mut self, op: &Op) -> Result<(), crate::dataplane::Error> {
        let (installed, _) = self.installed()?;
        let requests = ruleset::plan(op, &installed).map_err(Error::from)?;
        self.transact(&requests, &op.to_string())?;
        Ok(())
    }

    /// From conntrack: one dump counts every wanted destination; the
    /// traffic from the counting sets.
    fn connections(
        &mut self,
        wanted: &[(ServiceKey, std::net::SocketAddr)],
    ) -> Result<Vec<crate::dataplane::Connections>, crate::dataplane::Error> {
        let mut out = conntrack::count(&conntrack::dump()?, wanted);
        let counted = self.counted()?;
        for (connections, (service, server)) in out.iter_mut().zip(wanted) {
            connections.traffic = traffic::traffic(&counted, &self.rates, service, *server);
        }
        Ok(out)
    }
}
