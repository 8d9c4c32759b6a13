//! Data-subject rights (GDPR): export everything about a contact, erase
//! their personal data everywhere it lives, keep consent records, and hold
//! a contact's data when the law requires (legal hold blocks erasure).
//!
//! Erasure keeps a tombstone (the contact row, emptied, with `erased_at`)
//! so that deals and activities still point somewhere, and keeps the audit
//! trail verifiable: entries about the contact and its activities have their
//! `changes` blanked and `redacted_at` set, the chain hashes a digest of
//! `changes` rather than `changes` itself, and an `erase` entry names every
//! redacted entry (see `audit::chain`).

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set, Statement,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::audit::{self, AuditAction, AuditEntry};
use crate::context::RequestContext;
use crate::crm::activities::Activities;
use crate::crm::contacts::Contacts;
use crate::crm::deals::Deals;
use crate::crm::records;
use crate::db::dialect::param;
use crate::entities::{
    activity, audit_log, consent, contact, contact_account, contact_relationship, deal, job, outbox,
};
use crate::error::{Error, Result};
use crate::permissions::{Action, FieldAccess, ObjectType};

/// What erasure writes in place of a blanked text.
const ERASED: &str = "[erased]";

/// A contact's legal hold and erasure time.
pub(crate) async fn flags<C: ConnectionTrait>(
    db: &C,
    ctx: &RequestContext,
    id: Uuid,
) -> Result<(bool, Option<DateTime<Utc>>)> {
    let backend = db.get_database_backend();
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            format!(
                "SELECT legal_hold, erased_at FROM contacts WHERE tenant_id = {} AND id = {}",
                param(backend, 1),
                param(backend, 2)
            ),
            [ctx.tenant_id.into(), id.into()],
        ))
        .await?
        .ok_or(Error::NotFound("contact"))?;
    Ok((
        row.try_get("", "legal_hold")?,
        row.try_get("", "erased_at")?,
    ))
}

/// The privacy columns of `contacts` (not part of the record's API shape).
pub(crate) enum Flag {
    LegalHold,
    ErasedAt,
}

pub(crate) async fn set_flag<C: ConnectionTrait>(
    db: &C,
    ctx: &RequestContext,
    id: Uuid,
    flag: Flag,
    value: sea_orm::Value,
) -> Result<()> {
    let column = match flag {
        Flag::LegalHold => "legal_hold",
        Flag::ErasedAt => "erased_at",
    };
    let backend = db.get_database_backend();
    db.execute_raw(Statement::from_sql_and_values(
        backend,
        format!(
            "UPDATE contacts SET {column} = {} WHERE tenant_id = {} AND id = {}",
            param(backend, 1),
            param(backend, 2),
            param(backend, 3)
        ),
        [value, ctx.tenant_id.into(), id.into()],
    ))
    .await?;
    Ok(())
}

/// Refuses `what` (a merge away, a delete into the trash) for a contact
/// under legal hold or already erased: either would let its data (or its
/// hold) slip out of the privacy rules.
pub(crate) async fn refuse_if_held<C: ConnectionTrait>(
    db: &C,
    ctx: &RequestContext,
    id: Uuid,
    what: &str,
) -> Result<()> {
    let (hold, erased) = flags(db, ctx, id).await?;
    if hold {
        return Err(Error::Conflict {
            code: "legal_hold",
            message: format!("this contact is under legal hold: {what} is refused"),
        });
    }
    if erased.is_some() {
        return Err(Error::Conflict {
            code: "erased",
            message: format!("this contact was erased: {what} is refused"),
        });
    }
    Ok(())
}

