//! Commissions on a closed transaction, in exact decimals.
//!
//! The order of operations is the industry's: the gross commission (a
//! percentage of the price, or a flat fee), a referral fee off the top, the
//! share of the side (listing or buyer) this brokerage represents, then the
//! agent/brokerage split by the agent's plan (a fixed split, a split tiered
//! by the agent's year-to-date volume, or a split until the brokerage's
//! share reaches a yearly cap, with a post-cap split), a per-transaction fee
//! paid by the agent, and finally the agent's part shared among a team.
//! Amounts are rounded to cents at the end of each step, half away from
//! zero, and the parts always add up to the whole.

use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::{Value, json};

/// How the gross commission is set.
#[derive(Debug, Clone, PartialEq)]
pub enum Gross {
    /// A percentage of the price (`6` for 6 %).
    Percent(Decimal),
    /// A flat amount.
    Flat(Decimal),
}

/// An agent's plan with the brokerage.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// The agent keeps this percentage.
    Fixed { agent: Decimal },
    /// The agent's percentage by year-to-date volume before this deal:
    /// `(volume from, agent %)`, ascending.
    Tiered { tiers: Vec<(Decimal, Decimal)> },
    /// The agent keeps `agent` % until the brokerage's share this year
    /// reaches `cap`; after it, `post_cap` %.
    Capped {
        agent: Decimal,
        cap: Decimal,
        post_cap: Decimal,
    },
}

/// Everything a computation needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Agreement {
    pub price: Decimal,
    pub gross: Gross,
    /// Referral fee, a percentage of the gross, off the top.
    pub referral: Decimal,
    /// This brokerage's side's percentage of what remains (`50` when the
    /// two sides split; `100` for a dual agency or a flat fee).
    pub side: Decimal,
    pub plan: Plan,
    /// Paid by the agent to the brokerage on every transaction.
    pub transaction_fee: Decimal,
    /// The agent's closed volume this year before this deal (tiered plans).
    pub ytd_volume: Decimal,
    /// The brokerage's share from this agent this year before this deal
    /// (capped plans).
    pub ytd_company: Decimal,
    /// Team members sharing the agent's part: `(name, %)`, summing to 100.
    pub team: Vec<(String, Decimal)>,
}

/// The result.
#[derive(Debug, Clone, PartialEq)]
pub struct Breakdown {
    pub gross: Decimal,
    pub referral: Decimal,
    pub side: Decimal,
    pub agent: Decimal,
    pub brokerage: Decimal,
    pub transaction_fee: Decimal,
    pub team: Vec<(String, Decimal)>,
}

fn cents(d: Decimal) -> Decimal {
    d.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
}

fn pct(amount: Decimal, percent: Decimal) -> Decimal {
    cents(amount * percent / Decimal::ONE_HUNDRED)
}

