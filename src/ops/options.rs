//! The typed, validated description of one image transform: what bimg calls `Options`.
//!
//! `plan::Plan::new(endpoint, params)` builds it (endpoint-forced flags, required-param checks,
//! spec §7); `run::run(&Options, &[u8])` executes it with libvips. Nothing here knows HTTP.

use super::format::ImageType;

/// One of imaginary's image endpoints (spec §2.1, §7); also the pipeline operation names (§9.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Resize,
    Fit,
    Enlarge,
    Extract,
    Crop,
    SmartCrop,
    Rotate,
    AutoRotate,
    Flip,
    Flop,
    Thumbnail,
    Zoom,
    Convert,
    Watermark,
    WatermarkImage,
    Info,
    Blur,
    Pipeline,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Gravity {
    #[default]
    Centre,
    North,
    South,
    East,
    West,
    Smart,
}

/// How `embed` fills the canvas (spec §6.2 `extend`, §9.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Extend {
    /// Repeat edge pixels: imaginary's default when the param is absent.
    #[default]
    Copy,
    Mirror,
    Black,
    White,
    /// Fill with `background` (imaginary's `lastpixel` behaves like this too).
    Background,
}

/// A text watermark (spec §7 /watermark).
#[derive(Clone, Debug, PartialEq)]
pub struct TextWatermark {
    pub text: String,
    /// Pango font description; default `sans 10`.
    pub font: String,
    /// 0 → image width / 6 (resolved at run time, needs the image).
    pub width: u32,
    /// default 150
    pub dpi: u32,
    /// 0 → equals width (resolved at run time)
    pub margin: u32,
    /// 0 → 0.25, > 1 → 1 (already resolved)
    pub opacity: f64,
    pub no_replicate: bool,
    /// Default black.
    pub color: [u8; 3],
}

/// An image watermark; the bytes are fetched by the proxy layer (spec §7 /watermarkimage).
#[derive(Clone, Debug, PartialEq)]
pub struct ImageWatermark {
    /// The `image` URL (fetched under the url-source policy by the caller).
    pub url: String,
    pub left: i32,
    pub top: i32,
    /// 0 → 1.0 (already resolved)
    pub opacity: f64,
}

impl Options {
    /// No operation, imaginary's encoder defaults (quality 75, PNG compression 6): the base
    /// that endpoints and tests build on with `..Options::imaginary()`.
    pub fn imaginary() -> Options {
        Options {
            quality: 75,
            compression: 6,
            ..Options::default()
        }
    }
}

/// bimg's option set, with imaginary's defaults already applied.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Options {
    pub width: u32,
    pub height: u32,
    pub area_width: u32,
    pub area_height: u32,
    pub top: u32,
    pub left: u32,
    pub crop: bool,
    pub embed: bool,
    pub enlarge: bool,
    pub force: bool,
    pub gravity: Gravity,
    pub extend: Extend,
    /// RGB; `None` = not given (0,0,0 semantics of bimg).
    pub background: Option<[u8; 3]>,
    /// Already normalised per spec §9.2 (0, 90, 180 or 270).
    pub rotate: u32,
    pub flip: bool,
    pub flop: bool,
    pub no_auto_rotate: bool,
    /// Zoom factor N (image grows N+1 times); 0 = none.
    pub zoom: u32,
    pub sigma: f64,
    pub min_ampl: f64,
    /// 1..=100 expected by libvips; default 75.
    pub quality: u32,
    /// PNG zlib level, default 6.
    pub compression: u32,
    /// PNG effort is 10 − speed; 0 = default.
    pub speed: u32,
    pub interlace: bool,
    pub palette: bool,
    pub strip_metadata: bool,
    pub no_profile: bool,
    /// `colorspace=bw`.
    pub grayscale: bool,
    /// Output format; `None` = same as the input (spec §8.1).
    pub output: Option<ImageType>,
    pub text_watermark: Option<TextWatermark>,
    pub image_watermark: Option<ImageWatermark>,
    /// The `rotate` param was non-zero, even when it normalised to 0 (`rotate=45`, `rotate=360`).
    /// bimg tests the *raw* angle, so then it skips EXIF auto-orientation (spec §9.2) and the
    /// implicit `force` of §9.1 step 1, although `rotate` above is 0. (Added by the params work.)
    pub rotate_requested: bool,
}
