//! imaginary's cross-cutting flags and its best-known client, against the real binary.

mod common;

use common::{enc, multipart, request, sample, testdata, Imgedge};
use imagesize::ImageType;

fn mount() -> String {
    testdata().to_str().unwrap().to_string()
}

#[test]
fn placeholder_replaces_errors_with_a_sized_image() {
    let s = Imgedge::start(&["-mount", &mount(), "-enable-placeholder"]);
    let r = s.get("/resize?width=200&height=100&file=missing.jpg");
    assert_eq!(r.status, 400);
    assert_eq!(r.header("content-type"), Some("image/jpeg"));
    assert_eq!(r.size(), (200, 100));
    let error: serde_json::Value = serde_json::from_str(r.header("error").unwrap()).unwrap();
    assert_eq!(error["message"], "Invalid file path");
    assert_eq!(error["status"], 400);
    // Width only keeps the placeholder's height; type converts it.
    let r = s.get("/resize?width=120&type=png&file=missing.jpg");
    assert_eq!((r.size(), r.format()), ((120, 400), ImageType::Png));
    // Unparsable sizes cannot be honoured: imaginary's fallback JSON.
    let r = s.get("/resize?width=abc&file=scene.jpg");
    assert_eq!(r.status, 400);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(r.json()["error"].as_str().unwrap().contains("abc"));
    // The index's 404 stays JSON.
    assert_eq!(s.get("/nope").error(404), "Not found");
}

#[test]
fn placeholder_status_and_custom_image() {
    let s = Imgedge::start(&[
        "-mount",
        &mount(),
        "-placeholder",
        testdata().join("badge.png").to_str().unwrap(),
        "-placeholder-status",
        "200",
    ]);
    let r = s.get("/crop?file=missing.jpg");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("image/png"));
    assert_eq!(r.size(), (800, 600));
}

