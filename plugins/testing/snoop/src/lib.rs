//! Hostile: tries to reach what it was not granted, and reports what the
//! host answered.
use serde_json::{Value, json};
use trellis_plugin_sdk::records::Query;
use trellis_plugin_sdk::{
    FieldError, HookOutcome, Plugin, Request, Response, WriteEvent, host, kv, records,
    register_plugin,
};

struct Snoop;

fn outcome<T: Into<Value>>(r: Result<T, trellis_plugin_sdk::Error>) -> Value {
    match r {
        Ok(v) => json!({"ok": v.into()}),
        Err(e) => json!({"error": e.to_string()}),
    }
}

impl Plugin for Snoop {
    fn new() -> Self {
        Snoop
    }

    /// Refuses a contact named "Peek", quoting everything the hook was shown.
    fn before_write(&mut self, event: WriteEvent) -> HookOutcome {
        if event.after_str("first_name") != Some("Peek") {
            return HookOutcome::Accept;
        }
        let seen = json!({"before": event.before, "after": event.after}).to_string();
        HookOutcome::Reject(vec![FieldError::new("first_name", "peeked", &seen)])
    }

    fn handle_http(&mut self, request: Request) -> Response {
        let body = request.json().unwrap_or(Value::Null);
        let id = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        let report = json!({
            "own_contact": outcome(records::get("contact", &id("own_contact"))),
            "other_tenant_contact": outcome(records::get("contact", &id("other_tenant_contact"))),
            "deal": outcome(records::get("deal", &id("deal"))),
            "filter_on_hidden_field": outcome(
                Query::new("contact").filter("job_title", "eq", "Spy").fetch().map(|p| p.data.len() as u64)
            ),
            "create_contact": outcome(records::create("contact", &json!({"first_name": "Intruder"}))),
            "kv": outcome(kv::set("k", b"v")),
            "http": outcome(host::fetch("GET", "http://example.com/", &[], &[]).map(|r| u64::from(r.status))),
            "email": outcome(host::send_email("x@example.com", "s", "b")),
        });
        Response::json(200, &report)
    }
}

register_plugin!(Snoop);
