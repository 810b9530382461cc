//! The outside floor and the peers, each beside ours in the same run
//! (`cargo xtask bench` starts the servers and writes the report):
//!
//! - `memcached/memcslap_pair/N`: libmemcached's `memcslap` (Debian
//!   `libmemcached-tools`), N threads: its `set` test, then its `get` test,
//!   as pairs per second (`keys / (set secs + get secs)`); it reports no
//!   latencies. Its values are its own random ones, not our session bytes.
//!   Beside it, `memcached/ours_raw_pair/N`: our client's `set`+`get` of a
//!   stored session's bytes, N tasks. Also `memcached/memcslap_get/N`
//!   (its `get` test alone) beside `memcached/ours_raw_get/N`: our `get`
//!   of one stored session per task. Ours run in each connection mode:
//!   adaptive (the default), and as `*_multiplexed` (every request on the
//!   shared connections) and `*_pooled` (one request per connection).
//! - `memcached/perl_load_save/N`: the Perl original's path (`perl/peer.pl`:
//!   `Cache::Memcached` get, thaw, change a field, freeze, set of a
//!   10-field hash, flags 1) in N processes, one session each. Beside it,
//!   `memcached/ours_load_save/N`: `Sessions::load`, one field changed,
//!   `save`, with the Storable codec (the same bytes and flags), N tasks.
//!   Afterwards the Perl sessions must still carry flags 1.
//! - `memory/tower_*` and `memory/ours_*`: tower-sessions' `MemoryStore`
//!   (`SessionStore` create / load / load+save / delete of a 10-field
//!   record) against ours on `MemoryStore` through `Sessions`.
//!
//! Each `ours_*` row names its peer's row as baseline (ratio = ours / peer),
//! with the target where it gives one.
//!
//! Not measured here: the original module itself (Apache::Session::Memorycached
//! is not packaged by Debian; `peer.pl` makes the calls it makes).
//! tower-sessions' Redis store has a section of its own,
//! `redis_peers.rs`, beside ours on Redis and on memcached.

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use backend_memcached::MemcachedStore;
use memorycached_bench::ten_fields;
use serde_json::{Map, Value, json};
use session_core::{Codec, MemoryStore, MemoryStoreConfig, Sessions, SessionsConfig, Store, Ttl};
use test_support::bench::{self, BenchEnv, Output, Pool, Row, Sample};
use tower_sessions_core::SessionStore;
use tower_sessions_core::session::{Id, Record};

/// The allocator our binaries use (see the workspace manifest); both sides
/// of every comparison in this process run on it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Concurrency levels (tasks, threads or processes).
const LEVELS: [usize; 3] = [1, 16, 64];
/// Most operations one task makes in one measurement.
const MAX_OPS_PER_TASK: u64 = 1_000_000;

/// Runs memcslap's `test` with `threads` threads and `per_thread` keys
/// each; returns (keys, seconds) from its "Time to TEST N keys by" line.
fn memcslap(
    server: &str,
    test: &str,
    threads: usize,
    per_thread: usize,
) -> anyhow::Result<(f64, f64)> {
    let output = Command::new("memcslap")
        .args(["-s", server, "-t", test, "-N"])
        .arg(format!("--concurrency={threads}"))
        .arg(format!("--execute-number={per_thread}"))
        .stdin(Stdio::null())
        .output()
        .context("running memcslap: install it with `apt-get install libmemcached-tools`")?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "memcslap -t {test} failed ({}): {text}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let prefix = format!("Time to {test}");
    for line in text
        .lines()
        .filter(|l| l.starts_with(&prefix) && l.contains(" keys by "))
    {
        let words: Vec<&str> = line.split_whitespace().collect();
        let keys = words.get(3).and_then(|w| w.parse::<f64>().ok());
        let secs = words
            .iter()
            .rev()
            .nth(1)
            .and_then(|w| w.parse::<f64>().ok());
        if let (Some(keys), Some(secs)) = (keys, secs) {
            return Ok((keys, secs));
        }
    }
    bail!("no \"{prefix} N keys by\" line in memcslap's output: {text}")
}

