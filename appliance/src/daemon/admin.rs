//! What the operator sets for real servers over the control socket
//! (`appliance enable|disable|drain|weight`): the settings by kernel service
//! and real server, which a reload keeps until the config changes that
//! server, and their record in the state directory, so a restart keeps
//! them too. The checker applies them ([`Admin`]); drains wait here for a
//! server's connections to end.

use super::pools::Pools;
use crate::check::decision::{Admin, Mode, VsId};
use crate::config::model::VirtualServer;
use crate::dataplane::ServiceKey;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use tracing::{info, warn};

/// A real server of one kernel service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub(crate) struct Target {
    pub service: ServiceKey,
    pub address: SocketAddr,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} of {}", self.address, self.service)
    }
}

/// One setting as the record holds it.
#[derive(Serialize, Deserialize)]
struct Entry {
    #[serde(flatten)]
    target: Target,
    #[serde(flatten)]
    admin: Admin,
}

/// The operator's settings, and where they are recorded.
#[derive(Debug, Default)]
pub(super) struct Settings {
    map: BTreeMap<Target, Admin>,
    record: Option<PathBuf>,
}

impl Settings {
    /// The settings recorded at `record` (none if there is no record). A
    /// record that cannot be read is logged and set aside: the config then
    /// stands as written, which is what the daemon did before the operator
    /// changed anything.
    pub(super) fn load(record: PathBuf) -> Self {
        let read = std::fs::read(&record).and_then(|bytes| {
            serde_json::from_slice::<Vec<Entry>>(&bytes).map_err(std::io::Error::other)
        });
        let map = match read {
            Ok(entries) => entries.into_iter().map(|e| (e.target, e.admin)).collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => {
                warn!(record = %record.display(), error = %e, "operator settings unreadable; the config stands as written");
                BTreeMap::new()
            }
        };
        Self {
            map,
            record: Some(record),
        }
    }

    /// What the operator set for `target`.
    pub(super) fn get(&self, target: &Target) -> Admin {
        self.map.get(target).copied().unwrap_or_default()
    }

    /// Sets each target's setting and writes the record: all of them, or
    /// (if the record cannot be written) none.
    pub(super) fn set_all(&mut self, settings: &[(Target, Admin)]) -> std::io::Result<()> {
        let before = self.map.clone();
        for (target, admin) in settings {
            if *admin == Admin::default() {
                self.map.remove(target);
            } else {
                self.map.insert(*target, *admin);
            }
        }
        let saved = self.save();
        if saved.is_err() {
            self.map = before;
        }
        saved
    }

    /// The settings as the table's overlay ([`Pools::set_admin`]).
    pub(super) fn overlay(&self) -> Vec<(ServiceKey, SocketAddr, Admin)> {
        self.map
            .iter()
            .map(|(t, admin)| (t.service, t.address, *admin))
            .collect()
    }

    fn save(&self) -> std::io::Result<()> {
        let Some(record) = &self.record else {
            return Ok(());
        };
        let entries: Vec<Entry> = self
            .map
            .iter()
            .map(|(target, admin)| Entry {
                target: *target,
                admin: *admin,
            })
            .collect();
        let text = serde_json::to_vec_pretty(&entries).map_err(std::io::Error::other)?;
        crate::state_file::write(record, &text)
    }

    /// The settings of `servers` (whose kernel services `pools` knows), for
    /// the checker: by virtual server and address.
    pub(super) fn for_checker(
        &self,
        servers: &[VirtualServer],
        pools: &Pools,
    ) -> Vec<(VsId, SocketAddr, Admin)> {
        targets(servers, pools)
            .filter_map(|(vs, target)| {
                let admin = self.map.get(&target)?;
                Some((vs, target.address, *admin))
            })
            .collect()
    }

    /// Keeps the settings of the real servers whose block is the same in
    /// `new` as in `old` (and drops those of servers the config changed or
    /// removed: the config speaks last). Returns what was dropped.
    pub(super) fn keep(
        &mut self,
        old: (&[VirtualServer], &Pools),
        new: (&[VirtualServer], &Pools),
    ) -> std::io::Result<Vec<Target>> {
        let before = blocks(old.0, old.1);
        let after = blocks(new.0, new.1);
        let dropped: Vec<Target> = self
            .map
            .keys()
            .filter(|t| match (before.get(t), after.get(t)) {
                (Some(a), Some(b)) => a != b,
                _ => true,
            })
            .copied()
            .collect();
        if dropped.is_empty() {
            return Ok(dropped);
        }
        for target in &dropped {
            self.map.remove(target);
            info!(real_server = %target.address, service = %target.service, "operator setting dropped: the config changed the real server");
        }
        self.save()?;
        Ok(dropped)
    }

