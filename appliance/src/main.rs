//! The `appliance` command line.

use anyhow::Context;
use appliance::cli::{Cli, Command, DataplaneCommand, IpvsCommand, RealServerArgs, SyncCommand};
use appliance::daemon::status::Change;
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
    let (daemon, log_file, max_file_size, log_format) = match &cli.command {
        Command::Run {
            log_file,
            max_file_size,
            log_format,
            ..
        } => (true, log_file.clone(), *max_file_size, *log_format),
        _ => (false, None, None, appliance::logging::LogFormat::Text),
    };
    if let Err(e) = appliance::logging::init(log_format, log_file.as_deref(), max_file_size) {
        appliance::logging::eprint_error(&appliance::logging::chain(&e));
        return ExitCode::FAILURE;
    }
    if daemon {
        appliance::logging::log_panics();
    }
    // Armed only by tests, through FAILPOINTS, in builds with the feature.
    #[cfg(not(feature = "failpoints"))]
    if std::env::var_os("FAILPOINTS").is_some() {
        tracing::warn!("FAILPOINTS is set but this build has no fail points (feature failpoints)");
    }
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            let message = appliance::logging::chain(e.as_ref());
            // The daemon's reason to stop is a log event like the others
            // (its log file, the journal's priority, JSON for collectors);
            // a command's is a line for the person who typed it.
            if daemon {
                tracing::error!("{message}");
            } else {
                appliance::logging::eprint_error(&message);
            }
            ExitCode::FAILURE
        }
    }
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
            log_format: _,
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
            use appliance::daemon::status::{Error, query};
            let status = match query(&socket) {
                Err(e @ Error::NotRunning { .. }) => {
                    anyhow::bail!(
                        "{e}\nstart it with `systemctl start appliance` or `appliance run --config FILE`"
                    )
                }
                other => other?,
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print!("{status}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Reload { socket, timeout } => {
            let summary = appliance::daemon::status::reload(&socket, timeout)?;
            println!("reloaded: {summary}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Switchover {
            instance,
            to,
            socket,
        } => {
            let summary = appliance::daemon::status::switchover(
                &socket,
                instance,
                to,
                std::time::Duration::from_secs(60),
            )?;
            println!("{summary}");
            Ok(ExitCode::SUCCESS)
        }
        Command::DrainDirector { timeout, socket } => {
            let summary = appliance::daemon::status::drain_director(&socket, timeout)?;
            println!("{summary}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Enable { target } => operator(target, Change::Enable, None),
        Command::Disable { target } => operator(target, Change::Disable, None),
        Command::Drain { target, timeout } => {
            let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
            operator(target, Change::Drain { timeout_ms }, Some(timeout))
        }
        Command::Weight { target, weight } => {
            operator(target, Change::Weight { weight: weight.0 }, None)
        }
        Command::CheckConfig { file } => match appliance::daemon::check_config(&file) {
            Ok((_, warnings)) => {
                for w in warnings {
                    eprintln!("{}: warning: {}", w.pos, w.message);
                }
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
                print!("{}", config.to_toml_minimal()?);
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
            let desired = appliance::dataplane::from_config(
                &config.virtual_server,
                &config.virtual_server_group,
            )?;
            let backend = appliance::dataplane::open_backend(config.global.dataplane)?;
            let mut reconciler = appliance::dataplane::Reconciler::new(backend, Some(state))?;
            println!("{}", reconciler.reconcile(&desired)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `appliance enable|disable|drain|weight`: asks the daemon, prints what
/// it did. A drain's answer comes when it ends, so the wait is its timeout
/// and a little.
fn operator(
    target: RealServerArgs,
    change: Change,
    drain: Option<std::time::Duration>,
) -> anyhow::Result<ExitCode> {
    let wait = drain.unwrap_or_default() + std::time::Duration::from_secs(90);
    let summary = appliance::daemon::status::admin(
        &target.socket,
        target.real_server,
        target.service,
        change,
        wait,
    )?;
    println!("{summary}");
    Ok(ExitCode::SUCCESS)
}

fn ipvs(command: IpvsCommand) -> anyhow::Result<ExitCode> {
    use appliance::dataplane::ipvs::{Ipvs, SyncDaemon, Timeouts};
    let mut ipvs = Ipvs::open()?;
    match command {
        IpvsCommand::List {
            json,
            stats,
            rate,
            exact,
        } => {
            use appliance::dataplane::ipvs::listing::Layout;
            let listing = ipvs.listing()?;
            let layout = match (stats, rate) {
                (true, _) => Layout::Stats,
                (_, true) => Layout::Rate,
                _ => Layout::Table,
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&listing)?);
            } else {
                print!("{}", listing.render(layout, exact));
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
