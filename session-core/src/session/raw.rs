//! A loaded session's stored bytes, scanned but not decoded.
//!
//! Most requests read one or two fields of a session, or change one and
//! save it. Decoding the whole map on load and encoding it again on save
//! was about four fifths of a load's client CPU (see
//! `docs/performance.md`). So a load keeps the bytes the store sent plus
//! where each top-level field lies in them ([`crate::scan`]); a field is
//! decoded the first time it is read, and a save copies the bytes of every
//! field it did not touch.
//!
//! Only JSON and MessagePack are read this way. Storable writes each
//! value before its key, so a scan would have to walk every value anyway
//! and the decode stays eager.

use std::ops::Range;
use std::sync::OnceLock;

use serde_json::Value;

use crate::codec::{Codec, MAX_DEPTH};
use crate::error::{Error, Result};
use crate::scan::{self, PackedSpans, RawField, RawName, ScanMemo};
use crate::session::SessionData;
use crate::store::ItemMemo;

/// A session's data as a load found it.
#[derive(Debug)]
pub(crate) enum Loaded {
    /// Decoded in full (Storable, or bytes the scan was not sure of).
    Decoded(SessionData),
    /// Scanned, decoded field by field on demand.
    Raw(Box<RawBody>),
}

impl Loaded {
    /// Reads the plain (unsealed, inflated) bytes `codec` wrote: scanned
    /// when the codec allows it and the scan is sure, decoded in full
    /// otherwise, with the full decode's errors.
    ///
    /// `memo` is the stored item's (see [`ItemMemo`]), given only when
    /// `bytes` are that item's bytes as stored: a scan already left there
    /// is used instead of scanning again (when it is for this codec and
    /// this length of bytes), and a new scan is left there for the next
    /// read. Bytes the scan is not sure of leave nothing, so every read
    /// decodes them in full, as without a memo.
    pub(crate) fn read(
        codec: Codec,
        bytes: Vec<u8>,
        key: &str,
        memo: Option<&ItemMemo>,
    ) -> Result<Loaded> {
        if let Some(known) = memo.and_then(ItemMemo::get)
            && known.codec == codec
            && known.len == bytes.len()
        {
            return Ok(Loaded::Raw(Box::new(RawBody::with_fields(
                codec,
                bytes,
                known.fields(),
            ))));
        }
        match RawBody::scan(codec, bytes) {
            Ok(raw) => {
                if let Some(memo) = memo {
                    let fields = raw.slots.iter().map(|s| &s.field);
                    if let Some(packed) = ScanMemo::pack(codec, raw.bytes.len(), fields) {
                        memo.set(packed);
                    }
                }
                Ok(Loaded::Raw(Box::new(raw)))
            }
            Err(bytes) => codec.decode(&bytes, key).map(Loaded::Decoded),
        }
    }
}

/// The stored bytes of a session and its fields' places in them.
#[derive(Debug, Clone)]
pub(crate) struct RawBody {
    /// The codec that wrote `bytes`.
    codec: Codec,
    /// The plain bytes (inflated and unsealed) as the store held them.
    bytes: Vec<u8>,
    /// Every top-level field of `bytes`, each name once.
    slots: Vec<Slot>,
}

/// One stored field: where it lies, its value once decoded, and whether
/// it still belongs to the raw body (a field that is changed or removed
/// moves to the session's own map and leaves the body).
#[derive(Debug, Clone)]
struct Slot {
    field: RawField,
    value: OnceLock<Value>,
    live: bool,
}

impl RawBody {
    /// Scans `bytes` written by `codec`; gives the bytes back when the
    /// codec is not read lazily or the scan is not sure (the caller then
    /// decodes them in full, which decides and names any error).
    pub(crate) fn scan(codec: Codec, bytes: Vec<u8>) -> std::result::Result<Self, Vec<u8>> {
        let found = match codec {
            Codec::Json => scan::json::scan(&bytes),
            Codec::MessagePack => scan::msgpack::scan(&bytes),
            _ => None,
        };
        match found {
            Some(fields) => Ok(RawBody::with_fields(codec, bytes, fields)),
            None => Err(bytes),
        }
    }

    /// A body of `bytes` whose fields a scan of them found.
    fn with_fields(
        codec: Codec,
        bytes: Vec<u8>,
        fields: impl IntoIterator<Item = RawField>,
    ) -> Self {
        RawBody {
            codec,
            bytes,
            slots: fields
                .into_iter()
                .map(|field| Slot {
                    field,
                    value: OnceLock::new(),
                    live: true,
                })
                .collect(),
        }
    }

    fn slot(&self, field: &str) -> Option<&Slot> {
        self.slots
            .iter()
            .find(|s| s.live && s.field.name.is(&self.bytes, field))
    }

    /// The value of a field still in the body, decoded on first read.
    pub(crate) fn get(&self, field: &str) -> Option<&Value> {
        let slot = self.slot(field)?;
        Some(slot.value.get_or_init(|| self.decode_slot(slot)))
    }

