//! The kernel's notion of "now".
//!
//! Timestamps are kept at whole seconds: SQLite stores them as RFC 3339 text,
//! and the driver prints fractional seconds with a varying number of digits,
//! which would make text order differ from time order. Whole seconds sort
//! correctly on both databases and give both the same values.

use chrono::{DateTime, DurationRound, TimeDelta, Utc};

/// The current time, truncated to the second.
pub fn now() -> DateTime<Utc> {
    truncate(Utc::now())
}

/// `t` truncated to the second.
pub fn truncate(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(TimeDelta::seconds(1)).unwrap_or(t)
}
