//! The web UI through HTTP as a browser speaks it: cookies, forms with
//! CSRF tokens, redirects and HTML. Every page is rendered in every shipped
//! theme; forms show the services' validation errors next to their fields;
//! themes are chosen per tenant and by hostname, and a broken theme is
//! reported and never takes the UI down.

use std::collections::HashMap;

use axum::body::Body;
use axum::http::{Method, Request};
use serde_json::{Value, json};

use crate::support::{Response, TestApp};

const PW: &str = "a long test passphrase";

/// A browser's view of the site: its cookies, and the host it asks for.
pub struct Browser<'a> {
    app: &'a TestApp,
    cookies: HashMap<String, String>,
    host: Option<String>,
}

/// A page as the browser got it.
pub struct Page {
    pub status: u16,
    pub location: Option<String>,
    pub headers: axum::http::HeaderMap,
    pub html: String,
}

impl Page {
    /// The value of the first `name="_csrf"` input.
    pub fn csrf(&self) -> String {
        attr_after(&self.html, "name=\"_csrf\" value=\"")
            .unwrap_or_else(|| panic!("no CSRF token on the page:\n{}", self.html))
    }

    #[track_caller]
    pub fn assert(&self, status: u16) -> &Self {
        assert_eq!(
            self.status, status,
            "unexpected status (location {:?}):\n{}",
            self.location, self.html
        );
        self
    }

    #[track_caller]
    pub fn contains(&self, text: &str) -> &Self {
        assert!(
            self.html.contains(text),
            "the page lacks {text:?}:\n{}",
            self.html
        );
        self
    }

    #[track_caller]
    pub fn lacks(&self, text: &str) -> &Self {
        assert!(
            !self.html.contains(text),
            "the page shows {text:?}:\n{}",
            self.html
        );
        self
    }
}

/// The text after `marker` up to the next `"`, with HTML entities decoded
/// as a browser would.
fn attr_after(html: &str, marker: &str) -> Option<String> {
    let start = html.find(marker)? + marker.len();
    let rest = &html[start..];
    Some(unescape(&rest[..rest.find('"')?]))
}

