//! Running imgedge in production: health and probes, the admin listener, JSON logs, SIGTERM
//! draining and the zero-downtime upgrade (socket hand-over), and the files in `deploy/`.
//!
//! The shutdown and upgrade tests run bounded load against the real binary over fresh
//! connections (so every request is counted once) and require zero failed requests.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{enc, sample, testdata, Imgedge};

// ---------------------------------------------------------------------------------------------
// Health, probes, admin listener, logs
// ---------------------------------------------------------------------------------------------

#[test]
fn health_reports_real_figures_after_imaginarys_keys() {
    let s = Imgedge::start(&[
        "-mount",
        testdata().to_str().unwrap(),
        "-cpus",
        "2",
        "-queue",
        "9",
    ]);
    assert_eq!(s.get("/resize?width=120&file=scene.jpg").status, 200);
    assert_eq!(
        s.get("/resize?width=120&file=scene.jpg").header("x-cache"),
        Some("HIT-MEMORY")
    );

    let r = s.get("/health");
    assert_eq!(r.status, 200);
    let text = String::from_utf8(r.body.clone()).unwrap();
    // imaginary's keys first, in its order, so its clients' parsers keep working.
    let order = [
        "uptime",
        "allocatedMemory",
        "totalAllocatedMemory",
        "goroutines",
        "completedGCCycles",
        "cpus",
        "maxHeapUsage",
        "heapInUse",
        "objectsInUse",
        "OSMemoryObtained",
        "pid",
    ];
    let at: Vec<usize> = order
        .iter()
        .map(|k| {
            text.find(&format!("\"{k}\":"))
                .unwrap_or_else(|| panic!("{k} in {text}"))
        })
        .collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "key order: {text}");
    let v = r.json();
    assert_eq!(v["pid"].as_u64(), Some(s.child.id() as u64));
    assert_eq!(v["ready"], true);
    assert!(v["rssBytes"].as_u64().unwrap() > 1 << 20, "{v}");
    assert!(v["allocatedMemory"].as_f64().unwrap() > 1.0, "{v}");
    assert_eq!(v["pool"]["workers"], 2);
    assert_eq!(v["pool"]["queueLimit"], 9);
    assert_eq!(v["pool"]["inFlight"], 0);
    assert!(v["cache"]["memoryEntries"].as_u64().unwrap() >= 1, "{v}");
    assert!(v["cache"]["memoryBytes"].as_u64().unwrap() > 0, "{v}");
    assert!(v["cache"]["memoryHits"].as_u64().unwrap() >= 1, "{v}");
    assert_eq!(v["cache"]["produced"], 1);
    assert!(v["cache"]["diskCapacityBytes"].as_u64().unwrap() > 0, "{v}");
}

/// Rust's allocations come from jemalloc, set up by the binary to hand freed pages back from one
/// background thread (main.rs, `malloc_conf`): if the configuration did not take, jemalloc
/// would run none (or one per CPU) and RSS would lag the working set by its 10-second default.
#[test]
fn freed_memory_is_returned_by_one_jemalloc_background_thread() {
    let s = Imgedge::start(&["-mount", testdata().to_str().unwrap()]);
    assert_eq!(s.get("/resize?width=120&file=scene.jpg").status, 200);
    let tasks = std::fs::read_dir(format!("/proc/{}/task", s.child.id())).unwrap();
    let names: Vec<String> = tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|n| n.trim().to_string())
        .collect();
    let background = names.iter().filter(|n| *n == "jemalloc_bg_thd").count();
    assert_eq!(background, 1, "threads: {names:?}");
}

