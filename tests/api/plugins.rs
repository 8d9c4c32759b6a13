//! The plugin platform, end to end: the showcase plugin exercising every
//! export and import, and hostile plugins written to break the sandbox
//! (loops, allocations, reaching past grants, panics, a foreign contract).

use axum::http::Method;
use serde_json::json;

use crate::support::TestApp;

const SHOWCASE_GRANTS: [&str; 11] = [
    "records:contact:read",
    "records:contact:create",
    "records:contact:update",
    "records:activity:create",
    "records:custom_object:read",
    "records:custom_object:create",
    "kv",
    "http:127.0.0.1:9",
    "email",
    "jobs",
    "events",
];

/// A one-shot HTTP server answering every request with `hello`.
async fn hello_server() -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let _ = s
                .write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello",
                )
                .await;
        }
    });
    port
}

/// The showcase's `/fetch` reaches the hello server on `port` and is
/// refused (audited `denied`) anywhere else.
async fn fetches_only_the_granted_host(app: &TestApp, port: u16) {
    let fetched = app
        .post(
            "/api/v1/plugins/showcase/fetch",
            json!({"url": format!("http://127.0.0.1:{port}/x")}),
        )
        .await;
    assert_eq!(fetched.body, json!({"status": 200, "body": "hello"}));
    let refused = app
        .post(
            "/api/v1/plugins/showcase/fetch",
            json!({"url": "http://127.0.0.1:1/x"}),
        )
        .await;
    assert!(
        refused.body["error"]
            .as_str()
            .unwrap()
            .starts_with("denied"),
        "{}",
        refused.body
    );
}

async fn showcase(app: &TestApp, port: u16) {
    app.install_plugin("showcase", |m| {
        m.replace("127.0.0.1:9", &format!("127.0.0.1:{port}"))
    })
    .await
    .assert_status(201);
    let grants: Vec<String> = SHOWCASE_GRANTS
        .iter()
        .map(|g| g.replace("127.0.0.1:9", &format!("127.0.0.1:{port}")))
        .collect();
    app.put(
        "/api/v1/tenant/plugins/showcase",
        json!({"grants": grants, "config": {"greeting": "hi", "alert_email": "ops@example.com"}}),
    )
    .await
    .assert_status(200);
}

async fn plugin_log(app: &TestApp, id: &str) -> String {
    let res = app
        .get(&format!("/api/v1/tenant/plugins/{id}/logs?limit=1000"))
        .await;
    res.assert_status(200);
    res.body.to_string()
}

