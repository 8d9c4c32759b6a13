//! The plugin host of a kernel process: which plugins each tenant enabled
//! (read from the database, cached briefly, so every process sees the same
//! installs and grants), their prepared components, and invocation with
//! error recording and the circuit breaker.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    Set,
};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::audit::{self, AuditAction, AuditEntry};
use crate::cache::TtlCache;
use crate::context::{ActorKind, RequestContext};
use crate::entities::{plugin_log, plugin_package, tenant_plugin, user};
use crate::error::{Error, Result};
use crate::keys::Keyring;
use crate::permissions::{ObjectType, Policy};
use crate::plugins::engine::PluginEngine;
use crate::plugins::grants::Grants;
use crate::plugins::imports::CallEnv;
use crate::plugins::manifest::Manifest;
use crate::plugins::sandbox::{self, Call, Failure, Limits, Loaded, PluginError, Reply, State};
use crate::plugins::secrets;

/// Settings of the plugin host.
#[derive(Debug, Clone)]
pub struct HostSettings {
    pub cache_dir: Option<std::path::PathBuf>,
    pub pooling: bool,
    /// Defaults for every invocation (a manifest may ask for less, or for
    /// more up to the maximums below).
    pub limits: Limits,
    pub max_deadline: Duration,
    pub max_memory_bytes: usize,
    /// Consecutive failures after which a plugin is disabled for a tenant.
    pub breaker_threshold: i32,
    pub http_timeout: Duration,
    /// How long the list of a tenant's enabled plugins is trusted.
    pub cache_ttl: Duration,
}

/// A plugin enabled for a tenant, ready to call.
#[derive(Debug)]
pub struct Active {
    pub row: tenant_plugin::Model,
    pub loaded: Arc<Loaded>,
    pub grants: Grants,
    pub policy: Arc<Policy>,
    pub limits: Limits,
    /// The tenant's plan limits and stored bytes at load: a plugin's writes
    /// count against the plan like anyone's.
    pub plan: crate::tenancy::plans::Limits,
    pub storage_used: i64,
}

impl Active {
    pub fn manifest(&self) -> &Manifest {
        &self.loaded.manifest
    }
}

/// The plugin host.
pub struct Runtime {
    pub engine: Arc<PluginEngine>,
    linker: wasmtime::component::Linker<State>,
    db: DatabaseConnection,
    keyring: Arc<Keyring>,
    pub settings: HostSettings,
    loaded: Mutex<HashMap<(String, String), Arc<Loaded>>>,
    enabled: TtlCache<Uuid, Arc<Vec<Arc<Active>>>>,
    /// Wakes the job runner when work was queued.
    pub work: Notify,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("engine", &self.engine)
            .finish()
    }
}

impl Runtime {
    /// The master keys (plugin configuration secrets are sealed with them).
    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    pub fn new(
        db: DatabaseConnection,
        keyring: Arc<Keyring>,
        settings: HostSettings,
    ) -> Result<Arc<Runtime>> {
        let engine = PluginEngine::new(settings.cache_dir.clone(), settings.pooling)?;
        let linker = sandbox::linker(&engine.engine)
            .map_err(|e| Error::Internal(format!("plugin linker: {e}")))?;
        Ok(Arc::new(Runtime {
            engine,
            linker,
            db,
            keyring,
            enabled: TtlCache::new(settings.cache_ttl),
            settings,
            loaded: Mutex::new(HashMap::new()),
            work: Notify::new(),
        }))
    }

    /// Compiles (or loads from the cache) and checks a component against
    /// its manifest, without keeping it: what an install does first.
    pub fn check_component(&self, manifest: &Manifest, bytes: &[u8]) -> Result<Loaded> {
        let component = self.engine.component(bytes)?;
        let sha = crate::plugins::engine::hex(&sha2::Digest::finalize(
            <sha2::Sha256 as sha2::Digest>::new_with_prefix(bytes),
        ));
        sandbox::prepare(&self.linker, &component, manifest.clone(), sha)
            .map_err(|m| Error::field("component", "unsupported_contract", m))
    }

    /// A plugin version ready to instantiate (compiled once per process).
    pub async fn load(&self, plugin_id: &str, version: &str) -> Result<Arc<Loaded>> {
        self.load_on(&self.db, plugin_id, version).await
    }