#[test]
fn request_threads_run_with_a_short_scheduler_slice_and_image_workers_do_not() {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let mut version = release
        .split(['.', '-'])
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (version.next().unwrap_or(0), version.next().unwrap_or(0));
    let s = Imgedge::start(&["-mount", testdata().to_str().unwrap()]);
    assert_eq!(s.get("/resize?width=120&file=scene.jpg").status, 200);
    // name -> slices of the threads of that name (`se.slice` needs CONFIG_SCHED_DEBUG)
    let mut slices: std::collections::BTreeMap<String, Vec<u64>> = Default::default();
    for task in std::fs::read_dir(format!("/proc/{}/task", s.child.id())).unwrap() {
        let task = task.unwrap().path();
        let name = std::fs::read_to_string(task.join("comm")).unwrap_or_default();
        let sched = std::fs::read_to_string(task.join("sched")).unwrap_or_default();
        let slice = sched
            .lines()
            .find(|l| l.starts_with("se.slice"))
            .and_then(|l| l.split(':').nth(1)?.trim().parse().ok());
        if let Some(slice) = slice {
            slices
                .entry(name.trim().to_string())
                .or_default()
                .push(slice);
        }
    }
    if (major, minor) < (6, 12) || slices.is_empty() {
        eprintln!("kernel {release:?} has no custom slices or does not report them: not checked");
        return;
    }
    // The request that was answered ran on a request thread, which asked for 0.1 ms.
    let short = |name: &str| {
        slices
            .get(name)
            .map_or(0, |s| s.iter().filter(|&&v| v == 100_000).count())
    };
    assert!(short("imgedge") >= 1, "{slices:?}");
    let workers: Vec<&u64> = slices
        .iter()
        .filter(|(n, _)| n.starts_with("imgedge-worker"))
        .flat_map(|(_, s)| s)
        .collect();
    assert!(!workers.is_empty(), "{slices:?}");
    assert!(workers.iter().all(|&&v| v != 100_000), "{slices:?}");
}

#[test]
fn probes_need_no_api_key_and_answer_under_the_prefix() {
    let s = Imgedge::start(&["-key", "s3cret", "-path-prefix", "/api"]);
    assert_eq!(
        s.get("/api/health").error(401),
        "Invalid or missing API key"
    );
    let live = s.get("/api/health/live");
    assert_eq!(
        (live.status, live.json()["live"].as_bool()),
        (200, Some(true))
    );
    let ready = s.get("/api/health/ready");
    assert_eq!(
        (ready.status, ready.json()["ready"].as_bool()),
        (200, Some(true))
    );
    assert_eq!(s.get("/health/ready").status, 404, "outside the prefix");
}

#[test]
fn admin_listener_serves_health_and_metrics_without_the_api_key() {
    let admin = common::free_port();
    let admin_addr = format!("127.0.0.1:{admin}");
    let s = Imgedge::start(&[
        "-key",
        "s3cret",
        "-mount",
        testdata().to_str().unwrap(),
        "-admin-listen",
        &admin_addr,
    ]);
    common::wait_listening(admin_addr.parse().unwrap());
    let r = common::request(
        "GET",
        &s.url("/resize?width=50&file=badge.png"),
        &[("API-Key", "s3cret")],
        None,
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        s.get("/metrics").status,
        401,
        "the main listener keeps its API key"
    );

    let admin_url = |p: &str| format!("http://{admin_addr}{p}");
    let metrics = common::request("GET", &admin_url("/metrics"), &[], None);
    assert_eq!(metrics.status, 200);
    let text = String::from_utf8(metrics.body).unwrap();
    assert!(
        text.contains("imgedge_requests_total{endpoint=\"resize\",status=\"200\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("imgedge_process_resident_memory_bytes "),
        "{text}"
    );
    assert!(text.contains("imgedge_pool_in_flight 0"), "{text}");
    let health = common::request("GET", &admin_url("/health"), &[], None);
    assert_eq!(health.json()["pid"].as_u64(), Some(s.child.id() as u64));
    assert_eq!(
        common::request("GET", &admin_url("/health/ready"), &[], None).status,
        200
    );
    assert_eq!(
        common::request("GET", &admin_url("/health/live"), &[], None).status,
        200
    );
    // Only health and metrics: no images, no index, no purge on the admin port.
    for path in ["/resize?width=50&file=badge.png", "/", "/admin/purge"] {
        assert_eq!(
            common::request("GET", &admin_url(path), &[], None).status,
            404,
            "{path}"
        );
    }
}

#[test]
fn invalid_admin_listen_and_log_format_are_refused_at_start() {
    for (args, message) in [
        (&["-admin-listen", "nowhere"][..], "-admin-listen"),
        (&["-p", "9000", "-admin-listen", ":9000"], "main port"),
        (&["-log-format", "xml"], "-log-format"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_imgedge"))
            .args(args)
            .env_remove("PORT")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(message), "{args:?}: {err}");
    }
}

#[test]
fn json_log_format_writes_one_json_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let stderr = dir.path().join("stderr.log");
    let mut node = Node::spawn(
        port,
        &dir.path().join("cache"),
        &[
            "-mount",
            testdata().to_str().unwrap(),
            "-log-format",
            "json",
        ],
        &dir.path().join("stdout.log"),
        &stderr,
        &[("IMGEDGE_LOG", "info")],
    );
    let addr = node.addr;
    assert_eq!(
        fetch(addr, "/resize?width=40&file=badge.png&key=hidden")
            .unwrap()
            .status,
        200
    );
    assert_eq!(fetch(addr, "/nope").unwrap().status, 404);
    node.stop(libc::SIGTERM);

    let access = std::fs::read_to_string(dir.path().join("stdout.log")).unwrap();
    let lines: Vec<serde_json::Value> = access
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len(), 2, "{access}");
    assert_eq!(lines[0]["method"], "GET");
    assert_eq!(
        lines[0]["uri"],
        "/resize?width=40&file=badge.png&key=REDACTED"
    );
    assert_eq!(lines[0]["status"], 200);
    assert!(lines[0]["bytes"].as_u64().unwrap() > 0);
    assert_eq!(lines[0]["remote_addr"], "127.0.0.1");
    assert_eq!(lines[1]["status"], 404);

    let app = std::fs::read_to_string(&stderr).unwrap();
    let events: Vec<serde_json::Value> = app
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let listening = events
        .iter()
        .find(|e| e["message"] == "imgedge listening")
        .unwrap_or_else(|| panic!("no start event in {app}"));
    assert_eq!(listening["level"], "INFO");
    assert_eq!(listening["addr"], addr.to_string());
    assert!(events.iter().any(|e| e["message"]
        .as_str()
        .is_some_and(|m| m.starts_with("SIGTERM"))));
}

