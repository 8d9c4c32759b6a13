use serde_json::json;

use crate::support::TestApp;

#[tokio::test]
async fn deals_keep_exact_amounts_and_record_every_stage_move() {
    let app = TestApp::new().await;
    let p = app.sales_pipeline().await;
    let stages = p["stages"].as_array().unwrap();
    let (qual, proposal, won, lost) = (
        &stages[0]["id"],
        &stages[1]["id"],
        &stages[2]["id"],
        &stages[3]["id"],
    );
    let acme = app
        .create("/api/v1/accounts", json!({"name": "Acme"}))
        .await;

    // Without pipeline or stage: the first pipeline's first stage.
    let d = app
        .create("/api/v1/deals", json!({"name": "Acme renewal", "amount": "1250.0050", "currency": "eur", "account_id": acme["id"]}))
        .await;
    assert_eq!(d["amount"], "1250.005");
    assert_eq!(d["currency"], "EUR");
    assert_eq!(d["pipeline_id"], p["id"]);
    assert_eq!(d["stage_id"], *qual);
    assert!(d["closed_at"].is_null());
    let path = format!("/api/v1/deals/{}", d["id"].as_str().unwrap());

    // Money never passes through a float.
    let res = app
        .post(
            "/api/v1/deals",
            json!({"name": "x", "amount": 0.1, "currency": "USD"}),
        )
        .await;
    assert_eq!(res.error_fields(), vec!["amount"]);
    let res = app
        .post(
            "/api/v1/deals",
            json!({"name": "x", "amount": "1.00001", "currency": "US"}),
        )
        .await;
    let mut fields = res.error_fields();
    fields.sort();
    assert_eq!(fields, vec!["amount", "currency"]);

    let moved = app
        .post(
            &format!("{path}/move"),
            json!({"stage_id": proposal, "version": 1}),
        )
        .await;
    moved.assert_status(200);
    assert_eq!(moved.body["stage_id"], *proposal);
    assert_eq!(moved.body["version"], 2);

    // A stale move is refused.
    app.post(
        &format!("{path}/move"),
        json!({"stage_id": won, "version": 1}),
    )
    .await
    .assert_problem(409, "version_conflict");
    // Lost needs a reason.
    let res = app
        .post(
            &format!("{path}/move"),
            json!({"stage_id": lost, "version": 2}),
        )
        .await;
    assert_eq!(res.error_fields(), vec!["lost_reason"]);
    let res = app
        .post(
            &format!("{path}/move"),
            json!({"stage_id": lost, "version": 2, "lost_reason": "budget cut"}),
        )
        .await;
    res.assert_status(200);
    assert_eq!(res.body["lost_reason"], "budget cut");
    assert!(res.body["closed_at"].is_string());
    let res = app
        .post(
            &format!("{path}/move"),
            json!({"stage_id": won, "version": 3}),
        )
        .await;
    res.assert_status(200);
    assert!(
        res.body["lost_reason"].is_null(),
        "a won deal has no lost reason"
    );

    let history = app.get(&format!("{path}/stage-history")).await;
    history.assert_status(200);
    let moves: Vec<_> = history
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["from_stage_id"].clone(), m["to_stage_id"].clone()))
        .collect();
    assert_eq!(
        moves,
        vec![
            (serde_json::Value::Null, qual.clone()),
            (qual.clone(), proposal.clone()),
            (proposal.clone(), lost.clone()),
            (lost.clone(), won.clone())
        ]
    );

    // A stage of another pipeline is refused unless the deal moves there.
    let other = app
        .create("/api/v1/pipelines", json!({"name": "Other", "stages": [{"name": "Open", "probability": 20, "kind": "open"}]}))
        .await;
    let res = app
        .patch(
            &path,
            json!({"version": 4, "stage_id": other["stages"][0]["id"]}),
        )
        .await;
    assert_eq!(res.error_fields(), vec!["stage_id"]);

    // Pipelines and stages holding deals cannot be removed.
    app.delete(&format!("/api/v1/pipelines/{}", p["id"].as_str().unwrap()))
        .await
        .assert_problem(409, "pipeline_in_use");
    let res = app
        .put(
            &format!("/api/v1/pipelines/{}", p["id"].as_str().unwrap()),
            json!({"version": 1, "name": "Sales", "stages": [{"id": qual, "name": "Qualification", "probability": 10, "kind": "open"}]}),
        )
        .await;
    res.assert_problem(409, "stage_in_use");
    // Renaming and re-ordering kept stages works.
    let res = app
        .put(
            &format!("/api/v1/pipelines/{}", p["id"].as_str().unwrap()),
            json!({"version": 1, "name": "New business", "stages": [
                {"id": proposal, "name": "Proposal", "probability": 60, "kind": "open"},
                {"id": qual, "name": "Qualified", "probability": 10, "kind": "open"},
                {"id": won, "name": "Won", "probability": 100, "kind": "won"},
                {"id": lost, "name": "Lost", "probability": 0, "kind": "lost"}
            ]}),
        )
        .await;
    res.assert_status(200);
    assert_eq!(res.body["stages"][0]["name"], "Proposal");
    assert_eq!(res.body["stages"][0]["probability"], 60);
    assert_eq!(res.body["version"], 2);
    // The same edit from someone holding version 1 is refused.
    let res = app
        .put(
            &format!("/api/v1/pipelines/{}", p["id"].as_str().unwrap()),
            json!({"version": 1, "name": "Stale", "stages": [{"id": qual, "name": "Q", "probability": 10, "kind": "open"}]}),
        )
        .await;
    res.assert_problem(412, "precondition_failed");
}