    /// True when `field` is still in the body and its stored value is the
    /// string `want` spelled the way our encoders spell it: JSON, `want`
    /// between quotes with no escape in it; MessagePack, `want` after the
    /// shortest string header. False does not mean "different": another
    /// writer may have spelled the same string otherwise (an escape, a
    /// longer header), so the caller then compares decoded values. A load
    /// checks its `_session_id`, and a save the principal's stamp, this way
    /// instead of decoding the field into a `String` to compare it.
    pub(crate) fn holds_str(&self, field: &str, want: &str) -> bool {
        let Some(span) = self
            .slot(field)
            .and_then(|slot| self.bytes.get(slot.field.value.clone()))
        else {
            return false;
        };
        let want = want.as_bytes();
        let (head, tail): (&[u8], &[u8]) = match self.codec {
            // The span is one JSON string the scan accepted: it has no raw
            // control byte and no bare quote inside, so its contents equal
            // `want` as text exactly when they equal it as bytes and hold
            // no backslash (the only way to write an escape).
            Codec::Json if !want.contains(&b'\\') => (b"\"", b"\""),
            Codec::MessagePack => match want.len() {
                n @ 0..32 => (&[0xa0 | n as u8], b""),
                n @ 32..256 => (&[0xd9, n as u8], b""),
                _ => return false,
            },
            _ => return false,
        };
        span.len() == head.len() + want.len() + tail.len()
            && span.starts_with(head)
            && span.ends_with(tail)
            && span.get(head.len()..span.len() - tail.len()) == Some(want)
    }

    /// True when `field` is still in the body.
    pub(crate) fn contains(&self, field: &str) -> bool {
        self.slot(field).is_some()
    }

    /// Number of fields still in the body.
    pub(crate) fn len(&self) -> usize {
        self.slots.iter().filter(|s| s.live).count()
    }

    /// Takes `field`'s value out of the body, decoded: it is the caller's
    /// to keep (under the name the caller already has).
    pub(crate) fn take(&mut self, field: &str) -> Option<Value> {
        let bytes = &self.bytes;
        let codec = self.codec;
        let slot = self
            .slots
            .iter_mut()
            .find(|s| s.live && s.field.name.is(bytes, field))?;
        slot.live = false;
        Some(match slot.value.take() {
            Some(v) => v,
            None => decode_value(codec, bytes, &slot.field),
        })
    }

    /// Every field still in the body, decoded, added to `map` (which holds
    /// none of them).
    pub(crate) fn decode_into(&self, map: &mut SessionData) {
        // Most of the body still there (a reader of the whole session after
        // a load): one decode of the bytes costs less than one per field.
        let live = self.len();
        if live * 2 >= self.slots.len()
            && let Ok(mut whole) = self.codec.decode(&self.bytes, "")
        {
            for slot in self.slots.iter().filter(|s| !s.live) {
                whole.remove(slot.field.name.as_str(&self.bytes));
            }
            if map.is_empty() {
                *map = whole;
            } else {
                map.append(&mut whole);
            }
            return;
        }
        for slot in self.slots.iter().filter(|s| s.live) {
            let value = match slot.value.get() {
                Some(v) => v.clone(),
                None => self.decode_slot(slot),
            };
            map.insert(slot.field.name.as_str(&self.bytes).to_owned(), value);
        }
    }

    fn decode_slot(&self, slot: &Slot) -> Value {
        decode_value(self.codec, &self.bytes, &slot.field)
    }

    /// The stored form of this body's fields plus `own` (fields decoded
    /// or set since, none of them in the body), or `None` when `codec` is
    /// not the one that wrote the body. The body's fields are copied as
    /// they were stored; only `own` is encoded. With `spans`, also where
    /// each field of the result lies, as a scan of it would find them
    /// (checked against the scanners by the lazy property tests).
    pub(crate) fn encode_with(
        &self,
        codec: Codec,
        own: &SessionData,
        spans: Option<&mut PackedSpans>,
    ) -> Option<Result<Vec<u8>>> {
        if codec != self.codec {
            return None;
        }
        Some(self.splice(own, spans))
    }

