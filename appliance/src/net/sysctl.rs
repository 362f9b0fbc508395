//! Kernel parameters as the files of /proc/sys (or of a test's folder),
//! each named by its path's parts (`["net", "ipv4", "conf", "eth0",
//! "rp_filter"]`): what the virtual MACs, `promote_secondaries` and
//! `[network] sysctl` read and write.

use std::path::PathBuf;

/// Reading or writing a parameter's file failed.
#[derive(Debug, thiserror::Error)]
#[error("sysctl {}: {source}", path.display())]
pub struct Error {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// The parameters under one root.
#[derive(Clone, Debug)]
pub(crate) struct Sysctls {
    root: PathBuf,
}

impl Default for Sysctls {
    fn default() -> Self {
        Self::under(PathBuf::from("/proc/sys"))
    }
}

impl Sysctls {
    /// The parameters under `root` (`/proc/sys`, or a test's folder).
    pub(crate) fn under(root: PathBuf) -> Self {
        Self { root }
    }

    pub(crate) fn path(&self, key: &[&str]) -> PathBuf {
        key.iter().fold(self.root.clone(), |p, k| p.join(k))
    }

    /// A parameter's value, without its line end.
    pub(crate) fn read(&self, key: &[&str]) -> Result<String, Error> {
        let path = self.path(key);
        std::fs::read_to_string(&path)
            .map(|v| v.trim().to_string())
            .map_err(|source| Error { path, source })
    }

    pub(crate) fn write(&self, key: &[&str], value: &str) -> Result<(), Error> {
        let path = self.path(key);
        std::fs::write(&path, value).map_err(|source| Error { path, source })
    }
}

/// A folder of parameter files for tests.
#[cfg(test)]
pub(crate) mod fake {
    use std::path::Path;

    /// Creates the file of `key` (slash-separated) under `root`.
    pub(crate) fn set(root: &Path, key: &str, value: &str) {
        let path = root.join(key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, value).unwrap();
    }

    /// The value in the file of `key`, without its line end.
    pub(crate) fn get(root: &Path, key: &str) -> String {
        std::fs::read_to_string(root.join(key))
            .unwrap()
            .trim()
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_trimmed_writes_and_names_a_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        fake::set(dir.path(), "net/ipv4/ip_forward", "0\n");
        let s = Sysctls::under(dir.path().to_path_buf());
        assert_eq!(s.read(&["net", "ipv4", "ip_forward"]).unwrap(), "0");
        s.write(&["net", "ipv4", "ip_forward"], "1").unwrap();
        assert_eq!(fake::get(dir.path(), "net/ipv4/ip_forward"), "1");
        let e = s.read(&["net", "ipv4", "nope"]).unwrap_err();
        assert!(e.to_string().starts_with("sysctl ") && e.to_string().contains("net/ipv4/nope"));
    }
}
