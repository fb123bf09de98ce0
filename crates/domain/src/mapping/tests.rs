use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::*;

macro_rules! fixtures {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../../../../tests/fixtures/ses/", $name)))),*]
    };
}

/// Every whole-record fixture; `every_fixture_file_is_covered` keeps this list complete.
const RECORDS: &[(&str, &str)] = fixtures![
    "event_bounce_1.json",
    "event_bounce_2.json",
    "event_click_1.json",
    "event_complaint_1.json",
    "event_complaint_2.json",
    "event_delivery_1.json",
    "event_deliverydelay_1.json",
    "event_open_1.json",
    "event_reject_1.json",
    "event_renderingfailure_1.json",
    "event_send_1.json",
    "event_subscription_1.json",
    "notification_amazonsnssubscriptionsucceeded_1.json",
    "notification_amazonsnssubscriptionsucceeded_2.json",
    "notification_bounce_1.json",
    "notification_bounce_10.json",
    "notification_bounce_11.json",
    "notification_bounce_2.json",
    "notification_bounce_3.json",
    "notification_bounce_4.json",
    "notification_bounce_5.json",
    "notification_bounce_6.json",
    "notification_bounce_7.json",
    "notification_bounce_8.json",
    "notification_bounce_9.json",
    "notification_complaint_1.json",
    "notification_complaint_2.json",
    "notification_complaint_3.json",
    "notification_complaint_4.json",
    "notification_delivery_1.json",
    "notification_delivery_2.json",
    "notification_delivery_3.json",
    "notification_delivery_4.json",
];

/// Fixtures holding one part of a record; the tests wrap them into whole records.
const FRAGMENTS: &[(&str, &str)] = fixtures![
    "notification_fragment-bounce_1.json",
    "notification_fragment-bounce_2.json",
    "notification_fragment-bouncedrecipient_1.json",
    "notification_fragment-complainedrecipient_1.json",
    "notification_fragment-complaint_1.json",
    "notification_fragment-delivery_1.json",
    "notification_fragment-mail_1.json",
];

fn find(table: &[(&str, &'static str)], name: &str) -> &'static str {
    table
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, text)| *text)
        .unwrap_or_else(|| panic!("no fixture {name}"))
}

fn record(name: &str) -> &'static str {
    find(RECORDS, name)
}

fn fragment(name: &str) -> Value {
    serde_json::from_str(find(FRAGMENTS, name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn record_value(name: &str) -> Value {
    serde_json::from_str(record(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn map_value(value: &Value) -> Mapped {
    map_message(&value.to_string())
}

fn time(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339)
        .unwrap_or_else(|e| panic!("{rfc3339}: {e}"))
        .with_timezone(&Utc)
}

fn recipients(mapped: &Mapped) -> Vec<Option<&str>> {
    mapped
        .events
        .iter()
        .map(|e| e.recipient.as_deref())
        .collect()
}

fn keys(mapped: &Mapped) -> Vec<&str> {
    mapped.events.iter().map(|e| e.event_key.as_str()).collect()
}

fn only_event(mapped: &Mapped) -> &PlatformEvent {
    assert_eq!(mapped.events.len(), 1, "{mapped:#?}");
    &mapped.events[0]
}

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

#[test]
fn every_fixture_file_is_covered() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/ses");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{dir}: {e}")) {
        let name = entry
            .unwrap_or_else(|e| panic!("{dir}: {e}"))
            .file_name()
            .to_string_lossy()
            .into_owned();
        if !name.ends_with(".json") {
            continue;
        }
        seen += 1;
        let table = if name.starts_with("notification_fragment-") {
            FRAGMENTS
        } else {
            RECORDS
        };
        assert!(
            table.iter().any(|(n, _)| *n == name),
            "fixture {name} is not exercised by the mapping tests"
        );
    }
    assert_eq!(seen, RECORDS.len() + FRAGMENTS.len());
}

struct Expect {
    file: &'static str,
    kind: MappedKind,
    ses_type: &'static str,
    event_type: Option<EventType>,
    recipients: &'static [Option<&'static str>],
    bounce: Option<BounceClass>,
}

const fn events(
    file: &'static str,
    ses_type: &'static str,
    event_type: EventType,
    recipients: &'static [Option<&'static str>],
    bounce: Option<BounceClass>,
) -> Expect {
    Expect {
        file,
        kind: MappedKind::Events,
        ses_type,
        event_type: Some(event_type),
        recipients,
        bounce,
    }
}

const fn no_events(file: &'static str, ses_type: &'static str) -> Expect {
    Expect {
        file,
        kind: MappedKind::NoPlatformEvent,
        ses_type,
        event_type: None,
        recipients: &[],
        bounce: None,
    }
}

const HARD: Option<BounceClass> = Some(BounceClass::Hard);

