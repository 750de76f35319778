//! Named origins: imgedge in front of a site or an object store, by path prefix. The S3 test
//! starts a real S3-compatible server (`s3s-fs`, installed by the Makefile) with a private
//! bucket.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use common::{request, sample, Imgedge, Origin, Resource};
use imagesize::ImageType;

/// Starts imgedge with a YAML config holding `origins`.
fn with_origins(yaml: &str, extra: &[&str]) -> Imgedge {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("imgedge.yaml");
    std::fs::write(&path, yaml).unwrap();
    let mut args = vec!["-config", path.to_str().unwrap()];
    args.extend_from_slice(extra);
    let s = Imgedge::start(&args);
    std::mem::forget(dir); // the config is read at start-up; the OS cleans /tmp
    s
}

#[test]
fn a_site_behind_a_prefix_transforms_and_passes_through() {
    let origin = Origin::start(vec![
        (
            "/img/scene.jpg",
            Resource::ok("image/jpeg", sample("scene.jpg")),
        ),
        (
            "/img/notes.txt",
            Resource::ok("text/plain", b"hello".to_vec()),
        ),
    ]);
    let s = with_origins(
        &format!(
            "origins:\n  - name: site\n    prefix: /photos\n    url: http://{}/img\n",
            origin.addr
        ),
        &[],
    );
    let r = s.get("/photos/scene.jpg?width=300");
    assert_eq!((r.status, r.size()), (200, (300, 200)));
    assert_eq!(r.header("x-cache"), Some("MISS"));
    let r = s.get("/photos/scene.jpg?op=crop&width=100&height=100&type=webp");
    assert_eq!((r.size(), r.format()), ((100, 100), ImageType::Webp));
    // One origin fetch served both variants (source cache).
    assert_eq!(origin.hits("/img/scene.jpg"), 1);
    // No image params: proxied untouched, whatever it is.
    let raw = s.get("/photos/scene.jpg");
    assert_eq!(raw.status, 200);
    assert_eq!(raw.body, sample("scene.jpg"));
    let txt = s.get("/photos/notes.txt");
    assert_eq!((txt.status, txt.body.as_slice()), (200, &b"hello"[..]));
    assert_eq!(txt.header("content-type"), Some("text/plain"));
    assert_eq!(
        s.get("/photos/missing.jpg?width=10")
            .error(404)
            .split(':')
            .next(),
        Some("error fetching remote http image")
    );
    assert_eq!(s.get("/photos/scene.jpg?op=explode&width=1").status, 400);
    assert_eq!(
        s.post("/photos/scene.jpg?width=1", "image/jpeg", b"x")
            .status,
        405
    );
}

fn s3s_fs() -> PathBuf {
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("s3s-fs"))
                .collect()
        })
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("CARGO_HOME").or_else(|| {
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo").into_os_string())
    }) {
        candidates.push(PathBuf::from(home).join("bin/s3s-fs"));
    }
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .expect("s3s-fs is installed by `make test` (cargo install s3s-fs)")
}

struct S3 {
    child: Child,
    port: u16,
    _root: tempfile::TempDir,
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A real S3-compatible server on loopback with a private bucket `photos`.
fn s3() -> S3 {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("photos")).unwrap();
    std::fs::write(root.path().join("photos/scene.jpg"), sample("scene.jpg")).unwrap();
    let port = common::free_port();
    let child = Command::new(s3s_fs())
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args([
            "--access-key",
            "AKIDIMGEDGE",
            "--secret-key",
            "imgedge-test-secret",
        ])
        .arg(root.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start s3s-fs");
    common::wait_listening(([127, 0, 0, 1], port).into());
    S3 {
        child,
        port,
        _root: root,
    }
}

fn s3_yaml(port: u16, secret: &str) -> String {
    format!(
        "origins:\n  - name: bucket\n    prefix: /photos\n    url: http://127.0.0.1:{port}\n    s3:\n      bucket: photos\n      access_key: AKIDIMGEDGE\n      secret_key: {secret}\n"
    )
}

#[test]
fn a_private_bucket_is_served_through_sigv4() {
    let store = s3();
    // The bucket is private: an unsigned request is refused by the store itself.
    let direct = request(
        "GET",
        &format!("http://127.0.0.1:{}/photos/scene.jpg", store.port),
        &[],
        None,
    );
    assert_eq!(
        direct.status, 403,
        "the bucket must be private for this test to mean anything"
    );

    let s = with_origins(&s3_yaml(store.port, "imgedge-test-secret"), &[]);
    let r = s.get("/photos/scene.jpg?width=300&type=png");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!((r.size(), r.format()), ((300, 200), ImageType::Png));
    assert_eq!(
        s.get("/photos/scene.jpg?width=300&type=png")
            .header("x-cache"),
        Some("HIT-MEMORY")
    );
    // Passthrough is signed too, and streams the object untouched.
    let raw = s.get("/photos/scene.jpg");
    assert_eq!(raw.status, 200);
    assert_eq!(raw.body, sample("scene.jpg"));

    // A wrong secret: the store refuses, the client sees the status, never the signature.
    let bad = with_origins(&s3_yaml(store.port, "wrong-secret"), &[]);
    let r = bad.get("/photos/scene.jpg?width=300");
    assert_eq!(r.status, 403);
    let msg = r.json()["message"].as_str().unwrap().to_string();
    assert!(!msg.contains("X-Amz-Signature"), "{msg}");
}
