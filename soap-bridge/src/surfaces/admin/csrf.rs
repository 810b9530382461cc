//! The CSRF check of the explorer's forms. The tokens themselves are
//! [`crate::credentials::token`]s.
//!
//! Every form of the explorer carries a hidden `csrf` field. After login
//! it must equal the token stored with the admin's login (synchronizer
//! token); on the login form itself, which has no login yet, it must equal
//! a short-lived cookie set with the form (double submit). A forged
//! cross-site form cannot know either value, and `SameSite=Strict` keeps
//! browsers from sending the cookies with it in the first place.
//!
//! A leaf of the admin surface: it imports only [`crate::credentials`].

use crate::credentials::ct_eq;

/// Name of the hidden form field holding the token.
pub(crate) const FIELD: &str = "csrf";

/// True when `given` is present, non-empty and equals `expected`.
pub(crate) fn matches(expected: &str, given: Option<&str>) -> bool {
    given.is_some_and(|g| !expected.is_empty() && ct_eq(expected.as_bytes(), g.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::token;

    #[test]
    fn tokens_are_checked() {
        let a = token().unwrap();
        let b = token().unwrap();
        assert!(matches(&a, Some(&a)));
        assert!(!matches(&a, Some(&b)));
        assert!(!matches(&a, None));
        assert!(!matches("", Some("")));
    }
}
