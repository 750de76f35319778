//! The core endpoints from every source, against the real binary and a real loopback origin:
//! what a client of imaginary would check (status, headers, decoded size and format).

mod common;

use common::{enc, multipart, sample, testdata, Imgedge, Origin, Resource};
use imagesize::ImageType;

fn mounted() -> Imgedge {
    Imgedge::start(&["-mount", testdata().to_str().unwrap()])
}

#[test]
fn index_reports_versions_as_imaginary_does() {
    let s = mounted();
    let r = s.get("/");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v = r.json();
    assert_eq!(v["imaginary"], "1.2.4");
    assert_eq!(v["bimg"], "1.1.7");
    assert!(v["libvips"].as_str().unwrap().starts_with("8."), "{v}");
    assert_eq!(
        r.header("content-length").unwrap(),
        r.body.len().to_string()
    );
    // POST works too, and unknown paths are the index's JSON 404.
    assert_eq!(s.post("/", "text/plain", b"").status, 200);
    assert_eq!(s.get("/nope").error(404), "Not found");
    assert_eq!(s.get("/resize/").error(404), "Not found");
}

#[test]
fn resize_from_a_mounted_file() {
    let s = mounted();
    let r = s.get("/resize?width=300&file=scene.jpg");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("content-type"), Some("image/jpeg"));
    assert_eq!(
        r.header("content-length").unwrap(),
        r.body.len().to_string()
    );
    assert_eq!(r.format(), ImageType::Jpeg);
    assert_eq!(r.size(), (300, 200));
}

#[test]
fn resize_from_a_raw_post_body() {
    let s = mounted();
    let r = s.post("/resize?width=300", "image/jpeg", &sample("scene.jpg"));
    assert_eq!(r.status, 200);
    assert_eq!(r.size(), (300, 200));
    // The Content-Type of the upload does not matter: the bytes are sniffed.
    let r = s.post(
        "/resize?height=100",
        "application/octet-stream",
        &sample("badge.png"),
    );
    assert_eq!(r.header("content-type"), Some("image/png"));
    assert_eq!(r.size(), (133, 100));
}

#[test]
fn resize_from_a_multipart_upload() {
    let s = mounted();
    let (ct, body) = multipart("file", &sample("scene.jpg"));
    let r = s.post("/resize?width=300&height=300", &ct, &body);
    assert_eq!(r.status, 200);
    // Both sides given: exactly that box, the picture embedded (imaginary's /resize).
    assert_eq!(r.size(), (300, 300));
    let (ct, body) = multipart("other", &sample("scene.jpg"));
    assert_eq!(
        s.post("/resize?width=300", &ct, &body).error(400),
        "http: no such file"
    );
}

#[test]
fn resize_from_an_origin_url() {
    let origin = Origin::start(vec![(
        "/img/scene.jpg",
        Resource::ok("image/jpeg", sample("scene.jpg")),
    )]);
    let s = Imgedge::start(&["-enable-url-source", "-allow-private-origins"]);
    let url = enc(&origin.url("/img/scene.jpg"));
    let r = s.get(&format!("/resize?width=300&url={url}"));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.size(), (300, 200));
    assert_eq!(origin.hits("/img/scene.jpg"), 1);
}

