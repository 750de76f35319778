//! Executes a [`Plan`] with libvips: `Plan + bytes -> Output`, no I/O.
//!
//! * [`probe`] reads the header only (for the resolution limit, spec §10.7).
//! * [`run`] decodes the input once (shrinking on load where the plan allows, `load.rs`), runs
//!   the generic process (`process.rs`), `/autorotate`, `/info` or a `/pipeline` of them, and
//!   encodes once at the end (`encode.rs`).
//!
//! A pipeline keeps its intermediate images in memory instead of re-encoding between steps as
//! imaginary does; what a re-encode would have changed is carried along explicitly (the format
//! "same as the input" refers to, stripped metadata, colourspace). A failing step with
//! `ignore_failure` leaves the previous image in place; if every step failed that way, the input
//! comes back unchanged with its sniffed Content-Type (FIX: imaginary sends none).
//!
//! Animated GIF/WebP stay animated when written as GIF/WebP, other formats get the first frame
//! (`animation.rs`); every process checks its output size first (`limits.rs`).
//!
//! A WebP/HEIF encode failure whose message contains `encode` is retried as JPEG (spec §8.3):
//! from the bytes again, since a failed save leaves a sequentially read image unusable.

use bytes::Bytes;

use super::encode::{self, Encoding};
use super::format::{sniff, ImageType};
use super::info;
use super::load::Source;
use super::options::{Endpoint, Options};
use super::plan::{Plan, PlanKind};
use super::process::{self, Current, State};
use super::vips::{self, VipsError};
use super::OpError;

/// What the header says, before any decoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Stored size (EXIF orientation not applied; PDF/SVG at their default render size).
    pub width: u32,
    pub height: u32,
    pub format: ImageType,
}

/// A finished response body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Output {
    pub bytes: Vec<u8>,
    /// `Content-Type`: the image format's, or `application/json` for `/info`.
    pub mime: &'static str,
    /// The image format written; `None` for `/info`'s JSON.
    pub format: Option<ImageType>,
    /// Size of the image written (0 for JSON).
    pub width: u32,
    pub height: u32,
}

/// Reads only the header of `input`: not an image we accept (sniffing, spec §5) →
/// [`OpError::UnsupportedMedia`]; libvips cannot read it → [`OpError::Process`] with libvips'
/// message.
pub fn probe(input: &[u8]) -> Result<Header, OpError> {
    let format = sniff(input).ok_or(OpError::UnsupportedMedia)?;
    let h = vips::read_header(input).map_err(|e| OpError::Process(e.message().to_string()))?;
    Ok(Header {
        width: h.width,
        height: h.height,
        format,
    })
}

/// Executes `plan` on `input`. `watermarks` holds the bodies fetched for
/// `Plan::watermark_urls()` as (URL, bytes); a URL missing from it fails that operation with
/// imaginary's `Unable to retrieve watermark image. <url>`.
pub fn run(plan: &Plan, input: &[u8], watermarks: &[(String, Vec<u8>)]) -> Result<Output, OpError> {
    run_limited(
        plan,
        Bytes::copy_from_slice(input),
        watermarks,
        f64::INFINITY,
    )
}

/// [`probe`]'s resolution check and [`run`] in one: `width·height / 10⁶ > max_megapixels` on
/// the stored size → [`OpError::ResolutionTooBig`] before any pixel is decoded. The same results
/// and errors as `probe` followed by `run`, with the header read once instead of twice (the
/// second read, EXIF parsing included, was ~2 % of a cold 2 MP JPEG request's CPU).
///
/// `input` is not copied: libvips reads it lazily until the output is written, and the images
/// keep it alive.
pub fn run_limited(
    plan: &Plan,
    input: Bytes,
    watermarks: &[(String, Vec<u8>)],
    max_megapixels: f64,
) -> Result<Output, OpError> {
    let format = sniff(&input).ok_or(OpError::UnsupportedMedia)?;
    let result = execute(plan, &input, format, watermarks, max_megapixels);
    // Free this worker thread's libvips buffers (bimg does the same after every call).
    vips::thread_shutdown();
    result
}

fn too_big(width: u32, height: u32, max_megapixels: f64) -> bool {
    width as f64 * height as f64 / 1e6 > max_megapixels
}

