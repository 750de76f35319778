//! Caps on the work one image may cause (FIX of spec §14 item 4: imaginary bounds only the
//! input's header size, so a zoom, an enlarge, a forced size or an embed canvas can ask libvips
//! for gigapixels, and an animation multiplies everything by its frame count).
//!
//! Every cap is here, checked before any pixel is decoded, from sizes the header and the
//! geometry (`geometry.rs`) already know:
//!
//! | cap | value | checked | error |
//! |---|---|---|---|
//! | [`MAX_OUTPUT_PIXELS`] | 100 Mpx | every generic process (each `/pipeline` step too): output width × height × frames; with `zoom`, also the zoomed image when a resample or smart crop has to read all of it | 400 `Maximum image size exceeded` |
//! | [`MAX_ANIMATION_FRAMES`] | 1000 | before all frames of a GIF/WebP are loaded (animated output) | 400 `Too many frames in the animation: N (at most 1000)` |
//! | [`MAX_ANIMATION_PIXELS`] | 100 Mpx | same: frame width × height × frames | 400 `Maximum image size exceeded` |
//!
//! The input's own size stays under `-max-allowed-resolution` (422, spec §10.7), checked from
//! the header by the caller; these caps come on top and do not depend on flags. Output and
//! animation caps are the same number, so an animation that may be loaded may also be written
//! at its own size.

use super::geometry::{self, Cut, Layout, MAX_SIZE_EXCEEDED};
use super::options::Options;
use super::vips::VipsError;

/// Most pixels one process may produce (all frames of an animation together), and most pixels
/// a zoomed image may have when all of it must be computed.
pub const MAX_OUTPUT_PIXELS: u64 = 100_000_000;

/// Most frames of an animation that are loaded for an animated output.
pub const MAX_ANIMATION_FRAMES: u32 = 1000;

/// Most pixels (frame width × height × frames) of an animation loaded for an animated output.
pub const MAX_ANIMATION_PIXELS: u64 = 100_000_000;

fn too_big() -> VipsError {
    VipsError::new(MAX_SIZE_EXCEEDED)
}

fn pixels(width: u32, height: u32, frames: u32) -> u64 {
    (width as u64)
        .saturating_mul(height as u64)
        .saturating_mul(frames.max(1) as u64)
}

/// Before one generic process of `o` on an oriented image (one frame) of `w0`×`h0` with
/// `layout` (= `geometry::layout(o, w0, h0)`), written with `frames` frames: refuses when the
/// output, or a zoomed image that must be computed whole, is above [`MAX_OUTPUT_PIXELS`].
///
/// Geometry errors come out here too, with the message the process would give a moment later
/// (bimg's `Maximum image size exceeded` for a crop above 16383 px, libvips'
/// `extract_area: bad extract area`).
pub(crate) fn check_process(
    o: &Options,
    layout: &Layout,
    w0: u32,
    h0: u32,
    frames: u32,
) -> Result<(), VipsError> {
    if o.zoom > 0 {
        let z = o.zoom.saturating_add(1);
        let (zw, zh) = (w0.saturating_mul(z), h0.saturating_mul(z));
        // A resample or a smart crop reads every pixel of the zoomed image; a plain cut or
        // pad only the part it keeps (checked below as the output).
        let reads_all = layout.resample(zw, zh).is_some()
            || (layout.transform
                && matches!(geometry::cut(o, layout, zw, zh), Ok(Cut::Smart { .. })));
        if reads_all && pixels(zw, zh, frames) > MAX_OUTPUT_PIXELS {
            return Err(too_big());
        }
    }
    let (w, h) = geometry::output_size(o, w0, h0).map_err(VipsError::new)?;
    check_output(w, h, frames)
}

/// An output of `frames` frames of `width`×`height` (`/autorotate`: the input's size).
pub(crate) fn check_output(width: u32, height: u32, frames: u32) -> Result<(), VipsError> {
    if pixels(width, height, frames) > MAX_OUTPUT_PIXELS {
        return Err(too_big());
    }
    Ok(())
}

