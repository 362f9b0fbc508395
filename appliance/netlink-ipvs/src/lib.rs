//! The Linux kernel's IPVS generic netlink family ("IPVS", version 1),
//! after `include/uapi/linux/ip_vs.h`, in rust-netlink's style: an
//! [`IpvsMessage`] is a `netlink-packet-generic` family payload, its
//! attributes ([`nla`]) encode and decode through `netlink-packet-core`.
//! No maintained crate speaks this family; this one knows nothing of the
//! appliance (its model and requests are `appliance::dataplane::ipvs`).
//!
//! - [`nla`]: the attributes (command, service, destination, sync daemon,
//!   `GET_INFO`'s answer) and the service flags;
//! - [`message`]: the commands and the message.

pub mod message;
pub mod nla;

pub use message::{Command, FAMILY_NAME, FAMILY_VERSION, IpvsMessage};