/// Computes the commission of one transaction.
pub fn compute(a: &Agreement) -> Result<Breakdown, String> {
    let hundred = Decimal::ONE_HUNDRED;
    let in_range = |name: &str, p: Decimal| {
        if p < Decimal::ZERO || p > hundred {
            Err(format!("{name} must be a percentage from 0 to 100"))
        } else {
            Ok(())
        }
    };
    in_range("referral", a.referral)?;
    in_range("side", a.side)?;
    if a.price < Decimal::ZERO {
        return Err("price must not be negative".to_owned());
    }
    let gross = match &a.gross {
        Gross::Percent(p) => {
            in_range("gross", *p)?;
            pct(a.price, *p)
        }
        Gross::Flat(f) if *f >= Decimal::ZERO => cents(*f),
        Gross::Flat(_) => return Err("a flat commission must not be negative".to_owned()),
    };
    let referral = pct(gross, a.referral);
    let side = pct(gross - referral, a.side);
    let (mut agent, mut brokerage) = match &a.plan {
        Plan::Fixed { agent } => {
            in_range("agent split", *agent)?;
            let to_agent = pct(side, *agent);
            (to_agent, side - to_agent)
        }
        Plan::Tiered { tiers } => {
            let share = tiers
                .iter()
                .rfind(|(from, _)| a.ytd_volume >= *from)
                .map(|(_, s)| *s)
                .ok_or("the tiers must start at a volume of 0")?;
            in_range("tier split", share)?;
            let to_agent = pct(side, share);
            (to_agent, side - to_agent)
        }
        Plan::Capped {
            agent,
            cap,
            post_cap,
        } => {
            in_range("agent split", *agent)?;
            in_range("post-cap split", *post_cap)?;
            let room = (*cap - a.ytd_company).max(Decimal::ZERO);
            let company_pre = side - pct(side, *agent);
            if company_pre <= room {
                (side - company_pre, company_pre)
            } else {
                // The cap is reached inside this deal: the brokerage takes
                // what is left to the cap from the part of the side that
                // would have reached it at the pre-cap split; the rest of
                // the side is split post-cap.
                let company_share = (hundred - *agent) / hundred;
                let side_before_cap = if company_share.is_zero() {
                    side
                } else {
                    cents(room / company_share)
                };
                let rest = side - side_before_cap;
                let company_post = rest - pct(rest, *post_cap);
                let company = room + company_post;
                (side - company, company)
            }
        }
    };
    let fee = cents(a.transaction_fee.min(agent).max(Decimal::ZERO));
    agent -= fee;
    brokerage += fee;
    let mut team = Vec::new();
    if !a.team.is_empty() {
        let total: Decimal = a.team.iter().map(|(_, s)| *s).sum();
        if total != hundred {
            return Err("team shares must add up to 100".to_owned());
        }
        let mut given = Decimal::ZERO;
        for (i, (name, share)) in a.team.iter().enumerate() {
            // The last member takes the rounding remainder.
            let part = if i + 1 == a.team.len() {
                agent - given
            } else {
                pct(agent, *share)
            };
            given += part;
            team.push((name.clone(), part));
        }
    }
    Ok(Breakdown {
        gross,
        referral,
        side,
        agent,
        brokerage,
        transaction_fee: fee,
        team,
    })
}

fn dec(v: &Value, key: &str) -> Result<Decimal, String> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(Decimal::ZERO),
        Some(Value::String(s)) => {
            Decimal::from_str_exact(s.trim()).map_err(|_| format!("`{key}` is not a decimal"))
        }
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => {
            Decimal::from_str_exact(&n.to_string()).map_err(|_| format!("`{key}` is not a decimal"))
        }
        Some(_) => Err(format!("`{key}` must be a decimal string, e.g. \"6.5\"")),
    }
}

/// Reads an agreement from JSON (all amounts as decimal strings).
pub fn from_json(v: &Value) -> Result<Agreement, String> {
    let gross = match (v.get("gross_percent"), v.get("gross_flat")) {
        (Some(_), None) => Gross::Percent(dec(v, "gross_percent")?),
        (None, Some(_)) => Gross::Flat(dec(v, "gross_flat")?),
        _ => return Err("give one of `gross_percent` or `gross_flat`".to_owned()),
    };
    let plan = v.get("plan").ok_or("`plan` is required")?;
    let plan = match plan.get("kind").and_then(Value::as_str) {
        Some("fixed") => Plan::Fixed {
            agent: dec(plan, "agent")?,
        },
        Some("tiered") => Plan::Tiered {
            tiers: plan
                .get("tiers")
                .and_then(Value::as_array)
                .ok_or("`plan.tiers` is required")?
                .iter()
                .map(|t| Ok((dec(t, "from")?, dec(t, "agent")?)))
                .collect::<Result<_, String>>()?,
        },
        Some("capped") => Plan::Capped {
            agent: dec(plan, "agent")?,
            cap: dec(plan, "cap")?,
            post_cap: dec(plan, "post_cap")?,
        },
        _ => return Err("`plan.kind` is fixed, tiered or capped".to_owned()),
    };
    let team = v
        .get("team")
        .and_then(Value::as_array)
        .map(|t| {
            t.iter()
                .map(|m| {
                    Ok((
                        m.get("name")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_owned(),
                        dec(m, "share")?,
                    ))
                })
                .collect::<Result<Vec<_>, String>>()
        })
        .transpose()?
        .unwrap_or_default();
    Ok(Agreement {
        price: dec(v, "price")?,
        gross,
        referral: dec(v, "referral_percent")?,
        side: match v.get("side_percent") {
            None => Decimal::ONE_HUNDRED,
            Some(_) => dec(v, "side_percent")?,
        },
        plan,
        transaction_fee: dec(v, "transaction_fee")?,
        ytd_volume: dec(v, "ytd_volume")?,
        ytd_company: dec(v, "ytd_company")?,
        team,
    })
}