/// Everything the kernel holds about one contact, as one JSON document.
pub async fn export(db: &DatabaseConnection, ctx: &RequestContext, id: Uuid) -> Result<Value> {
    ctx.require(ObjectType::Contact, Action::Export)?;
    let c = records::get::<Contacts>(db, ctx, id).await?;
    let (legal_hold, erased_at) = flags(db, ctx, id).await?;
    let contact = records::reveal_many::<Contacts>(db, ctx, std::slice::from_ref(&c), true)
        .await?
        .pop()
        .unwrap_or(Value::Null);
    // Linked deals and activities as far as the caller may read them; a
    // partial export says so (`complete: false`), so a data-protection
    // officer knows to run it with a role that reaches everything.
    let mut complete = true;
    let acts = if ctx.can(ObjectType::Activity, Action::Read) {
        let mut q = activity::Entity::find()
            .filter(activity::Column::TenantId.eq(ctx.tenant_id))
            .filter(activity::Column::ContactId.eq(id));
        if let Some(owners) = records::reachable_owners(db, ctx, ObjectType::Activity).await? {
            complete = false;
            q = q.filter(activity::Column::OwnerId.is_in(owners));
        }
        q.order_by_asc(activity::Column::CreatedAt).all(db).await?
    } else {
        complete = false;
        Vec::new()
    };
    let deals = if ctx.can(ObjectType::Deal, Action::Read) {
        let mut q = deal::Entity::find()
            .filter(deal::Column::TenantId.eq(ctx.tenant_id))
            .filter(deal::Column::ContactId.eq(id));
        if let Some(owners) = records::reachable_owners(db, ctx, ObjectType::Deal).await? {
            complete = false;
            q = q.filter(deal::Column::OwnerId.is_in(owners));
        }
        q.all(db).await?
    } else {
        complete = false;
        Vec::new()
    };
    let hidden_fields = [ObjectType::Contact, ObjectType::Activity, ObjectType::Deal]
        .into_iter()
        .any(|o| {
            ctx.policy
                .field_rules(o)
                .is_some_and(|r| r.values().any(|a| *a == FieldAccess::Hidden))
        });
    if hidden_fields {
        complete = false;
    }
    let accounts = contact_account::Entity::find()
        .filter(contact_account::Column::TenantId.eq(ctx.tenant_id))
        .filter(contact_account::Column::ContactId.eq(id))
        .all(db)
        .await?;
    let relationships = contact_relationship::Entity::find()
        .filter(contact_relationship::Column::TenantId.eq(ctx.tenant_id))
        .filter(
            sea_orm::Condition::any()
                .add(contact_relationship::Column::FromContactId.eq(id))
                .add(contact_relationship::Column::ToContactId.eq(id)),
        )
        .all(db)
        .await?;
    let consents = consent_history(db, ctx, id).await?;
    let trail = audit_log::Entity::find()
        .filter(audit_log::Column::TenantId.eq(ctx.tenant_id))
        .filter(audit_log::Column::RecordId.eq(id))
        .order_by_asc(audit_log::Column::Seq)
        .all(db)
        .await?;
    let (plugin_data, plugins_complete) = plugins_personal_data(ctx, id).await?;
    complete &= plugins_complete;
    let doc = json!({
        "format": "trellis.data-subject-export.v1",
        "exported_at": crate::clock::now(),
        "complete": complete,
        "contact": contact,
        "legal_hold": legal_hold,
        "erased_at": erased_at,
        "activities": records::reveal_many::<Activities>(db, ctx, &acts, true).await?,
        "deals": records::reveal_many::<Deals>(db, ctx, &deals, true).await?,
        "account_links": accounts.iter().map(|l| json!({"account_id": l.account_id, "role": l.role})).collect::<Vec<_>>(),
        "relationships": relationships.iter().map(|r| json!({"from": r.from_contact_id, "to": r.to_contact_id, "kind": r.kind})).collect::<Vec<_>>(),
        "consents": consents,
        "audit_trail": trail.into_iter().map(|e| crate::audit::query::AuditEntryOut::visible_to(e, ctx, true)).collect::<Vec<_>>(),
        "plugin_data": plugin_data,
    });
    audit::record(
        db,
        ctx,
        vec![AuditEntry::new(
            ObjectType::Contact,
            id,
            AuditAction::Export,
            json!({"kind": "data_subject_export"}),
        )],
    )
    .await?;
    Ok(doc)
}

