//! The benchmarks' plots, as SVG (`docs/img/`), drawn from their samples
//! ([`super::data`]): the failover outage of every trial beside the
//! protocol's bound, one panel per scenario, and the checker's CPU beside
//! the kernel's floor and keepalived's checker.
//!
//! plotters' SVG backend writes text as `<text>` and sizes it by its own
//! estimate, so no font is read and the same samples give the same bytes.

use super::data::{self, CheckerRun, FLOOR, Trial};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::Path;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Data(#[from] data::Error),
    #[error("nothing to plot: no {0}")]
    Empty(&'static str),
    #[error("drawing the plot: {0}")]
    Draw(String),
}

impl<E: std::error::Error + Send + Sync> From<DrawingAreaErrorKind<E>> for Error {
    fn from(e: DrawingAreaErrorKind<E>) -> Self {
        Error::Draw(e.to_string())
    }
}

/// Where `make bench` writes them, in the workspace, and their names.
pub const DIR: &str = "docs/img";
pub const FAILOVER: &str = "failover.svg";
pub const CHECKER: &str = "checker.svg";

/// The plot of each bench whose samples are in `dir` (a
/// [`data::DIR`]): its file name and its SVG. A bench without samples
/// there has no plot; the checker's plot has the VM's runs when they are
/// there.
pub fn render(dir: &Path) -> Result<Vec<(&'static str, String)>, Error> {
    let mut out = Vec::new();
    let failover = dir.join(data::FAILOVER);
    if failover.exists() {
        let trials = data::parse_failover(&failover, &data::read(&failover)?)?;
        out.push((FAILOVER, failover_svg(&trials)?));
    }
    let host = dir.join(data::CHECKER);
    if host.exists() {
        let host = data::parse_checker(&host, &data::read(&host)?)?;
        let vm = dir.join(data::CHECKER_VM);
        let vm = if vm.exists() {
            data::parse_checker(&vm, &data::read(&vm)?)?
        } else {
            Vec::new()
        };
        let title = |place: &str, runs: &[CheckerRun]| {
            let servers = runs.first().map_or(0, |r| r.servers);
            format!("{place}, {servers} real servers")
        };
        let (host_title, vm_title) = (
            title("this machine", &host),
            title("qemu VM (TCG, one vCPU)", &vm),
        );
        let mut benches = vec![CheckerBench {
            title: &host_title,
            runs: &host,
        }];
        if !vm.is_empty() {
            benches.push(CheckerBench {
                title: &vm_title,
                runs: &vm,
            });
        }
        out.push((CHECKER, checker_svg(&benches)?));
    }
    Ok(out)
}

const FONT: &str = "sans-serif";
const WIDTH: u32 = 760;
/// Failover panels per row, and each one's height.
const COLUMNS: usize = 2;
const PANEL_HEIGHT: u32 = 250;
/// The title and the legend above the panels.
const HEADER_HEIGHT: u32 = 52;
/// A checker bar's height, and what a checker panel needs besides bars.
const BAR_HEIGHT: u32 = 28;
const PANEL_FRAME: u32 = 78;

/// Colour-blind safe (matplotlib's first two), and the same in both plots.
pub const APPLIANCE: RGBColor = RGBColor(0x1F, 0x77, 0xB4);
pub const KEEPALIVED: RGBColor = RGBColor(0xFF, 0x7F, 0x0E);
pub const BOUND: RGBColor = RGBColor(0xD6, 0x27, 0x28);
pub const FLOOR_GREY: RGBColor = RGBColor(0x7F, 0x7F, 0x7F);

fn font(size: u32) -> TextStyle<'static> {
    (FONT, size).into_font().color(&BLACK)
}

