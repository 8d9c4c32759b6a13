//! The import job: the file is read on a blocking thread (decoding,
//! parsing and mapping cells) while batches are written on the async side,
//! so reading and writing overlap. Each batch is one transaction holding
//! its records, its rejected rows, the import's progress (a compare-and-set
//! on the rows done, so two processes never both write a batch) and the
//! job's renewed lease.

use std::collections::{HashMap, HashSet};
use std::io::Write;

use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter, QuerySelect, Set,
};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::AppState;
use crate::auth::Acting;
use crate::context::RequestContext;
use crate::crm::accounts::Accounts;
use crate::crm::contacts::Contacts;
use crate::crm::custom_fields::FieldDef;
use crate::crm::duplicates;
use crate::crm::records::{self, BatchWrite, Record};
use crate::entities::{account, contact_account, import, import_chunk, import_reject, user};
use crate::error::{Error, Result};
use crate::imports::mapping::{self, Kind};
use crate::imports::sources::{self, Format, Sniffed};
use crate::imports::transform::{AccountRef, Plan, Prepared, RowError};
use crate::imports::{Mode, Options};
use crate::keys::TenantKeys;
use crate::permissions::ObjectType;

/// Rows per batch: large enough to amortise a transaction, small enough
/// that a crash loses little work.
pub const BATCH: usize = 1000;

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Every row was dealt with.
    Done,
    /// Cancelled, or another process has taken the import over.
    Stopped,
    /// `max_batches` were written (tests simulate a crash this way).
    Paused,
}

/// One row on its way: where it is in the file, what the file had, what
/// the mapping made of it, and the value it is matched on.
struct Item {
    number: i64,
    line: Option<u64>,
    raw: Value,
    prepared: Prepared,
    key: Option<String>,
}

struct Batch {
    items: Vec<Item>,
}

/// Runs (or resumes) an import until it is done, cancelled, or
/// `max_batches` batches were written.
pub async fn run(
    state: &AppState,
    tenant_id: Uuid,
    import_id: Uuid,
    job_id: Option<Uuid>,
    max_batches: Option<usize>,
) -> Result<Ended> {
    let db = &state.db;
    let Some(m) = import::Entity::find_by_id(import_id)
        .filter(import::Column::TenantId.eq(tenant_id))
        .one(db)
        .await?
    else {
        return Ok(Ended::Stopped);
    };
    if !matches!(m.status.as_str(), "queued" | "running") {
        return Ok(Ended::Stopped);
    }
    let outcome = run_loaded(state, &m, job_id, max_batches).await;
    if let Err(e) = &outcome {
        // The reason stays on the import; its committed batches stay too.
        let now = crate::clock::now();
        import::Entity::update_many()
            .col_expr(import::Column::Status, Expr::value("failed"))
            .col_expr(import::Column::Error, Expr::value(e.to_string()))
            .col_expr(import::Column::FinishedAt, Expr::value(now))
            .col_expr(import::Column::UpdatedAt, Expr::value(now))
            .filter(import::Column::Id.eq(m.id))
            .filter(import::Column::TenantId.eq(m.tenant_id))
            .filter(import::Column::Status.is_in(["queued", "running"]))
            .exec(db)
            .await?;
        crate::imports::forget_file(db, m.tenant_id, m.id).await?;
        return Ok(Ended::Stopped);
    }
    outcome
}

