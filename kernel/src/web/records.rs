//! Contacts, accounts, deals and activities in the browser: list views
//! (search, filters on built-in and custom fields, sort, saved views,
//! cursor paging), detail pages (every visible field, the timeline, related
//! records, plugin panels) and edit forms with the services' validation
//! messages next to the fields.
//!
//! One set of generic handlers serves the four types; what differs lives in
//! [`RecordPage`].

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::AppState;
use crate::context::RequestContext;
use crate::crm::accounts::Accounts;
use crate::crm::activities::Activities;
use crate::crm::contacts::Contacts;
use crate::crm::custom_fields;
use crate::crm::deals::Deals;
use crate::crm::listing::Kind;
use crate::crm::records::{self, Record};
use crate::entities::{saved_view, user};
use crate::error::Error;
use crate::permissions::{Action, FieldAccess, ObjectType};
use crate::web::forms::{self, Field, FormData, Input};
use crate::web::{PageError, Ui};

mod bulk_pages;
mod merging;
mod objects;

type PageResult = Result<Response, PageError>;

/// What a record type's pages need beyond [`Record`].
pub trait RecordPage: Record {
    /// The URL segment: `/contacts`.
    const PATH: &'static str;
    const SINGULAR: &'static str;
    const PLURAL: &'static str;
    /// Columns of the list: (field, heading).
    const COLUMNS: &'static [(&'static str, &'static str)];
    /// Whether the search index holds this type (else search is a
    /// `contains` on [`RecordPage::TITLE`]).
    const INDEXED: bool = true;
    /// The field that names a record.
    const TITLE: &'static str = "name";
    /// Columns that sort by another field (a contact's derived `name` by
    /// `last_name`).
    const SORT_AS: &'static [(&'static str, &'static str)] = &[];

    /// The built-in fields of the form.
    fn form_fields(choices: &Choices) -> Vec<Field>;

    /// Reshapes the form's values into the service's input (a contact's
    /// emails, one per line, become address objects).
    fn adapt(_input: &mut Value) {}
}

/// Values forms choose from: users, pipelines and stages.
pub struct Choices {
    pub users: Vec<(String, String)>,
    pub pipelines: Vec<(String, String)>,
    pub stages: Vec<(String, String)>,
}

impl Choices {
    pub async fn load(
        state: &AppState,
        ctx: &RequestContext,
        object: ObjectType,
    ) -> Result<Choices, Error> {
        // Owners the caller may give records to (and see records of).
        let mut users = user::Entity::find()
            .filter(user::Column::TenantId.eq(ctx.tenant_id))
            .filter(user::Column::Status.eq("active"));
        if let Some(owners) = records::reachable_owners(&state.db, ctx, object).await? {
            users = users.filter(user::Column::Id.is_in(owners));
        }
        let users = users
            .order_by_asc(user::Column::Name)
            .all(&state.db)
            .await?
            .into_iter()
            .map(|u| (u.id.to_string(), u.name))
            .collect();
        let (mut pipelines, mut stages) = (Vec::new(), Vec::new());
        if object == ObjectType::Deal {
            for p in crate::crm::pipelines::list(&state.db, ctx).await? {
                pipelines.push((p.id.to_string(), p.name.clone()));
                for s in p.stages {
                    stages.push((s.id.to_string(), format!("{} — {}", p.name, s.name)));
                }
            }
        }
        Ok(Choices {
            users,
            pipelines,
            stages,
        })
    }

    fn user_name(&self, id: &str) -> Option<&str> {
        self.users
            .iter()
            .find(|(u, _)| u == id)
            .map(|(_, n)| n.as_str())
    }
}

fn owner(c: &Choices) -> Field {
    let mut f = Field::new("owner_id", "Owner", Input::Select);
    f.options = c.users.clone();
    f
}

fn reference(name: &str, label: &str, object: ObjectType) -> Field {
    Field::new(name, label, Input::Reference(object))
}

impl RecordPage for Contacts {
    const PATH: &'static str = "contacts";
    const SINGULAR: &'static str = "Contact";
    const PLURAL: &'static str = "Contacts";
    const SORT_AS: &'static [(&'static str, &'static str)] = &[("name", "last_name")];
    const COLUMNS: &'static [(&'static str, &'static str)] = &[
        ("name", "Name"),
        ("email", "Email"),
        ("job_title", "Job title"),
        ("lifecycle_stage", "Lifecycle stage"),
        ("owner_id", "Owner"),
        ("created_at", "Created"),
    ];

    fn form_fields(c: &Choices) -> Vec<Field> {
        vec![
            Field::new("first_name", "First name", Input::Text),
            Field::new("last_name", "Last name", Input::Text),
            Field::new("emails", "Email addresses", Input::Lines)
                .help("One per line; the first is the primary address."),
            Field::new("phones", "Phone numbers", Input::Lines).help("One per line."),
            Field::new("job_title", "Job title", Input::Text),
            Field::new("lifecycle_stage", "Lifecycle stage", Input::Select)
                .options(crate::crm::contacts::STAGES),
            Field::new("lead_source", "Lead source", Input::Text),
            owner(c),
            Field::new("tags", "Tags", Input::Tags).help("Separated by commas."),
            Field::new("do_not_email", "Do not email", Input::Checkbox),
            Field::new("do_not_call", "Do not call", Input::Checkbox),
            Field::new("preferred_channel", "Preferred channel", Input::Select)
                .options(&["email", "phone", "sms", "mail", "none"]),
        ]
    }

    /// Lines `work: ada@example.com` keep their label; the first line is
    /// the primary address.
    fn adapt(input: &mut Value) {
        if let Some(Value::Array(emails)) = input.get_mut("emails") {
            let list: Vec<Value> = emails
                .iter()
                .enumerate()
                .map(|(i, e)| {
                    let (label, address) = labelled(e.as_str().unwrap_or(""));
                    json!({"address": address, "label": label, "primary": i == 0})
                })
                .collect();
            *emails = list;
        }
        if let Some(Value::Array(phones)) = input.get_mut("phones") {
            let list: Vec<Value> = phones
                .iter()
                .map(|p| {
                    let (label, number) = labelled(p.as_str().unwrap_or(""));
                    json!({"number": number, "label": label})
                })
                .collect();
            *phones = list;
        }
    }
}

/// `work: ada@example.com` → (Some("work"), "ada@example.com"); a line
/// without a short label before `: ` is all value.
fn labelled(line: &str) -> (Option<String>, String) {
    match line.split_once(": ") {
        Some((label, value))
            if !label.is_empty()
                && label.len() <= 20
                && label
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == '-') =>
        {
            (Some(label.to_owned()), value.trim().to_owned())
        }
        _ => (None, line.trim().to_owned()),
    }
}

