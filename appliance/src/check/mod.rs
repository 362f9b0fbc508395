//! Real-server health checks, keepalived's checker: the sans-IO decision
//! core ([`decision`]), the async probes ([`tcp`], [`http`], [`misc`], and
//! [`syn`] for half-open TCP checks) and the runner that drives them for every real server of a config on one
//! tokio task ([`runner`]).

pub mod decision;
pub mod http;
pub mod misc;
pub mod runner;
pub mod syn;
pub mod tcp;
