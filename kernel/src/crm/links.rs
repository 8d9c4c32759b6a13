//! Links between records: contacts to accounts (many to many, with a role)
//! and contacts to contacts (typed relationships), for relationship maps.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, Set,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::audit::{self, AuditAction, AuditEntry};
use crate::context::RequestContext;
use crate::crm::checks::Checks;
use crate::crm::contacts::Contacts;
use crate::crm::records;
use crate::entities::{contact_account, contact_relationship};
use crate::error::{Error, Result};
use crate::permissions::{Action, ObjectType};

/// Whether contact `id` exists in the caller's tenant (whoever owns it):
/// a link or relationship put back needs both its ends.
pub(crate) async fn contact_exists<C: sea_orm::ConnectionTrait>(
    db: &C,
    ctx: &RequestContext,
    id: Uuid,
) -> Result<bool> {
    Ok(crate::entities::contact::Entity::find()
        .filter(crate::entities::contact::Column::TenantId.eq(ctx.tenant_id))
        .filter(crate::entities::contact::Column::Id.eq(id))
        .one(db)
        .await?
        .is_some())
}

/// Whether account `id` exists in the caller's tenant (whoever owns it).
pub(crate) async fn account_exists<C: sea_orm::ConnectionTrait>(
    db: &C,
    ctx: &RequestContext,
    id: Uuid,
) -> Result<bool> {
    Ok(crate::entities::account::Entity::find()
        .filter(crate::entities::account::Column::TenantId.eq(ctx.tenant_id))
        .filter(crate::entities::account::Column::Id.eq(id))
        .one(db)
        .await?
        .is_some())
}

/// Body of a new contact–account link.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountLinkInput {
    pub account_id: Uuid,
    /// The contact's role at the account, e.g. `decision maker`.
    #[serde(default)]
    pub role: Option<String>,
}

/// A contact–account link.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AccountLink {
    pub id: Uuid,
    pub contact_id: Uuid,
    pub account_id: Uuid,
    pub role: Option<String>,
    pub created_at: DateTime<Utc>,
}

fn link_out(m: contact_account::Model) -> AccountLink {
    AccountLink {
        id: m.id,
        contact_id: m.contact_id,
        account_id: m.account_id,
        role: m.role,
        created_at: m.created_at,
    }
}

/// Links a contact to an account.
pub async fn link_account(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    contact_id: Uuid,
    input: AccountLinkInput,
) -> Result<AccountLink> {
    ctx.require(ObjectType::Contact, Action::Update)?;
    let tx = crate::db::tenant_tx(db, ctx).await?;
    records::load::<Contacts, _>(&tx, ctx, contact_id).await?;
    let mut checks = Checks::default();
    let role = checks.text("role", input.role, 100);
    checks
        .exists(
            &tx,
            ctx,
            "account_id",
            ObjectType::Account,
            Some(input.account_id),
        )
        .await?;
    checks.finish()?;
    let model = contact_account::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(ctx.tenant_id),
        contact_id: Set(contact_id),
        account_id: Set(input.account_id),
        role: Set(role),
        created_at: Set(crate::clock::now()),
    }
    .insert(&tx)
    .await
    .map_err(|e| {
        if crate::db::is_unique_violation(&e) {
            Error::Conflict {
                code: "already_linked",
                message: "the contact is already linked to this account".to_owned(),
            }
        } else {
            e.into()
        }
    })?;
    let out = link_out(model);
    audit::write(
        &tx,
        ctx,
        vec![AuditEntry::new(
            ObjectType::Contact,
            contact_id,
            AuditAction::Link,
            serde_json::json!({"account": out}),
        )],
    )
    .await?;
    tx.commit().await?;
    Ok(out)
}

/// The account links of a contact.
pub async fn account_links(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    contact_id: Uuid,
) -> Result<Vec<AccountLink>> {
    records::get::<Contacts>(db, ctx, contact_id).await?;
    Ok(contact_account::Entity::find()
        .filter(contact_account::Column::TenantId.eq(ctx.tenant_id))
        .filter(contact_account::Column::ContactId.eq(contact_id))
        .order_by_asc(contact_account::Column::CreatedAt)
        .all(db)
        .await?
        .into_iter()
        .map(link_out)
        .collect())
}

