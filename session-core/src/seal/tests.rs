//! The seal's own checks: round trip, tampering, truncation, wrong and
//! unknown keys, the store key as associated data, rotation, plain values,
//! and no key material in any text.

use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::codec::{FLAGS_JSON, FLAGS_MSGPACK, FLAGS_REPLICATED};

const HEX1: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const HEX2: &str = "f0e1d2c3b4a5968778695a4b3c2d1e0ff0e1d2c3b4a5968778695a4b3c2d1e0f";

fn key(id: u32, byte: u8) -> SealKey {
    SealKey::new(id, [byte; KEY_LEN])
}

fn config(keys: &str) -> SealConfig {
    SealConfig::new(Keyring::parse(keys).unwrap())
}

fn session() -> SessionData {
    json!({"_session_id": "00112233445566778899aabbccddeeff", "uid": "jdoe", "n": 3})
        .as_object()
        .unwrap()
        .clone()
}

fn sealed(c: &SealConfig, store_key: &str) -> (Vec<u8>, u32) {
    let flags = SealConfig::flags(Codec::Json);
    let plain = Codec::Json.encode(&session()).unwrap();
    (c.seal(&plain, flags, store_key).unwrap(), flags)
}

fn problem(r: Result<SessionData>) -> SealProblem {
    match r {
        Err(Error::Seal { problem, .. }) => problem,
        other => panic!("expected a seal error, got {other:?}"),
    }
}

#[test]
fn round_trip_and_layout() {
    let c = SealConfig::new(Keyring::new(key(7, 1)));
    let (bytes, flags) = sealed(&c, "k1");
    assert_eq!(flags, FLAGS_JSON | FLAGS_SEALED);
    assert_eq!(bytes[0], SEAL_VERSION);
    assert_eq!(key_id_of(&bytes), Some(7));
    let plain_len = Codec::Json.encode(&session()).unwrap().len();
    assert_eq!(bytes.len(), plain_len + OVERHEAD);
    assert_eq!(c.decode_stored(&bytes, flags, "k1").unwrap(), session());
    assert!(c.is_current(&bytes, flags));
    // Never the same bytes twice (fresh nonce), always the same session.
    let (again, _) = sealed(&c, "k1");
    assert_ne!(again, bytes);
    assert_eq!(c.decode_stored(&again, flags, "k1").unwrap(), session());
    // A marker bit of the high half (the replicator's) does not matter.
    assert_eq!(
        c.decode_stored(&bytes, flags | FLAGS_REPLICATED, "k1")
            .unwrap(),
        session()
    );
}

/// `session()` sealed by the previous release (format version 1,
/// XChaCha20-Poly1305) under `key(7, 1)` for the store key `k1`, flags
/// `FLAGS_JSON | FLAGS_SEALED`: what deployments have stored already.
const V1_SEALED: &str = "010000000700000045fd949ff2c86a062cbb17ef834a7034db000000000000000006a8ca7ec3c4de75183ff1806f400f6ce047ed0719575d4a909a84b802f255a0b077dfb8bc2df20e805587bd77a82fea8bab870119f26970c7c4ea854780ef7e95d576ed52896e22810ad3732f3538ef7c75c6d4e5";

fn v1_sealed() -> Vec<u8> {
    hex::decode(V1_SEALED).unwrap()
}

#[test]
fn values_sealed_by_version_1_still_open() {
    let c = SealConfig::new(Keyring::new(key(7, 1)));
    let flags = SealConfig::flags(Codec::Json);
    let old = v1_sealed();
    assert_eq!(old[0], SEAL_VERSION_XCHACHA);
    assert_eq!(c.decode_stored(&old, flags, "k1").unwrap(), session());
    // Not current: reseal rewrites it, as version 2.
    assert!(!c.is_current(&old, flags));
    let (new, _) = sealed(&c, "k1");
    assert_eq!(new[0], SEAL_VERSION);
    assert!(c.is_current(&new, flags));
    // Still bound to its store key and checked by its own tag.
    assert_eq!(
        problem(c.decode_stored(&old, flags, "k2")),
        SealProblem::Tampered
    );
    // Relabelled as version 2, the bytes are refused, not misread.
    let mut relabelled = old.clone();
    relabelled[0] = SEAL_VERSION;
    assert!(matches!(
        problem(c.decode_stored(&relabelled, flags, "k1")),
        SealProblem::Tampered | SealProblem::Truncated
    ));
}

