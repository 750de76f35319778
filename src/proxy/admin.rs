//! The non-image endpoints: `/` (versions), `/health`, `/health/live`, `/health/ready`,
//! `/metrics` and `/form` (spec §11), and the optional admin listener (`-admin-listen`) that
//! serves the health and metrics answers alone.
//!
//! Liveness and readiness are separate on purpose: a process that is draining after SIGTERM is
//! alive (do not restart it) but not ready (send it no new requests).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use super::response::Reply;
use crate::cache::Cache;
use crate::config::clean_path;
use crate::error::Error;
use crate::metrics::metrics;
use crate::policy::pool::Pool;

/// The API level imgedge answers for: imaginary's last release, with bimg's version as the
/// index reports it (clients compare these, so they name the contract, not our code).
const IMAGINARY_API: &str = "1.2.4";
const BIMG: &str = "1.1.7";

/// Set once SIGTERM arrives: readiness fails from then on. Process-wide like the signal itself.
static DRAINING: AtomicBool = AtomicBool::new(false);

/// Marks the process as shutting down: `/health/ready` answers 503 from now on.
pub fn start_draining() {
    DRAINING.store(true, Ordering::Release);
}

/// Whether SIGTERM has arrived.
pub fn is_draining() -> bool {
    DRAINING.load(Ordering::Acquire)
}

/// Handles on what the health and metrics answers report: the edge's worker pool and cache.
/// Cheap to clone; shared by the main and the admin listener.
#[derive(Clone)]
pub struct Status {
    pub started: Instant,
    pub pool: Arc<Pool>,
    pub cache: Cache,
    /// Image workers (`-cpus`) and the wait queue's bound (`-queue`).
    pub workers: usize,
    pub queue: usize,
}

/// `{"imaginary":…,"bimg":…,"libvips":…}` plus imgedge's own version as a last key.
pub fn index(libvips: &str) -> Reply {
    Reply::json(
        200,
        format!(
            "{{\"imaginary\":\"{IMAGINARY_API}\",\"bimg\":\"{BIMG}\",\"libvips\":\"{libvips}\",\"imgedge\":\"{}\"}}",
            env!("CARGO_PKG_VERSION")
        ),
    )
}

/// imaginary's health figures first, in its key order, then imgedge's own. The Go-runtime
/// figures have no Rust meaning: memory figures come from the process RSS (MiB), `goroutines`
/// counts the process's threads, GC cycles are 0.
pub async fn health(status: &Status) -> Reply {
    // moka applies its bookkeeping in batches: settle it so sizes and counts are exact.
    status.cache.sync().await;
    let rss = process_rss_bytes();
    let mib = (rss as f64 / (1024.0 * 1024.0) * 100.0).round() / 100.0;
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = thread_count();
    let c = status.cache.stats();
    let imaginary = format!(
        "\"uptime\":{},\"allocatedMemory\":{mib},\"totalAllocatedMemory\":{mib},\"goroutines\":{threads},\"completedGCCycles\":0,\"cpus\":{cpus},\"maxHeapUsage\":{mib},\"heapInUse\":{mib},\"objectsInUse\":0,\"OSMemoryObtained\":{mib}",
        status.started.elapsed().as_secs(),
    );
    let own = format!(
        "\"version\":\"{}\",\"pid\":{},\"ready\":{},\"rssBytes\":{rss},\"threads\":{threads},\"pool\":{{\"workers\":{},\"queueLimit\":{},\"waiting\":{},\"inFlight\":{},\"rejected\":{}}},\"cache\":{{\"memoryBytes\":{},\"memoryEntries\":{},\"memoryCapacityBytes\":{},\"diskUsedBytes\":{},\"diskCapacityBytes\":{},\"memoryHits\":{},\"diskHits\":{},\"produced\":{},\"coalesced\":{}}}",
        env!("CARGO_PKG_VERSION"),
        std::process::id(),
        !is_draining(),
        status.workers,
        status.queue,
        status.pool.waiting(),
        status.pool.in_flight(),
        metrics().pool_rejected.get(),
        c.memory_bytes,
        c.memory_entries,
        c.memory_capacity_bytes,
        c.disk_used_bytes,
        c.disk_capacity_bytes,
        c.memory_hits,
        c.disk_hits,
        c.produce_calls,
        c.coalesced_waiters,
    );
    Reply::json(200, format!("{{{imaginary},{own}}}"))
}