#[test]
fn every_whole_record_fixture_maps_as_the_table_says() {
    use EventType::{Bounce, Click, Delivered, Open, SpamReport};
    let expectations = [
        events(
            "event_bounce_1.json",
            "Bounce",
            Bounce,
            &[Some("recipient@example.com")],
            HARD,
        ),
        events(
            "event_bounce_2.json",
            "Bounce",
            Bounce,
            &[Some("bounce@simulator.amazonses.com")],
            HARD,
        ),
        events(
            "event_click_1.json",
            "Click",
            Click,
            &[Some("recipient@example.com")],
            None,
        ),
        events(
            "event_complaint_1.json",
            "Complaint",
            SpamReport,
            &[Some("recipient@example.com")],
            None,
        ),
        events(
            "event_complaint_2.json",
            "Complaint",
            SpamReport,
            &[Some("complaint@simulator.amazonses.com")],
            None,
        ),
        events(
            "event_delivery_1.json",
            "Delivery",
            Delivered,
            &[Some("recipient@example.com")],
            None,
        ),
        no_events("event_deliverydelay_1.json", "DeliveryDelay"),
        events(
            "event_open_1.json",
            "Open",
            Open,
            &[Some("recipient@example.com")],
            None,
        ),
        no_events("event_reject_1.json", "Reject"),
        no_events("event_renderingfailure_1.json", "Rendering Failure"),
        no_events("event_send_1.json", "Send"),
        no_events("event_subscription_1.json", "Subscription"),
        no_events(
            "notification_amazonsnssubscriptionsucceeded_1.json",
            "AmazonSnsSubscriptionSucceeded",
        ),
        no_events(
            "notification_amazonsnssubscriptionsucceeded_2.json",
            "AmazonSnsSubscriptionSucceeded",
        ),
        events(
            "notification_bounce_1.json",
            "Bounce",
            Bounce,
            &[Some("jane@example.com")],
            HARD,
        ),
        events(
            "notification_bounce_10.json",
            "Bounce",
            Bounce,
            &[Some("s@jakepfaf.dev")],
            HARD,
        ),
        events(
            "notification_bounce_11.json",
            "Bounce",
            Bounce,
            &[Some("larry@customer.com")],
            HARD,
        ),
        events(
            "notification_bounce_2.json",
            "Bounce",
            Bounce,
            &[Some("jane@example.com"), Some("richard@example.com")],
            HARD,
        ),
        events(
            "notification_bounce_3.json",
            "Bounce",
            Bounce,
            &[Some("bounce@simulator.amazonses.com")],
            HARD,
        ),
        events(
            "notification_bounce_4.json",
            "Bounce",
            Bounce,
            &[Some("jane@example.com")],
            HARD,
        ),
        events(
            "notification_bounce_5.json",
            "Bounce",
            Bounce,
            &[
                Some("bar@example.com"),
                Some("baz@example.com"),
                Some("qux@example.com"),
            ],
            HARD,
        ),
        events(
            "notification_bounce_6.json",
            "Bounce",
            Bounce,
            &[Some("nope@nope.com")],
            HARD,
        ),
        events(
            "notification_bounce_7.json",
            "Bounce",
            Bounce,
            &[Some("bounce@simulator.amazonses.com")],
            HARD,
        ),
        events(
            "notification_bounce_8.json",
            "Bounce",
            Bounce,
            &[Some("hi@simulator.amazonses.com")],
            HARD,
        ),
        events(
            "notification_bounce_9.json",
            "Bounce",
            Bounce,
            &[Some("test123123123123123@gmail.com")],
            HARD,
        ),
        events(
            "notification_complaint_1.json",
            "Complaint",
            SpamReport,
            &[Some("richard@example.com")],
            None,
        ),
        events(
            "notification_complaint_2.json",
            "Complaint",
            SpamReport,
            &[Some("richard@example.com")],
            None,
        ),
        events(
            "notification_complaint_3.json",
            "Complaint",
            SpamReport,
            &[Some("recipient1@example.com")],
            None,
        ),
        events(
            "notification_complaint_4.json",
            "Complaint",
            SpamReport,
            &[Some("baz@example.com")],
            None,
        ),
        events(
            "notification_delivery_1.json",
            "Delivery",
            Delivered,
            &[Some("jane@example.com")],
            None,
        ),
        events(
            "notification_delivery_2.json",
            "Delivery",
            Delivered,
            &[Some("testing@digital.cabinet-office.gov.uk")],
            None,
        ),
        events(
            "notification_delivery_3.json",
            "Delivery",
            Delivered,
            &[Some("xyzzy@example.com")],
            None,
        ),
        events(
            "notification_delivery_4.json",
            "Delivery",
            Delivered,
            &[Some("jason@sumo.com")],
            None,
        ),
    ];
    assert_eq!(
        expectations.len(),
        RECORDS.len(),
        "one expectation per fixture"
    );
    for expect in &expectations {
        let text = record(expect.file);
        let mapped = map_message(text);
        let file = expect.file;
        assert_eq!(mapped.kind, expect.kind, "{file}");
        assert_eq!(mapped.ses_type.as_deref(), Some(expect.ses_type), "{file}");
        assert!(mapped.errors.is_empty(), "{file}: {:?}", mapped.errors);
        assert_eq!(recipients(&mapped), expect.recipients, "{file}");
        let message_id = serde_json::from_str::<Value>(text)
            .ok()
            .and_then(|v| v["mail"]["messageId"].as_str().map(str::to_owned));
        for event in &mapped.events {
            assert_eq!(Some(event.event_type), expect.event_type, "{file}");
            assert_eq!(event.bounce_type, expect.bounce, "{file}");
            assert_eq!(Some(&event.ses_message_id), message_id.as_ref(), "{file}");
            assert_eq!(event.event_key, event_key(event), "{file}");
            assert_eq!(event.event_key.len(), 64, "{file}");
            assert!(event.mail_time.is_some(), "{file}: mail time");
        }
        let mut unique = keys(&mapped);
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), mapped.events.len(), "{file}: keys unique");
    }
}

#[test]
fn event_publishing_bounce_keeps_every_detail() {
    let mapped = map_message(record("event_bounce_1.json"));
    let event = only_event(&mapped);
    assert_eq!(event.event_type, EventType::Bounce);
    assert_eq!(event.bounce_type, Some(BounceClass::Hard));
    assert_eq!(event.ses_bounce_type.as_deref(), Some("Permanent"));
    assert_eq!(event.bounce_subtype.as_deref(), Some("General"));
    assert_eq!(event.action.as_deref(), Some("failed"));
    assert_eq!(event.status.as_deref(), Some("5.1.1"));
    assert_eq!(
        event.diagnostic_code.as_deref(),
        Some("smtp; 550 5.1.1 user unknown")
    );
    assert_eq!(
        event.feedback_id.as_deref(),
        Some("01000157c44f053b-61b59c11-9236-11e6-8f96-7be8aexample-000000")
    );
    assert_eq!(event.reporting_mta.as_deref(), Some("dsn; mta.example.com"));
    assert_eq!(event.remote_mta_ip, None);
    assert_eq!(
        event.ses_message_id,
        "EXAMPLE7c191be45-e9aedb9a-02f9-4d12-a87d-dd0099a07f8a-000000"
    );
    assert_eq!(event.event_time, time("2017-08-05T00:41:02.669Z"));
    assert_eq!(event.mail_time, Some(time("2017-08-05T00:40:02.012Z")));
    assert_eq!(
        event.source.as_deref(),
        Some("Sender Name <sender@example.com>")
    );
    assert_eq!(
        event.subject.as_deref(),
        Some("Message sent from Amazon SES")
    );
    assert_eq!(
        event.tags,
        Some(json!({
            "ses:configuration-set": ["ConfigSet"],
            "ses:source-ip": ["192.0.2.0"],
            "ses:from-domain": ["example.com"],
            "ses:caller-identity": ["ses_user"],
        }))
    );
    assert_eq!(event.complaint_feedback_type, None);
    assert_eq!(event.link, None);
}

#[test]
fn notification_bounce_without_dsn_has_addresses_only() {
    let mapped = map_message(record("notification_bounce_2.json"));
    assert_eq!(mapped.events.len(), 2);
    for event in &mapped.events {
        assert_eq!(event.action, None);
        assert_eq!(event.status, None);
        assert_eq!(event.diagnostic_code, None);
        assert_eq!(event.reporting_mta, None);
        assert_eq!(event.remote_mta_ip.as_deref(), Some("127.0.2.0"));
        assert_eq!(event.tags, None, "identity notifications carry no tags");
    }
}

