//! The VRRP driver's announcements of its VIPs: one [`Announcer`] per
//! interface, each with its [`Pacer`]s (`vrrp_garp_interval`,
//! `vrrp_gna_interval`). An announcement goes out at once unless the
//! interface's pacing holds it; held ones go out from the driver's loop at
//! [`Announcements::deadline`].

use super::plan::Pacing;
use crate::clock::Instant;
use crate::net::gratuitous::Announcer;
use appliance_core::pace::Pacer;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use tracing::warn;

struct Interface {
    announcer: Announcer,
    arp: Pacer<Ipv4Addr>,
    na: Pacer<Ipv6Addr>,
}

/// The announcers of the interfaces VIPs live on, by interface name.
pub(super) struct Announcements {
    pacing: Pacing,
    interfaces: HashMap<String, Interface>,
}

impl Announcements {
    pub(super) fn new(pacing: Pacing) -> Self {
        Self {
            pacing,
            interfaces: HashMap::new(),
        }
    }

    pub(super) fn contains(&self, interface: &str) -> bool {
        self.interfaces.contains_key(interface)
    }

    pub(super) fn insert(&mut self, interface: String, announcer: Announcer) {
        self.interfaces.insert(
            interface,
            Interface {
                announcer,
                arp: Pacer::new(self.pacing.arp),
                na: Pacer::new(self.pacing.na),
            },
        );
    }

    /// Forgets an interface (gone, or to be looked up again); what its
    /// pacing held is dropped with it.
    pub(super) fn remove(&mut self, interface: &str) {
        self.interfaces.remove(interface);
    }

    /// A reload's pacing applies to what is held too.
    pub(super) fn set_pacing(&mut self, pacing: Pacing) {
        self.pacing = pacing;
        for interface in self.interfaces.values_mut() {
            interface.arp.set_interval(pacing.arp);
            interface.na.set_interval(pacing.na);
        }
    }

    /// Announces `vip` on `interface` now, or when its pacing allows; an
    /// interface without an announcer (no Ethernet address) announces
    /// nothing, as was logged when it was looked up.
    pub(super) fn announce(&mut self, interface: &str, vip: IpAddr, now: Instant) {
        let Some(i) = self.interfaces.get_mut(interface) else {
            return;
        };
        let sent = match vip {
            IpAddr::V4(a) => i.arp.offer(a, now).map(|a| i.announcer.arp(a)),
            IpAddr::V6(a) => {
                i.na.offer(a, now)
                    .map(|a| i.announcer.neighbour_advertisement(a))
            }
        };
        if let Some(Err(e)) = sent {
            warn!(interface, error = %e, "announcing VIP failed");
        }
    }

    /// Sends what the pacing held and is now due.
    pub(super) fn send_due(&mut self, now: Instant) {
        for (name, i) in &mut self.interfaces {
            while let Some(a) = i.arp.poll(now) {
                if let Err(e) = i.announcer.arp(a) {
                    warn!(interface = %name, error = %e, "announcing VIP failed");
                }
            }
            while let Some(a) = i.na.poll(now) {
                if let Err(e) = i.announcer.neighbour_advertisement(a) {
                    warn!(interface = %name, error = %e, "announcing VIP failed");
                }
            }
        }
    }

    /// When the next held announcement is due.
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.interfaces
            .values()
            .flat_map(|i| [i.arp.deadline(), i.na.deadline()])
            .flatten()
            .min()
    }
}
