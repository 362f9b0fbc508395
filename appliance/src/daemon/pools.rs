//! The table the dataplane should hold while health checks run: the
//! configured table with each checked virtual server's destinations
//! replaced by the checker's latest pool (a failed server is absent, or
//! kept with weight 0 under `inhibit_on_failure`; the sorry server is in
//! while active). Until the checker has given a virtual server's pool, the
//! operator's settings apply to its configured destinations (the checker's
//! pools apply them themselves). Pure: the daemon feeds pools and programs
//! the result.

use crate::check::decision::{Admin, Destination as PoolEntry, Mode, VsId};
use crate::config::model::{VirtualServer, VirtualServerGroup};
use crate::dataplane::{self, BuildError, Destination, Forwarding, ServiceKey, Table, Weight};
use std::collections::BTreeMap;

/// The configured table and the checker's pools.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Pools {
    configured: Table,
    /// By [`VsId`] (config order): the kernel services (a group's one per
    /// entry address and mark, which its one pool feeds alike) and their
    /// forwarding method (the sorry server's too, as keepalived's default).
    services: Vec<Served>,
    pools: BTreeMap<VsId, Vec<PoolEntry>>,
    /// The operator's settings, by service and real server.
    admin: BTreeMap<(ServiceKey, std::net::SocketAddr), Admin>,
    /// Real servers a reload removed, kept at weight 0 while they drain
    /// (`graceful_remove`), as the kernel held them.
    leaving: BTreeMap<(ServiceKey, std::net::SocketAddr), Destination>,
}

/// One virtual server's kernel services.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Served {
    /// As the log and the status name it: `group NAME` for a group, else
    /// its one service.
    name: String,
    keys: Vec<ServiceKey>,
    forwarding: Forwarding,
}

impl Pools {
    pub(super) fn new(
        servers: &[VirtualServer],
        groups: &[VirtualServerGroup],
    ) -> Result<Self, BuildError> {
        let configured = dataplane::from_config(servers, groups)?;
        let mut services = Vec::with_capacity(servers.len());
        for vs in servers {
            // from_config built every block, so this one builds too.
            let keys: Vec<ServiceKey> = dataplane::build::services(vs, groups)
                .unwrap_or_default()
                .into_iter()
                .map(|s| s.key)
                .collect();
            let name = match &vs.service {
                crate::config::model::Service::Group(name) => format!("group {name}"),
                _ => keys.first().map(ToString::to_string).unwrap_or_default(),
            };
            services.push(Served {
                name,
                keys,
                forwarding: Forwarding::from(vs.lb_kind),
            });
        }
        Ok(Self {
            configured,
            services,
            pools: BTreeMap::new(),
            admin: BTreeMap::new(),
            leaving: BTreeMap::new(),
        })
    }

    /// The kernel services of a virtual server (a group's several).
    pub(super) fn keys(&self, vs: VsId) -> &[ServiceKey] {
        self.services
            .get(vs.0 as usize)
            .map_or(&[], |s| s.keys.as_slice())
    }

    /// A virtual server as the log and the status name it: its kernel
    /// service, or `group NAME`.
    pub(super) fn name(&self, vs: VsId) -> Option<&str> {
        self.services.get(vs.0 as usize).map(|s| s.name.as_str())
    }

    /// Takes over the pools `previous` recorded for the virtual servers a
    /// reload carries: `carry[i]` is the previous virtual server that the
    /// new `i` continues.
    pub(super) fn carry(&mut self, previous: &Pools, carry: &[Option<VsId>]) {
        for (index, from) in carry.iter().enumerate() {
            let (Some(from), Ok(index)) = (from, u32::try_from(index)) else {
                continue;
            };
            if let Some(pool) = previous.pools.get(from) {
                self.pools.insert(VsId(index), pool.clone());
            }
        }
    }

    /// The operator's settings, for the virtual servers without a pool yet.
    pub(super) fn set_admin(
        &mut self,
        admin: impl IntoIterator<Item = (ServiceKey, std::net::SocketAddr, Admin)>,
    ) {
        self.admin = admin
            .into_iter()
            .map(|(key, address, admin)| ((key, address), admin))
            .collect();
    }

