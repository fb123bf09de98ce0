use std::sync::Mutex;

use chrono::TimeZone;
use serde_json::json;

use super::*;
use crate::delivery::{EntrySource, EntryState, MockOutboxStore};
use crate::ports::MockClock;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap()
}

/// An entry, each with a lease of its own (the settlement must carry the entry's).
fn entry(id: i64, attempts: u32) -> OutboxEntry {
    OutboxEntry {
        id,
        sink: "crm".into(),
        entry_id: format!("key-{id}"),
        entry_type: "email_bounce".into(),
        source: EntrySource::Event(100 + id),
        state: EntryState::Pending,
        attempts,
        created_at: now(),
        next_attempt_at: now(),
        last_error: None,
        settled_at: None,
        lease_until: Some(now() + TimeDelta::seconds(60) + TimeDelta::milliseconds(id)),
    }
}

fn data(id: i64) -> EntryData {
    EntryData {
        timestamp: now() - TimeDelta::seconds(id),
        data: json!({"eventKey": format!("key-{id}"), "recipient": "a@example.com"}),
    }
}

fn settings() -> RelaySettings {
    RelaySettings {
        sink: "crm".into(),
        batch: 10,
        lease: TimeDelta::seconds(60),
        schedule: RetrySchedule::from_secs(&[5, 300]),
    }
}

/// A relay over mocks: `claimed` is what the store hands out, `gone` the entries whose content
/// is missing (id 99: unreadable), `answers` the sink's answers. Returns the relay and where the settlements and
/// the messages sent end up.
#[allow(clippy::type_complexity)]
fn relay(
    claimed: Vec<OutboxEntry>,
    gone: Vec<i64>,
    answers: Vec<Result<(), String>>,
) -> (
    Relay,
    Arc<Mutex<Vec<Settlement>>>,
    Arc<Mutex<Vec<OutboundMessage>>>,
) {
    let settled = Arc::new(Mutex::new(Vec::new()));
    let sent = Arc::new(Mutex::new(Vec::new()));
    let mut store = MockOutboxStore::new();
    let handed = claimed.clone();
    store
        .expect_claim_entries()
        .withf(|sink, batch, at, lease| {
            sink == "crm" && *batch == 10 && *at == now() && *lease == TimeDelta::seconds(60)
        })
        .times(1)
        .return_once(move |_, _, _, _| Ok(handed));
    let record = settled.clone();
    store.expect_settle_entries().returning(move |s| {
        let n = s.len();
        record.lock().unwrap().extend(s);
        Ok(n)
    });
    let mut contents = MockEntryContents::new();
    contents.expect_entry_data().returning(move |entries| {
        Ok(entries
            .iter()
            .map(|e| {
                if e.id == 99 {
                    EntryContent::Unreadable("bad row".into())
                } else if gone.contains(&e.id) {
                    EntryContent::Gone
                } else {
                    EntryContent::Data(data(e.id))
                }
            })
            .collect())
    });
    let mut sink = MockSinkClient::new();
    let log = sent.clone();
    sink.expect_deliver().return_once(move |messages| {
        log.lock().unwrap().extend(messages);
        answers
    });
    let mut clock = MockClock::new();
    clock.expect_now().returning(now);
    let relay = Relay::new(
        settings(),
        Arc::new(store),
        Arc::new(contents),
        Arc::new(sink),
        Arc::new(clock),
    )
    .with_jitter(Arc::new(|| 0.5));
    (relay, settled, sent)
}

#[tokio::test]
async fn delivered_entries_are_recorded_and_failed_ones_follow_the_schedule() {
    let (relay, settled, sent) = relay(
        vec![entry(1, 0), entry(2, 0), entry(3, 1), entry(4, 2)],
        vec![],
        vec![
            Ok(()),
            Err("HTTP 503".into()),
            Err("timed out after 10 s".into()),
            Err("HTTP 500".into()),
        ],
    );
    let pass = relay.run_once().await.unwrap();
    assert_eq!(
        pass,
        RelayPass {
            claimed: 4,
            delivered: 1,
            retried: 2,
            dead: 1
        }
    );
    let settled = settled.lock().unwrap();
    let outcomes: Vec<(i64, AttemptOutcome)> =
        settled.iter().map(|s| (s.id, s.outcome.clone())).collect();
    assert_eq!(
        outcomes,
        vec![
            (1, AttemptOutcome::Delivered),
            // First failure: 5 s later; second: 300 s later; third: the schedule ran out.
            (
                2,
                AttemptOutcome::Retry {
                    at: now() + TimeDelta::seconds(5),
                    error: "HTTP 503".into()
                }
            ),
            (
                3,
                AttemptOutcome::Retry {
                    at: now() + TimeDelta::seconds(300),
                    error: "timed out after 10 s".into()
                }
            ),
            (
                4,
                AttemptOutcome::Dead {
                    error: "HTTP 500".into()
                }
            ),
        ]
    );
    // Each under its own claim.
    for s in settled.iter() {
        assert_eq!(
            s.lease_until,
            now() + TimeDelta::seconds(60) + TimeDelta::milliseconds(s.id)
        );
        assert_eq!(s.attempted_at, now());
    }
    // The messages: the entry id and the envelope.
    let sent = sent.lock().unwrap();
    assert_eq!(sent.len(), 4);
    assert_eq!(sent[0].entry_id, "key-1");
    assert_eq!(sent[0].entry_type, "email_bounce");
    let body: serde_json::Value = serde_json::from_slice(&sent[0].body).unwrap();
    assert_eq!(
        body,
        json!({
            "id": "key-1",
            "type": "email_bounce",
            "timestamp": "2026-11-30T11:59:59.000000Z",
            "data": {"eventKey": "key-1", "recipient": "a@example.com"}
        })
    );
}