async fn run_loaded(
    state: &AppState,
    m: &import::Model,
    job_id: Option<Uuid>,
    max_batches: Option<usize>,
) -> Result<Ended> {
    let db = &state.db;
    let acting: Acting = serde_json::from_value(m.actor.clone())
        .map_err(|e| Error::Internal(format!("the import's actor: {e}")))?;
    let ctx = crate::auth::resume(state, m.tenant_id, &acting).await?;
    let object = ObjectType::parse(&m.object_type)
        .ok_or_else(|| Error::Internal("the import's object type".to_owned()))?;
    let options: Options = serde_json::from_value(m.options.clone())
        .map_err(|e| Error::Internal(format!("the import's options: {e}")))?;
    // The rights are those the user holds now, not when the import started.
    crate::imports::require_rights(&ctx, object, &options, m.dry_run)?;
    let source: Sniffed = serde_json::from_value(m.source.clone())
        .map_err(|e| Error::Internal(format!("the import's file: {e}")))?;
    let format = Format::parse(&m.format)
        .ok_or_else(|| Error::Internal("the import's format".to_owned()))?;
    // This run's start, for its rate.
    let now = chrono::Utc::now();
    import::Entity::update_many()
        .col_expr(import::Column::Status, Expr::value("running"))
        .col_expr(import::Column::RunStartedAt, Expr::value(now))
        .col_expr(import::Column::RunStartRows, Expr::value(m.committed_rows))
        .filter(import::Column::Id.eq(m.id))
        .filter(import::Column::TenantId.eq(m.tenant_id))
        .filter(import::Column::Status.is_in(["queued", "running"]))
        .exec(db)
        .await?;
    let file = download(db, m).await?;
    if let Some(job) = job_id {
        // Fetching a large file can take a good part of the lease.
        crate::jobs::renew(db, job).await?;
    }
    let defs = crate::crm::custom_fields::definitions(db, m.tenant_id, object).await?;
    let targets = mapping::targets(object, &defs);
    let owners = owners(db, m.tenant_id).await?;
    let plan = Plan::new(&options.mapping, &source.headers, &targets, owners);
    let match_kind = options
        .match_on
        .as_deref()
        .and_then(|k| targets.iter().find(|t| t.key == k))
        .map(|t| (t.key.clone(), t.kind.clone()));
    let (tx_batches, mut rx_batches) = tokio::sync::mpsc::channel::<Result<Batch>>(2);
    let skip = m.committed_rows;
    let path = file.path().to_owned();
    let reader_plan = std::sync::Arc::new(plan);
    let plan = reader_plan.clone();
    let key_of = match_kind.clone();
    let reader = tokio::task::spawn_blocking(move || {
        read_batches(
            &path,
            format,
            &source,
            skip,
            &reader_plan,
            key_of,
            tx_batches,
        )
    });
    let keys = crate::crm::sensitive::keys(db, &ctx).await?;
    let mut run = Runner {
        state,
        ctx: &ctx,
        m,
        job_id,
        options: &options,
        plan: &plan,
        match_on: match_kind,
        keys: keys.as_deref(),
        defs: &defs,
        committed: m.committed_rows,
        seen: HashSet::new(),
    };
    let mut written: usize = 0;
    let mut ended = Ended::Done;
    while let Some(batch) = rx_batches.recv().await {
        let batch = batch?;
        if !run.write(object, batch).await? {
            ended = Ended::Stopped;
            break;
        }
        written += 1;
        if !m.dry_run && written.is_power_of_two() && written.trailing_zeros().is_multiple_of(2) {
            // The tables grow fast under an import, faster than autovacuum
            // refreshes PostgreSQL's statistics: with the stale ones (an
            // empty table) the planner looks up each batch's matches by
            // scanning the tenant's rows instead of the email index, and
            // every batch gets slower. Refreshed after 1, 4, 16... batches.
            let mut tables = vec![object.table()];
            if object == ObjectType::Contact {
                tables.push("accounts");
            }
            crate::db::analyze(db, &tables).await?;
        }
        if max_batches.is_some_and(|max| written >= max) {
            ended = Ended::Paused;
            break;
        }
    }
    drop(rx_batches);
    // The reader stops when nobody listens; its own errors came as batches.
    // A reader that panicked ended the channel early: that is no success.
    reader
        .await
        .map_err(|e| Error::Internal(format!("reading the file stopped: {e}")))?;
    drop(file);
    if ended == Ended::Done {
        let now = crate::clock::now();
        import::Entity::update_many()
            .col_expr(import::Column::Status, Expr::value("done"))
            .col_expr(import::Column::FinishedAt, Expr::value(now))
            .col_expr(import::Column::UpdatedAt, Expr::value(now))
            .filter(import::Column::Id.eq(m.id))
            .filter(import::Column::TenantId.eq(m.tenant_id))
            .filter(import::Column::Status.eq("running"))
            .exec(db)
            .await?;
        if !m.dry_run {
            // A dry run's upload may still be started for real.
            crate::imports::forget_file(db, m.tenant_id, m.id).await?;
        }
    }
    Ok(ended)
}

/// The uploaded file, back on local disk.
async fn download<C: ConnectionTrait>(
    db: &C,
    m: &import::Model,
) -> Result<tempfile::NamedTempFile> {
    let mut file = tempfile::NamedTempFile::new().map_err(|e| Error::Internal(e.to_string()))?;
    let mut seq = 0;
    loop {
        let chunk = import_chunk::Entity::find()
            .filter(import_chunk::Column::ImportId.eq(m.id))
            .filter(import_chunk::Column::TenantId.eq(m.tenant_id))
            .filter(import_chunk::Column::Seq.eq(seq))
            .one(db)
            .await?;
        let Some(chunk) = chunk else { break };
        file.write_all(&chunk.data)
            .map_err(|e| Error::Internal(e.to_string()))?;
        seq += 1;
    }
    file.flush().map_err(|e| Error::Internal(e.to_string()))?;
    Ok(file)
}

