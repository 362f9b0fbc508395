//! The status page (`[global] status_page`, served at `/` of the metrics
//! endpoint): what `appliance status` says, for a browser. The director
//! renders it whole, tables and chart, so it reads without JavaScript
//! (which then reloads it every few seconds); a small script of its own
//! (`status.js`) swaps in a fresh copy every two seconds instead. No
//! asset comes from elsewhere: a director's network often has no way out.
//! Read-only: it has no form and answers nothing but GET and HEAD.
//!
//! Every text from outside (names in the config, check results, reasons)
//! goes through maud's escaping: the page is HTML built by construction,
//! not by string pasting.

pub mod chart;
pub mod history;

use crate::daemon::status::{
    InstanceStatus, RealServerStatus, Status, VirtualServerStatus, latency, readable, span,
};
use chart::Row;
use history::{Lane, Phase, Recent};
use maud::{DOCTYPE, Markup, html};
use std::time::SystemTime;

/// The page's style sheet, served as `/status.css`.
pub const CSS: &str = include_str!("page.css");
/// The page's live refresh, served as `/status.js`.
pub const JS: &str = include_str!("page.js");

/// How often the page reloads itself without JavaScript, in seconds.
const NOSCRIPT_REFRESH: u32 = 5;

/// How many recent events the page lists (the chart shows all it keeps).
const LISTED: usize = 30;

/// The page for `status` (none: the daemon did not answer) and the
/// `recent` timeline, at `now`.
pub fn render(status: Option<&Status>, recent: &Recent, now: SystemTime) -> String {
    let node = status.map_or("appliance", |s| s.node.as_str());
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (node) " · appliance status" }
                link rel="stylesheet" href="status.css";
                noscript { meta http-equiv="refresh" content=(NOSCRIPT_REFRESH); }
                script src="status.js" defer {}
            }
            body {
                p id="stale" role="alert" { "Not updating: the director does not answer." }
                @match status {
                    Some(status) => (page(status, recent, now)),
                    None => {
                        main id="live" {
                            h1 { "appliance" }
                            p class="error" {
                                "The daemon did not answer in time; this page tries again."
                            }
                        }
                    }
                }
            }
        }
    }
    .into_string()
}

fn page(status: &Status, recent: &Recent, now: SystemTime) -> Markup {
    html! {
        main id="live" data-node=(status.node) data-as-of=(chart::clock(now)) {
            header {
                h1 { (status.node) }
                p class="meta" {
                    "appliance " (status.version) " · pid " (status.pid)
                    @if !status.started.is_empty() { " · up since " (readable(&status.started)) }
                    @if let Some(dataplane) = &status.dataplane { " · dataplane " (dataplane) }
                    " · as of " (chart::clock(now)) " UTC"
                }
                p class="meta" { "config " (status.config.display()) }
                @if let Some(reload) = &status.last_reload {
                    p class=(if reload.applied { "meta" } else { "meta error" }) {
                        "last reload " (readable(&reload.at)) ": "
                        (if reload.applied { "applied" } else { "REJECTED" })
                        " (" (reload.message.trim_end()) ")"
                    }
                }
            }
            @if !status.faults.is_empty() {
                section id="faults" {
                    h2 { "Not running" }
                    ul {
                        @for fault in &status.faults {
                            li class="error" data-part=(fault.part) {
                                (fault.part) ": " (fault.error)
                                " (failed " (fault.failures) " time(s), retrying)"
                            }
                        }
                    }
                }
            }
            (instances(&status.instances))
            (virtual_servers(&status.virtual_servers))
            (timeline(status, recent, now))
        }
    }
}

