//! The crate's one error type, and how it reaches tower-sessions.

/// What can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A session operation failed (store, codec, conflict, ...).
    #[error(transparent)]
    Sessions(#[from] session_core::Error),
    /// The `Sessions` generate ids that tower-sessions cannot carry: its ids
    /// are exactly 128 bits, ours must then be 32 hex digits.
    #[error("id_length is {0}; a tower-sessions store needs 32 (128-bit ids)")]
    IdLength(usize),
    /// A store id that is not 32 lowercase hex digits has no tower-sessions
    /// form (e.g. a 16-digit id written by a Perl node).
    #[error("session id {id:?} is not 32 lowercase hex digits")]
    IdShape {
        /// The id (at most 80 characters of it).
        id: String,
    },
}

impl From<Error> for tower_sessions_core::session_store::Error {
    /// Codec failures become `Encode`/`Decode` (what tower-sessions' own
    /// stores report for serialization), everything else `Backend`. The
    /// text is the whole cause chain (the serde or I/O error included):
    /// tower-sessions keeps only a string.
    fn from(e: Error) -> Self {
        use tower_sessions_core::session_store::Error as StoreError;
        let text = session_core::error::Chain::new(&e).to_string();
        match &e {
            Error::Sessions(session_core::Error::Encode { .. }) => StoreError::Encode(text),
            Error::Sessions(
                session_core::Error::Decode { .. }
                | session_core::Error::UnknownCodec { .. }
                | session_core::Error::NotASession { .. },
            ) => StoreError::Decode(text),
            _ => StoreError::Backend(text),
        }
    }
}

#[cfg(test)]
mod tests {
    use tower_sessions_core::session_store::Error as StoreError;

    use super::*;

    /// The string tower-sessions keeps carries the cause, as it did when
    /// session-core's errors printed their causes themselves.
    #[test]
    fn store_errors_carry_the_cause_chain() {
        let decode = session_core::Codec::Json.decode(b"{", "k").unwrap_err();
        let cause = std::error::Error::source(&decode).map(ToString::to_string);
        let StoreError::Decode(text) = Error::Sessions(decode).into() else {
            panic!("a decode error must stay a decode error")
        };
        let cause = cause.unwrap();
        assert_eq!(text, format!("cannot decode value with json: {cause}"));
    }
}
