//! Man pages and shell completion scripts, generated from the command
//! line's definition ([`Cli`]) so they cannot drift from it.
//!
//! `appliance man --out DIR` (hidden; `make install` runs it) writes the
//! section 8 pages: appliance(8), which also tells the installed daemon's
//! files and signals, and one page per visible command, a nested one named
//! by its path (appliance-ipvs-sync-daemon-start(8)). Every page has NAME,
//! SYNOPSIS, DESCRIPTION and OPTIONS from clap and ends with SEE ALSO.
//! `appliance completions SHELL` prints the script for bash, zsh or fish.
//!
//! The header's date is `SOURCE_DATE_EPOCH`'s day when it is set (the
//! reproducible-builds convention; `make install` sets it to the last
//! commit's time), and left out otherwise, so the same sources give the
//! same pages.

use super::{Cli, Shell};
use clap::{Command, CommandFactory};
use clap_mangen::Man;
use clap_mangen::roff::{Inline, Roff, bold, italic, roman};
use std::path::{Path, PathBuf};

/// The manual section: system administration commands and daemons.
pub const SECTION: &str = "8";

/// The manual's name in each page's header, as section 8 pages have it.
const MANUAL: &str = "System Manager's Manual";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("writing {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("SOURCE_DATE_EPOCH={0:?} is not a number of seconds since 1970")]
    SourceDateEpoch(String),
}

/// One man page: its file name (`appliance-run.8`) and its roff source.
pub struct Page {
    pub file_name: String,
    pub roff: String,
}

/// The files the installed daemon reads and writes (appliance.service and
/// `appliance run`'s defaults), for appliance(8).
const FILES: [(&str, &str); 4] = [
    (
        "/etc/appliance/appliance.toml",
        "The config appliance.service runs: the appliance's TOML or a \
         keepalived.conf (the format is detected). The unit does not start \
         without it or /etc/default/appliance.",
    ),
    (
        "/etc/default/appliance",
        "Read by appliance.service: CONFIG=FILE runs another config, an \
         existing /etc/keepalived/keepalived.conf say.",
    ),
    (
        "/run/appliance/appliance.sock",
        "The running daemon's status socket, which appliance status asks. \
         /run/appliance also keeps the dataplane's record of the virtual \
         services it made, so a restart reconciles them instead of flushing \
         live connections; real-servers.json, what the operator set \
         with appliance enable, disable, drain and weight; and vrrp.json, \
         the instances that are MASTER, so that a master restarted within \
         its Master_Down_Interval resumes as master.",
    ),
    (
        "/var/log/appliance/timeline.jsonl",
        "The failover timeline appliance.service keeps: every VRRP state \
         change, advert and check transition as one JSON object a line, \
         under 16 MiB, with the previous generation as timeline.jsonl.1.",
    ),
];

/// The signals `appliance run` acts on, for appliance(8) and
/// appliance-run(8).
const SIGNALS: [(&str, &str); 3] = [
    (
        "SIGHUP",
        "Reload: read the config again and apply it if it is valid; an \
         invalid one is logged with its problems and the running config is \
         kept (systemctl reload appliance).",
    ),
    (
        "SIGTERM, SIGINT",
        "Resign: send a priority 0 advert so that a backup takes over at \
         once, remove the VIPs and exit 0 (systemctl stop appliance). The \
         kernel's virtual servers stay, so a restart does not cut \
         connections.",
    ),
    (
        "SIGQUIT",
        "Stop for a restart (an upgrade to a new binary): no resignation, \
         the VIPs and the kernel's table stay, exit 0. Started again \
         within its Master_Down_Interval, a master resumes at once and its \
         backups never take over.",
    ),
];

/// Pages the top one links to besides its own commands.
const SEE_ALSO_TOP: [&str; 4] = [
    "ipvsadm(8)",
    "keepalived(8)",
    "keepalived.conf(5)",
    "systemctl(1)",
];

/// The command line as the man pages show it: built (so each command knows
/// its path), without clap's `help` commands, which have no page.
fn command() -> Command {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    cmd
}

/// Every page, appliance(8) first, then each visible command's, parents
/// before their children. `date` goes into each header (`YYYY-MM-DD`, or
/// empty for none).
pub fn man_pages(date: &str) -> Vec<Page> {
    let top = command();
    let source = format!("appliance {}", top.get_version().unwrap_or_default());
    let mut pages = Vec::new();
    collect(&top, None, &source, date, &mut pages);
    pages
}

