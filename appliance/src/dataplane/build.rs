//! The desired dataplane from the config's `virtual_server` blocks (a
//! `virtual_server group NAME` is one kernel service per address of its
//! group's ranges and per mark, as keepalived's ipvswrapper.c programs it,
//! all with the block's settings and real servers). What
//! the kernel cannot express exactly is refused with an error naming the
//! virtual server, never approximated.
//!
//! Health checks, quorum, sorry servers and `inhibit_on_failure` are the
//! checker's business: it changes this table (weight 0 or removal) as real
//! servers fail and recover. Here every configured real server is present
//! with its configured weight.

use super::{
    Destination, Family, Forwarding, Persistence, Protocol, ServiceKey, Table, VirtualService,
};
use crate::config::model::{
    GROUP_RANGE_MAX, GroupEntry, GroupRange, MarkFamily, Service, VirtualServer, VirtualServerGroup,
};
use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::net::SocketAddr;

/// A `virtual_server` the kernel cannot hold as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("virtual_server {service} (#{index}): {problem}")]
pub struct BuildError {
    /// Position among the config's `virtual_server` blocks, from 1.
    pub index: usize,
    /// The block's service as written.
    pub service: String,
    pub problem: String,
}

/// The table the config asks for: each `virtual_server` block's services
/// (a `virtual_server group`'s one per address and mark of its group).
pub fn from_config(
    virtual_servers: &[VirtualServer],
    groups: &[VirtualServerGroup],
) -> Result<Table, BuildError> {
    let mut table = Table::new();
    for (i, vs) in virtual_servers.iter().enumerate() {
        let fail = |problem: String| BuildError {
            index: i + 1,
            service: vs.name(),
            problem,
        };
        for service in services(vs, groups).map_err(fail)? {
            match table.entry(service.key) {
                Entry::Occupied(_) => {
                    return Err(fail(format!(
                        "{} is configured by an earlier virtual_server (or group entry) too",
                        service.key
                    )));
                }
                Entry::Vacant(slot) => {
                    slot.insert(service);
                }
            }
        }
    }
    Ok(table)
}

/// One block's kernel services, in the order its group lists them.
pub(crate) fn services(
    vs: &VirtualServer,
    groups: &[VirtualServerGroup],
) -> Result<Vec<VirtualService>, String> {
    keys(vs, groups)?
        .into_iter()
        .map(|key| service(vs, key))
        .collect()
}

fn keys(vs: &VirtualServer, groups: &[VirtualServerGroup]) -> Result<Vec<ServiceKey>, String> {
    let socket = |address: SocketAddr| {
        if address.port() == 0 {
            return Err(format!("{address}: port 0 is only for fwmark services"));
        }
        Ok(ServiceKey::Socket {
            protocol: vs.protocol.into(),
            address,
        })
    };
    let mark = |mark: u32, family: Option<MarkFamily>| {
        if mark == 0 {
            return Err("fwmark 0 marks nothing: use a mark from 1".to_string());
        }
        let family = match family {
            Some(MarkFamily::Inet) => Family::Ipv4,
            Some(MarkFamily::Inet6) => Family::Ipv6,
            None => fwmark_family(vs)?,
        };
        Ok(ServiceKey::Fwmark { family, mark })
    };
    match &vs.service {
        Service::Address(address) => Ok(vec![socket(*address)?]),
        Service::Fwmark(m) => Ok(vec![mark(*m, None)?]),
        Service::Group(name) => {
            let group = groups
                .iter()
                .find(|g| &g.name == name)
                .ok_or_else(|| format!("no virtual_server_group '{name}'"))?;
            let mut keys = Vec::new();
            for entry in &group.entries {
                match entry {
                    GroupEntry::Range(range) => {
                        let addresses = range.addresses();
                        if addresses.is_empty() {
                            return Err(format!(
                                "virtual_server_group '{name}': {} is not a range of at most                                  {GROUP_RANGE_MAX} addresses of one family",
                                describe_range(range)
                            ));
                        }
                        for ip in addresses {
                            keys.push(socket(SocketAddr::new(ip, range.port))?);
                        }
                    }
                    GroupEntry::Fwmark(f) => keys.push(mark(f.fwmark, f.family)?),
                }
            }
            if keys.is_empty() {
                return Err(format!("virtual_server_group '{name}' has no entries"));
            }
            Ok(keys)
        }
    }
}

