//! Editions: applying the real-estate edition, idempotently and additively,
//! by the API, on tenant creation, and with plugins.

use axum::http::Method;
use serde_json::{Value, json};
use trellis::editions::Edition;

use crate::support::TestApp;

fn names(v: &Value, key: &str) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x[key].as_str().unwrap().to_owned())
        .collect()
}

/// Applies the edition manifest `text` to the default tenant, as the CLI
/// and `serve --edition` do (a system context carrying the plugin host).
async fn apply_text(
    app: &TestApp,
    text: &str,
) -> trellis::error::Result<trellis::editions::Applied> {
    let edition = Edition::parse(text).unwrap();
    let (tenant, _) = trellis::crm::tenants::ensure_default(&app.state.db)
        .await
        .unwrap();
    let mut ctx = trellis::context::RequestContext::system(tenant.id);
    ctx.plugins = app.state.plugins.clone();
    ctx.keyring = Some(app.state.keyring.clone());
    trellis::editions::apply(&app.state, &ctx, &edition).await
}

#[tokio::test]
async fn the_real_estate_edition_applies_once_and_keeps_the_tenants_changes() {
    let app = TestApp::new().await;
    let listed = app.get("/api/v1/editions").await;
    assert_eq!(listed.body[0]["id"], "real-estate");

    let first = app
        .post("/api/v1/tenant/edition", json!({"edition": "real-estate"}))
        .await;
    first.assert_status(200);
    let created: Vec<String> = serde_json::from_value(first.body["created"].clone()).unwrap();
    for item in [
        "pipeline:Buyers",
        "pipeline:Sellers",
        "field:contact.buyer_max_price",
        "role:agent",
    ] {
        assert!(created.contains(&item.to_owned()), "{item} in {created:?}");
    }
    let pipelines = app.get("/api/v1/pipelines").await;
    let buyers = pipelines
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "Buyers")
        .unwrap()
        .clone();
    assert_eq!(
        names(&buyers["stages"], "name"),
        [
            "Lead",
            "Showing",
            "Offer",
            "Under contract",
            "Closed",
            "Lost"
        ]
    );
    // The edition's fields work like any other.
    app.create(
        "/api/v1/contacts",
        json!({"first_name": "Bea", "custom": {"buyer_max_price": "450000.00", "buyer_min_beds": 3,
               "buyer_property_types": ["Condominium"]}}),
    )
    .await;

    // The tenant changes things: renames a role, deletes a field.
    let roles = app.get("/api/v1/roles").await;
    let agent = roles
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == "agent")
        .unwrap()
        .clone();
    let mut renamed =
        json!({"key": "agent", "name": "Sales associate", "permissions": agent["permissions"]});
    renamed["field_rules"] = agent["field_rules"].clone();
    app.put("/api/v1/roles", renamed).await.assert_status(200);
    let fields = app.get("/api/v1/custom-fields").await;
    let cities = fields
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["key"] == "buyer_cities")
        .unwrap()
        .clone();
    app.delete(&format!(
        "/api/v1/custom-fields/{}",
        cities["id"].as_str().unwrap()
    ))
    .await
    .assert_status(204);

    // Applying again creates nothing and undoes none of it.
    let again = app
        .post("/api/v1/tenant/edition", json!({"edition": "real-estate"}))
        .await;
    again.assert_status(200);
    assert_eq!(again.body["created"], json!([]), "{}", again.body);
    let roles = app.get("/api/v1/roles").await;
    assert!(roles.body.to_string().contains("Sales associate"));
    let fields = app.get("/api/v1/custom-fields").await;
    assert!(!fields.body.to_string().contains("buyer_cities"));

    // A newer version adds only what is new.
    let text = trellis::editions::BUILT_IN[0].1
        .replace("version = \"0.1.0\"", "version = \"0.2.0\"")
        .replace(
            "{ name = \"Offer\", probability = 50, kind = \"open\" },",
            "{ name = \"Offer\", probability = 50, kind = \"open\" },\n  { name = \"Inspection\", probability = 60, kind = \"open\" },",
        )
        + "\n[[custom_fields]]\nobject_type = \"contact\"\nkey = \"buyer_school_district\"\nlabel = \"School district\"\nfield_type = \"long_text\"\n";
    let applied = apply_text(&app, &text).await.unwrap();
    let mut created = applied.created.clone();
    created.sort();
    assert_eq!(
        created,
        [
            "field:contact.buyer_school_district",
            "stage:Buyers/Inspection"
        ]
    );
    let pipelines = app.get("/api/v1/pipelines").await;
    assert!(pipelines.body.to_string().contains("Inspection"));
    let fields = app.get("/api/v1/custom-fields").await;
    assert!(
        !fields.body.to_string().contains("buyer_cities"),
        "a deleted field stays deleted"
    );
    // The tenant's data is untouched.
    assert_eq!(app.count_contacts().await, 1);
}

