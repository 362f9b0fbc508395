//! The health checker's decisions as data: each case in `tests/checker/`
//! gives virtual servers (keepalived.conf, as users write them) and the
//! outcomes its checks report, in time order; its snapshot is every
//! action the sans-IO checker ([`Checker`]) returns: when each check runs
//! next, real servers going up and down with their weights, quorum and
//! sorry-server changes, the pools the dataplane gets and the notify
//! programs run. Operator's changes (`appliance disable` and the like) may
//! come between the outcomes. The case's leading comment says what it shows and is kept
//! in the snapshot. Adding a case is adding a file.

use appliance::check::decision::{
    Action, Admin, Checker, DynamicWeight, Failure, LocalFault, Mode, NotifyTarget, Outcome,
    ProbeId, RsId, VsId,
};
use appliance::check::plan::plan;
use appliance::clock::Instant;
use appliance::config::model::{Service, VirtualServer};
use appliance::config::{self, Format};
mod case;

use serde::Deserialize;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    /// keepalived.conf text with the virtual servers.
    config: String,
    #[serde(default)]
    outcome: Vec<Report>,
    #[serde(default)]
    operator: Vec<Operator>,
}

/// An operator's change at `at` (after the outcomes of the same moment):
/// `server` counts the config's real servers from 0, in order; `set` is
/// `enable`, `disable`, `drain`, `weight N` or `weight configured`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Operator {
    #[serde(with = "humantime_serde")]
    at: Duration,
    server: u32,
    set: String,
}

fn admin(before: Admin, text: &str) -> Result<Admin, String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    Ok(match words.as_slice() {
        ["enable"] => Admin {
            mode: Mode::Enabled,
            ..before
        },
        ["disable"] => Admin {
            mode: Mode::Disabled,
            ..before
        },
        ["drain"] => Admin {
            mode: Mode::Draining,
            ..before
        },
        ["weight", "configured"] => Admin {
            weight: None,
            ..before
        },
        ["weight", n] => Admin {
            weight: Some(n.parse().map_err(|e| format!("{text}: {e}"))?),
            ..before
        },
        _ => return Err(format!("unknown setting {text:?}")),
    })
}

/// One check's outcome: `check` counts the config's checks from 0, in
/// order; `result` is `up`, `up weight N`, `down timeout`, `down refused`,
/// `down status N`, `down exit N` or `down local` (the director's own
/// fault).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Report {
    #[serde(with = "humantime_serde")]
    at: Duration,
    check: u32,
    result: String,
}

fn outcome(text: &str) -> Result<Outcome, String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let number = |w: &str| w.parse::<i64>().map_err(|e| format!("{text}: {e}"));
    Ok(match words.as_slice() {
        ["up"] => Outcome::Up,
        ["up", "weight", n] => Outcome::UpWeighted(DynamicWeight::Set(
            u32::try_from(number(n)?).map_err(|e| e.to_string())?,
        )),
        ["down", "timeout"] => Outcome::Down(Failure::Timeout),
        ["down", "refused"] => {
            Outcome::Down(Failure::Connect(std::io::ErrorKind::ConnectionRefused))
        }
        ["down", "status", n] => Outcome::Down(Failure::Status(
            u16::try_from(number(n)?).map_err(|e| e.to_string())?,
        )),
        ["down", "exit", n] => Outcome::Down(Failure::Exit(
            i32::try_from(number(n)?).map_err(|e| e.to_string())?,
        )),
        ["down", "local"] => Outcome::Down(Failure::Local(LocalFault::Descriptors)),
        _ => return Err(format!("unknown result {text:?}")),
    })
}

/// The service of virtual server `vs`: its index in the config.
fn service(servers: &[VirtualServer], vs: VsId) -> String {
    match servers.get(vs.0 as usize).map(|v| &v.service) {
        Some(Service::Address(a)) => a.to_string(),
        Some(Service::Fwmark(m)) => format!("fwmark {m}"),
        Some(Service::Group(name)) => format!("group {name}"),
        None => "?".into(),
    }
}

