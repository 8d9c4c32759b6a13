//! The dashboard: pipeline value by stage, deals won per month, the
//! weighted forecast and the activities due, each within the caller's
//! record scope. Amounts are summed in the database (exact integers of
//! 1/10,000ths), one currency at a time: the tenant's most used one.

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use chrono::{Datelike, Months, Utc};
use rust_decimal::Decimal;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::AppState;
use crate::context::RequestContext;
use crate::crm::listing::minor_to_decimal;
use crate::crm::pipelines::{self, Pipeline, StageKind};
use crate::crm::records;
use crate::db::dialect::Dialect;
use crate::entities::{activity, deal};
use crate::error::Error;
use crate::permissions::{Action, FieldAccess, ObjectType};
use crate::web::charts::{self, Bar};
use crate::web::{PageError, Ui};

#[derive(Debug, Deserialize)]
pub struct DashboardParams {
    pub pipeline: Option<Uuid>,
}

pub async fn page(
    State(state): State<AppState>,
    ui: Ui,
    Query(p): Query<DashboardParams>,
) -> Result<axum::response::Response, PageError> {
    let ctx = &ui.ctx;
    let mut page = json!({
        "title": "Dashboard",
        "pipelines": [],
        "pipeline_chart": null,
        "won_chart": null,
        "forecast": null,
        "due": [],
        "currency": null,
    });
    // Sums of a hidden field would reveal it: no charts of what the role
    // may not see.
    let hidden =
        |field: &str| ctx.policy.field_access(ObjectType::Deal, field) == Some(FieldAccess::Hidden);
    if ctx.can(ObjectType::Deal, Action::Read) && !hidden("amount") && !hidden("stage_id") {
        let all = pipelines::list(&state.db, ctx).await?;
        let chosen = crate::web::board::chosen(&state, ctx, &all, p.pipeline).await?;
        let totals = stage_totals(&state, ctx, None).await?;
        let currency = main_currency(&totals);
        if let (Some(pipeline), Some(currency)) = (chosen, currency.clone()) {
            page["pipeline_chart"] = pipeline_chart(&pipeline, &totals, &currency);
            if !hidden("expected_close_date") {
                page["forecast"] = forecast(&state, ctx, &all, &currency).await?;
            }
            if !hidden("closed_at") {
                page["won_chart"] = won_chart(&state, ctx, &all, &currency).await?;
            }
            page["pipelines"] = Value::Array(
                all.iter()
                    .map(|x| json!({"id": x.id, "name": x.name, "selected": x.id == pipeline.id}))
                    .collect(),
            );
        }
        page["currency"] = json!(currency);
    }
    if ctx.can(ObjectType::Activity, Action::Read) {
        page["due"] = Value::Array(due_activities(&state, ctx).await?);
    }
    page["widgets"] = Value::Array(widgets(&state, ctx).await?);
    Ok(ui.render(&state, "dashboard.html", page))
}

/// The shared views pinned to the dashboard (an edition's widgets), each
/// with the number of records it finds within the caller's record scope.
/// Views of types the caller may not read are left out; one whose query no
/// longer runs (a field deleted since) says so instead of a number.
async fn widgets(state: &AppState, ctx: &RequestContext) -> Result<Vec<Value>, Error> {
    use crate::entities::saved_view;
    let views = saved_view::Entity::find()
        .filter(saved_view::Column::TenantId.eq(ctx.tenant_id))
        .filter(saved_view::Column::OnDashboard.eq(true))
        .filter(saved_view::Column::UserId.is_null())
        .order_by_asc(saved_view::Column::CreatedAt)
        .all(&state.db)
        .await?;
    let mut out = Vec::new();
    for v in views {
        let Some(object) = ObjectType::parse(&v.object_type) else {
            continue;
        };
        let Some(path) = crate::editions::list_path(object) else {
            continue;
        };
        if !ctx.can(object, Action::Read) {
            continue;
        }
        let count = crate::editions::count_view(&state.db, ctx, object, &v.query).await;
        out.push(json!({
            "title": v.name,
            "count": count.as_ref().ok(),
            "error": count.err().map(|e| e.to_string()),
            "href": format!("/{path}?{}", v.query),
        }));
    }
    Ok(out)
}

/// Sums of open deal amounts: (stage, currency, month?) → (minor, count).
pub(crate) type Totals = BTreeMap<(Uuid, String, String), (i64, i64)>;

