//! [`Session`]: one session's data, the Rust form of the original's tied hash.
//!
//! Change tracking works by comparison: before a field is first changed
//! (or lent out mutably), the handle keeps the value it had in the store,
//! and `save` compares each such field with its kept value. So a change
//! deep inside a nested value (`session.get_mut("cart")` then pushing into
//! a list) is seen and saved, and setting a field back is no change. Only
//! the fields touched are copied, never the whole map: a load, a change of
//! one field and a save cost one decode and one encode.
//! **This differs from the original**, whose MODIFIED bit is only set by
//! writes to the top-level hash: `push @{$s{list}}, 2` was silently never
//! saved there.
//!
//! A loaded session is not decoded up front (see `raw.rs`): it keeps the
//! stored bytes, decodes a field when it is first read, and a save copies
//! the bytes of the fields it did not touch. Every method answers exactly
//! as if the whole map had been decoded on load; only the cost differs.

use std::sync::OnceLock;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::codec::Codec;
use crate::error::{Error, Result};
use crate::id::SessionId;
use crate::scan::{PackedSpans, ScanMemo};
use crate::store::{Ttl, Version};

mod raw;

pub(crate) use raw::Loaded;
use raw::RawBody;

pub use crate::data::{ID_FIELD, MAX_DEPTH, SessionData};

/// Where a handle stands with respect to the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// Created with `update_only`: nothing written yet.
    Unwritten,
    /// The store holds this session (as of the snapshot).
    Stored,
    /// Deleted through this handle.
    Deleted,
}

/// One session: its id, its data, and what is needed to save it safely.
///
/// Obtained from [`crate::Sessions::create`] or [`crate::Sessions::load`],
/// and written back with [`crate::Sessions::save`]. `_session_id` is always
/// present and cannot be changed or removed through this handle.
#[derive(Debug, Clone)]
pub struct Session {
    pub(crate) id: SessionId,
    /// The fields as they are now: those decoded or set, all of them when
    /// `raw` is `None`. A field is in `data` or in `raw`, never in both.
    data: SessionData,
    /// The stored fields not yet read for a change, undecoded.
    raw: Option<Box<RawBody>>,
    /// The whole map, built on the first call that needs one
    /// ([`Session::data`], [`Session::iter`]) while `raw` holds fields; the
    /// next change makes it `data` and drops `raw` (see `settle`).
    full: OnceLock<SessionData>,
    /// The fields touched since the store last held this session, each
    /// with the value it had then (`None`: absent). What the store holds
    /// (the snapshot) is `data` with these put back. Changes go through
    /// [`Session::field_mut`], [`Session::set_field`] and
    /// [`Session::remove_field`], which keep the old value first.
    touched: Vec<(String, Option<Value>)>,
    /// The principal store's version of what the store held, when known.
    pub(crate) version: Option<Version>,
    pub(crate) state: State,
    /// The session was written but its reverse key could not be: the next
    /// save writes it even if nothing else changed.
    pub(crate) reverse_key_pending: bool,
    /// This session's own expiry, used by its saves and touches instead of
    /// the configured `timeout` (`None`: the configured one).
    pub(crate) expiry: Option<Ttl>,
    /// The lifetime it had left when it was read, where the store can tell.
    pub(crate) remaining: Option<Ttl>,
}

/// The top-level fields a handle changed since its snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Fields added or changed (at any depth inside them).
    pub set: Vec<String>,
    /// Fields removed.
    pub removed: Vec<String>,
}

impl Changes {
    /// True when nothing changed.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.removed.is_empty()
    }
}

impl Session {
    pub(crate) fn new(
        id: SessionId,
        data: SessionData,
        version: Option<Version>,
        state: State,
    ) -> Self {
        Session {
            id,
            data,
            raw: None,
            full: OnceLock::new(),
            touched: Vec::new(),
            version,
            state,
            reverse_key_pending: false,
            expiry: None,
            remaining: None,
        }
    }

