//! Intake from Amazon SQS against a real SQS implementation: moto's server (scripts/ensure-moto
//! starts one and exports TEST_SQS_ENDPOINT with fake credentials). Envelopes are signed by the
//! test signer, whose certificate the servers have pinned.

use std::time::{Duration, Instant};

use app::settings::SqsSettings;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::Value;
use test_support::{TestApp, spawn_app_with};

use crate::event_delivery::delivery;
use crate::store_down::set_database_open;

/// moto's endpoint, from scripts/ensure-moto.
fn endpoint() -> String {
    std::env::var("TEST_SQS_ENDPOINT").expect(
        "TEST_SQS_ENDPOINT names no SQS: run the tests through scripts/test, or \
         `source scripts/ensure-moto` first",
    )
}

/// A client of moto for the tests' own calls (the servers use the standard AWS chain, which
/// scripts/ensure-moto fills with fake credentials).
fn client() -> Client {
    assert!(
        std::env::var_os("AWS_ACCESS_KEY_ID").is_some(),
        "the servers read AWS credentials from the environment: `source scripts/ensure-moto`"
    );
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint())
        .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
        .build();
    Client::from_conf(config)
}

/// A fresh queue of this test's own; its URL.
async fn create_queue(client: &Client, attributes: &[(QueueAttributeName, String)]) -> String {
    let name = format!("ses-{}", uuid::Uuid::new_v4().simple());
    let mut request = client.create_queue().queue_name(&name);
    for (attribute, value) in attributes {
        request = request.attributes(attribute.clone(), value);
    }
    request.send().await.unwrap().queue_url.unwrap()
}

/// A queue whose messages go to a new dead-letter queue after `max_receives` receives; the
/// queue's and the dead-letter queue's URLs.
async fn create_queue_with_dlq(client: &Client, max_receives: u32) -> (String, String) {
    let dlq = create_queue(client, &[]).await;
    let arn = client
        .get_queue_attributes()
        .queue_url(&dlq)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&QueueAttributeName::QueueArn]
        .clone();
    let policy = serde_json::json!({"deadLetterTargetArn": arn, "maxReceiveCount": max_receives});
    let queue = create_queue(
        client,
        &[(QueueAttributeName::RedrivePolicy, policy.to_string())],
    )
    .await;
    (queue, dlq)
}

async fn send(client: &Client, queue_url: &str, body: &str) {
    client
        .send_message()
        .queue_url(queue_url)
        .message_body(body)
        .send()
        .await
        .unwrap();
}

