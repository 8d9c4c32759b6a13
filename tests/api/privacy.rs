//! Data-subject rights: export everything, erase everywhere (checked by
//! scanning every table), legal hold, consent history.

use axum::http::Method;
use sea_orm::{ConnectionTrait, Statement};
use serde_json::json;

use crate::support::TestApp;

/// A contact with personal data in every place the kernel keeps some.
async fn subject(app: &TestApp) -> String {
    app.post(
        "/api/v1/custom-fields",
        json!({"object_type": "contact", "key": "ssn", "label": "SSN", "field_type": "text", "sensitive": true, "blind_index": true}),
    )
    .await
    .assert_status(201);
    app.post(
        "/api/v1/custom-fields",
        json!({"object_type": "contact", "key": "nickname", "label": "Nickname", "field_type": "text"}),
    )
    .await
    .assert_status(201);
    let c = app
        .create(
            "/api/v1/contacts",
            json!({"first_name": "Zelda", "last_name": "Quixotic",
                   "emails": [{"address": "zelda.quixotic@example.org", "primary": true}],
                   "phones": [{"number": "+44 20 7946 0991"}],
                   "job_title": "Cartographer", "tags": ["vip-zq"],
                   "custom": {"ssn": "078-05-1120", "nickname": "Zeldaq"}}),
        )
        .await;
    let id = c["id"].as_str().unwrap().to_owned();
    let other = app
        .create(
            "/api/v1/contacts",
            json!({"first_name": "Other", "last_name": "Person"}),
        )
        .await;
    let account = app
        .create("/api/v1/accounts", json!({"name": "Acme"}))
        .await;
    app.post(
        &format!("/api/v1/contacts/{id}/accounts"),
        json!({"account_id": account["id"], "role": "buyer"}),
    )
    .await
    .assert_status(201);
    app.post(
        &format!("/api/v1/contacts/{id}/relationships"),
        json!({"to_contact_id": other["id"], "kind": "spouse"}),
    )
    .await
    .assert_status(201);
    app.create(
        "/api/v1/activities",
        json!({"kind": "call", "subject": "Call Zelda Quixotic", "body": "Zelda said her SSN is 078-05-1120", "contact_id": id}),
    )
    .await;
    app.post(
        &format!("/api/v1/contacts/{id}/consents"),
        json!({"purpose": "marketing_email", "granted": true, "source": "web_form"}),
    )
    .await
    .assert_status(201);
    // Change the name once, so the trail holds before/after values.
    app.patch(
        &format!("/api/v1/contacts/{id}"),
        json!({"version": 1, "job_title": "Chief Cartographer"}),
    )
    .await
    .assert_status(200);
    id
}

const NEEDLES: [&str; 6] = [
    "Zelda",
    "Quixotic",
    "zelda.quixotic@example.org",
    "7946 0991",
    "Cartographer",
    "078-05-1120",
];

/// Every needle found in any text-like cell of any table.
async fn scan(app: &TestApp) -> Vec<String> {
    let db = &app.state.db;
    let backend = db.get_database_backend();
    let columns: Vec<(String, String)> = match backend {
        sea_orm::DbBackend::Sqlite => {
            let tables = db
                .query_all_raw(Statement::from_string(
                    backend,
                    "SELECT name FROM sqlite_master WHERE type = 'table'",
                ))
                .await
                .unwrap();
            let mut cols = Vec::new();
            for t in tables {
                let name: String = t.try_get("", "name").unwrap();
                for c in db
                    .query_all_raw(Statement::from_string(
                        backend,
                        format!("SELECT name FROM pragma_table_info('{name}')"),
                    ))
                    .await
                    .unwrap()
                {
                    cols.push((name.clone(), c.try_get("", "name").unwrap()));
                }
            }
            cols
        }
        _ => db
            .query_all_raw(Statement::from_string(
                backend,
                "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public'",
            ))
            .await
            .unwrap()
            .into_iter()
            .map(|r| (r.try_get("", "table_name").unwrap(), r.try_get("", "column_name").unwrap()))
            .collect(),
    };
    let mut found = Vec::new();
    for (table, column) in columns {
        let sql = match backend {
            sea_orm::DbBackend::Sqlite => {
                format!("SELECT CAST(\"{column}\" AS TEXT) AS v FROM \"{table}\"")
            }
            _ => format!("SELECT CAST(\"{column}\" AS text) AS v FROM \"{table}\""),
        };
        let Ok(rows) = db.query_all_raw(Statement::from_string(backend, sql)).await else {
            continue;
        };
        for r in rows {
            let v: Option<String> = r.try_get("", "v").ok().flatten();
            let Some(v) = v else { continue };
            for n in NEEDLES {
                if v.contains(n) {
                    found.push(format!("{table}.{column}: {n}"));
                }
            }
        }
    }
    found
}

