//! Reconcile: read the kernel, diff against the desired table, apply the
//! difference; and the record of which kernel services the appliance owns.
//!
//! Ownership: a service is the appliance's if its key is in the desired
//! table (it is created, or adopted when it already exists), or if the
//! appliance recorded it as its own in the state file (by default
//! `/run/appliance/dataplane.json`). Only those are ever changed or
//! deleted; services added by hand or by other tools are left alone.
//! `/run` is emptied at boot, like the kernel's IPVS table, so the record
//! lives exactly as long as what it describes; a daemon restart keeps
//! both and reconciles (nothing is flushed).
//!
//! The record is written before the kernel is touched (the union of the
//! old record and the desired keys) and again after (the desired keys): a
//! crash in between leaves every service the appliance may have created
//! recorded, so the next reconcile can still remove it.
//!
//! Reading the kernel's table costs a dump per service with IPVS (its
//! destinations come service by service), seconds at 10,000 services. So a
//! reconcile diffs against the table the last one left, as long as that
//! one applied cleanly and less than [`REREAD`] ago; a failure, or age,
//! reads the kernel again (which also undoes changes made by hand then).

use super::diff::{diff, side_by_side};
use super::{Backend, Error, Op, ServiceKey, Table};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long the table a reconcile left is trusted instead of reading the
/// kernel again.
pub(crate) const REREAD: Duration = Duration::from_secs(60);

/// Where the daemon keeps its ownership record.
pub(crate) const DEFAULT_STATE_PATH: &str = "/run/appliance/dataplane.json";

#[derive(Debug, Serialize, Deserialize)]
struct StateFile {
    /// Keys of the services the appliance created or adopted.
    owned: BTreeSet<ServiceKey>,
}

/// What a reconcile did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The backend's name.
    pub backend: &'static str,
    /// The operations carried out, in order.
    pub applied: Vec<Op>,
    /// Kernel services neither desired nor owned, left alone.
    pub foreign: usize,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.applied.is_empty() {
            write!(f, "{}: in sync", self.backend)?;
        } else {
            write!(f, "{}: {} change(s)", self.backend, self.applied.len())?;
            for op in &self.applied {
                write!(f, "\n  {op}")?;
            }
        }
        if self.foreign > 0 {
            write!(f, "\n  {} service(s) not ours left alone", self.foreign)?;
        }
        Ok(())
    }
}

/// Drives a [`Backend`] towards desired tables, remembering what it owns.
pub struct Reconciler<B> {
    backend: B,
    state_path: Option<PathBuf>,
    owned: BTreeSet<ServiceKey>,
    /// The kernel's table as the last clean reconcile left it, and when
    /// it was last read whole.
    known: Option<(super::Snapshot, Instant)>,
    /// How long that table is trusted: [`REREAD`] but in tests.
    reread: Duration,
}

impl<B: Backend> Reconciler<B> {
    /// A reconciler whose ownership record lives at `state_path` (read now
    /// if it exists); `None` keeps it in memory only, for tests.
    pub fn new(backend: B, state_path: Option<PathBuf>) -> Result<Self, Error> {
        let owned = match &state_path {
            Some(path) => load(path)?,
            None => BTreeSet::new(),
        };
        Ok(Self {
            backend,
            state_path,
            owned,
            known: None,
            reread: REREAD,
        })
    }

    /// Trusts the table a reconcile left for `reread` instead of
    /// [`REREAD`], for tests that cannot wait a minute.
    #[cfg(test)]
    pub(crate) fn reread_after(mut self, reread: Duration) -> Self {
        self.reread = reread;
        self
    }

    /// The services the appliance currently owns.
    pub fn owned(&self) -> &BTreeSet<ServiceKey> {
        &self.owned
    }

    /// How long the table the last reconcile left is still trusted; zero
    /// once the next reconcile will read the kernel whole, `None` when
    /// nothing is known (the next reconcile reads it anyway).
    pub fn stale_in(&self) -> Option<Duration> {
        self.known
            .as_ref()
            .map(|(_, read_at)| self.reread.saturating_sub(read_at.elapsed()))
    }

    /// The backend, to name it.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The backend, for operations outside the table (IPVS timeouts, sync
    /// daemon).
    pub fn backend_mut(&mut self) -> &mut B {
        &mut self.backend
    }

