//! Tokens: random 256-bit values as hex, for login cookies and CSRF
//! tokens, and their constant-time check.
//!
//! Every form of the explorer carries a hidden `csrf` field. After login
//! it must equal the token stored with the admin's login (synchronizer
//! token); on the login form itself, which has no login yet, it must equal
//! a short-lived cookie set with the form (double submit). A forged
//! cross-site form cannot know either value, and `SameSite=Strict` keeps
//! browsers from sending the cookies with it in the first place.

use crate::http::ct_eq;

/// Name of the hidden form field holding the token.
pub(crate) const FIELD: &str = "csrf";

/// A fresh random token: 32 bytes from the OS generator, as 64 hex digits.
pub(crate) fn token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// True when `given` is present, non-empty and equals `expected`.
pub(crate) fn matches(expected: &str, given: Option<&str>) -> bool {
    given.is_some_and(|g| !expected.is_empty() && ct_eq(expected.as_bytes(), g.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_checked() {
        let a = token().unwrap();
        let b = token().unwrap();
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert!(matches(&a, Some(&a)));
        assert!(!matches(&a, Some(&b)));
        assert!(!matches(&a, None));
        assert!(!matches("", Some("")));
    }
}