fn collect(cmd: &Command, parent: Option<&str>, source: &str, date: &str, pages: &mut Vec<Page>) {
    pages.push(page(cmd, parent, source, date));
    let name = page_name(cmd);
    for sub in visible_subcommands(cmd) {
        collect(sub, Some(&name), source, date, pages);
    }
}

fn visible_subcommands(cmd: &Command) -> impl Iterator<Item = &Command> {
    cmd.get_subcommands().filter(|sub| !sub.is_hide_set())
}

/// `appliance`, `appliance-run`, `appliance-ipvs-list`: the page's title,
/// which clap's build gave each command as its display name.
fn page_name(cmd: &Command) -> String {
    cmd.get_display_name().unwrap_or(cmd.get_name()).to_string()
}

/// One command's page; `parent` is the page of the command it belongs to
/// (none for the top one).
fn page(cmd: &Command, parent: Option<&str>, source: &str, date: &str) -> Page {
    let name = page_name(cmd);
    let man = Man::new(cmd.clone())
        .section(SECTION)
        .date(date)
        .source(source)
        .manual(MANUAL);
    // clap_mangen writes each section with roff's preamble (the definition
    // of the apostrophe string \*(Aq) before it: the page has it once,
    // after the .TH header, which man-pages(7) wants on the first line.
    let mut sections: Vec<Vec<u8>> = Vec::new();
    let mut render = |section: &dyn Fn(&mut dyn std::io::Write) -> std::io::Result<()>| {
        let mut text = Vec::new();
        // Writing into a Vec cannot fail.
        section(&mut text).expect("writing into a Vec");
        sections.push(text);
    };
    render(&|w| man.render_title(w));
    render(&|w| man.render_name_section(w));
    render(&|w| man.render_synopsis_section(w));
    render(&|w| man.render_description_section(w));
    if cmd.get_arguments().any(|arg| !arg.is_hide_set()) {
        render(&|w| man.render_options_section(w));
    }
    if visible_subcommands(cmd).next().is_some() {
        render(&|w| man.render_subcommands_section(w));
    }
    let mut roff = Roff::new();
    let see_also: Vec<String> = match parent {
        None => {
            list_section(&mut roff, "FILES", &FILES, italic);
            list_section(&mut roff, "SIGNALS", &SIGNALS, bold);
            SEE_ALSO_TOP.iter().map(|page| page.to_string()).collect()
        }
        Some(parent) => {
            if cmd.get_name() == "run" {
                list_section(&mut roff, "SIGNALS", &SIGNALS, bold);
            }
            let mut pages = vec![format!("appliance({SECTION})")];
            if parent != "appliance" {
                pages.push(format!("{parent}({SECTION})"));
            }
            pages
        }
    };
    roff.control("SH", ["SEE ALSO"]);
    roff.text(references(&see_also));
    render(&|w| roff.to_writer(w));

    let text = String::from_utf8_lossy(&sections.concat()).replace(PREAMBLE, "");
    let (title, body) = text.split_once('\n').unwrap_or((&text, ""));
    Page {
        file_name: format!("{name}.{SECTION}"),
        roff: format!("{title}\n{PREAMBLE}{body}"),
    }
}

/// What roff writes before every document: the apostrophe string \*(Aq
/// for groff and for other troffs.
const PREAMBLE: &str = ".ie \\n(.g .ds Aq \\(aq\n.el .ds Aq '\n";

/// A section of tagged paragraphs: each term (set in `style`) and what it
/// is.
fn list_section(roff: &mut Roff, title: &str, items: &[(&str, &str)], style: fn(String) -> Inline) {
    roff.control("SH", [title]);
    for (term, text) in items {
        roff.control("TP", []);
        roff.text([style(term.to_string())]);
        roff.text([roman(*text)]);
    }
}

/// `name(8), other(5)` with the names in bold, as SEE ALSO sets them.
fn references(pages: &[String]) -> Vec<Inline> {
    let mut line = Vec::new();
    for (i, page) in pages.iter().enumerate() {
        if i > 0 {
            line.push(roman(", "));
        }
        match page.split_once('(') {
            Some((name, section)) => {
                line.push(bold(name));
                line.push(roman(format!("({section}")));
            }
            None => line.push(bold(page.as_str())),
        }
    }
    line
}

