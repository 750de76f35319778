//! The edge cache, black-box: which tier answered (X-Cache), how often the origin was asked
//! (counted at the origin), and HTTP caching semantics.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{enc, request, sample, testdata, Imgedge, Origin, Resource};

fn url_source() -> Vec<&'static str> {
    vec!["-enable-url-source", "-allow-private-origins"]
}

#[test]
fn fifty_concurrent_cold_requests_fetch_once_then_memory_then_disk_after_restart() {
    let origin = Origin::start(vec![(
        "/a.jpg",
        Resource::ok("image/jpeg", sample("scene.jpg")),
    )]);
    let s = Imgedge::start(&url_source());
    let path = format!("/resize?width=300&url={}", enc(&origin.url("/a.jpg")));
    let url = s.url(&path);
    let replies: Vec<common::Reply> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..50)
            .map(|_| scope.spawn(|| request("GET", &url, &[], None)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        origin.hits("/a.jpg"),
        1,
        "one origin fetch for 50 concurrent misses"
    );
    for r in &replies {
        assert_eq!(r.status, 200);
        assert_eq!(r.body, replies[0].body, "identical bodies");
        assert_eq!(r.size(), (300, 200));
    }
    let hit = s.get(&path);
    assert_eq!(hit.header("x-cache"), Some("HIT-MEMORY"));
    assert_eq!(hit.body, replies[0].body);
    assert!(hit.header("age").is_some());

    // Same disk directory, new process: the variant comes from disk, the origin is not asked.
    let dir = s.stop_keep_dir();
    let s = Imgedge::start_in(dir, &url_source());
    let disk = s.get(&path);
    assert_eq!(disk.header("x-cache"), Some("HIT-DISK"));
    assert_eq!(disk.body, replies[0].body);
    assert_eq!(origin.hits("/a.jpg"), 1);
    assert_eq!(s.get(&path).header("x-cache"), Some("HIT-MEMORY"));
}

/// New variants wait up to 50 ms to be written with others; a stop right after they are made
/// (with `-grace-period 0`, pingora drops its runtimes' tasks at once) must still write them.
#[test]
fn variants_made_just_before_a_stop_are_on_disk_after_it() {
    let mount = testdata();
    let args = ["-mount", mount.to_str().unwrap()];
    let mut dir = None;
    for round in 0..8 {
        let s = match dir.take() {
            None => Imgedge::start(&args),
            Some(d) => Imgedge::start_in(d, &args),
        };
        for earlier in 0..round {
            let r = s.get(&format!("/resize?width={}&file=scene.jpg", 100 + earlier));
            assert_eq!(
                r.header("x-cache"),
                Some("HIT-DISK"),
                "width {}",
                100 + earlier
            );
        }
        let made = s.get(&format!("/resize?width={}&file=scene.jpg", 100 + round));
        assert_eq!(made.header("x-cache"), Some("MISS"));
        dir = Some(s.stop_keep_dir());
    }
}

#[test]
fn etag_and_if_none_match() {
    let s = Imgedge::start(&["-mount", testdata().to_str().unwrap()]);
    let first = s.get("/resize?width=200&file=scene.jpg");
    assert_eq!(first.header("x-cache"), Some("MISS"));
    let etag = first.header("etag").unwrap().to_string();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    assert!(first
        .header("cache-control")
        .unwrap()
        .starts_with("public, max-age="));
    let again = request(
        "GET",
        &s.url("/resize?width=200&file=scene.jpg"),
        &[("If-None-Match", &format!("\"x\", W/{etag}"))],
        None,
    );
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    assert_eq!(again.header("etag"), Some(etag.as_str()));
    let other = request(
        "GET",
        &s.url("/resize?width=200&file=scene.jpg"),
        &[("If-None-Match", "\"something-else\"")],
        None,
    );
    assert_eq!(other.status, 200);
    // A different variant has a different tag.
    assert_ne!(
        s.get("/resize?width=201&file=scene.jpg").header("etag"),
        Some(etag.as_str())
    );
}

