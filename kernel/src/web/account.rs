//! Signing in and out, password reset, invitations, and the user's profile
//! (MFA enrolment with a QR code, sessions). The pages call the same
//! services as `/api/v1/auth/*`, so throttling, lockout and audit apply.

use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use uuid::Uuid;

use crate::AppState;
use crate::auth::login::{self, LoginRequest, ResetRequest, SetPassword};
use crate::auth::sessions;
use crate::context::Client;
use crate::error::Error;
use crate::web::forms::FormData;
use crate::web::security;
use crate::web::themes::Theme;
use crate::web::{PageError, Ui, render, theme_for, theme_for_client};

/// Someone not signed in: the theme of the tenant they address, and their
/// CSRF token (from its cookie, or new: then set with the response).
pub struct Visitor {
    pub client: Client,
    pub theme: Arc<Theme>,
    /// Whether the hostname names the tenant; if not, the sign-in forms ask
    /// for the workspace (blank: the default one).
    pub by_host: bool,
    pub csrf: String,
    new_cookie: bool,
}

impl FromRequestParts<AppState> for Visitor {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, PageError> {
        let client = Client::from_parts(parts, state.config.trust_forwarded_for);
        let theme = theme_for_client(state, &client).await;
        let by_host = match &client.host {
            Some(h) => crate::crm::tenants::by_host(state, h).await?.is_some(),
            None => false,
        };
        let (csrf, new_cookie) = match security::visitor_token(&parts.headers) {
            Some(t) => (t, false),
            None => (security::new_visitor_token(), true),
        };
        Ok(Visitor {
            client,
            theme,
            by_host,
            csrf,
            new_cookie,
        })
    }
}

impl Visitor {
    /// The workspace field's value (`None`: not asked, the host names it).
    fn workspace(&self, typed: Option<String>) -> Value {
        if self.by_host {
            Value::Null
        } else {
            Value::String(typed.unwrap_or_default())
        }
    }

    fn render(&self, state: &AppState, template: &str, page: Value) -> Response {
        let ui = json!({
            "signed_in": false,
            "csrf": self.csrf,
            "user": null,
            "tenant": "",
            "idle_seconds": 0,
            "path": "",
            "nav": [],
        });
        let mut r = render(state, &self.theme, template, ui, page);
        if self.new_cookie
            && let Ok(v) = security::visitor_cookie(&self.csrf, state.config.secure_cookies).parse()
        {
            r.headers_mut().append(header::SET_COOKIE, v);
        }
        r
    }

    /// Fails unless the form carries the token of the visitor's cookie (a
    /// page of another site can neither read the cookie nor guess it).
    fn check_csrf(&self, form: &FormData) -> Result<(), PageError> {
        if !self.new_cookie && security::same(form.get("_csrf").unwrap_or(""), &self.csrf) {
            Ok(())
        } else {
            Err(PageError(Error::Forbidden(
                "the form's security token is missing or stale; reload the page and try again"
                    .to_owned(),
            )))
        }
    }
}

/// A path inside this site to go to after signing in; anything else
/// (another site, a scheme) becomes `/`.
fn safe_next(next: Option<&str>) -> String {
    next.and_then(security::local_path)
        .unwrap_or("/")
        .to_owned()
}

#[derive(Debug, Deserialize)]
pub struct LoginParams {
    pub next: Option<String>,
    pub notice: Option<String>,
}

pub async fn login_page(
    State(state): State<AppState>,
    visitor: Visitor,
    Query(p): Query<LoginParams>,
) -> Response {
    let notice = match p.notice.as_deref() {
        Some("reset") => Some("Your password is set. Sign in with it."),
        Some("signed_out") => Some("You are signed out."),
        Some("idle") => Some("You were signed out after a period of inactivity."),
        _ => None,
    };
    visitor.render(
        &state,
        "login.html",
        json!({"title": "Sign in", "email": "", "errors": {}, "next": safe_next(p.next.as_deref()), "notice": notice, "workspace": visitor.workspace(None)}),
    )
}

