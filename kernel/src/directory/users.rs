//! The users of a tenant: invitations (within the plan's user limit), role
//! assignments and deactivation. Every change is audited; a change of roles
//! or status drops the user's cached state on this process at once.

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, Set,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::AppState;
use crate::audit::{self, AuditAction, AuditEntry};
use crate::auth::{sessions, tokens};
use crate::context::RequestContext;
use crate::entities::{one_time_token, outbox, user};
use crate::error::{Error, Result};
use crate::permissions::{Action, ObjectType};

/// How long an invitation stays valid.
pub const INVITATION_DAYS: i64 = 7;

/// A user of the caller's tenant, through the process cache.
pub async fn cached(state: &AppState, tenant_id: Uuid, id: Uuid) -> Result<user::Model> {
    if let Some(u) = state
        .caches
        .users
        .get(&id)
        .filter(|u| u.tenant_id == tenant_id)
    {
        return Ok(u);
    }
    let u = user::Entity::find_by_id(id)
        .filter(user::Column::TenantId.eq(tenant_id))
        .one(&state.db)
        .await?
        .ok_or(Error::Unauthenticated)?;
    state.caches.users.insert(id, u.clone());
    Ok(u)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserOut {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    /// `invited`, `active` or `disabled`.
    pub status: String,
    pub roles: Vec<String>,
    pub mfa_enabled: bool,
    pub last_login_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

pub fn out(u: &user::Model) -> UserOut {
    UserOut {
        id: u.id,
        email: u.email.clone(),
        name: u.name.clone(),
        status: u.status.clone(),
        roles: serde_json::from_value(u.roles.clone()).unwrap_or_default(),
        mfa_enabled: u.mfa_enabled_at.is_some(),
        last_login_at: u.last_login_at,
        created_at: u.created_at,
    }
}

pub async fn list(db: &DatabaseConnection, ctx: &RequestContext) -> Result<Vec<UserOut>> {
    ctx.require(ObjectType::User, Action::Read)?;
    Ok(user::Entity::find()
        .filter(user::Column::TenantId.eq(ctx.tenant_id))
        .order_by_asc(user::Column::Email)
        .all(db)
        .await?
        .iter()
        .map(out)
        .collect())
}

pub async fn load<C: ConnectionTrait>(
    db: &C,
    ctx: &RequestContext,
    id: Uuid,
) -> Result<user::Model> {
    user::Entity::find_by_id(id)
        .filter(user::Column::TenantId.eq(ctx.tenant_id))
        .one(db)
        .await?
        .ok_or(Error::NotFound("user"))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Invitation {
    pub email: String,
    pub name: String,
    pub roles: Vec<String>,
}

fn check_email(email: &str) -> Result<String> {
    let e = email.trim().to_lowercase();
    let valid = e.len() <= 254
        && e.split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !d.starts_with('.'));
    if valid {
        Ok(e)
    } else {
        Err(Error::field(
            "email",
            "invalid_format",
            "not an email address",
        ))
    }
}

/// Invites a user: a row in state `invited`, and an email in the outbox with
/// a single-use link to choose a password.
pub async fn invite(state: &AppState, ctx: &RequestContext, input: Invitation) -> Result<UserOut> {
    ctx.require(ObjectType::User, Action::ManageSettings)?;
    let email = check_email(&input.email)?;
    if input.name.trim().is_empty() {
        return Err(Error::field("name", "required", "a user needs a name"));
    }
    let tx = crate::db::tenant_tx(&state.db, ctx).await?;
    crate::directory::roles::check_exist(&tx, ctx.tenant_id, &input.roles, "roles").await?;
    crate::directory::roles::check_grantable(ctx, &input.roles, "roles")?;
    // Counted under a lock so two processes cannot both take the last seat.
    crate::db::lock_scope(&tx, ctx.tenant_id, "users").await?;
    if let Some(max) = ctx.limits.users {
        let seats = user::Entity::find()
            .filter(user::Column::TenantId.eq(ctx.tenant_id))
            .filter(user::Column::Status.ne("disabled"))
            .count(&tx)
            .await? as i64;
        if seats >= max {
            return Err(Error::PlanLimit {
                limit: "users",
                max,
            });
        }
    }
    let u = user::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(ctx.tenant_id),
        email: Set(email.clone()),
        name: Set(input.name.trim().to_owned()),
        created_at: Set(crate::clock::now()),
        password_hash: Set(None),
        status: Set("invited".to_owned()),
        roles: Set(json!(input.roles)),
        totp_secret: Set(None),
        mfa_enabled_at: Set(None),
        last_login_at: Set(None),
        totp_last_step: Set(None),
    }
    .insert(&tx)
    .await
    .map_err(|e| {
        if crate::db::is_unique_violation(&e) {
            Error::field("email", "not_unique", "a user with this email exists")
        } else {
            e.into()
        }
    })?;
    let token = issue_one_time(&tx, &u, "invite", TimeDelta::days(INVITATION_DAYS)).await?;
    let tenant = crate::crm::tenants::cached(state, ctx.tenant_id).await?;
    let brand = crate::web::branding(state, &tenant).await;
    send(
        &tx,
        ctx.tenant_id,
        &email,
        &format!("You are invited to {}", brand.product_name),
        &format!(
            "Hello {},\n\nYou have been invited to {} ({}). Choose your password here (valid {INVITATION_DAYS} days):\n{}/accept-invitation?token={token}\n{}",
            u.name,
            brand.product_name,
            tenant.name,
            brand.base_url,
            brand.signature()
        ),
    )
    .await?;
    audit::write(
        &tx,
        ctx,
        vec![AuditEntry::new(
            ObjectType::User,
            u.id,
            AuditAction::Create,
            json!({"after": out(&u)}),
        )],
    )
    .await?;
    tx.commit().await?;
    Ok(out(&u))
}

/// A single-use token for `purpose`; only its hash is stored.
pub async fn issue_one_time<C: ConnectionTrait>(
    db: &C,
    u: &user::Model,
    purpose: &str,
    valid_for: TimeDelta,
) -> Result<String> {
    let token = tokens::generate_with_prefix("trt_");
    let now = crate::clock::now();
    one_time_token::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(u.tenant_id),
        user_id: Set(u.id),
        purpose: Set(purpose.to_owned()),
        token_hash: Set(tokens::hash(&token)),
        created_at: Set(now),
        expires_at: Set(now + valid_for),
        used_at: Set(None),
    }
    .insert(db)
    .await?;
    Ok(token)
}

