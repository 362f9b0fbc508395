//! `appliance status`: what the running daemon reports over its local Unix
//! socket, and both ends of that exchange. The protocol is one JSON request
//! line and one JSON response line per connection, typed by the structs
//! here (shared by the daemon and the command).

use super::Event;
use crate::check::decision::{DynamicWeight, Outcome};
use crate::check::runner::VsStatus;
use crate::clock::Instant;
use crate::vrrp::Priority;
use crate::vrrp::machine::State;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::io::{BufRead, BufReader, Read as _, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

/// The default socket, beside the dataplane's record.
pub const DEFAULT_SOCKET: &str = "/run/appliance/appliance.sock";
/// How long either end waits for the other.
const TIMEOUT: Duration = Duration::from_secs(5);
/// Longest request line read.
const MAX_REQUEST: u64 = 4096;

/// What a client asks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case")]
pub enum Request {
    Status,
}

/// What the daemon answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Response {
    Status(Status),
    Error { message: String },
}

/// The daemon's state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub node: String,
    /// The kernel load balancer programmed ("ipvs", "nftables"); none
    /// until the config has a virtual server.
    #[serde(default)]
    pub dataplane: Option<String>,
    pub instances: Vec<InstanceStatus>,
    pub virtual_servers: Vec<VirtualServerStatus>,
}

/// A VRRP instance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceStatus {
    pub name: String,
    pub vrid: u8,
    pub state: State,
    /// Effective priority (after tracking).
    pub priority: Priority,
    /// Configured priority.
    pub base_priority: Priority,
}

/// A virtual server and its real servers as the checker sees them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VirtualServerStatus {
    /// The kernel service: `TCP 10.0.0.100:80`, `FWM 5`.
    pub service: String,
    pub quorum_up: bool,
    pub sorry_server_active: bool,
    pub real_servers: Vec<RealServerStatus>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RealServerStatus {
    pub address: SocketAddr,
    pub alive: bool,
    pub weight: u32,
    pub checks: Vec<CheckStatus>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckStatus {
    /// keepalived's keyword: `TCP_CHECK`, `HTTP_GET`, `SSL_GET`, `MISC_CHECK`.
    pub kind: String,
    pub up: bool,
    /// The last run, if one completed.
    pub last: Option<LastCheck>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastCheck {
    /// Microseconds since the daemon started.
    pub at: Instant,
    pub up: bool,
    pub result: String,
}

/// A check's result in words, for the status and the timeline.
pub fn describe(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Up => "check passed".into(),
        Outcome::UpWeighted(DynamicWeight::Configured) => "check passed, configured weight".into(),
        Outcome::UpWeighted(DynamicWeight::Set(w)) => format!("check passed, weight {w}"),
        Outcome::Down(failure) => failure.to_string(),
    }
}

/// The status view of the checker's virtual servers; `service` names each.
pub fn virtual_servers(
    checker: Vec<VsStatus>,
    service: impl Fn(&VsStatus) -> String,
) -> Vec<VirtualServerStatus> {
    checker
        .into_iter()
        .map(|vs| VirtualServerStatus {
            service: service(&vs),
            quorum_up: vs.quorum_up,
            sorry_server_active: vs.sorry_active,
            real_servers: vs
                .servers
                .into_iter()
                .map(|rs| RealServerStatus {
                    address: rs.address,
                    alive: rs.alive,
                    weight: rs.weight,
                    checks: rs
                        .checks
                        .into_iter()
                        .map(|c| CheckStatus {
                            kind: c.kind.to_string(),
                            up: c.up,
                            last: c.last.map(|l| LastCheck {
                                at: l.at,
                                up: l.outcome.is_up(),
                                result: describe(&l.outcome),
                            }),
                        })
                        .collect(),
                })
                .collect(),
        })
        .collect()
}

/// ```text
/// node director
/// VRRP VI_1  vrid 51  MASTER  priority 100 (base 100)
/// TCP 10.0.0.100:80  quorum up
///   10.0.0.11:8080  UP  weight 1  TCP_CHECK up (at 3.000123s: check passed)
/// ```
impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "node {}", self.node)?;
        if let Some(dataplane) = &self.dataplane {
            writeln!(f, "dataplane {dataplane}")?;
        }
        for i in &self.instances {
            writeln!(
                f,
                "VRRP {}  vrid {}  {}  priority {} (base {})",
                i.name, i.vrid, i.state, i.priority, i.base_priority
            )?;
        }
        for vs in &self.virtual_servers {
            write!(
                f,
                "{}  quorum {}",
                vs.service,
                if vs.quorum_up { "up" } else { "down" }
            )?;
            if vs.sorry_server_active {
                f.write_str("  sorry server active")?;
            }
            writeln!(f)?;
            for rs in &vs.real_servers {
                let health = if rs.alive { "UP" } else { "DOWN" };
                write!(f, "  {}  {health}  weight {}", rs.address, rs.weight)?;
                for c in &rs.checks {
                    write!(f, "  {} {}", c.kind, if c.up { "up" } else { "down" })?;
                    match &c.last {
                        Some(last) => write!(f, " (at {}: {})", last.at, last.result)?,
                        None => f.write_str(" (not run yet)")?,
                    }
                }
                writeln!(f)?;
            }
        }
        Ok(())
    }
}

