//! The test application: the real router on a real, freshly created database.
//!
//! SQLite by default (a file in a temporary directory). When
//! `TRELLIS_TEST_DATABASE_URL` names a PostgreSQL server, every test gets its
//! own new database there, dropped when the test ends.

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use sea_orm::{ConnectionTrait, Database};
use serde_json::Value;
use tower::ServiceExt;
use trellis::auth::tokens;
use trellis::crm::tenants;
use trellis::{AppState, Config};

pub struct TestApp {
    pub state: AppState,
    router: Router,
    pub token: String,
    _db: DbGuard,
}

pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Response {
    /// The field paths of a problem's `errors`.
    pub fn error_fields(&self) -> Vec<String> {
        self.body["errors"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| e["field"].as_str().unwrap_or("").to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A CSV body (RFC 4180) read by an independent reader: its header
    /// and its rows.
    pub fn csv(&self) -> (Vec<String>, Vec<Vec<String>>) {
        let text = self.body.as_str().unwrap_or_default();
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let header = reader
            .headers()
            .unwrap()
            .iter()
            .map(str::to_owned)
            .collect();
        let rows = reader
            .records()
            .map(|r| r.unwrap().iter().map(str::to_owned).collect())
            .collect();
        (header, rows)
    }

    pub fn etag(&self) -> String {
        self.headers
            .get("etag")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    }

    #[track_caller]
    pub fn assert_status(&self, status: u16) -> &Self {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.body
        );
        self
    }

    #[track_caller]
    pub fn assert_problem(&self, status: u16, code: &str) -> &Self {
        self.assert_status(status);
        assert_eq!(
            self.headers
                .get("content-type")
                .map(|v| v.to_str().unwrap()),
            Some("application/problem+json"),
            "problem responses are application/problem+json"
        );
        assert_eq!(self.body["code"], code, "body: {}", self.body);
        assert_eq!(self.body["status"], status);
        self
    }
}

enum DbGuard {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres {
        admin_url: String,
        name: String,
    },
    /// A second process on another `TestApp`'s database, which owns it.
    Shared,
}

impl Drop for DbGuard {
    fn drop(&mut self) {
        if let DbGuard::Postgres { admin_url, name } = self {
            let (admin_url, name) = (admin_url.clone(), name.clone());
            // Drop runs inside the test's runtime; use a thread with its own.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    if let Ok(db) = Database::connect(&admin_url).await {
                        let _ = db
                            .execute_unprepared(&format!(
                                "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                            ))
                            .await;
                    }
                });
            })
            .join();
        }
    }
}

async fn database() -> (String, DbGuard) {
    match std::env::var("TRELLIS_TEST_DATABASE_URL") {
        Ok(admin_url) if !admin_url.is_empty() => {
            let name = format!("trellis_test_{}", uuid::Uuid::new_v4().simple());
            let admin = Database::connect(&admin_url).await.unwrap_or_else(|e| {
                panic!("TRELLIS_TEST_DATABASE_URL={admin_url} is unreachable: {e}")
            });
            admin
                .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
                .await
                .unwrap();
            (
                trellis::db::with_database(&admin_url, &name),
                DbGuard::Postgres { admin_url, name },
            )
        }
        _ => {
            let dir = tempfile::tempdir().unwrap();
            let url = format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("trellis.db").display()
            );
            (url, DbGuard::Sqlite(dir))
        }
    }
}

impl TestApp {
    /// A fresh application with the default tenant and an admin token.
    pub async fn new() -> TestApp {
        Self::with_config(|_| {}).await
    }

