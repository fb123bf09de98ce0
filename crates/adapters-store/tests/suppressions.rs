//! The suppression list and the API tokens in the store, on both backends: the policy applied
//! inside the transaction that stores the events (atomic, exactly once, serialised across
//! servers), the list's own operations, `rebuild`, and tokens.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::sync::Arc;

use adapters_store::testing::store_as_one_batch;
use adapters_store::{Backend, Store};
use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use common::*;
use diesel::connection::SimpleConnection;
use domain::ports::{
    EventStore, ListQuery, MessageArchive, NoObserver, Reprocessed, SuppressionStore, TokenStore,
    TokenStoreError,
};
use domain::suppression::{
    Actor, Address, AddressFacts, HistoryAction, SoftBounce, SuppressionEntry, SuppressionPolicy,
    SuppressionReason, Trigger, TriggerKind,
};
use domain::token::{NewToken, Scope};
use domain::{BounceClass, EventType, PlatformEvent};

/// Event times close to now: the policy never re-adds for events before a removal, and removals
/// happen at the wall clock's time.
fn recent(minutes_ago: i64) -> DateTime<Utc> {
    (Utc::now() - TimeDelta::minutes(minutes_ago)).trunc_subsecs(6)
}

fn bounce(
    key: &str,
    recipient: &str,
    class: BounceClass,
    ses_id: &str,
    at: DateTime<Utc>,
) -> PlatformEvent {
    PlatformEvent {
        event_key: key.to_owned(),
        recipient: Some(recipient.to_owned()),
        bounce_type: Some(class),
        ..PlatformEvent::new(EventType::Bounce, ses_id, at)
    }
}

fn complaint(
    key: &str,
    recipient: &str,
    feedback: Option<&str>,
    at: DateTime<Utc>,
) -> PlatformEvent {
    PlatformEvent {
        event_key: key.to_owned(),
        recipient: Some(recipient.to_owned()),
        complaint_feedback_type: feedback.map(str::to_owned),
        ..PlatformEvent::new(EventType::SpamReport, &format!("ses-{key}"), at)
    }
}

async fn entry(store: &Store, address: &str) -> Option<SuppressionEntry> {
    store
        .suppression(domain::suppression::address_key(address))
        .await
        .unwrap()
}

/// The reasons of an address's history lines, oldest first.
async fn history_reasons(store: &Store, address: String) -> Vec<SuppressionReason> {
    store
        .suppression_history(address)
        .await
        .unwrap()
        .into_iter()
        .map(|item| item.reason)
        .collect()
}

/// Two stores on one PostgreSQL database, as two servers sharing it, with `policy`.
fn two_servers(db: &TestDb, policy: SuppressionPolicy) -> (Store, Store) {
    let connect =
        || Store::connect_with_policy(db.url(), options(4), policy, Arc::new(NoObserver)).unwrap();
    (connect(), connect())
}

