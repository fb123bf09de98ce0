//! The transactional outbox in the store, on both backends: one entry per new event and sink
//! that takes its type, written with the event (a duplicate adds nothing), one per
//! suppression-list change, and none without sinks.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::sync::Arc;

use adapters_store::{Backend, Store};
use chrono::{SubsecRound, TimeDelta, Utc};
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

/// A store with the two sinks and `n` delivered events (`e0`, `e1`, ...), each its own entry
/// for the sink `all`.
async fn with_entries(backend: Backend, n: usize) -> (TestDb, Store) {
    let (db, store) = migrated_store(backend, 4).await;
    store.sync_sinks(sinks()).await.unwrap();
    let events = (0..n)
        .map(|i| event(&format!("e{i}"), EventType::Delivered))
        .collect();
    store
        .store_notification(message("m-1"), events)
        .await
        .unwrap();
    (db, store)
}

async fn by_id(store: &Store, id: i64) -> OutboxEntry {
    entries(store, "all")
        .await
        .into_iter()
        .find(|e| e.id == id)
        .unwrap()
}

async fn claim(store: &Store, now: chrono::DateTime<Utc>, limit: usize) -> Vec<OutboxEntry> {
    store
        .claim_entries("all".into(), limit, now, TimeDelta::seconds(30))
        .await
        .unwrap()
}

both_backends!(claims_hold_entries_for_their_lease_and_settlements_record_outcomes);
async fn claims_hold_entries_for_their_lease_and_settlements_record_outcomes(backend: Backend) {
    use domain::delivery::{AttemptOutcome, Settlement};
    let (_db, store) = with_entries(backend, 5).await;
    // Whole microseconds, as both backends store instants.
    let now = (Utc::now() + TimeDelta::seconds(1)).trunc_subsecs(6);
    let first = claim(&store, now, 3).await;
    assert_eq!(first.len(), 3);
    for e in &first {
        assert_eq!(e.sink, "all");
        assert_eq!(e.lease_until.map(|l| (l - now).num_seconds()), Some(30));
    }
    // What is claimed is not claimed again while the lease holds.
    let second = claim(&store, now, 10).await;
    assert_eq!(second.len(), 2);
    assert!(second.iter().all(|e| first.iter().all(|f| f.id != e.id)));
    assert!(claim(&store, now, 10).await.is_empty());

    // One delivered, one to retry in a minute, one dead; the other two are left to their lease.
    let settle = |e: &OutboxEntry, outcome| Settlement {
        id: e.id,
        lease_until: e.lease_until.unwrap(),
        attempted_at: now,
        outcome,
    };
    let retry_at = now + TimeDelta::minutes(1);
    let recorded = store
        .settle_entries(vec![
            settle(&first[0], AttemptOutcome::Delivered),
            settle(
                &first[1],
                AttemptOutcome::Retry {
                    at: retry_at,
                    error: "HTTP 503".into(),
                },
            ),
            settle(
                &first[2],
                AttemptOutcome::Dead {
                    error: "HTTP 410".into(),
                },
            ),
        ])
        .await
        .unwrap();
    assert_eq!(recorded, 3);
    let delivered = by_id(&store, first[0].id).await;
    assert_eq!(delivered.state, EntryState::Delivered);
    assert_eq!(delivered.attempts, 1);
    assert_eq!(delivered.lease_until, None);
    assert!(delivered.settled_at.is_some());
    let retried = by_id(&store, first[1].id).await;
    assert_eq!(retried.state, EntryState::Pending);
    assert_eq!(retried.attempts, 1);
    assert_eq!(retried.last_error.as_deref(), Some("HTTP 503"));
    assert_eq!(
        retried.next_attempt_at.timestamp_micros(),
        retry_at.timestamp_micros()
    );
    let dead = by_id(&store, first[2].id).await;
    assert_eq!(dead.state, EntryState::Dead);
    assert_eq!(dead.last_error.as_deref(), Some("HTTP 410"));

    // A minute later, once the leases ran out: the retried entry and the two whose relay
    // vanished are claimed again; the delivered and the dead one are not.
    let later = retry_at + TimeDelta::seconds(1);
    let again = claim(&store, later, 10).await;
    let mut ids: Vec<i64> = again.iter().map(|e| e.id).collect();
    ids.sort_unstable();
    let mut expected = vec![first[1].id, second[0].id, second[1].id];
    expected.sort_unstable();
    assert_eq!(ids, expected);
    // A settlement under the old claim of an entry claimed again is not recorded.
    let stale = store
        .settle_entries(vec![settle(&second[0], AttemptOutcome::Delivered)])
        .await
        .unwrap();
    assert_eq!(stale, 0);
    assert_eq!(by_id(&store, second[0].id).await.state, EntryState::Pending);
}

