//! The one write and read path every record type takes: permission check,
//! tenant scoping, validation (built-in and custom fields), optimistic
//! concurrency, the audit trail and the search index, in one transaction.
//!
//! A record type describes itself through [`Record`]; the functions here do
//! the rest, so no type can skip a step.

use async_trait::async_trait;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelBehavior, ActiveModelTrait, ConnectionTrait, DatabaseConnection,
    DatabaseTransaction, EntityTrait, FromQueryResult, IntoActiveModel, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::audit::{self, AuditAction, AuditEntry};
use crate::context::RequestContext;
use crate::crm::custom_fields::{self, FieldDef};
use crate::crm::listing::{FieldSpec, ListQuery};
use crate::crm::sensitive;
use crate::db::dialect::Dialect;
use crate::db::search::{self, SearchDocument};
use crate::error::{BulkItemError, Error, FieldError, Result};
use crate::keys::TenantKeys;
use crate::permissions::{Action, FieldAccess, ObjectType, Scope};
use crate::plugins::hooks::{self, Op};

/// Evaluates `$body` with `$R` standing for the record type of `$object`:
/// one of the four built-in types (anything else is taken as activities).
/// Lets code that holds an [`ObjectType`] call the generic functions here.
macro_rules! with_record_type {
    ($object:expr, $R:ident => $body:expr) => {
        match $object {
            $crate::permissions::ObjectType::Contact => {
                type $R = $crate::crm::contacts::Contacts;
                $body
            }
            $crate::permissions::ObjectType::Account => {
                type $R = $crate::crm::accounts::Accounts;
                $body
            }
            $crate::permissions::ObjectType::Deal => {
                type $R = $crate::crm::deals::Deals;
                $body
            }
            _ => {
                type $R = $crate::crm::activities::Activities;
                $body
            }
        }
    };
}
pub(crate) use with_record_type;

/// Everything the shared path needs to know about one record type.
#[async_trait]
pub trait Record: Sized + Send + Sync + 'static {
    const OBJECT: ObjectType;
    /// Sort used when a list names none.
    const DEFAULT_SORT: &'static str = "-created_at";
    /// Output fields a client writes under another name (a contact's
    /// primary `email` is written through `emails`): a field rule on the
    /// output name guards the input name too.
    const INPUT_ALIASES: &'static [(&'static str, &'static str)] = &[];
    type Entity: EntityTrait<Model = Self::Model>;
    /// Serializable as stored (ciphertext included), so a merge can keep
    /// the exact rows it removes and an undo can put them back.
    type Model: FromQueryResult
        + IntoActiveModel<Self::Active>
        + Serialize
        + DeserializeOwned
        + Clone
        + Send
        + Sync;
    type Active: ActiveModelTrait<Entity = Self::Entity> + ActiveModelBehavior + Send + Sync;
    /// The writable fields, as clients send them.
    type Input: DeserializeOwned + Serialize + Send + Sync;
    /// The record as the API returns it.
    type Output: Serialize + Send;

    /// Built-in fields lists can filter and sort on.
    fn fields() -> &'static [FieldSpec];
    /// The owning user, for the `own` and `team` record scopes.
    fn owner(m: &Self::Model) -> Option<Uuid>;
    fn set_owner(m: &mut Self::Model, owner: Option<Uuid>);
    /// The stored custom values (sensitive ones encrypted).
    fn custom_mut(m: &mut Self::Model) -> &mut Value;
    fn id(m: &Self::Model) -> Uuid;
    fn version(m: &Self::Model) -> i64;
    fn output(m: Self::Model) -> Self::Output;
    /// The stored record in input form: the base a PATCH is merged into.
    fn input(m: &Self::Model) -> Self::Input;

    /// Validates `input` and builds the row to store. `existing` is the
    /// stored row on update; `custom` holds the checked custom values.
    async fn build(
        tx: &DatabaseTransaction,
        ctx: &RequestContext,
        input: Self::Input,
        custom: Value,
        existing: Option<&Self::Model>,
    ) -> Result<Self::Model>;

    /// The custom values a write asks for (before checking).
    fn custom_of(input: &Self::Input) -> Value;

    /// What the record contributes to search, if it is searchable.
    fn search_document(_m: &Self::Model) -> Option<SearchDocument> {
        None
    }

    /// Work after the row is written, in the same transaction (stage history).
    async fn after_write(
        _tx: &DatabaseTransaction,
        _ctx: &RequestContext,
        _model: &Self::Model,
        _previous: Option<&Self::Model>,
    ) -> Result<()> {
        Ok(())
    }

    /// Checks before a delete (records still referring to this one).
    async fn before_delete(
        _tx: &DatabaseTransaction,
        _ctx: &RequestContext,
        _model: &Self::Model,
    ) -> Result<()> {
        Ok(())
    }
}

/// A page of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub data: Vec<T>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
    /// Number of records matching the filters, when `count=true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
}

impl<T> Default for Page<T> {
    fn default() -> Self {
        Page {
            data: Vec::new(),
            next_cursor: None,
            total: None,
        }
    }
}

/// The owners whose records the caller reaches under its record scope, or
/// `None` when the scope is `all`.
pub async fn reachable_owners<C: ConnectionTrait>(
    db: &C,
    ctx: &RequestContext,
    object: ObjectType,
) -> Result<Option<Vec<Uuid>>> {
    match ctx.policy.scope(object) {
        Scope::All => Ok(None),
        Scope::Own => Ok(Some(ctx.user_id.into_iter().collect())),
        Scope::Team => match ctx.user_id {
            Some(u) => Ok(Some(
                crate::directory::teams::teammates(db, ctx.tenant_id, u).await?,
            )),
            None => Ok(Some(Vec::new())),
        },
    }
}

/// The records of the caller's tenant within the caller's record scope:
/// another tenant's id, or one outside the scope, is simply not found.
pub(crate) async fn visible<R: Record, C: ConnectionTrait>(
    db: &C,
    ctx: &RequestContext,
) -> Result<sea_orm::Select<R::Entity>> {
    let mut select = R::Entity::find().filter(Expr::col("tenant_id").eq(ctx.tenant_id));
    if let Some(owners) = reachable_owners(db, ctx, R::OBJECT).await? {
        select = select.filter(Expr::col("owner_id").is_in(owners));
    }
    Ok(select)
}

