//! Installing plugin packages (platform-wide, at run time, into the
//! database so every kernel process sees them) and enabling them per tenant
//! with the admin's grants and configuration.

use std::sync::Arc;

use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::AppState;
use crate::audit::{self, AuditAction, AuditEntry};
use crate::context::RequestContext;
use crate::entities::{job, plugin_log, plugin_package, tenant_plugin};
use crate::error::{Error, FieldError, Result};
use crate::permissions::{Action, ObjectType};
use crate::plugins::Runtime;
use crate::plugins::grants::{self, Grants};
use crate::plugins::imports::CallEnv;
use crate::plugins::manifest::Manifest;
use crate::plugins::sandbox::{self, Call, Reply};
use crate::plugins::secrets;

/// An installed plugin version.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PackageOut {
    pub plugin_id: String,
    pub version: String,
    pub contract: String,
    pub sha256: String,
    #[schema(value_type = Object)]
    pub manifest: Value,
    pub installed_at: chrono::DateTime<chrono::Utc>,
}

fn package_out(p: plugin_package::Model) -> PackageOut {
    PackageOut {
        plugin_id: p.plugin_id,
        version: p.version,
        contract: p.contract,
        sha256: p.sha256,
        manifest: p.manifest,
        installed_at: p.installed_at,
    }
}

fn runtime(state: &AppState) -> Result<&Arc<Runtime>> {
    state
        .plugins
        .as_ref()
        .ok_or_else(|| Error::Internal("the plugin host is not running".to_owned()))
}

/// Installs a plugin version from its manifest (`plugin.toml` text) and
/// component bytes. The component must compile, be built for a supported
/// contract, and describe itself as the manifest's id and version.
/// Installing the same bytes again is a no-op.
pub async fn install(
    state: &AppState,
    manifest_text: &str,
    component: Vec<u8>,
) -> Result<PackageOut> {
    let manifest = Manifest::parse(manifest_text)?;
    let rt = runtime(state)?.clone();
    let (checked, bytes) = {
        let rt = rt.clone();
        let manifest = manifest.clone();
        tokio::task::spawn_blocking(move || {
            rt.check_component(&manifest, &component)
                .map(|l| (l, component))
        })
        .await
        .map_err(|e| Error::Internal(e.to_string()))??
    };
    let checked = Arc::new(checked);
    // The component must say it is what the manifest says.
    let env = Arc::new(CallEnv {
        db: state.db.clone(),
        ctx: RequestContext::system(Uuid::nil()),
        grants: Grants::default(),
        plugin_id: manifest.id.clone(),
        version: manifest.version.clone(),
        tenant_plugin_id: Uuid::nil(),
        config: "{}".to_owned(),
        http_timeout: rt.settings.http_timeout,
    });
    let described = sandbox::invoke(
        &rt.engine.engine,
        &checked,
        env,
        rt.settings.limits,
        Call::Describe,
    )
    .await;
    let described = match described.reply {
        Ok(Reply::Describe(text)) => serde_json::from_str::<Value>(&text).unwrap_or(Value::Null),
        Ok(_) => Value::Null,
        Err(f) => {
            return Err(Error::field(
                "component",
                "describe_failed",
                format!("the component's describe call failed: {f:?}"),
            ));
        }
    };
    for key in ["id", "version", "contract"] {
        let said = described.get(key).and_then(Value::as_str).unwrap_or("");
        let expected = match key {
            "id" => manifest.id.as_str(),
            "version" => manifest.version.as_str(),
            _ => manifest.contract.as_str(),
        };
        if said != expected {
            return Err(Error::field(
                format!("manifest.{key}"),
                "manifest_mismatch",
                format!("the manifest says `{expected}` but the component says `{said}`"),
            ));
        }
    }
    if let Some(existing) = plugin_package::Entity::find()
        .filter(plugin_package::Column::PluginId.eq(manifest.id.as_str()))
        .filter(plugin_package::Column::Version.eq(manifest.version.as_str()))
        .one(&state.db)
        .await?
    {
        if existing.sha256 == checked.sha256 {
            return Ok(package_out(existing));
        }
        return Err(Error::Conflict {
            code: "version_exists",
            message: format!(
                "{}@{} is installed with other contents; publish a new version",
                manifest.id, manifest.version
            ),
        });
    }
    let row = plugin_package::ActiveModel {
        id: Set(Uuid::now_v7()),
        plugin_id: Set(manifest.id.clone()),
        version: Set(manifest.version.clone()),
        contract: Set(manifest.contract.clone()),
        manifest: Set(serde_json::to_value(&manifest).map_err(|e| Error::Internal(e.to_string()))?),
        component: Set(bytes),
        sha256: Set(checked.sha256.clone()),
        installed_at: Set(crate::clock::now()),
    }
    .insert(&state.db)
    .await
    .map_err(|e| {
        if crate::db::is_unique_violation(&e) {
            Error::Conflict {
                code: "version_exists",
                message: format!("{}@{} is already installed", manifest.id, manifest.version),
            }
        } else {
            e.into()
        }
    })?;
    Ok(package_out(row))
}

