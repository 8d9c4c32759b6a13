//! Finding a record's likely duplicates, each with a confidence and the
//! reasons for it.
//!
//! Candidates come from the search index (the record's name, its email
//! addresses and phone numbers, its domain), so finding them costs a few
//! indexed queries however large the tenant; they are read through the
//! list service, so the caller's scope and field rules apply, and then
//! scored here. Each piece of evidence has a weight and they combine as
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

pub mod queue;

/// What creating a record that likely duplicates another does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Policy {
    /// Nothing.
    Off,
    /// The record is created; the answer names the likely duplicates.
    #[default]
    Warn,
    /// A near-certain duplicate (the same email address, phone number or
    /// domain) is refused with the candidates; weaker ones only warn.
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
const MIN_SCORE: f64 = 0.5;
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
    let emails = list_of(me, "emails", "address", |s| s.trim().to_lowercase());
    let phones = list_of(me, "phones", "number", digits);
    let name = person_name(me);
    let mut queries: Vec<String> = emails.iter().cloned().collect();
    // The search index holds each number's last nine digits as a word.
    queries.extend(
        phones
            .iter()
            .filter(|p| p.len() >= 7)
            .map(|p| p[p.len().saturating_sub(9)..].to_owned()),
    );
    queries.extend(name_prefixes(&[
        text(me, "first_name"),
        text(me, "last_name"),
    ]));
    let found = candidates::<Contacts>(db, ctx, id, &queries).await?;
    let mut out = Vec::new();
    for other in found {
        let mut evidence: Vec<(f64, Reason)> = Vec::new();
        let their_emails = list_of(&other, "emails", "address", |s| s.trim().to_lowercase());
        if let Some(e) = emails.intersection(&their_emails).next() {
            evidence.push((0.95, reason("same_email", e.clone())));
        }
        let their_phones = list_of(&other, "phones", "number", digits);
        if let Some(p) = phones
            .iter()
            .find(|p| p.len() >= 7 && their_phones.iter().any(|q| same_number(p, q)))
        {
            evidence.push((0.8, reason("same_phone", p.clone())));
        }
        let their_name = person_name(&other);
        if let Some(r) = similar_names(&name, &their_name, 0.6) {
            evidence.push(r);
        }
        push_candidate(&mut out, &other, their_name, evidence);
    }
    Ok(ranked(out))
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
    let name = text(me, "name");
    let domain = text(me, "domain").to_lowercase();
    let mut queries: Vec<String> = name_prefixes(std::slice::from_ref(&name))
        .into_iter()
        .collect();
    if !domain.is_empty() {
        queries.push(domain.clone());
    }
    let found = candidates::<Accounts>(db, ctx, id, &queries).await?;
    let mut out = Vec::new();
    for other in found {
        let mut evidence: Vec<(f64, Reason)> = Vec::new();
        if !domain.is_empty() && text(&other, "domain").to_lowercase() == domain {
            evidence.push((0.95, reason("same_domain", domain.clone())));
        }
        let their_name = text(&other, "name");
        if let Some(r) = similar_names(&name, &their_name, 0.7) {
            evidence.push(r);
        }
        push_candidate(&mut out, &other, their_name, evidence);
    }
    Ok(ranked(out))
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

/// Under [`Policy::Block`], refuses to create a record (given in input
/// form) that very likely exists already, naming the records it matches.
pub async fn refuse_likely(
    db: &sea_orm::DatabaseConnection,
    ctx: &RequestContext,
    object: ObjectType,
    input: &Value,
) -> Result<()> {
    let found = match object {
        ObjectType::Contact => contacts_like(db, ctx, input, None).await?,
        ObjectType::Account => accounts_like(db, ctx, input, None).await?,
        _ => return Ok(()),
    };
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

/// Records the search index finds for any of `queries`, as the caller may
/// see them, without `id` itself.
async fn candidates<R: Record>(
    db: &sea_orm::DatabaseConnection,
    ctx: &RequestContext,
    id: Option<Uuid>,
    queries: &[String],
) -> Result<Vec<Value>> {
    let mut ids: BTreeSet<Uuid> = BTreeSet::new();
    for q in queries.iter().filter(|q| !q.trim().is_empty()) {
        for hit in crate::crm::search::records(db, ctx, q, &[R::OBJECT], 20).await? {
            if Some(hit.id) != id {
                ids.insert(hit.id);
            }
        }
    }
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = ids.into_iter().take(100).collect();
    records::among_sealed::<R>(db, ctx, &ids).await
}

fn push_candidate(
    out: &mut Vec<Candidate>,
    other: &Value,
    name: String,
    evidence: Vec<(f64, Reason)>,
) {
    let score = 1.0 - evidence.iter().map(|(w, _)| 1.0 - w).product::<f64>();
    let Some(id) = other
        .get("id")
        .and_then(Value::as_str)
        .and_then(|s| Uuid::parse_str(s).ok())
    else {
        return;
    };
    if score >= MIN_SCORE {
        out.push(Candidate {
            id,
            name,
            score: (score * 1000.0).round() / 1000.0,
            reasons: evidence.into_iter().map(|(_, r)| r).collect(),
        });
    }
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
/// the same name).
fn similar_names(a: &str, b: &str, top: f64) -> Option<(f64, Reason)> {
    if a.is_empty() || b.is_empty() {
        return None;
    }
    let similarity = strsim::jaro_winkler(&a.to_lowercase(), &b.to_lowercase());
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

/// Search words for names alike: each name's first four letters as a word
/// beginning (`Ada Love` finds `Ada Lovelance`), so a slip after them is
/// still found; a slip within them is not.
fn name_prefixes(parts: &[String]) -> Option<String> {
    let words: Vec<String> = parts
        .iter()
        .flat_map(|p| p.split_whitespace())
        .map(|w| w.chars().take(4).collect::<String>())
        .filter(|w| !w.is_empty())
        .collect();
    (!words.is_empty()).then(|| words.join(" "))
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

fn digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

/// Two numbers in digits are the same line when one ends with the other's
/// last nine digits (`+44 20 7946 0000` and `020 7946 0000`).
fn same_number(a: &str, b: &str) -> bool {
    let tail = |s: &str| s[s.len().saturating_sub(9)..].to_owned();
    a.len() >= 7 && b.len() >= 7 && tail(a) == tail(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_match_on_their_last_nine_digits() {
        assert!(same_number(
            &digits("+44 20 7946 0000"),
            &digits("020 7946 0000")
        ));
        assert!(!same_number(
            &digits("+44 20 7946 0000"),
            &digits("020 7946 0001")
        ));
        assert!(!same_number("12345", "12345"));
    }

    #[test]
    fn names_alike_are_evidence_and_others_are_not() {
        assert!(similar_names("Ada Lovelace", "ada lovelace", 0.6).is_some());
        assert!(similar_names("Ada Lovelace", "Ada Lovelance", 0.6).is_some());
        assert!(similar_names("Ada Lovelace", "Grace Hopper", 0.6).is_none());
    }
}