    /// Drops the settings of real servers `servers` does not have (a
    /// record older than the config the daemon starts with).
    pub(super) fn forget_unknown(
        &mut self,
        servers: &[VirtualServer],
        pools: &Pools,
    ) -> std::io::Result<()> {
        let known = blocks(servers, pools);
        let before = self.map.len();
        self.map.retain(|target, _| {
            let keep = known.contains_key(target);
            if !keep {
                info!(real_server = %target.address, service = %target.service, "operator setting dropped: no such real server in the config");
            }
            keep
        });
        if self.map.len() == before {
            return Ok(());
        }
        self.save()
    }
}

/// Every real server of `servers` as a target, with its virtual server:
/// one per kernel service (a group's real server is a target of each of
/// the group's services).
fn targets<'a>(
    servers: &'a [VirtualServer],
    pools: &'a Pools,
) -> impl Iterator<Item = (VsId, Target)> + 'a {
    servers.iter().enumerate().flat_map(move |(index, vs)| {
        let id = VsId(u32::try_from(index).unwrap_or(u32::MAX));
        pools.keys(id).iter().flat_map(move |service| {
            vs.real_server.iter().map(move |rs| {
                (
                    id,
                    Target {
                        service: *service,
                        address: rs.address,
                    },
                )
            })
        })
    })
}

/// The virtual server that has `target`, if any.
pub(super) fn locate(servers: &[VirtualServer], pools: &Pools, target: &Target) -> Option<VsId> {
    targets(servers, pools)
        .find(|(_, t)| t == target)
        .map(|(vs, _)| vs)
}

/// Whether `target` is one of `servers`' real servers, or the sorry server
/// of its virtual server.
pub(super) fn known(servers: &[VirtualServer], pools: &Pools, target: &Target) -> bool {
    locate(servers, pools, target).is_some()
        || servers.iter().enumerate().any(|(index, vs)| {
            let id = VsId(u32::try_from(index).unwrap_or(u32::MAX));
            pools.keys(id).contains(&target.service) && vs.sorry_server == Some(target.address)
        })
}

/// Each target's real-server block, as the config writes it.
fn blocks<'a>(
    servers: &'a [VirtualServer],
    pools: &'a Pools,
) -> BTreeMap<Target, &'a crate::config::model::RealServer> {
    servers
        .iter()
        .enumerate()
        .flat_map(|(index, vs)| {
            let id = VsId(u32::try_from(index).unwrap_or(u32::MAX));
            pools.keys(id).iter().flat_map(move |service| {
                vs.real_server.iter().map(move |rs| {
                    (
                        Target {
                            service: *service,
                            address: rs.address,
                        },
                        rs,
                    )
                })
            })
        })
        .collect()
}

/// The real servers an operator's request names: `address` in every
/// virtual server, or only in those `service` names (`TCP 10.0.0.1:80`,
/// `10.0.0.1:80`, `FWM 5`, `fwmark 5` or `group NAME`). A group's real
/// server is one for all the group's services: naming any of them (or the
/// group) names it in each. An error says what the config has instead.
pub(super) fn resolve(
    servers: &[VirtualServer],
    pools: &Pools,
    address: SocketAddr,
    service: Option<&str>,
) -> Result<Vec<(VsId, Target)>, String> {
    let named = |vs: VsId| {
        service.is_none_or(|s| {
            pools
                .name(vs)
                .is_some_and(|n| n.eq_ignore_ascii_case(s.trim()))
                || pools.keys(vs).iter().any(|key| names(key, s))
        })
    };
    let found: Vec<(VsId, Target)> = targets(servers, pools)
        .filter(|(_, t)| t.address == address)
        .filter(|(vs, _)| named(*vs))
        .collect();
    if !found.is_empty() {
        return Ok(found);
    }
    let known: Vec<String> = targets(servers, pools)
        .filter(|(vs, _)| named(*vs))
        .map(|(_, t)| t.to_string())
        .collect();
    let wanted = match service {
        Some(s) => format!("real server {address} in service {s}"),
        None => format!("real server {address}"),
    };
    Err(if known.is_empty() {
        match service {
            Some(s) => format!("no {wanted} in the config: no service {s}"),
            None => format!("no {wanted} in the config: it has no real servers"),
        }
    } else {
        format!("no {wanted} in the config; it has {}", known.join(", "))
    })
}

