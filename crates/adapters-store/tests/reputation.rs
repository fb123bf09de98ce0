//! The reputation counts in the store, on both backends: what ingest adds (events newly
//! inserted, `Send`/`Reject`/`DeliveryDelay` records once per key), duplicates and both SES
//! formats counting once, concurrent writers, reprocess, the reads of the status page.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use adapters_store::{Backend, Store};
use chrono::{DateTime, Duration, TimeZone, Utc};
use common::*;
use domain::ports::SubscriptionState;
use domain::ports::{EventStore, MessageArchive, MessageOutcome, Reprocessed, SubscriptionChange};
use domain::reputation::{CountStore, Counts, RecordKind, RecordTally, record_key};
use domain::status::ActivityStore;
use domain::{BounceClass, EventType, PlatformEvent};
use serde_json::json;

fn t(hour: u32, minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 30, hour, minute, 0).unwrap()
}

fn event(key: &str, kind: EventType, set: Option<&str>, when: DateTime<Utc>) -> PlatformEvent {
    PlatformEvent {
        event_key: key.to_owned(),
        recipient: Some(format!("{key}@example.com")),
        bounce_type: (kind == EventType::Bounce).then_some(if key.contains("soft") {
            BounceClass::Soft
        } else {
            BounceClass::Hard
        }),
        tags: set.map(|s| json!({"ses:configuration-set": [s], "campaign": ["x"]})),
        ..PlatformEvent::new(kind, "ses-1", when)
    }
}

fn send(ses_id: &str, set: Option<&str>, recipients: u32, when: DateTime<Utc>) -> RecordTally {
    RecordTally {
        record_key: record_key(RecordKind::Send, ses_id, None),
        kind: RecordKind::Send,
        at: when,
        configuration_set: set.map(str::to_owned),
        count: recipients,
    }
}

async fn totals(store: &Store, set: Option<&str>) -> Counts {
    let rows = store
        .hourly_counts(t(0, 0), t(23, 59), set.map(str::to_owned))
        .await
        .unwrap();
    let mut sum = Counts::default();
    for row in rows {
        sum.add(&row.counts);
    }
    sum
}

async fn store_with(
    store: &Store,
    id: &str,
    events: Vec<PlatformEvent>,
    tally: Option<RecordTally>,
) {
    let mut archived = message(id);
    archived.tally = tally;
    store.store_notification(archived, events).await.unwrap();
}

both_backends!(events_and_records_are_counted_per_hour_and_configuration_set_once);
async fn events_and_records_are_counted_per_hour_and_configuration_set_once(backend: Backend) {
    let (_db, store) = migrated_store(backend, 2).await;
    store_with(
        &store,
        "sns-1",
        vec![
            event("d1", EventType::Delivered, Some("tx"), t(10, 5)),
            event("d2", EventType::Delivered, Some("tx"), t(11, 5)),
            event("hard1", EventType::Bounce, Some("tx"), t(11, 6)),
            event("soft1", EventType::Bounce, Some("tx"), t(11, 7)),
            event("c1", EventType::SpamReport, None, t(11, 8)),
            event("o1", EventType::Open, None, t(11, 9)),
            event("k1", EventType::Click, None, t(11, 9)),
            // A tag SES could not have written: no configuration set.
            event("d3", EventType::Delivered, Some("a@example.com"), t(11, 10)),
        ],
        Some(send("ses-1", Some("tx"), 3, t(10, 0))),
    )
    .await;
    // The same SNS message again, the same events under another SNS message (the other SES
    // format), and the same Send under another message (published to two topics): nothing new.
    store_with(
        &store,
        "sns-1",
        vec![event("d1", EventType::Delivered, Some("tx"), t(10, 5))],
        None,
    )
    .await;
    store_with(
        &store,
        "sns-2",
        vec![event("hard1", EventType::Bounce, None, t(11, 6))],
        Some(send("ses-1", Some("tx"), 3, t(10, 0))),
    )
    .await;
    // A reject and a delay, each once.
    let reject = RecordTally {
        record_key: record_key(RecordKind::Reject, "ses-2", None),
        kind: RecordKind::Reject,
        at: t(12, 0),
        configuration_set: Some("tx".into()),
        count: 1,
    };
    let delay = RecordTally {
        record_key: record_key(
            RecordKind::DeliveryDelay,
            "ses-1",
            Some("2026-11-30T12:30:00.000Z"),
        ),
        kind: RecordKind::DeliveryDelay,
        at: t(12, 30),
        configuration_set: Some("tx".into()),
        count: 2,
    };
    store_with(&store, "sns-3", vec![], Some(reject.clone())).await;
    store_with(&store, "sns-4", vec![], Some(reject)).await;
    store_with(&store, "sns-5", vec![], Some(delay)).await;

    let tx = totals(&store, Some("tx")).await;
    assert_eq!(
        tx,
        Counts {
            sent: 3,
            delivered: 2,
            hard_bounces: 1,
            soft_bounces: 1,
            complaints: 0,
            rejects: 1,
            delivery_delays: 2,
            opens: 0,
            clicks: 0,
        }
    );
    let none = totals(&store, Some("")).await;
    assert_eq!(
        none,
        Counts {
            delivered: 1,
            complaints: 1,
            opens: 1,
            clicks: 1,
            ..Counts::default()
        }
    );
    // Per hour: the send and d1 at 10:00, the rest of the events at 11:00.
    let rows = store.hourly_counts(t(0, 0), t(23, 0), None).await.unwrap();
    let at_ten: Vec<_> = rows.iter().filter(|r| r.hour == t(10, 0)).collect();
    assert_eq!(at_ten.len(), 1);
    assert_eq!(at_ten[0].configuration_set.as_deref(), Some("tx"));
    assert_eq!((at_ten[0].counts.sent, at_ten[0].counts.delivered), (3, 1));
    // The range is half-open on hour starts.
    let eleven_only = store.hourly_counts(t(11, 0), t(12, 0), None).await.unwrap();
    assert!(eleven_only.iter().all(|r| r.hour == t(11, 0)));
    assert_eq!(
        eleven_only.iter().map(|r| r.counts.delivered).sum::<u64>(),
        2
    );
}

