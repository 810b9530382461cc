//! Contention and principal-index costs, 64 tasks on one memcached, one
//! shared `Sessions` (as in one server process), in the same run as their
//! baselines (`cargo xtask bench` starts memcached and prints the ratios).
//!
//! Scenarios (one operation = what one task does per loop):
//! - `uncontended_save`: each task loads its *own* session, sets a field,
//!   saves (a `get` and a `cas`).
//! - `contended_save`: every task loads *one shared* session, sets its own
//!   field, saves: the per-session turns and the three-way merge at work.
//!   Afterwards every task's last value must be in the session.
//! - `update_counter`: every task increments one counter of one session
//!   through `Sessions::update`. Afterwards the counter must equal the
//!   number of increments made.
//! - `login_plain` / `login_indexed`: `create_with` of a session naming a
//!   user (4096 users), with `principal` set, without and with
//!   `principal_index` (the index record is read and written too).
//! - `save_plain` / `save_indexed`: load, change a field, save an existing
//!   session naming a user, without and with `principal_index`.
//!
//! Each measurement is bounded by time and by operation count; per-operation
//! latencies give p50/p99 (the load loop is `test_support::bench`'s).
//! Results go to `MEMORYCACHED_BENCH_OUT`, one JSON object per line. A
//! failed check or operation is reported, not hidden.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use backend_memcached::MemcachedStore;
use serde_json::{Map, Value, json};
use session_core::{PrincipalIndex, Sessions, SessionsConfig, Store, Ttl};
use test_support::bench::{self, BenchEnv, Output, Row, Sample};

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Concurrent tasks in every scenario.
const TASKS: usize = 64;
/// Most operations one task makes in one measurement.
const MAX_OPS_PER_TASK: u64 = 100_000;
/// Distinct users of the login scenarios.
const USERS: u64 = 4096;

/// Runs `op` on `TASKS` tasks for `time` (the shared load loop).
async fn drive<F, Fut>(time: Duration, op: F) -> Sample
where
    F: Fn(usize, u64) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Res<()>> + Send,
{
    bench::drive(TASKS, time, MAX_OPS_PER_TASK, op).await
}

/// Writes one result line; `check` is a failed post-condition, if any.
fn record(out: &mut Output, name: &str, mut s: Sample, check: Option<String>) -> Res<()> {
    if let Some(problem) = check {
        s.fail_check(problem);
    }
    // Each subject beside its baseline of the same run (ratios in the report).
    let baseline = match name {
        "contended_save" | "update_counter" => Some("uncontended_save"),
        "login_indexed" => Some("login_plain"),
        "save_indexed" => Some("save_plain"),
        _ => None,
    };
    let row = Row::new(name);
    out.record(baseline.map_or(row.clone(), |b| row.baseline(b)), s)?;
    Ok(())
}

