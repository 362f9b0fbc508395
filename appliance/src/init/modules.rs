//! Kernel modules without modprobe or udev: the image's `modules.dep` and
//! `modules.alias` (depmod's formats) are parsed here, a module is loaded
//! after its dependencies with `finit_module(2)`, and coldplug matches every
//! device's `modalias` in sysfs against the aliases, round after round,
//! since a loaded bus driver (virtio_pci) makes the devices appear whose
//! drivers match next.
//!
//! Parsing, alias matching and the load order are pure; the loader takes
//! the system call as a parameter so that its bookkeeping is tested too.

use glob::Pattern;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::CString;
use std::path::{Path, PathBuf};

/// Coldplug stops after this many rounds even if each one loads something:
/// a driver chain is a few levels deep, so more means something loops.
const MAX_ROUNDS: usize = 8;

/// What went wrong reading the module index.
#[derive(Debug, thiserror::Error)]
pub(super) enum Error {
    #[error("reading {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A module's file and the files of everything it needs, as one line of
/// `modules.dep` lists them (paths relative to the modules directory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Entry {
    pub path: PathBuf,
    pub deps: Vec<PathBuf>,
}

/// The name the kernel knows a module by: its file name without the
/// `.ko` suffix (or a compressed one's), with `-` read as `_` as modprobe
/// does.
pub(super) fn module_name(path: &Path) -> String {
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy())
        .unwrap_or_default();
    let stem = [".ko", ".ko.xz", ".ko.zst", ".ko.gz"]
        .iter()
        .find_map(|suffix| file.strip_suffix(suffix))
        .unwrap_or(&file);
    normalize(stem)
}

/// `-` and `_` are the same in module names.
pub(super) fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

/// Parses `modules.dep`: `path: dep dep ...` per line, keyed by module name.
/// Lines without a colon are skipped.
pub(super) fn parse_dep(text: &str) -> HashMap<String, Entry> {
    text.lines()
        .filter_map(|line| {
            let (path, deps) = line.split_once(':')?;
            let path = PathBuf::from(path.trim());
            if path.as_os_str().is_empty() {
                return None;
            }
            let deps = deps.split_whitespace().map(PathBuf::from).collect();
            Some((module_name(&path), Entry { path, deps }))
        })
        .collect()
}

/// One `alias PATTERN MODULE` line of `modules.alias`.
#[derive(Debug, Clone)]
pub(super) struct Alias {
    pub pattern: Pattern,
    pub module: String,
}

/// Parses `modules.alias`. Returns the aliases and the lines whose pattern
/// is not a valid glob (they cannot match anything, but are worth saying).
pub(super) fn parse_alias(text: &str) -> (Vec<Alias>, Vec<String>) {
    let mut aliases = Vec::new();
    let mut invalid = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let (Some("alias"), Some(pattern), Some(module)) =
            (words.next(), words.next(), words.next())
        else {
            continue;
        };
        // fnmatch reads `**` as `*`; the glob crate reserves it for whole
        // path components and refuses it elsewhere.
        let mut pattern = pattern.to_string();
        while pattern.contains("**") {
            pattern = pattern.replace("**", "*");
        }
        match Pattern::new(&pattern) {
            Ok(pattern) => aliases.push(Alias {
                pattern,
                module: normalize(module),
            }),
            Err(_) => invalid.push(line.to_string()),
        }
    }
    (aliases, invalid)
}

/// The modules whose alias matches a device's `modalias`, each once, in
/// name order.
pub(super) fn matching(aliases: &[Alias], modalias: &str) -> BTreeSet<String> {
    aliases
        .iter()
        .filter(|a| a.pattern.matches(modalias))
        .map(|a| a.module.clone())
        .collect()
}

/// The files to load for `name`, in order: its dependencies last listed
/// first (modules.dep lists a chain from the module outwards), then the
/// module itself. `None` when modules.dep does not know the module (it may
/// be built into the kernel).
pub(super) fn load_order<'a>(
    deps: &'a HashMap<String, Entry>,
    name: &str,
) -> Option<Vec<&'a Path>> {
    let entry = deps.get(&normalize(name))?;
    let mut order: Vec<&Path> = entry.deps.iter().rev().map(PathBuf::as_path).collect();
    order.push(&entry.path);
    Some(order)
}

/// The lines of `/etc/appliance/modules`: a module name and optional
/// parameters (`ip_vs conn_tab_bits=20`) per line, `#` comments.
pub(super) fn parse_list(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(|line| line.split('#').next().unwrap_or_default().trim())
        .filter(|line| !line.is_empty())
        .map(|line| match line.split_once(char::is_whitespace) {
            Some((name, params)) => (normalize(name), params.trim().to_string()),
            None => (normalize(line), String::new()),
        })
        .collect()
}

