//! Every setting imgedge has, documented once.
//!
//! The command line follows imaginary's flags and Go's `flag` package rules (spec §1.1) so an
//! existing `imaginary -p 9000 -enable-url-source …` line starts imgedge unchanged. [`FLAGS`] is
//! the single table of flags: the parser, the defaults and `-h` are all generated from it.
//! Environment overrides (`PORT`, `URL_SIGNATURE_KEY`, `GOLANG_LOG`) are applied afterwards, as
//! imaginary does, and the whole configuration is validated once at start-up.

use std::net::SocketAddr;
use std::path::PathBuf;

/// What kind of value a flag takes (Go's `flag` types).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Bool,
    Int,
    Float,
    Str,
}

/// One command-line flag: its name, type, default (as Go would print it) and help text.
pub struct Flag {
    pub name: &'static str,
    pub kind: Kind,
    pub default: &'static str,
    pub help: &'static str,
}

const fn flag(name: &'static str, kind: Kind, default: &'static str, help: &'static str) -> Flag {
    Flag {
        name,
        kind,
        default,
        help,
    }
}

/// Every flag, in the order `-h` lists them. imaginary's flags first (same names, types and
/// defaults), then imgedge's own.
pub const FLAGS: &[Flag] = &[
    flag("a", Kind::Str, "", "Bind address (empty: all interfaces; IPv6 in brackets, e.g. [::1])"),
    flag("p", Kind::Int, "8088", "Port to listen on (the PORT environment variable wins)"),
    flag("h", Kind::Bool, "false", "Show this help and exit"),
    flag("help", Kind::Bool, "false", "Show this help and exit"),
    flag("v", Kind::Bool, "false", "Show the version and exit"),
    flag("version", Kind::Bool, "false", "Show the version and exit"),
    flag("path-prefix", Kind::Str, "/", "Path prefix in front of every route, e.g. /api"),
    flag("cors", Kind::Bool, "false", "Enable CORS headers and answer pre-flight requests"),
    flag("gzip", Kind::Bool, "false", "Deprecated, has no effect (accepted for compatibility)"),
    flag("disable-endpoints", Kind::Str, "", "Comma-separated endpoints to disable, e.g. form,blur"),
    flag("key", Kind::Str, "", "API key required on every request (API-Key header or key param)"),
    flag("mount", Kind::Str, "", "Directory served by the ?file= source (GET)"),
    flag("http-cache-ttl", Kind::Int, "-1", "Cache-Control max-age in seconds for images (-1: no headers; 0..31556926)"),
    flag("http-read-timeout", Kind::Int, "60", "Seconds to read a whole request (0: none)"),
    flag("http-write-timeout", Kind::Int, "60", "Seconds to write a whole response (0: none)"),
    flag("enable-url-source", Kind::Bool, "false", "Enable the ?url= source (GET): fetch images from origins"),
    flag("enable-placeholder", Kind::Bool, "false", "Answer errors with a placeholder image"),
    flag("enable-auth-forwarding", Kind::Bool, "false", "Forward Authorization / X-Forward-Authorization to origins"),
    flag("forward-headers", Kind::Str, "", "Comma-separated request headers forwarded to origins"),
    flag("enable-url-signature", Kind::Bool, "false", "Require an HMAC-SHA256 URL signature (sign param) on image endpoints"),
    flag("url-signature-key", Kind::Str, "", "URL signature key, at least 32 characters (URL_SIGNATURE_KEY wins)"),
    flag("allowed-origins", Kind::Str, "", "Comma-separated origins allowed for ?url=, e.g. https://*.example.org/images/"),
    flag("max-allowed-size", Kind::Int, "0", "Maximum origin image size in bytes (0: the built-in cap)"),
    flag("max-allowed-resolution", Kind::Float, "18", "Maximum input resolution in megapixels"),
    flag("certfile", Kind::Str, "", "TLS certificate file (with -keyfile)"),
    flag("keyfile", Kind::Str, "", "TLS private key file (with -certfile)"),
    flag("authorization", Kind::Str, "", "Authorization header value sent to origins"),
    flag("placeholder", Kind::Str, "", "Placeholder image file (enables -enable-placeholder)"),
    flag("placeholder-status", Kind::Int, "0", "HTTP status of placeholder replies (0: the error's own)"),
    flag("concurrency", Kind::Int, "0", "Rate limit: requests per second (0: off)"),
    flag("burst", Kind::Int, "100", "Rate limit burst"),
    flag("mrelease", Kind::Int, "30", "Go runtime memory release interval (accepted, no effect)"),
    flag("cpus", Kind::Int, "0", "Image worker threads, and twice as many request threads (0: CPU cores)"),
    flag("log-level", Kind::Str, "info", "Access log level: info, warning or error (GOLANG_LOG wins)"),
    flag("return-size", Kind::Bool, "false", "Add Image-Width and Image-Height response headers"),
    // imgedge's own.
    flag("allow-private-origins", Kind::Bool, "false", "Let ?url= reach loopback, private and link-local addresses (trusted networks only)"),
    flag("grace-period", Kind::Int, "5", "Seconds to let in-flight requests finish on shutdown"),
    flag("max-body-size", Kind::Int, "67108864", "Maximum request body and origin response size in bytes"),
    flag("queue", Kind::Int, "64", "Requests allowed to wait for an image worker before answering 503"),
    flag("config", Kind::Str, "", "YAML file with cache and admin settings (flags given on the command line win)"),
    flag("cache-memory", Kind::Str, "256MiB", "Memory cache (L1) size, e.g. 512MiB; 0 turns it off"),
    flag("cache-disk", Kind::Str, "2GiB", "Disk cache (L2) size, e.g. 20GiB; 0 turns it off"),
    flag("cache-dir", Kind::Str, "./var/cache", "Disk cache directory"),
    flag("cache-ttl", Kind::Int, "86400", "Seconds a variant (and an origin response that states no lifetime) stays fresh"),
    flag("cache-post", Kind::Bool, "false", "Also cache results of POST requests (keyed by a hash of the body)"),
    flag("source-cache", Kind::Str, "64MiB", "Memory for origin responses kept for re-use and revalidation; 0 turns it off"),
    flag("admin-key", Kind::Str, "", "Key for the admin endpoints (/admin/purge); empty disables them"),
    flag("public-health", Kind::Bool, "false", "Answer /health without the -key (for load-balancer probes)"),
    // Operations (docs/operations.md).
    flag("admin-listen", Kind::Str, "", "Extra listener serving only /health, /health/live, /health/ready and /metrics, without API key or rate limit, e.g. 127.0.0.1:9090 or :9090"),
    flag("log-format", Kind::Str, "imaginary", "Log format: imaginary (Apache-style access line, text app logs) or json (one JSON object per line for both)"),
    flag("shutdown-delay", Kind::Int, "0", "Seconds to keep serving after SIGTERM while /health/ready answers 503, so load balancers stop sending first"),
    flag("upgrade", Kind::Bool, "false", "Zero-downtime upgrade: take the listening sockets over from the imgedge running on this port, which then drains and exits"),
];

