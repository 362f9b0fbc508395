//! Container labs for tests: the project's images (built or reused by
//! `images/build`, the script `make images` runs) started on the Docker
//! engine through its API (bollard), never the `docker` command.
//!
//! A [`Lab`] is one `internal` network (no route out) with a /24 subnet of
//! its own, and the containers and volumes started on it: directors
//! (the appliance image, NET_ADMIN and NET_RAW only, config uploaded, the
//! failover timeline in a volume), nginx real servers, a client and
//! Prometheus, each at a fixed address so that VRRP unicast peers can be
//! written into configs before anything starts. Everything a lab made is
//! removed when it drops (pass, fail or panic). Names and labels carry the
//! test process's pid; a new lab first removes what labs of dead test
//! processes left behind (a test killed by a timeout runs no destructors).
//!
//! [`Lab::merged_timeline`] merges the directors' timelines with the test's
//! own marks by wall clock (the containers share the host's clock), for
//! snapshots whose order is exact and whose times are checked separately.

use appliance::timeline::{Event, EventKind};
use appliance::vrrp::machine::State;
use bollard::Docker;
use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::models::{
    ContainerCreateBody, EndpointIpamConfig, EndpointSettings, HostConfig, Ipam, IpamConfig, Mount,
    MountType, NetworkCreateRequest, NetworkDisconnectRequest, NetworkingConfig,
    VolumeCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, DownloadFromContainerOptionsBuilder,
    ListContainersOptionsBuilder, ListNetworksOptionsBuilder, ListVolumesOptionsBuilder,
    LogsOptionsBuilder, RemoveContainerOptionsBuilder, RemoveVolumeOptionsBuilder,
    StopContainerOptionsBuilder, UploadToContainerOptionsBuilder, WaitContainerOptionsBuilder,
};
use futures::{StreamExt, TryStreamExt};
use serde::Deserialize;
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::io::Read;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// Label on everything a lab makes; its value is the test process's pid.
const LABEL: &str = "appliance-tests.pid";
/// Where the appliance image keeps its timeline (a volume in a lab).
const TIMELINE_DIR: &str = "/var/lib/appliance";
const TIMELINE_FILE: &str = "/var/lib/appliance/timeline.jsonl";
/// Directors read the demo's TOML configs.
const CONFIG_FILE: &str = "etc/appliance/appliance.toml";
/// Labs take /24 subnets of 10.90.0.0/16 (the demo uses 10.89.0.0/24).
const SUBNET_BASE: [u8; 2] = [10, 90];

static NEXT_LAB: AtomicU32 = AtomicU32::new(0);

/// A failed harness step, saying what failed.
#[derive(Debug)]
pub struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

/// Maps an engine error to a harness error naming the step.
fn step(what: impl fmt::Display) -> impl FnOnce(bollard::errors::Error) -> Error {
    move |e| Error(format!("{what}: {e}"))
}

/// The project's image names, tagged with the workspace version.
#[derive(Clone, Debug)]
pub struct Images {
    pub appliance: String,
    pub nginx: String,
    pub client: String,
    /// A Debian host with systemd as PID 1.
    pub systemd: String,
    /// Prometheus, as the demo runs it.
    pub prometheus: String,
}

/// The images, built by `images/build` where missing or stale (once per
/// test process; the script is a no-op when all are up to date).
pub fn images() -> Result<&'static Images> {
    static IMAGES: OnceLock<std::result::Result<Images, String>> = OnceLock::new();
    IMAGES
        .get_or_init(|| build_images().map_err(|e| e.0))
        .as_ref()
        .map_err(|e| Error(e.clone()))
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The target directory this test executable was built in
/// (target/<profile>/deps/<test>): images/build builds the static binary
/// there too.
fn target_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe().map_err(|e| Error(format!("test executable: {e}")))?;
    exe.ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .ok_or_else(|| Error(format!("{} is not in target/<profile>/deps", exe.display())))
}

fn build_images() -> Result<Images> {
    let script = repo_root().join("images/build");
    let run = |args: &[&str]| -> Result<String> {
        let output = Command::new(&script)
            .args(args)
            .env("CARGO_TARGET_DIR", target_dir()?)
            .output()
            .map_err(|e| Error(format!("running {}: {e}", script.display())))?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if !output.status.success() {
            return Err(Error(format!(
                "{} {} failed ({}):\n{stdout}{}",
                script.display(),
                args.join(" "),
                output.status,
                String::from_utf8_lossy(&output.stderr)
            )));
        }
        Ok(stdout)
    };
    run(&[])?;
    let tags = run(&["--tags"])?;
    let tag = |name: &str| -> Result<String> {
        tags.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix('='))
            .map(str::to_string)
            .ok_or_else(|| {
                Error(format!(
                    "images/build --tags names no {name} image:\n{tags}"
                ))
            })
    };
    Ok(Images {
        appliance: tag("appliance")?,
        nginx: tag("nginx")?,
        client: tag("client")?,
        systemd: tag("systemd")?,
        prometheus: tag("prometheus")?,
    })
}

