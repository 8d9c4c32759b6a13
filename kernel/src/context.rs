//! The request context: who is calling, for which tenant, with which roles.
//!
//! Every handler takes a [`RequestContext`] and every service takes it on to
//! the database, where each query on tenant data is built from
//! `ctx.tenant_id`. There is no other way to reach a service from HTTP.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use serde::Serialize;
use uuid::Uuid;

use crate::AppState;
use crate::error::{Error, Result};

/// Who acts: recorded in the audit trail with every write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    User,
    ApiToken,
    /// The kernel itself (migrations, seeding, the CLI).
    System,
}

impl ActorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::User => "user",
            ActorKind::ApiToken => "api_token",
            ActorKind::System => "system",
        }
    }
}

/// The caller of one request.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub tenant_id: Uuid,
    /// The user acting (directly or through their token), if any.
    pub user_id: Option<Uuid>,
    pub actor_kind: ActorKind,
    /// The token or user id recorded as the actor.
    pub actor_id: Option<Uuid>,
    pub roles: Vec<String>,
    /// The `x-request-id` of the HTTP request, for the audit trail and logs.
    pub request_id: Option<String>,
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
            request_id: None,
        }
    }
}

impl FromRequestParts<AppState> for RequestContext {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or(Error::Unauthenticated)?;
        let token = header
            .strip_prefix("Bearer ")
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(Error::Unauthenticated)?;
        let found = state
            .tokens
            .verify(&state.db, token)
            .await?
            .ok_or(Error::Unauthenticated)?;
        let request_id = parts
            .headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok(RequestContext {
            tenant_id: found.tenant_id,
            user_id: Some(found.user_id),
            actor_kind: ActorKind::ApiToken,
            actor_id: Some(found.token_id),
            roles: found.roles,
            request_id,
        })
    }
}
