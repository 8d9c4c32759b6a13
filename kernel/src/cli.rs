//! The `trellis` command line: parses arguments, builds the configuration,
//! and calls into the library.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

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
        Command::Serve { demo, .. } => serve(config, demo).await,
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

async fn serve(config: Config, demo: bool) -> anyhow::Result<()> {
    let bind = config.bind;
    let dev_token = config.dev_token.clone();
    let state = AppState::open(config)
        .await
        .context("opening the database")?;
    let (tenant, admin) = tenants::ensure_default(&state.db).await?;
    if demo {
        tracing::info!("seeding demo data (first start only)");
        report_seed(seed::demo(&state.db, tenant.id, admin.id, DemoSize::default()).await?);
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
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .with_context(|| format!("cannot listen on {bind}"))?;
    println!("Trellis is listening on http://{bind}");
    println!("  OpenAPI document: http://{bind}/api/openapi.json");
    println!("  API token (default tenant admin): {token}");
    println!(
        "  try: curl -H 'Authorization: Bearer {token}' http://{bind}/api/v1/contacts?limit=5"
    );
    axum::serve(listener, state.router())
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TRELLIS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
