//! The reverse key beside the `cas` (`reverse.rs`): sent together with it
//! when a save keeps the session's user, after it otherwise, and removed
//! again when the `cas` finds the session gone; left alone within the
//! refresh window after this process wrote it (`renewal.rs`).

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::json;

use super::Sessions;
use crate::config::{ConflictPolicy, SessionsConfig};
use crate::error::{Error, Result};
use crate::memory::MemoryStore;
use crate::principal::md5_hex;
use crate::session::SessionData;
use crate::store::{CasOutcome, Store, Ttl, Version};
use crate::wrapper::StoreWrapper;

/// A `MemoryStore` that records how many writes were in flight at once:
/// each `cas` and `set` yields once before it is applied, so two writes
/// sent together are both in flight. `set`s fail while `fail_sets` is on.
#[derive(Debug, Default)]
struct Overlap {
    inner: MemoryStore,
    in_flight: AtomicUsize,
    peak: AtomicUsize,
    /// The keys written, in the order the writes were applied.
    applied: Mutex<Vec<String>>,
    fail_sets: AtomicBool,
}

impl Overlap {
    async fn write<T>(&self, key: &str, write: impl Future<Output = Result<T>>) -> Result<T> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        tokio::task::yield_now().await;
        let result = write.await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.applied.lock().unwrap().push(key.to_owned());
        result
    }

    /// The most writes in flight at once since the last call; forgets the log.
    fn take_peak(&self) -> (usize, Vec<String>) {
        let applied = std::mem::take(&mut *self.applied.lock().unwrap());
        (self.peak.swap(0, Ordering::SeqCst), applied)
    }
}

#[async_trait]
impl StoreWrapper for Overlap {
    type Inner = MemoryStore;
    fn inner(&self) -> &MemoryStore {
        &self.inner
    }

    async fn set(&self, key: &str, value: &[u8], flags: u32, ttl: Ttl) -> Result<Option<Version>> {
        if self.fail_sets.load(Ordering::SeqCst) {
            return Err(Error::InvalidConfig("set refused by the test".into()));
        }
        self.write(key, self.inner.set(key, value, flags, ttl))
            .await
    }

    async fn cas(
        &self,
        key: &str,
        value: &[u8],
        flags: u32,
        ttl: Ttl,
        expected: Version,
    ) -> Result<CasOutcome> {
        self.write(key, self.inner.cas(key, value, flags, ttl, expected))
            .await
    }
}

fn user(uid: &str) -> SessionData {
    let mut data = SessionData::new();
    data.insert("uid".into(), json!(uid));
    data.insert("cn".into(), json!("Jean Dupont"));
    data
}

/// Sessions with `uid` as principal on an [`Overlap`] store, and one
/// session of `jdoe`'s (its id). The reverse key is written on every save,
/// as the original does (no refresh window).
async fn setup(conflict: ConflictPolicy) -> (Arc<Overlap>, Sessions, String) {
    setup_with(conflict, Duration::ZERO).await
}

/// [`setup`] with a reverse-key refresh window.
async fn setup_with(
    conflict: ConflictPolicy,
    refresh: Duration,
) -> (Arc<Overlap>, Sessions, String) {
    let store = Arc::new(Overlap::default());
    let config = SessionsConfig {
        principal: Some("uid".into()),
        conflict,
        timeout: Ttl::seconds(600),
        reverse_key_refresh: refresh,
        ..SessionsConfig::default()
    };
    let sessions = Sessions::new(store.clone(), config).unwrap();
    let id = sessions.create_with(user("jdoe"), None).await.unwrap();
    let id = id.id().as_str().to_owned();
    store.take_peak();
    (store, sessions, id)
}

/// What the reverse key of `uid` holds, if anything.
async fn reverse_of(store: &Overlap, uid: &str) -> Option<String> {
    let entry = store.inner.get(&md5_hex(uid.as_bytes())).await.unwrap()?;
    Some(String::from_utf8(entry.value).unwrap())
}

