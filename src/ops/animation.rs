//! Animated GIF and WebP stay animated when the output can hold an animation (FIX of spec §14
//! item 10, imaginary #215: imaginary decodes the first frame only).
//!
//! An input is animated when its header says it has several frames (`n-pages`) and it is a GIF
//! or a WebP; the output can hold it when it is GIF (cgif) or WebP, named by `type` or, without
//! one, the input's own format. Then every frame is loaded (`n=-1`) and libvips holds them
//! stacked top to bottom in one image, the frame height in `page-height`; each frame goes
//! through the same generic process as a still image would ([`process::Steps`]), and the
//! results are stacked again with the input's frame delays and loop count, which gifsave and
//! webpsave write back. Any other output (JPEG, PNG, TIFF, HEIF, …) gets the first frame, as
//! in imaginary; so does `/info`, which describes the first frame's size.
//!
//! Per operation, on an animation:
//! * resample: the load shrinks every frame at once (`vips_thumbnail` with `n=-1`, which keeps
//!   frames from straddling) when it is the first thing to happen, else frame by frame;
//! * crop, extract, embed, zoom, rotate, flip, flop, EXIF orientation, blur, text and image
//!   watermarks: frame by frame, identical on every frame;
//! * smart crop (`/smartcrop`, `gravity=smart`): a **centre** crop of the same size on every
//!   frame (an attention crop would pick a different window per frame and make it jump);
//! * flatten and colour conversion: on the whole stack (per pixel, frames cannot mix).
//!
//! Caps: at most [`limits::MAX_ANIMATION_FRAMES`] frames and
//! [`limits::MAX_ANIMATION_PIXELS`] pixels over all frames are loaded, and the output's pixels
//! over all frames are bounded like any output (`limits.rs`).

use super::format::ImageType;
use super::limits;
use super::load::Source;
use super::orient;
use super::process::{Current, Steps};
use super::vips::{Access, FailOn, Image, VipsError};

/// Whether `format` can be written as an animation (and read as one).
pub(crate) fn holds_animation(format: ImageType) -> bool {
    matches!(format, ImageType::Gif | ImageType::Webp)
}

/// How many frames an output in `format` of `current` will have: the animation's frame count
/// when both the input and the output can hold an animation, else 1.
pub(crate) fn output_frames(current: &Current, format: ImageType) -> u32 {
    if !holds_animation(format) {
        return 1;
    }
    match current {
        Current::Encoded { source, .. } if holds_animation(source.format) => source.pages(),
        Current::Encoded { .. } => 1,
        Current::Decoded(img) => img.frames(),
    }
}

/// Every frame of the request's animation, stacked, after the caps.
pub(crate) fn load(source: &Source) -> Result<Image, VipsError> {
    limits::check_animation(source.width, source.height, source.pages())?;
    Image::load_pages(source.bytes().clone(), Access::Sequential, FailOn::None)
}

/// [`Steps::apply`] on every frame of `current` (an animation, see [`output_frames`]), stacked
/// again with its delays and loop count. Flatten and colour are left to the caller.
pub(crate) fn transform(current: &Current, steps: &Steps) -> Result<Image, VipsError> {
    // Shrink every frame on load when a resample comes first, as the still path does.
    let (stack, frame_size) = match current {
        Current::Encoded { source, .. } => {
            let (w0, h0) = steps.orientation.oriented_size(source.width, source.height);
            match steps.layout.resample(w0, h0) {
                Some((tw, th)) if steps.o.zoom == 0 => {
                    limits::check_animation(source.width, source.height, source.pages())?;
                    let (pw, ph) = steps.orientation.unoriented_size(tw, th);
                    let stack =
                        Image::thumbnail_pages(source.bytes().clone(), pw, ph, FailOn::None)?;
                    (stack, Some((pw, ph)))
                }
                _ => (load(source)?, None),
            }
        }
        Current::Decoded(img) => (img.clone(), None),
    };
    let frame = (stack.width(), stack.page_height());
    if frame_size.is_none_or(|size| size == frame)
        && steps.changes_nothing(frame.0, frame.1, frame_size.is_some())
    {
        // e.g. a plain resize, done by the load: nothing to do frame by frame
        return Ok(stack);
    }
    map_frames(&stack, |frame| {
        let frame = match frame_size {
            // libvips should have hit the size; make sure every frame has it exactly
            Some((w, h)) if (frame.width(), frame.height()) != (w, h) => frame.resize_to(w, h)?,
            _ => frame.clone(),
        };
        steps.apply(&frame, frame_size.is_some())
    })
}

