//! Resellers, plans and their limits, suspension and custom domains.

use axum::http::Method;
use serde_json::json;

use crate::support::TestApp;

const PW: &str = "correct horse battery staple";

#[tokio::test]
async fn resellers_manage_only_their_own_tenants_and_see_nothing_inside() {
    let app = TestApp::new().await;
    let platform = app.operator(None).await;
    let op = |key: &str, m: Method, p: &str, b: Option<serde_json::Value>| {
        let (app, key, p) = (&app, key.to_owned(), p.to_owned());
        async move { app.send(m, &p, Some(&key), b, &[]).await }
    };
    for slug in ["acme-resale", "other-resale"] {
        op(
            &platform,
            Method::POST,
            "/api/v1/platform/resellers",
            Some(json!({"slug": slug, "name": slug})),
        )
        .await
        .assert_status(201);
    }
    let acme = app.operator(Some("acme-resale")).await;
    let other = app.operator(Some("other-resale")).await;
    // Resellers cannot manage resellers.
    op(
        &acme,
        Method::POST,
        "/api/v1/platform/resellers",
        Some(json!({"slug": "mine", "name": "x"})),
    )
    .await
    .assert_problem(403, "forbidden");
    let t = op(
        &acme,
        Method::POST,
        "/api/v1/platform/tenants",
        Some(json!({"slug": "clinic", "name": "Clinic", "admin_email": "boss@clinic.test", "plan": "professional"})),
    )
    .await;
    t.assert_status(201);
    assert_eq!(t.body["plan"], "professional");
    assert_eq!(t.body["limits"]["contacts"], 10_000);
    let tid = t.body["id"].as_str().unwrap().to_owned();
    // The other reseller neither lists nor touches it.
    let listed = op(&other, Method::GET, "/api/v1/platform/tenants", None).await;
    assert!(listed.body.as_array().unwrap().is_empty());
    op(
        &other,
        Method::PATCH,
        &format!("/api/v1/platform/tenants/{tid}"),
        Some(json!({"status": "suspended"})),
    )
    .await
    .assert_problem(404, "not_found");
    // Operator keys are not tenant credentials.
    op(&acme, Method::GET, "/api/v1/contacts", None)
        .await
        .assert_problem(401, "unauthenticated");
    app.send(
        Method::GET,
        "/api/v1/platform/tenants",
        Some(&app.token),
        None,
        &[],
    )
    .await
    .assert_problem(401, "unauthenticated");

    // The invited admin signs in; suspension shuts the tenant out.
    app.accept_invitation("boss@clinic.test", PW).await;
    let login = app
        .send(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"email": "boss@clinic.test", "password": PW, "tenant": "clinic"})),
            &[],
        )
        .await;
    login.assert_status(200);
    let jwt = login.body["access_token"].as_str().unwrap().to_owned();
    app.send(Method::GET, "/api/v1/contacts", Some(&jwt), None, &[])
        .await
        .assert_status(200);
    op(
        &acme,
        Method::PATCH,
        &format!("/api/v1/platform/tenants/{tid}"),
        Some(json!({"status": "suspended"})),
    )
    .await
    .assert_status(200);
    app.send(Method::GET, "/api/v1/contacts", Some(&jwt), None, &[])
        .await
        .assert_problem(403, "tenant_suspended");
    app.public_post(
        "/api/v1/auth/login",
        json!({"email": "boss@clinic.test", "password": PW, "tenant": "clinic"}),
    )
    .await
    .assert_problem(403, "tenant_suspended");
}

#[tokio::test]
async fn a_custom_domain_addresses_its_tenant_and_rejects_others_credentials() {
    let app = TestApp::new().await;
    let platform = app.operator(None).await;
    let t = app
        .send(
            Method::POST,
            "/api/v1/platform/tenants",
            Some(&platform),
            Some(json!({"slug": "brand", "name": "Brand", "admin_email": "a@brand.test", "hostname": "crm.brand.example"})),
            &[],
        )
        .await;
    t.assert_status(201);
    app.accept_invitation("a@brand.test", PW).await;
    // No tenant named: the host decides.
    let login = app
        .send(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"email": "a@brand.test", "password": PW})),
            &[("host", "crm.brand.example:443")],
        )
        .await;
    login.assert_status(200);
    // The default tenant's key is refused on the brand's domain.
    app.send(
        Method::GET,
        "/api/v1/contacts",
        Some(&app.token),
        None,
        &[("host", "crm.brand.example")],
    )
    .await
    .assert_problem(401, "unauthenticated");
    // Nobody may claim the platform's own hostname (`public_url`).
    let platform_host = app
        .state
        .config
        .public_url
        .split("://")
        .nth(1)
        .unwrap()
        .split([':', '/'])
        .next()
        .unwrap()
        .to_owned();
    let res = app
        .send(
            Method::PATCH,
            &format!(
                "/api/v1/platform/tenants/{}",
                t.body["id"].as_str().unwrap()
            ),
            Some(&platform),
            Some(json!({"hostname": platform_host.to_uppercase()})),
            &[],
        )
        .await;
    res.assert_problem(422, "validation_failed");
    assert_eq!(res.error_fields(), ["hostname"]);
}

