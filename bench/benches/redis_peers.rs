//! Ours on Redis against tower-sessions' Redis store, same server, same
//! run (`cargo xtask bench` starts the Redis and the Valkey and writes the
//! report):
//!
//! - `redis_peer/tower_{create,load,update}/N`: `tower-sessions-redis-store`
//!   (its `RedisStore` on a `fred` pool), through its `SessionStore`:
//!   `create` of a new 10-field record (`SET NX EXAT`), `load` of an
//!   existing one (`GET`), and `update` = load, one field changed, `save`
//!   (`SET XX EXAT`), N tasks.
//! - `redis_peer/ours_{create,load,update}/N`: the same three through our
//!   `Sessions` on `backend_redis::RedisStore` (`create_with` = `SET NX PX`;
//!   `load` = `GET` + `PTTL`; `update` = `load` + `save`, which writes
//!   with the `cas` script: conditional, where the peer's save is blind).
//!   Each row's baseline is the peer's row: ratio = ours / peer, target 1.
//! - `redis_peer/memcached_{create,load,update}/N`: the same three through
//!   our `Sessions` on one memcached (`backend_memcached::MemcachedStore`,
//!   default settings), against the same peer rows: the session store
//!   people move from, on the server it was made for, beside the Redis
//!   store they might move to. Target 1 (par) at 64 tasks.
//! - `{redis,valkey}_peer/ours_msgpack_{create,load,update}/N`: ours with
//!   the MessagePack codec, the peer's own format, against the same peer
//!   rows (no target: JSON is our default): the store compared without
//!   the difference of formats.
//! - `valkey_peer/{tower,ours,ours_msgpack}_{create,load,update}/N`: the
//!   peer and ours again, on Valkey 8.1, where our `save` is one `SET ...
//!   IFEQ` instead of the script (backend-redis's `ifeq.rs`).
//!
//! Each side first writes [`SESSIONS`] sessions of the bench crate's 10
//! fields (`ten_fields`); `load` and `update` pick among them in turn. Both
//! use the same number of connections (ours: `connections=1`, its
//! default; the peer: a fred `Pool` of 1 client). The two sides take
//! turns in [`ROUNDS`] short slices per operation and each row sums its
//! slices, so a neighbour's load on a shared machine falls on both alike.
//! Everything written is deleted at the end.
//!
//! By hand (add `MEMORYCACHED_BENCH_ROWS=ours_load/64` to measure only the
//! rows whose name contains one of its comma-separated parts, e.g. for
//! `perf`): `MEMORYCACHED_BENCH_REDIS=host:port` (a Redis nobody else
//! uses), `MEMORYCACHED_BENCH_VALKEY=host:port` (likewise a Valkey 8.1+),
//! `MEMORYCACHED_BENCH_MEMCACHED=host:port` (likewise a memcached),
//! `MEMORYCACHED_BENCH_OUT=file.jsonl`, then
//! `cargo bench -p memorycached-bench --bench redis_peers`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;
use backend_memcached::MemcachedStore;
use backend_redis::RedisStore;
use memorycached_bench::ten_fields;
use serde_json::{Map, Value, json};
use session_core::{Codec, SessionId, Sessions, SessionsConfig, Store, Ttl};
use test_support::bench::{self, BenchEnv, Output, Pool, Row, Sample};
use tower_sessions_core_014::SessionStore as _;
use tower_sessions_core_014::session::{Id, Record};
use tower_sessions_redis_store::RedisStore as TowerRedisStore;
use tower_sessions_redis_store::fred::prelude::{ClientLike as _, Config, KeysInterface as _};

/// The allocator our binaries use (see the workspace manifest); both sides
/// of every comparison in this process run on it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Sessions each side writes before measuring.
const SESSIONS: usize = 5000;
/// Concurrency levels.
const LEVELS: [usize; 2] = [1, 64];
/// Connections on each side.
const CONNECTIONS: usize = 1;
/// Slices each measurement is cut into, the two sides taking turns.
const ROUNDS: u32 = 6;
/// Most operations one task makes in one slice.
const MAX_OPS_PER_TASK: u64 = 1_000_000;
/// Lifetime of every session written here.
const TTL_SECS: u32 = 600;

type Fred = tower_sessions_redis_store::fred::clients::Pool;

#[derive(Clone, Copy)]
enum Op {
    Create,
    Load,
    Update,
}

/// One of our stores' sessions.
struct Side {
    sessions: Sessions,
    own: Vec<String>,
    created: Pool<String>,
}

impl Side {
    /// [`SESSIONS`] sessions written through `store` with `codec`.
    async fn new(store: Arc<dyn Store>, codec: Codec) -> anyhow::Result<Side> {
        let sessions = Sessions::new(
            store,
            SessionsConfig {
                timeout: Ttl::seconds(TTL_SECS),
                codec,
                ..SessionsConfig::default()
            },
        )?;
        let mut own = Vec::with_capacity(SESSIONS);
        for n in 0..SESSIONS {
            let s = sessions
                .create_with(ten_fields(&format!("user{n}")), None)
                .await?;
            own.push(s.id().as_str().to_owned());
        }
        Ok(Side {
            sessions,
            own,
            created: Pool::default(),
        })
    }
}

