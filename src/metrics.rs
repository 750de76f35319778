//! Every Prometheus metric imgedge exports, defined once. Process-wide by nature (one registry
//! per process), so they live in a global that any layer can bump without threading a handle
//! through every call.

use std::cell::RefCell;
use std::sync::OnceLock;
use std::thread::LocalKey;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

use crate::cache::CacheStats;

pub struct Metrics {
    registry: Registry,
    /// Requests answered, by endpoint and status.
    pub requests: IntCounterVec,
    /// Whole-request latency by endpoint.
    pub request_seconds: HistogramVec,
    /// libvips work by operation (endpoint) and output format.
    pub transform_seconds: HistogramVec,
    /// Responses by cache outcome: HIT-MEMORY, HIT-DISK, MISS, COALESCED, BYPASS.
    pub cache_outcomes: IntCounterVec,
    /// Origin fetch latency (whole fetch, redirects included) and failures by reason.
    pub origin_seconds: Histogram,
    pub origin_errors: IntCounterVec,
    /// Origin responses answered from the source cache, revalidated, or fetched.
    pub source_cache: IntCounterVec,
    /// The worker pool: transforms waiting for a worker, and running.
    pub pool_waiting: IntGauge,
    pub pool_in_flight: IntGauge,
    /// Requests refused because the pool queue was full.
    pub pool_rejected: IntCounter,
    pub process_rss_bytes: IntGauge,
}

const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

impl Metrics {
    fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some("imgedge".into()), None)?;
        let hist = |name: &str, help: &str, labels: &[&str]| {
            HistogramVec::new(
                HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()),
                labels,
            )
        };
        let m = Metrics {
            requests: IntCounterVec::new(
                Opts::new(
                    "requests_total",
                    "Requests answered, by endpoint and status",
                ),
                &["endpoint", "status"],
            )?,
            request_seconds: hist(
                "request_duration_seconds",
                "Time from request to response written, by endpoint",
                &["endpoint"],
            )?,
            transform_seconds: hist(
                "transform_duration_seconds",
                "libvips time per transform, by operation and output format",
                &["operation", "format"],
            )?,
            cache_outcomes: IntCounterVec::new(
                Opts::new("cache_responses_total", "Image responses by cache outcome"),
                &["outcome"],
            )?,
            origin_seconds: Histogram::with_opts(
                HistogramOpts::new("origin_fetch_duration_seconds", "Origin fetch time")
                    .buckets(LATENCY_BUCKETS.to_vec()),
            )?,
            origin_errors: IntCounterVec::new(
                Opts::new("origin_errors_total", "Failed origin fetches, by reason"),
                &["reason"],
            )?,
            source_cache: IntCounterVec::new(
                Opts::new(
                    "source_cache_total",
                    "Origin sources: fresh hits, revalidations, fetches",
                ),
                &["result"],
            )?,
            pool_waiting: IntGauge::new("pool_waiting", "Transforms waiting for an image worker")?,
            pool_in_flight: IntGauge::new("pool_in_flight", "Transforms running on image workers")?,
            pool_rejected: IntCounter::new(
                "pool_rejected_total",
                "Requests answered 503 because the worker queue was full",
            )?,
            process_rss_bytes: IntGauge::new("process_resident_memory_bytes", "Resident set size")?,
            registry,
        };
        let collectors: [Box<dyn prometheus::core::Collector>; 11] = [
            Box::new(m.requests.clone()),
            Box::new(m.request_seconds.clone()),
            Box::new(m.transform_seconds.clone()),
            Box::new(m.cache_outcomes.clone()),
            Box::new(m.origin_seconds.clone()),
            Box::new(m.origin_errors.clone()),
            Box::new(m.source_cache.clone()),
            Box::new(m.pool_waiting.clone()),
            Box::new(m.pool_in_flight.clone()),
            Box::new(m.pool_rejected.clone()),
            Box::new(m.process_rss_bytes.clone()),
        ];
        for c in collectors {
            m.registry.register(c)?;
        }
        Ok(m)
    }

    /// The text exposition: every registered metric, then the cache's counters.
    pub fn render(&self, cache: Option<&CacheStats>) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        let mut out = String::from_utf8(buf).unwrap_or_default();
        if let Some(stats) = cache {
            render_cache(&mut out, stats);
        }
        out
    }

    /// One answered request: `requests{endpoint,status}` and `request_seconds{endpoint}`.
    pub fn answered(&self, endpoint: &'static str, status: u16, seconds: f64) {
        type Children = RefCell<Vec<((&'static str, u16), (IntCounter, Histogram))>>;
        thread_local!(static CHILDREN: Children = const { RefCell::new(Vec::new()) });
        let make = || {
            // The status as text, without an allocation for the codes `http` knows.
            let known = http::StatusCode::from_u16(status).ok();
            let code = known
                .as_ref()
                .map_or(status.to_string(), |c| c.as_str().into());
            (
                self.requests.with_label_values(&[endpoint, &code]),
                self.request_seconds.with_label_values(&[endpoint]),
            )
        };
        local(&CHILDREN, (endpoint, status), make, |(count, latency)| {
            count.inc();
            latency.observe(seconds);
        });
    }

    /// One image response by cache outcome (`hit-memory`, `miss`, ...).
    pub fn cache_outcome(&self, outcome: &'static str) {
        thread_local!(static CHILDREN: RefCell<Vec<(&'static str, IntCounter)>> = const {
            RefCell::new(Vec::new())
        });
        let make = || self.cache_outcomes.with_label_values(&[outcome]);
        local(&CHILDREN, outcome, make, IntCounter::inc);
    }
}

/// Uses the labelled child `key` names, looked up once per thread: `with_label_values` hashes
/// the labels and takes the vec's lock on each call, three times per cache hit (1.6 % of its
/// CPU). The children are the single [`metrics`]' (nothing else builds a `Metrics`), and never
/// removed from their vecs, so a kept one stays the exported one. A thread keeps at most
/// `LOCAL_CHILDREN` (endpoints × statuses seen); past that its list starts again.
fn local<K: PartialEq, T>(
    list: &'static LocalKey<RefCell<Vec<(K, T)>>>,
    key: K,
    make: impl FnOnce() -> T,
    f: impl FnOnce(&T),
) {
    const LOCAL_CHILDREN: usize = 64;
    list.with_borrow_mut(|children| {
        let i = match children.iter().position(|(k, _)| *k == key) {
            Some(i) => i,
            None => {
                if children.len() >= LOCAL_CHILDREN {
                    children.clear();
                }
                children.push((key, make()));
                children.len() - 1
            }
        };
        f(&children[i].1);
    });
}

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| Metrics::new().expect("metric definitions are valid"))
}

