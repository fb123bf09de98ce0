//! The event history in the store, on both backends: every filter and their combinations
//! against an oracle, keyset pages while events arrive, one email's timeline, erasure,
//! retention, and the index each filter is read through.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::collections::HashSet;

use adapters_store::{Backend, Store};
use chrono::{DateTime, TimeDelta, Utc};
use common::*;
use domain::history::{
    ErasureRequest, EventFilter, EventPosition, EventQuery, StoredEvent, erasure_hash,
};
use domain::ports::{ArchivedMessage, EventStore, HistoryStore, MessageArchive, SuppressionStore};
use domain::suppression::{Actor, Address};
use domain::{BounceClass, EventType, PlatformEvent};
use serde_json::json;

/// An event of `kind` for `recipient` with `tags`, at `at(seconds)`.
fn event(
    key: &str,
    kind: EventType,
    recipient: Option<&str>,
    ses_id: &str,
    seconds: u32,
    tags: serde_json::Value,
) -> PlatformEvent {
    PlatformEvent {
        event_key: key.to_owned(),
        recipient: recipient.map(str::to_owned),
        bounce_type: (kind == EventType::Bounce).then_some(if key.contains("soft") {
            BounceClass::Soft
        } else {
            BounceClass::Hard
        }),
        tags: (!tags.is_null()).then_some(tags),
        ..PlatformEvent::new(kind, ses_id, at(seconds))
    }
}

/// A varied history: three addresses (one in two cases), five types, hard and soft bounces,
/// two configuration sets and a campaign tag, times 10 s apart (two share a time).
fn corpus() -> Vec<PlatformEvent> {
    let cs = |set: &str, campaign: Option<&str>| match campaign {
        Some(c) => json!({"ses:configuration-set": [set], "campaign": [c, "all"]}),
        None => json!({"ses:configuration-set": [set]}),
    };
    vec![
        event(
            "d1",
            EventType::Delivered,
            Some("John@Example.com"),
            "m1",
            10,
            cs("tx", None),
        ),
        event(
            "o1",
            EventType::Open,
            Some("john@example.com"),
            "m1",
            20,
            cs("tx", None),
        ),
        event(
            "c1",
            EventType::Click,
            Some("JOHN@example.com"),
            "m1",
            30,
            cs("tx", Some("spring")),
        ),
        event(
            "d2",
            EventType::Delivered,
            Some("ann@example.com"),
            "m2",
            40,
            cs("news", Some("spring")),
        ),
        event(
            "soft1",
            EventType::Bounce,
            Some("ann@example.com"),
            "m3",
            50,
            cs("news", Some("summer")),
        ),
        event(
            "hard1",
            EventType::Bounce,
            Some("bob@example.com"),
            "m4",
            60,
            cs("news", Some("summer")),
        ),
        event(
            "s1",
            EventType::SpamReport,
            Some("ann@example.com"),
            "m2",
            70,
            json!(null),
        ),
        event(
            "o2",
            EventType::Open,
            None,
            "m5",
            80,
            cs("news", Some("spring")),
        ),
        event(
            "soft2",
            EventType::Bounce,
            Some("John@example.com"),
            "m6",
            90,
            cs("tx", None),
        ),
        event(
            "d3",
            EventType::Delivered,
            Some("bob@example.com"),
            "m7",
            90,
            json!(null),
        ),
    ]
}

/// Whether `event` passes `filter`, computed here independently of the store.
fn matches(event: &PlatformEvent, filter: &EventFilter) -> bool {
    let recipient = filter.recipient.as_ref().is_none_or(|a| {
        event
            .recipient
            .as_deref()
            .is_some_and(|r| r.to_ascii_lowercase() == a.key())
    });
    let ses = filter
        .ses_message_id
        .as_ref()
        .is_none_or(|id| *id == event.ses_message_id);
    let types = filter.types.is_empty() || filter.types.contains(&event.event_type);
    let bounce = filter
        .bounce_type
        .is_none_or(|b| event.event_type == EventType::Bounce && event.bounce_type == Some(b));
    let since = filter.since.is_none_or(|s| event.event_time >= s);
    let until = filter.until.is_none_or(|u| event.event_time < u);
    let tags = filter.tags.iter().all(|(name, value)| {
        event.tags.as_ref().is_some_and(|t| {
            t[name]
                .as_array()
                .is_some_and(|values| values.iter().any(|v| v == value))
        })
    });
    recipient && ses && types && bounce && since && until && tags
}