fn render(checker: &Checker, servers: &[VirtualServer], actions: &[Action], out: &mut String) {
    for action in actions {
        let server = |rs| {
            checker
                .server_address(rs)
                .map_or_else(|| "?".into(), |a| a.to_string())
        };
        let line = match action {
            Action::Schedule { probe, at } => format!("check {} runs at {at}", probe.0),
            Action::Admin { rs, admin, weight } => format!(
                "real server {} {}{} ({})",
                server(*rs),
                admin.mode.name(),
                admin
                    .weight
                    .map_or_else(String::new, |w| format!(", operator's weight {w}")),
                if admin.mode == Mode::Disabled {
                    "out of its pool".to_string()
                } else {
                    format!("weight {weight}")
                }
            ),
            Action::Server { rs, alive, weight } => format!(
                "real server {} {} (weight {weight})",
                server(*rs),
                if *alive { "UP" } else { "DOWN" }
            ),
            Action::Quorum {
                vs,
                up,
                weight_sum,
                threshold,
            } => format!(
                "quorum of {} {} (live weight {weight_sum} against {threshold})",
                service(servers, *vs),
                if *up { "up" } else { "down" }
            ),
            Action::SorryServer { vs, active } => format!(
                "sorry server of {} {}",
                service(servers, *vs),
                if *active { "in" } else { "out" }
            ),
            Action::Pool { vs } => {
                let pool: Vec<String> = checker
                    .pool(*vs)
                    .iter()
                    .map(|d| format!("{} w{}", d.address, d.weight))
                    .collect();
                format!("pool of {}: [{}]", service(servers, *vs), pool.join(", "))
            }
            Action::Notify(target) => match target {
                NotifyTarget::RsUp(rs) => format!("notify_up of {}", server(*rs)),
                NotifyTarget::RsDown(rs) => format!("notify_down of {}", server(*rs)),
                NotifyTarget::QuorumUp(vs) => {
                    format!("quorum_up of {}", service(servers, *vs))
                }
                NotifyTarget::QuorumDown(vs) => {
                    format!("quorum_down of {}", service(servers, *vs))
                }
            },
        };
        let _ = writeln!(out, "  {line}");
    }
    if actions.is_empty() {
        let _ = writeln!(out, "  (nothing)");
    }
}

fn run(path: &Path) -> String {
    let (case, what): (Case, String) = case::read(path);
    let config = config::load_text(path, &case.config, Format::Keepalived)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    // No warmup drawn: the first runs are at the bootstrap delay.
    let (mut checker, actions) = Checker::start(
        &plan(&config.virtual_server, &config.track_file),
        Instant::ZERO,
        |_| Duration::ZERO,
    )
    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = format!("{what}\n\nstart\n");
    render(&checker, &config.virtual_server, &actions, &mut out);
    let mut events: Vec<(Duration, Result<Report, Operator>)> = case
        .outcome
        .into_iter()
        .map(|r| (r.at, Ok(r)))
        .chain(case.operator.into_iter().map(|o| (o.at, Err(o))))
        .collect();
    // Stable: at the same moment, outcomes (listed first) come first.
    events.sort_by_key(|(at, _)| *at);
    for (at, event) in events {
        let now = Instant::ZERO + at;
        let actions = match event {
            Ok(report) => {
                let result = outcome(&report.result)
                    .unwrap_or_else(|e| panic!("{}: check {}: {e}", path.display(), report.check));
                let _ = writeln!(out, "{now}: check {} {}", report.check, report.result);
                checker.probe_done(ProbeId(report.check), result, now)
            }
            Err(op) => {
                let rs = RsId(op.server);
                let before = checker
                    .admin(rs)
                    .unwrap_or_else(|| panic!("{}: no real server {}", path.display(), op.server));
                let after = admin(before, &op.set)
                    .unwrap_or_else(|e| panic!("{}: server {}: {e}", path.display(), op.server));
                let _ = writeln!(
                    out,
                    "{now}: operator sets real server {} {}",
                    op.server, op.set
                );
                checker.set_admin(rs, after)
            }
        };
        render(&checker, &config.virtual_server, &actions, &mut out);
    }
    out
}

#[test]
fn checker_cases() {
    insta::glob!("checker/*.toml", |path| {
        insta::assert_snapshot!(run(path));
    });
}
