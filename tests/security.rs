//! Hostile input against the real binary: each rule refuses with the right status, and the
//! forbidden target never sees a request.

mod common;

use common::{enc, sample, testdata, Imgedge, Origin, Resource};

#[test]
fn ssrf_guard_refuses_internal_addresses_by_default() {
    let origin = Origin::start(vec![("/scene.jpg", Resource::ok("image/jpeg", sample("scene.jpg")))]);
    let port = origin.addr.port();
    let s = Imgedge::start(&["-enable-url-source"]);
    for target in [
        format!("http://127.0.0.1:{port}/scene.jpg"),
        format!("http://localhost:{port}/scene.jpg"),
        format!("http://2130706433:{port}/scene.jpg"),
        format!("http://0x7f.1:{port}/scene.jpg"),
        format!("http://[::ffff:127.0.0.1]:{port}/scene.jpg"),
        format!("http://[::1]:{port}/scene.jpg"),
        format!("http://allowed.example@127.0.0.1:{port}/scene.jpg"),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        "http://10.0.0.1/x.jpg".to_string(),
        "http://[fd00::1]/x.jpg".to_string(),
    ] {
        let msg = s.get(&format!("/resize?width=10&url={}", enc(&target))).error(403);
        assert!(msg.starts_with("not allowed remote URL origin:"), "{target}: {msg}");
    }
    assert_eq!(origin.total(), 0, "an internal target was contacted");
}

#[test]
fn a_public_origin_redirecting_inside_is_refused() {
    // Loopback stands in for both networks here (the guard is off), so the allow-list does
    // the refusing: a redirect from the listed origin to an unlisted host is not followed.
    let inside = Origin::start(vec![("/secret.jpg", Resource::ok("image/jpeg", sample("scene.jpg")))]);
    let edge = Origin::start(vec![("/img/a.jpg", Resource::redirect(&inside.url("/secret.jpg")))]);
    let s = Imgedge::start(&[
        "-enable-url-source",
        "-allow-private-origins",
        "-allowed-origins",
        &format!("http://{}/img/", edge.addr),
    ]);
    let msg = s
        .get(&format!("/resize?width=10&url={}", enc(&edge.url("/img/a.jpg"))))
        .error(400);
    assert!(msg.starts_with("not allowed remote URL origin:"), "{msg}");
    assert_eq!(inside.total(), 0);
}

#[test]
fn mount_escapes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mount = dir.path().join("img");
    std::fs::create_dir(&mount).unwrap();
    std::fs::create_dir(dir.path().join("img2")).unwrap();
    std::fs::write(mount.join("ok.jpg"), sample("scene.jpg")).unwrap();
    std::fs::write(dir.path().join("img2/secret.jpg"), sample("scene.jpg")).unwrap();
    std::os::unix::fs::symlink(dir.path().join("img2/secret.jpg"), mount.join("link.jpg")).unwrap();
    let s = Imgedge::start(&["-mount", mount.to_str().unwrap()]);
    assert_eq!(s.get("/resize?width=300&file=ok.jpg").size(), (300, 200));
    for file in [
        "../img2/secret.jpg",
        "..%2Fimg2%2Fsecret.jpg",
        "%252e%252e%252fimg2%252fsecret.jpg",
        "link.jpg",
        "ok.jpg%00.png",
        "/etc/passwd",
        "....//img2/secret.jpg",
    ] {
        assert_eq!(
            s.get(&format!("/resize?width=10&file={file}")).error(400),
            "Invalid file path",
            "{file}"
        );
    }
    let _ = testdata();
}

#[test]
fn oversized_bodies_are_refused_without_reading_them_all() {
    let s = Imgedge::start(&["-max-body-size", "100000"]);
    let big = vec![0xffu8; 300_000];
    let r = s.post("/resize?width=10", "image/jpeg", &big);
    assert_eq!(r.status, 413);
    assert!(r.json()["message"].as_str().unwrap().contains("100000"));
    // tiny_http declares Content-Length up to 32 KiB and streams chunked above it: both paths.
    let origin = Origin::start(vec![
        ("/declared.jpg", Resource::ok("image/jpeg", vec![0xff; 20_000])),
        ("/chunked.jpg", Resource::ok("image/jpeg", big)),
    ]);
    let s = Imgedge::start(&[
        "-enable-url-source",
        "-allow-private-origins",
        "-max-allowed-size",
        "1000",
    ]);
    let msg = s
        .get(&format!("/resize?width=10&url={}", enc(&origin.url("/declared.jpg"))))
        .error(400);
    assert_eq!(msg, "Content-Length 20000 exceeds maximum allowed 1000 bytes");
    let msg = s
        .get(&format!("/resize?width=10&url={}", enc(&origin.url("/chunked.jpg"))))
        .error(400);
    assert_eq!(msg, "image body from origin exceeds maximum allowed 1000 bytes");
}

