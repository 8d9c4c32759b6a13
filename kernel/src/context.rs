//! The request context: who is calling, for which tenant, with which
//! permissions.
//!
//! Every handler takes a [`RequestContext`] and every service takes it on to
//! the database, where each query on tenant data is built from
//! `ctx.tenant_id`. There is no other way to reach a service from HTTP.
//!
//! A caller authenticates with one of: an API key (`Authorization: Bearer
//! trl_...`), a short-lived access token (`Authorization: Bearer <JWT>`), or
//! a browser session cookie. Then, in order: the tenant must be active, the
//! request must fit the plan's rate, and the caller's roles resolve to a
//! [`Policy`].

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header::{AUTHORIZATION, COOKIE, USER_AGENT};
use axum::http::request::Parts;
use serde::Serialize;
use uuid::Uuid;

use crate::AppState;
use crate::auth::sessions;
use crate::error::{Error, Result};
use crate::permissions::Policy;
use crate::tenancy::plans::Limits;

/// Who acts: recorded in the audit trail with every write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    User,
    ApiToken,
    /// A platform or reseller administrator.
    Operator,
    /// Someone not signed in (failed logins, password resets).
    Anonymous,
    /// The kernel itself (migrations, seeding, the CLI).
    System,
    /// A plugin acting for the tenant (hooks, jobs, routes).
    Plugin,
}

impl ActorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::User => "user",
            ActorKind::ApiToken => "api_token",
            ActorKind::Operator => "operator",
            ActorKind::Anonymous => "anonymous",
            ActorKind::Plugin => "plugin",
            ActorKind::System => "system",
        }
    }
}

/// The caller of one request.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub tenant_id: Uuid,
    /// The user acting (directly or through their key), if any.
    pub user_id: Option<Uuid>,
    pub actor_kind: ActorKind,
    /// The key, user or operator id recorded as the actor.
    pub actor_id: Option<Uuid>,
    pub roles: Vec<String>,
    /// What the roles allow.
    pub policy: Arc<Policy>,
    /// An API key's scopes narrowing the policy (empty: none).
    pub scopes: Vec<String>,
    /// When the credential itself ends (an API key's expiry): keys it mints
    /// end no later, so a short-lived key cannot outlive itself by proxy.
    pub credential_expires_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The browser session, when the caller uses one.
    pub session_id: Option<Uuid>,
    /// The `x-request-id` of the HTTP request, for the audit trail and logs.
    pub request_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// The tenant's plan limits (none for the kernel itself).
    pub limits: Limits,
    /// What the tenant stored at its last measurement, held against
    /// `limits.storage_bytes` (see `tenancy::storage`).
    pub storage_used: i64,
    /// Keys for encrypted fields (absent where the kernel acts without the
    /// HTTP state, e.g. seeding; writing a sensitive field then fails).
    pub keyring: Option<Arc<crate::keys::Keyring>>,
    /// The plugin host, whose hooks the services call (absent where the
    /// kernel acts without the HTTP state).
    pub plugins: Option<Arc<crate::plugins::Runtime>>,
    /// How many plugin calls deep this context is (a plugin's write can
    /// trigger other plugins' hooks, up to a limit).
    pub plugin_depth: u8,
}

impl RequestContext {
    /// The kernel acting on a tenant's behalf with full rights (CLI, seeding).
    pub fn system(tenant_id: Uuid) -> Self {
        RequestContext {
            tenant_id,
            user_id: None,
            actor_kind: ActorKind::System,
            actor_id: None,
            roles: vec!["admin".to_owned()],
            policy: Arc::new(Policy::unrestricted()),
            scopes: Vec::new(),
            credential_expires_at: None,
            session_id: None,
            request_id: None,
            ip: None,
            user_agent: None,
            limits: Limits::default(),
            storage_used: 0,
            keyring: None,
            plugins: None,
            plugin_depth: 0,
        }
    }

    /// Someone not yet signed in, addressing `tenant_id` (login, resets).
    pub fn anonymous(tenant_id: Uuid, client: &Client) -> Self {
        RequestContext {
            tenant_id,
            user_id: None,
            actor_kind: ActorKind::Anonymous,
            actor_id: None,
            roles: Vec::new(),
            policy: Arc::new(Policy::default()),
            scopes: Vec::new(),
            credential_expires_at: None,
            session_id: None,
            request_id: client.request_id.clone(),
            ip: client.ip.clone(),
            user_agent: client.user_agent.clone(),
            limits: Limits::default(),
            storage_used: 0,
            keyring: None,
            plugins: None,
            plugin_depth: 0,
        }
    }
}

/// What the request says about its client, before authentication.
#[derive(Debug, Clone, Default)]
pub struct Client {
    pub request_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// The `Host` header without port, lower-cased.
    pub host: Option<String>,
    /// `X-Trellis-Tenant`: a tenant slug, for API clients without a hostname.
    pub tenant_header: Option<String>,
    pub bearer: Option<String>,
    pub session_cookie: Option<String>,
    /// The host of the `Origin` header, when the browser sent one.
    pub origin_host: Option<String>,
    /// GET, HEAD or OPTIONS: cannot change anything.
    pub safe_method: bool,
}

impl Client {
    pub fn from_parts(parts: &Parts, trust_forwarded_for: bool) -> Client {
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let forwarded = trust_forwarded_for
            .then(|| header("x-forwarded-for"))
            .flatten()
            .and_then(|v| v.split(',').next().map(|s| s.trim().to_owned()))
            .filter(|s| !s.is_empty());
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip().to_string());
        let bearer = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty());
        let session_cookie = parts
            .headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|c| c.trim().split_once('='))
            .find(|(name, _)| *name == sessions::COOKIE)
            .map(|(_, value)| value.to_owned())
            .filter(|v| !v.is_empty());
        Client {
            request_id: header("x-request-id"),
            ip: forwarded.or(peer),
            user_agent: parts
                .headers
                .get(USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(|s| s.chars().take(512).collect()),
            host: header("host").map(|h| {
                h.rsplit_once(':')
                    .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
                    .map(|(host, _)| host.to_owned())
                    .unwrap_or(h)
                    .to_ascii_lowercase()
            }),
            tenant_header: header("x-trellis-tenant"),
            bearer,
            session_cookie,
            origin_host: header("origin").map(|o| {
                let without_scheme = o.split_once("://").map(|(_, r)| r).unwrap_or(&o);
                let host = without_scheme.split('/').next().unwrap_or("");
                host.rsplit_once(':')
                    .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
                    .map(|(h, _)| h)
                    .unwrap_or(host)
                    .to_ascii_lowercase()
            }),
            safe_method: parts.method.is_safe(),
        }
    }
}

impl FromRequestParts<AppState> for Client {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        Ok(Client::from_parts(parts, state.config.trust_forwarded_for))
    }
}

impl FromRequestParts<AppState> for RequestContext {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let client = Client::from_parts(parts, state.config.trust_forwarded_for);
        crate::auth::authenticate(state, &client, false).await
    }
}

/// A signed-in user whose session still has to pass MFA (enrolment or
/// code): only the MFA, profile and logout endpoints accept it.
pub struct PendingMfa(pub RequestContext);

impl FromRequestParts<AppState> for PendingMfa {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let client = Client::from_parts(parts, state.config.trust_forwarded_for);
        Ok(PendingMfa(
            crate::auth::authenticate(state, &client, true).await?,
        ))
    }
}
