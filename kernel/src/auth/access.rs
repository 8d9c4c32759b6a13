//! Access tokens: short-lived JWTs signed with the newest signing key.
//!
//! Signing keys live in the database (private halves sealed with the master
//! key), so every kernel process signs and verifies with the same set. A
//! process reloads the set when it meets an unknown `kid` and at least every
//! minute, so a rotation on one process reaches the others without restarts.
//! Rotation keeps the previous key for verification (tokens it signed stay
//! valid until they expire) and retires the ones before it.

use std::sync::RwLock;
use std::time::{Duration, Instant};

use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, Set,
};
use uuid::Uuid;

use crate::auth::jwt::{self, Claims, KeyPair, Verifier};
use crate::config::Config;
use crate::entities::signing_key;
use crate::error::{Error, Result};
use crate::keys::Keyring;

const RELOAD_EVERY: Duration = Duration::from_secs(60);
/// Clock skew tolerated on `exp`.
const LEEWAY_SECONDS: u64 = 30;
const AAD: &str = "trellis:signing-key";

struct Loaded {
    current: KeyPair,
    verifier: Verifier,
    public: Vec<(String, [u8; 32])>,
    at: Instant,
}

pub struct AccessTokens {
    issuer: String,
    audience: String,
    lifetime_seconds: i64,
    loaded: RwLock<Option<Loaded>>,
}

impl AccessTokens {
    pub fn new(config: &Config) -> Self {
        AccessTokens {
            issuer: config.jwt_issuer.clone(),
            audience: config.jwt_audience.clone(),
            lifetime_seconds: config.access_token_seconds,
            loaded: RwLock::new(None),
        }
    }

    pub fn lifetime_seconds(&self) -> i64 {
        self.lifetime_seconds
    }

    /// Loads the live keys, creating the first one on a new database.
    pub async fn reload(&self, db: &DatabaseConnection, keyring: &Keyring) -> Result<()> {
        let mut rows = live_keys(db).await?;
        if rows.is_empty() {
            insert_new(db, keyring).await?;
            rows = live_keys(db).await?;
        }
        let mut verifier = Verifier::new(&self.issuer, &self.audience, LEEWAY_SECONDS);
        let mut public = Vec::new();
        let mut current = None;
        for row in &rows {
            let pk = decode_public(&row.public_key)?;
            verifier.add_key(&row.kid, &pk);
            public.push((row.kid.clone(), pk));
        }
        if let Some(newest) = rows.last() {
            let der = keyring.open(&newest.private_key, AAD)?;
            current = Some(KeyPair::from_parts(
                newest.kid.clone(),
                der,
                decode_public(&newest.public_key)?,
            ));
        }
        let current = current.ok_or_else(|| Error::Internal("no signing key".to_owned()))?;
        if let Ok(mut l) = self.loaded.write() {
            *l = Some(Loaded {
                current,
                verifier,
                public,
                at: Instant::now(),
            });
        }
        Ok(())
    }

    async fn fresh(&self, db: &DatabaseConnection, keyring: &Keyring) -> Result<()> {
        let stale = self
            .loaded
            .read()
            .map(|l| l.as_ref().is_none_or(|l| l.at.elapsed() > RELOAD_EVERY))
            .unwrap_or(true);
        if stale {
            self.reload(db, keyring).await?;
        }
        Ok(())
    }

