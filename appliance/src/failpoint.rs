//! Fail points for tests: named places where a test build can be made to
//! panic, or to hold as a stalled kernel would, to show what that takes
//! down. They exist only with the `failpoints` feature (the tests' build);
//! elsewhere `fail_point!` expands to nothing.
//!
//! `FAILPOINTS` arms them: `name=plan;name=plan`, a plan being either
//! `N*panic(message)`, optionally after `K*off->` (pass K times first), or
//! `hold(path)`: every pass waits while the file `path` exists, so a test
//! decides from outside when the stall starts and ends.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

/// What one armed point does.
#[derive(Debug, PartialEq, Eq)]
enum Plan {
    /// Pass `skip` times, then panic `panics` times with `message`, then
    /// pass.
    Panic {
        skip: u64,
        panics: u64,
        message: String,
    },
    /// Wait while this file exists.
    Hold(PathBuf),
}

/// How often a held point looks for its file.
const HOLD_POLL: Duration = Duration::from_millis(10);

/// `name=plan;...` as [`FAILPOINTS`](self) says; what does not read is
/// left out.
fn parse(spec: &str) -> HashMap<String, Plan> {
    let argument = |text: &str, action: &str| -> Option<String> {
        let argument = text.strip_prefix(action)?;
        Some(
            argument
                .strip_prefix('(')
                .and_then(|a| a.strip_suffix(')'))
                .unwrap_or(argument)
                .to_string(),
        )
    };
    let counted = |part: &str, action: &str| -> Option<(u64, String)> {
        let (count, rest) = part.split_once('*')?;
        let count = count.trim().parse().ok()?;
        Some((count, argument(rest, action)?))
    };
    spec.split(';')
        .filter_map(|entry| {
            let (name, plan) = entry.split_once('=')?;
            let plan = plan.trim();
            let plan = if let Some(path) = argument(plan, "hold") {
                Plan::Hold(PathBuf::from(path))
            } else {
                let (skip, panic) = match plan.split_once("->") {
                    Some((off, panic)) => (counted(off, "off")?.0, panic),
                    None => (0, plan),
                };
                let (panics, message) = counted(panic, "panic")?;
                Plan::Panic {
                    skip,
                    panics,
                    message,
                }
            };
            Some((name.trim().to_string(), plan))
        })
        .collect()
}

/// Passes through the point `name`, panicking or holding if its plan says
/// so.
pub(crate) fn hit(name: &str) {
    static POINTS: OnceLock<Mutex<HashMap<String, Plan>>> = OnceLock::new();
    let points =
        POINTS.get_or_init(|| Mutex::new(parse(&std::env::var("FAILPOINTS").unwrap_or_default())));
    let message = {
        let mut points = points.lock().unwrap_or_else(PoisonError::into_inner);
        match points.get_mut(name) {
            None => return,
            Some(Plan::Hold(path)) => {
                let path = path.clone();
                // The lock is released: other points pass meanwhile.
                drop(points);
                while path.exists() {
                    std::thread::sleep(HOLD_POLL);
                }
                return;
            }
            Some(Plan::Panic {
                skip,
                panics,
                message,
            }) => {
                if *skip > 0 {
                    *skip -= 1;
                    return;
                }
                if *panics == 0 {
                    return;
                }
                *panics -= 1;
                message.clone()
            }
        }
    };
    // The lock is released: the panic poisons nothing.
    panic!("{message}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_read_as_the_tests_write_them() {
        let points = parse(
            "check-probe=1*panic(probe); vrrp-advert=3*off->1*panic(vrrp);bad;netlink=hold(/run/x)",
        );
        assert_eq!(
            points.get("check-probe"),
            Some(&Plan::Panic {
                skip: 0,
                panics: 1,
                message: "probe".into()
            })
        );
        assert_eq!(
            points.get("vrrp-advert"),
            Some(&Plan::Panic {
                skip: 3,
                panics: 1,
                message: "vrrp".into()
            })
        );
        assert_eq!(
            points.get("netlink"),
            Some(&Plan::Hold(PathBuf::from("/run/x")))
        );
        assert_eq!(points.len(), 3);
    }
}
