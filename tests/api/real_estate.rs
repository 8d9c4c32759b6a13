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
    let dee = buyer(
        "Dee",
        json!({"buyer_max_price": "900000", "buyer_must_haves": ["Garage", "Waterfront"]}),
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
    assert!(
        tasks_for(&app, &dee).await.is_empty(),
        "no garage, no water"
    );
    // Must-haves are RESO flags the listing carries; feeds' "Y" is a yes.
    for (key, flags) in [
        ("L-3", json!({"GarageYN": true})),
        ("L-4", json!({"GarageYN": "Y", "WaterfrontYN": true})),
    ] {
        let mut custom = json!({"ListingKey": key, "StandardStatus": "Active", "ListPrice": "600000",
                                "UnparsedAddress": format!("{key} Quay"), "City": "Hull"});
        custom
            .as_object_mut()
            .unwrap()
            .extend(flags.as_object().unwrap().clone());
        app.create("/api/v1/objects/listing/records", json!({"custom": custom}))
            .await;
    }
    app.run_jobs().await;
    let dees = tasks_for(&app, &dee).await;
    assert_eq!(dees.len(), 1, "{dees:?}");
    assert!(dees[0].contains("L-4 Quay"), "{dees:?}");

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
    assert_eq!(
        panels.body[0]["panels"][0]["items"][0]["link"],
        format!("/objects/listing/{id}")
    );

    // The listing's page names its buyers, newest match first, and links to
    // them; a buyer deleted since drops out.
    let listing_panels = app
        .get(&format!("/api/v1/objects/listing/records/{id}/panels"))
        .await;
    listing_panels.assert_status(200);
    let buyers = &listing_panels.body[0]["panels"][0];
    assert_eq!(
        buyers["title"], "Matching buyers",
        "{}",
        listing_panels.body
    );
    let names: Vec<&str> = buyers["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["label"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Bob", "Ann"]);
    assert_eq!(buyers["items"][1]["link"], format!("/contacts/{ann}"));
    let mut browser = crate::web::admin_browser(&app).await;
    browser
        .get("/objects/listing")
        .await
        .assert(200)
        .contains(&format!("href=\"&#x2f;objects&#x2f;listing&#x2f;{id}\""))
        .contains("L-1");
    browser
        .get("/objects/listing?filter=custom.City:eq:York")
        .await
        .assert(200)
        .lacks("L-1");
    browser
        .get(&format!("/objects/listing/{id}"))
        .await
        .assert(200)
        .contains("1 Park Row, Leeds")
        .contains("Matching buyers")
        .contains(&format!("href=\"&#x2f;contacts&#x2f;{bob}\""));
    app.delete(&format!("/api/v1/contacts/{bob}"))
        .await
        .assert_status(204);
    let after = app
        .get(&format!("/api/v1/objects/listing/records/{id}/panels"))
        .await;
    assert!(!after.body.to_string().contains("Bob"), "{}", after.body);
    assert!(after.body.to_string().contains("Ann"));
    // An id that is no record is not found.
    app.get(&format!(
        "/api/v1/objects/listing/records/{}/panels",
        uuid::Uuid::now_v7()
    ))
    .await
    .assert_status(404);
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

async fn showing(app: &TestApp, custom: Value) -> crate::support::Response {
    app.post("/api/v1/objects/showing/records", json!({"custom": custom}))
        .await
}

