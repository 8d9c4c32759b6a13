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
