//! Reloads: SIGHUP or `appliance reload` reads the config again off the
//! control loop, applies what changed (VRRP units, virtual servers and
//! their checks, network settings) and answers with what changed and what
//! failed. A reload that changed the kernel's table is answered once the
//! dataplane thread has applied it; the control loop goes on meanwhile.

use super::admin::{self, Target};
use super::{Daemon, Error, Pools, bgp, hostname, load, plan, status, vrrp};
use crate::check::decision::VsId;
use crate::check::runner;
use crate::config::Config;
use crate::config::model::{Bgp, VirtualServer};
use crate::metrics::ReloadOutcome;
use std::sync::Arc;
use tokio::sync::oneshot;
use tracing::{error, info, warn};

/// What a reload applied, what failed, and the dataplane submission whose
/// outcome it waits for.
pub(super) struct Applied {
    changed: Vec<String>,
    failed: Vec<String>,
    waits: Option<u64>,
}

/// A reload applied but for its table, which the dataplane thread has not
/// applied yet: its answer waits for the outcome of `generation`.
pub(super) struct PendingReload {
    generation: u64,
    started: std::time::Instant,
    changed: Vec<String>,
    failed: Vec<String>,
    reply: Option<oneshot::Sender<Result<String, String>>>,
}

impl Daemon {
    /// SIGHUP or `appliance reload`: [`Self::apply_reload`], told to the
    /// service manager and kept for `appliance status`. A reload that
    /// changed the table is answered once the dataplane thread has applied
    /// it; the loop goes on meanwhile.
    pub(super) async fn reload(&mut self, reply: Option<oneshot::Sender<Result<String, String>>>) {
        self.systemd.reloading();
        let started = std::time::Instant::now();
        match self.apply_reload().await {
            Err(e) => {
                error!(config = %self.options.config.display(), error = %e, "reload rejected; the running config stays");
                self.finish_reload(Err(e), reply, started);
            }
            Ok(applied) => match applied.waits {
                Some(generation) => self.reloads.push(PendingReload {
                    generation,
                    started,
                    changed: applied.changed,
                    failed: applied.failed,
                    reply,
                }),
                None => self.finish_reload(Ok((applied.changed, applied.failed)), reply, started),
            },
        }
    }

    /// Answers the reloads waiting for a dataplane submission up to
    /// `generation`, which the dataplane thread applied (or failed to, for
    /// `error`).
    pub(super) fn answer_reloads(&mut self, generation: u64, error: Option<&str>) {
        let (answered, waiting) = std::mem::take(&mut self.reloads)
            .into_iter()
            .partition(|r| r.generation <= generation);
        self.reloads = waiting;
        for mut reload in answered {
            reload
                .failed
                .extend(error.map(|e| format!("dataplane: {e}")));
            self.finish_reload(
                Ok((reload.changed, reload.failed)),
                reload.reply,
                reload.started,
            );
        }
    }

    /// Ends a reload: what changed and what failed to apply (or why the
    /// config was rejected) goes to the log, `appliance status`, the
    /// service manager and the client that asked.
    fn finish_reload(
        &mut self,
        outcome: Result<(Vec<String>, Vec<String>), Error>,
        reply: Option<oneshot::Sender<Result<String, String>>>,
        started: std::time::Instant,
    ) {
        let kind = match &outcome {
            Ok((_, failed)) if failed.is_empty() => ReloadOutcome::Applied,
            Ok(_) => ReloadOutcome::Partial,
            Err(_) => ReloadOutcome::Rejected,
        };
        self.metrics.reload_done(kind, started.elapsed());
        let outcome = outcome.and_then(|(changed, failed)| {
            if failed.is_empty() {
                let summary = if changed.is_empty() {
                    "config unchanged".into()
                } else {
                    changed.join(", ")
                };
                info!(instances = self.instances().len(), %summary, "reloaded");
                Ok(summary)
            } else {
                warn!(instances = self.instances().len(), failed = %failed.join("; "), "reloaded in part");
                Err(Error::PartialReload(failed.join("; ")))
            }
        });
        let outcome = outcome.map_err(|e| e.to_string());
        self.last_reload = Some(status::ReloadStatus {
            at: status::wall_now(),
            applied: outcome.is_ok(),
            message: match &outcome {
                Ok(summary) | Err(summary) => summary.clone(),
            },
        });
        // The service manager hears the reload is over once none waits.
        if self.reloads.is_empty() {
            let status = self.status_line();
            self.systemd.ready(status);
        }
        if let Some(reply) = reply {
            let _ = reply.send(outcome);
        }
    }

