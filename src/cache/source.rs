//! The source cache: origin responses kept for re-use (the origin-shield role).
//!
//! Many variants are made from one source image; without this cache each new width of a popular
//! image would fetch it from the origin again. Origin responses are kept in memory, bounded in
//! bytes, for as long as the origin allows a *shared* cache to keep them (`s-maxage` before
//! `max-age`, then `Expires`, else a configured default). When one goes stale it is still kept
//! for a while if it has validators, so the caller can revalidate with a conditional GET and,
//! on `304 Not Modified`, [`SourceCache::refresh`] it instead of downloading the body again.
//! A `404`/`410` is remembered for a short time (negative caching) so a burst of requests for a
//! missing image costs the origin one request.
//!
//! The parsing here is of header *values*; the caller reads them from whatever HTTP library it
//! uses.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use moka::future::Cache as Moka;
use moka::Expiry;

use super::stats::bump;
use super::unix_now;

/// RFC 9111 §1.2.2: delta-seconds above 2^31 are taken as 2^31.
const MAX_DELTA: u64 = 1 << 31;

/// An origin response as kept by the source cache.
#[derive(Clone, PartialEq, Eq)]
pub struct SourceEntry {
    pub body: Bytes,
    /// Validators for a conditional GET (`If-None-Match`, `If-Modified-Since`).
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    /// When this response was fetched or last revalidated, Unix seconds (already corrected
    /// for an `Age` the origin or an upstream cache reported).
    pub fetched_unix: u64,
    /// Freshness lifetime in seconds from `fetched_unix`; 0 means "revalidate every time".
    pub max_age: u64,
    /// After `max_age`, how long the stale response may still be served while it is
    /// revalidated in the background.
    pub stale_while_revalidate: u64,
    /// The origin forbids a shared cache to keep it (`no-store`, `private`, or a status that
    /// is not cacheable here). Such an entry is never stored.
    pub no_store: bool,
    pub status: u16,
}

impl std::fmt::Debug for SourceEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceEntry")
            .field("body_len", &self.body.len())
            .field("etag", &self.etag)
            .field("last_modified", &self.last_modified)
            .field("fetched_unix", &self.fetched_unix)
            .field("max_age", &self.max_age)
            .field("stale_while_revalidate", &self.stale_while_revalidate)
            .field("no_store", &self.no_store)
            .field("status", &self.status)
            .finish()
    }
}

impl SourceEntry {
    pub fn age(&self, now: u64) -> u64 {
        now.saturating_sub(self.fetched_unix)
    }

    pub fn is_fresh(&self, now: u64) -> bool {
        self.age(now) < self.max_age
    }

    /// Stale, but inside the `stale-while-revalidate` window: serve it now, revalidate in the
    /// background.
    pub fn serve_while_revalidating(&self, now: u64) -> bool {
        !self.is_fresh(now)
            && self.age(now) < self.max_age.saturating_add(self.stale_while_revalidate)
    }

    pub fn has_validators(&self) -> bool {
        self.etag.is_some() || self.last_modified.is_some()
    }

    /// A remembered "not found" (404 or 410).
    pub fn is_negative(&self) -> bool {
        matches!(self.status, 404 | 410)
    }

    fn weight(&self) -> u64 {
        let text = self.etag.as_ref().map_or(0, String::len)
            + self.last_modified.as_ref().map_or(0, String::len);
        (self.body.len() + text + 128) as u64
    }
}

/// `Cache-Control` directives that matter to a shared cache.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CacheControl {
    pub no_store: bool,
    pub no_cache: bool,
    pub private: bool,
    pub must_revalidate: bool,
    pub max_age: Option<u64>,
    pub s_maxage: Option<u64>,
    pub stale_while_revalidate: Option<u64>,
}

