//! The appliance's sans-IO cores: pure functions of (state, input, now)
//! that return actions. Nothing here opens a socket, reads a clock or
//! spawns a task; the daemon (`appliance`) drives these cores with real
//! sockets and clocks, and the simulator drives them with a virtual clock.
//!
//! - [`vrrp`]: the VRRP wire format, the receive rules, the state machine,
//!   sync groups and the units that tie them together;
//! - [`bgp`]: a BGP session that announces the director's anycast VIPs
//!   to a router, and the framing of its byte stream;
//! - [`check`]: the health checker's decisions (up, down, weight, quorum,
//!   sorry server) and the probes' schedule;
//! - [`dataplane`]: the model of the kernel's load balancer, its diff and
//!   what each backend can hold;
//! - [`pace`]: the spacing of gratuitous ARPs and neighbour adverts on
//!   an interface;
//! - [`clock`]: the instant type every core reasons in;
//! - [`checksum`]: the Internet checksum;
//! - [`range`]: the error of a value newtype out of its range;
//! - [`timeline`]: the failover timeline the cores' actions are recorded in.

pub mod bgp;
pub mod check;
pub mod checksum;
pub mod clock;
pub mod dataplane;
pub mod pace;
pub mod range;
pub mod timeline;
pub mod vrrp;
