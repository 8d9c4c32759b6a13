//! Sensitive custom fields: encrypted at rest, blind-indexed, reads audited,
//! keys rotated without losing data.

use axum::http::Method;
use sea_orm::{ConnectionTrait, Statement};
use serde_json::json;

use crate::support::TestApp;

const SSN: &str = "078-05-1120";

async fn define_ssn(app: &TestApp) {
    app.post(
        "/api/v1/custom-fields",
        json!({"object_type": "contact", "key": "ssn", "label": "SSN", "field_type": "text",
               "sensitive": true, "blind_index": true}),
    )
    .await
    .assert_status(201);
    app.post(
        "/api/v1/custom-fields",
        json!({"object_type": "contact", "key": "diagnosis", "label": "Diagnosis", "field_type": "long_text",
               "sensitive": true}),
    )
    .await
    .assert_status(201);
}

/// Every text cell of the tables that could hold a contact's data.
async fn raw_dump(app: &TestApp) -> String {
    let backend = app.state.db.get_database_backend();
    let mut out = String::new();
    for (table, col) in [
        ("contacts", "custom"),
        ("audit_log", "changes"),
        ("search_documents", "body"),
    ] {
        let sql = match backend {
            sea_orm::DbBackend::Postgres => format!("SELECT CAST({col} AS text) AS v FROM {table}"),
            _ => format!("SELECT CAST({col} AS text) AS v FROM {table}"),
        };
        for row in app
            .state
            .db
            .query_all_raw(Statement::from_string(backend, sql))
            .await
            .unwrap()
        {
            let v: Option<String> = row.try_get("", "v").unwrap();
            out.push_str(&v.unwrap_or_default());
            out.push('\n');
        }
    }
    out
}

#[tokio::test]
async fn sensitive_values_are_encrypted_at_rest_and_every_read_is_audited() {
    let app = TestApp::new().await;
    define_ssn(&app).await;
    let created = app
        .create(
            "/api/v1/contacts",
            json!({"first_name": "Pat", "custom": {"ssn": SSN, "diagnosis": "Hypertension stage 2"}}),
        )
        .await;
    assert_eq!(created["custom"]["ssn"], SSN);
    let id = created["id"].as_str().unwrap().to_owned();
    let dump = raw_dump(&app).await;
    assert!(!dump.contains(SSN), "plaintext at rest: {dump}");
    assert!(!dump.contains("Hypertension"), "plaintext at rest: {dump}");
    assert!(dump.contains("enc:v1:"));

    // A write echo is not a read; a GET and a list are, per record.
    assert_eq!(read_entries(&app, &id).await, 0);
    let got = app.get(&format!("/api/v1/contacts/{id}")).await;
    assert_eq!(got.body["custom"]["ssn"], SSN);
    assert_eq!(got.body["custom"]["diagnosis"], "Hypertension stage 2");
    assert_eq!(read_entries(&app, &id).await, 1);
    let entry = app
        .get(&format!("/api/v1/audit?record_id={id}&action=read"))
        .await;
    let fields = entry.body["data"][0]["changes"]["fields"]
        .as_array()
        .unwrap()
        .clone();
    assert!(fields.contains(&json!("custom.ssn")) && fields.contains(&json!("custom.diagnosis")));
    app.get("/api/v1/contacts").await.assert_status(200);
    assert_eq!(read_entries(&app, &id).await, 2);

    // Changing another field keeps the ciphertext: no plaintext and no
    // spurious change in the trail.
    let before = raw_dump(&app).await;
    app.patch(
        &format!("/api/v1/contacts/{id}"),
        json!({"version": 1, "job_title": "Nurse"}),
    )
    .await
    .assert_status(200);
    let update = app
        .get(&format!("/api/v1/audit?record_id={id}&action=update"))
        .await;
    let changes = update.body["data"][0]["changes"]
        .as_object()
        .unwrap()
        .clone();
    let changed: Vec<&String> = changes
        .keys()
        .filter(|k| !["version", "updated_at"].contains(&k.as_str()))
        .collect();
    assert_eq!(changed, vec!["job_title"], "{changes:?}");
    let after = raw_dump(&app).await;
    let cipher = |d: &str| d.split("enc:v1:").nth(1).map(|s| s[..40].to_owned());
    assert_eq!(cipher(&before), cipher(&after));
    // Changing the value itself.
    let res = app
        .patch(
            &format!("/api/v1/contacts/{id}"),
            json!({"version": 2, "custom": {"ssn": "219-09-9999"}}),
        )
        .await;
    assert_eq!(res.body["custom"]["ssn"], "219-09-9999");
    assert!(!raw_dump(&app).await.contains("219-09-9999"));
}

