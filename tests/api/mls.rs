//! MLS replication by the real-estate plugin, running as a component,
//! from a fake RESO Web API server (`tests/fake-reso`): the full import,
//! incremental runs after changes, keyset paging over equal timestamps,
//! short pages and `@odata.nextLink`, 429s and outages waited out, a broken
//! run resumed from its saved position, and the client credentials kept
//! sealed.

use chrono::Duration;
use serde_json::{Value, json};
use trellis_fake_reso::{CLIENT_ID, CLIENT_SECRET, Failure, FakeReso, base_time, generate};

use crate::real_estate::tasks_for;
use crate::support::{Response, TestApp};

async fn edition(app: &TestApp) {
    app.post("/api/v1/tenant/edition", json!({"edition": "real-estate"}))
        .await
        .assert_status(200);
    // The schedule's first tick (no MLS configured yet: nothing to do).
    app.run_jobs().await;
}

/// Points the plugin at `mls`: grants its host and sets the configuration
/// (`extra` over the defaults; `null` leaves a key out).
async fn connect(app: &TestApp, mls: &FakeReso, grant_host: bool, extra: Value) -> Response {
    let plugins = app.get("/api/v1/tenant/plugins").await;
    let mut grants: Vec<String> = plugins
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["plugin_id"] == "real-estate")
        .unwrap()["grants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g.as_str().unwrap().to_owned())
        .filter(|g| !g.starts_with("http:"))
        .collect();
    if grant_host {
        grants.push(format!("http:{}", mls.host()));
    }
    let mut config = json!({"url": mls.url(), "token_url": mls.token_url(),
                            "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET});
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            config.as_object_mut().unwrap().remove(k);
        } else {
            config[k] = v.clone();
        }
    }
    app.put(
        "/api/v1/tenant/plugins/real-estate",
        json!({"grants": grants, "config": {"mls": config}}),
    )
    .await
}

async fn sync(app: &TestApp) {
    app.post("/api/v1/plugins/real-estate/mls/sync", json!({}))
        .await
        .assert_status(202);
    app.run_jobs().await;
}

async fn status(app: &TestApp) -> Value {
    let res = app.get("/api/v1/plugins/real-estate/mls/status").await;
    res.assert_status(200);
    res.body
}

/// Every listing in the CRM, through the API.
async fn listings(app: &TestApp) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/objects/listing/records?limit=200&cursor={c}"),
            None => "/api/v1/objects/listing/records?limit=200".to_owned(),
        };
        let res = app.get(&path).await;
        res.assert_status(200);
        out.extend(res.body["data"].as_array().unwrap().iter().cloned());
        match res.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return out,
        }
    }
}

fn by_key<'a>(all: &'a [Value], key: &str) -> &'a Value {
    all.iter()
        .find(|l| l["custom"]["ListingKey"] == key)
        .unwrap_or_else(|| panic!("no listing {key}"))
}

fn distinct_keys(all: &[Value]) -> usize {
    all.iter()
        .map(|l| l["custom"]["ListingKey"].as_str().unwrap().to_owned())
        .collect::<std::collections::HashSet<_>>()
        .len()
}

