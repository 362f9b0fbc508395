//! `appliance switchover`: a planned handover of this director's MASTER
//! instances, make-before-break. The VRRP driver resigns them (priority 0
//! adverts) while they keep their VIPs and go on forwarding; each steps
//! down only when another router's advert shows it has taken over
//! ([`Input::Switchover`](crate::vrrp::machine::Input)). This works with
//! any VRRP peer, keepalived too: a priority 0 advert is how every router
//! is asked to take over at once (after its Skew_Time). The answer waits
//! for each instance to have handed over, or for the time a taker had.
//!
//! `--to PEER` chooses the taker among several backups: the resignations
//! go to PEER alone (a unicast peer; on the multicast group every backup
//! hears them), and the answer is an error if another router took over.

use super::Daemon;
use crate::vrrp::machine::State;
use std::net::IpAddr;
use std::time::Duration;
use tokio::sync::oneshot;
use tracing::warn;

type Reply = oneshot::Sender<Result<String, String>>;

/// A switchover waiting for its instances to step down.
pub(super) struct PendingSwitchover {
    /// The peer chosen to take over, if one was.
    to: Option<IpAddr>,
    waiting: Vec<String>,
    done: Vec<String>,
    /// Instances another router than the chosen one took.
    taken_by_another: Vec<String>,
    deadline: tokio::time::Instant,
    reply: Option<Reply>,
}

impl Daemon {
    /// Starts a switchover of the MASTER instances (all, or `instance`),
    /// to peer `to` if given.
    pub(super) async fn switchover(
        &mut self,
        instance: Option<String>,
        to: Option<IpAddr>,
        reply: Reply,
    ) {
        let Some(vrrp) = &self.vrrp else {
            let _ = reply.send(Err("VRRP is not running".into()));
            return;
        };
        match vrrp.switchover(instance, to).await {
            Err(e) => {
                let _ = reply.send(Err(e));
            }
            Ok(names) => {
                // A taker has three of the instance's intervals (the
                // machine's own bound), and a second for the reports.
                let longest = self
                    .plan
                    .units
                    .iter()
                    .flat_map(|u| u.instances())
                    .filter(|i| names.iter().any(|n| n == i.name()))
                    .map(|i| Duration::from_micros(i.machine.adver_int.as_micros()))
                    .max()
                    .unwrap_or(Duration::from_secs(1));
                self.switchovers.push(PendingSwitchover {
                    to,
                    waiting: names,
                    done: Vec::new(),
                    taken_by_another: Vec::new(),
                    deadline: tokio::time::Instant::now() + longest * 3 + Duration::from_secs(1),
                    reply: Some(reply),
                });
            }
        }
    }

    /// An instance's state changed: a switchover waiting for it to step
    /// down is answered once all of its instances have.
    pub(super) fn switched(&mut self, instance: &str, to: State, taker: Option<IpAddr>) {
        if to == State::Master {
            return;
        }
        let reason = self
            .instances()
            .into_iter()
            .find(|i| i.name == instance)
            .and_then(|i| i.transition)
            .map(|t| t.reason)
            .unwrap_or_default();
        for pending in &mut self.switchovers {
            if let Some(index) = pending.waiting.iter().position(|n| n == instance) {
                pending.waiting.remove(index);
                pending.done.push(format!("{instance} {to} ({reason})"));
                if let (Some(chosen), Some(taker)) = (pending.to, taker)
                    && taker != chosen
                {
                    pending
                        .taken_by_another
                        .push(format!("{instance}: {taker} took over, not {chosen}"));
                }
            }
        }
        self.answer_switchovers(false);
    }

    /// Answers the switchovers that are complete, or (`expired`) past
    /// their deadline.
    pub(super) fn answer_switchovers(&mut self, expired: bool) {
        let now = tokio::time::Instant::now();
        for mut pending in std::mem::take(&mut self.switchovers) {
            let late = expired && now >= pending.deadline;
            if !pending.waiting.is_empty() && !late {
                self.switchovers.push(pending);
                continue;
            }
            let answer = if !pending.taken_by_another.is_empty() && pending.waiting.is_empty() {
                warn!(instances = ?pending.taken_by_another, "switchover: another router than the chosen one took over");
                Err(format!(
                    "{} (a backup of higher priority that preempts takes over from the chosen one)",
                    pending.taken_by_another.join("; ")
                ))
            } else if pending.waiting.is_empty() {
                Ok(pending.done.join("; "))
            } else {
                let message = format!(
                    "no router took over {} in time; still MASTER{}",
                    pending.waiting.join(", "),
                    if pending.done.is_empty() {
                        String::new()
                    } else {
                        format!(" (handed over: {})", pending.done.join("; "))
                    }
                );
                warn!(instances = ?pending.waiting, "switchover: no router took over; going on as master");
                Err(message)
            };
            if let Some(reply) = pending.reply.take() {
                let _ = reply.send(answer);
            }
        }
    }
}
