//! Likely duplicates of a contact or an account, with confidence and
//! reasons, through the API: found by email, phone, a name alike and the
//! domain; nothing from another tenant or outside the caller's reach.

use axum::http::Method;
use serde_json::{Value, json};

use crate::support::TestApp;

fn by_name<'a>(list: &'a [Value], name: &str) -> Option<&'a Value> {
    list.iter().find(|c| c["name"] == name)
}

fn codes(c: &Value) -> Vec<&str> {
    c["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["code"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn contacts_alike_are_ranked_with_their_reasons() {
    let app = TestApp::new().await;
    let ada = app
        .create(
            "/api/v1/contacts",
            json!({"first_name": "Ada", "last_name": "Lovelace",
                   "emails": [{"address": "ada@example.com"}],
                   "phones": [{"number": "+44 20 7946 0000"}]}),
        )
        .await;
    // Same email and a name alike: the strongest.
    app.create(
        "/api/v1/contacts",
        json!({"first_name": "Ada", "last_name": "Lovelace", "emails": [{"address": "ADA@example.com"}]}),
    )
    .await;
    // The same line written another way.
    app.create(
        "/api/v1/contacts",
        json!({"first_name": "Augusta", "last_name": "King", "phones": [{"number": "020 7946 0000"}]}),
    )
    .await;
    // A typo of the name, nothing else.
    app.create(
        "/api/v1/contacts",
        json!({"first_name": "Ada", "last_name": "Lovelance"}),
    )
    .await;
    // Not alike.
    app.create(
        "/api/v1/contacts",
        json!({"first_name": "Grace", "last_name": "Hopper", "emails": [{"address": "grace@example.com"}]}),
    )
    .await;
    // The same person in another tenant stays there.
    let other = app.tenant_token("elsewhere", "admin").await;
    app.send(
        Method::POST,
        "/api/v1/contacts",
        Some(&other),
        Some(json!({"first_name": "Ada", "last_name": "Lovelace", "emails": [{"address": "ada@example.com"}]})),
        &[],
    )
    .await
    .assert_status(201);

    let id = ada["id"].as_str().unwrap();
    let res = app.get(&format!("/api/v1/contacts/{id}/duplicates")).await;
    res.assert_status(200);
    let list = res.body.as_array().unwrap().clone();
    assert_eq!(list.len(), 3, "{list:#?}");
    assert_eq!(list[0]["name"], "Ada Lovelace");
    assert_eq!(codes(&list[0]), ["same_email", "similar_name"]);
    assert!(list[0]["score"].as_f64().unwrap() > 0.97, "{list:#?}");
    let king = by_name(&list, "Augusta King").unwrap();
    assert_eq!(codes(king), ["same_phone"]);
    assert_eq!(king["score"], 0.8);
    let typo = by_name(&list, "Ada Lovelance").unwrap();
    assert_eq!(codes(typo), ["similar_name"]);
    assert!(typo["score"].as_f64().unwrap() < king["score"].as_f64().unwrap());
    assert!(by_name(&list, "Grace Hopper").is_none());
    let scores: Vec<f64> = list.iter().map(|c| c["score"].as_f64().unwrap()).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");

    // Another tenant cannot ask about this contact.
    app.send(
        Method::GET,
        &format!("/api/v1/contacts/{id}/duplicates"),
        Some(&other),
        None,
        &[],
    )
    .await
    .assert_problem(404, "not_found");
}

#[tokio::test]
async fn accounts_alike_by_domain_or_name() {
    let app = TestApp::new().await;
    let acme = app
        .create(
            "/api/v1/accounts",
            json!({"name": "Acme Corp", "domain": "acme.com"}),
        )
        .await;
    app.create(
        "/api/v1/accounts",
        json!({"name": "ACME Corporation", "domain": "acme.com"}),
    )
    .await;
    app.create("/api/v1/accounts", json!({"name": "Acme Corp."}))
        .await;
    app.create(
        "/api/v1/accounts",
        json!({"name": "Globex", "domain": "globex.com"}),
    )
    .await;
    let id = acme["id"].as_str().unwrap();
    let list = app
        .get(&format!("/api/v1/accounts/{id}/duplicates"))
        .await
        .body;
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2, "{list:#?}");
    assert_eq!(list[0]["name"], "ACME Corporation");
    assert!(codes(&list[0]).contains(&"same_domain"));
    assert_eq!(list[1]["name"], "Acme Corp.");
    assert_eq!(codes(&list[1]), ["similar_name"]);
}

