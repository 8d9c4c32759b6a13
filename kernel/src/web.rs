//! The web UI: server-rendered pages over the same services as the API.
//!
//! A page handler takes a [`Ui`] (the signed-in user's request context,
//! theme and CSRF token), calls the services the API calls (so permissions,
//! validation, audit and plugin hooks are the same), and renders a template
//! of the tenant's theme. Every page works without JavaScript; the one
//! script (`/ui/app.js`) adds drag-and-drop on the pipeline board and the
//! idle-timeout warning.
//!
//! Errors take one path: a handler returns [`PageError`], and the
//! [`pages_layer`] turns it into a themed error page, or a redirect to the
//! sign-in page when the session is missing or expired.

pub mod account;
pub mod assets;
pub mod board;
pub mod charts;
pub mod dashboard;
pub mod filters;
pub mod forms;
pub mod imports;
pub mod records;
pub mod security;
pub mod settings;
pub mod themes;

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::AppState;
use crate::context::{Client, RequestContext};
use crate::entities::tenant;
use crate::error::Error;
use crate::permissions::{Action, ObjectType};
use themes::Theme;

/// The UI's routes (the API's live under `/api`).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(dashboard::page))
        .route("/login", get(account::login_page).post(account::login))
        .route("/logout", post(account::logout))
        .route(
            "/password-reset",
            get(account::reset_page).post(account::request_reset),
        )
        // The paths the reset and invitation emails link to.
        .route(
            "/reset-password",
            get(account::confirm_page).post(account::confirm),
        )
        .route(
            "/accept-invitation",
            get(account::invitation_page).post(account::accept_invitation),
        )
        .route("/profile", get(account::profile))
        .route("/profile/mfa/enroll", post(account::mfa_enroll))
        .route("/profile/mfa/activate", post(account::mfa_activate))
        .route("/profile/sessions/revoke", post(account::revoke_session))
        .route("/ui/ping", get(account::ping))
        .route("/board", get(board::page))
        .route("/deals/{id}/move", post(board::move_deal))
        .merge(records::router())
        .merge(settings::router())
        .merge(imports::router())
        .route("/ui/app.js", get(assets::script))
        .route("/ui/assets/{theme}/{file}", get(assets::theme_file))
}

/// Adds the UI's response headers and error pages around `router`.
pub fn pages_layer(state: AppState, router: Router) -> Router {
    router.layer(middleware::from_fn_with_state(state, error_pages))
}

/// A signed-in user's page request.
pub struct Ui {
    pub ctx: RequestContext,
    pub theme: Arc<Theme>,
    /// The token every form of this session carries.
    pub csrf: String,
    pub user_name: String,
    pub user_email: String,
    pub tenant_name: String,
    /// The session's idle timeout, for the warning before it ends.
    pub idle_seconds: i64,
    /// The path of this request (for the navigation's current item).
    pub path: String,
    /// The tenant's custom objects the user may read: (key, plural label).
    pub objects: Vec<(String, String)>,
}

impl FromRequestParts<AppState> for Ui {
    type Rejection = PageError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let client = Client::from_parts(parts, state.config.trust_forwarded_for);
        // The UI signs in with the session cookie only: a bearer token on a
        // page request would bypass CSRF checks that forms rely on.
        if client.session_cookie.is_none() {
            return Err(PageError(Error::Unauthenticated));
        }
        let client = Client {
            bearer: None,
            ..client
        };
        let ctx = crate::auth::authenticate(state, &client, false).await?;
        let tenant = crate::crm::tenants::cached(state, ctx.tenant_id).await?;
        let user =
            crate::directory::users::cached(state, ctx.tenant_id, crate::auth::user_of(&ctx)?)
                .await?;
        let theme = theme_for(state, &tenant).await;
        let csrf = security::session_token(client.session_cookie.as_deref().unwrap_or(""));
        let objects = if ctx.can(ObjectType::CustomObject, Action::Read) {
            crate::crm::objects::list_objects(&state.db, &ctx)
                .await?
                .into_iter()
                .map(|o| (o.key, o.plural_label))
                .collect()
        } else {
            Vec::new()
        };
        Ok(Ui {
            ctx,
            theme,
            csrf,
            user_name: user.name,
            user_email: user.email,
            tenant_name: tenant.name,
            idle_seconds: tenant.session_idle_seconds,
            path: parts.uri.path().to_owned(),
            objects,
        })
    }
}

