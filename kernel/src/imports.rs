//! Imports: a file (CSV, XLSX, JSON lines, vCard) becomes records through a
//! column mapping, as a background job that writes in batches.
//!
//! The flow: [`upload`] keeps the file in the database (so any kernel
//! process can run the import), reads it once and suggests a mapping;
//! [`start`] checks the mapping and options and queues the job; the job
//! ([`run::run`]) writes batch by batch, each batch one transaction holding
//! its records, its rejected rows and the import's progress together, so a
//! crashed or cancelled import resumes from its last committed batch
//! without duplicates. Every row goes through the same checks, plugin
//! hooks and audit as a write through the API.

pub mod decode;
pub mod mapping;
pub mod rejects;
pub mod run;
pub mod sources;
pub mod transform;
pub mod vcard;

use std::io::{Read, Write};

use chrono::{DateTime, Utc};
use futures_util::{Stream, StreamExt};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::Acting;
use crate::context::RequestContext;
use crate::entities::{import, import_chunk, import_template};
use crate::error::{Error, FieldError, Result};
use crate::imports::mapping::ColumnMapping;
use crate::imports::sources::{Format, Sniffed};
use crate::permissions::{Action, ObjectType};

/// The size of the pieces an uploaded file is stored in.
const CHUNK: usize = 4 << 20;

/// What an import does with rows that match an existing record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// New records only; a row matching an existing record is rejected as
    /// a duplicate.
    #[default]
    Create,
    /// Existing records only; a row matching none is rejected.
    Update,
    /// Update the match, or create when there is none.
    Upsert,
}

/// How an import writes its rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Options {
    pub mapping: Vec<ColumnMapping>,
    #[serde(default)]
    pub mode: Mode,
    /// The field that finds an existing record: `emails` (the primary
    /// address) for contacts, `domain` or `name` for accounts, `id`, or a
    /// unique custom field (`custom.<key>`, e.g. an external id). By
    /// default the first of these the mapping fills.
    #[serde(default)]
    pub match_on: Option<String>,
    /// Contacts: create the accounts named in `account_name` /
    /// `account_domain` columns that do not exist yet (else such rows are
    /// rejected).
    #[serde(default)]
    pub create_missing_accounts: bool,
    /// Contacts: the role recorded on new contact–account links.
    #[serde(default)]
    pub account_role: Option<String>,
}

/// Body of `POST /api/v1/imports/{id}/start`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartRequest {
    /// The column mapping; absent: the template's, else the suggested one.
    #[serde(default)]
    pub mapping: Option<Vec<ColumnMapping>>,
    /// A saved template (by name) supplying the mapping and options.
    #[serde(default)]
    pub template: Option<String>,
    #[serde(default)]
    pub mode: Option<Mode>,
    #[serde(default)]
    pub match_on: Option<String>,
    #[serde(default)]
    pub create_missing_accounts: Option<bool>,
    #[serde(default)]
    pub account_role: Option<String>,
    /// Check every row and report the errors without writing anything.
    #[serde(default)]
    pub dry_run: bool,
    /// Save the mapping and options as a template of this name.
    #[serde(default)]
    pub save_template: Option<String>,
}

/// An import as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ImportView {
    pub id: Uuid,
    /// `contact` or `account`.
    pub object: String,
    pub format: Format,
    pub filename: String,
    pub size_bytes: i64,
    /// `uploaded`, `queued`, `running`, `done`, `failed` or `cancelled`.
    pub status: String,
    pub dry_run: bool,
    pub encoding: Option<String>,
    pub delimiter: Option<String>,
    pub headers: Vec<String>,
    /// The first rows of the file.
    pub sample: Vec<Vec<String>>,
    /// The mapping suggested from the headers (before the import starts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suggested_mapping: Option<Vec<ColumnMapping>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub options: Option<Options>,
    pub total_rows: Option<i64>,
    /// Rows dealt with so far (written or rejected).
    pub processed_rows: i64,
    pub created: i64,
    pub updated: i64,
    pub rejected: i64,
    /// Pairs of likely duplicates (a new record and a stored one, or two
    /// new ones) queued for review in the duplicates queue.
    pub likely_duplicates: i64,
    /// 0 to 100.
    pub percent: f64,
    /// Rows a second over the current run.
    pub rows_per_second: Option<f64>,
    /// Seconds left at that rate.
    pub eta_seconds: Option<i64>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

