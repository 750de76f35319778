//! The edge: pingora's `ProxyHttp` phases, with the whole request lifecycle of DESIGN.md in
//! [`Edge::request_filter`]:
//!
//! ```text
//! 1. route      path prefix, endpoint table, 301 for non-canonical paths      (route.rs)
//! 2. admit      method gates, API key, CORS pre-flight, disabled endpoints
//! 3. parse      query → ops::Params → ops::Plan (validated before any fetch)
//! 4. negotiate  type=auto + Accept (inside Plan::new)
//! 5. source     POST body · mounted file · origin                             (source.rs, origin.rs)
//! 6. produce    resolution limit + ops::run on the bounded libvips pool       (policy/pool.rs)
//! 7. respond    image or imaginary's JSON error, with Content-Length          (response.rs)
//! ```
//!
//! Every answer is generated here; `upstream_peer` is never reached.

pub mod admin;
pub mod origin;
pub mod placeholder;
pub mod response;
pub mod route;
pub mod source;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use http::Method;
use pingora::proxy::{ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;

use crate::config::Config;
use crate::error::Error;
use crate::ops::{self, Endpoint, OpError, Params, Plan};
use crate::policy::origins::OriginRules;
use crate::policy::pool::Pool;
use crate::policy::ratelimit::RateLimit;
use crate::policy::signature::Signer;
use origin::OriginClient;
use response::Reply;
use route::Route;
use source::Source;

/// The imgedge edge node: one per process, shared by every connection.
pub struct Edge {
    cfg: Arc<Config>,
    pool: Arc<Pool>,
    origin: OriginClient,
    signer: Option<Signer>,
    placeholder: Option<placeholder::Placeholder>,
    rate_limit: Option<RateLimit>,
    started: Instant,
    libvips: String,
}

/// Per-request state carried from `request_filter` to `logging`.
pub struct RequestCtx {
    started: Instant,
    status: u16,
    bytes: usize,
}

impl Edge {
    pub fn new(cfg: Arc<Config>, libvips: String) -> Result<Self, String> {
        let rules = OriginRules::parse(&cfg.allowed_origins)?;
        let origin_cap = match cfg.max_allowed_size {
            0 => cfg.max_body_size,
            n => n,
        };
        Ok(Edge {
            pool: Arc::new(Pool::new(cfg.workers, cfg.queue)),
            origin: OriginClient::new(rules, origin_cap, cfg.allow_private_origins),
            signer: cfg
                .enable_url_signature
                .then(|| Signer::new(&cfg.url_signature_key)),
            rate_limit: RateLimit::new(cfg.concurrency, cfg.burst),
            placeholder: match cfg.enable_placeholder {
                true => Some(placeholder::Placeholder::load(
                    cfg.placeholder.as_deref(),
                    cfg.placeholder_status,
                )?),
                false => None,
            },
            started: Instant::now(),
            libvips,
            cfg,
        })
    }

    /// Steps 1–7 for one request; always yields a reply. With a placeholder configured, error
    /// replies become placeholder images (except the index 404 and plain-text answers).
    async fn handle(&self, session: &mut Session) -> Reply {
        let reply = self.dispatch(session).await;
        let (Some(placeholder), Some(error)) = (&self.placeholder, &reply.error) else {
            return reply;
        };
        if *error == Error::NotFound {
            return reply;
        }
        let pairs = ops::params::query_pairs(session.req_header().uri.query().unwrap_or_default());
        let mut image = placeholder.reply(&self.pool, error, &pairs).await;
        image
            .headers
            .extend(reply.headers.into_iter().filter(|(n, _)| *n != "Content-Type"));
        image
    }

    async fn dispatch(&self, session: &mut Session) -> Reply {
        let req = session.req_header();
        let method = req.method.clone();
        let raw_path = req.uri.path().to_string();
        let raw_query = req.uri.query().unwrap_or_default().to_string();
        let path = percent_encoding::percent_decode_str(&raw_path)
            .decode_utf8_lossy()
            .into_owned();
        let origin_header = header(session, "origin").is_some();

        // 1. route
        let route = route::resolve(&self.cfg.path_prefix, &path, req.uri.query());
        let image = matches!(route, Route::Image(_));
        match route {
            Route::Redirect(location) => return Reply::redirect(location),
            Route::NotFoundPlain => return Reply::plain_not_found(),
            _ => {}
        }

        // 2. admit
        if self.cfg.cors && method == Method::OPTIONS {
            return self.preflight(session);
        }
        let pairs = ops::params::query_pairs(&raw_query);
        if let Err(e) = self.admit(&method, image, session, &pairs, &path) {
            return Reply::error(&e);
        }
        let limit_headers = match self.throttle(session) {
            Ok(headers) => headers,
            Err(refusal) => return refusal,
        };
        if route::is_disabled(&self.cfg.disabled_endpoints, &path) {
            return Reply::error(&Error::NotImplemented);
        }

        let mut reply = match route {
            Route::Index => admin::index(&self.libvips),
            Route::Health => admin::health(self.started),
            Route::Form => admin::form(&self.cfg.path_prefix),
            Route::Image(endpoint) => self.image(session, endpoint, &raw_query, &pairs).await,
            Route::NotFoundJson | Route::NotFoundPlain | Route::Redirect(_) => {
                Reply::error(&Error::NotFound)
            }
        };
        if self.cfg.cors && (method == Method::GET || method == Method::POST || method == Method::HEAD) {
            reply.vary("Origin");
            if origin_header {
                reply.headers.push(("Access-Control-Allow-Origin", "*".to_string()));
            }
        }
        self.cache_headers(&mut reply, &method, &path);
        reply.headers.extend(limit_headers);
        reply
    }

    /// Step 2: the gates in imaginary's order (spec §2.2, §2.3). HEAD is served wherever GET
    /// is (FIX: imaginary answers 405).
    fn admit(
        &self,
        method: &Method,
        image: bool,
        session: &Session,
        pairs: &[(String, String)],
        path: &str,
    ) -> Result<(), Error> {
        if let Some(signer) = self.signer.as_ref().filter(|_| image) {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            signer.verify(path, pairs, now)?;
        }
        let get = method == Method::GET || method == Method::HEAD;
        if image && get && self.cfg.mount.is_none() && !self.cfg.enable_url_source {
            return Err(Error::GetMethodNotAllowed);
        }
        if !get && method != Method::POST {
            return Err(Error::MethodNotAllowed);
        }
        if !self.cfg.key.is_empty() {
            let given = header(session, "api-key")
                .filter(|k| !k.is_empty())
                .or_else(|| first(pairs, "key").map(str::to_owned))
                .unwrap_or_default();
            if !constant_time_eq(given.as_bytes(), self.cfg.key.as_bytes()) {
                return Err(Error::InvalidApiKey);
            }
        }
        Ok(())
    }

    /// The rate limit (spec §10.4): `X-RateLimit-*` headers for the response, or imaginary's
    /// plain-text refusal.
    fn throttle(&self, session: &Session) -> Result<Vec<(&'static str, String)>, Reply> {
        let Some(limit) = &self.rate_limit else {
            return Ok(Vec::new());
        };
        if self.cfg.burst < 0 {
            return Err(Reply::new(
                500,
                "text/plain; charset=utf-8",
                "throttle error: -burst must not be negative\n",
            ));
        }
        let ip = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map_or(std::net::IpAddr::from([0, 0, 0, 0]), |a| a.ip());
        let verdict = limit.check(ip, Instant::now());
        if verdict.allowed {
            return Ok(verdict.headers);
        }
        let mut refusal = Reply::new(429, "text/plain; charset=utf-8", "limit exceeded\n")
            .header("X-Content-Type-Options", "nosniff");
        refusal.headers.extend(verdict.headers);
        Err(refusal)
    }

    /// CORS pre-flight (FIX of imaginary issue #349, where OPTIONS met the method gate).
    fn preflight(&self, session: &Session) -> Reply {
        let mut reply = Reply::new(204, "text/plain; charset=utf-8", Bytes::new())
            .header("Access-Control-Allow-Methods", "GET, POST, HEAD")
            .header(
                "Access-Control-Allow-Headers",
                "Origin, Accept, Content-Type, API-Key, Authorization",
            );
        if header(session, "origin").is_some() {
            reply = reply.header("Access-Control-Allow-Origin", "*");
        }
        reply.vary("Origin");
        reply.vary("Access-Control-Request-Method");
        reply.vary("Access-Control-Request-Headers");
        reply
    }

    /// Steps 3–7 for an image endpoint.
    async fn image(
        &self,
        session: &mut Session,
        endpoint: Endpoint,
        raw_query: &str,
        pairs: &[(String, String)],
    ) -> Reply {
        let accept = header(session, "accept");
        // 3–4. parse and negotiate, before any source is read (FIX: imaginary fetches first).
        let params = match Params::from_query(raw_query) {
            Ok(params) => params,
            Err(e) => return Reply::error(&Error::Op(e)),
        };
        let plan = match Plan::new(endpoint, &params, accept.as_deref()) {
            Ok(plan) => plan,
            Err(e) => {
                let mut reply = Reply::error(&Error::Op(e));
                if Plan::varies_on_accept(endpoint, &params) {
                    reply.vary("Accept");
                }
                return reply;
            }
        };
        let vary_accept = plan.vary_accept;
        let mut reply = match self.produce(session, plan, pairs).await {
            Ok(reply) => reply,
            Err(e) => {
                tracing::info!(status = e.status(), error = %e.message(), "image request failed");
                Reply::error(&e)
            }
        };
        if vary_accept {
            reply.vary("Accept");
        }
        reply
    }

    /// Steps 5–6: read the source, then transform on the worker pool.
    async fn produce(
        &self,
        session: &mut Session,
        plan: Plan,
        pairs: &[(String, String)],
    ) -> Result<Reply, Error> {
        let post = session.req_header().method == Method::POST;
        let input = match source::select(&self.cfg, post, pairs)? {
            Source::Body => source::read_body(session, self.cfg.max_body_size).await?,
            Source::File(path) => source::read_file(&path, self.cfg.max_body_size).await?,
            Source::Url(url) => self.origin.fetch(url, &self.forwarded(session)).await?,
        };
        if input.is_empty() {
            return Err(Error::EmptyBody);
        }
        if ops::format::sniff(&input).is_none() {
            return Err(Error::Op(OpError::UnsupportedMedia));
        }
        let watermarks = self.watermarks(&plan).await?;

        let max_megapixels = self.cfg.max_allowed_resolution;
        let output = self
            .pool
            .run(move || {
                let header = ops::probe(&input)?;
                if header.width as f64 * header.height as f64 / 1e6 > max_megapixels {
                    return Err(OpError::ResolutionTooBig);
                }
                ops::run(&plan, &input, &watermarks)
            })
            .await??;

        let json = output.mime == "application/json";
        let mut reply = Reply::new(200, output.mime, output.bytes);
        if self.cfg.return_size && !json {
            reply = reply
                .header("Image-Width", output.width.to_string())
                .header("Image-Height", output.height.to_string());
        }
        Ok(reply)
    }

    /// Fetches the images `/watermarkimage` overlays, under the same origin rules, timeouts
    /// and byte cap as `?url=` (FIX: imaginary fetches any URL with no limit).
    async fn watermarks(&self, plan: &Plan) -> Result<Vec<(String, Vec<u8>)>, Error> {
        let mut fetched = Vec::new();
        for url in plan.watermark_urls() {
            let unable = || Error::bad_request(format!("Unable to retrieve watermark image. {url}"));
            let parsed = OriginClient::parse_url(url).map_err(|_| unable())?;
            let bytes = self.origin.fetch(parsed, &[]).await.map_err(|e| match e {
                Error::Message { message, .. } if message.starts_with("not allowed") => {
                    Error::bad_request(message)
                }
                _ => unable(),
            })?;
            if bytes.is_empty() {
                return Err(Error::bad_request("Unable to read watermark image"));
            }
            fetched.push((url.to_string(), bytes.to_vec()));
        }
        Ok(fetched)
    }

    /// Headers sent to origins: `-forward-headers` (matched case-insensitively, FIX) and the
    /// authorization rules of spec §4.3.
    fn forwarded(&self, session: &Session) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .cfg
            .forward_headers
            .iter()
            .filter(|name| !name.eq_ignore_ascii_case("authorization"))
            .filter_map(|name| Some((name.clone(), header(session, name)?)))
            .collect();
        if self.cfg.enable_auth_forwarding || !self.cfg.authorization.is_empty() {
            let auth = Some(self.cfg.authorization.clone())
                .filter(|a| !a.is_empty())
                .or_else(|| header(session, "x-forward-authorization").filter(|a| !a.is_empty()))
                .or_else(|| header(session, "authorization"));
            if let Some(auth) = auth.filter(|a| !a.is_empty()) {
                out.push(("Authorization".to_string(), auth));
            }
        }
        out
    }

    /// `-http-cache-ttl` (spec §10.5) on successful GET image responses only (FIX: imaginary
    /// also marks errors cacheable); errors are `no-store` so no cache keeps them.
    fn cache_headers(&self, reply: &mut Reply, method: &Method, path: &str) {
        let ttl = self.cfg.http_cache_ttl;
        let public = ["/", "/health", "/form"].contains(&path);
        if ttl < 0 || public || !(method == Method::GET || method == Method::HEAD) {
            return;
        }
        if !(200..300).contains(&reply.status) {
            reply.headers.push(("Cache-Control", "no-store".to_string()));
            return;
        }
        let expires = std::time::SystemTime::now() + Duration::from_secs(ttl as u64);
        let control = if ttl == 0 {
            "private, no-cache, no-store, must-revalidate".to_string()
        } else {
            format!("public, s-maxage={ttl}, max-age={ttl}, no-transform")
        };
        reply.headers.push(("Cache-Control", control));
        reply.headers.push(("Expires", httpdate::fmt_http_date(expires)));
    }
}

