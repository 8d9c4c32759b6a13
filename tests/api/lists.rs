use std::collections::HashSet;

use serde_json::{Value, json};

use crate::support::TestApp;

async fn seed_people(app: &TestApp, n: usize) {
    let items: Vec<Value> = (0..n)
        .map(|i| {
            let last = ["Adams", "Baker", "Clark"][i % 3];
            let stage = ["lead", "customer"][i % 2];
            json!({
                "first_name": format!("P{i:03}"),
                "last_name": last,
                "tags": if i % 4 == 0 { json!(["vip"]) } else { json!([]) },
                "lifecycle_stage": stage,
                "job_title": if i % 5 == 0 { Value::Null } else { json!("Engineer") },
                "custom": if i % 10 == 0 { json!({}) } else { json!({"score": (i * 7) % 100}) }
            })
        })
        .collect();
    let res = app
        .post(
            "/api/v1/contacts/bulk",
            json!({"operation": "create", "items": items}),
        )
        .await;
    res.assert_status(200);
    assert_eq!(res.body["count"], n);
}

/// Walks every page of a list and returns the rows in order.
async fn walk(app: &TestApp, query: &str) -> Vec<Value> {
    let mut rows = Vec::new();
    let mut url = format!("/api/v1/contacts?{query}");
    for _ in 0..100 {
        let res = app.get(&url).await;
        res.assert_status(200);
        rows.extend(res.body["data"].as_array().unwrap().iter().cloned());
        match res.body["next_cursor"].as_str() {
            Some(c) => url = format!("/api/v1/contacts?{query}&cursor={c}"),
            None => return rows,
        }
    }
    panic!("pagination did not end");
}

#[tokio::test]
async fn cursor_pages_cover_every_row_once_in_order_for_any_sort() {
    let app = TestApp::new().await;
    app.create("/api/v1/custom-fields", json!({"object_type": "contact", "key": "score", "label": "Score", "field_type": "integer"}))
        .await;
    seed_people(&app, 130).await;

    for (query, key) in [
        ("limit=50&sort=last_name", "last_name"),
        ("limit=7&sort=-first_name", "first_name"),
        ("limit=9&sort=job_title", "job_title"),
        ("limit=11&sort=-custom.score", "score"),
        ("limit=50", "created_at"),
    ] {
        let rows = walk(&app, query).await;
        assert_eq!(rows.len(), 130, "{query}");
        let ids: HashSet<_> = rows
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(ids.len(), 130, "no row twice: {query}");
        let values: Vec<Value> = rows
            .iter()
            .map(|r| {
                if key == "score" {
                    r["custom"]["score"].clone()
                } else {
                    r[key].clone()
                }
            })
            .collect();
        // NULLs come last; the rest is ordered as asked.
        let first_null = values
            .iter()
            .position(Value::is_null)
            .unwrap_or(values.len());
        assert!(
            values[first_null..].iter().all(Value::is_null),
            "{query}: nulls last"
        );
        let present = &values[..first_null];
        let descending = query.contains("sort=-") || key == "created_at";
        for w in present.windows(2) {
            let ordered = match (&w[0], &w[1]) {
                (Value::Number(a), Value::Number(b)) => {
                    if descending {
                        a.as_i64() >= b.as_i64()
                    } else {
                        a.as_i64() <= b.as_i64()
                    }
                }
                (Value::String(a), Value::String(b)) => {
                    if descending {
                        a >= b
                    } else {
                        a <= b
                    }
                }
                _ => false,
            };
            assert!(ordered, "{query}: {} then {}", w[0], w[1]);
        }
    }
}

#[tokio::test]
async fn filters_on_built_in_and_custom_fields_with_totals() {
    let app = TestApp::new().await;
    app.create("/api/v1/custom-fields", json!({"object_type": "contact", "key": "score", "label": "Score", "field_type": "integer"}))
        .await;
    seed_people(&app, 60).await;
    let count = |q: &'static str| {
        let app = &app;
        async move {
            let res = app
                .get(&format!("/api/v1/contacts?count=true&limit=200&{q}"))
                .await;
            res.assert_status(200);
            let total = res.body["total"].as_u64().unwrap();
            assert_eq!(
                total as usize,
                res.body["data"].as_array().unwrap().len(),
                "{q}"
            );
            total
        }
    };
    assert_eq!(count("").await, 60);
    assert_eq!(count("filter=last_name:eq:Adams").await, 20);
    assert_eq!(count("filter=last_name:ne:Adams").await, 40);
    assert_eq!(count("filter=last_name:in:Adams,Clark").await, 40);
    assert_eq!(
        count("filter=first_name:starts_with:p00").await,
        10,
        "case-insensitive"
    );
    assert_eq!(
        count("filter=first_name:contains:05").await,
        11,
        "P005 and P050-P059"
    );
    assert_eq!(count("filter=tags:contains:vip").await, 15);
    assert_eq!(count("filter=job_title:is_null:true").await, 12);
    assert_eq!(
        count("filter=lifecycle_stage:eq:customer&filter=last_name:eq:Baker").await,
        10
    );
    // Custom fields compare by their type: 90 > 9 numerically.
    let expected = (0..60)
        .filter(|i| i % 10 != 0 && (i * 7) % 100 >= 50)
        .count() as u64;
    assert_eq!(count("filter=custom.score:gte:50").await, expected);
    assert_eq!(count("filter=custom.score:is_null:true").await, 6);
    let expected = (0..60).filter(|i| i % 10 != 0 && (i * 7) % 100 < 9).count() as u64;
    assert_eq!(count("filter=custom.score:lt:9").await, expected);
}

#[tokio::test]
async fn bad_list_parameters_are_named() {
    let app = TestApp::new().await;
    let res = app.get("/api/v1/contacts?filter=custom.nope:eq:1&filter=lifecycle_stage:eq:alien&limit=500&sort=tags&colour=red").await;
    res.assert_problem(422, "validation_failed");
    let fields = res.error_fields();
    for f in ["filter.custom.nope", "limit", "sort", "colour"] {
        assert!(
            fields.contains(&f.to_owned()),
            "{f} missing from {fields:?}"
        );
    }
    let res = app
        .get("/api/v1/contacts?filter=lifecycle_stage:eq:alien")
        .await;
    assert_eq!(res.error_fields(), vec!["filter.lifecycle_stage"]);
    let res = app
        .get("/api/v1/contacts?filter=created_at:gt:yesterday")
        .await;
    assert_eq!(res.error_fields(), vec!["filter.created_at"]);
    app.get("/api/v1/contacts?cursor=not-a-cursor")
        .await
        .assert_problem(400, "invalid_cursor");

    // A cursor made for one sort is refused for another.
    app.create("/api/v1/custom-fields", json!({"object_type": "contact", "key": "score", "label": "Score", "field_type": "integer"}))
        .await;
    seed_people(&app, 3).await;
    let page = app.get("/api/v1/contacts?limit=1&sort=last_name").await;
    let cursor = page.body["next_cursor"].as_str().unwrap();
    app.get(&format!(
        "/api/v1/contacts?limit=1&sort=first_name&cursor={cursor}"
    ))
    .await
    .assert_problem(400, "invalid_cursor");
}
