//! Accounts: companies and households, in a hierarchy (a parent account with
//! subsidiaries or branches). The hierarchy never has cycles.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, Statement,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::context::RequestContext;
use crate::crm::checks::Checks;
use crate::crm::listing::{FieldSpec, Kind};
use crate::crm::records::{self, Record};
use crate::db::search::SearchDocument;
use crate::entities::account;
use crate::error::{Error, Result};
use crate::permissions::ObjectType;

/// Deepest hierarchy accepted; deeper trees are almost surely mistakes.
pub const MAX_DEPTH: i64 = 32;

/// The writable fields of an account.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountInput {
    pub name: String,
    /// Web domain, e.g. `example.com`; stored lower case.
    #[serde(default)]
    pub domain: Option<String>,
    #[serde(default)]
    pub industry: Option<String>,
    /// Head-count band or household size, e.g. `51-200`.
    #[serde(default)]
    pub size: Option<String>,
    #[serde(default)]
    pub territory: Option<String>,
    #[serde(default)]
    pub owner_id: Option<Uuid>,
    /// The parent account; cycles are refused.
    #[serde(default)]
    pub parent_id: Option<Uuid>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub custom: Value,
}

/// An account as the API returns it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Account {
    pub id: Uuid,
    pub name: String,
    pub domain: Option<String>,
    pub industry: Option<String>,
    pub size: Option<String>,
    pub territory: Option<String>,
    pub owner_id: Option<Uuid>,
    pub parent_id: Option<Uuid>,
    #[schema(value_type = Object)]
    pub custom: Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i64,
}

pub struct Accounts;

const FIELDS: &[FieldSpec] = &[
    FieldSpec::new("id", Kind::Uuid).required(),
    FieldSpec::new("name", Kind::Text).required(),
    FieldSpec::new("domain", Kind::Text),
    FieldSpec::new("industry", Kind::Text),
    FieldSpec::new("size", Kind::Text),
    FieldSpec::new("territory", Kind::Text),
    FieldSpec::new("owner_id", Kind::Uuid),
    FieldSpec::new("parent_id", Kind::Uuid),
    FieldSpec::new("created_at", Kind::Timestamp).required(),
    FieldSpec::new("updated_at", Kind::Timestamp).required(),
];

fn valid_domain(d: &str) -> bool {
    d.len() <= 253
        && d.contains('.')
        && d.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
}

/// Whether `ancestor` is `start` or one of its ancestors.
pub(crate) async fn is_ancestor_or_self<C: ConnectionTrait>(
    db: &C,
    tenant: Uuid,
    start: Uuid,
    ancestor: Uuid,
) -> Result<(bool, i64)> {
    let backend = db.get_database_backend();
    let p = |n| crate::db::dialect::param(backend, n);
    let sql = format!(
        "WITH RECURSIVE chain(id, parent_id, depth) AS (
            SELECT id, parent_id, 0 FROM accounts WHERE tenant_id = {t} AND id = {s}
            UNION ALL
            SELECT a.id, a.parent_id, chain.depth + 1 FROM accounts a JOIN chain ON a.id = chain.parent_id
            WHERE a.tenant_id = {t} AND chain.depth < {max}
         )
         SELECT MAX(CASE WHEN id = {a} THEN 1 ELSE 0 END) AS hit, MAX(depth) AS depth FROM chain",
        t = p(1),
        s = p(2),
        a = p(3),
        max = MAX_DEPTH + 1
    );
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            sql,
            vec![tenant.into(), start.into(), ancestor.into()],
        ))
        .await?;
    let Some(row) = row else {
        return Ok((false, 0));
    };
    let hit: Option<i32> = row.try_get("", "hit")?;
    let depth: Option<i32> = row.try_get("", "depth")?;
    Ok((hit == Some(1), i64::from(depth.unwrap_or(0))))
}

