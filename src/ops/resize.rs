//! Resampling to an exact size (spec §9.1 step 5a): Lanczos3 when shrinking, bicubic when
//! enlarging, alpha premultiplied around it.
//!
//! Used when the image is already decoded (zoom first, or a later pipeline step); a resample
//! straight from the request's bytes goes through `load.rs`'s shrink-on-load instead.

use super::vips::{Image, VipsError};

/// `img` resampled to exactly `width`×`height` (aspect as given: the geometry decided it).
pub(crate) fn to(img: &Image, width: u32, height: u32) -> Result<Image, VipsError> {
    img.resize_to(width, height)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_sizes_up_and_down_with_alpha() {
        let img = Image::test_pattern(50, 40, 4).unwrap();
        for (w, h) in [(25, 20), (100, 80), (13, 77), (50, 40), (1, 1)] {
            let r = to(&img, w, h).unwrap();
            assert_eq!((r.width(), r.height(), r.bands()), (w, h, 4));
            assert_eq!(r.band_format(), img.band_format());
        }
    }
}
