//! The web UI in real headless Chromium, driven over WebDriver
//! (chromedriver): signing in with MFA, a contact form with a custom field
//! and a validation error, dragging a deal to another stage, and a theme
//! chosen by hostname. Screenshots of the dashboard in every theme are
//! written to `target/ui-screenshots/`.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs
//! them). Without them the test fails saying so; set
//! `TRELLIS_SKIP_BROWSER_TESTS=1` to skip it knowingly.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use fantoccini::actions::{InputSource, MOUSE_BUTTON_LEFT, MouseActions, PointerAction};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::support::TestApp;

const PW: &str = "a long test passphrase";

/// chromedriver, stopped when dropped.
struct Driver {
    child: std::process::Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find(var: &str, candidates: &[&str]) -> Option<PathBuf> {
    if let Ok(p) = std::env::var(var) {
        return Some(PathBuf::from(p));
    }
    candidates.iter().map(PathBuf::from).find(|p| p.exists())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts chromedriver, or `None` when the browser tests are skipped on
/// purpose. A missing browser is a failure, not a silent skip.
async fn driver() -> Option<(Driver, PathBuf)> {
    if std::env::var("TRELLIS_SKIP_BROWSER_TESTS").is_ok_and(|v| v == "1") {
        eprintln!("SKIPPED: browser tests (TRELLIS_SKIP_BROWSER_TESTS=1)");
        return None;
    }
    let chromedriver = find("TRELLIS_CHROMEDRIVER", &["/usr/bin/chromedriver"]).expect(
        "the browser tests need chromedriver: `apt-get install chromium chromium-driver` \
         (or set TRELLIS_CHROMEDRIVER; TRELLIS_SKIP_BROWSER_TESTS=1 skips them)",
    );
    let chromium = find(
        "TRELLIS_CHROMIUM",
        &["/usr/bin/chromium", "/usr/bin/chromium-browser"],
    )
    .expect("the browser tests need Chromium: `apt-get install chromium chromium-driver`");
    let port = free_port();
    let child = std::process::Command::new(&chromedriver)
        .arg(format!("--port={port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromedriver.display()));
    let d = Driver { child, port };
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Some((d, chromium));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not listen on port {port}");
}

async fn browser(d: &Driver, chromium: &std::path::Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".to_owned(),
        json!({
            "binary": chromium.display().to_string(),
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,900", "--lang=en-GB"],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", d.port))
        .await
        .expect("a WebDriver session with headless Chromium")
}

/// Serves the app on a free port; returns its address.
async fn serve(app: &TestApp) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = app.state.router();
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    addr
}

fn screenshots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("../ui-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn fill(c: &Client, css: &str, text: &str) {
    let e = c.find(Locator::Css(css)).await.unwrap();
    e.clear().await.unwrap();
    e.send_keys(text).await.unwrap();
}

async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// The text of `css` once `ready` holds for it (pages load after a click:
/// an element of the page being left may be read, or go stale, meanwhile).
async fn wait_text(c: &Client, css: &str, ready: impl Fn(&str) -> bool) -> String {
    let mut last = String::new();
    for _ in 0..100 {
        if let Ok(e) = c.find(Locator::Css(css)).await
            && let Ok(t) = e.text().await
        {
            if ready(&t) {
                return t;
            }
            last = t;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{css} never became ready; last text: {last:?}");
}

async fn text_of(c: &Client, css: &str) -> String {
    wait_text(c, css, |t| !t.is_empty()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ui_works_in_a_real_browser() {
    let Some((driver, chromium)) = driver().await else {
        return;
    };
    let app = TestApp::new().await;
    let pipeline = app.sales_pipeline().await;
    let proposal = pipeline["stages"][1]["id"].as_str().unwrap().to_owned();
    app.post(
        "/api/v1/custom-fields",
        json!({"object_type": "contact", "key": "beds", "label": "Bedrooms wanted",
               "field_type": "integer", "max": "20"}),
    )
    .await
    .assert_status(201);
    let deal = app
        .create(
            "/api/v1/deals",
            json!({"name": "Difference Engine", "amount": "4200", "currency": "GBP", "pipeline_id": pipeline["id"]}),
        )
        .await;
    let deal_id = deal["id"].as_str().unwrap().to_owned();
    app.user("default", "boss@example.com", PW, &["admin"])
        .await;
    let addr = serve(&app).await;
    let base = format!("http://127.0.0.1:{}", addr.port());
    let c = browser(&driver, &chromium).await;

    // Sign in, set up MFA from the profile, sign out, sign in with a code.
    c.goto(&format!("{base}/contacts")).await.unwrap();
    assert!(
        c.current_url()
            .await
            .unwrap()
            .as_str()
            .contains("/login?next=%2Fcontacts")
    );
    fill(&c, "#email", "boss@example.com").await;
    fill(&c, "#password", PW).await;
    click(&c, "form[action='/login'] button[type=submit]").await;
    wait_text(&c, "main h1", |t| t == "Contacts").await;
    c.goto(&format!("{base}/profile")).await.unwrap();
    click(&c, "form[action='/profile/mfa/enroll'] button").await;
    let qr = c.wait().for_element(Locator::Css(".qr img")).await.unwrap();
    assert!(
        qr.attr("src")
            .await
            .unwrap()
            .unwrap()
            .starts_with("data:image/svg+xml;base64,")
    );
    let secret = text_of(&c, "main code").await;
    let bytes = totp_rs::Secret::try_from_base32(&secret)
        .unwrap()
        .as_bytes()
        .to_vec();
    let now = chrono::Utc::now().timestamp() as u64;
    fill(&c, "#code", &trellis::auth::totp::code_at(&bytes, now)).await;
    click(&c, "form[action='/profile/mfa/activate'] button").await;
    wait_text(&c, ".notice", |t| {
        t.contains("Two-factor authentication is on")
    })
    .await;
    click(&c, "form[action='/logout'] button").await;
    wait_text(&c, ".notice", |t| t.contains("signed out")).await;
    fill(&c, "#email", "boss@example.com").await;
    fill(&c, "#password", PW).await;
    click(&c, "form[action='/login'] button[type=submit]").await;
    wait_text(&c, "#code-error", |t| t.contains("authenticator")).await;
    fill(&c, "#password", PW).await;
    fill(&c, "#code", &trellis::auth::totp::code_at(&bytes, now + 30)).await;
    click(&c, "form[action='/login'] button[type=submit]").await;
    wait_text(&c, "main h1", |t| t == "Dashboard").await;

    // A contact with a custom field: a validation error, then saved.
    c.goto(&format!("{base}/contacts/new")).await.unwrap();
    fill(&c, "#f-first_name", "Ada").await;
    fill(&c, "#f-last_name", "Lovelace").await;
    fill(&c, "#f-custom-beds", "40").await;
    click(&c, "main form button[type=submit]").await;
    wait_text(&c, "#f-custom-beds-error", |t| t.contains("20")).await;
    let kept = c
        .find(Locator::Css("#f-first_name"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap();
    assert_eq!(kept.as_deref(), Some("Ada"));
    fill(&c, "#f-custom-beds", "3").await;
    click(&c, "main form button[type=submit]").await;
    wait_text(&c, "main h1", |t| t == "Ada Lovelace").await;
    let details = text_of(&c, "dl.fields").await;
    assert!(
        details.contains("Bedrooms wanted") && details.contains('3'),
        "{details}"
    );

    // Drag the deal to the Proposal column; it stays there after a reload.
    c.goto(&format!(
        "{base}/board?pipeline={}",
        pipeline["id"].as_str().unwrap()
    ))
    .await
    .unwrap();
    let card = c
        .find(Locator::Css(&format!(
            "li.card[data-id='{deal_id}'] .muted"
        )))
        .await
        .unwrap();
    let target = c
        .find(Locator::Css(&format!(
            ".column[data-stage='{proposal}'] h2"
        )))
        .await
        .unwrap();
    let drag = MouseActions::new("mouse".to_owned())
        .then(PointerAction::MoveToElement {
            element: card,
            duration: None,
            x: 0.0,
            y: 0.0,
        })
        .then(PointerAction::Down {
            button: MOUSE_BUTTON_LEFT,
        })
        .then(PointerAction::MoveBy {
            duration: Some(Duration::from_millis(100)),
            x: 20.0,
            y: 5.0,
        })
        .then(PointerAction::MoveToElement {
            element: target,
            duration: Some(Duration::from_millis(300)),
            x: 0.0,
            y: 40.0,
        })
        .then(PointerAction::Up {
            button: MOUSE_BUTTON_LEFT,
        });
    c.perform_actions(drag).await.unwrap();
    c.release_actions().await.unwrap();
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(&format!(
            ".column[data-stage='{proposal}'] li.card.moved[data-id='{deal_id}']"
        )))
        .await
        .expect("the card moved and the server confirmed it");
    c.refresh().await.unwrap();
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(&format!(
            ".column[data-stage='{proposal}'] li.card[data-id='{deal_id}']"
        )))
        .await
        .expect("after a reload the deal is in Proposal");
    let stored = app.get(&format!("/api/v1/deals/{deal_id}")).await.body;
    assert_eq!(stored["stage_id"], json!(proposal));
    let history = app
        .get(&format!("/api/v1/deals/{deal_id}/stage-history"))
        .await
        .body;
    assert_eq!(history.as_array().unwrap().len(), 2, "{history}");

    // The dashboard in every theme, as screenshots.
    let dir = screenshots();
    let keys: Vec<String> = app.state.themes.keys().cloned().collect();
    for key in &keys {
        app.patch("/api/v1/tenant", json!({"theme": key}))
            .await
            .assert_status(200);
        c.goto(&format!("{base}/")).await.unwrap();
        let css = c
            .find(Locator::Css("link[rel=stylesheet]"))
            .await
            .unwrap()
            .attr("href")
            .await
            .unwrap()
            .unwrap();
        assert!(css.starts_with(&format!("/ui/assets/{key}/")), "{css}");
        let png = c.screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
        std::fs::write(dir.join(format!("dashboard-{key}.png")), png).unwrap();
    }
    app.patch("/api/v1/tenant", json!({"theme": ""}))
        .await
        .assert_status(200);

    // A reseller's custom domain shows its theme: *.localhost is loopback.
    {
        use sea_orm::{ActiveModelTrait, Set};
        let (tenant, _) = trellis::crm::tenants::ensure(
            &app.state.db,
            "harborco",
            "Harbor Co",
            "admin@harborco.test",
        )
        .await
        .unwrap();
        let mut t: trellis::entities::tenant::ActiveModel = tenant.into();
        t.hostname = Set(Some("harbor.localhost".to_owned()));
        t.theme = Set(Some("harbor".to_owned()));
        t.update(&app.state.db).await.unwrap();
    }
    let harbor = app
        .state
        .themes
        .get(Some("harbor"))
        .manifest
        .product_name
        .clone();
    c.goto(&format!("http://harbor.localhost:{}/login", addr.port()))
        .await
        .unwrap();
    wait_text(&c, "main h1", |t| t.contains(&harbor)).await;
    std::fs::write(
        dir.join("login-harbor-by-hostname.png"),
        c.screenshot().await.unwrap(),
    )
    .unwrap();
    c.goto(&format!("{base}/login")).await.unwrap();
    assert!(!text_of(&c, ".brand").await.contains(&harbor));

    // On a phone: nothing but the board's own columns scrolls sideways, and
    // the navigation's links stay large enough to touch (44 px).
    c.set_window_size(390, 844).await.unwrap();
    let deal_path = format!("/deals/{deal_id}");
    for path in [
        "/",
        "/contacts",
        "/contacts/new",
        deal_path.as_str(),
        "/settings/general",
    ] {
        c.goto(&format!("{base}{path}")).await.unwrap();
        let fits = c
            .execute(
                "return document.documentElement.scrollWidth <= window.innerWidth + 1;",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(fits, json!(true), "{path} overflows a phone's width");
    }
    let smallest = c
        .execute(
            "return Math.min(...[...document.querySelectorAll('nav[aria-label=Main] a')].map(a => a.getBoundingClientRect().height));",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        smallest.as_f64().unwrap() >= 44.0,
        "touch targets: {smallest}"
    );
    c.set_window_size(1280, 900).await.unwrap();

    // The idle warning: with a one-minute idle timeout it shows after 30 s,
    // and "stay signed in" keeps the session.
    app.patch("/api/v1/tenant", json!({"session_idle_seconds": 60}))
        .await
        .assert_status(200);
    c.goto(&format!("{base}/contacts")).await.unwrap();
    let warning = c.find(Locator::Id("idle-warning")).await.unwrap();
    assert!(!warning.is_displayed().await.unwrap(), "hidden at first");
    let mut shown = false;
    for _ in 0..60 {
        if warning.is_displayed().await.unwrap() {
            shown = true;
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(shown, "the idle warning appears before the session ends");
    click(&c, "#idle-warning button[data-stay]").await;
    for _ in 0..50 {
        if !warning.is_displayed().await.unwrap() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !warning.is_displayed().await.unwrap(),
        "staying hides the warning"
    );
    c.goto(&format!("{base}/contacts")).await.unwrap();
    wait_text(&c, "main h1", |t| t == "Contacts").await;

    c.close().await.unwrap();
}
