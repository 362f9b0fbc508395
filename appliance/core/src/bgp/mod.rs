//! BGP for scale-out: each director announces the anycast VIPs it can
//! serve to the upstream routers, which spread flows over the directors
//! by ECMP; a director that stops serving withdraws them.
//!
//! - [`session`]: one peer's session (RFC 4271's state machine, announce
//!   only: the director originates host routes and takes no routes in);
//! - [`frame`]: the cutting of the TCP byte stream into messages.
//!
//! The wire format is `rustbgpd-wire`'s.

pub mod frame;
pub mod session;

pub use rustbgpd_wire::{Message, encode_message};