#[test]
fn suppression_list_bounces_are_hard_and_keep_the_subtype() {
    for (file, subtype) in [
        ("notification_bounce_8.json", "Suppressed"),
        ("notification_bounce_9.json", "OnAccountSuppressionList"),
        ("notification_bounce_10.json", "OnAccountSuppressionList"),
        ("notification_bounce_11.json", "Suppressed"),
    ] {
        let mapped = map_message(record(file));
        let event = only_event(&mapped);
        assert_eq!(event.bounce_type, Some(BounceClass::Hard), "{file}");
        assert_eq!(event.bounce_subtype.as_deref(), Some(subtype), "{file}");
        assert_eq!(
            event.reporting_mta.as_deref(),
            Some("dns; amazonses.com"),
            "{file}"
        );
        assert!(
            event
                .diagnostic_code
                .as_deref()
                .is_some_and(|d| d.contains("suppress")),
            "{file}"
        );
    }
    // Suppressed before sending: the bounce happens at the very instant of the mail.
    let mapped = map_message(record("notification_bounce_10.json"));
    let event = only_event(&mapped);
    assert_eq!(Some(event.event_time), event.mail_time);
}

#[test]
fn display_name_recipients_become_bare_addresses() {
    let mapped = map_message(record("notification_bounce_9.json"));
    let event = only_event(&mapped);
    assert_eq!(
        event.recipient.as_deref(),
        Some("test123123123123123@gmail.com")
    );
    assert_eq!(event.event_time, time("2021-05-08T14:35:45.000Z"));
}

#[test]
fn non_rfc3339_mail_timestamps_are_parsed() {
    for (file, mail_time, event_time) in [
        (
            "notification_bounce_5.json",
            "2016-01-27T14:05:45Z",
            "2012-05-25T14:59:38.605Z",
        ),
        (
            "notification_complaint_4.json",
            "2018-02-14T09:15:51Z",
            "2012-05-25T14:59:38.623Z",
        ),
        (
            "notification_delivery_3.json",
            "2017-04-24T15:44:00Z",
            "2014-05-28T22:41:01.184Z",
        ),
    ] {
        let mapped = map_message(record(file));
        assert!(mapped.errors.is_empty(), "{file}");
        for event in &mapped.events {
            assert_eq!(event.mail_time, Some(time(mail_time)), "{file}");
            assert_eq!(event.event_time, time(event_time), "{file}");
        }
    }
}

#[test]
fn bounced_recipients_not_in_destination_still_become_events() {
    // bounce_5: destination is bar@ only, yet SES reports three bounced recipients.
    let mapped = map_message(record("notification_bounce_5.json"));
    assert_eq!(mapped.events.len(), 3);
    assert!(
        mapped
            .events
            .iter()
            .all(|e| e.subject.as_deref() == Some("Bounce Subject"))
    );
}

#[test]
fn complaints_keep_feedback_details() {
    let mapped = map_message(record("notification_complaint_1.json"));
    let event = only_event(&mapped);
    assert_eq!(event.event_type, EventType::SpamReport);
    assert_eq!(event.bounce_type, None);
    assert_eq!(event.complaint_feedback_type.as_deref(), Some("abuse"));
    assert_eq!(event.complaint_subtype, None);
    assert_eq!(
        event.user_agent.as_deref(),
        Some("AnyCompany Feedback Loop (V0.01)")
    );
    assert_eq!(
        event.feedback_id.as_deref(),
        Some("000001378603177f-18c07c78-fa81-4a58-9dd1-fedc3cb8f49a-000000")
    );

    // complaintSubType: null, without feedback report, display-name source kept as received.
    let null_subtype = map_message(record("event_complaint_2.json"));
    assert_eq!(only_event(&null_subtype).complaint_subtype, None);
    let no_report = map_message(record("notification_complaint_2.json"));
    assert_eq!(only_event(&no_report).complaint_feedback_type, None);
    assert_eq!(only_event(&no_report).user_agent, None);
    let display_source = map_message(record("notification_complaint_3.json"));
    assert_eq!(
        only_event(&display_source).source.as_deref(),
        Some("\"Some Service\" <someservicenotifications.service.gov.uk>")
    );

    let mut value = record_value("notification_complaint_1.json");
    value["complaint"]["complaintSubType"] = json!("OnAccountSuppressionList");
    let mapped = map_value(&value);
    assert_eq!(
        only_event(&mapped).complaint_subtype.as_deref(),
        Some("OnAccountSuppressionList")
    );
}

#[test]
fn deliveries_keep_smtp_details() {
    let mapped = map_message(record("notification_delivery_1.json"));
    let event = only_event(&mapped);
    assert_eq!(event.event_type, EventType::Delivered);
    assert_eq!(event.bounce_type, None);
    assert_eq!(
        event.smtp_response.as_deref(),
        Some("250 ok:  Message 64111812 accepted")
    );
    assert_eq!(
        event.reporting_mta.as_deref(),
        Some("a8-70.smtp-out.amazonses.com")
    );
    assert_eq!(event.remote_mta_ip.as_deref(), Some("127.0.2.0"));
    assert_eq!(event.processing_time_millis, Some(546));
    assert_eq!(event.event_time, time("2016-01-27T14:59:38.237Z"));
    assert_eq!(event.subject.as_deref(), Some("Hello"));

    let published = map_message(record("event_delivery_1.json"));
    let event = only_event(&published);
    assert_eq!(event.processing_time_millis, Some(11893));
    assert_eq!(event.remote_mta_ip, None);
    assert_eq!(
        event.tags.as_ref().and_then(|t| t.get("ses:outgoing-ip")),
        Some(&json!(["192.0.2.0"]))
    );
}

#[test]
fn delivery_with_several_recipients_gives_one_event_each() {
    let mut value = record_value("notification_delivery_1.json");
    value["delivery"]["recipients"] =
        json!(["a@example.com", "B <b@example.com>", "c@example.com"]);
    let mapped = map_value(&value);
    assert_eq!(
        recipients(&mapped),
        [
            Some("a@example.com"),
            Some("b@example.com"),
            Some("c@example.com")
        ]
    );
}

