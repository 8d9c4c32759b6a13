use serde_json::json;

use crate::support::TestApp;

async fn define(app: &TestApp, body: serde_json::Value) -> serde_json::Value {
    app.create("/api/v1/custom-fields", body).await
}

#[tokio::test]
async fn custom_field_values_are_validated_on_every_write() {
    let app = TestApp::new().await;
    define(&app, json!({"object_type": "contact", "key": "score", "label": "Score", "field_type": "integer", "min": "0", "max": "100"})).await;
    define(&app, json!({"object_type": "contact", "key": "tier", "label": "Tier", "field_type": "single_select", "options": ["gold", "silver"], "default": "silver"})).await;
    define(&app, json!({"object_type": "contact", "key": "badge", "label": "Badge", "field_type": "text", "unique": true, "pattern": "[A-Z]{2}[0-9]{4}"})).await;
    define(&app, json!({"object_type": "contact", "key": "budget", "label": "Budget", "field_type": "currency"})).await;
    define(&app, json!({"object_type": "contact", "key": "member_since", "label": "Member since", "field_type": "date", "required": true})).await;
    define(&app, json!({"object_type": "contact", "key": "employer", "label": "Employer", "field_type": "reference", "reference_type": "account"})).await;

    let ok = app
        .create(
            "/api/v1/contacts",
            json!({"first_name": "Ada", "custom": {"score": 90, "badge": "AB1234", "budget": "1250.50", "member_since": "2024-02-29"}}),
        )
        .await;
    assert_eq!(
        ok["custom"],
        json!({"score": 90, "tier": "silver", "badge": "AB1234", "budget": "1250.5", "member_since": "2024-02-29"})
    );

    let res = app
        .post(
            "/api/v1/contacts",
            json!({"first_name": "Bob", "custom": {
                "score": 101, "tier": "bronze", "badge": "AB1234", "budget": 12.5, "nope": 1,
                "employer": "00000000-0000-0000-0000-0000000000aa"
            }}),
        )
        .await;
    res.assert_problem(422, "validation_failed");
    let mut fields = res.error_fields();
    fields.sort();
    assert_eq!(
        fields,
        vec![
            "custom.badge",
            "custom.budget",
            "custom.employer",
            "custom.member_since",
            "custom.nope",
            "custom.score",
            "custom.tier"
        ]
    );
    let codes: Vec<_> = res.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["code"].as_str().unwrap().to_owned())
        .collect();
    for code in [
        "too_large",
        "invalid_option",
        "unknown_field",
        "required",
        "invalid_type",
    ] {
        assert!(
            codes.contains(&code.to_owned()),
            "{code} missing from {codes:?}"
        );
    }

    // Unique holds on update too, but a record may keep its own value.
    let other = app.create("/api/v1/contacts", json!({"first_name": "Cy", "custom": {"member_since": "2020-01-01", "badge": "CD0001"}})).await;
    let res = app
        .patch(
            &format!("/api/v1/contacts/{}", other["id"].as_str().unwrap()),
            json!({"version": 1, "custom": {"badge": "AB1234"}}),
        )
        .await;
    assert_eq!(res.body["errors"][0]["code"], "not_unique");
    app.patch(
        &format!("/api/v1/contacts/{}", ok["id"].as_str().unwrap()),
        json!({"version": 1, "custom": {"score": 5}}),
    )
    .await
    .assert_status(200);
}

#[tokio::test]
async fn definitions_are_checked_and_schemas_include_custom_fields() {
    let app = TestApp::new().await;
    let res = app
        .post("/api/v1/custom-fields", json!({"object_type": "deal", "key": "Bad Key", "label": "", "field_type": "multi_select", "pattern": "("}))
        .await;
    res.assert_problem(422, "validation_failed");
    let fields = res.error_fields();
    for f in ["key", "label", "options", "pattern"] {
        assert!(
            fields.contains(&f.to_owned()),
            "{f} missing from {fields:?}"
        );
    }
    let region = define(&app, json!({"object_type": "deal", "key": "region", "label": "Region", "field_type": "multi_select", "options": ["emea", "apac"], "required": true})).await;
    app.post(
        "/api/v1/custom-fields",
        json!({"object_type": "deal", "key": "region", "label": "Again", "field_type": "text"}),
    )
    .await
    .assert_problem(422, "validation_failed");

    let schema = app.get("/api/v1/schemas/deal").await;
    schema.assert_status(200);
    let custom = &schema.body["properties"]["custom"];
    assert_eq!(custom["additionalProperties"], false);
    assert_eq!(custom["required"], json!(["region"]));
    assert_eq!(
        custom["properties"]["region"]["items"]["enum"],
        json!(["emea", "apac"])
    );
    assert!(
        schema.body["properties"]["amount"].is_object(),
        "built-in fields come from the code: {}",
        schema.body
    );
    app.get("/api/v1/schemas/widget")
        .await
        .assert_problem(404, "not_found");

    // Type and key are fixed; label can change with the version.
    let path = format!("/api/v1/custom-fields/{}", region["id"].as_str().unwrap());
    let res = app.put(&path, json!({"version": 1, "object_type": "deal", "key": "region", "label": "Regions", "field_type": "text"})).await;
    assert_eq!(res.error_fields(), vec!["field_type"]);
    let res = app
        .put(&path, json!({"version": 1, "object_type": "deal", "key": "region", "label": "Regions", "field_type": "multi_select", "options": ["emea", "apac", "amer"]}))
        .await;
    res.assert_status(200);
    assert_eq!(res.body["version"], 2);
}

