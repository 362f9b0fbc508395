//! The failover timeline as a chart: one lane per VRRP instance (its state
//! over time) and per real server (up or down), over the last
//! [`WINDOW`], drawn as inline SVG on the server so it needs no script,
//! and each change marked with what happened (hover for its reason).

use super::history::{Lane, Phase, Recent, Stamped};
use crate::vrrp::machine::State;
use maud::{Markup, html};
use std::time::{Duration, SystemTime};

/// How far back the chart reaches (less when the daemon started later).
pub const WINDOW: Duration = Duration::from_secs(15 * 60);

const WIDTH: f64 = 960.0;
const LABEL: f64 = 210.0;
const RIGHT: f64 = 12.0;
const AXIS: f64 = 22.0;
const LANE: f64 = 20.0;
const GAP: f64 = 6.0;

/// A row to draw: what it follows, its label, and its phase now (drawn
/// over the whole window when no event moved it).
#[derive(Clone, Debug)]
pub struct Row {
    pub lane: Lane,
    pub label: String,
    pub now: Phase,
}

/// A span of a lane in one phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    pub start: SystemTime,
    pub end: SystemTime,
    pub phase: Phase,
}

/// `row`'s phases between `from` and `now`, and the events in that span
/// that moved it.
pub fn segments<'a>(
    recent: &'a Recent,
    row: &Row,
    from: SystemTime,
    now: SystemTime,
) -> (Vec<Segment>, Vec<&'a Stamped>) {
    let (start, changes) = recent.phases(&row.lane);
    let mut out = Vec::new();
    let mut marks = Vec::new();
    let mut at = from;
    let mut phase = if changes.is_empty() {
        start.unwrap_or(row.now)
    } else {
        start.unwrap_or(Phase::Unknown)
    };
    for (when, next, event) in changes {
        if when > now {
            break;
        }
        if when > at {
            out.push(Segment {
                start: at,
                end: when,
                phase,
            });
            at = when;
        }
        if when >= from {
            marks.push(event);
        }
        phase = next;
    }
    if now > at {
        out.push(Segment {
            start: at,
            end: now,
            phase,
        });
    }
    (out, marks)
}

