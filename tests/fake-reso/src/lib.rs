//! A fake RESO Web API server: what an MLS's OData endpoint does, as far as
//! replication needs, written for the real-estate plugin's tests and its
//! benchmark.
//!
//! - `POST /token`: OAuth2 client credentials (in the form body);
//!   answers `{"access_token", "token_type": "Bearer", "expires_in"}`.
//! - `GET /odata/Property`: needs a live bearer token; takes `$filter` in
//!   the two shapes a replicating client sends
//!   (`ModificationTimestamp gt T` and
//!   `ModificationTimestamp gt T or (ModificationTimestamp eq T and ListingKey gt 'K')`),
//!   `$orderby=ModificationTimestamp asc,ListingKey asc`, `$top`, and the
//!   `$skiptoken` of its own `@odata.nextLink`s. Pages are capped at the
//!   server's maximum (so a client asking for more gets short pages).
//! - Listings are generated in the Data Dictionary's JSON shape (numbers as
//!   JSON numbers, timestamps with milliseconds), can be changed between
//!   runs, and failures (429 with `Retry-After`, 5xx, broken JSON, expired
//!   tokens) can be queued for the next requests.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::{Value, json};

/// A failure the server answers a `Property` request with.
#[derive(Debug, Clone)]
pub enum Failure {
    /// `429 Too Many Requests` with `Retry-After: seconds`.
    TooManyRequests { retry_after: u32 },
    /// A status (e.g. 500, 503) with an OData error body.
    Status(u16),
    /// `200` with a body that is not JSON.
    BrokenJson,
}

#[derive(Default)]
struct Inner {
    /// By `(ModificationTimestamp, ListingKey)`, the replication order.
    listings: BTreeMap<(DateTime<Utc>, String), Value>,
    keys: HashMap<String, DateTime<Utc>>,
    tokens: Vec<String>,
    max_page: usize,
    next_links: bool,
    failures: VecDeque<Failure>,
    /// Failures to answer after this many more successful pages.
    failures_after: Option<(usize, Failure)>,
    /// The query string of every `Property` request, in order.
    requests: Vec<String>,
    /// How often each listing was served.
    served: HashMap<String, usize>,
    tokens_issued: usize,
}

/// Client credentials the server accepts.
pub const CLIENT_ID: &str = "trellis-test";
pub const CLIENT_SECRET: &str = "s3cret-client-credential";

/// A running fake server.
#[derive(Clone)]
pub struct FakeReso {
    addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
}