#[tokio::test]
async fn deleting_a_definition_removes_its_values() {
    let app = TestApp::new().await;
    let f = define(
        &app,
        json!({"object_type": "account", "key": "tier", "label": "Tier", "field_type": "text"}),
    )
    .await;
    let a = app
        .create(
            "/api/v1/accounts",
            json!({"name": "Acme", "custom": {"tier": "gold"}}),
        )
        .await;
    let path = format!("/api/v1/custom-fields/{}", f["id"].as_str().unwrap());
    app.send(
        axum::http::Method::DELETE,
        &path,
        Some(&app.token),
        None,
        &[("if-match", "\"7\"")],
    )
    .await
    .assert_problem(412, "precondition_failed");
    app.send(
        axum::http::Method::DELETE,
        &path,
        Some(&app.token),
        None,
        &[("if-match", "\"1\"")],
    )
    .await
    .assert_status(204);
    let got = app
        .get(&format!("/api/v1/accounts/{}", a["id"].as_str().unwrap()))
        .await;
    assert_eq!(got.body["custom"], json!({}));
    // The key is free again, and old values do not come back.
    define(
        &app,
        json!({"object_type": "account", "key": "tier", "label": "Tier", "field_type": "integer"}),
    )
    .await;
    let got = app
        .get(&format!("/api/v1/accounts/{}", a["id"].as_str().unwrap()))
        .await;
    assert_eq!(got.body["custom"], json!({}));
}

#[tokio::test]
async fn text_values_are_bounded_and_long_text_is_not_indexed() {
    let app = TestApp::new().await;
    define(&app, json!({"object_type": "contact", "key": "notes", "label": "Notes", "field_type": "long_text"})).await;
    define(
        &app,
        json!({"object_type": "contact", "key": "nick", "label": "Nick", "field_type": "text"}),
    )
    .await;
    let prose = "All work and no play makes a long note. ".repeat(200);
    let c = app
        .create(
            "/api/v1/contacts",
            json!({"first_name": "Ada", "custom": {"notes": prose}}),
        )
        .await;
    assert_eq!(c["custom"]["notes"].as_str().unwrap().len(), prose.len());
    let res = app
        .post(
            "/api/v1/contacts",
            json!({"first_name": "Bob", "custom": {"nick": "n".repeat(501)}}),
        )
        .await;
    assert_eq!(res.body["errors"][0]["code"], "too_long");
    let many: Vec<_> = (0..51)
        .map(|i| json!({"address": format!("a{i}@x.example")}))
        .collect();
    let res = app
        .post(
            "/api/v1/contacts",
            json!({"first_name": "Cy", "emails": many}),
        )
        .await;
    assert_eq!(res.error_fields(), vec!["emails"]);

    let r = define(&app, json!({"object_type": "deal", "key": "buyer", "label": "Buyer", "field_type": "reference", "reference_type": "contact"})).await;
    let res = app
        .put(
            &format!("/api/v1/custom-fields/{}", r["id"].as_str().unwrap()),
            json!({"version": 1, "object_type": "deal", "key": "buyer", "label": "Buyer", "field_type": "reference", "reference_type": "account"}),
        )
        .await;
    assert_eq!(res.error_fields(), vec!["reference_type"]);
}

#[tokio::test]
async fn a_dangling_reference_does_not_block_other_edits() {
    let app = TestApp::new().await;
    define(&app, json!({"object_type": "account", "key": "champion", "label": "Champion", "field_type": "reference", "reference_type": "contact"})).await;
    let c = app
        .create("/api/v1/contacts", json!({"first_name": "Ada"}))
        .await;
    let a = app
        .create(
            "/api/v1/accounts",
            json!({"name": "Acme", "custom": {"champion": c["id"]}}),
        )
        .await;
    app.delete(&format!("/api/v1/contacts/{}", c["id"].as_str().unwrap()))
        .await
        .assert_status(204);
    let path = format!("/api/v1/accounts/{}", a["id"].as_str().unwrap());
    let res = app
        .patch(&path, json!({"version": 1, "industry": "Software"}))
        .await;
    res.assert_status(200);
    // A new value is still checked.
    let res = app
        .patch(
            &path,
            json!({"version": 2, "custom": {"champion": "0190a0a0-0000-7000-8000-000000000000"}}),
        )
        .await;
    assert_eq!(res.error_fields(), vec!["custom.champion"]);
}

#[tokio::test]
async fn a_removed_select_option_can_still_be_filtered() {
    let app = TestApp::new().await;
    let f = define(&app, json!({"object_type": "contact", "key": "tier", "label": "Tier", "field_type": "single_select", "options": ["gold", "silver"]})).await;
    app.create(
        "/api/v1/contacts",
        json!({"first_name": "Ada", "custom": {"tier": "gold"}}),
    )
    .await;
    app.put(
        &format!("/api/v1/custom-fields/{}", f["id"].as_str().unwrap()),
        json!({"version": 1, "object_type": "contact", "key": "tier", "label": "Tier", "field_type": "single_select", "options": ["silver"]}),
    )
    .await
    .assert_status(200);
    let res = app
        .get("/api/v1/contacts?filter=custom.tier:eq:gold&sort=custom.tier&count=true")
        .await;
    res.assert_status(200);
    assert_eq!(res.body["total"], 1);
    // New writes of the removed option are refused.
    let res = app
        .post(
            "/api/v1/contacts",
            json!({"first_name": "Bob", "custom": {"tier": "gold"}}),
        )
        .await;
    assert_eq!(res.body["errors"][0]["code"], "invalid_option");
}