#[tokio::test]
async fn editions_need_the_rights_and_name_their_mistakes() {
    let app = TestApp::new().await;
    let res = app
        .post("/api/v1/tenant/edition", json!({"edition": "space-mining"}))
        .await;
    res.assert_problem(422, "validation_failed");
    assert_eq!(res.error_fields(), ["edition"]);
    let rep = app.role_token("sales_rep").await;
    app.send(
        Method::POST,
        "/api/v1/tenant/edition",
        Some(&rep),
        Some(json!({"edition": "real-estate"})),
        &[],
    )
    .await
    .assert_problem(403, "forbidden");
}

#[tokio::test]
async fn a_tenant_created_with_an_edition_starts_with_it_or_not_at_all() {
    let app = TestApp::new().await;
    let platform = app.operator(None).await;
    let create = |slug: &str, edition: &str| json!({"slug": slug, "name": slug, "admin_email": format!("a@{slug}.test"), "edition": edition});
    app.send(
        Method::POST,
        "/api/v1/platform/tenants",
        Some(&platform),
        Some(create("broker", "real-estate")),
        &[],
    )
    .await
    .assert_status(201);
    let key = app.tenant_token("broker", "admin").await;
    let pipelines = app
        .send(Method::GET, "/api/v1/pipelines", Some(&key), None, &[])
        .await;
    assert!(pipelines.body.to_string().contains("Sellers"));
    let res = app
        .send(
            Method::POST,
            "/api/v1/platform/tenants",
            Some(&platform),
            Some(create("nowhere", "space-mining")),
            &[],
        )
        .await;
    res.assert_problem(422, "validation_failed");
    let tenants = app
        .send(
            Method::GET,
            "/api/v1/platform/tenants",
            Some(&platform),
            None,
            &[],
        )
        .await;
    assert!(!tenants.body.to_string().contains("nowhere"));
}

#[tokio::test]
async fn an_edition_enables_its_plugins_with_their_grants() {
    let app = TestApp::new().await;
    let text = "id = \"demo\"\nname = \"Demo\"\nversion = \"1.0.0\"\n\n[[plugins]]\nid = \"showcase\"\nconfig = { greeting = \"hello\" }\n";
    let err = apply_text(&app, text).await.unwrap_err();
    assert!(err.to_string().contains("showcase"), "{err}");
    app.install_plugin("showcase", |m| m)
        .await
        .assert_status(201);
    let applied = apply_text(&app, text).await.unwrap();
    assert_eq!(applied.created, ["plugin:showcase"]);
    let plugins = app.get("/api/v1/tenant/plugins").await;
    assert_eq!(plugins.body[0]["enabled"], true);
    assert_eq!(plugins.body[0]["config"]["greeting"], "hello");
    assert!(plugins.body[0]["grants"].as_array().unwrap().len() >= 8);
}