impl FakeReso {
    /// Starts a server on a free port of 127.0.0.1 (on the current tokio
    /// runtime), serving at most `max_page` listings a page.
    pub async fn start(max_page: usize) -> std::io::Result<FakeReso> {
        let inner = Arc::new(Mutex::new(Inner {
            max_page: max_page.max(1),
            next_links: true,
            ..Inner::default()
        }));
        let app = Router::new()
            .route("/token", post(token))
            .route("/odata/Property", get(property))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(FakeReso { addr, inner })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A test that panicked while holding the lock has failed already.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `127.0.0.1:PORT`, the host a plugin must be granted.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// The OData service root.
    pub fn url(&self) -> String {
        format!("http://{}/odata", self.addr)
    }

    pub fn token_url(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    /// Adds or replaces listings (by `ListingKey`).
    pub fn put(&self, listings: impl IntoIterator<Item = Value>) {
        let mut g = self.lock();
        for l in listings {
            let key = l["ListingKey"].as_str().unwrap_or_default().to_owned();
            let ts = l["ModificationTimestamp"]
                .as_str()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map_or(DateTime::<Utc>::MIN_UTC, |t| t.with_timezone(&Utc));
            if let Some(old) = g.keys.insert(key.clone(), ts) {
                g.listings.remove(&(old, key.clone()));
            }
            g.listings.insert((ts, key), l);
        }
    }

    /// Changes a listing: `change` edits it, and its `ModificationTimestamp`
    /// becomes `at`. False if there is no such listing.
    pub fn modify(&self, key: &str, at: DateTime<Utc>, change: impl FnOnce(&mut Value)) -> bool {
        let current = {
            let g = self.lock();
            g.keys
                .get(key)
                .and_then(|ts| g.listings.get(&(*ts, key.to_owned())))
                .cloned()
        };
        let Some(mut l) = current else {
            return false;
        };
        change(&mut l);
        l["ModificationTimestamp"] = json!(timestamp(at));
        self.put([l]);
        true
    }

    /// A listing as the server holds it.
    pub fn listing(&self, key: &str) -> Option<Value> {
        let g = self.lock();
        let ts = g.keys.get(key)?;
        g.listings.get(&(*ts, key.to_owned())).cloned()
    }

    /// The newest `ModificationTimestamp` held.
    pub fn newest(&self) -> Option<DateTime<Utc>> {
        self.lock().listings.keys().next_back().map(|(t, _)| *t)
    }

    pub fn len(&self) -> usize {
        self.lock().listings.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether pages carry `@odata.nextLink` (servers that page only by
    /// keyset leave it out).
    pub fn set_next_links(&self, on: bool) {
        self.lock().next_links = on;
    }

    /// The next `Property` request gets `failure` (queued in order).
    pub fn fail_next(&self, failure: Failure) {
        self.lock().failures.push_back(failure);
    }

    /// `failure` after `pages` more successful pages.
    pub fn fail_after(&self, pages: usize, failure: Failure) {
        self.lock().failures_after = Some((pages, failure));
    }

    /// Forgets every token issued (as if they expired).
    pub fn expire_tokens(&self) {
        self.lock().tokens.clear();
    }

    pub fn tokens_issued(&self) -> usize {
        self.lock().tokens_issued
    }

    /// The query strings of the `Property` requests so far.
    pub fn requests(&self) -> Vec<String> {
        self.lock().requests.clone()
    }

    /// How many times each listing was served.
    pub fn served(&self) -> HashMap<String, usize> {
        self.lock().served.clone()
    }

    pub fn reset_counters(&self) {
        let mut g = self.lock();
        g.requests.clear();
        g.served.clear();
    }
}

/// An RFC 3339 UTC timestamp with milliseconds, as MLS feeds write them.
pub fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

const CITIES: [(&str, &str, &str); 6] = [
    ("Austin", "TX", "787"),
    ("Denver", "CO", "802"),
    ("Portland", "OR", "972"),
    ("Raleigh", "NC", "276"),
    ("Madison", "WI", "537"),
    ("Boise", "ID", "837"),
];
const STREETS: [&str; 6] = ["Oak", "Maple", "Cedar", "Pine", "Elm", "Birch"];
const SUBTYPES: [&str; 3] = ["SingleFamilyResidence", "Condominium", "Townhouse"];

/// `n` listings numbered from `first`, in the RESO Data Dictionary 2.0
/// shape, modified from `base` on: one second apart, except that every
/// `same_every` listings share one timestamp (to put equal timestamps
/// across page boundaries). Deterministic.
pub fn generate(first: usize, n: usize, base: DateTime<Utc>, same_every: usize) -> Vec<Value> {
    (first..first + n)
        .map(|i| {
            let h = (i as u64).wrapping_mul(2_654_435_761) % 1_000_003;
            let (city, state, zip) = CITIES[i % CITIES.len()];
            let price = 150_000 + (h % 200) * 5_000;
            let beds = 1 + h % 5;
            let group = if same_every > 1 { i / same_every } else { i };
            let modified = base + Duration::seconds(group as i64);
            let status = match h % 10 {
                0 => "Pending",
                1 => "Coming Soon",
                2 => "Active Under Contract",
                _ => "Active",
            };
            json!({
                "@odata.id": format!("Property('L{i:07}')"),
                "ListingKey": format!("L{i:07}"),
                "ListingId": format!("MLS{i:07}"),
                "StandardStatus": status,
                "ListPrice": price,
                "OriginalListPrice": price,
                "UnparsedAddress": format!("{} {} Street, {city}, {state}", 100 + h % 9900, STREETS[i % STREETS.len()]),
                "City": city,
                "StateOrProvince": state,
                "PostalCode": format!("{zip}{:02}", h % 100),
                "Country": "US",
                "PropertyType": "Residential",
                "PropertySubType": SUBTYPES[i % SUBTYPES.len()],
                "BedroomsTotal": beds,
                "BathroomsTotalInteger": 1 + h % 3,
                "LivingArea": 800 + (h % 3000) as i64,
                "LotSizeArea": (12 + h % 50) as f64 / 100.0,
                "YearBuilt": 1950 + (h % 75) as i64,
                "PublicRemarks": format!("A {beds}-bedroom home in {city}."),
                "ListAgentKey": format!("A{:04}", h % 50),
                "ListOfficeKey": format!("O{:03}", h % 7),
                // A field the CRM's listing does not keep.
                "ListOfficeName": format!("Office {}", h % 7),
                "GarageYN": h.is_multiple_of(2),
                "ListingContractDate": "2026-10-01",
                "ModificationTimestamp": timestamp(modified),
                "DaysOnMarket": h % 120,
                "Latitude": (3000 + h % 1000) as f64 / 100.0,
                "Longitude": -((9000 + h % 1000) as f64 / 100.0),
            })
        })
        .collect()
}

/// A fixed instant for tests: 2026-11-01T00:00:00Z.
pub fn base_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

fn odata_error(status: StatusCode, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": {"code": status.as_u16().to_string(), "message": message}})),
    )
        .into_response()
}

async fn token(State(inner): State<Arc<Mutex<Inner>>>, body: axum::body::Bytes) -> Response {
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "unsupported_grant_type"})),
        )
            .into_response();
    }
    let ok = form.get("client_id").map(String::as_str) == Some(CLIENT_ID)
        && form.get("client_secret").map(String::as_str) == Some(CLIENT_SECRET);
    if !ok {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    let mut g = inner.lock().unwrap_or_else(|e| e.into_inner());
    g.tokens_issued += 1;
    let t = format!("tok-{}-{}", g.tokens_issued, Utc::now().timestamp_micros());
    g.tokens.push(t.clone());
    axum::Json(json!({"access_token": t, "token_type": "Bearer", "expires_in": 3600}))
        .into_response()
}

