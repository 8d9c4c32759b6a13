//! Exercises every export and import of the contract; the kernel's tests
//! drive it end to end, and docs/plugins.md walks through it.

use serde_json::{Value, json};
use trellis_plugin_sdk::records::Query;
use trellis_plugin_sdk::{
    HookOutcome, Panel, Plugin, Request, Response, WriteEvent, WriteOp, host, kv, log, records,
    register_plugin, types,
};

struct Showcase;

impl Plugin for Showcase {
    fn new() -> Self {
        Showcase
    }

    fn install(&mut self, previous_version: Option<String>) -> Result<(), String> {
        let from = previous_version.unwrap_or_else(|| "nothing".to_owned());
        kv::set("installed_from", from.as_bytes()).map_err(|e| e.to_string())
    }

    /// Refuses a contact called "Reject", trims job titles and scores
    /// contacts by the length of their last name.
    fn before_write(&mut self, event: WriteEvent) -> HookOutcome {
        if event.op == WriteOp::Delete {
            return HookOutcome::Accept;
        }
        if event.after_str("first_name") == Some("Reject") {
            return HookOutcome::reject("first_name", "not_allowed", "Reject is not a name");
        }
        let mut patch = serde_json::Map::new();
        if let Some(t) = event.after_str("job_title")
            && t != t.trim()
        {
            patch.insert("job_title".to_owned(), json!(t.trim()));
        }
        let score = event.after_str("last_name").map_or(0, str::len);
        if event.after_field("custom.showcase_score") != Some(&json!(score)) {
            patch.insert("custom".to_owned(), json!({"showcase_score": score}));
        }
        if patch.is_empty() {
            HookOutcome::Accept
        } else {
            HookOutcome::patch(Value::Object(patch))
        }
    }

