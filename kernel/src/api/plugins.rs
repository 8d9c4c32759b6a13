//! Plugin endpoints: packages (platform operators install them), the
//! tenant's plugins (admins enable, grant, configure, read logs), the
//! plugins' own HTTP routes under `/api/v1/plugins/{plugin_id}/...`, and
//! the panels plugins add to record pages.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, RawQuery, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::AppState;
use crate::api::extract::JsonBody;
use crate::context::{Client, RequestContext};
use crate::crm::accounts::Accounts;
use crate::crm::activities::Activities;
use crate::crm::contacts::Contacts;
use crate::crm::deals::Deals;
use crate::crm::records::{self, Record};
use crate::error::{Error, Problem, Result};
use crate::plugins::registry::{self, EnableRequest, LogLine, PackageOut, TenantPluginOut};
use crate::plugins::sandbox::{Call, HttpRequest, Reply};
use crate::tenancy::operators::Operator;

/// A plugin package to install.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPackage {
    /// The text of `plugin.toml`.
    pub manifest: String,
    /// The component (`.wasm`), base64.
    pub component: String,
}

/// Installs a plugin version for the whole platform (operators only).
#[utoipa::path(post, path = "/api/v1/platform/plugins", tag = "plugins", request_body = NewPackage,
    responses((status = 201, body = PackageOut), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn install(
    State(state): State<AppState>,
    op: Operator,
    JsonBody(req): JsonBody<NewPackage>,
) -> Result<(StatusCode, Json<PackageOut>)> {
    op.require_platform()?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(req.component.trim())
        .map_err(|_| Error::field("component", "invalid_format", "not base64"))?;
    Ok((
        StatusCode::CREATED,
        Json(registry::install(&state, &req.manifest, bytes).await?),
    ))
}

/// Installed plugin versions.
#[utoipa::path(get, path = "/api/v1/platform/plugins", tag = "plugins",
    responses((status = 200, body = Vec<PackageOut>)))]
pub async fn list_packages(
    State(state): State<AppState>,
    op: Operator,
) -> Result<Json<Vec<PackageOut>>> {
    op.require_platform()?;
    Ok(Json(registry::packages(&state).await?))
}

/// Removes an installed version that no tenant has enabled.
#[utoipa::path(delete, path = "/api/v1/platform/plugins/{plugin_id}/{version}", tag = "plugins",
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn remove_package(
    State(state): State<AppState>,
    op: Operator,
    Path((plugin_id, version)): Path<(String, String)>,
) -> Result<StatusCode> {
    op.require_platform()?;
    registry::remove(&state, &plugin_id, &version).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Plugins a tenant can enable (installed packages, with the capabilities
/// each asks for in its manifest).
#[utoipa::path(get, path = "/api/v1/tenant/plugins/available", tag = "plugins",
    responses((status = 200, body = Vec<PackageOut>)))]
pub async fn available(
    State(state): State<AppState>,
    ctx: RequestContext,
) -> Result<Json<Vec<PackageOut>>> {
    ctx.require(
        crate::permissions::ObjectType::Plugin,
        crate::permissions::Action::Read,
    )?;
    Ok(Json(registry::packages(&state).await?))
}

/// The tenant's plugins.
#[utoipa::path(get, path = "/api/v1/tenant/plugins", tag = "plugins",
    responses((status = 200, body = Vec<TenantPluginOut>)))]
pub async fn tenant_plugins(
    State(state): State<AppState>,
    ctx: RequestContext,
) -> Result<Json<Vec<TenantPluginOut>>> {
    Ok(Json(registry::tenant_plugins(&state, &ctx).await?))
}

/// Enables a plugin for the tenant, or changes its version, grants,
/// configuration or limits.
#[utoipa::path(put, path = "/api/v1/tenant/plugins/{plugin_id}", tag = "plugins", request_body = EnableRequest,
    responses((status = 200, body = TenantPluginOut), (status = 404, body = Problem), (status = 422, body = Problem), (status = 503, body = Problem)))]