/// Every installed package, newest version of each plugin first.
pub async fn packages(state: &AppState) -> Result<Vec<PackageOut>> {
    let rows = plugin_package::Entity::find()
        .select_only()
        .columns([
            plugin_package::Column::Id,
            plugin_package::Column::PluginId,
            plugin_package::Column::Version,
            plugin_package::Column::Contract,
            plugin_package::Column::Manifest,
            plugin_package::Column::Sha256,
            plugin_package::Column::InstalledAt,
        ])
        .order_by_asc(plugin_package::Column::PluginId)
        .into_tuple::<(
            Uuid,
            String,
            String,
            String,
            Value,
            String,
            chrono::DateTime<chrono::Utc>,
        )>()
        .all(&state.db)
        .await?;
    let mut out: Vec<PackageOut> = rows
        .into_iter()
        .map(
            |(_, plugin_id, version, contract, manifest, sha256, installed_at)| PackageOut {
                plugin_id,
                version,
                contract,
                sha256,
                manifest,
                installed_at,
            },
        )
        .collect();
    out.sort_by(|a, b| {
        a.plugin_id
            .cmp(&b.plugin_id)
            .then_with(|| version_order(&b.version).cmp(&version_order(&a.version)))
    });
    Ok(out)
}

/// A version's order key: `0.10.0` sorts after `0.9.0`.
pub fn version_order(v: &str) -> Vec<u64> {
    v.split('.').map(|p| p.parse().unwrap_or(0)).collect()
}

/// Removes an installed version no tenant uses.
pub async fn remove(state: &AppState, plugin_id: &str, version: &str) -> Result<()> {
    let in_use = tenant_plugin::Entity::find()
        .filter(tenant_plugin::Column::PluginId.eq(plugin_id))
        .filter(tenant_plugin::Column::Version.eq(version))
        .filter(tenant_plugin::Column::Enabled.eq(true))
        .count(&state.db)
        .await?;
    if in_use > 0 {
        return Err(Error::Conflict {
            code: "plugin_in_use",
            message: format!("{in_use} tenant(s) have {plugin_id}@{version} enabled"),
        });
    }
    let gone = plugin_package::Entity::delete_many()
        .filter(plugin_package::Column::PluginId.eq(plugin_id))
        .filter(plugin_package::Column::Version.eq(version))
        .exec(&state.db)
        .await?;
    if gone.rows_affected == 0 {
        return Err(Error::NotFound("plugin"));
    }
    Ok(())
}

/// Enabling (or reconfiguring, or upgrading) a plugin for a tenant.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnableRequest {
    /// The version to run; default the newest installed.
    pub version: Option<String>,
    /// Capabilities granted, each one the manifest asks for.
    pub grants: Vec<String>,
    /// Configuration, checked against the manifest's schema.
    #[schema(value_type = Object)]
    pub config: Option<Value>,
    /// Overrides of `deadline_ms`, `memory_mb`, `host_calls` (capped by the
    /// kernel's maximums).
    #[schema(value_type = Object)]
    pub limits: Option<Value>,
}

/// A plugin as a tenant sees it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TenantPluginOut {
    pub plugin_id: String,
    pub version: String,
    pub enabled: bool,
    pub grants: Vec<String>,
    /// What the manifest asks for (the admin grants from these).
    pub requested: Vec<String>,
    #[schema(value_type = Object)]
    pub config: Value,
    pub consecutive_failures: i32,
    pub disabled_reason: Option<String>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

