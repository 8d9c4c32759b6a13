//! The real-estate edition's plugin.
//!
//! - **Listings** are a custom object (`listing`, declared in `plugin.toml`)
//!   whose fields keep the RESO Data Dictionary 2.0 names. Before a listing
//!   is written, `StandardStatus` is accepted in its display spelling
//!   ("Active Under Contract") as well as its enumeration spelling
//!   (`ActiveUnderContract`), coordinates sent as numbers are kept exact,
//!   and `OriginalListPrice` is set from the first `ListPrice`.
//! - **Buyer matching**: when a listing comes on the market, or its price or
//!   status changes, buyers whose search criteria (the edition's contact
//!   fields) it meets are found, and each buyer's agent gets a task, once per
//!   listing and buyer. A panel on the contact lists the buyer's matches.

mod commission;
mod demo;
mod listing;
mod mls;
mod showings;
mod statement;

use serde_json::{Map, Value, json};
use trellis_plugin_sdk::records::Query;
use trellis_plugin_sdk::{
    FieldError, HookOutcome, Panel, Plugin, Request, Response, WriteEvent, WriteOp, host, kv, log,
    records, register_plugin,
};

use listing::{custom, standard_status};

/// The job that finds the buyers of listings: `{"listings": [id, ...]}`,
/// with `"cursor"` when it continues through the first one's buyers.
pub const MATCH_JOB: &str = "match-listings";

/// How many matched buyers a listing remembers for its panel.
const BUYERS_KEPT: usize = 50;

/// How many of them the panel names.
const BUYERS_SHOWN: usize = 10;

/// How long one matching invocation works before handing over.
const MATCH_BUDGET_MS: i64 = 8_000;

