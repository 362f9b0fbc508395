//! The pure diff: from the desired table, the kernel's actual table and the
//! set of services the appliance owns, the fewest operations that make the
//! managed part of the kernel equal the desired table. Sans-IO.
//!
//! Managed services are those in the desired table (adopted if someone else
//! created them) and those the appliance owns; every other kernel service is
//! left alone. Within a managed service every destination is managed.
//!
//! Minimal means: nothing unchanged produces an operation; a service whose
//! settings changed is edited in place (never deleted and re-added, which
//! would drop its connections); a destination likewise; a service that
//! goes away is one delete (the kernel removes its destinations with it).

use super::{Destination, ServiceKey, Table, VirtualService};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;

/// One change to the kernel's table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Create a service (its destinations follow as [`Op::AddDestination`]).
    AddService(VirtualService),
    /// Change a service's settings; its destinations are not in it.
    EditService(VirtualService),
    /// Remove a service and its destinations.
    DeleteService(ServiceKey),
    AddDestination {
        service: ServiceKey,
        destination: Destination,
    },
    EditDestination {
        service: ServiceKey,
        destination: Destination,
    },
    DeleteDestination {
        service: ServiceKey,
        address: SocketAddr,
    },
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AddService(s) => write!(f, "add service {}", s.key),
            Self::EditService(s) => write!(f, "edit service {}", s.key),
            Self::DeleteService(k) => write!(f, "delete service {k}"),
            Self::AddDestination {
                service,
                destination,
            } => write!(f, "add {} to {service}", destination.address),
            Self::EditDestination {
                service,
                destination,
            } => write!(f, "edit {} of {service}", destination.address),
            Self::DeleteDestination { service, address } => {
                write!(f, "delete {address} from {service}")
            }
        }
    }
}

/// The operations turning `actual` into `desired` for the managed services:
/// those in `desired` and those in `owned`. Deletions of services come
/// first, then each desired service in key order: its add or edit, then
/// its destinations' deletions, edits and additions.
///
/// Both tables are walked once, side by side in key order (no lookups),
/// since a reload diffs every service of a large table to find one change.
pub fn diff(desired: &Table, actual: &Table, owned: &BTreeSet<ServiceKey>) -> Vec<Op> {
    let mut deletions = Vec::new();
    let mut ops = Vec::new();
    for (key, want, have) in side_by_side(desired, actual) {
        let Some(want) = want else {
            if owned.contains(key) {
                deletions.push(Op::DeleteService(*key));
            }
            continue;
        };
        match have {
            None => ops.push(Op::AddService(want.settings())),
            Some(have) if !have.same_settings(want) => ops.push(Op::EditService(want.settings())),
            Some(_) => {}
        }
        let empty = BTreeMap::new();
        let have_dests = have.map_or(&empty, |h| &h.destinations);
        let mut changes = Vec::new();
        for (address, want, have) in side_by_side(&want.destinations, have_dests) {
            match (want, have) {
                (None, _) => ops.push(Op::DeleteDestination {
                    service: *key,
                    address: *address,
                }),
                (Some(dest), None) => changes.push(Op::AddDestination {
                    service: *key,
                    destination: dest.clone(),
                }),
                (Some(dest), Some(current)) if !current.satisfies(dest) => {
                    changes.push(Op::EditDestination {
                        service: *key,
                        destination: dest.clone(),
                    })
                }
                (Some(_), Some(_)) => {}
            }
        }
        ops.append(&mut changes);
    }
    deletions.append(&mut ops);
    deletions
}

/// The keys of two maps in order, each with its value in either: a merge
/// of the two, with no lookups.
pub fn side_by_side<'a, K: Ord, V>(
    left: &'a BTreeMap<K, V>,
    right: &'a BTreeMap<K, V>,
) -> impl Iterator<Item = (&'a K, Option<&'a V>, Option<&'a V>)> {
    let (mut left, mut right) = (left.iter().peekable(), right.iter().peekable());
    std::iter::from_fn(move || match (left.peek(), right.peek()) {
        (None, None) => None,
        (Some(_), None) => left.next().map(|(k, l)| (k, Some(l), None)),
        (None, Some(_)) => right.next().map(|(k, r)| (k, None, Some(r))),
        (Some((lk, _)), Some((rk, _))) => match lk.cmp(rk) {
            std::cmp::Ordering::Less => left.next().map(|(k, l)| (k, Some(l), None)),
            std::cmp::Ordering::Greater => right.next().map(|(k, r)| (k, None, Some(r))),
            std::cmp::Ordering::Equal => {
                let (k, l) = left.next()?;
                let (_, r) = right.next()?;
                Some((k, Some(l), Some(r)))
            }
        },
    })
}

