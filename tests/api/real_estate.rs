//! The real-estate edition with its plugin running as a component: RESO
//! listings as a custom object, status spellings, and buyer matching.

use serde_json::{Value, json};

use crate::support::TestApp;

async fn edition(app: &TestApp) {
    let applied = app
        .post("/api/v1/tenant/edition", json!({"edition": "real-estate"}))
        .await;
    applied.assert_status(200);
    assert!(
        applied.body["created"]
            .as_array()
            .unwrap()
            .contains(&json!("plugin:real-estate")),
        "{}",
        applied.body
    );
}

/// The subjects of the tasks on a contact.
pub async fn tasks_for(app: &TestApp, contact: &str) -> Vec<String> {
    let res = app
        .get(&format!(
            "/api/v1/activities?filter=contact_id:eq:{contact}&filter=kind:eq:task"
        ))
        .await;
    res.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["subject"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn new_listings_and_price_changes_task_the_agents_of_matching_buyers() {
    let app = TestApp::new().await;
    edition(&app).await;
    let object = app.get("/api/v1/objects/listing").await;
    let keys: Vec<&str> = object.body["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["key"].as_str().unwrap())
        .collect();
    for k in [
        "ListingKey",
        "StandardStatus",
        "ListPrice",
        "BedroomsTotal",
        "ModificationTimestamp",
    ] {
        assert!(keys.contains(&k), "{k} in {keys:?}");
    }

    let buyer = |name: &str, custom: Value| {
        let app = &app;
        let name = name.to_owned();
        async move {
            app.create(
                "/api/v1/contacts",
                json!({"first_name": name, "custom": custom}),
            )
            .await["id"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let ann = buyer(
        "Ann",
        json!({"buyer_max_price": "400000", "buyer_min_beds": 3, "buyer_cities": "Leeds, LS6"}),
    )
    .await;
    let bob = buyer("Bob", json!({"buyer_max_price": "300000"})).await;
    let cat = buyer(
        "Cat",
        json!({"buyer_max_price": "900000", "buyer_cities": "York"}),
    )
    .await;

    // The display spelling of a status is stored as RESO's enumeration.
    let listing = app
        .create(
            "/api/v1/objects/listing/records",
            json!({"custom": {"ListingKey": "L-1", "StandardStatus": "Coming Soon", "ListPrice": "350000",
                              "UnparsedAddress": "1 Park Row, Leeds", "City": "Leeds", "BedroomsTotal": 3,
                              "Latitude": 53.7997}}),
        )
        .await;
    assert_eq!(listing["custom"]["StandardStatus"], "ComingSoon");
    assert_eq!(listing["custom"]["OriginalListPrice"], "350000");
    assert_eq!(listing["custom"]["Latitude"], "53.7997");
    let bad = app
        .post(
            "/api/v1/objects/listing/records",
            json!({"custom": {"ListingKey": "L-2", "StandardStatus": "Sold-ish"}}),
        )
        .await;
    bad.assert_problem(422, "validation_failed");
    assert_eq!(bad.error_fields(), ["custom.StandardStatus"]);

    app.run_jobs().await;
    assert_eq!(tasks_for(&app, &ann).await.len(), 1);
    assert!(tasks_for(&app, &ann).await[0].contains("1 Park Row, Leeds"));
    assert!(tasks_for(&app, &bob).await.is_empty(), "over Bob's budget");
    assert!(tasks_for(&app, &cat).await.is_empty(), "not in York");

    // A price cut brings Bob in; Ann is not told twice.
    let id = listing["id"].as_str().unwrap();
    app.patch(
        &format!("/api/v1/objects/listing/records/{id}"),
        json!({"version": 1, "custom": {"ListPrice": "299000", "StandardStatus": "Active"}}),
    )
    .await
    .assert_status(200);
    app.run_jobs().await;
    assert_eq!(tasks_for(&app, &bob).await.len(), 1);
    assert_eq!(tasks_for(&app, &ann).await.len(), 1);

    // The buyer's page shows the match.
    let panels = app.get(&format!("/api/v1/contacts/{ann}/panels")).await;
    let text = panels.body.to_string();
    assert!(
        text.contains("Matching listings") && text.contains("1 Park Row, Leeds"),
        "{text}"
    );
}

#[tokio::test]
async fn commissions_follow_the_worked_examples_through_the_plugin() {
    let app = TestApp::new().await;
    edition(&app).await;
    // $500,000 at 6 %, 50/50 sides, 70/30 agent split: the agent gets $10,500.
    let res = app
        .post(
            "/api/v1/plugins/real-estate/commission",
            json!({"price": "500000", "gross_percent": "6", "side_percent": "50",
                   "plan": {"kind": "fixed", "agent": "70"}}),
        )
        .await;
    res.assert_status(200);
    assert_eq!(res.body["gross"], "30000.00");
    assert_eq!(res.body["agent"], "10500.00");
    assert_eq!(res.body["brokerage"], "4500.00");
    // $12,000 gross, 25 % referral off the top, the rest 50/50: $4,500.
    let res = app
        .post(
            "/api/v1/plugins/real-estate/commission",
            json!({"gross_flat": "12000", "referral_percent": "25", "plan": {"kind": "fixed", "agent": "50"}}),
        )
        .await;
    assert_eq!(res.body["agent"], "4500.00");
    // A cap reached in this deal.
    let res = app
        .post(
            "/api/v1/plugins/real-estate/commission",
            json!({"gross_flat": "15000", "ytd_company": "18500",
                   "plan": {"kind": "capped", "agent": "70", "cap": "20000", "post_cap": "100"}}),
        )
        .await;
    assert_eq!(res.body["brokerage"], "1500.00");
    assert_eq!(res.body["agent"], "13500.00");
    // Bad input is named; callers who may not read deals are refused.
    let res = app
        .post(
            "/api/v1/plugins/real-estate/commission",
            json!({"gross_percent": 6.5, "plan": {"kind": "fixed", "agent": "70"}}),
        )
        .await;
    res.assert_status(422);
    assert!(
        res.body["error"]
            .as_str()
            .unwrap()
            .contains("gross_percent"),
        "{}",
        res.body
    );
    app.put(
        "/api/v1/roles",
        json!({"key": "contacts_only", "name": "Contacts only",
               "permissions": {"contact": {"actions": ["read"], "scope": "all"}}}),
    )
    .await
    .assert_status(200);
    let user = app
        .user(
            "default",
            "c@example.com",
            "a long test passphrase",
            &["contacts_only"],
        )
        .await;
    let key = app.key_for("default", user, &["contacts_only"]).await;
    app.send(
        axum::http::Method::POST,
        "/api/v1/plugins/real-estate/commission",
        Some(&key),
        Some(json!({"gross_flat": "1", "plan": {"kind": "fixed", "agent": "50"}})),
        &[],
    )
    .await
    .assert_problem(403, "forbidden");
}

#[tokio::test]
async fn buyers_are_scored_on_fit_and_engagement() {
    let app = TestApp::new().await;
    edition(&app).await;
    let c = app
        .create(
            "/api/v1/contacts",
            json!({"first_name": "Dee", "custom": {"pre_approved": true, "buyer_max_price": "400000", "buyer_cities": "Leeds"}}),
        )
        .await;
    let id = c["id"].as_str().unwrap();
    app.run_jobs().await;
    let scored = app.get(&format!("/api/v1/contacts/{id}")).await;
    let logs = app.get("/api/v1/tenant/plugins/real-estate/logs").await;
    assert_eq!(scored.body["custom"]["lead_score"], 50, "{}", logs.body);
    app.create(
        "/api/v1/activities",
        json!({"kind": "call", "subject": "Viewing feedback", "contact_id": id, "done": true}),
    )
    .await;
    app.run_jobs().await;
    let scored = app.get(&format!("/api/v1/contacts/{id}")).await;
    assert_eq!(scored.body["custom"]["lead_score"], 58);
    // The score is the plugin's write, on the record.
    let trail = app
        .get(&format!("/api/v1/audit?record_id={id}&action=update"))
        .await;
    assert!(
        trail.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["actor_kind"] == "plugin")
    );
}
