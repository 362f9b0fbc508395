//! `appliance drain-director`: the director withdraws its BGP routes,
//! watches its announced services until [`bgp::DirectorDrain`] says their
//! traffic ended or moved (or time ran out), answers, and stops. The
//! kernel's table stays, as at every stop: a flow a router still sends
//! here meanwhile is forwarded.

use super::{Daemon, Event, bgp};
use std::time::Duration;
use tokio::sync::oneshot;
use tracing::{info, warn};

/// How often a draining director counts its connections.
const POLL: Duration = Duration::from_secs(1);

/// A drain in progress and the client waiting for its end.
pub(super) struct Pending {
    drain: bgp::DirectorDrain,
    reply: oneshot::Sender<Result<String, String>>,
}

impl Daemon {
    pub(super) fn drain_director(
        &mut self,
        timeout: Duration,
        reply: oneshot::Sender<Result<String, String>>,
    ) {
        let Some(speaker) = &self.bgp else {
            let _ = reply.send(Err(
                "drain-director: no [bgp] in the config, so no route to withdraw (stop the daemon instead)"
                    .into(),
            ));
            return;
        };
        if self.director_drain.is_some() {
            let _ = reply.send(Err("drain-director: already draining".into()));
            return;
        }
        let withdrawn = speaker
            .status()
            .iter()
            .map(|peer| peer.advertised.len())
            .sum::<usize>();
        info!(
            ?timeout,
            withdrawn, "draining the director: BGP routes withdrawn"
        );
        self.director_drain = Some(Pending {
            drain: bgp::DirectorDrain::new(tokio::time::Instant::now(), timeout),
            reply,
        });
        self.announce_servable();
        let mut poll = tokio::time::interval(POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        self.director_poll = Some(poll);
    }

    /// Whether a drain of the director is under way (nothing is announced
    /// meanwhile).
    pub(super) fn director_draining(&self) -> bool {
        self.director_drain.is_some()
    }

    /// Asks the dataplane thread for the connections of the announced
    /// services' real servers (one count at a time).
    pub(super) fn count_director(&mut self) {
        if self.director_counting || self.director_drain.is_none() {
            return;
        }
        let (Some(speaker), Some(programmer)) = (&self.bgp, &self.programmer) else {
            return;
        };
        let wanted: Vec<_> = bgp::announced_services(&speaker.settings().announce, &self.table)
            .flat_map(|(key, service)| service.destinations.keys().map(|rs| (*key, *rs)))
            .collect();
        let answer = programmer.connections(wanted);
        let sender = self.sender.clone();
        self.director_counting = true;
        tokio::spawn(async move {
            let result = answer
                .await
                .unwrap_or_else(|_| Err("the dataplane thread stopped".into()));
            let _ = sender.send(Event::DirectorCounted { result }).await;
        });
    }

    /// A count came: the drain goes on, or it answers and the daemon
    /// stops.
    pub(super) fn on_director_counted(
        &mut self,
        result: Result<Vec<crate::dataplane::Connections>, String>,
    ) {
        self.director_counting = false;
        let Some(pending) = &mut self.director_drain else {
            return;
        };
        let count = result.map(|counts| {
            let active = counts.iter().map(|c| u64::from(c.active)).sum();
            let packets = counts
                .iter()
                .map(|c| c.traffic.as_ref().map(|t| t.in_packets))
                .sum::<Option<u64>>();
            (active, packets)
        });
        if let Err(e) = &count {
            warn!(error = %e, "draining the director: counting its connections failed");
        }
        if let bgp::Verdict::Done(why) = pending.drain.sample(tokio::time::Instant::now(), count) {
            info!(%why, "director drained; stopping");
            if let Some(pending) = self.director_drain.take() {
                let _ = pending.reply.send(Ok(format!("drained: {why}; stopping")));
            }
            self.director_poll = None;
            self.stop_requested = true;
        }
    }
}