impl CacheControl {
    /// Parses one header value (join repeated headers with `", "` first). Names are
    /// case-insensitive; values may be quoted; unknown directives are ignored. An unreadable
    /// lifetime (`max-age=soon`) counts as 0, i.e. stale, and a repeated one keeps the
    /// shortest, as RFC 9111 asks of invalid freshness information.
    pub fn parse(value: &str) -> CacheControl {
        let mut cc = CacheControl::default();
        for directive in split_directives(value) {
            let (name, arg) = match directive.split_once('=') {
                Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
                None => (directive.trim(), None),
            };
            let seconds = || {
                arg.and_then(|a| {
                    if a.is_empty() || !a.bytes().all(|b| b.is_ascii_digit()) {
                        return None;
                    }
                    Some(a.parse::<u64>().unwrap_or(MAX_DELTA).min(MAX_DELTA))
                })
                .unwrap_or(0)
            };
            let shortest = |old: Option<u64>, new: u64| Some(old.map_or(new, |o| o.min(new)));
            match name.to_ascii_lowercase().as_str() {
                "no-store" => cc.no_store = true,
                // The qualified forms (`no-cache="Set-Cookie"`) are taken as the whole thing:
                // conservative, and images rarely carry them.
                "no-cache" => cc.no_cache = true,
                "private" => cc.private = true,
                "must-revalidate" | "proxy-revalidate" => cc.must_revalidate = true,
                "max-age" => cc.max_age = shortest(cc.max_age, seconds()),
                "s-maxage" => cc.s_maxage = shortest(cc.s_maxage, seconds()),
                "stale-while-revalidate" => {
                    cc.stale_while_revalidate = shortest(cc.stale_while_revalidate, seconds())
                }
                _ => {}
            }
        }
        cc
    }
}

/// Splits on commas outside double quotes.
fn split_directives(value: &str) -> impl Iterator<Item = &str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, c) in value.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&value[start..]);
    parts.into_iter().filter(|p| !p.trim().is_empty())
}

/// The origin response headers the source cache reads (values as received).
#[derive(Clone, Copy, Debug, Default)]
pub struct OriginHeaders<'a> {
    pub cache_control: Option<&'a str>,
    pub expires: Option<&'a str>,
    pub date: Option<&'a str>,
    pub age: Option<&'a str>,
    pub etag: Option<&'a str>,
    pub last_modified: Option<&'a str>,
}

/// How the source cache treats origin responses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourcePolicy {
    /// Memory budget in bytes; 0 turns the source cache off.
    pub memory_bytes: u64,
    /// Freshness when the origin states none.
    pub default_ttl_secs: u64,
    /// Freshness of a 404/410 (an origin-stated one may only shorten it).
    pub negative_ttl_secs: u64,
    /// How long past its freshness (and stale-while-revalidate window) a response with
    /// validators is kept for revalidation.
    pub stale_keep_secs: u64,
}

impl SourcePolicy {
    /// The entry for an origin response received at `now`.
    pub fn entry(
        &self,
        status: u16,
        body: Bytes,
        headers: &OriginHeaders<'_>,
        now: u64,
    ) -> SourceEntry {
        let cc = headers
            .cache_control
            .map(CacheControl::parse)
            .unwrap_or_default();
        let cacheable_status = matches!(status, 200 | 404 | 410);
        let age = headers
            .age
            .and_then(|a| a.trim().parse::<u64>().ok())
            .unwrap_or(0);
        let explicit = explicit_lifetime(&cc, headers, now);
        let mut max_age = if matches!(status, 404 | 410) {
            explicit
                .unwrap_or(self.negative_ttl_secs)
                .min(self.negative_ttl_secs)
        } else {
            explicit.unwrap_or(self.default_ttl_secs)
        };
        if cc.no_cache {
            max_age = 0;
        }
        SourceEntry {
            body,
            etag: headers.etag.map(str::to_owned),
            last_modified: headers.last_modified.map(str::to_owned),
            // An upstream cache already held it for `age` seconds: its clock started then.
            fetched_unix: now.saturating_sub(age.min(MAX_DELTA)),
            max_age,
            stale_while_revalidate: if cc.must_revalidate {
                0
            } else {
                cc.stale_while_revalidate.unwrap_or(0)
            },
            no_store: cc.no_store || cc.private || !cacheable_status,
            status,
        }
    }