fn instances(instances: &[InstanceStatus]) -> Markup {
    html! {
        section id="instances" {
            h2 { "VRRP instances" }
            @if instances.is_empty() {
                p { "None configured." }
            } @else {
                table {
                    thead { tr {
                        th { "Instance" } th { "VRID" } th { "State" } th { "For" }
                        th { "Priority" } th { "Interface" } th { "VIPs" }
                        th { "Last transition" }
                    } }
                    tbody {
                        @for i in instances {
                            tr data-instance=(i.name) data-state=(i.state.to_string()) {
                                td { (i.name) }
                                td class="num" { (i.vrid) }
                                td { span class=(format!("badge {}", chart::phase_class(Phase::Vrrp(i.state)))) { (i.state) } }
                                td class="num" { @if let Some(ms) = i.in_state_ms { (span(ms)) } }
                                td class="num" {
                                    (i.priority.get())
                                    @if i.priority != i.base_priority { " (base " (i.base_priority.get()) ")" }
                                }
                                td { (i.interface) }
                                td { @for vip in &i.vips { div { (vip) } } }
                                td {
                                    @if let Some(t) = &i.last_transition {
                                        (t.from) " → " (t.to) " at " (readable(&t.at))
                                        div class="reason" { (t.reason) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn virtual_servers(servers: &[VirtualServerStatus]) -> Markup {
    html! {
        section id="virtual-servers" {
            h2 { "Virtual servers" }
            @if servers.is_empty() {
                p { "None configured." }
            }
            @for vs in servers {
                div class="vs" data-service=(vs.service) {
                    h3 {
                        (vs.service) " "
                        span class=(if vs.quorum_up { "badge up" } else { "badge down" }) {
                            "quorum " (if vs.quorum_up { "up" } else { "DOWN" })
                        }
                        @if vs.sorry_server_active { " " span class="badge down" { "sorry server on" } }
                        @if vs.suspended { " " span class="badge unknown" { "suspended" } }
                    }
                    table {
                        thead { tr {
                            th { "Real server" } th { "Health" } th { "Weight" } th { "Last check" }
                            th { "Active" } th { "Inactive" } th { "Conns" }
                            th { "Packets in/out" } th { "Bytes in/out" } th { "Rates" }
                        } }
                        tbody { @for rs in &vs.real_servers { (real_server(rs)) } }
                    }
                }
            }
        }
    }
}

fn real_server(rs: &RealServerStatus) -> Markup {
    let health = if rs.alive { "up" } else { "down" };
    let traffic = rs.connections.and_then(|c| c.traffic);
    html! {
        tr data-real-server=(rs.address) data-health=(health) {
            td { (rs.address) }
            td {
                span class=(format!("badge {health}")) { (if rs.alive { "UP" } else { "DOWN" }) }
                @if rs.admin != "enabled" { " " span class="badge unknown" { (rs.admin) } }
            }
            td class="num" {
                (rs.weight)
                @if let Some(w) = rs.operator_weight { " (set " (w) ")" }
            }
            td {
                @for c in &rs.checks {
                    div class="check" {
                        (c.kind) " " (if c.up { "up" } else { "down" })
                        @match &c.last {
                            Some(last) => {
                                ": " (last.result)
                                @if let Some(us) = last.latency_us { ", " span class="latency" { (latency(us)) } }
                                @if !last.wall.is_empty() { " at " (readable(&last.wall)) }
                            }
                            None => " (not run yet)",
                        }
                    }
                }
            }
            @match rs.connections {
                Some(c) => {
                    td class="num active" { (c.active) }
                    td class="num" { (c.inactive) }
                }
                None => { td class="num" { "–" } td class="num" { "–" } }
            }
            @match traffic {
                Some(t) => {
                    td class="num conns" title=(t.conns) { (si(t.conns)) }
                    td class="num" title=(format!("{} / {}", t.in_packets, t.out_packets)) {
                        (si(t.in_packets)) " / " (si(t.out_packets))
                    }
                    td class="num" title=(format!("{} / {}", t.in_bytes, t.out_bytes)) {
                        (si(t.in_bytes)) "B / " (si(t.out_bytes)) "B"
                    }
                    td class="num" {
                        (t.conns_per_second) " conn/s · "
                        (si(t.in_bytes_per_second)) "B/s in · " (si(t.out_bytes_per_second)) "B/s out"
                    }
                }
                // An nftables table made before its counting sets has none.
                None => { td class="num" { "–" } td class="num" { "–" } td class="num" { "–" } td class="num" { "–" } }
            }
        }
    }
}

fn timeline(status: &Status, recent: &Recent, now: SystemTime) -> Markup {
    let started = humantime::parse_rfc3339(&status.started).ok();
    let from = started
        .filter(|s| now.duration_since(*s).is_ok_and(|d| d < chart::WINDOW))
        .unwrap_or(now - chart::WINDOW);
    let instances = status.instances.iter().map(|i| Row {
        lane: Lane::Instance(i.name.clone()),
        label: format!("VRRP {}", i.name),
        now: Phase::Vrrp(i.state),
    });
    let servers: Vec<Row> = status
        .virtual_servers
        .iter()
        .flat_map(|vs| {
            vs.real_servers.iter().map(|rs| Row {
                lane: Lane::RealServer {
                    service: vs.service.clone(),
                    address: rs.address,
                },
                label: rs.address.to_string(),
                now: Phase::Server { alive: rs.alive },
            })
        })
        .collect();
    let total = servers.len();
    let rows: Vec<Row> = instances
        .chain(drawn_servers(servers, recent, from))
        .collect();
    let left_out = total + status.instances.len() - rows.len();
    html! {
        section id="timeline" {
            h2 { "Timeline" }
            @if rows.is_empty() {
                p { "Nothing to draw." }
            } @else {
                figure {
                    (chart::render(recent, &rows, from, now))
                    figcaption {
                        span class="key master" { "MASTER" } span class="key backup" { "BACKUP" }
                        span class="key fault" { "FAULT" } span class="key init" { "INIT" }
                        span class="key up" { "UP" } span class="key down" { "DOWN" }
                        span class="key unknown" { "not known" }
                        " · a mark per change (hover for its reason)"
                        @if left_out > 0 {
                            " · " (left_out) " real servers with no change in this window not drawn"
                        }
                    }
                }
            }
            h3 { "Recent events" }
            @if recent.events.is_empty() {
                p { "None since the start." }
            } @else {
                table id="events" {
                    thead { tr { th { "Time (UTC)" } th { "Of" } th { "What" } th { "Why" } } }
                    tbody {
                        @for e in recent.events.iter().rev().take(LISTED) {
                            tr {
                                td class="num" { (chart::clock(e.wall)) }
                                td { (e.event.instance.as_deref().unwrap_or("")) }
                                td { (e.event.kind) }
                                td { (e.event.detail) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// How many real servers the chart draws at most: a lane each, so a
/// director with thousands keeps a page a browser can refresh.
const MAX_SERVER_LANES: usize = 48;

/// The real servers the chart draws: those that changed since `from`
/// first, then the others, [`MAX_SERVER_LANES`] at most, in the tables'
/// order.
fn drawn_servers(servers: Vec<Row>, recent: &Recent, from: SystemTime) -> Vec<Row> {
    if servers.len() <= MAX_SERVER_LANES {
        return servers;
    }
    let changed: std::collections::HashSet<Lane> = recent
        .events
        .iter()
        .filter(|e| e.wall >= from)
        .filter_map(|e| history::lane_of(&e.event).map(|(lane, _)| lane))
        .collect();
    let (mut moved, still): (Vec<Row>, Vec<Row>) =
        servers.into_iter().partition(|r| changed.contains(&r.lane));
    moved.truncate(MAX_SERVER_LANES);
    let room = MAX_SERVER_LANES - moved.len();
    moved.extend(still.into_iter().take(room));
    moved
}

/// `n` in at most four digits and a unit prefix, as ipvsadm shows
/// counters (1000-based).
fn si(n: u64) -> String {
    const UNITS: [&str; 6] = ["K", "M", "G", "T", "P", "E"];
    if n < 10_000 {
        return n.to_string();
    }
    let mut value = n as f64;
    let mut unit = "";
    for u in UNITS {
        value /= 1000.0;
        unit = u;
        if value < 1000.0 {
            break;
        }
    }
    if value < 10.0 {
        format!("{value:.1}{unit}")
    } else {
        format!("{value:.0}{unit}")
    }
}

#[cfg(test)]
mod tests;