fn describe_range(range: &GroupRange) -> String {
    match range.last {
        Some(last) => format!("{}-{last}", range.address),
        None => range.address.to_string(),
    }
}

fn service(vs: &VirtualServer, key: ServiceKey) -> Result<VirtualService, String> {
    let family = key.family();
    let persistence = match vs.persistence_timeout {
        None => None,
        Some(t) if t.is_zero() => None,
        Some(t) => {
            if t.subsec_nanos() != 0 {
                return Err(format!(
                    "persistence_timeout {t:?} is not whole seconds, the kernel's unit"
                ));
            }
            let timeout = u32::try_from(t.as_secs())
                .map_err(|_| format!("persistence_timeout {t:?} is too long"))?;
            let prefix = vs.persistence_granularity.unwrap_or(family.max_prefix());
            if prefix == 0 || prefix > family.max_prefix() {
                return Err(format!(
                    "persistence_granularity /{prefix} is not a prefix length 1..={} for {family:?}",
                    family.max_prefix()
                ));
            }
            Some(Persistence { timeout, prefix })
        }
    };
    if persistence.is_none()
        && let Some(prefix) = vs.persistence_granularity
    {
        return Err(format!(
            "persistence_granularity /{prefix} without persistence_timeout has no effect"
        ));
    }
    if vs.ops
        && let ServiceKey::Socket { protocol, .. } = key
        && protocol != Protocol::Udp
    {
        return Err(format!(
            "ops (one-packet scheduling) applies to UDP only, not {}",
            protocol.name()
        ));
    }
    let forwarding = Forwarding::from(vs.lb_kind);
    let mut destinations = BTreeMap::new();
    for rs in &vs.real_server {
        if let ServiceKey::Socket { address, .. } = key
            && forwarding != Forwarding::Nat
            && rs.address.port() != address.port()
        {
            return Err(format!(
                "real_server {}: {forwarding:?} cannot change the port (the real server receives \
                 port {}); write the virtual server's port",
                rs.address,
                address.port()
            ));
        }
        if forwarding != Forwarding::Tunnel && Family::of(rs.address.ip()) != family {
            return Err(format!(
                "real_server {} is not {family:?} (only TUN may mix families)",
                rs.address
            ));
        }
        let destination = Destination {
            address: rs.address,
            weight: rs.weight,
            forwarding,
            upper_threshold: rs.uthreshold.unwrap_or(0),
            lower_threshold: rs.lthreshold.unwrap_or(0),
        };
        if destinations.insert(rs.address, destination).is_some() {
            return Err(format!("real_server {} is listed twice", rs.address));
        }
    }
    Ok(VirtualService {
        key,
        scheduler: vs.lb_algo,
        sched_flags: vs.sched_flags,
        persistence,
        one_packet: vs.ops,
        masquerade: vs.masquerade,
        destinations,
    })
}

/// A fwmark service's family: its real servers', IPv4 when it has none
/// (keepalived decides the same way).
fn fwmark_family(vs: &VirtualServer) -> Result<Family, String> {
    let mut families = vs.real_server.iter().map(|rs| Family::of(rs.address.ip()));
    let Some(first) = families.next() else {
        return Ok(Family::Ipv4);
    };
    if families.all(|f| f == first) {
        Ok(first)
    } else {
        Err("real servers mix IPv4 and IPv6: the fwmark service's family is ambiguous".into())
    }
}

// The config's words for protocol and forwarding method become the
// model's: the config is data, the model the cores' own input.
impl From<crate::config::model::Protocol> for Protocol {
    fn from(p: crate::config::model::Protocol) -> Self {
        use crate::config::model::Protocol as P;
        match p {
            P::Tcp => Self::Tcp,
            P::Udp => Self::Udp,
            P::Sctp => Self::Sctp,
        }
    }
}

