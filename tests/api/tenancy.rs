use axum::http::Method;
use serde_json::json;

use crate::support::TestApp;

#[tokio::test]
async fn another_tenants_ids_are_always_not_found() {
    let app = TestApp::new().await;
    app.sales_pipeline().await;
    let contact = app
        .create(
            "/api/v1/contacts",
            json!({"first_name": "Secret", "last_name": "Person"}),
        )
        .await;
    let account = app
        .create("/api/v1/accounts", json!({"name": "Secret Corp"}))
        .await;
    let deal = app
        .create(
            "/api/v1/deals",
            json!({"name": "Secret deal", "amount": "1", "currency": "USD"}),
        )
        .await;
    let cid = contact["id"].as_str().unwrap();
    let other = app.tenant_token("other", "admin").await;
    let as_other = |method: Method, path: String, body: Option<serde_json::Value>| {
        let (app, other) = (&app, &other);
        async move { app.send(method, &path, Some(other), body, &[]).await }
    };

    for path in [
        format!("/api/v1/contacts/{cid}"),
        format!("/api/v1/contacts/{cid}/timeline"),
        format!("/api/v1/contacts/{cid}/accounts"),
        format!("/api/v1/accounts/{}", account["id"].as_str().unwrap()),
        format!(
            "/api/v1/accounts/{}/hierarchy",
            account["id"].as_str().unwrap()
        ),
        format!("/api/v1/deals/{}", deal["id"].as_str().unwrap()),
        format!(
            "/api/v1/deals/{}/stage-history",
            deal["id"].as_str().unwrap()
        ),
        format!(
            "/api/v1/pipelines/{}",
            deal["pipeline_id"].as_str().unwrap()
        ),
    ] {
        as_other(Method::GET, path.clone(), None)
            .await
            .assert_problem(404, "not_found");
    }
    as_other(
        Method::PATCH,
        format!("/api/v1/contacts/{cid}"),
        Some(json!({"version": 1, "first_name": "Hacked"})),
    )
    .await
    .assert_problem(404, "not_found");
    as_other(Method::DELETE, format!("/api/v1/contacts/{cid}"), None)
        .await
        .assert_problem(404, "not_found");
    as_other(
        Method::POST,
        format!("/api/v1/deals/{}/move", deal["id"].as_str().unwrap()),
        Some(json!({"stage_id": deal["stage_id"], "version": 1})),
    )
    .await
    .assert_status(422);
    let res = as_other(
        Method::POST,
        "/api/v1/contacts/bulk".to_owned(),
        Some(json!({"operation": "update", "items": [{"id": cid, "version": 1, "patch": {"first_name": "Hacked"}}]})),
    )
    .await;
    res.assert_problem(422, "bulk_failed");
    assert_eq!(res.body["items"][0]["code"], "not_found");

    // Lists and search of the other tenant see nothing.
    let list = as_other(Method::GET, "/api/v1/contacts?count=true".to_owned(), None).await;
    assert_eq!(list.body["total"], 0);
    let hits = as_other(Method::GET, "/api/v1/search?q=secret".to_owned(), None).await;
    assert_eq!(hits.body, json!([]));

    // References into another tenant are refused as unknown.
    let mine = as_other(
        Method::POST,
        "/api/v1/contacts".to_owned(),
        Some(json!({"first_name": "Mine"})),
    )
    .await;
    mine.assert_status(201);
    let res = as_other(
        Method::POST,
        format!(
            "/api/v1/contacts/{}/accounts",
            mine.body["id"].as_str().unwrap()
        ),
        Some(json!({"account_id": account["id"]})),
    )
    .await;
    assert_eq!(res.error_fields(), vec!["account_id"]);
    let res = as_other(
        Method::POST,
        "/api/v1/activities".to_owned(),
        Some(json!({"kind": "note", "subject": "x", "contact_id": cid})),
    )
    .await;
    assert_eq!(res.error_fields(), vec!["contact_id"]);

    // And the owner still sees the record untouched.
    let got = app.get(&format!("/api/v1/contacts/{cid}")).await;
    assert_eq!(got.body["first_name"], "Secret");
    assert_eq!(got.body["version"], 1);
}