/// What each plugin that may read contacts keeps about one (its
/// `personal-data` export). A plugin that fails is listed with its error,
/// and the export says it is incomplete.
async fn plugins_personal_data(ctx: &RequestContext, id: Uuid) -> Result<(Vec<Value>, bool)> {
    let Some(rt) = &ctx.plugins else {
        return Ok((Vec::new(), true));
    };
    let mut out = Vec::new();
    let mut complete = true;
    for active in rt.enabled(ctx.tenant_id).await?.iter() {
        if !active.policy.allows(ObjectType::Contact, Action::Read) {
            continue;
        }
        let call = crate::plugins::sandbox::Call::PersonalData(id.to_string());
        match rt.invoke(active, call, 0).await {
            Ok(crate::plugins::sandbox::Reply::PersonalData(None)) => {}
            Ok(crate::plugins::sandbox::Reply::PersonalData(Some(text))) => out.push(json!({
                "plugin_id": active.row.plugin_id,
                "version": active.row.version,
                "data": serde_json::from_str::<Value>(&text).unwrap_or(Value::String(text)),
            })),
            Ok(other) => {
                complete = false;
                out.push(json!({"plugin_id": active.row.plugin_id, "error": format!("unexpected answer {other:?}")}));
            }
            Err(e) => {
                complete = false;
                out.push(json!({"plugin_id": active.row.plugin_id, "error": e.to_string()}));
            }
        }
    }
    Ok((out, complete))
}

/// Asks every plugin that may read contacts to erase what it keeps about
/// one; returns the failures (`plugin: error`).
async fn plugins_erase(ctx: &RequestContext, id: Uuid) -> Result<Vec<String>> {
    let Some(rt) = &ctx.plugins else {
        return Ok(Vec::new());
    };
    let mut failures = Vec::new();
    for active in rt.enabled(ctx.tenant_id).await?.iter() {
        if !active.policy.allows(ObjectType::Contact, Action::Read) {
            continue;
        }
        let call = crate::plugins::sandbox::Call::ErasePersonalData(id.to_string());
        match rt.invoke(active, call, 0).await {
            Ok(crate::plugins::sandbox::Reply::Done(Ok(()))) => {}
            Ok(crate::plugins::sandbox::Reply::Done(Err(m))) => {
                failures.push(format!("{}: {m}", active.row.plugin_id));
            }
            Ok(other) => failures.push(format!(
                "{}: unexpected answer {other:?}",
                active.row.plugin_id
            )),
            Err(e) => failures.push(e.to_string()),
        }
    }
    Ok(failures)
}

