//! vCard 4.0 (RFC 6350) for contacts and iCalendar (RFC 5545) for
//! activities, written from the API's JSON of a record (so hidden fields,
//! already removed from it, never appear).
//!
//! Both formats share the content-line rules: text values escape `\`, `,`,
//! `;` and line breaks, and lines longer than 75 octets are folded (CRLF
//! and a space) without splitting a UTF-8 character.

use chrono::{DateTime, Utc};
use serde_json::Value;

/// Escapes a TEXT value (RFC 6350 3.4, RFC 5545 3.3.11).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ',' => out.push_str("\\,"),
            ';' => out.push_str("\\;"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// One content line, folded at 75 octets, ending in CRLF.
pub fn line(out: &mut String, name: &str, value: &str) {
    let full = format!("{name}:{value}");
    let mut width = 0;
    for c in full.chars() {
        let n = c.len_utf8();
        if width + n > 75 {
            out.push_str("\r\n ");
            width = 1;
        }
        out.push(c);
        width += n;
    }
    out.push_str("\r\n");
}

fn text<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// `20261124T101010Z`.
fn stamp(t: &DateTime<Utc>) -> String {
    t.format("%Y%m%dT%H%M%SZ").to_string()
}

fn time_of(v: &Value, key: &str) -> Option<DateTime<Utc>> {
    text(v, key)
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// A contact as a vCard 4.0.
pub fn vcard(c: &Value) -> String {
    let mut out = String::new();
    line(&mut out, "BEGIN", "VCARD");
    line(&mut out, "VERSION", "4.0");
    if let Some(id) = text(c, "id") {
        line(&mut out, "UID", &format!("urn:uuid:{id}"));
    }
    let first = text(c, "first_name").unwrap_or_default();
    let last = text(c, "last_name").unwrap_or_default();
    // FN is required; the display name, or the primary email.
    let name = text(c, "name")
        .map(str::to_owned)
        .or_else(|| {
            let n = format!("{first} {last}").trim().to_owned();
            (!n.is_empty()).then_some(n)
        })
        .unwrap_or_default();
    line(&mut out, "FN", &escape(&name));
    if !first.is_empty() || !last.is_empty() {
        line(
            &mut out,
            "N",
            &format!("{};{};;;", escape(last), escape(first)),
        );
    }
    for e in c
        .get("emails")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(a) = text(e, "address") {
            let pref = if e.get("primary").and_then(Value::as_bool) == Some(true) {
                ";PREF=1"
            } else {
                ""
            };
            line(&mut out, &format!("EMAIL{pref}"), &escape(a));
        }
    }
    for p in c
        .get("phones")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(n) = text(p, "number") {
            line(&mut out, "TEL", &escape(n));
        }
    }
    if let Some(t) = text(c, "job_title") {
        line(&mut out, "TITLE", &escape(t));
    }
    let tags: Vec<String> = c
        .get("tags")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(escape)
        .collect();
    if !tags.is_empty() {
        line(&mut out, "CATEGORIES", &tags.join(","));
    }
    if let Some(t) = time_of(c, "updated_at") {
        line(&mut out, "REV", &stamp(&t));
    }
    line(&mut out, "END", "VCARD");
    out
}

/// An activity as an iCalendar component: a task as a VTODO, a call or
/// meeting (or anything with a start) as a VEVENT; without any time,
/// nothing.
pub fn icalendar(a: &Value) -> String {
    let starts = time_of(a, "starts_at");
    let due = time_of(a, "due_at");
    let is_task = text(a, "kind") == Some("task");
    let component = match (is_task, starts, due) {
        (true, _, _) if due.is_some() || starts.is_some() => "VTODO",
        (false, Some(_), _) => "VEVENT",
        (false, None, Some(_)) => "VTODO",
        _ => return String::new(),
    };
    let mut out = String::new();
    line(&mut out, "BEGIN", component);
    if let Some(id) = text(a, "id") {
        line(&mut out, "UID", &format!("{id}@trellis"));
    }
    let stamped = time_of(a, "updated_at").unwrap_or_else(Utc::now);
    line(&mut out, "DTSTAMP", &stamp(&stamped));
    if let Some(s) = text(a, "subject") {
        line(&mut out, "SUMMARY", &escape(s));
    }
    if let Some(b) = text(a, "body") {
        line(&mut out, "DESCRIPTION", &escape(b));
    }
    if let Some(s) = starts {
        line(&mut out, "DTSTART", &stamp(&s));
    }
    if component == "VEVENT" {
        if let Some(e) = time_of(a, "ends_at") {
            line(&mut out, "DTEND", &stamp(&e));
        }
    } else if let Some(d) = due {
        line(&mut out, "DUE", &stamp(&d));
    }
    if let Some(k) = text(a, "kind") {
        line(&mut out, "CATEGORIES", &escape(k));
    }
    let done = a.get("done").and_then(Value::as_bool) == Some(true);
    if component == "VTODO" {
        line(
            &mut out,
            "STATUS",
            if done { "COMPLETED" } else { "NEEDS-ACTION" },
        );
        if let Some(t) = time_of(a, "done_at").filter(|_| done) {
            line(&mut out, "COMPLETED", &stamp(&t));
        }
    }
    line(&mut out, "END", component);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_is_escaped_and_long_lines_fold_between_characters() {
        assert_eq!(escape("a,b;c\\d\ne"), "a\\,b\\;c\\\\d\\ne");
        let mut out = String::new();
        line(&mut out, "NOTE", &"é".repeat(60));
        for l in out.split("\r\n").filter(|l| !l.is_empty()) {
            assert!(l.len() <= 75, "{} octets", l.len());
        }
        let unfolded = out.replace("\r\n ", "");
        assert_eq!(unfolded, format!("NOTE:{}\r\n", "é".repeat(60)));
    }

    #[test]
    fn activities_without_a_time_have_no_calendar_entry() {
        assert_eq!(icalendar(&json!({"kind": "note", "subject": "x"})), "");
        assert!(
            icalendar(&json!({"kind": "task", "due_at": "2026-12-01T09:00:00Z"}))
                .starts_with("BEGIN:VTODO")
        );
    }
}
