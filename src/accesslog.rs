//! imaginary's access log (spec §12): one Apache-style line per request on stdout,
//! `<ip> - - [02/Jan/2006 15:04:05] "<method> <uri> <proto>" <status> <bytes> <secs>`.

use std::borrow::Cow;
use std::io::Write;
use std::net::IpAddr;
use std::sync::{Condvar, Mutex, Once};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One request as the access log records it.
pub struct Entry<'a> {
    /// The client's address (`None` for a Unix socket).
    pub ip: Option<IpAddr>,
    pub at: SystemTime,
    pub method: &'a str,
    /// Already redacted ([`redact_uri`]).
    pub uri: &'a str,
    pub proto: &'a str,
    pub status: u16,
    pub bytes: usize,
    pub elapsed: Duration,
}

impl Entry<'_> {
    /// imaginary's line (without the newline).
    #[cfg(test)]
    fn line(&self) -> String {
        let mut out = String::with_capacity(96 + self.uri.len());
        self.write_line(&mut out);
        out
    }

    /// Appends imaginary's line to `out`. Written piece by piece, numbers by `itoa` and the
    /// seconds as integer arithmetic: the line was 4 % of a cache hit's CPU as one `format!`
    /// (an `f64` printed with `{:.4}`, the address's octets through `Display`), 3 % with
    /// `write!` for the numbers.
    fn write_line(&self, out: &mut String) {
        // The timestamp changes once a second; a repeated URL is logged tens of thousands of
        // times in that second, and formatting it each time was 1.6 % of a hit's CPU.
        thread_local! {
            static LAST: std::cell::RefCell<(i64, String)> = const {
                std::cell::RefCell::new((i64::MIN, String::new()))
            };
        }
        let secs = self
            .at
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()) as i64;
        self.write_ip(out);
        out.push_str(" - - [");
        LAST.with_borrow_mut(|(at, time)| {
            if *at != secs {
                *at = secs;
                *time = clf_time(secs);
            }
            out.push_str(time);
        });
        out.push_str("] \"");
        for part in [self.method, " ", self.uri, " ", self.proto, "\" "] {
            out.push_str(part);
        }
        let mut number = itoa::Buffer::new();
        out.push_str(number.format(self.status));
        out.push(' ');
        out.push_str(number.format(self.bytes));
        out.push(' ');
        // Ten-thousandths of a second, rounded to the nearest (imaginary prints `%.4f`).
        let ticks = (self.elapsed.as_nanos() + 50_000) / 100_000;
        out.push_str(number.format(ticks / 10_000));
        out.push('.');
        let fraction = number.format(ticks % 10_000);
        out.extend(std::iter::repeat_n('0', 4 - fraction.len()));
        out.push_str(fraction);
    }

    /// The client as imaginary writes it: `1.2.3.4`, `[::1]`, or `-`.
    fn write_ip(&self, out: &mut String) {
        use std::fmt::Write;
        match self.ip {
            Some(IpAddr::V4(ip)) => {
                let mut octet = itoa::Buffer::new();
                for (i, o) in ip.octets().into_iter().enumerate() {
                    if i > 0 {
                        out.push('.');
                    }
                    out.push_str(octet.format(o));
                }
            }
            Some(IpAddr::V6(ip)) => {
                let _ = write!(out, "[{ip}]");
            }
            None => out.push('-'),
        }
    }

    /// The same entry as one JSON object (`-log-format json`), for log pipelines that parse JSON.
    pub fn json(&self) -> String {
        let text = |s: &str| serde_json::Value::String(s.to_string()).to_string();
        let mut ip = String::new();
        self.write_ip(&mut ip);
        format!(
            "{{\"time\":\"{}\",\"remote_addr\":{},\"method\":{},\"uri\":{},\"proto\":{},\"status\":{},\"bytes\":{},\"duration\":{:.4}}}",
            rfc3339(self.at),
            text(&ip),
            text(self.method),
            text(self.uri),
            text(self.proto),
            self.status,
            self.bytes,
            self.elapsed.as_secs_f64()
        )
    }
}

