//! The benchmarks' samples as CSV (`docs/bench-data/`), committed beside
//! the pages so that the plots ([`super::plot`]) can be drawn again without
//! running a bench: the failover bench's every trial, and the checker
//! benches' every measured run.
//!
//! One record a line, a header line first; a field holding a comma or a
//! double quote is quoted (RFC 4180), and no field holds a line break.
//! Parsing takes the text and the path it came from, which every error
//! names with the line.

use super::report::{Row, Samples};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where `make bench` keeps them, in the workspace.
pub const DIR: &str = "docs/bench-data";
/// The failover bench's file in [`DIR`].
pub const FAILOVER: &str = "failover.csv";
/// The checker bench's (on this machine) and checker_vm_bench's (in a VM).
pub const CHECKER: &str = "checker.csv";
pub const CHECKER_VM: &str = "checker-vm.csv";

/// `rel` in the workspace this crate was built in.
pub fn workspace(rel: &str) -> PathBuf {
    let tests = Path::new(env!("CARGO_MANIFEST_DIR"));
    tests.parent().unwrap_or(tests).join(rel)
}

/// Reads a bench's `--flag PATH` arguments (`args`, the program's name
/// left out) into `paths`, each flag's place; an unknown flag or one
/// without its path is an error naming it.
pub fn path_flags(
    args: impl IntoIterator<Item = String>,
    paths: &mut [(&str, &mut PathBuf)],
) -> Result<(), String> {
    let mut args = args.into_iter();
    while let Some(flag) = args.next() {
        let Some((_, place)) = paths.iter_mut().find(|(name, _)| *name == flag) else {
            return Err(format!("unknown argument {flag}"));
        };
        **place = args
            .next()
            .map(PathBuf::from)
            .ok_or(format!("{flag} needs a value"))?;
    }
    Ok(())
}

const FAILOVER_HEADER: &str = "protocol,fault,bound_ms,implementation,outage_ms";
const CHECKER_HEADER: &str =
    "checker,probe,receive_work,servers,checks_per_s,cpu_pct,user_pct,kernel_pct,peak_rss_mb";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{line}: {what}", path.display())]
    Malformed {
        path: PathBuf,
        line: usize,
        what: String,
    },
}

/// One failover trial: the client's outage, `None` when the new master
/// never answered.
#[derive(Clone, Debug, PartialEq)]
pub struct Trial {
    /// E.g. "v2, 1 s".
    pub protocol: String,
    /// E.g. "link cut".
    pub fault: String,
    pub bound: Duration,
    /// "appliance" or "keepalived".
    pub implementation: String,
    pub outage: Option<Duration>,
}

/// The trials of `rows`, scenario after scenario, the appliance's then
/// keepalived's, each one's outages in the order measured and its lost
/// trials last.
pub fn trials(rows: &[Row]) -> Vec<Trial> {
    let mut out = Vec::new();
    for row in rows {
        for (implementation, samples) in [
            ("appliance", &row.appliance),
            ("keepalived", &row.keepalived),
        ] {
            let Samples { outages, lost } = samples;
            let outages = outages.iter().copied().map(Some);
            for outage in outages.chain(std::iter::repeat_n(None, *lost)) {
                out.push(Trial {
                    protocol: row.protocol.clone(),
                    fault: row.fault.clone(),
                    bound: row.bound,
                    implementation: implementation.to_owned(),
                    outage,
                });
            }
        }
    }
    out
}

/// A measured run of a checker (ours, the bare SYN loop or keepalived's).
#[derive(Clone, Debug, PartialEq)]
pub struct CheckerRun {
    /// E.g. "appliance", [`FLOOR`], "keepalived 2.2.7".
    pub checker: String,
    /// E.g. "half-open SYN".
    pub probe: String,
    /// Where loopback's receive work ran, e.g. "checker's CPU".
    pub receive_work: String,
    pub servers: usize,
    pub checks_per_s: f64,
    /// Shares of one core, percent: the total, in user space, in the kernel.
    pub cpu: f64,
    pub user: f64,
    pub kernel: f64,
    pub peak_rss_mb: f64,
}

/// The checker bench's name for the bare SYN loop: the kernel's cost of
/// the probes, the floor under any half-open checker.
pub const FLOOR: &str = "bare SYN loop (floor)";

/// Milliseconds to the microsecond: the probes' resolution is 5 ms, and a
/// round trip through the file keeps what was measured to the µs.
fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1000.0)
}

pub fn failover_csv(trials: &[Trial]) -> String {
    let mut out = format!("{FAILOVER_HEADER}\n");
    for t in trials {
        let outage = t.outage.map(ms).unwrap_or_default();
        push_record(
            &mut out,
            &[
                &t.protocol,
                &t.fault,
                &ms(t.bound),
                &t.implementation,
                &outage,
            ],
        );
    }
    out
}

