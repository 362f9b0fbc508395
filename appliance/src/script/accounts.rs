//! Users and groups, read from /etc/passwd and /etc/group. The binary is
//! static, so the C library's name service (NSS modules, LDAP, systemd's
//! dynamic users) is out of reach: the files are what an appliance has,
//! and reading them ourselves gives the same answer in every build.

use std::path::Path;

/// A user of /etc/passwd.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct User {
    pub name: String,
    pub uid: u32,
    /// Its primary group.
    pub gid: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Group {
    name: String,
    gid: u32,
    members: Vec<String>,
}

/// The user and group tables.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Accounts {
    users: Vec<User>,
    groups: Vec<Group>,
}

impl Accounts {
    /// /etc/passwd and /etc/group; a file that cannot be read holds no
    /// one (a scratch image has neither).
    pub(crate) fn read() -> Self {
        let read = |path: &str| std::fs::read_to_string(Path::new(path)).unwrap_or_default();
        Self::parse(&read("/etc/passwd"), &read("/etc/group"))
    }

    /// The tables from the files' text. Lines that are not entries
    /// (comments, NIS `+` lines, a bad number) are skipped, as getpwent(3)
    /// skips them.
    pub(crate) fn parse(passwd: &str, group: &str) -> Self {
        let users = passwd
            .lines()
            .filter_map(|line| {
                let mut f = line.split(':');
                let name = f.next()?;
                let _password = f.next()?;
                let uid = f.next()?.parse().ok()?;
                let gid = f.next()?.parse().ok()?;
                entry_name(name).then(|| User {
                    name: name.to_string(),
                    uid,
                    gid,
                })
            })
            .collect();
        let groups = group
            .lines()
            .filter_map(|line| {
                let mut f = line.split(':');
                let name = f.next()?;
                let _password = f.next()?;
                let gid = f.next()?.parse().ok()?;
                let members = f
                    .next()
                    .unwrap_or_default()
                    .split(',')
                    .filter(|m| !m.is_empty())
                    .map(str::to_string)
                    .collect();
                entry_name(name).then(|| Group {
                    name: name.to_string(),
                    gid,
                    members,
                })
            })
            .collect();
        Self { users, groups }
    }

    /// The first entry named `name`, as getpwnam(3) returns it.
    pub(crate) fn user(&self, name: &str) -> Option<&User> {
        self.users.iter().find(|u| u.name == name)
    }

    /// The id of the first group named `name`.
    pub(crate) fn group(&self, name: &str) -> Option<u32> {
        self.groups.iter().find(|g| g.name == name).map(|g| g.gid)
    }

    /// The user's groups as getgrouplist(3) gives them: its primary group,
    /// then every group that lists it as a member, each once.
    pub(crate) fn groups_of(&self, user: &User) -> Vec<u32> {
        let mut out = vec![user.gid];
        for group in &self.groups {
            if group.members.contains(&user.name) && !out.contains(&group.gid) {
                out.push(group.gid);
            }
        }
        out
    }
}

fn entry_name(name: &str) -> bool {
    !name.is_empty() && !name.starts_with(['#', '+', '-'])
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "\
root:x:0:0:root:/root:/bin/bash
# a comment
+nis
keepalived_script:x:998:997::/nonexistent:/usr/sbin/nologin
broken:x:notanumber:1::/:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
";
    const GROUP: &str = "\
root:x:0:
adm:x:4:syslog,keepalived_script
keepalived_script:x:997:
nogroup:x:65534:
web:x:33:keepalived_script,adm
";

    #[test]
    fn users_and_groups_are_found_by_name() {
        let a = Accounts::parse(PASSWD, GROUP);
        assert_eq!(
            a.user("keepalived_script"),
            Some(&User {
                name: "keepalived_script".into(),
                uid: 998,
                gid: 997
            })
        );
        assert_eq!(a.user("broken"), None);
        assert_eq!(a.user("+nis"), None);
        assert_eq!(a.user("missing"), None);
        assert_eq!(a.group("nogroup"), Some(65534));
        assert_eq!(a.group("missing"), None);
    }

    #[test]
    fn supplementary_groups_are_the_primary_then_memberships() {
        let a = Accounts::parse(PASSWD, GROUP);
        let user = a.user("keepalived_script").cloned().unwrap();
        assert_eq!(a.groups_of(&user), [997, 4, 33]);
        let nobody = a.user("nobody").cloned().unwrap();
        assert_eq!(a.groups_of(&nobody), [65534]);
    }
}