impl From<crate::config::model::LbKind> for Forwarding {
    fn from(k: crate::config::model::LbKind) -> Self {
        use crate::config::model::LbKind as K;
        match k {
            K::Nat => Self::Nat,
            K::Dr => Self::DirectRoute,
            K::Tun => Self::Tunnel,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Format, load_str};
    use crate::dataplane::{SchedFlags, Scheduler, Weight};
    use std::path::Path;

    fn build(text: &str) -> Result<Table, BuildError> {
        let config = load_str(Path::new("k.conf"), text, Format::Keepalived).unwrap();
        from_config(&config.virtual_server, &config.virtual_server_group)
    }

    fn problem(text: &str) -> String {
        build(text).unwrap_err().to_string()
    }

    /// keepalived's ipvswrapper.c programs a group as one service per
    /// address of each range and per mark, each with the block's settings
    /// and real servers.
    #[test]
    fn a_group_is_one_service_per_address_and_mark() {
        let table = build(
            "virtual_server_group web {\n  10.0.0.1-3 80\n  10.0.0.9 8080\n  fwmark 7\n}\n\
             virtual_server group web {\n  protocol TCP\n  lb_algo rr\n  lb_kind NAT\n  \
             real_server 10.0.1.1 80\n  real_server 10.0.1.2 80\n}\n",
        )
        .unwrap();
        let socket = |a: &str| ServiceKey::Socket {
            protocol: Protocol::Tcp,
            address: a.parse().unwrap(),
        };
        let keys: Vec<ServiceKey> = table.keys().copied().collect();
        let mut want = vec![
            socket("10.0.0.1:80"),
            socket("10.0.0.2:80"),
            socket("10.0.0.3:80"),
            socket("10.0.0.9:8080"),
            ServiceKey::Fwmark {
                family: Family::Ipv4,
                mark: 7,
            },
        ];
        want.sort();
        assert_eq!(keys, want);
        for service in table.values() {
            assert_eq!(service.scheduler, Scheduler::Rr);
            assert_eq!(service.destinations.len(), 2);
        }
    }

    #[test]
    fn group_services_are_refused_as_a_virtual_servers_are() {
        let vs = "virtual_server 10.0.0.2 80 {\n  protocol TCP\n}\n";
        let group = |entries: &str| {
            format!(
                "virtual_server_group web {{\n{entries}}}\nvirtual_server group web {{\n  protocol TCP\n  \
                 lb_kind DR\n  real_server 10.0.1.1 80\n}}\n"
            )
        };
        assert_eq!(
            problem(&format!("{vs}{}", group("  10.0.0.1-3 80\n"))),
            "virtual_server group web (#2): TCP 10.0.0.2:80 is configured by an earlier virtual_server (or group entry) too"
        );
        assert_eq!(
            problem(&group("  10.0.0.1 0\n")),
            "virtual_server group web (#1): 10.0.0.1:0: port 0 is only for fwmark services"
        );
        assert!(
            problem(&group("  10.0.0.1 80\n  10.0.0.1 8080\n")).contains("cannot change the port"),
        );
    }

    #[test]
    fn nat_service_with_two_real_servers() {
        let table = build(
            "virtual_server 10.0.1.100 80 {\n  lb_algo wrr\n  lb_kind NAT\n  protocol TCP\n  \
             real_server 10.0.2.11 8080 {\n    weight 3\n    uthreshold 100\n    lthreshold 10\n  }\n  \
             real_server 10.0.2.12 8080 {\n    weight 1\n  }\n}\n",
        )
        .unwrap();
        let key = ServiceKey::Socket {
            protocol: Protocol::Tcp,
            address: "10.0.1.100:80".parse().unwrap(),
        };
        let svc = &table[&key];
        assert_eq!(svc.scheduler, Scheduler::Wrr);
        assert_eq!(svc.persistence, None);
        assert!(!svc.one_packet);
        let rs1 = &svc.destinations[&"10.0.2.11:8080".parse().unwrap()];
        assert_eq!(rs1.weight, Weight::new(3).unwrap());
        assert_eq!(rs1.forwarding, Forwarding::Nat);
        assert_eq!((rs1.upper_threshold, rs1.lower_threshold), (100, 10));
        let rs2 = &svc.destinations[&"10.0.2.12:8080".parse().unwrap()];
        assert_eq!((rs2.upper_threshold, rs2.lower_threshold), (0, 0));
    }

    #[test]
    fn defaults_follow_keepalived_wlc_nat_weight_1() {
        let table =
            build("virtual_server 10.0.0.1 80 {\n  protocol TCP\n  real_server 10.0.1.1 80\n}\n")
                .unwrap();
        let svc = table.values().next().unwrap();
        assert_eq!(svc.scheduler, Scheduler::Wlc);
        let rs = svc.destinations.values().next().unwrap();
        assert_eq!(rs.weight, Weight::new(1).unwrap());
        assert_eq!(rs.forwarding, Forwarding::Nat);
    }

    #[test]
    fn persistence_with_granularity() {
        let table = build(
            "virtual_server 10.0.0.1 443 {\n  protocol TCP\n  persistence_timeout 600\n  \
             persistence_granularity 255.255.255.0\n}\n",
        )
        .unwrap();
        let svc = table.values().next().unwrap();
        assert_eq!(
            svc.persistence,
            Some(Persistence {
                timeout: 600,
                prefix: 24
            })
        );
    }

    #[test]
    fn persistence_timeout_0_means_none() {
        let table =
            build("virtual_server 10.0.0.1 80 {\n  protocol TCP\n  persistence_timeout 0\n}\n")
                .unwrap();
        assert_eq!(table.values().next().unwrap().persistence, None);
    }

    #[test]
    fn persistence_defaults_to_per_address_ipv6() {
        let table =
            build("virtual_server 2001:db8::1 80 {\n  persistence_timeout 60\n}\n").unwrap();
        assert_eq!(
            table.values().next().unwrap().persistence,
            Some(Persistence {
                timeout: 60,
                prefix: 128
            })
        );
    }

    #[test]
    fn fwmark_family_follows_real_servers() {
        let table = build(
            "virtual_server fwmark 7 {\n  lb_kind DR\n  real_server 2001:db8::2 80\n}\n\
             virtual_server fwmark 8 {\n}\n",
        )
        .unwrap();
        let keys: Vec<ServiceKey> = table.keys().copied().collect();
        assert_eq!(
            keys,
            [
                ServiceKey::Fwmark {
                    family: Family::Ipv4,
                    mark: 8
                },
                ServiceKey::Fwmark {
                    family: Family::Ipv6,
                    mark: 7
                },
            ]
        );
    }

    #[test]
    fn scheduler_flags_reach_the_service() {
        let table = build(
            "virtual_server 10.0.0.1 80 {\n  protocol TCP\n  lb_algo sh\n  sh-port\n  \
             sh-fallback\n  real_server 10.0.1.1 80 {\n  }\n}\n\
             virtual_server 10.0.0.2 80 {\n  protocol TCP\n  mh-port\n  lb_algo mh\n  \
             real_server 10.0.1.1 80 {\n  }\n}\n\
             virtual_server 10.0.0.3 80 {\n  protocol TCP\n  lb_algo rr\n  flag-1\n  \
             real_server 10.0.1.1 80 {\n  }\n}\n",
        )
        .unwrap();
        let flags: Vec<SchedFlags> = table.values().map(|s| s.sched_flags).collect();
        assert_eq!(
            flags,
            [
                SchedFlags {
                    fallback: true,
                    port: true
                },
                SchedFlags {
                    fallback: false,
                    port: true
                },
                SchedFlags {
                    fallback: true,
                    port: false
                },
            ]
        );
    }

    #[test]
    fn udp_one_packet() {
        let table = build("virtual_server 10.0.0.1 53 {\n  protocol UDP\n  ops\n  lb_algo sh\n}\n")
            .unwrap();
        let svc = table.values().next().unwrap();
        assert!(svc.one_packet);
        assert_eq!(svc.scheduler, Scheduler::Sh);
        assert!(matches!(
            svc.key,
            ServiceKey::Socket {
                protocol: Protocol::Udp,
                ..
            }
        ));
    }

    #[test]
    fn refuses_ops_on_tcp() {
        assert_eq!(
            problem("virtual_server 10.0.0.1 80 {\n  protocol TCP\n  ops\n}\n"),
            "virtual_server TCP 10.0.0.1:80 (#1): ops (one-packet scheduling) applies to UDP only, not TCP"
        );
    }

    #[test]
    fn refuses_a_port_change_with_direct_routing() {
        assert_eq!(
            problem(
                "virtual_server 10.0.0.1 80 {\n  protocol TCP\n  lb_kind DR\n  real_server 10.0.1.1 8080\n}\n"
            ),
            "virtual_server TCP 10.0.0.1:80 (#1): real_server 10.0.1.1:8080: DirectRoute cannot \
             change the port (the real server receives port 80); write the virtual server's port"
        );
    }

    #[test]
    fn refuses_the_same_service_twice() {
        assert_eq!(
            problem(
                "virtual_server 10.0.0.1 80 {\n  protocol TCP\n}\nvirtual_server 10.0.0.1 80 {\n  protocol TCP\n}\n"
            ),
            "virtual_server TCP 10.0.0.1:80 (#2): TCP 10.0.0.1:80 is configured by an earlier virtual_server (or group entry) too"
        );
    }

    #[test]
    fn same_address_on_two_protocols_is_two_services() {
        let table = build(
            "virtual_server 10.0.0.1 53 {\n  protocol UDP\n}\nvirtual_server 10.0.0.1 53 {\n  protocol TCP\n}\n",
        )
        .unwrap();
        assert_eq!(table.len(), 2);
    }

    #[test]
    fn refuses_granularity_without_persistence() {
        assert_eq!(
            problem(
                "virtual_server 10.0.0.1 80 {\n  protocol TCP\n  persistence_granularity 24\n}\n"
            ),
            "virtual_server TCP 10.0.0.1:80 (#1): persistence_granularity /24 without persistence_timeout has no effect"
        );
    }

    #[test]
    fn refuses_fwmark_0_and_mixed_fwmark_families() {
        assert!(problem("virtual_server fwmark 0 {\n}\n").contains("fwmark 0 marks nothing"));
        assert!(
            problem(
                "virtual_server fwmark 3 {\n  lb_kind TUN\n  real_server 10.0.0.2 80\n  real_server 2001:db8::2 80\n}\n"
            )
            .contains("mix IPv4 and IPv6")
        );
    }

    #[test]
    fn tunnel_may_mix_families() {
        let table =
            build("virtual_server 10.0.0.1 80 {\n  protocol TCP\n  lb_kind TUN\n  real_server 2001:db8::2 80\n}\n")
                .unwrap();
        let svc = table.values().next().unwrap();
        assert_eq!(svc.key.family(), Family::Ipv4);
        assert_eq!(
            svc.destinations.values().next().unwrap().forwarding,
            Forwarding::Tunnel
        );
    }

    #[test]
    fn seed_lvs_dr_fixture_builds() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/keepalived/seed-lvs-dr.conf");
        let config = crate::config::load_file(&path).unwrap();
        let table = from_config(&config.virtual_server, &config.virtual_server_group).unwrap();
        let svc = table.values().next().unwrap();
        assert_eq!(svc.scheduler, Scheduler::Wlc);
        assert_eq!(svc.destinations.len(), 2);
        assert!(
            svc.destinations
                .values()
                .all(|d| d.forwarding == Forwarding::DirectRoute
                    && d.weight == Weight::new(100).unwrap())
        );
    }
}
