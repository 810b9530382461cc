//! Seal keys and the keyring: where they come from (a file or an
//! environment variable, never a command-line argument) and how they are
//! written down. Nothing here ever prints key material: `Debug` redacts it
//! and parse errors name the entry, not its text.

use std::path::Path;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::KeyInit;

use crate::error::{Error, Result};

/// Bytes of one key (AES-256-GCM and XChaCha20-Poly1305 both take
/// 256-bit keys).
pub const KEY_LEN: usize = 32;

/// One seal key: an id written beside every value it seals, and the key
/// material. `Debug` shows the id only.
#[derive(Clone)]
pub struct SealKey {
    id: u32,
    material: [u8; KEY_LEN],
    /// The AES-256-GCM state of `material` (round keys, GHASH key), made
    /// once: making it per operation cost about 0.14 µs of each seal and
    /// opening.
    gcm: Aes256Gcm,
}

impl SealKey {
    /// A key with this id and material.
    pub fn new(id: u32, material: [u8; KEY_LEN]) -> Self {
        SealKey {
            id,
            material,
            gcm: Aes256Gcm::new(&material.into()),
        }
    }

    /// The key id written into each value this key seals.
    pub const fn id(&self) -> u32 {
        self.id
    }

    /// The key material, for the cipher.
    pub(crate) const fn material(&self) -> &[u8; KEY_LEN] {
        &self.material
    }

    /// The AES-256-GCM cipher of this key (format version 2).
    pub(crate) const fn gcm(&self) -> &Aes256Gcm {
        &self.gcm
    }
}

/// Keys are equal when id and material are (the cipher state follows
/// from the material).
impl PartialEq for SealKey {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id && self.material == other.material
    }
}

impl Eq for SealKey {}

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealKey")
            .field("id", &self.id)
            .field("material", &"<redacted>")
            .finish()
    }
}

/// The keys a node seals and opens with: the **current** key seals every
/// new write; every listed key (the current one included) opens.
///
/// # Text form
///
/// One key per entry, `ID:HEX`, where `ID` is a decimal number
/// (0..=4294967295) and `HEX` 64 hex digits (32 bytes, e.g. from
/// `openssl rand -hex 32`). Entries are separated by newlines, commas or
/// semicolons (an environment variable holds one line); blank lines and
/// lines starting with `#` are skipped. **The first entry is the current
/// key**; the others are old keys still accepted on reads. To rotate:
/// put a new key first on every node, keep the old one listed, run
/// `sessionctl reseal`, then drop the old one.
///
/// ```text
/// # current key
/// 2:8f1c...64 hex digits...
/// # still read, no longer written
/// 1:03ab...64 hex digits...
/// ```
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Keyring {
    /// Never empty; the first is the current key.
    keys: Vec<SealKey>,
}

impl Keyring {
    /// A keyring of `current` alone.
    pub fn new(current: SealKey) -> Self {
        Keyring {
            keys: vec![current],
        }
    }

    /// Adds an old key that still opens values but seals none.
    /// [`Error::InvalidConfig`] when its id is listed already.
    pub fn with_old(mut self, old: SealKey) -> Result<Self> {
        if self.get(old.id).is_some() {
            return Err(duplicate(old.id));
        }
        self.keys.push(old);
        Ok(self)
    }

    /// The key that seals new writes.
    pub fn current(&self) -> &SealKey {
        // Never empty: every constructor puts one key in, none removes one.
        &self.keys[0]
    }

    /// The key with this id, if listed.
    pub fn get(&self, id: u32) -> Option<&SealKey> {
        self.keys.iter().find(|k| k.id == id)
    }

    /// The ids of every listed key, the current one first.
    pub fn ids(&self) -> Vec<u32> {
        self.keys.iter().map(SealKey::id).collect()
    }

    /// Parses the text form (see the type docs). Errors name the entry by
    /// its position, never its text.
    pub fn parse(text: &str) -> Result<Self> {
        let mut keys: Vec<SealKey> = Vec::new();
        let entries = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.starts_with('#'))
            .flat_map(|l| l.split([',', ';']))
            .map(str::trim)
            .filter(|e| !e.is_empty());
        for (n, entry) in entries.enumerate() {
            let n = n + 1;
            let bad = |what: &str| Error::InvalidConfig(format!("seal key entry {n}: {what}"));
            let (id, hex) = entry
                .split_once(':')
                .ok_or_else(|| bad("expected ID:HEX (a decimal key id, a colon, 64 hex digits)"))?;
            let id: u32 = id
                .trim()
                .parse()
                .map_err(|_| bad("the key id is not a number in 0..=4294967295"))?;
            let mut material = [0u8; KEY_LEN];
            hex::decode_to_slice(hex.trim(), &mut material)
                .map_err(|_| bad("the key is not 64 hex digits (32 bytes)"))?;
            if keys.iter().any(|k| k.id == id) {
                return Err(duplicate(id));
            }
            keys.push(SealKey::new(id, material));
        }
        if keys.is_empty() {
            return Err(Error::InvalidConfig(
                "no seal key given (expected entries ID:HEX, the current key first)".into(),
            ));
        }
        Ok(Keyring { keys })
    }

    /// Reads the text form from a file. A file that others than its owner
    /// may read is accepted with a warning (tests and containers often
    /// cannot choose modes), but it should be `0600` or `0400`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::InvalidConfig(format!("cannot read seal key file {}: {e}", path.display()))
        })?;
        #[cfg(unix)]
        if let Ok(meta) = std::fs::metadata(path) {
            use std::os::unix::fs::PermissionsExt;
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(
                    path = %path.display(),
                    "seal key file is readable by group or others; make it 0600"
                );
            }
        }
        Self::parse(&text).map_err(|e| match e {
            Error::InvalidConfig(m) => Error::InvalidConfig(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    /// Reads the text form from the environment variable `var` (its name
    /// may be given on a command line; its value never is).
    pub fn from_env(var: &str) -> Result<Self> {
        let text = std::env::var(var).map_err(|e| {
            Error::InvalidConfig(format!("seal keys: environment variable {var}: {e}"))
        })?;
        Self::parse(&text).map_err(|e| match e {
            Error::InvalidConfig(m) => Error::InvalidConfig(format!("${var}: {m}")),
            other => other,
        })
    }
}

fn duplicate(id: u32) -> Error {
    Error::InvalidConfig(format!("seal key id {id} is listed twice"))
}
