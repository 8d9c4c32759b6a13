//! Roles, record scopes, field permissions and teams, tried from the
//! restricted side.

use axum::http::Method;
use serde_json::json;

use crate::support::TestApp;

const PW: &str = "correct horse battery staple";

/// A role that sees contacts but not their email or a custom field, and
/// may not change the lead source.
async fn restricted_role(app: &TestApp) {
    app.put(
        "/api/v1/roles",
        json!({
            "key": "intern",
            "name": "Intern",
            "permissions": {
                "contact": {"actions": ["read", "create", "update"], "scope": "all"},
                "account": {"actions": ["read"]}
            },
            "field_rules": {
                "contact": {"email": "hidden", "emails": "hidden", "custom.salary": "hidden", "lead_source": "read_only"}
            }
        }),
    )
    .await
    .assert_status(200);
}

#[tokio::test]
async fn a_role_without_a_permission_gets_403() {
    let app = TestApp::new().await;
    restricted_role(&app).await;
    let intern = app.user("default", "i@example.com", PW, &["intern"]).await;
    let key = app.key_for("default", intern, &["intern"]).await;
    let as_intern = |m: Method, p: &str, b: Option<serde_json::Value>| {
        let (app, key, p) = (&app, key.clone(), p.to_owned());
        async move { app.send(m, &p, Some(&key), b, &[]).await }
    };
    as_intern(Method::GET, "/api/v1/deals", None)
        .await
        .assert_problem(403, "forbidden");
    as_intern(Method::POST, "/api/v1/accounts", Some(json!({"name": "A"})))
        .await
        .assert_problem(403, "forbidden");
    as_intern(Method::GET, "/api/v1/users", None)
        .await
        .assert_problem(403, "forbidden");
    as_intern(Method::GET, "/api/v1/audit", None)
        .await
        .assert_problem(403, "forbidden");
    as_intern(
        Method::PUT,
        "/api/v1/roles",
        Some(json!({"key": "intern", "name": "Boss", "permissions": {"deal": {"actions": ["read"]}}})),
    )
    .await
    .assert_problem(403, "forbidden");
    as_intern(Method::GET, "/api/v1/accounts", None)
        .await
        .assert_status(200);
}

#[tokio::test]
async fn hidden_fields_never_leave_the_server() {
    let app = TestApp::new().await;
    app.post(
        "/api/v1/custom-fields",
        json!({"object_type": "contact", "key": "salary", "label": "Salary", "field_type": "integer"}),
    )
    .await
    .assert_status(201);
    restricted_role(&app).await;
    let c = app
        .create(
            "/api/v1/contacts",
            json!({"first_name": "Hidden", "last_name": "Person", "emails": [{"address": "secret@example.com", "primary": true}],
                   "lead_source": "web", "custom": {"salary": 123456}}),
        )
        .await;
    let id = c["id"].as_str().unwrap();
    let intern = app.user("default", "i@example.com", PW, &["intern"]).await;
    let key = app.key_for("default", intern, &["intern"]).await;
    let get = |p: String| {
        let (app, key) = (&app, key.clone());
        async move { app.send(Method::GET, &p, Some(&key), None, &[]).await }
    };
    let mut outputs = Vec::new();
    let one = get(format!("/api/v1/contacts/{id}")).await;
    one.assert_status(200);
    assert_eq!(one.body["first_name"], "Hidden");
    outputs.push(one.body.to_string());
    let list = get("/api/v1/contacts".to_owned()).await;
    list.assert_status(200);
    outputs.push(list.body.to_string());
    let timeline = get(format!("/api/v1/contacts/{id}/timeline")).await;
    timeline.assert_status(200);
    outputs.push(timeline.body.to_string());
    let search = get("/api/v1/search?q=hidden".to_owned()).await;
    search.assert_status(200);
    outputs.push(search.body.to_string());
    // Writes echo the record: hidden there too.
    let patched = app
        .send(
            Method::PATCH,
            &format!("/api/v1/contacts/{id}"),
            Some(&key),
            Some(json!({"version": 1, "job_title": "Clerk"})),
            &[],
        )
        .await;
    patched.assert_status(200);
    outputs.push(patched.body.to_string());
    for out in &outputs {
        assert!(!out.contains("secret@example.com"), "email leaked: {out}");
        assert!(!out.contains("123456"), "salary leaked: {out}");
    }
    // Searching by the hidden value finds nothing, and filtering or
    // sorting on a hidden field is refused rather than answered.
    let by_email = get("/api/v1/search?q=secret".to_owned()).await;
    assert_eq!(
        by_email.body.as_array().unwrap().len(),
        0,
        "{}",
        by_email.body
    );
    assert_eq!(search.body.as_array().unwrap().len(), 1, "{}", search.body);
    get("/api/v1/contacts?filter=email:eq:secret@example.com".to_owned())
        .await
        .assert_problem(403, "forbidden");
    get("/api/v1/contacts?filter=custom.salary:gt:100000".to_owned())
        .await
        .assert_problem(403, "forbidden");
    get("/api/v1/contacts?sort=email".to_owned())
        .await
        .assert_problem(403, "forbidden");
    // The admin still sees everything, and the patch kept the hidden values.
    let full = app.get(&format!("/api/v1/contacts/{id}")).await;
    assert_eq!(full.body["email"], "secret@example.com");
    assert_eq!(full.body["custom"]["salary"], 123456);
}

