//! Gaussian blur (spec §6.2 `sigma`/`minampl`, §9.1 step 6): on any endpoint when either is > 0.

use super::vips::{Image, VipsError};

/// `min_ampl` only switches the blur on: bimg's C bridge ends its varargs list before the
/// `min_ampl` option, so libvips always used its default amplitude (0.2). Honouring it would
/// change imaginary's output, and a tiny amplitude with a large sigma makes a huge kernel.
pub(crate) fn apply(img: &Image, sigma: f64, min_ampl: f64) -> Result<Image, VipsError> {
    if !(sigma > 0.0 || min_ampl > 0.0) {
        return Ok(img.clone());
    }
    img.gaussblur(sigma, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blurs_only_when_asked_and_keeps_the_size() {
        let img = Image::test_pattern(32, 32, 3).unwrap();
        let b = apply(&img, 3.0, 0.0).unwrap();
        assert_eq!((b.width(), b.height(), b.bands()), (32, 32, 3));
        assert_ne!(b.pixel(0, 16).unwrap(), img.pixel(0, 16).unwrap());
        assert_eq!(
            apply(&img, 0.0, 0.0).unwrap().pixel(0, 16).unwrap(),
            img.pixel(0, 16).unwrap()
        );
        // minampl alone enables it (sigma 0 is accepted by libvips)
        assert!(apply(&img, 0.0, 0.5).is_ok());
    }
}