    /// Seconds after `fetched_unix` an entry stays in the cache at all.
    fn keep_secs(&self, e: &SourceEntry) -> u64 {
        let stale = if e.has_validators() {
            e.stale_while_revalidate.max(self.stale_keep_secs)
        } else {
            e.stale_while_revalidate
        };
        e.max_age.saturating_add(stale)
    }
}

/// `s-maxage`, else `max-age`, else `Expires` − `Date` (or now). `None`: the origin said nothing.
fn explicit_lifetime(cc: &CacheControl, h: &OriginHeaders<'_>, now: u64) -> Option<u64> {
    if let Some(s) = cc.s_maxage.or(cc.max_age) {
        return Some(s);
    }
    let expires = h.expires?;
    // An Expires that is not a date ("0", "-1") means already expired.
    let Some(expires) = parse_http_date(expires) else {
        return Some(0);
    };
    let date = h.date.and_then(parse_http_date).unwrap_or(now);
    Some(expires.saturating_sub(date).min(MAX_DELTA))
}

fn parse_http_date(s: &str) -> Option<u64> {
    let t = httpdate::parse_http_date(s.trim()).ok()?;
    Some(t.duration_since(UNIX_EPOCH).ok()?.as_secs())
}

/// What the source cache has for a URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// Serve it (a negative entry: answer "not found" without asking the origin).
    Fresh(Arc<SourceEntry>),
    /// Past its freshness: revalidate with a conditional GET using the entry's validators
    /// (`serve_while_revalidating` says whether it may be served meanwhile).
    Stale(Arc<SourceEntry>),
    Miss,
}

/// Counters for the source cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SourceStats {
    pub fresh_hits: u64,
    pub stale_hits: u64,
    pub misses: u64,
    pub stores: u64,
    /// Responses not stored: `no-store`/`private`, uncacheable status, nothing to keep, or
    /// larger than the whole budget.
    pub not_stored: u64,
    pub refreshes: u64,
    pub bytes: u64,
    pub entries: u64,
}

#[derive(Default)]
struct SourceCounters {
    fresh_hits: AtomicU64,
    stale_hits: AtomicU64,
    misses: AtomicU64,
    stores: AtomicU64,
    not_stored: AtomicU64,
    refreshes: AtomicU64,
}

/// Cached value: the entry and the Unix second it leaves the cache.
#[derive(Clone)]
struct Kept {
    entry: Arc<SourceEntry>,
    until_unix: u64,
}

struct KeptExpiry;

impl KeptExpiry {
    fn remaining(k: &Kept) -> Option<Duration> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Some(Duration::from_secs(k.until_unix.min(u64::MAX / 2)).saturating_sub(now))
    }
}

impl Expiry<String, Kept> for KeptExpiry {
    fn expire_after_create(&self, _: &String, v: &Kept, _: Instant) -> Option<Duration> {
        Self::remaining(v)
    }
    fn expire_after_update(
        &self,
        _: &String,
        v: &Kept,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Self::remaining(v)
    }
}

/// Origin responses by URL, in memory. See the module documentation.
pub struct SourceCache {
    cache: Option<Moka<String, Kept>>,
    policy: SourcePolicy,
    capacity: u64,
    counters: SourceCounters,
}

impl SourceCache {
    pub fn new(policy: SourcePolicy) -> SourceCache {
        let capacity = policy.memory_bytes;
        let cache = (capacity > 0).then(|| {
            Moka::builder()
                .name("imgedge-sources")
                .max_capacity(capacity)
                .weigher(|url: &String, k: &Kept| {
                    (k.entry.weight() + url.len() as u64).min(u32::MAX as u64) as u32
                })
                .expire_after(KeptExpiry)
                .build()
        });
        SourceCache {
            cache,
            policy,
            capacity,
            counters: SourceCounters::default(),
        }
    }

