//! Start-up: configuration, libvips, the pingora server and its one service.
//!
//! Pingora's own command line (`Opt`) would clash with imaginary's flags, so its `ServerConf`
//! is built here from imgedge's configuration and pingora never sees argv.

use std::sync::Arc;

use pingora::server::configuration::ServerConf;
use pingora::server::Server;

use imgedge::cache::Cache;
use imgedge::config::{self, Command, ConfigError};
use imgedge::ops;
use imgedge::proxy::Edge;

fn main() {
    // `docker run image imaginary -p 9000 …` passes the command name through: skip it so the
    // flags after it are read (Go would stop at the first non-flag argument).
    let args = std::env::args()
        .skip(1)
        .enumerate()
        .filter(|(i, a)| !(*i == 0 && (a == "imaginary" || a == "imgedge")))
        .map(|(_, a)| a);
    let cfg = match config::parse(args, &|k| std::env::var(k).ok()) {
        Ok(Command::Serve(cfg)) => Arc::new(*cfg),
        Ok(Command::Help) => {
            eprint!("{}", config::usage());
            std::process::exit(1);
        }
        Ok(Command::Version) => {
            println!("{}", env!("CARGO_PKG_VERSION"));
            std::process::exit(1);
        }
        Err(e) => {
            match &e {
                ConfigError::Usage(m) => eprint!("{m}\n{}", config::usage()),
                ConfigError::Invalid(m) => eprintln!("{m}"),
            }
            std::process::exit(e.exit_code());
        }
    };

    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("IMGEDGE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,pingora=warn")),
        )
        .init();
    // Flags that only meant something to Go's runtime: accepted so old command lines start.
    let given = |name: &str| {
        std::env::args().any(|a| a.trim_start_matches('-').split('=').next() == Some(name))
    };
    if given("gzip") {
        println!("warning: -gzip flag is deprecated and will not have effect");
    }
    if given("mrelease") {
        tracing::warn!("-mrelease tunes Go's garbage collector and has no effect here: memory is bounded by M_ARENA_MAX and the worker pool");
    }

    limit_malloc_arenas();
    // libvips threads per image: 1 unless VIPS_CONCURRENCY says otherwise (best throughput
    // under load: parallelism comes from serving several requests at once).
    let vips_threads = std::env::var("VIPS_CONCURRENCY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    ops::vips::init(vips_threads);

    let mut conf = ServerConf {
        threads: cfg.workers.max(1),
        grace_period_seconds: Some(cfg.grace_period),
        graceful_shutdown_timeout_seconds: Some(2),
        // Room for every image worker plus blocking file reads.
        max_blocking_threads: Some(cfg.workers * 2 + 4),
        ..ServerConf::default()
    };
    let port = cfg.listen.port();
    conf.pid_file = format!("/tmp/imgedge-{port}.pid");
    conf.upgrade_sock = format!("/tmp/imgedge-{port}-upgrade.sock");
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();

    let cache = match open_cache(&cfg) {
        Ok(cache) => cache,
        Err(m) => {
            eprintln!("cache: {m}");
            std::process::exit(1);
        }
    };
    server.add_service(pingora::services::background::background_service(
        "cache",
        CacheCloser(cache.clone()),
    ));

    let edge = match Edge::new(cfg.clone(), ops::vips::version(), cache) {
        Ok(edge) => edge,
        Err(m) => {
            eprintln!("{m}");
            std::process::exit(1);
        }
    };
    let mut service = pingora::proxy::http_proxy_service(&server.configuration, edge);
    let addr = cfg.listen.to_string();
    // TLS only when both files are given, as imaginary does; HTTP/2 is offered through ALPN.
    if !cfg.certfile.is_empty() && !cfg.keyfile.is_empty() {
        match pingora::listeners::tls::TlsSettings::intermediate(&cfg.certfile, &cfg.keyfile) {
            Ok(mut tls) => {
                tls.enable_h2();
                service.add_tls_with_settings(&addr, None, tls);
            }
            Err(e) => {
                eprintln!("listen: {e}");
                std::process::exit(1);
            }
        }
    } else {
        service.add_tcp(&addr);
    }
    server.add_service(service);
    tracing::info!(%addr, prefix = %cfg.path_prefix, "imgedge listening");
    server.run_forever();
}

/// Opens both cache tiers. foyer's builder is async; the disk tier then runs on a runtime of
/// its own, so a short-lived one is enough here.
fn open_cache(cfg: &imgedge::config::Config) -> Result<Cache, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(Cache::open(cfg.cache.clone()))
}

/// Flushes the disk tier when the server shuts down, so written entries survive the restart.
struct CacheCloser(Cache);

#[async_trait::async_trait]
impl pingora::services::background::BackgroundService for CacheCloser {
    async fn start(&self, mut shutdown: pingora::server::ShutdownWatch) {
        let _ = shutdown.changed().await;
        if let Err(e) = self.0.close().await {
            tracing::warn!(error = %e, "cache did not close cleanly");
        }
    }
}

/// Bounds glibc's per-thread malloc arenas: libvips allocates from many threads, and without
/// this RSS grows with the thread count instead of the working set (imaginary's most reported
/// problem). `MALLOC_ARENA_MAX` in the environment still wins.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only tunes the allocator; called before any worker thread starts.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}