#[test]
fn equivalent_queries_share_one_variant() {
    let s = Imgedge::start(&["-mount", testdata().to_str().unwrap()]);
    assert_eq!(
        s.get("/resize?width=300&file=scene.jpg").header("x-cache"),
        Some("MISS")
    );
    for same in [
        "/resize?width=0300&file=scene.jpg",
        "/resize?file=scene.jpg&width=300&foo=1",
        "/resize?width=300&width=999&file=scene.jpg",
    ] {
        assert_eq!(s.get(same).header("x-cache"), Some("HIT-MEMORY"), "{same}");
    }
    assert_eq!(
        s.get("/resize?width=301&file=scene.jpg").header("x-cache"),
        Some("MISS")
    );
    // Negotiated formats are separate variants, and say so.
    let webp = request(
        "GET",
        &s.url("/resize?width=300&type=auto&file=scene.jpg"),
        &[("Accept", "image/webp")],
        None,
    );
    assert_eq!(webp.header("x-cache"), Some("MISS"));
    assert_eq!(webp.header("content-type"), Some("image/webp"));
    assert!(webp.header("vary").unwrap().contains("Accept"));
    let jpeg = s.get("/resize?width=300&type=auto&file=scene.jpg");
    assert_eq!(jpeg.header("content-type"), Some("image/jpeg"));
    // Repeated at once (the key memo's shortcut): the same answers, per Accept, still varying.
    for (accept, format) in [("image/webp", "image/webp"), ("", "image/jpeg")] {
        let again = request(
            "GET",
            &s.url("/resize?width=300&type=auto&file=scene.jpg"),
            &[("Accept", accept)],
            None,
        );
        assert_eq!(again.header("x-cache"), Some("HIT-MEMORY"), "{accept}");
        assert_eq!(again.header("content-type"), Some(format));
        assert!(again.header("vary").unwrap().contains("Accept"), "{accept}");
    }
}

#[test]
fn an_edited_file_is_a_new_source() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("x.jpg"), sample("scene.jpg")).unwrap();
    let s = Imgedge::start(&["-mount", dir.path().to_str().unwrap()]);
    let before = s.get("/resize?width=100&file=x.jpg");
    assert_eq!(before.size(), (100, 67));
    assert_eq!(
        s.get("/resize?width=100&file=x.jpg").header("x-cache"),
        Some("HIT-MEMORY")
    );
    std::fs::write(dir.path().join("x.jpg"), sample("badge.png")).unwrap();
    // A request's key is trusted for a second (src/proxy/memo.rs); after that the file is
    // looked at again, and its new version is a new source.
    std::thread::sleep(Duration::from_millis(1100));
    let after = s.get("/resize?width=100&file=x.jpg");
    assert_eq!(after.header("x-cache"), Some("MISS"));
    assert_eq!(after.size(), (100, 75));
    // A query that differs only in spelling shares the variant but not the memo entry.
    let respelled = s.get("/resize?file=x.jpg&width=0100");
    assert_eq!(respelled.header("x-cache"), Some("HIT-MEMORY"));
    assert_eq!(respelled.size(), (100, 75));
}

/// With the memory tier off, a request repeated within a second goes to the disk tier with the
/// key it had (src/proxy/memo.rs): the source is not looked at, so a file removed in that
/// second is still answered with its variant; after it, the file is looked at again.
#[test]
fn a_repeated_request_is_answered_from_disk_without_its_source_for_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("x.jpg");
    let s = Imgedge::start(&["-mount", dir.path().to_str().unwrap(), "-cache-memory", "0"]);
    let mut attempt = 0;
    let url = loop {
        // A machine that stalls past the second between two requests proves nothing: again.
        attempt += 1;
        std::fs::write(&file, sample("scene.jpg")).unwrap();
        let url = format!("/resize?width={}&file=x.jpg", 100 + attempt);
        let started = Instant::now();
        let first = s.get(&url);
        assert_eq!(first.header("x-cache"), Some("MISS"));
        std::fs::remove_file(&file).unwrap();
        let again = s.get(&url);
        if started.elapsed() >= Duration::from_millis(900) {
            assert!(attempt < 5, "every attempt took over 0.9 s");
            continue;
        }
        assert_eq!(
            again.status,
            200,
            "{}",
            String::from_utf8_lossy(&again.body)
        );
        assert_eq!(again.header("x-cache"), Some("HIT-DISK"));
        assert_eq!(again.body, first.body);
        assert_eq!(again.size(), first.size());
        assert_eq!(first.size().0, 100 + attempt);
        break url;
    };
    std::thread::sleep(Duration::from_millis(1100));
    // imaginary's answer for a mounted file it cannot read.
    let gone = s.get(&url);
    assert_eq!(gone.status, 400);
    assert!(String::from_utf8_lossy(&gone.body).contains("Invalid file path"));
}

