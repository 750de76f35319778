//! The edge: pingora's `ProxyHttp` phases, with the whole request lifecycle of DESIGN.md in
//! [`Edge::request_filter`]:
//!
//! ```text
//! 1. route      path prefix, endpoint table, 301 for non-canonical paths      (route.rs)
//! 2. admit      method gates, API key, CORS pre-flight, disabled endpoints
//!    shortcut   a GET repeated within a second: its key is known, L1 or L2 may answer (memo.rs)
//! 3. parse      query → ops::Params → ops::Plan (validated before any fetch)
//! 4. negotiate  type=auto + Accept (inside Plan::new)
//! 5. source     POST body · mounted file · origin                             (source.rs, origin.rs)
//! 6. produce    resolution limit + ops::run on the bounded libvips pool       (policy/pool.rs)
//! 7. respond    image or imaginary's JSON error, with Content-Length          (response.rs)
//! ```
//!
//! Every answer is generated here; `upstream_peer` is never reached.

pub mod admin;
pub mod memo;
pub mod origin;
pub mod placeholder;
pub mod produce;
pub mod rehome;
pub mod response;
pub mod route;
pub mod slice;
pub mod source;
pub mod upstream;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use http::Method;
use pingora::proxy::{ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;

use crate::cache::{unix_now, Cache, Key, Outcome, SourceId, Variant};
use crate::config::Config;
use crate::error;
use crate::error::Error;
use crate::metrics::metrics;
use crate::ops::{self, Endpoint, Params, Plan};
use crate::policy;
use crate::policy::pool::Pool;
use crate::policy::ratelimit::RateLimit;
use crate::policy::signature::Signer;
use memo::KeyMemo;
use origin::OriginClient;
use produce::{Input, Producer};
use response::Reply;
use route::Route;
use source::Source;
use upstream::{NamedOrigin, Passthrough, Upstreams};

/// The longest a transform waits for a worker before the request is answered 503: a queue
/// that does not move within this is overload, and clients do better retrying elsewhere.
const QUEUE_WAIT: Duration = Duration::from_secs(10);

/// The imgedge edge node: one per process, shared by every connection.
pub struct Edge {
    cfg: Arc<Config>,
    producer: Arc<Producer>,
    upstreams: Upstreams,
    signer: Option<Signer>,
    placeholder: Option<placeholder::Placeholder>,
    rate_limit: Option<RateLimit>,
    memo: KeyMemo,
    started: Instant,
    libvips: String,
}

/// What step 2 checks for a route.
struct Gates {
    /// `-enable-url-signature` applies (image endpoints, named origins).
    signed: bool,
    /// GET needs `-mount` or `-enable-url-source` (image endpoints: imaginary's GET gate).
    get_gate: bool,
    /// Only GET and HEAD (named origins).
    read_only: bool,
    /// `-key` applies (everywhere but `/health` with `-public-health`).
    keyed: bool,
}

/// Per-request state carried from `request_filter` to `logging`.
pub struct RequestCtx {
    started: Instant,
    status: u16,
    bytes: usize,
    /// Route name for metrics (`resize`, `health`, `unknown`…).
    endpoint: &'static str,
    /// Set when a named origin's object is proxied as-is (no image params).
    passthrough: Option<Passthrough>,
}

impl Edge {
    pub fn new(cfg: Arc<Config>, libvips: String, cache: Cache) -> Result<Self, String> {
        let rules = cfg.allowed_origins.clone();
        let origin_cap = match cfg.max_allowed_size {
            0 => cfg.max_body_size,
            n => n,
        };
        Ok(Edge {
            upstreams: Upstreams::new(&cfg.origins)?,
            producer: Arc::new(Producer {
                cfg: cfg.clone(),
                pool: Arc::new(Pool::new(cfg.workers, cfg.queue, QUEUE_WAIT)),
                origin: Arc::new(OriginClient::new(
                    rules,
                    origin_cap,
                    cfg.allow_private_origins,
                )),
                trusted: Arc::new(OriginClient::new(Default::default(), origin_cap, true)),
                cache,
            }),
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
            memo: KeyMemo::default(),
            started: Instant::now(),
            libvips,
            cfg,
        })
    }

    /// Steps 1–7 for one request; always yields a reply. With a placeholder configured, error
    /// replies become placeholder images (except the index 404 and plain-text answers).
    async fn handle(&self, session: &mut Session, ctx: &mut RequestCtx) -> Reply {
        // The target outlives the borrows of `session` below (a clone shares its bytes).
        let uri = session.req_header().uri.clone();
        let query = Query::new(uri.query().unwrap_or_default());
        let reply = self.dispatch(session, ctx, &uri, &query).await;
        let (Some(placeholder), Some(error)) = (&self.placeholder, &reply.error) else {
            return reply;
        };
        if *error == Error::NotFound {
            return reply;
        }
        let pairs = query.pairs();
        let mut image = Box::pin(placeholder.reply(&self.producer.pool, error, pairs)).await;
        image.headers.extend(
            reply
                .headers
                .into_iter()
                .filter(|(n, _)| *n != "Content-Type"),
        );
        image
    }

    async fn dispatch(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        uri: &http::Uri,
        query: &Query<'_>,
    ) -> Reply {
        let method = session.req_header().method.clone();
        let path = percent_encoding::percent_decode_str(uri.path()).decode_utf8_lossy();
        let origin_header = header(session, "origin").is_some();

        // 1. route
        let route = route::resolve(&self.cfg.path_prefix, &path, uri.query());
        let image = matches!(route, Route::Image(_));
        ctx.endpoint = route.label();
        match route {
            Route::Redirect(location) => return Reply::redirect(location),
            // Probes: no API key, rate limit or CORS (docs/operations.md).
            Route::Live => return admin::live(),
            Route::Ready => return admin::ready(),
            Route::NotFoundPlain => return Reply::plain_not_found(),
            _ => {}
        }

        // 2. admit
        if self.cfg.cors && method == Method::OPTIONS {
            return self.preflight(session);
        }
        let named = self.upstreams.find(&path);
        let gates = Gates {
            // A named origin's objects are images: signed like image endpoints, but the GET
            // gate (which is about ?file= and ?url=) does not apply, and they are read-only.
            signed: image || named.is_some(),
            get_gate: image,
            read_only: named.is_some(),
            keyed: !(route == Route::Health && self.cfg.public_health),
        };
        if let Err(e) = self.admit(&method, &gates, session, query, &path) {
            return Reply::error(&e);
        }
        let limit_headers = match self.throttle(session) {
            Ok(headers) => headers,
            Err(refusal) => return *refusal,
        };
        if route::is_disabled(&self.cfg.disabled_endpoints, &path) {
            return Reply::error(&Error::NotImplemented);
        }
        if named.is_some() {
            ctx.endpoint = "origin";
        }
        let mut reply = match (named, route) {
            (Some((origin, object)), _) => {
                let reply = Box::pin(self.named(session, ctx, origin, object, query)).await;
                if reply.is_proxy() {
                    return reply;
                }
                reply
            }
            (None, route) => self.route_reply(session, route, query).await,
        };
        if self.cfg.cors
            && (method == Method::GET || method == Method::POST || method == Method::HEAD)
        {
            reply.vary("Origin");
            if origin_header {
                reply
                    .headers
                    .push(("Access-Control-Allow-Origin", "*".into()));
            }
        }
        self.cache_headers(&mut reply, &method, &path);
        reply.headers.extend(limit_headers);
        reply
    }

    /// Steps 3–8 for the route a request reached.
    async fn route_reply(&self, session: &mut Session, route: Route, query: &Query<'_>) -> Reply {
        match route {
            Route::Index => admin::index(&self.libvips),
            Route::Health => Box::pin(admin::health(&self.status())).await,
            Route::Form => admin::form(&self.cfg.path_prefix),
            Route::Image(endpoint) => self.image(session, endpoint, query).await,
            Route::Metrics => Box::pin(admin::metrics_reply(&self.status())).await,
            Route::Purge => Box::pin(self.purge(session, query.pairs())).await,
            Route::Live => admin::live(),
            Route::Ready => admin::ready(),
            Route::NotFoundJson | Route::NotFoundPlain | Route::Redirect(_) => {
                Reply::error(&Error::NotFound)
            }
        }
    }

    /// Step 2: the gates in imaginary's order (spec §2.2, §2.3). HEAD is served wherever GET
    /// is (FIX: imaginary answers 405).
    fn admit(
        &self,
        method: &Method,
        gates: &Gates,
        session: &Session,
        query: &Query<'_>,
        path: &str,
    ) -> Result<(), Error> {
        if gates.read_only && method != Method::GET && method != Method::HEAD {
            return Err(Error::MethodNotAllowed);
        }
        if let Some(signer) = self.signer.as_ref().filter(|_| gates.signed) {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            signer.verify(path, query.pairs(), now)?;
        }
        let get = method == Method::GET || method == Method::HEAD;
        if gates.get_gate && get && self.cfg.mount.is_none() && !self.cfg.enable_url_source {
            return Err(Error::GetMethodNotAllowed);
        }
        if !get && method != Method::POST {
            return Err(Error::MethodNotAllowed);
        }
        if gates.keyed && !self.cfg.key.is_empty() {
            let given = header(session, "api-key")
                .filter(|k| !k.is_empty())
                .or_else(|| first(query.pairs(), "key").map(str::to_owned))
                .unwrap_or_default();
            if !constant_time_eq(given.as_bytes(), self.cfg.key.as_bytes()) {
                return Err(Error::InvalidApiKey);
            }
        }
        Ok(())
    }

    /// The rate limit (spec §10.4): `X-RateLimit-*` headers for the response, or imaginary's
    /// plain-text refusal.
    fn throttle(
        &self,
        session: &Session,
    ) -> Result<Vec<(&'static str, Cow<'static, str>)>, Box<Reply>> {
        let Some(limit) = &self.rate_limit else {
            return Ok(Vec::new());
        };
        if self.cfg.burst < 0 {
            return Err(Box::new(Reply::new(
                500,
                "text/plain; charset=utf-8",
                "throttle error: -burst must not be negative\n",
            )));
        }
        let ip = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map_or(std::net::IpAddr::from([0, 0, 0, 0]), |a| a.ip());
        let verdict = limit.check(ip, Instant::now());
        let headers = verdict.headers.into_iter().map(|(n, v)| (n, v.into()));
        if verdict.allowed {
            return Ok(headers.collect());
        }
        let mut refusal = Reply::new(429, "text/plain; charset=utf-8", "limit exceeded\n")
            .header("X-Content-Type-Options", "nosniff");
        refusal.headers.extend(headers);
        Err(Box::new(refusal))
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
    async fn image(&self, session: &mut Session, endpoint: Endpoint, query: &Query<'_>) -> Reply {
        let accept = header(session, "accept");
        // A request repeated within a second: its key is known, and memory or disk may have the
        // answer. Not for requests that carry headers forwarded to origins: their variants are
        // keyed by those too, and must not be answered with the one made without them.
        let method = &session.req_header().method;
        let forwarded = self.forwarded(session);
        let request = ((method == Method::GET || method == Method::HEAD) && forwarded.is_empty())
            .then(|| KeyMemo::request(endpoint, query.raw, accept.as_deref()));
        if let Some(known) = request.as_ref().and_then(|r| self.memo.get(r)) {
            if let Some((variant, outcome)) = self.producer.cache.get_known(&known.key).await {
                metrics().cache_outcome(outcome.as_str());
                let mut reply = self.variant_reply(session, &variant, x_cache(outcome));
                if known.vary_accept {
                    reply.vary("Accept");
                }
                return reply;
            }
        }
        // 3–4. parse and negotiate, before any source is read (FIX: imaginary fetches first).
        let params = match Params::from_query(query.raw) {
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
        // Boxed, like every other long path below `handle`: the future of a request is moved
        // into a box of its own size on every request (async_trait, pingora), and a repeated
        // URL answered from memory should not copy the 13 KB the production path needs.
        let mut reply = match Box::pin(self.serve(session, plan, query.pairs(), forwarded, request))
            .await
        {
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

    /// Steps 5–7: the variant's key from the plan and the source's identity, then memory,
    /// disk, or one production shared by every concurrent request for it.
    /// `forwarded` are the headers an origin source is fetched with (and keyed by); `request`
    /// (a GET or HEAD without them, see `image`) is remembered with the key.
    async fn serve(
        &self,
        session: &mut Session,
        plan: Plan,
        pairs: &[(String, String)],
        forwarded: Vec<(String, String)>,
        request: Option<memo::Request>,
    ) -> Result<Reply, Error> {
        let post = session.req_header().method == Method::POST;
        let (input, identity) = match source::select(&self.cfg, post, pairs)? {
            Source::Body => {
                let body = source::read_body(session, self.cfg.max_body_size).await?;
                let identity = self
                    .cfg
                    .cache_post
                    .then(|| format!("body:{}", sha256_hex(&body)));
                (Input::Bytes(body), identity)
            }
            Source::File(file) => {
                let identity = source::file_identity(&file);
                (Input::File(file.path), Some(identity))
            }
            Source::Url(url) => {
                let identity = url_identity(&url, &forwarded);
                (Input::Url(url, forwarded), Some(identity))
            }
        };
        self.serve_variant(session, plan, input, identity, request)
            .await
    }

    /// Memory, disk, or one production shared by every concurrent request for the variant.
    /// `identity` names the source and its version; `None` bypasses the cache.
    async fn serve_variant(
        &self,
        session: &Session,
        plan: Plan,
        input: Input,
        identity: Option<String>,
        request: Option<memo::Request>,
    ) -> Result<Reply, Error> {
        let producer = self.producer.clone();
        let Some(identity) = identity else {
            let variant = producer.make(plan, input).await?;
            return Ok(self.variant_reply(session, &variant, "BYPASS"));
        };
        let key = variant_key(&plan, &identity);
        if let Some(request) = request {
            self.memo.remember(request, key, plan.vary_accept);
        }
        let source_id = SourceId::new(source_name(&identity));
        let (variant, outcome) = self
            .producer
            .cache
            .get_or_produce_for_source(key, source_id, move || producer.make(plan, input))
            .await?;
        metrics().cache_outcome(outcome.as_str());
        Ok(self.variant_reply(session, &variant, x_cache(outcome)))
    }

    /// A named origin's object: transformed with imaginary's params (the origin's default
    /// operation, or `op`), or proxied as-is when the query has none.
    async fn named(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        origin: &NamedOrigin,
        object: &str,
        query: &Query<'_>,
    ) -> Reply {
        let pairs = query.pairs();
        let params = match Params::from_query(query.raw) {
            Ok(p) => p,
            Err(e) => return Reply::error(&Error::Op(e)),
        };
        let endpoint = match first(pairs, "op") {
            None => origin.operation,
            Some(op) => match route::IMAGE_ENDPOINTS.iter().find(|(n, _)| *n == op) {
                Some((_, e)) => *e,
                None => {
                    return Reply::error(&Error::bad_request(format!(
                        "unknown op {op:?}: name an image endpoint such as resize or crop"
                    )))
                }
            },
        };
        if first(pairs, "op").is_none() && Params::from_query("").is_ok_and(|none| none == params) {
            return match Passthrough::to(&origin.fetch_url(object)).await {
                Ok(target) => {
                    ctx.passthrough = Some(target);
                    Reply::proxy()
                }
                Err(e) => Reply::error(&Error::Message {
                    status: 502,
                    message: format!("origin {}: {e}", origin.name),
                }),
            };
        }
        let accept = header(session, "accept");
        let plan = match Plan::new(endpoint, &params, accept.as_deref()) {
            Ok(plan) => plan,
            Err(e) => return Reply::error(&Error::Op(e)),
        };
        let vary_accept = plan.vary_accept;
        let object_url = origin.object_url(object);
        let input = Input::Named {
            fetch: origin.fetch_url(object),
            object: object_url.clone(),
        };
        let identity = Some(format!("url:{object_url}"));
        let mut reply = match self
            .serve_variant(session, plan, input, identity, None)
            .await
        {
            Ok(reply) => reply,
            Err(e) => Reply::error(&e),
        };
        if vary_accept {
            reply.vary("Accept");
        }
        reply
    }

    /// A variant as a response: 304 when the client already has these bytes.
    fn variant_reply(&self, session: &Session, v: &Variant, x_cache: &'static str) -> Reply {
        let now = unix_now();
        let not_modified =
            header(session, "if-none-match").is_some_and(|inm| etag_matches(&inm, &v.etag));
        let mut reply = match not_modified {
            true => Reply::new(304, v.content_type.clone(), Bytes::new()),
            false => Reply::new(200, v.content_type.clone(), v.body.clone()),
        }
        .header("ETag", v.etag.clone())
        .header("X-Cache", x_cache)
        .header("Age", v.age(now).to_string());
        if self.cfg.http_cache_ttl < 0 && session.req_header().method != Method::POST {
            // No imaginary TTL configured: say how long this variant stays fresh here.
            reply = reply.header(
                "Cache-Control",
                format!("public, max-age={}", v.remaining_ttl(now)),
            );
        }
        if self.cfg.return_size && v.content_type != "application/json" {
            reply = reply
                .header("Image-Width", v.width.to_string())
                .header("Image-Height", v.height.to_string());
        }
        reply
    }

    /// What `/health` and `/metrics` report on (shared with the `-admin-listen` listener).
    pub fn status(&self) -> admin::Status {
        admin::Status {
            started: self.started,
            pool: self.producer.pool.clone(),
            cache: self.producer.cache.clone(),
            workers: self.cfg.workers,
            queue: self.cfg.queue,
        }
    }

    /// `POST /admin/purge` with `Admin-Key`: `?all=true`, `?source=<url or mounted file>`, or
    /// `?variant=<path and query of an image URL>`.
    async fn purge(&self, session: &Session, pairs: &[(String, String)]) -> Reply {
        let given = header(session, "admin-key").unwrap_or_default();
        if self.cfg.admin_key.is_empty() {
            return Reply::error(&Error::NotFound);
        }
        if !constant_time_eq(given.as_bytes(), self.cfg.admin_key.as_bytes()) {
            return Reply::error(&Error::InvalidApiKey);
        }
        if session.req_header().method != Method::POST {
            return Reply::error(&Error::MethodNotAllowed);
        }
        let cache = &self.producer.cache;
        let done = |what: String| {
            Reply::json(
                200,
                format!("{{\"purged\":{}}}", error::go_json_string(&what)),
            )
        };
        if first(pairs, "all").is_some_and(|v| crate::config::parse_go_bool(v) == Some(true)) {
            return match cache.purge_all().await {
                Ok(()) => done("all".into()),
                Err(e) => Reply::error(&Error::Message {
                    status: 500,
                    message: e,
                }),
            };
        }
        if let Some(source) = first(pairs, "source").filter(|s| !s.is_empty()) {
            let name = match (OriginClient::parse_url(source), &self.cfg.mount) {
                (Ok(url), _) => {
                    cache.sources().remove(url.as_str()).await;
                    format!("url:{url}")
                }
                (Err(_), Some(mount)) => match policy::mount::resolve(mount, source) {
                    Some(Ok(file)) => format!("file:{}", file.path.display()),
                    _ => return Reply::error(&Error::InvalidFilePath),
                },
                (Err(e), None) => return Reply::error(&e),
            };
            return match cache.purge_source(&SourceId::new(&name)).await {
                Ok(()) => done(name),
                Err(e) => Reply::error(&Error::Message {
                    status: 500,
                    message: e,
                }),
            };
        }
        if let Some(variant) = first(pairs, "variant").filter(|s| !s.is_empty()) {
            return match self.variant_keys(variant).await {
                Ok(keys) => {
                    for key in &keys {
                        cache.purge(key).await;
                    }
                    done(variant.to_string())
                }
                Err(e) => Reply::error(&e),
            };
        }
        Reply::error(&Error::bad_request(
            "purge needs one of: all=true, source=<url or file>, variant=<image path and query>",
        ))
    }

    /// The keys one image URL can be cached under: one per format `type=auto` may negotiate.
    async fn variant_keys(&self, target: &str) -> Result<Vec<Key>, Error> {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let Route::Image(endpoint) = route::resolve(&self.cfg.path_prefix, path, Some(query))
        else {
            return Err(Error::bad_request(format!("not an image URL: {target}")));
        };
        let params = Params::from_query(query)?;
        let pairs = ops::params::query_pairs(query);
        let identity = match source::select(&self.cfg, false, &pairs)? {
            Source::File(file) => source::file_identity(&file),
            // Purging names the shared variant: the one made without forwarded credentials.
            Source::Url(url) => url_identity(&url, &[]),
            Source::Body => unreachable!("GET selects no body"),
        };
        let mut keys = Vec::new();
        for accept in ["image/webp", "image/png", "image/jpeg", ""] {
            let key = variant_key(&Plan::new(endpoint, &params, Some(accept))?, &identity);
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        Ok(keys)
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
            reply.headers.push(("Cache-Control", "no-store".into()));
            return;
        }
        let expires = std::time::SystemTime::now() + Duration::from_secs(ttl as u64);
        let control: Cow<str> = if ttl == 0 {
            "private, no-cache, no-store, must-revalidate".into()
        } else {
            format!("public, s-maxage={ttl}, max-age={ttl}, no-transform").into()
        };
        reply.headers.push(("Cache-Control", control));
        reply
            .headers
            .push(("Expires", httpdate::fmt_http_date(expires).into()));
    }
}

#[async_trait]
impl ProxyHttp for Edge {
    type CTX = RequestCtx;

    /// Called once the request's head has been read: the latency counts from here.
    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            started: Instant::now(),
            status: 0,
            bytes: 0,
            endpoint: "unknown",
            passthrough: None,
        }
    }

    /// No per-request modules: pingora's default is a compression module switched off (level 0),
    /// which still costs each request its context and a filter call per header and body.
    fn init_downstream_modules(&self, _modules: &mut pingora::modules::http::HttpModules) {}

    /// The whole lifecycle runs here and always writes the response (returns `true`).
    async fn request_filter(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<bool> {
        let timeouts = (self.cfg.read_timeout, self.cfg.write_timeout);
        session.set_read_timeout(timeouts.0.map(Duration::from_secs));
        session.set_write_timeout(timeouts.1.map(Duration::from_secs));
        let head = session.req_header().method == Method::HEAD;
        let reply = self.handle(session, ctx).await;
        if reply.is_proxy() {
            return Ok(false); // pingora proxies it: upstream_peer + upstream_request_filter
        }
        ctx.status = reply.status;
        ctx.bytes = response::send(session, reply, head).await?;
        Ok(true)
    }

    /// Only named-origin passthrough reaches here: the address was resolved (asynchronously)
    /// in `request_filter`, so `HttpPeer::new` never resolves.
    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<Box<HttpPeer>> {
        let Some(target) = &ctx.passthrough else {
            return Err(pingora::Error::new(pingora::ErrorType::HTTPStatus(404)));
        };
        let mut peer = HttpPeer::new(target.addr, target.tls, target.host.clone());
        peer.options.connection_timeout = Some(Duration::from_secs(5));
        peer.options.read_timeout = Some(Duration::from_secs(30));
        Ok(Box::new(peer))
    }

    /// Passthrough requests go to the object's path with the origin's Host; credentials meant
    /// for imgedge stay here.
    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream: &mut pingora::http::RequestHeader,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        if let Some(target) = &ctx.passthrough {
            let uri: http::Uri = target.path_and_query.parse().map_err(|_| {
                pingora::Error::explain(pingora::ErrorType::InvalidHTTPHeader, "bad upstream path")
            })?;
            upstream.set_uri(uri);
            upstream.insert_header("Host", target.host_header.as_str())?;
            for secret in ["api-key", "authorization", "cookie"] {
                upstream.remove_header(secret);
            }
        }
        Ok(())
    }

    /// What pingora writes about a request in its own error logs: the URI with secrets removed.
    fn request_summary(&self, session: &Session, _ctx: &RequestCtx) -> String {
        let req = session.req_header();
        format!(
            "{} {}",
            req.method,
            crate::accesslog::redact_uri(&req.uri.to_string())
        )
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
        if ctx.passthrough.is_some() {
            ctx.bytes = session.as_downstream().body_bytes_sent();
        }
        // The answer is out: a turn of the CPU may end here.
        slice::after_answer();
        let elapsed = ctx.started.elapsed();
        metrics().answered(ctx.endpoint, status, elapsed.as_secs_f64());
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
        let uri = req.uri.path_and_query().map_or("/", |pq| pq.as_str());
        let uri = crate::accesslog::redact_uri(uri);
        let proto = match req.version {
            http::Version::HTTP_10 => "HTTP/1.0",
            http::Version::HTTP_2 => "HTTP/2.0",
            _ => "HTTP/1.1",
        };
        let entry = crate::accesslog::Entry {
            ip: session
                .client_addr()
                .and_then(|a| a.as_inet())
                .map(|a| a.ip()),
            at: std::time::SystemTime::now(),
            method: req.method.as_str(),
            uri: &uri,
            proto,
            status,
            bytes: ctx.bytes,
            elapsed,
        };
        crate::accesslog::write(&entry, self.cfg.log_json);
    }
}

/// A request's query: its text, and its pairs decoded on first use (a repeated URL answered
/// from memory needs only the text).
struct Query<'a> {
    raw: &'a str,
    pairs: std::sync::OnceLock<Vec<(String, String)>>,
}

impl<'a> Query<'a> {
    fn new(raw: &'a str) -> Self {
        Query {
            raw,
            pairs: Default::default(),
        }
    }

    fn pairs(&self) -> &[(String, String)] {
        self.pairs
            .get_or_init(|| ops::params::query_pairs(self.raw))
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

/// The cache key of a variant. The plan is the parsed, validated, canonical request:
/// `width=0300&foo=1` and `width=300` share it; `sign` and `key` never reach it.
pub fn variant_key(plan: &Plan, identity: &str) -> Key {
    Key::builder()
        .field("plan", format!("{plan:?}"))
        .field("source", identity)
        .finish()
}

/// The `X-Cache` value for how the cache answered: a coalesced request waited for a production.
fn x_cache(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::HitMemory => "HIT-MEMORY",
        Outcome::HitDisk => "HIT-DISK",
        Outcome::Miss | Outcome::Coalesced => "MISS",
    }
}

/// Weak comparison of `If-None-Match` against our (strong) ETag, as RFC 9110 §13.1.2 asks.
fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    if_none_match.trim() == "*"
        || if_none_match
            .split(',')
            .map(|t| t.trim().trim_start_matches("W/"))
            .any(|t| t == etag)
}

/// An origin source's identity. Credentials make a response personal: variants made with
/// forwarded headers are keyed by them too.
fn url_identity(url: &url::Url, forwarded: &[(String, String)]) -> String {
    match forwarded.is_empty() {
        true => format!("url:{url}"),
        false => format!(
            "url:{url}\n{}",
            sha256_hex(format!("{forwarded:?}").as_bytes())
        ),
    }
}

/// The part of a source identity that names the source (not its version): what a purge by
/// source refers to.
fn source_name(identity: &str) -> String {
    match identity.strip_prefix("file:") {
        // file:<path>\n<size>\n<mtime>
        Some(rest) => format!("file:{}", rest.split('\n').next().unwrap_or_default()),
        None => identity.split('\n').next().unwrap_or_default().to_string(),
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    crate::cache::hex_encode(&sha2::Sha256::digest(bytes))
}

/// The first value of query param `name` (Go's `Values.Get`).
pub fn first<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Compares secrets without leaking where they differ through timing.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
