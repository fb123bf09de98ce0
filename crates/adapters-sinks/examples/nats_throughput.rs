//! How many entries per second the NATS JetStream sink delivers, the way the relay calls it:
//! one `deliver` of a batch at a time, each awaited before the next.
//!
//! ```sh
//! cargo run --release -p ses-webhook-adapters-sinks --example nats_throughput -- \
//!     [--entries 20000] [--batch 100] [--rounds 3] [--concurrency 128] [--body 1200]
//! ```
//!
//! Against the server at `TEST_NATS_URL` (default `nats://127.0.0.1:4222`; `scripts/ensure-nats`
//! provides one). It publishes to a stream of its own (file storage, as the sink creates it),
//! checks that every entry was acknowledged and that the stream holds them all, prints one line
//! per round and deletes the stream. Measures; asserts no timing.

use std::error::Error;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use adapters_sinks::{NatsSettings, NatsSink};
use async_nats::jetstream;
use domain::delivery::{OutboundMessage, SinkClient};

type Outcome<T> = Result<T, Box<dyn Error + Send + Sync>>;

#[derive(Debug)]
struct Options {
    entries: usize,
    batch: usize,
    rounds: usize,
    concurrency: usize,
    body: usize,
}

fn options() -> Outcome<Options> {
    let mut options = Options {
        entries: 20_000,
        batch: 100,
        rounds: 3,
        concurrency: 128,
        body: 1200,
    };
    let mut args = std::env::args().skip(1);
    while let Some(name) = args.next() {
        let value: usize = args
            .next()
            .ok_or_else(|| format!("{name} needs a value"))?
            .parse()
            .map_err(|e| format!("{name}: {e}"))?;
        match name.as_str() {
            "--entries" => options.entries = value,
            "--batch" => options.batch = value,
            "--rounds" => options.rounds = value,
            "--concurrency" => options.concurrency = value,
            "--body" => options.body = value,
            other => return Err(format!("unknown option {other}").into()),
        }
    }
    if options.entries == 0 || options.batch == 0 || options.rounds == 0 {
        return Err("--entries, --batch and --rounds must be at least 1".into());
    }
    Ok(options)
}

/// An envelope of about `size` bytes, as the relay sends it.
fn message(id: String, size: usize) -> OutboundMessage {
    let head = format!(
        r#"{{"id":"{id}","type":"email_bounce","timestamp":"2026-11-30T12:00:00.000000Z","data":{{"padding":""#
    );
    let padding = "x".repeat(size.saturating_sub(head.len() + 3));
    OutboundMessage {
        entry_id: id,
        entry_type: "email_bounce".to_owned(),
        body: format!(r#"{head}{padding}"}}}}"#).into_bytes(),
    }
}

#[tokio::main]
async fn main() -> Outcome<()> {
    let options = options()?;
    let url = std::env::var("TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos();
    let name = format!("throughput_{}_{nanos}", std::process::id());
    let stream = format!("THROUGHPUT_{name}");
    let mut settings = NatsSettings::new(url.parse()?, stream.clone());
    settings.subject = format!("{name}.{{eventType}}");
    settings.concurrency = options.concurrency;
    let sink = NatsSink::new(settings).await?;
    let client = async_nats::connect(&url).await?;
    let jetstream = jetstream::new(client);

    let result = measure(&options, &sink, &jetstream, &stream).await;
    let deleted = jetstream.delete_stream(&stream).await;
    result?;
    deleted?;
    Ok(())
}

async fn measure(
    options: &Options,
    sink: &NatsSink,
    jetstream: &jetstream::Context,
    stream: &str,
) -> Outcome<()> {
    // Warm-up: connects, creates the stream, and fills the connection's buffers once.
    let warm_up: Vec<_> = (0..options.batch)
        .map(|i| message(format!("warm-up-{i}"), options.body))
        .collect();
    if let Some(Err(e)) = sink.deliver(warm_up).await.into_iter().find(Result::is_err) {
        return Err(format!("the warm-up failed: {e}").into());
    }
    let mut sent = options.batch;
    println!(
        "NatsSink to {stream}: {} entries of {} bytes per round in batches of {}, \
         concurrency {}",
        options.entries, options.body, options.batch, options.concurrency
    );
    let mut rates = Vec::new();
    for round in 1..=options.rounds {
        let mut batches: Vec<Vec<OutboundMessage>> = Vec::new();
        for start in (0..options.entries).step_by(options.batch) {
            let end = (start + options.batch).min(options.entries);
            batches.push(
                (start..end)
                    .map(|i| message(format!("round-{round}-{i}"), options.body))
                    .collect(),
            );
        }
        let mut slowest = Duration::ZERO;
        let started = Instant::now();
        for batch in batches {
            let n = batch.len();
            let one = Instant::now();
            let results = sink.deliver(batch).await;
            slowest = slowest.max(one.elapsed());
            if results.len() != n {
                return Err(format!("{} answers for {n} entries", results.len()).into());
            }
            if let Some(Err(e)) = results.into_iter().find(Result::is_err) {
                return Err(format!("a delivery failed: {e}").into());
            }
        }
        let elapsed = started.elapsed();
        sent += options.entries;
        let rate = options.entries as f64 / elapsed.as_secs_f64();
        rates.push(rate);
        println!(
            "round {round}: {} entries in {:.3} s = {rate:.0} entries/s \
             (mean batch {:.2} ms, slowest {:.2} ms)",
            options.entries,
            elapsed.as_secs_f64(),
            elapsed.as_secs_f64() * 1000.0 / options.entries.div_ceil(options.batch) as f64,
            slowest.as_secs_f64() * 1000.0
        );
    }
    let mut handle = jetstream.get_stream(stream).await?;
    let stored = handle.info().await?.state.messages;
    if stored != sent as u64 {
        return Err(format!("the stream holds {stored} messages, not the {sent} sent").into());
    }
    rates.sort_by(f64::total_cmp);
    println!(
        "median of {} rounds: {:.0} entries/s; the stream holds all {stored} messages",
        rates.len(),
        rates[rates.len() / 2]
    );
    Ok(())
}
