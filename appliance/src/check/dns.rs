//! DNS_CHECK: one query over UDP to the real server (or `connect_ip` /
//! `connect_port`) for `name`'s records of `type`, recursion desired;
//! the server is up when an answer to it (the query's id, the response
//! bit set) comes within `connect_timeout` with rcode NOERROR, whether or
//! not it holds records, as in keepalived. Datagrams that are not that
//! answer are skipped; an ICMP unreachable (the kernel's error on the
//! connected socket) or an error rcode is down. Owns the two messages'
//! wire format ([`message`]).

use super::decision::{Failure, Outcome};
use super::probe::{Probe, Start};
use crate::config::model::{DnsCheck, RealServer};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UdpSocket;

/// A DNS_CHECK.
pub struct DnsProbe {
    target: SocketAddr,
    bind: Option<IpAddr>,
    timeout: Duration,
    /// The query without its id (which each run draws).
    query: Arc<[u8]>,
}

impl DnsProbe {
    pub fn new(check: &DnsCheck, rs: &RealServer) -> Self {
        let labels: Vec<&str> = check.name.labels().collect();
        Self {
            target: SocketAddr::new(
                check.connect_ip.unwrap_or(rs.address.ip()),
                check.connect_port.unwrap_or(rs.address.port()),
            ),
            bind: check.bindto,
            timeout: check.connect_timeout,
            query: message::query(0, &labels, check.record_type.code()).into(),
        }
    }
}

impl Probe for DnsProbe {
    fn kind(&self) -> &'static str {
        "DNS_CHECK"
    }

    fn start(&self) -> Start {
        let (target, bind, timeout, query) =
            (self.target, self.bind, self.timeout, self.query.clone());
        Start::Future(Box::pin(async move {
            let mut query = query.to_vec();
            message::set_id(&mut query, fastrand::u16(..));
            probe(target, bind, timeout, &query).await
        }))
    }
}

/// An I/O error as a probe failure: the director's own fault if it is one.
fn failure(error: &std::io::Error) -> Failure {
    super::local_fault(error).map_or(Failure::Connect(error.kind()), Failure::Local)
}

/// One DNS_CHECK run with `query` (id set).
pub async fn probe(
    target: SocketAddr,
    bind: Option<IpAddr>,
    timeout: Duration,
    query: &[u8],
) -> Outcome {
    match tokio::time::timeout(timeout, exchange(target, bind, query)).await {
        Ok(Ok(())) => Outcome::Up,
        Ok(Err(failure)) => Outcome::Down(failure),
        Err(_elapsed) => Outcome::Down(Failure::Timeout),
    }
}

async fn exchange(target: SocketAddr, bind: Option<IpAddr>, query: &[u8]) -> Result<(), Failure> {
    let source = bind.unwrap_or(match target {
        SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    });
    let socket = UdpSocket::bind(SocketAddr::new(source, 0))
        .await
        .map_err(|e| failure(&e))?;
    socket.connect(target).await.map_err(|e| failure(&e))?;
    socket.send(query).await.map_err(|e| failure(&e))?;
    let id = message::id(query).unwrap_or_default();
    // keepalived's DNS_BUFFER_SIZE: the header is all that is read.
    let mut buf = [0u8; 768];
    loop {
        let len = socket.recv(&mut buf).await.map_err(|e| failure(&e))?;
        match message::answer(id, buf.get(..len).unwrap_or_default()) {
            Ok(0) => return Ok(()),
            Ok(rcode) => return Err(Failure::Rcode(rcode)),
            Err(error) => tracing::debug!(%target, %error, "not the answer to our query"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A responder on loopback that answers each query with `rcode`,
    /// after a datagram with another id (which must be skipped).
    #[test]
    fn an_answer_with_our_id_decides() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let target = server.local_addr().unwrap();
        let responder = std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            for rcode in [0u8, 5] {
                let (len, from) = server.recv_from(&mut buf).unwrap();
                let mut answer = buf[..len].to_vec();
                answer[2] |= 0x80;
                answer[3] |= rcode;
                let mut stray = answer.clone();
                stray[0] ^= 0xff;
                server.send_to(&stray, from).unwrap();
                server.send_to(&answer, from).unwrap();
            }
        });
        let timeout = Duration::from_secs(2);
        let query = message::query(0x4242, &[], 6);
        assert_eq!(
            rt.block_on(probe(target, None, timeout, &query)),
            Outcome::Up
        );
        assert_eq!(
            rt.block_on(probe(target, None, timeout, &query)),
            Outcome::Down(Failure::Rcode(5))
        );
        responder.join().unwrap();
        // Nobody there now: refused.
        assert_eq!(
            rt.block_on(probe(target, None, timeout, &query)),
            Outcome::Down(Failure::Connect(std::io::ErrorKind::ConnectionRefused))
        );
    }
}