// ---------------------------------------------------------------------------------------------
// SIGTERM drains; upgrade hands the sockets over
// ---------------------------------------------------------------------------------------------

/// What a load balancer sees during a rolling restart: SIGTERM turns readiness to 503 while
/// the node keeps serving for `-shutdown-delay`; the balancer stops sending; the listener
/// closes; requests still in flight then finish within the grace period. Zero failures.
#[test]
fn sigterm_in_the_middle_of_load_loses_no_request() {
    let origin = GatedOrigin::start(sample("scene.jpg"));
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let mut node = Node::spawn(
        port,
        &dir.path().join("cache"),
        &[
            "-enable-url-source",
            "-allow-private-origins",
            "-grace-period",
            "4",
            "-shutdown-delay",
            "3",
        ],
        &dir.path().join("stdout.log"),
        &dir.path().join("stderr.log"),
        &[],
    );
    let addr = node.addr;
    // Each request is a distinct variant of a distinct source: a miss that fetches the origin.
    let origin_url = origin.url();
    let load = Load::start(addr, 4, 200, move |n| {
        format!(
            "/resize?width={}&url={}",
            40 + n % 50,
            enc(&format!("{origin_url}/{n}.jpg"))
        )
    });
    load.wait_for_completed(12);

    // Hold the origin: every client ends up with one request in flight inside imgedge.
    origin.close_gate();
    origin.wait_held(4);
    let in_flight_at_signal = load.completed();

    node.signal(libc::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ready = fetch(addr, "/health/ready").expect("still serving during the delay");
        if ready.status == 503 {
            assert_eq!(
                fetch(addr, "/health/live").unwrap().status,
                200,
                "alive while draining"
            );
            break;
        }
        assert!(Instant::now() < deadline, "readiness never failed");
        std::thread::sleep(Duration::from_millis(20));
    }
    load.stop_sending(); // the balancer has seen readiness fail

    // After the delay the listener closes while the process is still draining.
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(addr).is_ok() {
        assert!(Instant::now() < deadline, "listener never closed");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        node.child.try_wait().unwrap().is_none(),
        "exited before draining"
    );
    assert_eq!(
        load.completed(),
        in_flight_at_signal,
        "held requests finished early"
    );

    origin.open_gate();
    let report = load.join();
    assert_eq!(report.failures, Vec::<String>::new(), "lost requests");
    assert_eq!(
        report.ok,
        in_flight_at_signal + 4,
        "the 4 requests in flight when the listener closed were answered"
    );
    let status = node.wait_exit(Duration::from_secs(15));
    assert!(status.success(), "{status:?}");
}

