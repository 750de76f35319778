//! Every image endpoint of imaginary, against the real binary: output sizes (spec §9.1's table),
//! formats and Content-Types, EXIF orientation, and the formats imaginary could not handle.

mod common;

use common::{enc, sample, testdata, Imgedge, Origin, Resource};
use imagesize::ImageType;
use imgedge::ops::vips::{self, Access, Image, Saver};

fn server() -> Imgedge {
    Imgedge::start(&["-mount", testdata().to_str().unwrap()])
}

/// (path, expected size, expected format) over scene.jpg (1600×1067) and badge.png (800×600).
#[test]
fn sizes_match_imaginarys_geometry() {
    let s = server();
    let cases: &[(&str, (usize, usize), ImageType)] = &[
        ("/enlarge?width=2000&height=1500&file=scene.jpg", (2000, 1500), ImageType::Jpeg),
        ("/enlarge?width=2000&height=1500&nocrop=true&file=scene.jpg", (2000, 1334), ImageType::Jpeg),
        ("/extract?top=10&left=20&areawidth=300&areaheight=200&file=scene.jpg", (300, 200), ImageType::Jpeg),
        ("/smartcrop?width=300&height=300&file=scene.jpg", (300, 300), ImageType::Jpeg),
        ("/crop?width=300&height=300&gravity=north&file=scene.jpg", (300, 300), ImageType::Jpeg),
        ("/rotate?rotate=90&file=scene.jpg", (1067, 1600), ImageType::Jpeg),
        ("/rotate?rotate=90&width=300&file=scene.jpg", (300, 450), ImageType::Jpeg),
        ("/rotate?rotate=180&file=badge.png", (800, 600), ImageType::Png),
        ("/autorotate?file=scene.jpg", (1600, 1067), ImageType::Jpeg),
        ("/flip?file=badge.png", (800, 600), ImageType::Png),
        ("/flop?file=badge.png", (800, 600), ImageType::Png),
        ("/flip?width=100&height=100&file=scene.jpg", (100, 100), ImageType::Jpeg),
        ("/thumbnail?width=100&file=scene.jpg", (100, 67), ImageType::Jpeg),
        ("/zoom?factor=1&file=badge.png", (1600, 1200), ImageType::Png),
        ("/zoom?factor=1&top=10&left=10&areawidth=100&areaheight=100&file=badge.png", (100, 100), ImageType::Png),
        ("/watermark?text=Hello&file=scene.jpg", (1600, 1067), ImageType::Jpeg),
        ("/watermark?text=Hello&textwidth=200&font=sans%20bold%2020&opacity=0.5&color=255,0,0&noreplicate=true&file=badge.png", (800, 600), ImageType::Png),
        ("/blur?sigma=3&file=badge.png", (800, 600), ImageType::Png),
        ("/blur?sigma=3&width=200&file=scene.jpg", (200, 133), ImageType::Jpeg),
        ("/resize?width=300&height=300&gravity=smart&file=scene.jpg", (300, 200), ImageType::Jpeg),
        ("/resize?width=5000&file=scene.jpg", (1600, 1067), ImageType::Jpeg),
        ("/resize?width=300&aspectratio=16:9&file=scene.jpg", (300, 162), ImageType::Jpeg),
        ("/resize?width=300&height=300&extend=white&file=badge.png", (300, 300), ImageType::Png),
        ("/resize?width=300&height=300&background=255,0,0&file=badge.png", (300, 300), ImageType::Png),
        ("/convert?type=png&colorspace=bw&file=scene.jpg", (1600, 1067), ImageType::Png),
        ("/convert?type=png&palette=true&file=badge.png", (800, 600), ImageType::Png),
        ("/convert?type=jpeg&interlace=true&quality=90&file=badge.png", (800, 600), ImageType::Jpeg),
    ];
    for (path, size, format) in cases {
        let r = s.get(path);
        assert_eq!(
            r.status,
            200,
            "{path}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!((r.size(), r.format()), (*size, *format), "{path}");
    }
}

#[test]
fn every_output_format_with_its_content_type() {
    let s = server();
    for (t, ct) in [
        ("jpeg", "image/jpeg"),
        ("png", "image/png"),
        ("webp", "image/webp"),
        ("tiff", "image/tiff"),
        ("gif", "image/gif"),
        ("avif", "image/avif"),
        ("heif", "image/heif"),
    ] {
        let r = s.get(&format!("/resize?width=64&type={t}&file=scene.jpg"));
        assert_eq!(r.status, 200, "{t}: {}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.header("content-type"), Some(ct), "{t}");
        let decoded = vips::read_header(&r.body).unwrap_or_else(|e| panic!("{t}: {e:?}"));
        assert_eq!((decoded.width, decoded.height), (64, 43), "{t}");
    }
    // imaginary's spelling rules: `jpg` is not a type, `JPEG` is.
    assert_eq!(
        s.get("/resize?width=64&type=jpg&file=scene.jpg").error(400),
        "Unsupported output image format"
    );
    assert_eq!(
        s.get("/resize?width=64&type=JPEG&file=scene.jpg")
            .header("content-type"),
        Some("image/jpeg")
    );
    let msg = s.get("/convert?type=svg&file=scene.jpg").error(400);
    assert!(msg.contains("Unsupported image output type"), "{msg}");
}

/// `stripmeta=true` drops the metadata from every format. WebP is the case to watch: Debian
/// 12's libvips (8.14.1) ignores its saver's `strip` and would keep EXIF and XMP; a grey image
/// takes libvips' saver, a colour one the shim's writer, and both must be stripped.
#[test]
fn stripmeta_strips_webp_too() {
    let s = server();
    for source in ["scene.jpg", "badge.png"] {
        for grey in ["", "&colorspace=bw"] {
            let url = |strip: bool| {
                format!("/resize?width=64&type=webp&file={source}{grey}&stripmeta={strip}")
            };
            let kept = s.get(&url(false));
            let stripped = s.get(&url(true));
            assert_eq!((kept.status, stripped.status), (200, 200), "{source}{grey}");
            assert_eq!(stripped.format(), ImageType::Webp);
            let has = |body: &[u8], chunk: &[u8]| body.windows(4).any(|w| w == chunk);
            // libvips writes an EXIF block rebuilt from the image's fields whenever it may.
            assert!(has(&kept.body, b"EXIF"), "{source}{grey}: no EXIF to strip");
            for chunk in [b"EXIF", b"XMP ", b"ICCP"] {
                assert!(
                    !has(&stripped.body, chunk),
                    "{source}{grey}: {chunk:?} kept"
                );
            }
            assert_eq!(stripped.size(), kept.size());
        }
    }
}

#[test]
fn inputs_imaginary_could_not_read() {
    let s = server();
    // AVIF and HEIF in (imaginary: 406), GIF and SVG without a type (imaginary: 400).
    for t in ["avif", "heif"] {
        let encoded = s.get(&format!("/convert?type={t}&file=badge.png")).body;
        let r = s.post(
            "/resize?width=100&type=png",
            &format!("image/{t}"),
            &encoded,
        );
        assert_eq!((r.status, r.size()), (200, (100, 75)), "{t} input");
    }
    let gif = s.get("/resize?width=200&file=small.gif");
    assert_eq!((gif.size(), gif.format()), ((200, 134), ImageType::Gif)); // 400×267 halved, rounded
    let svg = s.get("/resize?width=160&type=png&file=scene.svg");
    assert_eq!((svg.size(), svg.format()), ((160, 107), ImageType::Png));
    // PDF: the first page, rendered at 72 DPI (imaginary needs a type too; PDF cannot be saved).
    let pdf = s.get("/convert?type=png&file=page.pdf");
    assert_eq!(
        (pdf.status, pdf.size(), pdf.format()),
        (200, (200, 100), ImageType::Png)
    );
    assert_eq!(s.get("/info?file=page.pdf").json()["type"], "pdf");
    let info = s.get("/info?file=scene.svg").json();
    assert_eq!(
        (info["width"].as_u64(), info["type"].as_str()),
        (Some(1600), Some("svg"))
    );
}

/// A JPEG whose pixels are stored sideways with EXIF Orientation 6 (rotate 90° to display).
fn sideways_jpeg() -> Vec<u8> {
    vips::init(1);
    let upright = Image::load_bytes(&sample("scene.jpg"), Access::Random).unwrap();
    let sideways = upright.rotate(270).unwrap().with_orientation(6).unwrap();
    sideways
        .save(
            &Saver::Jpeg {
                quality: 80,
                interlace: false,
            },
            false,
        )
        .unwrap()
}

#[test]
fn exif_orientation_is_applied_once() {
    let s = server();
    let jpeg = sideways_jpeg();
    let stored = vips::read_header(&jpeg).unwrap();
    assert_eq!(
        (stored.width, stored.height, stored.exif_orientation),
        (1067, 1600, 6)
    );
    let r = s.post("/resize?width=300", "image/jpeg", &jpeg);
    assert_eq!(r.size(), (300, 200), "displayed orientation");
    let out = vips::read_header(&r.body).unwrap();
    assert!(
        out.exif_orientation <= 1,
        "the tag must not rotate it again: {}",
        out.exif_orientation
    );
    // /autorotate: same, at full size; norotation keeps the stored pixels.
    let r = s.post("/autorotate", "image/jpeg", &jpeg);
    assert_eq!(r.size(), (1600, 1067));
    let r = s.post("/resize?width=300&norotation=true", "image/jpeg", &jpeg);
    assert_eq!(r.size(), (300, 450));
    // /info reports what is stored, as imaginary does.
    let info = s.post("/info", "image/jpeg", &jpeg).json();
    assert_eq!(
        (info["width"].as_u64(), info["orientation"].as_u64()),
        (Some(1067), Some(6))
    );
}

#[test]
fn watermark_image_from_an_allowed_origin() {
    let origin = Origin::start(vec![(
        "/logo.png",
        Resource::ok("image/png", sample("badge.png")),
    )]);
    let s = Imgedge::start(&[
        "-mount",
        testdata().to_str().unwrap(),
        "-allow-private-origins",
        "-allowed-origins",
        &format!("http://{}/", origin.addr),
    ]);
    let logo = enc(&origin.url("/logo.png"));
    let r = s.get(&format!(
        "/watermarkimage?image={logo}&top=10&left=10&opacity=0.5&file=scene.jpg"
    ));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.size(), (1600, 1067));
    assert_eq!(
        s.get("/watermarkimage?file=scene.jpg").error(400),
        "Error while processing the image: Missing required param: image"
    );
    // Outside the allow-list: refused, never fetched.
    let other = Origin::start(vec![(
        "/logo.png",
        Resource::ok("image/png", sample("badge.png")),
    )]);
    let msg = s
        .get(&format!(
            "/watermarkimage?image={}&file=scene.jpg",
            enc(&other.url("/logo.png"))
        ))
        .error(400);
    assert!(msg.starts_with("not allowed remote URL origin:"), "{msg}");
    assert_eq!(other.total(), 0);
}

#[test]
fn pipeline_chains_operations() {
    let s = server();
    let ops = serde_json::json!([
        {"operation": "crop", "params": {"width": 300, "height": 260}},
        {"operation": "convert", "params": {"type": "webp"}},
        {"operation": "flip", "ignore_failure": true},
        {"operation": "rotate", "params": {"rotate": "90"}}
    ]);
    let r = s.get(&format!(
        "/pipeline?operations={}&file=scene.jpg",
        enc(&ops.to_string())
    ));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!((r.size(), r.format()), ((260, 300), ImageType::Webp));
    assert!(r.header("vary").is_none(), "pipeline does not negotiate");
    // A failing step without ignore_failure fails the request; with it, it is skipped.
    let failing = serde_json::json!([
        {"operation": "extract", "params": {"top": 5000, "left": 0, "areawidth": 10, "areaheight": 10}},
    ]);
    let msg = s
        .get(&format!(
            "/pipeline?operations={}&file=scene.jpg",
            enc(&failing.to_string())
        ))
        .error(400);
    assert!(
        msg.starts_with("Error while processing the image:"),
        "{msg}"
    );
    let ignored = serde_json::json!([
        {"operation": "extract", "ignore_failure": true, "params": {"top": 5000, "areawidth": 10, "areaheight": 10}},
        {"operation": "resize", "params": {"width": 100}}
    ]);
    let r = s.get(&format!(
        "/pipeline?operations={}&file=scene.jpg",
        enc(&ignored.to_string())
    ));
    assert_eq!(r.size(), (100, 67));
    let bad = serde_json::json!([{"operation": "watermarkimage"}]);
    assert_eq!(
        s.get(&format!(
            "/pipeline?operations={}&file=scene.jpg",
            enc(&bad.to_string())
        ))
        .error(400),
        "Error while processing the image: Unsupported operation name: watermarkimage"
    );
}
