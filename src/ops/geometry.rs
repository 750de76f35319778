//! bimg's geometry (spec §9): pure math over plain numbers and [`Options`], no libvips.
//!
//! Output *dimensions* are part of imaginary's contract (clients lay pages out with them), so
//! this file reproduces bimg v1.1.7 step by step and is tested against every row of the spec's
//! "Resulting sizes" table. The run steps (`resize.rs`, `crop.rs`, …) only execute what these
//! functions decide:
//!
//! * [`Orientation`] — the turns and mirrors applied before resizing (spec §9.2);
//! * [`fit_box`] — the `/fit` box (spec §7);
//! * [`layout`] — steps 1–3 of spec §9.1: the force rule, the shrink factor, the no-upscale
//!   guard, and whether step 5 applies;
//! * [`Layout::resample`] — step 5a: the size after resampling;
//! * [`cut`] — step 5b: what is cut or padded afterwards;
//! * [`output_size`] — all of it, for callers that need the size before doing the work.

use super::options::{Gravity, Options};

/// bimg's `MaxSize`: a smart crop, crop or extract wider or higher than this fails.
pub const MAX_SIZE: u32 = 16383;

/// Message of a crop/extract above [`MAX_SIZE`] (bimg's text).
pub const MAX_SIZE_EXCEEDED: &str = "Maximum image size exceeded";

/// Message of an area extract without a size (bimg's text).
pub const AREA_REQUIRED: &str = "Extract area width/height params are required";

/// EXIF orientation tag → (clockwise rotation, mirror left↔right after the rotation), bimg's
/// table (spec §9.2). Tags outside 2..=8 mean upright.
pub fn exif_rotation(tag: u32) -> (u32, bool) {
    match tag {
        2 => (0, true),
        3 => (180, false),
        4 => (180, true),
        5 => (90, true),
        6 => (90, false),
        7 => (270, true),
        8 => (270, false),
        _ => (0, false),
    }
}

/// The turns and mirrors applied before any resizing, in this order: the EXIF orientation
/// (rotation then mirror), the explicit `rotate`, `flip` (left↔right), `flop` (top↔bottom).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Orientation {
    /// The EXIF tag being applied; 1 = none.
    pub exif: u32,
    /// Explicit clockwise rotation: 0, 90, 180 or 270.
    pub rotate: u32,
    pub flip: bool,
    pub flop: bool,
}

impl Default for Orientation {
    fn default() -> Self {
        Orientation {
            exif: 1,
            rotate: 0,
            flip: false,
            flop: false,
        }
    }
}

impl Orientation {
    /// For one generic process (spec §9.2): the image's EXIF tag is honoured only when
    /// `rotate` is 0 and `norotation` is off — unless `exif_committed` (an earlier
    /// `/autorotate` pipeline step already decided to apply it).
    ///
    /// bimg folds the EXIF mirror into `flip` (`flip = exif_mirror || flip`): asking for `flip`
    /// on an image whose tag already mirrors it mirrors it once, not twice. After a committed
    /// `/autorotate` the tag is gone, so a `flip` then mirrors again (imaginary re-encodes
    /// between pipeline steps).
    pub fn for_options(o: &Options, exif_tag: u32, exif_committed: bool) -> Self {
        let honour = exif_committed || (!rotate_given(o) && !o.no_auto_rotate);
        let exif = if honour && (2..=8).contains(&exif_tag) {
            exif_tag
        } else {
            1
        };
        let (_, exif_mirror) = exif_rotation(exif);
        Orientation {
            exif,
            rotate: normalise_rotation(o.rotate),
            flip: o.flip && (exif_committed || !exif_mirror),
            flop: o.flop,
        }
    }

    /// Only the EXIF tag (what `/autorotate` does).
    pub fn exif_only(exif_tag: u32) -> Self {
        Orientation {
            exif: if (2..=8).contains(&exif_tag) {
                exif_tag
            } else {
                1
            },
            ..Orientation::default()
        }
    }

    pub fn is_identity(&self) -> bool {
        self.exif == 1 && self.rotate == 0 && !self.flip && !self.flop
    }

    /// Whether width and height trade places.
    pub fn swaps_axes(&self) -> bool {
        let (r, _) = exif_rotation(self.exif);
        ((r + self.rotate) / 90) % 2 == 1
    }

    /// Size after orienting an image of `w`×`h`.
    pub fn oriented_size(&self, w: u32, h: u32) -> (u32, u32) {
        if self.swaps_axes() {
            (h, w)
        } else {
            (w, h)
        }
    }