/// Loads one record the caller may reach.
pub async fn load<R: Record, C: ConnectionTrait>(
    db: &C,
    ctx: &RequestContext,
    id: Uuid,
) -> Result<R::Model> {
    visible::<R, _>(db, ctx)
        .await?
        .filter(Expr::col("id").eq(id))
        .one(db)
        .await?
        .ok_or(Error::NotFound(R::OBJECT.as_str()))
}

/// The record `id` as the caller may see it, or `None` when it is out of
/// the caller's reach.
pub async fn visible_json<R: Record>(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    id: Uuid,
) -> Result<Option<Value>> {
    match load::<R, _>(db, ctx, id).await {
        Ok(m) => Ok(Some(present::<R>(ctx, &m))),
        Err(Error::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Records as the caller may see them: sensitive values decrypted where
/// visible, hidden fields removed. With `audit_reads`, each record whose
/// sensitive values were revealed gets a `read` entry naming the fields
/// (writes echoing what the caller just sent pass `false`).
pub async fn reveal_many<R: Record>(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    models: &[R::Model],
    audit_reads: bool,
) -> Result<Vec<Value>> {
    let mut out = Vec::with_capacity(models.len());
    let mut keys = None;
    let mut entries = Vec::new();
    for m in models {
        let mut v = to_json::<R>(m);
        if sensitive::any_sealed(&v) {
            let custom = v.get("custom");
            if keys.is_none() || custom.is_some_and(|c| !sensitive::covers(keys.as_deref(), c)) {
                keys = sensitive::keys_covering(db, ctx, custom).await?;
            }
            let revealed = sensitive::reveal(keys.as_deref(), ctx, R::OBJECT, &mut v)?;
            if audit_reads && !revealed.is_empty() {
                entries.push(AuditEntry::new(
                    R::OBJECT,
                    R::id(m),
                    AuditAction::Read,
                    serde_json::json!({ "fields": revealed }),
                ));
            }
        }
        ctx.policy.redact(R::OBJECT, &mut v);
        out.push(v);
    }
    if !entries.is_empty() {
        audit::record(db, ctx, entries).await?;
    }
    Ok(out)
}

/// A record as the caller may see it: hidden fields removed (sensitive
/// values stay sealed; see [`reveal_many`]).
pub fn present<R: Record>(ctx: &RequestContext, m: &R::Model) -> Value {
    let mut v = to_json::<R>(m);
    ctx.policy.redact(R::OBJECT, &mut v);
    v
}

/// Fails with 403 naming the first restricted (hidden or read-only) field
/// the write would change. `before` is the stored record in input form, or
/// `None` on create, where a restricted field must be left to its default.
fn check_restricted_fields<R: Record>(
    ctx: &RequestContext,
    input: &R::Input,
    before: Option<&Value>,
) -> Result<()> {
    let Some(rules) = ctx.policy.field_rules(R::OBJECT) else {
        return Ok(());
    };
    let after = serde_json::to_value(input).map_err(|e| Error::Internal(e.to_string()))?;
    let at = |v: &Value, field: &str| -> Value {
        match field.strip_prefix("custom.") {
            Some(k) => v.get("custom").and_then(|c| c.get(k)).cloned(),
            None => v.get(field).cloned(),
        }
        .unwrap_or(Value::Null)
    };
    for rule_field in rules.keys() {
        let field = R::INPUT_ALIASES
            .iter()
            .find(|(output, _)| output == rule_field)
            .map_or(rule_field.as_str(), |(_, input)| *input);
        let changed = match before {
            Some(b) => at(b, field) != at(&after, field),
            None => {
                // What the record would hold had the field not been sent.
                let mut without = after.clone();
                match field.strip_prefix("custom.") {
                    Some(k) => {
                        if let Some(c) = without.get_mut("custom").and_then(Value::as_object_mut) {
                            c.remove(k);
                        }
                    }
                    None => {
                        if let Some(o) = without.as_object_mut() {
                            o.remove(field);
                        }
                    }
                }
                match from_json::<R::Input>(without) {
                    Ok(default) => {
                        let default = serde_json::to_value(&default).unwrap_or(Value::Null);
                        at(&default, field) != at(&after, field)
                    }
                    Err(_) => true,
                }
            }
        };
        if changed {
            return Err(Error::Forbidden(format!(
                "your role may not set the field `{rule_field}`"
            )));
        }
    }
    Ok(())
}

/// On a write under the `own` or `team` scope: an unowned record becomes
/// the caller's, and a record may not be handed outside the scope.
async fn check_owner_scope<R: Record>(
    tx: &DatabaseTransaction,
    ctx: &RequestContext,
    model: &mut R::Model,
) -> Result<()> {
    let Some(owners) = reachable_owners(tx, ctx, R::OBJECT).await? else {
        return Ok(());
    };
    match R::owner(model) {
        None => R::set_owner(model, ctx.user_id),
        Some(o) if owners.contains(&o) => {}
        Some(_) => {
            return Err(Error::Forbidden(
                "your role may only give records to owners within its scope".to_owned(),
            ));
        }
    }
    Ok(())
}

pub async fn get<R: Record>(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    id: Uuid,
) -> Result<R::Model> {
    ctx.require(R::OBJECT, Action::Read)?;
    load_or_alias::<R, _>(db, ctx, id).await
}

/// Loads `id`, or the record it was merged into: ids merged away keep
/// resolving for reads and updates, so old links and integrations work.
/// Deletes take no aliases (deleting by a stale id must not delete the
/// survivor).
pub async fn load_or_alias<R: Record, C: ConnectionTrait>(
    db: &C,
    ctx: &RequestContext,
    id: Uuid,
) -> Result<R::Model> {
    match load::<R, _>(db, ctx, id).await {
        Err(Error::NotFound(what)) => {
            match crate::crm::merge::alias_of(db, ctx.tenant_id, R::OBJECT, id).await? {
                Some(survivor) => load::<R, _>(db, ctx, survivor).await,
                None => Err(Error::NotFound(what)),
            }
        }
        found => found,
    }
}

/// Counts new records against the plan: the storage limit for every type,
/// the contact limit for contacts (no-op on unlimited plans).
pub(crate) async fn reserve_stock<R: Record>(
    tx: &DatabaseTransaction,
    ctx: &RequestContext,
    n: i64,
) -> Result<()> {
    crate::tenancy::storage::check(ctx)?;
    if R::OBJECT == ObjectType::Contact {
        crate::tenancy::usage::reserve(
            tx,
            ctx.tenant_id,
            "contacts",
            "contacts",
            n,
            ctx.limits.contacts,
        )
        .await?;
    }
    Ok(())
}

/// Serializes a record's output form to JSON (for diffs and cursors).
pub fn to_json<R: Record>(m: &R::Model) -> Value {
    serde_json::to_value(R::output(m.clone())).unwrap_or(Value::Null)
}

/// Checks the custom values of a write. On update, `previous` is the stored
/// record: values it already holds are not checked against the database
/// again, so a reference whose target was deleted since, or a field made
/// unique over old duplicates, does not block edits of other fields.
async fn checked_custom<R: Record>(
    tx: &DatabaseTransaction,
    ctx: &RequestContext,
    defs: &[FieldDef],
    input: &R::Input,
    previous: Option<&R::Model>,
) -> Result<Value> {
    let (values, mut errors) =
        custom_fields::check_values(defs, &R::custom_of(input), previous.is_none());
    let stored = previous.map(|p| R::custom_of(&R::input(p)));
    let changed: serde_json::Map<String, Value> = values
        .iter()
        .filter(|(k, v)| stored.as_ref().and_then(|s| s.get(k.as_str())) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let record_id = previous.map(R::id);
    errors.extend(
        custom_fields::check_unique_and_references(
            tx,
            ctx,
            (R::OBJECT, None),
            defs,
            &changed,
            record_id,
        )
        .await?,
    );
    if errors.is_empty() {
        Ok(Value::Object(values))
    } else {
        Err(Error::Validation(errors))
    }
}

/// Creates one record.
pub async fn create<R: Record>(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    input: R::Input,
) -> Result<R::Model> {
    ctx.require(R::OBJECT, Action::Create)?;
    let keys = sensitive::keys(db, ctx).await?;
    let tx = crate::db::tenant_tx(db, ctx).await?;
    let defs = custom_fields::definitions(&tx, ctx.tenant_id, R::OBJECT).await?;
    reserve_stock::<R>(&tx, ctx, 1).await?;
    let model = create_in::<R>(&tx, ctx, keys.as_deref(), &defs, input).await?;
    R::Entity::insert(model.clone().into_active_model())
        .exec_without_returning(&tx)
        .await?;
    finish_writes::<R>(&tx, ctx, &[(model.clone(), None)]).await?;
    tx.commit().await?;
    kick_jobs(ctx);
    Ok(model)
}

async fn create_in<R: Record>(
    tx: &DatabaseTransaction,
    ctx: &RequestContext,
    keys: Option<&TenantKeys>,
    defs: &[FieldDef],
    input: R::Input,
) -> Result<R::Model> {
    check_restricted_fields::<R>(ctx, &input, None)?;
    let input = with_before_hooks::<R>(tx, ctx, defs, Op::Create, None, None, input).await?;
    create_hooked::<R>(tx, ctx, keys, defs, input).await
}

/// [`create_in`] once the before-write hooks ran (one by one, or for a
/// whole batch with [`with_before_hooks_batch`]).
async fn create_hooked<R: Record>(
    tx: &DatabaseTransaction,
    ctx: &RequestContext,
    keys: Option<&TenantKeys>,
    defs: &[FieldDef],
    input: R::Input,
) -> Result<R::Model> {
    let custom = checked_custom::<R>(tx, ctx, defs, &input, None).await;
    let built = R::build(tx, ctx, input, custom_or_empty(&custom), None).await;
    let mut model = combine(custom, built)?;
    check_owner_scope::<R>(tx, ctx, &mut model).await?;
    sensitive::seal(
        keys,
        ctx.tenant_id,
        R::OBJECT,
        defs,
        R::custom_mut(&mut model),
        None,
    )?;
    Ok(model)
}

fn custom_or_empty(custom: &Result<Value>) -> Value {
    custom
        .as_ref()
        .cloned()
        .unwrap_or_else(|_| Value::Object(serde_json::Map::new()))
}

/// Both the built-in and the custom checks ran; report the failures of both.
fn combine<M>(custom: Result<Value>, built: Result<M>) -> Result<M> {
    match (custom, built) {
        (Ok(_), built) => built,
        (Err(Error::Validation(mut c)), Err(Error::Validation(mut b))) => {
            b.append(&mut c);
            Err(Error::Validation(b))
        }
        (Err(e), Ok(_)) | (_, Err(e)) => Err(e),
    }
}

/// After rows are written: hooks, search index and audit entries.
pub(crate) async fn finish_writes<R: Record>(
    tx: &DatabaseTransaction,
    ctx: &RequestContext,
    written: &[(R::Model, Option<R::Model>)],
) -> Result<()> {
    let mut docs = Vec::new();
    let mut entries = Vec::with_capacity(written.len());
    let after_hooks = hooks::subscribed(tx, ctx, &hooks::Target::of(R::OBJECT), false).await?;
    for (model, previous) in written {
        R::after_write(tx, ctx, model, previous.as_ref()).await?;
        docs.extend(R::search_document(model));
        if after_hooks {
            let op = if previous.is_some() {
                Op::Update
            } else {
                Op::Create
            };
            hooks::queue_after_write(
                tx,
                ctx,
                &hooks::Target::of(R::OBJECT),
                op,
                R::id(model),
                previous.as_ref().map(to_json::<R>),
                Some(to_json::<R>(model)),
            )
            .await?;
        }
        let entry = match previous {
            None => AuditEntry::new(
                R::OBJECT,
                R::id(model),
                AuditAction::Create,
                serde_json::json!({"after": to_json::<R>(model)}),
            ),
            Some(p) => AuditEntry::new(
                R::OBJECT,
                R::id(model),
                AuditAction::Update,
                audit::diff(&to_json::<R>(p), &to_json::<R>(model)),
            ),
        };
        entries.push(entry);
    }
    search::upsert(tx, &docs).await?;
    audit::write(tx, ctx, entries).await
}

/// What before-write hooks see of a record: its input form without the
/// sensitive custom values, which are plaintext here (plugins never see or
/// set them), put back under the plugins' changes afterwards.
struct HookView<'a> {
    sensitive: Vec<&'a str>,
}

impl<'a> HookView<'a> {
    fn new(defs: &'a [FieldDef]) -> Self {
        HookView {
            sensitive: defs
                .iter()
                .filter(|d| d.sensitive)
                .map(|d| d.key.as_str())
                .collect(),
        }
    }

    fn hide(&self, v: &Value) -> Value {
        let mut v = v.clone();
        if let Some(custom) = v.get_mut("custom").and_then(Value::as_object_mut) {
            custom.retain(|k, _| !self.sensitive.contains(&k.as_str()));
        }
        v
    }

    /// The plugins' changes (`seen`) on top of what they could not see.
    fn restore(&self, mut seen: Value, full: &Value) -> Result<Value> {
        if let Some(custom) = seen.get_mut("custom").and_then(Value::as_object_mut) {
            if let Some(key) = self.sensitive.iter().find(|k| custom.contains_key(**k)) {
                return Err(Error::PluginFailed(format!(
                    "a plugin tried to set the encrypted field `custom.{key}`"
                )));
            }
            if let Some(all) = full.get("custom").and_then(Value::as_object) {
                for key in &self.sensitive {
                    if let Some(v) = all.get(*key) {
                        custom.insert((*key).to_owned(), v.clone());
                    }
                }
            }
        }
        Ok(seen)
    }
}

/// Runs the tenant's before-write plugin hooks on `input` (which they may
/// patch or reject).
async fn with_before_hooks<R: Record>(
    tx: &DatabaseTransaction,
    ctx: &RequestContext,
    defs: &[FieldDef],
    op: Op,
    id: Option<Uuid>,
    before: Option<&Value>,
    input: R::Input,
) -> Result<R::Input> {
    let target = hooks::Target::of(R::OBJECT);
    if !hooks::subscribed(tx, ctx, &target, true).await? {
        return Ok(input);
    }
    let full = serde_json::to_value(&input).map_err(|e| Error::Internal(e.to_string()))?;
    let view = HookView::new(defs);
    let before = before.map(|b| view.hide(b));
    let mut seen = view.hide(&full);
    hooks::before_write(tx, ctx, &target, op, id, before.as_ref(), &mut seen).await?;
    from_json(view.restore(seen, &full)?)
}

/// The before-write hooks of a batch of creates (bulk request, import
/// batch): each plugin is invoked once for the batch. An item a plugin
/// refuses comes back as its error; a failing plugin fails the batch.
async fn with_before_hooks_batch<R: Record>(
    tx: &DatabaseTransaction,
    ctx: &RequestContext,
    defs: &[FieldDef],
    inputs: Vec<R::Input>,
) -> Result<Vec<Result<R::Input>>> {
    let target = hooks::Target::of(R::OBJECT);
    if inputs.is_empty() || !hooks::subscribed(tx, ctx, &target, true).await? {
        return Ok(inputs.into_iter().map(Ok).collect());
    }
    let view = HookView::new(defs);
    let full = inputs
        .iter()
        .map(|i| serde_json::to_value(i).map_err(|e| Error::Internal(e.to_string())))
        .collect::<Result<Vec<Value>>>()?;
    let mut items: Vec<hooks::BatchItem> = full
        .iter()
        .map(|f| hooks::BatchItem {
            record_id: None,
            before: None,
            after: view.hide(f),
            refused: None,
        })
        .collect();
    hooks::before_write_batch(tx, ctx, &target, Op::Create, &mut items).await?;
    Ok(items
        .into_iter()
        .zip(full)
        .map(|(item, full)| match item.refused {
            Some(e) => Err(e),
            None => view.restore(item.after, &full).and_then(from_json),
        })
        .collect())
}

/// Wakes this process's job runner after a commit that may have queued
/// after-write hooks.
pub(crate) fn kick_jobs(ctx: &RequestContext) {
    if let Some(rt) = &ctx.plugins {
        rt.work.notify_one();
    }
}

/// Applies an RFC 7396 JSON merge patch to a stored record.
///
/// `expected_version` is the version the client last saw (If-Match or the
/// body's `version`); a mismatch is a conflict, never a silent overwrite.
pub async fn update<R: Record>(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    id: Uuid,
    patch: Value,
    expected_version: i64,
    via_if_match: bool,
) -> Result<R::Model> {
    ctx.require(R::OBJECT, Action::Update)?;
    let keys = sensitive::keys(db, ctx).await?;
    let tx = crate::db::tenant_tx(db, ctx).await?;
    let defs = custom_fields::definitions(&tx, ctx.tenant_id, R::OBJECT).await?;
    let (model, previous) = update_in::<R>(
        &tx,
        ctx,
        keys.as_deref(),
        &defs,
        (id, patch, expected_version, via_if_match),
    )
    .await?;
    finish_writes::<R>(&tx, ctx, &[(model.clone(), Some(previous))]).await?;
    tx.commit().await?;
    kick_jobs(ctx);
    Ok(model)
}

/// One update: the record, the patch, the version the client saw, and
/// whether it came as If-Match.
pub(crate) type UpdateRequest = (Uuid, Value, i64, bool);

pub(crate) async fn update_in<R: Record>(
    tx: &DatabaseTransaction,
    ctx: &RequestContext,
    keys: Option<&TenantKeys>,
    defs: &[FieldDef],
    (id, patch, expected_version, via_if_match): UpdateRequest,
) -> Result<(R::Model, R::Model)> {
    let mut existing = load_or_alias::<R, _>(tx, ctx, id).await?;
    let id = R::id(&existing);
    // Validation and merging work on plaintext; the stored ciphertext is
    // kept for values that do not change.
    let stored_custom = R::custom_mut(&mut existing).clone();
    let mut plain = existing.clone();
    let reloaded = if sensitive::covers(keys, &stored_custom) {
        None
    } else {
        sensitive::keys_covering(tx, ctx, Some(&stored_custom)).await?
    };
    let keys = reloaded.as_deref().or(keys);
    sensitive::open_all(keys, ctx.tenant_id, R::OBJECT, R::custom_mut(&mut plain))?;
    let current = R::version(&existing);
    if current != expected_version {
        return Err(if via_if_match {
            Error::PreconditionFailed { current }
        } else {
            Error::VersionConflict { current }
        });
    }
    if !patch.is_object() {
        return Err(Error::field("", "invalid_type", "expected a JSON object"));
    }
    let stored =
        serde_json::to_value(R::input(&plain)).map_err(|e| Error::Internal(e.to_string()))?;
    let mut merged = stored.clone();
    merge_patch(&mut merged, &patch);
    let input: R::Input = from_json(merged)?;
    check_restricted_fields::<R>(ctx, &input, Some(&stored))?;
    let input =
        with_before_hooks::<R>(tx, ctx, defs, Op::Update, Some(id), Some(&stored), input).await?;
    let custom = checked_custom::<R>(tx, ctx, defs, &input, Some(&plain)).await;
    let built = R::build(tx, ctx, input, custom_or_empty(&custom), Some(&plain)).await;
    let mut model = combine(custom, built)?;
    check_owner_scope::<R>(tx, ctx, &mut model).await?;
    sensitive::seal(
        keys,
        ctx.tenant_id,
        R::OBJECT,
        defs,
        R::custom_mut(&mut model),
        Some(&stored_custom),
    )?;
    if !update_if_version(
        tx,
        ctx,
        id,
        expected_version,
        model.clone().into_active_model(),
    )
    .await?
    {
        // Someone else's write landed between our read and our update.
        return Err(Error::VersionConflict {
            current: current + 1,
        });
    }
    Ok((model, existing))
}

/// Writes every column of `row` over the tenant's row `id` if its version is
/// still `expected`; false when a concurrent writer got there first. The one
/// place optimistic concurrency is enforced in SQL.
pub(crate) async fn update_if_version<A>(
    tx: &DatabaseTransaction,
    ctx: &RequestContext,
    id: Uuid,
    expected: i64,
    row: A,
) -> std::result::Result<bool, sea_orm::DbErr>
where
    A: ActiveModelTrait + Send,
{
    let written = <A::Entity as EntityTrait>::update_many()
        .set(row.reset_all())
        .filter(Expr::col("tenant_id").eq(ctx.tenant_id))
        .filter(Expr::col("id").eq(id))
        .filter(Expr::col("version").eq(expected))
        .exec(tx)
        .await?;
    Ok(written.rows_affected == 1)
}

/// Deletes one record.
pub async fn delete<R: Record>(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    id: Uuid,
    expected_version: Option<i64>,
) -> Result<()> {
    ctx.require(R::OBJECT, Action::Delete)?;
    let tx = crate::db::tenant_tx(db, ctx).await?;
    delete_in::<R>(&tx, ctx, id, expected_version).await?;
    tx.commit().await?;
    kick_jobs(ctx);
    Ok(())
}

pub(crate) async fn delete_in<R: Record>(
    tx: &DatabaseTransaction,
    ctx: &RequestContext,
    id: Uuid,
    expected_version: Option<i64>,
) -> Result<()> {
    let existing = load::<R, _>(tx, ctx, id).await?;
    if let Some(v) = expected_version
        && R::version(&existing) != v
    {
        return Err(Error::PreconditionFailed {
            current: R::version(&existing),
        });
    }
    if hooks::subscribed(tx, ctx, &hooks::Target::of(R::OBJECT), true).await? {
        let mut none = Value::Null;
        let stored = to_json::<R>(&existing);
        hooks::before_write(
            tx,
            ctx,
            &hooks::Target::of(R::OBJECT),
            Op::Delete,
            Some(id),
            Some(&stored),
            &mut none,
        )
        .await?;
    }
    R::before_delete(tx, ctx, &existing).await?;
    // Conditional on the version loaded, so the audit's "before" is what was
    // deleted and a concurrent update is not lost silently.
    let deleted = R::Entity::delete_many()
        .filter(Expr::col("tenant_id").eq(ctx.tenant_id))
        .filter(Expr::col("id").eq(id))
        .filter(Expr::col("version").eq(R::version(&existing)))
        .exec(tx)
        .await
        .map_err(|e| {
            if crate::db::is_foreign_key_violation(&e) {
                Error::Conflict {
                    code: "record_in_use",
                    message: format!("other records still refer to this {}", R::OBJECT.as_str()),
                }
            } else {
                e.into()
            }
        })?;
    if deleted.rows_affected != 1 {
        return Err(Error::PreconditionFailed {
            current: R::version(&existing) + 1,
        });
    }
    search::remove(tx, ctx.tenant_id, &[id]).await?;
    hooks::queue_after_write(
        tx,
        ctx,
        &hooks::Target::of(R::OBJECT),
        Op::Delete,
        id,
        Some(to_json::<R>(&existing)),
        None,
    )
    .await?;
    if R::OBJECT == ObjectType::Contact && ctx.limits.contacts.is_some() {
        crate::tenancy::usage::adjust_stock(tx, ctx.tenant_id, "contacts", "contacts", -1).await?;
    }
    audit::write(
        tx,
        ctx,
        vec![AuditEntry::new(
            R::OBJECT,
            id,
            AuditAction::Delete,
            serde_json::json!({"before": to_json::<R>(&existing)}),
        )],
    )
    .await
}

/// Lists records with filters, sort and keyset pagination.
pub async fn list<R: Record>(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    raw_query: Option<&str>,
) -> Result<Page<Value>> {
    let (query, filters) = list_filters::<R>(db, ctx, raw_query).await?;
    let base = visible::<R, _>(db, ctx).await?;
    let (rows, next_cursor, total) = page_of(db, base, filters, &query, |m: &R::Model| {
        (to_json::<R>(m), R::id(m))
    })
    .await?;
    Ok(Page {
        data: reveal_many::<R>(db, ctx, &rows, true).await?,
        next_cursor,
        total,
    })
}

/// The records among `ids` (search hits, at most a page of them) that the
/// caller reaches and `raw_query`'s filters keep, in no particular order.
/// Looked up by key: with an ORDER BY, a database may walk a sort index
/// past every row instead.
pub async fn among<R: Record>(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    raw_query: Option<&str>,
    ids: &[Uuid],
) -> Result<Vec<Value>> {
    let rows = among_rows::<R>(db, ctx, raw_query, ids).await?;
    reveal_many::<R>(db, ctx, &rows, true).await
}

/// As [`among`], with sensitive values left sealed (and so no read to
/// audit): for the kernel's own comparisons, which never need them.
pub async fn among_sealed<R: Record>(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    ids: &[Uuid],
) -> Result<Vec<Value>> {
    let rows = among_rows::<R>(db, ctx, None, ids).await?;
    Ok(rows.iter().map(|m| present::<R>(ctx, m)).collect())
}

async fn among_rows<R: Record>(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    raw_query: Option<&str>,
    ids: &[Uuid],
) -> Result<Vec<R::Model>> {
    if ids.len() > crate::crm::listing::MAX_LIMIT as usize {
        return Err(Error::field(
            "ids",
            "too_many",
            format!("at most {}", crate::crm::listing::MAX_LIMIT),
        ));
    }
    let (_, filters) = list_filters::<R>(db, ctx, raw_query).await?;
    Ok(visible::<R, _>(db, ctx)
        .await?
        .filter(filters)
        .filter(Expr::col("id").is_in(ids.iter().copied()))
        .all(db)
        .await?)
}

/// A list request's parsed query and its WHERE conditions, after the
/// permission checks every list makes: the type must be readable, and no
/// filter or sort may name a field hidden from the caller.
pub(crate) async fn list_filters<R: Record>(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    raw_query: Option<&str>,
) -> Result<(ListQuery, sea_orm::Condition)> {
    ctx.require(R::OBJECT, Action::Read)?;
    let dialect = Dialect(db.get_database_backend());
    let defs = if ListQuery::mentions_custom(raw_query) {
        custom_fields::definitions(db, ctx.tenant_id, R::OBJECT).await?
    } else {
        Vec::new()
    };
    let (raw_query, blind_matches) = if defs.iter().any(|d| d.sensitive) {
        let keys = sensitive::keys(db, ctx).await?;
        sensitive::split_query(raw_query, &defs, keys.as_deref())?
    } else {
        (raw_query.map(str::to_owned), Vec::new())
    };
    let raw_query = raw_query.as_deref();
    let query = ListQuery::parse(raw_query, R::fields(), &defs, R::DEFAULT_SORT)?;
    // Filtering or sorting on a hidden field would reveal its values.
    if let Some(f) = query
        .fields_used()
        .into_iter()
        .find(|f| ctx.policy.field_access(R::OBJECT, f) == Some(FieldAccess::Hidden))
    {
        return Err(Error::Forbidden(format!(
            "the field `{f}` is hidden from your role"
        )));
    }
    let mut filters = query.filter_condition(dialect)?;
    for (key, index) in blind_matches {
        if ctx.policy.field_access(R::OBJECT, &format!("custom.{key}")) == Some(FieldAccess::Hidden)
        {
            return Err(Error::Forbidden(format!(
                "the field `custom.{key}` is hidden from your role"
            )));
        }
        filters = filters.add(Expr::cust(dialect.custom_member(&key, sensitive::BIDX)).eq(index));
    }
    Ok((query, filters))
}

/// One page of `base` under a parsed list query: the filters, the cursor,
/// the sort, one row more than the page to know whether another follows,
/// and the total when asked. `key` gives a row's JSON (for the cursor's
/// sort values) and id. Returns the rows, the next cursor and the total.
pub(crate) async fn page_of<E, F>(
    db: &DatabaseConnection,
    base: sea_orm::Select<E>,
    filters: sea_orm::Condition,
    query: &ListQuery,
    key: F,
) -> Result<(Vec<E::Model>, Option<String>, Option<u64>)>
where
    E: EntityTrait,
    E::Model: Send + Sync,
    F: Fn(&E::Model) -> (Value, Uuid),
{
    let dialect = Dialect(db.get_database_backend());
    let total = if query.count {
        Some(base.clone().filter(filters.clone()).count(db).await?)
    } else {
        None
    };
    let mut select = base.filter(filters);
    if let Some(c) = query.cursor_condition(dialect)? {
        select = select.filter(c);
    }
    for (expr, order, nulls) in query.order(dialect) {
        select = match nulls {
            Some(n) => select.order_by_with_nulls(expr, order, n),
            None => select.order_by(expr, order),
        };
    }
    let mut rows = select.limit(query.limit + 1).all(db).await?;
    let has_more = rows.len() as u64 > query.limit;
    rows.truncate(query.limit as usize);
    let next_cursor = match rows.last() {
        Some(last) if has_more => {
            let (json, id) = key(last);
            Some(query.next_cursor(&json, id))
        }
        _ => None,
    };
    Ok((rows, next_cursor, total))
}

/// Deserializes a request value, naming the failing field on error.
pub fn from_json<T: DeserializeOwned>(value: Value) -> Result<T> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        let inner = e.into_inner().to_string();
        let code = if inner.starts_with("unknown field") {
            "unknown_field"
        } else if inner.starts_with("missing field") {
            "required"
        } else {
            "invalid_type"
        };
        // A missing field is reported at its parent's path; name it.
        let field = match (code, inner.split('`').nth(1)) {
            ("required", Some(name)) if path.is_empty() => name.to_owned(),
            ("required", Some(name)) => format!("{path}.{name}"),
            _ => path,
        };
        let message = inner.split(" at line ").next().unwrap_or(&inner).to_owned();
        Error::Validation(vec![FieldError::new(field, code, message)])
    })
}

