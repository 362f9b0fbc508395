//! Real-server health checks, keepalived's checker, sans-IO: the decision
//! core ([`decision`]: what each probe's outcome does to its real server,
//! quorum and sorry server) and the schedule of the probes ([`due`]). The
//! probes and the runner that drives them are the daemon's
//! (`appliance::check`).

pub mod decision;
pub mod due;

use std::time::Duration;

/// The checker's timers fire on this tick: probes due within one tick
/// start together and their SYNs go out in one burst, so 10,000 checks a
/// second cost a hundred wake-ups rather than thousands. A probe starts at
/// most one tick late, which no `delay_loop` (whole seconds, or at least
/// tens of milliseconds) notices.
pub const TICK: Duration = Duration::from_millis(10);
