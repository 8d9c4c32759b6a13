//! `trellis-bench`: seeds a large tenant and measures the API against the
//! same queries sent straight to the database, in one run.
//!
//! ```sh
//! cargo run --release --bin trellis-bench                       # SQLite, 1,000,000 contacts
//! cargo run --release --bin trellis-bench -- \
//!     --postgres postgres://postgres@127.0.0.1:5432/postgres    # PostgreSQL (a scratch database)
//! ```
//!
//! Every figure is printed; nothing is asserted. See `docs/benchmarks.md`.

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement, Value as DbValue};
use serde_json::{Value, json};
use uuid::Uuid;

#[path = "common/figures.rs"]
mod figures;
#[path = "common/scratch.rs"]
mod scratch;

use figures::{fmt, measure};
use trellis::auth::tokens;
use trellis::context::RequestContext;
use trellis::crm::contacts::Contacts;
use trellis::crm::custom_fields::{CustomFieldInput, FieldType};
use trellis::crm::deals::Deals;
use trellis::crm::pipelines::{self, PipelineInput, StageInput, StageKind};
use trellis::crm::records::{self, Record};
use trellis::crm::{field_definitions, tenants};
use trellis::db::dialect::{Dialect, JsonKind};
use trellis::permissions::ObjectType;
use trellis::{AppState, Config};

/// Seeds a tenant with many contacts and deals, then measures the HTTP API
/// beside the equivalent raw database queries.
#[derive(Debug, Parser)]
#[command(name = "trellis-bench")]
struct Args {
    /// Contacts to seed (each with two custom fields).
    #[arg(long, default_value_t = 1_000_000)]
    contacts: usize,
    /// Deals to seed.
    #[arg(long, default_value_t = 100_000)]
    deals: usize,
    /// Requests per measured operation.
    #[arg(long, default_value_t = 2000)]
    samples: usize,
    /// Concurrent clients for the throughput runs.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Benchmark PostgreSQL: an admin URL (its database is used only to create
    /// and drop a scratch database). Without it: a SQLite file in a temporary directory.
    #[arg(long, value_name = "URL")]
    postgres: Option<String>,
    /// Keep the scratch database afterwards (its URL is printed), to look at
    /// query plans.
    #[arg(long)]
    keep: bool,
}

const SYLLABLES: &[&str] = &[
    "ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "ber", "dan", "fen", "gor", "hal", "jun",
    "kor", "lin", "mar", "nor", "pel", "ros", "tan", "vel", "wes", "yar", "zol",
];
const FIRST: &[&str] = &[
    "Ada", "Ben", "Chloe", "Daniel", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Keiko",
    "Liam", "Maya", "Noah", "Olivia", "Pedro", "Quinn", "Rosa", "Samir", "Tara", "Umar", "Vera",
    "Wei", "Ximena", "Yusuf", "Zoe",
];
const TIERS: &[&str] = &["gold", "silver", "bronze"];