/// A contact's emails or phones as form lines, primary first, labels kept.
fn as_lines(items: &[Value], key: &str) -> Vec<Value> {
    let mut sorted: Vec<&Value> = items.iter().collect();
    sorted.sort_by_key(|i| !i.get("primary").and_then(Value::as_bool).unwrap_or(false));
    sorted
        .into_iter()
        .filter_map(|i| {
            let value = i.get(key).and_then(Value::as_str)?;
            Some(Value::String(
                match i.get("label").and_then(Value::as_str) {
                    Some(l) if !l.is_empty() => format!("{l}: {value}"),
                    _ => value.to_owned(),
                },
            ))
        })
        .collect()
}

impl RecordPage for Accounts {
    const PATH: &'static str = "accounts";
    const SINGULAR: &'static str = "Account";
    const PLURAL: &'static str = "Accounts";
    const COLUMNS: &'static [(&'static str, &'static str)] = &[
        ("name", "Name"),
        ("domain", "Domain"),
        ("industry", "Industry"),
        ("territory", "Territory"),
        ("owner_id", "Owner"),
        ("created_at", "Created"),
    ];

    fn form_fields(c: &Choices) -> Vec<Field> {
        vec![
            Field::new("name", "Name", Input::Text).required(),
            Field::new("domain", "Domain", Input::Text).help("e.g. example.com"),
            Field::new("industry", "Industry", Input::Text),
            Field::new("size", "Size", Input::Text).help("Head-count band, e.g. 51-200"),
            Field::new("territory", "Territory", Input::Text),
            owner(c),
            reference("parent_id", "Parent account", ObjectType::Account),
        ]
    }
}

impl RecordPage for Deals {
    const PATH: &'static str = "deals";
    const SINGULAR: &'static str = "Deal";
    const PLURAL: &'static str = "Deals";
    const COLUMNS: &'static [(&'static str, &'static str)] = &[
        ("name", "Name"),
        ("amount", "Amount"),
        ("stage_id", "Stage"),
        ("expected_close_date", "Expected close"),
        ("owner_id", "Owner"),
        ("updated_at", "Updated"),
    ];

    fn form_fields(c: &Choices) -> Vec<Field> {
        let mut pipeline = Field::new("pipeline_id", "Pipeline", Input::Select);
        pipeline.options = c.pipelines.clone();
        let mut stage = Field::new("stage_id", "Stage", Input::Select)
            .help("Must belong to the pipeline; blank: its first stage.");
        stage.options = c.stages.clone();
        vec![
            Field::new("name", "Name", Input::Text).required(),
            Field::new("amount", "Amount", Input::Decimal).help("An exact amount, e.g. 1250.00"),
            Field::new("currency", "Currency", Input::Text)
                .required()
                .help("ISO 4217 code, e.g. USD"),
            pipeline,
            stage,
            Field::new("expected_close_date", "Expected close date", Input::Date),
            owner(c),
            reference("contact_id", "Primary contact", ObjectType::Contact),
            reference("account_id", "Account", ObjectType::Account),
            Field::new("lost_reason", "Lost reason", Input::Text)
                .help("Required when the stage is a lost stage."),
        ]
    }

    fn adapt(input: &mut Value) {
        // A blank amount is zero, as in the API.
        if input.get("amount").is_some_and(Value::is_null)
            && let Some(o) = input.as_object_mut()
        {
            o.remove("amount");
        }
    }
}

impl RecordPage for Activities {
    const PATH: &'static str = "activities";
    const SINGULAR: &'static str = "Activity";
    const PLURAL: &'static str = "Activities";
    const COLUMNS: &'static [(&'static str, &'static str)] = &[
        ("subject", "Subject"),
        ("kind", "Kind"),
        ("due_at", "Due"),
        ("done", "Done"),
        ("owner_id", "Owner"),
        ("created_at", "Created"),
    ];
    const INDEXED: bool = false;
    const TITLE: &'static str = "subject";

    fn form_fields(c: &Choices) -> Vec<Field> {
        vec![
            Field::new("kind", "Kind", Input::Select)
                .required()
                .options(&["task", "call", "meeting", "email", "note"]),
            Field::new("subject", "Subject", Input::Text).required(),
            Field::new("body", "Notes", Input::Textarea),
            Field::new("due_at", "Due (UTC)", Input::Datetime),
            Field::new("starts_at", "Starts (UTC)", Input::Datetime),
            Field::new("ends_at", "Ends (UTC)", Input::Datetime),
            Field::new("done", "Done", Input::Checkbox),
            Field::new("outcome", "Outcome", Input::Text),
            owner(c),
            reference("contact_id", "Contact", ObjectType::Contact),
            reference("account_id", "Account", ObjectType::Account),
            reference("deal_id", "Deal", ObjectType::Deal),
        ]
    }
}

/// The routes of the four record types.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/contacts/{id}/duplicates", get(duplicates::<Contacts>))
        .route("/accounts/{id}/duplicates", get(duplicates::<Accounts>))
        .route(
            "/contacts/{id}/merge",
            get(merging::compare::<Contacts>).post(merging::submit::<Contacts>),
        )
        .route(
            "/accounts/{id}/merge",
            get(merging::compare::<Accounts>).post(merging::submit::<Accounts>),
        )
        .route("/merges/{id}/undo", post(merging::undo))
        .route("/bulk-actions/{id}", get(bulk_pages::show))
        .route("/bulk-actions/{id}/restore", post(bulk_pages::restore))
        .route("/duplicates", get(merging::queue_page))
        .route("/duplicates/scan", post(merging::scan))
        .route("/duplicates/{id}/dismiss", post(merging::dismiss))
        .route("/objects/{key}", get(objects::list))
        .route("/objects/{key}/{id}", get(objects::detail))
        .merge(routes::<Contacts>())
        .merge(routes::<Accounts>())
        .merge(routes::<Deals>())
        .merge(routes::<Activities>())
}

fn routes<R: RecordPage>() -> Router<AppState> {
    let base = format!("/{}", R::PATH);
    Router::new()
        .route(&base, get(list::<R>))
        .route(&format!("{base}/new"), get(new_form::<R>).post(create::<R>))
        .route(&format!("{base}/views"), post(save_view::<R>))
        .route(&format!("{base}/export"), get(export::<R>))
        .route(&format!("{base}/bulk"), post(bulk_pages::start::<R>))
        .route(&format!("{base}/{{id}}"), get(detail::<R>))
        .route(
            &format!("{base}/{{id}}/edit"),
            get(edit_form::<R>).post(update::<R>),
        )
        .route(&format!("{base}/{{id}}/delete"), post(delete::<R>))
}

/// The list's own parameters, apart from what goes to the service.
struct ListParams {
    q: Option<String>,
    filters: Vec<String>,
    sort: Option<String>,
    cursor: Option<String>,
}