pub async fn enable(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(plugin_id): Path<String>,
    JsonBody(req): JsonBody<EnableRequest>,
) -> Result<Json<TenantPluginOut>> {
    Ok(Json(registry::enable(&state, &ctx, &plugin_id, req).await?))
}

/// Disables a plugin for the tenant (its settings and data stay).
#[utoipa::path(delete, path = "/api/v1/tenant/plugins/{plugin_id}", tag = "plugins",
    responses((status = 200, body = TenantPluginOut), (status = 404, body = Problem)))]
pub async fn disable(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(plugin_id): Path<String>,
) -> Result<Json<TenantPluginOut>> {
    Ok(Json(registry::disable(&state, &ctx, &plugin_id).await?))
}

/// How many log lines.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogParams {
    /// 1-1000, default 100.
    pub limit: Option<u64>,
}

/// What a plugin logged for the tenant, newest first (errors included).
#[utoipa::path(get, path = "/api/v1/tenant/plugins/{plugin_id}/logs", tag = "plugins", params(LogParams),
    responses((status = 200, body = Vec<LogLine>)))]
pub async fn logs(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(plugin_id): Path<String>,
    Query(p): Query<LogParams>,
) -> Result<Json<Vec<LogLine>>> {
    Ok(Json(
        registry::logs(&state, &ctx, &plugin_id, p.limit.unwrap_or(100)).await?,
    ))
}

/// Headers a plugin's response may set.
fn allowed_header(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    matches!(
        n.as_str(),
        "content-type" | "cache-control" | "location" | "etag" | "retry-after"
    ) || n.starts_with("x-")
}

/// Headers the kernel sets on a request to a plugin's route (a client's
/// own headers with this prefix are dropped).
const CALLER_HEADER_PREFIX: &str = "trellis-";

/// Who is calling a plugin's route, for routes that answer differently by
/// caller (an agent's own commission statement): `trellis-user-id`, when
/// the caller is a user or acts through a user's key, and
/// `trellis-permissions`, the `object:action` pairs the caller holds
/// (space-separated, narrowed by an API key's scopes).
fn caller_headers(ctx: &RequestContext) -> Vec<(String, String)> {
    use crate::permissions::{Action, ObjectType};
    let mut out = Vec::new();
    if let Some(user) = ctx.user_id {
        out.push((format!("{CALLER_HEADER_PREFIX}user-id"), user.to_string()));
    }
    let held: Vec<String> = ObjectType::ALL
        .iter()
        .flat_map(|o| Action::ALL.iter().map(move |a| (*o, *a)))
        .filter(|(o, a)| ctx.can(*o, *a))
        .map(|(o, a)| format!("{}:{}", o.as_str(), a.as_str()))
        .collect();
    out.push((format!("{CALLER_HEADER_PREFIX}permissions"), held.join(" ")));
    out
}

/// Whether `route` (a manifest path, `/*` matching any rest) matches `path`.
fn route_matches(route: &str, path: &str) -> bool {
    match route.strip_suffix("/*") {
        Some(prefix) => path == prefix || path.starts_with(&format!("{prefix}/")),
        None => route == path,
    }
}