fn fields(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Load, set `field` to `value`, save.
async fn save_field(sessions: &Sessions, id: &str, field: String, value: u64) -> Res<()> {
    let mut s = sessions.load(id).await?.ok_or("session gone")?;
    s.insert(field, value)?;
    sessions.save(&mut s).await?;
    Ok(())
}

async fn bench(out: &mut Output, addr: &str, warm: Duration, time: Duration) -> Res<()> {
    let store: Arc<dyn Store> = Arc::new(MemcachedStore::from_url(&format!(
        "memcached://{addr}?pool_size=64"
    ))?);
    let base = SessionsConfig {
        timeout: Ttl::seconds(600),
        principal: Some("uid".into()),
        ..SessionsConfig::default()
    };
    let sessions = Sessions::new(store.clone(), base.clone())?;
    let indexed = Sessions::new(
        store,
        SessionsConfig {
            principal_index: Some(PrincipalIndex::default()),
            ..base
        },
    )?;
    let profile = "p".repeat(300);

    // Uncontended: one session per task.
    let mut own = Vec::new();
    for t in 0..TASKS {
        let s = sessions
            .create_with(
                fields(json!({"uid": format!("u{t}"), "profile": profile})),
                None,
            )
            .await?;
        own.push(s.id().as_str().to_owned());
    }
    let own = Arc::new(own);
    let op = {
        let (sessions, own) = (sessions.clone(), own.clone());
        move |t: usize, i: u64| {
            let (sessions, own) = (sessions.clone(), own.clone());
            async move { save_field(&sessions, &own[t], format!("f{t}"), i).await }
        }
    };
    drive(warm, op.clone()).await;
    let sample = drive(time, op).await;
    record(out, "uncontended_save", sample, None)?;

    // Contended: one session, each task its own field.
    let shared = sessions
        .create_with(fields(json!({"uid": "shared", "profile": profile})), None)
        .await?;
    let shared = Arc::new(shared.id().as_str().to_owned());
    // The last value each task saved successfully: what its field must hold
    // at the end, whatever the other 63 wrote meanwhile.
    let last: Arc<Vec<AtomicU64>> = Arc::new((0..TASKS).map(|_| AtomicU64::new(0)).collect());
    let op = {
        let (sessions, shared, last) = (sessions.clone(), shared.clone(), last.clone());
        move |t: usize, i: u64| {
            let (sessions, shared, last) = (sessions.clone(), shared.clone(), last.clone());
            async move {
                save_field(&sessions, &shared, format!("f{t}"), i).await?;
                last[t].store(i, Ordering::Relaxed);
                Ok(())
            }
        }
    };
    drive(warm, op.clone()).await;
    let sample = drive(time, op).await;
    let check = match sessions.load(&shared).await? {
        None => Some("the contended session is gone".to_owned()),
        Some(s) => {
            let mut lost = None;
            for (t, want) in last.iter().enumerate() {
                let want = want.load(Ordering::Relaxed);
                let got: Option<u64> = s.get(&format!("f{t}"))?;
                if got != Some(want) {
                    lost = Some(format!("field f{t} is {got:?}, its task last saved {want}"));
                    break;
                }
            }
            lost
        }
    };
    record(out, "contended_save", sample, check)?;

    // Counter through update.
    let counted = sessions
        .create_with(fields(json!({"uid": "counter", "count": 0})), None)
        .await?;
    let counted = Arc::new(counted.id().as_str().to_owned());
    let op = {
        let (sessions, counted) = (sessions.clone(), counted.clone());
        move |_: usize, _: u64| {
            let (sessions, counted) = (sessions.clone(), counted.clone());
            async move {
                sessions
                    .update(&counted, |s| {
                        let n: u64 = s.get("count")?.unwrap_or(0);
                        s.insert("count", n + 1)?;
                        Ok(())
                    })
                    .await?
                    .ok_or("session gone")?;
                Ok(())
            }
        }
    };
    let warmup = drive(warm, op.clone()).await;
    let sample = drive(time, op).await;
    let made = warmup.ops - warmup.errors + sample.ops - sample.errors;
    let check = match sessions.load(&counted).await? {
        None => Some("the counter session is gone".to_owned()),
        Some(s) => {
            let count: u64 = s.get("count")?.unwrap_or(0);
            (count != made).then(|| format!("counter is {count} after {made} increments"))
        }
    };
    record(out, "update_counter", sample, check)?;

    // The principal index: logins and saves, plain then indexed.
    for (label, s) in [("plain", &sessions), ("indexed", &indexed)] {
        let op = {
            let (s, profile) = (s.clone(), profile.clone());
            move |t: usize, i: u64| {
                let (s, profile) = (s.clone(), profile.clone());
                async move {
                    let user = format!("user{}", (t as u64 * 7919 + i) % USERS);
                    s.create_with(fields(json!({"uid": user, "profile": profile})), None)
                        .await?;
                    Ok(())
                }
            }
        };
        drive(warm, op.clone()).await;
        let sample = drive(time, op).await;
        record(out, &format!("login_{label}"), sample, None)?;

        let mut ids = Vec::new();
        for t in 0..TASKS {
            let created = s
                .create_with(
                    fields(json!({"uid": format!("saver{t}"), "profile": profile})),
                    None,
                )
                .await?;
            ids.push(created.id().as_str().to_owned());
        }
        let ids = Arc::new(ids);
        let op = {
            let (s, ids) = (s.clone(), ids.clone());
            move |t: usize, i: u64| {
                let (s, ids) = (s.clone(), ids.clone());
                async move { save_field(&s, &ids[t], "seen".to_owned(), i).await }
            }
        };
        drive(warm, op.clone()).await;
        let sample = drive(time, op).await;
        record(out, &format!("save_{label}"), sample, None)?;
    }
    Ok(())
}

fn main() -> Res<()> {
    let env = BenchEnv::from_env()?;
    let addr = BenchEnv::servers(bench::MEMCACHED_ENV)?.remove(0);
    let mut out = env.output()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(bench(&mut out, &addr, env.warm, env.time))
}