#[test]
fn every_core_endpoint_gives_imaginarys_sizes() {
    let s = mounted();
    let cases: &[(&str, (usize, usize), ImageType)] = &[
        (
            "/resize?width=300&file=scene.jpg",
            (300, 200),
            ImageType::Jpeg,
        ),
        (
            "/resize?width=400&height=400&nocrop=false&file=scene.jpg",
            (400, 400),
            ImageType::Jpeg,
        ),
        (
            "/crop?width=400&height=400&file=scene.jpg",
            (400, 400),
            ImageType::Jpeg,
        ),
        (
            "/crop?width=500&file=scene.jpg",
            (500, 1067),
            ImageType::Jpeg,
        ),
        (
            "/thumbnail?width=100&file=badge.png",
            (100, 75),
            ImageType::Png,
        ),
        (
            "/thumbnail?width=100&height=100&file=badge.png",
            (100, 100),
            ImageType::Png,
        ),
        (
            "/fit?width=300&height=300&file=scene.jpg",
            (300, 200),
            ImageType::Jpeg,
        ),
        (
            "/fit?width=300&height=100&file=scene.jpg",
            (150, 100),
            ImageType::Jpeg,
        ),
        (
            "/convert?type=png&file=scene.webp",
            (1600, 1067),
            ImageType::Png,
        ),
        (
            "/convert?type=webp&file=scene.jpg",
            (1600, 1067),
            ImageType::Webp,
        ),
        (
            "/convert?type=jpeg&file=badge.png",
            (800, 600),
            ImageType::Jpeg,
        ),
    ];
    for (path, size, format) in cases {
        let r = s.get(path);
        assert_eq!(
            r.status,
            200,
            "{path}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.size(), *size, "{path}");
        assert_eq!(r.format(), *format, "{path}");
    }
}

#[test]
fn content_types_follow_the_output() {
    let s = mounted();
    for (t, ct) in [
        ("jpeg", "image/jpeg"),
        ("png", "image/png"),
        ("webp", "image/webp"),
    ] {
        let r = s.get(&format!("/convert?type={t}&file=badge.png"));
        assert_eq!(r.header("content-type"), Some(ct), "{t}");
        assert_eq!(
            r.header("content-length").unwrap(),
            r.body.len().to_string()
        );
    }
}

#[test]
fn type_auto_negotiates_from_accept() {
    let s = mounted();
    let r = common::request(
        "GET",
        &s.url("/resize?width=200&type=auto&file=scene.jpg"),
        &[("Accept", "image/avif,image/webp,*/*")],
        None,
    );
    assert_eq!(r.header("content-type"), Some("image/webp"));
    assert_eq!(r.format(), ImageType::Webp);
    assert!(r.header("vary").unwrap().contains("Accept"));
    // No usable Accept: the input's format.
    let r = s.get("/resize?width=200&type=auto&file=scene.jpg");
    assert_eq!(r.header("content-type"), Some("image/jpeg"));
}

#[test]
fn info_describes_the_source() {
    let s = mounted();
    let r = s.get("/info?file=badge.png");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v = r.json();
    assert_eq!(v["width"], 800);
    assert_eq!(v["height"], 600);
    assert_eq!(v["type"], "png");
    assert_eq!(v["space"], "srgb");
    assert_eq!(v["hasAlpha"], true);
    assert_eq!(v["channels"], 4);
    let body = String::from_utf8(r.body.clone()).unwrap();
    assert!(
        body.starts_with("{\"width\":800,\"height\":600,\"type\":\"png\""),
        "{body}"
    );
    let r = s.post("/info", "image/jpeg", &sample("scene.jpg"));
    assert_eq!(r.json()["type"], "jpeg");
    assert_eq!(r.json()["hasAlpha"], false);
}

#[test]
fn head_is_served_like_get_without_a_body() {
    let s = mounted();
    let get = s.get("/resize?width=300&file=scene.jpg");
    let head = common::request(
        "HEAD",
        &s.url("/resize?width=300&file=scene.jpg"),
        &[],
        None,
    );
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(head.header("content-length"), get.header("content-length"));
}

#[test]
fn path_prefix_moves_every_route() {
    let s = Imgedge::start(&[
        "-mount",
        testdata().to_str().unwrap(),
        "-path-prefix",
        "/api/",
    ]);
    assert_eq!(s.get("/api").status, 200);
    assert_eq!(s.get("/api/health").status, 200);
    assert_eq!(
        s.get("/api/resize?width=300&file=scene.jpg").size(),
        (300, 200)
    );
    let r = s.get("/resize?width=300&file=scene.jpg");
    assert_eq!(r.status, 404);
    assert_eq!(r.body, b"404 page not found\n");
    let r = s.get("/api//resize?width=3");
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("/api/resize?width=3"));
}

// ---------------------------------------------------------------- errors

#[test]
fn empty_body_is_refused() {
    let s = mounted();
    assert_eq!(
        s.post("/resize?width=300", "image/jpeg", b"").error(400),
        "Empty or unreadable image"
    );
}

#[test]
fn unsupported_media_is_406() {
    let s = mounted();
    assert_eq!(
        s.post(
            "/resize?width=300",
            "text/plain",
            b"hello, this is not an image"
        )
        .error(406),
        "Unsupported media type"
    );
    // BMP is not an input imaginary accepts either.
    let mut bmp = b"BM".to_vec();
    bmp.extend_from_slice(&[0; 64]);
    assert_eq!(
        s.post("/resize?width=3", "image/bmp", &bmp).error(406),
        "Unsupported media type"
    );
}

