//! [`Config`]: what to replicate where, and the knobs, with `validate()`.

use std::time::Duration;

use serde::Deserialize;
use session_core::codec::{FLAGS_REPLICATED, FORMAT_MASK};

use crate::error::{Error, Result};

/// Who copies to whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topology {
    /// One master copied to each slave; slaves mirror it, deletes included.
    MasterSlave {
        /// The master, `host:port`.
        master: String,
        /// The slaves, `host:port` (at least one).
        slaves: Vec<String>,
    },
    /// Two or more masters replicating to each other (see the crate docs
    /// for the conflict rule).
    Mesh {
        /// The peers, `host:port`, in priority order (the first wins
        /// concurrent writes).
        peers: Vec<String>,
    },
}

/// The replicator's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Who copies to whom.
    pub topology: Topology,
    /// A full comparison this often, besides those at start, after a
    /// reconnect and after skipped events; `None` for none. Without a
    /// deletions feed and without key lists (`key_list_interval` off), it
    /// also bounds how long a delete takes to reach the other nodes.
    pub resync_interval: Option<Duration>,
    /// Parallel copiers per link (keys are split among them by hash, so
    /// one key is always handled by one copier, in order).
    pub shards: usize,
    /// Keys waiting per copier and lane (the feeds' lane and the
    /// comparisons' lane each hold this many); a full feed lane drops the
    /// event and schedules a resync (nothing is lost, it is copied by the
    /// resync).
    pub queue_capacity: usize,
    /// Deadline of each request to a server (and of a connect).
    pub io_timeout: Duration,
    /// Deadline of one full key dump (`lru_crawler metadump all`).
    pub dump_timeout: Duration,
    /// First reconnect delay; doubled per failure up to `backoff_max`.
    pub backoff_initial: Duration,
    /// Longest reconnect delay.
    pub backoff_max: Duration,
    /// How often each source's `stats` are read to notice events memcached
    /// dropped before they reached the feed.
    pub stats_poll: Duration,
    /// How long a stop waits for queued keys to be copied.
    pub drain_timeout: Duration,
    /// Remaining TTLs that differ by at most this many seconds count as
    /// equal (a copy takes time; memcached counts in whole seconds).
    pub ttl_slack_secs: u32,
    /// master↔master: keys whose last in-sync state is remembered (per
    /// copier); past it, the oldest knowledge is dropped (see crate docs).
    pub max_tracked_keys: usize,
    /// master↔master: where a clean stop saves what each copier knew of
    /// the keys in sync, and where a start reads it back (`state.rs`), so
    /// a delete made while the replicator was stopped is still a delete.
    /// `None`: nothing is kept, and such a delete is undone at the start.
    pub state_file: Option<std::path::PathBuf>,
    /// master↔master: the flags bit copies carry, telling a copy from a
    /// client's write (default [`FLAGS_REPLICATED`], `0x4000_0000`). One
    /// bit among `0xFFFF_0000`, the bits session-core's readers ignore
    /// ([`MARKER_BITS`]); see the crate docs for which clients are known
    /// to be fine with it.
    pub marker_flag: u32,
    /// Where a source's feed has no `watch deletions` (memcached 1.6.18):
    /// compare the nodes' key lists (one `lru_crawler metadump` each) no
    /// more often than this, and read only the keys whose lists differ, so
    /// a delete reaches the other nodes in about this long. `None`: deletes
    /// wait for the full comparison (`resync_interval`).
    pub key_list_interval: Option<Duration>,
    /// The share of the time the key-list comparisons may take: the next
    /// one starts after `cost / key_list_budget` (and never sooner than
    /// `key_list_interval`). 0.05 by default: with a million keys, whose
    /// lists take a second or two, one every half minute or so.
    pub key_list_budget: f64,
    /// A small write to each source this often
    /// ([`HEARTBEAT_KEY`](crate::HEARTBEAT_KEY)), so that memcached's
    /// logger thread, which sleeps longer and longer (up to 1 s) while it
    /// finds no watched events, stays awake: without it the first write
    /// after an idle second reached the feed 36-255 ms late (measured on
    /// 1.6.18 and 1.6.38 alike), with it a few ms. `None`: no heartbeat.
    pub feed_heartbeat: Option<Duration>,
}

