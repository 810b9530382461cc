//! `soap-bridge`: the bridge's command. With no arguments it serves the SOAP
//! endpoint and the JSON mirror on the in-memory store at 127.0.0.1:8080.
//! Settings come from an optional TOML file (`--config`), then flags.
//! A fatal error (a bad setting, a busy port) is one line on stderr
//! (`error: ...`) and exit 1.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{CommandFactory as _, Parser};
use soap_bridge::Config;

#[path = "../../cli-support/daemon.rs"]
mod daemon;

/// `--version`: the version and the commit built (`cli-support/build.rs`).
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("MEMORYCACHED_COMMIT_ID"),
    ")"
);

/// Many small allocations from many threads: glibc's malloc serialises
/// them on its arena locks (see the workspace manifest).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Sessions for every language: a SOAP 1.1 service compatible with the
/// original MemcachedSOAPClass (SOAP::Lite clients work unchanged, only the
/// URL differs), plus a JSON mirror at /sessions.
///
/// Endpoints: SOAP at / and /cgi-bin/MemcachedSOAP.cgi, the WSDL at /?wsdl,
/// JSON at /sessions/{id}, /metrics (Prometheus) and /healthz; with --admin,
/// a web session explorer at /admin/. As LemonLDAP::NG's session server:
/// its SOAP service at /llng/soap, its REST service at
/// /llng/sessions/{type}/ (docs/llng.md).
/// Logs go to stderr (or --log-output stdout); RUST_LOG sets the level
/// (default info).
#[derive(Debug, Parser)]
#[command(
    name = "soap-bridge",
    version = VERSION,
    about = "Session service over SOAP (MemcachedSOAPClass compatible), JSON and LemonLDAP::NG's protocols"
)]
struct Args {
    /// TOML file with the same settings (listen, store, local, timeout,
    /// principal, reverse_key_refresh, codec, body_limit, header_timeout_ms, body_timeout_ms,
    /// shutdown_grace_ms, principal_index, [auth], [admin], [llng], [tls]); flags
    /// given here override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,

    /// Address to listen on [default: 127.0.0.1:8080]. Use 0.0.0.0:PORT
    /// only behind authentication or a firewall.
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,

    /// Principal store: memory:// (in this process, the default),
    /// memcached://HOST:PORT[,HOST:PORT[:WEIGHT]][?timeout_ms=..&...],
    /// redis://[USER:PASSWORD@]HOST[:PORT][/DB][?prefix=..&timeout_ms=..].
    #[arg(long, value_name = "URL")]
    store: Option<String>,

    /// Read-first local store (the original's `local`): HOST:PORT of a
    /// memcached, or a store URL.
    #[arg(long, value_name = "HOST:PORT")]
    local: Option<String>,

    /// Session expiry in seconds, re-set on every write; 0 = never
    /// [default: 0].
    #[arg(long, value_name = "SECS")]
    timeout: Option<u32>,

    /// Field naming a session's user (e.g. uid): writes the reverse index
    /// and enables findByPrincipal / GET /principals/{uid}.
    #[arg(long, value_name = "FIELD")]
    principal: Option<String>,

    /// Seconds after this process wrote a session's reverse key during
    /// which saves that keep the session's user leave it alone; the key is
    /// written that much longer-lived than the session. 0 rewrites it on
    /// every save, as the Perl original does [default: 60].
    #[arg(long, value_name = "SECS")]
    reverse_key_refresh: Option<u32>,

    /// Encoding of new writes: json (default), msgpack, or storable (exactly
    /// what the Perl original writes, for mixed Perl fleets). Reads accept
    /// any codec by its flags.
    #[arg(long, value_name = "CODEC")]
    codec: Option<String>,

    /// Keep a per-user index of live sessions (needs --principal), so every
    /// session of a user can be listed and revoked (the /admin pages use it).
    #[arg(long)]
    principal_index: bool,

    /// Serve the web session explorer under /admin (config: [admin]
    /// enabled = true). Needs [auth] in the --config file: its login form
    /// asks for those credentials.
    #[arg(long)]
    admin: bool,

    /// File holding LemonLDAP::NG's `key` (config: [llng] key; one line, a
    /// final newline is ignored). With it, LL::NG's REST client may create
    /// sessions under the ids it makes and list them (all=1), proving it
    /// with its __secret; without it, both are refused with 403.
    #[arg(long, value_name = "FILE")]
    llng_key_file: Option<PathBuf>,

    /// Serve HTTPS with this certificate chain (PEM, leaf first; config:
    /// [tls] cert). Needs --tls-key.
    #[arg(long, value_name = "FILE")]
    tls_cert: Option<PathBuf>,

    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1; config:
    /// [tls] key).
    #[arg(long, value_name = "FILE")]
    tls_key: Option<PathBuf>,

