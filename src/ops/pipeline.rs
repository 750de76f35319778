//! `/pipeline` operations JSON (spec §9.6).