/// Every distinct `modalias` of a device on a bus under `sys`
/// (`bus/*/devices/*/modalias`). Unreadable entries are skipped: devices
/// come and go while this runs.
pub(super) fn modaliases(sys: &Path) -> BTreeSet<String> {
    let entries = |dir: PathBuf| {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
    };
    entries(sys.join("bus"))
        .flat_map(|bus| entries(bus.join("devices")))
        .filter_map(|device| std::fs::read_to_string(device.join("modalias")).ok())
        .map(|alias| alias.trim().to_string())
        .filter(|alias| !alias.is_empty())
        .collect()
}

/// The system call that loads one module file with its parameters.
pub(super) type Insert<'a> = dyn FnMut(&Path, &str) -> std::io::Result<()> + 'a;

/// Loads a module file into the kernel with `finit_module(2)`.
pub(super) fn finit(path: &Path, params: &str) -> std::io::Result<()> {
    let file = std::fs::File::open(path)?;
    let params = CString::new(params)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    nix::kmod::finit_module(&file, &params, nix::kmod::ModuleInitFlags::empty())
        .map_err(std::io::Error::from)
}

/// What one pass (the boot list, or a coldplug) did.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Report {
    /// Modules loaded now, dependencies included, in load order.
    pub loaded: Vec<String>,
    /// Modules that failed to load, with the kernel's reason.
    pub failed: BTreeMap<String, String>,
    /// Names modules.dep does not know (built in, or misspelt).
    pub unknown: Vec<String>,
}

/// How a module stands after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Loaded,
    Failed(String),
    /// Not in modules.dep: said once, not looked up again.
    Unknown,
}

/// The module index of one kernel and what was loaded from it.
pub(super) struct Loader {
    dir: PathBuf,
    deps: HashMap<String, Entry>,
    aliases: Vec<Alias>,
    state: HashMap<String, Outcome>,
}

