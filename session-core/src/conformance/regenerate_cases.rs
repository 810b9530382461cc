//! Checks of id rotation under a concurrent writer: a write that reaches
//! the old id while [`Sessions::regenerate`] copies it is carried over to
//! the new id, never lost with the old one.

use std::sync::Arc;

use serde_json::json;

use super::interleave::BeforeDelete;
use super::{CaseResult, Context, MakeStore, check};
use crate::codec::Codec;
use crate::config::SessionsConfig;
use crate::error::Result;
use crate::sessions::Sessions;
use crate::store::{Store, Ttl};

/// What another request's save does to `key` at the worst moment: adds
/// `"late": true`, written with `cas` as a save would.
async fn late_write(inner: Arc<dyn Store>, key: String) -> Result<()> {
    if let Some(entry) = inner.get(&key).await? {
        let mut data = Codec::decode_stored(&entry.value, entry.flags, &key)?;
        data.insert("late".into(), json!(true));
        let bytes = Codec::Json.encode(&data)?;
        let _ = inner
            .cas(&key, &bytes, Codec::Json.flags(), Ttl::NEVER, entry.version)
            .await?;
    }
    Ok(())
}

/// A save that lands on the old id while `regenerate` retires it ends up
/// under the new id (where the store can delete conditionally; elsewhere
/// the old id is still retired and the data copied).
pub(super) async fn regenerate_carries_over_a_late_write(make: MakeStore) -> CaseResult {
    let inner = make().await;
    let plain = Sessions::new(inner.clone(), SessionsConfig::default()).ctx("Sessions::new")?;
    let mut session = plain.create().await.ctx("create")?;
    session.insert("cart", 3).ctx("insert")?;
    let _ = plain.save(&mut session).await.ctx("save")?;
    let old = session.id().clone();
    let store: Arc<dyn Store> =
        Arc::new(BeforeDelete::new(inner.clone(), old.as_str(), late_write));
    let s = Sessions::new(store, SessionsConfig::default()).ctx("Sessions::new")?;
    s.regenerate(&mut session).await.ctx("regenerate")?;
    check!(
        inner.get(old.as_str()).await.ctx("get old")?.is_none(),
        "the old id survived regenerate"
    );
    let now = plain
        .load_id(session.id())
        .await
        .ctx("load new")?
        .ok_or("the new id does not load")?;
    check!(
        now.get_value("cart") == Some(&json!(3)),
        "regenerate lost the data: {:?}",
        now.data()
    );
    if inner.capabilities().conditional_delete {
        check!(
            now.get_value("late") == Some(&json!(true))
                && session.get_value("late") == Some(&json!(true)),
            "a write to the old id during regenerate was lost: {:?}",
            now.data()
        );
    }
    Ok(())
}
