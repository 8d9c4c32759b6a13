//! Finding a record's likely duplicates, each with a confidence and the
//! reasons for it.
//!
//! Candidates come from exact match keys stored with each record (its
//! email addresses, phone numbers, domain and a name key: see [`keys`]),
//! so finding them costs one indexed look-up however large the tenant;
//! they are read through the list service, so the caller's scope and
//! field rules apply, and then scored here. Each piece of evidence has a weight and they combine as
//! independent signals: `1 - Π(1 - w)`.

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::context::RequestContext;
use crate::crm::accounts::Accounts;
use crate::crm::contacts::Contacts;
use crate::crm::records::{self, Record};
use crate::error::Result;
use crate::permissions::ObjectType;

pub mod batch;
pub mod keys;
pub mod queue;

/// What creating a record that likely duplicates another does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Policy {
    /// Nothing.
    Off,
    /// The record is created; the answer names the likely duplicates.
    #[default]
    Warn,
    /// A near-certain duplicate (scoring [`BLOCK_SCORE`]: the same email
    /// address or domain, or the same phone number and a name alike) is
    /// refused with the candidates; weaker ones only warn.
    Block,
}

impl Policy {
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Off => "off",
            Policy::Warn => "warn",
            Policy::Block => "block",
        }
    }

    pub fn parse(s: &str) -> Option<Policy> {
        match s {
            "off" => Some(Policy::Off),
            "warn" => Some(Policy::Warn),
            "block" => Some(Policy::Block),
            _ => None,
        }
    }
}

/// Candidates this likely block a create under [`Policy::Block`].
pub const BLOCK_SCORE: f64 = 0.9;

/// Candidates below this confidence are not worth a person's look.
pub const MIN_SCORE: f64 = 0.5;
/// Names this alike (Jaro-Winkler, lower-cased) count as evidence.
const NAME_SIMILARITY: f64 = 0.88;

/// A likely duplicate.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Candidate {
    pub id: Uuid,
    /// The candidate's name as lists show it.
    pub name: String,
    /// 0 to 1.
    pub score: f64,
    pub reasons: Vec<Reason>,
}

/// One piece of evidence.
#[derive(Debug, Clone, Serialize, serde::Deserialize, ToSchema)]
pub struct Reason {
    /// `same_email`, `same_phone`, `similar_name` or `same_domain`.
    pub code: String,
    /// What matched (the address, number, or the two names and how alike).
    pub detail: String,
}

/// The contact's likely duplicates, most likely first.
pub async fn contacts(
    db: &sea_orm::DatabaseConnection,
    ctx: &RequestContext,
    id: Uuid,
) -> Result<Vec<Candidate>> {
    let me = one::<Contacts>(db, ctx, id).await?;
    contacts_like(db, ctx, &me, Some(id)).await
}

/// Likely duplicates of a contact given as JSON (stored, or about to be:
/// its input form has the same fields), but `id`.
pub async fn contacts_like(
    db: &sea_orm::DatabaseConnection,
    ctx: &RequestContext,
    me: &Value,
    id: Option<Uuid>,
) -> Result<Vec<Candidate>> {
    let found = candidates::<Contacts>(db, ctx, id, &keys_of(ObjectType::Contact, me)).await?;
    Ok(judged(ObjectType::Contact, me, &found))
}

/// The account's likely duplicates, most likely first.
pub async fn accounts(
    db: &sea_orm::DatabaseConnection,
    ctx: &RequestContext,
    id: Uuid,
) -> Result<Vec<Candidate>> {
    let me = one::<Accounts>(db, ctx, id).await?;
    accounts_like(db, ctx, &me, Some(id)).await
}

/// Likely duplicates of an account given as JSON, but `id`.
pub async fn accounts_like(
    db: &sea_orm::DatabaseConnection,
    ctx: &RequestContext,
    me: &Value,
    id: Option<Uuid>,
) -> Result<Vec<Candidate>> {
    let found = candidates::<Accounts>(db, ctx, id, &keys_of(ObjectType::Account, me)).await?;
    Ok(judged(ObjectType::Account, me, &found))
}