both_backends!(concurrent_writers_count_every_event_exactly_once);
async fn concurrent_writers_count_every_event_exactly_once(backend: Backend) {
    let (db, store) = migrated_store(backend, 6).await;
    // The deltas are folded all the while, in small batches, by three folders at once (as
    // three server instances would).
    let writing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let folders: Vec<_> = (0..3)
        .map(|_| {
            let (store, writing) = (store.clone(), std::sync::Arc::clone(&writing));
            tokio::spawn(async move {
                let mut folded = 0;
                while writing.load(std::sync::atomic::Ordering::SeqCst) {
                    folded += store.fold_count_deltas(7).await.unwrap();
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                }
                folded
            })
        })
        .collect();
    let mut tasks = Vec::new();
    for writer in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..25 {
                // Every key is written by two writers: each counts once.
                let n = (writer / 2) * 25 + i;
                let events = vec![
                    event(
                        &format!("d{n}"),
                        EventType::Delivered,
                        Some("bulk"),
                        t(9, 0),
                    ),
                    event(
                        &format!("hard{n}"),
                        EventType::Bounce,
                        Some("bulk"),
                        t(9, 1),
                    ),
                ];
                let mut archived = message(&format!("sns-{writer}-{i}"));
                archived.tally = Some(send(&format!("ses-{n}"), Some("bulk"), 2, t(9, 0)));
                store.store_notification(archived, events).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    writing.store(false, std::sync::atomic::Ordering::SeqCst);
    let mut folded = 0;
    for folder in folders {
        folded += folder.await.unwrap();
    }
    let bulk = totals(&store, Some("bulk")).await;
    assert_eq!(
        (bulk.sent, bulk.delivered, bulk.hard_bounces),
        (200, 100, 100)
    );
    let left = count(&db, "email_count_deltas");
    assert_eq!(store.fold_count_deltas(1000).await.unwrap() as i64, left);
    if backend == Backend::Postgres {
        assert!(folded + left as usize > 0, "the batches appended deltas");
    }
    assert_eq!(count(&db, "email_count_deltas"), 0);
    let bulk = totals(&store, Some("bulk")).await;
    assert_eq!(
        (bulk.sent, bulk.delivered, bulk.hard_bounces),
        (200, 100, 100)
    );
}

both_backends!(reprocess_counts_a_send_once_and_retention_forgets_old_records);
async fn reprocess_counts_a_send_once_and_retention_forgets_old_records(backend: Backend) {
    let (db, store) = migrated_store(backend, 2).await;
    let mut archived = message("sns-send");
    archived.outcome = MessageOutcome::NoEvents;
    store.store_notification(archived, vec![]).await.unwrap();
    for _ in 0..2 {
        let update = Reprocessed {
            sns_message_id: "sns-send".into(),
            ses_type: Some("Send".into()),
            ses_message_id: Some("ses-9".into()),
            outcome: MessageOutcome::NoEvents,
            error_count: 0,
            error_detail: None,
            at: t(13, 0),
            tally: Some(send("ses-9", None, 4, t(12, 0))),
        };
        store.store_reprocessed(update, vec![]).await.unwrap();
    }
    assert_eq!(totals(&store, None).await.sent, 4);
    assert_eq!(count(&db, "counted_records"), 1);
    // Retention forgets the records counted before its cutoff; the counts stay.
    assert_eq!(store.purge_counted_records(t(12, 0), 100).await.unwrap(), 0);
    assert_eq!(count(&db, "counted_records"), 1);
    assert_eq!(
        store
            .purge_counted_records(t(12, 0) + Duration::hours(1), 100)
            .await
            .unwrap(),
        1
    );
    assert_eq!(count(&db, "counted_records"), 0);
    assert_eq!(totals(&store, None).await.sent, 4);
}

both_backends!(the_status_reads_give_subscriptions_topics_and_failures);
async fn the_status_reads_give_subscriptions_topics_and_failures(backend: Backend) {
    let (_db, store) = migrated_store(backend, 2).await;
    let mut failed = message("sns-failed");
    failed.outcome = MessageOutcome::Failed;
    failed.topic_arn = "arn:aws:sns:us-east-1:123456789012:b-topic".into();
    failed.received_at = t(8, 0);
    store.store_notification(failed, vec![]).await.unwrap();
    let mut ok = message("sns-ok");
    ok.received_at = t(9, 0);
    store.store_notification(ok, vec![]).await.unwrap();
    let mut later = message("sns-later");
    later.received_at = t(9, 30);
    store.store_notification(later, vec![]).await.unwrap();
    store
        .change_subscription(SubscriptionChange {
            topic_arn: "arn:aws:sns:us-east-1:123456789012:ses-events".into(),
            state: SubscriptionState::Confirmed,
            subscribe_url: None,
            at: t(7, 0),
        })
        .await
        .unwrap();

    let subscriptions = store.subscriptions().await.unwrap();
    assert_eq!(subscriptions.len(), 1);
    assert_eq!(subscriptions[0].state, SubscriptionState::Confirmed);
    let topics = store.topic_activity().await.unwrap();
    let topics: Vec<_> = topics
        .iter()
        .map(|a| (a.topic_arn.as_str(), a.last_notification_at))
        .collect();
    assert_eq!(
        topics,
        vec![
            ("arn:aws:sns:us-east-1:123456789012:b-topic", Some(t(8, 0))),
            (
                "arn:aws:sns:us-east-1:123456789012:ses-events",
                Some(t(9, 30))
            ),
        ]
    );
    let failures = store.recent_failures(20).await.unwrap();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].received_at, t(8, 0));
    assert_eq!(
        failures[0].reason.as_deref(),
        Some("recipient 3: no address")
    );
}