/// pingora's upgrade: a new process started with `-upgrade` receives the listening sockets
/// over the upgrade socket, the old one (sent SIGQUIT by the new one) keeps accepting for
/// pingora's hand-over window, then drains and exits. Clients never see a refused or broken
/// connection.
#[test]
fn upgrade_in_the_middle_of_load_loses_no_request() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let cache = dir.path().join("cache");
    let mount = testdata();
    let args = ["-mount", mount.to_str().unwrap(), "-grace-period", "2"];
    let mut old = Node::spawn(
        port,
        &cache,
        &args,
        &dir.path().join("old.out"),
        &dir.path().join("old.err"),
        &[],
    );
    let addr = old.addr;
    let old_pid = old.child.id();
    let load = Load::start(addr, 3, 5000, |n| {
        // A mix of misses and hits, like real traffic.
        let file = ["scene.jpg", "badge.png", "scene.webp"][n % 3];
        format!("/resize?width={}&file={file}", 30 + n % 40)
    });
    load.wait_for_completed(20);

    let new_err = dir.path().join("new.err");
    let mut upgrade_args = args.to_vec();
    upgrade_args.push("-upgrade");
    let mut new = Node::spawn_no_wait(
        port,
        &cache,
        &upgrade_args,
        &dir.path().join("new.out"),
        &new_err,
        &[("IMGEDGE_LOG", "info")],
    );
    // The old process exits on its own once the new one holds the sockets.
    let status = old.wait_exit(Duration::from_secs(25));
    assert!(status.success(), "old process: {status:?}");
    let served_during_handover = load.completed();

    // The new process serves the same port: let the load run on it for a while.
    load.wait_for_completed(served_during_handover + 20);
    let health = fetch(addr, "/health").unwrap();
    assert_eq!(health.status, 200);
    let v: serde_json::Value = serde_json::from_slice(&health.body).unwrap();
    assert_eq!(v["pid"].as_u64(), Some(new.child.id() as u64));
    assert_ne!(v["pid"].as_u64(), Some(old_pid as u64));
    load.stop_sending();
    let report = load.join();
    assert_eq!(report.failures, Vec::<String>::new(), "lost requests");
    assert!(report.ok >= 40, "{} requests", report.ok);

    let log = std::fs::read_to_string(&new_err).unwrap();
    assert!(log.contains("listening sockets received"), "{log}");
    assert!(log.contains(&format!("old_pid={old_pid}")), "{log}");
    new.stop(libc::SIGTERM);
}

#[test]
fn upgrade_without_a_running_process_starts_normally() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let mut node = Node::spawn(
        port,
        &dir.path().join("cache"),
        &["-upgrade"],
        &dir.path().join("stdout.log"),
        &dir.path().join("stderr.log"),
        &[],
    );
    assert_eq!(fetch(node.addr, "/health/ready").unwrap().status, 200);
    node.stop(libc::SIGTERM);
    let log = std::fs::read_to_string(dir.path().join("stderr.log")).unwrap();
    assert!(
        log.contains("no running imgedge listens on this port"),
        "{log}"
    );
}

/// Under systemd (`Type=notify`, deploy/systemd/imgedge.service) the process reports itself
/// as the main process once its listener accepts, and says when it starts stopping.
#[test]
fn systemd_is_told_ready_with_the_main_pid_and_told_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let notify = dir.path().join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&notify).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let port = common::free_port();
    let mut node = Node::spawn(
        port,
        &dir.path().join("cache"),
        &[],
        &dir.path().join("stdout.log"),
        &dir.path().join("stderr.log"),
        &[("NOTIFY_SOCKET", notify.to_str().unwrap())],
    );
    let mut buf = [0u8; 256];
    let n = socket.recv(&mut buf).expect("READY notification");
    assert_eq!(
        String::from_utf8_lossy(&buf[..n]),
        format!("MAINPID={}\nREADY=1", node.child.id())
    );
    assert_eq!(
        fetch(node.addr, "/health/ready").unwrap().status,
        200,
        "ready means accepting"
    );
    node.stop(libc::SIGTERM);
    let n = socket.recv(&mut buf).expect("STOPPING notification");
    assert_eq!(&buf[..n], b"STOPPING=1");
}