/// Stores each event as its own notification (store, SNS message id, event), all at once, one
/// task each; returns when every one was acknowledged.
async fn store_all_at_once(jobs: Vec<(Store, String, PlatformEvent)>) {
    let tasks: Vec<_> = jobs
        .into_iter()
        .map(|(server, sns_message_id, event)| {
            tokio::spawn(async move {
                server
                    .store_notification(message(&sns_message_id), vec![event])
                    .await
                    .unwrap();
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}

both_backends!(a_hard_bounce_is_suppressed_in_the_commit_that_stores_it);
async fn a_hard_bounce_is_suppressed_in_the_commit_that_stores_it(backend: Backend) {
    let (_db, store) = migrated_store(backend, 2).await;
    let hard = bounce(
        "k-hard",
        "Bob@Example.COM",
        BounceClass::Hard,
        "ses-1",
        at(5),
    );

    store
        .store_notification(message("m-1"), vec![hard])
        .await
        .unwrap();

    let found = entry(&store, " bob@example.com").await.unwrap();
    assert_eq!(found.address, "Bob@Example.COM");
    assert_eq!(found.reason, SuppressionReason::HardBounce);
    assert_eq!(found.expires_at, None);
    assert_eq!(found.ses_message_id.as_deref(), Some("ses-1"));
    assert_eq!(found.event_key.as_deref(), Some("k-hard"));
    let history = store
        .suppression_history("bob@example.com".into())
        .await
        .unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(
        (history[0].action, history[0].by.as_str()),
        (HistoryAction::Added, "policy")
    );
}

both_backends!(complaints_suppress_unless_not_spam_and_deliveries_never_do);
async fn complaints_suppress_unless_not_spam_and_deliveries_never_do(backend: Backend) {
    let (_db, store) = migrated_store(backend, 2).await;
    let delivered = PlatformEvent {
        event_key: "k-del".into(),
        recipient: Some("d@example.com".into()),
        ..PlatformEvent::new(EventType::Delivered, "ses-d", at(1))
    };
    let events = vec![
        complaint("k-c1", "abuse@example.com", Some("abuse"), at(1)),
        complaint("k-c2", "fine@example.com", Some("not-spam"), at(1)),
        delivered,
    ];

    store
        .store_notification(message("m-1"), events)
        .await
        .unwrap();

    assert_eq!(
        entry(&store, "abuse@example.com").await.map(|e| e.reason),
        Some(SuppressionReason::Complaint)
    );
    assert_eq!(entry(&store, "fine@example.com").await, None);
    assert_eq!(entry(&store, "d@example.com").await, None);
}

both_backends!(soft_bounces_suppress_at_the_limit_and_a_duplicate_changes_nothing);
async fn soft_bounces_suppress_at_the_limit_and_a_duplicate_changes_nothing(backend: Backend) {
    let (db, store) = migrated_store(backend, 2).await;
    let address = "Soft@Example.com";
    for (i, minutes_ago) in [(1, 50), (2, 40)] {
        let event = bounce(
            &format!("k-s{i}"),
            address,
            BounceClass::Soft,
            &format!("ses-{i}"),
            recent(minutes_ago),
        );
        store
            .store_notification(message(&format!("m-{i}")), vec![event])
            .await
            .unwrap();
    }
    assert_eq!(entry(&store, address).await, None, "two are not enough");
    // The second soft bounce delivered again (an SNS retry) is no third one.
    let again = bounce("k-s2", address, BounceClass::Soft, "ses-2", recent(40));
    store
        .store_notification(message("m-2b"), vec![again])
        .await
        .unwrap();
    assert_eq!(entry(&store, address).await, None);

    let third_at = recent(30);
    let third = bounce(
        "k-s3",
        "soft@example.com",
        BounceClass::Soft,
        "ses-3",
        third_at,
    );
    store
        .store_notification(message("m-3"), vec![third])
        .await
        .unwrap();

    let found = entry(&store, address).await.unwrap();
    assert_eq!(found.reason, SuppressionReason::SoftBounce);
    assert_eq!(found.address, address, "the address as first seen");
    assert_eq!(found.expires_at, Some(third_at + TimeDelta::days(30)));
    assert_eq!(found.event_key.as_deref(), Some("k-s3"));
    assert_eq!(count(&db, "suppression_history"), 1);
}

both_backends!(a_batch_that_fails_stores_neither_events_nor_entries);
async fn a_batch_that_fails_stores_neither_events_nor_entries(backend: Backend) {
    let (db, store) = migrated_store(backend, 2).await;
    // The database refuses every new entry: the events of the same transaction must go too.
    let refuse = match backend {
        Backend::Postgres => {
            "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'refused'; END; \
             $$ LANGUAGE plpgsql; CREATE TRIGGER refuse BEFORE INSERT ON suppressions \
             FOR EACH ROW EXECUTE FUNCTION refuse();"
        }
        Backend::Sqlite => {
            "CREATE TRIGGER refuse BEFORE INSERT ON suppressions \
             BEGIN SELECT RAISE(ABORT, 'refused'); END;"
        }
    };
    with_conn!(db, c => c.batch_execute(refuse).unwrap());
    let hard = bounce("k-hard", "a@example.com", BounceClass::Hard, "ses-1", at(5));
    let open = PlatformEvent {
        event_key: "k-open".into(),
        ..PlatformEvent::new(EventType::Open, "ses-2", at(5))
    };

    let answers = store_as_one_batch(
        &store,
        vec![(message("m-1"), vec![hard]), (message("m-2"), vec![open])],
    )
    .await
    .unwrap();

    assert!(
        answers[0].is_err(),
        "the notification whose entry failed is not acknowledged"
    );
    assert!(
        answers[1].is_ok(),
        "its neighbour in the batch is written on its own"
    );
    assert_eq!(count(&db, "email_events"), 1, "only the neighbour's event");
    assert_eq!(count(&db, "sns_messages"), 1);
    assert_eq!(count(&db, "suppressions"), 0);
    assert_eq!(count(&db, "suppression_history"), 0);
}

/// Two servers sharing PostgreSQL store soft bounces of the same addresses at the same time:
/// with a limit of 2, each address gets its entry exactly as if the bounces had come one after
/// the other (without the per-address lock, each transaction sees only its own bounce).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_soft_bounces_on_two_servers_give_the_entries_of_one_after_the_other() {
    concurrent_soft_bounces(None).await;
}

/// The same where the database's default isolation is `repeatable read`: the store's sessions
/// still run in `READ COMMITTED`, which the locks rely on (a snapshot taken before a lock was
/// granted would miss what its previous holder committed).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_soft_bounces_give_one_after_the_other_whatever_the_default_isolation() {
    concurrent_soft_bounces(Some("repeatable read")).await;
}

async fn concurrent_soft_bounces(default_isolation: Option<&str>) {
    let (db, first) = migrated_store(Backend::Postgres, 4).await;
    if let Some(isolation) = default_isolation {
        let TestDb::Postgres(pg) = &db else {
            panic!("a PostgreSQL test")
        };
        let sql = format!(
            "ALTER DATABASE \"{}\" SET default_transaction_isolation = '{isolation}'",
            pg.name()
        );
        with_conn!(db, c => c.batch_execute(&sql).unwrap());
    }
    let policy = SuppressionPolicy {
        soft_bounce_limit: 2,
        ..SuppressionPolicy::default()
    };
    let (a, b) = two_servers(&db, policy);
    drop(first);
    let addresses = 100;
    let mut jobs = Vec::new();
    for n in 0..addresses {
        for (server, side) in [(&a, "a"), (&b, "b")] {
            let event = bounce(
                &format!("k-{n}-{side}"),
                &format!("User{n}@Example.com"),
                BounceClass::Soft,
                &format!("ses-{n}-{side}"),
                recent(10),
            );
            jobs.push((server.clone(), format!("m-{n}-{side}"), event));
        }
    }
    store_all_at_once(jobs).await;

    assert_eq!(count(&db, "suppressions"), addresses);
    for n in 0..addresses {
        let found = entry(&a, &format!("user{n}@example.com")).await;
        assert_eq!(
            found.map(|e| e.reason),
            Some(SuppressionReason::SoftBounce),
            "address {n}"
        );
    }
}

/// Two servers sharing PostgreSQL: one stores an address's soft bounce (limit 1: it completes
/// a soft-bounce entry, through the policy's full run), the other a hard bounce of it at the
/// same time (written by the batch statement itself). Whatever the interleaving, the
/// list ends as one of the two orders leaves it: a hard-bounce entry, after either
/// [soft, hard] or [hard] in its history, never a soft-bounce entry over the hard one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_soft_bounce_racing_a_hard_bounce_ends_as_one_after_the_other() {
    let (db, first) = migrated_store(Backend::Postgres, 4).await;
    let policy = SuppressionPolicy {
        soft_bounce_limit: 1,
        ..SuppressionPolicy::default()
    };
    let (a, b) = two_servers(&db, policy);
    drop(first);
    let addresses = 100;
    let mut jobs = Vec::new();
    for n in 0..addresses {
        for (server, class) in [(&a, BounceClass::Soft), (&b, BounceClass::Hard)] {
            let side = format!("{class:?}");
            let event = bounce(
                &format!("k-{n}-{side}"),
                &format!("user{n}@example.com"),
                class,
                &format!("ses-{n}-{side}"),
                recent(10),
            );
            jobs.push((server.clone(), format!("m-{n}-{side}"), event));
        }
    }
    store_all_at_once(jobs).await;

    for n in 0..addresses {
        let address = format!("user{n}@example.com");
        let found = entry(&a, &address).await.map(|e| e.reason);
        assert_eq!(found, Some(SuppressionReason::HardBounce), "address {n}");
        let history = history_reasons(&a, address).await;
        assert!(
            history == [SuppressionReason::HardBounce]
                || history == [SuppressionReason::SoftBounce, SuppressionReason::HardBounce],
            "address {n}: {history:?}"
        );
    }
}

/// Stores the hard bounce of address number `n` a minute ago through `server`, in a task of
/// its own, to race whatever was spawned next to it.
fn spawn_first_hard_bounce(server: &Store, n: usize, address: &str) -> tokio::task::JoinHandle<()> {
    let event = bounce(
        &format!("k-{n}"),
        address,
        BounceClass::Hard,
        &format!("ses-{n}"),
        recent(1),
    );
    tokio::spawn(store_all_at_once(vec![(
        server.clone(),
        format!("m-{n}"),
        event,
    )]))
}

/// A token's `PUT` racing the first hard bounce of the same addresses (two servers sharing
/// PostgreSQL): every call succeeds, and each address ends as one of the two orders leaves it:
/// the hard bounce first (its entry, then the manual one replacing it: the `PUT` answers
/// "replaced"), or the `PUT` first (the manual entry, which a hard bounce does not outrank).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_put_racing_a_hard_bounce_ends_as_one_after_the_other() {
    let (db, first) = migrated_store(Backend::Postgres, 4).await;
    let (a, b) = two_servers(&db, SuppressionPolicy::default());
    drop(first);
    let addresses = 60;
    let mut puts = Vec::new();
    let mut bounces = Vec::new();
    for n in 0..addresses {
        let address = format!("user{n}@example.com");
        let server = a.clone();
        let manual = SuppressionEntry {
            address: address.clone(),
            reason: SuppressionReason::Manual,
            created_at: recent(0),
            expires_at: None,
            ses_message_id: None,
            event_key: None,
            note: Some("by hand".into()),
        };
        let parsed = Address::parse(&address).unwrap();
        puts.push(tokio::spawn(async move {
            server
                .put_suppression(parsed, manual, Actor::Token("t".into()))
                .await
                .unwrap()
                .0
        }));
        // Spawned next to its PUT, so that the two race.
        bounces.push(spawn_first_hard_bounce(&b, n, &address));
    }
    let mut replaced = Vec::new();
    for put in puts {
        replaced.push(put.await.unwrap());
    }
    for bounce in bounces {
        bounce.await.unwrap();
    }

    for (n, replaced) in replaced.into_iter().enumerate() {
        let address = format!("user{n}@example.com");
        let found = entry(&a, &address).await.map(|e| e.reason);
        assert_eq!(found, Some(SuppressionReason::Manual), "address {n}");
        let history = history_reasons(&a, address).await;
        let expected = if replaced {
            vec![SuppressionReason::HardBounce, SuppressionReason::Manual]
        } else {
            vec![SuppressionReason::Manual]
        };
        assert_eq!(history, expected, "address {n} (replaced: {replaced})");
    }
}