fn view(m: &import::Model, targets_for_suggestion: Option<&[mapping::Target]>) -> ImportView {
    let source: Sniffed = serde_json::from_value(m.source.clone()).unwrap_or_default();
    let options: Option<Options> = serde_json::from_value(m.options.clone()).ok();
    let done = m.committed_rows;
    let percent = match m.total_rows {
        Some(t) if t > 0 => (done as f64 * 100.0 / t as f64).min(100.0),
        Some(_) => 100.0,
        None => 0.0,
    };
    let rate = m.run_started_at.and_then(|started| {
        let end = m.finished_at.unwrap_or_else(Utc::now);
        let secs = (end - started).num_milliseconds() as f64 / 1000.0;
        let rows = (done - m.run_start_rows) as f64;
        (secs >= 1.0 && rows > 0.0).then(|| rows / secs)
    });
    let eta = match (rate, m.total_rows) {
        (Some(r), Some(t)) if m.status == "running" => Some(((t - done) as f64 / r).ceil() as i64),
        _ => None,
    };
    ImportView {
        id: m.id,
        object: m.object_type.clone(),
        format: Format::parse(&m.format).unwrap_or(Format::Csv),
        filename: m.filename.clone(),
        size_bytes: m.size_bytes,
        status: m.status.clone(),
        dry_run: m.dry_run,
        encoding: source.encoding.clone(),
        delimiter: source.delimiter.map(|d| d.to_string()),
        suggested_mapping: targets_for_suggestion.map(|t| mapping::suggest(&source.headers, t)),
        headers: source.headers,
        sample: source.sample,
        options,
        total_rows: m.total_rows,
        processed_rows: done,
        created: m.created_count,
        updated: m.updated_count,
        rejected: m.rejected_count,
        likely_duplicates: m.duplicate_count,
        percent,
        rows_per_second: rate,
        eta_seconds: eta,
        error: m.error.clone(),
        created_at: m.created_at,
        finished_at: m.finished_at,
    }
}

/// A local file as an upload body, in pieces of 1 MiB (the command line
/// and the benchmark upload files this way).
pub fn file_body(
    file: tokio::fs::File,
) -> std::pin::Pin<Box<dyn Stream<Item = std::result::Result<axum::body::Bytes, String>> + Send>> {
    Box::pin(futures_util::stream::unfold(file, |mut file| async move {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 1 << 20];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(axum::body::Bytes::from(buf)), file))
            }
            Err(e) => Some((Err(e.to_string()), file)),
        }
    }))
}

/// The object type named in a path or flag: `contacts`, `contact`...
pub fn object_named(name: &str) -> Result<ObjectType> {
    let singular = name.strip_suffix('s').unwrap_or(name);
    ObjectType::parse(singular)
        .filter(|o| mapping::importable(*o))
        .ok_or_else(|| {
            Error::field(
                "object",
                "invalid_value",
                "imports write `contacts` or `accounts`",
            )
        })
}

/// The fields an import of `object` can fill.
pub async fn targets<C: ConnectionTrait>(
    db: &C,
    ctx: &RequestContext,
    object: ObjectType,
) -> Result<Vec<mapping::Target>> {
    let defs = crate::crm::custom_fields::definitions(db, ctx.tenant_id, object).await?;
    let mut targets = mapping::targets(object, &defs);
    // Fields hidden from or read-only for the caller cannot be imported.
    targets.retain(|t| {
        let root = if t.key.starts_with("custom.") {
            t.key.as_str()
        } else {
            match t.key.as_str() {
                "full_name" => "first_name",
                "account_name" | "account_domain" => return true,
                k => k,
            }
        };
        ctx.policy.field_access(object, root).is_none()
    });
    Ok(targets)
}

