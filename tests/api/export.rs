//! Exports: every matching record, streamed, RFC 4180 CSV or JSON lines,
//! with the caller's filters, field rules and permissions, and audited.

use axum::http::Method;
use serde_json::{Value, json};

use crate::support::TestApp;

fn csv_rows(text: &str) -> Vec<Vec<String>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(text.as_bytes())
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect()
}

#[tokio::test]
async fn a_list_view_exports_whole_as_csv_and_json_lines() {
    let app = TestApp::new().await;
    // More records than one page of the stream (200), none left behind.
    let items: Vec<Value> = (0..450)
        .map(|i| {
            json!({"first_name": format!("P{i:03}"), "last_name": "Export",
                   "lifecycle_stage": if i % 3 == 0 { "customer" } else { "lead" },
                   "emails": [{"address": format!("p{i}@example.com"), "primary": true}],
                   "tags": ["a", "b"]})
        })
        .collect();
    app.post(
        "/api/v1/contacts/bulk",
        json!({"operation": "create", "items": items}),
    )
    .await
    .assert_status(200);
    // RFC 4180's hard cases: quotes, commas and a line break in one value.
    app.create(
        "/api/v1/contacts",
        json!({"first_name": "Quote \"Q\", Esq.", "last_name": "Line\nBreak", "job_title": "x"}),
    )
    .await;

    let res = app.get("/api/v1/contacts/export").await;
    res.assert_status(200);
    assert!(
        res.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    assert!(
        res.headers["content-disposition"]
            .to_str()
            .unwrap()
            .contains("contacts-")
    );
    let text = res.body.as_str().unwrap();
    assert!(text.contains("\r\n"), "CRLF line ends");
    let rows = csv_rows(text);
    assert_eq!(rows.len(), 1 + 451);
    let header = &rows[0];
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let odd = rows
        .iter()
        .find(|r| r[col("first_name")] == "Quote \"Q\", Esq.")
        .unwrap();
    assert_eq!(odd[col("last_name")], "Line\nBreak");
    let p7 = rows
        .iter()
        .find(|r| r[col("first_name")] == "P007")
        .unwrap();
    assert_eq!(p7[col("email")], "p7@example.com");
    assert_eq!(p7[col("tags")], "a; b");

    // The list's filters apply; JSON lines carry the API's record shape.
    let res = app
        .get("/api/v1/contacts/export?format=jsonl&filter=lifecycle_stage:eq:customer&sort=first_name")
        .await;
    res.assert_status(200);
    let lines: Vec<Value> = res
        .body
        .as_str()
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 150);
    assert_eq!(lines[0]["first_name"], "P000");
    assert!(lines.iter().all(|l| l["lifecycle_stage"] == "customer"));

    // Exports are audited.
    let audited = app
        .get("/api/v1/audit?action=export&object_type=contact")
        .await;
    assert_eq!(audited.body["data"].as_array().unwrap().len(), 2);

    // Mistakes are named before anything streams.
    let res = app.get("/api/v1/contacts/export?format=pdf").await;
    res.assert_problem(422, "validation_failed");
    assert_eq!(res.error_fields(), ["format"]);
    let res = app.get("/api/v1/contacts/export?filter=nope:eq:1").await;
    assert!(res.status.is_client_error(), "{}", res.body);
}

#[tokio::test]
async fn exports_keep_to_the_callers_permissions_and_field_rules() {
    let app = TestApp::new().await;
    app.create(
        "/api/v1/contacts",
        json!({"first_name": "Vis", "last_name": "Ible", "emails": [{"address": "hidden@example.com", "primary": true}]}),
    )
    .await;
    app.put(
        "/api/v1/roles",
        json!({"key": "exporter", "name": "Exporter",
               "permissions": {"contact": {"actions": ["read", "export"], "scope": "all"}},
               "field_rules": {"contact": {"email": "hidden", "emails": "hidden"}}}),
    )
    .await
    .assert_status(200);
    let user = app
        .user(
            "default",
            "x@example.com",
            "a long test passphrase",
            &["exporter"],
        )
        .await;
    let key = app.key_for("default", user, &["exporter"]).await;
    let res = app
        .send(
            Method::GET,
            "/api/v1/contacts/export",
            Some(&key),
            None,
            &[],
        )
        .await;
    res.assert_status(200);
    let text = res.body.as_str().unwrap();
    assert!(text.contains("Ible"));
    assert!(!text.contains("hidden@example.com"), "{text}");
    let header = &csv_rows(text)[0];
    assert!(
        !header.iter().any(|h| h == "email" || h == "emails"),
        "{header:?}"
    );
    // Reading is not exporting.
    let reader = app.role_token("sales_rep").await;
    app.send(
        Method::GET,
        "/api/v1/contacts/export",
        Some(&reader),
        None,
        &[],
    )
    .await
    .assert_problem(403, "forbidden");
}