/// `2006-01-02T15:04:05.000Z` (UTC, milliseconds).
pub fn rfc3339(at: SystemTime) -> String {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let (year, month, day, h, m, s) = civil(since.as_secs() as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{:03}Z",
        since.subsec_millis()
    )
}

/// Lines not yet written, and the flusher's wake-up. A write(2) per request was 6 % of a
/// cache hit's CPU; like nginx's `access_log … buffer= flush=`, lines wait up to
/// [`FLUSH_EVERY`] (or until [`FLUSH_AT`] bytes) and go out together. A crash loses at most
/// that much; a clean exit calls [`flush`].
static PENDING: Mutex<String> = Mutex::new(String::new());
static WAKE: Condvar = Condvar::new();
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);
const FLUSH_AT: usize = 32 * 1024;

/// Queues the entry's line (`json`: its JSON object) for stdout; a closed stdout never fails a
/// request.
pub fn write(entry: &Entry, json: bool) {
    static FLUSHER: Once = Once::new();
    FLUSHER.call_once(|| {
        let _ = std::thread::Builder::new()
            .name("accesslog".into())
            .spawn(flusher);
    });
    let mut pending = PENDING.lock().unwrap_or_else(|e| e.into_inner());
    let was_empty = pending.is_empty();
    // Formatted into the batch itself: no line buffer and no copy. (Formatting into a buffer of
    // the thread's and copying under the lock, to hold it shorter, measured no better.)
    match json {
        true => pending.push_str(&entry.json()),
        false => entry.write_line(&mut pending),
    }
    pending.push('\n');
    let full = pending.len() >= FLUSH_AT;
    drop(pending);
    if full {
        flush();
    } else if was_empty {
        WAKE.notify_one();
    }
}

/// Writes every queued line now (at exit, and from the flusher).
pub fn flush() {
    // Taken under stdout's lock, so batches reach it in the order they were queued.
    let mut out = std::io::stdout().lock();
    let batch = std::mem::replace(
        &mut *PENDING.lock().unwrap_or_else(|e| e.into_inner()),
        String::with_capacity(FLUSH_AT),
    );
    if !batch.is_empty() {
        let _ = out.write_all(batch.as_bytes());
        let _ = out.flush();
    }
}

/// Sleeps until a line is queued, gives it [`FLUSH_EVERY`] to gather company, writes.
fn flusher() {
    loop {
        let pending = PENDING.lock().unwrap_or_else(|e| e.into_inner());
        let pending = WAKE
            .wait_while(pending, |p| p.is_empty())
            .unwrap_or_else(|e| e.into_inner());
        drop(pending);
        std::thread::sleep(FLUSH_EVERY);
        flush();
    }
}

/// Replaces the values of `key` and `sign` so secrets never reach a log (FIX: imaginary logs them).
pub fn redact_uri(uri: &str) -> Cow<'_, str> {
    let Some((path, query)) = uri.split_once('?') else {
        return Cow::Borrowed(uri);
    };
    let secret = |pair: &str| matches!(pair.split_once('='), Some(("key" | "sign", _)));
    if !query.split('&').any(secret) {
        return Cow::Borrowed(uri);
    }
    let redacted: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if k == "key" || k == "sign" => format!("{k}=REDACTED"),
            _ => pair.to_string(),
        })
        .collect();
    Cow::Owned(format!("{path}?{}", redacted.join("&")))
}

/// `02/Jan/2006 15:04:05` in UTC of Unix seconds.
fn clf_time(secs: i64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (year, month, day, h, m, s) = civil(secs);
    format!(
        "{day:02}/{}/{year} {h:02}:{m:02}:{s:02}",
        MONTHS[(month - 1) as usize],
    )
}

