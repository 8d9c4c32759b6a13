//! Commission statements: an agent's closed transactions in a period, each
//! with its commission breakdown (`commission.rs`), as JSON or CSV.
//!
//! The agents' plans live in the plugin's configuration:
//!
//! ```json
//! {"commission": {
//!    "default_plan": {"kind": "fixed", "agent": "70"},
//!    "side_percent": "50", "referral_percent": "0", "default_rate": "6",
//!    "agents": {"<user id>": {"plan": {"kind": "capped", "agent": "80", "cap": "20000",
//!                                      "post_cap": "100"},
//!                             "transaction_fee": "395",
//!                             "team": [{"name": "Lead", "share": "60"}, {"name": "Associate", "share": "40"}]}}}}
//! ```
//!
//! A deal counts when it is won (closed, and with no lost reason: the
//! kernel keeps a lost reason only on lost deals) and owned by the agent.
//! Its price is the deal's amount, its rate the deal's `commission_rate`
//! (else `default_rate`), its side the deal's `side` (`Dual` takes the whole
//! commission; otherwise `side_percent`). Year-to-date volume and the
//! brokerage's year-to-date share, which tiered and capped plans depend on,
//! are counted from 1 January of each deal's year, deal by deal in closing
//! order, so a cap reached mid-transaction splits that transaction.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde_json::{Value, json};
use trellis_plugin_sdk::records::Query;
use trellis_plugin_sdk::{Request, Response, host};

use crate::commission::{self, Breakdown};

/// One line of a statement.
struct Line {
    deal: Value,
    closed_at: String,
    currency: String,
    price: Decimal,
    breakdown: Result<Breakdown, String>,
}

fn problem(status: u16, field: &str, message: &str) -> Response {
    Response::json(status, &json!({"error": message, "field": field}))
}

fn date(s: &str) -> Option<(i32, u32, u32)> {
    let mut p = s.split('-');
    let y = p.next()?.parse().ok()?;
    let m = p.next()?.parse().ok()?;
    let d = p.next()?.parse().ok()?;
    (p.next().is_none() && (1..=12).contains(&m) && (1..=31).contains(&d)).then_some((y, m, d))
}

fn decimal(v: Option<&Value>) -> Option<Decimal> {
    match v? {
        Value::String(s) => Decimal::from_str_exact(s.trim()).ok(),
        Value::Number(n) => Decimal::from_str_exact(&n.to_string()).ok(),
        _ => None,
    }
}

/// `GET /commission/statement?agent=ID&from=YYYY-MM-DD&to=YYYY-MM-DD[&format=csv]`.
/// An agent reads their own (`agent` left out, or their own id); another
/// agent's needs the right to export deals (brokers, admins).
pub fn handle(request: &Request) -> Response {
    let params: BTreeMap<String, String> = form_urlencoded::parse(request.query.as_bytes())
        .into_owned()
        .collect();
    let caller = request.caller_user_id();
    let Some(agent) = params
        .get("agent")
        .map(String::as_str)
        .filter(|a| !a.is_empty())
        .or(caller)
    else {
        return problem(422, "agent", "name the agent (a user id)");
    };
    if Some(agent) != caller && !request.caller_may("deal:export") {
        return problem(
            403,
            "agent",
            "only your own statement: another agent's needs the right to export deals",
        );
    }
    let Some(from) = params.get("from").filter(|f| date(f).is_some()) else {
        return problem(422, "from", "a date, YYYY-MM-DD");
    };
    let Some(to) = params.get("to").filter(|t| date(t).is_some()) else {
        return problem(422, "to", "a date, YYYY-MM-DD");
    };
    if to < from {
        return problem(422, "to", "the period ends before it starts");
    }
    let csv = match params.get("format").map(String::as_str) {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => return problem(422, "format", "json or csv"),
    };
    let config = host::config();
    let terms = config.get("commission").cloned().unwrap_or(Value::Null);
    let mine = terms.get("agents").and_then(|a| a.get(agent));
    let plan = mine
        .and_then(|m| m.get("plan"))
        .or_else(|| terms.get("default_plan"))
        .cloned();
    let Some(plan) = plan else {
        return problem(
            409,
            "agent",
            "no commission plan for this agent: set `commission.default_plan` or `commission.agents` in the plugin's configuration",
        );
    };
    let lines = match lines(agent, from, to, &terms, mine, &plan) {
        Ok(l) => l,
        Err(e) => return problem(422, "commission", &e),
    };
    if csv {
        to_csv(agent, &lines)
    } else {
        Response::json(200, &to_json(agent, from, to, &plan, &lines))
    }
}

