//! The Linux kernel's nf_tables netlink subsystem (nfnetlink subsystem 10),
//! after `include/uapi/linux/netfilter/nf_tables.h`, in rust-netlink's
//! style: an [`NftMessage`] serialises and deserialises as a
//! `netlink-packet-core` inner message, its attributes ([`nla`]) as
//! `Nla`s. No maintained crate speaks nf_tables over netlink-packet-core;
//! this one knows nothing of the appliance (its ruleset and requests are
//! `appliance::dataplane::nftables`).
//!
//! - [`nla`]: tables, chains, rules and their expressions, sets and their
//!   elements;
//! - [`message`]: the commands, the message, batch markers and framing.

pub mod message;
pub mod nla;

pub use message::{Body, Command, Kind, NftMessage};