#[tokio::test]
async fn a_save_keeping_the_user_sends_the_reverse_key_with_the_cas() {
    let (store, sessions, id) = setup(ConflictPolicy::Merge).await;
    store.inner.delete(&md5_hex(b"jdoe")).await.unwrap();
    let mut s = sessions.load(&id).await.unwrap().unwrap();
    s.insert("seen", 1).unwrap();
    sessions.save(&mut s).await.unwrap();
    let (peak, applied) = store.take_peak();
    assert_eq!(
        peak, 2,
        "cas and set were not in flight together: {applied:?}"
    );
    assert_eq!(applied.len(), 2, "{applied:?}");
    assert_eq!(
        reverse_of(&store, "jdoe").await.as_deref(),
        Some(id.as_str())
    );
}

#[tokio::test]
async fn a_save_changing_the_user_writes_the_reverse_key_after_the_cas() {
    let (store, sessions, id) = setup(ConflictPolicy::Merge).await;
    let mut s = sessions.load(&id).await.unwrap().unwrap();
    s.insert("uid", "rdoe").unwrap();
    sessions.save(&mut s).await.unwrap();
    let (peak, applied) = store.take_peak();
    assert_eq!(peak, 1, "{applied:?}");
    assert_eq!(applied, [id.clone(), md5_hex(b"rdoe")]);
    assert_eq!(
        reverse_of(&store, "rdoe").await.as_deref(),
        Some(id.as_str())
    );
}

#[tokio::test]
async fn a_refused_save_changing_the_user_moves_no_reverse_key() {
    let (store, sessions, id) = setup(ConflictPolicy::Fail).await;
    let mut mine = sessions.load(&id).await.unwrap().unwrap();
    let mut theirs = sessions.load(&id).await.unwrap().unwrap();
    theirs.insert("seen", 1).unwrap();
    sessions.save(&mut theirs).await.unwrap();
    mine.insert("uid", "mallory").unwrap();
    let err = sessions.save(&mut mine).await.unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err}");
    assert_eq!(reverse_of(&store, "mallory").await, None);
    assert_eq!(
        reverse_of(&store, "jdoe").await.as_deref(),
        Some(id.as_str())
    );
}

#[tokio::test]
async fn a_save_finding_its_session_gone_leaves_no_reverse_key_naming_it() {
    let (store, sessions, id) = setup(ConflictPolicy::Merge).await;
    let mut s = sessions.load(&id).await.unwrap().unwrap();
    // A logout meanwhile: the session and its reverse key go.
    assert!(sessions.delete_id(&id).await.unwrap());
    assert_eq!(reverse_of(&store, "jdoe").await, None);
    store.take_peak();
    s.insert("seen", 1).unwrap();
    let err = sessions.save(&mut s).await.unwrap_err();
    assert!(matches!(err, Error::SessionGone { .. }), "{err}");
    // The set went out with the cas, and was taken back.
    assert_eq!(store.take_peak().0, 2);
    assert_eq!(reverse_of(&store, "jdoe").await, None);
}

#[tokio::test]
async fn a_failed_reverse_key_beside_the_cas_is_written_by_the_next_save() {
    let (store, sessions, id) = setup(ConflictPolicy::Merge).await;
    store.inner.delete(&md5_hex(b"jdoe")).await.unwrap();
    let mut s = sessions.load(&id).await.unwrap().unwrap();
    s.insert("seen", 1).unwrap();
    store.fail_sets.store(true, Ordering::SeqCst);
    let err = sessions.save(&mut s).await.unwrap_err();
    assert!(matches!(err, Error::InvalidConfig(_)), "{err}");
    // The session itself was written.
    let stored = sessions.load(&id).await.unwrap().unwrap();
    assert_eq!(stored.get::<i64>("seen").unwrap(), Some(1));
    assert_eq!(reverse_of(&store, "jdoe").await, None);
    store.fail_sets.store(false, Ordering::SeqCst);
    sessions.save(&mut s).await.unwrap();
    assert_eq!(
        reverse_of(&store, "jdoe").await.as_deref(),
        Some(id.as_str())
    );
}

