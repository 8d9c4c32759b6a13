//! Teams: groups of users for the `team` record scope, with an optional
//! territory.

use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::audit::{self, AuditAction, AuditEntry};
use crate::context::RequestContext;
use crate::entities::{team, team_member, user};
use crate::error::{Error, Result};
use crate::permissions::{Action, ObjectType};

#[derive(Debug, Serialize, ToSchema)]
pub struct TeamOut {
    pub id: Uuid,
    pub name: String,
    pub territory: Option<String>,
    pub members: Vec<Uuid>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TeamInput {
    pub name: String,
    pub territory: Option<String>,
    /// User ids; replaces the members on update.
    #[serde(default)]
    pub members: Vec<Uuid>,
}

async fn members_of<C: ConnectionTrait>(
    db: &C,
    tenant_id: Uuid,
    team_id: Uuid,
) -> Result<Vec<Uuid>> {
    Ok(team_member::Entity::find()
        .select_only()
        .column(team_member::Column::UserId)
        .filter(team_member::Column::TenantId.eq(tenant_id))
        .filter(team_member::Column::TeamId.eq(team_id))
        .into_tuple::<Uuid>()
        .all(db)
        .await?)
}

/// The users sharing a team with `user_id`, the user included.
pub async fn teammates<C: ConnectionTrait>(
    db: &C,
    tenant_id: Uuid,
    user_id: Uuid,
) -> Result<Vec<Uuid>> {
    let teams: Vec<Uuid> = team_member::Entity::find()
        .select_only()
        .column(team_member::Column::TeamId)
        .filter(team_member::Column::TenantId.eq(tenant_id))
        .filter(team_member::Column::UserId.eq(user_id))
        .into_tuple::<Uuid>()
        .all(db)
        .await?;
    let mut ids: Vec<Uuid> = team_member::Entity::find()
        .select_only()
        .column(team_member::Column::UserId)
        .filter(team_member::Column::TenantId.eq(tenant_id))
        .filter(team_member::Column::TeamId.is_in(teams))
        .distinct()
        .into_tuple::<Uuid>()
        .all(db)
        .await?;
    if !ids.contains(&user_id) {
        ids.push(user_id);
    }
    Ok(ids)
}

pub async fn list(db: &DatabaseConnection, ctx: &RequestContext) -> Result<Vec<TeamOut>> {
    ctx.require(ObjectType::Team, Action::Read)?;
    let teams = team::Entity::find()
        .filter(team::Column::TenantId.eq(ctx.tenant_id))
        .order_by_asc(team::Column::Name)
        .all(db)
        .await?;
    let mut out = Vec::with_capacity(teams.len());
    for t in teams {
        out.push(TeamOut {
            members: members_of(db, ctx.tenant_id, t.id).await?,
            id: t.id,
            name: t.name,
            territory: t.territory,
        });
    }
    Ok(out)
}

async fn set_members<C: ConnectionTrait>(
    db: &C,
    ctx: &RequestContext,
    team_id: Uuid,
    members: &[Uuid],
) -> Result<()> {
    let known: Vec<Uuid> = user::Entity::find()
        .select_only()
        .column(user::Column::Id)
        .filter(user::Column::TenantId.eq(ctx.tenant_id))
        .filter(user::Column::Id.is_in(members.iter().copied()))
        .into_tuple::<Uuid>()
        .all(db)
        .await?;
    if let Some(i) = members.iter().position(|m| !known.contains(m)) {
        return Err(Error::field(
            format!("members[{i}]"),
            "not_found",
            "no such user in this tenant",
        ));
    }
    team_member::Entity::delete_many()
        .filter(team_member::Column::TenantId.eq(ctx.tenant_id))
        .filter(team_member::Column::TeamId.eq(team_id))
        .exec(db)
        .await?;
    let mut unique = members.to_vec();
    unique.sort();
    unique.dedup();
    for user_id in unique {
        team_member::ActiveModel {
            id: Set(Uuid::now_v7()),
            tenant_id: Set(ctx.tenant_id),
            user_id: Set(user_id),
            team_id: Set(team_id),
        }
        .insert(db)
        .await?;
    }
    Ok(())
}

/// Creates a team (`id` None) or replaces one.
pub async fn save(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    id: Option<Uuid>,
    input: TeamInput,
) -> Result<TeamOut> {
    ctx.require(ObjectType::Team, Action::ManageSettings)?;
    let name = input.name.trim().to_owned();
    if name.is_empty() {
        return Err(Error::field("name", "required", "a team needs a name"));
    }
    let tx = crate::db::tenant_tx(db, ctx).await?;
    let (saved, before) = match id {
        Some(id) => {
            let t = team::Entity::find_by_id(id)
                .filter(team::Column::TenantId.eq(ctx.tenant_id))
                .one(&tx)
                .await?
                .ok_or(Error::NotFound("team"))?;
            let before = json!({"name": t.name, "territory": t.territory,
                "members": members_of(&tx, ctx.tenant_id, id).await?});
            let mut a: team::ActiveModel = t.into();
            a.name = Set(name);
            a.territory = Set(input.territory);
            (a.update(&tx).await, Some(before))
        }
        None => (
            team::ActiveModel {
                id: Set(Uuid::now_v7()),
                tenant_id: Set(ctx.tenant_id),
                name: Set(name),
                territory: Set(input.territory),
                created_at: Set(crate::clock::now()),
            }
            .insert(&tx)
            .await,
            None,
        ),
    };
    let saved = saved.map_err(|e| {
        if crate::db::is_unique_violation(&e) {
            Error::field("name", "not_unique", "a team with this name exists")
        } else {
            e.into()
        }
    })?;
    set_members(&tx, ctx, saved.id, &input.members).await?;
    let after = json!({"name": saved.name, "territory": saved.territory,
        "members": members_of(&tx, ctx.tenant_id, saved.id).await?});
    let (action, changes) = match before {
        Some(b) => (AuditAction::Update, audit::diff(&b, &after)),
        None => (AuditAction::Create, json!({ "after": after })),
    };
    audit::write(
        &tx,
        ctx,
        vec![AuditEntry::new(ObjectType::Team, saved.id, action, changes)],
    )
    .await?;
    tx.commit().await?;
    Ok(TeamOut {
        members: members_of(db, ctx.tenant_id, saved.id).await?,
        id: saved.id,
        name: saved.name,
        territory: saved.territory,
    })
}

pub async fn delete(db: &DatabaseConnection, ctx: &RequestContext, id: Uuid) -> Result<()> {
    ctx.require(ObjectType::Team, Action::ManageSettings)?;
    let tx = crate::db::tenant_tx(db, ctx).await?;
    let t = team::Entity::find_by_id(id)
        .filter(team::Column::TenantId.eq(ctx.tenant_id))
        .one(&tx)
        .await?
        .ok_or(Error::NotFound("team"))?;
    team::Entity::delete_by_id(id).exec(&tx).await?;
    audit::write(
        &tx,
        ctx,
        vec![AuditEntry::new(
            ObjectType::Team,
            id,
            AuditAction::Delete,
            json!({"before": {"name": t.name, "territory": t.territory}}),
        )],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