fn implementation_colour(name: &str) -> RGBColor {
    if name == "appliance" {
        APPLIANCE
    } else {
        KEEPALIVED
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// One failover scenario's trials, each implementation's outages sorted.
struct Scenario {
    title: String,
    bound: Duration,
    /// In the order the implementations first appear: name, outages, lost.
    implementations: Vec<(String, Vec<Duration>, usize)>,
}

fn scenarios(trials: &[Trial]) -> Vec<Scenario> {
    let mut out: Vec<Scenario> = Vec::new();
    for t in trials {
        let title = format!("{}, {}", t.protocol, t.fault);
        let at = match out.iter().position(|s| s.title == title) {
            Some(at) => at,
            None => {
                out.push(Scenario {
                    title,
                    bound: t.bound,
                    implementations: Vec::new(),
                });
                out.len() - 1
            }
        };
        let implementations = &mut out[at].implementations;
        let i = match implementations
            .iter()
            .position(|(name, ..)| *name == t.implementation)
        {
            Some(i) => i,
            None => {
                implementations.push((t.implementation.clone(), Vec::new(), 0));
                implementations.len() - 1
            }
        };
        let (_, outages, lost) = &mut implementations[i];
        match t.outage {
            Some(d) => outages.push(d),
            None => *lost += 1,
        }
    }
    for scenario in &mut out {
        for (_, outages, _) in &mut scenario.implementations {
            outages.sort();
        }
    }
    out
}

/// The failover plot: a panel per scenario, each trial's outage a point
/// (sorted, so the x axis ranks the trials rather than orders them), each
/// implementation in its colour, the protocol's bound a line.
pub fn failover_svg(trials: &[Trial]) -> Result<String, Error> {
    let scenarios = scenarios(trials);
    if scenarios.is_empty() {
        return Err(Error::Empty("failover trials"));
    }
    let rows = scenarios.len().div_ceil(COLUMNS);
    let height = HEADER_HEIGHT + PANEL_HEIGHT * u32::try_from(rows).unwrap_or(1);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE)?;
        let (header, body) = root.split_vertically(HEADER_HEIGHT);
        header.draw(&Text::new(
            "Client-visible outage after the master fails, every trial (ms)",
            (12, 8),
            font(17),
        ))?;
        let mut names: Vec<&str> = Vec::new();
        for (name, ..) in scenarios.iter().flat_map(|s| &s.implementations) {
            if !names.contains(&name.as_str()) {
                names.push(name);
            }
        }
        let mut x = 12;
        for name in names {
            header.draw(&Circle::new(
                (x + 4, 38),
                4,
                implementation_colour(name).filled(),
            ))?;
            header.draw(&Text::new(name.to_owned(), (x + 14, 31), font(14)))?;
            x += 40 + 8 * i32::try_from(name.len()).unwrap_or(20);
        }
        header.draw(&PathElement::new(
            vec![(x, 38), (x + 20, 38)],
            BOUND.stroke_width(2),
        ))?;
        header.draw(&Text::new(
            "the protocol's bound (RFC 3768 / 5798 timers)",
            (x + 28, 31),
            font(14),
        ))?;
        for (scenario, area) in scenarios.iter().zip(body.split_evenly((rows, COLUMNS))) {
            failover_panel(&area, scenario)?;
        }
        root.present()?;
    }
    Ok(svg)
}

fn failover_panel(area: &DrawingArea<SVGBackend, Shift>, scenario: &Scenario) -> Result<(), Error> {
    let bound = ms(scenario.bound);
    let values = scenario
        .implementations
        .iter()
        .flat_map(|(_, outages, _)| outages.iter().copied().map(ms));
    let (lo, hi) = values.fold((bound, bound), |(lo, hi), v| (lo.min(v), hi.max(v)));
    // Room around the points; at least a millisecond, for a flat panel.
    let pad = ((hi - lo) * 0.15).max(1.0);
    let trials = scenario
        .implementations
        .iter()
        .map(|(_, outages, _)| outages.len())
        .max()
        .unwrap_or(0)
        .max(1);
    let lost: Vec<String> = scenario
        .implementations
        .iter()
        .filter(|(_, _, lost)| *lost > 0)
        .map(|(name, _, lost)| format!("{name}: {lost} lost"))
        .collect();
    let mut caption = format!("{}: bound {bound:.1}", scenario.title);
    if !lost.is_empty() {
        caption += &format!(" ({})", lost.join(", "));
    }
    let x_end = trials as f64 + 0.5;
    let mut chart = ChartBuilder::on(area)
        .caption(caption, font(15))
        .margin(8)
        .margin_right(18)
        .x_label_area_size(40)
        .y_label_area_size(64)
        .build_cartesian_2d(0.5..x_end, (lo - pad)..(hi + pad))?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(trials.min(10))
        .x_label_formatter(&|x| {
            if x.fract() == 0.0 {
                format!("{x:.0}")
            } else {
                String::new()
            }
        })
        .y_labels(6)
        // 3605 and 3607.5, not 3605.0.
        .y_label_formatter(&|y| format!("{y:.1}").trim_end_matches(".0").to_owned())
        .x_desc("trial, shortest outage to longest")
        .y_desc("outage (ms)")
        .label_style(font(12))
        .axis_desc_style(font(12))
        .light_line_style(WHITE)
        .bold_line_style(RGBColor(0xE6, 0xE6, 0xE6))
        .draw()?;
    chart.draw_series(LineSeries::new(
        [(0.5, bound), (x_end, bound)],
        BOUND.stroke_width(2),
    ))?;
    let count = scenario.implementations.len() as f64;
    for (i, (name, outages, _)) in scenario.implementations.iter().enumerate() {
        // Side by side within a trial's slot, not on top of each other.
        let offset = (i as f64 - (count - 1.0) / 2.0) * 0.16;
        let colour = implementation_colour(name);
        chart.draw_series(outages.iter().enumerate().map(|(rank, &d)| {
            Circle::new((rank as f64 + 1.0 + offset, ms(d)), 3, colour.filled())
        }))?;
    }
    Ok(())
}