pub async fn login(
    State(state): State<AppState>,
    visitor: Visitor,
    form: FormData,
) -> Result<Response, PageError> {
    visitor.check_csrf(&form)?;
    let email = form.text("email").unwrap_or_default();
    let next = safe_next(form.get("next"));
    let code = form.text("code");
    // Recovery codes are longer than the 6-digit TOTP codes.
    let (code, recovery_code) = match code {
        Some(c) if c.chars().filter(char::is_ascii_digit).count() == c.len() && c.len() <= 8 => {
            (Some(c), None)
        }
        Some(c) => (None, Some(c)),
        None => (None, None),
    };
    let workspace = form.text("workspace");
    let req = LoginRequest {
        email: email.clone(),
        password: form.get("password").unwrap_or("").to_owned(),
        tenant: workspace.clone(),
        code,
        recovery_code,
    };
    match login::login(&state, &visitor.client, req).await {
        Ok(done) => {
            let cookie = sessions::cookie(
                Some(&done.secret),
                done.max_age,
                state.config.secure_cookies,
            );
            let target = if done.response.mfa_enrolment_required {
                "/profile?mfa=required".to_owned()
            } else {
                next
            };
            let mut r = Redirect::to(&target).into_response();
            if let Ok(v) = cookie.parse() {
                r.headers_mut().append(header::SET_COOKIE, v);
            }
            Ok(r)
        }
        Err(e) => {
            let (status, field, message) = match &e {
                Error::InvalidCredentials => (
                    StatusCode::UNAUTHORIZED,
                    "password",
                    "The email or password is wrong.".to_owned(),
                ),
                Error::MfaRequired(_) => (
                    StatusCode::UNAUTHORIZED,
                    "code",
                    "Enter the code from your authenticator app (or a recovery code), with your password.".to_owned(),
                ),
                Error::TooManyAttempts { .. } | Error::TenantSuspended => {
                    (e.status(), "", e.to_string())
                }
                _ => return Err(e.into()),
            };
            Ok(crate::web::with_status(
            visitor.render(
                &state,
                "login.html",
                json!({"title": "Sign in", "email": email, "errors": {field: message}, "next": next, "notice": null, "workspace": visitor.workspace(workspace)}),
            ),
            status,
            ))
        }
    }
}

/// A signed-in user's session, even one still owing MFA (for logout and
/// enrolment).
pub struct Enrolling(pub Ui);

impl FromRequestParts<AppState> for Enrolling {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, PageError> {
        let client = Client::from_parts(parts, state.config.trust_forwarded_for);
        let Some(secret) = client.session_cookie.clone() else {
            return Err(PageError(Error::Unauthenticated));
        };
        let client = Client {
            bearer: None,
            ..client
        };
        let ctx = crate::auth::authenticate(state, &client, true).await?;
        let tenant = crate::crm::tenants::cached(state, ctx.tenant_id).await?;
        let user =
            crate::directory::users::cached(state, ctx.tenant_id, crate::auth::user_of(&ctx)?)
                .await?;
        Ok(Enrolling(Ui {
            theme: theme_for(state, &tenant).await,
            csrf: security::session_token(&secret),
            user_name: user.name,
            user_email: user.email,
            tenant_name: tenant.name,
            idle_seconds: tenant.session_idle_seconds,
            path: parts.uri.path().to_owned(),
            // A user still enrolling in MFA sees no records.
            objects: Vec::new(),
            ctx,
        }))
    }
}

