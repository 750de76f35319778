//! Turning and mirroring (spec §9.2): the EXIF orientation, `rotate`, `flip`, `flop`.
//!
//! The EXIF tag is applied at most once and then reset to 1, so the output's EXIF agrees with
//! its pixels (FIX of spec §14 item 11: imaginary leaves the input's tag in place and viewers
//! turn the image a second time). When EXIF is *not* applied (`norotation`, or a `rotate`
//! given), the tag is left as it is: it still describes the pixels.

use super::geometry::{exif_rotation, Orientation};
use super::vips::{Image, VipsError};

/// Applies `o` to `img`, in spec order: EXIF rotation and mirror, `rotate`, `flip`, `flop`.
pub(crate) fn apply(img: &Image, o: &Orientation) -> Result<Image, VipsError> {
    if o.is_identity() {
        return Ok(img.clone());
    }
    let (exif_turn, exif_mirror) = exif_rotation(o.exif);
    // A left↔right mirror streams line by line; turns and top↔bottom mirrors read out of order.
    let mut img = if exif_turn != 0 || o.rotate != 0 || o.flop {
        img.random_access()?
    } else {
        img.clone()
    };
    if exif_turn != 0 {
        img = img.rotate(exif_turn)?;
    }
    if exif_mirror {
        img = img.flip(false)?;
    }
    if o.exif != 1 {
        img = img.with_orientation(1)?;
    }
    if o.rotate != 0 {
        img = img.rotate(o.rotate)?;
    }
    if o.flip {
        img = img.flip(false)?;
    }
    if o.flop {
        img = img.flip(true)?;
    }
    Ok(img)
}

/// `/autorotate`: the EXIF orientation only.
pub(crate) fn autorotate(img: &Image) -> Result<Image, VipsError> {
    apply(img, &Orientation::exif_only(img.orientation()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::vips::{Access, Saver};

    /// A 40×20 pattern: red grows to the right, green grows downwards.
    fn pattern() -> Image {
        Image::test_pattern(40, 20, 3).unwrap()
    }

    /// (red high?, green high?) at a pixel: where the source's corners ended up.
    fn corner(img: &Image, x: u32, y: u32) -> (bool, bool) {
        let p = img.pixel(x, y).unwrap();
        (p[0] > 128.0, p[1] > 128.0)
    }

    fn tagged(tag: u32) -> Image {
        pattern().with_orientation(tag).unwrap()
    }

    #[test]
    fn every_exif_orientation_comes_out_upright() {
        // Store the pattern the way a camera with tag T would have stored it, i.e. the
        // inverse of T's display transform; applying T must give back the pattern.
        // Inverses: 6 ⇄ 8, all others are their own inverse.
        for tag in 1..=8u32 {
            let inverse = match tag {
                6 => 8,
                8 => 6,
                t => t,
            };
            let stored = apply(&pattern(), &Orientation::exif_only(inverse)).unwrap();
            let shown = apply(
                &stored.with_orientation(tag).unwrap(),
                &Orientation::exif_only(tag),
            )
            .unwrap();
            assert_eq!((shown.width(), shown.height()), (40, 20), "tag {tag}");
            assert_eq!(corner(&shown, 0, 0), (false, false), "tag {tag}");
            assert_eq!(corner(&shown, 39, 0), (true, false), "tag {tag}");
            assert_eq!(corner(&shown, 0, 19), (false, true), "tag {tag}");
            assert_eq!(shown.orientation(), 1, "tag {tag}");
        }
    }

    #[test]
    fn explicit_rotation_flip_and_flop() {
        let o = Orientation {
            rotate: 90,
            ..Orientation::default()
        };
        let r = apply(&pattern(), &o).unwrap();
        assert_eq!((r.width(), r.height()), (20, 40));
        // clockwise: the old top-left goes to the top-right
        assert_eq!(corner(&r, 19, 0), (false, false));
        let f = apply(
            &pattern(),
            &Orientation {
                flip: true,
                ..Orientation::default()
            },
        )
        .unwrap();
        assert_eq!(corner(&f, 0, 0), (true, false));
        let v = apply(
            &pattern(),
            &Orientation {
                flop: true,
                ..Orientation::default()
            },
        )
        .unwrap();
        assert_eq!(corner(&v, 0, 0), (false, true));
    }

    #[test]
    fn tag_is_kept_when_exif_is_not_applied() {
        let o = Orientation {
            rotate: 180,
            ..Orientation::default()
        };
        assert_eq!(apply(&tagged(6), &o).unwrap().orientation(), 6);
        assert_eq!(autorotate(&tagged(6)).unwrap().orientation(), 1);
        assert_eq!(
            (autorotate(&tagged(6)).unwrap().width()),
            20,
            "6 turns a quarter"
        );
    }

    #[test]
    fn sequential_input_is_made_random_access_for_turns() {
        let jpeg = tagged(6)
            .save(
                &Saver::Jpeg {
                    quality: 90,
                    interlace: false,
                },
                false,
            )
            .unwrap();
        let img = Image::load_bytes(&jpeg, Access::Sequential).unwrap();
        let up = autorotate(&img).unwrap();
        let out = up.save(&Saver::QUICK_PNG, false).unwrap();
        let back = Image::load_bytes(&out, Access::Random).unwrap();
        assert_eq!((back.width(), back.height()), (20, 40));
    }
}
