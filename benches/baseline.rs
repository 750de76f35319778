//! The in-process libvips baseline of `make bench` (scripts/bench.sh), and its image writer.
//!
//! ```text
//! cargo bench --bench baseline -- write DIR
//!     writes the generated inputs (benches/common) as files, for the server's -mount
//! cargo bench --bench baseline -- run FILE ENDPOINT QUERY THREADS SECONDS [WIDTHS]
//!     THREADS threads each call ops::run (the library the server calls, no HTTP, no pool,
//!     no cache) on FILE's bytes in a loop for SECONDS; prints one line of key=value pairs with
//!     requests/s, p50/p99 latency and CPU ms per request. QUERY may contain `{w}`, replaced
//!     by widths cycling through WIDTHS (`300:400` = 300..399), as the load benchmark does
//!     to make every URL unique.
//! ```
//!
//! Same thread count as the server's worker pool, libvips at 1 thread per image as the
//! server starts it, the bytes read once (the server's file read is part of its overhead).

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use imgedge::ops::{self, Endpoint, Params, Plan};

fn main() {
    // `cargo bench` passes `--bench`; criterion-style filters are not used here.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    match args.first().map(String::as_str) {
        Some("write") if args.len() == 2 => write(&args[1]),
        Some("run") if args.len() >= 6 => run(&args[1..]),
        None => {
            // `cargo bench` with no arguments (e.g. `cargo bench` of every target): a short
            // smoke run so the target does something sensible.
            eprintln!("baseline: see benches/baseline.rs for usage; nothing to do");
        }
        _ => {
            eprintln!("usage: baseline write DIR | baseline run FILE ENDPOINT QUERY THREADS SECONDS [WIDTHS]");
            std::process::exit(2);
        }
    }
}

fn write(dir: &str) {
    ops::vips::init(1);
    std::fs::create_dir_all(dir).expect("create dir");
    let inputs = common::Inputs::generate();
    for (name, bytes) in [
        ("jpeg_2mp.jpg", &inputs.jpeg_2mp),
        ("jpeg_12mp.jpg", &inputs.jpeg_12mp),
        ("png_alpha.png", &inputs.png_alpha),
        ("webp_2mp.webp", &inputs.webp_2mp),
        ("logo.png", &inputs.logo),
    ] {
        std::fs::write(format!("{dir}/{name}"), bytes).expect("write");
        println!("{dir}/{name} {} bytes", bytes.len());
    }
}

fn endpoint(name: &str) -> Endpoint {
    match name {
        "resize" => Endpoint::Resize,
        "fit" => Endpoint::Fit,
        "crop" => Endpoint::Crop,
        "smartcrop" => Endpoint::SmartCrop,
        "thumbnail" => Endpoint::Thumbnail,
        "convert" => Endpoint::Convert,
        "enlarge" => Endpoint::Enlarge,
        "rotate" => Endpoint::Rotate,
        other => panic!("endpoint {other} not in the baseline's list"),
    }
}

fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn run(args: &[String]) {
    let (file, endpoint_name, query) = (&args[0], &args[1], &args[2]);
    let threads: usize = args[3].parse().expect("THREADS");
    let seconds: f64 = args[4].parse().expect("SECONDS");
    let widths: Option<(u32, u32)> = args.get(5).map(|w| {
        let (a, b) = w.split_once(':').expect("WIDTHS as a:b");
        (a.parse().unwrap(), b.parse().unwrap())
    });
    ops::vips::init(1);
    let endpoint = endpoint(endpoint_name);
    // Shared, not copied per call: the server hands its source to ops the same way.
    let input = bytes::Bytes::from(std::fs::read(file).expect("read FILE"));

    // Plans made up front: parsing is the server's work, not libvips'.
    let plans: Arc<Vec<Plan>> = Arc::new(match widths {
        Some((lo, hi)) => (lo..hi)
            .map(|w| make_plan(endpoint, &query.replace("{w}", &w.to_string())))
            .collect(),
        None => vec![make_plan(endpoint, query)],
    });

    // Warm-up: one call per thread (page faults, libvips start-up).
    for _ in 0..threads {
        ops::run_limited(&plans[0], input.clone(), &[], f64::INFINITY).expect("warm-up");
    }

    let stop = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicUsize::new(0));
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (stop, next, plans, input) =
                (stop.clone(), next.clone(), plans.clone(), input.clone());
            std::thread::spawn(move || {
                let mut lat = Vec::with_capacity(4096);
                while !stop.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let plan = &plans[i % plans.len()];
                    let t = Instant::now();
                    let out =
                        ops::run_limited(plan, input.clone(), &[], f64::INFINITY).expect("run");
                    std::hint::black_box(out.bytes.len());
                    lat.push(t.elapsed());
                }
                lat
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(seconds));
    stop.store(true, Ordering::Relaxed);
    let mut lat: Vec<Duration> = handles
        .into_iter()
        .flat_map(|h| h.join().expect("thread"))
        .collect();
    let elapsed = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    lat.sort();
    let q = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    let n = lat.len();
    // One line of key=value pairs, the format benches/load.sh reads.
    println!(
        "RESULT requests={n} seconds={elapsed:.3} rps={:.2} p50_ms={:.2} p99_ms={:.2} cpu_ms={:.2} peak_rss_mib={}",
        n as f64 / elapsed,
        q(0.50),
        q(0.99),
        cpu * 1e3 / n.max(1) as f64,
        peak_rss_kib() / 1024
    );
}

fn make_plan(endpoint: Endpoint, query: &str) -> Plan {
    let params = Params::from_query(query).unwrap_or_else(|e| panic!("{query}: {e}"));
    Plan::new(endpoint, &params, None).unwrap_or_else(|e| panic!("{query}: {e}"))
}