/// The validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    /// Cleaned prefix: `/` or `/api` (never a trailing slash).
    pub path_prefix: String,
    pub cors: bool,
    pub disabled_endpoints: Vec<String>,
    pub key: String,
    /// Canonical mount directory; `None` disables the file source.
    pub mount: Option<PathBuf>,
    pub http_cache_ttl: i64,
    pub read_timeout: Option<u64>,
    pub write_timeout: Option<u64>,
    pub enable_url_source: bool,
    pub enable_placeholder: bool,
    pub placeholder: Option<PathBuf>,
    pub placeholder_status: u16,
    pub enable_auth_forwarding: bool,
    pub forward_headers: Vec<String>,
    pub enable_url_signature: bool,
    pub url_signature_key: String,
    pub allowed_origins: crate::policy::origins::OriginRules,
    /// Turns the SSRF guard off (origins on loopback/private networks become reachable).
    pub allow_private_origins: bool,
    pub max_allowed_size: u64,
    pub max_allowed_resolution: f64,
    pub certfile: String,
    pub keyfile: String,
    pub authorization: String,
    pub concurrency: i64,
    pub burst: i64,
    /// Image worker threads (the bounded libvips pool).
    pub workers: usize,
    pub log_level: String,
    pub return_size: bool,
    pub grace_period: u64,
    pub max_body_size: u64,
    pub queue: usize,
    /// Named origins: path prefixes served from an object store or a site (YAML `origins`).
    pub origins: Vec<OriginConfig>,
    /// Cache tiers, sizes and lifetimes.
    pub cache: crate::cache::CacheConfig,
    /// Whether POST results are cached (keyed by the body's hash).
    pub cache_post: bool,
    /// `Admin-Key` for `/admin/*`; empty = admin endpoints off.
    pub admin_key: String,
    /// `/health` answers without `-key` (FIX option of spec §2.3).
    pub public_health: bool,
    /// `-admin-listen`: a second listener for health and metrics only.
    pub admin_listen: Option<SocketAddr>,
    /// `-log-format json`: access log and application logs as JSON lines.
    pub log_json: bool,
    /// Seconds between SIGTERM (readiness turns 503) and closing the listeners.
    pub shutdown_delay: u64,
    /// `-upgrade`: receive the listening sockets from the running process.
    pub upgrade: bool,
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Command {
    Serve(Box<Config>),
    /// `-h`: usage on stderr, exit 1 (imaginary's behaviour).
    Help,
    /// `-v`: version on stdout, exit 1.
    Version,
}

