//! Many nodes: HAProxy (the Debian package, `make deps` installs it) in front of three imgedge
//! nodes with consistent hashing by URI, and one imgedge as the origin (shield) of others.
//!
//! HAProxy runs in the foreground as a child process on a loopback port, with a config this
//! test writes from the same settings as `deploy/haproxy.cfg`; it is killed by PID at the end.

mod common;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{enc, testdata, Imgedge, Reply};

/// `haproxy -f <cfg> -db` as a child process, killed by PID when dropped.
struct Haproxy {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Haproxy {
    /// A frontend on a free loopback port hashing whole URIs (path and query) onto `nodes`.
    fn start(nodes: &[(&str, SocketAddr)]) -> Haproxy {
        let port = common::free_port();
        let servers: String = nodes
            .iter()
            .map(|(name, addr)| format!("    server {name} {addr}\n"))
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("admin.sock");
        let config = format!(
            "global\n\
             \x20   maxconn 512\n\
             \x20   stats socket {} level admin\n\
             defaults\n\
             \x20   mode http\n\
             \x20   timeout connect 1s\n\
             \x20   timeout client 30s\n\
             \x20   timeout server 30s\n\
             \x20   retries 2\n\
             \x20   option redispatch 1\n\
             \x20   retry-on conn-failure empty-response response-timeout\n\
             frontend images\n\
             \x20   bind 127.0.0.1:{port}\n\
             \x20   default_backend imgedge\n\
             backend imgedge\n\
             \x20   balance uri whole\n\
             \x20   hash-type consistent\n\
             \x20   option httpchk GET /health/ready\n\
             \x20   http-check expect status 200\n\
             \x20   default-server check inter 200ms fall 2 rise 1\n\
             \x20   http-response set-header X-Served-By %s\n\
             {servers}",
            socket.display()
        );
        let cfg = dir.path().join("haproxy.cfg");
        std::fs::write(&cfg, config).unwrap();
        let child = Command::new(haproxy_binary())
            .arg("-f")
            .arg(&cfg)
            .arg("-db") // foreground, no daemon
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start haproxy");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        common::wait_listening(addr);
        Haproxy {
            child,
            addr,
            _dir: dir,
        }
    }

    /// HAProxy's view of one server (`UP`, `DOWN`, …) from its stats socket. HAProxy may
    /// accept on its frontend before it has made the socket, so a missing socket is an error
    /// the caller waits out, not a failure.
    fn server_status(&self, server: &str) -> std::io::Result<String> {
        use std::io::{Read, Write};
        let mut sock =
            std::os::unix::net::UnixStream::connect(self._dir.path().join("admin.sock"))?;
        sock.write_all(b"show stat\n")?;
        let mut csv = String::new();
        sock.read_to_string(&mut csv)?;
        // # pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,
        //   wretr,wredis,status,...
        Ok(csv
            .lines()
            .map(|l| l.split(',').collect::<Vec<_>>())
            .find(|c| c.len() > 17 && c[0] == "imgedge" && c[1] == server)
            .map(|c| c[17].to_string())
            .unwrap_or_default())
    }

