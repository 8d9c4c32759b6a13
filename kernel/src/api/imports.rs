//! `/api/v1/imports`: upload a file, see the suggested mapping, start the
//! import (or a dry run), follow its progress, cancel it, and fetch the
//! rejected rows and the error file; `/api/v1/import-templates` for saved
//! mappings.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::AppState;
use crate::api::extract::JsonBody;
use crate::context::RequestContext;
use crate::error::{Error, Problem, Result};
use crate::imports::mapping::TargetInfo;
use crate::imports::rejects::{self, Reject};
use crate::imports::sources::Format;
use crate::imports::{self, ImportView, StartRequest, Template, TemplateInput};

/// Query of an upload.
#[derive(Debug, Deserialize, IntoParams)]
pub struct UploadQuery {
    /// `contacts` or `accounts`.
    pub object: String,
    /// `csv`, `xlsx`, `jsonl` or `vcard`; by default from `filename`.
    #[serde(default)]
    pub format: Option<String>,
    /// The file's name, shown in lists and used for the error file.
    #[serde(default)]
    pub filename: Option<String>,
}

/// Uploads a file to import (the request body is the file, any size up to
/// the configured limit, streamed). Answers with what was read: encoding,
/// delimiter, headers, the first rows, the row count and a suggested
/// mapping. Nothing is written to records until the import is started.
#[utoipa::path(post, path = "/api/v1/imports", tag = "imports", params(UploadQuery),
    request_body(content = String, content_type = "application/octet-stream"),
    responses((status = 201, body = ImportView), (status = 403, body = Problem), (status = 413, body = Problem), (status = 422, body = Problem)))]
pub async fn upload(
    State(state): State<AppState>,
    ctx: RequestContext,
    Query(q): Query<UploadQuery>,
    body: Body,
) -> Result<Response> {
    let object = imports::object_named(&q.object)?;
    let filename = q.filename.clone().unwrap_or_else(|| "upload".to_owned());
    let format = q
        .format
        .as_deref()
        .or(q.filename.as_deref())
        .and_then(Format::parse)
        .ok_or_else(|| {
            Error::field(
                "format",
                "invalid_value",
                "name the format (csv, xlsx, jsonl, vcard) or give a filename with that extension",
            )
        })?;
    let limit = state.config.max_import_bytes;
    let mut seen: u64 = 0;
    let stream = body.into_data_stream().map(move |piece| {
        let piece = piece.map_err(|e| e.to_string())?;
        seen += piece.len() as u64;
        if seen > limit {
            return Err(format!(
                "the file is larger than the limit of {limit} bytes"
            ));
        }
        Ok(piece)
    });
    let view = imports::upload(&state.db, &ctx, object, format, &filename, Box::pin(stream))
        .await
        .map_err(|e| match e {
            Error::BadRequest(m) if m.contains("larger than the limit") => Error::PayloadTooLarge,
            other => other,
        })?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

/// The tenant's recent imports, newest first.
#[utoipa::path(get, path = "/api/v1/imports", tag = "imports",
    responses((status = 200, body = Vec<ImportView>)))]
pub async fn list(
    State(state): State<AppState>,
    ctx: RequestContext,
) -> Result<Json<Vec<ImportView>>> {
    Ok(Json(imports::list(&state.db, &ctx).await?))
}

/// One import: its state and progress (rows done, rows a second, seconds
/// left), and before it starts the suggested mapping.
#[utoipa::path(get, path = "/api/v1/imports/{id}", tag = "imports",
    responses((status = 200, body = ImportView), (status = 404, body = Problem)))]
pub async fn get(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<Uuid>,
) -> Result<Json<ImportView>> {
    Ok(Json(imports::get(&state.db, &ctx, id).await?))
}