/// The tenant's users by lower-case email, for owner columns.
async fn owners<C: ConnectionTrait>(db: &C, tenant_id: Uuid) -> Result<HashMap<String, Uuid>> {
    let rows: Vec<(Uuid, String)> = user::Entity::find()
        .select_only()
        .column(user::Column::Id)
        .column(user::Column::Email)
        .filter(user::Column::TenantId.eq(tenant_id))
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(id, e)| (e.to_lowercase(), id))
        .collect())
}

/// The value a row is matched on, normalised as stored.
fn match_key(prepared: &Prepared, key: &str, kind: &Kind) -> Option<String> {
    let v = match key.strip_prefix("custom.") {
        Some(k) => prepared.fields.get("custom")?.get(k)?,
        None => prepared.fields.get(key)?,
    };
    match kind {
        Kind::Emails => v
            .as_array()?
            .first()?
            .get("address")?
            .as_str()
            .map(|s| s.trim().to_lowercase()),
        // Domains and names match whatever their case.
        Kind::Text if key == "domain" || key == "name" => {
            v.as_str().map(|s| s.trim().to_lowercase())
        }
        _ => match v {
            Value::String(s) => Some(s.trim().to_owned()),
            Value::Null => None,
            other => Some(other.to_string()),
        },
    }
}

/// Whether two rows name one account: the same domain, or (when either has
/// none) the same name whatever its case.
fn same_account(a: &AccountRef, b: &AccountRef) -> bool {
    match (&a.domain, &b.domain) {
        (Some(x), Some(y)) => x == y,
        _ => match (&a.name, &b.name) {
            (Some(x), Some(y)) => x.to_lowercase() == y.to_lowercase(),
            _ => false,
        },
    }
}

/// The reading side: rows to batches. A batch ends early before a row
/// whose match value is already in it, so that the row sees the earlier
/// one's record (written by then) and is judged against it.
fn read_batches(
    path: &std::path::Path,
    format: Format,
    source: &Sniffed,
    skip: i64,
    plan: &Plan,
    match_on: Option<(String, Kind)>,
    out: tokio::sync::mpsc::Sender<Result<Batch>>,
) {
    let send = |b: Result<Batch>| out.blocking_send(b).is_ok();
    let mut rows = match sources::open(path, format, source) {
        Ok(r) => r,
        Err(e) => {
            send(Err(e));
            return;
        }
    };
    let mut items: Vec<Item> = Vec::with_capacity(BATCH);
    let mut keys: HashSet<String> = HashSet::new();
    loop {
        let row = match rows.next_row() {
            Ok(Some(r)) => r,
            Ok(None) => break,
            Err(e) => {
                send(Err(e));
                return;
            }
        };
        if row.number <= skip {
            continue;
        }
        let mut prepared = plan.prepare(&row.cells);
        if let Some(problem) = row.problem {
            prepared
                .errors
                .insert(0, RowError::new(None, None, "unreadable_row", problem));
        }
        let key = match_on
            .as_ref()
            .and_then(|(k, kind)| match_key(&prepared, k, kind));
        if key.as_ref().is_some_and(|k| keys.contains(k)) || items.len() >= BATCH {
            if !send(Ok(Batch {
                items: std::mem::take(&mut items),
            })) {
                return;
            }
            keys.clear();
        }
        if let Some(k) = &key {
            keys.insert(k.clone());
        }
        items.push(Item {
            number: row.number,
            line: row.line,
            raw: row.raw,
            prepared,
            key,
        });
    }
    if !items.is_empty() {
        send(Ok(Batch { items }));
    }
}

struct Runner<'a> {
    state: &'a AppState,
    ctx: &'a RequestContext,
    m: &'a import::Model,
    job_id: Option<Uuid>,
    options: &'a Options,
    plan: &'a Plan,
    match_on: Option<(String, Kind)>,
    keys: Option<&'a TenantKeys>,
    defs: &'a [FieldDef],
    committed: i64,
    /// Match values of earlier rows of a dry run (whose batches are rolled
    /// back, so the database cannot tell).
    seen: HashSet<String>,
}

/// What one batch did.
#[derive(Default)]
struct Tally {
    created: i64,
    updated: i64,
    /// Pairs of likely duplicates queued for review.
    duplicates: i64,
    rejects: Vec<(i64, Option<u64>, Value, Vec<RowError>)>,
}