/// Two servers sharing PostgreSQL claim at once: each entry goes to one of them.
#[tokio::test]
async fn concurrent_claims_on_postgres_never_share_an_entry() {
    let (db, store) = with_entries(Backend::Postgres, 200).await;
    let other = Store::connect(db.url(), options(4)).unwrap();
    let now = Utc::now() + TimeDelta::seconds(1);
    let mut tasks = Vec::new();
    for server in [store.clone(), other.clone(), store, other] {
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let batch = server
                    .claim_entries("all".into(), 7, now, TimeDelta::seconds(30))
                    .await
                    .unwrap();
                if batch.is_empty() {
                    return got;
                }
                got.extend(batch.into_iter().map(|e| e.id));
            }
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    let claimed = all.len();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), claimed, "an entry was claimed twice");
    assert_eq!(claimed, 200);
}

both_backends!(sources_are_the_events_and_changes_that_still_exist);
async fn sources_are_the_events_and_changes_that_still_exist(backend: Backend) {
    use domain::suppression::{HistoryAction, SuppressionReason};
    let (db, store) = migrated_store(backend, 2).await;
    store.sync_sinks(sinks()).await.unwrap();
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
    let all = entries(&store, "all").await;
    let mut event_ids = Vec::new();
    let mut history_ids = Vec::new();
    for e in &all {
        match e.source {
            EntrySource::Event(id) => event_ids.push(id),
            EntrySource::SuppressionChange(id) => history_ids.push(id),
        }
    }
    assert_eq!((event_ids.len(), history_ids.len()), (2, 1));
    // The delivery is erased (as an erasure or retention would) before it is delivered.
    with_conn!(db, c => diesel::RunQueryDsl::execute(
        diesel::sql_query("DELETE FROM email_events WHERE event_key = 'd1'"),
        c
    )
    .unwrap());
    let sources = store
        .entry_sources(event_ids.clone(), history_ids.clone())
        .await
        .unwrap();
    assert_eq!(sources.events.len(), 1);
    let bounce = &sources.events[0];
    assert_eq!(bounce.event.event_key, "b1");
    assert_eq!(bounce.event.recipient.as_deref(), Some("b1@example.com"));
    assert!(event_ids.contains(&bounce.position.id));
    assert_eq!(sources.changes.len(), 1);
    let change = &sources.changes[0];
    assert_eq!(change.id, history_ids[0]);
    assert_eq!(change.action, HistoryAction::Added);
    assert_eq!(change.entry.address, "b1@example.com");
    assert_eq!(change.entry.reason, SuppressionReason::HardBounce);
    assert_eq!(change.entry.event_key.as_deref(), Some("b1"));
    // Nothing asked, nothing read.
    let none = store.entry_sources(vec![], vec![]).await.unwrap();
    assert!(none.events.is_empty() && none.changes.is_empty());
}

both_backends!(entries_page_by_id_and_a_claim_needs_a_lease);
async fn entries_page_by_id_and_a_claim_needs_a_lease(backend: Backend) {
    let (_db, store) = with_entries(backend, 5).await;
    let page = |after_id| {
        let store = store.clone();
        async move {
            store
                .outbox_entries(EntryQuery {
                    sink: Some("all".into()),
                    state: Some(EntryState::Pending),
                    after_id,
                    limit: 2,
                })
                .await
                .unwrap()
        }
    };
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let items = page(after).await;
        if items.is_empty() {
            break;
        }
        assert!(items.len() <= 2);
        after = items.last().map(|e| e.id);
        seen.extend(items.into_iter().map(|e| e.entry_id));
    }
    seen.sort_unstable();
    assert_eq!(seen, vec!["e0", "e1", "e2", "e3", "e4"]);
    for lease in [TimeDelta::zero(), TimeDelta::seconds(-1)] {
        assert!(
            store
                .claim_entries("all".into(), 10, Utc::now(), lease)
                .await
                .is_err()
        );
    }
}

/// Settles every due entry of the sink `all` with `outcome` at `now`.
async fn settle_all(
    store: &Store,
    now: chrono::DateTime<Utc>,
    outcome: impl Fn(&OutboxEntry) -> domain::delivery::AttemptOutcome,
) -> usize {
    use domain::delivery::Settlement;
    let claimed = claim(store, now, 1000).await;
    let settlements = claimed
        .iter()
        .map(|e| Settlement {
            id: e.id,
            lease_until: e.lease_until.unwrap(),
            attempted_at: now,
            outcome: outcome(e),
        })
        .collect();
    store.settle_entries(settlements).await.unwrap()
}