/// Starts an uploaded import (or a dry run that only reports the errors)
/// with a mapping, a template or the suggested mapping. It runs as a
/// background job; follow it with `GET /api/v1/imports/{id}`.
#[utoipa::path(post, path = "/api/v1/imports/{id}/start", tag = "imports", request_body = StartRequest,
    responses((status = 202, body = ImportView), (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn start(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<Uuid>,
    JsonBody(req): JsonBody<StartRequest>,
) -> Result<Response> {
    let view = imports::start(&state.db, &ctx, id, req).await?;
    Ok((StatusCode::ACCEPTED, Json(view)).into_response())
}

/// Cancels an import after its current batch; committed batches stay.
#[utoipa::path(post, path = "/api/v1/imports/{id}/cancel", tag = "imports",
    responses((status = 200, body = ImportView), (status = 409, body = Problem)))]
pub async fn cancel(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<Uuid>,
) -> Result<Json<ImportView>> {
    Ok(Json(imports::cancel(&state.db, &ctx, id).await?))
}

/// Paging through rejected rows.
#[derive(Debug, Deserialize, IntoParams)]
pub struct RejectsQuery {
    /// Rows after this row number.
    #[serde(default)]
    pub after: Option<i64>,
    #[serde(default)]
    pub limit: Option<u64>,
}

/// The rows the import (or dry run) rejected, with the row, column and
/// reason of each error.
#[utoipa::path(get, path = "/api/v1/imports/{id}/rejects", tag = "imports", params(RejectsQuery),
    responses((status = 200, body = Vec<Reject>), (status = 404, body = Problem)))]
pub async fn list_rejects(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<Uuid>,
    Query(q): Query<RejectsQuery>,
) -> Result<Json<Vec<Reject>>> {
    Ok(Json(
        rejects::list(
            &state.db,
            &ctx,
            id,
            q.after.unwrap_or(0),
            q.limit.unwrap_or(100),
        )
        .await?,
    ))
}

/// The rejected rows in the upload's format (CSV with the original columns
/// plus `Import errors`; JSON lines; vCard), ready to fix and import again.
#[utoipa::path(get, path = "/api/v1/imports/{id}/errors-file", tag = "imports",
    responses((status = 200, content_type = "text/csv"), (status = 404, body = Problem)))]
pub async fn errors_file(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<Uuid>,
) -> Result<Response> {
    let (format, name, stream) = rejects::file(state.db.clone(), ctx, id).await?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                rejects::file_type(format).0.to_owned(),
            ),
            (header::CONTENT_DISPOSITION, crate::api::attachment(&name)),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

/// The fields an import of `object` (`contacts`, `accounts`) can fill.
#[utoipa::path(get, path = "/api/v1/imports/fields/{object}", tag = "imports",
    responses((status = 200, body = Vec<TargetInfo>), (status = 422, body = Problem)))]
pub async fn fields(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(object): Path<String>,
) -> Result<Json<Vec<TargetInfo>>> {
    let object = imports::object_named(&object)?;
    ctx.require(object, crate::permissions::Action::Import)?;
    let targets = imports::targets(&state.db, &ctx, object).await?;
    Ok(Json(targets.iter().map(|t| t.info()).collect()))
}

/// Saved mappings.
#[utoipa::path(get, path = "/api/v1/import-templates", tag = "imports",
    responses((status = 200, body = Vec<Template>)))]
pub async fn list_templates(
    State(state): State<AppState>,
    ctx: RequestContext,
) -> Result<Json<Vec<Template>>> {
    Ok(Json(imports::templates(&state.db, &ctx).await?))
}

/// Saves a mapping and options under a name (replacing one of that name).
#[utoipa::path(post, path = "/api/v1/import-templates", tag = "imports", request_body = TemplateInput,
    responses((status = 201, body = Template), (status = 422, body = Problem)))]
pub async fn create_template(
    State(state): State<AppState>,
    ctx: RequestContext,
    JsonBody(input): JsonBody<TemplateInput>,
) -> Result<Response> {
    let t = imports::create_template(&state.db, &ctx, input).await?;
    Ok((StatusCode::CREATED, Json(t)).into_response())
}

/// Deletes a saved mapping.
#[utoipa::path(delete, path = "/api/v1/import-templates/{id}", tag = "imports",
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn delete_template(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<Uuid>,
) -> Result<StatusCode> {
    imports::delete_template(&state.db, &ctx, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
