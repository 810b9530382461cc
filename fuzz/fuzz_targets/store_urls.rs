//! Fuzz target: the store URL parsers — `MemcachedConfig::from_url`,
//! `RedisConfig::from_url` and `store_url::open` (principal and local) —
//! on generated URLs that carry a password.
//!
//! Structure-aware: a scheme, an optional user, a password holding a
//! marker token (and any text but the URL delimiters `?`, `#`, `@`), and
//! arbitrary text after it, so the parsers see both URLs they accept and
//! near misses.
//!
//! Checked: never a panic; the password never shows in an error message
//! nor in a config's `Debug` (the docs promise both); an accepted config
//! validates. Limits: parsing holds at most 64 bytes per input byte plus
//! 64 KiB at once; opening a store 1 MiB more (its fixed structures).
#![no_main]

use arbitrary::Arbitrary;
use backend_memcached::MemcachedConfig;
use backend_redis::RedisConfig;
use libfuzzer_sys::fuzz_target;
use memorycached_fuzz::within;

#[derive(Debug, Arbitrary)]
struct Input {
    scheme: u8,
    user: Option<String>,
    before: String,
    token: u64,
    after: String,
    rest: String,
    local: Option<String>,
}

const SCHEMES: [&str; 6] = ["redis", "rediss", "memcached", "memory", "", "http"];

fuzz_target!(|input: Input| {
    let scheme = SCHEMES[usize::from(input.scheme) % SCHEMES.len()];
    let token = format!("Secret{:016x}", input.token);
    // `?`, `#` and `@` end a user or password in URL syntax (written
    // `%3F`...); anything else may be in them, `/` and `:` included.
    let plain = |s: &str| s.replace(['?', '#', '@'], "");
    let password = format!("{}{token}{}", plain(&input.before), plain(&input.after));
    let user = plain(input.user.as_deref().unwrap_or(""));
    let url = format!("{scheme}://{user}:{password}@{}", input.rest);
    // The token must be in the password only (the fuzzer learns it from
    // the comparisons below and plants it elsewhere).
    let local_has = input.local.as_deref().is_some_and(|l| l.contains(&token));
    if input.rest.contains(&token) || user.contains(&token) || local_has {
        return;
    }
    let limit = 64 * url.len() + (64 << 10);
    within("store URL parsers", limit, || {
        if let Ok(c) = MemcachedConfig::from_url(&url) {
            assert!(c.validate().is_ok(), "{url}");
        }
        match RedisConfig::from_url(&url) {
            Ok(c) => {
                assert!(
                    !format!("{c:?}").contains(&token),
                    "Debug shows the password of {url}"
                );
                assert!(c.validate().is_ok(), "{url}");
            }
            Err(e) => assert!(!e.to_string().contains(&token), "{url}: {e}"),
        }
    });
    // Opening also builds the store (pools, caches: fixed structures).
    within("store_url::open", limit + (1 << 20), || {
        if let Err(e) = store_url::open(&url, input.local.as_deref()) {
            assert!(!e.to_string().contains(&token), "{url}: {e}");
        }
        // The URL as the local store, `HOST:PORT` form included.
        if let Err(e) = store_url::open("memory://", Some(&url)) {
            assert!(!e.to_string().contains(&token), "{url}: {e}");
        }
    });
});