#[tokio::test]
async fn an_entry_whose_event_is_gone_is_not_sent_and_becomes_dead() {
    let (relay, settled, sent) = relay(vec![entry(1, 0), entry(2, 0)], vec![1], vec![Ok(())]);
    let pass = relay.run_once().await.unwrap();
    assert_eq!((pass.delivered, pass.dead), (1, 1));
    let sent = sent.lock().unwrap();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].entry_id, "key-2");
    let settled = settled.lock().unwrap();
    assert_eq!(
        settled[0].outcome,
        AttemptOutcome::Dead {
            error: GONE.to_owned()
        }
    );
    assert_eq!(settled[1].outcome, AttemptOutcome::Delivered);
}

#[tokio::test]
async fn an_unreadable_entry_fails_alone_and_follows_the_schedule() {
    let (relay, settled, sent) = relay(vec![entry(99, 0), entry(2, 0)], vec![], vec![Ok(())]);
    let pass = relay.run_once().await.unwrap();
    assert_eq!((pass.delivered, pass.retried), (1, 1));
    assert_eq!(sent.lock().unwrap().len(), 1);
    assert_eq!(
        settled.lock().unwrap()[0].outcome,
        AttemptOutcome::Retry {
            at: now() + TimeDelta::seconds(5),
            error: "bad row".into()
        }
    );
}

#[tokio::test]
async fn a_sink_that_answers_for_fewer_messages_leaves_the_rest_to_retry() {
    let (relay, settled, _) = relay(vec![entry(1, 0), entry(2, 0)], vec![], vec![Ok(())]);
    let pass = relay.run_once().await.unwrap();
    assert_eq!((pass.delivered, pass.retried), (1, 1));
    assert!(matches!(
        &settled.lock().unwrap()[1].outcome,
        AttemptOutcome::Retry { error, .. } if error == "the sink gave no answer"
    ));
}

#[tokio::test]
async fn nothing_due_is_a_pass_that_claims_nothing() {
    let mut store = MockOutboxStore::new();
    store
        .expect_claim_entries()
        .return_once(|_, _, _, _| Ok(vec![]));
    store.expect_settle_entries().never();
    let mut sink = MockSinkClient::new();
    sink.expect_deliver().never();
    let mut contents = MockEntryContents::new();
    contents.expect_entry_data().never();
    let mut clock = MockClock::new();
    clock.expect_now().returning(now);
    let relay = Relay::new(
        settings(),
        Arc::new(store),
        Arc::new(contents),
        Arc::new(sink),
        Arc::new(clock),
    );
    assert_eq!(relay.run_once().await.unwrap(), RelayPass::default());
    assert_eq!(relay.sink(), "crm");
}

#[tokio::test]
async fn a_store_that_fails_to_claim_fails_the_pass() {
    let mut store = MockOutboxStore::new();
    store
        .expect_claim_entries()
        .return_once(|_, _, _, _| Err(StoreError::Unavailable("down".into())));
    let mut clock = MockClock::new();
    clock.expect_now().returning(now);
    let relay = Relay::new(
        settings(),
        Arc::new(store),
        Arc::new(MockEntryContents::new()),
        Arc::new(MockSinkClient::new()),
        Arc::new(clock),
    );
    assert!(matches!(
        relay.run_once().await,
        Err(StoreError::Unavailable(_))
    ));
}

#[test]
fn random_fractions_are_in_range() {
    for _ in 0..1000 {
        let f = random_fraction();
        assert!((0.0..1.0).contains(&f), "{f}");
    }
}
