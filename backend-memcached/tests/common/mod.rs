//! Test helpers: real memcached processes on free loopback ports, and real
//! Perl Cache::Memcached.
//!
//! Stand-in until the workspace's `test-support` crate can start servers;
//! the surface is kept to `start_memcached() -> Server { addr, .. }`,
//! `kill`, `pause`, `resume`, `restart` so the switch is mechanical.
//! A missing binary or Perl module FAILS the test with the Debian package
//! to install: these tests never skip themselves.

// Each test binary uses a different subset of these helpers, and a helper
// that cannot do its job panics: that panic is the test failure report.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A memcached child process on 127.0.0.1, killed on drop.
#[derive(Debug)]
pub struct Server {
    /// `127.0.0.1:<port>`.
    pub addr: String,
    /// The port.
    pub port: u16,
    /// The running process, `None` after [`Server::kill`].
    pub child: Option<Child>,
}

/// Starts `memcached -l 127.0.0.1 -p <free port> -U 0 -m 64` and waits until
/// it accepts connections.
pub fn start_memcached() -> Server {
    // The probe port can be taken between our probe and memcached's bind;
    // then memcached exits and we try another port.
    for _ in 0..20 {
        let port = free_port();
        if let Some(child) = spawn_on(port) {
            return Server {
                addr: format!("127.0.0.1:{port}"),
                port,
                child: Some(child),
            };
        }
    }
    panic!("could not start memcached on a free port after 20 attempts");
}

/// A random port below Linux's ephemeral range that is free right now.
///
/// Not `bind(0)`: the kernel hands a just-released ephemeral port to the
/// next `bind(0)`, so tests running in parallel would often probe the same
/// port and end up sharing one server.
fn free_port() -> u16 {
    loop {
        let mut h = RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        let port = 10_000 + (h.finish() % 22_000) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// True when the memcached answering on `port` is the process `pid`
/// (`stats` reports its pid), so we never adopt another test's server.
fn answers_as(port: u16, pid: u32) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream.write_all(b"stats\r\n").is_err() {
        return false;
    }
    let want = format!("STAT pid {pid}");
    for line in BufReader::new(stream).lines() {
        match line {
            Ok(l) if l.trim_end() == want => return true,
            Ok(l) if l.starts_with("END") => return false,
            Ok(_) => {}
            Err(_) => return false,
        }
    }
    false
}

/// Spawns memcached on `port`; `None` if it exited (port taken).
fn spawn_on(port: u16) -> Option<Child> {
    let spawned = Command::new("memcached")
        .args([
            "-l",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            "0",
            "-m",
            "64",
        ])
        // memcached refuses to run as root without -u; as non-root it is ignored.
        .args(["-u", "root"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "the `memcached` binary is not installed; install the Debian package \
             `memcached` (apt-get install memcached)"
        ),
        Err(e) => panic!("cannot start memcached: {e}"),
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return None;
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            if answers_as(port, child.id()) {
                return Some(child);
            }
            // Another process owns the port; ours will exit, if it has not.
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("memcached on port {port} did not accept connections within 5 s");
}

impl Server {
    fn pid(&self) -> u32 {
        self.child.as_ref().expect("server is not running").id()
    }

    fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([sig, &self.pid().to_string()])
            .status()
            .expect("run kill(1)");
        assert!(status.success(), "kill {sig} failed");
    }

    /// Kills the process (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes the process (SIGSTOP): connections stay open, nothing answers.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Thaws a paused process (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    /// Kills the process if running and starts a fresh one on the same port.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(child) = spawn_on(self.port) {
                self.child = Some(child);
                return;
            }
            assert!(
                Instant::now() < deadline,
                "could not restart memcached on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SIGKILL works on a stopped process too.
        self.kill();
    }
}

/// Fails unless perl with Cache::Memcached is installed.
pub fn require_perl_cache_memcached() {
    let ok = Command::new("perl")
        .args(["-MCache::Memcached", "-e1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "perl with Cache::Memcached is required: install the Debian package \
         `libcache-memcached-perl` (apt-get install libcache-memcached-perl)"
    );
}

/// Runs a Perl script with `args`, feeding `stdin`, and returns its stdout.
/// Panics with stderr if it fails.
pub fn run_perl(script: &str, args: &[&str], stdin: &str) -> String {
    require_perl_cache_memcached();
    let mut child = Command::new("perl")
        .arg("-e")
        .arg(script)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start perl");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "perl failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A test key set: plain words, numbered keys, session-id-like hex and
/// punctuation, all valid memcached keys.
pub fn test_keys(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| match i % 4 {
            0 => format!("key{i}"),
            1 => format!(
                "{:032x}",
                (i as u128).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c834)
            ),
            2 => format!("session:{i}:user@example.org"),
            _ => format!("k-{}-{}", i * 7919, "x".repeat(i % 13)),
        })
        .collect()
}