/// Why start-up stops, with the exit status imaginary uses.
#[derive(Debug, PartialEq)]
pub enum ConfigError {
    /// Bad flag syntax: message + usage on stderr, exit 2 (Go's `flag` package).
    Usage(String),
    /// A value that parses but is not acceptable: message on stderr, exit 1.
    Invalid(String),
}

impl ConfigError {
    pub fn exit_code(&self) -> i32 {
        match self {
            ConfigError::Usage(_) => 2,
            ConfigError::Invalid(_) => 1,
        }
    }
}

/// The `-h` text, generated from [`FLAGS`].
pub fn usage() -> String {
    let mut out = String::from(
        "imgedge: a caching image server, URL-compatible with imaginary.\n\n\
         Usage:\n  imgedge -p 8088 -mount ./images\n  imgedge -enable-url-source -allowed-origins https://images.example.org\n\n\
         Flags (Go syntax: -flag value, -flag=value, --flag value; booleans as -flag or -flag=false):\n",
    );
    for f in FLAGS {
        let arg = match f.kind {
            Kind::Bool => "",
            Kind::Int => " <int>",
            Kind::Float => " <float>",
            Kind::Str => " <string>",
        };
        let default = match (f.kind, f.default) {
            (Kind::Bool, "false") | (Kind::Str, "") => String::new(),
            _ => format!(" (default {})", f.default),
        };
        out.push_str(&format!(
            "  -{}{}\n        {}{}\n",
            f.name, arg, f.help, default
        ));
    }
    out.push_str(
        "\nEnvironment: PORT overrides -p; URL_SIGNATURE_KEY overrides -url-signature-key;\n\
         GOLANG_LOG overrides -log-level; VIPS_CONCURRENCY sets libvips threads per image (default 1).\n",
    );
    out
}

/// The raw string values of every flag after parsing the command line (defaults filled in),
/// and which ones the command line set.
struct Values(Vec<(&'static Flag, String)>, Vec<&'static str>);

impl Values {
    fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(f, _)| f.name == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    }
    fn set(&mut self, name: &str, value: String) {
        if let Some(slot) = self.0.iter_mut().find(|(f, _)| f.name == name) {
            slot.1 = value;
            self.1.push(slot.0.name);
        }
    }
    fn given(&self, name: &str) -> bool {
        self.1.contains(&name)
    }
    fn bool(&self, name: &str) -> bool {
        parse_go_bool(self.get(name)).unwrap_or(false)
    }
    fn int(&self, name: &str) -> i64 {
        parse_go_int(self.get(name)).unwrap_or(0)
    }
    fn float(&self, name: &str) -> f64 {
        parse_go_float(self.get(name)).unwrap_or(0.0)
    }
    fn list(&self, name: &str) -> Vec<String> {
        self.get(name)
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    }
}

/// Parses `args` (without the program name) and the environment into a [`Command`].
pub fn parse<I, S>(args: I, env: &dyn Fn(&str) -> Option<String>) -> Result<Command, ConfigError>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let values = parse_flags(args.into_iter().map(Into::into).collect())?;
    if values.bool("h") || values.bool("help") {
        return Ok(Command::Help);
    }
    if values.bool("v") || values.bool("version") {
        return Ok(Command::Version);
    }
    build(values, env).map(|c| Command::Serve(Box::new(c)))
}