    async fn load_on<C: ConnectionTrait>(
        &self,
        db: &C,
        plugin_id: &str,
        version: &str,
    ) -> Result<Arc<Loaded>> {
        let key = (plugin_id.to_owned(), version.to_owned());
        if let Some(l) = self.loaded.lock().ok().and_then(|m| m.get(&key).cloned()) {
            return Ok(l);
        }
        let pkg = plugin_package::Entity::find()
            .filter(plugin_package::Column::PluginId.eq(plugin_id))
            .filter(plugin_package::Column::Version.eq(version))
            .one(db)
            .await?
            .ok_or(Error::NotFound("plugin"))?;
        let manifest: Manifest = serde_json::from_value(pkg.manifest)
            .map_err(|e| Error::Internal(format!("stored manifest: {e}")))?;
        let bytes = pkg.component;
        let engine = self.engine.clone();
        let linker = self.linker.clone();
        // Compiling is CPU work of up to a second: off the async workers.
        let loaded = tokio::task::spawn_blocking(move || -> Result<Loaded> {
            let component = engine.component(&bytes)?;
            sandbox::prepare(&linker, &component, manifest, pkg.sha256)
                .map_err(|m| Error::field("component", "unsupported_contract", m))
        })
        .await
        .map_err(|e| Error::Internal(e.to_string()))??;
        let loaded = Arc::new(loaded);
        if let Ok(mut m) = self.loaded.lock() {
            m.insert(key, loaded.clone());
        }
        Ok(loaded)
    }

    /// The plugins enabled for a tenant.
    pub async fn enabled(&self, tenant_id: Uuid) -> Result<Arc<Vec<Arc<Active>>>> {
        self.enabled_on(&self.db, tenant_id).await
    }

    /// The plugins enabled for a tenant, read (when not cached) through
    /// `db`: inside a write, its transaction, so a write never waits for a
    /// second pooled connection while holding one.
    pub async fn enabled_on<C: ConnectionTrait>(
        &self,
        db: &C,
        tenant_id: Uuid,
    ) -> Result<Arc<Vec<Arc<Active>>>> {
        if let Some(list) = self.enabled.get(&tenant_id) {
            return Ok(list);
        }
        let rows = tenant_plugin::Entity::find()
            .filter(tenant_plugin::Column::TenantId.eq(tenant_id))
            .filter(tenant_plugin::Column::Enabled.eq(true))
            .all(db)
            .await?;
        let tenant = if rows.is_empty() {
            None
        } else {
            crate::entities::tenant::Entity::find_by_id(tenant_id)
                .one(db)
                .await?
        };
        let plan = tenant
            .as_ref()
            .and_then(|t| crate::tenancy::plans::Plan::parse(&t.plan))
            .map(crate::tenancy::plans::Plan::limits)
            .unwrap_or_default();
        let storage_used = tenant.as_ref().map_or(0, |t| t.storage_bytes);
        let mut list = Vec::with_capacity(rows.len());
        for row in rows {
            match self.activate(db, row, plan, storage_used).await {
                Ok(a) => list.push(Arc::new(a)),
                // One broken package must not take the tenant's other
                // plugins (or its writes) down with it.
                Err(e) => tracing::error!("plugin of tenant {tenant_id} cannot load: {e}"),
            }
        }
        let list = Arc::new(list);
        self.enabled.insert(tenant_id, list.clone());
        Ok(list)
    }

    /// Forgets the cached plugin list of a tenant (after a change).
    pub fn invalidate(&self, tenant_id: Uuid) {
        self.enabled.remove(&tenant_id);
    }

    async fn activate<C: ConnectionTrait>(
        &self,
        db: &C,
        row: tenant_plugin::Model,
        plan: crate::tenancy::plans::Limits,
        storage_used: i64,
    ) -> Result<Active> {
        let loaded = self.load_on(db, &row.plugin_id, &row.version).await?;
        let granted: Vec<String> = serde_json::from_value(row.grants.clone()).unwrap_or_default();
        let grants = Grants::new(&granted);
        let manifest = &loaded.manifest;
        let mut custom = HashMap::new();
        if !manifest.capabilities.fields.is_empty() {
            for o in crate::plugins::manifest::RECORD_TYPES {
                let defs =
                    crate::crm::custom_fields::definitions(&self.db, row.tenant_id, *o).await?;
                custom.insert(*o, defs.into_iter().map(|d| d.key).collect());
            }
        }
        let policy = Arc::new(grants.policy(manifest, &custom));
        let limits = self.limits_for(manifest, &row.limits);
        Ok(Active {
            row,
            loaded,
            grants,
            policy,
            limits,
            plan,
            storage_used,
        })
    }