async fn bench_memcslap(
    out: &mut Output,
    env: &BenchEnv,
    server: &str,
    level: usize,
) -> anyhow::Result<()> {
    let total = if env.quick { 4_000 } else { 100_000 };
    let per_thread = (total / level).max(200);
    let server = server.to_owned();
    let ((keys, set_secs), (_, get_secs)) = tokio::task::spawn_blocking(move || {
        anyhow::Ok((
            memcslap(&server, "set", level, per_thread)?,
            memcslap(&server, "get", level, per_thread)?,
        ))
    })
    .await??;
    for (name, secs) in [("pair", set_secs + get_secs), ("get", get_secs)] {
        out.line(&json!({
            "name": format!("memcached/memcslap_{name}/{level}"),
            "ops": keys,
            "secs": secs,
            "ops_per_s": keys / secs.max(1e-9),
            "p50_us": null,
            "p99_us": null,
            "errors": 0,
            "first_error": null,
        }))?;
    }
    Ok(())
}

/// Seconds since the epoch, as Perl's `Time::HiRes::time` counts.
fn epoch() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// `procs` Perl processes running `peer.pl` for `time`, started together.
async fn bench_perl(
    out: &mut Output,
    env: &BenchEnv,
    server: &str,
    store: &MemcachedStore,
    procs: usize,
) -> anyhow::Result<()> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/perl/peer.pl");
    let tag = format!("{:x}", std::process::id());
    let mut children = Vec::new();
    for p in 0..procs {
        let key = format!("perlbench{tag}x{procs}x{p}");
        let mut child = Command::new("perl")
            .arg(script)
            .args([server, &key])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting perl: install `apt-get install perl libcache-memcached-perl`")?;
        let stdout = child.stdout.take().context("perl's stdout")?;
        children.push((key, child, BufReader::new(stdout)));
    }
    // Every process has loaded its modules and stored its session: start
    // them together, shortly from now.
    let children = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let mut ready = Vec::new();
        for (key, child, mut stdout) in children {
            let mut line = String::new();
            stdout.read_line(&mut line)?;
            if line.trim() != "ready" {
                bail!("perl peer.pl did not get ready (said {line:?}); is libcache-memcached-perl installed?");
            }
            ready.push((key, child, stdout));
        }
        Ok(ready)
    })
    .await??;
    let start = epoch() + 0.2;
    let end = start + env.time.as_secs_f64().max(1.0);
    let mut sample = Sample::default();
    let mut keys = Vec::new();
    let mut waiting = Vec::new();
    for (key, mut child, stdout) in children {
        let mut stdin = child.stdin.take().context("perl's stdin")?;
        writeln!(stdin, "{start:.6} {end:.6}")?;
        waiting.push((key, child, stdout));
    }
    for (key, mut child, mut stdout) in waiting {
        let (text, status) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let mut text = String::new();
            stdout.read_to_string(&mut text)?;
            Ok((text, child.wait()?))
        })
        .await??;
        if !status.success() {
            bail!("perl peer.pl failed ({status}): {text}");
        }
        let mut words = text.split_whitespace();
        let mut number = |what: &str| -> anyhow::Result<u64> {
            words
                .next()
                .and_then(|w| w.parse().ok())
                .with_context(|| format!("no {what} in peer.pl's output: {text}"))
        };
        sample.ops += number("ops")?;
        sample.errors += number("errors")?;
        let first = words.next().unwrap_or("-");
        if first != "-" && sample.first_error.is_none() {
            sample.first_error = Some(format!("perl: {first}"));
        }
        for w in words {
            sample.latencies.push(Duration::from_micros(
                w.parse().context("a latency of peer.pl")?,
            ));
        }
        keys.push(key);
    }
    sample.elapsed = Duration::from_secs_f64(end - start);
    // What the Perl side stored must be what the original stores.
    for key in keys {
        match store.get(&key).await? {
            Some(v) if v.flags == 1 => {}
            Some(v) => sample.fail_check(format!("{key} has flags {}, not 1 (Storable)", v.flags)),
            None => sample.fail_check(format!("{key} is gone after the run")),
        }
    }
    out.record(
        Row::new(format!("memcached/perl_load_save/{procs}")),
        sample,
    )?;
    Ok(())
}

/// The operations compared on both sides.
#[derive(Clone, Copy)]
enum Op {
    RawPair,
    /// One `get` of a stored session's bytes.
    RawGet,
    LoadSave,
    Create,
    Load,
    Delete,
}

/// Ours and tower-sessions' state at one level.
struct Ctx {
    sessions: Sessions,
    /// Each task's own session id (ours).
    own: Vec<String>,
    /// Each task's own record id (tower).
    tower_own: Vec<Id>,
    tower: tower_sessions_memory_store::MemoryStore,
    /// The session bytes for the raw pairs.
    value: Vec<u8>,
    flags: u32,
    /// Ids made by `create` (ours, tower), shared by the tasks.
    created: Pool<String>,
    tower_created: Pool<Id>,
    tag: String,
}