    /// Size before orienting that becomes `w`×`h` once oriented (the inverse of
    /// [`Orientation::oriented_size`]).
    pub fn unoriented_size(&self, w: u32, h: u32) -> (u32, u32) {
        self.oriented_size(w, h)
    }
}

/// bimg tests the *raw* `rotate` param: `rotate=45` normalises to 0 but still disables EXIF
/// orientation and the implicit force of §9.1 step 1.
fn rotate_given(o: &Options) -> bool {
    o.rotate != 0 || o.rotate_requested
}

/// Spec §9.2's `rotate` rule (already applied by the parser; kept here so a raw value is safe):
/// down to a multiple of 90, at most 270.
pub fn normalise_rotation(r: u32) -> u32 {
    (r - r % 90).min(270)
}

/// bimg's `roundFloat` for the non-negative values used here: half away from zero.
fn round(x: f64) -> u32 {
    if x.is_finite() && x > 0.0 {
        x.round().min(u32::MAX as f64) as u32
    } else {
        0
    }
}

/// The `/fit` box (spec §7): the largest size with the image's aspect ratio inside `w`×`h`.
///
/// `src_w`×`src_h` is the stored (unrotated) size. Unless `no_auto_rotate`, an EXIF tag of 5–8
/// means the image will be shown turned a quarter, so the box is computed for the turned image.
/// (imaginary's code swaps both the source size and the box roles and then assigns the result
/// back swapped, which cancels out and fits the *unturned* image: a landscape box for a portrait
/// photo. We fit the image as it is displayed — FIX.) Never 0 on either axis.
pub fn fit_box(
    src_w: u32,
    src_h: u32,
    w: u32,
    h: u32,
    exif_tag: u32,
    no_auto_rotate: bool,
) -> Result<(u32, u32), &'static str> {
    if w == 0 || h == 0 {
        return Err("Missing required params: height, width");
    }
    if src_w == 0 || src_h == 0 {
        return Err("Width or height of requested image is zero");
    }
    let (sw, sh) = if !no_auto_rotate && (5..=8).contains(&exif_tag) {
        (src_h as u64, src_w as u64)
    } else {
        (src_w as u64, src_h as u64)
    };
    let (w64, h64) = (w as u64, h as u64);
    let (fw, fh) = if sw * h64 > w64 * sh {
        (w, round(w64 as f64 * sh as f64 / sw as f64))
    } else {
        (round(h64 as f64 * sw as f64 / sh as f64), h)
    };
    Ok((fw.max(1), fh.max(1)))
}

/// Steps 1–3 of spec §9.1 for an oriented image of `w0`×`h0`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Layout {
    /// The target box after steps 2–3 (bimg's `o.Width`/`o.Height` at transform time).
    pub width: u32,
    pub height: u32,
    /// Step 2's shrink factor (input / output); 1 = no scaling.
    pub factor: f64,
    /// Stretch to exactly `width`×`height`.
    pub force: bool,
    /// Crop and embed as they apply in step 5b (force switches both off).
    pub crop: bool,
    pub embed: bool,
    /// Step 5 (resample and/or cut) applies.
    pub transform: bool,
}

/// Steps 1–3 of spec §9.1: the force rule, the shrink factor, the no-upscale guard, and
/// whether step 5 applies.
pub fn layout(o: &Options, w0: u32, h0: u32) -> Layout {
    let (mut w, mut h) = (o.width, o.height);

    // 1. Nothing said how to fit: stretch.
    let force =
        o.force || (!o.crop && !o.embed && !o.enlarge && !rotate_given(o) && (w > 0 || h > 0));

    // 2. Shrink factor.
    let xfactor = w0 as f64 / w as f64;
    let yfactor = h0 as f64 / h as f64;
    let mut factor = 1.0;
    if w > 0 && h > 0 {
        factor = if o.crop {
            xfactor.min(yfactor)
        } else {
            xfactor.max(yfactor)
        };
    } else if w > 0 {
        if o.crop {
            h = h0;
        } else {
            factor = xfactor;
            h = round(h0 as f64 / factor);
        }
    } else if h > 0 {
        if o.crop {
            w = w0;
        } else {
            factor = yfactor;
            w = round(w0 as f64 / factor);
        }
    } else {
        w = w0;
        h = h0;
    }

    // 3. Never enlarge unless asked to.
    if !o.enlarge && !force && w0 < w && h0 < h {
        factor = 1.0;
        w = w0;
        h = h0;
    }

    let transform =
        force || (w > 0 && w != w0) || (h > 0 && h != h0) || o.area_width > 0 || o.area_height > 0;

    Layout {
        width: w,
        height: h,
        factor,
        force,
        crop: o.crop && !force,
        embed: o.embed && !force,
        transform,
    }
}