#[tokio::test]
async fn read_only_and_hidden_fields_cannot_be_written() {
    let app = TestApp::new().await;
    restricted_role(&app).await;
    let c = app
        .create(
            "/api/v1/contacts",
            json!({"first_name": "A", "lead_source": "web"}),
        )
        .await;
    let id = c["id"].as_str().unwrap();
    let intern = app.user("default", "i@example.com", PW, &["intern"]).await;
    let key = app.key_for("default", intern, &["intern"]).await;
    let send = |m: Method, p: String, b: serde_json::Value| {
        let (app, key) = (&app, key.clone());
        async move { app.send(m, &p, Some(&key), Some(b), &[]).await }
    };
    let res = send(
        Method::PATCH,
        format!("/api/v1/contacts/{id}"),
        json!({"version": 1, "lead_source": "referral"}),
    )
    .await;
    res.assert_problem(403, "forbidden");
    assert!(res.body["detail"].as_str().unwrap().contains("lead_source"));
    send(
        Method::PATCH,
        format!("/api/v1/contacts/{id}"),
        json!({"version": 1, "emails": [{"address": "x@example.com"}]}),
    )
    .await
    .assert_problem(403, "forbidden");
    send(
        Method::POST,
        "/api/v1/contacts".to_owned(),
        json!({"first_name": "B", "lead_source": "cold call"}),
    )
    .await
    .assert_problem(403, "forbidden");
    // Other fields stay writable.
    send(
        Method::PATCH,
        format!("/api/v1/contacts/{id}"),
        json!({"version": 1, "first_name": "Changed"}),
    )
    .await
    .assert_status(200);
    send(
        Method::POST,
        "/api/v1/contacts".to_owned(),
        json!({"first_name": "C"}),
    )
    .await
    .assert_status(201);
    let stored = app.get(&format!("/api/v1/contacts/{id}")).await;
    assert_eq!(stored.body["lead_source"], "web");
}