fn record_of(fields: Map<String, Value>) -> Record {
    Record {
        id: Id::default(),
        data: fields.into_iter().collect::<HashMap<_, _>>(),
        expiry_date: time::OffsetDateTime::now_utc() + time::Duration::seconds(600),
    }
}

impl Ctx {
    async fn new(sessions: Sessions, tasks: usize) -> anyhow::Result<Ctx> {
        let tower = tower_sessions_memory_store::MemoryStore::default();
        let (mut own, mut tower_own) = (Vec::new(), Vec::new());
        for t in 0..tasks {
            let s = sessions
                .create_with(ten_fields(&format!("peer{t}")), None)
                .await?;
            own.push(s.id().as_str().to_owned());
            let mut r = record_of(ten_fields(&format!("peer{t}")));
            tower.create(&mut r).await?;
            tower_own.push(r.id);
        }
        let first = own.first().context("no tasks")?;
        let stored = sessions
            .servers()
            .get(&sessions.key_of(&session_core::SessionId::parse(first)?))
            .await?
            .context("the session just created is not in the store")?;
        Ok(Ctx {
            sessions,
            own,
            tower_own,
            tower,
            value: stored.value,
            flags: stored.flags,
            created: Pool::default(),
            tower_created: Pool::default(),
            tag: format!("{:x}x{tasks}", std::process::id()),
        })
    }

    async fn ours(self: Arc<Self>, op: Op, t: usize, i: u64) -> anyhow::Result<()> {
        let own = &self.own[t];
        match op {
            Op::RawPair => {
                let store = self.sessions.servers();
                let key = format!("peerbench{}raw{t}x{}", self.tag, i % 256);
                store
                    .set(&key, &self.value, self.flags, Ttl::seconds(600))
                    .await?;
                store.get(&key).await?.context("raw value gone")?;
            }
            Op::RawGet => {
                let key = format!("peerbench{}get{t}", self.tag);
                let store = self.sessions.servers();
                if store.get(&key).await?.is_none() {
                    // First call of this task (or evicted): write it once.
                    store
                        .set(&key, &self.value, self.flags, Ttl::seconds(600))
                        .await?;
                }
            }
            Op::LoadSave => {
                let mut s = self.sessions.load(own).await?.context("session gone")?;
                s.insert("seen", i)?;
                self.sessions.save(&mut s).await?;
            }
            Op::Create => {
                let s = self
                    .sessions
                    .create_with(ten_fields(&format!("made{t}x{i}")), None)
                    .await?;
                self.created.push(s.id().as_str().to_owned());
            }
            Op::Load => {
                self.sessions.load(own).await?.context("session gone")?;
            }
            Op::Delete => {
                let id = self.created.pop().context("no created session left")?;
                if !self.sessions.delete_id(&id).await? {
                    bail!("delete_id({id}): the session was not there");
                }
            }
        }
        Ok(())
    }

    async fn tower(self: Arc<Self>, op: Op, t: usize, i: u64) -> anyhow::Result<()> {
        let own = &self.tower_own[t];
        match op {
            Op::RawPair | Op::RawGet => bail!("tower-sessions has no raw operations"),
            Op::LoadSave => {
                let mut r = self.tower.load(own).await?.context("record gone")?;
                r.data.insert("seen".to_owned(), json!(i));
                self.tower.save(&r).await?;
            }
            Op::Create => {
                let mut r = record_of(ten_fields(&format!("made{t}x{i}")));
                self.tower.create(&mut r).await?;
                self.tower_created.push(r.id);
            }
            Op::Load => {
                self.tower.load(own).await?.context("record gone")?;
            }
            Op::Delete => {
                let id = self.tower_created.pop().context("no created record left")?;
                self.tower.delete(&id).await?;
            }
        }
        Ok(())
    }
}

/// Measures `op` on one side; `delete` is bounded by what `create` made.
async fn measure<F, Fut>(env: &BenchEnv, tasks: usize, max: Option<u64>, op: F) -> Sample
where
    F: Fn(usize, u64) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    match max {
        Some(max) => bench::drive(tasks, env.time, max, op).await,
        None => {
            bench::drive(tasks, env.warm, MAX_OPS_PER_TASK, op.clone()).await;
            bench::drive(tasks, env.time, MAX_OPS_PER_TASK, op).await
        }
    }
}

