//! The rules that keep imgedge safe on the open internet: which files and origins a request
//! may reach, how much it may read, and how much work may run at once. Nothing here knows
//! pixels or caches.

pub mod address;
pub mod mount;
pub mod origins;
pub mod pool;
pub mod ratelimit;
pub mod signature;
