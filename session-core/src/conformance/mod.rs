//! The conformance kit: the checks every [`Store`] must pass, ours or yours.
//!
//! Each check is an async function over a [`MakeStore`] factory. A factory
//! call must return a store that shares no keys with the stores returned by
//! earlier calls (a fresh [`crate::MemoryStore`], or a shared server wrapped
//! in [`crate::Namespaced`] with a fresh prefix of at most 40 bytes): the
//! session checks use two stores at once for the `local` and principal tiers.
//!
//! # Running it against your own store
//!
//! In your crate's `tests/conformance.rs`, with `session-core` as a
//! dev-dependency with feature `conformance` (here with `MemoryStore`; put
//! your own constructor in the async block):
//!
//! ```no_run
//! use std::sync::Arc;
//! use session_core::{MemoryStore, Store};
//!
//! session_core::conformance_tests!(async {
//!     Arc::new(MemoryStore::new()) as Arc<dyn Store>
//! });
//! # fn main() {}
//! ```
//!
//! The macro expands to one `#[test]` per check, each on its own tokio
//! runtime, so `cargo test` / `cargo nextest` list and run them one by one.
//! [`run_all`] runs every check in sequence instead and prints progress.
//!
//! Timing: the expiry checks wait for real seconds (memcached's clock has
//! one-second resolution), so the whole kit takes about ten seconds; the
//! per-test layout lets a parallel runner overlap them.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::store::Store;

mod capability_cases;
mod index_cases;
mod interleave;
mod local_cases;
mod lock_cases;
mod nolost_cases;
mod regenerate_cases;
mod seal_cases;
mod session_cases;
mod stateless_cases;
mod store_cases;

/// A fresh store, boxed.
pub type StoreFuture = Pin<Box<dyn Future<Output = Arc<dyn Store>> + Send>>;

/// A factory of fresh, mutually independent stores.
pub type MakeStore = Arc<dyn Fn() -> StoreFuture + Send + Sync>;

/// The outcome of one check: `Err` carries what was expected and what was seen.
pub type CaseResult = Result<(), String>;

type CaseFuture = Pin<Box<dyn Future<Output = CaseResult> + Send>>;

/// One named check.
#[derive(Clone, Copy)]
pub struct Case {
    /// The check's name, also the name of the test the macro generates.
    pub name: &'static str,
    /// Runs the check.
    pub run: fn(MakeStore) -> CaseFuture,
}

