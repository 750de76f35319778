//! The decode-time scaling study of issue 7: how much of a JPEG to decode for a small output.
//!
//! Three ways from a JPEG to a `w`-px-wide image, timed (process CPU time, one at a time) and
//! scored against a full-resolution reference:
//!
//! * `reference`  full decode, then libvips' Lanczos3 resize (the best libvips does);
//! * `thumbnail`  `vips_thumbnail_buffer`: DCT shrink leaving a factor of two for the resize
//!   (1920→300 decodes at 960 px);
//! * `dct`        what `src/ops/load.rs` does: the largest DCT shrink (2/4/8) whose output is
//!   still ≥ the target (1920→300 decodes at 480 px), then Lanczos3 for the rest.
//!
//! Quality: SSIM (Wang et al. 2004: 11×11 Gaussian window, σ = 1.5, on BT.601 luma) and PSNR
//! over RGB, both on the resampled pixels before encoding, so only the resampling differs.
//! SSIM 1 = identical; differences below ~0.005 are generally not visible. The last column
//! scores the Q75 JPEG the server would send (imaginary's default quality) against the same
//! unencoded reference: what a viewer gets.
//!
//! `cargo bench --bench scaling` prints a Markdown table (docs/performance.md has the result).

mod common;

use bytes::Bytes;
use std::time::Duration;

use imgedge::ops::vips::{self, Access, FailOn, Image, Saver};

fn jpeg_shrink(w0: u32, h0: u32, w: u32, h: u32) -> u32 {
    let s = (w0 as f64 / w as f64).min(h0 as f64 / h as f64);
    [8, 4, 2].into_iter().find(|&f| s >= f as f64).unwrap_or(1)
}

fn reference(bytes: &Bytes, w: u32, h: u32) -> Image {
    let img = Image::load(bytes.clone(), Access::Random, FailOn::None).unwrap();
    img.resize_to(w, h).unwrap()
}

fn thumbnail(bytes: &Bytes, w: u32, h: u32) -> Image {
    Image::thumbnail(bytes.clone(), w, h, FailOn::None).unwrap()
}

fn dct(bytes: &Bytes, w: u32, h: u32, w0: u32, h0: u32) -> Image {
    let shrink = jpeg_shrink(w0, h0, w, h);
    let img = Image::load_jpeg_shrunk(bytes.clone(), shrink, FailOn::None).unwrap();
    img.resize_to(w, h).unwrap()
}

/// Process CPU time (all threads: libvips renders on worker threads of its own), so other
/// load on the machine does not count.
fn cpu_now() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime fills the struct.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Median CPU time of `n` runs of `f` (each rendering the pixels to memory).
fn time(n: usize, mut f: impl FnMut() -> Image) -> (Duration, Vec<u8>) {
    let mut times = Vec::with_capacity(n);
    let mut pixels = Vec::new();
    for _ in 0..n {
        let t = cpu_now();
        pixels = f().to_pixels().unwrap();
        vips::thread_shutdown();
        times.push(cpu_now() - t);
    }
    times.sort();
    (times[n / 2], pixels)
}

/// The pixels after what the server does next: a Q75 JPEG (imaginary's default quality).
fn encoded_q75(px: &[u8], w: u32, h: u32) -> Vec<u8> {
    let img = Image::from_pixels(px, w, h, 3).unwrap();
    let jpeg = img
        .save(
            &Saver::Jpeg {
                quality: 75,
                interlace: false,
            },
            false,
        )
        .unwrap();
    Image::load_bytes(&jpeg, Access::Random)
        .unwrap()
        .to_pixels()
        .unwrap()
}

fn luma(rgb: &[u8]) -> Vec<f64> {
    rgb.chunks_exact(3)
        .map(|p| 0.299 * p[0] as f64 + 0.587 * p[1] as f64 + 0.114 * p[2] as f64)
        .collect()
}

/// Separable Gaussian blur (11 taps, σ 1.5), edges clamped.
fn blur(x: &[f64], w: usize, h: usize) -> Vec<f64> {
    let k: Vec<f64> = (-5i32..=5)
        .map(|i| (-(i * i) as f64 / (2.0 * 1.5 * 1.5)).exp())
        .collect();
    let sum: f64 = k.iter().sum();
    let k: Vec<f64> = k.iter().map(|v| v / sum).collect();
    let mut tmp = vec![0.0; w * h];
    for y in 0..h {
        for xx in 0..w {
            tmp[y * w + xx] = (0..11)
                .map(|i| {
                    k[i] * x[y * w + (xx as i64 + i as i64 - 5).clamp(0, w as i64 - 1) as usize]
                })
                .sum();
        }
    }
    let mut out = vec![0.0; w * h];
    for y in 0..h {
        for xx in 0..w {
            out[y * w + xx] = (0..11)
                .map(|i| {
                    k[i] * tmp[(y as i64 + i as i64 - 5).clamp(0, h as i64 - 1) as usize * w + xx]
                })
                .sum();
        }
    }
    out
}

