//! The example app: an axum site whose sessions live in memorycached, through
//! tower-sessions and [`SessionsStore`].
//!
//! ```sh
//! cargo run -p tower-sessions-memorycached --example app             # memory://, on 127.0.0.1:3000
//! cargo run -p tower-sessions-memorycached --example app -- --store memcached://127.0.0.1:11211
//! ```
//!
//! Log in with any uid (the principal, indexed), count, log out, or log
//! out every session of that uid at once. `--help` lists every flag.

mod routes;

use std::net::SocketAddr;

use anyhow::Context as _;
use clap::{Parser, ValueEnum};
use session_core::{Codec, PrincipalIndex, Sessions, SessionsConfig, Ttl};
use tower_sessions_memorycached::SessionsStore;

/// The example app of tower-sessions-memorycached.
#[derive(Parser)]
#[command(about)]
struct Args {
    /// Where sessions live: `memory://` (in this process) or
    /// `memcached://HOST:PORT[,HOST:PORT...]`.
    #[arg(long, default_value = "memory://")]
    store: String,
    /// A read-first local memcached (`HOST:PORT` or a store URL), as the
    /// original's `local` argument.
    #[arg(long)]
    local: Option<String>,
    /// Address to serve on.
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// Seconds a session lives without a save (each change extends it).
    #[arg(long, default_value_t = 3600)]
    idle_secs: u32,
    /// How sessions are encoded; `storable` is what Perl nodes read and write.
    #[arg(long, value_enum, default_value_t = CodecArg::Json)]
    codec: CodecArg,
}

/// `--codec` values.
#[derive(Clone, Copy, ValueEnum)]
enum CodecArg {
    Json,
    Msgpack,
    Storable,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let (servers, local) = store_url::open(&args.store, args.local.as_deref())
        .with_context(|| format!("--store {}", args.store))?;
    let config = SessionsConfig {
        timeout: Ttl::seconds(args.idle_secs),
        principal: Some("uid".into()),
        principal_index: Some(PrincipalIndex::default()),
        codec: match args.codec {
            CodecArg::Json => Codec::Json,
            CodecArg::Msgpack => Codec::MessagePack,
            CodecArg::Storable => Codec::Storable,
        },
        ..Default::default()
    };
    let mut sessions = Sessions::new(servers, config)?;
    if let Some(local) = local {
        sessions = sessions.with_local(local);
    }
    let store = SessionsStore::new(sessions.clone())?;
    let state = routes::AppState {
        sessions: Some(sessions),
        rendezvous: None,
    };
    let app = routes::app(store, state, time::Duration::seconds(args.idle_secs.into()));
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("--listen {}", args.listen))?;
    tracing::info!(addr = %listener.local_addr()?, store = %args.store, "serving");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown())
        .await?;
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(e) => {
                    tracing::warn!(error = %e, "no SIGTERM handler; Ctrl-C only");
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
