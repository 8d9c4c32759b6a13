//! `trellis-bench-bulk`: bulk actions, the trash, merges and a tenant
//! backup and restore, timed on one tenant of `--rows` contacts.
//!
//! ```sh
//! cargo run --release --bin trellis-bench-bulk                 # SQLite
//! cargo run --release --bin trellis-bench-bulk -- \
//!     --postgres postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable
//! ```
//!
//! Creates the contacts (1,000 a request, as `POST /api/v1/contacts/bulk`
//! does), then times, each through the service the API calls and the job
//! runner: a bulk `add_tags` on every contact, a bulk delete of every
//! contact into the trash and its restore, `--merges` merges of two
//! contacts each with a deal and an activity to move, the undo of each,
//! and a backup of the tenant with its restore into a new tenant. Every
//! figure is printed; nothing is asserted. See `docs/benchmarks.md`.

use std::time::Instant;

use anyhow::{Result, bail};
use clap::Parser;
use serde_json::json;

use trellis::context::RequestContext;
use trellis::crm::bulk::{self, BulkActionRequest, Kind};
use trellis::crm::contacts::Contacts;
use trellis::crm::merge::{self, MergeRequest, Rule};
use trellis::crm::{records, tenants};
use trellis::{AppState, Config};

#[path = "common/scratch.rs"]
mod scratch;

#[derive(Debug, Parser)]
#[command(name = "trellis-bench-bulk")]
struct Args {
    /// Contacts in the tenant.
    #[arg(long, default_value_t = 20_000)]
    rows: usize,
    /// Merges to time (each of two new contacts).
    #[arg(long, default_value_t = 200)]
    merges: usize,
    /// Benchmark PostgreSQL: an admin URL used to create and drop a
    /// scratch database.
    #[arg(long, value_name = "URL")]
    postgres: Option<String>,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let scratch = scratch::Scratch::new(args.postgres.as_deref(), "trellis_bulkbench").await?;
    let result = run(&args, &scratch.url).await;
    scratch.remove().await;
    result
}

async fn action(state: &AppState, ctx: &RequestContext, req: BulkActionRequest) -> Result<f64> {
    let started = Instant::now();
    let queued = bulk::start::<Contacts>(&state.db, ctx, req).await?;
    trellis::jobs::drain(state).await?;
    let done = bulk::get(&state.db, ctx, queued.id).await?;
    if done.status != "done" || done.failed > 0 {
        bail!("the bulk action ended {}: {:?}", done.status, done.errors);
    }
    Ok(started.elapsed().as_secs_f64())
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
        "trellis-bench-bulk on {}: {} contacts",
        if pg { "PostgreSQL" } else { "SQLite" },
        args.rows
    );
    let started = Instant::now();
    for chunk in (0..args.rows).collect::<Vec<_>>().chunks(1000) {
        let items = chunk
            .iter()
            .map(|i| json!({"first_name": format!("Person{i}"), "last_name": "Bench", "emails": [{"address": format!("p{i}@example.com")}]}))
            .collect();
        records::bulk_create::<Contacts>(&state.db, &ctx, items).await?;
    }
    let secs = started.elapsed().as_secs_f64();
    let rate = |secs: f64| args.rows as f64 / secs;
    println!(
        "  create (bulk, 1,000 a request): {secs:.1}s ({:.0} rows/s)",
        rate(secs)
    );

    let secs = action(
        &state,
        &ctx,
        BulkActionRequest {
            filter: Vec::new(),
            action: Kind::AddTags,
            patch: None,
            owner_id: None,
            tags: vec!["bench".to_owned()],
        },
    )
    .await?;
    println!(
        "  bulk add_tags, every contact:   {secs:.1}s ({:.0} rows/s)",
        rate(secs)
    );

    let del_started = Instant::now();
    let queued = bulk::start::<Contacts>(
        &state.db,
        &ctx,
        BulkActionRequest {
            filter: Vec::new(),
            action: Kind::Delete,
            patch: None,
            owner_id: None,
            tags: Vec::new(),
        },
    )
    .await?;
    trellis::jobs::drain(&state).await?;
    let secs = del_started.elapsed().as_secs_f64();
    println!(
        "  bulk delete into the trash:     {secs:.1}s ({:.0} rows/s)",
        rate(secs)
    );
    let restore_started = Instant::now();
    let restoring = bulk::restore(&state.db, &ctx, queued.id).await?;
    trellis::jobs::drain(&state).await?;
    let restored = bulk::get(&state.db, &ctx, restoring.id).await?;
    if restored.succeeded != args.rows as i64 {
        bail!("restored {} of {}", restored.succeeded, args.rows);
    }
    let secs = restore_started.elapsed().as_secs_f64();
    println!(
        "  restore from the trash:         {secs:.1}s ({:.0} rows/s)",
        rate(secs)
    );

    let mut merge_secs = 0.0;
    let mut undo_secs = 0.0;
    for i in 0..args.merges {
        let a = records::create::<Contacts>(
            &state.db,
            &ctx,
            serde_json::from_value(json!({"first_name": format!("Dup{i}"), "last_name": "Merge"}))?,
        )
        .await?;
        let b = records::create::<Contacts>(
            &state.db,
            &ctx,
            serde_json::from_value(json!({"first_name": format!("Dup{i}"), "last_name": "Merge", "job_title": "Buyer"}))?,
        )
        .await?;
        let started = Instant::now();
        let done = merge::merge::<Contacts>(
            &state.db,
            &ctx,
            MergeRequest {
                survivor_id: a.id,
                merged_ids: vec![b.id],
                rule: Rule::Survivor,
                fields: Default::default(),
                version: None,
            },
        )
        .await?;
        merge_secs += started.elapsed().as_secs_f64();
        let started = Instant::now();
        merge::undo(&state.db, &ctx, done.merge.id).await?;
        undo_secs += started.elapsed().as_secs_f64();
    }
    if args.merges > 0 {
        println!(
            "  merge of two contacts:          {:.1} ms each; undo {:.1} ms each ({} of each)",
            1000.0 * merge_secs / args.merges as f64,
            1000.0 * undo_secs / args.merges as f64,
            args.merges
        );
    }

    let dir = tempfile::tempdir()?;
    let path = dir.path().join("tenant.jsonl");
    let started = Instant::now();
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path)?);
    let counts = trellis::backup::export(&state.db, &ctx, &mut out).await?;
    drop(out);
    let rows: u64 = counts.values().sum();
    let secs = started.elapsed().as_secs_f64();
    let size = std::fs::metadata(&path)?.len();
    println!(
        "  backup (export tenant):         {secs:.1}s ({:.0} rows/s, {:.1} MB)",
        rows as f64 / secs,
        size as f64 / 1e6
    );
    let started = Instant::now();
    let file = std::io::BufReader::new(std::fs::File::open(&path)?);
    trellis::backup::restore(&state.db, Some(state.keyring.clone()), file, "copy", None).await?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "  restore into a new tenant:      {secs:.1}s ({:.0} rows/s, search index rebuilt)",
        rows as f64 / secs
    );
    Ok(())
}