/// A container of a lab.
#[derive(Clone, Debug)]
pub struct Container {
    /// Its role in the lab ("master", "rs1"), also its host name.
    pub role: String,
    /// The engine's name for it (unique).
    pub name: String,
    pub address: Ipv4Addr,
}

/// What a command run in a container printed, and its exit code.
#[derive(Debug)]
pub struct ExecOutput {
    pub code: i64,
    pub stdout: String,
    pub stderr: String,
}

/// One line of a director's timeline file.
#[derive(Clone, Debug, Deserialize)]
pub struct TimelineLine {
    /// Wall clock, RFC 3339.
    pub wall: String,
    #[serde(flatten)]
    pub event: Event,
}

impl TimelineLine {
    fn wall(&self) -> Result<SystemTime> {
        humantime::parse_rfc3339(&self.wall)
            .map_err(|e| Error(format!("timeline wall clock {:?}: {e}", self.wall)))
    }
}

/// The last state a director's timeline reports for an instance, if any.
pub fn last_state(lines: &[TimelineLine]) -> Option<State> {
    lines.iter().rev().find_map(|line| match line.event.kind {
        EventKind::State { to, .. } => Some(to),
        _ => None,
    })
}

/// A network with its containers and volumes; all removed on drop.
pub struct Lab {
    runtime: tokio::runtime::Runtime,
    docker: Docker,
    /// Prefix of every name: `at<pid>-<n>-<test>`.
    name: String,
    network: String,
    subnet: [u8; 3],
    containers: RefCell<Vec<Container>>,
    volumes: RefCell<Vec<String>>,
    marks: RefCell<Vec<(SystemTime, String)>>,
}

/// The port the directors balance on the VIP and the real servers serve.
pub const HTTP_PORT: u16 = 80;

/// The demo's host numbers (compose/docker-compose.yml), which a lab keeps
/// in its own subnet: the directors, and the VIP they hold.
pub const MASTER: u8 = 2;
pub const BACKUP: u8 = 3;
pub const VIP: u8 = 100;
/// The demo's subnet, `10.89.0.0/24`, as its addresses start.
const DEMO_PREFIX: &str = "10.89.0.";