/// The match keys of a record of `object` given as JSON (stored or input
/// form).
pub fn keys_of(object: ObjectType, me: &Value) -> Vec<String> {
    match object {
        ObjectType::Contact => {
            let emails = list_of(me, "emails", "address", keys::email);
            let phones = list_of(me, "phones", "number", keys::digits);
            keys::contact(
                &text(me, "first_name"),
                &text(me, "last_name"),
                emails.iter().map(String::as_str),
                phones.iter().map(String::as_str),
            )
        }
        ObjectType::Account => {
            let domain = text(me, "domain");
            keys::account(&text(me, "name"), Some(&domain))
        }
        _ => Vec::new(),
    }
}

/// The candidates among `others` (records as JSON, with their ids), most
/// likely first.
fn judged(object: ObjectType, me: &Value, others: &[Value]) -> Vec<Candidate> {
    let mut out = Vec::new();
    for other in others {
        let (score, reasons) = evidence(object, me, other);
        let Some(id) = other
            .get("id")
            .and_then(Value::as_str)
            .and_then(|s| Uuid::parse_str(s).ok())
        else {
            continue;
        };
        if score >= MIN_SCORE {
            out.push(Candidate {
                id,
                name: display_name(object, other),
                score,
                reasons,
            });
        }
    }
    ranked(out)
}

/// How likely `other` duplicates `me` (0 to 1, rounded to thousandths),
/// and why: each piece of evidence has a weight, and they combine as
/// independent signals.
pub fn evidence(object: ObjectType, me: &Value, other: &Value) -> (f64, Vec<Reason>) {
    let mut found: Vec<(f64, Reason)> = Vec::new();
    match object {
        ObjectType::Contact => {
            let emails = list_of(me, "emails", "address", keys::email);
            let their_emails = list_of(other, "emails", "address", keys::email);
            if let Some(e) = emails.intersection(&their_emails).next() {
                found.push((0.95, reason("same_email", e.clone())));
            }
            let their_lines: BTreeSet<String> = list_of(other, "phones", "number", keys::digits)
                .iter()
                .filter_map(|p| keys::phone_line(p).map(str::to_owned))
                .collect();
            if let Some(p) = list_of(me, "phones", "number", keys::digits)
                .iter()
                .find(|p| keys::phone_line(p).is_some_and(|l| their_lines.contains(l)))
            {
                found.push((0.8, reason("same_phone", p.clone())));
            }
            let (mine, theirs) = (person_name(me), person_name(other));
            found.extend(similar_names(&mine, &theirs, 0.6));
        }
        ObjectType::Account => {
            let domain = keys::email(&text(me, "domain"));
            if !domain.is_empty() && keys::email(&text(other, "domain")) == domain {
                found.push((0.95, reason("same_domain", domain)));
            }
            let (mine, theirs) = (text(me, "name"), text(other, "name"));
            found.extend(similar_names(&mine, &theirs, 0.7));
        }
        _ => {}
    }
    let score = 1.0 - found.iter().map(|(w, _)| 1.0 - w).product::<f64>();
    (
        (score * 1000.0).round() / 1000.0,
        found.into_iter().map(|(_, r)| r).collect(),
    )
}

/// A record's name as lists show it.
fn display_name(object: ObjectType, record: &Value) -> String {
    match object {
        ObjectType::Contact => person_name(record),
        _ => text(record, "name"),
    }
}

/// The likely duplicates of record `id` of `object` (none for types
/// without duplicate detection).
pub async fn of(
    db: &sea_orm::DatabaseConnection,
    ctx: &RequestContext,
    object: ObjectType,
    id: Uuid,
) -> Result<Vec<Candidate>> {
    match object {
        ObjectType::Contact => contacts(db, ctx, id).await,
        ObjectType::Account => accounts(db, ctx, id).await,
        _ => Ok(Vec::new()),
    }
}

/// Likely duplicates of a record of `object` given as JSON, but `id`
/// (none for types without duplicate detection).
pub async fn like(
    db: &sea_orm::DatabaseConnection,
    ctx: &RequestContext,
    object: ObjectType,
    record: &Value,
    id: Option<Uuid>,
) -> Result<Vec<Candidate>> {
    match object {
        ObjectType::Contact => contacts_like(db, ctx, record, id).await,
        ObjectType::Account => accounts_like(db, ctx, record, id).await,
        _ => Ok(Vec::new()),
    }
}

