//! IPVS settings beside the service table, kept as keepalived keeps them:
//! the connection timeouts (`lvs_timeouts`, set at start and when a reload
//! changes them), `lvs_sloppy_tcp` (the same way) and the connection sync
//! daemon (`lvs_sync_daemon`), whose
//! role follows one VRRP instance: master while it is MASTER, backup while
//! it is BACKUP or FAULT, none once it stops. Failures are logged, never
//! fatal: VRRP goes on without them.

use super::plan::LvsPlan;
use crate::dataplane::ipvs::{Ipvs, SyncRole, Timeouts};
use crate::vrrp::machine::State;
use tracing::{debug, error, info};

const SLOPPY_TCP: &str = "/proc/sys/net/ipv4/vs/sloppy_tcp";

pub(super) struct Lvs {
    plan: LvsPlan,
    /// Opened on first use, so that a config without these settings needs
    /// no IPVS.
    ipvs: Option<Ipvs>,
    /// The role of the sync daemon we started, if one runs.
    running: Option<SyncRole>,
}

/// The sync daemon role for the instance's state (keepalived's
/// ipvs_syncd_master / ipvs_syncd_backup, and a stop on shutdown).
fn role(state: Option<State>) -> Option<SyncRole> {
    match state? {
        State::Master => Some(SyncRole::Master),
        State::Backup | State::Fault => Some(SyncRole::Backup),
        State::Initialize => None,
    }
}

fn open(ipvs: &mut Option<Ipvs>) -> Option<&mut Ipvs> {
    if ipvs.is_none() {
        match Ipvs::open() {
            Ok(opened) => *ipvs = Some(opened),
            Err(e) => error!(error = %e, "IPVS unavailable: sync daemon and timeouts not set"),
        }
    }
    ipvs.as_mut()
}

impl Lvs {
    pub(super) fn new() -> Self {
        Self {
            plan: LvsPlan::default(),
            ipvs: None,
            running: None,
        }
    }

    /// Applies `plan` (at start, and after a reload) where it differs from
    /// the last one. A changed sync daemon restarts in the role `state`,
    /// the instance's current state, asks for.
    pub(super) fn configure(&mut self, plan: LvsPlan, state: Option<State>) {
        if plan.timeouts != self.plan.timeouts
            && plan.timeouts != Timeouts::default()
            && let Some(ipvs) = open(&mut self.ipvs)
        {
            match ipvs.set_timeouts(plan.timeouts) {
                Ok(()) => info!(timeouts = ?plan.timeouts, "IPVS timeouts set"),
                Err(e) => error!(error = %e, "setting the IPVS timeouts failed"),
            }
        }
        if plan.sloppy_tcp != self.plan.sloppy_tcp && open(&mut self.ipvs).is_some() {
            // Per network namespace, like the rest of IPVS; the file
            // exists once IPVS is loaded, which opening it ensured.
            let value = if plan.sloppy_tcp { "1\n" } else { "0\n" };
            match std::fs::write(SLOPPY_TCP, value) {
                Ok(()) => info!(on = plan.sloppy_tcp, "IPVS sloppy_tcp set"),
                Err(e) => error!(error = %e, file = SLOPPY_TCP, "setting IPVS sloppy_tcp failed"),
            }
        }
        let sync_changed = plan.sync_daemon != self.plan.sync_daemon;
        if sync_changed {
            match self.running {
                Some(_) => self.switch(None),
                None if plan.sync_daemon.is_some() => self.clear_stale(),
                None => {}
            }
        }
        self.plan = plan;
        if sync_changed {
            self.switch(role(state));
        }
    }

    /// VRRP instance `instance` entered `state`.
    pub(super) fn state_changed(&mut self, instance: &str, state: State) {
        if self
            .plan
            .sync_daemon
            .as_ref()
            .is_some_and(|s| s.instance == instance)
        {
            self.switch(role(Some(state)));
        }
    }

    /// Stops the running sync daemon and starts the one of role `want`.
    fn switch(&mut self, want: Option<SyncRole>) {
        if self.running == want {
            return;
        }
        let Some(sync) = &self.plan.sync_daemon else {
            return;
        };
        let Some(ipvs) = open(&mut self.ipvs) else {
            return;
        };
        if let Some(role) = self.running.take() {
            match ipvs.stop_sync_daemon(role) {
                Ok(()) => info!(?role, "IPVS sync daemon stopped"),
                Err(e) => error!(?role, error = %e, "stopping the IPVS sync daemon failed"),
            }
        }
        if let Some(role) = want {
            match ipvs.start_sync_daemon(&sync.daemon(role)) {
                Ok(()) => {
                    info!(?role, interface = %sync.interface, sync_id = sync.sync_id, "IPVS sync daemon started");
                    self.running = Some(role);
                }
                Err(e) => error!(?role, error = %e, "starting the IPVS sync daemon failed"),
            }
        }
    }

    /// Stops the sync daemons a run that died without stopping them left in
    /// the kernel (keepalived does the same at start); none running is the
    /// usual case, so failures only go to debug.
    fn clear_stale(&mut self) {
        let Some(ipvs) = open(&mut self.ipvs) else {
            return;
        };
        for role in [SyncRole::Master, SyncRole::Backup] {
            match ipvs.stop_sync_daemon(role) {
                Ok(()) => info!(?role, "stopped a sync daemon left by an earlier run"),
                Err(e) => debug!(?role, error = %e, "no stale sync daemon"),
            }
        }
    }
}
