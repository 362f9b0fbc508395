//! The dataplane programmer: a thread of its own that makes the kernel's
//! load balancer hold the latest table the control loop gave it.
//!
//! The kernel can be slow to answer netlink (nftables at thousands of
//! services, a busy or wedged kernel; each read gives up after
//! [`ANSWER_TIMEOUT`](crate::dataplane::netlink::ANSWER_TIMEOUT)), so the
//! control loop never waits for it: it submits a table and goes on serving
//! checks, status and reloads. Tables submitted while one is being applied
//! replace each other (only the latest is applied: each is the whole
//! desired state), and every applied table's outcome comes back on a
//! channel, tagged with the submission it answers. Between tables it
//! answers questions of the kernel's state (the connections a drain waits
//! on), and, idle for long enough, applies the last table again against a
//! fresh read of the kernel (an outcome of the same generation).

use crate::dataplane::{self, Backend, Connections, Reconciler, ServiceKey, Table};
use crate::metrics::Metrics;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, error, info, warn};

/// How long a stop waits for the last table: one netlink answer's timeout,
/// and a little.
const SHUTDOWN_WAIT: Duration =
    Duration::from_secs(dataplane::netlink::ANSWER_TIMEOUT.as_secs() + 5);

/// A table to apply.
pub(super) struct Job {
    /// The services the kernel should hold.
    pub table: Table,
    /// How many configured services are left out of `table` (their VRRP
    /// instance is not MASTER), for the log.
    pub withheld: usize,
}

/// How applying a submission went.
#[derive(Debug)]
pub(super) struct Outcome {
    /// The submission applied; the ones before it that were replaced
    /// before their turn are answered by this one too.
    pub generation: u64,
    /// The backend that holds the table, once one is open.
    pub backend: Option<&'static str>,
    pub result: Result<(), dataplane::Error>,
}

/// The connections to each of `wanted` (a service and a destination).
struct Query {
    wanted: Vec<(ServiceKey, SocketAddr)>,
    reply: oneshot::Sender<Result<Vec<Connections>, String>>,
}

/// What the thread is given: the latest submission not yet taken, the
/// questions not yet answered, and whether to stop once the submission
/// is applied.
#[derive(Default)]
struct Inbox {
    latest: Option<(u64, Job)>,
    queries: Vec<Query>,
    closing: bool,
}

type Shared = Arc<(Mutex<Inbox>, Condvar)>;

/// The control loop's side of the thread.
pub(super) struct Programmer {
    shared: Shared,
    /// Closed when the thread ends (not joined: a stop does not wait for a
    /// kernel that never answers).
    ended: oneshot::Receiver<()>,
    submitted: u64,
}