async fn tenant_out(state: &AppState, row: tenant_plugin::Model) -> Result<TenantPluginOut> {
    let requested = match runtime(state)?.load(&row.plugin_id, &row.version).await {
        Ok(l) => l.manifest.capabilities(),
        Err(_) => Vec::new(),
    };
    Ok(TenantPluginOut {
        plugin_id: row.plugin_id,
        version: row.version,
        enabled: row.enabled,
        grants: serde_json::from_value(row.grants).unwrap_or_default(),
        requested,
        config: secrets::masked(&row.config),
        consecutive_failures: row.consecutive_failures,
        disabled_reason: row.disabled_reason,
        updated_at: row.updated_at,
    })
}

/// Checks `config` against the manifest's JSON Schema.
fn check_config(manifest: &Manifest, config: &Value) -> Result<()> {
    let Some(schema) = &manifest.config_schema else {
        return Ok(());
    };
    let validator = jsonschema::validator_for(schema)
        .map_err(|e| Error::Internal(format!("the plugin's schema: {e}")))?;
    let errors: Vec<FieldError> = validator
        .iter_errors(config)
        .map(|e| {
            let path = e.instance_path().to_string();
            FieldError::new(
                format!("config{}", path.replace('/', ".")),
                "invalid_value",
                e.to_string(),
            )
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::Validation(errors))
    }
}