    /// A session as loaded: decoded, or stored bytes to decode on demand.
    /// The store key is the truth about the id: a `_session_id` that says
    /// otherwise is replaced (as part of what the store holds, not as a
    /// change).
    pub(crate) fn loaded(
        id: SessionId,
        body: Loaded,
        version: Option<Version>,
        state: State,
    ) -> Self {
        let mut session = match body {
            Loaded::Decoded(data) => Session::new(id, data, version, state),
            Loaded::Raw(raw) => {
                let mut session = Session::new(id, SessionData::new(), version, state);
                session.raw = Some(raw);
                session
            }
        };
        if !session.holds_str(ID_FIELD, session.id.as_str())
            && session.current(ID_FIELD).and_then(Value::as_str) != Some(session.id.as_str())
        {
            if let Some(raw) = &mut session.raw {
                raw.take(ID_FIELD);
            }
            let id = Value::String(session.id.as_str().to_owned());
            session.data.insert(ID_FIELD.to_owned(), id);
        }
        session
    }

    /// True when `field` is still as stored and its stored bytes spell the
    /// string `want` the way our encoders do (see `RawBody::holds_str`): a
    /// quick "equal" with no decode. False means "compare the values".
    pub(crate) fn holds_str(&self, field: &str, want: &str) -> bool {
        self.raw
            .as_ref()
            .is_some_and(|raw| raw.holds_str(field, want))
    }

    /// True when `field` was changed (or removed, or added) since the store
    /// last held this session, even if back to its stored value.
    pub(crate) fn is_touched(&self, field: &str) -> bool {
        self.touched.iter().any(|(f, _)| f == field)
    }

    /// The current value of a field, wherever it is kept.
    fn current(&self, field: &str) -> Option<&Value> {
        match self.data.get(field) {
            Some(v) => Some(v),
            None => self.raw.as_ref().and_then(|raw| raw.get(field)),
        }
    }

    /// The whole current map, built once while fields are still raw.
    fn full(&self) -> &SessionData {
        match &self.raw {
            None => &self.data,
            Some(raw) => self.full.get_or_init(|| {
                let mut map = self.data.clone();
                raw.decode_into(&mut map);
                map
            }),
        }
    }

    /// Before a change: a whole map built by [`Session::full`] becomes the
    /// data, so the change lands in the one map every reader sees.
    fn settle(&mut self) {
        if let Some(full) = self.full.take() {
            self.data = full;
            self.raw = None;
        }
    }

    /// Moves a raw field into `data`, decoded, ready to be changed.
    fn take_raw(&mut self, field: &str) {
        if let Some(value) = self.raw.as_mut().and_then(|raw| raw.take(field)) {
            self.data.insert(field.to_owned(), value);
        }
    }

    /// The stored form of the current data: the untouched fields' bytes
    /// copied as loaded when `codec` is the one that wrote them, the rest
    /// encoded ([`Codec::encode`]'s rules and errors).
    pub(crate) fn encode(&self, codec: Codec) -> Result<Vec<u8>> {
        if let Some(raw) = &self.raw
            && let Some(bytes) = raw.encode_with(codec, &self.data, None)
        {
            return bytes;
        }
        codec.encode(self.full())
    }

    /// [`Session::encode`], plus where each field lies in the result when
    /// the untouched fields were copied (a splice knows that without a
    /// scan; see [`crate::store::Store::cas_with_memo`]). `None` for a full
    /// encode.
    pub(crate) fn encode_scanned(&self, codec: Codec) -> Result<(Vec<u8>, Option<ScanMemo>)> {
        if let Some(raw) = &self.raw {
            let mut spans = PackedSpans::with_capacity(raw.len() + self.data.len());
            if let Some(bytes) = raw.encode_with(codec, &self.data, Some(&mut spans)) {
                let bytes = bytes?;
                let memo = ScanMemo::of_spans(codec, bytes.len(), spans);
                return Ok((bytes, memo));
            }
        }
        Ok((codec.encode(self.full())?, None))
    }

