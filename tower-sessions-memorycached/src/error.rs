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
    /// stores report for serialization), everything else `Backend`.
    fn from(e: Error) -> Self {
        use tower_sessions_core::session_store::Error as StoreError;
        match &e {
            Error::Sessions(session_core::Error::Encode { .. }) => {
                StoreError::Encode(e.to_string())
            }
            Error::Sessions(
                session_core::Error::Decode { .. }
                | session_core::Error::UnknownCodec { .. }
                | session_core::Error::NotASession { .. },
            ) => StoreError::Decode(e.to_string()),
            _ => StoreError::Backend(e.to_string()),
        }
    }
}
