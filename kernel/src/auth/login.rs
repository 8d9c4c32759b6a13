//! Signing in and out, MFA enrolment, password reset and invitation
//! acceptance.
//!
//! Login answers "wrong email or password" the same way for an unknown
//! email and a wrong password, and spends the same argon2 time on both.
//! Failures count per account and per IP address (see [`super::throttle`]);
//! a locked key answers 429 before any password is checked. Every attempt,
//! failed or not, is audited.

use chrono::TimeDelta;
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::AppState;
use crate::audit::{self, AuditAction, AuditEntry};
use crate::auth::{password, sessions, throttle, tokens, totp};
use crate::context::{ActorKind, Client, RequestContext};
use crate::directory::users::{self, UserOut};
use crate::entities::{mfa_recovery_code, one_time_token, tenant, user};
use crate::error::{Error, Result};
use crate::permissions::ObjectType;

/// How long a password-reset link stays valid.
pub const RESET_MINUTES: i64 = 60;
const RECOVERY_CODES: usize = 10;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
    /// The tenant's slug, when neither the hostname nor `X-Trellis-Tenant` names it.
    pub tenant: Option<String>,
    /// A current TOTP code, for users with MFA.
    pub code: Option<String>,
    /// A recovery code instead of `code`.
    pub recovery_code: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    pub session_id: Uuid,
    /// A short-lived bearer token for the API; absent until MFA is set up
    /// where it is required.
    pub access_token: Option<String>,
    pub token_type: &'static str,
    pub expires_in: i64,
    /// MFA is required for this user but not set up: only the MFA
    /// endpoints accept the session until it is.
    pub mfa_enrolment_required: bool,
    pub user: UserOut,
}

/// The result of a login: the response and the session secret for the cookie.
pub struct LoggedIn {
    pub response: LoginResponse,
    pub secret: String,
    pub max_age: i64,
}

fn audit_ctx(t: &tenant::Model, client: &Client, user_id: Option<Uuid>) -> RequestContext {
    let mut ctx = RequestContext::anonymous(t.id, client);
    if let Some(id) = user_id {
        ctx.actor_kind = ActorKind::User;
        ctx.actor_id = Some(id);
        ctx.user_id = Some(id);
    }
    ctx
}

/// One login attempt: where it came from and which throttle keys it counts on.
struct Attempt<'a> {
    state: &'a AppState,
    tenant: &'a tenant::Model,
    client: &'a Client,
    keys: Vec<String>,
    email: String,
}

impl Attempt<'_> {
    /// Counts a failure on every key, audits it, and returns `err`.
    async fn failed(&self, user_id: Option<Uuid>, reason: &str, err: Error) -> Result<LoggedIn> {
        let c = &self.state.config;
        for key in &self.keys {
            let max = if key.starts_with("ip:") {
                c.login_max_failures_per_ip
            } else {
                c.login_max_failures
            };
            throttle::fail(&self.state.db, c, key, max).await?;
        }
        audit::record(
            &self.state.db,
            &audit_ctx(self.tenant, self.client, None),
            vec![AuditEntry::new(
                ObjectType::User,
                user_id.unwrap_or(Uuid::nil()),
                AuditAction::LoginFailed,
                json!({"email": self.email, "reason": reason}),
            )],
        )
        .await?;
        Err(err)
    }
}