/// Removes a contact–account link.
pub async fn unlink_account(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    contact_id: Uuid,
    account_id: Uuid,
) -> Result<()> {
    ctx.require(ObjectType::Contact, Action::Update)?;
    let tx = crate::db::tenant_tx(db, ctx).await?;
    records::load::<Contacts, _>(&tx, ctx, contact_id).await?;
    let res = contact_account::Entity::delete_many()
        .filter(contact_account::Column::TenantId.eq(ctx.tenant_id))
        .filter(contact_account::Column::ContactId.eq(contact_id))
        .filter(contact_account::Column::AccountId.eq(account_id))
        .exec(&tx)
        .await?;
    if res.rows_affected == 0 {
        return Err(Error::NotFound("link"));
    }
    audit::write(
        &tx,
        ctx,
        vec![AuditEntry::new(
            ObjectType::Contact,
            contact_id,
            AuditAction::Unlink,
            serde_json::json!({"account_id": account_id}),
        )],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Body of a new contact–contact relationship.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RelationshipInput {
    pub to_contact_id: Uuid,
    /// `spouse`, `assistant`, `referred_by`...: lower case words joined by `_`.
    pub kind: String,
}

/// A typed relationship from one contact to another.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Relationship {
    pub id: Uuid,
    pub from_contact_id: Uuid,
    pub to_contact_id: Uuid,
    pub kind: String,
    pub created_at: DateTime<Utc>,
}

fn rel_out(m: contact_relationship::Model) -> Relationship {
    Relationship {
        id: m.id,
        from_contact_id: m.from_contact_id,
        to_contact_id: m.to_contact_id,
        kind: m.kind,
        created_at: m.created_at,
    }
}

/// Adds a relationship between two contacts of the tenant.
pub async fn relate(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    from: Uuid,
    input: RelationshipInput,
) -> Result<Relationship> {
    ctx.require(ObjectType::Contact, Action::Update)?;
    let tx = crate::db::tenant_tx(db, ctx).await?;
    records::load::<Contacts, _>(&tx, ctx, from).await?;
    let mut checks = Checks::default();
    let kind = input.kind.trim().to_owned();
    if kind.is_empty()
        || kind.len() > 50
        || !kind.chars().all(|c| c.is_ascii_lowercase() || c == '_')
    {
        checks.fail(
            "kind",
            "invalid_format",
            "lower case words joined by _, e.g. referred_by",
        );
    }
    if input.to_contact_id == from {
        checks.fail(
            "to_contact_id",
            "invalid_value",
            "a contact cannot be related to itself",
        );
    } else {
        checks
            .exists(
                &tx,
                ctx,
                "to_contact_id",
                ObjectType::Contact,
                Some(input.to_contact_id),
            )
            .await?;
    }
    checks.finish()?;
    let model = contact_relationship::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(ctx.tenant_id),
        from_contact_id: Set(from),
        to_contact_id: Set(input.to_contact_id),
        kind: Set(kind),
        created_at: Set(crate::clock::now()),
    }
    .insert(&tx)
    .await
    .map_err(|e| {
        if crate::db::is_unique_violation(&e) {
            Error::Conflict {
                code: "already_related",
                message: "this relationship exists already".to_owned(),
            }
        } else {
            e.into()
        }
    })?;
    let out = rel_out(model);
    audit::write(
        &tx,
        ctx,
        vec![AuditEntry::new(
            ObjectType::Contact,
            from,
            AuditAction::Link,
            serde_json::json!({"relationship": out}),
        )],
    )
    .await?;
    tx.commit().await?;
    Ok(out)
}

/// Relationships a contact takes part in, in either direction.
pub async fn relationships(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    contact_id: Uuid,
) -> Result<Vec<Relationship>> {
    records::get::<Contacts>(db, ctx, contact_id).await?;
    Ok(contact_relationship::Entity::find()
        .filter(contact_relationship::Column::TenantId.eq(ctx.tenant_id))
        .filter(
            Condition::any()
                .add(contact_relationship::Column::FromContactId.eq(contact_id))
                .add(contact_relationship::Column::ToContactId.eq(contact_id)),
        )
        .order_by_asc(contact_relationship::Column::CreatedAt)
        .all(db)
        .await?
        .into_iter()
        .map(rel_out)
        .collect())
}

/// Removes a relationship of the contact.
pub async fn unrelate(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    contact_id: Uuid,
    relationship_id: Uuid,
) -> Result<()> {
    ctx.require(ObjectType::Contact, Action::Update)?;
    let tx = crate::db::tenant_tx(db, ctx).await?;
    records::load::<Contacts, _>(&tx, ctx, contact_id).await?;
    let res = contact_relationship::Entity::delete_many()
        .filter(contact_relationship::Column::TenantId.eq(ctx.tenant_id))
        .filter(contact_relationship::Column::Id.eq(relationship_id))
        .filter(
            Condition::any()
                .add(contact_relationship::Column::FromContactId.eq(contact_id))
                .add(contact_relationship::Column::ToContactId.eq(contact_id)),
        )
        .exec(&tx)
        .await?;
    if res.rows_affected == 0 {
        return Err(Error::NotFound("relationship"));
    }
    audit::write(
        &tx,
        ctx,
        vec![AuditEntry::new(
            ObjectType::Contact,
            contact_id,
            AuditAction::Unlink,
            serde_json::json!({"relationship_id": relationship_id}),
        )],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
