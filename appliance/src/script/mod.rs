//! Running external programs from config: track scripts (`vrrp_script`),
//! notify scripts and `MISC_CHECK`. A program is an argv vector taken from
//! config and never handed to a shell, so nothing in a config value is ever
//! interpreted as shell syntax. A run that outlives its timeout is killed
//! (its whole process group, so children go too) and counts as a failure:
//! a hung script costs its timeout, never a stuck daemon.
//!
//! A script gets nothing of the daemon's but what is written here: it runs
//! as its user ([`RunAs`]; see [`check`] for how that is chosen), with no
//! ambient capabilities (the daemon's CAP_NET_ADMIN and CAP_NET_RAW under
//! systemd would otherwise pass to it), and with the environment of
//! [`environment`] only.

pub(crate) mod accounts;
pub(crate) mod check;
pub(crate) mod secure;
pub(crate) mod user;

pub use user::{Identity, Privileges, RunAs};

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

/// A program, its arguments and its user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Program {
    pub path: PathBuf,
    pub args: Vec<String>,
    pub run_as: RunAs,
}

/// Every script's `PATH`, whatever the daemon's: a bare program name is
/// looked up in it (at load, see [`check`]), and a script's own commands
/// find the system's tools in it.
pub const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The daemon's variables a script gets when the daemon has them: the
/// language and time zone its tools print in. Nothing else passes (not
/// systemd's notify socket, not `LD_PRELOAD`, not credentials).
pub const PASSED: [&str; 3] = ["LANG", "LC_ALL", "TZ"];

/// A script's whole environment: `PATH` fixed to [`PATH`], and each of
/// [`PASSED`] that `daemon` (the daemon's environment) has.
pub fn environment(daemon: impl Fn(&str) -> Option<OsString>) -> Vec<(OsString, OsString)> {
    let mut env = vec![(OsString::from("PATH"), OsString::from(PATH))];
    for name in PASSED {
        if let Some(value) = daemon(name) {
            env.push((name.into(), value));
        }
    }
    env
}

/// A user to become in the child, in the types the system calls take
/// (built before the fork: the child of a threaded process may not
/// allocate).
struct Switch {
    groups: Vec<nix::unistd::Gid>,
    gid: nix::unistd::Gid,
    uid: nix::unistd::Uid,
}

impl Switch {
    fn to(run_as: &RunAs) -> Option<Self> {
        match run_as {
            RunAs::Daemon => None,
            RunAs::User(identity) => Some(Self {
                groups: identity
                    .groups
                    .iter()
                    .map(|&g| nix::unistd::Gid::from_raw(g))
                    .collect(),
                gid: nix::unistd::Gid::from_raw(identity.gid),
                uid: nix::unistd::Uid::from_raw(identity.uid),
            }),
        }
    }
}

/// In the child, before it runs the program: the user's groups, group and
/// user (in that order: setting the user drops the right to set the
/// others), then no ambient capabilities. System calls only.
fn become_script(switch: Option<&Switch>) -> std::io::Result<()> {
    if let Some(switch) = switch {
        nix::unistd::setgroups(&switch.groups)?;
        nix::unistd::setgid(switch.gid)?;
        nix::unistd::setuid(switch.uid)?;
    }
    // SAFETY: prctl with integer arguments only.
    let cleared = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        )
    };
    // EINVAL: a kernel older than 4.3 has no ambient set to clear.
    if cleared != 0 && nix::errno::Errno::last() != nix::errno::Errno::EINVAL {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// How one run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It exited with this code (0 is success).
    Exited(i32),
    /// A signal ended it (not ours).
    Signalled(i32),
    /// It ran past its timeout and was killed.
    TimedOut,
    /// It could not be started (missing, not executable, no process or
    /// descriptor left...); `errno` says which when the system did.
    NotStarted { why: String, errno: Option<i32> },
}

impl Outcome {
    fn not_started(e: &std::io::Error) -> Self {
        Outcome::NotStarted {
            why: e.to_string(),
            errno: e.raw_os_error(),
        }
    }

    pub fn success(&self) -> bool {
        matches!(self, Outcome::Exited(0))
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Exited(code) => write!(f, "exited with {code}"),
            Outcome::Signalled(sig) => write!(f, "killed by signal {sig}"),
            Outcome::TimedOut => write!(f, "timed out"),
            Outcome::NotStarted { why, .. } => write!(f, "could not start: {why}"),
        }
    }
}