impl std::fmt::Debug for Case {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

/// Wraps an async closure as a [`MakeStore`].
pub fn make_store<F, Fut>(f: F) -> MakeStore
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Arc<dyn Store>> + Send + 'static,
{
    Arc::new(move || Box::pin(f()) as StoreFuture)
}

macro_rules! cases {
    ($($module:ident :: $name:ident),* $(,)?) => {
        /// Every check, in the order [`run_all`] runs them.
        pub const CASES: &[Case] = &[
            $(Case { name: stringify!($name), run: |m| Box::pin($module::$name(m)) },)*
        ];
    };
}

cases! {
    store_cases::absent_key_reads_none,
    store_cases::set_then_get_round_trips_bytes_and_flags,
    store_cases::add_writes_only_if_absent,
    store_cases::cas_writes_only_if_unchanged,
    store_cases::every_write_gives_a_new_version,
    store_cases::delete_removes,
    store_cases::touch_changes_only_expiry,
    store_cases::ttl_expires_and_zero_never_does,
    store_cases::ttl_is_readable_where_supported,
    store_cases::bad_keys_are_rejected_before_io,
    store_cases::value_size_limit_is_enforced_before_io,
    store_cases::large_binary_values_round_trip,
    store_cases::concurrent_cas_loses_no_increment,
    capability_cases::get_many_reads_in_order,
    capability_cases::scan_pages_through_every_key,
    capability_cases::delete_if_removes_only_the_version_read,
    capability_cases::get_and_touch_reads_and_extends,
    capability_cases::optional_methods_reject_bad_keys,
    session_cases::create_load_save_delete,
    session_cases::load_missing_is_none_and_bad_ids_are_typed,
    session_cases::deep_changes_are_saved,
    session_cases::update_only_writes_nothing_until_a_change,
    session_cases::timeout_is_reset_by_every_write,
    session_cases::principal_reverse_key_is_written_and_cleaned,
    session_cases::concurrent_saves_merge_or_conflict,
    session_cases::many_writers_lose_no_field,
    session_cases::deleted_session_is_not_resurrected,
    local_cases::local_tier_is_filled_on_a_miss,
    local_cases::stale_local_copy_is_not_trusted,
    local_cases::max_age_local_copy_expires_and_merges,
    session_cases::codecs_are_picked_by_flags,
    stateless_cases::create_with_writes_data_in_one_call,
    stateless_cases::patch_changes_only_named_fields,
    stateless_cases::replace_swaps_fields_and_keeps_the_id,
    stateless_cases::touch_id_and_per_session_expiry,
    stateless_cases::answers_do_not_reveal_other_users,
    stateless_cases::modifier_flags_do_not_hide_a_session,
    stateless_cases::update_only_id_taken_is_not_retryable,
    stateless_cases::logout_keeps_a_concurrent_logins_reverse_key,
    nolost_cases::update_loses_no_increment,
    nolost_cases::own_field_writers_all_succeed,
    nolost_cases::field_conflict_policies_are_honoured,
    index_cases::index_lists_exactly_the_live_sessions,
    index_cases::revoke_principal_logs_out_only_that_user,
    index_cases::lookups_by_user_without_decoding_and_keyed,
    index_cases::regenerate_moves_everything_to_a_new_id,
    regenerate_cases::regenerate_carries_over_a_late_write,
    lock_cases::lock_is_exclusive_and_taken_over_after_its_lease,
    seal_cases::sealed_values_hide_fields_and_round_trip,
    seal_cases::broken_seals_load_as_unknown_ids,
    seal_cases::unsealed_values_need_accept_unsealed,
    seal_cases::reseal_rotates_keys_without_overwriting_saves,
}

/// Runs the named check.
pub async fn run_case(name: &str, make: MakeStore) -> CaseResult {
    let case = CASES
        .iter()
        .find(|c| c.name == name)
        .ok_or_else(|| format!("no conformance check named {name:?}"))?;
    (case.run)(make).await
}

/// Runs every check in sequence, printing one progress line each, and
/// returns the failures (name, message).
pub async fn run_all(make: MakeStore) -> Result<(), Vec<(&'static str, String)>> {
    let mut failures = Vec::new();
    for (i, case) in CASES.iter().enumerate() {
        let result = (case.run)(make.clone()).await;
        let status = if result.is_ok() { "ok" } else { "FAILED" };
        println!(
            "conformance [{}/{}] {} ... {status}",
            i + 1,
            CASES.len(),
            case.name
        );
        if let Err(msg) = result {
            failures.push((case.name, msg));
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures)
    }
}

/// Runs a future to completion on a fresh multi-threaded tokio runtime
/// (used by the tests [`conformance_tests!`](crate::conformance_tests) generates).
pub fn block_on<F: Future>(future: F) -> F::Output {
    match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(future),
        Err(e) => panic!("cannot start a tokio runtime for the conformance kit: {e}"),
    }
}