/// Ours against tower-sessions on memory: create, load, load+save, delete.
async fn bench_tower(
    out: &mut Output,
    env: &BenchEnv,
    sessions: &Sessions,
    tasks: usize,
) -> anyhow::Result<()> {
    let ctx = Arc::new(Ctx::new(sessions.clone(), tasks).await?);
    for (label, op) in [
        ("create", Op::Create),
        ("load", Op::Load),
        ("load_save", Op::LoadSave),
        ("delete", Op::Delete),
    ] {
        let peer = format!("memory/tower_{label}/{tasks}");
        let (max_peer, max_ours) = match op {
            Op::Delete => (
                Some(ctx.tower_created.per_task(tasks)),
                Some(ctx.created.per_task(tasks)),
            ),
            _ => (None, None),
        };
        let c = ctx.clone();
        let sample = measure(env, tasks, max_peer, move |t, i| c.clone().tower(op, t, i)).await;
        out.record(Row::new(&peer), sample)?;
        let c = ctx.clone();
        let sample = measure(env, tasks, max_ours, move |t, i| c.clone().ours(op, t, i)).await;
        out.record(
            Row::new(format!("memory/ours_{label}/{tasks}"))
                .baseline(peer)
                .target(1.0),
            sample,
        )?;
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let env = BenchEnv::from_env()?;
    let server = BenchEnv::servers(bench::MEMCACHED_ENV)?.remove(0);
    let mut out = env.output()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let store = MemcachedStore::from_url(&format!("memcached://{server}?pool_size=64"))?;
        let in_mode = |mode: &str| {
            MemcachedStore::from_url(&format!("memcached://{server}?mode={mode}&pool_size=64"))
        };
        let storable_config = SessionsConfig {
            timeout: Ttl::seconds(600),
            codec: Codec::Storable,
            ..SessionsConfig::default()
        };
        let storable = Sessions::new(Arc::new(store.clone()), storable_config.clone())?;
        let storable_multiplexed =
            Sessions::new(Arc::new(in_mode("multiplexed")?), storable_config.clone())?;
        let storable_pooled = Sessions::new(Arc::new(in_mode("pooled")?), storable_config)?;
        let memory: Arc<dyn Store> = Arc::new(MemoryStore::with_config(MemoryStoreConfig {
            max_bytes: 2 << 30,
            ..MemoryStoreConfig::default()
        })?);
        let in_memory = Sessions::new(
            memory,
            SessionsConfig {
                timeout: Ttl::seconds(600),
                ..SessionsConfig::default()
            },
        )?;
        for level in LEVELS {
            println!(
                "-- level {level}: memcslap, our raw pair, Perl, ours load+save, tower-sessions"
            );
            bench_memcslap(&mut out, &env, &server, level).await?;
            let ctx = Arc::new(Ctx::new(storable.clone(), level).await?);
            let multiplexed_ctx = Arc::new(Ctx::new(storable_multiplexed.clone(), level).await?);
            let pooled_ctx = Arc::new(Ctx::new(storable_pooled.clone(), level).await?);
            for (suffix, ctx) in [
                ("", &ctx),
                ("_multiplexed", &multiplexed_ctx),
                ("_pooled", &pooled_ctx),
            ] {
                for (op, name, floor) in [
                    (Op::RawPair, "raw_pair", "pair"),
                    (Op::RawGet, "raw_get", "get"),
                ] {
                    let c = ctx.clone();
                    let sample =
                        measure(&env, level, None, move |t, i| c.clone().ours(op, t, i)).await;
                    let mut row = Row::new(format!("memcached/ours_{name}{suffix}/{level}"))
                        .baseline(format!("memcached/memcslap_{floor}/{level}"));
                    // The client's aim: 1.5x memcslap's gets at 64.
                    if (suffix, name, level) == ("", "raw_get", 64) {
                        row = row.target(1.5);
                    }
                    out.record(row, sample)?;
                }
            }
            bench_perl(&mut out, &env, &server, &store, level).await?;
            let c = ctx.clone();
            let sample = measure(&env, level, None, move |t, i| {
                c.clone().ours(Op::LoadSave, t, i)
            })
            .await;
            let mut row = Row::new(format!("memcached/ours_load_save/{level}"))
                .baseline(format!("memcached/perl_load_save/{level}"));
            // The targets: >= 5x the Perl peer at 1 task, >= 20x at 64.
            match level {
                1 => row = row.target(5.0),
                64 => row = row.target(20.0),
                _ => {}
            }
            out.record(row, sample)?;
            bench_tower(&mut out, &env, &in_memory, level).await?;
        }
        anyhow::Ok(())
    })?;
    Ok(())
}