async fn stored_corpus(backend: Backend) -> (TestDb, Store) {
    let (db, store) = migrated_store(backend, 2).await;
    // One message per event, in an order unrelated to their times.
    let mut events = corpus();
    events.reverse();
    for (i, event) in events.into_iter().enumerate() {
        store
            .store_notification(message(&format!("sns-{i}")), vec![event])
            .await
            .unwrap();
    }
    (db, store)
}

/// Every event matching `filter`, through pages of `limit`.
async fn all_pages(store: &Store, filter: &EventFilter, limit: usize) -> Vec<StoredEvent> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list_events(EventQuery {
                filter: filter.clone(),
                limit,
                after,
            })
            .await
            .unwrap();
        let done = page.len() < limit;
        after = page.last().map(|e| e.position);
        out.extend(page);
        if done {
            return out;
        }
    }
}

fn tag(name: &str, value: &str) -> (String, String) {
    (name.to_owned(), value.to_owned())
}

both_backends!(every_filter_and_combination_selects_exactly_the_matching_events_newest_first);
async fn every_filter_and_combination_selects_exactly_the_matching_events_newest_first(
    backend: Backend,
) {
    let (_db, store) = stored_corpus(backend).await;
    let john = || Some(Address::parse("jOhN@EXAMPLE.com").unwrap());
    let filters = [
        EventFilter::default(),
        EventFilter {
            recipient: john(),
            ..EventFilter::default()
        },
        EventFilter {
            ses_message_id: Some("m1".into()),
            ..EventFilter::default()
        },
        EventFilter {
            types: vec![EventType::Bounce],
            ..EventFilter::default()
        },
        EventFilter {
            types: vec![EventType::Open, EventType::Click, EventType::SpamReport],
            ..EventFilter::default()
        },
        EventFilter {
            bounce_type: Some(BounceClass::Soft),
            ..EventFilter::default()
        },
        EventFilter {
            bounce_type: Some(BounceClass::Hard),
            ..EventFilter::default()
        },
        EventFilter {
            since: Some(at(40)),
            until: Some(at(90)),
            ..EventFilter::default()
        },
        EventFilter {
            since: Some(at(90)),
            ..EventFilter::default()
        },
        EventFilter {
            tags: vec![tag("ses:configuration-set", "news")],
            ..EventFilter::default()
        },
        EventFilter {
            tags: vec![tag("campaign", "spring")],
            ..EventFilter::default()
        },
        EventFilter {
            tags: vec![tag("campaign", "all"), tag("ses:configuration-set", "tx")],
            ..EventFilter::default()
        },
        EventFilter {
            tags: vec![tag("campaign", "nothing")],
            ..EventFilter::default()
        },
        EventFilter {
            recipient: john(),
            types: vec![EventType::Bounce, EventType::Open],
            since: Some(at(20)),
            ..EventFilter::default()
        },
        EventFilter {
            recipient: Some(Address::parse("ann@example.com").unwrap()),
            bounce_type: Some(BounceClass::Soft),
            tags: vec![tag("campaign", "summer")],
            until: Some(at(51)),
            ..EventFilter::default()
        },
        EventFilter {
            ses_message_id: Some("m2".into()),
            types: vec![EventType::SpamReport],
            ..EventFilter::default()
        },
    ];
    let corpus = corpus();
    for filter in filters {
        let expected: Vec<&PlatformEvent> = corpus.iter().filter(|e| matches(e, &filter)).collect();
        let got = all_pages(&store, &filter, 3).await;
        let got_keys: HashSet<&str> = got.iter().map(|e| e.event.event_key.as_str()).collect();
        let expected_keys: HashSet<&str> = expected.iter().map(|e| e.event_key.as_str()).collect();
        assert_eq!(got_keys, expected_keys, "{filter:?}");
        assert_eq!(got.len(), expected.len(), "no event twice: {filter:?}");
        assert!(
            got.windows(2)
                .all(|w| (w[0].position.event_time, w[0].position.id)
                    > (w[1].position.event_time, w[1].position.id)),
            "newest first by (event time, id): {filter:?}"
        );
    }
}