    /// A fresh map holding only `_session_id`.
    pub(crate) fn initial_data(id: &SessionId) -> SessionData {
        let mut data = SessionData::new();
        data.insert(ID_FIELD.to_owned(), Value::String(id.as_str().to_owned()));
        data
    }

    /// The session id.
    pub fn id(&self) -> &SessionId {
        &self.id
    }

    /// Reads a field as `T`; `Ok(None)` when absent, [`Error::Field`] when it
    /// does not convert.
    pub fn get<T: DeserializeOwned>(&self, field: &str) -> Result<Option<T>> {
        self.current(field)
            .map(|v| T::deserialize(v).map_err(|e| Error::field_conversion(field, e)))
            .transpose()
    }

    /// Reads a field as a JSON-like value.
    pub fn get_value(&self, field: &str) -> Option<&Value> {
        self.current(field)
    }

    /// Borrows a field mutably, to change it in place (changes at any depth
    /// are saved). `None` for absent fields and for `_session_id`.
    pub fn get_mut(&mut self, field: &str) -> Option<&mut Value> {
        if field == ID_FIELD || !self.contains(field) {
            return None;
        }
        self.field_mut(field)
    }

    /// Sets a field from any serializable value; returns the previous value.
    ///
    /// [`Error::Field`] when `field` is `_session_id` or `value` does not
    /// serialize to a JSON-like value (e.g. a map with non-string keys).
    pub fn insert<T: Serialize>(
        &mut self,
        field: impl Into<String>,
        value: T,
    ) -> Result<Option<Value>> {
        let field = field.into();
        reject_id_field(&field)?;
        let value =
            serde_json::to_value(value).map_err(|e| Error::field_conversion(field.clone(), e))?;
        Ok(self.set_field(field, value))
    }

    /// Removes a field; returns its value. `_session_id` cannot be removed.
    pub fn remove(&mut self, field: &str) -> Option<Value> {
        if field == ID_FIELD || !self.contains(field) {
            return None;
        }
        self.remove_field(field)
    }

    /// True when the field is present.
    pub fn contains(&self, field: &str) -> bool {
        self.data.contains_key(field) || self.raw.as_ref().is_some_and(|raw| raw.contains(field))
    }

    /// The fields and their values, in field-name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.full().iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Number of fields, `_session_id` included.
    pub fn len(&self) -> usize {
        self.data.len() + self.raw.as_ref().map_or(0, |raw| raw.len())
    }

    /// Always false: `_session_id` is always present. Provided for symmetry with `len`.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The whole map, read-only. On a loaded session this decodes every
    /// field not read yet; [`Session::get_value`] decodes only the one.
    pub fn data(&self) -> &SessionData {
        self.full()
    }

    /// The whole map, given away: what [`Session::data`] would show,
    /// without copying it.
    pub fn into_data(mut self) -> SessionData {
        if let Some(full) = self.full.take() {
            return full;
        }
        if let Some(raw) = self.raw.take() {
            raw.decode_into(&mut self.data);
        }
        self.data
    }

    /// True when the data differs from what the store held (deep comparison
    /// of the fields touched).
    pub fn is_modified(&self) -> bool {
        self.touched
            .iter()
            .any(|(field, old)| self.current(field) != old.as_ref())
    }

    /// Keeps `field`'s stored value, once, before its first change.
    fn keep_old(&mut self, field: &str) {
        self.settle();
        self.take_raw(field);
        if !self.is_touched(field) {
            let old = self.data.get(field).cloned();
            self.touched.push((field.to_owned(), old));
        }
    }

    /// A field to change in place (any field, `_session_id` included).
    pub(crate) fn field_mut(&mut self, field: &str) -> Option<&mut Value> {
        self.keep_old(field);
        self.data.get_mut(field)
    }