    /// Whether the config has virtual server `key`.
    pub(super) fn serves(&self, key: &ServiceKey) -> bool {
        self.configured.contains_key(key)
    }

    /// Keeps `destination` of `service` at weight 0 until
    /// [`Pools::remove_leaving`], though the config no longer has it.
    pub(super) fn add_leaving(&mut self, service: ServiceKey, destination: Destination) {
        self.leaving.insert(
            (service, destination.address),
            Destination {
                weight: Weight::ZERO,
                ..destination
            },
        );
    }

    /// Whether `service` still keeps its removed `address`.
    pub(super) fn is_leaving(&self, service: ServiceKey, address: std::net::SocketAddr) -> bool {
        self.leaving.contains_key(&(service, address))
    }

    /// Lets a removed real server go.
    pub(super) fn remove_leaving(&mut self, service: ServiceKey, address: std::net::SocketAddr) {
        self.leaving.remove(&(service, address));
    }

    /// The removed real servers still kept.
    pub(super) fn leaving(&self) -> impl Iterator<Item = (ServiceKey, &Destination)> {
        self.leaving.iter().map(|((key, _), d)| (*key, d))
    }

    /// Records `vs`'s pool; false if it is the one already recorded.
    pub(super) fn set(&mut self, vs: VsId, mut pool: Vec<PoolEntry>) -> bool {
        pool.sort();
        if self.pools.get(&vs) == Some(&pool) {
            return false;
        }
        self.pools.insert(vs, pool);
        true
    }

    /// The table to program: the configured one with every recorded pool
    /// in place of its virtual server's destinations. A pool member keeps
    /// its configured thresholds; the sorry server (not configured as a real
    /// server) has none.
    pub(super) fn desired(&self) -> Table {
        let mut table = self.configured.clone();
        // A group's one pool feeds each of its services.
        let fed = self.pools.iter().flat_map(|(vs, pool)| {
            self.services
                .get(vs.0 as usize)
                .into_iter()
                .flat_map(move |s| s.keys.iter().map(move |key| (key, &s.forwarding, pool)))
        });
        for (key, forwarding, pool) in fed {
            let Some(service) = table.get_mut(key) else {
                continue;
            };
            let configured = std::mem::take(&mut service.destinations);
            for entry in pool {
                // Weights come from the config or misc_dynamic (0..=253),
                // so they fit; clamp rather than drop a live server.
                let Ok(weight) = Weight::new(entry.weight.min(Weight::MAX)) else {
                    continue;
                };
                let destination = match configured.get(&entry.address) {
                    Some(d) => Destination {
                        weight,
                        ..d.clone()
                    },
                    None => Destination {
                        address: entry.address,
                        weight,
                        forwarding: *forwarding,
                        upper_threshold: 0,
                        lower_threshold: 0,
                    },
                };
                service.destinations.insert(entry.address, destination);
            }
        }
        let pooled: Vec<ServiceKey> = self
            .pools
            .keys()
            .flat_map(|vs| self.keys(*vs).iter().copied())
            .collect();
        for ((key, address), admin) in &self.admin {
            if pooled.contains(key) {
                continue;
            }
            let Some(service) = table.get_mut(key) else {
                continue;
            };
            if admin.mode == Mode::Disabled {
                service.destinations.remove(address);
            } else if let Some(destination) = service.destinations.get_mut(address) {
                let weight = match admin.mode {
                    Mode::Draining => 0,
                    _ => admin.weight.unwrap_or(destination.weight.get()),
                };
                destination.weight =
                    Weight::new(weight.min(Weight::MAX)).unwrap_or(destination.weight);
            }
        }
        for ((key, address), destination) in &self.leaving {
            if let Some(service) = table.get_mut(key) {
                service
                    .destinations
                    .entry(*address)
                    .or_insert_with(|| destination.clone());
            }
        }
        table
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Format, load_str};
    use std::net::SocketAddr;
    use std::path::Path;

