//! Ranked search over contacts, accounts and deals, kept to what the caller
//! may see.

use sea_orm::DatabaseConnection;

use crate::context::RequestContext;
use crate::crm::records;
use crate::db::search::{self, SearchHit};
use crate::error::Result;
use crate::permissions::{ObjectType, Scope};

/// Up to `limit` hits for `q` among `types` (which the caller may read).
///
/// A caller limited by record scope or hidden fields sees only hits it may
/// reach, and only hits its visible fields explain: matching on a hidden
/// value would reveal it.
pub async fn records(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    q: &str,
    types: &[ObjectType],
    limit: u64,
) -> Result<Vec<SearchHit>> {
    let names: Vec<&str> = types.iter().map(|t| t.as_str()).collect();
    let restricted =
        |o: ObjectType| ctx.policy.scope(o) != Scope::All || ctx.policy.field_rules(o).is_some();
    let any_restricted = types.iter().copied().any(restricted);
    let fetch = if any_restricted {
        (limit * 3).min(300)
    } else {
        limit
    };
    let hits = search::query(db, ctx.tenant_id, q, &names, fetch).await?;
    if !any_restricted {
        return Ok(hits);
    }
    let mut out = Vec::new();
    for mut hit in hits {
        let Some(object) = ObjectType::parse(&hit.object_type) else {
            continue;
        };
        if restricted(object) {
            let visible = records::with_record_type!(object, R => {
                records::visible_json::<R>(db, ctx, hit.id).await?
            });
            let Some(visible) = visible else { continue };
            let words = search::words_of(&visible);
            if !search::explains(&words, q) {
                continue;
            }
            // The title is derived too (a contact's name): rebuilt from
            // what is visible when it repeats a hidden value.
            if !search::explains(&words, &hit.title) {
                hit.title = visible_title(&visible);
            }
            if hit
                .subtitle
                .as_deref()
                .is_some_and(|s| !search::explains(&words, s))
            {
                hit.subtitle = None;
            }
        }
        out.push(hit);
        if out.len() as u64 >= limit {
            break;
        }
    }
    Ok(out)
}

/// A search hit's title from the visible fields of its record.
fn visible_title(visible: &serde_json::Value) -> String {
    let text = |k: &str| visible.get(k).and_then(|v| v.as_str()).map(str::to_owned);
    text("name")
        .or_else(|| {
            let parts: Vec<String> = ["first_name", "last_name"]
                .into_iter()
                .filter_map(text)
                .collect();
            (!parts.is_empty()).then(|| parts.join(" "))
        })
        .unwrap_or_else(|| "(restricted)".to_owned())
}

/// Rewrites the search documents and match keys of every contact, account and deal (of
/// one tenant, or all), from the records as they are: after the documents'
/// shape changed, or to repair the index. Pages of 1,000 by id, each page
/// one transaction, so it runs beside normal traffic. Returns the
/// documents written.
pub async fn reindex(db: &DatabaseConnection, tenant: Option<uuid::Uuid>) -> Result<u64> {
    use crate::crm::{accounts::Accounts, contacts::Contacts, deals::Deals};
    Ok(reindex_type::<Contacts>(db, tenant).await?
        + reindex_type::<Accounts>(db, tenant).await?
        + reindex_type::<Deals>(db, tenant).await?)
}

/// Runs the rebuilds a migration queued in `pending_rebuilds` (after it
/// added derived data, such as match keys, that existing records lack),
/// then clears them. Several kernel processes starting together may both
/// rebuild: the rebuild is idempotent.
pub async fn rebuild_pending(db: &DatabaseConnection) -> Result<()> {
    use sea_orm::{ConnectionTrait, Statement};
    let backend = db.get_database_backend();
    let pending = db
        .query_all_raw(Statement::from_string(
            backend,
            "SELECT name FROM pending_rebuilds WHERE name = 'search'",
        ))
        .await?;
    if pending.is_empty() {
        return Ok(());
    }
    let written = reindex(db, None).await?;
    tracing::info!(written, "rebuilt the search index and match keys");
    db.execute_unprepared("DELETE FROM pending_rebuilds WHERE name = 'search'")
        .await?;
    Ok(())
}

async fn reindex_type<R: records::Record>(
    db: &DatabaseConnection,
    tenant: Option<uuid::Uuid>,
) -> Result<u64> {
    use sea_orm::sea_query::{Expr, ExprTrait};
    use sea_orm::{EntityTrait, QueryFilter, QueryOrder, QuerySelect, TransactionTrait};
    let mut after: Option<uuid::Uuid> = None;
    let mut written = 0;
    loop {
        let mut find = R::Entity::find();
        if let Some(t) = tenant {
            find = find.filter(Expr::col("tenant_id").eq(t));
        }
        if let Some(a) = after {
            find = find.filter(Expr::col("id").gt(a));
        }
        let page: Vec<R::Model> = find
            .order_by_asc(Expr::col("id"))
            .limit(1000)
            .all(db)
            .await?;
        let Some(last) = page.last() else {
            return Ok(written);
        };
        after = Some(R::id(last));
        let docs: Vec<_> = page.iter().filter_map(R::search_document).collect();
        let tx = db.begin().await?;
        search::upsert(&tx, &docs).await?;
        tx.commit().await?;
        written += docs.len() as u64;
    }
}
