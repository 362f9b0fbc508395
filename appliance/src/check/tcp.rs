//! TCP_CHECK: a TCP connection to the real server (or `connect_ip` /
//! `connect_port`) must be established within `connect_timeout`, from the
//! `bindto` source address if set. Also the connect step of HTTP_GET and
//! SSL_GET. Non-blocking sockets on the tokio reactor: no thread per probe.

use super::decision::{Failure, Outcome};
use super::probe::{Probe, Start};
use crate::config::model::{RealServer, TcpCheck};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::net::{TcpSocket, TcpStream};

/// A TCP_CHECK: a full connect, or with `half_open` a SYN answered.
pub struct TcpProbe {
    target: SocketAddr,
    bind: Option<IpAddr>,
    timeout: Duration,
    half_open: bool,
}

impl TcpProbe {
    pub fn new(check: &TcpCheck, rs: &RealServer) -> Self {
        Self {
            target: target(check, rs),
            bind: check.bindto,
            timeout: check.connect_timeout,
            half_open: check.half_open,
        }
    }
}

impl Probe for TcpProbe {
    fn kind(&self) -> &'static str {
        "TCP_CHECK"
    }

    fn start(&self) -> Start {
        let (target, bind, timeout) = (self.target, self.bind, self.timeout);
        if self.half_open {
            Start::Syn {
                target,
                bind,
                timeout,
            }
        } else {
            Start::Future(Box::pin(probe(target, bind, timeout)))
        }
    }
}

/// Where a TCP_CHECK connects: the real server, or `connect_ip` /
/// `connect_port`.
pub fn target(check: &TcpCheck, rs: &RealServer) -> SocketAddr {
    SocketAddr::new(
        check.connect_ip.unwrap_or(rs.address.ip()),
        check.connect_port.unwrap_or(rs.address.port()),
    )
}

/// Connects to `target` within `timeout`, bound to `bind` if given.
pub async fn connect(
    target: SocketAddr,
    bind: Option<IpAddr>,
    timeout: Duration,
) -> Result<TcpStream, Failure> {
    connect_from(target, bind.map(|ip| SocketAddr::new(ip, 0)), timeout).await
}

/// Connects to `target` within `timeout` from `source` if given (a zero
/// port: any; a fixed one is reused at once, as keepalived's checks do).
pub async fn connect_from(
    target: SocketAddr,
    source: Option<SocketAddr>,
    timeout: Duration,
) -> Result<TcpStream, Failure> {
    let attempt = async {
        let socket = match target {
            SocketAddr::V4(_) => TcpSocket::new_v4(),
            SocketAddr::V6(_) => TcpSocket::new_v6(),
        }?;
        if let Some(source) = source {
            if source.port() != 0 {
                socket.set_reuseaddr(true)?;
            }
            socket.bind(source)?;
        }
        socket.connect(target).await
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(stream)) => Ok(stream),
        // No descriptor, memory or port here is the director's fault.
        Ok(Err(e)) => {
            Err(super::local_fault(&e).map_or(Failure::Connect(e.kind()), Failure::Local))
        }
        Err(_elapsed) => Err(Failure::Timeout),
    }
}

/// One TCP_CHECK run: up if the connection is established in time. The
/// connection is then closed at once with a reset (zero linger), as
/// HAProxy does for its checks: no FIN exchange and no TIME_WAIT socket
/// left on the director per check, which at thousands of checks a second
/// is most of the kernel's work and memory. keepalived closes gracefully;
/// the verdict is the same.
pub async fn probe(target: SocketAddr, bind: Option<IpAddr>, timeout: Duration) -> Outcome {
    match connect(target, bind, timeout).await {
        Ok(stream) => {
            // Failing to set it only costs a graceful close.
            let _ = stream.set_zero_linger();
            Outcome::Up
        }
        Err(failure) => Outcome::Down(failure),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::decision::LocalFault;

    /// nextest runs each test in a process of its own, so lowering this
    /// process's descriptor limit touches no other test.
    #[test]
    fn no_descriptor_left_is_the_directors_fault() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let target = listener.local_addr().unwrap();
        // A new descriptor takes the lowest free number; one below the
        // limit is needed, so a limit at that number leaves none.
        let lowest_free = std::fs::File::open("/dev/null").unwrap();
        let limit = std::os::fd::AsRawFd::as_raw_fd(&lowest_free) as u64;
        drop(lowest_free);
        nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, limit, limit)
            .unwrap();
        let outcome = runtime.block_on(probe(target, None, Duration::from_secs(1)));
        assert_eq!(
            outcome,
            Outcome::Down(Failure::Local(LocalFault::Descriptors))
        );
    }
}
