//! Posting the planned messages: closed loop (a fixed number of workers, each sending its next
//! request when the previous answer arrives) or open loop (requests started at a fixed rate,
//! whatever the answers do, with latency measured from the intended start so that a slow server
//! cannot hide its queueing).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::header::{CONTENT_TYPE, USER_AGENT};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::guard::Target;
use crate::mix::{Signed, TOPIC_ARN};
use crate::stats::{Ack, Outcome, Tally};

/// How to send.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub target: Target,
    /// Workers (closed loop) or most requests in flight (open loop).
    pub concurrency: usize,
    /// The run stops starting requests after this long.
    pub duration: Duration,
    /// Requests per second for an open-loop run; `None` for closed loop.
    pub rate: Option<f64>,
    /// Per-request timeout.
    pub timeout: Duration,
}

/// What a run produced.
#[derive(Debug)]
pub struct RunResult {
    pub tally: Tally,
    pub elapsed: Duration,
    /// Requests started (the first `started` entries of the plan).
    pub started: usize,
}

/// The HTTP client: pooled keep-alive connections, no proxy, no redirects (a redirect could
/// send load elsewhere), `localhost` pinned to 127.0.0.1.
///
/// # Errors
/// When the client cannot be built.
pub fn client(options: &RunOptions) -> anyhow::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .http1_only()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(options.concurrency)
        .timeout(options.timeout);
    if let Some(pin) = options.target.localhost_pin {
        builder = builder.resolve("localhost", pin);
    }
    Ok(builder.build()?)
}

async fn post_one(client: &reqwest::Client, url: &reqwest::Url, message: &Signed) -> Outcome {
    let sent = client
        .post(url.clone())
        .header(CONTENT_TYPE, "text/plain; charset=UTF-8")
        .header(USER_AGENT, "Amazon Simple Notification Service Agent")
        .header("x-amz-sns-message-type", "Notification")
        .header("x-amz-sns-message-id", &message.sns_message_id)
        .header("x-amz-sns-topic-arn", TOPIC_ARN)
        .body(message.body.clone())
        .send()
        .await;
    match sent {
        Ok(response) => {
            let status = response.status();
            let body = response.bytes().await;
            if status.is_success() {
                let ack = body
                    .ok()
                    .and_then(|b| serde_json::from_slice::<Ack>(&b).ok());
                Outcome::Acked(status.as_u16(), ack)
            } else {
                Outcome::Refused(status.as_u16())
            }
        }
        Err(e) if e.is_timeout() => Outcome::Transport("timeout"),
        Err(e) if e.is_connect() => Outcome::Transport("connect"),
        Err(_) => Outcome::Transport("other"),
    }
}

/// Sends `plan` (indices into `messages`) as `options` say.
///
/// # Errors
/// When the HTTP client cannot be built.
pub async fn run(
    messages: Arc<Vec<Signed>>,
    plan: Arc<Vec<u32>>,
    options: &RunOptions,
) -> anyhow::Result<RunResult> {
    let client = client(options)?;
    match options.rate {
        None => Ok(closed_loop(client, messages, plan, options).await),
        Some(rate) => Ok(open_loop(client, messages, plan, options, rate).await),
    }
}

async fn closed_loop(
    client: reqwest::Client,
    messages: Arc<Vec<Signed>>,
    plan: Arc<Vec<u32>>,
    options: &RunOptions,
) -> RunResult {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let deadline = start + options.duration;
    let mut workers = JoinSet::new();
    for _ in 0..options.concurrency.max(1) {
        let (client, messages, plan, next) = (
            client.clone(),
            Arc::clone(&messages),
            Arc::clone(&plan),
            Arc::clone(&next),
        );
        let url = options.target.url.clone();
        workers.spawn(async move {
            let mut tally = Tally::new();
            while Instant::now() < deadline {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&index) = plan.get(i) else { break };
                let Some(message) = messages.get(index as usize) else {
                    break;
                };
                let began = Instant::now();
                let outcome = post_one(&client, &url, message).await;
                tally.record(index, message.events, began.elapsed(), outcome);
            }
            tally
        });
    }
    let mut tally = Tally::new();
    while let Some(done) = workers.join_next().await {
        if let Ok(part) = done {
            tally.merge(part);
        }
    }
    let elapsed = start.elapsed();
    let started = next.load(Ordering::Relaxed).min(plan.len());
    RunResult {
        tally,
        elapsed,
        started,
    }
}

/// The intended start of request `i` at `rate` per second.
#[must_use]
pub fn scheduled_offset(i: usize, rate: f64) -> Duration {
    #[allow(clippy::cast_precision_loss, reason = "request counts far below 2^53")]
    let i = i as f64;
    Duration::from_secs_f64(i / rate.max(f64::MIN_POSITIVE))
}

async fn open_loop(
    client: reqwest::Client,
    messages: Arc<Vec<Signed>>,
    plan: Arc<Vec<u32>>,
    options: &RunOptions,
    rate: f64,
) -> RunResult {
    let in_flight = Arc::new(Semaphore::new(options.concurrency.max(1)));
    let url = options.target.url.clone();
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    let mut tally = Tally::new();
    let mut started = 0;
    for (i, &index) in plan.iter().enumerate() {
        let offset = scheduled_offset(i, rate);
        if offset >= options.duration {
            break;
        }
        let Some(message) = messages.get(index as usize) else {
            break;
        };
        let scheduled = start + offset;
        tokio::time::sleep_until(scheduled.into()).await;
        // Waiting for a free slot counts against the request: it is measured from `scheduled`.
        let Ok(permit) = Arc::clone(&in_flight).acquire_owned().await else {
            break;
        };
        let events = message.events;
        let (client, url, messages) = (client.clone(), url.clone(), Arc::clone(&messages));
        tasks.spawn(async move {
            let _permit = permit;
            let outcome = match messages.get(index as usize) {
                Some(message) => post_one(&client, &url, message).await,
                None => Outcome::Transport("other"),
            };
            (index, events, scheduled.elapsed(), outcome)
        });
        started += 1;
        while let Some(done) = tasks.try_join_next() {
            if let Ok((index, events, latency, outcome)) = done {
                tally.record(index, events, latency, outcome);
            }
        }
    }
    while let Some(done) = tasks.join_next().await {
        if let Ok((index, events, latency, outcome)) = done {
            tally.record(index, events, latency, outcome);
        }
    }
    RunResult {
        tally,
        elapsed: start.elapsed(),
        started,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_loop_requests_are_evenly_spaced() {
        assert_eq!(scheduled_offset(0, 1_000.0), Duration::ZERO);
        assert_eq!(scheduled_offset(1_000, 1_000.0), Duration::from_secs(1));
        assert_eq!(scheduled_offset(5, 4.0), Duration::from_millis(1_250));
    }
}
