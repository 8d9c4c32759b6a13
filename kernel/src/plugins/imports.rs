//! The host functions a plugin imports. Each one counts against the call's
//! host-call cap, checks the grant it needs on every call, and reaches data
//! only through the kernel's services with the plugin's own context: tenant
//! scoping, field rules, validation and audit (the actor is the plugin) are
//! the API's. A refused call is audited.

use std::time::Duration;

use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use serde_json::Value;
use uuid::Uuid;

use crate::audit::{self, AuditAction, AuditEntry};
use crate::context::RequestContext;
use crate::crm::accounts::Accounts;
use crate::crm::activities::Activities;
use crate::crm::contacts::Contacts;
use crate::crm::deals::Deals;
use crate::crm::records;
use crate::entities::{event, plugin_kv};
use crate::error::Error;
use crate::permissions::ObjectType;
use crate::plugins::grants::Grants;
use crate::plugins::sandbox::trellis::plugin::{host, kv, log, records as wit_records, types};
use crate::plugins::sandbox::{HostError, HttpResponse, OutboundRequest, State, WitFieldError};

/// Largest key and value in the key-value store.
const MAX_KV_KEY: usize = 256;
const MAX_KV_VALUE: usize = 1 << 20;
/// Log lines kept per invocation, and their length.
const MAX_LOG_LINES: usize = 100;
const MAX_LOG_LINE: usize = 4096;

/// What the host calls of one invocation act with.
pub struct CallEnv {
    pub db: DatabaseConnection,
    /// The plugin's context: its tenant, actor kind `plugin`, and a policy
    /// built from its grants.
    pub ctx: RequestContext,
    pub grants: Grants,
    pub plugin_id: String,
    pub version: String,
    /// The tenant's plugin row, named by audit entries about the plugin.
    pub tenant_plugin_id: Uuid,
    /// The tenant's configuration of the plugin (JSON text).
    pub config: String,
    pub http_timeout: Duration,
}

type HostResult<T> = wasmtime::Result<Result<T, HostError>>;

impl CallEnv {
    /// Audits a refused host call and returns the error for the guest.
    pub(crate) async fn denied(&self, capability: &str, detail: String) -> HostError {
        let entry = AuditEntry::new(
            ObjectType::Plugin,
            self.tenant_plugin_id,
            AuditAction::Denied,
            serde_json::json!({"plugin": self.plugin_id, "capability": capability, "detail": detail}),
        );
        if let Err(e) = audit::record(&self.db, &self.ctx, vec![entry]).await {
            tracing::error!("auditing a plugin's refused call: {e}");
        }
        HostError::Denied(detail)
    }

    async fn require(&self, capability: &str) -> Result<(), HostError> {
        if self.grants.has(capability) {
            Ok(())
        } else {
            Err(self
                .denied(
                    capability,
                    format!("the plugin was not granted `{capability}`"),
                )
                .await)
        }
    }

    /// Maps a service error to what the guest sees (auditing refusals).
    pub(crate) async fn host_error(&self, what: &str, e: Error) -> HostError {
        match e {
            Error::Forbidden(m) => self.denied(what, m).await,
            Error::NotFound(m) => HostError::NotFound(format!("no such {m}")),
            Error::Validation(errors) => HostError::Invalid(
                errors
                    .into_iter()
                    .map(|f| WitFieldError {
                        field: f.field,
                        code: f.code,
                        message: f.message,
                    })
                    .collect(),
            ),
            Error::PlanLimit { .. } | Error::RateLimited { .. } => HostError::Limit(e.to_string()),
            other => HostError::Failed(other.to_string()),
        }
    }
}

fn record_type(name: &str) -> Result<ObjectType, HostError> {
    ObjectType::parse(name)
        .filter(|o| crate::plugins::manifest::RECORD_TYPES.contains(o))
        .ok_or_else(|| {
            HostError::Invalid(vec![WitFieldError {
                field: "object_type".to_owned(),
                code: "invalid_value".to_owned(),
                message: format!("`{name}`: use contact, account, deal or activity"),
            }])
        })
}

/// Whether a record type name is a custom object's key (not a built-in).
fn is_custom(name: &str) -> bool {
    ObjectType::parse(name).is_none()
}

