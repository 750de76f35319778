//! `-concurrency N -burst B` (spec §10.4): a GCRA rate limit of N requests per second with a
//! burst of B, answered with imaginary's headers and its plain-text 429.
//!
//! FIX: imaginary keeps one budget per route shared by every client, so one noisy client
//! starves everyone; here each client address has its own budget (on every route together).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Entries kept before stale ones are swept.
const SWEEP_AT: usize = 10_000;

pub struct RateLimit {
    /// Time between two requests at the sustained rate.
    interval: Duration,
    /// How far ahead of now a client's theoretical arrival time may run (= burst × interval).
    tolerance: Duration,
    burst: u64,
    clients: Mutex<HashMap<IpAddr, Instant>>,
}

/// The limiter's answer for one request.
#[derive(Debug, PartialEq)]
pub struct Verdict {
    pub allowed: bool,
    /// `X-RateLimit-*` (and `Retry-After` when refused), for the response.
    pub headers: Vec<(&'static str, String)>,
}

impl RateLimit {
    /// `None` when `per_second` ≤ 0 (rate limiting off). `burst` must be ≥ 0.
    pub fn new(per_second: i64, burst: i64) -> Option<Self> {
        if per_second <= 0 {
            return None;
        }
        let interval = Duration::from_secs_f64(1.0 / per_second as f64);
        let burst = burst.max(0) as u64;
        Some(RateLimit {
            interval,
            tolerance: interval * burst as u32,
            burst,
            clients: Mutex::new(HashMap::new()),
        })
    }

    pub fn check(&self, client: IpAddr, now: Instant) -> Verdict {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if clients.len() >= SWEEP_AT {
            clients.retain(|_, tat| *tat > now);
        }
        let tat = clients
            .get(&client)
            .copied()
            .filter(|t| *t > now)
            .unwrap_or(now);
        let limit = ("X-RateLimit-Limit", (self.burst + 1).to_string());
        if tat.duration_since(now) > self.tolerance {
            let retry = tat.duration_since(now) - self.tolerance;
            return Verdict {
                allowed: false,
                headers: vec![
                    limit,
                    ("X-RateLimit-Remaining", "0".to_string()),
                    (
                        "X-RateLimit-Reset",
                        ceil_secs(tat.duration_since(now)).to_string(),
                    ),
                    ("Retry-After", ceil_secs(retry).to_string()),
                ],
            };
        }
        let next = tat + self.interval;
        clients.insert(client, next);
        let ahead = next.duration_since(now);
        let remaining = ((self.tolerance + self.interval)
            .saturating_sub(ahead)
            .as_secs_f64()
            / self.interval.as_secs_f64()
            + 1e-9)
            .floor() as u64;
        Verdict {
            allowed: true,
            headers: vec![
                limit,
                ("X-RateLimit-Remaining", remaining.to_string()),
                ("X-RateLimit-Reset", ceil_secs(ahead).to_string()),
            ],
        }
    }
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header<'a>(v: &'a Verdict, name: &str) -> &'a str {
        &v.headers.iter().find(|(n, _)| *n == name).unwrap().1
    }

    #[test]
    fn burst_plus_one_pass_then_429_until_the_interval() {
        let rl = RateLimit::new(1, 2).unwrap();
        let ip: IpAddr = "203.0.113.7".parse().unwrap();
        let t0 = Instant::now();
        let remaining: Vec<String> = (0..3)
            .map(|_| {
                let v = rl.check(ip, t0);
                assert!(v.allowed);
                assert_eq!(header(&v, "X-RateLimit-Limit"), "3");
                header(&v, "X-RateLimit-Remaining").to_string()
            })
            .collect();
        assert_eq!(remaining, ["2", "1", "0"]);
        let refused = rl.check(ip, t0);
        assert!(!refused.allowed);
        assert_eq!(header(&refused, "Retry-After"), "1");
        // Another client has its own budget (FIX: imaginary shares one per route).
        assert!(rl.check("203.0.113.8".parse().unwrap(), t0).allowed);
        // One interval later, one more request passes.
        assert!(rl.check(ip, t0 + Duration::from_secs(1)).allowed);
        assert!(!rl.check(ip, t0 + Duration::from_secs(1)).allowed);
    }

    #[test]
    fn off_when_not_positive() {
        assert!(RateLimit::new(0, 100).is_none());
        assert!(RateLimit::new(-1, 100).is_none());
    }
}