/// Stores an uploaded file and reads it once: encoding, delimiter, headers,
/// a sample and its number of rows.
pub async fn upload<S>(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    object: ObjectType,
    format: Format,
    filename: &str,
    mut body: S,
) -> Result<ImportView>
where
    S: Stream<Item = std::result::Result<axum::body::Bytes, String>> + Unpin,
{
    ctx.require(object, Action::Import)?;
    // The body goes to a temporary file first and is read there: no
    // transaction (on SQLite, the database's one writer) waits on a client's
    // upload speed or on reading a large file.
    let mut file = tempfile::NamedTempFile::new().map_err(|e| Error::Internal(e.to_string()))?;
    let mut size: i64 = 0;
    while let Some(piece) = body.next().await {
        let piece = piece.map_err(|e| Error::BadRequest(format!("the upload broke off: {e}")))?;
        size += piece.len() as i64;
        file.write_all(&piece)
            .map_err(|e| Error::Internal(e.to_string()))?;
    }
    if size == 0 {
        return Err(Error::field("file", "required", "the file is empty"));
    }
    file.flush().map_err(|e| Error::Internal(e.to_string()))?;
    let path = file.path().to_owned();
    let sniffed = tokio::task::spawn_blocking(move || sources::inspect(&path, format))
        .await
        .map_err(|e| Error::Internal(e.to_string()))??;
    let targets = targets(db, ctx, object).await?;

    // Then the file is kept in the database, so that any process can run
    // the import, in one transaction with the import's row.
    let id = Uuid::now_v7();
    let now = crate::clock::now();
    let tx = crate::db::tenant_tx(db, ctx).await?;
    let model = import::ActiveModel {
        id: Set(id),
        tenant_id: Set(ctx.tenant_id),
        object_type: Set(object.as_str().to_owned()),
        format: Set(format.as_str().to_owned()),
        filename: Set(filename.chars().take(200).collect()),
        size_bytes: Set(size),
        status: Set("uploaded".to_owned()),
        dry_run: Set(false),
        source: Set(serde_json::to_value(&sniffed).map_err(|e| Error::Internal(e.to_string()))?),
        options: Set(Value::Null),
        total_rows: Set(Some(sniffed.total_rows)),
        committed_rows: Set(0),
        created_count: Set(0),
        updated_count: Set(0),
        rejected_count: Set(0),
        duplicate_count: Set(0),
        actor: Set(
            serde_json::to_value(Acting::of(ctx)).map_err(|e| Error::Internal(e.to_string()))?
        ),
        job_id: Set(None),
        error: Set(None),
        run_started_at: Set(None),
        run_start_rows: Set(0),
        created_at: Set(now),
        updated_at: Set(now),
        finished_at: Set(None),
    }
    .insert(&tx)
    .await?;
    let mut reader = std::io::BufReader::new(
        std::fs::File::open(file.path()).map_err(|e| Error::Internal(e.to_string()))?,
    );
    let mut seq = 0;
    loop {
        let mut chunk = Vec::with_capacity(CHUNK);
        std::io::Read::by_ref(&mut reader)
            .take(CHUNK as u64)
            .read_to_end(&mut chunk)
            .map_err(|e| Error::Internal(e.to_string()))?;
        if chunk.is_empty() {
            break;
        }
        store_chunk(&tx, ctx, id, seq, chunk).await?;
        seq += 1;
    }
    tx.commit().await?;
    Ok(view(&model, Some(&targets)))
}

async fn store_chunk<C: ConnectionTrait>(
    db: &C,
    ctx: &RequestContext,
    import_id: Uuid,
    seq: i32,
    data: Vec<u8>,
) -> Result<()> {
    import_chunk::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(ctx.tenant_id),
        import_id: Set(import_id),
        seq: Set(seq),
        data: Set(data),
    }
    .insert(db)
    .await?;
    Ok(())
}

