//! `/zoom` (spec §9.4): nearest-neighbour replication, every pixel (factor + 1)× in both axes
//! (so factor 1 doubles the size — imaginary's QUIRK, kept for URL compatibility).

use super::vips::{Image, VipsError};

pub(crate) fn apply(img: &Image, factor: u32) -> Result<Image, VipsError> {
    if factor == 0 {
        return Ok(img.clone());
    }
    let n = factor.saturating_add(1);
    img.zoom(n, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn factor_n_grows_n_plus_one_times() {
        let img = Image::test_pattern(10, 6, 3).unwrap();
        assert_eq!(apply(&img, 0).unwrap().width(), 10);
        let z = apply(&img, 2).unwrap();
        assert_eq!((z.width(), z.height()), (30, 18));
        assert_eq!(z.pixel(2, 2).unwrap(), img.pixel(0, 0).unwrap());
        assert_eq!(z.pixel(3, 0).unwrap(), img.pixel(1, 0).unwrap());
    }
}
