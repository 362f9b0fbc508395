//! MISC_CHECK: a program run with its arguments (never through a shell),
//! killed with its process group after `misc_timeout`; its exit code is the
//! verdict ([`super::decision::misc_outcome`]).

use super::decision::{Outcome, misc_outcome};
use crate::script::{self, Program};
use std::time::Duration;

/// One MISC_CHECK run.
pub async fn probe(program: &Program, timeout: Duration, dynamic: bool) -> Outcome {
    misc_outcome(&script::run(program, &[], timeout).await, dynamic)
}
