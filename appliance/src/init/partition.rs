//! Finding the config partition by its GPT partition name, as the kernel
//! reports it in sysfs (`/sys/class/block/<dev>/uevent`: `PARTNAME=` and
//! `DEVNAME=`), so no blkid or udev is needed and the disk may be any
//! device (virtio, SATA, USB).

use std::path::{Path, PathBuf};

/// The value of `key` in a uevent file's `KEY=value` lines.
fn uevent_field<'a>(uevent: &'a str, key: &str) -> Option<&'a str> {
    uevent.lines().find_map(|line| {
        let (k, v) = line.split_once('=')?;
        (k == key).then_some(v)
    })
}

/// The device nodes (`/dev/vda2`) of the block devices under `sys` whose
/// partition name is `name`, in device name order. A device that vanishes
/// while this looks is skipped.
pub(super) fn find(sys: &Path, name: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(sys.join("class/block")) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = entries
        .flatten()
        .filter_map(|entry| std::fs::read_to_string(entry.path().join("uevent")).ok())
        .filter(|uevent| uevent_field(uevent, "PARTNAME") == Some(name))
        .filter_map(|uevent| {
            uevent_field(&uevent, "DEVNAME").map(|dev| Path::new("/dev").join(dev))
        })
        .collect();
    found.sort();
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(sys: &Path, dev: &str, uevent: &str) {
        let dir = sys.join("class/block").join(dev);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("uevent"), uevent).unwrap();
    }

    #[test]
    fn the_partition_is_found_by_its_gpt_name() {
        let sys = tempfile::tempdir().unwrap();
        assert!(find(sys.path(), "appliance-config").is_empty());
        block(
            sys.path(),
            "vda",
            "MAJOR=254\nMINOR=0\nDEVNAME=vda\nDEVTYPE=disk\nDISKSEQ=9\n",
        );
        block(
            sys.path(),
            "vda1",
            "MAJOR=254\nMINOR=1\nDEVNAME=vda1\nDEVTYPE=partition\nDISKSEQ=9\nPARTN=1\nPARTNAME=ESP\n",
        );
        block(
            sys.path(),
            "vda2",
            "MAJOR=254\nMINOR=2\nDEVNAME=vda2\nDEVTYPE=partition\nDISKSEQ=9\nPARTN=2\nPARTNAME=appliance-config\n",
        );
        // A look-alike name is not the partition.
        block(
            sys.path(),
            "sda1",
            "DEVNAME=sda1\nPARTNAME=appliance-config-old\n",
        );
        // A directory without uevent (vanished device) is skipped.
        std::fs::create_dir_all(sys.path().join("class/block/loop0")).unwrap();
        assert_eq!(
            find(sys.path(), "appliance-config"),
            [Path::new("/dev/vda2")]
        );
    }

    #[test]
    fn two_partitions_of_that_name_come_in_device_order() {
        let sys = tempfile::tempdir().unwrap();
        block(
            sys.path(),
            "vdb2",
            "DEVNAME=vdb2\nPARTNAME=appliance-config\n",
        );
        block(
            sys.path(),
            "sda2",
            "PARTNAME=appliance-config\nDEVNAME=sda2\n",
        );
        assert_eq!(
            find(sys.path(), "appliance-config"),
            [Path::new("/dev/sda2"), Path::new("/dev/vdb2")]
        );
    }
}
