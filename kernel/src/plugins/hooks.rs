//! Record hooks: where the services of `crm::records` call plugins.
//!
//! - **Before write** (inside the write's transaction, before validation):
//!   each subscribed plugin sees the record as it will be written, limited
//!   to its granted fields, and may accept, patch granted fields, or reject
//!   with field errors (422). A plugin that fails (trap, deadline, memory)
//!   fails the write with 503 naming the plugin: nothing is written.
//! - **After write**: a job per subscribed plugin is queued in the write's
//!   transaction, so the hook is delivered (at least once, retried) exactly
//!   when the write commits, by whichever kernel process runs jobs; its
//!   failure never undoes the write.
//!
//! Sensitive (encrypted) values never ride along in hook events; a plugin
//! granted such a field reads it with `records.get`, which audits the read.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::context::RequestContext;
use crate::error::{Error, FieldError, Result};
use crate::permissions::{Action, FieldAccess, ObjectType};
use crate::plugins::sandbox::{Call, HookOutcome, Reply, WriteEvent, WriteOp};

/// How deep plugin writes may trigger further plugin hooks.
pub const MAX_DEPTH: u8 = 2;

/// Most records one `before-write-batch` invocation carries: the
/// invocation's limits (deadline, host calls, memory) cover the whole slice,
/// so a slice stays about as large as a plugin's per-record budget allows.
pub const MAX_BATCH: usize = 100;

/// What a hook is about: the record type (for permissions and field rules)
/// and the name plugins see and subscribe with (the type's name, or a
/// custom object's key).
#[derive(Debug, Clone)]
pub struct Target {
    pub object: ObjectType,
    pub name: std::borrow::Cow<'static, str>,
}

impl Target {
    pub fn of(object: ObjectType) -> Self {
        Target {
            object,
            name: std::borrow::Cow::Borrowed(object.as_str()),
        }
    }

    pub fn custom(key: &str) -> Self {
        Target {
            object: ObjectType::CustomObject,
            name: std::borrow::Cow::Owned(key.to_owned()),
        }
    }
}

/// What a write does, for hooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Create,
    Update,
    Delete,
}

impl Op {
    fn wit(self) -> WriteOp {
        match self {
            Op::Create => WriteOp::Create,
            Op::Update => WriteOp::Update,
            Op::Delete => WriteOp::Delete,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Op::Create => "create",
            Op::Update => "update",
            Op::Delete => "delete",
        }
    }

    fn parse(s: &str) -> Option<Op> {
        match s {
            "create" => Some(Op::Create),
            "update" => Some(Op::Update),
            "delete" => Some(Op::Delete),
            _ => None,
        }
    }
}

/// A record's JSON as a plugin may see it in a hook: its hidden fields and
/// every encrypted value removed.
fn for_plugin(policy: &crate::permissions::Policy, object: ObjectType, v: &Value) -> String {
    let mut v = v.clone();
    policy.redact(object, &mut v);
    if let Some(custom) = v.get_mut("custom").and_then(Value::as_object_mut) {
        custom.retain(|_, x| x.get(crate::crm::sensitive::ENC).is_none());
    }
    v.to_string()
}

/// Whether any plugin of the caller's tenant hooks writes of `object`
/// (before them with `before`, else after); cheap (a cached list).
pub async fn subscribed<C: sea_orm::ConnectionTrait>(
    db: &C,
    ctx: &RequestContext,
    target: &Target,
    before: bool,
) -> Result<bool> {
    let Some(rt) = &ctx.plugins else {
        return Ok(false);
    };
    if ctx.plugin_depth > MAX_DEPTH {
        return Ok(false);
    }
    Ok(rt
        .enabled_on(db, ctx.tenant_id)
        .await?
        .iter()
        .any(|a| hooked(a, target, before) && !is_self(ctx, a.row.id)))
}