/// Go `flag` semantics: stops at the first non-flag argument or `--`; `-x=v`, `-x v`, `--x v`;
/// booleans never consume the next argument.
fn parse_flags(args: Vec<String>) -> Result<Values, ConfigError> {
    let mut values = Values(
        FLAGS.iter().map(|f| (f, f.default.to_string())).collect(),
        Vec::new(),
    );
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if arg.len() < 2 || !arg.starts_with('-') {
            break;
        }
        let mut name = &arg[1..];
        if let Some(rest) = name.strip_prefix('-') {
            if rest.is_empty() {
                break; // "--" ends the flags
            }
            name = rest;
        }
        if name.is_empty() || name.starts_with('-') || name.starts_with('=') {
            return Err(ConfigError::Usage(format!("bad flag syntax: {arg}")));
        }
        let (name, inline) = match name.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (name, None),
        };
        let Some(flag) = FLAGS.iter().find(|f| f.name == name) else {
            return Err(ConfigError::Usage(format!(
                "flag provided but not defined: -{name}"
            )));
        };
        let value = match (flag.kind, inline) {
            (Kind::Bool, None) => "true".to_string(),
            (Kind::Bool, Some(v)) => {
                if parse_go_bool(&v).is_none() {
                    return Err(ConfigError::Usage(format!(
                        "invalid boolean value {v:?} for -{name}: parse error"
                    )));
                }
                v
            }
            (_, Some(v)) => v,
            (_, None) => {
                let Some(v) = args.get(i) else {
                    return Err(ConfigError::Usage(format!(
                        "flag needs an argument: -{name}"
                    )));
                };
                i += 1;
                v.clone()
            }
        };
        let valid = match flag.kind {
            Kind::Int => parse_go_int(&value).is_some(),
            Kind::Float => parse_go_float(&value).is_some(),
            _ => true,
        };
        if !valid {
            return Err(ConfigError::Usage(format!(
                "invalid value {value:?} for flag -{name}: parse error"
            )));
        }
        values.set(name, value);
    }
    Ok(values)
}

