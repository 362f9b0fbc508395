//! Whom each program of a config runs as, and whether it may run: the
//! part of loading a config that asks the system (the user and group
//! tables, the daemon's own privileges, the scripts' files), after the
//! config itself is valid. `check-config`, the start and every reload go
//! through it, so a config the daemon would run differently from what it
//! says is refused, at the position of what it cannot honour.
//!
//! keepalived's rules (`core/notify.c`):
//! - a script runs as its own `user [group]`, else as `script_user`, else
//!   as `keepalived_script` if that user exists, else as the daemon's own
//!   user (root) with a warning;
//! - a user or group that does not exist is an error;
//! - every entry on a script's path must be changeable by no one but root
//!   and the script's user ([`super::secure`]); with
//!   `enable_script_security` a script that fails is refused, without it
//!   it draws a warning;
//! - with `enable_script_security`, a script with no user to run as but
//!   the daemon's fallback is refused.
//!
//! Ours besides: a user the daemon cannot become (it lacks CAP_SETUID and
//! CAP_SETGID, as under the systemd unit) is an error, never a script run
//! as the daemon instead; the implicit `keepalived_script` the daemon cannot
//! become is passed over with a warning, as if it did not exist. A bare
//! program name is looked up in the scripts' [`super::PATH`] here, once.

use super::accounts::Accounts;
use super::secure::{self, Fs, Meta, RealFs};
use super::{Identity, PATH, Privileges, Program, RunAs};
use crate::config::diag::{Diagnostic, Diagnostics, SourceMap};
use crate::config::model::{Command, Config};
use crate::config::validate::{CommandSite, commands};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The default user when it exists and `script_user` is not set.
pub(crate) const DEFAULT_USER: &str = "keepalived_script";

/// What the checks ask of the system.
pub(crate) trait Host: Fs {
    fn privileges(&self) -> &Privileges;
    fn accounts(&self) -> &Accounts;
}

/// This machine, as it is when asked.
pub(crate) struct System {
    privileges: Privileges,
    accounts: Accounts,
}

impl System {
    pub(crate) fn read() -> Self {
        Self {
            privileges: Privileges::current(),
            accounts: Accounts::read(),
        }
    }
}

impl Fs for System {
    fn lstat(&self, path: &Path) -> std::io::Result<Meta> {
        RealFs.lstat(path)
    }

    fn stat(&self, path: &Path) -> std::io::Result<Meta> {
        RealFs.stat(path)
    }

    fn read_link(&self, path: &Path) -> std::io::Result<PathBuf> {
        RealFs.read_link(path)
    }
}

impl Host for System {
    fn privileges(&self) -> &Privileges {
        &self.privileges
    }

    fn accounts(&self) -> &Accounts {
        &self.accounts
    }
}

/// How the programs of a checked config run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scripts {
    /// For a command without a user.
    default: RunAs,
    /// By a command's `(user, group)`.
    users: HashMap<(String, Option<String>), RunAs>,
    /// Bare program names found in [`PATH`].
    paths: HashMap<String, PathBuf>,
}

/// A command with a user the check did not resolve: it was not part of the
/// checked config.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("'{program}' has user '{user}', which the config check did not resolve")]
pub struct Unchecked {
    pub program: String,
    pub user: String,
}

impl Scripts {
    /// Whom a program without a user of its own runs as.
    pub fn default_user(&self) -> &RunAs {
        &self.default
    }

    /// What to run for `command`.
    pub fn program(&self, command: &Command) -> Result<Program, Unchecked> {
        let run_as = match &command.user {
            None => self.default.clone(),
            Some(user) => self
                .users
                .get(&(user.clone(), command.group.clone()))
                .cloned()
                .ok_or_else(|| Unchecked {
                    program: command.program.clone(),
                    user: user.clone(),
                })?,
        };
        Ok(Program {
            path: self
                .paths
                .get(&command.program)
                .cloned()
                .unwrap_or_else(|| command.program.clone().into()),
            args: command.args.clone(),
            run_as,
        })
    }
}

/// A checked config's scripts, and what it is warned about.
#[derive(Debug)]
pub(crate) struct Checked {
    pub scripts: Scripts,
    pub warnings: Vec<Diagnostic>,
}