/// The agent's won deals from 1 January of `from`'s year to `to`, in
/// closing order, each computed with the year-to-date figures before it;
/// only those closed from `from` on are returned.
fn lines(
    agent: &str,
    from: &str,
    to: &str,
    terms: &Value,
    mine: Option<&Value>,
    plan: &Value,
) -> Result<Vec<Line>, String> {
    let year_start = format!("{}-01-01T00:00:00Z", &from[..4]);
    let end = format!("{to}T23:59:59Z");
    let mut deals = Vec::new();
    let mut cursor = None;
    loop {
        let page = Query::new("deal")
            .filter("owner_id", "eq", agent)
            .filter("closed_at", "gte", &year_start)
            .filter("closed_at", "lte", &end)
            .filter("lost_reason", "is_null", "true")
            .sort("closed_at")
            .limit(200)
            .after(cursor)
            .fetch()
            .map_err(|e| e.to_string())?;
        deals.extend(page.data);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let side_default = decimal(terms.get("side_percent")).unwrap_or(Decimal::from(50));
    let referral = decimal(terms.get("referral_percent")).unwrap_or(Decimal::ZERO);
    let default_rate = decimal(terms.get("default_rate"));
    let mut ytd: BTreeMap<String, (Decimal, Decimal)> = BTreeMap::new();
    let mut out = Vec::new();
    for deal in deals {
        let closed_at = deal["closed_at"].as_str().unwrap_or_default().to_owned();
        let year = closed_at.get(..4).unwrap_or_default().to_owned();
        let price = decimal(deal.get("amount")).unwrap_or(Decimal::ZERO);
        let custom = deal.get("custom").cloned().unwrap_or(Value::Null);
        let (volume, company) = ytd.get(&year).copied().unwrap_or_default();
        let breakdown = match decimal(custom.get("commission_rate")).or(default_rate) {
            None => Err("no commission rate on the deal, and no `default_rate`".to_owned()),
            Some(rate) => {
                let side = match custom.get("side").and_then(Value::as_str) {
                    Some("Dual") => Decimal::ONE_HUNDRED,
                    _ => side_default,
                };
                let referral = decimal(custom.get("referral_percent")).unwrap_or(referral);
                let mut v = json!({
                    "price": price.to_string(), "gross_percent": rate.to_string(),
                    "referral_percent": referral.to_string(), "side_percent": side.to_string(),
                    "plan": plan, "ytd_volume": volume.to_string(), "ytd_company": company.to_string(),
                });
                if let Some(m) = mine {
                    v["transaction_fee"] = m.get("transaction_fee").cloned().unwrap_or(Value::Null);
                    v["team"] = m.get("team").cloned().unwrap_or(Value::Null);
                }
                commission::from_json(&v).and_then(|a| commission::compute(&a))
            }
        };
        if let Ok(b) = &breakdown {
            // The cap counts the split, not the transaction fees.
            ytd.insert(
                year,
                (volume + price, company + b.brokerage - b.transaction_fee),
            );
        }
        if closed_at.as_str() >= from {
            out.push(Line {
                currency: deal["currency"].as_str().unwrap_or("").to_owned(),
                deal,
                closed_at,
                price,
                breakdown,
            });
        }
    }
    Ok(out)
}

fn money(d: Decimal) -> String {
    format!("{d:.2}")
}

fn to_json(agent: &str, from: &str, to: &str, plan: &Value, lines: &[Line]) -> Value {
    let mut totals: BTreeMap<String, [Decimal; 5]> = BTreeMap::new();
    let items: Vec<Value> = lines
        .iter()
        .map(|l| {
            let mut item = json!({
                "deal_id": l.deal["id"], "deal": l.deal["name"], "closed_at": l.closed_at,
                "currency": l.currency, "price": money(l.price),
            });
            match &l.breakdown {
                Ok(b) => {
                    let t = totals.entry(l.currency.clone()).or_default();
                    for (i, d) in [l.price, b.gross, b.agent, b.brokerage, b.transaction_fee]
                        .into_iter()
                        .enumerate()
                    {
                        t[i] += d;
                    }
                    item["commission"] = commission::to_json(b);
                }
                Err(e) => item["error"] = json!(e),
            }
            item
        })
        .collect();
    let totals: Vec<Value> = totals
        .into_iter()
        .map(|(currency, t)| {
            json!({"currency": currency, "volume": money(t[0]), "gross": money(t[1]),
                   "agent": money(t[2]), "brokerage": money(t[3]), "transaction_fees": money(t[4])})
        })
        .collect();
    json!({"agent_id": agent, "from": from, "to": to, "plan": plan, "lines": items, "totals": totals})
}

fn to_csv(agent: &str, lines: &[Line]) -> Response {
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut rows: Vec<Vec<String>> = vec![
        [
            "agent_id",
            "deal_id",
            "deal",
            "closed_at",
            "currency",
            "price",
            "gross",
            "referral",
            "side",
            "agent",
            "brokerage",
            "transaction_fee",
            "error",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    for l in lines {
        let mut row = vec![
            agent.to_owned(),
            l.deal["id"].as_str().unwrap_or("").to_owned(),
            l.deal["name"].as_str().unwrap_or("").to_owned(),
            l.closed_at.clone(),
            l.currency.clone(),
            money(l.price),
        ];
        match &l.breakdown {
            Ok(b) => {
                row.extend(
                    [
                        b.gross,
                        b.referral,
                        b.side,
                        b.agent,
                        b.brokerage,
                        b.transaction_fee,
                    ]
                    .map(money),
                );
                row.push(String::new());
            }
            Err(e) => {
                row.extend(std::iter::repeat_n(String::new(), 6));
                row.push(e.clone());
            }
        }
        rows.push(row);
    }
    for r in rows {
        if let Err(e) = w.write_record(&r) {
            return Response::json(500, &json!({"error": e.to_string()}));
        }
    }
    match w.into_inner() {
        Ok(body) => Response {
            status: 200,
            headers: vec![(
                "content-type".to_owned(),
                "text/csv; charset=utf-8".to_owned(),
            )],
            body,
        },
        Err(e) => Response::json(500, &json!({"error": e.to_string()})),
    }
}
