//! Just enough of a POSIX ustar writer for a root filesystem: regular files
//! and directories, names under 100 bytes, owned by root. The import method
//! posts such a tar to the daemon, as `docker import` does.

use std::path::Path;

use crate::Error;

#[derive(Default)]
pub(super) struct Writer {
    out: Vec<u8>,
    dirs: Vec<String>,
}

impl Writer {
    pub(super) fn dir(&mut self, path: &str, mode: u32) -> Result<(), Error> {
        let path = format!("{}/", path.trim_end_matches('/'));
        if self.dirs.contains(&path) {
            return Ok(());
        }
        self.header(&path, mode, 0, b'5')?;
        self.dirs.push(path);
        Ok(())
    }

    /// Adds `dir` and each of its ancestors not added yet.
    pub(super) fn dirs_of(&mut self, dir: &Path) -> Result<(), Error> {
        let mut prefix = String::new();
        for part in dir.components() {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(&part.as_os_str().to_string_lossy());
            self.dir(&prefix, 0o755)?;
        }
        Ok(())
    }

    pub(super) fn file(&mut self, path: &str, mode: u32, data: &[u8]) -> Result<(), Error> {
        self.header(path, mode, data.len() as u64, b'0')?;
        self.out.extend_from_slice(data);
        self.pad();
        Ok(())
    }

    pub(super) fn finish(mut self) -> Vec<u8> {
        self.out.resize(self.out.len() + 1024, 0);
        self.out
    }

    fn header(&mut self, path: &str, mode: u32, size: u64, kind: u8) -> Result<(), Error> {
        if path.len() >= 100 {
            return Err(Error::docker("writing the image tar")(format!(
                "path too long for ustar: {path}"
            )));
        }
        let mut h = [0u8; 512];
        h[..path.len()].copy_from_slice(path.as_bytes());
        octal(&mut h[100..108], u64::from(mode));
        octal(&mut h[108..116], 0);
        octal(&mut h[116..124], 0);
        octal(&mut h[124..136], size);
        octal(&mut h[136..148], 0);
        h[148..156].fill(b' ');
        h[156] = kind;
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
        octal(&mut h[148..155], sum);
        self.out.extend_from_slice(&h);
        Ok(())
    }

    fn pad(&mut self) {
        let rem = self.out.len() % 512;
        if rem != 0 {
            self.out.resize(self.out.len() + 512 - rem, 0);
        }
    }
}

/// Zero-padded octal, NUL-terminated, filling `field`.
fn octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let text = format!("{value:0digits$o}");
    field[..digits].copy_from_slice(&text.as_bytes()[text.len() - digits..]);
    field[digits] = 0;
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;

    #[test]
    fn ustar_is_readable_by_tar() {
        let mut w = Writer::default();
        w.dirs_of(Path::new("usr/bin")).unwrap();
        w.file("usr/bin/hello", 0o755, b"hello\n").unwrap();
        let bytes = w.finish();
        assert_eq!(bytes.len() % 512, 0);
        let dir = std::env::temp_dir().join(format!("ts-ustar-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let tar_path = dir.join("t.tar");
        std::fs::write(&tar_path, &bytes).unwrap();
        let listing = Command::new("tar")
            .arg("-tvf")
            .arg(&tar_path)
            .output()
            .unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(listing.status.success(), "{listing:?}");
        let text = String::from_utf8_lossy(&listing.stdout);
        assert!(text.contains("usr/bin/hello"), "{text}");
        assert!(text.contains("-rwxr-xr-x"), "{text}");
    }
}
