//! Named origins: path prefixes served from an object store or an existing site — imgedge as
//! an image CDN in front of a bucket, or as an origin shield.
//!
//! `/photos/a/b.jpg?width=300` (prefix `/photos`) is the object `a/b.jpg` transformed with
//! imaginary's params; `/photos/a/b.jpg` without image params is proxied through pingora's
//! upstream path, streamed, untouched. Private S3-compatible buckets are reached with AWS
//! SigV4 presigned requests. These origins are the operator's own, so neither the SSRF guard
//! nor `-allowed-origins` applies to them.

use std::net::SocketAddr;
use std::time::Duration;

use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
use url::Url;

use crate::config::{clean_path, OriginConfig};
use crate::ops::Endpoint;

/// How long a presigned request stays valid: long enough for a slow origin, short enough to
/// be useless if logged somewhere.
const PRESIGN_VALIDITY: Duration = Duration::from_secs(300);

pub struct NamedOrigin {
    pub name: String,
    /// Cleaned, without a trailing slash (`/photos`).
    pub prefix: String,
    base: Url,
    pub operation: Endpoint,
    s3: Option<(Bucket, Credentials)>,
}

impl NamedOrigin {
    pub fn new(c: &OriginConfig) -> Result<Self, String> {
        let what = |m: String| format!("origin {:?}: {m}", c.name);
        let mut base = Url::parse(&c.url).map_err(|e| what(format!("url {:?}: {e}", c.url)))?;
        if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
            return Err(what(format!(
                "url {:?} must be http(s)://host[:port]/…",
                c.url
            )));
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let operation = super::route::IMAGE_ENDPOINTS
            .iter()
            .find(|(n, _)| *n == c.operation)
            .map(|(_, e)| *e)
            .ok_or_else(|| {
                what(format!(
                    "operation {:?} is not an image endpoint",
                    c.operation
                ))
            })?;
        let s3 = match &c.s3 {
            None => None,
            Some(s3) => {
                let bucket = Bucket::new(
                    base.clone(),
                    UrlStyle::Path,
                    s3.bucket.clone(),
                    s3.region.clone(),
                )
                .map_err(|e| what(format!("s3 bucket {:?}: {e}", s3.bucket)))?;
                Some((bucket, Credentials::new(&s3.access_key, &s3.secret_key)))
            }
        };
        Ok(NamedOrigin {
            name: c.name.clone(),
            prefix: clean_path(&c.prefix),
            base,
            operation,
            s3,
        })
    }

    /// The object's stable URL: its identity in the caches (never signed).
    pub fn object_url(&self, key: &str) -> Url {
        match &self.s3 {
            Some((bucket, _)) => bucket.object_url(key),
            None => {
                // Segment by segment, so a decoded `?` or `#` stays part of the path.
                let mut url = self.base.clone();
                if let Ok(mut segments) = url.path_segments_mut() {
                    segments.pop_if_empty().extend(key.split('/'));
                }
                url
            }
        }
    }

    /// The URL to fetch the object from now (presigned for a private bucket).
    pub fn fetch_url(&self, key: &str) -> Url {
        match &self.s3 {
            Some((bucket, creds)) => bucket.get_object(Some(creds), key).sign(PRESIGN_VALIDITY),
            None => self.object_url(key),
        }
    }
}

/// Every named origin, longest prefix first.
#[derive(Default)]
pub struct Upstreams(Vec<NamedOrigin>);

impl Upstreams {
    pub fn new(configs: &[OriginConfig]) -> Result<Self, String> {
        let mut origins = configs
            .iter()
            .map(NamedOrigin::new)
            .collect::<Result<Vec<_>, _>>()?;
        origins.sort_by_key(|o| std::cmp::Reverse(o.prefix.len()));
        Ok(Upstreams(origins))
    }

    /// The origin whose prefix contains `path`, and the object key below it (decoded,
    /// without a leading slash). `..` never reaches here: non-canonical paths were redirected.
    pub fn find<'a>(&'a self, path: &'a str) -> Option<(&'a NamedOrigin, &'a str)> {
        self.0.iter().find_map(|o| {
            let rest = path.strip_prefix(o.prefix.as_str())?.strip_prefix('/')?;
            (!rest.is_empty()).then_some((o, rest))
        })
    }
}

