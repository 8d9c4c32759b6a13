//! Bulk actions on a filter's whole result set, as background jobs: field
//! updates, owners, tags, per-record failures reported while the rest are
//! written, cancelling, and deleting into the trash and restoring from it
//! with links and references.

use axum::http::Method;
use serde_json::{Value, json};

use crate::support::TestApp;

async fn make_contacts(app: &TestApp, n: usize, stage: &str, tag: &str) -> Vec<Value> {
    let items: Vec<Value> = (0..n)
        .map(|i| json!({"first_name": format!("P{i}"), "last_name": stage, "lifecycle_stage": stage, "tags": [tag]}))
        .collect();
    let res = app
        .post(
            "/api/v1/contacts/bulk",
            json!({"operation": "create", "items": items}),
        )
        .await;
    res.assert_status(200);
    res.body["data"].as_array().unwrap().clone()
}

async fn count(app: &TestApp, query: &str) -> u64 {
    let res = app
        .get(&format!("/api/v1/contacts?count=true&limit=1&{query}"))
        .await;
    res.assert_status(200);
    res.body["total"].as_u64().unwrap()
}

/// Starts an action and runs the jobs; returns the finished action.
async fn run(app: &TestApp, path: &str, body: Value) -> Value {
    let res = app.post(path, body).await;
    res.assert_status(202);
    assert_eq!(res.body["status"], "queued");
    let id = res.body["id"].as_str().unwrap().to_owned();
    app.run_jobs().await;
    app.get(&format!("/api/v1/bulk-actions/{id}")).await.body
}

