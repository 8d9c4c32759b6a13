//! A small time-bounded cache for what every request needs and rarely
//! changes: verified API keys, tenants, users' roles, resolved policies.
//!
//! The database stays the only source of truth: an entry lives `ttl` and is
//! then read again, so a change made by another kernel process is seen within
//! `ttl` (the `token_cache_seconds` setting); the process that makes a change
//! invalidates its own entry at once. A `ttl` of zero turns caching off.
//! Hand-written rather than a caching crate: a map behind a mutex with a
//! timestamp per entry is all this needs.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Entries kept at most; past it the cache starts over.
const CAPACITY: usize = 10_000;

pub struct TtlCache<K, V> {
    ttl: Duration,
    entries: Mutex<HashMap<K, (Instant, V)>>,
}

impl<K: Eq + Hash, V: Clone> TtlCache<K, V> {
    pub fn new(ttl: Duration) -> Self {
        TtlCache {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The live entry for `key`, if any.
    pub fn get(&self, key: &K) -> Option<V> {
        if self.ttl.is_zero() {
            return None;
        }
        let entries = self.entries.lock().ok()?;
        let (at, v) = entries.get(key)?;
        (at.elapsed() < self.ttl).then(|| v.clone())
    }

    pub fn insert(&self, key: K, value: V) {
        if self.ttl.is_zero() {
            return;
        }
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= CAPACITY {
                entries.clear();
            }
            entries.insert(key, (Instant::now(), value));
        }
    }

    pub fn remove(&self, key: &K) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(key);
        }
    }

    /// Drops every entry (after a change whose reach is hard to name).
    pub fn clear(&self) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.clear();
        }
    }
}

/// The caches of one kernel process.
pub struct Caches {
    pub tenants: TtlCache<uuid::Uuid, crate::entities::tenant::Model>,
    /// Hostname → tenant, for white-label domains (`None`: no tenant).
    pub hosts: TtlCache<String, Option<uuid::Uuid>>,
    pub users: TtlCache<uuid::Uuid, crate::entities::user::Model>,
    /// Reseller → its theme, for tenants that chose none.
    pub reseller_themes: TtlCache<uuid::Uuid, Option<String>>,
    /// (tenant, sorted role keys) → resolved policy.
    pub policies: TtlCache<(uuid::Uuid, String), std::sync::Arc<crate::permissions::Policy>>,
}

impl Caches {
    pub fn new(ttl: Duration) -> Self {
        Caches {
            tenants: TtlCache::new(ttl),
            hosts: TtlCache::new(ttl),
            users: TtlCache::new(ttl),
            reseller_themes: TtlCache::new(ttl),
            policies: TtlCache::new(ttl),
        }
    }
}