pub fn checker_csv(runs: &[CheckerRun]) -> String {
    let mut out = format!("{CHECKER_HEADER}\n");
    for r in runs {
        push_record(
            &mut out,
            &[
                &r.checker,
                &r.probe,
                &r.receive_work,
                &r.servers.to_string(),
                &format!("{:.0}", r.checks_per_s),
                &format!("{:.2}", r.cpu),
                &format!("{:.2}", r.user),
                &format!("{:.2}", r.kernel),
                &format!("{:.1}", r.peak_rss_mb),
            ],
        );
    }
    out
}

fn push_record(out: &mut String, fields: &[&str]) {
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        if field.contains([',', '"']) {
            out.push('"');
            out.push_str(&field.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(field);
        }
    }
    out.push('\n');
}

/// The fields of one line, unquoted.
fn split_record(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                    None => return Err("a quoted field does not end".into()),
                }
            }
            if !matches!(chars.peek(), None | Some(',')) {
                return Err(format!("text after the quoted field \"{field}\""));
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                if c == '"' {
                    return Err(format!("a quote inside the unquoted field {field:?}"));
                }
                field.push(c);
                chars.next();
            }
        }
        fields.push(field);
        if chars.next().is_none() {
            return Ok(fields);
        }
    }
}

/// A file's records under `header`, each with its line number (from 1),
/// its fields checked against the header's count.
fn records<'a>(
    path: &'a Path,
    text: &'a str,
    header: &'a str,
) -> Result<impl Iterator<Item = Result<Record<'a>, Error>>, Error> {
    let malformed = |line, what: String| Error::Malformed {
        path: path.to_owned(),
        line,
        what,
    };
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
    match lines.next() {
        Some((_, first)) if first == header => {}
        Some((line, first)) => {
            return Err(malformed(
                line,
                format!("the header is {first:?}, expected {header:?}"),
            ));
        }
        None => {
            return Err(malformed(
                1,
                format!("empty, expected the header {header:?}"),
            ));
        }
    }
    let columns = header.split(',').count();
    Ok(lines.filter(|(_, l)| !l.is_empty()).map(move |(line, l)| {
        let fields = split_record(l).map_err(|what| malformed(line, what))?;
        if fields.len() != columns {
            return Err(malformed(
                line,
                format!("{} fields, expected {columns} ({header})", fields.len()),
            ));
        }
        Ok(Record {
            path,
            line,
            header,
            fields,
        })
    }))
}

/// One line's fields, and where it came from for errors.
struct Record<'a> {
    path: &'a Path,
    line: usize,
    header: &'a str,
    fields: Vec<String>,
}

impl Record<'_> {
    fn text(&self, i: usize) -> String {
        self.fields.get(i).cloned().unwrap_or_default()
    }

    fn number<T: std::str::FromStr>(&self, i: usize) -> Result<T, Error> {
        let text = self.fields.get(i).map_or("", String::as_str);
        text.parse().map_err(|_| Error::Malformed {
            path: self.path.to_owned(),
            line: self.line,
            what: format!(
                "{}: {text:?} is not a number",
                self.header.split(',').nth(i).unwrap_or("?")
            ),
        })
    }

    /// A non-negative count of milliseconds.
    fn ms(&self, i: usize) -> Result<Duration, Error> {
        let value: f64 = self.number(i)?;
        Duration::try_from_secs_f64(value / 1000.0).map_err(|_| Error::Malformed {
            path: self.path.to_owned(),
            line: self.line,
            what: format!(
                "{}: {value} is not a duration in ms",
                self.header.split(',').nth(i).unwrap_or("?")
            ),
        })
    }
}

pub fn parse_failover(path: &Path, text: &str) -> Result<Vec<Trial>, Error> {
    records(path, text, FAILOVER_HEADER)?
        .map(|record| {
            let record = record?;
            Ok(Trial {
                protocol: record.text(0),
                fault: record.text(1),
                bound: record.ms(2)?,
                implementation: record.text(3),
                outage: match record.fields.get(4).map(String::as_str) {
                    None | Some("") => None,
                    Some(_) => Some(record.ms(4)?),
                },
            })
        })
        .collect()
}

pub fn parse_checker(path: &Path, text: &str) -> Result<Vec<CheckerRun>, Error> {
    records(path, text, CHECKER_HEADER)?
        .map(|record| {
            let record = record?;
            Ok(CheckerRun {
                checker: record.text(0),
                probe: record.text(1),
                receive_work: record.text(2),
                servers: record.number(3)?,
                checks_per_s: record.number(4)?,
                cpu: record.number(5)?,
                user: record.number(6)?,
                kernel: record.number(7)?,
                peak_rss_mb: record.number(8)?,
            })
        })
        .collect()
}