impl Programmer {
    /// Starts the thread. The backend is chosen when it first has work
    /// (IPVS when the kernel has it, else nftables, unless `choice` forces
    /// one); the ownership record lives at `state`.
    pub(super) fn start(
        choice: Option<dataplane::Choice>,
        state: PathBuf,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<(Self, mpsc::UnboundedReceiver<Outcome>)> {
        let shared: Shared = Arc::default();
        let (outcomes, receiver) = mpsc::unbounded_channel();
        let inbox = shared.clone();
        let (end, ended) = oneshot::channel();
        // The backend is made on the thread that uses it, and never leaves.
        std::thread::Builder::new()
            .name("dataplane".into())
            .spawn(move || {
                let worker = Worker {
                    open: Box::new(move |state: &Path| {
                        Reconciler::new(dataplane::open_backend(choice)?, Some(state.to_path_buf()))
                    }),
                    state,
                    metrics,
                    reconciler: None,
                    last: None,
                };
                worker.run(&inbox, &outcomes);
                drop(end);
            })?;
        Ok((
            Self {
                shared,
                ended,
                submitted: 0,
            },
            receiver,
        ))
    }

    /// Hands `job` to the thread, replacing any submission it has not
    /// taken yet; returns the submission's generation.
    pub(super) fn submit(&mut self, job: Job) -> u64 {
        self.submitted += 1;
        let (inbox, ready) = &*self.shared;
        inbox.lock().unwrap_or_else(PoisonError::into_inner).latest = Some((self.submitted, job));
        ready.notify_one();
        self.submitted
    }

    /// Asks the thread for the connections the kernel holds to each of
    /// `wanted`; the answer comes on the receiver (an error if no backend
    /// is open yet, or the kernel could not tell).
    pub(super) fn connections(
        &self,
        wanted: Vec<(ServiceKey, SocketAddr)>,
    ) -> oneshot::Receiver<Result<Vec<Connections>, String>> {
        let (reply, answer) = oneshot::channel();
        let (inbox, ready) = &*self.shared;
        inbox
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .queries
            .push(Query { wanted, reply });
        ready.notify_one();
        answer
    }

    /// The generation of the last submission.
    pub(super) fn submitted(&self) -> u64 {
        self.submitted
    }

    /// Lets the thread apply what it was last given, then waits for it to
    /// end, but no longer than a kernel that does not answer is waited for
    /// (the kernel then keeps what it holds).
    pub(super) async fn shutdown(self) {
        {
            let (inbox, ready) = &*self.shared;
            inbox.lock().unwrap_or_else(PoisonError::into_inner).closing = true;
            ready.notify_one();
        }
        if tokio::time::timeout(SHUTDOWN_WAIT, self.ended)
            .await
            .is_err()
        {
            warn!(
                waited = ?SHUTDOWN_WAIT,
                "the dataplane was still being programmed at exit; the kernel keeps what it holds"
            );
        }
    }
}

/// Opens the backend and its reconciler, given the ownership record.
type Open = Box<dyn FnMut(&Path) -> Result<Reconciler<Box<dyn Backend>>, dataplane::Error> + Send>;

/// The thread's side: the reconciler, opened on first use.
struct Worker {
    open: Open,
    state: PathBuf,
    metrics: Arc<Metrics>,
    reconciler: Option<Reconciler<Box<dyn Backend>>>,
    /// The last table applied, applied again when idle once the kernel's
    /// table it was diffed against is [`REREAD`](dataplane::reconcile::REREAD) old, so
    /// that a reload never waits for a whole read of a large table.
    last: Option<(u64, Job)>,
}

impl Worker {
    fn run(mut self, shared: &Shared, outcomes: &mpsc::UnboundedSender<Outcome>) {
        let (inbox, ready) = &**shared;
        loop {
            let (latest, queries, refreshing) = {
                let mut inbox = inbox.lock().unwrap_or_else(PoisonError::into_inner);
                loop {
                    if inbox.latest.is_some() || !inbox.queries.is_empty() {
                        break (
                            inbox.latest.take(),
                            std::mem::take(&mut inbox.queries),
                            false,
                        );
                    }
                    if inbox.closing {
                        return;
                    }
                    let refresh = self
                        .last
                        .as_ref()
                        .and(self.reconciler.as_ref())
                        .and_then(Reconciler::stale_in);
                    match refresh {
                        // Idle and the last table's view of the kernel is
                        // old: apply that table again, which reads the
                        // kernel whole and repairs what was changed by hand.
                        Some(wait) if wait.is_zero() => break (self.last.take(), Vec::new(), true),
                        Some(wait) => {
                            inbox = ready
                                .wait_timeout(inbox, wait)
                                .unwrap_or_else(PoisonError::into_inner)
                                .0;
                        }
                        None => inbox = ready.wait(inbox).unwrap_or_else(PoisonError::into_inner),
                    }
                }
            };
            for query in queries {
                let answer = self.connections(&query.wanted);
                let _ = query.reply.send(answer);
            }
            let Some((generation, job)) = latest else {
                continue;
            };
            // A panic in a backend is this table's failure, not the
            // thread's end: the backend is opened afresh next time.
            let result =
                std::panic::catch_unwind(AssertUnwindSafe(|| self.apply(&job, refreshing)))
                    .unwrap_or_else(|_| {
                        self.reconciler = None;
                        Err(dataplane::Error::Panicked)
                    });
            if let Err(e) = &result {
                error!(generation, error = %e, "dataplane: applying the table failed");
            }
            self.last = Some((generation, job));
            let outcome = Outcome {
                generation,
                backend: self.reconciler.as_ref().map(|r| r.backend().name()),
                result,
            };
            if outcomes.send(outcome).is_err() {
                return;
            }
        }
    }

    /// The connections to each of `wanted`, from the open backend.
    fn connections(
        &mut self,
        wanted: &[(ServiceKey, SocketAddr)],
    ) -> Result<Vec<Connections>, String> {
        let Some(reconciler) = &mut self.reconciler else {
            return Err("the dataplane holds no table yet".into());
        };
        std::panic::catch_unwind(AssertUnwindSafe(|| {
            reconciler.backend_mut().connections(wanted)
        }))
        .unwrap_or(Err(dataplane::Error::Panicked))
        .map_err(|e| e.to_string())
    }

