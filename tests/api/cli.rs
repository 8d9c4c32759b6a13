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