    pub async fn with_config(adjust: impl FnOnce(&mut Config)) -> TestApp {
        let (url, guard) = database().await;
        let mut config = Config {
            database_url: url,
            max_connections: 4,
            master_key: Some(trellis::crypto::MasterKey::generate().to_base64()),
            // Small argon2 parameters keep the suite fast; the defaults are
            // measured in the benchmark.
            password: trellis::auth::password::PasswordParams {
                memory_kib: 1024,
                iterations: 1,
                parallelism: 1,
            },
            trust_forwarded_for: true,
            plugins: trellis::config::PluginConfig {
                // Compiled once for the whole suite, then loaded from disk.
                cache_dir: Some(
                    std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("plugin-cache"),
                ),
                ..Default::default()
            },
            ..Config::default()
        };
        adjust(&mut config);
        let state = AppState::open(config).await.unwrap();
        let (tenant, admin) = tenants::ensure_default(&state.db).await.unwrap();
        let token = tokens::generate();
        tokens::store(&state.db, tenant.id, admin.id, "test", &token, &["admin"])
            .await
            .unwrap();
        TestApp {
            router: state.router(),
            state,
            token,
            _db: guard,
        }
    }

    /// A second kernel process on the same database, with its own caches
    /// (drop it before `self`).
    pub async fn another_process(&self) -> TestApp {
        let state = AppState::open((*self.state.config).clone()).await.unwrap();
        TestApp {
            router: state.router(),
            state,
            token: self.token.clone(),
            _db: DbGuard::Shared,
        }
    }

    /// Installs a bundled plugin (its `plugin.toml` with `edit` applied,
    /// and its component from the build) as the platform operator.
    pub async fn install_plugin(&self, dir: &str, edit: impl Fn(String) -> String) -> Response {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins");
        let manifest = std::fs::read_to_string(root.join(dir).join("plugin.toml")).unwrap();
        let name = dir.rsplit('/').next().unwrap();
        let wasm = std::fs::read(
            std::path::Path::new(env!("TRELLIS_PLUGINS_DIR"))
                .join(format!("{}.wasm", name.replace('-', "_"))),
        )
        .unwrap();
        use base64::Engine as _;
        let op = self.operator(None).await;
        self.send(
            Method::POST,
            "/api/v1/platform/plugins",
            Some(&op),
            Some(serde_json::json!({
                "manifest": edit(manifest),
                "component": base64::engine::general_purpose::STANDARD.encode(wasm),
            })),
            &[],
        )
        .await
    }

    /// Installs a bundled plugin and enables it for the default tenant with
    /// `grants`.
    pub async fn enable_plugin(&self, dir: &str, grants: Value, config: Value) -> Response {
        self.install_plugin(dir, |m| m).await.assert_status(201);
        let id = dir.rsplit('/').next().unwrap();
        self.put(
            &format!("/api/v1/tenant/plugins/{id}"),
            serde_json::json!({"grants": grants, "config": config}),
        )
        .await
    }

    /// Runs every job that is due (after-write hooks, plugin jobs).
    pub async fn run_jobs(&self) -> usize {
        trellis::jobs::drain(&self.state).await.unwrap()
    }

    /// A token for a new tenant (for cross-tenant attacks) with `role`.
    /// The id of a contact in another tenant (`slug`, made if need be).
    pub async fn foreign_contact(&self, slug: &str) -> String {
        let other = self.tenant_token(slug, "admin").await;
        let res = self
            .send(
                Method::POST,
                "/api/v1/contacts",
                Some(&other),
                Some(serde_json::json!({"first_name": "Theirs"})),
                &[],
            )
            .await;
        res.assert_status(201);
        res.body["id"].as_str().unwrap().to_owned()
    }

    pub async fn tenant_token(&self, slug: &str, role: &str) -> String {
        let (tenant, admin) =
            tenants::ensure(&self.state.db, slug, slug, &format!("admin@{slug}.test"))
                .await
                .unwrap();
        // The tenant's admin acts as itself; any other role gets a user of
        // its own, since a key never holds a role its owner lacks.
        let user_id = if role == "admin" {
            admin.id
        } else {
            let email = format!("{role}-{}@{slug}.test", uuid::Uuid::now_v7().simple());
            self.user(slug, &email, "a long test passphrase", &[role])
                .await
        };
        let token = tokens::generate();
        tokens::store(&self.state.db, tenant.id, user_id, "test", &token, &[role])
            .await
            .unwrap();
        token
    }