/// Record calls on custom objects, through `crm::objects`.
mod custom {
    use super::{CallEnv, HostError, parse_id, parse_json};
    use crate::crm::objects::{self, RecordInput};

    fn input(v: serde_json::Value, field: &str) -> Result<RecordInput, HostError> {
        serde_json::from_value(v).map_err(|e| {
            HostError::Invalid(vec![super::WitFieldError {
                field: field.to_owned(),
                code: "invalid_value".to_owned(),
                message: e.to_string(),
            }])
        })
    }

    async fn map<T>(
        env: &CallEnv,
        key: &str,
        action: &str,
        r: crate::error::Result<T>,
    ) -> Result<T, HostError> {
        match r {
            Ok(v) => Ok(v),
            Err(e) => Err(env
                .host_error(&format!("records:custom_object:{action} ({key})"), e)
                .await),
        }
    }

    pub async fn get(env: &CallEnv, key: &str, id: &str) -> Result<String, HostError> {
        let id = parse_id(id)?;
        let r = objects::get(&env.db, &env.ctx, key, id).await;
        map(env, key, "read", r).await.map(|v| v.to_string())
    }

    pub async fn query(
        env: &CallEnv,
        key: &str,
        filter: &str,
        sort: &str,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<String, HostError> {
        let raw = super::list_query(filter, sort, limit, cursor);
        let r = objects::list(&env.db, &env.ctx, key, Some(&raw)).await;
        let page = map(env, key, "read", r).await?;
        serde_json::to_string(&page).map_err(|e| HostError::Failed(e.to_string()))
    }

    pub async fn create(env: &CallEnv, key: &str, fields: &str) -> Result<String, HostError> {
        let v = input(parse_json(fields, "fields")?, "fields")?;
        let r = objects::create(&env.db, &env.ctx, key, v).await;
        map(env, key, "create", r).await.map(|v| v.to_string())
    }

    pub async fn update(
        env: &CallEnv,
        key: &str,
        id: &str,
        patch: &str,
        version: i64,
    ) -> Result<String, HostError> {
        let id = parse_id(id)?;
        let v = input(parse_json(patch, "patch")?, "patch")?;
        let r = objects::update(&env.db, &env.ctx, key, id, v, version).await;
        map(env, key, "update", r).await.map(|v| v.to_string())
    }

    pub async fn delete(env: &CallEnv, key: &str, id: &str) -> Result<(), HostError> {
        let id = parse_id(id)?;
        let r = objects::delete(&env.db, &env.ctx, key, id).await;
        map(env, key, "delete", r).await
    }
}

/// A list query string from a plugin's query call.
fn list_query(filter: &str, sort: &str, limit: u32, cursor: Option<&str>) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for f in filter.lines().map(str::trim).filter(|f| !f.is_empty()) {
        q.append_pair("filter", f);
    }
    if !sort.is_empty() {
        q.append_pair("sort", sort);
    }
    q.append_pair("limit", &limit.clamp(1, 200).to_string());
    if let Some(c) = cursor {
        q.append_pair("cursor", c);
    }
    q.finish()
}

fn parse_id(id: &str) -> Result<Uuid, HostError> {
    Uuid::parse_str(id).map_err(|_| HostError::NotFound(format!("no record `{id}`")))
}

fn parse_json(text: &str, field: &str) -> Result<Value, HostError> {
    serde_json::from_str(text).map_err(|e| {
        HostError::Invalid(vec![WitFieldError {
            field: field.to_owned(),
            code: "invalid_json".to_owned(),
            message: e.to_string(),
        }])
    })
}

/// Runs `$body` with `$R` bound to the record type of `$object`.
macro_rules! with_record_type {
    ($object:expr, $R:ident => $body:expr) => {
        match $object {
            ObjectType::Contact => {
                type $R = Contacts;
                $body
            }
            ObjectType::Account => {
                type $R = Accounts;
                $body
            }
            ObjectType::Deal => {
                type $R = Deals;
                $body
            }
            _ => {
                type $R = Activities;
                $body
            }
        }
    };
}

