//! `trellis-bench-security`: what the security core costs.
//!
//! ```sh
//! cargo run --release --bin trellis-bench-security                 # SQLite
//! cargo run --release --bin trellis-bench-security -- \
//!     --postgres postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable
//! ```
//!
//! Measures, in one run: logins per second with argon2id at the default
//! parameters; a contact create and a list page through the real API (API
//! key, tenant and plan checks, policy, record scope, field rules, audit
//! chain) beside the same requests through routes that exist only in this
//! binary and skip all of that (same JSON parsing, validation, insert and
//! search index); and audit-chain verification speed. Requests go through
//! the router in-process, so network time does not blur the difference.
//! Every figure is printed; nothing is asserted. See `docs/benchmarks.md`.

#[path = "common/figures.rs"]
mod figures;
#[path = "common/http.rs"]
mod http;
#[path = "common/scratch.rs"]
mod scratch;

use std::time::Instant;

use anyhow::{Result, bail};
use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::Method;
use clap::Parser;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde_json::{Value, json};

use figures::{Figures, fmt, measure};
use http::call;
use trellis::auth::{password, tokens};
use trellis::context::RequestContext;
use trellis::crm::contacts::{ContactInput, Contacts};
use trellis::crm::listing::ListQuery;
use trellis::crm::records::{self, Record};
use trellis::crm::{custom_fields, tenants};
use trellis::db::dialect::Dialect;
use trellis::entities::{contact, user};
use trellis::permissions::ObjectType;
use trellis::{AppState, Config};

#[derive(Debug, Parser)]
#[command(name = "trellis-bench-security")]
struct Args {
    /// Contacts to seed (each write audited, so also the audit entries to verify).
    #[arg(long, default_value_t = 100_000)]
    contacts: usize,
    /// Requests per measured operation.
    #[arg(long, default_value_t = 2000)]
    samples: usize,
    /// Logins to time (argon2id is slow by design).
    #[arg(long, default_value_t = 40)]
    logins: usize,
    /// Benchmark PostgreSQL: an admin URL used to create and drop a scratch database.
    #[arg(long, value_name = "URL")]
    postgres: Option<String>,
}

const PW: &str = "correct horse battery staple";

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let scratch = scratch::Scratch::new(args.postgres.as_deref(), "trellis_secbench").await?;
    let result = run(&args, &scratch.url).await;
    scratch.remove().await;
    result
}

async fn run(args: &Args, url: &str) -> Result<()> {
    let state = AppState::open(Config {
        database_url: url.to_owned(),
        max_connections: 16,
        master_key: Some(trellis::crypto::MasterKey::generate().to_base64()),
        ..Config::default()
    })
    .await?;
    let db = state.db.clone();
    let (tenant, _) = tenants::ensure_default(&db).await?;
    let system = RequestContext::system(tenant.id);
    println!(
        "trellis-bench-security on {} ({} contacts)",
        if url.starts_with("postgres") {
            "PostgreSQL"
        } else {
            "SQLite"
        },
        args.contacts
    );

    // Seed through the services, audit on.
    let started = Instant::now();
    let mut done = 0;
    while done < args.contacts {
        let n = records::MAX_BULK.min(args.contacts - done);
        let items: Vec<Value> = (0..n)
            .map(|i| json!({"first_name": format!("Bench{}", done + i), "last_name": "Secure"}))
            .collect();
        records::bulk_create::<Contacts>(&db, &system, items).await?;
        done += n;
    }
    println!(
        "  seeded {} contacts in {:.1}s",
        args.contacts,
        started.elapsed().as_secs_f64()
    );

    // A sales rep with a password and an API key.
    let params = password::PasswordParams::default();
    let rep = user::ActiveModel {
        id: Set(uuid::Uuid::now_v7()),
        tenant_id: Set(tenant.id),
        email: Set("rep@bench.test".to_owned()),
        name: Set("Rep".to_owned()),
        created_at: Set(trellis::clock::now()),
        password_hash: Set(Some(password::hash(&params, PW)?)),
        status: Set("active".to_owned()),
        roles: Set(json!(["sales_rep"])),
        totp_secret: Set(None),
        mfa_enabled_at: Set(None),
        last_login_at: Set(None),
        totp_last_step: Set(None),
    }
    .insert(&db)
    .await?;
    let key = tokens::generate();
    tokens::store(&db, tenant.id, rep.id, "bench", &key, &["sales_rep"]).await?;

    let app = state.router();
    let bypass = Router::new()
        .route(
            "/bypass/contacts",
            axum::routing::post(bypass_create).get(bypass_list),
        )
        .with_state(Bypass {
            state: state.clone(),
            ctx: system.clone(),
        });

    // 1. Logins.
    let hash = password::hash(&params, PW)?;
    let verify = measure(args.logins, |_| {
        let hash = hash.clone();
        async move {
            if !password::verify(PW, &hash) {
                bail!("verify failed");
            }
            Ok(())
        }
    })
    .await?;
    let login = measure(args.logins, |_| {
        call(
            &app,
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"email": "rep@bench.test", "password": PW})),
        )
    })
    .await?;
    println!(
        "argon2id m={} KiB t={} p={}: verify {} p50, {:.1}/s; full login {} p50 {} p99, {:.1}/s on one client",
        params.memory_kib,
        params.iterations,
        params.parallelism,
        fmt(verify.p50),
        verify.per_sec,
        fmt(login.p50),
        fmt(login.p99),
        login.per_sec
    );

    // 2. Create.
    let body = |i: usize| json!({"first_name": format!("New{i}"), "last_name": "Person", "emails": [{"address": format!("n{i}@x.test")}]});
    let secured = measure(args.samples, |i| {
        call(
            &app,
            Method::POST,
            "/api/v1/contacts",
            Some(&key),
            Some(body(i)),
        )
    })
    .await?;
    let open = measure(args.samples, |i| {
        call(
            &bypass,
            Method::POST,
            "/bypass/contacts",
            None,
            Some(body(i + 1_000_000)),
        )
    })
    .await?;
    report("create contact", &secured, &open);

    // 3. List page.
    let secured = measure(args.samples, |_| {
        call(
            &app,
            Method::GET,
            "/api/v1/contacts?limit=50",
            Some(&key),
            None,
        )
    })
    .await?;
    let open = measure(args.samples, |_| {
        call(
            &bypass,
            Method::GET,
            "/bypass/contacts?limit=50",
            None,
            None,
        )
    })
    .await?;
    report("list 50 contacts", &secured, &open);

    // 4. Audit verification.
    let started = Instant::now();
    let report = trellis::audit::chain::verify(&db, None).await?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "audit verify: {} entries in {secs:.2}s = {:.0} entries/s ({} findings)",
        report.entries,
        report.entries as f64 / secs,
        report.findings.len()
    );
    Ok(())
}

