//! Every session operation at 1, 16 and 64 concurrent tasks on each store,
//! beside the floor: raw `set`+`get` pairs through the very same store, in
//! the same run (`cargo xtask bench` starts the servers and writes the
//! report; absolute rates on a shared machine drift, ratios hold).
//!
//! Stores (the row's first name component): `memory` (`MemoryStore`),
//! `memcached1` (one server), `memcached3` (three, routed as Perl routes),
//! `local` (one server plus a second memcached as the read-first local
//! cache), all in the default (adaptive) connection mode, and one server in
//! each of the two pure modes, for the operations that tell the modes apart
//! ([`MODE_OPS`]): `memcached1_multiplexed` (every request on the shared
//! connections) and `memcached1_pooled` (one request per connection at a
//! time). Every `Sessions` names `uid` as its principal, except
//! `memcached1_plain`'s (one server, adaptive mode, [`PLAIN_OPS`]): without
//! a principal there is no reverse key to write, so a save is one request,
//! and load + save is two, like the floor's pair. (With the default
//! `reverse_key_refresh`, a save that keeps its user writes the reverse key
//! only once a minute, so after a task's first save the two differ by the
//! principal's bookkeeping, not by a request.)
//!
//! Operations (one operation = what one task does per loop), each task on
//! its own 10-field session (about 400 bytes), so tasks never conflict:
//! - `raw_pair`: `Store::set` + `Store::get` of those bytes: the floor.
//! - `create`: `create_with` of a new session (an `add`, plus the reverse
//!   key of its principal).
//! - `load`: `load` of the task's session.
//! - `save_changed`: `load`, one field changed, `save` (a conditional write).
//! - `save_unchanged`: `load`, `save` with nothing changed (no write): a
//!   request that only reads, as the original's tie/untie does.
//! - `update`: `Sessions::update` changing one field.
//! - `find_by_principal`: the session of the task's user, by its reverse key.
//! - `delete`: `delete_id` of sessions made by `create` (each task takes
//!   an equal share of them; no warm-up, which would use them up).
//!
//! Every row but `raw_pair` names `raw_pair` at the same concurrency as its
//! baseline. The operations of one store and level are measured in turns
//! (six slices each, every operation once per round; `delete` last), so a
//! neighbour's load on a shared machine falls on a row and its baseline
//! alike. A failed operation is counted and reported, never hidden.
//!
//! For profiling one row by hand, `MEMORYCACHED_BENCH_ROWS=memcached1/save_changed/64`
//! (a comma-separated list of substrings) measures only the rows whose name
//! contains one of them (their baselines are then missing from the output).
//!
//! For counting instructions (`valgrind --tool=callgrind`, repeatable on a
//! loaded machine where times are not), `MEMORYCACHED_BENCH_COUNT=<op>:<n>`
//! runs only `n` operations one after the other on one thread and exits:
//! `load`, `save` (load, one field changed, save) or `psave` (the same
//! with `uid` as principal), on a `MemoryStore`, or on the store of
//! `MEMORYCACHED_BENCH_COUNT_STORE` (a `memcached://` URL); `tower_load`
//! and `tower_save` do the same on tower-sessions' `MemoryStore`, the
//! peer of the `memory/…` rows of the peers bench. Two runs with
//! different `n` give the cost of one operation without the start-up
//! (`docs/performance.md`).

use std::sync::Arc;

use anyhow::{Context as _, bail};
use backend_memcached::MemcachedStore;
use memorycached_bench::ten_fields;
use session_core::{MemoryStore, MemoryStoreConfig, Sessions, SessionsConfig, Store, Ttl};
use test_support::bench::{self, BenchEnv, Output, Pool, Row, Sample};

