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
    let res = app.get("/api/v1/contacts/export?format=xlsx").await;
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
