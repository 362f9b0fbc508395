//! Who a script runs as, and who the daemon is: its user, its groups and
//! whether it may become someone else.

/// A user a script runs as, resolved from the user and group tables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The user's name, for logs.
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups; empty (keepalived's default) unless the
    /// config asked for the user's own with a `:` before the group.
    pub groups: Vec<u32>,
}

/// Whom a script runs as.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum RunAs {
    /// The daemon's own user and groups, unchanged: the daemon cannot
    /// switch users, and the script's user is the daemon's.
    #[default]
    Daemon,
    /// This user, set in the child before it runs the program.
    User(Identity),
}

/// The daemon's own user and what it may do about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Privileges {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    /// It holds CAP_SETUID and CAP_SETGID, so it can run a script as any
    /// user and group (setuid(2), setgid(2), setgroups(2)).
    pub can_switch: bool,
}

/// Bits of CAP_SETGID (6) and CAP_SETUID (7) in a capability mask.
const SETGID_SETUID: u64 = (1 << 6) | (1 << 7);

impl Privileges {
    /// The running process's. Its capabilities come from
    /// /proc/self/status; without it the daemon is taken not to be able to
    /// switch (a script's user then must be the daemon's).
    pub fn current() -> Self {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        Self {
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
            groups: nix::unistd::getgroups()
                .map(|groups| groups.into_iter().map(|g| g.as_raw()).collect())
                .unwrap_or_default(),
            can_switch: effective_caps(&status)
                .is_some_and(|caps| caps & SETGID_SETUID == SETGID_SETUID),
        }
    }

    /// Whether a script run as `identity` needs no switch: it is the daemon's
    /// user with the daemon's groups.
    pub fn is(&self, identity: &Identity) -> bool {
        self.uid == identity.uid
            && self.gid == identity.gid
            && (identity.groups.is_empty() || identity.groups == self.groups)
    }
}

/// The effective capability mask of a /proc/PID/status text.
fn effective_caps(status: &str) -> Option<u64> {
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn effective_capabilities_are_read_from_the_status_text() {
        let status = "Name:\tappliance\nCapInh:\t0000000000000000\nCapEff:\t00000000000030c0\n";
        let caps = effective_caps(status).unwrap();
        assert_eq!(caps & SETGID_SETUID, SETGID_SETUID);
        assert_eq!(effective_caps("CapEff:\t0000000000003000\n"), Some(0x3000));
        assert_eq!(effective_caps("Name:\tx\n"), None);
    }

    #[test]
    fn the_daemons_own_user_needs_no_switch() {
        let daemon = Privileges {
            uid: 65534,
            gid: 65534,
            groups: vec![],
            can_switch: false,
        };
        let nobody = Identity {
            name: "nobody".into(),
            uid: 65534,
            gid: 65534,
            groups: vec![],
        };
        assert!(daemon.is(&nobody));
        assert!(!daemon.is(&Identity {
            gid: 0,
            ..nobody.clone()
        }));
        assert!(!daemon.is(&Identity {
            groups: vec![65534, 4],
            ..nobody
        }));
    }
}