both_backends!(an_event_reads_back_field_by_field);
async fn an_event_reads_back_field_by_field(backend: Backend) {
    let (_db, store) = migrated_store(backend, 2).await;
    let mut sent = event(
        "k-full",
        EventType::Bounce,
        Some("Some.One@Example.com"),
        "ses-full",
        5,
        json!({"campaign": ["x"]}),
    );
    sent.mail_time = Some(at(1));
    sent.source = Some("sender@example.com".into());
    sent.subject = Some("Hello".into());
    sent.ses_bounce_type = Some("Permanent".into());
    sent.bounce_subtype = Some("General".into());
    sent.action = Some("failed".into());
    sent.status = Some("5.1.1".into());
    sent.diagnostic_code = Some("smtp; 550".into());
    sent.feedback_id = Some("fb".into());
    sent.reporting_mta = Some("dsn; a.example".into());
    sent.remote_mta_ip = Some("192.0.2.1".into());
    sent.link_tags = Some(json!({"l": ["1"]}));
    sent.user_agent = Some("UA".into());
    sent.ip_address = Some("198.51.100.1".into());
    sent.processing_time_millis = Some(42);
    store
        .store_notification(message("sns-full"), vec![sent.clone()])
        .await
        .unwrap();
    let got = store
        .list_events(EventQuery {
            filter: EventFilter::default(),
            limit: 10,
            after: None,
        })
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].event, sent);
    assert_eq!(got[0].sns_message_id, "sns-full");
    assert!((Utc::now() - got[0].created_at).num_seconds().abs() < 60);
}

both_backends!(pages_neither_skip_nor_repeat_while_events_arrive);
async fn pages_neither_skip_nor_repeat_while_events_arrive(backend: Backend) {
    // Without a filter, and through a tag (on SQLite, the query driven by the tag's rows).
    for filter in [
        EventFilter::default(),
        EventFilter {
            tags: vec![tag("c", "x")],
            ..EventFilter::default()
        },
    ] {
        pages_while_events_arrive(backend, filter).await;
    }
}

async fn pages_while_events_arrive(backend: Backend, filter: EventFilter) {
    let (_db, store) = migrated_store(backend, 4).await;
    // 60 events, several sharing each time.
    let before: Vec<PlatformEvent> = (0..60_u32)
        .map(|i| {
            event(
                &format!("old-{i}"),
                EventType::Delivered,
                Some("a@example.com"),
                "m",
                100 + i / 3,
                json!({"c": ["x"]}),
            )
        })
        .collect();
    store
        .store_notification(message("sns-old"), before.clone())
        .await
        .unwrap();

    // Events keep arriving while the pages are read: newer, older, and at the times being
    // paged through.
    let writer = store.clone();
    let arriving = tokio::spawn(async move {
        for i in 0..40_u32 {
            let seconds = [90, 110, 125, 200][(i % 4) as usize];
            let e = event(
                &format!("new-{i}"),
                EventType::Delivered,
                Some("a@example.com"),
                "m",
                seconds,
                json!({"c": ["x"]}),
            );
            writer
                .store_notification(message(&format!("sns-new-{i}")), vec![e])
                .await
                .unwrap();
            tokio::task::yield_now().await;
        }
    });
    let mut seen = Vec::new();
    let mut after: Option<EventPosition> = None;
    loop {
        let page = store
            .list_events(EventQuery {
                filter: filter.clone(),
                limit: 7,
                after,
            })
            .await
            .unwrap();
        if let (Some(previous), Some(first)) = (after, page.first()) {
            assert!(
                (first.position.event_time, first.position.id) < (previous.event_time, previous.id),
                "a page starts after the cursor"
            );
        }
        let done = page.len() < 7;
        after = page.last().map(|e| e.position);
        seen.extend(page.into_iter().map(|e| e.event.event_key));
        if done {
            break;
        }
        tokio::task::yield_now().await;
    }
    arriving.await.unwrap();
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no event repeated");
    for e in &before {
        assert!(
            unique.contains(&e.event_key),
            "{} was stored before paging and skipped",
            e.event_key
        );
    }
}

