//! Alpha flattening (spec §9.1 step 9): an image with alpha is composited onto `background`
//! when a non-black background was given (bimg treats "not given" and black alike).
//! bimg only did this for PNG inputs; we do it for every input with alpha, as the spec says.

use super::vips::{Image, VipsError};

pub(crate) fn apply(img: &Image, background: Option<[u8; 3]>) -> Result<Image, VipsError> {
    match background {
        Some(rgb) if rgb != [0, 0, 0] && img.has_alpha() => img.flatten(rgb),
        _ => Ok(img.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flattens_alpha_onto_a_non_black_background_only() {
        let rgba = Image::test_pattern(8, 8, 4).unwrap();
        assert_eq!(apply(&rgba, None).unwrap().bands(), 4);
        assert_eq!(apply(&rgba, Some([0, 0, 0])).unwrap().bands(), 4);
        assert_eq!(apply(&rgba, Some([255, 0, 0])).unwrap().bands(), 3);
        let grey_alpha = Image::test_pattern(8, 8, 2).unwrap();
        assert_eq!(apply(&grey_alpha, Some([9, 9, 9])).unwrap().bands(), 1);
        let rgb = Image::test_pattern(8, 8, 3).unwrap();
        assert_eq!(apply(&rgb, Some([255, 0, 0])).unwrap().bands(), 3);
    }
}
