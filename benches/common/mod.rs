//! Benchmark inputs, generated deterministically (no files to ship, same bytes on every machine).
//!
//! Flat test patterns decode far faster than photographs (JPEG decoding is bound by entropy
//! decoding), so the generator makes something photo-like: a few octaves of value noise for
//! texture, a coloured light gradient, hard-edged shapes for edges, and a little sensor grain.
//! A JPEG at Q85 comes out near 1.6 bits per pixel, in the range of camera photos.
#![allow(dead_code)]

use imgedge::ops::vips::{Image, Saver};

/// Integer hash → [0, 1).
fn hash(x: i64, y: i64, seed: u64) -> f32 {
    let mut h = (x as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (y as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
        ^ seed.wrapping_mul(0x1656_67B1_9E37_79F9);
    h ^= h >> 31;
    h = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94D0_49BB_1331_11EB);
    h ^= h >> 33;
    (h >> 40) as f32 / (1u64 << 24) as f32
}

/// Smooth value noise at (u, v) in lattice units.
fn value_noise(u: f32, v: f32, seed: u64) -> f32 {
    let (x0, y0) = (u.floor(), v.floor());
    let (fx, fy) = (u - x0, v - y0);
    let (sx, sy) = (fx * fx * (3.0 - 2.0 * fx), fy * fy * (3.0 - 2.0 * fy));
    let (x0, y0) = (x0 as i64, y0 as i64);
    let a = hash(x0, y0, seed);
    let b = hash(x0 + 1, y0, seed);
    let c = hash(x0, y0 + 1, seed);
    let d = hash(x0 + 1, y0 + 1, seed);
    let top = a + (b - a) * sx;
    let bottom = c + (d - c) * sx;
    top + (bottom - top) * sy
}

/// Fractal noise in [0, 1): octaves from `cells` lattice cells across the image width up.
fn fbm(x: f32, y: f32, cells: f32, octaves: u32, seed: u64) -> f32 {
    let (mut sum, mut amp, mut norm, mut freq) = (0.0, 1.0, 0.0, cells);
    for o in 0..octaves {
        sum += amp * value_noise(x * freq, y * freq, seed + o as u64);
        norm += amp;
        amp *= 0.55;
        freq *= 2.0;
    }
    sum / norm
}

/// A photo-like `width`×`height` image, 3 bands (RGB) or 4 (RGBA: an opaque subject with a
/// soft edge on a transparent background, like a cut-out product shot or a logo).
pub fn photo_pixels(width: u32, height: u32, bands: u32, seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity((width * height * bands) as usize);
    let aspect = height as f32 / width as f32;
    for j in 0..height {
        let y = j as f32 / width as f32; // same scale on both axes
        for i in 0..width {
            let x = i as f32 / width as f32;
            // texture: resolution-independent octaves, then per-pixel grain
            let t = fbm(x, y, 6.0, 7, seed);
            let detail = fbm(x, y, width as f32 / 16.0, 4, seed + 100);
            let grain = hash(i as i64, j as i64, seed + 7) - 0.5;
            // light: a warm-to-cool gradient
            let light = 0.35 + 0.5 * (1.0 - y / aspect.max(0.01)) * 0.6 + 0.25 * x;
            // shapes: a few discs and bars with hard edges
            let disc = ((x - 0.3).powi(2) + (y - 0.25 * aspect * 2.0).powi(2)).sqrt() < 0.12;
            let bar = ((x * 9.0).fract() < 0.08) && y > 0.55 * aspect;
            let base = if disc {
                [0.85, 0.35, 0.2]
            } else if bar {
                [0.15, 0.15, 0.2]
            } else {
                [0.45 + 0.3 * t, 0.5 + 0.2 * t, 0.55 - 0.2 * t]
            };
            for (c, b) in base.iter().enumerate() {
                let v = b * light * (0.6 + 0.8 * t)
                    + 0.25 * (detail - 0.5)
                    + 0.08 * grain
                    + 0.02 * c as f32;
                out.push((v.clamp(0.0, 1.0) * 255.0 + 0.5) as u8);
            }
            if bands == 4 {
                // an ellipse, feathered over 2 % of the width
                let (dx, dy) = ((x - 0.5) / 0.42, (y - 0.5 * aspect) / (0.42 * aspect));
                let r = (dx * dx + dy * dy).sqrt();
                let a = ((1.0 - r) / 0.05).clamp(0.0, 1.0);
                out.push((a * 255.0 + 0.5) as u8);
            }
        }
    }
    out
}

/// The photo as a libvips image.
pub fn photo(width: u32, height: u32, bands: u32, seed: u64) -> Image {
    Image::from_pixels(
        &photo_pixels(width, height, bands, seed),
        width,
        height,
        bands,
    )
    .expect("from_pixels")
}

pub const JPEG_Q85: Saver = Saver::Jpeg {
    quality: 85,
    interlace: false,
};

/// What a camera or a CMS upload would hold: Q85 baseline JPEG.
pub fn jpeg(width: u32, height: u32, seed: u64) -> Vec<u8> {
    photo(width, height, 3, seed)
        .save(&JPEG_Q85, false)
        .expect("jpegsave")
}

/// An RGBA PNG at libvips' default compression (6).
pub fn png_alpha(width: u32, height: u32, seed: u64) -> Vec<u8> {
    photo(width, height, 4, seed)
        .save(
            &Saver::Png {
                compression: 6,
                interlace: false,
                palette: false,
                quality: 100,
                effort: 7,
            },
            false,
        )
        .expect("pngsave")
}

/// A lossy WebP at Q80.
pub fn webp(width: u32, height: u32, seed: u64) -> Vec<u8> {
    photo(width, height, 3, seed)
        .save(
            &Saver::Webp {
                quality: 80,
                lossless: false,
            },
            false,
        )
        .expect("webpsave")
}

/// The named inputs every benchmark uses (sizes in the names).
pub struct Inputs {
    /// 1920×1080 JPEG (2 MP): a typical web upload.
    pub jpeg_2mp: Vec<u8>,
    /// 4000×3000 JPEG (12 MP): a phone camera photo.
    pub jpeg_12mp: Vec<u8>,
    /// 1200×800 RGBA PNG.
    pub png_alpha: Vec<u8>,
    /// 1920×1080 WebP.
    pub webp_2mp: Vec<u8>,
    /// 400×300 RGBA PNG, for `/watermarkimage`.
    pub logo: Vec<u8>,
}

impl Inputs {
    pub fn generate() -> Inputs {
        Inputs {
            jpeg_2mp: jpeg(1920, 1080, 1),
            jpeg_12mp: jpeg(4000, 3000, 2),
            png_alpha: png_alpha(1200, 800, 3),
            webp_2mp: webp(1920, 1080, 4),
            logo: png_alpha(400, 300, 5),
        }
    }
}
