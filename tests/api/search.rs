use serde_json::json;

use crate::support::TestApp;

#[tokio::test]
async fn search_finds_contacts_accounts_and_deals_by_fragments_ranked() {
    let app = TestApp::new().await;
    app.sales_pipeline().await;
    let ada = app
        .create(
            "/api/v1/contacts",
            json!({"first_name": "Ada", "last_name": "Lovelace", "emails": [{"address": "countess@analytical.example"}], "phones": [{"number": "+44 (20) 7946-0958"}]}),
        )
        .await;
    app.create("/api/v1/contacts", json!({"first_name": "Charles", "last_name": "Babbage", "job_title": "Engineer at Lovelace Labs"}))
        .await;
    let acct = app
        .create(
            "/api/v1/accounts",
            json!({"name": "Analytical Engines", "domain": "engines.example"}),
        )
        .await;
    app.create(
        "/api/v1/deals",
        json!({"name": "Difference engine", "amount": "10000", "currency": "GBP"}),
    )
    .await;

    let hits = |q: &'static str| {
        let app = &app;
        async move {
            let res = app.get(&format!("/api/v1/search?q={q}")).await;
            res.assert_status(200);
            res.body.as_array().unwrap().clone()
        }
    };
    // A name fragment; the title match ranks above the body match.
    let h = hits("lovel").await;
    assert_eq!(h.len(), 2, "{h:?}");
    assert_eq!(h[0]["id"], ada["id"]);
    assert_eq!(h[0]["object_type"], "contact");
    // Several fragments must all match.
    assert_eq!(hits("ada%20lov").await.len(), 1);
    // Email, phone, domain.
    assert_eq!(hits("countess").await[0]["id"], ada["id"]);
    assert_eq!(hits("7946").await[0]["id"], ada["id"]);
    assert_eq!(hits("engines.example").await[0]["id"], acct["id"]);
    // Across types.
    let kinds: Vec<_> = hits("engine")
        .await
        .iter()
        .map(|h| h["object_type"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        kinds.contains(&"account".to_owned()) && kinds.contains(&"deal".to_owned()),
        "{kinds:?}"
    );
    let res = app.get("/api/v1/search?q=engine&types=deal").await;
    assert!(
        res.body
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["object_type"] == "deal")
    );
    // Operators are plain text, not syntax.
    assert!(hits("%22%20OR%20*").await.is_empty());

    // The index follows updates and deletes.
    let path = format!("/api/v1/contacts/{}", ada["id"].as_str().unwrap());
    app.patch(&path, json!({"version": 1, "last_name": "King"}))
        .await
        .assert_status(200);
    assert_eq!(hits("lovel").await.len(), 1);
    assert_eq!(hits("king").await[0]["id"], ada["id"]);
    app.delete(&path).await.assert_status(204);
    assert!(hits("king").await.is_empty());

    app.get("/api/v1/search?q=x&types=widget")
        .await
        .assert_problem(422, "validation_failed");
}
