//! What the fuzz targets share: an allocator that counts, so a target can
//! assert how much memory one input may cost (not only "no panic"), and
//! structure-aware generators of session values for the round trips.
//!
//! The limits each target asserts are stated beside it; libFuzzer's own
//! `-rss_limit_mb` and `-timeout` (set by `cargo xtask fuzz`) bound the
//! whole process as a second line.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use arbitrary::{Result, Unstructured};
use serde_json::{Map, Number, Value};

/// The system allocator, counting live bytes and their high-water mark.
pub struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to `System` unchanged; only counters are
// added around it.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as is.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded as is.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            grew(new_size);
        }
        p
    }
}

fn grew(size: usize) {
    let live = LIVE.fetch_add(size, Ordering::Relaxed) + size;
    PEAK.fetch_max(live, Ordering::Relaxed);
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f` and returns its result with the most bytes it had allocated at
/// once beyond what was live before it.
pub fn peak_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let out = f();
    let peak = PEAK.load(Ordering::Relaxed).saturating_sub(before);
    (out, peak)
}

/// Runs `f` and panics (a finding) when it allocated more than `limit`
/// bytes at once; `what` names the parser in the message.
pub fn within<T>(what: &str, limit: usize, f: impl FnOnce() -> T) -> T {
    let (out, peak) = peak_during(f);
    assert!(
        peak <= limit,
        "{what} allocated {peak} bytes at once, over its limit of {limit}"
    );
    out
}

/// How deep [`value`] nests at most: well under every parser's limit, so
/// a round trip is never refused for depth.
pub const MAX_GEN_DEPTH: usize = 6;

/// A session value: scalars of every JSON kind (finite floats only, as
/// JSON has no others), strings both plain and hostile, short lists and
/// maps, keys sometimes element names (SOAP structs) and sometimes not
/// (SOAP maps).
pub fn value(u: &mut Unstructured<'_>, depth: usize) -> Result<Value> {
    let kinds = if depth >= MAX_GEN_DEPTH { 6 } else { 8 };
    Ok(match u.choose_index(kinds)? {
        0 => Value::Null,
        1 => Value::Bool(u.arbitrary()?),
        2 => Value::from(u.arbitrary::<i64>()?),
        3 => Value::from(u.arbitrary::<u64>()?),
        4 => {
            let f: f64 = u.arbitrary()?;
            Number::from_f64(f).map_or(Value::Null, Value::Number)
        }
        5 => Value::String(string(u)?),
        6 => {
            let n = u.int_in_range(0..=4)?;
            let mut items = Vec::with_capacity(n);
            for _ in 0..n {
                items.push(value(u, depth + 1)?);
            }
            Value::Array(items)
        }
        _ => Value::Object(map(u, depth + 1)?),
    })
}

/// A map of up to five entries (a session, or a nested map).
pub fn map(u: &mut Unstructured<'_>, depth: usize) -> Result<Map<String, Value>> {
    let n = u.int_in_range(0..=5)?;
    let mut out = Map::new();
    for _ in 0..n {
        let key = if u.arbitrary()? { name(u)? } else { string(u)? };
        out.insert(key, value(u, depth)?);
    }
    Ok(out)
}

/// A string: half the time readable ASCII, else any Unicode.
pub fn string(u: &mut Unstructured<'_>) -> Result<String> {
    if u.arbitrary()? {
        let len = u.int_in_range(0..=12)?;
        let mut s = String::with_capacity(len);
        for _ in 0..len {
            s.push(char::from(u.int_in_range(0x20u8..=0x7e)?));
        }
        Ok(s)
    } else {
        u.arbitrary()
    }
}

/// An XML element name (`[a-z_][a-z0-9_.-]*`).
pub fn name(u: &mut Unstructured<'_>) -> Result<String> {
    const FIRST: &[u8] = b"abcdefghijklmnopqrstuvwxyz_";
    const REST: &[u8] = b"abcdefghijklmnopqrstuvwxyz_0123456789.-";
    let mut s = String::new();
    s.push(char::from(*u.choose(FIRST)?));
    for _ in 0..u.int_in_range(0..=8)? {
        s.push(char::from(*u.choose(REST)?));
    }
    Ok(s)
}

/// Booleans as the integers 1 and 0, recursively: what a value becomes
/// through a codec that has no booleans (Storable 3.x as Perl writes it).
pub fn no_bools(v: Value) -> Value {
    match v {
        Value::Bool(b) => Value::from(i64::from(b)),
        Value::Array(items) => Value::Array(items.into_iter().map(no_bools).collect()),
        Value::Object(map) => {
            Value::Object(map.into_iter().map(|(k, v)| (k, no_bools(v))).collect())
        }
        other => other,
    }
}

/// A generated session map, for `#[derive(Arbitrary)]` inputs.
#[derive(Debug, Clone)]
pub struct ArbMap(pub Map<String, Value>);

impl<'a> arbitrary::Arbitrary<'a> for ArbMap {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        map(u, 1).map(ArbMap)
    }
}