both_backends!(replay_by_state_makes_dead_or_delivered_entries_due_again);
async fn replay_by_state_makes_dead_or_delivered_entries_due_again(backend: Backend) {
    use domain::delivery::{AttemptOutcome, ReplayScope};
    let (_db, store) = with_entries(backend, 4).await;
    let now = (Utc::now() + TimeDelta::seconds(1)).trunc_subsecs(6);
    // e0 and e1 delivered, e2 and e3 dead.
    let settled = settle_all(&store, now, |e| {
        if e.entry_id == "e0" || e.entry_id == "e1" {
            AttemptOutcome::Delivered
        } else {
            AttemptOutcome::Dead {
                error: "HTTP 410".into(),
            }
        }
    })
    .await;
    assert_eq!(settled, 4);
    // A replay of the sink `bounces` touches nothing of `all`.
    let none = store
        .replay_entries(
            ReplayScope::State {
                sink: "bounces".into(),
                state: EntryState::Dead,
                since: None,
            },
            now,
        )
        .await
        .unwrap();
    assert_eq!(none.replayed, 0);
    // Entries written after `since` only: none here.
    let later = store
        .replay_entries(
            ReplayScope::State {
                sink: "all".into(),
                state: EntryState::Dead,
                since: Some(now + TimeDelta::hours(1)),
            },
            now,
        )
        .await
        .unwrap();
    assert_eq!(later.replayed, 0);

    let replay_at = now + TimeDelta::seconds(5);
    let dead = store
        .replay_entries(
            ReplayScope::State {
                sink: "all".into(),
                state: EntryState::Dead,
                since: Some(now - TimeDelta::hours(1)),
            },
            replay_at,
        )
        .await
        .unwrap();
    assert_eq!(dead.replayed, 2);
    assert!(dead.not_found.is_empty());
    let all = entries(&store, "all").await;
    let state_of = |key: &str| {
        all.iter()
            .find(|e| e.entry_id == key)
            .map(|e| (e.state, e.attempts, e.settled_at.is_some()))
            .unwrap()
    };
    assert_eq!(state_of("e0"), (EntryState::Delivered, 1, true));
    assert_eq!(state_of("e2"), (EntryState::Pending, 0, false));
    assert_eq!(state_of("e3"), (EntryState::Pending, 0, false));
    // Due at the replay's time: claimed again, with the same entry ids.
    let again = claim(&store, replay_at, 10).await;
    let mut keys: Vec<&str> = again.iter().map(|e| e.entry_id.as_str()).collect();
    keys.sort_unstable();
    assert_eq!(keys, vec!["e2", "e3"]);
}

both_backends!(replay_by_entry_id_writes_purged_entries_again_when_the_sink_takes_them);
async fn replay_by_entry_id_writes_purged_entries_again_when_the_sink_takes_them(backend: Backend) {
    use domain::delivery::{AttemptOutcome, ReplayScope};
    let (db, store) = with_entries(backend, 3).await;
    let now = (Utc::now() + TimeDelta::seconds(1)).trunc_subsecs(6);
    assert_eq!(
        settle_all(&store, now, |_| AttemptOutcome::Delivered).await,
        3
    );
    // Delivered entries settled before the cut are purged, oldest first, at most `limit`.
    assert_eq!(store.purge_delivered(now, 10).await.unwrap(), 0);
    let cut = now + TimeDelta::seconds(1);
    assert_eq!(store.purge_delivered(cut, 2).await.unwrap(), 2);
    assert_eq!(store.purge_delivered(cut, 10).await.unwrap(), 1);
    assert!(ids(&entries(&store, "all").await).is_empty());

    // e0 and e1 by id: written again (their events exist); `nope` is no event; the sink
    // `bounces` does not take deliveries, so e2 is not found for it.
    let replay_at = now + TimeDelta::seconds(5);
    let out = store
        .replay_entries(
            ReplayScope::Entries {
                sink: "all".into(),
                entry_ids: vec!["e0".into(), "e1".into(), "nope".into(), "e1".into()],
            },
            replay_at,
        )
        .await
        .unwrap();
    assert_eq!(out.replayed, 2);
    assert_eq!(out.not_found, vec!["nope".to_owned()]);
    let out = store
        .replay_entries(
            ReplayScope::Entries {
                sink: "bounces".into(),
                entry_ids: vec!["e2".into()],
            },
            replay_at,
        )
        .await
        .unwrap();
    assert_eq!(out.replayed, 0);
    assert_eq!(out.not_found, vec!["e2".to_owned()]);

    let again = claim(&store, replay_at, 10).await;
    let mut keys: Vec<(&str, &str)> = again
        .iter()
        .map(|e| (e.entry_id.as_str(), e.entry_type.as_str()))
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        vec![("e0", "email_delivered"), ("e1", "email_delivered")]
    );
    assert!(
        again
            .iter()
            .all(|e| matches!(e.source, EntrySource::Event(id) if id > 0))
    );
    // An entry still in the outbox is made due again in place, not written twice.
    let out = store
        .replay_entries(
            ReplayScope::Entries {
                sink: "all".into(),
                entry_ids: vec!["e0".into()],
            },
            replay_at,
        )
        .await
        .unwrap();
    assert_eq!(out.replayed, 1);
    assert_eq!(count(&db, "outbox"), 2);
}