impl ListParams {
    fn parse(raw: Option<&str>) -> ListParams {
        let mut p = ListParams {
            q: None,
            filters: Vec::new(),
            sort: None,
            cursor: None,
        };
        let (mut nf_field, mut nf_op, mut nf_value) = (None, None, None);
        for (k, v) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
            let v = v.trim().to_owned();
            match k.as_ref() {
                "q" if !v.is_empty() => p.q = Some(v),
                "filter" if !v.is_empty() => p.filters.push(v),
                "sort" if !v.is_empty() => p.sort = Some(v),
                "cursor" if !v.is_empty() => p.cursor = Some(v),
                // The "add a filter" row of the form.
                "nf_field" if !v.is_empty() => nf_field = Some(v),
                "nf_op" if !v.is_empty() => nf_op = Some(v),
                "nf_value" => nf_value = Some(v),
                _ => {}
            }
        }
        if let (Some(f), Some(op)) = (nf_field, nf_op) {
            let value = nf_value.unwrap_or_default();
            if !value.is_empty() || op == "is_null" {
                p.filters.push(format!("{f}:{op}:{value}"));
            }
        }
        p
    }

    /// The query string of this list, without the cursor (for links).
    fn query(&self, sort: Option<&str>, drop_filter: Option<usize>) -> String {
        let mut s = form_urlencoded::Serializer::new(String::new());
        if let Some(q) = &self.q {
            s.append_pair("q", q);
        }
        for (i, f) in self.filters.iter().enumerate() {
            if Some(i) != drop_filter {
                s.append_pair("filter", f);
            }
        }
        if let Some(sort) = sort.or(self.sort.as_deref()) {
            s.append_pair("sort", sort);
        }
        s.finish()
    }
}

