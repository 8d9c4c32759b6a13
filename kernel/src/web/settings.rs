//! Settings for admins: the workspace (name, MFA, session timeouts, theme),
//! users and invitations, roles, custom fields, pipelines, plugins and the
//! audit log. Each section shows only to callers whose roles may read it,
//! and every change goes through the same service as the API.

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::AppState;
use crate::api::admin::TenantSettingsPatch;
use crate::audit::query::AuditQuery;
use crate::context::RequestContext;
use crate::crm::custom_fields::CustomFieldInput;
use crate::crm::records::from_json;
use crate::directory::users::Invitation;
use crate::error::Error;
use crate::permissions::{Action, ObjectType};
use crate::web::forms::{self, FormData};
use crate::web::{PageError, Ui};

type PageResult = Result<Response, PageError>;

/// The sections, with the object type and action that opens each (API
/// keys: every user has their own).
const SECTIONS: &[(&str, &str, ObjectType, Action)] = &[
    ("general", "Workspace", ObjectType::Tenant, Action::Read),
    ("users", "Users", ObjectType::User, Action::Read),
    ("roles", "Roles", ObjectType::Role, Action::Read),
    (
        "fields",
        "Custom fields",
        ObjectType::CustomField,
        Action::Read,
    ),
    ("pipelines", "Pipelines", ObjectType::Pipeline, Action::Read),
    ("plugins", "Plugins", ObjectType::Plugin, Action::Read),
    ("api-keys", "API keys", ObjectType::ApiKey, Action::Read),
    ("audit", "Audit log", ObjectType::AuditLog, Action::Read),
];

/// Whether the caller may open a section.
fn opens(ctx: &RequestContext, key: &str, object: ObjectType, action: Action) -> bool {
    key == "api-keys" || ctx.can(object, action)
}

/// Whether the caller sees any settings section.
pub fn visible(ctx: &RequestContext) -> bool {
    SECTIONS
        .iter()
        .any(|(k, _, o, a)| *k != "api-keys" && ctx.can(*o, *a))
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/settings", get(index))
        .route("/settings/{section}", get(section).post(save))
        .route("/settings/api-keys/{id}/revoke", post(revoke_key))
        .route("/settings/roles/{key}", get(role_page).post(save_role))
        .route(
            "/settings/pipelines/{id}",
            get(pipeline_page).post(save_pipeline),
        )
        .route("/settings/plugins/{id}/enable", post(enable_plugin))
        .route("/settings/users/{id}", post(update_user))
        .route("/settings/fields/{id}/delete", post(delete_field))
        .route("/settings/plugins/{id}/disable", post(disable_plugin))
}

fn sections(ctx: &RequestContext, current: &str) -> Vec<Value> {
    SECTIONS
        .iter()
        .filter(|(k, _, o, a)| opens(ctx, k, *o, *a))
        .map(|(key, label, _, _)| {
            json!({"key": key, "label": label, "href": format!("/settings/{key}"), "current": *key == current})
        })
        .collect()
}

async fn index(ui: Ui) -> PageResult {
    match SECTIONS
        .iter()
        .find(|(k, _, o, a)| opens(&ui.ctx, k, *o, *a))
    {
        Some((key, ..)) => Ok(Redirect::to(&format!("/settings/{key}")).into_response()),
        None => Err(Error::Forbidden("your roles open no settings".to_owned()).into()),
    }
}

/// Renders a section: a table (`columns`, `rows`), optional `items` and an
/// optional `form` description the template draws.
fn render(state: &AppState, ui: &Ui, key: &str, mut page: Value) -> Response {
    let title = SECTIONS
        .iter()
        .find(|(k, ..)| *k == key)
        .map_or("Settings", |(_, l, ..)| *l);
    page["title"] = json!(title);
    page["section"] = json!(key);
    page["sections"] = json!(sections(&ui.ctx, key));
    for k in ["rows", "columns", "items"] {
        if page.get(k).is_none() {
            page[k] = json!([]);
        }
    }
    for k in ["form", "notice"] {
        if page.get(k).is_none() {
            page[k] = Value::Null;
        }
    }
    if page.get("errors").is_none() {
        page["errors"] = json!({});
    }
    ui.render(state, "settings.html", page)
}

async fn section(
    State(state): State<AppState>,
    ui: Ui,
    Path(key): Path<String>,
    RawQuery(raw): RawQuery,
) -> PageResult {
    let Some((_, _, object, action)) = SECTIONS.iter().find(|(k, ..)| *k == key) else {
        return Err(Error::NotFound("settings section").into());
    };
    if !opens(&ui.ctx, &key, *object, *action) {
        ui.ctx.require(*object, *action)?;
    }
    let page = page_of(&state, &ui, &key, json!({}), None, raw.as_deref()).await?;
    Ok(render(&state, &ui, &key, page))
}