/// A request's query parameters, decoded.
fn params(query: &str) -> std::collections::HashMap<String, String> {
    form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

#[tokio::test]
async fn a_full_import_then_an_incremental_run_replicate_the_mls_exactly() {
    let mls = FakeReso::start(100).await.unwrap();
    // Every 30 listings share a timestamp, so groups straddle the pages.
    mls.put(generate(0, 450, base_time(), 30));
    let app = TestApp::new().await;
    edition(&app).await;
    // A buyer in Austin up to $200,000, there before the first import.
    let buyer = app
        .create(
            "/api/v1/contacts",
            json!({"first_name": "Ada", "custom": {"buyer_max_price": "200000", "buyer_cities": "Austin"}}),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // The plugin asks for 200 a page; the server gives at most 100.
    connect(&app, &mls, true, json!({"page_size": 200}))
        .await
        .assert_status(200);

    sync(&app).await;
    let all = listings(&app).await;
    assert_eq!(all.len(), 450);
    assert_eq!(distinct_keys(&all), 450, "no listing twice");
    // Short pages did not end the run: the nextLinks were followed.
    let requests = mls.requests();
    assert_eq!(requests.len(), 5, "{requests:?}");
    assert!(
        !params(&requests[0]).contains_key("$filter"),
        "a full import"
    );
    assert_eq!(params(&requests[0])["$top"], "200");
    assert!(
        requests[1..]
            .iter()
            .all(|q| params(q).contains_key("$skiptoken"))
    );
    let served = mls.served();
    assert_eq!(served.len(), 450);
    assert!(
        served.values().all(|n| *n == 1),
        "each listing fetched once"
    );

    // Values as the feed had them, in the CRM's types.
    for key in ["L0000007", "L0000212"] {
        let raw = mls.listing(key).unwrap();
        let l = &by_key(&all, key)["custom"];
        assert_eq!(l["ListPrice"], raw["ListPrice"].to_string());
        assert_eq!(l["OriginalListPrice"], raw["OriginalListPrice"].to_string());
        assert_eq!(l["Latitude"], raw["Latitude"].to_string());
        assert_eq!(l["LotSizeArea"], raw["LotSizeArea"].to_string());
        assert_eq!(l["BedroomsTotal"], raw["BedroomsTotal"]);
        assert_eq!(l["City"], raw["City"]);
        assert_eq!(l["PropertySubType"], raw["PropertySubType"]);
        let status = raw["StandardStatus"].as_str().unwrap().replace(' ', "");
        assert_eq!(l["StandardStatus"], status, "the enumeration spelling");
        let modified = raw["ModificationTimestamp"].as_str().unwrap();
        assert_eq!(l["ModificationTimestamp"], modified.replace(".000Z", "Z"));
        assert_eq!(l["ListOfficeKey"], raw["ListOfficeKey"]);
        assert_eq!(l["GarageYN"], raw["GarageYN"]);
        assert!(
            l.get("ListOfficeName").is_none(),
            "fields the object lacks are left out"
        );
    }
    let st = status(&app).await;
    assert_eq!(st["last_run"]["outcome"], "done", "{st}");
    assert_eq!(st["last_run"]["counts"]["created"], 450);
    assert_eq!(st["position"]["key"], "L0000449");
    assert_eq!(st["initial_done"], true);
    assert!(st["run"].is_null());
    assert!(
        tasks_for(&app, &buyer).await.is_empty(),
        "the first import does not task agents about the whole inventory"
    );

    // Between runs: a price cut into Ada's budget, a sale, a new listing,
    // all modified at the same instant.
    mls.reset_counters();
    let later = mls.newest().unwrap() + Duration::minutes(5);
    let cut = (0..450)
        .map(|i| format!("L{i:07}"))
        .find(|k| {
            let l = mls.listing(k).unwrap();
            l["City"] == "Austin"
                && l["StandardStatus"] == "Active"
                && l["ListPrice"].as_i64().unwrap() > 200_000
        })
        .unwrap();
    assert!(mls.modify(&cut, later, |l| l["ListPrice"] = json!(199_500)));
    assert!(mls.modify("L0000003", later, |l| {
        l["StandardStatus"] = json!("Closed");
        l["ClosePrice"] = json!(301_250.5);
    }));
    let mut new = generate(900, 1, later, 1).remove(0);
    new["City"] = json!("Austin");
    new["StandardStatus"] = json!("Active");
    new["ListPrice"] = json!(185_000);
    new["ModificationTimestamp"] = json!(trellis_fake_reso::timestamp(later));
    mls.put([new]);

    sync(&app).await;
    let requests = mls.requests();
    let first = params(&requests[0]);
    assert_eq!(
        first["$filter"],
        "ModificationTimestamp gt 2026-11-01T00:00:14.000Z or (ModificationTimestamp eq 2026-11-01T00:00:14.000Z and ListingKey gt 'L0000449')",
        "the next run asks only for what came after the saved position"
    );
    let served = mls.served();
    assert_eq!(served.len(), 3, "{served:?}");
    assert!(served.values().all(|n| *n == 1));
    let st = status(&app).await;
    let counts = &st["last_run"]["counts"];
    assert_eq!(
        (
            counts["fetched"].as_u64(),
            counts["created"].as_u64(),
            counts["updated"].as_u64()
        ),
        (Some(3), Some(1), Some(2)),
        "{st}"
    );
    let all = listings(&app).await;
    assert_eq!(all.len(), 451);
    assert_eq!(distinct_keys(&all), 451);
    assert_eq!(by_key(&all, &cut)["custom"]["ListPrice"], "199500");
    assert_ne!(by_key(&all, &cut)["custom"]["OriginalListPrice"], "199500");
    assert_eq!(
        by_key(&all, "L0000003")["custom"]["StandardStatus"],
        "Closed"
    );
    assert_eq!(by_key(&all, "L0000003")["custom"]["ClosePrice"], "301250.5");
    // Replication changes find buyers: Ada's agent hears of the cut and the
    // new listing, once each.
    let tasks = tasks_for(&app, &buyer).await;
    assert_eq!(tasks.len(), 2, "{tasks:?}");
    sync(&app).await;
    assert_eq!(
        tasks_for(&app, &buyer).await.len(),
        2,
        "a run with no changes tasks nobody"
    );
    assert_eq!(status(&app).await["last_run"]["counts"]["fetched"], 0);
}

#[tokio::test]
async fn rate_limits_and_outages_are_waited_out_and_a_broken_run_resumes_where_it_stood() {
    let mls = FakeReso::start(50).await.unwrap();
    mls.put(generate(0, 200, base_time(), 1));
    let app = TestApp::new().await;
    edition(&app).await;
    connect(&app, &mls, true, json!({"page_size": 50}))
        .await
        .assert_status(200);
    // The waiting continuation (not the schedule's next tick) comes due.
    let make_due = "UPDATE jobs SET run_at = created_at WHERE name = 'mls-sync' AND status = 'queued' \
                    AND CAST(payload AS TEXT) LIKE '%\"run\"%'";

    // One page, then 429 with Retry-After: the run waits, it does not fail.
    mls.fail_after(1, Failure::TooManyRequests { retry_after: 7 });
    sync(&app).await;
    assert_eq!(listings(&app).await.len(), 50);
    let st = status(&app).await;
    assert!(st["run"]["next_link"].is_string(), "{st}");
    assert!(st["last_error"].as_str().unwrap().contains("429"), "{st}");
    app.run_jobs().await;
    assert_eq!(listings(&app).await.len(), 50, "not before Retry-After");

    // Then the server fails: the continuation waits again.
    mls.fail_next(Failure::Status(503));
    app.sql(make_due).await;
    app.run_jobs().await;
    assert_eq!(listings(&app).await.len(), 50);
    assert!(
        status(&app).await["last_error"]
            .as_str()
            .unwrap()
            .contains("503")
    );

    // It answers again, but with a broken page: the run gives up...
    mls.fail_next(Failure::BrokenJson);
    app.sql(make_due).await;
    app.run_jobs().await;
    let st = status(&app).await;
    assert_eq!(st["last_run"]["outcome"], "failed", "{st}");
    assert!(st["last_error"].as_str().unwrap().contains("JSON"), "{st}");
    assert!(st["run"].is_null());
    assert_eq!(st["position"]["key"], "L0000049");
    let logs = app.get("/api/v1/tenant/plugins/real-estate/logs").await;
    assert!(
        logs.body.to_string().contains("MLS replication stopped"),
        "{}",
        logs.body
    );
    // ...and the plugin is not disabled for it.
    let plugins = app.get("/api/v1/tenant/plugins").await;
    let me = plugins
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["plugin_id"] == "real-estate")
        .unwrap()
        .clone();
    assert_eq!(me["enabled"], true, "{me}");
    assert_eq!(me["consecutive_failures"], 0);

    // The next run starts from the saved position: nothing twice.
    let before = mls.requests().len();
    sync(&app).await;
    let resumed = params(&mls.requests()[before]);
    assert!(
        resumed["$filter"].contains("ListingKey gt 'L0000049'"),
        "{resumed:?}"
    );
    let all = listings(&app).await;
    assert_eq!(all.len(), 200);
    assert_eq!(distinct_keys(&all), 200);
    let served = mls.served();
    assert_eq!(served.len(), 200);
    assert!(
        served.values().all(|n| *n == 1),
        "no page fetched twice: {served:?}"
    );
    assert_eq!(status(&app).await["last_run"]["outcome"], "done");
}

#[tokio::test]
async fn a_keyset_only_server_is_paged_by_position_and_equal_timestamps_are_not_lost() {
    // No nextLinks, and 25 listings per timestamp across 10-listing pages.
    let mls = FakeReso::start(10).await.unwrap();
    mls.set_next_links(false);
    mls.put(generate(0, 75, base_time(), 25));
    let app = TestApp::new().await;
    edition(&app).await;
    // Without a token endpoint the server refuses (401), and the run says so.
    connect(
        &app,
        &mls,
        true,
        json!({"page_size": 10, "token_url": null, "client_id": null, "client_secret": null}),
    )
    .await
    .assert_status(200);
    sync(&app).await;
    let st = status(&app).await;
    assert!(
        st["last_error"].as_str().unwrap().contains("answered 401"),
        "{st}"
    );
    assert!(listings(&app).await.is_empty());
    mls.reset_counters();
    connect(&app, &mls, true, json!({"page_size": 10}))
        .await
        .assert_status(200);
    sync(&app).await;
    let all = listings(&app).await;
    assert_eq!(all.len(), 75);
    assert_eq!(distinct_keys(&all), 75);
    let requests = mls.requests();
    // 8 pages: 7 full, then the short last one ends the run.
    assert_eq!(requests.len(), 8, "{requests:?}");
    let third = params(&requests[2]);
    assert!(
        third["$filter"].contains(
            "ModificationTimestamp eq 2026-11-01T00:00:00.000Z and ListingKey gt 'L0000019'"
        ),
        "{third:?}"
    );
}

#[tokio::test]
async fn the_client_secret_is_sealed_and_misconfiguration_is_reported() {
    let mls = FakeReso::start(100).await.unwrap();
    mls.put(generate(0, 20, base_time(), 1));
    let app = TestApp::new().await;
    edition(&app).await;
    app.post("/api/v1/plugins/real-estate/mls/sync", json!({}))
        .await
        .assert_status(409);
    // Bad configuration is refused, naming the field.
    let bad = connect(&app, &mls, true, json!({"url": "ftp://mls.example"})).await;
    bad.assert_problem(422, "validation_failed");
    assert_eq!(bad.error_fields(), ["config.mls.url"]);

    // The host not granted: the run stops and says why.
    connect(&app, &mls, false, json!({}))
        .await
        .assert_status(200);
    sync(&app).await;
    let st = status(&app).await;
    assert!(
        st["last_error"].as_str().unwrap().contains("not granted"),
        "{st}"
    );
    assert!(listings(&app).await.is_empty());

    // A wrong secret: refused by the token endpoint, reported.
    connect(&app, &mls, true, json!({"client_secret": "wrong"}))
        .await
        .assert_status(200);
    sync(&app).await;
    let st = status(&app).await;
    assert!(
        st["last_error"]
            .as_str()
            .unwrap()
            .contains("refused the client credentials"),
        "{st}"
    );

    // The right one is stored sealed and never shown again...
    let shown = connect(&app, &mls, true, json!({})).await;
    shown.assert_status(200);
    assert_eq!(shown.body["config"]["mls"]["client_secret"], "********");
    assert_eq!(shown.body["config"]["mls"]["client_id"], CLIENT_ID);
    let stored = app
        .sql_count(&format!(
            "SELECT COUNT(*) AS n FROM tenant_plugins WHERE CAST(config AS TEXT) LIKE '%{CLIENT_SECRET}%'"
        ))
        .await;
    assert_eq!(stored, 0, "not in plaintext at rest");
    let audit = app.get("/api/v1/audit?object_type=plugin&limit=50").await;
    audit.assert_status(200);
    assert!(
        !audit.body.to_string().contains(CLIENT_SECRET),
        "nor in the audit trail"
    );
    assert!(
        !app.get("/api/v1/tenant/plugins")
            .await
            .body
            .to_string()
            .contains(CLIENT_SECRET)
    );
    // ...and sending the mask back (say, from the settings form) keeps it.
    connect(
        &app,
        &mls,
        true,
        json!({"client_secret": "********", "page_size": 7}),
    )
    .await
    .assert_status(200);
    sync(&app).await;
    assert_eq!(listings(&app).await.len(), 20);
    assert!(mls.tokens_issued() >= 1);
    assert_eq!(status(&app).await["last_run"]["outcome"], "done");
}
