//! From endpoint + params to a validated [`Plan`] (spec §7 required params and forced options).
//!
//! Each endpoint is one arm of [`endpoint_options`]: its required-param check with imaginary's
//! exact message, then the options it forces, on top of the options every endpoint shares
//! ([`shared_options`], what imaginary's `BimgOptions` builds). `/pipeline` steps go through the
//! same function, so a `resize` step obeys the `/resize` rules.

use super::format::{negotiate, parse_type, ImageType, TypeParam};
use super::options::{Endpoint, Gravity, ImageWatermark, Options, TextWatermark};
use super::params::Params;
use super::pipeline;
use super::OpError;

/// What to do with the source image.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub endpoint: Endpoint,
    pub kind: PlanKind,
    /// `type=auto` was negotiated from `Accept`: the response must carry `Vary: Accept`.
    pub vary_accept: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub enum PlanKind {
    /// Generic bimg process (every endpoint but the three below).
    Transform(Options),
    /// `/info`: JSON metadata. `output` is only validated, never used.
    Info,
    /// `/autorotate`: EXIF orientation applied, re-encoded in the input format at quality 75.
    AutoRotate,
    /// `/pipeline`: ≤ 10 steps, each output feeding the next.
    Pipeline(Vec<PipelineStep>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct PipelineStep {
    pub endpoint: Endpoint,
    pub ignore_failure: bool,
    /// For `AutoRotate` steps only `output` matters (None).
    pub options: Options,
}

/// imaginary's default JPEG/WebP/HEIF quality (README says 80; the code says 75, spec §14.22).
/// Bounds on work a single param can ask for (FIX: imaginary has none): a blur's kernel grows
/// with sigma, a text watermark's rendering with its length.
pub const MAX_SIGMA: f64 = 1000.0;
pub const MAX_WATERMARK_TEXT: usize = 2000;

const DEFAULT_QUALITY: u32 = 75;
/// PNG zlib level when `compression` is 0.
const DEFAULT_COMPRESSION: u32 = 6;
const DEFAULT_FONT: &str = "sans 10";
const DEFAULT_DPI: u32 = 150;
const DEFAULT_TEXT_OPACITY: f64 = 0.25;

impl Plan {
    /// Applies `endpoint`'s rules to `params` (spec §7) and resolves the output format
    /// (spec §8): `type=auto` is negotiated from `accept`, no `type` keeps the input format.
    ///
    /// Errors are imaginary's: e.g. [`OpError::Process`]`("Missing required param: height or
    /// width")` for `/resize` without a size.
    pub fn new(endpoint: Endpoint, params: &Params, accept: Option<&str>) -> Result<Plan, OpError> {
        let kind = match endpoint {
            Endpoint::Info => PlanKind::Info,
            Endpoint::AutoRotate => PlanKind::AutoRotate,
            Endpoint::Pipeline => PlanKind::Pipeline(pipeline_steps(params)?),
            _ => PlanKind::Transform(endpoint_options(
                endpoint,
                params,
                requested_by_query(params, accept),
            )?),
        };
        Ok(Plan {
            endpoint,
            kind,
            vary_accept: Plan::varies_on_accept(endpoint, params),
        })
    }

    /// Whether a response for `endpoint` with `params` depends on `Accept`, so must carry
    /// `Vary: Accept` — on error responses too (spec §3 step 9), which is why it does not need
    /// a built plan.
    ///
    /// FIX: imaginary sends `Vary: Accept` for `type=auto` on every endpoint, although
    /// `/pipeline` ignores the negotiated type (spec §8.2, §14.17). We send it only where the
    /// negotiated type is used: not on `/pipeline`, and for the same reason not on `/info`
    /// (JSON) nor `/autorotate` (always the input format).
    pub fn varies_on_accept(endpoint: Endpoint, params: &Params) -> bool {
        let uses_type = !matches!(
            endpoint,
            Endpoint::Pipeline | Endpoint::Info | Endpoint::AutoRotate
        );
        uses_type && params.type_ == Some(TypeParam::Auto)
    }

    /// A single generic transform (no negotiation), e.g. for placeholders and tests.
    pub fn transform(endpoint: Endpoint, options: Options) -> Plan {
        Plan {
            endpoint,
            kind: PlanKind::Transform(options),
            vary_accept: false,
        }
    }

    /// URLs of watermark images the caller must fetch before `run`: the `/watermarkimage`
    /// image, or every `watermarkImage` step's, each once, in order.
    pub fn watermark_urls(&self) -> Vec<&str> {
        let options: Vec<&Options> = match &self.kind {
            PlanKind::Transform(options) => vec![options],
            PlanKind::Pipeline(steps) => steps.iter().map(|step| &step.options).collect(),
            PlanKind::Info | PlanKind::AutoRotate => Vec::new(),
        };
        let mut urls: Vec<&str> = Vec::new();
        for watermark in options
            .into_iter()
            .filter_map(|o| o.image_watermark.as_ref())
        {
            if !urls.contains(&watermark.url.as_str()) {
                urls.push(&watermark.url);
            }
        }
        urls
    }
}

// ---------------------------------------------------------------------------------------------
// The output format asked for

/// The output format a request or a pipeline step asks for, before the endpoint's rules.
#[derive(Clone, Debug, PartialEq)]
enum Requested {
    /// No `type` (or `auto` with nothing negotiable): keep the input format.
    Keep,
    Format(ImageType),
    /// A `type` no format answers to (pipeline steps only; the query rejects it earlier).
    Unknown(String),
}

impl Requested {
    /// What every endpoint but `convert` makes of it: an unknown name keeps the input format.
    fn output(&self) -> Option<ImageType> {
        match self {
            Requested::Format(format) => Some(*format),
            Requested::Keep | Requested::Unknown(_) => None,
        }
    }
}

/// The query's `type` (spec §8.1, §8.2). `auto` without a match keeps the input format, which
/// `/convert` then reports as a missing type, as imaginary does.
fn requested_by_query(params: &Params, accept: Option<&str>) -> Requested {
    let format = match params.type_ {
        None => None,
        Some(TypeParam::Fixed(format)) => Some(format),
        Some(TypeParam::Auto) => negotiate(accept),
    };
    format.map_or(Requested::Keep, Requested::Format)
}

/// A pipeline step's `type`: not negotiated; `auto` and unknown names are unknown (spec §8.1).
fn requested_by_step(params: &Params) -> Requested {
    match parse_type(&params.type_raw) {
        Ok(None) => Requested::Keep,
        Ok(Some(TypeParam::Fixed(format))) => Requested::Format(format),
        Ok(Some(TypeParam::Auto)) | Err(()) => Requested::Unknown(params.type_raw.clone()),
    }
}

// ---------------------------------------------------------------------------------------------
// Endpoints (spec §7)

fn missing(message: &str) -> OpError {
    OpError::Process(message.to_string())
}

/// One endpoint's required-param check and forced options.
fn endpoint_options(
    endpoint: Endpoint,
    p: &Params,
    requested: Requested,
) -> Result<Options, OpError> {
    if p.sigma > MAX_SIGMA {
        return Err(OpError::Process(format!(
            "sigma {} is above the maximum of {MAX_SIGMA}",
            p.sigma
        )));
    }
    if p.text.len() > MAX_WATERMARK_TEXT {
        return Err(OpError::Process(format!(
            "watermark text of {} bytes is above the maximum of {MAX_WATERMARK_TEXT}",
            p.text.len()
        )));
    }
    let mut o = shared_options(p, requested.output());
    let (width, height) = (count(p.width), count(p.height));
    let width_or_height = width > 0 || height > 0;
    let width_and_height = width > 0 && height > 0;
    match endpoint {
        Endpoint::Resize => {
            if !width_or_height {
                return Err(missing("Missing required param: height or width"));
            }
            o.embed = true;
            // Only when present: `nocrop=` and `nocrop=false` turn cropping on.
            if let Some(nocrop) = p.nocrop {
                o.crop = !nocrop;
            }
        }
        Endpoint::Fit => {
            if !width_and_height {
                return Err(missing("Missing required params: height, width"));
            }
            // width × height is the box; the run step computes the fit size once it knows the
            // image's size and orientation (spec §7 /fit).
            o.embed = true;
        }
        Endpoint::Enlarge => {
            if !width_and_height {
                return Err(missing("Missing required params: height, width"));
            }
            o.enlarge = true;
            // Both sizes are required, so cropping is on unless asked otherwise.
            o.crop = !p.nocrop.unwrap_or(false);
        }
        Endpoint::Extract => {
            if count(p.areawidth) == 0 || count(p.areaheight) == 0 {
                return Err(missing("Missing required params: areawidth or areaheight"));
            }
            set_area(&mut o, p);
        }
        Endpoint::Crop => {
            if !width_or_height {
                return Err(missing("Missing required param: height or width"));
            }
            o.crop = true;
        }
        Endpoint::SmartCrop => {
            if !width_or_height {
                return Err(missing("Missing required param: height or width"));
            }
            o.crop = true;
            o.gravity = Gravity::Smart;
        }
        Endpoint::Rotate => {
            // Checked before normalisation: `rotate=45` passes and then rotates by 0.
            if p.rotate == 0 {
                return Err(missing("Missing required param: rotate"));
            }
        }
        Endpoint::Flip => o.flip = true,
        Endpoint::Flop => o.flop = true,
        Endpoint::Thumbnail => {
            if !width_or_height {
                return Err(missing("Missing required params: width or height"));
            }
        }
        Endpoint::Zoom => {
            let factor = count(p.factor);
            if factor == 0 {
                return Err(missing("Missing required param: factor"));
            }
            if count(p.top) > 0 || count(p.left) > 0 {
                if count(p.areawidth) == 0 && count(p.areaheight) == 0 {
                    return Err(missing("Missing required params: areawidth, areaheight"));
                }
                set_area(&mut o, p);
                if let Some(nocrop) = p.nocrop {
                    o.crop = !nocrop;
                }
            }
            o.zoom = factor;
        }
        Endpoint::Convert => {
            o.output = match requested {
                Requested::Format(format) => Some(format),
                Requested::Keep => return Err(missing("Missing required param: type")),
                Requested::Unknown(name) => {
                    return Err(OpError::Process(format!("Invalid image type: {name}")))
                }
            };
        }
        Endpoint::Watermark => {
            if p.text.is_empty() {
                return Err(missing("Missing required param: text"));
            }
            o.text_watermark = Some(text_watermark(p));
        }
        Endpoint::WatermarkImage => {
            if p.image.is_empty() {
                return Err(missing("Missing required param: image"));
            }
            o.image_watermark = Some(image_watermark(p));
        }
        Endpoint::Blur => {
            if !(p.sigma > 0.0 || p.minampl > 0.0) {
                return Err(missing("Missing required param: sigma or minampl"));
            }
        }
        // Not transforms: `Plan::new` and `pipeline_steps` handle them before calling here.
        Endpoint::Info | Endpoint::AutoRotate | Endpoint::Pipeline => {}
    }
    Ok(o)
}

/// The options every endpoint shares (imaginary's `BimgOptions`), with imaginary's defaults
/// applied. `top`/`left`/`area*` are not among them: only /extract and /zoom use them as an
/// area (and /watermarkimage as a position).
fn shared_options(p: &Params, output: Option<ImageType>) -> Options {
    let (width, height) = p.aspect_ratio_applied();
    let blur = p.sigma > 0.0 || p.minampl > 0.0;
    Options {
        width: count(width),
        height: count(height),
        embed: p.embed,
        force: p.force,
        gravity: p.gravity,
        extend: p.extend,
        background: p.background,
        rotate: normalise_rotation(p.rotate),
        rotate_requested: p.rotate != 0,
        flip: p.flip,
        flop: p.flop,
        no_auto_rotate: p.norotation,
        sigma: if blur { p.sigma.max(0.0) } else { 0.0 },
        min_ampl: if blur { p.minampl.max(0.0) } else { 0.0 },
        quality: or_default(count(p.quality), DEFAULT_QUALITY),
        compression: or_default(count(p.compression), DEFAULT_COMPRESSION),
        // bimg's `applyDefaults`: palette quantisation forces speed 3 (effort 7, libvips'
        // default) whatever `speed` says.
        speed: if p.palette { 3 } else { count(p.speed) },
        interlace: p.interlace,
        palette: p.palette,
        strip_metadata: p.stripmeta,
        no_profile: p.noprofile,
        grayscale: p.grayscale,
        output,
        ..Options::default()
    }
}

fn set_area(o: &mut Options, p: &Params) {
    o.top = count(p.top);
    o.left = count(p.left);
    o.area_width = count(p.areawidth);
    o.area_height = count(p.areaheight);
}

/// /watermark's text (spec §7): font `sans 10`, 150 dpi, opacity 0 → 0.25 and above 1 → 1,
/// `color` only when it has three items (else black). Width 0 and margin 0 are resolved at run
/// time (they need the image width).
fn text_watermark(p: &Params) -> TextWatermark {
    let font = if p.font.is_empty() {
        DEFAULT_FONT
    } else {
        &p.font
    };
    let color = match p.color.as_deref() {
        Some([r, g, b, ..]) => [*r, *g, *b],
        _ => [0, 0, 0],
    };
    TextWatermark {
        text: p.text.clone(),
        font: font.to_string(),
        width: count(p.textwidth),
        dpi: or_default(count(p.dpi), DEFAULT_DPI),
        margin: count(p.margin),
        opacity: opacity(p.opacity, DEFAULT_TEXT_OPACITY),
        no_replicate: p.noreplicate,
        color,
    }
}

/// /watermarkimage's overlay (spec §7): at (left, top), opacity 0 → 1.
fn image_watermark(p: &Params) -> ImageWatermark {
    ImageWatermark {
        url: p.image.clone(),
        left: offset(p.left),
        top: offset(p.top),
        opacity: opacity(p.opacity, 1.0),
    }
}

/// 0 → `default`, above 1 → 1.
///
/// FIX: a negative opacity (only a `/pipeline` JSON number can carry one) counts as 0 instead
/// of reaching libvips.
fn opacity(value: f64, default: f64) -> f64 {
    if value <= 0.0 {
        default
    } else {
        value.min(1.0)
    }
}

/// The angle to rotate by, clockwise: a multiple of 90 below 360 (spec §9.2).
///
/// imaginary (bimg) computes `r − r mod 90` and caps it at 270, so `rotate=360` and `450` turn
/// by 270. FIX: we normalise modulo 360 (360 → 0, 450 → 90), which is what a full turn means.
/// A negative angle (only from `/pipeline` JSON) turns counter-clockwise: −90 → 270.
pub fn normalise_rotation(angle: i64) -> u32 {
    let angle = angle.rem_euclid(360);
    (angle - angle % 90) as u32
}

/// A size, offset or count for libvips. Negative values (only `/pipeline` JSON numbers keep
/// their sign, spec §9.6) count as 0, which is also how imaginary's checks (`width > 0`) and
/// bimg's geometry treat them.
fn count(value: i64) -> u32 {
    u32::try_from(value.max(0)).unwrap_or(u32::MAX)
}

/// A watermark position: may be negative (placed partly outside, then clipped).
fn offset(value: i64) -> i32 {
    i32::try_from(value).unwrap_or(if value < 0 { i32::MIN } else { i32::MAX })
}

fn or_default(value: u32, default: u32) -> u32 {
    if value == 0 {
        default
    } else {
        value
    }
}

// ---------------------------------------------------------------------------------------------
// /pipeline (spec §9.6)

/// The checked steps. A step whose own rules fail (e.g. `resize` without a size) would fail
/// when run: with `ignore_failure` imaginary drops that error and keeps the previous image,
/// which is what leaving the step out does; without it the request fails, and we fail it now.
fn pipeline_steps(params: &Params) -> Result<Vec<PipelineStep>, OpError> {
    let mut planned = Vec::new();
    for step in pipeline::steps(params.operations.as_deref().unwrap_or(""))? {
        let options = match step.endpoint {
            // Like /autorotate: no params apply, the input format is kept (spec §7).
            Endpoint::AutoRotate => Ok(shared_options(&Params::default(), None)),
            endpoint => endpoint_options(endpoint, &step.params, requested_by_step(&step.params)),
        };
        match options {
            Ok(options) => planned.push(PipelineStep {
                endpoint: step.endpoint,
                ignore_failure: step.ignore_failure,
                options,
            }),
            Err(_) if step.ignore_failure => {}
            Err(error) => return Err(error),
        }
    }
    Ok(planned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::options::Extend;

    fn plan(endpoint: Endpoint, query: &str) -> Result<Plan, OpError> {
        let params = Params::from_query(query).unwrap_or_else(|e| panic!("{query:?}: {e}"));
        Plan::new(endpoint, &params, None)
    }

    fn options(endpoint: Endpoint, query: &str) -> Options {
        match plan(endpoint, query) {
            Ok(Plan {
                kind: PlanKind::Transform(options),
                ..
            }) => options,
            other => panic!("{endpoint:?} {query:?}: expected a transform, got {other:?}"),
        }
    }

    fn error(endpoint: Endpoint, query: &str) -> String {
        match plan(endpoint, query) {
            Err(OpError::Process(message)) => message,
            other => panic!("{endpoint:?} {query:?}: expected a processing error, got {other:?}"),
        }
    }

    fn pipeline(json: &str) -> Result<Vec<PipelineStep>, OpError> {
        let params = Params {
            operations: Some(json.to_string()),
            ..Params::default()
        };
        match Plan::new(Endpoint::Pipeline, &params, Some("image/webp"))? {
            Plan {
                kind: PlanKind::Pipeline(steps),
                vary_accept: false,
                ..
            } => Ok(steps),
            other => panic!("expected pipeline steps without Vary, got {other:?}"),
        }
    }

    // --- shared options and defaults ---

    #[test]
    fn imaginary_defaults() {
        let o = options(Endpoint::Thumbnail, "width=100");
        assert_eq!((o.quality, o.compression), (75, 6));
        assert_eq!((o.width, o.height), (100, 0));
        assert_eq!(o.extend, Extend::Copy);
        assert_eq!(o.output, None);
        assert!(!o.crop && !o.embed && !o.enlarge && !o.force);
    }

    #[test]
    fn params_map_onto_options() {
        let o = options(
            Endpoint::Thumbnail,
            "width=10&quality=90&compression=9&speed=4&flip=1&flop=1&norotation=1&noprofile=1\
             &stripmeta=1&interlace=1&palette=1&colorspace=bw&gravity=north&extend=black\
             &background=1,2,3&force=1&embed=1&type=png",
        );
        assert_eq!((o.quality, o.compression, o.speed), (90, 9, 3));
        assert!(o.flip && o.flop && o.no_auto_rotate && o.no_profile && o.strip_metadata);
        assert!(o.interlace && o.palette && o.grayscale && o.force && o.embed);
        assert_eq!((o.gravity, o.extend), (Gravity::North, Extend::Black));
        assert_eq!(o.background, Some([1, 2, 3]));
        assert_eq!(o.output, Some(ImageType::Png));
    }

    #[test]
    fn palette_forces_speed_3() {
        assert_eq!(options(Endpoint::Flip, "speed=4").speed, 4);
        assert_eq!(options(Endpoint::Flip, "speed=4&palette=false").speed, 3);
    }

    #[test]
    fn area_params_only_matter_to_extract_and_zoom() {
        let o = options(
            Endpoint::Thumbnail,
            "width=10&top=5&left=6&areawidth=7&areaheight=8",
        );
        assert_eq!((o.top, o.left, o.area_width, o.area_height), (0, 0, 0, 0));
    }

    #[test]
    fn blur_applies_on_any_endpoint_when_positive() {
        let o = options(Endpoint::Flip, "sigma=2&minampl=0.5");
        assert_eq!((o.sigma, o.min_ampl), (2.0, 0.5));
        let o = options(Endpoint::Flip, "minampl=0");
        assert_eq!((o.sigma, o.min_ampl), (0.0, 0.0));
    }

    #[test]
    fn plan_uses_the_aspect_ratio() {
        let o = options(Endpoint::Resize, "width=300&aspectratio=16:9");
        assert_eq!((o.width, o.height), (300, 162));
    }

    // --- rotation (spec §9.2) ---

    #[test]
    fn rotation_rounds_down_to_a_multiple_of_90() {
        assert_eq!(normalise_rotation(0), 0);
        assert_eq!(normalise_rotation(45), 0);
        assert_eq!(normalise_rotation(90), 90);
        assert_eq!(normalise_rotation(100), 90);
        assert_eq!(normalise_rotation(180), 180);
        assert_eq!(normalise_rotation(270), 270);
        assert_eq!(normalise_rotation(359), 270);
    }

    #[test]
    fn fix_rotation_wraps_at_360() {
        assert_eq!(normalise_rotation(360), 0);
        assert_eq!(normalise_rotation(450), 90);
        assert_eq!(normalise_rotation(720), 0);
        assert_eq!(normalise_rotation(-90), 270);
        assert_eq!(normalise_rotation(-45), 270);
        assert_eq!(
            normalise_rotation(i64::MIN),
            normalise_rotation(i64::MIN.rem_euclid(360))
        );
    }

    #[test]
    fn the_raw_rotate_param_is_remembered() {
        let o = options(Endpoint::Rotate, "rotate=360");
        assert_eq!((o.rotate, o.rotate_requested), (0, true));
        let o = options(Endpoint::Rotate, "rotate=-90");
        assert_eq!((o.rotate, o.rotate_requested), (90, true));
        let o = options(Endpoint::Flip, "");
        assert_eq!((o.rotate, o.rotate_requested), (0, false));
    }

    // --- required params and forced options, endpoint by endpoint (spec §7) ---

    #[test]
    fn resize() {
        assert_eq!(
            error(Endpoint::Resize, ""),
            "Missing required param: height or width"
        );
        let o = options(Endpoint::Resize, "height=200");
        assert!(o.embed && !o.crop);
        assert!(options(Endpoint::Resize, "width=1&nocrop=false").crop);
        assert!(options(Endpoint::Resize, "width=1&nocrop=").crop);
        assert!(!options(Endpoint::Resize, "width=1&nocrop=true").crop);
    }

    #[test]
    fn fit() {
        assert_eq!(
            error(Endpoint::Fit, "width=300"),
            "Missing required params: height, width"
        );
        assert_eq!(
            error(Endpoint::Fit, "height=300"),
            "Missing required params: height, width"
        );
        let o = options(Endpoint::Fit, "width=300&height=200&norotation=true");
        assert_eq!(
            (o.width, o.height, o.embed, o.no_auto_rotate),
            (300, 200, true, true)
        );
    }

    #[test]
    fn enlarge() {
        assert_eq!(
            error(Endpoint::Enlarge, "width=300"),
            "Missing required params: height, width"
        );
        let o = options(Endpoint::Enlarge, "width=300&height=200");
        assert!(o.enlarge && o.crop);
        assert!(!options(Endpoint::Enlarge, "width=300&height=200&nocrop=1").crop);
    }

    #[test]
    fn extract() {
        let message = "Missing required params: areawidth or areaheight";
        assert_eq!(error(Endpoint::Extract, "areawidth=10"), message);
        assert_eq!(error(Endpoint::Extract, "areaheight=10"), message);
        let o = options(
            Endpoint::Extract,
            "top=100&left=50&areawidth=300&areaheight=150",
        );
        assert_eq!(
            (o.top, o.left, o.area_width, o.area_height),
            (100, 50, 300, 150)
        );
    }

    #[test]
    fn crop_and_smartcrop() {
        assert_eq!(
            error(Endpoint::Crop, "quality=95"),
            "Missing required param: height or width"
        );
        assert_eq!(
            error(Endpoint::SmartCrop, ""),
            "Missing required param: height or width"
        );
        let o = options(Endpoint::Crop, "width=300&gravity=south");
        assert!(o.crop);
        assert_eq!(o.gravity, Gravity::South);
        let o = options(Endpoint::SmartCrop, "width=300&gravity=south");
        assert!(o.crop);
        assert_eq!(o.gravity, Gravity::Smart);
    }

    #[test]
    fn rotate() {
        assert_eq!(
            error(Endpoint::Rotate, ""),
            "Missing required param: rotate"
        );
        assert_eq!(
            error(Endpoint::Rotate, "rotate=0.4"),
            "Missing required param: rotate"
        );
        assert_eq!(options(Endpoint::Rotate, "rotate=180").rotate, 180);
        // Passes the check, then rotates by nothing.
        assert_eq!(options(Endpoint::Rotate, "rotate=45").rotate, 0);
    }

    #[test]
    fn flip_and_flop_are_forced() {
        assert!(options(Endpoint::Flip, "flip=false").flip);
        assert!(options(Endpoint::Flop, "flop=false").flop);
        assert!(!options(Endpoint::Flop, "").flip);
    }

    #[test]
    fn thumbnail() {
        assert_eq!(
            error(Endpoint::Thumbnail, ""),
            "Missing required params: width or height"
        );
        let o = options(Endpoint::Thumbnail, "height=100");
        assert!(!o.crop && !o.embed && !o.force);
    }

    #[test]
    fn zoom() {
        assert_eq!(error(Endpoint::Zoom, ""), "Missing required param: factor");
        let o = options(Endpoint::Zoom, "factor=2&areawidth=300");
        assert_eq!((o.zoom, o.area_width, o.crop), (2, 0, false));
        assert_eq!(
            error(Endpoint::Zoom, "factor=2&top=80"),
            "Missing required params: areawidth, areaheight"
        );
        let o = options(
            Endpoint::Zoom,
            "factor=2&areawidth=300&top=80&left=80&nocrop=false",
        );
        assert_eq!(
            (o.zoom, o.top, o.left, o.area_width, o.area_height),
            (2, 80, 80, 300, 0)
        );
        assert!(o.crop);
        assert!(!options(Endpoint::Zoom, "factor=2&areaheight=3&left=1").crop);
    }

    #[test]
    fn convert() {
        assert_eq!(error(Endpoint::Convert, ""), "Missing required param: type");
        assert_eq!(
            options(Endpoint::Convert, "type=png").output,
            Some(ImageType::Png)
        );
        // Passes here; fails at encode (spec §8.1).
        assert_eq!(
            options(Endpoint::Convert, "type=svg").output,
            Some(ImageType::Svg)
        );
    }

    #[test]
    fn convert_with_auto_and_nothing_negotiable_is_missing_a_type() {
        let params = Params::from_query("type=auto").unwrap();
        let plan = Plan::new(Endpoint::Convert, &params, Some("image/avif"));
        assert_eq!(
            plan,
            Err(OpError::Process("Missing required param: type".into()))
        );
        assert!(Plan::varies_on_accept(Endpoint::Convert, &params));
    }

    #[test]
    fn work_bounds() {
        assert!(error(Endpoint::Blur, "sigma=1001").contains("sigma 1001 is above the maximum"));
        assert_eq!(options(Endpoint::Blur, "sigma=1000").sigma, 1000.0);
        let long = format!("text={}", "a".repeat(MAX_WATERMARK_TEXT + 1));
        assert!(error(Endpoint::Watermark, &long).contains("watermark text of 2001 bytes"));
    }

    #[test]
    fn watermark_text_defaults() {
        assert_eq!(
            error(Endpoint::Watermark, "font=x"),
            "Missing required param: text"
        );
        let watermark = options(Endpoint::Watermark, "text=Hello")
            .text_watermark
            .unwrap();
        assert_eq!(
            watermark,
            TextWatermark {
                text: "Hello".into(),
                font: "sans 10".into(),
                width: 0,
                dpi: 150,
                margin: 0,
                opacity: 0.25,
                no_replicate: false,
                color: [0, 0, 0],
            }
        );
    }

    #[test]
    fn watermark_text_as_given() {
        let query = "textwidth=100&text=Hello&font=sans%2012&opacity=0.5&color=255,200,50\
                     &dpi=72&margin=5&noreplicate=1";
        let watermark = options(Endpoint::Watermark, query).text_watermark.unwrap();
        assert_eq!(watermark.font, "sans 12");
        assert_eq!(
            (watermark.width, watermark.dpi, watermark.margin),
            (100, 72, 5)
        );
        assert_eq!((watermark.opacity, watermark.color), (0.5, [255, 200, 50]));
        assert!(watermark.no_replicate);
    }

    #[test]
    fn watermark_text_opacity_is_capped_and_short_colors_are_black() {
        let watermark = options(Endpoint::Watermark, "text=a&opacity=3&color=255,0")
            .text_watermark
            .unwrap();
        assert_eq!((watermark.opacity, watermark.color), (1.0, [0, 0, 0]));
    }

    #[test]
    fn watermark_image() {
        assert_eq!(
            error(Endpoint::WatermarkImage, "left=3"),
            "Missing required param: image"
        );
        let o = options(
            Endpoint::WatermarkImage,
            "image=http%3A%2F%2Fh%2Fw.png&left=10&top=20",
        );
        assert_eq!(
            o.image_watermark,
            Some(ImageWatermark {
                url: "http://h/w.png".into(),
                left: 10,
                top: 20,
                opacity: 1.0
            })
        );
        // left/top position the watermark; they are not an extract area.
        assert_eq!((o.top, o.left), (0, 0));
        let plan = plan(
            Endpoint::WatermarkImage,
            "image=http%3A%2F%2Fh%2Fw.png&opacity=0.3",
        )
        .unwrap();
        assert_eq!(plan.watermark_urls(), ["http://h/w.png"]);
    }

    #[test]
    fn blur() {
        assert_eq!(
            error(Endpoint::Blur, "sigma=0"),
            "Missing required param: sigma or minampl"
        );
        assert_eq!(
            options(Endpoint::Blur, "sigma=15.0&minampl=0.2").sigma,
            15.0
        );
        assert_eq!(options(Endpoint::Blur, "minampl=0.2").min_ampl, 0.2);
    }

    #[test]
    fn info_and_autorotate_need_nothing() {
        assert_eq!(
            plan(Endpoint::Info, "type=png").unwrap().kind,
            PlanKind::Info
        );
        assert_eq!(
            plan(Endpoint::AutoRotate, "width=5").unwrap().kind,
            PlanKind::AutoRotate
        );
    }

    // --- output format and Vary (spec §8) ---

    #[test]
    fn no_type_keeps_the_input_format() {
        assert_eq!(options(Endpoint::Flip, "").output, None);
        assert!(!plan(Endpoint::Flip, "").unwrap().vary_accept);
    }

    #[test]
    fn auto_negotiates_and_varies() {
        let params = Params::from_query("type=auto&width=10").unwrap();
        let plan = Plan::new(
            Endpoint::Resize,
            &params,
            Some("image/avif,image/webp;q=0.9,image/jpeg"),
        )
        .unwrap();
        assert!(plan.vary_accept);
        match plan.kind {
            PlanKind::Transform(o) => assert_eq!(o.output, Some(ImageType::Jpeg)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn auto_without_a_match_keeps_the_input_format_but_still_varies() {
        let params = Params::from_query("type=auto&width=10").unwrap();
        let plan = Plan::new(Endpoint::Resize, &params, Some("*/*")).unwrap();
        assert!(plan.vary_accept);
        assert_eq!(
            plan.kind,
            PlanKind::Transform(options(Endpoint::Resize, "width=10"))
        );
    }

    #[test]
    fn fix_no_vary_where_the_negotiated_type_is_unused() {
        let params =
            Params::from_query("type=auto&operations=%5B%7B%22operation%22%3A%22flip%22%7D%5D")
                .unwrap();
        for endpoint in [Endpoint::Pipeline, Endpoint::Info, Endpoint::AutoRotate] {
            let plan = Plan::new(endpoint, &params, Some("image/webp")).unwrap();
            assert!(!plan.vary_accept, "{endpoint:?}");
        }
    }

    // --- pipeline (spec §9.6) ---

    #[test]
    fn pipeline_steps_follow_their_endpoint_rules() {
        let steps = pipeline(
            r#"[{"operation": "crop", "params": {"width": 300, "height": 260}},
                {"operation": "convert", "params": {"type": "webp"}}]"#,
        )
        .unwrap();
        assert_eq!(steps.len(), 2);
        assert_eq!(steps[0].endpoint, Endpoint::Crop);
        assert!(steps[0].options.crop);
        assert_eq!(
            (steps[0].options.width, steps[0].options.height),
            (300, 260)
        );
        assert_eq!(steps[0].options.output, None);
        assert_eq!(steps[1].options.output, Some(ImageType::Webp));
    }

    #[test]
    fn pipeline_nextcloud_preview() {
        let steps = pipeline(
            r#"[{"operation":"autorotate"},{"operation":"fit","params":{"width":256,"height":256,
                "stripmeta":"true","type":"webp","norotation":"true","quality":"80"}}]"#,
        )
        .unwrap();
        assert_eq!(steps[0].endpoint, Endpoint::AutoRotate);
        assert_eq!(steps[0].options.output, None);
        let fit = &steps[1].options;
        assert_eq!((fit.width, fit.height, fit.quality), (256, 256, 80));
        assert!(fit.embed && fit.strip_metadata && fit.no_auto_rotate);
        assert_eq!(fit.output, Some(ImageType::Webp));
    }

    #[test]
    fn pipeline_step_type_is_not_negotiated_and_unknown_names_keep_the_format() {
        let steps = pipeline(
            r#"[{"operation":"resize","params":{"width":10,"type":"auto"}},
                {"operation":"resize","params":{"width":10,"type":"jpg"}}]"#,
        )
        .unwrap();
        assert_eq!(
            (steps[0].options.output, steps[1].options.output),
            (None, None)
        );
    }

    #[test]
    fn pipeline_convert_reports_invalid_types() {
        let invalid = |t: &str| {
            pipeline(&format!(
                r#"[{{"operation":"convert","params":{{"type":"{t}"}}}}]"#
            ))
        };
        assert_eq!(
            invalid("jpg"),
            Err(OpError::Process("Invalid image type: jpg".into()))
        );
        assert_eq!(
            invalid("auto"),
            Err(OpError::Process("Invalid image type: auto".into()))
        );
        assert_eq!(
            invalid(""),
            Err(OpError::Process("Missing required param: type".into()))
        );
        assert_eq!(
            pipeline(r#"[{"operation":"convert"}]"#),
            Err(OpError::Process("Missing required param: type".into()))
        );
    }

    #[test]
    fn pipeline_steps_that_would_fail_are_dropped_when_ignored() {
        let steps = pipeline(
            r#"[{"operation":"resize","ignore_failure":true},
                {"operation":"flip"}]"#,
        )
        .unwrap();
        assert_eq!(steps.len(), 1);
        assert_eq!(steps[0].endpoint, Endpoint::Flip);
        // All ignored away: the input comes back as it is.
        assert_eq!(
            pipeline(r#"[{"operation":"blur","ignore_failure":true}]"#),
            Ok(vec![])
        );
    }

    #[test]
    fn pipeline_steps_that_would_fail_fail_the_request() {
        assert_eq!(
            pipeline(r#"[{"operation":"flip"},{"operation":"zoom"}]"#),
            Err(OpError::Process("Missing required param: factor".into()))
        );
    }

    #[test]
    fn pipeline_param_errors_are_not_ignorable() {
        let result =
            pipeline(r#"[{"operation":"resize","ignore_failure":true,"params":{"width":true}}]"#);
        assert!(
            matches!(result, Err(OpError::Process(ref m)) if m.contains(r#""width""#)),
            "{result:?}"
        );
    }

    #[test]
    fn pipeline_counts() {
        assert_eq!(
            pipeline(""),
            Err(OpError::Process(
                "Missing or invalid pipeline operations JSON".into()
            ))
        );
        let eleven = format!("[{}]", [r#"{"operation":"flip"}"#; 11].join(","));
        assert_eq!(
            pipeline(&eleven),
            Err(OpError::Process(
                "Maximum allowed pipeline operations exceeded".into()
            ))
        );
    }

    #[test]
    fn pipeline_negative_json_numbers_count_as_zero() {
        let steps = pipeline(
            r#"[{"operation":"watermarkImage","params":{"image":"http://h/w.png","left":-5,"opacity":-1}},
                {"operation":"resize","params":{"width":-300,"height":20}},
                {"operation":"rotate","params":{"rotate":-90}}]"#,
        )
        .unwrap();
        let watermark = steps[0].options.image_watermark.as_ref().unwrap();
        assert_eq!((watermark.left, watermark.opacity), (-5, 1.0));
        assert_eq!((steps[1].options.width, steps[1].options.height), (0, 20));
        assert_eq!(steps[2].options.rotate, 270);
        assert_eq!(
            pipeline(r#"[{"operation":"resize","params":{"width":-300}}]"#),
            Err(OpError::Process(
                "Missing required param: height or width".into()
            ))
        );
    }

    #[test]
    fn pipeline_watermark_urls_are_listed_once() {
        let params = Params {
            operations: Some(
                r#"[{"operation":"watermarkImage","params":{"image":"http://h/a.png"}},
                    {"operation":"watermarkImage","params":{"image":"http://h/b.png"}},
                    {"operation":"watermarkImage","params":{"image":"http://h/a.png"}}]"#
                    .into(),
            ),
            ..Params::default()
        };
        let planned = Plan::new(Endpoint::Pipeline, &params, None).unwrap();
        assert_eq!(
            planned.watermark_urls(),
            ["http://h/a.png", "http://h/b.png"]
        );
        assert!(plan(Endpoint::Flip, "")
            .unwrap()
            .watermark_urls()
            .is_empty());
    }

    // --- hostile input ---

    /// Random queries made of param names, separators, escapes and number syntax: parsing and
    /// planning may fail, but never panic.
    #[test]
    fn random_queries_never_panic() {
        const PIECES: [&str; 40] = [
            "width=",
            "height=",
            "aspectratio=",
            "rotate=",
            "background=",
            "type=",
            "factor=",
            "top=",
            "areawidth=",
            "nocrop=",
            "palette=",
            "operations=",
            "extend=",
            "opacity=",
            "&",
            "=",
            ";",
            "+",
            "%",
            "%2",
            "%zz",
            "%3A",
            "%5B",
            "%7B",
            "%22",
            ":",
            ",",
            "-",
            ".",
            "e",
            "0x",
            "p",
            "_",
            "1",
            "9",
            "0",
            "inf",
            "nan",
            "auto",
            "\u{ff}",
        ];
        let endpoints = [
            Endpoint::Resize,
            Endpoint::Fit,
            Endpoint::Enlarge,
            Endpoint::Extract,
            Endpoint::Crop,
            Endpoint::SmartCrop,
            Endpoint::Rotate,
            Endpoint::AutoRotate,
            Endpoint::Flip,
            Endpoint::Flop,
            Endpoint::Thumbnail,
            Endpoint::Zoom,
            Endpoint::Convert,
            Endpoint::Watermark,
            Endpoint::WatermarkImage,
            Endpoint::Info,
            Endpoint::Blur,
            Endpoint::Pipeline,
        ];
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..20_000 {
            let length = next() % 12;
            let query: String = (0..length)
                .map(|_| PIECES[(next() % 40) as usize])
                .collect();
            if let Ok(params) = Params::from_query(&query) {
                let endpoint = endpoints[(next() % 18) as usize];
                let _ = Plan::new(endpoint, &params, Some("image/webp;q=0.5, image/png"));
            }
        }
    }
}
