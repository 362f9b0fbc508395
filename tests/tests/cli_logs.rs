//! What the commands and the daemon's log say, read as a person and a log
//! collector read them: `appliance status` with no daemon, errors that name
//! their cause once, no colour outside a terminal, the journal's priority
//! prefixes (as systemd's `JOURNAL_STREAM` asks), and `--log-format json`.

use appliance_tests::appliance_bin;
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Output, Stdio};

fn appliance(args: &[&str]) -> Command {
    let mut cmd = Command::new(appliance_bin());
    cmd.args(args)
        .env_remove("JOURNAL_STREAM")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null());
    cmd
}

fn output(cmd: &mut Command) -> Output {
    cmd.output().expect("run appliance")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn status_without_a_daemon_says_so_and_how_to_start_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let socket = dir.path().join("appliance.sock");
    let out = output(&mut appliance(&[
        "status",
        "--socket",
        socket.to_str().unwrap(),
    ]));
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert_eq!(
        stderr,
        format!(
            "error: no appliance daemon answers at {} (is it running?)\n\
             start it with `systemctl start appliance` or `appliance run --config FILE`\n",
            socket.display()
        )
    );
    // A socket left by a daemon that was killed: nobody listens.
    drop(std::os::unix::net::UnixListener::bind(&socket).expect("bind"));
    let out = output(&mut appliance(&[
        "status",
        "--socket",
        socket.to_str().unwrap(),
    ]));
    assert!(
        text(&out.stderr).contains("is it running?"),
        "{}",
        text(&out.stderr)
    );
    let out = output(&mut appliance(&[
        "reload",
        "--socket",
        socket.to_str().unwrap(),
    ]));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("is it running?"),
        "{}",
        text(&out.stderr)
    );
}

/// Every error of these commands names its cause once: no OS error text
/// or path said twice.
#[test]
fn errors_name_their_cause_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("missing.toml");
    let missing = missing.to_str().unwrap();
    let log_in_missing_dir = dir.path().join("no/such/dir/appliance.log");
    let cases: Vec<Vec<&str>> = vec![
        vec!["status", "--socket", "/nonexistent/appliance.sock"],
        vec!["run", "--config", missing],
        vec!["check-config", missing],
        vec!["decode", missing],
        vec![
            "run",
            "--config",
            missing,
            "--log-file",
            log_in_missing_dir.to_str().unwrap(),
        ],
    ];
    for args in cases {
        let out = output(&mut appliance(&args));
        assert!(!out.status.success(), "{args:?} succeeded");
        let stderr = text(&out.stderr);
        assert!(!stderr.trim().is_empty(), "{args:?}: no message");
        for cause in ["No such file or directory (os error 2)", "missing.toml:"] {
            assert!(
                stderr.matches(cause).count() <= 1,
                "{args:?} says {cause:?} more than once:\n{stderr}"
            );
        }
    }
}

#[test]
fn no_colour_when_stderr_is_not_a_terminal() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("missing.toml");
    let out = output(&mut appliance(&[
        "run",
        "--config",
        missing.to_str().unwrap(),
    ]));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("ERROR"), "{stderr}");
    assert!(stderr.contains("cannot read the file"), "{stderr}");
    assert!(!stderr.contains('\x1b'), "colour in a pipe: {stderr:?}");
}

/// Under journald (stderr is the stream `JOURNAL_STREAM` names) each line
/// carries its syslog priority and no time stamp of its own; the same
/// variable naming another file changes nothing.
#[test]
fn under_journald_lines_carry_priorities_and_no_time_stamp() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("missing.toml");
    let stream = dir.path().join("stream");
    let file = std::fs::File::create(&stream).expect("create the stream file");
    let meta = file.metadata().expect("stat");
    let journal_stream = format!("{}:{}", meta.dev(), meta.ino());
    let status = appliance(&["run", "--config", missing.to_str().unwrap()])
        .env("JOURNAL_STREAM", &journal_stream)
        .env("RUST_LOG", "debug")
        .stderr(file)
        .status()
        .expect("run appliance");
    assert_eq!(status.code(), Some(1));
    let said = std::fs::read_to_string(&stream).expect("read the stream");
    let lines: Vec<&str> = said.lines().collect();
    assert!(!lines.is_empty(), "nothing logged");
    for line in &lines {
        let priority = line
            .strip_prefix('<')
            .and_then(|l| l.split_once('>'))
            .map(|(p, _)| p);
        assert!(
            matches!(priority, Some("3" | "4" | "6" | "7")),
            "no priority prefix: {line:?}\n{said}"
        );
        assert!(!line.contains("Z "), "a time stamp: {line:?}");
        assert!(!line.contains('\x1b'), "colour: {line:?}");
    }
    let error = lines
        .iter()
        .find(|l| l.contains("cannot read"))
        .expect("the error is logged");
    assert!(error.starts_with("<3>"), "{error}");

    // Another file's JOURNAL_STREAM: stderr is not the journal.
    let other = dir.path().join("other");
    let out = output(
        appliance(&["run", "--config", missing.to_str().unwrap()])
            .env("JOURNAL_STREAM", &journal_stream)
            .stderr(std::fs::File::create(&other).expect("create")),
    );
    assert_eq!(out.status.code(), Some(1));
    let said = std::fs::read_to_string(&other).expect("read");
    assert!(said.contains(" ERROR "), "{said}");
    assert!(!said.starts_with('<'), "{said}");
}

#[test]
fn json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("missing.toml");
    let log = dir.path().join("appliance.log");
    let out = output(&mut appliance(&[
        "run",
        "--config",
        missing.to_str().unwrap(),
        "--log-format",
        "json",
        "--log-file",
        log.to_str().unwrap(),
    ]));
    assert_eq!(out.status.code(), Some(1));
    let file = std::fs::read_to_string(&log).expect("read the log file");
    for said in [text(&out.stderr), file] {
        let events: Vec<serde_json::Value> = said
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
            .collect();
        let error = events
            .iter()
            .find(|e| e["level"] == "ERROR")
            .unwrap_or_else(|| panic!("no ERROR event in {said}"));
        assert!(error["timestamp"].is_string(), "{error}");
        assert!(
            error["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("cannot read")),
            "{error}"
        );
    }
}