impl Layout {
    /// Step 5a: the size an image of `cw`×`ch` (after zoom) is resampled to, or `None` when it
    /// is not resampled. Forced: exactly the box; otherwise a uniform 1/factor.
    pub fn resample(&self, cw: u32, ch: u32) -> Option<(u32, u32)> {
        if !self.transform {
            return None;
        }
        let size = if self.force {
            (self.width.max(1), self.height.max(1))
        } else if self.factor == 1.0 || !self.factor.is_finite() || self.factor <= 0.0 {
            return None;
        } else {
            (
                round(cw as f64 / self.factor).max(1),
                round(ch as f64 / self.factor).max(1),
            )
        };
        (size != (cw, ch)).then_some(size)
    }
}

/// Step 5b: what happens after the resample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cut {
    None,
    /// Attention-based crop to this size.
    Smart {
        width: u32,
        height: u32,
    },
    /// Cut this rectangle (gravity offsets already applied).
    Crop {
        left: u32,
        top: u32,
        width: u32,
        height: u32,
    },
    /// Place the image at (`left`, `top`) on a `width`×`height` canvas; negative offsets cut.
    Embed {
        left: i32,
        top: i32,
        width: u32,
        height: u32,
    },
    /// Cut the requested area (libvips checks it lies inside the image).
    Extract {
        left: u32,
        top: u32,
        width: u32,
        height: u32,
    },
}

/// Gravity offsets of a crop of `w`×`h` out of `cw`×`ch` (bimg's `calculateCrop`, negative
/// offsets clamped to 0).
pub fn crop_offsets(cw: u32, ch: u32, w: u32, h: u32, gravity: Gravity) -> (u32, u32) {
    let (cw, ch, w, h) = (cw as i64, ch as i64, w as i64, h as i64);
    // Go's integer division truncates toward zero, as Rust's does.
    let centre_x = (cw - w + 1) / 2;
    let centre_y = (ch - h + 1) / 2;
    let (left, top) = match gravity {
        Gravity::North => (centre_x, 0),
        Gravity::South => (centre_x, ch - h),
        Gravity::East => (cw - w, centre_y),
        Gravity::West => (0, centre_y),
        Gravity::Centre | Gravity::Smart => (centre_x, centre_y),
    };
    (left.max(0) as u32, top.max(0) as u32)
}

/// Where an image of `cw`×`ch` sits on a `w`×`h` embed canvas (truncating division; negative
/// when the image is larger, which cuts it).
pub fn embed_offsets(cw: u32, ch: u32, w: u32, h: u32) -> (i32, i32) {
    let left = (w as i64 - cw as i64) / 2;
    let top = (h as i64 - ch as i64) / 2;
    (clamp_i32(left), clamp_i32(top))
}

fn clamp_i32(v: i64) -> i32 {
    v.clamp(i32::MIN as i64, i32::MAX as i64) as i32
}

/// Step 5b of spec §9.1 for an image of `cw`×`ch` after the resample: the first matching case of
/// smart crop, crop, embed, area extract. Errors carry bimg's messages.
pub fn cut(o: &Options, l: &Layout, cw: u32, ch: u32) -> Result<Cut, &'static str> {
    if !l.transform {
        return Ok(Cut::None);
    }
    let (w, h) = (l.width, l.height);
    let fits = cw <= w && ch <= h;
    if o.gravity == Gravity::Smart {
        if fits {
            return Ok(Cut::None);
        }
        let (width, height) = (cw.min(w), ch.min(h));
        if width > MAX_SIZE || height > MAX_SIZE {
            return Err(MAX_SIZE_EXCEEDED);
        }
        return Ok(Cut::Smart { width, height });
    }
    if l.crop {
        if fits {
            return Ok(Cut::None);
        }
        let (width, height) = (cw.min(w), ch.min(h));
        if width > MAX_SIZE || height > MAX_SIZE {
            return Err(MAX_SIZE_EXCEEDED);
        }
        let (left, top) = crop_offsets(cw, ch, w, h, o.gravity);
        return Ok(Cut::Crop {
            left,
            top,
            width,
            height,
        });
    }
    if l.embed {
        let (left, top) = embed_offsets(cw, ch, w, h);
        if (left, top, w, h) == (0, 0, cw, ch) {
            return Ok(Cut::None);
        }
        return Ok(Cut::Embed {
            left,
            top,
            width: w,
            height: h,
        });
    }
    if o.top != 0 || o.left != 0 || o.area_width != 0 || o.area_height != 0 {
        let width = if o.area_width == 0 { w } else { o.area_width };
        let height = if o.area_height == 0 { h } else { o.area_height };
        if width == 0 || height == 0 {
            return Err(AREA_REQUIRED);
        }
        if width > MAX_SIZE || height > MAX_SIZE {
            return Err(MAX_SIZE_EXCEEDED);
        }
        return Ok(Cut::Extract {
            left: o.left,
            top: o.top,
            width,
            height,
        });
    }
    Ok(Cut::None)
}