/// Loads the session, changes a field and saves it.
async fn change(sessions: &Sessions, id: &str, n: i64) {
    let mut s = sessions.load(id).await.unwrap().unwrap();
    s.insert("seen", n).unwrap();
    sessions.save(&mut s).await.unwrap();
}

#[tokio::test]
async fn a_save_within_the_refresh_window_leaves_the_reverse_key_alone() {
    let (store, sessions, id) = setup_with(ConflictPolicy::Merge, Duration::from_secs(60)).await;
    // Lost meanwhile (evicted, say): this process wrote it at `create`.
    store.inner.delete(&md5_hex(b"jdoe")).await.unwrap();
    change(&sessions, &id, 1).await;
    let (peak, applied) = store.take_peak();
    assert_eq!((peak, applied), (1, vec![id.clone()]), "only the cas");
    assert_eq!(reverse_of(&store, "jdoe").await, None);
    // Another process has not written it lately: its save does.
    let other = Sessions::new(store.clone(), sessions.config().clone()).unwrap();
    change(&other, &id, 2).await;
    assert_eq!(store.take_peak().0, 2, "cas and set together");
    assert_eq!(
        reverse_of(&store, "jdoe").await.as_deref(),
        Some(id.as_str())
    );
}

#[tokio::test]
async fn a_save_changing_the_user_writes_the_reverse_key_within_the_window() {
    let (store, sessions, id) = setup_with(ConflictPolicy::Merge, Duration::from_secs(60)).await;
    let mut s = sessions.load(&id).await.unwrap().unwrap();
    s.insert("uid", "rdoe").unwrap();
    sessions.save(&mut s).await.unwrap();
    assert_eq!(store.take_peak().1, [id.clone(), md5_hex(b"rdoe")]);
    // And back: the key of `jdoe` is written again, though it was written
    // within the window (for the session's earlier user).
    store.inner.delete(&md5_hex(b"jdoe")).await.unwrap();
    s.insert("uid", "jdoe").unwrap();
    sessions.save(&mut s).await.unwrap();
    assert_eq!(
        reverse_of(&store, "jdoe").await.as_deref(),
        Some(id.as_str())
    );
}

#[tokio::test]
async fn the_reverse_key_outlives_the_session_by_the_window() {
    let (store, sessions, id) = setup_with(ConflictPolicy::Merge, Duration::from_secs(60)).await;
    let ttl_of = |key: String| {
        let store = store.clone();
        async move { store.inner.get(&key).await.unwrap().unwrap().ttl.unwrap() }
    };
    let session = ttl_of(id.clone()).await.as_secs();
    let reverse = ttl_of(md5_hex(b"jdoe")).await.as_secs();
    assert!((599..=600).contains(&session), "session: {session} s");
    assert!((659..=660).contains(&reverse), "reverse key: {reverse} s");
    // A touch extends both, the key again by the window more.
    let s = sessions.load(&id).await.unwrap().unwrap();
    assert!(sessions.touch(&s).await.unwrap());
    let reverse = ttl_of(md5_hex(b"jdoe")).await.as_secs();
    assert!((659..=660).contains(&reverse), "reverse key: {reverse} s");
}

#[tokio::test]
async fn a_save_after_the_window_writes_the_reverse_key_again() {
    let window = Duration::from_millis(200);
    let (store, sessions, id) = setup_with(ConflictPolicy::Merge, window).await;
    let written = Instant::now();
    store.inner.delete(&md5_hex(b"jdoe")).await.unwrap();
    // Saves until one writes the key back (polled, not slept on).
    let mut n = 0;
    while reverse_of(&store, "jdoe").await.is_none() {
        assert!(
            written.elapsed() < Duration::from_secs(10),
            "never written again"
        );
        n += 1;
        change(&sessions, &id, n).await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // (`written` was read just after the create noted its write.)
    assert!(
        written.elapsed() + Duration::from_millis(20) >= window,
        "written again within the window"
    );
    assert_eq!(
        reverse_of(&store, "jdoe").await.as_deref(),
        Some(id.as_str())
    );
}
