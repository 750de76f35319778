//! `-allowed-origins` (spec §4.3.2): which hosts and paths `?url=` may fetch from.
//!
//! Same wildcard semantics as imaginary (`https://*.example.org`, `https://host/bucket-*`), with
//! its holes closed: entries without a host are refused at start-up instead of crashing requests,
//! and the target path is normalised before matching so `/allowed/../secret` cannot pass (FIX).

use url::Url;

/// One allowed origin: a host (exact, or `*.suffix`) and a path prefix.
#[derive(Clone, Debug, PartialEq)]
pub struct Origin {
    host: String,
    path: String,
}

/// The parsed `-allowed-origins` list. Empty = every origin allowed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OriginRules(Vec<Origin>);

impl OriginRules {
    /// Parses the entries; an entry that is not a URL with a host is an error that names it.
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        let mut origins = Vec::new();
        for entry in entries {
            let url = Url::parse(entry).map_err(|e| {
                format!(
                    "-allowed-origins: {entry:?} is not a URL ({e}); write it as https://host/path"
                )
            })?;
            let host = host_with_port(&url).ok_or_else(|| {
                format!("-allowed-origins: {entry:?} has no host; write it as https://host/path")
            })?;
            let mut path = url.path().to_string();
            if path == "/" {
                // `https://host/` and `https://host` both mean any path (`Url` always says "/").
                path.clear();
            } else if let Some(prefix) = path.strip_suffix('*') {
                path = prefix.to_string();
            } else if !path.ends_with('/') {
                path.push('/');
            }
            origins.push(Origin { host, path });
        }
        Ok(OriginRules(origins))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `target` may be fetched.
    pub fn allows(&self, target: &Url) -> bool {
        if self.0.is_empty() {
            return true;
        }
        let Some(host) = host_with_port(target) else {
            return false;
        };
        // `Url` already resolved `.` and `..` segments; decode %XX so the match sees the same
        // path imaginary's decoded `URL.Path` would.
        let path = percent_encoding::percent_decode_str(target.path()).decode_utf8_lossy();
        self.0.iter().any(|o| {
            let host_ok = match o.host.strip_prefix("*.") {
                Some(suffix) => host == suffix || host.ends_with(&format!(".{suffix}")),
                None => host == o.host,
            };
            host_ok && path.starts_with(&o.path)
        })
    }
}

/// `host` or `host:port` as Go's `URL.Host` gives it (default ports are elided by `Url`).
fn host_with_port(url: &Url) -> Option<String> {
    let host = url.host_str().filter(|h| !h.is_empty())?;
    Some(match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    })
}

/// imaginary's rejection message: `not allowed remote URL origin: <host><path>`.
pub fn not_allowed_message(target: &Url) -> String {
    format!(
        "not allowed remote URL origin: {}{}",
        host_with_port(target).unwrap_or_default(),
        target.path()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(list: &[&str]) -> OriginRules {
        OriginRules::parse(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    fn allowed(r: &OriginRules, url: &str) -> bool {
        r.allows(&Url::parse(url).unwrap())
    }

    #[test]
    fn spec_examples() {
        let bucket = rules(&["https://s3.amazonaws.com/bucket/"]);
        assert!(allowed(&bucket, "https://s3.amazonaws.com/bucket/a/b.png"));
        assert!(!allowed(&bucket, "https://s3.amazonaws.com/other/x.png"));
        assert!(!allowed(
            &bucket,
            "https://s3.amazonaws.com/bucket/../other/x.png"
        ));

        let some = rules(&["https://s3.amazonaws.com/some-*"]);
        assert!(allowed(&some, "https://s3.amazonaws.com/some-bucket/x"));
        assert!(!allowed(&some, "https://s3.amazonaws.com/other/x"));

        let wild = rules(&["https://*.example.org"]);
        assert!(allowed(&wild, "https://example.org/x.jpg"));
        assert!(allowed(&wild, "https://a.example.org/x.jpg"));
        assert!(allowed(&wild, "http://a.b.example.org/x.jpg"));
        assert!(!allowed(&wild, "https://myexample.org/x.jpg"));
        assert!(!allowed(&wild, "https://a.example.org:8080/x.jpg"));
    }

    #[test]
    fn path_without_trailing_slash_is_a_directory() {
        let r = rules(&["http://127.0.0.1:9000/img"]);
        assert!(allowed(&r, "http://127.0.0.1:9000/img/a.png"));
        assert!(!allowed(&r, "http://127.0.0.1:9000/img2/a.png"));
        assert!(!allowed(&r, "http://127.0.0.1:9001/img/a.png"));
    }

    #[test]
    fn empty_list_allows_all_and_hostless_entries_are_refused() {
        assert!(allowed(&OriginRules::default(), "http://anything/x"));
        assert!(OriginRules::parse(&["example.org".to_string()]).is_err());
        assert!(OriginRules::parse(&["file:///etc".to_string()]).is_err());
    }

    #[test]
    fn userinfo_does_not_fool_the_host_match() {
        let r = rules(&["https://allowed.example"]);
        assert!(!allowed(&r, "https://allowed.example@127.0.0.1/x"));
    }
}
