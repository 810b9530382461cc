//! Storable's opcodes ("markers") and flag bytes, with their names.
//!
//! The numbers are Storable's wire format (`SX_*` in its XS source); the
//! names appear in [`StorableError`](super::StorableError) messages so an
//! unsupported value says which Perl construct it met.

/// Already-stored object: a back reference to a shared or cyclic value.
pub const SX_OBJECT: u8 = 0;
/// Byte string, 4-byte length.
pub const SX_LSCALAR: u8 = 1;
/// Array: 4-byte count, then the items.
pub const SX_ARRAY: u8 = 2;
/// Hash: 4-byte count, then value / 4-byte key length / key bytes.
pub const SX_HASH: u8 = 3;
/// Reference to the value that follows.
pub const SX_REF: u8 = 4;
/// An undefined scalar.
pub const SX_UNDEF: u8 = 5;
/// Native integer (8 bytes, host order).
pub const SX_INTEGER: u8 = 6;
/// Native double (8 bytes, host order).
pub const SX_DOUBLE: u8 = 7;
/// Integer -128..=127, stored as the value plus 128.
pub const SX_BYTE: u8 = 8;
/// Big-endian 32-bit signed integer.
pub const SX_NETINT: u8 = 9;
/// Byte string, 1-byte length.
pub const SX_SCALAR: u8 = 10;
/// Tied array.
pub const SX_TIED_ARRAY: u8 = 11;
/// Tied hash.
pub const SX_TIED_HASH: u8 = 12;
/// Tied scalar.
pub const SX_TIED_SCALAR: u8 = 13;
/// Perl's immortal `undef` (in arrays: a missing element).
pub const SX_SV_UNDEF: u8 = 14;
/// Perl's immortal true value.
pub const SX_SV_YES: u8 = 15;
/// Perl's immortal false value.
pub const SX_SV_NO: u8 = 16;
/// Blessed object, class name inline.
pub const SX_BLESS: u8 = 17;
/// Blessed object, class name by index.
pub const SX_IX_BLESS: u8 = 18;
/// Object serialized by its class's `STORABLE_freeze` hook.
pub const SX_HOOK: u8 = 19;
/// Reference with overloading.
pub const SX_OVERLOAD: u8 = 20;
/// Tied hash element.
pub const SX_TIED_KEY: u8 = 21;
/// Tied array element.
pub const SX_TIED_IDX: u8 = 22;
/// UTF-8 string, 1-byte length.
pub const SX_UTF8STR: u8 = 23;
/// UTF-8 string, 4-byte length.
pub const SX_LUTF8STR: u8 = 24;
/// Hash with per-key flags (UTF-8 keys, restricted hashes).
pub const SX_FLAG_HASH: u8 = 25;
/// Code reference (as Perl source, with `$Storable::Deparse`).
pub const SX_CODE: u8 = 26;
/// Weak reference.
pub const SX_WEAKREF: u8 = 27;
/// Weak reference with overloading.
pub const SX_WEAKOVERLOAD: u8 = 28;
/// v-string magic, 1-byte length.
pub const SX_VSTRING: u8 = 29;
/// v-string magic, 4-byte length.
pub const SX_LVSTRING: u8 = 30;
/// Array element set to `&PL_sv_undef`.
pub const SX_SVUNDEF_ELEM: u8 = 31;
/// Compiled regular expression.
pub const SX_REGEXP: u8 = 32;
/// Object larger than 2 GiB (8-byte length).
pub const SX_LOBJECT: u8 = 33;
/// Perl 5.36+ boolean true (Storable 3.32+).
pub const SX_BOOLEAN_TRUE: u8 = 34;
/// Perl 5.36+ boolean false (Storable 3.32+).
pub const SX_BOOLEAN_FALSE: u8 = 35;

/// Flag-hash header bit: a restricted (locked) hash.
pub const SHV_RESTRICTED: u8 = 0x01;
/// Flag-hash key bit: the key bytes are UTF-8.
pub const SHV_K_UTF8: u8 = 0x01;
/// Flag-hash key bit: the key was UTF-8 and was downgraded to Latin-1.
pub const SHV_K_WASUTF8: u8 = 0x02;
/// Flag-hash key bit: the key is locked (restricted hashes).
pub const SHV_K_LOCKED: u8 = 0x04;
/// Flag-hash key bit: the key is a whole stored scalar, not bytes.
pub const SHV_K_ISSV: u8 = 0x08;
/// Flag-hash key bit: a placeholder (a deleted key of a restricted hash).
pub const SHV_K_PLACEHOLDER: u8 = 0x10;

/// The major version of every Storable since 0.6 (1999).
pub const MAJOR: u8 = 2;
/// The minor version we write: Storable 3.x's (Debian 12's 3.26 writes 11).
pub const MINOR_WRITTEN: u8 = 11;
/// Longest string [`SX_SCALAR`] / [`SX_UTF8STR`] hold.
pub const LG_SCALAR: usize = 255;

/// The Storable name of an opcode, for error messages.
pub fn name(op: u8) -> &'static str {
    match op {
        SX_OBJECT => "SX_OBJECT",
        SX_LSCALAR => "SX_LSCALAR",
        SX_ARRAY => "SX_ARRAY",
        SX_HASH => "SX_HASH",
        SX_REF => "SX_REF",
        SX_UNDEF => "SX_UNDEF",
        SX_INTEGER => "SX_INTEGER",
        SX_DOUBLE => "SX_DOUBLE",
        SX_BYTE => "SX_BYTE",
        SX_NETINT => "SX_NETINT",
        SX_SCALAR => "SX_SCALAR",
        SX_TIED_ARRAY => "SX_TIED_ARRAY",
        SX_TIED_HASH => "SX_TIED_HASH",
        SX_TIED_SCALAR => "SX_TIED_SCALAR",
        SX_SV_UNDEF => "SX_SV_UNDEF",
        SX_SV_YES => "SX_SV_YES",
        SX_SV_NO => "SX_SV_NO",
        SX_BLESS => "SX_BLESS",
        SX_IX_BLESS => "SX_IX_BLESS",
        SX_HOOK => "SX_HOOK",
        SX_OVERLOAD => "SX_OVERLOAD",
        SX_TIED_KEY => "SX_TIED_KEY",
        SX_TIED_IDX => "SX_TIED_IDX",
        SX_UTF8STR => "SX_UTF8STR",
        SX_LUTF8STR => "SX_LUTF8STR",
        SX_FLAG_HASH => "SX_FLAG_HASH",
        SX_CODE => "SX_CODE",
        SX_WEAKREF => "SX_WEAKREF",
        SX_WEAKOVERLOAD => "SX_WEAKOVERLOAD",
        SX_VSTRING => "SX_VSTRING",
        SX_LVSTRING => "SX_LVSTRING",
        SX_SVUNDEF_ELEM => "SX_SVUNDEF_ELEM",
        SX_REGEXP => "SX_REGEXP",
        SX_LOBJECT => "SX_LOBJECT",
        SX_BOOLEAN_TRUE => "SX_BOOLEAN_TRUE",
        SX_BOOLEAN_FALSE => "SX_BOOLEAN_FALSE",
        _ => "unknown opcode",
    }
}