#[tokio::test]
async fn blind_indexes_serve_exact_matches_and_nothing_else() {
    let app = TestApp::new().await;
    define_ssn(&app).await;
    for (name, ssn) in [("A", SSN), ("B", "219-09-9999")] {
        app.create(
            "/api/v1/contacts",
            json!({"first_name": name, "custom": {"ssn": ssn}}),
        )
        .await;
    }
    let found = app
        .get(&format!("/api/v1/contacts?filter=custom.ssn:eq:{SSN}"))
        .await;
    found.assert_status(200);
    let data = found.body["data"].as_array().unwrap();
    assert_eq!(data.len(), 1);
    assert_eq!(data[0]["first_name"], "A");
    // Normalised: surrounding spaces do not matter.
    let spaced = app
        .get("/api/v1/contacts?filter=custom.ssn:eq:%20078-05-1120%20")
        .await;
    assert_eq!(spaced.body["data"].as_array().unwrap().len(), 1);
    app.get("/api/v1/contacts?filter=custom.ssn:starts_with:078")
        .await
        .assert_problem(422, "validation_failed");
    app.get("/api/v1/contacts?filter=custom.diagnosis:eq:x")
        .await
        .assert_problem(422, "validation_failed");
    app.get("/api/v1/contacts?sort=custom.ssn")
        .await
        .assert_problem(422, "validation_failed");
    // Encrypted fields cannot be unique, and stay encrypted once created.
    app.post(
        "/api/v1/custom-fields",
        json!({"object_type": "contact", "key": "tax", "label": "Tax", "field_type": "text", "sensitive": true, "unique": true}),
    )
    .await
    .assert_problem(422, "validation_failed");
}

