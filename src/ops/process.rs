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
//!
//! Before any pixel is decoded, the output size is checked against `limits.rs`. An animated
//! GIF/WebP written as GIF/WebP goes through the same steps frame by frame (`animation.rs`);
//! written in any other format, its first frame is the image.

use std::rc::Rc;

use super::encode::{self, Encoding};
use super::format::ImageType;
use super::geometry::{self, Cut, Layout, Orientation};
use super::load::Source;
use super::options::{Endpoint, Gravity, Options};
use super::vips::{Access, Image, VipsError};
use super::{animation, blur, crop, embed, flatten, limits, orient, resize, watermark, zoom};

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

    /// Stored size (of one frame, for an animation), orientation tag and whether EXIF
    /// orientation is already committed.
    fn geometry_input(&self) -> (u32, u32, u32, bool) {
        match &self.current {
            Current::Encoded { source, autorotate } => {
                (source.width, source.height, source.orientation, *autorotate)
            }
            Current::Decoded(img) => (img.width(), img.page_height(), img.orientation(), false),
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

    /// The image to write as `format`: an animation stays one when `format` can hold it
    /// (every frame loaded if nothing decoded them yet), else its first frame.
    pub fn output_image(&self, format: ImageType) -> Result<Image, VipsError> {
        let animated = animation::output_frames(&self.current, format) > 1;
        match &self.current {
            Current::Encoded { source, autorotate } if animated => {
                let stack = animation::load(source)?;
                if *autorotate {
                    animation::autorotate(&stack)
                } else {
                    Ok(stack)
                }
            }
            Current::Decoded(img) if animated => Ok(img.clone()),
            Current::Decoded(img) => animation::first_frame(img),
            Current::Encoded { .. } => animation::still(&self.image()?),
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
    let (w, h, ..) = state.geometry_input();
    let frames = animation::output_frames(&state.current, enc.format);
    limits::check_output(w, h, frames)?;
    let next = match &state.current {
        Current::Encoded { source, .. } => Current::Encoded {
            source: source.clone(),
            autorotate: true,
        },
        Current::Decoded(img) if frames > 1 => Current::Decoded(animation::autorotate(img)?),
        Current::Decoded(img) => Current::Decoded(animation::still(&orient::autorotate(
            &animation::first_frame(img)?,
        )?)?),
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

    // Nothing is decoded before the output is known to be within the caps.
    let frames = animation::output_frames(&state.current, encoding.format);
    limits::check_process(o, &layout, w0, h0, frames)?;

    let mut steps = Steps {
        o,
        orientation,
        layout,
        watermark,
        mark: None,
        smart_as_centre: false,
    };
    let img = if frames > 1 {
        // Every frame the same way; the watermark image is opened once for all of them.
        if let Some(w) = &o.image_watermark {
            steps.mark = Some(watermark::open_image(w, watermark, Access::Random)?);
        }
        steps.smart_as_centre = true;
        animation::transform(&state.current, &steps)?
    } else {
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
            Current::Decoded(img) => animation::first_frame(img)?,
        };
        steps.apply(&img, resampled)?
    };

    let img = flatten::apply(&img, o.background)?;
    let img = encode::prepare(&img, o.no_profile, o.grayscale)?;
    let image = if frames > 1 {
        img
    } else {
        animation::still(&img)?
    };
    Ok(Processed { image, encoding })
}

/// The steps of one generic process between loading and flattening, for one image (or one
/// frame of an animation): orient → zoom → resample → cut | pad → blur → text watermark →
/// image watermark.
pub(crate) struct Steps<'a> {
    pub o: &'a Options,
    pub orientation: Orientation,
    /// `geometry::layout` of `o` for the oriented image (frame).
    pub layout: Layout,
    /// The fetched body of `o.image_watermark`'s URL, if any.
    pub watermark: Option<&'a [u8]>,
    /// The watermark image, opened once when it is drawn on many frames.
    pub mark: Option<Image>,
    /// A smart crop becomes a centre crop of the same size (animations: one window for every
    /// frame).
    pub smart_as_centre: bool,
}

impl Steps<'_> {
    /// Whether [`Steps::apply`] would hand a `width`×`height` image back unchanged (then an
    /// animation need not be split into frames).
    pub fn changes_nothing(&self, width: u32, height: u32, resampled: bool) -> bool {
        let o = self.o;
        let untouched = |cut: Result<Cut, &str>| matches!(cut, Ok(Cut::None));
        self.orientation.is_identity()
            && o.zoom == 0
            && (!self.layout.transform
                || ((resampled || self.layout.resample(width, height).is_none())
                    && untouched(geometry::cut(o, &self.layout, width, height))))
            && !(o.sigma > 0.0 || o.min_ampl > 0.0)
            && o.text_watermark.as_ref().is_none_or(|t| t.text.is_empty())
            && o.image_watermark.is_none()
    }

    /// The steps on `img`; `resampled`: the load already resampled it (shrink on load).
    pub fn apply(&self, img: &Image, resampled: bool) -> Result<Image, VipsError> {
        let (o, layout) = (self.o, &self.layout);
        let img = orient::apply(img, &self.orientation)?;
        let mut img = zoom::apply(&img, o.zoom)?;

        if layout.transform {
            if !resampled {
                if let Some((w, h)) = layout.resample(img.width(), img.height()) {
                    img = resize::to(&img, w, h)?;
                }
            }
            let (cw, ch) = (img.width(), img.height());
            img = match geometry::cut(o, layout, cw, ch).map_err(VipsError::new)? {
                Cut::None => img,
                Cut::Smart { width, height } if self.smart_as_centre => {
                    let (left, top) =
                        geometry::crop_offsets(cw, ch, width, height, Gravity::Centre);
                    crop::area(&img, left, top, width, height)?
                }
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
            img = match &self.mark {
                Some(mark) => watermark::overlay(&img, mark, w)?,
                None => watermark::image(&img, w, self.watermark)?,
            };
        }
        Ok(img)
    }
}