/// The size one generic process (spec §9.1 steps 1–5) produces from an image of `w0`×`h0`
/// (already oriented), without touching pixels. An area extract outside the image is an error
/// (libvips' `extract_area: bad extract area`).
pub fn output_size(o: &Options, w0: u32, h0: u32) -> Result<(u32, u32), String> {
    let l = layout(o, w0, h0);
    let z = o.zoom.saturating_add(1);
    let (mut cw, mut ch) = if o.zoom > 0 {
        (w0.saturating_mul(z), h0.saturating_mul(z))
    } else {
        (w0, h0)
    };
    if !l.transform {
        return Ok((cw, ch));
    }
    if let Some((w, h)) = l.resample(cw, ch) {
        (cw, ch) = (w, h);
    }
    match cut(o, &l, cw, ch)? {
        Cut::None => Ok((cw, ch)),
        Cut::Smart { width, height }
        | Cut::Crop { width, height, .. }
        | Cut::Embed { width, height, .. } => Ok((width, height)),
        Cut::Extract {
            left,
            top,
            width,
            height,
        } => {
            if left as u64 + width as u64 > cw as u64 || top as u64 + height as u64 > ch as u64 {
                Err("extract_area: bad extract area".to_string())
            } else {
                Ok((width, height))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Options as each endpoint forces them (spec §7); what `plan.rs` produces.
    fn resize(w: u32, h: u32) -> Options {
        Options {
            width: w,
            height: h,
            embed: true,
            ..Options::imaginary()
        }
    }
    fn crop(w: u32, h: u32) -> Options {
        Options {
            width: w,
            height: h,
            crop: true,
            ..Options::imaginary()
        }
    }
    fn smartcrop(w: u32, h: u32) -> Options {
        Options {
            gravity: Gravity::Smart,
            ..crop(w, h)
        }
    }
    fn enlarge(w: u32, h: u32) -> Options {
        Options {
            width: w,
            height: h,
            enlarge: true,
            crop: true,
            ..Options::imaginary()
        }
    }
    fn plain(w: u32, h: u32) -> Options {
        Options {
            width: w,
            height: h,
            ..Options::imaginary()
        }
    }

    fn size(o: &Options, w0: u32, h0: u32) -> (u32, u32) {
        output_size(o, w0, h0).unwrap()
    }

    // ---- spec §9.1 "Resulting sizes", row by row -------------------------------------------

    #[test]
    fn resize_w_h_pads_to_exact_box_or_keeps_small_originals() {
        // content fit inside, padded (embed) to exactly w×h
        assert_eq!(size(&resize(200, 200), 400, 300), (200, 200));
        let l = layout(&resize(200, 200), 400, 300);
        assert_eq!(l.resample(400, 300), Some((200, 150)));
        assert_eq!(
            cut(&resize(200, 200), &l, 200, 150),
            Ok(Cut::Embed {
                left: 0,
                top: 25,
                width: 200,
                height: 200
            })
        );
        // one dimension smaller, the other larger: still the exact box
        assert_eq!(size(&resize(200, 200), 100, 400), (200, 200));
        // smaller in both: the original
        assert_eq!(size(&resize(200, 200), 100, 50), (100, 50));
        assert!(!layout(&resize(200, 200), 100, 50).transform);
    }

    #[test]
    fn resize_with_nocrop_false_cover_scales_and_centre_crops() {
        let o = Options {
            crop: true,
            ..resize(200, 200)
        };
        let l = layout(&o, 400, 300);
        assert_eq!(l.resample(400, 300), Some((267, 200)));
        assert_eq!(
            cut(&o, &l, 267, 200),
            Ok(Cut::Crop {
                left: 34,
                top: 0,
                width: 200,
                height: 200
            })
        );
        assert_eq!(size(&o, 400, 300), (200, 200));
    }

    #[test]
    fn resize_width_only_keeps_aspect_and_never_upscales() {
        assert_eq!(size(&resize(200, 0), 400, 300), (200, 150));
        assert_eq!(size(&resize(300, 0), 1000, 333), (300, 100));
        assert_eq!(size(&resize(0, 100), 400, 300), (133, 100));
        assert_eq!(size(&resize(200, 0), 100, 50), (100, 50));
        assert_eq!(size(&resize(0, 200), 100, 50), (100, 50));
    }

    #[test]
    fn fit_box_then_generic_process() {
        let (w, h) = fit_box(400, 300, 200, 200, 1, false).unwrap();
        assert_eq!((w, h), (200, 150));
        assert_eq!(size(&resize(w, h), 400, 300), (200, 150));
        // original if smaller in both
        let (w, h) = fit_box(100, 50, 400, 400, 1, false).unwrap();
        assert_eq!((w, h), (400, 200));
        assert_eq!(size(&resize(w, h), 100, 50), (100, 50));
        // force upscales
        let o = Options {
            force: true,
            ..resize(w, h)
        };
        assert_eq!(size(&o, 100, 50), (400, 200));
    }

    #[test]
    fn crop_and_smartcrop_cover_scale_then_cut() {
        for make in [crop, smartcrop] {
            assert_eq!(size(&make(200, 200), 400, 300), (200, 200));
            // smaller in both: the original
            assert_eq!(size(&make(200, 200), 100, 50), (100, 50));
            // only one dimension smaller: upscales, then cuts
            assert_eq!(size(&make(200, 200), 100, 400), (200, 200));
            let l = layout(&make(200, 200), 100, 400);
            assert_eq!(l.resample(100, 400), Some((200, 800)));
        }
        let l = layout(&smartcrop(200, 200), 400, 300);
        assert_eq!(
            cut(&smartcrop(200, 200), &l, 267, 200),
            Ok(Cut::Smart {
                width: 200,
                height: 200
            })
        );
    }

    #[test]
    fn crop_width_only_is_a_plain_cut() {
        assert_eq!(size(&crop(200, 0), 400, 300), (200, 300));
        let l = layout(&crop(200, 0), 400, 300);
        assert_eq!(l.resample(400, 300), None);
        assert_eq!(
            cut(&crop(200, 0), &l, 400, 300),
            Ok(Cut::Crop {
                left: 100,
                top: 0,
                width: 200,
                height: 300
            })
        );
        assert_eq!(size(&crop(200, 0), 100, 300), (100, 300));
        assert_eq!(size(&crop(0, 100), 400, 300), (400, 100));
        assert_eq!(size(&crop(0, 500), 400, 300), (400, 300));
    }

    #[test]
    fn enlarge_cover_scales_up_or_down() {
        assert_eq!(size(&enlarge(400, 400), 100, 50), (400, 400));
        let l = layout(&enlarge(400, 400), 100, 50);
        assert_eq!(l.resample(100, 50), Some((800, 400)));
        assert_eq!(size(&enlarge(100, 100), 400, 300), (100, 100));
        // nocrop=true: contain-scale, no padding
        let o = Options {
            crop: false,
            ..enlarge(400, 400)
        };
        assert_eq!(size(&o, 100, 50), (400, 200));
        assert_eq!(size(&o, 1000, 400), (400, 160));
    }

    #[test]
    fn other_endpoints_with_sizes_are_forced() {
        // thumbnail, watermark, blur, convert, flip, …: both given → exactly w×h, aspect ignored
        assert_eq!(size(&plain(300, 100), 400, 300), (300, 100));
        let l = layout(&plain(300, 100), 400, 300);
        assert!(l.force && !l.crop && !l.embed);
        // upscaling allowed
        assert_eq!(size(&plain(400, 0), 100, 50), (400, 200));
        assert_eq!(size(&plain(0, 25), 100, 50), (50, 25));
        assert_eq!(size(&plain(300, 0), 400, 300), (300, 225));
        // flip doesn't stop forcing
        let o = Options {
            flip: true,
            ..plain(10, 10)
        };
        assert_eq!(size(&o, 400, 300), (10, 10));
        // no size: untouched
        assert_eq!(size(&plain(0, 0), 400, 300), (400, 300));
        assert!(!layout(&plain(0, 0), 400, 300).transform);
    }

    #[test]
    fn extract_cuts_the_area_after_any_forced_resize() {
        let o = Options {
            top: 10,
            left: 20,
            area_width: 100,
            area_height: 50,
            ..Options::imaginary()
        };
        let l = layout(&o, 400, 300);
        assert!(l.transform && !l.force);
        assert_eq!(l.resample(400, 300), None);
        assert_eq!(
            cut(&o, &l, 400, 300),
            Ok(Cut::Extract {
                left: 20,
                top: 10,
                width: 100,
                height: 50
            })
        );
        assert_eq!(size(&o, 400, 300), (100, 50));
        let forced = Options {
            width: 200,
            ..o.clone()
        };
        assert_eq!(
            layout(&forced, 400, 300).resample(400, 300),
            Some((200, 150))
        );
        assert_eq!(size(&forced, 400, 300), (100, 50));
        // outside the image: libvips' error
        let out = Options {
            left: 350,
            ..o.clone()
        };
        assert_eq!(
            output_size(&out, 400, 300).unwrap_err(),
            "extract_area: bad extract area"
        );
        // above bimg's MaxSize
        let big = Options {
            area_width: 20000,
            ..o
        };
        assert_eq!(
            cut(&big, &layout(&big, 400, 300), 400, 300),
            Err(MAX_SIZE_EXCEEDED)
        );
    }

    #[test]
    fn zoom_replicates_then_optionally_cuts() {
        let o = Options {
            zoom: 2,
            ..Options::imaginary()
        };
        assert_eq!(size(&o, 40, 30), (120, 90));
        // area after zoom, in zoomed coordinates; a missing area size defaults to the pre-zoom size
        let a = Options {
            zoom: 1,
            top: 10,
            left: 10,
            area_width: 50,
            ..Options::imaginary()
        };
        assert_eq!(size(&a, 40, 30), (50, 30));
        let c = cut(&a, &layout(&a, 40, 30), 80, 60).unwrap();
        assert_eq!(
            c,
            Cut::Extract {
                left: 10,
                top: 10,
                width: 50,
                height: 30
            }
        );
    }

    #[test]
    fn rotate_with_size_contains_without_padding() {
        let o = Options {
            rotate: 90,
            width: 150,
            height: 150,
            ..Options::imaginary()
        };
        let turned = Orientation::for_options(&o, 1, false).oriented_size(400, 200);
        assert_eq!(turned, (200, 400));
        let l = layout(&o, turned.0, turned.1);
        assert!(!l.force && !l.crop && !l.embed);
        assert_eq!(size(&o, 200, 400), (75, 150));
        // rotate alone: just the turned size
        let r = Options {
            rotate: 270,
            ..Options::imaginary()
        };
        assert_eq!(size(&r, 200, 400), (200, 400));
    }

    #[test]
    fn resize_with_smart_gravity_contains_without_padding() {
        let o = Options {
            gravity: Gravity::Smart,
            ..resize(200, 200)
        };
        assert_eq!(size(&o, 400, 300), (200, 150));
        let l = layout(&o, 400, 300);
        assert_eq!(cut(&o, &l, 200, 150), Ok(Cut::None));
    }

    // ---- pieces -------------------------------------------------------------------------

    #[test]
    fn force_rule() {
        assert!(layout(&plain(10, 0), 100, 100).force);
        assert!(!layout(&plain(0, 0), 100, 100).force);
        assert!(!layout(&crop(10, 10), 100, 100).force);
        assert!(!layout(&resize(10, 10), 100, 100).force);
        assert!(!layout(&enlarge(10, 10), 100, 100).force);
        let r = Options {
            rotate: 180,
            ..plain(10, 10)
        };
        assert!(!layout(&r, 100, 100).force);
        // rotate=45 normalises to 0 but still counts as given
        let r45 = Options {
            rotate: 0,
            rotate_requested: true,
            ..plain(10, 10)
        };
        assert!(!layout(&r45, 100, 100).force);
        let f = Options {
            force: true,
            ..crop(10, 10)
        };
        let l = layout(&f, 100, 100);
        assert!(l.force && !l.crop && !l.embed);
        assert_eq!(size(&f, 100, 50), (10, 10));
    }

    #[test]
    fn shrink_factor() {
        assert_eq!(layout(&resize(200, 100), 400, 300).factor, 3.0);
        assert_eq!(layout(&crop(200, 100), 400, 300).factor, 2.0);
        assert_eq!(layout(&resize(100, 0), 400, 300).factor, 4.0);
        assert_eq!(layout(&resize(0, 100), 400, 300).factor, 3.0);
        assert_eq!(layout(&crop(100, 0), 400, 300).factor, 1.0);
        // upscale guard resets it
        let l = layout(&resize(800, 800), 400, 300);
        assert_eq!((l.factor, l.width, l.height), (1.0, 400, 300));
        // one axis only smaller: no guard
        let l = layout(&resize(800, 200), 400, 300);
        assert_eq!(l.factor, 1.5);
    }

    #[test]
    fn rounding_is_half_up() {
        // 300 × 50/200 = 75 exactly; 333 / (1000/300) = 99.9 → 100; 7 / 2 = 3.5 → 4
        assert_eq!(size(&resize(50, 0), 200, 300), (50, 75));
        assert_eq!(size(&resize(300, 0), 1000, 333), (300, 100));
        assert_eq!(size(&resize(0, 7), 20, 14), (10, 7));
        assert_eq!(size(&resize(10, 0), 20, 7), (10, 4));
    }

    #[test]
    fn gravity_offsets() {
        let (cw, ch, w, h) = (300, 200, 101, 101);
        assert_eq!(crop_offsets(cw, ch, w, h, Gravity::Centre), (100, 50));
        assert_eq!(crop_offsets(cw, ch, w, h, Gravity::North), (100, 0));
        assert_eq!(crop_offsets(cw, ch, w, h, Gravity::South), (100, 99));
        assert_eq!(crop_offsets(cw, ch, w, h, Gravity::East), (199, 50));
        assert_eq!(crop_offsets(cw, ch, w, h, Gravity::West), (0, 50));
        assert_eq!(crop_offsets(cw, ch, w, h, Gravity::Smart), (100, 50));
        // odd difference rounds up (bimg's +1)
        assert_eq!(crop_offsets(11, 11, 4, 4, Gravity::Centre), (4, 4));
        // image smaller than the box on an axis: offset 0, never negative
        assert_eq!(crop_offsets(50, 300, 100, 100, Gravity::Centre), (0, 100));
        assert_eq!(crop_offsets(50, 300, 100, 100, Gravity::East), (0, 100));
        assert_eq!(crop_offsets(300, 50, 100, 100, Gravity::South), (100, 0));
        // a crop with gravity through `cut`
        let o = Options {
            gravity: Gravity::South,
            ..crop(100, 100)
        };
        let l = layout(&o, 300, 200);
        assert_eq!(l.resample(300, 200), Some((150, 100)));
        assert_eq!(
            cut(&o, &l, 150, 100),
            Ok(Cut::Crop {
                left: 25,
                top: 0,
                width: 100,
                height: 100
            })
        );
    }

    #[test]
    fn embed_offsets_truncate_toward_zero() {
        assert_eq!(embed_offsets(200, 150, 200, 200), (0, 25));
        assert_eq!(embed_offsets(199, 150, 200, 201), (0, 25));
        assert_eq!(embed_offsets(10, 10, 15, 15), (2, 2));
        // larger than the canvas: negative (cuts); -1/2 truncates to 0 as in Go
        assert_eq!(embed_offsets(201, 10, 200, 10), (0, 0));
        assert_eq!(embed_offsets(204, 10, 200, 10), (-2, 0));
    }

    #[test]
    fn fit_box_math() {
        // constrained by width / by height
        assert_eq!(fit_box(1000, 500, 300, 300, 1, false), Ok((300, 150)));
        assert_eq!(fit_box(500, 1000, 300, 300, 1, false), Ok((150, 300)));
        // equal aspect: the box
        assert_eq!(fit_box(400, 200, 200, 100, 1, false), Ok((200, 100)));
        // rounding half away from zero: 3 × 100/200 = 1.5 → 2
        assert_eq!(fit_box(200, 3, 100, 100, 1, false), Ok((100, 2)));
        // never 0
        assert_eq!(fit_box(10000, 1, 100, 100, 1, false), Ok((100, 1)));
        // errors
        assert_eq!(
            fit_box(0, 100, 10, 10, 1, false),
            Err("Width or height of requested image is zero")
        );
        assert_eq!(
            fit_box(100, 100, 0, 10, 1, false),
            Err("Missing required params: height, width")
        );
    }

    #[test]
    fn fit_box_uses_the_displayed_orientation() {
        // stored 400×200, EXIF 6: displayed 200×400
        for tag in 5..=8 {
            assert_eq!(
                fit_box(400, 200, 100, 100, tag, false),
                Ok((50, 100)),
                "tag {tag}"
            );
            assert_eq!(
                fit_box(400, 200, 100, 200, tag, false),
                Ok((100, 200)),
                "tag {tag}"
            );
        }
        for tag in [0, 1, 2, 3, 4] {
            assert_eq!(
                fit_box(400, 200, 100, 100, tag, false),
                Ok((100, 50)),
                "tag {tag}"
            );
        }
        // norotation: stored orientation
        assert_eq!(fit_box(400, 200, 100, 100, 6, true), Ok((100, 50)));
    }

    #[test]
    fn exif_orientation_mapping() {
        let table = [
            (0, (0, false)),
            (1, (0, false)),
            (2, (0, true)),
            (3, (180, false)),
            (4, (180, true)),
            (5, (90, true)),
            (6, (90, false)),
            (7, (270, true)),
            (8, (270, false)),
            (9, (0, false)),
        ];
        for (tag, expect) in table {
            assert_eq!(exif_rotation(tag), expect, "tag {tag}");
        }
    }

    #[test]
    fn orientation_rules() {
        // EXIF honoured by default
        let o = Options::imaginary();
        assert_eq!(Orientation::for_options(&o, 6, false).exif, 6);
        assert!(Orientation::for_options(&o, 6, false).swaps_axes());
        assert_eq!(
            Orientation::for_options(&o, 6, false).oriented_size(400, 200),
            (200, 400)
        );
        assert!(!Orientation::for_options(&o, 3, false).swaps_axes());
        // norotation disables it
        let n = Options {
            no_auto_rotate: true,
            ..Options::imaginary()
        };
        assert_eq!(Orientation::for_options(&n, 6, false).exif, 1);
        // a non-zero rotate disables EXIF entirely, including its flip
        let r = Options {
            rotate: 90,
            ..Options::imaginary()
        };
        let or = Orientation::for_options(&r, 2, false);
        assert_eq!((or.exif, or.rotate), (1, 90));
        assert!(or.swaps_axes());
        let r45 = Options {
            rotate_requested: true,
            ..Options::imaginary()
        };
        let o45 = Orientation::for_options(&r45, 6, false);
        assert!(o45.is_identity());
        // …unless an earlier /autorotate committed to it: both apply
        let both = Orientation::for_options(&r, 6, true);
        assert_eq!((both.exif, both.rotate), (6, 90));
        assert!(!both.swaps_axes());
        // flip/flop never swap
        let f = Options {
            flip: true,
            flop: true,
            ..Options::imaginary()
        };
        let of = Orientation::for_options(&f, 1, false);
        assert!(!of.is_identity() && !of.swaps_axes());
        assert!(Orientation::for_options(&Options::imaginary(), 1, false).is_identity());
        // bimg ORs the EXIF mirror with `flip`: one mirror, not two…
        let flip = Options {
            flip: true,
            ..Options::imaginary()
        };
        for tag in [2, 4, 5, 7] {
            let or = Orientation::for_options(&flip, tag, false);
            assert_eq!((or.exif, or.flip), (tag, false), "tag {tag}");
        }
        assert!(Orientation::for_options(&flip, 6, false).flip);
        // …but after a committed /autorotate the tag is gone and `flip` mirrors again
        assert!(Orientation::for_options(&flip, 2, true).flip);
        assert!(Orientation::for_options(&Options::imaginary(), 0, false).is_identity());
        assert_eq!(Orientation::exif_only(8).unoriented_size(30, 40), (40, 30));
    }

    #[test]
    fn rotation_normalisation() {
        assert_eq!(normalise_rotation(0), 0);
        assert_eq!(normalise_rotation(45), 0);
        assert_eq!(normalise_rotation(100), 90);
        assert_eq!(normalise_rotation(270), 270);
        assert_eq!(normalise_rotation(360), 270);
        assert_eq!(normalise_rotation(450), 270);
    }

    #[test]
    fn degenerate_inputs_do_not_panic() {
        for o in [
            resize(1, 1),
            crop(1, 0),
            plain(0, 1),
            enlarge(1, 1),
            smartcrop(5, 5),
        ] {
            for (w, h) in [(1, 1), (1, 10000), (10000, 1), (0, 0)] {
                let _ = output_size(&o, w, h);
            }
        }
        let l = layout(&plain(0, 0), 0, 0);
        assert_eq!(l.resample(0, 0), None);
    }
}