#[test]
fn fresh_sources_serve_many_variants_with_one_fetch() {
    let origin = Origin::start(vec![(
        "/f.jpg",
        Resource::ok("image/jpeg", sample("scene.jpg")).header("Cache-Control", "max-age=3600"),
    )]);
    let s = Imgedge::start(&url_source());
    let src = enc(&origin.url("/f.jpg"));
    for width in [100, 120, 140] {
        assert_eq!(
            s.get(&format!("/resize?width={width}&url={src}")).status,
            200
        );
    }
    assert_eq!(origin.total(), 1);
}

#[test]
fn stale_sources_are_revalidated_with_a_conditional_get() {
    let origin = Origin::start(vec![(
        "/r.jpg",
        Resource::ok("image/jpeg", sample("scene.jpg"))
            .header("ETag", "\"v1\"")
            .header("Cache-Control", "max-age=1"),
    )]);
    let s = Imgedge::start(&url_source());
    let src = enc(&origin.url("/r.jpg"));
    assert_eq!(s.get(&format!("/resize?width=100&url={src}")).status, 200);
    std::thread::sleep(Duration::from_millis(2100));
    let r = s.get(&format!("/resize?width=140&url={src}"));
    assert_eq!((r.status, r.size()), (200, (140, 93)));
    // However slow the machine, the body was sent once; every later ask was a 304.
    let revalidated = origin.not_modified.load(Ordering::SeqCst);
    assert!(revalidated >= 1, "a conditional GET was made");
    assert_eq!(origin.total() - revalidated, 1, "the body was fetched once");
}

#[test]
fn origin_404s_are_remembered_briefly() {
    let origin = Origin::start(vec![]);
    let s = Imgedge::start(&url_source());
    let path = format!("/resize?width=100&url={}", enc(&origin.url("/gone.jpg")));
    assert_eq!(s.get(&path).status, 404);
    assert_eq!(s.get(&path.replace("100", "101")).status, 404);
    assert_eq!(origin.total(), 1);
}

#[test]
fn post_results_are_cached_only_when_asked() {
    let s = Imgedge::start(&["-mount", testdata().to_str().unwrap()]);
    let body = sample("scene.jpg");
    let r = s.post("/resize?width=100", "image/jpeg", &body);
    assert_eq!(r.header("x-cache"), Some("BYPASS"));
    let s = Imgedge::start(&["-mount", testdata().to_str().unwrap(), "-cache-post"]);
    assert_eq!(
        s.post("/resize?width=100", "image/jpeg", &body)
            .header("x-cache"),
        Some("MISS")
    );
    assert_eq!(
        s.post("/resize?width=100", "image/jpeg", &body)
            .header("x-cache"),
        Some("HIT-MEMORY")
    );
    let other = sample("badge.png");
    assert_eq!(
        s.post("/resize?width=100", "image/png", &other)
            .header("x-cache"),
        Some("MISS")
    );
}

#[test]
fn tiers_can_be_switched_off() {
    let s = Imgedge::start(&[
        "-mount",
        testdata().to_str().unwrap(),
        "-cache-memory",
        "0",
        "-cache-disk",
        "0",
    ]);
    assert_eq!(
        s.get("/resize?width=100&file=scene.jpg").header("x-cache"),
        Some("MISS")
    );
    assert_eq!(
        s.get("/resize?width=100&file=scene.jpg").header("x-cache"),
        Some("MISS")
    );
    let s = Imgedge::start(&["-mount", testdata().to_str().unwrap(), "-cache-memory", "0"]);
    s.get("/resize?width=100&file=scene.jpg");
    assert_eq!(
        s.get("/resize?width=100&file=scene.jpg").header("x-cache"),
        Some("HIT-DISK")
    );
}

