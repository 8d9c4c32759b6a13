//! Imports through the real API and job runner: the messy-CSV corpus, XLSX,
//! JSON lines and vCard; mapping, transforms and templates; modes; dry runs
//! and the error file; resuming a crashed import; round trips with export.

use axum::body::Body;
use axum::http::{Method, Request};
use serde_json::{Value, json};

use crate::support::{Response, TestApp};

async fn upload_as(
    app: &TestApp,
    token: &str,
    object: &str,
    filename: &str,
    bytes: Vec<u8>,
) -> Response {
    let req = Request::builder()
        .method(Method::POST)
        .uri(format!(
            "/api/v1/imports?object={object}&filename={filename}"
        ))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/octet-stream")
        .body(Body::from(bytes))
        .unwrap();
    app.raw(req).await
}

async fn upload(app: &TestApp, object: &str, filename: &str, bytes: Vec<u8>) -> Value {
    let res = upload_as(app, &app.token, object, filename, bytes).await;
    res.assert_status(201);
    res.body
}

/// Starts an uploaded import, runs the job queue, and returns the import.
async fn start(app: &TestApp, id: &str, body: Value) -> Value {
    app.post(&format!("/api/v1/imports/{id}/start"), body)
        .await
        .assert_status(202);
    app.run_jobs().await;
    let done = app.get(&format!("/api/v1/imports/{id}")).await;
    done.assert_status(200);
    done.body
}

async fn import(app: &TestApp, object: &str, filename: &str, bytes: Vec<u8>, body: Value) -> Value {
    let up = upload(app, object, filename, bytes).await;
    start(app, up["id"].as_str().unwrap(), body).await
}

async fn contacts(app: &TestApp, token: Option<&str>) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/contacts?limit=200&sort=created_at&cursor={c}"),
            None => "/api/v1/contacts?limit=200&sort=created_at".to_owned(),
        };
        let res = app
            .send(
                Method::GET,
                &path,
                Some(token.unwrap_or(&app.token)),
                None,
                &[],
            )
            .await;
        res.assert_status(200);
        out.extend(res.body["data"].as_array().unwrap().iter().cloned());
        match res.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return out,
        }
    }
}

fn by_email<'a>(all: &'a [Value], email: &str) -> &'a Value {
    all.iter()
        .find(|c| c["email"] == email)
        .unwrap_or_else(|| panic!("no contact {email} in {all:#?}"))
}

async fn rejects(app: &TestApp, id: &str) -> Vec<Value> {
    let res = app
        .get(&format!("/api/v1/imports/{id}/rejects?limit=1000"))
        .await;
    res.assert_status(200);
    res.body.as_array().unwrap().clone()
}

#[tokio::test]
async fn the_messy_csv_corpus_reads_every_case() {
    let app = TestApp::new().await;
    // UTF-8 with a byte-order mark, CRLF, RFC 4180 quoting: commas, quotes
    // and line breaks inside values (csv-spectrum's cases), a blank line,
    // a short (ragged) row and a row with too many values.
    let mut utf8 = b"\xEF\xBB\xBF".to_vec();
    utf8.extend_from_slice(
        "First Name,Last Name,Email,Title\r\n\
         Zoë,\"O'Brien, Jr.\",zoe@example.com,\"Head of \"\"Growth\"\"\"\r\n\
         \r\n\
         Ann,\"Multi\r\nLine\",ann@example.com,CEO\r\n\
         Bob,Short,bob@example.com\r\n\
         Eve,Long,eve@example.com,CTO,extra\r\n"
            .as_bytes(),
    );
    let done = import(&app, "contacts", "utf8.csv", utf8, json!({})).await;
    assert_eq!(done["status"], "done", "{done:#}");
    assert_eq!(done["encoding"], "UTF-8");
    assert_eq!(done["delimiter"], ",");
    assert_eq!(done["total_rows"], 4);
    assert_eq!(done["created"], 3);
    assert_eq!(done["rejected"], 1);
    let all = contacts(&app, None).await;
    let zoe = by_email(&all, "zoe@example.com");
    assert_eq!(zoe["first_name"], "Zoë");
    assert_eq!(zoe["last_name"], "O'Brien, Jr.");
    assert_eq!(zoe["job_title"], "Head of \"Growth\"");
    assert_eq!(
        by_email(&all, "ann@example.com")["last_name"],
        "Multi\r\nLine"
    );
    assert!(by_email(&all, "bob@example.com")["job_title"].is_null());
    let bad = rejects(&app, done["id"].as_str().unwrap()).await;
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0]["row"], 4);
    assert_eq!(bad[0]["line"], 7);
    assert_eq!(bad[0]["errors"][0]["code"], "unreadable_row");

    // UTF-16 (little-endian, with its mark), tab-separated.
    let text =
        "Email\tFirst Name\tLast Name\nmia@example.com\tMía\tSørensen\nli@example.com\t李\t小龍\n";
    let mut utf16 = vec![0xFF, 0xFE];
    utf16.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
    let done = import(&app, "contacts", "utf16.txt", utf16, json!({})).await;
    assert_eq!(done["encoding"], "UTF-16LE");
    assert_eq!(done["delimiter"], "\t");
    assert_eq!(done["created"], 2, "{done:#}");

    // Windows-1252 (what Excel saves as "CSV" in much of Europe):
    // semicolons, CR-only line ends, a trailing blank line.
    let latin =
        "Nachname;Vorname;E-Mail\rMüller;Jürgen;juergen@example.de\rNuñez;José;jose@example.es\r\r";
    let bytes: Vec<u8> = latin
        .chars()
        .map(|c| u8::try_from(u32::from(c)).unwrap())
        .collect();
    let up = upload(&app, "contacts", "excel.csv", bytes).await;
    assert_eq!(up["encoding"], "windows-1252");
    assert_eq!(up["delimiter"], ";");
    assert_eq!(up["headers"], json!(["Nachname", "Vorname", "E-Mail"]));
    // German headers are not guessed: the mapping is given.
    let done = start(
        &app,
        up["id"].as_str().unwrap(),
        json!({"mapping": [
            {"column": "Nachname", "field": "last_name"},
            {"column": "Vorname", "field": "first_name"},
            {"column": "E-Mail", "field": "emails"}
        ]}),
    )
    .await;
    assert_eq!(done["created"], 2, "{done:#}");
    let all = contacts(&app, None).await;
    assert_eq!(by_email(&all, "juergen@example.de")["last_name"], "Müller");
    assert_eq!(by_email(&all, "jose@example.es")["first_name"], "José");
    assert_eq!(by_email(&all, "li@example.com")["last_name"], "小龍");
}