/// The outcome of an erasure.
#[derive(Debug, Serialize, ToSchema)]
pub struct Erasure {
    pub contact_id: Uuid,
    pub erased_at: DateTime<Utc>,
    pub activities_anonymised: u64,
    pub links_removed: u64,
    pub audit_entries_redacted: usize,
    /// Plugins that could not erase what they keep (`plugin: error`); the
    /// kernel's erasure stands, these need following up (also audited).
    pub plugin_failures: Vec<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EraseRequest {
    /// Why (a ticket or request reference); kept in the audit trail, so it
    /// must not itself hold personal data.
    pub reason: String,
}

/// Erases a contact's personal data everywhere the kernel keeps it.
pub async fn erase(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    id: Uuid,
    reason: &str,
) -> Result<Erasure> {
    ctx.require(ObjectType::Contact, Action::Delete)?;
    let tx = crate::db::tenant_tx(db, ctx).await?;
    // Lock the contact row for the transaction (PostgreSQL; SQLite writers
    // are serial anyway): an update racing the erasure waits, then fails
    // on the bumped version instead of writing personal data back.
    let live = contact::Entity::find_by_id(id)
        .filter(contact::Column::TenantId.eq(ctx.tenant_id))
        .lock_exclusive()
        .one(&tx)
        .await?;
    if live.is_none() {
        // A contact in the trash is brought back, within this transaction,
        // to be erased with everything its delete set aside.
        let trashed = crate::entities::trash::Entity::find()
            .filter(crate::entities::trash::Column::TenantId.eq(ctx.tenant_id))
            .filter(crate::entities::trash::Column::RecordId.eq(id))
            .one(&tx)
            .await?;
        if let Some(entry) = trashed {
            crate::crm::trash::restore::<Contacts>(&tx, ctx, &entry).await?;
        }
    }
    let c = records::load::<Contacts, _>(&tx, ctx, id).await?;
    let (legal_hold, erased) = flags(&tx, ctx, id).await?;
    if legal_hold {
        return Err(Error::Conflict {
            code: "legal_hold",
            message: "this contact is under legal hold; lift the hold before erasing".to_owned(),
        });
    }
    if erased.is_some() {
        return Err(Error::Conflict {
            code: "already_erased",
            message: "this contact was already erased".to_owned(),
        });
    }
    let now = crate::clock::now();
    // The contact row becomes a tombstone.
    let mut tomb: contact::ActiveModel = c.clone().into();
    tomb.first_name = Set(None);
    tomb.last_name = Set(Some(ERASED.to_owned()));
    tomb.email = Set(None);
    tomb.emails = Set(json!([]));
    tomb.phones = Set(json!([]));
    tomb.job_title = Set(None);
    tomb.lead_source = Set(None);
    tomb.tags = Set(json!([]));
    tomb.preferred_channel = Set(None);
    tomb.custom = Set(json!({}));
    tomb.updated_at = Set(now);
    tomb.version = Set(c.version + 1);
    tomb.update(&tx).await?;
    set_flag(&tx, ctx, id, Flag::ErasedAt, now.into()).await?;
    crate::db::search::remove(&tx, ctx.tenant_id, &[id]).await?;

    // Activities about the contact keep their dates and links, not their words.
    let activity_ids: Vec<Uuid> = activity::Entity::find()
        .select_only()
        .column(activity::Column::Id)
        .filter(activity::Column::TenantId.eq(ctx.tenant_id))
        .filter(activity::Column::ContactId.eq(id))
        .into_tuple::<Uuid>()
        .all(&tx)
        .await?;
    let anonymised = activity::Entity::update_many()
        .col_expr(activity::Column::Subject, Expr::value(ERASED))
        .col_expr(activity::Column::Body, Expr::value(Option::<String>::None))
        .col_expr(
            activity::Column::Outcome,
            Expr::value(Option::<String>::None),
        )
        .col_expr(activity::Column::Custom, Expr::value(json!({})))
        .col_expr(
            activity::Column::Version,
            Expr::col(activity::Column::Version).add(1),
        )
        .filter(activity::Column::TenantId.eq(ctx.tenant_id))
        .filter(activity::Column::Id.is_in(activity_ids.clone()))
        .exec(&tx)
        .await?
        .rows_affected;
    crate::db::search::remove(&tx, ctx.tenant_id, &activity_ids).await?;

    let links = contact_account::Entity::delete_many()
        .filter(contact_account::Column::TenantId.eq(ctx.tenant_id))
        .filter(contact_account::Column::ContactId.eq(id))
        .exec(&tx)
        .await?
        .rows_affected
        + contact_relationship::Entity::delete_many()
            .filter(contact_relationship::Column::TenantId.eq(ctx.tenant_id))
            .filter(
                sea_orm::Condition::any()
                    .add(contact_relationship::Column::FromContactId.eq(id))
                    .add(contact_relationship::Column::ToContactId.eq(id)),
            )
            .exec(&tx)
            .await?
            .rows_affected;
    consent::Entity::delete_many()
        .filter(consent::Column::TenantId.eq(ctx.tenant_id))
        .filter(consent::Column::ContactId.eq(id))
        .exec(&tx)
        .await?;
    // Merges into the contact kept the merged records as they were: those
    // copies go (and the undo with them); their history is erased too.
    let merged_in = crate::crm::merge::forget(&tx, ctx, ObjectType::Contact, id).await?;
    crate::crm::trash::purge_mentions(&tx, ctx, id).await?;
    // Pairs in the duplicates queue name the contact's details as reasons.
    let mut paired = merged_in.clone();
    paired.push(id);
    crate::entities::duplicate_pair::Entity::delete_many()
        .filter(crate::entities::duplicate_pair::Column::TenantId.eq(ctx.tenant_id))
        .filter(
            sea_orm::Condition::any()
                .add(crate::entities::duplicate_pair::Column::RecordId.is_in(paired.clone()))
                .add(crate::entities::duplicate_pair::Column::OtherId.is_in(paired)),
        )
        .exec(&tx)
        .await?;
    let addresses: Vec<String> = c
        .email
        .iter()
        .cloned()
        .chain(
            c.emails
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e.get("address").and_then(Value::as_str).map(str::to_owned)),
        )
        .collect();
    outbox::Entity::delete_many()
        .filter(outbox::Column::TenantId.eq(ctx.tenant_id))
        .filter(outbox::Column::Recipient.is_in(addresses))
        .exec(&tx)
        .await?;
    // Plugin hooks not yet delivered carry copies of the records: they go.
    for subject in activity_ids.iter().chain(std::iter::once(&id)) {
        job::Entity::delete_many()
            .filter(job::Column::TenantId.eq(ctx.tenant_id))
            .filter(job::Column::Kind.eq(crate::jobs::Kind::AfterWrite.as_str()))
            .filter(
                Expr::expr(sea_orm::sea_query::Func::cast_as(
                    Expr::col(job::Column::Payload),
                    "TEXT",
                ))
                .like(format!("%{subject}%")),
            )
            .exec(&tx)
            .await?;
    }

