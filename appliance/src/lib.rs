//! The appliance: a highly available LVS director.
//!
//! The protocol cores (VRRP state machine, check decisions, dataplane diff)
//! are sans-IO: pure functions of (state, input, now) returning actions. The
//! daemon drives them with real sockets and clocks; the simulator drives the
//! same cores with a virtual clock in tests.

pub mod check;
pub mod checksum;
pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod dataplane;
pub mod init;
pub mod logging;
pub mod metrics;
pub mod net;
pub mod rotating;
pub mod script;
pub mod sim;
pub mod timeline;
pub mod vrrp;