/// An import of the caller's tenant (404 for another tenant's).
pub async fn load<C: ConnectionTrait>(
    db: &C,
    ctx: &RequestContext,
    id: Uuid,
) -> Result<import::Model> {
    let m = import::Entity::find_by_id(id)
        .filter(import::Column::TenantId.eq(ctx.tenant_id))
        .one(db)
        .await?
        .ok_or(Error::NotFound("import"))?;
    let object = ObjectType::parse(&m.object_type).ok_or(Error::NotFound("import"))?;
    ctx.require(object, Action::Import)
        .map_err(|_| Error::NotFound("import"))?;
    Ok(m)
}

/// One import's state and progress.
pub async fn get(db: &DatabaseConnection, ctx: &RequestContext, id: Uuid) -> Result<ImportView> {
    Ok(get_with_targets(db, ctx, id).await?.0)
}

/// An import and, while a mapping can still be chosen for it (uploaded, or
/// after a dry run), the fields it can fill: loaded once for both the
/// suggestion and a page's choices.
pub async fn get_with_targets(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    id: Uuid,
) -> Result<(ImportView, Option<Vec<mapping::Target>>)> {
    let m = load(db, ctx, id).await?;
    let object = ObjectType::parse(&m.object_type).ok_or(Error::NotFound("import"))?;
    let mappable = m.status == "uploaded" || (m.status == "done" && m.dry_run);
    let targets = if mappable {
        Some(targets(db, ctx, object).await?)
    } else {
        None
    };
    let suggest = targets.as_deref().filter(|_| m.status == "uploaded");
    Ok((view(&m, suggest), targets))
}

/// The tenant's recent imports, newest first.
pub async fn list(db: &DatabaseConnection, ctx: &RequestContext) -> Result<Vec<ImportView>> {
    let rows = import::Entity::find()
        .filter(import::Column::TenantId.eq(ctx.tenant_id))
        .order_by_desc(import::Column::CreatedAt)
        .order_by_desc(import::Column::Id)
        .limit(100)
        .all(db)
        .await?;
    Ok(rows
        .iter()
        .filter(|m| ObjectType::parse(&m.object_type).is_some_and(|o| ctx.can(o, Action::Import)))
        .map(|m| view(m, None))
        .collect())
}

/// The default match field: the first the mapping fills of those that
/// identify a record.
fn default_match(object: ObjectType, mapping: &[ColumnMapping]) -> Option<String> {
    let candidates: &[&str] = match object {
        ObjectType::Contact => &["id", "emails"],
        _ => &["id", "domain", "name"],
    };
    candidates
        .iter()
        .find(|c| mapping.iter().any(|m| m.field == **c))
        .map(|c| (*c).to_owned())
}

