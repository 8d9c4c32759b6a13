//! Full-text search over contacts, accounts and deals: SQLite FTS5 and
//! PostgreSQL `tsvector` behind one interface.
//!
//! Both halves tokenize the same way (runs of letters and digits, lower-cased,
//! accents folded on SQLite) and match every query token as a prefix, so a
//! fragment such as `joh smi` finds "John Smith" on either database. Results
//! are ranked: BM25 on SQLite, `ts_rank` on PostgreSQL, title matches first.

use sea_orm::{ConnectionTrait, DbBackend, Statement, Value};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::dialect::param;
use crate::error::Result;

/// What one record contributes to the index.
#[derive(Debug, Clone)]
pub struct SearchDocument {
    pub tenant_id: Uuid,
    pub object_type: &'static str,
    pub record_id: Uuid,
    /// The record's name; weighted above the body.
    pub title: String,
    /// A short line shown under the title in results (email, domain, amount).
    pub subtitle: Option<String>,
    /// Everything else searchable: emails, phones, company names.
    pub body: String,
    /// Exact keys duplicate detection looks the record up by (see
    /// `crm::duplicates::keys`); stored in `match_keys`.
    pub match_keys: Vec<String>,
}

/// One search result. Results come best first; the score itself is not
/// returned: SQLite's BM25 weighs terms by their frequency in the whole
/// index, all tenants included, and its value would hint at other tenants'
/// data.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SearchHit {
    /// `contact`, `account` or `deal`.
    pub object_type: String,
    pub id: Uuid,
    pub title: String,
    pub subtitle: Option<String>,
}

/// Inserts or replaces the documents, in the caller's transaction.
pub async fn upsert<C: ConnectionTrait>(db: &C, docs: &[SearchDocument]) -> Result<()> {
    // 6 values per row; stay well under SQLite's and PostgreSQL's bind limits.
    for chunk in docs.chunks(1000) {
        let backend = db.get_database_backend();
        let mut sql = String::from(
            "INSERT INTO search_documents (tenant_id, object_type, record_id, title, subtitle, body) VALUES ",
        );
        let mut values: Vec<Value> = Vec::with_capacity(chunk.len() * 6);
        for (i, doc) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push(',');
            }
            sql.push_str(&placeholders(backend, values.len(), 6));
            values.push(doc.tenant_id.into());
            values.push(doc.object_type.into());
            values.push(doc.record_id.into());
            values.push(doc.title.clone().into());
            values.push(doc.subtitle.clone().into());
            values.push(doc.body.clone().into());
        }
        sql.push_str(
            " ON CONFLICT (tenant_id, record_id) DO UPDATE SET title = excluded.title, \
             subtitle = excluded.subtitle, body = excluded.body",
        );
        db.execute_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?;
        replace_match_keys(db, chunk).await?;
    }
    Ok(())
}

/// Replaces the match keys of the documents' records with theirs.
async fn replace_match_keys<C: ConnectionTrait>(db: &C, docs: &[SearchDocument]) -> Result<()> {
    let mut by_tenant: std::collections::BTreeMap<Uuid, Vec<Uuid>> = Default::default();
    for doc in docs {
        by_tenant
            .entry(doc.tenant_id)
            .or_default()
            .push(doc.record_id);
    }
    for (tenant_id, ids) in by_tenant {
        delete_where_record(db, "match_keys", tenant_id, &ids).await?;
    }
    let backend = db.get_database_backend();
    let rows: Vec<(&SearchDocument, &String)> = docs
        .iter()
        .flat_map(|d| d.match_keys.iter().map(move |k| (d, k)))
        .collect();
    // 4 values per row.
    for chunk in rows.chunks(1000) {
        let mut sql =
            String::from("INSERT INTO match_keys (tenant_id, object_type, key, record_id) VALUES ");
        let mut values: Vec<Value> = Vec::with_capacity(chunk.len() * 4);
        for (i, (doc, key)) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push(',');
            }
            sql.push_str(&placeholders(backend, values.len(), 4));
            values.push(doc.tenant_id.into());
            values.push(doc.object_type.into());
            values.push((*key).clone().into());
            values.push(doc.record_id.into());
        }
        sql.push_str(" ON CONFLICT DO NOTHING");
        db.execute_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?;
    }
    Ok(())
}

