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
