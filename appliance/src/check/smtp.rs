//! SMTP_CHECK: keepalived's check_smtp.c conversation over TCP with the
//! real server (or `connect_ip` / `connect_port`), from `bindto` /
//! `bind_port` if set: the greeting must be 220, the answer to `HELO
//! helo_name` 250, and after `QUIT` any line ends it well. The connection
//! and each reply are bounded by `connect_timeout` (keepalived's per-read
//! timer) and each reply line by [`smtp::MAX_LINE`](crate::smtp::MAX_LINE).
//! Unlike keepalived, a multi-line greeting (`220-`) is taken whole: its
//! checker reads only the first line and fails it.

use super::decision::{Failure, Outcome};
use super::probe::{Probe, Start};
use crate::config::model::{RealServer, SmtpCheck};
use crate::smtp::{self, Client};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// An SMTP_CHECK.
pub struct SmtpProbe {
    target: SocketAddr,
    source: Option<SocketAddr>,
    timeout: Duration,
    helo: Arc<str>,
}

impl SmtpProbe {
    pub fn new(check: &SmtpCheck, rs: &RealServer) -> Self {
        let target = SocketAddr::new(
            check.connect_ip.unwrap_or(rs.address.ip()),
            check.connect_port.unwrap_or(rs.address.port()),
        );
        let any: IpAddr = match target {
            SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
            SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
        };
        let source = match (check.bindto, check.bind_port) {
            (None, None) => None,
            (ip, port) => Some(SocketAddr::new(ip.unwrap_or(any), port.unwrap_or(0))),
        };
        Self {
            target,
            source,
            timeout: check.connect_timeout,
            helo: smtp::helo(&check.helo_name).into(),
        }
    }
}

impl Probe for SmtpProbe {
    fn kind(&self) -> &'static str {
        "SMTP_CHECK"
    }

    fn start(&self) -> Start {
        let (target, source, timeout, helo) =
            (self.target, self.source, self.timeout, self.helo.clone());
        Start::Future(Box::pin(async move {
            probe(target, source, timeout, &helo).await
        }))
    }
}

/// One SMTP_CHECK run, `helo` being the whole HELO line.
pub async fn probe(
    target: SocketAddr,
    source: Option<SocketAddr>,
    timeout: Duration,
    helo: &str,
) -> Outcome {
    let stream = match super::tcp::connect_from(target, source, timeout).await {
        Ok(stream) => stream,
        Err(failure) => return Outcome::Down(failure),
    };
    let mut client = Client::new(stream, timeout);
    match conversation(&mut client, helo).await {
        Ok(()) => Outcome::Up,
        Err(error) => {
            tracing::debug!(%target, %error, "SMTP_CHECK failed");
            Outcome::Down(failure(&error))
        }
    }
}

async fn conversation<S>(client: &mut Client<S>, helo: &str) -> Result<(), smtp::Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    client.expect("greeting", 220).await?;
    client.command("HELO", helo, 250).await?;
    client.send(smtp::QUIT).await?;
    // keepalived takes any line after QUIT, even one that is no reply.
    match client.reply().await {
        Ok(_) | Err(smtp::Error::NotReply) => Ok(()),
        Err(error) => Err(error),
    }
}

/// What a failed conversation says about the server.
fn failure(error: &smtp::Error) -> Failure {
    match error {
        smtp::Error::Timeout => Failure::Timeout,
        smtp::Error::Unexpected { code, .. } => Failure::Status(*code),
        smtp::Error::Io(kind) => Failure::Connect(*kind),
        smtp::Error::LineTooLong
        | smtp::Error::NotReply
        | smtp::Error::Closed
        | smtp::Error::Injected => Failure::BadResponse,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A server on loopback that answers each connection with `script`'s
    /// replies, each after reading a line (the first at once).
    async fn serve(script: Vec<&'static [u8]>) -> (SocketAddr, tokio::task::JoinHandle<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut heard = Vec::new();
            for (i, reply) in script.into_iter().enumerate() {
                if i > 0 {
                    let mut buf = [0u8; 256];
                    let len = stream.read(&mut buf).await.unwrap_or(0);
                    heard.extend_from_slice(&buf[..len]);
                }
                if stream.write_all(reply).await.is_err() {
                    break;
                }
            }
            // Open until the client is done.
            let _ = stream.read(&mut [0u8; 64]).await;
            heard
        });
        (address, task)
    }

    #[test]
    fn the_conversation_decides() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let timeout = Duration::from_millis(500);
            let helo = smtp::helo("checker.example");
            let cases: [(Vec<&'static [u8]>, Outcome); 6] = [
                (
                    vec![b"220-mx\r\n220 ESMTP\r\n", b"250 hi\r\n", b"221 bye\r\n"],
                    Outcome::Up,
                ),
                (
                    vec![b"554 go away\r\n"],
                    Outcome::Down(Failure::Status(554)),
                ),
                (
                    vec![b"220 mx\r\n", b"554 no\r\n"],
                    Outcome::Down(Failure::Status(554)),
                ),
                (
                    vec![b"SSH-2.0-OpenSSH\r\n"],
                    Outcome::Down(Failure::BadResponse),
                ),
                (vec![&[b'x'; 2048]], Outcome::Down(Failure::BadResponse)),
                // A greeting that never ends its line.
                (vec![b"220 m"], Outcome::Down(Failure::Timeout)),
            ];
            for (script, expected) in cases {
                let (address, server) = serve(script).await;
                let outcome = probe(address, None, timeout, &helo).await;
                assert_eq!(outcome, expected);
                let heard = server.await.unwrap();
                if expected == Outcome::Up {
                    assert_eq!(heard, b"HELO checker.example\r\nQUIT\r\n");
                }
            }
        });
    }
}
