//! Property test of the per-user index on [`MemoryStore`]: after any
//! interleaving of create, save (moving a session between users), touch,
//! delete, expiry and regenerate, `list_by_principal` of every user is
//! exactly the set of that user's live sessions.
//!
//! Expiry is simulated by removing the session item from the store behind
//! the `Sessions`' back (what memcached's expiry or eviction looks like to
//! the index: the session is gone and nobody told the index), so the test
//! needs no wall-clock waits.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use proptest::prelude::*;
use serde_json::json;

use crate::config::{PrincipalIndex, SessionsConfig};
use crate::error::Error;
use crate::id::SessionId;
use crate::memory::MemoryStore;
use crate::session::{Session, SessionData};
use crate::sessions::Sessions;
use crate::store::Store;

const USERS: [&str; 3] = ["ann", "bob", "cat"];

#[derive(Debug, Clone)]
enum Op {
    Create(usize),
    Move(usize, Option<usize>),
    Touch(usize),
    Delete(usize),
    Expire(usize),
    Regenerate(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..USERS.len()).prop_map(Op::Create),
        (any::<usize>(), prop::option::of(0..USERS.len())).prop_map(|(i, u)| Op::Move(i, u)),
        any::<usize>().prop_map(Op::Touch),
        any::<usize>().prop_map(Op::Delete),
        any::<usize>().prop_map(Op::Expire),
        any::<usize>().prop_map(Op::Regenerate),
    ]
}

/// Runs `ops` and checks the index after each; `Err` says where it diverged.
async fn run(ops: Vec<Op>) -> Result<(), String> {
    let store = Arc::new(MemoryStore::new());
    let config = SessionsConfig {
        principal: Some("uid".into()),
        principal_index: Some(PrincipalIndex::default()),
        ..Default::default()
    };
    let s = Sessions::new(store.clone(), config).map_err(|e| e.to_string())?;
    // Every handle ever made, and the model: live session id -> its user.
    let mut handles: Vec<Session> = Vec::new();
    let mut live: BTreeMap<SessionId, Option<usize>> = BTreeMap::new();
    for (step, op) in ops.into_iter().enumerate() {
        let pick = |i: usize| (!handles.is_empty()).then(|| i % handles.len());
        match op.clone() {
            Op::Create(u) => {
                let mut data = SessionData::new();
                data.insert("uid".into(), json!(USERS[u]));
                let h = s.create_with(data, None).await.map_err(|e| e.to_string())?;
                live.insert(h.id().clone(), Some(u));
                handles.push(h);
            }
            Op::Move(i, u) => {
                let Some(i) = pick(i) else { continue };
                let h = &mut handles[i];
                match u {
                    Some(u) => {
                        h.insert("uid", USERS[u]).map_err(|e| e.to_string())?;
                    }
                    None => {
                        h.remove("uid");
                    }
                }
                match s.save(h).await {
                    // An unchanged save writes nothing, so it does not
                    // notice an expired session: only live ones move.
                    Ok(_) => {
                        if let Some(owner) = live.get_mut(h.id()) {
                            *owner = u;
                        }
                    }
                    Err(Error::SessionGone { .. } | Error::Deleted { .. }) => {}
                    Err(e) => return Err(format!("step {step} {op:?}: {e}")),
                }
            }
            Op::Touch(i) => {
                let Some(i) = pick(i) else { continue };
                let _ = s.touch(&handles[i]).await.map_err(|e| e.to_string())?;
            }
            Op::Delete(i) => {
                let Some(i) = pick(i) else { continue };
                let _ = s.delete(&mut handles[i]).await.map_err(|e| e.to_string())?;
                live.remove(handles[i].id());
            }
            Op::Expire(i) => {
                let Some(i) = pick(i) else { continue };
                let _ = store
                    .delete(handles[i].id().as_str())
                    .await
                    .map_err(|e| e.to_string())?;
                live.remove(handles[i].id());
            }
            Op::Regenerate(i) => {
                let Some(i) = pick(i) else { continue };
                let h = &mut handles[i];
                let old = h.id().clone();
                match s.regenerate(h).await {
                    Ok(()) => {
                        let user = live.remove(&old).flatten();
                        live.insert(h.id().clone(), user);
                    }
                    Err(Error::SessionGone { .. } | Error::Deleted { .. }) => {
                        live.remove(&old);
                    }
                    Err(e) => return Err(format!("step {step} {op:?}: {e}")),
                }
            }
        }
        for (u, name) in USERS.iter().enumerate() {
            let want: BTreeSet<&SessionId> = live
                .iter()
                .filter(|(_, owner)| **owner == Some(u))
                .map(|(id, _)| id)
                .collect();
            let got = s.list_by_principal(name).await.map_err(|e| e.to_string())?;
            let got: BTreeSet<&SessionId> = got.iter().collect();
            if got != want {
                return Err(format!(
                    "after step {step} {op:?}: {name} listed {got:?}, live {want:?}"
                ));
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn index_equals_the_live_sessions(ops in prop::collection::vec(op(), 1..24)) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        rt.block_on(run(ops)).map_err(TestCaseError::fail)?;
    }
}