/// The allocator our binaries use (see the workspace manifest); every row
/// of this process, floor included, runs on it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Concurrency levels measured.
const TASKS: [usize; 3] = [1, 16, 64];
/// Operations measured, in order (`delete` last: it removes `create`'s sessions).
const OPS: [&str; 8] = [
    "raw_pair",
    "create",
    "load",
    "save_changed",
    "save_unchanged",
    "update",
    "find_by_principal",
    "delete",
];
/// Operations measured on `memcached1_plain` (no principal): there a
/// `save_changed` is two round trips (`get`, then `cas`), like `raw_pair`'s
/// `set` + `get`, so the ratio is the session layer's cost alone.
const PLAIN_OPS: [&str; 4] = ["raw_pair", "load", "save_changed", "update"];
/// Operations measured in each pure connection mode too.
const MODE_OPS: [&str; 5] = ["raw_pair", "create", "load", "save_changed", "update"];
/// Most operations one task makes in one measurement.
const MAX_OPS_PER_TASK: u64 = 1_000_000;
/// Slices each operation's measurement is cut into (see `bench_store`).
const ROUNDS: u32 = 6;

/// One store's sessions, at one concurrency level.
struct Ctx {
    sessions: Sessions,
    store: Arc<dyn Store>,
    /// Each task's own session id; its user is `own{t}`.
    own: Vec<String>,
    /// The bytes and flags one session is stored as: what `raw_pair` writes.
    value: Vec<u8>,
    flags: u32,
    /// Ids `create` made, for `delete`.
    created: Pool<String>,
    /// Distinguishes this level's keys and users from other levels'.
    tag: String,
}

impl Ctx {
    async fn new(
        sessions: Sessions,
        store: Arc<dyn Store>,
        tasks: usize,
        tag: String,
    ) -> anyhow::Result<Ctx> {
        let mut own = Vec::new();
        for t in 0..tasks {
            let s = sessions
                .create_with(ten_fields(&format!("own{tag}x{t}")), None)
                .await?;
            own.push(s.id().as_str().to_owned());
        }
        let first = own.first().context("no tasks")?;
        let stored = sessions
            .servers()
            .get(&sessions.key_of(&session_core::SessionId::parse(first)?))
            .await?
            .context("the session just created is not in the store")?;
        Ok(Ctx {
            sessions,
            store,
            own,
            value: stored.value,
            flags: stored.flags,
            created: Pool::default(),
            tag,
        })
    }

    /// One operation `name` by task `t`, its `i`-th.
    async fn op(self: Arc<Self>, name: &'static str, t: usize, i: u64) -> anyhow::Result<()> {
        let own = &self.own[t];
        match name {
            "raw_pair" => {
                // A bounded key space per task: the servers do not fill up.
                let key = format!("bench{}raw{t}x{}", self.tag, i % 256);
                self.store
                    .set(&key, &self.value, self.flags, Ttl::seconds(600))
                    .await?;
                self.store.get(&key).await?.context("raw value gone")?;
            }
            "create" => {
                let user = format!("new{}x{t}x{i}", self.tag);
                let s = self.sessions.create_with(ten_fields(&user), None).await?;
                self.created.push(s.id().as_str().to_owned());
            }
            "load" => {
                self.sessions.load(own).await?.context("session gone")?;
            }
            "save_changed" | "save_unchanged" => {
                let mut s = self.sessions.load(own).await?.context("session gone")?;
                if name == "save_changed" {
                    s.insert("seen", i)?;
                }
                self.sessions.save(&mut s).await?;
            }
            "update" => {
                self.sessions
                    .update(own, |s| s.insert("counted", i).map(|_| ()))
                    .await?
                    .context("session gone")?;
            }
            "find_by_principal" => {
                let user = format!("own{}x{t}", self.tag);
                let found = self.sessions.find_by_principal(&user).await?;
                if found.as_ref().map(|s| s.id().as_str()) != Some(own.as_str()) {
                    bail!("find_by_principal({user}) did not find the task's session");
                }
            }
            "delete" => {
                let id = self.created.pop().context("no created session left")?;
                if !self.sessions.delete_id(&id).await? {
                    bail!("delete_id({id}): the session was not there");
                }
            }
            other => bail!("unknown operation {other}"),
        }
        Ok(())
    }
}