impl Lab {
    /// A new lab for the test `test`, on a fresh internal network.
    pub fn new(test: &str) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error(format!("starting a tokio runtime: {e}")))?;
        let docker = runtime
            .block_on(async {
                Docker::connect_with_local_defaults()?
                    .negotiate_version()
                    .await
            })
            .map_err(step(
                "connecting to the Docker engine (is dockerd running?)",
            ))?;
        let pid = std::process::id();
        let n = NEXT_LAB.fetch_add(1, Ordering::Relaxed);
        let test: String = test
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let name = format!("at{pid}-{n}-{test}");
        runtime.block_on(remove_stale(&docker))?;
        let subnet = runtime.block_on(create_network(&docker, &name, pid, n))?;
        Ok(Self {
            runtime,
            docker,
            network: name.clone(),
            name,
            subnet,
            containers: RefCell::new(Vec::new()),
            volumes: RefCell::new(Vec::new()),
            marks: RefCell::new(Vec::new()),
        })
    }

    /// The address of host number `host` in the lab's subnet.
    pub fn address(&self, host: u8) -> Ipv4Addr {
        let [a, b, c] = self.subnet;
        Ipv4Addr::new(a, b, c, host)
    }

    /// The engine's name of the lab's network.
    pub fn network(&self) -> &str {
        &self.network
    }

    /// The demo's config of director `node` (`compose/<node>.toml`: one
    /// instance, unicast to the peer, the VIP's HTTP port balanced round
    /// robin over rs1 and rs2 by LVS-NAT), moved to the lab's subnet.
    pub fn demo_config(&self, node: &str) -> Result<String> {
        self.demo_file(&format!("{node}.toml"))
    }

    /// The demo's Prometheus config (`compose/prometheus.yml`: both
    /// directors' metrics, each labelled with its director), moved to the
    /// lab's subnet.
    pub fn demo_prometheus_config(&self) -> Result<String> {
        self.demo_file("prometheus.yml")
    }

    /// `compose/<file>`, its addresses moved to the lab's subnet.
    fn demo_file(&self, file: &str) -> Result<String> {
        let path = repo_root().join("compose").join(file);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| Error(format!("reading {}: {e}", path.display())))?;
        let [a, b, c] = self.subnet;
        Ok(text.replace(DEMO_PREFIX, &format!("{a}.{b}.{c}.")))
    }

    /// Starts the demo's two directors with their demo configs, the master
    /// first; returns once the master is MASTER and the backup BACKUP
    /// (each within `within`).
    pub fn demo_directors(
        &self,
        images: &Images,
        within: Duration,
    ) -> Result<(Container, Container)> {
        let master = self.director(images, "master", MASTER, &self.demo_config("master")?)?;
        self.wait_state(&master, State::Master, within)?;
        let backup = self.director(images, "backup", BACKUP, &self.demo_config("backup")?)?;
        self.wait_state(&backup, State::Backup, within)?;
        Ok((master, backup))
    }

    /// Starts a director: the appliance image with only NET_ADMIN and
    /// NET_RAW, forwarding on, `config` as its TOML config, its timeline in
    /// a volume.
    pub fn director(
        &self,
        images: &Images,
        role: &str,
        host: u8,
        config: &str,
    ) -> Result<Container> {
        let volume = format!("{}-{role}-timeline", self.name);
        self.runtime
            .block_on(self.docker.create_volume(VolumeCreateRequest {
                name: Some(volume.clone()),
                labels: Some(labels()),
                ..Default::default()
            }))
            .map_err(step(format!("creating volume {volume}")))?;
        self.volumes.borrow_mut().push(volume.clone());
        let host_config = HostConfig {
            cap_drop: Some(vec!["ALL".into()]),
            cap_add: Some(vec!["NET_ADMIN".into(), "NET_RAW".into()]),
            // As the demo's directors (compose/docker-compose.yml):
            // forwarding what they balance, no ICMP redirects.
            sysctls: Some(
                [
                    ("net.ipv4.ip_forward", "1"),
                    ("net.ipv4.conf.all.send_redirects", "0"),
                    ("net.ipv4.conf.default.send_redirects", "0"),
                    ("net.ipv4.conf.eth0.send_redirects", "0"),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ),
            mounts: Some(vec![Mount {
                target: Some(TIMELINE_DIR.into()),
                source: Some(volume),
                typ: Some(MountType::VOLUME),
                ..Default::default()
            }]),
            ..Default::default()
        };
        self.start_container(
            role,
            host,
            ContainerCreateBody {
                image: Some(images.appliance.clone()),
                cmd: Some(
                    [
                        "run",
                        "--config",
                        &format!("/{CONFIG_FILE}"),
                        "--timeline",
                        TIMELINE_FILE,
                    ]
                    .map(str::to_string)
                    .to_vec(),
                ),
                host_config: Some(host_config),
                ..Default::default()
            },
            &[(CONFIG_FILE, config.as_bytes())],
        )
    }

    /// Starts an nginx real server answering "`role` `address`", its
    /// replies routed back through the VIP as in the demo.
    pub fn real_server(&self, images: &Images, role: &str, host: u8) -> Result<Container> {
        self.start_container(
            role,
            host,
            ContainerCreateBody {
                image: Some(images.nginx.clone()),
                env: Some(vec![
                    format!("GATEWAY={}", self.address(VIP)),
                    format!("DIRECT={} {}", self.address(MASTER), self.address(BACKUP)),
                ]),
                host_config: Some(HostConfig {
                    cap_add: Some(vec!["NET_ADMIN".into()]),
                    ..Default::default()
                }),
                ..Default::default()
            },
            &[],
        )
    }

    /// Starts an nginx real server answering "`role` `address`" to anyone
    /// directly (no director in front of it).
    pub fn standalone_real_server(
        &self,
        images: &Images,
        role: &str,
        host: u8,
    ) -> Result<Container> {
        self.start_container(
            role,
            host,
            ContainerCreateBody {
                image: Some(images.nginx.clone()),
                ..Default::default()
            },
            &[],
        )
    }

    /// Starts Prometheus with `config` as its prometheus.yml: as in the
    /// demo, the image's prometheus user with no capability, the TSDB in
    /// the image's volume; the root stays writable, as the engine copies
    /// no file into a read-only one.
    pub fn prometheus(&self, images: &Images, host: u8, config: &str) -> Result<Container> {
        self.start_container(
            "prometheus",
            host,
            ContainerCreateBody {
                image: Some(images.prometheus.clone()),
                host_config: Some(HostConfig {
                    cap_drop: Some(vec!["ALL".into()]),
                    ..Default::default()
                }),
                ..Default::default()
            },
            &[("etc/prometheus/prometheus.yml", config.as_bytes())],
        )
    }

    /// Starts the client (curl), idle until [`Lab::exec`] runs something.
    pub fn client(&self, images: &Images, host: u8) -> Result<Container> {
        self.start_container(
            "client",
            host,
            ContainerCreateBody {
                image: Some(images.client.clone()),
                ..Default::default()
            },
            &[],
        )
    }

    /// Starts a Debian host with systemd as PID 1 (the systemd image) and
    /// waits until systemd has finished booting it. It gets what systemd
    /// needs in a container (CAP_SYS_ADMIN for its mounts and the units'
    /// sandboxes, tmpfs on /run and /tmp, the cgroups read-only) and what
    /// the appliance needs (NET_ADMIN, NET_RAW, forwarding).
    pub fn systemd_host(&self, images: &Images, role: &str, host: u8) -> Result<Container> {
        let tmpfs = ["/run", "/run/lock", "/tmp"]
            .map(|dir| (dir.to_string(), String::new()))
            .into_iter()
            .collect();
        let container = self.start_container(
            role,
            host,
            ContainerCreateBody {
                image: Some(images.systemd.clone()),
                host_config: Some(HostConfig {
                    cap_add: Some(vec![
                        "SYS_ADMIN".into(),
                        "NET_ADMIN".into(),
                        "NET_RAW".into(),
                    ]),
                    tmpfs: Some(tmpfs),
                    binds: Some(vec!["/sys/fs/cgroup:/sys/fs/cgroup:ro".into()]),
                    sysctls: Some(HashMap::from([(
                        "net.ipv4.ip_forward".to_string(),
                        "1".to_string(),
                    )])),
                    ..Default::default()
                }),
                ..Default::default()
            },
            &[],
        )?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let out = self.exec(&container, &["systemctl", "is-system-running", "--wait"])?;
            match out.stdout.trim() {
                "running" | "degraded" => return Ok(container),
                state if Instant::now() >= deadline => {
                    return Err(Error(format!(
                        "systemd in {} did not finish booting within 60 s (state {state:?}):
{}",
                        container.name,
                        self.exec(&container, &["systemctl", "--failed", "--no-pager"])?
                            .stdout
                    )));
                }
                _ => std::thread::sleep(Duration::from_millis(500)),
            }
        }
    }

    /// Puts `files` (paths relative to /, mode 0644) into `c`. Not into a
    /// tmpfs of it: the engine writes under its mounts.
    pub fn upload(&self, c: &Container, files: &[(&str, &[u8])]) -> Result<()> {
        let archive = tar_of(files)?;
        let options = UploadToContainerOptionsBuilder::new().path("/").build();
        self.runtime
            .block_on(self.docker.upload_to_container(
                &c.name,
                Some(options),
                bollard::body_full(archive.into()),
            ))
            .map_err(step(format!("copying files into {}", c.name)))
    }

    /// Creates `role` at host number `host` from `body`, puts `files`
    /// (paths relative to /) in it, and starts it.
    fn start_container(
        &self,
        role: &str,
        host: u8,
        mut body: ContainerCreateBody,
        files: &[(&str, &[u8])],
    ) -> Result<Container> {
        let name = format!("{}-{role}", self.name);
        let address = self.address(host);
        body.hostname = Some(role.into());
        body.labels = Some(labels());
        let mut host_config = body.host_config.take().unwrap_or_default();
        host_config.network_mode = Some(self.network.clone());
        body.host_config = Some(host_config);
        body.networking_config = Some(NetworkingConfig {
            endpoints_config: Some(HashMap::from([(
                self.network.clone(),
                EndpointSettings {
                    ipam_config: Some(EndpointIpamConfig {
                        ipv4_address: Some(address.to_string()),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            )])),
        });
        let options = CreateContainerOptionsBuilder::new().name(&name).build();
        self.runtime
            .block_on(self.docker.create_container(Some(options), body))
            .map_err(step(format!("creating container {name}")))?;
        let container = Container {
            role: role.into(),
            name: name.clone(),
            address,
        };
        self.containers.borrow_mut().push(container.clone());
        if !files.is_empty() {
            self.upload(&container, files)?;
        }
        self.start(&container)?;
        Ok(container)
    }

    /// Notes `what` in the merged timeline at the current wall clock time.
    pub fn mark(&self, what: &str) {
        self.marks
            .borrow_mut()
            .push((SystemTime::now(), what.to_string()));
    }

    pub fn start(&self, c: &Container) -> Result<()> {
        self.runtime
            .block_on(self.docker.start_container(&c.name, None))
            .map_err(step(format!("starting {}", c.name)))
    }

    /// Stops `c` as `docker stop` does: SIGTERM, SIGKILL after 10s.
    pub fn stop(&self, c: &Container) -> Result<()> {
        let options = StopContainerOptionsBuilder::new().t(10).build();
        self.runtime
            .block_on(self.docker.stop_container(&c.name, Some(options)))
            .map_err(step(format!("stopping {}", c.name)))
    }

    /// Freezes every process of `c` (cgroup freezer): no signal, no goodbye.
    pub fn pause(&self, c: &Container) -> Result<()> {
        self.runtime
            .block_on(self.docker.pause_container(&c.name))
            .map_err(step(format!("pausing {}", c.name)))
    }

    pub fn unpause(&self, c: &Container) -> Result<()> {
        self.runtime
            .block_on(self.docker.unpause_container(&c.name))
            .map_err(step(format!("unpausing {}", c.name)))
    }

    /// Takes `c` off the lab's network: its eth0 disappears.
    pub fn disconnect(&self, c: &Container) -> Result<()> {
        self.runtime
            .block_on(self.docker.disconnect_network(
                &self.network,
                NetworkDisconnectRequest {
                    container: c.name.clone(),
                    force: Some(true),
                },
            ))
            .map_err(step(format!("disconnecting {}", c.name)))
    }

    /// Runs `cmd` in `c` and waits for it to end.
    pub fn exec(&self, c: &Container, cmd: &[&str]) -> Result<ExecOutput> {
        let what = format!("running {cmd:?} in {}", c.name);
        self.runtime.block_on(async {
            let exec = self
                .docker
                .create_exec(
                    &c.name,
                    CreateExecOptions {
                        cmd: Some(cmd.to_vec()),
                        attach_stdout: Some(true),
                        attach_stderr: Some(true),
                        ..Default::default()
                    },
                )
                .await
                .map_err(step(&what))?;
            let (mut stdout, mut stderr) = (String::new(), String::new());
            if let StartExecResults::Attached { mut output, .. } = self
                .docker
                .start_exec(&exec.id, None)
                .await
                .map_err(step(&what))?
            {
                while let Some(chunk) = output.next().await {
                    append_output(chunk.map_err(step(&what))?, &mut stdout, &mut stderr);
                }
            }
            let inspect = self
                .docker
                .inspect_exec(&exec.id)
                .await
                .map_err(step(&what))?;
            Ok(ExecOutput {
                code: inspect.exit_code.unwrap_or(-1),
                stdout,
                stderr,
            })
        })
    }

    /// Runs `cmd` in a throwaway container of `image` in the lab and
    /// returns what it printed once it ends.
    pub fn run(&self, image: &str, cmd: &[&str]) -> Result<ExecOutput> {
        self.run_with(image, cmd, Some(self.network.clone()))
    }

    /// How many filesystem layers `image` has.
    pub fn image_layers(&self, image: &str) -> Result<usize> {
        let inspect = self
            .runtime
            .block_on(self.docker.inspect_image(image))
            .map_err(step(format!("inspecting image {image}")))?;
        Ok(inspect
            .root_fs
            .and_then(|fs| fs.layers)
            .map_or(0, |layers| layers.len()))
    }

    /// The IPv4 addresses on `c`'s eth0, read by `ip` run in a throwaway
    /// client container sharing `c`'s network namespace (the appliance
    /// image has nothing but the appliance). None on a stopped container.
    pub fn addresses(&self, images: &Images, c: &Container) -> Result<Vec<Ipv4Addr>> {
        let inspect = self
            .runtime
            .block_on(self.docker.inspect_container(&c.name, None))
            .map_err(step(format!("inspecting {}", c.name)))?;
        if inspect.state.and_then(|s| s.running) != Some(true) {
            return Ok(Vec::new());
        }
        let out = self.run_with(
            &images.client,
            &["ip", "-4", "-o", "addr", "show"],
            Some(format!("container:{}", c.name)),
        )?;
        // "2: eth0    inet 10.90.3.2/24 brd ... scope global eth0\ ..."
        Ok(out
            .stdout
            .lines()
            .filter(|line| line.split_whitespace().nth(1) == Some("eth0"))
            .filter_map(|line| {
                let mut words = line.split_whitespace();
                words.find(|w| *w == "inet")?;
                words.next()?.split('/').next()?.parse().ok()
            })
            .collect())
    }

    fn run_with(
        &self,
        image: &str,
        cmd: &[&str],
        network_mode: Option<String>,
    ) -> Result<ExecOutput> {
        let n = self.containers.borrow().len();
        let name = format!("{}-run{n}", self.name);
        let what = format!("running {cmd:?} in {name}");
        self.containers.borrow_mut().push(Container {
            role: format!("run{n}"),
            name: name.clone(),
            address: Ipv4Addr::UNSPECIFIED,
        });
        self.runtime.block_on(async {
            let body = ContainerCreateBody {
                image: Some(image.into()),
                cmd: Some(cmd.iter().map(|s| s.to_string()).collect()),
                labels: Some(labels()),
                host_config: Some(HostConfig {
                    network_mode,
                    ..Default::default()
                }),
                ..Default::default()
            };
            let options = CreateContainerOptionsBuilder::new().name(&name).build();
            self.docker
                .create_container(Some(options), body)
                .await
                .map_err(step(&what))?;
            self.docker
                .start_container(&name, None)
                .await
                .map_err(step(&what))?;
            let wait = WaitContainerOptionsBuilder::new().build();
            let code = match self.docker.wait_container(&name, Some(wait)).next().await {
                Some(Ok(response)) => response.status_code,
                // A non-zero exit comes as an error carrying the code.
                Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => code,
                Some(Err(e)) => return Err(step(&what)(e)),
                None => -1,
            };
            let logs = LogsOptionsBuilder::new().stdout(true).stderr(true).build();
            let (mut stdout, mut stderr) = (String::new(), String::new());
            let mut stream = self.docker.logs(&name, Some(logs));
            while let Some(chunk) = stream.next().await {
                append_output(chunk.map_err(step(&what))?, &mut stdout, &mut stderr);
            }
            // v: with the anonymous volumes of the image's VOLUMEs.
            let remove = RemoveContainerOptionsBuilder::new()
                .force(true)
                .v(true)
                .build();
            self.docker
                .remove_container(&name, Some(remove))
                .await
                .map_err(step(&what))?;
            Ok(ExecOutput {
                code,
                stdout,
                stderr,
            })
        })
    }

    /// What `c` printed so far (stdout and stderr).
    pub fn logs(&self, c: &Container) -> Result<String> {
        let what = format!("reading the logs of {}", c.name);
        self.runtime.block_on(async {
            let options = LogsOptionsBuilder::new().stdout(true).stderr(true).build();
            let (mut stdout, mut stderr) = (String::new(), String::new());
            let mut stream = self.docker.logs(&c.name, Some(options));
            while let Some(chunk) = stream.next().await {
                append_output(chunk.map_err(step(&what))?, &mut stdout, &mut stderr);
            }
            Ok(stdout + &stderr)
        })
    }

    /// The director `c`'s timeline so far (empty before its first event).
    pub fn timeline(&self, c: &Container) -> Result<Vec<TimelineLine>> {
        let what = format!("reading {TIMELINE_FILE} of {}", c.name);
        let archive: Vec<u8> = self.runtime.block_on(async {
            let options = DownloadFromContainerOptionsBuilder::new()
                .path(TIMELINE_FILE)
                .build();
            let chunks: std::result::Result<Vec<_>, _> = self
                .docker
                .download_from_container(&c.name, Some(options))
                .try_collect()
                .await;
            match chunks {
                Ok(chunks) => Ok(chunks.concat()),
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                }) => Ok(Vec::new()),
                Err(e) => Err(step(&what)(e)),
            }
        })?;
        if archive.is_empty() {
            return Ok(Vec::new());
        }
        let mut text = String::new();
        let mut entries = tar::Archive::new(archive.as_slice());
        for entry in entries
            .entries()
            .map_err(|e| Error(format!("{what}: {e}")))?
        {
            entry
                .and_then(|mut e| e.read_to_string(&mut text))
                .map_err(|e| Error(format!("{what}: {e}")))?;
        }
        text.lines()
            .map(|line| {
                serde_json::from_str(line).map_err(|e| Error(format!("{what}: line {line:?}: {e}")))
            })
            .collect()
    }

    /// Waits until `c`'s timeline says the last state is `state`; returns
    /// the timeline. The error carries the timeline and logs.
    pub fn wait_state(
        &self,
        c: &Container,
        state: State,
        within: Duration,
    ) -> Result<Vec<TimelineLine>> {
        let start = Instant::now();
        loop {
            let lines = self.timeline(c)?;
            if last_state(&lines) == Some(state) {
                return Ok(lines);
            }
            if start.elapsed() > within {
                return Err(Error(format!(
                    "{} did not reach {state} within {within:?}; timeline:\n{}\nlogs:\n{}",
                    c.role,
                    lines
                        .iter()
                        .map(|l| format!("{l:?}"))
                        .collect::<Vec<_>>()
                        .join("\n"),
                    self.logs(c).unwrap_or_else(|e| e.0)
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The timelines of `directors` and the lab's marks, merged by wall
    /// clock (stable: same-time events keep their file order).
    pub fn merged_timeline(&self, directors: &[&Container]) -> Result<Merged> {
        let mut entries = Vec::new();
        for c in directors {
            for line in self.timeline(c)? {
                entries.push(Entry {
                    wall: line.wall()?,
                    node: line.event.node.clone(),
                    instance: line.event.instance.clone(),
                    kind: Some(line.event.kind.clone()),
                    detail: line.event.detail.clone(),
                });
            }
        }
        for (wall, what) in self.marks.borrow().iter() {
            entries.push(Entry {
                wall: *wall,
                node: "test".into(),
                instance: None,
                kind: None,
                detail: what.clone(),
            });
        }
        entries.sort_by_key(|e| e.wall);
        let nodes = std::iter::once("test".to_string())
            .chain(directors.iter().map(|c| c.role.clone()))
            .collect();
        let names = self
            .containers
            .borrow()
            .iter()
            .map(|c| (c.address.to_string(), c.role.clone()))
            .collect();
        Ok(Merged {
            entries,
            names,
            nodes,
        })
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let docker = &self.docker;
        let containers = std::mem::take(&mut *self.containers.borrow_mut());
        let volumes = std::mem::take(&mut *self.volumes.borrow_mut());
        let network = self.network.clone();
        self.runtime.block_on(async {
            for c in containers.iter().rev() {
                remove_container(docker, &c.name).await;
            }
            for v in &volumes {
                remove_volume(docker, v).await;
            }
            if let Err(e) = docker.remove_network(&network).await {
                eprintln!("lab teardown: removing network {network}: {e}");
            }
        });
    }
}

/// One entry of a merged timeline: a director's event or a test's mark.
#[derive(Clone, Debug)]
pub struct Entry {
    pub wall: SystemTime,
    pub node: String,
    pub instance: Option<String>,
    /// None for a test's mark.
    pub kind: Option<EventKind>,
    pub detail: String,
}

/// The merged timeline of a lab.
pub struct Merged {
    pub entries: Vec<Entry>,
    /// Addresses to container roles, to name peers in details.
    names: HashMap<String, String>,
    /// The order nodes are rendered in within a burst: the test's marks,
    /// then the directors as [`Lab::merged_timeline`] was given them.
    nodes: Vec<String>,
}

/// Entries on different nodes closer than this are concurrent: their wall
/// clock order is a race (one advert makes the master add its VIPs and the
/// backup step down in the same millisecond), while what the protocol
/// orders is a timer (an advert interval, 1 s here) apart.
const BURST: Duration = Duration::from_millis(300);

impl Merged {
    /// The VRRP failover's entries: state changes, VIPs, notifies,
    /// priorities, marks. Left out: adverts, gratuitous ARP repeats and a
    /// master hearing lower priorities, whose count depends on timing, and
    /// the health checker's events, whose
    /// order among real servers depends on when each check ran (the
    /// checker's own tests cover them).
    pub fn significant(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter().filter(|e| {
            !matches!(
                e.kind,
                Some(
                    EventKind::Advert { .. }
                        | EventKind::Gratuitous { .. }
                        | EventKind::LowerPriority { .. }
                        | EventKind::RealServer { .. }
                        | EventKind::Quorum { .. }
                        | EventKind::SorryServer { .. }
                )
            )
        })
    }

    /// The significant entries as stable text: times left out (check them
    /// with [`Merged::delay`]), durations in details redacted, addresses
    /// replaced by the lab's role names.
    ///
    /// Order: bursts of directors' entries (each within [`BURST`] of the
    /// one before; a test's mark always stands alone) in time order; within
    /// a burst, node by node in `nodes` order, each node's entries in its
    /// own order, so that the text does not depend on which of two
    /// concurrent events the wall clock saw first.
    pub fn render(&self) -> String {
        let significant: Vec<&Entry> = self.significant().collect();
        let mut bursts: Vec<Vec<&Entry>> = Vec::new();
        for e in significant {
            // A test's mark is a barrier: the test saw what came before it
            // and caused what comes after.
            match bursts.last_mut() {
                Some(burst)
                    if e.kind.is_some()
                        && burst.last().is_some_and(|last| {
                            last.kind.is_some()
                                && e.wall.duration_since(last.wall).unwrap_or_default() < BURST
                        }) =>
                {
                    burst.push(e)
                }
                _ => bursts.push(vec![e]),
            }
        }
        let rank = |e: &&Entry| {
            self.nodes
                .iter()
                .position(|n| *n == e.node)
                .unwrap_or(self.nodes.len())
        };
        let mut out = String::new();
        for mut burst in bursts {
            // Stable: a node's entries keep their order.
            burst.sort_by_key(rank);
            for e in burst {
                out.push_str(&self.render_entry(e));
            }
        }
        out
    }

    fn render_entry(&self, e: &Entry) -> String {
        let what = match &e.kind {
            Some(kind) => kind.to_string(),
            None => "MARK".into(),
        };
        let line = format!(
            "{:<7} {:<5} {what}{}",
            e.node,
            e.instance.as_deref().unwrap_or("-"),
            if e.detail.is_empty() {
                String::new()
            } else {
                format!("  ({})", self.redact(&e.detail))
            }
        );
        format!("{}\n", line.trim_end())
    }

    fn redact(&self, detail: &str) -> String {
        detail
            .split(' ')
            .map(|word| {
                let core = word.trim_end_matches([',', ')', ';']);
                let tail = &word[core.len()..];
                if let Some(role) = self.names.get(core) {
                    format!("{role}{tail}")
                } else if core
                    .strip_suffix('s')
                    .is_some_and(|n| n.contains('.') && n.parse::<f64>().is_ok())
                {
                    format!("<secs>{tail}")
                } else {
                    word.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The wall-clock time from the first entry matching `from` to the
    /// first one after it matching `to`.
    pub fn delay(
        &self,
        from: impl Fn(&Entry) -> bool,
        to: impl Fn(&Entry) -> bool,
    ) -> Result<Duration> {
        let start = self
            .entries
            .iter()
            .position(&from)
            .ok_or_else(|| Error("no timeline entry matches the start".into()))?;
        let end = self.entries[start..]
            .iter()
            .find(|e| to(e))
            .ok_or_else(|| Error("no timeline entry after the start matches the end".into()))?;
        end.wall
            .duration_since(self.entries[start].wall)
            .map_err(|e| Error(format!("timeline out of order: {e}")))
    }
}

/// Whether `e` is the test's mark `what`.
pub fn is_mark(what: &str) -> impl Fn(&Entry) -> bool + '_ {
    move |e| e.kind.is_none() && e.detail == what
}

/// Whether `e` is `node` entering `state`.
pub fn is_state<'a>(node: &'a str, state: State) -> impl Fn(&Entry) -> bool + 'a {
    move |e| e.node == node && matches!(e.kind, Some(EventKind::State { to, .. }) if to == state)
}

/// The names of every container, network and volume on the engine, to
/// check that a lab leaves nothing behind.
pub fn engine_objects() -> Result<std::collections::BTreeSet<String>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error(format!("starting a tokio runtime: {e}")))?;
    runtime.block_on(async {
        let docker = Docker::connect_with_local_defaults()
            .map_err(step("connecting to the Docker engine"))?
            .negotiate_version()
            .await
            .map_err(step("connecting to the Docker engine"))?;
        let mut names = std::collections::BTreeSet::new();
        let containers = docker
            .list_containers(Some(ListContainersOptionsBuilder::new().all(true).build()))
            .await
            .map_err(step("listing containers"))?;
        names.extend(
            containers
                .into_iter()
                .flat_map(|c| c.names.unwrap_or_default())
                .map(|n| format!("container {n}")),
        );
        let networks = docker
            .list_networks(None::<bollard::query_parameters::ListNetworksOptions>)
            .await
            .map_err(step("listing networks"))?;
        names.extend(
            networks
                .into_iter()
                .filter_map(|n| n.name)
                .map(|n| format!("network {n}")),
        );
        let volumes = docker
            .list_volumes(None::<bollard::query_parameters::ListVolumesOptions>)
            .await
            .map_err(step("listing volumes"))?;
        names.extend(
            volumes
                .volumes
                .unwrap_or_default()
                .into_iter()
                .map(|v| format!("volume {}", v.name)),
        );
        Ok(names)
    })
}

fn labels() -> HashMap<String, String> {
    HashMap::from([(LABEL.to_string(), std::process::id().to_string())])
}

fn append_output(chunk: LogOutput, stdout: &mut String, stderr: &mut String) {
    match chunk {
        LogOutput::StdErr { message } => stderr.push_str(&String::from_utf8_lossy(&message)),
        other => stdout.push_str(&String::from_utf8_lossy(&other.into_bytes())),
    }
}

/// A tar archive of `files` (path relative to /, contents).
fn tar_of(files: &[(&str, &[u8])]) -> Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, contents) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(contents.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(&mut header, path, *contents)
            .map_err(|e| Error(format!("archiving {path}: {e}")))?;
    }
    builder
        .into_inner()
        .map_err(|e| Error(format!("archiving files: {e}")))
}

/// Creates the lab's internal network on the first free /24 of 10.90/16,
/// starting at one picked from the pid and lab number (tests of several
/// processes rarely collide; a collision moves on to the next subnet).
async fn create_network(docker: &Docker, name: &str, pid: u32, n: u32) -> Result<[u8; 3]> {
    let first = (pid.wrapping_mul(7).wrapping_add(n.wrapping_mul(13))) % 250;
    let mut last_error = String::new();
    for i in 0..250 {
        let third = u8::try_from((first + i) % 250 + 1).unwrap_or(1);
        let [a, b] = SUBNET_BASE;
        let request = NetworkCreateRequest {
            name: name.into(),
            driver: Some("bridge".into()),
            internal: Some(true),
            labels: Some(labels()),
            ipam: Some(Ipam {
                config: Some(vec![IpamConfig {
                    subnet: Some(format!("{a}.{b}.{third}.0/24")),
                    // Addresses the engine picks by itself stay above the
                    // fixed ones (and the VIPs) the tests use.
                    ip_range: Some(format!("{a}.{b}.{third}.128/25")),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        match docker.create_network(request).await {
            Ok(_) => return Ok([a, b, third]),
            Err(e) if e.to_string().contains("overlap") => last_error = e.to_string(),
            Err(e) => return Err(Error(format!("creating network {name}: {e}"))),
        }
    }
    Err(Error(format!(
        "creating network {name}: no free /24 in {}.{}.0.0/16: {last_error}",
        SUBNET_BASE[0], SUBNET_BASE[1]
    )))
}

async fn remove_container(docker: &Docker, name: &str) {
    let options = RemoveContainerOptionsBuilder::new()
        .force(true)
        .v(true)
        .build();
    match docker.remove_container(name, Some(options)).await {
        Ok(())
        | Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => {}
        Err(e) => eprintln!("lab teardown: removing container {name}: {e}"),
    }
}

async fn remove_volume(docker: &Docker, name: &str) {
    let options = RemoveVolumeOptionsBuilder::new().force(true).build();
    if let Err(e) = docker.remove_volume(name, Some(options)).await {
        eprintln!("lab teardown: removing volume {name}: {e}");
    }
}

/// Whether the process `pid` still exists (on this machine).
fn alive(pid: &str) -> bool {
    let Ok(pid) = pid.parse::<i32>() else {
        return false;
    };
    !matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
        Err(nix::errno::Errno::ESRCH)
    )
}

/// Removes containers, volumes and networks labelled by test processes
/// that no longer run.
async fn remove_stale(docker: &Docker) -> Result<()> {
    let filter = HashMap::from([("label", vec![LABEL])]);
    let stale = |labels: Option<&HashMap<String, String>>| {
        labels
            .and_then(|l| l.get(LABEL))
            .is_some_and(|pid| !alive(pid))
    };
    let containers = docker
        .list_containers(Some(
            ListContainersOptionsBuilder::new()
                .all(true)
                .filters(&filter)
                .build(),
        ))
        .await
        .map_err(step("listing containers"))?;
    for c in containers.iter().filter(|c| stale(c.labels.as_ref())) {
        if let Some(id) = &c.id {
            remove_container(docker, id).await;
        }
    }
    let volumes = docker
        .list_volumes(Some(
            ListVolumesOptionsBuilder::new().filters(&filter).build(),
        ))
        .await
        .map_err(step("listing volumes"))?;
    for v in volumes
        .volumes
        .unwrap_or_default()
        .iter()
        .filter(|v| stale(Some(&v.labels)))
    {
        remove_volume(docker, &v.name).await;
    }
    let networks = docker
        .list_networks(Some(
            ListNetworksOptionsBuilder::new().filters(&filter).build(),
        ))
        .await
        .map_err(step("listing networks"))?;
    for n in networks.iter().filter(|n| stale(n.labels.as_ref())) {
        if let Some(name) = &n.name
            && let Err(e) = docker.remove_network(name).await
        {
            eprintln!("removing stale network {name}: {e}");
        }
    }
    Ok(())
}
