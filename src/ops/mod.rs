//! Images, and nothing else: imaginary's parameters, bimg's geometry, output formats and the
//! libvips layer. A library with no I/O (`Plan + bytes -> Output`) so it can be tested and
//! benchmarked on its own; it knows nothing of HTTP, tokio or caches.
//!
//! The flow: [`params::Params::from_query`] parses the query (spec §6), [`plan::Plan::new`]
//! applies the endpoint's rules (spec §7) and output negotiation (spec §8), [`probe`] reads the
//! image header for the resolution limit, and [`run::run`] executes the plan with libvips.

pub mod format;
pub mod geometry;
pub mod limits;
pub mod options;
pub mod params;
pub mod pipeline;
pub mod plan;
pub mod run;
pub mod vips;

// The run steps behind `run::run`, one file per image step (imgproxy `processing/` style),
// listed in the order `process.rs` applies them.
mod blur;
mod crop;
mod embed;
mod encode;
mod flatten;
mod info;
mod load;
mod orient;
mod process;
mod resize;
mod watermark;
mod zoom;
// Animated GIF/WebP: every frame through the steps above (`animation.rs`).
mod animation;

pub use format::ImageType;
pub use options::{Endpoint, Options};
pub use params::Params;
pub use plan::Plan;
pub use run::{probe, run, run_limited, Header, Output};

/// Why a transform could not be made. Each variant maps to one imaginary error (spec §13).
#[derive(Debug, Clone, PartialEq)]
pub enum OpError {
    /// A query param failed to parse: 400 `Error while processing parameters, error while
    /// processing parameter "<name>" with value "<value>", error: <cause>`.
    Param {
        name: String,
        value: String,
        cause: String,
    },
    /// `type` is not an output format we know: 400 `Unsupported output image format`.
    OutputFormat,
    /// The input is not an image type we decode: 406 `Unsupported media type`.
    UnsupportedMedia,
    /// width·height above `-max-allowed-resolution`: 422 `Image resolution is too big`.
    ResolutionTooBig,
    /// Anything that went wrong while processing (missing required params, libvips errors,
    /// pipeline errors): 400 `Error while processing the image: <message>`.
    Process(String),
}

impl std::fmt::Display for OpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpError::Param { name, value, cause } => write!(
                f,
                "Error while processing parameters, error while processing parameter \"{name}\" with value {}, error: {cause}",
                params::go_quote(value)
            ),
            OpError::OutputFormat => f.write_str("Unsupported output image format"),
            OpError::UnsupportedMedia => f.write_str("Unsupported media type"),
            OpError::ResolutionTooBig => f.write_str("Image resolution is too big"),
            OpError::Process(msg) => write!(f, "Error while processing the image: {msg}"),
        }
    }
}

impl std::error::Error for OpError {}