/// What the kernel does with `op` on `table`: the model of the backends
/// that tests and the diff's own checks run against. An operation the
/// kernel would refuse (adding what exists, editing what does not) is
/// returned as an error naming it.
pub fn apply(table: &mut Table, op: &Op) -> Result<(), String> {
    match op {
        Op::AddService(s) => {
            if table.contains_key(&s.key) {
                return Err(format!("{op}: exists"));
            }
            table.insert(s.key, s.settings());
        }
        Op::EditService(s) => {
            let current = table
                .get_mut(&s.key)
                .ok_or_else(|| format!("{op}: absent"))?;
            let destinations = std::mem::take(&mut current.destinations);
            *current = VirtualService {
                destinations,
                ..s.clone()
            };
        }
        Op::DeleteService(k) => {
            table.remove(k).ok_or_else(|| format!("{op}: absent"))?;
        }
        Op::AddDestination {
            service,
            destination,
        } => {
            let svc = table
                .get_mut(service)
                .ok_or_else(|| format!("{op}: no service"))?;
            if svc.destinations.contains_key(&destination.address) {
                return Err(format!("{op}: exists"));
            }
            svc.destinations
                .insert(destination.address, destination.clone());
        }
        Op::EditDestination {
            service,
            destination,
        } => {
            let slot = table
                .get_mut(service)
                .and_then(|s| s.destinations.get_mut(&destination.address))
                .ok_or_else(|| format!("{op}: absent"))?;
            *slot = destination.clone();
        }
        Op::DeleteDestination { service, address } => {
            table
                .get_mut(service)
                .and_then(|s| s.destinations.remove(address))
                .ok_or_else(|| format!("{op}: absent"))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::{
        Family, Forwarding, Persistence, Protocol, SchedFlags, Scheduler, Weight,
    };
    use proptest::prelude::*;

    fn key(port: u16) -> ServiceKey {
        ServiceKey::Socket {
            protocol: Protocol::Tcp,
            address: SocketAddr::from(([10, 0, 0, 1], port)),
        }
    }

    fn dest(last: u8, weight: u32) -> Destination {
        Destination {
            address: SocketAddr::from(([10, 0, 2, last], 80)),
            weight: Weight::new(weight).unwrap(),
            forwarding: Forwarding::Nat,
            upper_threshold: 0,
            lower_threshold: 0,
        }
    }

    fn service(port: u16, scheduler: Scheduler, dests: &[Destination]) -> VirtualService {
        VirtualService {
            key: key(port),
            scheduler,
            sched_flags: SchedFlags::default(),
            persistence: None,
            one_packet: false,
            masquerade: false,
            destinations: dests.iter().map(|d| (d.address, d.clone())).collect(),
        }
    }

    fn table(services: &[VirtualService]) -> Table {
        services.iter().map(|s| (s.key, s.clone())).collect()
    }

    fn none() -> BTreeSet<ServiceKey> {
        BTreeSet::new()
    }

    #[test]
    fn equal_tables_need_nothing() {
        let t = table(&[service(80, Scheduler::Rr, &[dest(11, 1), dest(12, 1)])]);
        assert_eq!(diff(&t, &t, &none()), []);
    }

    #[test]
    fn empty_kernel_gets_service_then_destinations() {
        let want = table(&[service(80, Scheduler::Rr, &[dest(11, 1), dest(12, 2)])]);
        let ops = diff(&want, &Table::new(), &none());
        assert_eq!(
            ops,
            [
                Op::AddService(service(80, Scheduler::Rr, &[])),
                Op::AddDestination {
                    service: key(80),
                    destination: dest(11, 1)
                },
                Op::AddDestination {
                    service: key(80),
                    destination: dest(12, 2)
                },
            ]
        );
    }

    #[test]
    fn scheduler_change_is_one_edit() {
        let have = table(&[service(80, Scheduler::Rr, &[dest(11, 1)])]);
        let want = table(&[service(80, Scheduler::Wlc, &[dest(11, 1)])]);
        assert_eq!(
            diff(&want, &have, &none()),
            [Op::EditService(service(80, Scheduler::Wlc, &[]))]
        );
    }

    #[test]
    fn persistence_change_is_one_edit() {
        let have = table(&[service(80, Scheduler::Rr, &[])]);
        let mut persistent = service(80, Scheduler::Rr, &[]);
        persistent.persistence = Some(Persistence {
            timeout: 300,
            prefix: 24,
        });
        let want = table(std::slice::from_ref(&persistent));
        assert_eq!(diff(&want, &have, &none()), [Op::EditService(persistent)]);
    }

    #[test]
    fn weight_change_is_one_destination_edit() {
        let have = table(&[service(80, Scheduler::Wrr, &[dest(11, 1), dest(12, 1)])]);
        let want = table(&[service(80, Scheduler::Wrr, &[dest(11, 3), dest(12, 1)])]);
        assert_eq!(
            diff(&want, &have, &none()),
            [Op::EditDestination {
                service: key(80),
                destination: dest(11, 3)
            }]
        );
    }

    #[test]
    fn removed_destination_is_deleted_added_one_added() {
        let have = table(&[service(80, Scheduler::Rr, &[dest(11, 1), dest(12, 1)])]);
        let want = table(&[service(80, Scheduler::Rr, &[dest(12, 1), dest(13, 1)])]);
        assert_eq!(
            diff(&want, &have, &none()),
            [
                Op::DeleteDestination {
                    service: key(80),
                    address: dest(11, 1).address
                },
                Op::AddDestination {
                    service: key(80),
                    destination: dest(13, 1)
                },
            ]
        );
    }

    #[test]
    fn foreign_services_are_left_alone_owned_ones_removed() {
        let have = table(&[
            service(80, Scheduler::Rr, &[dest(11, 1)]),
            service(81, Scheduler::Rr, &[dest(11, 1)]),
        ]);
        let owned = BTreeSet::from([key(81)]);
        assert_eq!(
            diff(&Table::new(), &have, &owned),
            [Op::DeleteService(key(81))]
        );
        assert_eq!(diff(&Table::new(), &have, &none()), []);
    }

    #[test]
    fn a_configured_service_made_by_hand_is_adopted_whole() {
        let have = table(&[service(80, Scheduler::Rr, &[dest(11, 1), dest(99, 5)])]);
        let want = table(&[service(80, Scheduler::Rr, &[dest(11, 1)])]);
        assert_eq!(
            diff(&want, &have, &none()),
            [Op::DeleteDestination {
                service: key(80),
                address: dest(99, 5).address
            }]
        );
    }

    #[test]
    fn a_local_destination_matches_its_configured_method() {
        let mut local = dest(11, 1);
        local.forwarding = Forwarding::Local;
        let have = table(&[service(80, Scheduler::Rr, &[local])]);
        let want = table(&[service(80, Scheduler::Rr, &[dest(11, 1)])]);
        assert_eq!(diff(&want, &have, &none()), []);
    }

    #[test]
    fn apply_refuses_what_the_kernel_refuses() {
        let mut t = table(&[service(80, Scheduler::Rr, &[])]);
        assert!(apply(&mut t, &Op::AddService(service(80, Scheduler::Rr, &[]))).is_err());
        assert!(apply(&mut t, &Op::DeleteService(key(81))).is_err());
        assert!(
            apply(
                &mut t,
                &Op::EditDestination {
                    service: key(80),
                    destination: dest(11, 1)
                }
            )
            .is_err()
        );
    }

    // Property tests over small tables: a few ports, addresses and values
    // so that generated tables overlap often.

    fn arb_dest() -> impl Strategy<Value = Destination> {
        (
            0u8..4,
            0u32..3,
            prop_oneof![
                Just(Forwarding::Nat),
                Just(Forwarding::DirectRoute),
                Just(Forwarding::Tunnel)
            ],
            0u32..2,
        )
            .prop_map(|(last, weight, forwarding, threshold)| Destination {
                forwarding,
                upper_threshold: threshold * 10,
                lower_threshold: threshold,
                ..dest(last, weight)
            })
    }

    fn arb_key() -> impl Strategy<Value = ServiceKey> {
        prop_oneof![
            (80u16..83).prop_map(key),
            (1u32..3).prop_map(|mark| ServiceKey::Fwmark {
                family: Family::Ipv4,
                mark
            }),
        ]
    }

    fn arb_service() -> impl Strategy<Value = VirtualService> {
        (
            arb_key(),
            prop_oneof![
                Just(Scheduler::Rr),
                Just(Scheduler::Wrr),
                Just(Scheduler::Sh)
            ],
            any::<(bool, bool, bool)>(),
            proptest::option::of((1u32..3, 24u8..26)),
            proptest::collection::vec(arb_dest(), 0..4),
        )
            .prop_map(|(key, scheduler, (fallback, port, one_packet), p, dests)| {
                VirtualService {
                    key,
                    scheduler,
                    sched_flags: SchedFlags { fallback, port },
                    persistence: p.map(|(timeout, prefix)| Persistence { timeout, prefix }),
                    one_packet,
                    masquerade: false,
                    destinations: dests.into_iter().map(|d| (d.address, d)).collect(),
                }
            })
    }

    fn arb_table() -> impl Strategy<Value = Table> {
        proptest::collection::vec(arb_service(), 0..5)
            .prop_map(|v| v.into_iter().map(|s| (s.key, s)).collect())
    }

    fn arb_owned() -> impl Strategy<Value = BTreeSet<ServiceKey>> {
        proptest::collection::btree_set(arb_key(), 0..4)
    }

    /// The operation count a minimal diff has: per desired service, one add
    /// plus its destinations when absent, else one edit when its settings
    /// differ plus one per differing destination; one delete per owned,
    /// present, undesired service.
    fn minimal_count(desired: &Table, actual: &Table, owned: &BTreeSet<ServiceKey>) -> usize {
        let deletes = actual
            .keys()
            .filter(|k| owned.contains(k) && !desired.contains_key(k))
            .count();
        let changes: usize = desired
            .iter()
            .map(|(k, want)| match actual.get(k) {
                None => 1 + want.destinations.len(),
                Some(have) => {
                    let edit = usize::from(!have.same_settings(want));
                    let gone = have
                        .destinations
                        .keys()
                        .filter(|a| !want.destinations.contains_key(a))
                        .count();
                    let changed = want
                        .destinations
                        .iter()
                        .filter(|(a, d)| have.destinations.get(a).is_none_or(|h| !h.satisfies(d)))
                        .count();
                    edit + gone + changed
                }
            })
            .sum();
        deletes + changes
    }

    proptest! {
        #[test]
        fn applying_the_diff_yields_the_desired_table(
            desired in arb_table(),
            actual in arb_table(),
            owned in arb_owned(),
        ) {
            let ops = diff(&desired, &actual, &owned);
            let mut result = actual.clone();
            for op in &ops {
                apply(&mut result, op).map_err(TestCaseError::fail)?;
            }
            // Managed services now equal the desired ones...
            for (k, want) in &desired {
                prop_assert_eq!(result.get(k), Some(want));
            }
            // ...owned undesired ones are gone, and the rest is untouched.
            for (k, have) in &actual {
                if desired.contains_key(k) {
                    continue;
                }
                if owned.contains(k) {
                    prop_assert!(!result.contains_key(k), "{} still there", k);
                } else {
                    prop_assert_eq!(result.get(k), Some(have));
                }
            }
            let extra: Vec<&ServiceKey> = result
                .keys()
                .filter(|k| !desired.contains_key(k) && !actual.contains_key(k))
                .collect();
            prop_assert!(extra.is_empty(), "created {:?}", extra);
        }

        #[test]
        fn the_diff_is_minimal_and_idempotent(
            desired in arb_table(),
            actual in arb_table(),
            owned in arb_owned(),
        ) {
            let ops = diff(&desired, &actual, &owned);
            prop_assert_eq!(ops.len(), minimal_count(&desired, &actual, &owned));
            let mut result = actual.clone();
            for op in &ops {
                apply(&mut result, op).map_err(TestCaseError::fail)?;
            }
            let again = diff(&desired, &result, &owned);
            prop_assert!(again.is_empty(), "second diff: {:?}", again);
        }

        #[test]
        fn a_settings_change_never_deletes_the_service(
            a in arb_service(),
            b in arb_service(),
        ) {
            let b = VirtualService { key: a.key, ..b };
            let owned = BTreeSet::from([a.key]);
            let ops = diff(&table(&[b]), &table(&[a]), &owned);
            prop_assert!(
                !ops.iter().any(|op| matches!(op, Op::DeleteService(_) | Op::AddService(_))),
                "{:?}", ops
            );
        }

        #[test]
        fn unchanged_services_produce_no_operation(
            shared in arb_service(),
            desired in arb_table(),
            actual in arb_table(),
            owned in arb_owned(),
        ) {
            let mut desired = desired;
            let mut actual = actual;
            desired.insert(shared.key, shared.clone());
            actual.insert(shared.key, shared.clone());
            let ops = diff(&desired, &actual, &owned);
            let touches = |op: &Op| match op {
                Op::AddService(s) | Op::EditService(s) => s.key == shared.key,
                Op::DeleteService(k) => *k == shared.key,
                Op::AddDestination { service, .. }
                | Op::EditDestination { service, .. }
                | Op::DeleteDestination { service, .. } => *service == shared.key,
            };
            prop_assert!(!ops.iter().any(touches), "{:?}", ops);
        }
    }
}
