//! Browser sessions: server-side rows, so that every kernel process sees a
//! sign-out or an admin's revocation at once, and so that the tenant's idle
//! timeout and absolute lifetime (HIPAA automatic logoff) hold everywhere.
//!
//! The cookie holds a random secret; the row holds its SHA-256 (as for API
//! keys, 256 random bits need no slow hash).

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set,
};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::tokens;
use crate::entities::{session, tenant};
use crate::error::{Error, Result};

/// The session cookie's name.
pub const COOKIE: &str = "trellis_session";

/// `last_seen_at` is written at most this often per session, so a busy
/// session does not write on every request; the idle timeout is therefore
/// exact to within this many seconds.
const TOUCH_EVERY_SECONDS: i64 = 30;

/// A new session: its row and the secret for the cookie.
pub struct Created {
    pub session: session::Model,
    pub secret: String,
}

pub async fn create<C: ConnectionTrait>(
    db: &C,
    t: &tenant::Model,
    user_id: Uuid,
    mfa_verified: bool,
    ip: Option<String>,
    user_agent: Option<String>,
) -> Result<Created> {
    let secret = tokens::generate_with_prefix("trs_");
    let now = crate::clock::now();
    let session = session::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(t.id),
        user_id: Set(user_id),
        token_hash: Set(tokens::hash(&secret)),
        mfa_verified: Set(mfa_verified),
        ip: Set(ip),
        user_agent: Set(user_agent),
        created_at: Set(now),
        last_seen_at: Set(now),
        expires_at: Set(now + TimeDelta::seconds(t.session_absolute_seconds)),
        revoked_at: Set(None),
    }
    .insert(db)
    .await?;
    Ok(Created { session, secret })
}

/// Why a session is not usable, if it is not.
fn check(s: &session::Model, t: &tenant::Model, now: DateTime<Utc>) -> Result<()> {
    if s.revoked_at.is_some() {
        return Err(Error::SessionExpired);
    }
    if s.expires_at <= now {
        return Err(Error::SessionExpired);
    }
    if s.last_seen_at + TimeDelta::seconds(t.session_idle_seconds) <= now {
        return Err(Error::SessionExpired);
    }
    Ok(())
}

/// The session row of a cookie secret, live or not.
pub async fn by_secret<C: ConnectionTrait>(db: &C, secret: &str) -> Result<session::Model> {
    session::Entity::find()
        .filter(session::Column::TokenHash.eq(tokens::hash(secret)))
        .one(db)
        .await?
        .ok_or(Error::Unauthenticated)
}

/// The session `id` of a tenant (for access tokens naming one), live or not.
pub async fn by_id<C: ConnectionTrait>(
    db: &C,
    tenant_id: Uuid,
    id: Uuid,
) -> Result<session::Model> {
    session::Entity::find_by_id(id)
        .filter(session::Column::TenantId.eq(tenant_id))
        .one(db)
        .await?
        .ok_or(Error::SessionExpired)
}

/// Fails unless the session is live under its tenant's timeouts; notes the
/// activity.
pub async fn validate<C: ConnectionTrait>(
    db: &C,
    s: &session::Model,
    t: &tenant::Model,
) -> Result<()> {
    let now = crate::clock::now();
    check(s, t, now)?;
    touch(db, s, now).await
}

async fn touch<C: ConnectionTrait>(db: &C, s: &session::Model, now: DateTime<Utc>) -> Result<()> {
    if (now - s.last_seen_at).num_seconds() >= TOUCH_EVERY_SECONDS {
        session::Entity::update_many()
            .col_expr(session::Column::LastSeenAt, Expr::value(now))
            .filter(session::Column::Id.eq(s.id))
            .exec(db)
            .await?;
    }
    Ok(())
}

pub async fn mark_mfa_verified<C: ConnectionTrait>(db: &C, id: Uuid) -> Result<()> {
    session::Entity::update_many()
        .col_expr(session::Column::MfaVerified, Expr::value(true))
        .filter(session::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

/// Revokes sessions of a tenant: one (`id`), or all of a user's. Returns
/// how many were live.
pub async fn revoke<C: ConnectionTrait>(
    db: &C,
    tenant_id: Uuid,
    user_id: Uuid,
    id: Option<Uuid>,
) -> Result<u64> {
    let mut q = session::Entity::update_many()
        .col_expr(session::Column::RevokedAt, Expr::value(crate::clock::now()))
        .filter(session::Column::TenantId.eq(tenant_id))
        .filter(session::Column::UserId.eq(user_id))
        .filter(session::Column::RevokedAt.is_null());
    if let Some(id) = id {
        q = q.filter(session::Column::Id.eq(id));
    }
    Ok(q.exec(db).await?.rows_affected)
}

/// A session as its owner or an admin sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionOut {
    pub id: Uuid,
    pub user_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub mfa_verified: bool,
    /// Whether this is the session of the request.
    pub current: bool,
}

/// A user's live sessions, newest first.
pub async fn list<C: ConnectionTrait>(
    db: &C,
    tenant_id: Uuid,
    user_id: Uuid,
    current: Option<Uuid>,
) -> Result<Vec<SessionOut>> {
    let rows = session::Entity::find()
        .filter(session::Column::TenantId.eq(tenant_id))
        .filter(session::Column::UserId.eq(user_id))
        .filter(session::Column::RevokedAt.is_null())
        .filter(session::Column::ExpiresAt.gt(crate::clock::now()))
        .order_by_desc(session::Column::CreatedAt)
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|s| SessionOut {
            current: Some(s.id) == current,
            id: s.id,
            user_id: s.user_id,
            created_at: s.created_at,
            last_seen_at: s.last_seen_at,
            expires_at: s.expires_at,
            ip: s.ip,
            user_agent: s.user_agent,
            mfa_verified: s.mfa_verified,
        })
        .collect())
}

/// The `Set-Cookie` value for a session (or for clearing it: `None`).
pub fn cookie(secret: Option<&str>, max_age: i64, secure: bool) -> String {
    let (value, age) = match secret {
        Some(s) => (s, max_age),
        None => ("", 0),
    };
    let mut c = format!("{COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={age}");
    if secure {
        c.push_str("; Secure");
    }
    c
}