/// Starts `program` with `extra_args` appended, as [`run`] does, and
/// leaves it running: for a program that lives as long as the daemon (a
/// notify FIFO's reader). It leads its own process group, so a stop can
/// signal what it started too.
pub fn spawn(program: &Program, extra_args: &[String]) -> std::io::Result<tokio::process::Child> {
    command(program, extra_args).spawn()
}

/// The process `program` runs in: its arguments, its user, its
/// environment, its own process group, output to /dev/null.
fn command(program: &Program, extra_args: &[String]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(&program.path);
    cmd.args(&program.args)
        .args(extra_args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .env_clear()
        .envs(environment(|name| std::env::var_os(name)))
        // Its own process group, so a timeout kills what it started too.
        .process_group(0)
        .kill_on_drop(true);
    let switch = Switch::to(&program.run_as);
    // SAFETY: the closure makes system calls only, on data built before
    // the fork.
    unsafe {
        cmd.pre_exec(move || become_script(switch.as_ref()));
    }
    cmd
}

/// Runs `program` with `extra_args` appended, waits at most `timeout`.
/// Output goes to /dev/null: scripts report through their exit code.
pub async fn run(program: &Program, extra_args: &[String], timeout: Duration) -> Outcome {
    use std::os::unix::process::ExitStatusExt;
    let mut child = match command(program, extra_args).spawn() {
        Ok(child) => child,
        Err(e) => return Outcome::not_started(&e),
    };
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) => match (status.code(), status.signal()) {
            (Some(code), _) => Outcome::Exited(code),
            (None, Some(sig)) => Outcome::Signalled(sig),
            (None, None) => Outcome::Exited(-1),
        },
        Ok(Err(e)) => Outcome::not_started(&e),
        Err(_elapsed) => {
            if let Some(pid) = child.id().and_then(|pid| i32::try_from(pid).ok()) {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            let _ = child.wait().await;
            Outcome::TimedOut
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Program {
        Program {
            path: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
            run_as: RunAs::Daemon,
        }
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn exit_codes_are_reported() {
        assert_eq!(
            block_on(run(&sh("exit 0"), &[], Duration::from_secs(5))),
            Outcome::Exited(0)
        );
        assert_eq!(
            block_on(run(&sh("exit 3"), &[], Duration::from_secs(5))),
            Outcome::Exited(3)
        );
    }

    #[test]
    fn arguments_are_passed_verbatim_not_through_a_shell() {
        // `$0` of `sh -c` is the first extra argument; a shell would expand it.
        let p = sh(r#"[ "$0" = '$(exit 1); *' ]"#);
        assert!(block_on(run(&p, &["$(exit 1); *".into()], Duration::from_secs(5))).success());
    }

    #[test]
    fn a_hung_script_costs_its_timeout_and_its_children_die() {
        let dir = std::env::temp_dir().join(format!("appliance-script-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pidfile = dir.join("child.pid");
        let p = sh(&format!("sleep 30 & echo $! > {}; wait", pidfile.display()));
        let start = std::time::Instant::now();
        assert_eq!(
            block_on(run(&p, &[], Duration::from_millis(300))),
            Outcome::TimedOut
        );
        assert!(start.elapsed() < Duration::from_secs(5));
        let child: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(child), None).is_ok()
            && !std::fs::read_to_string(format!("/proc/{child}/stat"))
                .unwrap_or_default()
                .contains(") Z ");
        assert!(!alive, "the script's child {child} was killed with it");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_missing_program_is_reported_not_panicked() {
        let p = Program {
            path: "/nonexistent/check".into(),
            args: vec![],
            run_as: RunAs::Daemon,
        };
        assert!(matches!(
            block_on(run(&p, &[], Duration::from_secs(1))),
            Outcome::NotStarted { .. }
        ));
    }

    #[test]
    fn the_environment_is_a_fixed_path_and_the_passed_variables() {
        let daemon = |name: &str| match name {
            "LANG" => Some(OsString::from("C.UTF-8")),
            "HOME" | "NOTIFY_SOCKET" | "LD_PRELOAD" => Some(OsString::from("x")),
            _ => None,
        };
        assert_eq!(
            environment(daemon),
            [
                ("PATH".into(), PATH.into()),
                ("LANG".into(), "C.UTF-8".into())
            ]
        );
    }

    #[test]
    fn a_script_gets_none_of_the_daemons_other_variables() {
        // Every test process has a HOME and a PATH of its own.
        assert!(std::env::var_os("HOME").is_some());
        let p = sh(&format!(
            r#"[ -z "${{HOME+set}}" ] && [ "$PATH" = '{PATH}' ]"#
        ));
        assert_eq!(
            block_on(run(&p, &[], Duration::from_secs(5))),
            Outcome::Exited(0)
        );
    }
}