/// Deals grouped by stage and currency, and by the month of `month_of`
/// when given, within the caller's record scope.
pub(crate) async fn stage_totals(
    state: &AppState,
    ctx: &RequestContext,
    month_of: Option<(&'static str, sea_orm::Value, sea_orm::Value)>,
) -> Result<Totals, Error> {
    let dialect = Dialect(state.db.get_database_backend());
    let month_expr = match month_of {
        Some((column, _, _)) => dialect.year_month(column),
        None => "''".to_owned(),
    };
    let mut q = deal::Entity::find()
        .select_only()
        .column(deal::Column::StageId)
        .column(deal::Column::Currency)
        .column_as(Expr::cust(month_expr.clone()), "month")
        .column_as(Expr::cust("CAST(SUM(amount_minor) AS BIGINT)"), "total")
        .column_as(Expr::cust("CAST(COUNT(*) AS BIGINT)"), "n")
        .filter(deal::Column::TenantId.eq(ctx.tenant_id));
    if let Some(owners) = records::reachable_owners(&state.db, ctx, ObjectType::Deal).await? {
        q = q.filter(deal::Column::OwnerId.is_in(owners));
    }
    if let Some((column, from, to)) = month_of.clone() {
        q = q
            .filter(Expr::col(column).gte(from))
            .filter(Expr::col(column).lt(to));
    }
    q = q
        .group_by(deal::Column::StageId)
        .group_by(deal::Column::Currency);
    if month_of.is_some() {
        q = q.group_by(Expr::cust(month_expr));
    }
    let rows: Vec<(Uuid, String, String, Option<i64>, i64)> = q.into_tuple().all(&state.db).await?;
    Ok(rows
        .into_iter()
        .map(|(stage, cur, month, total, n)| ((stage, cur, month), (total.unwrap_or(0), n)))
        .collect())
}

/// The currency most deals use.
fn main_currency(totals: &Totals) -> Option<String> {
    let mut counts: BTreeMap<&str, i64> = BTreeMap::new();
    for ((_, cur, _), (_, n)) in totals {
        *counts.entry(cur.as_str()).or_default() += n;
    }
    counts
        .into_iter()
        .max_by_key(|(_, n)| *n)
        .map(|(c, _)| c.to_owned())
}

fn pipeline_chart(p: &Pipeline, totals: &Totals, currency: &str) -> Value {
    let bars: Vec<Bar> = p
        .stages
        .iter()
        .map(|s| {
            let (minor, n) = totals
                .iter()
                .filter(|((stage, cur, _), _)| *stage == s.id && cur == currency)
                .fold((0i64, 0i64), |acc, (_, (m, n))| (acc.0 + m, acc.1 + n));
            Bar {
                label: s.name.clone(),
                value: minor_to_decimal(minor),
                note: format!("{n} deals"),
            }
        })
        .collect();
    charts::bar_chart(
        &format!("Pipeline value by stage ({currency})"),
        &bars,
        currency,
    )
}

fn months_back(n: u32) -> (chrono::DateTime<Utc>, Vec<String>) {
    let now = Utc::now();
    let first = now
        .date_naive()
        .with_day(1)
        .unwrap_or(now.date_naive())
        .checked_sub_months(Months::new(n - 1))
        .unwrap_or(now.date_naive());
    let labels = (0..n)
        .filter_map(|i| first.checked_add_months(Months::new(i)))
        .map(|d| d.format("%Y-%m").to_string())
        .collect();
    (
        first.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc(),
        labels,
    )
}

/// Won deals by the month they closed, the last 12 months.
async fn won_chart(
    state: &AppState,
    ctx: &RequestContext,
    all: &[Pipeline],
    currency: &str,
) -> Result<Value, Error> {
    let won: Vec<Uuid> = all
        .iter()
        .flat_map(|p| p.stages.iter())
        .filter(|s| s.kind == StageKind::Won)
        .map(|s| s.id)
        .collect();
    let (from, months) = months_back(12);
    let totals = stage_totals(
        state,
        ctx,
        Some((
            "closed_at",
            from.into(),
            (Utc::now() + chrono::Duration::days(1)).into(),
        )),
    )
    .await?;
    let bars: Vec<Bar> = months
        .iter()
        .map(|m| {
            let (minor, n) = totals
                .iter()
                .filter(|((stage, cur, month), _)| {
                    won.contains(stage) && cur == currency && month == m
                })
                .fold((0i64, 0i64), |acc, (_, (v, n))| (acc.0 + v, acc.1 + n));
            Bar {
                label: m.clone(),
                value: minor_to_decimal(minor),
                note: format!("{n} won"),
            }
        })
        .collect();
    Ok(charts::bar_chart(
        &format!("Deals won per month ({currency})"),
        &bars,
        currency,
    ))
}

/// Open deals weighted by their stage's win probability, by expected
/// close month (this month and the next five; undated deals apart).
async fn forecast(
    state: &AppState,
    ctx: &RequestContext,
    all: &[Pipeline],
    currency: &str,
) -> Result<Value, Error> {
    let open: BTreeMap<Uuid, i32> = all
        .iter()
        .flat_map(|p| p.stages.iter())
        .filter(|s| s.kind == StageKind::Open)
        .map(|s| (s.id, s.probability))
        .collect();
    let now = Utc::now();
    let this_month = now
        .date_naive()
        .with_day(1)
        .unwrap_or(now.date_naive())
        .and_hms_opt(0, 0, 0)
        .unwrap_or_default()
        .and_utc();
    let months: Vec<String> = (0..6)
        .filter_map(|i| this_month.date_naive().checked_add_months(Months::new(i)))
        .map(|d| d.format("%Y-%m").to_string())
        .collect();
    let end = this_month
        .date_naive()
        .checked_add_months(Months::new(6))
        .unwrap_or(this_month.date_naive())
        .and_hms_opt(0, 0, 0)
        .unwrap_or_default()
        .and_utc();
    let totals = stage_totals(
        state,
        ctx,
        Some((
            "expected_close_date",
            this_month.date_naive().into(),
            end.date_naive().into(),
        )),
    )
    .await?;
    let mut weighted_total = Decimal::ZERO;
    let mut unweighted_total = Decimal::ZERO;
    let bars: Vec<Bar> = months
        .iter()
        .map(|m| {
            let (weighted, raw) = totals
                .iter()
                .filter(|((_, cur, month), _)| cur == currency && month == m)
                .filter_map(|((stage, _, _), (minor, _))| {
                    open.get(stage).map(|p| {
                        let amount = minor_to_decimal(*minor);
                        (amount * Decimal::from(*p) / Decimal::from(100), amount)
                    })
                })
                .fold((Decimal::ZERO, Decimal::ZERO), |acc, (w, r)| {
                    (acc.0 + w, acc.1 + r)
                });
            weighted_total += weighted;
            unweighted_total += raw;
            Bar {
                label: m.clone(),
                value: weighted.round_dp(2),
                note: format!("of {}", raw.round_dp(2)),
            }
        })
        .collect();
    let mut chart = charts::bar_chart(
        &format!("Weighted forecast by expected close ({currency})"),
        &bars,
        currency,
    );
    chart["weighted_total"] = json!(weighted_total.round_dp(2).to_string());
    chart["unweighted_total"] = json!(unweighted_total.round_dp(2).to_string());
    Ok(chart)
}

/// The caller's open activities due within a week (overdue first).
async fn due_activities(state: &AppState, ctx: &RequestContext) -> Result<Vec<Value>, Error> {
    let horizon = Utc::now() + chrono::Duration::days(7);
    let mut q = activity::Entity::find()
        .filter(activity::Column::TenantId.eq(ctx.tenant_id))
        .filter(activity::Column::Done.eq(false))
        .filter(activity::Column::DueAt.lte(horizon));
    // The user's own; an API-only caller has none.
    q = q.filter(activity::Column::OwnerId.eq(ctx.user_id));
    let rows = q
        .order_by_asc(activity::Column::DueAt)
        .limit(10)
        .all(&state.db)
        .await?;
    let now = Utc::now();
    let visible =
        records::reveal_many::<crate::crm::activities::Activities>(&state.db, ctx, &rows, true)
            .await?;
    Ok(visible
        .into_iter()
        .zip(rows.iter())
        .map(|(v, m)| {
            // What the role may see of each: the redacted record's fields.
            let due_visible = v.get("due_at").is_some_and(|d| !d.is_null());
            json!({
                "id": m.id,
                "subject": v.get("subject").cloned().unwrap_or(Value::Null),
                "kind": v.get("kind").cloned().unwrap_or(Value::Null),
                "due_at": v.get("due_at").cloned().unwrap_or(Value::Null),
                "overdue": due_visible && m.due_at.is_some_and(|d| d < now),
            })
        })
        .collect())
}
