//! Merging in the browser: a side-by-side comparison of two or more
//! contacts or accounts where the user picks the record to keep and, field
//! by field, the value it keeps; undoing a merge from the survivor's page;
//! and the review queue of likely duplicates a scan found.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{Choices, PageResult, RecordPage, display, form_fields, object_json};
use crate::AppState;
use crate::crm::accounts::Accounts;
use crate::crm::contacts::Contacts;
use crate::crm::duplicates::queue;
use crate::crm::merge::{self, MergeRequest, Rule};
use crate::crm::records;
use crate::error::Error;
use crate::permissions::{Action, ObjectType};
use crate::web::forms::{self, FormData};
use crate::web::{PageError, Ui};

/// The records named by `id` and the query's `with` ids, in that order.
fn ids_of(id: Uuid, raw: Option<&str>) -> Vec<Uuid> {
    let mut ids = vec![id];
    for (k, v) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        if k == "with"
            && let Ok(other) = Uuid::parse_str(v.trim())
            && !ids.contains(&other)
            && ids.len() <= merge::MAX_MERGED
        {
            ids.push(other);
        }
    }
    ids
}

/// The comparison page.
pub(super) async fn compare<R: RecordPage>(
    State(state): State<AppState>,
    ui: Ui,
    Path(id): Path<Uuid>,
    RawQuery(raw): RawQuery,
) -> PageResult {
    let ids = ids_of(id, raw.as_deref());
    page::<R>(&state, &ui, &ids, None).await
}

async fn page<R: RecordPage>(
    state: &AppState,
    ui: &Ui,
    ids: &[Uuid],
    error: Option<String>,
) -> PageResult {
    ui.ctx.require(R::OBJECT, Action::Update)?;
    let mut shown = Vec::with_capacity(ids.len());
    for id in ids {
        let m = records::get::<R>(&state.db, &ui.ctx, *id).await?;
        shown.push(m);
    }
    let revealed = records::reveal_many::<R>(&state.db, &ui.ctx, &shown, true).await?;
    let choices = Choices::load(state, &ui.ctx, R::OBJECT).await?;
    let fields = form_fields::<R>(state, &ui.ctx, &choices).await?;
    let mut rows = Vec::new();
    for f in fields.iter().filter(|f| !f.read_only) {
        let values: Vec<&Value> = revealed
            .iter()
            .map(|r| forms::value_at(r, &f.name))
            .collect();
        if values.iter().all(|v| crate::crm::merge::is_blank(v)) {
            continue;
        }
        let list = values.iter().any(|v| v.is_array());
        // The default: the first record, or the first with a value.
        let default = values
            .iter()
            .position(|v| !crate::crm::merge::is_blank(v))
            .unwrap_or(0);
        let mut cells = Vec::new();
        for (i, r) in revealed.iter().enumerate() {
            let shown = display(state, &ui.ctx, f, values[i], r, &choices).await;
            cells.push(json!({
                "id": ids[i],
                "text": shown["text"],
                "chosen": i == default,
            }));
        }
        rows.push(json!({"name": f.name, "label": f.label, "list": list, "cells": cells}));
    }
    let records: Vec<Value> = revealed
        .iter()
        .zip(ids)
        .map(|(r, id)| {
            json!({
                "id": id,
                "title": r.get(R::TITLE).and_then(Value::as_str).unwrap_or(R::SINGULAR),
                "href": format!("/{}/{id}", R::PATH),
            })
        })
        .collect();
    let undo_days = crate::crm::tenants::cached(state, ui.ctx.tenant_id)
        .await?
        .merge_undo_days;
    let response = ui.render(
        state,
        "merge.html",
        json!({
            "title": format!("Merge {}", R::PLURAL.to_lowercase()),
            "object": object_json::<R>(),
            "action": format!("/{}/{}/merge", R::PATH, ids[0]),
            "records": records,
            "rows": rows,
            "undo_days": undo_days,
            "errors": {"": error},
        }),
    );
    Ok(response)
}

/// Merges as the comparison form says.
pub(super) async fn submit<R: RecordPage>(
    State(state): State<AppState>,
    ui: Ui,
    Path(id): Path<Uuid>,
    form: FormData,
) -> PageResult {
    ui.check_csrf(&form)?;
    let mut ids = vec![id];
    for v in form.all("with") {
        if let Ok(other) = Uuid::parse_str(v.trim())
            && !ids.contains(&other)
        {
            ids.push(other);
        }
    }
    let survivor = form
        .get("survivor")
        .and_then(|s| Uuid::parse_str(s).ok())
        .filter(|s| ids.contains(s))
        .unwrap_or(id);
    let choices = Choices::load(&state, &ui.ctx, R::OBJECT).await?;
    let mut fields = BTreeMap::new();
    for f in form_fields::<R>(&state, &ui.ctx, &choices).await? {
        if let Some(from) = form
            .get(&format!("field.{}", f.name))
            .and_then(|v| Uuid::parse_str(v).ok())
        {
            // The form's `email` is the primary address: chosen with the list.
            let name = if f.name == "email" {
                "emails".to_owned()
            } else {
                f.name.clone()
            };
            fields.insert(name, from);
        }
    }
    let req = MergeRequest {
        survivor_id: survivor,
        merged_ids: ids.iter().copied().filter(|i| *i != survivor).collect(),
        rule: Rule::Survivor,
        fields,
        version: None,
    };
    let done = match R::OBJECT {
        ObjectType::Account => merge::merge::<Accounts>(&state.db, &ui.ctx, req).await,
        _ => merge::merge::<Contacts>(&state.db, &ui.ctx, req).await,
    };
    match done {
        Ok(_) => Ok(Redirect::to(&format!("/{}/{survivor}", R::PATH)).into_response()),
        Err(
            e @ (Error::Validation(_) | Error::Conflict { .. } | Error::VersionConflict { .. }),
        ) => {
            let r = page::<R>(&state, &ui, &ids, Some(e.summary())).await?;
            Ok(crate::web::with_status(r, StatusCode::UNPROCESSABLE_ENTITY))
        }
        Err(e) => Err(e.into()),
    }
}