/// Applies the environment overrides and validates, in imaginary's start-up order (spec §1.4).
fn build(values: Values, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
    let invalid = |m: String| Err(ConfigError::Invalid(m));

    let mut port = values.int("p");
    if let Some(p) = env("PORT").and_then(|p| p.trim().parse::<i64>().ok()) {
        if p > 0 {
            port = p;
        }
    }
    if !(0..=65535).contains(&port) {
        return invalid(format!("invalid port {port}: must be 0..65535"));
    }
    let listen = listen_addr(values.get("a"), port as u16)?;

    let mount = match values.get("mount") {
        "" => None,
        m => Some(validate_mount(m)?),
    };

    let http_cache_ttl = values.int("http-cache-ttl");
    if http_cache_ttl != -1 && !(0..=31_556_926).contains(&http_cache_ttl) {
        return invalid(
            "The -http-cache-ttl flag only accepts a value from 0 to 31556926".to_string(),
        );
    }

    let placeholder = match values.get("placeholder") {
        "" => None,
        p => {
            if let Err(e) = std::fs::metadata(p) {
                return invalid(format!("cannot start the server: {e}"));
            }
            Some(PathBuf::from(p))
        }
    };

    let mut url_signature_key = values.get("url-signature-key").to_string();
    if let Some(k) = env("URL_SIGNATURE_KEY").filter(|k| !k.is_empty()) {
        url_signature_key = k;
    }
    let enable_url_signature = values.bool("enable-url-signature");
    if enable_url_signature {
        if url_signature_key.is_empty() {
            return invalid("URL signature key is required".to_string());
        }
        if url_signature_key.len() < 32 {
            return invalid("URL signature key must be a minimum of 32 characters".to_string());
        }
    }

    let mut log_level = values.get("log-level").to_string();
    if let Some(l) = env("GOLANG_LOG").filter(|l| !l.is_empty()) {
        log_level = l;
    }

    let timeout = |name: &str| match values.int(name) {
        t if t > 0 => Some(t as u64),
        _ => None,
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = match values.int("cpus") {
        n if n > 0 => n as usize,
        _ => cores,
    };
    let max_body_size = values.int("max-body-size");
    if max_body_size <= 0 {
        return invalid(format!(
            "-max-body-size must be a positive number of bytes, got {max_body_size}"
        ));
    }

    let file = match values.get("config") {
        "" => FileConfig::default(),
        path => FileConfig::load(path)?,
    };
    // Precedence: built-in defaults < the YAML file < flags given on the command line.
    let pick = |flag: &str, from_file: Option<String>| -> String {
        match from_file {
            Some(v) if !values.given(flag) => v,
            _ => values.get(flag).to_string(),
        }
    };
    let size = |flag: &str, from_file: Option<String>| -> Result<u64, ConfigError> {
        let text = pick(flag, from_file);
        parse_size(&text).ok_or_else(|| {
            ConfigError::Invalid(format!(
                "-{flag}: {text:?} is not a size; write bytes or e.g. 512MiB, 2GiB"
            ))
        })
    };
    let defaults = crate::cache::CacheConfig::default();
    let cache = crate::cache::CacheConfig {
        memory_bytes: size("cache-memory", file.cache.memory)?,
        disk_bytes: size("cache-disk", file.cache.disk)?,
        disk_dir: PathBuf::from(pick("cache-dir", file.cache.dir)),
        default_ttl_secs: pick("cache-ttl", file.cache.ttl.map(|t| t.to_string()))
            .parse()
            .map_err(|_| ConfigError::Invalid("-cache-ttl must be a number of seconds".into()))?,
        source_memory_bytes: size("source-cache", file.cache.source_memory)?,
        negative_ttl_secs: file
            .cache
            .negative_ttl
            .unwrap_or(defaults.negative_ttl_secs),
        ..defaults
    };
    let cache_post = match file.cache.post {
        Some(p) if !values.given("cache-post") => p,
        _ => values.bool("cache-post"),
    };

    let admin_listen = match values.get("admin-listen").trim() {
        "" => None,
        text => {
            let (host, port) = text.rsplit_once(':').unwrap_or(("", text));
            let port = port.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| {
                ConfigError::Invalid(format!(
                    "-admin-listen {text:?}: give host:port or :port, e.g. 127.0.0.1:9090"
                ))
            })?;
            let addr = listen_addr(host, port)?;
            if port == listen.port() {
                return invalid(format!(
                    "-admin-listen {text:?} uses the main port {port}: pick another port"
                ));
            }
            Some(addr)
        }
    };
    let log_json = match values.get("log-format") {
        "imaginary" | "" => false,
        "json" => true,
        other => return invalid(format!("-log-format {other:?}: use imaginary or json")),
    };

    Ok(Config {
        origins: file.origins,
        cache,
        cache_post,
        admin_key: pick("admin-key", file.admin.key),
        public_health: values.bool("public-health"),
        listen,
        path_prefix: clean_prefix(values.get("path-prefix")),
        cors: values.bool("cors"),
        disabled_endpoints: values
            .list("disable-endpoints")
            .into_iter()
            .map(|e| e.to_lowercase())
            .collect(),
        key: values.get("key").to_string(),
        mount,
        http_cache_ttl,
        read_timeout: timeout("http-read-timeout"),
        write_timeout: timeout("http-write-timeout"),
        enable_url_source: values.bool("enable-url-source"),
        enable_placeholder: values.bool("enable-placeholder") || placeholder.is_some(),
        placeholder,
        placeholder_status: values.int("placeholder-status").clamp(0, 999) as u16,
        enable_auth_forwarding: values.bool("enable-auth-forwarding"),
        forward_headers: values.list("forward-headers"),
        enable_url_signature,
        url_signature_key,
        allowed_origins: crate::policy::origins::OriginRules::parse(
            &values.list("allowed-origins"),
        )
        .map_err(ConfigError::Invalid)?,
        allow_private_origins: values.bool("allow-private-origins"),
        max_allowed_size: values.int("max-allowed-size").max(0) as u64,
        max_allowed_resolution: values.float("max-allowed-resolution"),
        certfile: values.get("certfile").to_string(),
        keyfile: values.get("keyfile").to_string(),
        authorization: values.get("authorization").to_string(),
        concurrency: values.int("concurrency"),
        burst: values.int("burst"),
        workers,
        log_level,
        return_size: values.bool("return-size"),
        grace_period: values.int("grace-period").max(0) as u64,
        max_body_size: max_body_size as u64,
        queue: values.int("queue").max(0) as usize,
        admin_listen,
        log_json,
        shutdown_delay: values.int("shutdown-delay").max(0) as u64,
        upgrade: values.bool("upgrade"),
    })
}

/// `conf/imgedge.yaml`: the settings imaginary never had. Every key is optional.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
struct FileConfig {
    cache: FileCache,
    admin: FileAdmin,
    origins: Vec<OriginConfig>,
}