/// `/autorotate` of an animation: the orientation tag applied to every frame.
pub(crate) fn autorotate(stack: &Image) -> Result<Image, VipsError> {
    if stack.orientation() == 1 {
        return Ok(stack.clone());
    }
    map_frames(stack, orient::autorotate)
}

/// `f` applied to every frame of `stack`, the results (which must all have one size) stacked
/// again with `stack`'s frame delays and loop count.
pub(crate) fn map_frames(
    stack: &Image,
    mut f: impl FnMut(&Image) -> Result<Image, VipsError>,
) -> Result<Image, VipsError> {
    let (n, page_height, width) = (stack.frames(), stack.page_height(), stack.width());
    let mut frames: Vec<Image> = Vec::with_capacity(n as usize);
    for i in 0..n {
        let frame = stack.extract_area(0, i * page_height, width, page_height)?;
        let out = f(&frame)?;
        if let Some(first) = frames.first() {
            if (out.width(), out.height()) != (first.width(), first.height()) {
                return Err(VipsError::new(format!(
                    "animation frame {i} came out {}x{}, frame 0 {}x{}",
                    out.width(),
                    out.height(),
                    first.width(),
                    first.height()
                )));
            }
        }
        frames.push(out);
    }
    Image::join_frames(&frames)?.with_animation(&stack.delays(), stack.loop_count())
}

/// The first frame of `img` when it is an animation, as a still image; else `img`.
pub(crate) fn first_frame(img: &Image) -> Result<Image, VipsError> {
    if img.frames() <= 1 {
        return Ok(img.clone());
    }
    let page_height = img.page_height();
    img.extract_area(0, 0, img.width(), page_height)?
        .with_page_height(page_height)
}

