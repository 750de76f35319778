//! The client for `?url=` sources (spec §4.3): imaginary's semantics with its holes closed.
//!
//! Every hop is checked against `-allowed-origins` (redirects included), only http and https
//! are fetched, DNS is resolved here and the connection goes to the very address resolved
//! (pingora's `HttpPeer::new` would resolve with a blocking call and panic on failure), each
//! phase has a timeout, and the body is streamed under a hard byte cap that never trusts
//! `Content-Length`.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use pingora::connectors::http::Connector;
use pingora::http::RequestHeader;
use pingora::upstreams::peer::HttpPeer;
use url::Url;

use crate::error::Error;
use crate::policy::address;
use crate::policy::origins::{not_allowed_message, OriginRules};

const MAX_REDIRECTS: usize = 10;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const READ_TIMEOUT: Duration = Duration::from_secs(15);
const TOTAL_TIMEOUT: Duration = Duration::from_secs(30);

pub struct OriginClient {
    connector: Connector,
    rules: OriginRules,
    /// Hard cap on a response body.
    max_bytes: u64,
    /// SSRF guard off: internal addresses may be fetched.
    allow_internal: bool,
}

impl OriginClient {
    pub fn new(rules: OriginRules, max_bytes: u64, allow_internal: bool) -> Self {
        OriginClient {
            connector: Connector::new(None),
            rules,
            max_bytes,
            allow_internal,
        }
    }

    /// Parses a `url` param the way imaginary accepts it: absolute http(s) URLs only
    /// (FIX: imaginary hands any scheme to its client).
    pub fn parse_url(raw: &str) -> Result<Url, Error> {
        let url = Url::parse(raw).map_err(|_| Error::InvalidImageUrl)?;
        match url.scheme() {
            "http" | "https" if url.host_str().is_some_and(|h| !h.is_empty()) => Ok(url),
            _ => Err(Error::InvalidImageUrl),
        }
    }

    /// Fetches `url`, following redirects, sending `headers` (forwarded ones and, for a
    /// revalidation, `If-None-Match`/`If-Modified-Since`) on each hop. Answers 200, 304, 404
    /// and 410 come back as [`Fetched`] (the caller caches them); other statuses are errors.
    pub async fn fetch(&self, url: Url, headers: &[(String, String)]) -> Result<Fetched, Error> {
        let started = std::time::Instant::now();
        let result = match tokio::time::timeout(TOTAL_TIMEOUT, self.follow(url, headers)).await {
            Ok(result) => result,
            Err(_) => Err(fetch_error(format!(
                "timed out after {}s",
                TOTAL_TIMEOUT.as_secs()
            ))),
        };
        let m = crate::metrics::metrics();
        m.origin_seconds.observe(started.elapsed().as_secs_f64());
        if let Err(e) = &result {
            let reason = match e.code() {
                403 => "refused",
                400 => "fetch",
                _ => "status",
            };
            m.origin_errors.with_label_values(&[reason]).inc();
        }
        result
    }

    /// [`OriginClient::fetch`] for callers that only take a 200 with a body.
    pub async fn fetch_body(&self, url: Url, headers: &[(String, String)]) -> Result<Bytes, Error> {
        let shown = url.to_string();
        let fetched = self.fetch(url, headers).await?;
        match fetched.status {
            200 => Ok(fetched.body),
            status => Err(status_error(status, &shown)),
        }
    }