/// One named origin (YAML `origins:` list): requests under `prefix` are served from `url`.
/// `/photos/a/b.jpg?width=300` with `prefix: /photos` → `<url>/a/b.jpg`, transformed by
/// `operation` (or the request's `op` param); without image params it is proxied as-is.
#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OriginConfig {
    pub name: String,
    pub prefix: String,
    /// Base URL; with `s3`, the S3 endpoint (`http://host:port`), the bucket name apart.
    pub url: String,
    /// Default image endpoint for requests with image params. Default `resize`.
    #[serde(default = "default_operation")]
    pub operation: String,
    /// A private S3-compatible bucket: requests are signed (AWS SigV4).
    #[serde(default)]
    pub s3: Option<S3Config>,
}

#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    pub bucket: String,
    #[serde(default = "default_region")]
    pub region: String,
    pub access_key: String,
    pub secret_key: String,
}

fn default_operation() -> String {
    "resize".to_string()
}

fn default_region() -> String {
    "us-east-1".to_string()
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
struct FileCache {
    memory: Option<String>,
    disk: Option<String>,
    dir: Option<String>,
    ttl: Option<u64>,
    post: Option<bool>,
    source_memory: Option<String>,
    negative_ttl: Option<u64>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
struct FileAdmin {
    key: Option<String>,
}

impl FileConfig {
    fn load(path: &str) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::Invalid(format!("-config {path}: {e}")))?;
        serde_yaml::from_str(&text)
            .map_err(|e| ConfigError::Invalid(format!("-config {path}: {e}")))
    }
}

/// `1048576`, `512KiB`, `256MiB`, `2GiB` (also `KB`/`MB`/`GB` as powers of 1000, and `K`/`M`/`G`
/// as powers of 1024).
pub fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        _ => return None,
    };
    n.checked_mul(factor)
}

fn listen_addr(host: &str, port: u16) -> Result<SocketAddr, ConfigError> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip = if host.is_empty() {
        std::net::IpAddr::from([0, 0, 0, 0])
    } else {
        host.parse().map_err(|_| {
            ConfigError::Invalid(format!(
                "listen: invalid bind address -a {host:?}: give an IP address such as 127.0.0.1 or [::1]"
            ))
        })?
    };
    Ok(SocketAddr::new(ip, port))
}

/// The mount must exist, be a directory and not be the file-system root, compared on the
/// canonical path (FIX: imaginary only refuses the literal string `/`).
fn validate_mount(mount: &str) -> Result<PathBuf, ConfigError> {
    let meta = std::fs::metadata(mount)
        .map_err(|e| ConfigError::Invalid(format!("error while mounting directory: {e}")))?;
    if !meta.is_dir() {
        return Err(ConfigError::Invalid(format!(
            "mount path is not a directory: {mount}"
        )));
    }
    let canonical = std::fs::canonicalize(mount)
        .map_err(|e| ConfigError::Invalid(format!("error while mounting directory: {e}")))?;
    if canonical.parent().is_none() {
        return Err(ConfigError::Invalid(
            "cannot mount root directory for security reasons".to_string(),
        ));
    }
    Ok(canonical)
}

/// Path-join semantics of imaginary (`path.Join("/", prefix)`): cleaned, duplicate slashes
/// collapsed, no trailing slash, and (FIX) always a leading `/`.
pub fn clean_prefix(prefix: &str) -> String {
    let cleaned = clean_path(&format!("/{prefix}"));
    if cleaned.is_empty() {
        "/".to_string()
    } else {
        cleaned
    }
}

/// Go's `path.Clean` for absolute paths: resolves `.` and `..`, collapses slashes, drops a
/// trailing slash (except for `/`).
pub fn clean_path(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    format!("/{}", parts.join("/"))
}

