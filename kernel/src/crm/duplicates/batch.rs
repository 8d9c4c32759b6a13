//! Likely duplicates of a batch of new records (an import's): checked
//! against the tenant's stored records by their exact keys (an address, a
//! number, a domain) in one look-up per batch, and against each other.
//! Name likeness alone is left to the scan: a name key is shared by too
//! many records for a look-up per row at import speed. Once a candidate
//! is found by an exact key, its name still counts as evidence.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde_json::Value;
use uuid::Uuid;

use super::{Candidate, MIN_SCORE, Reason, evidence, judged, keys, keys_of};
use crate::context::RequestContext;
use crate::crm::records::{self, Record};
use crate::error::Result;

/// Stored records read per batch at most: a key shared by more (a
/// switchboard number) adds nothing a person could review.
const MAX_STORED: usize = 2_000;

/// What a batch's check found.
#[derive(Default)]
pub struct Found {
    /// Per new record (by its index in the batch): its candidates among the
    /// stored records, most likely first.
    pub stored: HashMap<usize, Vec<Candidate>>,
    /// New records alike: (earlier index, later index, score, reasons).
    pub among: Vec<(usize, usize, f64, Vec<Reason>)>,
}

/// Checks new records (index in the batch, input JSON) of type `R`.
pub async fn check<R: Record>(
    db: &sea_orm::DatabaseConnection,
    ctx: &RequestContext,
    rows: &[(usize, &Value)],
) -> Result<Found> {
    let object = R::OBJECT;
    let row_keys: Vec<Vec<String>> = rows
        .iter()
        .map(|(_, v)| {
            keys_of(object, v)
                .into_iter()
                .filter(|k| !keys::is_name(k))
                .collect()
        })
        .collect();
    let all: Vec<String> = row_keys
        .iter()
        .flatten()
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut found = Found::default();
    if all.is_empty() {
        return Ok(found);
    }
    let holders =
        crate::db::search::holders(db, ctx.tenant_id, object.as_str(), &all, 50, MAX_STORED)
            .await?;
    let mut by_key: HashMap<&str, Vec<Uuid>> = HashMap::new();
    for (key, id) in &holders {
        by_key.entry(key.as_str()).or_default().push(*id);
    }
    let ids: Vec<Uuid> = holders
        .iter()
        .map(|(_, id)| *id)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut stored: HashMap<Uuid, Value> = HashMap::new();
    for chunk in ids.chunks(crate::crm::listing::MAX_LIMIT as usize) {
        for record in records::among_sealed::<R>(db, ctx, chunk).await? {
            if let Some(id) = record
                .get("id")
                .and_then(Value::as_str)
                .and_then(|s| Uuid::parse_str(s).ok())
            {
                stored.insert(id, record);
            }
        }
    }
    // The first new record holding each key, for the check among them.
    let mut first_with: BTreeMap<&str, usize> = BTreeMap::new();
    let mut paired: HashSet<(usize, usize)> = HashSet::new();
    for (n, ((index, me), my_keys)) in rows.iter().zip(&row_keys).enumerate() {
        let others: Vec<Value> = my_keys
            .iter()
            .flat_map(|k| by_key.get(k.as_str()).into_iter().flatten())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .filter_map(|id| stored.get(id).cloned())
            .collect();
        let candidates = judged(object, me, &others);
        if !candidates.is_empty() {
            found.stored.insert(*index, candidates);
        }
        for k in my_keys {
            match first_with.get(k.as_str()) {
                None => {
                    first_with.insert(k.as_str(), n);
                }
                Some(&earlier) if paired.insert((earlier, n)) => {
                    let (score, reasons) = evidence(object, me, rows[earlier].1);
                    if score >= MIN_SCORE {
                        found.among.push((rows[earlier].0, *index, score, reasons));
                    }
                }
                Some(_) => {}
            }
        }
    }
    Ok(found)
}
