//! A plugin built straight from `wit/trellis-plugin@0.1.0` (no SDK, which
//! follows the newest contract), as a third party's plugin built before
//! 0.2.0 was: the test that the kernel keeps running such plugins, their
//! exports called and their imports answered through the 0.1.0 shim.
//!
//! - `before-write` on contacts: a job title `forbidden` is refused (field
//!   error on `job_title`), `crash` panics, `wipe` patches `custom` to
//!   null (refused by the kernel), any other title gets
//!   ` (legacy)` appended.
//! - `GET /contacts/{id}`: the contact through `records.get`, a host error
//!   as 404/403/500, with a log line.
wit_bindgen::generate!({
    path: "../../../wit/trellis-plugin@0.1.0",
    world: "plugin",
});

use exports::trellis::plugin::guest::Guest;
use trellis::plugin::types::{
    FieldError, HookOutcome, HostError, HttpRequest, HttpResponse, Panel, WriteEvent,
};
use trellis::plugin::{log, records};

struct Legacy;

fn json_response(status: u16, body: String) -> HttpResponse {
    HttpResponse {
        status,
        headers: vec![("content-type".to_owned(), "application/json".to_owned())],
        body: body.into_bytes(),
    }
}

impl Guest for Legacy {
    fn describe() -> String {
        r#"{"id":"legacy","version":"0.1.0","contract":"0.1.0"}"#.to_owned()
    }

    fn install(_previous_version: Option<String>) -> Result<(), String> {
        Ok(())
    }

    fn before_write(event: WriteEvent) -> HookOutcome {
        let after: serde_json::Value = event
            .after
            .as_deref()
            .and_then(|a| serde_json::from_str(a).ok())
            .unwrap_or_default();
        match after.get("job_title").and_then(|t| t.as_str()) {
            // A patch clearing every custom value (which the kernel refuses).
            Some("wipe") => HookOutcome::Patch(r#"{"custom": null}"#.to_owned()),
            // A plugin bug met by one record of a batch.
            Some("crash") => panic!("legacy cannot handle this title"),
            Some("forbidden") => HookOutcome::Reject(vec![FieldError {
                field: "job_title".to_owned(),
                code: "forbidden_title".to_owned(),
                message: "legacy refuses this title".to_owned(),
            }]),
            Some(title) if !title.ends_with(" (legacy)") => HookOutcome::Patch(
                serde_json::json!({ "job_title": format!("{title} (legacy)") }).to_string(),
            ),
            _ => HookOutcome::Accept,
        }
    }

    fn after_write(_event: WriteEvent) -> Result<(), String> {
        Ok(())
    }

    fn run_job(name: String, _payload: String) -> Result<(), String> {
        Err(format!("no job `{name}`"))
    }

    fn handle_http(request: HttpRequest) -> HttpResponse {
        let Some(id) = request.path.strip_prefix("/contacts/") else {
            return json_response(404, "{}".to_owned());
        };
        log::write(log::Level::Info, &format!("looked up contact {id}"));
        match records::get("contact", id) {
            Ok(contact) => json_response(200, contact),
            Err(e) => {
                let (status, kind, message) = match e {
                    HostError::NotFound(m) => (404, "not-found", m),
                    HostError::Denied(m) => (403, "denied", m),
                    HostError::Invalid(list) => (
                        422,
                        "invalid",
                        list.into_iter()
                            .map(|f| f.field)
                            .collect::<Vec<_>>()
                            .join(","),
                    ),
                    HostError::Limit(m) => (429, "limit", m),
                    HostError::Failed(m) => (500, "failed", m),
                };
                let body = serde_json::json!({ "error": kind, "message": message });
                json_response(status, body.to_string())
            }
        }
    }

    fn panels(_object_type: String, _data: String) -> Vec<Panel> {
        Vec::new()
    }

    fn personal_data(_contact_id: String) -> Option<String> {
        None
    }

    fn erase_personal_data(_contact_id: String) -> Result<(), String> {
        Ok(())
    }
}

export!(Legacy);