/// An amount as an exact count of 1/10,000ths (`"350000.5"` → 3500005000).
fn minor(v: &Value) -> Option<i128> {
    let s = match v {
        Value::String(s) => s.trim().to_owned(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    let (whole, frac) = s.split_once('.').unwrap_or((s.as_str(), ""));
    if frac.len() > 4 || frac.chars().any(|c| !c.is_ascii_digit()) {
        return None;
    }
    let w: i128 = whole.parse().ok()?;
    let f: i128 = format!("{frac:0<4}").parse().ok()?;
    Some(if w < 0 {
        w * 10_000 - f
    } else {
        w * 10_000 + f
    })
}

struct RealEstate;

/// A buyer's score from 0 to 100: fit (up to 60: pre-approval, a budget,
/// places, bedrooms, property types) and engagement (up to 40: calls and
/// meetings done in the last 90 days count 8 each, emails 4).
fn buyer_score(contact: &Value, activities: &[Value], now_ms: i64) -> i64 {
    let set = |k: &str| match custom(contact, k) {
        Some(Value::String(s)) => !s.trim().is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Bool(b)) => *b,
        Some(_) => true,
        None => false,
    };
    let mut fit = 0;
    for (k, points) in [
        ("pre_approved", 25),
        ("buyer_max_price", 15),
        ("buyer_cities", 10),
        ("buyer_min_beds", 5),
        ("buyer_property_types", 5),
    ] {
        if set(k) {
            fit += points;
        }
    }
    let since = now_ms - 90 * 86_400_000;
    let mut engagement = 0;
    for a in activities {
        let when = ["done_at", "starts_at", "created_at"]
            .iter()
            .find_map(|k| a.get(*k).and_then(Value::as_str))
            .and_then(parse_ms);
        if when.is_none_or(|w| w < since) {
            continue;
        }
        engagement += match a.get("kind").and_then(Value::as_str) {
            Some("call" | "meeting") if a.get("done").and_then(Value::as_bool) == Some(true) => 8,
            Some("email") => 4,
            _ => 0,
        };
    }
    fit + engagement.min(40)
}

/// Milliseconds since the epoch of an RFC 3339 time.
fn parse_ms(s: &str) -> Option<i64> {
    listing::parse_micros(s).map(|us| us.div_euclid(1000))
}

impl RealEstate {
    /// Recomputes a buyer's score and stores it when it changed.
    fn rescore(contact_id: &str) -> Result<(), String> {
        let contact = records::get("contact", contact_id).map_err(|e| e.to_string())?;
        let activities = Query::new("activity")
            .filter("contact_id", "eq", contact_id)
            .limit(200)
            .fetch()
            .map_err(|e| e.to_string())?
            .data;
        let score = buyer_score(&contact, &activities, trellis_plugin_sdk::host::now_ms());
        if custom(&contact, "lead_score").and_then(Value::as_i64) == Some(score) {
            return Ok(());
        }
        let version = contact.get("version").and_then(Value::as_i64).unwrap_or(0);
        records::update(
            "contact",
            contact_id,
            &json!({"custom": {"lead_score": score}}),
            version,
        )
        .map(|_| ())
        .map_err(|e| e.to_string())
    }

    /// Whether a buyer's criteria (the edition's contact fields) fit a
    /// listing. Criteria a buyer left empty fit everything.
    fn fits(buyer: &Value, listing: &Value) -> bool {
        let price = custom(listing, "ListPrice").and_then(minor);
        let at_least =
            |criterion: &str, field: &str| match custom(buyer, criterion).and_then(Value::as_i64) {
                Some(min) => custom(listing, field)
                    .and_then(Value::as_i64)
                    .is_some_and(|v| v >= min),
                None => true,
            };
        let min_ok = match (custom(buyer, "buyer_min_price").and_then(minor), price) {
            (Some(min), Some(p)) => p >= min,
            (Some(_), None) => false,
            (None, _) => true,
        };
        let max_ok = match (custom(buyer, "buyer_max_price").and_then(minor), price) {
            (Some(max), Some(p)) => p <= max,
            (Some(_), None) => false,
            (None, _) => true,
        };
        let places: Vec<String> = custom(buyer, "buyer_cities")
            .and_then(Value::as_str)
            .unwrap_or("")
            .split([',', ';', '\n'])
            .map(|p| p.trim().to_lowercase())
            .filter(|p| !p.is_empty())
            .collect();
        let here: Vec<String> = ["City", "PostalCode"]
            .iter()
            .filter_map(|k| custom(listing, k).and_then(Value::as_str))
            .map(str::to_lowercase)
            .collect();
        let place_ok = places.is_empty()
            || places.iter().any(|p| {
                here.iter()
                    .any(|h| h == p || h.starts_with(&format!("{p} ")))
            });
        let types: Vec<&str> = custom(buyer, "buyer_property_types")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        // Every must-have the buyer named is a flag the listing carries.
        let must_ok = custom(buyer, "buyer_must_haves")
            .and_then(Value::as_array)
            .is_none_or(|wanted| {
                wanted.iter().filter_map(Value::as_str).all(|w| {
                    listing::MUST_HAVES
                        .iter()
                        .find(|(name, _)| name.eq_ignore_ascii_case(w))
                        .is_none_or(|(_, flag)| {
                            custom(listing, flag).and_then(Value::as_bool) == Some(true)
                        })
                })
            });
        let type_ok = types.is_empty()
            || ["PropertyType", "PropertySubType"].iter().any(|k| {
                custom(listing, k)
                    .and_then(Value::as_str)
                    .is_some_and(|t| types.iter().any(|x| x.eq_ignore_ascii_case(t)))
            });
        min_ok
            && max_ok
            && at_least("buyer_min_beds", "BedroomsTotal")
            && at_least("buyer_min_baths", "BathroomsTotalInteger")
            && place_ok
            && type_ok
            && must_ok
    }

    /// Finds the buyers a listing fits and tasks their agents (once per
    /// listing and buyer), from `cursor` through the buyers until done or
    /// until `deadline_ms`; returns how many were tasked and, when the
    /// deadline came first, where to go on.
    fn match_buyers(
        listing: &Value,
        mut cursor: Option<String>,
        deadline_ms: i64,
    ) -> Result<(usize, Option<String>), String> {
        let listing_id = listing
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let Some(price) = custom(listing, "ListPrice").and_then(Value::as_str) else {
            return Ok((0, None));
        };
        let address = custom(listing, "UnparsedAddress")
            .or_else(|| custom(listing, "City"))
            .and_then(Value::as_str)
            .unwrap_or("a listing")
            .to_owned();
        let mut notified = 0;
        let mut found: Vec<String> = Vec::new();
        loop {
            // Buyers who can afford it; the rest of the criteria here.
            let page = Query::new("contact")
                .filter("custom.buyer_max_price", "gte", price)
                .limit(200)
                .after(cursor.take())
                .fetch()
                .map_err(|e| e.to_string())?;
            for buyer in &page.data {
                if !Self::fits(buyer, listing) {
                    continue;
                }
                let buyer_id = buyer.get("id").and_then(Value::as_str).unwrap_or_default();
                let seen_key = format!("notified:{listing_id}:{buyer_id}");
                if kv::get(&seen_key).map_err(|e| e.to_string())?.is_some() {
                    continue;
                }
                let name = buyer
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("a buyer");
                let mut task = json!({
                    "kind": "task",
                    "subject": format!("New listing match for {name}: {address} at {price}"),
                    "contact_id": buyer_id,
                });
                if let Some(owner) = buyer.get("owner_id").filter(|o| !o.is_null()) {
                    task["owner_id"] = owner.clone();
                }
                records::create("activity", &task).map_err(|e| e.to_string())?;
                kv::set(&seen_key, b"1").map_err(|e| e.to_string())?;
                // The buyer's matches, newest first, for the contact panel.
                let list_key = format!("matches:{buyer_id}");
                let mut matches: Vec<Value> = kv::get_json(&list_key)
                    .map_err(|e| e.to_string())?
                    .and_then(|v| v.as_array().cloned())
                    .unwrap_or_default();
                matches.retain(|m| m.get("id").and_then(Value::as_str) != Some(listing_id));
                matches.insert(
                    0,
                    json!({"id": listing_id, "address": address, "price": price}),
                );
                matches.truncate(20);
                kv::set_json(&list_key, &Value::Array(matches)).map_err(|e| e.to_string())?;
                found.push(buyer_id.to_owned());
                notified += 1;
            }
            let stop = match page.next_cursor {
                Some(c) if host::now_ms() >= deadline_ms => Some(Some(c)),
                Some(c) => {
                    cursor = Some(c);
                    None
                }
                None => Some(None),
            };
            if let Some(next) = stop {
                Self::remember_buyers(listing_id, &found)?;
                return Ok((notified, next));
            }
        }
    }

    /// A buyer's matching listings, newest first.
    fn buyer_panel(contact_id: &str) -> Option<Panel> {
        let matches = kv::get_json(&format!("matches:{contact_id}"))
            .ok()
            .flatten()
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default();
        if matches.is_empty() {
            return None;
        }
        let mut panel = Panel::new("matches", "Matching listings");
        for m in &matches {
            let address = m.get("address").and_then(Value::as_str).unwrap_or("");
            let price = m.get("price").and_then(Value::as_str).unwrap_or("");
            let link = format!(
                "/objects/listing/{}",
                m.get("id").and_then(Value::as_str).unwrap_or("")
            );
            panel = panel.link(address, price.to_owned(), &link);
        }
        Some(panel)
    }

    /// The buyers a listing matched, newest first, named as they are now
    /// (a buyer deleted since is left out).
    fn matched_buyers_panel(listing_id: &str) -> Option<Panel> {
        let ids = kv::get_json(&format!("buyers:{listing_id}"))
            .ok()
            .flatten()
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default();
        let ids: Vec<String> = ids
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect();
        let mut panel = Panel::new("buyers", "Matching buyers");
        let mut shown = 0;
        // A page of buyers per host call; a deleted one is left out, so the
        // next page fills in.
        for page in ids.chunks(BUYERS_SHOWN) {
            let Ok(buyers) = records::get_many("contact", page) else {
                break;
            };
            for buyer in buyers.iter().take(BUYERS_SHOWN - shown) {
                let id = buyer.get("id").and_then(Value::as_str).unwrap_or("");
                let name = buyer
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("a buyer");
                let score = custom(buyer, "lead_score")
                    .filter(|s| !s.is_null())
                    .map_or_else(String::new, |s| format!("score {s}"));
                panel = panel.link(name, score, &format!("/contacts/{id}"));
                shown += 1;
            }
            if shown == BUYERS_SHOWN {
                break;
            }
        }
        if shown == 0 {
            return None;
        }
        if ids.len() > shown {
            panel = panel.item("All matched", ids.len().to_string());
        }
        Some(panel)
    }

    /// Adds `buyers` (ids) to the listing's matched buyers, newest first,
    /// for the listing's panel. Only ids are kept: names are read when the
    /// panel is shown, so an erased buyer's name is never kept here.
    fn remember_buyers(listing_id: &str, buyers: &[String]) -> Result<(), String> {
        if buyers.is_empty() {
            return Ok(());
        }
        let key = format!("buyers:{listing_id}");
        let mut all: Vec<Value> = kv::get_json(&key)
            .map_err(|e| e.to_string())?
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default();
        all.retain(|b| !buyers.iter().any(|n| b.as_str() == Some(n.as_str())));
        let mut fresh: Vec<Value> = buyers.iter().rev().map(|b| json!(b)).collect();
        fresh.append(&mut all);
        fresh.truncate(BUYERS_KEPT);
        kv::set_json(&key, &Value::Array(fresh)).map_err(|e| e.to_string())
    }

    /// The matching job: works through `listings` (ids) and hands what is
    /// left to a continuation when its time is up.
    fn match_job(payload: &Value) -> Result<(), String> {
        let deadline = host::now_ms() + MATCH_BUDGET_MS;
        let mut ids: Vec<String> = payload
            .get("listings")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let mut cursor = payload
            .get("cursor")
            .and_then(Value::as_str)
            .map(str::to_owned);
        ids.reverse();
        while let Some(id) = ids.last().cloned() {
            if host::now_ms() >= deadline {
                break;
            }
            let listing = match records::get("listing", &id) {
                Ok(l) => l,
                // Deleted since: nothing to match.
                Err(trellis_plugin_sdk::Error::NotFound(_)) => {
                    ids.pop();
                    cursor = None;
                    continue;
                }
                Err(e) => return Err(e.to_string()),
            };
            if !listing::on_market(&listing) {
                ids.pop();
                cursor = None;
                continue;
            }
            let (n, next) = Self::match_buyers(&listing, cursor.take(), deadline)?;
            if n > 0 {
                log::info(&format!("listing {id} matched {n} new buyer(s)"));
            }
            match next {
                Some(c) => {
                    cursor = Some(c);
                    break;
                }
                None => {
                    ids.pop();
                }
            }
        }
        if !ids.is_empty() {
            ids.reverse();
            host::enqueue_job(MATCH_JOB, &json!({"listings": ids, "cursor": cursor}), 0)
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

impl Plugin for RealEstate {
    fn new() -> Self {
        RealEstate
    }

    fn before_write(&mut self, event: WriteEvent) -> trellis_plugin_sdk::HookOutcome {
        if event.op == WriteOp::Delete {
            return HookOutcome::Accept;
        }
        if event.object_type == "showing" {
            return showings::before_write(&event);
        }
        if event.object_type != "listing" {
            return HookOutcome::Accept;
        }
        let mut patch = Map::new();
        if let Some(s) = event
            .after_field("custom.StandardStatus")
            .and_then(Value::as_str)
        {
            match standard_status(s) {
                Some(e) if e != s => {
                    patch.insert("StandardStatus".to_owned(), json!(e));
                }
                Some(_) => {}
                None => {
                    return HookOutcome::Reject(vec![FieldError::new(
                        "custom.StandardStatus",
                        "invalid_value",
                        "not a RESO StandardStatus (Active, Active Under Contract, Canceled, Closed, Coming Soon, Delete, Expired, Hold, Incomplete, Pending, Withdrawn)",
                    )]);
                }
            }
        }
        // Coordinates arrive from MLS feeds as JSON numbers: keep them exact.
        for k in ["Latitude", "Longitude", "LivingArea", "LotSizeArea"] {
            if let Some(Value::Number(n)) = event.after_field(&format!("custom.{k}")) {
                patch.insert(k.to_owned(), json!(n.to_string()));
            }
        }
        // Flags sent as "Y"/"N" are stored as yes or no.
        for (_, k) in listing::MUST_HAVES {
            if let Some(v @ Value::String(_)) = event.after_field(&format!("custom.{k}"))
                && let Some(b) = listing::flag(v)
            {
                patch.insert(k.to_owned(), json!(b));
            }
        }
        if event.op == WriteOp::Create
            && event.after_field("custom.OriginalListPrice").is_none()
            && let Some(p) = event.after_field("custom.ListPrice")
        {
            patch.insert("OriginalListPrice".to_owned(), p.clone());
        }
        if patch.is_empty() {
            HookOutcome::Accept
        } else {
            HookOutcome::patch(json!({"custom": patch}))
        }
    }

    fn after_write(&mut self, event: WriteEvent) -> Result<(), String> {
        if event.op == WriteOp::Delete {
            return Ok(());
        }
        match event.object_type.as_str() {
            "contact" => {
                return match event.record_id.as_deref() {
                    Some(id) => Self::rescore(id),
                    None => Ok(()),
                };
            }
            "activity" => {
                return match event.after_str("contact_id") {
                    Some(id) => Self::rescore(id),
                    None => Ok(()),
                };
            }
            "showing" => return showings::after_write(&event),
            "listing" => {}
            _ => return Ok(()),
        }
        let Some(listing) = &event.after else {
            return Ok(());
        };
        let worth_it = event.op == WriteOp::Create
            || event.changes("custom.ListPrice")
            || event.changes("custom.StandardStatus");
        if !worth_it || !listing::on_market(listing) {
            return Ok(());
        }
        match event.record_id.as_deref() {
            Some(id) => Self::match_job(&json!({"listings": [id]})),
            None => Ok(()),
        }
    }

    fn run_job(&mut self, name: &str, payload: Value) -> Result<(), String> {
        match name {
            mls::JOB => mls::run_job(&payload),
            demo::JOB => demo::run(&payload),
            MATCH_JOB => Self::match_job(&payload),
            other => Err(format!("no job `{other}`")),
        }
    }

    /// `POST /commission`: a transaction's commission breakdown (see
    /// `commission.rs` for the order of operations).
    fn handle_http(&mut self, request: Request) -> Response {
        match (request.method.as_str(), request.path.as_str()) {
            ("POST", "/commission") => {
                let body = match request.json() {
                    Ok(b) => b,
                    Err(e) => {
                        return Response::json(400, &json!({"error": format!("not JSON: {e}")}));
                    }
                };
                match commission::from_json(&body).and_then(|a| commission::compute(&a)) {
                    Ok(b) => Response::json(200, &commission::to_json(&b)),
                    Err(e) => Response::json(422, &json!({"error": e})),
                }
            }
            // Starts an MLS replication run now (unless one is under way).
            ("POST", "/mls/sync") => {
                if mls::Settings::load().is_none() {
                    return Response::json(
                        409,
                        &json!({"error": "no MLS is configured: set `mls.url` in the plugin's configuration"}),
                    );
                }
                match mls::trigger() {
                    Ok(queued) => Response::json(202, &json!({"queued": queued})),
                    Err(e) => Response::json(503, &json!({"error": e})),
                }
            }
            ("POST", path) if path.starts_with("/open-houses/") && path.ends_with("/sign-in") => {
                let id = &path["/open-houses/".len()..path.len() - "/sign-in".len()];
                match request.json() {
                    Ok(body) => showings::sign_in(id, &body),
                    Err(e) => Response::json(400, &json!({"error": format!("not JSON: {e}")})),
                }
            }
            ("GET", "/commission/statement") => statement::handle(&request),
            ("GET", "/mls/status") => match mls::status() {
                Ok(v) => Response::json(200, &v),
                Err(e) => Response::json(503, &json!({"error": e})),
            },
            _ => Response::status(404),
        }
    }

    fn panels(&mut self, object_type: &str, record: &Value) -> Vec<Panel> {
        let id = record.get("id").and_then(Value::as_str).unwrap_or_default();
        match object_type {
            "contact" => Self::buyer_panel(id).into_iter().collect(),
            "listing" => [Self::matched_buyers_panel(id), showings::panel(id)]
                .into_iter()
                .flatten()
                .collect(),
            _ => Vec::new(),
        }
    }

    fn personal_data(&mut self, contact_id: &str) -> Option<Value> {
        kv::get_json(&format!("matches:{contact_id}"))
            .ok()
            .flatten()
    }

    fn erase_personal_data(&mut self, contact_id: &str) -> Result<(), String> {
        kv::delete(&format!("matches:{contact_id}")).map_err(|e| e.to_string())
    }
}

register_plugin!(RealEstate);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buyers_score_on_fit_and_recent_engagement() {
        let now = parse_ms("2026-11-24T12:00:00Z").unwrap();
        assert_eq!(parse_ms("1970-01-02T00:00:01Z"), Some(86_401_000));
        let buyer = json!({"custom": {"pre_approved": true, "buyer_max_price": "400000", "buyer_cities": "Leeds"}});
        assert_eq!(buyer_score(&buyer, &[], now), 50);
        let recent = json!({"kind": "call", "done": true, "done_at": "2026-11-20T09:00:00Z"});
        let old = json!({"kind": "call", "done": true, "done_at": "2026-01-01T09:00:00Z"});
        let email = json!({"kind": "email", "created_at": "2026-11-23T09:00:00Z"});
        assert_eq!(buyer_score(&buyer, &[recent.clone(), old, email], now), 62);
        let many = vec![recent; 10];
        assert_eq!(
            buyer_score(&buyer, &many, now),
            90,
            "engagement is capped at 40"
        );
        assert_eq!(buyer_score(&json!({"custom": {}}), &[], now), 0);
    }

    #[test]
    fn amounts_compare_exactly() {
        assert_eq!(minor(&json!("350000.5")), Some(3_500_005_000));
        assert_eq!(minor(&json!(12)), Some(120_000));
        assert_eq!(minor(&json!("1.23456")), None);
    }
}