/// Runs the before-write hooks of `ctx`'s tenant on a record of `object`.
/// `after` is the record as it will be written (input form) and is patched
/// in place; `before` is the stored record (update, delete).
pub async fn before_write<C: sea_orm::ConnectionTrait>(
    db: &C,
    ctx: &RequestContext,
    target: &Target,
    op: Op,
    record_id: Option<Uuid>,
    before: Option<&Value>,
    after: &mut Value,
) -> Result<()> {
    let Some(rt) = &ctx.plugins else {
        return Ok(());
    };
    if ctx.plugin_depth > MAX_DEPTH {
        return Ok(());
    }
    let enabled = rt.enabled_on(db, ctx.tenant_id).await?;
    for active in enabled.iter() {
        if !hooked(active, target, true) || is_self(ctx, active.row.id) {
            continue;
        }
        let object = target.object;
        let event = WriteEvent {
            object_type: target.name.to_string(),
            op: op.wit(),
            record_id: record_id.map(|i| i.to_string()),
            before: before.map(|b| for_plugin(&active.policy, object, b)),
            after: (op != Op::Delete).then(|| for_plugin(&active.policy, object, after)),
        };
        let reply = rt
            .invoke_in_write(active, Call::BeforeWrite(event), ctx.plugin_depth)
            .await
            .map_err(|e| Error::PluginFailed(e.to_string()))?;
        match reply {
            Reply::Hook(outcome) => apply(active, object, op, outcome, after)?,
            other => {
                return Err(Error::PluginFailed(format!(
                    "plugin {} answered a hook with {other:?}",
                    active.row.plugin_id
                )));
            }
        }
    }
    Ok(())
}

/// One record of a batch, for [`before_write_batch`].
#[derive(Debug)]
pub struct BatchItem {
    pub record_id: Option<Uuid>,
    pub before: Option<Value>,
    /// The record as it will be written; patched in place.
    pub after: Value,
    /// Why a plugin refused it (it is not shown to later plugins).
    pub refused: Option<Error>,
}

/// Runs the before-write hooks on a batch of writes of one type and
/// operation (a bulk request, an import batch): each plugin is invoked once
/// per slice of the batch ([`MAX_BATCH`] records within its input cap), not
/// once per record. A rejection refuses its item only; so does a plugin's
/// failure on an item (a failed slice is asked again record by record).
pub async fn before_write_batch<C: sea_orm::ConnectionTrait>(
    db: &C,
    ctx: &RequestContext,
    target: &Target,
    op: Op,
    items: &mut [BatchItem],
) -> Result<()> {
    let Some(rt) = &ctx.plugins else {
        return Ok(());
    };
    if ctx.plugin_depth > MAX_DEPTH {
        return Ok(());
    }
    let enabled = rt.enabled_on(db, ctx.tenant_id).await?;
    let object = target.object;
    for active in enabled.iter() {
        if !hooked(active, target, true) || is_self(ctx, active.row.id) {
            continue;
        }
        // Slices of the batch that fit the plugin's input cap, made before
        // any is sent (the outcomes patch `items`).
        let budget = active.limits.io_bytes;
        let mut slices: Vec<Vec<(usize, WriteEvent)>> = vec![Vec::new()];
        let mut size = 0;
        for (index, item) in items.iter().enumerate() {
            if item.refused.is_some() {
                continue;
            }
            let event = WriteEvent {
                object_type: target.name.to_string(),
                op: op.wit(),
                record_id: item.record_id.map(|i| i.to_string()),
                before: item
                    .before
                    .as_ref()
                    .map(|b| for_plugin(&active.policy, object, b)),
                after: (op != Op::Delete).then(|| for_plugin(&active.policy, object, &item.after)),
            };
            let len = event.before.as_ref().map_or(0, String::len)
                + event.after.as_ref().map_or(0, String::len);
            let full = slices
                .last()
                .is_some_and(|s| !s.is_empty() && (size + len > budget || s.len() >= MAX_BATCH));
            if full {
                slices.push(Vec::new());
                size = 0;
            }
            size += len;
            if let Some(slice) = slices.last_mut() {
                slice.push((index, event));
            }
        }
        for slice in slices.into_iter().filter(|s| !s.is_empty()) {
            run_batch(rt, ctx, (active, object, op), slice, items).await?;
        }
    }
    Ok(())
}

