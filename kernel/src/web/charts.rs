//! Chart geometry, computed here and drawn by the theme's templates as SVG
//! (no script, no third-party charting code). Every chart also carries its
//! numbers as a table, for screen readers and for anyone who wants them.

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde_json::{Value, json};

/// One bar: its label, its exact value, and a note (a count).
pub struct Bar {
    pub label: String,
    pub value: Decimal,
    pub note: String,
}

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 240.0;
const LEFT: f64 = 56.0;
const BOTTOM: f64 = 40.0;
const TOP: f64 = 16.0;

/// A vertical bar chart with a scale of round numbers.
pub fn bar_chart(title: &str, bars: &[Bar], currency: &str) -> Value {
    let max = bars
        .iter()
        .map(|b| b.value)
        .max()
        .unwrap_or(Decimal::ZERO)
        .max(Decimal::ZERO);
    let top = nice_ceiling(max.to_f64().unwrap_or(0.0));
    let plot_h = HEIGHT - BOTTOM - TOP;
    let plot_w = WIDTH - LEFT - 8.0;
    let slot = if bars.is_empty() {
        plot_w
    } else {
        plot_w / bars.len() as f64
    };
    let bar_w = (slot * 0.7).max(4.0);
    let shapes: Vec<Value> = bars
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let v = b.value.to_f64().unwrap_or(0.0).max(0.0);
            let h = if top > 0.0 { v / top * plot_h } else { 0.0 };
            let x = LEFT + slot * i as f64 + (slot - bar_w) / 2.0;
            json!({
                "x": round1(x),
                "y": round1(TOP + plot_h - h),
                "width": round1(bar_w),
                "height": round1(h),
                "label": b.label,
                "label_x": round1(x + bar_w / 2.0),
                "label_y": round1(HEIGHT - BOTTOM + 16.0),
                "value": b.value.round_dp(2).to_string(),
                "note": b.note,
                "series": i % 6,
            })
        })
        .collect();
    let ticks: Vec<Value> = (0..=4)
        .map(|i| {
            let value = top * f64::from(i) / 4.0;
            json!({
                "y": round1(TOP + plot_h - plot_h * f64::from(i) / 4.0),
                "label": short(value),
            })
        })
        .collect();
    json!({
        "title": title,
        "width": WIDTH,
        "height": HEIGHT,
        "left": LEFT,
        "right": WIDTH - 8.0,
        "baseline": TOP + plot_h,
        "bars": shapes,
        "ticks": ticks,
        "currency": currency,
        "empty": bars.iter().all(|b| b.value.is_zero()),
    })
}

/// The smallest "round" number (1, 2 or 5 × 10ⁿ) at or above `v`.
fn nice_ceiling(v: f64) -> f64 {
    if v <= 0.0 {
        return 0.0;
    }
    let exp = v.log10().floor();
    let base = 10f64.powf(exp);
    for m in [1.0, 2.0, 5.0, 10.0] {
        if m * base >= v {
            return m * base;
        }
    }
    10.0 * base
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

fn short(v: f64) -> String {
    if v >= 1_000_000.0 {
        format!("{}M", round1(v / 1_000_000.0))
    } else if v >= 1_000.0 {
        format!("{}k", round1(v / 1_000.0))
    } else {
        format!("{}", round1(v))
    }
}

/// A contact's relationship map: the contact in the middle, the related
/// contacts on a circle around it, each line labelled with the type.
pub fn relationship_map(center: &str, others: &[(String, String, String)]) -> Value {
    let (w, h) = (560.0_f64, 360.0_f64);
    let (cx, cy) = (w / 2.0, h / 2.0);
    let r = 130.0;
    let nodes: Vec<Value> = others
        .iter()
        .enumerate()
        .map(|(i, (id, name, kind))| {
            let angle = std::f64::consts::TAU * i as f64 / others.len().max(1) as f64
                - std::f64::consts::FRAC_PI_2;
            let (x, y) = (cx + r * angle.cos(), cy + r * angle.sin());
            json!({
                "x": round1(x),
                "y": round1(y),
                "label_x": round1((x + cx) / 2.0),
                "label_y": round1((y + cy) / 2.0 - 4.0),
                "name": name,
                "kind": kind.replace('_', " "),
                "href": format!("/contacts/{id}"),
            })
        })
        .collect();
    json!({
        "width": w,
        "height": h,
        "center": {"x": cx, "y": cy, "name": center},
        "nodes": nodes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_end_on_round_numbers() {
        assert_eq!(nice_ceiling(0.0), 0.0);
        assert_eq!(nice_ceiling(7.0), 10.0);
        assert_eq!(nice_ceiling(120.0), 200.0);
        assert_eq!(nice_ceiling(450_000.0), 500_000.0);
        assert_eq!(nice_ceiling(1_000.0), 1_000.0);
    }

    #[test]
    fn bars_stand_on_the_baseline_in_proportion() {
        let bars = [
            Bar {
                label: "A".into(),
                value: Decimal::new(50, 0),
                note: String::new(),
            },
            Bar {
                label: "B".into(),
                value: Decimal::new(100, 0),
                note: String::new(),
            },
        ];
        let c = bar_chart("t", &bars, "USD");
        let base = c["baseline"].as_f64().unwrap_or(0.0);
        for b in c["bars"].as_array().into_iter().flatten() {
            let (y, h) = (
                b["y"].as_f64().unwrap_or(0.0),
                b["height"].as_f64().unwrap_or(0.0),
            );
            assert!((y + h - base).abs() < 0.2, "bar must end on the baseline");
        }
        let h0 = c["bars"][0]["height"].as_f64().unwrap_or(0.0);
        let h1 = c["bars"][1]["height"].as_f64().unwrap_or(0.0);
        assert!((h1 - 2.0 * h0).abs() < 0.2, "100 is twice as tall as 50");
        assert_eq!(c["bars"][1]["value"], "100");
    }
}