/// The DNS messages (RFC 1035 section 4.1): a query of one question, and
/// of the answer only the header.
pub mod message {
    /// Why a datagram is not the answer to our query.
    #[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
    pub enum Error {
        #[error("shorter than a DNS header")]
        Truncated,
        #[error("id {0:#06x} is another query's")]
        Id(u16),
        #[error("a query, not an answer")]
        NotAnswer,
    }

    const HEADER_LEN: usize = 12;
    /// Flags of our query: a standard query, recursion desired.
    const RD: u16 = 0x0100;
    const QR: u16 = 0x8000;
    const CLASS_IN: u16 = 1;

    /// A query with `id` for `labels` (none: the root) of type `qtype`,
    /// class IN. The labels are at most 63 bytes each (`DnsName` checks).
    pub fn query(id: u16, labels: &[&str], qtype: u16) -> Vec<u8> {
        let mut message = Vec::with_capacity(HEADER_LEN + 64);
        for field in [id, RD, 1, 0, 0, 0] {
            message.extend_from_slice(&field.to_be_bytes());
        }
        for label in labels {
            message.push(u8::try_from(label.len()).unwrap_or(63));
            message.extend_from_slice(label.as_bytes());
        }
        message.push(0);
        message.extend_from_slice(&qtype.to_be_bytes());
        message.extend_from_slice(&CLASS_IN.to_be_bytes());
        message
    }

    /// The id of a message.
    pub fn id(message: &[u8]) -> Option<u16> {
        Some(u16::from_be_bytes([*message.first()?, *message.get(1)?]))
    }

    /// Sets the id of a query built by [`query`].
    pub fn set_id(message: &mut [u8], id: u16) {
        if let Some(field) = message.get_mut(..2) {
            field.copy_from_slice(&id.to_be_bytes());
        }
    }

    /// The rcode of `datagram` if it is the answer to the query with `id`.
    pub fn answer(id: u16, datagram: &[u8]) -> Result<u8, Error> {
        let header = datagram.get(..HEADER_LEN).ok_or(Error::Truncated)?;
        let got = u16::from_be_bytes([header[0], header[1]]);
        if got != id {
            return Err(Error::Id(got));
        }
        let flags = u16::from_be_bytes([header[2], header[3]]);
        if flags & QR == 0 {
            return Err(Error::NotAnswer);
        }
        Ok((flags & 0x000f) as u8)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        /// A query for example.com A with id 0xbeef, recursion desired,
        /// laid out by hand from RFC 1035.
        static QUERY: [u8; 29] = [
            0xbe, 0xef, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // header
            7, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 3, b'c', b'o', b'm', 0, // qname
            0x00, 0x01, 0x00, 0x01, // A, IN
        ];

        #[test]
        fn queries_are_rfc_1035() {
            assert_eq!(query(0xbeef, &["example", "com"], 1), QUERY);
            // The root: a lone zero-length label; SOA is 6.
            assert_eq!(
                query(1, &[], 6),
                [0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 6, 0, 1]
            );
            let mut q = query(0, &["a"], 1);
            set_id(&mut q, 0x1234);
            assert_eq!(id(&q), Some(0x1234));
        }

        #[test]
        fn only_the_answer_to_our_query_counts() {
            let mut answer = QUERY;
            answer[2] |= 0x80; // QR
            assert_eq!(super::answer(0xbeef, &answer), Ok(0));
            answer[3] |= 2; // SERVFAIL
            assert_eq!(super::answer(0xbeef, &answer), Ok(2));
            assert_eq!(super::answer(0xbeee, &answer), Err(Error::Id(0xbeef)));
            assert_eq!(super::answer(0xbeef, &QUERY), Err(Error::NotAnswer));
            for len in 0..HEADER_LEN {
                assert_eq!(super::answer(0xbeef, &answer[..len]), Err(Error::Truncated));
            }
        }
    }
}