/// Queues an email (the outbox is sent by the email integration).
pub async fn send<C: ConnectionTrait>(
    db: &C,
    tenant_id: Uuid,
    to: &str,
    subject: &str,
    body: &str,
) -> Result<()> {
    outbox::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(tenant_id),
        recipient: Set(to.to_owned()),
        subject: Set(subject.to_owned()),
        body: Set(body.to_owned()),
        created_at: Set(crate::clock::now()),
        sent_at: Set(None),
    }
    .insert(db)
    .await?;
    Ok(())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    pub name: Option<String>,
    pub roles: Option<Vec<String>>,
    /// `active` or `disabled`. Disabling ends the user's sessions.
    pub status: Option<String>,
}

pub async fn update(
    state: &AppState,
    ctx: &RequestContext,
    id: Uuid,
    patch: UserPatch,
) -> Result<UserOut> {
    ctx.require(ObjectType::User, Action::ManageSettings)?;
    let tx = crate::db::tenant_tx(&state.db, ctx).await?;
    let u = load(&tx, ctx, id).await?;
    let before = json!(out(&u));
    let mut a: user::ActiveModel = u.clone().into();
    if let Some(name) = patch.name {
        if name.trim().is_empty() {
            return Err(Error::field("name", "required", "a user needs a name"));
        }
        a.name = Set(name.trim().to_owned());
    }
    if let Some(roles) = patch.roles {
        crate::directory::roles::check_exist(&tx, ctx.tenant_id, &roles, "roles").await?;
        let held: Vec<String> = serde_json::from_value(u.roles.clone()).unwrap_or_default();
        let changed: Vec<String> = roles
            .iter()
            .filter(|r| !held.contains(r))
            .chain(held.iter().filter(|r| !roles.contains(r)))
            .cloned()
            .collect();
        crate::directory::roles::check_grantable(ctx, &changed, "roles")?;
        if ctx.user_id == Some(id)
            && !roles.iter().any(|r| r == "admin")
            && ctx.roles.iter().any(|r| r == "admin")
        {
            return Err(Error::Conflict {
                code: "last_admin_guard",
                message: "you cannot take the admin role from yourself".to_owned(),
            });
        }
        a.roles = Set(json!(roles));
    }
    let mut ended = false;
    if let Some(status) = patch.status {
        match status.as_str() {
            "active" if u.status == "invited" => {
                return Err(Error::field(
                    "status",
                    "invalid_value",
                    "an invited user becomes active by accepting the invitation",
                ));
            }
            "active" => {}
            "disabled" => ended = true,
            _ => {
                return Err(Error::field(
                    "status",
                    "invalid_value",
                    "use `active` or `disabled`",
                ));
            }
        }
        a.status = Set(status);
    }
    let saved = a.update(&tx).await?;
    if ended {
        sessions::revoke(&tx, ctx.tenant_id, id, None).await?;
    }
    audit::write(
        &tx,
        ctx,
        vec![AuditEntry::new(
            ObjectType::User,
            id,
            AuditAction::Update,
            audit::diff(&before, &json!(out(&saved))),
        )],
    )
    .await?;
    tx.commit().await?;
    state.caches.users.remove(&id);
    state.tokens.clear();
    Ok(out(&saved))
}
