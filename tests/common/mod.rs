//! The test harness: the real `imgedge` binary on an ephemeral loopback port, a real HTTP
//! origin on loopback, and a plain HTTP client. Nothing is mocked.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The repo's committed sample images.
pub fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata")
}

pub fn sample(name: &str) -> Vec<u8> {
    std::fs::read(testdata().join(name)).expect("sample image")
}

/// A running imgedge process, killed (by PID) when dropped.
pub struct Imgedge {
    pub child: Child,
    pub addr: SocketAddr,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Imgedge {
    /// Starts the binary with `args` (imaginary flags) on a free loopback port.
    pub fn start(args: &[&str]) -> Imgedge {
        Imgedge::start_in(tempfile::tempdir().unwrap(), args)
    }

    /// Starts with its disk cache (and logs) in `dir`, so a test can restart on the same cache.
    pub fn start_in(dir: tempfile::TempDir, args: &[&str]) -> Imgedge {
        let log = dir.path().join("stdout.log");
        let port = free_port();
        let mut child = Command::new(env!("CARGO_BIN_EXE_imgedge"))
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-grace-period",
                "0",
            ])
            .arg("-cache-dir")
            .arg(dir.path().join("cache"))
            .args(args)
            .env_remove("PORT")
            .env("IMGEDGE_LOG", "warn")
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start imgedge");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        // A server that exits at start (a port it cannot bind, a bad flag) fails the test with
        // its log, which goes to a file the test deletes, instead of a refused request later.
        wait_listening_while(addr, || match child.try_wait() {
            Ok(Some(status)) => Err(format!(
                "imgedge exited at start ({status}); its log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )),
            _ => Ok(()),
        });
        Imgedge {
            child,
            addr,
            log,
            _dir: dir,
        }
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{}", self.addr, path_and_query)
    }

    pub fn get(&self, path_and_query: &str) -> Reply {
        request("GET", &self.url(path_and_query), &[], None)
    }

    pub fn post(&self, path_and_query: &str, content_type: &str, body: &[u8]) -> Reply {
        request(
            "POST",
            &self.url(path_and_query),
            &[("Content-Type", content_type)],
            Some(body),
        )
    }

    /// Stops the process and hands back its directory (disk cache included) for a restart.
    pub fn stop_keep_dir(mut self) -> tempfile::TempDir {
        self.stop_with(libc::SIGTERM);
        let dir = tempfile::tempdir().unwrap();
        std::mem::replace(&mut self._dir, dir)
    }

    pub fn access_log(&self) -> String {
        // The server writes its access log in batches, at most 100 ms apart.
        std::thread::sleep(Duration::from_millis(300));
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends `signal` and waits for the process to exit, returning how long that took.
    pub fn stop_with(&mut self, signal: i32) -> Duration {
        let start = Instant::now();
        // SAFETY: kill(2) on the PID of a child this harness started.
        unsafe {
            libc::kill(self.child.id() as i32, signal);
        }
        let deadline = start + Duration::from_secs(20);
        loop {
            if let Ok(Some(_)) = self.child.try_wait() {
                return start.elapsed();
            }
            assert!(Instant::now() < deadline, "imgedge did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Imgedge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits (at most 30 s) until something accepts connections on `addr`.
pub fn wait_listening(addr: SocketAddr) {
    wait_listening_while(addr, || Ok(()));
}

/// [`wait_listening`], failing at once with its reason when `alive` says the server is gone.
fn wait_listening_while(addr: SocketAddr, mut alive: impl FnMut() -> Result<(), String>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Err(why) = alive() {
            panic!("{addr}: {why}");
        }
        if TcpStream::connect(addr).is_ok() {
            return;
        }
        assert!(Instant::now() < deadline, "{addr} did not start listening");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    // The kernel may hand a port freed here to a parallel test's bind(0) too; the second
    // server then fails to bind and its test talks to the first test's server. So no port is
    // handed out twice in one test process, and every listener of a test process takes its
    // port from here.
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// A decoded HTTP response.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// Decoded (width, height) of the body image.
    pub fn size(&self) -> (usize, usize) {
        let s = imagesize::blob_size(&self.body).unwrap_or_else(|e| {
            panic!(
                "not an image ({e}), status {}: {}",
                self.status,
                String::from_utf8_lossy(&self.body[..self.body.len().min(300)])
            )
        });
        (s.width, s.height)
    }

    /// The body's image format as imagesize names it.
    pub fn format(&self) -> imagesize::ImageType {
        imagesize::image_type(&self.body).expect("an image")
    }

    /// Asserts imaginary's JSON error shape and returns its message.
    pub fn error(&self, status: u16) -> String {
        assert_eq!(
            self.status,
            status,
            "body: {}",
            String::from_utf8_lossy(&self.body)
        );
        assert_eq!(self.header("content-type"), Some("application/json"));
        let v = self.json();
        assert_eq!(v["status"].as_u64(), Some(status as u64), "{v}");
        v["message"].as_str().expect("message").to_string()
    }
}

/// One HTTP request with a plain client (no redirects followed, 4xx/5xx are answers).
pub fn request(method: &str, url: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> Reply {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .proxy(None)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let mut builder = http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let response = match body {
        Some(b) => agent.run(builder.body(b.to_vec()).unwrap()),
        None => agent.run(builder.body(()).unwrap()),
    }
    .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let mut body = Vec::new();
    response
        .into_body()
        .into_reader()
        .read_to_end(&mut body)
        .unwrap();
    Reply {
        status,
        headers,
        body,
    }
}

/// A multipart/form-data body with one file field.
pub fn multipart(field: &str, data: &[u8]) -> (String, Vec<u8>) {
    let boundary = "imgedge-test-boundary-7MA4YWxkTrZu0gW";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"upload.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(data);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// What the origin answers for one path.
#[derive(Clone)]
pub struct Resource {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resource {
    pub fn ok(content_type: &str, body: Vec<u8>) -> Self {
        Resource {
            status: 200,
            headers: vec![("Content-Type".into(), content_type.into())],
            body,
        }
    }

    pub fn status(status: u16) -> Self {
        Resource {
            status,
            headers: vec![],
            body: b"nope".to_vec(),
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn redirect(location: &str) -> Self {
        Resource {
            status: 302,
            headers: vec![("Location".into(), location.into())],
            body: vec![],
        }
    }
}

/// A real HTTP server on 127.0.0.1 that serves fixed resources and counts requests.
pub struct Origin {
    pub addr: SocketAddr,
    hits: Arc<Mutex<HashMap<String, usize>>>,
    total: Arc<AtomicUsize>,
    /// Requests answered 304 because their `If-None-Match` matched.
    pub not_modified: Arc<AtomicUsize>,
    /// The headers of the last request per path (names lower-cased).
    seen: Arc<Mutex<HashMap<String, HashMap<String, String>>>>,
    server: Arc<tiny_http::Server>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Origin {
    pub fn start(resources: Vec<(&str, Resource)>) -> Origin {
        // A port from free_port, not the kernel's bind(0): a port free_port just handed to an
        // imgedge that has not bound it yet would otherwise be taken here, and that test would
        // talk to this origin (and then to nothing).
        let server = Arc::new(tiny_http::Server::http(("127.0.0.1", free_port())).unwrap());
        let addr = server.server_addr().to_ip().unwrap();
        let table: HashMap<String, Resource> = resources
            .into_iter()
            .map(|(p, r)| (p.to_string(), r))
            .collect();
        let hits = Arc::new(Mutex::new(HashMap::new()));
        let total = Arc::new(AtomicUsize::new(0));
        let not_modified = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(HashMap::new()));
        let thread = {
            let (server, hits, total, nm, seen) = (
                server.clone(),
                hits.clone(),
                total.clone(),
                not_modified.clone(),
                seen.clone(),
            );
            std::thread::spawn(move || {
                for req in server.incoming_requests() {
                    let path = req.url().split('?').next().unwrap_or("").to_string();
                    let headers = req
                        .headers()
                        .iter()
                        .map(|h| {
                            (
                                h.field.to_string().to_ascii_lowercase(),
                                h.value.to_string(),
                            )
                        })
                        .collect();
                    seen.lock().unwrap().insert(path.clone(), headers);
                    *hits.lock().unwrap().entry(path.clone()).or_insert(0) += 1;
                    total.fetch_add(1, Ordering::SeqCst);
                    let mut res = table.get(&path).cloned().unwrap_or(Resource::status(404));
                    // Conditional GET: answer 304 when the client's validator matches.
                    let inm = req
                        .headers()
                        .iter()
                        .find(|h| h.field.equiv("If-None-Match"))
                        .map(|h| h.value.to_string());
                    let etag = res
                        .headers
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case("etag"))
                        .map(|(_, v)| v.clone());
                    if inm.is_some() && inm == etag {
                        nm.fetch_add(1, Ordering::SeqCst);
                        res.status = 304;
                        res.body.clear();
                    }
                    let mut response =
                        tiny_http::Response::from_data(res.body).with_status_code(res.status);
                    for (k, v) in res.headers {
                        response.add_header(
                            tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()).unwrap(),
                        );
                    }
                    let _ = req.respond(response);
                }
            })
        };
        Origin {
            addr,
            hits,
            total,
            not_modified,
            seen,
            server,
            thread: Some(thread),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    /// A header of the last request for `path`, as the origin received it.
    pub fn seen_header(&self, path: &str, name: &str) -> Option<String> {
        self.seen
            .lock()
            .unwrap()
            .get(path)?
            .get(&name.to_ascii_lowercase())
            .cloned()
    }

    pub fn total(&self) -> usize {
        self.total.load(Ordering::SeqCst)
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Percent-encodes a whole value for use inside a query string.
pub fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
