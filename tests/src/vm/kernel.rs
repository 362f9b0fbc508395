//! Debian's stock kernel for VM tests, fetched once and cached outside git
//! in `<workspace>/.cache/vm/`: the package behind the `linux-image-amd64`
//! metapackage (kept, so a change of [`MODULES`] needs no new download), and
//! one ready directory per package holding an uncompressed `vmlinux` (qemu
//! boots it through its PVH entry, seconds faster under TCG than a bzImage)
//! and the closure of [`MODULES`] and of every module in [`MODULE_DIRS`]
//! under `lib/modules/<release>/` with a `modules.dep` for `modprobe`.
//!
//! Concurrent test processes serialise on an exclusive lock on
//! `.cache/vm/lock`; a ready directory is built under a temporary name and
//! renamed into place, so a killed build leaves nothing that looks ready.

use super::{Error, Result, command_output, io_err, require_tool};
use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Modules the guest loads at boot (one `modprobe -a`), with what they
/// depend on: IPVS and its schedulers, conntrack, and the links scenarios
/// build (veth pairs, bridges, ipip for LVS-TUN). `crc32c_generic` is
/// libcrc32c's soft dependency (conntrack's, through it): modules.dep does
/// not list it, and without it libcrc32c fails to initialise.
pub const MODULES: &[&str] = &[
    "crc32c_generic",
    "ip_vs",
    "ip_vs_rr",
    "ip_vs_wrr",
    "ip_vs_lc",
    "ip_vs_wlc",
    "ip_vs_sh",
    "ip_vs_dh",
    "ip_vs_mh",
    "ip_vs_sed",
    "ip_vs_nq",
    "ip_vs_lblc",
    "ip_vs_lblcr",
    "nf_conntrack",
    "veth",
    "bridge",
    "ipip",
];

/// Directories of the package (under `lib/modules/<release>/`) whose
/// modules all go into the guest, loaded on demand rather than at boot:
/// every IPVS module this kernel ships (schedulers such as `fo` and `ovf`
/// load when a service first names them), so that what the guest lacks
/// there is what the kernel lacks.
pub const MODULE_DIRS: &[&str] = &["kernel/net/netfilter/ipvs/"];

/// A ready directory's record of the [`MODULE_DIRS`] it was built with.
const MODULE_DIRS_RECORD: &str = "module-dirs";

const METAPACKAGE: &str = "linux-image-amd64";
const READY_PREFIX: &str = "kernel-";
const DOWNLOAD_PREFIX: &str = "download-";
const UNPACK_PREFIX: &str = "unpack-";

/// A ready kernel: paths inside the cache.
#[derive(Debug, Clone)]
pub struct Kernel {
    /// The uncompressed ELF kernel image.
    pub vmlinux: PathBuf,
    /// `uname -r` of that kernel.
    pub release: String,
    /// The directory holding `lib/modules/<release>/`.
    pub modules_root: PathBuf,
}

impl Kernel {
    /// `lib/modules/<release>` under [`Kernel::modules_root`].
    pub fn modules_dir(&self) -> PathBuf {
        self.modules_root.join("lib/modules").join(&self.release)
    }
}

/// `<workspace>/.cache/vm`, created on first use (ignored by git).
pub fn cache_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new(env!("CARGO_MANIFEST_DIR")))
        .join(".cache/vm")
}

/// The cached kernel, fetching and preparing it first if needed.
pub fn kernel() -> Result<Kernel> {
    let cache = cache_dir();
    fs::create_dir_all(&cache).map_err(io_err(&cache))?;
    let lock_path = cache.join("lock");
    let lock = fs::File::create(&lock_path).map_err(io_err(&lock_path))?;
    // Released when `lock` drops, or by the kernel if this process dies.
    lock.lock().map_err(io_err(&lock_path))?;

    // Work directories of a build that was killed (holding the lock, no
    // build is running now).
    for dir in read_dir(&cache)? {
        let name = file_name(&dir);
        if name.starts_with(DOWNLOAD_PREFIX) || name.starts_with(UNPACK_PREFIX) {
            fs::remove_dir_all(&dir).map_err(io_err(&dir))?;
        }
    }
    if let Some(ready) = find_ready(&cache)? {
        return Ok(ready);
    }
    let deb = match find_deb(&cache)? {
        Some(deb) => deb,
        None => download(&cache)?,
    };
    prepare(&cache, &deb)
}

