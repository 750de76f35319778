//! Every image operation on representative inputs, through the same path the server takes:
//! `Params::from_query` → `Plan::new` → `ops::run` (decode, transform, encode), single-threaded
//! libvips. Plus query parsing on its own.
//!
//! Inputs are generated (benches/common): a 2 MP and a 12 MP JPEG, a 1200×800 RGBA PNG and a
//! 2 MP WebP. Output formats: JPEG, WebP and AVIF where the scenario calls for them.
//!
//! Run all: `cargo bench --bench ops`; one group: `cargo bench --bench ops -- jpeg_2mp/`.
//! Bounded: 10 samples, ~1.5 s of measurement per benchmark (a few minutes on 2 cores).

mod common;

use bytes::Bytes;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use imgedge::ops::vips::{self, Access, FailOn, Image, Saver};
use imgedge::ops::{self, Endpoint, Params, Plan};

fn plan(endpoint: Endpoint, query: &str) -> Plan {
    let params = Params::from_query(query).unwrap_or_else(|e| panic!("{query}: {e}"));
    Plan::new(endpoint, &params, None).unwrap_or_else(|e| panic!("{query}: {e}"))
}

const WATERMARK_URL: &str = "http://bench.invalid/logo.png";

/// (name, endpoint, query) for every endpoint imaginary has, on a 2 MP JPEG.
fn every_operation() -> Vec<(&'static str, Endpoint, String)> {
    let pipeline = percent_encode(
        r#"[{"operation":"crop","params":{"width":800,"height":600}},{"operation":"convert","params":{"type":"webp"}}]"#,
    );
    vec![
        ("resize_300", Endpoint::Resize, "width=300".into()),
        ("resize_800", Endpoint::Resize, "width=800".into()),
        ("fit_400x400", Endpoint::Fit, "width=400&height=400".into()),
        (
            "enlarge_2400x1350",
            Endpoint::Enlarge,
            "width=2400&height=1350".into(),
        ),
        (
            "crop_400x400",
            Endpoint::Crop,
            "width=400&height=400".into(),
        ),
        (
            "smartcrop_400x400",
            Endpoint::SmartCrop,
            "width=400&height=400".into(),
        ),
        (
            "extract_800x600",
            Endpoint::Extract,
            "top=100&left=100&areawidth=800&areaheight=600".into(),
        ),
        ("thumbnail_200", Endpoint::Thumbnail, "width=200".into()),
        ("rotate_90", Endpoint::Rotate, "rotate=90".into()),
        ("autorotate", Endpoint::AutoRotate, String::new()),
        ("flip", Endpoint::Flip, String::new()),
        ("flop", Endpoint::Flop, String::new()),
        ("zoom_2", Endpoint::Zoom, "factor=2&width=400".into()),
        ("blur_5", Endpoint::Blur, "sigma=5".into()),
        ("convert_png", Endpoint::Convert, "type=png".into()),
        ("convert_webp", Endpoint::Convert, "type=webp".into()),
        (
            "watermark_text",
            Endpoint::Watermark,
            "text=imgedge&textwidth=300&opacity=0.5".into(),
        ),
        (
            "watermarkimage",
            Endpoint::WatermarkImage,
            format!(
                "image={}&top=50&left=50&opacity=0.6",
                percent_encode(WATERMARK_URL)
            ),
        ),
        ("info", Endpoint::Info, String::new()),
        (
            "pipeline_crop_webp",
            Endpoint::Pipeline,
            format!("operations={pipeline}"),
        ),
    ]
}

