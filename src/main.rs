//! Start-up: configuration, logs, libvips, the pingora server and its services, and the
//! process's life cycle as an operator drives it (docs/operations.md):
//!
//! ```text
//! start      bind (or, with -upgrade, receive the listening sockets from the old process)
//! SIGTERM    /health/ready → 503 · -shutdown-delay s still serving · listeners close ·
//!            -grace-period s for in-flight requests · exit
//! SIGQUIT    hand the listening sockets to the new process (pingora's upgrade) · drain · exit
//! SIGINT     exit now
//! ```
//!
//! Pingora's own command line (`Opt`) would clash with imaginary's flags, so `Opt` and
//! `ServerConf` are built here from imgedge's configuration and pingora never sees argv.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::{RunArgs, Server, ShutdownSignal, ShutdownSignalWatch};

use imgedge::cache::Cache;
use imgedge::config::{self, Command, Config, ConfigError};
use imgedge::ops;
use imgedge::proxy::{admin, Edge};

/// Rust's allocations (pingora's buffers, requests, the memory tier's variants) come from
/// jemalloc; libvips and the other C libraries keep glibc's malloc, bounded by
/// [`limit_malloc_arenas`]. With glibc for both, a memory tier full of variants fragmented the
/// heap the hit path allocates from (24–29 µs of CPU per hit against 20–22 on a fresh server;
/// with jemalloc 19–22 and 17): docs/performance.md, "Allocator".
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Freed pages go back to the system after 1 s instead of jemalloc's 10 s, by one background
/// thread rather than on allocating threads: RSS follows the working set (soak and overload
/// bounds in BENCHMARKS.md). `_RJEM_MALLOC_CONF` in the environment overrides it.
#[allow(non_upper_case_globals)]
#[export_name = "_rjem_malloc_conf"]
pub static malloc_conf: &[u8; 85] =
    b"background_thread:true,max_background_threads:1,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

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

    init_logs(cfg.log_json);
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

    let port = cfg.listen.port();
    let conf = ServerConf {
        // Two request threads per image worker: pingora places each new connection on a
        // random thread and keeps it there (no work stealing), so with one per core the core
        // that drew more connections can saturate while another has time left; twice as many
        // threads lets the kernel even the load out. The server's CPU per request does not
        // grow (docs/performance.md, change 18, which also says what of the measured gain is
        // particular to a benchmark client on the same cores).
        threads: cfg.workers.max(1) * 2,
        work_stealing: false,
        grace_period_seconds: Some(cfg.grace_period),
        graceful_shutdown_timeout_seconds: Some(2),
        // Image workers are threads of their own (policy::pool); each request thread's
        // blocking pool only resolves origin host names (getaddrinfo) and writes the purge
        // generations.
        max_blocking_threads: Some(4),
        // Both processes of an upgrade derive it from the port, so they agree on it.
        upgrade_sock: format!("/tmp/imgedge-{port}-upgrade.sock"),
        ..ServerConf::default()
    };
    let stops = watch_signals();
    let upgrade = cfg.upgrade && start_upgrade(&conf.upgrade_sock, port);
    let opt = Opt {
        upgrade,
        ..Opt::default()
    };
    let mut server = Server::new_with_opt_and_conf(Some(opt), conf);
    // With -upgrade this blocks until the old process has sent its listening sockets; from
    // then on both accept on them until the old one closes its listeners.
    server.bootstrap();
    if upgrade {
        tracing::info!("listening sockets received from the previous process");
    }

    let cache = match open_cache(&cfg, upgrade) {
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
    let last_close = cache.clone();

    let edge = match Edge::new(cfg.clone(), ops::vips::version(), cache) {
        Ok(edge) => edge,
        Err(m) => {
            eprintln!("{m}");
            std::process::exit(1);
        }
    };
    let status = edge.status();
    // Each plain-TCP connection is moved to the request thread that serves it (proxy::rehome).
    let mut service = pingora::services::listening::Service::new(
        "imgedge".to_string(),
        imgedge::proxy::rehome::Rehome(Arc::new(pingora::proxy::http_proxy(
            &server.configuration,
            edge,
        ))),
    );
    let addr = cfg.listen.to_string();
    // TLS only when both files are given, as imaginary does; HTTP/2 is offered through ALPN.
    if !cfg.certfile.is_empty() && !cfg.keyfile.is_empty() {
        match pingora::listeners::tls::TlsSettings::intermediate(&cfg.certfile, &cfg.keyfile) {
            Ok(mut tls) => {
                tls.enable_h2();
                service.add_listener(listener(&addr, true).tls(tls));
            }
            Err(e) => {
                eprintln!("listen: {e}");
                std::process::exit(1);
            }
        }
    } else {
        service.add_listener(listener(&addr, false));
    }
    server.add_service(service);
    if let Some(admin_addr) = cfg.admin_listen {
        let mut admin_service = pingora::services::listening::Service::new(
            "admin".to_string(),
            admin::AdminApp::new(status),
        );
        admin_service.add_tcp(&admin_addr.to_string());
        server.add_service(admin_service);
        tracing::info!(addr = %admin_addr, "admin listener (health, metrics)");
    }
    if std::env::var_os("NOTIFY_SOCKET").is_some() {
        server.add_service(pingora::services::background::background_service(
            "systemd",
            SystemdReady(cfg.listen),
        ));
    }
    tracing::info!(
        %addr,
        prefix = %cfg.path_prefix,
        pid = std::process::id(),
        libvips = %ops::vips::version(),
        zlib = %ops::vips::zlib::implementation(),
        "imgedge listening"
    );
    server.run(RunArgs {
        shutdown_signal: Box::new(Signals {
            delay: Duration::from_secs(cfg.shutdown_delay),
            grace: cfg.grace_period,
            stops: tokio::sync::Mutex::new(stops),
        }),
    });
    close_cache_before_exit(&last_close);
    tracing::info!("stopped");
    imgedge::accesslog::flush();
    std::process::exit(0);
}

