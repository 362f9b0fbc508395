//! A writer for the "newc" cpio format (`070701`), the format the Linux
//! kernel unpacks an initramfs from. Only what an initramfs needs:
//! directories, regular files, symlinks and character devices.

use std::io::{self, Write};

/// File type bits of `st_mode`.
const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;

/// Writes entries in the order given: a directory must be written before
/// what it contains (the kernel does not create missing parents).
pub struct CpioWriter<W: Write> {
    out: W,
    written: u64,
    next_ino: u32,
}

impl<W: Write> CpioWriter<W> {
    pub fn new(out: W) -> Self {
        Self {
            out,
            written: 0,
            next_ino: 1,
        }
    }

    /// A directory; `path` is relative to the archive root (no leading `/`).
    pub fn dir(&mut self, path: &str, perm: u32) -> io::Result<()> {
        self.entry(path, S_IFDIR | perm, 2, (0, 0), &[])
    }

    pub fn file(&mut self, path: &str, perm: u32, data: &[u8]) -> io::Result<()> {
        self.entry(path, S_IFREG | perm, 1, (0, 0), data)
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> io::Result<()> {
        self.entry(path, S_IFLNK | 0o777, 1, (0, 0), target.as_bytes())
    }

    pub fn char_dev(&mut self, path: &str, perm: u32, major: u32, minor: u32) -> io::Result<()> {
        self.entry(path, S_IFCHR | perm, 1, (major, minor), &[])
    }

    /// Writes the trailer and returns the underlying writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.entry("TRAILER!!!", 0, 1, (0, 0), &[])?;
        self.out.flush()?;
        Ok(self.out)
    }

    fn entry(
        &mut self,
        path: &str,
        mode: u32,
        nlink: u32,
        (rmajor, rminor): (u32, u32),
        data: &[u8],
    ) -> io::Result<()> {
        let too_big = |what| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{path}: {what} too large for cpio"),
            )
        };
        let size = u32::try_from(data.len()).map_err(|_| too_big("file"))?;
        // The name's length counts its terminating NUL.
        let namesize = u32::try_from(path.len() + 1).map_err(|_| too_big("name"))?;
        let ino = self.next_ino;
        self.next_ino += 1;
        let fields = [
            ino, mode, 0, 0, nlink, 0, size, 0, 0, rmajor, rminor, namesize, 0,
        ];
        let mut header = String::with_capacity(110);
        header.push_str("070701");
        for field in fields {
            header.push_str(&format!("{field:08x}"));
        }
        self.put(header.as_bytes())?;
        self.put(path.as_bytes())?;
        self.put(&[0])?;
        self.pad()?;
        self.put(data)?;
        self.pad()
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Header+name and data each end on a 4-byte boundary.
    fn pad(&mut self) -> io::Result<()> {
        let zeros = [0u8; 3];
        let n = ((4 - self.written % 4) % 4) as usize;
        self.put(&zeros[..n])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (name, mode, (rdevmajor, rdevminor), data) of one entry.
    type Parsed = (String, u32, (u32, u32), Vec<u8>);

    /// Reads back each entry, checking alignment.
    fn parse(mut bytes: &[u8]) -> Vec<Parsed> {
        let total = bytes.len();
        let mut entries = Vec::new();
        loop {
            assert_eq!((total - bytes.len()) % 4, 0, "entry not 4-aligned");
            assert_eq!(&bytes[..6], b"070701");
            let field = |i: usize| {
                u32::from_str_radix(
                    std::str::from_utf8(&bytes[6 + 8 * i..14 + 8 * i]).unwrap(),
                    16,
                )
                .unwrap()
            };
            let (mode, size, rdev, namesize) =
                (field(1), field(6), (field(9), field(10)), field(11));
            let name_end = 110 + namesize as usize;
            let name = std::str::from_utf8(&bytes[110..name_end - 1])
                .unwrap()
                .to_string();
            assert_eq!(bytes[name_end - 1], 0, "name is NUL-terminated");
            let data_start = name_end.next_multiple_of(4);
            let data = bytes[data_start..data_start + size as usize].to_vec();
            bytes = &bytes[(data_start + size as usize).next_multiple_of(4)..];
            if name == "TRAILER!!!" {
                assert!(bytes.is_empty(), "nothing after the trailer");
                return entries;
            }
            entries.push((name, mode, rdev, data));
        }
    }

    #[test]
    fn entries_round_trip_with_types_and_padding() {
        let mut w = CpioWriter::new(Vec::new());
        w.dir("bin", 0o755).unwrap();
        w.file("bin/hello", 0o755, b"hi!").unwrap();
        w.symlink("bin/sh", "busybox").unwrap();
        w.char_dev("console", 0o600, 5, 1).unwrap();
        w.file("e", 0o644, b"").unwrap();
        let bytes = w.finish().unwrap();
        assert_eq!(
            parse(&bytes),
            vec![
                ("bin".into(), 0o040755, (0, 0), vec![]),
                ("bin/hello".into(), 0o100755, (0, 0), b"hi!".to_vec()),
                ("bin/sh".into(), 0o120777, (0, 0), b"busybox".to_vec()),
                ("console".into(), 0o020600, (5, 1), vec![]),
                ("e".into(), 0o100644, (0, 0), vec![]),
            ]
        );
    }

    #[test]
    fn header_is_the_newc_layout() {
        let mut w = CpioWriter::new(Vec::new());
        w.file("a", 0o644, b"x").unwrap();
        let bytes = w.finish().unwrap();
        let header = std::str::from_utf8(&bytes[..110]).unwrap();
        assert_eq!(
            header,
            "070701\
             00000001000081a4000000000000000000000001000000000000000100000000\
             00000000000000000000000000000002\
             00000000"
        );
        assert_eq!(&bytes[110..112], b"a\0");
        assert_eq!(&bytes[112..113], b"x", "110+2 is 4-aligned, data follows");
    }
}