#[tokio::test]
async fn pipeline_definitions_are_validated() {
    let app = TestApp::new().await;
    let res = app
        .post(
            "/api/v1/pipelines",
            json!({"name": "", "stages": [
                {"name": "A", "probability": 150, "kind": "open"},
                {"name": "a", "probability": 50, "kind": "won"}
            ]}),
        )
        .await;
    res.assert_problem(422, "validation_failed");
    let fields = res.error_fields();
    for f in [
        "name",
        "stages[0].probability",
        "stages[1].probability",
        "stages[1].name",
    ] {
        assert!(
            fields.contains(&f.to_owned()),
            "{f} missing from {fields:?}"
        );
    }
    app.sales_pipeline().await;
    let res = app
        .post(
            "/api/v1/pipelines",
            json!({"name": "Sales", "stages": [{"name": "A", "probability": 1, "kind": "open"}]}),
        )
        .await;
    assert_eq!(res.error_fields(), vec!["name"]);
}

#[tokio::test]
async fn stages_pick_their_pipeline_and_keep_their_kind_while_holding_deals() {
    let app = TestApp::new().await;
    app.sales_pipeline().await;
    // Closed stages first: new deals still start in the first open stage.
    let second = app
        .create(
            "/api/v1/pipelines",
            json!({"name": "Renewals", "position": 1, "stages": [
                {"name": "Churned", "probability": 0, "kind": "lost"},
                {"name": "Upcoming", "probability": 60, "kind": "open"}
            ]}),
        )
        .await;
    let upcoming = &second["stages"][1]["id"];
    let d = app
        .create(
            "/api/v1/deals",
            json!({"name": "Renewal", "amount": "10", "currency": "USD", "stage_id": upcoming}),
        )
        .await;
    assert_eq!(
        d["pipeline_id"], second["id"],
        "the stage names its pipeline"
    );
    let d2 = app
        .create("/api/v1/deals", json!({"name": "Renewal 2", "amount": "10", "currency": "USD", "pipeline_id": second["id"]}))
        .await;
    assert_eq!(
        d2["stage_id"], *upcoming,
        "the first open stage, not the first stage"
    );

    let path = format!("/api/v1/pipelines/{}", second["id"].as_str().unwrap());
    let res = app
        .put(&path, json!({"version": 1, "name": "Renewals", "stages": [
            {"id": second["stages"][0]["id"], "name": "Churned", "probability": 0, "kind": "lost"},
            {"id": upcoming, "name": "Upcoming", "probability": 100, "kind": "won"},
            {"name": "Next", "probability": 30, "kind": "open"}
        ]}))
        .await;
    res.assert_problem(409, "stage_in_use");
    let res = app
        .put(
            &path,
            json!({"version": 1, "name": "Renewals", "stages": [
                {"id": upcoming, "name": "Upcoming", "probability": 60, "kind": "open"},
                {"id": upcoming, "name": "Again", "probability": 60, "kind": "open"}
            ]}),
        )
        .await;
    assert_eq!(res.error_fields(), vec!["stages[1].id"]);
}