both_backends!(a_window_starts_at_each_sets_first_hour_with_a_send_and_days_are_utc);
async fn a_window_starts_at_each_sets_first_hour_with_a_send_and_days_are_utc(backend: Backend) {
    let (_db, store) = migrated_store(backend, 2).await;
    // `tx`: bounces of earlier sends at 08:00, its first send at 10:00, more bounces after.
    store_with(
        &store,
        "s1",
        vec![event("hard-a", EventType::Bounce, Some("tx"), t(8, 30))],
        None,
    )
    .await;
    store_with(
        &store,
        "s2",
        vec![],
        Some(send("ses-w", Some("tx"), 100, t(10, 0))),
    )
    .await;
    store_with(
        &store,
        "s3",
        vec![event("hard-b", EventType::Bounce, Some("tx"), t(11, 0))],
        None,
    )
    .await;
    // Without a configuration set, no send: every hour counts.
    store_with(
        &store,
        "s4",
        vec![event("hard-c", EventType::Bounce, None, t(7, 0))],
        None,
    )
    .await;
    let mut window = store.window_counts(t(0, 0), t(23, 0), None).await.unwrap();
    window.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(window.len(), 2);
    assert_eq!(window[0].0, None);
    assert_eq!(window[0].1.hard_bounces, 1);
    assert_eq!(window[1].0.as_deref(), Some("tx"));
    assert_eq!((window[1].1.sent, window[1].1.hard_bounces), (100, 1));
    let only = store
        .window_counts(t(0, 0), t(23, 0), Some("tx".into()))
        .await
        .unwrap();
    assert_eq!(only.len(), 1);
    // Days: one event just before midnight UTC, one just after.
    store_with(
        &store,
        "s5",
        vec![event("d-late", EventType::Delivered, None, t(23, 59))],
        None,
    )
    .await;
    let next = Utc.with_ymd_and_hms(2026, 12, 1, 0, 1, 0).unwrap();
    store_with(
        &store,
        "s6",
        vec![event("d-next", EventType::Delivered, None, next)],
        None,
    )
    .await;
    let mut days = store
        .daily_counts(t(0, 0), next + Duration::hours(1), None)
        .await
        .unwrap();
    days.sort_by_key(|d| d.0);
    assert_eq!(days.len(), 2);
    assert_eq!(days[0].0.to_string(), "2026-11-30");
    assert_eq!(
        (days[0].1.hard_bounces, days[0].1.sent, days[0].1.delivered),
        (3, 100, 1)
    );
    assert_eq!(days[1].0.to_string(), "2026-12-01");
    assert_eq!(days[1].1.delivered, 1);
}