#[async_trait]
impl ProxyHttp for Edge {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            started: Instant::now(),
            status: 0,
            bytes: 0,
        }
    }

    /// The whole lifecycle runs here and always writes the response (returns `true`).
    async fn request_filter(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<bool> {
        ctx.started = Instant::now();
        let timeouts = (self.cfg.read_timeout, self.cfg.write_timeout);
        session.set_read_timeout(timeouts.0.map(Duration::from_secs));
        session.set_write_timeout(timeouts.1.map(Duration::from_secs));
        let head = session.req_header().method == Method::HEAD;
        let reply = self.handle(session).await;
        ctx.status = reply.status;
        ctx.bytes = response::send(session, reply, head).await?;
        Ok(true)
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _ctx: &mut RequestCtx,
    ) -> pingora::Result<Box<HttpPeer>> {
        // Every request is answered in request_filter; there is no upstream to pick.
        Err(pingora::Error::new(pingora::ErrorType::HTTPStatus(404)))
    }

    /// imaginary's access log line (spec §12), with `key` and `sign` redacted (FIX).
    async fn logging(
        &self,
        session: &mut Session,
        _e: Option<&pingora::Error>,
        ctx: &mut RequestCtx,
    ) {
        let status = match ctx.status {
            0 => session.response_written().map_or(0, |r| r.status.as_u16()),
            s => s,
        };
        let visible = match self.cfg.log_level.as_str() {
            "info" => true,
            "warning" => status >= 400,
            "error" => status >= 500,
            _ => false, // imaginary's quirk: an unknown level silences the access log
        };
        if !visible {
            return;
        }
        let req = session.req_header();
        let ip = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| match a.ip() {
                std::net::IpAddr::V6(ip) => format!("[{ip}]"),
                ip => ip.to_string(),
            })
            .unwrap_or_else(|| "-".to_string());
        let line = crate::accesslog::line(
            &ip,
            std::time::SystemTime::now(),
            req.method.as_str(),
            &crate::accesslog::redact_uri(&req.uri.to_string()),
            &format!("{:?}", req.version),
            status,
            ctx.bytes,
            ctx.started.elapsed(),
        );
        crate::accesslog::write(&line);
    }
}

/// A request header as text (first value), if present and valid UTF-8.
fn header(session: &Session, name: &str) -> Option<String> {
    session
        .req_header()
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The first value of query param `name` (Go's `Values.Get`).
pub fn first<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// Compares secrets without leaking where they differ through timing.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