    async fn follow(&self, mut url: Url, headers: &[(String, String)]) -> Result<Fetched, Error> {
        let first = url.origin();
        for _ in 0..=MAX_REDIRECTS {
            if !self.rules.allows(&url) {
                return Err(Error::bad_request(not_allowed_message(&url)));
            }
            // Credentials never follow a redirect to another origin (scheme, host and port: stricter
            // than Go's client, which ignores the port).
            let same_origin = url.origin() == first;
            let hop_headers: Vec<&(String, String)> = headers
                .iter()
                .filter(|(n, _)| same_origin || !n.eq_ignore_ascii_case("authorization"))
                .collect();
            match self.get(&url, &hop_headers).await? {
                Hop::Done(fetched) => return Ok(fetched),
                Hop::Redirect(location) => {
                    url = url
                        .join(&location)
                        .ok()
                        .filter(|u| matches!(u.scheme(), "http" | "https"))
                        .ok_or_else(|| {
                            fetch_error(format!("bad redirect location {location:?}"))
                        })?;
                }
            }
        }
        Err(fetch_error(format!(
            "stopped after {MAX_REDIRECTS} redirects"
        )))
    }

    async fn get(&self, url: &Url, headers: &[&(String, String)]) -> Result<Hop, Error> {
        let addr = resolve(url, self.allow_internal).await?;
        let host = url.host_str().unwrap_or_default().trim_matches(['[', ']']);
        let mut peer = HttpPeer::new(addr, url.scheme() == "https", host.to_string());
        peer.options.connection_timeout = Some(CONNECT_TIMEOUT);
        peer.options.total_connection_timeout = Some(CONNECT_TIMEOUT);
        peer.options.read_timeout = Some(READ_TIMEOUT);
        peer.options.write_timeout = Some(READ_TIMEOUT);

        let mut path = url.path().to_string();
        if let Some(q) = url.query() {
            path.push('?');
            path.push_str(q);
        }
        let mut req = RequestHeader::build("GET", path.as_bytes(), None).map_err(fetch_error)?;
        let host_header = match url.port() {
            Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_string(),
        };
        req.insert_header("Host", host_header)
            .map_err(fetch_error)?;
        req.insert_header("User-Agent", concat!("imgedge/", env!("CARGO_PKG_VERSION")))
            .map_err(fetch_error)?;
        for (name, value) in headers {
            req.insert_header(name.clone(), value.as_str())
                .map_err(fetch_error)?;
        }

        let (mut session, _reused) = self
            .connector
            .get_http_session(&peer)
            .await
            .map_err(fetch_error)?;
        session
            .write_request_header(Box::new(req))
            .await
            .map_err(fetch_error)?;
        session.finish_request_body().await.map_err(fetch_error)?;
        session.read_response_header().await.map_err(fetch_error)?;
        let resp = session
            .response_header()
            .ok_or_else(|| fetch_error("no response header"))?;
        let status = resp.status.as_u16();

        if matches!(status, 301 | 302 | 303 | 307 | 308) {
            let location = resp
                .headers
                .get("location")
                .and_then(|l| l.to_str().ok())
                .map(str::to_owned)
                .ok_or_else(|| fetch_error(format!("redirect {status} without Location")))?;
            return Ok(Hop::Redirect(location));
        }
        let header = |name: &str| {
            resp.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let validators = CachingHeaders {
            cache_control: header("cache-control"),
            expires: header("expires"),
            date: header("date"),
            age: header("age"),
            etag: header("etag"),
            last_modified: header("last-modified"),
        };
        match status {
            200 => {}
            304 | 404 | 410 => {
                // Bodies of these are not images; drain nothing, reuse nothing.
                return Ok(Hop::Done(Fetched {
                    status,
                    body: Bytes::new(),
                    headers: validators,
                }));
            }
            _ => return Err(status_error(status, &shown(url))),
        }
        let declared = resp
            .headers
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if let Some(n) = declared.filter(|n| *n > self.max_bytes) {
            return Err(Error::bad_request(format!(
                "Content-Length {n} exceeds maximum allowed {} bytes",
                self.max_bytes
            )));
        }

        let mut body =
            BytesMut::with_capacity(declared.unwrap_or(64 * 1024).min(self.max_bytes) as usize);
        while let Some(chunk) = session.read_response_body().await.map_err(|e| {
            Error::bad_request(format!(
                "unable to create image from response body: {url}: {e}"
            ))
        })? {
            if (body.len() + chunk.len()) as u64 > self.max_bytes {
                // Chunked or lying about its length: cut off at the cap, never read on.
                return Err(Error::bad_request(format!(
                    "image body from origin exceeds maximum allowed {} bytes",
                    self.max_bytes
                )));
            }
            body.extend_from_slice(&chunk);
        }
        // Keep the connection for the next fetch from this origin.
        self.connector
            .release_http_session(session, &peer, None)
            .await;
        Ok(Hop::Done(Fetched {
            status,
            body: body.freeze(),
            headers: validators,
        }))
    }
}

enum Hop {
    Done(Fetched),
    Redirect(String),
}

/// An origin's answer: 200 with its body, or 304/404/410 without one.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub status: u16,
    pub body: Bytes,
    pub headers: CachingHeaders,
}

