//! One generic process: bimg's `resizer` (spec §9.1) as an ordered list of steps, each in its
//! own file. Every image endpoint but `/info` and `/autorotate` is one process; a `/pipeline` is
//! several, each feeding the next in memory.
//!
//! ```text
//!  load (shrink on load when the first thing to do is a resample) → orient → zoom
//!  → resample → cut | pad → blur → text watermark → image watermark → flatten → colour
//! ```
//!
//! Encoding is left to the caller (`run.rs`): a pipeline encodes once, at the end, with the
//! settings of its last successful step.

use std::rc::Rc;

use super::encode::{self, Encoding};
use super::format::ImageType;
use super::geometry::{self, Cut, Orientation};
use super::load::Source;
use super::options::{Endpoint, Options};
use super::vips::{Image, VipsError};
use super::{blur, crop, embed, flatten, orient, resize, watermark, zoom};

/// The image a step works on.
#[derive(Clone)]
pub(crate) enum Current {
    /// The request's bytes, not decoded yet: the step may shrink on load. `autorotate`: an
    /// earlier `/autorotate` pipeline step committed to applying the EXIF orientation.
    Encoded {
        source: Rc<Source>,
        autorotate: bool,
    },
    /// The result of an earlier step.
    Decoded(Image),
}

/// What steps carry from one to the next besides pixels.
pub(crate) struct State {
    pub current: Current,
    /// The format "same as the input" means: the request's, then each step's output format
    /// (imaginary re-encodes between pipeline steps).
    pub format: ImageType,
    /// An earlier step stripped metadata: it stays gone (imaginary re-encodes between steps).
    pub stripped: bool,
}

impl State {
    pub fn new(source: Source) -> State {
        State {
            format: source.format,
            current: Current::Encoded {
                source: Rc::new(source),
                autorotate: false,
            },
            stripped: false,
        }
    }

    /// Stored size, orientation tag and whether EXIF orientation is already committed.
    fn geometry_input(&self) -> (u32, u32, u32, bool) {
        match &self.current {
            Current::Encoded { source, autorotate } => {
                (source.width, source.height, source.orientation, *autorotate)
            }
            Current::Decoded(img) => (img.width(), img.height(), img.orientation(), false),
        }
    }

    /// The current pixels, decoded at full size (pending `/autorotate` applied).
    pub fn image(&self) -> Result<Image, VipsError> {
        match &self.current {
            Current::Encoded { source, autorotate } => {
                let img = source.image()?;
                if *autorotate {
                    orient::autorotate(&img)
                } else {
                    Ok(img)
                }
            }
            Current::Decoded(img) => Ok(img.clone()),
        }
    }

    /// Before a step whose failure will be ignored: a sequentially read current image is
    /// rendered to memory, because the failing step may already have read it once and the
    /// image must be read again by the next step or the final save.
    pub fn make_rereadable(&mut self) -> Result<(), VipsError> {
        if let Current::Decoded(img) = &self.current {
            if img.is_sequential() {
                self.current = Current::Decoded(img.random_access()?);
            }
        }
        Ok(())
    }

    /// Moves on to one step's result.
    pub fn advance(&mut self, current: Current, enc: &Encoding) {
        self.current = current;
        self.format = enc.format;
        self.stripped |= enc.strip;
    }
}

/// One finished process: the pixels and how to write them.
pub(crate) struct Processed {
    pub image: Image,
    pub encoding: Encoding,
}

/// `/autorotate` (spec §7): the EXIF orientation applied (tag reset), re-encoded in the input
/// format with bimg's defaults, every param ignored. On undecoded input it only commits to the
/// rotation, so the next step can still shrink on load before turning.
pub(crate) fn autorotate(state: &State) -> Result<(Current, Encoding), VipsError> {
    let enc = Encoding {
        strip: state.stripped,
        ..Encoding::defaults(state.format)
    };
    enc.saver()?;
    let next = match &state.current {
        Current::Encoded { source, .. } => Current::Encoded {
            source: source.clone(),
            autorotate: true,
        },
        Current::Decoded(img) => Current::Decoded(orient::autorotate(img)?),
    };
    Ok((next, enc))
}

/// One generic process of `o` (with `endpoint`'s run-time rules: the `/fit` box) on the state's
/// current image. `watermark` is the fetched body of `o.image_watermark`'s URL, if any.
pub(crate) fn process(
    state: &State,
    endpoint: Endpoint,
    o: &Options,
    watermark: Option<&[u8]>,
) -> Result<Processed, VipsError> {
    // Output format first: bimg refuses an unwritable type before decoding anything.
    let mut encoding = Encoding::from_options(o.output.unwrap_or(state.format), o);
    encoding.strip |= state.stripped;
    encoding.saver()?;

    let (raw_w, raw_h, tag, committed) = state.geometry_input();
    let orientation = Orientation::for_options(o, tag, committed);
    let (w0, h0) = orientation.oriented_size(raw_w, raw_h);

    let fitted;
    let o = if endpoint == Endpoint::Fit {
        // The box is fitted to the image as it will come out of `orient`: turned by its EXIF tag
        // (spec §7's 5–8 swap; FIX: imaginary's swap cancels itself out) or by `rotate`.
        let (fw, fh) =
            geometry::fit_box(w0, h0, o.width, o.height, 1, true).map_err(VipsError::new)?;
        fitted = Options {
            width: fw,
            height: fh,
            embed: true,
            ..o.clone()
        };
        &fitted
    } else {
        o
    };

    let layout = geometry::layout(o, w0, h0);

    // Load: shrink on load when a resample is the first thing to happen to the pixels.
    let mut resampled = false;
    let img = match &state.current {
        Current::Encoded { source, .. } if o.zoom == 0 => match layout.resample(w0, h0) {
            Some((tw, th)) => {
                let (pw, ph) = orientation.unoriented_size(tw, th);
                resampled = true;
                source.scaled(pw, ph)?
            }
            None => source.image()?,
        },
        Current::Encoded { source, .. } => source.image()?,
        Current::Decoded(img) => img.clone(),
    };

    let img = orient::apply(&img, &orientation)?;
    let mut img = zoom::apply(&img, o.zoom)?;

    if layout.transform {
        if !resampled {
            if let Some((w, h)) = layout.resample(img.width(), img.height()) {
                img = resize::to(&img, w, h)?;
            }
        }
        img = match geometry::cut(o, &layout, img.width(), img.height()).map_err(VipsError::new)? {
            Cut::None => img,
            Cut::Smart { width, height } => crop::smart(&img, width, height)?,
            Cut::Crop {
                left,
                top,
                width,
                height,
            }
            | Cut::Extract {
                left,
                top,
                width,
                height,
            } => crop::area(&img, left, top, width, height)?,
            Cut::Embed {
                left,
                top,
                width,
                height,
            } => embed::apply(&img, left, top, width, height, o.extend, o.background)?,
        };
    }

    let mut img = blur::apply(&img, o.sigma, o.min_ampl)?;
    if let Some(t) = &o.text_watermark {
        img = watermark::text(&img, t)?;
    }
    if let Some(w) = &o.image_watermark {
        img = watermark::image(&img, w, watermark)?;
    }
    let img = flatten::apply(&img, o.background)?;
    let image = encode::prepare(&img, o.no_profile, o.grayscale)?;
    Ok(Processed { image, encoding })
}