/// A token's `DELETE` racing the first hard bounce of the same addresses (two servers sharing
/// PostgreSQL; a batch whose triggers are all Permanent takes its locks inside its one
/// statement). Each address starts with a manual entry that expires, which a hard bounce
/// outranks, and ends as one of the two orders leaves it: the hard bounce first (its entry
/// replaces the manual one, then is removed: no entry) or the `DELETE` first (the manual entry
/// removed, then the hard bounce's). Never an entry without its history line, nor a removal of
/// one entry recorded as another's.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_delete_racing_a_hard_bounce_ends_as_one_after_the_other() {
    let (db, first) = migrated_store(Backend::Postgres, 4).await;
    let addresses = 60;
    for n in 0..addresses {
        let address = format!("user{n}@example.com");
        let manual = SuppressionEntry {
            address: address.clone(),
            reason: SuppressionReason::Manual,
            created_at: recent(5),
            expires_at: Some(recent(0) + TimeDelta::days(1)),
            ses_message_id: None,
            event_key: None,
            note: None,
        };
        first
            .put_suppression(
                Address::parse(&address).unwrap(),
                manual,
                Actor::Token("t".into()),
            )
            .await
            .unwrap();
    }
    let (a, b) = two_servers(&db, SuppressionPolicy::default());
    drop(first);
    let mut deletes = Vec::new();
    let mut bounces = Vec::new();
    for n in 0..addresses {
        let address = format!("user{n}@example.com");
        let server = a.clone();
        let key = domain::suppression::address_key(&address);
        deletes.push(tokio::spawn(async move {
            server
                .remove_suppression(key, Actor::Token("t".into()), recent(0))
                .await
                .unwrap()
        }));
        bounces.push(spawn_first_hard_bounce(&b, n, &address));
    }
    for delete in deletes {
        assert!(
            delete.await.unwrap(),
            "the manual entry was there to remove"
        );
    }
    for bounce in bounces {
        bounce.await.unwrap();
    }

    let (mut bounce_first, mut delete_first) = (0, 0);
    for n in 0..addresses {
        let address = format!("user{n}@example.com");
        let found = entry(&a, &address).await.map(|e| e.reason);
        let history: Vec<(HistoryAction, SuppressionReason)> = a
            .suppression_history(address)
            .await
            .unwrap()
            .into_iter()
            .map(|item| (item.action, item.reason))
            .collect();
        let (added, removed) = (HistoryAction::Added, HistoryAction::Removed);
        let (manual, hard) = (SuppressionReason::Manual, SuppressionReason::HardBounce);
        match found {
            None => {
                let expected = [(added, manual), (added, hard), (removed, hard)];
                assert_eq!(history, expected, "address {n}: the bounce first");
                bounce_first += 1;
            }
            Some(reason) => {
                assert_eq!(reason, hard, "address {n}");
                let expected = [(added, manual), (removed, manual), (added, hard)];
                assert_eq!(history, expected, "address {n}: the DELETE first");
                delete_first += 1;
            }
        }
    }
    assert_eq!(bounce_first + delete_first, addresses);
}

