//! The operator's requests over the control socket (`appliance enable|
//! disable|drain|weight`): each is recorded ([`admin::Settings`]), handed
//! to the checker, whose pools then change through the same reconcile as a
//! check's, and answered once the kernel holds the change. A drain keeps
//! the real server in with weight 0, asks the dataplane thread each second
//! how many connections it still has, and takes it out once none is active
//! (or its time ran out).
//!
//! Out of scheduling is not yet out of IPVS: a destination deleted while
//! the kernel still tracks connections to it (closed ones linger for the
//! FIN_WAIT/TIME_WAIT timeouts, 2 minutes by default) makes IPVS drop the
//! packets of those connections, and the SYN of a new connection from a
//! client port one of them used. So on IPVS a drained server stays in at
//! weight 0 until the kernel has forgotten its last connection
//! ([`Purpose::Linger`]), then goes.

use super::admin::{self, Target};
use super::{Daemon, Event, status::Change};
use crate::check::decision::{Admin, Mode};
use crate::dataplane::{Connections, Weight};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::oneshot;
use tracing::{info, warn};

/// How often a drain counts its server's connections.
pub(super) const DRAIN_POLL: Duration = Duration::from_secs(1);
/// The longest a drained server stays in IPVS for the connections the
/// kernel still tracks: beyond its default FIN_WAIT and TIME_WAIT (2 min).
const LINGER: Duration = Duration::from_secs(180);

type Reply = oneshot::Sender<Result<String, String>>;

/// A change answered once the dataplane applied submission `generation`.
pub(super) struct PendingChange {
    generation: u64,
    summary: String,
    reply: Option<Reply>,
}

/// What a drain is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Purpose {
    /// The operator's: disabled once no connection is active.
    Operator,
    /// Real servers a reload removed (`graceful_remove`): out once no
    /// connection is active.
    Leaving,
    /// Drained servers, out of scheduling, kept in IPVS at weight 0 until
    /// it tracks no connection to them at all.
    Linger,
}

/// A drain in progress.
pub(super) struct Drain {
    targets: Vec<Target>,
    purpose: Purpose,
    started: tokio::time::Instant,
    deadline: tokio::time::Instant,
    reply: Option<Reply>,
}

/// `before` with `change` made (a drain of a server already out leaves it
/// out).
fn changed(before: Admin, change: &Change) -> Admin {
    let mode = match change {
        Change::Enable => Mode::Enabled,
        Change::Disable => Mode::Disabled,
        Change::Drain { .. } if before.mode == Mode::Disabled => Mode::Disabled,
        Change::Drain { .. } => Mode::Draining,
        Change::Weight { .. } => before.mode,
    };
    let weight = match change {
        Change::Weight { weight } => *weight,
        _ => before.weight,
    };
    Admin { mode, weight }
}

/// The targets in words: `10.0.2.11:8080 of TCP 10.0.1.100:80, ...`.
fn names(targets: &[Target]) -> String {
    let names: Vec<String> = targets.iter().map(ToString::to_string).collect();
    names.join(", ")
}

impl Daemon {
    /// An operator's change of a real server, from the control socket.
    pub(super) async fn operator(
        &mut self,
        real_server: SocketAddr,
        service: Option<String>,
        change: Change,
        reply: Reply,
    ) {
        match self
            .operator_change(real_server, service.as_deref(), &change)
            .await
        {
            Err(message) => {
                warn!(%real_server, service, error = %message, "operator's change refused");
                let _ = reply.send(Err(message));
            }
            Ok((targets, summary, waits)) => match change {
                Change::Drain { timeout_ms } if !targets.is_empty() => {
                    let started = tokio::time::Instant::now();
                    self.drains.push(Drain {
                        targets,
                        purpose: Purpose::Operator,
                        started,
                        deadline: started + Duration::from_millis(timeout_ms),
                        reply: Some(reply),
                    });
                    self.drain_poll
                        .get_or_insert_with(|| tokio::time::interval(DRAIN_POLL));
                }
                _ => self.answer_when_applied(waits, summary, Some(reply)),
            },
        }
    }

