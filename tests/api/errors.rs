use axum::body::Body;
use axum::http::{Method, Request};
use serde_json::json;

use crate::support::TestApp;

#[tokio::test]
async fn transport_errors_are_problem_documents() {
    let app = TestApp::new().await;
    app.get("/api/v1/nothing-here")
        .await
        .assert_problem(404, "route_not_found");

    let res = app
        .send(
            Method::PUT,
            "/api/v1/contacts",
            Some(&app.token),
            Some(json!({})),
            &[],
        )
        .await;
    res.assert_problem(405, "method_not_allowed");
    let allow = res
        .headers
        .get("allow")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");

    let malformed = Request::builder()
        .method(Method::POST)
        .uri("/api/v1/contacts")
        .header("authorization", format!("Bearer {}", app.token))
        .header("content-type", "application/json")
        .body(Body::from("{\"first_name\": \"Ada\""))
        .unwrap();
    app.raw(malformed)
        .await
        .assert_problem(400, "malformed_json");

    let wrong_type = Request::builder()
        .method(Method::POST)
        .uri("/api/v1/contacts")
        .header("authorization", format!("Bearer {}", app.token))
        .header("content-type", "text/plain")
        .body(Body::from("first_name=Ada"))
        .unwrap();
    app.raw(wrong_type)
        .await
        .assert_problem(415, "unsupported_media_type");

    let huge = format!("{{\"first_name\": \"{}\"}}", "a".repeat(10 * 1024 * 1024));
    let big = Request::builder()
        .method(Method::POST)
        .uri("/api/v1/contacts")
        .header("authorization", format!("Bearer {}", app.token))
        .header("content-type", "application/json")
        .body(Body::from(huge))
        .unwrap();
    app.raw(big).await.assert_problem(413, "payload_too_large");

    let res = app.get("/api/v1/contacts/not-a-uuid").await;
    assert_eq!(res.status.as_u16(), 400);
    assert_eq!(
        res.headers.get("content-type").unwrap(),
        "application/problem+json"
    );

    let res = app
        .patch(
            "/api/v1/contacts/0190a0a0-0000-7000-8000-000000000000",
            json!([1, 2]),
        )
        .await;
    assert!(res.status.is_client_error(), "{}", res.body);

    // Every response carries a request id.
    assert!(res.headers.get("x-request-id").is_some());
    assert_eq!(app.count_contacts().await, 0);
}

#[tokio::test]
async fn authentication_and_roles_are_enforced() {
    let app = TestApp::new().await;
    app.send(Method::GET, "/api/v1/contacts", None, None, &[])
        .await
        .assert_problem(401, "unauthenticated");
    app.send(
        Method::GET,
        "/api/v1/contacts",
        Some("trl_forged"),
        None,
        &[],
    )
    .await
    .assert_problem(401, "unauthenticated");

    let reader = app.role_token("read_only").await;
    app.send(Method::GET, "/api/v1/contacts", Some(&reader), None, &[])
        .await
        .assert_status(200);
    app.send(
        Method::POST,
        "/api/v1/contacts",
        Some(&reader),
        Some(json!({"first_name": "X"})),
        &[],
    )
    .await
    .assert_problem(403, "forbidden");
    let rep = app.role_token("sales_rep").await;
    let c = app
        .create("/api/v1/contacts", json!({"first_name": "Y"}))
        .await;
    app.send(
        Method::DELETE,
        &format!("/api/v1/contacts/{}", c["id"].as_str().unwrap()),
        Some(&rep),
        None,
        &[],
    )
    .await
    .assert_problem(403, "forbidden");
    app.send(
        Method::POST,
        "/api/v1/custom-fields",
        Some(&rep),
        Some(json!({"object_type": "contact", "key": "k", "label": "K", "field_type": "text"})),
        &[],
    )
    .await
    .assert_problem(403, "forbidden");
}