    /// Loads the config again and applies it if it is valid, returning
    /// what changed. Units whose plan is unchanged keep running untouched;
    /// a lone instance whose only change is its priority gets the new
    /// priority; anything else that changed stops (resigning if master) and
    /// starts anew. A part that fails to apply is logged and the rest goes
    /// on; the reload then reports each failed part.
    async fn apply_reload(&mut self) -> Result<Applied, Error> {
        // Everything the new config implies is built before anything is
        // applied, so an invalid part rejects the whole reload. Off this
        // loop: a large config takes a while to read.
        let path = self.options.config.clone();
        let loaded = tokio::task::spawn_blocking(move || {
            let (c, scripts) = load(&path).map_err(Error::Config)?;
            let plan = plan::plan(&c, &scripts, &hostname())?;
            let pools = Pools::new(&c.virtual_server, &c.virtual_server_group)?;
            Ok((c, scripts, plan, pools))
        })
        .await
        .unwrap_or_else(|e| {
            Err(Error::Io {
                what: "reading the config".into(),
                source: std::io::Error::other(e),
            })
        });
        let (config, scripts, new, pools) = loaded?;
        self.alerts
            .configure(&config, &new.node, &super::hostname());
        let mut failed = Vec::new();
        let mut waits = None;
        if let Err(e) = crate::net::setup::apply(&config.network).await {
            error!(error = %e, "reload: applying the network settings failed");
            failed.push(format!("network: {e}"));
        }
        if config.global.metrics_listen != self.metrics_listen {
            warn!(
                running = ?self.metrics_listen,
                configured = ?config.global.metrics_listen,
                "reload: metrics_listen changed; the endpoint moves at the next restart"
            );
        }
        if self.status_page.swap(
            config.global.status_page,
            std::sync::atomic::Ordering::Relaxed,
        ) != config.global.status_page
        {
            info!(
                on = config.global.status_page,
                "reload: status page turned {}",
                if config.global.status_page {
                    "on"
                } else {
                    "off"
                }
            );
        }
        if let Some(fifos) = &self.fifos
            && !fifos.same_settings(&config.global)
        {
            warn!("reload: the notify FIFOs changed; they move at the next restart");
        }
        let mut changed = Vec::new();
        // A program's user is part of the checker's work as much as the
        // servers are.
        if config.virtual_server != self.servers
            || config.virtual_server_group != self.groups
            || scripts != *self.scripts
        {
            // A virtual server whose block did not change keeps its checks'
            // state and its pool: no check restarts, no failed server back
            // in. Changed programs' users change every check's work.
            let carry = if scripts == *self.scripts {
                carried(&self.servers, &config.virtual_server)
            } else {
                vec![None; config.virtual_server.len()]
            };
            let mut pools = pools;
            if let Some(previous) = &self.pools {
                pools.carry(previous, &carry);
                // The operator's settings of servers the config changed
                // give way to it.
                let old = (self.servers.as_slice(), previous);
                if let Err(e) = self.settings.keep(old, (&config.virtual_server, &pools)) {
                    failed.push(format!("operator's settings: {e}"));
                }
            }
            pools.set_admin(self.settings.overlay());
            let leaving = self.leaving(&config, &mut pools);
            if !leaving.is_empty() {
                changed.push(format!(
                    "{} removed real server(s) drain first (graceful_remove)",
                    leaving.len()
                ));
            }
            self.scripts = Arc::new(scripts);
            let kept = carry.iter().filter(|c| c.is_some()).count();
            changed.push(format!(
                "virtual servers reloaded ({}, {kept} unchanged kept their checks)",
                config.virtual_server.len()
            ));
            self.servers = config.virtual_server.clone();
            self.groups = config.virtual_server_group.clone();
            waits = Some(self.program(pools.desired()));
            if let Some(timeout) = config.global.graceful_remove {
                self.drain_leaving(leaving, timeout);
            }
            failed.extend(self.reload_checks(&config, pools, carry).await);
        } else if self.dataplane_fault.is_some() || self.checker_fault.is_some() {
            // Unchanged, but not all running: a reload is a retry.
            waits = self.repair();
            failed.extend(
                self.checker_fault
                    .iter()
                    .map(|e| format!("health checker: {e}")),
            );
        }
        changed.extend(self.reload_bgp(config.bgp.as_ref()).await);
        let vrrp_pending = self
            .vrrp
            .as_ref()
            .is_some_and(|v| !v.snapshot().pending.is_empty());
        let vrrp_changed = new != self.plan;
        // `fifo_write_vrrp_states_on_reload` asks the driver for the
        // states at every reload, changed or not.
        if !vrrp_changed && !vrrp_pending && !new.fifo_states_on_reload {
            info!("reload: VRRP unchanged");
        } else {
            let outcome = match &self.vrrp {
                Some(vrrp) => vrrp.reload(new.clone()).await,
                None => vrrp::ReloadOutcome::default(),
            };
            self.plan = new;
            let state = self.plan.lvs.sync_daemon.as_ref().and_then(|sync| {
                self.instances()
                    .into_iter()
                    .find(|i| i.name == sync.instance)
                    .map(|i| i.state)
            });
            self.lvs.configure(self.plan.lvs.clone(), state);
            failed.extend(outcome.failed.iter().cloned());
            for (count, what) in [
                (outcome.reprioritised, "given a new priority"),
                (outcome.readdressed, "given new VIPs in place"),
                (outcome.stopped, "stopped"),
                (outcome.started, "started"),
            ] {
                if count > 0 {
                    changed.push(format!("{count} VRRP unit(s) {what}"));
                }
            }
            if changed.is_empty() && vrrp_changed {
                changed.push("VRRP settings changed".into());
            }
        }
        Ok(Applied {
            changed,
            failed,
            waits,
        })
    }