/// Undoes a merge, from the survivor's page.
pub(super) async fn undo(
    State(state): State<AppState>,
    ui: Ui,
    Path(id): Path<Uuid>,
    form: FormData,
) -> PageResult {
    ui.check_csrf(&form)?;
    let m = merge::undo(&state.db, &ui.ctx, id).await?;
    Ok(Redirect::to(&format!("/{}s/{}", m.object_type, m.survivor_id)).into_response())
}

/// The merges into a record that can still be undone, for its page.
pub(super) async fn undoable(
    state: &AppState,
    ui: &Ui,
    object: ObjectType,
    id: Uuid,
) -> Result<Value, Error> {
    if !matches!(object, ObjectType::Contact | ObjectType::Account) {
        return Ok(Value::Null);
    }
    let now = crate::clock::now();
    let list = merge::list(&state.db, &ui.ctx, object, Some(id), 20).await?;
    Ok(Value::Array(
        list.into_iter()
            .filter(|m| m.undone_at.is_none() && m.undo_until > now)
            .map(|m| {
                json!({
                    "id": m.id,
                    "count": m.merged_ids.len(),
                    "at": m.created_at.format("%Y-%m-%d %H:%M").to_string(),
                    "until": m.undo_until.format("%Y-%m-%d").to_string(),
                })
            })
            .collect(),
    ))
}

/// Which queue.
#[derive(Debug, Deserialize)]
pub(super) struct QueueParams {
    object: Option<String>,
    notice: Option<String>,
}

/// The URL segment of a queue's record type (and the `object` parameter).
fn queue_path(object: ObjectType) -> &'static str {
    if object == ObjectType::Account {
        "accounts"
    } else {
        "contacts"
    }
}

fn queue_object(raw: Option<&str>) -> ObjectType {
    match raw {
        Some("accounts") => ObjectType::Account,
        _ => ObjectType::Contact,
    }
}

/// The review queue.
pub(super) async fn queue_page(
    State(state): State<AppState>,
    ui: Ui,
    Query(p): Query<QueueParams>,
) -> PageResult {
    let object = queue_object(p.object.as_deref());
    let path = queue_path(object);
    let pairs = queue::list(&state.db, &ui.ctx, object, None, 200).await?;
    let rows: Vec<Value> = pairs
        .iter()
        .map(|p| {
            json!({
                "id": p.id,
                "record": {"name": p.record_name, "href": format!("/{path}/{}", p.record_id)},
                "other": {"name": p.other_name, "href": format!("/{path}/{}", p.other_id)},
                "percent": (p.score * 100.0).round(),
                "reasons": p.reasons.iter().map(|r| r.detail.clone()).collect::<Vec<_>>(),
                "compare": format!("/{path}/{}/merge?with={}", p.record_id, p.other_id),
            })
        })
        .collect();
    Ok(ui.render(
        &state,
        "duplicate_queue.html",
        json!({
            "title": "Likely duplicates",
            "path": path,
            "tabs": [
                {"href": "/duplicates?object=contacts", "label": "Contacts", "current": path == "contacts"},
                {"href": "/duplicates?object=accounts", "label": "Accounts", "current": path == "accounts"},
            ],
            "pairs": rows,
            "notice": p.notice.filter(|n| n == "scan").map(|_| "The scan is running; reload in a moment."),
            "can_merge": ui.ctx.can(object, Action::Update) && ui.ctx.can(object, Action::Delete),
        }),
    ))
}

/// Starts a scan.
pub(super) async fn scan(
    State(state): State<AppState>,
    ui: Ui,
    Query(p): Query<QueueParams>,
    form: FormData,
) -> PageResult {
    ui.check_csrf(&form)?;
    let object = queue_object(form.get("object").or(p.object.as_deref()));
    queue::start_scan(&state.db, &ui.ctx, object).await?;
    let path = queue_path(object);
    Ok(Redirect::to(&format!("/duplicates?object={path}&notice=scan")).into_response())
}

/// Dismisses a pair.
pub(super) async fn dismiss(
    State(state): State<AppState>,
    ui: Ui,
    Path(id): Path<Uuid>,
    form: FormData,
) -> Result<axum::response::Response, PageError> {
    ui.check_csrf(&form)?;
    queue::dismiss(&state.db, &ui.ctx, id).await?;
    let back = match form.get("object") {
        Some("accounts") => "/duplicates?object=accounts",
        _ => "/duplicates?object=contacts",
    };
    Ok(Redirect::to(back).into_response())
}
