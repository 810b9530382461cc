//! `replicator`: the daemon. Keeps memcached servers equal, master→slave
//! (`--master H:P --slave H:P ...`) or master↔master (`--peer H:P --peer
//! H:P ...`), serves `/metrics`, and stops cleanly on SIGTERM/SIGINT.
//! A fatal error is one line on stderr (`error: ...`) and exit 2.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{CommandFactory as _, Parser};
use replicator::config::{DEFAULT_METRICS, MarkerFlag};
use replicator::{Config, FileConfig, Replicator};

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

/// Replicates every key (sessions, reverse keys, anything) between
/// memcached servers: from the `watch mutations deletions` feed, values
/// read with meta mg (value, flags, remaining TTL), plus full comparisons
/// at start, after reconnects, after missed events and periodically.
/// Deletes reach slaves, and between masters a delete on either side
/// sticks on both: in milliseconds on memcached 1.6.38+, in about a second
/// on 1.6.18 (no deletions feed: key-list comparisons).
///
/// Logs go to stderr (or --log-output stdout); RUST_LOG sets the level
/// (default info).
#[derive(Debug, Parser)]
#[command(
    name = "replicator",
    version = VERSION,
    about = "Keeps memcached servers equal, master->slave or master<->master, deletes included"
)]
struct Args {
    /// TOML file: master, slaves, peers, resync_interval_secs, shards,
    /// queue_capacity, io_timeout_ms, drain_timeout_ms, metrics,
    /// state_file, marker_flag, key_list_interval_ms, feed_heartbeat_ms (a
    /// write to each source this often keeps its watch lines prompt; 0:
    /// none; default 20). Flags given here
    /// override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,

    /// The master whose writes are copied to every --slave: host:port, or a
    /// one-server URL (memcached://USER:PASSWORD@H:P, memcacheds://H:P?ca=FILE
    /// for TLS), as for every node below.
    #[arg(long, value_name = "H:P|URL")]
    master: Option<String>,

    /// A slave of --master (repeat for several); it ends equal to the
    /// master, deletes included.
    #[arg(long, value_name = "H:P|URL")]
    slave: Vec<String>,

    /// A master replicating with the other peers (give two or more). The
    /// first peer wins writes of one key made at the same time on several.
    #[arg(long, value_name = "H:P|URL")]
    peer: Vec<String>,

    /// Seconds between periodic full comparisons; 0 = none [default: 60].
    /// They catch what the feeds and key lists cannot see (evictions,
    /// a missed write of a key every node has).
    #[arg(long, value_name = "SECS")]
    resync_interval: Option<u64>,

    /// Parallel copiers per link [default: 4].
    #[arg(long, value_name = "N")]
    shards: Option<usize>,

    /// Keys queued per copier and lane (new writes, and a comparison's
    /// copies) before events are dropped and left to a resync
    /// [default: 10000].
    #[arg(long, value_name = "N")]
    queue_capacity: Option<usize>,

    /// Deadline of each request to memcached, milliseconds [default: 2000].
    #[arg(long, value_name = "MS")]
    io_timeout_ms: Option<u64>,

    /// How long a stop waits for queued keys to be copied, milliseconds
    /// [default: 5000].
    #[arg(long, value_name = "MS")]
    drain_timeout_ms: Option<u64>,

    /// Address of the HTTP server for /metrics (Prometheus text) and
    /// /healthz [default: 127.0.0.1:9150].
    #[arg(long, value_name = "ADDR")]
    metrics: Option<String>,

    /// Between peers: a file where the replicator saves which keys were in
    /// sync (after every comparison and at a clean stop, atomically), read
    /// back at the next start, so that a delete made while the replicator
    /// was stopped or dead (a logout) is still carried to the other peers
    /// instead of being undone. Without it, such a delete is undone.
    #[arg(long, value_name = "FILE")]
    state_file: Option<PathBuf>,

