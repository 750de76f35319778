//! Cutting (spec §9.1 step 5b): smart crop, gravity crop, area extract. The rectangles come from
//! `geometry::cut`; padding is `embed.rs`.

use super::vips::{Image, VipsError};

/// Attention-based smart crop (libvips `smartcrop`, reads the image twice: made random-access).
pub(crate) fn smart(img: &Image, width: u32, height: u32) -> Result<Image, VipsError> {
    img.random_access()?.smartcrop(width, height)
}

/// A gravity crop or an area extract. Out of bounds is libvips' `extract_area: bad extract area`.
pub(crate) fn area(
    img: &Image,
    left: u32,
    top: u32,
    width: u32,
    height: u32,
) -> Result<Image, VipsError> {
    if (left, top, width, height) == (0, 0, img.width(), img.height()) {
        return Ok(img.clone());
    }
    img.extract_area(left, top, width, height)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_exact_rectangles() {
        let img = Image::test_pattern(60, 40, 3).unwrap();
        let c = area(&img, 30, 10, 30, 20).unwrap();
        assert_eq!((c.width(), c.height()), (30, 20));
        assert_eq!(c.pixel(0, 0).unwrap(), img.pixel(30, 10).unwrap());
        let s = smart(&img, 20, 40).unwrap();
        assert_eq!((s.width(), s.height()), (20, 40));
    }

    #[test]
    fn out_of_bounds_is_libvips_bad_extract_area() {
        let _errors = crate::ops::vips::error_lock();
        let img = Image::test_pattern(60, 40, 3).unwrap();
        let err = area(&img, 50, 0, 20, 10).unwrap_err();
        assert!(err.message().contains("bad extract area"), "{err}");
    }
}