/// A tenant on `plan` with an admin key.
async fn tenant_on_plan(app: &TestApp, slug: &str, plan: &str) -> String {
    let platform = app.operator(None).await;
    let t = app
        .send(
            Method::POST,
            "/api/v1/platform/tenants",
            Some(&platform),
            Some(json!({"slug": slug, "name": slug, "admin_email": format!("admin@{slug}.test"), "plan": plan})),
            &[],
        )
        .await;
    t.assert_status(201);
    let admin = app
        .user(slug, &format!("owner@{slug}.test"), PW, &["admin"])
        .await;
    app.key_for(slug, admin, &["admin"]).await
}

#[tokio::test]
async fn plan_limits_stop_writes_whole_and_name_the_limit() {
    let app = TestApp::new().await;
    let key = tenant_on_plan(&app, "small", "starter").await;
    let items: Vec<_> = (0..999)
        .map(|i| json!({"first_name": format!("C{i}")}))
        .collect();
    app.send(
        Method::POST,
        "/api/v1/contacts/bulk",
        Some(&key),
        Some(json!({"operation": "create", "items": items})),
        &[],
    )
    .await
    .assert_status(200);
    // Two more would pass 1,000: the bulk fails whole.
    let res = app
        .send(
            Method::POST,
            "/api/v1/contacts/bulk",
            Some(&key),
            Some(
                json!({"operation": "create", "items": [{"first_name": "a"}, {"first_name": "b"}]}),
            ),
            &[],
        )
        .await;
    res.assert_problem(402, "plan_limit_reached");
    assert_eq!(res.body["limit"], "contacts");
    let count = app
        .send(
            Method::GET,
            "/api/v1/contacts?count=true&limit=1",
            Some(&key),
            None,
            &[],
        )
        .await;
    assert_eq!(count.body["total"], 999);
    app.send(
        Method::POST,
        "/api/v1/contacts",
        Some(&key),
        Some(json!({"first_name": "last"})),
        &[],
    )
    .await
    .assert_status(201);
    let over = app
        .send(
            Method::POST,
            "/api/v1/contacts",
            Some(&key),
            Some(json!({"first_name": "over"})),
            &[],
        )
        .await;
    over.assert_problem(402, "plan_limit_reached");
    // Deleting frees a seat.
    let one = app
        .send(
            Method::GET,
            "/api/v1/contacts?limit=1",
            Some(&key),
            None,
            &[],
        )
        .await;
    let id = one.body["data"][0]["id"].as_str().unwrap();
    app.send(
        Method::DELETE,
        &format!("/api/v1/contacts/{id}"),
        Some(&key),
        None,
        &[("if-match", "\"1\"")],
    )
    .await
    .assert_status(204);
    app.send(
        Method::POST,
        "/api/v1/contacts",
        Some(&key),
        Some(json!({"first_name": "again"})),
        &[],
    )
    .await
    .assert_status(201);

    // Users: the invited admin, the owner, and one more make three.
    app.send(
        Method::POST,
        "/api/v1/users",
        Some(&key),
        Some(json!({"email": "third@small.test", "name": "Third", "roles": ["sales_rep"]})),
        &[],
    )
    .await
    .assert_status(201);
    let fourth = app
        .send(
            Method::POST,
            "/api/v1/users",
            Some(&key),
            Some(json!({"email": "fourth@small.test", "name": "Fourth", "roles": ["sales_rep"]})),
            &[],
        )
        .await;
    fourth.assert_problem(402, "plan_limit_reached");
    assert_eq!(fourth.body["limit"], "users");
}

