//! The console prompt (`appliance> `): one command per line, read by a
//! thread of its own. What only reads (status, the config check, the logs)
//! is answered here; what changes the system (reload, restart, power) goes
//! to the main loop as a [`Request`].

use super::{Power, Request, State, paths};
use std::io::{BufRead, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, PoisonError};
use tracing::{info, warn};

pub(super) const PROMPT: &str = "appliance> ";
/// Lines `log` and `timeline` show by default.
const DEFAULT_LINES: usize = 20;
/// `log` and `timeline` read at most this much of a file's end.
const TAIL_WINDOW: u64 = 1024 * 1024;
const USAGE: &str = "commands: help, status [--json], check-config, log [N], timeline [N], reload, restart, poweroff, reboot";
const HELP: &str = "\
help             this list
status [--json]  the appliance's VRRP instances and virtual servers
check-config     check the config file as `appliance check-config` does
log [N]          the last N lines of the log (20)
timeline [N]     the last N events of the failover timeline (20)
reload           the appliance rereads its config (or init checks it again)
restart          stop the appliance and start it again
poweroff         stop the appliance and power off
reboot           stop the appliance and reboot
";

/// A console command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Command {
    /// A blank line: just the prompt again.
    Nothing,
    Help,
    Status {
        json: bool,
    },
    CheckConfig,
    Log {
        lines: usize,
    },
    Timeline {
        lines: usize,
    },
    Reload,
    Restart,
    Poweroff,
    Reboot,
}

/// Why a line is not a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum ParseError {
    #[error("unknown command '{0}'")]
    Unknown(String),
    #[error("{command}: unexpected '{argument}'")]
    Argument { command: String, argument: String },
}

/// Parses one console line.
pub(super) fn parse(line: &str) -> Result<Command, ParseError> {
    let mut words = line.split_whitespace();
    let Some(command) = words.next() else {
        return Ok(Command::Nothing);
    };
    let argument = words.next();
    let unexpected = |argument: &str| ParseError::Argument {
        command: command.to_string(),
        argument: argument.to_string(),
    };
    if let Some(extra) = words.next() {
        return Err(unexpected(extra));
    }
    let count = |argument: Option<&str>| match argument {
        None => Ok(DEFAULT_LINES),
        Some(n) => n.parse().map_err(|_| unexpected(n)),
    };
    let parsed = match (command, argument) {
        ("help" | "?", None) => Command::Help,
        ("status", None) => Command::Status { json: false },
        ("status", Some("--json")) => Command::Status { json: true },
        ("check-config", None) => Command::CheckConfig,
        ("log", n) => Command::Log { lines: count(n)? },
        ("timeline", n) => Command::Timeline { lines: count(n)? },
        ("reload", None) => Command::Reload,
        ("restart", None) => Command::Restart,
        ("poweroff", None) => Command::Poweroff,
        ("reboot", None) => Command::Reboot,
        (
            "help" | "?" | "status" | "check-config" | "reload" | "restart" | "poweroff" | "reboot",
            Some(argument),
        ) => return Err(unexpected(argument)),
        (other, _) => return Err(ParseError::Unknown(other.to_string())),
    };
    Ok(parsed)
}

/// The last `n` lines of `text` (a final newline does not make an empty
/// last line).
pub(super) fn last_lines(text: &str, n: usize) -> &str {
    if n == 0 {
        return "";
    }
    let body = text.strip_suffix('\n').unwrap_or(text);
    match body.rmatch_indices('\n').nth(n - 1) {
        Some((i, _)) => text.get(i + 1..).unwrap_or(text),
        None => text,
    }
}

/// The last `n` lines of the file at `path`.
fn tail(path: &Path, n: usize) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(TAIL_WINDOW)))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let text = String::from_utf8_lossy(&bytes);
    Ok(last_lines(&text, n).to_string())
}