async fn one_json<R: records::Record>(
    env: &CallEnv,
    m: R::Model,
    read: bool,
) -> crate::error::Result<String> {
    let v = records::reveal_many::<R>(&env.db, &env.ctx, std::slice::from_ref(&m), read)
        .await?
        .pop()
        .unwrap_or(Value::Null);
    Ok(v.to_string())
}

impl types::Host for State {}

impl wit_records::Host for State {
    async fn get(&mut self, object_type: String, id: String) -> HostResult<String> {
        self.count_call()?;
        let env = self.env.clone();
        if is_custom(&object_type) {
            return Ok(custom::get(&env, &object_type, &id).await);
        }
        let object = match record_type(&object_type) {
            Ok(o) => o,
            Err(e) => return Ok(Err(e)),
        };
        let id = match parse_id(&id) {
            Ok(i) => i,
            Err(e) => return Ok(Err(e)),
        };
        let got = with_record_type!(object, R => async {
            let m = records::get::<R>(&env.db, &env.ctx, id).await?;
            one_json::<R>(&env, m, true).await
        }
        .await);
        Ok(match got {
            Ok(s) => Ok(s),
            Err(e) => Err(env
                .host_error(&format!("records:{object_type}:read"), e)
                .await),
        })
    }

    async fn query(
        &mut self,
        object_type: String,
        filter: String,
        sort: String,
        limit: u32,
        cursor: Option<String>,
    ) -> HostResult<String> {
        self.count_call()?;
        let env = self.env.clone();
        if is_custom(&object_type) {
            return Ok(
                custom::query(&env, &object_type, &filter, &sort, limit, cursor.as_deref()).await,
            );
        }
        let object = match record_type(&object_type) {
            Ok(o) => o,
            Err(e) => return Ok(Err(e)),
        };
        let raw = list_query(&filter, &sort, limit, cursor.as_deref());
        let page =
            with_record_type!(object, R => records::list::<R>(&env.db, &env.ctx, Some(&raw)).await);
        Ok(match page {
            Ok(p) => serde_json::to_string(&p).map_err(|e| HostError::Failed(e.to_string())),
            Err(e) => Err(env
                .host_error(&format!("records:{object_type}:read"), e)
                .await),
        })
    }

    async fn create(&mut self, object_type: String, fields: String) -> HostResult<String> {
        self.count_call()?;
        let env = self.env.clone();
        if is_custom(&object_type) {
            return Ok(custom::create(&env, &object_type, &fields).await);
        }
        let object = match record_type(&object_type) {
            Ok(o) => o,
            Err(e) => return Ok(Err(e)),
        };
        let value = match parse_json(&fields, "fields") {
            Ok(v) => v,
            Err(e) => return Ok(Err(e)),
        };
        let made = with_record_type!(object, R => async {
            let input = records::from_json::<<R as records::Record>::Input>(value)?;
            let m = records::create::<R>(&env.db, &env.ctx, input).await?;
            one_json::<R>(&env, m, false).await
        }
        .await);
        Ok(match made {
            Ok(s) => Ok(s),
            Err(e) => Err(env
                .host_error(&format!("records:{object_type}:create"), e)
                .await),
        })
    }

    async fn update(
        &mut self,
        object_type: String,
        id: String,
        patch: String,
        version: i64,
    ) -> HostResult<String> {
        self.count_call()?;
        let env = self.env.clone();
        if is_custom(&object_type) {
            return Ok(custom::update(&env, &object_type, &id, &patch, version).await);
        }
        let object = match record_type(&object_type) {
            Ok(o) => o,
            Err(e) => return Ok(Err(e)),
        };
        let (id, patch) = match (parse_id(&id), parse_json(&patch, "patch")) {
            (Ok(i), Ok(p)) => (i, p),
            (Err(e), _) | (_, Err(e)) => return Ok(Err(e)),
        };
        let done = with_record_type!(object, R => async {
            let m = records::update::<R>(&env.db, &env.ctx, id, patch, version, false).await?;
            one_json::<R>(&env, m, false).await
        }
        .await);
        Ok(match done {
            Ok(s) => Ok(s),
            Err(e) => Err(env
                .host_error(&format!("records:{object_type}:update"), e)
                .await),
        })
    }