/// `CacheCloser` starts closing the cache when the stop begins, but pingora drops its runtime's
/// tasks when the grace period ends (at once with `-grace-period 0`), which can cut that close
/// short while the disk tier's last batch is still being written. So the close is finished
/// here, on a runtime of its own, before the process exits (a no-op when it had finished).
fn close_cache_before_exit(cache: &Cache) {
    let closed = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
        .and_then(|rt| {
            rt.block_on(async {
                let limit = Duration::from_secs(STOP_MARGIN_SECS);
                match tokio::time::timeout(limit, cache.close()).await {
                    Ok(closed) => closed,
                    Err(_) => Err(format!("not closed after {} s", limit.as_secs())),
                }
            })
        });
    if let Err(e) = closed {
        tracing::warn!(error = %e, "cache did not close cleanly");
    }
}

/// The public listener. TLS connections keep pingora's stream: a 16 KiB write buffer (pingora
/// buffers 1460 bytes by default, so a response head and a cached thumbnail went out in two
/// `send`s) beside its 64 KiB read buffer. Plain-TCP connections get no buffers here:
/// `proxy::rehome` replaces their stream before the first request with one that gathers small
/// writes itself, and pingora's HTTP session reads into buffers of its own.
fn listener(addr: &str, tls: bool) -> pingora::listeners::ListenerConfig {
    use pingora::listeners::{L4BufferSettings, ListenerConfig};
    ListenerConfig::tcp(addr).l4_buffer(match tls {
        true => L4BufferSettings::default().write(16 * 1024),
        false => L4BufferSettings::unbuffered(),
    })
}

/// A stop that pingora carries out; SIGINT never gets here ([`watch_signals`] exits at once).
enum Stop {
    Upgrade,
    Terminate,
}

/// Installs the handlers for QUIT, TERM and INT before anything listens, on a thread of its
/// own, and forwards QUIT and TERM to pingora's shutdown watch ([`Signals`]). pingora only
/// polls that watch once its services have started: a signal in between took its default
/// action and killed the process without a word (CI saw a SIGINT sent as soon as the port
/// accepted end the process by the signal instead of exit 0).
fn watch_signals() -> tokio::sync::mpsc::UnboundedReceiver<Stop> {
    use tokio::signal::unix::{signal, SignalKind};
    let (stops, received) = tokio::sync::mpsc::unbounded_channel();
    let (installed, ready) = std::sync::mpsc::sync_channel(1);
    let watcher = move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async move {
            let (Ok(mut quit), Ok(mut term), Ok(mut int)) = (
                signal(SignalKind::quit()),
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) else {
                return;
            };
            let _ = installed.send(());
            loop {
                let stop = tokio::select! {
                    _ = int.recv() => stop_now(),
                    _ = quit.recv() => Stop::Upgrade,
                    _ = term.recv() => Stop::Terminate,
                };
                // Once pingora has its stop, later QUITs and TERMs have nothing to add.
                let _ = stops.send(stop);
            }
        })
    };
    let spawned = std::thread::Builder::new()
        .name("signals".into())
        .spawn(watcher);
    if spawned.is_err() || ready.recv().is_err() {
        eprintln!("cannot install signal handlers");
        std::process::exit(1);
    }
    received
}

