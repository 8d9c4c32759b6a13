use serde_json::json;

use crate::support::TestApp;

#[tokio::test]
async fn activities_link_records_and_check_their_times() {
    let app = TestApp::new().await;
    let contact = app
        .create("/api/v1/contacts", json!({"first_name": "Ada"}))
        .await;
    let res = app
        .post(
            "/api/v1/activities",
            json!({"kind": "meeting", "subject": " ", "starts_at": "2026-05-01T10:00:00Z", "ends_at": "2026-05-01T09:00:00Z",
                   "deal_id": "0190a0a0-0000-7000-8000-000000000000"}),
        )
        .await;
    res.assert_problem(422, "validation_failed");
    let mut fields = res.error_fields();
    fields.sort();
    assert_eq!(fields, vec!["deal_id", "ends_at", "subject"]);
    let res = app
        .post(
            "/api/v1/activities",
            json!({"kind": "lunch", "subject": "x"}),
        )
        .await;
    assert_eq!(res.error_fields(), vec!["kind"]);
    let res = app
        .post(
            "/api/v1/activities",
            json!({"kind": "task", "subject": "x", "due_at": "tomorrow"}),
        )
        .await;
    assert_eq!(res.error_fields(), vec!["due_at"]);

    // Sub-second input is kept at whole seconds; done_at is set once.
    let task = app
        .create(
            "/api/v1/activities",
            json!({"kind": "task", "subject": "Send proposal", "due_at": "2026-05-01T10:00:00.750+02:00", "contact_id": contact["id"]}),
        )
        .await;
    assert_eq!(task["due_at"], "2026-05-01T08:00:00Z");
    assert!(task["done_at"].is_null());
    let path = format!("/api/v1/activities/{}", task["id"].as_str().unwrap());
    let done = app
        .patch(
            &path,
            json!({"version": 1, "done": true, "outcome": "sent"}),
        )
        .await;
    done.assert_status(200);
    let done_at = done.body["done_at"].clone();
    assert!(done_at.is_string());
    let again = app
        .patch(&path, json!({"version": 2, "subject": "Send proposal v2"}))
        .await;
    assert_eq!(
        again.body["done_at"], done_at,
        "editing a done task keeps when it was done"
    );

    let open = app
        .get("/api/v1/activities?filter=done:eq:false&count=true")
        .await;
    assert_eq!(open.body["total"], 0);
    let due = app
        .get("/api/v1/activities?filter=due_at:lt:2026-05-02&filter=kind:eq:task")
        .await;
    assert_eq!(due.body["data"][0]["id"], task["id"]);
}

#[tokio::test]
async fn concurrent_writers_all_succeed() {
    let app = TestApp::new().await;
    let mut tasks = Vec::new();
    for i in 0..16 {
        let app = &app;
        tasks.push(async move {
            app.post(
                "/api/v1/contacts",
                json!({"first_name": format!("Writer {i}")}),
            )
            .await
        });
    }
    for res in futures_util::future::join_all(tasks).await {
        res.assert_status(201);
    }
    assert_eq!(app.count_contacts().await, 16);
}
