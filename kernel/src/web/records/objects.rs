//! Custom objects in the browser (a plugin's listings and showings, a
//! tenant's own objects): a list with filters on any field, sorting and
//! cursor paging, and a record page with every visible field and the panels
//! plugins add (a listing's matching buyers).
//!
//! The pages go through the same service as the API
//! (`crm::objects`), so record scope, field rules and sensitive-read audit
//! hold here as there. Records are created and edited through the API or a
//! plugin; these pages read.

use axum::extract::{Path, RawQuery, State};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{Choices, ListParams, PageResult, display, encode, list_column};
use crate::AppState;
use crate::crm::custom_fields::FieldDef;
use crate::crm::objects;
use crate::error::Error;
use crate::permissions::{Action, FieldAccess, ObjectType};
use crate::web::Ui;
use crate::web::forms::{Field, value_at};

/// How many fields a list shows as columns.
const COLUMNS: usize = 6;

/// The fields of `defs` the caller may see, as form fields (`custom.KEY`).
fn visible_fields(ui: &Ui, defs: &[FieldDef]) -> Vec<(Field, bool)> {
    defs.iter()
        .map(|d| (Field::custom(d), d.sensitive && !d.blind_index))
        .filter(|(f, _)| {
            ui.ctx
                .policy
                .field_access(ObjectType::CustomObject, &f.name)
                != Some(FieldAccess::Hidden)
        })
        .collect()
}

/// A list cell's text (a sealed value the caller may not open stays a mark).
fn cell(record: &Value, field: &str) -> String {
    match value_at(record, field) {
        Value::Null => String::new(),
        v if v.get(crate::crm::sensitive::ENC).is_some() => "(protected)".to_owned(),
        Value::Bool(b) => if *b { "Yes" } else { "No" }.to_owned(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    }
}

/// `GET /objects/{key}`: a page of records with the list's filters, sort
/// and cursor.
pub(super) async fn list(
    State(state): State<AppState>,
    ui: Ui,
    Path(key): Path<String>,
    RawQuery(raw): RawQuery,
) -> PageResult {
    ui.ctx.require(ObjectType::CustomObject, Action::Read)?;
    let (object, defs) = objects::definition(&state.db, ui.ctx.tenant_id, &key).await?;
    let params = ListParams::parse(raw.as_deref());
    let fields = visible_fields(&ui, &defs);
    let base = format!("/objects/{key}");
    let current_sort = params
        .sort
        .clone()
        .unwrap_or_else(|| "-created_at".to_owned());

    let mut pairs: Vec<(&str, String)> = params
        .filters
        .iter()
        .map(|f| ("filter", f.clone()))
        .collect();
    pairs.push(("sort", current_sort.clone()));
    if let Some(c) = &params.cursor {
        pairs.push(("cursor", c.clone()));
    }
    pairs.push(("limit", "50".to_owned()));
    let service_query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    let (page, errors) = match objects::list(&state.db, &ui.ctx, &key, Some(&service_query)).await {
        Ok(p) => (p, Vec::new()),
        Err(Error::Validation(errors)) => (
            crate::crm::records::Page::default(),
            errors
                .into_iter()
                .map(|e| format!("{}: {}", e.field, e.message))
                .collect(),
        ),
        Err(Error::InvalidCursor) => (
            crate::crm::records::Page::default(),
            vec!["the page link is out of date; start from the first page".to_owned()],
        ),
        Err(e) => return Err(e.into()),
    };

    let columns: Vec<Value> = fields
        .iter()
        .take(COLUMNS)
        .map(|(f, sealed)| {
            list_column(
                &f.name,
                &f.label,
                &f.name,
                !sealed,
                &current_sort,
                &base,
                &params,
            )
        })
        .collect();
    let rows: Vec<Value> = page
        .data
        .iter()
        .map(|r| {
            let id = r.get("id").and_then(Value::as_str).unwrap_or("");
            let cells: Vec<Value> = columns
                .iter()
                .map(|c| json!({"text": cell(r, c["field"].as_str().unwrap_or(""))}))
                .collect();
            json!({"href": format!("{base}/{id}"), "cells": cells})
        })
        .collect();
    let filters: Vec<Value> = params
        .filters
        .iter()
        .enumerate()
        .map(|(i, f)| {
            json!({"raw": f, "text": f.replacen(':', " ", 2), "remove": format!("{base}?{}", params.query(None, Some(i)))})
        })
        .collect();
    let filter_fields: Vec<Value> = fields
        .iter()
        .filter(|(_, sealed)| !sealed)
        .map(|(f, _)| json!({"value": f.name, "label": f.label}))
        .collect();
    let next = page
        .next_cursor
        .as_ref()
        .map(|c| format!("{base}?{}&cursor={}", params.query(None, None), encode(c)));
    Ok(ui.render(
        &state,
        "object_list.html",
        json!({
            "title": object.plural_label,
            "object": {"key": key, "singular": object.label, "plural": object.plural_label, "path": base},
            "columns": columns,
            "rows": rows,
            "next_cursor": next,
            "filters": filters,
            "sort": current_sort,
            "fields": filter_fields,
            "errors": errors,
        }),
    ))
}

/// `GET /objects/{key}/{id}`: a record's fields and its plugin panels.
pub(super) async fn detail(
    State(state): State<AppState>,
    ui: Ui,
    Path((key, id)): Path<(String, Uuid)>,
) -> PageResult {
    let (object, defs) = objects::definition(&state.db, ui.ctx.tenant_id, &key).await?;
    let record = objects::get(&state.db, &ui.ctx, &key, id).await?;
    let choices = Choices::load(&state, &ui.ctx, ObjectType::CustomObject).await?;
    let mut shown = Vec::new();
    for (f, _) in visible_fields(&ui, &defs) {
        let v = value_at(&record, &f.name);
        shown.push(display(&state, &ui.ctx, &f, v, &record, &choices).await);
    }
    // The first field with a value names the record (a listing's key or
    // address).
    let title = shown
        .iter()
        .find_map(|f| f["text"].as_str().filter(|t| !t.is_empty()))
        .map_or_else(
            || object.label.clone(),
            |t| format!("{}: {t}", object.label),
        );
    let panels = crate::api::plugins::object_panels_of(&state, &ui.ctx, &key, id)
        .await
        .map(|p| serde_json::to_value(p).unwrap_or(Value::Null))
        .unwrap_or(Value::Array(Vec::new()));
    let meta = [
        (
            "Owner",
            record
                .get("owner_id")
                .and_then(Value::as_str)
                .and_then(|o| choices.user_name(o))
                .map(str::to_owned),
        ),
        (
            "Created",
            record
                .get("created_at")
                .and_then(Value::as_str)
                .map(short_time),
        ),
        (
            "Updated",
            record
                .get("updated_at")
                .and_then(Value::as_str)
                .map(short_time),
        ),
    ]
    .into_iter()
    .filter_map(|(label, text)| text.map(|t| json!({"label": label, "text": t})))
    .collect::<Vec<_>>();
    Ok(ui.render(
        &state,
        "object_detail.html",
        json!({
            "title": title,
            "object": {"key": key, "singular": object.label, "plural": object.plural_label, "path": format!("/objects/{key}")},
            "record": {"id": id, "version": record.get("version")},
            "fields": shown,
            "meta": meta,
            "panels": panels,
        }),
    ))
}

/// `2026-11-24T10:15:00Z` as `2026-11-24 10:15 UTC`.
fn short_time(s: &str) -> String {
    s.get(..16)
        .map(|t| format!("{} UTC", t.replace('T', " ")))
        .unwrap_or_else(|| s.to_owned())
}