/// Liveness: the process answers. Only a hung process fails it (then restart it).
pub fn live() -> Reply {
    Reply::json(200, "{\"live\":true}")
}

/// Readiness: 200 while serving, 503 from SIGTERM on (`-shutdown-delay` keeps the listener
/// open that long, so balancers see this before the port closes).
pub fn ready() -> Reply {
    match is_draining() {
        false => Reply::json(200, "{\"ready\":true}"),
        true => Reply::json(503, "{\"ready\":false,\"reason\":\"shutting down\"}"),
    }
}

/// `GET /metrics`: Prometheus text exposition, with the gauges read at scrape time.
pub async fn metrics_reply(status: &Status) -> Reply {
    status.cache.sync().await;
    let m = metrics();
    m.pool_waiting.set(status.pool.waiting() as i64);
    m.pool_in_flight.set(status.pool.in_flight() as i64);
    m.process_rss_bytes.set(process_rss_bytes() as i64);
    let stats = status.cache.stats();
    Reply::new(200, "text/plain; version=0.0.4", m.render(Some(&stats)))
}

/// Resident set size from `/proc/self/statm` (0 where unavailable).
pub fn process_rss_bytes() -> u64 {
    // SAFETY: sysconf only reads a system constant.
    let page = match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        n if n > 0 => n as u64,
        _ => 4096,
    };
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * page)
}

fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count())
}

/// The `-admin-listen` listener: health and metrics only, with no API key, rate limit or path
/// prefix, so probes and scrapers on a private port need no secrets. Anything else is 404.
pub struct AdminApp {
    status: Status,
}

impl AdminApp {
    pub fn new(status: Status) -> Self {
        AdminApp { status }
    }

    /// The reply for one admin request (method, path).
    pub async fn reply(&self, method: &http::Method, path: &str) -> Reply {
        if method != http::Method::GET && method != http::Method::HEAD {
            return Reply::error(&Error::MethodNotAllowed);
        }
        match path {
            "/health" => health(&self.status).await,
            "/health/live" => live(),
            "/health/ready" => ready(),
            "/metrics" => metrics_reply(&self.status).await,
            _ => Reply::error(&Error::NotFound),
        }
    }
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> http::Response<Vec<u8>> {
        let req = session.req_header();
        let reply = self.reply(&req.method, req.uri.path()).await;
        let mut response = http::Response::builder()
            .status(reply.status)
            .header("Content-Length", reply.body.len().to_string())
            .header("Server", concat!("imgedge/", env!("CARGO_PKG_VERSION")))
            .header("Cache-Control", "no-store");
        for (name, value) in &reply.headers {
            response = response.header(*name, value.as_ref());
        }
        response
            .body(reply.body.to_vec())
            .unwrap_or_else(|_| http::Response::new(Vec::new()))
    }
}