/// Writes to the console; a console that fails to take it has no one to
/// tell.
fn say(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// The console's half: answers what it can and forwards the rest.
struct Console {
    state: Arc<Mutex<State>>,
    requests: Sender<Request>,
}

impl Console {
    fn state(&self) -> State {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn run(&self, command: Command) {
        let forward = |request: Request| {
            if self.requests.send(request).is_err() {
                say("init is not listening\n");
            }
        };
        match command {
            Command::Nothing => {}
            Command::Help => say(HELP),
            Command::Status { json } => self.status(json),
            Command::CheckConfig => self.check_config(),
            Command::Log { lines } => self.tail(paths::LOG_FILE, lines),
            Command::Timeline { lines } => self.tail(paths::TIMELINE_FILE, lines),
            Command::Reload => forward(Request::Reload),
            Command::Restart => forward(Request::Restart),
            Command::Poweroff => forward(Request::Power(Power::Off)),
            Command::Reboot => forward(Request::Power(Power::Reboot)),
        }
    }

    /// As `appliance status` prints it, or why there is none.
    fn status(&self, json: bool) {
        let socket = Path::new(crate::daemon::status::DEFAULT_SOCKET);
        match crate::daemon::status::query(socket) {
            Ok(status) if json => match serde_json::to_string_pretty(&status) {
                Ok(text) => say(&(text + "\n")),
                Err(e) => say(&format!("status: {e}\n")),
            },
            Ok(status) => say(&status.to_string()),
            Err(e) => say(&format!(
                "status: {e}\nappliance: {}\n",
                self.state().daemon
            )),
        }
    }

    /// As `appliance check-config` prints it.
    fn check_config(&self) {
        let Some(dir) = self.state().config_dir else {
            say("no config partition\n");
            return;
        };
        let Some(file) = super::supervise::config_file(&dir) else {
            say(&format!(
                "{}: no appliance.toml or keepalived.conf\n",
                dir.display()
            ));
            return;
        };
        match crate::daemon::check_config(&file) {
            Ok((_, warnings)) => {
                for w in warnings {
                    say(&format!("{}: warning: {}\n", w.pos, w.message));
                }
                say(&format!("{}: ok\n", file.display()));
            }
            Err(e) => say(&(e.lines().join("\n") + "\n")),
        }
    }

    fn tail(&self, file: &str, lines: usize) {
        if self.state().config_dir.is_none() {
            say("no config partition: no log\n");
            return;
        }
        match tail(Path::new(file), lines) {
            Ok(text) => say(&text),
            Err(e) => say(&format!("{file}: {e}\n")),
        }
    }
}

/// Starts the prompt on standard input and output (the console). The
/// thread ends at the end of input (no console).
pub(super) fn spawn(state: Arc<Mutex<State>>, requests: Sender<Request>) {
    let console = Console { state, requests };
    let started = std::thread::Builder::new()
        .name("console".into())
        .spawn(move || {
            let mut stdin = std::io::stdin().lock();
            let mut line = Vec::new();
            loop {
                say(PROMPT);
                line.clear();
                match stdin.read_until(b'\n', &mut line) {
                    Ok(0) => {
                        info!("console: end of input; no prompt");
                        return;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        warn!(error = %e, "console: reading failed");
                        std::thread::sleep(std::time::Duration::from_secs(1));
                        continue;
                    }
                }
                match parse(&String::from_utf8_lossy(&line)) {
                    Ok(command) => console.run(command),
                    Err(e) => say(&format!("{e}; {USAGE}\n")),
                }
            }
        });
    if let Err(e) = started {
        warn!(error = %e, "console: the prompt did not start");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_with_their_arguments() {
        assert_eq!(parse("  \n"), Ok(Command::Nothing));
        assert_eq!(parse("help"), Ok(Command::Help));
        assert_eq!(parse("status\n"), Ok(Command::Status { json: false }));
        assert_eq!(
            parse(" status  --json "),
            Ok(Command::Status { json: true })
        );
        assert_eq!(parse("check-config"), Ok(Command::CheckConfig));
        assert_eq!(parse("log"), Ok(Command::Log { lines: 20 }));
        assert_eq!(parse("log 5"), Ok(Command::Log { lines: 5 }));
        assert_eq!(parse("timeline 100"), Ok(Command::Timeline { lines: 100 }));
        assert_eq!(parse("reload"), Ok(Command::Reload));
        assert_eq!(parse("restart"), Ok(Command::Restart));
        assert_eq!(parse("poweroff"), Ok(Command::Poweroff));
        assert_eq!(parse("reboot\r\n"), Ok(Command::Reboot));
    }

    #[test]
    fn unknown_commands_and_stray_arguments_are_refused() {
        assert_eq!(parse("halt"), Err(ParseError::Unknown("halt".into())));
        let refused = |line: &str| parse(line).unwrap_err().to_string();
        assert_eq!(refused("log five"), "log: unexpected 'five'");
        assert_eq!(refused("log -3"), "log: unexpected '-3'");
        assert_eq!(refused("status --yaml"), "status: unexpected '--yaml'");
        assert_eq!(refused("reboot now"), "reboot: unexpected 'now'");
        assert_eq!(refused("timeline 1 2"), "timeline: unexpected '2'");
    }

    #[test]
    fn the_last_lines_of_a_text() {
        let text = "a\nb\nc\n";
        assert_eq!(last_lines(text, 2), "b\nc\n");
        assert_eq!(last_lines(text, 3), text);
        assert_eq!(last_lines(text, 10), text);
        assert_eq!(last_lines(text, 0), "");
        assert_eq!(last_lines("a\nb", 1), "b");
        assert_eq!(last_lines("", 5), "");
    }

    #[test]
    fn tail_reads_the_end_of_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("appliance.log");
        let text: String = (1..=50).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&path, text).unwrap();
        assert_eq!(tail(&path, 2).unwrap(), "line 49\nline 50\n");
        assert!(tail(&dir.path().join("missing"), 2).is_err());
    }
}
