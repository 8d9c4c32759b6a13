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
use crate::crm::records;
use crate::entities::{event, plugin_kv};
use crate::error::Error;
use crate::permissions::ObjectType;
use crate::plugins::contract::latest::trellis::plugin::{
    host, kv, log, records as wit_records, types,
};
use crate::plugins::grants::Grants;
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

    /// A service's result as the guest sees it; a refusal is audited under
    /// `what` (the capability the call exercised).
    pub(crate) async fn service<T>(
        &self,
        what: &str,
        r: crate::error::Result<T>,
    ) -> Result<T, HostError> {
        match r {
            Ok(v) => Ok(v),
            Err(e) => Err(self.host_error(what, e).await),
        }
    }

    /// Maps a service error to what the guest sees (auditing refusals).
    async fn host_error(&self, what: &str, e: Error) -> HostError {
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

    /// The capability a custom-object call exercises, for the audit trail.
    fn what(key: &str, action: &str) -> String {
        format!("records:custom_object:{action} ({key})")
    }

    fn input(v: serde_json::Value, field: &str) -> Result<RecordInput, HostError> {
        serde_json::from_value(v).map_err(|e| {
            HostError::Invalid(vec![super::WitFieldError {
                field: field.to_owned(),
                code: "invalid_value".to_owned(),
                message: e.to_string(),
            }])
        })
    }

    pub async fn get(env: &CallEnv, key: &str, id: &str) -> Result<String, HostError> {
        let id = parse_id(id)?;
        let r = objects::get(&env.db, &env.ctx, key, id).await;
        env.service(&what(key, "read"), r)
            .await
            .map(|v| v.to_string())
    }

    pub async fn query(env: &CallEnv, key: &str, raw: &str) -> Result<String, HostError> {
        let r = objects::list(&env.db, &env.ctx, key, Some(raw)).await;
        let page = env.service(&what(key, "read"), r).await?;
        serde_json::to_string(&page).map_err(|e| HostError::Failed(e.to_string()))
    }

    pub async fn create(env: &CallEnv, key: &str, fields: &str) -> Result<String, HostError> {
        let v = input(parse_json(fields, "fields")?, "fields")?;
        let r = objects::create(&env.db, &env.ctx, key, v).await;
        env.service(&what(key, "create"), r)
            .await
            .map(|v| v.to_string())
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
        env.service(&what(key, "update"), r)
            .await
            .map(|v| v.to_string())
    }

    pub async fn delete(env: &CallEnv, key: &str, id: &str) -> Result<(), HostError> {
        let id = parse_id(id)?;
        let r = objects::delete(&env.db, &env.ctx, key, id).await;
        env.service(&what(key, "delete"), r).await
    }
}

/// The filters of a plugin's query call, one `field:op:value` each. The
/// contract separates them with commas (newlines are accepted too), and an
/// `in` filter's values are comma-separated as well: a piece that does not
/// start with `field:op:` continues the value of the filter before it.
fn split_filters(filter: &str) -> Vec<String> {
    const OPS: [&str; 10] = [
        "eq",
        "ne",
        "lt",
        "lte",
        "gt",
        "gte",
        "contains",
        "starts_with",
        "in",
        "is_null",
    ];
    let starts_filter = |piece: &str| {
        let mut parts = piece.splitn(3, ':');
        let (Some(field), Some(op), Some(_)) = (parts.next(), parts.next(), parts.next()) else {
            return false;
        };
        let field = field.trim();
        !field.is_empty()
            && field
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
            && OPS.contains(&op)
    };
    let mut out: Vec<String> = Vec::new();
    for line in filter.lines() {
        let mut in_line = false;
        for piece in line.split(',') {
            match out.last_mut() {
                Some(last) if in_line && !starts_filter(piece) => {
                    last.push(',');
                    last.push_str(piece);
                }
                _ => {
                    out.push(piece.to_owned());
                    in_line = true;
                }
            }
        }
    }
    out.into_iter()
        .map(|f| f.trim().to_owned())
        .filter(|f| !f.is_empty())
        .collect()
}

