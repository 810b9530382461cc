//! The "before" state of each request's session: the handle `load`
//! returned (fields, and the version they were read at), kept until the
//! same request's `save`, so the save can write only what the request
//! changed, conditional on that version.
//!
//! tower-sessions hands a store the whole record on `save` and nothing
//! about what it loaded. Writing the whole record is last-writer-wins: of
//! two concurrent requests of one user, one setting `a` and one setting
//! `b`, the later save puts back the `a` it loaded. A field-level diff
//! needs the state the request started from, and the trait gives no
//! per-request handle to keep it in. What identifies the request is the
//! task: tower-sessions' middleware runs the handler (where the session is
//! loaded, lazily) and the save after it in one future, and hyper/axum run
//! each request's future as one tokio task (HTTP/1 requests of one
//! connection one after another, HTTP/2 streams as tasks of their own).
//! So bases are kept per (session id, [`tokio::task::Id`]).
//!
//! Bounds: at most `capacity` bases; a request that loads but never saves
//! (read-only) leaves its base until the same connection loads the session
//! again, or until it is older than [`MAX_AGE`] and the map is full, when
//! the oldest go first. A save that finds no base (evicted, or the session
//! was loaded in another task, e.g. one the handler spawned) falls back to
//! replacing the whole field set, as tower-sessions' own stores do, and is
//! counted in [`crate::StoreStats::replaced`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tower_sessions_core::session::Id;

use session_core::Session;

/// A base older than this is dropped first when the map is full.
pub const MAX_AGE: Duration = Duration::from_secs(300);

/// Default for [`crate::SessionsStore::with_base_capacity`].
pub const DEFAULT_CAPACITY: usize = 10_000;

/// One request's before state.
#[derive(Debug)]
struct Base {
    session: Session,
    at: Instant,
}

/// Bases by session id, then by task.
#[derive(Debug)]
pub(crate) struct Bases {
    map: Mutex<HashMap<i128, HashMap<tokio::task::Id, Base>>>,
    capacity: usize,
}

impl Bases {
    pub(crate) fn new(capacity: usize) -> Self {
        Bases {
            map: Mutex::default(),
            capacity: capacity.max(1),
        }
    }

    /// Remembers `session` as the current task's base for `id`. Outside a
    /// tokio task nothing is kept (the save will replace).
    pub(crate) fn put(&self, id: Id, session: Session) {
        let Some(task) = tokio::task::try_id() else {
            return;
        };
        let mut map = self.lock();
        let len: usize = map.values().map(HashMap::len).sum();
        if len >= self.capacity {
            evict(&mut map, len + 1 - self.capacity);
        }
        map.entry(id.0).or_default().insert(
            task,
            Base {
                session,
                at: Instant::now(),
            },
        );
    }

    /// The current task's base for `id`, if any.
    pub(crate) fn get(&self, id: Id) -> Option<Session> {
        let task = tokio::task::try_id()?;
        let map = self.lock();
        map.get(&id.0)?.get(&task).map(|b| b.session.clone())
    }

    /// Forgets every base of `id` (the session is gone).
    pub(crate) fn forget(&self, id: Id) {
        self.lock().remove(&id.0);
    }

    /// How many bases are kept.
    pub(crate) fn len(&self) -> usize {
        self.lock().values().map(HashMap::len).sum()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i128, HashMap<tokio::task::Id, Base>>> {
        // A panic while holding the lock cannot leave the map inconsistent
        // (every change is one insert or remove), so a poisoned lock is used.
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Drops every base older than [`MAX_AGE`], then, if fewer than `at_least`
/// went, the oldest ones until `at_least` did.
fn evict(map: &mut HashMap<i128, HashMap<tokio::task::Id, Base>>, at_least: usize) {
    let now = Instant::now();
    let mut dropped = 0;
    for inner in map.values_mut() {
        let before = inner.len();
        inner.retain(|_, b| now.duration_since(b.at) < MAX_AGE);
        dropped += before - inner.len();
    }
    if dropped < at_least {
        let mut ages: Vec<(Instant, i128, tokio::task::Id)> = map
            .iter()
            .flat_map(|(id, inner)| inner.iter().map(|(t, b)| (b.at, *id, *t)))
            .collect();
        ages.sort_unstable_by_key(|(at, _, _)| *at);
        for (_, id, task) in ages.into_iter().take(at_least - dropped) {
            if let Some(inner) = map.get_mut(&id) {
                inner.remove(&task);
            }
        }
    }
    map.retain(|_, inner| !inner.is_empty());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A handle whose field `n` is `n` (never written anywhere).
    async fn fields(n: i64) -> Session {
        let config = session_core::SessionsConfig {
            update_only: true,
            ..Default::default()
        };
        let sessions = session_core::Sessions::new(
            std::sync::Arc::new(session_core::MemoryStore::new()),
            config,
        )
        .unwrap();
        let mut s = sessions.create().await.unwrap();
        s.insert("n", n).unwrap();
        s
    }

    fn n(s: Option<Session>) -> Option<i64> {
        s.map(|s| s.get("n").unwrap().unwrap())
    }

    #[tokio::test]
    async fn bases_are_per_task_and_bounded() {
        // The test body itself runs in `block_on`, not in a task.
        tokio::spawn(per_task_and_bounded()).await.unwrap();
    }

    #[tokio::test]
    async fn outside_a_task_nothing_is_kept() {
        let bases = Bases::new(3);
        bases.put(Id(1), fields(1).await);
        assert_eq!(n(bases.get(Id(1))), None);
        assert_eq!(bases.len(), 0);
    }

    async fn per_task_and_bounded() {
        let bases = std::sync::Arc::new(Bases::new(3));
        bases.put(Id(1), fields(1).await);
        assert_eq!(n(bases.get(Id(1))), Some(1));
        // Another task does not see this task's base.
        let other = std::sync::Arc::clone(&bases);
        let seen = tokio::spawn(async move { other.get(Id(1)).is_some() })
            .await
            .unwrap();
        assert!(!seen);
        for i in 2..=5 {
            bases.put(Id(i.into()), fields(i).await);
        }
        assert_eq!(bases.len(), 3, "capacity holds");
        assert_eq!(n(bases.get(Id(1))), None, "the oldest went first");
        assert_eq!(n(bases.get(Id(5))), Some(5));
        bases.forget(Id(5));
        assert_eq!(n(bases.get(Id(5))), None);
    }
}