/// Under [`Policy::Block`], refuses to create a record (given in input
/// form) that very likely exists already, naming the records it matches.
pub async fn refuse_likely(
    db: &sea_orm::DatabaseConnection,
    ctx: &RequestContext,
    object: ObjectType,
    input: &Value,
) -> Result<()> {
    let found = like(db, ctx, object, input, None).await?;
    let candidates: Vec<Candidate> = found
        .into_iter()
        .filter(|c| c.score >= BLOCK_SCORE)
        .collect();
    if candidates.is_empty() {
        Ok(())
    } else {
        Err(crate::error::Error::Duplicate {
            object: object.as_str(),
            candidates,
        })
    }
}

/// The record as the caller may see it (404 when it may not).
async fn one<R: Record>(
    db: &sea_orm::DatabaseConnection,
    ctx: &RequestContext,
    id: Uuid,
) -> Result<Value> {
    records::get::<R>(db, ctx, id).await?;
    records::among_sealed::<R>(db, ctx, &[id])
        .await?
        .into_iter()
        .next()
        .ok_or(crate::error::Error::NotFound(R::OBJECT.as_str()))
}

/// Records holding any of `keys`, as the caller may see them (its record
/// scope and field rules apply: the evidence is then judged on what it
/// sees, so a key matched on a hidden value proves nothing), without `id`.
async fn candidates<R: Record>(
    db: &sea_orm::DatabaseConnection,
    ctx: &RequestContext,
    id: Option<Uuid>,
    my_keys: &[String],
) -> Result<Vec<Value>> {
    let (weak, exact): (Vec<String>, Vec<String>) =
        my_keys.iter().cloned().partition(|k| keys::is_name(k));
    let ids: Vec<Uuid> =
        crate::db::search::matching(db, ctx.tenant_id, R::OBJECT.as_str(), &exact, &weak)
            .await?
            .into_iter()
            .filter(|found| Some(*found) != id)
            // As many as one read may ask for (keys shared by more, such
            // as a switchboard number, add nothing a person could review).
            .take(crate::crm::listing::MAX_LIMIT as usize)
            .collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    records::among_sealed::<R>(db, ctx, &ids).await
}

fn ranked(mut out: Vec<Candidate>) -> Vec<Candidate> {
    out.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.id.cmp(&b.id)));
    out
}

fn reason(code: &str, detail: String) -> Reason {
    Reason {
        code: code.to_owned(),
        detail,
    }
}

/// Evidence from two names alike enough, weighted by how alike (`top` for
/// the same name). Compared without case or accents, and in either word
/// order (`Lovelace Ada` is `Ada Lovelace`).
fn similar_names(a: &str, b: &str, top: f64) -> Option<(f64, Reason)> {
    let (wa, wb) = (keys::name_words(a), keys::name_words(b));
    if wa.is_empty() || wb.is_empty() {
        return None;
    }
    let sorted = |w: &[String]| {
        let mut w = w.to_vec();
        w.sort();
        w.join(" ")
    };
    let similarity = strsim::jaro_winkler(&wa.join(" "), &wb.join(" "))
        .max(strsim::jaro_winkler(&sorted(&wa), &sorted(&wb)));
    (similarity >= NAME_SIMILARITY).then(|| {
        (
            top * similarity,
            reason(
                "similar_name",
                format!("{a} ~ {b} ({:.0}% alike)", similarity * 100.0),
            ),
        )
    })
}

fn text(record: &Value, key: &str) -> String {
    record
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .trim()
        .to_owned()
}

fn person_name(record: &Value) -> String {
    [text(record, "first_name"), text(record, "last_name")]
        .iter()
        .filter(|s| !s.is_empty())
        .cloned()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The `field` of each item of a list (`emails[].address`), normalised.
fn list_of(
    record: &Value,
    list: &str,
    field: &str,
    normalise: impl Fn(&str) -> String,
) -> BTreeSet<String> {
    record
        .get(list)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|item| item.get(field).and_then(Value::as_str))
        .map(normalise)
        .filter(|s| !s.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_alike_are_evidence_and_others_are_not() {
        assert!(similar_names("Ada Lovelace", "ada lovelace", 0.6).is_some());
        assert!(similar_names("Ada Lovelace", "Ada Lovelance", 0.6).is_some());
        assert!(similar_names("Ada Lovelace", "Grace Hopper", 0.6).is_none());
        assert!(similar_names("Lovelace, Ada", "Ada Lovelace", 0.6).is_some());
        assert!(similar_names("José Álvarez", "jose alvarez", 0.6).is_some_and(|(w, _)| w == 0.6));
    }
}
