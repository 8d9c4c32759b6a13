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

use crate::cache::TtlCache;
use crate::entities::api_token;
use crate::error::Result;

/// Prefix that makes Trellis tokens recognisable to secret scanners.
const PREFIX: &str = "trl_";

/// A new random API key.
pub fn generate() -> String {
    generate_with_prefix(PREFIX)
}

/// A random secret of 256 bits with a prefix naming its kind (`trl_` API
/// key, `trs_` session, `trt_` one-time token, `trlop_` operator key).
pub fn generate_with_prefix(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// Whether a bearer credential is an API key (rather than an access
/// token). Keys the kernel generates start with `trl_`; a development token
/// chosen with `--dev-token` may be anything that is not shaped like a JWT
/// (three dot-separated parts).
pub fn is_api_key(credential: &str) -> bool {
    credential.starts_with(PREFIX) || credential.split('.').count() != 3
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
    store_key(db, tenant_id, user_id, name, token, roles, &[], None).await
}

/// Stores an API key: roles it acts with, scopes narrowing them
/// (`object:action`, `*` wildcards; empty = no narrowing) and an optional
/// expiry.
#[allow(clippy::too_many_arguments)]
pub async fn store_key<C: ConnectionTrait>(
    db: &C,
    tenant_id: Uuid,
    user_id: Uuid,
    name: &str,
    token: &str,
    roles: &[&str],
    scopes: &[String],
    expires_at: Option<chrono::DateTime<chrono::Utc>>,
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
        scopes: Set(serde_json::json!(scopes)),
        expires_at: Set(expires_at),
        last_used_at: Set(None),
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
    pub scopes: Vec<String>,
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Recently verified tokens, so that most requests authenticate without a
/// database round trip (measured: it is one of two queries of a get by id).
/// A revoked token keeps working on another process for at most the cache's
/// time to live (see [`crate::cache`]). Failed look-ups are not cached.
pub struct TokenCache {
    cache: TtlCache<String, Verified>,
}

impl TokenCache {
    pub fn new(ttl: std::time::Duration) -> Self {
        TokenCache {
            cache: TtlCache::new(ttl),
        }
    }

    /// The owner of a live token, or `None` for an unknown, revoked or
    /// expired one.
    pub async fn verify<C: ConnectionTrait>(
        &self,
        db: &C,
        token: &str,
    ) -> Result<Option<Verified>> {
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
        let key = hash(token);
        let found = match self.cache.get(&key) {
            Some(hit) => hit,
            None => {
                let Some(found) = api_token::Entity::find()
                    .filter(api_token::Column::TokenHash.eq(key.as_str()))
                    .filter(api_token::Column::RevokedAt.is_null())
                    .one(db)
                    .await?
                else {
                    return Ok(None);
                };
                let verified = Verified {
                    token_id: found.id,
                    tenant_id: found.tenant_id,
                    user_id: found.user_id,
                    roles: serde_json::from_value(found.roles).unwrap_or_default(),
                    scopes: serde_json::from_value(found.scopes).unwrap_or_default(),
                    expires_at: found.expires_at,
                };
                self.cache.insert(key, verified.clone());
                verified
            }
        };
        if found.expires_at.is_some_and(|e| e <= chrono::Utc::now()) {
            return Ok(None);
        }
        Ok(Some(found))
    }

    /// Forgets every cached token (after a revocation on this process).
    pub fn clear(&self) {
        self.cache.clear();
    }
}