#[test]
fn nonces_never_repeat_within_a_process() {
    let c = SealConfig::new(Keyring::new(key(7, 1)));
    let mut seen = std::collections::HashSet::new();
    let mut counts = Vec::new();
    for _ in 0..1000 {
        let (bytes, _) = sealed(&c, "k1");
        let nonce = &bytes[9..9 + 12];
        assert!(seen.insert(nonce.to_vec()), "nonce repeated");
        counts.push(u64::from_be_bytes(nonce[4..].try_into().unwrap()));
    }
    // One prefix per process; the counter only goes up (other tests of
    // this process seal in between, so by one or more).
    let prefixes: std::collections::HashSet<_> = seen.iter().map(|n| n[..4].to_vec()).collect();
    assert_eq!(prefixes.len(), 1);
    assert!(counts.windows(2).all(|w| w[1] != w[0]));
}

#[test]
fn every_tampered_byte_is_refused() {
    let c = SealConfig::new(Keyring::new(key(7, 1)));
    let (bytes, flags) = sealed(&c, "k1");
    for_every_flipped_byte(&c, &bytes, flags);
    for_every_flipped_byte(&c, &v1_sealed(), flags);
}

fn for_every_flipped_byte(c: &SealConfig, bytes: &[u8], flags: u32) {
    for i in 0..bytes.len() {
        let mut t = bytes.to_vec();
        t[i] ^= 0x01;
        let p = problem(c.decode_stored(&t, flags, "k1"));
        match i {
            0 => assert_eq!(p, SealProblem::UnknownVersion(bytes[0] ^ 1)),
            1..=4 => assert_eq!(p, SealProblem::UnknownKey, "byte {i}"),
            // The length: longer than the value is a cut, shorter an edit.
            5..=8 => assert!(
                matches!(p, SealProblem::Truncated | SealProblem::Tampered),
                "byte {i}: {p:?}"
            ),
            _ => assert_eq!(p, SealProblem::Tampered, "byte {i}"),
        }
    }
    // Appended bytes shift the tag: refused too.
    let mut longer = bytes.to_vec();
    longer.push(0);
    assert_eq!(
        problem(c.decode_stored(&longer, flags, "k1")),
        SealProblem::Tampered
    );
}

#[test]
fn every_truncation_is_refused() {
    let c = SealConfig::new(Keyring::new(key(7, 1)));
    let (bytes, flags) = sealed(&c, "k1");
    for bytes in [bytes, v1_sealed()] {
        for len in 0..bytes.len() {
            let p = problem(c.decode_stored(&bytes[..len], flags, "k1"));
            assert_eq!(p, SealProblem::Truncated, "length {len}");
        }
    }
}