    // The trail keeps its entries and its chain; their contents go. Taking
    // the tenant's chain head first waits for writers still committing
    // entries about these records (they hold it until they commit) and
    // keeps new ones out until this erasure commits.
    crate::audit::chain::claim(&tx, ctx.tenant_id, 0).await?;
    let mut subjects = activity_ids;
    subjects.push(id);
    subjects.extend(merged_in);
    let redacted: Vec<Uuid> = audit_log::Entity::find()
        .select_only()
        .column(audit_log::Column::Id)
        .filter(audit_log::Column::TenantId.eq(ctx.tenant_id))
        .filter(audit_log::Column::RecordId.is_in(subjects.clone()))
        .into_tuple::<Uuid>()
        .all(&tx)
        .await?;
    audit_log::Entity::update_many()
        .col_expr(
            audit_log::Column::Changes,
            Expr::value(json!({"redacted": true})),
        )
        .col_expr(audit_log::Column::RedactedAt, Expr::value(now))
        .filter(audit_log::Column::TenantId.eq(ctx.tenant_id))
        .filter(audit_log::Column::RecordId.is_in(subjects))
        .exec(&tx)
        .await?;
    audit::write(
        &tx,
        ctx,
        vec![AuditEntry::new(
            ObjectType::Contact,
            id,
            AuditAction::Erase,
            json!({
                "reason": reason,
                "redacted_entries": redacted,
                "activities_anonymised": anonymised,
                "links_removed": links,
            }),
        )],
    )
    .await?;
    tx.commit().await?;
    crate::db::search::purge_deleted(db).await?;
    // Plugins keep their own stores: each erases after the kernel has (a
    // plugin's writes cannot join the kernel's transaction).
    let plugin_failures = plugins_erase(ctx, id).await?;
    if !plugin_failures.is_empty() {
        audit::record(
            db,
            ctx,
            vec![AuditEntry::new(
                ObjectType::Contact,
                id,
                AuditAction::Erase,
                json!({"plugin_failures": plugin_failures}),
            )],
        )
        .await?;
    }
    Ok(Erasure {
        contact_id: id,
        erased_at: now,
        activities_anonymised: anonymised,
        links_removed: links,
        audit_entries_redacted: redacted.len(),
        plugin_failures,
    })
}

