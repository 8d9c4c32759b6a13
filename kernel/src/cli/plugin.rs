//! `trellis plugin …`: scaffold, build, install and manage plugins.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use clap::Subcommand;

use crate::AppState;
use crate::context::RequestContext;
use crate::crm::tenants;
use crate::plugins::manifest::Manifest;
use crate::plugins::registry::{self, EnableRequest};

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Create a new plugin crate (a working before-write hook, its
    /// `plugin.toml`, and a build set up for wasm32-wasip2).
    New {
        /// The plugin's id: lower-case letters, digits and `-`.
        name: String,
        /// Where to create it (default: ./NAME).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The SDK crate to depend on (default: this kernel's `plugins/sdk`).
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
    /// Build a plugin crate to a WebAssembly component and print its path.
    Build {
        /// The plugin crate (default: the current directory).
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
    /// Install a plugin version for the whole platform: a crate directory
    /// (built first, `plugin.toml` read from it) or a `.wasm` with `--manifest`.
    Install {
        path: PathBuf,
        /// The `plugin.toml` (default: next to the crate).
        #[arg(long)]
        manifest: Option<PathBuf>,
    },
    /// List installed plugins, or a tenant's plugins with `--tenant`.
    List {
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Enable a plugin for a tenant, granting capabilities.
    Enable {
        id: String,
        #[arg(long, default_value = tenants::DEFAULT_SLUG)]
        tenant: String,
        /// A capability to grant (repeatable): `records:contact:read`, `kv`, `http:HOST`...
        #[arg(long = "grant")]
        grants: Vec<String>,
        /// Grant every capability the manifest asks for.
        #[arg(long)]
        grant_requested: bool,
        /// Configuration as JSON (checked against the plugin's schema).
        #[arg(long)]
        config: Option<String>,
        /// The version to run (default: the newest installed).
        #[arg(long)]
        version: Option<String>,
    },
    /// Disable a plugin for a tenant.
    Disable {
        id: String,
        #[arg(long, default_value = tenants::DEFAULT_SLUG)]
        tenant: String,
    },
    /// Remove an installed version no tenant has enabled.
    Remove {
        id: String,
        #[arg(long)]
        version: String,
    },
    /// Print a plugin's log for a tenant, newest first.
    Logs {
        id: String,
        #[arg(long, default_value = tenants::DEFAULT_SLUG)]
        tenant: String,
        #[arg(long, default_value_t = 100)]
        limit: u64,
    },
}

/// Runs a plugin command (opening the database only when it needs one).
pub async fn run(command: PluginCommand, config: crate::Config) -> anyhow::Result<()> {
    match command {
        PluginCommand::New { name, dir, sdk } => {
            let dir = dir.unwrap_or_else(|| PathBuf::from(&name));
            let sdk =
                sdk.unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/sdk"));
            scaffold(&name, &dir, &sdk)?;
            println!("created plugin `{name}` in {}", dir.display());
            println!("  build it:   trellis plugin build {}", dir.display());
            println!("  install it: trellis plugin install {}", dir.display());
            Ok(())
        }
        PluginCommand::Build { dir } => {
            let wasm = build(&dir)?;
            println!("{}", wasm.display());
            Ok(())
        }
        PluginCommand::Install { path, manifest } => {
            let (wasm, manifest_path) = if path.extension().is_some_and(|e| e == "wasm") {
                let m = manifest.context("installing a .wasm needs --manifest plugin.toml")?;
                (path, m)
            } else {
                let wasm = build(&path)?;
                (wasm, manifest.unwrap_or_else(|| path.join("plugin.toml")))
            };
            let text = std::fs::read_to_string(&manifest_path)
                .with_context(|| format!("reading {}", manifest_path.display()))?;
            let bytes =
                std::fs::read(&wasm).with_context(|| format!("reading {}", wasm.display()))?;
            let state = AppState::open(config).await?;
            let p = registry::install(&state, &text, bytes).await?;
            println!(
                "installed {}@{} (sha256 {})",
                p.plugin_id, p.version, p.sha256
            );
            Ok(())
        }
        PluginCommand::List { tenant } => {
            let state = AppState::open(config).await?;
            match tenant {
                None => {
                    for p in registry::packages(&state).await? {
                        println!(
                            "{}@{}\tcontract {}\t{}",
                            p.plugin_id, p.version, p.contract, p.sha256
                        );
                    }
                }
                Some(slug) => {
                    let ctx = tenant_ctx(&state, &slug).await?;
                    for p in registry::tenant_plugins(&state, &ctx).await? {
                        println!(
                            "{}@{}\t{}\tgrants: {}{}",
                            p.plugin_id,
                            p.version,
                            if p.enabled { "enabled" } else { "disabled" },
                            p.grants.join(" "),
                            p.disabled_reason
                                .map(|r| format!("\t({r})"))
                                .unwrap_or_default()
                        );
                    }
                }
            }
            Ok(())
        }
        PluginCommand::Enable {
            id,
            tenant,
            grants,
            grant_requested,
            config: plugin_config,
            version,
        } => {
            let state = AppState::open(config).await?;
            let ctx = tenant_ctx(&state, &tenant).await?;
            let grants = if grant_requested {
                let packages = registry::packages(&state).await?;
                let p = packages
                    .iter()
                    .find(|p| p.plugin_id == id && version.as_ref().is_none_or(|v| *v == p.version))
                    .with_context(|| format!("plugin `{id}` is not installed"))?;
                let manifest: Manifest = serde_json::from_value(p.manifest.clone())?;
                manifest.capabilities()
            } else {
                grants
            };
            let config = match plugin_config {
                Some(text) => Some(serde_json::from_str(&text).context("--config is not JSON")?),
                None => None,
            };
            let out = registry::enable(
                &state,
                &ctx,
                &id,
                EnableRequest {
                    version,
                    grants,
                    config,
                    limits: None,
                },
            )
            .await?;
            println!(
                "{}@{} enabled for {tenant}; granted: {}",
                out.plugin_id,
                out.version,
                out.grants.join(" ")
            );
            Ok(())
        }
        PluginCommand::Disable { id, tenant } => {
            let state = AppState::open(config).await?;
            let ctx = tenant_ctx(&state, &tenant).await?;
            registry::disable(&state, &ctx, &id).await?;
            println!("{id} disabled for {tenant}");
            Ok(())
        }
        PluginCommand::Remove { id, version } => {
            let state = AppState::open(config).await?;
            registry::remove(&state, &id, &version).await?;
            println!("removed {id}@{version}");
            Ok(())
        }
        PluginCommand::Logs { id, tenant, limit } => {
            let state = AppState::open(config).await?;
            let ctx = tenant_ctx(&state, &tenant).await?;
            for line in registry::logs(&state, &ctx, &id, limit).await? {
                println!(
                    "{}\t{}\t{}\t{}",
                    line.at, line.version, line.level, line.message
                );
            }
            Ok(())
        }
    }
}

/// The kernel acting for a tenant (the CLI runs with the server's rights).
async fn tenant_ctx(state: &AppState, slug: &str) -> anyhow::Result<RequestContext> {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let t = crate::entities::tenant::Entity::find()
        .filter(crate::entities::tenant::Column::Slug.eq(slug))
        .one(&state.db)
        .await?
        .with_context(|| format!("no tenant `{slug}`"))?;
    let mut ctx = RequestContext::system(t.id);
    ctx.plugins = state.plugins.clone();
    ctx.keyring = Some(state.keyring.clone());
    Ok(ctx)
}

/// Builds the crate in `dir` for wasm32-wasip2 in release mode; returns the
/// component's path.
fn build(dir: &Path) -> anyhow::Result<PathBuf> {
    let manifest = dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest)
        .with_context(|| format!("{} is not a plugin crate", dir.display()))?;
    let name = text
        .lines()
        .find_map(|l| {
            let l = l.trim();
            l.strip_prefix("name").map(|r| {
                r.trim_start()
                    .trim_start_matches('=')
                    .trim()
                    .trim_matches('"')
                    .to_owned()
            })
        })
        .context("Cargo.toml names no package")?;
    let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .current_dir(dir)
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .status()
        .context("running cargo")?;
    if !status.success() {
        bail!("the build failed; is the target installed? `rustup target add wasm32-wasip2`");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| dir.join("target"));
    let wasm = target
        .join("wasm32-wasip2/release")
        .join(format!("{}.wasm", name.replace('-', "_")));
    if !wasm.exists() {
        bail!("the build produced no {}", wasm.display());
    }
    Ok(wasm)
}

fn scaffold(name: &str, dir: &Path, sdk: &Path) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && name.starts_with(|c: char| c.is_ascii_lowercase());
    if !ok {
        bail!(
            "`{name}`: a plugin id is lower-case letters, digits and `-`, starting with a letter"
        );
    }
    if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        bail!("{} exists and is not empty", dir.display());
    }
    let sdk = std::fs::canonicalize(sdk)
        .with_context(|| format!("the SDK is not at {}; pass --sdk", sdk.display()))?;
    std::fs::create_dir_all(dir.join("src"))?;
    let files = [
        (
            "Cargo.toml",
            format!(
                r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib"]

[dependencies]
trellis-plugin-sdk = {{ path = "{sdk}" }}
serde_json = "1"

[profile.release]
opt-level = "s"
debug = false
strip = true
panic = "abort"

# A workspace of its own, whatever folder it sits in.
[workspace]
"#,
                sdk = sdk.display()
            ),
        ),
        (
            "plugin.toml",
            format!(
                r#"id = "{name}"
name = "{name}"
version = "0.1.0"
contract = "{contract}"
description = "Trims contacts' job titles."

[capabilities]
records = {{ contact = ["read", "create", "update"] }}

[hooks]
before_write = ["contact"]
"#,
                contract = crate::plugins::contract::LATEST
            ),
        ),
        (
            "src/lib.rs",
            r#"//! A Trellis plugin. See docs/plugins.md for every capability.

use trellis_plugin_sdk::{HookOutcome, Plugin, WriteEvent, register_plugin};

struct MyPlugin;

impl Plugin for MyPlugin {
    fn new() -> Self {
        MyPlugin
    }

    /// Trims a contact's job title before it is written.
    fn before_write(&mut self, event: WriteEvent) -> HookOutcome {
        match event.after_str("job_title") {
            Some(t) if t != t.trim() => {
                HookOutcome::patch(serde_json::json!({"job_title": t.trim()}))
            }
            _ => HookOutcome::Accept,
        }
    }
}

register_plugin!(MyPlugin);
"#
            .to_owned(),
        ),
        (".gitignore", "/target\n".to_owned()),
    ];
    for (path, text) in files {
        std::fs::write(dir.join(path), text)?;
    }
    Ok(())
}