/// (year, month, day, hour, minute, second) in UTC of Unix seconds.
fn civil(secs: i64) -> (i64, i64, i64, i64, i64, i64) {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day, rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_imaginary() {
        let at = UNIX_EPOCH + Duration::from_secs(1_736_831_709); // 2025-01-14 05:15:09 UTC
        let entry = Entry {
            ip: Some([172, 17, 0, 1].into()),
            at,
            method: "POST",
            uri: "/pipeline?x=1",
            proto: "HTTP/1.1",
            status: 200,
            bytes: 48211,
            elapsed: Duration::from_micros(84_200),
        };
        assert_eq!(
            entry.line(),
            "172.17.0.1 - - [14/Jan/2025 05:15:09] \"POST /pipeline?x=1 HTTP/1.1\" 200 48211 0.0842"
        );
        let other = Entry {
            ip: Some([255, 0, 10, 9].into()),
            elapsed: Duration::from_secs(3),
            ..entry
        };
        assert!(other
            .line()
            .starts_with("255.0.10.9 - - [14/Jan/2025 05:15:09] "));
        assert!(other.line().ends_with(" 200 48211 3.0000"));
        assert_eq!(clf_time(951_782_400), "29/Feb/2000 00:00:00");
        // The time formatted for the previous line is not reused for the next second's.
        let line = |at| {
            Entry {
                ip: Some(std::net::Ipv6Addr::LOCALHOST.into()),
                at,
                method: "GET",
                uri: "/",
                proto: "HTTP/1.1",
                status: 200,
                bytes: 1,
                elapsed: Duration::ZERO,
            }
            .line()
        };
        let at = UNIX_EPOCH + Duration::from_secs(951_782_399);
        assert_eq!(
            line(at),
            "[::1] - - [28/Feb/2000 23:59:59] \"GET / HTTP/1.1\" 200 1 0.0000"
        );
        assert!(line(at + Duration::from_millis(999)).contains("[28/Feb/2000 23:59:59]"));
        assert!(line(at + Duration::from_secs(1)).contains("[29/Feb/2000 00:00:00]"));
    }

    #[test]
    fn seconds_have_four_decimals_rounded_to_the_nearest_and_a_socket_client_is_a_dash() {
        let line = |nanos| {
            Entry {
                ip: None,
                at: UNIX_EPOCH,
                method: "GET",
                uri: "/",
                proto: "HTTP/1.0",
                status: 404,
                bytes: 0,
                elapsed: Duration::from_nanos(nanos),
            }
            .line()
        };
        for (nanos, secs) in [
            (49_999, "0.0000"),
            (50_000, "0.0001"),
            (99_999_999, "0.1000"),
            (1_234_549_999, "1.2345"),
            (1_234_550_000, "1.2346"),
            (61_000_000_000, "61.0000"),
        ] {
            assert_eq!(
                line(nanos),
                format!("- - - [01/Jan/1970 00:00:00] \"GET / HTTP/1.0\" 404 0 {secs}")
            );
        }
    }

    #[test]
    fn json_lines_parse_and_carry_the_same_fields() {
        let at = UNIX_EPOCH + Duration::from_millis(1_736_831_709_250);
        let line = Entry {
            ip: Some(std::net::Ipv6Addr::LOCALHOST.into()),
            at,
            method: "GET",
            uri: "/resize?url=\"x\"",
            proto: "HTTP/1.1",
            status: 200,
            bytes: 10,
            elapsed: Duration::from_millis(5),
        }
        .json();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["time"], "2025-01-14T05:15:09.250Z");
        assert_eq!(v["remote_addr"], "[::1]");
        assert_eq!(v["uri"], "/resize?url=\"x\"");
        assert_eq!(v["status"], 200);
        assert_eq!(v["bytes"], 10);
        assert_eq!(v["duration"], 0.005);
    }

    #[test]
    fn secrets_are_redacted() {
        assert_eq!(
            redact_uri("/resize?width=1&key=s3cret&sign=abc&url=x"),
            "/resize?width=1&key=REDACTED&sign=REDACTED&url=x"
        );
        assert_eq!(redact_uri("/health"), "/health");
        assert_eq!(redact_uri("/r?key=a"), "/r?key=REDACTED");
        assert!(matches!(redact_uri("/r?monkey=1&keys=2"), Cow::Borrowed(_)));
    }
}
