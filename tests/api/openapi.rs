use axum::http::Method;

use crate::support::TestApp;

#[tokio::test]
async fn every_route_is_documented_and_every_documented_route_exists() {
    let app = TestApp::new().await;
    let res = app
        .send(Method::GET, "/api/openapi.json", None, None, &[])
        .await;
    res.assert_status(200);
    let doc = res.body;
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().unwrap();

    let expected = [
        ("get", "/api/v1/contacts"),
        ("post", "/api/v1/contacts"),
        ("get", "/api/v1/contacts/{id}"),
        ("patch", "/api/v1/contacts/{id}"),
        ("delete", "/api/v1/contacts/{id}"),
        ("post", "/api/v1/contacts/bulk"),
        ("get", "/api/v1/contacts/{id}/timeline"),
        ("get", "/api/v1/contacts/{id}/accounts"),
        ("post", "/api/v1/contacts/{id}/accounts"),
        ("delete", "/api/v1/contacts/{id}/accounts/{account_id}"),
        ("get", "/api/v1/contacts/{id}/relationships"),
        ("post", "/api/v1/contacts/{id}/relationships"),
        (
            "delete",
            "/api/v1/contacts/{id}/relationships/{relationship_id}",
        ),
        ("get", "/api/v1/accounts"),
        ("post", "/api/v1/accounts"),
        ("get", "/api/v1/accounts/{id}"),
        ("patch", "/api/v1/accounts/{id}"),
        ("delete", "/api/v1/accounts/{id}"),
        ("post", "/api/v1/accounts/bulk"),
        ("get", "/api/v1/accounts/{id}/timeline"),
        ("get", "/api/v1/accounts/{id}/hierarchy"),
        ("get", "/api/v1/deals"),
        ("post", "/api/v1/deals"),
        ("get", "/api/v1/deals/{id}"),
        ("patch", "/api/v1/deals/{id}"),
        ("delete", "/api/v1/deals/{id}"),
        ("post", "/api/v1/deals/bulk"),
        ("get", "/api/v1/deals/{id}/timeline"),
        ("post", "/api/v1/deals/{id}/move"),
        ("get", "/api/v1/deals/{id}/stage-history"),
        ("get", "/api/v1/activities"),
        ("post", "/api/v1/activities"),
        ("get", "/api/v1/activities/{id}"),
        ("patch", "/api/v1/activities/{id}"),
        ("delete", "/api/v1/activities/{id}"),
        ("post", "/api/v1/activities/bulk"),
        ("get", "/api/v1/pipelines"),
        ("post", "/api/v1/pipelines"),
        ("get", "/api/v1/pipelines/{id}"),
        ("put", "/api/v1/pipelines/{id}"),
        ("delete", "/api/v1/pipelines/{id}"),
        ("get", "/api/v1/custom-fields"),
        ("post", "/api/v1/custom-fields"),
        ("get", "/api/v1/custom-fields/{id}"),
        ("put", "/api/v1/custom-fields/{id}"),
        ("delete", "/api/v1/custom-fields/{id}"),
        ("get", "/api/v1/schemas/{object_type}"),
        ("get", "/api/v1/search"),
        ("get", "/api/health"),
        ("get", "/.well-known/jwks.json"),
        ("post", "/api/v1/auth/login"),
        ("post", "/api/v1/auth/logout"),
        ("get", "/api/v1/auth/me"),
        ("get", "/api/v1/auth/sessions"),
        ("delete", "/api/v1/auth/sessions/{id}"),
        ("post", "/api/v1/auth/mfa/enroll"),
        ("post", "/api/v1/auth/mfa/activate"),
        ("post", "/api/v1/auth/password-reset"),
        ("post", "/api/v1/auth/password-reset/confirm"),
        ("post", "/api/v1/auth/accept-invitation"),
        ("get", "/api/v1/api-keys"),
        ("post", "/api/v1/api-keys"),
        ("delete", "/api/v1/api-keys/{id}"),
        ("get", "/api/v1/users"),
        ("post", "/api/v1/users"),
        ("patch", "/api/v1/users/{id}"),
        ("delete", "/api/v1/users/{id}/sessions"),
        ("get", "/api/v1/roles"),
        ("put", "/api/v1/roles"),
        ("delete", "/api/v1/roles/{key}"),
        ("get", "/api/v1/teams"),
        ("post", "/api/v1/teams"),
        ("put", "/api/v1/teams/{id}"),
        ("delete", "/api/v1/teams/{id}"),
        ("get", "/api/v1/tenant"),
        ("patch", "/api/v1/tenant"),
        ("get", "/api/v1/audit"),
        ("get", "/api/v1/audit/export"),
        ("get", "/api/v1/audit/verify"),
        ("get", "/api/v1/platform/resellers"),
        ("post", "/api/v1/platform/resellers"),
        ("get", "/api/v1/platform/tenants"),
        ("post", "/api/v1/platform/tenants"),
        ("patch", "/api/v1/platform/tenants/{id}"),
        ("get", "/api/v1/contacts/{id}/personal-data"),
        ("post", "/api/v1/contacts/{id}/erase"),
        ("put", "/api/v1/contacts/{id}/legal-hold"),
        ("get", "/api/v1/contacts/{id}/consents"),
        ("post", "/api/v1/contacts/{id}/consents"),
        ("post", "/api/v1/platform/plugins"),
        ("get", "/api/v1/platform/plugins"),
        ("delete", "/api/v1/platform/plugins/{plugin_id}/{version}"),
        ("get", "/api/v1/tenant/plugins/available"),
        ("get", "/api/v1/tenant/plugins"),
        ("put", "/api/v1/tenant/plugins/{plugin_id}"),
        ("delete", "/api/v1/tenant/plugins/{plugin_id}"),
        ("get", "/api/v1/tenant/plugins/{plugin_id}/logs"),
        ("get", "/api/v1/contacts/{id}/panels"),
        ("get", "/api/v1/accounts/{id}/panels"),
        ("get", "/api/v1/deals/{id}/panels"),
        ("get", "/api/v1/activities/{id}/panels"),
        ("get", "/api/v1/objects/{key}/records/{id}/panels"),
        ("get", "/api/v1/editions"),
        ("post", "/api/v1/tenant/edition"),
        ("get", "/api/v1/tenant/usage"),
        ("get", "/api/v1/contacts/export"),
        ("get", "/api/v1/accounts/export"),
        ("get", "/api/v1/deals/export"),
        ("get", "/api/v1/activities/export"),
        ("get", "/api/v1/objects"),
        ("get", "/api/v1/objects/{key}"),
        ("put", "/api/v1/objects/{key}"),
        ("get", "/api/v1/objects/{key}/records"),
        ("post", "/api/v1/objects/{key}/records"),
        ("get", "/api/v1/objects/{key}/records/{id}"),
        ("patch", "/api/v1/objects/{key}/records/{id}"),
        ("delete", "/api/v1/objects/{key}/records/{id}"),
        ("get", "/api/v1/tenant/support-access"),
        ("put", "/api/v1/tenant/support-access"),
        ("delete", "/api/v1/tenant/support-access"),
        ("get", "/api/v1/imports"),
        ("post", "/api/v1/imports"),
        ("get", "/api/v1/imports/{id}"),
        ("post", "/api/v1/imports/{id}/start"),
        ("post", "/api/v1/imports/{id}/cancel"),
        ("get", "/api/v1/imports/{id}/rejects"),
        ("get", "/api/v1/imports/{id}/errors-file"),
        ("get", "/api/v1/imports/fields/{object}"),
        ("get", "/api/v1/import-templates"),
        ("post", "/api/v1/import-templates"),
        ("delete", "/api/v1/import-templates/{id}"),
        ("get", "/api/v1/contacts/{id}/duplicates"),
        ("get", "/api/v1/accounts/{id}/duplicates"),
        ("post", "/api/v1/contacts/merge"),
        ("post", "/api/v1/accounts/merge"),
        ("get", "/api/v1/merges"),
        ("get", "/api/v1/merges/{id}"),
        ("post", "/api/v1/merges/{id}/undo"),
        ("post", "/api/v1/duplicates/scan"),
        ("get", "/api/v1/duplicates"),
        ("post", "/api/v1/duplicates/{id}/dismiss"),
        ("post", "/api/v1/contacts/bulk-actions"),
        ("post", "/api/v1/accounts/bulk-actions"),
        ("post", "/api/v1/deals/bulk-actions"),
        ("post", "/api/v1/activities/bulk-actions"),
        ("get", "/api/v1/bulk-actions/{id}"),
        ("post", "/api/v1/bulk-actions/{id}/cancel"),
        ("post", "/api/v1/bulk-actions/{id}/restore"),
        ("get", "/api/v1/trash"),
        ("post", "/api/v1/trash/restore"),
    ];
    let mut documented = Vec::new();
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                documented.push((method.clone(), path.clone()));
            }
        }
    }
    for (m, p) in expected {
        assert!(
            documented.contains(&(m.to_owned(), p.to_owned())),
            "{m} {p} is not in the OpenAPI document"
        );
    }
    assert_eq!(
        documented.len(),
        expected.len(),
        "documented routes the test does not know: {documented:?}"
    );

    // Every documented operation is served: without a token it is refused
    // for lack of credentials, not as an unknown route or method.
    for (method, path) in &documented {
        let concrete = path
            .replace("{object_type}", "contact")
            .replace(['{', '}'], "")
            .replace("relationship_id", "0190a0a0-0000-7000-8000-000000000001")
            .replace("account_id", "0190a0a0-0000-7000-8000-000000000002")
            .replace("/id", "/0190a0a0-0000-7000-8000-000000000003");
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let res = app.send(method.clone(), &concrete, None, None, &[]).await;
        // Public routes answer without credentials: the health check and
        // key set with 200, the sign-in forms with 415 for the missing body.
        let allowed = match path.as_str() {
            "/api/health" | "/.well-known/jwks.json" => 200,
            "/api/v1/auth/login"
            | "/api/v1/auth/password-reset"
            | "/api/v1/auth/password-reset/confirm"
            | "/api/v1/auth/accept-invitation" => 415,
            _ => 401,
        };
        assert_eq!(
            res.status.as_u16(),
            allowed,
            "{method} {concrete}: {}",
            res.body
        );
    }
}
