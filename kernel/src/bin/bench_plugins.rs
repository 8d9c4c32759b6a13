//! `trellis-bench-plugins`: what running plugins costs.
//!
//! ```sh
//! cargo run --release --bin trellis-bench-plugins                 # SQLite
//! cargo run --release --bin trellis-bench-plugins -- \
//!     --postgres postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable
//! ```
//!
//! Measures, in one run: loading a component cold (compiling it) and from
//! the disk cache; instantiating from the `InstancePre` in a fresh store,
//! with the pooling allocator and without; a trivial export call and a
//! validate hook doing real work (each including its instantiation, as
//! every invocation does); and contact creates through the API with 0, 1
//! and 4 validate hooks, one by one and in bulk requests of 200 (where each
//! plugin is invoked once per request with the batch hook). Every figure is printed; nothing is asserted. See
//! `docs/benchmarks.md`.

#[path = "common/figures.rs"]
mod figures;
#[path = "common/http.rs"]
mod http;
#[path = "common/scratch.rs"]
mod scratch;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use axum::http::Method;
use clap::Parser;
use serde_json::json;

use figures::{Figures, fmt, measure};
use http::call;
use trellis::auth::tokens;
use trellis::context::RequestContext;
use trellis::crm::tenants;
use trellis::plugins::engine::PluginEngine;
use trellis::plugins::grants::Grants;
use trellis::plugins::imports::CallEnv;
use trellis::plugins::manifest::Manifest;
use trellis::plugins::registry::{self, EnableRequest};
use trellis::plugins::runtime::Runtime;
use trellis::plugins::sandbox::{self, Call, Reply, WriteEvent, WriteOp};
use trellis::{AppState, Config};

/// A pronounceable word for `n`, different for each `n` (two letters per
/// base-20 digit), so generated names spread over the search index.
fn word(mut n: usize) -> String {
    const SYLLABLES: [&str; 20] = [
        "ka", "lo", "mi", "ne", "su", "ta", "ri", "po", "de", "vu", "ba", "ge", "ho", "ji", "mo",
        "ny", "pa", "se", "to", "wi",
    ];
    let mut out = String::new();
    loop {
        out.push_str(SYLLABLES[n % 20]);
        n /= 20;
        if n == 0 {
            break;
        }
    }
    out
}

/// Sets a tenant's duplicate check (`off`, `warn`, `block`).
async fn set_duplicate_policy(state: &AppState, tenant_id: uuid::Uuid, policy: &str) -> Result<()> {
    use sea_orm::{ActiveModelTrait, Set};
    trellis::entities::tenant::ActiveModel {
        id: Set(tenant_id),
        duplicate_policy: Set(policy.to_owned()),
        ..Default::default()
    }
    .update(&state.db)
    .await?;
    state.caches.tenants.remove(&tenant_id);
    Ok(())
}

/// Contacts per bulk request.
const BULK: usize = 200;

#[derive(Debug, Parser)]
#[command(name = "trellis-bench-plugins")]
struct Args {
    /// Invocations per measured operation.
    #[arg(long, default_value_t = 5000)]
    samples: usize,
    /// Creates per hook count (0, 1, 4 hooks).
    #[arg(long, default_value_t = 2000)]
    creates: usize,
    /// Bulk requests of 200 contacts per hook count (the batch hook).
    #[arg(long, default_value_t = 20)]
    bulks: usize,
    /// Benchmark PostgreSQL: an admin URL used to create and drop a scratch database.
    #[arg(long, value_name = "URL")]
    postgres: Option<String>,
}

fn plugin_bytes(name: &str) -> Result<Vec<u8>> {
    Ok(std::fs::read(
        Path::new(env!("TRELLIS_PLUGINS_DIR")).join(format!("{name}.wasm")),
    )?)
}

fn manifest_text(dir: &str) -> Result<String> {
    Ok(std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../plugins")
            .join(dir)
            .join("plugin.toml"),
    )?)
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let scratch = scratch::Scratch::new(args.postgres.as_deref(), "trellis_plugbench").await?;
    let result = run(&args, &scratch.url).await;
    scratch.remove().await;
    result
}

