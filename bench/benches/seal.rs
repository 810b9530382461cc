//! The cost of sealing sessions at rest (`session_core::seal`): `load` and
//! `save_changed` (load, change one field, save) of a 10-field session,
//! sealed and plain, on `MemoryStore` (where the seal's CPU cost is all
//! there is to see) and on one memcached, one task, the four rows of a
//! store measured in turns so that the machine's noise falls on each alike.
//!
//! Rows: `seal_<store>/<op>_<plain|sealed>/1`, each sealed row with its
//! plain row as baseline; and `seal_cipher/seal_open/1`, the seal and the
//! opening of the session's bytes alone (no codec, no store). The time
//! added per operation, `1/sealed - 1/plain` in µs, is printed on the
//! terminal, and per save (`save_changed`'s less `load`'s, as
//! `save_changed` is a load and a save); the aim is under 1 µs for each.
//! The same four operations on a `MemoryStore` are also timed in a tight
//! loop in this thread's CPU time, which a loaded machine does not skew:
//! those are the figures to quote.

use std::sync::Arc;

use anyhow::Context as _;
use backend_memcached::MemcachedStore;
use memorycached_bench::ten_fields;
use session_core::{
    Codec, Keyring, MemoryStore, SealConfig, SealKey, Sessions, SessionsConfig, Store, Ttl,
};
use test_support::bench::{self, BenchEnv, Output, Row, Sample};

/// The allocator our binaries use (see the workspace manifest).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const OPS: [&str; 2] = ["load", "save_changed"];
const MAX_OPS_PER_TASK: u64 = 10_000_000;
const ROUNDS: u32 = 6;

fn config(seal: Option<SealConfig>) -> SessionsConfig {
    SessionsConfig {
        timeout: Ttl::seconds(600),
        principal: Some("uid".into()),
        seal,
        ..SessionsConfig::default()
    }
}

fn seal() -> SealConfig {
    // A fixed key: this measures the cipher, not the key's secrecy.
    SealConfig::new(Keyring::new(SealKey::new(1, [0x5a; 32])))
}

/// One session operation on `sessions`' session `id`.
async fn op(sessions: Sessions, id: Arc<str>, name: &'static str, i: u64) -> anyhow::Result<()> {
    let mut s = sessions.load(&id).await?.context("session gone")?;
    if name == "save_changed" {
        s.insert("seen", i)?;
        sessions.save(&mut s).await?;
    }
    Ok(())
}

/// The four rows of one store, in turns.
async fn bench_store(
    out: &mut Output,
    env: &BenchEnv,
    label: &str,
    store: Arc<dyn Store>,
) -> anyhow::Result<()> {
    let mut cases = Vec::new();
    for (variant, seal) in [("plain", None), ("sealed", Some(seal()))] {
        let sessions = Sessions::new(store.clone(), config(seal))?;
        let created = sessions
            .create_with(ten_fields(&format!("seal{label}{variant}")), None)
            .await?;
        let id: Arc<str> = created.id().as_str().into();
        for name in OPS {
            let row = format!("seal_{label}/{name}_{variant}/1");
            if bench::wanted(&row) {
                cases.push((row, sessions.clone(), id.clone(), name));
            }
        }
    }
    let run = |sessions: &Sessions, id: &Arc<str>, name: &'static str| {
        let (sessions, id) = (sessions.clone(), id.clone());
        move |_t: usize, i: u64| op(sessions.clone(), id.clone(), name, i)
    };
    for (_, sessions, id, name) in &cases {
        bench::drive(1, env.warm, MAX_OPS_PER_TASK, run(sessions, id, name)).await;
    }
    let mut samples: Vec<Sample> = cases.iter().map(|_| Sample::default()).collect();
    for _ in 0..ROUNDS {
        for (sample, (_, sessions, id, name)) in samples.iter_mut().zip(&cases) {
            let slice = env.time / ROUNDS;
            sample.absorb(bench::drive(1, slice, MAX_OPS_PER_TASK, run(sessions, id, name)).await);
        }
    }
    let mut rates = std::collections::HashMap::new();
    for ((row, ..), sample) in cases.iter().zip(samples) {
        rates.insert(row.clone(), sample.ops_per_s());
        let mut r = Row::new(row.clone());
        if let Some(plain) = row.strip_suffix("_sealed/1") {
            r = r.baseline(format!("{plain}_plain/1"));
        }
        out.record(r, sample)?;
    }
    let added_us = |name: &str| {
        let rate = |v: &str| rates.get(&format!("seal_{label}/{name}_{v}/1")).copied();
        match (rate("plain"), rate("sealed")) {
            (Some(plain), Some(sealed)) => Some(1e6 / sealed - 1e6 / plain),
            _ => None,
        }
    };
    for name in OPS {
        if let Some(added) = added_us(name) {
            println!("seal: {label} {name}: {added:+.2} µs per operation sealed");
        }
    }
    // save_changed is a load (one opening) and a save (one seal): the
    // save's share is the difference. The aim: under 1 µs for each.
    if let (Some(load), Some(both)) = (added_us("load"), added_us("save_changed")) {
        println!(
            "seal: {label}: {load:+.2} µs per load, {:+.2} µs per save (aim: under 1 µs each)",
            both - load
        );
    }
    Ok(())
}