    /// A batch (bulk request, import) is checked together: a contact whose
    /// email another contact of the same batch (slice) has is refused; the
    /// rest are tidied one by one.
    fn before_write_batch(&mut self, events: Vec<WriteEvent>) -> Vec<HookOutcome> {
        let mut seen = std::collections::HashSet::new();
        events
            .into_iter()
            .map(|event| {
                let emails: std::collections::BTreeSet<String> = event
                    .after_field("emails")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|e| e.get("address").and_then(Value::as_str))
                    .map(str::to_lowercase)
                    .collect();
                // Every email of the record is remembered, even after a clash.
                let clashes = emails
                    .into_iter()
                    .filter(|e| !seen.insert(e.clone()))
                    .count();
                let clash = clashes > 0;
                if clash {
                    HookOutcome::reject(
                        "emails",
                        "duplicate_in_batch",
                        "another contact of this batch has this email",
                    )
                } else {
                    self.before_write(event)
                }
            })
            .collect()
    }

    /// Remembers the last contact written, announces it, and queues a
    /// follow-up for VIPs.
    fn after_write(&mut self, event: WriteEvent) -> Result<(), String> {
        let id = event.record_id.clone().unwrap_or_default();
        if event.object_type == "showcase_note" {
            // Its own custom object: remember the last note written.
            return kv::set("note_seen", id.as_bytes()).map_err(|e| e.to_string());
        }
        kv::set("last_write", id.as_bytes()).map_err(|e| e.to_string())?;
        // What this plugin keeps about the person (see personal_data).
        let name = event.after_str("name").unwrap_or_default();
        kv::set_json(
            &format!("seen:{id}"),
            &json!({"name": name, "at": host::now_ms()}),
        )
        .map_err(|e| e.to_string())?;
        host::emit_event("contact_written", &json!({"id": id})).map_err(|e| e.to_string())?;
        let vip = event
            .after_field("tags")
            .and_then(Value::as_array)
            .is_some_and(|t| t.iter().any(|x| x == "vip"));
        if vip {
            host::enqueue_job("follow_up", &json!({"id": id}), 0).map_err(|e| e.to_string())?;
            if let Some(to) = host::config().get("alert_email").and_then(Value::as_str) {
                host::send_email(to, "A VIP was updated", &format!("Contact {id}"))
                    .map_err(|e| e.to_string())?;
            }
        }
        log::info(&format!("saw {:?} of {id}", event.op));
        Ok(())
    }

    fn run_job(&mut self, name: &str, payload: Value) -> Result<(), String> {
        match name {
            "follow_up" => {
                let id = payload
                    .get("id")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let contact: types::Contact =
                    records::get_as("contact", id).map_err(|e| e.to_string())?;
                let who = [contact.first_name, contact.last_name]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(" ");
                records::create(
                    "activity",
                    &json!({"kind": "task", "subject": format!("Follow up with {who}"), "contact_id": id}),
                )
                .map_err(|e| e.to_string())?;
                Ok(())
            }
            "tick" => {
                let n = kv::get_json("ticks")
                    .map_err(|e| e.to_string())?
                    .and_then(|v| v.as_u64())
                    .unwrap_or(0);
                kv::set_json("ticks", &json!(n + 1)).map_err(|e| e.to_string())
            }
            other => Err(format!("no job `{other}`")),
        }
    }

    fn handle_http(&mut self, request: Request) -> Response {
        match (request.method.as_str(), request.path.as_str()) {
            ("POST", "/echo") => {
                let leads = Query::new("contact")
                    .filter("lifecycle_stage", "eq", "lead")
                    .limit(100)
                    .fetch()
                    .map(|p| p.data.len())
                    .map_err(|e| e.to_string());
                Response::json(
                    200,
                    &json!({
                        "body": request.json().unwrap_or(Value::Null),
                        "config": host::config(),
                        "tenant_id": host::tenant_id(),
                        "now_ms": host::now_ms(),
                        "random_len": host::random_bytes(16).len(),
                        "leads": leads.ok(),
                        "saw_authorization": request.header("authorization").is_some(),
                    }),
                )
            }
            ("GET", path) if path.starts_with("/kv/") => match kv::get(&path["/kv/".len()..]) {
                Ok(Some(v)) => Response {
                    status: 200,
                    headers: vec![("content-type".to_owned(), "text/plain".to_owned())],
                    body: v,
                },
                Ok(None) => Response::status(404),
                Err(e) => Response::json(500, &json!({"error": e.to_string()})),
            },
            ("POST", "/note") => {
                let body = request.json().unwrap_or(Value::Null);
                match records::create("showcase_note", &json!({"custom": body})) {
                    Ok(note) => Response::json(201, &note),
                    Err(e) => Response::json(422, &json!({"error": e.to_string()})),
                }
            }
            ("POST", "/names") => {
                let ids: Vec<String> = request
                    .json()
                    .ok()
                    .and_then(|b| serde_json::from_value(b.get("ids")?.clone()).ok())
                    .unwrap_or_default();
                match records::get_many("contact", &ids) {
                    Ok(found) => Response::json(
                        200,
                        &json!(
                            found
                                .iter()
                                .map(|c| c.get("name").cloned().unwrap_or(Value::Null))
                                .collect::<Vec<_>>()
                        ),
                    ),
                    Err(e) => Response::json(422, &json!({"error": e.to_string()})),
                }
            }
            ("POST", "/webhook") => match kv::set("webhook", &request.body) {
                Ok(()) => Response::status(202),
                Err(e) => Response::json(500, &json!({"error": e.to_string()})),
            },
            ("POST", "/fetch") => {
                let url = request
                    .json()
                    .ok()
                    .and_then(|b| b.get("url").and_then(Value::as_str).map(str::to_owned))
                    .unwrap_or_default();
                match host::fetch("GET", &url, &[("accept", "text/plain")], &[]) {
                    Ok(r) => Response::json(
                        200,
                        &json!({"status": r.status, "body": String::from_utf8_lossy(&r.body)}),
                    ),
                    Err(e) => Response::json(502, &json!({"error": e.to_string()})),
                }
            }
            _ => Response::status(404),
        }
    }

    fn personal_data(&mut self, contact_id: &str) -> Option<Value> {
        kv::get_json(&format!("seen:{contact_id}")).ok().flatten()
    }

    fn erase_personal_data(&mut self, contact_id: &str) -> Result<(), String> {
        kv::delete(&format!("seen:{contact_id}")).map_err(|e| e.to_string())
    }

    fn panels(&mut self, object_type: &str, record: &Value) -> Vec<Panel> {
        if object_type != "contact" {
            return Vec::new();
        }
        let score = record
            .get("custom")
            .and_then(|c| c.get("showcase_score"))
            .map(Value::to_string)
            .unwrap_or_else(|| "none".to_owned());
        vec![Panel::new("score", "Showcase").item("Score", score).item(
            "Name",
            record.get("name").and_then(Value::as_str).unwrap_or(""),
        )]
    }
}

register_plugin!(Showcase);
