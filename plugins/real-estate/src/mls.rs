//! MLS replication from a RESO Web API (OData) server.
//!
//! A run pages through the server's `Property` resource ordered by
//! `(ModificationTimestamp, ListingKey)` and upserts each listing by its
//! `ListingKey` (a unique field, so two runs can never make two records of
//! one listing). After each page the position reached (the greatest
//! `(ModificationTimestamp, ListingKey)` written) is saved in the plugin's
//! key-value store; the next query asks for what comes after it:
//!
//! ```text
//! ModificationTimestamp gt T or (ModificationTimestamp eq T and ListingKey gt 'K')
//! ```
//!
//! so listings sharing a timestamp across a page boundary are neither missed
//! nor fetched twice, and a run that stops anywhere (deadline, 429, an
//! outage, a crash) resumes from the last saved page. The same query makes
//! every later run incremental. `@odata.nextLink` is followed while a run
//! lasts; a page without one ends the run when it is short, and otherwise
//! the run goes on from the position (servers that page only by keyset).
//!
//! One job invocation works for [`BUDGET_MS`] and hands over to a
//! continuation job. Failures of the server (5xx, timeouts) and 429s are
//! waited out by continuations with a delay, not returned as job failures:
//! an MLS outage must not trip the plugin's circuit breaker and disable
//! hooks and routes that have nothing to do with it.

use std::collections::HashMap;

use serde_json::{Map, Value, json};
use trellis_plugin_sdk::records::Query;
use trellis_plugin_sdk::{Error as HostError, host, kv, log, records};

use crate::listing;

/// The scheduled job (and its continuations).
pub const JOB: &str = "mls-sync";
/// How long one invocation works before handing over (the plugin's
/// deadline is 30 s; a page takes well under a second).
const BUDGET_MS: i64 = 8_000;
/// A run holds its lease this long past its last step: a scheduled tick
/// inside it does nothing, and a run whose chain died is taken over after it.
const LEASE_MS: i64 = 10 * 60_000;
/// Consecutive server failures after which a run gives up (the next
/// scheduled tick starts again from the saved position).
const MAX_FAILURES: u32 = 8;
const STATE_KEY: &str = "mls:state";

/// The tenant's MLS connection, from the plugin's configuration (`mls`).
pub struct Settings {
    /// The OData service root, e.g. `https://api.mls.example/odata`.
    url: String,
    resource: String,
    token_url: Option<String>,
    client_id: String,
    client_secret: String,
    scope: Option<String>,
    page_size: u32,
    /// Task agents about listings found by the first (full) import too.
    notify_initial: bool,
}

impl Settings {
    /// The configuration, or `None` when no MLS is configured.
    pub fn load() -> Option<Settings> {
        let config = host::config();
        let mls = config.get("mls")?;
        let text = |k: &str| {
            mls.get(k)
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        Some(Settings {
            url: text("url")?.trim_end_matches('/').to_owned(),
            resource: text("resource").unwrap_or_else(|| "Property".to_owned()),
            token_url: text("token_url"),
            client_id: text("client_id").unwrap_or_default(),
            client_secret: text("client_secret").unwrap_or_default(),
            scope: text("scope"),
            page_size: mls
                .get("page_size")
                .and_then(Value::as_u64)
                .map_or(200, |n| n.clamp(1, 1000) as u32),
            notify_initial: mls
                .get("notify_initial")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        })
    }
}

/// Where replication stands: a `(ModificationTimestamp, ListingKey)`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Position {
    /// As the server wrote it (sent back verbatim in the next filter).
    timestamp: String,
    /// Microseconds since the epoch, for comparing.
    micros: i64,
    key: String,
}

impl Position {
    fn of(listing: &Value) -> Option<Position> {
        let timestamp = listing.get("ModificationTimestamp")?.as_str()?.to_owned();
        let micros = listing::parse_micros(&timestamp)?;
        let key = listing::key_of(listing)?;
        Some(Position {
            timestamp,
            micros,
            key,
        })
    }

    fn after(&self, other: &Position) -> bool {
        (self.micros, &self.key) > (other.micros, &other.key)
    }

    fn to_json(&self) -> Value {
        json!({"timestamp": self.timestamp, "key": self.key})
    }