    /// Makes the kernel's managed services equal `desired`. An empty table
    /// removes every service the appliance owns and nothing else.
    pub fn reconcile(&mut self, desired: &Table) -> Result<Report, Error> {
        for service in desired.values() {
            if let Some(reason) = self.backend.refuse(service) {
                return Err(Error::Unsupported {
                    key: service.key,
                    backend: self.backend.name(),
                    reason,
                });
            }
        }
        let (snapshot, read_at) = match self.known.take() {
            Some((snapshot, at)) if at.elapsed() < self.reread => (snapshot, at),
            _ => (self.backend.read()?, Instant::now()),
        };
        for (key, reason) in &snapshot.unreadable {
            if desired.contains_key(key) || self.owned.contains(key) {
                return Err(Error::Unreadable {
                    key: *key,
                    reason: reason.clone(),
                });
            }
        }
        let ops = diff(desired, &snapshot.table, &self.owned);
        // Walked side by side: one lookup per kernel service not desired.
        let foreign = side_by_side(&snapshot.table, desired)
            .filter_map(|(key, kernel, want)| (kernel.is_some() && want.is_none()).then_some(key))
            .chain(snapshot.unreadable.keys())
            .filter(|k| !self.owned.contains(k))
            .count();
        // Usually nothing new is claimed: no set is built then (checked
        // by walking both in order).
        let mut owned = self.owned.iter().peekable();
        let claims_none = desired.keys().all(|key| {
            while owned.next_if(|o| *o < key).is_some() {}
            owned.next_if_eq(&key).is_some()
        });
        if !claims_none {
            let claimed = self.owned.iter().chain(desired.keys()).copied().collect();
            self.record(claimed)?;
        }
        if let Err((i, e)) = self.backend.apply_all(&ops) {
            let Some(op) = ops.get(i).cloned() else {
                return Err(e);
            };
            log_ops(self.backend.name(), &ops[..i]);
            tracing::warn!(backend = self.backend.name(), applied = i, %op, error = %e, "dataplane operation failed");
            return Err(Error::Apply {
                op,
                source: Box::new(e),
            });
        }
        log_ops(self.backend.name(), &ops);
        // What the kernel holds now, if every operation did what it says.
        let mut after = snapshot;
        if ops
            .iter()
            .all(|op| super::diff::apply(&mut after.table, op).is_ok())
        {
            self.known = Some((after, read_at));
        }
        if !self.owned.iter().eq(desired.keys()) || !self.recorded() {
            self.record(desired.keys().copied().collect())?;
        }
        Ok(Report {
            backend: self.backend.name(),
            applied: ops,
            foreign,
        })
    }

    /// Whether the record exists, if there is to be one.
    fn recorded(&self) -> bool {
        self.state_path.as_deref().is_none_or(Path::exists)
    }

    fn record(&mut self, owned: BTreeSet<ServiceKey>) -> Result<(), Error> {
        if owned == self.owned && self.recorded() {
            return Ok(());
        }
        if let Some(path) = &self.state_path {
            save(path, &owned)?;
        }
        self.owned = owned;
        Ok(())
    }
}

/// Operations logged one event each at info level; those past it (a
/// large table's first load is tens of thousands) at debug level, with
/// one info event counting them.
const LOGGED_OPS: usize = 100;

/// One event per operation carried out.
fn log_ops(backend: &str, ops: &[Op]) {
    for op in ops.iter().take(LOGGED_OPS) {
        tracing::info!(backend, %op, "dataplane");
    }
    if let Some(rest) = ops.get(LOGGED_OPS..).filter(|rest| !rest.is_empty()) {
        tracing::info!(
            backend,
            more = rest.len(),
            "dataplane: further operations logged at debug level"
        );
        for op in rest {
            tracing::debug!(backend, %op, "dataplane");
        }
    }
}