#[tokio::test]
async fn updates_owners_and_tags_reach_every_matching_record() {
    let app = TestApp::new().await;
    // More than one batch of leads, and customers the filter leaves out.
    make_contacts(&app, 230, "lead", "imported").await;
    make_contacts(&app, 7, "customer", "imported").await;

    let done = run(
        &app,
        "/api/v1/contacts/bulk-actions",
        json!({"filter": ["lifecycle_stage:eq:lead"], "action": "add_tags", "tags": ["q4", "IMPORTED"]}),
    )
    .await;
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["total"], 230);
    assert_eq!(done["processed"], 230);
    assert_eq!(done["succeeded"], 230);
    assert_eq!(done["percent"], 100.0);
    assert_eq!(count(&app, "filter=tags:contains:q4").await, 230);
    // A tag already there (in another case) is not repeated.
    let one = app
        .get("/api/v1/contacts?filter=lifecycle_stage:eq:lead&limit=1")
        .await;
    assert_eq!(one.body["data"][0]["tags"], json!(["imported", "q4"]));

    let done = run(
        &app,
        "/api/v1/contacts/bulk-actions",
        json!({"filter": ["tags:contains:q4"], "action": "update", "patch": {"lead_source": "trade fair", "lifecycle_stage": "marketing_qualified"}}),
    )
    .await;
    assert_eq!(done["succeeded"], 230, "{done}");
    assert_eq!(
        count(&app, "filter=lifecycle_stage:eq:marketing_qualified").await,
        230
    );
    assert_eq!(count(&app, "filter=lifecycle_stage:eq:customer").await, 7);

    let rep = app
        .user(
            "default",
            "rep@example.com",
            "a-long-password-1",
            &["sales_rep"],
        )
        .await;
    let done = run(
        &app,
        "/api/v1/contacts/bulk-actions",
        json!({"filter": ["lifecycle_stage:eq:customer"], "action": "assign_owner", "owner_id": rep}),
    )
    .await;
    assert_eq!(done["succeeded"], 7, "{done}");
    assert_eq!(count(&app, &format!("filter=owner_id:eq:{rep}")).await, 7);

    let done = run(
        &app,
        "/api/v1/contacts/bulk-actions",
        json!({"action": "remove_tags", "tags": ["Q4"]}),
    )
    .await;
    assert_eq!(done["total"], 237);
    assert_eq!(count(&app, "filter=tags:contains:q4").await, 0);
    // Every change is audited on its record.
    let id = one.body["data"][0]["id"].as_str().unwrap();
    let trail = app
        .get(&format!("/api/v1/audit?record_id={id}&action=update"))
        .await;
    assert_eq!(trail.body["data"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn records_that_fail_are_reported_and_the_rest_are_written() {
    let app = TestApp::new().await;
    app.create(
        "/api/v1/custom-fields",
        json!({"object_type": "contact", "key": "badge", "label": "Badge", "field_type": "text", "unique": true}),
    )
    .await;
    make_contacts(&app, 3, "lead", "x").await;
    // One record can hold the unique value; the other two cannot.
    let done = run(
        &app,
        "/api/v1/contacts/bulk-actions",
        json!({"action": "update", "patch": {"custom": {"badge": "B-1"}}}),
    )
    .await;
    assert_eq!(done["status"], "done");
    assert_eq!(done["succeeded"], 1, "{done}");
    assert_eq!(done["failed"], 2);
    let errors = done["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2);
    assert_eq!(errors[0]["code"], "validation_failed");
    assert_eq!(errors[0]["fields"], json!(["custom.badge"]));
    assert!(
        errors[0]["message"].as_str().unwrap().contains("Badge"),
        "{errors:?}"
    );
    assert_eq!(count(&app, "filter=custom.badge:eq:B-1").await, 1);
}

#[tokio::test]
async fn bad_requests_are_refused_before_anything_runs() {
    let app = TestApp::new().await;
    make_contacts(&app, 2, "lead", "x").await;
    let cases = [
        (json!({"action": "update"}), "patch"),
        (
            json!({"action": "update", "patch": {"version": 3}}),
            "patch.version",
        ),
        (json!({"action": "assign_owner"}), "owner_id"),
        (
            json!({"action": "assign_owner", "owner_id": "01900000-0000-7000-8000-000000000000"}),
            "owner_id",
        ),
        (json!({"action": "add_tags", "tags": [" "]}), "tags"),
        (json!({"action": "restore"}), "action"),
    ];
    for (body, field) in cases {
        let res = app
            .post("/api/v1/contacts/bulk-actions", body.clone())
            .await;
        res.assert_problem(422, "validation_failed");
        assert_eq!(res.error_fields(), [field], "{body}");
    }
    app.post(
        "/api/v1/contacts/bulk-actions",
        json!({"action": "delete", "filter": ["shoe_size:eq:9"]}),
    )
    .await
    .assert_status(422);
    let res = app
        .post(
            "/api/v1/deals/bulk-actions",
            json!({"action": "add_tags", "tags": ["x"]}),
        )
        .await;
    assert_eq!(res.error_fields(), ["action"]);
    let reader = app.role_token("read_only").await;
    app.send(
        Method::POST,
        "/api/v1/contacts/bulk-actions",
        Some(&reader),
        Some(json!({"action": "delete"})),
        &[],
    )
    .await
    .assert_status(403);
    // A cancelled action does nothing; a finished one cannot be cancelled.
    let res = app
        .post("/api/v1/contacts/bulk-actions", json!({"action": "delete"}))
        .await;
    let id = res.body["id"].as_str().unwrap().to_owned();
    let cancelled = app
        .post(&format!("/api/v1/bulk-actions/{id}/cancel"), json!({}))
        .await;
    cancelled.assert_status(200);
    assert_eq!(cancelled.body["status"], "cancelled");
    app.run_jobs().await;
    let after = app.get(&format!("/api/v1/bulk-actions/{id}")).await.body;
    assert_eq!(after["status"], "cancelled");
    assert_eq!(after["processed"], 0);
    assert_eq!(count(&app, "").await, 2);
    app.post(&format!("/api/v1/bulk-actions/{id}/cancel"), json!({}))
        .await
        .assert_problem(409, "finished");
    // Only a delete can be restored.
    let tagged = run(
        &app,
        "/api/v1/contacts/bulk-actions",
        json!({"action": "add_tags", "tags": ["y"]}),
    )
    .await;
    app.post(
        &format!(
            "/api/v1/bulk-actions/{}/restore",
            tagged["id"].as_str().unwrap()
        ),
        json!({}),
    )
    .await
    .assert_problem(409, "not_a_delete");
}

#[tokio::test]
async fn a_bulk_delete_goes_to_the_trash_and_comes_back_whole() {
    let app = TestApp::new().await;
    app.sales_pipeline().await;
    let old = make_contacts(&app, 3, "lead", "stale").await;
    make_contacts(&app, 2, "lead", "fresh").await;
    let a = old[0]["id"].as_str().unwrap().to_owned();
    let acme = app
        .create("/api/v1/accounts", json!({"name": "Acme"}))
        .await;
    app.post(
        &format!("/api/v1/contacts/{a}/accounts"),
        json!({"account_id": acme["id"], "role": "buyer"}),
    )
    .await
    .assert_status(201);
    let fresh = app
        .get("/api/v1/contacts?filter=tags:contains:fresh&limit=1")
        .await
        .body["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.post(
        &format!("/api/v1/contacts/{a}/relationships"),
        json!({"to_contact_id": fresh, "kind": "colleague"}),
    )
    .await
    .assert_status(201);
    let deal = app
        .create(
            "/api/v1/deals",
            json!({"name": "Anvils", "amount": "5", "currency": "USD", "contact_id": a}),
        )
        .await;
    // Two records deleted together, related to each other.
    let (o1, o2) = (
        old[1]["id"].as_str().unwrap().to_owned(),
        old[2]["id"].as_str().unwrap().to_owned(),
    );
    app.post(
        &format!("/api/v1/contacts/{o1}/relationships"),
        json!({"to_contact_id": o2, "kind": "sibling"}),
    )
    .await
    .assert_status(201);
    // One under legal hold stays out of the trash.
    let held = app
        .create(
            "/api/v1/contacts",
            json!({"first_name": "Held", "tags": ["stale"]}),
        )
        .await;
    app.put(
        &format!(
            "/api/v1/contacts/{}/legal-hold",
            held["id"].as_str().unwrap()
        ),
        json!({"legal_hold": true}),
    )
    .await
    .assert_status(204);

    let done = run(
        &app,
        "/api/v1/contacts/bulk-actions",
        json!({"filter": ["tags:contains:stale"], "action": "delete"}),
    )
    .await;
    assert_eq!(done["succeeded"], 3, "{done}");
    assert_eq!(done["failed"], 1);
    assert_eq!(done["errors"][0]["code"], "legal_hold");
    assert_eq!(count(&app, "").await, 3);
    app.get(&format!("/api/v1/contacts/{a}"))
        .await
        .assert_status(404);
    let d = deal["id"].as_str().unwrap();
    assert!(app.get(&format!("/api/v1/deals/{d}")).await.body["contact_id"].is_null());
    let trash = app.get("/api/v1/trash?object_type=contact").await;
    assert_eq!(trash.body.as_array().unwrap().len(), 3);
    assert_eq!(trash.body[0]["bulk_action_id"], done["id"]);

    // Restore one by id, then the rest with the delete's restore.
    let res = app
        .post(
            "/api/v1/trash/restore",
            json!({"object_type": "contact", "record_ids": [a]}),
        )
        .await;
    res.assert_status(200);
    assert_eq!(res.body["restored"], 1);
    let back = app.get(&format!("/api/v1/contacts/{a}")).await;
    back.assert_status(200);
    assert_eq!(back.body, old[0]);
    let links = app.get(&format!("/api/v1/contacts/{a}/accounts")).await;
    assert_eq!(links.body[0]["account_id"], acme["id"]);
    assert_eq!(links.body[0]["role"], "buyer");
    let rels = app
        .get(&format!("/api/v1/contacts/{a}/relationships"))
        .await;
    assert_eq!(rels.body.as_array().unwrap().len(), 1);
    assert_eq!(
        app.get(&format!("/api/v1/deals/{d}")).await.body["contact_id"],
        a
    );
    app.post(
        "/api/v1/trash/restore",
        json!({"object_type": "contact", "record_ids": [a]}),
    )
    .await
    .assert_problem(422, "validation_failed");

    let restored = run(
        &app,
        &format!(
            "/api/v1/bulk-actions/{}/restore",
            done["id"].as_str().unwrap()
        ),
        json!({}),
    )
    .await;
    assert_eq!(restored["status"], "done", "{restored}");
    assert_eq!(restored["succeeded"], 2);
    assert_eq!(count(&app, "").await, 6);
    let sibling = app
        .get(&format!("/api/v1/contacts/{o1}/relationships"))
        .await;
    assert_eq!(
        sibling.body.as_array().unwrap().len(),
        1,
        "{}",
        sibling.body
    );
    assert_eq!(sibling.body[0]["to_contact_id"], o2.as_str());
    for c in &old {
        let now = app
            .get(&format!("/api/v1/contacts/{}", c["id"].as_str().unwrap()))
            .await;
        assert_eq!(now.body, *c);
    }
    assert_eq!(
        app.get("/api/v1/trash?object_type=contact")
            .await
            .body
            .as_array()
            .unwrap()
            .len(),
        0
    );
    let trail = app
        .get(&format!("/api/v1/audit?record_id={a}&action=restore"))
        .await;
    assert_eq!(trail.body["data"].as_array().unwrap().len(), 1);
}

/// The trash keeps records for its retention period, and a merge keeps its
/// copies only while it can be undone: pruning removes what is past.
#[tokio::test]
async fn pruning_empties_old_trash_and_forgets_what_finished_merges_kept() {
    let app = TestApp::new().await;
    let made = make_contacts(&app, 3, "lead", "old").await;
    run(
        &app,
        "/api/v1/contacts/bulk-actions",
        json!({"filter": ["first_name:eq:P0"], "action": "delete"}),
    )
    .await;
    let res = app
        .post(
            "/api/v1/contacts/merge",
            json!({"survivor_id": made[1]["id"], "merged_ids": [made[2]["id"]]}),
        )
        .await;
    res.assert_status(201);
    let merge_id = res.body["merge"]["id"].as_str().unwrap().to_owned();
    // Nothing is old yet.
    trellis::jobs::prune(&app.state.db).await.unwrap();
    assert_eq!(app.sql_count("SELECT COUNT(*) AS n FROM trash").await, 1);
    assert_eq!(
        app.sql_count("SELECT COUNT(*) AS n FROM merges WHERE CAST(snapshot AS TEXT) = '{}'")
            .await,
        0
    );
    app.sql("UPDATE trash SET deleted_at = '2000-01-01T00:00:00Z'")
        .await;
    app.sql("UPDATE merges SET undo_until = '2000-01-01T00:00:00Z'")
        .await;
    let pruned = trellis::jobs::prune(&app.state.db).await.unwrap();
    assert!(pruned >= 2, "{pruned}");
    assert_eq!(app.sql_count("SELECT COUNT(*) AS n FROM trash").await, 0);
    assert_eq!(
        app.sql_count("SELECT COUNT(*) AS n FROM merges WHERE CAST(snapshot AS TEXT) = '{}'")
            .await,
        1
    );
    app.post(&format!("/api/v1/merges/{merge_id}/undo"), json!({}))
        .await
        .assert_problem(409, "undo_period_over");
    // The merge itself is still listed.
    let listed = app.get("/api/v1/merges?object_type=contact").await;
    assert_eq!(listed.body[0]["id"], merge_id.as_str());
}