#[tokio::test]
async fn a_dry_run_reports_row_errors_and_the_error_file_fixes_exactly_them() {
    let app = TestApp::new().await;
    app.create(
        "/api/v1/custom-fields",
        json!({"object_type": "contact", "key": "birthday", "label": "Birthday", "field_type": "date"}),
    )
    .await;
    let csv = "Name,Email,Stage,Birthday\n\
               Ada Lovelace,ada@example.com,Customer,10/12/1815\n\
               Bad Email,not-an-email,Lead,01/01/1990\n\
               Alan Turing,alan@example.com,Wizard,23/06/1912\n\
               Grace Hopper,grace@example.com,Lead,31/02/1906\n\
               Linus,linus@example.com,lead,28/12/1969\n";
    let up = upload(&app, "contacts", "people.csv", csv.as_bytes().to_vec()).await;
    let id = up["id"].as_str().unwrap().to_owned();
    let suggested = up["suggested_mapping"].as_array().unwrap();
    let fields: Vec<&str> = suggested
        .iter()
        .map(|m| m["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        ["full_name", "emails", "lifecycle_stage", "custom.birthday"]
    );
    let mut mapping = up["suggested_mapping"].clone();
    mapping[3]["transform"] = json!({"kind": "date", "format": "%d/%m/%Y"});
    let body = json!({"mapping": mapping, "dry_run": true});
    let dry = start(&app, &id, body).await;
    assert_eq!(dry["status"], "done");
    assert!(dry["dry_run"].as_bool().unwrap());
    assert_eq!(dry["created"], 2, "{dry:#}");
    assert_eq!(dry["rejected"], 3);
    // Nothing was written.
    assert_eq!(app.count_contacts().await, 0);
    let bad = rejects(&app, &id).await;
    let rows: Vec<i64> = bad.iter().map(|r| r["row"].as_i64().unwrap()).collect();
    assert_eq!(rows, [2, 3, 4]);
    assert_eq!(bad[0]["errors"][0]["column"], "Email");
    assert_eq!(bad[0]["errors"][0]["code"], "invalid_format");
    assert_eq!(bad[1]["errors"][0]["column"], "Stage");
    assert_eq!(bad[1]["errors"][0]["code"], "invalid_option");
    assert_eq!(bad[2]["errors"][0]["column"], "Birthday");

    // The real run on the same upload writes the valid rows.
    let real = start(&app, &id, json!({"mapping": mapping})).await;
    assert_eq!(real["created"], 2, "{real:#}");
    assert_eq!(real["rejected"], 3);
    let all = contacts(&app, None).await;
    let ada = by_email(&all, "ada@example.com");
    assert_eq!(ada["first_name"], "Ada");
    assert_eq!(ada["last_name"], "Lovelace");
    assert_eq!(ada["lifecycle_stage"], "customer");
    assert_eq!(ada["custom"]["birthday"], "1815-12-10");

    // The error file: the original columns, the rejected rows, the reasons.
    let file = app.get(&format!("/api/v1/imports/{id}/errors-file")).await;
    file.assert_status(200);
    assert!(
        file.headers["content-disposition"]
            .to_str()
            .unwrap()
            .contains("people-errors.csv")
    );
    let text = file.body.as_str().unwrap().to_owned();
    let (headers, records) = file.csv();
    assert_eq!(
        headers,
        ["Name", "Email", "Stage", "Birthday", "Import errors"]
    );
    assert_eq!(records.len(), 3);
    assert_eq!(records[0][1], "not-an-email");
    assert!(records[0][4].starts_with("Email: "), "{}", records[0][4]);
    // Fixed and imported again with the same mapping: exactly those rows.
    let fixed = text
        .replace("not-an-email", "bad@example.com")
        .replace("Wizard", "Opportunity")
        .replace("31/02/1906", "09/12/1906");
    let again = import(
        &app,
        "contacts",
        "people-errors.csv",
        fixed.into_bytes(),
        json!({"mapping": mapping}),
    )
    .await;
    assert_eq!(again["created"], 3, "{again:#}");
    assert_eq!(again["rejected"], 0);
    assert_eq!(app.count_contacts().await, 5);
    // Every imported row is audited like an API write.
    let audited = app
        .sql_count("SELECT COUNT(*) AS n FROM audit_log WHERE object_type = 'contact' AND action = 'create'")
        .await;
    assert_eq!(audited, 5);
}

#[tokio::test]
async fn transforms_templates_and_modes() {
    let app = TestApp::new().await;
    app.create(
        "/api/v1/custom-fields",
        json!({"object_type": "contact", "key": "external_id", "label": "External id", "field_type": "text", "unique": true}),
    )
    .await;
    let csv = "Full Name,E-mail,Phone,Rating,Ext\n\
               Ludwig van Beethoven,LUDWIG@Example.com,(415) 555-2671,Hot,X-1\n\
               \"Hopper, Grace\",grace@example.com,030 901820,Cold,X-2\n";
    let mapping = json!([
        {"column": "Full Name", "field": "full_name"},
        {"column": "E-mail", "field": "emails", "transform": {"kind": "lowercase"}},
        {"column": "Phone", "field": "phones", "transform": {"kind": "e164", "region": "US"}},
        {"column": "Rating", "field": "lifecycle_stage",
         "transform": {"kind": "map", "values": {"Hot": "sales_qualified", "Cold": "subscriber"}}},
        {"column": "Ext", "field": "custom.external_id"}
    ]);
    let done = import(
        &app,
        "contacts",
        "crm.csv",
        csv.as_bytes().to_vec(),
        json!({"mapping": mapping, "save_template": "Old CRM"}),
    )
    .await;
    // The German number is not a US number: that row is rejected.
    assert_eq!(done["created"], 1, "{done:#}");
    let bad = rejects(&app, done["id"].as_str().unwrap()).await;
    assert_eq!(bad[0]["errors"][0]["column"], "Phone");
    let all = contacts(&app, None).await;
    let lvb = by_email(&all, "ludwig@example.com");
    assert_eq!(lvb["first_name"], "Ludwig");
    assert_eq!(lvb["last_name"], "van Beethoven");
    assert_eq!(lvb["phones"][0]["number"], "+14155552671");
    assert_eq!(lvb["lifecycle_stage"], "sales_qualified");

    // The template holds the mapping; a new file with the same columns
    // uses it by name, here updating by the external id.
    let templates = app.get("/api/v1/import-templates").await;
    assert_eq!(templates.body[0]["name"], "Old CRM");
    let update = "Full Name,E-mail,Phone,Rating,Ext\n\
                  Ludwig van Beethoven,ludwig@bonn.de,+49 228 981750,Cold,X-1\n\
                  Nobody Here,nobody@example.com,,Cold,X-404\n";
    let done = import(
        &app,
        "contacts",
        "update.csv",
        update.as_bytes().to_vec(),
        json!({"template": "Old CRM", "mode": "update", "match_on": "custom.external_id"}),
    )
    .await;
    assert_eq!(done["updated"], 1, "{done:#}");
    assert_eq!(done["created"], 0);
    let bad = rejects(&app, done["id"].as_str().unwrap()).await;
    assert_eq!(bad[0]["errors"][0]["code"], "no_match");
    let all = contacts(&app, None).await;
    assert_eq!(all.len(), 1);
    let lvb = &all[0];
    // Lists grow: the old address stays primary, the new one is added.
    assert_eq!(lvb["email"], "ludwig@example.com");
    let emails: Vec<&str> = lvb["emails"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["address"].as_str().unwrap())
        .collect();
    assert_eq!(emails, ["ludwig@example.com", "ludwig@bonn.de"]);
    assert_eq!(lvb["phones"].as_array().unwrap().len(), 2);
    assert_eq!(lvb["lifecycle_stage"], "subscriber");
    assert_eq!(lvb["version"], 2);

    // Upsert by email: one update, one create.
    let upsert = "Email,First Name,Job Title\nludwig@example.com,Ludwig,Composer\nclara@example.com,Clara,Pianist\n";
    let done = import(
        &app,
        "contacts",
        "upsert.csv",
        upsert.as_bytes().to_vec(),
        json!({"mode": "upsert"}),
    )
    .await;
    assert_eq!(
        (done["created"].as_i64(), done["updated"].as_i64()),
        (Some(1), Some(1)),
        "{done:#}"
    );
    assert_eq!(done["options"]["match_on"], "emails");
    let all = contacts(&app, None).await;
    assert_eq!(
        by_email(&all, "ludwig@example.com")["job_title"],
        "Composer"
    );
    assert_eq!(by_email(&all, "clara@example.com")["job_title"], "Pianist");

    // Create mode treats a match as a duplicate, with the record it matched.
    let done = import(
        &app,
        "contacts",
        "dup.csv",
        upsert.as_bytes().to_vec(),
        json!({}),
    )
    .await;
    assert_eq!(done["created"], 0);
    assert_eq!(done["rejected"], 2);
    let bad = rejects(&app, done["id"].as_str().unwrap()).await;
    assert_eq!(bad[0]["errors"][0]["code"], "duplicate");
    assert_eq!(bad[0]["errors"][0]["column"], "Email");

    // Bad options are 422s naming the field.
    let up = upload(&app, "contacts", "x.csv", upsert.as_bytes().to_vec()).await;
    let path = format!("/api/v1/imports/{}/start", up["id"].as_str().unwrap());
    app.post(
        &path,
        json!({"mapping": [{"column": "Nope", "field": "first_name"}]}),
    )
    .await
    .assert_problem(422, "validation_failed");
    let res = app
        .post(&path, json!({"mode": "update", "match_on": "job_title"}))
        .await;
    res.assert_problem(422, "validation_failed");
    assert_eq!(res.error_fields(), ["match_on"]);
    let res = app
        .post(&path, json!({"mapping": [{"column": "Email", "field": "emails", "transform": {"kind": "e164", "region": "XX"}}]}))
        .await;
    assert_eq!(res.error_fields(), ["mapping[0].transform.region"]);
}

#[tokio::test]
async fn contacts_link_to_accounts_found_or_created() {
    let app = TestApp::new().await;
    let acme = app
        .create(
            "/api/v1/accounts",
            json!({"name": "Acme Corp", "domain": "acme.com"}),
        )
        .await;
    let csv = "Email,Company,Website\n\
               a@acme.com,ACME,https://www.acme.com/\n\
               b@globex.com,Globex,globex.com\n\
               c@globex.com,Globex,globex.com\n\
               d@initech.com,Initech,\n";
    // Without creating missing accounts, rows naming unknown ones wait.
    let done = import(
        &app,
        "contacts",
        "co.csv",
        csv.as_bytes().to_vec(),
        json!({}),
    )
    .await;
    assert_eq!(done["created"], 1, "{done:#}");
    assert_eq!(done["rejected"], 3);
    let bad = rejects(&app, done["id"].as_str().unwrap()).await;
    assert_eq!(bad[0]["errors"][0]["column"], "Website");
    assert_eq!(bad[0]["errors"][0]["code"], "not_found");
    let links = app
        .sql_count(&format!(
            "SELECT COUNT(*) AS n FROM contact_accounts WHERE account_id = {}",
            app.id_sql(acme["id"].as_str().unwrap())
        ))
        .await;
    assert_eq!(links, 1);
    // With it, Globex is created once and Initech by name.
    let done = import(
        &app,
        "contacts",
        "co.csv",
        csv.as_bytes().to_vec(),
        json!({"mode": "upsert", "create_missing_accounts": true, "account_role": "buyer"}),
    )
    .await;
    assert_eq!(done["created"], 3, "{done:#}");
    assert_eq!(done["updated"], 1);
    let accounts = app.get("/api/v1/accounts?limit=50&sort=name").await.body;
    let names: Vec<&str> = accounts["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Acme Corp", "Globex", "Initech"]);
    assert_eq!(
        app.sql_count("SELECT COUNT(*) AS n FROM contact_accounts")
            .await,
        4,
        "the re-imported row is not linked twice"
    );
    assert_eq!(
        app.sql_count("SELECT COUNT(*) AS n FROM contact_accounts WHERE role = 'buyer'")
            .await,
        3
    );

    // One account per company however the rows spell its case, with or
    // without its domain; a name with non-ASCII capitals finds itself.
    let csv = "Email,Company,Website
               e@hooli.com,Hooli,hooli.com
               f@hooli.com,HOOLI,
               g@aerzte.de,Ärzte GmbH,
               h@aerzte.de,ÄRZTE GMBH,
";
    let done = import(
        &app,
        "contacts",
        "more.csv",
        csv.as_bytes().to_vec(),
        json!({"create_missing_accounts": true}),
    )
    .await;
    assert_eq!(done["created"], 4, "{done:#}");
    let csv = "Email,Company
i@aerzte.de,Ärzte GmbH
";
    let done = import(
        &app,
        "contacts",
        "again.csv",
        csv.as_bytes().to_vec(),
        json!({"create_missing_accounts": true}),
    )
    .await;
    assert_eq!(done["created"], 1, "{done:#}");
    let accounts = app.get("/api/v1/accounts?limit=50&sort=name").await.body;
    let mut names: Vec<&str> = accounts["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    // Sorted here: databases' collations place `Ä` differently.
    names.sort_unstable();
    assert_eq!(
        names,
        ["Acme Corp", "Globex", "Hooli", "Initech", "Ärzte GmbH"]
    );
}

#[tokio::test]
async fn a_crashed_import_resumes_from_its_last_batch_without_duplicates() {
    let app = TestApp::new().await;
    let mut csv = String::from("First Name,Last Name,Email\n");
    for i in 0..2500 {
        // Every 500th row is bad.
        let email = if i % 500 == 7 {
            format!("p{i}-at-example.com")
        } else {
            format!("p{i}@example.com")
        };
        csv.push_str(&format!("P{i},Resume,{email}\n"));
    }
    let up = upload(&app, "contacts", "big.csv", csv.clone().into_bytes()).await;
    let id = up["id"].as_str().unwrap().to_owned();
    app.post(&format!("/api/v1/imports/{id}/start"), json!({}))
        .await
        .assert_status(202);
    // A second start (a double click) is refused, never a reset.
    app.post(&format!("/api/v1/imports/{id}/start"), json!({}))
        .await
        .assert_problem(409, "import_started");
    // A process runs one batch and dies (its job lease left behind).
    let tenant = app.state.db.clone();
    let import_id = uuid::Uuid::parse_str(&id).unwrap();
    let tenant_id = trellis::crm::tenants::ensure_default(&tenant)
        .await
        .unwrap()
        .0
        .id;
    let ended = trellis::imports::run::run(&app.state, tenant_id, import_id, None, Some(1))
        .await
        .unwrap();
    assert_eq!(ended, trellis::imports::run::Ended::Paused);
    let mid = app.get(&format!("/api/v1/imports/{id}")).await.body;
    assert_eq!(mid["status"], "running");
    assert_eq!(mid["processed_rows"], 1000);
    assert_eq!(mid["created"], 998);
    assert_eq!(app.count_contacts().await, 998);
    // Another process takes the job over and resumes after row 1000.
    app.run_jobs().await;
    let done = app.get(&format!("/api/v1/imports/{id}")).await.body;
    assert_eq!(done["status"], "done", "{done:#}");
    assert_eq!(done["processed_rows"], 2500);
    assert_eq!(done["created"], 2495);
    assert_eq!(done["rejected"], 5);
    assert_eq!(done["percent"], 100.0);
    assert_eq!(app.count_contacts().await, 2495);
    assert_eq!(
        app.sql_count("SELECT COUNT(DISTINCT email) AS n FROM contacts")
            .await,
        2495
    );
    assert_eq!(rejects(&app, &id).await.len(), 5);
    // The stored file is gone once the import is done; its rejects stay.
    assert_eq!(
        app.sql_count("SELECT COUNT(*) AS n FROM import_chunks")
            .await,
        0
    );

    // The same file again creates nothing: every row is a duplicate.
    let again = import(
        &app,
        "contacts",
        "big.csv",
        csv.clone().into_bytes(),
        json!({}),
    )
    .await;
    assert_eq!(again["created"], 0);
    assert_eq!(again["rejected"], 2500);
    assert_eq!(app.count_contacts().await, 2495);
    // As an upsert it changes nothing and creates nothing.
    let again = import(
        &app,
        "contacts",
        "big.csv",
        csv.into_bytes(),
        json!({"mode": "upsert"}),
    )
    .await;
    assert_eq!(again["created"], 0, "{again:#}");
    assert_eq!(again["updated"], 2495);
    assert_eq!(app.count_contacts().await, 2495);
}

#[tokio::test]
async fn imports_keep_to_the_callers_rights_and_tenant() {
    let app = TestApp::new().await;
    let csv = b"Email\nx@example.com\n".to_vec();
    let reader = app.role_token("read_only").await;
    upload_as(&app, &reader, "contacts", "x.csv", csv.clone())
        .await
        .assert_problem(403, "forbidden");
    let up = upload(&app, "contacts", "x.csv", csv.clone()).await;
    let id = up["id"].as_str().unwrap();
    let other = app.tenant_token("other", "admin").await;
    let res = app
        .send(
            Method::GET,
            &format!("/api/v1/imports/{id}"),
            Some(&other),
            None,
            &[],
        )
        .await;
    res.assert_problem(404, "not_found");
    let res = app
        .send(
            Method::POST,
            &format!("/api/v1/imports/{id}/start"),
            Some(&other),
            Some(json!({})),
            &[],
        )
        .await;
    res.assert_problem(404, "not_found");
    // Bad files are 422s naming the file; unknown objects name the object.
    upload_as(
        &app,
        &app.token,
        "contacts",
        "x.xlsx",
        b"not a zip".to_vec(),
    )
    .await
    .assert_problem(422, "validation_failed");
    upload_as(&app, &app.token, "deals", "x.csv", csv.clone())
        .await
        .assert_problem(422, "validation_failed");
    upload_as(&app, &app.token, "contacts", "x.pdf", csv)
        .await
        .assert_problem(422, "validation_failed");
}

/// Upload, start and run an import as `token`'s tenant; the import's state.
async fn import_as(
    app: &TestApp,
    token: &str,
    object: &str,
    filename: &str,
    bytes: Vec<u8>,
    body: Value,
) -> Value {
    let up = upload_as(app, token, object, filename, bytes).await;
    up.assert_status(201);
    let id = up.body["id"].as_str().unwrap().to_owned();
    app.send(
        Method::POST,
        &format!("/api/v1/imports/{id}/start"),
        Some(token),
        Some(body),
        &[],
    )
    .await
    .assert_status(202);
    app.run_jobs().await;
    let res = app
        .send(
            Method::GET,
            &format!("/api/v1/imports/{id}"),
            Some(token),
            None,
            &[],
        )
        .await;
    res.assert_status(200);
    res.body
}

async fn export_as(app: &TestApp, token: &str, path: &str) -> Vec<u8> {
    app.get_bytes(path, token).await
}

/// What a contact holds, without what a tenant of its own gives it anew.
fn content(c: &Value) -> Value {
    let mut c = c.clone();
    let o = c.as_object_mut().unwrap();
    for k in ["id", "created_at", "updated_at", "version", "owner_id"] {
        o.remove(k);
    }
    c
}

async fn contents_as(app: &TestApp, token: &str) -> Vec<Value> {
    let mut all: Vec<Value> = contacts(app, Some(token))
        .await
        .iter()
        .map(content)
        .collect();
    all.sort_by_key(|c| c["last_name"].as_str().unwrap_or_default().to_owned());
    all
}

/// Contacts with every kind of built-in and custom value survive export to
/// CSV, JSON lines and XLSX and import into another tenant unchanged.
#[tokio::test]
async fn export_then_import_is_lossless_in_csv_json_lines_and_xlsx() {
    let app = TestApp::new().await;
    let field = json!({"object_type": "contact", "key": "member_since", "label": "Member since", "field_type": "date"});
    let tiers = json!({"object_type": "contact", "key": "tiers", "label": "Tiers", "field_type": "multi_select", "options": ["gold", "silver", "bronze"]});
    let visits = json!({"object_type": "contact", "key": "visits", "label": "Visits", "field_type": "integer"});
    let budget = json!({"object_type": "contact", "key": "budget", "label": "Budget", "field_type": "decimal"});
    let csv_tenant = app.tenant_token("csv-copy", "admin").await;
    let jsonl_tenant = app.tenant_token("jsonl-copy", "admin").await;
    let xlsx_tenant = app.tenant_token("xlsx-copy", "admin").await;
    for token in [&app.token, &csv_tenant, &jsonl_tenant, &xlsx_tenant] {
        for f in [&field, &tiers, &visits, &budget] {
            app.send(
                Method::POST,
                "/api/v1/custom-fields",
                Some(token),
                Some(f.clone()),
                &[],
            )
            .await
            .assert_status(201);
        }
    }
    app.create(
        "/api/v1/contacts",
        json!({
            "first_name": "Zoë", "last_name": "O'Brien, \"Jr.\"",
            "emails": [{"address": "zoe@example.com", "label": "work", "primary": true},
                       {"address": "zoe@home.example", "label": "home", "primary": false}],
            "phones": [{"number": "+14155550100", "label": "mobile"}],
            "job_title": "Head of\nGrowth", "lifecycle_stage": "customer", "lead_source": "fair; 2026",
            "tags": ["vip", "a; b"], "do_not_email": true, "do_not_call": false, "preferred_channel": "phone",
            "custom": {"member_since": "2019-02-28", "tiers": ["gold", "bronze"], "visits": 12, "budget": "1250.50"}
        }),
    )
    .await;
    app.create(
        "/api/v1/contacts",
        json!({"first_name": "李", "last_name": "小龍"}),
    )
    .await;
    app.create(
        "/api/v1/contacts",
        json!({"last_name": "Only", "emails": [{"address": "only@example.com"}], "tags": []}),
    )
    .await;
    let original = contents_as(&app, &app.token).await;
    assert_eq!(original.len(), 3);

    for (token, format, file) in [
        (&csv_tenant, "csv", "contacts.csv"),
        (&jsonl_tenant, "jsonl", "contacts.jsonl"),
        (&xlsx_tenant, "xlsx", "contacts.xlsx"),
    ] {
        let bytes = export_as(
            &app,
            &app.token,
            &format!("/api/v1/contacts/export?format={format}"),
        )
        .await;
        let done = import_as(&app, token, "contacts", file, bytes, json!({})).await;
        assert_eq!(done["status"], "done", "{done:#}");
        assert_eq!(done["created"], 3, "{format}: {done:#}");
        assert_eq!(contents_as(&app, token).await, original, "{format}");
    }
}

/// vCard 3.0 and 4.0 cards (folded lines, escapes, several emails and
/// numbers) become contacts; a vCard export imports into another tenant.
#[tokio::test]
async fn vcards_of_both_versions_import_and_round_trip() {
    let app = TestApp::new().await;
    let cards = "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Ada Lovelace\r\nN:Lovelace;Ada;;;\r\n\
                 EMAIL;TYPE=INTERNET,WORK:ada@example.com\r\nEMAIL;TYPE=HOME:ada@home.example\r\n\
                 TEL;TYPE=CELL:+44 20 7946 0000\r\nTITLE:Analyst\\, first\r\nORG:Analytical Engines Ltd\r\n\
                 CATEGORIES:math,vip\r\nNOTE:Wrote the first\r\n  program\r\nEND:VCARD\r\n\
                 BEGIN:VCARD\r\nVERSION:4.0\r\nFN:Grace Hopper\r\nN:Hopper;Grace;;;\r\n\
                 EMAIL;TYPE=work;PREF=1:grace@example.com\r\nTEL;VALUE=uri;TYPE=\"voice,work\":tel:+1-202-555-0100\r\n\
                 END:VCARD\r\n";
    let done = import(
        &app,
        "contacts",
        "cards.vcf",
        cards.as_bytes().to_vec(),
        json!({"create_missing_accounts": true}),
    )
    .await;
    assert_eq!(done["status"], "done", "{done:#}");
    assert_eq!(done["created"], 2, "{done:#}");
    let all = contacts(&app, None).await;
    let ada = by_email(&all, "ada@example.com");
    assert_eq!(ada["first_name"], "Ada");
    assert_eq!(ada["last_name"], "Lovelace");
    assert_eq!(ada["job_title"], "Analyst, first");
    assert_eq!(ada["emails"][1]["address"], "ada@home.example");
    assert_eq!(ada["phones"][0]["number"], "+44 20 7946 0000");
    assert_eq!(ada["tags"], json!(["math", "vip"]));
    let grace = by_email(&all, "grace@example.com");
    assert_eq!(grace["phones"][0]["number"], "+1-202-555-0100");
    let accounts = app.get("/api/v1/accounts").await.body;
    assert_eq!(accounts["data"][0]["name"], "Analytical Engines Ltd");

    let copy = app.tenant_token("vcard-copy", "admin").await;
    let bytes = export_as(&app, &app.token, "/api/v1/contacts/export?format=vcf").await;
    let done = import_as(&app, &copy, "contacts", "export.vcf", bytes, json!({})).await;
    assert_eq!(done["created"], 2, "{done:#}");
    let copied = contacts(&app, Some(&copy)).await;
    for (a, b) in [
        (ada, by_email(&copied, "ada@example.com")),
        (grace, by_email(&copied, "grace@example.com")),
    ] {
        for k in ["first_name", "last_name", "job_title", "tags"] {
            assert_eq!(a[k], b[k], "{k}");
        }
        let addresses = |c: &Value| {
            c["emails"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["address"].clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(addresses(a), addresses(b));
        let numbers = |c: &Value| {
            c["phones"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["number"].clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(numbers(a), numbers(b));
    }
}

/// A minimal XLSX workbook (what Excel writes, shared and inline strings,
/// numbers and a date serial) read from its first sheet.
fn xlsx(rows: &[&[&str]]) -> Vec<u8> {
    use std::io::Write;
    let mut strings: Vec<String> = Vec::new();
    let mut sheet = String::from(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>"#,
    );
    for (r, row) in rows.iter().enumerate() {
        sheet.push_str(&format!(r#"<row r="{}">"#, r + 1));
        for (c, cell) in row.iter().enumerate() {
            let at = format!("{}{}", (b'A' + c as u8) as char, r + 1);
            if let Some(n) = cell.strip_prefix('#') {
                sheet.push_str(&format!(r#"<c r="{at}"><v>{n}</v></c>"#));
            } else if let Some(s) = cell.strip_prefix('~') {
                sheet.push_str(&format!(
                    r#"<c r="{at}" t="inlineStr"><is><t>{s}</t></is></c>"#
                ));
            } else if !cell.is_empty() {
                strings.push((*cell).to_owned());
                sheet.push_str(&format!(
                    r#"<c r="{at}" t="s"><v>{}</v></c>"#,
                    strings.len() - 1
                ));
            }
        }
        sheet.push_str("</row>");
    }
    sheet.push_str("</sheetData></worksheet>");
    let shared: String = strings
        .iter()
        .map(|s| format!("<si><t>{}</t></si>", s.replace('&', "&amp;")))
        .collect();
    let files = [
        (
            "[Content_Types].xml",
            r#"<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/><Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>"#.to_owned(),
        ),
        (
            "_rels/.rels",
            r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#.to_owned(),
        ),
        (
            "xl/workbook.xml",
            r#"<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="People" sheetId="1" r:id="rId1"/></sheets></workbook>"#.to_owned(),
        ),
        (
            "xl/_rels/workbook.xml.rels",
            r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/><Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings" Target="sharedStrings.xml"/></Relationships>"#.to_owned(),
        ),
        ("xl/worksheets/sheet1.xml", sheet),
        (
            "xl/sharedStrings.xml",
            format!(
                r#"<?xml version="1.0" encoding="UTF-8"?><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="{n}" uniqueCount="{n}">{shared}</sst>"#,
                n = strings.len()
            ),
        ),
    ];
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, body) in files {
        zip.start_file(name, zip::write::SimpleFileOptions::default())
            .unwrap();
        zip.write_all(body.as_bytes()).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

#[tokio::test]
async fn xlsx_sheets_import_with_numbers_and_blank_rows() {
    let app = TestApp::new().await;
    app.create(
        "/api/v1/custom-fields",
        json!({"object_type": "contact", "key": "score", "label": "Score", "field_type": "integer"}),
    )
    .await;
    let file = xlsx(&[
        &["First Name", "Last Name", "Email", "Score"],
        &["Ada", "~Lovelace", "ada@example.com", "#42"],
        &[],
        &["Grace", "Hopper & Co", "grace@example.com", "#7"],
        &["Bad", "Score", "bad@example.com", "lots"],
    ]);
    let up = upload(&app, "contacts", "people.xlsx", file).await;
    assert_eq!(up["format"], "xlsx");
    assert_eq!(
        up["headers"],
        json!(["First Name", "Last Name", "Email", "Score"])
    );
    assert_eq!(up["total_rows"], 3);
    let done = start(&app, up["id"].as_str().unwrap(), json!({})).await;
    assert_eq!(done["created"], 2, "{done:#}");
    assert_eq!(done["rejected"], 1);
    let all = contacts(&app, None).await;
    assert_eq!(by_email(&all, "ada@example.com")["last_name"], "Lovelace");
    assert_eq!(by_email(&all, "ada@example.com")["custom"]["score"], 42);
    assert_eq!(
        by_email(&all, "grace@example.com")["last_name"],
        "Hopper & Co"
    );
    let bad = rejects(&app, done["id"].as_str().unwrap()).await;
    assert_eq!(bad[0]["row"], 3);
    assert_eq!(bad[0]["errors"][0]["column"], "Score");
}

/// Before-write hooks see every imported row: a plugin's patch is written
/// and its refusal rejects just that row.
#[tokio::test]
async fn plugin_hooks_run_on_imported_rows() {
    let app = TestApp::new().await;
    app.enable_plugin(
        "testing/tidy",
        json!([
            "records:contact:read",
            "records:contact:create",
            "records:contact:update"
        ]),
        json!({}),
    )
    .await
    .assert_status(200);
    let csv = "First Name,Last Name,Email\nada,lovelace,ADA@Example.com\ngrace,hopper,grace@example.com\n";
    let done = import(
        &app,
        "contacts",
        "tidy.csv",
        csv.as_bytes().to_vec(),
        json!({}),
    )
    .await;
    assert_eq!(done["created"], 2, "{done:#}");
    let all = contacts(&app, None).await;
    let ada = by_email(&all, "ada@example.com");
    assert_eq!(
        (ada["first_name"].as_str(), ada["last_name"].as_str()),
        (Some("Ada"), Some("Lovelace"))
    );
    assert_eq!(by_email(&all, "grace@example.com")["last_name"], "Hopper");
}

/// A plugin built for contract 0.1.0 (no batch hook) still sees every
/// imported row: its patches are written and its refusal rejects only its
/// row, with the plugin's error in the error file.
#[tokio::test]
async fn an_older_contracts_plugin_checks_imported_rows_one_by_one() {
    let app = TestApp::new().await;
    app.enable_plugin(
        "testing/legacy",
        json!([
            "records:contact:read",
            "records:contact:create",
            "records:contact:update"
        ]),
        json!({}),
    )
    .await
    .assert_status(200);
    let csv = "Email,Job Title\nada@example.com,Engineer\nno@example.com,forbidden\ngrace@example.com,Admiral\n";
    let done = import(
        &app,
        "contacts",
        "legacy.csv",
        csv.as_bytes().to_vec(),
        json!({}),
    )
    .await;
    assert_eq!(done["created"], 2, "{done:#}");
    assert_eq!(done["rejected"], 1, "{done:#}");
    let bad = rejects(&app, done["id"].as_str().unwrap()).await;
    assert_eq!(bad[0]["row"], 2);
    assert!(bad[0].to_string().contains("legacy"), "{:#}", bad[0]);
    let all = contacts(&app, None).await;
    assert_eq!(
        by_email(&all, "ada@example.com")["job_title"],
        "Engineer (legacy)"
    );
    assert_eq!(
        by_email(&all, "grace@example.com")["job_title"],
        "Admiral (legacy)"
    );
}

/// A unique custom value claimed by a new row and an updated row of one
/// batch is written once: the new row is rejected, on both databases.
#[tokio::test]
async fn a_unique_value_is_not_claimed_twice_in_one_batch() {
    let app = TestApp::new().await;
    app.create(
        "/api/v1/custom-fields",
        json!({"object_type": "contact", "key": "ext", "label": "External id", "field_type": "text", "unique": true}),
    )
    .await;
    app.create(
        "/api/v1/contacts",
        json!({"first_name": "Old", "emails": [{"address": "old@example.com"}], "custom": {"ext": "E1"}}),
    )
    .await;
    let csv = "Email,External id\nnew@example.com,E2\nold@example.com,E2\n";
    let done = import(
        &app,
        "contacts",
        "ext.csv",
        csv.as_bytes().to_vec(),
        json!({"mode": "upsert", "match_on": "emails"}),
    )
    .await;
    assert_eq!(done["updated"], 1, "{done:#}");
    assert_eq!(done["created"], 0, "{done:#}");
    assert_eq!(done["rejected"], 1);
    let bad = rejects(&app, done["id"].as_str().unwrap()).await;
    assert_eq!(bad[0]["row"], 1);
    assert_eq!(app.sql_count("SELECT COUNT(*) AS n FROM contacts").await, 1);
}

/// The error file of a vCard or JSON-lines import is in that format: the
/// rejected cards or lines only, each carrying its errors, and importing
/// it again once fixed brings in exactly those.
#[tokio::test]
async fn error_files_keep_the_uploads_format() {
    let app = TestApp::new().await;
    let cards = "BEGIN:VCARD\r\nVERSION:4.0\r\nFN:Good Card\r\nN:Card;Good;;;\r\nEMAIL:good@example.com\r\nEND:VCARD\r\n\
                 BEGIN:VCARD\r\nVERSION:4.0\r\nFN:Bad Card\r\nN:Card;Bad;;;\r\nEMAIL:bad-at-example.com\r\nEND:VCARD\r\n";
    let done = import(
        &app,
        "contacts",
        "cards.vcf",
        cards.as_bytes().to_vec(),
        json!({}),
    )
    .await;
    assert_eq!(
        (done["created"].as_i64(), done["rejected"].as_i64()),
        (Some(1), Some(1)),
        "{done:#}"
    );
    let id = done["id"].as_str().unwrap();
    let res = app.get(&format!("/api/v1/imports/{id}/errors-file")).await;
    res.assert_status(200);
    assert!(
        res.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/vcard")
    );
    let file = res.body.as_str().unwrap().to_owned();
    assert_eq!(file.matches("BEGIN:VCARD").count(), 1, "{file}");
    assert!(
        file.contains("FN:Bad Card") && !file.contains("Good Card"),
        "{file}"
    );
    assert!(file.contains("X-TRELLIS-IMPORT-ERRORS:"), "{file}");
    let fixed = file.replace("bad-at-example.com", "bad@example.com");
    let again = import(&app, "contacts", "fixed.vcf", fixed.into_bytes(), json!({})).await;
    assert_eq!(
        (again["created"].as_i64(), again["rejected"].as_i64()),
        (Some(1), Some(0)),
        "{again:#}"
    );

    let lines = "{\"first_name\":\"Ok\",\"emails\":\"ok@example.com\"}\n{\"first_name\":\"No\",\"emails\":\"no-at-example.com\"}\n";
    let done = import(
        &app,
        "contacts",
        "rows.jsonl",
        lines.as_bytes().to_vec(),
        json!({}),
    )
    .await;
    assert_eq!(
        (done["created"].as_i64(), done["rejected"].as_i64()),
        (Some(1), Some(1)),
        "{done:#}"
    );
    let id = done["id"].as_str().unwrap();
    let res = app.get(&format!("/api/v1/imports/{id}/errors-file")).await;
    res.assert_status(200);
    let line: Value = match res.body {
        Value::String(s) => serde_json::from_str(s.trim()).unwrap(),
        other => other,
    };
    assert_eq!(line["first_name"], "No");
    assert!(
        line["Import errors"].as_str().unwrap().contains("emails"),
        "{line}"
    );
    assert_eq!(app.count_contacts().await, 3);
}

/// A cancelled import stops after the batch being written: what was
/// committed stays, nothing more is written, its file is dropped, and a
/// finished import cannot be cancelled.
#[tokio::test]
async fn a_cancelled_import_stops_after_its_committed_batch() {
    let app = TestApp::new().await;
    let mut csv = String::from("Email\n");
    for i in 0..1500 {
        csv.push_str(&format!("c{i}@example.com\n"));
    }
    let up = upload(&app, "contacts", "cancel.csv", csv.into_bytes()).await;
    let id = up["id"].as_str().unwrap().to_owned();
    app.post(&format!("/api/v1/imports/{id}/start"), json!({}))
        .await
        .assert_status(202);
    let import_id = uuid::Uuid::parse_str(&id).unwrap();
    let tenant_id = trellis::crm::tenants::ensure_default(&app.state.db)
        .await
        .unwrap()
        .0
        .id;
    // One batch lands, then the user cancels.
    trellis::imports::run::run(&app.state, tenant_id, import_id, None, Some(1))
        .await
        .unwrap();
    let res = app
        .post(&format!("/api/v1/imports/{id}/cancel"), json!({}))
        .await;
    res.assert_status(200);
    assert_eq!(res.body["status"], "cancelled");
    app.run_jobs().await;
    let after = app.get(&format!("/api/v1/imports/{id}")).await.body;
    assert_eq!(after["status"], "cancelled");
    assert_eq!(after["processed_rows"], 1000);
    assert_eq!(app.count_contacts().await, 1000);
    assert_eq!(
        app.sql_count("SELECT COUNT(*) AS n FROM import_chunks")
            .await,
        0
    );
    app.post(&format!("/api/v1/imports/{id}/cancel"), json!({}))
        .await
        .assert_problem(409, "import_finished");
}

/// The plan's contact limit holds for imports: the batch that would pass
/// it is not written and the import fails naming the limit.
#[tokio::test]
async fn an_import_stops_at_the_plans_contact_limit() {
    let app = TestApp::new().await;
    let platform = app.operator(None).await;
    app.send(
        Method::POST,
        "/api/v1/platform/tenants",
        Some(&platform),
        Some(json!({"slug": "small", "name": "Small", "admin_email": "a@small.test", "plan": "starter"})),
        &[],
    )
    .await
    .assert_status(201);
    let key = app.tenant_token("small", "admin").await;
    let mut csv = String::from("Email\n");
    for i in 0..1001 {
        csv.push_str(&format!("s{i}@example.com\n"));
    }
    let done = import_as(
        &app,
        &key,
        "contacts",
        "big.csv",
        csv.into_bytes(),
        json!({}),
    )
    .await;
    assert_eq!(done["status"], "failed", "{done:#}");
    assert!(
        done["error"].as_str().unwrap().contains("contacts"),
        "{done:#}"
    );
    assert_eq!(done["processed_rows"], 1000);
    assert_eq!(contacts(&app, Some(&key)).await.len(), 1000);
}

/// The duplicate check runs on imported rows: a row sharing an address,
/// number or domain with a stored record or an earlier row is queued for
/// review under `warn`, and refused under `block`.
#[tokio::test]
async fn imported_rows_meet_the_duplicate_check() {
    let app = TestApp::new().await;
    let ada = app
        .create(
            "/api/v1/contacts",
            json!({"first_name": "Ada", "last_name": "Lovelace",
                   "emails": [{"address": "ada@work.example"}, {"address": "ada@home.example"},
                              {"address": "ada@old.example"}],
                   "phones": [{"number": "020 7946 0000"}]}),
        )
        .await;
    let mapping = json!([
        {"column": "First", "field": "first_name"},
        {"column": "Last", "field": "last_name"},
        {"column": "Email", "field": "emails"},
        {"column": "Phone", "field": "phones"}
    ]);
    let csv = "First,Last,Email,Phone\n\
               Augusta,King,augusta@example.com,+44 20 7946 0000\n\
               Grace,Hopper,grace@example.com,+1 555 010 0001\n\
               Grace,Hoper,g.hopper@example.com,555 010 0001\n\
               Alan,Turing,alan@example.com,\n";
    let done = import(
        &app,
        "contacts",
        "warn.csv",
        csv.as_bytes().to_vec(),
        json!({"mapping": mapping}),
    )
    .await;
    assert_eq!(done["created"], 4, "{done:#}");
    assert_eq!(done["likely_duplicates"], 2, "{done:#}");
    let queue = app.get("/api/v1/duplicates?object_type=contact").await;
    queue.assert_status(200);
    let pairs = queue.body.as_array().unwrap().clone();
    assert_eq!(pairs.len(), 2, "{pairs:#?}");
    let names = |p: &Value| {
        let mut n = [
            p["record_name"].as_str().unwrap().to_owned(),
            p["other_name"].as_str().unwrap().to_owned(),
        ];
        n.sort();
        n
    };
    let with_ada = pairs
        .iter()
        .find(|p| p["record_id"] == ada["id"] || p["other_id"] == ada["id"])
        .unwrap_or_else(|| panic!("{pairs:#?}"));
    assert_eq!(names(with_ada), ["Ada Lovelace", "Augusta King"]);
    assert_eq!(with_ada["reasons"][0]["code"], "same_phone");
    let graces = pairs.iter().find(|p| p != &with_ada).unwrap();
    assert_eq!(names(graces), ["Grace Hoper", "Grace Hopper"]);
    let codes: Vec<&str> = graces["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["same_phone", "similar_name"]);

    // Under `block`, near-certain duplicates are refused, the rest written.
    app.patch("/api/v1/tenant", json!({"duplicate_policy": "block"}))
        .await
        .assert_status(200);
    let csv = "First,Last,Email,Phone\n\
               Ada,Lovelace,ada.l@elsewhere.example,+44 20 7946 0000\n\
               Edsger,Dijkstra,edsger@example.com,\n\
               E.,Dijkstra,other@example.com,\n\
               Barbara,Liskov,barbara@example.com,+1 555 010 0099\n\
               Barbara,Liskov,b.liskov@example.com,555 010 0099\n";
    let before = app.count_contacts().await;
    let done = import(
        &app,
        "contacts",
        "block.csv",
        csv.as_bytes().to_vec(),
        json!({"mapping": mapping}),
    )
    .await;
    assert_eq!(done["created"], 3, "{done:#}");
    assert_eq!(done["rejected"], 2, "{done:#}");
    assert_eq!(app.count_contacts().await, before + 3);
    let bad = rejects(&app, done["id"].as_str().unwrap()).await;
    let rows: Vec<i64> = bad.iter().map(|r| r["row"].as_i64().unwrap()).collect();
    assert_eq!(rows, [1, 5], "{bad:#?}");
    assert_eq!(bad[0]["errors"][0]["code"], "duplicate");
    let first = bad[0]["errors"][0]["message"].as_str().unwrap();
    assert!(first.contains(ada["id"].as_str().unwrap()), "{first}");
    let fifth = bad[1]["errors"][0]["message"].as_str().unwrap();
    assert!(fifth.contains("row 4"), "{fifth}");

    // Off: no check at all.
    app.patch("/api/v1/tenant", json!({"duplicate_policy": "off"}))
        .await
        .assert_status(200);
    let csv = "First,Last,Email,Phone\nAda,Lovelace,al@elsewhere.example,020 7946 0000\n";
    let done = import(
        &app,
        "contacts",
        "off.csv",
        csv.as_bytes().to_vec(),
        json!({"mapping": mapping}),
    )
    .await;
    assert_eq!(done["created"], 1, "{done:#}");
    assert_eq!(done["likely_duplicates"], 0, "{done:#}");
}

/// Matching on `emails` finds a contact by any of its addresses, in any
/// case, not only by its primary one.
#[tokio::test]
async fn matching_by_email_finds_a_contacts_other_addresses() {
    let app = TestApp::new().await;
    let ada = app
        .create(
            "/api/v1/contacts",
            json!({"first_name": "Ada", "emails": [{"address": "ada@work.example"}, {"address": "ada@home.example"}]}),
        )
        .await;
    let csv = "Email,Job title\nADA@Home.example,Analyst\nnew@example.com,Engineer\n";
    let done = import(
        &app,
        "contacts",
        "upsert.csv",
        csv.as_bytes().to_vec(),
        json!({"mode": "upsert", "match_on": "emails", "mapping": [
            {"column": "Email", "field": "emails"},
            {"column": "Job title", "field": "job_title"}
        ]}),
    )
    .await;
    assert_eq!(done["updated"], 1, "{done:#}");
    assert_eq!(done["created"], 1, "{done:#}");
    let id = ada["id"].as_str().unwrap();
    let after = app.get(&format!("/api/v1/contacts/{id}")).await.body;
    assert_eq!(after["job_title"], "Analyst");
    assert_eq!(app.count_contacts().await, 2);
}
