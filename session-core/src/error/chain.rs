//! [`Chain`]: an error with its causes on one line, for callers that hand
//! an error on as text (an HTTP body, a tower-sessions error string, a log
//! field) and have no `anyhow` to print `{:#}`.

use std::fmt;

use super::Error;

/// Displays an error and each of its causes, `"error: cause: cause"`, the
/// way `anyhow` prints `{:#}`. From [`Error::chain`] or [`Chain::new`].
#[derive(Debug, Clone, Copy)]
pub struct Chain<'a>(&'a (dyn std::error::Error + 'static));

impl<'a> Chain<'a> {
    /// The chain of any error (a caller's own error that wraps ours).
    pub fn new(error: &'a (dyn std::error::Error + 'static)) -> Self {
        Chain(error)
    }
}

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(e) = cause {
            write!(f, ": {e}")?;
            cause = e.source();
        }
        Ok(())
    }
}

impl Error {
    /// This error with its causes, for `Display`: see [`Chain`].
    pub fn chain(&self) -> Chain<'_> {
        Chain(self)
    }
}