impl Runner<'_> {
    /// Writes one batch; false when the import was cancelled or taken over.
    async fn write(&mut self, object: ObjectType, batch: Batch) -> Result<bool> {
        let last = batch
            .items
            .last()
            .map(|i| i.number)
            .unwrap_or(self.committed);
        let tx = crate::db::tenant_tx(&self.state.db, self.ctx).await?;
        let tally = match object {
            ObjectType::Contact => self.batch::<Contacts>(&tx, batch).await?,
            _ => self.batch::<Accounts>(&tx, batch).await?,
        };
        if self.m.dry_run {
            tx.rollback().await?;
            let tx = crate::db::tenant_tx(&self.state.db, self.ctx).await?;
            let ok = self.record(&tx, last, &tally).await?;
            if ok {
                tx.commit().await?;
            }
            return Ok(ok);
        }
        let ok = self.record(&tx, last, &tally).await?;
        if ok {
            tx.commit().await?;
            records::kick_jobs(self.ctx);
        }
        Ok(ok)
    }

    /// Rejected rows and progress, in the batch's transaction; false (and
    /// nothing to commit) when the import is no longer this run's.
    async fn record(&mut self, tx: &DatabaseTransaction, last: i64, tally: &Tally) -> Result<bool> {
        let now = crate::clock::now();
        let moved = import::Entity::update_many()
            .col_expr(import::Column::CommittedRows, Expr::value(last))
            .col_expr(
                import::Column::CreatedCount,
                Expr::col(import::Column::CreatedCount).add(tally.created),
            )
            .col_expr(
                import::Column::UpdatedCount,
                Expr::col(import::Column::UpdatedCount).add(tally.updated),
            )
            .col_expr(
                import::Column::RejectedCount,
                Expr::col(import::Column::RejectedCount).add(tally.rejects.len() as i64),
            )
            .col_expr(
                import::Column::DuplicateCount,
                Expr::col(import::Column::DuplicateCount).add(tally.duplicates),
            )
            .col_expr(import::Column::UpdatedAt, Expr::value(now))
            .filter(import::Column::Id.eq(self.m.id))
            .filter(import::Column::TenantId.eq(self.m.tenant_id))
            .filter(import::Column::Status.eq("running"))
            .filter(import::Column::CommittedRows.eq(self.committed))
            .exec(tx)
            .await?;
        if moved.rows_affected != 1 {
            return Ok(false);
        }
        let rows: Vec<import_reject::ActiveModel> = tally
            .rejects
            .iter()
            .map(|(number, line, raw, errors)| import_reject::ActiveModel {
                id: Set(Uuid::now_v7()),
                tenant_id: Set(self.m.tenant_id),
                import_id: Set(self.m.id),
                row_number: Set(*number),
                raw: Set(raw.clone()),
                errors: Set(json!({"line": line, "errors": errors})),
            })
            .collect();
        for chunk in rows.chunks(500) {
            import_reject::Entity::insert_many(chunk.to_vec())
                .exec_without_returning(tx)
                .await?;
        }
        if let Some(job) = self.job_id {
            crate::jobs::renew(tx, job).await?;
        }
        self.committed = last;
        Ok(true)
    }

    fn row_errors(&self, e: Error) -> Vec<RowError> {
        match e {
            Error::Validation(errors) => errors
                .into_iter()
                .map(|f| {
                    let column = self.plan.column_of(&f.field).map(str::to_owned);
                    RowError {
                        column,
                        field: Some(f.field),
                        code: f.code,
                        message: f.message,
                    }
                })
                .collect(),
            other => vec![RowError::new(None, None, other.code(), other.to_string())],
        }
    }

    /// Finds the records the batch's rows match, by match value.
    async fn existing<R: Record>(
        &self,
        tx: &DatabaseTransaction,
        keys: &[String],
    ) -> Result<HashMap<String, R::Model>> {
        let Some((field, _)) = &self.match_on else {
            return Ok(HashMap::new());
        };
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let find = R::Entity::find().filter(Expr::col("tenant_id").eq(self.ctx.tenant_id));
        let found: Vec<R::Model> = match field.as_str() {
            "id" => {
                let ids: Vec<Uuid> = keys
                    .iter()
                    .filter_map(|k| Uuid::parse_str(k).ok())
                    .collect();
                find.filter(Expr::col("id").is_in(ids)).all(tx).await?
            }
            "emails" => {
                // Any of a contact's addresses, through the match keys.
                let by_address: Vec<String> = keys
                    .iter()
                    .map(|k| format!("email:{}", duplicates::keys::email(k)))
                    .collect();
                let ids: Vec<Uuid> = crate::db::search::holders(
                    tx,
                    self.ctx.tenant_id,
                    R::OBJECT.as_str(),
                    &by_address,
                    // An address several contacts share matches the first.
                    20,
                    by_address.len() * 20,
                )
                .await?
                .into_iter()
                .map(|(_, id)| id)
                .collect();
                find.filter(Expr::col("id").is_in(ids)).all(tx).await?
            }
            "domain" => {
                find.filter(Expr::col("domain").is_in(keys.to_vec()))
                    .all(tx)
                    .await?
            }
            "name" => {
                find.filter(Expr::cust("LOWER(name)").is_in(keys.to_vec()))
                    .all(tx)
                    .await?
            }
            custom => {
                let key = custom.trim_start_matches("custom.");
                let dialect = crate::db::dialect::Dialect(tx.get_database_backend());
                let kind = self
                    .defs
                    .iter()
                    .find(|d| d.key == key)
                    .map(FieldDef::json_kind)
                    .unwrap_or(crate::db::dialect::JsonKind::Text);
                let values: Vec<sea_orm::Value> = keys
                    .iter()
                    .map(|k| match kind {
                        crate::db::dialect::JsonKind::Integer => {
                            k.parse::<i64>().unwrap_or_default().into()
                        }
                        _ => k.clone().into(),
                    })
                    .collect();
                find.filter(Expr::cust(dialect.custom_value(key, kind)).is_in(values))
                    .all(tx)
                    .await?
            }
        };
        let mut out = HashMap::new();
        for model in found {
            let json = records::to_json::<R>(&model);
            let k = match field.as_str() {
                "id" => Some(R::id(&model).to_string()),
                "emails" => {
                    let addresses = json
                        .get("emails")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(|e| e.get("address").and_then(Value::as_str))
                        .map(duplicates::keys::email);
                    for address in addresses {
                        out.entry(address).or_insert_with(|| model.clone());
                    }
                    None
                }
                "domain" => json
                    .get("domain")
                    .and_then(Value::as_str)
                    .map(str::to_lowercase),
                "name" => json
                    .get("name")
                    .and_then(Value::as_str)
                    .map(str::to_lowercase),
                custom => json
                    .get("custom")
                    .and_then(|c| c.get(custom.trim_start_matches("custom.")))
                    .map(|v| match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    }),
            };
            if let Some(k) = k {
                out.entry(k).or_insert(model);
            }
        }
        Ok(out)
    }

    async fn batch<R: Record>(&mut self, tx: &DatabaseTransaction, batch: Batch) -> Result<Tally> {
        let mut tally = Tally::default();
        let keys: Vec<String> = batch.items.iter().filter_map(|i| i.key.clone()).collect();
        let existing = self.existing::<R>(tx, &keys).await?;
        let label = R::OBJECT.as_str();
        let match_field = self
            .match_on
            .as_ref()
            .map(|(f, _)| f.clone())
            .unwrap_or_default();
        let mut writes: Vec<(usize, BatchWrite)> = Vec::new();
        let mut items: Vec<Option<Item>> = Vec::with_capacity(batch.items.len());
        for (index, item) in batch.items.into_iter().enumerate() {
            let mut errors = item.prepared.errors.clone();
            let found = item.key.as_ref().and_then(|k| existing.get(k));
            // A dry run writes nothing, so a key created by an earlier row
            // of the file is remembered here instead.
            let seen_before =
                self.m.dry_run && item.key.as_ref().is_some_and(|k| self.seen.contains(k));
            let write = if !errors.is_empty() {
                None
            } else {
                match (self.options.mode, found) {
                    (Mode::Create, Some(m)) => {
                        errors.push(duplicate(label, &match_field, Some(R::id(m)), self.plan));
                        None
                    }
                    (Mode::Create, None) if seen_before => {
                        errors.push(duplicate(label, &match_field, None, self.plan));
                        None
                    }
                    (Mode::Update, None) => {
                        errors.push(RowError::new(
                            self.plan.column_of(&match_field),
                            Some(&match_field),
                            "no_match",
                            format!("no {label} has this {match_field}"),
                        ));
                        None
                    }
                    (_, Some(m)) => Some(BatchWrite::Update {
                        id: R::id(m),
                        version: R::version(m),
                        patch: {
                            let mut p =
                                patch_over(&records::to_json::<R>(m), &item.prepared.fields);
                            if let Some(o) = p.as_object_mut() {
                                o.remove("id");
                            }
                            p
                        },
                    }),
                    (_, None) => {
                        // An id only finds records; a new one gets its own.
                        let mut fields = item.prepared.fields.clone();
                        fields.remove("id");
                        Some(BatchWrite::Create(Value::Object(fields)))
                    }
                }
            };
            if !errors.is_empty() {
                tally
                    .rejects
                    .push((item.number, item.line, item.raw.clone(), errors));
                items.push(None);
                continue;
            }
            if let Some(w) = write {
                if self.m.dry_run
                    && matches!(w, BatchWrite::Create(_))
                    && let Some(k) = &item.key
                {
                    self.seen.insert(k.clone());
                }
                writes.push((index, w));
            }
            items.push(Some(item));
        }
        // Contacts: the accounts the rows name, found or created first, so
        // a row whose account cannot be had is rejected whole.
        let mut accounts: HashMap<usize, Uuid> = HashMap::new();
        if R::OBJECT == ObjectType::Contact {
            let refs: Vec<(usize, AccountRef)> = writes
                .iter()
                .filter_map(|(i, _)| {
                    items[*i]
                        .as_ref()
                        .and_then(|it| it.prepared.account.clone())
                        .map(|a| (*i, a))
                })
                .collect();
            let (found, failed) = self.accounts(tx, &refs).await?;
            accounts = found;
            for (index, errors) in failed {
                if let Some(item) = items[index].take() {
                    tally
                        .rejects
                        .push((item.number, item.line, item.raw, errors));
                }
                writes.retain(|(i, _)| *i != index);
            }
        }
        let likely = self
            .likely_duplicates::<R>(&mut writes, &mut items, &mut tally)
            .await?;
        let outcome =
            records::import_batch::<R>(tx, self.ctx, self.keys, self.defs, writes).await?;
        for (index, e) in outcome.refused {
            if let Some(item) = items[index].take() {
                tally
                    .rejects
                    .push((item.number, item.line, item.raw, self.row_errors(e)));
            }
        }
        let mut links = Vec::new();
        for (index, model, created) in &outcome.written {
            if *created {
                tally.created += 1;
            } else {
                tally.updated += 1;
            }
            if let Some(account_id) = accounts.get(index) {
                links.push((R::id(model), *account_id));
            }
        }
        if !links.is_empty() {
            self.link(tx, links).await?;
        }
        let new_ids: HashMap<usize, Uuid> = outcome
            .written
            .iter()
            .filter(|(_, _, created)| *created)
            .map(|(index, model, _)| (*index, R::id(model)))
            .collect();
        let mut pairs = Vec::new();
        for (index, candidates) in likely.stored {
            if let Some(id) = new_ids.get(&index) {
                pairs.extend(
                    candidates
                        .into_iter()
                        .map(|c| (*id, c.id, c.score, c.reasons)),
                );
            }
        }
        for (earlier, later, score, reasons) in likely.among {
            if let (Some(a), Some(b)) = (new_ids.get(&earlier), new_ids.get(&later)) {
                pairs.push((*a, *b, score, reasons));
            }
        }
        if !pairs.is_empty() {
            tally.duplicates +=
                duplicates::queue::store_found(tx, self.ctx, R::OBJECT, &pairs).await? as i64;
        }
        tally.rejects.sort_by_key(|r| r.0);
        Ok(tally)
    }

    /// The duplicate check of the batch's new records, under the tenant's
    /// policy: `block` rejects a row whose likely duplicate is near-certain
    /// (a stored record's, or an earlier row's, same address, number or
    /// domain); the rest is queued for review once written.
    async fn likely_duplicates<R: Record>(
        &self,
        writes: &mut Vec<(usize, BatchWrite)>,
        items: &mut [Option<Item>],
        tally: &mut Tally,
    ) -> Result<duplicates::batch::Found> {
        let policy = crate::crm::tenants::cached(self.state, self.ctx.tenant_id)
            .await?
            .duplicate_policy;
        let policy = duplicates::Policy::parse(&policy).unwrap_or_default();
        if policy == duplicates::Policy::Off {
            return Ok(Default::default());
        }
        let creates: Vec<(usize, &Value)> = writes
            .iter()
            .filter_map(|(i, w)| match w {
                BatchWrite::Create(v) => Some((*i, v)),
                BatchWrite::Update { .. } => None,
            })
            .collect();
        let mut found = duplicates::batch::check::<R>(&self.state.db, self.ctx, &creates).await?;
        if policy != duplicates::Policy::Block {
            return Ok(found);
        }
        let label = R::OBJECT.as_str();
        let mut refused: HashMap<usize, String> = HashMap::new();
        for (index, candidates) in &found.stored {
            if let Some(c) = candidates
                .iter()
                .find(|c| c.score >= duplicates::BLOCK_SCORE)
            {
                refused.insert(
                    *index,
                    format!("likely the same {label} as {} ({})", c.id, c.name),
                );
            }
        }
        for (earlier, later, score, _) in &found.among {
            if *score >= duplicates::BLOCK_SCORE && !refused.contains_key(earlier) {
                let number = items[*earlier]
                    .as_ref()
                    .map(|i| i.number)
                    .unwrap_or_default();
                refused
                    .entry(*later)
                    .or_insert_with(|| format!("likely the same {label} as row {number}"));
            }
        }
        for (index, message) in &refused {
            if let Some(item) = items[*index].take() {
                tally.rejects.push((
                    item.number,
                    item.line,
                    item.raw,
                    vec![RowError::new(None, None, "duplicate", message.clone())],
                ));
            }
        }
        writes.retain(|(i, _)| !refused.contains_key(i));
        found.stored.retain(|i, _| !refused.contains_key(i));
        found
            .among
            .retain(|(a, b, _, _)| !refused.contains_key(a) && !refused.contains_key(b));
        Ok(found)
    }

    /// Account ids for rows naming an account (by domain, else name), and
    /// the rows whose account is missing or could not be created.
    #[allow(clippy::type_complexity)]
    async fn accounts(
        &self,
        tx: &DatabaseTransaction,
        refs: &[(usize, AccountRef)],
    ) -> Result<(HashMap<usize, Uuid>, Vec<(usize, Vec<RowError>)>)> {
        let mut found = HashMap::new();
        let mut failed = Vec::new();
        if refs.is_empty() {
            return Ok((found, failed));
        }
        let domains: Vec<String> = refs.iter().filter_map(|(_, a)| a.domain.clone()).collect();
        // SQLite's LOWER folds ASCII letters only: the name lowered that way
        // too, so `Ärzte GmbH` finds itself on either database.
        let names: Vec<String> = refs
            .iter()
            .filter_map(|(_, a)| a.name.as_ref())
            .flat_map(|n| [n.to_lowercase(), n.to_ascii_lowercase()])
            .collect();
        let mut by_domain: HashMap<String, Uuid> = HashMap::new();
        let mut by_name: HashMap<String, Uuid> = HashMap::new();
        let rows: Vec<(Uuid, String, Option<String>)> = account::Entity::find()
            .select_only()
            .column(account::Column::Id)
            .column(account::Column::Name)
            .column(account::Column::Domain)
            .filter(account::Column::TenantId.eq(self.ctx.tenant_id))
            .filter(
                sea_orm::Condition::any()
                    .add(account::Column::Domain.is_in(domains))
                    .add(Expr::cust("LOWER(name)").is_in(names)),
            )
            .into_tuple()
            .all(tx)
            .await?;
        for (id, name, domain) in rows {
            if let Some(d) = domain {
                by_domain.entry(d).or_insert(id);
            }
            by_name.entry(name.to_lowercase()).or_insert(id);
        }
        let lookup =
            |a: &AccountRef, by_domain: &HashMap<String, Uuid>, by_name: &HashMap<String, Uuid>| {
                a.domain
                    .as_ref()
                    .and_then(|d| by_domain.get(d))
                    .or_else(|| a.name.as_ref().and_then(|n| by_name.get(&n.to_lowercase())))
                    .copied()
            };
        // Missing accounts, each created once however many rows name it and
        // however they spell its case: those with a domain first, then names
        // no wanted account already has.
        let mut wanted: Vec<AccountRef> = Vec::new();
        let missing = refs
            .iter()
            .map(|(_, a)| a)
            .filter(|a| lookup(a, &by_domain, &by_name).is_none());
        let (with_domain, name_only): (Vec<&AccountRef>, Vec<&AccountRef>) =
            missing.partition(|a| a.domain.is_some());
        for a in with_domain.into_iter().chain(name_only) {
            if !wanted.iter().any(|w| same_account(w, a)) {
                wanted.push(a.clone());
            }
        }
        let mut creation_errors: HashMap<usize, Vec<RowError>> = HashMap::new();
        if !wanted.is_empty() && self.options.create_missing_accounts {
            let defs =
                crate::crm::custom_fields::definitions(tx, self.ctx.tenant_id, ObjectType::Account)
                    .await?;
            let writes = wanted
                .iter()
                .enumerate()
                .map(|(i, a)| {
                    let name = a
                        .name
                        .clone()
                        .or_else(|| a.domain.clone())
                        .unwrap_or_default();
                    let mut fields = Map::new();
                    fields.insert("name".to_owned(), Value::String(name));
                    if let Some(d) = &a.domain {
                        fields.insert("domain".to_owned(), Value::String(d.clone()));
                    }
                    (i, BatchWrite::Create(Value::Object(fields)))
                })
                .collect();
            let outcome =
                records::import_batch::<Accounts>(tx, self.ctx, self.keys, &defs, writes).await?;
            for (_, model, _) in outcome.written {
                if let Some(d) = &model.domain {
                    by_domain.insert(d.clone(), model.id);
                }
                by_name.insert(model.name.to_lowercase(), model.id);
            }
            for (i, e) in outcome.refused {
                let errors = match e {
                    Error::Validation(errs) => errs
                        .into_iter()
                        .map(|f| {
                            let col = if f.field == "domain" {
                                "account_domain"
                            } else {
                                "account_name"
                            };
                            RowError::new(
                                self.plan.column_of(col),
                                Some(col),
                                &f.code,
                                format!("the account cannot be created: {}", f.message),
                            )
                        })
                        .collect(),
                    other => vec![RowError::new(None, None, other.code(), other.to_string())],
                };
                creation_errors.insert(i, errors);
            }
        }
        for (index, a) in refs {
            match lookup(a, &by_domain, &by_name) {
                Some(id) => {
                    found.insert(*index, id);
                }
                None => {
                    let pos = wanted.iter().position(|w| same_account(w, a));
                    let errors = pos
                        .and_then(|p| creation_errors.get(&p).cloned())
                        .unwrap_or_else(|| {
                            let (field, what) = match (&a.domain, &a.name) {
                                (Some(d), _) => ("account_domain", d.clone()),
                                (None, Some(n)) => ("account_name", n.clone()),
                                _ => ("account_name", String::new()),
                            };
                            vec![RowError::new(
                                self.plan.column_of(field),
                                Some(field),
                                "not_found",
                                format!("no account `{what}` (ask to create missing accounts)"),
                            )]
                        });
                    failed.push((*index, errors));
                }
            }
        }
        Ok((found, failed))
    }

    /// Links contacts to accounts, skipping links that exist.
    async fn link(&self, tx: &DatabaseTransaction, pairs: Vec<(Uuid, Uuid)>) -> Result<()> {
        let contacts: Vec<Uuid> = pairs.iter().map(|(c, _)| *c).collect();
        let present: HashSet<(Uuid, Uuid)> = contact_account::Entity::find()
            .select_only()
            .column(contact_account::Column::ContactId)
            .column(contact_account::Column::AccountId)
            .filter(contact_account::Column::TenantId.eq(self.ctx.tenant_id))
            .filter(contact_account::Column::ContactId.is_in(contacts))
            .into_tuple::<(Uuid, Uuid)>()
            .all(tx)
            .await?
            .into_iter()
            .collect();
        let now = crate::clock::now();
        let mut rows = Vec::new();
        let mut entries = Vec::new();
        for (contact_id, account_id) in pairs {
            if present.contains(&(contact_id, account_id)) {
                continue;
            }
            let id = Uuid::now_v7();
            rows.push(contact_account::ActiveModel {
                id: Set(id),
                tenant_id: Set(self.ctx.tenant_id),
                contact_id: Set(contact_id),
                account_id: Set(account_id),
                role: Set(self.options.account_role.clone()),
                created_at: Set(now),
            });
            entries.push(crate::audit::AuditEntry::new(
                ObjectType::Contact,
                contact_id,
                crate::audit::AuditAction::Link,
                json!({"account": {"id": id, "account_id": account_id, "role": self.options.account_role}}),
            ));
        }
        for chunk in rows.chunks(500) {
            contact_account::Entity::insert_many(chunk.to_vec())
                .exec_without_returning(tx)
                .await?;
        }
        crate::audit::write(tx, self.ctx, entries).await
    }
}

