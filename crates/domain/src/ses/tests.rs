use chrono::{TimeZone, Utc};

use super::*;

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32, ms: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s)
        .single()
        .map(|t| t + chrono::Duration::milliseconds(i64::from(ms)))
        .unwrap_or_default()
}

#[test]
fn parse_timestamp_accepts_rfc3339_and_the_forms_seen_in_ses_payloads() {
    let cases = [
        ("2016-01-27T14:05:45.000Z", utc(2016, 1, 27, 14, 5, 45, 0)),
        ("2017-08-05T00:41:02.669Z", utc(2017, 8, 5, 0, 41, 2, 669)),
        ("2016-01-27T14:05:45Z", utc(2016, 1, 27, 14, 5, 45, 0)),
        (
            "2009-12-03T04:24:21.000-05:00",
            utc(2009, 12, 3, 9, 24, 21, 0),
        ),
        ("2018-10-08T14:05:45 +0000", utc(2018, 10, 8, 14, 5, 45, 0)),
        ("2018-10-08T14:05:45+0000", utc(2018, 10, 8, 14, 5, 45, 0)),
        ("2018-10-08T14:05:45 +00:00", utc(2018, 10, 8, 14, 5, 45, 0)),
        (
            "2018-10-08T14:05:45.123 +0000",
            utc(2018, 10, 8, 14, 5, 45, 123),
        ),
        (
            "2018-10-08T14:05:45.123+0200",
            utc(2018, 10, 8, 12, 5, 45, 123),
        ),
        ("2018-10-08 14:05:45 +0000", utc(2018, 10, 8, 14, 5, 45, 0)),
        ("2018-10-08 14:05:45Z", utc(2018, 10, 8, 14, 5, 45, 0)),
        ("2018-10-08T14:05:45 UTC", utc(2018, 10, 8, 14, 5, 45, 0)),
        ("2018-10-08T14:05:45", utc(2018, 10, 8, 14, 5, 45, 0)),
        (
            "  2018-10-08T14:05:45.5Z \n",
            utc(2018, 10, 8, 14, 5, 45, 500),
        ),
    ];
    for (raw, expected) in cases {
        assert_eq!(parse_timestamp(raw), Some(expected), "{raw:?}");
    }
}

#[test]
fn parse_timestamp_rejects_garbage_without_panicking() {
    let long = "2".repeat(10_000);
    let cases = [
        "",
        "   ",
        "yesterday",
        "2018-10-08",
        "2018-10-08X14:05:45Z",
        "2018-13-08T14:05:45Z",
        "2018-10-08T25:05:45Z",
        "Mon, 08 Oct 2018 14:05:45 +0000",
        "2018-10-08T14:05:45 +99999",
        "ééééééééééééé",
        "2018-10-0éT14:05:45Z",
        long.as_str(),
    ];
    for raw in cases {
        assert_eq!(parse_timestamp(raw), None, "{raw:?}");
    }
}

#[test]
fn bare_address_strips_display_names_brackets_and_whitespace() {
    let cases = [
        ("john@example.com", Some("john@example.com")),
        ("  john@example.com\t", Some("john@example.com")),
        ("John <john@example.com>", Some("john@example.com")),
        (
            "John <test123123123123123@gmail.com>",
            Some("test123123123123123@gmail.com"),
        ),
        ("\"Some, Service\" <a@b.example>", Some("a@b.example")),
        ("\"a <b> c\" <real@example.com>", Some("real@example.com")),
        ("<john@example.com>", Some("john@example.com")),
        ("< john@example.com >", Some("john@example.com")),
        ("John <john@example.com", Some("john@example.com")),
        ("John.Doe@Example.COM", Some("John.Doe@Example.COM")),
        (
            "user@xn--bcher-kva.example",
            Some("user@xn--bcher-kva.example"),
        ),
        (
            "Name <user@xn--bcher-kva.example>",
            Some("user@xn--bcher-kva.example"),
        ),
        ("\"john doe\"@example.com", Some("\"john doe\"@example.com")),
        ("", None),
        ("   ", None),
        ("John <>", None),
        ("<>", None),
    ];
    for (raw, expected) in cases {
        assert_eq!(bare_address(raw).as_deref(), expected, "{raw:?}");
    }
}

