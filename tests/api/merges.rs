//! Merging duplicates through the API: what moves, what the survivor keeps,
//! the merged ids resolving to it, the audit trail, undo (within its
//! period, keeping later changes), bad requests, the create-time duplicate
//! policy and the review queue of a background scan.

use axum::http::Method;
use serde_json::{Value, json};

use crate::support::TestApp;

fn ids(list: &Value) -> Vec<String> {
    let mut out: Vec<String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["account_id"].as_str().unwrap().to_owned())
        .collect();
    out.sort();
    out
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[tokio::test]
async fn merging_contacts_moves_everything_and_undo_puts_it_back() {
    let app = TestApp::new().await;
    app.sales_pipeline().await;
    let ada = app
        .create(
            "/api/v1/contacts",
            json!({"first_name": "Ada", "last_name": "Lovelace",
                   "emails": [{"address": "ada@example.com", "primary": true}],
                   "tags": ["vip"]}),
        )
        .await;
    let dup = app
        .create(
            "/api/v1/contacts",
            json!({"first_name": "Ada", "last_name": "King",
                   "emails": [{"address": "ADA@example.com", "primary": true}, {"address": "ada@home.example"}],
                   "phones": [{"number": "+44 20 7946 0000"}],
                   "job_title": "Countess", "tags": ["new"], "do_not_call": true}),
        )
        .await;
    let byron = app
        .create("/api/v1/contacts", json!({"first_name": "Byron"}))
        .await;
    let (a, d, b) = (
        ada["id"].as_str().unwrap(),
        dup["id"].as_str().unwrap(),
        byron["id"].as_str().unwrap(),
    );
    let acme = app
        .create("/api/v1/accounts", json!({"name": "Acme"}))
        .await;
    let globex = app
        .create("/api/v1/accounts", json!({"name": "Globex"}))
        .await;
    for (contact, account) in [(a, &acme), (d, &acme), (d, &globex)] {
        app.post(
            &format!("/api/v1/contacts/{contact}/accounts"),
            json!({"account_id": account["id"]}),
        )
        .await
        .assert_status(201);
    }
    // One relationship moves (to Byron); one joins the two merged records
    // and goes.
    for (from, to, kind) in [(d, b, "parent"), (a, d, "spouse")] {
        app.post(
            &format!("/api/v1/contacts/{from}/relationships"),
            json!({"to_contact_id": to, "kind": kind}),
        )
        .await
        .assert_status(201);
    }
    app.create(
        "/api/v1/custom-fields",
        json!({"object_type": "deal", "key": "referrer", "label": "Referrer",
               "field_type": "reference", "reference_type": "contact"}),
    )
    .await;
    let deal = app
        .create(
            "/api/v1/deals",
            json!({"name": "Engine", "amount": "100", "currency": "GBP", "contact_id": d,
                   "custom": {"referrer": d}}),
        )
        .await;
    let task = app
        .create(
            "/api/v1/activities",
            json!({"kind": "task", "subject": "Call back", "contact_id": d}),
        )
        .await;

    let res = app
        .post(
            "/api/v1/contacts/merge",
            json!({"survivor_id": a, "merged_ids": [d], "fields": {"last_name": d}}),
        )
        .await;
    res.assert_status(201);
    let merge = res.body["merge"].clone();
    let rec = res.body["record"].clone();
    assert_eq!(merge["survivor_id"], a);
    assert_eq!(merge["merged_ids"], json!([d]));
    assert_eq!(
        merge["moved"],
        json!({"deals": 1, "activities": 1, "links": 1, "relationships_from": 1,
               "custom.deal.referrer": 1})
    );
    // Chosen, kept, filled in, united.
    assert_eq!(rec["last_name"], "King");
    assert_eq!(rec["first_name"], "Ada");
    assert_eq!(rec["job_title"], "Countess");
    assert_eq!(rec["do_not_call"], true);
    assert_eq!(rec["tags"], json!(["vip", "new"]));
    assert_eq!(
        rec["emails"],
        json!([{"address": "ada@example.com", "label": null, "primary": true},
               {"address": "ada@home.example", "label": null, "primary": false}])
    );
    assert_eq!(rec["phones"][0]["number"], "+44 20 7946 0000");

    // The merged id still resolves, to the survivor; it cannot be deleted.
    let res = app.get(&format!("/api/v1/contacts/{d}")).await;
    res.assert_status(200);
    assert_eq!(res.body["id"], a);
    app.delete(&format!("/api/v1/contacts/{d}"))
        .await
        .assert_status(404);
    let moved_deal = app
        .get(&format!("/api/v1/deals/{}", deal["id"].as_str().unwrap()))
        .await
        .body;
    assert_eq!(moved_deal["contact_id"], a);
    assert_eq!(moved_deal["custom"]["referrer"], a);
    assert!(moved_deal["version"].as_i64() > deal["version"].as_i64());
    let moved_task = app
        .get(&format!(
            "/api/v1/activities/{}",
            task["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(moved_task.body["contact_id"], a);
    assert_eq!(
        moved_task.body["version"],
        task["version"].as_i64().unwrap() + 1
    );
    let links = app.get(&format!("/api/v1/contacts/{a}/accounts")).await;
    assert_eq!(
        ids(&links.body),
        sorted(vec![
            acme["id"].as_str().unwrap().to_owned(),
            globex["id"].as_str().unwrap().to_owned()
        ])
    );
    let rels = app
        .get(&format!("/api/v1/contacts/{a}/relationships"))
        .await;
    let rels = rels.body.as_array().unwrap();
    assert_eq!(rels.len(), 1, "{rels:?}");
    assert_eq!(rels[0]["to_contact_id"], b);
    // Audited on both records.
    for (id, member) in [(a, "merged_ids"), (d, "merged_into")] {
        let trail = app
            .get(&format!("/api/v1/audit?record_id={id}&action=merge"))
            .await;
        let entries = trail.body["data"].as_array().unwrap();
        assert_eq!(entries.len(), 1, "{entries:?}");
        assert!(!entries[0]["changes"][member].is_null());
    }
    // The survivor's timeline holds the merged record's history too.
    let timeline = app.get(&format!("/api/v1/contacts/{a}/timeline")).await;
    let created: Vec<&Value> = timeline
        .body
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "create")
        .collect();
    let mut whose: Vec<&str> = created
        .iter()
        .map(|e| e["record_id"].as_str().unwrap())
        .collect();
    whose.sort();
    assert_eq!(whose, sorted(vec![a.to_owned(), d.to_owned()]));
    // The merged record left the search index.
    let found = app.get("/api/v1/search?q=ada%40home.example").await;
    let hits: Vec<&str> = found
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_str().unwrap())
        .collect();
    assert_eq!(hits, [a]);

    // Undo.
    let mid = merge["id"].as_str().unwrap();
    let listed = app.get("/api/v1/merges?object_type=contact").await;
    assert_eq!(listed.body[0]["id"], mid);
    let res = app
        .post(&format!("/api/v1/merges/{mid}/undo"), json!({}))
        .await;
    res.assert_status(200);
    assert!(res.body["undone_at"].is_string());
    let back = app.get(&format!("/api/v1/contacts/{d}")).await;
    back.assert_status(200);
    assert_eq!(back.body["id"], d);
    for field in [
        "last_name",
        "emails",
        "phones",
        "job_title",
        "tags",
        "version",
    ] {
        assert_eq!(back.body[field], dup[field], "{field}");
    }
    let survivor = app.get(&format!("/api/v1/contacts/{a}")).await.body;
    for field in ["last_name", "emails", "job_title", "tags", "do_not_call"] {
        assert_eq!(survivor[field], ada[field], "{field}");
    }
    let deal_back = app
        .get(&format!("/api/v1/deals/{}", deal["id"].as_str().unwrap()))
        .await
        .body;
    assert_eq!(deal_back["contact_id"], d);
    assert_eq!(deal_back["custom"]["referrer"], d);
    let links = app.get(&format!("/api/v1/contacts/{d}/accounts")).await;
    assert_eq!(links.body.as_array().unwrap().len(), 2);
    let links = app.get(&format!("/api/v1/contacts/{a}/accounts")).await;
    assert_eq!(links.body.as_array().unwrap().len(), 1);
    let rels = app
        .get(&format!("/api/v1/contacts/{d}/relationships"))
        .await;
    assert_eq!(rels.body.as_array().unwrap().len(), 2, "{:?}", rels.body);
    let trail = app
        .get(&format!("/api/v1/audit?record_id={d}&action=unmerge"))
        .await;
    assert_eq!(trail.body["data"].as_array().unwrap().len(), 1);
    // Once only.
    app.post(&format!("/api/v1/merges/{mid}/undo"), json!({}))
        .await
        .assert_problem(409, "merge_undone");
}

#[tokio::test]
async fn undo_keeps_later_changes_and_ends_with_its_period() {
    let app = TestApp::new().await;
    let a = app
        .create(
            "/api/v1/contacts",
            json!({"first_name": "Grace", "last_name": "Hopper", "lead_source": "web"}),
        )
        .await;
    let b = app
        .create(
            "/api/v1/contacts",
            json!({"first_name": "Grace", "last_name": "Hopper", "job_title": "Rear Admiral", "lead_source": "fair"}),
        )
        .await;
    let res = app
        .post(
            "/api/v1/contacts/merge",
            json!({"survivor_id": a["id"], "merged_ids": [b["id"]], "rule": "newest"}),
        )
        .await;
    res.assert_status(201);
    assert_eq!(res.body["record"]["lead_source"], "fair");
    assert_eq!(res.body["record"]["job_title"], "Rear Admiral");
    let id = a["id"].as_str().unwrap();
    // Changed again after the merge: the undo leaves it.
    app.patch(
        &format!("/api/v1/contacts/{id}"),
        json!({"job_title": "Commodore", "version": res.body["record"]["version"]}),
    )
    .await
    .assert_status(200);
    let mid = res.body["merge"]["id"].as_str().unwrap().to_owned();
    app.post(&format!("/api/v1/merges/{mid}/undo"), json!({}))
        .await
        .assert_status(200);
    let now = app.get(&format!("/api/v1/contacts/{id}")).await.body;
    assert_eq!(now["job_title"], "Commodore");
    assert_eq!(now["lead_source"], "web");

    // With no undo period, a merge is final.
    app.patch("/api/v1/tenant", json!({"merge_undo_days": 0}))
        .await
        .assert_status(200);
    let res = app
        .post(
            "/api/v1/contacts/merge",
            json!({"survivor_id": a["id"], "merged_ids": [b["id"]]}),
        )
        .await;
    res.assert_status(201);
    let mid = res.body["merge"]["id"].as_str().unwrap().to_owned();
    app.post(&format!("/api/v1/merges/{mid}/undo"), json!({}))
        .await
        .assert_problem(409, "undo_period_over");
    app.patch("/api/v1/tenant", json!({"merge_undo_days": 400}))
        .await
        .assert_problem(422, "validation_failed");
}

#[tokio::test]
async fn bad_merges_are_refused_and_change_nothing() {
    let app = TestApp::new().await;
    let a = app
        .create("/api/v1/contacts", json!({"first_name": "Alan"}))
        .await;
    let b = app
        .create(
            "/api/v1/contacts",
            json!({"first_name": "Alan", "job_title": "x"}),
        )
        .await;
    let other = app.tenant_token("elsewhere", "admin").await;
    let theirs = app
        .send(
            Method::POST,
            "/api/v1/contacts",
            Some(&other),
            Some(json!({"first_name": "Alan"})),
            &[],
        )
        .await;
    let cases = [
        (
            json!({"survivor_id": a["id"], "merged_ids": []}),
            "merged_ids",
        ),
        (
            json!({"survivor_id": a["id"], "merged_ids": [a["id"]]}),
            "merged_ids[0]",
        ),
        (
            json!({"survivor_id": a["id"], "merged_ids": [theirs.body["id"]]}),
            "merged_ids[0]",
        ),
        (
            json!({"survivor_id": a["id"], "merged_ids": [b["id"]], "fields": {"nope": b["id"]}}),
            "fields.nope",
        ),
        (
            json!({"survivor_id": a["id"], "merged_ids": [b["id"]], "fields": {"job_title": theirs.body["id"]}}),
            "fields.job_title",
        ),
    ];
    for (body, field) in cases {
        let res = app.post("/api/v1/contacts/merge", body).await;
        res.assert_problem(422, "validation_failed");
        assert_eq!(res.error_fields(), [field]);
    }
    app.post(
        "/api/v1/contacts/merge",
        json!({"survivor_id": a["id"], "merged_ids": [b["id"]], "version": 7}),
    )
    .await
    .assert_problem(409, "version_conflict");
    let reader = app.role_token("read_only").await;
    app.send(
        Method::POST,
        "/api/v1/contacts/merge",
        Some(&reader),
        Some(json!({"survivor_id": a["id"], "merged_ids": [b["id"]]})),
        &[],
    )
    .await
    .assert_status(403);
    // Deals cannot be merged: there is no such route.
    assert_eq!(
        app.post("/api/v1/deals/merge", json!({}))
            .await
            .status
            .as_u16(),
        405
    );
    for r in [&a, &b] {
        let now = app
            .get(&format!("/api/v1/contacts/{}", r["id"].as_str().unwrap()))
            .await;
        assert_eq!(now.body, *r);
    }
    assert_eq!(
        app.get("/api/v1/merges?object_type=contact")
            .await
            .body
            .as_array()
            .unwrap()
            .len(),
        0
    );
}

#[tokio::test]
async fn merging_accounts_moves_children_contacts_and_deals() {
    let app = TestApp::new().await;
    app.sales_pipeline().await;
    let holding = app
        .create(
            "/api/v1/accounts",
            json!({"name": "Acme Corp", "domain": "acme.example", "industry": "Tools"}),
        )
        .await;
    let h = holding["id"].as_str().unwrap();
    // The survivor hangs below the account merged into it.
    let acme = app
        .create("/api/v1/accounts", json!({"name": "Acme", "parent_id": h}))
        .await;
    let s = acme["id"].as_str().unwrap();
    let branch = app
        .create(
            "/api/v1/accounts",
            json!({"name": "Acme Leeds", "parent_id": h}),
        )
        .await;
    let person = app
        .create("/api/v1/contacts", json!({"first_name": "Wile"}))
        .await;
    app.post(
        &format!(
            "/api/v1/contacts/{}/accounts",
            person["id"].as_str().unwrap()
        ),
        json!({"account_id": h}),
    )
    .await
    .assert_status(201);
    let deal = app
        .create(
            "/api/v1/deals",
            json!({"name": "Anvils", "amount": "10", "currency": "USD", "account_id": h}),
        )
        .await;
    let res = app
        .post(
            "/api/v1/accounts/merge",
            json!({"survivor_id": s, "merged_ids": [h]}),
        )
        .await;
    res.assert_status(201);
    let rec = &res.body["record"];
    assert!(rec["parent_id"].is_null(), "{rec}");
    assert_eq!(rec["domain"], "acme.example");
    assert_eq!(rec["industry"], "Tools");
    assert_eq!(rec["name"], "Acme");
    let b = app
        .get(&format!(
            "/api/v1/accounts/{}",
            branch["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(b.body["parent_id"], s);
    assert_eq!(
        app.get(&format!("/api/v1/deals/{}", deal["id"].as_str().unwrap()))
            .await
            .body["account_id"],
        s
    );
    assert_eq!(
        app.get(&format!("/api/v1/accounts/{h}")).await.body["id"],
        s
    );

    let mid = res.body["merge"]["id"].as_str().unwrap().to_owned();
    app.post(&format!("/api/v1/merges/{mid}/undo"), json!({}))
        .await
        .assert_status(200);
    let back = app.get(&format!("/api/v1/accounts/{s}")).await.body;
    assert_eq!(back["parent_id"], h);
    assert!(back["domain"].is_null());
    let b = app
        .get(&format!(
            "/api/v1/accounts/{}",
            branch["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(b.body["parent_id"], h);
    let restored = app.get(&format!("/api/v1/accounts/{h}")).await.body;
    assert_eq!(restored["id"], h);
    assert_eq!(restored["version"], holding["version"]);
    let links = app
        .get(&format!(
            "/api/v1/contacts/{}/accounts",
            person["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(links.body[0]["account_id"], h);
}

#[tokio::test]
async fn creating_a_likely_duplicate_warns_or_is_refused_by_policy() {
    let app = TestApp::new().await;
    let ada = app
        .create(
            "/api/v1/contacts",
            json!({"first_name": "Ada", "last_name": "Lovelace", "emails": [{"address": "ada@example.com"}]}),
        )
        .await;
    // The default: created, with a count and a link to the candidates.
    let res = app
        .post(
            "/api/v1/contacts",
            json!({"first_name": "A.", "last_name": "Lovelace", "emails": [{"address": "Ada@Example.com"}]}),
        )
        .await;
    res.assert_status(201);
    assert_eq!(res.headers["trellis-duplicates"], "1");
    let id = res.body["id"].as_str().unwrap();
    assert_eq!(
        res.headers["link"],
        format!("</api/v1/contacts/{id}/duplicates>; rel=\"duplicates\"").as_str()
    );
    let plain = app
        .post("/api/v1/contacts", json!({"first_name": "Grace"}))
        .await;
    plain.assert_status(201);
    assert!(plain.headers.get("trellis-duplicates").is_none());

    app.patch("/api/v1/tenant", json!({"duplicate_policy": "block"}))
        .await
        .assert_status(200);
    let before = app.count_contacts().await;
    let res = app
        .post(
            "/api/v1/contacts",
            json!({"first_name": "Someone", "emails": [{"address": "ADA@example.com"}]}),
        )
        .await;
    res.assert_problem(409, "duplicate");
    let candidates = res.body["candidates"].as_array().unwrap();
    assert!(
        candidates.iter().any(|c| c["id"] == ada["id"]),
        "{candidates:?}"
    );
    assert_eq!(app.count_contacts().await, before);
    // A weaker likeness (a name alike) only warns, even under block.
    let res = app
        .post(
            "/api/v1/contacts",
            json!({"first_name": "Ada", "last_name": "Lovelace"}),
        )
        .await;
    res.assert_status(201);
    assert!(res.headers.get("trellis-duplicates").is_some());
    // Accounts: the same domain is near-certain.
    app.create(
        "/api/v1/accounts",
        json!({"name": "Globex", "domain": "globex.example"}),
    )
    .await;
    app.post(
        "/api/v1/accounts",
        json!({"name": "Globex Inc", "domain": "GLOBEX.example"}),
    )
    .await
    .assert_problem(409, "duplicate");

    app.patch("/api/v1/tenant", json!({"duplicate_policy": "off"}))
        .await
        .assert_status(200);
    let res = app
        .post(
            "/api/v1/contacts",
            json!({"first_name": "Ada", "emails": [{"address": "ada@example.com"}]}),
        )
        .await;
    res.assert_status(201);
    assert!(res.headers.get("trellis-duplicates").is_none());
    let res = app
        .patch("/api/v1/tenant", json!({"duplicate_policy": "sometimes"}))
        .await;
    res.assert_problem(422, "validation_failed");
    assert_eq!(res.error_fields(), ["duplicate_policy"]);
}

#[tokio::test]
async fn a_scan_fills_the_review_queue_and_dismissals_stick() {
    let app = TestApp::new().await;
    app.patch("/api/v1/tenant", json!({"duplicate_policy": "off"}))
        .await
        .assert_status(200);
    let mut made = Vec::new();
    for body in [
        json!({"first_name": "Ada", "last_name": "Lovelace", "emails": [{"address": "ada@example.com"}]}),
        json!({"first_name": "Ada", "last_name": "Lovelace", "emails": [{"address": "ada@example.com"}]}),
        json!({"first_name": "Grace", "last_name": "Hopper", "phones": [{"number": "+1 202 555 0100"}]}),
        json!({"first_name": "Grace", "last_name": "Hopper", "phones": [{"number": "(202) 555-0100"}]}),
        json!({"first_name": "Alan", "last_name": "Turing"}),
    ] {
        made.push(app.create("/api/v1/contacts", body).await);
    }
    let res = app
        .post("/api/v1/duplicates/scan", json!({"object_type": "contact"}))
        .await;
    res.assert_status(202);
    assert!(app.run_jobs().await >= 1);
    let queue = app.get("/api/v1/duplicates?object_type=contact").await;
    queue.assert_status(200);
    let pairs = queue.body.as_array().unwrap().clone();
    assert_eq!(pairs.len(), 2, "{pairs:#?}");
    assert_eq!(pairs[0]["record_name"], "Ada Lovelace");
    assert!(pairs[0]["score"].as_f64().unwrap() > pairs[1]["score"].as_f64().unwrap());
    let grace = pairs[1]["id"].as_str().unwrap();
    app.post(&format!("/api/v1/duplicates/{grace}/dismiss"), json!({}))
        .await
        .assert_status(204);
    // A second scan finds the same pairs: the dismissed one stays so.
    app.post("/api/v1/duplicates/scan", json!({"object_type": "contact"}))
        .await
        .assert_status(202);
    app.run_jobs().await;
    let open = app.get("/api/v1/duplicates?object_type=contact").await;
    assert_eq!(open.body.as_array().unwrap().len(), 1);
    let dismissed = app
        .get("/api/v1/duplicates?object_type=contact&status=dismissed")
        .await;
    assert_eq!(dismissed.body[0]["id"], grace);
    // Merging the other pair resolves it.
    let ada = &open.body[0];
    app.post(
        "/api/v1/contacts/merge",
        json!({"survivor_id": ada["record_id"], "merged_ids": [ada["other_id"]]}),
    )
    .await
    .assert_status(201);
    let open = app.get("/api/v1/duplicates?object_type=contact").await;
    assert_eq!(open.body.as_array().unwrap().len(), 0);
    let merged = app
        .get("/api/v1/duplicates?object_type=contact&status=merged")
        .await;
    // The merged record is gone: the pair is listed no more.
    assert_eq!(merged.body.as_array().unwrap().len(), 0);
    app.post("/api/v1/duplicates/scan", json!({"object_type": "deal"}))
        .await
        .assert_problem(422, "validation_failed");
}

#[tokio::test]
async fn held_contacts_stay_and_self_references_and_account_cycles_are_handled() {
    let app = TestApp::new().await;
    app.create(
        "/api/v1/custom-fields",
        json!({"object_type": "contact", "key": "referred_by", "label": "Referred by",
               "field_type": "reference", "reference_type": "contact"}),
    )
    .await;
    let b = app
        .create("/api/v1/contacts", json!({"first_name": "Bea"}))
        .await;
    let a = app
        .create(
            "/api/v1/contacts",
            json!({"first_name": "Bea", "custom": {"referred_by": b["id"]}}),
        )
        .await;
    // The survivor referred to the record merged into it: now to itself.
    let res = app
        .post(
            "/api/v1/contacts/merge",
            json!({"survivor_id": a["id"], "merged_ids": [b["id"]]}),
        )
        .await;
    res.assert_status(201);
    assert_eq!(res.body["record"]["custom"]["referred_by"], a["id"]);

    // A contact under legal hold is not merged away.
    let held = app
        .create("/api/v1/contacts", json!({"first_name": "Held"}))
        .await;
    app.put(
        &format!(
            "/api/v1/contacts/{}/legal-hold",
            held["id"].as_str().unwrap()
        ),
        json!({"legal_hold": true}),
    )
    .await
    .assert_status(204);
    app.post(
        "/api/v1/contacts/merge",
        json!({"survivor_id": a["id"], "merged_ids": [held["id"]]}),
    )
    .await
    .assert_problem(409, "legal_hold");
    app.get(&format!(
        "/api/v1/contacts/{}",
        held["id"].as_str().unwrap()
    ))
    .await
    .assert_status(200);

    // M > C > S: merging M into S would put C below S, which is below C.
    let m = app.create("/api/v1/accounts", json!({"name": "M"})).await;
    let c = app
        .create(
            "/api/v1/accounts",
            json!({"name": "C", "parent_id": m["id"]}),
        )
        .await;
    let s_ = app
        .create(
            "/api/v1/accounts",
            json!({"name": "S", "parent_id": c["id"]}),
        )
        .await;
    let res = app
        .post(
            "/api/v1/accounts/merge",
            json!({"survivor_id": s_["id"], "merged_ids": [m["id"]]}),
        )
        .await;
    res.assert_problem(409, "merge_would_cycle");
    assert!(res.body["detail"].as_str().unwrap().contains("`C`"));
    app.get(&format!("/api/v1/accounts/{}", m["id"].as_str().unwrap()))
        .await
        .assert_status(200);
}
