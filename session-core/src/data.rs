//! The shape of a session's data, shared by the codecs, the scanners and
//! [`Session`](crate::Session). A leaf module: it imports nothing of this
//! crate, so every other module can point at it (the codecs need the map
//! type, and `Session` needs the codecs).

use serde_json::Value;

/// The data of a session: a map of field names to JSON-like values
/// (strings, numbers, booleans, null, nested lists and maps).
pub type SessionData = serde_json::Map<String, Value>;

/// The deepest nesting of lists and maps a session may have, on write and
/// on read (every [`Codec`](crate::Codec) checks it). serde_json refuses to
/// read beyond 128 levels, so without a write-side check a session could be
/// saved and then never loaded again; the same limit on MessagePack and
/// Storable keeps decoding's recursion shallow.
pub const MAX_DEPTH: usize = 100;

/// The field that always holds the session's own id, as in the original.
pub const ID_FIELD: &str = "_session_id";