    async fn delete(&mut self, object_type: String, id: String) -> HostResult<()> {
        self.count_call()?;
        let env = self.env.clone();
        if is_custom(&object_type) {
            return Ok(custom::delete(&env, &object_type, &id).await);
        }
        let object = match record_type(&object_type) {
            Ok(o) => o,
            Err(e) => return Ok(Err(e)),
        };
        let id = match parse_id(&id) {
            Ok(i) => i,
            Err(e) => return Ok(Err(e)),
        };
        let done =
            with_record_type!(object, R => records::delete::<R>(&env.db, &env.ctx, id, None).await);
        Ok(match done {
            Ok(()) => Ok(()),
            Err(e) => Err(env
                .host_error(&format!("records:{object_type}:delete"), e)
                .await),
        })
    }
}

impl kv::Host for State {
    async fn get(&mut self, key: String) -> HostResult<Option<Vec<u8>>> {
        self.count_call()?;
        let env = self.env.clone();
        if let Err(e) = env.require("kv").await {
            return Ok(Err(e));
        }
        let row = plugin_kv::Entity::find()
            .filter(plugin_kv::Column::TenantId.eq(env.ctx.tenant_id))
            .filter(plugin_kv::Column::PluginId.eq(env.plugin_id.as_str()))
            .filter(plugin_kv::Column::Key.eq(key.as_str()))
            .one(&env.db)
            .await;
        Ok(row
            .map(|r| r.map(|r| r.value))
            .map_err(|e| HostError::Failed(e.to_string())))
    }

    async fn set(&mut self, key: String, value: Vec<u8>) -> HostResult<()> {
        self.count_call()?;
        let env = self.env.clone();
        if let Err(e) = env.require("kv").await {
            return Ok(Err(e));
        }
        if key.is_empty() || key.len() > MAX_KV_KEY || value.len() > MAX_KV_VALUE {
            return Ok(Err(HostError::Limit(format!(
                "keys are 1-{MAX_KV_KEY} bytes and values at most {MAX_KV_VALUE} bytes"
            ))));
        }
        let row = plugin_kv::ActiveModel {
            id: Set(Uuid::now_v7()),
            tenant_id: Set(env.ctx.tenant_id),
            plugin_id: Set(env.plugin_id.clone()),
            key: Set(key),
            value: Set(value),
            updated_at: Set(crate::clock::now()),
        };
        let done = plugin_kv::Entity::insert(row)
            .on_conflict(
                OnConflict::columns([
                    plugin_kv::Column::TenantId,
                    plugin_kv::Column::PluginId,
                    plugin_kv::Column::Key,
                ])
                .update_columns([plugin_kv::Column::Value, plugin_kv::Column::UpdatedAt])
                .to_owned(),
            )
            .exec_without_returning(&env.db)
            .await;
        Ok(done
            .map(|_| ())
            .map_err(|e| HostError::Failed(e.to_string())))
    }

    async fn delete(&mut self, key: String) -> HostResult<()> {
        self.count_call()?;
        let env = self.env.clone();
        if let Err(e) = env.require("kv").await {
            return Ok(Err(e));
        }
        let done = plugin_kv::Entity::delete_many()
            .filter(plugin_kv::Column::TenantId.eq(env.ctx.tenant_id))
            .filter(plugin_kv::Column::PluginId.eq(env.plugin_id.as_str()))
            .filter(plugin_kv::Column::Key.eq(key.as_str()))
            .exec(&env.db)
            .await;
        Ok(done
            .map(|_| ())
            .map_err(|e| HostError::Failed(e.to_string())))
    }

    async fn list_keys(&mut self, prefix: String, limit: u32) -> HostResult<Vec<String>> {
        self.count_call()?;
        let env = self.env.clone();
        if let Err(e) = env.require("kv").await {
            return Ok(Err(e));
        }
        let keys = plugin_kv::Entity::find()
            .select_only()
            .column(plugin_kv::Column::Key)
            .filter(plugin_kv::Column::TenantId.eq(env.ctx.tenant_id))
            .filter(plugin_kv::Column::PluginId.eq(env.plugin_id.as_str()))
            .filter(plugin_kv::Column::Key.starts_with(prefix.as_str()))
            .order_by_asc(plugin_kv::Column::Key)
            .limit(u64::from(limit.clamp(1, 1000)))
            .into_tuple::<String>()
            .all(&env.db)
            .await;
        Ok(keys.map_err(|e| HostError::Failed(e.to_string())))
    }
}