#[tokio::test]
async fn the_request_rate_is_limited_per_tenant_per_minute() {
    let app = TestApp::new().await;
    let key = tenant_on_plan(&app, "busy", "starter").await;
    let mut limited = None;
    for i in 0..260 {
        let res = app
            .send(
                Method::GET,
                "/api/v1/contacts?limit=1",
                Some(&key),
                None,
                &[],
            )
            .await;
        if res.status.as_u16() == 429 {
            limited = Some((i, res));
            break;
        }
        res.assert_status(200);
    }
    let (i, res) = limited.expect("the 121st request in a minute is refused");
    // Requests at a minute boundary may fall in two windows.
    assert!((120..=241).contains(&i), "limited after {i} requests");
    res.assert_problem(429, "rate_limited");
    assert_eq!(res.body["limit"], "api_requests_per_minute");
    assert!(res.headers.contains_key("retry-after"));
    // Other tenants are unaffected.
    app.get("/api/v1/contacts?limit=1").await.assert_status(200);
}

#[tokio::test]
async fn a_tenant_grants_its_reseller_support_access_for_a_while_and_takes_it_back() {
    let app = TestApp::new().await;
    let platform = app.operator(None).await;
    for slug in ["help-resale", "rival-resale"] {
        app.send(
            Method::POST,
            "/api/v1/platform/resellers",
            Some(&platform),
            Some(json!({"slug": slug, "name": slug})),
            &[],
        )
        .await
        .assert_status(201);
    }
    let helper = app.operator(Some("help-resale")).await;
    let rival = app.operator(Some("rival-resale")).await;
    app.send(
        Method::POST,
        "/api/v1/platform/tenants",
        Some(&helper),
        Some(json!({"slug": "client", "name": "Client", "admin_email": "boss@client.test", "plan": "custom"})),
        &[],
    )
    .await
    .assert_status(201);
    let admin = app.tenant_token("client", "admin").await;
    let inside = |key: &str, m: Method, b: Option<serde_json::Value>| {
        let (app, key) = (&app, key.to_owned());
        async move {
            app.send(
                m,
                "/api/v1/contacts",
                Some(&key),
                b,
                &[("x-trellis-tenant", "client")],
            )
            .await
        }
    };
    // Nothing inside without a grant.
    inside(&helper, Method::GET, None)
        .await
        .assert_problem(403, "forbidden");
    let as_admin = |m: Method, b: Option<serde_json::Value>| {
        let (app, admin) = (&app, admin.clone());
        async move {
            app.send(m, "/api/v1/tenant/support-access", Some(&admin), b, &[])
                .await
        }
    };
    let far = (chrono::Utc::now() + chrono::Duration::days(60)).to_rfc3339();
    let res = as_admin(Method::PUT, Some(json!({"until": far, "role": "manager"}))).await;
    res.assert_problem(422, "validation_failed");
    assert_eq!(res.error_fields(), ["until"]);
    let soon = (chrono::Utc::now() + chrono::Duration::hours(2)).to_rfc3339();
    let res = as_admin(Method::PUT, Some(json!({"until": soon, "role": "wizard"}))).await;
    assert_eq!(res.error_fields(), ["role"]);
    let granted = as_admin(Method::PUT, Some(json!({"until": soon, "role": "manager"}))).await;
    granted.assert_status(200);
    assert_eq!(granted.body["active"], true);

    // The reseller's operator now acts inside, as a manager, on the record.
    inside(&helper, Method::GET, None).await.assert_status(200);
    inside(&helper, Method::POST, Some(json!({"first_name": "Helped"})))
        .await
        .assert_status(201);
    let trail = app
        .send(
            Method::GET,
            "/api/v1/audit?object_type=contact&action=create",
            Some(&admin),
            None,
            &[],
        )
        .await;
    assert_eq!(
        trail.body["data"][0]["actor_kind"], "operator",
        "{}",
        trail.body
    );
    // Managers may not manage the tenant's settings: nor may the operator.
    app.send(
        Method::PUT,
        "/api/v1/roles",
        Some(&helper),
        Some(json!({"key": "backdoor", "name": "Backdoor"})),
        &[("x-trellis-tenant", "client")],
    )
    .await
    .assert_problem(403, "forbidden");
    // Another reseller's operator: the tenant does not exist for it.
    inside(&rival, Method::GET, None)
        .await
        .assert_problem(404, "not_found");
    // Taken back, it ends at once.
    as_admin(Method::DELETE, None).await.assert_status(200);
    inside(&helper, Method::GET, None)
        .await
        .assert_problem(403, "forbidden");
}

