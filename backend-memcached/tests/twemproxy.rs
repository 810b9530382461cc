//! The store behind a real twemproxy (nutcracker, from Debian) in front of
//! a real memcached, as a new user would try it: meta mode (the default) is
//! reported as "does not speak the meta protocol, use protocol=classic",
//! not as a dead server; classic mode works.
//!
//! nutcracker is started here with a generated configuration on free ports
//! and killed when the test ends. A missing binary fails the test with the
//! package to install.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use backend_memcached::{MemcachedConfig, MemcachedStore, Protocol, ServerSpec, ServerState};
use common::{Server, memcached};
use session_core::{Error, Store, Ttl};

/// A running nutcracker; killed on drop.
struct Nutcracker {
    child: Child,
    port: u16,
    _dir: TempDir,
}

impl Drop for Nutcracker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A directory removed on drop.
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A port free right now (bound, then released for nutcracker to take).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts nutcracker in front of `server` and waits until it accepts.
fn nutcracker(server: &Server) -> Nutcracker {
    let found = Command::new("nutcracker")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "nutcracker (twemproxy) is required: install the Debian package `nutcracker` \
         (apt-get install nutcracker)"
    );
    let dir = std::env::temp_dir().join(format!(
        "memorycached-nutcracker-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let dir = TempDir(dir);
    let (port, stats_port) = (free_port(), free_port());
    let conf = dir.0.join("nutcracker.yml");
    std::fs::write(
        &conf,
        format!(
            "pool:\n  listen: 127.0.0.1:{port}\n  hash: fnv1a_64\n  distribution: ketama\n  \
             auto_eject_hosts: false\n  servers:\n   - {}:1\n",
            server.addr()
        ),
    )
    .unwrap();
    let child = Command::new("nutcracker")
        .arg("-c")
        .arg(&conf)
        .args(["-s", &stats_port.to_string(), "-o"])
        .arg(dir.0.join("nutcracker.log"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nutcracker");
    let proxy = Nutcracker {
        child,
        port,
        _dir: dir,
    };
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "nutcracker did not listen on {port} within 5 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    proxy
}

fn store_on(proxy: &Nutcracker, protocol: Protocol) -> MemcachedStore {
    let mut config = MemcachedConfig::with_servers(vec![ServerSpec::new("127.0.0.1", proxy.port)]);
    config.protocol = protocol;
    MemcachedStore::connect(config).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meta_through_twemproxy_is_named_with_the_classic_hint() {
    let server = memcached().await;
    let proxy = nutcracker(&server);

    let store = store_on(&proxy, Protocol::Meta);
    for _ in 0..2 {
        let err = store.get("k").await.unwrap_err();
        // Regression: this was "server closed the connection", and the
        // proxy was marked down.
        assert!(
            matches!(&err, Error::InvalidConfig(m)
                if m.contains("does not speak the memcached meta protocol")
                    && m.contains("protocol=classic")),
            "{err:?}"
        );
        assert_eq!(store.stats()[0].state, ServerState::Up);
    }
    let err = store.add("k", b"v", 1, Ttl::NEVER).await.unwrap_err();
    assert!(
        matches!(&err, Error::InvalidConfig(m) if m.contains("`ms`")),
        "{err:?}"
    );

    // Classic mode works through the same proxy.
    let store = store_on(&proxy, Protocol::Classic);
    assert!(
        store
            .add("k", b"v", 1, Ttl::NEVER)
            .await
            .unwrap()
            .is_stored()
    );
    let e = store.get("k").await.unwrap().unwrap();
    assert_eq!((e.value.as_slice(), e.flags), (&b"v"[..], 1));
    assert!(store.delete("k").await.unwrap());
}