/// Who makes an operation: the peer, or one of our sides.
#[derive(Clone, Copy)]
enum Who {
    Tower,
    /// Ours on the Redis-protocol server, JSON (the default codec).
    Redis,
    /// Ours on the same server with MessagePack, the peer's format.
    MessagePack,
    /// Ours on memcached.
    Memcached,
}

/// Every side's state.
struct Ctx {
    /// `redis_peer` or `valkey_peer`: the rows' group.
    group: &'static str,
    redis: Side,
    msgpack: Side,
    /// Measured once, in the Redis run.
    memcached: Option<Side>,
    tower: TowerRedisStore<Fred>,
    theirs: Vec<Id>,
    tower_created: Pool<Id>,
    stamps: AtomicU64,
}

fn record_of(fields: Map<String, Value>) -> Record {
    Record {
        id: Id::default(),
        data: fields.into_iter().collect::<HashMap<_, _>>(),
        expiry_date: time::OffsetDateTime::now_utc() + time::Duration::seconds(TTL_SECS.into()),
    }
}

impl Ctx {
    /// A value never written before, so every update changes the session
    /// (a save of an unchanged session writes nothing).
    fn stamp(&self) -> u64 {
        self.stamps.fetch_add(1, Ordering::Relaxed)
    }

    /// The session task `t` uses for its `i`th operation: the tasks walk
    /// the sessions in turn, never two on one at a time.
    fn pick(n: usize, tasks: usize, t: usize, i: u64) -> usize {
        let per_task = (n / tasks).max(1);
        (t * per_task + (i as usize % per_task)) % n
    }

    /// Operation `op`, the `i`th of task `t` of `tasks`, made by `who`.
    async fn run(
        self: Arc<Self>,
        who: Who,
        op: Op,
        tasks: usize,
        t: usize,
        i: u64,
    ) -> anyhow::Result<()> {
        let side = match who {
            Who::Tower => return self.tower(op, tasks, t, i).await,
            Who::Redis => &self.redis,
            Who::MessagePack => &self.msgpack,
            Who::Memcached => self.memcached.as_ref().context("no memcached side")?,
        };
        match op {
            Op::Create => {
                let s = side
                    .sessions
                    .create_with(ten_fields(&format!("made{t}x{i}")), None)
                    .await?;
                side.created.push(s.id().as_str().to_owned());
            }
            Op::Load => {
                let id = &side.own[Self::pick(side.own.len(), tasks, t, i)];
                side.sessions.load(id).await?.context("session gone")?;
            }
            Op::Update => {
                let id = &side.own[Self::pick(side.own.len(), tasks, t, i)];
                let mut s = side.sessions.load(id).await?.context("session gone")?;
                s.insert("seen", self.stamp())?;
                side.sessions.save(&mut s).await?;
            }
        }
        Ok(())
    }

    async fn tower(&self, op: Op, tasks: usize, t: usize, i: u64) -> anyhow::Result<()> {
        match op {
            Op::Create => {
                let mut r = record_of(ten_fields(&format!("made{t}x{i}")));
                self.tower.create(&mut r).await?;
                self.tower_created.push(r.id);
            }
            Op::Load => {
                let id = &self.theirs[Self::pick(self.theirs.len(), tasks, t, i)];
                self.tower.load(id).await?.context("record gone")?;
            }
            Op::Update => {
                let id = &self.theirs[Self::pick(self.theirs.len(), tasks, t, i)];
                let mut r = self.tower.load(id).await?.context("record gone")?;
                r.data.insert("seen".to_owned(), json!(self.stamp()));
                self.tower.save(&r).await?;
            }
        }
        Ok(())
    }
}