/// `(T, K)` from a `$filter` or `$skiptoken`; `K` empty for `gt T` alone.
fn after(params: &HashMap<String, String>) -> Result<Option<(DateTime<Utc>, String)>, String> {
    let parse_t = |t: &str| {
        DateTime::parse_from_rfc3339(t.trim())
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| format!("not a timestamp: {t}"))
    };
    if let Some(tok) = params.get("$skiptoken") {
        let (t, k) = tok.split_once('|').ok_or("bad $skiptoken")?;
        return Ok(Some((parse_t(t)?, k.to_owned())));
    }
    let Some(f) = params.get("$filter") else {
        return Ok(None);
    };
    let rest = f
        .trim()
        .strip_prefix("ModificationTimestamp gt ")
        .ok_or("unsupported $filter")?;
    match rest.split_once(" or (ModificationTimestamp eq ") {
        None => Ok(Some((parse_t(rest)?, String::new()))),
        Some((t1, tail)) => {
            let (t2, key) = tail
                .split_once(" and ListingKey gt '")
                .ok_or("unsupported $filter")?;
            let key = key.strip_suffix("')").ok_or("unsupported $filter")?;
            if t1.trim() != t2.trim() {
                return Err("the two timestamps of the $filter differ".to_owned());
            }
            Ok(Some((parse_t(t1)?, key.replace("''", "'"))))
        }
    }
}

async fn property(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
    uri: axum::http::Uri,
) -> Response {
    let mut g = inner.lock().unwrap_or_else(|e| e.into_inner());
    g.requests.push(uri.query().unwrap_or_default().to_owned());
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if !bearer.is_some_and(|t| g.tokens.iter().any(|x| x == t)) {
        return odata_error(StatusCode::UNAUTHORIZED, "a valid bearer token is required");
    }
    let failure = match g.failures_after.take() {
        Some((0, f)) => Some(f),
        Some((n, f)) => {
            g.failures_after = Some((n - 1, f));
            g.failures.pop_front()
        }
        None => g.failures.pop_front(),
    };
    match failure {
        Some(Failure::TooManyRequests { retry_after }) => {
            let mut r = odata_error(StatusCode::TOO_MANY_REQUESTS, "rate limit exceeded");
            if let Ok(v) = retry_after.to_string().parse() {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return r;
        }
        Some(Failure::Status(s)) => {
            let status = StatusCode::from_u16(s).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return odata_error(status, "the server failed");
        }
        Some(Failure::BrokenJson) => {
            return (StatusCode::OK, "{\"value\": [ {\"ListingKey\": ").into_response();
        }
        None => {}
    }
    if let Some(order) = params.get("$orderby")
        && order.replace(' ', "") != "ModificationTimestampasc,ListingKeyasc"
    {
        return odata_error(StatusCode::BAD_REQUEST, "unsupported $orderby");
    }
    let position = match after(&params) {
        Ok(p) => p,
        Err(e) => return odata_error(StatusCode::BAD_REQUEST, &e),
    };
    let top = match params.get("$top").map(|t| t.parse::<usize>()) {
        None => g.max_page,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => return odata_error(StatusCode::BAD_REQUEST, "bad $top"),
    };
    let size = top.min(g.max_page);
    let page: Vec<Value> = match &position {
        None => g.listings.values().take(size + 1).cloned().collect(),
        Some((t, k)) if k.is_empty() => g
            .listings
            .range((*t + Duration::microseconds(1), String::new())..)
            .take(size + 1)
            .map(|(_, v)| v.clone())
            .collect(),
        Some((t, k)) => g
            .listings
            .range((
                std::ops::Bound::Excluded((*t, k.clone())),
                std::ops::Bound::Unbounded,
            ))
            .take(size + 1)
            .map(|(_, v)| v.clone())
            .collect(),
    };
    let more = page.len() > size;
    let page: Vec<Value> = page.into_iter().take(size).collect();
    for l in &page {
        if let Some(k) = l["ListingKey"].as_str() {
            *g.served.entry(k.to_owned()).or_default() += 1;
        }
    }
    let mut body = json!({"@odata.context": "$metadata#Property", "value": page});
    if more
        && g.next_links
        && let Some(last) = body["value"].as_array().and_then(|a| a.last())
    {
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.append_pair("$orderby", "ModificationTimestamp asc,ListingKey asc");
        q.append_pair("$top", &top.to_string());
        q.append_pair(
            "$skiptoken",
            &format!(
                "{}|{}",
                last["ModificationTimestamp"].as_str().unwrap_or_default(),
                last["ListingKey"].as_str().unwrap_or_default()
            ),
        );
        body["@odata.nextLink"] = json!(format!(
            "http://{}/odata/Property?{}",
            headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("127.0.0.1"),
            q.finish()
        ));
    }
    axum::Json(body).into_response()
}