/// Checks the options, saves a template if asked, and queues the import.
pub async fn start(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    id: Uuid,
    req: StartRequest,
) -> Result<ImportView> {
    let m = load(db, ctx, id).await?;
    let object = ObjectType::parse(&m.object_type).ok_or(Error::NotFound("import"))?;
    let rerun = m.status == "done" && m.dry_run;
    if m.status != "uploaded" && !rerun {
        return Err(Error::Conflict {
            code: "import_started",
            message: format!("this import is {} already", m.status),
        });
    }
    let source: Sniffed = serde_json::from_value(m.source.clone()).unwrap_or_default();
    let targets = targets(db, ctx, object).await?;
    let template = match &req.template {
        Some(name) => Some(template_options(db, ctx, object, name).await?),
        None => None,
    };
    let mapping = req
        .mapping
        .clone()
        .or_else(|| template.as_ref().map(|t| t.mapping.clone()))
        .unwrap_or_else(|| mapping::suggest(&source.headers, &targets));
    mapping::check(&mapping, &source.headers, &targets)?;
    let mode = req
        .mode
        .or(template.as_ref().map(|t| t.mode))
        .unwrap_or_default();
    let match_on = req
        .match_on
        .clone()
        .or_else(|| template.as_ref().and_then(|t| t.match_on.clone()))
        .or_else(|| default_match(object, &mapping));
    let options = Options {
        mode,
        match_on,
        create_missing_accounts: req
            .create_missing_accounts
            .or(template.as_ref().map(|t| t.create_missing_accounts))
            .unwrap_or(false),
        account_role: req
            .account_role
            .clone()
            .or_else(|| template.as_ref().and_then(|t| t.account_role.clone())),
        mapping,
    };
    check_options(db, ctx, object, &options).await?;
    require_rights(ctx, object, &options, req.dry_run)?;
    let tx = crate::db::tenant_tx(db, ctx).await?;
    if let Some(name) = &req.save_template {
        save_template(&tx, ctx, object, name, &options).await?;
    }
    // A dry run's findings make way for the real run's.
    crate::entities::import_reject::Entity::delete_many()
        .filter(crate::entities::import_reject::Column::ImportId.eq(id))
        .filter(crate::entities::import_reject::Column::TenantId.eq(ctx.tenant_id))
        .exec(&tx)
        .await?;
    let job_id = crate::jobs::enqueue(
        &tx,
        ctx.tenant_id,
        crate::jobs::Kind::Import,
        None,
        "import",
        serde_json::json!({"import_id": id}),
        crate::clock::now(),
    )
    .await?;
    let now = crate::clock::now();
    let queued = import::ActiveModel {
        id: Set(id),
        status: Set("queued".to_owned()),
        dry_run: Set(req.dry_run),
        options: Set(serde_json::to_value(&options).map_err(|e| Error::Internal(e.to_string()))?),
        actor: Set(
            serde_json::to_value(Acting::of(ctx)).map_err(|e| Error::Internal(e.to_string()))?
        ),
        job_id: Set(Some(job_id)),
        committed_rows: Set(0),
        created_count: Set(0),
        updated_count: Set(0),
        rejected_count: Set(0),
        duplicate_count: Set(0),
        error: Set(None),
        run_started_at: Set(None),
        run_start_rows: Set(0),
        finished_at: Set(None),
        updated_at: Set(now),
        ..Default::default()
    };
    // Only from the state read above: of two starts at once, one wins and
    // the other is a conflict (its job rolls back with it), so progress is
    // never reset under a running job.
    let model = import::Entity::update(queued)
        .validate()?
        .filter(import::Column::TenantId.eq(ctx.tenant_id))
        .filter(import::Column::Status.eq(m.status.as_str()))
        .filter(import::Column::DryRun.eq(m.dry_run))
        .exec(&tx)
        .await
        .map_err(|e| match e {
            sea_orm::DbErr::RecordNotUpdated => Error::Conflict {
                code: "import_started",
                message: "this import was started meanwhile".to_owned(),
            },
            other => other.into(),
        })?;
    tx.commit().await?;
    crate::crm::records::kick_jobs(ctx);
    Ok(view(&model, None))
}

/// The rights an import needs: to import, and to create and/or update
/// (accounts too, when missing ones are created) unless it is a dry run.
/// Checked when it starts and again when its job runs.
pub fn require_rights(
    ctx: &RequestContext,
    object: ObjectType,
    options: &Options,
    dry_run: bool,
) -> Result<()> {
    ctx.require(object, Action::Import)?;
    if dry_run {
        return Ok(());
    }
    if options.mode != Mode::Update {
        ctx.require(object, Action::Create)?;
    }
    if options.mode != Mode::Create {
        ctx.require(object, Action::Update)?;
    }
    if options.create_missing_accounts {
        ctx.require(ObjectType::Account, Action::Create)?;
    }
    Ok(())
}

