//! Hostile input against the real binary: each rule refuses with the right status, and the
//! forbidden target never sees a request.

mod common;

use common::{enc, request, sample, testdata, Imgedge, Origin, Resource};
use imgedge::policy::pool::REFUSAL_HOLD;
use std::time::{Duration, Instant};

#[test]
fn ssrf_guard_refuses_internal_addresses_by_default() {
    let origin = Origin::start(vec![(
        "/scene.jpg",
        Resource::ok("image/jpeg", sample("scene.jpg")),
    )]);
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
        let msg = s
            .get(&format!("/resize?width=10&url={}", enc(&target)))
            .error(403);
        assert!(
            msg.starts_with("not allowed remote URL origin:"),
            "{target}: {msg}"
        );
    }
    assert_eq!(origin.total(), 0, "an internal target was contacted");
}

#[test]
fn a_public_origin_redirecting_inside_is_refused() {
    // Loopback stands in for both networks here (the guard is off), so the allow-list does
    // the refusing: a redirect from the listed origin to an unlisted host is not followed.
    let inside = Origin::start(vec![(
        "/secret.jpg",
        Resource::ok("image/jpeg", sample("scene.jpg")),
    )]);
    let edge = Origin::start(vec![(
        "/img/a.jpg",
        Resource::redirect(&inside.url("/secret.jpg")),
    )]);
    let s = Imgedge::start(&[
        "-enable-url-source",
        "-allow-private-origins",
        "-allowed-origins",
        &format!("http://{}/img/", edge.addr),
    ]);
    let msg = s
        .get(&format!(
            "/resize?width=10&url={}",
            enc(&edge.url("/img/a.jpg"))
        ))
        .error(400);
    assert!(msg.starts_with("not allowed remote URL origin:"), "{msg}");
    assert_eq!(inside.total(), 0);
}

#[test]
fn an_allowed_host_redirecting_to_cloud_metadata_is_not_followed() {
    // Refused by the allow-list check, which runs before any connection is attempted.
    let edge = Origin::start(vec![(
        "/img/a.jpg",
        Resource::redirect("http://169.254.169.254/latest/meta-data/"),
    )]);
    let s = Imgedge::start(&[
        "-enable-url-source",
        "-allow-private-origins",
        "-allowed-origins",
        &format!("http://{}/img/", edge.addr),
    ]);
    let msg = s
        .get(&format!(
            "/resize?width=10&url={}",
            enc(&edge.url("/img/a.jpg"))
        ))
        .error(400);
    assert_eq!(
        msg,
        "not allowed remote URL origin: 169.254.169.254/latest/meta-data/"
    );
}

#[test]
fn a_credentialed_request_is_never_answered_with_the_anonymous_variant() {
    let origin = Origin::start(vec![(
        "/a.jpg",
        Resource::ok("image/jpeg", sample("scene.jpg")),
    )]);
    let s = Imgedge::start(&[
        "-enable-url-source",
        "-allow-private-origins",
        "-enable-auth-forwarding",
    ]);
    let url = s.url(&format!(
        "/resize?width=10&url={}",
        enc(&origin.url("/a.jpg"))
    ));
    assert_eq!(
        request("GET", &url, &[], None).header("x-cache"),
        Some("MISS")
    );
    assert_eq!(origin.seen_header("/a.jpg", "authorization"), None);
    // At once, the same URL with credentials: made for them (the key memo of the anonymous
    // request must not answer it), so the origin sees them.
    let personal = request("GET", &url, &[("Authorization", "Bearer u1")], None);
    assert_eq!(personal.header("x-cache"), Some("MISS"));
    assert_eq!(
        origin.seen_header("/a.jpg", "authorization").as_deref(),
        Some("Bearer u1")
    );
    // And the anonymous repeat still shares the anonymous variant.
    assert_eq!(
        request("GET", &url, &[], None).header("x-cache"),
        Some("HIT-MEMORY")
    );
}