#[tokio::test]
async fn an_editions_views_and_widgets_reach_the_lists_and_the_dashboard() {
    let app = TestApp::new().await;
    let applied = app
        .post("/api/v1/tenant/edition", json!({"edition": "real-estate"}))
        .await;
    applied.assert_status(200);
    let created = applied.body["created"].to_string();
    assert!(
        created.contains("view:contact/Pre-approved buyers"),
        "{created}"
    );
    assert!(created.contains("widget:activity/Tasks to do"), "{created}");
    // Twice: nothing new.
    let again = app
        .post("/api/v1/tenant/edition", json!({"edition": "real-estate"}))
        .await;
    assert!(
        again.body["kept"]
            .to_string()
            .contains("widget:contact/New leads"),
        "{}",
        again.body
    );
    assert_eq!(
        app.sql_count("SELECT COUNT(*) AS n FROM saved_views WHERE on_dashboard")
            .await,
        3
    );

    for (name, stage, score) in [
        ("Hal", "lead", 70),
        ("Ida", "lead", 10),
        ("Jo", "customer", 90),
    ] {
        app.create(
            "/api/v1/contacts",
            json!({"first_name": name, "lifecycle_stage": stage, "custom": {"lead_score": score}}),
        )
        .await;
    }
    let mut browser = crate::web::admin_browser(&app).await;
    let page = browser.get("/").await.assert(200).html.clone();
    assert!(page.contains("Hot buyers (score 60+)"), "{page}");
    let count = |title: &str| {
        let at = page.find(title).unwrap();
        let rest = &page[at..];
        let start = rest.find("widget-count\">").unwrap() + "widget-count\">".len();
        rest[start..start + rest[start..].find('<').unwrap()].to_owned()
    };
    assert_eq!(count("Hot buyers (score 60+)"), "2");
    assert_eq!(count("New leads"), "2");
    assert_eq!(count("Tasks to do"), "0");
    let at = page.find("Hot buyers (score 60+)").unwrap();
    let link = &page[page[..at].rfind("href=").unwrap()..at];
    assert!(
        link.contains("contacts?filter=custom.lead_score:gte:60&amp;sort"),
        "{link}"
    );
    // The shared view is offered on the contacts list.
    browser
        .get("/contacts")
        .await
        .assert(200)
        .contains("Pre-approved buyers");
}

#[tokio::test]
async fn an_edition_with_a_view_on_a_missing_field_is_refused() {
    let app = TestApp::new().await;
    let text = trellis::editions::BUILT_IN
        .iter()
        .find(|(id, _)| *id == "real-estate")
        .unwrap()
        .1
        .replace(
            "custom.pre_approved:eq:true",
            "custom.no_such_field:eq:true",
        );
    let err = apply_text(&app, &text).await.unwrap_err();
    assert!(err.to_string().contains("Pre-approved buyers"), "{err}");
    let bad = trellis::editions::Edition::parse(&text.replace(
        "object_type = \"activity\"\nname = \"Open tasks\"",
        "object_type = \"listing\"\nname = \"Open tasks\"",
    ));
    assert!(bad.is_err());
}

#[tokio::test]
async fn a_newer_plugin_version_is_taken_up_with_the_tenants_grants_and_settings() {
    let app = TestApp::new().await;
    let edition = |version: &str| {
        format!(
            "id = \"tidy-edition\"\nname = \"Tidy\"\nversion = \"{version}\"\n\n\
             [[plugins]]\nid = \"tidy\"\nconfig = {{ mode = \"strict\" }}\n"
        )
    };
    app.install_plugin("testing/tidy", |m| m)
        .await
        .assert_status(201);
    let first = apply_text(&app, &edition("1.0.0")).await.unwrap();
    assert_eq!(first.created, ["plugin:tidy"]);
    let plugin = app.get("/api/v1/tenant/plugins").await;
    assert_eq!(plugin.body[0]["version"], "0.1.0");

    // The admin revokes a grant and changes the configuration.
    app.put(
        "/api/v1/tenant/plugins/tidy",
        json!({"grants": ["records:contact:read", "records:contact:create"],
               "config": {"mode": "gentle"}}),
    )
    .await
    .assert_status(200);
    // Nothing newer is installed: the plugin is kept as it is.
    let again = apply_text(&app, &edition("1.0.0")).await.unwrap();
    assert_eq!(again.kept, ["plugin:tidy"]);
    assert!(again.upgraded.is_empty());

    // Version 0.2.0 arrives, asking to read activities too.
    app.install_plugin("testing/tidy-next", |m| m)
        .await
        .assert_status(201);
    let newer = apply_text(&app, &edition("1.1.0")).await.unwrap();
    assert_eq!(newer.upgraded, ["plugin:tidy@0.2.0"]);
    let plugin = app.get("/api/v1/tenant/plugins").await;
    let p = &plugin.body[0];
    assert_eq!(p["version"], "0.2.0", "{p}");
    let mut grants: Vec<String> = serde_json::from_value(p["grants"].clone()).unwrap();
    grants.sort();
    assert_eq!(
        grants,
        [
            "records:activity:read",
            "records:contact:create",
            "records:contact:read"
        ],
        "the revoked grant stays revoked; the new capability is granted"
    );
    assert_eq!(p["config"], json!({"mode": "gentle"}));
    // The new version runs: its hook tidies what is written.
    let c = app
        .create(
            "/api/v1/contacts",
            json!({"first_name": "ada", "last_name": "LOVELACE"}),
        )
        .await;
    assert_eq!(c["last_name"], "Lovelace");
    let again = apply_text(&app, &edition("1.1.0")).await.unwrap();
    assert!(again.upgraded.is_empty());

    // A plugin the tenant disabled is not brought back by an upgrade.
    app.delete("/api/v1/tenant/plugins/tidy")
        .await
        .assert_status(200);
    let plugin = app.get("/api/v1/tenant/plugins").await;
    assert_eq!(plugin.body[0]["enabled"], false, "{}", plugin.body);
    let after = apply_text(&app, &edition("1.2.0")).await.unwrap();
    assert_eq!(after.kept, ["plugin:tidy"]);
    let plugin = app.get("/api/v1/tenant/plugins").await;
    assert_eq!(plugin.body[0]["enabled"], false);
}