#[test]
fn open_and_click_keep_their_details() {
    let open = map_message(record("event_open_1.json"));
    let event = only_event(&open);
    assert_eq!(event.event_type, EventType::Open);
    assert_eq!(event.ip_address.as_deref(), Some("192.0.2.1"));
    assert!(
        event
            .user_agent
            .as_deref()
            .is_some_and(|ua| ua.starts_with("Mozilla/5.0 (iPhone"))
    );
    assert_eq!(event.event_time, time("2017-08-09T22:00:19.652Z"));
    assert_eq!(event.link, None);

    let click = map_message(record("event_click_1.json"));
    let event = only_event(&click);
    assert_eq!(event.event_type, EventType::Click);
    assert_eq!(
        event.link.as_deref(),
        Some("http://docs.aws.amazon.com/ses/latest/DeveloperGuide/send-email-smtp.html")
    );
    assert_eq!(
        event.link_tags,
        Some(json!({"samplekey0": ["samplevalue0"], "samplekey1": ["samplevalue1"]}))
    );
    assert_eq!(event.ip_address.as_deref(), Some("192.0.2.1"));
    assert_eq!(event.event_time, time("2017-08-09T23:51:25.570Z"));
}

#[test]
fn opens_and_clicks_name_a_recipient_only_for_a_single_destination() {
    for file in ["event_open_1.json", "event_click_1.json"] {
        let cases: [(Value, Option<&str>); 5] = [
            (
                json!(["recipient@example.com"]),
                Some("recipient@example.com"),
            ),
            (json!(["Jo <jo@example.com>"]), Some("jo@example.com")),
            (json!(["a@example.com", "b@example.com"]), None),
            (json!([]), None),
            (json!("a@example.com"), None),
        ];
        for (destination, expected) in cases {
            let mut value = record_value(file);
            value["mail"]["destination"] = destination.clone();
            let mapped = map_value(&value);
            assert_eq!(mapped.kind, MappedKind::Events);
            assert!(mapped.errors.is_empty());
            assert_eq!(
                only_event(&mapped).recipient.as_deref(),
                expected,
                "{file} {destination}"
            );
        }
        let mut value = record_value(file);
        value["mail"]
            .as_object_mut()
            .map(|mail| mail.remove("destination"));
        assert_eq!(only_event(&map_value(&value)).recipient, None);
    }
}

// ---------------------------------------------------------------------------------------------
// Fragments, wrapped into whole records
// ---------------------------------------------------------------------------------------------

fn notification(kind: &str, key: &str, object: Value) -> Value {
    json!({
        "notificationType": kind,
        "mail": fragment("notification_fragment-mail_1.json"),
        key: object,
    })
}

#[test]
fn fragment_mail_with_fragment_bounce_1_gives_two_hard_bounces_with_actions_kept() {
    // Decision: classification is per bounceType, so the `delayed` recipient of a Permanent
    // bounce is a hard bounce too; `action` and `status` tell consumers the difference.
    let value = notification(
        "Bounce",
        "bounce",
        fragment("notification_fragment-bounce_1.json"),
    );
    let mapped = map_value(&value);
    assert_eq!(mapped.kind, MappedKind::Events);
    assert!(mapped.errors.is_empty());
    assert_eq!(
        recipients(&mapped),
        [
            Some("recipient1@example.com"),
            Some("recipient2@example.com")
        ]
    );
    let [failed, delayed] = mapped.events.as_slice() else {
        panic!("two events expected");
    };
    assert_eq!(failed.bounce_type, Some(BounceClass::Hard));
    assert_eq!(failed.action.as_deref(), Some("failed"));
    assert_eq!(failed.status.as_deref(), Some("5.0.0"));
    assert_eq!(
        failed.diagnostic_code.as_deref(),
        Some("smtp; 550 user unknown")
    );
    assert_eq!(delayed.bounce_type, Some(BounceClass::Hard));
    assert_eq!(delayed.action.as_deref(), Some("delayed"));
    assert_eq!(delayed.status.as_deref(), Some("4.0.0"));
    assert_eq!(delayed.diagnostic_code, None);
    assert_eq!(delayed.reporting_mta.as_deref(), Some("example.com"));
    assert_eq!(delayed.remote_mta_ip.as_deref(), Some("127.0.2.0"));
    // fragment-mail_1: non-RFC 3339 timestamp, subject from commonHeaders.
    assert_eq!(failed.mail_time, Some(time("2018-10-08T14:05:45Z")));
    assert_eq!(failed.event_time, time("2012-05-25T14:59:38.605Z"));
    assert_eq!(
        failed.subject.as_deref(),
        Some("Message sent using Amazon SES")
    );
    assert_eq!(
        failed.ses_message_id,
        "000001378603177f-7a5433e7-8edb-42ae-af10-f0181f34d6ee-000000"
    );
    assert_ne!(failed.event_key, delayed.event_key);
}

#[test]
fn transient_bounce_with_5xx_status_stays_soft_and_keeps_the_status() {
    let value = notification(
        "Bounce",
        "bounce",
        fragment("notification_fragment-bounce_2.json"),
    );
    let mapped = map_value(&value);
    let event = only_event(&mapped);
    assert_eq!(event.recipient.as_deref(), Some("eg@gmail.ocm"));
    assert_eq!(event.bounce_type, Some(BounceClass::Soft));
    assert_eq!(event.ses_bounce_type.as_deref(), Some("Transient"));
    assert_eq!(event.action.as_deref(), Some("failed"));
    assert_eq!(event.status.as_deref(), Some("5.4.4"));
    assert_eq!(
        event.diagnostic_code.as_deref(),
        Some("smtp; 550 5.4.4 Invalid domain")
    );
}

#[test]
fn undetermined_and_unknown_bounce_types_are_soft() {
    for bounce_type in [
        json!("Undetermined"),
        json!("Transient"),
        json!("Other"),
        Value::Null,
    ] {
        let mut bounce = fragment("notification_fragment-bounce_2.json");
        bounce["bounceType"] = bounce_type.clone();
        let mapped = map_value(&notification("Bounce", "bounce", bounce));
        assert_eq!(
            only_event(&mapped).bounce_type,
            Some(BounceClass::Soft),
            "{bounce_type}"
        );
    }
}

#[test]
fn fragment_bounced_recipient_fits_into_a_bounce() {
    let mut bounce = fragment("notification_fragment-bounce_1.json");
    bounce["bouncedRecipients"] =
        json!([fragment("notification_fragment-bouncedrecipient_1.json")]);
    let mapped = map_value(&notification("Bounce", "bounce", bounce));
    let event = only_event(&mapped);
    assert_eq!(event.recipient.as_deref(), Some("recipient@example.com"));
    assert_eq!(
        event.diagnostic_code.as_deref(),
        Some("X-Postfix; unknown user")
    );
    assert_eq!(event.status.as_deref(), Some("5.0.0"));
}