/// Messages in the queue: visible and in flight.
async fn depth(client: &Client, queue_url: &str) -> (u64, u64) {
    let attributes = client
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap_or_default();
    let get = |name: QueueAttributeName| {
        attributes
            .get(&name)
            .map_or(0, |v| v.parse::<u64>().unwrap())
    };
    (
        get(QueueAttributeName::ApproximateNumberOfMessages),
        get(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
    )
}

/// The `[[sqs]]` table of a test queue: moto's endpoint, short polls, a visibility timeout of
/// `visibility` seconds.
fn queue_table(queue_url: &str, visibility: i64) -> SqsSettings {
    SqsSettings {
        queue_url: queue_url.to_owned(),
        region: Some("us-east-1".into()),
        endpoint_url: Some(endpoint()),
        max_messages: 10,
        wait_secs: 1,
        visibility_timeout_secs: Some(visibility),
        concurrency: 1,
        raw: false,
    }
}

/// Waits (up to 30 s) until `done` holds.
async fn eventually(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !done().await {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The value of the counter `name` with `labels` (as written in the exposition), 0 if absent.
fn counter(metrics: &str, name: &str, labels: &str) -> f64 {
    metrics
        .lines()
        .find(|line| line.starts_with(&format!("{name}{{")) && line.contains(labels))
        .and_then(|line| line.rsplit(' ').next())
        .map_or(0.0, |v| v.parse().unwrap())
}

fn queue_name(queue_url: &str) -> &str {
    queue_url.rsplit('/').next().unwrap()
}

async fn sqs_counter(app: &TestApp, queue_url: &str, result: &str) -> f64 {
    counter(
        &app.metrics().await,
        "ses_webhook_sqs_messages_total",
        &format!("queue=\"{}\",result=\"{result}\"", queue_name(queue_url)),
    )
}

#[tokio::test]
async fn queued_messages_are_stored_once_deleted_and_counted_even_when_also_sent_over_http() {
    let sqs = client();
    let queue = create_queue(&sqs, &[]).await;
    let app = spawn_app_with(|s| s.sqs = vec![queue_table(&queue, 30)]).await;
    let envelopes: Vec<Value> = (0..12)
        .map(|i| app.notification(&delivery(&format!("sqs-stored-{i}"), &["a@example.com"])))
        .collect();
    // Three arrive over HTTP first, as when both subscriptions exist.
    for envelope in &envelopes[..3] {
        assert_eq!(app.post(envelope).await.0, 200);
    }

    for envelope in &envelopes {
        send(&sqs, &queue, &envelope.to_string()).await;
    }

    eventually("every queued message is deleted", async || {
        depth(&sqs, &queue).await == (0, 0)
    })
    .await;
    assert_eq!(app.count("email_events"), 12);
    assert_eq!(app.count("sns_messages"), 12);
    assert_eq!(sqs_counter(&app, &queue, "stored").await, 9.0);
    assert_eq!(sqs_counter(&app, &queue, "duplicate").await, 3.0);
    let metrics = app.metrics().await;
    assert_eq!(
        counter(
            &metrics,
            "ses_webhook_sqs_messages_received_total",
            &format!("queue=\"{}\"", queue_name(&queue))
        ),
        12.0
    );
    assert!(
        metrics.contains(&format!(
            "ses_webhook_sqs_seconds_since_last_message{{queue=\"{}\"}}",
            queue_name(&queue)
        )),
        "{metrics}"
    );
    let ready: Value = app.get("/readyz").await.json().await.unwrap();
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["queues"][0]["queue"], queue_name(&queue));
    assert_eq!(ready["queues"][0]["status"], "reachable");
}

#[tokio::test]
async fn a_forged_message_is_never_deleted_counted_as_refused_and_reaches_the_dead_letter_queue() {
    let sqs = client();
    let (queue, dlq) = create_queue_with_dlq(&sqs, 2).await;
    let app = spawn_app_with(|s| s.sqs = vec![queue_table(&queue, 1)]).await;
    let mut forged = app.notification(&delivery("sqs-forged", &["victim@example.com"]));
    forged["Message"] = Value::String(delivery("sqs-forged", &["attacker@example.com"]));
    let genuine = app.notification(&delivery("sqs-genuine", &["a@example.com"]));

    send(&sqs, &queue, &forged.to_string()).await;
    send(&sqs, &queue, &genuine.to_string()).await;
    send(&sqs, &queue, "not an SNS message").await;

    // Each failed receive leaves the message for its redrive policy: after two receives SQS
    // moves it to the dead-letter queue.
    eventually(
        "both refused messages are in the dead-letter queue",
        async || depth(&sqs, &dlq).await.0 == 2,
    )
    .await;
    assert_eq!(
        app.count("email_events"),
        1,
        "only the genuine message is stored"
    );
    assert_eq!(app.count("sns_messages"), 1);
    let metrics = app.metrics().await;
    assert_eq!(sqs_counter(&app, &queue, "stored").await, 1.0);
    assert!(
        sqs_counter(&app, &queue, "refused").await >= 2.0,
        "{metrics}"
    );
    assert_eq!(depth(&sqs, &queue).await, (0, 0));
}

#[tokio::test]
async fn bare_ses_records_are_stored_only_from_a_queue_configured_raw() {
    let sqs = client();
    let (plain, plain_dlq) = create_queue_with_dlq(&sqs, 1).await;
    let raw = create_queue(&sqs, &[]).await;
    let app = spawn_app_with(|s| {
        let mut raw_table = queue_table(&raw, 30);
        raw_table.raw = true;
        s.sqs = vec![queue_table(&plain, 1), raw_table];
    })
    .await;
    let record = delivery("sqs-raw-record", &["raw@example.com"]);

    send(&sqs, &plain, &record).await;
    send(&sqs, &raw, &record).await;
    // An envelope on a raw queue is still verified, and stored.
    let envelope = app.notification(&delivery("sqs-raw-envelope", &["env@example.com"]));
    send(&sqs, &raw, &envelope.to_string()).await;

    eventually("the raw queue is empty", async || {
        depth(&sqs, &raw).await == (0, 0)
    })
    .await;
    eventually(
        "the bare record on the plain queue is in its DLQ",
        async || depth(&sqs, &plain_dlq).await.0 == 1,
    )
    .await;
    let events = app.events();
    assert_eq!(events.len(), 2, "{events:?}");
    let from_raw = events
        .iter()
        .find(|e| e.recipient.as_deref() == Some("raw@example.com"))
        .unwrap();
    let raw_name = queue_name(&raw);
    assert!(
        from_raw
            .sns_message_id
            .starts_with(&format!("sqs:{raw_name}:")),
        "archived under an id derived from the SQS message: {}",
        from_raw.sns_message_id
    );
    assert!(sqs_counter(&app, &plain, "refused").await >= 1.0);
    // The raw record is archived under the queue's ARN in place of a topic.
    #[derive(diesel::QueryableByName)]
    struct Topic {
        #[diesel(sql_type = diesel::sql_types::Text)]
        topic_arn: String,
    }
    let topics: Vec<String> = diesel::RunQueryDsl::load::<Topic>(
        diesel::sql_query("SELECT topic_arn FROM sns_messages ORDER BY id"),
        &mut <diesel::PgConnection as diesel::Connection>::establish(app.db().url()).unwrap(),
    )
    .unwrap()
    .into_iter()
    .map(|t| t.topic_arn)
    .collect();
    assert!(
        topics.contains(&format!("arn:aws:sqs:us-east-1:123456789012:{raw_name}")),
        "{topics:?}"
    );
}

#[tokio::test]
async fn while_the_database_is_down_messages_stay_in_the_queue_then_are_stored_once() {
    let sqs = client();
    // A redrive policy as operations.md advises, but tight: receiving through the outage would
    // move the messages to the dead-letter queue after three receives (3 s).
    let (queue, dlq) = create_queue_with_dlq(&sqs, 3).await;
    let app = spawn_app_with(|s| s.sqs = vec![queue_table(&queue, 1)]).await;
    let name = app.db().url().rsplit('/').next().unwrap().to_owned();
    set_database_open(&name, false);

    for i in 0..5 {
        let envelope = app.notification(&delivery(&format!("sqs-down-{i}"), &["a@example.com"]));
        send(&sqs, &queue, &envelope.to_string()).await;
    }
    eventually("the pollers have met the outage", async || {
        sqs_counter(&app, &queue, "retry").await >= 1.0
    })
    .await;
    // An outage of several visibility timeouts: the pollers wait for the store meanwhile.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let (visible, in_flight) = depth(&sqs, &queue).await;
    assert_eq!(
        visible + in_flight,
        5,
        "nothing deleted while nothing is stored"
    );
    assert_eq!(depth(&sqs, &dlq).await, (0, 0), "nothing moved to the DLQ");
    set_database_open(&name, true);

    eventually("the queue is empty", async || {
        depth(&sqs, &queue).await == (0, 0)
    })
    .await;
    assert_eq!(app.count("email_events"), 5);
    assert_eq!(app.count("sns_messages"), 5);
    assert_eq!(depth(&sqs, &dlq).await, (0, 0));
}

#[tokio::test]
async fn two_servers_with_two_pollers_each_store_every_message_once() {
    let sqs = client();
    let queue = create_queue(&sqs, &[]).await;
    let app = spawn_app_with(|s| {
        let mut table = queue_table(&queue, 30);
        table.concurrency = 2;
        table.max_messages = 3;
        s.sqs = vec![table];
    })
    .await;
    let _second = app.second_server().await;
    let envelopes: Vec<String> = (0..60)
        .map(|i| {
            app.notification(&delivery(
                &format!("sqs-two-{i}"),
                &["a@example.com", "b@example.com"],
            ))
            .to_string()
        })
        .collect();

    for envelope in &envelopes {
        send(&sqs, &queue, envelope).await;
    }

    eventually("the queue is empty", async || {
        depth(&sqs, &queue).await == (0, 0)
    })
    .await;
    assert_eq!(app.count("email_events"), 120);
    assert_eq!(app.count("sns_messages"), 60);
}

#[tokio::test]
async fn drain_processes_a_queue_until_it_is_empty_and_says_what_it_left() {
    let sqs = client();
    let queue = create_queue(&sqs, &[]).await;
    // A server without queues: the drain is the only reader.
    let app = spawn_app_with(|_| {}).await;
    for i in 0..25 {
        let envelope = app.notification(&delivery(&format!("sqs-drain-{i}"), &["a@example.com"]));
        send(&sqs, &queue, &envelope.to_string()).await;
    }
    send(&sqs, &queue, "{\"not\": \"sns\"}").await;
    let mut settings = app.settings.clone();
    settings.database.migrate_on_start = false;

    let mut out = Vec::new();
    let clean = app::commands::drain(
        &settings,
        app::commands::DrainOptions {
            queue_url: queue.clone(),
            region: Some("us-east-1".into()),
            endpoint_url: Some(endpoint()),
            raw: false,
            wait_secs: 1,
        },
        &mut out,
    )
    .await
    .unwrap();

    let out = String::from_utf8(out).unwrap();
    assert!(!clean, "a message was left: {out}");
    assert!(
        out.contains(
            "26 received, 25 stored (25 new events), 0 duplicates, 1 refused (malformed_message: \
             1), 0 left for a retry, 0 not deleted"
        ),
        "{out}"
    );
    assert_eq!(app.count("email_events"), 25);
    let (visible, in_flight) = depth(&sqs, &queue).await;
    assert_eq!(visible + in_flight, 1, "only the refused message is left");
}

/// The real binary reading a queue, stopped with SIGTERM while it works through it, then
/// started again: every message is stored once, and the queue ends empty.
#[tokio::test]
async fn sigterm_mid_batch_loses_nothing_and_a_restart_stores_the_rest_once() {
    use crate::event_delivery::{free_port, server_binary, server_command};
    use adapters_store::testing::TestDatabase;
    use diesel::prelude::*;

    const MESSAGES: usize = 300;
    let sqs = client();
    let queue = create_queue(&sqs, &[]).await;
    let db = TestDatabase::from_env();
    let binary = server_binary().await;
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    let signer = sns_verify::testing::TestSigner::shared();
    signer.write_pinned(&certs).unwrap();
    let config = format!(
        "[server]\nhost = \"127.0.0.1\"\nport = {}\nworkers = 1\n\n\
         [database]\nurl = \"{}\"\nconnect_timeout_secs = 2\n\n\
         [sns]\ncert_dir = \"{}\"\nfetch_certificates = false\n\n\
         [log]\nlevel = \"info\"\n\n\
         [[sqs]]\nqueue_url = \"{queue}\"\nregion = \"us-east-1\"\nendpoint_url = \"{}\"\n\
         wait_secs = 1\nvisibility_timeout_secs = 5\nconcurrency = 2\n",
        free_port(),
        db.url(),
        certs.display(),
        endpoint()
    );
    std::fs::write(dir.path().join("default.toml"), config).unwrap();
    for i in 0..MESSAGES {
        let envelope = signer.notification(
            test_support::TOPIC,
            &format!("sqs-sigterm-{i}"),
            &delivery(&format!("sqs-sigterm-{i}"), &["a@example.com"]),
            None,
            sns_verify::SignatureVersion::V2,
        );
        send(&sqs, &queue, &envelope.to_string()).await;
    }
    // Before the first server's migrations, the table does not exist: 0.
    let rows = |table: &str| -> i64 {
        #[derive(QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let mut connection = PgConnection::establish(db.url()).unwrap();
        diesel::sql_query(format!("SELECT COUNT(*) AS n FROM {table}"))
            .load::<Count>(&mut connection)
            .map_or(0, |rows| rows[0].n)
    };
    let stored = || rows("sns_messages");
    let start = |log: &str| {
        let log = std::fs::File::create(dir.path().join(log)).unwrap();
        server_command(&binary, dir.path())
            .arg("serve")
            .arg("--no-http")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap()
    };

    let mut first = start("first.log");
    eventually("the first server has stored some messages", async || {
        stored() > 0
    })
    .await;
    let pid = first.id().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let exit = tokio::task::spawn_blocking(move || first.wait().unwrap())
        .await
        .unwrap();
    let log = std::fs::read_to_string(dir.path().join("first.log")).unwrap();
    assert!(exit.success(), "{exit:?}: {log}");
    assert!(log.contains("SQS pollers stopped"), "{log}");
    let stored_by_first = stored();
    let (visible, in_flight) = depth(&sqs, &queue).await;
    assert!(
        stored_by_first < i64::try_from(MESSAGES).unwrap(),
        "stopped before the end of the queue (else nothing was stopped mid-way)"
    );
    // Every message is stored, or still in the queue (deleted only once stored).
    assert!(
        u64::try_from(stored_by_first).unwrap() + visible + in_flight >= MESSAGES as u64,
        "lost: {stored_by_first} stored, {visible} visible, {in_flight} in flight"
    );

    let mut second = start("second.log");
    eventually("the queue is empty", async || {
        depth(&sqs, &queue).await == (0, 0)
    })
    .await;
    eventually("every message is stored", async || {
        stored() == i64::try_from(MESSAGES).unwrap()
    })
    .await;
    second.kill().unwrap();
    let _ = second.wait();
    assert_eq!(
        rows("email_events"),
        i64::try_from(MESSAGES).unwrap(),
        "each event once"
    );
}
