//! FRR (Debian's package frr) as the upstream router of a network
//! namespace: bgpd peers with the directors and chooses the routes, zebra
//! puts them (ECMP included) in the namespace's kernel, vtysh asks either.
//! Each daemon's config, pid file and sockets live in a temporary
//! directory of its own, so several routers can run at once.

use crate::error::{Error, Result, io};
use crate::netns::{Host, Process};
use std::path::Path;
use std::time::{Duration, Instant};

const ZEBRA: &str = "/usr/lib/frr/zebra";
const BGPD: &str = "/usr/lib/frr/bgpd";
const VTYSH: &str = "/usr/bin/vtysh";
const START: Duration = Duration::from_secs(10);

/// A running zebra and bgpd, killed when dropped.
pub struct Router {
    dir: tempfile::TempDir,
    host: String,
    _zebra: Process,
    _bgpd: Process,
}

impl Router {
    /// Starts zebra and bgpd in `host` with `bgpd_conf` (FRR's own
    /// syntax); returns once bgpd answers vtysh.
    pub fn start(host: &Host, bgpd_conf: &str) -> Result<Self> {
        for program in [ZEBRA, BGPD, VTYSH] {
            if !Path::new(program).exists() {
                return Err(Error::Check(format!(
                    "{program} is missing: install the Debian package frr"
                )));
            }
        }
        let dir = tempfile::Builder::new()
            .prefix(&format!("frr-{}-", host.name()))
            .tempdir()
            .map_err(io("creating FRR's directory"))?;
        let d = dir.path();
        std::fs::write(d.join("zebra.conf"), "log stdout\n").map_err(io("writing zebra.conf"))?;
        std::fs::write(d.join("bgpd.conf"), bgpd_conf).map_err(io("writing bgpd.conf"))?;
        // The daemons drop to the frr user, which must write here.
        let chown = std::process::Command::new("chown")
            .args(["-R", "frr:frr"])
            .arg(d)
            .status()
            .map_err(io("chown"))?;
        if !chown.success() {
            return Err(Error::Check(format!(
                "chown frr:frr {}: {chown} (the Debian package frr makes the user)",
                d.display()
            )));
        }
        let daemon = |program: &str, name: &str| -> Result<Process> {
            let path = |file: &str| d.join(file).to_string_lossy().into_owned();
            let mut command = host.command(program);
            command.args([
                "-f",
                &path(&format!("{name}.conf")),
                "-i",
                &path(&format!("{name}.pid")),
                "-z",
                &path("zserv.api"),
                "--vty_socket",
                &path(""),
                "-P",
                "0",
            ]);
            Ok(host.spawn(&mut command)?)
        };
        let zebra = daemon(ZEBRA, "zebra")?;
        wait_for(&d.join("zserv.api"))?;
        let bgpd = daemon(BGPD, "bgpd")?;
        wait_for(&d.join("bgpd.vty"))?;
        Ok(Self {
            dir,
            host: host.name().to_string(),
            _zebra: zebra,
            _bgpd: bgpd,
        })
    }

    /// What vtysh answers to `command` (`show bgp summary json`).
    pub fn vtysh(&self, host: &Host, command: &str) -> Result<String> {
        if host.name() != self.host {
            return Err(Error::Check(format!(
                "the router runs in {}, not {}",
                self.host,
                host.name()
            )));
        }
        let out = host.run(
            VTYSH,
            &[
                "--vty_socket",
                &self.dir.path().to_string_lossy(),
                "-c",
                command,
            ],
        )?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

fn wait_for(path: &Path) -> Result<()> {
    let start = Instant::now();
    while !path.exists() {
        if start.elapsed() > START {
            return Err(Error::Check(format!(
                "FRR did not make {} within {START:?}",
                path.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}