async fn check_options<C: ConnectionTrait>(
    db: &C,
    ctx: &RequestContext,
    object: ObjectType,
    options: &Options,
) -> Result<()> {
    let mut errors = Vec::new();
    let defs = crate::crm::custom_fields::definitions(db, ctx.tenant_id, object).await?;
    match options.match_on.as_deref() {
        None if options.mode != Mode::Create => errors.push(FieldError::new(
            "match_on",
            "required",
            "updating needs a field to match records on: map `id`, an email or a unique field",
        )),
        None => {}
        Some(field) => {
            let builtin: &[&str] = match object {
                ObjectType::Contact => &["id", "emails"],
                _ => &["id", "domain", "name"],
            };
            let unique_custom = field
                .strip_prefix("custom.")
                .and_then(|k| defs.iter().find(|d| d.key == k))
                .is_some_and(|d| d.unique && !d.sensitive);
            if !builtin.contains(&field) && !unique_custom {
                errors.push(FieldError::new(
                    "match_on",
                    "invalid_value",
                    format!(
                        "records are matched on {} or a unique custom field",
                        builtin.join(", ")
                    ),
                ));
            } else if !options.mapping.iter().any(|m| m.field == field) {
                errors.push(FieldError::new(
                    "match_on",
                    "not_mapped",
                    format!("no column is mapped to `{field}`"),
                ));
            }
        }
    }
    if object != ObjectType::Contact
        && (options.create_missing_accounts || options.account_role.is_some())
    {
        errors.push(FieldError::new(
            "create_missing_accounts",
            "invalid_value",
            "only contact imports link to accounts",
        ));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::Validation(errors))
    }
}

/// Stops a queued or running import after its current batch; what was
/// committed stays.
pub async fn cancel(db: &DatabaseConnection, ctx: &RequestContext, id: Uuid) -> Result<ImportView> {
    let m = load(db, ctx, id).await?;
    if !matches!(m.status.as_str(), "queued" | "running" | "uploaded") {
        return Err(Error::Conflict {
            code: "import_finished",
            message: format!("this import is {} already", m.status),
        });
    }
    let now = crate::clock::now();
    import::Entity::update_many()
        .col_expr(
            import::Column::Status,
            sea_orm::sea_query::Expr::value("cancelled"),
        )
        .col_expr(
            import::Column::FinishedAt,
            sea_orm::sea_query::Expr::value(now),
        )
        .col_expr(
            import::Column::UpdatedAt,
            sea_orm::sea_query::Expr::value(now),
        )
        .filter(import::Column::Id.eq(id))
        .filter(import::Column::TenantId.eq(ctx.tenant_id))
        .filter(import::Column::Status.is_in(["queued", "running", "uploaded"]))
        .exec(db)
        .await?;
    forget_file(db, ctx.tenant_id, id).await?;
    get(db, ctx, id).await
}

/// Deletes an import's stored file once nothing can run it again (done for
/// real, failed or cancelled); its rejects keep the rows the error file
/// needs.
pub async fn forget_file<C: ConnectionTrait>(db: &C, tenant_id: Uuid, id: Uuid) -> Result<()> {
    import_chunk::Entity::delete_many()
        .filter(import_chunk::Column::TenantId.eq(tenant_id))
        .filter(import_chunk::Column::ImportId.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

/// A saved mapping and options.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Template {
    pub id: Uuid,
    pub object: String,
    pub name: String,
    pub options: Options,
    pub updated_at: DateTime<Utc>,
}

fn template_out(m: import_template::Model) -> Option<Template> {
    Some(Template {
        id: m.id,
        object: m.object_type,
        name: m.name,
        options: serde_json::from_value(m.options).ok()?,
        updated_at: m.updated_at,
    })
}

/// Body of `POST /api/v1/import-templates`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateInput {
    /// `contacts` or `accounts`.
    pub object: String,
    pub name: String,
    pub options: Options,
}