// ---------------------------------------------------------------------------------------------
// deploy/: what a reviewer would check by hand
// ---------------------------------------------------------------------------------------------

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Every `-flag` in a command line of the deploy files exists, so a typo fails here and not at
/// a rollout.
fn assert_real_flags(args: &[String], file: &str) {
    for a in args.iter().filter(|a| a.starts_with('-')) {
        let name = a.trim_start_matches('-').split('=').next().unwrap();
        assert!(
            imgedge::config::FLAGS.iter().any(|f| f.name == name),
            "{file}: unknown flag {a}"
        );
    }
}

fn yaml_docs(path: &Path) -> Vec<serde_yaml::Value> {
    use serde::Deserialize;
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| {
            serde_yaml::Value::deserialize(d).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        })
        .filter(|v| !v.is_null())
        .collect()
}

fn strings(v: &serde_yaml::Value) -> Vec<String> {
    v.as_sequence()
        .map(|s| {
            s.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn kubernetes_manifests_probe_the_real_endpoints_with_real_flags() {
    let mut kinds = Vec::new();
    for entry in std::fs::read_dir(repo("deploy/k8s")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        for doc in yaml_docs(&path) {
            let kind = doc["kind"].as_str().unwrap_or_default().to_string();
            if kind == "Deployment" {
                let spec = &doc["spec"]["template"]["spec"];
                let c = &spec["containers"][0];
                assert_real_flags(&strings(&c["args"]), "deployment.yaml");
                assert_eq!(
                    c["livenessProbe"]["httpGet"]["path"].as_str(),
                    Some("/health/live")
                );
                assert_eq!(
                    c["readinessProbe"]["httpGet"]["path"].as_str(),
                    Some("/health/ready")
                );
                let args = strings(&c["args"]);
                let flag = |name: &str| {
                    args.iter()
                        .position(|a| a == name)
                        .and_then(|i| args.get(i + 1))
                        .and_then(|v| v.parse::<u64>().ok())
                        .unwrap_or_else(|| panic!("{name} missing from {args:?}"))
                };
                // Kubernetes kills at terminationGracePeriodSeconds: it must cover the delay,
                // the grace period and pingora's final 2 s.
                let budget = spec["terminationGracePeriodSeconds"].as_u64().unwrap();
                assert!(budget > flag("-shutdown-delay") + flag("-grace-period") + 2);
            }
            kinds.push(kind);
        }
    }
    for kind in [
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "ConfigMap",
    ] {
        assert!(
            kinds.iter().any(|k| k == kind),
            "{kind} missing from deploy/k8s: {kinds:?}"
        );
    }
}

#[test]
fn compose_file_uses_real_flags_and_health_checks() {
    let mut docs = yaml_docs(&repo("docker-compose.yml"));
    docs[0].apply_merge().unwrap(); // `<<: *imgedge`
    let services = docs[0]["services"].as_mapping().unwrap();
    let mut edges = 0;
    for svc in services.values() {
        let command = strings(&svc["command"]);
        if command.iter().any(|c| c.starts_with('-')) {
            assert_real_flags(&command, "docker-compose.yml");
            let budget = svc["stop_grace_period"].as_str().unwrap();
            assert_eq!(
                budget, "20s",
                "stop_grace_period covers delay + grace + 2 s"
            );
            edges += 1;
        }
    }
    assert!(edges >= 3, "three imgedge nodes behind HAProxy");
}

#[test]
fn fly_toml_runs_real_flags_and_checks_readiness() {
    let text = std::fs::read_to_string(repo("deploy/fly.toml")).unwrap();
    let command = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("app = \"-"))
        .map(|rest| format!("-{}", rest.trim_end_matches('"')))
        .expect("[processes] app = \"<flags>\"");
    let args: Vec<String> = command.split_whitespace().map(String::from).collect();
    assert_real_flags(&args, "deploy/fly.toml");
    assert!(text.contains("path = \"/health/ready\""));
    assert!(text.contains("kill_signal = \"SIGTERM\""));
}

#[test]
fn systemd_unit_upgrades_on_reload_with_real_flags() {
    let env = std::fs::read_to_string(repo("deploy/systemd/imgedge.env")).unwrap();
    let flags = env
        .lines()
        .find_map(|l| l.strip_prefix("IMGEDGE_FLAGS="))
        .expect("IMGEDGE_FLAGS")
        .trim_matches('"');
    let args: Vec<String> = flags.split_whitespace().map(String::from).collect();
    assert_real_flags(&args, "deploy/systemd/imgedge.env");
    let unit = std::fs::read_to_string(repo("deploy/systemd/imgedge.service")).unwrap();
    for line in [
        "Type=notify",
        "NotifyAccess=all",
        "-upgrade",
        "KillSignal=SIGTERM",
    ] {
        assert!(unit.contains(line), "{line} missing from the unit");
    }
}

#[test]
fn dockerfile_runs_unprivileged_with_a_healthcheck_and_the_imaginary_alias() {
    let text = std::fs::read_to_string(repo("Dockerfile")).unwrap();
    let last_stage = text.rsplit("\nFROM ").next().unwrap();
    assert!(
        last_stage.starts_with("debian:trixie-slim"),
        "runtime on Debian trixie slim"
    );
    assert!(last_stage.contains("\nUSER "), "non-root");
    assert!(last_stage.contains("HEALTHCHECK"), "health check");
    assert!(last_stage.contains("/health/live") || last_stage.contains("/health"));
    assert!(last_stage.contains("imaginary"), "imaginary alias");
    assert!(text.contains("--locked"), "reproducible build");
}

// ---------------------------------------------------------------------------------------------
// Helpers: a process on a chosen port, raw HTTP, a gated origin, bounded load
// ---------------------------------------------------------------------------------------------

/// An imgedge process on a port the test chooses (the upgrade needs two on the same one).
struct Node {
    child: Child,
    addr: SocketAddr,
}

impl Node {
    fn spawn(
        port: u16,
        cache: &Path,
        args: &[&str],
        stdout: &Path,
        stderr: &Path,
        env: &[(&str, &str)],
    ) -> Node {
        let node = Node::spawn_no_wait(port, cache, args, stdout, stderr, env);
        common::wait_listening(node.addr);
        node
    }

    fn spawn_no_wait(
        port: u16,
        cache: &Path,
        args: &[&str],
        stdout: &Path,
        stderr: &Path,
        env: &[(&str, &str)],
    ) -> Node {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_imgedge"));
        cmd.args([
            "-a",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-grace-period",
            "0",
        ])
        .args(["-cache-disk", "64MiB"])
        .arg("-cache-dir")
        .arg(cache)
        .args(args)
        .env_remove("PORT")
        .env("IMGEDGE_LOG", "warn")
        .stdout(std::fs::File::create(stdout).unwrap())
        .stderr(std::fs::File::create(stderr).unwrap())
        .stdin(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        Node {
            child: cmd.spawn().expect("start imgedge"),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }

    fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on the PID of a child this test started.
        unsafe {
            libc::kill(self.child.id() as i32, signal);
        }
    }

    fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "imgedge did not exit within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(&mut self, signal: i32) {
        self.signal(signal);
        self.wait_exit(Duration::from_secs(20));
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A complete HTTP/1.1 response.
struct Response {
    status: u16,
    body: Vec<u8>,
}

/// One GET on a fresh connection (`Connection: close`). Err for anything but a complete
/// response: refused or reset connections, truncated bodies, timeouts.
fn fetch(addr: SocketAddr, path: &str) -> Result<Response, String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    // One write, as browsers, curl and balancers send a request head. (`write!` on a bare
    // TcpStream sends each piece of the format separately; pingora closes a connection whose
    // request head is incomplete when shutdown starts, so a piecemeal head that straddles that
    // moment is reset: docs/operations.md, "Process life cycle".)
    let head = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(head.as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .map_err(|e| format!("read after {} bytes: {e}", raw.len()))?;
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("no complete header in {} bytes", raw.len()))?;
    let head = String::from_utf8_lossy(&raw[..end]).to_string();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line: {head}"))?;
    let length = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .ok_or_else(|| format!("no Content-Length: {head}"))?;
    let body = raw[end + 4..].to_vec();
    if body.len() != length {
        return Err(format!("body {} of {length} bytes", body.len()));
    }
    Ok(Response { status, body })
}

/// Bounded load: `threads` clients, each sending requests one after another on fresh
/// connections, `PACE` apart, until told to stop or `per_thread` requests are done (or 25 s
/// have passed).
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    failures: Arc<Mutex<Vec<String>>>,
    threads: Vec<JoinHandle<()>>,
}

const PACE: Duration = Duration::from_millis(5);

struct LoadReport {
    ok: usize,
    failures: Vec<String>,
}

impl Load {
    fn start(
        addr: SocketAddr,
        threads: usize,
        per_thread: usize,
        path: impl Fn(usize) -> String + Send + Sync + 'static,
    ) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicUsize::new(0));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let path = Arc::new(path);
        let started = Instant::now();
        let threads = (0..threads)
            .map(|t| {
                let (stop, ok, failures, path) =
                    (stop.clone(), ok.clone(), failures.clone(), path.clone());
                std::thread::spawn(move || {
                    for i in 0..per_thread {
                        if stop.load(Ordering::SeqCst)
                            || started.elapsed() > Duration::from_secs(25)
                        {
                            break;
                        }
                        let p = path(t * per_thread + i);
                        std::thread::sleep(PACE);
                        match fetch(addr, &p) {
                            Ok(r) if r.status == 200 => {
                                ok.fetch_add(1, Ordering::SeqCst);
                            }
                            Ok(r) => failures.lock().unwrap().push(format!(
                                "{p}: status {} {}",
                                r.status,
                                String::from_utf8_lossy(&r.body[..r.body.len().min(200)])
                            )),
                            Err(e) => failures.lock().unwrap().push(format!("{p}: {e}")),
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            ok,
            failures,
            threads,
        }
    }

    fn completed(&self) -> usize {
        self.ok.load(Ordering::SeqCst)
    }

    fn wait_for_completed(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.completed() < n {
            let failures = self.failures.lock().unwrap().clone();
            assert!(failures.is_empty(), "failures under load: {failures:?}");
            assert!(
                Instant::now() < deadline,
                "load stalled at {}",
                self.completed()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn stop_sending(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    fn join(self) -> LoadReport {
        self.stop_sending();
        for t in self.threads {
            t.join().unwrap();
        }
        LoadReport {
            ok: self.ok.load(Ordering::SeqCst),
            failures: self.failures.lock().unwrap().clone(),
        }
    }
}

/// An origin on loopback that answers every path with one image, one thread per connection,
/// and can hold its answers (the gate) so requests stay in flight inside imgedge.
struct GatedOrigin {
    addr: SocketAddr,
    gate: Arc<(Mutex<bool>, Condvar)>,
    held: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl GatedOrigin {
    fn start(body: Vec<u8>) -> GatedOrigin {
        let listener = TcpListener::bind(("127.0.0.1", common::free_port())).unwrap();
        let addr = listener.local_addr().unwrap();
        let gate = Arc::new((Mutex::new(true), Condvar::new()));
        let held = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let body = Arc::new(body);
        {
            let (gate, held, stop) = (gate.clone(), held.clone(), stop.clone());
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(mut conn) = conn else { continue };
                    let (gate, held, body) = (gate.clone(), held.clone(), body.clone());
                    std::thread::spawn(move || {
                        conn.set_read_timeout(Some(Duration::from_secs(10))).ok();
                        let mut head = Vec::new();
                        let mut byte = [0u8; 1];
                        while !head.ends_with(b"\r\n\r\n") {
                            match conn.read(&mut byte) {
                                Ok(1) => head.push(byte[0]),
                                _ => return,
                            }
                        }
                        let (lock, cvar) = &*gate;
                        let mut open = lock.lock().unwrap();
                        if !*open {
                            held.fetch_add(1, Ordering::SeqCst);
                            let deadline = Instant::now() + Duration::from_secs(10);
                            while !*open && Instant::now() < deadline {
                                open = cvar
                                    .wait_timeout(open, Duration::from_millis(50))
                                    .unwrap()
                                    .0;
                            }
                            held.fetch_sub(1, Ordering::SeqCst);
                        }
                        drop(open);
                        let _ = write!(
                            conn,
                            "HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            body.len()
                        );
                        let _ = conn.write_all(&body);
                    });
                }
            });
        }
        GatedOrigin {
            addr,
            gate,
            held,
            stop,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn close_gate(&self) {
        *self.gate.0.lock().unwrap() = false;
    }

    fn open_gate(&self) {
        *self.gate.0.lock().unwrap() = true;
        self.gate.1.notify_all();
    }

    fn wait_held(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.held.load(Ordering::SeqCst) < n {
            assert!(
                Instant::now() < deadline,
                "only {} requests held",
                self.held.load(Ordering::SeqCst)
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for GatedOrigin {
    fn drop(&mut self) {
        self.open_gate();
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr); // wakes the accept loop
    }
}