    /// Sets any field (`_session_id` included); returns the previous value.
    pub(crate) fn set_field(&mut self, field: String, value: Value) -> Option<Value> {
        self.settle();
        // A field still raw (the usual change after a load) is decoded
        // once, straight into what is kept for the merge and what is handed
        // back: no stop in `data` on the way, and `field` is its key there.
        if let Some(old) = self.raw.as_mut().and_then(|raw| raw.take(&field)) {
            if !self.is_touched(&field) {
                self.touched.push((field.clone(), Some(old.clone())));
            }
            self.data.insert(field, value);
            return Some(old);
        }
        self.keep_old(&field);
        self.data.insert(field, value)
    }

    /// Removes any field; returns its value.
    pub(crate) fn remove_field(&mut self, field: &str) -> Option<Value> {
        if !self.contains(field) {
            return None;
        }
        self.keep_old(field);
        self.data.remove(field)
    }

    /// What the store held (as of the last read or write) for `field`.
    pub(crate) fn stored_field(&self, field: &str) -> Option<&Value> {
        match self.touched.iter().find(|(f, _)| f == field) {
            Some((_, old)) => old.as_ref(),
            None => self.current(field),
        }
    }

    /// The fields as the store held them: a view, no copy.
    pub(crate) fn stored(&self) -> Stored<'_> {
        Stored(self)
    }

    /// The whole snapshot, copied (for the rare paths that need a map).
    fn stored_map(&self) -> SessionData {
        let mut map = self.full().clone();
        for (field, old) in &self.touched {
            match old {
                Some(v) => map.insert(field.clone(), v.clone()),
                None => map.remove(field),
            };
        }
        map
    }

    /// Replaces the data by `data`, keeping the snapshot: the fields that
    /// differ become changes to save.
    pub(crate) fn replace_data(&mut self, data: SessionData) {
        let stored = self.stored_map();
        self.set_both(stored, data);
    }

    /// Sets snapshot and data at once.
    fn set_both(&mut self, stored: SessionData, data: SessionData) {
        let mut touched = Vec::new();
        for (field, old) in &stored {
            if data.get(field) != Some(old) {
                touched.push((field.clone(), Some(old.clone())));
            }
        }
        for field in data.keys() {
            if !stored.contains_key(field) {
                touched.push((field.clone(), None));
            }
        }
        self.data = data;
        self.raw = None;
        self.full = OnceLock::new();
        self.touched = touched;
    }

    /// Takes `stored` as what the store holds, keeping the data.
    pub(crate) fn set_stored(&mut self, stored: SessionData) {
        self.settle();
        let data = match self.raw.take() {
            Some(raw) => {
                let mut data = std::mem::take(&mut self.data);
                raw.decode_into(&mut data);
                data
            }
            None => std::mem::take(&mut self.data),
        };
        self.set_both(stored, data);
    }

    /// True until the first write of a session created with `update_only`.
    pub fn is_unwritten(&self) -> bool {
        self.state == State::Unwritten
    }

    /// True after [`crate::Sessions::delete`] on this handle.
    pub fn is_deleted(&self) -> bool {
        self.state == State::Deleted
    }

    /// The principal store's version this handle last saw, when known.
    pub fn version(&self) -> Option<Version> {
        self.version
    }

    /// Gives this session its own expiry: its next saves and touches write
    /// it with `ttl` instead of the configured `timeout`. Not stored with
    /// the session: a handle loaded later uses the configured timeout again
    /// unless its caller sets one (as a tower-sessions store does from its
    /// record's expiry date on every save).
    pub fn set_expiry(&mut self, ttl: Ttl) {
        self.expiry = Some(ttl);
    }

    /// The expiry set with [`Session::set_expiry`], if any.
    pub fn expiry(&self) -> Option<Ttl> {
        self.expiry
    }

    /// The lifetime the session had left when this handle last read or
    /// wrote it: `Some(Ttl::NEVER)` for a session that never expires, `None`
    /// when the store cannot tell (see [`crate::Capabilities::ttl_read`]).
    pub fn remaining(&self) -> Option<Ttl> {
        self.remaining
    }

    /// The top-level fields changed since the snapshot, each list in
    /// field-name order.
    pub fn changes(&self) -> Changes {
        let mut changes = Changes::default();
        for (field, old) in &self.touched {
            match self.current(field) {
                now if now == old.as_ref() => {}
                Some(_) => changes.set.push(field.clone()),
                None => changes.removed.push(field.clone()),
            }
        }
        changes.set.sort();
        changes.removed.sort();
        changes
    }

    /// Three-way merge of this handle's data (mine) with `theirs` (what the
    /// store holds now), against the snapshot (the base this handle read).
    ///
    /// Per field: changed by one side only, that side's value (a removal is
    /// a change); changed by both to the same value, that value; changed by
    /// both to different values, a *field conflict*, decided by
    /// `prefer_mine`. Returns the merged map and the conflicting fields.
    /// The handle is not modified.
    pub(crate) fn merge3(
        &self,
        theirs: &SessionData,
        prefer_mine: bool,
    ) -> (SessionData, Vec<String>) {
        let mine = self.full();
        let mut merged = SessionData::new();
        let mut conflicts = Vec::new();
        let mut fields: Vec<&String> = mine
            .keys()
            .chain(self.touched.iter().map(|(f, _)| f))
            .chain(theirs.keys())
            .collect();
        fields.sort();
        fields.dedup();
        for field in fields {
            let (b, m, t) = (self.stored_field(field), mine.get(field), theirs.get(field));
            let value = if m == b || m == t {
                t
            } else if t == b {
                m
            } else {
                conflicts.push(field.clone());
                if prefer_mine { m } else { t }
            };
            if let Some(v) = value {
                merged.insert(field.clone(), v.clone());
            }
        }
        merged.insert(
            ID_FIELD.to_owned(),
            Value::String(self.id.as_str().to_owned()),
        );
        (merged, conflicts)
    }

    /// Takes a merge result: `merged` becomes the data, `fresh` (what the
    /// store holds) the snapshot, so `changes()` names exactly what this
    /// handle still has to write and a further conflict can merge again.
    pub(crate) fn apply_merge(
        &mut self,
        fresh: SessionData,
        merged: SessionData,
        version: Option<Version>,
    ) {
        self.set_both(fresh, merged);
        self.version = version;
    }

    /// Re-applies this handle's changes on top of `fresh` (what another
    /// writer stored): [`Session::merge3`] with this handle winning every
    /// field conflict.
    #[cfg(test)]
    pub(crate) fn rebase(&mut self, fresh: SessionData, version: Option<Version>) {
        let (merged, _) = self.merge3(&fresh, true);
        self.apply_merge(fresh, merged, version);
    }

    /// Marks the current data as what the store holds.
    pub(crate) fn mark_synced(&mut self, version: Option<Version>) {
        self.touched.clear();
        self.version = version;
        self.state = State::Stored;
    }
}

/// Read access to a session's fields by name, on a map or on what the
/// store held for a handle ([`Session::stored`]), for the helpers that
/// read one or two fields (the principal, its digest) from either.
pub(crate) trait Fields {
    /// The value of `field`, if present.
    fn field(&self, field: &str) -> Option<&Value>;
}

impl Fields for SessionData {
    fn field(&self, field: &str) -> Option<&Value> {
        self.get(field)
    }
}

impl Fields for Session {
    fn field(&self, field: &str) -> Option<&Value> {
        self.current(field)
    }
}

/// The fields of a [`Session`] as the store held them.
pub(crate) struct Stored<'a>(&'a Session);

impl Fields for Stored<'_> {
    fn field(&self, field: &str) -> Option<&Value> {
        self.0.stored_field(field)
    }
}

fn reject_id_field(field: &str) -> Result<()> {
    if field == ID_FIELD {
        return Err(Error::field(
            field,
            "_session_id is set by the store and cannot be changed",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod lazy_tests;
#[cfg(test)]
mod tests;