fn render_cache(out: &mut String, s: &CacheStats) {
    let counters: &[(&str, &str, u64)] = &[
        ("cache_memory_hits_total", "L1 hits", s.memory_hits),
        ("cache_memory_misses_total", "L1 misses", s.memory_misses),
        ("cache_memory_inserts_total", "L1 inserts", s.memory_inserts),
        (
            "cache_memory_evictions_total",
            "L1 evictions by size",
            s.memory_evictions,
        ),
        (
            "cache_memory_expirations_total",
            "L1 entries expired",
            s.memory_expirations,
        ),
        (
            "cache_memory_skipped_total",
            "Variants too large for L1",
            s.memory_skipped_too_large,
        ),
        ("cache_disk_hits_total", "L2 hits", s.disk_hits),
        ("cache_disk_misses_total", "L2 misses", s.disk_misses),
        ("cache_disk_inserts_total", "L2 inserts", s.disk_inserts),
        (
            "cache_disk_inserted_bytes_total",
            "Bytes handed to L2",
            s.disk_inserted_bytes,
        ),
        (
            "cache_disk_skipped_total",
            "Variants larger than an L2 block",
            s.disk_skipped_too_large,
        ),
        (
            "cache_disk_expired_removed_total",
            "Expired L2 entries removed",
            s.disk_expired_removed,
        ),
        (
            "cache_disk_unreadable_total",
            "Foreign or old-format L2 records removed",
            s.disk_unreadable,
        ),
        ("cache_disk_errors_total", "L2 read errors", s.disk_errors),
        (
            "cache_disk_dropped_writes_total",
            "L2 writes dropped under pressure",
            s.disk_dropped_writes,
        ),
        (
            "cache_disk_io_write_bytes_total",
            "Bytes written to L2 files",
            s.disk_io_write_bytes,
        ),
        (
            "cache_disk_io_read_bytes_total",
            "Bytes read from L2 files",
            s.disk_io_read_bytes,
        ),
        (
            "cache_stale_generation_removed_total",
            "Entries of purged sources removed",
            s.stale_generation_removed,
        ),
        (
            "cache_produce_total",
            "Variants produced (misses that did work)",
            s.produce_calls,
        ),
        (
            "cache_produce_failures_total",
            "Productions that failed",
            s.produce_failures,
        ),
        (
            "cache_coalesced_waiters_total",
            "Requests that waited for another's production",
            s.coalesced_waiters,
        ),
    ];
    let gauges: &[(&str, &str, u64)] = &[
        ("cache_memory_bytes", "Bytes in L1", s.memory_bytes),
        ("cache_memory_entries", "Entries in L1", s.memory_entries),
        (
            "cache_memory_capacity_bytes",
            "L1 capacity",
            s.memory_capacity_bytes,
        ),
        (
            "cache_disk_used_bytes",
            "Bytes in L2 blocks",
            s.disk_used_bytes,
        ),
        (
            "cache_disk_capacity_bytes",
            "L2 capacity",
            s.disk_capacity_bytes,
        ),
        (
            "cache_purged_sources",
            "Sources purged since the last purge-all",
            s.purged_sources,
        ),
    ];
    for (kind, list) in [("counter", counters), ("gauge", gauges)] {
        for (name, help, value) in list {
            out.push_str(&format!(
                "# HELP imgedge_{name} {help}\n# TYPE imgedge_{name} {kind}\nimgedge_{name} {value}\n"
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_registered_and_cache_metrics() {
        let m = metrics();
        m.requests.with_label_values(&["resize", "200"]).inc();
        m.transform_seconds
            .with_label_values(&["resize", "jpeg"])
            .observe(0.01);
        let text = m.render(Some(&CacheStats {
            memory_hits: 7,
            ..CacheStats::default()
        }));
        assert!(text.contains("imgedge_requests_total{endpoint=\"resize\",status=\"200\"}"));
        assert!(text.contains(
            "imgedge_transform_duration_seconds_bucket{format=\"jpeg\",operation=\"resize\""
        ));
        assert!(text.contains(
            "# TYPE imgedge_cache_memory_hits_total counter\nimgedge_cache_memory_hits_total 7\n"
        ));
    }
}