    /// Between peers: the flags bit replicated copies carry, to tell them
    /// from clients' writes; one bit of 0xFFFF0000 (decimal or 0x hex)
    /// [default: 0x40000000]. Change it only if a client of yours uses
    /// that bit; stop the replicator and let it settle when you do.
    #[arg(long, value_name = "BIT", value_parser = replicator::config::parse_flag)]
    marker_flag: Option<u32>,

    /// Where a server has no `watch deletions` (memcached 1.6.18 has none;
    /// 1.6.38 has it): the shortest time between two
    /// comparisons of the nodes' key lists, which carry deletes in about
    /// that long; the next waits 20x the last one's duration if that is
    /// longer (5% of the time). 0 = none [default: 1000].
    #[arg(long, value_name = "MS")]
    key_list_interval_ms: Option<u64>,

    /// Logging, and the hidden flags packaging uses.
    #[command(flatten)]
    daemon: daemon::Flags,
}

/// The file's settings with the flags over them, as a validated
/// [`Config`] and the metrics address.
fn build(args: Args) -> anyhow::Result<(Config, String)> {
    let mut file = match &args.config {
        Some(path) => FileConfig::load(path)?,
        None => FileConfig::default(),
    };
    if args.master.is_some() {
        file.master = args.master;
    }
    if !args.slave.is_empty() {
        file.slaves = args.slave;
    }
    if !args.peer.is_empty() {
        file.peers = args.peer;
    }
    file.resync_interval_secs = args.resync_interval.or(file.resync_interval_secs);
    file.key_list_interval_ms = args.key_list_interval_ms.or(file.key_list_interval_ms);
    file.shards = args.shards.or(file.shards);
    file.queue_capacity = args.queue_capacity.or(file.queue_capacity);
    file.io_timeout_ms = args.io_timeout_ms.or(file.io_timeout_ms);
    file.drain_timeout_ms = args.drain_timeout_ms.or(file.drain_timeout_ms);
    file.state_file = args.state_file.or(file.state_file);
    file.marker_flag = args.marker_flag.map(MarkerFlag).or(file.marker_flag);
    let metrics = args
        .metrics
        .or(file.metrics.take())
        .unwrap_or_else(|| DEFAULT_METRICS.to_owned());
    Ok((file.into_config()?, metrics))
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let flags = args.daemon.clone();
    daemon::main(
        &flags,
        Args::command,
        || run(args),
        std::process::ExitCode::from(2),
    )
}

async fn run(args: Args) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let (config, metrics_addr) = build(args)?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let listener = tokio::net::TcpListener::bind(&metrics_addr)
        .await
        .with_context(|| format!("listening on {metrics_addr}"))?;
    let replicator = Arc::new(Replicator::start(config)?);
    let app = {
        let r = Arc::clone(&replicator);
        axum::Router::new()
            .route(
                "/metrics",
                axum::routing::get(move || {
                    let r = Arc::clone(&r);
                    async move {
                        (
                            [("content-type", "text/plain; version=0.0.4")],
                            r.metrics_text(),
                        )
                    }
                }),
            )
            .route("/healthz", axum::routing::get(|| async { "ok\n" }))
    };
    tracing::info!(metrics = %listener.local_addr().map(|a| a.to_string()).unwrap_or(metrics_addr), "replicator started");
    let (http_stop, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let http = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = http_stopped.await;
            })
            .await
    });
    tokio::select! {
        _ = int.recv() => tracing::info!("SIGINT: stopping"),
        _ = term.recv() => tracing::info!("SIGTERM: stopping"),
    }
    let _ = http_stop.send(());
    let _ = http.await;
    let replicator = Arc::try_unwrap(replicator)
        .map_err(|_| anyhow::anyhow!("internal: metrics server still holds the replicator"))?;
    let report = replicator.stop().await;
    if report.drained {
        tracing::info!(
            state_saved = report.state_saved,
            "stopped; every queued key was copied"
        );
    } else {
        tracing::warn!(
            not_copied = report.not_copied,
            "stopped before the queue drained; the next start's resync copies them"
        );
    }
    Ok(())
}