fn duplicate(label: &str, field: &str, id: Option<Uuid>, plan: &Plan) -> RowError {
    let message = match id {
        Some(id) => format!("a {label} with this {field} exists already ({id})"),
        None => format!("an earlier row of the file has this {field}"),
    };
    RowError::new(plan.column_of(field), Some(field), "duplicate", message)
}

/// The patch an update row makes: its fields, with lists (emails, phones,
/// tags) added to what the record has rather than replacing it.
fn patch_over(current: &Value, fields: &Map<String, Value>) -> Value {
    let mut patch = fields.clone();
    for (key, same) in [("emails", "address"), ("phones", "number"), ("tags", "")] {
        let (Some(Value::Array(new)), Some(Value::Array(old))) =
            (patch.get(key).cloned(), current.get(key))
        else {
            continue;
        };
        let mut merged = old.clone();
        for item in new {
            let id = |v: &Value| {
                if same.is_empty() {
                    v.as_str().map(str::to_lowercase)
                } else {
                    v.get(same).and_then(Value::as_str).map(str::to_lowercase)
                }
            };
            if !merged.iter().any(|m| id(m) == id(&item)) {
                let mut item = item;
                if key == "emails"
                    && let Some(o) = item.as_object_mut()
                {
                    // The record keeps its primary address.
                    o.remove("primary");
                }
                merged.push(item);
            }
        }
        patch.insert(key.to_owned(), Value::Array(merged));
    }
    // Blank cells set nothing, and custom values the row does not name stay
    // (a merge patch merges objects).
    Value::Object(patch)
}