#[test]
fn credentials_are_forwarded_only_as_configured() {
    let other = Origin::start(vec![(
        "/b.jpg",
        Resource::ok("image/jpeg", sample("scene.jpg")),
    )]);
    let origin = Origin::start(vec![
        ("/a.jpg", Resource::ok("image/jpeg", sample("scene.jpg"))),
        ("/away.jpg", Resource::redirect(&other.url("/b.jpg"))),
    ]);
    let s = Imgedge::start(&[
        "-enable-url-source",
        "-allow-private-origins",
        "-enable-auth-forwarding",
        "-forward-headers",
        "X-Tenant, x-trace-id",
    ]);
    let headers = [
        ("Authorization", "Bearer user-token"),
        ("x-tenant", "acme"),
        ("X-Trace-Id", "t-1"),
        ("Cookie", "session=secret"),
    ];
    let url = s.url(&format!(
        "/resize?width=10&url={}",
        enc(&origin.url("/a.jpg"))
    ));
    assert_eq!(request("GET", &url, &headers, None).status, 200);
    assert_eq!(
        origin.seen_header("/a.jpg", "authorization").as_deref(),
        Some("Bearer user-token")
    );
    // Matched case-insensitively (imaginary only matched canonical spellings).
    assert_eq!(
        origin.seen_header("/a.jpg", "x-tenant").as_deref(),
        Some("acme")
    );
    assert_eq!(
        origin.seen_header("/a.jpg", "x-trace-id").as_deref(),
        Some("t-1")
    );
    assert_eq!(origin.seen_header("/a.jpg", "cookie"), None);
    // A redirect to another host does not carry the credentials along.
    let away = s.url(&format!(
        "/resize?width=10&url={}",
        enc(&origin.url("/away.jpg"))
    ));
    assert_eq!(request("GET", &away, &headers, None).status, 200);
    assert_eq!(other.hits("/b.jpg"), 1);
    assert_eq!(other.seen_header("/b.jpg", "authorization"), None);
    // -authorization: a constant, whatever the client sends.
    let fixed = Imgedge::start(&[
        "-enable-url-source",
        "-allow-private-origins",
        "-authorization",
        "Basic c3lzdGVt",
    ]);
    let url = fixed.url(&format!(
        "/resize?width=11&url={}",
        enc(&origin.url("/a.jpg"))
    ));
    assert_eq!(request("GET", &url, &headers, None).status, 200);
    assert_eq!(
        origin.seen_header("/a.jpg", "authorization").as_deref(),
        Some("Basic c3lzdGVt")
    );
    // No forwarding configured: nothing personal reaches the origin, and no log line has it.
    let plain = Imgedge::start(&["-enable-url-source", "-allow-private-origins"]);
    let url = plain.url(&format!(
        "/resize?width=12&url={}",
        enc(&origin.url("/a.jpg"))
    ));
    assert_eq!(request("GET", &url, &headers, None).status, 200);
    assert_eq!(origin.seen_header("/a.jpg", "authorization"), None);
    for log in [s.access_log(), fixed.access_log(), plain.access_log()] {
        assert!(
            !log.contains("user-token") && !log.contains("c3lzdGVt"),
            "{log}"
        );
    }
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
fn mounted_files_over_the_body_cap_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let big = sample("scene.jpg");
    std::fs::write(dir.path().join("big.jpg"), &big).unwrap();
    let cap = (big.len() - 1).to_string();
    let s = Imgedge::start(&[
        "-mount",
        dir.path().to_str().unwrap(),
        "-max-body-size",
        &cap,
    ]);
    let refused = s.get("/resize?width=10&file=big.jpg");
    assert_eq!(refused.status, 413);
    let at_cap = big.len().to_string();
    let s = Imgedge::start(&[
        "-mount",
        dir.path().to_str().unwrap(),
        "-max-body-size",
        &at_cap,
    ]);
    assert_eq!(s.get("/resize?width=10&file=big.jpg").status, 200);
}

