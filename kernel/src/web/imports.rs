//! Imports in the UI: upload a file, choose where each column goes, watch
//! the job's progress (the page reloads itself by a `Refresh` header; no
//! script needed), then
//! read the rejects and download the error file. Every step calls the same
//! service as `/api/v1/imports`.

use axum::Router;
use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use futures_util::StreamExt;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::AppState;
use crate::error::Error;
use crate::imports::mapping::{ColumnMapping, Target};
use crate::imports::sources::Format;
use crate::imports::{self, ImportView, Mode, StartRequest};
use crate::permissions::{Action, ObjectType};
use crate::web::forms::FormData;
use crate::web::{PageError, Ui, security};

type PageResult = Result<Response, PageError>;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/imports",
            get(index)
                .post(upload)
                // The file is streamed and capped at `max_import_bytes`.
                .layer(DefaultBodyLimit::disable()),
        )
        .route("/imports/{id}", get(show))
        .route("/imports/{id}/start", post(start))
        .route("/imports/{id}/cancel", post(cancel))
        .route("/imports/{id}/errors-file", get(errors_file))
}

/// Whether the caller may import anything (the navigation's link).
pub fn visible(ctx: &crate::context::RequestContext) -> bool {
    [ObjectType::Contact, ObjectType::Account]
        .iter()
        .any(|o| ctx.can(*o, Action::Import))
}

fn objects(ui: &Ui) -> Vec<Value> {
    [
        (ObjectType::Contact, "contacts", "Contacts"),
        (ObjectType::Account, "accounts", "Accounts"),
    ]
    .iter()
    .filter(|(o, ..)| ui.ctx.can(*o, Action::Import))
    .map(|(_, value, label)| json!({"value": value, "label": label}))
    .collect()
}

async fn index(State(state): State<AppState>, ui: Ui) -> PageResult {
    if !visible(&ui.ctx) {
        return Err(PageError(Error::Forbidden(
            "your role may not import records".to_owned(),
        )));
    }
    let list = imports::list(&state.db, &ui.ctx).await?;
    Ok(ui.render(
        &state,
        "imports.html",
        json!({"title": "Imports", "objects": objects(&ui), "imports": list, "errors": []}),
    ))
}

/// The upload form's post: `_csrf` and `object` come before the file (a
/// browser sends fields in the form's order), so the file streams straight
/// into the import without being held in memory.
async fn upload(State(state): State<AppState>, ui: Ui, mut form: Multipart) -> PageResult {
    let mut csrf_ok = false;
    let mut object = None;
    while let Some(field) = form.next_field().await.map_err(bad_form)? {
        match field.name() {
            Some("_csrf") => {
                let token = small_text(field).await?;
                csrf_ok = security::same(&token, &ui.csrf);
            }
            Some("object") => object = Some(small_text(field).await?),
            Some("file") => {
                if !csrf_ok {
                    return Err(PageError(Error::Forbidden(
                        "the form's security token is missing or stale; reload the page and try again"
                            .to_owned(),
                    )));
                }
                let object = imports::object_named(object.as_deref().unwrap_or(""))?;
                let filename = field.file_name().unwrap_or_default().to_owned();
                let Some(format) = Format::parse(&filename) else {
                    return again(
                        &state,
                        &ui,
                        "Choose a CSV, XLSX, JSON lines (.jsonl) or vCard (.vcf) file.",
                    )
                    .await;
                };
                let limit = state.config.max_import_bytes;
                let mut seen: u64 = 0;
                let body = field.map(move |piece| {
                    let piece = piece.map_err(|e| e.to_string())?;
                    seen += piece.len() as u64;
                    if seen > limit {
                        return Err(format!(
                            "the file is larger than the limit of {limit} bytes"
                        ));
                    }
                    Ok(piece)
                });
                let view = match imports::upload(
                    &state.db,
                    &ui.ctx,
                    object,
                    format,
                    &filename,
                    Box::pin(body),
                )
                .await
                {
                    Ok(v) => v,
                    Err(Error::BadRequest(m)) => return again(&state, &ui, &m).await,
                    Err(e @ Error::Validation(_)) => {
                        return again(&state, &ui, &e.summary()).await;
                    }
                    Err(e) => return Err(e.into()),
                };
                return Ok(Redirect::to(&format!("/imports/{}", view.id)).into_response());
            }
            _ => {}
        }
    }
    again(&state, &ui, "Choose a file to import.").await
}

/// A short text field of the form, refused past 1 KiB (the body has no
/// overall cap here: the file streams).
async fn small_text(mut field: axum::extract::multipart::Field<'_>) -> Result<String, PageError> {
    let mut bytes = Vec::new();
    while let Some(piece) = field.chunk().await.map_err(bad_form)? {
        bytes.extend_from_slice(&piece);
        if bytes.len() > 1024 {
            return Err(PageError(Error::PayloadTooLarge));
        }
    }
    String::from_utf8(bytes)
        .map_err(|_| PageError(Error::BadRequest("a form field is not UTF-8".to_owned())))
}

