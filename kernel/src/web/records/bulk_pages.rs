//! Bulk actions in the browser: a list's "change all" form (every record
//! its filters match, not the page), the action's progress page (reloading
//! itself while it runs), and restoring a bulk delete.

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Redirect};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{Choices, ListParams, PageResult, RecordPage};
use crate::AppState;
use crate::crm::bulk::{self, BulkActionRequest, Kind};
use crate::error::Error;
use crate::permissions::Action;
use crate::web::Ui;
use crate::web::forms::FormData;

/// The list's "change all" form, when the caller may use it: the actions
/// it offers and the filters it carries. None while a search is active
/// (a bulk action takes filters, not search words).
pub(super) fn form<R: RecordPage>(ui: &Ui, params: &ListParams, choices: &Choices) -> Value {
    if params.q.is_some() {
        return Value::Null;
    }
    let mut actions = Vec::new();
    if ui.ctx.can(R::OBJECT, Action::Update) {
        if R::fields().iter().any(|f| f.name == "tags") {
            actions.push(json!({"value": "add_tags", "label": "Add tags"}));
            actions.push(json!({"value": "remove_tags", "label": "Remove tags"}));
        }
        actions.push(json!({"value": "assign_owner", "label": "Give to owner"}));
    }
    if ui.ctx.can(R::OBJECT, Action::Delete) {
        actions.push(json!({"value": "delete", "label": "Delete (to the trash)"}));
    }
    if actions.is_empty() {
        return Value::Null;
    }
    json!({
        "actions": actions,
        "filters": params.filters,
        "owners": choices.users.iter().map(|(id, name)| json!({"value": id, "label": name})).collect::<Vec<_>>(),
    })
}

/// Starts the action the form asks for on every matching record.
pub(super) async fn start<R: RecordPage>(
    State(state): State<AppState>,
    ui: Ui,
    form: FormData,
) -> PageResult {
    ui.check_csrf(&form)?;
    let action = form
        .get("action")
        .and_then(|a| serde_json::from_value::<Kind>(Value::String(a.to_owned())).ok())
        .ok_or_else(|| Error::field("action", "invalid_value", "choose an action"))?;
    let value = form.text("value").unwrap_or_default();
    let req = BulkActionRequest {
        filter: form.all("filter").into_iter().map(str::to_owned).collect(),
        action,
        patch: None,
        owner_id: form.get("owner").and_then(|o| Uuid::parse_str(o).ok()),
        tags: value
            .split(',')
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .collect(),
    };
    let started = bulk::start::<R>(&state.db, &ui.ctx, req).await?;
    Ok(Redirect::to(&format!("/bulk-actions/{}", started.id)).into_response())
}

/// An action's progress.
pub(super) async fn show(
    State(state): State<AppState>,
    ui: Ui,
    Path(id): Path<Uuid>,
) -> PageResult {
    let a = bulk::get(&state.db, &ui.ctx, id).await?;
    let running = matches!(a.status.as_str(), "queued" | "running");
    let path = match a.object_type.as_str() {
        "contact" => "/contacts",
        "account" => "/accounts",
        "deal" => "/deals",
        _ => "/activities",
    };
    let restorable = a.action == Kind::Delete && !running && a.succeeded > 0;
    let label = match a.action {
        Kind::Update => "Update",
        Kind::AssignOwner => "Give to owner",
        Kind::AddTags => "Add tags",
        Kind::RemoveTags => "Remove tags",
        Kind::Delete => "Delete",
        Kind::Restore => "Restore",
    };
    let mut res = ui.render(
        &state,
        "bulk_action.html",
        json!({
            "title": format!("{label}: {}", a.status),
            "action": a,
            "running": running,
            "list": path,
            "restorable": restorable,
        }),
    );
    if running {
        res.headers_mut()
            .insert("refresh", header::HeaderValue::from_static("2"));
    }
    Ok(res)
}

/// Restores what a bulk delete removed.
pub(super) async fn restore(
    State(state): State<AppState>,
    ui: Ui,
    Path(id): Path<Uuid>,
    form: FormData,
) -> PageResult {
    ui.check_csrf(&form)?;
    let started = bulk::restore(&state.db, &ui.ctx, id).await?;
    Ok(Redirect::to(&format!("/bulk-actions/{}", started.id)).into_response())
}
