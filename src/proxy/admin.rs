//! The non-image endpoints: `/` (versions), `/health` and `/form` (spec §11).

use std::time::Instant;

use super::response::Reply;
use crate::config::clean_path;

/// The API level imgedge answers for: imaginary's last release, with bimg's version as the
/// index reports it (clients compare these, so they name the contract, not our code).
const IMAGINARY_API: &str = "1.2.4";
const BIMG: &str = "1.1.7";

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

/// imaginary's health figures. The Go-runtime ones have no Rust meaning: memory figures come
/// from the process RSS, `goroutines` counts the process's threads, GC cycles are 0.
pub fn health(started: Instant) -> Reply {
    let rss_mib = process_rss_bytes() as f64 / (1024.0 * 1024.0);
    let mib = (rss_mib * 100.0).round() / 100.0;
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    Reply::json(
        200,
        format!(
            "{{\"uptime\":{},\"allocatedMemory\":{mib},\"totalAllocatedMemory\":{mib},\"goroutines\":{},\"completedGCCycles\":0,\"cpus\":{cpus},\"maxHeapUsage\":{mib},\"heapInUse\":{mib},\"objectsInUse\":0,\"OSMemoryObtained\":{mib}}}",
            started.elapsed().as_secs(),
            thread_count(),
        ),
    )
}

/// Resident set size from `/proc/self/statm` (0 where unavailable).
pub fn process_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count())
}

/// The HTML playground: one upload form per operation, exactly as imaginary writes it.
pub fn form(prefix: &str) -> Reply {
    const PIPELINE: &str = "operations=%5B%7B%22operation%22:%20%22crop%22,%20%22params%22:%20%7B%22width%22:%20300,%20%22height%22:%20260%7D%7D,%20%7B%22operation%22:%20%22convert%22,%20%22params%22:%20%7B%22type%22:%20%22webp%22%7D%7D%5D";
    let entries: [(&str, &str, &str); 18] = [
        ("Resize", "resize", "width=300&height=200&type=jpeg"),
        ("Force resize", "resize", "width=300&height=200&force=true"),
        ("Crop", "crop", "width=300&quality=95"),
        ("SmartCrop", "crop", "width=300&height=260&quality=95&gravity=smart"),
        ("Extract", "extract", "top=100&left=100&areawidth=300&areaheight=150"),
        ("Enlarge", "enlarge", "width=1440&height=900&quality=95"),
        ("Rotate", "rotate", "rotate=180"),
        ("AutoRotate", "autorotate", "quality=90"),
        ("Flip", "flip", ""),
        ("Flop", "flop", ""),
        ("Thumbnail", "thumbnail", "width=100"),
        ("Zoom", "zoom", "factor=2&areawidth=300&top=80&left=80"),
        ("Color space (black&white)", "resize", "width=400&height=300&colorspace=bw"),
        ("Add watermark", "watermark", "textwidth=100&text=Hello&font=sans%2012&opacity=0.5&color=255,200,50"),
        ("Convert format", "convert", "type=png"),
        ("Image metadata", "info", ""),
        ("Gaussian blur", "blur", "sigma=15.0&minampl=0.2"),
        ("Pipeline (image reduction via multiple transformations)", "pipeline", PIPELINE),
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

    #[test]
    fn health_has_imaginarys_keys_in_order() {
        let body = String::from_utf8(health(Instant::now()).body.to_vec()).unwrap();
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert!(v["allocatedMemory"].as_f64().unwrap() > 0.0);
        assert!(body.starts_with("{\"uptime\":0,\"allocatedMemory\":"));
        assert!(body.ends_with("\"OSMemoryObtained\":") || body.contains("\"OSMemoryObtained\":"));
    }
}