/// Sets or lifts the legal hold of a contact.
pub async fn set_legal_hold(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    id: Uuid,
    hold: bool,
) -> Result<()> {
    ctx.require(ObjectType::Contact, Action::Delete)?;
    let tx = crate::db::tenant_tx(db, ctx).await?;
    records::load::<Contacts, _>(&tx, ctx, id).await?;
    let (before, _) = flags(&tx, ctx, id).await?;
    set_flag(&tx, ctx, id, Flag::LegalHold, hold.into()).await?;
    audit::write(
        &tx,
        ctx,
        vec![AuditEntry::new(
            ObjectType::Contact,
            id,
            AuditAction::Update,
            json!({"legal_hold": {"before": before, "after": hold}}),
        )],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentInput {
    /// What the consent is for: `marketing_email`, `profiling`...
    pub purpose: String,
    pub granted: bool,
    /// Where it was given or withdrawn: `web_form`, `phone`, `import`...
    pub source: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Consent {
    pub id: Uuid,
    pub purpose: String,
    pub granted: bool,
    pub source: String,
    pub actor_kind: String,
    pub actor_id: Option<Uuid>,
    pub recorded_at: DateTime<Utc>,
}

/// Records a consent given or withdrawn; history is kept, never rewritten.
pub async fn record_consent(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    id: Uuid,
    input: ConsentInput,
) -> Result<Consent> {
    ctx.require(ObjectType::Contact, Action::Update)?;
    crate::crm::checks::identifier("purpose", &input.purpose)?;
    crate::crm::checks::identifier("source", &input.source)?;
    let tx = crate::db::tenant_tx(db, ctx).await?;
    records::load::<Contacts, _>(&tx, ctx, id).await?;
    let row = consent::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(ctx.tenant_id),
        contact_id: Set(id),
        purpose: Set(input.purpose),
        granted: Set(input.granted),
        source: Set(input.source),
        actor_kind: Set(ctx.actor_kind.as_str().to_owned()),
        actor_id: Set(ctx.actor_id),
        recorded_at: Set(crate::clock::now()),
    }
    .insert(&tx)
    .await?;
    audit::write(
        &tx,
        ctx,
        vec![AuditEntry::new(
            ObjectType::Contact,
            id,
            AuditAction::Update,
            json!({ format!("consent.{}", row.purpose): {"after": row.granted, "source": row.source} }),
        )],
    )
    .await?;
    tx.commit().await?;
    Ok(consent_out(row))
}

fn consent_out(c: consent::Model) -> Consent {
    Consent {
        id: c.id,
        purpose: c.purpose,
        granted: c.granted,
        source: c.source,
        actor_kind: c.actor_kind,
        actor_id: c.actor_id,
        recorded_at: c.recorded_at,
    }
}

/// Every consent record of a contact, oldest first.
pub async fn consent_history<C: ConnectionTrait>(
    db: &C,
    ctx: &RequestContext,
    id: Uuid,
) -> Result<Vec<Consent>> {
    ctx.require(ObjectType::Contact, Action::Read)?;
    Ok(consent::Entity::find()
        .filter(consent::Column::TenantId.eq(ctx.tenant_id))
        .filter(consent::Column::ContactId.eq(id))
        .order_by_asc(consent::Column::RecordedAt)
        .order_by_asc(consent::Column::Id)
        .all(db)
        .await?
        .into_iter()
        .map(consent_out)
        .collect())
}