/// Batches of many Permanent triggers whose addresses overlap in opposite orders, written at
/// once by two servers sharing PostgreSQL: the locks are taken in one global order, so no batch
/// deadlocks (a deadlock would fail a store call), and every address ends with one entry, that
/// of the batch that came first (a later hard bounce or complaint does not outrank it), and its
/// one history line.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn overlapping_batches_of_permanent_triggers_do_not_deadlock() {
    let (db, first) = migrated_store(Backend::Postgres, 4).await;
    let (a, b) = two_servers(&db, SuppressionPolicy::default());
    drop(first);
    let addresses: Vec<String> = (0..40).map(|n| format!("user{n}@example.com")).collect();
    let mut tasks = Vec::new();
    for round in 0..8 {
        let server = if round % 2 == 0 { a.clone() } else { b.clone() };
        let mut order = addresses.clone();
        if round % 2 == 1 {
            order.reverse();
        }
        let events: Vec<PlatformEvent> = order
            .iter()
            .map(|address| {
                if round % 4 < 2 {
                    bounce(
                        &format!("k-{round}-{address}"),
                        address,
                        BounceClass::Hard,
                        &format!("ses-{round}"),
                        recent(10 - round),
                    )
                } else {
                    complaint(
                        &format!("k-{round}-{address}"),
                        address,
                        None,
                        recent(10 - round),
                    )
                }
            })
            .collect();
        tasks.push(tokio::spawn(async move {
            server
                .store_notification(message(&format!("m-{round}")), events)
                .await
                .unwrap()
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    for address in &addresses {
        let found = entry(&a, address).await.unwrap();
        let history = a.suppression_history(address.clone()).await.unwrap();
        assert_eq!(history.len(), 1, "{address}: {history:?}");
        assert_eq!(history[0].reason, found.reason, "{address}");
        assert_eq!(history[0].event_key, found.event_key, "{address}");
        assert!(
            matches!(
                found.reason,
                SuppressionReason::HardBounce | SuppressionReason::Complaint
            ),
            "{address}: {found:?}"
        );
    }
    assert_eq!(count(&db, "suppressions"), 40);
    assert_eq!(count(&db, "suppression_history"), 40);
}

both_backends!(a_new_entry_replaces_the_stored_one_only_when_it_outranks_it);
/// What a new entry does to the stored one, through each way the policy writes (a batch with
/// only Permanent triggers; one with a soft bounce), as `SuppressionPolicy::decide` ranks
/// them: an active entry without expiry stays; one that expires gives way to an entry that
/// never expires or expires later; an expired one always gives way.
async fn a_new_entry_replaces_the_stored_one_only_when_it_outranks_it(backend: Backend) {
    let (db, store) = migrated_store(backend, 2).await;
    let policy = SuppressionPolicy::default();
    let now = recent(0);
    let soft_at = recent(60);
    let soft_expiry = soft_at + policy.soft_bounce_suppression;
    let stored = |reason: SuppressionReason, expires_at: Option<DateTime<Utc>>| SuppressionEntry {
        address: "Stored@Example.com".to_owned(),
        reason,
        created_at: now - TimeDelta::days(1),
        expires_at,
        ses_message_id: None,
        event_key: None,
        note: Some("stored".to_owned()),
    };
    // (stored entry, the new bounce's class, the reason afterwards)
    let cases = [
        (
            stored(SuppressionReason::Manual, None),
            BounceClass::Hard,
            SuppressionReason::Manual,
        ),
        (
            stored(SuppressionReason::Manual, None),
            BounceClass::Soft,
            SuppressionReason::Manual,
        ),
        (
            stored(SuppressionReason::Manual, Some(now + TimeDelta::days(1))),
            BounceClass::Hard,
            SuppressionReason::HardBounce,
        ),
        (
            stored(SuppressionReason::Manual, Some(now + TimeDelta::days(1))),
            BounceClass::Soft,
            SuppressionReason::SoftBounce,
        ),
        (
            stored(
                SuppressionReason::Manual,
                Some(soft_expiry + TimeDelta::days(1)),
            ),
            BounceClass::Soft,
            SuppressionReason::Manual,
        ),
        (
            stored(
                SuppressionReason::Manual,
                Some(now - TimeDelta::days(1) + TimeDelta::hours(1)),
            ),
            BounceClass::Hard,
            SuppressionReason::HardBounce,
        ),
    ];
    for (i, (stored_entry, class, expected)) in cases.into_iter().enumerate() {
        let address = format!("case{i}@example.com");
        let stored_note = stored_entry.note.clone();
        store
            .put_suppression(
                Address::parse(&address).unwrap(),
                stored_entry,
                Actor::Token("t".into()),
            )
            .await
            .unwrap();
        // Limit 3: the new one completes two soft bounces stored the same way.
        let mut events = Vec::new();
        if class == BounceClass::Soft {
            for j in 0..2 {
                let earlier = bounce(
                    &format!("k-{i}-early-{j}"),
                    &address,
                    BounceClass::Soft,
                    &format!("ses-{i}-early-{j}"),
                    soft_at - TimeDelta::minutes(10 - j),
                );
                events.push((message(&format!("m-{i}-early-{j}")), vec![earlier]));
            }
        }
        let at = if class == BounceClass::Soft {
            soft_at
        } else {
            recent(5)
        };
        let new = bounce(&format!("k-{i}"), &address, class, &format!("ses-{i}"), at);
        events.push((message(&format!("m-{i}")), vec![new]));
        for (message, events) in events {
            store.store_notification(message, events).await.unwrap();
        }

        let found = entry(&store, &address).await.unwrap();
        assert_eq!(found.reason, expected, "case {i}");
        assert_eq!(
            found.address, "Stored@Example.com",
            "case {i}: the address as first seen"
        );
        let history = store
            .suppression_history(domain::suppression::address_key(&address))
            .await
            .unwrap();
        if expected == SuppressionReason::Manual {
            assert_eq!(found.note, stored_note, "case {i}: untouched");
            assert_eq!(
                history.len(),
                1,
                "case {i}: no line for what was not written"
            );
        } else {
            assert_eq!(found.note, None, "case {i}");
            assert_eq!(history.len(), 2, "case {i}");
            assert_eq!(history[1].reason, expected, "case {i}");
        }
    }
    assert_eq!(count(&db, "suppressions"), 6);
}

both_backends!(in_one_batch_a_hard_bounce_outranks_a_completing_soft_bounce);
/// One batch holding a hard bounce and the soft bounce that completes the limit, for one
/// address: the Permanent bounce wins, as one after the other would leave it.
async fn in_one_batch_a_hard_bounce_outranks_a_completing_soft_bounce(backend: Backend) {
    let (db, store) = migrated_store(backend, 2).await;
    let address = "both@example.com";
    let soft = |i: i64| {
        bounce(
            &format!("k-soft-{i}"),
            address,
            BounceClass::Soft,
            &format!("ses-soft-{i}"),
            recent(30 - i),
        )
    };
    store
        .store_notification(message("m-0"), vec![soft(0), soft(1)])
        .await
        .unwrap();
    assert_eq!(entry(&store, address).await, None);
    let hard = bounce("k-hard", address, BounceClass::Hard, "ses-hard", recent(20));

    let answers = store_as_one_batch(
        &store,
        vec![
            (message("m-1"), vec![soft(2)]),
            (message("m-2"), vec![hard]),
        ],
    )
    .await
    .unwrap();

    assert!(answers.iter().all(Result::is_ok), "{answers:?}");
    let found = entry(&store, address).await.unwrap();
    assert_eq!(found.reason, SuppressionReason::HardBounce);
    assert_eq!(found.event_key.as_deref(), Some("k-hard"));
    assert_eq!(count(&db, "suppression_history"), 1);
}

/// PostgreSQL's `sesw_soft_bounce_check` lets a batch with soft bounces skip the policy's full
/// run only when no address can reach the limit. Over many generated histories (soft bounces
/// spread over weeks, SES message ids repeated, a delivery before, between or after them), it
/// answers `true` whenever `SuppressionPolicy::decide` would suppress, and `false` in the
/// histories with fewer soft bounces than the limit within the window of the new ones.
#[tokio::test]
async fn the_soft_bounce_check_never_says_no_where_the_policy_would_suppress() {
    use diesel::sql_types::{BigInt, Integer, Text};
    #[derive(diesel::QueryableByName)]
    struct Answer {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        may: bool,
    }
    let db = TestDb::new(Backend::Postgres);
    let policy = SuppressionPolicy::default();
    let disabled = SuppressionPolicy {
        enabled: false,
        ..policy
    };
    let store =
        Store::connect_with_policy(db.url(), options(2), disabled, Arc::new(NoObserver)).unwrap();
    store.run_migrations().await.unwrap();
    let mut conn = <diesel::PgConnection as diesel::Connection>::establish(db.url()).unwrap();
    let base = at(0);
    // A small deterministic generator (xorshift), so that a failure names its case.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    };
    let (mut yes, mut no) = (0, 0);
    for case in 0..300 {
        let address = format!("case{case}@example.com");
        let hours = |h: u64| base + TimeDelta::hours(i64::try_from(h).unwrap());
        let mut stored = Vec::new();
        for i in 0..next(5) {
            let event = bounce(
                &format!("k-{case}-{i}"),
                &address,
                BounceClass::Soft,
                &format!("ses-{case}-{}", next(3)),
                hours(next(24 * 20)),
            );
            stored.push(event);
        }
        let delivered = (next(2) == 0).then(|| hours(next(24 * 20)));
        if let Some(at) = delivered {
            stored.push(PlatformEvent {
                event_key: format!("k-{case}-delivered"),
                recipient: Some(address.clone()),
                ..PlatformEvent::new(EventType::Delivered, &format!("ses-{case}-d"), at)
            });
        }
        if !stored.is_empty() {
            store
                .store_notification(message(&format!("m-{case}")), stored.clone())
                .await
                .unwrap();
        }
        let new: Vec<Trigger> = (0..1 + next(2))
            .map(|i| Trigger {
                kind: TriggerKind::SoftBounce,
                event_key: format!("k-{case}-new-{i}"),
                ses_message_id: format!("ses-{case}-{}", next(4)),
                event_time: hours(next(24 * 20)),
            })
            .collect();

        let facts = AddressFacts {
            last_delivered: delivered,
            soft_bounces: stored
                .iter()
                .filter(|e| e.event_type == EventType::Bounce)
                .map(|e| SoftBounce {
                    event_key: e.event_key.clone(),
                    ses_message_id: e.ses_message_id.clone(),
                    event_time: e.event_time,
                })
                .collect(),
            entry: None,
        };
        let suppresses = policy.decide(&new, &facts, base).is_some();
        let key = domain::suppression::address_key(&address);
        let bounces: serde_json::Value = new
            .iter()
            .map(|t| {
                serde_json::json!({
                    "key": key,
                    "event_time": t.event_time.to_rfc3339(),
                })
            })
            .collect();
        let answer: Answer = diesel::RunQueryDsl::get_result(
            diesel::sql_query(
                "SELECT sesw_soft_bounce_check(1, '{}'::text[], $1::json, $2, $3) AS may",
            )
            .bind::<Text, _>(bounces.to_string())
            .bind::<Integer, _>(i32::try_from(policy.soft_bounce_limit).unwrap())
            .bind::<BigInt, _>(policy.soft_bounce_window.num_microseconds().unwrap()),
            &mut conn,
        )
        .unwrap();
        if suppresses {
            assert!(
                answer.may,
                "case {case}: the policy suppresses, the check said no"
            );
            yes += 1;
        }
        // The check's own condition: the soft bounces within the window of the new ones, the
        // new ones included, number at least the limit. Fewer, and it must say no.
        let since = new.iter().map(|t| t.event_time).min().unwrap() - policy.soft_bounce_window;
        let until = new.iter().map(|t| t.event_time).max().unwrap() + policy.soft_bounce_window;
        let near = facts
            .soft_bounces
            .iter()
            .filter(|b| b.event_time >= since && b.event_time <= until)
            .count()
            + new.len();
        if near < usize::try_from(policy.soft_bounce_limit).unwrap() {
            assert!(
                !answer.may,
                "case {case}: too few soft bounces in the window, the check said yes"
            );
            no += 1;
        }
    }
    assert!(
        yes > 10 && no > 10,
        "the cases cover both answers ({yes} / {no})"
    );
}

both_backends!(an_entry_shows_the_recipient_of_the_event_that_decided_it);
/// A batch with a complaint and an earlier hard bounce of one address, spelt differently: the
/// entry is the hard bounce's, and shows the address as that event wrote it, whether the batch
/// is written by one statement or (with a soft bounce completing the limit elsewhere in the
/// batch) by the policy's full run.
async fn an_entry_shows_the_recipient_of_the_event_that_decided_it(backend: Backend) {
    let (_db, store) = migrated_store(backend, 2).await;
    for (round, full_run) in [(0, false), (1, true)] {
        let address = format!("second{round}@example.com");
        let mut batch = Vec::new();
        if full_run {
            let other = format!("other{round}@example.com");
            let soft = |i: i64| {
                bounce(
                    &format!("k-{round}-soft-{i}"),
                    &other,
                    BounceClass::Soft,
                    &format!("ses-{round}-soft-{i}"),
                    recent(30 - i),
                )
            };
            store
                .store_notification(message(&format!("m-{round}-0")), vec![soft(0), soft(1)])
                .await
                .unwrap();
            batch.push((message(&format!("m-{round}-1")), vec![soft(2)]));
        }
        let complaint = complaint(
            &format!("k-{round}-a-complaint"),
            &format!("Second{round}@Example.com"),
            Some("abuse"),
            recent(5),
        );
        let hard = bounce(
            &format!("k-{round}-b-hard"),
            &format!("SECOND{round}@example.com"),
            BounceClass::Hard,
            &format!("ses-{round}-hard"),
            recent(10),
        );
        batch.push((message(&format!("m-{round}-2")), vec![complaint]));
        batch.push((message(&format!("m-{round}-3")), vec![hard]));

        let answers = store_as_one_batch(&store, batch).await.unwrap();

        assert!(
            answers.iter().all(Result::is_ok),
            "round {round}: {answers:?}"
        );
        let found = entry(&store, &address).await.unwrap();
        assert_eq!(found.reason, SuppressionReason::HardBounce, "round {round}");
        assert_eq!(
            found.address,
            format!("SECOND{round}@example.com"),
            "round {round}"
        );
        if full_run {
            let other = entry(&store, &format!("other{round}@example.com")).await;
            assert_eq!(
                other.map(|e| e.reason),
                Some(SuppressionReason::SoftBounce),
                "round {round}: the soft bounce completed the limit"
            );
        }
    }
}

both_backends!(after_a_removal_a_redelivered_bounce_does_not_bring_the_address_back_a_new_one_does);
async fn after_a_removal_a_redelivered_bounce_does_not_bring_the_address_back_a_new_one_does(
    backend: Backend,
) {
    let (_db, store) = migrated_store(backend, 2).await;
    let old = bounce(
        "k-1",
        "a@example.com",
        BounceClass::Hard,
        "ses-1",
        recent(5),
    );
    store
        .store_notification(message("m-1"), vec![old.clone()])
        .await
        .unwrap();
    let removed = store
        .remove_suppression(
            "a@example.com".into(),
            Actor::Token("crm".into()),
            Utc::now(),
        )
        .await
        .unwrap();
    assert!(removed);

    store
        .store_notification(message("m-1"), vec![old.clone()])
        .await
        .unwrap();
    store
        .store_notification(message("m-1-retry"), vec![old])
        .await
        .unwrap();
    assert_eq!(entry(&store, "a@example.com").await, None);

    let new = bounce(
        "k-2",
        "a@example.com",
        BounceClass::Hard,
        "ses-2",
        Utc::now() + TimeDelta::seconds(1),
    );
    store
        .store_notification(message("m-2"), vec![new])
        .await
        .unwrap();
    assert_eq!(
        entry(&store, "a@example.com")
            .await
            .and_then(|e| e.event_key),
        Some("k-2".into())
    );
    let actions: Vec<(HistoryAction, String)> = store
        .suppression_history("a@example.com".into())
        .await
        .unwrap()
        .into_iter()
        .map(|h| (h.action, h.by))
        .collect();
    assert_eq!(
        actions,
        [
            (HistoryAction::Added, "policy".to_owned()),
            (HistoryAction::Removed, "token:crm".to_owned()),
            (HistoryAction::Added, "policy".to_owned()),
        ]
    );
}

both_backends!(reprocessing_applies_the_policy_to_the_events_it_newly_stores);
async fn reprocessing_applies_the_policy_to_the_events_it_newly_stores(backend: Backend) {
    let (_db, store) = migrated_store(backend, 2).await;
    store
        .store_notification(message("m-1"), vec![])
        .await
        .unwrap();
    let update = Reprocessed {
        sns_message_id: "m-1".into(),
        ses_type: Some("Bounce".into()),
        ses_message_id: Some("ses-r".into()),
        outcome: domain::ports::MessageOutcome::Processed,
        error_count: 0,
        error_detail: None,
        at: at(9),
        tally: None,
    };
    let hard = bounce("k-r", "r@example.com", BounceClass::Hard, "ses-r", at(3));

    store.store_reprocessed(update, vec![hard]).await.unwrap();

    assert_eq!(
        entry(&store, "r@example.com").await.map(|e| e.reason),
        Some(SuppressionReason::HardBounce)
    );
}

both_backends!(rebuild_derives_the_list_from_stored_events_and_twice_changes_nothing);
async fn rebuild_derives_the_list_from_stored_events_and_twice_changes_nothing(backend: Backend) {
    let (db, first) = migrated_store(backend, 2).await;
    drop(first);
    let disabled = SuppressionPolicy {
        enabled: false,
        ..SuppressionPolicy::default()
    };
    let store =
        Store::connect_with_policy(db.url(), options(2), disabled, Arc::new(NoObserver)).unwrap();
    let mut events = vec![
        bounce(
            "k-h",
            "hard@example.com",
            BounceClass::Hard,
            "ses-h",
            recent(60),
        ),
        complaint("k-c", "fine@example.com", Some("not-spam"), recent(60)),
    ];
    for i in 0..3 {
        events.push(bounce(
            &format!("k-s{i}"),
            "soft@example.com",
            BounceClass::Soft,
            &format!("ses-s{i}"),
            recent(50 - i),
        ));
    }
    store
        .store_notification(message("m-1"), events)
        .await
        .unwrap();
    assert_eq!(count(&db, "suppressions"), 0, "the policy was off");

    let report = store
        .rebuild_suppressions(SuppressionPolicy::default(), Utc::now())
        .await
        .unwrap();
    assert_eq!((report.addresses, report.written), (3, 2));
    assert_eq!(
        entry(&store, "hard@example.com").await.map(|e| e.reason),
        Some(SuppressionReason::HardBounce)
    );
    assert_eq!(
        entry(&store, "soft@example.com").await.map(|e| e.reason),
        Some(SuppressionReason::SoftBounce)
    );
    let history = store
        .suppression_history("hard@example.com".into())
        .await
        .unwrap();
    assert_eq!(history[0].by, "command:rebuild");

    let again = store
        .rebuild_suppressions(SuppressionPolicy::default(), Utc::now())
        .await
        .unwrap();
    assert_eq!(again.written, 0);
    assert_eq!(count(&db, "suppression_history"), 2);
}

both_backends!(put_replaces_keeps_the_first_address_and_lists_newest_first_by_keyset);
async fn put_replaces_keeps_the_first_address_and_lists_newest_first_by_keyset(backend: Backend) {
    let (_db, store) = migrated_store(backend, 2).await;
    let manual = |address: &str, note: &str, created_at: DateTime<Utc>| SuppressionEntry {
        address: address.to_owned(),
        reason: SuppressionReason::Manual,
        created_at,
        expires_at: None,
        ses_message_id: None,
        event_key: None,
        note: Some(note.to_owned()),
    };
    let now = recent(0);
    let put = |address: &str, note: &str, at: DateTime<Utc>| {
        let store = store.clone();
        let address = Address::parse(address).unwrap();
        let entry = manual(address.as_str(), note, at);
        async move {
            store
                .put_suppression(address, entry, Actor::Token("t".into()))
                .await
                .unwrap()
        }
    };
    let (replaced, _) = put("First@Example.com", "one", now).await;
    assert!(!replaced);
    let (replaced, written) = put("first@example.com", "two", now).await;
    assert!(replaced);
    assert_eq!(
        (written.address.as_str(), written.note.as_deref()),
        ("First@Example.com", Some("two"))
    );
    // Five more with the same created_at: the id breaks the tie.
    for i in 0..5 {
        put(&format!("u{i}@example.com"), "n", now).await;
    }

    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list_suppressions(
                ListQuery {
                    reason: Some(SuppressionReason::Manual),
                    since: None,
                    limit: 2,
                    after,
                },
                Utc::now(),
            )
            .await
            .unwrap();
        // Written while paging: newer than every page, so never on one.
        put(
            &format!("late{}@example.com", seen.len()),
            "n",
            now + TimeDelta::seconds(1),
        )
        .await;
        if page.is_empty() {
            break;
        }
        after = page.last().map(|(position, _)| *position);
        seen.extend(page.into_iter().map(|(_, e)| e.address));
    }
    assert_eq!(
        seen,
        [
            "u4@example.com",
            "u3@example.com",
            "u2@example.com",
            "u1@example.com",
            "u0@example.com",
            "First@Example.com"
        ]
    );
}

both_backends!(tokens_are_stored_hashed_named_once_revoked_and_touched);
async fn tokens_are_stored_hashed_named_once_revoked_and_touched(backend: Backend) {
    let (_db, store) = migrated_store(backend, 2).await;
    let token = |hash: &str| NewToken {
        name: "crm".into(),
        scope: Scope::Write,
        hash: hash.into(),
        created_at: at(0),
    };
    store.create_token(token("h1")).await.unwrap();
    assert_eq!(
        store.create_token(token("h2")).await,
        Err(TokenStoreError::NameTaken)
    );

    let found = store.token_by_hash("h1".into()).await.unwrap().unwrap();
    assert_eq!((found.name.as_str(), found.scope), ("crm", Scope::Write));
    store.touch_token("crm".into(), at(7)).await.unwrap();
    assert_eq!(
        store
            .token_by_hash("h1".into())
            .await
            .unwrap()
            .unwrap()
            .last_used_at,
        Some(at(7))
    );

    assert!(store.revoke_token("crm".into(), at(8)).await.unwrap());
    assert!(!store.revoke_token("crm".into(), at(9)).await.unwrap());
    assert_eq!(
        store
            .token_by_hash("h1".into())
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        Some(at(8))
    );
    // The name is free again once revoked.
    store.create_token(token("h2")).await.unwrap();
    assert_eq!(store.tokens().await.unwrap().len(), 2);
    assert_eq!(store.token_by_hash("nope".into()).await.unwrap(), None);
}
