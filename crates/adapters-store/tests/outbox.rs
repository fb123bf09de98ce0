//! The transactional outbox in the store, on both backends: one entry per new event and sink
//! that takes its type, written with the event (a duplicate adds nothing), one per
//! suppression-list change, and none without sinks.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::sync::Arc;

use adapters_store::{Backend, Store};
use chrono::{TimeDelta, Utc};
use common::*;
use domain::delivery::{
    EntryQuery, EntrySource, EntryState, OutboxEntry, OutboxStore, SUPPRESSION_ADDED,
    SUPPRESSION_REMOVED, SinkFilter,
};
use domain::ports::{
    EventStore, MessageArchive, MessageOutcome, NoObserver, Reprocessed, SuppressionStore,
};
use domain::suppression::{Actor, SuppressionPolicy};
use domain::{BounceClass, EventType, PlatformEvent};

fn event(key: &str, kind: EventType) -> PlatformEvent {
    PlatformEvent {
        event_key: key.to_owned(),
        recipient: Some(format!("{key}@example.com")),
        bounce_type: (kind == EventType::Bounce).then_some(BounceClass::Hard),
        ..PlatformEvent::new(
            kind,
            &format!("ses-{key}"),
            Utc::now() - TimeDelta::minutes(1),
        )
    }
}

fn sinks() -> Vec<SinkFilter> {
    vec![
        SinkFilter {
            name: "all".into(),
            entry_types: None,
        },
        SinkFilter {
            name: "bounces".into(),
            entry_types: Some(vec!["email_bounce".into(), SUPPRESSION_ADDED.into()]),
        },
    ]
}

async fn entries(store: &Store, sink: &str) -> Vec<OutboxEntry> {
    store
        .outbox_entries(EntryQuery {
            sink: Some(sink.into()),
            state: None,
            after_id: None,
            limit: 1000,
        })
        .await
        .unwrap()
}

/// Id and type of the entries of events (the hard bounces of these tests also add their
/// recipients to the suppression list, which has entries of its own).
fn ids(entries: &[OutboxEntry]) -> Vec<(&str, &str)> {
    entries
        .iter()
        .filter(|e| matches!(e.source, EntrySource::Event(_)))
        .map(|e| (e.entry_id.as_str(), e.entry_type.as_str()))
        .collect()
}

both_backends!(each_new_event_is_written_once_for_each_sink_that_takes_it);
async fn each_new_event_is_written_once_for_each_sink_that_takes_it(backend: Backend) {
    let (db, store) = migrated_store(backend, 2).await;
    // Before any sink: nothing is written.
    store
        .store_notification(message("m-0"), vec![event("early", EventType::Delivered)])
        .await
        .unwrap();
    assert_eq!(count(&db, "outbox"), 0);

    assert!(store.sync_sinks(sinks()).await.unwrap().removed.is_empty());
    store
        .store_notification(
            message("m-1"),
            vec![
                event("d1", EventType::Delivered),
                event("b1", EventType::Bounce),
            ],
        )
        .await
        .unwrap();
    // The same message again, and the same bounce under another message (the other SES
    // format): nothing new.
    store
        .store_notification(message("m-1"), vec![event("d1", EventType::Delivered)])
        .await
        .unwrap();
    store
        .store_notification(message("m-2"), vec![event("b1", EventType::Bounce)])
        .await
        .unwrap();
    // A batch of several notifications (the group commit), one of them a duplicate.
    adapters_store::testing::store_as_one_batch(
        &store,
        vec![
            (message("m-3"), vec![event("o1", EventType::Open)]),
            (message("m-4"), vec![event("b1", EventType::Bounce)]),
            (message("m-5"), vec![event("b2", EventType::Bounce)]),
        ],
    )
    .await
    .unwrap();

    let all = entries(&store, "all").await;
    let mut got = ids(&all);
    got.sort_unstable();
    assert_eq!(
        got,
        vec![
            ("b1", "email_bounce"),
            ("b2", "email_bounce"),
            ("d1", "email_delivered"),
            ("o1", "email_open"),
        ]
    );
    let bounces = entries(&store, "bounces").await;
    let mut got = ids(&bounces);
    got.sort_unstable();
    assert_eq!(got, vec![("b1", "email_bounce"), ("b2", "email_bounce")]);
    for e in all
        .iter()
        .chain(&bounces)
        .filter(|e| e.entry_type.starts_with("email_"))
    {
        assert_eq!(e.state, EntryState::Pending);
        assert_eq!(e.attempts, 0);
        assert!(
            matches!(e.source, EntrySource::Event(id) if id > 0),
            "{e:?}"
        );
        assert!(
            e.next_attempt_at <= Utc::now() + TimeDelta::seconds(1),
            "{e:?}"
        );
        assert_eq!(e.last_error, None);
    }
    // And the two hard bounces' suppression entries, once each, for both sinks.
    assert_eq!(count(&db, "outbox"), 6 + 4);
    assert_eq!(count(&db, "outbox WHERE history_id IS NOT NULL"), 4);
}