async fn save_template<C: ConnectionTrait>(
    db: &C,
    ctx: &RequestContext,
    object: ObjectType,
    name: &str,
    options: &Options,
) -> Result<Template> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(Error::field(
            "save_template",
            "invalid_length",
            "a template name has 1 to 100 characters",
        ));
    }
    let now = crate::clock::now();
    let json = serde_json::to_value(options).map_err(|e| Error::Internal(e.to_string()))?;
    let existing = import_template::Entity::find()
        .filter(import_template::Column::TenantId.eq(ctx.tenant_id))
        .filter(import_template::Column::ObjectType.eq(object.as_str()))
        .filter(import_template::Column::Name.eq(name))
        .one(db)
        .await?;
    let model = match existing {
        // Saving under an existing name replaces that template.
        Some(e) => {
            import_template::ActiveModel {
                id: Set(e.id),
                options: Set(json),
                updated_at: Set(now),
                ..Default::default()
            }
            .update(db)
            .await?
        }
        None => {
            import_template::ActiveModel {
                id: Set(Uuid::now_v7()),
                tenant_id: Set(ctx.tenant_id),
                object_type: Set(object.as_str().to_owned()),
                name: Set(name.to_owned()),
                options: Set(json),
                created_by: Set(ctx.user_id),
                created_at: Set(now),
                updated_at: Set(now),
            }
            .insert(db)
            .await?
        }
    };
    template_out(model).ok_or_else(|| Error::Internal("template options".to_owned()))
}

async fn template_options<C: ConnectionTrait>(
    db: &C,
    ctx: &RequestContext,
    object: ObjectType,
    name: &str,
) -> Result<Options> {
    import_template::Entity::find()
        .filter(import_template::Column::TenantId.eq(ctx.tenant_id))
        .filter(import_template::Column::ObjectType.eq(object.as_str()))
        .filter(import_template::Column::Name.eq(name))
        .one(db)
        .await?
        .and_then(template_out)
        .map(|t| t.options)
        .ok_or_else(|| {
            Error::field(
                "template",
                "not_found",
                format!("no template named `{name}`"),
            )
        })
}

/// Saves a template (replacing one of the same name).
pub async fn create_template(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    input: TemplateInput,
) -> Result<Template> {
    let object = object_named(&input.object)?;
    ctx.require(object, Action::Import)?;
    let targets = targets(db, ctx, object).await?;
    for (i, m) in input.options.mapping.iter().enumerate() {
        if targets.iter().all(|t| t.key != m.field) {
            return Err(Error::field(
                format!("options.mapping[{i}].field"),
                "unknown_field",
                format!("`{}` is not a field an import can fill", m.field),
            ));
        }
    }
    check_options(db, ctx, object, &input.options).await?;
    let tx = crate::db::tenant_tx(db, ctx).await?;
    let t = save_template(&tx, ctx, object, &input.name, &input.options).await?;
    tx.commit().await?;
    Ok(t)
}

/// The tenant's templates for the object types the caller may import.
pub async fn templates(db: &DatabaseConnection, ctx: &RequestContext) -> Result<Vec<Template>> {
    let rows = import_template::Entity::find()
        .filter(import_template::Column::TenantId.eq(ctx.tenant_id))
        .order_by_asc(import_template::Column::ObjectType)
        .order_by_asc(import_template::Column::Name)
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .filter(|m| ObjectType::parse(&m.object_type).is_some_and(|o| ctx.can(o, Action::Import)))
        .filter_map(template_out)
        .collect())
}

/// Deletes a template.
pub async fn delete_template(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    id: Uuid,
) -> Result<()> {
    let m = import_template::Entity::find_by_id(id)
        .filter(import_template::Column::TenantId.eq(ctx.tenant_id))
        .one(db)
        .await?
        .ok_or(Error::NotFound("import template"))?;
    let object = ObjectType::parse(&m.object_type).ok_or(Error::NotFound("import template"))?;
    ctx.require(object, Action::Import)
        .map_err(|_| Error::NotFound("import template"))?;
    import_template::Entity::delete_by_id(id).exec(db).await?;
    Ok(())
}
