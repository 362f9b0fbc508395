//! A kernel for tests: a [`Backend`] over an in-memory table that changes
//! as the kernel's would (the core's `diff::apply`), shared so that a test
//! can change it behind the reconciler's back, and optionally failing the
//! n-th operation.

use super::diff::apply;
use super::{
    Backend, Choice, Connections, Destination, Error, Family, Forwarding, Op, Protocol, SchedFlags,
    Scheduler, ServiceKey, Snapshot, Table, VirtualService, Weight,
};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

pub(crate) struct Fake {
    pub(crate) kernel: Arc<Mutex<Table>>,
    /// The operation (counted from 0) that fails, if any.
    pub(crate) fail_at: Option<usize>,
    pub(crate) applied: usize,
    pub(crate) reads: usize,
}

impl Fake {
    /// A kernel holding `table`.
    pub(crate) fn new(table: Table) -> Self {
        Self::sharing(Arc::new(Mutex::new(table)))
    }

    /// A kernel whose table the caller keeps a handle on.
    pub(crate) fn sharing(kernel: Arc<Mutex<Table>>) -> Self {
        Self {
            kernel,
            fail_at: None,
            applied: 0,
            reads: 0,
        }
    }

    /// What the kernel holds now.
    pub(crate) fn table(&self) -> Table {
        self.kernel.lock().unwrap().clone()
    }
}

/// The error the fake's failures come as.
fn refused(reason: String) -> Error {
    Error::Unreadable {
        key: ServiceKey::Fwmark {
            family: Family::Ipv4,
            mark: 0,
        },
        reason,
    }
}

impl Backend for Fake {
    fn name(&self) -> &'static str {
        "fake"
    }
    fn capability(&self) -> Choice {
        Choice::Ipvs
    }
    fn read(&mut self) -> Result<Snapshot, Error> {
        self.reads += 1;
        Ok(Snapshot {
            table: self.table(),
            unreadable: Default::default(),
        })
    }
    fn connections(
        &mut self,
        wanted: &[(ServiceKey, SocketAddr)],
    ) -> Result<Vec<Connections>, Error> {
        Ok(vec![Connections::default(); wanted.len()])
    }
    fn apply(&mut self, op: &Op) -> Result<(), Error> {
        if self.fail_at == Some(self.applied) {
            return Err(refused("injected".into()));
        }
        self.applied += 1;
        apply(&mut self.kernel.lock().unwrap(), op).map_err(refused)
    }
}

/// TCP 10.0.1.100:`port`, round robin, with one NAT real server.
pub(crate) fn service(port: u16) -> VirtualService {
    let d = Destination {
        address: "10.0.2.11:80".parse().unwrap(),
        weight: Weight::new(1).unwrap(),
        forwarding: Forwarding::Nat,
        upper_threshold: 0,
        lower_threshold: 0,
    };
    VirtualService {
        key: ServiceKey::Socket {
            protocol: Protocol::Tcp,
            address: SocketAddr::from(([10, 0, 1, 100], port)),
        },
        scheduler: Scheduler::Rr,
        sched_flags: SchedFlags::default(),
        persistence: None,
        one_packet: false,
        masquerade: false,
        destinations: [(d.address, d)].into(),
    }
}
