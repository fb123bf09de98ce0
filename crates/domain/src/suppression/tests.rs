use chrono::{TimeZone, Utc};

use super::*;

fn day(n: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap() + TimeDelta::days(n)
}

fn trigger(kind: TriggerKind, key: &str, message: &str, at: DateTime<Utc>) -> Trigger {
    Trigger {
        kind,
        event_key: key.to_owned(),
        ses_message_id: message.to_owned(),
        event_time: at,
    }
}

fn soft(key: &str, message: &str, at: DateTime<Utc>) -> Trigger {
    trigger(TriggerKind::SoftBounce, key, message, at)
}

fn stored(t: &Trigger) -> SoftBounce {
    SoftBounce {
        event_key: t.event_key.clone(),
        ses_message_id: t.ses_message_id.clone(),
        event_time: t.event_time,
    }
}

fn entry(reason: SuppressionReason, expires_at: Option<DateTime<Utc>>) -> SuppressionEntry {
    SuppressionEntry {
        address: "First@Example.com".to_owned(),
        reason,
        created_at: day(0),
        expires_at,
        ses_message_id: None,
        event_key: None,
        note: None,
    }
}

fn policy() -> SuppressionPolicy {
    SuppressionPolicy::default()
}

#[test]
fn addresses_match_case_insensitively_after_trimming() {
    let a = Address::parse("  User@Example.COM\t").unwrap();
    let b = Address::parse("user@example.com").unwrap();
    assert_eq!(a.key(), b.key());
    assert_eq!(a.as_str(), "User@Example.COM");
    assert_eq!(address_key(" A+b@X.org "), "a+b@x.org");
}

#[test]
fn invalid_addresses_are_refused() {
    for raw in [
        "",
        "   ",
        "no-at-sign",
        "@example.com",
        "user@",
        "user@@example.com",
        "us er@example.com",
        "user@example..com",
        "<user@example.com>",
        "a@b.c,d@e.f",
        &format!("{}@example.com", "x".repeat(65)),
        &format!("u@{}.com", "x".repeat(260)),
    ] {
        assert!(Address::parse(raw).is_err(), "{raw:?} was accepted");
    }
    for raw in [
        "a@b",
        "first.last+tag@sub.example.co.uk",
        "\"quoted\"@example.com",
    ] {
        assert!(Address::parse(raw).is_ok(), "{raw:?} was refused");
    }
}

#[test]
fn reasons_round_trip_through_their_names() {
    for reason in SuppressionReason::ALL {
        assert_eq!(SuppressionReason::parse(reason.as_str()), Some(reason));
    }
    assert_eq!(SuppressionReason::parse("bounce"), None);
}

fn event(
    event_type: EventType,
    bounce: Option<BounceClass>,
    feedback: Option<&str>,
) -> PlatformEvent {
    PlatformEvent {
        event_key: "k".to_owned(),
        recipient: Some("a@example.com".to_owned()),
        bounce_type: bounce,
        complaint_feedback_type: feedback.map(str::to_owned),
        ..PlatformEvent::new(event_type, "m", day(0))
    }
}

#[test]
fn which_events_trigger_the_policy() {
    let cases = [
        (
            event(EventType::Bounce, Some(BounceClass::Hard), None),
            Some(TriggerKind::HardBounce),
        ),
        (
            event(EventType::Bounce, Some(BounceClass::Soft), None),
            Some(TriggerKind::SoftBounce),
        ),
        (
            event(EventType::SpamReport, None, Some("abuse")),
            Some(TriggerKind::Complaint),
        ),
        (
            event(EventType::SpamReport, None, None),
            Some(TriggerKind::Complaint),
        ),
        (event(EventType::SpamReport, None, Some("not-spam")), None),
        (event(EventType::SpamReport, None, Some("Not-Spam")), None),
        (event(EventType::Delivered, None, None), None),
        (event(EventType::Open, None, None), None),
        (event(EventType::Click, None, None), None),
        (
            PlatformEvent {
                recipient: None,
                ..event(EventType::Bounce, Some(BounceClass::Hard), None)
            },
            None,
        ),
    ];
    for (event, expected) in cases {
        assert_eq!(
            policy().trigger(&event).map(|t| t.kind),
            expected,
            "{:?} {:?} {:?}",
            event.event_type,
            event.bounce_type,
            event.complaint_feedback_type
        );
    }
    let disabled = SuppressionPolicy {
        enabled: false,
        ..policy()
    };
    assert_eq!(
        disabled.trigger(&event(EventType::Bounce, Some(BounceClass::Hard), None)),
        None
    );
}

