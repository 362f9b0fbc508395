//! PING_CHECK: one ICMP (ICMPv6) echo request to the real server (or
//! `connect_ip`), from `bindto` if set, must be answered within
//! `connect_timeout`. Owns the echo messages' wire format ([`echo`]) and
//! the raw socket each run opens: connected to the target, so the kernel
//! hands it only that host's ICMP, and the reply must also carry the
//! request's identifier, sequence number and payload. A raw socket rather
//! than a ping datagram socket because those are refused to every group
//! outside `net.ipv4.ping_group_range` (by default all of them, root's
//! too), which keepalived works around by widening that sysctl; the
//! daemon has CAP_NET_RAW already for VRRP.

use super::decision::{Failure, Outcome};
use super::probe::{Probe, Start};
use crate::config::model::{PingCheck, RealServer};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// A PING_CHECK.
pub struct PingProbe {
    target: IpAddr,
    bind: Option<IpAddr>,
    timeout: Duration,
}

impl PingProbe {
    pub fn new(check: &PingCheck, rs: &RealServer) -> Self {
        Self {
            target: check.connect_ip.unwrap_or(rs.address.ip()),
            bind: check.bindto,
            timeout: check.connect_timeout,
        }
    }
}

impl Probe for PingProbe {
    fn kind(&self) -> &'static str {
        "PING_CHECK"
    }

    fn start(&self) -> Start {
        Start::Future(Box::pin(probe(self.target, self.bind, self.timeout)))
    }
}

/// Sequence numbers shared by every probe of the process: with a random
/// identifier per run, two runs to one host (two virtual servers with the
/// same real server) never take each other's replies.
static SEQUENCE: AtomicU16 = AtomicU16::new(0);

/// One PING_CHECK run: up if the echo reply comes back in time.
pub async fn probe(target: IpAddr, bind: Option<IpAddr>, timeout: Duration) -> Outcome {
    let request = echo::Echo {
        ident: fastrand::u16(..),
        seq_no: SEQUENCE.fetch_add(1, Ordering::Relaxed),
    };
    match tokio::time::timeout(timeout, exchange(target, bind, request)).await {
        Ok(Ok(())) => Outcome::Up,
        Ok(Err(failure)) => Outcome::Down(failure),
        Err(_elapsed) => Outcome::Down(Failure::Timeout),
    }
}

/// An I/O error as a probe failure: the director's own fault if it is one.
fn failure(error: &std::io::Error) -> Failure {
    super::local_fault(error).map_or(Failure::Connect(error.kind()), Failure::Local)
}