#[tokio::test]
async fn the_showcase_plugin_uses_every_export_and_import() {
    let app = TestApp::new().await;
    let port = hello_server().await;
    showcase(&app, port).await;

    // install ran, and declared its custom field.
    let installed = app.get("/api/v1/plugins/showcase/kv/installed_from").await;
    installed.assert_status(200);
    let fields = app.get("/api/v1/custom-fields").await;
    assert!(
        fields.body.to_string().contains("showcase_score"),
        "{}",
        fields.body
    );

    // before-write: normalises, computes, rejects.
    let c = app
        .create(
            "/api/v1/contacts",
            json!({"first_name": "Ada", "last_name": "Smith", "job_title": "  Broker  "}),
        )
        .await;
    assert_eq!(c["job_title"], "Broker");
    assert_eq!(c["custom"]["showcase_score"], 5);
    let id = c["id"].as_str().unwrap().to_owned();
    let rejected = app
        .post("/api/v1/contacts", json!({"first_name": "Reject"}))
        .await;
    rejected.assert_problem(422, "validation_failed");
    assert_eq!(rejected.error_fields(), ["first_name"]);
    assert!(
        rejected.body.to_string().contains("showcase"),
        "{}",
        rejected.body
    );

    // after-write: kv, events, a job that creates an activity, an email.
    app.patch(
        &format!("/api/v1/contacts/{id}"),
        json!({"version": 1, "tags": ["vip"]}),
    )
    .await
    .assert_status(200);
    assert!(app.run_jobs().await >= 2);
    let last = app.get("/api/v1/plugins/showcase/kv/last_write").await;
    last.assert_status(200);
    let activities = app.get(&format!("/api/v1/contacts/{id}/timeline")).await;
    assert!(
        activities
            .body
            .to_string()
            .contains("Follow up with Ada Smith"),
        "{}",
        activities.body
    );
    let by_plugin = app
        .get("/api/v1/audit?object_type=activity&action=create")
        .await;
    assert_eq!(
        by_plugin.body["data"][0]["actor_kind"], "plugin",
        "{}",
        by_plugin.body
    );
    let log = plugin_log(&app, "showcase").await;
    assert!(log.contains("saw Update"), "{log}");

    // HTTP routes: signed in, public, and the credentials stay with the kernel.
    let echo = app
        .post("/api/v1/plugins/showcase/echo", json!({"x": 1}))
        .await;
    echo.assert_status(200);
    assert_eq!(echo.body["body"], json!({"x": 1}));
    assert_eq!(echo.body["config"]["greeting"], "hi");
    assert_eq!(echo.body["random_len"], 16);
    assert_eq!(echo.body["saw_authorization"], false);
    assert!(echo.body["now_ms"].as_i64().unwrap() > 0);
    assert_eq!(echo.body["leads"], 1);
    app.public_post("/api/v1/plugins/showcase/echo", json!({}))
        .await
        .assert_problem(401, "unauthenticated");
    app.public_post("/api/v1/plugins/showcase/webhook", json!({"event": "ping"}))
        .await
        .assert_status(202);
    let hook = app.get("/api/v1/plugins/showcase/kv/webhook").await;
    assert_eq!(hook.body, json!({"event": "ping"}));
    app.get("/api/v1/plugins/showcase/nowhere")
        .await
        .assert_problem(404, "route_not_found");

    // A route may demand a permission of its caller.
    let reader = app.role_token("read_only").await;
    app.send(
        Method::POST,
        "/api/v1/plugins/showcase/fetch",
        Some(&reader),
        Some(json!({"url": "http://127.0.0.1:1/"})),
        &[],
    )
    .await
    .assert_problem(403, "forbidden");

    // Outbound HTTP: the granted host answers; any other is refused.
    fetches_only_the_granted_host(&app, port).await;

    // Its own custom object: declared when enabled, written through the
    // host, hooked after writes.
    let object = app.get("/api/v1/objects/showcase_note").await;
    object.assert_status(200);
    assert_eq!(object.body["fields"][0]["key"], "body");
    let note = app
        .post(
            "/api/v1/plugins/showcase/note",
            json!({"body": "Called back", "stars": 4}),
        )
        .await;
    note.assert_status(201);
    assert_eq!(note.body["custom"]["stars"], 4);
    let bad = app
        .post("/api/v1/plugins/showcase/note", json!({"stars": 9}))
        .await;
    assert!(
        bad.body["error"].as_str().unwrap().starts_with("invalid"),
        "{}",
        bad.body
    );
    // A note written by someone else (the plugin's own writes do not call
    // its own hooks) reaches its after-write hook.
    let by_admin = app
        .create(
            "/api/v1/objects/showcase_note/records",
            json!({"custom": {"body": "From the API"}}),
        )
        .await;
    app.run_jobs().await;
    let seen = app.get("/api/v1/plugins/showcase/kv/note_seen").await;
    assert_eq!(seen.body, json!(by_admin["id"].as_str().unwrap()));

    // Panels on the record page.
    let panels = app.get(&format!("/api/v1/contacts/{id}/panels")).await;
    panels.assert_status(200);
    assert_eq!(panels.body[0]["plugin_id"], "showcase");
    assert_eq!(panels.body[0]["panels"][0]["items"][0]["value"], "5");

    // A schedule: its first run is queued; when due it runs and queues the next.
    app.sql("UPDATE jobs SET run_at = '2000-01-01T00:00:00Z' WHERE name = 'tick'")
        .await;
    app.run_jobs().await;
    let ticks = app.get("/api/v1/plugins/showcase/kv/ticks").await;
    assert_eq!(ticks.body, json!(1));

    // Events and the outbox got what the plugin sent.
    let counts = app
        .sql_count("SELECT COUNT(*) AS n FROM events WHERE name = 'showcase.contact_written'")
        .await;
    assert!(counts >= 1);
    let mails = app
        .sql_count("SELECT COUNT(*) AS n FROM outbox WHERE recipient = 'ops@example.com'")
        .await;
    assert_eq!(mails, 1);

    // Another tenant has not enabled the plugin: its writes are untouched.
    let other = app.tenant_token("other", "admin").await;
    app.send(
        Method::POST,
        "/api/v1/contacts",
        Some(&other),
        Some(json!({"first_name": "Reject"})),
        &[],
    )
    .await
    .assert_status(201);

    // A second kernel process sees the same installs and grants.
    let second = app.another_process().await;
    let c2 = second
        .create(
            "/api/v1/contacts",
            json!({"first_name": "Bo", "last_name": "Li", "job_title": " Agent "}),
        )
        .await;
    assert_eq!(c2["job_title"], "Agent");
}

