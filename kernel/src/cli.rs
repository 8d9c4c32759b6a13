//! The `trellis` command line: parses arguments, builds the configuration,
//! and calls into the library.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

mod import;
mod merge;
mod plugin;

use crate::config::{Config, LogFormat, Overrides};
use crate::crm::tenants;
use crate::seed::{self, DemoSize, Seeded};
use crate::{AppState, auth::tokens};

/// Trellis: a plugin-based vertical CRM framework.
///
/// Configuration is read from a TOML file (`--config`, or `trellis.toml` in
/// the working directory when present), then `TRELLIS_*` environment
/// variables, then flags; later sources win.
#[derive(Debug, Parser)]
#[command(name = "trellis", version, about, long_about)]
pub struct Cli {
    /// TOML configuration file.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Database URL: `sqlite://PATH?mode=rwc` (default `sqlite://trellis.db?mode=rwc`)
    /// or `postgres://USER@HOST:PORT/DB`. Env: TRELLIS_DATABASE_URL.
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,
    /// Log format: text or json. Env: TRELLIS_LOG_FORMAT.
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (migrating the database first).
    Serve {
        /// Address to listen on (default 127.0.0.1:8080). Env: TRELLIS_BIND.
        #[arg(long, value_name = "ADDR")]
        bind: Option<SocketAddr>,
        /// Seed the demo data set into the default tenant if it is empty.
        #[arg(long)]
        demo: bool,
        /// Apply an edition to the default tenant first (idempotent):
        /// `real-estate`. `trellis edition list` names them.
        #[arg(long, value_name = "EDITION")]
        edition: Option<String>,
        /// A fixed API token for the default tenant's admin (development
        /// only); without it a random token is created and printed.
        /// Env: TRELLIS_DEV_TOKEN.
        #[arg(long, value_name = "TOKEN")]
        dev_token: Option<String>,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Write data into the default tenant.
    Seed {
        /// The demo data set: accounts in a hierarchy, contacts, deals, activities.
        #[arg(long, required = true)]
        demo: bool,
        /// How many contacts (accounts, deals and activities scale with it).
        #[arg(long, default_value_t = 3000)]
        contacts: usize,
    },
    /// Manage API tokens of the default tenant's admin.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Verify or search the audit trail.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Manage users' passwords from the server (bootstrap, recovery).
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Create operator keys: the platform administrator's or a reseller's.
    Operator {
        #[command(subcommand)]
        command: OperatorCommand,
    },
    /// Rotate and re-wrap keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Scaffold, build, install and manage plugins.
    Plugin {
        #[command(subcommand)]
        command: plugin::PluginCommand,
    },
    /// Maintain the search index.
    Search {
        #[command(subcommand)]
        command: SearchCommand,
    },
    /// Import contacts or accounts from a CSV, XLSX, JSON lines or vCard
    /// file (the API's import, run here with a progress bar).
    Import(import::ImportArgs),
    /// Write a tenant's full backup (JSON lines; encrypted fields in clear:
    /// keep the file like the database).
    Export {
        #[command(subcommand)]
        command: ExportCommand,
    },
    /// Restore a tenant backup into a new tenant (ids are translated, so it
    /// can sit beside the original).
    Restore {
        /// The backup file (`trellis export tenant`).
        file: std::path::PathBuf,
        /// The new tenant's slug (it must not exist).
        #[arg(long)]
        slug: String,
        /// The new tenant's name (default: the backup's).
        #[arg(long)]
        name: Option<String>,
    },
    /// Merge duplicate contacts or accounts into one, or undo a merge.
    Merge {
        #[command(subcommand)]
        command: merge::MergeCommand,
    },
    /// Run queued jobs (after-write hooks, plugin jobs) until none is due,
    /// then exit. `serve` runs them continuously.
    Jobs,
    /// List, show and apply editions (verticals).
    Edition {
        #[command(subcommand)]
        command: EditionCommand,
    },
    /// Scaffold and check white-label themes (see docs/themes.md).
    Theme {
        #[command(subcommand)]
        command: ThemeCommand,
    },
    /// Create tenants from the server (as the platform operator).
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// Every record, custom field, relation, user, role, pipeline, view and
    /// plugin setting and KV entry of one tenant.
    Tenant {
        /// Tenant slug.
        #[arg(long, default_value = tenants::DEFAULT_SLUG)]
        tenant: String,
        /// Where to write it.
        #[arg(long)]
        out: std::path::PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum SearchCommand {
    /// Rewrite the search documents and duplicate-detection match keys of
    /// every contact, account and deal from the records (after an upgrade
    /// that changed them, or to repair).
    Reindex {
        /// Only this tenant (slug).
        #[arg(long)]
        tenant: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant with an invited administrator (the invitation goes to
    /// the outbox), optionally applying an edition.
    Create {
        #[arg(long)]
        slug: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        admin_email: String,
        /// starter, professional, enterprise or custom.
        #[arg(long, default_value = "starter")]
        plan: String,
        /// An edition to apply (`trellis edition list`).
        #[arg(long)]
        edition: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ThemeCommand {
    /// Create a theme folder DIR/NAME from the default theme's manifest,
    /// ready to edit.
    New {
        name: String,
        /// Where theme folders live (the kernel loads them from
        /// `themes_dir` / TRELLIS_THEMES_DIR).
        #[arg(long, default_value = "themes")]
        dir: std::path::PathBuf,
    },
    /// Check a theme folder as the kernel would load it; exits 1 listing
    /// each problem with its file and line.
    Check { path: std::path::PathBuf },
    /// List the themes this kernel loads (shipped and `themes_dir`), and
    /// those it leaves out with why.
    List,
}

#[derive(Debug, Subcommand)]
pub enum EditionCommand {
    /// The editions built into this kernel.
    List,
    /// Print an edition's manifest.
    Show { id: String },
    /// Apply an edition to a tenant (idempotent: what the tenant changed or
    /// removed stays so; a newer version adds only what is new).
    Apply {
        id: String,
        #[arg(long, default_value = tenants::DEFAULT_SLUG)]
        tenant: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check every tenant's hash chain (or one's); exits 1 naming each
    /// altered, missing or out-of-chain entry.
    Verify {
        /// Only this tenant (slug).
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Print matching entries as JSON lines, newest first.
    Search {
        /// Tenant slug (default: the default tenant).
        #[arg(long, default_value = tenants::DEFAULT_SLUG)]
        tenant: String,
        /// Entries about this record id.
        #[arg(long)]
        record: Option<uuid::Uuid>,
        /// Entries by this user, API key or operator id.
        #[arg(long)]
        actor: Option<uuid::Uuid>,
        /// create, update, delete, read, login, login_failed, logout, export, erase...
        #[arg(long)]
        action: Option<String>,
        /// At or after this time (RFC 3339).
        #[arg(long)]
        from: Option<chrono::DateTime<chrono::Utc>>,
        /// Before this time (RFC 3339).
        #[arg(long)]
        to: Option<chrono::DateTime<chrono::Utc>>,
        /// Most entries to print.
        #[arg(long, default_value_t = 1000)]
        limit: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Set a user's password; read from TRELLIS_PASSWORD or the first line of stdin.
    Password {
        #[arg(long)]
        email: String,
        /// Tenant slug (default: the default tenant).
        #[arg(long, default_value = tenants::DEFAULT_SLUG)]
        tenant: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum OperatorCommand {
    /// Create an operator key and print it once.
    Create {
        #[arg(long)]
        name: String,
        /// The reseller (slug) the operator administers; omit for the platform administrator.
        #[arg(long)]
        reseller: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Make a new access-token signing key current; the previous one keeps verifying.
    RotateSigning,
    /// Give a tenant a new data key for new writes (old values stay readable).
    RotateTenant {
        #[arg(long)]
        tenant: String,
    },
    /// Re-wrap every tenant data key with the current master key (after
    /// moving the old one to `previous_master_keys`).
    Rewrap,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it once (only its hash is stored).
    Create {
        /// A name to recognise the token by.
        #[arg(long, default_value = "cli")]
        name: String,
        /// Role of the token: admin, manager, sales_rep or read_only.
        #[arg(long, default_value = "admin")]
        role: String,
    },
}

/// Runs the parsed command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let dev_token = match &cli.command {
        Command::Serve { dev_token, .. } => dev_token.clone(),
        _ => None,
    };
    let bind = match &cli.command {
        Command::Serve { bind, .. } => *bind,
        _ => None,
    };
    let config = Config::load(
        cli.config.as_deref(),
        Overrides {
            bind,
            database_url: cli.database_url.clone(),
            log_format: cli.log_format,
            dev_token,
        },
    )?;
    init_logging(config.log_format);
    match cli.command {
        Command::Theme { command } => theme_command(&config, command),
        Command::Serve { demo, edition, .. } => serve(config, demo, edition).await,
        Command::Edition { command } => edition_command(config, command).await,
        Command::Tenant {
            command:
                TenantCommand::Create {
                    slug,
                    name,
                    admin_email,
                    plan,
                    edition,
                },
        } => {
            let plan = crate::tenancy::plans::Plan::parse(&plan).with_context(|| {
                format!("unknown plan `{plan}`: use starter, professional, enterprise or custom")
            })?;
            let state = AppState::open(config).await?;
            // The command line acts as the platform operator; its audit
            // entries name operator id 0 and request id `cli`.
            let op = crate::tenancy::operators::Operator {
                id: uuid::Uuid::nil(),
                reseller_id: None,
                client: crate::context::Client {
                    request_id: Some("cli".to_owned()),
                    ..Default::default()
                },
            };
            let t = crate::tenancy::operators::create_tenant(
                &state,
                &op,
                crate::tenancy::operators::NewTenant {
                    slug,
                    name,
                    plan,
                    reseller_id: None,
                    hostname: None,
                    admin_email,
                    admin_name: None,
                    edition,
                },
            )
            .await?;
            println!(
                "created tenant {} ({}) on the {:?} plan",
                t.slug, t.id, t.plan
            );
            Ok(())
        }
        Command::Migrate => {
            AppState::open(config)
                .await
                .context("migrating the database")?;
            println!("database is up to date");
            Ok(())
        }
        Command::Seed { contacts, .. } => {
            let state = AppState::open(config).await?;
            let (tenant, admin) = tenants::ensure_default(&state.db).await?;
            let size = DemoSize {
                contacts,
                accounts: (contacts / 10).max(10),
                deals: (contacts / 5).max(10),
                activities: (contacts * 2 / 3).max(10),
            };
            report_seed(seed::demo(&state.db, tenant.id, admin.id, size).await?);
            Ok(())
        }
        Command::Token {
            command: TokenCommand::Create { name, role },
        } => {
            if !["admin", "manager", "sales_rep", "read_only"].contains(&role.as_str()) {
                anyhow::bail!("unknown role `{role}`: use admin, manager, sales_rep or read_only");
            }
            let state = AppState::open(config).await?;
            let (tenant, admin) = tenants::ensure_default(&state.db).await?;
            let token = tokens::generate();
            tokens::store(
                &state.db,
                tenant.id,
                admin.id,
                &name,
                &token,
                &[role.as_str()],
            )
            .await?;
            println!("{token}");
            Ok(())
        }
        Command::Audit { command } => {
            let state = AppState::open(config).await?;
            audit_command(&state, command).await
        }
        Command::User {
            command: UserCommand::Password { email, tenant },
        } => {
            let password = match std::env::var("TRELLIS_PASSWORD") {
                Ok(p) => p,
                Err(_) => {
                    let mut line = String::new();
                    std::io::stdin().read_line(&mut line)?;
                    line.trim_end_matches(['\r', '\n']).to_owned()
                }
            };
            let state = AppState::open(config).await?;
            let t = tenant_by_slug(&state, &tenant).await?;
            crate::auth::login::set_password(&state, t.id, &email, &password).await?;
            println!("password set for {email}");
            Ok(())
        }
        Command::Operator {
            command: OperatorCommand::Create { name, reseller },
        } => {
            let state = AppState::open(config).await?;
            let key =
                crate::tenancy::operators::create_operator(&state.db, &name, reseller.as_deref())
                    .await?;
            println!("{key}");
            Ok(())
        }
        Command::Plugin { command } => plugin::run(command, config).await,
        Command::Search {
            command: SearchCommand::Reindex { tenant },
        } => {
            let state = AppState::open(config).await?;
            let tenant = match tenant {
                Some(slug) => Some(tenant_by_slug(&state, &slug).await?.id),
                None => None,
            };
            let n = crate::crm::search::reindex(&state.db, tenant).await?;
            println!("reindexed {n} records");
            Ok(())
        }
        Command::Import(args) => {
            let state = AppState::open(config).await?;
            import::run(&state, args).await
        }
        Command::Export {
            command: ExportCommand::Tenant { tenant, out },
        } => {
            let state = AppState::open(config).await?;
            let t = tenant_by_slug(&state, &tenant).await?;
            let ctx = system_ctx(&state, t.id);
            let file = std::fs::File::create(&out)
                .with_context(|| format!("cannot create {}", out.display()))?;
            let mut w = std::io::BufWriter::new(file);
            let counts = crate::backup::export(&state.db, &ctx, &mut w).await?;
            let total: u64 = counts.values().sum();
            println!("wrote {total} rows of tenant {tenant} to {}", out.display());
            Ok(())
        }
        Command::Restore { file, slug, name } => {
            let state = AppState::open(config).await?;
            let f = std::fs::File::open(&file)
                .with_context(|| format!("cannot open {}", file.display()))?;
            let (id, counts) = crate::backup::restore(
                &state.db,
                Some(state.keyring.clone()),
                std::io::BufReader::new(f),
                &slug,
                name.as_deref(),
            )
            .await?;
            let total: u64 = counts.values().sum();
            println!("restored {total} rows into tenant {slug} ({id})");
            Ok(())
        }
        Command::Merge { command } => {
            let state = AppState::open(config).await?;
            merge::run(&state, command).await
        }
        Command::Jobs => {
            let state = AppState::open(config).await?;
            let n = crate::jobs::drain(&state).await?;
            println!("ran {n} jobs");
            Ok(())
        }
        Command::Keys { command } => {
            let state = AppState::open(config).await?;
            match command {
                KeysCommand::RotateSigning => {
                    let kid = crate::auth::access::rotate(&state.db, &state.keyring).await?;
                    println!("new signing key {kid}");
                }
                KeysCommand::RotateTenant { tenant } => {
                    let t = tenant_by_slug(&state, &tenant).await?;
                    let v = state.keyring.rotate_tenant(&state.db, t.id).await?;
                    println!("tenant {tenant} now writes with data key version {v}");
                }
                KeysCommand::Rewrap => {
                    let n = state.keyring.rewrap_all(&state.db).await?;
                    println!(
                        "re-wrapped {n} data keys with master key {}",
                        state.keyring.master.id()
                    );
                }
            }
            Ok(())
        }
    }
}

async fn tenant_by_slug(
    state: &AppState,
    slug: &str,
) -> anyhow::Result<crate::entities::tenant::Model> {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    crate::entities::tenant::Entity::find()
        .filter(crate::entities::tenant::Column::Slug.eq(slug))
        .one(&state.db)
        .await?
        .with_context(|| format!("no tenant `{slug}`"))
}

async fn audit_command(state: &AppState, command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::Verify { tenant } => {
            let only = match tenant {
                Some(slug) => Some(tenant_by_slug(state, &slug).await?.id),
                None => None,
            };
            let started = std::time::Instant::now();
            let report = crate::audit::chain::verify(&state.db, only).await?;
            let secs = started.elapsed().as_secs_f64();
            for (tenant, seq, hash) in &report.heads {
                println!("tenant {tenant}: head {seq} {hash}");
            }
            for f in &report.findings {
                println!(
                    "FINDING tenant {} seq {} {}: {}",
                    f.tenant_id, f.seq, f.kind, f.detail
                );
            }
            println!(
                "{} entries in {} tenants verified in {secs:.2}s ({:.0} entries/s)",
                report.entries,
                report.tenants,
                report.entries as f64 / secs.max(1e-9)
            );
            if !report.findings.is_empty() {
                anyhow::bail!("the audit trail has {} findings", report.findings.len());
            }
            Ok(())
        }
        AuditCommand::Search {
            tenant,
            record,
            actor,
            action,
            from,
            to,
            limit,
        } => {
            let t = tenant_by_slug(state, &tenant).await?;
            let ctx = crate::context::RequestContext::system(t.id);
            let mut q = crate::audit::query::AuditQuery {
                record_id: record,
                actor_id: actor,
                action,
                from,
                to,
                limit: Some(limit.clamp(1, 1000)),
                ..Default::default()
            };
            let mut printed = 0;
            loop {
                let page = crate::audit::query::search(&state.db, &ctx, &q).await?;
                for e in &page.data {
                    println!("{}", serde_json::to_string(e)?);
                    printed += 1;
                }
                match page.next_before {
                    Some(b) if printed < limit => q.before = Some(b),
                    _ => break,
                }
            }
            Ok(())
        }
    }
}

fn report_seed(result: Seeded) {
    match result {
        Seeded::Created {
            accounts,
            contacts,
            deals,
            activities,
        } => {
            println!(
                "demo data: {accounts} accounts, {contacts} contacts, {deals} deals, {activities} activities"
            )
        }
        Seeded::AlreadyPresent => {
            println!("demo data: the default tenant already has contacts; nothing written")
        }
    }
}

async fn serve(config: Config, demo: bool, edition: Option<String>) -> anyhow::Result<()> {
    let bind = config.bind;
    let dev_token = config.dev_token.clone();
    let state = AppState::open(config)
        .await
        .context("opening the database")?;
    let (tenant, admin) = tenants::ensure_default(&state.db).await?;
    let mut demo_size = DemoSize::default();
    let mut applied_edition = None;
    if let Some(id) = edition {
        let edition = crate::editions::Edition::built_in(&id)?;
        if let Some(d) = &edition.demo {
            demo_size = DemoSize {
                contacts: d.contacts,
                accounts: (d.contacts / 10).max(10),
                deals: (d.contacts / 5).max(10),
                activities: (d.contacts * 2 / 3).max(10),
            };
        }
        let applied =
            crate::editions::apply(&state, &system_ctx(&state, tenant.id), &edition).await?;
        println!(
            "edition {} {}: {} created, {} adopted, {} kept as they are",
            applied.edition,
            applied.version,
            applied.created.len(),
            applied.adopted.len(),
            applied.kept.len()
        );
        applied_edition = Some(edition);
    }
    // A demo admin without a password gets one, shown once, so the web UI
    // can be tried at once.
    let mut demo_password = None;
    if demo {
        tracing::info!("seeding demo data (first start only)");
        let seeded = seed::demo(&state.db, tenant.id, admin.id, demo_size).await?;
        if matches!(seeded, Seeded::Created { .. })
            && let Some(e) = &applied_edition
        {
            let n = crate::editions::queue_demo_jobs(&state.db, tenant.id, e).await?;
            if n > 0 {
                println!(
                    "demo data: {n} plugin job(s) of the edition queued (listings, showings...)"
                );
            }
        }
        report_seed(seeded);
        if admin.password_hash.is_none() {
            let password = tokens::generate()
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .take(20)
                .collect::<String>();
            crate::auth::login::set_password(&state, tenant.id, &admin.email, &password).await?;
            demo_password = Some(password);
        }
    }
    let token = match dev_token {
        Some(t) => t,
        None => tokens::generate(),
    };
    tenants::ensure_token(
        &state.db,
        &tenant,
        &admin,
        "development",
        &token,
        &["admin"],
    )
    .await?;
    // Imports run as jobs too, with or without the plugin host.
    if state.config.plugins.run_jobs {
        crate::jobs::spawn_runner(state.clone());
    }
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .with_context(|| format!("cannot listen on {bind}"))?;
    println!("Trellis is listening on http://{bind}");
    println!("  OpenAPI document: http://{bind}/api/openapi.json");
    println!("  API token (default tenant admin): {token}");
    println!(
        "  try: curl -H 'Authorization: Bearer {token}' http://{bind}/api/v1/contacts?limit=5"
    );
    match &demo_password {
        Some(p) => println!(
            "  web UI: http://{bind}/login as {} with the password {p} (shown once; change it with `trellis user password`)",
            admin.email
        ),
        None => println!(
            "  web UI: http://{bind}/login as {} (set a password with `trellis user password --email {}`)",
            admin.email, admin.email
        ),
    }
    // The peer address is the client IP for audit and login throttling
    // (unless `trust_forwarded_for` names a proxy's header instead).
    let app = state
        .router()
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

/// The kernel acting for a tenant from the command line.
fn system_ctx(state: &AppState, tenant_id: uuid::Uuid) -> crate::context::RequestContext {
    let mut ctx = crate::context::RequestContext::system(tenant_id);
    ctx.plugins = state.plugins.clone();
    ctx.keyring = Some(state.keyring.clone());
    ctx
}

async fn edition_command(config: Config, command: EditionCommand) -> anyhow::Result<()> {
    match command {
        EditionCommand::List => {
            for (id, _) in crate::editions::BUILT_IN {
                let e = crate::editions::Edition::built_in(id)?;
                println!("{}\t{}\t{}\t{}", e.id, e.version, e.name, e.description);
            }
        }
        EditionCommand::Show { id } => {
            crate::editions::Edition::built_in(&id)?;
            let text = crate::editions::BUILT_IN
                .iter()
                .find(|(i, _)| *i == id)
                .map(|(_, t)| *t)
                .unwrap_or_default();
            print!("{text}");
        }
        EditionCommand::Apply { id, tenant } => {
            let edition = crate::editions::Edition::built_in(&id)?;
            let state = AppState::open(config).await?;
            let t = tenant_by_slug(&state, &tenant).await?;
            let applied =
                crate::editions::apply(&state, &system_ctx(&state, t.id), &edition).await?;
            println!("{}", serde_json::to_string_pretty(&applied)?);
        }
    }
    Ok(())
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TRELLIS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Logs go to stderr: stdout carries what a command prints (a token, a
    // report) for scripts to read.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

fn theme_command(config: &Config, command: ThemeCommand) -> anyhow::Result<()> {
    use crate::web::themes;
    match command {
        ThemeCommand::New { name, dir } => {
            let path = themes::scaffold(&dir, &name).map_err(|e| anyhow::anyhow!(e))?;
            println!("created {}", path.display());
            println!(
                "edit theme.toml and theme.css; copy templates from themes/default/templates to override them"
            );
            println!("check it with: trellis theme check {}", path.display());
            Ok(())
        }
        ThemeCommand::Check { path } => match themes::check(&path) {
            Ok(name) => {
                println!("{}: ok ({name})", path.display());
                Ok(())
            }
            Err(problems) => {
                for p in &problems {
                    eprintln!("{p}");
                }
                anyhow::bail!("{} problem(s) in {}", problems.len(), path.display())
            }
        },
        ThemeCommand::List => {
            let loaded = themes::Themes::load(config.themes_dir.as_deref())?;
            for t in loaded.all() {
                println!(
                    "{}\t{}\t{}",
                    t.key, t.manifest.name, t.manifest.product_name
                );
            }
            for p in loaded.problems() {
                eprintln!("left out: {p}");
            }
            Ok(())
        }
    }
}
