//! `trellis import`: a file into a tenant from the server's shell, through
//! the same upload, mapping, job and checks as `POST /api/v1/imports`, with
//! a progress bar.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use futures_util::StreamExt;

use crate::AppState;
use crate::crm::tenants;
use crate::imports::mapping::ColumnMapping;
use crate::imports::sources::Format;
use crate::imports::{self, ImportView, Mode, StartRequest};

/// What to import and how.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// `contacts` or `accounts`.
    pub object: String,
    /// The file: CSV (any delimiter; UTF-8, UTF-16 or Windows-1252), XLSX,
    /// JSON lines or vCard.
    pub file: PathBuf,
    /// Tenant slug.
    #[arg(long, default_value = tenants::DEFAULT_SLUG)]
    pub tenant: String,
    /// csv, xlsx, jsonl or vcard (default: from the file's extension).
    #[arg(long)]
    pub format: Option<String>,
    /// `Column=field`: where a column goes (repeatable). Columns not named
    /// keep the template's or the suggested field; `Column=` leaves one out.
    #[arg(long = "map", value_name = "COLUMN=FIELD")]
    pub map: Vec<String>,
    /// The whole mapping as a JSON file (the API's `mapping` array, with
    /// transforms); `--map` then adjusts it.
    #[arg(long, value_name = "FILE")]
    pub mapping_file: Option<PathBuf>,
    /// A saved import template supplying the mapping and options.
    #[arg(long)]
    pub template: Option<String>,
    /// Save the mapping and options used as a template of this name.
    #[arg(long, value_name = "NAME")]
    pub save_template: Option<String>,
    /// create (new records only), update (existing only) or upsert.
    #[arg(long, value_parser = parse_mode)]
    pub mode: Option<Mode>,
    /// The field that finds existing records: emails, domain, name, id or
    /// custom.<key>.
    #[arg(long, value_name = "FIELD")]
    pub match_on: Option<String>,
    /// Create accounts named in account columns that do not exist yet.
    #[arg(long)]
    pub create_missing_accounts: bool,
    /// The role put on new contact–account links.
    #[arg(long)]
    pub account_role: Option<String>,
    /// Check every row and report errors; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Write the rejected rows, each with its errors, to this file (fix it
    /// and import it again).
    #[arg(long, value_name = "FILE")]
    pub errors: Option<PathBuf>,
}

fn parse_mode(s: &str) -> Result<Mode, String> {
    serde_json::from_value(serde_json::Value::String(s.to_owned()))
        .map_err(|_| format!("`{s}` is not a mode: use create, update or upsert"))
}

/// Uploads, maps, runs and reports; fails when the import fails (not when
/// some rows are rejected: those are listed, and written with `--errors`).
pub async fn run(state: &AppState, args: ImportArgs) -> anyhow::Result<()> {
    let object = imports::object_named(&args.object)?;
    let format = match &args.format {
        Some(f) => Format::parse(f)
            .with_context(|| format!("unknown format `{f}`: use csv, xlsx, jsonl or vcard"))?,
        None => Format::parse(&args.file.to_string_lossy()).with_context(|| {
            format!(
                "cannot tell the format of {} from its extension: pass --format",
                args.file.display()
            )
        })?,
    };
    let t = super::tenant_by_slug(state, &args.tenant).await?;
    let ctx = super::system_ctx(state, t.id);
    let file = tokio::fs::File::open(&args.file)
        .await
        .with_context(|| format!("cannot open {}", args.file.display()))?;
    let body = imports::file_body(file);
    let filename = args
        .file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let up = imports::upload(&state.db, &ctx, object, format, &filename, body).await?;
    eprintln!(
        "read {} rows of {} columns{}{}",
        up.total_rows.unwrap_or(0),
        up.headers.len(),
        up.encoding
            .as_deref()
            .map(|e| format!(", {e}"))
            .unwrap_or_default(),
        up.delimiter
            .as_deref()
            .map(|d| format!(", delimiter {d:?}"))
            .unwrap_or_default(),
    );
    let mapping = mapping(&args, &up)?;
    let started = imports::start(
        &state.db,
        &ctx,
        up.id,
        StartRequest {
            mapping,
            template: args.template.clone(),
            mode: args.mode,
            match_on: args.match_on.clone(),
            create_missing_accounts: args.create_missing_accounts.then_some(true),
            account_role: args.account_role.clone(),
            dry_run: args.dry_run,
            save_template: args.save_template.clone(),
        },
    )
    .await?;
    if let Some(options) = &started.options {
        for m in &options.mapping {
            eprintln!("  {} -> {}", m.column, m.field);
        }
    }
    let done = watch(state, &ctx, started.id).await?;
    println!(
        "import {}: {}{}: {} created, {} updated, {} rejected of {} rows",
        done.id,
        done.status,
        if done.dry_run { " (dry run)" } else { "" },
        done.created,
        done.updated,
        done.rejected,
        done.processed_rows,
    );
    if done.likely_duplicates > 0 {
        println!(
            "{} pairs of likely duplicates {}",
            done.likely_duplicates,
            if done.dry_run {
                "found (a real run queues them for review)"
            } else {
                "queued for review (the Duplicates page, or GET /api/v1/duplicates)"
            }
        );
    }
    if done.rejected > 0 {
        let first = imports::rejects::list(&state.db, &ctx, done.id, 0, 20).await?;
        for r in &first {
            let why: Vec<String> = r
                .errors
                .iter()
                .map(|e| match &e.column {
                    Some(c) => format!("{c}: {}", e.message),
                    None => e.message.clone(),
                })
                .collect();
            println!("  row {}: {}", r.row, why.join("; "));
        }
        if done.rejected > first.len() as i64 {
            println!("  ...");
        }
    }
    if let Some(path) = &args.errors {
        write_errors(state, &ctx, done.id, path).await?;
        eprintln!("rejected rows written to {}", path.display());
    }
    match done.status.as_str() {
        "done" => Ok(()),
        _ => anyhow::bail!(
            "the import {}: {}",
            done.status,
            done.error.unwrap_or_default()
        ),
    }
}