const SIGN_KEY: &str = "4f46feebafc4b5e988f131c4ff8b5997";

fn signed(path: &str, query: &str) -> String {
    let pairs = imgedge::ops::params::query_pairs(query);
    let sign = imgedge::policy::signature::Signer::new(SIGN_KEY).sign(path, &pairs);
    format!("{path}?{query}&sign={sign}")
}

#[test]
fn url_signatures_are_required_and_checked() {
    let s = Imgedge::start(&[
        "-mount",
        testdata().to_str().unwrap(),
        "-enable-url-signature",
        "-url-signature-key",
        SIGN_KEY,
    ]);
    let good = signed("/resize", "width=300&file=scene.jpg");
    assert_eq!(s.get(&good).size(), (300, 200));
    // Reordered params keep the signature valid (it covers the canonical query).
    let sign = good.rsplit("sign=").next().unwrap();
    assert_eq!(s.get(&format!("/resize?file=scene.jpg&sign={sign}&width=300")).status, 200);
    for tampered in [
        format!("/resize?width=301&file=scene.jpg&sign={sign}"),
        format!("/resize?width=300&width=300&file=scene.jpg&sign={sign}"),
        format!("/crop?width=300&file=scene.jpg&sign={sign}"),
        "/resize?width=300&file=scene.jpg".to_string(),
    ] {
        assert_eq!(s.get(&tampered).error(403), "URL signature mismatch", "{tampered}");
    }
    assert_eq!(
        s.get("/resize?width=300&file=scene.jpg&sign=abc%3D").error(400),
        "Invalid URL signature"
    );
    // POST is signed too; public routes are not.
    assert_eq!(s.post("/resize?width=300", "image/jpeg", &sample("scene.jpg")).status, 403);
    assert_eq!(s.get("/health").status, 200);
    // An expired signed URL is refused even with a valid signature.
    let expired = signed("/resize", "width=300&file=scene.jpg&expires=1000");
    assert_eq!(s.get(&expired).error(403), "URL signature expired");
}

#[test]
fn rate_limit_answers_429_per_client() {
    let s = Imgedge::start(&[
        "-mount",
        testdata().to_str().unwrap(),
        "-concurrency",
        "1",
        "-burst",
        "2",
    ]);
    let first = s.get("/health");
    assert_eq!(first.status, 200);
    assert_eq!(first.header("x-ratelimit-limit"), Some("3"));
    assert_eq!(first.header("x-ratelimit-remaining"), Some("2"));
    let statuses: Vec<u16> = (0..4).map(|_| s.get("/health").status).collect();
    assert!(statuses.contains(&429), "{statuses:?}");
    let refused = (0..3).map(|_| s.get("/health")).find(|r| r.status == 429).unwrap();
    assert_eq!(refused.body, b"limit exceeded\n");
    assert_eq!(refused.header("content-type"), Some("text/plain; charset=utf-8"));
    assert!(refused.header("retry-after").is_some());
}

#[test]
fn api_key_is_checked_in_header_or_query() {
    let s = Imgedge::start(&["-mount", testdata().to_str().unwrap(), "-key", "s3cret"]);
    assert_eq!(s.get("/resize?width=300&file=scene.jpg").error(401), "Invalid or missing API key");
    assert_eq!(s.get("/resize?width=300&file=scene.jpg&key=wrong").status, 401);
    assert_eq!(s.get("/resize?width=300&file=scene.jpg&key=s3cret").status, 200);
    let r = common::request(
        "GET",
        &s.url("/resize?width=300&file=scene.jpg"),
        &[("API-Key", "s3cret")],
        None,
    );
    assert_eq!(r.status, 200);
}

#[test]
fn tls_serves_http2() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl (installed by the Makefile)");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let s = Imgedge::start(&[
        "-mount",
        testdata().to_str().unwrap(),
        "-certfile",
        cert.to_str().unwrap(),
        "-keyfile",
        key.to_str().unwrap(),
    ]);
    let out = dir.path().join("out.jpg");
    let curl = std::process::Command::new("curl")
        .args(["-sk", "--http2", "-w", "%{http_version} %{http_code} %{content_type}", "-o"])
        .arg(&out)
        .arg(format!("https://127.0.0.1:{}/resize?width=300&file=scene.jpg", s.addr.port()))
        .output()
        .expect("curl (installed by the Makefile)");
    assert_eq!(String::from_utf8_lossy(&curl.stdout), "2 200 image/jpeg");
    let size = imagesize::size(&out).unwrap();
    assert_eq!((size.width, size.height), (300, 200));
}
