//! Secrets, shared by every surface: the bridge's own `[auth]` check
//! (bearer token or basic user and password), the `WWW-Authenticate`
//! challenge that goes with a refusal, the constant-time comparison every
//! secret goes through, and the random tokens of the admin logins.
//!
//! With `[auth]` configured, everything needs credentials except
//! `/healthz`, the WSDL and the SOAP `status` operation; each surface
//! decides which of its routes call [`authorized`].
//!
//! A leaf: it imports only [`crate::config`]. Surfaces import it, never the
//! reverse.

use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine as _;

use crate::config::{Auth, Config};

/// Whether the request carries the configured credentials (always true
/// without `[auth]`).
pub(crate) fn authorized(config: &Config, headers: &HeaderMap) -> bool {
    let Some(auth) = &config.auth else {
        return true;
    };
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    match auth {
        Auth::Bearer { token } => given
            .strip_prefix("Bearer ")
            .is_some_and(|t| ct_eq(t.trim().as_bytes(), token.as_bytes())),
        Auth::Basic { user, password } => given
            .strip_prefix("Basic ")
            .and_then(|b| {
                base64::engine::general_purpose::STANDARD
                    .decode(b.trim())
                    .ok()
            })
            .is_some_and(|decoded| ct_eq(&decoded, format!("{user}:{password}").as_bytes())),
    }
}

/// The `WWW-Authenticate` value of a refusal: the scheme `[auth]` expects.
pub(crate) fn challenge(config: &Config) -> HeaderValue {
    match config.auth {
        Some(Auth::Basic { .. }) => HeaderValue::from_static("Basic realm=\"soap-bridge\""),
        _ => HeaderValue::from_static("Bearer realm=\"soap-bridge\""),
    }
}

/// Compares secrets in time independent of where they differ.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    #[cfg(test)]
    tests::CT_EQ_CALLS.with(|n| n.set(n.get() + 1));
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A fresh random token: 32 bytes from the OS generator, as 64 hex digits
/// (admin login ids and CSRF tokens).
pub(crate) fn token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    thread_local! {
        /// How many times this thread went through [`ct_eq`]: the proof
        /// that the `[auth]` check compares secrets in constant time.
        pub(super) static CT_EQ_CALLS: Cell<usize> = const { Cell::new(0) };
    }

    /// Runs `authorized` and says whether it answered through `ct_eq`.
    fn checked_in_constant_time(config: &Config, value: &'static str) -> (bool, bool) {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_static(value));
        let before = CT_EQ_CALLS.with(Cell::get);
        let ok = authorized(config, &h);
        (ok, CT_EQ_CALLS.with(Cell::get) > before)
    }

    #[test]
    fn every_secret_comparison_goes_through_ct_eq() {
        let bearer = Config {
            auth: Some(Auth::Bearer {
                token: "s3cret".into(),
            }),
            ..Config::default()
        };
        // Right, wrong at the first byte, wrong at the last, wrong length:
        // each decided by ct_eq, never by `==`.
        assert_eq!(
            checked_in_constant_time(&bearer, "Bearer s3cret"),
            (true, true)
        );
        assert_eq!(
            checked_in_constant_time(&bearer, "Bearer x3cret"),
            (false, true)
        );
        assert_eq!(
            checked_in_constant_time(&bearer, "Bearer s3crex"),
            (false, true)
        );
        assert_eq!(
            checked_in_constant_time(&bearer, "Bearer s3"),
            (false, true)
        );
        let basic = Config {
            auth: Some(Auth::Basic {
                user: "u".into(),
                password: "p".into(),
            }),
            ..Config::default()
        };
        // base64("u:p"), base64("u:x").
        assert_eq!(checked_in_constant_time(&basic, "Basic dTpw"), (true, true));
        assert_eq!(
            checked_in_constant_time(&basic, "Basic dTp4"),
            (false, true)
        );
    }

    #[test]
    fn credentials() {
        let mut config = Config {
            auth: Some(Auth::Bearer {
                token: "s3cret".into(),
            }),
            ..Config::default()
        };
        let mut h = HeaderMap::new();
        assert!(!authorized(&config, &h));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer wrong"),
        );
        assert!(!authorized(&config, &h));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer s3cret"),
        );
        assert!(authorized(&config, &h));
        config.auth = Some(Auth::Basic {
            user: "u".into(),
            password: "p".into(),
        });
        assert!(!authorized(&config, &h));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic dTpw"),
        );
        assert!(authorized(&config, &h));
        assert!(authorized(&Config::default(), &HeaderMap::new()));
    }

    #[test]
    fn tokens_are_random_hex() {
        let a = token().unwrap();
        let b = token().unwrap();
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        assert!(ct_eq(a.as_bytes(), a.as_bytes()));
        assert!(!ct_eq(a.as_bytes(), b.as_bytes()));
        assert!(!ct_eq(b"ab", b"abc"));
    }
}
