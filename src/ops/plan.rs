//! From endpoint + params to a validated [`Plan`] (spec §7 required params and forced options).

use super::format::ImageType;
use super::options::{Endpoint, Options};

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

// CONTRACT (filled in by the ops-params work):
// impl Plan {
//     pub fn new(endpoint: Endpoint, params: &Params, accept: Option<&str>) -> Result<Plan, OpError>;
//     /// URLs of watermark images the caller must fetch before `run`.
//     pub fn watermark_urls(&self) -> Vec<&str>;
// }
#[allow(dead_code)]
fn _unused(_: ImageType) {}