pub async fn login(state: &AppState, client: &Client, req: LoginRequest) -> Result<LoggedIn> {
    let t = crate::auth::addressed_tenant(state, client, req.tenant.as_deref()).await?;
    if t.status != "active" {
        return Err(Error::TenantSuspended);
    }
    let email = req.email.trim().to_lowercase();
    let mut keys = vec![throttle::account_key(t.id, &email)];
    if let Some(ip) = &client.ip {
        keys.push(throttle::ip_key(ip));
    }
    throttle::check(&state.db, &keys).await?;
    let mut attempt = Attempt {
        state,
        tenant: &t,
        client,
        keys: keys.clone(),
        email: email.clone(),
    };
    let found = user::Entity::find()
        .filter(user::Column::TenantId.eq(t.id))
        .filter(user::Column::Email.eq(email.as_str()))
        .one(&state.db)
        .await?;
    let params = state.config.password;
    let u = match found {
        Some(u) if u.status == "active" && u.password_hash.is_some() => u,
        other => {
            password::burn(&params, &req.password);
            return attempt
                .failed(
                    other.map(|u| u.id),
                    "unknown user or no password",
                    Error::InvalidCredentials,
                )
                .await;
        }
    };
    let hash = u.password_hash.clone().unwrap_or_default();
    let pw = req.password.clone();
    let ok = tokio::task::spawn_blocking(move || password::verify(&pw, &hash))
        .await
        .map_err(|e| Error::Internal(e.to_string()))?;
    if !ok {
        return attempt
            .failed(Some(u.id), "wrong password", Error::InvalidCredentials)
            .await;
    }
    // The password is right; a second factor may still be due.
    let mut mfa_verified = false;
    if let Some(sealed) = u
        .totp_secret
        .as_ref()
        .filter(|_| u.mfa_enabled_at.is_some())
    {
        let mfa_keys = [throttle::mfa_key(u.id)];
        throttle::check(&state.db, &mfa_keys).await?;
        let passed = match (&req.code, &req.recovery_code) {
            (Some(code), _) => {
                let secret = state.keyring.open(sealed, &totp_aad(&u))?;
                match totp::verify(&secret, code.trim(), chrono::Utc::now().timestamp() as u64) {
                    Some(step) => claim_step(&state.db, &u, step).await?,
                    None => false,
                }
            }
            (None, Some(rc)) => use_recovery_code(&state.db, &u, rc).await?,
            (None, None) => {
                // Counted like a failure: otherwise this answer would be an
                // unthrottled oracle for whether a guessed password is right.
                // A successful sign-in resets the count.
                return attempt
                    .failed(
                        Some(u.id),
                        "password without MFA code",
                        Error::MfaRequired("send `code` (or `recovery_code`) with the password"),
                    )
                    .await;
            }
        };
        if !passed {
            attempt.keys.extend(mfa_keys);
            return attempt
                .failed(
                    Some(u.id),
                    "wrong MFA code",
                    Error::MfaRequired("the MFA code is wrong"),
                )
                .await;
        }
        throttle::reset(&state.db, &throttle::mfa_key(u.id)).await?;
        mfa_verified = true;
    }
    throttle::reset(&state.db, &keys[0]).await?;
    let roles: Vec<String> = serde_json::from_value(u.roles.clone()).unwrap_or_default();
    let policy = crate::directory::roles::policy(state, t.id, &roles).await?;
    let enrolment_due = !mfa_verified && (t.mfa_required || policy.mfa_required);

    if password::needs_rehash(&params, u.password_hash.as_deref().unwrap_or_default()) {
        let pw = req.password.clone();
        let new = tokio::task::spawn_blocking(move || password::hash(&params, &pw))
            .await
            .map_err(|e| Error::Internal(e.to_string()))?
            .map_err(|e| Error::Internal(e.to_string()))?;
        user::Entity::update_many()
            .col_expr(user::Column::PasswordHash, Expr::value(new))
            .filter(user::Column::Id.eq(u.id))
            .exec(&state.db)
            .await?;
    }
    let tx = crate::db::write_tx(&state.db).await?;
    let created = sessions::create(
        &tx,
        &t,
        u.id,
        mfa_verified,
        client.ip.clone(),
        client.user_agent.clone(),
    )
    .await?;
    user::Entity::update_many()
        .col_expr(user::Column::LastLoginAt, Expr::value(crate::clock::now()))
        .filter(user::Column::Id.eq(u.id))
        .exec(&tx)
        .await?;
    let mut ctx = audit_ctx(&t, client, Some(u.id));
    ctx.session_id = Some(created.session.id);
    audit::write(
        &tx,
        &ctx,
        vec![AuditEntry::new(
            ObjectType::User,
            u.id,
            AuditAction::Login,
            json!({"session_id": created.session.id, "mfa": mfa_verified}),
        )],
    )
    .await?;
    tx.commit().await?;
    state.caches.users.remove(&u.id);
    let access_token = if enrolment_due {
        None
    } else {
        Some(
            state
                .access
                .issue(
                    &state.db,
                    &state.keyring,
                    t.id,
                    u.id,
                    Some(created.session.id),
                )
                .await?,
        )
    };
    Ok(LoggedIn {
        response: LoginResponse {
            session_id: created.session.id,
            access_token,
            token_type: "Bearer",
            expires_in: state.access.lifetime_seconds(),
            mfa_enrolment_required: enrolment_due,
            user: users::out(&u),
        },
        secret: created.secret,
        max_age: t.session_absolute_seconds,
    })
}