    /// The new `[bgp]`: a change of `announce` alone keeps the sessions;
    /// any other change starts them again (the routers see this director
    /// leave and come back). Returns what changed.
    async fn reload_bgp(&mut self, settings: Option<&Bgp>) -> Option<String> {
        let running = self.bgp.as_ref().map(|s| s.settings().clone());
        if running.as_ref() == settings {
            return None;
        }
        let what = match (&mut self.bgp, settings) {
            (Some(speaker), Some(settings)) if speaker.can_keep(settings) => {
                speaker.take_settings(settings);
                "BGP announcements changed"
            }
            (_, settings) => {
                if let Some(speaker) = self.bgp.take() {
                    speaker.stop().await;
                }
                self.bgp = settings.map(bgp::Speaker::start);
                match settings {
                    Some(_) if running.is_some() => "BGP sessions restarted",
                    Some(_) => "BGP speaker started",
                    None => "BGP speaker stopped",
                }
            }
        };
        info!("reload: {what}");
        self.announce_servable();
        Some(what.into())
    }

    /// With `graceful_remove`, the real servers the kernel holds (or a
    /// previous reload's drain still keeps) that `config` removed from a
    /// virtual server it keeps: `pools` keeps them at weight 0, and the
    /// ones new to draining are returned. Without it, none.
    fn leaving(&self, config: &Config, pools: &mut Pools) -> Vec<Target> {
        if config.global.graceful_remove.is_none() {
            return Vec::new();
        }
        let held = self
            .table
            .iter()
            .flat_map(|(key, service)| service.destinations.values().map(move |d| (*key, d)));
        let kept = self.pools.iter().flat_map(|p| p.leaving());
        let mut new = Vec::new();
        for (key, destination) in held.chain(kept) {
            let target = Target {
                service: key,
                address: destination.address,
            };
            if !pools.serves(&key)
                || admin::known(&config.virtual_server, pools, &target)
                || pools.is_leaving(key, destination.address)
            {
                continue;
            }
            let draining_already = self
                .pools
                .as_ref()
                .is_some_and(|p| p.is_leaving(key, destination.address));
            pools.add_leaving(key, destination.clone());
            if !draining_already {
                new.push(target);
            }
        }
        new
    }

    /// Reload of changed virtual servers: the checker starts anew on them
    /// (their table was submitted) and continues the `carry`ed ones.
    /// Returns what failed.
    async fn reload_checks(
        &mut self,
        config: &Config,
        pools: Pools,
        carry: Vec<Option<VsId>>,
    ) -> Vec<String> {
        let mut failed = Vec::new();
        let mut kept = Vec::new();
        for from in carry.iter().flatten() {
            let index = from.0 as usize;
            if kept.len() <= index {
                kept.resize(index + 1, false);
            }
            kept[index] = true;
        }
        let resume = self
            .hand_over_checks(kept)
            .await
            .map(|checker| runner::Resume { checker, carry });
        if let Err(e) = self.start_checks(config, pools, resume) {
            error!(error = %e, "reload: the health checker could not start");
            failed.push(e.to_string());
        }
        failed
    }
}

/// For each of the `new` virtual servers, the one of `old` it continues:
/// the first not yet taken whose block is the same.
fn carried(old: &[VirtualServer], new: &[VirtualServer]) -> Vec<Option<VsId>> {
    let mut taken = vec![false; old.len()];
    new.iter()
        .map(|vs| {
            let index = old
                .iter()
                .zip(taken.iter())
                .position(|(o, taken)| !taken && o == vs)?;
            taken[index] = true;
            Some(VsId(u32::try_from(index).ok()?))
        })
        .collect()
}