    /// Records and applies `change` for the real servers it names. Returns
    /// the ones it changed, what it did, and the dataplane submission that
    /// holds it.
    async fn operator_change(
        &mut self,
        real_server: SocketAddr,
        service: Option<&str>,
        change: &Change,
    ) -> Result<(Vec<Target>, String, Option<u64>), String> {
        let Some(pools) = &self.pools else {
            return Err("the config has no virtual servers".into());
        };
        match change {
            Change::Weight { weight: Some(w) } if *w > Weight::MAX => {
                return Err(format!("weight {w} out of range: 0 to {}", Weight::MAX));
            }
            Change::Drain { timeout_ms: 0 } => {
                return Err("a drain needs a timeout longer than 0".into());
            }
            _ => {}
        }
        let found = admin::resolve(&self.servers, pools, real_server, service)?;
        let updates: Vec<(Target, Admin)> = found
            .iter()
            .map(|(_, t)| (*t, changed(self.settings.get(t), change)))
            .filter(|(t, admin)| self.settings.get(t) != *admin)
            .collect();
        let unchanged = found.len() - updates.len();
        let waits = self.set_admin(&updates).await?;
        let mut summary: Vec<String> = updates
            .iter()
            .map(|(t, admin)| {
                info!(real_server = %t.address, service = %t.service, setting = %admin::describe(*admin), "operator changed a real server");
                format!("{t}: {}", admin::describe(*admin))
            })
            .collect();
        if unchanged > 0 {
            summary.push(format!("{unchanged} already so"));
        }
        let targets = updates.into_iter().map(|(t, _)| t).collect();
        Ok((targets, summary.join("; "), waits))
    }

    /// Records `updates` (all or none), hands them to the checker and
    /// programs the table they make; the submission, if the table changed.
    async fn set_admin(&mut self, updates: &[(Target, Admin)]) -> Result<Option<u64>, String> {
        if updates.is_empty() {
            return Ok(None);
        }
        self.settings
            .set_all(updates)
            .map_err(|e| format!("the setting could not be recorded, so it is not applied: {e}"))?;
        let overlay = self.settings.overlay();
        let Some(pools) = &mut self.pools else {
            return Ok(None);
        };
        pools.set_admin(overlay);
        if let Some((checker, _)) = &self.checker {
            for (target, admin) in updates {
                let Some(vs) = admin::locate(&self.servers, pools, target) else {
                    continue;
                };
                if let Some(Some(pool)) = checker.admin(vs, target.address, *admin).await {
                    pools.set(vs, pool);
                }
            }
        }
        let table = pools.desired();
        Ok((table != self.table).then(|| self.program(table)))
    }

    /// Answers `reply` with `summary` once submission `waits` is applied
    /// (at once without one).
    fn answer_when_applied(&mut self, waits: Option<u64>, summary: String, reply: Option<Reply>) {
        match waits {
            Some(generation) => self.changes.push(PendingChange {
                generation,
                summary,
                reply,
            }),
            None => {
                if let Some(reply) = reply {
                    let _ = reply.send(Ok(summary));
                }
            }
        }
    }

    /// Answers the changes waiting for a submission up to `generation`,
    /// which the dataplane applied (or failed to, for `error`: the change
    /// stands and is retried with the table).
    pub(super) fn answer_changes(&mut self, generation: u64, error: Option<&str>) {
        let (answered, waiting) = std::mem::take(&mut self.changes)
            .into_iter()
            .partition(|c: &PendingChange| c.generation <= generation);
        self.changes = waiting;
        for change in answered {
            let answer = match error {
                None => Ok(change.summary),
                Some(e) => Err(format!(
                    "{}; but the dataplane failed to apply it (retried): {e}",
                    change.summary
                )),
            };
            if let Some(reply) = change.reply {
                let _ = reply.send(answer);
            }
        }
    }