/// A last name from three syllables: 15,625 distinct names, so a name
/// fragment matches tens of rows, as in a real customer base.
fn last_name(rng: &mut StdRng) -> String {
    let mut s: String = (0..3)
        .map(|_| *SYLLABLES.choose(rng).unwrap_or(&"ka"))
        .collect();
    if let Some(first) = s.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    s
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("warn"))
        .try_init();
    let scratch = scratch::Scratch::new(args.postgres.as_deref(), "trellis_bench").await?;
    let result = run(&args, &scratch.url).await;
    if args.keep {
        println!("kept: {}", scratch.url);
        scratch.keep();
    } else {
        scratch.remove().await;
    }
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
    let backend = db.get_database_backend();
    let (tenant, admin) = tenants::ensure_default(&db).await?;
    let ctx = RequestContext::system(tenant.id);
    let token = tokens::generate();
    tokens::store(&db, tenant.id, admin.id, "bench", &token, &["admin"]).await?;
    println!(
        "trellis-bench on {} ({} contacts, {} deals)",
        backend_name(backend),
        args.contacts,
        args.deals
    );

    for (key, label, field_type, options) in [
        (
            "tier",
            "Tier",
            FieldType::SingleSelect,
            TIERS.iter().map(|s| (*s).to_owned()).collect(),
        ),
        ("score", "Score", FieldType::Integer, Vec::new()),
    ] {
        field_definitions::create(
            &db,
            &ctx,
            CustomFieldInput {
                object_type: ObjectType::Contact,
                key: key.to_owned(),
                label: label.to_owned(),
                field_type,
                required: false,
                unique: false,
                default: None,
                options,
                min: None,
                max: None,
                pattern: None,
                reference_type: None,
                position: 0,
                sensitive: false,
                blind_index: false,
            },
        )
        .await?;
    }

    // Seed through the services: validation, search index and audit on.
    let mut rng = StdRng::seed_from_u64(7);
    let mut sample_ids = Vec::new();
    let started = Instant::now();
    let mut done = 0;
    while done < args.contacts {
        let n = records::MAX_BULK.min(args.contacts - done);
        let items: Vec<Value> = (0..n).map(|i| contact_json(&mut rng, done + i)).collect();
        let created = records::bulk_create::<Contacts>(&db, &ctx, items).await?;
        sample_ids.push(Contacts::id(&created[rng.random_range(0..created.len())]));
        done += n;
        if done % 100_000 == 0 || done == args.contacts {
            println!(
                "  seeded {done} contacts ({:.0}/s)",
                done as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    let seed_rate = args.contacts as f64 / started.elapsed().as_secs_f64();

    let pipeline = pipelines::create(
        &db,
        &ctx,
        PipelineInput {
            name: "Sales".to_owned(),
            position: 0,
            stages: [
                ("New", 10, StageKind::Open),
                ("Proposal", 50, StageKind::Open),
                ("Won", 100, StageKind::Won),
            ]
            .into_iter()
            .map(|(name, probability, kind)| StageInput {
                id: None,
                name: name.to_owned(),
                probability,
                kind,
            })
            .collect(),
        },
    )
    .await?;
    let started = Instant::now();
    let mut done = 0;
    while done < args.deals {
        let n = records::MAX_BULK.min(args.deals - done);
        let items: Vec<Value> = (0..n)
            .map(|i| {
                let stage = &pipeline.stages[(done + i) % 2];
                json!({
                    "name": format!("Deal {}", done + i),
                    "amount": format!("{}.{:02}", rng.random_range(100..100_000), rng.random_range(0..100)),
                    "currency": "USD",
                    "pipeline_id": pipeline.id,
                    "stage_id": stage.id,
                })
            })
            .collect();
        records::bulk_create::<Deals>(&db, &ctx, items).await?;
        done += n;
    }
    let deal_rate = args.deals as f64 / started.elapsed().as_secs_f64().max(1e-9);
    println!("  seeded {} deals ({deal_rate:.0}/s)", args.deals);
    // Fresh statistics, as the job runner keeps them in a running kernel
    // (hourly on SQLite; autovacuum on PostgreSQL).
    if backend == DbBackend::Postgres {
        db.execute_unprepared("ANALYZE").await?;
    } else {
        trellis::db::optimize(&db).await?;
    }

    // The HTTP server, on loopback.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let router = state.router();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    let http = Http {
        client: Client::builder(TokioExecutor::new()).build_http(),
        base: format!("http://{addr}"),
        auth: format!("Bearer {token}"),
        cookie: None,
    };

    let mut rows = Vec::new();
    let samples = args.samples;

    // get-by-id
    let ids = sample_ids.clone();
    let api = measure(samples, |i| {
        let (http, id) = (http.clone(), ids[i % ids.len()]);
        async move {
            http.get(&format!("/api/v1/contacts/{id}"))
                .await
                .map(|_| ())
        }
    })
    .await?;
    let raw_sql = sql(
        backend,
        "SELECT * FROM contacts WHERE tenant_id = {1} AND id = {2}",
    );
    let raw = measure(samples, |i| {
        let (db, sql, id) = (db.clone(), raw_sql.clone(), ids[i % ids.len()]);
        async move { query(&db, &sql, vec![tenant.id.into(), id.into()]).await }
    })
    .await?;
    rows.push(("get contact by id", api, raw));

    // A page of 50 filtered on a custom field, newest first.
    let tier = Dialect(backend).custom_value("tier", JsonKind::Text);
    let list_sql = sql(
        backend,
        &format!(
            "SELECT * FROM contacts WHERE tenant_id = {{1}} AND {tier} = {{2}} ORDER BY id DESC LIMIT 51"
        ),
    );
    let api = measure(samples, |i| {
        let http = http.clone();
        async move {
            http.get(&format!(
                "/api/v1/contacts?filter=custom.tier:eq:{}&sort=-id&limit=50",
                TIERS[i % 3]
            ))
            .await
            .map(|_| ())
        }
    })
    .await?;
    let raw = measure(samples, |i| {
        let (db, sql) = (db.clone(), list_sql.clone());
        async move { query(&db, &sql, vec![tenant.id.into(), TIERS[i % 3].into()]).await }
    })
    .await?;
    rows.push(("list 50, custom filter, sort", api, raw));

    // The 1,000th page of 50 (by the default sort), reached by walking cursors once.
    let mut cursor: Option<String> = None;
    let pages = 999.min((args.contacts / 50).saturating_sub(1));
    let walk = Instant::now();
    for _ in 0..pages {
        let path = match &cursor {
            Some(c) => format!("/api/v1/contacts?limit=50&cursor={c}"),
            None => "/api/v1/contacts?limit=50".to_owned(),
        };
        let page = http.get(&path).await?;
        cursor = page["next_cursor"].as_str().map(str::to_owned);
    }
    println!(
        "  walked {pages} pages of 50 in {:.2}s",
        walk.elapsed().as_secs_f64()
    );
    let Some(cursor) = cursor else {
        bail!("the list ended before page 1,000")
    };
    let last = http
        .get(&format!("/api/v1/contacts?limit=50&cursor={cursor}"))
        .await?;
    let first_row = &last["data"][0];
    let created: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(first_row["created_at"].clone())?;
    let first_id: Uuid = serde_json::from_value(first_row["id"].clone())?;
    let api = measure(samples, |_| {
        let (http, cursor) = (http.clone(), cursor.clone());
        async move {
            http.get(&format!("/api/v1/contacts?limit=50&cursor={cursor}"))
                .await
                .map(|_| ())
        }
    })
    .await?;
    let page_sql = sql(
        backend,
        "SELECT * FROM contacts WHERE tenant_id = {1} AND (created_at, id) <= ({2}, {3}) ORDER BY created_at DESC, id DESC LIMIT 51",
    );
    let raw = measure(samples, |_| {
        let (db, sql) = (db.clone(), page_sql.clone());
        async move {
            query(
                &db,
                &sql,
                vec![tenant.id.into(), created.into(), first_id.into()],
            )
            .await
        }
    })
    .await?;
    rows.push(("page 1,000 by cursor", api, raw));

    // Search by a name fragment.
    let fragments: Vec<String> = (0..64)
        .map(|_| last_name(&mut rng)[..5].to_lowercase())
        .collect();
    let api = measure(samples, |i| {
        let (http, f) = (http.clone(), fragments[i % fragments.len()].clone());
        async move {
            http.get(&format!("/api/v1/search?q={f}&types=contact"))
                .await
                .map(|_| ())
        }
    })
    .await?;
    let raw = measure(samples, |i| {
        let (db, f) = (db.clone(), fragments[i % fragments.len()].clone());
        async move {
            trellis::db::search::query(&db, tenant.id, &f, &["contact"], 20).await?;
            Ok(())
        }
    })
    .await?;
    rows.push(("search name fragment", api, raw));

    // Single create.
    let creates = samples.min(1000);
    let api = measure(creates, |i| {
        let http = http.clone();
        async move {
            http.post(
                "/api/v1/contacts",
                contact_json(&mut StdRng::seed_from_u64(i as u64), i),
            )
            .await
            .map(|_| ())
        }
    })
    .await?;
    let insert_sql = sql(
        backend,
        "INSERT INTO contacts (id, tenant_id, first_name, last_name, email, emails, phones, lifecycle_stage, tags, \
         do_not_email, do_not_call, custom, created_at, updated_at, version) \
         VALUES ({1}, {2}, {3}, {4}, {5}, {6}, {7}, 'lead', {8}, false, false, {9}, {10}, {10}, 1)",
    );
    let raw = measure(creates, |i| {
        let (db, sql) = (db.clone(), insert_sql.clone());
        async move {
            let now = trellis::clock::now();
            let email = format!("raw{i}@bench.example");
            let values: Vec<DbValue> = vec![
                Uuid::now_v7().into(),
                tenant.id.into(),
                "Raw".into(),
                format!("Row{i}").into(),
                email.clone().into(),
                json!([{"address": email, "primary": true}]).into(),
                json!([]).into(),
                json!([]).into(),
                json!({"tier": "gold", "score": 1}).into(),
                now.into(),
            ];
            db.execute_raw(Statement::from_sql_and_values(backend, sql, values))
                .await?;
            Ok(())
        }
    })
    .await?;
    rows.push(("create one contact", api, raw));

    // Bulk create of 1,000, through the API, sequentially.
    let batches = 10;
    let mut bulk_times = Vec::new();
    for b in 0..batches {
        let items: Vec<Value> = (0..1000)
            .map(|i| contact_json(&mut rng, 10_000_000 + b * 1000 + i))
            .collect();
        let body = json!({"operation": "create", "items": items});
        let t = Instant::now();
        http.post("/api/v1/contacts/bulk", body).await?;
        bulk_times.push(t.elapsed());
    }
    let bulk_total: Duration = bulk_times.iter().sum();
    let bulk_rate = (batches * 1000) as f64 / bulk_total.as_secs_f64();

    // Throughput of get-by-id with several clients.
    let conc = args.concurrency.max(1);
    let ids = std::sync::Arc::new(ids);
    let (http2, ids2) = (http.clone(), ids.clone());
    let api_tp = throughput(conc, samples, move |i| {
        let (http, id) = (http2.clone(), ids2[i % ids2.len()]);
        async move {
            http.get(&format!("/api/v1/contacts/{id}"))
                .await
                .map(|_| ())
        }
    })
    .await?;
    let get_sql = sql(
        backend,
        "SELECT * FROM contacts WHERE tenant_id = {1} AND id = {2}",
    );
    let (db2, tenant_id) = (db.clone(), tenant.id);
    let raw_tp = throughput(conc, samples, move |i| {
        let (db, sql, id) = (db2.clone(), get_sql.clone(), ids[i % ids.len()]);
        async move { query(&db, &sql, vec![tenant_id.into(), id.into()]).await }
    })
    .await?;

    // The web UI's pages, signed in with a browser session (server time
    // seen from a client on loopback: rendering included).
    let password = "bench passphrase of some length";
    trellis::auth::login::set_password(&state, tenant.id, &admin.email, password).await?;
    let session = http.session(&admin.email, password).await?;
    let page = Http {
        auth: String::new(),
        cookie: Some(session),
        ..http.clone()
    };
    let mut pages = Vec::new();
    let id0 = sample_ids[0];
    for (name, path) in [
        ("contacts list, first page", "/contacts".to_owned()),
        (
            "contacts list, custom filter",
            "/contacts?filter=custom.tier:eq:gold".to_owned(),
        ),
        (
            "contacts list, page 1,000",
            format!("/contacts?cursor={}", urlencode(&cursor)),
        ),
        (
            "contacts list, search",
            format!("/contacts?q={}", fragments[0]),
        ),
        ("contact detail", format!("/contacts/{id0}")),
        ("dashboard", "/".to_owned()),
        ("pipeline board", format!("/board?pipeline={}", pipeline.id)),
    ] {
        let figures = measure(samples.min(500), |_| {
            let (page, path) = (page.clone(), path.clone());
            async move { page.html(&path).await.map(|_| ()) }
        })
        .await?;
        pages.push((name, figures));
    }

    println!();
    println!("seeding through the services: {seed_rate:.0} contacts/s, {deal_rate:.0} deals/s");
    println!();
    println!(
        "{:<30} {:>10} {:>10} {:>10} | {:>10} {:>10} {:>10} | {:>9}",
        "operation (sequential)",
        "API p50",
        "API p99",
        "API req/s",
        "raw p50",
        "raw p99",
        "raw q/s",
        "API/raw"
    );
    for (name, api, raw) in &rows {
        println!(
            "{:<30} {:>10} {:>10} {:>10.0} | {:>10} {:>10} {:>10.0} | {:>9.2}",
            name,
            fmt(api.p50),
            fmt(api.p99),
            api.per_sec,
            fmt(raw.p50),
            fmt(raw.p99),
            raw.per_sec,
            api.per_sec / raw.per_sec
        );
    }
    println!();
    println!(
        "bulk create of 1,000 through the API: {bulk_rate:.0} contacts/s (mean {} per request)",
        fmt(bulk_total / batches as u32)
    );
    println!(
        "get by id with {conc} clients: API {api_tp:.0} req/s, raw {raw_tp:.0} q/s, ratio {:.2}",
        api_tp / raw_tp
    );
    println!();
    println!(
        "{:<30} {:>10} {:>10} {:>10}",
        "web UI page (sequential)", "p50", "p99", "pages/s"
    );
    for (name, f) in &pages {
        println!(
            "{:<30} {:>10} {:>10} {:>10.0}",
            name,
            fmt(f.p50),
            fmt(f.p99),
            f.per_sec
        );
    }
    Ok(())
}

fn contact_json(rng: &mut StdRng, i: usize) -> Value {
    let first = FIRST[i % FIRST.len()];
    let last = last_name(rng);
    let stage = ["lead", "customer", "opportunity"][i % 3];
    json!({
        "first_name": first,
        "last_name": last,
        "emails": [{"address": format!("{}.{}{i}@example.com", first.to_lowercase(), last.to_lowercase())}],
        "phones": [{"number": format!("+1 555 {:03} {:04}", rng.random_range(100..999), rng.random_range(0..9999))}],
        "lifecycle_stage": stage,
        "custom": {"tier": TIERS[i % 3], "score": rng.random_range(0..1000)},
    })
}

fn backend_name(b: DbBackend) -> &'static str {
    match b {
        DbBackend::Postgres => "PostgreSQL",
        _ => "SQLite",
    }
}