#[test]
fn a_hard_bounce_or_a_complaint_suppresses_for_good() {
    for (kind, reason) in [
        (TriggerKind::HardBounce, SuppressionReason::HardBounce),
        (TriggerKind::Complaint, SuppressionReason::Complaint),
    ] {
        let decision = policy()
            .decide(
                &[trigger(kind, "k1", "m1", day(0))],
                &AddressFacts::default(),
                day(1),
            )
            .unwrap();
        assert_eq!(decision.reason, reason);
        assert_eq!(decision.expires_at, None);
        assert_eq!(decision.event_key, "k1");
        assert_eq!(decision.ses_message_id, "m1");
    }
}

/// A table of soft-bounce histories: the stored soft bounces, the new ones, the latest delivery,
/// and the expiry the decision should give (`None`: no entry).
#[test]
fn soft_bounces_suppress_at_the_limit_within_the_window_after_the_last_delivery() {
    struct Case {
        name: &'static str,
        stored: Vec<Trigger>,
        new: Vec<Trigger>,
        last_delivered: Option<DateTime<Utc>>,
        expect: Option<DateTime<Utc>>,
    }
    let d30 = TimeDelta::days(30);
    let cases = [
        Case {
            name: "two are not enough",
            stored: vec![soft("a", "m1", day(0))],
            new: vec![soft("b", "m2", day(1))],
            last_delivered: None,
            expect: None,
        },
        Case {
            name: "the third suppresses until 30 days after the newest",
            stored: vec![soft("a", "m1", day(0)), soft("b", "m2", day(1))],
            new: vec![soft("c", "m3", day(2))],
            last_delivered: None,
            expect: Some(day(2) + d30),
        },
        Case {
            name: "three in one batch",
            stored: vec![],
            new: vec![
                soft("a", "m1", day(0)),
                soft("b", "m2", day(1)),
                soft("c", "m3", day(2)),
            ],
            last_delivered: None,
            expect: Some(day(2) + d30),
        },
        Case {
            name: "exactly seven days apart is within the window",
            stored: vec![soft("a", "m1", day(0)), soft("b", "m2", day(3))],
            new: vec![soft("c", "m3", day(7))],
            last_delivered: None,
            expect: Some(day(7) + d30),
        },
        Case {
            name: "a second more than seven days is outside",
            stored: vec![
                soft("a", "m1", day(0) - TimeDelta::seconds(1)),
                soft("b", "m2", day(3)),
            ],
            new: vec![soft("c", "m3", day(7))],
            last_delivered: None,
            expect: None,
        },
        Case {
            name: "two bounces of one message count once",
            stored: vec![soft("a", "m1", day(0)), soft("b", "m1", day(1))],
            new: vec![soft("c", "m2", day(2))],
            last_delivered: None,
            expect: None,
        },
        Case {
            name: "a delivery after them resets the count",
            stored: vec![soft("a", "m1", day(0)), soft("b", "m2", day(1))],
            new: vec![soft("c", "m3", day(2))],
            last_delivered: Some(day(1)),
            expect: None,
        },
        Case {
            name: "a delivery before them does not",
            stored: vec![soft("a", "m1", day(1)), soft("b", "m2", day(2))],
            new: vec![soft("c", "m3", day(3))],
            last_delivered: Some(day(0)),
            expect: Some(day(3) + d30),
        },
        Case {
            name: "a late soft bounce completes a window that ends later",
            stored: vec![soft("b", "m2", day(2)), soft("c", "m3", day(4))],
            new: vec![soft("a", "m1", day(1))],
            last_delivered: None,
            expect: Some(day(4) + d30),
        },
        Case {
            name: "old windows without a new bounce do not count",
            stored: vec![
                soft("a", "m1", day(0)),
                soft("b", "m2", day(1)),
                soft("c", "m3", day(2)),
            ],
            new: vec![soft("d", "m4", day(20))],
            last_delivered: None,
            expect: None,
        },
    ];
    for case in cases {
        let facts = AddressFacts {
            last_delivered: case.last_delivered,
            soft_bounces: case.stored.iter().map(stored).collect(),
            ..AddressFacts::default()
        };
        let decision = policy().decide(&case.new, &facts, day(5));
        assert_eq!(
            decision.as_ref().and_then(|d| d.expires_at),
            case.expect,
            "{}",
            case.name
        );
        if let Some(decision) = decision {
            assert_eq!(
                decision.reason,
                SuppressionReason::SoftBounce,
                "{}",
                case.name
            );
        }
    }
}