fn percent_encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn bench_operations(c: &mut Criterion) {
    imgedge::ops::vips::init(1);
    let inputs = common::Inputs::generate();
    let watermarks = vec![(WATERMARK_URL.to_string(), inputs.logo.clone())];

    // Every endpoint on the 2 MP JPEG.
    let mut g = c.benchmark_group("jpeg_2mp");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(1500))
        .throughput(Throughput::Elements(1));
    for (name, endpoint, query) in every_operation() {
        let p = plan(endpoint, &query);
        g.bench_function(name, |b| {
            b.iter(|| ops::run(&p, &inputs.jpeg_2mp, &watermarks).expect(name))
        });
    }
    g.finish();

    // The side-by-side scenarios of issue 7 and the output formats, per input.
    let scenarios: Vec<(&str, &[u8], Endpoint, &str)> = vec![
        ("jpeg_2mp", &inputs.jpeg_2mp, Endpoint::Resize, "width=300"),
        (
            "jpeg_2mp",
            &inputs.jpeg_2mp,
            Endpoint::Resize,
            "width=600&type=webp",
        ),
        (
            "jpeg_2mp",
            &inputs.jpeg_2mp,
            Endpoint::Resize,
            "width=600&type=avif",
        ),
        (
            "jpeg_12mp",
            &inputs.jpeg_12mp,
            Endpoint::Resize,
            "width=800",
        ),
        (
            "jpeg_12mp",
            &inputs.jpeg_12mp,
            Endpoint::Resize,
            "width=300",
        ),
        (
            "jpeg_12mp",
            &inputs.jpeg_12mp,
            Endpoint::Resize,
            "width=800&type=webp",
        ),
        (
            "jpeg_12mp",
            &inputs.jpeg_12mp,
            Endpoint::Resize,
            "width=800&type=avif",
        ),
        (
            "jpeg_12mp",
            &inputs.jpeg_12mp,
            Endpoint::SmartCrop,
            "width=800&height=800",
        ),
        (
            "jpeg_12mp",
            &inputs.jpeg_12mp,
            Endpoint::Rotate,
            "rotate=90&width=800",
        ),
        (
            "png_alpha_1200x800",
            &inputs.png_alpha,
            Endpoint::Resize,
            "width=300",
        ),
        (
            "png_alpha_1200x800",
            &inputs.png_alpha,
            Endpoint::Resize,
            "width=300&type=webp",
        ),
        (
            "png_alpha_1200x800",
            &inputs.png_alpha,
            Endpoint::Resize,
            "width=300&type=avif",
        ),
        (
            "png_alpha_1200x800",
            &inputs.png_alpha,
            Endpoint::Convert,
            "type=jpeg",
        ),
        ("webp_2mp", &inputs.webp_2mp, Endpoint::Resize, "width=300"),
        (
            "webp_2mp",
            &inputs.webp_2mp,
            Endpoint::Resize,
            "width=600&type=webp",
        ),
        (
            "webp_2mp",
            &inputs.webp_2mp,
            Endpoint::Resize,
            "width=600&type=avif",
        ),
    ];
    let mut g = c.benchmark_group("scenario");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(1500))
        .throughput(Throughput::Elements(1));
    for (input_name, input, endpoint, query) in scenarios {
        let p = plan(endpoint, query);
        let id = BenchmarkId::new(input_name, format!("{endpoint:?}?{query}").to_lowercase());
        g.bench_with_input(id, input, |b, input| {
            b.iter(|| ops::run(&p, input, &[]).expect(query))
        });
    }
    g.finish();

    // Where the time of the two costliest cold scenarios goes, step by step (single-threaded;
    // each step rendered to memory with `to_pixels`, so the steps add up).
    let mut g = c.benchmark_group("steps");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(1500));
    let png = Bytes::copy_from_slice(&inputs.png_alpha);
    let jpg = Bytes::copy_from_slice(&inputs.jpeg_2mp);
    let render = |img: Image| {
        let px = img.to_pixels().expect("render");
        vips::thread_shutdown();
        px
    };
    g.bench_function("png_alpha/decode", |b| {
        b.iter(|| render(Image::load(png.clone(), Access::Sequential, FailOn::None).unwrap()))
    });
    g.bench_function("png_alpha/decode+resize_300", |b| {
        b.iter(|| {
            let img = Image::load(png.clone(), Access::Sequential, FailOn::None).unwrap();
            render(img.resize_to(300, 200).unwrap())
        })
    });
    g.bench_function("png_alpha/thumbnail_300", |b| {
        b.iter(|| render(Image::thumbnail(png.clone(), 300, 200, FailOn::None).unwrap()))
    });
    let small = Image::load(png.clone(), Access::Random, FailOn::None)
        .unwrap()
        .resize_to(300, 200)
        .unwrap()
        .random_access()
        .unwrap();
    let small = Image::from_pixels(&small.to_pixels().unwrap(), 300, 200, 4).unwrap();
    for (name, saver) in [
        (
            "png_alpha/encode_300_png_bimg",
            Saver::Png {
                compression: 6,
                interlace: false,
                palette: false,
                quality: 75,
                effort: 10,
            },
        ),
        (
            "png_alpha/encode_300_webp",
            Saver::Webp {
                quality: 75,
                lossless: false,
            },
        ),
    ] {
        g.bench_function(name, |b| b.iter(|| small.save(&saver, false).unwrap()));
    }
    // What `ops::load` does: the header, then the pixels at 1/4 by the shim's JPEG reader.
    let shrunk = || {
        Image::load(jpg.clone(), Access::Sequential, FailOn::None)
            .unwrap()
            .jpeg_shrunk(jpg.clone(), 4)
            .unwrap()
    };
    g.bench_function("jpeg_2mp/decode_dct4", |b| b.iter(|| render(shrunk())));
    // libvips' own reader at the same scale, for comparison (the fallback for other JPEGs).
    g.bench_function("jpeg_2mp/decode_dct4_libvips", |b| {
        b.iter(|| render(Image::load_jpeg_shrunk(jpg.clone(), 4, FailOn::None).unwrap()))
    });
    g.bench_function("jpeg_2mp/decode_dct4+resize_300", |b| {
        b.iter(|| render(shrunk().resize_to(300, 169).unwrap()))
    });
    // An image already in memory (rotated, smart-cropped, a pipeline step): libvips 8.14's box
    // pre-shrink is pathologically slow on those (see imgedge_resize in shim.c).
    let in_memory = Image::load(jpg.clone(), Access::Random, FailOn::None)
        .unwrap()
        .random_access()
        .unwrap();
    let in_memory = Image::from_pixels(&in_memory.to_pixels().unwrap(), 1920, 1080, 3).unwrap();
    g.bench_function("jpeg_2mp/in_memory_resize_quarter", |b| {
        b.iter(|| render(in_memory.resize_to(480, 270).unwrap()))
    });
    // reduce.c's SIMD levels on the resizes of the four cold scenarios (decoded sizes):
    // 12 MP at 1/4 → 800, 2 MP at 1/2 → 600 (WebP), at 1/4 → 300, PNG RGBA → 300.
    for (name, (w, h, bands), (tw, th)) in [
        ("1000x750_to_800", (1000, 750, 3), (800, 600)),
        ("960x540_to_600", (960, 540, 3), (600, 338)),
        ("480x270_to_300", (480, 270, 3), (300, 169)),
        ("1200x800_rgba_to_300", (1200, 800, 4), (300, 200)),
    ] {
        let pixels: Vec<u8> = (0..w * h * bands)
            .map(|i| ((i * 7919 + (i / 13) * 131) % 256) as u8)
            .collect();
        let img = Image::from_pixels(&pixels, w as u32, h as u32, bands as u32).unwrap();
        for (level, label) in [(1, "sse2"), (2, "avx2")] {
            if vips::set_reduce_simd(level) != level {
                continue;
            }
            g.bench_function(format!("resize/{name}/{label}"), |b| {
                vips::set_reduce_simd(level);
                b.iter(|| render(img.resize_to(tw, th).unwrap()));
            });
        }
        vips::set_reduce_simd(-1);
    }
    let small = Image::load_jpeg_shrunk(jpg.clone(), 4, FailOn::None)
        .unwrap()
        .resize_to(300, 169)
        .unwrap();
    let small = Image::from_pixels(&small.to_pixels().unwrap(), 300, 169, 3).unwrap();
    g.bench_function("jpeg_2mp/encode_300_jpeg_q75", |b| {
        b.iter(|| {
            small
                .save(
                    &Saver::Jpeg {
                        quality: 75,
                        interlace: false,
                    },
                    false,
                )
                .unwrap()
        })
    });
    g.finish();

    // Header-only probe (the resolution limit check before every transform).
    let mut g = c.benchmark_group("probe");
    g.sample_size(20)
        .measurement_time(Duration::from_millis(500));
    g.bench_function("jpeg_12mp", |b| {
        b.iter(|| ops::probe(&inputs.jpeg_12mp).unwrap())
    });
    g.bench_function("png_alpha", |b| {
        b.iter(|| ops::probe(&inputs.png_alpha).unwrap())
    });
    g.finish();
}

