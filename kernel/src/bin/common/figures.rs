//! Timing helpers shared by the benchmark binaries.

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::Result;

pub struct Figures {
    pub p50: Duration,
    pub p99: Duration,
    pub per_sec: f64,
}

/// Runs `f` `n` times one after the other; latency percentiles and rate.
pub async fn measure<F, Fut>(n: usize, f: F) -> Result<Figures>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    // Warm caches and connections first.
    for i in 0..(n / 10).max(1) {
        f(i).await?;
    }
    let mut times = Vec::with_capacity(n);
    let started = Instant::now();
    for i in 0..n {
        let t = Instant::now();
        f(i).await?;
        times.push(t.elapsed());
    }
    let total = started.elapsed();
    times.sort();
    let pick = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    Ok(Figures {
        p50: pick(0.50),
        p99: pick(0.99),
        per_sec: n as f64 / total.as_secs_f64(),
    })
}

pub fn fmt(d: Duration) -> String {
    let us = d.as_micros();
    if us >= 10_000 {
        format!("{:.1}ms", us as f64 / 1000.0)
    } else {
        format!("{us}µs")
    }
}