impl Ui {
    /// Renders `template` with `page` as this user sees it.
    pub fn render(&self, state: &AppState, template: &str, page: Value) -> Response {
        let ui = json!({
            "signed_in": true,
            "csrf": self.csrf,
            "user": {"name": self.user_name, "email": self.user_email},
            "tenant": self.tenant_name,
            "idle_seconds": self.idle_seconds,
            "path": self.path,
            "nav": self.nav(),
        });
        render(state, &self.theme, template, ui, page)
    }

    /// The navigation, keeping to what the user's roles may read.
    fn nav(&self) -> Vec<Value> {
        let mut items = vec![json!({"href": "/", "label": "Dashboard"})];
        for (object, href, label) in [
            (ObjectType::Contact, "/contacts", "Contacts"),
            (ObjectType::Account, "/accounts", "Accounts"),
            (ObjectType::Deal, "/deals", "Deals"),
            (ObjectType::Deal, "/board", "Pipeline"),
            (ObjectType::Activity, "/activities", "Activities"),
        ] {
            if self.ctx.can(object, Action::Read) {
                items.push(json!({"href": href, "label": label}));
            }
        }
        for (key, plural) in &self.objects {
            items.push(json!({"href": format!("/objects/{key}"), "label": plural}));
        }
        if [ObjectType::Contact, ObjectType::Account]
            .iter()
            .any(|o| self.ctx.can(*o, Action::Update))
        {
            items.push(json!({"href": "/duplicates", "label": "Duplicates"}));
        }
        if imports::visible(&self.ctx) {
            items.push(json!({"href": "/imports", "label": "Imports"}));
        }
        if settings::visible(&self.ctx) {
            items.push(json!({"href": "/settings", "label": "Settings"}));
        }
        for item in &mut items {
            let href = item["href"].as_str().unwrap_or("");
            let current = if href == "/" {
                self.path == "/"
            } else {
                self.path == href || self.path.starts_with(&format!("{href}/"))
            };
            item["current"] = Value::Bool(current);
        }
        items
    }

    /// Fails unless `form` carries this session's CSRF token.
    pub fn check_csrf(&self, form: &forms::FormData) -> Result<(), PageError> {
        if security::same(form.get("_csrf").unwrap_or(""), &self.csrf) {
            Ok(())
        } else {
            Err(PageError(Error::Forbidden(
                "the form's security token is missing or stale; reload the page and try again"
                    .to_owned(),
            )))
        }
    }
}

/// The theme of a tenant: its own, else its reseller's, else the default.
pub async fn theme_for(state: &AppState, tenant: &tenant::Model) -> Arc<Theme> {
    let mut key = tenant.theme.clone();
    if key.is_none()
        && let Some(reseller) = tenant.reseller_id
    {
        key = reseller_theme(state, reseller).await;
    }
    state.themes.get(key.as_deref())
}

/// A reseller's theme, cached like tenants (a page would otherwise ask the
/// database on every request).
async fn reseller_theme(state: &AppState, reseller: uuid::Uuid) -> Option<String> {
    use sea_orm::EntityTrait;
    if let Some(hit) = state.caches.reseller_themes.get(&reseller) {
        return hit;
    }
    let theme = crate::entities::reseller::Entity::find_by_id(reseller)
        .one(&state.db)
        .await
        .ok()
        .flatten()
        .and_then(|r| r.theme);
    state.caches.reseller_themes.insert(reseller, theme.clone());
    theme
}

/// What emails and downloads say about the product: the tenant's theme's
/// product name and support contact, and the address its users reach it at.
pub struct Branding {
    pub product_name: String,
    pub support_email: Option<String>,
    pub footer: Option<String>,
    /// `https://crm.reseller.example` for a tenant on its own domain, else
    /// the platform's public URL.
    pub base_url: String,
}

impl Branding {
    /// The closing lines of an email.
    pub fn signature(&self) -> String {
        let mut s = format!("\n--\n{}", self.product_name);
        if let Some(f) = &self.footer {
            s.push_str(&format!("\n{f}"));
        }
        if let Some(e) = &self.support_email {
            s.push_str(&format!("\nHelp: {e}"));
        }
        s.push('\n');
        s
    }

    /// The product name as a file-name prefix (`harbordesk`).
    pub fn file_prefix(&self) -> String {
        let slug: String = self
            .product_name
            .to_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let slug = slug.trim_matches('-').to_owned();
        if slug.is_empty() {
            "export".to_owned()
        } else {
            slug
        }
    }
}