/// Generates one `#[test]` per conformance check, each calling the given
/// async expression (which must evaluate to `Arc<dyn Store>`) whenever it
/// needs a fresh store, plus a test that the list below names every check
/// of [`CASES`]. See the [module docs](crate::conformance).
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::__conformance_tests_expand!($make;
            absent_key_reads_none,
            set_then_get_round_trips_bytes_and_flags,
            add_writes_only_if_absent,
            cas_writes_only_if_unchanged,
            every_write_gives_a_new_version,
            delete_removes,
            touch_changes_only_expiry,
            ttl_expires_and_zero_never_does,
            ttl_is_readable_where_supported,
            bad_keys_are_rejected_before_io,
            value_size_limit_is_enforced_before_io,
            large_binary_values_round_trip,
            concurrent_cas_loses_no_increment,
            get_many_reads_in_order,
            scan_pages_through_every_key,
            delete_if_removes_only_the_version_read,
            get_and_touch_reads_and_extends,
            optional_methods_reject_bad_keys,
            create_load_save_delete,
            load_missing_is_none_and_bad_ids_are_typed,
            deep_changes_are_saved,
            update_only_writes_nothing_until_a_change,
            timeout_is_reset_by_every_write,
            principal_reverse_key_is_written_and_cleaned,
            concurrent_saves_merge_or_conflict,
            many_writers_lose_no_field,
            deleted_session_is_not_resurrected,
            local_tier_is_filled_on_a_miss,
            stale_local_copy_is_not_trusted,
            max_age_local_copy_expires_and_merges,
            codecs_are_picked_by_flags,
            create_with_writes_data_in_one_call,
            patch_changes_only_named_fields,
            replace_swaps_fields_and_keeps_the_id,
            touch_id_and_per_session_expiry,
            answers_do_not_reveal_other_users,
            modifier_flags_do_not_hide_a_session,
            update_only_id_taken_is_not_retryable,
            logout_keeps_a_concurrent_logins_reverse_key,
            update_loses_no_increment,
            own_field_writers_all_succeed,
            field_conflict_policies_are_honoured,
            index_lists_exactly_the_live_sessions,
            revoke_principal_logs_out_only_that_user,
            lookups_by_user_without_decoding_and_keyed,
            regenerate_moves_everything_to_a_new_id,
            regenerate_carries_over_a_late_write,
            lock_is_exclusive_and_taken_over_after_its_lease,
            sealed_values_hide_fields_and_round_trip,
            broken_seals_load_as_unknown_ids,
            unsealed_values_need_accept_unsealed,
            reseal_rotates_keys_without_overwriting_saves
        );
    };
}

/// Implementation detail of [`conformance_tests!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_tests_expand {
    ($make:expr; $($name:ident),*) => {
        $(
            #[test]
            fn $name() {
                let make = $crate::conformance::make_store(|| $make);
                let result = $crate::conformance::block_on(
                    $crate::conformance::run_case(stringify!($name), make),
                );
                if let Err(message) = result {
                    panic!("conformance check {} failed: {}", stringify!($name), message);
                }
            }
        )*

        #[test]
        fn conformance_macro_lists_every_check() {
            let listed = [$(stringify!($name)),*];
            let all: Vec<&str> = $crate::conformance::CASES.iter().map(|c| c.name).collect();
            assert_eq!(listed.as_slice(), all.as_slice(), "conformance_tests! is out of date");
        }
    };
}

/// `check!(cond, "format", args)` returns `Err(message)` from a check when
/// `cond` is false.
macro_rules! check {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}
pub(crate) use check;

/// Adds context to any error, turning it into a check failure message.
pub(crate) trait Context<T> {
    fn ctx(self, what: &str) -> Result<T, String>;
}

impl<T, E: std::fmt::Display> Context<T> for Result<T, E> {
    fn ctx(self, what: &str) -> Result<T, String> {
        self.map_err(|e| format!("{what}: unexpected error: {e}"))
    }
}

/// Polls `get` until the key is gone or `limit` passes; returns whether it went.
pub(crate) async fn gone_within(
    store: &dyn Store,
    key: &str,
    limit: Duration,
) -> Result<bool, String> {
    let deadline = Instant::now() + limit;
    loop {
        if store
            .get(key)
            .await
            .ctx("get while waiting for expiry")?
            .is_none()
        {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A key no other check (or earlier run) uses.
pub(crate) fn unique_key(tag: &str) -> String {
    let nonce = crate::SessionId::generate(16).map_or_else(|_| "0".repeat(16), |id| id.to_string());
    format!("cf:{tag}:{nonce}")
}