fn execute(
    plan: &Plan,
    input: &Bytes,
    format: ImageType,
    watermarks: &[(String, Vec<u8>)],
    max_megapixels: f64,
) -> Result<Output, OpError> {
    if let PlanKind::Info = plan.kind {
        if max_megapixels.is_finite() {
            let h = probe(input)?;
            if too_big(h.width, h.height, max_megapixels) {
                return Err(OpError::ResolutionTooBig);
            }
        }
        let body = info::json(input, Some(format)).map_err(|e| process_error(&e))?;
        return Ok(Output {
            bytes: body.into_bytes(),
            mime: "application/json",
            format: None,
            width: 0,
            height: 0,
        });
    }
    match produce(plan, input, format, watermarks, None, max_megapixels) {
        Err(Failure {
            err,
            encoding: Some(f),
            ..
        }) if encode::retry_as_jpeg(f, &err) => produce(
            plan,
            input,
            format,
            watermarks,
            Some(ImageType::Jpeg),
            max_megapixels,
        )
        .map_err(op_error),
        other => other.map_err(op_error),
    }
}

fn process_error(e: &VipsError) -> OpError {
    OpError::Process(e.message().to_string())
}

fn op_error(f: Failure) -> OpError {
    if f.too_big {
        OpError::ResolutionTooBig
    } else {
        process_error(&f.err)
    }
}

/// Why [`produce`] failed; `encoding` is the format being written when the final save failed.
struct Failure {
    err: VipsError,
    encoding: Option<ImageType>,
    /// Refused by the resolution limit, before decoding.
    too_big: bool,
}

impl From<VipsError> for Failure {
    fn from(err: VipsError) -> Self {
        Failure {
            err,
            encoding: None,
            too_big: false,
        }
    }
}

/// The body fetched for this step's watermark image, if it has one.
fn watermark_for<'a>(o: &Options, watermarks: &'a [(String, Vec<u8>)]) -> Option<&'a [u8]> {
    let url = &o.image_watermark.as_ref()?.url;
    watermarks
        .iter()
        .find(|(u, _)| u == url)
        .map(|(_, b)| b.as_slice())
}

/// One step of any kind on `state`: the next current image and how it would be written.
fn step(
    state: &State,
    endpoint: Endpoint,
    o: &Options,
    watermarks: &[(String, Vec<u8>)],
) -> Result<(Current, Encoding), VipsError> {
    match endpoint {
        Endpoint::AutoRotate => process::autorotate(state),
        Endpoint::Info | Endpoint::Pipeline => Err(VipsError::new(format!(
            "Unsupported operation name: {endpoint:?}"
        ))),
        _ => {
            let p = process::process(state, endpoint, o, watermark_for(o, watermarks))?;
            Ok((Current::Decoded(p.image), p.encoding))
        }
    }
}

