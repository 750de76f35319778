//! Watermarks (spec §7 /watermark and /watermarkimage, §9.1 steps 7–8). The size never changes.

use bytes::Bytes;

use super::options::{ImageWatermark, TextWatermark};
use super::vips::{Access, FailOn, Image, VipsError};

/// bimg's default font.
pub(crate) const DEFAULT_FONT: &str = "sans 10";

/// Tiled text (bimg's defaults resolved here because they depend on the image: text box width
/// = image width / 6, margin = text box width, DPI 150, opacity 0.25, at most 1).
pub(crate) fn text(img: &Image, t: &TextWatermark) -> Result<Image, VipsError> {
    if t.text.is_empty() {
        return Ok(img.clone());
    }
    let width = if t.width == 0 {
        img.width() / 6
    } else {
        t.width
    };
    let dpi = if t.dpi == 0 { 150 } else { t.dpi };
    let margin = if t.margin == 0 { width } else { t.margin };
    let opacity = if t.opacity <= 0.0 || !t.opacity.is_finite() {
        0.25
    } else {
        t.opacity.min(1.0)
    };
    let font = if t.font.is_empty() {
        DEFAULT_FONT
    } else {
        &t.font
    };
    img.text_watermark(
        &t.text,
        font,
        width,
        dpi,
        margin,
        opacity,
        !t.no_replicate,
        t.color,
    )
}

/// Another image over this one, top-left at (left, top), clipped, alpha × opacity (0 → 1).
/// `bytes` is what the caller fetched for `w.url`; `None` means it could not be fetched.
pub(crate) fn image(
    img: &Image,
    w: &ImageWatermark,
    bytes: Option<&[u8]>,
) -> Result<Image, VipsError> {
    let mark = open_image(w, bytes, Access::Sequential)?;
    overlay(img, &mark, w)
}

/// The watermark image of `w` opened from `bytes` (what the caller fetched; `None`: it could
/// not be). `Access::Random` when it will be drawn more than once (every frame of an animation).
pub(crate) fn open_image(
    w: &ImageWatermark,
    bytes: Option<&[u8]>,
    access: Access,
) -> Result<Image, VipsError> {
    let bytes = bytes
        .ok_or_else(|| VipsError::new(format!("Unable to retrieve watermark image. {}", w.url)))?;
    if bytes.is_empty() {
        return Err(VipsError::new("Unable to read watermark image"));
    }
    Image::load(Bytes::copy_from_slice(bytes), access, FailOn::None)
}

/// An opened watermark image `mark` drawn over `img` as `w` says.
pub(crate) fn overlay(img: &Image, mark: &Image, w: &ImageWatermark) -> Result<Image, VipsError> {
    let opacity = if w.opacity <= 0.0 || !w.opacity.is_finite() {
        1.0
    } else {
        w.opacity.min(1.0)
    };
    img.composite(mark, w.left, w.top, opacity)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::vips::Saver;

    fn text_mark(text: &str) -> TextWatermark {
        TextWatermark {
            text: text.into(),
            font: String::new(),
            width: 0,
            dpi: 0,
            margin: 0,
            opacity: 0.0,
            no_replicate: false,
            color: [255, 255, 255],
        }
    }

    #[test]
    fn text_keeps_size_and_changes_pixels() {
        let img = Image::test_pattern(300, 200, 3).unwrap();
        let mut t = text_mark("<b>Hello</b> world");
        t.opacity = 1.0;
        t.margin = 100;
        t.width = 100;
        let out = text(&img, &t).unwrap();
        assert_eq!((out.width(), out.height(), out.bands()), (300, 200, 3));
        let png = out.save(&Saver::QUICK_PNG, false).unwrap();
        let before = img.save(&Saver::QUICK_PNG, false).unwrap();
        assert_ne!(png, before, "text was drawn");
        // a margin too small for the text to show (it sits 100 px into its tile): unchanged
        let mut hidden = t.clone();
        hidden.margin = 10;
        hidden.width = 50;
        let same = text(&img, &hidden).unwrap();
        assert_eq!(same.pixel(120, 110).unwrap(), img.pixel(120, 110).unwrap());
        // defaults, no replication, grey input, alpha input
        let mut once = text_mark("x");
        once.no_replicate = true;
        for bands in 1..=4 {
            let i = Image::test_pattern(60, 40, bands).unwrap();
            let o = text(&i, &once).unwrap();
            assert_eq!((o.width(), o.height()), (60, 40), "bands {bands}");
        }
    }

    #[test]
    fn image_watermark_keeps_size_and_adds_alpha() {
        let img = Image::test_pattern(100, 80, 3).unwrap();
        let mark = Image::test_pattern(30, 30, 3)
            .unwrap()
            .save(&Saver::QUICK_PNG, false)
            .unwrap();
        let w = ImageWatermark {
            url: "http://x/w.png".into(),
            left: 90,
            top: -5,
            opacity: 0.5,
        };
        let out = image(&img, &w, Some(&mark)).unwrap();
        assert_eq!((out.width(), out.height(), out.bands()), (100, 80, 4));
        out.save(
            &Saver::Jpeg {
                quality: 75,
                interlace: false,
            },
            false,
        )
        .unwrap();
    }

    #[test]
    fn image_watermark_errors() {
        let _errors = crate::ops::vips::error_lock();
        let img = Image::test_pattern(10, 10, 3).unwrap();
        let w = ImageWatermark {
            url: "http://x/w.png".into(),
            left: 0,
            top: 0,
            opacity: 0.0,
        };
        assert_eq!(
            image(&img, &w, None).unwrap_err().message(),
            "Unable to retrieve watermark image. http://x/w.png"
        );
        assert_eq!(
            image(&img, &w, Some(b"")).unwrap_err().message(),
            "Unable to read watermark image"
        );
        assert!(image(&img, &w, Some(b"not an image")).is_err());
    }
}