/// A request to a plugin's route: `/api/v1/plugins/{plugin_id}/{path}`.
/// Routes with `auth = "user"` need a signed-in caller of the tenant;
/// `public` ones (inbound webhooks) name the tenant by host or
/// `X-Trellis-Tenant` and must check their own signatures.
pub async fn plugin_route(
    State(state): State<AppState>,
    Path((plugin_id, rest)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    req: Request,
) -> Result<Response> {
    let (parts, body) = req.into_parts();
    let client = Client::from_parts(&parts, state.config.trust_forwarded_for);
    let signed_in = client.bearer.is_some() || client.session_cookie.is_some();
    let ctx = if signed_in {
        Some(crate::auth::authenticate(&state, &client, false).await?)
    } else {
        None
    };
    let tenant_id = match &ctx {
        Some(c) => c.tenant_id,
        None => {
            crate::auth::addressed_tenant(&state, &client, None)
                .await
                .map_err(|_| Error::RouteNotFound)?
                .id
        }
    };
    let rt = state.plugins.as_ref().ok_or(Error::RouteNotFound)?.clone();
    let enabled = rt.enabled(tenant_id).await?;
    let active = enabled
        .iter()
        .find(|a| a.row.plugin_id == plugin_id)
        .ok_or(Error::RouteNotFound)?
        .clone();
    let path = format!("/{rest}");
    let method = parts.method.as_str().to_owned();
    let route = active
        .manifest()
        .routes
        .iter()
        .find(|r| r.method == method && route_matches(&r.path, &path))
        .ok_or(Error::RouteNotFound)?;
    if route.auth == "user" {
        let caller = ctx.as_ref().ok_or(Error::Unauthenticated)?;
        if let Some((object, action)) = route
            .requires
            .as_deref()
            .and_then(crate::permissions::parse_permission)
        {
            caller.require(object, action)?;
        }
    }
    if ctx.is_none() {
        // Public routes count against the tenant's request rate too.
        let tenant = crate::crm::tenants::cached(&state, tenant_id).await?;
        if tenant.status != "active" {
            return Err(Error::TenantSuspended);
        }
        let limits = crate::tenancy::plans::Plan::parse(&tenant.plan)
            .map(crate::tenancy::plans::Plan::limits)
            .unwrap_or_default();
        crate::tenancy::usage::hit_rate(&state.db, tenant_id, limits.api_requests_per_minute)
            .await?;
    }
    let body = axum::body::to_bytes(body, state.config.max_body_bytes)
        .await
        .map_err(|_| Error::PayloadTooLarge)?;
    let mut headers: Vec<(String, String)> = parts
        .headers
        .iter()
        // Credentials stay with the kernel: a plugin never sees them. The
        // kernel's own `trellis-` headers come from the kernel only.
        .filter(|(k, _)| {
            !matches!(
                k.as_str(),
                "authorization" | "cookie" | "proxy-authorization"
            ) && !k.as_str().starts_with(CALLER_HEADER_PREFIX)
        })
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    if let Some(caller) = &ctx {
        headers.extend(caller_headers(caller));
    }
    let call = Call::Http(HttpRequest {
        method,
        path,
        query: query.unwrap_or_default(),
        headers,
        body: body.to_vec(),
    });
    match rt.invoke(&active, call, 0).await {
        Ok(Reply::Http(r)) => {
            let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_GATEWAY);
            let mut response = (status, Bytes::from(r.body)).into_response();
            for (k, v) in r.headers {
                if !allowed_header(&k) {
                    continue;
                }
                if let (Ok(name), Ok(value)) = (
                    HeaderName::try_from(k.as_str()),
                    HeaderValue::try_from(v.as_str()),
                ) {
                    response.headers_mut().insert(name, value);
                }
            }
            Ok(response)
        }
        Ok(other) => Err(Error::PluginFailed(format!(
            "plugin {plugin_id} answered a request with {other:?}"
        ))),
        Err(e) => Err(Error::PluginFailed(e.to_string())),
    }
}

/// The panels one plugin adds to a record page.
#[derive(Debug, Serialize, ToSchema)]
pub struct PluginPanels {
    pub plugin_id: String,
    pub panels: Vec<PanelOut>,
}

