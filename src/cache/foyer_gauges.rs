//! The few foyer internals the disk tier reports, read through foyer's metrics hook.
//!
//! foyer 0.22 has no public call for how full the disk is or how many writes it dropped; it
//! only reports them as metrics to a `mixtrics` registry. This registry keeps just those two
//! values in atomics (everything else goes nowhere), so `CacheStats` can show disk usage and
//! dropped writes without tying this module to Prometheus.

use std::borrow::Cow;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use mixtrics::metrics::{
    BoxedCounter, BoxedCounterVec, BoxedGauge, BoxedGaugeVec, BoxedHistogramVec, CounterOps,
    CounterVecOps, GaugeOps, GaugeVecOps, RegistryOps,
};
use mixtrics::registry::noop::NoopMetricsRegistry;

/// What the disk tier reads back.
#[derive(Debug, Default)]
pub(crate) struct FoyerGauges {
    /// Blocks with nothing in them (foyer's `foyer_storage_block_engine_block{type="clean"}`).
    pub clean_blocks: AtomicI64,
    /// Records foyer dropped instead of writing: its write buffer or queue was full
    /// (`buffer_overflow` + `channel_overflow`).
    pub dropped_writes: AtomicU64,
}

#[derive(Debug)]
pub(crate) struct Registry(pub Arc<FoyerGauges>);

#[derive(Debug)]
struct Vec_ {
    name: Cow<'static, str>,
    gauges: Arc<FoyerGauges>,
}

#[derive(Debug)]
struct Dropped(Arc<FoyerGauges>);

impl CounterOps for Dropped {
    fn increase(&self, val: u64) {
        self.0.dropped_writes.fetch_add(val, Ordering::Relaxed);
    }
}

#[derive(Debug)]
struct Clean(Arc<FoyerGauges>);

impl GaugeOps for Clean {
    fn increase(&self, val: u64) {
        self.0.clean_blocks.fetch_add(val as i64, Ordering::Relaxed);
    }
    fn decrease(&self, val: u64) {
        self.0.clean_blocks.fetch_sub(val as i64, Ordering::Relaxed);
    }
    fn absolute(&self, val: u64) {
        self.0.clean_blocks.store(val as i64, Ordering::Relaxed);
    }
}

/// Labels are `[cache name, what]` for the metrics read here.
fn what<'a>(labels: &'a [Cow<'static, str>]) -> &'a str {
    labels.get(1).map_or("", |l| l.as_ref())
}

impl CounterVecOps for Vec_ {
    fn counter(&self, labels: &[Cow<'static, str>]) -> BoxedCounter {
        match (self.name.as_ref(), what(labels)) {
            ("foyer_storage_inner_op_total", "buffer_overflow" | "channel_overflow") => {
                Box::new(Dropped(self.gauges.clone()))
            }
            _ => Box::new(NoopMetricsRegistry),
        }
    }
}

impl GaugeVecOps for Vec_ {
    fn gauge(&self, labels: &[Cow<'static, str>]) -> BoxedGauge {
        match (self.name.as_ref(), what(labels)) {
            ("foyer_storage_block_engine_block", "clean") => Box::new(Clean(self.gauges.clone())),
            _ => Box::new(NoopMetricsRegistry),
        }
    }
}

impl RegistryOps for Registry {
    fn register_counter_vec(
        &self,
        name: Cow<'static, str>,
        _desc: Cow<'static, str>,
        _labels: &'static [&'static str],
    ) -> BoxedCounterVec {
        Box::new(Vec_ {
            name,
            gauges: self.0.clone(),
        })
    }

    fn register_gauge_vec(
        &self,
        name: Cow<'static, str>,
        _desc: Cow<'static, str>,
        _labels: &'static [&'static str],
    ) -> BoxedGaugeVec {
        Box::new(Vec_ {
            name,
            gauges: self.0.clone(),
        })
    }

    fn register_histogram_vec(
        &self,
        _name: Cow<'static, str>,
        _desc: Cow<'static, str>,
        _labels: &'static [&'static str],
    ) -> BoxedHistogramVec {
        Box::new(NoopMetricsRegistry)
    }

    fn register_histogram_vec_with_buckets(
        &self,
        _name: Cow<'static, str>,
        _desc: Cow<'static, str>,
        _labels: &'static [&'static str],
        _buckets: Vec<f64>,
    ) -> BoxedHistogramVec {
        Box::new(NoopMetricsRegistry)
    }
}
