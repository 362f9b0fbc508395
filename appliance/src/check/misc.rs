//! MISC_CHECK: a program run with its arguments (never through a shell),
//! killed with its process group after `misc_timeout`; its exit code is the
//! verdict ([`misc_outcome`]).

use super::decision::{DynamicWeight, Failure, Outcome};
use super::probe::{Probe, Start};
use crate::config::model::{MiscCheck, VirtualServer};
use crate::script::check::{Scripts, Unchecked};
use crate::script::{self, Program};
use std::sync::Arc;
use std::time::Duration;

/// A MISC_CHECK.
pub struct MiscProbe {
    program: Arc<Program>,
    timeout: Duration,
    dynamic: bool,
}

impl MiscProbe {
    pub fn new(
        check: &MiscCheck,
        vs: &VirtualServer,
        scripts: &Scripts,
    ) -> Result<Self, Unchecked> {
        Ok(Self {
            program: Arc::new(scripts.program(&check.misc_path)?),
            // keepalived: no misc_timeout means the delay_loop.
            timeout: check.misc_timeout.unwrap_or(vs.delay_loop),
            dynamic: check.misc_dynamic,
        })
    }
}

impl Probe for MiscProbe {
    fn kind(&self) -> &'static str {
        "MISC_CHECK"
    }

    fn start(&self) -> Start {
        let (program, timeout, dynamic) = (self.program.clone(), self.timeout, self.dynamic);
        Start::Future(Box::pin(
            async move { probe(&program, timeout, dynamic).await },
        ))
    }
}

/// One MISC_CHECK run.
pub async fn probe(program: &Program, timeout: Duration, dynamic: bool) -> Outcome {
    misc_outcome(&script::run(program, &[], timeout).await, dynamic)
}

/// keepalived's MISC_CHECK exit codes (check_misc.c): 0 is up; with
/// `misc_dynamic`, 2..=255 is up with weight `code - 2` and 0 restores the
/// configured weight; anything else (1, a signal, a timeout) is down.
pub fn misc_outcome(outcome: &crate::script::Outcome, dynamic: bool) -> Outcome {
    use crate::script::Outcome as S;
    match *outcome {
        S::Exited(0) if dynamic => Outcome::UpWeighted(DynamicWeight::Configured),
        S::Exited(0) => Outcome::Up,
        S::Exited(code @ 2..=255) if dynamic => {
            Outcome::UpWeighted(DynamicWeight::Set(code.unsigned_abs() - 2))
        }
        S::Exited(code) => Outcome::Down(Failure::Exit(code)),
        S::Signalled(sig) => Outcome::Down(Failure::Signal(sig)),
        S::TimedOut => Outcome::Down(Failure::Timeout),
        S::NotStarted { errno, .. } => Outcome::Down(
            errno
                .and_then(super::local_fault_of_errno)
                .map_or(Failure::NotStarted, Failure::Local),
        ),
    }
}
