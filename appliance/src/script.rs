//! Running external programs from config: track scripts (`vrrp_script`),
//! notify scripts and, later, `MISC_CHECK`. A program is an argv vector
//! taken from config and never handed to a shell, so nothing in a config
//! value is ever interpreted as shell syntax. A run that outlives its
//! timeout is killed (its whole process group, so children go too) and
//! counts as a failure: a hung script costs its timeout, never a stuck
//! daemon.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

/// A program and its arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Program {
    pub path: PathBuf,
    pub args: Vec<String>,
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

/// Runs `program` with `extra_args` appended, waits at most `timeout`.
/// Output goes to /dev/null: scripts report through their exit code.
pub async fn run(program: &Program, extra_args: &[String], timeout: Duration) -> Outcome {
    use std::os::unix::process::ExitStatusExt;
    let mut cmd = tokio::process::Command::new(&program.path);
    cmd.args(&program.args)
        .args(extra_args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // systemd's notify socket and watchdog are the daemon's: a script
        // must not report for it.
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID")
        // Its own process group, so a timeout kills what it started too.
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
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
        };
        assert!(matches!(
            block_on(run(&p, &[], Duration::from_secs(1))),
            Outcome::NotStarted { .. }
        ));
    }
}
