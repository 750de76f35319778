//! The variant cache on its own: key derivation, L1 (memory) and L2 (disk) get and put.
//!
//! `cargo bench --bench cache`. The disk tier writes to a temporary directory; puts return
//! once the record is handed to foyer's writers, as on the serving path.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use imgedge::cache::{Cache, CacheConfig, Key, Variant};
use imgedge::ops::{Endpoint, Params, Plan};
use imgedge::proxy::variant_key;

const MIB: u64 = 1024 * 1024;

fn variant(size: usize, seed: u8) -> Arc<Variant> {
    Arc::new(Variant {
        body: Bytes::from(
            (0..size)
                .map(|i| (i as u8).wrapping_mul(31) ^ seed)
                .collect::<Vec<u8>>(),
        ),
        content_type: "image/jpeg".to_string(),
        etag: format!("\"{seed:02x}{size}\""),
        created_unix: imgedge::cache::unix_now(),
        ttl_secs: 86_400,
        width: 300,
        height: 169,
    })
}

fn key(i: u64) -> Key {
    Key::builder().field("bench", i.to_le_bytes()).finish()
}

fn bench_key(c: &mut Criterion) {
    let mut g = c.benchmark_group("key");
    g.sample_size(30)
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_millis(700));
    let query = "width=300&height=200&type=jpeg&quality=80&file=photos/cat.jpg";
    let params = Params::from_query(query).unwrap();
    let plan = Plan::new(Endpoint::Resize, &params, None).unwrap();
    g.bench_function("variant_key_from_plan", |b| {
        b.iter(|| {
            variant_key(
                std::hint::black_box(&plan),
                "file:photos/cat.jpg\n48213\n1700000000",
            )
        })
    });
    g.bench_function("parse+plan+key", |b| {
        b.iter(|| {
            let params = Params::from_query(std::hint::black_box(query)).unwrap();
            let plan = Plan::new(Endpoint::Resize, &params, None).unwrap();
            variant_key(&plan, "file:photos/cat.jpg\n48213\n1700000000")
        })
    });
    g.finish();
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn bench_tiers(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let memory = rt
        .block_on(Cache::open(CacheConfig {
            memory_bytes: 256 * MIB,
            disk_bytes: 0,
            ..CacheConfig::default()
        }))
        .unwrap();
    let disk = rt
        .block_on(Cache::open(CacheConfig {
            memory_bytes: 0,
            disk_bytes: 512 * MIB,
            disk_dir: dir.path().to_path_buf(),
            disk_block_bytes: 4 * MIB,
            ..CacheConfig::default()
        }))
        .unwrap();

    let mut g = c.benchmark_group("tier");
    g.sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(1500))
        .throughput(Throughput::Elements(1));
    for size in [20 * 1024usize, 200 * 1024] {
        let v = variant(size, 7);
        let n = 256u64;
        for (name, cache) in [("L1_memory", &memory), ("L2_disk", &disk)] {
            // put: distinct keys, cycling within the tier's capacity
            let mut i = 0u64;
            g.bench_with_input(BenchmarkId::new(format!("{name}/put"), size), &v, |b, v| {
                b.iter(|| {
                    i += 1;
                    rt.block_on(cache.insert(key(1_000_000 + i % 4096), v.clone()))
                })
            });
            // get: hits on keys stored (and, for disk, written) beforehand
            rt.block_on(async {
                for k in 0..n {
                    cache.insert(key(k), v.clone()).await;
                }
            });
            // The disk tier serves records from its batch queue for up to 50 ms before foyer
            // writes them; wait past that so the hits below are reads.
            std::thread::sleep(Duration::from_millis(200));
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while rt.block_on(cache.get(&key(n - 1))).is_none()
                && std::time::Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            let mut j = 0u64;
            g.bench_with_input(
                BenchmarkId::new(format!("{name}/get_hit"), size),
                &n,
                |b, &n| {
                    b.iter(|| {
                        j += 1;
                        rt.block_on(cache.get(&key(j % n)))
                    })
                },
            );
            g.bench_function(BenchmarkId::new(format!("{name}/get_miss"), size), |b| {
                b.iter(|| rt.block_on(cache.get(&key(u64::MAX))))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench_key, bench_tiers);
criterion_main!(benches);
