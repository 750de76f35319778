//! One produced image variant, as the cache stores it.
//!
//! The disk tier stores variants in a compact binary form of their own rather than a generic
//! serializer's: the format is pinned by a magic and a version (an old or foreign record is
//! recognised and read as a miss), and decoding checks every length against the input, so bytes
//! that are not a variant decode to `None` and never panic or allocate what they claim.

use bytes::Bytes;

/// The first bytes of every encoded variant.
pub const VARIANT_MAGIC: [u8; 4] = *b"IEVR";
/// Bumped whenever the layout below changes.
pub const VARIANT_VERSION: u8 = 1;

/// An image variant: the bytes sent to clients and what the response headers need.
#[derive(Clone, PartialEq, Eq)]
pub struct Variant {
    pub body: Bytes,
    pub content_type: String,
    pub etag: String,
    /// When the variant was produced, Unix seconds.
    pub created_unix: u64,
    /// How long after `created_unix` it may be served without being produced again.
    pub ttl_secs: u64,
    pub width: u32,
    pub height: u32,
}

impl std::fmt::Debug for Variant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Variant")
            .field("body_len", &self.body.len())
            .field("content_type", &self.content_type)
            .field("etag", &self.etag)
            .field("created_unix", &self.created_unix)
            .field("ttl_secs", &self.ttl_secs)
            .field("width", &self.width)
            .field("height", &self.height)
            .finish()
    }
}

// Fixed part: magic, version, created, ttl, width, height, content-type length, etag length,
// body length.
const FIXED_LEN: usize = 4 + 1 + 8 + 8 + 4 + 4 + 2 + 2 + 4;

impl Variant {
    /// Unix second at which the variant stops being fresh (saturating).
    pub fn expires_unix(&self) -> u64 {
        self.created_unix.saturating_add(self.ttl_secs)
    }

    /// Fresh while `now` is before `created_unix + ttl_secs`; a TTL of 0 is never fresh.
    pub fn is_fresh(&self, now: u64) -> bool {
        now < self.expires_unix()
    }

    /// Seconds since production (0 if the clock went backwards), for the `Age` header.
    pub fn age(&self, now: u64) -> u64 {
        now.saturating_sub(self.created_unix)
    }

    /// Seconds of freshness left at `now`.
    pub fn remaining_ttl(&self, now: u64) -> u64 {
        self.expires_unix().saturating_sub(now)
    }

    /// Bytes this variant costs in memory, roughly: what the memory tiers weigh it by.
    pub fn weight(&self) -> u64 {
        (self.body.len() + self.content_type.len() + self.etag.len() + 96) as u64
    }

    /// Length of [`Variant::encode`]'s output, or `None` if a field is too long to encode
    /// (content type or ETag over 64 KiB, body over 4 GiB).
    pub fn encoded_len(&self) -> Option<usize> {
        if self.content_type.len() > u16::MAX as usize
            || self.etag.len() > u16::MAX as usize
            || self.body.len() > u32::MAX as usize
        {
            return None;
        }
        Some(FIXED_LEN + self.content_type.len() + self.etag.len() + self.body.len())
    }

    /// The versioned binary form (little-endian):
    /// `"IEVR" | version u8 | created u64 | ttl u64 | width u32 | height u32 |
    ///  content_type_len u16 | etag_len u16 | body_len u32 | content_type | etag | body`.
    ///
    /// Returns an empty vector for a variant that cannot be encoded (see
    /// [`Variant::encoded_len`]); it decodes to `None`, so such a variant is simply not stored.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    /// Appends the encoding to `out`; returns false (and appends nothing) if it cannot encode.
    pub fn encode_into(&self, out: &mut Vec<u8>) -> bool {
        let Some(len) = self.encoded_len() else {
            return false;
        };
        out.reserve(len);
        out.extend_from_slice(&VARIANT_MAGIC);
        out.push(VARIANT_VERSION);
        out.extend_from_slice(&self.created_unix.to_le_bytes());
        out.extend_from_slice(&self.ttl_secs.to_le_bytes());
        out.extend_from_slice(&self.width.to_le_bytes());
        out.extend_from_slice(&self.height.to_le_bytes());
        out.extend_from_slice(&(self.content_type.len() as u16).to_le_bytes());
        out.extend_from_slice(&(self.etag.len() as u16).to_le_bytes());
        out.extend_from_slice(&(self.body.len() as u32).to_le_bytes());
        out.extend_from_slice(self.content_type.as_bytes());
        out.extend_from_slice(self.etag.as_bytes());
        out.extend_from_slice(&self.body);
        true
    }

    /// Reads back [`Variant::encode`]'s output. Wrong magic, another version, a length that
    /// does not match the input exactly, or text that is not UTF-8: `None`.
    pub fn decode(bytes: &[u8]) -> Option<Variant> {
        Self::decode_shared(&Bytes::copy_from_slice(bytes))
    }