async fn run(args: &Args, url: &str) -> Result<()> {
    let cache = tempfile::tempdir()?;
    let mut config = Config {
        database_url: url.to_owned(),
        max_connections: 16,
        master_key: Some(trellis::crypto::MasterKey::generate().to_base64()),
        ..Config::default()
    };
    config.plugins.cache_dir = Some(cache.path().join("components"));
    let state = AppState::open(config).await?;
    println!(
        "trellis-bench-plugins on {}",
        if url.starts_with("postgres") {
            "PostgreSQL"
        } else {
            "SQLite"
        }
    );

    // 1. Loading a component: compiled, then from the disk cache.
    let showcase = plugin_bytes("showcase")?;
    let mut compile = Vec::new();
    for _ in 0..3 {
        let engine = PluginEngine::new(None, false)?;
        let t = Instant::now();
        engine.component(&showcase)?;
        compile.push(t.elapsed());
    }
    let dir: PathBuf = cache.path().join("load");
    PluginEngine::new(Some(dir.clone()), false)?.component(&showcase)?;
    let mut cached = Vec::new();
    for _ in 0..20 {
        let engine = PluginEngine::new(Some(dir.clone()), false)?;
        let t = Instant::now();
        engine.component(&showcase)?;
        cached.push(t.elapsed());
    }
    compile.sort();
    cached.sort();
    println!(
        "load showcase.wasm ({} KB): compile {} (median of 3), from disk cache {} (median of 20)",
        showcase.len() / 1024,
        fmt(compile[1]),
        fmt(cached[10])
    );

    // 2. Per-invocation costs, pooling allocator and on-demand.
    let tidy_manifest = Manifest::parse(&manifest_text("testing/tidy")?)?;
    let tidy = plugin_bytes("tidy")?;
    let event = WriteEvent {
        object_type: "contact".to_owned(),
        op: WriteOp::Create,
        record_id: None,
        before: None,
        after: Some(
            json!({"first_name": "ann", "last_name": "VAN DER BERG", "emails": [{"address": "Ann@Example.COM", "primary": true}],
                   "phones": [{"number": "+44 (20) 7946-0991"}], "tags": ["buyer"], "custom": {}})
            .to_string(),
        ),
    };
    for pooling in [true, false] {
        let mut settings = state.config.plugins.settings(Duration::from_secs(5));
        settings.pooling = pooling;
        settings.cache_dir = Some(cache.path().join("components"));
        let rt = Runtime::new(state.db.clone(), state.keyring.clone(), settings)?;
        if pooling && !rt.engine.pooling {
            println!("  (pooling allocator unavailable here; skipped)");
            continue;
        }
        let loaded = Arc::new(rt.check_component(&tidy_manifest, &tidy)?);
        let env = Arc::new(CallEnv {
            db: state.db.clone(),
            ctx: RequestContext::system(uuid::Uuid::nil()),
            grants: Grants::default(),
            plugin_id: "tidy".to_owned(),
            version: "0.1.0".to_owned(),
            tenant_plugin_id: uuid::Uuid::nil(),
            config: "{}".to_owned(),
            http_timeout: Duration::from_secs(1),
        });
        let limits = rt.settings.limits;
        let engine = rt.engine.engine.clone();
        let inst = measure(args.samples, |_| {
            let (engine, loaded, env) = (engine.clone(), loaded.clone(), env.clone());
            async move {
                sandbox::instantiate_only(&engine, &loaded, env, limits)
                    .await
                    .map_err(anyhow::Error::msg)
            }
        })
        .await?;
        let trivial = measure(args.samples, |_| {
            let (engine, loaded, env) = (engine.clone(), loaded.clone(), env.clone());
            async move {
                match sandbox::invoke(&engine, &loaded, env, limits, Call::Describe)
                    .await
                    .reply
                {
                    Ok(Reply::Describe(_)) => Ok(()),
                    other => bail!("describe: {other:?}"),
                }
            }
        })
        .await?;
        let hook = measure(args.samples, |_| {
            let (engine, loaded, env, event) =
                (engine.clone(), loaded.clone(), env.clone(), event.clone());
            async move {
                match sandbox::invoke(&engine, &loaded, env, limits, Call::BeforeWrite(event))
                    .await
                    .reply
                {
                    Ok(Reply::Hook(_)) => Ok(()),
                    other => bail!("hook: {other:?}"),
                }
            }
        })
        .await?;
        let label = if pooling { "pooling" } else { "on-demand" };
        println!(
            "{label:>9}: instantiate {} p50 {} p99; instantiate + trivial call {} p50; \
             instantiate + validate hook {} p50 {} p99 ({:.0}/s)",
            fmt(inst.p50),
            fmt(inst.p99),
            fmt(trivial.p50),
            fmt(hook.p50),
            fmt(hook.p99),
            hook.per_sec
        );
    }

    // 3. Creates through the API with 0, 1 and 4 validate hooks.
    let (tenant, admin) = tenants::ensure_default(&state.db).await?;
    let key = tokens::generate();
    tokens::store(&state.db, tenant.id, admin.id, "bench", &key, &["admin"]).await?;
    let app = state.router();
    let ctx = {
        let mut c = RequestContext::system(tenant.id);
        c.plugins = state.plugins.clone();
        c
    };
    for name in ["tidy", "tidy2", "tidy3", "tidy4"] {
        registry::install(
            &state,
            &manifest_text(&format!("testing/{name}"))?,
            plugin_bytes(name)?,
        )
        .await?;
    }
    // Every contact its own email and number (names share their first
    // letters with a few others, as real names do), so the duplicate
    // check finds few candidates and each create does the same work.
    let body = |i: usize| {
        let email = format!("{}@{}.{}", word(i), word(i * 31 + 5), word(i * 17 + 2)).to_uppercase();
        json!({"first_name": word(i), "last_name": word(i.wrapping_mul(7919) + 13).to_uppercase(),
               "emails": [{"address": email, "primary": true}],
               "phones": [{"number": format!("+44 (20) {:04}-{:04}", i / 10_000 % 10_000, i % 10_000)}]})
    };
    let bulk_body = |i: usize| json!({"operation": "create", "items": (0..BULK).map(|j| body(i * BULK + j)).collect::<Vec<_>>()});
    // The duplicate check every API create makes (the tenant's default
    // policy, `warn`) is measured against creates without it just before,
    // on the same tenant, then switched off for the hook phases (which run
    // one after the other on a growing tenant).
    set_duplicate_policy(&state, tenant.id, "off").await?;
    let unchecked = measure(args.creates, |i| {
        call(
            &app,
            Method::POST,
            "/api/v1/contacts",
            Some(&key),
            Some(body(40_000_000 + i)),
        )
    })
    .await?;
    set_duplicate_policy(&state, tenant.id, "warn").await?;
    let checked = measure(args.creates, |i| {
        call(
            &app,
            Method::POST,
            "/api/v1/contacts",
            Some(&key),
            Some(body(50_000_000 + i)),
        )
    })
    .await?;
    set_duplicate_policy(&state, tenant.id, "off").await?;
    let mut results: Vec<(usize, Figures)> = Vec::new();
    let mut bulks: Vec<Figures> = Vec::new();
    let mut offset = 0;
    for hooks in [0usize, 1, 4] {
        let enabled = results.last().map_or(0, |(n, _)| *n);
        for name in ["tidy", "tidy2", "tidy3", "tidy4"]
            .iter()
            .take(hooks)
            .skip(enabled)
        {
            registry::enable(
                &state,
                &ctx,
                name,
                EnableRequest {
                    version: None,
                    grants: vec![
                        "records:contact:read".to_owned(),
                        "records:contact:create".to_owned(),
                        "records:contact:update".to_owned(),
                    ],
                    config: None,
                    limits: None,
                },
            )
            .await?;
        }
        let figures = measure(args.creates, |i| {
            call(
                &app,
                Method::POST,
                "/api/v1/contacts",
                Some(&key),
                Some(body(offset + i)),
            )
        })
        .await?;
        offset += args.creates * 2;
        results.push((hooks, figures));
        // The same hooks on bulk requests: one batch invocation per plugin
        // and request instead of one per record.
        let base = 10_000_000 + hooks * 1_000_000;
        let figures = measure(args.bulks, |i| {
            call(
                &app,
                Method::POST,
                "/api/v1/contacts/bulk",
                Some(&key),
                Some(bulk_body(base / BULK + i)),
            )
        })
        .await?;
        bulks.push(figures);
    }
    let base = results[0].1.per_sec;
    let base_p50 = results[0].1.p50;
    for (hooks, f) in &results {
        println!(
            "create with {hooks} hook(s): {} p50 {} p99, {:.0}/s ({:.1}% of no hooks; +{} p50)",
            fmt(f.p50),
            fmt(f.p99),
            f.per_sec,
            f.per_sec / base * 100.0,
            fmt(f.p50.saturating_sub(base_p50))
        );
    }
    println!(
        "create with 0 hooks, the duplicate check off then on (before the runs above): {} p50 {:.0}/s, then {} p50 {} p99 {:.0}/s (+{} p50)",
        fmt(unchecked.p50),
        unchecked.per_sec,
        fmt(checked.p50),
        fmt(checked.p99),
        checked.per_sec,
        fmt(checked.p50.saturating_sub(unchecked.p50))
    );
    let bulk_base = bulks[0].per_sec;
    for ((hooks, _), f) in results.iter().zip(&bulks) {
        println!(
            "bulk create of {BULK} with {hooks} hook(s): {} p50 per request, {:.0} records/s ({:.1}% of no hooks)",
            fmt(f.p50),
            f.per_sec * BULK as f64,
            f.per_sec / bulk_base * 100.0
        );
    }
    Ok(())
}