/// The same four operations on a `MemoryStore` in a tight loop on this
/// thread, timed in this thread's CPU time, sealed and plain taking turns:
/// the cost the seal adds, free of the wall clock's share of a loaded
/// machine (other processes holding the core), which the rows above are
/// not. A `MemoryStore` answers at once, so every operation runs on this
/// thread.
async fn cpu_costs(env: &BenchEnv) -> anyhow::Result<()> {
    if !bench::wanted("seal_memory") {
        return Ok(());
    }
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let mut cases = Vec::new();
    for (variant, seal) in [("plain", None), ("sealed", Some(seal()))] {
        let sessions = Sessions::new(store.clone(), config(seal))?;
        let created = sessions
            .create_with(ten_fields(&format!("cpu{variant}")), None)
            .await?;
        let id: Arc<str> = created.id().as_str().into();
        for name in OPS {
            cases.push((variant, name, sessions.clone(), id.clone(), 0.0));
        }
    }
    let per_round: u64 = if env.quick { 200 } else { 20_000 };
    let mut i = 0;
    // A first round warms up, then ROUNDS rounds count.
    for round in 0..=ROUNDS {
        for (_, name, sessions, id, ns) in &mut cases {
            let started = thread_cpu_ns();
            for _ in 0..per_round {
                i += 1;
                op(sessions.clone(), id.clone(), name, i).await?;
            }
            if round > 0 {
                *ns += thread_cpu_ns() - started;
            }
        }
    }
    let count = (per_round * u64::from(ROUNDS)) as f64;
    let us = |variant: &str, name: &str| {
        cases
            .iter()
            .find(|c| c.0 == variant && c.1 == name)
            .map_or(f64::NAN, |c| c.4 / count / 1e3)
    };
    for name in OPS {
        println!(
            "seal: memory {name}, CPU time: plain {:.2} µs, sealed {:.2} µs",
            us("plain", name),
            us("sealed", name)
        );
    }
    let load = us("sealed", "load") - us("plain", "load");
    let both = us("sealed", "save_changed") - us("plain", "save_changed");
    println!(
        "seal: memory, CPU time: {load:+.2} µs per load, {:+.2} µs per save (aim: under 1 µs each)",
        both - load
    );
    Ok(())
}

/// The cipher alone: seal and open the session's codec bytes.
async fn bench_cipher(out: &mut Output, env: &BenchEnv) -> anyhow::Result<()> {
    let row = "seal_cipher/seal_open/1";
    if !bench::wanted(row) {
        return Ok(());
    }
    let seal = Arc::new(seal());
    let plain: Arc<[u8]> = Codec::Json.encode(&ten_fields("cipher"))?.into();
    let flags = SealConfig::flags(Codec::Json);
    // A tight loop first, without the load generator's per-call costs,
    // timed in this thread's CPU time: on a shared machine the wall clock
    // also counts the time other processes held the core.
    let key = "0123456789abcdef0123456789abcdef";
    let n: u32 = if env.quick { 2_000 } else { 100_000 };
    let mut last = Vec::new();
    let (cpu, wall) = (thread_cpu_ns(), std::time::Instant::now());
    for _ in 0..n {
        last = seal.seal(&plain, flags, key)?;
    }
    let sealing = (thread_cpu_ns() - cpu, wall.elapsed() / n);
    let (cpu, wall) = (thread_cpu_ns(), std::time::Instant::now());
    for _ in 0..n {
        std::hint::black_box(seal.open(&last, flags, key)?);
    }
    let opening = (thread_cpu_ns() - cpu, wall.elapsed() / n);
    println!(
        "seal: tight loop, {} bytes, CPU time (wall): seal {:.2} µs ({:.2}), open {:.2} µs ({:.2})",
        plain.len(),
        sealing.0 / f64::from(n) / 1e3,
        sealing.1.as_secs_f64() * 1e6,
        opening.0 / f64::from(n) / 1e3,
        opening.1.as_secs_f64() * 1e6,
    );
    let run = move |_t: usize, _i: u64| {
        let (seal, plain) = (seal.clone(), plain.clone());
        async move {
            let sealed = seal.seal(&plain, flags, "0123456789abcdef0123456789abcdef")?;
            let opened = seal.open(&sealed, flags, "0123456789abcdef0123456789abcdef")?;
            anyhow::ensure!(*opened == *plain, "the seal did not round-trip");
            anyhow::Ok(())
        }
    };
    bench::drive(1, env.warm, MAX_OPS_PER_TASK, run.clone()).await;
    let sample = bench::drive(1, env.time, MAX_OPS_PER_TASK, run).await;
    println!(
        "seal: cipher alone: {:.2} µs per seal + open of {} bytes",
        1e6 / sample.ops_per_s(),
        Codec::Json.encode(&ten_fields("cipher"))?.len()
    );
    out.record(Row::new(row), sample)?;
    Ok(())
}

/// This thread's CPU time in ns (`/proc/thread-self/schedstat`'s first
/// field), or NaN where there is none.
fn thread_cpu_ns() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .unwrap_or(f64::NAN)
}

fn main() -> anyhow::Result<()> {
    let env = BenchEnv::from_env()?;
    let single = BenchEnv::servers(bench::MEMCACHED_ENV)?.remove(0);
    let mut out = env.output()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        bench_cipher(&mut out, &env).await?;
        cpu_costs(&env).await?;
        let memory: Arc<dyn Store> = Arc::new(MemoryStore::new());
        bench_store(&mut out, &env, "memory", memory).await?;
        let memcached: Arc<dyn Store> =
            Arc::new(MemcachedStore::from_url(&format!("memcached://{single}"))?);
        bench_store(&mut out, &env, "memcached1", memcached).await?;
        anyhow::Ok(())
    })?;
    Ok(())
}