/// A ready directory whose `modules.dep` covers every module of [`MODULES`]
/// and that was built with today's [`MODULE_DIRS`].
fn find_ready(cache: &Path) -> Result<Option<Kernel>> {
    let mut ready: Vec<PathBuf> = read_dir(cache)?
        .into_iter()
        .filter(|p| file_name(p).starts_with(READY_PREFIX))
        .collect();
    ready.sort();
    for dir in ready.into_iter().rev() {
        let Ok(release) = fs::read_to_string(dir.join("release")) else {
            continue;
        };
        let kernel = Kernel {
            vmlinux: dir.join("vmlinux"),
            release: release.trim().to_string(),
            modules_root: dir.clone(),
        };
        let Ok(dep) = fs::read_to_string(kernel.modules_dir().join("modules.dep")) else {
            continue;
        };
        let have: BTreeSet<String> = parse_modules_dep(&dep)
            .iter()
            .map(|(m, _)| module_name(m))
            .collect();
        let dirs = fs::read_to_string(dir.join(MODULE_DIRS_RECORD)).unwrap_or_default();
        if kernel.vmlinux.is_file()
            && MODULES.iter().all(|m| have.contains(*m))
            && dirs == module_dirs_record()
        {
            return Ok(Some(kernel));
        }
    }
    Ok(None)
}

fn find_deb(cache: &Path) -> Result<Option<PathBuf>> {
    let mut debs: Vec<PathBuf> = read_dir(cache)?
        .into_iter()
        .filter(|p| file_name(p).starts_with("linux-image-") && file_name(p).ends_with(".deb"))
        .collect();
    debs.sort();
    Ok(debs.pop())
}

/// The versioned package the metapackage depends on, e.g.
/// `linux-image-6.1.0-56-amd64`, from `apt-cache depends` output.
fn parse_kernel_package(apt_cache_depends: &str) -> Option<String> {
    apt_cache_depends.lines().find_map(|line| {
        let name = line.trim().strip_prefix("Depends:")?.trim();
        (name.starts_with("linux-image-") && !name.contains(char::is_whitespace))
            .then(|| name.to_string())
    })
}

fn resolve_package() -> Result<String> {
    require_tool("apt-cache", "apt")?;
    let query = || {
        Command::new("apt-cache")
            .args(["depends", METAPACKAGE])
            .output()
            .ok()
            .and_then(|out| parse_kernel_package(&String::from_utf8_lossy(&out.stdout)))
    };
    if let Some(package) = query() {
        return Ok(package);
    }
    // Empty package lists (a fresh machine): read them once.
    apt_update()?;
    query().ok_or_else(|| {
        Error::Kernel(format!(
            "`apt-cache depends {METAPACKAGE}` names no linux-image package, even after apt-get update"
        ))
    })
}

fn apt_update() -> Result<()> {
    command_output(Command::new("apt-get").args(["update", "-qq"])).map(drop)
}

/// Downloads the kernel package into `cache` (through a temporary directory,
/// so a partial download never looks complete).
fn download(cache: &Path) -> Result<PathBuf> {
    require_tool("apt-get", "apt")?;
    let package = resolve_package()?;
    let tmp = tempfile::Builder::new()
        .prefix(DOWNLOAD_PREFIX)
        .tempdir_in(cache)
        .map_err(io_err(cache))?;
    let fetch = || {
        command_output(
            Command::new("apt-get")
                .args(["download", "-qq", &package])
                .current_dir(tmp.path()),
        )
    };
    if fetch().is_err() {
        // Stale lists name a version the archive no longer has.
        apt_update()?;
        fetch()?;
    }
    let deb = read_dir(tmp.path())?
        .into_iter()
        .find(|p| file_name(p).ends_with(".deb"))
        .ok_or_else(|| Error::Kernel(format!("apt-get download {package} left no .deb")))?;
    let dest = cache.join(file_name(&deb));
    fs::rename(&deb, &dest).map_err(io_err(&dest))?;
    Ok(dest)
}