async fn general(
    state: &AppState,
    ui: &Ui,
    errors: Value,
    notice: Option<&str>,
) -> Result<Value, Error> {
    let t = crate::crm::tenants::cached(state, ui.ctx.tenant_id).await?;
    let mut themes: Vec<Value> = vec![
        json!({"value": "", "label": "Default (or your provider's)", "selected": t.theme.is_none()}),
    ];
    let reseller = crate::api::admin::reseller_slug(state, ui.ctx.tenant_id).await?;
    for theme in state
        .themes
        .all()
        .filter(|t| t.available_to(reseller.as_deref()))
    {
        themes.push(json!({
            "value": theme.key,
            "label": format!("{} ({})", theme.manifest.name, theme.manifest.product_name),
            "selected": t.theme.as_deref() == Some(theme.key.as_str()),
        }));
    }
    let can_edit = ui.ctx.can(ObjectType::Tenant, Action::ManageSettings);
    Ok(json!({
        "form": {
            "kind": "general",
            "action": "/settings/general",
            "can_edit": can_edit,
            "name": t.name,
            "mfa_required": t.mfa_required,
            "session_idle_seconds": t.session_idle_seconds,
            "session_absolute_seconds": t.session_absolute_seconds,
            "duplicate_policy": t.duplicate_policy,
            "merge_undo_days": t.merge_undo_days,
            "hostname": t.hostname,
            "themes": themes,
            // Only the problems of the theme this tenant chose: others'
            // themes are none of its business.
            "theme_problems": state
                .themes
                .problems()
                .iter()
                .filter(|p| t.theme.as_deref() == Some(p.theme.as_str()))
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
        },
        "errors": errors,
        "notice": notice,
    }))
}

/// A section's page data, with the errors and notice of a form just posted.
async fn page_of(
    state: &AppState,
    ui: &Ui,
    key: &str,
    errors: Value,
    notice: Option<&str>,
    raw: Option<&str>,
) -> Result<Value, Error> {
    match key {
        "general" => general(state, ui, errors, notice).await,
        "users" => users(state, ui, errors, notice).await,
        "roles" => roles(state, ui).await,
        "fields" => fields(state, ui, errors, notice).await,
        "pipelines" => pipelines(state, ui, errors, notice).await,
        "plugins" => plugins(state, ui, errors, notice).await,
        "api-keys" => api_keys(state, ui, errors, notice).await,
        _ => audit(state, ui, raw).await,
    }
}

/// A form posted to a section: the section again, with a notice, or with
/// the errors next to the fields.
async fn save(
    State(state): State<AppState>,
    ui: Ui,
    Path(key): Path<String>,
    form: FormData,
) -> PageResult {
    ui.check_csrf(&form)?;
    let result = match key.as_str() {
        "general" => save_general(&state, &ui, &form).await,
        "users" => invite(&state, &ui, &form).await,
        "fields" => create_field(&state, &ui, &form).await,
        "pipelines" => pipeline_save(&state, &ui, None, &form).await,
        "api-keys" => create_key(&state, &ui, &form).await,
        _ => return Err(Error::MethodNotAllowed.into()),
    };
    after_save(&state, &ui, &key, Shown::Section, result).await
}

/// Which form a section shows again after a save.
enum Shown<'a> {
    Section,
    Pipeline(uuid::Uuid),
    Role(&'a str),
}

/// The page after a form was posted: the form again with the save's
/// notice, or with its errors beside the fields (422). An error the user
/// cannot fix on the form (not found, not allowed) becomes the error page.
async fn after_save(
    state: &AppState,
    ui: &Ui,
    key: &str,
    shown: Shown<'_>,
    result: Result<String, Error>,
) -> PageResult {
    let (errors, notice) = match result {
        Ok(notice) => (json!({}), Some(notice)),
        Err(
            e @ (Error::Validation(_)
            | Error::VersionConflict { .. }
            | Error::PreconditionFailed { .. }
            | Error::Conflict { .. }
            | Error::PlanLimit { .. }
            | Error::PluginFailed(_)),
        ) => (problem_map(e), None),
        Err(e) => return Err(e.into()),
    };
    let failed = notice.is_none();
    let page = match shown {
        Shown::Section => page_of(state, ui, key, errors, notice.as_deref(), None).await?,
        Shown::Pipeline(id) => pipeline_form(state, ui, id, errors, notice.as_deref()).await?,
        Shown::Role(role) => role_form(state, ui, role, errors, notice.as_deref()).await?,
    };
    let r = render(state, ui, key, page);
    Ok(if failed {
        crate::web::with_status(r, axum::http::StatusCode::UNPROCESSABLE_ENTITY)
    } else {
        r
    })
}

