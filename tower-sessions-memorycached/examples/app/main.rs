//! The example app: an axum site whose sessions live in memorycached, through
//! tower-sessions and [`SessionsStore`].
//!
//! ```sh
//! cargo run -p tower-sessions-memorycached --example app             # memory://, on 127.0.0.1:3000
//! cargo run -p tower-sessions-memorycached --example app -- --store memcached://127.0.0.1:11211
//! ```
//!
//! Log in with any uid (the principal, indexed), count, log out, or log
//! out every session of that uid at once. `--help` lists every flag. Logs go
//! to stderr (RUST_LOG sets the level), coloured only on a terminal.
//!
//! Sessions sealed at rest (`session_core::seal`): `--seal-keys-file FILE`
//! or `--seal-keys-env VAR` (the variable's *name*: keys never go on the
//! command line), `--accept-unsealed` while moving an existing store to
//! sealing, `--seal-allow-storable` to combine them with `--codec storable`
//! (which Perl nodes then cannot read).

mod routes;

use std::net::SocketAddr;

use anyhow::Context as _;
use clap::{Parser, ValueEnum};
use session_core::{Codec, Keyring, PrincipalIndex, SealConfig, Sessions, SessionsConfig, Ttl};
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
    /// Seal sessions with the keys in this file (`ID:HEX` entries, the
    /// current key first); reads then require the seal.
    #[arg(long, value_name = "FILE", conflicts_with = "seal_keys_env")]
    seal_keys_file: Option<std::path::PathBuf>,
    /// Seal sessions with the keys in the environment variable named VAR.
    #[arg(long, value_name = "VAR")]
    seal_keys_env: Option<String>,
    /// Transition setting: read plain (unsealed) sessions instead of refusing them.
    #[arg(long)]
    accept_unsealed: bool,
    /// Allow `--codec storable` with a seal (Perl nodes cannot read sealed values).
    #[arg(long)]
    seal_allow_storable: bool,
}

impl Args {
    /// The seal setting, if keys were named.
    fn seal(&self) -> anyhow::Result<Option<SealConfig>> {
        let keyring = match (&self.seal_keys_file, &self.seal_keys_env) {
            (Some(path), _) => Keyring::from_file(path)?,
            (None, Some(var)) => Keyring::from_env(var)?,
            (None, None) => {
                anyhow::ensure!(
                    !self.accept_unsealed && !self.seal_allow_storable,
                    "--accept-unsealed and --seal-allow-storable need seal keys"
                );
                return Ok(None);
            }
        };
        let mut seal = SealConfig::new(keyring);
        seal.accept_unsealed = self.accept_unsealed;
        seal.allow_storable = self.seal_allow_storable;
        Ok(Some(seal))
    }
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
    // Logs on stderr like the other binaries; colour only on a terminal,
    // so a file or the journal gets plain text.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
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
        seal: args.seal()?,
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
