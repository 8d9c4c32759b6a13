//! API tokens: random secrets of which only a SHA-256 hash is stored.
//!
//! A token carries 256 bits of randomness, so a fast hash is enough to make a
//! stolen table useless; a slow password hash (argon2) would only add
//! latency to every request. Passwords, which people choose, get argon2id.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sea_orm::{ActiveModelTrait, ConnectionTrait, Set};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::entities::api_token;
use crate::error::Result;

/// Prefix that makes Trellis tokens recognisable to secret scanners.
const PREFIX: &str = "trl_";

/// A new random token.
pub fn generate() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// The stored form of a token.
pub fn hash(token: &str) -> String {
    format!("{:x}", Sha256::digest(token.as_bytes()))
}

/// Stores a token for `user_id` with the given roles and returns its id.
pub async fn store<C: ConnectionTrait>(
    db: &C,
    tenant_id: Uuid,
    user_id: Uuid,
    name: &str,
    token: &str,
    roles: &[&str],
) -> Result<Uuid> {
    let id = Uuid::now_v7();
    api_token::ActiveModel {
        id: Set(id),
        tenant_id: Set(tenant_id),
        user_id: Set(user_id),
        name: Set(name.to_owned()),
        token_hash: Set(hash(token)),
        roles: Set(serde_json::json!(roles)),
        created_at: Set(crate::clock::now()),
        revoked_at: Set(None),
    }
    .insert(db)
    .await?;
    Ok(id)
}

/// Who a token belongs to: what the request context needs.
#[derive(Debug, Clone)]
pub struct Verified {
    pub token_id: Uuid,
    pub tenant_id: Uuid,
    pub user_id: Uuid,
    pub roles: Vec<String>,
}

/// Recently verified tokens, so that most requests authenticate without a
/// database round trip (measured: it is one of two queries of a get by id).
///
/// The database stays the only source of truth: an entry lives `ttl` and is
/// then checked again, so a revoked token keeps working on a process for at
/// most that long. Failed look-ups are not cached. A `ttl` of zero turns the
/// cache off. Hand-written rather than a caching crate: a map behind a mutex
/// with a timestamp per entry is all this needs.
pub struct TokenCache {
    ttl: std::time::Duration,
    entries: std::sync::Mutex<std::collections::HashMap<String, (std::time::Instant, Verified)>>,
}

/// Entries kept at most; past it the cache starts over.
const CACHE_CAPACITY: usize = 10_000;

impl TokenCache {
    pub fn new(ttl: std::time::Duration) -> Self {
        TokenCache {
            ttl,
            entries: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    /// The owner of a live token, or `None` for an unknown or revoked one.
    pub async fn verify<C: ConnectionTrait>(
        &self,
        db: &C,
        token: &str,
    ) -> Result<Option<Verified>> {
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
        let key = hash(token);
        if let Some(hit) = self.cached(&key) {
            return Ok(Some(hit));
        }
        let found = api_token::Entity::find()
            .filter(api_token::Column::TokenHash.eq(key.as_str()))
            .filter(api_token::Column::RevokedAt.is_null())
            .one(db)
            .await?;
        let Some(found) = found else { return Ok(None) };
        let verified = Verified {
            token_id: found.id,
            tenant_id: found.tenant_id,
            user_id: found.user_id,
            roles: serde_json::from_value(found.roles).unwrap_or_default(),
        };
        if !self.ttl.is_zero()
            && let Ok(mut entries) = self.entries.lock()
        {
            if entries.len() >= CACHE_CAPACITY {
                entries.clear();
            }
            entries.insert(key, (std::time::Instant::now(), verified.clone()));
        }
        Ok(Some(verified))
    }

    fn cached(&self, key: &str) -> Option<Verified> {
        if self.ttl.is_zero() {
            return None;
        }
        let entries = self.entries.lock().ok()?;
        let (at, v) = entries.get(key)?;
        (at.elapsed() < self.ttl).then(|| v.clone())
    }
}
