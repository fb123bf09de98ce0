//! How many outbox entries a relay delivers per second, end to end: claims from PostgreSQL, the
//! content read and shaped as the API shows it, the envelope sent through the real sink, the
//! outcome recorded (`docs/performance.md`, "Event delivery").
//!
//! ```sh
//! cargo run --release -p ses-webhook-app --example relay_throughput -- webhook 20000
//! cargo run --release -p ses-webhook-app --example relay_throughput -- nats 20000
//! ```
//!
//! Creates and drops its own database on `TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432`); stores the events first (not timed), then runs one
//! relay with the server's defaults (batch 200) until nothing is due, and prints the rate.
//! `webhook` posts to a receiver in this process (actix-web, answering 204 to every request,
//! 16 requests in flight as a webhook sink's default); `nats` publishes to the JetStream server
//! at `TEST_NATS_URL` (default `nats://127.0.0.1:4222`) in a stream it creates and deletes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use adapters_store::testing::TestDatabase;
use adapters_store::{PoolOptions, Store};
use app::delivery::ApiShapedContents;
use chrono::{TimeDelta, Utc};
use domain::delivery::{OutboxStore, Relay, RelaySettings, RetrySchedule, SinkClient, SinkFilter};
use domain::ports::{ArchivedMessage, EventStore, MessageOutcome, SystemClock};
use domain::{EventType, PlatformEvent, SnsMessageType};

const BATCH: usize = 200;
const EVENTS_PER_MESSAGE: usize = 50;

fn message(n: usize) -> ArchivedMessage {
    ArchivedMessage {
        sns_message_id: format!("perf-{n}"),
        message_type: SnsMessageType::Notification,
        topic_arn: "arn:aws:sns:us-east-1:123456789012:ses-events".to_owned(),
        sns_timestamp: Utc::now(),
        received_at: Utc::now(),
        ses_type: Some("Delivery".to_owned()),
        ses_message_id: None,
        outcome: MessageOutcome::Processed,
        error_count: 0,
        error_detail: None,
        raw_body: "{}".to_owned(),
        tally: None,
    }
}

fn event(n: usize) -> PlatformEvent {
    PlatformEvent {
        event_key: format!("{n:064x}"),
        recipient: Some(format!("user{n}@example.com")),
        source: Some("sender@example.org".to_owned()),
        subject: Some("Your order has shipped".to_owned()),
        smtp_response: Some("250 2.6.0 Message received".to_owned()),
        ..PlatformEvent::new(
            EventType::Delivered,
            &format!("0100018c-{n:08x}-perf"),
            Utc::now() - TimeDelta::minutes(1),
        )
    }
}

async fn webhook_sink() -> Arc<dyn SinkClient> {
    use actix_web::{App, HttpResponse, HttpServer, web};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = HttpServer::new(|| {
        App::new().default_service(web::to(|_body: web::Bytes| async {
            HttpResponse::NoContent().finish()
        }))
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    let sink = adapters_sinks::WebhookSink::new(adapters_sinks::WebhookSettings {
        url: format!("http://127.0.0.1:{port}/hooks").parse().unwrap(),
        secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_owned(),
        timeout: Duration::from_secs(10),
        allow_http: true,
        concurrency: 16,
    })
    .unwrap();
    Arc::new(sink)
}

async fn nats_sink(stream: &str) -> Arc<dyn SinkClient> {
    let url = std::env::var("TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let mut settings = adapters_sinks::NatsSettings::new(url.parse().unwrap(), stream);
    settings.subject = format!("{}.{{eventType}}", stream.to_ascii_lowercase());
    Arc::new(adapters_sinks::NatsSink::new(settings).await.unwrap())
}

async fn delete_stream(stream: &str) {
    let url = std::env::var("TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    if let Ok(client) = async_nats::connect(url).await {
        let _ = async_nats::jetstream::new(client)
            .delete_stream(stream)
            .await;
    }
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let kind = args.next().unwrap_or_else(|| "webhook".into());
    let total: usize = args.next().map_or(20_000, |n| n.parse().unwrap());
    let db = TestDatabase::from_env();
    let store = Arc::new(
        Store::connect(
            db.url(),
            PoolOptions {
                max_size: 4,
                min_idle: Some(1),
                ..PoolOptions::default()
            },
        )
        .unwrap(),
    );
    store.run_migrations().await.unwrap();
    store
        .sync_sinks(vec![SinkFilter {
            name: "perf".into(),
            entry_types: None,
        }])
        .await
        .unwrap();
    for m in 0..total.div_ceil(EVENTS_PER_MESSAGE) {
        let events = (m * EVENTS_PER_MESSAGE..((m + 1) * EVENTS_PER_MESSAGE).min(total))
            .map(event)
            .collect();
        store.store_notification(message(m), events).await.unwrap();
    }
    let stream = format!("SES_RELAY_PERF_{}", std::process::id());
    let sink = match kind.as_str() {
        "webhook" => webhook_sink().await,
        "nats" => nats_sink(&stream).await,
        other => panic!("unknown sink kind {other}: webhook or nats"),
    };
    let outbox: Arc<dyn OutboxStore> = store.clone();
    let relay = Relay::new(
        RelaySettings {
            sink: "perf".into(),
            batch: BATCH,
            lease: TimeDelta::minutes(5),
            schedule: RetrySchedule::default(),
        },
        Arc::clone(&outbox),
        Arc::new(ApiShapedContents::new(Arc::clone(&outbox))),
        sink,
        Arc::new(SystemClock),
    );
    let started = Instant::now();
    let mut delivered = 0;
    let mut failed = 0;
    loop {
        let pass = relay.run_once().await.unwrap();
        delivered += pass.delivered;
        failed += pass.retried + pass.dead;
        if pass.claimed == 0 {
            break;
        }
    }
    let elapsed = started.elapsed();
    if kind == "nats" {
        delete_stream(&stream).await;
    }
    assert_eq!(failed, 0, "deliveries failed");
    assert_eq!(delivered, total, "not every entry was delivered");
    #[allow(clippy::cast_precision_loss)]
    let rate = delivered as f64 / elapsed.as_secs_f64();
    println!(
        "{kind}: {delivered} entries delivered in {:.2} s: {rate:.0} entries/s (batch {BATCH})",
        elapsed.as_secs_f64()
    );
}