/// Records of one type holding any of the keys, those of exact keys first:
/// at most 100 by each
/// `exact` key (an address, a number, a domain: few records share one) and
/// 50 by each `weak` one (a name: many may share it), so a common name
/// cannot crowd out an exact match.
pub async fn matching<C: ConnectionTrait>(
    db: &C,
    tenant_id: Uuid,
    object_type: &str,
    exact: &[String],
    weak: &[String],
) -> Result<Vec<Uuid>> {
    let wanted: Vec<(&String, usize)> = exact
        .iter()
        .map(|k| (k, 100))
        .chain(weak.iter().map(|k| (k, 50)))
        .collect();
    // Exact keys' records first: a caller capping the list keeps them.
    let mut seen = std::collections::HashSet::new();
    Ok(key_lookup(db, tenant_id, object_type, &wanted)
        .await?
        .into_iter()
        .map(|(_, id)| id)
        .filter(|id| seen.insert(*id))
        .collect())
}

/// The records of one type holding each of `keys` (key, record): at most
/// `per_key` records a key and `limit` rows in all.
pub async fn holders<C: ConnectionTrait>(
    db: &C,
    tenant_id: Uuid,
    object_type: &str,
    keys: &[String],
    per_key: usize,
    limit: usize,
) -> Result<Vec<(String, Uuid)>> {
    let mut out = Vec::new();
    for chunk in keys.chunks(100) {
        if out.len() >= limit {
            break;
        }
        let wanted: Vec<(&String, usize)> = chunk.iter().map(|k| (k, per_key)).collect();
        out.extend(key_lookup(db, tenant_id, object_type, &wanted).await?);
    }
    out.truncate(limit);
    Ok(out)
}

/// One statement looking each key up by equality, each with its own limit.
/// An equality per key, rather than `key IN (..)`: PostgreSQL's planner,
/// without fresh statistics on the table (a new tenant, a young
/// database), applied an `IN` list as a filter over the tenant's whole
/// index range (2.5 ms at 4,000 contacts, growing) instead of probing it.
async fn key_lookup<C: ConnectionTrait>(
    db: &C,
    tenant_id: Uuid,
    object_type: &str,
    wanted: &[(&String, usize)],
) -> Result<Vec<(String, Uuid)>> {
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let backend = db.get_database_backend();
    let mut values: Vec<Value> = vec![tenant_id.into(), object_type.into()];
    let mut arms = Vec::with_capacity(wanted.len());
    for (n, (key, limit)) in wanted.iter().enumerate() {
        values.push(Value::from((*key).clone()));
        arms.push(format!(
            "SELECT key, record_id FROM (SELECT key, record_id FROM match_keys \
             WHERE tenant_id = {} AND object_type = {} AND key = {} LIMIT {limit}) m{n}",
            param(backend, 1),
            param(backend, 2),
            param(backend, values.len()),
        ));
    }
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            arms.join(" UNION ALL "),
            values,
        ))
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("", "key")?, r.try_get("", "record_id")?)))
        .collect()
}

/// Removes the documents of the given records.
pub async fn remove<C: ConnectionTrait>(
    db: &C,
    tenant_id: Uuid,
    record_ids: &[Uuid],
) -> Result<()> {
    delete_where_record(db, "search_documents", tenant_id, record_ids).await?;
    delete_where_record(db, "match_keys", tenant_id, record_ids).await
}

/// Deletes the rows of `table` (keyed by tenant and record) of the records.
async fn delete_where_record<C: ConnectionTrait>(
    db: &C,
    table: &str,
    tenant_id: Uuid,
    record_ids: &[Uuid],
) -> Result<()> {
    let backend = db.get_database_backend();
    for chunk in record_ids.chunks(500) {
        let mut values: Vec<Value> = vec![tenant_id.into()];
        let list = (0..chunk.len())
            .map(|i| param(backend, i + 2))
            .collect::<Vec<_>>()
            .join(",");
        values.extend(chunk.iter().map(|id| Value::from(*id)));
        let sql = format!(
            "DELETE FROM {table} WHERE tenant_id = {} AND record_id IN ({list})",
            param(backend, 1)
        );
        db.execute_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?;
    }
    Ok(())
}