#[tokio::test]
async fn hidden_sensitive_fields_are_neither_revealed_nor_audited_as_read() {
    let app = TestApp::new().await;
    define_ssn(&app).await;
    app.put(
        "/api/v1/roles",
        json!({"key": "front_desk", "name": "Front desk",
               "permissions": {"contact": {"actions": ["read"]}},
               "field_rules": {"contact": {"custom.ssn": "hidden"}}}),
    )
    .await
    .assert_status(200);
    let c = app
        .create(
            "/api/v1/contacts",
            json!({"first_name": "Pat", "custom": {"ssn": SSN}}),
        )
        .await;
    let id = c["id"].as_str().unwrap();
    let u = app
        .user(
            "default",
            "desk@example.com",
            "correct horse battery staple",
            &["front_desk"],
        )
        .await;
    let key = app.key_for("default", u, &["front_desk"]).await;
    let res = app
        .send(
            Method::GET,
            &format!("/api/v1/contacts/{id}"),
            Some(&key),
            None,
            &[],
        )
        .await;
    res.assert_status(200);
    assert!(res.body["custom"].get("ssn").is_none(), "{}", res.body);
    assert!(!res.body.to_string().contains("enc:v"));
    app.send(
        Method::GET,
        &format!("/api/v1/contacts?filter=custom.ssn:eq:{SSN}"),
        Some(&key),
        None,
        &[],
    )
    .await
    .assert_problem(403, "forbidden");
    let reads = app
        .get(&format!("/api/v1/audit?record_id={id}&action=read"))
        .await;
    assert!(reads.body["data"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn rotating_tenant_and_master_keys_keeps_every_value_readable() {
    let app = TestApp::new().await;
    define_ssn(&app).await;
    let old = app
        .create(
            "/api/v1/contacts",
            json!({"first_name": "Old", "custom": {"ssn": SSN}}),
        )
        .await;
    let (tenant, _) = trellis::crm::tenants::ensure_default(&app.state.db)
        .await
        .unwrap();
    let v = app
        .state
        .keyring
        .rotate_tenant(&app.state.db, tenant.id)
        .await
        .unwrap();
    assert_eq!(v, 2);
    let new = app
        .create(
            "/api/v1/contacts",
            json!({"first_name": "New", "custom": {"ssn": "219-09-9999"}}),
        )
        .await;
    assert!(raw_dump(&app).await.contains("enc:v2:"));
    for (c, ssn) in [(&old, SSN), (&new, "219-09-9999")] {
        let got = app
            .get(&format!("/api/v1/contacts/{}", c["id"].as_str().unwrap()))
            .await;
        assert_eq!(got.body["custom"]["ssn"], ssn);
    }

    // A new master key: the old one moves to `previous_master_keys`, the
    // data keys are re-wrapped, and afterwards the old key is not needed.
    let old_master = app.state.config.master_key.clone().unwrap();
    let new_master = trellis::crypto::MasterKey::generate().to_base64();
    let mut config = (*app.state.config).clone();
    config.master_key = Some(new_master.clone());
    config.previous_master_keys = vec![old_master];
    let rotated = trellis::keys::Keyring::from_config(&config).unwrap();
    // Both data key versions were wrapped by the old master key.
    assert_eq!(rotated.rewrap_all(&app.state.db).await.unwrap(), 2);
    config.previous_master_keys = Vec::new();
    let only_new = trellis::keys::Keyring::from_config(&config).unwrap();
    let keys = only_new.tenant(&app.state.db, tenant.id).await.unwrap();
    assert_eq!(keys.current, 2);
    let stored = {
        use sea_orm::EntityTrait;
        trellis::entities::tenant_key::Entity::find()
            .all(&app.state.db)
            .await
            .unwrap()
    };
    assert!(
        stored
            .iter()
            .all(|k| k.master_key_id == only_new.master.id())
    );
}

async fn read_entries(app: &TestApp, id: &str) -> usize {
    app.get(&format!("/api/v1/audit?record_id={id}&action=read"))
        .await
        .body["data"]
        .as_array()
        .unwrap()
        .len()
}

#[tokio::test]
async fn a_key_rotated_by_another_process_is_picked_up_and_indexes_still_match() {
    let app = TestApp::new().await;
    define_ssn(&app).await;
    let old = app
        .create(
            "/api/v1/contacts",
            json!({"first_name": "Old", "custom": {"ssn": SSN}}),
        )
        .await;
    let other = app.another_process().await;
    let (tenant, _) = trellis::crm::tenants::ensure_default(&app.state.db)
        .await
        .unwrap();
    let v = other
        .state
        .keyring
        .rotate_tenant(&other.state.db, tenant.id)
        .await
        .unwrap();
    assert_eq!(v, 2);
    // The other process seals with version 2 at once...
    let new = other
        .create(
            "/api/v1/contacts",
            json!({"first_name": "New", "custom": {"ssn": "219-09-9999"}}),
        )
        .await;
    assert!(raw_dump(&app).await.contains("enc:v2:"));
    // ...and this one, holding only version 1 so far, still reads and
    // updates that value.
    let path = format!("/api/v1/contacts/{}", new["id"].as_str().unwrap());
    let got = app.get(&path).await;
    got.assert_status(200);
    assert_eq!(got.body["custom"]["ssn"], "219-09-9999");
    app.patch(&path, json!({"version": 1, "job_title": "Clerk"}))
        .await
        .assert_status(200);
    // Blind indexes written before the rotation still match after it, in
    // both processes.
    for p in [&app, &other] {
        let found = p
            .get(&format!("/api/v1/contacts?filter=custom.ssn:eq:{SSN}"))
            .await;
        found.assert_status(200);
        assert_eq!(
            found.body["data"].as_array().unwrap().len(),
            1,
            "{}",
            found.body
        );
        assert_eq!(found.body["data"][0]["id"], old["id"]);
        let found = p
            .get("/api/v1/contacts?filter=custom.ssn:eq:219-09-9999")
            .await;
        assert_eq!(found.body["data"][0]["id"], new["id"]);
    }
}
