//! Step 6 of the lifecycle: making a variant on a cache miss. Reads the source (through the
//! source cache for origins; mounted files on the worker itself), applies the limits, runs the
//! plan on the worker pool and wraps the result as a cacheable [`Variant`].
//!
//! A [`Producer`] owns (shares) everything it needs, because the cache runs it as a task of
//! its own: a client that goes away must not stall the others waiting for the same variant.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use sha2::{Digest, Sha256};
use url::Url;

use super::origin::{status_error, Fetched, OriginClient};
use super::source;
use crate::cache::{hex_encode, unix_now, Cache, Lookup, SourceEntry, Variant};
use crate::config::Config;
use crate::error::Error;
use crate::metrics::metrics;
use crate::ops::{self, OpError, Plan};
use crate::policy::pool::{self, Pool};

/// Where the bytes of a source come from.
#[derive(Debug, Clone)]
pub enum Input {
    /// Already read (a POST body).
    Bytes(Bytes),
    /// A file under the mount, already contained.
    File(PathBuf),
    /// An origin URL and the headers forwarded to it.
    Url(Url, Vec<(String, String)>),
    /// An object of a named origin: fetched from `fetch` (presigned for private buckets),
    /// known to the source cache as `object`.
    Named { fetch: Url, object: Url },
}

/// What the worker starts from: bytes in hand, or a mounted file it reads itself.
enum Loaded {
    Bytes(Bytes),
    File(PathBuf),
}

pub struct Producer {
    pub cfg: Arc<Config>,
    pub pool: Arc<Pool>,
    pub origin: Arc<OriginClient>,
    /// The client for named origins: the operator's own, so no allow-list or SSRF guard.
    pub trusted: Arc<OriginClient>,
    pub cache: Cache,
}

impl Producer {
    /// Makes the variant `plan` describes from `input`.
    pub async fn make(self: Arc<Self>, plan: Plan, input: Input) -> Result<Arc<Variant>, Error> {
        // Under overload, refuse before reading megabytes of source that would only wait.
        if self.pool.is_saturated() {
            metrics().pool_rejected.inc();
            return Err(pool::refusal().await);
        }
        // A mounted file is read on the worker itself, not before the queue: one hop between
        // threads fewer, and a request waiting for a worker holds no source bytes.
        let source = match input {
            Input::Bytes(b) => Loaded::Bytes(b),
            Input::File(path) => Loaded::File(path),
            Input::Url(url, forwarded) => {
                let key = url.to_string();
                let fetched = self.origin_bytes(&self.origin, url, &key, &forwarded);
                Loaded::Bytes(fetched.await?)
            }
            Input::Named { fetch, object } => {
                let fetched = self.origin_bytes(&self.trusted, fetch, object.as_str(), &[]);
                Loaded::Bytes(fetched.await?)
            }
        };
        if let Loaded::Bytes(bytes) = &source {
            usable(bytes)?;
        }
        let watermarks = self.watermarks(&plan).await?;

        let max_megapixels = self.cfg.max_allowed_resolution;
        let (mount, limit) = (self.cfg.mount.clone(), self.cfg.max_body_size);
        let operation = endpoint_label(&plan);
        let started = Instant::now();
        let output = self
            .pool
            .run(move || -> Result<ops::Output, Error> {
                let bytes = match source {
                    Loaded::Bytes(bytes) => bytes,
                    Loaded::File(path) => {
                        let mount = mount.ok_or(Error::InvalidFilePath)?;
                        let bytes = source::read_file(&mount, &path, limit)?;
                        usable(&bytes)?;
                        bytes
                    }
                };
                // The resolution limit is checked from the header inside, before any pixel is
                // decoded, with the header read once.
                Ok(ops::run_limited(&plan, bytes, &watermarks, max_megapixels)?)
            })
            .await
            .inspect_err(|e| {
                if matches!(e, Error::Overloaded) {
                    metrics().pool_rejected.inc();
                }
            })??;
        let format = output.format.map_or("json", |f| f.name());
        metrics()
            .transform_seconds
            .with_label_values(&[operation, format])
            .observe(started.elapsed().as_secs_f64());

        Ok(Arc::new(Variant {
            etag: strong_etag(&output.bytes),
            body: Bytes::from(output.bytes),
            content_type: output.mime.to_string(),
            created_unix: unix_now(),
            ttl_secs: self.cfg.cache.default_ttl_secs,
            width: output.width,
            height: output.height,
        }))
    }

