//! `/info` (spec §7): the input's metadata as JSON, from its header only (no pixels decoded).
//!
//! Keys in imaginary's order: `{"width":W,"height":H,"type":"jpeg","space":"srgb",
//! "hasAlpha":false,"hasProfile":true,"channels":3,"orientation":1}` — the stored size (EXIF
//! orientation not applied), bimg's alpha test, and the EXIF IFD0 Orientation (0 when absent).

use super::format::ImageType;
use super::vips::{self, VipsError};

/// The JSON body for `bytes` of sniffed type `format`.
pub(crate) fn json(bytes: &[u8], format: Option<ImageType>) -> Result<String, VipsError> {
    let h = vips::read_header(bytes).map_err(|e| {
        // imaginary's text, including its stray `%s` (QUIRK).
        VipsError::new(format!("Cannot retrieve image metadata: %s{}", e.message()))
    })?;
    Ok(format!(
        "{{\"width\":{},\"height\":{},\"type\":{},\"space\":{},\"hasAlpha\":{},\"hasProfile\":{},\"channels\":{},\"orientation\":{}}}",
        h.width,
        h.height,
        json_string(format.map_or("unknown", |f| f.name())),
        json_string(&h.interpretation),
        h.has_alpha,
        h.has_icc,
        h.bands,
        h.exif_orientation,
    ))
}

/// A JSON string as Go's `encoding/json` writes it (`<`, `>`, `&` escaped too).
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::vips::{Image, Saver};

    #[test]
    fn exact_key_order_and_values() {
        let jpeg = Image::test_pattern(64, 48, 3)
            .unwrap()
            .with_orientation(6)
            .unwrap()
            .save(
                &Saver::Jpeg {
                    quality: 75,
                    interlace: false,
                },
                false,
            )
            .unwrap();
        assert_eq!(
            json(&jpeg, Some(ImageType::Jpeg)).unwrap(),
            r#"{"width":64,"height":48,"type":"jpeg","space":"srgb","hasAlpha":false,"hasProfile":false,"channels":3,"orientation":6}"#
        );
        let png = Image::test_pattern(5, 7, 2)
            .unwrap()
            .save(
                &Saver::Png {
                    compression: 6,
                    interlace: false,
                    palette: false,
                    quality: 75,
                    effort: 7,
                },
                // Stripped: libvips 8.16 writes an EXIF block (orientation 1) into PNGs it saves
                // with metadata, 8.14 does not; this fixture is about a PNG without one.
                true,
            )
            .unwrap();
        assert_eq!(
            json(&png, Some(ImageType::Png)).unwrap(),
            r#"{"width":5,"height":7,"type":"png","space":"b-w","hasAlpha":true,"hasProfile":false,"channels":2,"orientation":0}"#
        );
    }

    #[test]
    fn errors_carry_imaginary_prefix() {
        let _errors = crate::ops::vips::error_lock();
        let err = json(b"\x89PNG\r\n\x1a\nbroken", Some(ImageType::Png)).unwrap_err();
        assert!(
            err.message()
                .starts_with("Cannot retrieve image metadata: %s"),
            "{err}"
        );
        assert!(err.message().len() > "Cannot retrieve image metadata: %s".len());
    }

    #[test]
    fn strings_are_escaped_like_go() {
        assert_eq!(json_string("a<b>&\"c\\"), r#""a\u003cb\u003e\u0026\"c\\""#);
    }
}