/// RFC 7396: objects merge key by key, `null` removes, anything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(serde_json::Map::new());
    }
    if let Value::Object(t) = target {
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

/// Most items one bulk request may carry.
pub const MAX_BULK: usize = 1000;

/// One item of a bulk update: the id, the version the client saw, the patch.
#[derive(Debug, Clone, serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkUpdateItem {
    pub id: Uuid,
    pub version: i64,
    pub patch: Value,
}

/// One item of a bulk delete.
#[derive(Debug, Clone, serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkDeleteItem {
    pub id: Uuid,
    #[serde(default)]
    pub version: Option<i64>,
}

fn item_error(index: usize, err: Error) -> Result<BulkItemError> {
    match err {
        Error::Database(e) => Err(Error::Database(e)),
        Error::Internal(e) => Err(Error::Internal(e)),
        Error::Forbidden(m) => Err(Error::Forbidden(m)),
        other => Ok(BulkItemError {
            index,
            code: other.code().to_owned(),
            message: other.to_string(),
            errors: match other {
                Error::Validation(errors) => errors,
                _ => Vec::new(),
            },
        }),
    }
}

/// Creates up to [`MAX_BULK`] records, all or none. On failure every failing
/// item is reported with its index.
pub async fn bulk_create<R: Record>(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    items: Vec<Value>,
) -> Result<Vec<R::Model>> {
    ctx.require(R::OBJECT, Action::Create)?;
    check_bulk_size(items.len())?;
    let keys = sensitive::keys(db, ctx).await?;
    let tx = crate::db::tenant_tx(db, ctx).await?;
    let defs = custom_fields::definitions(&tx, ctx.tenant_id, R::OBJECT).await?;
    reserve_stock::<R>(&tx, ctx, items.len() as i64).await?;
    let mut models = Vec::with_capacity(items.len());
    let mut failures = Vec::new();
    let mut inputs = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        let input = from_json::<R::Input>(item)
            .and_then(|i| check_restricted_fields::<R>(ctx, &i, None).map(|()| i));
        match input {
            Ok(input) => inputs.push((index, input)),
            Err(e) => failures.push(item_error(index, e)?),
        }
    }
    let (indexes, inputs): (Vec<usize>, Vec<R::Input>) = inputs.into_iter().unzip();
    let hooked = with_before_hooks_batch::<R>(&tx, ctx, &defs, inputs).await?;
    for (index, input) in indexes.into_iter().zip(hooked) {
        let built = match input {
            Ok(input) => create_hooked::<R>(&tx, ctx, keys.as_deref(), &defs, input).await,
            Err(e) => Err(e),
        };
        match built {
            Ok(m) => models.push(m),
            Err(e) => failures.push(item_error(index, e)?),
        }
    }
    failures.sort_by_key(|f| f.index);
    check_batch_uniqueness::<R>(&defs, &models, &mut failures);
    if !failures.is_empty() {
        return Err(Error::Bulk(failures));
    }
    // Chunks keep each INSERT under the databases' bind-parameter limits.
    for chunk in models.chunks(200) {
        let rows: Vec<R::Active> = chunk
            .iter()
            .cloned()
            .map(IntoActiveModel::into_active_model)
            .collect();
        R::Entity::insert_many(rows)
            .exec_without_returning(&tx)
            .await?;
    }
    let written: Vec<_> = models.iter().cloned().map(|m| (m, None)).collect();
    finish_writes::<R>(&tx, ctx, &written).await?;
    tx.commit().await?;
    kick_jobs(ctx);
    Ok(models)
}