#[test]
fn cors_headers_and_a_working_preflight() {
    let s = Imgedge::start(&["-mount", &mount(), "-cors"]);
    let r = request(
        "GET",
        &s.url("/resize?width=100&type=auto&file=scene.jpg"),
        &[("Origin", "https://app.example"), ("Accept", "image/webp")],
        None,
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    // Both reasons to vary are kept (imaginary drops Origin when it adds Accept).
    let vary = r.header("vary").unwrap();
    assert!(vary.contains("Origin") && vary.contains("Accept"), "{vary}");
    let pre = request(
        "OPTIONS",
        &s.url("/resize?width=100&file=scene.jpg"),
        &[
            ("Origin", "https://app.example"),
            ("Access-Control-Request-Method", "GET"),
        ],
        None,
    );
    assert_eq!(pre.status, 204);
    assert_eq!(pre.header("access-control-allow-origin"), Some("*"));
    assert!(pre
        .header("access-control-allow-methods")
        .unwrap()
        .contains("GET"));
    // Without -cors, OPTIONS is imaginary's 405.
    let plain = Imgedge::start(&["-mount", &mount()]);
    assert_eq!(
        request("OPTIONS", &plain.url("/resize"), &[], None).status,
        405
    );
}

#[test]
fn http_cache_ttl_marks_images_not_errors() {
    let s = Imgedge::start(&["-mount", &mount(), "-http-cache-ttl", "3600"]);
    let r = s.get("/resize?width=100&file=scene.jpg");
    assert_eq!(
        r.header("cache-control"),
        Some("public, s-maxage=3600, max-age=3600, no-transform")
    );
    assert!(r.header("expires").unwrap().ends_with(" GMT"));
    let e = s.get("/resize?width=100&file=missing.jpg");
    assert_eq!(e.header("cache-control"), Some("no-store"));
    assert!(s.get("/health").header("cache-control").is_none());
    let zero = Imgedge::start(&["-mount", &mount(), "-http-cache-ttl", "0"]);
    assert_eq!(
        zero.get("/resize?width=100&file=scene.jpg")
            .header("cache-control"),
        Some("private, no-cache, no-store, must-revalidate")
    );
}

#[test]
fn return_size_and_disabled_endpoints() {
    let s = Imgedge::start(&[
        "-mount",
        &mount(),
        "-return-size",
        "-disable-endpoints",
        " Blur ,form",
    ]);
    let r = s.get("/resize?width=300&file=scene.jpg");
    assert_eq!(r.header("image-width"), Some("300"));
    assert_eq!(r.header("image-height"), Some("200"));
    assert!(s
        .get("/info?file=scene.jpg")
        .header("image-width")
        .is_none());
    assert_eq!(
        s.get("/blur?sigma=2&file=scene.jpg").error(501),
        "Not implemented endpoint"
    );
    assert_eq!(s.get("/form").error(501), "Not implemented endpoint");
    assert_eq!(s.get("/health").status, 200);
}

#[test]
fn form_lists_the_playground() {
    let s = Imgedge::start(&["-mount", &mount()]);
    let r = s.get("/form");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html"));
    let html = String::from_utf8(r.body).unwrap();
    assert!(html.contains("action=\"/resize?width=300&height=200&type=jpeg\""));
}

/// Nextcloud's preview provider (spec §15): POST /pipeline with the file as body, sizes as
/// JSON numbers, booleans and quality as strings, `key=` always present.
#[test]
fn nextcloud_preview_requests_work() {
    let s = Imgedge::start(&["-enable-url-source", "-return-size", "-concurrency", "50"]);
    let photo = serde_json::json!([
        {"operation": "autorotate"},
        {"operation": "fit", "params": {"width": 256, "height": 256, "stripmeta": "true",
            "type": "jpeg", "norotation": "true", "quality": "80"}}
    ]);
    let r = s.post(
        &format!("/pipeline?operations={}&key=", enc(&photo.to_string())),
        "image/jpeg",
        &sample("scene.jpg"),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("content-type"), Some("image/jpeg"));
    assert_eq!(r.size(), (256, 171));
    assert_eq!(r.header("image-width"), Some("256"));
    assert_eq!(r.header("image-height"), Some("171"));

    let smart = serde_json::json!([
        {"operation": "autorotate"},
        {"operation": "smartcrop", "params": {"width": 64, "height": 64, "stripmeta": "true",
            "type": "png", "norotation": "true", "quality": "80"}}
    ]);
    let r = s.post(
        &format!("/pipeline?operations={}&key=", enc(&smart.to_string())),
        "image/png",
        &sample("badge.png"),
    );
    assert_eq!(
        (r.status, r.size(), r.format()),
        (200, (64, 64), ImageType::Png)
    );

    // SVG: converted first, then fitted, as webp.
    let svg = serde_json::json!([
        {"operation": "convert", "params": {"type": "png"}},
        {"operation": "fit", "params": {"width": 200, "height": 200, "stripmeta": "true",
            "type": "webp", "norotation": "true", "quality": "80"}}
    ]);
    let r = s.post(
        &format!("/pipeline?operations={}&key=", enc(&svg.to_string())),
        "image/svg+xml",
        &sample("scene.svg"),
    );
    assert_eq!(
        (r.status, r.size(), r.format()),
        (200, (200, 133), ImageType::Webp)
    );

    // Errors carry a `message` Nextcloud can show.
    let r = s.post(
        &format!("/pipeline?operations={}&key=", enc(&photo.to_string())),
        "image/jpeg",
        b"not an image at all",
    );
    assert_eq!(r.error(406), "Unsupported media type");
}

#[test]
fn multipart_upload_as_the_form_sends_it() {
    let s = Imgedge::start(&["-mount", &mount()]);
    let (ct, body) = multipart("file", &sample("badge.png"));
    let r = s.post("/thumbnail?width=100", &ct, &body);
    assert_eq!((r.size(), r.format()), ((100, 75), ImageType::Png));
}