    const CONF: &str = "virtual_server 10.0.1.100 80 {\n  protocol TCP\n  lb_algo rr\n  lb_kind NAT\n  \
        sorry_server 10.0.2.99 8080\n  \
        real_server 10.0.2.11 8080 {\n    weight 3\n    uthreshold 100\n  }\n  \
        real_server 10.0.2.12 8080 {\n    weight 1\n  }\n}\n\
        virtual_server 10.0.1.101 80 {\n  protocol TCP\n  real_server 10.0.2.21 80 {\n  }\n}\n";

    fn pools() -> Pools {
        let config = load_str(Path::new("k.conf"), CONF, Format::Keepalived).unwrap();
        Pools::new(&config.virtual_server, &config.virtual_server_group).unwrap()
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn entry(address: &str, weight: u32) -> PoolEntry {
        PoolEntry {
            address: addr(address),
            weight,
        }
    }

    fn weights(table: &Table, vs: &str) -> Vec<(SocketAddr, u32)> {
        let key = ServiceKey::Socket {
            protocol: dataplane::Protocol::Tcp,
            address: addr(vs),
        };
        table[&key]
            .destinations
            .values()
            .map(|d| (d.address, d.weight.get()))
            .collect()
    }

    /// A group's one pool (one check per real server) feeds each of the
    /// group's kernel services.
    #[test]
    fn a_groups_pool_feeds_every_service_of_the_group() {
        let text = "virtual_server_group web {\n  10.0.1.1-3 80\n}\n\
            virtual_server group web {\n  protocol TCP\n  \
            real_server 10.0.2.11 8080 {\n  }\n  real_server 10.0.2.12 8080 {\n  }\n}\n\
            virtual_server 10.0.1.100 80 {\n  protocol TCP\n  real_server 10.0.2.11 8080 {\n  }\n}\n";
        let config = load_str(Path::new("k.conf"), text, Format::Keepalived).unwrap();
        let mut p = Pools::new(&config.virtual_server, &config.virtual_server_group).unwrap();
        assert_eq!(p.keys(VsId(0)).len(), 3);
        assert_eq!(p.name(VsId(0)), Some("group web"));
        assert_eq!(p.name(VsId(1)), Some("TCP 10.0.1.100:80"));
        assert!(p.set(VsId(0), vec![entry("10.0.2.12:8080", 1)]));
        let table = p.desired();
        for vs in ["10.0.1.1:80", "10.0.1.2:80", "10.0.1.3:80"] {
            assert_eq!(weights(&table, vs), [(addr("10.0.2.12:8080"), 1)], "{vs}");
        }
        assert_eq!(
            weights(&table, "10.0.1.100:80"),
            [(addr("10.0.2.11:8080"), 1)]
        );
    }

    #[test]
    fn without_pools_the_configured_table_stands() {
        let p = pools();
        let config = load_str(Path::new("k.conf"), CONF, Format::Keepalived).unwrap();
        assert_eq!(
            p.desired(),
            dataplane::from_config(&config.virtual_server, &config.virtual_server_group).unwrap()
        );
        assert_eq!(
            p.keys(VsId(1)),
            [ServiceKey::Socket {
                protocol: dataplane::Protocol::Tcp,
                address: addr("10.0.1.101:80"),
            }]
        );
        assert_eq!(p.keys(VsId(2)), []);
    }

    #[test]
    fn a_pool_replaces_its_virtual_servers_destinations_only() {
        let mut p = pools();
        assert!(p.set(VsId(0), vec![entry("10.0.2.12:8080", 1)]));
        assert!(!p.set(VsId(0), vec![entry("10.0.2.12:8080", 1)]));
        let table = p.desired();
        assert_eq!(
            weights(&table, "10.0.1.100:80"),
            [(addr("10.0.2.12:8080"), 1)]
        );
        assert_eq!(
            weights(&table, "10.0.1.101:80"),
            [(addr("10.0.2.21:80"), 1)]
        );
    }

    #[test]
    fn inhibited_server_stays_with_weight_zero_and_its_thresholds() {
        let mut p = pools();
        p.set(
            VsId(0),
            vec![entry("10.0.2.12:8080", 1), entry("10.0.2.11:8080", 0)],
        );
        let table = p.desired();
        assert_eq!(
            weights(&table, "10.0.1.100:80"),
            [(addr("10.0.2.11:8080"), 0), (addr("10.0.2.12:8080"), 1)]
        );
        let key = ServiceKey::Socket {
            protocol: dataplane::Protocol::Tcp,
            address: addr("10.0.1.100:80"),
        };
        assert_eq!(
            table[&key].destinations[&addr("10.0.2.11:8080")].upper_threshold,
            100
        );
    }

    #[test]
    fn operator_settings_hold_until_the_checker_gives_a_pool() {
        let mut p = pools();
        let key = ServiceKey::Socket {
            protocol: dataplane::Protocol::Tcp,
            address: addr("10.0.1.100:80"),
        };
        let set = |mode, weight| Admin { mode, weight };
        p.set_admin([
            (key, addr("10.0.2.11:8080"), set(Mode::Disabled, None)),
            (key, addr("10.0.2.12:8080"), set(Mode::Enabled, Some(9))),
        ]);
        assert_eq!(
            weights(&p.desired(), "10.0.1.100:80"),
            [(addr("10.0.2.12:8080"), 9)]
        );
        p.set_admin([(key, addr("10.0.2.12:8080"), set(Mode::Draining, Some(9)))]);
        assert_eq!(
            weights(&p.desired(), "10.0.1.100:80"),
            [(addr("10.0.2.11:8080"), 3), (addr("10.0.2.12:8080"), 0)]
        );
        // The checker's pool, which applies the settings itself, stands.
        p.set(VsId(0), vec![entry("10.0.2.11:8080", 3)]);
        assert_eq!(
            weights(&p.desired(), "10.0.1.100:80"),
            [(addr("10.0.2.11:8080"), 3)]
        );
    }

    #[test]
    fn a_removed_server_is_kept_at_weight_zero_until_let_go() {
        let mut p = pools();
        let key = ServiceKey::Socket {
            protocol: dataplane::Protocol::Tcp,
            address: addr("10.0.1.101:80"),
        };
        let gone = Destination {
            address: addr("10.0.2.22:80"),
            weight: Weight::new(7).unwrap(),
            forwarding: Forwarding::Nat,
            upper_threshold: 0,
            lower_threshold: 0,
        };
        assert!(p.serves(&key));
        p.add_leaving(key, gone.clone());
        assert!(p.is_leaving(key, gone.address));
        assert_eq!(
            weights(&p.desired(), "10.0.1.101:80"),
            [(addr("10.0.2.21:80"), 1), (addr("10.0.2.22:80"), 0)]
        );
        // Under a checker's pool too.
        p.set(VsId(1), vec![entry("10.0.2.21:80", 1)]);
        assert_eq!(weights(&p.desired(), "10.0.1.101:80").len(), 2);
        p.remove_leaving(key, gone.address);
        assert_eq!(
            weights(&p.desired(), "10.0.1.101:80"),
            [(addr("10.0.2.21:80"), 1)]
        );
    }

    #[test]
    fn sorry_server_gets_the_virtual_servers_forwarding() {
        let mut p = pools();
        p.set(VsId(0), vec![entry("10.0.2.99:8080", 1)]);
        let table = p.desired();
        let key = ServiceKey::Socket {
            protocol: dataplane::Protocol::Tcp,
            address: addr("10.0.1.100:80"),
        };
        let sorry = &table[&key].destinations[&addr("10.0.2.99:8080")];
        assert_eq!(sorry.forwarding, Forwarding::Nat);
        assert_eq!(sorry.upper_threshold, 0);
        assert_eq!(table[&key].destinations.len(), 1);
    }
}