/// Writes every page into `dir` (made if missing) and returns their paths.
pub fn write_man_pages(dir: &Path, date: &str) -> Result<Vec<PathBuf>, Error> {
    std::fs::create_dir_all(dir).map_err(|source| Error::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    man_pages(date)
        .into_iter()
        .map(|page| {
            let path = dir.join(&page.file_name);
            std::fs::write(&path, page.roff).map_err(|source| Error::Write {
                path: path.clone(),
                source,
            })?;
            Ok(path)
        })
        .collect()
}

/// The date for the pages' headers: `SOURCE_DATE_EPOCH`'s day (UTC) as
/// `YYYY-MM-DD` when the variable is set, or empty (also when it is set
/// empty, as `make install` outside a git checkout does).
pub fn source_date() -> Result<String, Error> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(value) if !value.trim().is_empty() => date_of_epoch(&value),
        _ => Ok(String::new()),
    }
}

fn date_of_epoch(seconds: &str) -> Result<String, Error> {
    let seconds: u64 = seconds
        .trim()
        .parse()
        .map_err(|_| Error::SourceDateEpoch(seconds.to_string()))?;
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(seconds);
    // 2024-05-01T12:00:00Z: the date is the first ten characters.
    let mut date = humantime::format_rfc3339_seconds(time).to_string();
    date.truncate(10);
    Ok(date)
}