pub async fn logout(
    State(state): State<AppState>,
    Enrolling(ui): Enrolling,
    form: FormData,
) -> Result<Response, PageError> {
    ui.check_csrf(&form)?;
    login::logout(&state, &ui.ctx).await?;
    let notice = if form.get("reason") == Some("idle") {
        "idle"
    } else {
        "signed_out"
    };
    let mut r = Redirect::to(&format!("/login?notice={notice}")).into_response();
    if let Ok(v) = sessions::cookie(None, 0, state.config.secure_cookies).parse() {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(r)
}

/// Keeps the session alive (the idle warning's "stay signed in").
pub async fn ping(_ui: Ui) -> StatusCode {
    StatusCode::NO_CONTENT
}

pub async fn reset_page(State(state): State<AppState>, visitor: Visitor) -> Response {
    visitor.render(
        &state,
        "password_reset.html",
        json!({"title": "Reset your password", "email": "", "errors": {}, "sent": false, "workspace": visitor.workspace(None)}),
    )
}

pub async fn request_reset(
    State(state): State<AppState>,
    visitor: Visitor,
    form: FormData,
) -> Result<Response, PageError> {
    visitor.check_csrf(&form)?;
    let Some(email) = form.text("email") else {
        return Ok(crate::web::with_status(
        visitor.render(
            &state,
            "password_reset.html",
            json!({"title": "Reset your password", "email": "", "errors": {"email": "Enter your email address."}, "sent": false, "workspace": visitor.workspace(form.text("workspace"))}),
        ),
        StatusCode::UNPROCESSABLE_ENTITY,
        ));
    };
    login::request_reset(
        &state,
        &visitor.client,
        ResetRequest {
            email: email.clone(),
            tenant: form.text("workspace"),
        },
    )
    .await?;
    Ok(visitor.render(
        &state,
        "password_reset.html",
        json!({"title": "Check your email", "email": email, "errors": {}, "sent": true, "workspace": Value::Null}),
    ))
}

#[derive(Debug, Deserialize)]
pub struct TokenParams {
    pub token: Option<String>,
}

fn set_password_page(
    state: &AppState,
    visitor: &Visitor,
    kind: &str,
    token: &str,
    errors: Value,
) -> Response {
    let title = if kind == "invite" {
        "Accept your invitation"
    } else {
        "Choose a new password"
    };
    visitor.render(
        state,
        "password_reset_confirm.html",
        json!({"title": title, "token": token, "errors": errors, "kind": kind}),
    )
}

pub async fn confirm_page(
    State(state): State<AppState>,
    visitor: Visitor,
    Query(p): Query<TokenParams>,
) -> Response {
    set_password_page(
        &state,
        &visitor,
        "reset",
        p.token.as_deref().unwrap_or(""),
        json!({}),
    )
}

pub async fn invitation_page(
    State(state): State<AppState>,
    visitor: Visitor,
    Query(p): Query<TokenParams>,
) -> Response {
    set_password_page(
        &state,
        &visitor,
        "invite",
        p.token.as_deref().unwrap_or(""),
        json!({}),
    )
}

async fn set_password(
    state: &AppState,
    visitor: &Visitor,
    kind: &str,
    form: &FormData,
) -> Result<Response, PageError> {
    visitor.check_csrf(form)?;
    let token = form.get("token").unwrap_or("").to_owned();
    let password = form.get("password").unwrap_or("").to_owned();
    if form.get("confirm") != Some(password.as_str()) {
        return Ok(crate::web::with_status(
            set_password_page(
                state,
                visitor,
                kind,
                &token,
                json!({"confirm": "The two passwords differ."}),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
        ));
    }
    match login::redeem(
        state,
        &visitor.client,
        kind,
        SetPassword {
            token: token.clone(),
            password,
        },
    )
    .await
    {
        Ok(()) => Ok(Redirect::to("/login?notice=reset").into_response()),
        Err(Error::Validation(errors)) => {
            let mut map = serde_json::Map::new();
            for e in errors {
                map.insert(
                    if e.field == "token" {
                        "token".to_owned()
                    } else {
                        "password".to_owned()
                    },
                    Value::String(e.message),
                );
            }
            Ok(crate::web::with_status(
                set_password_page(state, visitor, kind, &token, Value::Object(map)),
                StatusCode::UNPROCESSABLE_ENTITY,
            ))
        }
        Err(e @ Error::InvalidToken(_)) => Ok(crate::web::with_status(
            set_password_page(
                state,
                visitor,
                kind,
                &token,
                json!({"token": e.to_string()}),
            ),
            StatusCode::BAD_REQUEST,
        )),
        Err(e) => Err(e.into()),
    }
}

pub async fn confirm(
    State(state): State<AppState>,
    visitor: Visitor,
    form: FormData,
) -> Result<Response, PageError> {
    set_password(&state, &visitor, "reset", &form).await
}

pub async fn accept_invitation(
    State(state): State<AppState>,
    visitor: Visitor,
    form: FormData,
) -> Result<Response, PageError> {
    set_password(&state, &visitor, "invite", &form).await
}

async fn profile_page(
    state: &AppState,
    ui: &Ui,
    enrolment: Value,
    recovery_codes: Value,
    errors: Value,
) -> Result<Response, PageError> {
    let user_id = crate::auth::user_of(&ui.ctx)?;
    let user = crate::directory::users::load(&state.db, &ui.ctx, user_id).await?;
    let list = sessions::list(&state.db, ui.ctx.tenant_id, user_id, ui.ctx.session_id).await?;
    Ok(ui.render(
        state,
        "profile.html",
        json!({
            "title": "Your profile",
            "user": {"name": user.name, "email": user.email, "roles": ui.ctx.roles},
            "mfa_enabled": user.mfa_enabled_at.is_some(),
            "enrolment": enrolment,
            "recovery_codes": recovery_codes,
            "errors": errors,
            "sessions": list,
        }),
    ))
}

pub async fn profile(
    State(state): State<AppState>,
    Enrolling(ui): Enrolling,
) -> Result<Response, PageError> {
    profile_page(&state, &ui, Value::Null, Value::Null, json!({})).await
}

/// The QR code of an `otpauth://` URI as an SVG data URI (the page's
/// policy admits `data:` images and nothing inline).
fn qr_data_uri(uri: &str) -> Result<String, Error> {
    let code = qrcode::QrCode::new(uri.as_bytes()).map_err(|e| Error::Internal(e.to_string()))?;
    let svg = code
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(200, 200)
        .build();
    Ok(format!(
        "data:image/svg+xml;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(svg)
    ))
}

pub async fn mfa_enroll(
    State(state): State<AppState>,
    Enrolling(ui): Enrolling,
    form: FormData,
) -> Result<Response, PageError> {
    ui.check_csrf(&form)?;
    let e = login::mfa_enroll(&state, &ui.ctx).await?;
    let enrolment = json!({
        "secret": e.secret,
        "uri": e.provisioning_uri,
        "qr": qr_data_uri(&e.provisioning_uri)?,
    });
    profile_page(&state, &ui, enrolment, Value::Null, json!({})).await
}

pub async fn mfa_activate(
    State(state): State<AppState>,
    Enrolling(ui): Enrolling,
    form: FormData,
) -> Result<Response, PageError> {
    ui.check_csrf(&form)?;
    let code = form.text("code").unwrap_or_default();
    match login::mfa_activate(&state, &ui.ctx, &code).await {
        Ok(done) => {
            profile_page(
                &state,
                &ui,
                Value::Null,
                json!(done.recovery_codes),
                json!({}),
            )
            .await
        }
        Err(Error::Validation(_)) => {
            // The same enrolment again (its QR code and secret came with
            // the form), so the user can try the next code.
            let enrolment = match (form.get("uri"), form.get("secret")) {
                (Some(uri), Some(secret)) if uri.starts_with("otpauth://") => json!({
                    "secret": secret,
                    "uri": uri,
                    "qr": qr_data_uri(uri)?,
                }),
                _ => Value::Null,
            };
            let mut r = profile_page(
                &state,
                &ui,
                enrolment,
                Value::Null,
                json!({"code": "That code does not match; enter the current code from your app."}),
            )
            .await?;
            *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            Ok(r)
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn revoke_session(
    State(state): State<AppState>,
    ui: Ui,
    form: FormData,
) -> Result<Response, PageError> {
    ui.check_csrf(&form)?;
    let id = form
        .get("id")
        .and_then(|s| Uuid::parse_str(s).ok())
        .ok_or_else(|| Error::field("id", "invalid_value", "no such session"))?;
    let user_id = crate::auth::user_of(&ui.ctx)?;
    login::revoke_sessions(&state, &ui.ctx, user_id, Some(id)).await?;
    Ok(Redirect::to("/profile").into_response())
}