#[tokio::test]
async fn own_and_team_scopes_hide_other_owners_records_as_not_found() {
    let app = TestApp::new().await;
    for (key, scope) in [("solo", "own"), ("squad", "team")] {
        app.put(
            "/api/v1/roles",
            json!({"key": key, "name": key, "permissions": {
                "contact": {"actions": ["read", "create", "update", "delete"], "scope": scope}}}),
        )
        .await
        .assert_status(200);
    }
    let ann = app.user("default", "ann@example.com", PW, &["solo"]).await;
    let bob = app.user("default", "bob@example.com", PW, &["squad"]).await;
    let cat = app.user("default", "cat@example.com", PW, &["squad"]).await;
    let dan = app.user("default", "dan@example.com", PW, &["squad"]).await;
    app.post(
        "/api/v1/teams",
        json!({"name": "North", "members": [bob, cat]}),
    )
    .await
    .assert_status(201);
    let ann_key = app.key_for("default", ann, &["solo"]).await;
    let bob_key = app.key_for("default", bob, &["squad"]).await;
    let dan_key = app.key_for("default", dan, &["squad"]).await;

    // Records created under a scoped role belong to their creator.
    let mine = app
        .send(
            Method::POST,
            "/api/v1/contacts",
            Some(&ann_key),
            Some(json!({"first_name": "Ann's"})),
            &[],
        )
        .await;
    mine.assert_status(201);
    assert_eq!(mine.body["owner_id"], ann.to_string());
    let cats = app
        .create(
            "/api/v1/contacts",
            json!({"first_name": "Cat's", "owner_id": cat}),
        )
        .await;
    let unowned = app
        .create("/api/v1/contacts", json!({"first_name": "Nobody's"}))
        .await;

    let names = |res: &crate::support::Response| -> Vec<String> {
        res.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["first_name"].as_str().unwrap().to_owned())
            .collect()
    };
    let ann_list = app
        .send(Method::GET, "/api/v1/contacts", Some(&ann_key), None, &[])
        .await;
    assert_eq!(names(&ann_list), vec!["Ann's"]);
    let bob_list = app
        .send(Method::GET, "/api/v1/contacts", Some(&bob_key), None, &[])
        .await;
    assert_eq!(names(&bob_list), vec!["Cat's"]);
    let dan_list = app
        .send(Method::GET, "/api/v1/contacts", Some(&dan_key), None, &[])
        .await;
    assert!(names(&dan_list).is_empty());

    for id in [
        cats["id"].as_str().unwrap(),
        unowned["id"].as_str().unwrap(),
    ] {
        app.send(
            Method::GET,
            &format!("/api/v1/contacts/{id}"),
            Some(&ann_key),
            None,
            &[],
        )
        .await
        .assert_problem(404, "not_found");
        app.send(
            Method::PATCH,
            &format!("/api/v1/contacts/{id}"),
            Some(&ann_key),
            Some(json!({"version": 1, "first_name": "Mine now"})),
            &[],
        )
        .await
        .assert_problem(404, "not_found");
    }
    app.send(
        Method::GET,
        &format!("/api/v1/contacts/{}", cats["id"].as_str().unwrap()),
        Some(&bob_key),
        None,
        &[],
    )
    .await
    .assert_status(200);
    // Giving a record to someone outside the scope is refused.
    app.send(
        Method::PATCH,
        &format!("/api/v1/contacts/{}", mine.body["id"].as_str().unwrap()),
        Some(&ann_key),
        Some(json!({"version": 1, "owner_id": dan})),
        &[],
    )
    .await
    .assert_problem(403, "forbidden");
    // Counting respects the scope as well.
    let counted = app
        .send(
            Method::GET,
            "/api/v1/contacts?count=true",
            Some(&ann_key),
            None,
            &[],
        )
        .await;
    assert_eq!(counted.body["total"], 1);
}

#[tokio::test]
async fn role_and_permission_changes_are_audited() {
    let app = TestApp::new().await;
    restricted_role(&app).await;
    let u = app
        .user("default", "i@example.com", PW, &["read_only"])
        .await;
    app.patch(&format!("/api/v1/users/{u}"), json!({"roles": ["intern"]}))
        .await
        .assert_status(200);
    let entries = app.get(&format!("/api/v1/audit?record_id={u}")).await;
    let change = &entries.body["data"][0];
    assert_eq!(change["action"], "update");
    assert_eq!(change["changes"]["roles"]["before"], json!(["read_only"]));
    assert_eq!(change["changes"]["roles"]["after"], json!(["intern"]));
    let roles = app.get("/api/v1/audit?object_type=role").await;
    assert_eq!(roles.body["data"][0]["action"], "create");
    // Built-in roles cannot be deleted; custom ones can, and leave users.
    app.delete("/api/v1/roles/admin")
        .await
        .assert_problem(409, "built_in_role");
    app.delete("/api/v1/roles/intern").await.assert_status(204);
    let users = app.get("/api/v1/users").await;
    let user = users
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == u.to_string())
        .unwrap()
        .clone();
    assert_eq!(user["roles"], json!([]));
}

