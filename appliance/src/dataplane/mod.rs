//! The dataplane's I/O: the backends that program the kernel's load
//! balancer with the model of `appliance_core::dataplane` (re-exported
//! here: the model, its diff, what each backend can do, nftables' picks).
//!
//! - this module: the [`Backend`] trait a kernel interface implements, and
//!   [`open_backend`], which picks one;
//! - [`build`]: the model from the config's `virtual_server` blocks;
//! - [`reconcile`]: ownership (which kernel services are ours) and the
//!   read-diff-apply loop over a [`Backend`];
//! - [`ipvs`]: the IPVS backend over generic netlink;
//! - [`nftables`]: the nftables backend (NAT only) for kernels without
//!   IPVS.
//!
//! `docs/dataplane.md` describes the model and the ownership rule.

pub(crate) mod build;
#[cfg(test)]
pub(crate) mod fake;
pub mod ipvs;
pub mod netlink;
pub mod nftables;
pub(crate) mod reconcile;

pub use appliance_core::dataplane::*;
pub use build::{BuildError, from_config};
pub use reconcile::{Reconciler, Report};
use std::net::SocketAddr;

/// A dataplane failure: a backend's error, or the ownership record.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("IPVS: {0}")]
    Ipvs(#[from] ipvs::Error),
    /// Not a `#[source]`: the message already carries it.
    #[error("nftables: {0}")]
    Nftables(nftables::Error),
    #[error("{key}: the {backend} dataplane cannot do it: {reason}")]
    Unsupported {
        key: ServiceKey,
        backend: &'static str,
        reason: String,
    },
    #[error("dataplane state file {path}: {source}")]
    State {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("dataplane state file {path}: {source}")]
    StateFormat {
        path: std::path::PathBuf,
        source: serde_json::Error,
    },
    #[error("kernel service {key} is configured but cannot be read: {reason}")]
    Unreadable { key: ServiceKey, reason: String },
    #[error("{op}: {source}")]
    Apply { op: Op, source: Box<Error> },
    #[error("programming panicked (the log says where); the backend is opened anew next time")]
    Panicked,
}

impl From<nftables::Error> for Error {
    fn from(e: nftables::Error) -> Self {
        Self::Nftables(e)
    }
}

/// The connections to one destination, as IPVS counts them: `active` are
/// established TCP connections, `inactive` the rest (opening, closing,
/// UDP).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Connections {
    pub active: u32,
    pub inactive: u32,
    /// Those the kernel would stop forwarding if the destination left the
    /// table now. IPVS drops the packets of every connection it still
    /// tracks to a deleted destination, closed ones too (and the SYN of a
    /// new one from a client port they used); conntrack keeps its
    /// translation, so nftables has none.
    pub pinned: u32,
    /// What the kernel counted through it since it was added, and its
    /// rates: IPVS's own, or nftables' counting sets
    /// ([`nftables::traffic`]); none from a table made before those.
    pub traffic: Option<ipvs::listing::Traffic>,
}

/// A kernel load balancer the reconcile can program.
///
/// Calls block on the kernel's answers (each read gives up after
/// [`netlink::ANSWER_TIMEOUT`]); the daemon makes them on its dataplane
/// thread, never on a loop that anything else waits for.
pub trait Backend {
    /// Short name for logs: "ipvs", "nftables".
    fn name(&self) -> &'static str;
    /// What this backend can hold ([`capability`]).
    fn capability(&self) -> Choice;
    /// Why this backend cannot hold `service` exactly, if it cannot; the
    /// reconcile refuses a table with such a service before touching the
    /// kernel.
    fn refuse(&self, service: &VirtualService) -> Option<String> {
        let reasons: Vec<String> = capability::refusals(self.capability(), service)
            .into_iter()
            .map(|r| r.reason)
            .collect();
        (!reasons.is_empty()).then(|| reasons.join("; "))
    }
    /// The kernel's current table.
    fn read(&mut self) -> Result<Snapshot, Error>;
    /// Carry out one operation.
    fn apply(&mut self, op: &Op) -> Result<(), Error>;
    /// The connections the kernel holds to each of `wanted` (a service and
    /// one of its destinations), in the same order: what a drain waits on.
    fn connections(
        &mut self,
        wanted: &[(ServiceKey, SocketAddr)],
    ) -> Result<Vec<Connections>, Error>;
    /// Carry out `ops` in order, stopping at the first that fails (its
    /// index and error). A backend may send them without waiting for each
    /// answer; this one waits.
    fn apply_all(&mut self, ops: &[Op]) -> Result<(), (usize, Error)> {
        for (i, op) in ops.iter().enumerate() {
            self.apply(op).map_err(|e| (i, e))?;
        }
        Ok(())
    }
}

impl<B: Backend + ?Sized> Backend for Box<B> {
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn capability(&self) -> Choice {
        (**self).capability()
    }
    fn read(&mut self) -> Result<Snapshot, Error> {
        (**self).read()
    }
    fn apply(&mut self, op: &Op) -> Result<(), Error> {
        (**self).apply(op)
    }
    fn connections(
        &mut self,
        wanted: &[(ServiceKey, SocketAddr)],
    ) -> Result<Vec<Connections>, Error> {
        (**self).connections(wanted)
    }
    fn apply_all(&mut self, ops: &[Op]) -> Result<(), (usize, Error)> {
        (**self).apply_all(ops)
    }
}

/// The backend `choice` names, or without one IPVS when the kernel has it
/// (its generic netlink family resolves) and nftables otherwise; logs
/// which. Opens it in the calling thread's network namespace.
pub fn open_backend(choice: Option<Choice>) -> Result<Box<dyn Backend>, Error> {
    let backend: Box<dyn Backend> = match choice {
        Some(Choice::Ipvs) => Box::new(ipvs::Ipvs::open()?),
        Some(Choice::Nftables) => Box::new(nftables::Nftables::open()?),
        None => match ipvs::Ipvs::open() {
            Ok(ipvs) => Box::new(ipvs),
            Err(ipvs::Error::NotAvailable) => {
                tracing::info!("the kernel has no IPVS: using nftables");
                Box::new(nftables::Nftables::open()?)
            }
            Err(e) => return Err(e.into()),
        },
    };
    tracing::info!(
        backend = backend.name(),
        chosen = choice.is_some(),
        "dataplane"
    );
    Ok(backend)
}
