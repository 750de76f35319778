//! imgedge: a caching image-CDN edge node, URL-compatible with h2non/imaginary.
//!
//! `main.rs` starts the server; everything it serves lives here so benchmarks and tests can
//! use the same code. See `docs/architecture.md` for the map.

pub mod accesslog;
pub mod cache;
pub mod config;
pub mod error;
pub mod metrics;
pub mod ops;
pub mod policy;
pub mod proxy;
