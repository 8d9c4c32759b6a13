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

/// The sections, with the object type and action that opens each.
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
    ("audit", "Audit log", ObjectType::AuditLog, Action::Read),
];

/// Whether the caller sees any settings section.
pub fn visible(ctx: &RequestContext) -> bool {
    SECTIONS.iter().any(|(_, _, o, a)| ctx.can(*o, *a))
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/settings", get(index))
        .route("/settings/{section}", get(section).post(save))
        .route("/settings/plugins/{id}/disable", post(disable_plugin))
}

fn sections(ctx: &RequestContext, current: &str) -> Vec<Value> {
    SECTIONS
        .iter()
        .filter(|(_, _, o, a)| ctx.can(*o, *a))
        .map(|(key, label, _, _)| {
            json!({"key": key, "label": label, "href": format!("/settings/{key}"), "current": *key == current})
        })
        .collect()
}

async fn index(ui: Ui) -> PageResult {
    match SECTIONS.iter().find(|(_, _, o, a)| ui.ctx.can(*o, *a)) {
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
    ui.ctx.require(*object, *action)?;
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
    for theme in state.themes.all() {
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
            "hostname": t.hostname,
            "themes": themes,
            "theme_problems": state.themes.problems().iter().map(ToString::to_string).collect::<Vec<_>>(),
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
        "pipelines" => pipelines(state, ui).await,
        "plugins" => plugins(state, ui).await,
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
        _ => return Err(Error::MethodNotAllowed.into()),
    };
    match result {
        Ok(notice) => {
            let page = page_of(&state, &ui, &key, json!({}), Some(&notice), None).await?;
            Ok(render(&state, &ui, &key, page))
        }
        Err(Error::Validation(errors)) => {
            let map: serde_json::Map<String, Value> = errors
                .into_iter()
                .map(|e| (forms::field_of(&e.field), Value::String(e.message)))
                .collect();
            let page = page_of(&state, &ui, &key, Value::Object(map), None, None).await?;
            Ok(crate::web::with_status(
                render(&state, &ui, &key, page),
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            ))
        }
        Err(e) => Err(e.into()),
    }
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
    Ok(json!({
        "columns": ["Name", "Email", "Status", "Roles", "MFA"],
        "rows": rows,
        "form": {
            "kind": "invite",
            "action": "/settings/users",
            "can_edit": ui.ctx.can(ObjectType::User, Action::ManageSettings),
            "roles": roles,
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
            json!({"cells": [r.name, r.key, if r.built_in { "Built-in" } else { "Custom" }, summary]})
        })
        .collect();
    Ok(json!({"columns": ["Name", "Key", "Kind", "Permissions"], "rows": rows}))
}

async fn fields(
    state: &AppState,
    ui: &Ui,
    errors: Value,
    notice: Option<&str>,
) -> Result<Value, Error> {
    let list = crate::crm::field_definitions::list(&state.db, &ui.ctx, None).await?;
    let rows: Vec<Value> = list
        .iter()
        .map(|f| {
            let v = serde_json::to_value(f).unwrap_or(Value::Null);
            let text = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
            json!({"cells": [text("object_type"), text("label"), text("key"), forms::label(&text("field_type")), if v.get("required").and_then(Value::as_bool).unwrap_or(false) { "Yes" } else { "No" }]})
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

async fn pipelines(state: &AppState, ui: &Ui) -> Result<Value, Error> {
    let list = crate::crm::pipelines::list(&state.db, &ui.ctx).await?;
    let rows: Vec<Value> = list
        .iter()
        .flat_map(|p| {
            p.stages.iter().map(move |s| {
                json!({"cells": [p.name, s.name, format!("{}%", s.probability), forms::label(&serde_json::to_value(s.kind).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default())]})
            })
        })
        .collect();
    Ok(json!({"columns": ["Pipeline", "Stage", "Win probability", "Kind"], "rows": rows}))
}

async fn plugins(state: &AppState, ui: &Ui) -> Result<Value, Error> {
    let list = crate::plugins::registry::tenant_plugins(state, &ui.ctx).await?;
    let can_edit = ui.ctx.can(ObjectType::Plugin, Action::ManageSettings);
    let items: Vec<Value> = list
        .iter()
        .map(|p| {
            json!({
                "title": format!("{} {}", p.plugin_id, p.version),
                "enabled": p.enabled,
                "lines": [
                    format!("Granted: {}", if p.grants.is_empty() { "nothing".to_owned() } else { p.grants.join(", ") }),
                    format!("Asks for: {}", if p.requested.is_empty() { "nothing".to_owned() } else { p.requested.join(", ") }),
                    format!("Recent failures in a row: {}", p.consecutive_failures),
                ],
                "problem": p.disabled_reason,
                "disable": (can_edit && p.enabled).then(|| format!("/settings/plugins/{}/disable", p.plugin_id)),
            })
        })
        .collect();
    Ok(json!({"items": items}))
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
        s.append_pair("before", &b.to_string());
        format!("/settings/audit?{}", s.finish())
    });
    Ok(json!({
        "columns": ["At (UTC)", "Actor", "Action", "Object", "Record", "Fields"],
        "rows": rows,
        "form": {"kind": "audit", "filters": filters, "next": next},
    }))
}
