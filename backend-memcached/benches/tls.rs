//! TLS beside plain TCP, in the same run: the same `MemcachedStore`
//! operations on two memcached 1.6.18 processes started alike (`-c 4096`),
//! one of them with `-Z` (certificates made here by `openssl` through
//! `test_support::tls`, as `tests/tls_auth.rs` does), at 1 and 64 tasks.
//!
//! Rows (`group/series/N`, N = tasks):
//! - `tls_raw_pair/plain/N` and `tls_raw_pair/tls/N`: `Store::set` +
//!   `Store::get` of a 400-byte value under the task's own key, in the
//!   default (adaptive) mode;
//! - `tls_load_save/plain/N` and `tls_load_save/tls/N`: a `Sessions` load,
//!   one field changed, save (a `get` and a `cas`).
//!
//! Each TLS row names its plain row as baseline (the report shows the
//! ratio); at 64 tasks the target is 0.8x. The two servers take turns in
//! short slices, so a neighbour's load on a shared machine falls on both.
//! The servers are this bench's own (`cargo xtask bench` starts none with
//! TLS), as local processes through test-support, reached directly.

use std::sync::Arc;

use backend_memcached::MemcachedStore;
use session_core::{Sessions, SessionsConfig, Store, Ttl};
use test_support::bench::{self, BenchEnv, Output, Row, Sample};
use test_support::tls::Certificates;
use test_support::{MemcachedOptions, MemcachedSecurity, MemcachedTls, Provider, ProviderKind};

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Concurrency levels measured.
const TASKS: [usize; 2] = [1, 64];
/// Slices each measurement is cut into, the two servers taking turns.
const ROUNDS: u32 = 6;
/// Most operations one task makes in one measurement.
const MAX_OPS_PER_TASK: u64 = 1_000_000;

/// One store's subjects: the store itself and sessions over it.
struct Subject {
    store: Arc<dyn Store>,
    sessions: Sessions,
    /// The task's session id, per task.
    ids: Vec<String>,
}

impl Subject {
    async fn new(url: &str, tasks: usize) -> Res<Subject> {
        let store: Arc<dyn Store> = Arc::new(MemcachedStore::from_url(url)?);
        let sessions = Sessions::new(store.clone(), SessionsConfig::default())?;
        let mut ids = Vec::with_capacity(tasks);
        for t in 0..tasks {
            let mut s = sessions.create().await?;
            s.insert("task", t as u64)?;
            for f in 0..9 {
                s.insert(format!("field{f}"), "x".repeat(32))?;
            }
            sessions.save(&mut s).await?;
            ids.push(s.id().as_str().to_owned());
        }
        Ok(Subject {
            store,
            sessions,
            ids,
        })
    }

    async fn op(self: Arc<Self>, name: &'static str, task: usize, i: u64) -> Res<()> {
        match name {
            "tls_raw_pair" => {
                let key = format!("tlsbench:{}:{task}", std::process::id());
                let value = vec![b'v'; 400];
                self.store.set(&key, &value, 0, Ttl::seconds(600)).await?;
                let got = self.store.get(&key).await?.ok_or("value gone")?;
                if got.value.len() != value.len() {
                    return Err("value changed".into());
                }
            }
            "tls_load_save" => {
                let id = &self.ids[task];
                let mut s = self.sessions.load(id).await?.ok_or("session gone")?;
                s.insert("counter", i)?;
                self.sessions.save(&mut s).await?;
            }
            other => return Err(format!("unknown operation {other}").into()),
        }
        Ok(())
    }
}

async fn run(out: &mut Output, env: &BenchEnv, plain_url: &str, tls_url: &str) -> Res<()> {
    for tasks in TASKS {
        let subjects = [
            ("plain", Arc::new(Subject::new(plain_url, tasks).await?)),
            ("tls", Arc::new(Subject::new(tls_url, tasks).await?)),
        ];
        for group in ["tls_raw_pair", "tls_load_save"] {
            let row_of = |series: &str| format!("{group}/{series}/{tasks}");
            if !subjects
                .iter()
                .any(|(series, _)| bench::wanted(&row_of(series)))
            {
                continue;
            }
            let op = |subject: &Arc<Subject>| {
                let subject = subject.clone();
                move |t: usize, i: u64| subject.clone().op(group, t, i)
            };
            for (_, subject) in &subjects {
                bench::drive(tasks, env.warm, MAX_OPS_PER_TASK, op(subject)).await;
            }
            let mut samples = [Sample::default(), Sample::default()];
            for _ in 0..ROUNDS {
                for (sample, (_, subject)) in samples.iter_mut().zip(&subjects) {
                    let slice = env.time / ROUNDS;
                    sample.absorb(bench::drive(tasks, slice, MAX_OPS_PER_TASK, op(subject)).await);
                }
            }
            let [plain, tls] = samples;
            let ratio = tls.ops_per_s() / plain.ops_per_s().max(f64::MIN_POSITIVE);
            println!("{group} at {tasks} tasks: TLS at {ratio:.2}x of plain");
            out.record(Row::new(row_of("plain")), plain)?;
            let mut row = Row::new(row_of("tls")).baseline(row_of("plain"));
            if tasks == 64 {
                row = row.target(0.8);
            }
            out.record(row, tls)?;
        }
    }
    Ok(())
}

fn main() -> Res<()> {
    let env = BenchEnv::from_env()?;
    let mut out = env.output()?;
    // Removed on drop, after the servers (declared later, dropped first).
    let certs = Certificates::new("bench-tls")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let provider = Provider::new(ProviderKind::Process).await?;
        let options = || MemcachedOptions {
            extra_args: vec!["-c".to_owned(), "4096".to_owned()],
            ..MemcachedOptions::default()
        };
        let plain = provider.memcached_with(options()).await?;
        let tls = provider
            .memcached_secured(
                options(),
                MemcachedSecurity {
                    tls: Some(MemcachedTls {
                        chain_cert: certs.path("server.pem"),
                        key: certs.path("server.key"),
                        client_ca: None,
                    }),
                    auth_file: None,
                },
            )
            .await?;
        let addr = |s: &test_support::Server| {
            s.direct_addr()
                .map(|a| a.to_string())
                .ok_or("a server just started has no address")
        };
        let plain_url = format!("memcached://{}", addr(&plain)?);
        let tls_url = format!(
            "memcacheds://{}?ca={}",
            addr(&tls)?,
            certs.url_path("ca.pem")
        );
        run(&mut out, &env, &plain_url, &tls_url).await
    })
}
