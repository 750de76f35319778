//! Image requests seen in the last second, and the variant key each one led to.
//!
//! A cache hit used to derive its key again on every request: parse the query, build the
//! plan, print and hash it, open and stat the mounted file — a third of the CPU of a memory
//! hit, a quarter of a disk hit's. A request repeated (same endpoint, query and `Accept`) within
//! [`FRESH_FOR`] goes straight to the memory tier, then the disk tier, with the key it had.
//! Only the key is remembered, never an answer: a miss in both (evicted, purged, never
//! produced) takes the full path, and every gate before this step (signature, API key, rate
//! limit) still runs. POSTs and requests carrying headers forwarded to origins neither use nor
//! feed it (their keys depend on more than the URL). The second bounds how long an edited
//! mounted file can still be answered with its old variants.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use crate::cache::Key;
use crate::ops::Endpoint;

/// How long a request's key is trusted without looking at its source again.
pub const FRESH_FOR: Duration = Duration::from_secs(1);
/// Entries kept at most; past it, the stale ones go (all of them if none is).
const CAPACITY: usize = 8192;

/// Endpoint, raw query and `Accept`: everything the plan is made of.
pub type Request = (Endpoint, String);

#[derive(Clone, Copy)]
pub struct Known {
    pub key: Key,
    /// The response varies on `Accept` (`type=auto`).
    pub vary_accept: bool,
    at: Instant,
}

#[derive(Default)]
pub struct KeyMemo {
    entries: RwLock<HashMap<Request, Known>>,
}

impl KeyMemo {
    pub fn request(endpoint: Endpoint, raw_query: &str, accept: Option<&str>) -> Request {
        let accept = accept.unwrap_or_default();
        let mut text = String::with_capacity(raw_query.len() + 1 + accept.len());
        text.push_str(raw_query);
        text.push('\n');
        text.push_str(accept);
        (endpoint, text)
    }

    pub fn get(&self, request: &Request) -> Option<Known> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        entries
            .get(request)
            .filter(|k| k.at.elapsed() < FRESH_FOR)
            .copied()
    }

    pub fn remember(&self, request: Request, key: Key, vary_accept: bool) {
        let now = Instant::now();
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= CAPACITY {
            entries.retain(|_, k| now.duration_since(k.at) < FRESH_FOR);
            if entries.len() >= CAPACITY {
                entries.clear();
            }
        }
        entries.insert(
            request,
            Known {
                key,
                vary_accept,
                at: now,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> Key {
        Key::builder().field("n", [n]).finish()
    }

    #[test]
    fn a_request_is_known_by_endpoint_query_and_accept_for_a_second() {
        let memo = KeyMemo::default();
        let req = KeyMemo::request(Endpoint::Resize, "width=300&file=a.jpg", Some("image/webp"));
        assert!(memo.get(&req).is_none());
        memo.remember(req.clone(), key(1), true);
        let known = memo.get(&req).expect("remembered");
        assert_eq!((known.key, known.vary_accept), (key(1), true));
        for other in [
            KeyMemo::request(Endpoint::Crop, "width=300&file=a.jpg", Some("image/webp")),
            KeyMemo::request(Endpoint::Resize, "width=300&file=a.jpg", None),
            KeyMemo::request(Endpoint::Resize, "width=301&file=a.jpg", Some("image/webp")),
        ] {
            assert!(memo.get(&other).is_none());
        }
        // Aged past FRESH_FOR: forgotten.
        memo.entries.write().unwrap().get_mut(&req).unwrap().at -= FRESH_FOR;
        assert!(memo.get(&req).is_none());
    }

    #[test]
    fn the_memo_stays_bounded() {
        let memo = KeyMemo::default();
        for i in 0..CAPACITY * 2 + 1 {
            memo.remember(
                KeyMemo::request(Endpoint::Resize, &i.to_string(), None),
                key(0),
                false,
            );
        }
        assert!(memo.entries.read().unwrap().len() <= CAPACITY);
    }
}
