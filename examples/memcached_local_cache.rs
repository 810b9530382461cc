//! The original's deployment on memcached: sessions on principal servers,
//! read first from a local memcached on this host.
//!
//! Run (with memcached listening on those ports):
//! `cargo run -p memorycached-examples --example memcached_local_cache -- \
//!      memcached://127.0.0.1:11211,127.0.0.1:11212 memcached://127.0.0.1:11311`
//!
//! The first argument is the principal servers (the original's `servers`),
//! the optional second one the local cache (its `local`).

use std::sync::Arc;

use anyhow::Context;
use backend_memcached::MemcachedStore;
use session_core::{Sessions, SessionsConfig, Store, Ttl};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let servers = args
        .next()
        .unwrap_or_else(|| "memcached://127.0.0.1:11211".to_owned());
    let local = args.next();

    let config = SessionsConfig {
        timeout: Ttl::seconds(300),
        principal: Some("uid".into()),
        ..Default::default()
    };
    let principal: Arc<dyn Store> =
        Arc::new(MemcachedStore::from_url(&servers).context("principal servers")?);
    let mut sessions = Sessions::new(principal, config)?;
    if let Some(local) = &local {
        sessions = sessions.with_local(Arc::new(
            MemcachedStore::from_url(local).context("local cache")?,
        ));
    }

    let mut session = sessions
        .create()
        .await
        .with_context(|| format!("creating a session on {servers} (is memcached running?)"))?;
    session.insert("uid", "jdoe")?;
    session.insert("mail", "jdoe@example.org")?;
    sessions.save(&mut session).await?;
    println!("saved {} on {servers}", session.id());

    // Whether the local copy answered is counted by `Sessions`, not guessed:
    // a copy is only used after it was checked against the principal.
    let hits_before = sessions.stats().local_hits;
    let loaded = sessions
        .load(session.id().as_str())
        .await?
        .context("the session just saved is gone")?;
    let from_local = sessions.stats().local_hits > hits_before;
    let source = match (&local, from_local) {
        (Some(local), true) => format!(
            "from the local cache {local} (its copy checked against the principal's version)"
        ),
        (Some(local), false) => {
            format!("from the principal servers (the local cache {local} had no usable copy)")
        }
        (None, _) => "from the principal servers (no local cache given)".to_owned(),
    };
    println!("loaded {} fields {source}", loaded.len());
    let by_user = sessions.find_by_principal("jdoe").await?;
    println!("jdoe -> {:?}", by_user.map(|s| s.id().to_string()));
    Ok(())
}