/// Accepts a TOTP time step once only (RFC 6238 section 5.2): a code seen
/// on the wire cannot be replayed within its window. The conditional
/// update makes two concurrent uses of one code fail but one.
async fn claim_step<C: ConnectionTrait>(db: &C, u: &user::Model, step: u64) -> Result<bool> {
    let step = step as i64;
    let claimed = user::Entity::update_many()
        .col_expr(user::Column::TotpLastStep, Expr::value(step))
        .filter(user::Column::Id.eq(u.id))
        .filter(
            sea_orm::Condition::any()
                .add(user::Column::TotpLastStep.is_null())
                .add(user::Column::TotpLastStep.lt(step)),
        )
        .exec(db)
        .await?;
    Ok(claimed.rows_affected == 1)
}

fn totp_aad(u: &user::Model) -> String {
    format!("trellis:totp:{}", u.id)
}

async fn use_recovery_code<C: ConnectionTrait>(
    db: &C,
    u: &user::Model,
    code: &str,
) -> Result<bool> {
    let hash = tokens::hash(&totp::normalize_recovery_code(code));
    let used = mfa_recovery_code::Entity::update_many()
        .col_expr(
            mfa_recovery_code::Column::UsedAt,
            Expr::value(crate::clock::now()),
        )
        .filter(mfa_recovery_code::Column::TenantId.eq(u.tenant_id))
        .filter(mfa_recovery_code::Column::UserId.eq(u.id))
        .filter(mfa_recovery_code::Column::CodeHash.eq(hash))
        .filter(mfa_recovery_code::Column::UsedAt.is_null())
        .exec(db)
        .await?;
    Ok(used.rows_affected == 1)
}