/// One of the checker plot's benches: a title (where it ran) and its runs.
pub struct CheckerBench<'a> {
    pub title: &'a str,
    pub runs: &'a [CheckerRun],
}

/// A checker bench's runs, by where loopback's receive work ran, in order.
fn placements(runs: &[CheckerRun]) -> Vec<(&str, Vec<&CheckerRun>)> {
    let mut out: Vec<(&str, Vec<&CheckerRun>)> = Vec::new();
    for run in runs {
        match out.iter_mut().find(|(place, _)| *place == run.receive_work) {
            Some((_, group)) => group.push(run),
            None => out.push((&run.receive_work, vec![run])),
        }
    }
    out
}

fn checker_colour(run: &CheckerRun) -> RGBColor {
    match run.checker.as_str() {
        "appliance" => APPLIANCE,
        FLOOR => FLOOR_GREY,
        _ => KEEPALIVED,
    }
}

/// The checker plot: for each bench and each place loopback's receive
/// work ran, a bar per run, its CPU as a share of one core, and the bare
/// SYN loop's (the kernel's floor) a line across the bars.
pub fn checker_svg(benches: &[CheckerBench]) -> Result<String, Error> {
    let panels: Vec<(String, Vec<&CheckerRun>, f64)> = benches
        .iter()
        .flat_map(|bench| {
            // One scale per bench: its panels compare with each other.
            let max = bench.runs.iter().map(|r| r.cpu).fold(0.0, f64::max);
            placements(bench.runs)
                .into_iter()
                .map(move |(place, runs)| {
                    (
                        format!("{}; loopback's receive work on the {place}", bench.title),
                        runs,
                        max,
                    )
                })
        })
        .collect();
    if panels.is_empty() {
        return Err(Error::Empty("checker runs"));
    }
    let bars: usize = panels.iter().map(|(_, runs, _)| runs.len()).sum();
    let height = HEADER_HEIGHT
        + PANEL_FRAME * u32::try_from(panels.len()).unwrap_or(1)
        + BAR_HEIGHT * u32::try_from(bars).unwrap_or(1);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE)?;
        let (header, mut rest) = root.split_vertically(HEADER_HEIGHT);
        header.draw(&Text::new(
            "Health checker: CPU, % of one core, 1 check/s per real server",
            (12, 8),
            font(17),
        ))?;
        header.draw(&PathElement::new(
            vec![(16, 28), (16, 46)],
            FLOOR_GREY.stroke_width(2),
        ))?;
        header.draw(&Text::new(
            "the kernel's floor: a bare SYN loop, the same probes with no checker around them",
            (26, 31),
            font(14),
        ))?;
        for (title, runs, max) in &panels {
            let panel_height = PANEL_FRAME + BAR_HEIGHT * u32::try_from(runs.len()).unwrap_or(1);
            let (area, below) = rest.split_vertically(panel_height);
            checker_panel(&area, title, runs, *max)?;
            rest = below;
        }
        root.present()?;
    }
    Ok(svg)
}