/// All operations at all levels on one store.
async fn bench_store(
    out: &mut Output,
    env: &BenchEnv,
    label: &str,
    sessions: Sessions,
    ops: &[&'static str],
) -> anyhow::Result<()> {
    let store = sessions.servers().clone();
    for tasks in TASKS {
        let row_of = |name: &str| format!("{label}/{name}/{tasks}");
        let measured: Vec<&'static str> = ops
            .iter()
            .copied()
            .filter(|name| bench::wanted(&row_of(name)))
            .collect();
        if measured.is_empty() {
            continue;
        }
        let tag = format!("{:x}{label}{tasks}", std::process::id());
        let ctx = Arc::new(Ctx::new(sessions.clone(), store.clone(), tasks, tag).await?);
        let op = |name: &'static str| {
            let ctx = ctx.clone();
            move |t: usize, i: u64| ctx.clone().op(name, t, i)
        };
        // Every operation but `delete` is measured in turns: ROUNDS slices
        // each, one operation after the other in every round, so a
        // neighbour's load on the shared machine falls on the floor and on
        // what is compared with it alike. `delete` uses up the sessions
        // `create` made, so it comes last, in one go.
        let (in_turns, last): (Vec<_>, Vec<_>) =
            measured.into_iter().partition(|name| *name != "delete");
        for &name in &in_turns {
            bench::drive(tasks, env.warm, MAX_OPS_PER_TASK, op(name)).await;
        }
        let mut samples: Vec<Sample> = in_turns.iter().map(|_| Sample::default()).collect();
        for _ in 0..ROUNDS {
            for (sample, &name) in samples.iter_mut().zip(&in_turns) {
                let slice = env.time / ROUNDS;
                sample.absorb(bench::drive(tasks, slice, MAX_OPS_PER_TASK, op(name)).await);
            }
        }
        let mut results: Vec<(&str, Sample)> = in_turns.into_iter().zip(samples).collect();
        for name in last {
            let max = ctx.created.per_task(tasks);
            results.push((name, bench::drive(tasks, env.time, max, op(name)).await));
        }
        for (name, sample) in results {
            let mut row = Row::new(row_of(name));
            if name != "raw_pair" {
                row = row.baseline(row_of("raw_pair"));
            }
            if label == "memcached1_plain" && name == "save_changed" && tasks == 64 {
                // The multiplexed-client issue's aim: load + save, two
                // round trips, at 0.9x of the floor's two at 64 tasks.
                row = row.target(0.9);
            }
            out.record(row, sample)?;
        }
    }
    Ok(())
}

/// `MEMORYCACHED_BENCH_COUNT=<op>:<n>` (see the crate docs): `n`
/// operations in a row, on one thread, for an instruction count.
fn count(spec: &str) -> anyhow::Result<()> {
    let (op, n) = spec
        .split_once(':')
        .context("MEMORYCACHED_BENCH_COUNT is <op>:<n>, e.g. load:4000")?;
    let n: u64 = n
        .parse()
        .context("MEMORYCACHED_BENCH_COUNT: n is a number")?;
    if let Some(op) = op.strip_prefix("tower_") {
        return count_tower(op, n);
    }
    if !["load", "save", "psave"].contains(&op) {
        bail!(
            "MEMORYCACHED_BENCH_COUNT: unknown operation {op:?} (load, save, psave, tower_load or tower_save)"
        );
    }
    let config = SessionsConfig {
        timeout: Ttl::seconds(600),
        principal: (op == "psave").then(|| "uid".into()),
        ..SessionsConfig::default()
    };
    let store: Arc<dyn Store> = match std::env::var("MEMORYCACHED_BENCH_COUNT_STORE") {
        Ok(url) => Arc::new(MemcachedStore::from_url(&url)?),
        Err(_) => Arc::new(MemoryStore::new()),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let sessions = Sessions::new(store, config)?;
        let id = sessions.create_with(ten_fields("own1"), None).await?;
        let id = id.id().as_str().to_owned();
        for i in 0..n {
            let mut s = sessions.load(&id).await?.context("session gone")?;
            if op != "load" {
                s.insert("seen", i)?;
                sessions.save(&mut s).await?;
            }
        }
        anyhow::Ok(())
    })
}