#[tokio::test]
async fn the_storage_limit_is_measured_and_stops_new_records_not_edits() {
    use sea_orm::{ActiveModelTrait, EntityTrait, Set};
    let app = TestApp::new().await;
    let key = tenant_on_plan(&app, "store", "starter").await;
    let as_store = |method: Method, path: &str, body: Option<serde_json::Value>| {
        let (app, key, path) = (&app, key.clone(), path.to_owned());
        async move { app.send(method, &path, Some(&key), body, &[]).await }
    };
    let usage = as_store(Method::GET, "/api/v1/tenant/usage", None).await;
    usage.assert_status(200);
    assert_eq!(usage.body["plan"], "starter");
    assert_eq!(usage.body["storage_bytes"]["limit"], 1024_i64 * 1024 * 1024);
    assert_eq!(usage.body["contacts"], json!({"used": 0, "limit": 1000}));
    assert!(usage.body["storage_measured_at"].is_string());
    let empty = usage.body["storage_bytes"]["used"].as_i64().unwrap();

    // What the tenant writes is what a measurement finds.
    let remarks = "x".repeat(200);
    let items: Vec<_> = (0..250)
        .map(|i| json!({"first_name": format!("C{i}"), "job_title": remarks}))
        .collect();
    as_store(
        Method::POST,
        "/api/v1/contacts/bulk",
        Some(json!({"operation": "create", "items": items})),
    )
    .await
    .assert_status(200);
    let tenant = trellis::entities::tenant::Entity::find()
        .all(&app.state.db)
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.slug == "store")
        .unwrap();
    let grown = trellis::tenancy::storage::measure(&app.state.db, tenant.id)
        .await
        .unwrap();
    assert!(
        grown - empty >= 250 * 200,
        "{empty} bytes, then {grown} after 50 kB of titles"
    );
    // Another tenant's data is not counted.
    let (default, _) = trellis::crm::tenants::ensure_default(&app.state.db)
        .await
        .unwrap();
    let before = trellis::tenancy::storage::measure(&app.state.db, default.id)
        .await
        .unwrap();
    assert!(before < grown, "{before} vs {grown}");

    // A measurement that reached the plan's gigabyte stops new records.
    let mut full: trellis::entities::tenant::ActiveModel = tenant.clone().into();
    full.storage_bytes = Set(1024 * 1024 * 1024);
    full.storage_measured_at = Set(Some(chrono::Utc::now()));
    full.update(&app.state.db).await.unwrap();
    app.state.caches.tenants.remove(&tenant.id);
    let res = as_store(
        Method::POST,
        "/api/v1/contacts",
        Some(json!({"first_name": "one more"})),
    )
    .await;
    res.assert_problem(402, "plan_limit_reached");
    assert_eq!(res.body["limit"], "storage_bytes");
    let res = as_store(
        Method::POST,
        "/api/v1/deals/bulk",
        Some(json!({"operation": "create", "items": [{"name": "d"}]})),
    )
    .await;
    assert_eq!(res.status, 402, "{}", res.body);
    let count = as_store(Method::GET, "/api/v1/contacts?count=true&limit=1", None).await;
    assert_eq!(count.body["total"], 250, "nothing was written");
    // Edits and deletes still work: they are how a tenant makes room.
    let id = count.body["data"][0]["id"].as_str().unwrap();
    app.send(
        Method::PATCH,
        &format!("/api/v1/contacts/{id}"),
        Some(&key),
        Some(json!({"job_title": "short"})),
        &[("if-match", "\"1\"")],
    )
    .await
    .assert_status(200);
    app.send(
        Method::DELETE,
        &format!("/api/v1/contacts/{id}"),
        Some(&key),
        None,
        &[("if-match", "\"2\"")],
    )
    .await
    .assert_status(204);

    // The next measurement (due an hour after the last) finds the truth,
    // and new records are welcome again.
    let mut stale: trellis::entities::tenant::ActiveModel =
        trellis::entities::tenant::Entity::find_by_id(tenant.id)
            .one(&app.state.db)
            .await
            .unwrap()
            .unwrap()
            .into();
    stale.storage_measured_at = Set(Some(chrono::Utc::now() - chrono::Duration::hours(2)));
    stale.update(&app.state.db).await.unwrap();
    let measured = trellis::tenancy::storage::measure_due(&app.state.db, 100)
        .await
        .unwrap();
    assert!(measured >= 1);
    assert_eq!(
        trellis::tenancy::storage::measure_due(&app.state.db, 100)
            .await
            .unwrap(),
        0,
        "measured once per hour"
    );
    app.state.caches.tenants.remove(&tenant.id);
    as_store(
        Method::POST,
        "/api/v1/contacts",
        Some(json!({"first_name": "room again"})),
    )
    .await
    .assert_status(201);
    let usage = as_store(Method::GET, "/api/v1/tenant/usage", None).await;
    let used = usage.body["storage_bytes"]["used"].as_i64().unwrap();
    assert!(used < 1024 * 1024, "{used}");
    assert_eq!(usage.body["contacts"]["used"], 250);
}
