//! The checker's input from the config: each virtual server's quorum,
//! sorry server and real servers with their weights and check timings, as
//! the decision core takes them ([`VirtualPlan`]), and the notify programs
//! that the core's actions only name ([`Programs`]).

use super::decision::{Admin, FileRule, NotifyTarget, RealPlan, Timing, VirtualPlan};
use crate::config::model::{
    Check, Command, FileCheck, RealServer, Service, TrackedFile, VirtualServer,
};

/// The decision core's view of `servers`, in config order (a virtual
/// server's `VsId` is its index here, as in the config), their
/// FILE_CHECKs reading `files`.
pub fn plan(servers: &[VirtualServer], files: &[TrackedFile]) -> Vec<VirtualPlan> {
    servers
        .iter()
        .map(|vs| VirtualPlan {
            quorum: vs.quorum,
            hysteresis: vs.hysteresis,
            sorry_server: vs.sorry_server,
            alpha: vs.alpha,
            omega: vs.omega,
            quorum_up: vs.quorum_up.is_some(),
            quorum_down: vs.quorum_down.is_some(),
            suspend_without: match vs.service {
                Service::Address(address) if vs.ha_suspend => Some(address.ip()),
                _ => None,
            },
            real_servers: vs
                .real_server
                .iter()
                .map(|rs| RealPlan {
                    address: rs.address,
                    weight: rs.weight.get(),
                    inhibit: rs.inhibit_on_failure,
                    notify_up: rs.notify_up.is_some(),
                    notify_down: rs.notify_down.is_some(),
                    checks: rs.check.iter().map(|check| timing(check, vs)).collect(),
                    files: file_checks(rs, files).map(|(rule, _)| rule).collect(),
                    admin: Admin::default(),
                })
                .collect(),
        })
        .collect()
}

/// A real server's FILE_CHECKs, each with its rule and its file: the
/// check's own weight and `reverse`, or else its file's (keepalived's
/// `file_end_handler`). One naming no file (which validation refuses) is
/// left out, here and for the driver alike, so their `FileId`s agree.
pub fn file_checks<'a>(
    rs: &'a RealServer,
    files: &'a [TrackedFile],
) -> impl Iterator<Item = (FileRule, &'a TrackedFile)> + 'a {
    rs.file_check.iter().filter_map(|check: &FileCheck| {
        let file = files.iter().find(|f| f.name == check.track_file)?;
        let rule = match check.weight {
            Some(weight) => FileRule {
                weight,
                reverse: check.reverse,
            },
            None => FileRule {
                weight: i32::from(file.weight),
                reverse: file.reverse,
            },
        };
        Some((rule, file))
    })
}

/// The timing of `check` in virtual server `vs`, with keepalived's
/// defaults: `warmup` unset means up to `delay_loop`.
pub fn timing(check: &Check, vs: &VirtualServer) -> Timing {
    let (retry, delay_before_retry, warmup, from_start) = match check {
        Check::Tcp(c) => (c.retry, c.delay_before_retry, c.warmup, false),
        Check::HttpGet(c) | Check::SslGet(c) => (c.retry, c.delay_before_retry, c.warmup, false),
        Check::Misc(c) => (c.retry, c.delay_before_retry, c.warmup, true),
        Check::Ping(c) => (c.retry, c.delay_before_retry, c.warmup, false),
        Check::Udp(c) => (c.retry, c.delay_before_retry, c.warmup, false),
        Check::Smtp(c) => (c.retry, c.delay_before_retry, c.warmup, false),
        // keepalived: DNS_CHECK's retries wait the delay_loop by default.
        Check::Dns(c) => (
            c.retry,
            c.delay_before_retry.unwrap_or(vs.delay_loop),
            c.warmup,
            false,
        ),
    };
    Timing {
        delay_loop: vs.delay_loop,
        retry,
        delay_before_retry,
        warmup: warmup.unwrap_or(vs.delay_loop),
        from_start,
    }
}

/// The notify programs of a config, by what the core's
/// [`Action::Notify`](super::decision::Action::Notify) names.
#[derive(Clone, Debug, Default)]
pub struct Programs {
    /// `notify_up`, `notify_down` of each real server, in `RsId` order.
    real_servers: Vec<[Option<Command>; 2]>,
    /// `quorum_up`, `quorum_down` of each virtual server, in `VsId` order.
    virtual_servers: Vec<[Option<Command>; 2]>,
}

impl Programs {
    pub fn of(servers: &[VirtualServer]) -> Self {
        Self {
            real_servers: servers
                .iter()
                .flat_map(|vs| &vs.real_server)
                .map(|rs| [rs.notify_up.clone(), rs.notify_down.clone()])
                .collect(),
            virtual_servers: servers
                .iter()
                .map(|vs| [vs.quorum_up.clone(), vs.quorum_down.clone()])
                .collect(),
        }
    }

    /// The program to run for a notify target, if one is configured.
    pub fn get(&self, target: NotifyTarget) -> Option<&Command> {
        let (table, index, which) = match target {
            NotifyTarget::RsUp(rs) => (&self.real_servers, rs.0, 0),
            NotifyTarget::RsDown(rs) => (&self.real_servers, rs.0, 1),
            NotifyTarget::QuorumUp(vs) => (&self.virtual_servers, vs.0, 0),
            NotifyTarget::QuorumDown(vs) => (&self.virtual_servers, vs.0, 1),
        };
        table.get(index as usize)?.get(which)?.as_ref()
    }
}

#[cfg(test)]
mod tests;
