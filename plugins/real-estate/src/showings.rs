//! Showings and open houses: the `showing` object (`plugin.toml`), one
//! record per scheduled visit of a listing (`kind` `showing`, with a buyer,
//! or `open_house`), with the buyer's feedback afterwards.
//!
//! - Before a write: the listing must exist, the visit must end after it
//!   starts, and it must not overlap another visit of the same listing that
//!   is not cancelled. Feedback marks the showing done.
//! - After a showing is done with feedback, the feedback becomes a note on
//!   the buyer (their agent sees it on the timeline).
//! - An open house has a public sign-in route: a visitor leaves their
//!   details, becomes a lead of the hosting agent, or is recognised by email
//!   (no duplicate), and the visit is noted on their timeline.

use serde_json::{Map, Value, json};
use trellis_plugin_sdk::records::Query;
use trellis_plugin_sdk::{
    Error as HostError, FieldError, HookOutcome, Panel, Response, WriteEvent, host, records,
};

use crate::listing::{custom, parse_micros};

/// How long before an open house starts, and after it ends, its sign-in
/// form is taken.
const SIGN_IN_SLACK_MS: i64 = 60 * 60_000;

/// A field of the showing as it will be: the patch's value, else the
/// stored one (a before-write event of an update carries only the patch).
fn value<'a>(event: &'a WriteEvent, key: &str) -> Option<&'a Value> {
    let field = format!("custom.{key}");
    match event.after_field(&field) {
        Some(v) => Some(v).filter(|v| !v.is_null()),
        None => event.before_field(&field).filter(|v| !v.is_null()),
    }
}

fn text<'a>(event: &'a WriteEvent, key: &str) -> Option<&'a str> {
    value(event, key).and_then(Value::as_str)
}

/// The checks and normalisation of a showing before it is written.
pub fn before_write(event: &WriteEvent) -> HookOutcome {
    let mut errors = Vec::new();
    let listing_id = text(event, "listing_id").unwrap_or_default().to_owned();
    match records::get("listing", &listing_id) {
        Ok(_) => {}
        Err(HostError::NotFound(_)) => errors.push(FieldError::new(
            "custom.listing_id",
            "not_found",
            "no listing with this id",
        )),
        Err(e) => {
            return HookOutcome::Reject(vec![FieldError::new(
                "custom.listing_id",
                "unavailable",
                &e.to_string(),
            )]);
        }
    }
    let starts = text(event, "starts_at").and_then(parse_micros);
    let ends = text(event, "ends_at").and_then(parse_micros);
    if let (Some(s), Some(e)) = (starts, ends)
        && e <= s
    {
        errors.push(FieldError::new(
            "custom.ends_at",
            "invalid_value",
            "a visit ends after it starts",
        ));
    }
    let cancelled = text(event, "status") == Some("cancelled");
    if errors.is_empty()
        && !cancelled
        && let (Some(s), Some(e)) = (text(event, "starts_at"), text(event, "ends_at"))
    {
        // Other visits of the listing that are not cancelled and overlap.
        let clash = Query::new("showing")
            .filter("custom.listing_id", "eq", &listing_id)
            .filter("custom.starts_at", "lt", e)
            .filter("custom.ends_at", "gt", s)
            .limit(5)
            .fetch()
            .map(|p| {
                p.data.into_iter().find(|o| {
                    o.get("id").and_then(Value::as_str) != event.record_id.as_deref()
                        && custom(o, "status").and_then(Value::as_str) != Some("cancelled")
                })
            });
        match clash {
            Ok(Some(other)) => errors.push(FieldError::new(
                "custom.starts_at",
                "overlaps",
                &format!(
                    "the listing has another visit from {} to {}",
                    custom(&other, "starts_at")
                        .and_then(Value::as_str)
                        .unwrap_or("?"),
                    custom(&other, "ends_at")
                        .and_then(Value::as_str)
                        .unwrap_or("?")
                ),
            )),
            Ok(None) => {}
            Err(e) => errors.push(FieldError::new(
                "custom.starts_at",
                "unavailable",
                &e.to_string(),
            )),
        }
    }
    if !errors.is_empty() {
        return HookOutcome::Reject(errors);
    }
    // Feedback means the showing took place.
    let mut patch = Map::new();
    let has_feedback = event
        .after_field("custom.feedback")
        .and_then(Value::as_str)
        .is_some_and(|f| !f.trim().is_empty())
        || event
            .after_field("custom.rating")
            .is_some_and(|r| !r.is_null());
    if has_feedback
        && matches!(
            text(event, "status"),
            None | Some("requested" | "confirmed")
        )
    {
        patch.insert("status".to_owned(), json!("done"));
    }
    if patch.is_empty() {
        HookOutcome::Accept
    } else {
        HookOutcome::patch(json!({"custom": patch}))
    }
}