both_backends!(the_backlog_counts_pending_and_dead_entries_per_sink);
async fn the_backlog_counts_pending_and_dead_entries_per_sink(backend: Backend) {
    use domain::delivery::AttemptOutcome;
    let (_db, store) = with_entries(backend, 5).await;
    let backlog = store.backlog().await.unwrap();
    assert_eq!(backlog.len(), 1, "{backlog:?}");
    assert_eq!(backlog[0].sink, "all");
    assert_eq!(backlog[0].pending, 5);
    assert_eq!(backlog[0].dead, 0);
    let oldest = backlog[0].oldest_pending.unwrap();
    assert!((Utc::now() - oldest).num_seconds().abs() < 60);

    let now = Utc::now() + TimeDelta::seconds(1);
    settle_all(&store, now, |e| match e.entry_id.as_str() {
        "e0" | "e1" => AttemptOutcome::Delivered,
        "e2" => AttemptOutcome::Dead {
            error: "HTTP 410".into(),
        },
        _ => AttemptOutcome::Retry {
            at: now + TimeDelta::minutes(5),
            error: "timeout".into(),
        },
    })
    .await;
    let backlog = store.backlog().await.unwrap();
    assert_eq!(backlog.len(), 1);
    assert_eq!((backlog[0].pending, backlog[0].dead), (2, 1));
}

both_backends!(a_replay_by_id_leaves_an_entry_a_relay_is_delivering_to_it);
async fn a_replay_by_id_leaves_an_entry_a_relay_is_delivering_to_it(backend: Backend) {
    use domain::delivery::ReplayScope;
    let (_db, store) = with_entries(backend, 2).await;
    let now = (Utc::now() + TimeDelta::seconds(1)).trunc_subsecs(6);
    let claimed = claim(&store, now, 1).await;
    assert_eq!(claimed.len(), 1);
    let held = &claimed[0];
    let out = store
        .replay_entries(
            ReplayScope::Entries {
                sink: "all".into(),
                entry_ids: vec![held.entry_id.clone()],
            },
            now + TimeDelta::seconds(1),
        )
        .await
        .unwrap();
    // Counted (it is being delivered), but its claim is untouched: no second relay takes it.
    assert_eq!((out.replayed, out.not_found.len()), (1, 0));
    assert_eq!(by_id(&store, held.id).await.lease_until, held.lease_until);
    assert!(
        claim(&store, now + TimeDelta::seconds(2), 10)
            .await
            .iter()
            .all(|e| e.id != held.id)
    );
}

/// The outbox's statement triggers on PostgreSQL are declared `SET jit = off`, so they run
/// without JIT whatever the session says (the declaration is what a client can check: a nested
/// statement's JIT is not reported to it). The planner, guessing about 1,300 rows for the
/// never-analyzed `delivery_sinks`, priced their inserts above `jit_above_cost` and compiled
/// them on every batch (10 to 50 ms each; see docs/performance.md, "Event delivery").
#[tokio::test]
async fn outbox_triggers_on_postgres_are_declared_without_jit() {
    #[derive(diesel::QueryableByName)]
    struct Function {
        #[diesel(sql_type = diesel::sql_types::Text)]
        name: String,
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
        config: Option<String>,
    }
    let (db, _store) = migrated_store(Backend::Postgres, 1).await;
    let functions: Vec<Function> = with_conn!(&db, c => diesel::RunQueryDsl::load(
        diesel::sql_query(
            "SELECT p.proname::text AS name, array_to_string(p.proconfig, ',') AS config \
             FROM pg_trigger t \
             JOIN pg_proc p ON p.oid = t.tgfoid \
             WHERE t.tgname IN ('email_events_outbox', 'suppression_history_outbox') \
             ORDER BY 1",
        ),
        c,
    )
    .unwrap());
    let names: Vec<&str> = functions.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["sesw_outbox_events", "sesw_outbox_suppressions"]);
    for f in &functions {
        assert_eq!(
            f.config.as_deref(),
            Some("jit=off"),
            "{} runs with the session's JIT setting",
            f.name
        );
    }
}