    fn from_json(v: &Value) -> Option<Position> {
        let timestamp = v.get("timestamp")?.as_str()?.to_owned();
        Some(Position {
            micros: listing::parse_micros(&timestamp)?,
            key: v.get("key")?.as_str()?.to_owned(),
            timestamp,
        })
    }
}

/// Counts of one run.
#[derive(Debug, Clone, Default)]
struct Counts {
    fetched: u64,
    created: u64,
    updated: u64,
    unchanged: u64,
    rejected: u64,
    pages: u64,
}

impl Counts {
    fn to_json(&self) -> Value {
        json!({"fetched": self.fetched, "created": self.created, "updated": self.updated,
               "unchanged": self.unchanged, "rejected": self.rejected, "pages": self.pages})
    }

    fn from_json(v: &Value) -> Counts {
        let n = |k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
        Counts {
            fetched: n("fetched"),
            created: n("created"),
            updated: n("updated"),
            unchanged: n("unchanged"),
            rejected: n("rejected"),
            pages: n("pages"),
        }
    }
}

/// The run under way.
#[derive(Debug, Clone)]
struct Run {
    id: String,
    started_ms: i64,
    lease_until_ms: i64,
    /// The server's `@odata.nextLink` to follow, if the last page had one.
    next_link: Option<String>,
    failures: u32,
    counts: Counts,
}

/// Everything the replication keeps, in `kv` under [`STATE_KEY`].
#[derive(Debug, Clone, Default)]
struct State {
    position: Option<Position>,
    /// Whether a full import has finished (later runs are incremental).
    initial_done: bool,
    run: Option<Run>,
    last_run: Option<Value>,
    last_error: Option<String>,
}

impl State {
    fn load() -> Result<State, String> {
        let Some(v) = kv::get_json(STATE_KEY).map_err(|e| e.to_string())? else {
            return Ok(State::default());
        };
        let run = v.get("run").filter(|r| !r.is_null()).map(|r| Run {
            id: r.get("id").and_then(Value::as_str).unwrap_or("").to_owned(),
            started_ms: r.get("started_ms").and_then(Value::as_i64).unwrap_or(0),
            lease_until_ms: r.get("lease_until_ms").and_then(Value::as_i64).unwrap_or(0),
            next_link: r
                .get("next_link")
                .and_then(Value::as_str)
                .map(str::to_owned),
            failures: r.get("failures").and_then(Value::as_u64).unwrap_or(0) as u32,
            counts: Counts::from_json(r.get("counts").unwrap_or(&Value::Null)),
        });
        Ok(State {
            position: v.get("position").and_then(Position::from_json),
            initial_done: v
                .get("initial_done")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            run,
            last_run: v.get("last_run").filter(|r| !r.is_null()).cloned(),
            last_error: v
                .get("last_error")
                .and_then(Value::as_str)
                .map(str::to_owned),
        })
    }

    fn to_json(&self) -> Value {
        json!({
            "position": self.position.as_ref().map(Position::to_json),
            "initial_done": self.initial_done,
            "run": self.run.as_ref().map(|r| json!({
                "id": r.id, "started_ms": r.started_ms, "lease_until_ms": r.lease_until_ms,
                "next_link": r.next_link, "failures": r.failures, "counts": r.counts.to_json(),
            })),
            "last_run": self.last_run,
            "last_error": self.last_error,
        })
    }

    fn save(&self) -> Result<(), String> {
        kv::set_json(STATE_KEY, &self.to_json()).map_err(|e| e.to_string())
    }
}

/// What `GET /mls/status` shows.
pub fn status() -> Result<Value, String> {
    let mut v = State::load()?.to_json();
    v["configured"] = json!(Settings::load().is_some());
    Ok(v)
}

/// Queues a run now unless one is under way; whether one was queued.
pub fn trigger() -> Result<bool, String> {
    let state = State::load()?;
    if state
        .run
        .as_ref()
        .is_some_and(|r| r.lease_until_ms > host::now_ms())
    {
        return Ok(false);
    }
    host::enqueue_job(JOB, &json!({}), 0).map_err(|e| e.to_string())?;
    Ok(true)
}

