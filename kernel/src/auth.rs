//! Authentication: who a request comes from. API keys, access tokens
//! (JWT), browser sessions, passwords, MFA, login throttling, and the one
//! function every authenticated request passes, [`authenticate`].

pub mod access;
pub mod api_keys;
pub mod jwt;
pub mod login;
pub mod password;
pub mod sessions;
pub mod throttle;
pub mod tokens;
pub mod totp;

use uuid::Uuid;

use crate::AppState;
use crate::context::{ActorKind, Client, RequestContext};
use crate::directory::{roles, users};
use crate::error::{Error, Result};
use crate::tenancy::plans::Plan;

/// Resolves the caller of a request to a context, or fails with 401/403/429.
///
/// `allow_pending_mfa` admits a session that still has to pass MFA (for the
/// MFA endpoints themselves); every other route refuses it.
pub async fn authenticate(
    state: &AppState,
    client: &Client,
    allow_pending_mfa: bool,
) -> Result<RequestContext> {
    let db = &state.db;
    if let Some(bearer) = &client.bearer
        && bearer.starts_with(crate::tenancy::operators::PREFIX)
    {
        // An operator inside a tenant that granted it support access.
        return crate::tenancy::support::authenticate(state, client, bearer).await;
    }
    let (tenant_id, user_id, actor_kind, actor_id, key, scopes, session) =
        if let Some(bearer) = &client.bearer {
            if tokens::is_api_key(bearer) {
                let k = state
                    .tokens
                    .verify(db, bearer)
                    .await?
                    .ok_or(Error::Unauthenticated)?;
                (
                    k.tenant_id,
                    k.user_id,
                    ActorKind::ApiToken,
                    k.token_id,
                    Some((k.roles, k.expires_at)),
                    k.scopes,
                    None,
                )
            } else {
                let claims = state.access.verify(db, &state.keyring, bearer).await?;
                let session = match claims.sid {
                    Some(sid) => Some(sessions::by_id(db, claims.tid, sid).await?),
                    None => None,
                };
                (
                    claims.tid,
                    claims.sub,
                    ActorKind::User,
                    claims.sub,
                    None,
                    Vec::new(),
                    session,
                )
            }
        } else if let Some(secret) = &client.session_cookie {
            // Cookies ride along on cross-site requests; a browser names the
            // page that sent a request in `Origin`, which must be this site.
            // (SameSite=Lax already withholds the cookie from cross-site
            // POSTs in current browsers; this holds for older ones too.)
            if !client.safe_method
                && let Some(origin) = &client.origin_host
                && client.host.as_ref() != Some(origin)
            {
                return Err(Error::Forbidden(
                    "cross-site request refused: the Origin is not this site".to_owned(),
                ));
            }
            let s = sessions::by_secret(db, secret).await?;
            (
                s.tenant_id,
                s.user_id,
                ActorKind::User,
                s.user_id,
                None,
                Vec::new(),
                Some(s),
            )
        } else {
            return Err(Error::Unauthenticated);
        };

    let tenant = crate::crm::tenants::cached(state, tenant_id).await?;
    if let Some(s) = &session {
        sessions::validate(db, s, &tenant).await?;
    }
    if tenant.status != "active" {
        return Err(Error::TenantSuspended);
    }
    // A credential of one tenant is not valid on another tenant's domain.
    if let Some(host) = &client.host
        && let Some(owner) = crate::crm::tenants::by_host(state, host).await?
        && owner != tenant_id
    {
        return Err(Error::Unauthenticated);
    }
    let user = users::cached(state, tenant_id, user_id).await?;
    if user.status != "active" {
        return Err(Error::Unauthenticated);
    }
    let user_roles: Vec<String> = serde_json::from_value(user.roles.clone()).unwrap_or_default();
    // A key acts with the roles it was given *and* its owner still holds: a
    // demoted owner or a deleted role takes the rights away from the key.
    let (role_keys, credential_expires_at) = match key {
        Some((key_roles, expires_at)) => (
            key_roles
                .into_iter()
                .filter(|r| user_roles.contains(r))
                .collect(),
            expires_at,
        ),
        None => (user_roles, None),
    };
    let policy = roles::policy(state, tenant_id, &role_keys).await?;
    if let Some(s) = &session
        && !s.mfa_verified
        && !allow_pending_mfa
        && (user.mfa_enabled_at.is_some() || tenant.mfa_required || policy.mfa_required)
    {
        return Err(Error::MfaRequired(
            "this session must pass multi-factor authentication first",
        ));
    }
    let limits = Plan::parse(&tenant.plan)
        .map(Plan::limits)
        .unwrap_or_default();
    crate::tenancy::usage::hit_rate(db, tenant_id, limits.api_requests_per_minute).await?;
    Ok(RequestContext {
        tenant_id,
        user_id: Some(user_id),
        actor_kind,
        actor_id: Some(actor_id),
        roles: role_keys,
        policy,
        scopes,
        credential_expires_at,
        session_id: session.map(|s| s.id),
        request_id: client.request_id.clone(),
        ip: client.ip.clone(),
        user_agent: client.user_agent.clone(),
        limits,
        storage_used: tenant.storage_bytes,
        keyring: Some(state.keyring.clone()),
        plugins: state.plugins.clone(),
        plugin_depth: 0,
    })
}

