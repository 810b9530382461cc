//! Requests per second of the example app's counter page (`GET /counter`:
//! load, increment, save, cookie) with our store on memcached, against
//! tower-sessions' own `MemoryStore`, in the same run; our store on
//! session-core's `MemoryStore` too, to separate the store's cost from the
//! network's.
//!
//! Each of `CLIENTS` tasks is a browser with its own cookie jar (its own
//! session) on a kept-alive connection, looping until the time is over;
//! every answer must be the previous count plus one, or it counts as an
//! error. The app runs in this process on 127.0.0.1. The load loop and the
//! result lines are `test_support::bench`'s; memcached comes from
//! `MEMORYCACHED_BENCH_MEMCACHED` (`cargo xtask bench` sets it all).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../examples/app/routes.rs"]
#[allow(dead_code)]
mod routes;

use std::sync::Arc;

use session_core::{MemoryStore, PrincipalIndex, Sessions, SessionsConfig, Store, Ttl};
use test_support::bench::{self, BenchEnv, Output, Row};
use tokio::sync::Mutex;
use tower_sessions::SessionStore;
use tower_sessions_memorycached::SessionsStore;

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Concurrent browsers.
const CLIENTS: usize = 16;

/// One browser: its own cookie jar (so its own session) and the count the
/// page must show next.
struct Browser {
    http: reqwest::Client,
    expected: u64,
}

/// Serves the app on `store` on a free port; returns its counter URL.
async fn serve<S: SessionStore + Clone>(store: S, sessions: Option<Sessions>) -> Res<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/counter", listener.local_addr()?);
    let state = routes::AppState {
        sessions,
        rendezvous: None,
    };
    let app = routes::app(store, state, time::Duration::hours(1));
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            eprintln!("app server: {e}");
        }
    });
    Ok(url)
}

/// One request of browser `t` to `url`: the page must show its next count.
async fn visit(browsers: &[Mutex<Browser>], url: &str, t: usize) -> Result<(), String> {
    let mut browser = browsers[t].lock().await;
    let res = browser
        .http
        .get(url)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let body = res.text().await.map_err(|e| e.to_string())?;
    let expected = browser.expected;
    if body == format!("count={expected}") {
        browser.expected += 1;
        return Ok(());
    }
    // Resynchronise on what the server says, and count the miss.
    if let Some(n) = body
        .strip_prefix("count=")
        .and_then(|n| n.parse::<u64>().ok())
    {
        browser.expected = n + 1;
    }
    Err(format!("expected count={expected}, got {body}"))
}

/// Our store over `servers`, configured as the example app is.
fn ours(servers: Arc<dyn Store>) -> Res<(SessionsStore, Sessions)> {
    let config = SessionsConfig {
        timeout: Ttl::seconds(3600),
        principal: Some("uid".into()),
        principal_index: Some(PrincipalIndex::default()),
        ..Default::default()
    };
    let sessions = Sessions::new(servers, config)?;
    Ok((SessionsStore::new(sessions.clone())?, sessions))
}

async fn run(out: &mut Output, env: &BenchEnv, addr: &str) -> Res<()> {
    let memcached = store_url::open_one(&format!("memcached://{addr}"))?;
    let (on_memcached, s1) = ours(memcached)?;
    let (on_memory, s2) = ours(Arc::new(MemoryStore::new()))?;
    let peer = "app_counter/tower_sessions_memory";
    let targets = [
        (
            peer,
            serve(tower_sessions::MemoryStore::default(), None).await?,
        ),
        (
            "app_counter/ours_memcached",
            serve(on_memcached, Some(s1)).await?,
        ),
        ("app_counter/ours_memory", serve(on_memory, Some(s2)).await?),
    ];
    for (name, url) in targets {
        let mut browsers = Vec::new();
        for _ in 0..CLIENTS {
            let jar = Arc::new(reqwest::cookie::Jar::default());
            let http = reqwest::Client::builder().cookie_provider(jar).build()?;
            browsers.push(Mutex::new(Browser { http, expected: 1 }));
        }
        let (browsers, url) = (Arc::new(browsers), Arc::new(url));
        let op = move |t: usize, _i: u64| {
            let (browsers, url) = (Arc::clone(&browsers), Arc::clone(&url));
            async move { visit(&browsers, &url, t).await }
        };
        bench::drive(CLIENTS, env.warm, u64::MAX, op.clone()).await;
        let sample = bench::drive(CLIENTS, env.time, u64::MAX, op).await;
        let row = Row::new(name);
        let row = if name == peer {
            row
        } else {
            row.baseline(peer)
        };
        out.record(row, sample)?;
    }
    Ok(())
}

fn main() -> Res<()> {
    let env = BenchEnv::from_env()?;
    let addr = BenchEnv::servers(bench::MEMCACHED_ENV)?
        .into_iter()
        .next()
        .ok_or("no memcached address")?;
    let mut out = env.output()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(&mut out, &env, &addr))
}