#[tokio::test]
async fn showings_do_not_overlap_and_their_feedback_reaches_the_buyer() {
    let app = TestApp::new().await;
    edition(&app).await;
    let listing = app
        .create(
            "/api/v1/objects/listing/records",
            json!({"custom": {"ListingKey": "S-1", "StandardStatus": "Active", "ListPrice": "250000",
                              "UnparsedAddress": "9 Elm Street"}}),
        )
        .await;
    let lid = listing["id"].as_str().unwrap();
    let buyer = app
        .create("/api/v1/contacts", json!({"first_name": "Bea"}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let at = |from: &str, to: &str| {
        json!({"listing_id": lid, "buyer_id": buyer,
               "starts_at": format!("2026-12-01T{from}:00Z"), "ends_at": format!("2026-12-01T{to}:00Z")})
    };
    let first = showing(&app, at("10:00", "10:30")).await;
    first.assert_status(201);
    assert_eq!(first.body["custom"]["status"], "requested");
    assert_eq!(first.body["custom"]["kind"], "showing");

    let clash = showing(&app, at("10:15", "10:45")).await;
    clash.assert_problem(422, "validation_failed");
    assert_eq!(clash.error_fields(), ["custom.starts_at"]);
    assert_eq!(clash.body["errors"][0]["code"], "rejected_by_plugin");
    assert!(
        clash.body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("another visit from 2026-12-01T10:00:00Z"),
        "{}",
        clash.body
    );
    let second = showing(&app, at("10:30", "11:00")).await;
    second.assert_status(201);
    let backwards = showing(&app, at("12:00", "11:00")).await;
    assert_eq!(backwards.error_fields(), ["custom.ends_at"]);
    let mut nowhere = at("13:00", "13:30");
    nowhere["listing_id"] = json!(uuid::Uuid::now_v7().to_string());
    assert_eq!(
        showing(&app, nowhere).await.error_fields(),
        ["custom.listing_id"]
    );

    // A cancelled showing frees its slot.
    let first_id = first.body["id"].as_str().unwrap();
    app.patch(
        &format!("/api/v1/objects/showing/records/{first_id}"),
        json!({"version": 1, "custom": {"status": "cancelled"}}),
    )
    .await
    .assert_status(200);
    showing(&app, at("10:00", "10:20")).await.assert_status(201);

    // Feedback marks the showing done and lands on the buyer's timeline.
    let second_id = second.body["id"].as_str().unwrap();
    let done = app
        .patch(
            &format!("/api/v1/objects/showing/records/{second_id}"),
            json!({"version": 1, "custom": {"feedback": "Loved the garden; kitchen too small.", "rating": 4}}),
        )
        .await;
    done.assert_status(200);
    assert_eq!(done.body["custom"]["status"], "done");
    app.run_jobs().await;
    let notes = app
        .get(&format!(
            "/api/v1/activities?filter=contact_id:eq:{buyer}&filter=kind:eq:note"
        ))
        .await;
    let notes = notes.body["data"].as_array().unwrap();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(
        notes[0]["subject"],
        "Showing feedback on 9 Elm Street (rated 4/5)"
    );
    assert_eq!(notes[0]["body"], "Loved the garden; kitchen too small.");

    // The listing's page lists its visits, latest first, with how they went.
    let panels = app
        .get(&format!("/api/v1/objects/listing/records/{lid}/panels"))
        .await;
    let visits = panels.body[0]["panels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "showings")
        .unwrap_or_else(|| panic!("{}", panels.body))
        .clone();
    let lines: Vec<(String, String)> = visits["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["label"].as_str().unwrap().to_owned(),
                i["value"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let line = |at: &str, how: &str| (format!("Showing, 2026-12-01 {at} UTC"), how.to_owned());
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(lines[0], line("10:30", "done, rated 4/5"));
    let mut earlier = lines[1..].to_vec();
    earlier.sort();
    assert_eq!(
        earlier,
        [line("10:00", "cancelled"), line("10:00", "requested")]
    );
    let mut browser = crate::web::admin_browser(&app).await;
    browser
        .get(&format!("/objects/showing/{second_id}"))
        .await
        .assert(200)
        .contains("Loved the garden; kitchen too small.");
}

#[tokio::test]
async fn open_house_visitors_become_the_hosts_leads_once() {
    let app = TestApp::new().await;
    edition(&app).await;
    let agent = app
        .user(
            "default",
            "agent@example.com",
            "a long agent passphrase",
            &["agent"],
        )
        .await;
    let listing = app
        .create(
            "/api/v1/objects/listing/records",
            json!({"custom": {"ListingKey": "OH-1", "StandardStatus": "Active", "ListPrice": "410000",
                              "UnparsedAddress": "4 Birch Lane"}}),
        )
        .await;
    let lid = listing["id"].as_str().unwrap();
    let fmt =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let now = chrono::Utc::now();
    let open_house = |from: chrono::DateTime<chrono::Utc>, kind: &str| {
        json!({"owner_id": agent, "custom": {"listing_id": lid, "kind": kind, "starts_at": fmt(from),
                                             "ends_at": fmt(from + chrono::Duration::hours(2))}})
    };
    let today = app
        .create(
            "/api/v1/objects/showing/records",
            open_house(now - chrono::Duration::minutes(10), "open_house"),
        )
        .await;
    let sign_in = |id: &str| format!("/api/v1/plugins/real-estate/open-houses/{id}/sign-in");
    let oh = today["id"].as_str().unwrap();

    let visitor = json!({"first_name": "Vic", "last_name": "Visitor", "email": "Vic@Example.com",
                         "phone": "+44 20 7946 0000", "working_with_agent": false});
    let res = app.public_post(&sign_in(oh), visitor.clone()).await;
    res.assert_status(201);
    assert_eq!(
        res.body,
        json!({"signed_in": true}),
        "nothing about the CRM"
    );
    app.public_post(
        &sign_in(oh),
        json!({"first_name": "Vic", "email": "vic@example.com"}),
    )
    .await
    .assert_status(201);
    let found = app
        .get("/api/v1/contacts?filter=email:eq:vic@example.com")
        .await;
    let found = found.body["data"].as_array().unwrap();
    assert_eq!(
        found.len(),
        1,
        "a returning visitor is recognised: {found:?}"
    );
    assert_eq!(
        found[0]["owner_id"],
        json!(agent),
        "the hosting agent's lead"
    );
    assert_eq!(found[0]["lead_source"], "open_house");
    assert_eq!(found[0]["lifecycle_stage"], "lead");
    let id = found[0]["id"].as_str().unwrap();
    let notes = app
        .get(&format!(
            "/api/v1/activities?filter=contact_id:eq:{id}&filter=kind:eq:note"
        ))
        .await;
    let notes = notes.body["data"].as_array().unwrap();
    assert_eq!(notes.len(), 2);
    assert!(
        notes
            .iter()
            .all(|n| n["subject"] == "Signed in at the open house at 4 Birch Lane")
    );

    // Bad or misplaced sign-ins.
    let res = app
        .public_post(&sign_in(oh), json!({"first_name": "Nobody"}))
        .await;
    res.assert_status(422);
    assert_eq!(res.body["field"], "email");
    let private = app
        .create(
            "/api/v1/objects/showing/records",
            open_house(now + chrono::Duration::hours(5), "showing"),
        )
        .await;
    app.public_post(&sign_in(private["id"].as_str().unwrap()), visitor.clone())
        .await
        .assert_status(404);
    let tomorrow = app
        .create(
            "/api/v1/objects/showing/records",
            open_house(now + chrono::Duration::days(1), "open_house"),
        )
        .await;
    app.public_post(&sign_in(tomorrow["id"].as_str().unwrap()), visitor.clone())
        .await
        .assert_status(409);
    app.public_post(&sign_in(&uuid::Uuid::now_v7().to_string()), visitor)
        .await
        .assert_status(404);
}

/// A won deal of `owner` closed at `closed_at` (set in the database: the
/// kernel stamps the closing time itself).
async fn closed_deal(
    app: &TestApp,
    owner: &str,
    stage: &Value,
    (name, amount, rate, side): (&str, &str, &str, &str),
    closed_at: &str,
) -> String {
    let mut body = json!({"name": name, "amount": amount, "currency": "USD", "owner_id": owner,
                          "stage_id": stage["id"], "custom": {"commission_rate": rate, "side": side}});
    if stage["kind"] == "lost" {
        body["lost_reason"] = json!("went with another agent");
    }
    let deal = app.create("/api/v1/deals", body).await;
    let id = deal["id"].as_str().unwrap().to_owned();
    app.sql(&format!(
        "UPDATE deals SET closed_at = '{closed_at}' WHERE id = {}",
        app.id_sql(&id)
    ))
    .await;
    id
}

#[tokio::test]
async fn commission_statements_apply_the_agents_plan_deal_by_deal_through_the_year() {
    let app = TestApp::new().await;
    edition(&app).await;
    let agent = app
        .user(
            "default",
            "ana@example.com",
            "a long agent passphrase",
            &["agent"],
        )
        .await
        .to_string();
    let other = app
        .user(
            "default",
            "otto@example.com",
            "a long agent passphrase",
            &["agent"],
        )
        .await
        .to_string();
    let statement = |q: &str| format!("/api/v1/plugins/real-estate/commission/statement?{q}");
    let period = format!("agent={agent}&from=2026-01-01&to=2026-12-31");
    app.get(&statement(&period)).await.assert_status(409);

    // Ana keeps 70 % until the brokerage has $20,000 from her this year,
    // then all of it; a side is half the commission unless it is dual.
    let plugins = app.get("/api/v1/tenant/plugins").await;
    let grants = plugins.body[0]["grants"].clone();
    app.put(
        "/api/v1/tenant/plugins/real-estate",
        json!({"grants": grants, "config": {"commission": {
            "default_plan": {"kind": "fixed", "agent": "50"}, "side_percent": "50",
            "agents": {agent.clone(): {"plan": {"kind": "capped", "agent": "70", "cap": "20000", "post_cap": "100"}}}}}}),
    )
    .await
    .assert_status(200);

    let pipelines = app.get("/api/v1/pipelines").await;
    let buyers = pipelines.body["data"]
        .as_array()
        .or(pipelines.body.as_array())
        .unwrap()
        .iter()
        .find(|p| p["name"] == "Buyers")
        .unwrap()
        .clone();
    let stage = |kind: &str| {
        buyers["stages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["kind"] == kind)
            .unwrap()
            .clone()
    };
    let (won, lost) = (stage("won"), stage("lost"));
    let a = closed_deal(
        &app,
        &agent,
        &won,
        ("12 Oak St", "500000", "6", "Buyer"),
        "2026-02-01T10:00:00Z",
    )
    .await;
    closed_deal(
        &app,
        &agent,
        &won,
        ("Smith, \"Oak\" House", "1000000", "6", "Seller"),
        "2026-04-01T10:00:00Z",
    )
    .await;
    let c = closed_deal(
        &app,
        &agent,
        &won,
        ("3 Pine Rd", "800000", "5", "Dual"),
        "2026-07-01T10:00:00Z",
    )
    .await;
    closed_deal(
        &app,
        &agent,
        &won,
        ("4 Elm Ct", "300000", "6", "Buyer"),
        "2026-09-01T10:00:00Z",
    )
    .await;
    // Not hers, not won, not this year: none of them count.
    closed_deal(
        &app,
        &other,
        &won,
        ("Otto's", "900000", "6", "Buyer"),
        "2026-03-01T10:00:00Z",
    )
    .await;
    closed_deal(
        &app,
        &agent,
        &lost,
        ("Lost one", "700000", "6", "Buyer"),
        "2026-05-01T10:00:00Z",
    )
    .await;
    closed_deal(
        &app,
        &agent,
        &won,
        ("Last year", "999000", "6", "Buyer"),
        "2025-12-20T10:00:00Z",
    )
    .await;

    let res = app.get(&statement(&period)).await;
    res.assert_status(200);
    let lines = res.body["lines"].as_array().unwrap();
    let col = |k: &str| -> Vec<String> {
        lines
            .iter()
            .map(|l| l["commission"][k].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(lines.len(), 4, "{}", res.body);
    assert_eq!(lines[0]["deal_id"], json!(a));
    assert_eq!(col("side"), ["15000.00", "30000.00", "40000.00", "9000.00"]);
    // The cap is reached inside the third deal: $6,500 left of it, the rest
    // of that side goes to Ana; the fourth is all hers.
    assert_eq!(col("brokerage"), ["4500.00", "9000.00", "6500.00", "0.00"]);
    assert_eq!(
        col("agent"),
        ["10500.00", "21000.00", "33500.00", "9000.00"]
    );
    let totals = &res.body["totals"][0];
    assert_eq!(totals["currency"], "USD");
    assert_eq!(totals["volume"], "2600000.00");
    assert_eq!(totals["agent"], "74000.00");
    assert_eq!(totals["brokerage"], "20000.00");

    // A later period still counts the year so far toward the cap.
    let res = app
        .get(&statement(&format!(
            "agent={agent}&from=2026-06-01&to=2026-12-31"
        )))
        .await;
    let lines = res.body["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["deal_id"], json!(c));
    assert_eq!(lines[0]["commission"]["agent"], "33500.00");

    // As CSV (RFC 4180), read back by an independent reader.
    let res = app.get(&statement(&format!("{period}&format=csv"))).await;
    res.assert_status(200);
    assert!(
        res.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let (header, rows) = res.csv();
    assert_eq!(
        &header[..6],
        [
            "agent_id",
            "deal_id",
            "deal",
            "closed_at",
            "currency",
            "price"
        ]
    );
    assert_eq!(rows.len(), 4);
    assert_eq!(&rows[1][2], "Smith, \"Oak\" House");
    assert_eq!(&rows[2][9], "33500.00");

    // An agent reads their own statement (named or not), not another's;
    // a client cannot pose as someone else through the kernel's headers.
    let login = app
        .login("ana@example.com", "a long agent passphrase")
        .await;
    login.assert_status(200);
    let ana = login.body["access_token"].as_str().unwrap().to_owned();
    let as_ana = |path: String, headers: &'static [(&'static str, &'static str)]| {
        let app = &app;
        let ana = ana.clone();
        async move {
            app.send(axum::http::Method::GET, &path, Some(&ana), None, headers)
                .await
        }
    };
    let own = as_ana(statement(&period), &[]).await;
    own.assert_status(200);
    assert_eq!(own.body["agent_id"], agent.as_str());
    assert_eq!(
        own.body["totals"],
        app.get(&statement(&period)).await.body["totals"]
    );
    let own = as_ana(statement("from=2026-01-01&to=2026-12-31"), &[]).await;
    assert_eq!(own.body["agent_id"], agent.as_str());
    let others = format!("agent={other}&from=2026-01-01&to=2026-12-31");
    let res = as_ana(statement(&others), &[]).await;
    res.assert_status(403);
    assert_eq!(res.body["field"], "agent");
    let res = as_ana(
        statement(&others),
        &[
            ("trellis-permissions", "deal:export"),
            ("trellis-user-id", "x"),
        ],
    )
    .await;
    res.assert_status(403);
    let res = app
        .get(&statement(&format!(
            "agent={agent}&from=2026-12-31&to=2026-01-01"
        )))
        .await;
    res.assert_status(422);
    assert_eq!(res.body["field"], "to");
}

#[tokio::test]
async fn the_editions_demo_data_brings_listings_buyers_and_showings() {
    let app = TestApp::new().await;
    edition(&app).await;
    let (tenant, admin) = trellis::crm::tenants::ensure_default(&app.state.db)
        .await
        .unwrap();
    let seeded = trellis::seed::demo(
        &app.state.db,
        tenant.id,
        admin.id,
        trellis::seed::DemoSize {
            contacts: 100,
            accounts: 10,
            deals: 20,
            activities: 10,
        },
    )
    .await
    .unwrap();
    assert!(matches!(seeded, trellis::seed::Seeded::Created { .. }));
    let edition = trellis::editions::Edition::built_in("real-estate").unwrap();
    assert_eq!(
        trellis::editions::queue_demo_jobs(&app.state.db, tenant.id, &edition)
            .await
            .unwrap(),
        1
    );
    app.run_jobs().await;
    let count = |path: &str| {
        let app = &app;
        let path = path.to_owned();
        async move {
            let res = app.get(&format!("{path}&count=true&limit=1")).await;
            res.assert_status(200);
            res.body["total"].as_u64().unwrap()
        }
    };
    assert_eq!(count("/api/v1/objects/listing/records?").await, 120);
    assert_eq!(
        count("/api/v1/objects/showing/records?filter=custom.kind:eq:open_house").await,
        1
    );
    assert_eq!(
        count("/api/v1/objects/showing/records?filter=custom.kind:eq:showing").await,
        8
    );
    assert_eq!(
        count("/api/v1/contacts?filter=custom.buyer_max_price:gte:0").await,
        40
    );
    // The buyers were scored, and their agents have matching listings.
    assert!(count("/api/v1/contacts?filter=custom.lead_score:gte:1").await >= 40);
    let tasks = count(
        "/api/v1/activities?filter=kind:eq:task&filter=subject:starts_with:New%20listing%20match",
    )
    .await;
    assert!(tasks > 0, "matching ran");
    // Once only.
    trellis::editions::queue_demo_jobs(&app.state.db, tenant.id, &edition)
        .await
        .unwrap();
    app.run_jobs().await;
    assert_eq!(count("/api/v1/objects/listing/records?").await, 120);
}

#[tokio::test]
async fn a_plugins_writes_count_against_the_tenants_plan() {
    let app = TestApp::new().await;
    edition(&app).await;
    let listing = app
        .create(
            "/api/v1/objects/listing/records",
            json!({"custom": {"ListingKey": "PL-1", "StandardStatus": "Active", "ListPrice": "300000"}}),
        )
        .await;
    let now = chrono::Utc::now();
    let fmt =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let open_house = app
        .create(
            "/api/v1/objects/showing/records",
            json!({"custom": {"listing_id": listing["id"], "kind": "open_house",
                              "starts_at": fmt(now - chrono::Duration::minutes(5)),
                              "ends_at": fmt(now + chrono::Duration::hours(1))}}),
        )
        .await;
    let sign_in = format!(
        "/api/v1/plugins/real-estate/open-houses/{}/sign-in",
        open_house["id"].as_str().unwrap()
    );

    // The tenant moves to the Starter plan and fills its 1,000 contacts.
    let (tenant, _) = trellis::crm::tenants::ensure_default(&app.state.db)
        .await
        .unwrap();
    let operator = app.operator(None).await;
    app.send(
        axum::http::Method::PATCH,
        &format!("/api/v1/platform/tenants/{}", tenant.id),
        Some(&operator),
        Some(json!({"plan": "starter"})),
        &[],
    )
    .await
    .assert_status(200);
    let missing = 1000 - app.count_contacts().await as usize;
    let items: Vec<_> = (0..missing)
        .map(|i| json!({"first_name": format!("C{i}")}))
        .collect();
    app.post(
        "/api/v1/contacts/bulk",
        json!({"operation": "create", "items": items}),
    )
    .await
    .assert_status(200);

    // A visitor signing in would be the 1,001st contact: the plugin's
    // write is refused like anyone's, and nothing is created.
    let res = app
        .public_post(
            &sign_in,
            json!({"first_name": "Over", "email": "over@example.com"}),
        )
        .await;
    assert_eq!(res.status, 503, "{}", res.body);
    assert!(
        res.body.to_string().contains("contacts"),
        "names the limit: {}",
        res.body
    );
    assert_eq!(app.count_contacts().await, 1000);
}
