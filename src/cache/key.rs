//! Cache keys.
//!
//! A variant is found again only if the same request produces the same key, and two different
//! requests must never share one. The key is therefore a SHA-256 over a version tag and a list of
//! *named, length-prefixed* fields: the encoding of a field list is uniquely decodable, so no two
//! different lists (even `("a", "bc")` against `("ab", "c")`, or a field moved into its
//! neighbour) feed the hash the same bytes.
//!
//! The caller passes canonical bytes (the parsed plan's canonical form, the source's identity,
//! the negotiated output format); secrets such as `sign` and `key` never reach this module.
//! Bumping [`KEY_VERSION`] orphans every stored variant at once (they age out of both tiers).

use std::fmt;
use std::hash::{Hash, Hasher};

use sha2::{Digest, Sha256};

/// Folded into every key; change it when the meaning of a field changes.
pub const KEY_VERSION: &str = "imgedge/cache-key/v1";

/// The identity of one cached variant: 32 bytes of SHA-256.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key([u8; 32]);

impl Key {
    /// Starts a key over the current [`KEY_VERSION`].
    pub fn builder() -> KeyBuilder {
        KeyBuilder::new()
    }

    /// Wraps raw digest bytes (e.g. read back from storage).
    pub const fn from_bytes(bytes: [u8; 32]) -> Key {
        Key(bytes)
    }

    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        hex_encode(&self.0)
    }

    /// Parses 64 hex digits (either case); anything else is `None`.
    pub fn from_hex(s: &str) -> Option<Key> {
        let s = s.as_bytes();
        if s.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, pair) in s.chunks_exact(2).enumerate() {
            out[i] = (hex_digit(pair[0])? << 4) | hex_digit(pair[1])?;
        }
        Some(Key(out))
    }
}

// Written by hand (not derived) so the hash fed to foyer's on-disk index depends only on the
// key bytes, never on how the standard library hashes arrays.
impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write(&self.0);
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({})", self.to_hex())
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Builds a [`Key`] from named fields, in order.
///
/// ```
/// use imgedge::cache::Key;
/// let key = Key::builder()
///     .field("endpoint", "resize")
///     .field("plan", "Resize { width: 300, height: 0 }")
///     .field("source", "https://example.com/cat.jpg")
///     .field("format", "webp")
///     .finish();
/// assert_eq!(Key::from_hex(&key.to_hex()), Some(key));
/// ```
#[derive(Clone)]
pub struct KeyBuilder {
    hasher: Sha256,
}

impl Default for KeyBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl KeyBuilder {
    pub fn new() -> Self {
        Self::with_version(KEY_VERSION)
    }

    /// A builder under another version tag (tests; or a separate key space).
    pub fn with_version(version: &str) -> Self {
        let mut hasher = Sha256::new();
        put(&mut hasher, version.as_bytes());
        KeyBuilder { hasher }
    }

    /// Appends one field. Field order matters; callers list fields in a fixed order.
    pub fn field(mut self, name: &str, value: impl AsRef<[u8]>) -> Self {
        put(&mut self.hasher, name.as_bytes());
        put(&mut self.hasher, value.as_ref());
        self
    }

    pub fn finish(self) -> Key {
        let digest = self.hasher.finalize();
        let mut out = [0u8; 32];
        out.copy_from_slice(digest.as_slice());
        Key(out)
    }
}

fn put(hasher: &mut Sha256, bytes: &[u8]) {
    hasher.update((bytes.len() as u64).to_le_bytes());
    hasher.update(bytes);
}

pub(crate) fn hex_encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 0x0f) as usize] as char);
    }
    s
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn key(fields: &[(&str, &str)]) -> Key {
        fields
            .iter()
            .fold(Key::builder(), |b, (n, v)| b.field(n, v))
            .finish()
    }

    #[test]
    fn same_fields_same_key() {
        let a = key(&[("endpoint", "resize"), ("plan", "w=300")]);
        let b = key(&[("endpoint", "resize"), ("plan", "w=300")]);
        assert_eq!(a, b);
    }

    #[test]
    fn boundaries_between_fields_matter() {
        let keys = [
            key(&[("a", "bc")]),
            key(&[("ab", "c")]),
            key(&[("a", "b"), ("c", "")]),
            key(&[("a", ""), ("bc", "")]),
            key(&[("a", "bc"), ("", "")]),
            key(&[("abc", "")]),
            key(&[("", "abc")]),
            key(&[]),
            key(&[("b", "bc")]),
            key(&[("a", "bd")]),
        ];
        let distinct: HashSet<Key> = keys.iter().copied().collect();
        assert_eq!(distinct.len(), keys.len(), "{keys:?}");
    }

    #[test]
    fn field_order_and_version_matter() {
        let ab = key(&[("x", "1"), ("y", "2")]);
        let ba = key(&[("y", "2"), ("x", "1")]);
        assert_ne!(ab, ba);
        let other = KeyBuilder::with_version("imgedge/cache-key/v2")
            .field("x", "1")
            .field("y", "2")
            .finish();
        assert_ne!(ab, other);
    }

    #[test]
    fn binary_values_are_fine() {
        let a = Key::builder().field("body", [0u8, 255, 0]).finish();
        let b = Key::builder().field("body", [0u8, 255]).finish();
        assert_ne!(a, b);
    }

    #[test]
    fn hex_round_trip_and_rejects() {
        let k = key(&[("endpoint", "crop")]);
        let hex = k.to_hex();
        assert_eq!(hex.len(), 64);
        assert!(hex
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_eq!(Key::from_hex(&hex), Some(k));
        assert_eq!(Key::from_hex(&hex.to_uppercase()), Some(k));
        assert_eq!(Key::from_hex(&hex[..63]), None);
        assert_eq!(Key::from_hex(&format!("{hex}0")), None);
        assert_eq!(Key::from_hex(&format!("g{}", &hex[1..])), None);
        assert_eq!(Key::from_hex(""), None);
        // A multi-byte character must not be split into a "pair".
        assert_eq!(Key::from_hex(&format!("é{}", &hex[2..])), None);
        assert_eq!(format!("{k:?}"), format!("Key({hex})"));
        assert_eq!(k.to_string(), hex);
    }

    #[test]
    fn known_vector_is_stable() {
        // Pinned: changing the encoding silently would orphan every stored variant on upgrade
        // (and is what KEY_VERSION is for).
        let k = Key::builder().field("endpoint", "resize").finish();
        let mut h = Sha256::new();
        h.update((KEY_VERSION.len() as u64).to_le_bytes());
        h.update(KEY_VERSION);
        h.update(8u64.to_le_bytes());
        h.update("endpoint");
        h.update(6u64.to_le_bytes());
        h.update("resize");
        assert_eq!(k.as_bytes().as_slice(), h.finalize().as_slice());
    }
}
