//! SOAP `getSession` / `setSession` requests per second through the bridge,
//! beside the raw `Store::get` / `Store::set` on the very same store, in the
//! same run (`cargo xtask bench` starts memcached, runs this, and prints the
//! bridge/raw ratios; absolute rates on a shared machine drift between runs).
//!
//! The bridge runs in this process (`serve_state` on `127.0.0.1:0`, built
//! on the store the raw baseline uses), so the load generator and the
//! server share the tokio runtime and the machine's cores, and no separate
//! RSS can be read. The client is a raw HTTP/1.1 keep-alive connection per
//! task (no client library between us and the wire), each request checked
//! for status 200 and the expected response element.
//!
//! Scenarios, each on `memory://` (1 GiB, so the run's new sessions fit)
//! and on the benchmark memcached, at 1 and
//! 16 concurrent connections (tasks for the raw ops):
//! - `raw_get` / `soap_get` / `json_get`: read one of 16 existing sessions
//!   (one per task), raw, by SOAP `getSession` or by the JSON mirror's
//!   `GET /sessions/{id}`.
//! - `raw_set` / `soap_set`: write a new session of the same bytes
//!   (`setSession` without `_session_id` is one `add`; the raw op a `set`).
//!
//! Each measurement is bounded by time and by request count (the load loop
//! is `test_support::bench`'s), and taken in turns: [`ROUNDS`] slices each,
//! every scenario once per round, so a neighbour's load on the shared
//! machine falls on a row and its baseline alike. Results go to
//! `MEMORYCACHED_BENCH_OUT` as one JSON object per line, each `soap_*` and
//! `json_*` row with its `raw_*` baseline. `MEMORYCACHED_BENCH_ROWS` narrows
//! the run to some rows (`test_support::bench::wanted`).
//!
//! For counting instructions (`valgrind --tool=callgrind`, repeatable where
//! times are not), `MEMORYCACHED_BENCH_COUNT=<op>:<n>` makes only `n`
//! requests `op` (`soap_get` or `json_get`) one after the other on one
//! connection, on a one-thread runtime, and exits: on `memory://`, or on
//! the store of `MEMORYCACHED_BENCH_COUNT_STORE` (a store URL). The count
//! covers the bridge and this client; two runs with different `n` give one
//! request's cost without the start-up (`docs/performance.md`).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use session_core::{MemoryStore, MemoryStoreConfig, Sessions, Store, Ttl};
use soap_bridge::AppState;
use soap_bridge::Config;
use soap_bridge::metrics::Metrics;
use soap_bridge::service::Service;
use test_support::bench::{self, BenchEnv, Output, Row, Sample};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

/// Connection counts measured.
const CONNECTIONS: [usize; 2] = [1, 16];
/// Most requests one task makes in one measurement (the time bound usually ends it first).
const MAX_OPS_PER_TASK: u64 = 200_000;
/// Slices each measurement is taken in, in turns with the other scenarios.
const ROUNDS: u32 = 6;
/// The scenarios of each store and level, in the order of a round.
const SCENARIOS: [&str; 5] = ["raw_get", "soap_get", "json_get", "raw_set", "soap_set"];

/// Runs `op` on `tasks` tasks for `time` (the shared load loop).
async fn drive<F, Fut>(tasks: usize, time: Duration, op: F) -> Sample
where
    F: Fn(usize, u64) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send,
{
    bench::drive(tasks, time, MAX_OPS_PER_TASK, op).await
}

/// A kept-alive HTTP/1.1 connection to the bridge.
struct Conn(BufReader<TcpStream>);

impl Conn {
    async fn open(addr: std::net::SocketAddr) -> anyhow::Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Conn(BufReader::new(stream)))
    }

    /// Sends `request` and reads the reply (status, body). The bridge
    /// answers with `Content-Length` bodies; anything else is an error.
    async fn call(&mut self, request: &[u8]) -> anyhow::Result<(u16, String)> {
        self.0.get_mut().write_all(request).await?;
        let mut line = String::new();
        self.0.read_line(&mut line).await?;
        let status: u16 = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("bad status line {line:?}"))?;
        let mut length = None;
        loop {
            line.clear();
            if self.0.read_line(&mut line).await? == 0 {
                bail!("connection closed in the headers");
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = Some(v.trim().parse::<usize>()?);
            }
        }
        let length = length.context("reply without Content-Length")?;
        let mut body = vec![0; length];
        self.0.read_exact(&mut body).await?;
        Ok((status, String::from_utf8(body)?))
    }
}

