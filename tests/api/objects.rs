//! Custom objects: defined per tenant, records with validation, list
//! filters and paging, versions, record permissions, tenant isolation,
//! encrypted fields and the audit trail.

use axum::http::Method;
use serde_json::json;

use crate::support::TestApp;

async fn listing(app: &TestApp) {
    app.put(
        "/api/v1/objects/listing",
        json!({"label": "Listing", "plural_label": "Listings", "fields": [
            {"key": "list_price", "label": "List price", "field_type": "currency", "required": true},
            {"key": "bedrooms", "label": "Bedrooms", "field_type": "integer", "min": "0", "max": "50"},
            {"key": "city", "label": "City", "field_type": "text"},
            {"key": "status", "label": "Status", "field_type": "single_select", "options": ["Active", "Pending", "Closed"]},
            {"key": "lockbox_code", "label": "Lockbox code", "field_type": "text", "sensitive": true}
        ]}),
    )
    .await
    .assert_status(200);
}

#[tokio::test]
async fn a_custom_object_has_records_like_any_other_type() {
    let app = TestApp::new().await;
    listing(&app).await;
    let defined = app.get("/api/v1/objects").await;
    assert_eq!(defined.body[0]["key"], "listing");

    // Validation names every bad field.
    let bad = app
        .post(
            "/api/v1/objects/listing/records",
            json!({"custom": {"bedrooms": -1, "status": "Sold?"}}),
        )
        .await;
    bad.assert_problem(422, "validation_failed");
    let mut fields = bad.error_fields();
    fields.sort();
    assert_eq!(
        fields,
        ["custom.bedrooms", "custom.list_price", "custom.status"]
    );

    for (price, city, beds) in [
        ("350000", "Leeds", 3),
        ("420000", "Leeds", 4),
        ("199000", "York", 2),
        ("510000", "Leeds", 5),
    ] {
        app.create(
            "/api/v1/objects/listing/records",
            json!({"custom": {"list_price": price, "city": city, "bedrooms": beds, "status": "Active", "lockbox_code": "4417"}}),
        )
        .await;
    }
    // Filters, sort and cursor paging on its fields.
    let page = app
        .get("/api/v1/objects/listing/records?filter=custom.city:eq:Leeds&sort=-custom.list_price&limit=2&count=true")
        .await;
    page.assert_status(200);
    assert_eq!(page.body["total"], 3);
    assert_eq!(page.body["data"][0]["custom"]["list_price"], "510000");
    assert_eq!(page.body["data"][1]["custom"]["list_price"], "420000");
    let cursor = page.body["next_cursor"].as_str().unwrap();
    let next = app
        .get(&format!(
            "/api/v1/objects/listing/records?filter=custom.city:eq:Leeds&sort=-custom.list_price&limit=2&cursor={cursor}"
        ))
        .await;
    assert_eq!(next.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(next.body["data"][0]["custom"]["list_price"], "350000");
    assert!(next.body["next_cursor"].is_null());
    let cheap = app
        .get("/api/v1/objects/listing/records?filter=custom.bedrooms:lte:2")
        .await;
    assert_eq!(
        cheap.body["data"].as_array().map(Vec::len),
        Some(1),
        "{}",
        cheap.body
    );

    // Versions guard updates; values not sent stay.
    let rec = page.body["data"][0].clone();
    let id = rec["id"].as_str().unwrap();
    let path = format!("/api/v1/objects/listing/records/{id}");
    let changed = app
        .patch(
            &path,
            json!({"version": 1, "custom": {"status": "Pending"}}),
        )
        .await;
    changed.assert_status(200);
    assert_eq!(changed.body["custom"]["status"], "Pending");
    assert_eq!(changed.body["custom"]["city"], "Leeds");
    assert_eq!(changed.body["version"], 2);
    app.patch(&path, json!({"version": 1, "custom": {"status": "Closed"}}))
        .await
        .assert_problem(409, "version_conflict");

    // The sensitive field is encrypted at rest and its reads are audited.
    let got = app.get(&path).await;
    assert_eq!(got.body["custom"]["lockbox_code"], "4417");
    assert_eq!(
        app.sql_count(
            "SELECT COUNT(*) AS n FROM object_records WHERE CAST(custom AS TEXT) LIKE '%4417%'"
        )
        .await,
        0
    );
    let reads = app
        .get(&format!("/api/v1/audit?record_id={id}&action=read"))
        .await;
    assert!(!reads.body["data"].as_array().unwrap().is_empty());
    let writes = app.get(&format!("/api/v1/audit?record_id={id}")).await;
    assert!(writes.body.to_string().contains("Pending"));

    // Deleted, it is gone.
    app.delete(&path).await.assert_status(204);
    app.get(&path).await.assert_problem(404, "not_found");

    // A field added later; a field's type is fixed.
    app.put(
        "/api/v1/objects/listing",
        json!({"label": "Listing", "plural_label": "Listings", "fields": [
            {"key": "year_built", "label": "Year built", "field_type": "integer"}]}),
    )
    .await
    .assert_status(200);
    let def = app.get("/api/v1/objects/listing").await;
    assert_eq!(def.body["fields"].as_array().unwrap().len(), 6);
    let res = app
        .put(
            "/api/v1/objects/listing",
            json!({"label": "Listing", "plural_label": "Listings", "fields": [
                {"key": "city", "label": "City", "field_type": "integer"}]}),
        )
        .await;
    res.assert_problem(422, "validation_failed");
    assert_eq!(res.error_fields(), ["fields[0].field_type"]);
    app.put(
        "/api/v1/objects/contact",
        json!({"label": "X", "plural_label": "Xs", "fields": []}),
    )
    .await
    .assert_problem(422, "validation_failed");
}

#[tokio::test]
async fn custom_objects_keep_to_tenants_and_roles() {
    let app = TestApp::new().await;
    listing(&app).await;
    let rec = app
        .create(
            "/api/v1/objects/listing/records",
            json!({"custom": {"list_price": "100000"}}),
        )
        .await;
    let path = format!(
        "/api/v1/objects/listing/records/{}",
        rec["id"].as_str().unwrap()
    );
    // Another tenant: neither the object nor the record exists.
    let other = app.tenant_token("other", "admin").await;
    app.send(Method::GET, &path, Some(&other), None, &[])
        .await
        .assert_problem(404, "not_found");
    app.send(
        Method::GET,
        "/api/v1/objects/listing/records",
        Some(&other),
        None,
        &[],
    )
    .await
    .assert_problem(404, "not_found");
    // Read-only reads, and cannot write or define.
    let reader = app.role_token("read_only").await;
    app.send(Method::GET, &path, Some(&reader), None, &[])
        .await
        .assert_status(200);
    app.send(
        Method::POST,
        "/api/v1/objects/listing/records",
        Some(&reader),
        Some(json!({"custom": {"list_price": "1"}})),
        &[],
    )
    .await
    .assert_problem(403, "forbidden");
    app.send(
        Method::PUT,
        "/api/v1/objects/boat",
        Some(&reader),
        Some(json!({"label": "Boat", "plural_label": "Boats", "fields": []})),
        &[],
    )
    .await
    .assert_problem(403, "forbidden");
}

#[tokio::test]
async fn unique_fields_of_a_custom_object_hold_within_that_object() {
    let app = TestApp::new().await;
    for key in ["parcel", "permit"] {
        app.put(
            &format!("/api/v1/objects/{key}"),
            json!({"label": key, "plural_label": key, "fields": [
                {"key": "code", "label": "Code", "field_type": "text", "unique": true}
            ]}),
        )
        .await
        .assert_status(200);
    }
    let first = app
        .create(
            "/api/v1/objects/parcel/records",
            json!({"custom": {"code": "P-1"}}),
        )
        .await;
    let again = app
        .post(
            "/api/v1/objects/parcel/records",
            json!({"custom": {"code": "P-1"}}),
        )
        .await;
    again.assert_problem(422, "validation_failed");
    assert_eq!(again.error_fields(), ["custom.code"]);
    assert_eq!(again.body["errors"][0]["code"], "not_unique");
    // Another object may hold the same value; a record may keep its own.
    app.create(
        "/api/v1/objects/permit/records",
        json!({"custom": {"code": "P-1"}}),
    )
    .await;
    let second = app
        .create(
            "/api/v1/objects/parcel/records",
            json!({"custom": {"code": "P-2"}}),
        )
        .await;
    let id = first["id"].as_str().unwrap();
    app.patch(
        &format!("/api/v1/objects/parcel/records/{id}"),
        json!({"version": 1, "custom": {"code": "P-1"}}),
    )
    .await
    .assert_status(200);
    let taken = app
        .patch(
            &format!(
                "/api/v1/objects/parcel/records/{}",
                second["id"].as_str().unwrap()
            ),
            json!({"version": 1, "custom": {"code": "P-1"}}),
        )
        .await;
    taken.assert_problem(422, "validation_failed");
    assert_eq!(taken.error_fields(), ["custom.code"]);
}