/// An update of an import batch: the record, the version it was read at,
/// and the merge patch.
type Update = (Uuid, i64, Value);

/// One write of an import batch.
pub enum BatchWrite {
    /// A new record from its input JSON.
    Create(Value),
    /// A merge patch over the record `id` at `version`.
    Update {
        id: Uuid,
        version: i64,
        patch: Value,
    },
}

/// What an import batch wrote: by item index, the record and whether it
/// is new; and the items refused, with why.
pub struct BatchOutcome<M> {
    pub written: Vec<(usize, M, bool)>,
    pub refused: Vec<(usize, Error)>,
}

/// Writes one batch of an import in the caller's transaction. Every item
/// goes through the checks, hooks, audit and search index of a single
/// write; unlike [`bulk_create`], an item that fails is reported and the
/// others are still written (the import keeps it for its error file).
/// Errors that are not about an item (the database, a plan limit) abort the
/// batch.
pub async fn import_batch<R: Record>(
    tx: &DatabaseTransaction,
    ctx: &RequestContext,
    keys: Option<&TenantKeys>,
    defs: &[FieldDef],
    items: Vec<(usize, BatchWrite)>,
) -> Result<BatchOutcome<R::Model>> {
    let mut created: Vec<(usize, R::Model)> = Vec::new();
    let mut updated: Vec<(usize, R::Model, R::Model)> = Vec::new();
    let mut refused = Vec::new();
    // The batch's new records meet the plugins' hooks together.
    let mut new_inputs: Vec<(usize, R::Input)> = Vec::new();
    // In order: `None` for a new record (its input is in `hooked`), or the
    // update's id, version and patch.
    let mut writes: Vec<(usize, Option<Update>)> = Vec::with_capacity(items.len());
    for (index, item) in items {
        match item {
            BatchWrite::Create(input) => match from_json::<R::Input>(input)
                .and_then(|i| check_restricted_fields::<R>(ctx, &i, None).map(|()| i))
            {
                Ok(input) => {
                    new_inputs.push((index, input));
                    writes.push((index, None));
                }
                Err(e) => refused.push((index, e)),
            },
            BatchWrite::Update { id, version, patch } => {
                writes.push((index, Some((id, version, patch))))
            }
        }
    }
    let (new_indexes, new_inputs): (Vec<usize>, Vec<R::Input>) = new_inputs.into_iter().unzip();
    let mut hooked: std::collections::HashMap<usize, Result<R::Input>> = new_indexes
        .into_iter()
        .zip(with_before_hooks_batch::<R>(tx, ctx, defs, new_inputs).await?)
        .collect();
    for (index, item) in writes {
        let result = match item {
            None => match hooked.remove(&index) {
                Some(Ok(input)) => create_hooked::<R>(tx, ctx, keys, defs, input)
                    .await
                    .map(|m| created.push((index, m))),
                Some(Err(e)) => Err(e),
                None => continue,
            },
            Some((id, version, patch)) => {
                update_in::<R>(tx, ctx, keys, defs, (id, patch, version, false))
                    .await
                    .map(|(m, p)| updated.push((index, m, p)))
            }
        };
        if let Err(e) = result {
            match e {
                Error::Database(_) | Error::Internal(_) | Error::PlanLimit { .. } => {
                    return Err(e);
                }
                other => refused.push((index, other)),
            }
        }
    }
    // A new row may not claim a unique value another row of the batch
    // claims: the database check saw neither the batch's other new rows
    // (written below) nor, for rows before an update, that update. Updates
    // come first, so the new row is the one refused.
    let models: Vec<R::Model> = updated
        .iter()
        .map(|(_, m, _)| m.clone())
        .chain(created.iter().map(|(_, m)| m.clone()))
        .collect();
    let mut clashes = Vec::new();
    check_batch_uniqueness::<R>(defs, &models, &mut clashes);
    let clashing: Vec<usize> = clashes
        .iter()
        .filter_map(|c| c.index.checked_sub(updated.len()))
        .collect();
    for c in clashes {
        if let Some(i) = c.index.checked_sub(updated.len()) {
            refused.push((created[i].0, Error::Validation(c.errors)));
        }
    }
    let mut i = 0;
    created.retain(|_| {
        i += 1;
        !clashing.contains(&(i - 1))
    });
    reserve_stock::<R>(tx, ctx, created.len() as i64).await?;
    for chunk in created.chunks(200) {
        let rows: Vec<R::Active> = chunk
            .iter()
            .map(|(_, m)| m.clone().into_active_model())
            .collect();
        R::Entity::insert_many(rows)
            .exec_without_returning(tx)
            .await?;
    }
    let mut written: Vec<(R::Model, Option<R::Model>)> =
        created.iter().map(|(_, m)| (m.clone(), None)).collect();
    written.extend(updated.iter().map(|(_, m, p)| (m.clone(), Some(p.clone()))));
    finish_writes::<R>(tx, ctx, &written).await?;
    let mut out: Vec<(usize, R::Model, bool)> =
        created.into_iter().map(|(i, m)| (i, m, true)).collect();
    out.extend(updated.into_iter().map(|(i, m, _)| (i, m, false)));
    Ok(BatchOutcome {
        written: out,
        refused,
    })
}