fn bench_params(c: &mut Criterion) {
    let queries = [
        ("short", "width=300"),
        (
            "typical",
            "width=300&height=200&type=webp&quality=80&gravity=smart&stripmeta=true&file=photos/cat.jpg",
        ),
        (
            "long",
            "width=300&height=200&areawidth=100&areaheight=100&top=10&left=10&quality=80&compression=6\
             &rotate=90&factor=2&margin=5&dpi=72&textwidth=100&opacity=0.5&sigma=1.5&minampl=0.2\
             &flip=true&flop=false&force=true&embed=true&nocrop=true&noprofile=true&stripmeta=true\
             &interlace=true&text=hello+world&font=sans+12&color=255,0,0&background=255,255,255\
             &colorspace=bw&gravity=north&extend=mirror&aspectratio=16:9&type=jpeg\
             &url=https%3A%2F%2Fexample.org%2Fimages%2Fcat.jpg",
        ),
    ];
    let mut g = c.benchmark_group("params");
    g.sample_size(30)
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_millis(700));
    for (name, q) in queries {
        g.bench_function(format!("from_query/{name}"), |b| {
            b.iter(|| Params::from_query(std::hint::black_box(q)).unwrap())
        });
        let params = Params::from_query(q).unwrap();
        g.bench_function(format!("plan/{name}"), |b| {
            b.iter(|| Plan::new(Endpoint::Resize, &params, Some("image/avif,image/webp,*/*")))
        });
    }
    g.finish();
}

criterion_group!(benches, bench_params, bench_operations);
criterion_main!(benches);
