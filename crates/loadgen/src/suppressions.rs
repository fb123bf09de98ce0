//! Load on `POST /api/v1/suppressions/check`: a population of addresses
//! (`user<N>@loadgen.example`, N from 0), every `suppressed_every`-th of them on the list,
//! checked `per_call` at a time by a fixed number of workers (closed loop). Each answer is
//! checked against what the population says it must hold.
//!
//! [`import_file`] writes the suppressed part of the population as the JSON of `aws sesv2
//! list-suppressed-destinations`, for `ses-webhook suppressions import` to seed the list.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use serde::Serialize;
use tokio::task::JoinSet;

use crate::guard::Target;
use crate::rng::SplitMix64;
use crate::stats::{Latency, MAX_LATENCY_US, per_second};

/// The population and how it is checked.
#[derive(Debug, Clone)]
pub struct CheckLoad {
    pub target: Target,
    /// An API token with the `read` scope.
    pub token: String,
    pub population: u64,
    /// Every address whose number is a multiple of this is suppressed.
    pub suppressed_every: u64,
    pub per_call: usize,
    pub concurrency: usize,
    pub duration: Duration,
    pub timeout: Duration,
    pub seed: u64,
}

/// The address numbered `n` of the population.
#[must_use]
pub fn address(n: u64) -> String {
    format!("user{n}@loadgen.example")
}

/// The suppressed addresses of a population of `population`, as `aws sesv2
/// list-suppressed-destinations` prints them.
#[must_use]
pub fn import_file(population: u64, suppressed_every: u64) -> serde_json::Value {
    let every = suppressed_every.max(1);
    let summaries: Vec<serde_json::Value> = (0..population)
        .filter(|n| n % every == 0)
        .map(|n| {
            serde_json::json!({
                "EmailAddress": address(n),
                "Reason": "BOUNCE",
                "LastUpdateTime": "2026-01-01T00:00:00+00:00"
            })
        })
        .collect();
    serde_json::json!({ "SuppressedDestinationSummaries": summaries })
}

/// What a check run measured.
#[derive(Debug, Clone, Serialize)]
pub struct CheckSummary {
    pub calls: u64,
    pub ok: u64,
    pub calls_per_sec: f64,
    pub addresses_per_sec: f64,
    pub per_call: usize,
    pub concurrency: usize,
    pub latency: Latency,
    /// Non-2xx answers and transport failures.
    pub failed: u64,
    /// 2xx answers whose suppressed addresses were not exactly the expected ones.
    pub wrong: u64,
    pub elapsed_secs: f64,
}

impl std::fmt::Display for CheckSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "check: {} calls of {} addresses, concurrency {}, {:.1} s",
            self.calls, self.per_call, self.concurrency, self.elapsed_secs
        )?;
        writeln!(
            f,
            "  {:.0} calls/s ({:.0} addresses/s); ok {}, failed {}, wrong answers {}",
            self.calls_per_sec, self.addresses_per_sec, self.ok, self.failed, self.wrong
        )?;
        writeln!(
            f,
            "  latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
            self.latency.p50_ms, self.latency.p90_ms, self.latency.p99_ms, self.latency.max_ms
        )
    }
}

struct WorkerTally {
    latency: Histogram<u64>,
    calls: u64,
    ok: u64,
    failed: u64,
    wrong: u64,
}

/// Runs `load` until its duration is over.
///
/// # Errors
/// When the HTTP client cannot be built.
pub async fn run_check(load: CheckLoad) -> anyhow::Result<CheckSummary> {
    let client = crate::run::client(&crate::run::RunOptions {
        target: load.target.clone(),
        concurrency: load.concurrency,
        duration: load.duration,
        rate: None,
        timeout: load.timeout,
    })?;
    let url = load.target.url.join("/api/v1/suppressions/check")?;
    let load = Arc::new(load);
    let start = Instant::now();
    let deadline = start + load.duration;
    let mut latency = Histogram::<u64>::new_with_bounds(1, MAX_LATENCY_US, 3)?;
    let mut workers = JoinSet::new();
    for worker in 0..load.concurrency.max(1) {
        let (client, url, load) = (client.clone(), url.clone(), Arc::clone(&load));
        let empty = latency.clone();
        workers.spawn(async move {
            let mut rng = SplitMix64::new(load.seed ^ (worker as u64).wrapping_mul(0x9E37_79B9));
            let mut tally = WorkerTally {
                latency: empty,
                calls: 0,
                ok: 0,
                failed: 0,
                wrong: 0,
            };
            while Instant::now() < deadline {
                let numbers: Vec<u64> = (0..load.per_call)
                    .map(|_| rng.below(load.population.max(1)))
                    .collect();
                let mut expected: Vec<String> = numbers
                    .iter()
                    .filter(|n| *n % load.suppressed_every.max(1) == 0)
                    .map(|n| address(*n))
                    .collect();
                expected.sort_unstable();
                expected.dedup();
                let body = serde_json::json!({
                    "addresses": numbers.iter().map(|n| address(*n)).collect::<Vec<_>>()
                })
                .to_string();
                let began = Instant::now();
                let sent = client
                    .post(url.clone())
                    .header(AUTHORIZATION, format!("Bearer {}", load.token))
                    .header(CONTENT_TYPE, "application/json")
                    .body(body)
                    .send()
                    .await;
                let answer = match sent {
                    Ok(response) if response.status().is_success() => response
                        .bytes()
                        .await
                        .ok()
                        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok()),
                    _ => None,
                };
                let micros = u64::try_from(began.elapsed().as_micros()).unwrap_or(u64::MAX);
                let _ = tally.latency.record(micros.clamp(1, MAX_LATENCY_US));
                tally.calls += 1;
                let Some(answer) = answer else {
                    tally.failed += 1;
                    continue;
                };
                tally.ok += 1;
                let mut got: Vec<String> = answer["suppressed"]
                    .as_array()
                    .map(|items| {
                        items
                            .iter()
                            .filter_map(|e| e["address"].as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                got.sort_unstable();
                if got != expected {
                    tally.wrong += 1;
                }
            }
            tally
        });
    }
    let (mut calls, mut ok, mut failed, mut wrong) = (0, 0, 0, 0);
    while let Some(done) = workers.join_next().await {
        if let Ok(part) = done {
            latency.add(&part.latency)?;
            calls += part.calls;
            ok += part.ok;
            failed += part.failed;
            wrong += part.wrong;
        }
    }
    let elapsed = start.elapsed();
    Ok(CheckSummary {
        calls,
        ok,
        calls_per_sec: per_second(calls, elapsed),
        addresses_per_sec: per_second(calls * load.per_call as u64, elapsed),
        per_call: load.per_call,
        concurrency: load.concurrency,
        latency: Latency::of(&latency),
        failed,
        wrong,
        elapsed_secs: elapsed.as_secs_f64(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_import_file_holds_every_nth_address_in_the_aws_format() {
        let file = import_file(25, 10);
        let addresses: Vec<&str> = file["SuppressedDestinationSummaries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["EmailAddress"].as_str().unwrap())
            .collect();
        assert_eq!(
            addresses,
            [
                "user0@loadgen.example",
                "user10@loadgen.example",
                "user20@loadgen.example"
            ]
        );
        assert_eq!(
            file["SuppressedDestinationSummaries"][0]["Reason"],
            "BOUNCE"
        );
    }
}