/// A list query string from a plugin's query call.
fn list_query(filter: &str, sort: &str, limit: u32, cursor: Option<&str>) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for f in split_filters(filter) {
        q.append_pair("filter", &f);
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

impl From<sea_orm::DbErr> for HostError {
    fn from(e: sea_orm::DbErr) -> Self {
        HostError::Failed(e.to_string())
    }
}

// Each host function counts the call (a trap past the cap) and hands the
// work to a function of its own, whose refusals and failures reach the
// guest as its `host-error`.

impl wit_records::Host for State {
    async fn get(&mut self, object_type: String, id: String) -> HostResult<String> {
        self.count_call()?;
        Ok(record_get(&self.env.clone(), &object_type, &id).await)
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
        let raw = list_query(&filter, &sort, limit, cursor.as_deref());
        Ok(record_query(&self.env.clone(), &object_type, &raw).await)
    }

    async fn create(&mut self, object_type: String, fields: String) -> HostResult<String> {
        self.count_call()?;
        Ok(record_create(&self.env.clone(), &object_type, &fields).await)
    }

    async fn update(
        &mut self,
        object_type: String,
        id: String,
        patch: String,
        version: i64,
    ) -> HostResult<String> {
        self.count_call()?;
        Ok(record_update(&self.env.clone(), &object_type, &id, &patch, version).await)
    }

    async fn delete(&mut self, object_type: String, id: String) -> HostResult<()> {
        self.count_call()?;
        Ok(record_delete(&self.env.clone(), &object_type, &id).await)
    }

    async fn get_many(&mut self, object_type: String, ids: Vec<String>) -> HostResult<String> {
        self.count_call()?;
        Ok(record_get_many(&self.env.clone(), &object_type, &ids).await)
    }
}

async fn record_get(env: &CallEnv, object_type: &str, id: &str) -> Result<String, HostError> {
    if is_custom(object_type) {
        return custom::get(env, object_type, id).await;
    }
    let object = record_type(object_type)?;
    let id = parse_id(id)?;
    let got = crate::crm::records::with_record_type!(object, R => async {
        let m = records::get::<R>(&env.db, &env.ctx, id).await?;
        one_json::<R>(env, m, true).await
    }
    .await);
    env.service(&format!("records:{object_type}:read"), got)
        .await
}

/// Most ids one `get-many` call takes (a list page's limit).
const MAX_GET_MANY: usize = crate::crm::listing::MAX_LIMIT as usize;

async fn record_get_many(
    env: &CallEnv,
    object_type: &str,
    ids: &[String],
) -> Result<String, HostError> {
    if ids.len() > MAX_GET_MANY {
        return Err(HostError::Invalid(vec![WitFieldError {
            field: "ids".to_owned(),
            code: "too_many".to_owned(),
            message: format!("{} ids (at most {MAX_GET_MANY})", ids.len()),
        }]));
    }
    // An id that is not one is a record that does not exist: left out.
    let ids: Vec<Uuid> = ids.iter().filter_map(|id| parse_id(id).ok()).collect();
    // By the id asked for (a merged-away id answers with its survivor, as
    // `get` does).
    let mut by_id: std::collections::HashMap<Uuid, Value> = std::collections::HashMap::new();
    if is_custom(object_type) {
        for id in &ids {
            let r = crate::crm::objects::get(&env.db, &env.ctx, object_type, *id).await;
            match r {
                Ok(v) => {
                    by_id.insert(*id, v);
                }
                Err(Error::NotFound(_)) => {}
                Err(e) => {
                    let what = format!("records:custom_object:read ({object_type})");
                    return Err(env.host_error(&what, e).await);
                }
            }
        }
    } else {
        let object = record_type(object_type)?;
        let got = crate::crm::records::with_record_type!(object, R => async {
            let found = records::among::<R>(&env.db, &env.ctx, None, &ids).await?;
            let mut by_id: std::collections::HashMap<Uuid, Value> = found
                .into_iter()
                .filter_map(|v| Some((v.get("id")?.as_str()?.parse().ok()?, v)))
                .collect();
            for id in &ids {
                if by_id.contains_key(id) {
                    continue;
                }
                match records::get::<R>(&env.db, &env.ctx, *id).await {
                    Ok(m) => {
                        let v = records::reveal_many::<R>(&env.db, &env.ctx, &[m], true).await?;
                        if let Some(v) = v.into_iter().next() {
                            by_id.insert(*id, v);
                        }
                    }
                    Err(Error::NotFound(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(by_id)
        }
        .await);
        by_id = env
            .service(&format!("records:{object_type}:read"), got)
            .await?;
    }
    // In the order asked, each record once.
    let mut shown = std::collections::HashSet::new();
    let ordered: Vec<Value> = ids
        .iter()
        .filter_map(|id| by_id.get(id))
        .filter(|v| shown.insert(v.get("id").map(Value::to_string)))
        .cloned()
        .collect();
    Ok(Value::Array(ordered).to_string())
}

async fn record_query(env: &CallEnv, object_type: &str, raw: &str) -> Result<String, HostError> {
    if is_custom(object_type) {
        return custom::query(env, object_type, raw).await;
    }
    let object = record_type(object_type)?;
    let page = crate::crm::records::with_record_type!(object, R => records::list::<R>(&env.db, &env.ctx, Some(raw)).await);
    let page = env
        .service(&format!("records:{object_type}:read"), page)
        .await?;
    serde_json::to_string(&page).map_err(|e| HostError::Failed(e.to_string()))
}

async fn record_create(
    env: &CallEnv,
    object_type: &str,
    fields: &str,
) -> Result<String, HostError> {
    if is_custom(object_type) {
        return custom::create(env, object_type, fields).await;
    }
    let object = record_type(object_type)?;
    let value = parse_json(fields, "fields")?;
    let made = crate::crm::records::with_record_type!(object, R => async {
        let input = records::from_json::<<R as records::Record>::Input>(value)?;
        let m = records::create::<R>(&env.db, &env.ctx, input).await?;
        one_json::<R>(env, m, false).await
    }
    .await);
    env.service(&format!("records:{object_type}:create"), made)
        .await
}

async fn record_update(
    env: &CallEnv,
    object_type: &str,
    id: &str,
    patch: &str,
    version: i64,
) -> Result<String, HostError> {
    if is_custom(object_type) {
        return custom::update(env, object_type, id, patch, version).await;
    }
    let object = record_type(object_type)?;
    let id = parse_id(id)?;
    let patch = parse_json(patch, "patch")?;
    let done = crate::crm::records::with_record_type!(object, R => async {
        let m = records::update::<R>(&env.db, &env.ctx, id, patch, version, false).await?;
        one_json::<R>(env, m, false).await
    }
    .await);
    env.service(&format!("records:{object_type}:update"), done)
        .await
}

async fn record_delete(env: &CallEnv, object_type: &str, id: &str) -> Result<(), HostError> {
    if is_custom(object_type) {
        return custom::delete(env, object_type, id).await;
    }
    let object = record_type(object_type)?;
    let id = parse_id(id)?;
    let done = crate::crm::records::with_record_type!(object, R => records::delete::<R>(&env.db, &env.ctx, id, None).await);
    env.service(&format!("records:{object_type}:delete"), done)
        .await
}

impl kv::Host for State {
    async fn get(&mut self, key: String) -> HostResult<Option<Vec<u8>>> {
        self.count_call()?;
        Ok(kv_get(&self.env.clone(), &key).await)
    }

    async fn set(&mut self, key: String, value: Vec<u8>) -> HostResult<()> {
        self.count_call()?;
        Ok(kv_set(&self.env.clone(), key, value).await)
    }

    async fn delete(&mut self, key: String) -> HostResult<()> {
        self.count_call()?;
        Ok(kv_delete(&self.env.clone(), &key).await)
    }

    async fn list_keys(&mut self, prefix: String, limit: u32) -> HostResult<Vec<String>> {
        self.count_call()?;
        Ok(kv_keys(&self.env.clone(), &prefix, limit).await)
    }
}

/// The plugin's own entries for its tenant (after checking the grant).
async fn kv_entries(env: &CallEnv) -> Result<sea_orm::Select<plugin_kv::Entity>, HostError> {
    env.require("kv").await?;
    Ok(plugin_kv::Entity::find()
        .filter(plugin_kv::Column::TenantId.eq(env.ctx.tenant_id))
        .filter(plugin_kv::Column::PluginId.eq(env.plugin_id.as_str())))
}

async fn kv_get(env: &CallEnv, key: &str) -> Result<Option<Vec<u8>>, HostError> {
    let row = kv_entries(env)
        .await?
        .filter(plugin_kv::Column::Key.eq(key))
        .one(&env.db)
        .await?;
    Ok(row.map(|r| r.value))
}

async fn kv_set(env: &CallEnv, key: String, value: Vec<u8>) -> Result<(), HostError> {
    env.require("kv").await?;
    crate::tenancy::storage::check(&env.ctx).map_err(|e| HostError::Limit(e.to_string()))?;
    if key.is_empty() || key.len() > MAX_KV_KEY || value.len() > MAX_KV_VALUE {
        return Err(HostError::Limit(format!(
            "keys are 1-{MAX_KV_KEY} bytes and values at most {MAX_KV_VALUE} bytes"
        )));
    }
    let row = plugin_kv::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(env.ctx.tenant_id),
        plugin_id: Set(env.plugin_id.clone()),
        key: Set(key),
        value: Set(value),
        updated_at: Set(crate::clock::now()),
    };
    plugin_kv::Entity::insert(row)
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
        .await?;
    Ok(())
}

async fn kv_delete(env: &CallEnv, key: &str) -> Result<(), HostError> {
    env.require("kv").await?;
    plugin_kv::Entity::delete_many()
        .filter(plugin_kv::Column::TenantId.eq(env.ctx.tenant_id))
        .filter(plugin_kv::Column::PluginId.eq(env.plugin_id.as_str()))
        .filter(plugin_kv::Column::Key.eq(key))
        .exec(&env.db)
        .await?;
    Ok(())
}

async fn kv_keys(env: &CallEnv, prefix: &str, limit: u32) -> Result<Vec<String>, HostError> {
    Ok(kv_entries(env)
        .await?
        .select_only()
        .column(plugin_kv::Column::Key)
        .filter(plugin_kv::Column::Key.starts_with(prefix))
        .order_by_asc(plugin_kv::Column::Key)
        .limit(u64::from(limit.clamp(1, 1000)))
        .into_tuple::<String>()
        .all(&env.db)
        .await?)
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
        Ok(send_email(&self.env.clone(), &to, &subject, &body).await)
    }

    async fn enqueue_job(
        &mut self,
        name: String,
        payload: String,
        delay_ms: u64,
    ) -> HostResult<String> {
        self.count_call()?;
        Ok(enqueue_job(&self.env.clone(), &name, &payload, delay_ms).await)
    }

    async fn emit_event(&mut self, name: String, payload: String) -> HostResult<()> {
        self.count_call()?;
        Ok(emit_event(&self.env.clone(), &name, &payload).await)
    }
}

async fn send_email(env: &CallEnv, to: &str, subject: &str, body: &str) -> Result<(), HostError> {
    env.require("email").await?;
    if !to.contains('@') || to.len() > 320 || to.contains(['\r', '\n']) {
        return Err(HostError::Invalid(vec![WitFieldError {
            field: "to".to_owned(),
            code: "invalid_format".to_owned(),
            message: "not an email address".to_owned(),
        }]));
    }
    crate::directory::users::send(&env.db, env.ctx.tenant_id, to, subject, body)
        .await
        .map_err(|e| HostError::Failed(e.to_string()))
}

async fn enqueue_job(
    env: &CallEnv,
    name: &str,
    payload: &str,
    delay_ms: u64,
) -> Result<String, HostError> {
    env.require("jobs").await?;
    let payload = parse_json(payload, "payload")?;
    let delay = chrono::Duration::milliseconds(delay_ms.min(30 * 86_400_000) as i64);
    crate::jobs::enqueue(
        &env.db,
        env.ctx.tenant_id,
        crate::jobs::Kind::PluginJob,
        Some(&env.plugin_id),
        name,
        payload,
        crate::clock::now() + delay,
    )
    .await
    .map(|id| id.to_string())
    .map_err(|e| HostError::Failed(e.to_string()))
}

async fn emit_event(env: &CallEnv, name: &str, payload: &str) -> Result<(), HostError> {
    env.require("events").await?;
    let payload = parse_json(payload, "payload")?;
    event::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(env.ctx.tenant_id),
        source: Set(format!("plugin:{}", env.plugin_id)),
        name: Set(format!("{}.{name}", env.plugin_id)),
        payload: Set(payload),
        at: Set(crate::clock::now()),
    }
    .insert(&env.db)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::split_filters;

    #[test]
    fn filters_split_on_commas_and_newlines_but_keep_in_lists_whole() {
        assert_eq!(
            split_filters("lifecycle_stage:eq:lead,custom.city:eq:Leeds"),
            ["lifecycle_stage:eq:lead", "custom.city:eq:Leeds"]
        );
        assert_eq!(
            split_filters("custom.ListingKey:in:A,B,C\ncustom.City:eq:York"),
            ["custom.ListingKey:in:A,B,C", "custom.City:eq:York"]
        );
        assert_eq!(
            split_filters("updated_at:gt:2026-01-01T00:00:00Z,custom.ListingKey:in:L-1, L-2"),
            [
                "updated_at:gt:2026-01-01T00:00:00Z",
                "custom.ListingKey:in:L-1, L-2"
            ]
        );
        assert!(split_filters("").is_empty());
    }
}
