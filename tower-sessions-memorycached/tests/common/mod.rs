//! Shared by the tests: the example app served in-process on a real TCP
//! port, stores on memory or on the memcached servers of `cargo xtask
//! test`, and a cookie-keeping HTTP client.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::cookie::{CookieStore as _, Jar};
use session_core::{MemoryStore, PrincipalIndex, Sessions, SessionsConfig, Store, Ttl};
use tower_sessions::SessionStore;
use tower_sessions_memorycached::SessionsStore;

#[path = "../../examples/app/routes.rs"]
pub mod routes;

/// Where the sessions of a test live.
#[derive(Clone, Copy, Debug)]
pub enum Backend {
    /// session-core's in-process store.
    Memory,
    /// The shared memcached servers (`MEMORYCACHED_MEMCACHED`).
    Memcached,
    /// The first shared memcached servers, with the last one as the
    /// read-first local tier.
    MemcachedLocal,
}

fn memcached_servers() -> Vec<String> {
    test_support::shared_servers(test_support::MEMCACHED_ENV).unwrap_or_else(|e| panic!("{e}"))
}

fn memcached(servers: &[String]) -> Arc<dyn Store> {
    store_url::open_one(&format!("memcached://{}", servers.join(",")))
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The principal store of `backend`; a missing memcached address fails
/// the test with the message saying how to provide it.
pub fn store(backend: Backend) -> Arc<dyn Store> {
    match backend {
        Backend::Memory => Arc::new(MemoryStore::new()),
        Backend::Memcached => memcached(&memcached_servers()),
        Backend::MemcachedLocal => {
            let servers = memcached_servers();
            assert!(
                servers.len() >= 2,
                "MemcachedLocal needs two servers in MEMORYCACHED_MEMCACHED"
            );
            memcached(&servers[..servers.len() - 1])
        }
    }
}

/// `Sessions` as the example app configures them: `uid` is the principal,
/// indexed.
pub fn sessions(backend: Backend, config: SessionsConfig) -> Sessions {
    let config = SessionsConfig {
        timeout: Ttl::seconds(3600),
        principal: Some("uid".into()),
        principal_index: Some(PrincipalIndex::default()),
        ..config
    };
    let sessions = Sessions::new(store(backend), config).unwrap();
    match backend {
        Backend::MemcachedLocal => {
            let servers = memcached_servers();
            sessions.with_local(memcached(&servers[servers.len() - 1..]))
        }
        _ => sessions,
    }
}

/// A running app.
pub struct App {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for App {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl App {
    /// `path` on this app.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// Serves the example app on `store` on a free port of 127.0.0.1.
pub async fn serve<S: SessionStore + Clone>(
    store: S,
    state: routes::AppState,
    idle: time::Duration,
) -> App {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = routes::app(store, state, idle);
    let server = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    App { base, server }
}

/// Serves the example app on our store over `sessions`.
pub async fn serve_ours(sessions: &Sessions, idle: time::Duration) -> (App, SessionsStore) {
    let store = SessionsStore::new(sessions.clone()).unwrap();
    let state = routes::AppState {
        sessions: Some(sessions.clone()),
        rendezvous: None,
    };
    (serve(store.clone(), state, idle).await, store)
}

/// A browser: an HTTP client keeping cookies in `jar`.
pub struct Browser {
    /// The client, with redirects off (tests look at the 303s).
    pub http: reqwest::Client,
    /// Its cookies.
    pub jar: Arc<Jar>,
}

impl Browser {
    /// A browser with an empty jar.
    pub fn new() -> Self {
        let jar = Arc::new(Jar::default());
        let http = reqwest::Client::builder()
            .cookie_provider(Arc::clone(&jar))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Browser { http, jar }
    }

    /// The session cookie's value for `app`, if the jar holds one.
    pub fn cookie(&self, app: &App) -> Option<String> {
        let url: reqwest::Url = app.base.parse().unwrap();
        let header = self.jar.cookies(&url)?;
        header
            .to_str()
            .unwrap()
            .split("; ")
            .find_map(|c| c.strip_prefix("id="))
            .map(str::to_owned)
    }

    /// Puts a session cookie with `value` in the jar.
    pub fn set_cookie(&self, app: &App, value: &str) {
        let url: reqwest::Url = app.base.parse().unwrap();
        self.jar
            .add_cookie_str(&format!("id={value}; Path=/"), &url);
    }

    /// GET `path`: status and body.
    pub async fn get(&self, app: &App, path: &str) -> (u16, String) {
        let res = self.http.get(app.url(path)).send().await.unwrap();
        (res.status().as_u16(), res.text().await.unwrap())
    }

    /// POST a form to `path`: status and body.
    pub async fn post(&self, app: &App, path: &str, form: &[(&str, &str)]) -> (u16, String) {
        let res = self
            .http
            .post(app.url(path))
            .form(form)
            .send()
            .await
            .unwrap();
        (res.status().as_u16(), res.text().await.unwrap())
    }

    /// The JSON value of field `key` in this browser's session.
    pub async fn field(&self, app: &App, key: &str) -> serde_json::Value {
        let (status, body) = self.get(app, &format!("/get?key={key}")).await;
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }
}

/// Polls `check` every 100 ms until it holds or `limit` passes.
pub async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