    /// Starts draining `targets`, which a reload removed, for at most
    /// `timeout` (the pools keep them at weight 0 meanwhile).
    pub(super) fn drain_leaving(&mut self, targets: Vec<Target>, timeout: Duration) {
        self.start_drain(targets, Purpose::Leaving, timeout);
    }

    /// Starts a drain without a client waiting for it.
    fn start_drain(&mut self, targets: Vec<Target>, purpose: Purpose, timeout: Duration) {
        if targets.is_empty() {
            return;
        }
        let started = tokio::time::Instant::now();
        self.drains.push(Drain {
            targets,
            purpose,
            started,
            deadline: started + timeout,
            reply: None,
        });
        self.drain_poll
            .get_or_insert_with(|| tokio::time::interval(DRAIN_POLL));
    }

    /// Whether `target` of `drain` is still being drained: the operator's
    /// setting is still `draining`, or the server is still kept.
    fn still_draining(&self, drain: &Drain, target: &Target) -> bool {
        match drain.purpose {
            Purpose::Operator => self.settings.get(target).mode == Mode::Draining,
            Purpose::Leaving | Purpose::Linger => self
                .pools
                .as_ref()
                .is_some_and(|p| p.is_leaving(target.service, target.address)),
        }
    }

    /// Of `targets`, whose drain ended, the ones with connections the
    /// kernel would drop if they left the table ([`Connections::pinned`]):
    /// kept in at weight 0 ([`Purpose::Linger`]). Returns the others.
    fn linger(
        &mut self,
        targets: Vec<Target>,
        counts: &BTreeMap<Target, Connections>,
    ) -> Vec<Target> {
        let (tracked, gone): (Vec<Target>, Vec<Target>) = targets
            .into_iter()
            .partition(|t| counts.get(t).is_some_and(|c| c.pinned > 0));
        let mut kept = Vec::new();
        if let Some(pools) = &mut self.pools {
            for target in tracked {
                let destination = self
                    .table
                    .get(&target.service)
                    .and_then(|s| s.destinations.get(&target.address));
                if let Some(destination) = destination {
                    pools.add_leaving(target.service, destination.clone());
                    kept.push(target);
                }
            }
        }
        if !kept.is_empty() {
            info!(real_servers = %names(&kept), "kept in IPVS at weight 0 until it tracks none of their connections");
        }
        self.start_drain(kept, Purpose::Linger, LINGER);
        gone
    }

    /// Removed real servers whose drain ended leave the table.
    fn let_go(&mut self, targets: &[Target]) {
        let Some(pools) = &mut self.pools else {
            return;
        };
        for target in targets {
            pools.remove_leaving(target.service, target.address);
        }
        let table = pools.desired();
        if table != self.table {
            self.program(table);
        }
    }

    /// Each drain poll: counts the connections of every draining server on
    /// the dataplane thread (the answer comes as [`Event::Counted`]).
    pub(super) fn count_drained(&mut self) {
        if self.counting || self.drains.is_empty() {
            return;
        }
        let mut wanted: Vec<Target> = self.drains.iter().flat_map(|d| d.targets.clone()).collect();
        wanted.sort();
        wanted.dedup();
        let Some(programmer) = &self.programmer else {
            return;
        };
        let answer =
            programmer.connections(wanted.iter().map(|t| (t.service, t.address)).collect());
        let sender = self.sender.clone();
        self.counting = true;
        tokio::spawn(async move {
            let result = answer
                .await
                .unwrap_or_else(|_| Err("the dataplane thread stopped".into()));
            let _ = sender.send(Event::Counted { wanted, result }).await;
        });
    }