/// Whether `filter` names the kernel service `key`.
fn names(key: &ServiceKey, filter: &str) -> bool {
    let filter = filter.trim();
    let full = key.to_string();
    if full.eq_ignore_ascii_case(filter) {
        return true;
    }
    match key {
        ServiceKey::Socket { address, .. } => filter.parse::<SocketAddr>() == Ok(*address),
        ServiceKey::Fwmark { mark, .. } => {
            let words: Vec<&str> = filter.split_whitespace().collect();
            matches!(words.as_slice(), [kind, n]
                if (kind.eq_ignore_ascii_case("fwmark") || kind.eq_ignore_ascii_case("fwm"))
                    && n.parse::<u32>() == Ok(*mark))
        }
    }
}

/// How a setting reads in the log, the status and the answer.
pub(super) fn describe(admin: Admin) -> String {
    match (admin.mode, admin.weight) {
        (Mode::Enabled, None) => "enabled".into(),
        (mode, None) => mode.name().into(),
        (mode, Some(w)) => format!("{}, weight {w} set by the operator", mode.name()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Format, load_str};
    use std::path::Path;

    const CONF: &str = "virtual_server 10.0.1.100 80 {\n  protocol TCP\n  \
        real_server 10.0.2.11 8080 {\n    weight 3\n  }\n  \
        real_server 10.0.2.12 8080 {\n  }\n}\n\
        virtual_server fwmark 5 {\n  real_server 10.0.2.11 8080 {\n  }\n}\n";

    fn config(text: &str) -> (Vec<VirtualServer>, Pools) {
        let config = load_str(Path::new("k.conf"), text, Format::Keepalived).unwrap();
        let pools = Pools::new(&config.virtual_server, &config.virtual_server_group).unwrap();
        (config.virtual_server, pools)
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn disabled() -> Admin {
        Admin {
            mode: Mode::Disabled,
            weight: None,
        }
    }

    /// A group's real server is one target per service of the group;
    /// naming the group, or any one of its services, names all of them.
    #[test]
    fn a_groups_real_server_is_named_by_the_group_or_any_of_its_services() {
        let (servers, pools) = config(
            "virtual_server_group web {\n  10.0.1.1-2 80\n  fwmark 9\n}\n\
             virtual_server group web {\n  protocol TCP\n  real_server 10.0.2.11 8080 {\n  }\n}\n\
             virtual_server 10.0.1.100 80 {\n  protocol TCP\n  real_server 10.0.2.11 8080 {\n  }\n}\n",
        );
        let rs = addr("10.0.2.11:8080");
        assert_eq!(resolve(&servers, &pools, rs, None).unwrap().len(), 4);
        for filter in ["group web", "Group web", "10.0.1.2:80", "fwmark 9"] {
            let found = resolve(&servers, &pools, rs, Some(filter)).unwrap();
            assert_eq!(found.len(), 3, "{filter}: {found:?}");
            assert!(found.iter().all(|(vs, _)| *vs == VsId(0)), "{filter}");
        }
        let err = resolve(&servers, &pools, rs, Some("group nope")).unwrap_err();
        assert!(err.contains("no service group nope"), "{err}");
        // Each of the group's services knows it (a reload keeps it).
        for key in pools.keys(VsId(0)) {
            let target = Target {
                service: *key,
                address: rs,
            };
            assert!(known(&servers, &pools, &target), "{target}");
        }
    }

    #[test]
    fn a_real_server_is_named_by_address_and_narrowed_by_service() {
        let (servers, pools) = config(CONF);
        let rs = addr("10.0.2.11:8080");
        assert_eq!(resolve(&servers, &pools, rs, None).unwrap().len(), 2);
        for filter in ["TCP 10.0.1.100:80", "10.0.1.100:80", "tcp 10.0.1.100:80"] {
            let found = resolve(&servers, &pools, rs, Some(filter)).unwrap();
            assert_eq!(found.len(), 1, "{filter}");
            assert_eq!(found[0].0, VsId(0));
        }
        for filter in ["FWM 5", "fwmark 5"] {
            let found = resolve(&servers, &pools, rs, Some(filter)).unwrap();
            assert_eq!(found[0].0, VsId(1), "{filter}");
        }
    }

    #[test]
    fn an_unknown_real_server_is_refused_naming_what_there_is() {
        let (servers, pools) = config(CONF);
        let error = resolve(&servers, &pools, addr("10.0.2.99:8080"), None).unwrap_err();
        assert!(
            error.contains("no real server 10.0.2.99:8080")
                && error.contains("10.0.2.12:8080 of TCP 10.0.1.100:80"),
            "{error}"
        );
        let error = resolve(&servers, &pools, addr("10.0.2.12:8080"), Some("FWM 6")).unwrap_err();
        assert!(error.contains("no service FWM 6"), "{error}");
    }

    #[test]
    fn settings_are_recorded_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let record = dir.path().join("admin.json");
        let (servers, pools) = config(CONF);
        let (_, target) = resolve(&servers, &pools, addr("10.0.2.12:8080"), None).unwrap()[0];
        let weighted = Admin {
            mode: Mode::Draining,
            weight: Some(7),
        };
        let mut settings = Settings::load(record.clone());
        settings.set_all(&[(target, weighted)]).unwrap();
        let again = Settings::load(record.clone());
        assert_eq!(again.get(&target), weighted);
        assert_eq!(
            again.for_checker(&servers, &pools),
            [(VsId(0), target.address, weighted)]
        );
        // Back to the default is no setting at all.
        settings.set_all(&[(target, Admin::default())]).unwrap();
        assert_eq!(Settings::load(record).overlay().len(), 0);
    }

    #[test]
    fn a_record_that_cannot_be_written_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the record should be: the rename fails.
        let record = dir.path().join("admin.json");
        std::fs::create_dir(&record).unwrap();
        std::fs::write(record.join("x"), "").unwrap();
        let (servers, pools) = config(CONF);
        let found = resolve(&servers, &pools, addr("10.0.2.11:8080"), None).unwrap();
        let mut settings = Settings::load(record);
        let all: Vec<(Target, Admin)> = found.iter().map(|(_, t)| (*t, disabled())).collect();
        assert!(settings.set_all(&all).is_err());
        assert_eq!(settings.overlay().len(), 0);
        assert_eq!(locate(&servers, &pools, &found[1].1), Some(VsId(1)));
    }

    #[test]
    fn an_unreadable_record_leaves_the_config_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let record = dir.path().join("admin.json");
        std::fs::write(&record, "{ not json").unwrap();
        assert_eq!(Settings::load(record).overlay().len(), 0);
    }

    #[test]
    fn a_reload_keeps_settings_until_the_config_changes_their_server() {
        let (old, old_pools) = config(CONF);
        let mut settings = Settings::default();
        let all = resolve(&old, &old_pools, addr("10.0.2.11:8080"), None).unwrap();
        let twelve = resolve(&old, &old_pools, addr("10.0.2.12:8080"), None).unwrap();
        for (_, target) in all.iter().chain(&twelve) {
            settings.set_all(&[(*target, disabled())]).unwrap();
        }
        // 10.0.2.11 gets another weight in the first service; the fwmark
        // service and 10.0.2.12 are as they were (order changed).
        let changed = "virtual_server fwmark 5 {\n  real_server 10.0.2.11 8080 {\n  }\n}\n\
            virtual_server 10.0.1.100 80 {\n  protocol TCP\n  \
            real_server 10.0.2.12 8080 {\n  }\n  \
            real_server 10.0.2.11 8080 {\n    weight 4\n  }\n}\n";
        let (new, new_pools) = config(changed);
        let dropped = settings
            .keep((&old, &old_pools), (&new, &new_pools))
            .unwrap();
        assert_eq!(dropped, [all[0].1]);
        let kept = settings.for_checker(&new, &new_pools);
        assert_eq!(
            kept,
            [
                (VsId(0), addr("10.0.2.11:8080"), disabled()),
                (VsId(1), addr("10.0.2.12:8080"), disabled()),
            ]
        );
    }
}