    pub fn policy(&self) -> &SourcePolicy {
        &self.policy
    }

    /// The entry for an origin response received now (see [`SourcePolicy::entry`]).
    pub fn entry_from_origin(
        &self,
        status: u16,
        body: Bytes,
        headers: &OriginHeaders<'_>,
    ) -> SourceEntry {
        self.policy.entry(status, body, headers, unix_now())
    }

    pub async fn lookup(&self, url: &str) -> Lookup {
        self.lookup_at(url, unix_now()).await
    }

    /// [`SourceCache::lookup`] at a given time (for tests, and callers with their own clock).
    pub async fn lookup_at(&self, url: &str, now: u64) -> Lookup {
        let found = match &self.cache {
            Some(c) => c.get(url).await.filter(|k| now < k.until_unix),
            None => None,
        };
        let c = &self.counters;
        match found {
            Some(k) if k.entry.is_fresh(now) => {
                bump(&c.fresh_hits);
                Lookup::Fresh(k.entry)
            }
            Some(k) => {
                bump(&c.stale_hits);
                Lookup::Stale(k.entry)
            }
            None => {
                bump(&c.misses);
                Lookup::Miss
            }
        }
    }

    /// Keeps `entry` for `url`, replacing what was there. Returns whether it was stored: an
    /// entry the origin forbids keeping (or with nothing to keep it for) is not, and removes
    /// any older one, since the origin's answer has changed.
    pub async fn store(&self, url: &str, entry: SourceEntry) -> bool {
        let Some(cache) = &self.cache else {
            return false;
        };
        let until_unix = entry
            .fetched_unix
            .saturating_add(self.policy.keep_secs(&entry));
        let weight = entry.weight() + url.len() as u64;
        if entry.no_store || until_unix <= unix_now() || weight > self.capacity {
            cache.invalidate(url).await;
            bump(&self.counters.not_stored);
            return false;
        }
        cache
            .insert(
                url.to_owned(),
                Kept {
                    entry: Arc::new(entry),
                    until_unix,
                },
            )
            .await;
        bump(&self.counters.stores);
        true
    }

    /// After a `304 Not Modified`: the same body, fresh again from now, with the freshness
    /// the entry had. `None` if the URL is no longer cached.
    pub async fn refresh(&self, url: &str) -> Option<Arc<SourceEntry>> {
        self.refresh_with(url, &OriginHeaders::default()).await
    }

    /// [`SourceCache::refresh`], applying what the 304 itself says: new validators, and new
    /// freshness if it carries `Cache-Control` or `Expires` (RFC 9111 §4.3.4).
    pub async fn refresh_with(
        &self,
        url: &str,
        headers: &OriginHeaders<'_>,
    ) -> Option<Arc<SourceEntry>> {
        let cache = self.cache.as_ref()?;
        let old = cache.get(url).await?.entry;
        let now = unix_now();
        let mut entry = (*old).clone();
        if headers.cache_control.is_some() || headers.expires.is_some() {
            let fresh = self
                .policy
                .entry(old.status, old.body.clone(), headers, now);
            entry.max_age = fresh.max_age;
            entry.stale_while_revalidate = fresh.stale_while_revalidate;
            entry.no_store = fresh.no_store;
            entry.fetched_unix = fresh.fetched_unix;
        } else {
            entry.fetched_unix = now;
        }
        if let Some(etag) = headers.etag {
            entry.etag = Some(etag.to_owned());
        }
        if let Some(lm) = headers.last_modified {
            entry.last_modified = Some(lm.to_owned());
        }
        bump(&self.counters.refreshes);
        let refreshed = Arc::new(entry.clone());
        self.store(url, entry).await;
        Some(refreshed)
    }