/// A panel: a title and labelled values (render them escaped).
#[derive(Debug, Serialize, ToSchema)]
pub struct PanelOut {
    pub id: String,
    pub title: String,
    pub items: Vec<PanelItemOut>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PanelItemOut {
    pub label: String,
    pub value: String,
    pub link: Option<String>,
}

/// Panels of every enabled plugin that reads the record's type, given the
/// record as that plugin may see it. A failing plugin's panels are left
/// out (and its failure recorded), never the page.
pub async fn panels_of<R: Record>(
    state: &AppState,
    ctx: &RequestContext,
    id: Uuid,
) -> Result<Vec<PluginPanels>> {
    let m = records::get::<R>(&state.db, ctx, id).await?;
    plugin_panels(
        state,
        ctx,
        R::OBJECT,
        R::OBJECT.as_str(),
        records::to_json::<R>(&m),
    )
    .await
}

/// Panels of a custom object's record (`object_key` is what plugins see as
/// its type, e.g. `listing`). Sensitive values never reach a plugin's panel.
pub async fn object_panels_of(
    state: &AppState,
    ctx: &RequestContext,
    object_key: &str,
    id: Uuid,
) -> Result<Vec<PluginPanels>> {
    let record = crate::crm::objects::get_sealed(&state.db, ctx, object_key, id).await?;
    plugin_panels(
        state,
        ctx,
        crate::permissions::ObjectType::CustomObject,
        object_key,
        record,
    )
    .await
}

/// Asks each enabled plugin that may read `object` for its panels on
/// `stored`, redacted by the plugin's grants and the caller's field rules.
async fn plugin_panels(
    state: &AppState,
    ctx: &RequestContext,
    object: crate::permissions::ObjectType,
    type_name: &str,
    stored: Value,
) -> Result<Vec<PluginPanels>> {
    let Some(rt) = state.plugins.clone() else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for active in rt.enabled(ctx.tenant_id).await?.iter() {
        if !active
            .policy
            .allows(object, crate::permissions::Action::Read)
        {
            continue;
        }
        let mut visible: Value = stored.clone();
        active.policy.redact(object, &mut visible);
        ctx.policy.redact(object, &mut visible);
        if let Some(custom) = visible.get_mut("custom").and_then(Value::as_object_mut) {
            custom.retain(|_, v| v.get(crate::crm::sensitive::ENC).is_none());
        }
        let call = Call::Panels(type_name.to_owned(), visible.to_string());
        if let Ok(Reply::Panels(panels)) = rt.invoke(active, call, 0).await
            && !panels.is_empty()
        {
            out.push(PluginPanels {
                plugin_id: active.row.plugin_id.clone(),
                panels: panels
                    .into_iter()
                    .map(|p| PanelOut {
                        id: p.id,
                        title: p.title,
                        items: p
                            .items
                            .into_iter()
                            .map(|i| PanelItemOut {
                                label: i.label,
                                value: i.value,
                                link: i
                                    .link
                                    .filter(|l| crate::web::security::local_path(l).is_some()),
                            })
                            .collect(),
                    })
                    .collect(),
            });
        }
    }
    Ok(out)
}

/// Panels plugins add to a custom object record's page.
#[utoipa::path(get, path = "/api/v1/objects/{key}/records/{id}/panels", tag = "custom objects",
    responses((status = 200, body = Vec<PluginPanels>), (status = 404, body = Problem)))]
pub async fn object_panels(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((key, id)): Path<(String, Uuid)>,
) -> Result<Json<Vec<PluginPanels>>> {
    object_panels_of(&state, &ctx, &key, id).await.map(Json)
}

macro_rules! panels_handler {
    ($name:ident, $rec:ty, $path:literal, $tag:literal) => {
        /// Panels plugins add to this record's page.
        #[utoipa::path(get, path = $path, tag = $tag,
            responses((status = 200, body = Vec<PluginPanels>), (status = 404, body = Problem)))]
        pub async fn $name(
            State(state): State<AppState>,
            ctx: RequestContext,
            Path(id): Path<Uuid>,
        ) -> Result<Json<Vec<PluginPanels>>> {
            panels_of::<$rec>(&state, &ctx, id).await.map(Json)
        }
    };
}

panels_handler!(
    contact_panels,
    Contacts,
    "/api/v1/contacts/{id}/panels",
    "contacts"
);
panels_handler!(
    account_panels,
    Accounts,
    "/api/v1/accounts/{id}/panels",
    "accounts"
);
panels_handler!(deal_panels, Deals, "/api/v1/deals/{id}/panels", "deals");
panels_handler!(
    activity_panels,
    Activities,
    "/api/v1/activities/{id}/panels",
    "activities"
);