/// The default user as the config and the system give it.
enum DefaultUser {
    /// `script_user`, or `keepalived_script`.
    User(RunAs),
    /// Neither: the daemon's own user.
    Fallback,
    /// `script_user` cannot be used (reported there).
    Broken,
}

struct Checker<'a, H> {
    host: &'a H,
    map: &'a SourceMap,
    security: bool,
    scripts: Scripts,
    problems: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
    /// The fallback to root was warned about.
    warned_root: bool,
}

/// Resolves and checks every program of `config` (valid, from `map`).
pub(crate) fn check(
    config: &Config,
    map: &SourceMap,
    host: &impl Host,
) -> Result<Checked, Diagnostics> {
    let mut c = Checker {
        host,
        map,
        security: config.global.enable_script_security,
        scripts: Scripts::default(),
        problems: Vec::new(),
        warnings: Vec::new(),
        warned_root: false,
    };
    let default = c.default_user(config);
    if let DefaultUser::User(run_as) = &default {
        c.scripts.default = run_as.clone();
    }
    for site in commands(config) {
        c.site(&site, &default);
    }
    if c.problems.is_empty() {
        Ok(Checked {
            scripts: c.scripts,
            warnings: c.warnings,
        })
    } else {
        Err(Diagnostics::sorted(c.problems))
    }
}

