//! The template filters every theme can use, so themes format values the
//! same way the API does (exact decimals, UTC timestamps).

use chrono::{DateTime, NaiveDate, Utc};
use minijinja::{Environment, Value};
use rust_decimal::Decimal;
use std::str::FromStr;

pub fn register(env: &mut Environment<'static>) {
    env.add_filter("datetime", datetime);
    env.add_filter("date", date);
    env.add_filter("money", money);
    env.add_filter("label", label);
    env.add_filter("compact", compact);
    env.add_filter("truncate", truncate);
}

/// At most `length` characters (default 80), ending in `…` when cut.
fn truncate(value: Value, length: Option<usize>) -> String {
    let text = if value.is_none() || value.is_undefined() {
        String::new()
    } else {
        value.to_string()
    };
    let max = length.unwrap_or(80).max(1);
    if text.chars().count() <= max {
        text
    } else {
        let mut cut: String = text.chars().take(max - 1).collect();
        cut.push('…');
        cut
    }
}

/// `2026-11-24T09:30:00Z` → `2026-11-24 09:30 UTC`; other values unchanged.
fn datetime(value: Value) -> String {
    let raw = value.to_string();
    match DateTime::parse_from_rfc3339(&raw) {
        Ok(t) => t
            .with_timezone(&Utc)
            .format("%Y-%m-%d %H:%M UTC")
            .to_string(),
        Err(_) => blank_if_none(&value, raw),
    }
}

/// A timestamp or date → `24 Nov 2026`.
fn date(value: Value) -> String {
    let raw = value.to_string();
    if let Ok(t) = DateTime::parse_from_rfc3339(&raw) {
        return t.format("%-d %b %Y").to_string();
    }
    match NaiveDate::parse_from_str(&raw, "%Y-%m-%d") {
        Ok(d) => d.format("%-d %b %Y").to_string(),
        Err(_) => blank_if_none(&value, raw),
    }
}

/// An exact decimal amount with thousands separators and its currency:
/// `1234567.5|money("USD")` → `USD 1,234,567.50`. Never through floats.
fn money(value: Value, currency: Option<String>) -> String {
    let raw = value.to_string();
    let Ok(d) = Decimal::from_str(&raw) else {
        return blank_if_none(&value, raw);
    };
    let d = d.round_dp(2);
    let negative = d.is_sign_negative() && !d.is_zero();
    let text = format!("{:.2}", d.abs());
    let (whole, frac) = text.split_once('.').unwrap_or((&text, "00"));
    let mut grouped = String::new();
    for (i, ch) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(ch);
    }
    let sign = if negative { "-" } else { "" };
    match currency {
        Some(c) if !c.is_empty() => format!("{c} {sign}{grouped}.{frac}"),
        _ => format!("{sign}{grouped}.{frac}"),
    }
}

/// `sales_qualified` → `Sales qualified`.
fn label(value: Value) -> String {
    let raw = value.to_string();
    let text = raw.replace('_', " ");
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A large amount in short form for chart labels: 1,250,000 → `1.3M`.
fn compact(value: Value) -> String {
    let raw = value.to_string();
    let Ok(d) = Decimal::from_str(&raw) else {
        return raw;
    };
    let thousand = Decimal::from(1000);
    let million = Decimal::from(1_000_000);
    if d.abs() >= million {
        format!("{}M", (d / million).round_dp(1).normalize())
    } else if d.abs() >= thousand {
        format!("{}k", (d / thousand).round_dp(1).normalize())
    } else {
        d.round_dp(0).normalize().to_string()
    }
}

fn blank_if_none(value: &Value, raw: String) -> String {
    if value.is_none() || value.is_undefined() {
        String::new()
    } else {
        raw
    }
}