/// SQL with `{n}` placeholders turned into the backend's.
fn sql(backend: DbBackend, template: &str) -> String {
    let mut out = template.to_owned();
    for n in (1..=10).rev() {
        out = out.replace(
            &format!("{{{n}}}"),
            &trellis::db::dialect::param(backend, n),
        );
    }
    out
}

async fn query(db: &DatabaseConnection, sql: &str, values: Vec<DbValue>) -> Result<()> {
    let backend = db.get_database_backend();
    db.query_all_raw(Statement::from_sql_and_values(backend, sql, values))
        .await?;
    Ok(())
}

#[derive(Clone)]
struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
    auth: String,
    /// A browser session's cookie, for the UI's pages.
    cookie: Option<String>,
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

impl Http {
    /// Signs in with a password; returns the session cookie (`name=value`).
    async fn session(&self, email: &str, password: &str) -> Result<String> {
        let req = hyper::Request::builder()
            .method(hyper::Method::POST)
            .uri(format!("{}/api/v1/auth/login", self.base))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(
                json!({"email": email, "password": password}).to_string(),
            )))?;
        let res = self.client.request(req).await?;
        let cookie = res
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(str::to_owned);
        match cookie {
            Some(c) if res.status().is_success() => Ok(c),
            _ => bail!("signing in failed: {}", res.status()),
        }
    }

    /// A page of the UI as HTML.
    async fn html(&self, path: &str) -> Result<Bytes> {
        let req = hyper::Request::builder()
            .uri(format!("{}{path}", self.base))
            .header("cookie", self.cookie.as_deref().unwrap_or(""))
            .body(Full::new(Bytes::new()))?;
        let res = self.client.request(req).await?;
        let status = res.status();
        let bytes = res.into_body().collect().await?.to_bytes();
        if !status.is_success() {
            bail!("{path}: {status}: {}", String::from_utf8_lossy(&bytes));
        }
        Ok(bytes)
    }

    async fn send(&self, method: hyper::Method, path: &str, body: Option<Value>) -> Result<Value> {
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("authorization", &self.auth);
        let payload = match body {
            Some(b) => {
                req = req.header("content-type", "application/json");
                Bytes::from(b.to_string())
            }
            None => Bytes::new(),
        };
        let res = self.client.request(req.body(Full::new(payload))?).await?;
        let status = res.status();
        let bytes = res.into_body().collect().await?.to_bytes();
        if !status.is_success() {
            bail!("{path}: {status}: {}", String::from_utf8_lossy(&bytes));
        }
        Ok(serde_json::from_slice(&bytes)?)
    }

    async fn get(&self, path: &str) -> Result<Value> {
        self.send(hyper::Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> Result<Value> {
        self.send(hyper::Method::POST, path, Some(body)).await
    }
}

/// Requests per second with `clients` concurrent callers sharing `n` calls.
async fn throughput<F, Fut>(clients: usize, n: usize, f: F) -> Result<f64>
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<()>> + Send,
{
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let f = f.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = c;
            while i < n {
                f(i).await?;
                i += clients;
            }
            Ok::<(), anyhow::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}