/// Unpacks `deb` and builds the ready directory for it.
fn prepare(cache: &Path, deb: &Path) -> Result<Kernel> {
    require_tool("dpkg-deb", "dpkg")?;
    require_tool("busybox", "busybox")?;
    let staging = tempfile::Builder::new()
        .prefix(UNPACK_PREFIX)
        .tempdir_in(cache)
        .map_err(io_err(cache))?;
    let unpacked = staging.path().join("deb");
    command_output(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&unpacked))?;

    let boot = unpacked.join("boot");
    let (vmlinuz, release) = read_dir(&boot)?
        .into_iter()
        .find_map(|p| {
            let release = file_name(&p).strip_prefix("vmlinuz-")?.to_string();
            Some((p, release))
        })
        .ok_or_else(|| Error::Kernel(format!("{} has no boot/vmlinuz-*", deb.display())))?;

    let out = staging.path().join("ready");
    let modules_out = out.join("lib/modules").join(&release);
    fs::create_dir_all(&modules_out).map_err(io_err(&modules_out))?;
    let image = fs::read(&vmlinuz).map_err(io_err(&vmlinuz))?;
    let vmlinux = decompress_bzimage(&image)
        .map_err(|e| Error::Kernel(format!("{}: {e}", vmlinuz.display())))?;
    let vmlinux_path = out.join("vmlinux");
    fs::write(&vmlinux_path, vmlinux).map_err(io_err(&vmlinux_path))?;

    // The package ships no modules.dep (its postinst runs depmod).
    command_output(
        Command::new("busybox")
            .arg("depmod")
            .arg("-b")
            .arg(&unpacked)
            .arg(&release),
    )?;
    let modules_in = unpacked.join("lib/modules").join(&release);
    let dep_path = modules_in.join("modules.dep");
    let dep = fs::read_to_string(&dep_path).map_err(io_err(&dep_path))?;
    let lines = parse_modules_dep(&dep);
    let lines = closure(&lines, &wanted(&lines, MODULES, MODULE_DIRS))?;
    let mut reduced = String::new();
    for (module, deps) in &lines {
        let (from, to) = (modules_in.join(module), modules_out.join(module));
        if let Some(parent) = to.parent() {
            fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        fs::copy(&from, &to).map_err(io_err(&from))?;
        reduced.push_str(&format!("{module}:"));
        for d in deps {
            reduced.push_str(&format!(" {d}"));
        }
        reduced.push('\n');
    }
    let reduced_path = modules_out.join("modules.dep");
    fs::write(&reduced_path, reduced).map_err(io_err(&reduced_path))?;
    let record_path = out.join(MODULE_DIRS_RECORD);
    fs::write(&record_path, module_dirs_record()).map_err(io_err(&record_path))?;
    let release_path = out.join("release");
    fs::File::create(&release_path)
        .and_then(|mut f| writeln!(f, "{release}"))
        .map_err(io_err(&release_path))?;

    let stem = file_name(deb).trim_end_matches(".deb").to_string();
    let ready = cache.join(format!("{READY_PREFIX}{stem}"));
    if ready.exists() {
        // Built for older MODULES or MODULE_DIRS (find_ready passed it over).
        fs::remove_dir_all(&ready).map_err(io_err(&ready))?;
    }
    fs::rename(&out, &ready).map_err(io_err(&ready))?;
    Ok(Kernel {
        vmlinux: ready.join("vmlinux"),
        release,
        modules_root: ready,
    })
}

/// The lines of `modules.dep`: (module path, paths of all it depends on).
fn parse_modules_dep(text: &str) -> Vec<(String, Vec<String>)> {
    text.lines()
        .filter_map(|line| {
            let (module, deps) = line.split_once(':')?;
            Some((
                module.trim().to_string(),
                deps.split_whitespace().map(str::to_string).collect(),
            ))
        })
        .collect()
}

/// `kernel/net/ipv4/ipip.ko` -> `ipip` (modprobe treats `-` as `_`).
fn module_name(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    let stem = file.split(".ko").next().unwrap_or(file);
    stem.replace('-', "_")
}

/// What [`MODULE_DIRS_RECORD`] holds: one directory a line.
fn module_dirs_record() -> String {
    MODULE_DIRS.iter().map(|d| format!("{d}\n")).collect()
}

