use axum::http::Method;
use serde_json::json;

use crate::support::TestApp;

#[tokio::test]
async fn contact_lifecycle_with_versions_etags_and_timeline() {
    let app = TestApp::new().await;
    let res = app
        .post(
            "/api/v1/contacts",
            json!({
                "first_name": " Ada ",
                "last_name": "Lovelace",
                "emails": [{"address": "ADA@Example.com", "label": "work"}, {"address": "ada@home.example"}],
                "phones": [{"number": "+44 20 7946 0958"}],
                "lifecycle_stage": "sales_qualified",
                "tags": ["vip", "vip", "math"]
            }),
        )
        .await;
    res.assert_status(201);
    let c = res.body.clone();
    assert_eq!(res.etag(), "\"1\"");
    assert_eq!(c["name"], "Ada Lovelace");
    assert_eq!(c["first_name"], "Ada");
    assert_eq!(
        c["email"], "ada@example.com",
        "the first address becomes primary, lower-cased"
    );
    assert_eq!(c["emails"][0]["primary"], true);
    assert_eq!(c["tags"], json!(["vip", "math"]));
    assert_eq!(c["version"], 1);
    let id = c["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/contacts/{id}");

    let got = app.get(&path).await;
    got.assert_status(200);
    assert_eq!(got.body, c);

    // A patch without a version is refused: no silent overwrite.
    app.patch(&path, json!({"job_title": "Analyst"}))
        .await
        .assert_problem(428, "precondition_required");

    // If-Match with the ETag works once...
    let res = app
        .send(
            Method::PATCH,
            &path,
            Some(&app.token),
            Some(json!({"job_title": "Analyst", "tags": null})),
            &[("if-match", "\"1\"")],
        )
        .await;
    res.assert_status(200);
    assert_eq!(res.body["job_title"], "Analyst");
    assert_eq!(res.body["tags"], json!([]), "null removes (RFC 7396)");
    assert_eq!(
        res.body["last_name"], "Lovelace",
        "fields not in the patch are kept"
    );
    assert_eq!(res.etag(), "\"2\"");

    // ...and a second writer holding version 1 is refused, both ways.
    let res = app
        .send(
            Method::PATCH,
            &path,
            Some(&app.token),
            Some(json!({"job_title": "CEO"})),
            &[("if-match", "\"1\"")],
        )
        .await;
    res.assert_problem(412, "precondition_failed");
    assert_eq!(res.body["current_version"], 2);
    app.patch(&path, json!({"job_title": "CEO", "version": 1}))
        .await
        .assert_problem(409, "version_conflict");
    assert_eq!(app.get(&path).await.body["job_title"], "Analyst");

    // An activity on the contact, then the timeline, newest first.
    let call = app
        .create(
            "/api/v1/activities",
            json!({"kind": "call", "subject": "Intro call", "contact_id": id, "done": true}),
        )
        .await;
    let tl = app.get(&format!("{path}/timeline")).await;
    tl.assert_status(200);
    let entries = tl.body.as_array().unwrap();
    let kinds: Vec<_> = entries
        .iter()
        .map(|e| {
            format!(
                "{}:{}",
                e["type"].as_str().unwrap(),
                e["action"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(kinds.len(), 3, "{kinds:?}");
    assert!(kinds.contains(&"activity:".to_owned()));
    assert_eq!(kinds.iter().filter(|k| k.starts_with("change:")).count(), 2);
    let update = entries.iter().find(|e| e["action"] == "update").unwrap();
    assert_eq!(
        update["changes"]["job_title"],
        json!({"before": null, "after": "Analyst"})
    );
    let pos_update = kinds.iter().position(|k| k == "change:update").unwrap();
    let pos_create = kinds.iter().position(|k| k == "change:create").unwrap();
    assert!(pos_update < pos_create, "newest first: {kinds:?}");

    app.delete(&path).await.assert_status(204);
    app.get(&path).await.assert_problem(404, "not_found");
    app.delete(&path).await.assert_problem(404, "not_found");

    // Its activity stays, unlinked: only audited deletes remove data.
    let kept = app
        .get(&format!(
            "/api/v1/activities/{}",
            call["id"].as_str().unwrap()
        ))
        .await;
    kept.assert_status(200);
    assert!(kept.body["contact_id"].is_null());
}

#[tokio::test]
async fn contact_input_errors_name_every_bad_field() {
    let app = TestApp::new().await;
    let res = app
        .post(
            "/api/v1/contacts",
            json!({
                "first_name": "Bob",
                "emails": [{"address": "not-an-email"}, {"address": "b@x.example", "primary": true}, {"address": "c@x.example", "primary": true}],
                "phones": [{"number": "call me"}],
                "owner_id": "00000000-0000-0000-0000-000000000001"
            }),
        )
        .await;
    res.assert_problem(422, "validation_failed");
    let fields = res.error_fields();
    for f in [
        "emails[0].address",
        "emails",
        "phones[0].number",
        "owner_id",
    ] {
        assert!(
            fields.contains(&f.to_owned()),
            "{f} missing from {fields:?}"
        );
    }

    let res = app
        .post(
            "/api/v1/contacts",
            json!({"first_name": "Bob", "nickname": "B"}),
        )
        .await;
    res.assert_problem(422, "validation_failed");
    assert_eq!(res.error_fields(), vec!["nickname"]);
    assert_eq!(res.body["errors"][0]["code"], "unknown_field");

    let res = app
        .post("/api/v1/contacts", json!({"first_name": 42}))
        .await;
    assert_eq!(res.error_fields(), vec!["first_name"]);
    assert_eq!(res.body["errors"][0]["code"], "invalid_type");

    let res = app
        .post(
            "/api/v1/contacts",
            json!({"lifecycle_stage": "prospect", "first_name": "X"}),
        )
        .await;
    assert_eq!(res.error_fields(), vec!["lifecycle_stage"]);

    let res = app
        .post("/api/v1/contacts", json!({"job_title": "Nameless"}))
        .await;
    assert_eq!(
        res.error_fields(),
        vec!["first_name"],
        "a contact needs a name or an email"
    );

    let list = app.get("/api/v1/contacts?count=true").await;
    assert_eq!(
        list.body["total"], 0,
        "no failed write left anything behind"
    );
}

#[tokio::test]
async fn contacts_link_to_accounts_and_relate_to_each_other() {
    let app = TestApp::new().await;
    let a = app
        .create("/api/v1/contacts", json!({"first_name": "Ann"}))
        .await;
    let b = app
        .create("/api/v1/contacts", json!({"first_name": "Ben"}))
        .await;
    let acme = app
        .create("/api/v1/accounts", json!({"name": "Acme"}))
        .await;
    let (aid, bid) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());

    let link = app
        .post(
            &format!("/api/v1/contacts/{aid}/accounts"),
            json!({"account_id": acme["id"], "role": "buyer"}),
        )
        .await;
    link.assert_status(201);
    assert_eq!(link.body["role"], "buyer");
    app.post(
        &format!("/api/v1/contacts/{aid}/accounts"),
        json!({"account_id": acme["id"]}),
    )
    .await
    .assert_problem(409, "already_linked");
    let links = app.get(&format!("/api/v1/contacts/{aid}/accounts")).await;
    assert_eq!(links.body.as_array().unwrap().len(), 1);

    let rel = app
        .post(
            &format!("/api/v1/contacts/{aid}/relationships"),
            json!({"to_contact_id": bid, "kind": "spouse"}),
        )
        .await;
    rel.assert_status(201);
    app.post(
        &format!("/api/v1/contacts/{aid}/relationships"),
        json!({"to_contact_id": aid, "kind": "spouse"}),
    )
    .await
    .assert_problem(422, "validation_failed");
    app.post(
        &format!("/api/v1/contacts/{aid}/relationships"),
        json!({"to_contact_id": bid, "kind": "Best Friend!"}),
    )
    .await
    .assert_problem(422, "validation_failed");
    // The relationship shows from both sides.
    let from_b = app
        .get(&format!("/api/v1/contacts/{bid}/relationships"))
        .await;
    assert_eq!(from_b.body[0]["kind"], "spouse");
    assert_eq!(from_b.body[0]["from_contact_id"], a["id"]);

    let rid = rel.body["id"].as_str().unwrap();
    app.delete(&format!("/api/v1/contacts/{bid}/relationships/{rid}"))
        .await
        .assert_status(204);
    assert!(
        app.get(&format!("/api/v1/contacts/{aid}/relationships"))
            .await
            .body
            .as_array()
            .unwrap()
            .is_empty()
    );
    app.delete(&format!(
        "/api/v1/contacts/{aid}/accounts/{}",
        acme["id"].as_str().unwrap()
    ))
    .await
    .assert_status(204);
    app.delete(&format!(
        "/api/v1/contacts/{aid}/accounts/{}",
        acme["id"].as_str().unwrap()
    ))
    .await
    .assert_problem(404, "not_found");
}