/// How the process reacts to signals: pingora's meanings (QUIT upgrade, TERM graceful), with
/// readiness failing first on TERM and `-shutdown-delay` before the listeners close.
struct Signals {
    delay: Duration,
    grace: u64,
    stops: tokio::sync::Mutex<tokio::sync::mpsc::UnboundedReceiver<Stop>>,
}

#[async_trait::async_trait]
impl ShutdownSignalWatch for Signals {
    async fn recv(&self) -> ShutdownSignal {
        let mut stops = self.stops.lock().await;
        match stops.recv().await {
            Some(Stop::Upgrade) => {
                tracing::info!(
                    "SIGQUIT: handing the listening sockets to the new process, then draining"
                );
                // pingora keeps accepting for 5 s beside the new process, then drains.
                exit_by(Duration::from_secs(5 + self.grace + STOP_MARGIN_SECS));
                ShutdownSignal::GracefulUpgrade
            }
            Some(Stop::Terminate) => {
                admin::start_draining();
                sd_notify("STOPPING=1");
                if !self.delay.is_zero() {
                    tracing::info!(delay_s = self.delay.as_secs(), "SIGTERM: /health/ready now fails; serving on until the shutdown delay ends");
                    tokio::select! {
                        _ = tokio::time::sleep(self.delay) => {}
                        // A second TERM (or a QUIT) cuts the delay short; INT still means now.
                        _ = stops.recv() => {}
                    }
                }
                tracing::info!(
                    grace_s = self.grace,
                    "SIGTERM: listeners closed; in-flight requests finish within the grace period"
                );
                exit_by(Duration::from_secs(self.grace + STOP_MARGIN_SECS));
                ShutdownSignal::GracefulTerminate
            }
            // The watching thread never ends while the process runs.
            None => ShutdownSignal::FastShutdown,
        }
    }
}

/// SIGINT: the process ends here. pingora's fast shutdown would cut in-flight requests too, but
/// first stop its runtimes with no grace, and its accept loop then spins on a listener whose
/// runtime is gone, logging "Accept() failed … being shutdown" hundreds of thousands of times
/// (1.3 million lines in one measured Ctrl-C) until [`exit_by`] ended it. The access log's
/// pending lines are written; disk-cache records still queued are lost, as pingora's fast
/// shutdown never closed the cache either.
fn stop_now() -> ! {
    tracing::info!("SIGINT: stopping now");
    imgedge::accesslog::flush();
    std::process::exit(0);
}

/// What a stop may take beyond the grace period: pingora's runtime shutdown (its
/// `graceful_shutdown_timeout`, 2 s) and a second for the rest.
const STOP_MARGIN_SECS: u64 = 3;

/// Ends the process if the stop has not ended it by `deadline`. pingora's accept loop spins
/// without yielding once its listener's runtime is shutting down ("Accept() failed … Tokio
/// context … is being shutdown", logged in a tight loop), and the runtime shutdown then waits on
/// it forever: seen in `tests/lifecycle.rs` about once in a dozen runs. Requests in flight have
/// had their grace period by then, and the disk cache's close, started with the stop on a
/// runtime pingora has not dropped yet, has had seconds for its last batch, so exiting is what
/// the stop would have done.
fn exit_by(deadline: Duration) {
    std::thread::spawn(move || {
        std::thread::sleep(deadline);
        tracing::error!(
            after_s = deadline.as_secs(),
            "the stop did not finish in time (pingora's runtime shutdown hung); exiting"
        );
        imgedge::accesslog::flush();
        std::process::exit(0);
    });
}

