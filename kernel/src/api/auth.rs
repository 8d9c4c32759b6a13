//! Handlers for signing in and out, sessions, MFA, password reset,
//! invitations and API keys.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::AppState;
use crate::api::extract::JsonBody;
use crate::auth::api_keys::{self, ApiKeyOut, NewApiKey};
use crate::auth::login::{
    self, Activated, CodeRequest, Enrolment, LoginRequest, LoginResponse, ResetRequest, SetPassword,
};
use crate::auth::sessions::{self, SessionOut};
use crate::context::{Client, PendingMfa, RequestContext};
use crate::directory::users::{self, UserOut};
use crate::error::{Problem, Result};

/// Signs in with email and password (and a TOTP or recovery code when the
/// user has MFA). Sets the session cookie and returns an access token.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest, security(()),
    responses((status = 200, body = LoginResponse), (status = 401, body = Problem), (status = 429, body = Problem)))]
pub async fn login_handler(
    State(state): State<AppState>,
    client: Client,
    JsonBody(req): JsonBody<LoginRequest>,
) -> Result<Response> {
    let done = login::login(&state, &client, req).await?;
    let cookie = sessions::cookie(
        Some(&done.secret),
        done.max_age,
        state.config.secure_cookies,
    );
    Ok((
        [
            (header::SET_COOKIE, cookie),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        Json(done.response),
    )
        .into_response())
}

/// Ends the current session and clears the cookie.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", responses((status = 204)))]
pub async fn logout(
    State(state): State<AppState>,
    PendingMfa(ctx): PendingMfa,
) -> Result<Response> {
    login::logout(&state, &ctx).await?;
    let cookie = sessions::cookie(None, 0, state.config.secure_cookies);
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie)]).into_response())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    pub user: UserOut,
    pub tenant_id: Uuid,
    pub session_id: Option<Uuid>,
    pub roles: Vec<String>,
}

/// The signed-in user.
#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth", responses((status = 200, body = Me)))]
pub async fn me(State(state): State<AppState>, PendingMfa(ctx): PendingMfa) -> Result<Json<Me>> {
    let u = users::load(&state.db, &ctx, crate::auth::user_of(&ctx)?).await?;
    Ok(Json(Me {
        user: users::out(&u),
        tenant_id: ctx.tenant_id,
        session_id: ctx.session_id,
        roles: ctx.roles,
    }))
}

/// The caller's live sessions.
#[utoipa::path(get, path = "/api/v1/auth/sessions", tag = "auth", responses((status = 200, body = Vec<SessionOut>)))]
pub async fn list_sessions(
    State(state): State<AppState>,
    ctx: RequestContext,
) -> Result<Json<Vec<SessionOut>>> {
    let user_id = crate::auth::user_of(&ctx)?;
    Ok(Json(
        sessions::list(&state.db, ctx.tenant_id, user_id, ctx.session_id).await?,
    ))
}

/// Ends one of the caller's sessions (e.g. a lost device).
#[utoipa::path(delete, path = "/api/v1/auth/sessions/{id}", tag = "auth", responses((status = 204), (status = 404, body = Problem)))]
pub async fn revoke_session(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<Uuid>,
) -> Result<StatusCode> {
    let user_id = crate::auth::user_of(&ctx)?;
    login::revoke_sessions(&state, &ctx, user_id, Some(id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Starts MFA enrolment: returns the secret and an `otpauth://` URI.
#[utoipa::path(post, path = "/api/v1/auth/mfa/enroll", tag = "auth", responses((status = 200, body = Enrolment)))]
pub async fn mfa_enroll(
    State(state): State<AppState>,
    PendingMfa(ctx): PendingMfa,
) -> Result<Json<Enrolment>> {
    Ok(Json(login::mfa_enroll(&state, &ctx).await?))
}

/// Turns MFA on with a first code; returns recovery codes (shown once).
#[utoipa::path(post, path = "/api/v1/auth/mfa/activate", tag = "auth", request_body = CodeRequest,
    responses((status = 200, body = Activated), (status = 422, body = Problem)))]
pub async fn mfa_activate(
    State(state): State<AppState>,
    PendingMfa(ctx): PendingMfa,
    JsonBody(req): JsonBody<CodeRequest>,
) -> Result<Json<Activated>> {
    Ok(Json(login::mfa_activate(&state, &ctx, &req.code).await?))
}

/// Sends a password-reset link if the account exists (always 202).
#[utoipa::path(post, path = "/api/v1/auth/password-reset", tag = "auth", request_body = ResetRequest, security(()),
    responses((status = 202)))]
pub async fn request_reset(
    State(state): State<AppState>,
    client: Client,
    JsonBody(req): JsonBody<ResetRequest>,
) -> Result<StatusCode> {
    login::request_reset(&state, &client, req).await?;
    Ok(StatusCode::ACCEPTED)
}

/// Sets a new password with a reset link's token (single use).
#[utoipa::path(post, path = "/api/v1/auth/password-reset/confirm", tag = "auth", request_body = SetPassword, security(()),
    responses((status = 204), (status = 400, body = Problem), (status = 422, body = Problem)))]
pub async fn confirm_reset(
    State(state): State<AppState>,
    client: Client,
    JsonBody(req): JsonBody<SetPassword>,
) -> Result<StatusCode> {
    login::redeem(&state, &client, "reset", req).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Accepts an invitation: sets the password and activates the user.
#[utoipa::path(post, path = "/api/v1/auth/accept-invitation", tag = "auth", request_body = SetPassword, security(()),
    responses((status = 204), (status = 400, body = Problem), (status = 422, body = Problem)))]
pub async fn accept_invitation(
    State(state): State<AppState>,
    client: Client,
    JsonBody(req): JsonBody<SetPassword>,
) -> Result<StatusCode> {
    login::redeem(&state, &client, "invite", req).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The public keys that sign access tokens (JWK set).
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "auth", security(()), responses((status = 200)))]
pub async fn jwks(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(state.access.jwks())
}

/// Creates an API key for the caller; the key is shown once.
#[utoipa::path(post, path = "/api/v1/api-keys", tag = "auth", request_body = NewApiKey,
    responses((status = 201, body = ApiKeyOut), (status = 422, body = Problem)))]
pub async fn create_api_key(
    State(state): State<AppState>,
    ctx: RequestContext,
    JsonBody(req): JsonBody<NewApiKey>,
) -> Result<(StatusCode, Json<ApiKeyOut>)> {
    Ok((
        StatusCode::CREATED,
        Json(api_keys::create(&state, &ctx, req).await?),
    ))
}

/// The caller's API keys (all of the tenant's for those who manage keys).
#[utoipa::path(get, path = "/api/v1/api-keys", tag = "auth", responses((status = 200, body = Vec<ApiKeyOut>)))]
pub async fn list_api_keys(
    State(state): State<AppState>,
    ctx: RequestContext,
) -> Result<Json<Vec<ApiKeyOut>>> {
    Ok(Json(api_keys::list(&state, &ctx).await?))
}

/// Revokes an API key (the caller's own, or any with key management rights).
#[utoipa::path(delete, path = "/api/v1/api-keys/{id}", tag = "auth", responses((status = 204), (status = 404, body = Problem)))]
pub async fn revoke_api_key(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<Uuid>,
) -> Result<StatusCode> {
    api_keys::revoke(&state, &ctx, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