/// One invocation of the sync job: `{}` from the schedule or a trigger
/// (starts a run unless one holds the lease), `{"run": id}` continues run
/// `id` (ignored if that run is over).
pub fn run_job(payload: &Value) -> Result<(), String> {
    let Some(settings) = Settings::load() else {
        return Ok(());
    };
    let now = host::now_ms();
    let mut state = State::load()?;
    match payload.get("run").and_then(Value::as_str) {
        Some(id) => {
            if state.run.as_ref().is_none_or(|r| r.id != id) {
                return Ok(());
            }
        }
        None => {
            if state.run.as_ref().is_some_and(|r| r.lease_until_ms > now) {
                return Ok(());
            }
            let id: String = host::random_bytes(8)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            state.run = Some(Run {
                id,
                started_ms: now,
                lease_until_ms: now + LEASE_MS,
                next_link: None,
                failures: 0,
                counts: Counts::default(),
            });
            state.save()?;
        }
    }
    Sync {
        settings,
        state,
        token: None,
        deadline_ms: now + BUDGET_MS,
    }
    .go()
}

/// Why a page could not be had.
enum Stop {
    /// Wait this long and continue (429, an outage).
    Wait { ms: u64, why: String },
    /// Give the run up (misconfiguration: the next run starts afresh).
    Abandon(String),
}

struct Sync {
    settings: Settings,
    state: State,
    token: Option<String>,
    deadline_ms: i64,
}

impl Sync {
    fn run(&mut self) -> &mut Run {
        // `run_job` put a run in place before building `Sync`.
        self.state.run.get_or_insert_with(|| Run {
            id: String::new(),
            started_ms: 0,
            lease_until_ms: 0,
            next_link: None,
            failures: 0,
            counts: Counts::default(),
        })
    }

    fn go(mut self) -> Result<(), String> {
        loop {
            let url = match self.run().next_link.clone() {
                Some(link) => link,
                None => self.query_url(),
            };
            let page = match self.fetch_page(&url) {
                Ok(p) => p,
                Err(Stop::Wait { ms, why }) => return self.wait(ms, why),
                Err(Stop::Abandon(why)) => return self.abandon(why),
            };
            let short = page.listings.len() < self.settings.page_size as usize;
            let empty = page.listings.is_empty();
            self.store_page(&page.listings)?;
            let run = self.run();
            run.failures = 0;
            run.counts.pages += 1;
            run.next_link = page.next_link.clone();
            run.lease_until_ms = host::now_ms() + LEASE_MS;
            if page.next_link.is_none() && (short || empty) {
                return self.finish();
            }
            self.state.save()?;
            if host::now_ms() >= self.deadline_ms {
                let id = self.run().id.clone();
                host::enqueue_job(JOB, &json!({"run": id}), 0).map_err(|e| e.to_string())?;
                return Ok(());
            }
        }
    }