async fn run_batch(
    rt: &std::sync::Arc<crate::plugins::Runtime>,
    ctx: &RequestContext,
    (active, object, op): (
        &std::sync::Arc<crate::plugins::runtime::Active>,
        ObjectType,
        Op,
    ),
    pending: Vec<(usize, WriteEvent)>,
    items: &mut [BatchItem],
) -> Result<()> {
    let (indexes, events): (Vec<usize>, Vec<WriteEvent>) = pending.into_iter().unzip();
    let reply = rt
        .invoke_in_write(
            active,
            Call::BeforeWriteBatch(events.clone()),
            ctx.plugin_depth,
        )
        .await;
    let outcomes = match reply {
        Ok(Reply::Hooks(outcomes)) => outcomes.into_iter().map(Ok).collect::<Vec<_>>(),
        // The batch failed as a whole (a trap, a limit of the invocation, an
        // output too large): each record is asked alone, so a record that
        // breaks the plugin fails only itself, as it would written alone.
        _ => {
            let mut one_by_one = Vec::with_capacity(events.len());
            for event in events {
                let reply = rt
                    .invoke_in_write(active, Call::BeforeWrite(event), ctx.plugin_depth)
                    .await;
                one_by_one.push(match reply {
                    Ok(Reply::Hook(outcome)) => Ok(outcome),
                    Ok(other) => Err(Error::PluginFailed(format!(
                        "plugin {} answered a hook with {other:?}",
                        active.row.plugin_id
                    ))),
                    Err(e) => Err(Error::PluginFailed(e.to_string())),
                });
            }
            one_by_one
        }
    };
    for (index, outcome) in indexes.into_iter().zip(outcomes) {
        let Some(item) = items.get_mut(index) else {
            continue;
        };
        // A plugin's failure on a record (or a patch it may not make) is
        // that record's error.
        if let Err(e) = outcome.and_then(|o| apply(active, object, op, o, &mut item.after)) {
            item.refused = Some(e);
        }
    }
    Ok(())
}

/// Applies one hook outcome to the record being written: a patch of
/// granted fields is merged, a rejection becomes the 422 naming the fields.
fn apply(
    active: &crate::plugins::runtime::Active,
    object: ObjectType,
    op: Op,
    outcome: HookOutcome,
    after: &mut Value,
) -> Result<()> {
    match outcome {
        HookOutcome::Accept => Ok(()),
        HookOutcome::Reject(errors) => {
            let errors = errors
                .into_iter()
                .map(|e| {
                    FieldError::new(
                        e.field,
                        "rejected_by_plugin",
                        format!("{} ({}: {})", e.message, active.row.plugin_id, e.code),
                    )
                })
                .collect::<Vec<_>>();
            Err(if errors.is_empty() {
                Error::field(
                    "",
                    "rejected_by_plugin",
                    format!("{} refused the write", active.row.plugin_id),
                )
            } else {
                Error::Validation(errors)
            })
        }
        HookOutcome::Patch(patch) if op != Op::Delete => {
            let patch: Value = serde_json::from_str(&patch).map_err(|e| {
                Error::PluginFailed(format!(
                    "plugin {} returned a patch that is not JSON: {e}",
                    active.row.plugin_id
                ))
            })?;
            check_patch(active, object, op, &patch)?;
            crate::crm::records::merge_patch(after, &patch);
            Ok(())
        }
        HookOutcome::Patch(_) => Ok(()),
    }
}

/// A hook may change only fields it was granted, on a type it may write.
fn check_patch(
    active: &crate::plugins::runtime::Active,
    object: ObjectType,
    op: Op,
    patch: &Value,
) -> Result<()> {
    let action = if op == Op::Create {
        Action::Create
    } else {
        Action::Update
    };
    let refuse = |field: &str| {
        Error::PluginFailed(format!(
            "plugin {} tried to change `{field}`, which it was not granted",
            active.row.plugin_id
        ))
    };
    if !active.policy.allows(object, action) {
        return Err(Error::PluginFailed(format!(
            "plugin {} changed a {} being written without the `records:{}:{}` grant",
            active.row.plugin_id,
            object.as_str(),
            object.as_str(),
            action.as_str()
        )));
    }
    let Some(obj) = patch.as_object() else {
        return Err(refuse("the record"));
    };
    for (key, value) in obj {
        // `"custom": null` would clear every custom value, hidden and
        // encrypted ones included.
        if key == "custom" && !value.is_object() {
            return Err(refuse("custom"));
        }
        let fields: Vec<String> = if key == "custom" {
            value
                .as_object()
                .map(|c| c.keys().map(|k| format!("custom.{k}")).collect())
                .unwrap_or_default()
        } else {
            vec![key.clone()]
        };
        for f in fields {
            if matches!(
                active.policy.field_access(object, &f),
                Some(FieldAccess::Hidden | FieldAccess::ReadOnly)
            ) || ["id", "version", "created_at", "updated_at"].contains(&f.as_str())
            {
                return Err(refuse(&f));
            }
        }
    }
    Ok(())
}

