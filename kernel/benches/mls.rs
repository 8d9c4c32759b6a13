//! The real-estate plugin's MLS replication and buyer matching, timed.
//!
//! ```sh
//! cargo bench -p trellis --bench mls                      # SQLite
//! cargo bench -p trellis --bench mls -- \
//!     --postgres postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable
//! ```
//!
//! A fake RESO Web API server (`tests/fake-reso`) serves `--listings`
//! generated listings, 200 a page. The real-estate edition is applied to a
//! tenant with `--buyers` buyers, the plugin is pointed at the server, and
//! one replication run (the plugin's job, in the sandbox, through the job
//! runner) imports every listing; a second run after `--changes` listings
//! changed times an incremental run. Then a listing's price is cut and the
//! time until every matching buyer's agent has a task is measured (the
//! after-write hook, through the job runner). Every figure is printed;
//! nothing is asserted. A bench target rather than a `src/bin` binary
//! because it needs the fake server, a development dependency. See
//! `docs/benchmarks.md`.

use std::time::Instant;

use anyhow::{Context, Result, bail};
use chrono::Duration;
use clap::Parser;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};

use trellis::context::RequestContext;
use trellis::crm::contacts::Contacts;
use trellis::crm::objects::{self, RecordInput};
use trellis::crm::{records, tenants};
use trellis::editions::{self, Edition};
use trellis::jobs::{self, Kind};
use trellis::plugins::registry::{self, EnableRequest};
use trellis::{AppState, Config};
use trellis_fake_reso::{CLIENT_ID, CLIENT_SECRET, FakeReso, base_time, generate};

#[path = "../src/bin/common/scratch.rs"]
mod scratch;

#[derive(Debug, Parser)]
#[command(name = "mls")]
struct Args {
    /// Listings the MLS serves.
    #[arg(long, default_value_t = 100_000)]
    listings: usize,
    /// Listings changed before the incremental run.
    #[arg(long, default_value_t = 1_000)]
    changes: usize,
    /// Buyers (contacts with search criteria).
    #[arg(long, default_value_t = 10_000)]
    buyers: usize,
    /// Benchmark PostgreSQL: an admin URL used to create and drop a
    /// scratch database.
    #[arg(long, value_name = "URL")]
    postgres: Option<String>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let scratch = scratch::Scratch::new(args.postgres.as_deref(), "trellis_mlsbench").await?;
    let result = run(&args, &scratch.url).await;
    scratch.remove().await;
    result
}

/// Queues a replication run and runs jobs until none is due (the buyer
/// matching the run hands on included); the seconds the run itself took
/// (from its own record), the seconds until no job was left, and the run's
/// counts.
async fn replicate(state: &AppState, tenant_id: uuid::Uuid) -> Result<(f64, f64, Value)> {
    let started = Instant::now();
    jobs::enqueue(
        &state.db,
        tenant_id,
        Kind::PluginJob,
        Some("real-estate"),
        "mls-sync",
        json!({}),
        trellis::clock::now(),
    )
    .await?;
    jobs::drain(state).await?;
    let secs = started.elapsed().as_secs_f64();
    let row = trellis::entities::plugin_kv::Entity::find()
        .filter(trellis::entities::plugin_kv::Column::TenantId.eq(tenant_id))
        .filter(trellis::entities::plugin_kv::Column::Key.eq("mls:state"))
        .one(&state.db)
        .await?
        .context("no replication state")?;
    let replication: Value = serde_json::from_slice(&row.value)?;
    if replication["last_run"]["outcome"] != "done" {
        bail!("the run did not finish: {replication}");
    }
    let run = &replication["last_run"];
    let run_secs = (run["finished_ms"].as_i64().unwrap_or(0)
        - run["started_ms"].as_i64().unwrap_or(0)) as f64
        / 1000.0;
    Ok((run_secs, secs, run["counts"].clone()))
}

