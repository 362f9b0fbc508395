//! keepalived's `promote_secondaries`: `net.ipv4.conf.IF.promote_secondaries`
//! set to 1 on the interfaces of the instances that ask for it, so that
//! removing an interface's primary IPv4 address (a VIP added first in its
//! subnet, say) promotes the next one instead of deleting every address of
//! that subnet with it. Each interface's value before is kept, and put back
//! once no instance asks for it any more (and at the daemon's stop), as
//! keepalived's `reset_promote_secondaries` does; one already at 1 is left
//! as it is.

use super::sysctl::Sysctls;
use std::collections::{BTreeSet, HashMap};
use tracing::{info, warn};

/// The interfaces whose `promote_secondaries` this daemon set, with their
/// values before.
#[derive(Debug)]
pub(crate) struct Promotions {
    sysctls: Sysctls,
    /// Per interface: its value before us (`None`: it was 1 already).
    held: HashMap<String, Option<String>>,
}

impl Default for Promotions {
    fn default() -> Self {
        Self::new(Sysctls::default())
    }
}

fn key(interface: &str) -> [&str; 5] {
    ["net", "ipv4", "conf", interface, "promote_secondaries"]
}

impl Promotions {
    pub(crate) fn new(sysctls: Sysctls) -> Self {
        Self {
            sysctls,
            held: HashMap::new(),
        }
    }

    /// Makes `wanted` the interfaces with `promote_secondaries` set: sets
    /// it on those new to the set, puts back those that left it. An
    /// interface that cannot be written yet (it does not exist) is tried
    /// again on the next call.
    pub(crate) fn set(&mut self, wanted: &BTreeSet<String>) {
        let left: Vec<String> = self
            .held
            .keys()
            .filter(|i| !wanted.contains(*i))
            .cloned()
            .collect();
        for interface in left {
            if let Some(Some(before)) = self.held.remove(&interface) {
                match self.sysctls.write(&key(&interface), &before) {
                    Ok(()) => info!(interface, value = %before, "promote_secondaries restored"),
                    // The interface went: nothing left to restore.
                    Err(e) => warn!(interface, error = %e, "promote_secondaries not restored"),
                }
            }
        }
        for interface in wanted {
            if self.held.contains_key(interface) {
                continue;
            }
            let before = match self.sysctls.read(&key(interface)) {
                Ok(v) => v,
                Err(e) => {
                    warn!(interface, error = %e, "promote_secondaries not set: the interface cannot be read yet");
                    continue;
                }
            };
            if before == "1" {
                self.held.insert(interface.clone(), None);
                continue;
            }
            match self.sysctls.write(&key(interface), "1") {
                Ok(()) => {
                    info!(interface, before = %before, "promote_secondaries set");
                    self.held.insert(interface.clone(), Some(before));
                }
                Err(e) => warn!(interface, error = %e, "promote_secondaries not set"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::net::sysctl::fake;

    fn iface(root: &std::path::Path, name: &str, value: &str) {
        fake::set(
            root,
            &format!("net/ipv4/conf/{name}/promote_secondaries"),
            value,
        );
    }

    fn value(root: &std::path::Path, name: &str) -> String {
        fake::get(root, &format!("net/ipv4/conf/{name}/promote_secondaries"))
    }

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    /// Set while wanted, put back when not; one at 1 already stays 1; one
    /// that appears later is set then.
    #[test]
    fn wanted_interfaces_get_it_and_give_it_back() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        iface(root, "eth0", "0\n");
        iface(root, "eth1", "1\n");
        let mut p = Promotions::new(Sysctls::under(root.to_path_buf()));
        p.set(&set(&["eth0", "eth1", "eth2"]));
        assert_eq!(
            (value(root, "eth0"), value(root, "eth1")),
            ("1".into(), "1".into())
        );
        iface(root, "eth2", "0\n");
        p.set(&set(&["eth0", "eth1", "eth2"]));
        assert_eq!(value(root, "eth2"), "1");
        p.set(&set(&["eth2"]));
        assert_eq!(
            (value(root, "eth0"), value(root, "eth1")),
            ("0".into(), "1".into())
        );
        p.set(&BTreeSet::new());
        assert_eq!(value(root, "eth2"), "0");
    }
}