#[tokio::test]
async fn bulk_writes_are_all_or_nothing_with_per_item_errors() {
    let app = TestApp::new().await;
    let res = app
        .post(
            "/api/v1/contacts/bulk",
            json!({"operation": "create", "items": [
                {"first_name": "Ok"},
                {"first_name": "Bad", "emails": [{"address": "nope"}]},
                {"first_name": "Ok too"},
                {"colour": "red"}
            ]}),
        )
        .await;
    res.assert_problem(422, "bulk_failed");
    let items = res.body["items"].as_array().unwrap();
    let indexes: Vec<_> = items.iter().map(|i| i["index"].as_u64().unwrap()).collect();
    assert_eq!(indexes, vec![1, 3]);
    assert_eq!(items[0]["errors"][0]["field"], "emails[0].address");
    assert_eq!(items[1]["errors"][0]["field"], "colour");
    assert_eq!(app.count_contacts().await, 0, "nothing was written");

    let too_many: Vec<_> = (0..1001)
        .map(|i| json!({"first_name": format!("n{i}")}))
        .collect();
    let res = app
        .post(
            "/api/v1/contacts/bulk",
            json!({"operation": "create", "items": too_many}),
        )
        .await;
    assert_eq!(res.error_fields(), vec!["items"]);
    app.post(
        "/api/v1/contacts/bulk",
        json!({"operation": "merge", "items": []}),
    )
    .await
    .assert_problem(422, "validation_failed");

    let ok = app
        .post(
            "/api/v1/contacts/bulk",
            json!({"operation": "create", "items": [{"first_name": "A"}, {"first_name": "B"}]}),
        )
        .await;
    ok.assert_status(200);
    let ids: Vec<_> = ok.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].clone())
        .collect();
    // A delete with one unknown id deletes nothing.
    let res = app
        .post(
            "/api/v1/contacts/bulk",
            json!({"operation": "delete", "items": [{"id": ids[0]}, {"id": "0190a0a0-0000-7000-8000-000000000000"}]}),
        )
        .await;
    res.assert_problem(422, "bulk_failed");
    assert_eq!(res.body["items"][0]["index"], 1);
    assert_eq!(app.count_contacts().await, 2);
    let res = app
        .post(
            "/api/v1/contacts/bulk",
            json!({"operation": "delete", "items": [{"id": ids[0]}, {"id": ids[1]}]}),
        )
        .await;
    res.assert_status(200);
    assert_eq!(res.body["count"], 2);
    assert_eq!(app.count_contacts().await, 0);
}

#[tokio::test]
async fn nul_characters_and_foreign_custom_types_never_cause_server_errors() {
    let app = TestApp::new().await;
    let res = app
        .post("/api/v1/contacts", json!({"first_name": "A\u{0}B"}))
        .await;
    res.assert_problem(422, "validation_failed");
    assert_eq!(res.error_fields(), vec!["first_name"]);
    app.get("/api/v1/contacts?filter=first_name:eq:a%00b")
        .await
        .assert_problem(422, "validation_failed");

    // Another tenant uses the key `score` as text; this tenant's numeric
    // filter must not trip over those rows.
    let other = app.tenant_token("other", "admin").await;
    let define = |kind: &'static str| json!({"object_type": "contact", "key": "score", "label": "Score", "field_type": kind});
    app.send(
        Method::POST,
        "/api/v1/custom-fields",
        Some(&other),
        Some(define("text")),
        &[],
    )
    .await
    .assert_status(201);
    app.send(
        Method::POST,
        "/api/v1/contacts",
        Some(&other),
        Some(json!({"first_name": "X", "custom": {"score": "high"}})),
        &[],
    )
    .await
    .assert_status(201);
    app.create("/api/v1/custom-fields", define("integer")).await;
    app.create(
        "/api/v1/contacts",
        json!({"first_name": "Y", "custom": {"score": 7}}),
    )
    .await;
    let res = app
        .get("/api/v1/contacts?filter=custom.score:gt:5&sort=-custom.score&count=true")
        .await;
    res.assert_status(200);
    assert_eq!(res.body["total"], 1);
}

#[tokio::test]
async fn a_revoked_token_is_refused() {
    use sea_orm::ConnectionTrait;
    let app = TestApp::with_config(|c| c.token_cache_seconds = 0).await;
    app.get("/api/v1/contacts").await.assert_status(200);
    app.state
        .db
        .execute_unprepared("UPDATE api_tokens SET revoked_at = created_at")
        .await
        .unwrap();
    app.get("/api/v1/contacts")
        .await
        .assert_problem(401, "unauthenticated");
}
