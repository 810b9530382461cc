//! The background runtime that owns every proxy, container handle and Docker client.
//!
//! Tests run on whatever runtime `#[tokio::test]` gives them (current-thread
//! by default, one per test) and those runtimes die with the test. A proxy or a
//! Docker connection spawned there would die with it, or, worse, keep a pooled
//! connection bound to a dead reactor. So everything long-lived runs here: one
//! multi-thread runtime, built on first use and never dropped, whose futures
//! can be awaited from any runtime (a `JoinHandle` is runtime-agnostic).

use std::{
    future::Future,
    sync::{OnceLock, mpsc},
    time::Duration,
};

use tokio::runtime::Runtime;

use crate::Error;

/// Prefix of the background runtime's thread names, used to detect re-entry.
const THREAD_NAME: &str = "test-support-rt";

fn runtime() -> Result<&'static Runtime, Error> {
    // `get_or_init` runs one initialiser only: a runtime built by a losing
    // racer would be dropped in an async context, which tokio forbids.
    static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                // Two workers: testcontainers' drop path uses `block_in_place`,
                // which needs a multi-thread runtime, and CI has two cores.
                .worker_threads(2)
                .thread_name(THREAD_NAME)
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| Error::Io {
            context: "building the test-support background runtime".to_owned(),
            source: std::io::Error::other(e.clone()),
        })
}

/// Runs `fut` on the background runtime and waits for it from any async context.
pub(crate) async fn run<F, T>(fut: F) -> Result<T, Error>
where
    F: Future<Output = Result<T, Error>> + Send + 'static,
    T: Send + 'static,
{
    match runtime()?.spawn(fut).await {
        Ok(result) => result,
        Err(join) => Err(Error::Io {
            context: "test-support background task".into(),
            source: std::io::Error::other(join.to_string()),
        }),
    }
}

/// Spawns `fut` on the background runtime without waiting for it.
pub(crate) fn spawn<F>(fut: F) -> Result<(), Error>
where
    F: Future<Output = ()> + Send + 'static,
{
    runtime()?.spawn(fut);
    Ok(())
}

/// Runs `fut` on the background runtime and blocks the calling thread until it
/// finishes or `limit` passes; for `Drop`, which has no async context.
///
/// On a background-runtime thread (a value dropped inside one of our own
/// tasks) it runs `fut` in place through `block_in_place`, which the
/// multi-thread runtime allows, so the work is still done before `Drop`
/// returns.
pub(crate) fn block_on<F>(fut: F, limit: Duration)
where
    F: Future<Output = ()> + Send + 'static,
{
    let Ok(rt) = runtime() else { return };
    let on_background = std::thread::current()
        .name()
        .is_some_and(|name| name.starts_with(THREAD_NAME));
    if on_background {
        let handle = rt.handle().clone();
        tokio::task::block_in_place(move || {
            handle.block_on(async move {
                let _ = tokio::time::timeout(limit, fut).await;
            });
        });
        return;
    }
    let (done_tx, done_rx) = mpsc::sync_channel(1);
    rt.spawn(async move {
        fut.await;
        let _ = done_tx.send(());
    });
    let _ = done_rx.recv_timeout(limit);
}