fn unescape(s: &str) -> String {
    s.replace("&#x2f;", "/")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

impl<'a> Browser<'a> {
    pub fn new(app: &'a TestApp) -> Self {
        Browser {
            app,
            cookies: HashMap::new(),
            host: None,
        }
    }

    pub fn at_host(app: &'a TestApp, host: &str) -> Self {
        Browser {
            host: Some(host.to_owned()),
            ..Browser::new(app)
        }
    }

    async fn send(&mut self, method: Method, path: &str, form: Option<&[(&str, &str)]>) -> Page {
        let body = form.map(|fields| {
            let body = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(fields.iter().copied())
                .finish();
            (
                "application/x-www-form-urlencoded".to_owned(),
                body.into_bytes(),
            )
        });
        self.send_body(method, path, body).await
    }

    /// Posts a `multipart/form-data` form as a browser does: the fields in
    /// order, then one file.
    pub async fn upload(
        &mut self,
        path: &str,
        fields: &[(&str, &str)],
        file: (&str, &str, &[u8]),
    ) -> Page {
        let boundary = "----trellis-test-boundary-7MA4YWxk";
        let mut body = Vec::new();
        for (name, value) in fields {
            body.extend_from_slice(
                format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                    .as_bytes(),
            );
        }
        let (name, filename, bytes) = file;
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let content_type = format!("multipart/form-data; boundary={boundary}");
        self.send_body(Method::POST, path, Some((content_type, body)))
            .await
    }

    async fn send_body(
        &mut self,
        method: Method,
        path: &str,
        body: Option<(String, Vec<u8>)>,
    ) -> Page {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(h) = &self.host {
            req = req.header("host", h.as_str());
        }
        if !self.cookies.is_empty() {
            let jar: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            req = req.header("cookie", jar.join("; "));
        }
        let req = match body {
            Some((content_type, body)) => req
                .header("content-type", content_type)
                .body(Body::from(body)),
            None => req.body(Body::empty()),
        }
        .unwrap();
        let res: Response = self.app.raw(req).await;
        for c in res.headers.get_all("set-cookie") {
            let c = c.to_str().unwrap();
            let (pair, attrs) = c.split_once(';').unwrap_or((c, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if attrs.contains("Max-Age=0") || value.is_empty() {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        let html = match res.body {
            Value::String(s) => s,
            Value::Null => String::new(),
            other => other.to_string(),
        };
        Page {
            status: res.status.as_u16(),
            location: res
                .headers
                .get("location")
                .map(|v| v.to_str().unwrap().to_owned()),
            headers: res.headers,
            html,
        }
    }

    pub async fn get(&mut self, path: &str) -> Page {
        self.send(Method::GET, path, None).await
    }

    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        self.send(Method::POST, path, Some(form)).await
    }

    /// Submits a form of the page at `page_path` with its CSRF token.
    pub async fn submit(&mut self, page_path: &str, action: &str, form: &[(&str, &str)]) -> Page {
        let token = self.get(page_path).await.csrf();
        let mut fields: Vec<(&str, &str)> = vec![("_csrf", token.as_str())];
        fields.extend_from_slice(form);
        self.post(action, &fields).await
    }

    /// Signs in through the login page; `code` is a TOTP or recovery code.
    pub async fn sign_in(&mut self, email: &str, password: &str, code: Option<&str>) -> Page {
        self.submit(
            "/login",
            "/login",
            &[
                ("email", email),
                ("password", password),
                ("code", code.unwrap_or("")),
                ("next", "/"),
            ],
        )
        .await
    }
}

/// An admin user with a password, signed in.
pub async fn admin_browser(app: &TestApp) -> Browser<'_> {
    app.user("default", "boss@example.com", PW, &["admin"])
        .await;
    let mut b = Browser::new(app);
    b.sign_in("boss@example.com", PW, None).await.assert(303);
    b
}

#[tokio::test]
async fn pages_ask_for_sign_in_and_the_login_form_needs_its_token_and_the_password() {
    let app = TestApp::new().await;
    app.user("default", "ann@example.com", PW, &["sales_rep"])
        .await;
    let mut b = Browser::new(&app);
    let page = b.get("/contacts?sort=-created_at").await;
    page.assert(303);
    assert_eq!(
        page.location.as_deref(),
        Some("/login?next=%2Fcontacts%3Fsort%3D-created_at")
    );

    let login = b.get("/login").await;
    login
        .assert(200)
        .contains("<form method=\"post\" action=\"/login\"");
    let csp = login.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(login.headers["x-frame-options"], "DENY");
    assert_eq!(login.headers["cache-control"], "no-store");

    // Without the token of the visitor's cookie: refused, nothing checked.
    b.post("/login", &[("email", "ann@example.com"), ("password", PW)])
        .await
        .assert(403)
        .contains("security token");
    // A token from elsewhere is no better.
    b.post(
        "/login",
        &[
            ("_csrf", "forged-forged-forged-forged"),
            ("email", "ann@example.com"),
            ("password", PW),
        ],
    )
    .await
    .assert(403);

    let wrong = b.sign_in("ann@example.com", "not the password", None).await;
    wrong
        .assert(401)
        .contains("The email or password is wrong.")
        .contains("value=\"ann@example.com\"");

    let token = b.get("/login").await.csrf();
    let ok = b
        .post(
            "/login",
            &[
                ("_csrf", &token),
                ("email", "ann@example.com"),
                ("password", PW),
                ("next", "/contacts?sort=-created_at"),
            ],
        )
        .await;
    ok.assert(303);
    assert_eq!(ok.location.as_deref(), Some("/contacts?sort=-created_at"));
    assert!(b.cookies.contains_key("trellis_session"), "{:?}", b.cookies);

    // A `next` naming another site goes home instead.
    let token = b.get("/login").await.csrf();
    let away = b
        .post(
            "/login",
            &[
                ("_csrf", &token),
                ("email", "ann@example.com"),
                ("password", PW),
                ("next", "//evil.example/phish"),
            ],
        )
        .await;
    assert_eq!(away.location.as_deref(), Some("/"));

    b.get("/contacts")
        .await
        .assert(200)
        .contains("<h1>Contacts</h1>");
    let out = b.submit("/contacts", "/logout", &[]).await;
    out.assert(303);
    assert_eq!(out.location.as_deref(), Some("/login?notice=signed_out"));
    b.get("/contacts").await.assert(303);
}

#[tokio::test]
async fn mfa_is_set_up_from_the_profile_with_a_qr_code_and_then_asked_at_sign_in() {
    let app = TestApp::new().await;
    let mut b = admin_browser(&app).await;
    let profile = b.get("/profile").await;
    profile
        .assert(200)
        .contains("Set up two-factor authentication");
    let enrol = b.submit("/profile", "/profile/mfa/enroll", &[]).await;
    enrol
        .assert(200)
        .contains("src=\"data:image&#x2f;svg+xml;base64,");
    let secret = attr_after(&enrol.html, "name=\"secret\" value=\"").unwrap();
    let uri = attr_after(&enrol.html, "name=\"uri\" value=\"").unwrap();
    assert!(uri.starts_with("otpauth://totp/"), "{uri}");

    // A wrong code keeps the same enrolment on the page.
    let wrong = b
        .post(
            "/profile/mfa/activate",
            &[
                ("_csrf", &enrol.csrf()),
                ("code", "000000"),
                ("secret", &secret),
                ("uri", &uri),
            ],
        )
        .await;
    wrong
        .assert(422)
        .contains("does not match")
        .contains(&secret);

    let bytes = totp_rs::Secret::try_from_base32(&secret)
        .unwrap()
        .as_bytes()
        .to_vec();
    let now = chrono::Utc::now().timestamp() as u64;
    let code = trellis::auth::totp::code_at(&bytes, now);
    let on = b
        .post(
            "/profile/mfa/activate",
            &[
                ("_csrf", &enrol.csrf()),
                ("code", &code),
                ("secret", &secret),
                ("uri", &uri),
            ],
        )
        .await;
    on.assert(200).contains("Two-factor authentication is on.");
    let codes: Vec<String> = on
        .html
        .split("<ul class=\"codes\">")
        .nth(1)
        .unwrap()
        .split("</ul>")
        .next()
        .unwrap()
        .split("<li>")
        .skip(1)
        .map(|s| s.split("</li>").next().unwrap().to_owned())
        .collect();
    assert_eq!(codes.len(), 10, "{codes:?}");

    b.submit("/profile", "/logout", &[]).await.assert(303);
    let without = b.sign_in("boss@example.com", PW, None).await;
    without
        .assert(401)
        .contains("Enter the code from your authenticator app");
    // The next step's code (one step of skew is allowed; this step's code
    // was used to turn MFA on and cannot be replayed).
    let next_code = trellis::auth::totp::code_at(&bytes, now + 30);
    b.sign_in("boss@example.com", PW, Some(&next_code))
        .await
        .assert(303);
    b.get("/").await.assert(200).contains("Dashboard");
    b.submit("/", "/logout", &[]).await;
    // A recovery code works once.
    b.sign_in("boss@example.com", PW, Some(&codes[0]))
        .await
        .assert(303);
    b.submit("/", "/logout", &[]).await;
    b.sign_in("boss@example.com", PW, Some(&codes[0]))
        .await
        .assert(401);
}

/// Data for every page: a pipeline, related contacts, an account tree, a
/// deal, an activity due, a custom field.
async fn seed(app: &TestApp) -> HashMap<&'static str, String> {
    let pipeline = app.sales_pipeline().await;
    app.post(
        "/api/v1/custom-fields",
        json!({"object_type": "contact", "key": "beds", "label": "Bedrooms wanted", "field_type": "integer"}),
    )
    .await
    .assert_status(201);
    let parent = app
        .create(
            "/api/v1/accounts",
            json!({"name": "Northwind Holdings", "domain": "northwind.example"}),
        )
        .await;
    let child = app
        .create(
            "/api/v1/accounts",
            json!({"name": "Northwind Retail", "parent_id": parent["id"]}),
        )
        .await;
    let ada = app
        .create(
            "/api/v1/contacts",
            json!({"first_name": "Ada", "last_name": "Lovelace",
                   "emails": [{"address": "ada@example.com", "primary": true}],
                   "custom": {"beds": 3}}),
        )
        .await;
    let charles = app
        .create(
            "/api/v1/contacts",
            json!({"first_name": "Charles", "last_name": "Babbage"}),
        )
        .await;
    app.post(
        &format!(
            "/api/v1/contacts/{}/relationships",
            ada["id"].as_str().unwrap()
        ),
        json!({"to_contact_id": charles["id"], "kind": "colleague"}),
    )
    .await
    .assert_status(201);
    let deal = app
        .create(
            "/api/v1/deals",
            json!({"name": "Analytical Engine", "amount": "125000.50", "currency": "GBP",
                   "pipeline_id": pipeline["id"], "contact_id": ada["id"], "account_id": child["id"]}),
        )
        .await;
    let activity = app
        .create(
            "/api/v1/activities",
            json!({"kind": "call", "subject": "Call Ada about the engine",
                   "due_at": (chrono::Utc::now() + chrono::Duration::hours(3)).to_rfc3339(),
                   "contact_id": ada["id"], "deal_id": deal["id"]}),
        )
        .await;
    let mut ids = HashMap::new();
    ids.insert("pipeline", pipeline["id"].as_str().unwrap().to_owned());
    ids.insert("contact", ada["id"].as_str().unwrap().to_owned());
    ids.insert("account", child["id"].as_str().unwrap().to_owned());
    ids.insert("parent", parent["id"].as_str().unwrap().to_owned());
    ids.insert("deal", deal["id"].as_str().unwrap().to_owned());
    ids.insert("activity", activity["id"].as_str().unwrap().to_owned());
    ids
}

#[tokio::test]
async fn every_page_renders_in_every_shipped_theme() {
    let app = TestApp::new().await;
    let ids = seed(&app).await;
    let mut b = admin_browser(&app).await;
    let themes: Vec<(String, String)> = app
        .state
        .themes
        .all()
        .map(|t| (t.key.clone(), t.manifest.product_name.clone()))
        .collect();
    assert!(
        themes.len() >= 3,
        "the default and two white-label themes ship: {themes:?}"
    );
    assert!(
        app.state.themes.problems().is_empty(),
        "{:?}",
        app.state.themes.problems()
    );
    let (c, a, d, act) = (
        &ids["contact"],
        &ids["account"],
        &ids["deal"],
        &ids["activity"],
    );
    // A custom object and one of its records.
    app.put(
        "/api/v1/objects/house",
        json!({"label": "House", "plural_label": "Houses", "fields": [
            {"key": "title", "label": "Title", "field_type": "text"},
            {"key": "rooms", "label": "Rooms", "field_type": "integer"},
            {"key": "agent", "label": "Agent", "field_type": "reference", "reference_type": "contact"}]}),
    )
    .await
    .assert_status(200);
    let house = app
        .create(
            "/api/v1/objects/house/records",
            json!({"custom": {"title": "Maple Cottage", "rooms": 5, "agent": c}}),
        )
        .await;
    let h = house["id"].as_str().unwrap().to_owned();
    let agent_link = format!("href=\"&#x2f;contacts&#x2f;{c}\"");
    let pages: Vec<(String, &str)> = vec![
        ("/objects/house".into(), "Maple Cottage"),
        (format!("/objects/house/{h}"), "House: Maple Cottage"),
        // A reference links to the record it names.
        (format!("/objects/house/{h}"), agent_link.as_str()),
        ("/".into(), "Pipeline value by stage"),
        ("/contacts".into(), "Ada Lovelace"),
        ("/contacts?q=lovelace".into(), "Ada Lovelace"),
        ("/contacts?filter=custom.beds:gte:2".into(), "Ada Lovelace"),
        (format!("/contacts/{c}"), "Bedrooms wanted"),
        // The relationship map names the related contact and the kind.
        (format!("/contacts/{c}"), "colleague"),
        (format!("/contacts/{c}/edit"), ">ada@example.com</textarea>"),
        (
            format!("/contacts/{c}/duplicates"),
            "Possible duplicates of",
        ),
        (format!("/contacts/{c}/merge"), "Merge contacts"),
        ("/duplicates".into(), "Likely duplicates"),
        ("/contacts/new".into(), "New contact"),
        ("/accounts".into(), "Northwind Retail"),
        (format!("/accounts/{a}"), "Account hierarchy"),
        (format!("/accounts/{a}/edit"), "Parent account"),
        ("/accounts/new".into(), "New account"),
        ("/deals".into(), "Analytical Engine"),
        (format!("/deals/{d}"), "Stage history"),
        (format!("/deals/{d}/edit"), "125000.5"),
        ("/deals/new".into(), "New deal"),
        ("/activities".into(), "Call Ada about the engine"),
        (format!("/activities/{act}"), "Call Ada about the engine"),
        (format!("/activities/{act}/edit"), "Due (UTC)"),
        ("/activities/new".into(), "New activity"),
        (
            format!("/board?pipeline={}", ids["pipeline"]),
            "Qualification",
        ),
        ("/profile".into(), "Where you are signed in"),
        ("/settings/general".into(), "Workspace name"),
        ("/settings/users".into(), "boss@example.com"),
        ("/settings/roles".into(), "sales_rep"),
        ("/settings/fields".into(), "Bedrooms wanted"),
        ("/settings/pipelines".into(), "Proposal"),
        ("/settings/plugins".into(), "Plugins"),
        ("/settings/audit".into(), "Audit log"),
        ("/imports".into(), "Recent imports"),
    ];
    for (key, product) in &themes {
        app.patch("/api/v1/tenant", json!({"theme": key}))
            .await
            .assert_status(200);
        for (path, expect) in &pages {
            let page = b.get(path).await;
            assert_eq!(page.status, 200, "{path} in {key}:\n{}", page.html);
            assert!(
                page.headers["content-type"]
                    .to_str()
                    .unwrap()
                    .starts_with("text/html"),
                "{path}"
            );
            assert!(
                page.headers.contains_key("content-security-policy"),
                "{path}"
            );
            page.contains(&format!("/ui/assets/{key}/style.css?v="))
                .contains(product.as_str())
                .contains(expect);
            // Nothing unrendered or printed as a bare `none`.
            page.lacks("{{").lacks("{%").lacks(">none<");
        }
        // Pages for visitors, in the same theme (the default tenant).
        let mut visitor = Browser::new(&app);
        for (path, expect) in [
            ("/login", "Sign in to"),
            ("/password-reset", "Reset your password"),
            ("/reset-password?token=abc", "Choose a new password"),
            ("/accept-invitation?token=abc", "Accept your invitation"),
        ] {
            visitor
                .get(path)
                .await
                .assert(200)
                .contains(expect)
                .contains(product.as_str())
                .contains(&format!("/ui/assets/{key}/style.css"));
        }
        // An error page keeps the theme too.
        let missing = b.get(&format!("/contacts/{}", uuid::Uuid::now_v7())).await;
        missing
            .assert(404)
            .contains("contact not found")
            .contains(product.as_str());
        // The theme's assets.
        let version = attr_after(&missing.html, &format!("/ui/assets/{key}/style.css?v=")).unwrap();
        let css = b
            .get(&format!("/ui/assets/{key}/style.css?v={version}"))
            .await;
        css.assert(200).contains("--primary:");
        assert!(
            css.headers["cache-control"]
                .to_str()
                .unwrap()
                .contains("immutable")
        );
        b.get(&format!("/ui/assets/{key}/logo"))
            .await
            .assert(200)
            .contains("<svg");
    }
    b.get("/ui/app.js")
        .await
        .assert(200)
        .contains("pointerdown");
    b.get("/ui/assets/no-such-theme/style.css")
        .await
        .assert(404);
}

#[tokio::test]
async fn a_record_form_shows_errors_next_to_the_fields_keeps_the_input_and_saves_custom_fields() {
    let app = TestApp::new().await;
    app.post(
        "/api/v1/custom-fields",
        json!({"object_type": "contact", "key": "beds", "label": "Bedrooms wanted",
               "field_type": "integer", "required": true, "min": "1", "max": "20"}),
    )
    .await
    .assert_status(201);
    let mut b = admin_browser(&app).await;
    let form = b.get("/contacts/new").await;
    form.assert(200)
        .contains("<label for=\"f-custom-beds\">Bedrooms wanted")
        .contains("<label for=\"f-emails\">");
    let bad = b
        .post(
            "/contacts/new",
            &[
                ("_csrf", &form.csrf()),
                ("first_name", "Grace"),
                ("last_name", "Hopper"),
                ("emails", "not-an-email"),
                ("custom.beds", "40"),
                ("lifecycle_stage", "lead"),
            ],
        )
        .await;
    bad.assert(422)
        .contains("id=\"f-emails-error\"")
        .contains("id=\"f-custom-beds-error\"")
        .contains("value=\"Grace\"")
        .contains("not-an-email")
        .contains("Please correct 2 fields");
    assert_eq!(app.count_contacts().await, 0, "nothing was written");

    let ok = b
        .post(
            "/contacts/new",
            &[
                ("_csrf", &form.csrf()),
                ("first_name", "Grace"),
                ("last_name", "Hopper"),
                ("emails", "grace@example.com\nwork: grace@navy.example"),
                ("phones", "+1 555 0100"),
                ("custom.beds", "4"),
                ("lifecycle_stage", "customer"),
                ("tags", "navy, compilers"),
                ("do_not_call", "true"),
            ],
        )
        .await;
    ok.assert(303);
    let location = ok.location.clone().unwrap();
    let id = location.trim_start_matches("/contacts/").to_owned();
    let stored = app.get(&format!("/api/v1/contacts/{id}")).await.body;
    assert_eq!(stored["email"], "grace@example.com");
    assert_eq!(stored["emails"].as_array().unwrap().len(), 2);
    assert_eq!(stored["emails"][1]["label"], "work");
    assert_eq!(stored["emails"][1]["address"], "grace@navy.example");
    assert_eq!(stored["custom"]["beds"], 4);
    assert_eq!(stored["lifecycle_stage"], "customer");
    assert_eq!(stored["tags"], json!(["navy", "compilers"]));
    assert_eq!(stored["do_not_call"], true);
    assert_eq!(stored["do_not_email"], false);
    b.get(&location)
        .await
        .assert(200)
        .contains("Bedrooms wanted")
        .contains("<dd>4</dd>")
        .contains("Customer");

    // Editing with a stale version is a conflict shown above the form.
    let edit = b.get(&format!("{location}/edit")).await;
    edit.assert(200)
        .contains("name=\"version\" value=\"1\"")
        // Primary first, labels kept, so saving the form loses nothing.
        .contains(">grace@example.com\nwork: grace@navy.example</textarea>");
    app.patch(
        &format!("/api/v1/contacts/{id}"),
        json!({"version": 1, "job_title": "Admiral"}),
    )
    .await
    .assert_status(200);
    let stale = b
        .post(
            &format!("{location}/edit"),
            &[
                ("_csrf", &edit.csrf()),
                ("version", "1"),
                ("first_name", "Grace B."),
                ("emails", "grace@example.com"),
                ("custom.beds", "4"),
            ],
        )
        .await;
    // The user's input stays, and the form now carries the current version.
    stale
        .assert(422)
        .contains("Someone else changed this record (now version 2)")
        .contains("value=\"Grace B.\"")
        .contains("name=\"version\" value=\"2\"");
    let fresh = b.get(&format!("{location}/edit")).await;
    let saved = b
        .post(
            &format!("{location}/edit"),
            &[
                ("_csrf", &fresh.csrf()),
                ("version", "2"),
                ("first_name", "Grace B."),
                ("last_name", "Hopper"),
                ("job_title", "Admiral"),
                ("emails", "grace@example.com"),
                ("custom.beds", "5"),
                ("lifecycle_stage", "customer"),
            ],
        )
        .await;
    saved.assert(303);
    let stored = app.get(&format!("/api/v1/contacts/{id}")).await.body;
    assert_eq!(stored["first_name"], "Grace B.");
    assert_eq!(stored["custom"]["beds"], 5);
    assert_eq!(stored["version"], 3);
}

#[tokio::test]
async fn forms_without_this_sessions_token_are_refused() {
    let app = TestApp::new().await;
    let mut b = admin_browser(&app).await;
    b.post("/contacts/new", &[("first_name", "Eve")])
        .await
        .assert(403);
    // Another session's token does not fit this session.
    app.user("default", "other@example.com", PW, &["admin"])
        .await;
    let mut other = Browser::new(&app);
    other
        .sign_in("other@example.com", PW, None)
        .await
        .assert(303);
    let foreign = other.get("/contacts/new").await.csrf();
    b.post(
        "/contacts/new",
        &[("_csrf", &foreign), ("first_name", "Eve")],
    )
    .await
    .assert(403);
    assert_eq!(app.count_contacts().await, 0);
}

#[tokio::test]
async fn the_board_moves_deals_by_form_and_by_script_and_keeps_the_stage_history() {
    let app = TestApp::new().await;
    let pipeline = app.sales_pipeline().await;
    let stage = |name: &str| {
        pipeline["stages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let deal = app
        .create(
            "/api/v1/deals",
            json!({"name": "Difference Engine", "amount": "900", "currency": "GBP", "pipeline_id": pipeline["id"]}),
        )
        .await;
    let id = deal["id"].as_str().unwrap();
    let mut b = admin_browser(&app).await;
    let board_path = format!("/board?pipeline={}", pipeline["id"].as_str().unwrap());
    let board = b.get(&board_path).await;
    board
        .assert(200)
        .contains("Difference Engine")
        .contains("Move Difference Engine to");
    let moved = b
        .post(
            &format!("/deals/{id}/move"),
            &[
                ("_csrf", &board.csrf()),
                ("stage_id", &stage("Proposal")),
                ("version", "1"),
            ],
        )
        .await;
    moved.assert(303);
    assert_eq!(moved.location.as_deref(), Some(board_path.as_str()));

    // The script's request asks for JSON.
    let token = board.csrf();
    let body = format!("_csrf={token}&stage_id={}&version=2", stage("Won"));
    let send = |body: String| {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(format!("/deals/{id}/move"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json");
        let jar: Vec<String> = b.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
        req = req.header("cookie", jar.join("; "));
        req.body(Body::from(body)).unwrap()
    };
    let res = app.raw(send(body.clone())).await;
    res.assert_status(200);
    assert_eq!(res.body["version"], 3);
    // Replaying the same move with its old version is a conflict.
    let again = app.raw(send(body)).await;
    again.assert_status(409);
    assert_eq!(again.body["code"], "version_conflict");
    // A lost stage needs a reason.
    let lost = app
        .raw(send(format!(
            "_csrf={token}&stage_id={}&version=3",
            stage("Lost")
        )))
        .await;
    lost.assert_status(422);
    assert!(
        lost.body["message"].as_str().unwrap().contains("lost"),
        "{}",
        lost.body
    );

    let history = app.get(&format!("/api/v1/deals/{id}/stage-history")).await;
    let moves = history.body.as_array().unwrap();
    assert_eq!(moves.len(), 3, "created, proposal, won: {}", history.body);
    assert_eq!(moves[2]["to_stage_id"], json!(stage("Won")));
}

#[tokio::test]
async fn the_hostname_picks_the_tenants_theme_and_a_reseller_brands_its_tenants() {
    use sea_orm::{ActiveModelTrait, Set};
    let app = TestApp::new().await;
    let db = &app.state.db;
    let (tenant, _) =
        trellis::crm::tenants::ensure(db, "harborco", "Harbor Co", "admin@harborco.test")
            .await
            .unwrap();
    let mut t: trellis::entities::tenant::ActiveModel = tenant.clone().into();
    t.hostname = Set(Some("crm.harbor.example".to_owned()));
    t.theme = Set(Some("harbor".to_owned()));
    t.update(db).await.unwrap();
    app.state.caches.tenants.remove(&tenant.id);

    let harbor = app.state.themes.get(Some("harbor"));
    let default = app.state.themes.default_theme();
    assert_ne!(harbor.manifest.product_name, default.manifest.product_name);
    Browser::at_host(&app, "crm.harbor.example")
        .get("/login")
        .await
        .assert(200)
        .contains(&harbor.manifest.product_name)
        .contains("/ui/assets/harbor/style.css");
    Browser::new(&app)
        .get("/login")
        .await
        .assert(200)
        .contains(&format!("Sign in to {}", default.manifest.product_name))
        .lacks("/ui/assets/harbor/");

    // A reseller's theme brands its tenants that chose none.
    let reseller = trellis::entities::reseller::ActiveModel {
        id: Set(uuid::Uuid::now_v7()),
        slug: Set("meadowsales".to_owned()),
        name: Set("Meadow Sales".to_owned()),
        created_at: Set(trellis::clock::now()),
        theme: Set(Some("meadow".to_owned())),
    }
    .insert(db)
    .await
    .unwrap();
    let (farm, _) = trellis::crm::tenants::ensure(db, "farm", "Farm", "admin@farm.test")
        .await
        .unwrap();
    let mut f: trellis::entities::tenant::ActiveModel = farm.clone().into();
    f.hostname = Set(Some("crm.farm.example".to_owned()));
    f.reseller_id = Set(Some(reseller.id));
    f.update(db).await.unwrap();
    app.state.caches.tenants.remove(&farm.id);
    Browser::at_host(&app, "crm.farm.example")
        .get("/login")
        .await
        .assert(200)
        .contains(&app.state.themes.get(Some("meadow")).manifest.product_name);

    // The API refuses a theme that is not loaded.
    app.patch("/api/v1/tenant", json!({"theme": "no-such-theme"}))
        .await
        .assert_problem(422, "validation_failed");
}

/// Writes a theme folder under `dir` with `files`.
fn write_theme(dir: &std::path::Path, name: &str, files: &[(&str, &str)]) {
    let root = dir.join(name);
    std::fs::create_dir_all(root.join("templates")).unwrap();
    for (path, text) in files {
        std::fs::write(root.join(path), text).unwrap();
    }
}

fn manifest(extra: &str, text: &str) -> String {
    format!(
        "name = \"Test\"\nproduct_name = \"Testing CRM\"\n{extra}\n[colors]\nprimary = \"#1f4fd1\"\non_primary = \"#ffffff\"\naccent = \"#0f7b6c\"\nbackground = \"#ffffff\"\nsurface = \"#ffffff\"\ntext = \"{text}\"\nmuted = \"#555555\"\nborder = \"#cccccc\"\ndanger = \"#b3261e\"\nsuccess = \"#1b6e3a\"\n"
    )
}

#[tokio::test]
async fn a_broken_theme_is_reported_with_file_and_line_and_the_default_serves_its_tenants() {
    use sea_orm::{ActiveModelTrait, Set};
    let dir = tempfile::tempdir().unwrap();
    let ok = manifest("", "#111111");
    write_theme(
        dir.path(),
        "syntax",
        &[
            ("theme.toml", &ok),
            (
                "templates/login.html",
                "{% extends \"base.html\" %}\n{% block content %}\n{% if %}\n{% endblock %}\n",
            ),
        ],
    );
    write_theme(
        dir.path(),
        "unknown-var",
        &[
            ("theme.toml", &ok),
            (
                "templates/dashboard.html",
                "{% extends \"base.html\" %}\n{% block content %}\n<p>{{ page.title }}</p>\n<p>{{ page.revenue }}</p>\n{% endblock %}\n",
            ),
        ],
    );
    write_theme(
        dir.path(),
        "unknown-filter",
        &[
            ("theme.toml", &ok),
            (
                "templates/error.html",
                "{% extends \"base.html\" %}\n{% block content %}\n{{ page.message|shout }}\n{% endblock %}\n",
            ),
        ],
    );
    write_theme(
        dir.path(),
        "low-contrast",
        &[("theme.toml", &manifest("", "#eeeeee"))],
    );
    write_theme(
        dir.path(),
        "acme-only",
        &[("theme.toml", &manifest("resellers = [\"acme\"]", "#111111"))],
    );
    // Ways around escaping, and markup sending the page elsewhere.
    write_theme(
        dir.path(),
        "leaky",
        &[
            ("theme.toml", &ok),
            (
                "templates/error.html",
                "{% extends \"base.html\" %}\n{% block content %}\n{{ page.message|safe }}\n<meta http-equiv=\"refresh\" content=\"0;url=https://evil.example/\">\n{% endblock %}\n",
            ),
        ],
    );
    write_theme(
        dir.path(),
        "missing-logo",
        &[("theme.toml", &manifest("logo = \"logo.png\"", "#111111"))],
    );
    // Passes the checks at load, fails when the page renders.
    write_theme(
        dir.path(),
        "fails-late",
        &[
            ("theme.toml", &ok),
            (
                "templates/list.html",
                "{% extends \"base.html\" %}\n{% block content %}\n{{ page.title.first.deeper }}\n{% endblock %}\n",
            ),
        ],
    );
    let path = dir.path().to_owned();
    let app = TestApp::with_config(|c| c.themes_dir = Some(path)).await;
    let problems: Vec<String> = app
        .state
        .themes
        .problems()
        .iter()
        .map(ToString::to_string)
        .collect();
    let has = |needle: &str| {
        assert!(
            problems.iter().any(|p| p.contains(needle)),
            "no problem mentions {needle:?}: {problems:#?}"
        )
    };
    has("syntax/templates/login.html:3:");
    has("unknown-var/templates/dashboard.html:4: unknown variable `page.revenue`");
    has("unknown-filter/templates/error.html:3: unknown filter `shout`");
    has("low-contrast/theme.toml:");
    has("contrast");
    has("missing-logo/theme.toml:3: `logo` names `logo.png`, which is not in the theme folder");
    has("leaky/templates/error.html:3: `safe` is not allowed");
    has("leaky/templates/error.html:4: <meta http-equiv> is not allowed");
    has("leaky/templates/error.html:4: links and resources must stay on this site");
    // A reseller's own theme is not offered to other tenants.
    assert!(app.state.themes.contains("acme-only"));
    app.patch("/api/v1/tenant", json!({"theme": "acme-only"}))
        .await
        .assert_problem(422, "validation_failed");
    for left_out in [
        "syntax",
        "unknown-var",
        "unknown-filter",
        "low-contrast",
        "missing-logo",
        "leaky",
    ] {
        assert!(
            !app.state.themes.contains(left_out),
            "{left_out} must be left out"
        );
    }
    assert!(app.state.themes.contains("fails-late"));

    // A tenant set to a left-out theme, or to one failing at render, gets
    // the default theme's pages.
    let mut b = admin_browser(&app).await;
    for theme in ["unknown-var", "fails-late"] {
        let t = trellis::crm::tenants::cached(&app.state, b_tenant(&app).await)
            .await
            .unwrap();
        let mut a: trellis::entities::tenant::ActiveModel = t.into();
        a.theme = Set(Some(theme.to_owned()));
        a.update(&app.state.db).await.unwrap();
        app.state.caches.tenants.clear();
        let dash = b.get("/").await;
        dash.assert(200);
        let list = b.get("/contacts").await;
        list.assert(200).contains("<h1>Contacts</h1>");
        if theme == "fails-late" {
            list.contains("/ui/assets/default/style.css");
        }
    }
}

async fn b_tenant(app: &TestApp) -> uuid::Uuid {
    let (t, _) = trellis::crm::tenants::ensure_default(&app.state.db)
        .await
        .unwrap();
    t.id
}

#[tokio::test]
async fn hidden_fields_never_reach_the_pages() {
    let app = TestApp::new().await;
    app.post(
        "/api/v1/custom-fields",
        json!({"object_type": "contact", "key": "net_worth", "label": "Net worth", "field_type": "currency"}),
    )
    .await
    .assert_status(201);
    app.put(
        "/api/v1/roles",
        json!({"key": "junior", "name": "Junior",
               "permissions": {"contact": {"actions": ["read", "update", "create"], "scope": "all"}},
               "field_rules": {"contact": {"custom.net_worth": "hidden", "job_title": "read_only"}}}),
    )
    .await
    .assert_status(200);
    let c = app
        .create(
            "/api/v1/contacts",
            json!({"first_name": "Scrooge", "job_title": "Banker", "custom": {"net_worth": "987654321.00"}}),
        )
        .await;
    let net_worth = c["custom"]["net_worth"].clone();
    let id = c["id"].as_str().unwrap();
    app.user("default", "junior@example.com", PW, &["junior"])
        .await;
    let mut b = Browser::new(&app);
    b.sign_in("junior@example.com", PW, None).await.assert(303);
    for path in [
        format!("/contacts/{id}"),
        format!("/contacts/{id}/edit"),
        "/contacts".to_owned(),
        "/contacts/new".to_owned(),
    ] {
        b.get(&path)
            .await
            .assert(200)
            .lacks("987654321")
            .lacks("Net worth");
    }
    // The read-only field is shown but not editable, and a forged value
    // for it is ignored rather than written.
    let edit = b.get(&format!("/contacts/{id}/edit")).await;
    let input = edit.html.split("id=\"f-job_title\"").nth(1).unwrap();
    let input = &input[..input.find('>').unwrap()];
    assert!(
        input.contains("value=\"Banker\"") && input.contains("readonly"),
        "{input}"
    );
    let saved = b
        .post(
            &format!("/contacts/{id}/edit"),
            &[
                ("_csrf", &edit.csrf()),
                ("version", "1"),
                ("first_name", "Scrooge"),
                ("job_title", "Philanthropist"),
                ("custom.net_worth", "0"),
                ("lifecycle_stage", "lead"),
            ],
        )
        .await;
    saved.assert(303);
    let stored = app.get(&format!("/api/v1/contacts/{id}")).await.body;
    assert_eq!(stored["job_title"], "Banker");
    assert_eq!(stored["custom"]["net_worth"], net_worth);
    // The navigation offers only what the role may read.
    b.get("/")
        .await
        .assert(200)
        .lacks("href=\"/deals\"")
        .lacks("href=\"/settings\"");
    b.get("/settings/users").await.assert(403);
}

#[test]
fn the_theme_command_scaffolds_and_checks_themes() {
    let bin = env!("CARGO_BIN_EXE_trellis");
    let dir = tempfile::tempdir().unwrap();
    let made = std::process::Command::new(bin)
        .args(["theme", "new", "acme", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let checked = std::process::Command::new(bin)
        .args(["theme", "check"])
        .arg(dir.path().join("acme"))
        .output()
        .unwrap();
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );
    assert!(String::from_utf8_lossy(&checked.stdout).contains(": ok"));

    // Break it: a template with a syntax error on line 2.
    std::fs::write(
        dir.path().join("acme/templates/error.html"),
        "{% extends \"base.html\" %}\n{% block content %}{{ page.message }\n{% endblock %}\n",
    )
    .unwrap();
    let broken = std::process::Command::new(bin)
        .args(["theme", "check"])
        .arg(dir.path().join("acme"))
        .output()
        .unwrap();
    assert_eq!(broken.status.code(), Some(1));
    let err = String::from_utf8_lossy(&broken.stderr);
    assert!(err.contains("acme/templates/error.html:2:"), "{err}");

    for shipped in ["harbor", "meadow"] {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../themes")
            .join(shipped);
        let out = std::process::Command::new(bin)
            .args(["theme", "check"])
            .arg(&root)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{shipped}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[tokio::test]
async fn the_dashboard_sums_exact_amounts_within_the_callers_scope() {
    let app = TestApp::new().await;
    let pipeline = app.sales_pipeline().await;
    let stage = |name: &str| {
        pipeline["stages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap()["id"]
            .clone()
    };
    let today = chrono::Utc::now().date_naive().to_string();
    app.put(
        "/api/v1/roles",
        json!({"key": "closer", "name": "Closer",
               "permissions": {"deal": {"actions": ["read", "update"], "scope": "own"},
                               "pipeline": {"actions": ["read"], "scope": "all"}}}),
    )
    .await
    .assert_status(200);
    let rep = app
        .user("default", "rep@example.com", PW, &["closer"])
        .await;
    for (name, amount, currency, stage_name, owner) in [
        ("A", "1000.25", "GBP", "Proposal", None),
        ("B", "500", "GBP", "Qualification", None),
        ("C", "2000", "GBP", "Proposal", None),
        ("D", "999", "USD", "Proposal", None),
        ("E", "300", "GBP", "Proposal", Some(rep)),
    ] {
        let d = app
            .create(
                "/api/v1/deals",
                json!({"name": name, "amount": amount, "currency": currency, "pipeline_id": pipeline["id"],
                       "stage_id": stage(stage_name), "expected_close_date": today, "owner_id": owner}),
            )
            .await;
        if name == "C" {
            app.post(
                &format!("/api/v1/deals/{}/move", d["id"].as_str().unwrap()),
                json!({"stage_id": stage("Won"), "version": 1}),
            )
            .await
            .assert_status(200);
        }
    }
    let row =
        |label: &str, amount: &str| format!("<th scope=\"row\">{label}</th><td>{amount}</td>");
    let mut b = admin_browser(&app).await;
    let page = b.get("/").await;
    page.assert(200)
        .contains("Pipeline value by stage (GBP)")
        .contains(&row("Proposal", "GBP 1,300.25"))
        .contains(&row("Qualification", "GBP 500.00"))
        .contains(&row("Won", "GBP 2,000.00"))
        // Won this month; the forecast weighs open deals by probability:
        // 1300.25 × 50 % + 500 × 10 % = 700.125, shown to the cent.
        .contains(&row(&today[..7], "GBP 2,000.00"))
        .contains(&row(&today[..7], "GBP 700.12"))
        .contains("<strong>GBP 700.12</strong> of GBP 1,800.25 open");

    // A caller whose deal scope is `own` sees only its own deals.
    let mut r = Browser::new(&app);
    r.sign_in("rep@example.com", PW, None).await.assert(303);
    r.get("/")
        .await
        .assert(200)
        .contains(&row("Proposal", "GBP 300.00"))
        .contains(&row("Won", "GBP 0.00"))
        .lacks("1,300.25");
}

#[tokio::test]
async fn admins_manage_roles_pipelines_api_keys_and_plugins_from_settings() {
    let app = TestApp::new().await;
    let mut b = admin_browser(&app).await;

    // A role with field permissions, made in the role editor.
    let form = b.get("/settings/roles/new").await;
    form.assert(200).contains("What the role may do");
    let bad = b
        .post(
            "/settings/roles/new",
            &[
                ("_csrf", &form.csrf()),
                ("key", "viewer"),
                ("name", "Viewer"),
                ("perm.contact", "read"),
                ("scope.contact", "own"),
                ("field_rules", "contact.email hidden"),
            ],
        )
        .await;
    bad.assert(422)
        .contains("line 1: write `object.field: hidden`");
    b.post(
        "/settings/roles/new",
        &[
            ("_csrf", &form.csrf()),
            ("key", "viewer"),
            ("name", "Viewer"),
            ("perm.contact", "read"),
            ("perm.contact", "export"),
            ("scope.contact", "own"),
            (
                "field_rules",
                "contact.email: hidden\ncontact.job_title: read_only",
            ),
        ],
    )
    .await
    .assert(200)
    .contains("The role Viewer is saved.");
    let roles = app.get("/api/v1/roles").await.body;
    let viewer = roles
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == "viewer")
        .unwrap();
    assert_eq!(
        viewer["permissions"]["contact"]["actions"],
        json!(["read", "export"])
    );
    assert_eq!(viewer["permissions"]["contact"]["scope"], "own");
    assert_eq!(viewer["field_rules"]["contact"]["email"], "hidden");
    assert_eq!(viewer["field_rules"]["contact"]["job_title"], "read_only");
    // The editor shows it back as it is stored.
    b.get("/settings/roles/viewer")
        .await
        .assert(200)
        .contains("contact.email: hidden\ncontact.job_title: read_only");

    // A pipeline added, then edited: a renamed stage is a new stage, a kept
    // name keeps its id.
    let p = b
        .submit(
            "/settings/pipelines",
            "/settings/pipelines",
            &[
                ("name", "Renewals"),
                (
                    "stages",
                    "Due | 20 | open\nRenewed | 100 | won\nChurned | 0 | lost",
                ),
            ],
        )
        .await;
    p.assert(200).contains("The pipeline Renewals is added.");
    let list = app.get("/api/v1/pipelines").await.body;
    let renewals = list
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "Renewals")
        .unwrap()
        .clone();
    let due_id = renewals["stages"][0]["id"].clone();
    let rid = renewals["id"].as_str().unwrap();
    let edit_path = format!("/settings/pipelines/{rid}");
    b.get(&edit_path)
        .await
        .assert(200)
        .contains("Due | 20 | open");
    b.submit(
        &edit_path,
        &edit_path,
        &[
            ("name", "Renewals"),
            ("version", "1"),
            (
                "stages",
                "Due | 30 | open\nNegotiating | 60 | open\nRenewed | 100 | won\nChurned | 0 | lost",
            ),
        ],
    )
    .await
    .assert(200)
    .contains("is saved");
    let after = app.get(&format!("/api/v1/pipelines/{rid}")).await.body;
    assert_eq!(after["stages"][0]["id"], due_id);
    assert_eq!(after["stages"][0]["probability"], 30);
    assert_eq!(after["stages"][1]["name"], "Negotiating");
    b.submit(
        &edit_path,
        &edit_path,
        &[
            ("name", "Renewals"),
            ("version", "2"),
            ("stages", "Due | lots | open"),
        ],
    )
    .await
    .assert(422)
    .contains("line 1: the probability is a whole number");

    // An API key, shown once, that works and can be revoked.
    let made = b
        .submit(
            "/settings/api-keys",
            "/settings/api-keys",
            &[("name", "zapier"), ("scopes", "contact:read")],
        )
        .await;
    made.assert(200).contains("it is not shown again");
    let key = made.html.split("not shown again: ").nth(1).unwrap();
    let key = &key[..key.find('<').unwrap()];
    let res = app
        .send(Method::GET, "/api/v1/contacts", Some(key), None, &[])
        .await;
    res.assert_status(200);
    app.send(Method::GET, "/api/v1/deals", Some(key), None, &[])
        .await
        .assert_status(403);
    let keys = b.get("/settings/api-keys").await;
    keys.assert(200).contains("zapier").lacks(key);
    let listed = app.get("/api/v1/api-keys").await.body;
    let zapier = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "zapier")
        .unwrap();
    let revoke = format!(
        "/settings/api-keys/{}/revoke",
        zapier["id"].as_str().unwrap()
    );
    assert!(unescape(&keys.html).contains(&format!("action=\"{revoke}\"")));
    b.post(&revoke, &[("_csrf", &keys.csrf())])
        .await
        .assert(303);
    app.send(Method::GET, "/api/v1/contacts", Some(key), None, &[])
        .await
        .assert_status(401);

    // A plugin enabled with the capabilities checked (two keys: the
    // manifest asks, the admin grants); one it did not ask for is refused.
    app.install_plugin("showcase", |m| m)
        .await
        .assert_status(201);
    let plugins = b.get("/settings/plugins").await;
    plugins
        .assert(200)
        .contains("showcase 0.1.0 (not enabled)")
        .contains("value=\"kv\"");
    b.post(
        "/settings/plugins/showcase/enable",
        &[
            ("_csrf", &plugins.csrf()),
            ("grants", "kv"),
            ("grants", "records:deal:delete"),
            ("config", "{}"),
        ],
    )
    .await
    .assert(422);
    b.post(
        "/settings/plugins/showcase/enable",
        &[
            ("_csrf", &plugins.csrf()),
            ("grants", "kv"),
            ("config", "not json"),
        ],
    )
    .await
    .assert(422)
    .contains("not JSON");
    b.post(
        "/settings/plugins/showcase/enable",
        &[
            ("_csrf", &plugins.csrf()),
            ("grants", "kv"),
            ("config", "{}"),
        ],
    )
    .await
    .assert(200)
    .contains("showcase is enabled");
    let tp = app.get("/api/v1/tenant/plugins").await.body;
    assert_eq!(tp[0]["enabled"], true);
    assert_eq!(tp[0]["grants"], json!(["kv"]));
}

#[tokio::test]
async fn users_of_a_workspace_without_its_own_domain_sign_in_by_naming_it() {
    let app = TestApp::new().await;
    app.user("acme", "wile@acme.test", PW, &["admin"]).await;
    let mut b = Browser::new(&app);
    b.get("/login")
        .await
        .assert(200)
        .contains("name=\"workspace\"");
    // Without the workspace the default tenant is asked, which has no such user.
    b.sign_in("wile@acme.test", PW, None).await.assert(401);
    let page = b
        .submit(
            "/login",
            "/login",
            &[
                ("email", "wile@acme.test"),
                ("password", PW),
                ("workspace", "acme"),
                ("next", "/settings/general"),
            ],
        )
        .await;
    page.assert(303);
    b.get("/settings/general")
        .await
        .assert(200)
        .contains("value=\"acme\"");

    // A tenant on its own domain is not asked for it.
    {
        use sea_orm::{ActiveModelTrait, Set};
        let (t, _) =
            trellis::crm::tenants::ensure(&app.state.db, "acme", "acme", "admin@acme.test")
                .await
                .unwrap();
        let mut a: trellis::entities::tenant::ActiveModel = t.into();
        a.hostname = Set(Some("crm.acme.test".to_owned()));
        a.update(&app.state.db).await.unwrap();
        app.state.caches.hosts.clear();
    }
    Browser::at_host(&app, "crm.acme.test")
        .get("/login")
        .await
        .assert(200)
        .lacks("name=\"workspace\"");
}

#[tokio::test]
async fn emails_and_exports_carry_the_tenants_brand() {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
    let app = TestApp::new().await;
    app.user("default", "ann@example.com", PW, &["admin"]).await;
    app.patch("/api/v1/tenant", json!({"theme": "harbor"}))
        .await
        .assert_status(200);
    let harbor = app.state.themes.get(Some("harbor"));
    let product = harbor.manifest.product_name.clone();

    let mut b = Browser::new(&app);
    b.submit(
        "/password-reset",
        "/password-reset",
        &[("email", "ann@example.com")],
    )
    .await
    .assert(200)
    .contains("a link to choose a new password is on its way");
    let mail = trellis::entities::outbox::Entity::find()
        .filter(trellis::entities::outbox::Column::Recipient.eq("ann@example.com"))
        .order_by_desc(trellis::entities::outbox::Column::CreatedAt)
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(mail.subject, format!("Reset your {product} password"));
    assert!(
        mail.body.contains(&format!("--\n{product}")),
        "{}",
        mail.body
    );
    if let Some(support) = &harbor.manifest.support.email {
        assert!(mail.body.contains(support.as_str()), "{}", mail.body);
    }
    // The link in it opens the reset page, in the same theme.
    let token = app.outbox_token("ann@example.com").await;
    b.get(&format!("/reset-password?token={token}"))
        .await
        .assert(200)
        .contains(&product);

    app.create("/api/v1/contacts", json!({"first_name": "Ada"}))
        .await;
    let export = app.get("/api/v1/contacts/export?format=csv").await;
    export.assert_status(200);
    let disposition = export.headers["content-disposition"].to_str().unwrap();
    assert!(
        disposition.starts_with("attachment; filename=\"harbordesk-contacts-"),
        "{disposition}"
    );
}

#[tokio::test]
async fn admins_change_users_roles_and_access_and_remove_custom_fields() {
    let app = TestApp::new().await;
    let rep = app
        .user("default", "rep@example.com", PW, &["sales_rep"])
        .await;
    let mut rb = Browser::new(&app);
    rb.sign_in("rep@example.com", PW, None).await.assert(303);
    let mut b = admin_browser(&app).await;
    let page = b.get("/settings/users").await;
    page.assert(200)
        .contains(&format!("action=\"/settings/users/{rep}\""));
    b.post(
        &format!("/settings/users/{rep}"),
        &[
            ("_csrf", &page.csrf()),
            ("roles", "manager"),
            ("status", "active"),
        ],
    )
    .await
    .assert(200)
    .contains("is saved");
    let u = app.get("/api/v1/users").await.body;
    let rep_json = u
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["email"] == "rep@example.com")
        .unwrap()
        .clone();
    assert_eq!(rep_json["roles"], json!(["manager"]));
    // Disabling ends the user's sessions at once.
    b.post(
        &format!("/settings/users/{rep}"),
        &[
            ("_csrf", &page.csrf()),
            ("roles", "manager"),
            ("status", "disabled"),
        ],
    )
    .await
    .assert(200);
    rb.get("/contacts").await.assert(303);

    app.post(
        "/api/v1/custom-fields",
        json!({"object_type": "deal", "key": "source_campaign", "label": "Source campaign", "field_type": "text"}),
    )
    .await
    .assert_status(201);
    // The workspace form sets the theme (and refuses one not on offer).
    let token = b.get("/settings/general").await.csrf();
    let workspace = |theme: &'static str| {
        [
            ("_csrf", token.clone()),
            ("name", "Default".to_owned()),
            ("session_idle_seconds", "1800".to_owned()),
            ("session_absolute_seconds", "43200".to_owned()),
            ("theme", theme.to_owned()),
        ]
    };
    let form = workspace("meadow");
    let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    b.post("/settings/general", &pairs)
        .await
        .assert(200)
        .contains("Saved.");
    assert_eq!(app.get("/api/v1/tenant").await.body["theme"], "meadow");
    b.get("/")
        .await
        .assert(200)
        .contains("/ui/assets/meadow/style.css");
    let form = workspace("no-such");
    let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    b.post("/settings/general", &pairs)
        .await
        .assert(422)
        .contains("no theme `no-such` is available");

    let fields = b.get("/settings/fields").await;
    fields.assert(200).contains("Source campaign");
    let id = app.get("/api/v1/custom-fields").await.body[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    b.post(
        &format!("/settings/fields/{id}/delete"),
        &[("_csrf", &fields.csrf())],
    )
    .await
    .assert(303);
    b.get("/settings/fields")
        .await
        .assert(200)
        .lacks("Source campaign");
}

/// Every form control of a page has a label: `<label for>`, an
/// `aria-label`, or is hidden or a button.
fn assert_labelled(path: &str, html: &str) {
    let labels: Vec<String> = html
        .split("<label for=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next().map(str::to_owned))
        .collect();
    for tag in ["<input", "<select", "<textarea"] {
        for chunk in html.split(tag).skip(1) {
            let el = &chunk[..chunk.find('>').unwrap_or(chunk.len())];
            if el.contains("type=\"hidden\"") || el.contains("aria-label=") {
                continue;
            }
            let id = attr_after(el, "id=\"")
                .unwrap_or_else(|| panic!("{path}: a {tag}> without id or aria-label: {el}"));
            assert!(labels.contains(&id), "{path}: no <label for=\"{id}\">");
        }
    }
}

#[tokio::test]
async fn lists_sort_page_and_save_views_and_pages_escape_and_label_everything() {
    let app = TestApp::new().await;
    let items: Vec<Value> = (0..60)
        .map(|i| json!({"first_name": format!("Person{i:02}"), "last_name": "Zed", "lifecycle_stage": if i % 2 == 0 { "lead" } else { "customer" }}))
        .collect();
    app.post(
        "/api/v1/contacts/bulk",
        json!({"operation": "create", "items": items}),
    )
    .await
    .assert_status(200);
    app.create(
        "/api/v1/contacts",
        json!({"first_name": "<script>alert(1)</script>", "last_name": "\"><img src=x onerror=alert(2)>"}),
    )
    .await;
    let mut b = admin_browser(&app).await;

    // Output is escaped.
    let list = b.get("/contacts").await;
    list.assert(200)
        .lacks("<script>alert(1)")
        .lacks("<img src=x")
        .contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;");

    // Sort by name (last name, then the oldest first among equals).
    let sorted = b.get("/contacts?sort=last_name").await;
    sorted
        .assert(200)
        .contains("aria-sort=\"ascending\"")
        .contains("Person00");
    // 61 contacts, 50 a page: a next link, and the second page goes on.
    let html = unescape(&sorted.html);
    let at = html.find("rel=\"next\"").expect("a next-page link");
    let start = html[..at].rfind("href=\"").unwrap() + 6;
    let href = html[start..start + html[start..].find('"').unwrap()].to_owned();
    assert!(
        href.starts_with("/contacts?sort=last_name&cursor="),
        "{href}"
    );
    let second = b.get(&href).await;
    second
        .assert(200)
        .contains("Person50")
        .lacks("Person00")
        .lacks("rel=\"next\"");

    // A filter from the add-a-filter row, then saved as a view.
    let filtered = b
        .get("/contacts?nf_field=lifecycle_stage&nf_op=eq&nf_value=customer")
        .await;
    filtered.assert(200).contains("Person01").lacks("Person00");
    let saved = b
        .post(
            "/contacts/views",
            &[
                ("_csrf", &filtered.csrf()),
                ("name", "Customers"),
                ("query", "filter=lifecycle_stage:eq:customer"),
            ],
        )
        .await;
    saved.assert(303);
    assert_eq!(
        saved.location.as_deref(),
        Some("/contacts?filter=lifecycle_stage%3Aeq%3Acustomer")
    );
    b.get("/contacts")
        .await
        .assert(200)
        .contains("Customers</a>");
    // A shared view needs the right to manage settings.
    app.user("default", "rep@example.com", PW, &["sales_rep"])
        .await;
    let mut rep = Browser::new(&app);
    rep.sign_in("rep@example.com", PW, None).await.assert(303);
    // The admin's own view is not the rep's.
    let rep_list = rep.get("/contacts").await;
    rep_list.assert(200).lacks("Customers</a>");
    rep.post(
        "/contacts/views",
        &[
            ("_csrf", &rep_list.csrf()),
            ("name", "Mine"),
            ("query", "sort=last_name"),
            ("shared", "true"),
        ],
    )
    .await
    .assert(403);

    // Every page's controls are labelled.
    let c = app.get("/api/v1/contacts?limit=1").await.body["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for path in [
        "/contacts".to_owned(),
        "/contacts/new".to_owned(),
        format!("/contacts/{c}/edit"),
        "/deals/new".to_owned(),
        "/activities/new".to_owned(),
        "/accounts/new".to_owned(),
        "/settings/general".to_owned(),
        "/settings/users".to_owned(),
        "/settings/roles/new".to_owned(),
        "/settings/fields".to_owned(),
        "/settings/pipelines".to_owned(),
        "/settings/api-keys".to_owned(),
        "/settings/audit".to_owned(),
        "/imports".to_owned(),
        "/profile".to_owned(),
    ] {
        let page = b.get(&path).await;
        page.assert(200);
        assert_labelled(&path, &page.html);
    }
    assert_labelled("/login", &Browser::new(&app).get("/login").await.html);
}

#[tokio::test]
async fn a_plugins_panel_shows_on_the_record_page() {
    let app = TestApp::new().await;
    let c = app
        .create(
            "/api/v1/contacts",
            json!({"first_name": "Pat", "last_name": "Panel"}),
        )
        .await;
    app.install_plugin("showcase", |m| m)
        .await
        .assert_status(201);
    app.put(
        "/api/v1/tenant/plugins/showcase",
        json!({"grants": ["records:contact:read", "kv"], "config": {"greeting": "hi", "alert_email": "ops@example.com"}}),
    )
    .await
    .assert_status(200);
    let mut b = admin_browser(&app).await;
    let page = b
        .get(&format!("/contacts/{}", c["id"].as_str().unwrap()))
        .await;
    page.assert(200)
        .contains("<h2>Showcase</h2>")
        .contains("<dt>Name</dt><dd>Pat Panel</dd>")
        .contains("From the plugin showcase");
}

#[tokio::test]
async fn a_password_is_reset_through_the_pages() {
    let app = TestApp::new().await;
    app.user("default", "ann@example.com", PW, &["sales_rep"])
        .await;
    let mut b = Browser::new(&app);
    b.submit(
        "/password-reset",
        "/password-reset",
        &[("email", "ann@example.com")],
    )
    .await
    .assert(200);
    let token = app.outbox_token("ann@example.com").await;
    let path = format!("/reset-password?token={token}");
    b.submit(
        &path,
        "/reset-password",
        &[
            ("token", &token),
            ("password", "a brand new passphrase"),
            ("confirm", "something else"),
        ],
    )
    .await
    .assert(422)
    .contains("The two passwords differ.");
    let done = b
        .submit(
            &path,
            "/reset-password",
            &[
                ("token", &token),
                ("password", "a brand new passphrase"),
                ("confirm", "a brand new passphrase"),
            ],
        )
        .await;
    done.assert(303);
    assert_eq!(done.location.as_deref(), Some("/login?notice=reset"));
    // Single use.
    b.submit(
        &path,
        "/reset-password",
        &[
            ("token", &token),
            ("password", "another new passphrase"),
            ("confirm", "another new passphrase"),
        ],
    )
    .await
    .assert(400);
    b.sign_in("ann@example.com", PW, None).await.assert(401);
    b.sign_in("ann@example.com", "a brand new passphrase", None)
        .await
        .assert(303);
}

#[tokio::test]
async fn a_reference_not_in_the_list_is_given_by_its_link() {
    let app = TestApp::new().await;
    let parent = app
        .create("/api/v1/accounts", json!({"name": "Holding"}))
        .await;
    let child = app
        .create("/api/v1/accounts", json!({"name": "Subsidiary"}))
        .await;
    let (pid, cid) = (
        parent["id"].as_str().unwrap(),
        child["id"].as_str().unwrap(),
    );
    let mut b = admin_browser(&app).await;
    let edit = b.get(&format!("/accounts/{cid}/edit")).await;
    edit.assert(200).contains("name=\"parent_id__link\"");
    b.post(
        &format!("/accounts/{cid}/edit"),
        &[
            ("_csrf", &edit.csrf()),
            ("version", "1"),
            ("name", "Subsidiary"),
            ("parent_id", ""),
            (
                "parent_id__link",
                &format!("http://crm.example/accounts/{pid}"),
            ),
        ],
    )
    .await
    .assert(303);
    let stored = app.get(&format!("/api/v1/accounts/{cid}")).await.body;
    assert_eq!(stored["parent_id"], json!(pid));
    // A link to nothing is a validation error next to the field.
    let again = b.get(&format!("/accounts/{cid}/edit")).await;
    b.post(
        &format!("/accounts/{cid}/edit"),
        &[
            ("_csrf", &again.csrf()),
            ("version", "2"),
            ("name", "Subsidiary"),
            ("parent_id__link", "/accounts/not-an-id"),
        ],
    )
    .await
    .assert(422)
    .contains("id=\"f-parent_id-error\"");
}

/// The import pages: upload a file, map its columns (the suggestion is
/// preselected), a dry run, the real run, the rejects and their error file;
/// the upload form needs its token.
#[tokio::test]
async fn a_file_is_imported_through_the_pages() {
    let app = TestApp::new().await;
    let mut b = admin_browser(&app).await;
    let list = b.get("/imports").await;
    list.assert(200).contains("enctype=\"multipart/form-data\"");
    let csrf = list.csrf();
    let csv = b"Full Name,E-mail,Notes\nAda Lovelace,ada@example.com,first\nBad Row,not-an-email,second\n";
    b.upload(
        "/imports",
        &[("_csrf", "stale"), ("object", "contacts")],
        ("file", "people.csv", csv),
    )
    .await
    .assert(403);
    let up = b
        .upload(
            "/imports",
            &[("_csrf", &csrf), ("object", "contacts")],
            ("file", "people.csv", csv),
        )
        .await;
    up.assert(303);
    let at = up.location.clone().unwrap();
    let id = at.trim_start_matches("/imports/").to_owned();
    let mapping = b.get(&at).await;
    mapping
        .assert(200)
        .contains("<option value=\"full_name\" selected>")
        .contains("<option value=\"emails\" selected>")
        .contains("ada@example.com");
    assert_labelled(&at, &mapping.html);
    let fields = [
        ("map_0", "full_name"),
        ("map_1", "emails"),
        ("map_2", ""),
        ("mode", "create"),
    ];
    let mut dry: Vec<(&str, &str)> = fields.to_vec();
    dry.push(("dry_run", "on"));
    b.submit(&at, &format!("/imports/{id}/start"), &dry)
        .await
        .assert(303);
    app.run_jobs().await;
    b.get(&at)
        .await
        .assert(200)
        .contains("dry run: nothing is written")
        .contains("Would create <strong>1</strong>")
        .contains("not a valid email address");
    assert_eq!(app.count_contacts().await, 0);
    // The real run, from the same upload.
    b.submit(&at, &format!("/imports/{id}/start"), &fields)
        .await
        .assert(303);
    let queued = b.get(&at).await;
    queued.assert(200);
    assert_eq!(queued.headers.get("refresh").unwrap(), "2");
    app.run_jobs().await;
    let done = b.get(&at).await;
    assert!(done.headers.get("refresh").is_none());
    done.assert(200)
        .contains("Created <strong>1</strong>")
        .contains("rejected <strong>1</strong>");
    assert_eq!(app.count_contacts().await, 1);
    let file = b.get(&format!("/imports/{id}/errors-file")).await;
    file.assert(200);
    assert!(
        file.html
            .starts_with("Full Name,E-mail,Notes,Import errors"),
        "{}",
        file.html
    );
    assert!(
        file.html.contains("Bad Row,not-an-email,second,"),
        "{}",
        file.html
    );
    b.get("/imports").await.assert(200).contains("people.csv");
}

/// A list's export links carry its filters and sort; the file holds what
/// the list selects, in the chosen format, and is audited; a role without
/// the export right gets no links and a 403.
#[tokio::test]
async fn a_list_exports_what_it_shows() {
    let app = TestApp::new().await;
    for (first, stage) in [("Ada", "customer"), ("Grace", "lead"), ("Alan", "customer")] {
        app.create(
            "/api/v1/contacts",
            json!({"first_name": first, "last_name": "Export", "lifecycle_stage": stage}),
        )
        .await;
    }
    let mut b = admin_browser(&app).await;
    let list = b
        .get("/contacts?filter=lifecycle_stage:eq:customer&sort=first_name")
        .await;
    list.assert(200).contains(
        "/contacts/export?format=xlsx&amp;filter=lifecycle_stage%3Aeq%3Acustomer&amp;sort=first_name",
    );
    let file = b
        .get("/contacts/export?format=csv&filter=lifecycle_stage%3Aeq%3Acustomer&sort=first_name")
        .await;
    file.assert(200);
    let names: Vec<&str> = file
        .html
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap())
        .collect();
    assert_eq!(names, ["Ada", "Alan"], "{}", file.html);
    assert!(
        file.headers["content-disposition"]
            .to_str()
            .unwrap()
            .ends_with(".csv"),
    );
    let audited = app.get("/api/v1/audit?action=export").await;
    assert_eq!(audited.body["data"].as_array().unwrap().len(), 1);

    app.user("default", "reader@example.com", PW, &["read_only"])
        .await;
    let mut reader = Browser::new(&app);
    reader
        .sign_in("reader@example.com", PW, None)
        .await
        .assert(303);
    reader
        .get("/contacts")
        .await
        .assert(200)
        .lacks("format=csv");
    reader.get("/contacts/export?format=csv").await.assert(403);
}

/// A contact's page links to its likely duplicates: the page lists them,
/// most likely first, with how sure and why, linking to each.
#[tokio::test]
async fn likely_duplicates_are_shown_with_their_reasons() {
    let app = TestApp::new().await;
    let ada = app
        .create(
            "/api/v1/contacts",
            json!({"first_name": "Ada", "last_name": "Lovelace", "emails": [{"address": "ada@example.com"}]}),
        )
        .await;
    let twin = app
        .create(
            "/api/v1/contacts",
            json!({"first_name": "Ada", "last_name": "Lovelace", "emails": [{"address": "ada@example.com"}]}),
        )
        .await;
    app.create(
        "/api/v1/contacts",
        json!({"first_name": "Grace", "last_name": "Hopper"}),
    )
    .await;
    let mut b = admin_browser(&app).await;
    let id = ada["id"].as_str().unwrap();
    b.get(&format!("/contacts/{id}"))
        .await
        .assert(200)
        .contains(&format!("/contacts/{id}/duplicates"));
    let page = b.get(&format!("/contacts/{id}/duplicates")).await;
    page.assert(200)
        .contains("Possible duplicates of Ada Lovelace")
        .contains(twin["id"].as_str().unwrap())
        .contains("98%")
        .contains("ada@example.com")
        .lacks("Grace Hopper");
    assert_labelled("/contacts/duplicates", &page.html);
    let grace_list = app
        .get("/api/v1/contacts?filter=first_name:eq:Grace")
        .await
        .body;
    let grace = grace_list["data"][0]["id"].as_str().unwrap();
    b.get(&format!("/contacts/{grace}/duplicates"))
        .await
        .assert(200)
        .contains("No likely duplicates.");
}

/// From a contact's duplicates to a side-by-side comparison, a merge with a
/// value chosen per field, the survivor's page offering the undo, the old
/// address leading to the survivor, and the undo; and the review queue with
/// its scan and dismissals.
#[tokio::test]
async fn duplicates_are_compared_merged_and_unmerged_in_the_pages() {
    let app = TestApp::new().await;
    let ada = app
        .create(
            "/api/v1/contacts",
            json!({"first_name": "Ada", "last_name": "Lovelace", "job_title": "Analyst",
                   "emails": [{"address": "ada@example.com"}]}),
        )
        .await;
    let twin = app
        .create(
            "/api/v1/contacts",
            json!({"first_name": "Ada", "last_name": "Lovelace", "job_title": "Countess",
                   "emails": [{"address": "ada@example.com"}, {"address": "ada@home.example"}]}),
        )
        .await;
    let (a, t) = (ada["id"].as_str().unwrap(), twin["id"].as_str().unwrap());
    let mut b = admin_browser(&app).await;
    let compare_link = format!("/contacts/{a}/merge?with={t}");
    // (Slashes in attributes are escaped: look for the link's tail.)
    b.get(&format!("/contacts/{a}/duplicates"))
        .await
        .assert(200)
        .contains(&format!("merge?with={t}"));
    let compare = b.get(&compare_link).await;
    compare
        .assert(200)
        .contains("Merge contacts")
        .contains("Countess")
        .contains("Analyst")
        .contains("ada@home.example");
    assert_labelled("/contacts/merge", &compare.html);
    // Keep Ada, with the twin's job title.
    let done = b
        .post(
            &format!("/contacts/{a}/merge"),
            &[
                ("_csrf", &compare.csrf()),
                ("with", t),
                ("survivor", a),
                ("field.job_title", t),
                ("field.first_name", a),
            ],
        )
        .await;
    done.assert(303);
    assert_eq!(
        done.location.as_deref(),
        Some(format!("/contacts/{a}").as_str())
    );
    let kept = b.get(&format!("/contacts/{a}")).await;
    kept.assert(200)
        .contains("Countess")
        .contains("ada@home.example")
        .contains("Merged into this contact")
        .contains("Undo merge");
    // The merged contact's address leads to the survivor.
    let old = b.get(&format!("/contacts/{t}")).await;
    old.assert(303);
    assert_eq!(
        old.location.as_deref(),
        Some(format!("/contacts/{a}").as_str())
    );

    let merges = app.get("/api/v1/merges?object_type=contact").await.body;
    let mid = merges[0]["id"].as_str().unwrap();
    let undone = b
        .post(&format!("/merges/{mid}/undo"), &[("_csrf", &kept.csrf())])
        .await;
    undone.assert(303);
    b.get(&format!("/contacts/{t}"))
        .await
        .assert(200)
        .contains("Countess");
    b.get(&format!("/contacts/{a}"))
        .await
        .assert(200)
        .contains("Analyst")
        .lacks("Undo merge");

    // The queue: a scan finds the pair; "not duplicates" clears it.
    let queue = b.get("/duplicates?object=contacts").await;
    queue.assert(200).contains("Nothing to review");
    assert_labelled("/duplicates", &queue.html);
    b.post(
        "/duplicates/scan",
        &[("_csrf", &queue.csrf()), ("object", "contacts")],
    )
    .await
    .assert(303);
    app.run_jobs().await;
    let queue = b.get("/duplicates?object=contacts").await;
    queue
        .assert(200)
        .contains(&format!("merge?with={}", a.max(t)))
        .contains("Not duplicates");
    let pair = app.get("/api/v1/duplicates?object_type=contact").await.body;
    let pid = pair[0]["id"].as_str().unwrap();
    b.post(
        &format!("/duplicates/{pid}/dismiss"),
        &[("_csrf", &queue.csrf()), ("object", "contacts")],
    )
    .await
    .assert(303);
    b.get("/duplicates?object=contacts")
        .await
        .assert(200)
        .contains("Nothing to review");
}

/// A list's "change all" form reaches every record its filters match (not
/// one page); the action's page shows its progress; a bulk delete is
/// restored from its page. Readers see no such form.
#[tokio::test]
async fn bulk_actions_run_from_a_list_and_deletes_restore_from_their_page() {
    let app = TestApp::new().await;
    let items: Vec<Value> = (0..60)
        .map(|i| json!({"first_name": format!("Lead{i}"), "tags": if i < 55 { vec!["old"] } else { vec!["new"] }}))
        .collect();
    app.post(
        "/api/v1/contacts/bulk",
        json!({"operation": "create", "items": items}),
    )
    .await
    .assert_status(200);
    let mut b = admin_browser(&app).await;
    let list = b.get("/contacts?filter=tags:contains:old").await;
    list.assert(200).contains("Apply to all");
    assert_labelled("/contacts (bulk)", &list.html);
    let started = b
        .post(
            "/contacts/bulk",
            &[
                ("_csrf", &list.csrf()),
                ("filter", "tags:contains:old"),
                ("action", "add_tags"),
                ("value", "q4, stale"),
            ],
        )
        .await;
    started.assert(303);
    let page_path = started.location.clone().unwrap();
    assert!(page_path.starts_with("/bulk-actions/"), "{page_path}");
    let queued = b.get(&page_path).await;
    queued.assert(200).contains("Running");
    assert!(queued.headers.get("refresh").is_some());
    app.run_jobs().await;
    let done = b.get(&page_path).await;
    done.assert(200).contains("55 of 55").lacks("Running");
    assert!(done.headers.get("refresh").is_none());
    let stale = app
        .get("/api/v1/contacts?filter=tags:contains:stale&count=true&limit=1")
        .await;
    assert_eq!(stale.body["total"], 55);

    let deleting = b
        .post(
            "/contacts/bulk",
            &[
                ("_csrf", &list.csrf()),
                ("filter", "tags:contains:stale"),
                ("action", "delete"),
            ],
        )
        .await;
    deleting.assert(303);
    let del_path = deleting.location.clone().unwrap();
    app.run_jobs().await;
    let deleted = b.get(&del_path).await;
    deleted.assert(200).contains("Restore them all");
    let left = app.get("/api/v1/contacts?count=true&limit=1").await;
    assert_eq!(left.body["total"], 5);
    let restoring = b
        .post(
            &format!("{del_path}/restore"),
            &[("_csrf", &deleted.csrf())],
        )
        .await;
    restoring.assert(303);
    app.run_jobs().await;
    let back = app.get("/api/v1/contacts?count=true&limit=1").await;
    assert_eq!(back.body["total"], 60);

    app.user("default", "reader@example.com", PW, &["read_only"])
        .await;
    let mut r = Browser::new(&app);
    r.sign_in("reader@example.com", PW, None).await.assert(303);
    r.get("/contacts").await.assert(200).lacks("Apply to all");
}
