//! What the daemon tells the service manager that started it, over
//! systemd's notify protocol (sd_notify(3)): `READY=1` once the VRRP
//! instances and the dataplane are up, `STATUS=` with each instance's
//! state, `RELOADING=1` then `READY=1` around a reload, `STOPPING=1`, and
//! `WATCHDOG=1` from the event loop, so a loop that stalls stops feeding
//! it. Started by anything else (no `NOTIFY_SOCKET`), it says nothing.

use crate::vrrp::machine::State;
use sd_notify::NotifyState;
use std::time::Duration;
use tracing::{debug, warn};

/// The daemon's side of the notify protocol.
#[derive(Debug, Default)]
pub(crate) struct Notifier {
    /// The status line last sent, so an unchanged one is not sent again.
    status: String,
    /// Whether a send has failed already (logged once).
    failed: bool,
}

impl Notifier {
    /// How often the watchdog must be fed: half its timeout, as
    /// sd_watchdog_enabled(3) advises; none when systemd runs no watchdog
    /// for this process.
    pub(crate) fn watchdog_interval() -> Option<Duration> {
        sd_notify::watchdog_enabled()
            .filter(|timeout| !timeout.is_zero())
            .map(|timeout| timeout / 2)
    }

    /// Startup, or a reload, is done.
    pub(crate) fn ready(&mut self, status: String) {
        self.status = status;
        let status = self.status.clone();
        self.send(&[NotifyState::Ready, NotifyState::Status(&status)]);
    }

    /// A reload begins. `MONOTONIC_USEC` tells systemd which reload this
    /// is (it ignores a `READY=1` older than its own request).
    pub(crate) fn reloading(&mut self) {
        let mut states = vec![NotifyState::Reloading];
        if let Ok(now) = NotifyState::monotonic_usec_now() {
            states.push(now);
        }
        self.send(&states);
    }

    /// The instances' states changed: a new status line, if it differs.
    pub(crate) fn status(&mut self, status: String) {
        if status != self.status {
            self.status = status;
            let status = self.status.clone();
            self.send(&[NotifyState::Status(&status)]);
        }
    }

    pub(crate) fn stopping(&mut self) {
        self.send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
    }

    pub(crate) fn watchdog(&mut self) {
        self.send(&[NotifyState::Watchdog]);
    }

    fn send(&mut self, states: &[NotifyState<'_>]) {
        match sd_notify::notify(states) {
            Ok(()) => debug!(?states, "told the service manager"),
            Err(e) if !self.failed => {
                self.failed = true;
                warn!(error = %e, "telling the service manager failed (NOTIFY_SOCKET)");
            }
            Err(_) => {}
        }
    }
}

/// The status line: each instance's state, and the dataplane.
/// `VI_1 MASTER, VI_2 BACKUP; dataplane ipvs`.
pub(crate) fn status_line<'a>(
    instances: impl IntoIterator<Item = (&'a str, State)>,
    dataplane: Option<&str>,
) -> String {
    let states: Vec<String> = instances
        .into_iter()
        .map(|(name, state)| format!("{name} {state}"))
        .collect();
    let mut line = if states.is_empty() {
        "no VRRP instance".to_string()
    } else {
        states.join(", ")
    };
    if let Some(dataplane) = dataplane {
        line.push_str("; dataplane ");
        line.push_str(dataplane);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_line_names_each_instance_and_the_dataplane() {
        assert_eq!(
            status_line(
                [("VI_1", State::Master), ("VI_6", State::Backup)],
                Some("nftables")
            ),
            "VI_1 MASTER, VI_6 BACKUP; dataplane nftables"
        );
        assert_eq!(
            status_line([], Some("ipvs")),
            "no VRRP instance; dataplane ipvs"
        );
        assert_eq!(status_line([("VI_1", State::Fault)], None), "VI_1 FAULT");
    }
}
