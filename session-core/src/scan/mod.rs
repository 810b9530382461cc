//! Scanning a stored session map without decoding it: where each top-level
//! field's name and value lie in the stored bytes.
//!
//! A load keeps the stored bytes and this index instead of a decoded map
//! (see [`crate::session`]): a field is decoded when first read, and a save
//! copies the bytes of the fields it did not touch. That needs one rule
//! above all: **a scan may only accept bytes the full decode accepts**, and
//! decoding any field it found must give exactly the value the full decode
//! gives for that field. `Session::get_value` has no error path, so a field
//! that fails to decode later would have nowhere to go.
//!
//! So each scanner answers `None` not only for bytes it refuses but for any
//! input it is not sure about (a lone surrogate escape, a float at the edge
//! of the range, a deep nesting, a duplicate name it cannot compare). The
//! caller then runs the full decode, which decides, with its own error
//! message. `None` costs speed, never correctness; `Some` must always be
//! right. The property tests and the `lazy_decode` fuzz target check
//! exactly that, against the full decode.

use std::ops::Range;

pub(crate) mod json;
pub(crate) mod msgpack;

/// One top-level field of a stored map, located but not decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawField {
    /// The field's name.
    pub(crate) name: RawName,
    /// The whole entry, as it is copied into a re-encoded map: for JSON
    /// from the name's opening quote to the value's last byte; for
    /// MessagePack the name's bytes followed by the value's.
    pub(crate) entry: Range<usize>,
    /// The value alone: a complete value of the format, decodable by itself.
    pub(crate) value: Range<usize>,
}

/// A field name, as found in the stored bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RawName {
    /// The name is these bytes of the input exactly (valid UTF-8, no escapes).
    Span(Range<usize>),
    /// The name had escapes; this is its decoded text.
    Owned(Box<str>),
}

impl RawName {
    /// True when this is the name `name` (compared as bytes, no UTF-8 check).
    pub(crate) fn is(&self, bytes: &[u8], name: &str) -> bool {
        match self {
            RawName::Span(r) => bytes.get(r.clone()) == Some(name.as_bytes()),
            RawName::Owned(s) => &**s == name,
        }
    }

    /// The name as text, given the bytes the scan ran on.
    pub(crate) fn as_str<'a>(&'a self, bytes: &'a [u8]) -> &'a str {
        match self {
            // The scanners only hand out spans of valid UTF-8; the empty
            // fallback is never taken.
            RawName::Span(r) => bytes
                .get(r.clone())
                .and_then(|b| std::str::from_utf8(b).ok())
                .unwrap_or_default(),
            RawName::Owned(s) => s,
        }
    }
}

/// A scan's result kept beside the stored item it was made of (see
/// [`crate::store::ItemMemo`]): valid for exactly those bytes, read by
/// that codec. Packed, six `u32` offsets per field (24 bytes, against 56
/// for a [`RawField`]), so that it fits the memo's budget of the value's
/// own size for any usual session.
#[derive(Debug)]
pub(crate) struct ScanMemo {
    /// The codec the bytes were scanned as.
    pub(crate) codec: crate::codec::Codec,
    /// The length of the bytes scanned: a cheap check that a memo meets
    /// the bytes it was made of.
    pub(crate) len: usize,
    /// Per field: name, entry and value spans, start and end each.
    fields: Box<[[u32; 6]]>,
}

impl ScanMemo {
    /// The memo of a scan of `len` bytes by `codec`; `None` when a field
    /// cannot be packed (a name with escapes, which the scan decoded, or
    /// bytes past 4 GiB).
    pub(crate) fn pack<'a>(
        codec: crate::codec::Codec,
        len: usize,
        fields: impl IntoIterator<Item = &'a RawField>,
    ) -> Option<Self> {
        let fields = fields.into_iter();
        let mut spans = PackedSpans::with_capacity(fields.size_hint().0);
        for f in fields {
            let name = match &f.name {
                RawName::Span(n) => Some(n.clone()),
                RawName::Owned(_) => None,
            };
            spans.push(name, f.entry.clone(), f.value.clone());
        }
        Self::of_spans(codec, len, spans)
    }

    /// The memo of `len` bytes by `codec` whose fields `spans` located.
    pub(crate) fn of_spans(
        codec: crate::codec::Codec,
        len: usize,
        spans: PackedSpans,
    ) -> Option<Self> {
        (!spans.lost).then(|| ScanMemo {
            codec,
            len,
            fields: spans.fields.into_boxed_slice(),
        })
    }

    /// The fields as the scan found them.
    pub(crate) fn fields(&self) -> impl Iterator<Item = RawField> + '_ {
        self.fields.iter().map(|&[n0, n1, e0, e1, v0, v1]| {
            let r = |a: u32, b: u32| a as usize..b as usize;
            RawField {
                name: RawName::Span(r(n0, n1)),
                entry: r(e0, e1),
                value: r(v0, v1),
            }
        })
    }

    /// The bytes it holds, about.
    pub(crate) fn size(&self) -> usize {
        std::mem::size_of::<Self>() + std::mem::size_of_val(&*self.fields)
    }
}

/// Field spans written down as they are made (a save's splice, which
/// knows where each field lands), packed as a [`ScanMemo`] keeps them.
#[derive(Debug, Default)]
pub(crate) struct PackedSpans {
    fields: Vec<[u32; 6]>,
    /// A field could not be packed (a name with escapes, or bytes past
    /// 4 GiB): no memo.
    lost: bool,
}

impl PackedSpans {
    /// Room for `n` fields.
    pub(crate) fn with_capacity(n: usize) -> Self {
        PackedSpans {
            fields: Vec::with_capacity(n),
            lost: false,
        }
    }

    /// One field: its name's bytes (`None`: the name has escapes), its
    /// whole entry and its value.
    pub(crate) fn push(
        &mut self,
        name: Option<Range<usize>>,
        entry: Range<usize>,
        value: Range<usize>,
    ) {
        let at = |i: usize| u32::try_from(i).ok();
        let packed = name.and_then(|n| {
            Some([
                at(n.start)?,
                at(n.end)?,
                at(entry.start)?,
                at(entry.end)?,
                at(value.start)?,
                at(value.end)?,
            ])
        });
        match packed {
            Some(field) => self.fields.push(field),
            None => self.lost = true,
        }
    }
}

/// The fields of a stored map, each name once.
///
/// When the input names a field twice, the full decode keeps the last
/// value, so the scanners keep only the last entry (in the place of the
/// last one) and drop the earlier ones.
pub(crate) type RawFields = Vec<RawField>;

/// The benches' 10-field session (the bench crate's `ten_fields`), for the
/// scanners' tests.
#[cfg(test)]
pub(crate) fn bench_session() -> crate::data::SessionData {
    let serde_json::Value::Object(map) = serde_json::json!({
        "uid": "own1",
        "cn": "Jean Dupont",
        "mail": "jean.dupont@example.org",
        "givenName": "Jean",
        "sn": "Dupont",
        "groups": "admins; staff; vpn-users",
        "ipAddr": "192.0.2.10",
        "_utime": 1_700_000_000u64,
        "authenticationLevel": 2,
        "profile": "p".repeat(200),
    }) else {
        unreachable!("a json! object is an object")
    };
    map
}