fn report(what: &str, secured: &Figures, open: &Figures) {
    let overhead = |a: std::time::Duration, b: std::time::Duration| {
        (a.as_secs_f64() / b.as_secs_f64() - 1.0) * 100.0
    };
    println!(
        "{what}: secured {} p50 {} p99 {:.0}/s | bypass {} p50 {} p99 {:.0}/s | security adds {:+.1}% at p50",
        fmt(secured.p50),
        fmt(secured.p99),
        secured.per_sec,
        fmt(open.p50),
        fmt(open.p99),
        open.per_sec,
        overhead(secured.p50, open.p50)
    );
}

/// What the bypass routes act with: the default tenant, no checks.
#[derive(Clone)]
struct Bypass {
    state: AppState,
    ctx: RequestContext,
}

/// A contact create without permission checks, record scope, field rules,
/// plan limits, encryption or audit: parsing, validation, the insert and
/// the search index only.
async fn bypass_create(
    State(Bypass { state, ctx }): State<Bypass>,
    axum::Json(body): axum::Json<Value>,
) -> trellis::error::Result<axum::Json<Value>> {
    let input: ContactInput = records::from_json(body)?;
    let tx = trellis::db::write_tx(&state.db).await?;
    let defs = custom_fields::definitions(&tx, ctx.tenant_id, ObjectType::Contact).await?;
    let (values, errors) = custom_fields::check_values(&defs, &Contacts::custom_of(&input), true);
    if !errors.is_empty() {
        return Err(trellis::error::Error::Validation(errors));
    }
    let model = Contacts::build(&tx, &ctx, input, Value::Object(values), None).await?;
    contact::Entity::insert(model.clone().into_active_model())
        .exec_without_returning(&tx)
        .await?;
    let docs: Vec<_> = Contacts::search_document(&model).into_iter().collect();
    trellis::db::search::upsert(&tx, &docs).await?;
    tx.commit().await?;
    Ok(axum::Json(records::to_json::<Contacts>(&model)))
}

/// A list page without permission checks, record scope or field rules.
async fn bypass_list(
    State(Bypass { state, ctx }): State<Bypass>,
    RawQuery(q): RawQuery,
) -> trellis::error::Result<axum::Json<Value>> {
    let dialect = Dialect(state.db.get_database_backend());
    let query = ListQuery::parse(
        q.as_deref(),
        Contacts::fields(),
        &[],
        Contacts::DEFAULT_SORT,
    )?;
    let mut select = contact::Entity::find()
        .filter(Expr::col("tenant_id").eq(ctx.tenant_id))
        .filter(query.filter_condition(dialect)?);
    for (expr, order, nulls) in query.order(dialect) {
        select = match nulls {
            Some(n) => select.order_by_with_nulls(expr, order, n),
            None => select.order_by(expr, order),
        };
    }
    let mut rows = select.limit(query.limit + 1).all(&state.db).await?;
    let more = rows.len() as u64 > query.limit;
    rows.truncate(query.limit as usize);
    let next = match rows.last() {
        Some(last) if more => Some(query.next_cursor(&records::to_json::<Contacts>(last), last.id)),
        _ => None,
    };
    let data: Vec<Value> = rows.iter().map(records::to_json::<Contacts>).collect();
    Ok(axum::Json(json!({"data": data, "next_cursor": next})))
}