    /// The origin's bytes, reused from the source cache while fresh, revalidated with a
    /// conditional GET when stale, fetched otherwise (the origin-shield role). Responses made
    /// for forwarded credentials are never shared.
    async fn origin_bytes(
        &self,
        client: &Arc<OriginClient>,
        url: Url,
        key: &str,
        forwarded: &[(String, String)],
    ) -> Result<Bytes, Error> {
        let sources = self.cache.sources();
        let shown = key.to_string();
        let shareable = forwarded.is_empty();
        let m = metrics();
        if shareable {
            match sources.lookup(key).await {
                Lookup::Fresh(entry) => {
                    m.source_cache.with_label_values(&["fresh"]).inc();
                    return entry_body(&entry, &shown);
                }
                Lookup::Stale(entry) if entry.serve_while_revalidating(unix_now()) => {
                    // stale-while-revalidate: answer now, refresh behind the response.
                    m.source_cache.with_label_values(&["stale"]).inc();
                    let (origin, cache) = (client.clone(), self.cache.clone());
                    let (stale, target, key) = (entry.clone(), url.clone(), key.to_string());
                    tokio::spawn(async move {
                        let _ = revalidate(&origin, &cache, target, &key, stale).await;
                    });
                    return entry_body(&entry, &shown);
                }
                Lookup::Stale(entry) if entry.has_validators() => {
                    m.source_cache.with_label_values(&["revalidated"]).inc();
                    return revalidate(client, &self.cache, url, key, entry).await;
                }
                Lookup::Stale(_) | Lookup::Miss => {}
            }
        }
        m.source_cache.with_label_values(&["fetched"]).inc();
        let fetched = client.fetch(url, forwarded).await?;
        if !shareable {
            return match fetched.status {
                200 => Ok(fetched.body),
                s => Err(status_error(s, &shown)),
            };
        }
        keep(&self.cache, key, fetched).await
    }

    /// The images `/watermarkimage` overlays, under the same origin rules, timeouts and byte
    /// cap as `?url=` (FIX: imaginary fetches any URL with no limit).
    async fn watermarks(&self, plan: &Plan) -> Result<Vec<(String, Vec<u8>)>, Error> {
        let mut fetched = Vec::new();
        for url in plan.watermark_urls() {
            let unable =
                || Error::bad_request(format!("Unable to retrieve watermark image. {url}"));
            let parsed = OriginClient::parse_url(url).map_err(|_| unable())?;
            let bytes = self
                .origin
                .fetch_body(parsed, &[])
                .await
                .map_err(|e| match e {
                    Error::Message { message, status } if message.starts_with("not allowed") => {
                        Error::Message { message, status }
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
}

/// A conditional GET with the stale entry's validators: 304 renews it, anything else
/// replaces it.
async fn revalidate(
    origin: &OriginClient,
    cache: &Cache,
    url: Url,
    key: &str,
    stale: Arc<SourceEntry>,
) -> Result<Bytes, Error> {
    let mut headers = Vec::new();
    if let Some(etag) = &stale.etag {
        headers.push(("If-None-Match".to_string(), etag.clone()));
    }
    if let Some(lm) = &stale.last_modified {
        headers.push(("If-Modified-Since".to_string(), lm.clone()));
    }
    let fetched = origin.fetch(url, &headers).await?;
    if fetched.status == 304 {
        let entry = cache
            .sources()
            .refresh_with(key, &fetched.headers.as_origin_headers())
            .await
            .unwrap_or(stale);
        return entry_body(&entry, key);
    }
    keep(cache, key, fetched).await
}

/// Stores an origin answer in the source cache under `key` (404s too, briefly) and returns
/// its body.
async fn keep(cache: &Cache, key: &str, fetched: Fetched) -> Result<Bytes, Error> {
    if fetched.status == 304 {
        // A 304 to an unconditional request: the origin is confused; nothing to serve.
        return Err(status_error(304, key));
    }
    let sources = cache.sources();
    let entry = sources.entry_from_origin(
        fetched.status,
        fetched.body,
        &fetched.headers.as_origin_headers(),
    );
    let result = entry_body(&entry, key);
    sources.store(key, entry).await;
    result
}

/// A source worth decoding: not empty, and a format libvips reads (sniffed from its first
/// bytes), checked before any worker time is spent on it.
fn usable(bytes: &Bytes) -> Result<(), Error> {
    if bytes.is_empty() {
        return Err(Error::EmptyBody);
    }
    match ops::format::sniff(bytes) {
        Some(_) => Ok(()),
        None => Err(Error::Op(OpError::UnsupportedMedia)),
    }
}

/// The body of a cached origin answer, or the error a negative entry stands for.
fn entry_body(entry: &SourceEntry, shown: &str) -> Result<Bytes, Error> {
    match entry.status {
        200 => Ok(entry.body.clone()),
        status => Err(status_error(status, shown)),
    }
}

/// A strong ETag from the variant's bytes: a changed source can never earn a stale 304, and
/// every node of a cluster derives the same tag for the same bytes.
fn strong_etag(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    format!("\"{}\"", hex_encode(&digest[..16]))
}

/// The endpoint name used as the `operation` metric label.
pub fn endpoint_label(plan: &Plan) -> &'static str {
    super::route::IMAGE_ENDPOINTS
        .iter()
        .find(|(_, e)| *e == plan.endpoint)
        .map_or("unknown", |(name, _)| name)
}

#[cfg(test)]
mod tests {
    use super::strong_etag;

    /// The tag is the first half of the body's SHA-256 in lowercase hex, quoted: what every
    /// node of a cluster, and every version that wrote the disk tier, derives for these bytes.
    #[test]
    fn strong_etag_is_the_quoted_sha256_prefix() {
        assert_eq!(strong_etag(b"abc"), "\"ba7816bf8f01cfea414140de5dae2223\"");
        assert_ne!(strong_etag(b"abc"), strong_etag(b"abd"));
    }
}
