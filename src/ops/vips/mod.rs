//! The libvips layer: a safe `Image` over a small C shim.