#[test]
fn missing_params_name_what_is_missing() {
    let s = mounted();
    let cases = [
        (
            "/resize?file=scene.jpg",
            "Missing required param: height or width",
        ),
        (
            "/crop?file=scene.jpg",
            "Missing required param: height or width",
        ),
        (
            "/thumbnail?file=scene.jpg",
            "Missing required params: width or height",
        ),
        (
            "/fit?width=100&file=scene.jpg",
            "Missing required params: height, width",
        ),
        ("/convert?file=scene.jpg", "Missing required param: type"),
        (
            "/blur?file=scene.jpg",
            "Missing required param: sigma or minampl",
        ),
        ("/rotate?file=scene.jpg", "Missing required param: rotate"),
        ("/zoom?file=scene.jpg", "Missing required param: factor"),
        (
            "/extract?areawidth=10&file=scene.jpg",
            "Missing required params: areawidth or areaheight",
        ),
        (
            "/enlarge?width=10&file=scene.jpg",
            "Missing required params: height, width",
        ),
        ("/watermark?file=scene.jpg", "Missing required param: text"),
    ];
    for (path, missing) in cases {
        assert_eq!(
            s.get(path).error(400),
            format!("Error while processing the image: {missing}"),
            "{path}"
        );
    }
    assert_eq!(
        s.get("/resize?width=abc&file=scene.jpg").error(400),
        "Error while processing parameters, error while processing parameter \"width\" with value \"abc\", error: strconv.ParseFloat: parsing \"abc\": invalid syntax"
    );
    assert_eq!(
        s.get("/convert?type=bmp&file=scene.jpg").error(400),
        "Unsupported output image format"
    );
}

#[test]
fn files_outside_the_mount_are_refused() {
    let s = mounted();
    for file in [
        "../Cargo.toml",
        "..%2FCargo.toml",
        "/etc/passwd",
        "missing.jpg",
        "%2e%2e/Cargo.toml",
    ] {
        assert_eq!(
            s.get(&format!("/resize?width=10&file={file}")).error(400),
            "Invalid file path",
            "{file}"
        );
    }
    assert_eq!(
        s.get("/resize?width=10").error(400),
        "Cannot process the image due to missing or invalid params"
    );
}

#[test]
fn bad_and_failing_urls() {
    let origin = Origin::start(vec![
        ("/empty.jpg", Resource::ok("image/jpeg", vec![])),
        ("/moved.jpg", Resource::redirect("/scene.jpg")),
        (
            "/scene.jpg",
            Resource::ok("image/jpeg", sample("scene.jpg")),
        ),
    ]);
    let s = Imgedge::start(&["-enable-url-source", "-allow-private-origins"]);
    for bad in [
        "ftp://example.org/a.jpg",
        "not a url",
        "file:///etc/passwd",
        "http://",
    ] {
        assert_eq!(
            s.get(&format!("/resize?width=10&url={}", enc(bad)))
                .error(400),
            "Invalid image URL",
            "{bad}"
        );
    }
    let missing = origin.url("/missing.jpg");
    assert_eq!(
        s.get(&format!("/resize?width=10&url={}", enc(&missing)))
            .error(404),
        format!("error fetching remote http image: (status=404) (url={missing})")
    );
    assert_eq!(
        s.get(&format!(
            "/resize?width=10&url={}",
            enc(&origin.url("/empty.jpg"))
        ))
        .error(400),
        "Empty or unreadable image"
    );
    let r = s.get(&format!(
        "/resize?width=300&url={}",
        enc(&origin.url("/moved.jpg"))
    ));
    assert_eq!(r.size(), (300, 200));
    // Nothing listens on port 9 of loopback.
    let refused = s
        .get("/resize?width=10&url=http%3A%2F%2F127.0.0.1%3A9%2Fa.jpg")
        .error(400);
    assert!(
        refused.starts_with("error fetching remote http image:"),
        "{refused}"
    );
}

