//! Counting what came back and summarising it: rates, latency percentiles, status counts.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Highest latency recorded, in microseconds (longer ones count as this).
pub const MAX_LATENCY_US: u64 = 120_000_000;

/// The counts `processed`/`duplicates`/`errors` of a 2xx body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
pub struct Ack {
    #[serde(default)]
    pub processed: u64,
    #[serde(default)]
    pub duplicates: u64,
    #[serde(default)]
    pub errors: u64,
}

/// What a set of requests produced; one per worker, merged at the end.
#[derive(Debug, Clone)]
pub struct Tally {
    /// Latency in microseconds.
    pub latency: Histogram<u64>,
    /// Responses by HTTP status.
    pub statuses: BTreeMap<u16, u64>,
    /// Requests that got no response, by kind (`timeout`, `connect`, `other`).
    pub transport_errors: BTreeMap<&'static str, u64>,
    /// Sums over 2xx bodies.
    pub processed: u64,
    pub duplicates: u64,
    pub errors: u64,
    /// 2xx answers whose `processed + duplicates` is not the message's event count, or with
    /// `errors`: the server acknowledged something other than what was sent.
    pub mismatched: u64,
    /// 2xx answers whose body could not be read as JSON.
    pub unreadable: u64,
    /// Messages (indices) answered 2xx at least once (may repeat).
    pub acked: Vec<u32>,
    /// Messages (indices) answered otherwise.
    pub failed: Vec<u32>,
}

impl Default for Tally {
    fn default() -> Self {
        Self::new()
    }
}

/// One request's outcome as a worker hands it to [`Tally::record`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A 2xx answer and its body counts (`None` when unreadable).
    Acked(u16, Option<Ack>),
    /// Any other HTTP status.
    Refused(u16),
    /// No HTTP answer.
    Transport(&'static str),
}

impl Tally {
    /// # Panics
    /// Never: the histogram bounds are constants that `hdrhistogram` accepts.
    #[must_use]
    #[expect(
        clippy::expect_used,
        reason = "constant bounds (1 us to 120 s, 3 digits) are always valid"
    )]
    pub fn new() -> Self {
        let latency =
            Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid histogram bounds");
        Self {
            latency,
            statuses: BTreeMap::new(),
            transport_errors: BTreeMap::new(),
            processed: 0,
            duplicates: 0,
            errors: 0,
            mismatched: 0,
            unreadable: 0,
            acked: Vec::new(),
            failed: Vec::new(),
        }
    }

    /// Records one request for message `index` (carrying `expected` events) that took
    /// `latency`.
    pub fn record(&mut self, index: u32, expected: u32, latency: Duration, outcome: Outcome) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.latency.saturating_record(micros.max(1));
        match outcome {
            Outcome::Acked(status, ack) => {
                *self.statuses.entry(status).or_default() += 1;
                self.acked.push(index);
                match ack {
                    Some(ack) => {
                        self.processed += ack.processed;
                        self.duplicates += ack.duplicates;
                        self.errors += ack.errors;
                        if ack.processed + ack.duplicates != u64::from(expected) || ack.errors != 0
                        {
                            self.mismatched += 1;
                        }
                    }
                    None => self.unreadable += 1,
                }
            }
            Outcome::Refused(status) => {
                *self.statuses.entry(status).or_default() += 1;
                self.failed.push(index);
            }
            Outcome::Transport(kind) => {
                *self.transport_errors.entry(kind).or_default() += 1;
                self.failed.push(index);
            }
        }
    }

    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: Tally) {
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = self.latency.add(&other.latency);
        for (status, n) in other.statuses {
            *self.statuses.entry(status).or_default() += n;
        }
        for (kind, n) in other.transport_errors {
            *self.transport_errors.entry(kind).or_default() += n;
        }
        self.processed += other.processed;
        self.duplicates += other.duplicates;
        self.errors += other.errors;
        self.mismatched += other.mismatched;
        self.unreadable += other.unreadable;
        self.acked.extend(other.acked);
        self.failed.extend(other.failed);
    }

    /// Requests recorded.
    #[must_use]
    pub fn requests(&self) -> u64 {
        self.latency.len()
    }

    /// Requests answered 2xx.
    #[must_use]
    pub fn ok(&self) -> u64 {
        self.statuses
            .iter()
            .filter(|(s, _)| (200..300).contains(*s))
            .map(|(_, n)| n)
            .sum()
    }
}

