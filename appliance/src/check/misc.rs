//! MISC_CHECK: a program run with its arguments (never through a shell),
//! killed with its process group after `misc_timeout`; its exit code is the
//! verdict ([`misc_outcome`]).

use super::decision::{DynamicWeight, Failure, Outcome};
use crate::script::{self, Program};
use std::time::Duration;

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