    /// A token of the default tenant with another role.
    pub async fn role_token(&self, role: &str) -> String {
        self.tenant_token(trellis::crm::tenants::DEFAULT_SLUG, role)
            .await
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Response {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = match body {
            Some(b) => req
                .header("content-type", "application/json")
                .body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        }
        .unwrap();
        self.raw(req).await
    }

    /// GET `path` as `token` and return the body's bytes as sent (binary
    /// files such as XLSX exports), failing the test unless it is a 200.
    pub async fn get_bytes(&self, path: &str, token: &str) -> Vec<u8> {
        let req = Request::builder()
            .method(Method::GET)
            .uri(path)
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap();
        let res = self.router.clone().oneshot(req).await.unwrap();
        assert_eq!(res.status(), 200, "GET {path}");
        res.into_body().collect().await.unwrap().to_bytes().to_vec()
    }

    pub async fn raw(&self, req: Request<Body>) -> Response {
        let res = self.router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Response {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> Response {
        self.send(Method::GET, path, Some(&self.token), None, &[])
            .await
    }

    pub async fn post(&self, path: &str, body: Value) -> Response {
        self.send(Method::POST, path, Some(&self.token), Some(body), &[])
            .await
    }

    pub async fn put(&self, path: &str, body: Value) -> Response {
        self.send(Method::PUT, path, Some(&self.token), Some(body), &[])
            .await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Response {
        self.send(Method::PATCH, path, Some(&self.token), Some(body), &[])
            .await
    }

    pub async fn delete(&self, path: &str) -> Response {
        self.send(Method::DELETE, path, Some(&self.token), None, &[])
            .await
    }

    /// Creates a record and returns its JSON, failing the test on error.
    pub async fn create(&self, path: &str, body: Value) -> Value {
        let res = self.post(path, body).await;
        res.assert_status(201);
        res.body
    }

    /// A pipeline with the usual stages; returns it.
    pub async fn sales_pipeline(&self) -> Value {
        self.create(
            "/api/v1/pipelines",
            serde_json::json!({
                "name": "Sales",
                "stages": [
                    {"name": "Qualification", "probability": 10, "kind": "open"},
                    {"name": "Proposal", "probability": 50, "kind": "open"},
                    {"name": "Won", "probability": 100, "kind": "won"},
                    {"name": "Lost", "probability": 0, "kind": "lost"}
                ]
            }),
        )
        .await
    }
}

impl TestApp {
    /// How many contacts the default tenant has, through the API.
    pub async fn count_contacts(&self) -> u64 {
        let res = self.get("/api/v1/contacts?count=true&limit=1").await;
        res.assert_status(200);
        res.body["total"].as_u64().unwrap()
    }
}

/// Identity helpers: users with passwords, logins, operators, the outbox.
impl TestApp {
    /// A user of tenant `slug` with `roles` and `password`; returns its id.
    pub async fn user(
        &self,
        slug: &str,
        email: &str,
        password: &str,
        roles: &[&str],
    ) -> uuid::Uuid {
        use sea_orm::{ActiveModelTrait, Set};
        let (tenant, _) =
            tenants::ensure(&self.state.db, slug, slug, &format!("admin@{slug}.test"))
                .await
                .unwrap();
        let hash = trellis::auth::password::hash(&self.state.config.password, password).unwrap();
        let id = uuid::Uuid::now_v7();
        trellis::entities::user::ActiveModel {
            id: Set(id),
            tenant_id: Set(tenant.id),
            email: Set(email.to_owned()),
            name: Set(email.to_owned()),
            created_at: Set(trellis::clock::now()),
            password_hash: Set(Some(hash)),
            status: Set("active".to_owned()),
            roles: Set(serde_json::json!(roles)),
            totp_secret: Set(None),
            mfa_enabled_at: Set(None),
            last_login_at: Set(None),
            totp_last_step: Set(None),
        }
        .insert(&self.state.db)
        .await
        .unwrap();
        id
    }

    /// An API key acting as `user_id` of tenant `slug` with `roles`.
    pub async fn key_for(&self, slug: &str, user_id: uuid::Uuid, roles: &[&str]) -> String {
        let (tenant, _) =
            tenants::ensure(&self.state.db, slug, slug, &format!("admin@{slug}.test"))
                .await
                .unwrap();
        let token = tokens::generate();
        tokens::store(&self.state.db, tenant.id, user_id, "test", &token, roles)
            .await
            .unwrap();
        token
    }

    /// POSTs a login from `ip`.
    pub async fn login_from(&self, ip: &str, body: Value) -> Response {
        self.send(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(body),
            &[("x-forwarded-for", ip), ("user-agent", "trellis-tests")],
        )
        .await
    }

    pub async fn login(&self, email: &str, password: &str) -> Response {
        self.login_from(
            "203.0.113.7",
            serde_json::json!({"email": email, "password": password}),
        )
        .await
    }

    /// The session cookie (`name=value`) a response sets.
    pub fn session_cookie(res: &Response) -> String {
        let set = res
            .headers
            .get("set-cookie")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        set.split(';').next().unwrap_or("").to_owned()
    }

    /// A request with a cookie instead of a bearer token.
    pub async fn with_cookie(
        &self,
        method: Method,
        path: &str,
        cookie: &str,
        body: Option<Value>,
    ) -> Response {
        self.send(method, path, None, body, &[("cookie", cookie)])
            .await
    }

    /// The token in the newest outbox email to `to`.
    pub async fn outbox_token(&self, to: &str) -> String {
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
        let mail = trellis::entities::outbox::Entity::find()
            .filter(trellis::entities::outbox::Column::Recipient.eq(to))
            .order_by_desc(trellis::entities::outbox::Column::Id)
            .one(&self.state.db)
            .await
            .unwrap()
            .expect("an email in the outbox");
        mail.body
            .split("token=")
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .to_owned()
    }

    /// POSTs to a public (unauthenticated) route.
    pub async fn public_post(&self, path: &str, body: Value) -> Response {
        self.send(Method::POST, path, None, Some(body), &[]).await
    }

    /// Accepts the invitation last emailed to `email`, choosing `password`.
    pub async fn accept_invitation(&self, email: &str, password: &str) {
        let token = self.outbox_token(email).await;
        self.public_post(
            "/api/v1/auth/accept-invitation",
            serde_json::json!({"token": token, "password": password}),
        )
        .await
        .assert_status(204);
    }

    /// A platform operator key, or a reseller's.
    pub async fn operator(&self, reseller: Option<&str>) -> String {
        trellis::tenancy::operators::create_operator(&self.state.db, "test", reseller)
            .await
            .unwrap()
    }

    /// A UUID as a SQL literal: SQLite stores UUIDs as 16-byte blobs.
    pub fn id_sql(&self, id: &str) -> String {
        match self.state.db.get_database_backend() {
            sea_orm::DbBackend::Sqlite => format!("X'{}'", id.replace('-', "")),
            _ => format!("'{id}'"),
        }
    }

    /// Runs SQL against the test database (for attacks that bypass the API).
    pub async fn sql(&self, sql: &str) {
        self.state.db.execute_unprepared(sql).await.unwrap();
    }

    /// The `n` column of a one-row query.
    pub async fn sql_count(&self, sql: &str) -> i64 {
        let backend = self.state.db.get_database_backend();
        let row = self
            .state
            .db
            .query_one_raw(sea_orm::Statement::from_string(backend, sql))
            .await
            .unwrap()
            .unwrap();
        row.try_get::<i64>("", "n").unwrap()
    }
}
