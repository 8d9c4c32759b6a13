// Shared by the `tidy*` plugins (the benchmark hooks four of them at once):
// a validate-and-normalise hook doing the work such hooks do.
use serde_json::{Value, json};
use trellis_plugin_sdk::{FieldError, HookOutcome, Plugin, WriteEvent, WriteOp};

pub struct Tidy;

fn title_case(s: &str) -> String {
    s.split_whitespace()
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_uppercase().chain(c.flat_map(char::to_lowercase)).collect(),
                None => String::new(),
            }
        })
        .collect::<Vec<String>>()
        .join(" ")
}

impl Plugin for Tidy {
    fn new() -> Self {
        Tidy
    }

    /// Title-cases names, lower-cases emails, keeps only digits and `+` in
    /// phone numbers, and refuses an email without `@`.
    fn before_write(&mut self, event: WriteEvent) -> HookOutcome {
        if event.op == WriteOp::Delete {
            return HookOutcome::Accept;
        }
        let mut patch = serde_json::Map::new();
        for field in ["first_name", "last_name"] {
            if let Some(v) = event.after_str(field) {
                let t = title_case(v);
                if t != v {
                    patch.insert(field.to_owned(), json!(t));
                }
            }
        }
        if let Some(emails) = event.after_field("emails").and_then(Value::as_array) {
            let mut errors = Vec::new();
            let mut changed = false;
            let fixed: Vec<Value> = emails
                .iter()
                .enumerate()
                .map(|(i, e)| {
                    let mut e = e.clone();
                    if let Some(a) = e.get("address").and_then(Value::as_str) {
                        if !a.contains('@') {
                            errors.push(FieldError::new(
                                &format!("emails[{i}].address"),
                                "invalid_format",
                                "an email address needs an @",
                            ));
                        }
                        let lower = a.trim().to_lowercase();
                        if lower != a {
                            changed = true;
                            e["address"] = json!(lower);
                        }
                    }
                    e
                })
                .collect();
            if !errors.is_empty() {
                return HookOutcome::Reject(errors);
            }
            if changed {
                patch.insert("emails".to_owned(), Value::Array(fixed));
            }
        }
        if let Some(phones) = event.after_field("phones").and_then(Value::as_array) {
            let fixed: Vec<Value> = phones
                .iter()
                .map(|p| {
                    let mut p = p.clone();
                    if let Some(n) = p.get("number").and_then(Value::as_str) {
                        let digits: String =
                            n.chars().filter(|c| c.is_ascii_digit() || *c == '+').collect();
                        p["number"] = json!(digits);
                    }
                    p
                })
                .collect();
            if Some(&fixed) != event.after_field("phones").and_then(Value::as_array) {
                patch.insert("phones".to_owned(), Value::Array(fixed));
            }
        }
        if patch.is_empty() {
            HookOutcome::Accept
        } else {
            HookOutcome::Patch(Value::Object(patch))
        }
    }
}
