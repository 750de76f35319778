//! Step 1 of the lifecycle: which handler a request path reaches (spec §2.1), with Go
//! `ServeMux` semantics: exact matches, the index as catch-all when the prefix is `/`, and 301
//! to the cleaned path for non-canonical paths.

use std::borrow::Cow;

use crate::config::clean_path;
use crate::ops::Endpoint;

/// Where a request goes.
#[derive(Clone, Debug, PartialEq)]
pub enum Route {
    /// `/` (or the prefix itself): versions JSON.
    Index,
    Health,
    /// `/health/live` and `/health/ready`: probes (imgedge's own).
    Live,
    Ready,
    Form,
    Image(Endpoint),
    /// `/metrics`: Prometheus exposition (imgedge's own).
    Metrics,
    /// `/admin/purge`: cache purges (imgedge's own, needs `-admin-key`).
    Purge,
    /// Unknown path when the prefix is `/`: the index answers 404 JSON.
    NotFoundJson,
    /// Unknown path under a non-root prefix: Go's mux answers plain-text 404.
    NotFoundPlain,
    /// Non-canonical path: 301 to this location (query kept).
    Redirect(String),
}

/// imaginary's image endpoints by route name.
pub const IMAGE_ENDPOINTS: &[(&str, Endpoint)] = &[
    ("resize", Endpoint::Resize),
    ("fit", Endpoint::Fit),
    ("enlarge", Endpoint::Enlarge),
    ("extract", Endpoint::Extract),
    ("crop", Endpoint::Crop),
    ("smartcrop", Endpoint::SmartCrop),
    ("rotate", Endpoint::Rotate),
    ("autorotate", Endpoint::AutoRotate),
    ("flip", Endpoint::Flip),
    ("flop", Endpoint::Flop),
    ("thumbnail", Endpoint::Thumbnail),
    ("zoom", Endpoint::Zoom),
    ("convert", Endpoint::Convert),
    ("watermark", Endpoint::Watermark),
    ("watermarkimage", Endpoint::WatermarkImage),
    ("info", Endpoint::Info),
    ("blur", Endpoint::Blur),
    ("pipeline", Endpoint::Pipeline),
];

/// Resolves a decoded request path against the cleaned `prefix` (`/` or `/api`).
pub fn resolve(prefix: &str, path: &str, query: Option<&str>) -> Route {
    let canonical = go_clean(path);
    if canonical != path {
        let location = match query {
            Some(q) if !q.is_empty() => format!("{canonical}?{q}"),
            _ => canonical.into_owned(),
        };
        return Route::Redirect(location);
    }
    let rest = if prefix == "/" {
        Some(path)
    } else {
        path.strip_prefix(prefix)
            .filter(|r| r.is_empty() || r.starts_with('/'))
    };
    let Some(rest) = rest else {
        return Route::NotFoundPlain;
    };
    match rest {
        "" | "/" if prefix == "/" || rest.is_empty() => Route::Index,
        "/health" => Route::Health,
        "/health/live" => Route::Live,
        "/health/ready" => Route::Ready,
        "/form" => Route::Form,
        "/metrics" => Route::Metrics,
        "/admin/purge" => Route::Purge,
        _ => match IMAGE_ENDPOINTS
            .iter()
            .find(|(n, _)| rest.strip_prefix('/') == Some(*n))
        {
            Some((_, e)) => Route::Image(*e),
            None if prefix == "/" => Route::NotFoundJson,
            None => Route::NotFoundPlain,
        },
    }
}

impl Route {
    /// A short, bounded name for metric labels.
    pub fn label(&self) -> &'static str {
        match self {
            Route::Index => "index",
            Route::Health => "health",
            Route::Live => "live",
            Route::Ready => "ready",
            Route::Form => "form",
            Route::Metrics => "metrics",
            Route::Purge => "purge",
            Route::Image(e) => IMAGE_ENDPOINTS
                .iter()
                .find(|(_, x)| x == e)
                .map_or("unknown", |(n, _)| n),
            Route::NotFoundJson | Route::NotFoundPlain | Route::Redirect(_) => "unknown",
        }
    }
}