/// How many levels of accounts hang below `id` (0 for a leaf), counted up
/// to [`MAX_DEPTH`].
async fn subtree_height<C: ConnectionTrait>(db: &C, tenant: Uuid, id: Uuid) -> Result<i64> {
    let backend = db.get_database_backend();
    let p = |n| crate::db::dialect::param(backend, n);
    let sql = format!(
        "WITH RECURSIVE below(id, depth) AS (
            SELECT id, 0 FROM accounts WHERE tenant_id = {t} AND id = {s}
            UNION ALL
            SELECT a.id, below.depth + 1 FROM accounts a JOIN below ON a.parent_id = below.id
            WHERE a.tenant_id = {t} AND below.depth < {max}
         )
         SELECT MAX(depth) AS height FROM below",
        t = p(1),
        s = p(2),
        max = MAX_DEPTH
    );
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            sql,
            vec![tenant.into(), id.into()],
        ))
        .await?;
    let height: Option<i32> = match row {
        Some(r) => r.try_get("", "height")?,
        None => None,
    };
    Ok(i64::from(height.unwrap_or(0)))
}

#[async_trait]
impl Record for Accounts {
    const OBJECT: ObjectType = ObjectType::Account;

    fn owner(m: &Self::Model) -> Option<Uuid> {
        m.owner_id
    }

    fn set_owner(m: &mut Self::Model, owner: Option<Uuid>) {
        m.owner_id = owner;
    }

    fn custom_mut(m: &mut Self::Model) -> &mut Value {
        &mut m.custom
    }
    type Entity = account::Entity;
    type Model = account::Model;
    type Active = account::ActiveModel;
    type Input = AccountInput;
    type Output = Account;

    fn fields() -> &'static [FieldSpec] {
        FIELDS
    }
    fn id(m: &account::Model) -> Uuid {
        m.id
    }
    fn version(m: &account::Model) -> i64 {
        m.version
    }

    fn output(m: account::Model) -> Account {
        Account {
            id: m.id,
            name: m.name,
            domain: m.domain,
            industry: m.industry,
            size: m.size,
            territory: m.territory,
            owner_id: m.owner_id,
            parent_id: m.parent_id,
            custom: m.custom,
            created_at: m.created_at,
            updated_at: m.updated_at,
            version: m.version,
        }
    }

    fn input(m: &account::Model) -> AccountInput {
        AccountInput {
            name: m.name.clone(),
            domain: m.domain.clone(),
            industry: m.industry.clone(),
            size: m.size.clone(),
            territory: m.territory.clone(),
            owner_id: m.owner_id,
            parent_id: m.parent_id,
            custom: m.custom.clone(),
        }
    }

    fn custom_of(input: &AccountInput) -> Value {
        input.custom.clone()
    }

    async fn build(
        tx: &DatabaseTransaction,
        ctx: &RequestContext,
        input: AccountInput,
        custom: Value,
        existing: Option<&account::Model>,
    ) -> Result<account::Model> {
        let mut checks = Checks::default();
        let name = checks.required_text("name", input.name, 200);
        let domain = checks.text("domain", input.domain, 253).map(|d| {
            d.trim_start_matches("https://")
                .trim_start_matches("http://")
                .trim_start_matches("www.")
                .trim_end_matches('/')
                .to_lowercase()
        });
        if let Some(d) = &domain
            && !valid_domain(d)
        {
            checks.fail("domain", "invalid_format", "not a valid domain name");
        }
        let industry = checks.text("industry", input.industry, 100);
        let size = checks.text("size", input.size, 50);
        let territory = checks.text("territory", input.territory, 100);
        checks
            .user_exists(tx, ctx, "owner_id", input.owner_id)
            .await?;
        let id = existing.map(|e| e.id).unwrap_or_else(Uuid::now_v7);
        let parent_changed = existing.is_none_or(|e| e.parent_id != input.parent_id);
        if let Some(parent) = input.parent_id.filter(|_| parent_changed) {
            crate::db::lock_scope(tx, ctx.tenant_id, "account_tree").await?;
            if parent == id {
                checks.fail("parent_id", "cycle", "an account cannot be its own parent");
            } else {
                checks
                    .exists(tx, ctx, "parent_id", ObjectType::Account, Some(parent))
                    .await?;
                let (cycle, depth) = is_ancestor_or_self(tx, ctx.tenant_id, parent, id).await?;
                // The accounts below the moved one move down with it.
                let below = match existing {
                    Some(_) => subtree_height(tx, ctx.tenant_id, id).await?,
                    None => 0,
                };
                if cycle {
                    checks.fail(
                        "parent_id",
                        "cycle",
                        "this parent is a descendant of the account: the hierarchy would loop",
                    );
                } else if depth + 1 + below >= MAX_DEPTH {
                    checks.fail(
                        "parent_id",
                        "too_deep",
                        format!("hierarchies are at most {MAX_DEPTH} levels deep"),
                    );
                }
            }
        }
        checks.finish()?;
        let now = crate::clock::now();
        Ok(account::Model {
            id,
            tenant_id: ctx.tenant_id,
            name,
            domain,
            industry,
            size,
            territory,
            owner_id: input.owner_id,
            parent_id: input.parent_id,
            custom,
            created_at: existing.map(|e| e.created_at).unwrap_or(now),
            updated_at: now,
            version: existing.map(|e| e.version + 1).unwrap_or(1),
        })
    }

    async fn before_delete(
        tx: &DatabaseTransaction,
        ctx: &RequestContext,
        m: &account::Model,
    ) -> Result<()> {
        let child = account::Entity::find()
            .filter(account::Column::TenantId.eq(ctx.tenant_id))
            .filter(account::Column::ParentId.eq(m.id))
            .one(tx)
            .await?;
        if child.is_some() {
            return Err(Error::Conflict {
                code: "account_has_children",
                message: "this account has child accounts: move or delete them first".to_owned(),
            });
        }
        Ok(())
    }

    fn search_document(m: &account::Model) -> Option<SearchDocument> {
        let body = [&m.domain, &m.industry, &m.territory]
            .into_iter()
            .flatten()
            .cloned()
            .collect::<Vec<_>>()
            .join(" ");
        Some(SearchDocument {
            tenant_id: m.tenant_id,
            object_type: "account",
            record_id: m.id,
            title: m.name.clone(),
            subtitle: m.domain.clone(),
            body,
            match_keys: crate::crm::duplicates::keys::account(&m.name, m.domain.as_deref()),
        })
    }
}

