//! The `appliance` command line.

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "appliance", version, about = "Highly available LVS director")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the director: hold the VIPs of the configured VRRP instances.
    Run {
        /// Config file (appliance TOML or keepalived.conf, detected).
        #[arg(long, short)]
        config: PathBuf,
        /// Append the failover timeline to this file as JSON lines.
        #[arg(long)]
        timeline: Option<PathBuf>,
    },
    /// Check a config file (appliance TOML or keepalived.conf, detected).
    /// Prints `FILE:LINE:COL: message` for each problem.
    CheckConfig { file: PathBuf },
    /// Print a config file (TOML or keepalived.conf) as the appliance's TOML.
    Convert { file: PathBuf },
    /// Print each VRRP packet in a pcap file as one JSON object per line.
    Decode { file: PathBuf },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run { config, timeline } => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            runtime.block_on(appliance::daemon::run(appliance::daemon::Options {
                config,
                timeline,
            }))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckConfig { file } => match appliance::config::load_file(&file) {
            Ok(_) => {
                println!("{}: ok", file.display());
                Ok(ExitCode::SUCCESS)
            }
            Err(diagnostics) => {
                eprint!("{diagnostics}");
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
    }
}