#[tokio::test]
async fn a_plugin_that_loops_forever_is_killed_at_its_deadline() {
    let app = TestApp::new().await;
    app.enable_plugin("testing/spin", json!(["records:contact:read"]), json!({}))
        .await
        .assert_status(200);
    let (spun, listed) = tokio::join!(
        app.post("/api/v1/contacts", json!({"first_name": "Loop"})),
        app.get("/api/v1/accounts"),
    );
    // The write fails whole, naming the plugin; the kernel kept serving.
    spun.assert_problem(503, "plugin_failed");
    assert!(
        spun.body["detail"].as_str().unwrap().contains("spin@0.1.0"),
        "{}",
        spun.body
    );
    assert!(
        spun.body["detail"].as_str().unwrap().contains("deadline"),
        "{}",
        spun.body
    );
    listed.assert_status(200);
    assert_eq!(app.count_contacts().await, 0);
    app.post("/api/v1/plugins/spin/spin", json!({}))
        .await
        .assert_problem(503, "plugin_failed");
    assert!(plugin_log(&app, "spin").await.contains("deadline"));
}

#[tokio::test]
async fn a_plugin_that_allocates_without_end_stops_at_its_memory_cap() {
    let app = TestApp::new().await;
    app.enable_plugin("testing/hog", json!(["records:contact:read"]), json!({}))
        .await
        .assert_status(200);
    let res = app
        .post("/api/v1/contacts", json!({"first_name": "Greedy"}))
        .await;
    res.assert_problem(503, "plugin_failed");
    assert!(
        res.body["detail"].as_str().unwrap().contains("memory cap"),
        "{}",
        res.body
    );
    assert_eq!(app.count_contacts().await, 0);
}

#[tokio::test]
async fn a_plugin_reaching_past_its_grants_is_denied_and_audited() {
    let app = TestApp::new().await;
    app.install_plugin("testing/snoop", |m| m)
        .await
        .assert_status(201);
    // The admin can grant only what the manifest asks for.
    let res = app
        .put(
            "/api/v1/tenant/plugins/snoop",
            json!({"grants": ["records:contact:read", "kv"]}),
        )
        .await;
    res.assert_problem(422, "validation_failed");
    assert_eq!(res.error_fields(), ["grants[1]"]);
    app.put(
        "/api/v1/tenant/plugins/snoop",
        json!({"grants": ["records:contact:read"]}),
    )
    .await
    .assert_status(200);
    let own = app
        .create(
            "/api/v1/contacts",
            json!({"first_name": "Sam", "last_name": "Spade", "job_title": "Spy",
                   "emails": [{"address": "sam@example.com", "primary": true}]}),
        )
        .await;
    let pipeline = app.sales_pipeline().await;
    let deal = app
        .create(
            "/api/v1/deals",
            json!({"name": "Secret", "amount": "10", "currency": "EUR",
                   "pipeline_id": pipeline["id"], "stage_id": pipeline["stages"][0]["id"]}),
        )
        .await;
    let theirs = app.foreign_contact("other").await;
    let report = app
        .post(
            "/api/v1/plugins/snoop/try",
            json!({"own_contact": own["id"], "other_tenant_contact": theirs, "deal": deal["id"]}),
        )
        .await;
    report.assert_status(200);
    let r = &report.body;
    // Its own tenant's contact, with only the granted fields.
    assert_eq!(r["own_contact"]["ok"]["first_name"], "Sam");
    let own_text = r["own_contact"].to_string();
    assert!(
        !own_text.contains("sam@example.com") && !own_text.contains("Spy"),
        "{own_text}"
    );
    // Another tenant's record does not exist for it.
    assert!(
        r["other_tenant_contact"]["error"]
            .as_str()
            .unwrap()
            .starts_with("not found"),
        "{r}"
    );
    for denied in [
        "deal",
        "filter_on_hidden_field",
        "create_contact",
        "kv",
        "http",
        "email",
    ] {
        let e = r[denied]["error"].as_str().unwrap_or_default();
        assert!(e.starts_with("denied"), "{denied}: {r}");
    }
    let audited = app.get("/api/v1/audit?action=denied&limit=100").await;
    let entries = audited.body["data"].as_array().unwrap();
    assert!(entries.len() >= 6, "{}", audited.body);
    assert!(entries.iter().all(|e| e["actor_kind"] == "plugin"));
}