/// Before all `frames` frames of a `width`×`height` animation are loaded.
pub(crate) fn check_animation(width: u32, height: u32, frames: u32) -> Result<(), VipsError> {
    if frames > MAX_ANIMATION_FRAMES {
        return Err(VipsError::new(format!(
            "Too many frames in the animation: {frames} (at most {MAX_ANIMATION_FRAMES})"
        )));
    }
    if pixels(width, height, frames) > MAX_ANIMATION_PIXELS {
        return Err(too_big());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(o: &Options, w0: u32, h0: u32, frames: u32) -> Result<(), VipsError> {
        check_process(o, &geometry::layout(o, w0, h0), w0, h0, frames)
    }

    #[test]
    fn outputs_up_to_the_cap_pass() {
        // 10000 × 10000 = exactly the cap
        let o = Options {
            width: 10_000,
            height: 10_000,
            ..Options::imaginary()
        };
        assert!(check(&o, 100, 100, 1).is_ok());
        let o = Options {
            width: 10_000,
            height: 10_001,
            ..Options::imaginary()
        };
        assert_eq!(
            check(&o, 100, 100, 1).unwrap_err().message(),
            MAX_SIZE_EXCEEDED
        );
        // the same size is too much for 2 frames
        let o = Options {
            width: 10_000,
            height: 10_000,
            ..Options::imaginary()
        };
        assert!(check(&o, 100, 100, 2).is_err());
    }

    #[test]
    fn zoom_enlarge_and_embed_are_bounded() {
        // /zoom?factor=40 on 1600×1067: 2.9 Gpx
        let zoom = Options {
            zoom: 40,
            ..Options::imaginary()
        };
        assert!(check(&zoom, 1600, 1067, 1).is_err());
        assert!(check(
            &Options {
                zoom: 4,
                ..Options::imaginary()
            },
            1600,
            1067,
            1
        )
        .is_ok());
        // zoom then a small area: only the area is computed
        let area = Options {
            zoom: 40,
            top: 10,
            left: 10,
            area_width: 100,
            area_height: 100,
            ..Options::imaginary()
        };
        assert!(check(&area, 1600, 1067, 1).is_ok());
        // zoom then a resample to a small size reads the whole zoomed image
        let resampled = Options {
            zoom: 40,
            width: 100,
            ..Options::imaginary()
        };
        assert!(check(&resampled, 1600, 1067, 1).is_err());
        // /enlarge 30000×30000
        let enlarge = Options {
            width: 30_000,
            height: 30_000,
            enlarge: true,
            crop: true,
            ..Options::imaginary()
        };
        assert!(check(&enlarge, 1600, 1067, 1).is_err());
        // an embed canvas
        let embed = Options {
            width: 20_000,
            height: 20_000,
            embed: true,
            enlarge: true,
            ..Options::imaginary()
        };
        assert!(check(&embed, 100, 100, 1).is_err());
        // nothing asked: the input's size
        assert!(check(&Options::imaginary(), 9_000, 9_000, 1).is_ok());
        assert!(check(&Options::imaginary(), 11_000, 10_000, 1).is_err());
        // geometry errors: the process's own message, before any work
        let bad = Options {
            left: 5_000,
            area_width: 10,
            area_height: 10,
            ..Options::imaginary()
        };
        assert!(check(&bad, 100, 100, 1)
            .unwrap_err()
            .message()
            .contains("bad extract area"));
    }

    #[test]
    fn animations() {
        assert!(check_animation(100, 100, 1000).is_ok());
        assert!(check_animation(1, 1, 1001)
            .unwrap_err()
            .message()
            .contains("Too many frames in the animation: 1001"));
        assert!(check_animation(1000, 1000, 100).is_ok());
        assert_eq!(
            check_animation(1000, 1000, 101).unwrap_err().message(),
            MAX_SIZE_EXCEEDED
        );
    }
}