#[tokio::test]
async fn the_account_hierarchy_respects_scope_and_hidden_fields() {
    let app = TestApp::new().await;
    app.put(
        "/api/v1/roles",
        json!({"key": "rep_own", "name": "Own accounts",
               "permissions": {"account": {"actions": ["read", "update"], "scope": "own"}},
               "field_rules": {"account": {"domain": "hidden"}}}),
    )
    .await
    .assert_status(200);
    let rep = app
        .user("default", "rep@example.com", PW, &["rep_own"])
        .await;
    let key = app.key_for("default", rep, &["rep_own"]).await;
    let root = app
        .create(
            "/api/v1/accounts",
            json!({"name": "Root", "domain": "root.example", "owner_id": rep}),
        )
        .await;
    let mine = app
        .create(
            "/api/v1/accounts",
            json!({"name": "Mine", "domain": "mine.example", "parent_id": root["id"], "owner_id": rep}),
        )
        .await;
    app.create(
        "/api/v1/accounts",
        json!({"name": "Not mine", "domain": "other.example", "parent_id": root["id"]}),
    )
    .await;
    let h = app
        .send(
            Method::GET,
            &format!(
                "/api/v1/accounts/{}/hierarchy",
                root["id"].as_str().unwrap()
            ),
            Some(&key),
            None,
            &[],
        )
        .await;
    h.assert_status(200);
    let children: Vec<&str> = h.body["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(children, vec!["Mine"]);
    assert!(!h.body.to_string().contains(".example"), "{}", h.body);
    // Unlinking needs the contact within scope too.
    let theirs = app
        .create("/api/v1/contacts", json!({"first_name": "Theirs"}))
        .await;
    app.post(
        &format!(
            "/api/v1/contacts/{}/accounts",
            theirs["id"].as_str().unwrap()
        ),
        json!({"account_id": mine["id"]}),
    )
    .await
    .assert_status(201);
    app.put(
        "/api/v1/roles",
        json!({"key": "rep_own", "name": "Own",
               "permissions": {"account": {"actions": ["read", "update"], "scope": "own"},
                               "contact": {"actions": ["read", "update"], "scope": "own"}}}),
    )
    .await
    .assert_status(200);
    app.send(
        Method::DELETE,
        &format!(
            "/api/v1/contacts/{}/accounts/{}",
            theirs["id"].as_str().unwrap(),
            mine["id"].as_str().unwrap()
        ),
        Some(&key),
        None,
        &[],
    )
    .await
    .assert_problem(404, "not_found");
}

#[tokio::test]
async fn derived_fields_do_not_repeat_hidden_values() {
    let app = TestApp::new().await;
    app.put(
        "/api/v1/roles",
        json!({"key": "nameless", "name": "Nameless",
               "permissions": {"contact": {"actions": ["read", "update"], "scope": "all"}},
               "field_rules": {"contact": {"first_name": "hidden", "emails": "hidden", "email": "read_only"}}}),
    )
    .await
    .assert_status(200);
    let c = app
        .create(
            "/api/v1/contacts",
            json!({"first_name": "Priscilla", "last_name": "Vantablack",
                   "emails": [{"address": "pv@example.com", "primary": true}]}),
        )
        .await;
    let id = c["id"].as_str().unwrap();
    let user = app
        .user("default", "n@example.com", PW, &["nameless"])
        .await;
    let key = app.key_for("default", user, &["nameless"]).await;
    let get = |p: String| {
        let (app, key) = (&app, key.clone());
        async move { app.send(Method::GET, &p, Some(&key), None, &[]).await }
    };
    let one = get(format!("/api/v1/contacts/{id}")).await;
    one.assert_status(200);
    assert_eq!(one.body["last_name"], "Vantablack");
    let search = get("/api/v1/search?q=vantablack".to_owned()).await;
    search.assert_status(200);
    assert_eq!(search.body.as_array().unwrap().len(), 1, "{}", search.body);
    assert_eq!(search.body[0]["title"], "Vantablack");
    for out in [one.body.to_string(), search.body.to_string()] {
        assert!(!out.contains("Priscilla"), "first name leaked: {out}");
        assert!(!out.contains("pv@example.com"), "email leaked: {out}");
    }
    // `email` is read-only: writing it through `emails` is refused too.
    app.put(
        "/api/v1/roles",
        json!({"key": "email_ro", "name": "Email read-only",
               "permissions": {"contact": {"actions": ["read", "update"], "scope": "all"}},
               "field_rules": {"contact": {"email": "read_only"}}}),
    )
    .await
    .assert_status(200);
    let user = app
        .user("default", "ro@example.com", PW, &["email_ro"])
        .await;
    let key = app.key_for("default", user, &["email_ro"]).await;
    let res = app
        .send(
            Method::PATCH,
            &format!("/api/v1/contacts/{id}"),
            Some(&key),
            Some(
                json!({"version": 1, "emails": [{"address": "new@example.com", "primary": true}]}),
            ),
            &[],
        )
        .await;
    res.assert_problem(403, "forbidden");
    assert!(res.body.to_string().contains("`email`"), "{}", res.body);
    app.send(
        Method::PATCH,
        &format!("/api/v1/contacts/{id}"),
        Some(&key),
        Some(json!({"version": 1, "job_title": "Painter"})),
        &[],
    )
    .await
    .assert_status(200);
}

#[tokio::test]
async fn managing_users_does_not_let_anyone_hand_out_roles_they_lack() {
    let app = TestApp::new().await;
    app.put(
        "/api/v1/roles",
        json!({"key": "hr", "name": "HR",
               "permissions": {"user": {"actions": ["read", "manage_settings"], "scope": "all"}}}),
    )
    .await
    .assert_status(200);
    let hr = app.user("default", "hr@example.com", PW, &["hr"]).await;
    let key = app.key_for("default", hr, &["hr"]).await;
    let rep = app
        .user("default", "rep@example.com", PW, &["sales_rep"])
        .await;
    let as_hr = |m: Method, p: String, b: serde_json::Value| {
        let (app, key) = (&app, key.clone());
        async move { app.send(m, &p, Some(&key), Some(b), &[]).await }
    };
    for (target, roles) in [(hr, json!(["hr", "admin"])), (rep, json!(["admin"]))] {
        let res = as_hr(
            Method::PATCH,
            format!("/api/v1/users/{target}"),
            json!({"roles": roles}),
        )
        .await;
        res.assert_problem(422, "validation_failed");
        assert!(res.error_fields()[0].starts_with("roles["), "{}", res.body);
    }
    // Taking away a role it does not hold is refused too.
    as_hr(
        Method::PATCH,
        format!("/api/v1/users/{rep}"),
        json!({"roles": ["hr"]}),
    )
    .await
    .assert_problem(422, "validation_failed");
    as_hr(
        Method::POST,
        "/api/v1/users".to_owned(),
        json!({"email": "boss@example.com", "name": "Boss", "roles": ["admin"]}),
    )
    .await
    .assert_problem(422, "validation_failed");
    // Its own role it may hand out.
    as_hr(
        Method::POST,
        "/api/v1/users".to_owned(),
        json!({"email": "hr2@example.com", "name": "HR 2", "roles": ["hr"]}),
    )
    .await
    .assert_status(201);
    let users = app.get("/api/v1/users").await;
    let rep_now = users
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["id"] == json!(rep))
        .unwrap()
        .clone();
    assert_eq!(rep_now["roles"], json!(["sales_rep"]));
}

#[tokio::test]
async fn the_built_in_admin_reaches_object_types_added_after_its_tenant_was_seeded() {
    let app = TestApp::new().await;
    // As stored by an older kernel: no `plugin` permissions at all.
    app.sql(
        "UPDATE roles SET permissions = '{\"contact\": {\"actions\": [\"read\"], \"scope\": \"all\"}}' WHERE key = 'admin'",
    )
    .await;
    app.get("/api/v1/tenant/plugins").await.assert_status(200);
    app.post("/api/v1/contacts", json!({"first_name": "Still admin"}))
        .await
        .assert_status(201);
}