/// Enables a plugin for the caller's tenant (or changes its version,
/// grants, configuration or limits), declares its custom fields, queues its
/// schedules and runs its `install` export for a version new to the tenant.
pub async fn enable(
    state: &AppState,
    ctx: &RequestContext,
    plugin_id: &str,
    req: EnableRequest,
) -> Result<TenantPluginOut> {
    ctx.require(ObjectType::Plugin, Action::ManageSettings)?;
    let rt = runtime(state)?.clone();
    let version = match req.version {
        Some(v) => v,
        None => packages(state)
            .await?
            .into_iter()
            .find(|p| p.plugin_id == plugin_id)
            .map(|p| p.version)
            .ok_or(Error::NotFound("plugin"))?,
    };
    let loaded = rt.load(plugin_id, &version).await?;
    let manifest = &loaded.manifest;
    grants::check(manifest, &req.grants)?;
    // Secrets the admin did not send again keep their stored (sealed) value.
    let stored = tenant_plugin::Entity::find()
        .filter(tenant_plugin::Column::TenantId.eq(ctx.tenant_id))
        .filter(tenant_plugin::Column::PluginId.eq(plugin_id))
        .one(&state.db)
        .await?
        .map(|e| e.config);
    let mut config = req.config.unwrap_or_else(|| json!({}));
    let schema = manifest.config_schema.as_ref();
    secrets::carry_over(schema, &mut config, stored.as_ref());
    check_config(manifest, &secrets::masked(&config))?;
    secrets::seal(
        rt.keyring(),
        &state.db,
        (ctx.tenant_id, plugin_id),
        schema,
        &mut config,
    )
    .await?;
    let limits = req.limits.unwrap_or_else(|| json!({}));
    if !limits.is_object() {
        return Err(Error::field("limits", "invalid_type", "expected an object"));
    }
    // Plugin-declared custom objects: created, or given the fields a newer
    // version adds (existing fields keep their type).
    for o in &manifest.custom_objects {
        let system = RequestContext::system(ctx.tenant_id);
        crate::crm::objects::put_object(
            &state.db,
            &system,
            &o.key,
            crate::crm::objects::ObjectInput {
                label: o.label.clone(),
                plural_label: o.plural_label.clone(),
                fields: o.fields.clone(),
            },
        )
        .await?;
    }
    // Plugin-declared fields, created once; an existing field of the same
    // key is left as the tenant has it.
    for decl in &manifest.custom_fields {
        let exists =
            crate::crm::custom_fields::definitions(&state.db, ctx.tenant_id, decl.object_type)
                .await?
                .iter()
                .any(|d| d.key == decl.key);
        if !exists {
            let system = RequestContext::system(ctx.tenant_id);
            crate::crm::field_definitions::create(&state.db, &system, decl.clone()).await?;
        }
    }
    // The plan's plugin limit, counted under a per-tenant lock in the same
    // transaction as the write, so two processes cannot both take the last
    // slot.
    let tx = crate::db::tenant_tx(&state.db, ctx).await?;
    crate::db::lock_scope(&tx, ctx.tenant_id, "plugins").await?;
    let existing = tenant_plugin::Entity::find()
        .filter(tenant_plugin::Column::TenantId.eq(ctx.tenant_id))
        .filter(tenant_plugin::Column::PluginId.eq(plugin_id))
        .one(&tx)
        .await?;
    if !existing.as_ref().is_some_and(|e| e.enabled) {
        let tenant = crate::crm::tenants::cached(state, ctx.tenant_id).await?;
        let max = crate::tenancy::plans::Plan::parse(&tenant.plan)
            .map(crate::tenancy::plans::Plan::limits)
            .unwrap_or_default()
            .plugins;
        if let Some(max) = max {
            let enabled = tenant_plugin::Entity::find()
                .filter(tenant_plugin::Column::TenantId.eq(ctx.tenant_id))
                .filter(tenant_plugin::Column::Enabled.eq(true))
                .count(&tx)
                .await?;
            if enabled as i64 >= max {
                return Err(Error::PlanLimit {
                    limit: "plugins",
                    max,
                });
            }
        }
    }
    let now = crate::clock::now();
    let before = existing.as_ref().map(|e| {
        json!({"version": e.version, "enabled": e.enabled, "grants": e.grants, "config": secrets::masked(&e.config)})
    });
    let previous_install = existing.as_ref().and_then(|e| e.installed_version.clone());
    let row = match existing {
        Some(e) => {
            let mut a: tenant_plugin::ActiveModel = e.into();
            a.version = Set(version.clone());
            a.enabled = Set(true);
            a.grants = Set(json!(req.grants));
            a.config = Set(config.clone());
            a.limits = Set(limits);
            a.consecutive_failures = Set(0);
            a.disabled_reason = Set(None);
            a.updated_at = Set(now);
            a.update(&tx).await?
        }
        None => {
            tenant_plugin::ActiveModel {
                id: Set(Uuid::now_v7()),
                tenant_id: Set(ctx.tenant_id),
                plugin_id: Set(plugin_id.to_owned()),
                version: Set(version.clone()),
                enabled: Set(true),
                grants: Set(json!(req.grants)),
                config: Set(config.clone()),
                limits: Set(limits),
                installed_version: Set(None),
                consecutive_failures: Set(0),
                disabled_reason: Set(None),
                updated_at: Set(now),
            }
            .insert(&tx)
            .await?
        }
    };
    tx.commit().await?;
    rt.invalidate(ctx.tenant_id);
    if previous_install.as_deref() != Some(version.as_str()) {
        let active = rt
            .enabled(ctx.tenant_id)
            .await?
            .iter()
            .find(|a| a.row.id == row.id)
            .cloned()
            .ok_or_else(|| Error::Internal("the plugin did not load".to_owned()))?;
        let outcome = rt.invoke(&active, Call::Install(previous_install), 0).await;
        let failed = match outcome {
            Ok(Reply::Done(Ok(()))) => None,
            Ok(Reply::Done(Err(m))) => Some(m),
            Ok(other) => Some(format!("unexpected answer {other:?}")),
            Err(e) => Some(e.to_string()),
        };
        if let Some(message) = failed {
            let mut a: tenant_plugin::ActiveModel = row.clone().into();
            a.enabled = Set(false);
            a.disabled_reason = Set(Some(format!("install failed: {message}")));
            a.update(&state.db).await?;
            rt.invalidate(ctx.tenant_id);
            return Err(Error::PluginFailed(format!(
                "installing {plugin_id}@{version} failed: {message}"
            )));
        }
        let mut a: tenant_plugin::ActiveModel = row.clone().into();
        a.installed_version = Set(Some(version.clone()));
        a.update(&state.db).await?;
    }
    queue_schedules(state, ctx.tenant_id, manifest).await?;
    audit::record(
        &state.db,
        ctx,
        vec![AuditEntry::new(
            ObjectType::Plugin,
            row.id,
            AuditAction::Configure,
            json!({"before": before, "after": {"version": version, "enabled": true, "grants": req.grants, "config": secrets::masked(&config)}}),
        )],
    )
    .await?;
    rt.invalidate(ctx.tenant_id);
    let fresh = tenant_plugin::Entity::find_by_id(row.id)
        .one(&state.db)
        .await?
        .ok_or(Error::NotFound("plugin"))?;
    tenant_out(state, fresh).await
}