fn checker_panel(
    area: &DrawingArea<SVGBackend, Shift>,
    title: &str,
    runs: &[&CheckerRun],
    max: f64,
) -> Result<(), Error> {
    let n = runs.len();
    // Bars from the top down: the first run on the highest segment.
    let at = |i: usize| n - 1 - i;
    let labels: Vec<String> = runs
        .iter()
        .map(|r| format!("{}, {}", r.checker, r.probe))
        .collect();
    let mut chart = ChartBuilder::on(area)
        .caption(title, font(14))
        .margin(6)
        .margin_right(18)
        .x_label_area_size(34)
        .y_label_area_size(250)
        // Room for the values written past the bars' ends.
        // plotters' integer ranges hold their end: n segments are 0..n-1
        // (a lone bar gets an empty segment above it, as plotters maps a
        // range of one value to nowhere).
        .build_cartesian_2d(
            0.0..(max * 1.2).max(1.0),
            (0..n.max(2) - 1).into_segmented(),
        )?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(n)
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(p) if *p < n => labels[at(*p)].clone(),
            _ => String::new(),
        })
        .x_labels(6)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .x_desc("CPU, % of one core")
        .label_style(font(12))
        .axis_desc_style(font(12))
        .light_line_style(WHITE)
        .bold_line_style(RGBColor(0xE6, 0xE6, 0xE6))
        .draw()?;
    chart.draw_series(runs.iter().enumerate().map(|(i, run)| {
        let mut bar = Rectangle::new(
            [
                (0.0, SegmentValue::Exact(at(i))),
                (run.cpu, SegmentValue::Exact(at(i) + 1)),
            ],
            checker_colour(run).filled(),
        );
        bar.set_margin(4, 4, 0, 0);
        bar
    }))?;
    chart.draw_series(runs.iter().enumerate().map(|(i, run)| {
        Text::new(
            format!("{:.2}", run.cpu),
            (run.cpu + max * 0.01, SegmentValue::CenterOf(at(i))),
            font(12).pos(Pos::new(HPos::Left, VPos::Center)),
        )
    }))?;
    for floor in runs.iter().filter(|r| r.checker == FLOOR) {
        chart.draw_series(LineSeries::new(
            [
                (floor.cpu, SegmentValue::Exact(0)),
                (floor.cpu, SegmentValue::Exact(n)),
            ],
            FLOOR_GREY.stroke_width(2),
        ))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn colour(c: RGBColor) -> String {
        format!("fill=\"#{:02X}{:02X}{:02X}\"", c.0, c.1, c.2)
    }

    /// The elements `tag` of the SVG with `attribute` among their
    /// attributes.
    fn count(svg: &str, tag: &str, attribute: &str) -> usize {
        svg.split(&format!("<{tag} "))
            .skip(1)
            .filter(|element| {
                element
                    .split_once('>')
                    .is_some_and(|(attrs, _)| attrs.contains(attribute))
            })
            .count()
    }

    /// Every `<text>`'s words, unescaped.
    fn texts(svg: &str) -> Vec<String> {
        svg.split("<text ")
            .skip(1)
            .filter_map(|element| {
                let (_, rest) = element.split_once('>')?;
                let (text, _) = rest.split_once("</text>")?;
                Some(text.trim().replace("&apos;", "'").replace("&amp;", "&"))
            })
            .collect()
    }

    fn has(svg: &str, text: &str) -> usize {
        texts(svg).iter().filter(|t| *t == text).count()
    }

    fn trial(protocol: &str, fault: &str, implementation: &str, outage: Option<u64>) -> Trial {
        Trial {
            protocol: protocol.into(),
            fault: fault.into(),
            bound: Duration::from_micros(609_375),
            implementation: implementation.into(),
            outage: outage.map(Duration::from_millis),
        }
    }

    fn trials() -> Vec<Trial> {
        let mut out = Vec::new();
        for fault in ["link cut", "clean stop", "reboot"] {
            for ms in [609, 610, 611] {
                out.push(trial("v2, 1 s", fault, "appliance", Some(ms)));
            }
            for ms in [605, 615] {
                out.push(trial("v2, 1 s", fault, "keepalived", Some(ms)));
            }
        }
        out.push(trial("v2, 1 s", "reboot", "keepalived", None));
        out
    }

    #[test]
    fn a_point_per_trial_a_bound_per_scenario() {
        let svg = failover_svg(&trials()).unwrap();
        // Each implementation's legend has one too.
        assert_eq!(count(&svg, "circle", &colour(APPLIANCE)), 3 * 3 + 1);
        assert_eq!(count(&svg, "circle", &colour(KEEPALIVED)), 3 * 2 + 1);
        let bound = format!("stroke=\"#{:02X}{:02X}{:02X}\"", BOUND.0, BOUND.1, BOUND.2);
        // The legend's and one per panel.
        assert_eq!(count(&svg, "polyline", &bound), 1 + 3);
        assert_eq!(has(&svg, "outage (ms)"), 3);
        assert_eq!(has(&svg, "trial, shortest outage to longest"), 3);
        assert_eq!(has(&svg, "v2, 1 s, link cut: bound 609.4"), 1);
        assert_eq!(
            has(&svg, "v2, 1 s, reboot: bound 609.4 (keepalived: 1 lost)"),
            1
        );
        assert!(svg.contains("font-family=\"sans-serif\""));
        assert!(svg.len() < 50_000, "{} bytes", svg.len());
        assert_eq!(failover_svg(&trials()).unwrap(), svg, "deterministic");
        assert!(matches!(failover_svg(&[]), Err(Error::Empty(_))));
    }

    #[test]
    fn the_committed_plots_draw_the_committed_samples() {
        let plots = render(&data::workspace(data::DIR)).unwrap();
        let names: Vec<&str> = plots.iter().map(|(name, _)| *name).collect();
        assert_eq!(names, [FAILOVER, CHECKER]);
        for (name, svg) in plots {
            let path = data::workspace(DIR).join(name);
            let committed = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                committed == svg,
                "{} is not the plot of {}: `cargo run -p appliance-tests --bin plots` draws it again",
                path.display(),
                data::DIR
            );
        }
    }

    fn run(checker: &str, probe: &str, receive_work: &str, cpu: f64) -> CheckerRun {
        CheckerRun {
            checker: checker.into(),
            probe: probe.into(),
            receive_work: receive_work.into(),
            servers: 10_000,
            checks_per_s: 9900.0,
            cpu,
            user: 1.0,
            kernel: cpu - 1.0,
            peak_rss_mb: 40.0,
        }
    }

    #[test]
    fn a_bar_per_run_and_the_floor_across() {
        let host = [
            run("appliance", "connect + RST", "checker's CPU", 52.42),
            run("appliance", "half-open SYN", "checker's CPU", 19.75),
            run(FLOOR, "half-open SYN", "checker's CPU", 16.2),
            run("appliance", "half-open SYN", "other CPU (RPS)", 10.13),
            run(FLOOR, "half-open SYN", "other CPU (RPS)", 8.93),
        ];
        let vm = [
            run("appliance", "half-open SYN", "checker's CPU", 11.25),
            run("keepalived 2.2.7", "connect", "checker's CPU", 43.91),
            run("appliance", "half-open SYN", "other CPU (RPS)", 5.5),
        ];
        let svg = checker_svg(&[
            CheckerBench {
                title: "host",
                runs: &host,
            },
            CheckerBench {
                title: "VM",
                runs: &vm,
            },
        ])
        .unwrap();
        assert_eq!(count(&svg, "rect", &colour(APPLIANCE)), 5);
        assert_eq!(count(&svg, "rect", &colour(FLOOR_GREY)), 2);
        assert_eq!(count(&svg, "rect", &colour(KEEPALIVED)), 1);
        let floor = format!(
            "stroke=\"#{:02X}{:02X}{:02X}\"",
            FLOOR_GREY.0, FLOOR_GREY.1, FLOOR_GREY.2
        );
        // The legend's, and one in each panel with a floor.
        assert_eq!(count(&svg, "polyline", &floor), 1 + 2);
        for (text, times) in [
            ("host; loopback's receive work on the checker's CPU", 1),
            ("host; loopback's receive work on the other CPU (RPS)", 1),
            ("VM; loopback's receive work on the checker's CPU", 1),
            ("VM; loopback's receive work on the other CPU (RPS)", 1),
            ("keepalived 2.2.7, connect", 1),
            ("bare SYN loop (floor), half-open SYN", 2),
            ("52.42", 1),
            ("CPU, % of one core", 4),
        ] {
            assert_eq!(has(&svg, text), times, "{text}");
        }
        assert!(svg.len() < 50_000, "{} bytes", svg.len());
        assert!(matches!(checker_svg(&[]), Err(Error::Empty(_))));
    }
}