fn bad_form(e: axum::extract::multipart::MultipartError) -> PageError {
    PageError(Error::BadRequest(format!("the upload broke off: {e}")))
}

/// The imports page again, with what went wrong.
async fn again(state: &AppState, ui: &Ui, error: &str) -> PageResult {
    let list = imports::list(&state.db, &ui.ctx).await?;
    let mut res = ui.render(
        state,
        "imports.html",
        json!({"title": "Imports", "objects": objects(ui), "imports": list, "errors": [error]}),
    );
    *res.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
    Ok(res)
}

async fn show(State(state): State<AppState>, ui: Ui, Path(id): Path<Uuid>) -> PageResult {
    let (view, targets) = imports::get_with_targets(&state.db, &ui.ctx, id).await?;
    render_import(&state, &ui, view, targets, Vec::new(), StatusCode::OK).await
}

async fn render_import(
    state: &AppState,
    ui: &Ui,
    view: ImportView,
    targets: Option<Vec<Target>>,
    errors: Vec<String>,
    status: StatusCode,
) -> PageResult {
    let running = matches!(view.status.as_str(), "queued" | "running");
    let mut page = json!({
        "title": format!("Import of {}", view.filename),
        "import": view,
        "running": running,
        "errors": errors,
    });
    // Targets come only while a mapping can still be chosen.
    if let Some(targets) = &targets {
        let chosen = view
            .options
            .as_ref()
            .map(|o| o.mapping.clone())
            .or_else(|| view.suggested_mapping.clone())
            .unwrap_or_default();
        let columns: Vec<Value> = view
            .headers
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let field = chosen
                    .iter()
                    .find(|m| &m.column == h)
                    .map(|m| m.field.clone())
                    .unwrap_or_default();
                let sample: Vec<&str> = view
                    .sample
                    .iter()
                    .filter_map(|r| r.get(i).map(String::as_str))
                    .filter(|s| !s.is_empty())
                    .take(2)
                    .collect();
                json!({"index": i, "header": h, "field": field, "sample": sample.join(", ")})
            })
            .collect();
        page["columns"] = json!(columns);
        page["targets"] = json!(
            targets
                .iter()
                .map(|t| json!({"key": t.key, "label": t.label}))
                .collect::<Vec<_>>()
        );
        page["can_start"] = json!(true);
    }
    if view.rejected > 0 && !running {
        let rejects = imports::rejects::list(&state.db, &ui.ctx, view.id, 0, 100).await?;
        page["rejects"] = json!(rejects);
    }
    let mut res = ui.render(state, "import.html", page);
    *res.status_mut() = status;
    if running {
        // Browsers reload a page sent with `Refresh` (no script, and no
        // `<meta http-equiv>`, which themes may not use).
        res.headers_mut()
            .insert("refresh", header::HeaderValue::from_static("2"));
    }
    Ok(res)
}

async fn start(
    State(state): State<AppState>,
    ui: Ui,
    Path(id): Path<Uuid>,
    form: FormData,
) -> PageResult {
    ui.check_csrf(&form)?;
    let (view, targets) = imports::get_with_targets(&state.db, &ui.ctx, id).await?;
    let mapping: Vec<ColumnMapping> = view
        .headers
        .iter()
        .enumerate()
        .filter_map(|(i, h)| {
            let field = form.text(&format!("map_{i}"))?;
            Some(ColumnMapping {
                column: h.clone(),
                field,
                transform: None,
            })
        })
        .collect();
    let mode = match form.get("mode") {
        Some("update") => Mode::Update,
        Some("upsert") => Mode::Upsert,
        _ => Mode::Create,
    };
    let req = StartRequest {
        mapping: Some(mapping),
        mode: Some(mode),
        match_on: form.text("match_on"),
        create_missing_accounts: Some(form.has("create_missing_accounts")),
        dry_run: form.has("dry_run"),
        save_template: form.text("save_template"),
        ..StartRequest::default()
    };
    match imports::start(&state.db, &ui.ctx, id, req).await {
        Ok(_) => Ok(Redirect::to(&format!("/imports/{id}")).into_response()),
        Err(e @ (Error::Validation(_) | Error::Conflict { .. } | Error::BadRequest(_))) => {
            render_import(
                &state,
                &ui,
                view,
                targets,
                vec![e.summary()],
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
        Err(e) => Err(e.into()),
    }
}

async fn cancel(
    State(state): State<AppState>,
    ui: Ui,
    Path(id): Path<Uuid>,
    form: FormData,
) -> PageResult {
    ui.check_csrf(&form)?;
    imports::cancel(&state.db, &ui.ctx, id).await?;
    Ok(Redirect::to(&format!("/imports/{id}")).into_response())
}

async fn errors_file(State(state): State<AppState>, ui: Ui, Path(id): Path<Uuid>) -> PageResult {
    let (format, filename, stream) =
        imports::rejects::file(state.db.clone(), ui.ctx.clone(), id).await?;
    let (content_type, _) = imports::rejects::file_type(format);
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                crate::api::attachment(&filename),
            ),
        ],
        axum::body::Body::from_stream(stream),
    )
        .into_response())
}