    /// The keyset query for what comes after the saved position.
    fn query_url(&self) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        if let Some(p) = &self.state.position {
            let key = p.key.replace('\'', "''");
            q.append_pair(
                "$filter",
                &format!(
                    "ModificationTimestamp gt {t} or (ModificationTimestamp eq {t} and ListingKey gt '{key}')",
                    t = p.timestamp
                ),
            );
        }
        q.append_pair("$orderby", "ModificationTimestamp asc,ListingKey asc");
        q.append_pair("$top", &self.settings.page_size.to_string());
        format!(
            "{}/{}?{}",
            self.settings.url,
            self.settings.resource,
            q.finish()
        )
    }

    fn access_token(&mut self, renew: bool) -> Result<Option<String>, Stop> {
        let Some(token_url) = self.settings.token_url.clone() else {
            return Ok(None);
        };
        if !renew && let Some(t) = &self.token {
            return Ok(Some(t.clone()));
        }
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "client_credentials");
        form.append_pair("client_id", &self.settings.client_id);
        form.append_pair("client_secret", &self.settings.client_secret);
        if let Some(scope) = &self.settings.scope {
            form.append_pair("scope", scope);
        }
        let body = form.finish();
        let res = host::fetch(
            "POST",
            &token_url,
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("accept", "application/json"),
            ],
            body.as_bytes(),
        )
        .map_err(unreachable_server)?;
        match res.status {
            200 => {}
            429 | 500..=599 => {
                return Err(Stop::Wait {
                    ms: retry_after(&res.headers).unwrap_or(60_000),
                    why: format!("the token endpoint answered {}", res.status),
                });
            }
            s => {
                return Err(Stop::Abandon(format!(
                    "the token endpoint refused the client credentials ({s})"
                )));
            }
        }
        let token = serde_json::from_slice::<Value>(&res.body)
            .ok()
            .and_then(|v| v.get("access_token")?.as_str().map(str::to_owned))
            .ok_or_else(|| Stop::Abandon("the token endpoint sent no access_token".to_owned()))?;
        self.token = Some(token.clone());
        Ok(Some(token))
    }

    fn fetch_page(&mut self, url: &str) -> Result<Page, Stop> {
        let mut renewed = false;
        loop {
            let token = self.access_token(renewed)?;
            let auth = token.map(|t| format!("Bearer {t}"));
            let mut headers = vec![("accept", "application/json")];
            if let Some(a) = &auth {
                headers.push(("authorization", a.as_str()));
            }
            let res = host::fetch("GET", url, &headers, &[]).map_err(unreachable_server)?;
            match res.status {
                200 => return Page::parse(&res.body).map_err(Stop::Abandon),
                401 if !renewed && self.settings.token_url.is_some() => renewed = true,
                429 | 500..=599 => {
                    return Err(Stop::Wait {
                        ms: retry_after(&res.headers).unwrap_or(if res.status == 429 {
                            30_000
                        } else {
                            60_000
                        }),
                        why: format!("the MLS answered {}", res.status),
                    });
                }
                s => {
                    let detail = String::from_utf8_lossy(&res.body);
                    let detail: String = detail.chars().take(300).collect();
                    return Err(Stop::Abandon(format!(
                        "the MLS answered {s} to {url}: {detail}"
                    )));
                }
            }
        }
    }

    /// Writes one page's listings and advances the position.
    fn store_page(&mut self, listings: &[Value]) -> Result<(), String> {
        let keys: Vec<String> = listings.iter().filter_map(listing::key_of).collect();
        let mut existing = existing(&keys)?;
        let notify = self.state.initial_done || self.settings.notify_initial;
        let mut to_match = Vec::new();
        for raw in listings {
            let counts = &mut self.run().counts;
            counts.fetched += 1;
            let Some(key) = listing::key_of(raw) else {
                counts.rejected += 1;
                log::warn("an MLS listing without a ListingKey was skipped");
                continue;
            };
            let (fields, dropped) = listing::from_reso(raw);
            for d in dropped {
                log::warn(&format!("listing {key}: {d}"));
            }
            let outcome = match existing.get(&key) {
                None => create(&key, fields),
                Some(stored) => update(&key, stored, fields),
            };
            let counts = &mut self.run().counts;
            match outcome {
                Ok(Written::Created(record)) => {
                    counts.created += 1;
                    if listing::on_market(&record) {
                        to_match.push(record["id"].clone());
                    }
                    existing.insert(key, record);
                }
                Ok(Written::Updated { record, matters }) => {
                    counts.updated += 1;
                    if matters && listing::on_market(&record) {
                        to_match.push(record["id"].clone());
                    }
                    existing.insert(key, record);
                }
                Ok(Written::Unchanged) => counts.unchanged += 1,
                Err(e) => {
                    counts.rejected += 1;
                    log::warn(&format!("listing {key} was not stored: {e}"));
                }
            }
            // The position moves past a listing even when it was refused:
            // a listing the CRM cannot take must not stall replication.
            if let Some(p) = Position::of(raw)
                && self.state.position.as_ref().is_none_or(|cur| p.after(cur))
            {
                self.state.position = Some(p);
            }
        }
        if notify && !to_match.is_empty() {
            host::enqueue_job(crate::MATCH_JOB, &json!({"listings": to_match}), 0)
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Waits out a 429 or an outage with a delayed continuation.
    fn wait(mut self, ms: u64, why: String) -> Result<(), String> {
        let run = self.run();
        run.failures += 1;
        let failures = run.failures;
        if failures > MAX_FAILURES {
            return self.abandon(format!("{why}; gave up after {MAX_FAILURES} attempts"));
        }
        // A server that answered 5xx without Retry-After gets a growing pause.
        let ms = ms.clamp(1000, 3_600_000);
        run.lease_until_ms = host::now_ms() + ms as i64 + LEASE_MS;
        let id = run.id.clone();
        log::info(&format!(
            "MLS replication waits {} s: {why}",
            ms.div_ceil(1000)
        ));
        self.state.last_error = Some(why);
        self.state.save()?;
        host::enqueue_job(JOB, &json!({"run": id}), ms).map_err(|e| e.to_string())?;
        Ok(())
    }

    fn abandon(mut self, why: String) -> Result<(), String> {
        log::error(&format!("MLS replication stopped: {why}"));
        let run = self.state.run.take();
        self.state.last_run = run.map(|r| {
            json!({"id": r.id, "started_ms": r.started_ms, "finished_ms": host::now_ms(),
                   "outcome": "failed", "counts": r.counts.to_json()})
        });
        self.state.last_error = Some(why);
        self.state.save()
    }

    fn finish(mut self) -> Result<(), String> {
        let run = self.state.run.take();
        if let Some(r) = &run {
            log::info(&format!(
                "MLS replication done: {} fetched, {} created, {} updated, {} unchanged, {} refused",
                r.counts.fetched,
                r.counts.created,
                r.counts.updated,
                r.counts.unchanged,
                r.counts.rejected
            ));
        }
        self.state.last_run = run.map(|r| {
            json!({"id": r.id, "started_ms": r.started_ms, "finished_ms": host::now_ms(),
                   "outcome": "done", "counts": r.counts.to_json()})
        });
        self.state.initial_done = true;
        self.state.last_error = None;
        self.state.save()
    }
}

fn unreachable_server(e: HostError) -> Stop {
    match e {
        HostError::Denied(m) => Stop::Abandon(format!(
            "the MLS host is not granted to the plugin (grant `http:HOST`): {m}"
        )),
        other => Stop::Wait {
            ms: 60_000,
            why: format!("the MLS could not be reached: {other}"),
        },
    }
}

/// `Retry-After` in milliseconds (delta-seconds; an HTTP date counts as a
/// minute).
fn retry_after(headers: &[(String, String)]) -> Option<u64> {
    let v = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("retry-after"))?
        .1
        .trim();
    Some(v.parse::<u64>().map_or(60_000, |s| s * 1000))
}

