//! `-enable-placeholder` / `-placeholder <file>` (spec §10.6): errors answered with an image,
//! sized and typed like the request asked, and the JSON error in an `Error` header.

use std::sync::Arc;

use super::response::Reply;
use crate::error::{json_message, Error};
use crate::ops::format::{parse_type, TypeParam};
use crate::ops::params::parse_int;
use crate::ops::{self, Endpoint, Options, Plan};
use crate::policy::pool::Pool;

/// imaginary's built-in placeholder: a flat #CCCCCC 400×400 baseline JPEG.
const BUILT_IN: &[u8] = include_bytes!("placeholder.jpg");

pub struct Placeholder {
    image: Arc<[u8]>,
    /// `-placeholder-status`; 0 = the error's own status.
    status: u16,
}

impl Placeholder {
    /// Loads the custom file (checked to be an image libvips reads) or the built-in one.
    pub fn load(path: Option<&std::path::Path>, status: u16) -> Result<Self, String> {
        let image: Arc<[u8]> = match path {
            None => BUILT_IN.into(),
            Some(p) => {
                let bytes =
                    std::fs::read(p).map_err(|e| format!("cannot start the server: {e}"))?;
                if ops::format::sniff(&bytes).is_none() || ops::probe(&bytes).is_err() {
                    return Err("Placeholder image type is not supported. Only JPEG, PNG or WEBP are supported".to_string());
                }
                bytes.into()
            }
        };
        Ok(Placeholder { image, status })
    }

    /// The placeholder reply for `error`, shaped by the request's `width`, `height` and `type`.
    pub async fn reply(&self, pool: &Pool, error: &Error, pairs: &[(String, String)]) -> Reply {
        let param = |name: &str| super::first(pairs, name).unwrap_or_default();
        let (width, height) = match (parse_int(param("width")), parse_int(param("height"))) {
            (Ok(w), Ok(h)) => (w as u32, h as u32),
            (Err(e), _) | (_, Err(e)) => return fallback(&e),
        };
        let output = match parse_type(param("type")) {
            Ok(Some(TypeParam::Fixed(t))) if t.can_save() => Some(t),
            _ => None,
        };
        let plan = Plan::transform(
            Endpoint::Resize,
            Options {
                width,
                height,
                force: true,
                crop: true,
                enlarge: true,
                output,
                ..Options::imaginary()
            },
        );
        let image = self.image.clone();
        let resized = match (width, height) {
            (0, 0) if output.is_none() => Ok(Ok(image.to_vec())),
            _ => {
                pool.run(move || ops::run(&plan, &image, &[]).map(|o| o.bytes))
                    .await
            }
        };
        let bytes = match resized {
            Ok(Ok(bytes)) => bytes,
            Ok(Err(e)) => return fallback(&e.to_string()),
            Err(e) => return fallback(&e.message()),
        };
        let content_type =
            ops::format::sniff(&bytes).map_or("application/octet-stream", |t| t.mime());
        let status = match self.status {
            0 => error.status(),
            s => s,
        };
        Reply::new(status, content_type, bytes).header("Error", error.json())
    }
}

/// When the placeholder itself cannot be made: 400 JSON (imaginary's `{"error":…}` shape, but
/// escaped — FIX).
fn fallback(message: &str) -> Reply {
    let body = json_message(message, 400).replacen("\"message\"", "\"error\"", 1);
    Reply::json(400, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fallback_is_escaped_json() {
        let r = fallback("bad \"width\" <x>");
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["error"], "bad \"width\" <x>");
        assert_eq!(v["status"], 400);
    }
}