/// Searches one tenant's documents. An empty query (no letters or digits)
/// finds nothing.
pub async fn query<C: ConnectionTrait>(
    db: &C,
    tenant_id: Uuid,
    text: &str,
    object_types: &[&str],
    limit: u64,
) -> Result<Vec<SearchHit>> {
    let tokens = tokenize(text);
    if tokens.is_empty() || object_types.is_empty() {
        return Ok(Vec::new());
    }
    let backend = db.get_database_backend();
    let types = object_types
        .iter()
        .enumerate()
        .map(|(i, _)| param(backend, i + 3))
        .collect::<Vec<_>>()
        .join(",");
    let limit_ph = param(backend, object_types.len() + 3);
    let (sql, match_expr) = match backend {
        DbBackend::Postgres => (
            format!(
                "SELECT d.object_type, d.record_id, d.title, d.subtitle, \
                 CAST(ts_rank(d.tsv, q) AS DOUBLE PRECISION) AS rank \
                 FROM search_documents d, to_tsquery('simple', $2) q \
                 WHERE d.tenant_id = $1 AND d.tsv @@ q AND d.object_type IN ({types}) \
                 ORDER BY rank DESC, d.title LIMIT {limit_ph}"
            ),
            tokens
                .iter()
                .map(|t| format!("{t}:*"))
                .collect::<Vec<_>>()
                .join(" & "),
        ),
        // CROSS JOIN makes SQLite start from the full-text match and look
        // documents up by rowid, rather than test MATCH on every document.
        _ => (
            format!(
                "SELECT d.object_type, d.record_id, d.title, d.subtitle, \
                 -bm25(search_fts, 10.0, 1.0) AS rank \
                 FROM search_fts CROSS JOIN search_documents d ON d.rowid = search_fts.rowid \
                 WHERE d.tenant_id = ?1 AND search_fts MATCH ?2 AND d.object_type IN ({types}) \
                 ORDER BY rank DESC, d.title LIMIT {limit_ph}"
            ),
            tokens
                .iter()
                .map(|t| format!("\"{t}\"*"))
                .collect::<Vec<_>>()
                .join(" AND "),
        ),
    };
    let mut values: Vec<Value> = vec![tenant_id.into(), match_expr.into()];
    values.extend(object_types.iter().map(|t| Value::from(*t)));
    values.push(Value::from(limit as i64));
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
        .await?;
    let mut hits = Vec::with_capacity(rows.len());
    for row in rows {
        hits.push(SearchHit {
            object_type: row.try_get("", "object_type")?,
            id: row.try_get("", "record_id")?,
            title: row.try_get("", "title")?,
            subtitle: row.try_get("", "subtitle")?,
        });
    }
    Ok(hits)
}

/// Makes deletions final in the index's storage. SQLite's FTS5 keeps
/// deleted terms in older segments until they merge; `optimize` merges them
/// all now (it rewrites the whole index, so it is for rare events such as a
/// GDPR erasure). PostgreSQL drops dead rows at its next VACUUM.
pub async fn purge_deleted<C: ConnectionTrait>(db: &C) -> Result<()> {
    if db.get_database_backend() == DbBackend::Sqlite {
        db.execute_unprepared("INSERT INTO search_fts(search_fts) VALUES('optimize')")
            .await?;
    }
    Ok(())
}

/// Every word of every string in a JSON value (a record as a caller sees it).
pub fn words_of(value: &serde_json::Value) -> Vec<String> {
    fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::String(s) => out.extend(
                s.split(|c: char| !c.is_alphanumeric())
                    .filter(|t| !t.is_empty())
                    .map(str::to_lowercase),
            ),
            serde_json::Value::Number(n) => out.push(n.to_string()),
            serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            serde_json::Value::Object(o) => o.values().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(value, &mut out);
    out
}

/// Whether every token of `query` is a prefix of one of `words`: the same
/// match the index makes (without its accent folding).
pub fn explains(words: &[String], query: &str) -> bool {
    tokenize(query)
        .iter()
        .all(|t| words.iter().any(|w| w.starts_with(t.as_str())))
}

/// Splits text into lower-case runs of letters and digits: the query
/// language both backends understand, with no operator a user could inject.
pub fn tokenize(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .take(16)
        .map(str::to_lowercase)
        .collect()
}

fn placeholders(backend: DbBackend, already: usize, count: usize) -> String {
    let list = (1..=count)
        .map(|i| param(backend, already + i))
        .collect::<Vec<_>>()
        .join(",");
    format!("({list})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_drop_operators_and_punctuation() {
        assert_eq!(
            tokenize("Jo\"hn* OR smi-th@Example.com"),
            vec!["jo", "hn", "or", "smi", "th", "example", "com"]
        );
        assert!(tokenize("*** ").is_empty());
    }
}