/// An account's place in the hierarchy.
#[derive(Debug, Serialize, ToSchema)]
pub struct Hierarchy {
    /// From the root down to the account's parent; stops below the first
    /// ancestor outside the caller's record scope.
    #[schema(value_type = Vec<Account>)]
    pub ancestors: Vec<Value>,
    #[schema(value_type = Account)]
    pub account: Value,
    /// Direct children within the caller's record scope, by name.
    #[schema(value_type = Vec<Account>)]
    pub children: Vec<Value>,
}

/// The ancestors and children of an account.
pub async fn hierarchy(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    id: Uuid,
) -> Result<Hierarchy> {
    let me = records::get::<Accounts>(db, ctx, id).await?;
    let mut ancestors = Vec::new();
    let mut next = me.parent_id;
    while let Some(pid) = next {
        if ancestors.len() as i64 > MAX_DEPTH {
            break;
        }
        let parent = match records::load::<Accounts, _>(db, ctx, pid).await {
            Ok(p) => p,
            // An ancestor outside the caller's scope ends the path upwards.
            Err(Error::NotFound(_)) => break,
            Err(e) => return Err(e),
        };
        next = parent.parent_id;
        ancestors.push(parent);
    }
    ancestors.reverse();
    let mut children = account::Entity::find()
        .filter(account::Column::TenantId.eq(ctx.tenant_id))
        .filter(account::Column::ParentId.eq(id));
    if let Some(owners) = records::reachable_owners(db, ctx, ObjectType::Account).await? {
        children = children.filter(account::Column::OwnerId.is_in(owners));
    }
    let children = children
        .order_by_asc(account::Column::Name)
        .limit(1000)
        .all(db)
        .await?;
    Ok(Hierarchy {
        ancestors: records::reveal_many::<Accounts>(db, ctx, &ancestors, true).await?,
        account: records::reveal_many::<Accounts>(db, ctx, std::slice::from_ref(&me), true)
            .await?
            .pop()
            .unwrap_or(Value::Null),
        children: records::reveal_many::<Accounts>(db, ctx, &children, true).await?,
    })
}