/// Where a passthrough request goes, decided in `request_filter`, used by `upstream_peer`
/// and `upstream_request_filter`.
#[derive(Debug, Clone)]
pub struct Passthrough {
    pub addr: SocketAddr,
    pub tls: bool,
    pub host: String,
    /// `Host` header value (with a non-default port).
    pub host_header: String,
    /// Path and query sent upstream.
    pub path_and_query: String,
}

impl Passthrough {
    /// For `url`, resolved without blocking (pingora's `HttpPeer::new` would block and panic).
    pub async fn to(url: &Url) -> Result<Self, String> {
        let host = url.host_str().ok_or("no host")?.to_string();
        let port = url.port_or_known_default().unwrap_or(80);
        let addr = tokio::net::lookup_host((host.trim_matches(['[', ']']), port))
            .await
            .map_err(|e| format!("resolving {host}: {e}"))?
            .next()
            .ok_or_else(|| format!("resolving {host}: no address"))?;
        let mut path_and_query = url.path().to_string();
        if let Some(q) = url.query() {
            path_and_query.push('?');
            path_and_query.push_str(q);
        }
        Ok(Passthrough {
            addr,
            tls: url.scheme() == "https",
            host_header: match url.port() {
                Some(p) => format!("{host}:{p}"),
                None => host.clone(),
            },
            host,
            path_and_query,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(prefix: &str, url: &str, s3: bool) -> OriginConfig {
        OriginConfig {
            name: "t".into(),
            prefix: prefix.into(),
            url: url.into(),
            operation: "resize".into(),
            s3: s3.then(|| crate::config::S3Config {
                bucket: "photos".into(),
                region: "us-east-1".into(),
                access_key: "AKIDEXAMPLE".into(),
                secret_key: "secret".into(),
            }),
        }
    }

    #[test]
    fn prefixes_map_paths_to_objects() {
        let u = Upstreams::new(&[
            origin("/photos/", "http://127.0.0.1:9000/base", false),
            origin("/photos/raw", "http://127.0.0.1:9001", false),
        ])
        .unwrap();
        let (o, key) = u.find("/photos/a/b.jpg").unwrap();
        assert_eq!(key, "a/b.jpg");
        assert_eq!(
            o.object_url(key).as_str(),
            "http://127.0.0.1:9000/base/a/b.jpg"
        );
        let (o, key) = u.find("/photos/raw/x.jpg").unwrap();
        assert_eq!(o.object_url(key).as_str(), "http://127.0.0.1:9001/x.jpg");
        assert!(u.find("/photos").is_none());
        assert!(u.find("/photosX/a.jpg").is_none());
        assert!(u.find("/resize").is_none());
        let (o, key) = u.find("/photos/what?.jpg").unwrap();
        assert_eq!(
            o.object_url(key).as_str(),
            "http://127.0.0.1:9000/base/what%3F.jpg"
        );
    }

    #[test]
    fn s3_requests_are_presigned_but_keyed_unsigned() {
        let u = Upstreams::new(&[origin("/p", "http://127.0.0.1:9000", true)]).unwrap();
        let (o, key) = u.find("/p/a b.jpg").unwrap();
        assert_eq!(
            o.object_url(key).as_str(),
            "http://127.0.0.1:9000/photos/a%20b.jpg"
        );
        let signed = o.fetch_url(key);
        assert!(signed
            .as_str()
            .starts_with("http://127.0.0.1:9000/photos/a%20b.jpg?"));
        let q = signed.query().unwrap();
        assert!(q.contains("X-Amz-Algorithm=AWS4-HMAC-SHA256") && q.contains("X-Amz-Signature="));
        assert!(q.contains("AKIDEXAMPLE"));
    }

    #[test]
    fn bad_configs_name_the_origin() {
        let err = NamedOrigin::new(&origin("/p", "ftp://x", false))
            .err()
            .unwrap();
        assert!(
            err.contains("origin \"t\"") && err.contains("ftp://x"),
            "{err}"
        );
        let mut c = origin("/p", "http://x", false);
        c.operation = "explode".into();
        assert!(NamedOrigin::new(&c).err().unwrap().contains("explode"));
    }
}