/// The bits [`Config::marker_flag`] may use: session-core's modifier bits
/// for tools, which its readers ignore, and which Perl's Cache::Memcached
/// (bits 0-1) and Cache::Memcached::Fast (bits 0-2) never look at. The
/// codec's format bits (`0xFF01`) and the low modifiers (compression,
/// UTF-8) are refused: a reader would decode a copy differently.
pub const MARKER_BITS: u32 = 0xFFFF_0000;

impl Config {
    /// Defaults around `topology`.
    pub fn new(topology: Topology) -> Config {
        Config {
            topology,
            resync_interval: Some(Duration::from_secs(60)),
            shards: 4,
            queue_capacity: 10_000,
            io_timeout: Duration::from_secs(2),
            dump_timeout: Duration::from_secs(60),
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            stats_poll: Duration::from_millis(500),
            drain_timeout: Duration::from_secs(5),
            ttl_slack_secs: 2,
            max_tracked_keys: 1_000_000,
            state_file: None,
            marker_flag: FLAGS_REPLICATED,
            key_list_interval: Some(Duration::from_secs(1)),
            key_list_budget: 0.05,
            feed_heartbeat: Some(Duration::from_millis(20)),
        }
    }

    /// Checks everything before any I/O.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidConfig(m));
        let addrs: Vec<&String> = match &self.topology {
            Topology::MasterSlave { master, slaves } => {
                if slaves.is_empty() {
                    return bad("master->slave needs at least one slave".into());
                }
                std::iter::once(master).chain(slaves).collect()
            }
            Topology::Mesh { peers } => {
                if peers.len() < 2 {
                    return bad("master<->master needs at least two peers".into());
                }
                peers.iter().collect()
            }
        };
        // Each node is `host:port` or a one-server memcached:// or
        // memcacheds:// URL (TLS, user:password@); errors print it without
        // its password.
        let mut seen: Vec<String> = Vec::with_capacity(addrs.len());
        for a in &addrs {
            let addr = backend_memcached::raw::target_addr(a).map_err(|e| {
                Error::InvalidConfig(format!("{:?}: {e}", backend_memcached::redact_url(a)))
            })?;
            if seen.contains(&addr) {
                return bad(format!("{addr} is named twice"));
            }
            seen.push(addr);
        }
        if self.shards == 0 || self.shards > 256 {
            return bad("shards must be 1..=256".into());
        }
        if self.queue_capacity == 0 {
            return bad("queue_capacity must be at least 1".into());
        }
        for (name, d) in [
            ("io_timeout", self.io_timeout),
            ("dump_timeout", self.dump_timeout),
            ("backoff_initial", self.backoff_initial),
            ("stats_poll", self.stats_poll),
        ] {
            if d.is_zero() {
                return bad(format!("{name} must be positive"));
            }
        }
        if self.backoff_max < self.backoff_initial {
            return bad("backoff_max must be at least backoff_initial".into());
        }
        if self.resync_interval.is_some_and(|d| d.is_zero()) {
            return bad("resync_interval must be positive (or absent)".into());
        }
        if self.feed_heartbeat.is_some_and(|d| d.is_zero()) {
            return bad("feed_heartbeat must be positive (or absent)".into());
        }
        if self.key_list_interval.is_some_and(|d| d.is_zero()) {
            return bad("key_list_interval must be positive (or absent)".into());
        }
        if !(self.key_list_budget > 0.0 && self.key_list_budget <= 1.0) {
            return bad(format!(
                "key_list_budget {} must be in (0, 1]",
                self.key_list_budget
            ));
        }
        if self.marker_flag.count_ones() != 1 || self.marker_flag & !MARKER_BITS != 0 {
            return bad(format!(
                "marker_flag {:#x} must be one bit among {MARKER_BITS:#x} (not a format bit of the codec, {FORMAT_MASK:#x}, nor compression or UTF-8)",
                self.marker_flag
            ));
        }
        Ok(())
    }
}