/// The mapping to start with: the file's (`--mapping-file`) or none (the
/// template's or the suggestion), adjusted by `--map`.
fn mapping(args: &ImportArgs, up: &ImportView) -> anyhow::Result<Option<Vec<ColumnMapping>>> {
    let mut mapping = match &args.mapping_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            Some(
                serde_json::from_str::<Vec<ColumnMapping>>(&text)
                    .with_context(|| format!("{} is not a mapping", path.display()))?,
            )
        }
        None => None,
    };
    if args.map.is_empty() {
        return Ok(mapping);
    }
    if mapping.is_none() && args.template.is_some() {
        anyhow::bail!("--map adjusts the suggested mapping or --mapping-file, not a template's");
    }
    let mut out = mapping
        .take()
        .or_else(|| up.suggested_mapping.clone())
        .unwrap_or_default();
    for pair in &args.map {
        let (column, field) = pair
            .rsplit_once('=')
            .with_context(|| format!("--map `{pair}`: write COLUMN=FIELD"))?;
        out.retain(|m| m.column != column);
        if !field.is_empty() {
            out.push(ColumnMapping {
                column: column.to_owned(),
                field: field.to_owned(),
                transform: None,
            });
        }
    }
    Ok(Some(out))
}

/// Runs the import's job here (unless a server took it first) and shows
/// its progress until it ends.
async fn watch(
    state: &AppState,
    ctx: &crate::context::RequestContext,
    id: uuid::Uuid,
) -> anyhow::Result<ImportView> {
    let job_id = imports::load(&state.db, ctx, id)
        .await?
        .job_id
        .context("the import was not queued")?;
    let mut runner = Some({
        let state = state.clone();
        tokio::spawn(async move { crate::jobs::run_now(&state, job_id).await })
    });
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} rows ({per_sec}, {eta} left)",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    loop {
        let v = imports::get(&state.db, ctx, id).await?;
        bar.set_length(v.total_rows.unwrap_or(0).max(0) as u64);
        bar.set_position(v.processed_rows.max(0) as u64);
        let ended = matches!(v.status.as_str(), "done" | "failed" | "cancelled");
        if let Some(r) = runner.take_if(|r| ended || r.is_finished()) {
            // Ok(false): a running server took the job first; keep watching.
            r.await??;
        }
        if ended {
            bar.finish_and_clear();
            return Ok(v);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn write_errors(
    state: &AppState,
    ctx: &crate::context::RequestContext,
    id: uuid::Uuid,
    path: &std::path::Path,
) -> anyhow::Result<()> {
    use tokio::io::AsyncWriteExt;
    let (_, _, stream) = imports::rejects::file(state.db.clone(), ctx.clone(), id).await?;
    let mut stream = std::pin::pin!(stream);
    let mut out = tokio::fs::File::create(path)
        .await
        .with_context(|| format!("cannot write {}", path.display()))?;
    while let Some(piece) = stream.next().await {
        out.write_all(&piece?).await?;
    }
    out.flush().await?;
    Ok(())
}
