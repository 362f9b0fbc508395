//! The `appliance` command line.

use anyhow::Context;
use appliance::cli::{Cli, Command, DataplaneCommand, IpvsCommand, SyncCommand};
use clap::Parser;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    // The kernel runs the initramfs's /init, a link to this binary, as
    // PID 1; init mode never returns.
    let argv0 = std::env::args_os().next().map(PathBuf::from);
    if argv0.as_deref().and_then(|p| p.file_name()) == Some(std::ffi::OsStr::new("init")) {
        appliance::init::run();
    }
    let cli = Cli::parse();
    let (log_file, max_file_size) = match &cli.command {
        Command::Run {
            log_file,
            max_file_size,
            ..
        } => (log_file.clone(), *max_file_size),
        _ => (None, None),
    };
    if let Err(e) = init_logging(log_file.as_deref(), max_file_size) {
        eprintln!("error: {e:#}");
        return ExitCode::FAILURE;
    }
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            // With a log file the reason must reach it too (an appliance's
            // console may be gone); the log's stderr copy says it once.
            if log_file.is_some() {
                tracing::error!("{e:#}");
            } else {
                eprintln!("error: {e:#}");
            }
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr, and also to `file` (appended, without colours, rotated
/// at `max_size`) if given; `RUST_LOG` filters, `info` by default.
fn init_logging(file: Option<&std::path::Path>, max_size: Option<u64>) -> anyhow::Result<()> {
    use tracing_subscriber::prelude::*;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let to_file = match file {
        Some(path) => {
            let file = appliance::rotating::RotatingFile::open(path, max_size)
                .with_context(|| format!("opening the log file {}", path.display()))?;
            Some(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(std::sync::Mutex::new(file)),
            )
        }
        None => None,
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .with(to_file)
        .init();
    Ok(())
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run {
            config,
            timeline,
            state_dir,
            socket,
            log_file: _,
            max_file_size,
        } => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            runtime.block_on(appliance::daemon::run(appliance::daemon::Options {
                config,
                timeline,
                max_file_size,
                socket: socket.unwrap_or_else(|| state_dir.join("appliance.sock")),
                state_dir,
            }))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { socket, json } => {
            let status = appliance::daemon::status::query(&socket)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print!("{status}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckConfig { file } => match appliance::daemon::check_config(&file) {
            Ok(_) => {
                println!("{}: ok", file.display());
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                for line in e.lines() {
                    eprintln!("{line}");
                }
                Ok(ExitCode::FAILURE)
            }
        },
        Command::Convert { file } => match appliance::config::load_file(&file) {
            Ok(config) => {
                print!("{}", config.to_toml()?);
                Ok(ExitCode::SUCCESS)
            }
            Err(diagnostics) => {
                eprint!("{diagnostics}");
                Ok(ExitCode::FAILURE)
            }
        },
        Command::Decode { file } => {
            let reader = std::fs::File::open(&file)
                .with_context(|| format!("opening {}", file.display()))?;
            let packets = appliance::vrrp::capture::decode_pcap(reader)
                .with_context(|| format!("reading {}", file.display()))?;
            let mut out = std::io::stdout().lock();
            let written = packets.iter().try_for_each(|packet| {
                serde_json::to_writer(&mut out, packet)?;
                writeln!(out)
            });
            match written.and_then(|()| out.flush()) {
                // A reader that stops early (`| head`) is not an error.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
                other => other.map(|()| ExitCode::SUCCESS).map_err(Into::into),
            }
        }
        Command::Ipvs { command } => ipvs(command),
        Command::Completions { shell } => {
            let script = appliance::cli::docs::completions(shell);
            std::io::stdout().lock().write_all(&script)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Man { out } => {
            let date = appliance::cli::docs::source_date()?;
            for path in appliance::cli::docs::write_man_pages(&out, &date)? {
                println!("{}", path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Dataplane {
            command: DataplaneCommand::Apply { config, state },
        } => {
            let config = match appliance::config::load_file(&config) {
                Ok(config) => config,
                Err(diagnostics) => {
                    eprint!("{diagnostics}");
                    return Ok(ExitCode::FAILURE);
                }
            };
            let desired = appliance::dataplane::from_config(&config.virtual_server)?;
            let backend = appliance::dataplane::open_backend(config.global.dataplane)?;
            let mut reconciler = appliance::dataplane::Reconciler::new(backend, Some(state))?;
            println!("{}", reconciler.reconcile(&desired)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn ipvs(command: IpvsCommand) -> anyhow::Result<ExitCode> {
    use appliance::dataplane::ipvs::{Ipvs, SyncDaemon, Timeouts};
    let mut ipvs = Ipvs::open()?;
    match command {
        IpvsCommand::List { json } => {
            let listing = ipvs.listing()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&listing)?);
            } else {
                print!("{listing}");
            }
        }
        IpvsCommand::Timeout { tcp, tcpfin, udp } => {
            let wanted = Timeouts {
                tcp,
                tcp_fin: tcpfin,
                udp,
            };
            if wanted != Timeouts::default() {
                ipvs.set_timeouts(wanted)?;
            }
            let t = ipvs.timeouts()?;
            let show = |v: Option<u32>| v.map_or("-".to_string(), |v| v.to_string());
            println!(
                "Timeout (tcp tcpfin udp): {} {} {}",
                show(t.tcp),
                show(t.tcp_fin),
                show(t.udp)
            );
        }
        IpvsCommand::SyncDaemon { command } => match command {
            SyncCommand::List => {
                for d in ipvs.sync_daemons()? {
                    println!("{d}");
                }
            }
            SyncCommand::Start {
                role,
                interface,
                syncid,
            } => ipvs.start_sync_daemon(&SyncDaemon {
                role: role.into(),
                interface,
                sync_id: syncid,
                max_len: None,
                group: None,
                port: None,
                ttl: None,
            })?,
            SyncCommand::Stop { role } => ipvs.stop_sync_daemon(role.into())?,
        },
    }
    Ok(ExitCode::SUCCESS)
}