#[test]
fn the_soft_bounce_settings_are_honoured() {
    let strict = SuppressionPolicy {
        soft_bounce_limit: 1,
        soft_bounce_suppression: TimeDelta::days(2),
        ..policy()
    };
    let decision = strict
        .decide(&[soft("a", "m1", day(0))], &AddressFacts::default(), day(1))
        .unwrap();
    assert_eq!(decision.expires_at, Some(day(2)));
}

#[test]
fn a_soft_bounce_entry_that_would_have_expired_already_is_not_written() {
    let new = [
        soft("a", "m1", day(0)),
        soft("b", "m2", day(1)),
        soft("c", "m3", day(2)),
    ];
    assert!(
        policy()
            .decide(&new, &AddressFacts::default(), day(31))
            .is_some()
    );
    assert!(
        policy()
            .decide(&new, &AddressFacts::default(), day(32))
            .is_none()
    );
}

#[test]
fn an_existing_entry_is_only_replaced_by_a_stronger_one() {
    let three = [
        soft("a", "m1", day(0)),
        soft("b", "m2", day(1)),
        soft("c", "m3", day(2)),
    ];
    let hard = [trigger(TriggerKind::HardBounce, "h", "m9", day(2))];
    let now = day(3);
    let cases = [
        (
            "permanent stays, soft",
            Some(entry(SuppressionReason::Manual, None)),
            &three[..],
            false,
        ),
        (
            "permanent stays, hard",
            Some(entry(SuppressionReason::Complaint, None)),
            &hard[..],
            false,
        ),
        (
            "a temporary one gives way to a permanent one",
            Some(entry(SuppressionReason::SoftBounce, Some(day(40)))),
            &hard[..],
            true,
        ),
        (
            "and to a soft one that expires later",
            Some(entry(SuppressionReason::Manual, Some(day(10)))),
            &three[..],
            true,
        ),
        (
            "not to one that expires sooner",
            Some(entry(SuppressionReason::SoftBounce, Some(day(40)))),
            &three[..],
            false,
        ),
        (
            "an expired entry reads as absent",
            Some(entry(SuppressionReason::Manual, Some(day(2)))),
            &three[..],
            true,
        ),
        ("no entry", None, &hard[..], true),
    ];
    for (name, existing, triggers, expect) in cases {
        let facts = AddressFacts {
            entry: existing,
            ..AddressFacts::default()
        };
        assert_eq!(
            policy().decide(triggers, &facts, now).is_some(),
            expect,
            "{name}"
        );
    }
}

#[test]
fn the_earliest_permanent_trigger_names_the_entry() {
    let triggers = [
        trigger(TriggerKind::Complaint, "c", "m2", day(2)),
        trigger(TriggerKind::HardBounce, "h", "m1", day(1)),
        soft("s", "m3", day(0)),
    ];
    let decision = policy()
        .decide(&triggers, &AddressFacts::default(), day(3))
        .unwrap();
    assert_eq!(
        (decision.reason, decision.event_key.as_str()),
        (SuppressionReason::HardBounce, "h")
    );
}

#[test]
fn the_soft_bounce_span_covers_a_window_either_side_of_the_soft_triggers() {
    let triggers = [
        soft("a", "m1", day(3)),
        trigger(TriggerKind::HardBounce, "h", "m2", day(0)),
        soft("b", "m3", day(5)),
    ];
    assert_eq!(
        policy().soft_bounce_span(&triggers),
        Some((day(3) - TimeDelta::days(7), day(5) + TimeDelta::days(7)))
    );
    assert_eq!(policy().soft_bounce_span(&triggers[1..2]), None);
}

#[test]
fn a_decision_keeps_the_address_as_first_seen() {
    let decision = Decision {
        reason: SuppressionReason::HardBounce,
        expires_at: None,
        ses_message_id: "m".to_owned(),
        event_key: "k".to_owned(),
    };
    let existing = entry(SuppressionReason::SoftBounce, Some(day(1)));
    assert_eq!(
        decision
            .clone()
            .into_entry("first@example.com", Some(&existing), day(2))
            .address,
        "First@Example.com"
    );
    assert_eq!(
        decision.into_entry("New@example.com", None, day(2)).address,
        "New@example.com"
    );
}