/// `count` per second over `elapsed` (0 for an empty interval).
#[must_use]
pub fn per_second(count: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        #[allow(clippy::cast_precision_loss, reason = "counts far below 2^53")]
        let count = count as f64;
        count / secs
    } else {
        0.0
    }
}

fn ms(micros: u64) -> f64 {
    #[allow(clippy::cast_precision_loss, reason = "latencies far below 2^53")]
    let micros = micros as f64;
    micros / 1_000.0
}

/// Latency figures in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Latency {
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl Latency {
    /// Percentiles of `histogram` (microseconds), all zero when it is empty.
    #[must_use]
    pub fn of(histogram: &Histogram<u64>) -> Self {
        if histogram.is_empty() {
            return Self {
                p50_ms: 0.0,
                p90_ms: 0.0,
                p99_ms: 0.0,
                p999_ms: 0.0,
                max_ms: 0.0,
                mean_ms: 0.0,
            };
        }
        Self {
            p50_ms: ms(histogram.value_at_quantile(0.50)),
            p90_ms: ms(histogram.value_at_quantile(0.90)),
            p99_ms: ms(histogram.value_at_quantile(0.99)),
            p999_ms: ms(histogram.value_at_quantile(0.999)),
            max_ms: ms(histogram.max()),
            mean_ms: histogram.mean() / 1_000.0,
        }
    }
}

/// The run's report, printed and optionally written as JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub mode: String,
    pub concurrency: usize,
    pub target_rate: Option<f64>,
    pub requests: u64,
    pub ok: u64,
    pub elapsed_secs: f64,
    pub requests_per_sec: f64,
    /// 2xx answers per second: acknowledged notifications.
    pub ok_per_sec: f64,
    /// Events newly stored per second (sum of `processed`).
    pub events_per_sec: f64,
    pub latency: Latency,
    pub statuses: BTreeMap<String, u64>,
    pub transport_errors: BTreeMap<String, u64>,
    pub processed: u64,
    pub duplicates: u64,
    pub errors: u64,
    pub mismatched: u64,
    pub unreadable: u64,
    pub duplicate_sends: usize,
    /// Why the run ended: `duration`, `count` or `messages_exhausted`.
    pub ended_by: String,
}

