//! `trellis-bench-import`: importing a million contacts from CSV, beside
//! PostgreSQL's own `COPY` of the same file.
//!
//! ```sh
//! cargo run --release --bin trellis-bench-import                 # SQLite
//! cargo run --release --bin trellis-bench-import -- \
//!     --postgres postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable
//! ```
//!
//! Writes a CSV of `--rows` contacts (names, email, phone, title, lead
//! source), then, on PostgreSQL, times `COPY ... FROM STDIN (FORMAT csv)` of
//! that file into a table of the same columns with a primary key and a
//! unique email index (what a bare load needs for the same duplicate
//! check), and times the import of the same file through Trellis: upload
//! (stored in the database and read once for the sample and row count),
//! then the job: mapping, validation, duplicate check on the email,
//! search index, audit chain and plugin hooks (none enabled), in batches of
//! one transaction each. Every figure is printed; nothing is asserted. See
//! `docs/benchmarks.md`.

use std::io::Write;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Parser;
use sea_orm::ConnectionTrait;

use trellis::context::RequestContext;
use trellis::crm::tenants;
use trellis::imports::{self, StartRequest, sources::Format};
use trellis::permissions::ObjectType;
use trellis::{AppState, Config};

#[path = "common/scratch.rs"]
mod scratch;

#[derive(Debug, Parser)]
#[command(name = "trellis-bench-import")]
struct Args {
    /// Contacts in the file.
    #[arg(long, default_value_t = 1_000_000)]
    rows: usize,
    /// Benchmark PostgreSQL (and compare with COPY): an admin URL used to
    /// create and drop a scratch database.
    #[arg(long, value_name = "URL")]
    postgres: Option<String>,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    // RUST_LOG=sea_orm=debug prints every statement (to count them per row).
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let scratch = scratch::Scratch::new(args.postgres.as_deref(), "trellis_importbench").await?;
    let result = run(&args, &scratch.url).await;
    scratch.remove().await;
    result
}

const STAGES: [&str; 4] = ["Lead", "Customer", "Subscriber", "Opportunity"];

/// The file: one contact a line, every email distinct.
fn write_csv(path: &std::path::Path, rows: usize) -> Result<u64> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(
        out,
        "First Name,Last Name,Email,Phone,Job Title,Lifecycle Stage,Lead Source"
    )?;
    for i in 0..rows {
        writeln!(
            out,
            "Person{i},\"Family {}, Jr.\",person{i}@example.com,+1 415 555 {:04},Account manager,{},Trade fair",
            i % 9973,
            i % 10_000,
            STAGES[i % STAGES.len()],
        )?;
    }
    out.flush()?;
    Ok(std::fs::metadata(path)?.len())
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
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("contacts.csv");
    let bytes = write_csv(&path, args.rows)?;
    println!(
        "trellis-bench-import on {}: {} contacts, {:.1} MB of CSV",
        if pg { "PostgreSQL" } else { "SQLite" },
        args.rows,
        bytes as f64 / 1e6
    );

    let copy_secs = if pg {
        Some(copy(&state, &path).await?)
    } else {
        None
    };

    let mut ctx = RequestContext::system(tenant.id);
    ctx.plugins = state.plugins.clone();
    ctx.keyring = Some(state.keyring.clone());
    let started = Instant::now();
    let file = tokio::fs::File::open(&path).await?;
    let body = imports::file_body(file);
    let up = imports::upload(
        &state.db,
        &ctx,
        ObjectType::Contact,
        Format::Csv,
        "contacts.csv",
        body,
    )
    .await?;
    let upload_secs = started.elapsed().as_secs_f64();
    let run_started = Instant::now();
    imports::start(&state.db, &ctx, up.id, StartRequest::default()).await?;
    let job = imports::load(&state.db, &ctx, up.id)
        .await?
        .job_id
        .context("the import was not queued")?;
    if !trellis::jobs::run_now(&state, job).await? {
        bail!("the import job could not be claimed");
    }
    let run_secs = run_started.elapsed().as_secs_f64();
    let done = imports::get(&state.db, &ctx, up.id).await?;
    if done.status != "done" || done.created != args.rows as i64 {
        bail!(
            "the import ended {} with {} created, {} rejected: {:?}",
            done.status,
            done.created,
            done.rejected,
            done.error
        );
    }
    let total = upload_secs + run_secs;
    let rate = |secs: f64| args.rows as f64 / secs;
    println!(
        "  trellis upload (store + read once): {upload_secs:.1}s\n  \
         trellis import job:                {run_secs:.1}s ({:.0} rows/s)\n  \
         trellis total:                     {total:.1}s ({:.0} rows/s)",
        rate(run_secs),
        rate(total),
    );
    if let Some(copy_secs) = copy_secs {
        println!(
            "  COPY of the same file:             {copy_secs:.1}s ({:.0} rows/s)\n  \
             trellis / COPY:                    {:.0}% of COPY's speed",
            rate(copy_secs),
            100.0 * copy_secs / total,
        );
    }
    let audited = state
        .db
        .query_one_raw(sea_orm::Statement::from_string(
            state.db.get_database_backend(),
            "SELECT COUNT(*) AS n FROM audit_log",
        ))
        .await?
        .and_then(|r| r.try_get::<i64>("", "n").ok())
        .unwrap_or(0);
    println!("  audit entries written: {audited}");
    Ok(())
}

/// PostgreSQL's own load of the file into a table of the same columns,
/// keyed and with the same duplicate check (a unique index on the email).
async fn copy(state: &AppState, path: &std::path::Path) -> Result<f64> {
    use sea_orm::sqlx::postgres::PgPoolCopyExt;
    state
        .db
        .execute_unprepared(
            "CREATE TABLE copy_contacts (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), \
             first_name text, last_name text, email text, phone text, job_title text, \
             lifecycle_stage text, lead_source text); \
             CREATE UNIQUE INDEX copy_contacts_email ON copy_contacts (lower(email))",
        )
        .await?;
    let pool = state.db.get_postgres_connection_pool();
    let started = Instant::now();
    let mut copy = pool
        .copy_in_raw(
            "COPY copy_contacts (first_name, last_name, email, phone, job_title, \
             lifecycle_stage, lead_source) FROM STDIN WITH (FORMAT csv, HEADER true)",
        )
        .await?;
    let file = tokio::fs::File::open(path).await?;
    copy.read_from(file).await?;
    let rows = copy.finish().await?;
    let secs = started.elapsed().as_secs_f64();
    println!("  COPY loaded {rows} rows");
    Ok(secs)
}