/// Reads `path` whole.
pub fn read(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })
}

/// Writes `text` to `path`, making its folder if needed.
pub fn write(path: &Path, text: &str) -> Result<(), Error> {
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    std::fs::write(path, text).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn row() -> Row {
        Row {
            protocol: "v3, 100 ms".into(),
            fault: "clean stop".into(),
            bound: Duration::from_micros(60_937),
            bound_formula: "Skew_Time".into(),
            appliance: Samples {
                outages: vec![Duration::from_micros(60_312), ms(59)],
                lost: 1,
            },
            keepalived: Samples {
                outages: vec![ms(70)],
                lost: 0,
            },
        }
    }

    #[test]
    fn failover_trials_round_trip() {
        let trials = trials(&[row()]);
        assert_eq!(trials.len(), 4);
        let text = failover_csv(&trials);
        assert_eq!(
            text,
            "protocol,fault,bound_ms,implementation,outage_ms\n\
             \"v3, 100 ms\",clean stop,60.937,appliance,60.312\n\
             \"v3, 100 ms\",clean stop,60.937,appliance,59.000\n\
             \"v3, 100 ms\",clean stop,60.937,appliance,\n\
             \"v3, 100 ms\",clean stop,60.937,keepalived,70.000\n"
        );
        assert_eq!(parse_failover(Path::new("f.csv"), &text).unwrap(), trials);
    }

    #[test]
    fn checker_runs_round_trip() {
        let runs = vec![CheckerRun {
            checker: FLOOR.into(),
            probe: "say \"hi\", twice".into(),
            receive_work: "checker's CPU".into(),
            servers: 10_000,
            checks_per_s: 9901.0,
            cpu: 19.75,
            user: 3.21,
            kernel: 16.54,
            peak_rss_mb: 47.9,
        }];
        let text = checker_csv(&runs);
        assert!(
            text.ends_with(
                "bare SYN loop (floor),\"say \"\"hi\"\", twice\",checker's CPU,10000,9901,19.75,3.21,16.54,47.9\n"
            ),
            "{text}"
        );
        assert_eq!(parse_checker(Path::new("c.csv"), &text).unwrap(), runs);
    }

    #[test]
    fn malformed_files_name_the_file_and_the_line() {
        let path = Path::new("docs/bench-data/failover.csv");
        let cases = [
            ("", ":1: empty"),
            ("protocol,outage\n", ":1: the header is \"protocol,outage\""),
            (
                "protocol,fault,bound_ms,implementation,outage_ms\nv2,link cut,1,appliance\n",
                ":2: 4 fields, expected 5",
            ),
            (
                "protocol,fault,bound_ms,implementation,outage_ms\n\n\"v2, 1 s\",link cut,1,appliance,fast\n",
                ":3: outage_ms: \"fast\" is not a number",
            ),
            (
                "protocol,fault,bound_ms,implementation,outage_ms\nv2,link cut,-5,appliance,1\n",
                ":2: bound_ms: -5 is not a duration in ms",
            ),
            (
                "protocol,fault,bound_ms,implementation,outage_ms\n\"v2, 1 s,link cut,1,appliance,1\n",
                ":2: a quoted field does not end",
            ),
            (
                "protocol,fault,bound_ms,implementation,outage_ms\n\"v2\" x,link cut,1,appliance,1\n",
                ":2: text after the quoted field",
            ),
        ];
        for (text, want) in cases {
            let e = parse_failover(path, text).unwrap_err().to_string();
            assert!(
                e.starts_with("docs/bench-data/failover.csv:") && e.contains(want),
                "{text:?}: {e}"
            );
        }
        let e = parse_checker(
            Path::new("c.csv"),
            &format!("{CHECKER_HEADER}\na,b,c,many,1,2,3,4,5\n"),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(e, "c.csv:2: servers: \"many\" is not a number");
    }

    #[test]
    fn path_flags_set_their_places_and_name_what_is_wrong() {
        let (mut a, mut b) = (PathBuf::from("a"), PathBuf::from("b"));
        let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        path_flags(args(&["--b", "x"]), &mut [("--a", &mut a), ("--b", &mut b)]).unwrap();
        assert_eq!((a.as_path(), b.as_path()), (Path::new("a"), Path::new("x")));
        assert_eq!(
            path_flags(args(&["--c", "x"]), &mut [("--a", &mut a)]),
            Err("unknown argument --c".into())
        );
        assert_eq!(
            path_flags(args(&["--a"]), &mut [("--a", &mut a)]),
            Err("--a needs a value".into())
        );
    }
}