/// Sends `request` to `target` and waits for its reply (the caller bounds
/// the wait); anything else that arrives is skipped.
async fn exchange(
    target: IpAddr,
    bind: Option<IpAddr>,
    request: echo::Echo,
) -> Result<(), Failure> {
    let (domain, protocol) = match target {
        IpAddr::V4(_) => (Domain::IPV4, Protocol::ICMPV4),
        IpAddr::V6(_) => (Domain::IPV6, Protocol::ICMPV6),
    };
    let socket = Socket::new(domain, Type::RAW, Some(protocol)).map_err(|e| {
        // Without CAP_NET_RAW the check cannot run at all: not the real
        // server's doing, but nothing to wait out either.
        if e.kind() == std::io::ErrorKind::PermissionDenied {
            Failure::NotStarted
        } else {
            failure(&e)
        }
    })?;
    socket.set_nonblocking(true).map_err(|e| failure(&e))?;
    if let Some(source) = bind {
        socket
            .bind(&SockAddr::from(SocketAddr::new(source, 0)))
            .map_err(|e| failure(&e))?;
    }
    socket
        .connect(&SockAddr::from(SocketAddr::new(target, 0)))
        .map_err(|e| failure(&e))?;
    // SAFETY: the Socket owns its descriptor and keeps it open, unchanged,
    // for as long as the AsyncFd that owns the Socket.
    let io = unsafe { AsyncFd::register_with_interest(socket, Interest::READABLE) }
        .map_err(|e| failure(&e.into()))?;
    io.get_ref()
        .send(&echo::request(target.is_ipv6(), request))
        .map_err(|e| failure(&e))?;
    let mut buf = [0u8; 1500];
    loop {
        let mut ready = io.readable().await.map_err(|e| failure(&e))?;
        let len = match ready.try_io(|fd| fd.get_ref().read(&mut buf)) {
            Ok(Ok(len)) => len,
            // An ICMP error about our request (host unreachable) is the
            // answer too.
            Ok(Err(e)) => return Err(failure(&e)),
            Err(_would_block) => continue,
        };
        let datagram = buf.get(..len).unwrap_or_default();
        match echo::reply(target, datagram) {
            Ok(reply) if reply == request => return Ok(()),
            Ok(other) => {
                tracing::debug!(%target, ident = other.ident, seq_no = other.seq_no, "echo reply to another request");
            }
            Err(error) => tracing::debug!(%target, %error, "not our echo reply"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The daemon's tests run as root, as the daemon does (CAP_NET_RAW);
    /// a host that does not answer is tests/tests/checks_icmp_udp_dns.rs's.
    #[test]
    fn loopback_answers() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let timeout = Duration::from_millis(300);
        for target in [
            IpAddr::from([127, 0, 0, 1]),
            std::net::Ipv6Addr::LOCALHOST.into(),
        ] {
            assert_eq!(
                rt.block_on(probe(target, None, timeout)),
                Outcome::Up,
                "{target}"
            );
        }
    }
}

/// ICMP and ICMPv6 echo messages (RFC 792, RFC 4443 section 4): type, code,
/// checksum, identifier, sequence number, then a payload the reply
/// returns unchanged.
pub mod echo {
    use std::net::IpAddr;

    /// What a request is known by, and its reply must carry.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Echo {
        pub ident: u16,
        pub seq_no: u16,
    }

    /// The request's payload, which the reply must carry back.
    pub const PAYLOAD: &[u8; 24] = b"appliance PING_CHECK....";

    const ICMP_ECHO_REPLY: u8 = 0;
    const ICMP_ECHO_REQUEST: u8 = 8;
    const ICMPV6_ECHO_REQUEST: u8 = 128;
    const ICMPV6_ECHO_REPLY: u8 = 129;
    const IPPROTO_ICMP: u8 = 1;
    const HEADER_LEN: usize = 8;

    /// Why a datagram is not an echo reply from the target.
    #[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
    pub enum Error {
        #[error("truncated")]
        Truncated,
        #[error("not an ICMP packet")]
        NotIcmp,
        #[error("from {0}, not the target")]
        From(IpAddr),
        #[error("bad checksum")]
        Checksum,
        #[error("ICMP type {0} code {1}, not an echo reply")]
        NotReply(u8, u8),
        #[error("payload differs from the request's")]
        Payload,
    }

    /// The echo request `echo` for IPv6 or IPv4. An ICMPv6 checksum
    /// covers a pseudo-header with the source address, which the kernel
    /// knows and fills in for raw ICMPv6 sockets; ICMP's is computed here.
    pub fn request(ipv6: bool, echo: Echo) -> Vec<u8> {
        let kind = if ipv6 {
            ICMPV6_ECHO_REQUEST
        } else {
            ICMP_ECHO_REQUEST
        };
        let mut message = Vec::with_capacity(HEADER_LEN + PAYLOAD.len());
        message.extend_from_slice(&[kind, 0, 0, 0]);
        message.extend_from_slice(&echo.ident.to_be_bytes());
        message.extend_from_slice(&echo.seq_no.to_be_bytes());
        message.extend_from_slice(PAYLOAD);
        if !ipv6 {
            let sum = checksum(&message).to_be_bytes();
            message[2..4].copy_from_slice(&sum);
        }
        message
    }

    /// The echo reply in `datagram`, as a raw socket of `target`'s family
    /// receives it: an IPv4 raw socket gets the IP header too (whose
    /// source must be `target`), an IPv6 one only the ICMPv6 message
    /// (whose checksum the kernel has verified, and whose source it
    /// matched to the connected address).
    pub fn reply(target: IpAddr, datagram: &[u8]) -> Result<Echo, Error> {
        let message = match target {
            IpAddr::V4(target) => {
                let first = *datagram.first().ok_or(Error::Truncated)?;
                let header_len = usize::from(first & 0x0f) * 4;
                if first >> 4 != 4 || header_len < 20 {
                    return Err(Error::NotIcmp);
                }
                let header = datagram.get(..header_len).ok_or(Error::Truncated)?;
                if header[9] != IPPROTO_ICMP {
                    return Err(Error::NotIcmp);
                }
                let source =
                    std::net::Ipv4Addr::new(header[12], header[13], header[14], header[15]);
                if source != target {
                    return Err(Error::From(source.into()));
                }
                let message = &datagram[header_len..];
                if message.len() >= HEADER_LEN && checksum(message) != 0 {
                    return Err(Error::Checksum);
                }
                message
            }
            IpAddr::V6(_) => datagram,
        };
        let header = message.get(..HEADER_LEN).ok_or(Error::Truncated)?;
        let wanted = if target.is_ipv6() {
            ICMPV6_ECHO_REPLY
        } else {
            ICMP_ECHO_REPLY
        };
        if header[0] != wanted || header[1] != 0 {
            return Err(Error::NotReply(header[0], header[1]));
        }
        if &message[HEADER_LEN..] != PAYLOAD {
            return Err(Error::Payload);
        }
        Ok(Echo {
            ident: u16::from_be_bytes([header[4], header[5]]),
            seq_no: u16::from_be_bytes([header[6], header[7]]),
        })
    }

    /// The Internet checksum (RFC 1071) of `data`: zero over a message
    /// whose checksum field is right.
    pub fn checksum(data: &[u8]) -> u16 {
        let mut sum: u32 = data
            .chunks(2)
            .map(|pair| u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)])))
            .sum();
        while sum >> 16 != 0 {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        /// An echo reply from 10.150.1.2 as a raw IPv4 socket receives
        /// it: IP header (checksums computed by hand), then the ICMP
        /// message.
        static REPLY_V4: [u8; 52] = [
            0x45, 0x00, 0x00, 0x34, 0x9c, 0x2f, 0x00, 0x00, 0x40, 0x01, 0xc7, 0x6b, 0x0a, 0x96,
            0x01, 0x02, 0x0a, 0x96, 0x01, 0x01, // IPv4 header
            0x00, 0x00, 0xf9, 0x41, 0x12, 0x34, 0x00, 0x07, // echo reply, id 0x1234, seq 7
            b'a', b'p', b'p', b'l', b'i', b'a', b'n', b'c', b'e', b' ', b'P', b'I', b'N', b'G',
            b'_', b'C', b'H', b'E', b'C', b'K', b'.', b'.', b'.', b'.',
        ];

        const TARGET_V4: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 150, 1, 2));
        const ECHO: Echo = Echo {
            ident: 0x1234,
            seq_no: 7,
        };

        #[test]
        fn a_request_is_an_echo_request_with_its_checksum() {
            let message = request(false, ECHO);
            assert_eq!(&message[..8], &[8, 0, 0xf1, 0x41, 0x12, 0x34, 0x00, 0x07]);
            assert_eq!(checksum(&message), 0);
            assert_eq!(&message[8..], PAYLOAD);
            // ICMPv6: the kernel fills the checksum.
            assert_eq!(&request(true, ECHO)[..8], &[128, 0, 0, 0, 0x12, 0x34, 0, 7]);
        }

        #[test]
        fn a_reply_to_the_request_is_recognised() {
            assert_eq!(checksum(&REPLY_V4[..20]), 0, "IP header checksum");
            assert_eq!(reply(TARGET_V4, &REPLY_V4), Ok(ECHO));
        }

        #[test]
        fn a_reply_from_elsewhere_or_damaged_is_refused() {
            let other = IpAddr::V4(std::net::Ipv4Addr::new(10, 150, 1, 3));
            assert_eq!(reply(other, &REPLY_V4), Err(Error::From(TARGET_V4)));
            let mut flipped = REPLY_V4;
            flipped[30] ^= 1;
            assert_eq!(reply(TARGET_V4, &flipped), Err(Error::Checksum));
            // Our own request looped back is no reply.
            let mut looped = REPLY_V4.to_vec();
            looped.truncate(20);
            looped.extend_from_slice(&request(false, ECHO));
            assert_eq!(reply(TARGET_V4, &looped), Err(Error::NotReply(8, 0)));
            let mut udp = REPLY_V4;
            udp[9] = 17;
            assert_eq!(reply(TARGET_V4, &udp), Err(Error::NotIcmp));
        }

        #[test]
        fn truncated_replies_never_panic() {
            for len in 0..REPLY_V4.len() {
                assert!(reply(TARGET_V4, &REPLY_V4[..len]).is_err(), "{len} bytes");
            }
            let v6 = IpAddr::V6(std::net::Ipv6Addr::LOCALHOST);
            let mut reply_v6 = vec![129, 0, 0, 0, 0x12, 0x34, 0, 7];
            reply_v6.extend_from_slice(PAYLOAD);
            assert_eq!(reply(v6, &reply_v6), Ok(ECHO));
            for len in 0..reply_v6.len() {
                assert!(reply(v6, &reply_v6[..len]).is_err(), "{len} bytes");
            }
            // An IHL longer than the datagram.
            assert_eq!(reply(TARGET_V4, &[0x4f, 0, 0, 0]), Err(Error::Truncated));
        }
    }
}