/// The check keys on every address and number a contact has, follows
/// edits and deletions, and meets names written in another order or with
/// accents.
#[tokio::test]
async fn match_keys_follow_every_address_edits_and_deletions() {
    let app = TestApp::new().await;
    let ada = app
        .create(
            "/api/v1/contacts",
            json!({"first_name": "Ada", "last_name": "Lovelace",
                   "emails": [{"address": "ada@work.example"}, {"address": "ada@home.example"}]}),
        )
        .await;
    let ada_id = ada["id"].as_str().unwrap();
    let jose = app
        .create(
            "/api/v1/contacts",
            json!({"first_name": "José", "last_name": "Álvarez"}),
        )
        .await;
    let duplicates_of = |body: Value| {
        let app = &app;
        async move {
            let created = app.create("/api/v1/contacts", body).await;
            let id = created["id"].as_str().unwrap().to_owned();
            let list = app.get(&format!("/api/v1/contacts/{id}/duplicates")).await;
            list.assert_status(200);
            app.delete(&format!("/api/v1/contacts/{id}"))
                .await
                .assert_status(204);
            list.body.as_array().unwrap().clone()
        }
    };

    // The second address counts as much as the first.
    let list = duplicates_of(json!({"first_name": "A.", "last_name": "King",
        "emails": [{"address": "Ada@Home.example"}]}))
    .await;
    assert_eq!(list.len(), 1, "{list:#?}");
    assert_eq!(list[0]["id"], ada_id);
    assert_eq!(codes(&list[0]), ["same_email"]);

    // Names in another order, or without their accents, meet.
    let list = duplicates_of(json!({"first_name": "Jose", "last_name": "Alvarez"})).await;
    assert_eq!(list.len(), 1, "{list:#?}");
    assert_eq!(list[0]["id"], jose["id"]);
    let list = duplicates_of(json!({"first_name": "Lovelace", "last_name": "Ada"})).await;
    assert!(list.iter().any(|c| c["id"] == ada_id), "{list:#?}");

    // After an edit the old address no longer matches and the new one does.
    app.send(
        Method::PATCH,
        &format!("/api/v1/contacts/{ada_id}"),
        Some(&app.token),
        Some(json!({"first_name": "Augusta", "emails": [{"address": "augusta@new.example"}]})),
        &[("if-match", &ada["version"].to_string())],
    )
    .await
    .assert_status(200);
    let list =
        duplicates_of(json!({"first_name": "Zed", "emails": [{"address": "ada@home.example"}]}))
            .await;
    assert!(list.is_empty(), "{list:#?}");
    let list =
        duplicates_of(json!({"first_name": "Zed", "emails": [{"address": "augusta@new.example"}]}))
            .await;
    assert_eq!(list.len(), 1, "{list:#?}");
    assert_eq!(list[0]["id"], ada_id);

    // A deleted contact leaves no keys behind.
    app.delete(&format!("/api/v1/contacts/{ada_id}"))
        .await
        .assert_status(204);
    let left = app
        .sql_count(&format!(
            "SELECT COUNT(*) AS n FROM match_keys WHERE record_id = {}",
            app.id_sql(ada_id)
        ))
        .await;
    assert_eq!(left, 0);
}

/// Records stored before match keys existed get them when the kernel
/// starts after the upgrade (the migration queues the rebuild).
#[tokio::test]
async fn records_from_before_the_upgrade_get_their_keys_at_start() {
    let app = TestApp::new().await;
    let ada = app
        .create(
            "/api/v1/contacts",
            json!({"first_name": "Ada", "last_name": "Lovelace",
                   "emails": [{"address": "ada@example.com"}]}),
        )
        .await;
    let acme = app
        .create(
            "/api/v1/accounts",
            json!({"name": "Acme", "domain": "acme.com"}),
        )
        .await;
    // As a database upgraded from before m0016 is: no keys, a rebuild queued.
    app.sql("DELETE FROM match_keys").await;
    app.sql("INSERT INTO pending_rebuilds (name) VALUES ('search')")
        .await;
    let probe = app
        .create(
            "/api/v1/contacts",
            json!({"first_name": "Someone", "emails": [{"address": "ada@example.com"}]}),
        )
        .await;
    let probe = format!(
        "/api/v1/contacts/{}/duplicates",
        probe["id"].as_str().unwrap()
    );
    assert_eq!(app.get(&probe).await.body, json!([]));

    let restarted = app.another_process().await;
    let found = restarted.get(&probe).await.body;
    assert_eq!(found.as_array().unwrap().len(), 1, "{found:#?}");
    assert_eq!(found[0]["id"], ada["id"]);
    let account = restarted
        .post(
            "/api/v1/accounts",
            json!({"name": "Acme Inc", "domain": "ACME.com"}),
        )
        .await;
    account.assert_status(201);
    assert_eq!(account.headers["trellis-duplicates"], "1");
    let id = account.body["id"].as_str().unwrap();
    let found = restarted
        .get(&format!("/api/v1/accounts/{id}/duplicates"))
        .await
        .body;
    assert_eq!(found[0]["id"], acme["id"], "{found:#?}");
    assert_eq!(
        restarted
            .sql_count("SELECT COUNT(*) AS n FROM pending_rebuilds")
            .await,
        0
    );
    drop(restarted);
}

/// A key shared by more records than one read may ask for (a switchboard
/// number) still answers: the candidates are capped, the create stands.
#[tokio::test]
async fn a_key_shared_by_hundreds_of_records_is_capped_not_an_error() {
    let app = TestApp::new().await;
    let items: Vec<Value> = (0..210)
        .map(|i| {
            let line = if i < 105 { "+44 20 7946 0000" } else { "+44 20 7946 0001" };
            json!({"first_name": format!("Person{i}"),
                   "emails": [{"address": format!("p{i}@example.com")}, {"address": "front@desk.example"}],
                   "phones": [{"number": line}]})
        })
        .collect();
    app.post(
        "/api/v1/contacts/bulk",
        json!({"operation": "create", "items": items}),
    )
    .await
    .assert_status(200);
    let res = app
        .post(
            "/api/v1/contacts",
            json!({"first_name": "Reception", "emails": [{"address": "front@desk.example"}],
                   "phones": [{"number": "020 7946 0000"}, {"number": "020 7946 0001"}]}),
        )
        .await;
    res.assert_status(201);
    assert_eq!(res.headers["trellis-duplicates"], "200");
    let id = res.body["id"].as_str().unwrap();
    let list = app.get(&format!("/api/v1/contacts/{id}/duplicates")).await;
    list.assert_status(200);
    assert_eq!(list.body.as_array().unwrap().len(), 200);
}
