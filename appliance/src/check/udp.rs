//! UDP_CHECK: a datagram (`payload`, or keepalived's filler) sent from a
//! socket connected to the real server (or `connect_ip` / `connect_port`).
//! On a connected socket the kernel turns an ICMP port (or host)
//! unreachable from the target into an error on the next receive, which is
//! how a closed port shows. Without `require_reply` the server is up unless
//! that error comes within `connect_timeout` (silence is up, as in
//! keepalived); with it a reply must come in time and match the pattern.

use super::decision::{Failure, Outcome};
use super::probe::{Probe, Start};
use crate::config::model::{RealServer, ReplyPattern, UdpCheck};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UdpSocket;

/// What a reply must be, with `require_reply`.
#[derive(Clone, Debug)]
pub struct Required {
    pub pattern: ReplyPattern,
    /// `min_reply_length`, `max_reply_length`.
    pub min: u16,
    pub max: u16,
}

/// A UDP_CHECK.
pub struct UdpProbe {
    target: SocketAddr,
    bind: Option<IpAddr>,
    timeout: Duration,
    payload: Arc<[u8]>,
    required: Option<Arc<Required>>,
}

/// keepalived's datagram when no `payload` is set: 32 bytes of its check
/// text repeated (layer4.c's UDP_BUFSIZE and set_buf), so a server that
/// logs what it gets sees what checked it.
pub fn default_payload() -> Vec<u8> {
    b"keepalived check - "
        .iter()
        .copied()
        .cycle()
        .take(32)
        .collect()
}

impl UdpProbe {
    pub fn new(check: &UdpCheck, rs: &RealServer) -> Self {
        Self {
            target: SocketAddr::new(
                check.connect_ip.unwrap_or(rs.address.ip()),
                check.connect_port.unwrap_or(rs.address.port()),
            ),
            bind: check.bindto,
            timeout: check.connect_timeout,
            payload: check
                .payload
                .as_ref()
                .map_or_else(default_payload, |hex| hex.bytes().to_vec())
                .into(),
            required: check.require_reply.as_ref().map(|pattern| {
                Arc::new(Required {
                    pattern: pattern.clone(),
                    min: check.min_reply_length,
                    max: check.max_reply_length,
                })
            }),
        }
    }
}

impl Probe for UdpProbe {
    fn kind(&self) -> &'static str {
        "UDP_CHECK"
    }

    fn start(&self) -> Start {
        let (target, bind, timeout) = (self.target, self.bind, self.timeout);
        let (payload, required) = (self.payload.clone(), self.required.clone());
        Start::Future(Box::pin(async move {
            probe(target, bind, timeout, &payload, required.as_deref()).await
        }))
    }
}

/// An I/O error as a probe failure: the director's own fault if it is one.
fn failure(error: &std::io::Error) -> Failure {
    super::local_fault(error).map_or(Failure::Connect(error.kind()), Failure::Local)
}

/// One UDP_CHECK run.
pub async fn probe(
    target: SocketAddr,
    bind: Option<IpAddr>,
    timeout: Duration,
    payload: &[u8],
    required: Option<&Required>,
) -> Outcome {
    match exchange(target, bind, timeout, payload, required).await {
        Ok(()) => Outcome::Up,
        Err(failure) => Outcome::Down(failure),
    }
}

async fn exchange(
    target: SocketAddr,
    bind: Option<IpAddr>,
    timeout: Duration,
    payload: &[u8],
    required: Option<&Required>,
) -> Result<(), Failure> {
    let source = bind.unwrap_or(match target {
        SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    });
    let socket = UdpSocket::bind(SocketAddr::new(source, 0))
        .await
        .map_err(|e| failure(&e))?;
    // Connected: the kernel drops datagrams from anyone else, and reports
    // the target's ICMP errors to this socket.
    socket.connect(target).await.map_err(|e| failure(&e))?;
    socket.send(payload).await.map_err(|e| failure(&e))?;
    // One byte more than the longest acceptable reply, so a longer one
    // shows as too long; without a pattern, any byte will do.
    let mut buf = vec![0u8; required.map_or(1, |r| usize::from(r.max) + 1)];
    match tokio::time::timeout(timeout, socket.recv(&mut buf)).await {
        Ok(Ok(len)) => match required {
            Some(r)
                if !r
                    .pattern
                    .matches(buf.get(..len).unwrap_or_default(), r.min, r.max) =>
            {
                Err(Failure::Reply)
            }
            _ => Ok(()),
        },
        Ok(Err(e)) => Err(failure(&e)),
        Err(_elapsed) if required.is_some() => Err(Failure::Timeout),
        Err(_elapsed) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    fn required(pattern: &str) -> Required {
        Required {
            pattern: pattern.parse().unwrap(),
            min: 0,
            max: 255,
        }
    }

    #[test]
    fn the_default_payload_is_keepalived_s() {
        assert_eq!(default_payload(), b"keepalived check - keepalived ch");
    }

    /// On loopback: a closed port refuses at once, a silent server is up
    /// unless a reply is required, and a reply must match.
    #[test]
    fn refused_silent_and_answered() {
        let rt = runtime();
        let timeout = Duration::from_millis(300);
        let closed = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let closed_addr = closed.local_addr().unwrap();
        drop(closed);
        let outcome = rt.block_on(probe(closed_addr, None, timeout, b"x", None));
        assert_eq!(
            outcome,
            Outcome::Down(Failure::Connect(std::io::ErrorKind::ConnectionRefused))
        );

        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let silent_addr = silent.local_addr().unwrap();
        assert_eq!(
            rt.block_on(probe(silent_addr, None, timeout, b"x", None)),
            Outcome::Up
        );
        let any = required("");
        assert_eq!(
            rt.block_on(probe(silent_addr, None, timeout, b"x", Some(&any))),
            Outcome::Down(Failure::Timeout)
        );

        let echo = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let echo_addr = echo.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            for _ in 0..2 {
                let (len, from) = echo.recv_from(&mut buf).unwrap();
                echo.send_to(&buf[..len], from).unwrap();
            }
        });
        let good = required("ca fe X0");
        assert_eq!(
            rt.block_on(probe(
                echo_addr,
                None,
                timeout,
                &[0xca, 0xfe, 0x70, 1],
                Some(&good)
            )),
            Outcome::Up
        );
        assert_eq!(
            rt.block_on(probe(
                echo_addr,
                None,
                timeout,
                &[0xca, 0xfe, 0x71],
                Some(&good)
            )),
            Outcome::Down(Failure::Reply)
        );
        server.join().unwrap();
    }
}