#[test]
fn oversized_bodies_are_refused_without_reading_them_all() {
    let s = Imgedge::start(&["-max-body-size", "100000"]);
    // Declared too large: answered 413 while the client has sent only the first kilobyte.
    let mut conn = std::net::TcpStream::connect(s.addr).unwrap();
    conn.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    use std::io::{Read, Write};
    conn.write_all(b"POST /resize?width=10 HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: 300000\r\n\r\n").unwrap();
    conn.write_all(&[0xff; 1000]).unwrap();
    let mut answer = vec![0u8; 4096];
    let n = conn.read(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("100000 bytes"), "{answer}");
    // Chunked (no declared length): cut off once it grows past the limit.
    let mut conn = std::net::TcpStream::connect(s.addr).unwrap();
    conn.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    conn.write_all(
        b"POST /resize?width=10 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
    )
    .unwrap();
    for _ in 0..30 {
        if conn.write_all(b"1000\r\n").is_err()
            || conn.write_all(&[0xff; 4096]).is_err()
            || conn.write_all(b"\r\n").is_err()
        {
            break;
        }
    }
    let mut answer = vec![0u8; 4096];
    let n = conn.read(&mut answer).unwrap_or(0);
    assert!(String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 413"));
    let big = vec![0xffu8; 300_000];
    // tiny_http declares Content-Length up to 32 KiB and streams chunked above it: both paths.
    let origin = Origin::start(vec![
        (
            "/declared.jpg",
            Resource::ok("image/jpeg", vec![0xff; 20_000]),
        ),
        ("/chunked.jpg", Resource::ok("image/jpeg", big)),
    ]);
    let s = Imgedge::start(&[
        "-enable-url-source",
        "-allow-private-origins",
        "-max-allowed-size",
        "1000",
    ]);
    let msg = s
        .get(&format!(
            "/resize?width=10&url={}",
            enc(&origin.url("/declared.jpg"))
        ))
        .error(400);
    assert_eq!(
        msg,
        "Content-Length 20000 exceeds maximum allowed 1000 bytes"
    );
    let msg = s
        .get(&format!(
            "/resize?width=10&url={}",
            enc(&origin.url("/chunked.jpg"))
        ))
        .error(400);
    assert_eq!(
        msg,
        "image body from origin exceeds maximum allowed 1000 bytes"
    );
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
    assert_eq!(
        s.get(&format!("/resize?file=scene.jpg&sign={sign}&width=300"))
            .status,
        200
    );
    for tampered in [
        format!("/resize?width=301&file=scene.jpg&sign={sign}"),
        format!("/resize?width=300&width=300&file=scene.jpg&sign={sign}"),
        format!("/crop?width=300&file=scene.jpg&sign={sign}"),
        "/resize?width=300&file=scene.jpg".to_string(),
    ] {
        assert_eq!(
            s.get(&tampered).error(403),
            "URL signature mismatch",
            "{tampered}"
        );
    }
    assert_eq!(
        s.get("/resize?width=300&file=scene.jpg&sign=abc%3D")
            .error(400),
        "Invalid URL signature"
    );
    // POST is signed too; public routes are not.
    assert_eq!(
        s.post("/resize?width=300", "image/jpeg", &sample("scene.jpg"))
            .status,
        403
    );
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
    let refused = (0..3)
        .map(|_| s.get("/health"))
        .find(|r| r.status == 429)
        .unwrap();
    assert_eq!(refused.body, b"limit exceeded\n");
    assert_eq!(
        refused.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert!(refused.header("retry-after").is_some());
}

#[test]
fn api_key_is_checked_in_header_or_query() {
    let s = Imgedge::start(&["-mount", testdata().to_str().unwrap(), "-key", "s3cret"]);
    assert_eq!(
        s.get("/resize?width=300&file=scene.jpg").error(401),
        "Invalid or missing API key"
    );
    assert_eq!(
        s.get("/resize?width=300&file=scene.jpg&key=wrong").status,
        401
    );
    assert_eq!(
        s.get("/resize?width=300&file=scene.jpg&key=s3cret").status,
        200
    );
    let r = common::request(
        "GET",
        &s.url("/resize?width=300&file=scene.jpg"),
        &[("API-Key", "s3cret")],
        None,
    );
    assert_eq!(r.status, 200);
    // imaginary's quirk kept by default: /health needs the key too; -public-health exempts it.
    assert_eq!(s.get("/health").status, 401);
    let open = Imgedge::start(&["-key", "s3cret", "-public-health"]);
    assert_eq!(open.get("/health").status, 200);
    assert_eq!(open.get("/").status, 401);
}

#[test]
fn tls_serves_http2() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl (installed by the Makefile)");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
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
        .args([
            "-sk",
            "--http2",
            "-w",
            "%{http_version} %{http_code} %{content_type}",
            "-o",
        ])
        .arg(&out)
        .arg(format!(
            "https://127.0.0.1:{}/resize?width=300&file=scene.jpg",
            s.addr.port()
        ))
        .output()
        .expect("curl (installed by the Makefile)");
    assert_eq!(String::from_utf8_lossy(&curl.stdout), "2 200 image/jpeg");
    let size = imagesize::size(&out).unwrap();
    assert_eq!((size.width, size.height), (300, 200));
}

/// A PNG whose header claims `w`×`h` pixels, with only a sliver of real data: tiny on the wire,
/// enormous once decoded.
fn png_bomb(w: u32, h: u32) -> Vec<u8> {
    fn crc32(data: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in data {
            crc ^= b as u32;
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
    fn chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut typed = kind.to_vec();
        typed.extend_from_slice(data);
        out.extend_from_slice(&typed);
        out.extend_from_slice(&crc32(&typed).to_be_bytes());
    }
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(&mut png, b"IHDR", &ihdr);
    // A stored (uncompressed) zlib block of zeros: the first row, nothing more.
    let row = vec![0u8; 1 + 3 * 64];
    let mut z = vec![0x78, 0x01, 0x01];
    z.extend_from_slice(&(row.len() as u16).to_le_bytes());
    z.extend_from_slice(&(!(row.len() as u16)).to_le_bytes());
    z.extend_from_slice(&row);
    chunk(&mut png, b"IDAT", &z);
    chunk(&mut png, b"IEND", &[]);
    png
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn decompression_bombs_are_refused_from_the_header() {
    let s = Imgedge::start(&["-mount", testdata().to_str().unwrap()]);
    let bomb = png_bomb(20_000, 20_000);
    assert!(bomb.len() < 1000);
    for endpoint in [
        "/resize?width=100",
        "/info",
        "/convert?type=webp",
        "/zoom?factor=2",
    ] {
        assert_eq!(
            s.post(endpoint, "image/png", &bomb).error(422),
            "Image resolution is too big",
            "{endpoint}"
        );
    }
    // Huge SVG canvas: same rule, before rendering.
    let svg = br#"<svg xmlns="http://www.w3.org/2000/svg" width="100000" height="100000"><rect width="1" height="1"/></svg>"#;
    assert_eq!(
        s.post("/resize?width=100&type=png", "image/svg+xml", svg)
            .error(422),
        "Image resolution is too big"
    );
    // Entity expansion ("billion laughs") is refused by the parser.
    let mut lol = String::from("<?xml version=\"1.0\"?>\n<!DOCTYPE svg [\n<!ENTITY l0 \"lol\">\n");
    for i in 1..10 {
        lol.push_str(&format!(
            "<!ENTITY l{i} \"{}\">\n",
            format!("&l{};", i - 1).repeat(10)
        ));
    }
    lol.push_str("]>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"100\" height=\"100\"><text>&l9;</text></svg>");
    let msg = s
        .post("/resize?width=50&type=png", "image/svg+xml", lol.as_bytes())
        .error(400);
    assert!(
        msg.starts_with("Error while processing the image:"),
        "{msg}"
    );
    // Zoom and enlarge cannot make a giant output either.
    let msg = s.get("/zoom?factor=40&file=scene.jpg").error(400);
    assert!(msg.contains("Maximum image size exceeded"), "{msg}");
    let msg = s
        .get("/enlarge?width=30000&height=30000&file=scene.jpg")
        .error(400);
    assert!(msg.contains("Maximum image size exceeded"), "{msg}");
    // The process stayed small and is still serving.
    assert!(
        rss_kib(s.child.id()) < 400 * 1024,
        "peak RSS {} KiB",
        rss_kib(s.child.id())
    );
    assert_eq!(s.get("/resize?width=300&file=scene.jpg").size(), (300, 200));
}

#[test]
fn svg_never_fetches_external_resources() {
    let origin = Origin::start(vec![(
        "/pixel.png",
        Resource::ok("image/png", sample("badge.png")),
    )]);
    let s = Imgedge::start(&["-mount", testdata().to_str().unwrap()]);
    let svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="100" height="100"><image xlink:href="{}" width="100" height="100"/><image href="file:///etc/passwd" width="10" height="10"/></svg>"#,
        origin.url("/pixel.png")
    );
    let r = s.post("/resize?width=50&type=png", "image/svg+xml", svg.as_bytes());
    assert_eq!(r.status, 200);
    assert_eq!(r.size(), (50, 50));
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(
        origin.total(),
        0,
        "the SVG renderer fetched an external resource"
    );
}

#[test]
fn hostile_params_get_clean_errors() {
    let s = Imgedge::start(&["-mount", testdata().to_str().unwrap()]);
    for (query, status) in [
        ("/resize?width=1e400&file=scene.jpg", 400),
        ("/resize?width=nan&file=scene.jpg", 400),
        ("/resize?width=99999999999&file=scene.jpg", 400),
        ("/resize?width=100&background=1,2&file=scene.jpg", 400),
        ("/resize?width=100&aspectratio=16&file=scene.jpg", 400),
        ("/resize?width=100&aspectratio=0:0&file=scene.jpg", 400),
        ("/blur?sigma=1e9&file=scene.jpg", 400),
        (
            "/pipeline?operations=%5B%7B%22operation%22%3A%22nope%22%7D%5D&file=scene.jpg",
            400,
        ),
        ("/pipeline?operations=not-json&file=scene.jpg", 400),
        ("/resize?width=%ff%fe&file=scene.jpg", 400),
    ] {
        let r = s.get(query);
        assert_eq!(
            r.status,
            status,
            "{query}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(
            r.header("content-type"),
            Some("application/json"),
            "{query}"
        );
    }
    let too_many = serde_json::json!((0..11)
        .map(|_| serde_json::json!({"operation": "flip"}))
        .collect::<Vec<_>>());
    let msg = s
        .get(&format!(
            "/pipeline?operations={}&file=scene.jpg",
            enc(&too_many.to_string())
        ))
        .error(400);
    assert!(
        msg.contains("Maximum allowed pipeline operations exceeded"),
        "{msg}"
    );
    let long = "x".repeat(3000);
    let msg = s
        .get(&format!("/watermark?text={long}&file=scene.jpg"))
        .error(400);
    assert!(msg.contains("watermark text"), "{msg}");
    assert_eq!(s.get("/health").status, 200);
}

#[test]
fn a_full_worker_queue_answers_503_with_retry_after() {
    // One worker, no queue: concurrent cold transforms beyond the first are refused, each after
    // the refusal's hold (REFUSAL_HOLD: a client that asks again at once must not turn refusals into
    // the server's main work).
    let s = Imgedge::start(&[
        "-mount",
        testdata().to_str().unwrap(),
        "-cpus",
        "1",
        "-queue",
        "0",
    ]);
    let timed: Vec<(common::Reply, Duration)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..6)
            .map(|i| {
                let url = s.url(&format!("/blur?sigma=40&width={}&file=scene.jpg", 900 + i));
                scope.spawn(move || {
                    let asked = Instant::now();
                    let reply = request("GET", &url, &[], None);
                    (reply, asked.elapsed())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (reply, took) in &timed {
        if reply.status == 503 {
            assert!(*took >= REFUSAL_HOLD, "answered in {took:?}");
        }
    }
    let replies: Vec<common::Reply> = timed.into_iter().map(|(r, _)| r).collect();
    assert!(
        replies.iter().any(|r| r.status == 200),
        "the worker served one"
    );
    let refused: Vec<_> = replies.iter().filter(|r| r.status == 503).collect();
    assert!(
        !refused.is_empty(),
        "statuses: {:?}",
        replies.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    for r in refused {
        assert_eq!(r.header("retry-after"), Some("1"));
        assert_eq!(r.json()["status"], 503);
    }
    // Refusals are answers, not a broken server.
    assert_eq!(s.get("/resize?width=300&file=scene.jpg").size(), (300, 200));
}