/// `img`, known to be one picture, marked as such: a turned or zoomed first frame keeps the
/// loader's `page-height`, which could divide its new height and make gifsave or webpsave
/// write it as several frames.
pub(crate) fn still(img: &Image) -> Result<Image, VipsError> {
    if img.frames() <= 1 {
        return Ok(img.clone());
    }
    img.with_page_height(img.height())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::format::sniff;
    use crate::ops::options::{Endpoint, Gravity, ImageWatermark, Options, TextWatermark};
    use crate::ops::plan::{PipelineStep, Plan, PlanKind};
    use crate::ops::run::{run, Output};
    use crate::ops::vips::Saver;
    use crate::ops::OpError;
    use bytes::Bytes;

    const DELAYS: [i32; 3] = [100, 200, 300];

    /// `n` different `w`×`h` frames (the test pattern, mirrored left↔right, upside down, …),
    /// 100, 200, 300, 100, … ms each, looping forever, written with `saver`.
    fn animation(w: u32, h: u32, n: u32, saver: Saver) -> Vec<u8> {
        let a = Image::test_pattern(w, h, 3).unwrap();
        let kinds = [a.clone(), a.flip(false).unwrap(), a.flip(true).unwrap()];
        let frames: Vec<Image> = (0..n as usize).map(|i| kinds[i % 3].clone()).collect();
        let delays: Vec<i32> = (0..n as usize).map(|i| DELAYS[i % 3]).collect();
        Image::join_frames(&frames)
            .unwrap()
            .with_animation(&delays, Some(0))
            .unwrap()
            .save(&saver, false)
            .unwrap()
    }

    fn gif(w: u32, h: u32) -> Vec<u8> {
        animation(w, h, 3, Saver::Gif)
    }

    fn webp(w: u32, h: u32) -> Vec<u8> {
        animation(
            w,
            h,
            3,
            Saver::Webp {
                quality: 90,
                lossless: false,
            },
        )
    }

    fn resize(width: u32, output: Option<ImageType>) -> Plan {
        Plan::transform(
            Endpoint::Resize,
            Options {
                width,
                embed: true,
                output,
                ..Options::imaginary()
            },
        )
    }

    /// The output reloaded with every frame: (format, width, frame height, frames, delays,
    /// loop), after checking `Output` agrees.
    fn frames_of(out: &Output) -> (ImageType, u32, u32, u32, Vec<i32>, Option<u32>) {
        let format = sniff(&out.bytes).expect("an image");
        assert_eq!(Some(format), out.format);
        let img = if holds_animation(format) {
            Image::load_pages(
                Bytes::copy_from_slice(&out.bytes),
                Access::Random,
                FailOn::None,
            )
            .unwrap()
        } else {
            Image::load_bytes(&out.bytes, Access::Random).unwrap()
        };
        let header = Image::load_bytes(&out.bytes, Access::Random).unwrap();
        assert_eq!(header.n_pages(), img.frames(), "n-pages after reload");
        assert_eq!((img.width(), img.page_height()), (out.width, out.height));
        (
            format,
            img.width(),
            img.page_height(),
            img.frames(),
            img.delays(),
            img.loop_count(),
        )
    }

    fn go(plan: &Plan, input: &[u8]) -> (ImageType, u32, u32, u32, Vec<i32>, Option<u32>) {
        frames_of(&run(plan, input, &[]).unwrap_or_else(|e| panic!("{e}")))
    }

    fn error(plan: &Plan, input: &[u8]) -> String {
        match run(plan, input, &[]) {
            Err(OpError::Process(msg)) => msg,
            other => panic!("expected a processing error, got {other:?}"),
        }
    }

    #[test]
    fn gif_resize_stays_an_animated_gif() {
        let (format, w, h, n, delays, looping) = go(&resize(20, None), &gif(40, 30));
        assert_eq!((format, w, h, n), (ImageType::Gif, 20, 15, 3));
        assert_eq!((delays, looping), (DELAYS.to_vec(), Some(0)));
        // explicit type, and stripped metadata: still the timing
        let mut plan = resize(20, Some(ImageType::Gif));
        if let PlanKind::Transform(o) = &mut plan.kind {
            o.strip_metadata = true;
        }
        let (_, _, _, n, delays, _) = go(&plan, &gif(40, 30));
        assert_eq!((n, delays), (3, DELAYS.to_vec()));
        if let PlanKind::Transform(o) = &mut plan.kind {
            o.output = Some(ImageType::Webp);
        }
        let (format, _, _, n, delays, _) = go(&plan, &gif(40, 30));
        assert_eq!((format, n, delays), (ImageType::Webp, 3, DELAYS.to_vec()));
    }

    #[test]
    fn gif_to_webp_and_webp_to_gif_stay_animated() {
        let (format, w, h, n, delays, looping) =
            go(&resize(20, Some(ImageType::Webp)), &gif(40, 30));
        assert_eq!((format, w, h, n), (ImageType::Webp, 20, 15, 3));
        assert_eq!((delays, looping), (DELAYS.to_vec(), Some(0)));
        let (format, w, h, n, delays, _) = go(&resize(20, Some(ImageType::Gif)), &webp(40, 30));
        assert_eq!((format, w, h, n), (ImageType::Gif, 20, 15, 3));
        assert_eq!(delays, DELAYS.to_vec());
        // no type: WebP in, animated WebP out
        let (format, _, _, n, ..) = go(&resize(20, None), &webp(40, 30));
        assert_eq!((format, n), (ImageType::Webp, 3));
    }

    #[test]
    fn other_outputs_get_the_first_frame() {
        for t in [ImageType::Jpeg, ImageType::Png, ImageType::Tiff] {
            let (format, w, h, n, ..) = go(&resize(20, Some(t)), &gif(40, 30));
            assert_eq!((format, w, h, n), (t, 20, 15, 1), "{t:?}");
        }
        // the first frame, not another one: the pattern's green grows downwards
        let out = run(&resize(40, Some(ImageType::Png)), &gif(40, 30), &[]).unwrap();
        let img = Image::load_bytes(&out.bytes, Access::Random).unwrap();
        assert!(img.pixel(0, 0).unwrap()[1] < 64.0);
        assert!(img.pixel(0, 29).unwrap()[1] > 192.0);
        // /info describes the first frame
        let info = Plan {
            endpoint: Endpoint::Info,
            kind: PlanKind::Info,
            vary_accept: false,
        };
        let json = String::from_utf8(run(&info, &gif(40, 30), &[]).unwrap().bytes).unwrap();
        assert!(
            json.starts_with(r#"{"width":40,"height":30,"type":"gif""#),
            "{json}"
        );
    }

    #[test]
    fn every_generic_operation_applies_to_every_frame() {
        let input = gif(40, 30);
        let mark = ImageWatermark {
            url: "http://h/w.png".into(),
            left: 5,
            top: 5,
            opacity: 0.5,
        };
        let text = TextWatermark {
            text: "Hi".into(),
            font: "sans 10".into(),
            width: 100,
            dpi: 72,
            margin: 150,
            opacity: 1.0,
            no_replicate: false,
            color: [255, 0, 0],
        };
        let cases: Vec<(Endpoint, Options, (u32, u32))> = vec![
            // cover-scale and centre-crop
            (
                Endpoint::Crop,
                Options {
                    width: 20,
                    height: 20,
                    crop: true,
                    ..Options::imaginary()
                },
                (20, 20),
            ),
            // smart crop: a centre crop on every frame
            (
                Endpoint::SmartCrop,
                Options {
                    width: 20,
                    height: 20,
                    crop: true,
                    gravity: Gravity::Smart,
                    ..Options::imaginary()
                },
                (20, 20),
            ),
            // contain and pad
            (
                Endpoint::Resize,
                Options {
                    width: 30,
                    height: 30,
                    embed: true,
                    ..Options::imaginary()
                },
                (30, 30),
            ),
            (
                Endpoint::Extract,
                Options {
                    top: 5,
                    left: 10,
                    area_width: 20,
                    area_height: 10,
                    ..Options::imaginary()
                },
                (20, 10),
            ),
            (
                Endpoint::Rotate,
                Options {
                    rotate: 90,
                    rotate_requested: true,
                    ..Options::imaginary()
                },
                (30, 40),
            ),
            (
                Endpoint::Flip,
                Options {
                    flip: true,
                    ..Options::imaginary()
                },
                (40, 30),
            ),
            (
                Endpoint::Zoom,
                Options {
                    zoom: 1,
                    ..Options::imaginary()
                },
                (80, 60),
            ),
            (
                Endpoint::Blur,
                Options {
                    sigma: 1.5,
                    ..Options::imaginary()
                },
                (40, 30),
            ),
            (
                Endpoint::Watermark,
                Options {
                    text_watermark: Some(text),
                    ..Options::imaginary()
                },
                (40, 30),
            ),
            (
                Endpoint::WatermarkImage,
                Options {
                    image_watermark: Some(mark),
                    ..Options::imaginary()
                },
                (40, 30),
            ),
            (
                Endpoint::Enlarge,
                Options {
                    width: 60,
                    height: 60,
                    enlarge: true,
                    crop: true,
                    ..Options::imaginary()
                },
                (60, 60),
            ),
            (
                Endpoint::Thumbnail,
                Options {
                    width: 10,
                    height: 50,
                    ..Options::imaginary()
                },
                (10, 50),
            ),
            // flatten and colour on the whole stack
            (
                Endpoint::Convert,
                Options {
                    background: Some([255, 0, 0]),
                    grayscale: true,
                    ..Options::imaginary()
                },
                (40, 30),
            ),
        ];
        let wm_png = Image::test_pattern(10, 10, 4)
            .unwrap()
            .save(&Saver::QUICK_PNG, false)
            .unwrap();
        let watermarks = vec![("http://h/w.png".to_string(), wm_png)];
        for (endpoint, o, (w, h)) in cases {
            for output in [None, Some(ImageType::Webp)] {
                let plan = Plan::transform(
                    endpoint,
                    Options {
                        output,
                        ..o.clone()
                    },
                );
                let out = run(&plan, &input, &watermarks).unwrap_or_else(|e| panic!("{e}"));
                let (format, fw, fh, n, delays, _) = frames_of(&out);
                assert_eq!(
                    (format, fw, fh, n),
                    (output.unwrap_or(ImageType::Gif), w, h, 3),
                    "{endpoint:?} {output:?}"
                );
                assert_eq!(delays, DELAYS.to_vec(), "{endpoint:?} {output:?}");
            }
        }
    }

    #[test]
    fn frames_are_transformed_one_by_one() {
        // flop (top↔bottom) of each frame: frame 0 (the pattern) comes out green at the top,
        // frame 2 (stored upside down) comes back upright. Flopping the whole stack instead
        // would also reverse the frame order.
        let plan = Plan::transform(
            Endpoint::Flop,
            Options {
                flop: true,
                ..Options::imaginary()
            },
        );
        let out = run(&plan, &gif(40, 30), &[]).unwrap();
        let img = Image::load_pages(
            Bytes::copy_from_slice(&out.bytes),
            Access::Random,
            FailOn::None,
        )
        .unwrap();
        assert_eq!((img.frames(), img.page_height()), (3, 30));
        let green = |y: u32| img.pixel(0, y).unwrap()[1];
        assert!(green(0) > 192.0, "frame 0 top {}", green(0));
        assert!(green(29) < 64.0, "frame 0 bottom {}", green(29));
        assert!(green(60) < 64.0, "frame 2 top {}", green(60));
        assert!(green(89) > 192.0, "frame 2 bottom {}", green(89));
    }

    #[test]
    fn pipelines_keep_or_drop_the_animation_step_by_step() {
        let step = |endpoint, options| PipelineStep {
            endpoint,
            ignore_failure: false,
            options,
        };
        let flip = || {
            step(
                Endpoint::Flip,
                Options {
                    flip: true,
                    ..Options::imaginary()
                },
            )
        };
        let thumb = || {
            step(
                Endpoint::Thumbnail,
                Options {
                    width: 20,
                    ..Options::imaginary()
                },
            )
        };
        let pipeline = |steps| Plan {
            endpoint: Endpoint::Pipeline,
            kind: PlanKind::Pipeline(steps),
            vary_accept: false,
        };
        let animated = pipeline(vec![
            thumb(),
            flip(),
            step(Endpoint::AutoRotate, Options::default()),
        ]);
        let (format, w, h, n, delays, _) = go(&animated, &gif(40, 30));
        assert_eq!((format, w, h, n), (ImageType::Gif, 20, 15, 3));
        assert_eq!(delays, DELAYS.to_vec());
        // a step into PNG keeps the first frame, and so does everything after it
        let png = step(
            Endpoint::Convert,
            Options {
                output: Some(ImageType::Png),
                ..Options::imaginary()
            },
        );
        let gif_again = step(
            Endpoint::Convert,
            Options {
                output: Some(ImageType::Gif),
                ..Options::imaginary()
            },
        );
        let still = pipeline(vec![thumb(), png, gif_again, flip()]);
        let (format, w, h, n, ..) = go(&still, &gif(40, 30));
        assert_eq!((format, w, h, n), (ImageType::Gif, 20, 15, 1));
        // /autorotate alone re-encodes the whole animation
        let autorotate = Plan {
            endpoint: Endpoint::AutoRotate,
            kind: PlanKind::AutoRotate,
            vary_accept: false,
        };
        let (format, w, h, n, ..) = go(&autorotate, &gif(40, 30));
        assert_eq!((format, w, h, n), (ImageType::Gif, 40, 30, 3));
    }

    #[test]
    fn still_gifs_stay_still_when_turned() {
        // A one-frame GIF turned a quarter: its height (40) is a multiple of the loader's
        // frame height (20), which must not make the saver write two frames.
        let still = Image::test_pattern(40, 20, 3)
            .unwrap()
            .save(&Saver::Gif, false)
            .unwrap();
        let plan = Plan::transform(
            Endpoint::Rotate,
            Options {
                rotate: 90,
                rotate_requested: true,
                ..Options::imaginary()
            },
        );
        let (format, w, h, n, ..) = go(&plan, &still);
        assert_eq!((format, w, h, n), (ImageType::Gif, 20, 40, 1));
        let zoom = Plan::transform(
            Endpoint::Zoom,
            Options {
                zoom: 1,
                ..Options::imaginary()
            },
        );
        let (_, w, h, n, ..) = go(&zoom, &still);
        assert_eq!((w, h, n), (80, 40, 1));
        // The first frame of an animation made in an earlier pipeline step carries its frame
        // height (15); zoomed to 30 it must still come out as one picture, here one TIFF page.
        let step = |endpoint, options| PipelineStep {
            endpoint,
            ignore_failure: false,
            options,
        };
        let plan = Plan {
            endpoint: Endpoint::Pipeline,
            kind: PlanKind::Pipeline(vec![
                step(
                    Endpoint::Thumbnail,
                    Options {
                        width: 20,
                        ..Options::imaginary()
                    },
                ),
                step(
                    Endpoint::Zoom,
                    Options {
                        zoom: 1,
                        output: Some(ImageType::Tiff),
                        ..Options::imaginary()
                    },
                ),
            ]),
            vary_accept: false,
        };
        let out = run(&plan, &gif(40, 30), &[]).unwrap();
        let pages = Image::load_pages(
            Bytes::copy_from_slice(&out.bytes),
            Access::Random,
            FailOn::None,
        );
        let header = Image::load_bytes(&out.bytes, Access::Random).unwrap();
        assert_eq!(
            (header.width(), header.height(), header.n_pages()),
            (40, 30, 1)
        );
        if let Ok(all) = pages {
            assert_eq!(all.height(), 30);
        }
    }

    #[test]
    fn too_many_frames_are_refused_unless_only_the_first_is_needed() {
        let _errors = crate::ops::vips::error_lock();
        let many = animation(2, 2, limits::MAX_ANIMATION_FRAMES + 1, Saver::Gif);
        let msg = error(&resize(1, None), &many);
        assert_eq!(msg, "Too many frames in the animation: 1001 (at most 1000)");
        let autorotate = Plan {
            endpoint: Endpoint::AutoRotate,
            kind: PlanKind::AutoRotate,
            vary_accept: false,
        };
        assert_eq!(error(&autorotate, &many), msg);
        let (format, w, h, n, ..) = go(&resize(1, Some(ImageType::Png)), &many);
        assert_eq!((format, w, h, n), (ImageType::Png, 1, 1, 1));
        // at the cap: fine
        let most = animation(2, 2, limits::MAX_ANIMATION_FRAMES, Saver::Gif);
        assert_eq!(go(&resize(1, None), &most).3, 1000);
    }

    #[test]
    fn animated_outputs_count_every_frame_against_the_cap() {
        let _errors = crate::ops::vips::error_lock();
        // 3 frames of 6000×6000 = 108 Mpx: too much as an animation
        let plan = Plan::transform(
            Endpoint::Thumbnail,
            Options {
                width: 6000,
                height: 6000,
                ..Options::imaginary()
            },
        );
        // Only the limits' check says this (libvips would render the 108 Mpx without it): the
        // refusal comes before any pixel is made. No clock here: a loaded CI machine took > 2 s.
        assert_eq!(error(&plan, &gif(40, 30)), "Maximum image size exceeded");
    }
}