/// `-upgrade`: finds the running imgedge that listens on `port` and, once this process waits
/// on the upgrade socket, sends it SIGQUIT so it hands its listening sockets over (pingora's
/// upgrade). Returns false, to start normally, when no such process is running.
fn start_upgrade(upgrade_sock: &str, port: u16) -> bool {
    let old = match running_imgedge(port).as_slice() {
        [] => {
            tracing::warn!(
                port,
                "-upgrade: no running imgedge listens on this port; starting normally"
            );
            return false;
        }
        [old] => *old,
        several => {
            eprintln!(
                "-upgrade: imgedge processes {several:?} all listen on port {port}: an upgrade \
                 is already in progress; wait until only one is left"
            );
            std::process::exit(1);
        }
    };
    tracing::info!(old_pid = old, "-upgrade: taking the listening sockets over");
    // pingora unlinks a stale socket and binds a new one while bootstrapping; the old process
    // retries its connection every second for 5 s, so signal as soon as the socket exists.
    let _ = std::fs::remove_file(upgrade_sock);
    let sock = upgrade_sock.to_string();
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !Path::new(&sock).exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        // The file appears at bind(); listen() follows at once.
        std::thread::sleep(Duration::from_millis(50));
        // SAFETY: kill(2) with a pid just checked to be an imgedge listening on our port.
        unsafe {
            libc::kill(old as i32, libc::SIGQUIT);
        }
    });
    true
}

/// Other imgedge processes (by name) that hold a listening socket on `port`, found through
/// /proc: no pid file to go stale, and an unrelated process is never signalled.
fn running_imgedge(port: u16) -> Vec<u32> {
    let listeners = listening_inodes(port);
    if listeners.is_empty() {
        return Vec::new();
    }
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    procs
        .flatten()
        .filter_map(|p| p.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != std::process::id())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| matches!(c.trim(), "imgedge" | "imaginary"))
        })
        .filter(|pid| {
            let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
                return false;
            };
            fds.flatten()
                .filter_map(|fd| std::fs::read_link(fd.path()).ok())
                .any(|link| {
                    let link = link.to_string_lossy();
                    link.strip_prefix("socket:[")
                        .and_then(|rest| rest.strip_suffix(']'))
                        .is_some_and(|inode| listeners.iter().any(|l| l == inode))
                })
        })
        .collect()
}