#[test]
fn redirects_are_rechecked_against_allowed_origins() {
    let other = Origin::start(vec![(
        "/scene.jpg",
        Resource::ok("image/jpeg", sample("scene.jpg")),
    )]);
    let allowed = Origin::start(vec![(
        "/img/hop.jpg",
        Resource::redirect(&other.url("/scene.jpg")),
    )]);
    let allow = format!("http://{}/img/", allowed.addr);
    let s = Imgedge::start(&[
        "-enable-url-source",
        "-allow-private-origins",
        "-allowed-origins",
        &allow,
    ]);
    let msg = s
        .get(&format!(
            "/resize?width=10&url={}",
            enc(&allowed.url("/img/hop.jpg"))
        ))
        .error(400);
    assert_eq!(
        msg,
        format!("not allowed remote URL origin: {}/scene.jpg", other.addr)
    );
    assert_eq!(other.total(), 0, "the redirect target was contacted");
    let msg = s
        .get(&format!(
            "/resize?width=10&url={}",
            enc(&allowed.url("/secret/x.jpg"))
        ))
        .error(400);
    assert!(msg.starts_with("not allowed remote URL origin:"));
}

#[test]
fn sources_need_their_own_flag() {
    let origin = Origin::start(vec![(
        "/scene.jpg",
        Resource::ok("image/jpeg", sample("scene.jpg")),
    )]);
    // Only -mount: ?url= is not a source (imaginary would fetch it).
    let s = mounted();
    let url = enc(&origin.url("/scene.jpg"));
    assert_eq!(
        s.get(&format!("/resize?width=10&url={url}")).error(400),
        "Cannot process the image due to missing or invalid params"
    );
    assert_eq!(origin.total(), 0);
    // Only -enable-url-source: ?file= reads nothing (imaginary would read the CWD).
    let s = Imgedge::start(&["-enable-url-source", "-allow-private-origins"]);
    assert_eq!(
        s.get("/resize?width=10&file=testdata/scene.jpg").error(400),
        "Cannot process the image due to missing or invalid params"
    );
    // Neither: GET is not allowed on image endpoints at all.
    let s = Imgedge::start(&[]);
    assert_eq!(
        s.get("/resize?width=10&file=scene.jpg").error(405),
        "GET method not allowed. Make sure remote URL source is enabled by using the flag: -enable-url-source"
    );
    // POST still works.
    assert_eq!(
        s.post("/resize?width=300", "image/jpeg", &sample("scene.jpg"))
            .size(),
        (300, 200)
    );
}

#[test]
fn other_methods_are_405_and_keep_the_connection_usable() {
    let s = mounted();
    let r = common::request("PUT", &s.url("/resize?width=10"), &[], Some(b"x"));
    assert_eq!(
        r.error(405),
        "HTTP method not allowed. Try with a POST or GET method (-enable-url-source flag must be defined)"
    );
    let r = common::request("DELETE", &s.url("/health"), &[], None);
    assert_eq!(r.status, 405);
    assert_eq!(s.get("/health").status, 200);
}

#[test]
fn garbage_that_looks_like_an_image_is_a_clean_400() {
    let s = mounted();
    let mut truncated = sample("scene.jpg");
    truncated.truncate(300);
    let msg = s
        .post("/resize?width=100", "image/jpeg", &truncated)
        .error(400);
    assert!(
        msg.starts_with("Error while processing the image:"),
        "{msg}"
    );
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend_from_slice(&[0xff; 100]);
    let msg = s.post("/info", "image/png", &png).error(400);
    assert!(msg.contains("Error") || msg.contains("metadata"), "{msg}");
    // The process is still up and serving.
    assert_eq!(s.get("/resize?width=300&file=scene.jpg").size(), (300, 200));
}

#[test]
fn access_log_is_imaginarys_format_without_secrets() {
    let s = Imgedge::start(&["-mount", testdata().to_str().unwrap(), "-key", "s3cret"]);
    let r = s.get("/resize?width=300&file=scene.jpg&key=s3cret");
    assert_eq!(r.status, 200);
    assert_eq!(s.get("/health").error(401), "Invalid or missing API key");
    let log = s.access_log();
    let line = log
        .lines()
        .find(|l| l.contains("/resize"))
        .expect("a /resize line");
    assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
    assert!(
        line.contains("\"GET /resize?width=300&file=scene.jpg&key=REDACTED HTTP/1.1\" 200 "),
        "{line}"
    );
    assert!(!log.contains("s3cret"));
}