    /// Like [`Variant::decode`], but the body shares `bytes`' buffer instead of copying it.
    pub fn decode_shared(bytes: &Bytes) -> Option<Variant> {
        let mut r = Reader { buf: bytes, pos: 0 };
        if r.take(4)? != VARIANT_MAGIC.as_slice() || r.u8()? != VARIANT_VERSION {
            return None;
        }
        let created_unix = r.u64()?;
        let ttl_secs = r.u64()?;
        let width = r.u32()?;
        let height = r.u32()?;
        let ct_len = r.u16()? as usize;
        let etag_len = r.u16()? as usize;
        let body_len = r.u32()? as usize;
        if bytes.len() - r.pos != ct_len + etag_len + body_len {
            return None;
        }
        let content_type = std::str::from_utf8(r.take(ct_len)?).ok()?.to_owned();
        let etag = std::str::from_utf8(r.take(etag_len)?).ok()?.to_owned();
        let body = bytes.slice(r.pos..r.pos + body_len);
        Some(Variant {
            body,
            content_type,
            etag,
            created_unix,
            ttl_secs,
            width,
            height,
        })
    }
}

/// A bounds-checked cursor: every read is `None` past the end.
pub(crate) struct Reader<'a> {
    pub buf: &'a [u8],
    pub pos: usize,
}

impl<'a> Reader<'a> {
    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }
    pub fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    pub fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }
    pub fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    pub fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}

#[cfg(test)]
pub(crate) fn sample(body: &[u8], created_unix: u64, ttl_secs: u64) -> Variant {
    Variant {
        body: Bytes::copy_from_slice(body),
        content_type: "image/webp".into(),
        etag: "\"abc123\"".into(),
        created_unix,
        ttl_secs,
        width: 300,
        height: 200,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freshness_and_age() {
        let v = sample(b"x", 1_000, 60);
        assert!(v.is_fresh(1_000));
        assert!(v.is_fresh(1_059));
        assert!(!v.is_fresh(1_060));
        assert_eq!(v.age(1_030), 30);
        assert_eq!(v.age(900), 0, "clock went backwards");
        assert_eq!(v.remaining_ttl(1_030), 30);
        assert_eq!(v.remaining_ttl(2_000), 0);
        assert!(
            !sample(b"x", 1_000, 0).is_fresh(1_000),
            "ttl 0 is never fresh"
        );
        let forever = sample(b"x", 1_000, u64::MAX);
        assert!(
            forever.is_fresh(u64::MAX - 1),
            "saturates instead of overflowing"
        );
    }

    #[test]
    fn round_trip() {
        let v = sample(b"\x00\x01binary\xffbody", 1_700_000_000, 86_400);
        let enc = v.encode();
        assert_eq!(enc.len(), v.encoded_len().unwrap());
        assert_eq!(&enc[..4], b"IEVR");
        let back = Variant::decode(&enc).unwrap();
        assert_eq!(back, v);
        // Empty strings and body.
        let empty = Variant {
            body: Bytes::new(),
            content_type: String::new(),
            etag: String::new(),
            created_unix: 0,
            ttl_secs: 0,
            width: 0,
            height: 0,
        };
        assert_eq!(Variant::decode(&empty.encode()).unwrap(), empty);
    }

    #[test]
    fn decode_shared_does_not_copy_body() {
        let v = sample(&[7u8; 1000], 1, 2);
        let enc = Bytes::from(v.encode());
        let back = Variant::decode_shared(&enc).unwrap();
        let range = enc.as_ptr() as usize..enc.as_ptr() as usize + enc.len();
        assert!(range.contains(&(back.body.as_ptr() as usize)));
    }

    #[test]
    fn every_truncation_and_extension_is_rejected() {
        let enc = sample(b"hello image", 5, 6).encode();
        for n in 0..enc.len() {
            assert!(Variant::decode(&enc[..n]).is_none(), "prefix of {n} bytes");
        }
        let mut longer = enc.clone();
        longer.push(0);
        assert!(Variant::decode(&longer).is_none());
    }

    #[test]
    fn wrong_magic_version_or_utf8_is_rejected() {
        let enc = sample(b"body", 5, 6).encode();
        let mut bad = enc.clone();
        bad[0] = b'X';
        assert!(Variant::decode(&bad).is_none());
        let mut bad = enc.clone();
        bad[4] = VARIANT_VERSION + 1;
        assert!(Variant::decode(&bad).is_none());
        // content type starts right after the fixed part.
        let mut bad = enc.clone();
        bad[FIXED_LEN] = 0xff;
        assert!(Variant::decode(&bad).is_none());
        // Lengths claiming more than there is (and sums that would overflow a u16/u32 field).
        let mut bad = enc.clone();
        bad[FIXED_LEN - 4..FIXED_LEN].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(Variant::decode(&bad).is_none());
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A small deterministic xorshift: bytes of every shape, including ones that start with
        // a valid header.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let valid = sample(b"abc", 1, 2).encode();
        for i in 0..5_000 {
            let len = (next() % 128) as usize;
            let mut buf: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if i % 2 == 0 {
                let n = valid.len().min(buf.len()).min((next() % 40) as usize);
                buf[..n].copy_from_slice(&valid[..n]);
            }
            let _ = Variant::decode(&buf);
        }
    }

    #[test]
    fn oversized_fields_do_not_encode() {
        let mut v = sample(b"x", 1, 1);
        v.etag = "e".repeat(70_000);
        assert_eq!(v.encoded_len(), None);
        assert!(v.encode().is_empty());
        assert!(Variant::decode(&v.encode()).is_none());
    }
}