#[test]
fn ses_type_prefers_event_type_and_ignores_empty_values() {
    let record = |json: &str| SesRecord::from_message(json).unwrap_or_default();
    assert_eq!(
        record(r#"{"eventType":"Open","notificationType":"Bounce"}"#).ses_type(),
        Some("Open")
    );
    assert_eq!(
        record(r#"{"notificationType":"Bounce"}"#).ses_type(),
        Some("Bounce")
    );
    assert_eq!(
        record(r#"{"eventType":"","notificationType":"Bounce"}"#).ses_type(),
        Some("Bounce")
    );
    assert_eq!(
        record(r#"{"eventType":5,"notificationType":"Bounce"}"#).ses_type(),
        Some("Bounce")
    );
    assert_eq!(record(r#"{"foo":"bar"}"#).ses_type(), None);
}

#[test]
fn from_message_is_none_for_non_objects() {
    for message in [
        "Successfully validated SNS topic for Amazon SES event publishing.",
        "",
        "[1,2]",
        "\"Bounce\"",
        "null",
        "{\"eventType\":",
    ] {
        assert_eq!(SesRecord::from_message(message), None, "{message:?}");
    }
}

#[test]
fn fields_of_unexpected_type_read_as_none_instead_of_failing() {
    let record = SesRecord::from_message(
        r#"{
            "eventType": "Bounce",
            "mail": {"messageId": 5, "timestamp": ["x"], "destination": "a@b", "tags": 3,
                     "commonHeaders": "x", "headersTruncated": "no"},
            "bounce": {"bounceType": {}, "bouncedRecipients": [5, {"emailAddress": 7},
                       {"emailAddress": "a@b", "status": 550}]},
            "delivery": [1, 2],
            "complaint": null,
            "click": {"linkTags": {"a": "one", "b": ["x", 1, "y"], "c": 5}}
        }"#,
    )
    .unwrap_or_default();
    assert_eq!(record.ses_type(), Some("Bounce"));
    let mail = record.mail.unwrap_or_default();
    assert_eq!(mail.message_id, None);
    assert_eq!(mail.timestamp, None);
    assert_eq!(mail.destination, None);
    assert_eq!(mail.tags, None);
    assert_eq!(mail.common_headers, None);
    assert_eq!(mail.headers_truncated, None);
    let bounce = record.bounce.unwrap_or_default();
    assert_eq!(bounce.bounce_type, None);
    let recipients = bounce.bounced_recipients.unwrap_or_default();
    assert_eq!(recipients.len(), 3);
    assert_eq!(recipients[0], BouncedRecipient::default());
    assert_eq!(recipients[1].email_address, None);
    assert_eq!(recipients[2].email_address.as_deref(), Some("a@b"));
    assert_eq!(recipients[2].status, None);
    assert_eq!(record.delivery, None);
    assert_eq!(record.complaint, None);
    let link_tags = record
        .click
        .unwrap_or_default()
        .link_tags
        .unwrap_or_default();
    assert_eq!(link_tags.get("a"), Some(&vec!["one".to_owned()]));
    assert_eq!(
        link_tags.get("b"),
        Some(&vec!["x".to_owned(), "y".to_owned()])
    );
    assert_eq!(link_tags.get("c"), None);
}

#[test]
fn full_fixture_reads_every_modelled_field() {
    let record = SesRecord::from_message(include_str!(
        "../../../../tests/fixtures/ses/notification_delivery_1.json"
    ))
    .unwrap_or_default();
    let mail = record.mail.unwrap_or_default();
    assert_eq!(
        mail.message_id.as_deref(),
        Some("0000014644fe5ef6-9a483358-9170-4cb4-a269-f5dcdf415321-000000")
    );
    assert_eq!(mail.time(), Some(utc(2016, 1, 27, 14, 59, 38, 237)));
    assert_eq!(mail.sending_account_id.as_deref(), Some("123456789012"));
    assert_eq!(mail.headers_truncated, Some(false));
    let headers = mail.common_headers.unwrap_or_default();
    assert_eq!(headers.subject.as_deref(), Some("Hello"));
    assert_eq!(headers.message_id.as_deref(), Some("custom-message-ID"));
    let delivery = record.delivery.unwrap_or_default();
    assert_eq!(delivery.processing_time_millis, Some(546));
    assert_eq!(
        delivery.reporting_mta.as_deref(),
        Some("a8-70.smtp-out.amazonses.com")
    );
    assert_eq!(delivery.remote_mta_ip.as_deref(), Some("127.0.2.0"));
    assert_eq!(
        delivery.recipients,
        Some(vec![Some("jane@example.com".to_owned())])
    );
}

#[test]
fn ses_type_parse_knows_every_documented_type() {
    let cases = [
        ("Send", SesType::Send),
        ("Reject", SesType::Reject),
        ("Bounce", SesType::Bounce),
        ("Complaint", SesType::Complaint),
        ("Delivery", SesType::Delivery),
        ("Open", SesType::Open),
        ("Click", SesType::Click),
        ("Rendering Failure", SesType::RenderingFailure),
        ("DeliveryDelay", SesType::DeliveryDelay),
        ("Subscription", SesType::Subscription),
        (
            "AmazonSnsSubscriptionSucceeded",
            SesType::AmazonSnsSubscriptionSucceeded,
        ),
        ("RenderingFailure", SesType::Unknown),
        ("bounce", SesType::Unknown),
        ("Whatever", SesType::Unknown),
    ];
    for (name, expected) in cases {
        assert_eq!(SesType::parse(name), expected, "{name}");
    }
}