both_backends!(a_timeline_holds_the_emails_events_oldest_first_and_every_message_about_it);
async fn a_timeline_holds_the_emails_events_oldest_first_and_every_message_about_it(
    backend: Backend,
) {
    let (_db, store) = migrated_store(backend, 2).await;
    let send = ArchivedMessage {
        ses_type: Some("Send".into()),
        ses_message_id: Some("ses-t".into()),
        outcome: domain::ports::MessageOutcome::NoEvents,
        received_at: at(1),
        ..message("sns-send")
    };
    store.store_notification(send, vec![]).await.unwrap();
    let delivered = event(
        "t-d",
        EventType::Delivered,
        Some("a@example.com"),
        "ses-t",
        30,
        json!(null),
    );
    let opened = event(
        "t-o",
        EventType::Open,
        Some("a@example.com"),
        "ses-t",
        40,
        json!(null),
    );
    // The open first, in a message archived before the SES id was recorded (no ses_message_id).
    store
        .store_notification(
            ArchivedMessage {
                received_at: at(5),
                ..message("sns-open")
            },
            vec![opened],
        )
        .await
        .unwrap();
    store
        .store_notification(
            ArchivedMessage {
                received_at: at(3),
                ses_message_id: Some("ses-t".into()),
                ..message("sns-delivery")
            },
            vec![delivered.clone()],
        )
        .await
        .unwrap();
    // The same delivery again under another SNS message: a duplicate, still about the email.
    store
        .store_notification(
            ArchivedMessage {
                received_at: at(4),
                ses_message_id: Some("ses-t".into()),
                ..message("sns-copy")
            },
            vec![delivered],
        )
        .await
        .unwrap();
    store
        .store_notification(
            message("sns-other"),
            vec![event(
                "x",
                EventType::Delivered,
                Some("b@example.com"),
                "ses-x",
                10,
                json!(null),
            )],
        )
        .await
        .unwrap();

    let timeline = store.message_timeline("ses-t".into()).await.unwrap();
    let keys: Vec<&str> = timeline
        .events
        .iter()
        .map(|e| e.event.event_key.as_str())
        .collect();
    assert_eq!(keys, ["t-d", "t-o"]);
    let messages: Vec<(&str, u32)> = timeline
        .messages
        .iter()
        .map(|m| (m.sns_message_id.as_str(), m.events_stored))
        .collect();
    assert_eq!(
        messages,
        [
            ("sns-send", 0),
            ("sns-delivery", 1),
            ("sns-copy", 0),
            ("sns-open", 1)
        ]
    );
    assert!(timeline.messages.iter().all(|m| m.raw_body_kept));
    assert_eq!(timeline.messages[0].ses_type.as_deref(), Some("Send"));

    let unknown = store.message_timeline("nothing".into()).await.unwrap();
    assert!(unknown.events.is_empty() && unknown.messages.is_empty());
}

/// The raw body of every archived message, by SNS message id.
fn raw_bodies(db: &TestDb) -> Vec<(String, Option<String>)> {
    use diesel::prelude::*;
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        sns_message_id: String,
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
        raw_body: Option<String>,
    }
    let rows: Vec<Row> = with_conn!(db, c => diesel::sql_query(
        "SELECT sns_message_id, raw_body FROM sns_messages ORDER BY sns_message_id"
    )
    .load(c)
    .unwrap());
    rows.into_iter()
        .map(|r| (r.sns_message_id, r.raw_body))
        .collect()
}