async fn run(args: &Args, url: &str) -> Result<()> {
    let pg = url.starts_with("postgres");
    let state = AppState::open(Config {
        database_url: url.to_owned(),
        max_connections: 8,
        master_key: Some(trellis::crypto::MasterKey::generate().to_base64()),
        ..Config::default()
    })
    .await?;
    let (tenant, _) = tenants::ensure_default(&state.db).await?;
    let mut ctx = RequestContext::system(tenant.id);
    ctx.plugins = state.plugins.clone();
    ctx.keyring = Some(state.keyring.clone());
    println!(
        "mls bench on {}: {} listings, {} buyers",
        if pg { "PostgreSQL" } else { "SQLite" },
        args.listings,
        args.buyers
    );

    let mls = FakeReso::start(200).await?;
    mls.put(generate(0, args.listings, base_time(), 1));
    editions::apply(&state, &ctx, &Edition::built_in("real-estate")?).await?;
    let mut grants = registry::tenant_plugins(&state, &ctx)
        .await?
        .into_iter()
        .find(|p| p.plugin_id == "real-estate")
        .context("the edition did not enable its plugin")?
        .grants;
    grants.push(format!("http:{}", mls.host()));
    registry::enable(
        &state,
        &ctx,
        "real-estate",
        EnableRequest {
            version: None,
            grants,
            config: Some(
                json!({"mls": {"url": mls.url(), "token_url": mls.token_url(),
                "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "page_size": 200}}),
            ),
            limits: None,
        },
    )
    .await?;
    // The schedule's first tick, queued at enable: run it out of the way.
    jobs::drain(&state).await?;

    // Buyers: budgets from $150,000 to $1,150,000, a city (or none), beds.
    let cities = [
        "Austin", "Denver", "Portland", "Raleigh", "Madison", "Boise", "",
    ];
    let started = Instant::now();
    for chunk in (0..args.buyers).collect::<Vec<_>>().chunks(1000) {
        let items = chunk
            .iter()
            .map(|i| {
                let h = (*i as u64).wrapping_mul(2_654_435_761) % 1_000_003;
                let mut custom = json!({"buyer_max_price": (150_000 + (h % 1000) * 1000).to_string(),
                                        "buyer_min_beds": 1 + h % 4, "pre_approved": h.is_multiple_of(3)});
                let city = cities[i % cities.len()];
                if !city.is_empty() {
                    custom["buyer_cities"] = json!(city);
                }
                json!({"first_name": format!("Buyer{i}"), "last_name": "Bench", "custom": custom})
            })
            .collect();
        records::bulk_create::<Contacts>(&state.db, &ctx, items).await?;
    }
    println!(
        "  buyers created:                 {:.1}s",
        started.elapsed().as_secs_f64()
    );

    let (secs, _, counts) = replicate(&state, tenant.id).await?;
    println!(
        "  full import:                    {secs:.1}s ({:.0} listings/s; {counts})",
        args.listings as f64 / secs
    );

    let later = mls.newest().context("no listings")? + Duration::minutes(5);
    let step = (args.listings / args.changes.max(1)).max(1);
    for i in (0..args.listings).step_by(step).take(args.changes) {
        mls.modify(&format!("L{i:07}"), later, |l| {
            let p = l["ListPrice"].as_i64().unwrap_or(300_000);
            l["ListPrice"] = json!(p - 2_500);
        });
    }
    let tasks_before = trellis::entities::activity::Entity::find()
        .filter(trellis::entities::activity::Column::TenantId.eq(tenant.id))
        .count(&state.db)
        .await?;
    let (secs, all_secs, counts) = replicate(&state, tenant.id).await?;
    let tasked = trellis::entities::activity::Entity::find()
        .filter(trellis::entities::activity::Column::TenantId.eq(tenant.id))
        .count(&state.db)
        .await?
        - tasks_before;
    println!(
        "  incremental run ({} price cuts): {secs:.2}s ({:.0} listings/s; {counts}); \
         with the matching it hands on: {all_secs:.2}s ({tasked} tasks)",
        args.changes,
        args.changes as f64 / secs
    );

    // A price cut on an Active listing in Austin, then every buyer tasked.
    let page = objects::list(
        &state.db,
        &ctx,
        "listing",
        Some("filter=custom.City:eq:Austin&filter=custom.StandardStatus:eq:Active&limit=1"),
    )
    .await?;
    let listing = page
        .data
        .first()
        .context("no Active listing in Austin")?
        .clone();
    let id: uuid::Uuid = serde_json::from_value(listing["id"].clone())?;
    let tasks_before = trellis::entities::activity::Entity::find()
        .filter(trellis::entities::activity::Column::TenantId.eq(tenant.id))
        .count(&state.db)
        .await?;
    let started = Instant::now();
    objects::update(
        &state.db,
        &ctx,
        "listing",
        id,
        RecordInput {
            owner_id: None,
            custom: json!({"ListPrice": "400000"}),
        },
        listing["version"].as_i64().unwrap_or(1),
    )
    .await?;
    jobs::drain(&state).await?;
    let secs = started.elapsed().as_secs_f64();
    let tasked = trellis::entities::activity::Entity::find()
        .filter(trellis::entities::activity::Column::TenantId.eq(tenant.id))
        .count(&state.db)
        .await?
        - tasks_before;
    println!(
        "  price cut to matching tasks:    {:.0} ms ({tasked} buyers tasked out of {})",
        secs * 1000.0,
        args.buyers
    );
    Ok(())
}
