//! What each kernel backend can hold, stated once: config validation
//! (`check-config`, reloads), the reconcile (before it touches the kernel)
//! and the nftables rule builder all ask [`refusals`], so a config that
//! validates is one its backend takes.

use super::pick;
use super::{Choice, Family, Forwarding, Scheduler, ServiceKey, VirtualService};
use std::net::SocketAddr;

/// Why a backend cannot hold a service as configured: each problem with
/// the config keyword it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The `virtual_server` field at fault (`lb_algo`, `lb_kind`, ...), or
    /// `real_server` with its address.
    pub field: &'static str,
    pub real_server: Option<SocketAddr>,
    pub reason: String,
}

/// Every reason the `backend` refuses `service`; empty when it can hold
/// it exactly.
pub fn refusals(backend: Choice, service: &VirtualService) -> Vec<Refusal> {
    match backend {
        Choice::Ipvs => ipvs(service),
        Choice::Nftables => nftables(service),
    }
}

/// IPVS does everything but the nftables dataplane's extensions.
fn ipvs(service: &VirtualService) -> Vec<Refusal> {
    let mut out = Vec::new();
    if service.scheduler == Scheduler::Random {
        out.push(Refusal {
            field: "lb_algo",
            real_server: None,
            reason: "lb_algo random needs dataplane = \"nftables\" in [global] (IPVS has no weighted random scheduler)".into(),
        });
    }
    if service.masquerade {
        out.push(Refusal {
            field: "masquerade",
            real_server: None,
            reason: "masquerade needs dataplane = \"nftables\" in [global]".into(),
        });
    }
    out
}

/// Every reason the nftables dataplane refuses `service`; empty when it can
/// do it exactly.
fn nftables(service: &VirtualService) -> Vec<Refusal> {
    let mut out = Vec::new();
    let mut refuse = |field, real_server, reason: String| {
        out.push(Refusal {
            field,
            real_server,
            reason,
        })
    };
    if let ServiceKey::Fwmark { .. } = service.key {
        refuse(
            "service",
            None,
            "fwmark services are not available with the nftables dataplane: write an address and port".into(),
        );
    }
    if let Err(reason) = pick::pick(service) {
        let field = if matches!(
            service.scheduler,
            Scheduler::Rr
                | Scheduler::Wrr
                | Scheduler::Sh
                | Scheduler::Dh
                | Scheduler::Mh
                | Scheduler::Random
        ) {
            "real_server"
        } else {
            "lb_algo"
        };
        refuse(field, None, reason);
    }
    if service.persistence.is_some() {
        refuse(
            "persistence_timeout",
            None,
            "persistence is not available with the nftables dataplane".into(),
        );
    }
    if service.one_packet {
        refuse(
            "ops",
            None,
            "one-packet scheduling (ops) is not available with the nftables dataplane".into(),
        );
    }
    // mh-port is the Maglev table's hash of the source port too; the
    // fallbacks re-hash a client whose server is unavailable, where the
    // nftables dataplane leaves such a server out of the table instead.
    let flags_allowed = service.scheduler == Scheduler::Mh && !service.sched_flags.fallback;
    if service.sched_flags.any() && !flags_allowed {
        refuse(
            "lb_algo",
            None,
            "scheduler flags (sh-fallback, sh-port, mh-fallback) are not available with the \
             nftables dataplane (mh-port is)"
                .into(),
        );
    }
    for d in service.destinations.values() {
        if d.forwarding != Forwarding::Nat {
            refuse(
                "lb_kind",
                Some(d.address),
                format!(
                    "lb_kind {} is not available with the nftables dataplane (NAT only)",
                    match d.forwarding {
                        Forwarding::DirectRoute => "DR",
                        Forwarding::Tunnel => "TUN",
                        Forwarding::Nat | Forwarding::Local => "LOCAL",
                    }
                ),
            );
        }
        if d.upper_threshold != 0 || d.lower_threshold != 0 {
            refuse(
                "real_server",
                Some(d.address),
                format!(
                    "real_server {}: uthreshold/lthreshold are not available with the nftables dataplane",
                    d.address
                ),
            );
        }
        if Family::of(d.address.ip()) != service.key.family() {
            refuse(
                "real_server",
                Some(d.address),
                format!(
                    "real_server {} is not of the virtual server's family",
                    d.address
                ),
            );
        }
    }
    out.dedup_by(|a, b| a.field == b.field && a.reason == b.reason);
    out
}