/// One page of the server's answer.
struct Page {
    listings: Vec<Value>,
    next_link: Option<String>,
}

impl Page {
    fn parse(body: &[u8]) -> Result<Page, String> {
        let mut v: Value = serde_json::from_slice(body)
            .map_err(|e| format!("the MLS sent something that is not JSON: {e}"))?;
        let listings = match v.get_mut("value").map(Value::take) {
            Some(Value::Array(a)) => a,
            _ => return Err("the MLS answer has no `value` array".to_owned()),
        };
        let next_link = v
            .get("@odata.nextLink")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned);
        Ok(Page {
            listings,
            next_link,
        })
    }
}

/// The stored listings with these keys, by key.
fn existing(keys: &[String]) -> Result<HashMap<String, Value>, String> {
    let mut found = HashMap::new();
    let (plain, odd): (Vec<&String>, Vec<&String>) = keys.iter().partition(|k| !k.contains(','));
    for chunk in plain.chunks(100) {
        let list: Vec<&str> = chunk.iter().map(|k| k.as_str()).collect();
        let page = Query::new("listing")
            .filter("custom.ListingKey", "in", &list.join(","))
            .limit(200)
            .fetch()
            .map_err(|e| e.to_string())?;
        for r in page.data {
            if let Some(k) = listing::stored_key(&r) {
                found.insert(k, r);
            }
        }
    }
    // A key with a comma cannot ride in an `in` list.
    for k in odd {
        let page = Query::new("listing")
            .filter("custom.ListingKey", "eq", k)
            .limit(1)
            .fetch()
            .map_err(|e| e.to_string())?;
        if let Some(r) = page.data.into_iter().next() {
            found.insert(k.clone(), r);
        }
    }
    Ok(found)
}

enum Written {
    Created(Value),
    /// `matters`: the price or the status changed (buyers may now match).
    Updated {
        record: Value,
        matters: bool,
    },
    Unchanged,
}

