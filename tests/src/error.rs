//! Errors of the harness's service helpers (the appliance daemon,
//! keepalived, nginx, curl): what failed, with the service's own output
//! when it helps.

use crate::netns;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A condition the test relies on did not hold, or a helper was
    /// misused (stopping what never started).
    #[error("{0}")]
    Check(String),
    #[error(transparent)]
    Netns(#[from] netns::Error),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{line}: not a timeline event: {source}", path.display())]
    Timeline {
        path: PathBuf,
        line: usize,
        #[source]
        source: serde_json::Error,
    },
    #[error("{}:{line}: wall clock {wall:?}: {source}", path.display())]
    Wall {
        path: PathBuf,
        line: usize,
        wall: String,
        #[source]
        source: humantime::TimestampError,
    },
    #[error("{service}: {what} did not happen within {within:?}\n--- its output ---\n{output}")]
    Timeout {
        service: String,
        what: String,
        within: Duration,
        output: String,
    },
    #[error("{service} exited ({status}) while {what}\n--- its output ---\n{output}")]
    Exited {
        service: String,
        what: String,
        status: std::process::ExitStatus,
        output: String,
    },
}

pub type Result<T> = std::result::Result<T, Error>;

/// An I/O error with what was being done.
pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}