/// Whether writes of `object` call `active`: its manifest subscribes, and
/// it was granted reading that type (a hook event is a read).
fn hooked(active: &crate::plugins::runtime::Active, target: &Target, before: bool) -> bool {
    active.manifest().hooks(&target.name, before)
        && active.policy.allows(target.object, Action::Read)
}

fn is_self(ctx: &RequestContext, tenant_plugin_id: Uuid) -> bool {
    ctx.actor_kind == crate::context::ActorKind::Plugin && ctx.actor_id == Some(tenant_plugin_id)
}

/// Queues the after-write hooks of a write, in its transaction.
pub async fn queue_after_write<C: sea_orm::ConnectionTrait>(
    db: &C,
    ctx: &RequestContext,
    target: &Target,
    op: Op,
    record_id: Uuid,
    before: Option<Value>,
    after: Option<Value>,
) -> Result<()> {
    let Some(rt) = &ctx.plugins else {
        return Ok(());
    };
    if ctx.plugin_depth > MAX_DEPTH {
        return Ok(());
    }
    let enabled = rt.enabled_on(db, ctx.tenant_id).await?;
    for active in enabled.iter() {
        if !hooked(active, target, false) || is_self(ctx, active.row.id) {
            continue;
        }
        crate::jobs::enqueue(
            db,
            ctx.tenant_id,
            crate::jobs::Kind::AfterWrite,
            Some(&active.row.plugin_id),
            op.as_str(),
            json!({
                "object_type": target.name,
                "kind": target.object.as_str(),
                "record_id": record_id,
                "before": before,
                "after": after,
                "depth": ctx.plugin_depth,
            }),
            crate::clock::now(),
        )
        .await?;
    }
    Ok(())
}

/// Delivers a queued after-write hook (from the job runner).
pub async fn deliver_after_write(
    rt: &std::sync::Arc<crate::plugins::Runtime>,
    active: &std::sync::Arc<crate::plugins::runtime::Active>,
    op: &str,
    payload: &Value,
) -> std::result::Result<(), String> {
    let name = payload
        .get("object_type")
        .and_then(Value::as_str)
        .ok_or("the job names no record type")?;
    let object = payload
        .get("kind")
        .and_then(Value::as_str)
        .or(Some(name))
        .and_then(ObjectType::parse)
        .ok_or("the job names no record type")?;
    let op = Op::parse(op).ok_or("the job names no operation")?;
    let depth = payload
        .get("depth")
        .and_then(Value::as_u64)
        .unwrap_or(0)
        .min(u64::from(MAX_DEPTH)) as u8;
    let side = |k: &str| {
        payload
            .get(k)
            .filter(|v| !v.is_null())
            .map(|v| for_plugin(&active.policy, object, v))
    };
    let event = WriteEvent {
        object_type: name.to_owned(),
        op: op.wit(),
        record_id: payload
            .get("record_id")
            .and_then(Value::as_str)
            .map(str::to_owned),
        before: side("before"),
        after: side("after"),
    };
    match rt.invoke(active, Call::AfterWrite(event), depth).await {
        Ok(Reply::Done(Ok(()))) => Ok(()),
        Ok(Reply::Done(Err(m))) => Err(m),
        Ok(other) => Err(format!("unexpected answer {other:?}")),
        Err(e) => Err(e.to_string()),
    }
}