/// Who started a background task (an import), kept with it so that
/// whichever process runs it acts with their rights, checked again then.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Acting {
    pub kind: ActorKind,
    pub user_id: Option<Uuid>,
    pub actor_id: Option<Uuid>,
    pub roles: Vec<String>,
    pub scopes: Vec<String>,
}

impl Acting {
    pub fn of(ctx: &RequestContext) -> Acting {
        Acting {
            kind: ctx.actor_kind,
            user_id: ctx.user_id,
            actor_id: ctx.actor_id,
            roles: ctx.roles.clone(),
            scopes: ctx.scopes.clone(),
        }
    }
}

/// The context of a background task started by `acting`: the tenant must
/// still be active and the user too, and the task keeps only the roles its
/// user still holds (a demoted user's import loses the rights with them).
pub async fn resume(state: &AppState, tenant_id: Uuid, acting: &Acting) -> Result<RequestContext> {
    let tenant = crate::crm::tenants::cached(state, tenant_id).await?;
    if tenant.status != "active" {
        return Err(Error::TenantSuspended);
    }
    let limits = Plan::parse(&tenant.plan)
        .map(Plan::limits)
        .unwrap_or_default();
    let mut ctx = match acting.user_id {
        None => RequestContext::system(tenant_id),
        Some(user_id) => {
            let user = users::cached(state, tenant_id, user_id).await?;
            if user.status != "active" {
                return Err(Error::Unauthenticated);
            }
            let held: Vec<String> = serde_json::from_value(user.roles.clone()).unwrap_or_default();
            let roles: Vec<String> = acting
                .roles
                .iter()
                .filter(|r| held.contains(r))
                .cloned()
                .collect();
            let policy = roles::policy(state, tenant_id, &roles).await?;
            let mut ctx = RequestContext::system(tenant_id);
            ctx.user_id = Some(user_id);
            ctx.actor_kind = acting.kind;
            ctx.actor_id = acting.actor_id;
            ctx.roles = roles;
            ctx.policy = policy;
            ctx.scopes = acting.scopes.clone();
            ctx
        }
    };
    ctx.limits = limits;
    ctx.storage_used = tenant.storage_bytes;
    ctx.keyring = Some(state.keyring.clone());
    ctx.plugins = state.plugins.clone();
    Ok(ctx)
}

/// The tenant a not-yet-authenticated request addresses: its hostname (a
/// reseller's custom domain), else the `X-Trellis-Tenant` header, else the
/// slug given in the body, else the default tenant.
pub async fn addressed_tenant(
    state: &AppState,
    client: &Client,
    slug: Option<&str>,
) -> Result<crate::entities::tenant::Model> {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    if let Some(host) = &client.host
        && let Some(id) = crate::crm::tenants::by_host(state, host).await?
    {
        return crate::crm::tenants::cached(state, id).await;
    }
    let slug = client
        .tenant_header
        .as_deref()
        .or(slug)
        .unwrap_or(crate::crm::tenants::DEFAULT_SLUG);
    crate::entities::tenant::Entity::find()
        .filter(crate::entities::tenant::Column::Slug.eq(slug))
        .one(&state.db)
        .await?
        .ok_or(Error::InvalidCredentials)
}

/// The id of a user, for callers that must have one.
pub fn user_of(ctx: &RequestContext) -> Result<Uuid> {
    ctx.user_id.ok_or(Error::Unauthenticated)
}