    /// The limits of a plugin: the host's defaults, what the manifest asks
    /// for, the tenant's overrides, each capped by the host's maximums.
    fn limits_for(&self, manifest: &Manifest, overrides: &serde_json::Value) -> Limits {
        let mut l = self.settings.limits;
        let asked = &manifest.limits;
        let ms = overrides
            .get("deadline_ms")
            .and_then(serde_json::Value::as_u64)
            .or(asked.deadline_ms);
        if let Some(ms) = ms {
            l.deadline = Duration::from_millis(ms).min(self.settings.max_deadline);
        }
        let mb = overrides
            .get("memory_mb")
            .and_then(serde_json::Value::as_u64)
            .or(asked.memory_mb);
        if let Some(mb) = mb {
            l.memory_bytes = ((mb as usize) << 20).min(self.settings.max_memory_bytes);
        }
        if let Some(n) = overrides
            .get("host_calls")
            .and_then(serde_json::Value::as_u64)
            .map(|n| n as u32)
            .or(asked.host_calls)
        {
            l.host_calls = Ord::min(n, 100_000);
        }
        l
    }

    /// The context a plugin's host calls run with.
    pub fn plugin_context(self: &Arc<Self>, active: &Active, depth: u8) -> RequestContext {
        let mut ctx = RequestContext::system(active.row.tenant_id);
        ctx.actor_kind = ActorKind::Plugin;
        ctx.actor_id = Some(active.row.id);
        ctx.roles = Vec::new();
        ctx.policy = active.policy.clone();
        ctx.request_id = Some(format!(
            "plugin:{}@{}",
            active.row.plugin_id, active.row.version
        ));
        ctx.limits = active.plan;
        ctx.storage_used = active.storage_used;
        ctx.keyring = Some(self.keyring.clone());
        ctx.plugins = Some(self.clone());
        ctx.plugin_depth = depth;
        ctx
    }

    /// Calls `call` on an enabled plugin, keeps what it logged, and records
    /// a failure (tripping the breaker after too many in a row).
    pub async fn invoke(
        self: &Arc<Self>,
        active: &Arc<Active>,
        call: Call,
        depth: u8,
    ) -> std::result::Result<Reply, PluginError> {
        self.invoke_with(active, call, depth, false).await
    }

    /// Like [`Runtime::invoke`], from inside a write's transaction: the log
    /// lines and the failure count are written by a task of their own once
    /// the database lets them (on SQLite the write holds the lock until it
    /// ends), never holding the write up.
    pub async fn invoke_in_write(
        self: &Arc<Self>,
        active: &Arc<Active>,
        call: Call,
        depth: u8,
    ) -> std::result::Result<Reply, PluginError> {
        self.invoke_with(active, call, depth, true).await
    }

