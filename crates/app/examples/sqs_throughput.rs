//! How many SNS deliveries per second the SQS pollers store from one queue, end to end: the
//! real server's pollers receive from a local SQS (moto's server), verify each signed
//! envelope, store it in PostgreSQL and delete it (`docs/performance.md`, "Intake from Amazon
//! SQS").
//!
//! ```sh
//! source scripts/ensure-moto        # TEST_SQS_ENDPOINT and fake credentials
//! cargo run --release -p ses-webhook-app --example sqs_throughput -- 1 5000
//! cargo run --release -p ses-webhook-app --example sqs_throughput -- 4 5000
//! ```
//!
//! Arguments: pollers (the queue's `concurrency`) and messages. Creates and drops its own
//! database on `TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432`) and its own
//! queue; fills the queue first (not timed), then starts the server and times until every
//! message is stored and the queue is empty. Each message is a `Delivery` to one recipient,
//! signed with SignatureVersion 2 by a throwaway key whose certificate is pinned.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::time::{Duration, Instant};

use adapters_store::testing::TestDatabase;
use app::settings::SqsSettings;
use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_sqs::types::{QueueAttributeName, SendMessageBatchRequestEntry};
use diesel::prelude::*;
use sns_verify::SignatureVersion;
use sns_verify::testing::TestSigner;

const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:ses-events";

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

fn delivery(n: usize) -> String {
    serde_json::json!({
        "notificationType": "Delivery",
        "mail": {"timestamp": "2026-12-01T08:00:00.000Z", "messageId": format!("0100018c-{n:08x}-perf"),
                 "source": "sender@example.org", "destination": [format!("user{n}@example.com")]},
        "delivery": {"timestamp": "2026-12-01T08:00:01.000Z", "recipients": [format!("user{n}@example.com")],
                     "smtpResponse": "250 2.6.0 Message received", "processingTimeMillis": 420}
    })
    .to_string()
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let pollers: i64 = args.next().map_or(1, |a| a.parse().expect("pollers"));
    let messages: usize = args.next().map_or(5000, |a| a.parse().expect("messages"));
    let endpoint = std::env::var("TEST_SQS_ENDPOINT")
        .expect("TEST_SQS_ENDPOINT: `source scripts/ensure-moto` first");
    let client = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(&endpoint)
            .credentials_provider(Credentials::new("testing", "testing", None, None, "perf"))
            .build(),
    );
    let name = format!("ses-perf-{}", std::process::id());
    let queue_url = client
        .create_queue()
        .queue_name(&name)
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();

    let signer = TestSigner::shared();
    let filled = Instant::now();
    let bodies: Vec<String> = (0..messages)
        .map(|n| {
            signer
                .notification(
                    TOPIC,
                    &format!("perf-{n}"),
                    &delivery(n),
                    None,
                    SignatureVersion::V2,
                )
                .to_string()
        })
        .collect();
    let mut sends = tokio::task::JoinSet::new();
    for (chunk_index, chunk) in bodies.chunks(10).enumerate() {
        let entries: Vec<SendMessageBatchRequestEntry> = chunk
            .iter()
            .enumerate()
            .map(|(i, body)| {
                SendMessageBatchRequestEntry::builder()
                    .id(format!("{chunk_index}-{i}"))
                    .message_body(body)
                    .build()
                    .unwrap()
            })
            .collect();
        let (client, url) = (client.clone(), queue_url.clone());
        sends.spawn(async move {
            client
                .send_message_batch()
                .queue_url(url)
                .set_entries(Some(entries))
                .send()
                .await
                .unwrap();
        });
        while sends.len() >= 8 {
            sends.join_next().await.unwrap().unwrap();
        }
    }
    while let Some(sent) = sends.join_next().await {
        sent.unwrap();
    }
    println!(
        "queue {name} filled with {messages} messages in {:.1} s",
        filled.elapsed().as_secs_f64()
    );

    let db = TestDatabase::from_env();
    let certs = tempfile::tempdir().unwrap();
    signer.write_pinned(certs.path()).unwrap();
    let mut settings = app::Settings::default();
    settings.server.host = "127.0.0.1".into();
    settings.server.port = 0;
    settings.server.workers = 1;
    settings.database.url = db.url().to_owned();
    settings.sns.cert_dir = Some(certs.path().to_path_buf());
    settings.sns.fetch_certificates = false;
    settings.sqs = vec![SqsSettings {
        queue_url: queue_url.clone(),
        region: Some("us-east-1".into()),
        endpoint_url: Some(endpoint),
        max_messages: 10,
        wait_secs: 1,
        visibility_timeout_secs: Some(60),
        concurrency: pollers,
        raw: false,
    }];
    // Migrations run in `build`, before the pollers start: timed from when it returns.
    let server = app::Application::build(&settings).await.unwrap();
    let started = Instant::now();
    tokio::spawn(server.run_until_stopped());
    let mut connection = PgConnection::establish(db.url()).unwrap();
    let total = i64::try_from(messages).unwrap();
    loop {
        let stored = diesel::sql_query("SELECT COUNT(*) AS n FROM sns_messages")
            .load::<Count>(&mut connection)
            .unwrap()[0]
            .n;
        if stored >= total {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let left = client
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap_or_default();
    #[allow(clippy::cast_precision_loss)]
    let rate = messages as f64 / elapsed;
    println!(
        "{pollers} poller(s): {messages} messages stored in {elapsed:.2} s: {rate:.0} messages/s \
         (visible in the queue at the end: {})",
        left.get(&QueueAttributeName::ApproximateNumberOfMessages)
            .map_or("?", String::as_str)
    );
    client
        .delete_queue()
        .queue_url(&queue_url)
        .send()
        .await
        .unwrap();
}
