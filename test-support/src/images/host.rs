//! The host's server binary as an image needs it: path, version, and every
//! shared library `ldd` lists (the dynamic loader included).

use std::{path::PathBuf, process::Command};

use crate::{Error, binary::Binary, kind::ServerKind};

/// The host binary, its version and the files an image of it needs.
pub(super) struct HostServer {
    pub(super) binary: PathBuf,
    pub(super) version: String,
    pub(super) libraries: Vec<PathBuf>,
}

pub(super) fn host_server(kind: ServerKind) -> Result<HostServer, Error> {
    let binary = Binary::of(kind).locate()?;
    let version_flag = match kind {
        ServerKind::Memcached => "-V",
        ServerKind::Redis | ServerKind::Valkey => "--version",
    };
    let version_out = run(Command::new(&binary).arg(version_flag))?;
    // "memcached 1.6.18" / "Redis server v=7.0.15 sha=... malloc=... bits=64 ..."
    let version = version_out
        .split_whitespace()
        .find_map(|w| {
            let w = w.strip_prefix("v=").unwrap_or(w);
            w.starts_with(|c: char| c.is_ascii_digit())
                .then(|| w.to_owned())
        })
        .ok_or_else(|| Error::docker("reading the server version")(version_out.clone()))?;
    let ldd = run(Command::new("ldd").arg(&binary))?;
    Ok(HostServer {
        binary,
        version,
        libraries: parse_ldd(&ldd)?,
    })
}

/// The absolute paths in `ldd` output (libraries and the loader), in order.
fn parse_ldd(output: &str) -> Result<Vec<PathBuf>, Error> {
    let mut paths = Vec::new();
    for line in output.lines() {
        if line.contains("not found") {
            return Err(Error::docker("resolving shared libraries")(
                line.trim().to_owned(),
            ));
        }
        let candidate = match line.split_once("=>") {
            Some((_, right)) => right.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(path) = candidate.filter(|p| p.starts_with('/')) {
            let path = PathBuf::from(path);
            if !paths.contains(&path) {
                paths.push(path);
            }
        }
    }
    Ok(paths)
}

fn run(cmd: &mut Command) -> Result<String, Error> {
    let shown = format!("{cmd:?}");
    let out = cmd
        .output()
        .map_err(Error::io(format!("running {shown}")))?;
    if !out.status.success() {
        return Err(Error::Io {
            context: format!("running {shown}"),
            source: std::io::Error::other(String::from_utf8_lossy(&out.stderr).into_owned()),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output_is_parsed() {
        let out = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                   \tlibevent-2.1.so.7 => /lib/x86_64-linux-gnu/libevent-2.1.so.7 (0x00007f33)\n\
                   \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f33)\n\
                   \t/lib64/ld-linux-x86-64.so.2 (0x00007f33)\n";
        let paths = parse_ldd(out).unwrap();
        assert_eq!(
            paths,
            [
                "/lib/x86_64-linux-gnu/libevent-2.1.so.7",
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/lib64/ld-linux-x86-64.so.2",
            ]
            .map(PathBuf::from)
        );
        assert!(parse_ldd("\tlibfoo.so.1 => not found\n").is_err());
    }
}