/// Every text of the `erasures` table, joined.
fn erasure_texts(db: &TestDb) -> String {
    use diesel::prelude::*;
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        address_hash: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        actor: String,
    }
    let rows: Vec<Row> = with_conn!(db, c => diesel::sql_query("SELECT address_hash, actor FROM erasures").load(c).unwrap());
    rows.into_iter()
        .map(|r| format!("{} {}", r.address_hash, r.actor))
        .collect::<Vec<_>>()
        .join("\n")
}

both_backends!(an_erasure_deletes_events_clears_bodies_keeps_the_entry_and_names_no_one);
async fn an_erasure_deletes_events_clears_bodies_keeps_the_entry_and_names_no_one(
    backend: Backend,
) {
    let (db, store) = migrated_store(backend, 2).await;
    // A hard bounce of John (suppresses him), his delivery in a message with Ann's delivery,
    // a copy of that delivery under another SNS message, and Ann's own events.
    store
        .store_notification(
            ArchivedMessage {
                ses_message_id: Some("m-bounce".into()),
                ..message("sns-bounce")
            },
            vec![event(
                "j-hard",
                EventType::Bounce,
                Some("John@Example.com"),
                "m-bounce",
                5,
                json!({"c": ["x"]}),
            )],
        )
        .await
        .unwrap();
    let both = vec![
        event(
            "j-d",
            EventType::Delivered,
            Some("john@example.com"),
            "m-both",
            6,
            json!(null),
        ),
        event(
            "a-d",
            EventType::Delivered,
            Some("ann@example.com"),
            "m-both",
            6,
            json!(null),
        ),
    ];
    store
        .store_notification(
            ArchivedMessage {
                ses_message_id: Some("m-both".into()),
                ..message("sns-both")
            },
            both.clone(),
        )
        .await
        .unwrap();
    store
        .store_notification(
            ArchivedMessage {
                ses_message_id: Some("m-both".into()),
                ..message("sns-both-copy")
            },
            both,
        )
        .await
        .unwrap();
    store
        .store_notification(
            message("sns-ann"),
            vec![event(
                "a-o",
                EventType::Open,
                Some("ann@example.com"),
                "m-ann",
                7,
                json!(null),
            )],
        )
        .await
        .unwrap();
    // A `Send` of another email to him: no event, but its body names him (in another case).
    store
        .store_notification(
            ArchivedMessage {
                ses_type: Some("Send".into()),
                ses_message_id: Some("m-send".into()),
                raw_body: r#"{"Type":"Notification","Message":"{\"mail\":{\"destination\":[\"John@EXAMPLE.com\"]}}"}"#.into(),
                ..message("sns-send")
            },
            vec![],
        )
        .await
        .unwrap();
    let john = Address::parse("JOHN@example.COM").unwrap();
    assert!(
        store
            .suppression(john.key().into())
            .await
            .unwrap()
            .is_some()
    );

    let report = store
        .erase_recipient(
            john.key().into(),
            erasure_hash(&john),
            ErasureRequest::default(),
            Actor::Token("support".into()),
            at(100),
        )
        .await
        .unwrap();
    assert_eq!(report.events_deleted, 2);
    assert_eq!(report.messages_cleared, 4);
    assert!(!report.suppression_removed && report.suppression_kept);
    assert_eq!(report.recorded_at, Some(at(100)));
    assert_eq!(report.previously_erased_at, None);

    let left: Vec<String> = all_pages(&store, &EventFilter::default(), 10)
        .await
        .into_iter()
        .map(|e| e.event.event_key)
        .collect();
    assert_eq!(left, ["a-o", "a-d"], "only Ann's events are left");
    let bodies = raw_bodies(&db);
    for (id, body) in &bodies {
        let cleared =
            ["sns-bounce", "sns-both", "sns-both-copy", "sns-send"].contains(&id.as_str());
        assert_eq!(body.is_none(), cleared, "{id}");
    }
    assert!(
        store
            .suppression(john.key().into())
            .await
            .unwrap()
            .is_some()
    );
    if backend == Backend::Sqlite {
        assert_eq!(
            count(&db, "email_event_tags"),
            0,
            "the bounce's tag rows went with it"
        );
    }
    let audit = erasure_texts(&db);
    assert!(audit.contains(&erasure_hash(&john)) && audit.contains("token:support"));
    assert!(!audit.to_ascii_lowercase().contains("john"), "{audit}");

    // Again: nothing left, nothing recorded, the earlier erasure named.
    let again = store
        .erase_recipient(
            john.key().into(),
            erasure_hash(&john),
            ErasureRequest::default(),
            Actor::Token("support".into()),
            at(200),
        )
        .await
        .unwrap();
    assert_eq!(
        (
            again.events_deleted,
            again.messages_cleared,
            again.recorded_at
        ),
        (0, 0, None)
    );
    assert_eq!(again.previously_erased_at, Some(at(100)));
    assert_eq!(count(&db, "erasures"), 1);
    assert_eq!(raw_bodies(&db), bodies);

    // Now without keeping the entry: it goes, with its history, and that is recorded.
    let removed = store
        .erase_recipient(
            john.key().into(),
            erasure_hash(&john),
            ErasureRequest {
                keep_suppression: false,
            },
            Actor::Command("erase"),
            at(300),
        )
        .await
        .unwrap();
    assert!(removed.suppression_removed && !removed.suppression_kept);
    assert_eq!(removed.history_deleted, 1);
    assert!(
        store
            .suppression(john.key().into())
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .suppression_history(john.key().into())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(count(&db, "erasures"), 2);
}

both_backends!(retention_deletes_old_events_and_old_messages_in_batches_and_nothing_else);
async fn retention_deletes_old_events_and_old_messages_in_batches_and_nothing_else(
    backend: Backend,
) {
    let (db, store) = migrated_store(backend, 2).await;
    let old: Vec<PlatformEvent> = (0..5_u32)
        .map(|i| {
            event(
                &format!("old-{i}"),
                EventType::Bounce,
                Some("gone@example.com"),
                "m-old",
                i,
                json!({"c": ["x"]}),
            )
        })
        .collect();
    store
        .store_notification(
            ArchivedMessage {
                received_at: at(0),
                ..message("sns-old")
            },
            old,
        )
        .await
        .unwrap();
    store
        .store_notification(
            ArchivedMessage {
                received_at: at(1000),
                ..message("sns-new")
            },
            vec![event(
                "new",
                EventType::Delivered,
                Some("a@example.com"),
                "m-new",
                1000,
                json!({"c": ["x"]}),
            )],
        )
        .await
        .unwrap();
    let cutoff = at(500);
    let mut batches = Vec::new();
    loop {
        let n = store.purge_events(cutoff, 2).await.unwrap();
        batches.push(n);
        if n < 2 {
            break;
        }
    }
    assert_eq!(batches, [2, 2, 1]);
    let left: Vec<String> = all_pages(&store, &EventFilter::default(), 10)
        .await
        .into_iter()
        .map(|e| e.event.event_key)
        .collect();
    assert_eq!(left, ["new"]);
    assert!(
        store
            .suppression("gone@example.com".into())
            .await
            .unwrap()
            .is_some(),
        "the suppression entry stays"
    );
    if backend == Backend::Sqlite {
        assert_eq!(count(&db, "email_event_tags"), 1);
    }
    assert_eq!(store.purge_messages(cutoff, 10).await.unwrap(), 1);
    assert_eq!(store.purge_messages(cutoff, 10).await.unwrap(), 0);
    let ids: Vec<String> = raw_bodies(&db).into_iter().map(|(id, _)| id).collect();
    assert_eq!(ids, ["sns-new"]);
    assert_eq!(
        count(&db, "email_events"),
        1,
        "purging messages leaves events"
    );
}

both_backends!(each_filter_is_read_through_its_index);
async fn each_filter_is_read_through_its_index(backend: Backend) {
    let (db, store) = stored_corpus(backend).await;
    if backend == Backend::Postgres {
        // Enough other events, with statistics, that a plan reflects selectivity rather than
        // the size of a ten-row table.
        with_conn!(db, c => diesel::connection::SimpleConnection::batch_execute(c,
            "INSERT INTO email_events (event_key, event_type, recipient, recipient_key, \
             ses_message_id, sns_message_id, event_time, tags) \
             SELECT 'filler-' || n, 'email_delivered', 'f' || n || '@example.com', \
             'f' || n || '@example.com', 'mf-' || n, 'sf-' || n, \
             '2024-04-01T00:00:00Z'::timestamptz + n * interval '1 minute', \
             '{\"campaign\": [\"other\"]}'::jsonb \
             FROM generate_series(1, 5000) AS n; ANALYZE email_events;",
        )
        .unwrap());
    }
    let now: DateTime<Utc> = at(0) + TimeDelta::days(1);
    let tag_index = match backend {
        Backend::Postgres => "email_events_tags_idx",
        Backend::Sqlite => "SEARCH email_event_tags USING PRIMARY KEY (name=? AND value=?)",
    };
    let cases = [
        (
            EventFilter {
                recipient: Some(Address::parse("John@Example.COM").unwrap()),
                ..EventFilter::default()
            },
            "email_events_recipient_key_event_time_idx",
        ),
        (
            EventFilter {
                ses_message_id: Some("m1".into()),
                ..EventFilter::default()
            },
            "email_events_ses_message_id_idx",
        ),
        (
            EventFilter {
                bounce_type: Some(BounceClass::Hard),
                since: Some(now - TimeDelta::days(1)),
                ..EventFilter::default()
            },
            "email_events_event_type_event_time_idx",
        ),
        (
            EventFilter {
                since: Some(now - TimeDelta::days(1)),
                ..EventFilter::default()
            },
            "email_events_event_time_id_idx",
        ),
        (EventFilter::default(), "email_events_event_time_id_idx"),
        (
            EventFilter {
                tags: vec![tag("campaign", "spring")],
                ..EventFilter::default()
            },
            tag_index,
        ),
    ];
    for (filter, index) in cases {
        let plan = store
            .explain_events(EventQuery {
                filter: filter.clone(),
                limit: 101,
                after: None,
            })
            .await
            .unwrap();
        assert!(
            plan.contains(index),
            "{filter:?} should read {index}:\n{plan}"
        );
        assert!(
            !plan.contains("Seq Scan")
                && !plan.contains("SCAN email_events\n")
                && !plan.ends_with("SCAN email_events"),
            "{filter:?} scans the table:\n{plan}"
        );
    }
}

/// The plan of `sql` on `db` (PostgreSQL with sequential scans disabled, SQLite's `EXPLAIN
/// QUERY PLAN`), one line per step.
fn plan_of(db: &TestDb, sql: &str) -> String {
    use diesel::prelude::*;
    #[derive(QueryableByName)]
    struct PgLine {
        #[diesel(sql_type = diesel::sql_types::Text, column_name = "QUERY PLAN")]
        line: String,
    }
    #[derive(QueryableByName)]
    struct SqliteLine {
        #[diesel(sql_type = diesel::sql_types::Text)]
        detail: String,
    }
    match db.connect() {
        Conn::Postgres(mut c) => {
            diesel::sql_query("SET enable_seqscan = off")
                .execute(&mut c)
                .unwrap();
            diesel::sql_query(format!("EXPLAIN {sql}"))
                .load::<PgLine>(&mut c)
                .unwrap()
                .into_iter()
                .map(|l| l.line)
                .collect::<Vec<_>>()
                .join("\n")
        }
        Conn::Sqlite(mut c) => diesel::sql_query(format!("EXPLAIN QUERY PLAN {sql}"))
            .load::<SqliteLine>(&mut c)
            .unwrap()
            .into_iter()
            .map(|l| l.detail)
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

both_backends!(the_event_time_index_serves_only_queries_that_ask_for_it);
/// The suppression policy reads an address's recent events by key and time; were the index
/// on (event_time, id) usable for them, a planner without statistics (a new installation, a
/// truncated table) could read every recent event of every address instead: that halved the
/// webhook's throughput once. The index is partial on `id > 0`, which only the history's
/// queries state.
async fn the_event_time_index_serves_only_queries_that_ask_for_it(backend: Backend) {
    let (db, _store) = stored_corpus(backend).await;
    let (since, until) = match backend {
        Backend::Postgres => (
            "'2024-04-24T12:00:00Z'::timestamptz",
            "'2024-05-08T12:00:00Z'::timestamptz",
        ),
        Backend::Sqlite => (
            "'2024-04-24T12:00:00.000000Z'",
            "'2024-05-08T12:00:00.000000Z'",
        ),
    };
    let policy_reads = [
        format!(
            "SELECT event_key FROM email_events WHERE recipient_key = 'john@example.com' \
             AND event_time >= {since} AND event_time <= {until}"
        ),
        "SELECT event_time FROM email_events WHERE recipient_key = 'john@example.com' \
         AND event_type || '' = 'email_delivered' ORDER BY event_time DESC LIMIT 1"
            .to_owned(),
        format!(
            "SELECT id FROM email_events WHERE event_time >= {since} ORDER BY event_time DESC LIMIT 1"
        ),
    ];
    for sql in &policy_reads {
        let plan = plan_of(&db, sql);
        assert!(
            !plan.contains("email_events_event_time_id_idx"),
            "{sql}\n{plan}"
        );
    }
    let asked = format!(
        "SELECT id FROM email_events WHERE id > 0 AND event_time >= {since} \
         ORDER BY event_time DESC, id DESC LIMIT 1"
    );
    let plan = plan_of(&db, &asked);
    assert!(plan.contains("email_events_event_time_id_idx"), "{plan}");
}

both_backends!(an_erasure_deletes_the_history_of_a_removed_entry_and_spares_longer_addresses);
async fn an_erasure_deletes_the_history_of_a_removed_entry_and_spares_longer_addresses(
    backend: Backend,
) {
    let (db, store) = migrated_store(backend, 2).await;
    let carol = Address::parse("Carol@example.com").unwrap();
    let entry = domain::suppression::SuppressionEntry {
        address: carol.as_str().to_owned(),
        reason: domain::suppression::SuppressionReason::Manual,
        created_at: at(1),
        expires_at: None,
        ses_message_id: None,
        event_key: None,
        note: None,
    };
    store
        .put_suppression(carol.clone(), entry, Actor::Token("crm".into()))
        .await
        .unwrap();
    assert!(
        store
            .remove_suppression(carol.key().into(), Actor::Token("crm".into()), at(2))
            .await
            .unwrap()
    );
    // Two archived bodies: one names a longer address that contains hers, one names her.
    for (id, to) in [
        ("sns-longer", "mcarol@example.com"),
        ("sns-hers", "CAROL@example.com"),
    ] {
        store
            .store_notification(
                ArchivedMessage {
                    raw_body: format!(r#"{{"Message":"{{\"destination\":[\"{to}\"]}}"}}"#),
                    ..message(id)
                },
                vec![],
            )
            .await
            .unwrap();
    }

    let report = store
        .erase_recipient(
            carol.key().into(),
            erasure_hash(&carol),
            ErasureRequest::default(),
            Actor::Command("erase"),
            at(3),
        )
        .await
        .unwrap();
    assert_eq!(report.history_deleted, 2, "added and removed");
    assert!(!report.suppression_kept && !report.suppression_removed);
    assert_eq!(report.messages_cleared, 1);
    assert!(
        store
            .suppression_history(carol.key().into())
            .await
            .unwrap()
            .is_empty()
    );
    let bodies = raw_bodies(&db);
    assert_eq!(
        bodies
            .iter()
            .map(|(id, body)| (id.as_str(), body.is_some()))
            .collect::<Vec<_>>(),
        [("sns-hers", false), ("sns-longer", true)]
    );
    assert_eq!(count(&db, "erasures"), 1);
}
