//! What every check type implements: a [`Probe`] is built once from its
//! check block (by its own module: [`tcp`](super::tcp),
//! [`http`](super::http), [`misc`](super::misc), [`ping`](super::ping),
//! [`udp`](super::udp), [`dns`](super::dns), [`smtp`](super::smtp)) and
//! started each time the check is due. The runner knows probes only through this trait, so a
//! new check type is its module plus its config (the `Check` variant, and
//! one arm where the runner builds its probes).

use super::decision::Outcome;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::time::Duration;

/// One run of a probe, as the runner drives it.
pub(crate) enum Start {
    /// A future on the runner's task, with the outcome.
    Future(Pin<Box<dyn Future<Output = Outcome> + Send>>),
    /// A half-open TCP check: no future at all, the runner's SYN prober
    /// sends it with the tick's other SYNs.
    Syn {
        target: SocketAddr,
        bind: Option<IpAddr>,
        timeout: Duration,
    },
}

/// A check of one real server, built from its check block.
pub(crate) trait Probe: Send + Sync {
    /// keepalived's name of the check (`TCP_CHECK`, `SSL_GET`...), which
    /// the metrics count by.
    fn kind(&self) -> &'static str;
    /// One run.
    fn start(&self) -> Start;
}