    /// Copies the kept fields' entries to `out`, `separator` between
    /// entries (JSON's comma; MessagePack has none), and notes where they
    /// land. Entries that lie next to each other in the stored bytes (one
    /// separator apart, as every compact writer leaves them) are copied as
    /// one run: one copy for the untouched fields between two changed ones,
    /// not one per field.
    fn copy_kept(
        &self,
        out: &mut Vec<u8>,
        mut spans: Option<&mut PackedSpans>,
        separator: Option<u8>,
    ) -> Result<()> {
        let gap = usize::from(separator.is_some());
        let next_to = |a: &RawField, b: &RawField| {
            b.entry.start == a.entry.end + gap
                && separator.is_none_or(|sep| self.bytes.get(a.entry.end) == Some(&sep))
        };
        let mut rest = &self.slots[..];
        while let Some(first) = rest.iter().position(|s| s.live) {
            rest = &rest[first..];
            let len = 1 + rest
                .windows(2)
                .take_while(|w| w[1].live && next_to(&w[0].field, &w[1].field))
                .count();
            let (run, after) = rest.split_at(len);
            rest = after;
            let (Some(head), Some(tail)) = (run.first(), run.last()) else {
                break;
            };
            if let Some(sep) = separator
                && out.len() > 1
            {
                out.push(sep);
            }
            let from = head.field.entry.start;
            let at = out.len();
            let bytes = self.bytes.get(from..tail.field.entry.end).ok_or_else(|| {
                Error::unencodable(self.codec.name(), "a scanned field lies outside its bytes")
            })?;
            out.extend_from_slice(bytes);
            if let Some(spans) = spans.as_deref_mut() {
                for slot in run {
                    // Every span of the field moves by the same distance.
                    let to = |r: &Range<usize>| r.start - from + at..r.end - from + at;
                    let name = match &slot.field.name {
                        RawName::Span(r) => Some(to(r)),
                        RawName::Owned(_) => None,
                    };
                    spans.push(name, to(&slot.field.entry), to(&slot.field.value));
                }
            }
        }
        Ok(())
    }

    fn splice(&self, own: &SessionData, mut spans: Option<&mut PackedSpans>) -> Result<Vec<u8>> {
        let codec = self.codec;
        if let Some(field) = own
            .iter()
            .find(|(_, v)| crate::codec::depth(v) >= MAX_DEPTH)
            .map(|(k, _)| k)
        {
            return Err(Error::unencodable(
                codec.name(),
                format!("field {field:?} nests deeper than {MAX_DEPTH} levels"),
            ));
        }
        let mut out = Vec::with_capacity(self.bytes.len() + 64);
        let failed = |e: crate::error::Cause| Error::encode_failed(codec.name(), e);
        match codec {
            Codec::MessagePack => {
                write_msgpack_map_len(&mut out, self.len() + own.len());
                self.copy_kept(&mut out, spans.as_deref_mut(), None)?;
                for (name, value) in own {
                    let at = out.len();
                    rmp_serde::encode::write_named(&mut out, name).map_err(|e| failed(e.into()))?;
                    let value_at = out.len();
                    rmp_serde::encode::write_named(&mut out, value)
                        .map_err(|e| failed(e.into()))?;
                    if let Some(spans) = spans.as_deref_mut() {
                        // A name is its header, then its bytes as they are.
                        let name = value_at - name.len()..value_at;
                        spans.push(Some(name), at..out.len(), value_at..out.len());
                    }
                }
            }
            _ => {
                out.push(b'{');
                self.copy_kept(&mut out, spans.as_deref_mut(), Some(b','))?;
                for (name, value) in own {
                    if out.len() > 1 {
                        out.push(b',');
                    }
                    let at = out.len();
                    serde_json::to_writer(&mut out, name).map_err(|e| failed(e.into()))?;
                    let name_end = out.len();
                    out.push(b':');
                    let value_at = out.len();
                    serde_json::to_writer(&mut out, value).map_err(|e| failed(e.into()))?;
                    if let Some(spans) = spans.as_deref_mut() {
                        // Between its quotes, unless an escape made it longer.
                        let name = (name_end - at == name.len() + 2).then(|| at + 1..name_end - 1);
                        spans.push(name, at..out.len(), value_at..out.len());
                    }
                }
                out.push(b'}');
            }
        }
        Ok(out)
    }
}

/// Decodes one field's value. The scan only hands out fields whose value
/// the full decode accepts (see [`crate::scan`]), so this does not fail;
/// if it ever did, the field reads as `null` and the fault is logged,
/// while a save still copies the field's stored bytes untouched.
fn decode_value(codec: Codec, bytes: &[u8], field: &RawField) -> Value {
    let span = bytes.get(field.value.clone()).unwrap_or_default();
    let decoded = match codec {
        Codec::MessagePack => {
            let mut de = rmp_serde::Deserializer::from_read_ref(span);
            de.set_max_depth(MAX_DEPTH + 1);
            serde::Deserialize::deserialize(&mut de)
                .map_err(|e: rmp_serde::decode::Error| e.to_string())
        }
        _ => serde_json::from_slice(span).map_err(|e| e.to_string()),
    };
    decoded.unwrap_or_else(|error| {
        tracing::error!(codec = codec.name(), %error, "a scanned field did not decode (a scanner bug)");
        debug_assert!(false, "a scanned field did not decode: {error}");
        Value::Null
    })
}

/// A MessagePack map header for `len` entries.
fn write_msgpack_map_len(out: &mut Vec<u8>, len: usize) {
    if let Ok(n @ 0..16) = u8::try_from(len) {
        out.push(0x80 | n);
    } else if let Ok(n) = u16::try_from(len) {
        out.push(0xde);
        out.extend_from_slice(&n.to_be_bytes());
    } else {
        out.push(0xdf);
        out.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
    }
}