async fn save_general(state: &AppState, ui: &Ui, form: &FormData) -> Result<String, Error> {
    let number = |name: &str| -> Result<Option<i64>, Error> {
        match form.text(name) {
            None => Ok(None),
            Some(t) => t.parse().map(Some).map_err(|_| {
                Error::field(name, "invalid_value", "enter a whole number of seconds")
            }),
        }
    };
    let patch = (|| -> Result<TenantSettingsPatch, Error> {
        Ok(TenantSettingsPatch {
            name: form.text("name"),
            mfa_required: Some(form.has("mfa_required")),
            session_idle_seconds: number("session_idle_seconds")?,
            session_absolute_seconds: number("session_absolute_seconds")?,
            theme: Some(form.get("theme").unwrap_or("").to_owned()),
            duplicate_policy: form.text("duplicate_policy"),
            merge_undo_days: match form.text("merge_undo_days") {
                None => None,
                Some(t) => Some(t.parse().map_err(|_| {
                    Error::field(
                        "merge_undo_days",
                        "invalid_value",
                        "enter a whole number of days",
                    )
                })?),
            },
        })
    })();
    let patch = patch?;
    crate::api::admin::update_settings(state, &ui.ctx, patch).await?;
    Ok("Saved.".to_owned())
}

async fn users(
    state: &AppState,
    ui: &Ui,
    errors: Value,
    notice: Option<&str>,
) -> Result<Value, Error> {
    let list = crate::directory::users::list(&state.db, &ui.ctx).await?;
    let rows: Vec<Value> = list
        .iter()
        .map(|u| {
            json!({"cells": [u.name, u.email, u.status, u.roles.join(", "), if u.mfa_enabled { "On" } else { "Off" }]})
        })
        .collect();
    let roles: Vec<Value> = crate::directory::roles::list(&state.db, &ui.ctx)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|r| json!({"value": r.key, "label": r.name}))
        .collect();
    let can_edit = ui.ctx.can(ObjectType::User, Action::ManageSettings);
    // One form per user: roles and status (disabling ends their sessions).
    let people: Vec<Value> = if can_edit {
        list.iter()
            .map(|u| {
                json!({
                    "id": u.id,
                    "name": u.name,
                    "status": u.status,
                    "roles": roles.iter().map(|r| json!({
                        "value": r["value"],
                        "label": r["label"],
                        "checked": u.roles.iter().any(|x| Some(x.as_str()) == r["value"].as_str()),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok(json!({
        "columns": ["Name", "Email", "Status", "Roles", "MFA"],
        "rows": rows,
        "form": {
            "kind": "invite",
            "action": "/settings/users",
            "can_edit": can_edit,
            "roles": roles,
            "people": people,
        },
        "errors": errors,
        "notice": notice,
    }))
}

async fn invite(state: &AppState, ui: &Ui, form: &FormData) -> Result<String, Error> {
    let input = Invitation {
        email: form.get("email").unwrap_or("").to_owned(),
        name: form.get("name").unwrap_or("").to_owned(),
        roles: form.all("roles").into_iter().map(str::to_owned).collect(),
    };
    let u = crate::directory::users::invite(state, &ui.ctx, input).await?;
    Ok(format!("Invitation sent to {}.", u.email))
}

async fn roles(state: &AppState, ui: &Ui) -> Result<Value, Error> {
    let list = crate::directory::roles::list(&state.db, &ui.ctx).await?;
    let rows: Vec<Value> = list
        .iter()
        .map(|r| {
            let rules = serde_json::to_value(&r.rules).unwrap_or(Value::Null);
            let summary = rules
                .get("permissions")
                .and_then(Value::as_object)
                .map(|p| {
                    p.iter()
                        .map(|(object, actions)| {
                            let list: Vec<String> = actions
                                .as_array()
                                .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                                .unwrap_or_default();
                            format!("{object}: {}", list.join(" "))
                        })
                        .collect::<Vec<_>>()
                        .join("; ")
                })
                .unwrap_or_default();
            json!({"cells": [r.name, r.key, if r.built_in { "Built-in" } else { "Custom" }, summary],
                   "link": format!("/settings/roles/{}", r.key)})
        })
        .collect();
    Ok(json!({
        "columns": ["Name", "Key", "Kind", "Permissions"],
        "rows": rows,
        "form": {"kind": "links", "links": if ui.ctx.can(ObjectType::Role, Action::ManageSettings) {
            json!([{"href": "/settings/roles/new", "label": "New role"}])
        } else {
            json!([])
        }},
    }))
}

async fn fields(
    state: &AppState,
    ui: &Ui,
    errors: Value,
    notice: Option<&str>,
) -> Result<Value, Error> {
    let list = crate::crm::field_definitions::list(&state.db, &ui.ctx, None).await?;
    let can_delete = ui.ctx.can(ObjectType::CustomField, Action::ManageSettings);
    let rows: Vec<Value> = list
        .iter()
        .map(|f| {
            let v = serde_json::to_value(f).unwrap_or(Value::Null);
            let text = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
            json!({
                "cells": [text("object_type"), text("label"), text("key"), forms::label(&text("field_type")), if v.get("required").and_then(Value::as_bool).unwrap_or(false) { "Yes" } else { "No" }],
                "action": can_delete.then(|| json!({"href": format!("/settings/fields/{}/delete", text("id")), "label": format!("Delete the field {}", text("label")), "text": "Delete"})),
            })
        })
        .collect();
    let types = [
        "text",
        "long_text",
        "integer",
        "decimal",
        "currency",
        "date",
        "datetime",
        "boolean",
        "single_select",
        "multi_select",
        "email",
        "phone",
        "url",
    ];
    Ok(json!({
        "columns": ["Object", "Label", "Key", "Type", "Required"],
        "rows": rows,
        "form": {
            "kind": "field",
            "action": "/settings/fields",
            "can_edit": ui.ctx.can(ObjectType::CustomField, Action::ManageSettings),
            "objects": ["contact", "account", "deal", "activity"],
            "types": types.iter().map(|t| json!({"value": t, "label": forms::label(t)})).collect::<Vec<_>>(),
        },
        "errors": errors,
        "notice": notice,
    }))
}

async fn create_field(state: &AppState, ui: &Ui, form: &FormData) -> Result<String, Error> {
    let options: Vec<String> = form
        .get("options")
        .unwrap_or("")
        .lines()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let input = json!({
        "object_type": form.get("object_type").unwrap_or(""),
        "key": form.get("key").unwrap_or("").trim(),
        "label": form.get("label").unwrap_or("").trim(),
        "field_type": form.get("field_type").unwrap_or(""),
        "required": form.has("required"),
        "options": options,
    });
    let input = from_json::<CustomFieldInput>(input)?;
    let f = crate::crm::field_definitions::create(&state.db, &ui.ctx, input).await?;
    Ok(format!("The field {} is added.", f.label))
}

async fn pipelines(
    state: &AppState,
    ui: &Ui,
    errors: Value,
    notice: Option<&str>,
) -> Result<Value, Error> {
    let list = crate::crm::pipelines::list(&state.db, &ui.ctx).await?;
    let rows: Vec<Value> = list
        .iter()
        .map(|p| {
            let stages: Vec<String> = p
                .stages
                .iter()
                .map(|s| format!("{} ({}%, {})", s.name, s.probability, kind_name(s.kind)))
                .collect();
            json!({"cells": [p.name, stages.join(" → ")], "link": format!("/settings/pipelines/{}", p.id)})
        })
        .collect();
    Ok(json!({
        "columns": ["Pipeline", "Stages"],
        "rows": rows,
        "form": {
            "kind": "pipeline",
            "action": "/settings/pipelines",
            "title": "Add a pipeline",
            "can_edit": ui.ctx.can(ObjectType::Pipeline, Action::ManageSettings),
            "name": "",
            "stages": "Qualification | 10 | open\nProposal | 50 | open\nWon | 100 | won\nLost | 0 | lost",
            "version": null,
        },
        "errors": errors,
        "notice": notice,
    }))
}

fn kind_name(k: crate::crm::pipelines::StageKind) -> String {
    serde_json::to_value(k)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Stages written one per line as `Name | probability | kind`; a stage
/// keeps its id (and its deals) when its name stays.
fn parse_stages(
    text: &str,
    existing: &[crate::crm::pipelines::Stage],
) -> Result<Vec<crate::crm::pipelines::StageInput>, Error> {
    let mut out = Vec::new();
    for (i, line) in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .enumerate()
    {
        let parts: Vec<&str> = line.split('|').map(str::trim).collect();
        let bad = |why: &str| {
            Error::field(
                "stages",
                "invalid_value",
                format!(
                    "line {}: {why} (write `Name | probability | open, won or lost`)",
                    i + 1
                ),
            )
        };
        let [name, probability, kind] = parts[..] else {
            return Err(bad("three parts separated by |"));
        };
        let probability: i32 = probability
            .trim_end_matches('%')
            .parse()
            .map_err(|_| bad("the probability is a whole number"))?;
        let kind = serde_json::from_value(Value::String(kind.to_lowercase()))
            .map_err(|_| bad("the kind is open, won or lost"))?;
        out.push(crate::crm::pipelines::StageInput {
            id: existing.iter().find(|s| s.name == name).map(|s| s.id),
            name: name.to_owned(),
            probability,
            kind,
        });
    }
    Ok(out)
}

async fn pipeline_save(
    state: &AppState,
    ui: &Ui,
    id: Option<uuid::Uuid>,
    form: &FormData,
) -> Result<String, Error> {
    let name = form.get("name").unwrap_or("").trim().to_owned();
    let existing = match id {
        Some(id) => Some(crate::crm::pipelines::get(&state.db, &ui.ctx, id).await?),
        None => None,
    };
    let stages = parse_stages(
        form.get("stages").unwrap_or(""),
        existing.as_ref().map_or(&[][..], |p| &p.stages[..]),
    )?;
    let input = crate::crm::pipelines::PipelineInput {
        name: name.clone(),
        position: existing.as_ref().map_or(0, |p| p.position),
        stages,
    };
    match (id, existing) {
        (Some(id), Some(_)) => {
            let version = form
                .get("version")
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| Error::field("version", "required", "the form lacks the version"))?;
            crate::crm::pipelines::update(&state.db, &ui.ctx, id, input, version).await?;
            Ok(format!("The pipeline {name} is saved."))
        }
        _ => {
            crate::crm::pipelines::create(&state.db, &ui.ctx, input).await?;
            Ok(format!("The pipeline {name} is added."))
        }
    }
}

/// One pipeline's form.
async fn pipeline_page(
    State(state): State<AppState>,
    ui: Ui,
    Path(id): Path<uuid::Uuid>,
) -> PageResult {
    let page = pipeline_form(&state, &ui, id, json!({}), None).await?;
    Ok(render(&state, &ui, "pipelines", page))
}

async fn pipeline_form(
    state: &AppState,
    ui: &Ui,
    id: uuid::Uuid,
    errors: Value,
    notice: Option<&str>,
) -> Result<Value, Error> {
    let p = crate::crm::pipelines::get(&state.db, &ui.ctx, id).await?;
    let stages: Vec<String> = p
        .stages
        .iter()
        .map(|s| format!("{} | {} | {}", s.name, s.probability, kind_name(s.kind)))
        .collect();
    Ok(json!({
        "form": {
            "kind": "pipeline",
            "action": format!("/settings/pipelines/{id}"),
            "title": format!("Edit {}", p.name),
            "can_edit": ui.ctx.can(ObjectType::Pipeline, Action::ManageSettings),
            "name": p.name,
            "stages": stages.join("\n"),
            "version": p.version,
        },
        "errors": errors,
        "notice": notice,
    }))
}

async fn save_pipeline(
    State(state): State<AppState>,
    ui: Ui,
    Path(id): Path<uuid::Uuid>,
    form: FormData,
) -> PageResult {
    ui.check_csrf(&form)?;
    let result = pipeline_save(&state, &ui, Some(id), &form).await;
    after_save(&state, &ui, "pipelines", Shown::Pipeline(id), result).await
}

/// A failed save's messages by form field (`""`: not about one field).
fn problem_map(e: Error) -> Value {
    let mut map = serde_json::Map::new();
    match e {
        Error::Validation(errors) => {
            for f in errors {
                map.insert(forms::field_of(&f.field), Value::String(f.message));
            }
        }
        other => {
            map.insert(String::new(), Value::String(other.to_string()));
        }
    }
    Value::Object(map)
}

async fn plugins(
    state: &AppState,
    ui: &Ui,
    errors: Value,
    notice: Option<&str>,
) -> Result<Value, Error> {
    let list = crate::plugins::registry::tenant_plugins(state, &ui.ctx).await?;
    let can_edit = ui.ctx.can(ObjectType::Plugin, Action::ManageSettings);
    // Each plugin's latest warnings and errors, to see what goes wrong.
    let mut logs: std::collections::HashMap<String, Vec<Value>> = std::collections::HashMap::new();
    for p in &list {
        let lines = crate::plugins::registry::logs(state, &ui.ctx, &p.plugin_id, 50).await?;
        logs.insert(
            p.plugin_id.clone(),
            lines
                .into_iter()
                .filter(|l| l.level == "error" || l.level == "warn")
                .take(5)
                .map(|l| json!({"at": l.at, "level": l.level, "message": l.message}))
                .collect(),
        );
    }
    let mut items: Vec<Value> = list
        .iter()
        .map(|p| {
            json!({
                "id": p.plugin_id,
                "title": format!("{} {}", p.plugin_id, p.version),
                "enabled": p.enabled,
                "lines": [
                    format!("Recent failures in a row: {}", p.consecutive_failures),
                ],
                "log": logs.get(&p.plugin_id).cloned().unwrap_or_default(),
                "problem": p.disabled_reason,
                "disable": (can_edit && p.enabled).then(|| format!("/settings/plugins/{}/disable", p.plugin_id)),
                "enable": can_edit.then(|| format!("/settings/plugins/{}/enable", p.plugin_id)),
                "capabilities": p.requested.iter().map(|c| json!({"name": c, "granted": p.grants.contains(c)})).collect::<Vec<_>>(),
                "config": serde_json::to_string_pretty(&p.config).unwrap_or_default(),
            })
        })
        .collect();
    // Installed on the platform, not yet set up for this tenant.
    let mut newest: std::collections::BTreeMap<String, crate::plugins::registry::PackageOut> =
        std::collections::BTreeMap::new();
    for pkg in crate::plugins::registry::packages(state).await? {
        newest.insert(pkg.plugin_id.clone(), pkg);
    }
    for (id, pkg) in newest {
        if list.iter().any(|p| p.plugin_id == id) {
            continue;
        }
        let requested =
            serde_json::from_value::<crate::plugins::manifest::Manifest>(pkg.manifest.clone())
                .map(|m| m.capabilities())
                .unwrap_or_default();
        items.push(json!({
            "id": id,
            "title": format!("{} {} (not enabled)", id, pkg.version),
            "enabled": false,
            "lines": [],
            "log": [],
            "problem": null,
            "disable": null,
            "enable": can_edit.then(|| format!("/settings/plugins/{id}/enable")),
            "capabilities": requested.iter().map(|c| json!({"name": c, "granted": false})).collect::<Vec<_>>(),
            "config": "{}",
        }));
    }
    Ok(json!({"items": items, "errors": errors, "notice": notice}))
}

/// Enables a plugin (or changes its grants and configuration): each
/// capability granted must be one the manifest asks for; the configuration
/// is checked against the plugin's schema.
async fn enable_plugin(
    State(state): State<AppState>,
    ui: Ui,
    Path(id): Path<String>,
    form: FormData,
) -> PageResult {
    ui.check_csrf(&form)?;
    let result = async {
        let config: Value = match form.text("config") {
            None => json!({}),
            Some(text) => serde_json::from_str(&text)
                .map_err(|e| Error::field("config", "invalid_json", format!("not JSON: {e}")))?,
        };
        let req = crate::plugins::registry::EnableRequest {
            version: None,
            grants: form.all("grants").into_iter().map(str::to_owned).collect(),
            config: Some(config),
            limits: None,
        };
        crate::plugins::registry::enable(&state, &ui.ctx, &id, req).await
    }
    .await;
    // The plugins page shows one message above the plugins, naming which.
    let result = result
        .map(|_| format!("{id} is enabled with the capabilities checked."))
        .map_err(|e| match e {
            Error::Validation(errors) => {
                let all: Vec<String> = errors
                    .iter()
                    .map(|f| format!("{}: {}", f.field, f.message))
                    .collect();
                Error::field("", "invalid_value", format!("{id}: {}", all.join("; ")))
            }
            other => other,
        });
    after_save(&state, &ui, "plugins", Shown::Section, result).await
}

async fn disable_plugin(
    State(state): State<AppState>,
    ui: Ui,
    Path(id): Path<String>,
    form: FormData,
) -> PageResult {
    ui.check_csrf(&form)?;
    crate::plugins::registry::disable(&state, &ui.ctx, &id).await?;
    Ok(Redirect::to("/settings/plugins").into_response())
}

async fn audit(state: &AppState, ui: &Ui, raw: Option<&str>) -> Result<Value, Error> {
    let mut q = AuditQuery {
        record_id: None,
        object_type: None,
        actor_id: None,
        action: None,
        from: None,
        to: None,
        before: None,
        limit: Some(50),
    };
    for (k, v) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        let v = v.trim().to_owned();
        if v.is_empty() {
            continue;
        }
        match k.as_ref() {
            "object_type" => q.object_type = Some(v),
            "action" => q.action = Some(v),
            "record_id" => q.record_id = uuid::Uuid::parse_str(&v).ok(),
            "before" => q.before = v.parse().ok(),
            _ => {}
        }
    }
    let filters =
        json!({"object_type": q.object_type, "action": q.action, "record_id": q.record_id});
    let page = crate::audit::query::search(&state.db, &ui.ctx, &q).await?;
    let page = serde_json::to_value(page).unwrap_or(Value::Null);
    let rows: Vec<Value> = page
        .get("data")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|e| {
            let text = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
            let changes = e
                .get("changes")
                .and_then(Value::as_object)
                .map(|o| o.keys().cloned().collect::<Vec<_>>().join(", "))
                .unwrap_or_default();
            json!({"cells": [text("at").get(..19).unwrap_or("").replace('T', " "), text("actor_kind"), text("action"), text("object_type"), text("record_id"), changes]})
        })
        .collect();
    let next = page.get("next_before").and_then(Value::as_i64).map(|b| {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in [("object_type", &q.object_type), ("action", &q.action)] {
            if let Some(v) = v {
                s.append_pair(k, v);
            }
        }
        if let Some(r) = q.record_id {
            s.append_pair("record_id", &r.to_string());
        }
        s.append_pair("before", &b.to_string());
        format!("/settings/audit?{}", s.finish())
    });
    Ok(json!({
        "columns": ["At (UTC)", "Actor", "Action", "Object", "Record", "Fields"],
        "rows": rows,
        "form": {"kind": "audit", "filters": filters, "next": next},
    }))
}

async fn api_keys(
    state: &AppState,
    ui: &Ui,
    errors: Value,
    notice: Option<&str>,
) -> Result<Value, Error> {
    let keys = crate::auth::api_keys::list(state, &ui.ctx).await?;
    let rows: Vec<Value> = keys
        .iter()
        .map(|k| {
            json!({
                "cells": [
                    k.name.clone(),
                    k.roles.join(", "),
                    if k.scopes.is_empty() { "all of the roles".to_owned() } else { k.scopes.join(" ") },
                    k.created_at.format("%Y-%m-%d").to_string(),
                    k.expires_at.map(|e| e.format("%Y-%m-%d").to_string()).unwrap_or_else(|| "never".to_owned()),
                    if k.revoked { "revoked" } else { "active" }.to_owned(),
                ],
                "action": (!k.revoked).then(|| json!({"href": format!("/settings/api-keys/{}/revoke", k.id), "label": format!("Revoke {}", k.name)})),
            })
        })
        .collect();
    Ok(json!({
        "columns": ["Name", "Roles", "Scopes", "Created", "Expires", "Status"],
        "rows": rows,
        "form": {
            "kind": "api-key",
            "action": "/settings/api-keys",
            "can_edit": true,
            "roles": ui.ctx.roles,
        },
        "errors": errors,
        "notice": notice,
    }))
}

async fn create_key(state: &AppState, ui: &Ui, form: &FormData) -> Result<String, Error> {
    let expires_at = match form.text("expires") {
        None => None,
        Some(d) => Some(
            chrono::NaiveDate::parse_from_str(&d, "%Y-%m-%d")
                .map_err(|_| Error::field("expires_at", "invalid_value", "a date, YYYY-MM-DD"))?
                .and_hms_opt(23, 59, 59)
                .unwrap_or_default()
                .and_utc(),
        ),
    };
    let roles: Vec<String> = form.all("roles").into_iter().map(str::to_owned).collect();
    let req = crate::auth::api_keys::NewApiKey {
        name: form.get("name").unwrap_or("").to_owned(),
        roles: (!roles.is_empty()).then_some(roles),
        scopes: form
            .get("scopes")
            .unwrap_or("")
            .split_whitespace()
            .map(str::to_owned)
            .collect(),
        expires_at,
    };
    let key = crate::auth::api_keys::create(state, &ui.ctx, req).await?;
    Ok(format!(
        "Copy the key {} now; it is not shown again: {}",
        key.name,
        key.key.unwrap_or_default()
    ))
}

async fn revoke_key(
    State(state): State<AppState>,
    ui: Ui,
    Path(id): Path<uuid::Uuid>,
    form: FormData,
) -> PageResult {
    ui.check_csrf(&form)?;
    crate::auth::api_keys::revoke(&state, &ui.ctx, id).await?;
    Ok(Redirect::to("/settings/api-keys").into_response())
}

const ACTIONS: [(Action, &str); 7] = [
    (Action::Read, "read"),
    (Action::Create, "create"),
    (Action::Update, "update"),
    (Action::Delete, "delete"),
    (Action::Export, "export"),
    (Action::Import, "import"),
    (Action::ManageSettings, "manage_settings"),
];

/// A role's form: actions and record scope per object type, field rules one
/// per line (`contact.email: hidden`), and whether MFA is required.
async fn role_form(
    state: &AppState,
    ui: &Ui,
    key: &str,
    errors: Value,
    notice: Option<&str>,
) -> Result<Value, Error> {
    let roles = crate::directory::roles::list(&state.db, &ui.ctx).await?;
    let existing = roles.iter().find(|r| r.key == key);
    if existing.is_none() && key != "new" {
        return Err(Error::NotFound("role"));
    }
    let rules = existing.map(|r| r.rules.clone()).unwrap_or_default();
    let objects: Vec<Value> = ObjectType::ALL
        .iter()
        .map(|o| {
            let rule = rules.permissions.get(o);
            let scope = rule.map(|r| r.scope).unwrap_or_default();
            json!({
                "key": o.as_str(),
                "label": forms::label(o.as_str()),
                "actions": ACTIONS.iter().map(|(a, name)| json!({
                    "name": name,
                    "label": forms::label(name),
                    "checked": rule.is_some_and(|r| r.actions.contains(a)),
                })).collect::<Vec<_>>(),
                "scope": serde_json::to_value(scope).unwrap_or(Value::Null),
            })
        })
        .collect();
    let mut lines: Vec<String> = rules
        .field_rules
        .iter()
        .flat_map(|(o, fields)| {
            fields.iter().map(move |(f, a)| {
                let access = serde_json::to_value(a)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                format!("{}.{f}: {access}", o.as_str())
            })
        })
        .collect();
    lines.sort();
    Ok(json!({
        "form": {
            "kind": "role",
            "action": format!("/settings/roles/{key}"),
            "can_edit": ui.ctx.can(ObjectType::Role, Action::ManageSettings),
            "is_new": existing.is_none(),
            "key": existing.map(|r| r.key.clone()).unwrap_or_default(),
            "name": existing.map(|r| r.name.clone()).unwrap_or_default(),
            "objects": objects,
            "field_rules": lines.join("\n"),
            "mfa_required": rules.mfa_required,
        },
        "errors": errors,
        "notice": notice,
    }))
}

async fn role_page(State(state): State<AppState>, ui: Ui, Path(key): Path<String>) -> PageResult {
    ui.ctx.require(ObjectType::Role, Action::Read)?;
    let page = role_form(&state, &ui, &key, json!({}), None).await?;
    Ok(render(&state, &ui, "roles", page))
}

/// Reads a role's form into the role service's input.
fn role_input(key: &str, form: &FormData) -> Result<crate::directory::roles::RoleInput, Error> {
    let mut permissions = std::collections::HashMap::new();
    for o in ObjectType::ALL {
        let chosen: Vec<&str> = form.all(&format!("perm.{}", o.as_str()));
        let actions: Vec<Action> = ACTIONS
            .iter()
            .filter(|(_, name)| chosen.contains(name))
            .map(|(a, _)| *a)
            .collect();
        if actions.is_empty() {
            continue;
        }
        let scope = serde_json::from_value(Value::String(
            form.get(&format!("scope.{}", o.as_str()))
                .unwrap_or("all")
                .to_owned(),
        ))
        .map_err(|_| Error::field("permissions", "invalid_value", "scope is own, team or all"))?;
        permissions.insert(o, crate::permissions::ObjectRule { actions, scope });
    }
    let mut field_rules: std::collections::HashMap<
        ObjectType,
        std::collections::HashMap<String, crate::permissions::FieldAccess>,
    > = std::collections::HashMap::new();
    for (i, line) in form
        .get("field_rules")
        .unwrap_or("")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .enumerate()
    {
        let bad = || {
            Error::field(
                "field_rules",
                "invalid_value",
                format!(
                    "line {}: write `object.field: hidden` or `object.field: read_only`",
                    i + 1
                ),
            )
        };
        let (path, access) = line.split_once(':').ok_or_else(bad)?;
        let (object, field) = path.trim().split_once('.').ok_or_else(bad)?;
        let object = ObjectType::parse(object).ok_or_else(bad)?;
        let access =
            serde_json::from_value(Value::String(access.trim().to_owned())).map_err(|_| bad())?;
        field_rules
            .entry(object)
            .or_default()
            .insert(field.to_owned(), access);
    }
    Ok(crate::directory::roles::RoleInput {
        key: if key == "new" {
            form.get("key").unwrap_or("").trim().to_owned()
        } else {
            key.to_owned()
        },
        name: form.get("name").unwrap_or("").trim().to_owned(),
        permissions,
        field_rules,
        mfa_required: form.has("mfa_required"),
    })
}

async fn save_role(
    State(state): State<AppState>,
    ui: Ui,
    Path(key): Path<String>,
    form: FormData,
) -> PageResult {
    ui.check_csrf(&form)?;
    let saved = match role_input(&key, &form) {
        Ok(input) => crate::directory::roles::put(&state, &ui.ctx, input).await,
        Err(e) => Err(e),
    };
    // A new role's form comes back under its key.
    let (shown, result) = match saved {
        Ok(role) => (role.key, Ok(format!("The role {} is saved.", role.name))),
        Err(e) => (key, Err(e)),
    };
    after_save(&state, &ui, "roles", Shown::Role(&shown), result).await
}

/// Changes a user's roles or status.
async fn update_user(
    State(state): State<AppState>,
    ui: Ui,
    Path(id): Path<uuid::Uuid>,
    form: FormData,
) -> PageResult {
    ui.check_csrf(&form)?;
    let patch = crate::directory::users::UserPatch {
        name: None,
        roles: Some(form.all("roles").into_iter().map(str::to_owned).collect()),
        status: form.text("status"),
    };
    let result = crate::directory::users::update(&state, &ui.ctx, id, patch)
        .await
        .map(|u| format!("{} is saved.", u.name));
    after_save(&state, &ui, "users", Shown::Section, result).await
}

async fn delete_field(
    State(state): State<AppState>,
    ui: Ui,
    Path(id): Path<uuid::Uuid>,
    form: FormData,
) -> PageResult {
    ui.check_csrf(&form)?;
    crate::crm::field_definitions::delete(&state.db, &ui.ctx, id, None).await?;
    Ok(Redirect::to("/settings/fields").into_response())
}