/// The response headers that decide how long an origin response may be reused.
#[derive(Debug, Clone, Default)]
pub struct CachingHeaders {
    pub cache_control: Option<String>,
    pub expires: Option<String>,
    pub date: Option<String>,
    pub age: Option<String>,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

impl CachingHeaders {
    pub fn as_origin_headers(&self) -> crate::cache::OriginHeaders<'_> {
        crate::cache::OriginHeaders {
            cache_control: self.cache_control.as_deref(),
            expires: self.expires.as_deref(),
            date: self.date.as_deref(),
            age: self.age.as_deref(),
            etag: self.etag.as_deref(),
            last_modified: self.last_modified.as_deref(),
        }
    }
}

/// A URL fit for an error message: a presigned request's signature never leaves imgedge.
fn shown(url: &Url) -> String {
    match url.query() {
        Some(q) if q.contains("X-Amz-Signature") => {
            let mut bare = url.clone();
            bare.set_query(None);
            bare.to_string()
        }
        _ => url.to_string(),
    }
}

/// imaginary's error for a non-200 origin answer: the remote status (503 outside 400..=511).
pub fn status_error(status: u16, url: &str) -> Error {
    Error::Message {
        status,
        message: format!("error fetching remote http image: (status={status}) (url={url})"),
    }
}

/// Resolves the URL's host to one socket address that the SSRF guard accepts, without
/// blocking a worker thread. The caller connects to exactly this address.
async fn resolve(url: &Url, allow_internal: bool) -> Result<SocketAddr, Error> {
    let port = url.port_or_known_default().unwrap_or(80);
    let mut addrs: Vec<SocketAddr> = match url.host() {
        // The WHATWG parser already turned `2130706433`, `0x7f.1` and friends into IPs.
        Some(url::Host::Ipv4(ip)) => vec![SocketAddr::new(ip.into(), port)],
        Some(url::Host::Ipv6(ip)) => vec![SocketAddr::new(ip.into(), port)],
        Some(url::Host::Domain(host)) => {
            let lookup =
                tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::lookup_host((host, port)))
                    .await
                    .map_err(|_| fetch_error(format!("resolving {host}: timed out")))?
                    .map_err(|e| fetch_error(format!("resolving {host}: {e}")))?;
            lookup.collect()
        }
        None => return Err(Error::InvalidImageUrl),
    };
    if addrs.is_empty() {
        return Err(fetch_error("resolving: no address"));
    }
    if !allow_internal {
        // Every address must be public: a name with one public and one internal address could
        // otherwise be steered to the internal one by whoever controls its DNS.
        if addrs.iter().any(|a| address::is_internal(a.ip())) {
            return Err(Error::Message {
                status: 403,
                message: format!(
                    "not allowed remote URL origin: {} resolves to an internal address",
                    url.host_str().unwrap_or_default()
                ),
            });
        }
    }
    addrs.sort_by_key(|a| a.is_ipv6()); // prefer IPv4, as most origins are reachable there
    Ok(addrs[0])
}

fn fetch_error(e: impl std::fmt::Display) -> Error {
    Error::bad_request(format!("error fetching remote http image: {e}"))
}
