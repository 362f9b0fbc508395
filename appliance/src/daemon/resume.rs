//! A master that comes back from a restart (a crash, `kill -9`, an upgrade
//! to a new binary) before its backups' Master_Down_Interval ran out
//! resumes as MASTER at once, so the VIP never moves and no backup flaps.
//! The control loop records which instances are MASTER, and that it is
//! alive, once a second (or each advert interval, if shorter) in the state
//! directory (`vrrp.json`); a clean stop
//! (which resigns) removes the record. At start, an instance recorded
//! MASTER less than its Master_Down_Interval ago resumes
//! ([`InstanceConfig::resume_master`](crate::vrrp::machine::InstanceConfig)).
//! Sync-group members start in BACKUP as always: their group decides.

use super::plan::{Plan, UnitPlan};
use crate::vrrp::machine::master_down_interval;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tracing::{debug, info, warn};

/// How often the record says the daemon is alive: every second, or every
/// advert interval if one is shorter (a 100 ms instance's backups wait
/// only 360 ms).
pub(super) fn period(plan: &Plan) -> Duration {
    plan.units
        .iter()
        .flat_map(|u| u.instances())
        .map(|i| Duration::from_micros(i.machine.adver_int.as_micros()))
        .fold(Duration::from_secs(1), Duration::min)
}

/// The record.
#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
struct Record {
    /// When the daemon last wrote it, in milliseconds since the epoch.
    alive_ms: u64,
    /// The instances that were MASTER then.
    masters: Vec<String>,
}

/// Where the record lives in `state_dir`.
pub(super) fn path(state_dir: &Path) -> PathBuf {
    state_dir.join("vrrp.json")
}

fn millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Records `masters` as MASTER now, or removes the record when there are
/// none. A failure is logged: the record only shortens a restart's outage.
pub(super) fn record(path: &Path, masters: &[String]) {
    let outcome = if masters.is_empty() {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    } else {
        let record = Record {
            alive_ms: millis(SystemTime::now()),
            masters: masters.to_vec(),
        };
        serde_json::to_vec(&record)
            .map_err(std::io::Error::other)
            .and_then(|text| crate::state_file::write(path, &text))
    };
    if let Err(e) = outcome {
        warn!(record = %path.display(), error = %e, "recording the VRRP states failed");
    }
}

/// `plan` with the instances that were MASTER before a restart, less than
/// their Master_Down_Interval before `now`, set to resume as MASTER.
pub(super) fn apply(plan: &Plan, path: &Path, now: SystemTime) -> Plan {
    let mut plan = plan.clone();
    let record = match std::fs::read(path) {
        Ok(bytes) => match serde_json::from_slice::<Record>(&bytes) {
            Ok(record) => record,
            Err(e) => {
                warn!(record = %path.display(), error = %e, "VRRP state record unreadable; every instance starts as configured");
                return plan;
            }
        },
        Err(_) => return plan,
    };
    let gone = Duration::from_millis(millis(now).saturating_sub(record.alive_ms));
    for unit in &mut plan.units {
        let UnitPlan::Solo(instance) = unit else {
            continue;
        };
        let machine = &mut instance.machine;
        if !record.masters.contains(&machine.name) {
            continue;
        }
        let bound = master_down_interval(machine.version, machine.priority, machine.adver_int);
        if gone < bound {
            info!(instance = %machine.name, gone = ?gone, bound = ?bound, "was master until a restart; resuming as master");
            machine.resume_master = true;
        } else {
            debug!(instance = %machine.name, gone = ?gone, bound = ?bound, "was master, gone too long to resume");
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Format, load_str};

    const CONF: &str = "vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 51\n  \
        priority 100\n  advert_int 1\n  virtual_ipaddress {\n    10.0.0.100\n  }\n}\n\
        vrrp_instance VI_2 {\n  interface eth0\n  virtual_router_id 52\n  \
        priority 100\n  advert_int 1\n  virtual_ipaddress {\n    10.0.0.101\n  }\n}\n";

    fn plan() -> Plan {
        let config = load_str(Path::new("k.conf"), CONF, Format::Keepalived).unwrap();
        super::super::plan::plan(&config, &Default::default(), "d").unwrap()
    }

    fn resumed(plan: &Plan) -> Vec<&str> {
        plan.units
            .iter()
            .flat_map(|u| u.instances())
            .filter(|i| i.machine.resume_master)
            .map(|i| i.name())
            .collect()
    }

    #[test]
    fn a_master_resumes_only_within_its_master_down_interval() {
        let dir = tempfile::tempdir().unwrap();
        let path = path(dir.path());
        let plan = plan();
        assert!(resumed(&apply(&plan, &path, SystemTime::now())).is_empty());
        // The record's time is between these two, however slow the write.
        let before = SystemTime::now();
        record(&path, &["VI_1".to_string()]);
        let after = SystemTime::now();
        // VI_1's Master_Down_Interval: 3 × 1 s + (256 − 100) / 256 s.
        assert_eq!(resumed(&apply(&plan, &path, after)), ["VI_1"]);
        let later = before + Duration::from_millis(3_500);
        assert_eq!(resumed(&apply(&plan, &path, later)), ["VI_1"]);
        let too_late = after + Duration::from_millis(3_700);
        assert!(resumed(&apply(&plan, &path, too_late)).is_empty());
        // A clean stop (no master left) removes the record.
        record(&path, &[]);
        assert!(!path.exists());
    }

    #[test]
    fn the_record_is_kept_fresh_at_the_shortest_advert_interval() {
        assert_eq!(period(&plan()), Duration::from_secs(1));
        let fast = format!(
            "global_defs {{\n  vrrp_version 3\n}}\n{}",
            CONF.replacen("advert_int 1", "advert_int 0.1", 1)
        );
        let config = load_str(Path::new("k.conf"), &fast, Format::Keepalived).unwrap();
        let plan = super::super::plan::plan(&config, &Default::default(), "d").unwrap();
        assert_eq!(period(&plan), Duration::from_millis(100));
    }

    #[test]
    fn an_unreadable_record_resumes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = path(dir.path());
        std::fs::write(&path, "{").unwrap();
        assert!(resumed(&apply(&plan(), &path, SystemTime::now())).is_empty());
    }
}