/// A SOAP request for `method` with `params`, as SOAP::Lite sends it.
fn soap_request(addr: std::net::SocketAddr, method: &str, params: &str) -> Vec<u8> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\"><soap:Body><{method} xmlns=\"urn:MemcachedSOAPClass\">{params}</{method}></soap:Body></soap:Envelope>"
    );
    format!(
        "POST /cgi-bin/MemcachedSOAP.cgi HTTP/1.1\r\nHost: {addr}\r\nContent-Type: text/xml; charset=utf-8\r\nSOAPAction: \"urn:MemcachedSOAPClass#{method}\"\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The JSON mirror's `GET /sessions/{id}`.
fn json_get_request(addr: std::net::SocketAddr, id: &str) -> Vec<u8> {
    format!("GET /sessions/{id} HTTP/1.1\r\nHost: {addr}\r\n\r\n").into_bytes()
}

/// `getSession(id)`, as SOAP::Lite sends it.
fn soap_get_request(addr: std::net::SocketAddr, id: &str) -> Vec<u8> {
    soap_request(
        addr,
        "getSession",
        &format!("<c-gensym3 xsi:type=\"xsd:string\">{id}</c-gensym3>"),
    )
}

/// `setSession`'s parameters: a typical SSO session (about 400 bytes stored).
fn set_params() -> String {
    let mut p = String::new();
    for (k, v) in [
        ("uid", "jdupont".to_owned()),
        ("mail", "jean.dupont@example.org".to_owned()),
        ("cn", "Jean Dupont".to_owned()),
        ("profile", "p".repeat(300)),
    ] {
        p.push_str(&format!(
            "<c-gensym xsi:type=\"xsd:string\">{k}</c-gensym><c-gensym xsi:type=\"xsd:string\">{v}</c-gensym>"
        ));
    }
    p
}

/// The id in a `setSession` response.
fn result_id(body: &str) -> anyhow::Result<String> {
    let marker = "xsi:type=\"xsd:string\">";
    let start = body.find(marker).context("no id in the setSession reply")? + marker.len();
    let id = body
        .get(start..)
        .and_then(|rest| rest.split('<').next())
        .context("no id in the setSession reply")?;
    Ok(id.to_owned())
}

/// Starts the bridge on `store`; the returned sender stops it.
async fn start_bridge(
    store: Arc<dyn Store>,
    url: &str,
) -> anyhow::Result<(std::net::SocketAddr, tokio::sync::oneshot::Sender<()>)> {
    let config = Config {
        store: url.to_owned(),
        // Connections idle while other scenarios run; the default 5 s
        // between kept-alive requests would close them.
        header_timeout_ms: 600_000,
        ..Config::default()
    };
    let state = AppState {
        service: Service::new(Sessions::new(store, config.sessions_config()?)?),
        metrics: Arc::new(Metrics::default()),
        config: Arc::new(config),
        admin: Arc::default(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let shutdown = async {
            let _ = stopped.await;
        };
        if let Err(e) = soap_bridge::serve_state(state, listener, shutdown).await {
            eprintln!("the bridge failed: {e}");
            std::process::exit(1);
        }
    });
    Ok((addr, stop))
}

/// What the operations of one store's scenarios share.
struct Ctx {
    store: Arc<dyn Store>,
    /// One session per task.
    ids: Vec<String>,
    /// `getSession` of each task's session.
    gets: Vec<Vec<u8>>,
    /// `GET /sessions/{id}` of each task's session.
    json_gets: Vec<Vec<u8>>,
    /// `setSession` of a new session.
    set: Vec<u8>,
    /// One kept-alive connection per task.
    conns: Arc<Vec<Mutex<Conn>>>,
    /// The bytes and flags the bridge stored for a session: what raw sets write.
    value: Vec<u8>,
    flags: u32,
    /// Distinguishes this run's raw keys from earlier runs'.
    run: String,
}

impl Ctx {
    /// One operation of scenario `name` by task `t`.
    async fn op(self: Arc<Self>, name: &'static str, t: usize, i: u64) -> anyhow::Result<()> {
        match name {
            "raw_get" => {
                self.store
                    .get(&self.ids[t])
                    .await?
                    .context("session gone")?;
            }
            "raw_set" => {
                // A bounded key space: overwrites cost what new keys do on
                // memcached, and the in-memory store does not fill up.
                let key = format!("bench{}raw{t}x{}", self.run, i % 1024);
                self.store
                    .set(&key, &self.value, self.flags, Ttl::NEVER)
                    .await?;
            }
            _ => {
                let (request, expect) = match name {
                    "soap_get" => (&self.gets[t], "jdupont"),
                    "json_get" => (&self.json_gets[t], "jdupont"),
                    _ => (&self.set, "<setSessionResponse"),
                };
                let (status, body) = self.conns[t].lock().await.call(request).await?;
                if status != 200 || !body.contains(expect) {
                    bail!("{name} answered {status}: {body}");
                }
            }
        }
        Ok(())
    }
}

/// Writes a new session by `setSession` on `conn`; returns its id.
async fn create(conn: &mut Conn, set: &[u8]) -> anyhow::Result<String> {
    let (status, body) = conn.call(set).await?;
    if status != 200 {
        bail!("setSession answered {status}: {body}");
    }
    result_id(&body)
}

/// One store's scenarios.
async fn bench_store(
    out: &mut Output,
    label: &str,
    store: Arc<dyn Store>,
    url: &str,
    warm: Duration,
    time: Duration,
) -> anyhow::Result<()> {
    let (addr, stop) = start_bridge(store.clone(), url).await?;
    let max = *CONNECTIONS.iter().max().unwrap_or(&1);
    let mut conns = Vec::new();
    for _ in 0..max {
        conns.push(Mutex::new(Conn::open(addr).await?));
    }
    let conns = Arc::new(conns);
    for tasks in CONNECTIONS {
        let row_of = |name: &str| format!("{label}/{name}/{tasks}");
        let measured: Vec<&'static str> = SCENARIOS
            .into_iter()
            .filter(|name| bench::wanted(&row_of(name)))
            .collect();
        if measured.is_empty() {
            continue;
        }
        // Written afresh for each level: the benchmark memcached evicts (its
        // memory is filled on purpose), and a session read by no one during
        // the previous level's writes may be gone.
        let set = soap_request(addr, "setSession", &set_params());
        // One session per task, read by getSession / Store::get.
        let mut ids = Vec::new();
        for c in conns.iter() {
            ids.push(create(&mut *c.lock().await, &set).await?);
        }
        let value = store
            .get(&ids[0])
            .await?
            .context("the session just written is not in the store")?;
        let (flags, value) = (value.flags, value.value);
        let ctx = Arc::new(Ctx {
            store: store.clone(),
            gets: ids.iter().map(|id| soap_get_request(addr, id)).collect(),
            json_gets: ids.iter().map(|id| json_get_request(addr, id)).collect(),
            ids,
            set,
            conns: conns.clone(),
            value,
            flags,
            run: format!("{:x}", std::process::id()),
        });
        let op = |name: &'static str| {
            let ctx = ctx.clone();
            move |t: usize, i: u64| ctx.clone().op(name, t, i)
        };
        for &name in &measured {
            drive(tasks, warm, op(name)).await;
        }
        let mut samples: Vec<Sample> = measured.iter().map(|_| Sample::default()).collect();
        for _ in 0..ROUNDS {
            for (sample, &name) in samples.iter_mut().zip(&measured) {
                sample.absorb(drive(tasks, time / ROUNDS, op(name)).await);
            }
        }
        for (name, sample) in measured.into_iter().zip(samples) {
            let mut row = Row::new(row_of(name));
            if let Some((kind, op)) = name.split_once('_')
                && kind != "raw"
            {
                row = row.baseline(row_of(&format!("raw_{op}")));
            }
            out.record(row, sample)?;
        }
    }
    let _ = stop.send(());
    Ok(())
}