/// Sums up `tally` over `elapsed`.
#[must_use]
pub fn summarize(
    tally: &Tally,
    elapsed: Duration,
    mode: &str,
    concurrency: usize,
    target_rate: Option<f64>,
    duplicate_sends: usize,
    ended_by: &str,
) -> Summary {
    Summary {
        mode: mode.to_owned(),
        concurrency,
        target_rate,
        requests: tally.requests(),
        ok: tally.ok(),
        elapsed_secs: elapsed.as_secs_f64(),
        requests_per_sec: per_second(tally.requests(), elapsed),
        ok_per_sec: per_second(tally.ok(), elapsed),
        events_per_sec: per_second(tally.processed, elapsed),
        latency: Latency::of(&tally.latency),
        statuses: tally
            .statuses
            .iter()
            .map(|(s, n)| (s.to_string(), *n))
            .collect(),
        transport_errors: tally
            .transport_errors
            .iter()
            .map(|(k, n)| ((*k).to_owned(), *n))
            .collect(),
        processed: tally.processed,
        duplicates: tally.duplicates,
        errors: tally.errors,
        mismatched: tally.mismatched,
        unreadable: tally.unreadable,
        duplicate_sends,
        ended_by: ended_by.to_owned(),
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rate = self
            .target_rate
            .map(|r| format!(", target {r:.0} req/s"))
            .unwrap_or_default();
        writeln!(
            f,
            "mode {} (concurrency {}{rate}), ended by {}",
            self.mode, self.concurrency, self.ended_by
        )?;
        writeln!(
            f,
            "requests   {} in {:.2} s: {:.1} req/s, {} ok ({:.1}/s), {} duplicate sends",
            self.requests,
            self.elapsed_secs,
            self.requests_per_sec,
            self.ok,
            self.ok_per_sec,
            self.duplicate_sends
        )?;
        writeln!(
            f,
            "events     {} processed ({:.1}/s), {} duplicates, {} errors",
            self.processed, self.events_per_sec, self.duplicates, self.errors
        )?;
        let l = &self.latency;
        writeln!(
            f,
            "latency ms p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}  mean {:.2}",
            l.p50_ms, l.p90_ms, l.p99_ms, l.p999_ms, l.max_ms, l.mean_ms
        )?;
        let statuses: Vec<String> = self
            .statuses
            .iter()
            .map(|(s, n)| format!("{s}: {n}"))
            .collect();
        writeln!(f, "statuses   {}", statuses.join(", "))?;
        if !self.transport_errors.is_empty() {
            let errors: Vec<String> = self
                .transport_errors
                .iter()
                .map(|(k, n)| format!("{k}: {n}"))
                .collect();
            writeln!(f, "no answer  {}", errors.join(", "))?;
        }
        if self.mismatched > 0 || self.unreadable > 0 {
            writeln!(
                f,
                "WARNING    {} answers did not account for every event, {} were unreadable",
                self.mismatched, self.unreadable
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
impl Outcome {
    /// A 200 answer with these counts and no errors.
    pub(crate) fn ok(processed: u64, duplicates: u64) -> Self {
        Self::Acked(
            200,
            Some(Ack {
                processed,
                duplicates,
                errors: 0,
            }),
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn rates_divide_by_elapsed_time() {
        assert!((per_second(500, Duration::from_millis(250)) - 2_000.0).abs() < 1e-9);
        assert!(per_second(10, Duration::ZERO).abs() < f64::EPSILON);
    }

    #[test]
    fn percentiles_come_from_the_recorded_latencies() {
        let mut tally = Tally::new();
        // 1..=1000 ms, one each: p50 = 500 ms, p90 = 900 ms, p99 = 990 ms, max = 1000 ms.
        for i in 1..=1000_u64 {
            tally.record(0, 1, Duration::from_millis(i), Outcome::ok(1, 0));
        }
        let l = Latency::of(&tally.latency);
        let close = |actual: f64, expected: f64| (actual - expected).abs() / expected < 0.002;
        assert!(close(l.p50_ms, 500.0), "{l:?}");
        assert!(close(l.p90_ms, 900.0), "{l:?}");
        assert!(close(l.p99_ms, 990.0), "{l:?}");
        assert!(close(l.max_ms, 1000.0), "{l:?}");
        assert!(close(l.mean_ms, 500.5), "{l:?}");
    }

    #[test]
    fn an_empty_run_reports_zeros() {
        let summary = summarize(&Tally::new(), Duration::ZERO, "closed", 1, None, 0, "count");
        assert_eq!(summary.requests, 0);
        assert!(summary.latency.p99_ms.abs() < f64::EPSILON);
        assert!(summary.requests_per_sec.abs() < f64::EPSILON);
    }

    #[test]
    fn outcomes_are_counted_and_merged() {
        let mut a = Tally::new();
        a.record(0, 2, Duration::from_millis(1), Outcome::ok(2, 0));
        a.record(0, 2, Duration::from_millis(1), Outcome::ok(0, 2));
        a.record(1, 3, Duration::from_millis(1), Outcome::ok(1, 1)); // one event unaccounted
        let mut b = Tally::new();
        b.record(2, 1, Duration::from_millis(5), Outcome::Refused(503));
        b.record(
            3,
            1,
            Duration::from_millis(5),
            Outcome::Transport("timeout"),
        );
        b.record(4, 1, Duration::from_millis(5), Outcome::Acked(200, None));
        a.merge(b);

        assert_eq!(a.requests(), 6);
        assert_eq!(a.ok(), 4);
        assert_eq!(a.processed, 3);
        assert_eq!(a.duplicates, 3);
        assert_eq!(a.mismatched, 1);
        assert_eq!(a.unreadable, 1);
        assert_eq!(a.statuses.get(&503), Some(&1));
        assert_eq!(a.transport_errors.get("timeout"), Some(&1));
        assert_eq!(a.acked, vec![0, 0, 1, 4]);
        assert_eq!(a.failed, vec![2, 3]);

        let summary = summarize(&a, Duration::from_secs(2), "closed", 4, None, 1, "count");
        assert!((summary.requests_per_sec - 3.0).abs() < 1e-9);
        assert!((summary.ok_per_sec - 2.0).abs() < 1e-9);
        assert!((summary.events_per_sec - 1.5).abs() < 1e-9);
        let text = summary.to_string();
        assert!(text.contains("503: 1"), "{text}");
        assert!(text.contains("timeout: 1"), "{text}");
        assert!(text.contains("WARNING"), "{text}");
    }
}