#[test]
fn fragment_complaint_and_complained_recipient_give_spam_reports() {
    let mapped = map_value(&notification(
        "Complaint",
        "complaint",
        fragment("notification_fragment-complaint_1.json"),
    ));
    let event = only_event(&mapped);
    assert_eq!(event.event_type, EventType::SpamReport);
    assert_eq!(event.recipient.as_deref(), Some("recipient1@example.com"));
    assert_eq!(event.complaint_feedback_type.as_deref(), Some("abuse"));
    assert_eq!(
        event.user_agent.as_deref(),
        Some("ExampleCorp Feedback Loop (V0.01)")
    );
    // The event time is the complaint timestamp, not the (offset) arrivalDate.
    assert_eq!(event.event_time, time("2012-05-25T14:59:38.623Z"));

    let mut complaint = fragment("notification_fragment-complaint_1.json");
    complaint["complainedRecipients"] = json!([
        fragment("notification_fragment-complainedrecipient_1.json"),
        {"emailAddress": "Other <other@example.com>"},
    ]);
    let mapped = map_value(&notification("Complaint", "complaint", complaint));
    assert_eq!(
        recipients(&mapped),
        [Some("recipient1@example.com"), Some("other@example.com")]
    );
}

#[test]
fn fragment_delivery_gives_a_delivered_event() {
    let mapped = map_value(&notification(
        "Delivery",
        "delivery",
        fragment("notification_fragment-delivery_1.json"),
    ));
    let event = only_event(&mapped);
    assert_eq!(event.event_type, EventType::Delivered);
    assert_eq!(
        event.recipient.as_deref(),
        Some("success@simulator.amazonses.com")
    );
    assert_eq!(event.event_time, time("2014-05-28T22:41:01.184Z"));
    assert_eq!(event.processing_time_millis, Some(546));
}

// ---------------------------------------------------------------------------------------------
// Kinds: not SES, no platform event
// ---------------------------------------------------------------------------------------------

#[test]
fn messages_that_are_not_ses_records() {
    let deep = "[".repeat(100_000);
    let cases = [
        "Successfully validated SNS topic for Amazon SES event publishing.",
        "",
        "null",
        "42",
        "[{\"eventType\":\"Bounce\"}]",
        "{}",
        "{\"Type\":\"Notification\",\"Message\":\"hi\"}",
        "{\"eventType\":null}",
        "{\"eventType\":[\"Bounce\"]}",
        "{\"notificationType\":\"  \"}",
        "{\"eventType\":\"Bounce\"",
        deep.as_str(),
    ];
    for message in cases {
        let mapped = map_message(message);
        assert_eq!(mapped.kind, MappedKind::NotSes, "{}", clip(message));
        assert_eq!(mapped.ses_type, None);
        assert!(mapped.events.is_empty());
        assert!(mapped.errors.is_empty());
    }
}

#[test]
fn ses_types_without_platform_events() {
    for ses_type in [
        "Send",
        "Reject",
        "DeliveryDelay",
        "Rendering Failure",
        "Subscription",
        "AmazonSnsSubscriptionSucceeded",
        "SomethingNew",
        "bounce",
    ] {
        let message = json!({
            "eventType": ses_type,
            "mail": fragment("notification_fragment-mail_1.json"),
            "bounce": fragment("notification_fragment-bounce_1.json"),
        });
        let mapped = map_value(&message);
        assert_eq!(mapped.kind, MappedKind::NoPlatformEvent, "{ses_type}");
        assert_eq!(mapped.ses_type.as_deref(), Some(ses_type));
        assert!(mapped.events.is_empty(), "{ses_type}");
        assert!(mapped.errors.is_empty(), "{ses_type}");
    }
}

#[test]
fn event_type_wins_over_notification_type() {
    let mut value = record_value("event_open_1.json");
    value["notificationType"] = json!("Bounce");
    let mapped = map_value(&value);
    assert_eq!(mapped.ses_type.as_deref(), Some("Open"));
    assert_eq!(only_event(&mapped).event_type, EventType::Open);
}