#[test]
fn purge_one_variant_a_source_or_everything() {
    let s = Imgedge::start(&[
        "-mount",
        testdata().to_str().unwrap(),
        "-admin-key",
        "adm1n",
    ]);
    let purge = |q: &str, key: &str| {
        request(
            "POST",
            &s.url(&format!("/admin/purge?{q}")),
            &[("Admin-Key", key)],
            Some(b""),
        )
    };
    s.get("/resize?width=100&file=scene.jpg");
    s.get("/resize?width=110&file=scene.jpg");
    s.get("/resize?width=100&file=badge.png");
    assert_eq!(purge("all=true", "wrong").status, 401);

    let variant = enc("/resize?width=100&file=scene.jpg");
    assert_eq!(purge(&format!("variant={variant}"), "adm1n").status, 200);
    assert_eq!(
        s.get("/resize?width=100&file=scene.jpg").header("x-cache"),
        Some("MISS")
    );
    assert_eq!(
        s.get("/resize?width=110&file=scene.jpg").header("x-cache"),
        Some("HIT-MEMORY")
    );

    assert_eq!(purge("source=scene.jpg", "adm1n").status, 200);
    assert_eq!(
        s.get("/resize?width=110&file=scene.jpg").header("x-cache"),
        Some("MISS")
    );
    assert_eq!(
        s.get("/resize?width=100&file=badge.png").header("x-cache"),
        Some("HIT-MEMORY")
    );

    assert_eq!(purge("all=true", "adm1n").status, 200);
    assert_eq!(
        s.get("/resize?width=100&file=badge.png").header("x-cache"),
        Some("MISS")
    );
    // Without -admin-key the endpoint does not exist.
    let plain = Imgedge::start(&["-mount", testdata().to_str().unwrap()]);
    let r = request("POST", &plain.url("/admin/purge?all=true"), &[], Some(b""));
    assert_eq!(r.status, 404);
}

#[test]
fn metrics_count_tiers_and_requests() {
    let s = Imgedge::start(&["-mount", testdata().to_str().unwrap()]);
    s.get("/resize?width=100&file=scene.jpg");
    s.get("/resize?width=100&file=scene.jpg");
    let m = s.get("/metrics");
    assert_eq!(m.status, 200);
    let text = String::from_utf8(m.body).unwrap();
    assert!(text.contains("imgedge_cache_memory_hits_total 1"), "{text}");
    assert!(text.contains("imgedge_cache_produce_total 1"));
    assert!(text.contains("imgedge_requests_total{endpoint=\"resize\",status=\"200\"} 2"));
    assert!(text.contains(
        "imgedge_transform_duration_seconds_count{format=\"jpeg\",operation=\"resize\"} 1"
    ));
    assert!(text.contains("imgedge_process_resident_memory_bytes"));
}

#[test]
fn stale_while_revalidate_answers_at_once_and_refreshes_behind() {
    let origin = Origin::start(vec![(
        "/s.jpg",
        Resource::ok("image/jpeg", sample("scene.jpg"))
            .header("ETag", "\"s1\"")
            .header("Cache-Control", "max-age=1, stale-while-revalidate=60"),
    )]);
    let s = Imgedge::start(&url_source());
    let src = enc(&origin.url("/s.jpg"));
    assert_eq!(s.get(&format!("/resize?width=100&url={src}")).status, 200);
    std::thread::sleep(Duration::from_millis(2100));
    // Stale but within the window: served from the kept copy, revalidated in the background.
    let r = s.get(&format!("/resize?width=150&url={src}"));
    assert_eq!((r.status, r.size()), (200, (150, 100)));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while origin.not_modified.load(Ordering::SeqCst) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no background revalidation"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        origin.total() - origin.not_modified.load(Ordering::SeqCst),
        1,
        "the body was fetched once"
    );
}
