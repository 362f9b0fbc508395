//! What every check type implements: a [`Probe`] is built once from its
//! check block (by its own module: [`tcp`](super::tcp),
//! [`http`](super::http), [`misc`](super::misc)) and started each time
//! the check is due. The runner knows probes only through this trait, so a
//! new check type is its module plus its config (the `Check` variant, and
//! one arm in [`build`]).

use super::decision::Outcome;
use super::runner::Error;
use super::{http, misc, tcp};
use crate::config::model::{Check, RealServer, VirtualServer};
use crate::script::check::Scripts;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::time::Duration;

/// One run of a probe, as the runner drives it.
pub enum Start {
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
pub trait Probe: Send + Sync {
    /// keepalived's name of the check (`TCP_CHECK`, `SSL_GET`...), which
    /// the metrics count by.
    fn kind(&self) -> &'static str;
    /// One run.
    fn start(&self) -> Start;
}

/// What building probes shares: how programs run, and one TLS client for
/// every SSL_GET.
pub struct Context<'a> {
    pub scripts: &'a Scripts,
    tls: Option<tokio_rustls::TlsConnector>,
}

impl<'a> Context<'a> {
    pub fn new(scripts: &'a Scripts) -> Self {
        Self { scripts, tls: None }
    }

    /// The TLS client SSL_GET probes share, built at the first one.
    pub fn tls(&mut self) -> Result<tokio_rustls::TlsConnector, Error> {
        Ok(match &self.tls {
            Some(connector) => connector.clone(),
            None => self.tls.insert(http::tls_connector()?).clone(),
        })
    }
}

/// The probe of `check`, a check of real server `rs` of `vs`.
pub fn build(
    check: &Check,
    vs: &VirtualServer,
    rs: &RealServer,
    context: &mut Context<'_>,
) -> Result<Box<dyn Probe>, Error> {
    Ok(match check {
        Check::Tcp(c) => Box::new(tcp::TcpProbe::new(c, rs)),
        Check::HttpGet(c) => Box::new(http::HttpProbe::new(c, vs, rs, None)?),
        Check::SslGet(c) => Box::new(http::HttpProbe::new(c, vs, rs, Some(context.tls()?))?),
        Check::Misc(c) => Box::new(misc::MiscProbe::new(c, vs, context.scripts)?),
    })
}