fn prop<'a>(
    props: &'a [ical::property::Property],
    name: &str,
) -> Vec<&'a ical::property::Property> {
    props.iter().filter(|p| p.name == name).collect()
}

#[tokio::test]
async fn contacts_export_as_vcards_and_activities_as_a_calendar() {
    let app = TestApp::new().await;
    let long_title = "Senior vice president of extraordinarily long job titles, regional, and more";
    let c = app
        .create(
            "/api/v1/contacts",
            json!({"first_name": "Ada", "last_name": "Lovelace, Countess",
                   "job_title": long_title, "tags": ["vip", "math"],
                   "emails": [{"address": "ada@example.com", "primary": true}, {"address": "ada@work.example"}],
                   "phones": [{"number": "+44 20 7946 0000"}]}),
        )
        .await;
    app.create("/api/v1/contacts", json!({"first_name": "Bo"}))
        .await;
    let res = app.get("/api/v1/contacts/export?format=vcf").await;
    res.assert_status(200);
    assert!(
        res.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/vcard")
    );
    let text = res.body.as_str().unwrap().to_owned();
    assert!(
        text.lines().all(|l| l.len() <= 76),
        "lines are folded at 75 octets"
    );
    let cards: Vec<_> = ical::VcardParser::new(std::io::BufReader::new(text.as_bytes()))
        .map(|c| c.unwrap())
        .collect();
    assert_eq!(cards.len(), 2);
    let ada = cards
        .iter()
        .find(|card| !prop(&card.properties, "TITLE").is_empty())
        .unwrap();
    assert_eq!(
        prop(&ada.properties, "VERSION")[0].value.as_deref(),
        Some("4.0")
    );
    assert_eq!(
        prop(&ada.properties, "N")[0].value.as_deref(),
        Some("Lovelace\\, Countess;Ada;;;")
    );
    assert_eq!(prop(&ada.properties, "EMAIL").len(), 2);
    assert_eq!(
        prop(&ada.properties, "TITLE")[0].value.as_deref(),
        Some(long_title.replace(',', "\\,").as_str())
    );
    assert_eq!(
        prop(&ada.properties, "CATEGORIES")[0].value.as_deref(),
        Some("vip,math")
    );
    assert_eq!(
        prop(&ada.properties, "UID")[0].value.as_deref(),
        Some(format!("urn:uuid:{}", c["id"].as_str().unwrap()).as_str())
    );

    app.create(
        "/api/v1/activities",
        json!({"kind": "task", "subject": "Send the contract; today", "due_at": "2026-12-01T09:00:00Z"}),
    )
    .await;
    app.create(
        "/api/v1/activities",
        json!({"kind": "meeting", "subject": "Viewing", "starts_at": "2026-12-02T14:00:00Z", "ends_at": "2026-12-02T15:00:00Z"}),
    )
    .await;
    app.create(
        "/api/v1/activities",
        json!({"kind": "note", "subject": "No time"}),
    )
    .await;
    let res = app.get("/api/v1/activities/export?format=ics").await;
    res.assert_status(200);
    let text = res.body.as_str().unwrap().to_owned();
    let cals: Vec<_> = ical::IcalParser::new(std::io::BufReader::new(text.as_bytes()))
        .map(|c| c.unwrap())
        .collect();
    assert_eq!(cals.len(), 1);
    let cal = &cals[0];
    assert_eq!(cal.todos.len(), 1);
    assert_eq!(cal.events.len(), 1);
    assert_eq!(
        prop(&cal.todos[0].properties, "SUMMARY")[0]
            .value
            .as_deref(),
        Some("Send the contract\\; today")
    );
    assert_eq!(
        prop(&cal.todos[0].properties, "DUE")[0].value.as_deref(),
        Some("20261201T090000Z")
    );
    assert_eq!(
        prop(&cal.events[0].properties, "DTEND")[0].value.as_deref(),
        Some("20261202T150000Z")
    );

    // Each format for what it describes.
    app.get("/api/v1/deals/export?format=vcf")
        .await
        .assert_problem(422, "validation_failed");
}