#[tokio::test]
async fn an_editions_theme_dresses_a_tenant_that_chose_none() {
    let app = TestApp::new().await;
    let applied = app
        .post("/api/v1/tenant/edition", json!({"edition": "real-estate"}))
        .await;
    applied.assert_status(200);
    assert!(
        applied.body["created"]
            .as_array()
            .unwrap()
            .contains(&json!("theme:estate")),
        "{}",
        applied.body
    );
    let tenant = app.get("/api/v1/tenant").await;
    assert_eq!(tenant.body["theme"], "estate");
    let mut b = crate::web::admin_browser(&app).await;
    b.get("/")
        .await
        .assert(200)
        .contains("/ui/assets/estate/style.css")
        .contains("Trellis Real Estate");

    // The tenant picks another look; applying again leaves it.
    app.patch("/api/v1/tenant", json!({"theme": "meadow"}))
        .await
        .assert_status(200);
    let again = app
        .post("/api/v1/tenant/edition", json!({"edition": "real-estate"}))
        .await;
    assert!(
        again.body["kept"]
            .as_array()
            .unwrap()
            .contains(&json!("theme:estate"))
    );
    assert_eq!(app.get("/api/v1/tenant").await.body["theme"], "meadow");

    // An edition naming a theme this server lacks is refused, naming it.
    let err = apply_text(
        &app,
        "id = \"odd\"\nname = \"Odd\"\nversion = \"1.0.0\"\ntheme = \"no-such-theme\"\n",
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("no-such-theme"), "{err}");
}

#[tokio::test]
async fn a_plugin_the_tenant_set_up_itself_is_adopted_as_it_is() {
    let app = TestApp::new().await;
    app.install_plugin("testing/tidy", |m| m)
        .await
        .assert_status(201);
    app.put(
        "/api/v1/tenant/plugins/tidy",
        json!({"grants": ["records:contact:read", "records:contact:create"], "config": {"mode": "mine"}}),
    )
    .await
    .assert_status(200);
    let text = "id = \"tidy-edition\"\nname = \"Tidy\"\nversion = \"1.0.0\"\n\n[[plugins]]\nid = \"tidy\"\nconfig = { mode = \"strict\" }\n";
    let applied = apply_text(&app, text).await.unwrap();
    assert_eq!(applied.adopted, ["plugin:tidy"]);
    assert!(applied.created.is_empty());
    let plugins = app.get("/api/v1/tenant/plugins").await;
    assert_eq!(plugins.body[0]["config"]["mode"], "mine");
    assert_eq!(
        plugins.body[0]["grants"],
        json!(["records:contact:read", "records:contact:create"])
    );
}