/// Queues the first run of each schedule not already queued.
async fn queue_schedules(state: &AppState, tenant_id: Uuid, manifest: &Manifest) -> Result<()> {
    for s in &manifest.schedules {
        let queued = job::Entity::find()
            .filter(job::Column::TenantId.eq(tenant_id))
            .filter(job::Column::PluginId.eq(manifest.id.as_str()))
            .filter(job::Column::Name.eq(s.job.as_str()))
            .filter(job::Column::Status.is_in(["queued", "running"]))
            .one(&state.db)
            .await?;
        if queued.is_none() {
            crate::jobs::enqueue(
                &state.db,
                tenant_id,
                crate::jobs::Kind::PluginJob,
                Some(&manifest.id),
                &s.job,
                json!({"every_seconds": s.every_seconds}),
                crate::clock::now() + chrono::Duration::seconds(s.every_seconds as i64),
            )
            .await?;
        }
    }
    Ok(())
}

/// Disables a plugin for the caller's tenant (its data and settings stay).
pub async fn disable(
    state: &AppState,
    ctx: &RequestContext,
    plugin_id: &str,
) -> Result<TenantPluginOut> {
    ctx.require(ObjectType::Plugin, Action::ManageSettings)?;
    let row = tenant_plugin::Entity::find()
        .filter(tenant_plugin::Column::TenantId.eq(ctx.tenant_id))
        .filter(tenant_plugin::Column::PluginId.eq(plugin_id))
        .one(&state.db)
        .await?
        .ok_or(Error::NotFound("plugin"))?;
    let mut a: tenant_plugin::ActiveModel = row.clone().into();
    a.enabled = Set(false);
    a.disabled_reason = Set(Some("disabled by an administrator".to_owned()));
    a.updated_at = Set(crate::clock::now());
    let saved = a.update(&state.db).await?;
    audit::record(
        &state.db,
        ctx,
        vec![AuditEntry::new(
            ObjectType::Plugin,
            row.id,
            AuditAction::Configure,
            json!({"plugin": plugin_id, "enabled": false}),
        )],
    )
    .await?;
    runtime(state)?.invalidate(ctx.tenant_id);
    tenant_out(state, saved).await
}

/// The plugins of the caller's tenant.
pub async fn tenant_plugins(
    state: &AppState,
    ctx: &RequestContext,
) -> Result<Vec<TenantPluginOut>> {
    ctx.require(ObjectType::Plugin, Action::Read)?;
    let rows = tenant_plugin::Entity::find()
        .filter(tenant_plugin::Column::TenantId.eq(ctx.tenant_id))
        .order_by_asc(tenant_plugin::Column::PluginId)
        .all(&state.db)
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push(tenant_out(state, r).await?);
    }
    Ok(out)
}

/// One line of a plugin's log.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LogLine {
    pub at: chrono::DateTime<chrono::Utc>,
    pub version: String,
    pub level: String,
    pub message: String,
}

/// The newest `limit` lines a plugin logged for the caller's tenant.
pub async fn logs(
    state: &AppState,
    ctx: &RequestContext,
    plugin_id: &str,
    limit: u64,
) -> Result<Vec<LogLine>> {
    ctx.require(ObjectType::Plugin, Action::Read)?;
    let rows = plugin_log::Entity::find()
        .filter(plugin_log::Column::TenantId.eq(ctx.tenant_id))
        .filter(plugin_log::Column::PluginId.eq(plugin_id))
        .order_by_desc(plugin_log::Column::At)
        .order_by_desc(plugin_log::Column::Id)
        .limit(limit.clamp(1, 1000))
        .all(&state.db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| LogLine {
            at: r.at,
            version: r.version,
            level: r.level,
            message: r.message,
        })
        .collect())
}
