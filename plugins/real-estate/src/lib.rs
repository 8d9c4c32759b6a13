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

use serde_json::{Map, Value, json};
use trellis_plugin_sdk::records::Query;
use trellis_plugin_sdk::{
    FieldError, HookOutcome, Panel, Plugin, Request, Response, WriteEvent, WriteOp, kv, log,
    records, register_plugin,
};

/// RESO `StandardStatus`: enumeration spelling and display spelling.
const STATUSES: [(&str, &str); 11] = [
    ("Active", "Active"),
    ("ActiveUnderContract", "Active Under Contract"),
    ("Canceled", "Canceled"),
    ("Closed", "Closed"),
    ("ComingSoon", "Coming Soon"),
    ("Delete", "Delete"),
    ("Expired", "Expired"),
    ("Hold", "Hold"),
    ("Incomplete", "Incomplete"),
    ("Pending", "Pending"),
    ("Withdrawn", "Withdrawn"),
];

/// Statuses in which a listing is offered to buyers.
const ON_MARKET: [&str; 2] = ["Active", "ComingSoon"];

/// The enumeration spelling of a status given in either spelling, in any
/// case, with or without spaces.
fn standard_status(s: &str) -> Option<&'static str> {
    let squash = |x: &str| {
        x.chars()
            .filter(|c| !c.is_whitespace())
            .flat_map(char::to_lowercase)
            .collect::<String>()
    };
    let wanted = squash(s);
    STATUSES
        .iter()
        .find(|(e, d)| squash(e) == wanted || squash(d) == wanted)
        .map(|(e, _)| *e)
}

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

fn custom<'a>(record: &'a Value, key: &str) -> Option<&'a Value> {
    record.get("custom")?.get(key).filter(|v| !v.is_null())
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

/// Milliseconds since the epoch of an RFC 3339 UTC time
/// (`2026-11-24T10:00:00Z`, fractions ignored).
fn parse_ms(s: &str) -> Option<i64> {
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let time = time.trim_end_matches('Z');
    let mut t = time.split(':');
    let (h, min) = (
        t.next()?.parse::<i64>().ok()?,
        t.next()?.parse::<i64>().ok()?,
    );
    let sec = t
        .next()
        .and_then(|x| x.split('.').next()?.parse::<i64>().ok())
        .unwrap_or(0);
    // Days from the civil date (Howard Hinnant's algorithm).
    let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + h) * 60 + min) * 60_000 + sec * 1000)
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
    }

    /// Finds the buyers a listing fits and tasks their agents (once per
    /// listing and buyer).
    fn match_buyers(listing: &Value) -> Result<usize, String> {
        let listing_id = listing
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let Some(price) = custom(listing, "ListPrice").and_then(Value::as_str) else {
            return Ok(0);
        };
        let address = custom(listing, "UnparsedAddress")
            .or_else(|| custom(listing, "City"))
            .and_then(Value::as_str)
            .unwrap_or("a listing")
            .to_owned();
        let mut notified = 0;
        let mut cursor = None;
        loop {
            // Buyers who can afford it; the rest of the criteria here.
            let page = Query::new("contact")
                .filter("custom.buyer_max_price", "gte", price)
                .limit(200)
                .after(cursor)
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
                notified += 1;
            }
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        Ok(notified)
    }
}

impl Plugin for RealEstate {
    fn new() -> Self {
        RealEstate
    }

    fn before_write(&mut self, event: WriteEvent) -> trellis_plugin_sdk::HookOutcome {
        if event.object_type != "listing" || event.op == WriteOp::Delete {
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
            "listing" => {}
            _ => return Ok(()),
        }
        let Some(listing) = &event.after else {
            return Ok(());
        };
        let status = custom(listing, "StandardStatus").and_then(Value::as_str);
        if !status.is_some_and(|s| ON_MARKET.contains(&s)) {
            return Ok(());
        }
        let worth_it = event.op == WriteOp::Create
            || event.changes("custom.ListPrice")
            || event.changes("custom.StandardStatus");
        if !worth_it {
            return Ok(());
        }
        let n = Self::match_buyers(listing)?;
        log::info(&format!(
            "listing {} matched {n} new buyer(s)",
            event.record_id.as_deref().unwrap_or("?")
        ));
        Ok(())
    }

    /// `POST /commission`: a transaction's commission breakdown (see
    /// `commission.rs` for the order of operations).
    fn handle_http(&mut self, request: Request) -> Response {
        if request.method != "POST" || request.path != "/commission" {
            return Response::status(404);
        }
        let body = match request.json() {
            Ok(b) => b,
            Err(e) => return Response::json(400, &json!({"error": format!("not JSON: {e}")})),
        };
        match commission::from_json(&body).and_then(|a| commission::compute(&a)) {
            Ok(b) => Response::json(200, &commission::to_json(&b)),
            Err(e) => Response::json(422, &json!({"error": e})),
        }
    }

    fn panels(&mut self, object_type: &str, record: &Value) -> Vec<Panel> {
        if object_type != "contact" {
            return Vec::new();
        }
        let id = record.get("id").and_then(Value::as_str).unwrap_or_default();
        let matches = kv::get_json(&format!("matches:{id}"))
            .ok()
            .flatten()
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default();
        if matches.is_empty() {
            return Vec::new();
        }
        let mut panel = Panel::new("matches", "Matching listings");
        for m in &matches {
            let address = m.get("address").and_then(Value::as_str).unwrap_or("");
            let price = m.get("price").and_then(Value::as_str).unwrap_or("");
            let link = format!(
                "/api/v1/objects/listing/records/{}",
                m.get("id").and_then(Value::as_str).unwrap_or("")
            );
            panel = panel.link(address, price.to_owned(), &link);
        }
        vec![panel]
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
    fn both_spellings_of_every_status_are_accepted() {
        for (e, d) in STATUSES {
            assert_eq!(standard_status(e), Some(e));
            assert_eq!(standard_status(d), Some(e));
        }
        assert_eq!(
            standard_status("active under contract"),
            Some("ActiveUnderContract")
        );
        assert_eq!(standard_status("Sold"), None);
    }

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