impl<H: Host> Checker<'_, H> {
    /// `user [group]` from the tables.
    fn identity(&self, user: &str, group: Option<&str>) -> Result<Identity, String> {
        let accounts = self.host.accounts();
        let found = accounts
            .user(user)
            .ok_or_else(|| format!("user '{user}' is not in /etc/passwd"))?;
        let (group, supplementary) = match group.map(|g| g.strip_prefix(':').ok_or(g)) {
            None => (None, false),
            Some(Ok(rest)) => (Some(rest).filter(|g| !g.is_empty()), true),
            Some(Err(group)) => (Some(group), false),
        };
        let gid = match group {
            Some(group) => accounts
                .group(group)
                .ok_or_else(|| format!("group '{group}' is not in /etc/group"))?,
            None => found.gid,
        };
        Ok(Identity {
            name: found.name.clone(),
            uid: found.uid,
            gid,
            groups: if supplementary {
                accounts.groups_of(found)
            } else {
                Vec::new()
            },
        })
    }

    /// How to run as `identity`, if the daemon can.
    fn run_as(&self, identity: Identity) -> Result<RunAs, String> {
        let us = self.host.privileges();
        if us.can_switch {
            Ok(RunAs::User(identity))
        } else if us.is(&identity) {
            Ok(RunAs::Daemon)
        } else {
            Err(format!(
                "the daemon (uid {}) cannot switch to user '{}' (uid {}, gid {}): it lacks CAP_SETUID and CAP_SETGID",
                us.uid, identity.name, identity.uid, identity.gid
            ))
        }
    }

    fn default_user(&mut self, config: &Config) -> DefaultUser {
        if let Some(su) = &config.global.script_user {
            return match self
                .identity(&su.user, su.group.as_deref())
                .and_then(|id| self.run_as(id))
            {
                Ok(run_as) => DefaultUser::User(run_as),
                Err(why) => {
                    let pos = self.map.lookup("global.script_user");
                    self.problems
                        .push(Diagnostic::new(pos, format!("script_user: {why}")));
                    DefaultUser::Broken
                }
            };
        }
        let Ok(identity) = self.identity(DEFAULT_USER, None) else {
            return DefaultUser::Fallback;
        };
        match self.run_as(identity) {
            Ok(run_as) => DefaultUser::User(run_as),
            Err(why) => {
                self.warnings.push(Diagnostic::new(
                    self.map.lookup("global"),
                    format!(
                        "{DEFAULT_USER} is not used as the scripts' default user: {why}; scripts without a user run as the daemon's"
                    ),
                ));
                DefaultUser::Fallback
            }
        }
    }

    fn site(&mut self, site: &CommandSite<'_>, default: &DefaultUser) {
        let command = site.command;
        let run_as = match &command.user {
            Some(user) => {
                let found = self
                    .identity(user, command.group.as_deref())
                    .and_then(|id| self.run_as(id));
                match found {
                    Ok(run_as) => {
                        self.scripts
                            .users
                            .insert((user.clone(), command.group.clone()), run_as.clone());
                        run_as
                    }
                    Err(why) => {
                        let user_at = format!("{}.user", site.path);
                        let mut at = vec![user_at.as_str()];
                        at.extend(site.user_path.as_deref());
                        at.push(&site.path);
                        let pos = self.map.lookup_first(&at);
                        self.problems.push(Diagnostic::new(
                            pos,
                            format!("{}: cannot run '{}': {why}", site.owner, command.program),
                        ));
                        return;
                    }
                }
            }
            None => match default {
                DefaultUser::User(run_as) => run_as.clone(),
                DefaultUser::Broken => return,
                DefaultUser::Fallback if self.security => {
                    self.problems.push(Diagnostic::new(
                        self.map.lookup(&site.path),
                        format!(
                            "{}: no user to run '{}' as: with enable_script_security, give it a user, set script_user in global_defs, or create the user {DEFAULT_USER}",
                            site.owner, command.program
                        ),
                    ));
                    return;
                }
                DefaultUser::Fallback => {
                    if self.host.privileges().uid == 0 && !self.warned_root {
                        self.warned_root = true;
                        self.warnings.push(Diagnostic::new(
                            self.map.lookup(&site.path),
                            format!(
                                "{}: '{}' and every other script without a user run as root: set script_user in global_defs or create the user {DEFAULT_USER}",
                                site.owner, command.program
                            ),
                        ));
                    }
                    RunAs::Daemon
                }
            },
        };
        self.secure(site, &run_as);
    }

    /// The path check of `site`'s program, run as `run_as`.
    fn secure(&mut self, site: &CommandSite<'_>, run_as: &RunAs) {
        let program = &site.command.program;
        let at = self
            .map
            .lookup_first(&[&format!("{}.program", site.path), &site.path]);
        let path = if program.contains('/') {
            PathBuf::from(program)
        } else {
            match secure::search(program, PATH, self.host) {
                Some(found) => {
                    self.warnings.push(Diagnostic::new(
                        at.clone(),
                        format!(
                            "{}: '{program}' found in PATH as {}: give the full path",
                            site.owner,
                            found.display()
                        ),
                    ));
                    self.scripts.paths.insert(program.clone(), found.clone());
                    found
                }
                None => {
                    self.insecure(
                        at,
                        format!("{}: '{program}' is not found in {PATH}", site.owner),
                    );
                    return;
                }
            }
        };
        let (uid, gid, name) = match run_as {
            RunAs::User(id) => (id.uid, id.gid, id.name.clone()),
            RunAs::Daemon => {
                let us = self.host.privileges();
                (
                    us.uid,
                    us.gid,
                    format!("the daemon's user (uid {})", us.uid),
                )
            }
        };
        let raises = self
            .host
            .stat(&path)
            .is_ok_and(|file| secure::raises_to_root(&file));
        let (judged, who) = if uid == 0 || gid == 0 || raises {
            (0, "root".to_string())
        } else {
            (uid, name)
        };
        if let Err(problem) = secure::check(&path, judged, self.host) {
            self.insecure(
                at,
                format!(
                    "{}: '{}' runs as {who}, but {problem}",
                    site.owner,
                    path.display()
                ),
            );
        }
    }

    /// A script that fails the path check: refused with
    /// `enable_script_security`, a warning without.
    fn insecure(&mut self, at: crate::config::Position, message: String) {
        if self.security {
            self.problems.push(Diagnostic::new(
                at,
                format!("{message} (enable_script_security refuses it)"),
            ));
        } else {
            self.warnings.push(Diagnostic::new(at, message));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Format, load_str_mapped};
    use crate::script::secure::tests::FakeFs;

    const PASSWD: &str = "root:x:0:0::/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\nops:x:1000:1000::/home/ops:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nnogroup:x:65534:\nops:x:1000:\nwheel:x:10:ops\n";

    struct FakeHost {
        fs: FakeFs,
        privileges: Privileges,
        accounts: Accounts,
    }

    impl FakeHost {
        /// Root with CAP_SETUID and CAP_SETGID, /usr/bin/true and a
        /// world-writable /tmp/open/notify.
        fn root() -> Self {
            let mut fs = FakeFs::system();
            fs.dir("/tmp/open", 0, 0o755)
                .file("/tmp/open/notify", 0, 0o777)
                .dir("/home", 0, 0o755)
                .dir("/home/ops", 1000, 0o755)
                .file("/home/ops/notify", 1000, 0o755);
            Self {
                fs,
                privileges: Privileges {
                    uid: 0,
                    gid: 0,
                    groups: Vec::new(),
                    can_switch: true,
                },
                accounts: Accounts::parse(PASSWD, GROUP),
            }
        }

        /// Root without CAP_SETUID (systemd's bounding set).
        fn bounded_root() -> Self {
            let mut host = Self::root();
            host.privileges.can_switch = false;
            host
        }

        fn with_keepalived_script(mut self) -> Self {
            self.accounts = Accounts::parse(
                &format!("{PASSWD}keepalived_script:x:998:998::/:/bin/false\n"),
                &format!("{GROUP}keepalived_script:x:998:\n"),
            );
            self
        }
    }

    impl Fs for FakeHost {
        fn lstat(&self, path: &Path) -> std::io::Result<Meta> {
            self.fs.lstat(path)
        }
        fn stat(&self, path: &Path) -> std::io::Result<Meta> {
            self.fs.stat(path)
        }
        fn read_link(&self, path: &Path) -> std::io::Result<PathBuf> {
            self.fs.read_link(path)
        }
    }

    impl Host for FakeHost {
        fn privileges(&self) -> &Privileges {
            &self.privileges
        }
        fn accounts(&self) -> &Accounts {
            &self.accounts
        }
    }

    fn checked(text: &str, host: &FakeHost) -> Result<(Config, Checked), Vec<String>> {
        let format = if text.contains(" = ") {
            Format::Toml
        } else {
            Format::Keepalived
        };
        let name = if format == Format::Toml {
            "a.toml"
        } else {
            "k.conf"
        };
        let (config, map) =
            load_str_mapped(Path::new(name), text, format).unwrap_or_else(|d| panic!("{d}"));
        check(&config, &map, host)
            .map(|c| (config, c))
            .map_err(|d| d.iter().map(ToString::to_string).collect())
    }

    fn problems(text: &str, host: &FakeHost) -> Vec<String> {
        checked(text, host).err().unwrap_or_default()
    }

    fn warnings(text: &str, host: &FakeHost) -> Vec<String> {
        match checked(text, host) {
            Ok((_, c)) => c.warnings.iter().map(ToString::to_string).collect(),
            Err(problems) => panic!("{problems:?}"),
        }
    }

    fn nobody(groups: Vec<u32>) -> RunAs {
        RunAs::User(Identity {
            name: "nobody".into(),
            uid: 65534,
            gid: 65534,
            groups,
        })
    }

    /// The program of the config's first vrrp_script.
    fn tracked(text: &str, host: &FakeHost) -> Program {
        let (config, c) = checked(text, host).unwrap_or_else(|p| panic!("{p:?}"));
        c.scripts.program(&config.vrrp_script[0].script).unwrap()
    }

    const SCRIPT: &str = "vrrp_script chk {\n    script \"/usr/bin/true\"\n}\n";

    #[test]
    fn script_user_is_the_default_and_a_scripts_own_user_wins() {
        let host = FakeHost::root();
        let text = format!("global_defs {{\n    script_user nobody\n}}\n{SCRIPT}");
        assert_eq!(tracked(&text, &host).run_as, nobody(vec![]));
        let own = text.replace("true\"\n}", "true\"\n    user ops wheel\n}");
        assert_eq!(
            tracked(&own, &host).run_as,
            RunAs::User(Identity {
                name: "ops".into(),
                uid: 1000,
                gid: 10,
                groups: vec![],
            })
        );
        // In TOML too.
        let toml = "[global]\nscript_user = { user = \"nobody\", group = \":\" }\n\n\
                    [[vrrp_script]]\nname = \"chk\"\nscript = { program = \"/usr/bin/true\" }\n";
        assert_eq!(tracked(toml, &host).run_as, nobody(vec![65534]));
    }

    #[test]
    fn without_script_user_keepalived_script_then_the_daemon() {
        let host = FakeHost::root().with_keepalived_script();
        let RunAs::User(id) = tracked(SCRIPT, &host).run_as else {
            panic!("keepalived_script")
        };
        assert_eq!((id.name.as_str(), id.uid), ("keepalived_script", 998));
        let host = FakeHost::root();
        assert_eq!(tracked(SCRIPT, &host).run_as, RunAs::Daemon);
        assert_eq!(
            warnings(SCRIPT, &host),
            [
                "k.conf:2:5: vrrp_script 'chk': '/usr/bin/true' and every other script without a user run as root: set script_user in global_defs or create the user keepalived_script"
            ]
        );
    }

    #[test]
    fn a_user_the_daemon_cannot_become_is_refused_where_it_is_given() {
        let host = FakeHost::bounded_root();
        let text = "\
global_defs {
    script_user nobody
}
vrrp_script chk {
    script /usr/bin/true
    user ops
}
vrrp_sync_group G {
    group {
        VI_1
    }
    notify_master \"/usr/bin/true master\" ops
}
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 1
}
virtual_server 10.0.0.1 80 {
    protocol TCP
    quorum_up /usr/bin/true nobody
    real_server 10.0.1.1 80 {
        notify_down /usr/bin/true ops
        MISC_CHECK {
            misc_path /usr/bin/true
            user nobody nogroup
        }
    }
}
";
        let cannot = |who: &str, uid: u32| {
            format!(
                "the daemon (uid 0) cannot switch to user '{who}' (uid {uid}, gid {uid}): it lacks CAP_SETUID and CAP_SETGID"
            )
        };
        assert_eq!(
            problems(text, &host),
            [
                format!("k.conf:2:5: script_user: {}", cannot("nobody", 65534)),
                format!(
                    "k.conf:6:5: vrrp_script 'chk': cannot run '/usr/bin/true': {}",
                    cannot("ops", 1000)
                ),
                format!(
                    "k.conf:12:5: vrrp_sync_group 'G' notify_master: cannot run '/usr/bin/true': {}",
                    cannot("ops", 1000)
                ),
                format!(
                    "k.conf:20:5: virtual_server TCP 10.0.0.1:80 quorum_up: cannot run '/usr/bin/true': {}",
                    cannot("nobody", 65534)
                ),
                format!(
                    "k.conf:22:9: real_server 10.0.1.1:80 notify_down: cannot run '/usr/bin/true': {}",
                    cannot("ops", 1000)
                ),
                format!(
                    "k.conf:25:13: real_server 10.0.1.1:80 MISC_CHECK: cannot run '/usr/bin/true': {}",
                    cannot("nobody", 65534)
                ),
            ]
        );
    }

    #[test]
    fn a_notify_fifo_script_is_checked_where_it_is_given() {
        let host = FakeHost::bounded_root();
        let text = "global_defs {\n    lvs_notify_fifo /run/lvs.fifo\n    lvs_notify_fifo_script \"/usr/bin/true -q\" ops\n}\n";
        assert_eq!(
            problems(text, &host),
            [
                "k.conf:3:5: lvs_notify_fifo_script: cannot run '/usr/bin/true': the daemon (uid 0) cannot switch to user 'ops' (uid 1000, gid 1000): it lacks CAP_SETUID and CAP_SETGID"
            ]
        );
    }

    #[test]
    fn the_daemons_own_user_needs_no_switch_and_keepalived_script_is_passed_over() {
        let mut host = FakeHost::root().with_keepalived_script();
        host.privileges = Privileges {
            uid: 65534,
            gid: 65534,
            groups: Vec::new(),
            can_switch: false,
        };
        let text = SCRIPT.replace("}\n", "    user nobody\n}\n");
        assert_eq!(tracked(&text, &host).run_as, RunAs::Daemon);
        assert_eq!(tracked(SCRIPT, &host).run_as, RunAs::Daemon);
        assert_eq!(
            warnings(SCRIPT, &host),
            [
                "k.conf:1:1: keepalived_script is not used as the scripts' default user: the daemon (uid 65534) cannot switch to user 'keepalived_script' (uid 998, gid 998): it lacks CAP_SETUID and CAP_SETGID; scripts without a user run as the daemon's"
            ]
        );
    }

    #[test]
    fn unknown_users_and_groups_are_refused() {
        let host = FakeHost::root();
        let text = SCRIPT.replace("}\n", "    user nosuch\n}\n");
        assert_eq!(
            problems(&text, &host),
            [
                "k.conf:3:5: vrrp_script 'chk': cannot run '/usr/bin/true': user 'nosuch' is not in /etc/passwd"
            ]
        );
        let toml = "[[vrrp_script]]\nname = \"chk\"\nscript = { program = \"/usr/bin/true\", user = \"ops\", group = \"nosuch\" }\n";
        assert_eq!(
            problems(toml, &host),
            [
                "a.toml:3:39: vrrp_script 'chk': cannot run '/usr/bin/true': group 'nosuch' is not in /etc/group"
            ]
        );
    }

    #[test]
    fn enable_script_security_refuses_what_others_could_change() {
        let host = FakeHost::root();
        let secure = "global_defs {\n    script_user root\n    enable_script_security\n}\n";
        let open = "vrrp_script chk {\n    script /tmp/open/notify\n}\n";
        assert_eq!(
            problems(&format!("{secure}{open}"), &host),
            [
                "k.conf:6:5: vrrp_script 'chk': '/tmp/open/notify' runs as root, but /tmp/open/notify is writable by everyone (enable_script_security refuses it)"
            ]
        );
        // Without it, a warning.
        let lax = format!("global_defs {{\n    script_user root\n}}\n{open}");
        assert_eq!(
            warnings(&lax, &host),
            [
                "k.conf:5:5: vrrp_script 'chk': '/tmp/open/notify' runs as root, but /tmp/open/notify is writable by everyone"
            ]
        );
        // A user's own script is safe for that user, not for root.
        let own = "vrrp_script chk {\n    script /home/ops/notify\n    user ops\n}\n";
        assert!(checked(&format!("{secure}{own}"), &host).is_ok());
        assert_eq!(
            problems(
                &format!("{secure}{}", own.replace("user ops", "user root")),
                &host
            ),
            [
                "k.conf:6:5: vrrp_script 'chk': '/home/ops/notify' runs as root, but /home/ops is owned by uid 1000 (enable_script_security refuses it)"
            ]
        );
        // A missing script cannot be checked.
        assert_eq!(
            problems(
                &format!(
                    "{secure}{}",
                    open.replace("/tmp/open/notify", "/usr/bin/missing")
                ),
                &host
            ),
            [
                "k.conf:6:5: vrrp_script 'chk': '/usr/bin/missing' runs as root, but /usr/bin/missing: entity not found (enable_script_security refuses it)"
            ]
        );
    }

    #[test]
    fn enable_script_security_needs_a_user_besides_the_daemons_fallback() {
        let host = FakeHost::root();
        let text = format!("global_defs {{\n    enable_script_security\n}}\n{SCRIPT}");
        assert_eq!(
            problems(&text, &host),
            [
                "k.conf:5:5: vrrp_script 'chk': no user to run '/usr/bin/true' as: with enable_script_security, give it a user, set script_user in global_defs, or create the user keepalived_script"
            ]
        );
        assert!(checked(&text, &FakeHost::root().with_keepalived_script()).is_ok());
    }

    #[test]
    fn a_bare_name_is_found_in_path_once() {
        let host = FakeHost::root();
        let text = "global_defs {\n    script_user root\n}\nvrrp_script chk {\n    script \"true --x\"\n}\n";
        let program = tracked(text, &host);
        assert_eq!(program.path, Path::new("/usr/bin/true"));
        assert_eq!(program.args, ["--x"]);
        assert_eq!(
            warnings(text, &host),
            [
                "k.conf:5:5: vrrp_script 'chk': 'true' found in PATH as /usr/bin/true: give the full path"
            ]
        );
    }

    #[test]
    fn an_unchecked_user_is_an_error_not_the_daemon() {
        let command = Command {
            program: "/usr/bin/true".into(),
            args: vec![],
            user: Some("nobody".into()),
            group: None,
        };
        assert_eq!(
            Scripts::default().program(&command),
            Err(Unchecked {
                program: "/usr/bin/true".into(),
                user: "nobody".into()
            })
        );
    }
}