#[tokio::test]
async fn a_plugin_that_panics_after_writes_loses_none_and_trips_the_breaker() {
    let app = TestApp::new().await;
    app.enable_plugin("testing/crashy", json!(["records:contact:read"]), json!({}))
        .await
        .assert_status(200);
    for i in 0..5 {
        app.post("/api/v1/contacts", json!({"first_name": format!("C{i}")}))
            .await
            .assert_status(201);
    }
    app.run_jobs().await;
    // Every write stands.
    assert_eq!(app.count_contacts().await, 5);
    let log = plugin_log(&app, "crashy").await;
    assert!(log.contains("crashy cannot cope"), "{log}");
    let plugins = app.get("/api/v1/tenant/plugins").await;
    let crashy = &plugins.body[0];
    assert_eq!(crashy["enabled"], false, "{}", plugins.body);
    assert!(
        crashy["disabled_reason"]
            .as_str()
            .unwrap()
            .contains("5 consecutive failures")
    );
    // The admin was told, and the breaker's act is on the audit trail.
    let mails = app
        .sql_count("SELECT COUNT(*) AS n FROM outbox WHERE subject = 'Plugin crashy was disabled'")
        .await;
    assert_eq!(mails, 1);
    let configured = app
        .get("/api/v1/audit?object_type=plugin&action=configure")
        .await;
    assert!(configured.body.to_string().contains("consecutive failures"));
    // Disabled, it is no longer called.
    app.post("/api/v1/contacts", json!({"first_name": "After"}))
        .await
        .assert_status(201);
    app.run_jobs().await;
    assert_eq!(app.count_contacts().await, 6);
}

#[tokio::test]
async fn a_plugin_built_for_an_unknown_contract_is_refused() {
    let app = TestApp::new().await;
    let res = app.install_plugin("testing/future", |m| m).await;
    res.assert_problem(422, "validation_failed");
    let detail = res.body.to_string();
    assert!(
        detail.contains("built for contract 9.0.0")
            && detail.contains("supports contract 0.1.0, 0.2.0"),
        "{detail}"
    );
    let res = app
        .install_plugin("testing/future", |m| {
            m.replace("contract = \"0.1.0\"", "contract = \"9.0.0\"")
        })
        .await;
    res.assert_problem(422, "validation_failed");
    assert_eq!(res.error_fields(), ["manifest.contract"]);
}

/// Sends a bulk create of three contacts whose middle one has `title`,
/// expects it to fail alone, and returns its item error.
async fn failed_middle_item(app: &TestApp, title: &str) -> serde_json::Value {
    let res = app
        .post(
            "/api/v1/contacts/bulk",
            json!({"operation": "create", "items": [
                {"first_name": "A", "job_title": "Agent"},
                {"first_name": "B", "job_title": title},
                {"first_name": "C", "job_title": "Clerk"}
            ]}),
        )
        .await;
    res.assert_problem(422, "bulk_failed");
    let items = res.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{}", res.body);
    assert_eq!(items[0]["index"], 1);
    items[0].clone()
}

