//! The audit trail: search, export, and tamper evidence under direct
//! database edits.

use axum::http::Method;
use serde_json::json;

use crate::support::TestApp;

async fn some_history(app: &TestApp) -> String {
    let c = app
        .create(
            "/api/v1/contacts",
            json!({"first_name": "Audited", "last_name": "One"}),
        )
        .await;
    let id = c["id"].as_str().unwrap().to_owned();
    for (v, name) in [(1, "Two"), (2, "Three")] {
        app.patch(
            &format!("/api/v1/contacts/{id}"),
            json!({"version": v, "last_name": name}),
        )
        .await
        .assert_status(200);
    }
    app.create("/api/v1/accounts", json!({"name": "Audited Corp"}))
        .await;
    id
}

#[tokio::test]
async fn the_trail_is_searchable_by_record_actor_and_time_and_exports_as_json_lines() {
    let app = TestApp::new().await;
    let id = some_history(&app).await;
    let res = app.get(&format!("/api/v1/audit?record_id={id}")).await;
    res.assert_status(200);
    let entries = res.body["data"].as_array().unwrap();
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[0]["action"], "update");
    assert_eq!(entries[0]["changes"]["last_name"]["after"], "Three");
    assert_eq!(entries[2]["action"], "create");
    assert!(entries[0]["seq"].as_i64() > entries[1]["seq"].as_i64());
    let actor = entries[0]["actor_id"].as_str().unwrap();
    let by_actor = app
        .get(&format!("/api/v1/audit?actor_id={actor}&limit=2"))
        .await;
    assert_eq!(by_actor.body["data"].as_array().unwrap().len(), 2);
    let before = by_actor.body["next_before"].as_i64().unwrap();
    let page2 = app
        .get(&format!(
            "/api/v1/audit?actor_id={actor}&limit=2&before={before}"
        ))
        .await;
    assert!(page2.body["data"][0]["seq"].as_i64().unwrap() < before);
    let future = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let none = app
        .get(&format!("/api/v1/audit?from={}", urlencode(&future)))
        .await;
    assert!(none.body["data"].as_array().unwrap().is_empty());

    let export = app.get("/api/v1/audit/export").await;
    export.assert_status(200);
    let text = export.body.as_str().unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    // The export itself is on the record.
    let exports = app.get("/api/v1/audit?action=export").await;
    assert_eq!(exports.body["data"].as_array().unwrap().len(), 1);
    // Another tenant's trail is not reachable.
    let other = app.tenant_token("other", "admin").await;
    let theirs = app
        .send(
            Method::GET,
            &format!("/api/v1/audit?record_id={id}"),
            Some(&other),
            None,
            &[],
        )
        .await;
    assert!(theirs.body["data"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn verification_names_an_altered_or_deleted_entry() {
    let app = TestApp::new().await;
    let id = some_history(&app).await;
    let ok = app.get("/api/v1/audit/verify").await;
    ok.assert_status(200);
    assert_eq!(ok.body["valid"], true, "{}", ok.body);
    assert_eq!(ok.body["entries"], 4);
    let clean = trellis::audit::chain::verify(&app.state.db, None)
        .await
        .unwrap();
    assert!(clean.findings.is_empty());

    // Someone with database access rewrites history.
    let entries = app.get(&format!("/api/v1/audit?record_id={id}")).await;
    let edited = entries.body["data"][1]["id"].as_str().unwrap().to_owned();
    let edited_seq = entries.body["data"][1]["seq"].as_i64().unwrap();
    app.sql(&format!(
        "UPDATE audit_log SET changes = '{{\"last_name\": {{\"before\": \"One\", \"after\": \"Forged\"}}}}' WHERE id = {}",
        app.id_sql(&edited)
    ))
    .await;
    let report = trellis::audit::chain::verify(&app.state.db, None)
        .await
        .unwrap();
    assert_eq!(report.findings.len(), 1, "{:?}", report.findings);
    assert_eq!(report.findings[0].kind, "altered");
    assert_eq!(report.findings[0].seq, edited_seq);
    assert_eq!(report.findings[0].entry_id.unwrap().to_string(), edited);

    // And deletes the oldest entry about the contact.
    let created = entries.body["data"][2]["id"].as_str().unwrap().to_owned();
    let created_seq = entries.body["data"][2]["seq"].as_i64().unwrap();
    app.sql(&format!(
        "DELETE FROM audit_log WHERE id = {}",
        app.id_sql(&created)
    ))
    .await;
    let report = trellis::audit::chain::verify(&app.state.db, None)
        .await
        .unwrap();
    let kinds: Vec<(&str, i64)> = report.findings.iter().map(|f| (f.kind, f.seq)).collect();
    assert!(kinds.contains(&("missing", created_seq)), "{kinds:?}");
    assert!(kinds.contains(&("altered", edited_seq)), "{kinds:?}");
    let api = app.get("/api/v1/audit/verify").await;
    assert_eq!(api.body["valid"], false);
}

#[tokio::test]
async fn an_actor_column_changed_after_the_fact_is_caught() {
    let app = TestApp::new().await;
    some_history(&app).await;
    let all = app.get("/api/v1/audit").await;
    let target = all.body["data"][0]["id"].as_str().unwrap().to_owned();
    app.sql(&format!(
        "UPDATE audit_log SET actor_id = NULL, actor_kind = 'system' WHERE id = {}",
        app.id_sql(&target)
    ))
    .await;
    let report = trellis::audit::chain::verify(&app.state.db, None)
        .await
        .unwrap();
    assert_eq!(report.findings.len(), 1);
    assert_eq!(report.findings[0].entry_id.unwrap().to_string(), target);
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn removing_the_newest_entries_is_caught_by_the_head() {
    let app = TestApp::new().await;
    some_history(&app).await;
    let newest = app.get("/api/v1/audit?limit=1").await;
    let id = newest.body["data"][0]["id"].as_str().unwrap().to_owned();
    app.sql(&format!(
        "DELETE FROM audit_log WHERE id = {}",
        app.id_sql(&id)
    ))
    .await;
    let report = trellis::audit::chain::verify(&app.state.db, None)
        .await
        .unwrap();
    let kinds: Vec<&str> = report.findings.iter().map(|f| f.kind).collect();
    assert_eq!(kinds, vec!["head_mismatch"], "{:?}", report.findings);
}