/// Creates a listing; a value the CRM refuses is dropped (and logged), so
/// one bad field does not lose the listing.
fn create(key: &str, mut fields: Map<String, Value>) -> Result<Written, HostError> {
    if !fields.contains_key("OriginalListPrice")
        && let Some(p) = fields.get("ListPrice").cloned()
    {
        fields.insert("OriginalListPrice".to_owned(), p);
    }
    match records::create("listing", &json!({"custom": fields})) {
        Ok(r) => Ok(Written::Created(r)),
        Err(HostError::Invalid(errors)) if drop_refused(key, &mut fields, &errors) => {
            records::create("listing", &json!({"custom": fields})).map(Written::Created)
        }
        Err(e) => Err(e),
    }
}

/// Updates a listing with what changed; a concurrent edit (a stale
/// version) is retried once on the fresh record.
fn update(key: &str, stored: &Value, fields: Map<String, Value>) -> Result<Written, HostError> {
    let mut stored = stored.clone();
    for attempt in 0..2 {
        let mut patch = listing::changes(&stored, &fields);
        if patch.is_empty() {
            return Ok(Written::Unchanged);
        }
        let matters = patch.contains_key("ListPrice") || patch.contains_key("StandardStatus");
        let id = stored["id"].as_str().unwrap_or_default().to_owned();
        let version = stored["version"].as_i64().unwrap_or(0);
        let result = match records::update("listing", &id, &json!({"custom": patch}), version) {
            Err(HostError::Invalid(errors)) if drop_refused(key, &mut patch, &errors) => {
                if patch.is_empty() {
                    return Ok(Written::Unchanged);
                }
                records::update("listing", &id, &json!({"custom": patch}), version)
            }
            other => other,
        };
        match result {
            Ok(record) => return Ok(Written::Updated { record, matters }),
            Err(HostError::Invalid(e)) => return Err(HostError::Invalid(e)),
            Err(e) if attempt == 1 => return Err(e),
            Err(_) => stored = records::get("listing", &id)?,
        }
    }
    Ok(Written::Unchanged)
}

/// Drops the fields named by validation errors; whether any was dropped
/// (and the write is worth another try).
fn drop_refused(
    key: &str,
    fields: &mut Map<String, Value>,
    errors: &[trellis_plugin_sdk::FieldError],
) -> bool {
    let mut dropped = false;
    for e in errors {
        let name = e.field.strip_prefix("custom.").unwrap_or(&e.field);
        if name != "ListingKey" && fields.remove(name).is_some() {
            log::warn(&format!("listing {key}: {name} dropped: {}", e.message));
            dropped = true;
        }
    }
    dropped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_read_in_seconds() {
        let h = |v: &str| vec![("Retry-After".to_owned(), v.to_owned())];
        assert_eq!(retry_after(&h("7")), Some(7000));
        assert_eq!(
            retry_after(&h("Wed, 21 Oct 2026 07:28:00 GMT")),
            Some(60_000)
        );
        assert_eq!(retry_after(&[]), None);
    }

    #[test]
    fn positions_order_by_time_then_key() {
        let p = |t: &str, k: &str| {
            Position::of(&json!({"ModificationTimestamp": t, "ListingKey": k})).unwrap()
        };
        assert!(p("2026-01-01T00:00:01Z", "A").after(&p("2026-01-01T00:00:00Z", "B")));
        assert!(p("2026-01-01T00:00:00Z", "B").after(&p("2026-01-01T00:00:00Z", "A")));
        assert!(p("2026-01-01T00:00:00.5Z", "A").after(&p("2026-01-01T00:00:00Z", "Z")));
        assert!(!p("2026-01-01T00:00:00Z", "A").after(&p("2026-01-01T00:00:00Z", "A")));
    }

    #[test]
    fn pages_need_a_value_array() {
        let p =
            Page::parse(br#"{"value": [{"ListingKey": "A"}], "@odata.nextLink": "http://x/next"}"#)
                .unwrap();
        assert_eq!(p.listings.len(), 1);
        assert_eq!(p.next_link.as_deref(), Some("http://x/next"));
        assert!(Page::parse(br#"{"error": "no"}"#).is_err());
    }
}