    /// The connections of the draining servers: a drain whose servers have
    /// no active connection left, or whose time ran out, takes them out;
    /// one whose servers the operator or a reload changed meanwhile ends.
    pub(super) async fn on_counted(
        &mut self,
        wanted: Vec<Target>,
        result: Result<Vec<Connections>, String>,
    ) {
        self.counting = false;
        let now = tokio::time::Instant::now();
        let (counts, error): (BTreeMap<Target, Connections>, Option<String>) = match result {
            Ok(counts) => (wanted.into_iter().zip(counts).collect(), None),
            Err(e) => (BTreeMap::new(), Some(e)),
        };
        for mut drain in std::mem::take(&mut self.drains) {
            let took = now.duration_since(drain.started);
            let draining: Vec<Target> = drain
                .targets
                .iter()
                .filter(|t| self.still_draining(&drain, t))
                .copied()
                .collect();
            if draining.is_empty() {
                if let Some(reply) = drain.reply.take() {
                    let _ = reply.send(Err(format!(
                        "drain of {} ended after {took:.1?}: changed meanwhile (by the operator or a reload)",
                        names(&drain.targets)
                    )));
                }
                continue;
            }
            // A lingering server waits for every connection the kernel
            // would drop without it; the others for the active ones.
            let linger = drain.purpose == Purpose::Linger;
            let active: Option<u64> = if error.is_some() {
                None
            } else {
                draining
                    .iter()
                    .map(|t| {
                        counts
                            .get(t)
                            .map(|c| u64::from(if linger { c.pinned } else { c.active }))
                    })
                    .sum()
            };
            if linger {
                if active == Some(0) || now >= drain.deadline {
                    info!(real_servers = %names(&draining), took = ?took, "out of IPVS, which tracks none of their connections or kept them long enough");
                    self.let_go(&draining);
                } else {
                    drain.targets = draining;
                    self.drains.push(drain);
                }
                continue;
            }
            let outcome = match active {
                Some(0) => format!(
                    "{} drained in {took:.1?}: no active connection left; now disabled",
                    names(&draining)
                ),
                _ if now >= drain.deadline => match (&error, active) {
                    (Some(e), _) => format!(
                        "{}: drain timed out after {took:.1?} (its connections could not be counted: {e}); now disabled",
                        names(&draining)
                    ),
                    (None, n) => format!(
                        "{}: drain timed out after {took:.1?} with {} active connection(s); now disabled",
                        names(&draining),
                        n.unwrap_or_default()
                    ),
                },
                _ => {
                    drain.targets = draining;
                    self.drains.push(drain);
                    continue;
                }
            };
            info!(real_servers = %names(&draining), outcome, "drain ended");
            let gone = self.linger(draining.clone(), &counts);
            if drain.purpose == Purpose::Leaving {
                self.let_go(&gone);
                continue;
            }
            let updates: Vec<(Target, Admin)> = draining
                .iter()
                .map(|t| (*t, changed(self.settings.get(t), &Change::Disable)))
                .collect();
            match self.set_admin(&updates).await {
                Ok(waits) => self.answer_when_applied(waits, outcome, drain.reply.take()),
                Err(e) => {
                    warn!(error = %e, "a drained real server could not be taken out");
                    if let Some(reply) = drain.reply.take() {
                        let _ = reply.send(Err(e));
                    }
                }
            }
        }
        if self.drains.is_empty() {
            self.drain_poll = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_change_keeps_what_it_does_not_touch() {
        let weighted = Admin {
            mode: Mode::Enabled,
            weight: Some(5),
        };
        let drain = Change::Drain { timeout_ms: 1000 };
        assert_eq!(changed(weighted, &drain).mode, Mode::Draining);
        assert_eq!(changed(weighted, &drain).weight, Some(5));
        assert_eq!(changed(weighted, &Change::Disable).weight, Some(5));
        let out = changed(weighted, &Change::Disable);
        // A server already out stays out when drained.
        assert_eq!(changed(out, &drain).mode, Mode::Disabled);
        assert_eq!(
            changed(out, &Change::Weight { weight: None }),
            Admin {
                mode: Mode::Disabled,
                weight: None,
            }
        );
        assert_eq!(changed(out, &Change::Enable), weighted);
    }
}