/// The completion script for `shell`. Hidden commands (`man`) are left
/// out: clap_complete would offer them. Generated into memory because
/// clap_complete panics when its writer fails (a closed pipe).
pub fn completions(shell: Shell) -> Vec<u8> {
    let full = Cli::command();
    let mut cmd = Command::new("appliance")
        .version(env!("CARGO_PKG_VERSION"))
        .about(full.get_about().cloned().unwrap_or_default())
        .args(full.get_arguments().cloned())
        .subcommands(visible_subcommands(&full).cloned());
    let generator = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    let mut script = Vec::new();
    clap_complete::generate(generator, &mut cmd, "appliance", &mut script);
    script
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every visible command's path: `run`, `ipvs list`, ...
    fn command_paths(cmd: &Command, prefix: &str, paths: &mut Vec<String>) {
        for sub in visible_subcommands(cmd) {
            let path = format!("{prefix}{}", sub.get_name());
            command_paths(sub, &format!("{path} "), paths);
            paths.push(path);
        }
    }

    fn page<'a>(pages: &'a [Page], file_name: &str) -> &'a str {
        &pages
            .iter()
            .find(|page| page.file_name == file_name)
            .unwrap_or_else(|| panic!("no page {file_name}"))
            .roff
    }

    #[test]
    fn every_command_has_a_section_8_page() {
        let pages = man_pages("2024-05-01");
        let mut paths = Vec::new();
        command_paths(&command(), "", &mut paths);
        for path in ["run", "check-config", "ipvs list", "ipvs sync-daemon start"] {
            assert!(paths.iter().any(|p| p == path), "{path} not in {paths:?}");
        }
        let mut expected: Vec<String> = paths
            .iter()
            .map(|path| format!("appliance-{}.8", path.replace(' ', "-")))
            .chain(["appliance.8".to_string()])
            .collect();
        expected.sort();
        let mut names: Vec<String> = pages.iter().map(|p| p.file_name.clone()).collect();
        names.sort();
        assert_eq!(names, expected);
        assert_eq!(pages[0].file_name, "appliance.8");
        let version = env!("CARGO_PKG_VERSION");
        for page in &pages {
            let title = page.file_name.trim_end_matches(".8");
            let header = format!(
                ".TH {title} 8 2024-05-01 \"appliance {version}\" \"System Manager's Manual\"\n"
            );
            assert!(
                page.roff.starts_with(&header),
                "{}:\n{}",
                page.file_name,
                page.roff
            );
            for section in ["NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "SEE ALSO"] {
                assert!(
                    page.roff.contains(&format!(".SH {section}\n"))
                        || page.roff.contains(&format!(".SH \"{section}\"\n")),
                    "{} has no {section}:\n{}",
                    page.file_name,
                    page.roff
                );
            }
            if title != "appliance" {
                assert!(
                    page.roff.contains("\\fBappliance\\fR(8)"),
                    "{} does not refer to appliance(8):\n{}",
                    page.file_name,
                    page.roff
                );
            }
        }
    }

    #[test]
    fn pages_say_what_each_command_does() {
        let pages = man_pages("");
        let run = page(&pages, "appliance-run.8");
        assert!(
            run.starts_with(".TH appliance-run 8  \"appliance "),
            "{run}"
        );
        assert!(
            run.contains("appliance\\-run \\- Run the director"),
            "{run}"
        );
        assert!(run.contains("\\fBappliance run\\fR"), "{run}");
        assert!(run.contains("\\-\\-config"), "{run}");
        assert!(run.contains("SIGHUP"), "{run}");
        let list = page(&pages, "appliance-ipvs-list.8");
        assert!(list.contains("\\fBappliance ipvs list\\fR"), "{list}");
        assert!(list.contains("\\fBappliance\\-ipvs\\fR(8)"), "{list}");
        let ipvs = page(&pages, "appliance-ipvs.8");
        assert!(
            ipvs.contains("appliance\\-ipvs\\-sync\\-daemon(8)"),
            "{ipvs}"
        );
    }

    #[test]
    fn the_top_page_tells_the_files_and_signals() {
        let pages = man_pages("");
        let top = page(&pages, "appliance.8");
        for text in [
            ".SH FILES",
            "/etc/appliance/appliance.toml",
            "/etc/default/appliance",
            "/run/appliance/appliance.sock",
            "/var/log/appliance/timeline.jsonl",
            ".SH SIGNALS",
            "SIGHUP",
            "SIGTERM",
            "appliance\\-run(8)",
            "keepalived.conf\\fR(5)",
        ] {
            assert!(top.contains(text), "no {text:?} in appliance.8:\n{top}");
        }
        assert!(!top.contains("appliance\\-man"), "{top}");
        assert!(!top.contains("appliance\\-help"), "{top}");
    }

    #[test]
    fn pages_are_written_into_the_directory() {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = dir.path().join("man8");
        let written = write_man_pages(&out, "").expect("write the pages");
        assert_eq!(written.len(), man_pages("").len());
        for path in &written {
            assert_eq!(path.parent(), Some(out.as_path()));
            let text = std::fs::read_to_string(path).expect("read a page");
            assert!(text.starts_with(".TH "), "{}", path.display());
        }
    }

    #[test]
    fn the_date_is_source_date_epochs_day() {
        assert_eq!(date_of_epoch("0").expect("date"), "1970-01-01");
        assert_eq!(date_of_epoch("1714564800").expect("date"), "2024-05-01");
        assert!(matches!(
            date_of_epoch("yesterday"),
            Err(Error::SourceDateEpoch(_))
        ));
    }

    #[test]
    fn completions_offer_every_visible_command() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let script = String::from_utf8(completions(shell)).expect("utf-8 script");
            for word in [
                "run",
                "status",
                "check-config",
                "convert",
                "decode",
                "ipvs",
                "sync-daemon",
                "dataplane",
                "completions",
            ] {
                assert!(
                    script.contains(word),
                    "{shell:?} script lacks {word:?}:\n{script}"
                );
            }
            assert!(script.contains("appliance"), "{shell:?}");
            assert!(
                !script.contains("--out"),
                "{shell:?} script offers the hidden man command:\n{script}"
            );
        }
        // Each shell's own way of registering, and of naming `run --config`.
        let bash = String::from_utf8(completions(Shell::Bash)).expect("utf-8");
        assert!(bash.contains("complete -F _appliance"), "{bash}");
        assert!(bash.contains("--config"), "{bash}");
        let zsh = String::from_utf8(completions(Shell::Zsh)).expect("utf-8");
        assert!(zsh.starts_with("#compdef appliance"), "{zsh}");
        assert!(zsh.contains("'--config=["), "{zsh}");
        let fish = String::from_utf8(completions(Shell::Fish)).expect("utf-8");
        assert!(fish.contains("complete -c appliance"), "{fish}");
        assert!(fish.contains("-l config"), "{fish}");
    }
}