#[test]
fn unknown_extra_keys_change_nothing() {
    for file in [
        "event_bounce_1.json",
        "event_click_1.json",
        "notification_complaint_1.json",
        "notification_delivery_1.json",
    ] {
        let plain = map_message(record(file));
        let mut value = record_value(file);
        let extra = json!({"nested": [1, {"deep": null}], "n": 1.5});
        if let Some(object) = value.as_object_mut() {
            let keys: Vec<String> = object.keys().cloned().collect();
            for key in keys {
                if let Some(inner) = object.get_mut(&key).and_then(Value::as_object_mut) {
                    inner.insert("someFutureField".to_owned(), extra.clone());
                }
            }
            object.insert("brandNewTopLevel".to_owned(), extra.clone());
        }
        assert_eq!(map_value(&value), plain, "{file}");
    }
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

fn bounce_with(recipients: Value) -> Value {
    let mut bounce = fragment("notification_fragment-bounce_1.json");
    bounce["bouncedRecipients"] = recipients;
    notification("Bounce", "bounce", bounce)
}

#[test]
fn bounce_without_recipients_is_an_error() {
    let mut missing = fragment("notification_fragment-bounce_1.json");
    missing
        .as_object_mut()
        .map(|b| b.remove("bouncedRecipients"));
    for value in [
        bounce_with(json!([])),
        bounce_with(json!("x")),
        bounce_with(Value::Null),
        notification("Bounce", "bounce", missing),
    ] {
        let mapped = map_value(&value);
        assert_eq!(mapped.kind, MappedKind::Events);
        assert_eq!(mapped.ses_type.as_deref(), Some("Bounce"));
        assert!(mapped.events.is_empty());
        assert_eq!(mapped.errors.len(), 1, "{:?}", mapped.errors);
        assert!(
            mapped.errors[0].contains("bounce.bouncedRecipients lists no recipients"),
            "{}",
            mapped.errors[0]
        );
        assert!(
            mapped.errors[0].contains("000001378603177f-7a5433e7"),
            "error names the message: {}",
            mapped.errors[0]
        );
    }
}

#[test]
fn a_recipient_without_email_address_is_an_error_and_the_others_still_count() {
    let mapped = map_value(&bounce_with(json!([
        {"emailAddress": "a@example.com", "action": "failed"},
        {"action": "failed", "status": "5.1.1"},
        {"emailAddress": "  "},
        5,
        {"emailAddress": "b@example.com"},
    ])));
    assert_eq!(mapped.kind, MappedKind::Events);
    assert_eq!(
        recipients(&mapped),
        [Some("a@example.com"), Some("b@example.com")]
    );
    assert_eq!(mapped.errors.len(), 3, "{:?}", mapped.errors);
    for (error, index) in mapped.errors.iter().zip([1, 2, 3]) {
        assert!(
            error.contains(&format!(
                "bounce.bouncedRecipients[{index}] has no usable emailAddress"
            )),
            "{error}"
        );
    }

    let mut delivery = fragment("notification_fragment-delivery_1.json");
    delivery["recipients"] = json!(["ok@example.com", 7, ""]);
    let mapped = map_value(&notification("Delivery", "delivery", delivery));
    assert_eq!(recipients(&mapped), [Some("ok@example.com")]);
    assert_eq!(mapped.errors.len(), 2);

    let mut complaint = fragment("notification_fragment-complaint_1.json");
    complaint["complainedRecipients"] = json!([{}, {"emailAddress": "ok@example.com"}]);
    let mapped = map_value(&notification("Complaint", "complaint", complaint));
    assert_eq!(recipients(&mapped), [Some("ok@example.com")]);
    assert_eq!(mapped.errors.len(), 1);
    assert!(mapped.errors[0].contains("complaint.complainedRecipients[0]"));
}

#[test]
fn missing_or_malformed_type_object_is_an_error() {
    for (ses_type, key) in [
        ("Bounce", "bounce"),
        ("Complaint", "complaint"),
        ("Delivery", "delivery"),
        ("Open", "open"),
        ("Click", "click"),
    ] {
        for object in [
            None,
            Some(json!(5)),
            Some(json!("x")),
            Some(json!([{}])),
            Some(Value::Null),
        ] {
            let mut value = json!({
                "eventType": ses_type,
                "mail": fragment("notification_fragment-mail_1.json"),
            });
            if let Some(object) = &object {
                value[key] = object.clone();
            }
            let mapped = map_value(&value);
            assert_eq!(mapped.kind, MappedKind::Events, "{ses_type} {object:?}");
            assert!(mapped.events.is_empty());
            assert_eq!(mapped.errors.len(), 1, "{:?}", mapped.errors);
            assert!(
                mapped.errors[0].contains(&format!("`{key}` object is missing")),
                "{}",
                mapped.errors[0]
            );
        }
    }
}

#[test]
fn missing_message_id_is_an_error() {
    for mail in [
        json!({"timestamp": "2018-10-08T14:05:45Z"}),
        json!({"messageId": "", "timestamp": "2018-10-08T14:05:45Z"}),
        json!({"messageId": 12, "timestamp": "2018-10-08T14:05:45Z"}),
        json!(5),
    ] {
        let value = json!({
            "notificationType": "Bounce",
            "mail": mail,
            "bounce": fragment("notification_fragment-bounce_1.json"),
        });
        let mapped = map_value(&value);
        assert_eq!(mapped.kind, MappedKind::Events);
        assert!(mapped.events.is_empty());
        assert_eq!(mapped.errors, ["Bounce record: no mail.messageId"]);
    }
    let mut open = record_value("event_open_1.json");
    open.as_object_mut().map(|o| o.remove("mail"));
    let mapped = map_value(&open);
    assert_eq!(mapped.errors, ["Open record: no mail.messageId"]);
}

#[test]
fn unparsable_event_timestamp_falls_back_to_the_mail_timestamp() {
    for timestamp in [json!("not a time"), json!(12), Value::Null] {
        let mut value = record_value("notification_delivery_1.json");
        value["delivery"]["timestamp"] = timestamp.clone();
        let mapped = map_value(&value);
        assert!(mapped.errors.is_empty(), "{timestamp}");
        assert_eq!(
            only_event(&mapped).event_time,
            time("2016-01-27T14:59:38.237Z")
        );
    }
    let mut value = record_value("notification_delivery_1.json");
    value["delivery"]
        .as_object_mut()
        .map(|d| d.remove("timestamp"));
    assert!(map_value(&value).errors.is_empty());
}

#[test]
fn no_usable_time_at_all_is_an_error() {
    let mut value = record_value("notification_delivery_1.json");
    value["delivery"]["timestamp"] = json!("soon");
    value["mail"]["timestamp"] = json!("earlier");
    let mapped = map_value(&value);
    assert_eq!(mapped.kind, MappedKind::Events);
    assert!(mapped.events.is_empty());
    assert_eq!(mapped.errors.len(), 1);
    assert!(
        mapped.errors[0].contains("event timestamp \"soon\" is not a time"),
        "{}",
        mapped.errors[0]
    );
}

// ---------------------------------------------------------------------------------------------
// Event keys
// ---------------------------------------------------------------------------------------------

/// Turns an event-publishing record into the identity-notification form of the same event.
fn as_notification(mut value: Value) -> Value {
    if let Some(object) = value.as_object_mut() {
        let ses_type = object.remove("eventType").unwrap_or(Value::Null);
        object.insert("notificationType".to_owned(), ses_type);
        if let Some(mail) = object.get_mut("mail").and_then(Value::as_object_mut) {
            mail.remove("tags");
            mail.insert("sourceIp".to_owned(), json!("192.0.2.0"));
        }
    }
    value
}

#[test]
fn same_event_in_both_formats_gets_the_same_key() {
    for file in [
        "event_bounce_1.json",
        "event_complaint_1.json",
        "event_delivery_1.json",
    ] {
        let published = map_message(record(file));
        let notified = map_value(&as_notification(record_value(file)));
        assert_eq!(notified.events.len(), 1, "{file}");
        assert_eq!(keys(&published), keys(&notified), "{file}");
        assert_ne!(published.events[0].tags, notified.events[0].tags);
    }
}

#[test]
fn identity_and_published_delivery_of_the_same_mail_share_a_key_despite_other_differences() {
    let notified = map_message(record("notification_delivery_1.json"));
    let mut value = record_value("notification_delivery_1.json");
    let object = value.as_object_mut().unwrap_or_else(|| panic!("object"));
    object.remove("notificationType");
    object.insert("eventType".to_owned(), json!("Delivery"));
    value["mail"]["tags"] = json!({"ses:configuration-set": ["ConfigSet"]});
    value["mail"]["timestamp"] = json!("2016-01-27T14:59:38.237 +0000");
    value["delivery"]["recipients"] = json!(["Jane Doe <JANE@example.com>"]);
    value["delivery"]["processingTimeMillis"] = json!(547);
    let published = map_value(&value);
    assert_eq!(keys(&published), keys(&notified));
}

#[test]
fn keys_ignore_timestamp_format_quirks_and_recipient_case() {
    let plain = map_message(record("event_open_1.json"));
    let mut value = record_value("event_open_1.json");
    value["open"]["timestamp"] = json!("2017-08-09T22:00:19.652 +0000");
    value["mail"]["destination"] = json!(["Recipient <Recipient@Example.com>"]);
    let quirky = map_value(&value);
    assert_eq!(keys(&plain), keys(&quirky));
    assert_eq!(
        quirky.events[0].recipient.as_deref(),
        Some("Recipient@Example.com"),
        "case is kept in the event, only the key folds it"
    );
}

#[test]
fn different_recipients_feedback_ids_links_and_opens_get_different_keys() {
    // Recipients.
    let two = map_message(record("notification_bounce_2.json"));
    assert_ne!(two.events[0].event_key, two.events[1].event_key);

    // A Permanent bounce and a later Transient bounce of the same mail and recipient.
    let permanent = map_message(record("notification_bounce_1.json"));
    let mut value = record_value("notification_bounce_1.json");
    value["bounce"]["bounceType"] = json!("Transient");
    value["bounce"]["feedbackId"] =
        json!("00000138111222aa-99999999-cccc-cccc-cccc-ddddaaaa068a-000000");
    let transient = map_value(&value);
    assert_ne!(keys(&permanent), keys(&transient));
    // ... whereas the same feedbackId is the same bounce, whatever else differs.
    value["bounce"]["feedbackId"] = permanent.events[0]
        .feedback_id
        .clone()
        .map_or(Value::Null, Value::String);
    assert_eq!(keys(&permanent), keys(&map_value(&value)));

    // Without feedbackId, the bounce time tells bounces apart.
    let mut first = record_value("notification_bounce_1.json");
    first["bounce"]
        .as_object_mut()
        .map(|b| b.remove("feedbackId"));
    let mut second = first.clone();
    second["bounce"]["timestamp"] = json!("2016-01-27T15:30:00.000Z");
    assert_ne!(keys(&map_value(&first)), keys(&map_value(&second)));
    assert_ne!(keys(&map_value(&first)), keys(&permanent));

    // Links.
    let click = map_message(record("event_click_1.json"));
    let mut other_link = record_value("event_click_1.json");
    other_link["click"]["link"] = json!("https://example.com/other");
    assert_ne!(keys(&click), keys(&map_value(&other_link)));

    // Two opens in the same millisecond from different clients.
    let open = map_message(record("event_open_1.json"));
    let mut other_ip = record_value("event_open_1.json");
    other_ip["open"]["ipAddress"] = json!("198.51.100.7");
    assert_ne!(keys(&open), keys(&map_value(&other_ip)));
    let mut other_ua = record_value("event_open_1.json");
    other_ua["open"]["userAgent"] = json!("curl/8");
    assert_ne!(keys(&open), keys(&map_value(&other_ua)));
    let mut later = record_value("event_open_1.json");
    later["open"]["timestamp"] = json!("2017-08-09T22:00:19.653Z");
    assert_ne!(keys(&open), keys(&map_value(&later)));

    // Event types: a complaint and a bounce of the same recipient and feedbackId.
    let mut complaint = record_value("event_bounce_1.json");
    complaint["eventType"] = json!("Complaint");
    complaint["complaint"] = json!({
        "complainedRecipients": [{"emailAddress": "recipient@example.com"}],
        "timestamp": "2017-08-05T00:41:02.669Z",
        "feedbackId": "01000157c44f053b-61b59c11-9236-11e6-8f96-7be8aexample-000000",
    });
    let bounce = map_message(record("event_bounce_1.json"));
    assert_ne!(keys(&bounce), keys(&map_value(&complaint)));
}

#[test]
fn key_encoding_is_unambiguous() {
    // Moving a character across a field boundary must change the key.
    let base = only_event(&map_message(record("event_click_1.json"))).clone();
    let mut a = base.clone();
    a.ip_address = Some("192.0.2.1".to_owned());
    a.user_agent = Some("x".to_owned());
    let mut b = base;
    b.ip_address = Some("192.0.2.1x".to_owned());
    b.user_agent = Some(String::new());
    assert_ne!(event_key(&a), event_key(&b));
    // An absent value and an empty one are the same (documented).
    b.user_agent = None;
    let mut c = b.clone();
    c.user_agent = Some(String::new());
    assert_eq!(event_key(&b), event_key(&c));
}

fn documented_key(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    hex::encode(hasher.finalize())
}

#[test]
fn keys_follow_the_documented_scheme() {
    let delivery = map_message(record("notification_delivery_1.json"));
    assert_eq!(
        delivery.events[0].event_key,
        documented_key(&[
            "v1",
            "email_delivered",
            "0000014644fe5ef6-9a483358-9170-4cb4-a269-f5dcdf415321-000000",
            "jane@example.com",
        ])
    );
    let bounce = map_message(record("notification_bounce_9.json"));
    assert_eq!(
        bounce.events[0].event_key,
        documented_key(&[
            "v1",
            "email_bounce",
            "1111111111111111-22222222-3333-4444-5555-666666666666-000000",
            "test123123123123123@gmail.com",
            "aaaaaaaaaaaaaaaa-bbbbbbbb-cccc-dddd-eeee-ffffffffffff-000000",
            "",
        ])
    );
    let complaint = map_message(record("notification_complaint_4.json"));
    assert_eq!(
        complaint.events[0].event_key,
        documented_key(&[
            "v1",
            "email_spam_report",
            "002",
            "baz@example.com",
            "000001378603177f-18c07c78-fa81-4a58-9dd1-fedc3cb8f49a-000000",
            "",
        ])
    );
    let open = map_message(record("event_open_1.json"));
    assert_eq!(
        open.events[0].event_key,
        documented_key(&[
            "v1",
            "email_open",
            "EXAMPLE7c191be45-e9aedb9a-02f9-4d12-a87d-dd0099a07f8a-000000",
            "recipient@example.com",
            "2017-08-09T22:00:19.652Z",
            "192.0.2.1",
            "Mozilla/5.0 (iPhone; CPU iPhone OS 10_3_3 like Mac OS X) AppleWebKit/603.3.8 (KHTML, like Gecko) Mobile/14G60",
        ])
    );
    let click = map_message(record("event_click_1.json"));
    assert_eq!(
        click.events[0].event_key,
        documented_key(&[
            "v1",
            "email_click",
            "EXAMPLE7c191be45-e9aedb9a-02f9-4d12-a87d-dd0099a07f8a-000000",
            "recipient@example.com",
            "2017-08-09T23:51:25.570Z",
            "http://docs.aws.amazon.com/ses/latest/DeveloperGuide/send-email-smtp.html",
            "192.0.2.1",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/60.0.3112.90 Safari/537.36",
        ])
    );
    // Without feedbackId, the normalised bounce time takes its place.
    let mut value = record_value("notification_bounce_1.json");
    value["bounce"]
        .as_object_mut()
        .map(|b| b.remove("feedbackId"));
    value["bounce"]["timestamp"] = json!("2016-01-27T14:59:38 +0000");
    assert_eq!(
        map_value(&value).events[0].event_key,
        documented_key(&[
            "v1",
            "email_bounce",
            "00000138111222aa-33322211-cccc-cccc-cccc-ddddaaaa0680-000000",
            "jane@example.com",
            "",
            "2016-01-27T14:59:38.000Z",
        ])
    );
}

#[test]
fn keys_are_stable_across_releases() {
    // A data-contract guarantee: stored keys must keep matching (literals computed outside Rust
    // from the documented encoding). If this fails, the key scheme
    // changed; that needs a new version tag and a migration plan, not a new literal here.
    let delivery = map_message(record("notification_delivery_1.json"));
    assert_eq!(
        delivery.events[0].event_key,
        "03eedc68627b453c9a06c2ea9e3b6c0836f1b59585e1ccd25e18cb43f5d1aab3"
    );
    let bounce = map_message(record("event_bounce_1.json"));
    assert_eq!(
        bounce.events[0].event_key,
        "11c60918afb78bad8337fd07997e9af8665e51611c11de0376f9aa2fd22c588d"
    );
}

// ---------------------------------------------------------------------------------------------
// Hostile input
// ---------------------------------------------------------------------------------------------

#[test]
fn wrong_types_anywhere_never_panic() {
    let mail = fragment("notification_fragment-mail_1.json");
    let bounce = fragment("notification_fragment-bounce_1.json");
    let wrong = [
        json!(null),
        json!(5),
        json!(-1.5e300),
        json!("x"),
        json!(true),
        json!([]),
        json!([1, "a", null]),
        json!({}),
        json!({"a": {"b": []}}),
    ];
    let mut cases = 0;
    for ses_type in ["Bounce", "Complaint", "Delivery", "Open", "Click", "Send"] {
        let key = ses_type.to_lowercase();
        let mut record = json!({"eventType": ses_type, "mail": mail.clone()});
        record[&key] = match ses_type {
            "Complaint" => fragment("notification_fragment-complaint_1.json"),
            "Delivery" => fragment("notification_fragment-delivery_1.json"),
            "Open" => json!({"ipAddress": "192.0.2.1", "timestamp": "2017-08-09T22:00:19.652Z"}),
            "Click" => {
                json!({"link": "https://x", "linkTags": {"a": ["b"]}, "timestamp": "2017-08-09T22:00:19.652Z"})
            }
            _ => bounce.clone(),
        };
        // Replace every field at depth 1, 2 and 3 with every wrong value, one at a time.
        let mut paths: Vec<Vec<String>> = Vec::new();
        collect_paths(&record, &mut Vec::new(), &mut paths);
        for path in &paths {
            for value in &wrong {
                let mut hostile = record.clone();
                set_path(&mut hostile, path, value.clone());
                let mapped = map_value(&hostile);
                cases += 1;
                if mapped.kind == MappedKind::Events {
                    for event in &mapped.events {
                        assert_eq!(event.event_key.len(), 64);
                    }
                }
            }
        }
    }
    assert!(cases > 500, "only {cases} cases");

    // The specific shapes named in the brief.
    let mut value = bounce_with(json!("x"));
    assert_eq!(map_value(&value).errors.len(), 1);
    value["mail"] = json!(5);
    let mapped = map_value(&value);
    assert_eq!(mapped.kind, MappedKind::Events);
    assert!(mapped.events.is_empty());
    assert!(!mapped.errors.is_empty());
}

fn collect_paths(value: &Value, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    if prefix.len() >= 3 {
        return;
    }
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                prefix.push(key.clone());
                out.push(prefix.clone());
                collect_paths(inner, prefix, out);
                prefix.pop();
            }
        }
        Value::Array(items) => {
            for (index, inner) in items.iter().enumerate() {
                prefix.push(index.to_string());
                out.push(prefix.clone());
                collect_paths(inner, prefix, out);
                prefix.pop();
            }
        }
        _ => {}
    }
}