    /// A new access token for a user, optionally bound to a browser session.
    pub async fn issue(
        &self,
        db: &DatabaseConnection,
        keyring: &Keyring,
        tenant_id: Uuid,
        user_id: Uuid,
        session_id: Option<Uuid>,
    ) -> Result<String> {
        self.fresh(db, keyring).await?;
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: user_id,
            tid: tenant_id,
            sid: session_id,
            iat: now,
            exp: now + self.lifetime_seconds,
            jti: Uuid::now_v7(),
        };
        let guard = self
            .loaded
            .read()
            .map_err(|_| Error::Internal("signing keys lock poisoned".to_owned()))?;
        let loaded = guard
            .as_ref()
            .ok_or_else(|| Error::Internal("no signing key".to_owned()))?;
        jwt::sign(&loaded.current, &claims).map_err(|e| Error::Internal(e.to_string()))
    }

    /// The claims of a valid token; any failure is a plain 401.
    pub async fn verify(
        &self,
        db: &DatabaseConnection,
        keyring: &Keyring,
        token: &str,
    ) -> Result<Claims> {
        self.fresh(db, keyring).await?;
        let first = self.verify_loaded(token)?;
        match first {
            Err(jwt::JwtError::UnknownKey) => {
                // Perhaps another process rotated: look once more.
                self.reload(db, keyring).await?;
                self.verify_loaded(token)?
                    .map_err(|_| Error::Unauthenticated)
            }
            other => other.map_err(|e| {
                tracing::debug!(error = %e, "access token rejected");
                Error::Unauthenticated
            }),
        }
    }

    fn verify_loaded(&self, token: &str) -> Result<std::result::Result<Claims, jwt::JwtError>> {
        let guard = self
            .loaded
            .read()
            .map_err(|_| Error::Internal("signing keys lock poisoned".to_owned()))?;
        let loaded = guard
            .as_ref()
            .ok_or_else(|| Error::Internal("no signing key".to_owned()))?;
        Ok(loaded.verifier.verify(token))
    }

    /// The public keys as a JWK set.
    pub fn jwks(&self) -> serde_json::Value {
        let keys: Vec<serde_json::Value> = self
            .loaded
            .read()
            .ok()
            .and_then(|l| {
                l.as_ref()
                    .map(|l| l.public.iter().map(|(kid, pk)| jwt::jwk(kid, pk)).collect())
            })
            .unwrap_or_default();
        serde_json::json!({ "keys": keys })
    }
}

/// Makes a new signing key the current one; keeps the previous one for
/// verification and retires older ones. Returns the new `kid`.
pub async fn rotate(db: &DatabaseConnection, keyring: &Keyring) -> Result<String> {
    let live = live_keys(db).await?;
    let kid = insert_new(db, keyring).await?;
    // Keep the newest previous key; retire the rest.
    if live.len() > 1 {
        let keep = live.last().map(|k| k.kid.clone()).unwrap_or_default();
        signing_key::Entity::update_many()
            .col_expr(
                signing_key::Column::RetiredAt,
                Expr::value(crate::clock::now()),
            )
            .filter(signing_key::Column::RetiredAt.is_null())
            .filter(signing_key::Column::Kid.ne(keep))
            .filter(signing_key::Column::Kid.ne(kid.clone()))
            .exec(db)
            .await?;
    }
    Ok(kid)
}

async fn live_keys(db: &DatabaseConnection) -> Result<Vec<signing_key::Model>> {
    Ok(signing_key::Entity::find()
        .filter(signing_key::Column::RetiredAt.is_null())
        .order_by_asc(signing_key::Column::CreatedAt)
        .order_by_asc(signing_key::Column::Kid)
        .all(db)
        .await?)
}

async fn insert_new(db: &DatabaseConnection, keyring: &Keyring) -> Result<String> {
    use base64::Engine;
    let pair = KeyPair::generate().map_err(|e| Error::Internal(e.to_string()))?;
    signing_key::ActiveModel {
        kid: Set(pair.kid.clone()),
        algorithm: Set("EdDSA".to_owned()),
        private_key: Set(keyring.seal(&pair.private_pkcs8_der, AAD)),
        public_key: Set(base64::engine::general_purpose::STANDARD.encode(pair.public_key)),
        created_at: Set(crate::clock::now()),
        retired_at: Set(None),
    }
    .insert(db)
    .await?;
    Ok(pair.kid.clone())
}

fn decode_public(b64: &str) -> Result<[u8; 32]> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .ok()
        .and_then(|v| <[u8; 32]>::try_from(v).ok())
        .ok_or_else(|| Error::Internal("malformed public signing key".to_owned()))
}