/// A breakdown as JSON (amounts as strings with two decimals).
pub fn to_json(b: &Breakdown) -> Value {
    let s = |d: Decimal| format!("{:.2}", d);
    json!({
        "gross": s(b.gross),
        "referral": s(b.referral),
        "side": s(b.side),
        "agent": s(b.agent),
        "brokerage": s(b.brokerage),
        "transaction_fee": s(b.transaction_fee),
        "team": b.team.iter().map(|(n, d)| json!({"name": n, "amount": s(*d)})).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str_exact(s).unwrap()
    }

    fn agreement(price: &str, gross: Gross, plan: Plan) -> Agreement {
        Agreement {
            price: d(price),
            gross,
            referral: Decimal::ZERO,
            side: Decimal::ONE_HUNDRED,
            plan,
            transaction_fee: Decimal::ZERO,
            ytd_volume: Decimal::ZERO,
            ytd_company: Decimal::ZERO,
            team: Vec::new(),
        }
    }

    #[test]
    fn referral_off_the_top_then_fifty_fifty() {
        // $12,000 gross, 25 % referral off the top, the rest 50/50.
        let mut a = agreement("0", Gross::Flat(d("12000")), Plan::Fixed { agent: d("50") });
        a.referral = d("25");
        let b = compute(&a).unwrap();
        assert_eq!(b.referral, d("3000"));
        assert_eq!(b.agent, d("4500"));
        assert_eq!(b.brokerage, d("4500"));
    }

    #[test]
    fn six_percent_sides_split_then_seventy_thirty() {
        // $500,000 at 6 %, 50/50 sides, 70/30 agent split.
        let mut a = agreement(
            "500000",
            Gross::Percent(d("6")),
            Plan::Fixed { agent: d("70") },
        );
        a.side = d("50");
        let b = compute(&a).unwrap();
        assert_eq!(b.gross, d("30000"));
        assert_eq!(b.side, d("15000"));
        assert_eq!(b.agent, d("10500"));
        assert_eq!(b.brokerage, d("4500"));
    }

    #[test]
    fn a_cap_reached_mid_transaction() {
        // 70/30 until the brokerage has $20,000 this year, then 100 % to
        // the agent. $18,500 already paid; this side is $15,000.
        let mut a = agreement(
            "0",
            Gross::Flat(d("15000")),
            Plan::Capped {
                agent: d("70"),
                cap: d("20000"),
                post_cap: d("100"),
            },
        );
        a.ytd_company = d("18500");
        let b = compute(&a).unwrap();
        // $5,000 of side at 30 % reaches the cap ($1,500); the other
        // $10,000 goes to the agent whole.
        assert_eq!(b.brokerage, d("1500"));
        assert_eq!(b.agent, d("13500"));
        assert_eq!(b.agent + b.brokerage, b.side);
    }

    #[test]
    fn tiers_fees_and_team_shares_add_up_to_the_cent() {
        let mut a = agreement(
            "333333",
            Gross::Percent(d("3")),
            Plan::Tiered {
                tiers: vec![(d("0"), d("60")), (d("1000000"), d("80"))],
            },
        );
        a.ytd_volume = d("1200000");
        a.transaction_fee = d("295");
        a.team = vec![
            ("Lead".to_owned(), d("66.67")),
            ("Partner".to_owned(), d("33.33")),
        ];
        let b = compute(&a).unwrap();
        assert_eq!(b.gross, d("9999.99"));
        assert_eq!(b.agent + b.brokerage, b.side);
        let team: Decimal = b.team.iter().map(|(_, x)| *x).sum();
        assert_eq!(team, b.agent);
        assert_eq!(b.transaction_fee, d("295"));
    }
}