#[tokio::test]
async fn identity_and_privacy_endpoints_answer_404_for_another_tenants_ids() {
    let app = TestApp::new().await;
    let contact = app
        .create("/api/v1/contacts", json!({"first_name": "Private"}))
        .await;
    let cid = contact["id"].as_str().unwrap().to_owned();
    let user = app
        .post(
            "/api/v1/users",
            json!({"email": "u@example.com", "name": "U", "roles": ["sales_rep"]}),
        )
        .await;
    let uid = user.body["id"].as_str().unwrap().to_owned();
    let key = app.post("/api/v1/api-keys", json!({"name": "k"})).await;
    let kid = key.body["id"].as_str().unwrap().to_owned();
    let team = app
        .post("/api/v1/teams", json!({"name": "T", "members": [uid]}))
        .await;
    let tid = team.body["id"].as_str().unwrap().to_owned();
    let other = app.tenant_token("other", "admin").await;
    let attempts: Vec<(Method, String, Option<serde_json::Value>)> = vec![
        (
            Method::GET,
            format!("/api/v1/contacts/{cid}/personal-data"),
            None,
        ),
        (
            Method::POST,
            format!("/api/v1/contacts/{cid}/erase"),
            Some(json!({"reason": "x"})),
        ),
        (
            Method::PUT,
            format!("/api/v1/contacts/{cid}/legal-hold"),
            Some(json!({"legal_hold": true})),
        ),
        (
            Method::POST,
            format!("/api/v1/contacts/{cid}/consents"),
            Some(json!({"purpose": "p", "granted": true, "source": "s"})),
        ),
        (
            Method::PATCH,
            format!("/api/v1/users/{uid}"),
            Some(json!({"roles": ["admin"]})),
        ),
        (
            Method::DELETE,
            format!("/api/v1/users/{uid}/sessions"),
            None,
        ),
        (Method::DELETE, format!("/api/v1/api-keys/{kid}"), None),
        (
            Method::PUT,
            format!("/api/v1/teams/{tid}"),
            Some(json!({"name": "Mine"})),
        ),
        (Method::DELETE, format!("/api/v1/teams/{tid}"), None),
    ];
    for (method, path, body) in attempts {
        let res = app
            .send(method.clone(), &path, Some(&other), body, &[])
            .await;
        assert_eq!(res.status.as_u16(), 404, "{method} {path}: {}", res.body);
    }
    // The other tenant's admin cannot list or see them either.
    let users = app
        .send(Method::GET, "/api/v1/users", Some(&other), None, &[])
        .await;
    assert!(!users.body.to_string().contains("u@example.com"));
    // Nothing changed.
    let mine = app.get("/api/v1/api-keys").await;
    assert!(
        mine.body
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["id"] == kid && k["revoked"] == false)
    );
    assert_eq!(
        app.get(&format!("/api/v1/contacts/{cid}")).await.body["first_name"],
        "Private"
    );
}

/// The second wall: on PostgreSQL a tenant transaction sees only its
/// tenant's rows even when a query forgets its `tenant_id` condition, and
/// cannot write rows of another tenant. (SQLite has no row security; there
/// the kernel's own tenant filter, tested above, is the only wall.)
#[tokio::test]
async fn postgres_row_security_confines_a_tenant_transaction() {
    use sea_orm::{ConnectionTrait, TransactionTrait};
    let app = TestApp::new().await;
    app.create("/api/v1/contacts", json!({"first_name": "Mine"}))
        .await;
    let db = &app.state.db;
    if db.get_database_backend() != sea_orm::DbBackend::Postgres {
        return;
    }
    let (default, _) = trellis::crm::tenants::ensure_default(db).await.unwrap();
    let (other, _) = trellis::crm::tenants::ensure(db, "other", "Other", "a@other.test")
        .await
        .unwrap();
    let tx = trellis::db::tenant_tx(db, &trellis::context::RequestContext::system(other.id))
        .await
        .unwrap();
    assert_eq!(
        count_contacts(&tx).await,
        0,
        "another tenant's rows are invisible"
    );
    let forged = tx
        .execute_unprepared(&format!(
            "INSERT INTO contacts (id, tenant_id, emails, phones, lifecycle_stage, tags, custom, created_at, updated_at) \
             VALUES ('{}', '{}', '[]', '[]', 'lead', '[]', '{{}}', now(), now())",
            uuid::Uuid::now_v7(),
            default.id
        ))
        .await;
    assert!(forged.is_err(), "a row of another tenant cannot be written");
    drop(tx);
    // Nor can it touch the platform's tables or other tenants' settings.
    for attack in [
        "UPDATE operators SET revoked_at = NULL".to_owned(),
        "DELETE FROM signing_keys".to_owned(),
        "DELETE FROM auth_throttle".to_owned(),
        format!(
            "UPDATE tenants SET status = 'suspended' WHERE id = '{}'",
            default.id
        ),
    ] {
        let tx = trellis::db::tenant_tx(db, &trellis::context::RequestContext::system(other.id))
            .await
            .unwrap();
        let res = tx.execute_unprepared(&attack).await;
        let touched = res.as_ref().map(|r| r.rows_affected()).unwrap_or(0);
        assert_eq!(touched, 0, "{attack} touched rows: {res:?}");
        drop(tx);
    }
    let tx = trellis::db::tenant_tx(db, &trellis::context::RequestContext::system(other.id))
        .await
        .unwrap();
    let visible = tx
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT COUNT(*) AS n FROM tenants",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get::<i64>("", "n")
        .unwrap();
    assert_eq!(
        visible, 1,
        "a tenant transaction sees its own tenant row only"
    );
    drop(tx);
    let tx = trellis::db::tenant_tx(db, &trellis::context::RequestContext::system(default.id))
        .await
        .unwrap();
    assert_eq!(count_contacts(&tx).await, 1);
    tx.rollback().await.unwrap();
    // Outside tenant transactions the owner role sees everything.
    let all = db.begin().await.unwrap();
    assert_eq!(count_contacts(&all).await, 1);
}

async fn count_contacts(tx: &sea_orm::DatabaseTransaction) -> i64 {
    use sea_orm::{ConnectionTrait, Statement};
    let row = tx
        .query_one_raw(Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT COUNT(*) AS n FROM contacts",
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get::<i64>("", "n").unwrap()
}
