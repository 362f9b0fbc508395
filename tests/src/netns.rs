//! Network-namespace topologies for tests: hosts joined by a bridge, with no
//! route out, torn down when the test ends (pass, fail or panic).
//!
//! A [`Lan`] is one "switch" namespace holding a bridge, and one namespace
//! per [`Host`], each with an `eth0` whose peer is a bridge port. Cutting a
//! host's link sets the switch-side port down, so the host sees carrier loss
//! on `eth0` as it would with a pulled cable. Processes started in a host
//! ([`Host::spawn`]) are killed when their guard drops, and every namespace
//! is deleted (after killing what still runs in it) when the `Lan` drops.
//!
//! Names carry the test process's pid (`apl<pid>-…`); a `Lan` first deletes
//! namespaces left by test processes that no longer exist (a test killed by
//! a timeout runs no destructors).

use std::ffi::OsStr;
use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Namespace names: `apl<pid>-<lan>-<host>`, at most 15 bytes for links.
const PREFIX: &str = "apl";

static NEXT_LAN: AtomicU32 = AtomicU32::new(0);

/// A failed harness step, with the command and what it printed.
#[derive(Debug)]
pub struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

/// Runs a command to completion; a non-zero exit is an error showing stderr.
fn run(cmd: &mut Command) -> Result<Output> {
    let shown = format!("{cmd:?}");
    let out = cmd.stdin(Stdio::null()).output().map_err(|e| {
        Error(format!(
            "{shown}: {e} (is the Debian package iproute2 installed?)"
        ))
    })?;
    if !out.status.success() {
        return Err(Error(format!(
            "{shown}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(out)
}

fn ip(args: &[&str]) -> Result<Output> {
    run(Command::new("ip").args(args))
}

/// Deletes namespaces whose owning test process is gone.
fn sweep_stale() {
    let Ok(out) = ip(&["netns", "list"]) else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            delete_netns(name);
        }
    }
}

/// Kills every process in a namespace, then deletes it. Best effort: used on
/// teardown, where an error has nowhere better to go than stderr.
fn delete_netns(name: &str) {
    if let Ok(out) = ip(&["netns", "pids", name]) {
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            let _ = Command::new("kill").args(["-9", pid]).status();
        }
    }
    if let Err(e) = ip(&["netns", "del", name]) {
        eprintln!("netns teardown: {e}");
    }
}

/// A bridge in its own namespace, and the hosts plugged into it.
pub struct Lan {
    name: String,
    switch: String,
    hosts: Vec<Host>,
    /// Bridges that [`Lan::partition`] made, beyond `br0`.
    extra_bridges: Vec<String>,
}

impl Lan {
    /// A new, empty LAN with a unique name.
    pub fn new() -> Result<Self> {
        sweep_stale();
        let name = format!(
            "{PREFIX}{}-{}",
            std::process::id(),
            NEXT_LAN.fetch_add(1, Ordering::Relaxed)
        );
        let switch = format!("{name}-sw");
        ip(&["netns", "add", &switch])?;
        let lan = Self {
            name,
            switch,
            hosts: Vec::new(),
            extra_bridges: Vec::new(),
        };
        lan.add_bridge("br0")?;
        Ok(lan)
    }

    fn in_switch(&self, args: &[&str]) -> Result<Output> {
        let mut all = vec!["-n", self.switch.as_str()];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// Adds a host named `name` with `eth0` carrying `addrs` (CIDR strings
    /// such as "10.0.0.1/24" or "fd00::1/64"). The host has loopback and
    /// the LAN, and no default route.
    pub fn add_host(&mut self, name: &str, addrs: &[&str]) -> Result<&Host> {
        let index = self.hosts.len();
        let netns = format!("{}-{name}", self.name);
        ip(&["netns", "add", &netns])?;
        let host = Host {
            name: name.to_string(),
            netns,
            port: format!("p{index}"),
            switch: self.switch.clone(),
        };
        // Push first: from here on, Drop deletes the namespace.
        self.hosts.push(host);
        let host = &self.hosts[index];
        host.ip(&["link", "set", "lo", "up"])?;
        host.ip(&[
            "link",
            "add",
            "eth0",
            "type",
            "veth",
            "peer",
            "name",
            &host.port,
            "netns",
            &self.switch,
        ])?;
        self.in_switch(&["link", "set", &host.port, "master", "br0"])?;
        self.in_switch(&["link", "set", &host.port, "up"])?;
        // Duplicate address detection would hold IPv6 addresses back ~1 s.
        host.sysctl("net.ipv6.conf.eth0.accept_dad", "0")?;
        for addr in addrs {
            host.ip(&["addr", "add", addr, "dev", "eth0"])?;
        }
        host.ip(&["link", "set", "eth0", "up"])?;
        Ok(host)
    }

    /// Adds a tap device `name` on the bridge: a VM's NIC, for a qemu that
    /// runs in [`Lan::switch_netns`] (it opens the tap by name there).
    pub fn add_tap(&self, name: &str) -> Result<()> {
        self.in_switch(&["tuntap", "add", "dev", name, "mode", "tap"])?;
        self.in_switch(&["link", "set", name, "master", "br0"])?;
        self.in_switch(&["link", "set", name, "up"])?;
        Ok(())
    }

    /// The namespace holding the bridge (and the taps of [`Lan::add_tap`]).
    pub fn switch_netns(&self) -> &str {
        &self.switch
    }

    /// The host called `name`.
    pub fn host(&self, name: &str) -> &Host {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .unwrap_or_else(|| panic!("no host {name} on this LAN"))
    }

    fn add_bridge(&self, bridge: &str) -> Result<()> {
        self.in_switch(&["link", "add", bridge, "type", "bridge"])?;
        // No STP and no forwarding delay: ports forward as soon as they are up.
        self.in_switch(&[
            "link",
            "set",
            bridge,
            "type",
            "bridge",
            "forward_delay",
            "0",
        ])?;
        self.in_switch(&["link", "set", bridge, "up"])?;
        Ok(())
    }

    /// Splits the LAN: each group of hosts gets a bridge of its own, so
    /// hosts talk within their group only. Links stay up (no carrier loss);
    /// hosts not named stay with the first group.
    pub fn partition(&mut self, groups: &[&[&str]]) -> Result<()> {
        self.heal()?;
        for (index, group) in groups.iter().enumerate().skip(1) {
            let bridge = format!("br{index}");
            self.add_bridge(&bridge)?;
            self.extra_bridges.push(bridge.clone());
            for name in *group {
                let port = self.host(name).port.clone();
                self.in_switch(&["link", "set", &port, "master", &bridge])?;
            }
        }
        Ok(())
    }

    /// Undoes [`Lan::partition`]: every host back on one bridge.
    pub fn heal(&mut self) -> Result<()> {
        for host in &self.hosts {
            self.in_switch(&["link", "set", &host.port, "master", "br0"])?;
        }
        for bridge in std::mem::take(&mut self.extra_bridges) {
            self.in_switch(&["link", "del", &bridge])?;
        }
        Ok(())
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for host in &self.hosts {
            delete_netns(&host.netns);
        }
        delete_netns(&self.switch);
    }
}

/// One host of a [`Lan`]: a network namespace with `eth0` on the bridge.
pub struct Host {
    name: String,
    netns: String,
    /// The bridge port, in the switch namespace, that `eth0` plugs into.
    port: String,
    switch: String,
}

impl Host {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace's name, for `ip netns exec` and `ip -n`.
    pub fn netns(&self) -> &str {
        &self.netns
    }

    /// Runs `ip -n <netns> ARGS`.
    pub fn ip(&self, args: &[&str]) -> Result<Output> {
        let mut all = vec!["-n", self.netns.as_str()];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// Sets a sysctl inside the namespace.
    pub fn sysctl(&self, key: &str, value: &str) -> Result<()> {
        run(self
            .command("sysctl")
            .args(["-qw", &format!("{key}={value}")]))
        .map(drop)
    }

    /// A command that runs inside the namespace.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.netns]).arg(program);
        cmd
    }

    /// A command that runs inside the namespace as `user` with primary
    /// group `group` and no other, through setpriv (Debian package
    /// util-linux); with `caps` (setpriv's syntax, "-all,+net_raw") it holds
    /// those capabilities only, ambient so they survive the change of user.
    pub fn command_as(
        &self,
        user: &str,
        group: &str,
        caps: Option<&str>,
        program: impl AsRef<OsStr>,
    ) -> Command {
        let mut cmd = self.command("setpriv");
        cmd.args([
            format!("--reuid={user}"),
            format!("--regid={group}"),
            "--clear-groups".into(),
        ]);
        if let Some(caps) = caps {
            cmd.args([
                format!("--inh-caps={caps}"),
                format!("--ambient-caps={caps}"),
                format!("--bounding-set={caps}"),
            ]);
        }
        cmd.arg(program);
        cmd
    }

    /// Runs a command inside the namespace to completion; non-zero exit is
    /// an error.
    pub fn run(&self, program: impl AsRef<OsStr>, args: &[&str]) -> Result<Output> {
        run(self.command(program).args(args))
    }

    /// Starts a long-running process in the namespace; it is killed when the
    /// returned guard drops.
    pub fn spawn(&self, cmd: &mut Command) -> Result<Process> {
        let shown = format!("{cmd:?}");
        let child = cmd
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| Error(format!("{shown}: {e}")))?;
        Ok(Process { child, shown })
    }

    /// Runs `f` on a thread that has entered this namespace, so test code
    /// can open sockets there directly, and returns its result.
    pub fn enter<F, R>(&self, f: F) -> Result<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.enter_background(f)?
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }

    /// Like [`Host::enter`], without waiting: the thread runs `f` in this
    /// namespace while the caller goes on.
    pub fn enter_background<F, R>(&self, f: F) -> Result<std::thread::JoinHandle<Result<R>>>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let path = format!("/run/netns/{}", self.netns);
        let file = std::fs::File::open(&path).map_err(|e| Error(format!("{path}: {e}")))?;
        Ok(std::thread::spawn(move || {
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| Error(format!("setns {path}: {e}")))?;
            Ok(f())
        }))
    }

    /// Pulls this host's cable: its `eth0` loses carrier.
    pub fn cut_link(&self) -> Result<()> {
        ip(&["-n", &self.switch, "link", "set", &self.port, "down"]).map(drop)
    }

    /// Plugs the cable back in.
    pub fn restore_link(&self) -> Result<()> {
        ip(&["-n", &self.switch, "link", "set", &self.port, "up"]).map(drop)
    }

    /// The addresses (global scope) on `eth0` and on the macvlans made on
    /// it (where `use_vmac` puts the VIPs).
    pub fn addresses(&self) -> Result<Vec<IpAddr>> {
        let macvlans = self.ip(&["-o", "link", "show", "type", "macvlan"])?;
        let mut devices = vec!["eth0".to_string()];
        for line in String::from_utf8_lossy(&macvlans.stdout).lines() {
            // `7: vrrp.51@eth0: <BROADCAST,...`
            if let Some(name) = line
                .split_whitespace()
                .nth(1)
                .and_then(|n| n.strip_suffix("@eth0:"))
            {
                devices.push(name.to_string());
            }
        }
        let mut addresses = Vec::new();
        for device in &devices {
            let out = self.ip(&["-o", "addr", "show", "dev", device, "scope", "global"])?;
            addresses.extend(
                String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .filter_map(|line| {
                        let mut words = line.split_whitespace();
                        words.find(|w| *w == "inet" || *w == "inet6")?;
                        words.next()?.split('/').next()?.parse::<IpAddr>().ok()
                    }),
            );
        }
        Ok(addresses)
    }

    /// Whether `eth0` (or a macvlan on it) holds `addr`.
    pub fn has_address(&self, addr: IpAddr) -> Result<bool> {
        Ok(self.addresses()?.contains(&addr))
    }

    /// Polls `has_address` until it equals `present` or `within` passes;
    /// returns how long it took.
    pub fn wait_address(&self, addr: IpAddr, present: bool, within: Duration) -> Result<Duration> {
        let start = Instant::now();
        loop {
            if self.has_address(addr)? == present {
                return Ok(start.elapsed());
            }
            if start.elapsed() > within {
                return Err(Error(format!(
                    "{}: {addr} still {} after {within:?}",
                    self.name,
                    if present { "absent" } else { "present" }
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// A process started by [`Host::spawn`], killed (SIGKILL) on drop unless it
/// was waited for.
pub struct Process {
    child: Child,
    shown: String,
}

impl Process {
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The process's stdout, if it was piped and not yet taken.
    pub fn take_stdout(&mut self) -> Option<std::process::ChildStdout> {
        self.child.stdout.take()
    }

    /// The process's stderr, if it was piped and not yet taken.
    pub fn take_stderr(&mut self) -> Option<std::process::ChildStderr> {
        self.child.stderr.take()
    }

    /// Sends a signal (e.g. "TERM", "KILL", "HUP").
    pub fn signal(&self, signal: &str) -> Result<()> {
        run(Command::new("kill").args([&format!("-{signal}"), &self.child.id().to_string()]))
            .map(drop)
    }

    /// The exit status if the process has exited, without waiting.
    pub fn try_wait(&mut self) -> Result<Option<std::process::ExitStatus>> {
        self.child
            .try_wait()
            .map_err(|e| Error(format!("{}: {e}", self.shown)))
    }

    /// Waits for the process to exit, at most `within`.
    pub fn wait(&mut self, within: Duration) -> Result<std::process::ExitStatus> {
        let start = Instant::now();
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Ok(status),
                Ok(None) if start.elapsed() > within => {
                    return Err(Error(format!(
                        "{}: still running after {within:?}",
                        self.shown
                    )));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                Err(e) => return Err(Error(format!("{}: {e}", self.shown))),
            }
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