/// The TOML file the daemon reads (`--config`); every field optional,
/// flags override it. Durations are in milliseconds unless named `_secs`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// The master (with `slaves`).
    pub master: Option<String>,
    /// Slaves of `master`.
    #[serde(default)]
    pub slaves: Vec<String>,
    /// Peers replicating to each other (instead of master/slaves).
    #[serde(default)]
    pub peers: Vec<String>,
    /// Periodic full comparison, seconds (0 = none).
    pub resync_interval_secs: Option<u64>,
    /// Copiers per link.
    pub shards: Option<usize>,
    /// Queue capacity per copier.
    pub queue_capacity: Option<usize>,
    /// Request deadline, milliseconds.
    pub io_timeout_ms: Option<u64>,
    /// Stop drain deadline, milliseconds.
    pub drain_timeout_ms: Option<u64>,
    /// Metrics listen address (`host:port`).
    pub metrics: Option<String>,
    /// master↔master: the file the in-sync state is kept in across
    /// restarts (see `Config::state_file`).
    pub state_file: Option<std::path::PathBuf>,
    /// master↔master: the flags bit copies carry (`Config::marker_flag`),
    /// e.g. `0x40000000`: a number, or a string in hex (`"0x40000000"`).
    pub marker_flag: Option<MarkerFlag>,
    /// Shortest time between key-list comparisons, milliseconds (0 =
    /// none; see `Config::key_list_interval`).
    pub key_list_interval_ms: Option<u64>,
    /// The heartbeat to each source (`Config::feed_heartbeat`), 0 for
    /// none.
    pub feed_heartbeat_ms: Option<u64>,
}

/// Where `/metrics` and `/healthz` are served when nothing says otherwise.
pub const DEFAULT_METRICS: &str = "127.0.0.1:9150";

impl FileConfig {
    /// The [`Config`] these settings mean (the defaults of [`Config::new`]
    /// for what they leave out), validated. The daemon applies its flags to
    /// the file's settings first, so both go through here.
    pub fn into_config(self) -> Result<Config> {
        let bad = |m: &str| Err(Error::InvalidConfig(m.into()));
        let topology = match (self.master, self.peers.is_empty()) {
            (Some(_), false) => {
                return bad(
                    "give either master and slaves (--master/--slave) or peers (--peer), not both",
                );
            }
            (Some(master), true) => Topology::MasterSlave {
                master,
                slaves: self.slaves,
            },
            (None, false) if !self.slaves.is_empty() => {
                return bad("slaves (--slave) need a master (--master)");
            }
            (None, false) => Topology::Mesh { peers: self.peers },
            (None, true) => {
                return bad(
                    "nothing to replicate: give --master H:P --slave H:P, or --peer H:P --peer H:P (or master/slaves or peers in the config file)",
                );
            }
        };
        let mut config = Config::new(topology);
        if let Some(secs) = self.resync_interval_secs {
            config.resync_interval = (secs > 0).then(|| Duration::from_secs(secs));
        }
        if let Some(ms) = self.feed_heartbeat_ms {
            config.feed_heartbeat = (ms > 0).then(|| Duration::from_millis(ms));
        }
        if let Some(ms) = self.key_list_interval_ms {
            config.key_list_interval = (ms > 0).then(|| Duration::from_millis(ms));
        }
        if let Some(n) = self.shards {
            config.shards = n;
        }
        if let Some(n) = self.queue_capacity {
            config.queue_capacity = n;
        }
        if let Some(ms) = self.io_timeout_ms {
            config.io_timeout = Duration::from_millis(ms);
        }
        if let Some(ms) = self.drain_timeout_ms {
            config.drain_timeout = Duration::from_millis(ms);
        }
        config.state_file = self.state_file;
        if let Some(MarkerFlag(bit)) = self.marker_flag {
            config.marker_flag = bit;
        }
        config.validate()?;
        Ok(config)
    }

    /// Reads and parses the TOML file at `path`. Every failure (a missing
    /// or unreadable file, bad TOML, an unknown key) is one
    /// [`Error::InvalidConfig`] of one line naming the file, and the line
    /// and column for a parse error.
    pub fn load(path: &std::path::Path) -> Result<FileConfig> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::InvalidConfig(format!("cannot read {}: {e}", path.display())))?;
        Self::parse(&text).map_err(|e| Error::InvalidConfig(format!("{}: {e}", path.display())))
    }

    /// Parses a TOML document; the error is one line (`line L, column C:
    /// what`), without toml's multi-line excerpt.
    pub fn parse(text: &str) -> std::result::Result<FileConfig, String> {
        toml::from_str(text).map_err(|e| {
            let what = e.message().trim().replace('\n', " ");
            match e.span() {
                Some(span) => {
                    let before = text.get(..span.start).unwrap_or(text);
                    let line = before.matches('\n').count() + 1;
                    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                    format!("line {line}, column {column}: {what}")
                }
                None => what,
            }
        })
    }
}