both_backends!(reprocessed_events_are_written_like_new_ones);
async fn reprocessed_events_are_written_like_new_ones(backend: Backend) {
    let (_db, store) = migrated_store(backend, 2).await;
    store.sync_sinks(sinks()).await.unwrap();
    let mut failed = message("m-1");
    failed.outcome = MessageOutcome::Failed;
    store.store_notification(failed, vec![]).await.unwrap();
    for _ in 0..2 {
        let update = Reprocessed {
            sns_message_id: "m-1".into(),
            ses_type: Some("Bounce".into()),
            ses_message_id: Some("ses-r1".into()),
            outcome: MessageOutcome::Processed,
            error_count: 0,
            error_detail: None,
            at: Utc::now(),
            tally: None,
        };
        store
            .store_reprocessed(update, vec![event("r1", EventType::Bounce)])
            .await
            .unwrap();
    }
    assert_eq!(
        ids(&entries(&store, "bounces").await),
        vec![("r1", "email_bounce")]
    );
}

both_backends!(suppression_changes_are_written_for_the_sinks_that_take_them);
async fn suppression_changes_are_written_for_the_sinks_that_take_them(backend: Backend) {
    let db = TestDb::new(backend);
    let store = Store::connect_with_policy(
        db.url(),
        options(2),
        SuppressionPolicy::default(),
        Arc::new(NoObserver),
    )
    .unwrap();
    store.run_migrations().await.unwrap();
    store.sync_sinks(sinks()).await.unwrap();
    // A hard bounce: the policy adds the address, in the batch's transaction.
    store
        .store_notification(message("m-1"), vec![event("b1", EventType::Bounce)])
        .await
        .unwrap();
    let removed = store
        .remove_suppression(
            "b1@example.com".into(),
            Actor::Token("crm".into()),
            Utc::now(),
        )
        .await
        .unwrap();
    assert!(removed);

    let all = entries(&store, "all").await;
    let types: Vec<&str> = all.iter().map(|e| e.entry_type.as_str()).collect();
    assert_eq!(
        types,
        vec!["email_bounce", SUPPRESSION_ADDED, SUPPRESSION_REMOVED],
        "{all:?}"
    );
    for e in &all[1..] {
        let EntrySource::SuppressionChange(id) = e.source else {
            panic!("{e:?}");
        };
        assert_eq!(e.entry_id, format!("suppression-{id}"));
    }
    // The bounces sink takes additions only.
    let bounces = entries(&store, "bounces").await;
    let types: Vec<&str> = bounces.iter().map(|e| e.entry_type.as_str()).collect();
    assert_eq!(types, vec!["email_bounce", SUPPRESSION_ADDED]);
}

both_backends!(syncing_replaces_the_sinks_and_names_those_removed);
async fn syncing_replaces_the_sinks_and_names_those_removed(backend: Backend) {
    let (_db, store) = migrated_store(backend, 2).await;
    store.sync_sinks(sinks()).await.unwrap();
    let sync = store
        .sync_sinks(vec![SinkFilter {
            name: "bounces".into(),
            entry_types: Some(vec!["email_delivered".into()]),
        }])
        .await
        .unwrap();
    assert_eq!(sync.removed, vec!["all".to_owned()]);
    store
        .store_notification(
            message("m-1"),
            vec![
                event("d1", EventType::Delivered),
                event("b1", EventType::Bounce),
            ],
        )
        .await
        .unwrap();
    assert!(entries(&store, "all").await.is_empty());
    assert_eq!(
        ids(&entries(&store, "bounces").await),
        vec![("d1", "email_delivered")]
    );
    // Paging and filters.
    let page = store
        .outbox_entries(EntryQuery {
            sink: None,
            state: Some(EntryState::Delivered),
            after_id: None,
            limit: 10,
        })
        .await
        .unwrap();
    assert!(page.is_empty());
    assert!(store.sync_sinks(vec![]).await.unwrap().removed == vec!["bounces".to_owned()]);
}