    fn wait_status(&self, server: &str, status: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let now = self.server_status(server);
            if matches!(&now, Ok(s) if s.starts_with(status)) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{server} never {status}: last seen {now:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn get(&self, path: &str) -> Reply {
        common::request("GET", &format!("http://{}{path}", self.addr), &[], None)
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the PID of the haproxy this test started.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

fn haproxy_binary() -> &'static str {
    for path in [
        "/usr/sbin/haproxy",
        "/usr/bin/haproxy",
        "/usr/local/sbin/haproxy",
    ] {
        if Path::new(path).exists() {
            return path;
        }
    }
    panic!("haproxy is not installed: run `make deps` (it installs Debian's haproxy package)");
}

/// Served-by and X-Cache of one response through HAProxy, asserting it is a good image.
fn served(r: &Reply) -> (String, String) {
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let _ = r.size();
    (
        r.header("x-served-by").expect("X-Served-By").to_string(),
        r.header("x-cache").expect("X-Cache").to_string(),
    )
}

#[test]
fn haproxy_sends_each_url_to_one_node_and_survives_losing_one() {
    let mount = testdata();
    let args = ["-mount", mount.to_str().unwrap(), "-cache-disk", "0"];
    let mut nodes: Vec<Option<Imgedge>> = (0..3).map(|_| Some(Imgedge::start(&args))).collect();
    let names = ["n1", "n2", "n3"];
    let addrs: Vec<(&str, SocketAddr)> = names
        .iter()
        .zip(&nodes)
        .map(|(n, s)| (*n, s.as_ref().unwrap().addr))
        .collect();
    let lb = Haproxy::start(&addrs);
    for name in names {
        lb.wait_status(name, "UP");
    }

    // 18 variants: the query is part of the hash (`balance uri whole`), so they spread out.
    let urls: Vec<String> = (0..18)
        .map(|i| {
            let file = ["scene.jpg", "badge.png", "scene.webp"][i % 3];
            format!("/resize?width={}&file={file}", 60 + i)
        })
        .collect();
    let mut owner: HashMap<&str, String> = HashMap::new();
    for url in &urls {
        let (first, cache) = served(&lb.get(url));
        assert_eq!(cache, "MISS", "{url}");
        for _ in 0..2 {
            let (again, cache) = served(&lb.get(url));
            assert_eq!(again, first, "{url} moved between nodes");
            assert_eq!(
                cache, "HIT-MEMORY",
                "{url}: the same node answers from memory"
            );
        }
        owner.insert(url.as_str(), first);
    }
    let used: HashSet<&String> = owner.values().collect();
    assert!(used.len() >= 2, "all URLs on one node: {owner:?}");

    // Stop the node that owns the most URLs. No URL fails, even before HAProxy's health check
    // marks it down (failed connections are retried on another node)...
    let victim = names
        .iter()
        .max_by_key(|n| owner.values().filter(|o| o.as_str() == **n).count())
        .unwrap()
        .to_string();
    let index = names.iter().position(|n| *n == victim).unwrap();
    nodes[index].take().unwrap().stop_with(libc::SIGTERM);
    for url in &urls {
        let (now, _) = served(&lb.get(url));
        assert_ne!(now, victim, "{url} answered by the stopped node");
    }
    // ... and once it is marked down, consistent hashing has moved only the stopped node's
    // URLs: every other URL still lands on its node and its memory cache.
    lb.wait_status(&victim, "DOWN");
    let mut moved = 0;
    for url in &urls {
        let (now, cache) = served(&lb.get(url));
        assert_ne!(now, victim, "{url} still sent to the stopped node");
        if owner[url.as_str()] == victim {
            moved += 1;
            let (again, cache) = served(&lb.get(url));
            assert_eq!(
                (again, cache.as_str()),
                (now, "HIT-MEMORY"),
                "{url} on its new node"
            );
        } else {
            assert_eq!(
                now,
                owner[url.as_str()],
                "{url} moved although its node is up"
            );
            assert_eq!(cache, "HIT-MEMORY", "{url}");
        }
    }
    assert!(moved > 0);
}

/// The shield tier: edges fetch `?url=` from another imgedge (which reads the object store,
/// here a mounted directory). The shield's own cache and metrics show it served them.
#[test]
fn an_edge_uses_another_imgedge_as_its_origin_shield() {
    let shield = Imgedge::start(&["-mount", testdata().to_str().unwrap(), "-cache-disk", "0"]);
    let edge_args = [
        "-enable-url-source",
        "-allow-private-origins",
        "-cache-disk",
        "0",
    ];
    let edge_a = Imgedge::start(&edge_args);
    let edge_b = Imgedge::start(&edge_args);

    // The shield makes a 400 px master; the edges derive their variants from it.
    let master = shield.url("/resize?width=400&file=scene.jpg");
    let r = edge_a.get(&format!("/convert?type=webp&url={}", enc(&master)));
    assert_eq!(r.status, 200);
    assert_eq!(r.format(), imagesize::ImageType::Webp);
    assert_eq!(r.size().0, 400);
    assert_eq!(r.header("x-cache"), Some("MISS"));
    // Another variant of the same source on the same edge: its source cache has the master.
    let r = edge_a.get(&format!("/resize?width=100&url={}", enc(&master)));
    assert_eq!((r.status, r.size().0), (200, 100));
    // A second edge asks the shield for the same master: the shield answers from memory.
    let r = edge_b.get(&format!("/resize?width=200&url={}", enc(&master)));
    assert_eq!((r.status, r.size().0), (200, 200));
    // Plain image URLs work through the shield as well (`/convert` keeps the bytes' format).
    let plain = shield.url("/convert?type=png&file=badge.png");
    let r = edge_b.get(&format!("/resize?width=32&url={}", enc(&plain)));
    assert_eq!((r.status, r.format()), (200, imagesize::ImageType::Png));

    let metrics = String::from_utf8(shield.get("/metrics").body).unwrap();
    let value = |line: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(line)?.trim().parse().ok())
            .unwrap_or(0)
    };
    assert_eq!(
        value("imgedge_requests_total{endpoint=\"resize\",status=\"200\"}"),
        2,
        "one master fetch per edge:\n{metrics}"
    );
    assert_eq!(
        value("imgedge_cache_responses_total{outcome=\"miss\"}"),
        2,
        "{metrics}"
    );
    assert_eq!(
        value("imgedge_cache_responses_total{outcome=\"hit-memory\"}"),
        1,
        "{metrics}"
    );
    let log = shield.access_log();
    assert_eq!(
        log.matches("GET /resize?width=400&file=scene.jpg HTTP/1.1\" 200")
            .count(),
        2,
        "{log}"
    );
}

/// `deploy/haproxy.cfg` as shipped passes HAProxy's own configuration check.
#[test]
fn deploy_haproxy_cfg_is_valid() {
    let cfg = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/haproxy.cfg");
    let out = Command::new(haproxy_binary())
        .arg("-c")
        .arg("-f")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(text.contains("balance uri whole") && text.contains("hash-type consistent"));
}