/// `marker_flag` in the TOML file: a number or a `0x…` string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "MarkerFlagText")]
pub struct MarkerFlag(pub u32);

#[derive(Deserialize)]
#[serde(untagged)]
enum MarkerFlagText {
    Number(u32),
    Text(String),
}

impl TryFrom<MarkerFlagText> for MarkerFlag {
    type Error = String;
    fn try_from(t: MarkerFlagText) -> std::result::Result<Self, String> {
        match t {
            MarkerFlagText::Number(n) => Ok(MarkerFlag(n)),
            MarkerFlagText::Text(s) => parse_flag(&s).map(MarkerFlag),
        }
    }
}

/// A flags value written in decimal or `0x` hex.
pub fn parse_flag(text: &str) -> std::result::Result<u32, String> {
    let t = text.trim();
    let parsed = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(&hex.replace('_', ""), 16),
        None => t.parse::<u32>(),
    };
    parsed.map_err(|e| format!("{text:?} is not a 32-bit flags value: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        let ms = |m: &str, s: &[&str]| {
            Config::new(Topology::MasterSlave {
                master: m.into(),
                slaves: s.iter().map(|s| s.to_string()).collect(),
            })
        };
        assert!(ms("a:1", &["b:2"]).validate().is_ok());
        assert!(ms("a:1", &[]).validate().is_err());
        assert!(ms("a:1", &["a:1"]).validate().is_err());
        assert!(ms("a", &["b:2"]).validate().is_err());
        assert!(ms("a:x", &["b:2"]).validate().is_err());
        // URLs (TLS, credentials) as well as host:port; the same server
        // twice is caught through a URL too, and no error shows a password.
        assert!(
            ms(
                "memcacheds://u:pw@a:1?ca=/ca.pem",
                &["memcached://u:pw@b:2"]
            )
            .validate()
            .is_ok()
        );
        assert!(ms("memcached://u:pw@a:1", &["a:1"]).validate().is_err());
        for bad in ["memcached://u:s3cret@a:1,b:2", "memcached://u:s3cret@a:x"] {
            let e = ms(bad, &["c:3"]).validate().unwrap_err().to_string();
            assert!(!e.contains("s3cret"), "{e}");
        }
        let mesh = Config::new(Topology::Mesh {
            peers: vec!["a:1".into()],
        });
        assert!(mesh.validate().is_err());
        let mut c = ms("a:1", &["b:2"]);
        c.shards = 0;
        assert!(c.validate().is_err());
        let mut c = ms("a:1", &["b:2"]);
        c.resync_interval = Some(Duration::ZERO);
        assert!(c.validate().is_err());
        for (bit, ok) in [
            (0x4000_0000, true),
            (0x0001_0000, true),
            (0x8000_0000, true),
            (0, false),
            (0x4000_0001, false),
            (0x0100, false),
            (0x0001, false),
            (0x0002, false),
            (0x0004, false),
            (0x0080, false),
            (0x6000_0000, false),
        ] {
            let mut c = ms("a:1", &["b:2"]);
            c.marker_flag = bit;
            assert_eq!(c.validate().is_ok(), ok, "{bit:#x}");
        }
    }

    #[test]
    fn file_config_rejects_unknown_keys() {
        let f: FileConfig = toml::from_str("master = \"a:1\"\nslaves = [\"b:2\"]\n").unwrap();
        assert_eq!(f.master.as_deref(), Some("a:1"));
        assert!(toml::from_str::<FileConfig>("mastr = \"a:1\"").is_err());
        let f: FileConfig = toml::from_str("marker_flag = \"0x0100_0000\"").unwrap();
        assert_eq!(f.marker_flag, Some(MarkerFlag(0x0100_0000)));
        let f: FileConfig = toml::from_str("marker_flag = 65536").unwrap();
        assert_eq!(f.marker_flag, Some(MarkerFlag(0x1_0000)));
        assert!(toml::from_str::<FileConfig>("marker_flag = \"0xzz\"").is_err());
        let e = FileConfig::parse("shards = 2\nmastr = \"a:1\"\n").unwrap_err();
        assert!(
            e.starts_with("line 2, column 1: unknown field `mastr`"),
            "{e}"
        );
        assert!(!e.contains('\n'), "{e}");
    }
}
