//! The appliance: a highly available LVS director.
//!
//! The protocol cores (VRRP state machine, check decisions, dataplane diff)
//! are sans-IO: pure functions of (state, input, now) returning actions. The
//! daemon drives them with real sockets and clocks; the simulator drives the
//! same cores with a virtual clock in tests.

// What is not used outside the crate is pub(crate): `make lint` denies a
// `pub` item that no other crate can reach.
#![warn(unreachable_pub)]

// The sans-IO cores live in their own crate (appliance/core), which cannot
// reach tokio, nix or libc; they keep their paths here.
pub use appliance_core::{bgp, checksum, clock, timeline, vrrp};

pub mod check;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod dataplane;
#[cfg(feature = "failpoints")]
pub(crate) mod failpoint;
pub mod init;
pub mod logging;
pub(crate) mod metrics;
pub mod net;
pub mod notify_fifo;
pub(crate) mod rotating;
pub mod script;
pub mod sim;
pub mod smtp;
pub(crate) mod state_file;
pub mod status_page;

/// Marks a fail point named `$name` (src/failpoint.rs in the tests' build,
/// nothing otherwise).
#[macro_export]
macro_rules! fail_point {
    ($name:literal) => {
        #[cfg(feature = "failpoints")]
        $crate::failpoint::hit($name);
    };
}
