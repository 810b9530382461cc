//! Create, load, save and delete sessions on the embedded `MemoryStore`,
//! with a timeout, a principal (reverse index) and a concurrent save merged.
//!
//! Run: `cargo run -p memorycached-examples --example memory_sessions`

use std::sync::Arc;

use serde_json::json;
use session_core::{MemoryStore, SaveOutcome, Sessions, SessionsConfig, Ttl};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = SessionsConfig {
        timeout: Ttl::seconds(300),
        principal: Some("uid".into()),
        ..Default::default()
    };
    let sessions = Sessions::new(Arc::new(MemoryStore::new()), config)?;

    let mut session = sessions.create().await?;
    session.insert("uid", "jdoe")?;
    session.insert("roles", json!(["admin", "dev"]))?;
    sessions.save(&mut session).await?;
    println!("created {} with {} fields", session.id(), session.len());

    // Two requests load the same session and change different fields.
    let id = session.id().to_string();
    let mut first = sessions
        .load(&id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("gone"))?;
    let mut second = sessions
        .load(&id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("gone"))?;
    first.insert("theme", "dark")?;
    second.insert("lang", "fr")?;
    sessions.save(&mut first).await?;
    if let SaveOutcome::Written { attempts } = sessions.save(&mut second).await? {
        println!("second save merged the first one's change in {attempts} attempts");
    }

    let found = sessions
        .find_by_principal("jdoe")
        .await?
        .ok_or_else(|| anyhow::anyhow!("jdoe has no session"))?;
    println!("jdoe's session: {}", serde_json::to_string(found.data())?);

    let mut doomed = found;
    sessions.delete(&mut doomed).await?;
    println!(
        "after delete, load gives {:?}",
        sessions.load(&id).await?.map(|s| s.len())
    );
    Ok(())
}
