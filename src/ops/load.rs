//! Decoding the request's bytes, once, as small as the plan allows.
//!
//! A [`Source`] is the encoded input with its header already read (size, orientation) but no
//! pixels decoded. The first step that needs pixels asks for them in one of two ways:
//! * [`Source::image`]: full size, read sequentially (streamed through the pipeline);
//! * [`Source::scaled`]: already resampled to an exact size, decoding as little as possible —
//!   JPEG at the largest DCT shrink (2/4/8) not above the total shrink, then a Lanczos resize
//!   of the rest (what imgproxy's `scale_on_load.go` does; faster than `vips_thumbnail`, which
//!   keeps a factor of two for the resize); PNG and GIF, which have no shrink-on-load, decoded
//!   in full and resized with `resize_to` (8-bit premultiplied, see `vips/shim.c`); every other
//!   format through `vips_thumbnail_buffer` (WebP scaled decode, HEIF embedded thumbnails,
//!   PDF/SVG rendered at the target scale).
//!
//! Neither applies the orientation tag: `orient.rs` does, after the shrink (cheaper).

use std::cell::Cell;

use bytes::Bytes;

use super::format::ImageType;
use super::vips::{Access, FailOn, Image, VipsError};

/// The request's bytes, opened but not decoded.
pub(crate) struct Source {
    bytes: Bytes,
    pub format: ImageType,
    /// The header-only image opened by [`Source::open`], handed out by the first
    /// [`Source::image`] call. A sequential image can be read once, so later calls reopen.
    header: Image,
    header_fresh: Cell<bool>,
    pub width: u32,
    pub height: u32,
    /// Orientation tag libvips would honour (1..=8; 1 when absent).
    pub orientation: u32,
}

impl Source {
    /// Reads the header (no pixel decoding).
    pub fn open(bytes: Bytes, format: ImageType) -> Result<Source, VipsError> {
        let header = Image::load(bytes.clone(), Access::Sequential, FailOn::None)?;
        Ok(Source {
            width: header.width(),
            height: header.height(),
            orientation: header.orientation(),
            bytes,
            format,
            header,
            header_fresh: Cell::new(true),
        })
    }

    /// The full-size image, read sequentially.
    pub fn image(&self) -> Result<Image, VipsError> {
        if self.header_fresh.replace(false) {
            return Ok(self.header.clone());
        }
        Image::load(self.bytes.clone(), Access::Sequential, FailOn::None)
    }

    /// The image resampled to exactly `width`×`height` (stored orientation, not turned),
    /// shrinking on load where the format allows. Sequential.
    pub fn scaled(&self, width: u32, height: u32) -> Result<Image, VipsError> {
        let (width, height) = (width.max(1), height.max(1));
        if self.format == ImageType::Jpeg {
            let shrink = jpeg_shrink(self.width, self.height, width, height);
            let img = if shrink > 1 {
                self.header.jpeg_shrunk(self.bytes.clone(), shrink)?
            } else {
                self.image()?
            };
            return img.resize_to(width, height);
        }
        if matches!(self.format, ImageType::Png | ImageType::Gif) {
            // No shrink-on-load exists for these: vips_thumbnail would only decode in full and
            // resize with float premultiplication; `resize_to` does the same work on libvips'
            // 8-bit paths (docs/performance.md, "PNG and resize cost").
            return self.image()?.resize_to(width, height);
        }
        let img = Image::thumbnail(self.bytes.clone(), width, height, FailOn::None)?;
        if (img.width(), img.height()) == (width, height) {
            Ok(img)
        } else {
            img.resize_to(width, height)
        }
    }
}

/// For `animation.rs`, which loads every frame of an animated GIF/WebP itself.
impl Source {
    /// The request's bytes.
    pub(crate) fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// Frames in the file, from the header (1 for still images).
    pub(crate) fn pages(&self) -> u32 {
        self.header.n_pages()
    }
}

/// The largest JPEG DCT shrink (1, 2, 4 or 8) not above the total shrink from `w0`×`h0` to
/// `w`×`h` on either axis, so the decoder never produces fewer pixels than the target.
pub(crate) fn jpeg_shrink(w0: u32, h0: u32, w: u32, h: u32) -> u32 {
    if w == 0 || h == 0 {
        return 1;
    }
    let shrink = (w0 as f64 / w as f64).min(h0 as f64 / h as f64);
    match shrink {
        s if s >= 8.0 => 8,
        s if s >= 4.0 => 4,
        s if s >= 2.0 => 2,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::vips::Saver;

    fn encoded(w: u32, h: u32, saver: Saver) -> Bytes {
        let img = Image::test_pattern(w, h, 3).unwrap();
        Bytes::from(img.save(&saver, false).unwrap())
    }

    const JPEG: Saver = Saver::Jpeg {
        quality: 80,
        interlace: false,
    };

    #[test]
    fn jpeg_shrink_never_undershoots_the_target() {
        assert_eq!(jpeg_shrink(1920, 1080, 300, 169), 4);
        assert_eq!(jpeg_shrink(4000, 3000, 800, 600), 4);
        assert_eq!(jpeg_shrink(4000, 3000, 500, 375), 8);
        assert_eq!(jpeg_shrink(4000, 3000, 250, 100), 8);
        assert_eq!(jpeg_shrink(1000, 1000, 500, 500), 2);
        assert_eq!(jpeg_shrink(1000, 1000, 501, 501), 1);
        // a forced, stretched target: the smaller shrink wins
        assert_eq!(jpeg_shrink(1000, 1000, 100, 600), 1);
        assert_eq!(jpeg_shrink(1000, 1000, 0, 10), 1);
        assert_eq!(jpeg_shrink(100, 100, 400, 400), 1);
    }

    #[test]
    fn open_reads_the_header_only() {
        let src = Source::open(encoded(300, 200, JPEG), ImageType::Jpeg).unwrap();
        assert_eq!((src.width, src.height, src.orientation), (300, 200, 1));
        // the first image is the header image, later ones reopen: both decode fine
        for _ in 0..2 {
            let img = src.image().unwrap();
            img.save(&JPEG, false).unwrap();
        }
    }

    #[test]
    fn scaled_hits_exact_sizes_for_every_path() {
        let jpeg = Source::open(encoded(640, 480, JPEG), ImageType::Jpeg).unwrap();
        let png = Source::open(encoded(640, 480, Saver::QUICK_PNG), ImageType::Png).unwrap();
        let webp = Source::open(
            encoded(
                640,
                480,
                Saver::Webp {
                    quality: 75,
                    lossless: false,
                },
            ),
            ImageType::Webp,
        )
        .unwrap();
        for src in [&jpeg, &png, &webp] {
            for (w, h) in [
                (80, 60),
                (79, 61),
                (333, 250),
                (640, 480),
                (700, 500),
                (20, 300),
            ] {
                let img = src.scaled(w, h).unwrap();
                assert_eq!((img.width(), img.height()), (w, h), "{:?}", src.format);
                let out = img.save(&JPEG, false).unwrap();
                let back = Image::load_bytes(&out, Access::Random).unwrap();
                assert_eq!((back.width(), back.height()), (w, h));
            }
        }
    }

    #[test]
    fn garbage_fails_to_open_with_a_message() {
        let _errors = crate::ops::vips::error_lock();
        let err = Source::open(Bytes::from_static(b"\xff\xd8\xffgarbage"), ImageType::Jpeg)
            .err()
            .unwrap();
        assert!(!err.message().is_empty());
    }
}