#[test]
fn wrong_material_and_unknown_ids_are_refused() {
    let c = SealConfig::new(Keyring::new(key(7, 1)));
    let (bytes, flags) = sealed(&c, "k1");
    let same_id_other_material = SealConfig::new(Keyring::new(key(7, 2)));
    assert_eq!(
        problem(same_id_other_material.decode_stored(&bytes, flags, "k1")),
        SealProblem::Tampered
    );
    let other_id = SealConfig::new(Keyring::new(key(8, 1)));
    let err = other_id.decode_stored(&bytes, flags, "k1").unwrap_err();
    assert!(
        matches!(
            err,
            Error::Seal {
                key_id: Some(7),
                problem: SealProblem::UnknownKey,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.kind(), crate::ErrorKind::Data);
    assert!(!err.is_retryable());
    // No keys at all: typed, not the ciphertext fed to the JSON parser.
    assert!(matches!(
        Codec::decode_stored(&bytes, flags, "k1"),
        Err(Error::Seal {
            problem: SealProblem::NoKeys,
            ..
        })
    ));
}

#[test]
fn the_store_key_and_the_format_are_bound() {
    let c = SealConfig::new(Keyring::new(key(7, 1)));
    let (bytes, flags) = sealed(&c, "prefix:0123");
    // Copied under another id: does not open.
    assert_eq!(
        problem(c.decode_stored(&bytes, flags, "prefix:0124")),
        SealProblem::Tampered
    );
    // Relabelled as another codec, or the seal bit's neighbours flipped.
    for other in [
        FLAGS_MSGPACK | FLAGS_SEALED,
        flags | FLAGS_PERL_COMPRESSED_FOR_TEST,
    ] {
        assert_eq!(
            problem(c.decode_stored(&bytes, other, "prefix:0123")),
            SealProblem::Tampered,
            "{other:#x}"
        );
    }
}

const FLAGS_PERL_COMPRESSED_FOR_TEST: u32 = crate::codec::FLAGS_PERL_COMPRESSED;

#[test]
fn rotation_seals_with_the_current_key_and_opens_old_ones() {
    let old = SealConfig::new(Keyring::new(key(1, 1)));
    let (by_old, flags) = sealed(&old, "k");
    let rotated = SealConfig::new(Keyring::new(key(2, 2)).with_old(key(1, 1)).unwrap());
    assert_eq!(
        rotated.decode_stored(&by_old, flags, "k").unwrap(),
        session()
    );
    assert!(!rotated.is_current(&by_old, flags));
    let (by_new, _) = sealed(&rotated, "k");
    assert_eq!(key_id_of(&by_new), Some(2));
    assert!(rotated.is_current(&by_new, flags));
    // A node still on the old keyring cannot read the new key's values.
    assert_eq!(
        problem(old.decode_stored(&by_new, flags, "k")),
        SealProblem::UnknownKey
    );
    // The old key dropped: its values are refused.
    let dropped = SealConfig::new(Keyring::new(key(2, 2)));
    assert_eq!(
        problem(dropped.decode_stored(&by_old, flags, "k")),
        SealProblem::UnknownKey
    );
    assert!(Keyring::new(key(2, 2)).with_old(key(2, 3)).is_err());
}

#[test]
fn plain_values_are_refused_unless_accepted() {
    let mut c = SealConfig::new(Keyring::new(key(1, 1)));
    let plain = Codec::Json.encode(&session()).unwrap();
    assert_eq!(
        problem(c.decode_stored(&plain, FLAGS_JSON, "k")),
        SealProblem::Unsealed
    );
    c.accept_unsealed = true;
    assert_eq!(c.decode_stored(&plain, FLAGS_JSON, "k").unwrap(), session());
    // Raw values stay "not a session" either way.
    assert!(matches!(
        c.decode_stored(b"0123", 0, "k"),
        Err(Error::NotASession { .. })
    ));
}

#[test]
fn keyring_text_form() {
    let ring = Keyring::parse(&format!("# current\n2:{HEX2}\n\n1:{HEX1}\n")).unwrap();
    assert_eq!(ring.ids(), vec![2, 1]);
    assert_eq!(ring.current().id(), 2);
    let one_line = Keyring::parse(&format!("2:{HEX2},1:{HEX1}")).unwrap();
    assert_eq!(one_line, ring);
    assert_eq!(config(&format!("5:{HEX1}")).keyring.ids(), vec![5]);
    for bad in [
        String::new(),
        "# only a comment".into(),
        format!("x:{HEX1}"),
        "1:abcd".into(),
        format!("1:{HEX1},1:{HEX2}"),
        HEX1.to_owned(),
    ] {
        let err = Keyring::parse(&bad).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, Error::InvalidConfig(_)), "{bad:?}");
        assert!(
            !text.contains(&HEX1[..16]) && !text.contains(&HEX2[..16]),
            "{text}"
        );
    }
}