/// Go's `strconv.ParseBool`.
pub fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Go's `strconv.ParseInt(s, 0, 64)`: sign, base prefixes (0x, 0o, 0b, leading 0 = octal) and
/// underscores between digits when a prefix is present.
pub fn parse_go_int(s: &str) -> Option<i64> {
    let (neg, body) = match s.as_bytes().first()? {
        b'+' => (false, &s[1..]),
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    let lower = body.to_ascii_lowercase();
    let (radix, digits, prefixed) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d.to_string(), true)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d.to_string(), true)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d.to_string(), true)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, lower[1..].to_string(), true)
    } else {
        (10, lower.clone(), false)
    };
    // Underscores only between digits, or right after a base prefix (Go's `underscoreOK`).
    if digits.contains('_')
        && ((!prefixed && digits.starts_with('_'))
            || digits.ends_with('_')
            || digits.contains("__"))
    {
        return None;
    }
    let digits = digits.replace('_', "");
    if digits.is_empty() || digits.starts_with('+') || digits.starts_with('-') {
        return None;
    }
    let magnitude = i128::from_str_radix(&digits, radix).ok()?;
    let value = if neg { -magnitude } else { magnitude };
    i64::try_from(value).ok()
}

/// Go's `strconv.ParseFloat(s, 64)` for the forms people write (decimal, exponent, inf, nan).
pub fn parse_go_float(s: &str) -> Option<f64> {
    let t = s.replace('_', "");
    match t.to_ascii_lowercase().trim_start_matches(['+', '-']) {
        "inf" | "infinity" | "nan" => t.parse().ok(),
        _ if t.chars().all(|c| c.is_ascii_digit() || "+-.eE".contains(c)) => t.parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn serve(args: &[&str]) -> Config {
        match parse(args.iter().copied(), &no_env) {
            Ok(Command::Serve(c)) => *c,
            other => panic!("expected a config, got {other:?}"),
        }
    }

    #[test]
    fn go_flag_syntaxes_all_set_the_port() {
        for args in [
            &["-p", "9000"][..],
            &["-p=9000"],
            &["--p", "9000"],
            &["--p=9000"],
            &["-p", "0x2328"],
        ] {
            assert_eq!(serve(args).listen.port(), 9000, "{args:?}");
        }
    }

    #[test]
    fn booleans_take_no_separate_value() {
        assert!(serve(&["-cors"]).cors);
        assert!(serve(&["-cors=true"]).cors);
        assert!(!serve(&["-cors=F"]).cors);
        // `-cors false` stops parsing at `false`: the rest is ignored (Go semantics).
        let c = serve(&["-cors", "false", "-p", "1"]);
        assert!(c.cors);
        assert_eq!(c.listen.port(), 8088);
    }

    #[test]
    fn unknown_flag_and_bad_values_are_usage_errors() {
        let err = parse(["-nope"], &no_env).unwrap_err();
        assert_eq!(
            err,
            ConfigError::Usage("flag provided but not defined: -nope".into())
        );
        assert_eq!(err.exit_code(), 2);
        assert_eq!(
            parse(["-p", "abc"], &no_env).unwrap_err(),
            ConfigError::Usage("invalid value \"abc\" for flag -p: parse error".into())
        );
        assert_eq!(
            parse(["-cors=maybe"], &no_env).unwrap_err(),
            ConfigError::Usage("invalid boolean value \"maybe\" for -cors: parse error".into())
        );
        assert_eq!(
            parse(["-p"], &no_env).unwrap_err(),
            ConfigError::Usage("flag needs an argument: -p".into())
        );
    }

    #[test]
    fn help_and_version() {
        assert!(matches!(parse(["-h"], &no_env), Ok(Command::Help)));
        assert!(matches!(parse(["--help"], &no_env), Ok(Command::Help)));
        assert!(matches!(parse(["-v"], &no_env), Ok(Command::Version)));
        assert!(usage().contains("-enable-url-source"));
        assert!(usage().contains("-p <int>\n        Port to listen on"));
    }

    #[test]
    fn port_env_wins_when_positive() {
        let env = |k: &str| (k == "PORT").then(|| "9100".to_string());
        match parse(["-p", "8000"], &env).unwrap() {
            Command::Serve(c) => assert_eq!(c.listen.port(), 9100),
            _ => unreachable!(),
        }
        let bad = |k: &str| (k == "PORT").then(|| "-3".to_string());
        match parse(["-p", "8000"], &bad).unwrap() {
            Command::Serve(c) => assert_eq!(c.listen.port(), 8000),
            _ => unreachable!(),
        }
    }

    #[test]
    fn bind_address_and_ipv6() {
        assert_eq!(
            serve(&["-a", "127.0.0.1", "-p", "1"]).listen.to_string(),
            "127.0.0.1:1"
        );
        assert_eq!(
            serve(&["-a", "[::1]", "-p", "1"]).listen.to_string(),
            "[::1]:1"
        );
        assert!(matches!(
            parse(["-a", "example.org"], &no_env),
            Err(ConfigError::Invalid(_))
        ));
    }

    #[test]
    fn mount_is_validated_canonically() {
        let dir = tempfile::tempdir().unwrap();
        let c = serve(&["-mount", dir.path().to_str().unwrap()]);
        assert_eq!(c.mount.unwrap(), dir.path().canonicalize().unwrap());
        for root in ["/", "//", "/.", "/tmp/.."] {
            assert_eq!(
                parse(["-mount", root], &no_env).unwrap_err(),
                ConfigError::Invalid("cannot mount root directory for security reasons".into()),
                "{root}"
            );
        }
        assert!(matches!(
            parse(["-mount", "/definitely/not/here"], &no_env),
            Err(ConfigError::Invalid(m)) if m.starts_with("error while mounting directory:")
        ));
    }

    #[test]
    fn workers_default_to_the_cores_and_cpus_sets_them() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(serve(&[]).workers, cores);
        assert_eq!(serve(&["-cpus", "3"]).workers, 3);
    }

    #[test]
    fn cache_ttl_range_and_signature_key() {
        assert!(matches!(
            parse(["-http-cache-ttl", "31556927"], &no_env),
            Err(ConfigError::Invalid(_))
        ));
        assert_eq!(serve(&["-http-cache-ttl", "0"]).http_cache_ttl, 0);
        assert_eq!(
            parse(["-enable-url-signature"], &no_env).unwrap_err(),
            ConfigError::Invalid("URL signature key is required".into())
        );
        assert_eq!(
            parse(
                ["-enable-url-signature", "-url-signature-key", "short"],
                &no_env
            )
            .unwrap_err(),
            ConfigError::Invalid("URL signature key must be a minimum of 32 characters".into())
        );
    }

    #[test]
    fn prefix_is_cleaned() {
        assert_eq!(clean_prefix("/"), "/");
        assert_eq!(clean_prefix("/api/"), "/api");
        assert_eq!(clean_prefix("api"), "/api");
        assert_eq!(clean_prefix("//a//b/"), "/a/b");
    }

    #[test]
    fn cache_settings_from_flags_and_yaml() {
        let c = serve(&[]);
        assert_eq!(c.cache.memory_bytes, 256 << 20);
        assert_eq!(c.cache.disk_bytes, 2 << 30);
        assert!(!c.cache_post);
        let dir = tempfile::tempdir().unwrap();
        let yaml = dir.path().join("imgedge.yaml");
        std::fs::write(
            &yaml,
            "cache:\n  memory: 64MiB\n  disk: 0\n  ttl: 60\n  post: true\nadmin:\n  key: k\n",
        )
        .unwrap();
        let c = serve(&["-config", yaml.to_str().unwrap(), "-cache-memory", "1GiB"]);
        assert_eq!(c.cache.memory_bytes, 1 << 30); // the flag wins
        assert_eq!(c.cache.disk_bytes, 0);
        assert_eq!(c.cache.default_ttl_secs, 60);
        assert!(c.cache_post);
        assert_eq!(c.admin_key, "k");
        std::fs::write(&yaml, "cache:\n  memroy: 1\n").unwrap();
        assert!(matches!(
            parse(["-config", yaml.to_str().unwrap()], &no_env),
            Err(ConfigError::Invalid(m)) if m.contains("memroy")
        ));
        assert!(matches!(
            parse(["-cache-disk", "lots"], &no_env),
            Err(ConfigError::Invalid(m)) if m.contains("-cache-disk")
        ));
        assert_eq!(parse_size("512KiB"), Some(512 << 10));
        assert_eq!(parse_size("3MB"), Some(3_000_000));
        assert_eq!(parse_size("0"), Some(0));
    }

    #[test]
    fn go_ints() {
        assert_eq!(parse_go_int("1_000"), Some(1000));
        assert_eq!(parse_go_int("1__000"), None);
        assert_eq!(parse_go_int("0x1_0"), Some(16));
        assert_eq!(parse_go_int("0o17"), Some(15));
        assert_eq!(parse_go_int("017"), Some(15));
        assert_eq!(parse_go_int("-5"), Some(-5));
        assert_eq!(parse_go_int("+5"), Some(5));
        assert_eq!(parse_go_int("5.0"), None);
        assert_eq!(parse_go_float("1e3"), Some(1000.0));
        assert_eq!(parse_go_float("abc"), None);
    }
}