/// A listing's visits, latest first: when, what, how it went.
pub fn panel(listing_id: &str) -> Option<Panel> {
    let visits = Query::new("showing")
        .filter("custom.listing_id", "eq", listing_id)
        .sort("-custom.starts_at")
        .limit(10)
        .fetch()
        .ok()?
        .data;
    if visits.is_empty() {
        return None;
    }
    let mut panel = Panel::new("showings", "Showings and open houses");
    for v in &visits {
        let at = custom(v, "starts_at")
            .and_then(Value::as_str)
            .and_then(|s| s.get(..16))
            .map(|s| s.replace('T', " "))
            .unwrap_or_default();
        let kind = match custom(v, "kind").and_then(Value::as_str) {
            Some("open_house") => "Open house",
            _ => "Showing",
        };
        let mut value = custom(v, "status")
            .and_then(Value::as_str)
            .unwrap_or("requested")
            .to_owned();
        if let Some(r) = custom(v, "rating").filter(|r| !r.is_null()) {
            value.push_str(&format!(", rated {r}/5"));
        }
        let id = v.get("id").and_then(Value::as_str).unwrap_or_default();
        panel = panel.link(
            &format!("{kind}, {at} UTC"),
            value,
            &format!("/objects/showing/{id}"),
        );
    }
    Some(panel)
}