fn ssim(a: &[u8], b: &[u8], w: usize, h: usize) -> f64 {
    let (x, y) = (luma(a), luma(b));
    let mul = |p: &[f64], q: &[f64]| p.iter().zip(q).map(|(u, v)| u * v).collect::<Vec<_>>();
    let (mx, my) = (blur(&x, w, h), blur(&y, w, h));
    let (sxx, syy, sxy) = (
        blur(&mul(&x, &x), w, h),
        blur(&mul(&y, &y), w, h),
        blur(&mul(&x, &y), w, h),
    );
    let (c1, c2) = ((0.01f64 * 255.0).powi(2), (0.03f64 * 255.0).powi(2));
    let mut total = 0.0;
    for i in 0..w * h {
        let (vx, vy, cxy) = (
            sxx[i] - mx[i] * mx[i],
            syy[i] - my[i] * my[i],
            sxy[i] - mx[i] * my[i],
        );
        total += ((2.0 * mx[i] * my[i] + c1) * (2.0 * cxy + c2))
            / ((mx[i] * mx[i] + my[i] * my[i] + c1) * (vx + vy + c2));
    }
    total / (w * h) as f64
}

fn psnr(a: &[u8], b: &[u8]) -> f64 {
    let mse = a
        .iter()
        .zip(b)
        .map(|(&p, &q)| (p as f64 - q as f64).powi(2))
        .sum::<f64>()
        / a.len() as f64;
    if mse == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (255.0f64 * 255.0 / mse).log10()
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` from tooling
    }
    vips::init(1);
    let mut cases: Vec<(String, Bytes)> = vec![
        ("photo 1920×1080".into(), common::jpeg(1920, 1080, 1).into()),
        ("photo 4000×3000".into(), common::jpeg(4000, 3000, 2).into()),
    ];
    if let Ok(b) = std::fs::read("testdata/scene.jpg") {
        cases.push(("testdata/scene.jpg 1600×1067 (flat art)".into(), b.into()));
    }
    let targets = [300u32, 800];
    let runs = 15;

    println!(
        "| input | target | path | decoded at | median CPU ms | SSIM vs reference | PSNR dB | SSIM after Q75 JPEG |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (name, bytes) in &cases {
        let head = Image::load(bytes.clone(), Access::Sequential, FailOn::None).unwrap();
        let (w0, h0) = (head.width(), head.height());
        drop(head);
        for &w in &targets {
            if w * 2 > w0 {
                continue;
            }
            let h = ((h0 as f64 * w as f64 / w0 as f64).round() as u32).max(1);
            let (t_ref, px_ref) = time(5, || reference(bytes, w, h));
            let (t_th, px_th) = time(runs, || thumbnail(bytes, w, h));
            let (t_dct, px_dct) = time(runs, || dct(bytes, w, h, w0, h0));
            let thumb_shrink = {
                let s = (w0 as f64 / w as f64).floor();
                if s >= 16.0 {
                    8
                } else if s >= 8.0 {
                    4
                } else if s >= 4.0 {
                    2
                } else {
                    1
                }
            };
            let dct_shrink = jpeg_shrink(w0, h0, w, h);
            let (wu, hu) = (w as usize, h as usize);
            for (path, t, px, at) in [
                ("reference", t_ref, &px_ref, w0),
                ("thumbnail", t_th, &px_th, w0 / thumb_shrink),
                ("dct (load.rs)", t_dct, &px_dct, w0 / dct_shrink),
            ] {
                println!(
                    "| {name} | {w} px | {path} | {at} px | {:.1} | {:.4} | {:.1} | {:.4} |",
                    t.as_secs_f64() * 1e3,
                    ssim(&px_ref, px, wu, hu),
                    psnr(&px_ref, px),
                    ssim(&px_ref, &encoded_q75(px, w, h), wu, hu),
                );
            }
            println!(
                "| {name} | {w} px | thumbnail vs dct | | | {:.4} | {:.1} | |",
                ssim(&px_th, &px_dct, wu, hu),
                psnr(&px_th, &px_dct)
            );
        }
    }
}