    /// Accepted clock difference, in seconds, for LL::NG's __secret
    /// (its restClockTolerance; config: [llng] clock_tolerance_secs)
    /// [default: 15].
    #[arg(long, value_name = "SECS")]
    llng_clock_tolerance: Option<u64>,

    /// Seal sessions at rest with the keys in this file (ID:HEX entries, the
    /// current key first; config: [seal] keys_file). Reads then require the seal.
    #[arg(long, value_name = "FILE", conflicts_with = "seal_keys_env")]
    seal_keys_file: Option<PathBuf>,

    /// Seal sessions with the keys in the environment variable named VAR
    /// (config: [seal] keys_env). Keys are never taken on the command line.
    #[arg(long, value_name = "VAR")]
    seal_keys_env: Option<String>,

    /// Transition setting: read plain (unsealed) sessions instead of
    /// refusing them (config: [seal] accept_unsealed).
    #[arg(long)]
    accept_unsealed: bool,

    /// Allow --codec storable with a seal; Perl nodes cannot read sealed
    /// values (config: [seal] allow_storable).
    #[arg(long)]
    seal_allow_storable: bool,

    /// Logging, and the hidden flags packaging uses.
    #[command(flatten)]
    daemon: daemon::Flags,
}

impl Args {
    fn into_config(self) -> anyhow::Result<Config> {
        let mut config = match &self.config {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        if let Some(v) = self.listen {
            config.listen = v;
        }
        if let Some(v) = self.store {
            config.store = v;
        }
        if let Some(v) = self.local {
            config.local = Some(v);
        }
        if let Some(v) = self.timeout {
            config.timeout = v;
        }
        if let Some(v) = self.principal {
            config.principal = Some(v);
        }
        if let Some(v) = self.reverse_key_refresh {
            config.reverse_key_refresh = v;
        }
        if let Some(v) = self.codec {
            config.codec = v;
        }
        if self.principal_index {
            config.principal_index = true;
        }
        if self.admin {
            config.admin.enabled = true;
        }
        if let Some(path) = &self.llng_key_file {
            let key = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the LL::NG key file {}", path.display()))?;
            config.llng.key = Some(key.strip_suffix('\n').unwrap_or(&key).to_owned());
        }
        if let Some(v) = self.llng_clock_tolerance {
            config.llng.clock_tolerance_secs = v;
        }
        if let Some(v) = self.tls_cert {
            config.tls.cert = Some(v);
        }
        if let Some(v) = self.tls_key {
            config.tls.key = Some(v);
        }
        if let Some(v) = self.seal_keys_file {
            config.seal.keys_file = Some(v);
            config.seal.keys_env = None;
        }
        if let Some(v) = self.seal_keys_env {
            config.seal.keys_env = Some(v);
            config.seal.keys_file = None;
        }
        config.seal.accept_unsealed |= self.accept_unsealed;
        config.seal.allow_storable |= self.seal_allow_storable;
        Ok(config)
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM. The handlers are installed
/// here, before the caller announces it listens, so a signal sent as soon as
/// the address is printed is never lost to the default action.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => tracing::info!("SIGINT received"),
            _ = term.recv() => tracing::info!("SIGTERM received"),
        }
    })
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let flags = args.daemon.clone();
    daemon::main(
        &flags,
        Args::command,
        || run(args),
        std::process::ExitCode::FAILURE,
    )
}

async fn run(args: Args) -> anyhow::Result<()> {
    let config = args.into_config()?;
    // Everything is checked before the port is taken.
    let state = soap_bridge::app_state(config.clone())?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr().context("listener address")?;
    let shutdown = shutdown_signal()?;
    let scheme = if config.tls.enabled() {
        "https"
    } else {
        "http"
    };
    // The URL as it may be shown: a `user:password@` loses its password.
    let store = store_url::redact(&config.store);
    println!(
        "soap-bridge listening on {scheme}://{addr}/ (SOAP at / and /cgi-bin/MemcachedSOAP.cgi, \
         WSDL at /?wsdl, JSON at /sessions, LemonLDAP::NG at /llng/soap and /llng/sessions) \
         with store {store}"
    );
    if config.admin.enabled {
        println!("soap-bridge: session explorer at {scheme}://{addr}/admin/");
    }
    tracing::info!(%addr, %store, auth = config.auth.is_some(), tls = config.tls.enabled(), "serving");
    soap_bridge::serve_state(state, listener, shutdown).await?;
    Ok(())
}