    async fn invoke_with(
        self: &Arc<Self>,
        active: &Arc<Active>,
        call: Call,
        depth: u8,
        detach: bool,
    ) -> std::result::Result<Reply, PluginError> {
        // Secrets open only here, for the plugin's own call. One that does
        // not open reaches the plugin masked (its call then fails visibly).
        let tenant_id = active.row.tenant_id;
        let config = match secrets::reveal(
            &self.keyring,
            &self.db,
            (tenant_id, &active.row.plugin_id),
            &active.row.config,
        )
        .await
        {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(plugin = %active.row.plugin_id, %tenant_id, "plugin configuration secrets: {e}");
                secrets::masked(&active.row.config)
            }
        };
        let env = Arc::new(CallEnv {
            db: self.db.clone(),
            ctx: self.plugin_context(active, depth + 1),
            grants: active.grants.clone(),
            plugin_id: active.row.plugin_id.clone(),
            version: active.row.version.clone(),
            tenant_plugin_id: active.row.id,
            config: config.to_string(),
            http_timeout: self.settings.http_timeout,
        });
        let outcome = sandbox::invoke(
            &self.engine.engine,
            &active.loaded,
            env,
            active.limits,
            call,
        )
        .await;
        let mut logs = outcome.logs;
        let result = outcome.reply.map_err(|failure| PluginError {
            plugin: active.row.plugin_id.clone(),
            version: active.row.version.clone(),
            failure,
        });
        let failure = match &result {
            Err(e) => Some(e.clone()),
            Ok(Reply::Done(Err(message))) => Some(PluginError {
                plugin: active.row.plugin_id.clone(),
                version: active.row.version.clone(),
                failure: Failure::Trap(message.clone()),
            }),
            Ok(_) => None,
        };
        if let Some(e) = &failure {
            logs.push(("error".to_owned(), e.to_string()));
        }
        let rt = self.clone();
        let active = active.clone();
        let bookkeeping = async move {
            rt.keep_logs(&active, logs).await;
            match failure {
                Some(e) => rt.failed(&active, &e).await,
                None => rt.succeeded(&active).await,
            }
        };
        if detach {
            tokio::spawn(bookkeeping);
        } else {
            bookkeeping.await;
        }
        result
    }

    async fn keep_logs(&self, active: &Active, logs: Vec<(String, String)>) {
        if logs.is_empty() {
            return;
        }
        let now = crate::clock::now();
        let rows = logs
            .into_iter()
            .map(|(level, message)| plugin_log::ActiveModel {
                id: Set(Uuid::now_v7()),
                tenant_id: Set(active.row.tenant_id),
                plugin_id: Set(active.row.plugin_id.clone()),
                version: Set(active.row.version.clone()),
                level: Set(level),
                message: Set(message),
                at: Set(now),
            });
        if let Err(e) = plugin_log::Entity::insert_many(rows)
            .exec_without_returning(&self.db)
            .await
        {
            tracing::error!("keeping a plugin's log: {e}");
        }
    }

    async fn succeeded(&self, active: &Active) {
        // Only a plugin with failures on record costs a write.
        if active.row.consecutive_failures == 0 {
            return;
        }
        let reset = tenant_plugin::Entity::update_many()
            .col_expr(tenant_plugin::Column::ConsecutiveFailures, Expr::value(0))
            .filter(tenant_plugin::Column::Id.eq(active.row.id))
            .exec(&self.db)
            .await;
        if let Err(e) = reset {
            tracing::error!("resetting a plugin's failures: {e}");
        }
        self.invalidate(active.row.tenant_id);
    }

    /// Counts a failure in the database (so every process counts the same)
    /// and disables the plugin for the tenant at the threshold, telling the
    /// tenant's admins.
    async fn failed(&self, active: &Active, e: &PluginError) {
        tracing::warn!(tenant = %active.row.tenant_id, "{e}");
        if let Err(err) = self.count_failure(active, e).await {
            tracing::error!("recording a plugin failure: {err}");
        }
    }

    async fn count_failure(&self, active: &Active, e: &PluginError) -> Result<()> {
        tenant_plugin::Entity::update_many()
            .col_expr(
                tenant_plugin::Column::ConsecutiveFailures,
                Expr::col(tenant_plugin::Column::ConsecutiveFailures).add(1),
            )
            .filter(tenant_plugin::Column::Id.eq(active.row.id))
            .exec(&self.db)
            .await?;
        let row = tenant_plugin::Entity::find_by_id(active.row.id)
            .one(&self.db)
            .await?
            .ok_or(Error::NotFound("plugin"))?;
        self.invalidate(active.row.tenant_id);
        if row.consecutive_failures < self.settings.breaker_threshold || !row.enabled {
            return Ok(());
        }
        let reason = format!(
            "disabled after {} consecutive failures; the last: {e}",
            row.consecutive_failures
        );
        let mut a: tenant_plugin::ActiveModel = row.clone().into();
        a.enabled = Set(false);
        a.disabled_reason = Set(Some(reason.clone()));
        a.updated_at = Set(crate::clock::now());
        a.update(&self.db).await?;
        let ctx = RequestContext::system(row.tenant_id);
        audit::record(
            &self.db,
            &ctx,
            vec![AuditEntry::new(
                ObjectType::Plugin,
                row.id,
                AuditAction::Configure,
                serde_json::json!({"plugin": row.plugin_id, "enabled": false, "reason": reason}),
            )],
        )
        .await?;
        // Every admin of the tenant hears of it (through the outbox).
        let admins = user::Entity::find()
            .filter(user::Column::TenantId.eq(row.tenant_id))
            .filter(user::Column::Status.eq("active"))
            .all(&self.db)
            .await?
            .into_iter()
            .filter(|u| {
                serde_json::from_value::<Vec<String>>(u.roles.clone())
                    .unwrap_or_default()
                    .iter()
                    .any(|r| r == "admin")
            });
        for admin in admins {
            crate::directory::users::send(
                &self.db,
                row.tenant_id,
                &admin.email,
                &format!("Plugin {} was disabled", row.plugin_id),
                &format!(
                    "The plugin {}@{} failed {} times in a row and was disabled for your \
                     organisation.\n\n{reason}\n\nAn administrator can enable it again once \
                     the cause is fixed.",
                    row.plugin_id, row.version, row.consecutive_failures
                ),
            )
            .await?;
        }
        Ok(())
    }
}
