//! The HTTP API: routes under `/api/v1`, the OpenAPI document at
//! `/api/openapi.json`, and the middleware every request passes (request
//! id, log line with timing, body limit, problem+json for every error).

pub mod admin;
pub mod auth;
pub mod bulk;
pub mod export;
pub mod extract;
pub mod imports;
pub mod merges;
pub mod objects;
pub mod platform;
pub mod plugins;
pub mod privacy;
pub mod records;
pub mod relations;
pub mod settings;

use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::{Error, Problem};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Trellis API",
        description = "The REST API of the Trellis CRM kernel. Authenticate with `Authorization: Bearer <token>`. \
                       Errors are RFC 9457 problem documents with a stable `code`."
    ),
    components(schemas(Problem, crate::error::FieldError, crate::error::BulkItemError)),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
        };
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        openapi.security = Some(vec![SecurityRequirement::new(
            "bearer",
            Vec::<String>::new(),
        )]);
    }
}

/// The routes with their OpenAPI description, before state is attached.
fn api_routes() -> OpenApiRouter<AppState> {
    use records::{accounts, activities, contacts, deals};
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(contacts::list, contacts::create))
        .routes(routes!(contacts::get, contacts::patch, contacts::delete))
        .routes(routes!(contacts::bulk))
        .routes(routes!(contacts::bulk_action))
        .routes(routes!(accounts::list, accounts::create))
        .routes(routes!(accounts::get, accounts::patch, accounts::delete))
        .routes(routes!(accounts::bulk))
        .routes(routes!(accounts::bulk_action))
        .routes(routes!(deals::list, deals::create))
        .routes(routes!(deals::get, deals::patch, deals::delete))
        .routes(routes!(deals::bulk))
        .routes(routes!(deals::bulk_action))
        .routes(routes!(activities::list, activities::create))
        .routes(routes!(
            activities::get,
            activities::patch,
            activities::delete
        ))
        .routes(routes!(activities::bulk))
        .routes(routes!(activities::bulk_action))
        .routes(routes!(relations::contact_timeline))
        .routes(routes!(relations::contact_duplicates))
        .routes(routes!(relations::account_duplicates))
        .routes(routes!(merges::merge_contacts))
        .routes(routes!(merges::merge_accounts))
        .routes(routes!(merges::list))
        .routes(routes!(merges::get))
        .routes(routes!(merges::undo))
        .routes(routes!(merges::scan))
        .routes(routes!(merges::list_pairs))
        .routes(routes!(merges::dismiss))
        .routes(routes!(bulk::get))
        .routes(routes!(bulk::cancel))
        .routes(routes!(bulk::restore))
        .routes(routes!(bulk::trash))
        .routes(routes!(bulk::restore_trashed))
        .routes(routes!(relations::account_timeline))
        .routes(routes!(relations::deal_timeline))
        .routes(routes!(relations::move_deal))
        .routes(routes!(relations::deal_stage_history))
        .routes(routes!(relations::account_hierarchy))
        .routes(routes!(
            relations::list_account_links,
            relations::link_account
        ))
        .routes(routes!(relations::unlink_account))
        .routes(routes!(relations::list_relationships, relations::relate))
        .routes(routes!(relations::unrelate))
        .routes(routes!(relations::search))
        .routes(routes!(imports::list, imports::upload))
        .routes(routes!(imports::get))
        .routes(routes!(imports::start))
        .routes(routes!(imports::cancel))
        .routes(routes!(imports::list_rejects))
        .routes(routes!(imports::errors_file))
        .routes(routes!(imports::fields))
        .routes(routes!(imports::list_templates, imports::create_template))
        .routes(routes!(imports::delete_template))
        .routes(routes!(relations::health))
        .routes(routes!(settings::list_pipelines, settings::create_pipeline))
        .routes(routes!(
            settings::get_pipeline,
            settings::update_pipeline,
            settings::delete_pipeline
        ))
        .routes(routes!(settings::list_fields, settings::create_field))
        .routes(routes!(
            settings::get_field,
            settings::update_field,
            settings::delete_field
        ))
        .routes(routes!(settings::object_schema))
        .routes(routes!(auth::login_handler))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::me))
        .routes(routes!(auth::list_sessions))
        .routes(routes!(auth::revoke_session))
        .routes(routes!(auth::mfa_enroll))
        .routes(routes!(auth::mfa_activate))
        .routes(routes!(auth::request_reset))
        .routes(routes!(auth::confirm_reset))
        .routes(routes!(auth::accept_invitation))
        .routes(routes!(auth::jwks))
        .routes(routes!(auth::list_api_keys, auth::create_api_key))
        .routes(routes!(auth::revoke_api_key))
        .routes(routes!(admin::list_users, admin::invite_user))
        .routes(routes!(admin::update_user))
        .routes(routes!(admin::revoke_user_sessions))
        .routes(routes!(admin::list_roles, admin::put_role))
        .routes(routes!(admin::delete_role))
        .routes(routes!(admin::list_teams, admin::create_team))
        .routes(routes!(admin::update_team, admin::delete_team))
        .routes(routes!(admin::get_tenant, admin::update_tenant))
        .routes(routes!(admin::search_audit))
        .routes(routes!(admin::export_audit))
        .routes(routes!(admin::verify_audit))
        .routes(routes!(platform::list_resellers, platform::create_reseller))
        .routes(routes!(platform::list_tenants, platform::create_tenant))
        .routes(routes!(platform::update_tenant))
        .routes(routes!(privacy::export))
        .routes(routes!(privacy::erase))
        .routes(routes!(privacy::legal_hold))
        .routes(routes!(privacy::list_consents, privacy::record_consent))
        .routes(routes!(
            admin::get_support_access,
            admin::grant_support_access,
            admin::revoke_support_access
        ))
        .routes(routes!(export::contacts))
        .routes(routes!(export::accounts))
        .routes(routes!(export::deals))
        .routes(routes!(export::activities))
        .routes(routes!(objects::list_objects))
        .routes(routes!(objects::get_object, objects::put_object))
        .routes(routes!(objects::list_records, objects::create_record))
        .routes(routes!(
            objects::get_record,
            objects::patch_record,
            objects::delete_record
        ))
        .routes(routes!(admin::get_usage))
        .routes(routes!(admin::list_editions))
        .routes(routes!(admin::apply_edition))
        .routes(routes!(plugins::install, plugins::list_packages))
        .routes(routes!(plugins::remove_package))
        .routes(routes!(plugins::available))
        .routes(routes!(plugins::tenant_plugins))
        .routes(routes!(plugins::enable, plugins::disable))
        .routes(routes!(plugins::logs))
        .routes(routes!(plugins::contact_panels))
        .routes(routes!(plugins::object_panels))
        .routes(routes!(plugins::account_panels))
        .routes(routes!(plugins::deal_panels))
        .routes(routes!(plugins::activity_panels))
}