#[test]
fn key_material_is_never_printed() {
    let ring = Keyring::parse(&format!("2:{HEX2},1:{HEX1}")).unwrap();
    let c = SealConfig::new(ring);
    let shown = format!("{c:?} {:?}", c.keyring.current());
    assert!(
        shown.contains("redacted") && shown.contains("id: 2"),
        "{shown}"
    );
    for hex in [HEX1, HEX2] {
        assert!(!shown.contains(&hex[..8]), "{shown}");
    }
    let mut bytes = [0u8; KEY_LEN];
    hex::decode_to_slice(HEX1, &mut bytes).unwrap();
    assert!(!shown.contains(&format!("{bytes:?}")), "{shown}");
}

#[test]
fn keyring_from_file_and_env() {
    let dir = std::env::temp_dir().join(format!("seal-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("keys");
    std::fs::write(&path, format!("3:{HEX1}\n")).unwrap();
    assert_eq!(Keyring::from_file(&path).unwrap().ids(), vec![3]);
    let missing = Keyring::from_file(&dir.join("nope")).unwrap_err();
    assert!(missing.to_string().contains("nope"), "{missing}");
    std::fs::remove_dir_all(&dir).unwrap();
    let err = Keyring::from_env("SEAL_TEST_VARIABLE_NOT_SET_ANYWHERE").unwrap_err();
    assert!(matches!(err, Error::InvalidConfig(_)));
}

proptest! {
    /// Any bytes under the seal flag: a typed error, never a panic, never a session.
    #[test]
    fn garbage_never_opens(bytes in prop::collection::vec(any::<u8>(), 0..128)) {
        let c = SealConfig::new(Keyring::new(key(1, 1)));
        let flags = SealConfig::flags(Codec::Json);
        let refused = matches!(c.decode_stored(&bytes, flags, "k"), Err(Error::Seal { .. }));
        prop_assert!(refused);
    }
}

#[test]
fn sealing_in_the_codecs_buffer_and_long_store_keys_round_trip() {
    let c = SealConfig::new(Keyring::new(key(7, 1)));
    let flags = SealConfig::flags(Codec::Json);
    let plain = Codec::Json.encode(&session()).unwrap();
    // In the codec's own buffer: the same layout as a copy's.
    let owned = c.seal_owned(plain.clone(), flags, "k1").unwrap();
    assert_eq!(owned.len(), plain.len() + OVERHEAD);
    assert_eq!(
        owned[..BOUND_HEADER],
        c.seal(&plain, flags, "k1").unwrap()[..BOUND_HEADER]
    );
    assert_eq!(c.open(&owned, flags, "k1").unwrap(), plain);
    // Empty plaintext, and no spare capacity at all.
    let mut tight = plain.clone();
    tight.shrink_to_fit();
    assert_eq!(
        c.open(&c.seal_owned(tight, flags, "k1").unwrap(), flags, "k1")
            .unwrap(),
        plain
    );
    assert!(
        c.open(&c.seal_owned(Vec::new(), flags, "k").unwrap(), flags, "k")
            .unwrap()
            .is_empty()
    );
    // Store keys past the inline room take the heap, bound all the same.
    for len in [INLINE_AD - BOUND_HEADER - 2, INLINE_AD, 4 * INLINE_AD] {
        let long = "k".repeat(len);
        let sealed = c.seal_owned(plain.clone(), flags, &long).unwrap();
        assert_eq!(c.open(&sealed, flags, &long).unwrap(), plain, "{len}");
        let other = format!("{}x", &long[1..]);
        assert_eq!(
            problem(c.decode_stored(&sealed, flags, &other)),
            SealProblem::Tampered,
            "{len}"
        );
    }
}

#[test]
fn associated_data_is_the_same_inline_and_on_the_heap() {
    let bound = [2, 0, 0, 0, 7, 0, 0, 1, 0];
    for key in ["", "k", "prefix:00112233445566778899aabbccddeeff"] {
        let inline = with_associated_data(&bound, 0x0001_0009, key, <[u8]>::to_vec);
        assert_eq!(inline, associated_data(&bound, 0x0001_0009, key));
        // Header, the low 16 flag bits (not the marker above), the key.
        assert_eq!(inline[..9], bound);
        assert_eq!(inline[9..11], [0x00, 0x09]);
        assert_eq!(&inline[11..], key.as_bytes());
    }
}
