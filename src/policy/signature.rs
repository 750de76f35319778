//! URL signatures (`-enable-url-signature`, spec §10.2), byte-exact with imaginary: the `sign`
//! param is the unpadded URL-safe base64 of HMAC-SHA256(key, path + canonical query).
//!
//! Beyond imaginary, a signed URL may carry `expires=<unix seconds>`: being part of the signed
//! query it cannot be changed, and past that instant the URL is refused (403). URLs without it
//! never expire, so imaginary's signed URLs keep working.

use base64::Engine;
use hmac::{KeyInit, Mac};
use sha2::Sha256;

use crate::error::Error;

type HmacSha256 = hmac::Hmac<Sha256>;

/// The signing key (at least 32 bytes, checked at start-up).
pub struct Signer {
    key: Vec<u8>,
}

impl Signer {
    pub fn new(key: &str) -> Self {
        Signer {
            key: key.as_bytes().to_vec(),
        }
    }

    /// The `sign` value for a decoded path and the decoded query pairs (`sign` itself ignored).
    pub fn sign(&self, path: &str, pairs: &[(String, String)]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(self.mac(path, pairs))
    }

    /// Checks `sign` in constant time; then the optional `expires` param against `now`.
    pub fn verify(
        &self,
        path: &str,
        pairs: &[(String, String)],
        now_unix: u64,
    ) -> Result<(), Error> {
        let given = pairs
            .iter()
            .find(|(k, _)| k == "sign")
            .map_or("", |(_, v)| v.as_str());
        let given = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(given)
            .map_err(|_| Error::InvalidUrlSignature)?;
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(message(path, pairs).as_bytes());
        mac.verify_slice(&given)
            .map_err(|_| Error::UrlSignatureMismatch)?;
        if let Some((_, expires)) = pairs.iter().find(|(k, _)| k == "expires") {
            match expires.parse::<u64>() {
                Ok(t) if t >= now_unix => {}
                _ => {
                    return Err(Error::Message {
                        status: 403,
                        message: "URL signature expired".to_string(),
                    })
                }
            }
        }
        Ok(())
    }

    fn mac(&self, path: &str, pairs: &[(String, String)]) -> Vec<u8> {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(message(path, pairs).as_bytes());
        mac.finalize().into_bytes().to_vec()
    }
}

/// `path` followed by Go's `url.Values.Encode()` of every param but `sign`: keys sorted (byte
/// order, stable so repeated keys keep their order), `key=value` query-escaped, joined by `&`.
fn message(path: &str, pairs: &[(String, String)]) -> String {
    let mut kept: Vec<&(String, String)> = pairs.iter().filter(|(k, _)| k != "sign").collect();
    kept.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let query: Vec<String> = kept
        .iter()
        .map(|(k, v)| format!("{}={}", query_escape(k), query_escape(v)))
        .collect();
    format!("{path}{}", query.join("&"))
}

/// Go's `url.QueryEscape`: unreserved bytes kept, space as `+`, the rest `%XX` upper-case.
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::params::query_pairs as pairs;

    const KEY: &str = "4f46feebafc4b5e988f131c4ff8b5997";

    #[test]
    fn imaginarys_test_vectors() {
        let s = Signer::new(KEY);
        assert_eq!(
            s.sign(
                "/resize",
                &pairs("file=image.jpg&height=200&type=jpeg&width=300")
            ),
            "ruEWRoFO-ic-L38vTsjqIYE6DLZ532CTaZXOh1gwuVo"
        );
        assert_eq!(
            s.sign(
                "/crop",
                &pairs("height=200&url=http%3A%2F%2Fexample.com%2Fa+b.jpg&width=300")
            ),
            "Uc6JDIh_LGY2t_gikf0H8wuCK6FLbvjWAD6IO8eXb5g"
        );
    }

    #[test]
    fn order_and_encoding_of_the_request_do_not_matter() {
        let s = Signer::new(KEY);
        let q = "width=300&type=jpeg&height=200&file=image.jpg&sign=ruEWRoFO-ic-L38vTsjqIYE6DLZ532CTaZXOh1gwuVo";
        assert_eq!(s.verify("/resize", &pairs(q), 0), Ok(()));
        let q = "width=300&type=jp%65g&height=200&file=image.jpg&sign=ruEWRoFO-ic-L38vTsjqIYE6DLZ532CTaZXOh1gwuVo";
        assert_eq!(s.verify("/resize", &pairs(q), 0), Ok(()));
    }

    #[test]
    fn tampering_is_refused() {
        let s = Signer::new(KEY);
        let sign = "sign=ruEWRoFO-ic-L38vTsjqIYE6DLZ532CTaZXOh1gwuVo";
        for q in [
            format!("file=image.jpg&height=200&type=jpeg&width=301&{sign}"),
            format!("file=image.jpg&height=200&type=jpeg&width=300&width=300&{sign}"),
            format!("file=image.jpg&height=200&type=jpeg&{sign}"),
            "file=image.jpg&height=200&type=jpeg&width=300".to_string(),
        ] {
            assert_eq!(
                s.verify("/resize", &pairs(&q), 0),
                Err(Error::UrlSignatureMismatch),
                "{q}"
            );
        }
        // Another endpoint, same query.
        let q = format!("file=image.jpg&height=200&type=jpeg&width=300&{sign}");
        assert_eq!(
            s.verify("/crop", &pairs(&q), 0),
            Err(Error::UrlSignatureMismatch)
        );
        // Padding or the standard alphabet is not imaginary's encoding: 400.
        for bad in ["abc=", "ab+/", "!!"] {
            let q = format!("width=1&sign={}", bad.replace('+', "%2B"));
            assert_eq!(
                s.verify("/resize", &pairs(&q), 0),
                Err(Error::InvalidUrlSignature),
                "{bad}"
            );
        }
    }

    #[test]
    fn expiry_is_signed_and_enforced() {
        let s = Signer::new(KEY);
        let q = pairs("width=300&file=a.jpg&expires=1000");
        let signed = format!(
            "width=300&file=a.jpg&expires=1000&sign={}",
            s.sign("/resize", &q)
        );
        assert_eq!(s.verify("/resize", &pairs(&signed), 999), Ok(()));
        assert!(matches!(
            s.verify("/resize", &pairs(&signed), 1001),
            Err(Error::Message { status: 403, .. })
        ));
        let moved = signed.replace("expires=1000", "expires=9999");
        assert_eq!(
            s.verify("/resize", &pairs(&moved), 999),
            Err(Error::UrlSignatureMismatch)
        );
    }
}