/// A record's likely duplicates (contacts and accounts), each with its
/// confidence and reasons, linking to both records.
async fn duplicates<R: RecordPage>(
    State(state): State<AppState>,
    ui: Ui,
    Path(id): Path<Uuid>,
) -> PageResult {
    let found = match R::OBJECT {
        ObjectType::Account => crate::crm::duplicates::accounts(&state.db, &ui.ctx, id).await?,
        _ => crate::crm::duplicates::contacts(&state.db, &ui.ctx, id).await?,
    };
    let title = records::among::<R>(&state.db, &ui.ctx, None, &[id])
        .await?
        .first()
        .and_then(|r| r.get(R::TITLE))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let candidates: Vec<Value> = found
        .iter()
        .map(|c| {
            json!({
                "href": format!("/{}/{}", R::PATH, c.id),
                "merge": format!("/{}/{id}/merge?with={}", R::PATH, c.id),
                "name": c.name,
                "percent": (c.score * 100.0).round(),
                "reasons": c.reasons.iter().map(|r| r.detail.clone()).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(ui.render(
        &state,
        "duplicates.html",
        json!({
            "title": format!("Possible duplicates of {title}"),
            "object": object_json::<R>(),
            "record": {"id": id, "href": format!("/{}/{id}", R::PATH)},
            "candidates": candidates,
            "can_merge": ui.ctx.can(R::OBJECT, Action::Update) && ui.ctx.can(R::OBJECT, Action::Delete),
        }),
    ))
}

/// The list's filters as the service takes them, with its search turned
/// into the matching ids (the list and its export share this).
struct Searched {
    /// Pairs, serialized once at the end (the serializer is not `Send`, so
    /// it may not live across an await).
    pairs: Vec<(&'static str, String)>,
    /// Search hits in rank order, when a search without a chosen sort
    /// lists them best first (at most 100, the list filter's limit).
    ranked: Option<Vec<String>>,
    /// A search that found nothing.
    no_hits: bool,
}

async fn searched<R: RecordPage>(
    state: &AppState,
    ui: &Ui,
    params: &ListParams,
) -> Result<Searched, Error> {
    let mut pairs: Vec<(&'static str, String)> = params
        .filters
        .iter()
        .map(|f| ("filter", f.clone()))
        .collect();
    let mut no_hits = false;
    let mut ranked: Option<Vec<String>> = None;
    if let Some(q) = &params.q {
        if R::INDEXED {
            let hits =
                crate::crm::search::records(&state.db, &ui.ctx, q, &[R::OBJECT], 100).await?;
            if hits.is_empty() {
                no_hits = true;
            } else {
                let ids: Vec<String> = hits.iter().map(|h| h.id.to_string()).collect();
                if params.sort.is_none() {
                    // Best first: the hits are looked up by key and put in
                    // rank order, on one page.
                    ranked = Some(ids);
                } else {
                    pairs.push(("filter", format!("id:in:{}", ids.join(","))));
                }
            }
        } else {
            pairs.push(("filter", format!("{}:contains:{q}", R::TITLE)));
        }
    }
    Ok(Searched {
        pairs,
        ranked,
        no_hits,
    })
}

/// The list as a file: `format` (csv, xlsx, jsonl, vcf, ics) of every
/// record the list's filters, search and sort select, through the API's
/// export (permission, field rules and audit included).
async fn export<R: RecordPage>(
    State(state): State<AppState>,
    ui: Ui,
    RawQuery(raw): RawQuery,
) -> PageResult {
    let params = ListParams::parse(raw.as_deref());
    let format = form_urlencoded::parse(raw.as_deref().unwrap_or("").as_bytes())
        .find(|(k, _)| k == "format")
        .map(|(_, v)| v.into_owned());
    let Searched {
        mut pairs,
        ranked,
        no_hits,
    } = searched::<R>(&state, &ui, &params).await?;
    if no_hits {
        pairs.push(("filter", "id:is_null:true".to_owned()));
    }
    if let Some(ids) = ranked {
        pairs.push(("filter", format!("id:in:{}", ids.join(","))));
    }
    if let Some(s) = &params.sort {
        pairs.push(("sort", s.clone()));
    }
    if let Some(f) = format {
        pairs.push(("format", f));
    }
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    Ok(crate::api::export::export_of::<R>(state, ui.ctx, Some(query)).await?)
}

async fn list<R: RecordPage>(
    State(state): State<AppState>,
    ui: Ui,
    RawQuery(raw): RawQuery,
) -> PageResult {
    ui.ctx.require(R::OBJECT, Action::Read)?;
    let params = ListParams::parse(raw.as_deref());
    let choices = Choices::load(&state, &ui.ctx, R::OBJECT).await?;
    let defs = custom_fields::definitions(&state.db, ui.ctx.tenant_id, R::OBJECT).await?;

    let Searched {
        mut pairs,
        ranked,
        no_hits,
    } = searched::<R>(&state, &ui, &params).await?;
    if let Some(s) = &params.sort {
        pairs.push(("sort", s.clone()));
    }
    if let Some(c) = &params.cursor
        && ranked.is_none()
    {
        pairs.push(("cursor", c.clone()));
    }
    pairs.push(("limit", "50".to_owned()));
    let service_query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    let (page, errors) = if no_hits {
        (
            records::Page {
                data: Vec::new(),
                next_cursor: None,
                total: None,
            },
            Vec::new(),
        )
    } else {
        let result = match &ranked {
            Some(ids) => {
                let ids: Vec<Uuid> = ids.iter().filter_map(|i| Uuid::parse_str(i).ok()).collect();
                let filters_only = form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(params.filters.iter().map(|f| ("filter", f.as_str())))
                    .finish();
                records::among::<R>(&state.db, &ui.ctx, Some(&filters_only), &ids)
                    .await
                    .map(|data| records::Page {
                        data,
                        next_cursor: None,
                        total: None,
                    })
            }
            None => records::list::<R>(&state.db, &ui.ctx, Some(&service_query)).await,
        };
        match result {
            Ok(p) => (p, Vec::new()),
            Err(Error::Validation(errors)) => (
                records::Page {
                    data: Vec::new(),
                    next_cursor: None,
                    total: None,
                },
                errors
                    .into_iter()
                    .map(|e| format!("{}: {}", e.field, e.message))
                    .collect(),
            ),
            Err(Error::InvalidCursor) => (
                records::Page {
                    data: Vec::new(),
                    next_cursor: None,
                    total: None,
                },
                vec!["the page link is out of date; start from the first page".to_owned()],
            ),
            Err(e) => return Err(e.into()),
        }
    };

    let mut page = page;
    if let Some(order) = &ranked {
        let rank = |v: &Value| {
            let id = v.get("id").and_then(Value::as_str).unwrap_or("");
            order.iter().position(|o| o == id).unwrap_or(usize::MAX)
        };
        page.data.sort_by_key(rank);
        page.next_cursor = None;
    }
    let current_sort = params
        .sort
        .clone()
        .unwrap_or_else(|| R::DEFAULT_SORT.to_owned());
    let sortable = |field: &str| {
        R::fields()
            .iter()
            .any(|f| f.name == field && f.sortable && !matches!(f.kind, Kind::StringArray))
    };
    let columns: Vec<Value> = R::COLUMNS
        .iter()
        .filter(|(field, _)| {
            ui.ctx.policy.field_access(R::OBJECT, field) != Some(FieldAccess::Hidden)
        })
        .map(|(column, heading)| {
            let field = R::SORT_AS
                .iter()
                .find(|(c, _)| c == column)
                .map_or(*column, |(_, f)| *f);
            let base = format!("/{}", R::PATH);
            list_column(
                column,
                heading,
                field,
                sortable(field),
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
                .map(|c| {
                    let field = c["field"].as_str().unwrap_or("");
                    json!({"field": field, "text": cell(r, field, &choices)})
                })
                .collect();
            json!({"id": id, "href": format!("/{}/{id}", R::PATH), "cells": cells})
        })
        .collect();
    let filters: Vec<Value> = params
        .filters
        .iter()
        .enumerate()
        .map(|(i, f)| {
            json!({"raw": f, "text": f.replacen(':', " ", 2), "remove": format!("/{}?{}", R::PATH, params.query(None, Some(i)))})
        })
        .collect();
    // Fields a filter can name: built-in and custom, unless hidden.
    let mut filter_fields: Vec<Value> = R::fields()
        .iter()
        .filter(|f| ui.ctx.policy.field_access(R::OBJECT, f.name) != Some(FieldAccess::Hidden))
        .map(|f| json!({"value": f.name, "label": forms::label(f.name)}))
        .collect();
    filter_fields.extend(
        defs.iter()
            .filter(|d| !d.sensitive || d.blind_index)
            .filter(|d| {
                ui.ctx
                    .policy
                    .field_access(R::OBJECT, &format!("custom.{}", d.key))
                    != Some(FieldAccess::Hidden)
            })
            .map(|d| json!({"value": format!("custom.{}", d.key), "label": d.label})),
    );
    let views = saved_views(&state, &ui.ctx, R::OBJECT).await?;
    let next = page.next_cursor.as_ref().map(|c| {
        format!(
            "/{}?{}&cursor={}",
            R::PATH,
            params.query(None, None),
            encode(c)
        )
    });
    Ok(ui.render(
        &state,
        "list.html",
        json!({
            "title": R::PLURAL,
            "object": object_json::<R>(),
            "columns": columns,
            "rows": rows,
            "next_cursor": next,
            "search": params.q,
            "filters": filters,
            "sort": current_sort,
            "fields": filter_fields,
            "errors": errors,
            "can_create": ui.ctx.can(R::OBJECT, Action::Create),
            "can_export": ui.ctx.can(R::OBJECT, Action::Export),
            "bulk": bulk_pages::form::<R>(&ui, &params, &choices),
            "query": params.query(None, None),
            "views": views,
            "view": Value::Null,
            "sorts": Value::Null,
            "total": Value::Null,
        }),
    ))
}

/// A list's column heading: sorting by `sort_field` (when `sortable`)
/// turns the other way when it is the current sort, and the heading says
/// which way the list is sorted.
fn list_column(
    column: &str,
    heading: &str,
    sort_field: &str,
    sortable: bool,
    current_sort: &str,
    base: &str,
    params: &ListParams,
) -> Value {
    let sort_link = sortable.then(|| {
        let next = if current_sort == sort_field {
            format!("-{sort_field}")
        } else {
            sort_field.to_owned()
        };
        format!("{base}?{}", params.query(Some(&next), None))
    });
    let direction = if current_sort == sort_field {
        "ascending"
    } else if current_sort.strip_prefix('-') == Some(sort_field) {
        "descending"
    } else {
        "none"
    };
    json!({"field": column, "heading": heading, "sort_link": sort_link, "sort": direction})
}

fn encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn object_json<R: RecordPage>() -> Value {
    json!({"path": R::PATH, "singular": R::SINGULAR, "plural": R::PLURAL, "type": R::OBJECT.as_str()})
}

/// A list cell's text.
fn cell(record: &Value, field: &str, c: &Choices) -> String {
    let v = forms::value_at(record, field);
    match (field, v) {
        (_, Value::Null) => String::new(),
        ("owner_id", Value::String(id)) => c.user_name(id).unwrap_or("").to_owned(),
        ("stage_id", Value::String(id)) => c
            .stages
            .iter()
            .find(|(s, _)| s == id)
            .map(|(_, n)| n.clone())
            .unwrap_or_default(),
        ("amount", Value::String(a)) => {
            let cur = record.get("currency").and_then(Value::as_str).unwrap_or("");
            format!("{cur} {a}")
        }
        ("lifecycle_stage" | "kind", Value::String(s)) => forms::label(s),
        (f, Value::String(s)) if f.ends_with("_at") => s
            .get(..16)
            .map(|t| t.replace('T', " "))
            .unwrap_or_else(|| s.clone()),
        (_, Value::Bool(b)) => if *b { "Yes" } else { "No" }.to_owned(),
        (_, Value::String(s)) => s.clone(),
        (_, other) => other.to_string(),
    }
}

async fn saved_views(
    state: &AppState,
    ctx: &RequestContext,
    object: ObjectType,
) -> Result<Vec<Value>, Error> {
    let rows = saved_view::Entity::find()
        .filter(saved_view::Column::TenantId.eq(ctx.tenant_id))
        .filter(saved_view::Column::ObjectType.eq(object.as_str()))
        .order_by_asc(saved_view::Column::Name)
        .all(&state.db)
        .await?;
    Ok(rows
        .into_iter()
        .filter(|v| v.user_id.is_none() || v.user_id == ctx.user_id)
        .map(|v| json!({"name": v.name, "query": v.query, "shared": v.user_id.is_none()}))
        .collect())
}

/// Saves the current list query under a name (the user's own, or shared
/// with the tenant by those who manage settings).
async fn save_view<R: RecordPage>(
    State(state): State<AppState>,
    ui: Ui,
    form: FormData,
) -> PageResult {
    ui.check_csrf(&form)?;
    ui.ctx.require(R::OBJECT, Action::Read)?;
    let name = form
        .text("name")
        .ok_or_else(|| Error::field("name", "required", "give the view a name"))?;
    if name.chars().count() > 80 {
        return Err(Error::field("name", "too_long", "at most 80 characters").into());
    }
    let query = form.get("query").unwrap_or("").to_owned();
    // Only what a list understands is kept.
    let params = ListParams::parse(Some(&query));
    let query = params.query(None, None);
    let shared = form.has("shared");
    if shared {
        ui.ctx.require(ObjectType::Tenant, Action::ManageSettings)?;
    }
    let user_id = if shared { None } else { ui.ctx.user_id };
    let tx = crate::db::tenant_tx(&state.db, &ui.ctx).await?;
    let id = Uuid::now_v7();
    saved_view::ActiveModel {
        id: Set(id),
        tenant_id: Set(ui.ctx.tenant_id),
        user_id: Set(user_id),
        object_type: Set(R::OBJECT.as_str().to_owned()),
        name: Set(name.clone()),
        query: Set(query.clone()),
        on_dashboard: Set(false),
        created_at: Set(crate::clock::now()),
    }
    .insert(&tx)
    .await
    .map_err(Error::from)?;
    crate::audit::write(
        &tx,
        &ui.ctx,
        vec![crate::audit::AuditEntry::new(
            ObjectType::Tenant,
            id,
            crate::audit::AuditAction::Create,
            json!({"saved_view": {"name": name, "object_type": R::OBJECT.as_str(), "query": query, "shared": shared}}),
        )],
    )
    .await?;
    tx.commit().await.map_err(Error::from)?;
    Ok(Redirect::to(&format!("/{}?{query}", R::PATH)).into_response())
}

/// The form's fields for the caller: built-in, then custom, without hidden
/// ones, with read-only ones marked. Reference lists are filled only where a
/// form is shown ([`with_reference_options`]): a post needs the fields, not
/// two hundred records per reference.
async fn form_fields<R: RecordPage>(
    state: &AppState,
    ctx: &RequestContext,
    choices: &Choices,
) -> Result<Vec<Field>, Error> {
    let defs = custom_fields::definitions(&state.db, ctx.tenant_id, R::OBJECT).await?;
    let mut fields = R::form_fields(choices);
    fields.extend(defs.iter().map(Field::custom));
    Ok(forms::apply_field_rules(
        ctx,
        R::OBJECT,
        R::INPUT_ALIASES,
        fields,
    ))
}

/// Fills the reference fields' lists: the most recently changed records the
/// caller sees.
async fn with_reference_options(
    state: &AppState,
    ctx: &RequestContext,
    mut fields: Vec<Field>,
) -> Result<Vec<Field>, Error> {
    for f in &mut fields {
        if let Input::Reference(object) = f.input {
            f.options = reference_options(state, ctx, object).await?;
        }
    }
    Ok(fields)
}

/// Up to 200 records of `object` to pick from (the current value is kept
/// even when older; see [`Field::view`]).
async fn reference_options(
    state: &AppState,
    ctx: &RequestContext,
    object: ObjectType,
) -> Result<Vec<(String, String)>, Error> {
    if !ctx.can(object, Action::Read) {
        return Ok(Vec::new());
    }
    if !matches!(
        object,
        ObjectType::Contact | ObjectType::Account | ObjectType::Deal | ObjectType::Activity
    ) {
        return Ok(Vec::new());
    }
    let q = Some("limit=200&sort=-updated_at");
    let page = crate::crm::records::with_record_type!(object, R => records::list::<R>(&state.db, ctx, q).await?);
    Ok(page
        .data
        .iter()
        .map(|r| {
            let id = r.get("id").and_then(Value::as_str).unwrap_or("").to_owned();
            let title = ["name", "subject"]
                .iter()
                .find_map(|k| r.get(*k).and_then(Value::as_str))
                .unwrap_or(&id)
                .to_owned();
            (id, title)
        })
        .collect())
}

fn form_page<R: RecordPage>(
    state: &AppState,
    ui: &Ui,
    fields: &[Field],
    current: &Value,
    errors: &Map<String, Value>,
    record_id: Option<&str>,
    version: Option<i64>,
) -> Response {
    let views: Vec<Value> = fields
        .iter()
        .map(|f| {
            f.view(
                forms::value_at(current, &f.name),
                errors.get(&f.name).and_then(Value::as_str),
            )
        })
        .collect();
    let (title, action, cancel) = match record_id {
        Some(id) => (
            format!("Edit {}", R::SINGULAR.to_lowercase()),
            format!("/{}/{id}/edit", R::PATH),
            format!("/{}/{id}", R::PATH),
        ),
        None => (
            format!("New {}", R::SINGULAR.to_lowercase()),
            format!("/{}/new", R::PATH),
            format!("/{}", R::PATH),
        ),
    };
    let general: Vec<&Value> = errors.get("").into_iter().collect();
    let mut response = ui.render(
        state,
        "form.html",
        json!({
            "title": title,
            "object": object_json::<R>(),
            "record_id": record_id,
            "fields": views,
            "errors": general,
            "version": version,
            "action": action,
            "cancel": cancel,
        }),
    );
    if !errors.is_empty() {
        *response.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
    }
    response
}

async fn new_form<R: RecordPage>(State(state): State<AppState>, ui: Ui) -> PageResult {
    ui.ctx.require(R::OBJECT, Action::Create)?;
    let choices = Choices::load(&state, &ui.ctx, R::OBJECT).await?;
    let fields = form_fields::<R>(&state, &ui.ctx, &choices).await?;
    let fields = with_reference_options(&state, &ui.ctx, fields).await?;
    // Defaults the service would apply, shown up front.
    let current = json!({"owner_id": ui.ctx.user_id, "lifecycle_stage": "lead", "kind": "task"});
    Ok(form_page::<R>(
        &state,
        &ui,
        &fields,
        &current,
        &Map::new(),
        None,
        None,
    ))
}

async fn create<R: RecordPage>(
    State(state): State<AppState>,
    ui: Ui,
    form: FormData,
) -> PageResult {
    ui.check_csrf(&form)?;
    ui.ctx.require(R::OBJECT, Action::Create)?;
    let choices = Choices::load(&state, &ui.ctx, R::OBJECT).await?;
    let fields = form_fields::<R>(&state, &ui.ctx, &choices).await?;
    let shown = forms::to_input(&fields, &form);
    let mut input = shown.clone();
    R::adapt(&mut input);
    let result = match records::from_json::<R::Input>(input) {
        Ok(input) => records::create::<R>(&state.db, &ui.ctx, input).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(m) => Ok(Redirect::to(&format!("/{}/{}", R::PATH, R::id(&m))).into_response()),
        Err(e) => form_error::<R>(&state, &ui, fields, &shown, e, None, None).await,
    }
}

/// A failed write shown on its form: validation errors next to the fields,
/// anything a user can fix (a conflict, a plan limit) above them.
async fn form_error<R: RecordPage>(
    state: &AppState,
    ui: &Ui,
    fields: Vec<Field>,
    shown: &Value,
    e: Error,
    record_id: Option<&str>,
    version: Option<i64>,
) -> PageResult {
    let mut version = version;
    let errors = match e {
        Error::Validation(errors) => forms::errors_by_field(&fields, &errors),
        Error::VersionConflict { current } | Error::PreconditionFailed { current } => {
            // Saving again overwrites their change with what is below, on
            // purpose: the form now carries the current version.
            version = Some(current);
            let mut m = Map::new();
            m.insert(
                String::new(),
                Value::String(format!(
                    "Someone else changed this record (now version {current}) since you opened the form. \
                     Their change is saved; open the record in a new tab to compare, or save again to replace it with what is below."
                )),
            );
            m
        }
        e @ (Error::PlanLimit { .. }
        | Error::Conflict { .. }
        | Error::PluginFailed(_)
        | Error::Forbidden(_)) => {
            let mut m = Map::new();
            m.insert(String::new(), Value::String(e.to_string()));
            m
        }
        other => return Err(other.into()),
    };
    // The submitted values, in the record's shape, so nothing typed is lost.
    let mut current = Map::new();
    if let Some(o) = shown.as_object() {
        for (k, v) in o {
            if k == "custom" {
                if let Some(c) = v.as_object() {
                    current.insert("custom".to_owned(), Value::Object(c.clone()));
                }
            } else {
                current.insert(k.clone(), v.clone());
            }
        }
    }
    let fields = with_reference_options(state, &ui.ctx, fields).await?;
    Ok(form_page::<R>(
        state,
        ui,
        &fields,
        &Value::Object(current),
        &errors,
        record_id,
        version,
    ))
}

async fn edit_form<R: RecordPage>(
    State(state): State<AppState>,
    ui: Ui,
    Path(id): Path<Uuid>,
) -> PageResult {
    ui.ctx.require(R::OBJECT, Action::Update)?;
    let m = records::get::<R>(&state.db, &ui.ctx, id).await?;
    let version = R::version(&m);
    let mut shown = records::reveal_many::<R>(&state.db, &ui.ctx, &[m], true).await?;
    let mut current = shown.pop().unwrap_or(Value::Null);
    // Lines fields show addresses and numbers (with their labels), not
    // their objects.
    for (list, key) in [("emails", "address"), ("phones", "number")] {
        if let Some(Value::Array(items)) = current.get_mut(list) {
            let lines = as_lines(items, key);
            *items = lines;
        }
    }
    let choices = Choices::load(&state, &ui.ctx, R::OBJECT).await?;
    let fields = form_fields::<R>(&state, &ui.ctx, &choices).await?;
    let fields = with_reference_options(&state, &ui.ctx, fields).await?;
    let id = id.to_string();
    Ok(form_page::<R>(
        &state,
        &ui,
        &fields,
        &current,
        &Map::new(),
        Some(&id),
        Some(version),
    ))
}

async fn update<R: RecordPage>(
    State(state): State<AppState>,
    ui: Ui,
    Path(id): Path<Uuid>,
    form: FormData,
) -> PageResult {
    ui.check_csrf(&form)?;
    ui.ctx.require(R::OBJECT, Action::Update)?;
    let choices = Choices::load(&state, &ui.ctx, R::OBJECT).await?;
    let fields = form_fields::<R>(&state, &ui.ctx, &choices).await?;
    let version: i64 = form
        .get("version")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| {
            Error::field("version", "required", "the form lacks the record's version")
        })?;
    let shown = forms::to_input(&fields, &form);
    let mut patch = shown.clone();
    R::adapt(&mut patch);
    let id_text = id.to_string();
    match records::update::<R>(&state.db, &ui.ctx, id, patch, version, false).await {
        Ok(_) => Ok(Redirect::to(&format!("/{}/{id}", R::PATH)).into_response()),
        Err(e) => {
            form_error::<R>(
                &state,
                &ui,
                fields,
                &shown,
                e,
                Some(&id_text),
                Some(version),
            )
            .await
        }
    }
}

async fn delete<R: RecordPage>(
    State(state): State<AppState>,
    ui: Ui,
    Path(id): Path<Uuid>,
    form: FormData,
) -> PageResult {
    ui.check_csrf(&form)?;
    let version = form.get("version").and_then(|v| v.parse().ok());
    records::delete::<R>(&state.db, &ui.ctx, id, version).await?;
    Ok(Redirect::to(&format!("/{}", R::PATH)).into_response())
}

async fn detail<R: RecordPage>(
    State(state): State<AppState>,
    ui: Ui,
    Path(id): Path<Uuid>,
) -> PageResult {
    let m = records::get::<R>(&state.db, &ui.ctx, id).await?;
    if R::id(&m) != id {
        // A merged record's old address leads to the record it became.
        return Ok(Redirect::to(&format!("/{}/{}", R::PATH, R::id(&m))).into_response());
    }
    let version = R::version(&m);
    let merges = merging::undoable(&state, &ui, R::OBJECT, id).await?;
    let record = records::reveal_many::<R>(&state.db, &ui.ctx, &[m], true)
        .await?
        .pop()
        .unwrap_or(Value::Null);
    let choices = Choices::load(&state, &ui.ctx, R::OBJECT).await?;
    let fields = form_fields::<R>(&state, &ui.ctx, &choices).await?;
    let mut shown = Vec::new();
    for f in &fields {
        let v = forms::value_at(&record, &f.name);
        shown.push(display(&state, &ui.ctx, f, v, &record, &choices).await);
    }
    let title = record
        .get(R::TITLE)
        .and_then(Value::as_str)
        .unwrap_or(R::SINGULAR)
        .to_owned();
    let timeline = crate::crm::timeline::timeline(&state.db, &ui.ctx, R::OBJECT, id, 50)
        .await
        .map(|t| serde_json::to_value(t).unwrap_or(Value::Null))
        .unwrap_or(Value::Array(Vec::new()));
    let timeline = timeline_view(&timeline, &choices);
    let related = related(&state, &ui.ctx, R::OBJECT, id, &choices).await?;
    let panels = crate::api::plugins::panels_of::<R>(&state, &ui.ctx, id)
        .await
        .map(|p| serde_json::to_value(p).unwrap_or(Value::Null))
        .unwrap_or(Value::Array(Vec::new()));
    let tree = if R::OBJECT == ObjectType::Account {
        account_tree(&state, &ui.ctx, id).await?
    } else {
        Value::Null
    };
    let relations = if R::OBJECT == ObjectType::Contact {
        relationship_map(&state, &ui.ctx, id, &title).await?
    } else {
        Value::Null
    };
    Ok(ui.render(
        &state,
        "detail.html",
        json!({
            "title": title,
            "object": object_json::<R>(),
            "record": {"id": id, "version": version},
            "fields": shown,
            "timeline": timeline,
            "related": related,
            "panels": panels,
            "tree": tree,
            "relations": relations,
            "can_edit": ui.ctx.can(R::OBJECT, Action::Update),
            "can_delete": ui.ctx.can(R::OBJECT, Action::Delete),
            "merges": merges,
            "actions": Value::Null,
        }),
    ))
}

/// A field on the detail page: its label, its value as text, and a link
/// where the value names something (a record, an address).
async fn display(
    state: &AppState,
    ctx: &RequestContext,
    f: &Field,
    v: &Value,
    record: &Value,
    c: &Choices,
) -> Value {
    let mut link: Option<String> = None;
    let text = match (f.input, v) {
        (_, Value::Null) => String::new(),
        (Input::Checkbox, Value::Bool(b)) => if *b { "Yes" } else { "No" }.to_owned(),
        (Input::Lines, Value::Array(items)) => items
            .iter()
            .filter_map(|i| {
                i.get("address")
                    .or_else(|| i.get("number"))
                    .and_then(Value::as_str)
                    .or_else(|| i.as_str())
                    .map(str::to_owned)
            })
            .collect::<Vec<_>>()
            .join(", "),
        (Input::Tags | Input::MultiSelect, Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(", "),
        (Input::Reference(object), Value::String(id)) => {
            let path = crate::crm::records::with_record_type!(object, T => T::PATH);
            link = Some(format!("/{path}/{id}"));
            reference_title(state, ctx, object, id)
                .await
                .unwrap_or_else(|| id.clone())
        }
        (Input::Email, Value::String(s)) => {
            link = Some(format!("mailto:{s}"));
            s.clone()
        }
        (Input::Url, Value::String(s)) if s.starts_with("https://") || s.starts_with("http://") => {
            link = Some(s.clone());
            s.clone()
        }
        (Input::Datetime, Value::String(s)) => s
            .get(..16)
            .map(|t| format!("{} UTC", t.replace('T', " ")))
            .unwrap_or_else(|| s.clone()),
        (Input::Select, Value::String(s)) if f.name == "owner_id" => {
            c.user_name(s).unwrap_or(s).to_owned()
        }
        (Input::Select, Value::String(s)) if f.name == "stage_id" => c
            .stages
            .iter()
            .find(|(id, _)| id == s)
            .map(|(_, n)| n.clone())
            .unwrap_or_else(|| s.clone()),
        (Input::Select, Value::String(s)) if f.name == "pipeline_id" => c
            .pipelines
            .iter()
            .find(|(id, _)| id == s)
            .map(|(_, n)| n.clone())
            .unwrap_or_else(|| s.clone()),
        (Input::Select, Value::String(s)) if !f.name.starts_with("custom.") => forms::label(s),
        (Input::Decimal, Value::String(s)) if f.name == "amount" => {
            let cur = record.get("currency").and_then(Value::as_str).unwrap_or("");
            format!("{cur} {s}")
        }
        (_, Value::String(s)) => s.clone(),
        (_, other) => other.to_string(),
    };
    // A sealed value the caller may not decrypt stays a mark, never ciphertext.
    let text = if v.get(crate::crm::sensitive::ENC).is_some() {
        "(protected)".to_owned()
    } else {
        text
    };
    json!({"name": f.name, "label": f.label, "text": text, "link": link, "multiline": f.input == Input::Textarea})
}

async fn reference_title(
    state: &AppState,
    ctx: &RequestContext,
    object: ObjectType,
    id: &str,
) -> Option<String> {
    // A type the role may not read is not named, even for its own records.
    if !ctx.can(object, Action::Read) {
        return None;
    }
    let id = Uuid::parse_str(id).ok()?;
    let v = crate::crm::records::with_record_type!(object, R => records::visible_json::<R>(&state.db, ctx, id).await)
        .ok()??;
    ["name", "subject"]
        .iter()
        .find_map(|k| v.get(*k).and_then(Value::as_str))
        .map(str::to_owned)
}

fn timeline_view(entries: &Value, c: &Choices) -> Vec<Value> {
    entries
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|e| {
                    let at = e.get("at").and_then(Value::as_str).unwrap_or("");
                    if let Some(a) = e.get("activity") {
                        let id = a.get("id").and_then(Value::as_str).unwrap_or("");
                        json!({
                            "at": at,
                            "kind": "activity",
                            "text": format!("{}: {}", forms::label(a.get("kind").and_then(Value::as_str).unwrap_or("")), a.get("subject").and_then(Value::as_str).unwrap_or("")),
                            "link": format!("/activities/{id}"),
                        })
                    } else {
                        let action = e.get("action").and_then(Value::as_str).unwrap_or("");
                        let who = match e.get("actor_id").and_then(Value::as_str) {
                            Some(id) => c.user_name(id).map(str::to_owned).unwrap_or_else(|| {
                                forms::label(e.get("actor_kind").and_then(Value::as_str).unwrap_or(""))
                            }),
                            None => forms::label(e.get("actor_kind").and_then(Value::as_str).unwrap_or("")),
                        };
                        let fields: Vec<String> = e
                            .get("changes")
                            .and_then(Value::as_object)
                            .map(|o| o.keys().filter(|k| !k.starts_with('$')).map(|k| forms::label(k)).collect())
                            .unwrap_or_default();
                        let text = if fields.is_empty() || action == "create" {
                            format!("{} by {who}", forms::label(action))
                        } else {
                            format!("{} by {who}: {}", forms::label(action), fields.join(", "))
                        };
                        json!({"at": at, "kind": "change", "text": text, "link": Value::Null})
                    }
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Records linked to this one: deals of a contact or account, a deal's
/// stage history.
async fn related(
    state: &AppState,
    ctx: &RequestContext,
    object: ObjectType,
    id: Uuid,
    choices: &Choices,
) -> Result<Vec<Value>, Error> {
    let mut out = Vec::new();
    let deal_filter = match object {
        ObjectType::Contact => Some("contact_id"),
        ObjectType::Account => Some("account_id"),
        _ => None,
    };
    if let Some(field) = deal_filter
        && ctx.can(ObjectType::Deal, Action::Read)
    {
        let q = format!("filter={field}:eq:{id}&limit=20&sort=-updated_at");
        let page = records::list::<Deals>(&state.db, ctx, Some(&q)).await?;
        let items: Vec<Value> = page
            .data
            .iter()
            .map(|d| {
                let did = d.get("id").and_then(Value::as_str).unwrap_or("");
                json!({
                    "text": d.get("name").and_then(Value::as_str).unwrap_or(""),
                    "detail": format!("{} {}", d.get("currency").and_then(Value::as_str).unwrap_or(""), d.get("amount").and_then(Value::as_str).unwrap_or("")),
                    "link": format!("/deals/{did}"),
                })
            })
            .collect();
        out.push(json!({"title": "Deals", "items": items}));
    }
    if object == ObjectType::Deal {
        let history = crate::crm::deals::stage_history(&state.db, ctx, id).await?;
        let items: Vec<Value> = serde_json::to_value(history)
            .unwrap_or(Value::Null)
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|h| {
                let to = h.get("to_stage_id").and_then(Value::as_str).unwrap_or("");
                let name = choices
                    .stages
                    .iter()
                    .find(|(s, _)| s == to)
                    .map(|(_, n)| n.clone())
                    .unwrap_or_else(|| to.to_owned());
                json!({"text": name, "detail": h.get("moved_at").and_then(Value::as_str).unwrap_or(""), "link": Value::Null})
            })
            .collect();
        out.push(json!({"title": "Stage history", "items": items}));
    }
    if object == ObjectType::Contact {
        let links = crate::crm::links::account_links(&state.db, ctx, id).await?;
        let mut items = Vec::new();
        for l in serde_json::to_value(links)
            .unwrap_or(Value::Null)
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            let aid = l
                .get("account_id")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            let name = reference_title(state, ctx, ObjectType::Account, &aid).await;
            if let Some(name) = name {
                items.push(json!({"text": name, "detail": l.get("role").cloned().unwrap_or(Value::Null), "link": format!("/accounts/{aid}")}));
            }
        }
        out.push(json!({"title": "Accounts", "items": items}));
    }
    Ok(out)
}

/// A contact's relationships as a map: the contact in the middle, each
/// related contact around it with the relationship's type. Drawn as SVG.
async fn relationship_map(
    state: &AppState,
    ctx: &RequestContext,
    id: Uuid,
    name: &str,
) -> Result<Value, Error> {
    let rels = crate::crm::links::relationships(&state.db, ctx, id).await?;
    let rels = serde_json::to_value(rels).unwrap_or(Value::Null);
    let mut others = Vec::new();
    for r in rels.as_array().cloned().unwrap_or_default() {
        let from = r
            .get("from_contact_id")
            .and_then(Value::as_str)
            .unwrap_or("");
        let to = r.get("to_contact_id").and_then(Value::as_str).unwrap_or("");
        let other = if from == id.to_string() { to } else { from };
        let kind = r
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("related")
            .to_owned();
        // A related contact outside the caller's reach is not shown.
        if let Some(title) = reference_title(state, ctx, ObjectType::Contact, other).await {
            others.push((other.to_owned(), title, kind));
        }
    }
    Ok(crate::web::charts::relationship_map(name, &others))
}

/// Most accounts one hierarchy tree shows.
const TREE_NODES: usize = 500;

/// The whole family of an account as nested nodes: from its topmost
/// ancestor the caller may see, down through every descendant in the
/// caller's scope (level by level, up to [`TREE_NODES`]).
async fn account_tree(state: &AppState, ctx: &RequestContext, id: Uuid) -> Result<Value, Error> {
    use crate::entities::account;
    let h = crate::crm::accounts::hierarchy(&state.db, ctx, id).await?;
    let root = h
        .ancestors
        .first()
        .and_then(|a| a.get("id"))
        .and_then(Value::as_str)
        .and_then(|s| Uuid::parse_str(s).ok())
        .unwrap_or(id);
    let name_hidden =
        ctx.policy.field_access(ObjectType::Account, "name") == Some(FieldAccess::Hidden);
    let owners = records::reachable_owners(&state.db, ctx, ObjectType::Account).await?;
    let root_row = records::load::<Accounts, _>(&state.db, ctx, root).await?;
    let mut nodes: Vec<(Uuid, Option<Uuid>, String)> = vec![(root, None, root_row.name)];
    let mut level = vec![root];
    let mut truncated = false;
    for _ in 0..crate::crm::accounts::MAX_DEPTH {
        if level.is_empty() {
            break;
        }
        let mut q = account::Entity::find()
            .filter(account::Column::TenantId.eq(ctx.tenant_id))
            .filter(account::Column::ParentId.is_in(level.clone()));
        if let Some(o) = &owners {
            q = q.filter(account::Column::OwnerId.is_in(o.clone()));
        }
        let children = q
            .order_by_asc(account::Column::Name)
            .limit((TREE_NODES + 1 - nodes.len()) as u64)
            .all(&state.db)
            .await?;
        level = children.iter().map(|c| c.id).collect();
        for c in children {
            if nodes.len() >= TREE_NODES {
                truncated = true;
                break;
            }
            nodes.push((c.id, c.parent_id, c.name));
        }
    }
    fn build(
        nodes: &[(Uuid, Option<Uuid>, String)],
        at: Uuid,
        current: Uuid,
        hidden: bool,
    ) -> Value {
        let (_, _, name) =
            nodes
                .iter()
                .find(|n| n.0 == at)
                .cloned()
                .unwrap_or((at, None, String::new()));
        let children: Vec<Value> = nodes
            .iter()
            .filter(|n| n.1 == Some(at))
            .map(|n| build(nodes, n.0, current, hidden))
            .collect();
        json!({
            "id": at,
            "name": if hidden { "(name hidden)".to_owned() } else { name },
            "current": at == current,
            "children": children,
        })
    }
    Ok(json!({
        "root": build(&nodes, root, id, name_hidden),
        "truncated": truncated,
        "count": nodes.len(),
    }))
}