/// After a showing is written: feedback on a done showing becomes a note
/// on the buyer.
pub fn after_write(event: &WriteEvent) -> Result<(), String> {
    let Some(after) = &event.after else {
        return Ok(());
    };
    let feedback_changed = event.changes("custom.feedback") || event.changes("custom.rating");
    if custom(after, "status").and_then(Value::as_str) != Some("done") || !feedback_changed {
        return Ok(());
    }
    let Some(buyer) = custom(after, "buyer_id").and_then(Value::as_str) else {
        return Ok(());
    };
    let listing_id = custom(after, "listing_id")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let address = records::get("listing", listing_id)
        .ok()
        .and_then(|l| {
            custom(&l, "UnparsedAddress")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "the listing".to_owned());
    let rating = custom(after, "rating")
        .and_then(Value::as_i64)
        .map(|r| format!(" (rated {r}/5)"))
        .unwrap_or_default();
    let feedback = custom(after, "feedback")
        .and_then(Value::as_str)
        .unwrap_or("");
    let mut note = json!({
        "kind": "note",
        "subject": format!("Showing feedback on {address}{rating}"),
        "body": feedback,
        "contact_id": buyer,
        "done": true,
    });
    if let Some(owner) = after.get("owner_id").filter(|o| !o.is_null()) {
        note["owner_id"] = owner.clone();
    }
    records::create("activity", &note)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn problem(status: u16, field: Option<&str>, message: &str) -> Response {
    let mut body = json!({"error": message});
    if let Some(f) = field {
        body["field"] = json!(f);
    }
    Response::json(status, &body)
}

/// `POST /open-houses/{id}/sign-in` (public): a visitor signs in.
pub fn sign_in(open_house_id: &str, body: &Value) -> Response {
    let visit = match records::get("showing", open_house_id) {
        Ok(v) => v,
        Err(HostError::NotFound(_)) => return problem(404, None, "no such open house"),
        Err(e) => return problem(503, None, &e.to_string()),
    };
    if custom(&visit, "kind").and_then(Value::as_str) != Some("open_house")
        || custom(&visit, "status").and_then(Value::as_str) == Some("cancelled")
    {
        return problem(404, None, "no such open house");
    }
    let now_us = host::now_ms() * 1000;
    let window = (
        custom(&visit, "starts_at")
            .and_then(Value::as_str)
            .and_then(parse_micros),
        custom(&visit, "ends_at")
            .and_then(Value::as_str)
            .and_then(parse_micros),
    );
    let open = matches!(window, (Some(s), Some(e))
        if now_us >= s - SIGN_IN_SLACK_MS * 1000 && now_us <= e + SIGN_IN_SLACK_MS * 1000);
    if !open {
        return problem(409, None, "this open house is not taking sign-ins now");
    }
    let field = |k: &str| {
        body.get(k)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    let email = field("email").map(str::to_lowercase);
    let phone = field("phone");
    if field("first_name").is_none() && field("last_name").is_none() {
        return problem(422, Some("first_name"), "a name is required");
    }
    if email.is_none() && phone.is_none() {
        return problem(
            422,
            Some("email"),
            "an email address or a phone number is required",
        );
    }
    if email
        .as_deref()
        .is_some_and(|e| !e.contains('@') || e.len() > 254)
    {
        return problem(422, Some("email"), "not an email address");
    }
    let owner = visit.get("owner_id").filter(|o| !o.is_null()).cloned();
    // A visitor already known by email is not created again.
    let known = match &email {
        Some(e) => match Query::new("contact")
            .filter("email", "eq", e)
            .limit(1)
            .fetch()
        {
            Ok(p) => p.data.into_iter().next(),
            Err(e) => return problem(503, None, &e.to_string()),
        },
        None => None,
    };
    let contact_id = match known {
        Some(c) => {
            let id = c
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            // An unassigned lead goes to the hosting agent.
            if c.get("owner_id").is_none_or(Value::is_null)
                && let Some(o) = &owner
            {
                let version = c.get("version").and_then(Value::as_i64).unwrap_or(0);
                if let Err(e) = records::update("contact", &id, &json!({"owner_id": o}), version) {
                    return problem(503, None, &e.to_string());
                }
            }
            id
        }
        None => {
            let mut contact = json!({
                "first_name": field("first_name"),
                "last_name": field("last_name"),
                "lifecycle_stage": "lead",
                "lead_source": "open_house",
            });
            if let Some(e) = &email {
                contact["emails"] = json!([{"address": e, "primary": true}]);
            }
            if let Some(p) = phone {
                contact["phones"] = json!([{"number": p}]);
            }
            if let Some(o) = &owner {
                contact["owner_id"] = o.clone();
            }
            match records::create("contact", &contact) {
                Ok(c) => c
                    .get("id")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                Err(HostError::Invalid(errors)) => {
                    let f = errors.first().map(|e| e.field.clone()).unwrap_or_default();
                    let m = errors
                        .first()
                        .map(|e| e.message.clone())
                        .unwrap_or_default();
                    return problem(422, Some(&f), &m);
                }
                Err(e) => return problem(503, None, &e.to_string()),
            }
        }
    };
    let listing_id = custom(&visit, "listing_id")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let address = records::get("listing", listing_id)
        .ok()
        .and_then(|l| {
            custom(&l, "UnparsedAddress")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "a listing".to_owned());
    let with_agent = body.get("working_with_agent").and_then(Value::as_bool);
    let mut note = json!({
        "kind": "note",
        "subject": format!("Signed in at the open house at {address}"),
        "body": match with_agent {
            Some(true) => "Says they already work with an agent.",
            Some(false) => "Says they do not work with an agent yet.",
            None => "",
        },
        "contact_id": contact_id,
        "done": true,
    });
    if let Some(o) = &owner {
        note["owner_id"] = o.clone();
    }
    if let Err(e) = records::create("activity", &note) {
        return problem(503, None, &e.to_string());
    }
    // The visitor learns nothing about what the CRM holds.
    Response::json(201, &json!({"signed_in": true}))
}