/// A plugin built for the first contract (0.1.0, without the SDK) keeps
/// working under a kernel whose newest contract is 0.2.0: its hook patches
/// and refuses, once per record of a bulk request, and its imports reach
/// records through the 0.1.0 shim with the same rules as anyone's.
#[tokio::test]
async fn a_plugin_built_for_contract_0_1_0_runs_through_the_shim() {
    let app = TestApp::new().await;
    app.enable_plugin(
        "testing/legacy",
        json!([
            "records:contact:read",
            "records:contact:create",
            "records:contact:update"
        ]),
        json!({}),
    )
    .await
    .assert_status(200);

    // before-write: a patch, and a refusal naming the field and the plugin.
    let c = app
        .create(
            "/api/v1/contacts",
            json!({"first_name": "Ada", "job_title": "Broker"}),
        )
        .await;
    assert_eq!(c["job_title"], "Broker (legacy)");
    let refused = app
        .post(
            "/api/v1/contacts",
            json!({"first_name": "No", "job_title": "forbidden"}),
        )
        .await;
    refused.assert_problem(422, "validation_failed");
    assert_eq!(refused.error_fields(), ["job_title"]);
    assert!(
        refused.body.to_string().contains("legacy"),
        "{}",
        refused.body
    );

    // A bulk request: 0.1.0 has no batch hook, so each record is asked in
    // turn, and a refusal is that item's error.
    let failed = failed_middle_item(&app, "forbidden").await;
    assert_eq!(failed["errors"][0]["field"], "job_title");
    assert_eq!(
        app.count_contacts().await,
        1,
        "nothing of the bulk request was written"
    );
    // A record that crashes the plugin fails the batch's invocation; the
    // batch is asked again record by record, so only that item fails.
    let failed = failed_middle_item(&app, "crash").await;
    assert!(failed.to_string().contains("legacy"), "{failed}");
    let ok = app
        .post(
            "/api/v1/contacts/bulk",
            json!({"operation": "create", "items": [
                {"first_name": "A", "job_title": "Agent"},
                {"first_name": "C", "job_title": "Clerk"}
            ]}),
        )
        .await;
    ok.assert_status(200);
    let titles: Vec<&str> = ok.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["job_title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["Agent (legacy)", "Clerk (legacy)"]);

    // A patch may not clear the custom values wholesale (hidden and
    // encrypted ones included): the write fails and the values stay.
    app.post(
        "/api/v1/custom-fields",
        json!({"object_type": "contact", "key": "tier", "label": "Tier", "field_type": "text"}),
    )
    .await
    .assert_status(201);
    let tiered = app
        .create(
            "/api/v1/contacts",
            json!({"first_name": "Tia", "custom": {"tier": "gold"}}),
        )
        .await;
    let path = format!("/api/v1/contacts/{}", tiered["id"].as_str().unwrap());
    app.patch(&path, json!({"version": 1, "job_title": "wipe"}))
        .await
        .assert_problem(503, "plugin_failed");
    assert_eq!(app.get(&path).await.body["custom"]["tier"], "gold");

    // Its route reads through the 0.1.0 `records.get`: its own tenant's
    // contact, never another's (a 0.1.0 `not-found`), and it logs.
    let id = c["id"].as_str().unwrap();
    let got = app
        .get(&format!("/api/v1/plugins/legacy/contacts/{id}"))
        .await;
    got.assert_status(200);
    assert_eq!(got.body["id"], id);
    assert_eq!(got.body["job_title"], "Broker (legacy)");
    let theirs_id = app.foreign_contact("elsewhere").await;
    let res = app
        .get(&format!("/api/v1/plugins/legacy/contacts/{theirs_id}"))
        .await;
    res.assert_status(404);
    assert_eq!(res.body["error"], "not-found", "{}", res.body);
    let res = app.get("/api/v1/plugins/legacy/contacts/not-an-id").await;
    res.assert_status(404);
    assert_eq!(res.body["message"], "no record `not-an-id`", "{}", res.body);
    let log = plugin_log(&app, "legacy").await;
    assert!(log.contains(&format!("looked up contact {id}")), "{log}");

    // The contract a component was built for must be the one its manifest
    // claims.
    let res = app
        .install_plugin("testing/legacy", |m| {
            m.replace("contract = \"0.1.0\"", "contract = \"0.2.0\"")
                .replace("version = \"0.1.0\"", "version = \"0.1.1\"")
        })
        .await;
    res.assert_problem(422, "validation_failed");
    assert!(
        res.body.to_string().contains(
            "the manifest says contract 0.2.0 but the component was built for contract 0.1.0"
        ),
        "{}",
        res.body
    );
}

/// Contract 0.2.0: a bulk request meets a plugin's hook as one batch (the
/// showcase refuses an email used twice in one batch, which it can only
/// see with the batch together), and `records.get-many` reads several
/// records in one host call, in the order asked, leaving out what the
/// plugin may not see.
#[tokio::test]
async fn a_batch_meets_the_hook_together_and_get_many_reads_in_one_call() {
    let app = TestApp::new().await;
    let port = hello_server().await;
    showcase(&app, port).await;
    let res = app
        .post(
            "/api/v1/contacts/bulk",
            json!({"operation": "create", "items": [
                {"first_name": "A", "last_name": "Abe", "emails": [{"address": "a@example.com"}]},
                {"first_name": "B", "last_name": "Bo", "emails": [{"address": "b@example.com"}]},
                {"first_name": "Reject"},
                {"first_name": "C", "emails": [{"address": "A@Example.com"}]}
            ]}),
        )
        .await;
    res.assert_problem(422, "bulk_failed");
    let items = res.body["items"].as_array().unwrap();
    let indexes: Vec<u64> = items.iter().map(|i| i["index"].as_u64().unwrap()).collect();
    assert_eq!(indexes, [2, 3], "{}", res.body);
    assert_eq!(items[0]["errors"][0]["field"], "first_name");
    assert_eq!(items[1]["errors"][0]["field"], "emails");
    assert!(
        items[1].to_string().contains("duplicate_in_batch"),
        "{}",
        items[1]
    );
    assert_eq!(app.count_contacts().await, 0);

    let ok = app
        .post(
            "/api/v1/contacts/bulk",
            json!({"operation": "create", "items": [
                {"first_name": "A", "last_name": "Abe", "job_title": " Agent ", "emails": [{"address": "a@example.com"}]},
                {"first_name": "B", "last_name": "Bo", "emails": [{"address": "b@example.com"}]}
            ]}),
        )
        .await;
    ok.assert_status(200);
    let data = ok.body["data"].as_array().unwrap();
    // The batch's records were tidied and scored as single writes are.
    assert_eq!(data[0]["job_title"], "Agent");
    assert_eq!(data[0]["custom"]["showcase_score"], 3);
    assert_eq!(data[1]["custom"]["showcase_score"], 2);
    // The same email written alone is not the batch rule's business.
    app.create(
        "/api/v1/contacts",
        json!({"first_name": "D", "emails": [{"address": "a@example.com"}]}),
    )
    .await;

    let theirs = app.foreign_contact("elsewhere").await;
    let (a, b) = (data[0]["id"].clone(), data[1]["id"].clone());
    let names = app
        .post(
            "/api/v1/plugins/showcase/names",
            json!({"ids": [b, theirs, "0190f5c2-0000-7000-8000-000000000000", a]}),
        )
        .await;
    names.assert_status(200);
    assert_eq!(names.body, json!(["B Bo", "A Abe"]));
    let too_many: Vec<String> = (0..201)
        .map(|_| "0190f5c2-0000-7000-8000-000000000000".to_owned())
        .collect();
    let res = app
        .post("/api/v1/plugins/showcase/names", json!({"ids": too_many}))
        .await;
    res.assert_status(422);
    assert!(
        res.body["error"].as_str().unwrap().contains("ids"),
        "{}",
        res.body
    );
}

#[tokio::test]
async fn plugin_management_needs_the_rights_and_checks_configuration() {
    let app = TestApp::new().await;
    app.install_plugin("showcase", |m| m)
        .await
        .assert_status(201);
    // Installing the same package again is a no-op; other bytes under the
    // same version are refused.
    app.install_plugin("showcase", |m| m)
        .await
        .assert_status(201);
    // Installing needs an operator, not a tenant admin.
    app.post(
        "/api/v1/platform/plugins",
        json!({"manifest": "", "component": ""}),
    )
    .await
    .assert_problem(401, "unauthenticated");
    let rep = app.role_token("sales_rep").await;
    app.send(
        Method::PUT,
        "/api/v1/tenant/plugins/showcase",
        Some(&rep),
        Some(json!({"grants": []})),
        &[],
    )
    .await
    .assert_problem(403, "forbidden");
    let res = app
        .put(
            "/api/v1/tenant/plugins/showcase",
            json!({"grants": [], "config": {"greeting": 5}}),
        )
        .await;
    res.assert_problem(422, "validation_failed");
    assert_eq!(res.error_fields(), ["config.greeting"]);
    // A host the manifest does not list cannot be granted (not configurable).
    let res = app
        .put(
            "/api/v1/tenant/plugins/showcase",
            json!({"grants": ["http:other.example"]}),
        )
        .await;
    res.assert_problem(422, "validation_failed");
    assert_eq!(res.error_fields(), ["grants[0]"]);
    app.put("/api/v1/tenant/plugins/nothing", json!({"grants": []}))
        .await
        .assert_problem(404, "not_found");
    let available = app.get("/api/v1/tenant/plugins/available").await;
    assert_eq!(available.body[0]["plugin_id"], "showcase");
    assert!(
        available.body[0]["manifest"]["capabilities"]["kv"]
            .as_bool()
            .unwrap()
    );
}

#[tokio::test]
async fn erasure_removes_undelivered_hook_copies_of_the_person() {
    let app = TestApp::new().await;
    app.enable_plugin("testing/crashy", json!(["records:contact:read"]), json!({}))
        .await
        .assert_status(200);
    let c = app
        .create(
            "/api/v1/contacts",
            json!({"first_name": "Wilhelmina", "last_name": "Quarrington"}),
        )
        .await;
    let queued = app
        .sql_count(
            "SELECT COUNT(*) AS n FROM jobs WHERE CAST(payload AS TEXT) LIKE '%Quarrington%'",
        )
        .await;
    assert_eq!(queued, 1, "the after-write hook is queued with the record");
    app.post(
        &format!("/api/v1/contacts/{}/erase", c["id"].as_str().unwrap()),
        json!({"reason": "subject request"}),
    )
    .await
    .assert_status(200);
    let left = app
        .sql_count(
            "SELECT COUNT(*) AS n FROM jobs WHERE CAST(payload AS TEXT) LIKE '%Quarrington%'",
        )
        .await;
    assert_eq!(left, 0);
}

#[tokio::test]
async fn hooks_show_a_plugin_only_what_it_may_read() {
    let app = TestApp::new().await;
    app.post(
        "/api/v1/custom-fields",
        json!({"object_type": "contact", "key": "ssn", "label": "SSN", "field_type": "text", "sensitive": true}),
    )
    .await
    .assert_status(201);
    // Without a read grant its hook is not called at all.
    app.enable_plugin("testing/snoop", json!([]), json!({}))
        .await
        .assert_status(200);
    let body = json!({"first_name": "Peek", "last_name": "Aboo", "job_title": "Spy",
                      "emails": [{"address": "peek@example.com", "primary": true}],
                      "custom": {"ssn": "078-05-1120"}});
    app.post("/api/v1/contacts", body.clone())
        .await
        .assert_status(201);
    app.put(
        "/api/v1/tenant/plugins/snoop",
        json!({"grants": ["records:contact:read"]}),
    )
    .await
    .assert_status(200);
    let res = app.post("/api/v1/contacts", body).await;
    res.assert_problem(422, "validation_failed");
    let seen = res.body["errors"][0]["message"].as_str().unwrap();
    assert!(seen.contains("Aboo"), "{seen}");
    for secret in ["078-05-1120", "Spy", "peek@example.com"] {
        assert!(
            !seen.contains(secret),
            "{secret} reached the plugin: {seen}"
        );
    }
}

#[tokio::test]
async fn plugins_answer_data_subject_access_and_erasure_requests() {
    let app = TestApp::new().await;
    let port = hello_server().await;
    showcase(&app, port).await;
    let c = app
        .create(
            "/api/v1/contacts",
            json!({"first_name": "Gerty", "last_name": "Pumpernickel"}),
        )
        .await;
    let id = c["id"].as_str().unwrap().to_owned();
    app.run_jobs().await;
    let export = app
        .get(&format!("/api/v1/contacts/{id}/personal-data"))
        .await;
    export.assert_status(200);
    assert_eq!(export.body["complete"], true);
    assert_eq!(export.body["plugin_data"][0]["plugin_id"], "showcase");
    assert_eq!(
        export.body["plugin_data"][0]["data"]["name"],
        "Gerty Pumpernickel"
    );
    let erased = app
        .post(
            &format!("/api/v1/contacts/{id}/erase"),
            json!({"reason": "ticket 7"}),
        )
        .await;
    erased.assert_status(200);
    assert_eq!(erased.body["plugin_failures"], json!([]));
    app.get(&format!("/api/v1/plugins/showcase/kv/seen:{id}"))
        .await
        .assert_status(404);
}

#[tokio::test]
async fn the_plan_limits_how_many_plugins_a_tenant_enables() {
    let app = TestApp::new().await;
    let platform = app.operator(None).await;
    app.send(
        Method::POST,
        "/api/v1/platform/tenants",
        Some(&platform),
        Some(json!({"slug": "small", "name": "Small", "admin_email": "a@small.test", "plan": "starter"})),
        &[],
    )
    .await
    .assert_status(201);
    let key = app.tenant_token("small", "admin").await;
    for dir in [
        "testing/hog",
        "testing/snoop",
        "testing/crashy",
        "testing/tidy",
    ] {
        app.install_plugin(dir, |m| m).await.assert_status(201);
    }
    let enable = |id: &str| {
        let (app, key) = (&app, key.clone());
        let path = format!("/api/v1/tenant/plugins/{id}");
        async move {
            app.send(
                Method::PUT,
                &path,
                Some(&key),
                Some(json!({"grants": []})),
                &[],
            )
            .await
        }
    };
    for id in ["hog", "snoop", "crashy"] {
        enable(id).await.assert_status(200);
    }
    let res = enable("tidy").await;
    res.assert_problem(402, "plan_limit_reached");
    assert!(
        res.body["detail"].as_str().unwrap().contains("plugins"),
        "{}",
        res.body
    );
    // Reconfiguring an enabled plugin is not a new one; disabling frees a slot.
    enable("snoop").await.assert_status(200);
    app.send(
        Method::DELETE,
        "/api/v1/tenant/plugins/crashy",
        Some(&key),
        None,
        &[],
    )
    .await
    .assert_status(200);
    enable("tidy").await.assert_status(200);
}

#[tokio::test]
async fn finished_jobs_and_old_plugin_logs_are_pruned() {
    let app = TestApp::new().await;
    app.enable_plugin("testing/crashy", json!(["records:contact:read"]), json!({}))
        .await
        .assert_status(200);
    app.post("/api/v1/contacts", json!({"first_name": "Old"}))
        .await
        .assert_status(201);
    app.run_jobs().await;
    app.sql("UPDATE jobs SET status = 'failed', finished_at = '2000-01-01T00:00:00Z'")
        .await;
    app.sql("UPDATE plugin_logs SET at = '2000-01-01T00:00:00Z'")
        .await;
    assert!(app.sql_count("SELECT COUNT(*) AS n FROM plugin_logs").await > 0);
    let pruned = trellis::jobs::prune(&app.state.db).await.unwrap();
    assert!(pruned >= 2, "{pruned}");
    assert_eq!(app.sql_count("SELECT COUNT(*) AS n FROM jobs").await, 0);
    assert_eq!(
        app.sql_count("SELECT COUNT(*) AS n FROM plugin_logs").await,
        0
    );
}

#[tokio::test]
async fn a_configurable_plugin_reaches_only_the_hosts_its_admin_names() {
    let app = TestApp::new().await;
    let port = hello_server().await;
    // The author cannot know the tenant's server: the manifest lists no
    // host but asks to be configurable.
    app.install_plugin("showcase", |m| {
        m.replace(
            "http = [\"127.0.0.1:9\"]",
            "http = []\nhttp_configurable = true",
        )
    })
    .await
    .assert_status(201);
    let host = format!("http:127.0.0.1:{port}");
    let mut grants: Vec<String> = SHOWCASE_GRANTS
        .iter()
        .filter(|g| !g.starts_with("http:"))
        .map(|g| (*g).to_owned())
        .collect();
    let with_bad_host = [grants.clone(), vec!["http:evil.example/x".to_owned()]].concat();
    let res = app
        .put(
            "/api/v1/tenant/plugins/showcase",
            json!({"grants": with_bad_host}),
        )
        .await;
    res.assert_problem(422, "validation_failed");
    grants.push(host);
    app.put("/api/v1/tenant/plugins/showcase", json!({"grants": grants}))
        .await
        .assert_status(200);
    fetches_only_the_granted_host(&app, port).await;
}
