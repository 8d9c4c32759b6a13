//! The `trellis` command on a plugin's way from scaffold to enabled: `plugin
//! new` writes a crate that builds, `plugin install` builds and installs it,
//! `plugin enable` grants it, and the API then runs its hook.

use std::process::Command;

use serde_json::json;

use crate::support::TestApp;

fn trellis(app: &TestApp, cwd: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_trellis"))
        .current_dir(cwd)
        .args(args)
        .env("TRELLIS_DATABASE_URL", &app.state.config.database_url)
        .env(
            "TRELLIS_MASTER_KEY",
            app.state.config.master_key.as_deref().unwrap(),
        )
        // Reuse the bundled plugins' build of the SDK.
        .env(
            "CARGO_TARGET_DIR",
            std::path::Path::new(env!("TRELLIS_PLUGINS_DIR"))
                .parent()
                .and_then(|p| p.parent())
                .unwrap(),
        )
        .output()
        .unwrap()
}

#[tokio::test]
async fn a_scaffolded_plugin_builds_installs_and_runs() {
    let app = TestApp::new().await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tidy-titles");
    let dir_s = dir.to_str().unwrap();
    let out = trellis(
        &app,
        tmp.path(),
        &["plugin", "new", "tidy-titles", "--dir", dir_s],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.join("plugin.toml").exists() && dir.join("src/lib.rs").exists());

    let out = trellis(&app, tmp.path(), &["plugin", "install", dir_s]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("installed tidy-titles@0.1.0"), "{stdout}");

    let out = trellis(
        &app,
        tmp.path(),
        &["plugin", "enable", "tidy-titles", "--grant-requested"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = trellis(&app, tmp.path(), &["plugin", "list", "--tenant", "default"]);
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(listed.contains("tidy-titles@0.1.0\tenabled"), "{listed}");

    // The running kernel (another process) picks the plugin up.
    let c = app
        .create(
            "/api/v1/contacts",
            json!({"first_name": "Ann", "job_title": "  Agent "}),
        )
        .await;
    assert_eq!(c["job_title"], "Agent");

    // Mistakes are named, with a non-zero exit.
    let out = trellis(&app, tmp.path(), &["plugin", "enable", "nothing-here"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found"));
    let out = trellis(&app, tmp.path(), &["plugin", "new", "Bad Name"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("plugin id"));
}

#[tokio::test]
async fn tenants_and_editions_from_the_command_line() {
    let app = TestApp::new().await;
    let tmp = tempfile::tempdir().unwrap();
    let out = trellis(&app, tmp.path(), &["edition", "list"]);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("real-estate\t"));
    let out = trellis(
        &app,
        tmp.path(),
        &[
            "tenant",
            "create",
            "--slug",
            "brokers",
            "--name",
            "Brokers",
            "--admin-email",
            "boss@brokers.test",
            "--edition",
            "real-estate",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = app.tenant_token("brokers", "admin").await;
    let pipelines = app
        .send(
            axum::http::Method::GET,
            "/api/v1/pipelines",
            Some(&key),
            None,
            &[],
        )
        .await;
    assert!(pipelines.body.to_string().contains("Buyers"));
    // Applying again from the command line changes nothing.
    let out = trellis(
        &app,
        tmp.path(),
        &["edition", "apply", "real-estate", "--tenant", "brokers"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(report["created"], json!([]));
    let out = trellis(&app, tmp.path(), &["edition", "apply", "space-mining"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no edition `space-mining`"));
}

/// `trellis import`: the file is read, `--map` adjusts the suggested
/// mapping, rows are written through the same checks as the API's import,
/// the rejects are listed and written to `--errors`, and a bad flag is a
/// clear message with a non-zero exit.
#[tokio::test]
async fn contacts_import_from_the_command_line() {
    let app = TestApp::new().await;
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("people.csv");
    std::fs::write(
        &file,
        "Name,E-mail address,Position\n\
         Ada Lovelace,ada@example.com,Analyst\n\
         Bad Row,not-an-email,Clerk\n\
         Grace Hopper,grace@example.com,Admiral\n",
    )
    .unwrap();
    let errors = tmp.path().join("errors.csv");
    let out = trellis(
        &app,
        tmp.path(),
        &[
            "import",
            "contacts",
            file.to_str().unwrap(),
            "--map",
            "Name=full_name",
            "--map",
            "E-mail address=emails",
            "--map",
            "Position=job_title",
            "--errors",
            errors.to_str().unwrap(),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("done: 2 created, 0 updated, 1 rejected of 3 rows"),
        "{stdout}"
    );
    assert!(stdout.contains("row 2: E-mail address:"), "{stdout}");
    let list = app.get("/api/v1/contacts?sort=first_name").await.body;
    let names: Vec<(&str, &str, &str)> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["first_name"].as_str().unwrap(),
                c["last_name"].as_str().unwrap(),
                c["job_title"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            ("Ada", "Lovelace", "Analyst"),
            ("Grace", "Hopper", "Admiral")
        ]
    );
    let fix = std::fs::read_to_string(&errors).unwrap();
    let mut lines = fix.lines();
    assert_eq!(
        lines.next(),
        Some("Name,E-mail address,Position,Import errors")
    );
    let bad = lines.next().unwrap();
    assert!(bad.starts_with("Bad Row,not-an-email,Clerk,"), "{bad}");
    assert_eq!(lines.next(), None);

    // A dry run of the fixed file writes nothing and rejects nothing.
    std::fs::write(&file, "Name,E-mail address\nBad Row,bad@example.com\n").unwrap();
    let out = trellis(
        &app,
        tmp.path(),
        &[
            "import",
            "contacts",
            file.to_str().unwrap(),
            "--map",
            "E-mail address=emails",
            "--map",
            "Name=full_name",
            "--dry-run",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("done (dry run): 1 created"), "{stdout}");
    assert_eq!(app.count_contacts().await, 2);

    let out = trellis(
        &app,
        tmp.path(),
        &[
            "import",
            "contacts",
            file.to_str().unwrap(),
            "--mode",
            "merge",
        ],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("`merge` is not a mode"), "{stderr}");
    let out = trellis(
        &app,
        tmp.path(),
        &[
            "import",
            "contacts",
            file.to_str().unwrap(),
            "--map",
            "Name=nickname",
        ],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("nickname"), "{stderr}");
    assert_eq!(app.count_contacts().await, 2);
}

/// `trellis search reindex` rewrites lost or stale search documents from
/// the records: a contact whose document is gone is found again, by name
/// and by its phone's last nine digits.
#[tokio::test]
async fn search_reindex_from_the_command_line() {
    use sea_orm::ConnectionTrait;
    let app = TestApp::new().await;
    app.create(
        "/api/v1/contacts",
        json!({"first_name": "Zebulon", "last_name": "Pike", "phones": [{"number": "+1 202 555 0143"}]}),
    )
    .await;
    assert_eq!(found(&app, "Zebulon").await, 1);
    app.state
        .db
        .execute_unprepared("DELETE FROM search_documents")
        .await
        .unwrap();
    assert_eq!(found(&app, "Zebulon").await, 0);
    let tmp = tempfile::tempdir().unwrap();
    let out = trellis(
        &app,
        tmp.path(),
        &["search", "reindex", "--tenant", "default"],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("reindexed 1 records"), "{stdout}");
    assert_eq!(found(&app, "Zebulon").await, 1);
    assert_eq!(found(&app, "025550143").await, 1);
}

async fn found(app: &TestApp, q: &str) -> usize {
    let path = format!("/api/v1/search?q={q}&types=contact");
    app.get(&path).await.body.as_array().unwrap().len()
}

/// `trellis merge contacts` merges with a chosen field and prints the merge;
/// `trellis merge undo` undoes it; bad input is a message and a non-zero
/// exit.
#[tokio::test]
async fn contacts_merge_and_undo_from_the_command_line() {
    let app = TestApp::new().await;
    let tmp = tempfile::tempdir().unwrap();
    let a = app
        .create(
            "/api/v1/contacts",
            json!({"first_name": "Ada", "last_name": "Lovelace", "job_title": "Analyst"}),
        )
        .await;
    let b = app
        .create(
            "/api/v1/contacts",
            json!({"first_name": "Ada", "last_name": "King", "job_title": "Countess"}),
        )
        .await;
    let (a_id, b_id) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());
    let field = format!("job_title={b_id}");
    let out = trellis(
        &app,
        tmp.path(),
        &[
            "merge",
            "contacts",
            "--survivor",
            a_id,
            b_id,
            "--field",
            &field,
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("merged {b_id} into {a_id}")),
        "{stdout}"
    );
    let now = app.get(&format!("/api/v1/contacts/{a_id}")).await.body;
    assert_eq!(now["job_title"], "Countess");
    assert_eq!(now["last_name"], "Lovelace");
    let merge_id = stdout
        .split("(merge ")
        .nth(1)
        .and_then(|s| s.split(';').next())
        .unwrap()
        .to_owned();

    let out = trellis(&app, tmp.path(), &["merge", "undo", &merge_id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        app.get(&format!("/api/v1/contacts/{b_id}")).await.body["id"],
        b_id
    );
    assert_eq!(
        app.get(&format!("/api/v1/contacts/{a_id}")).await.body["job_title"],
        "Analyst"
    );

    for (args, message) in [
        (
            vec!["merge", "contacts", "--survivor", a_id, a_id],
            "the survivor cannot be merged into itself",
        ),
        (
            vec![
                "merge",
                "contacts",
                "--survivor",
                a_id,
                b_id,
                "--rule",
                "oldest",
            ],
            "`oldest` is not a rule",
        ),
        (
            vec!["merge", "undo", &merge_id],
            "this merge was undone already",
        ),
    ] {
        let out = trellis(&app, tmp.path(), &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}

/// What `path` answers for the tenant of `token`.
async fn fetch(app: &TestApp, token: &str, path: &str) -> serde_json::Value {
    let res = app
        .send(axum::http::Method::GET, path, Some(token), None, &[])
        .await;
    res.assert_status(200);
    res.body
}

/// What every id of a tenant names: records by their names, pipelines and
/// stages, users by email, custom fields by key.
async fn labels(app: &TestApp, token: &str) -> std::collections::HashMap<String, String> {
    let mut out = std::collections::HashMap::new();
    for (path, kind, field) in [
        ("/api/v1/contacts?limit=200", "contact", "name"),
        ("/api/v1/accounts?limit=200", "account", "name"),
        ("/api/v1/deals?limit=200", "deal", "name"),
        ("/api/v1/activities?limit=200", "activity", "subject"),
    ] {
        for r in fetch(app, token, path).await["data"].as_array().unwrap() {
            out.insert(
                r["id"].as_str().unwrap().to_owned(),
                format!("{kind}:{}", r[field].as_str().unwrap()),
            );
        }
    }
    for p in fetch(app, token, "/api/v1/pipelines")
        .await
        .as_array()
        .unwrap()
    {
        out.insert(
            p["id"].as_str().unwrap().to_owned(),
            format!("pipeline:{}", p["name"]),
        );
        for s in p["stages"].as_array().unwrap() {
            out.insert(
                s["id"].as_str().unwrap().to_owned(),
                format!("stage:{}", s["name"]),
            );
        }
    }
    for u in fetch(app, token, "/api/v1/users").await.as_array().unwrap() {
        out.insert(
            u["id"].as_str().unwrap().to_owned(),
            format!("user:{}", u["email"]),
        );
    }
    for f in fetch(app, token, "/api/v1/custom-fields")
        .await
        .as_array()
        .unwrap()
    {
        out.insert(
            f["id"].as_str().unwrap().to_owned(),
            format!("field:{}", f["key"]),
        );
    }
    out
}

/// `v` with every id replaced by what it names, lists sorted, so two
/// tenants' data compare though their ids differ.
fn canon(
    v: &serde_json::Value,
    labels: &std::collections::HashMap<String, String>,
) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::String(s) => match labels.get(s) {
            Some(l) => Value::String(l.clone()),
            None if uuid::Uuid::parse_str(s).is_ok() => Value::String("unknown id".into()),
            None => v.clone(),
        },
        Value::Array(items) => {
            let mut items: Vec<Value> = items.iter().map(|i| canon(i, labels)).collect();
            items.sort_by_key(|i| i.to_string());
            Value::Array(items)
        }
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), canon(v, labels)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// `trellis export tenant` then `trellis restore` into a new tenant beside
/// the original: every record, custom field (encrypted ones too), relation,
/// stage move, user, view and plugin KV entry compares equal, record by
/// record; a cut-short file or a taken slug restores nothing.
#[tokio::test]
async fn a_tenant_backs_up_and_restores_beside_itself() {
    use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
    let app = TestApp::new().await;
    let tmp = tempfile::tempdir().unwrap();
    app.sales_pipeline().await;
    for body in [
        json!({"object_type": "contact", "key": "ssn", "label": "SSN", "field_type": "text", "sensitive": true}),
        json!({"object_type": "contact", "key": "employer", "label": "Employer", "field_type": "reference", "reference_type": "account"}),
        json!({"object_type": "deal", "key": "tier", "label": "Tier", "field_type": "single_select", "options": ["gold", "silver"]}),
    ] {
        app.create("/api/v1/custom-fields", body).await;
    }
    let rep = app
        .user(
            "default",
            "rep@example.com",
            "a-long-password-1",
            &["sales_rep"],
        )
        .await;
    // The child account is older than its parent.
    let branch = app
        .create("/api/v1/accounts", json!({"name": "Acme Leeds"}))
        .await;
    let hq = app
        .create(
            "/api/v1/accounts",
            json!({"name": "Acme", "domain": "acme.example"}),
        )
        .await;
    app.patch(
        &format!("/api/v1/accounts/{}", branch["id"].as_str().unwrap()),
        json!({"parent_id": hq["id"], "version": 1}),
    )
    .await
    .assert_status(200);
    let ada = app
        .create(
            "/api/v1/contacts",
            json!({"first_name": "Ada", "last_name": "Lovelace", "owner_id": rep,
                   "emails": [{"address": "ada@example.com"}], "tags": ["vip"],
                   "custom": {"ssn": "078-05-1120", "employer": hq["id"]}}),
        )
        .await;
    let grace = app
        .create(
            "/api/v1/contacts",
            json!({"first_name": "Grace", "last_name": "Hopper"}),
        )
        .await;
    let (a, g) = (ada["id"].as_str().unwrap(), grace["id"].as_str().unwrap());
    app.post(
        &format!("/api/v1/contacts/{a}/accounts"),
        json!({"account_id": branch["id"], "role": "buyer"}),
    )
    .await
    .assert_status(201);
    app.post(
        &format!("/api/v1/contacts/{a}/relationships"),
        json!({"to_contact_id": g, "kind": "colleague"}),
    )
    .await
    .assert_status(201);
    let pipeline = fetch(&app, &app.token, "/api/v1/pipelines").await;
    let proposal = pipeline[0]["stages"][1]["id"].clone();
    let deal = app
        .create(
            "/api/v1/deals",
            json!({"name": "Engine", "amount": "1250.005", "currency": "GBP", "contact_id": a,
                   "account_id": hq["id"], "custom": {"tier": "gold"}}),
        )
        .await;
    let d = deal["id"].as_str().unwrap();
    app.post(
        &format!("/api/v1/deals/{d}/move"),
        json!({"stage_id": proposal, "version": 1}),
    )
    .await
    .assert_status(200);
    app.create(
        "/api/v1/activities",
        json!({"kind": "call", "subject": "Call Ada", "contact_id": a, "deal_id": d}),
    )
    .await;
    let tenant =
        trellis::crm::tenants::ensure(&app.state.db, "default", "default", "admin@default.test")
            .await
            .unwrap()
            .0;
    trellis::entities::plugin_kv::ActiveModel {
        id: Set(uuid::Uuid::now_v7()),
        tenant_id: Set(tenant.id),
        plugin_id: Set("mls-sync".into()),
        key: Set("cursor".into()),
        value: Set(vec![0, 159, 146, 150, 10]),
        updated_at: Set(chrono::Utc::now()),
    }
    .insert(&app.state.db)
    .await
    .unwrap();

    // A plugin's configuration secret (sealed with this tenant's key).
    app.enable_plugin(
        "real-estate",
        json!(["kv"]),
        json!({"mls": {"url": "https://mls.example/odata", "client_secret": "backup-secret-42"}}),
    )
    .await
    .assert_status(200);

    app.put(
        &format!("/api/v1/contacts/{g}/legal-hold"),
        json!({"legal_hold": true}),
    )
    .await
    .assert_status(204);
    let file = tmp.path().join("default.trellis.jsonl");
    let f = file.to_str().unwrap();
    let out = trellis(&app, tmp.path(), &["export", "tenant", "--out", f]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let written = std::fs::read_to_string(&file).unwrap();
    let header: serde_json::Value = serde_json::from_str(written.lines().next().unwrap()).unwrap();
    assert_eq!(header["format"], "trellis-tenant-backup");
    assert_eq!(header["version"], 1);
    let out = trellis(&app, tmp.path(), &["restore", f, "--slug", "copy"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("into tenant copy"));

    let copy = app.tenant_token("copy", "admin").await;
    let (la, lb) = (labels(&app, &app.token).await, labels(&app, &copy).await);
    let mut paths = vec![
        "/api/v1/contacts?limit=200".to_owned(),
        "/api/v1/accounts?limit=200".to_owned(),
        "/api/v1/deals?limit=200".to_owned(),
        "/api/v1/activities?limit=200".to_owned(),
        "/api/v1/pipelines".to_owned(),
        "/api/v1/custom-fields".to_owned(),
    ];
    let ids_a: Vec<String> = fetch(&app, &app.token, "/api/v1/contacts?limit=200").await["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids_a.len(), 2);
    let mut compared = 0;
    for p in paths.drain(..) {
        let (x, y) = (
            fetch(&app, &app.token, &p).await,
            fetch(&app, &copy, &p).await,
        );
        assert_eq!(canon(&x, &la), canon(&y, &lb), "{p}");
        compared += 1;
    }
    // Per record: links, relationships, stage history, the timeline's
    // activities; the copy's ids are its own.
    let name_a = |id: &str| la[id].clone();
    let id_b = |label: &str| {
        lb.iter()
            .find(|(_, l)| l.as_str() == label)
            .map(|(id, _)| id.clone())
            .unwrap()
    };
    for (kind, id) in [("contacts", a), ("contacts", g), ("deals", d)] {
        let other = id_b(&name_a(id));
        assert_ne!(other, id);
        for sub in ["", "/accounts", "/relationships", "/stage-history"] {
            if (kind == "deals") != (sub == "/stage-history") && !sub.is_empty() {
                continue;
            }
            let (x, y) = (
                fetch(&app, &app.token, &format!("/api/v1/{kind}/{id}{sub}")).await,
                fetch(&app, &copy, &format!("/api/v1/{kind}/{other}{sub}")).await,
            );
            assert_eq!(canon(&x, &la), canon(&y, &lb), "{kind} {sub}");
            compared += 1;
        }
    }
    assert!(compared >= 13);
    // The encrypted value reads back, and is encrypted at rest.
    let ada_copy = fetch(
        &app,
        &copy,
        &format!("/api/v1/contacts/{}", id_b("contact:Ada Lovelace")),
    )
    .await;
    assert_eq!(ada_copy["custom"]["ssn"], "078-05-1120");
    assert_eq!(
        app.sql_count(
            "SELECT COUNT(*) AS n FROM contacts WHERE CAST(custom AS TEXT) LIKE '%078-05%'"
        )
        .await,
        0
    );
    // The legal hold came along: the copy cannot be erased either.
    let held = id_b("contact:Grace Hopper");
    let res = app
        .send(
            axum::http::Method::POST,
            &format!("/api/v1/contacts/{held}/erase"),
            Some(&copy),
            Some(json!({"reason": "test"})),
            &[],
        )
        .await;
    res.assert_problem(409, "legal_hold");
    // Users come along (without their MFA), with their passwords.
    let users = canon(&fetch(&app, &copy, "/api/v1/users").await, &lb);
    assert!(users.to_string().contains("rep@example.com"), "{users}");
    // The plugin's secret opens for the copy (sealed again with its key).
    let copy_tenant =
        trellis::crm::tenants::ensure(&app.state.db, "copy", "copy", "admin@copy.test")
            .await
            .unwrap()
            .0;
    let row = trellis::entities::tenant_plugin::Entity::find()
        .filter(trellis::entities::tenant_plugin::Column::TenantId.eq(copy_tenant.id))
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    let opened = trellis::plugins::secrets::reveal(
        &app.state.keyring,
        &app.state.db,
        (copy_tenant.id, "real-estate"),
        &row.config,
    )
    .await
    .unwrap();
    assert_eq!(opened["mls"]["client_secret"], "backup-secret-42");
    assert_eq!(
        app.sql_count(
            "SELECT COUNT(*) AS n FROM tenant_plugins WHERE CAST(config AS TEXT) LIKE '%backup-secret%'"
        )
        .await,
        0
    );
    // Plugin KV, byte for byte; search finds the copy's records.
    let copied = trellis::entities::plugin_kv::Entity::find()
        .filter(trellis::entities::plugin_kv::Column::PluginId.eq("mls-sync"))
        .all(&app.state.db)
        .await
        .unwrap();
    assert_eq!(copied.len(), 2);
    assert!(copied.iter().all(|k| k.value == vec![0, 159, 146, 150, 10]));
    let found = fetch(&app, &copy, "/api/v1/search?q=lovelace").await;
    assert_eq!(found.as_array().unwrap().len(), 1);

    // A taken slug, and a file cut short, restore nothing.
    let out = trellis(&app, tmp.path(), &["restore", f, "--slug", "copy"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("exists already"));
    let cut = tmp.path().join("cut.jsonl");
    let lines: Vec<&str> = written.lines().collect();
    std::fs::write(&cut, lines[..lines.len() - 1].join("\n")).unwrap();
    let out = trellis(
        &app,
        tmp.path(),
        &["restore", cut.to_str().unwrap(), "--slug", "cut"],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cut short"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        app.sql_count("SELECT COUNT(*) AS n FROM tenants WHERE slug = 'cut'")
            .await,
        0
    );
}