/// Go's `cleanPath` for the mux: like `path.Clean`, but a trailing slash is kept. A path that
/// is already clean (every request of a well-behaved client) comes back as it is, without the
/// three allocations of cleaning it.
fn go_clean(path: &str) -> Cow<'_, str> {
    if is_clean(path) {
        return Cow::Borrowed(path);
    }
    if path.is_empty() {
        return Cow::Owned("/".to_string());
    }
    let mut cleaned = clean_path(path);
    if path.ends_with('/') && cleaned != "/" {
        cleaned.push('/');
    }
    Cow::Owned(cleaned)
}

/// Whether `go_clean` leaves `path` as it is: `/`, or absolute with no empty, `.` or `..`
/// segment (one trailing slash aside).
fn is_clean(path: &str) -> bool {
    match path.strip_prefix('/') {
        Some("") => true,
        Some(rest) => rest
            .strip_suffix('/')
            .unwrap_or(rest)
            .split('/')
            .all(|seg| !matches!(seg, "" | "." | "..")),
        None => false,
    }
}

/// Whether `-disable-endpoints` turns this path off: its last segment names a disabled
/// endpoint (spec §2.4).
pub fn is_disabled(disabled: &[String], path: &str) -> bool {
    let last = path.rsplit('/').next().unwrap_or_default();
    !last.is_empty() && disabled.iter().any(|d| d == last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_prefix() {
        assert_eq!(resolve("/", "/", None), Route::Index);
        assert_eq!(resolve("/", "/health", None), Route::Health);
        assert_eq!(resolve("/", "/health/live", None), Route::Live);
        assert_eq!(resolve("/", "/health/ready", None), Route::Ready);
        assert_eq!(resolve("/", "/form", None), Route::Form);
        assert_eq!(
            resolve("/", "/resize", None),
            Route::Image(Endpoint::Resize)
        );
        assert_eq!(
            resolve("/", "/watermarkimage", None),
            Route::Image(Endpoint::WatermarkImage)
        );
        assert_eq!(resolve("/", "/resize/", None), Route::NotFoundJson);
        assert_eq!(resolve("/", "/Resize", None), Route::NotFoundJson);
        assert_eq!(resolve("/", "/nope", None), Route::NotFoundJson);
    }

    #[test]
    fn non_root_prefix() {
        assert_eq!(resolve("/api", "/api", None), Route::Index);
        assert_eq!(resolve("/api", "/api/", None), Route::NotFoundPlain);
        assert_eq!(
            resolve("/api", "/api/resize", None),
            Route::Image(Endpoint::Resize)
        );
        assert_eq!(resolve("/api", "/resize", None), Route::NotFoundPlain);
        assert_eq!(resolve("/api", "/apiresize", None), Route::NotFoundPlain);
        assert_eq!(resolve("/api", "/api/health", None), Route::Health);
    }

    #[test]
    fn non_canonical_paths_redirect_with_query() {
        assert_eq!(
            resolve("/", "//resize", Some("width=1")),
            Route::Redirect("/resize?width=1".into())
        );
        assert_eq!(
            resolve("/", "/a/../resize", None),
            Route::Redirect("/resize".into())
        );
        assert_eq!(
            resolve("/", "/./form/", None),
            Route::Redirect("/form/".into())
        );
    }

    #[test]
    fn clean_paths_are_left_as_they_are_and_only_those() {
        // The shortcut must agree with cleaning itself on every shape of path.
        let slow = |p: &str| {
            if p.is_empty() {
                return "/".to_string();
            }
            let mut c = clean_path(p);
            if p.ends_with('/') && c != "/" {
                c.push('/');
            }
            c
        };
        for p in [
            "",
            "/",
            "//",
            "///",
            "/resize",
            "/resize/",
            "/resize//",
            "//resize",
            "/a/b",
            "/a//b",
            "/a/./b",
            "/a/../b",
            "/.",
            "/..",
            "/./",
            "/../",
            "/a/.",
            "/a/..",
            "/a/.b",
            "/a/..b",
            "/a/b.",
            "/...",
            "resize",
            "./resize",
            "/api/resize",
            "/api//resize/",
        ] {
            let fast = go_clean(p);
            assert_eq!(fast, slow(p), "{p:?}");
            assert_eq!(matches!(fast, Cow::Borrowed(_)), fast == p, "{p:?}");
        }
    }

    #[test]
    fn disabled_by_last_segment() {
        let d = vec!["blur".to_string(), "api".to_string()];
        assert!(is_disabled(&d, "/blur"));
        assert!(is_disabled(&d, "/api"));
        assert!(!is_disabled(&d, "/api/resize"));
        assert!(!is_disabled(&d, "/"));
    }
}