/// `MEMORYCACHED_BENCH_COUNT=<op>:<n>` (see the crate docs): `n`
/// requests in a row on one connection and one thread, for an instruction
/// count.
fn count(spec: &str) -> anyhow::Result<()> {
    let (op, n) = spec
        .split_once(':')
        .context("MEMORYCACHED_BENCH_COUNT is <op>:<n>, e.g. soap_get:2000")?;
    let n: u64 = n
        .parse()
        .context("MEMORYCACHED_BENCH_COUNT: n is a number")?;
    if !["soap_get", "json_get"].contains(&op) {
        bail!("MEMORYCACHED_BENCH_COUNT: unknown operation {op:?} (soap_get or json_get)");
    }
    let url = std::env::var("MEMORYCACHED_BENCH_COUNT_STORE").unwrap_or("memory://".into());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let (addr, stop) = start_bridge(store_url::open_one(&url)?, &url).await?;
        let mut conn = Conn::open(addr).await?;
        let id = create(&mut conn, &soap_request(addr, "setSession", &set_params())).await?;
        let request = if op == "soap_get" {
            soap_get_request(addr, &id)
        } else {
            json_get_request(addr, &id)
        };
        for _ in 0..n {
            let (status, body) = conn.call(&request).await?;
            if status != 200 || !body.contains("jdupont") {
                bail!("{op} answered {status}: {body}");
            }
        }
        let _ = stop.send(());
        Ok(())
    })
}

fn main() -> anyhow::Result<()> {
    if let Ok(spec) = std::env::var("MEMORYCACHED_BENCH_COUNT") {
        return count(&spec);
    }
    let env = BenchEnv::from_env()?;
    let addr = BenchEnv::servers(bench::MEMCACHED_ENV)?.remove(0);
    let (warm, time) = (env.warm, env.time);
    let mut out = env.output()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        // `memory://` with room for every session the run creates (the
        // default 64 MiB refuses writes once full instead of evicting).
        let memory = MemoryStore::with_config(MemoryStoreConfig {
            max_bytes: 1 << 30,
            ..MemoryStoreConfig::default()
        })?;
        bench_store(
            &mut out,
            "memory",
            Arc::new(memory),
            "memory://",
            warm,
            time,
        )
        .await?;
        let url = format!("memcached://{addr}?pool_size=16");
        let memcached = store_url::open_one(&url)?;
        bench_store(&mut out, "memcached", memcached, &url, warm, time).await
    })?;
    // The bridge runs in this process beside the load generator, so this
    // is an upper bound of the bridge's own peak under the load above.
    out.record_own_peak_rss("bridge benchmark process (bridge + load generator)")?;
    Ok(())
}
