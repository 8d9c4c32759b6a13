use serde_json::Value;
use trellis::seed::{self, DemoSize, Seeded};

use crate::support::TestApp;

#[tokio::test]
async fn demo_data_is_a_living_crm_and_seeding_twice_writes_nothing() {
    let app = TestApp::new().await;
    let (tenant, admin) = trellis::crm::tenants::ensure_default(&app.state.db)
        .await
        .unwrap();
    let size = DemoSize {
        accounts: 30,
        contacts: 120,
        deals: 40,
        activities: 60,
    };
    let first = seed::demo(&app.state.db, tenant.id, admin.id, size)
        .await
        .unwrap();
    assert_eq!(
        first,
        Seeded::Created {
            accounts: 30,
            contacts: 120,
            deals: 40,
            activities: 60
        }
    );
    let total = |path: &'static str| {
        let app = &app;
        async move { app.get(path).await.body["total"].as_u64().unwrap() }
    };
    assert_eq!(total("/api/v1/contacts?count=true&limit=1").await, 120);
    assert!(
        total("/api/v1/accounts?count=true&limit=1&filter=parent_id:is_null:false").await > 0,
        "a hierarchy"
    );
    let pipelines = app.get("/api/v1/pipelines").await.body;
    assert_eq!(pipelines.as_array().unwrap().len(), 2);
    let deals = app.get("/api/v1/deals?limit=200").await.body;
    let stages: std::collections::HashSet<&Value> = deals["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| &d["stage_id"])
        .collect();
    assert!(stages.len() > 2, "deals across stages");
    assert!(
        !app.get("/api/v1/search?q=smith")
            .await
            .body
            .as_array()
            .unwrap()
            .is_empty(),
        "searchable"
    );

    let again = seed::demo(&app.state.db, tenant.id, admin.id, size)
        .await
        .unwrap();
    assert_eq!(again, Seeded::AlreadyPresent);
    assert_eq!(total("/api/v1/contacts?count=true&limit=1").await, 120);
}