#[tokio::test]
async fn the_data_subject_export_holds_everything() {
    let app = TestApp::new().await;
    let id = subject(&app).await;
    let res = app
        .get(&format!("/api/v1/contacts/{id}/personal-data"))
        .await;
    res.assert_status(200);
    let doc = &res.body;
    assert_eq!(doc["contact"]["first_name"], "Zelda");
    assert_eq!(doc["contact"]["custom"]["ssn"], "078-05-1120");
    assert_eq!(doc["activities"][0]["subject"], "Call Zelda Quixotic");
    assert_eq!(doc["account_links"][0]["role"], "buyer");
    assert_eq!(doc["relationships"][0]["kind"], "spouse");
    assert_eq!(doc["consents"][0]["purpose"], "marketing_email");
    let actions: Vec<&str> = doc["audit_trail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"create") && actions.contains(&"update") && actions.contains(&"link"),
        "{actions:?}"
    );
    assert!(doc["plugin_data"].is_array());
    // The export is itself audited.
    let exports = app
        .get(&format!("/api/v1/audit?record_id={id}&action=export"))
        .await;
    assert_eq!(exports.body["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn exports_and_audit_searches_keep_to_the_callers_permissions() {
    let app = TestApp::new().await;
    let id = subject(&app).await;
    // Reads contacts and the audit log, but no activities, and the
    // nickname and job title are hidden from it.
    app.put(
        "/api/v1/roles",
        json!({"key": "auditor", "name": "Auditor",
               "permissions": {"contact": {"actions": ["read", "export"], "scope": "all"},
                               "audit_log": {"actions": ["read"], "scope": "all"}},
               "field_rules": {"contact": {"custom.nickname": "hidden", "job_title": "hidden"}}}),
    )
    .await
    .assert_status(200);
    let auditor = app
        .user(
            "default",
            "auditor@example.com",
            "a long test passphrase",
            &["auditor"],
        )
        .await;
    let key = app.key_for("default", auditor, &["auditor"]).await;
    let export = app
        .send(
            Method::GET,
            &format!("/api/v1/contacts/{id}/personal-data"),
            Some(&key),
            None,
            &[],
        )
        .await;
    export.assert_status(200);
    assert_eq!(export.body["complete"], false);
    assert_eq!(export.body["activities"], json!([]));
    assert_eq!(export.body["contact"]["first_name"], "Zelda");
    let text = export.body.to_string();
    for secret in ["Zeldaq", "Cartographer", "Call Zelda Quixotic"] {
        assert!(
            !text.contains(secret),
            "{secret} leaked in the export: {text}"
        );
    }
    let trail = app
        .send(
            Method::GET,
            "/api/v1/audit?limit=1000",
            Some(&key),
            None,
            &[],
        )
        .await;
    trail.assert_status(200);
    let text = trail.body.to_string();
    for secret in [
        "Zeldaq",
        "Cartographer",
        "Call Zelda Quixotic",
        "078-05-1120",
    ] {
        assert!(
            !text.contains(secret),
            "{secret} leaked in the audit log: {text}"
        );
    }
    // What it may read still shows: the contact's creation with its name.
    assert!(text.contains("Quixotic"), "{text}");
    // The admin's export is complete and holds all of it.
    let full = app
        .get(&format!("/api/v1/contacts/{id}/personal-data"))
        .await;
    assert_eq!(full.body["complete"], true);
    assert!(full.body.to_string().contains("Zeldaq"));
}

#[tokio::test]
async fn erasure_leaves_no_personal_data_in_any_table_and_the_trail_verifies() {
    let app = TestApp::new().await;
    let id = subject(&app).await;
    let before = scan(&app).await;
    assert!(
        before.iter().any(|f| f.starts_with("contacts.")),
        "{before:?}"
    );
    assert!(
        before.iter().any(|f| f.starts_with("audit_log.")),
        "{before:?}"
    );

    let res = app
        .post(
            &format!("/api/v1/contacts/{id}/erase"),
            json!({"reason": "request DSR-1042"}),
        )
        .await;
    res.assert_status(200);
    assert_eq!(res.body["activities_anonymised"], 1);
    assert_eq!(res.body["links_removed"], 2);
    let left = scan(&app).await;
    assert!(
        left.is_empty(),
        "personal data left after erasure: {left:?}"
    );

    // The tombstone stays; the trail still verifies and records the erasure.
    let tomb = app.get(&format!("/api/v1/contacts/{id}")).await;
    tomb.assert_status(200);
    assert!(tomb.body["first_name"].is_null());
    let report = trellis::audit::chain::verify(&app.state.db, None)
        .await
        .unwrap();
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    let erase = app
        .get(&format!("/api/v1/audit?record_id={id}&action=erase"))
        .await;
    assert_eq!(erase.body["data"].as_array().unwrap().len(), 1);
    app.post(
        &format!("/api/v1/contacts/{id}/erase"),
        json!({"reason": "again"}),
    )
    .await
    .assert_problem(409, "already_erased");
}

#[tokio::test]
async fn a_redaction_not_named_by_an_erasure_is_reported() {
    let app = TestApp::new().await;
    let c = app
        .create(
            "/api/v1/contacts",
            json!({"first_name": "Cover", "last_name": "Up"}),
        )
        .await;
    let id = c["id"].as_str().unwrap();
    // Someone blanks an entry and marks it redacted to hide a change.
    let now = chrono::Utc::now().to_rfc3339();
    app.sql(&format!(
        "UPDATE audit_log SET changes = '{{\"redacted\": true}}', redacted_at = '{now}' WHERE record_id = {}",
        app.id_sql(id)
    ))
    .await;
    let report = trellis::audit::chain::verify(&app.state.db, None)
        .await
        .unwrap();
    assert_eq!(report.findings.len(), 1, "{:?}", report.findings);
    assert_eq!(report.findings[0].kind, "redacted_without_erasure");
}

#[tokio::test]
async fn legal_hold_blocks_erasure_until_lifted() {
    let app = TestApp::new().await;
    let c = app
        .create("/api/v1/contacts", json!({"first_name": "Held"}))
        .await;
    let id = c["id"].as_str().unwrap();
    app.put(
        &format!("/api/v1/contacts/{id}/legal-hold"),
        json!({"legal_hold": true}),
    )
    .await
    .assert_status(204);
    app.post(
        &format!("/api/v1/contacts/{id}/erase"),
        json!({"reason": "DSR-7"}),
    )
    .await
    .assert_problem(409, "legal_hold");
    assert_eq!(
        app.get(&format!("/api/v1/contacts/{id}")).await.body["first_name"],
        "Held"
    );
    app.put(
        &format!("/api/v1/contacts/{id}/legal-hold"),
        json!({"legal_hold": false}),
    )
    .await
    .assert_status(204);
    app.post(
        &format!("/api/v1/contacts/{id}/erase"),
        json!({"reason": "DSR-7"}),
    )
    .await
    .assert_status(200);
    // Only roles that may delete contacts may erase.
    let rep = app.role_token("sales_rep").await;
    let c2 = app
        .create("/api/v1/contacts", json!({"first_name": "Kept"}))
        .await;
    app.send(
        Method::POST,
        &format!("/api/v1/contacts/{}/erase", c2["id"].as_str().unwrap()),
        Some(&rep),
        Some(json!({"reason": "x"})),
        &[],
    )
    .await
    .assert_problem(403, "forbidden");
}

#[tokio::test]
async fn consent_history_is_kept_per_purpose() {
    let app = TestApp::new().await;
    let c = app
        .create("/api/v1/contacts", json!({"first_name": "Con"}))
        .await;
    let id = c["id"].as_str().unwrap();
    for (granted, source) in [(true, "web_form"), (false, "phone")] {
        app.post(
            &format!("/api/v1/contacts/{id}/consents"),
            json!({"purpose": "marketing_email", "granted": granted, "source": source}),
        )
        .await
        .assert_status(201);
    }
    app.post(
        &format!("/api/v1/contacts/{id}/consents"),
        json!({"purpose": "Bad Purpose", "granted": true, "source": "x"}),
    )
    .await
    .assert_problem(422, "validation_failed");
    let history = app.get(&format!("/api/v1/contacts/{id}/consents")).await;
    let h = history.body.as_array().unwrap();
    assert_eq!(h.len(), 2);
    assert_eq!(h[0]["granted"], true);
    assert_eq!(h[1]["granted"], false);
    assert_eq!(h[1]["source"], "phone");
    let other = app.tenant_token("other", "admin").await;
    app.send(
        Method::GET,
        &format!("/api/v1/contacts/{id}/consents"),
        Some(&other),
        None,
        &[],
    )
    .await
    .assert_problem(404, "not_found");
}

/// A merge keeps the merged record as it was, to undo the merge: erasing
/// the survivor erases that copy and the merged record's history too.
#[tokio::test]
async fn erasure_reaches_what_a_merge_kept() {
    let app = TestApp::new().await;
    let id = subject(&app).await;
    // The same person entered twice: the copy holds personal data too.
    let twin = app
        .create(
            "/api/v1/contacts",
            json!({"first_name": "Zelda", "last_name": "Quixotic", "job_title": "Cartographer",
                   "phones": [{"number": "+44 20 7946 0991"}]}),
        )
        .await;
    let res = app
        .post(
            "/api/v1/contacts/merge",
            json!({"survivor_id": id, "merged_ids": [twin["id"]]}),
        )
        .await;
    res.assert_status(201);
    let merge_id = res.body["merge"]["id"].as_str().unwrap().to_owned();
    // A scan's reasons name the details too (here the phone number).
    app.create(
        "/api/v1/contacts",
        json!({"first_name": "Z.", "last_name": "Q.", "phones": [{"number": "02079460991"}]}),
    )
    .await;
    app.post("/api/v1/duplicates/scan", json!({"object_type": "contact"}))
        .await
        .assert_status(202);
    app.run_jobs().await;
    assert_eq!(
        app.get("/api/v1/duplicates?object_type=contact")
            .await
            .body
            .as_array()
            .unwrap()
            .len(),
        1
    );
    app.post(
        &format!("/api/v1/contacts/{id}/erase"),
        json!({"reason": "request DSR-2001"}),
    )
    .await
    .assert_status(200);
    let left = scan(&app).await;
    assert!(
        left.is_empty(),
        "personal data left after erasure: {left:?}"
    );
    assert_eq!(
        app.sql_count("SELECT COUNT(*) AS n FROM duplicate_pairs")
            .await,
        0
    );
    // Nothing is left to undo with.
    app.post(&format!("/api/v1/merges/{merge_id}/undo"), json!({}))
        .await
        .assert_problem(409, "undo_period_over");
    let report = trellis::audit::chain::verify(&app.state.db, None)
        .await
        .unwrap();
    assert!(report.findings.is_empty(), "{:?}", report.findings);
}

/// A contact a bulk delete put in the trash can still be erased: nothing
/// of it is left, in the trash or anywhere else.
#[tokio::test]
async fn a_trashed_contact_is_erased_too() {
    let app = TestApp::new().await;
    let id = subject(&app).await;
    let res = app
        .post(
            "/api/v1/contacts/bulk-actions",
            json!({"filter": ["tags:contains:vip-zq"], "action": "delete"}),
        )
        .await;
    res.assert_status(202);
    app.run_jobs().await;
    app.get(&format!("/api/v1/contacts/{id}"))
        .await
        .assert_status(404);
    assert!(!scan(&app).await.is_empty(), "the trash keeps the contact");
    app.post(
        &format!("/api/v1/contacts/{id}/erase"),
        json!({"reason": "request DSR-3003"}),
    )
    .await
    .assert_status(200);
    let left = scan(&app).await;
    assert!(
        left.is_empty(),
        "personal data left after erasure: {left:?}"
    );
    let report = trellis::audit::chain::verify(&app.state.db, None)
        .await
        .unwrap();
    assert!(report.findings.is_empty(), "{:?}", report.findings);
}