/// Socket inodes of TCP listeners on `port` (IPv4 and IPv6), from `/proc/net/tcp*`.
fn listening_inodes(port: u16) -> Vec<String> {
    let port = format!(":{port:04X}");
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|table| std::fs::read_to_string(table).ok())
        .flat_map(|text| {
            text.lines()
                .skip(1)
                .filter_map(|line| {
                    let cols: Vec<&str> = line.split_whitespace().collect();
                    // local_address is cols[1], state cols[3] (0A = LISTEN), inode cols[9].
                    (cols.len() > 9 && cols[1].ends_with(&port) && cols[3] == "0A")
                        .then(|| cols[9].to_string())
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Opens both cache tiers. foyer's builder is async; the disk tier then runs on a runtime of
/// its own, so a short-lived one is enough here.
///
/// During an upgrade the old process still holds the disk tier's directory lock; the sockets
/// are already shared, and the old process keeps accepting meanwhile (connections that arrive
/// after it stops wait in the listen backlog), so wait for the lock instead of failing. If it
/// is not released in time, serve without the disk tier rather than not at all.
fn open_cache(cfg: &Config, upgrade: bool) -> Result<Cache, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    // pingora's hand-over window (5 s) + the old process's grace period + its runtime stop.
    let deadline = Instant::now() + Duration::from_secs(5 + cfg.grace_period + 2 + 10);
    let mut waiting = false;
    loop {
        match runtime.block_on(Cache::open(cfg.cache.clone())) {
            Err(e) if upgrade && e.contains("in use by another process") => {
                if Instant::now() >= deadline {
                    tracing::warn!(error = %e, "-upgrade: the previous process kept the disk cache; serving without the disk tier until the next restart");
                    let mut memory_only = cfg.cache.clone();
                    memory_only.disk_bytes = 0;
                    return runtime.block_on(Cache::open(memory_only));
                }
                if !waiting {
                    tracing::info!(
                        "-upgrade: waiting for the previous process to release the disk cache"
                    );
                    waiting = true;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

/// Tells systemd (`Type=notify`, `NotifyAccess=all`) this process is the service's main
/// process and ready, once its listener accepts. After `-upgrade` that moves the unit's main
/// pid to the new process, so the old one exiting does not stop the service.
struct SystemdReady(std::net::SocketAddr);

#[async_trait::async_trait]
impl pingora::services::background::BackgroundService for SystemdReady {
    async fn start(&self, _shutdown: pingora::server::ShutdownWatch) {
        let mut probe = self.0;
        if probe.ip().is_unspecified() {
            probe.set_ip(match probe {
                std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(probe).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        sd_notify(&format!("MAINPID={}\nREADY=1", std::process::id()));
    }
}

/// Sends `state` to systemd's notification socket, if the process runs under one.
fn sd_notify(state: &str) {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let path = path.to_string_lossy().into_owned();
    let addr = match path.strip_prefix('@') {
        Some(name) => SocketAddr::from_abstract_name(name.as_bytes()),
        None => SocketAddr::from_pathname(&path),
    };
    let sent = addr.and_then(|addr| {
        let socket = UnixDatagram::unbound()?;
        socket.send_to_addr(state.as_bytes(), &addr)
    });
    if let Err(e) = sent {
        tracing::warn!(socket = %path, error = %e, "cannot notify systemd");
    }
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

/// Application logs through `tracing` on stderr, filtered by `IMGEDGE_LOG` (e.g.
/// `info,imgedge=debug`); pingora's own `log` records come through the same filter. With
/// `-log-format json` every line is one JSON object (`time`, `level`, `target`, `message`,
/// then the event's fields).
fn init_logs(json: bool) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("IMGEDGE_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(
            "info,pingora=warn,foyer=warn,foyer_storage=warn,foyer_memory=warn",
        )
    });
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal());
    if json {
        builder.event_format(json_log::JsonEvents).init();
    } else {
        builder.init();
    }
}

/// A minimal JSON event formatter (the `json` feature of tracing-subscriber would add
/// dependencies for the same few lines).
mod json_log {
    use std::fmt;

    use serde_json::{Map, Value};
    use tracing::field::{Field, Visit};
    use tracing::{Event, Subscriber};
    use tracing_subscriber::fmt::format::Writer;
    use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
    use tracing_subscriber::registry::LookupSpan;

    pub struct JsonEvents;

    #[derive(Default)]
    struct Fields(Map<String, Value>);

    impl Fields {
        fn put(&mut self, field: &Field, value: Value) {
            self.0.insert(field.name().to_string(), value);
        }
    }

    impl Visit for Fields {
        fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
            self.put(field, Value::String(format!("{value:?}")));
        }
        fn record_str(&mut self, field: &Field, value: &str) {
            self.put(field, Value::String(value.to_string()));
        }
        fn record_i64(&mut self, field: &Field, value: i64) {
            self.put(field, value.into());
        }
        fn record_u64(&mut self, field: &Field, value: u64) {
            self.put(field, value.into());
        }
        fn record_f64(&mut self, field: &Field, value: f64) {
            self.put(field, value.into());
        }
        fn record_bool(&mut self, field: &Field, value: bool) {
            self.put(field, value.into());
        }
    }

    impl<S, N> FormatEvent<S, N> for JsonEvents
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
        N: for<'a> FormatFields<'a> + 'static,
    {
        fn format_event(
            &self,
            _ctx: &FmtContext<'_, S, N>,
            mut writer: Writer<'_>,
            event: &Event<'_>,
        ) -> fmt::Result {
            let mut fields = Fields::default();
            event.record(&mut fields);
            let meta = event.metadata();
            // Records from the `log` crate (pingora's) carry their real target as a field.
            let target = match fields.0.remove("log.target") {
                Some(Value::String(t)) => t,
                _ => meta.target().to_string(),
            };
            fields.0.retain(|k, _| !k.starts_with("log."));
            let message = fields
                .0
                .remove("message")
                .unwrap_or(Value::String(String::new()));
            let mut line = format!(
                "{{\"time\":\"{}\",\"level\":\"{}\",\"target\":{},\"message\":{}",
                imgedge::accesslog::rfc3339(std::time::SystemTime::now()),
                meta.level(),
                Value::String(target),
                message
            );
            for (k, v) in fields.0 {
                line.push_str(&format!(",{}:{v}", Value::String(k)));
            }
            line.push('}');
            writeln!(writer, "{line}")
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