/// A `Content-Disposition` for a download named `name` (RFC 6266): an
/// ASCII fallback with anything unsafe in a quoted string replaced, and the
/// name itself in `filename*` (RFC 8187) for browsers that read it.
pub fn attachment(name: &str) -> String {
    let fallback: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded: String = form_urlencoded::byte_serialize(name.as_bytes())
        .collect::<String>()
        .replace('+', "%20");
    format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

/// The OpenAPI 3.1 document of the API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_routes().split_for_parts().1
}

/// The application's router.
pub fn router(state: AppState) -> Router {
    let (router, doc) = api_routes().split_for_parts();
    let doc_json = doc.to_pretty_json().unwrap_or_default();
    let max_body = state.config.max_body_bytes;
    let pages = crate::web::pages_layer(
        state.clone(),
        crate::web::router().with_state(state.clone()),
    );
    router
        .route(
            "/api/openapi.json",
            axum::routing::get(move || async move {
                ([(header::CONTENT_TYPE, "application/json")], doc_json)
            }),
        )
        .route(
            "/api/v1/plugins/{plugin_id}/{*rest}",
            axum::routing::any(plugins::plugin_route),
        )
        .fallback(|| async { Error::RouteNotFound })
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
        .merge(pages)
        .layer(middleware::from_fn(problem_for_bare_errors))
        .layer(middleware::from_fn(log_request))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}

/// One structured log line per request, with its id, status and duration.
async fn log_request(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let response = next.run(req).await;
    let elapsed_us = started.elapsed().as_micros() as u64;
    tracing::info!(
        target: "trellis::http",
        %method,
        %path,
        status = response.status().as_u16(),
        elapsed_us,
        request_id = %request_id,
        "request"
    );
    response
}

/// Errors produced below our handlers (axum's 405 with `Allow`, extractor
/// rejections in plain text) get a problem document too; headers are kept.
async fn problem_for_bare_errors(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.starts_with("application/problem+json")
                || v.starts_with("application/json")
                || v.starts_with("text/html")
        });
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    // Rejection texts are short; anything larger is not shown.
    let text = axum::body::to_bytes(body, 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    // The same stable codes as the kernel's own errors.
    let code = match status.as_u16() {
        400 => Error::BadRequest(String::new()).code(),
        404 => Error::RouteNotFound.code(),
        405 => Error::MethodNotAllowed.code(),
        413 => Error::PayloadTooLarge.code(),
        415 => Error::UnsupportedMediaType.code(),
        _ => "http_error",
    };
    let detail = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_lowercase()
    } else {
        text
    };
    let (_, body) = Problem::new(status, code, detail)
        .into_response()
        .into_parts();
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::new(body))
}

#[cfg(test)]
mod attachment_tests {
    use super::attachment;

    #[test]
    fn download_names_are_safe_in_the_header() {
        assert_eq!(
            attachment("people.csv"),
            "attachment; filename=\"people.csv\"; filename*=UTF-8''people.csv"
        );
        assert_eq!(
            attachment("Zoë \"x\"\\\r.csv"),
            "attachment; filename=\"Zo_ _x___.csv\"; filename*=UTF-8''Zo%C3%AB%20%22x%22%5C%0D.csv"
        );
    }
}