/// The HTML playground: one upload form per operation, exactly as imaginary writes it.
pub fn form(prefix: &str) -> Reply {
    const PIPELINE: &str = "operations=%5B%7B%22operation%22:%20%22crop%22,%20%22params%22:%20%7B%22width%22:%20300,%20%22height%22:%20260%7D%7D,%20%7B%22operation%22:%20%22convert%22,%20%22params%22:%20%7B%22type%22:%20%22webp%22%7D%7D%5D";
    let entries: [(&str, &str, &str); 18] = [
        ("Resize", "resize", "width=300&height=200&type=jpeg"),
        ("Force resize", "resize", "width=300&height=200&force=true"),
        ("Crop", "crop", "width=300&quality=95"),
        (
            "SmartCrop",
            "crop",
            "width=300&height=260&quality=95&gravity=smart",
        ),
        (
            "Extract",
            "extract",
            "top=100&left=100&areawidth=300&areaheight=150",
        ),
        ("Enlarge", "enlarge", "width=1440&height=900&quality=95"),
        ("Rotate", "rotate", "rotate=180"),
        ("AutoRotate", "autorotate", "quality=90"),
        ("Flip", "flip", ""),
        ("Flop", "flop", ""),
        ("Thumbnail", "thumbnail", "width=100"),
        ("Zoom", "zoom", "factor=2&areawidth=300&top=80&left=80"),
        (
            "Color space (black&white)",
            "resize",
            "width=400&height=300&colorspace=bw",
        ),
        (
            "Add watermark",
            "watermark",
            "textwidth=100&text=Hello&font=sans%2012&opacity=0.5&color=255,200,50",
        ),
        ("Convert format", "convert", "type=png"),
        ("Image metadata", "info", ""),
        ("Gaussian blur", "blur", "sigma=15.0&minampl=0.2"),
        (
            "Pipeline (image reduction via multiple transformations)",
            "pipeline",
            PIPELINE,
        ),
    ];
    let mut html = String::from("<html><body>");
    for (title, endpoint, query) in entries {
        let heading = clean_path(&format!("{prefix}/{title}"));
        let action = clean_path(&format!("{prefix}/{endpoint}"));
        html.push_str(&format!(
            "\n\t\t<h1>{heading}</h1>\n\t\t<form method=\"POST\" action=\"{action}?{query}\" enctype=\"multipart/form-data\">\n\t\t<input type=\"file\" name=\"file\" />\n\t\t<input type=\"submit\" value=\"Upload\" />\n\t\t</form>"
        ));
    }
    html.push_str("</body></html>");
    Reply::new(200, "text/html", html)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_lists_every_operation_under_the_prefix() {
        let body = String::from_utf8(form("/api").body.to_vec()).unwrap();
        assert!(body.starts_with("<html><body>\n\t\t<h1>/api/Resize</h1>"));
        assert!(body.contains("action=\"/api/flip?\""));
        assert!(body.contains("<h1>/api/Color space (black&white)</h1>"));
        assert!(body.ends_with("</form></body></html>"));
        assert_eq!(body.matches("<form ").count(), 18);
    }

    async fn status() -> Status {
        let cache = Cache::open(crate::cache::CacheConfig {
            disk_bytes: 0,
            memory_bytes: 1 << 20,
            ..Default::default()
        })
        .await
        .unwrap();
        Status {
            started: Instant::now(),
            pool: Arc::new(Pool::new(3, 7, std::time::Duration::from_secs(10))),
            cache,
            workers: 3,
            queue: 7,
        }
    }

    #[tokio::test]
    async fn health_has_imaginarys_keys_first_then_real_figures() {
        let body = String::from_utf8(health(&status().await).await.body.to_vec()).unwrap();
        assert!(
            body.starts_with("{\"uptime\":0,\"allocatedMemory\":"),
            "{body}"
        );
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert!(v["allocatedMemory"].as_f64().unwrap() > 0.0);
        let imaginary = body.find("\"OSMemoryObtained\"").unwrap();
        assert!(
            imaginary < body.find("\"pid\"").unwrap(),
            "imaginary's keys come first"
        );
        assert_eq!(v["pid"].as_u64(), Some(std::process::id() as u64));
        assert!(v["rssBytes"].as_u64().unwrap() > 0);
        assert_eq!(v["pool"]["workers"], 3);
        assert_eq!(v["pool"]["queueLimit"], 7);
        assert_eq!(v["pool"]["inFlight"], 0);
        assert_eq!(v["cache"]["memoryCapacityBytes"], 1 << 20);
        assert_eq!(v["cache"]["diskCapacityBytes"], 0);
    }

    #[tokio::test]
    async fn admin_listener_answers_health_and_metrics_only() {
        let app = AdminApp::new(status().await);
        let get = http::Method::GET;
        assert_eq!(app.reply(&get, "/health").await.status, 200);
        assert_eq!(app.reply(&get, "/health/live").await.status, 200);
        let metrics = app.reply(&get, "/metrics").await;
        assert!(String::from_utf8_lossy(&metrics.body).contains("imgedge_pool_in_flight 0"));
        assert_eq!(app.reply(&get, "/resize").await.status, 404);
        assert_eq!(app.reply(&http::Method::POST, "/health").await.status, 405);
    }
}