/// Asking the daemon failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("status socket {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("status socket {path}: bad answer: {source}")]
    Format {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("status socket {path}: the daemon says: {message}")]
    Refused { path: PathBuf, message: String },
}

/// Asks the daemon listening on `path` for its status.
pub fn query(path: &Path) -> Result<Status, Error> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut stream = std::os::unix::net::UnixStream::connect(path).map_err(io)?;
    stream.set_read_timeout(Some(TIMEOUT)).map_err(io)?;
    stream.set_write_timeout(Some(TIMEOUT)).map_err(io)?;
    let mut request = serde_json::to_string(&Request::Status).map_err(|source| Error::Format {
        path: path.to_path_buf(),
        source,
    })?;
    request.push('\n');
    stream.write_all(request.as_bytes()).map_err(io)?;
    let mut line = String::new();
    BufReader::new(stream.take(64 << 20))
        .read_line(&mut line)
        .map_err(io)?;
    match serde_json::from_str(&line) {
        Ok(Response::Status(status)) => Ok(status),
        Ok(Response::Error { message }) => Err(Error::Refused {
            path: path.to_path_buf(),
            message,
        }),
        Err(source) => Err(Error::Format {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Binds the daemon's socket, replacing a stale one left by a daemon that
/// died, and creating its directory.
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    UnixListener::bind(path)
}

/// Accepts clients; each one's request goes to the event loop as
/// [`Event::Status`] and its answer back to the client.
pub(super) async fn serve(listener: UnixListener, sender: mpsc::Sender<Event>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(answer(stream, sender.clone()));
            }
            Err(e) => {
                warn!(error = %e, "status socket: accept failed");
                tokio::time::sleep(super::SOCKET_ERROR_BACKOFF).await;
            }
        }
    }
}

async fn answer(stream: UnixStream, sender: mpsc::Sender<Event>) {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = tokio::io::BufReader::new(read.take(MAX_REQUEST));
    let response = match tokio::time::timeout(TIMEOUT, reader.read_line(&mut line)).await {
        Ok(Ok(_)) => match serde_json::from_str::<Request>(&line) {
            Ok(Request::Status) => {
                let (tx, rx) = oneshot::channel();
                if sender.send(Event::Status(tx)).await.is_err() {
                    return;
                }
                match rx.await {
                    Ok(status) => Response::Status(status),
                    Err(_) => return,
                }
            }
            Err(e) => Response::Error {
                message: format!("bad request: {e}"),
            },
        },
        Ok(Err(e)) => {
            debug!(error = %e, "status socket: read failed");
            return;
        }
        Err(_) => return,
    };
    let Ok(mut text) = serde_json::to_string(&response) else {
        return;
    };
    text.push('\n');
    if let Err(e) = write.write_all(text.as_bytes()).await {
        debug!(error = %e, "status socket: write failed");
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::check::decision::Failure;

    /// A master with one real server down (its TCP check timed out).
    pub(crate) fn sample() -> Status {
        Status {
            node: "director".into(),
            dataplane: Some("ipvs".into()),
            instances: vec![InstanceStatus {
                name: "VI_1".into(),
                vrid: 51,
                state: State::Master,
                priority: Priority::from_u8(100),
                base_priority: Priority::from_u8(100),
            }],
            virtual_servers: vec![VirtualServerStatus {
                service: "TCP 10.0.0.100:80".into(),
                quorum_up: true,
                sorry_server_active: false,
                real_servers: vec![RealServerStatus {
                    address: "10.0.0.11:8080".parse().unwrap(),
                    alive: false,
                    weight: 1,
                    checks: vec![CheckStatus {
                        kind: "TCP_CHECK".into(),
                        up: false,
                        last: Some(LastCheck {
                            at: Instant::from_micros(3_000_000),
                            up: false,
                            result: describe(&Outcome::Down(Failure::Timeout)),
                        }),
                    }],
                }],
            }],
        }
    }

    #[test]
    fn renders_as_text() {
        assert_eq!(
            sample().to_string(),
            "node director\n\
             dataplane ipvs\n\
             VRRP VI_1  vrid 51  MASTER  priority 100 (base 100)\n\
             TCP 10.0.0.100:80  quorum up\n\
             \x20 10.0.0.11:8080  DOWN  weight 1  TCP_CHECK down (at 3.000000s: timed out)\n"
        );
    }

    #[test]
    fn request_and_response_are_one_json_line_each() {
        assert_eq!(
            serde_json::to_string(&Request::Status).unwrap(),
            r#"{"request":"status"}"#
        );
        let response = Response::Status(sample());
        let text = serde_json::to_string(&response).unwrap();
        assert!(!text.contains('\n'));
        assert!(
            text.starts_with(r#"{"status":{"node":"director""#),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<Response>(&text).unwrap(), response);
    }

    #[tokio::test]
    async fn serves_a_client_over_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/appliance.sock");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "stale").unwrap();
        let listener = bind(&path).unwrap();
        let (sender, mut events) = mpsc::channel(4);
        tokio::spawn(serve(listener, sender));
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                if let Event::Status(reply) = event {
                    let _ = reply.send(sample());
                }
            }
        });
        let query_path = path.clone();
        let got = tokio::task::spawn_blocking(move || query(&query_path))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, sample());
        let missing = dir.path().join("none.sock");
        let err = query(&missing).unwrap_err().to_string();
        assert!(err.contains("none.sock"), "{err}");
    }
}