    /// Makes the kernel hold `job`'s table. A daemon without virtual
    /// servers opens no backend, unless an earlier run left services of
    /// ours to remove. `refreshing`: the table is the last one again, to
    /// compare with a fresh read of the kernel, so only a difference is
    /// news.
    fn apply(&mut self, job: &Job, refreshing: bool) -> Result<(), dataplane::Error> {
        if self.reconciler.is_none() {
            if job.table.is_empty() && !self.state.exists() {
                return Ok(());
            }
            let reconciler = (self.open)(&self.state)?;
            info!(backend = reconciler.backend().name(), "dataplane opened");
            self.reconciler = Some(reconciler);
        }
        let Some(reconciler) = &mut self.reconciler else {
            return Ok(());
        };
        let started = std::time::Instant::now();
        match reconciler.reconcile(&job.table) {
            Ok(report) => {
                self.metrics.dataplane_applied(&report);
                let took = started.elapsed();
                let changes = report.applied.len();
                if !refreshing {
                    info!(
                        backend = report.backend,
                        services = job.table.len(),
                        withheld = job.withheld,
                        changes,
                        foreign = report.foreign,
                        ?took,
                        "dataplane reconciled"
                    );
                } else if changes > 0 {
                    warn!(
                        backend = report.backend,
                        changes,
                        ?took,
                        "dataplane: the kernel's table had been changed outside the appliance; put back"
                    );
                } else {
                    debug!(
                        backend = report.backend,
                        ?took,
                        "dataplane: the kernel's table read again, in sync"
                    );
                }
                Ok(())
            }
            Err(e) => {
                self.metrics.dataplane_error(reconciler.backend().name());
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::fake::{Fake, service};

    /// The next outcome, within a time that fails the test rather than hang.
    fn next(receiver: &mut mpsc::UnboundedReceiver<Outcome>) -> Outcome {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(outcome) = receiver.try_recv() {
                return outcome;
            }
            assert!(std::time::Instant::now() < deadline, "no outcome in 10 s");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn an_idle_worker_reads_the_kernel_again_and_puts_back_what_was_changed() {
        let kernel = Arc::new(Mutex::new(Table::new()));
        let dir = tempfile::tempdir().unwrap();
        let shared: Shared = Arc::default();
        let (outcomes, mut receiver) = mpsc::unbounded_channel();
        let behind = kernel.clone();
        let state = dir.path().join("dataplane.json");
        let inbox = shared.clone();
        // The backend is made on the thread that uses it, as in start().
        let thread = std::thread::spawn(move || {
            let worker = Worker {
                open: Box::new(move |state: &Path| {
                    let backend: Box<dyn Backend> = Box::new(Fake::sharing(behind.clone()));
                    Ok(Reconciler::new(backend, Some(state.to_path_buf()))?
                        .reread_after(Duration::from_millis(200)))
                }),
                state,
                metrics: Arc::new(Metrics::new()),
                reconciler: None,
                last: None,
            };
            worker.run(&inbox, &outcomes);
        });
        let want: Table = [(service(80).key, service(80))].into();
        {
            let (inbox, ready) = &*shared;
            inbox.lock().unwrap().latest = Some((
                1,
                Job {
                    table: want.clone(),
                    withheld: 0,
                },
            ));
            ready.notify_one();
        }
        let first = next(&mut receiver);
        assert_eq!((first.generation, first.result.is_ok()), (1, true));
        assert_eq!(*kernel.lock().unwrap(), want);

        // Someone removes the service by hand; nothing is submitted. A
        // re-read already under way may have read the kernel before the
        // removal (a loaded machine runs this thread late): the next one
        // puts it back.
        kernel.lock().unwrap().clear();
        let mut put_back = false;
        for _ in 0..3 {
            let again = next(&mut receiver);
            assert_eq!((again.generation, again.result.is_ok()), (1, true));
            if *kernel.lock().unwrap() == want {
                put_back = true;
                break;
            }
        }
        assert!(put_back, "put back on a re-read");

        shared.0.lock().unwrap().closing = true;
        shared.1.notify_one();
        thread.join().unwrap();
    }
}
