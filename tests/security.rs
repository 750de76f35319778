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
    let origin = Origin::start(vec![("/big.jpg", Resource::ok("image/jpeg", big))]);
    let s = Imgedge::start(&[
        "-enable-url-source",
        "-allow-private-origins",
        "-max-allowed-size",
        "1000",
    ]);
    let msg = s
        .get(&format!("/resize?width=10&url={}", enc(&origin.url("/big.jpg"))))
        .error(400);
    assert_eq!(msg, "Content-Length 300000 exceeds maximum allowed 1000 bytes");
}