/// The counting mode's `tower_load` / `tower_save`: the same session (the
/// benches' ten fields), loaded (and saved with one field changed) `n`
/// times through tower-sessions' `MemoryStore`.
fn count_tower(op: &str, n: u64) -> anyhow::Result<()> {
    use tower_sessions_core::SessionStore as _;
    use tower_sessions_core::session::{Id, Record};
    if !["load", "save"].contains(&op) {
        bail!("MEMORYCACHED_BENCH_COUNT: unknown operation tower_{op} (tower_load or tower_save)");
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let store = tower_sessions_memory_store::MemoryStore::default();
        let mut record = Record {
            id: Id::default(),
            data: ten_fields("own1").into_iter().collect(),
            expiry_date: time::OffsetDateTime::now_utc() + time::Duration::seconds(600),
        };
        store.create(&mut record).await?;
        for i in 0..n {
            let mut r = store.load(&record.id).await?.context("record gone")?;
            if op == "save" {
                r.data.insert("seen".to_owned(), serde_json::json!(i));
                store.save(&r).await?;
            }
        }
        anyhow::Ok(())
    })
}

fn main() -> anyhow::Result<()> {
    if let Ok(spec) = std::env::var("MEMORYCACHED_BENCH_COUNT") {
        return count(&spec);
    }
    let env = BenchEnv::from_env()?;
    let cluster = BenchEnv::servers(bench::MEMCACHED_CLUSTER_ENV)?;
    let single = BenchEnv::servers(bench::MEMCACHED_ENV)?.remove(0);
    let local = BenchEnv::servers(bench::MEMCACHED_LOCAL_ENV)?.remove(0);
    let mut out = env.output()?;
    let config = SessionsConfig {
        timeout: Ttl::seconds(600),
        principal: Some("uid".into()),
        ..SessionsConfig::default()
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let memcached = |servers: &str| -> anyhow::Result<Arc<dyn Store>> {
            Ok(Arc::new(MemcachedStore::from_url(&format!(
                "memcached://{servers}?pool_size=64"
            ))?))
        };
        let in_mode = |mode: &str| -> anyhow::Result<Arc<dyn Store>> {
            Ok(Arc::new(MemcachedStore::from_url(&format!(
                "memcached://{single}?mode={mode}&pool_size=64"
            ))?))
        };
        // Room for every session the run creates (the default 64 MiB
        // refuses writes once full rather than evicting).
        let memory: Arc<dyn Store> = Arc::new(MemoryStore::with_config(MemoryStoreConfig {
            max_bytes: 2 << 30,
            ..MemoryStoreConfig::default()
        })?);
        let stores = [
            ("memory", Sessions::new(memory, config.clone())?, &OPS[..]),
            (
                "memcached1",
                Sessions::new(memcached(&single)?, config.clone())?,
                &OPS[..],
            ),
            (
                "memcached1_multiplexed",
                Sessions::new(in_mode("multiplexed")?, config.clone())?,
                &MODE_OPS[..],
            ),
            (
                "memcached1_pooled",
                Sessions::new(in_mode("pooled")?, config.clone())?,
                &MODE_OPS[..],
            ),
            (
                "memcached1_plain",
                Sessions::new(
                    memcached(&single)?,
                    SessionsConfig {
                        principal: None,
                        ..config.clone()
                    },
                )?,
                &PLAIN_OPS[..],
            ),
            (
                "memcached3",
                Sessions::new(memcached(&cluster.join(","))?, config.clone())?,
                &OPS[..],
            ),
            (
                "local",
                Sessions::new(memcached(&single)?, config.clone())?.with_local(memcached(&local)?),
                &OPS[..],
            ),
        ];
        for (label, sessions, ops) in stores {
            bench_store(&mut out, &env, label, sessions, ops).await?;
        }
        anyhow::Ok(())
    })?;
    out.record_own_peak_rss("ops benchmark process (MemoryStore + load generator)")?;
    Ok(())
}