/// Every hour's counts, per configuration set, in a stable order.
async fn every_hour(store: &Store) -> Vec<(DateTime<Utc>, Option<String>, Counts)> {
    let mut rows: Vec<_> = store
        .hourly_counts(t(0, 0), t(23, 59), None)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.hour, r.configuration_set, r.counts))
        .collect();
    rows.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    rows
}

both_backends!(deltas_are_folded_into_the_counts_without_changing_them);
async fn deltas_are_folded_into_the_counts_without_changing_them(backend: Backend) {
    let (db, store) = migrated_store(backend, 2).await;
    for i in 0..6 {
        store_with(
            &store,
            &format!("sns-{i}"),
            vec![
                event(
                    &format!("d{i}"),
                    EventType::Delivered,
                    Some("bulk"),
                    t(9, i),
                ),
                event(&format!("hard{i}"), EventType::Bounce, None, t(10, i)),
            ],
            Some(send(&format!("ses-{i}"), Some("bulk"), 3, t(9, 0))),
        )
        .await;
    }
    let before = every_hour(&store).await;
    let bulk = totals(&store, Some("bulk")).await;
    let none = totals(&store, None).await;
    assert_eq!(
        (bulk.sent, bulk.delivered, none.hard_bounces),
        (18, 6, 6),
        "the readers see the deltas before any fold"
    );

    // PostgreSQL's batches appended deltas; SQLite's writer added to the counts directly.
    // (Six batches of two hours and sets each; in batches of 5, three folds.)
    let deltas = count(&db, "email_count_deltas");
    let expected = match backend {
        Backend::Postgres => 12,
        Backend::Sqlite => 0,
    };
    assert_eq!(deltas, expected);
    let mut folded = Vec::new();
    loop {
        let n = store.fold_count_deltas(5).await.unwrap();
        folded.push(n);
        if n < 5 {
            break;
        }
    }
    match backend {
        Backend::Postgres => assert_eq!(folded, vec![5, 5, 2]),
        Backend::Sqlite => assert_eq!(folded, vec![0]),
    }
    assert_eq!(count(&db, "email_count_deltas"), 0);
    assert_eq!(every_hour(&store).await, before, "a fold changes no count");
    assert_eq!(
        count(&db, "email_counts"),
        2,
        "one row per hour and configuration set"
    );
    assert_eq!(count(&db, "email_counts WHERE shard <> 0"), 0);
    assert_eq!(store.fold_count_deltas(5).await.unwrap(), 0);

    // A count added to a folded hour still adds up, before and after the next fold.
    store_with(
        &store,
        "late",
        vec![event(
            "late-d",
            EventType::Delivered,
            Some("bulk"),
            t(9, 30),
        )],
        None,
    )
    .await;
    assert_eq!(totals(&store, Some("bulk")).await.delivered, 7);
    store.fold_count_deltas(5).await.unwrap();
    assert_eq!(totals(&store, Some("bulk")).await.delivered, 7);
    assert_eq!(count(&db, "email_counts"), 2);
}