/// Two items of one bulk request may not claim the same unique value: the
/// database check cannot see rows not yet written.
fn check_batch_uniqueness<R: Record>(
    defs: &[FieldDef],
    models: &[R::Model],
    failures: &mut Vec<BulkItemError>,
) {
    for def in defs.iter().filter(|d| d.unique) {
        let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        for (index, m) in models.iter().enumerate() {
            let json = to_json::<R>(m);
            let Some(v) = json
                .get("custom")
                .and_then(|c| c.get(&def.key))
                .filter(|v| !v.is_null())
            else {
                continue;
            };
            if let Some(first) = seen.insert(v.to_string(), index) {
                failures.push(BulkItemError {
                    index,
                    code: "validation_failed".to_owned(),
                    message: "validation failed".to_owned(),
                    errors: vec![FieldError::new(
                        format!("custom.{}", def.key),
                        "not_unique",
                        format!("item {first} of this request has the same value"),
                    )],
                });
            }
        }
    }
}

/// Updates up to [`MAX_BULK`] records, all or none.
pub async fn bulk_update<R: Record>(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    items: Vec<BulkUpdateItem>,
) -> Result<Vec<R::Model>> {
    ctx.require(R::OBJECT, Action::Update)?;
    check_bulk_size(items.len())?;
    let keys = sensitive::keys(db, ctx).await?;
    let tx = crate::db::tenant_tx(db, ctx).await?;
    let defs = custom_fields::definitions(&tx, ctx.tenant_id, R::OBJECT).await?;
    let mut written = Vec::with_capacity(items.len());
    let mut failures = Vec::new();
    for (index, item) in items.into_iter().enumerate() {
        let request = (item.id, item.patch, item.version, false);
        match update_in::<R>(&tx, ctx, keys.as_deref(), &defs, request).await {
            Ok(pair) => written.push(pair),
            Err(e) => failures.push(item_error(index, e)?),
        }
    }
    if !failures.is_empty() {
        return Err(Error::Bulk(failures));
    }
    let written: Vec<_> = written.into_iter().map(|(m, p)| (m, Some(p))).collect();
    finish_writes::<R>(&tx, ctx, &written).await?;
    tx.commit().await?;
    kick_jobs(ctx);
    Ok(written.into_iter().map(|(m, _)| m).collect())
}

/// Deletes up to [`MAX_BULK`] records, all or none.
pub async fn bulk_delete<R: Record>(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    items: Vec<BulkDeleteItem>,
) -> Result<usize> {
    ctx.require(R::OBJECT, Action::Delete)?;
    check_bulk_size(items.len())?;
    let tx = crate::db::tenant_tx(db, ctx).await?;
    let mut failures = Vec::new();
    let count = items.len();
    for (index, item) in items.into_iter().enumerate() {
        if let Err(e) = delete_in::<R>(&tx, ctx, item.id, item.version).await {
            failures.push(item_error(index, e)?);
        }
    }
    if !failures.is_empty() {
        return Err(Error::Bulk(failures));
    }
    tx.commit().await?;
    kick_jobs(ctx);
    Ok(count)
}

fn check_bulk_size(n: usize) -> Result<()> {
    if n == 0 || n > MAX_BULK {
        return Err(Error::field(
            "items",
            "invalid_length",
            format!("send 1 to {MAX_BULK} items"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc_7396() {
        let mut target = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge_patch(&mut target, &json!({"a": "z", "c": {"f": null}}));
        assert_eq!(target, json!({"a": "z", "c": {"d": "e"}}));
    }
}
