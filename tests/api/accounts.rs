use serde_json::json;

use crate::support::TestApp;

#[tokio::test]
async fn account_hierarchy_rejects_cycles_and_shows_the_tree() {
    let app = TestApp::new().await;
    let root = app
        .create(
            "/api/v1/accounts",
            json!({"name": "Holding", "domain": "https://www.Holding.example/"}),
        )
        .await;
    assert_eq!(root["domain"], "holding.example");
    let mid = app
        .create(
            "/api/v1/accounts",
            json!({"name": "Branch", "parent_id": root["id"]}),
        )
        .await;
    let leaf = app
        .create(
            "/api/v1/accounts",
            json!({"name": "Shop", "parent_id": mid["id"]}),
        )
        .await;

    // Root under its own grandchild: a loop.
    let res = app
        .patch(
            &format!("/api/v1/accounts/{}", root["id"].as_str().unwrap()),
            json!({"parent_id": leaf["id"], "version": 1}),
        )
        .await;
    res.assert_problem(422, "validation_failed");
    assert_eq!(res.error_fields(), vec!["parent_id"]);
    assert_eq!(res.body["errors"][0]["code"], "cycle");

    // Its own parent.
    let res = app
        .patch(
            &format!("/api/v1/accounts/{}", mid["id"].as_str().unwrap()),
            json!({"parent_id": mid["id"], "version": 1}),
        )
        .await;
    assert_eq!(res.body["errors"][0]["code"], "cycle");

    let tree = app
        .get(&format!(
            "/api/v1/accounts/{}/hierarchy",
            leaf["id"].as_str().unwrap()
        ))
        .await;
    tree.assert_status(200);
    let names: Vec<_> = tree.body["ancestors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["Holding", "Branch"]);
    let tree = app
        .get(&format!(
            "/api/v1/accounts/{}/hierarchy",
            root["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(tree.body["children"][0]["name"], "Branch");

    // A parent with children cannot be deleted.
    app.delete(&format!("/api/v1/accounts/{}", mid["id"].as_str().unwrap()))
        .await
        .assert_problem(409, "account_has_children");

    // Re-parenting to a valid place works and bumps the version.
    let res = app
        .patch(
            &format!("/api/v1/accounts/{}", leaf["id"].as_str().unwrap()),
            json!({"parent_id": root["id"], "version": 1}),
        )
        .await;
    res.assert_status(200);
    assert_eq!(res.body["parent_id"], root["id"]);
    assert_eq!(res.body["version"], 2);
}

#[tokio::test]
async fn bulk_update_reparents_many_accounts_in_one_transaction() {
    let app = TestApp::new().await;
    let parent = app
        .create("/api/v1/accounts", json!({"name": "Parent"}))
        .await;
    let created = app
        .post(
            "/api/v1/accounts/bulk",
            json!({"operation": "create", "items": [{"name": "A"}, {"name": "B"}]}),
        )
        .await;
    created.assert_status(200);
    let items: Vec<_> = created.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| json!({"id": a["id"], "version": 1, "patch": {"parent_id": parent["id"]}}))
        .collect();
    let res = app
        .post(
            "/api/v1/accounts/bulk",
            json!({"operation": "update", "items": items}),
        )
        .await;
    res.assert_status(200);
    assert_eq!(res.body["count"], 2);
    assert!(
        res.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["parent_id"] == parent["id"] && a["version"] == 2)
    );
}

#[tokio::test]
async fn moving_a_subtree_counts_its_own_depth() {
    let app = TestApp::new().await;
    let mut chains = Vec::new();
    for chain in ["a", "b"] {
        let mut parent = serde_json::Value::Null;
        let mut ids = Vec::new();
        for level in 0..20 {
            let acc = app
                .create(
                    "/api/v1/accounts",
                    json!({"name": format!("{chain}{level}"), "parent_id": parent}),
                )
                .await;
            parent = acc["id"].clone();
            ids.push(parent.clone());
        }
        chains.push(ids);
    }
    // b0 (with 19 levels below it) under a19 (with 19 above it): 40 levels.
    let res = app
        .patch(
            &format!("/api/v1/accounts/{}", chains[1][0].as_str().unwrap()),
            json!({"version": 1, "parent_id": chains[0][19]}),
        )
        .await;
    assert_eq!(res.body["errors"][0]["code"], "too_deep", "{}", res.body);
    // Under a5 it fits (6 + 20 levels).
    app.patch(
        &format!("/api/v1/accounts/{}", chains[1][0].as_str().unwrap()),
        json!({"version": 1, "parent_id": chains[0][5]}),
    )
    .await
    .assert_status(200);
}