impl Loader {
    /// Reads `modules.dep` (required) and `modules.alias` (without it,
    /// coldplug matches nothing) from `dir`, `/lib/modules/<release>`.
    /// Returns the loader and the alias lines that could not be parsed.
    pub(super) fn open(dir: &Path) -> Result<(Self, Vec<String>), Error> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).map_err(|source| Error::Read { path, source })
        };
        let deps = parse_dep(&read("modules.dep")?);
        let (aliases, invalid) = match read("modules.alias") {
            Ok(text) => parse_alias(&text),
            Err(Error::Read { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                (Vec::new(), Vec::new())
            }
            Err(e) => return Err(e),
        };
        Ok((Self::new(dir, deps, aliases), invalid))
    }

    pub(super) fn new(dir: &Path, deps: HashMap<String, Entry>, aliases: Vec<Alias>) -> Self {
        Self {
            dir: dir.to_path_buf(),
            deps,
            aliases,
            state: HashMap::new(),
        }
    }

    /// Loads `name` (with `params`) after its dependencies, each at most
    /// once per boot: an earlier failure is not retried. A dependency that
    /// fails stops the chain, as modprobe does; `EEXIST` means the kernel
    /// already has the module, which is what was wanted.
    pub(super) fn load(
        &mut self,
        name: &str,
        params: &str,
        insert: &mut Insert<'_>,
        report: &mut Report,
    ) {
        let Some(order) = load_order(&self.deps, name) else {
            let name = normalize(name);
            if !self.state.contains_key(&name) {
                self.state.insert(name.clone(), Outcome::Unknown);
                report.unknown.push(name);
            }
            return;
        };
        let order: Vec<PathBuf> = order.into_iter().map(|p| self.dir.join(p)).collect();
        let last = order.len().saturating_sub(1);
        for (i, path) in order.iter().enumerate() {
            let module = module_name(path);
            match self.state.get(&module) {
                Some(Outcome::Loaded) => continue,
                Some(Outcome::Failed(_) | Outcome::Unknown) => return,
                None => {}
            }
            let params = if i == last { params } else { "" };
            match insert(path, params) {
                Ok(()) => {
                    self.state.insert(module.clone(), Outcome::Loaded);
                    report.loaded.push(module);
                }
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                    self.state.insert(module, Outcome::Loaded);
                }
                Err(e) => {
                    let reason = e.to_string();
                    self.state
                        .insert(module.clone(), Outcome::Failed(reason.clone()));
                    report.failed.insert(module, reason);
                    return;
                }
            }
        }
    }

    /// Loads the drivers of the devices under `sys` until a round finds
    /// no module it has not tried.
    pub(super) fn coldplug(&mut self, sys: &Path, insert: &mut Insert<'_>) -> Report {
        let mut report = Report::default();
        for _ in 0..MAX_ROUNDS {
            let wanted: BTreeSet<String> = modaliases(sys)
                .iter()
                .flat_map(|alias| matching(&self.aliases, alias))
                .filter(|module| !self.state.contains_key(module))
                .collect();
            if wanted.is_empty() {
                break;
            }
            let before = self.state.len();
            for module in &wanted {
                self.load(module, "", insert, &mut report);
            }
            // An alias naming a module modules.dep lacks changes nothing;
            // without progress another round would find the same.
            if self.state.len() == before {
                break;
            }
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEP: &str = "\
kernel/net/netfilter/ipvs/ip_vs_rr.ko: kernel/net/netfilter/ipvs/ip_vs.ko kernel/net/netfilter/nf_conntrack.ko kernel/lib/libcrc32c.ko
kernel/net/netfilter/ipvs/ip_vs.ko: kernel/net/netfilter/nf_conntrack.ko kernel/lib/libcrc32c.ko
kernel/net/netfilter/nf_conntrack.ko: kernel/lib/libcrc32c.ko
kernel/lib/libcrc32c.ko:
kernel/drivers/virtio/virtio_pci.ko:
kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko
kernel/drivers/net/net_failover.ko:
kernel/drivers/md/dm-mod.ko.xz:
";

    const ALIAS: &str = "\
# Aliases extracted from modules themselves.
alias pci:v00001AF4d*sv*sd*bc*sc*i* virtio_pci
alias virtio:d00000001v* virtio_net
alias virtio:d00000002v* virtio_blk
alias fs-vfat vfat
alias devname:mapper/control dm-mod
alias broken[ nothing
";

    #[test]
    fn module_names_drop_the_suffix_and_read_dashes_as_underscores() {
        assert_eq!(module_name(Path::new("kernel/x/ip_vs.ko")), "ip_vs");
        assert_eq!(
            module_name(Path::new("kernel/drivers/md/dm-mod.ko.xz")),
            "dm_mod"
        );
        assert_eq!(
            module_name(Path::new("/lib/modules/6.1/k/nls_cp437.ko")),
            "nls_cp437"
        );
    }

    #[test]
    fn dependencies_load_last_listed_first_then_the_module() {
        let deps = parse_dep(DEP);
        let order: Vec<String> = load_order(&deps, "ip_vs_rr")
            .unwrap()
            .into_iter()
            .map(module_name)
            .collect();
        assert_eq!(order, ["libcrc32c", "nf_conntrack", "ip_vs", "ip_vs_rr"]);
        assert_eq!(
            load_order(&deps, "libcrc32c").unwrap(),
            [Path::new("kernel/lib/libcrc32c.ko")]
        );
        assert_eq!(
            load_order(&deps, "dm-mod").unwrap(),
            [Path::new("kernel/drivers/md/dm-mod.ko.xz")]
        );
        assert!(load_order(&deps, "vfat").is_none());
    }

    #[test]
    fn aliases_match_as_fnmatch_globs_and_bad_patterns_are_returned() {
        let (aliases, invalid) = parse_alias(ALIAS);
        assert_eq!(invalid, ["alias broken[ nothing"]);
        assert_eq!(aliases.len(), 5);
        assert_eq!(
            matching(
                &aliases,
                "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00"
            ),
            BTreeSet::from(["virtio_pci".to_string()])
        );
        assert_eq!(
            matching(&aliases, "virtio:d00000001v00001AF4"),
            BTreeSet::from(["virtio_net".to_string()])
        );
        assert!(
            matching(
                &aliases,
                "pci:v00008086d00001237sv00001AF4sd00001100bc06sc00i00"
            )
            .is_empty()
        );
        // The module name is normalised like the others.
        assert_eq!(
            matching(&aliases, "devname:mapper/control"),
            BTreeSet::from(["dm_mod".to_string()])
        );
        let (aliases, _) = parse_alias("alias usb:v**p* usb_thing\n");
        assert_eq!(matching(&aliases, "usb:v1234p5678").len(), 1);
    }

    #[test]
    fn the_boot_list_has_names_parameters_and_comments() {
        let list = "# IPVS\nip_vs conn_tab_bits=20  # big table\n\nip_vs_rr\n  nls-cp437\n";
        assert_eq!(
            parse_list(list),
            [
                ("ip_vs".to_string(), "conn_tab_bits=20".to_string()),
                ("ip_vs_rr".to_string(), String::new()),
                ("nls_cp437".to_string(), String::new()),
            ]
        );
    }

    fn loader() -> Loader {
        let (aliases, _) = parse_alias(ALIAS);
        Loader::new(Path::new("/lib/modules/6.1"), parse_dep(DEP), aliases)
    }

    fn names(calls: &[(PathBuf, String)]) -> Vec<String> {
        calls.iter().map(|(p, _)| module_name(p)).collect()
    }

    #[test]
    fn each_module_loads_once_and_already_loaded_is_fine() {
        let mut l = loader();
        let mut calls = Vec::new();
        let mut insert = |path: &Path, params: &str| {
            calls.push((path.to_path_buf(), params.to_string()));
            if path.ends_with("libcrc32c.ko") {
                Err(std::io::Error::from_raw_os_error(libc::EEXIST))
            } else {
                Ok(())
            }
        };
        let mut report = Report::default();
        l.load("ip_vs", "conn_tab_bits=20", &mut insert, &mut report);
        l.load("ip_vs_rr", "", &mut insert, &mut report);
        l.load("vfat", "", &mut insert, &mut report);
        assert_eq!(report.loaded, ["nf_conntrack", "ip_vs", "ip_vs_rr"]);
        assert_eq!(report.unknown, ["vfat"]);
        assert!(report.failed.is_empty());
        assert_eq!(
            names(&calls),
            ["libcrc32c", "nf_conntrack", "ip_vs", "ip_vs_rr"]
        );
        assert_eq!(
            calls[0].0,
            Path::new("/lib/modules/6.1/kernel/lib/libcrc32c.ko")
        );
        // Parameters go to the named module only.
        assert_eq!(calls[1].1, "");
        assert_eq!(calls[2].1, "conn_tab_bits=20");
    }

    #[test]
    fn a_failed_dependency_stops_the_chain_and_is_not_retried() {
        let mut l = loader();
        let mut calls = Vec::new();
        let mut insert = |path: &Path, _: &str| {
            calls.push((path.to_path_buf(), String::new()));
            if path.ends_with("nf_conntrack.ko") {
                Err(std::io::Error::from_raw_os_error(libc::ENOEXEC))
            } else {
                Ok(())
            }
        };
        let mut report = Report::default();
        l.load("ip_vs_rr", "", &mut insert, &mut report);
        l.load("ip_vs", "", &mut insert, &mut report);
        assert_eq!(names(&calls), ["libcrc32c", "nf_conntrack"]);
        assert_eq!(report.loaded, ["libcrc32c"]);
        assert_eq!(report.failed.keys().collect::<Vec<_>>(), ["nf_conntrack"]);
        assert!(report.failed["nf_conntrack"].contains("Exec format error"));
    }

    fn device(sys: &Path, bus: &str, name: &str, modalias: &str) {
        let dir = sys.join("bus").join(bus).join("devices").join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("modalias"), format!("{modalias}\n")).unwrap();
    }

    #[test]
    fn coldplug_repeats_until_a_round_loads_nothing_new() {
        let sys = tempfile::tempdir().unwrap();
        device(
            sys.path(),
            "pci",
            "0000:00:03.0",
            "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00",
        );
        // A device without a driver in the image, and one without modalias.
        device(
            sys.path(),
            "pci",
            "0000:00:00.0",
            "pci:v00008086d00001237sv0sd0bc06sc00i00",
        );
        std::fs::create_dir_all(sys.path().join("bus/cpu/devices/cpu0")).unwrap();
        let mut l = loader();
        let mut calls = Vec::new();
        let root = sys.path().to_path_buf();
        let mut insert = |path: &Path, _: &str| {
            calls.push((path.to_path_buf(), String::new()));
            // Loading the PCI transport makes the virtio device appear.
            if path.ends_with("virtio_pci.ko") {
                device(&root, "virtio", "virtio0", "virtio:d00000001v00001AF4");
            }
            Ok(())
        };
        let report = l.coldplug(sys.path(), &mut insert);
        assert_eq!(report.loaded, ["virtio_pci", "net_failover", "virtio_net"]);
        assert_eq!(names(&calls), report.loaded);
        // Nothing new the second time.
        let again = l.coldplug(sys.path(), &mut |_: &Path, _: &str| panic!("loaded again"));
        assert_eq!(again, Report::default());
    }
}