/// The chart of `rows` from `from` to `now`.
pub fn render(recent: &Recent, rows: &[Row], from: SystemTime, now: SystemTime) -> Markup {
    let span = now
        .duration_since(from)
        .unwrap_or_default()
        .max(Duration::from_secs(1));
    let from = now - span;
    let plot = WIDTH - LABEL - RIGHT;
    let x = |t: SystemTime| {
        let d = t.duration_since(from).unwrap_or_default().as_secs_f64();
        LABEL + (d / span.as_secs_f64()).clamp(0.0, 1.0) * plot
    };
    let height = AXIS + rows.len() as f64 * (LANE + GAP) + GAP;
    let ticks = ticks(from, now);
    html! {
        svg class="chart"
            viewBox=(format!("0 0 {WIDTH} {height}")) width=(WIDTH) height=(height)
            role="img" aria-labelledby="chart-title" {
            title id="chart-title" {
                "States of this director's VRRP instances and health of its real servers, "
                (clock(from)) " to " (clock(now)) " UTC"
            }
            @for t in &ticks {
                line class="tick" x1=(fmt(x(*t))) x2=(fmt(x(*t))) y1=(fmt(AXIS - 4.0))
                    y2=(fmt(height)) {}
                text class="tick-label" x=(fmt(x(*t))) y="12" text-anchor="middle" { (clock(*t)) }
            }
            @for (i, row) in rows.iter().enumerate() {
                @let y = AXIS + GAP + i as f64 * (LANE + GAP);
                @let (segments, marks) = segments(recent, row, from, now);
                g class="lane" data-lane=(lane_key(&row.lane)) {
                    text class="lane-label" x="4" y=(fmt(y + LANE * 0.7)) { (row.label) }
                    @for s in &segments {
                        rect class=(format!("seg {}", phase_class(s.phase)))
                            x=(fmt(x(s.start))) y=(fmt(y))
                            width=(fmt((x(s.end) - x(s.start)).max(0.5))) height=(fmt(LANE)) {
                            title {
                                (phase_name(s.phase)) ", " (clock(s.start)) " to " (clock(s.end)) " UTC"
                            }
                        }
                    }
                    @for m in &marks {
                        line class="mark" x1=(fmt(x(m.wall))) x2=(fmt(x(m.wall)))
                            y1=(fmt(y - 2.0)) y2=(fmt(y + LANE + 2.0)) {
                            title {
                                (clock(m.wall)) " UTC " (m.event.kind)
                                @if !m.event.detail.is_empty() { " (" (m.event.detail) ")" }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The lane's key in the page, for scripts and tests.
pub fn lane_key(lane: &Lane) -> String {
    match lane {
        Lane::Instance(name) => format!("vrrp {name}"),
        Lane::RealServer { service, address } => format!("{service} {address}"),
    }
}

/// The CSS class of a phase (colours in page.css).
pub fn phase_class(phase: Phase) -> &'static str {
    match phase {
        Phase::Vrrp(State::Master) => "master",
        Phase::Vrrp(State::Backup) => "backup",
        Phase::Vrrp(State::Fault) => "fault",
        Phase::Vrrp(State::Initialize) => "init",
        Phase::Server { alive: true } => "up",
        Phase::Server { alive: false } => "down",
        Phase::Unknown => "unknown",
    }
}

fn phase_name(phase: Phase) -> String {
    match phase {
        Phase::Vrrp(state) => state.to_string(),
        Phase::Server { alive: true } => "UP".into(),
        Phase::Server { alive: false } => "DOWN".into(),
        Phase::Unknown => "not known".into(),
    }
}

/// Axis ticks at a round step giving at most seven of them.
fn ticks(from: SystemTime, now: SystemTime) -> Vec<SystemTime> {
    const STEPS: [u64; 12] = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800];
    let span = now.duration_since(from).unwrap_or_default().as_secs();
    let step = STEPS
        .iter()
        .copied()
        .find(|s| span / s <= 6)
        .unwrap_or(3600);
    let first = from
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
        .div_ceil(step)
        * step;
    (0..)
        .map(|i| SystemTime::UNIX_EPOCH + Duration::from_secs(first + i * step))
        .take_while(|t| *t <= now)
        .collect()
}

/// `HH:MM:SS` of `t` in UTC.
pub fn clock(t: SystemTime) -> String {
    let text = humantime::format_rfc3339_seconds(t).to_string();
    text.get(11..19).unwrap_or(&text).to_string()
}

fn fmt(v: f64) -> String {
    format!("{v:.1}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status_page::history::History;
    use crate::timeline::{Event, EventKind};

    fn wall(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + s)
    }

    fn state(instance: &str, from: State, to: State, reason: &str) -> Event {
        Event {
            at: crate::clock::Instant::from_micros(0),
            node: "m".into(),
            instance: Some(instance.into()),
            kind: EventKind::State { from, to },
            detail: reason.into(),
        }
    }

    fn row(name: &str, now: State) -> Row {
        Row {
            lane: Lane::Instance(name.into()),
            label: name.into(),
            now: Phase::Vrrp(now),
        }
    }

    #[test]
    fn a_lane_is_cut_where_its_state_changed() {
        let h = History::default();
        h.record(
            &state("VI_1", State::Initialize, State::Backup, "start"),
            wall(10),
        );
        h.record(
            &state("VI_1", State::Backup, State::Master, "master down"),
            wall(14),
        );
        let recent = h.recent();
        let (segs, marks) = segments(&recent, &row("VI_1", State::Master), wall(0), wall(20));
        let phases: Vec<_> = segs
            .iter()
            .map(|s| (s.start, s.end, phase_class(s.phase)))
            .collect();
        assert_eq!(
            phases,
            [
                (wall(0), wall(10), "init"),
                (wall(10), wall(14), "backup"),
                (wall(14), wall(20), "master"),
            ]
        );
        assert_eq!(marks.len(), 2);
        // A window starting after the changes: one segment, no marks.
        let (segs, marks) = segments(&recent, &row("VI_1", State::Master), wall(15), wall(20));
        assert_eq!(segs.len(), 1);
        assert_eq!(segs[0].phase, Phase::Vrrp(State::Master));
        assert!(marks.is_empty());
        // A lane no event moved shows its state now.
        let (segs, _) = segments(&recent, &row("VI_2", State::Fault), wall(0), wall(20));
        assert_eq!(segs.len(), 1);
        assert_eq!(segs[0].phase, Phase::Vrrp(State::Fault));
    }

    #[test]
    fn the_chart_draws_each_segment_and_mark_and_escapes_reasons() {
        let h = History::default();
        h.record(
            &state("VI_1", State::Backup, State::Master, "<script>x</script>"),
            wall(14),
        );
        let svg = render(
            &h.recent(),
            &[row("VI_1", State::Master)],
            wall(0),
            wall(60),
        )
        .into_string();
        assert_eq!(svg.matches("<rect class=\"seg backup\"").count(), 1);
        assert_eq!(svg.matches("<rect class=\"seg master\"").count(), 1);
        assert_eq!(svg.matches("<line class=\"mark\"").count(), 1);
        assert!(svg.contains("BACKUP -&gt; MASTER (&lt;script&gt;x&lt;/script&gt;)"));
        assert!(!svg.contains("<script>"));
        // 60 s: a tick every 10 s, both ends included.
        assert_eq!(svg.matches("class=\"tick-label\"").count(), 7);
    }

    #[test]
    fn ticks_fall_on_round_times() {
        let t = ticks(wall(3), wall(900));
        assert!(t.len() <= 6 && t.len() >= 3, "{t:?}");
        for tick in &t {
            let s = tick
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            assert_eq!(s % 300, 0);
        }
        assert_eq!(clock(wall(0)), "08:00:00");
    }
}