impl log::Host for State {
    async fn write(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        self.count_call()?;
        if self.logs.len() < MAX_LOG_LINES {
            let level = match level {
                log::Level::Debug => "debug",
                log::Level::Info => "info",
                log::Level::Warn => "warn",
                log::Level::Error => "error",
            };
            let mut message = message;
            if message.len() > MAX_LOG_LINE {
                let mut cut = MAX_LOG_LINE;
                while !message.is_char_boundary(cut) {
                    cut -= 1;
                }
                message.truncate(cut);
            }
            self.logs.push((level.to_owned(), message));
        }
        Ok(())
    }
}

impl host::Host for State {
    async fn now_ms(&mut self) -> wasmtime::Result<i64> {
        self.count_call()?;
        Ok(crate::clock::now().timestamp_millis())
    }

    async fn random_bytes(&mut self, n: u32) -> wasmtime::Result<Vec<u8>> {
        self.count_call()?;
        let mut out = vec![0u8; n.min(4096) as usize];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut out);
        Ok(out)
    }

    async fn config(&mut self) -> wasmtime::Result<String> {
        self.count_call()?;
        Ok(self.env.config.clone())
    }

    async fn tenant_id(&mut self) -> wasmtime::Result<String> {
        self.count_call()?;
        Ok(self.env.ctx.tenant_id.to_string())
    }

    async fn http_fetch(&mut self, request: OutboundRequest) -> HostResult<HttpResponse> {
        self.count_call()?;
        let env = self.env.clone();
        Ok(crate::plugins::outbound::fetch(&env, request).await)
    }

    async fn send_email(&mut self, to: String, subject: String, body: String) -> HostResult<()> {
        self.count_call()?;
        let env = self.env.clone();
        if let Err(e) = env.require("email").await {
            return Ok(Err(e));
        }
        if !to.contains('@') || to.len() > 320 || to.contains(['\r', '\n']) {
            return Ok(Err(HostError::Invalid(vec![WitFieldError {
                field: "to".to_owned(),
                code: "invalid_format".to_owned(),
                message: "not an email address".to_owned(),
            }])));
        }
        let queued =
            crate::directory::users::send(&env.db, env.ctx.tenant_id, &to, &subject, &body).await;
        Ok(queued.map_err(|e| HostError::Failed(e.to_string())))
    }

    async fn enqueue_job(
        &mut self,
        name: String,
        payload: String,
        delay_ms: u64,
    ) -> HostResult<String> {
        self.count_call()?;
        let env = self.env.clone();
        if let Err(e) = env.require("jobs").await {
            return Ok(Err(e));
        }
        let payload = match parse_json(&payload, "payload") {
            Ok(v) => v,
            Err(e) => return Ok(Err(e)),
        };
        let delay = chrono::Duration::milliseconds(delay_ms.min(30 * 86_400_000) as i64);
        let queued = crate::jobs::enqueue(
            &env.db,
            env.ctx.tenant_id,
            crate::jobs::Kind::PluginJob,
            Some(&env.plugin_id),
            &name,
            payload,
            crate::clock::now() + delay,
        )
        .await;
        Ok(queued
            .map(|id| id.to_string())
            .map_err(|e| HostError::Failed(e.to_string())))
    }

    async fn emit_event(&mut self, name: String, payload: String) -> HostResult<()> {
        self.count_call()?;
        let env = self.env.clone();
        if let Err(e) = env.require("events").await {
            return Ok(Err(e));
        }
        let payload = match parse_json(&payload, "payload") {
            Ok(v) => v,
            Err(e) => return Ok(Err(e)),
        };
        let row = event::ActiveModel {
            id: Set(Uuid::now_v7()),
            tenant_id: Set(env.ctx.tenant_id),
            source: Set(format!("plugin:{}", env.plugin_id)),
            name: Set(format!("{}.{name}", env.plugin_id)),
            payload: Set(payload),
            at: Set(crate::clock::now()),
        };
        Ok(row
            .insert(&env.db)
            .await
            .map(|_| ())
            .map_err(|e| HostError::Failed(e.to_string())))
    }
}