/// The per-(hour, set) sums of `email_counts` (every shard) and of the deltas, in order, and
/// how many rows of `email_counts` are not shard 0.
fn stored_sums(db: &TestDb, with_deltas: bool) -> (Vec<(String, String, i64, i64)>, i64) {
    #[derive(diesel::QueryableByName, Debug, PartialEq)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        hour: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        configuration_set: String,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        sent: i64,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        clicks: i64,
    }
    let deltas = if with_deltas {
        " UNION ALL SELECT hour, configuration_set, sent, clicks FROM email_count_deltas"
    } else {
        ""
    };
    let sql = format!(
        "SELECT hour::text AS hour, configuration_set AS configuration_set, CAST(sum(sent) AS BIGINT) AS sent, \
         CAST(sum(clicks) AS BIGINT) AS clicks FROM (SELECT hour, configuration_set, sent, \
         clicks FROM email_counts{deltas}) c GROUP BY 1, 2 ORDER BY 1, 2"
    );
    let rows: Vec<Row> =
        with_conn!(db, c => diesel::RunQueryDsl::load(diesel::sql_query(&sql), c).unwrap());
    let sums = rows
        .into_iter()
        .map(|r| (r.hour, r.configuration_set, r.sent, r.clicks))
        .collect();
    (sums, count(db, "email_counts WHERE shard <> 0"))
}

/// The migration `2026-12-06-100000_count_deltas` on PostgreSQL, with data: its `down.sql`
/// folds the deltas into `email_counts` before dropping their table, its `up.sql` folds the
/// writer shards of older versions into shard 0; neither changes a sum.
#[tokio::test]
async fn the_count_deltas_migration_keeps_every_count_both_ways() {
    use diesel::connection::SimpleConnection;
    let (db, _store) = migrated_store(Backend::Postgres, 1).await;
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../migrations/postgres/2026-12-06-100000_count_deltas"
    );
    let script = |name: &str| std::fs::read_to_string(format!("{dir}/{name}")).unwrap();
    let run = |sql: String| with_conn!(db, c => c.batch_execute(&sql).unwrap());
    let insert = |table: &str, shard: bool, rows: &[(u32, &str, u32, i64, i64)]| {
        let values: Vec<String> = rows
            .iter()
            .map(|(hour, set, shard_no, sent, clicks)| {
                let shard = if shard {
                    format!("{shard_no}, ")
                } else {
                    String::new()
                };
                format!("('2026-11-30T{hour:02}:00:00Z', '{set}', {shard}{sent}, {clicks})")
            })
            .collect();
        let columns = if shard {
            "hour, configuration_set, shard, sent, clicks"
        } else {
            "hour, configuration_set, sent, clicks"
        };
        run(format!(
            "INSERT INTO {table} ({columns}) VALUES {}",
            values.join(", ")
        ));
    };

    // Down: deltas of a counted hour and of a new one are folded in, the table dropped.
    insert(
        "email_counts",
        true,
        &[(9, "bulk", 0, 10, 1), (10, "", 0, 20, 2)],
    );
    insert(
        "email_count_deltas",
        false,
        &[
            (9, "bulk", 0, 3, 1),
            (9, "bulk", 0, 4, 0),
            (11, "new", 0, 5, 5),
        ],
    );
    let before = stored_sums(&db, true);
    run(script("down.sql"));
    assert_eq!(stored_sums(&db, false), before);
    assert_eq!(count(&db, "email_counts"), 3);
    let dropped: i64 = count(&db, "pg_tables WHERE tablename = 'email_count_deltas'");
    assert_eq!(dropped, 0);

    // Up: rows of older versions' writer shards are folded into shard 0.
    insert(
        "email_counts",
        true,
        &[
            (9, "bulk", 3, 7, 7),
            (9, "bulk", 15, 1, 0),
            (10, "", 2, 2, 2),
            (12, "x", 4, 9, 9),
        ],
    );
    let before = stored_sums(&db, false);
    assert_eq!(before.1, 4);
    run(script("up.sql"));
    let after = stored_sums(&db, true);
    assert_eq!(after.0, before.0);
    assert_eq!(after.1, 0, "every row is shard 0");
    assert_eq!(count(&db, "email_counts"), 4, "one row per hour and set");
    assert_eq!(count(&db, "email_count_deltas"), 0);
}
