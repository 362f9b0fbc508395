//! Fail points for tests: named places where a test build can be made to
//! panic on purpose, to show what a panic there takes down. They exist only
//! with the `failpoints` feature (the tests' build); elsewhere
//! `fail_point!` expands to nothing.
//!
//! `FAILPOINTS` arms them: `name=plan;name=plan`, a plan being
//! `N*panic(message)`, optionally after `K*off->` (pass K times first).

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock, PoisonError};

/// What one armed point does: pass `skip` times, then panic `panics`
/// times with `message`, then pass.
#[derive(Debug, PartialEq, Eq)]
struct Plan {
    skip: u64,
    panics: u64,
    message: String,
}

/// `name=plan;...` as [`FAILPOINTS`](self) says; what does not read is
/// left out.
fn parse(spec: &str) -> HashMap<String, Plan> {
    let counted = |part: &str, action: &str| -> Option<(u64, String)> {
        let (count, rest) = part.split_once('*')?;
        let count = count.trim().parse().ok()?;
        let argument = rest.strip_prefix(action)?;
        let argument = argument
            .strip_prefix('(')
            .and_then(|a| a.strip_suffix(')'))
            .unwrap_or(argument);
        Some((count, argument.to_string()))
    };
    spec.split(';')
        .filter_map(|entry| {
            let (name, plan) = entry.split_once('=')?;
            let (skip, panic) = match plan.split_once("->") {
                Some((off, panic)) => (counted(off, "off")?.0, panic),
                None => (0, plan),
            };
            let (panics, message) = counted(panic, "panic")?;
            Some((
                name.trim().to_string(),
                Plan {
                    skip,
                    panics,
                    message,
                },
            ))
        })
        .collect()
}

/// Passes through the point `name`, panicking if its plan says so.
pub fn hit(name: &str) {
    static POINTS: OnceLock<Mutex<HashMap<String, Plan>>> = OnceLock::new();
    let points =
        POINTS.get_or_init(|| Mutex::new(parse(&std::env::var("FAILPOINTS").unwrap_or_default())));
    let message = {
        let mut points = points.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(plan) = points.get_mut(name) else {
            return;
        };
        if plan.skip > 0 {
            plan.skip -= 1;
            return;
        }
        if plan.panics == 0 {
            return;
        }
        plan.panics -= 1;
        plan.message.clone()
    };
    // The lock is released: the panic poisons nothing.
    panic!("{message}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_read_as_the_tests_write_them() {
        let points = parse("check-probe=1*panic(probe); vrrp-advert=3*off->1*panic(vrrp);bad");
        assert_eq!(
            points.get("check-probe"),
            Some(&Plan {
                skip: 0,
                panics: 1,
                message: "probe".into()
            })
        );
        assert_eq!(
            points.get("vrrp-advert"),
            Some(&Plan {
                skip: 3,
                panics: 1,
                message: "vrrp".into()
            })
        );
        assert_eq!(points.len(), 2);
    }
}