async fn level(
    out: &mut Output,
    env: &BenchEnv,
    ctx: &Arc<Ctx>,
    tasks: usize,
) -> anyhow::Result<()> {
    for (label, op) in [
        ("create", Op::Create),
        ("load", Op::Load),
        ("update", Op::Update),
    ] {
        let group = ctx.group;
        let peer = format!("{group}/tower_{label}/{tasks}");
        // (who, row, its target); every row of ours is divided by the peer's.
        let mut columns = vec![
            (Who::Tower, peer.clone(), None),
            (
                Who::Redis,
                format!("{group}/ours_{label}/{tasks}"),
                Some(1.0),
            ),
            (
                Who::MessagePack,
                format!("{group}/ours_msgpack_{label}/{tasks}"),
                None,
            ),
        ];
        if ctx.memcached.is_some() {
            // The multiplexed client's aim: at least the peer's rate at 64.
            let target = (tasks == 64).then_some(1.0);
            columns.push((
                Who::Memcached,
                format!("{group}/memcached_{label}/{tasks}"),
                target,
            ));
        }
        columns.retain(|(_, row, _)| bench::wanted(row));
        let driver = |who: Who| {
            let c = ctx.clone();
            move |t, i| c.clone().run(who, op, tasks, t, i)
        };
        for (who, _, _) in &columns {
            bench::drive(tasks, env.warm, MAX_OPS_PER_TASK, driver(*who)).await;
        }
        let slice = env.time / ROUNDS;
        let mut samples: Vec<Sample> = columns.iter().map(|_| Sample::default()).collect();
        for _ in 0..ROUNDS {
            for ((who, _, _), sample) in columns.iter().zip(&mut samples) {
                sample.absorb(bench::drive(tasks, slice, MAX_OPS_PER_TASK, driver(*who)).await);
            }
        }
        for ((who, row, target), sample) in columns.into_iter().zip(samples) {
            let mut row = Row::new(row);
            if !matches!(who, Who::Tower) {
                row = row.baseline(&peer);
            }
            if let Some(target) = target {
                row = row.target(target);
            }
            out.record(row, sample)?;
        }
    }
    Ok(())
}

/// Deletes `keys` in batches.
async fn delete_all(fred: &Fred, keys: Vec<String>) -> anyhow::Result<()> {
    for chunk in keys.chunks(1000) {
        let _: i64 = fred.del(chunk.to_vec()).await?;
    }
    Ok(())
}

/// Every row of `group` against the Redis-protocol server at `addr`, and
/// ours on `memcached` if given.
async fn run(
    out: &mut Output,
    env: &BenchEnv,
    group: &'static str,
    addr: &str,
    memcached: Option<&str>,
) -> anyhow::Result<()> {
    let prefix = format!("peer{}:", SessionId::generate(16)?);
    let store: Arc<dyn Store> = Arc::new(RedisStore::from_url(&format!(
        "redis://{addr}?prefix={prefix}&connections={CONNECTIONS}"
    ))?);
    let config = Config::from_url(&format!("redis://{addr}"))?;
    let fred = Fred::new(config, None, None, None, CONNECTIONS)?;
    fred.init().await?;
    let tower = TowerRedisStore::new(fred.clone());

    println!("-- writing {SESSIONS} sessions on each side");
    let redis = Side::new(store.clone(), Codec::Json).await?;
    let msgpack = Side::new(store, Codec::MessagePack).await?;
    let memcached = match memcached {
        Some(addr) => Some(
            Side::new(
                Arc::new(MemcachedStore::from_url(&format!("memcached://{addr}"))?),
                Codec::Json,
            )
            .await?,
        ),
        None => None,
    };
    let mut theirs = Vec::with_capacity(SESSIONS);
    for n in 0..SESSIONS {
        let mut r = record_of(ten_fields(&format!("user{n}")));
        tower.create(&mut r).await?;
        theirs.push(r.id);
    }
    let ctx = Arc::new(Ctx {
        group,
        redis,
        msgpack,
        memcached,
        tower,
        theirs,
        tower_created: Pool::default(),
        stamps: AtomicU64::new(0),
    });
    for tasks in LEVELS {
        println!(
            "-- {group}, level {tasks}: create, load, update; tower-sessions-redis-store, ours \
             (JSON, MessagePack){}",
            if ctx.memcached.is_some() {
                ", ours on memcached"
            } else {
                ""
            }
        );
        level(out, env, &ctx, tasks).await?;
    }

    // Leave the server as we found it.
    let mut theirs: Vec<String> = ctx.theirs.iter().map(Id::to_string).collect();
    while let Some(id) = ctx.tower_created.pop() {
        theirs.push(id.to_string());
    }
    delete_all(&fred, theirs).await?;
    // Ours: every key under the store's prefix, whatever `Sessions` wrote.
    // (The memcached sessions expire with their TTL; `cargo xtask bench`
    // runs on a memcached of its own.)
    let store = ctx.redis.sessions.servers();
    let (mut ours, mut cursor) = (Vec::new(), None);
    loop {
        let page = store.scan("", cursor.as_ref(), 1000).await?;
        ours.extend(page.keys.into_iter().map(|k| format!("{prefix}{k}")));
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    delete_all(&fred, ours).await?;
    fred.quit().await?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let env = BenchEnv::from_env()?;
    let redis = BenchEnv::servers(bench::REDIS_ENV)?.remove(0);
    let valkey = BenchEnv::servers(bench::VALKEY_ENV)?.remove(0);
    let memcached = BenchEnv::servers(bench::MEMCACHED_ENV)?.remove(0);
    let mut out = env.output()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(&mut out, &env, "redis_peer", &redis, Some(&memcached)))?;
    rt.block_on(run(&mut out, &env, "valkey_peer", &valkey, None))
}
