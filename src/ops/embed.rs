//! Padding (spec §9.1 step 5b embed, §9.5): the image on a larger canvas, the border filled per
//! `extend` — edge copy (imaginary's default when the param is absent), mirror, black, white, or
//! `background` (transparent for images with alpha: the flatten step then paints it).

use super::options::Extend;
use super::vips::{self, Image, VipsError};

pub(crate) fn apply(
    img: &Image,
    left: i32,
    top: i32,
    width: u32,
    height: u32,
    extend: Extend,
    background: Option<[u8; 3]>,
) -> Result<Image, VipsError> {
    let mode = match extend {
        Extend::Copy => vips::Extend::Copy,
        Extend::Mirror => vips::Extend::Mirror,
        Extend::Black => vips::Extend::Black,
        Extend::White => vips::Extend::White,
        Extend::Background => vips::Extend::Background,
    };
    let fill = if mode == vips::Extend::Background {
        fill_values(
            img.bands(),
            img.has_alpha(),
            background.unwrap_or([0, 0, 0]),
        )
    } else {
        Vec::new()
    };
    img.embed(left, top, width, height, mode, &fill)
}

/// `background` as one value per band: grey images get the mean, alpha is transparent.
fn fill_values(bands: u32, alpha: bool, [r, g, b]: [u8; 3]) -> Vec<f64> {
    let (r, g, b) = (r as f64, g as f64, b as f64);
    let grey = (r + g + b) / 3.0;
    match (bands, alpha) {
        (1, _) => vec![grey],
        (2, true) => vec![grey, 0.0],
        (3, _) => vec![r, g, b],
        (4, true) => vec![r, g, b, 0.0],
        (n, _) => {
            let mut v = vec![r, g, b];
            v.resize(n as usize, if alpha { 0.0 } else { r });
            v.truncate(n as usize);
            v
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::vips::{Access, Saver};

    #[test]
    fn fill_values_match_the_bands() {
        assert_eq!(fill_values(1, false, [30, 60, 90]), vec![60.0]);
        assert_eq!(fill_values(2, true, [30, 60, 90]), vec![60.0, 0.0]);
        assert_eq!(fill_values(3, false, [30, 60, 90]), vec![30.0, 60.0, 90.0]);
        assert_eq!(
            fill_values(4, true, [30, 60, 90]),
            vec![30.0, 60.0, 90.0, 0.0]
        );
        assert_eq!(fill_values(4, false, [30, 60, 90]).len(), 4);
    }

    #[test]
    fn every_extend_mode_pads_to_the_canvas() {
        let img = Image::test_pattern(10, 10, 3).unwrap();
        for extend in [
            Extend::Copy,
            Extend::Mirror,
            Extend::Black,
            Extend::White,
            Extend::Background,
        ] {
            let e = apply(&img, 5, 2, 20, 14, extend, Some([255, 0, 0])).unwrap();
            assert_eq!((e.width(), e.height()), (20, 14), "{extend:?}");
        }
        let bg = apply(&img, 5, 2, 20, 14, Extend::Background, Some([255, 0, 0])).unwrap();
        assert_eq!(bg.pixel(0, 0).unwrap(), vec![255.0, 0.0, 0.0]);
        let black = apply(&img, 5, 2, 20, 14, Extend::Background, None).unwrap();
        assert_eq!(black.pixel(0, 0).unwrap(), vec![0.0, 0.0, 0.0]);
        let copy = apply(&img, 5, 2, 20, 14, Extend::Copy, None).unwrap();
        assert_eq!(copy.pixel(0, 0).unwrap(), img.pixel(0, 0).unwrap());
        let rgba = Image::test_pattern(10, 10, 4).unwrap();
        let t = apply(&rgba, 5, 2, 20, 14, Extend::Background, Some([255, 0, 0])).unwrap();
        assert_eq!(t.pixel(0, 0).unwrap()[3], 0.0, "transparent");
    }

    #[test]
    fn works_on_sequentially_loaded_images() {
        let jpeg = Image::test_pattern(64, 64, 3)
            .unwrap()
            .save(
                &Saver::Jpeg {
                    quality: 90,
                    interlace: false,
                },
                false,
            )
            .unwrap();
        for extend in [Extend::Copy, Extend::Mirror] {
            let img = Image::load_bytes(&jpeg, Access::Sequential).unwrap();
            let e = apply(&img, 30, 40, 130, 150, extend, None).unwrap();
            let out = e
                .save(
                    &Saver::Jpeg {
                        quality: 75,
                        interlace: false,
                    },
                    false,
                )
                .unwrap();
            let back = Image::load_bytes(&out, Access::Random).unwrap();
            assert_eq!((back.width(), back.height()), (130, 150));
        }
    }
}