    pub async fn remove(&self, url: &str) {
        if let Some(c) = &self.cache {
            c.invalidate(url).await;
        }
    }

    pub fn clear(&self) {
        if let Some(c) = &self.cache {
            c.invalidate_all();
        }
    }

    pub fn stats(&self) -> SourceStats {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let c = &self.counters;
        SourceStats {
            fresh_hits: g(&c.fresh_hits),
            stale_hits: g(&c.stale_hits),
            misses: g(&c.misses),
            stores: g(&c.stores),
            not_stored: g(&c.not_stored),
            refreshes: g(&c.refreshes),
            bytes: self.cache.as_ref().map_or(0, |c| c.weighted_size()),
            entries: self.cache.as_ref().map_or(0, |c| c.entry_count()),
        }
    }

    /// Applies moka's pending bookkeeping (tests; exact stats).
    pub async fn sync(&self) {
        if let Some(c) = &self.cache {
            c.run_pending_tasks().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> SourcePolicy {
        SourcePolicy {
            memory_bytes: 1 << 20,
            default_ttl_secs: 86_400,
            negative_ttl_secs: 60,
            stale_keep_secs: 3_600,
        }
    }

    fn cc(v: &str) -> OriginHeaders<'_> {
        OriginHeaders {
            cache_control: Some(v),
            ..OriginHeaders::default()
        }
    }

    fn entry(status: u16, h: &OriginHeaders<'_>, now: u64) -> SourceEntry {
        policy().entry(status, Bytes::from_static(b"img"), h, now)
    }

    #[test]
    fn parses_cache_control() {
        let c = CacheControl::parse(
            r#"public, Max-Age=600, s-maxage="120", stale-while-revalidate=30, no-cache="Set-Cookie, X", must-revalidate"#,
        );
        assert_eq!(c.max_age, Some(600));
        assert_eq!(c.s_maxage, Some(120));
        assert_eq!(c.stale_while_revalidate, Some(30));
        assert!(c.no_cache && c.must_revalidate && !c.no_store && !c.private);
        assert_eq!(CacheControl::parse(""), CacheControl::default());
        assert!(CacheControl::parse("NO-STORE").no_store);
        assert!(CacheControl::parse("private=\"Set-Cookie\"").private);
        assert_eq!(CacheControl::parse("max-age=soon").max_age, Some(0));
        assert_eq!(CacheControl::parse("max-age=-5").max_age, Some(0));
        assert_eq!(CacheControl::parse("max-age").max_age, Some(0));
        assert_eq!(
            CacheControl::parse("max-age=60, max-age=30").max_age,
            Some(30)
        );
        assert_eq!(
            CacheControl::parse("max-age=99999999999999999999999").max_age,
            Some(MAX_DELTA)
        );
        assert_eq!(CacheControl::parse(" , max-age=5 ,, ").max_age, Some(5));
    }

    #[test]
    fn shared_cache_prefers_s_maxage() {
        let now = 1_000_000;
        assert_eq!(entry(200, &cc("max-age=600, s-maxage=60"), now).max_age, 60);
        assert_eq!(entry(200, &cc("s-maxage=60, max-age=600"), now).max_age, 60);
        assert_eq!(entry(200, &cc("max-age=600"), now).max_age, 600);
    }

    #[test]
    fn private_and_no_store_are_not_stored_no_cache_is_stored_stale() {
        let now = 1_000_000;
        assert!(entry(200, &cc("private, max-age=600"), now).no_store);
        assert!(entry(200, &cc("no-store"), now).no_store);
        let nc = entry(200, &cc("no-cache, max-age=600"), now);
        assert!(!nc.no_store);
        assert_eq!(nc.max_age, 0);
        assert!(!nc.is_fresh(now));
    }

    #[test]
    fn expires_date_age_and_the_default() {
        let now = 1_700_000_000;
        let date = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(now - 100));
        let expires = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(now + 200));
        let h = OriginHeaders {
            expires: Some(&expires),
            date: Some(&date),
            ..OriginHeaders::default()
        };
        assert_eq!(entry(200, &h, now).max_age, 300, "Expires − Date");
        let h = OriginHeaders {
            expires: Some(&expires),
            ..OriginHeaders::default()
        };
        assert_eq!(
            entry(200, &h, now).max_age,
            200,
            "Expires − now without Date"
        );
        let h = OriginHeaders {
            expires: Some("0"),
            ..OriginHeaders::default()
        };
        assert_eq!(
            entry(200, &h, now).max_age,
            0,
            "an invalid Expires is already expired"
        );
        let h = OriginHeaders {
            cache_control: Some("max-age=50"),
            expires: Some(&expires),
            ..OriginHeaders::default()
        };
        assert_eq!(entry(200, &h, now).max_age, 50, "max-age beats Expires");
        assert_eq!(entry(200, &OriginHeaders::default(), now).max_age, 86_400);
        let h = OriginHeaders {
            cache_control: Some("max-age=600"),
            age: Some("100"),
            ..OriginHeaders::default()
        };
        let e = entry(200, &h, now);
        assert_eq!((e.fetched_unix, e.max_age), (now - 100, 600));
        assert!(e.is_fresh(now + 499) && !e.is_fresh(now + 500));
    }

    #[test]
    fn statuses_and_negative_caching() {
        let now = 1_000;
        let nf = entry(404, &OriginHeaders::default(), now);
        assert!(!nf.no_store && nf.is_negative());
        assert_eq!(nf.max_age, 60);
        assert_eq!(
            entry(404, &cc("max-age=3600"), now).max_age,
            60,
            "never longer"
        );
        assert_eq!(
            entry(410, &cc("max-age=5"), now).max_age,
            5,
            "but may be shorter"
        );
        assert!(entry(404, &cc("no-store"), now).no_store);
        for status in [206, 301, 302, 500, 502, 503] {
            assert!(entry(status, &cc("max-age=600"), now).no_store, "{status}");
        }
    }

    #[test]
    fn stale_while_revalidate_window() {
        let now = 1_000;
        let e = entry(200, &cc("max-age=10, stale-while-revalidate=20"), now);
        assert!(e.is_fresh(now + 9) && !e.serve_while_revalidating(now + 9));
        assert!(e.serve_while_revalidating(now + 10));
        assert!(e.serve_while_revalidating(now + 29));
        assert!(!e.serve_while_revalidating(now + 30));
        let strict = entry(
            200,
            &cc("max-age=10, stale-while-revalidate=20, must-revalidate"),
            now,
        );
        assert_eq!(strict.stale_while_revalidate, 0);
    }

    #[tokio::test]
    async fn lookup_fresh_stale_miss_and_refresh() {
        let cache = SourceCache::new(policy());
        let url = "https://origin/cat.jpg";
        assert_eq!(cache.lookup(url).await, Lookup::Miss);
        let now = unix_now();
        let h = OriginHeaders {
            cache_control: Some("max-age=100"),
            etag: Some("\"v1\""),
            ..OriginHeaders::default()
        };
        // Fetched 150 s ago with a 100 s lifetime: stale, but kept for revalidation.
        let e = policy().entry(200, Bytes::from_static(b"cat"), &h, now - 150);
        assert!(cache.store(url, e).await);
        let Lookup::Stale(stale) = cache.lookup(url).await else {
            panic!("expected stale")
        };
        assert_eq!(stale.etag.as_deref(), Some("\"v1\""));
        assert!(matches!(
            cache.lookup_at(url, now - 100).await,
            Lookup::Fresh(_)
        ));

        // 304: same body, fresh again.
        let refreshed = cache.refresh(url).await.unwrap();
        assert_eq!(refreshed.body.as_ref(), b"cat");
        assert!(refreshed.fetched_unix >= now);
        let Lookup::Fresh(fresh) = cache.lookup(url).await else {
            panic!("expected fresh after refresh")
        };
        assert_eq!((fresh.body.as_ref(), fresh.max_age), (&b"cat"[..], 100));

        // A 304 that says more updates validators and lifetime.
        let h304 = OriginHeaders {
            cache_control: Some("max-age=5"),
            etag: Some("\"v2\""),
            ..OriginHeaders::default()
        };
        let r = cache.refresh_with(url, &h304).await.unwrap();
        assert_eq!((r.max_age, r.etag.as_deref()), (5, Some("\"v2\"")));
        assert!(cache.refresh("https://origin/other.jpg").await.is_none());
        let s = cache.stats();
        assert_eq!(
            (s.fresh_hits, s.stale_hits, s.misses, s.refreshes),
            (2, 1, 1, 2)
        );
    }

    #[tokio::test]
    async fn entries_without_validators_leave_when_stale() {
        let cache = SourceCache::new(policy());
        let now = unix_now();
        let e = policy().entry(200, Bytes::from_static(b"x"), &cc("max-age=10"), now - 20);
        assert!(
            !cache.store("u", e).await,
            "nothing to revalidate with, already stale"
        );
        assert_eq!(cache.lookup("u").await, Lookup::Miss);
        let e = policy().entry(
            200,
            Bytes::from_static(b"x"),
            &cc("max-age=10, stale-while-revalidate=60"),
            now - 20,
        );
        assert!(
            cache.store("u", e).await,
            "still servable while revalidating"
        );
        let Lookup::Stale(e) = cache.lookup("u").await else {
            panic!()
        };
        assert!(e.serve_while_revalidating(now));
    }

    #[tokio::test]
    async fn no_store_is_refused_and_drops_the_old_entry() {
        let cache = SourceCache::new(policy());
        let now = unix_now();
        assert!(cache.store("u", entry(200, &cc("max-age=60"), now)).await);
        assert!(!cache.store("u", entry(200, &cc("no-store"), now)).await);
        assert_eq!(cache.lookup("u").await, Lookup::Miss);
        assert!(
            !cache
                .store("u", entry(500, &OriginHeaders::default(), now))
                .await
        );
        assert_eq!(cache.stats().not_stored, 2);
    }

    #[tokio::test]
    async fn negative_entries_are_served_fresh_then_expire() {
        let cache = SourceCache::new(policy());
        let now = unix_now();
        assert!(
            cache
                .store("missing", entry(404, &OriginHeaders::default(), now))
                .await
        );
        let Lookup::Fresh(e) = cache.lookup("missing").await else {
            panic!()
        };
        assert_eq!(e.status, 404);
        assert_eq!(
            cache.lookup_at("missing", now + 61).await,
            Lookup::Miss,
            "gone after the negative TTL"
        );
    }

    #[tokio::test]
    async fn bounded_in_bytes_and_can_be_off() {
        let cache = SourceCache::new(SourcePolicy {
            memory_bytes: 100_000,
            ..policy()
        });
        let now = unix_now();
        for i in 0..50 {
            let e = policy().entry(200, Bytes::from(vec![0u8; 10_000]), &cc("max-age=600"), now);
            cache.store(&format!("u{i}"), e).await;
        }
        let huge = policy().entry(
            200,
            Bytes::from(vec![0u8; 200_000]),
            &cc("max-age=600"),
            now,
        );
        assert!(!cache.store("huge", huge).await);
        cache.sync().await;
        assert!(cache.stats().bytes <= 100_000, "{:?}", cache.stats());

        let off = SourceCache::new(SourcePolicy {
            memory_bytes: 0,
            ..policy()
        });
        assert!(!off.store("u", entry(200, &cc("max-age=60"), now)).await);
        assert_eq!(off.lookup("u").await, Lookup::Miss);
    }
}