/// The branding of `tenant`.
pub async fn branding(state: &AppState, tenant: &tenant::Model) -> Branding {
    let theme = theme_for(state, tenant).await;
    let base_url = match &tenant.hostname {
        Some(host) => {
            let scheme = if state.config.public_url.starts_with("https://") {
                "https"
            } else {
                "http"
            };
            format!("{scheme}://{host}")
        }
        None => state.config.public_url.trim_end_matches('/').to_owned(),
    };
    Branding {
        product_name: theme.manifest.product_name.clone(),
        support_email: theme.manifest.support.email.clone(),
        footer: theme.manifest.footer.clone(),
        base_url,
    }
}

/// The theme for a visitor not signed in: the tenant the hostname (or the
/// default tenant) names.
pub async fn theme_for_client(state: &AppState, client: &Client) -> Arc<Theme> {
    match crate::auth::addressed_tenant(state, client, None).await {
        Ok(t) => theme_for(state, &t).await,
        Err(_) => state.themes.default_theme(),
    }
}

/// Renders a page; a theme whose template fails at run time is logged and
/// the default theme serves the page instead.
pub fn render(state: &AppState, theme: &Theme, template: &str, ui: Value, page: Value) -> Response {
    let ctx = |theme: &Theme| {
        minijinja::Value::from(minijinja::value::Serde(json!({
            "theme": theme.context(),
            "ui": ui,
            "page": page,
        })))
    };
    let html = match theme.render(template, ctx(theme)) {
        Ok(html) => Ok(html),
        Err(e) if theme.key != themes::DEFAULT => {
            tracing::error!(target: "trellis::themes", error = %e, "theme failed to render; serving the default theme");
            let fallback = state.themes.default_theme();
            fallback.render(template, ctx(&fallback))
        }
        Err(e) => Err(e),
    };
    match html {
        Ok(html) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            )],
            html,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(target: "trellis::themes", error = %e, "page failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be rendered",
            )
                .into_response()
        }
    }
}

/// `response` with another status (a form shown again with its errors).
pub fn with_status(mut response: Response, status: StatusCode) -> Response {
    *response.status_mut() = status;
    response
}

/// An error on a page. Turned into a themed error page (or a redirect to
/// sign in) by [`error_pages`].
#[derive(Debug)]
pub struct PageError(pub Error);

impl From<Error> for PageError {
    fn from(e: Error) -> Self {
        PageError(e)
    }
}

/// What [`error_pages`] renders.
#[derive(Debug, Clone)]
struct ErrorPage {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let status = self.0.status();
        if status.is_server_error() {
            tracing::error!(error = ?self.0, "page failed");
        }
        let message = match &self.0 {
            Error::Database(_) | Error::Internal(_) => "an internal error occurred".to_owned(),
            other => other.to_string(),
        };
        let mut response = status.into_response();
        response.extensions_mut().insert(ErrorPage {
            status,
            code: self.0.code(),
            message,
        });
        response
    }
}

/// Security headers on every UI response, and error pages: a missing or
/// expired session goes to the sign-in page (coming back afterwards), a
/// session still owing MFA set-up to the profile, anything else to a
/// themed page saying what went wrong.
async fn error_pages(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let path_and_query = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".to_owned());
    let is_get = req.method() == axum::http::Method::GET;
    let (parts, body) = req.into_parts();
    let client = Client::from_parts(&parts, state.config.trust_forwarded_for);
    let req = Request::from_parts(parts, body);
    let mut response = next.run(req).await;
    if let Some(page) = response.extensions().get::<ErrorPage>().cloned() {
        response = match page.code {
            "unauthenticated" | "session_expired" => {
                let next = if is_get {
                    path_and_query
                } else {
                    "/".to_owned()
                };
                let target = if next == "/" {
                    "/login".to_owned()
                } else {
                    format!(
                        "/login?next={}",
                        form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
                    )
                };
                Redirect::to(&target).into_response()
            }
            "mfa_required" => Redirect::to("/profile?mfa=required").into_response(),
            _ => {
                let theme = theme_for_client(&state, &client).await;
                let mut r = render(
                    &state,
                    &theme,
                    "error.html",
                    json!({"signed_in": false, "csrf": "", "nav": [], "idle_seconds": 0, "path": path_and_query, "user": null, "tenant": ""}),
                    json!({"title": page.status.canonical_reason().unwrap_or("Error"), "status": page.status.as_u16(), "message": page.message}),
                );
                *r.status_mut() = page.status;
                r
            }
        };
    }
    security::add_headers(response.headers_mut());
    response
}