fn set_path(root: &mut Value, path: &[String], new: Value) {
    let mut current = root;
    for segment in path {
        current = match current {
            Value::Object(map) => match map.get_mut(segment) {
                Some(next) => next,
                None => return,
            },
            Value::Array(items) => {
                match segment.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                    Some(next) => next,
                    None => return,
                }
            }
            _ => return,
        };
    }
    *current = new;
}

#[test]
fn deeply_nested_json_never_panics() {
    let depth = 10_000;
    let nested_array = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let nested_object = format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth));
    let nested_in_mail = format!(
        r#"{{"eventType":"Bounce","mail":{{"messageId":"m","extra":{}{}}}}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    );
    for message in [&nested_array, &nested_object, &nested_in_mail] {
        let mapped = map_message(message);
        assert_eq!(mapped.kind, MappedKind::NotSes);
        assert!(mapped.events.is_empty());
    }
    // Within serde_json's recursion limit, deep unknown content is simply ignored.
    let shallow = 100;
    let mut value = record_value("notification_delivery_1.json");
    let deep: Value =
        serde_json::from_str(&format!("{}{}", "[".repeat(shallow), "]".repeat(shallow)))
            .unwrap_or_else(|e| panic!("{e}"));
    value["mail"]["extra"] = deep;
    assert_eq!(map_value(&value).events.len(), 1);
}

#[test]
fn huge_strings_are_handled_and_errors_stay_short() {
    let huge = "x".repeat(1_000_000);
    let mut value = bounce_with(json!([{"emailAddress": huge.clone()}, {"status": huge.clone()}]));
    value["mail"]["messageId"] = json!(huge.clone());
    value["mail"]["timestamp"] = json!(huge.clone());
    value["bounce"]["feedbackId"] = json!(huge.clone());
    let mapped = map_value(&value);
    assert_eq!(mapped.events.len(), 1);
    assert_eq!(mapped.events[0].event_key.len(), 64);
    assert_eq!(mapped.events[0].recipient.as_deref(), Some(huge.as_str()));
    assert_eq!(mapped.events[0].mail_time, None);
    assert_eq!(mapped.errors.len(), 1);
    assert!(mapped.errors[0].len() < 300, "{}", mapped.errors[0].len());

    value["bounce"]["timestamp"] = json!(huge);
    let mapped = map_value(&value);
    assert!(mapped.events.is_empty());
    assert!(mapped.errors[0].len() < 400, "{}", mapped.errors[0].len());
}