/// The names of `modules` and of every module of `lines` (`modules.dep`)
/// under one of `dirs`.
fn wanted(lines: &[(String, Vec<String>)], modules: &[&str], dirs: &[&str]) -> Vec<String> {
    let mut names: Vec<String> = modules.iter().map(|m| m.to_string()).collect();
    for (module, _) in lines {
        let name = module_name(module);
        if dirs.iter().any(|d| module.starts_with(d)) && !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

/// The `modules.dep` lines of `wanted` and of every module they depend on
/// (each line of depmod's output already lists the full dependency chain).
fn closure(
    lines: &[(String, Vec<String>)],
    wanted: &[impl AsRef<str>],
) -> Result<Vec<(String, Vec<String>)>> {
    let mut needed = BTreeSet::new();
    for name in wanted {
        let name = name.as_ref();
        let (module, deps) = lines
            .iter()
            .find(|(m, _)| module_name(m) == name)
            .ok_or_else(|| Error::Kernel(format!("module {name} is not in the kernel package")))?;
        needed.insert(module.clone());
        needed.extend(deps.iter().cloned());
    }
    Ok(lines
        .iter()
        .filter(|(m, _)| needed.contains(m))
        .cloned()
        .collect())
}

/// The decompressors of the formats a bzImage payload may use, by magic.
const DECOMPRESSORS: &[(&[u8], &str, &str)] = &[
    (b"\xfd7zXZ\x00", "xz", "xz-utils"),
    (b"\x28\xb5\x2f\xfd", "zstd", "zstd"),
    (b"\x1f\x8b", "gzip", "gzip"),
];

/// The ELF kernel inside a bzImage. The x86 boot protocol's setup header
/// locates the compressed payload (`payload_offset`/`payload_length`,
/// relative to the protected-mode code after the setup sectors); the
/// kernel build appends the uncompressed size as 4 little-endian bytes.
fn decompress_bzimage(image: &[u8]) -> std::result::Result<Vec<u8>, String> {
    let u32_at = |at: usize| {
        image
            .get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
            .ok_or_else(|| format!("truncated bzImage (offset {at:#x})"))
    };
    if image.get(0x202..0x206) != Some(b"HdrS".as_slice()) {
        return Err("not a bzImage (no HdrS setup header)".into());
    }
    let setup_sects = match image.get(0x1f1) {
        Some(0) => 4,
        Some(&n) => usize::from(n),
        None => return Err("truncated bzImage".into()),
    };
    let start = (setup_sects + 1) * 512 + u32_at(0x248)? as usize;
    let len = u32_at(0x24c)? as usize;
    let payload = image
        .get(start..start + len)
        .ok_or("payload lies outside the bzImage")?;
    let (stream, size) = payload.split_at(payload.len().saturating_sub(4));
    let size: [u8; 4] = size.try_into().map_err(|_| "empty payload")?;
    let expected = u32::from_le_bytes(size) as usize;
    let (_, tool, package) = DECOMPRESSORS
        .iter()
        .find(|(magic, _, _)| stream.starts_with(magic))
        .ok_or_else(|| {
            format!(
                "unknown payload compression (magic {:02x?})",
                &stream[..stream.len().min(6)]
            )
        })?;
    require_tool(tool, package).map_err(|e| e.to_string())?;
    let mut child = Command::new(tool)
        .arg("-dc")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{tool}: {e}"))?;
    // Feed stdin from a thread: the decompressor's output fills its pipe.
    let mut stdin = child.stdin.take().ok_or("no stdin pipe")?;
    let input = stream.to_vec();
    let feeder = std::thread::spawn(move || stdin.write_all(&input));
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{tool}: {e}"))?;
    let fed = feeder
        .join()
        .map_err(|_| format!("{tool}: stdin writer panicked"))?;
    if !out.status.success() {
        return Err(format!(
            "{tool} -dc: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    fed.map_err(|e| format!("{tool}: writing the payload: {e}"))?;
    if out.stdout.len() != expected {
        return Err(format!(
            "{tool} gave {} bytes, the header says {expected}",
            out.stdout.len()
        ));
    }
    if !out.stdout.starts_with(b"\x7fELF") {
        return Err("the decompressed payload is not an ELF image".into());
    }
    Ok(out.stdout)
}

fn read_dir(dir: &Path) -> Result<Vec<PathBuf>> {
    fs::read_dir(dir)
        .and_then(|entries| entries.map(|e| e.map(|e| e.path())).collect())
        .map_err(io_err(dir))
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_versioned_package_is_read_from_apt_cache_depends() {
        let out = "linux-image-amd64\n  Depends: linux-image-6.1.0-56-amd64\n";
        assert_eq!(
            parse_kernel_package(out).as_deref(),
            Some("linux-image-6.1.0-56-amd64")
        );
        assert_eq!(parse_kernel_package("E: No packages found\n"), None);
    }

    #[test]
    fn closure_keeps_wanted_modules_and_their_dependencies_in_file_order() {
        let dep = "kernel/net/ipv4/ipip.ko: kernel/net/ipv4/tunnel4.ko kernel/net/ipv4/ip_tunnel.ko\n\
                   kernel/net/ipv4/tunnel4.ko:\n\
                   kernel/net/ipv4/ip_tunnel.ko:\n\
                   kernel/sound/snd.ko:\n\
                   kernel/drivers/net/veth.ko:\n";
        let lines = parse_modules_dep(dep);
        let kept: Vec<String> = closure(&lines, &["veth", "ipip"])
            .unwrap()
            .into_iter()
            .map(|(m, _)| m)
            .collect();
        assert_eq!(
            kept,
            [
                "kernel/net/ipv4/ipip.ko",
                "kernel/net/ipv4/tunnel4.ko",
                "kernel/net/ipv4/ip_tunnel.ko",
                "kernel/drivers/net/veth.ko"
            ]
        );
        let missing = closure(&lines, &["ip_vs"]).unwrap_err().to_string();
        assert!(missing.contains("ip_vs"), "{missing}");
    }

    #[test]
    fn every_module_of_a_listed_directory_is_wanted_once() {
        let dep = "kernel/net/netfilter/ipvs/ip_vs_fo.ko: kernel/net/netfilter/ipvs/ip_vs.ko\n\
                   kernel/net/netfilter/ipvs/ip_vs_rr.ko: kernel/net/netfilter/ipvs/ip_vs.ko\n\
                   kernel/net/netfilter/ipvs/ip_vs.ko:\n\
                   kernel/net/ipv4/ipip.ko:\n";
        let lines = parse_modules_dep(dep);
        assert_eq!(
            wanted(&lines, &["ip_vs_rr"], &["kernel/net/netfilter/ipvs/"]),
            ["ip_vs_rr", "ip_vs_fo", "ip_vs"]
        );
        assert_eq!(wanted(&lines, &["ipip"], &[]), ["ipip"]);
    }

    #[test]
    fn module_names_normalise_dashes_and_extensions() {
        assert_eq!(module_name("kernel/net/ipv4/ipip.ko"), "ipip");
        assert_eq!(module_name("kernel/drivers/x/snd-hda.ko.xz"), "snd_hda");
    }

    #[test]
    fn a_bzimage_payload_is_located_from_the_setup_header() {
        // setup_sects = 1: protected-mode code at 1024; payload at +16.
        let mut image = vec![0u8; 1024 + 16];
        image[0x1f1] = 1;
        image[0x202..0x206].copy_from_slice(b"HdrS");
        let elf = b"\x7fELF-kernel".to_vec();
        let gz = {
            let mut child = Command::new("gzip")
                .arg("-c")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("gzip (Debian package gzip)");
            child.stdin.take().unwrap().write_all(&elf).unwrap();
            child.wait_with_output().unwrap().stdout
        };
        let mut payload = gz;
        payload.extend_from_slice(&(elf.len() as u32).to_le_bytes());
        image[0x248..0x24c].copy_from_slice(&16u32.to_le_bytes());
        image[0x24c..0x250].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        image.extend_from_slice(&payload);
        assert_eq!(decompress_bzimage(&image).unwrap(), elf);

        image[0x24c..0x250].copy_from_slice(&(payload.len() as u32 + 100).to_le_bytes());
        assert!(decompress_bzimage(&image).unwrap_err().contains("outside"));
        assert!(
            decompress_bzimage(b"short")
                .unwrap_err()
                .contains("bzImage")
        );
    }
}