fn load(path: &Path) -> Result<BTreeSet<ServiceKey>, Error> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice::<StateFile>(&bytes)
            .map(|s| s.owned)
            .map_err(|source| Error::StateFormat {
                path: path.to_path_buf(),
                source,
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeSet::new()),
        Err(source) => Err(Error::State {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Writes the record atomically: a new temporary file (never one already
/// there, nor through a symlink planted in its place), synced, renamed
/// over the record, the directory synced, so a crash leaves the old record
/// or the new one and never half of one.
fn save(path: &Path, owned: &BTreeSet<ServiceKey>) -> Result<(), Error> {
    let text = serde_json::to_vec_pretty(&StateFile {
        owned: owned.clone(),
    })
    .map_err(|source| Error::StateFormat {
        path: path.to_path_buf(),
        source,
    })?;
    crate::state_file::write(path, &text).map_err(|source| Error::State {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::fake::{Fake, service as svc};
    use crate::dataplane::{Scheduler, VirtualService};

    #[test]
    fn the_record_is_never_written_through_a_planted_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        let record = dir.path().join("dataplane.json");
        for planted in [
            "dataplane.json.tmp".to_owned(),
            format!("dataplane.json.{}.tmp", std::process::id()),
        ] {
            std::os::unix::fs::symlink(&victim, dir.path().join(planted)).unwrap();
        }
        let _ = save(&record, &BTreeSet::new());
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
    }

    #[test]
    fn the_record_is_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let record = dir.path().join("dataplane.json");
        save(&record, &BTreeSet::new()).unwrap();
        save(&record, &BTreeSet::new()).unwrap();
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["dataplane.json"], "no temporary file stays");
        assert!(std::fs::read_to_string(&record).unwrap().contains("owned"));
    }

    fn fake(table: Table) -> Fake {
        Fake::new(table)
    }

    fn table(services: &[VirtualService]) -> Table {
        services.iter().map(|s| (s.key, s.clone())).collect()
    }

    #[test]
    fn the_kernel_is_read_once_while_reconciles_apply_cleanly() {
        let mut r = Reconciler::new(fake(Table::new()), None).unwrap();
        r.reconcile(&table(&[svc(80)])).unwrap();
        r.reconcile(&table(&[svc(80), svc(81)])).unwrap();
        let report = r.reconcile(&table(&[svc(81)])).unwrap();
        assert_eq!(report.applied.len(), 1, "{report}");
        assert_eq!(r.backend().reads, 1);
        assert_eq!(r.backend().table(), table(&[svc(81)]));
        // A failed operation: the next reconcile reads the kernel again.
        r.backend_mut().fail_at = Some(r.backend().applied);
        assert!(r.reconcile(&table(&[svc(82)])).is_err());
        r.backend_mut().fail_at = None;
        r.reconcile(&table(&[svc(82)])).unwrap();
        assert_eq!(r.backend().reads, 2);
        assert_eq!(r.backend().table(), table(&[svc(82)]));
    }

    #[test]
    fn ownership_survives_a_restart_through_the_state_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/dataplane.json");
        let by_hand = svc(8080);
        let mut r = Reconciler::new(
            fake(table(std::slice::from_ref(&by_hand))),
            Some(path.clone()),
        )
        .unwrap();
        let report = r.reconcile(&table(&[svc(80), svc(81)])).unwrap();
        assert_eq!(report.applied.len(), 4);
        assert_eq!(report.foreign, 1);
        let kernel = r.backend.table();

        // A restarted daemon with a config without port 81.
        let mut r = Reconciler::new(fake(kernel), Some(path.clone())).unwrap();
        assert_eq!(r.owned().len(), 2);
        let report = r.reconcile(&table(&[svc(80)])).unwrap();
        assert_eq!(report.applied, [Op::DeleteService(svc(81).key)]);
        assert_eq!(r.backend.table(), table(&[svc(80), by_hand.clone()]));

        // Stopping everything removes ours only.
        let report = r.reconcile(&Table::new()).unwrap();
        assert_eq!(report.applied, [Op::DeleteService(svc(80).key)]);
        assert_eq!(r.backend.table(), table(&[by_hand]));
        let saved: StateFile = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert!(saved.owned.is_empty());
    }

    #[test]
    fn what_the_backend_refuses_stops_the_reconcile_before_any_change() {
        let mut random = svc(80);
        random.scheduler = Scheduler::Random;
        let mut r = Reconciler::new(fake(Table::new()), None).unwrap();
        let err = r.reconcile(&table(&[svc(81), random])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "TCP 10.0.1.100:80: the fake dataplane cannot do it: lb_algo random needs dataplane = \"nftables\" in [global] (IPVS has no weighted random scheduler)"
        );
        assert!(r.backend.table().is_empty());
        assert!(r.owned().is_empty());
    }

    #[test]
    fn a_restart_in_sync_changes_nothing() {
        let want = table(&[svc(80)]);
        let mut r = Reconciler::new(fake(want.clone()), None).unwrap();
        let report = r.reconcile(&want).unwrap();
        assert!(report.applied.is_empty());
        assert_eq!(report.to_string(), "fake: in sync");
    }

    #[test]
    fn a_failure_midway_keeps_every_claimed_service_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dataplane.json");
        let mut backend = fake(Table::new());
        backend.fail_at = Some(1);
        let mut r = Reconciler::new(backend, Some(path.clone())).unwrap();
        let err = r.reconcile(&table(&[svc(80)])).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("add 10.0.2.11:80 to TCP 10.0.1.100:80: "),
            "{err}"
        );
        // The service was created; the record says it is ours.
        assert_eq!(r.backend.table().len(), 1);
        let mut r = Reconciler::new(fake(r.backend.table()), Some(path)).unwrap();
        let report = r.reconcile(&Table::new()).unwrap();
        assert_eq!(report.applied, [Op::DeleteService(svc(80).key)]);
    }

    #[test]
    fn a_corrupt_state_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dataplane.json");
        std::fs::write(&path, "{").unwrap();
        let err = Reconciler::new(fake(Table::new()), Some(path.clone()))
            .err()
            .unwrap();
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
    }
}