/// Ends the caller's session (if the request carries one).
pub async fn logout(state: &AppState, ctx: &RequestContext) -> Result<()> {
    let user_id = crate::auth::user_of(ctx)?;
    let tx = crate::db::write_tx(&state.db).await?;
    if let Some(sid) = ctx.session_id {
        sessions::revoke(&tx, ctx.tenant_id, user_id, Some(sid)).await?;
    }
    audit::write(
        &tx,
        ctx,
        vec![AuditEntry::new(
            ObjectType::Session,
            ctx.session_id.unwrap_or(user_id),
            AuditAction::Logout,
            json!({}),
        )],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Revokes sessions of `user_id` (one, or all) and audits it.
pub async fn revoke_sessions(
    state: &AppState,
    ctx: &RequestContext,
    user_id: Uuid,
    id: Option<Uuid>,
) -> Result<u64> {
    let tx = crate::db::write_tx(&state.db).await?;
    let n = sessions::revoke(&tx, ctx.tenant_id, user_id, id).await?;
    if id.is_some() && n == 0 {
        return Err(Error::NotFound("session"));
    }
    audit::write(
        &tx,
        ctx,
        vec![AuditEntry::new(
            ObjectType::Session,
            id.unwrap_or(user_id),
            AuditAction::Revoke,
            json!({"user_id": user_id, "sessions": n}),
        )],
    )
    .await?;
    tx.commit().await?;
    Ok(n)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Enrolment {
    /// The secret in base32, for manual entry.
    pub secret: String,
    /// `otpauth://` URI for authenticator apps (render as a QR code).
    pub provisioning_uri: String,
}

/// Starts MFA enrolment: a new secret, stored sealed, not yet active.
pub async fn mfa_enroll(state: &AppState, ctx: &RequestContext) -> Result<Enrolment> {
    let u = users::load(&state.db, ctx, crate::auth::user_of(ctx)?).await?;
    if u.mfa_enabled_at.is_some() {
        return Err(Error::Conflict {
            code: "mfa_already_enabled",
            message: "MFA is already enabled for this user".to_owned(),
        });
    }
    let secret = totp::generate_secret();
    let t = crate::crm::tenants::cached(state, ctx.tenant_id).await?;
    let product = crate::web::branding(state, &t).await.product_name;
    let uri = totp::provisioning_uri(&secret, &format!("{product} ({})", t.name), &u.email);
    let sealed = state.keyring.seal(&secret, &totp_aad(&u));
    let mut a: user::ActiveModel = u.into();
    a.totp_secret = Set(Some(sealed));
    a.update(&state.db).await?;
    Ok(Enrolment {
        secret: base32_of(&secret),
        provisioning_uri: uri,
    })
}

fn base32_of(secret: &[u8]) -> String {
    // The URI carries the same value; take it from there to keep one encoder.
    totp::provisioning_uri(secret, "x", "x")
        .split("secret=")
        .nth(1)
        .and_then(|rest| rest.split('&').next())
        .unwrap_or_default()
        .to_owned()
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeRequest {
    pub code: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Activated {
    /// Single-use codes for when the authenticator is lost; shown once.
    pub recovery_codes: Vec<String>,
    /// An access token, now that the session has passed MFA.
    pub access_token: Option<String>,
}

/// Confirms enrolment with a first code: MFA is on from now, the session
/// counts as verified, and recovery codes are issued (hashes stored).
pub async fn mfa_activate(state: &AppState, ctx: &RequestContext, code: &str) -> Result<Activated> {
    let user_id = crate::auth::user_of(ctx)?;
    let u = users::load(&state.db, ctx, user_id).await?;
    let sealed = u.totp_secret.clone().ok_or(Error::Conflict {
        code: "mfa_not_enrolled",
        message: "start enrolment first (POST /api/v1/auth/mfa/enroll)".to_owned(),
    })?;
    if u.mfa_enabled_at.is_some() {
        return Err(Error::Conflict {
            code: "mfa_already_enabled",
            message: "MFA is already enabled for this user".to_owned(),
        });
    }
    let key = [throttle::mfa_key(user_id)];
    throttle::check(&state.db, &key).await?;
    let secret = state.keyring.open(&sealed, &totp_aad(&u))?;
    let step = totp::verify(&secret, code.trim(), chrono::Utc::now().timestamp() as u64);
    let fresh = match step {
        Some(step) => claim_step(&state.db, &u, step).await?,
        None => false,
    };
    if !fresh {
        throttle::fail(
            &state.db,
            &state.config,
            &key[0],
            state.config.login_max_failures,
        )
        .await?;
        return Err(Error::field(
            "code",
            "invalid_code",
            "the code does not match",
        ));
    }
    let codes = totp::generate_recovery_codes(RECOVERY_CODES);
    let tx = crate::db::write_tx(&state.db).await?;
    for c in &codes {
        mfa_recovery_code::ActiveModel {
            id: Set(Uuid::now_v7()),
            tenant_id: Set(ctx.tenant_id),
            user_id: Set(user_id),
            code_hash: Set(tokens::hash(&totp::normalize_recovery_code(c))),
            used_at: Set(None),
        }
        .insert(&tx)
        .await?;
    }
    let mut a: user::ActiveModel = u.into();
    a.mfa_enabled_at = Set(Some(crate::clock::now()));
    a.update(&tx).await?;
    if let Some(sid) = ctx.session_id {
        sessions::mark_mfa_verified(&tx, sid).await?;
    }
    audit::write(
        &tx,
        ctx,
        vec![AuditEntry::new(
            ObjectType::User,
            user_id,
            AuditAction::Update,
            json!({"mfa_enabled": {"before": false, "after": true}}),
        )],
    )
    .await?;
    tx.commit().await?;
    state.caches.users.remove(&user_id);
    let access_token = match ctx.session_id {
        Some(sid) => Some(
            state
                .access
                .issue(&state.db, &state.keyring, ctx.tenant_id, user_id, Some(sid))
                .await?,
        ),
        None => None,
    };
    Ok(Activated {
        recovery_codes: codes,
        access_token,
    })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetRequest {
    pub email: String,
    pub tenant: Option<String>,
}

/// Queues a reset link if the account exists; answers the same either way.
pub async fn request_reset(state: &AppState, client: &Client, req: ResetRequest) -> Result<()> {
    let Ok(t) = crate::auth::addressed_tenant(state, client, req.tenant.as_deref()).await else {
        return Ok(());
    };
    let email = req.email.trim().to_lowercase();
    let Some(u) = user::Entity::find()
        .filter(user::Column::TenantId.eq(t.id))
        .filter(user::Column::Email.eq(email.as_str()))
        .filter(user::Column::Status.eq("active"))
        .one(&state.db)
        .await?
    else {
        return Ok(());
    };
    let tx = crate::db::write_tx(&state.db).await?;
    let token = users::issue_one_time(&tx, &u, "reset", TimeDelta::minutes(RESET_MINUTES)).await?;
    let brand = crate::web::branding(state, &t).await;
    users::send(
        &tx,
        t.id,
        &u.email,
        &format!("Reset your {} password", brand.product_name),
        &format!(
            "Someone asked to reset your password. If it was you, follow this link within {RESET_MINUTES} minutes:\n{}/reset-password?token={token}\nOtherwise ignore this email.\n{}",
            brand.base_url,
            brand.signature()
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPassword {
    pub token: String,
    pub password: String,
}

/// Sets a password with a single-use token (`reset` or `invite`); ends
/// the user's other sessions.
pub async fn redeem(
    state: &AppState,
    client: &Client,
    purpose: &str,
    req: SetPassword,
) -> Result<()> {
    password::check_policy(&req.password).map_err(|m| Error::field("password", "too_weak", m))?;
    let params = state.config.password;
    let pw = req.password.clone();
    let hash = tokio::task::spawn_blocking(move || password::hash(&params, &pw))
        .await
        .map_err(|e| Error::Internal(e.to_string()))?
        .map_err(|e| Error::Internal(e.to_string()))?;
    let tx = crate::db::write_tx(&state.db).await?;
    let now = crate::clock::now();
    let t = one_time_token::Entity::find()
        .filter(one_time_token::Column::TokenHash.eq(tokens::hash(req.token.trim())))
        .filter(one_time_token::Column::Purpose.eq(purpose))
        .one(&tx)
        .await?
        .ok_or(Error::InvalidToken("the link is invalid"))?;
    if t.used_at.is_some() {
        return Err(Error::InvalidToken("the link was already used"));
    }
    if t.expires_at <= now {
        return Err(Error::InvalidToken("the link has expired"));
    }
    // Conditional on `used_at` still being empty: two concurrent uses
    // cannot both pass.
    let claimed = one_time_token::Entity::update_many()
        .col_expr(one_time_token::Column::UsedAt, Expr::value(now))
        .filter(one_time_token::Column::Id.eq(t.id))
        .filter(one_time_token::Column::UsedAt.is_null())
        .exec(&tx)
        .await?;
    if claimed.rows_affected != 1 {
        return Err(Error::InvalidToken("the link was already used"));
    }
    let mut u = user::Entity::find_by_id(t.user_id)
        .filter(user::Column::TenantId.eq(t.tenant_id))
        .one(&tx)
        .await?
        .ok_or(Error::InvalidToken("the link is invalid"))?;
    if u.status == "disabled" {
        return Err(Error::InvalidToken("the account is disabled"));
    }
    let mut a: user::ActiveModel = u.clone().into();
    a.password_hash = Set(Some(hash));
    if purpose == "invite" {
        a.status = Set("active".to_owned());
    }
    u = a.update(&tx).await?;
    sessions::revoke(&tx, u.tenant_id, u.id, None).await?;
    let mut ctx = RequestContext::anonymous(u.tenant_id, client);
    ctx.actor_kind = ActorKind::User;
    ctx.actor_id = Some(u.id);
    audit::write(
        &tx,
        &ctx,
        vec![AuditEntry::new(
            ObjectType::User,
            u.id,
            AuditAction::Update,
            json!({"password": "changed", "via": purpose}),
        )],
    )
    .await?;
    tx.commit().await?;
    state.caches.users.remove(&u.id);
    Ok(())
}

/// Sets a user's password from the server's command line (bootstrap and
/// recovery); the user's sessions end.
pub async fn set_password(state: &AppState, tenant_id: Uuid, email: &str, new: &str) -> Result<()> {
    password::check_policy(new).map_err(|m| Error::field("password", "too_weak", m))?;
    let hash =
        password::hash(&state.config.password, new).map_err(|e| Error::Internal(e.to_string()))?;
    let tx = crate::db::write_tx(&state.db).await?;
    let u = user::Entity::find()
        .filter(user::Column::TenantId.eq(tenant_id))
        .filter(user::Column::Email.eq(email.trim().to_lowercase()))
        .one(&tx)
        .await?
        .ok_or(Error::NotFound("user"))?;
    let id = u.id;
    let mut a: user::ActiveModel = u.into();
    a.password_hash = Set(Some(hash));
    a.status = Set("active".to_owned());
    a.update(&tx).await?;
    sessions::revoke(&tx, tenant_id, id, None).await?;
    audit::write(
        &tx,
        &RequestContext::system(tenant_id),
        vec![AuditEntry::new(
            ObjectType::User,
            id,
            AuditAction::Update,
            json!({"password": "changed", "via": "cli"}),
        )],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
