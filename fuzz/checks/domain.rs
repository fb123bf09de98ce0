//! Invariants of the SES record mapping under hostile input, shared by the fuzz targets in
//! `fuzz/` and the regression tests in `crates/domain/tests/fuzz_regressions.rs` (both include
//! this file with `#[path]`).
//!
//! Every function panics (assert) when an invariant is broken; "never panics" is checked by the
//! caller simply calling the library.

use domain::mapping::{MappedKind, event_key, map_message};
use domain::ses::{SesType, bare_address, parse_timestamp};
use domain::{BounceClass, EventType};

/// Longest error line `map_message` may report, whatever the payload (values are clipped).
pub const MAX_ERROR_LINE_BYTES: usize = 2048;

/// Arbitrary bytes (read as UTF-8, lossily) as an SNS `Message`, and as a timestamp and an
/// address.
pub fn check_message_bytes(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    check_message(&text);
    check_timestamp(&text);
    check_address(&text);
}

/// `map_message`: never panics; every event has a non-blank `ses_message_id`, a 64-hex-digit
/// `event_key` equal to `event_key(event)`, a `bounce_type` exactly when it is a bounce, and a
/// type that matches the record's; kinds without events report nothing.
pub fn check_message(message: &str) {
    let mapped = map_message(message);
    match mapped.kind {
        MappedKind::NotSes => {
            assert_eq!(mapped.ses_type, None, "NotSes with a type: {message}");
            assert!(mapped.events.is_empty() && mapped.errors.is_empty());
        }
        MappedKind::NoPlatformEvent => {
            assert!(mapped.ses_type.is_some());
            assert!(mapped.events.is_empty() && mapped.errors.is_empty());
        }
        MappedKind::Events => {}
    }
    let expected_type = mapped.ses_type.as_deref().map(|t| match SesType::parse(t) {
        SesType::Delivery => Some(EventType::Delivered),
        SesType::Bounce => Some(EventType::Bounce),
        SesType::Complaint => Some(EventType::SpamReport),
        SesType::Open => Some(EventType::Open),
        SesType::Click => Some(EventType::Click),
        _ => None,
    });
    if mapped.kind == MappedKind::Events {
        assert!(
            matches!(expected_type, Some(Some(_))),
            "Events for {:?}",
            mapped.ses_type
        );
    }
    for event in &mapped.events {
        assert_eq!(Some(Some(event.event_type)), expected_type, "{event:?}");
        assert!(
            !event.ses_message_id.trim().is_empty(),
            "blank ses_message_id: {event:?}"
        );
        assert_eq!(event.event_key.len(), 64, "{event:?}");
        assert!(
            event
                .event_key
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            "event_key not lowercase hex: {event:?}"
        );
        assert_eq!(event.event_key, event_key(event), "key is not recomputable");
        if event.event_type == EventType::Bounce {
            let Some(class) = event.bounce_type else {
                panic!("a bounce without bounce_type: {event:?}");
            };
            let hard = event
                .ses_bounce_type
                .as_deref()
                .is_some_and(|t| t.eq_ignore_ascii_case("Permanent"));
            assert_eq!(class == BounceClass::Hard, hard, "{event:?}");
        } else {
            assert_eq!(event.bounce_type, None, "{event:?}");
        }
        if let Some(recipient) = &event.recipient {
            assert_bare(recipient);
        }
        if matches!(
            event.event_type,
            EventType::Delivered | EventType::Bounce | EventType::SpamReport
        ) {
            assert!(event.recipient.is_some(), "per-recipient event without one");
        }
    }
    if matches!(
        mapped.events.first().map(|e| e.event_type),
        Some(EventType::Open | EventType::Click)
    ) {
        assert_eq!(mapped.events.len(), 1, "more than one open/click event");
    }
    for line in &mapped.errors {
        assert!(!line.is_empty());
        assert!(
            line.len() <= MAX_ERROR_LINE_BYTES,
            "error line of {} bytes",
            line.len()
        );
    }
}

/// `parse_timestamp`: never panics; agrees with RFC 3339 whenever the input is RFC 3339.
pub fn check_timestamp(raw: &str) {
    let parsed = parse_timestamp(raw);
    let trimmed = raw.trim();
    if let Some(Ok(rfc)) =
        (trimmed.len() <= 64).then(|| chrono::DateTime::parse_from_rfc3339(trimmed))
    {
        assert_eq!(parsed, Some(rfc.with_timezone(&chrono::Utc)), "{raw:?}");
    }
}

/// `bare_address`: never panics; what it returns is non-empty, trimmed of whitespace and angle
/// brackets, and part of the input.
pub fn check_address(raw: &str) {
    if let Some(bare) = bare_address(raw) {
        assert!(raw.contains(&bare), "{bare:?} is not part of {raw:?}");
        assert_bare(&bare);
    }
}

fn assert_bare(address: &str) {
    assert!(!address.is_empty());
    let trimmed = address.trim_matches(|c: char| c == '<' || c == '>' || c.is_whitespace());
    assert_eq!(trimmed, address, "address not trimmed: {address:?}");
}