fn produce(
    plan: &Plan,
    bytes: &Bytes,
    format: ImageType,
    watermarks: &[(String, Vec<u8>)],
    force_format: Option<ImageType>,
    max_megapixels: f64,
) -> Result<Output, Failure> {
    let source = Source::open(bytes.clone(), format)?;
    let (in_w, in_h) = (source.width, source.height);
    if too_big(in_w, in_h, max_megapixels) {
        return Err(Failure {
            err: VipsError::new("Image resolution is too big"),
            encoding: None,
            too_big: true,
        });
    }
    let mut state = State::new(source);

    let last = match &plan.kind {
        PlanKind::Transform(o) => {
            let (next, enc) = step(&state, plan.endpoint, o, watermarks)?;
            state.advance(next, &enc);
            Some(enc)
        }
        PlanKind::AutoRotate => {
            let (next, enc) = process::autorotate(&state)?;
            state.advance(next, &enc);
            Some(enc)
        }
        PlanKind::Pipeline(steps) => {
            let mut last = None;
            for s in steps {
                if s.ignore_failure {
                    state.make_rereadable()?;
                }
                match step(&state, s.endpoint, &s.options, watermarks) {
                    Ok((next, enc)) => {
                        state.advance(next, &enc);
                        last = Some(enc);
                    }
                    Err(_) if s.ignore_failure => {}
                    Err(e) => return Err(e.into()),
                }
            }
            last
        }
        PlanKind::Info => return Err(VipsError::new("info is not an image operation").into()),
    };

    let Some(mut enc) = last else {
        // Every pipeline step failed and was ignored: the input as it came.
        return Ok(Output {
            bytes: bytes.to_vec(),
            mime: format.mime(),
            format: Some(format),
            width: in_w,
            height: in_h,
        });
    };
    if let Some(f) = force_format {
        enc.format = f;
    }
    // An animation stays one only when the format can hold it (a JPEG retry cannot).
    let img = state.output_image(enc.format)?;
    let out = encode::save(&img, &enc).map_err(|err| Failure {
        err,
        encoding: Some(enc.format),
        too_big: false,
    })?;
    Ok(Output {
        bytes: out,
        mime: enc.format.mime(),
        format: Some(enc.format),
        // one frame's size for an animation
        width: img.width(),
        height: img.page_height(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::options::{Extend, Gravity, ImageWatermark, TextWatermark};
    use crate::ops::plan::PipelineStep;
    use crate::ops::vips::{Access, Image, Saver};

    // ---- inputs, generated with libvips ------------------------------------------------------

    fn jpeg(w: u32, h: u32, orientation: u32) -> Vec<u8> {
        let mut img = Image::test_pattern(w, h, 3).unwrap();
        if orientation > 1 {
            img = img.with_orientation(orientation).unwrap();
        }
        img.save(
            &Saver::Jpeg {
                quality: 85,
                interlace: false,
            },
            false,
        )
        .unwrap()
    }

    fn png(w: u32, h: u32, bands: u32) -> Vec<u8> {
        Image::test_pattern(w, h, bands)
            .unwrap()
            .save(&Saver::QUICK_PNG, false)
            .unwrap()
    }

    fn gif(w: u32, h: u32) -> Vec<u8> {
        Image::test_pattern(w, h, 3)
            .unwrap()
            .save(&Saver::Gif, false)
            .unwrap()
    }

    const SVG: &[u8] = br#"<svg xmlns="http://www.w3.org/2000/svg" width="200" height="100"><rect width="200" height="100" fill="red"/></svg>"#;

    // ---- plans ------------------------------------------------------------------------------

    fn resize(w: u32, h: u32) -> Plan {
        Plan::transform(
            Endpoint::Resize,
            Options {
                width: w,
                height: h,
                embed: true,
                ..Options::imaginary()
            },
        )
    }

    fn pipeline(steps: Vec<(Endpoint, bool, Options)>) -> Plan {
        Plan {
            endpoint: Endpoint::Pipeline,
            kind: PlanKind::Pipeline(
                steps
                    .into_iter()
                    .map(|(endpoint, ignore_failure, options)| PipelineStep {
                        endpoint,
                        ignore_failure,
                        options,
                    })
                    .collect(),
            ),
            vary_accept: false,
        }
    }

    /// Runs and decodes the output: (width, height, bands, format, EXIF orientation).
    fn go(plan: &Plan, input: &[u8]) -> (u32, u32, u32, ImageType, u32) {
        let out = run(plan, input, &[]).unwrap_or_else(|e| panic!("{e}"));
        decoded(&out)
    }

    fn decoded(out: &Output) -> (u32, u32, u32, ImageType, u32) {
        let format = sniff(&out.bytes).expect("output is an image");
        assert_eq!(Some(format), out.format);
        assert_eq!(out.mime, format.mime());
        let img = Image::load_bytes(&out.bytes, Access::Random).unwrap();
        assert_eq!((img.width(), img.height()), (out.width, out.height));
        (
            img.width(),
            img.height(),
            img.bands(),
            format,
            img.exif_orientation(),
        )
    }

    fn size(plan: &Plan, input: &[u8]) -> (u32, u32) {
        let (w, h, ..) = go(plan, input);
        (w, h)
    }

    fn error(plan: &Plan, input: &[u8]) -> String {
        match run(plan, input, &[]) {
            Err(OpError::Process(msg)) => msg,
            other => panic!("expected a processing error, got {other:?}"),
        }
    }

    // ---- probe ------------------------------------------------------------------------------

    #[test]
    fn probe_reads_the_stored_size() {
        let h = probe(&jpeg(300, 200, 6)).unwrap();
        assert_eq!((h.width, h.height, h.format), (300, 200, ImageType::Jpeg));
        let h = probe(SVG).unwrap();
        assert_eq!((h.width, h.height, h.format), (200, 100, ImageType::Svg));
    }

    #[test]
    fn run_limited_checks_the_resolution_on_the_header_it_reads() {
        let input = jpeg(400, 300, 1); // 0.12 MP
        let plan = resize(100, 0);
        assert_eq!(
            run_limited(&plan, input.clone().into(), &[], 0.11),
            Err(OpError::ResolutionTooBig)
        );
        let info = Plan {
            endpoint: Endpoint::Info,
            kind: PlanKind::Info,
            vary_accept: false,
        };
        assert_eq!(
            run_limited(&info, input.clone().into(), &[], 0.11),
            Err(OpError::ResolutionTooBig)
        );
        // at or under the limit: exactly what `run` makes
        assert_eq!(
            run_limited(&plan, input.clone().into(), &[], 0.12),
            run(&plan, &input, &[])
        );
        assert_eq!(
            run_limited(&info, input.clone().into(), &[], 1.0),
            run(&info, &input, &[])
        );
        assert_eq!(
            run_limited(&plan, Bytes::from_static(b"hello"), &[], 0.0),
            Err(OpError::UnsupportedMedia)
        );
    }

    #[test]
    fn probe_errors() {
        let _errors = crate::ops::vips::error_lock();
        assert_eq!(probe(b"hello world").err(), Some(OpError::UnsupportedMedia));
        assert_eq!(probe(b"").err(), Some(OpError::UnsupportedMedia));
        match probe(b"\xff\xd8\xff\xe0 this is not really a jpeg") {
            Err(OpError::Process(msg)) => assert!(!msg.is_empty()),
            other => panic!("{other:?}"),
        }
    }

    // ---- endpoints --------------------------------------------------------------------------

    #[test]
    fn resize_sizes_and_formats() {
        let input = jpeg(400, 300, 1);
        assert_eq!(size(&resize(200, 200), &input), (200, 200));
        assert_eq!(size(&resize(200, 0), &input), (200, 150));
        assert_eq!(size(&resize(0, 100), &input), (133, 100));
        assert_eq!(size(&resize(800, 800), &input), (400, 300));
        let (w, h, bands, format, _) = go(&resize(100, 0), &png(400, 300, 4));
        assert_eq!((w, h, bands, format), (100, 75, 4, ImageType::Png));
    }

    #[test]
    fn output_type_conversions() {
        let input = jpeg(120, 80, 1);
        for (t, bands) in [
            (ImageType::Png, 3),
            (ImageType::Webp, 3),
            (ImageType::Tiff, 3),
            (ImageType::Gif, 4),
            (ImageType::Jpeg, 3),
        ] {
            let plan = Plan::transform(
                Endpoint::Convert,
                Options {
                    output: Some(t),
                    ..Options::imaginary()
                },
            );
            let (w, h, b, format, _) = go(&plan, &input);
            assert_eq!((w, h, format), (120, 80, t));
            assert!(b == bands || t == ImageType::Gif, "{t:?} {b}");
        }
        let heif = Plan::transform(
            Endpoint::Convert,
            Options {
                output: Some(ImageType::Heif),
                ..Options::imaginary()
            },
        );
        if let Ok(out) = run(&heif, &input, &[]) {
            assert_eq!(out.mime, "image/heif");
        }
    }

    #[test]
    fn exif_orientation_is_applied_once_and_reset() {
        let input = jpeg(400, 200, 6); // displayed 200×400
        let (w, h, _, _, tag) = go(&resize(100, 0), &input);
        assert_eq!((w, h, tag), (100, 200, 1));
        // plain path (no resample) too
        let convert = Plan::transform(Endpoint::Convert, Options::imaginary());
        let (w, h, _, _, tag) = go(&convert, &input);
        assert_eq!((w, h, tag), (200, 400, 1));
        // norotation: stored orientation, tag kept for viewers
        let plan = Plan::transform(
            Endpoint::Resize,
            Options {
                width: 100,
                embed: true,
                no_auto_rotate: true,
                ..Options::imaginary()
            },
        );
        let (w, h, _, _, tag) = go(&plan, &input);
        assert_eq!((w, h, tag), (100, 50, 6));
        // stripmeta: no EXIF at all
        let plan = Plan::transform(
            Endpoint::Resize,
            Options {
                width: 100,
                embed: true,
                strip_metadata: true,
                ..Options::imaginary()
            },
        );
        assert_eq!(go(&plan, &input).4, 0);
    }

    #[test]
    fn reset_orientation_reaches_every_output_format() {
        let input = jpeg(400, 200, 6);
        for t in [
            ImageType::Png,
            ImageType::Webp,
            ImageType::Tiff,
            ImageType::Jpeg,
        ] {
            let plan = Plan::transform(
                Endpoint::Resize,
                Options {
                    width: 100,
                    embed: true,
                    output: Some(t),
                    ..Options::imaginary()
                },
            );
            let out = run(&plan, &input, &[]).unwrap();
            let img = Image::load_bytes(&out.bytes, Access::Random).unwrap();
            assert_eq!((img.width(), img.height()), (100, 200), "{t:?}");
            assert!(img.orientation() == 1, "{t:?}: {}", img.orientation());
            assert!(
                img.exif_orientation() <= 1,
                "{t:?}: {}",
                img.exif_orientation()
            );
        }
    }

    #[test]
    fn rotate_disables_exif() {
        let input = jpeg(400, 200, 6);
        let plan = Plan::transform(
            Endpoint::Rotate,
            Options {
                rotate: 180,
                ..Options::imaginary()
            },
        );
        assert_eq!(size(&plan, &input), (400, 200));
        let plan = Plan::transform(
            Endpoint::Rotate,
            Options {
                rotate: 90,
                width: 100,
                height: 100,
                ..Options::imaginary()
            },
        );
        assert_eq!(size(&plan, &input), (50, 100));
    }

    #[test]
    fn fit_box_uses_the_displayed_image() {
        let plan = Plan::transform(
            Endpoint::Fit,
            Options {
                width: 100,
                height: 100,
                embed: true,
                ..Options::imaginary()
            },
        );
        assert_eq!(size(&plan, &jpeg(400, 200, 1)), (100, 50));
        assert_eq!(size(&plan, &jpeg(400, 200, 6)), (50, 100));
        assert_eq!(size(&plan, &jpeg(60, 30, 1)), (60, 30));
    }

    #[test]
    fn fit_box_follows_an_explicit_rotation() {
        let plan = Plan::transform(
            Endpoint::Fit,
            Options {
                width: 100,
                height: 100,
                embed: true,
                rotate: 90,
                ..Options::imaginary()
            },
        );
        assert_eq!(size(&plan, &jpeg(400, 200, 1)), (50, 100));
    }

    #[test]
    fn exif_mirror_and_flip_mirror_once() {
        // stored mirrored, tagged 2: upright after orientation; `flip` does not mirror again
        let stored = Image::test_pattern(40, 20, 3)
            .unwrap()
            .flip(false)
            .unwrap()
            .with_orientation(2)
            .unwrap()
            .save(
                &Saver::Jpeg {
                    quality: 95,
                    interlace: false,
                },
                false,
            )
            .unwrap();
        for flip in [false, true] {
            let plan = Plan::transform(
                Endpoint::Flip,
                Options {
                    flip,
                    ..Options::imaginary()
                },
            );
            let out = run(&plan, &stored, &[]).unwrap();
            let img = Image::load_bytes(&out.bytes, Access::Random).unwrap();
            let right = img.pixel(39, 0).unwrap();
            assert!(right[0] > 200.0, "flip={flip}: {right:?}");
        }
    }

    #[test]
    fn crop_smartcrop_enlarge_thumbnail() {
        let input = jpeg(400, 300, 1);
        let crop = |w, h, gravity| {
            Plan::transform(
                Endpoint::Crop,
                Options {
                    width: w,
                    height: h,
                    crop: true,
                    gravity,
                    ..Options::imaginary()
                },
            )
        };
        assert_eq!(size(&crop(200, 200, Gravity::Centre), &input), (200, 200));
        assert_eq!(size(&crop(200, 0, Gravity::Centre), &input), (200, 300));
        assert_eq!(size(&crop(200, 200, Gravity::Smart), &input), (200, 200));
        assert_eq!(size(&crop(100, 400, Gravity::South), &input), (100, 400));
        let enlarge = Plan::transform(
            Endpoint::Enlarge,
            Options {
                width: 800,
                height: 800,
                enlarge: true,
                crop: true,
                ..Options::imaginary()
            },
        );
        assert_eq!(size(&enlarge, &input), (800, 800));
        let thumb = Plan::transform(
            Endpoint::Thumbnail,
            Options {
                width: 50,
                height: 70,
                ..Options::imaginary()
            },
        );
        assert_eq!(size(&thumb, &input), (50, 70));
    }

    #[test]
    fn extract_and_zoom() {
        let _errors = crate::ops::vips::error_lock();
        let input = png(100, 80, 3);
        let extract = |left, top| {
            Plan::transform(
                Endpoint::Extract,
                Options {
                    left,
                    top,
                    area_width: 40,
                    area_height: 30,
                    ..Options::imaginary()
                },
            )
        };
        assert_eq!(size(&extract(10, 10), &input), (40, 30));
        assert!(error(&extract(90, 10), &input).contains("bad extract area"));
        let zoom = Plan::transform(
            Endpoint::Zoom,
            Options {
                zoom: 1,
                ..Options::imaginary()
            },
        );
        assert_eq!(size(&zoom, &input), (200, 160));
        let zoom_area = Plan::transform(
            Endpoint::Zoom,
            Options {
                zoom: 2,
                top: 10,
                left: 10,
                area_width: 50,
                area_height: 20,
                ..Options::imaginary()
            },
        );
        assert_eq!(size(&zoom_area, &input), (50, 20));
    }

    #[test]
    fn embed_extend_background_and_flatten() {
        let input = png(100, 50, 4);
        let plan = Plan::transform(
            Endpoint::Resize,
            Options {
                width: 100,
                height: 100,
                embed: true,
                extend: Extend::Background,
                background: Some([255, 0, 0]),
                output: Some(ImageType::Png),
                ..Options::imaginary()
            },
        );
        let out = run(&plan, &input, &[]).unwrap();
        let img = Image::load_bytes(&out.bytes, Access::Random).unwrap();
        assert_eq!((img.width(), img.height(), img.bands()), (100, 100, 3));
        assert_eq!(img.pixel(0, 0).unwrap(), vec![255.0, 0.0, 0.0]);
        for extend in [Extend::Copy, Extend::Mirror, Extend::White, Extend::Black] {
            let plan = Plan::transform(
                Endpoint::Resize,
                Options {
                    width: 150,
                    height: 150,
                    embed: true,
                    extend,
                    ..Options::imaginary()
                },
            );
            assert_eq!(size(&plan, &jpeg(300, 200, 1)), (150, 150), "{extend:?}");
        }
    }

    #[test]
    fn blur_grey_watermarks() {
        let input = jpeg(300, 200, 1);
        let blur = Plan::transform(
            Endpoint::Blur,
            Options {
                sigma: 2.0,
                ..Options::imaginary()
            },
        );
        assert_eq!(size(&blur, &input), (300, 200));
        let grey = Plan::transform(
            Endpoint::Resize,
            Options {
                width: 100,
                embed: true,
                grayscale: true,
                ..Options::imaginary()
            },
        );
        assert_eq!(go(&grey, &input).2, 1);
        let text = Plan::transform(
            Endpoint::Watermark,
            Options {
                text_watermark: Some(TextWatermark {
                    text: "Hello".into(),
                    font: "sans 12".into(),
                    width: 100,
                    dpi: 150,
                    margin: 0,
                    opacity: 0.5,
                    no_replicate: false,
                    color: [255, 200, 50],
                }),
                ..Options::imaginary()
            },
        );
        assert_eq!(go(&text, &input).0, 300);
        let mark = ImageWatermark {
            url: "http://h/w.png".into(),
            left: 10,
            top: 10,
            opacity: 0.0,
        };
        let with_image = Plan::transform(
            Endpoint::WatermarkImage,
            Options {
                image_watermark: Some(mark),
                ..Options::imaginary()
            },
        );
        let wm = vec![("http://h/w.png".to_string(), png(50, 50, 4))];
        let out = run(&with_image, &input, &wm).unwrap();
        assert_eq!(decoded(&out).0, 300);
        assert_eq!(
            error(&with_image, &input),
            "Unable to retrieve watermark image. http://h/w.png"
        );
    }

    #[test]
    fn info_json() {
        let plan = Plan {
            endpoint: Endpoint::Info,
            kind: PlanKind::Info,
            vary_accept: false,
        };
        let out = run(&plan, &jpeg(40, 30, 6), &[]).unwrap();
        assert_eq!(out.mime, "application/json");
        assert_eq!(out.format, None);
        assert_eq!(
            String::from_utf8(out.bytes).unwrap(),
            r#"{"width":40,"height":30,"type":"jpeg","space":"srgb","hasAlpha":false,"hasProfile":false,"channels":3,"orientation":6}"#
        );
    }

    #[test]
    fn autorotate_reencodes_in_the_input_format() {
        let plan = Plan {
            endpoint: Endpoint::AutoRotate,
            kind: PlanKind::AutoRotate,
            vary_accept: false,
        };
        let (w, h, _, format, tag) = go(&plan, &jpeg(400, 200, 6));
        assert_eq!((w, h, format, tag), (200, 400, ImageType::Jpeg, 1));
        assert_eq!(go(&plan, &png(30, 20, 4)).3, ImageType::Png);
        assert_eq!(go(&plan, &gif(30, 20)).3, ImageType::Gif);
        assert_eq!(error(&plan, SVG), "Unsupported image output type");
    }

    #[test]
    fn svg_needs_a_type_and_renders_at_size() {
        assert_eq!(error(&resize(100, 0), SVG), "Unsupported image output type");
        let plan = Plan::transform(
            Endpoint::Resize,
            Options {
                width: 400,
                embed: true,
                output: Some(ImageType::Png),
                ..Options::imaginary()
            },
        );
        // never upscales without enlarge
        assert_eq!(size(&plan, SVG), (200, 100));
        let thumb = Plan::transform(
            Endpoint::Thumbnail,
            Options {
                width: 400,
                output: Some(ImageType::Png),
                ..Options::imaginary()
            },
        );
        let (w, h, _, format, _) = go(&thumb, SVG);
        assert_eq!((w, h, format), (400, 200, ImageType::Png));
    }

    #[test]
    fn unsupported_output_for_gif_input_is_fine_now() {
        // imaginary could not write GIF; with cgif we can (FIX of spec §14 item 10)
        assert_eq!(go(&resize(10, 0), &gif(40, 20)).3, ImageType::Gif);
    }

    #[test]
    fn encoder_range_errors() {
        let plan = Plan::transform(
            Endpoint::Convert,
            Options {
                quality: 101,
                ..Options::imaginary()
            },
        );
        assert!(error(&plan, &jpeg(20, 20, 1)).contains("quality"));
    }

    // ---- pipeline ---------------------------------------------------------------------------

    #[test]
    fn nextcloud_pipeline_autorotate_then_fit() {
        let fit = Options {
            width: 256,
            height: 256,
            embed: true,
            strip_metadata: true,
            no_auto_rotate: true,
            quality: 80,
            output: Some(ImageType::Webp),
            ..Options::imaginary()
        };
        let plan = pipeline(vec![
            (Endpoint::AutoRotate, false, Options::default()),
            (Endpoint::Fit, false, fit),
        ]);
        let (w, h, _, format, _) = go(&plan, &jpeg(1024, 512, 6));
        assert_eq!((w, h, format), (128, 256, ImageType::Webp));
        let (w, h, ..) = go(&plan, &jpeg(1024, 512, 1));
        assert_eq!((w, h), (256, 128));
    }

    #[test]
    fn pipeline_steps_feed_each_other() {
        let plan = pipeline(vec![
            (
                Endpoint::Crop,
                false,
                Options {
                    width: 300,
                    height: 260,
                    crop: true,
                    ..Options::imaginary()
                },
            ),
            (
                Endpoint::Convert,
                false,
                Options {
                    output: Some(ImageType::Png),
                    ..Options::imaginary()
                },
            ),
            // no type: keeps the previous step's format
            (
                Endpoint::Resize,
                false,
                Options {
                    width: 150,
                    embed: true,
                    ..Options::imaginary()
                },
            ),
        ]);
        let (w, h, _, format, _) = go(&plan, &jpeg(600, 400, 1));
        assert_eq!((w, h, format), (150, 130, ImageType::Png));
    }

    #[test]
    fn pipeline_failures() {
        let _errors = crate::ops::vips::error_lock();
        let bad = Options {
            left: 1000,
            area_width: 10,
            area_height: 10,
            ..Options::imaginary()
        };
        let good = Options {
            width: 50,
            ..Options::imaginary()
        };
        let input = jpeg(100, 80, 1);
        // ignored failure keeps the previous image
        let plan = pipeline(vec![
            (Endpoint::Extract, true, bad.clone()),
            (Endpoint::Thumbnail, false, good.clone()),
        ]);
        assert_eq!(size(&plan, &input), (50, 40));
        // not ignored: the request fails with the step's message
        let plan = pipeline(vec![
            (Endpoint::Thumbnail, false, good),
            (Endpoint::Extract, false, bad.clone()),
        ]);
        assert!(error(&plan, &input).contains("bad extract area"));
        // every step ignored-failed: the input, with its own Content-Type
        let plan = pipeline(vec![(Endpoint::Extract, true, bad)]);
        let out = run(&plan, &input, &[]).unwrap();
        assert_eq!(out.bytes, input);
        assert_eq!(out.mime, "image/jpeg");
        assert_eq!((out.width, out.height), (100, 80));
    }

    #[test]
    fn ignored_failure_after_partial_decode_keeps_the_previous_image_usable() {
        let _errors = crate::ops::vips::error_lock();
        // step 2 renders step 1's (sequential) result to memory for the turn, then fails
        let plan = pipeline(vec![
            (
                Endpoint::Thumbnail,
                false,
                Options {
                    width: 100,
                    ..Options::imaginary()
                },
            ),
            (
                Endpoint::Rotate,
                true,
                Options {
                    rotate: 90,
                    left: 1000,
                    area_width: 10,
                    area_height: 10,
                    ..Options::imaginary()
                },
            ),
        ]);
        assert_eq!(size(&plan, &jpeg(400, 200, 1)), (100, 50));
    }

    #[test]
    fn pipeline_autorotate_after_norotation_step() {
        // the first step leaves the tag (norotation); a later autorotate applies it
        let plan = pipeline(vec![
            (
                Endpoint::Thumbnail,
                false,
                Options {
                    width: 100,
                    no_auto_rotate: true,
                    ..Options::imaginary()
                },
            ),
            (Endpoint::AutoRotate, false, Options::default()),
        ]);
        let (w, h, _, _, tag) = go(&plan, &jpeg(400, 200, 6));
        assert_eq!((w, h, tag), (50, 100, 1));
    }

    #[test]
    fn successes_leave_no_error_text_behind() {
        let _errors = crate::ops::vips::error_lock();
        crate::ops::vips::take_pending_error();
        let input = jpeg(300, 200, 6);
        let plans = [
            resize(100, 100),
            Plan::transform(
                Endpoint::SmartCrop,
                Options {
                    width: 50,
                    height: 50,
                    crop: true,
                    gravity: Gravity::Smart,
                    ..Options::imaginary()
                },
            ),
            Plan::transform(
                Endpoint::Convert,
                Options {
                    output: Some(ImageType::Webp),
                    ..Options::imaginary()
                },
            ),
            Plan {
                endpoint: Endpoint::Info,
                kind: PlanKind::Info,
                vary_accept: false,
            },
        ];
        for plan in &plans {
            run(plan, &input, &[]).unwrap();
            run(plan, &png(40, 30, 4), &[]).unwrap();
        }
        run(&resize(10, 0), &gif(40, 30), &[]).unwrap();
        probe(SVG).unwrap();
        assert_eq!(crate::ops::vips::take_pending_error(), None);
    }

    // ---- robustness -------------------------------------------------------------------------

    #[test]
    fn garbage_never_panics() {
        let _errors = crate::ops::vips::error_lock();
        let prefixes: [&[u8]; 8] = [
            b"\xff\xd8\xff",
            b"\x89PNG\r\n\x1a\n",
            b"GIF89a",
            b"RIFF\x10\x00\x00\x00WEBPVP8 ",
            b"II*\x00",
            b"%PDF-1.4\n",
            b"<?xml version=\"1.0\"?>",
            b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic",
        ];
        let mut seed = 0x2545f4914f6cdd1du64;
        for p in prefixes {
            for len in [0usize, 1, 16, 300] {
                let mut buf = p.to_vec();
                for _ in 0..len {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    buf.push(seed as u8);
                }
                let _ = probe(&buf);
                for plan in [
                    resize(10, 10),
                    Plan::transform(Endpoint::Convert, Options::imaginary()),
                ] {
                    if let Err(e) = run(&plan, &buf, &[]) {
                        assert!(!e.to_string().is_empty());
                    }
                }
            }
        }
        // a truncated real JPEG: decodes what is there or fails with a message
        let whole = jpeg(64, 64, 1);
        let _ = run(&resize(10, 10), &whole[..whole.len() / 2], &[]);
    }

    #[test]
    fn shrink_on_load_and_plain_paths_agree_on_sizes() {
        let input = jpeg(1000, 750, 1);
        // 1000 → 123: DCT shrink 8 then resize; with zoom the plain path is taken
        assert_eq!(size(&resize(123, 0), &input), (123, 92));
        let zoomed = Plan::transform(
            Endpoint::Thumbnail,
            Options {
                width: 123,
                zoom: 1,
                ..Options::imaginary()
            },
        );
        assert_eq!(size(&zoomed, &input), (123, 92));
        let webp = Image::test_pattern(1000, 750, 3)
            .unwrap()
            .save(
                &Saver::Webp {
                    quality: 75,
                    lossless: false,
                },
                false,
            )
            .unwrap();
        assert_eq!(size(&resize(123, 0), &webp), (123, 92));
    }
}
