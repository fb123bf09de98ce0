use chrono::{TimeDelta, TimeZone};

use super::*;
use crate::ports::{MockClock, MockHistoryStore};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap()
}

fn clock() -> Arc<MockClock> {
    let mut clock = MockClock::new();
    clock.expect_now().return_const(now());
    Arc::new(clock)
}

fn stored(id: i64) -> StoredEvent {
    let at = now() - TimeDelta::seconds(id);
    StoredEvent {
        position: EventPosition { event_time: at, id },
        event: PlatformEvent::new(EventType::Delivered, "ses-1", at),
        sns_message_id: "sns-1".into(),
        created_at: at,
    }
}

fn service(store: MockHistoryStore, observer: MockErasureObserver) -> HistoryService {
    HistoryService::new(Arc::new(store), clock(), Arc::new(observer))
}

fn query(filter: EventFilter, limit: usize) -> EventQuery {
    EventQuery {
        filter,
        limit,
        after: None,
    }
}

#[tokio::test]
async fn a_page_asks_for_one_more_and_has_a_next_position_only_when_more_rows_follow() {
    for (rows, expect_next) in [(3_i64, Some(2)), (2, None)] {
        let mut store = MockHistoryStore::new();
        store
            .expect_list_events()
            .withf(|q| q.limit == 3)
            .returning(move |_| Ok((1..=rows).map(stored).collect()));
        let page = service(store, MockErasureObserver::new())
            .events(query(EventFilter::default(), 2))
            .await
            .unwrap();
        assert_eq!(page.items.len(), 2);
        assert_eq!(page.next.map(|p| p.id), expect_next);
    }
}

#[tokio::test]
async fn a_filter_that_can_match_nothing_never_reaches_the_store() {
    let mut store = MockHistoryStore::new();
    store.expect_list_events().times(0);
    let service = service(store, MockErasureObserver::new());
    let hard_deliveries = EventFilter {
        types: vec![EventType::Delivered],
        bounce_type: Some(BounceClass::Hard),
        ..EventFilter::default()
    };
    let backwards = EventFilter {
        since: Some(now()),
        until: Some(now()),
        ..EventFilter::default()
    };
    for filter in [hard_deliveries, backwards] {
        let page = service.events(query(filter, 10)).await.unwrap();
        assert!(page.items.is_empty() && page.next.is_none());
    }
}

#[test]
fn the_fingerprint_ignores_order_and_case_of_the_address_but_not_the_filters() {
    let a = EventFilter {
        recipient: Some(Address::parse("John@Example.com").unwrap()),
        types: vec![EventType::Bounce, EventType::Delivered],
        tags: vec![("a".into(), "1".into()), ("b".into(), "2".into())],
        ..EventFilter::default()
    };
    let b = EventFilter {
        recipient: Some(Address::parse("john@example.COM").unwrap()),
        types: vec![EventType::Delivered, EventType::Bounce],
        tags: vec![("b".into(), "2".into()), ("a".into(), "1".into())],
        ..EventFilter::default()
    };
    let c = EventFilter {
        since: Some(now()),
        ..a.clone()
    };
    assert_eq!(a.fingerprint(), b.fingerprint());
    assert_ne!(a.fingerprint(), c.fingerprint());
    assert_ne!(a.fingerprint(), EventFilter::default().fingerprint());
    assert_eq!(a.fingerprint().len(), 16);
}

#[tokio::test]
async fn an_unknown_message_is_none_and_a_message_with_only_archived_records_is_known() {
    for (messages, known) in [(0, false), (1, true)] {
        let mut store = MockHistoryStore::new();
        store
            .expect_message_timeline()
            .withf(|id| id == "ses-9")
            .returning(move |_| {
                Ok(MessageTimeline {
                    events: Vec::new(),
                    messages: (0..messages)
                        .map(|_| CarrierMessage {
                            sns_message_id: "sns-9".into(),
                            ses_type: Some("Send".into()),
                            outcome: MessageOutcome::NoEvents,
                            received_at: now(),
                            events_stored: 0,
                            raw_body_kept: true,
                        })
                        .collect(),
                })
            });
        let found = service(store, MockErasureObserver::new())
            .message("ses-9")
            .await
            .unwrap();
        assert_eq!(found.is_some(), known);
    }
}

#[tokio::test]
async fn an_erasure_passes_the_key_and_its_hash_never_the_address_and_is_observed_once_it_changed_something()
 {
    let address = Address::parse(" John@Example.com ").unwrap();
    let expected_hash = hex::encode(Sha256::digest(b"john@example.com"));
    for (deleted, observed) in [(3, 1), (0, 0)] {
        let mut store = MockHistoryStore::new();
        let hash = expected_hash.clone();
        store
            .expect_erase_recipient()
            .withf(move |key, h, request, actor, at| {
                key == "john@example.com"
                    && *h == hash
                    && request.keep_suppression
                    && *actor == Actor::Token("crm".into())
                    && *at == now()
            })
            .returning(move |_, _, _, _, at| {
                Ok(ErasureReport {
                    events_deleted: deleted,
                    recorded_at: (deleted > 0).then_some(at),
                    ..ErasureReport::default()
                })
            });
        let mut observer = MockErasureObserver::new();
        observer.expect_erased().times(observed).return_const(());
        let report = service(store, observer)
            .erase(
                &address,
                ErasureRequest::default(),
                Actor::Token("crm".into()),
            )
            .await
            .unwrap();
        assert_eq!(report.events_deleted, deleted);
    }
}
