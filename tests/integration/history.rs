//! The event history against the real server, on both backends: `GET /api/v1/events` (every
//! filter, paging by cursor, the NDJSON and CSV exports), `GET /api/v1/messages/{sesMessageId}`,
//! `DELETE /api/v1/recipients/{address}` and the `erase` command (events, raw bodies, the
//! suppression entry, the `erasures` audit table), the retention of events and archived
//! messages, scopes, and the metrics. The SES records are built here (event publishing, with
//! `mail.tags`) and posted through the webhook as SNS delivers them; every item the API answers
//! is checked field by field against what was posted.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, FixedOffset, SecondsFormat, SubsecRound, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Nullable, Text};
use reqwest::Method;
use serde_json::{Value, json};
use test_support::{Backend, EventRow, Scope, TestApp, TestStore, assert_error, spawn_on};

const EVENTS: &str = "/api/v1/events";

/// The columns of a CSV export, and the keys of a JSON item, in order.
const COLUMNS: [&str; 28] = [
    "eventKey",
    "eventType",
    "recipient",
    "bounceType",
    "sesMessageId",
    "snsMessageId",
    "eventTime",
    "mailTime",
    "source",
    "subject",
    "sesBounceType",
    "bounceSubtype",
    "bounceAction",
    "bounceStatus",
    "diagnosticCode",
    "feedbackId",
    "complaintFeedbackType",
    "complaintSubtype",
    "smtpResponse",
    "reportingMta",
    "remoteMtaIp",
    "processingTimeMs",
    "link",
    "linkTags",
    "userAgent",
    "ipAddress",
    "tags",
    "createdAt",
];

const SOURCE: &str = "shop@example.com";
const UA: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36";
/// As SES reported it; queried in other cases.
const JOHN: &str = "John@Example.com";
const JANE: &str = "jane@example.org";
const BOB: &str = "bob@example.net";
/// `printf '%s' john@example.com | sha256sum`
const JOHN_HASH: &str = "855f96e983f1f8e8be944692b6f719fd54329826cb62e98015efee8e2e071dd4";
/// `printf '%s' jane@example.org | sha256sum`
const JANE_HASH: &str = "13d855ce931073d4924ac377cda0e9a543908b9d6607727c8033d729c65eced6";

/// SES `mail.messageId`s; the part after the last `-` names them in the labels.
const M1: &str = "0100019a3f2e71c4-5b0c1d3e-8a41-4f7e-9d2b-m1";
const M2: &str = "0100019a3f2e71c4-5b0c1d3e-8a41-4f7e-9d2b-m2";
const M3: &str = "0100019a3f2e71c4-5b0c1d3e-8a41-4f7e-9d2b-m3";
const M4: &str = "0100019a3f2e71c4-5b0c1d3e-8a41-4f7e-9d2b-m4";
const M5: &str = "0100019a3f2e71c4-5b0c1d3e-8a41-4f7e-9d2b-m5";
/// Only a `Send` record of it is posted.
const M6: &str = "0100019a3f2e71c4-5b0c1d3e-8a41-4f7e-9d2b-m6";

/// A subject that CSV must quote, with a character outside ASCII.
const SUBJECT_M1: &str = "Frühling sale, \"50%\" off; today only";

/// Every event of [`seed`], newest first (events of the same time in label order).
const ALL: [&str; 8] = [
    "spam jane m5",
    "soft bob m4",
    "hard john m3",
    "delivered bob m2",
    "delivered jane m2",
    "click john m1",
    "open john m1",
    "delivered john m1",
];

// ---------------------------------------------------------------------------------------------
// Helpers.

/// SES times: milliseconds and `Z`.
fn ms(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The API's times: microseconds and `Z`.
fn us(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn time(value: &Value) -> DateTime<Utc> {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("not a time: {value}"));
    assert!(text.ends_with('Z'), "not UTC with a Z: {text}");
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("not RFC 3339 ({e}): {text}"))
        .with_timezone(&Utc)
}

/// Percent-encodes a query component (everything but the unreserved characters).
fn enc(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `/api/v1/events` with `pairs` as its query.
fn events_path(pairs: &[(&str, String)]) -> String {
    if pairs.is_empty() {
        return EVENTS.to_owned();
    }
    let query: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect();
    format!("{EVENTS}?{}", query.join("&"))
}

/// A query string's parameters, in order.
type Query = Vec<(&'static str, String)>;

fn pairs<'a>(list: &[(&'a str, &str)]) -> Vec<(&'a str, String)> {
    list.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
}

/// Sends `method path` with `token`: the status and the JSON body (`Value::Null` when empty).
async fn call(app: &TestApp, method: Method, path: &str, token: Option<&str>) -> (u16, Value) {
    let response = app
        .api(method.clone(), path, token)
        .send()
        .await
        .expect("request sent");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {text}"))
    };
    (status, body)
}

/// A response read as text, with the headers an export is checked for.
#[derive(Debug)]
struct Raw {
    status: u16,
    content_type: String,
    cache_control: String,
    body: String,
}

async fn fetch(app: &TestApp, path: &str, token: Option<&str>, accept: &str) -> Raw {
    let response = app
        .api(Method::GET, path, token)
        .header("accept", accept)
        .send()
        .await
        .expect("request sent");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (content_type, cache_control) = (header("content-type"), header("cache-control"));
    let status = response.status().as_u16();
    let body = response.text().await.expect("a complete body");
    Raw {
        status,
        content_type,
        cache_control,
        body,
    }
}

fn keys(value: &Value) -> BTreeSet<&str> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .map(String::as_str)
        .collect()
}

/// `kind who mail`: `hard john m3`, `delivered bob m2`, ...
fn label(item: &Value) -> String {
    let kind = match item["eventType"].as_str().unwrap() {
        "email_delivered" => "delivered",
        "email_bounce" => item["bounceType"].as_str().unwrap(),
        "email_spam_report" => "spam",
        "email_open" => "open",
        "email_click" => "click",
        other => panic!("unknown eventType {other}"),
    };
    let who = item["recipient"].as_str().map_or_else(
        || "-".to_owned(),
        |r| r.split('@').next().unwrap().to_lowercase(),
    );
    let mail = item["sesMessageId"].as_str().unwrap().rsplit('-').next();
    format!("{kind} {who} {}", mail.unwrap())
}

/// The labels of `items`, asserting that they are newest first by event time; events of the
/// same time are put in label order (their order among themselves is the row ids').
fn labels(items: &[Value]) -> Vec<String> {
    let mut timed: Vec<(DateTime<Utc>, String)> = items
        .iter()
        .map(|i| (time(&i["eventTime"]), label(i)))
        .collect();
    assert!(
        timed.windows(2).all(|w| w[0].0 >= w[1].0),
        "not newest first: {timed:?}"
    );
    timed.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    timed.into_iter().map(|(_, l)| l).collect()
}

/// The labels of a timeline's events, asserting that they are oldest first.
fn labels_oldest_first(items: &[Value]) -> Vec<String> {
    let mut timed: Vec<(DateTime<Utc>, String)> = items
        .iter()
        .map(|i| (time(&i["eventTime"]), label(i)))
        .collect();
    assert!(
        timed.windows(2).all(|w| w[0].0 <= w[1].0),
        "not oldest first: {timed:?}"
    );
    timed.sort();
    timed.into_iter().map(|(_, l)| l).collect()
}

fn event_keys(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|i| i["eventKey"].as_str().unwrap().to_owned())
        .collect()
}

/// One JSON page of `pairs` (asserting its shape); its items and next cursor.
async fn page(
    app: &TestApp,
    token: &str,
    pairs: &[(&str, String)],
) -> (Vec<Value>, Option<String>) {
    let path = events_path(pairs);
    let (status, body) = call(app, Method::GET, &path, Some(token)).await;
    assert_eq!(status, 200, "{path}: {body}");
    assert_eq!(
        keys(&body),
        BTreeSet::from(["items", "nextCursor"]),
        "{path}: {body}"
    );
    let next = match &body["nextCursor"] {
        Value::Null => None,
        Value::String(c) => Some(c.clone()),
        other => panic!("{path}: nextCursor {other}"),
    };
    (body["items"].as_array().unwrap().clone(), next)
}

/// Every event matching `pairs` in one page of 1000 (asserting there is no next page).
async fn all(app: &TestApp, token: &str, pairs: &[(&str, String)]) -> Vec<Value> {
    let mut query = pairs.to_vec();
    query.push(("limit", "1000".to_owned()));
    let (items, next) = page(app, token, &query).await;
    assert_eq!(next, None, "{query:?}");
    items
}

async fn all_labels(app: &TestApp, token: &str, pairs: &[(&str, String)]) -> Vec<String> {
    labels(&all(app, token, pairs).await)
}

/// Pages through `pairs` by `limit`: every item, and the size of each page.
async fn walk(
    app: &TestApp,
    token: &str,
    pairs: &[(&str, String)],
    limit: usize,
) -> (Vec<Value>, Vec<usize>) {
    let mut items = Vec::new();
    let mut sizes = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut query = pairs.to_vec();
        query.push(("limit", limit.to_string()));
        if let Some(c) = &cursor {
            query.push(("cursor", c.clone()));
        }
        let (got, next) = page(app, token, &query).await;
        assert!(got.len() <= limit, "{query:?}: {} items", got.len());
        sizes.push(got.len());
        items.extend(got);
        assert!(sizes.len() <= 1000, "paging does not end: {sizes:?}");
        match next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    (items, sizes)
}

// ---------------------------------------------------------------------------------------------
// SES records and what the API must show of them.

/// The `mail` object of one sent email.
#[derive(Debug, Clone)]
struct Mail {
    id: String,
    sent: DateTime<Utc>,
    destination: Vec<String>,
    subject: &'static str,
    tags: Value,
}

impl Mail {
    fn new(
        id: &str,
        sent: DateTime<Utc>,
        destination: &[&str],
        subject: &'static str,
        tags: Value,
    ) -> Self {
        Self {
            id: id.to_owned(),
            sent,
            destination: destination.iter().map(|d| (*d).to_owned()).collect(),
            subject,
            tags,
        }
    }

    fn json(&self) -> Value {
        json!({
            "timestamp": ms(self.sent),
            "source": SOURCE,
            "sourceArn": "arn:aws:ses:us-east-1:123456789012:identity/example.com",
            "sendingAccountId": "123456789012",
            "messageId": self.id,
            "destination": self.destination,
            "headersTruncated": false,
            "headers": [
                {"name": "From", "value": SOURCE},
                {"name": "Subject", "value": self.subject},
            ],
            "commonHeaders": {
                "from": [SOURCE],
                "to": self.destination,
                "messageId": self.id,
                "subject": self.subject,
            },
            "tags": self.tags,
        })
    }

    /// An SES event publishing record of this email: `eventType`, `mail` and the type's object.
    fn record(&self, event_type: &str, object: &str, body: Value) -> String {
        let mut record = json!({"eventType": event_type, "mail": self.json()});
        record[object] = body;
        record.to_string()
    }

    /// What the API shows of an event of this email: every field but `eventKey` and
    /// `createdAt`, the type's own fields given in `specific`.
    fn expected(
        &self,
        event_type: &str,
        recipient: Option<&str>,
        at: DateTime<Utc>,
        posted: &Posted,
        specific: &Value,
    ) -> Value {
        let mut item = json!({
            "eventType": event_type,
            "recipient": recipient,
            "bounceType": null,
            "sesMessageId": self.id,
            "snsMessageId": posted.sns,
            "eventTime": us(at),
            "mailTime": us(self.sent),
            "source": SOURCE,
            "subject": self.subject,
            "sesBounceType": null,
            "bounceSubtype": null,
            "bounceAction": null,
            "bounceStatus": null,
            "diagnosticCode": null,
            "feedbackId": null,
            "complaintFeedbackType": null,
            "complaintSubtype": null,
            "smtpResponse": null,
            "reportingMta": null,
            "remoteMtaIp": null,
            "processingTimeMs": null,
            "link": null,
            "linkTags": null,
            "userAgent": null,
            "ipAddress": null,
            "tags": self.tags,
        });
        for (key, value) in specific.as_object().unwrap() {
            assert!(item.get(key).is_some(), "no field {key}");
            item[key] = value.clone();
        }
        item
    }
}

fn tags(configuration_set: &str, campaign: Option<&str>) -> Value {
    let mut tags = json!({
        "ses:configuration-set": [configuration_set],
        "ses:source-ip": ["192.0.2.0"],
        "ses:from-domain": ["example.com"],
        "ses:caller-identity": ["shop-sender"],
    });
    if let Some(campaign) = campaign {
        tags["campaign"] = json!([campaign]);
    }
    tags
}

/// One SNS message posted through the webhook, and when.
#[derive(Debug, Clone)]
struct Posted {
    sns: String,
    before: DateTime<Utc>,
    after: DateTime<Utc>,
}

impl Posted {
    /// Asserts that `at` was written while the message was posted (a millisecond of slack
    /// either side: SQLite keeps milliseconds of its own clock).
    fn assert_during(&self, at: DateTime<Utc>, what: &str) {
        assert!(
            self.before - Duration::milliseconds(1) <= at
                && at <= self.after + Duration::milliseconds(1),
            "{what} {at} not within {} .. {}",
            self.before,
            self.after
        );
    }
}

/// Posts `record` in a fresh signed notification; asserts it was accepted with `processed`
/// new events.
async fn post(app: &TestApp, record: &str, processed: usize) -> Posted {
    let envelope = app.notification(record);
    let sns = envelope["MessageId"].as_str().unwrap().to_owned();
    let before = Utc::now();
    let (status, body) = app.post(&envelope).await;
    let after = Utc::now();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["processed"], processed, "{record}: {body}");
    assert_eq!(body["errors"], 0, "{record}: {body}");
    Posted { sns, before, after }
}

fn delivery(at: DateTime<Utc>, recipients: &[&str], smtp: &str, ip: &str, millis: i64) -> Value {
    json!({
        "timestamp": ms(at),
        "processingTimeMillis": millis,
        "recipients": recipients,
        "smtpResponse": smtp,
        "reportingMTA": "a8-70.smtp-out.amazonses.com",
        "remoteMtaIp": ip,
    })
}

/// An archived SNS message of the dataset.
#[derive(Debug, Clone)]
struct Carrier {
    ses_id: &'static str,
    ses_type: &'static str,
    posted: Posted,
    outcome: &'static str,
    events_stored: u64,
}

/// What [`seed`] posted.
#[derive(Debug)]
struct Dataset {
    /// The newest event is 10 minutes before it.
    base: DateTime<Utc>,
    /// By label: the expected item (but `eventKey`, `createdAt`) and the post that carried it.
    events: BTreeMap<&'static str, (Value, Posted)>,
    /// Every SNS message posted, in order.
    messages: Vec<Carrier>,
}

impl Dataset {
    fn carrier(
        &mut self,
        ses_id: &'static str,
        ses_type: &'static str,
        posted: &Posted,
        stored: u64,
    ) {
        self.messages.push(Carrier {
            ses_id,
            ses_type,
            posted: posted.clone(),
            outcome: if stored > 0 { "processed" } else { "no_events" },
            events_stored: stored,
        });
    }

    fn carriers(&self, ses_id: &str) -> Vec<Carrier> {
        self.messages
            .iter()
            .filter(|c| c.ses_id == ses_id)
            .cloned()
            .collect()
    }

    fn sns_of(&self, ses_id: &str) -> BTreeSet<String> {
        self.carriers(ses_id)
            .into_iter()
            .map(|c| c.posted.sns)
            .collect()
    }

    fn at(&self, minutes: i64) -> DateTime<Utc> {
        self.base - Duration::minutes(minutes)
    }

    /// Asserts that `item` is the event `label` of the dataset, field by field; `stored` are
    /// the rows of `email_events`.
    fn assert_item(&self, item: &Value, stored: &[EventRow]) {
        let label = label(item);
        let (expected, posted) = self
            .events
            .get(label.as_str())
            .unwrap_or_else(|| panic!("an event that was not posted: {item}"));
        assert_event(item, expected, posted, stored);
    }
}

/// Asserts an API item field by field: its keys are [`COLUMNS`], `eventKey` the key of the
/// stored row, `createdAt` within the post, and every other field as `expected`.
fn assert_event(item: &Value, expected: &Value, posted: &Posted, stored: &[EventRow]) {
    assert_eq!(keys(item), BTreeSet::from(COLUMNS), "{item}");
    let key = item["eventKey"].as_str().unwrap();
    assert!(
        key.len() == 64
            && key
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "eventKey {key}"
    );
    let row = stored
        .iter()
        .find(|r| r.event_key == key)
        .unwrap_or_else(|| panic!("no stored row has the eventKey of {item}"));
    assert_eq!(row.sns_message_id, posted.sns, "{item}");
    assert_eq!(
        row.recipient.as_deref(),
        item["recipient"].as_str(),
        "{item}"
    );
    assert_eq!(
        row.event_type,
        item["eventType"].as_str().unwrap(),
        "{item}"
    );
    posted.assert_during(time(&item["createdAt"]), "createdAt");
    let mut rest = item.clone();
    let object = rest.as_object_mut().unwrap();
    object.remove("eventKey");
    object.remove("createdAt");
    assert_eq!(&rest, expected);
}

/// Posts the dataset: five emails, eight events (see [`ALL`]), seven SNS messages with
/// events and two without (a `Send` and a `DeliveryDelay` of m1), and a `Send` of m6.
///
/// | mail | configuration set, campaign | recipients | records (event time: minutes before `base`) |
/// |---|---|---|---|
/// | m1 | Marketing, spring | John | Send, DeliveryDelay, Delivery (60), Open (50), Click (40) |
/// | m2 | Transactional, summer | jane, bob | Delivery (30) |
/// | m3 | Marketing, spring | John | Bounce, Permanent (20) |
/// | m4 | Transactional, - | bob | Bounce, Transient (15) |
/// | m5 | Marketing, autumn | jane | Complaint, abuse (10) |
async fn seed(app: &TestApp) -> Dataset {
    let base = Utc::now().trunc_subsecs(3) - Duration::minutes(1);
    let at = |minutes: i64| base - Duration::minutes(minutes);
    let mut data = Dataset {
        base,
        events: BTreeMap::new(),
        messages: Vec::new(),
    };

    // m1: sent, delayed, delivered, opened, clicked.
    let m1 = Mail::new(
        M1,
        at(61),
        &[JOHN],
        SUBJECT_M1,
        tags("Marketing", Some("spring")),
    );
    let p = post(app, &m1.record("Send", "send", json!({})), 0).await;
    data.carrier(M1, "Send", &p, 0);
    let delayed = at(61) + Duration::seconds(20);
    let p = post(
        app,
        &m1.record(
            "DeliveryDelay",
            "deliveryDelay",
            json!({
                "timestamp": ms(delayed),
                "delayType": "TransientCommunicationFailure",
                "expirationTime": ms(delayed + Duration::hours(12)),
                "delayedRecipients": [{
                    "emailAddress": JOHN,
                    "status": "4.4.1",
                    "diagnosticCode": "smtp; 421 4.4.1 Unable to connect to remote host",
                }],
            }),
        ),
        0,
    )
    .await;
    data.carrier(M1, "DeliveryDelay", &p, 0);
    let p = post(
        app,
        &m1.record(
            "Delivery",
            "delivery",
            delivery(
                at(60),
                &[JOHN],
                "250 2.6.0 Message received",
                "203.0.113.10",
                546,
            ),
        ),
        1,
    )
    .await;
    let expected = m1.expected(
        "email_delivered",
        Some(JOHN),
        at(60),
        &p,
        &json!({
            "smtpResponse": "250 2.6.0 Message received",
            "reportingMta": "a8-70.smtp-out.amazonses.com",
            "remoteMtaIp": "203.0.113.10",
            "processingTimeMs": 546,
        }),
    );
    data.events
        .insert("delivered john m1", (expected, p.clone()));
    data.carrier(M1, "Delivery", &p, 1);
    let p = post(
        app,
        &m1.record(
            "Open",
            "open",
            json!({"timestamp": ms(at(50)), "ipAddress": "192.0.2.1", "userAgent": UA}),
        ),
        1,
    )
    .await;
    let expected = m1.expected(
        "email_open",
        Some(JOHN),
        at(50),
        &p,
        &json!({"ipAddress": "192.0.2.1", "userAgent": UA}),
    );
    data.events.insert("open john m1", (expected, p.clone()));
    data.carrier(M1, "Open", &p, 1);
    let link_tags = json!({"campaign": ["spring"], "position": ["header", "hero"]});
    let p = post(
        app,
        &m1.record(
            "Click",
            "click",
            json!({
                "timestamp": ms(at(40)),
                "ipAddress": "198.51.100.23",
                "userAgent": UA,
                "link": "https://shop.example.com/spring?utm_source=ses&utm_campaign=spring",
                "linkTags": link_tags,
            }),
        ),
        1,
    )
    .await;
    let expected = m1.expected(
        "email_click",
        Some(JOHN),
        at(40),
        &p,
        &json!({
            "ipAddress": "198.51.100.23",
            "userAgent": UA,
            "link": "https://shop.example.com/spring?utm_source=ses&utm_campaign=spring",
            "linkTags": link_tags,
        }),
    );
    data.events.insert("click john m1", (expected, p.clone()));
    data.carrier(M1, "Click", &p, 1);

    // m2: delivered to two recipients at once.
    let m2 = Mail::new(
        M2,
        at(31),
        &[JANE, BOB],
        "Your receipt #4711",
        tags("Transactional", Some("summer")),
    );
    let p = post(
        app,
        &m2.record(
            "Delivery",
            "delivery",
            delivery(
                at(30),
                &[JANE, BOB],
                "250 2.0.0 OK 1717000000 x1si123",
                "198.51.100.40",
                1203,
            ),
        ),
        2,
    )
    .await;
    for (name, recipient) in [("delivered jane m2", JANE), ("delivered bob m2", BOB)] {
        let expected = m2.expected(
            "email_delivered",
            Some(recipient),
            at(30),
            &p,
            &json!({
                "smtpResponse": "250 2.0.0 OK 1717000000 x1si123",
                "reportingMta": "a8-70.smtp-out.amazonses.com",
                "remoteMtaIp": "198.51.100.40",
                "processingTimeMs": 1203,
            }),
        );
        data.events.insert(name, (expected, p.clone()));
    }
    data.carrier(M2, "Delivery", &p, 2);

    // m3: a Permanent bounce (suppresses John).
    let m3 = Mail::new(
        M3,
        at(21),
        &[JOHN],
        "Spring sale: last day",
        tags("Marketing", Some("spring")),
    );
    let p = post(
        app,
        &m3.record(
            "Bounce",
            "bounce",
            json!({
                "bounceType": "Permanent",
                "bounceSubType": "General",
                "bouncedRecipients": [{
                    "emailAddress": JOHN,
                    "action": "failed",
                    "status": "5.1.1",
                    "diagnosticCode": "smtp; 550 5.1.1 user unknown",
                }],
                "timestamp": ms(at(20)),
                "feedbackId": "0100019a-fb-m3-000000",
                "reportingMTA": "dsn; e226-55.smtp-out.amazonses.com",
                "remoteMtaIp": "198.51.100.7",
            }),
        ),
        1,
    )
    .await;
    let expected = m3.expected(
        "email_bounce",
        Some(JOHN),
        at(20),
        &p,
        &json!({
            "bounceType": "hard",
            "sesBounceType": "Permanent",
            "bounceSubtype": "General",
            "bounceAction": "failed",
            "bounceStatus": "5.1.1",
            "diagnosticCode": "smtp; 550 5.1.1 user unknown",
            "feedbackId": "0100019a-fb-m3-000000",
            "reportingMta": "dsn; e226-55.smtp-out.amazonses.com",
            "remoteMtaIp": "198.51.100.7",
        }),
    );
    data.events.insert("hard john m3", (expected, p.clone()));
    data.carrier(M3, "Bounce", &p, 1);

    // m4: a Transient bounce.
    let m4 = Mail::new(
        M4,
        at(16),
        &[BOB],
        "Your parcel is on its way",
        tags("Transactional", None),
    );
    let p = post(
        app,
        &m4.record(
            "Bounce",
            "bounce",
            json!({
                "bounceType": "Transient",
                "bounceSubType": "MailboxFull",
                "bouncedRecipients": [{
                    "emailAddress": BOB,
                    "action": "failed",
                    "status": "4.2.2",
                    "diagnosticCode": "smtp; 452 4.2.2 Mailbox full",
                }],
                "timestamp": ms(at(15)),
                "feedbackId": "0100019a-fb-m4-000000",
                "reportingMTA": "dsn; e226-56.smtp-out.amazonses.com",
            }),
        ),
        1,
    )
    .await;
    let expected = m4.expected(
        "email_bounce",
        Some(BOB),
        at(15),
        &p,
        &json!({
            "bounceType": "soft",
            "sesBounceType": "Transient",
            "bounceSubtype": "MailboxFull",
            "bounceAction": "failed",
            "bounceStatus": "4.2.2",
            "diagnosticCode": "smtp; 452 4.2.2 Mailbox full",
            "feedbackId": "0100019a-fb-m4-000000",
            "reportingMta": "dsn; e226-56.smtp-out.amazonses.com",
        }),
    );
    data.events.insert("soft bob m4", (expected, p.clone()));
    data.carrier(M4, "Bounce", &p, 1);

    // m5: a complaint (abuse: suppresses jane).
    let m5 = Mail::new(
        M5,
        at(11),
        &[JANE],
        "Autumn preview",
        tags("Marketing", Some("autumn")),
    );
    let p = post(
        app,
        &m5.record(
            "Complaint",
            "complaint",
            json!({
                "feedbackId": "0100019a-fb-m5-000000",
                "complaintSubType": null,
                "complainedRecipients": [{"emailAddress": JANE}],
                "timestamp": ms(at(10)),
                "userAgent": "Yahoo!-Mail-Feedback/2.0",
                "complaintFeedbackType": "abuse",
                "arrivalDate": ms(at(10) - Duration::seconds(5)),
            }),
        ),
        1,
    )
    .await;
    let expected = m5.expected(
        "email_spam_report",
        Some(JANE),
        at(10),
        &p,
        &json!({
            "feedbackId": "0100019a-fb-m5-000000",
            "complaintFeedbackType": "abuse",
            "userAgent": "Yahoo!-Mail-Feedback/2.0",
        }),
    );
    data.events.insert("spam jane m5", (expected, p.clone()));
    data.carrier(M5, "Complaint", &p, 1);

    // m6: only sent.
    let m6 = Mail::new(M6, at(5), &[BOB], "Just sent", tags("Transactional", None));
    let p = post(app, &m6.record("Send", "send", json!({})), 0).await;
    data.carrier(M6, "Send", &p, 0);

    assert_eq!(data.events.len(), ALL.len());
    data
}

/// Asserts an archived message of a timeline field by field.
fn assert_carrier(actual: &Value, expected: &Carrier, raw_body_kept: bool) {
    assert_eq!(
        keys(actual),
        BTreeSet::from([
            "snsMessageId",
            "sesType",
            "outcome",
            "receivedAt",
            "eventsStored",
            "rawBodyKept"
        ]),
        "{actual}"
    );
    assert_eq!(
        actual["snsMessageId"],
        expected.posted.sns.as_str(),
        "{actual}"
    );
    assert_eq!(actual["sesType"], expected.ses_type, "{actual}");
    assert_eq!(actual["outcome"], expected.outcome, "{actual}");
    assert_eq!(actual["eventsStored"], expected.events_stored, "{actual}");
    assert_eq!(actual["rawBodyKept"], raw_body_kept, "{actual}");
    expected
        .posted
        .assert_during(time(&actual["receivedAt"]), "receivedAt");
}

/// `GET /api/v1/messages/{id}`: asserts its shape; the events and the messages.
async fn timeline(app: &TestApp, token: &str, id: &str) -> (Vec<Value>, Vec<Value>) {
    let (status, body) = call(
        app,
        Method::GET,
        &format!("/api/v1/messages/{}", enc(id)),
        Some(token),
    )
    .await;
    assert_eq!(status, 200, "{id}: {body}");
    assert_eq!(
        keys(&body),
        BTreeSet::from(["sesMessageId", "events", "messages"]),
        "{body}"
    );
    assert_eq!(body["sesMessageId"], id, "{body}");
    (
        body["events"].as_array().unwrap().clone(),
        body["messages"].as_array().unwrap().clone(),
    )
}

// ---------------------------------------------------------------------------------------------
// Reading the database.

#[derive(QueryableByName)]
struct Cell {
    #[diesel(sql_type = Nullable<Text>)]
    v: Option<String>,
}

/// The column `v` of `sql` on the server's database, whichever backend it is.
fn cells(app: &TestApp, sql: &str) -> Vec<Option<String>> {
    let query = diesel::sql_query(sql);
    let rows: Vec<Cell> = match &app.store {
        TestStore::Sqlite(file) => query.load(&mut file.connect()),
        other => query.load(&mut PgConnection::establish(other.url()).unwrap()),
    }
    .unwrap_or_else(|e| panic!("{sql}: {e}"));
    rows.into_iter().map(|c| c.v).collect()
}

/// Every row of `erasures`, oldest first: each column (whatever columns the table has) as text.
fn erasures(app: &TestApp) -> Vec<BTreeMap<String, String>> {
    let columns: Vec<String> = match &app.store {
        TestStore::Sqlite(_) => cells(
            app,
            "SELECT name AS v FROM pragma_table_info('erasures') ORDER BY cid",
        ),
        _ => cells(
            app,
            "SELECT CAST(column_name AS TEXT) AS v FROM information_schema.columns \
             WHERE table_name = 'erasures' AND table_schema = current_schema() \
             ORDER BY ordinal_position",
        ),
    }
    .into_iter()
    .map(Option::unwrap)
    .collect();
    assert!(
        columns.iter().any(|c| c == "address_hash"),
        "erasures has no address_hash: {columns:?}"
    );
    let mut rows: Vec<BTreeMap<String, String>> = Vec::new();
    for column in &columns {
        let values = cells(
            app,
            &format!("SELECT CAST({column} AS TEXT) AS v FROM erasures ORDER BY id"),
        );
        rows.resize_with(values.len(), BTreeMap::new);
        for (row, value) in rows.iter_mut().zip(values) {
            row.insert(column.clone(), value.unwrap_or_default());
        }
    }
    rows
}

fn is_true(text: &str) -> bool {
    match text {
        "true" | "t" | "1" => true,
        "false" | "f" | "0" => false,
        other => panic!("not a boolean: {other}"),
    }
}

/// Asserts that no column of any erasure row names `address` (nor its local part).
fn assert_never_named(rows: &[BTreeMap<String, String>], address: &str) {
    let address = address.to_lowercase();
    let local = address.split('@').next().unwrap();
    for row in rows {
        for (column, value) in row {
            let value = value.to_lowercase();
            assert!(
                !value.contains(&address) && !value.contains(local),
                "erasures.{column} names the address: {value:?}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Both backends.

on_both_backends!(
    events_and_timelines_show_what_was_posted,
    every_filter_selects_what_it_says,
    paging_neither_repeats_nor_skips_and_cursors_belong_to_their_filters,
    exports_hold_the_same_events_as_the_json_answer,
    exports_span_several_pages,
    scopes_are_enforced,
    erasure_deletes_events_clears_bodies_and_is_recorded_without_the_address,
    the_erase_command_erases_as_the_api_does,
    retention_deletes_old_events_and_messages_and_keeps_suppressions,
    erasures_are_counted_in_the_metrics_without_the_address,
    a_cursor_with_any_character_changed_is_refused,
    erasure_leaves_no_raw_body_naming_the_address,
);

// ---------------------------------------------------------------------------------------------
// 1. The happy paths.

async fn events_and_timelines_show_what_was_posted(backend: Backend) {
    let app = spawn_on(backend, |_| {}).await;
    let read = app.token("reader", Scope::Read).await;
    let data = seed(&app).await;
    let stored = app.events();
    assert_eq!(stored.len(), ALL.len());

    // Every event, newest first, each field as posted.
    let (items, next) = page(&app, &read, &[]).await;
    assert_eq!(next, None);
    assert_eq!(labels(&items), ALL);
    for item in &items {
        data.assert_item(item, &stored);
    }
    let unique: BTreeSet<String> = event_keys(&items).into_iter().collect();
    assert_eq!(unique.len(), ALL.len(), "eventKeys repeat");

    // m1's timeline: its events oldest first; the SNS messages that carried them, and the Send
    // and DeliveryDelay records of it, which stored no event.
    let (events, messages) = timeline(&app, &read, M1).await;
    assert_eq!(
        labels_oldest_first(&events),
        ["delivered john m1", "open john m1", "click john m1"]
    );
    for event in &events {
        data.assert_item(event, &stored);
    }
    let expected = data.carriers(M1);
    assert_eq!(
        messages.len(),
        expected.len(),
        "m1's messages: {messages:?}"
    );
    for (actual, expected) in messages.iter().zip(&expected) {
        assert_carrier(actual, expected, true);
    }
    let types: Vec<&str> = messages
        .iter()
        .map(|m| m["sesType"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        ["Send", "DeliveryDelay", "Delivery", "Open", "Click"]
    );

    // m2: two events of one message.
    let (events, messages) = timeline(&app, &read, M2).await;
    assert_eq!(
        labels_oldest_first(&events),
        ["delivered bob m2", "delivered jane m2"]
    );
    for event in &events {
        data.assert_item(event, &stored);
    }
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_carrier(&messages[0], &data.carriers(M2)[0], true);

    // m3, m4, m5: one event each, one message each.
    for (id, name) in [
        (M3, "hard john m3"),
        (M4, "soft bob m4"),
        (M5, "spam jane m5"),
    ] {
        let (events, messages) = timeline(&app, &read, id).await;
        assert_eq!(labels_oldest_first(&events), [name]);
        data.assert_item(&events[0], &stored);
        assert_eq!(messages.len(), 1, "{messages:?}");
        assert_carrier(&messages[0], &data.carriers(id)[0], true);
    }

    // m6: only a Send record: no event, and still a timeline.
    let (events, messages) = timeline(&app, &read, M6).await;
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_carrier(&messages[0], &data.carriers(M6)[0], true);
    assert_eq!(messages[0]["outcome"], "no_events");

    // Nothing known: 404; not an id: 400.
    let (status, body) = call(
        &app,
        Method::GET,
        "/api/v1/messages/0100019a-never-sent",
        Some(&read),
    )
    .await;
    assert_error(status, &body, 404, "not_found", "an unknown SES message id");
    let (status, body) = call(&app, Method::GET, "/api/v1/messages/%20", Some(&read)).await;
    assert_error(status, &body, 400, "invalid_message_id", "a blank id");
}

// ---------------------------------------------------------------------------------------------
// 2. Filters.

async fn every_filter_selects_what_it_says(backend: Backend) {
    let app = spawn_on(backend, |_| {}).await;
    let read = app.token("reader", Scope::Read).await;
    let data = seed(&app).await;
    let stored = app.events();
    let at = |minutes: i64| us(data.at(minutes));
    let plus_ms = |minutes: i64| us(data.at(minutes) + Duration::milliseconds(1));
    let offset = |minutes: i64| {
        data.at(minutes)
            .with_timezone(&FixedOffset::east_opt(2 * 3600).unwrap())
            .to_rfc3339_opts(SecondsFormat::Millis, false)
    };

    let cases: Vec<(Query, Vec<&str>)> = vec![
        (vec![], ALL.to_vec()),
        // recipient: case-insensitive, whatever case SES reported.
        (
            pairs(&[("recipient", "john@EXAMPLE.com")]),
            vec![
                "hard john m3",
                "click john m1",
                "open john m1",
                "delivered john m1",
            ],
        ),
        (
            pairs(&[("recipient", "JOHN@example.COM")]),
            vec![
                "hard john m3",
                "click john m1",
                "open john m1",
                "delivered john m1",
            ],
        ),
        (
            pairs(&[("recipient", "Bob@Example.NET")]),
            vec!["soft bob m4", "delivered bob m2"],
        ),
        (pairs(&[("recipient", "nobody@example.com")]), vec![]),
        // sesMessageId.
        (
            pairs(&[("sesMessageId", M1)]),
            vec!["click john m1", "open john m1", "delivered john m1"],
        ),
        (
            pairs(&[("sesMessageId", M2)]),
            vec!["delivered bob m2", "delivered jane m2"],
        ),
        (pairs(&[("sesMessageId", M6)]), vec![]),
        // type, once and repeated.
        (
            pairs(&[("type", "email_bounce")]),
            vec!["soft bob m4", "hard john m3"],
        ),
        (
            pairs(&[("type", "email_bounce"), ("type", "email_spam_report")]),
            vec!["spam jane m5", "soft bob m4", "hard john m3"],
        ),
        (
            pairs(&[("type", "email_open"), ("type", "email_click")]),
            vec!["click john m1", "open john m1"],
        ),
        (
            pairs(&[("type", "email_delivered")]),
            vec!["delivered bob m2", "delivered jane m2", "delivered john m1"],
        ),
        // bounceType.
        (pairs(&[("bounceType", "hard")]), vec!["hard john m3"]),
        (pairs(&[("bounceType", "soft")]), vec!["soft bob m4"]),
        (
            pairs(&[("bounceType", "hard"), ("type", "email_delivered")]),
            vec![],
        ),
        (
            pairs(&[("bounceType", "soft"), ("type", "email_bounce")]),
            vec!["soft bob m4"],
        ),
        // since (inclusive) and until (exclusive), on an event's exact time.
        (
            vec![("since", at(20))],
            vec!["spam jane m5", "soft bob m4", "hard john m3"],
        ),
        (
            vec![("since", plus_ms(20))],
            vec!["spam jane m5", "soft bob m4"],
        ),
        (
            vec![("until", at(20))],
            vec![
                "delivered bob m2",
                "delivered jane m2",
                "click john m1",
                "open john m1",
                "delivered john m1",
            ],
        ),
        (
            vec![("until", plus_ms(20))],
            vec![
                "hard john m3",
                "delivered bob m2",
                "delivered jane m2",
                "click john m1",
                "open john m1",
                "delivered john m1",
            ],
        ),
        (
            vec![("since", at(40)), ("until", at(15))],
            vec![
                "hard john m3",
                "delivered bob m2",
                "delivered jane m2",
                "click john m1",
            ],
        ),
        // The same instant written with another offset.
        (
            vec![("since", offset(20))],
            vec!["spam jane m5", "soft bob m4", "hard john m3"],
        ),
        // configurationSet (the ses:configuration-set tag).
        (
            pairs(&[("configurationSet", "Marketing")]),
            vec![
                "spam jane m5",
                "hard john m3",
                "click john m1",
                "open john m1",
                "delivered john m1",
            ],
        ),
        (
            pairs(&[("configurationSet", "Transactional")]),
            vec!["soft bob m4", "delivered bob m2", "delivered jane m2"],
        ),
        (pairs(&[("configurationSet", "Nonexistent")]), vec![]),
        // tag, once and repeated (all must hold); an ses: name ends at its second colon.
        (
            pairs(&[("tag", "campaign:spring")]),
            vec![
                "hard john m3",
                "click john m1",
                "open john m1",
                "delivered john m1",
            ],
        ),
        (
            pairs(&[("tag", "campaign:summer")]),
            vec!["delivered bob m2", "delivered jane m2"],
        ),
        (
            pairs(&[
                ("tag", "campaign:spring"),
                ("tag", "ses:configuration-set:Marketing"),
            ]),
            vec![
                "hard john m3",
                "click john m1",
                "open john m1",
                "delivered john m1",
            ],
        ),
        (
            pairs(&[("tag", "campaign:spring"), ("tag", "campaign:summer")]),
            vec![],
        ),
        (pairs(&[("tag", "ses:source-ip:192.0.2.0")]), ALL.to_vec()),
        (
            pairs(&[
                ("tag", "campaign:autumn"),
                ("configurationSet", "Marketing"),
            ]),
            vec!["spam jane m5"],
        ),
        (
            pairs(&[
                ("tag", "campaign:spring"),
                ("configurationSet", "Transactional"),
            ]),
            vec![],
        ),
        // Combinations.
        (
            vec![
                ("recipient", "john@EXAMPLE.com".to_owned()),
                ("type", "email_bounce".to_owned()),
                ("bounceType", "hard".to_owned()),
                ("configurationSet", "Marketing".to_owned()),
                ("tag", "campaign:spring".to_owned()),
                ("since", at(20)),
                ("until", at(15)),
            ],
            vec!["hard john m3"],
        ),
        (
            vec![("recipient", JANE.to_owned()), ("since", at(30))],
            vec!["spam jane m5", "delivered jane m2"],
        ),
        (
            pairs(&[("sesMessageId", M2), ("recipient", "BOB@example.net")]),
            vec!["delivered bob m2"],
        ),
        (
            pairs(&[("recipient", "john@example.com"), ("bounceType", "soft")]),
            vec![],
        ),
        (
            vec![
                ("configurationSet", "Marketing".to_owned()),
                ("type", "email_open".to_owned()),
                ("type", "email_click".to_owned()),
                ("type", "email_spam_report".to_owned()),
                ("until", at(10)),
            ],
            vec!["click john m1", "open john m1"],
        ),
    ];
    for (query, expected) in &cases {
        let items = all(&app, &read, query).await;
        assert_eq!(labels(&items), *expected, "{}", events_path(query));
        for item in &items {
            data.assert_item(item, &stored);
        }
    }

    // Invalid filters.
    for (query, code) in [
        (pairs(&[("type", "email_bounced")]), "invalid_type"),
        (pairs(&[("bounceType", "permanent")]), "invalid_bounce_type"),
        (pairs(&[("since", "yesterday")]), "invalid_time"),
        (vec![("since", at(20)), ("until", at(20))], "invalid_time"),
        (vec![("since", at(10)), ("until", at(20))], "invalid_time"),
        (pairs(&[("tag", "campaign")]), "invalid_tag"),
        (pairs(&[("tag", "campaign:")]), "invalid_tag"),
        (pairs(&[("recipient", "not-an-address")]), "invalid_address"),
        (
            pairs(&[("recipient", JANE), ("recipient", BOB)]),
            "invalid_parameter",
        ),
        (pairs(&[("campaign", "spring")]), "unknown_parameter"),
        (pairs(&[("limit", "0")]), "invalid_limit"),
        (pairs(&[("limit", "1001")]), "invalid_limit"),
        (pairs(&[("limit", "ten")]), "invalid_limit"),
    ] {
        let path = events_path(&query);
        let (status, body) = call(&app, Method::GET, &path, Some(&read)).await;
        assert_error(status, &body, 400, code, &path);
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Paging.

/// `cursor` with its character at `index` replaced by another base64url character.
fn flip(cursor: &str, index: usize) -> String {
    let mut chars: Vec<char> = cursor.chars().collect();
    chars[index] = if chars[index] == 'A' { 'B' } else { 'A' };
    chars.into_iter().collect()
}

async fn paging_neither_repeats_nor_skips_and_cursors_belong_to_their_filters(backend: Backend) {
    let app = spawn_on(backend, |_| {}).await;
    let read = app.token("reader", Scope::Read).await;
    let data = seed(&app).await;
    let stored = app.events();
    let whole = all(&app, &read, &[]).await;
    assert_eq!(labels(&whole), ALL);

    // Every page size: the pages put together are the whole answer, in its order.
    for (limit, sizes) in [
        (1, vec![1; 8]),
        (3, vec![3, 3, 2]),
        (7, vec![7, 1]),
        (8, vec![8]),
        (100, vec![8]),
    ] {
        let (items, got) = walk(&app, &read, &[], limit).await;
        assert_eq!(got, sizes, "page sizes with limit={limit}");
        assert_eq!(
            event_keys(&items),
            event_keys(&whole),
            "limit={limit}: a page repeated or skipped an event"
        );
        for item in &items {
            data.assert_item(item, &stored);
        }
    }
    // The default page holds them all.
    let (items, next) = page(&app, &read, &[]).await;
    assert_eq!((items.len(), next), (ALL.len(), None));

    // With filters.
    let marketing = pairs(&[("configurationSet", "Marketing")]);
    let (items, sizes) = walk(&app, &read, &marketing, 2).await;
    assert_eq!(sizes, [2, 2, 1]);
    assert_eq!(
        labels(&items),
        [
            "spam jane m5",
            "hard john m3",
            "click john m1",
            "open john m1",
            "delivered john m1"
        ]
    );
    assert_eq!(
        event_keys(&items),
        event_keys(&all(&app, &read, &marketing).await)
    );

    // Events arriving while paging: a newer one lands before the first page (not seen), an
    // older one after the position reached (seen), nothing repeats or is skipped.
    let limit3 = pairs(&[("limit", "3")]);
    let (first, cursor) = page(&app, &read, &limit3).await;
    let mut seen = first.clone();
    let mut cursor = cursor.expect("a next page");
    let late = Mail::new(
        "0100019a3f2e71c4-5b0c1d3e-8a41-4f7e-9d2b-m7",
        data.at(3),
        &["late@example.com"],
        "Late",
        tags("Marketing", None),
    );
    post(
        &app,
        &late.record(
            "Delivery",
            "delivery",
            delivery(
                data.at(2),
                &["late@example.com"],
                "250 OK",
                "203.0.113.1",
                1,
            ),
        ),
        1,
    )
    .await;
    let early = Mail::new(
        "0100019a3f2e71c4-5b0c1d3e-8a41-4f7e-9d2b-m8",
        data.at(121),
        &["early@example.com"],
        "Early",
        tags("Marketing", None),
    );
    post(
        &app,
        &early.record(
            "Delivery",
            "delivery",
            delivery(
                data.at(120),
                &["early@example.com"],
                "250 OK",
                "203.0.113.1",
                1,
            ),
        ),
        1,
    )
    .await;
    loop {
        let mut query = limit3.clone();
        query.push(("cursor", cursor.clone()));
        let (items, next) = page(&app, &read, &query).await;
        seen.extend(items);
        match next {
            Some(next) => cursor = next,
            None => break,
        }
    }
    let mut expected: Vec<String> = ALL.iter().map(|l| (*l).to_owned()).collect();
    expected.push("delivered early m8".into());
    assert_eq!(labels(&seen), expected);
    let unique: BTreeSet<String> = event_keys(&seen).into_iter().collect();
    assert_eq!(unique.len(), seen.len(), "an event was seen twice");
    let (fresh, _) = page(&app, &read, &limit3).await;
    assert_eq!(label(&fresh[0]), "delivered late m7");

    // A cursor belongs to its filters: other filters are refused, the same filters in another
    // order or with another limit are not.
    let bounces = pairs(&[
        ("type", "email_bounce"),
        ("type", "email_spam_report"),
        ("limit", "1"),
    ]);
    let (first, cursor) = page(&app, &read, &bounces).await;
    assert_eq!(labels(&first), ["spam jane m5"]);
    let cursor = cursor.expect("a next page");
    for other in [
        vec![("limit", "1".to_owned())],
        pairs(&[("type", "email_bounce"), ("limit", "1")]),
        pairs(&[
            ("type", "email_bounce"),
            ("type", "email_spam_report"),
            ("recipient", "john@example.com"),
            ("limit", "1"),
        ]),
        pairs(&[
            ("type", "email_bounce"),
            ("type", "email_spam_report"),
            ("since", "2000-01-01T00:00:00Z"),
            ("limit", "1"),
        ]),
        pairs(&[("type", "email_delivered"), ("limit", "1")]),
    ] {
        let mut query = other.clone();
        query.push(("cursor", cursor.clone()));
        let path = events_path(&query);
        let (status, body) = call(&app, Method::GET, &path, Some(&read)).await;
        assert_error(status, &body, 400, "invalid_cursor", &path);
    }
    for same in [
        pairs(&[
            ("type", "email_spam_report"),
            ("type", "email_bounce"),
            ("limit", "1"),
        ]),
        pairs(&[
            ("limit", "5"),
            ("type", "email_bounce"),
            ("type", "email_spam_report"),
        ]),
    ] {
        let mut query = same.clone();
        query.push(("cursor", cursor.clone()));
        let (items, _) = page(&app, &read, &query).await;
        assert_eq!(labels(&items)[0], "soft bob m4", "{}", events_path(&query));
    }

    // A tampered cursor: 400, the untampered one still works.
    let len = cursor.chars().count();
    let mut appended = cursor.clone();
    appended.push('A');
    for (what, bad) in [
        ("first character flipped", flip(&cursor, 0)),
        ("second character flipped", flip(&cursor, 1)),
        ("last character flipped", flip(&cursor, len - 1)),
        ("a fingerprint character flipped", flip(&cursor, len - 4)),
        ("a fingerprint character flipped", flip(&cursor, len - 10)),
        ("a character appended", appended),
        ("truncated", cursor[..len - 2].to_owned()),
        ("not base64", "!!!".to_owned()),
        ("empty", String::new()),
    ] {
        let mut query = bounces.clone();
        query.push(("cursor", bad.clone()));
        let path = events_path(&query);
        let (status, body) = call(&app, Method::GET, &path, Some(&read)).await;
        assert_error(
            status,
            &body,
            400,
            "invalid_cursor",
            &format!("{what}: {bad}"),
        );
    }
    let mut query = bounces.clone();
    query.push(("cursor", cursor.clone()));
    let (items, _) = page(&app, &read, &query).await;
    assert_eq!(labels(&items), ["soft bob m4"]);
}

/// Every single-character change of a cursor is refused: the error says "the cursor is not one
/// this API gave out", so a cursor the API did not give out must not be taken as a position.
async fn a_cursor_with_any_character_changed_is_refused(backend: Backend) {
    let app = spawn_on(backend, |_| {}).await;
    let read = app.token("reader", Scope::Read).await;
    seed(&app).await;
    let query = pairs(&[("limit", "1")]);
    let (_, cursor) = page(&app, &read, &query).await;
    let cursor = cursor.expect("a next page");

    let mut accepted = Vec::new();
    for index in 0..cursor.len() {
        let bad = flip(&cursor, index);
        let mut tampered = query.clone();
        tampered.push(("cursor", bad.clone()));
        let path = events_path(&tampered);
        let (status, body) = call(&app, Method::GET, &path, Some(&read)).await;
        if status == 400 {
            assert_error(status, &body, 400, "invalid_cursor", &bad);
        } else {
            let shown: Vec<String> = body["items"]
                .as_array()
                .map(|items| items.iter().map(label).collect())
                .unwrap_or_default();
            accepted.push(format!(
                "character {index} changed: {bad} answered {status} with {shown:?}"
            ));
        }
    }
    assert!(
        accepted.is_empty(),
        "tampered cursors accepted (the original is {cursor}):\n{}",
        accepted.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// 5. Exports.

fn parse_ndjson(body: &str) -> Vec<Value> {
    if body.is_empty() {
        return Vec::new();
    }
    assert!(body.ends_with('\n'), "the last line is not ended: {body:?}");
    body.lines()
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("a line is not JSON ({e}): {line}"))
        })
        .collect()
}

fn parse_csv(body: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(body.as_bytes());
    let header = reader
        .headers()
        .expect("a header row")
        .iter()
        .map(str::to_owned)
        .collect();
    let records = reader
        .records()
        .map(|r| {
            r.unwrap_or_else(|e| panic!("not CSV ({e}): {body}"))
                .iter()
                .map(str::to_owned)
                .collect()
        })
        .collect();
    (header, records)
}

/// Asserts that the CSV `records` are the JSON `items`, in order: strings as they are, numbers
/// in decimal, JSON objects as JSON text, `null` as an empty field.
fn assert_csv_is(records: &[Vec<String>], items: &[Value]) {
    assert_eq!(records.len(), items.len(), "CSV records");
    for (record, item) in records.iter().zip(items) {
        assert_eq!(record.len(), COLUMNS.len(), "{record:?}");
        for (column, cell) in COLUMNS.iter().zip(record) {
            let value = &item[*column];
            match value {
                Value::Null => assert_eq!(cell, "", "{column} of {item}"),
                Value::String(text) => assert_eq!(cell, text, "{column} of {item}"),
                Value::Number(n) => assert_eq!(*cell, n.to_string(), "{column} of {item}"),
                Value::Object(_) => {
                    let parsed: Value = serde_json::from_str(cell)
                        .unwrap_or_else(|e| panic!("{column} is not JSON text ({e}): {cell:?}"));
                    assert_eq!(&parsed, value, "{column} of {item}");
                }
                other => panic!("{column}: unexpected JSON {other}"),
            }
        }
    }
}

const NDJSON: &str = "application/x-ndjson";
const CSV: &str = "text/csv";

async fn exports_hold_the_same_events_as_the_json_answer(backend: Backend) {
    let app = spawn_on(backend, |_| {}).await;
    let read = app.token("reader", Scope::Read).await;
    let data = seed(&app).await;
    let stored = app.events();

    for query in [
        vec![],
        pairs(&[("configurationSet", "Marketing")]),
        pairs(&[("type", "email_bounce"), ("type", "email_spam_report")]),
        vec![
            ("recipient", "john@EXAMPLE.com".to_owned()),
            ("since", us(data.at(50))),
        ],
        pairs(&[("recipient", "nobody@example.com")]),
    ] {
        let path = events_path(&query);
        let items = all(&app, &read, &query).await;
        for item in &items {
            data.assert_item(item, &stored);
        }

        let ndjson = fetch(&app, &path, Some(&read), NDJSON).await;
        assert_eq!(ndjson.status, 200, "{path}: {}", ndjson.body);
        assert!(
            ndjson.content_type.starts_with(NDJSON),
            "{path}: {}",
            ndjson.content_type
        );
        assert_eq!(ndjson.cache_control, "no-store", "{path}");
        let lines = parse_ndjson(&ndjson.body);
        assert_eq!(lines, items, "{path}: NDJSON differs from the JSON answer");

        let csv = fetch(&app, &path, Some(&read), CSV).await;
        assert_eq!(csv.status, 200, "{path}: {}", csv.body);
        assert!(
            csv.content_type.starts_with("text/csv"),
            "{path}: {}",
            csv.content_type
        );
        assert_eq!(csv.cache_control, "no-store", "{path}");
        assert!(
            csv.body.starts_with(&format!("{}\r\n", COLUMNS.join(","))),
            "{path}: the header row: {:?}",
            csv.body.lines().next()
        );
        let (header, records) = parse_csv(&csv.body);
        assert_eq!(header, COLUMNS, "{path}");
        assert_eq!(header, adapters_http::CSV_COLUMNS, "{path}");
        assert_csv_is(&records, &items);
    }

    // The subject CSV must quote, read back as it was sent.
    let csv = fetch(
        &app,
        &events_path(&pairs(&[("sesMessageId", M1)])),
        Some(&read),
        CSV,
    )
    .await;
    let (_, records) = parse_csv(&csv.body);
    assert_eq!(records.len(), 3);
    let subject = COLUMNS.iter().position(|c| *c == "subject").unwrap();
    assert!(
        records.iter().all(|r| r[subject] == SUBJECT_M1),
        "{records:?}"
    );
    assert!(
        csv.body
            .contains("\"Frühling sale, \"\"50%\"\" off; today only\""),
        "{}",
        csv.body
    );

    // Negotiation: the best quality wins; nothing acceptable is a 406.
    let both = fetch(
        &app,
        EVENTS,
        Some(&read),
        "text/csv;q=0.5, application/x-ndjson",
    )
    .await;
    assert_eq!(both.status, 200);
    assert!(
        both.content_type.starts_with(NDJSON),
        "{}",
        both.content_type
    );
    assert_eq!(parse_ndjson(&both.body).len(), ALL.len());
    for accept in ["text/html", "image/png, application/xml"] {
        let refused = fetch(&app, EVENTS, Some(&read), accept).await;
        let body: Value = serde_json::from_str(&refused.body).unwrap();
        assert_error(refused.status, &body, 406, "not_acceptable", accept);
    }

    // An export takes no limit and no cursor.
    let (_, cursor) = page(&app, &read, &pairs(&[("limit", "2")])).await;
    let cursor = cursor.expect("a next page");
    for accept in [NDJSON, CSV] {
        let path = events_path(&pairs(&[("limit", "10")]));
        let refused = fetch(&app, &path, Some(&read), accept).await;
        let body: Value = serde_json::from_str(&refused.body).unwrap();
        assert_error(
            refused.status,
            &body,
            400,
            "invalid_limit",
            &format!("{accept} {path}"),
        );
        let path = events_path(&[("cursor", cursor.clone())]);
        let refused = fetch(&app, &path, Some(&read), accept).await;
        let body: Value = serde_json::from_str(&refused.body).unwrap();
        assert_error(
            refused.status,
            &body,
            400,
            "invalid_cursor",
            &format!("{accept} {path}"),
        );
    }
}

/// More events than one export page (1000): the export streams them all, each once, in the
/// order of the JSON pages, across events of the same time.
async fn exports_span_several_pages(backend: Backend) {
    let app = spawn_on(backend, |_| {}).await;
    let read = app.token("reader", Scope::Read).await;
    let at = Utc::now().trunc_subsecs(3) - Duration::minutes(5);
    let recipients: Vec<String> = (0..1001)
        .map(|i| format!("r{i:04}@bulk.example.com"))
        .collect();
    let refs: Vec<&str> = recipients.iter().map(String::as_str).collect();
    let bulk = Mail::new(
        "0100019a3f2e71c4-5b0c1d3e-8a41-4f7e-9d2b-bulk",
        at - Duration::minutes(1),
        &refs,
        "Newsletter",
        tags("Bulk", Some("newsletter")),
    );
    post(
        &app,
        &bulk.record(
            "Delivery",
            "delivery",
            delivery(at, &refs, "250 OK", "203.0.113.2", 5),
        ),
        1001,
    )
    .await;
    for (id, minutes) in [
        ("0100019a3f2e71c4-5b0c1d3e-8a41-4f7e-9d2b-x0", 1),
        ("0100019a3f2e71c4-5b0c1d3e-8a41-4f7e-9d2b-x1", 10),
    ] {
        let mail = Mail::new(
            id,
            at - Duration::minutes(minutes + 1),
            &["extra@example.com"],
            "Extra",
            tags("Bulk", None),
        );
        post(
            &app,
            &mail.record(
                "Delivery",
                "delivery",
                delivery(
                    at - Duration::minutes(minutes),
                    &["extra@example.com"],
                    "250 OK",
                    "203.0.113.2",
                    5,
                ),
            ),
            1,
        )
        .await;
    }
    let (paged, sizes) = walk(&app, &read, &[], 1000).await;
    assert_eq!(sizes, [1000, 3]);
    let unique: BTreeSet<String> = event_keys(&paged).into_iter().collect();
    assert_eq!(unique.len(), 1003, "the JSON pages repeat an event");
    let _ = labels(&paged);

    let ndjson = fetch(&app, EVENTS, Some(&read), NDJSON).await;
    assert_eq!(ndjson.status, 200);
    let lines = parse_ndjson(&ndjson.body);
    assert_eq!(lines.len(), 1003);
    assert_eq!(
        lines, paged,
        "the NDJSON export differs from the JSON pages"
    );

    let csv = fetch(&app, EVENTS, Some(&read), CSV).await;
    assert_eq!(csv.status, 200);
    let (header, records) = parse_csv(&csv.body);
    assert_eq!(header, COLUMNS);
    assert_csv_is(&records, &paged);

    // A filter over the same events.
    let query = pairs(&[("configurationSet", "Bulk"), ("tag", "campaign:newsletter")]);
    let lines = parse_ndjson(
        &fetch(&app, &events_path(&query), Some(&read), NDJSON)
            .await
            .body,
    );
    assert_eq!(lines.len(), 1001);
    assert!(lines.iter().all(|l| {
        l["recipient"]
            .as_str()
            .unwrap()
            .ends_with("@bulk.example.com")
    }));
}

// ---------------------------------------------------------------------------------------------
// 4. Scopes.

async fn assert_unauthorized(app: &TestApp, method: Method, path: &str, token: Option<&str>) {
    let response = app
        .api(method.clone(), path, token)
        .header("accept", "text/csv")
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body: Value = response.json().await.unwrap();
    let what = format!("{method} {path}");
    assert_error(status, &body, 401, "unauthorized", &what);
    assert!(
        challenge.starts_with("Bearer"),
        "{what}: WWW-Authenticate {challenge:?}"
    );
}

async fn scopes_are_enforced(backend: Backend) {
    let app = spawn_on(backend, |_| {}).await;
    let read = app.token("reader", Scope::Read).await;
    let write = app.token("crm", Scope::Write).await;
    let unknown = format!("sesw_{}", "A".repeat(43));
    seed(&app).await;
    let recipient = "/api/v1/recipients/john%40example.com";
    let timeline_path = format!("/api/v1/messages/{M1}");

    // No token, or an unknown one: 401 with a Bearer challenge, on every endpoint.
    for token in [None, Some(unknown.as_str())] {
        assert_unauthorized(&app, Method::GET, EVENTS, token).await;
        assert_unauthorized(&app, Method::GET, &timeline_path, token).await;
        assert_unauthorized(&app, Method::DELETE, recipient, token).await;
    }

    // A read token reads, and may not erase.
    assert_eq!(all(&app, &read, &[]).await.len(), ALL.len());
    let (events, _) = timeline(&app, &read, M1).await;
    assert_eq!(events.len(), 3);
    let (status, body) = call(&app, Method::DELETE, recipient, Some(&read)).await;
    assert_error(status, &body, 403, "forbidden", "a read token erasing");
    let (status, body) = call(
        &app,
        Method::DELETE,
        &format!("{recipient}?keepSuppression=false"),
        Some(&read),
    )
    .await;
    assert_error(status, &body, 403, "forbidden", "a read token erasing");
    assert_eq!(app.count("email_events"), ALL.len() as i64, "a 403 erased");
    assert!(app.messages().iter().all(|m| m.raw_body.is_some()));
    assert!(erasures(&app).is_empty());

    // A write token reads too.
    assert_eq!(labels(&all(&app, &write, &[]).await), ALL);
    let (events, messages) = timeline(&app, &write, M1).await;
    assert_eq!((events.len(), messages.len()), (3, 5));
    let export = fetch(&app, EVENTS, Some(&write), NDJSON).await;
    assert_eq!(export.status, 200);
    assert_eq!(parse_ndjson(&export.body).len(), ALL.len());
}

// ---------------------------------------------------------------------------------------------
// 7. Erasure through the API.

/// `DELETE /api/v1/recipients/{address}{query}` with `token`: asserts a 200 of the documented
/// shape; the body.
async fn erase(app: &TestApp, token: &str, address: &str, query: &str) -> Value {
    let path = format!("/api/v1/recipients/{}{query}", enc(address));
    let before = Utc::now();
    let (status, body) = call(app, Method::DELETE, &path, Some(token)).await;
    let after = Utc::now();
    assert_eq!(status, 200, "{path}: {body}");
    assert_eq!(
        keys(&body),
        BTreeSet::from([
            "eventsDeleted",
            "messagesCleared",
            "suppressionRemoved",
            "suppressionKept",
            "historyDeleted",
            "erasedAt",
            "previouslyErasedAt",
            "notice",
        ]),
        "{body}"
    );
    assert!(
        body["notice"].as_str().is_some_and(|n| !n.is_empty()),
        "{body}"
    );
    if !body["erasedAt"].is_null() {
        let at = time(&body["erasedAt"]);
        assert!(
            before - Duration::milliseconds(1) <= at && at <= after,
            "erasedAt {at} not within the request: {body}"
        );
    }
    body
}

/// The counts of an erasure answer: events, messages, removed, kept, history lines.
fn counts(body: &Value) -> (u64, u64, bool, bool, u64) {
    (
        body["eventsDeleted"].as_u64().unwrap(),
        body["messagesCleared"].as_u64().unwrap(),
        body["suppressionRemoved"].as_bool().unwrap(),
        body["suppressionKept"].as_bool().unwrap(),
        body["historyDeleted"].as_u64().unwrap(),
    )
}

async fn erasure_deletes_events_clears_bodies_and_is_recorded_without_the_address(
    backend: Backend,
) {
    let app = spawn_on(backend, |_| {}).await;
    let read = app.token("reader", Scope::Read).await;
    let write = app.token("crm", Scope::Write).await;
    let data = seed(&app).await;
    let (status, entry) = call(
        &app,
        Method::GET,
        "/api/v1/suppressions/john%40example.com",
        Some(&read),
    )
    .await;
    assert_eq!(
        status, 200,
        "the hard bounce did not suppress John: {entry}"
    );

    // m3's bounce delivered a second time in another SNS message (identity notifications and
    // event publishing both on): a duplicate, no new event, archived all the same.
    let m3_sns = &data.carriers(M3)[0].posted.sns;
    let m3_body = app
        .messages()
        .into_iter()
        .find(|m| &m.sns_message_id == m3_sns)
        .and_then(|m| m.raw_body)
        .expect("m3's raw body");
    let m3_envelope: Value = serde_json::from_str(&m3_body).unwrap();
    let copy = app.notification(m3_envelope["Message"].as_str().unwrap());
    let (status, body) = app.post(&copy).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (&body["processed"], &body["duplicates"]),
        (&json!(0), &json!(1)),
        "{body}"
    );

    // John's messages: m1's five (three carried events, Send and DeliveryDelay did not) and
    // m3's two.
    let mut johns: BTreeSet<String> = data.sns_of(M1);
    johns.extend(data.sns_of(M3));
    johns.insert(copy["MessageId"].as_str().unwrap().to_owned());
    assert_eq!(johns.len(), 7);

    let first = erase(&app, &write, "JOHN@example.COM", "").await;
    assert_eq!(counts(&first), (4, 7, false, true, 0), "{first}");
    assert!(first["erasedAt"].is_string(), "{first}");
    assert_eq!(first["previouslyErasedAt"], Value::Null, "{first}");
    assert_eq!(
        first["notice"],
        "7 archived SNS message(s) lost their raw body and can no longer be reprocessed",
        "{first}"
    );

    // His events are gone; the others' are intact.
    assert!(
        all(&app, &read, &pairs(&[("recipient", "john@example.com")]))
            .await
            .is_empty()
    );
    let stored = app.events();
    assert!(stored.iter().all(|e| {
        e.recipient
            .as_deref()
            .is_none_or(|r| !r.eq_ignore_ascii_case(JOHN))
    }));
    let rest = all(&app, &read, &[]).await;
    assert_eq!(
        labels(&rest),
        [
            "spam jane m5",
            "soft bob m4",
            "delivered bob m2",
            "delivered jane m2"
        ]
    );
    for item in &rest {
        data.assert_item(item, &stored);
    }
    // The raw bodies of his messages are cleared, the others' kept.
    for message in app.messages() {
        assert_eq!(
            message.raw_body.is_none(),
            johns.contains(&message.sns_message_id),
            "raw body of {} ({:?})",
            message.sns_message_id,
            message.ses_type
        );
    }
    // m1's timeline: no event left, its messages without their bodies.
    let (events, messages) = timeline(&app, &read, M1).await;
    assert!(events.is_empty(), "{events:?}");
    let expected = data.carriers(M1);
    assert_eq!(messages.len(), expected.len(), "{messages:?}");
    for (actual, expected) in messages.iter().zip(&expected) {
        assert_carrier(actual, expected, false);
    }
    let (_, messages) = timeline(&app, &read, M2).await;
    assert_carrier(&messages[0], &data.carriers(M2)[0], true);
    // The suppression entry is kept (it goes on stopping mail), with its history.
    let (status, entry) = call(
        &app,
        Method::GET,
        "/api/v1/suppressions/john%40example.com",
        Some(&read),
    )
    .await;
    assert_eq!(status, 200, "{entry}");
    assert_eq!(entry["reason"], "hard_bounce");

    // The audit row: the hash of the address, never the address.
    let rows = erasures(&app);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_never_named(&rows, JOHN);
    let row = &rows[0];
    assert_eq!(row["address_hash"], JOHN_HASH, "{row:?}");
    assert_eq!(row["actor"], "token:crm", "{row:?}");
    assert_eq!(row["events_deleted"], "4", "{row:?}");
    assert_eq!(row["messages_cleared"], "7", "{row:?}");
    assert!(!is_true(&row["suppression_removed"]), "{row:?}");
    assert_eq!(row["history_deleted"], "0", "{row:?}");

    // Again: nothing left, nothing recorded, the earlier erasure named.
    let second = erase(&app, &write, "john@example.com", "").await;
    assert_eq!(counts(&second), (0, 0, false, true, 0), "{second}");
    assert_eq!(second["erasedAt"], Value::Null, "{second}");
    assert_eq!(second["previouslyErasedAt"], first["erasedAt"], "{second}");
    assert_eq!(erasures(&app).len(), 1, "a second erasure added a row");

    // keepSuppression=false: the entry and its history go too.
    let third = erase(&app, &write, JOHN, "?keepSuppression=false").await;
    assert_eq!(counts(&third), (0, 0, true, false, 1), "{third}");
    assert!(third["erasedAt"].is_string(), "{third}");
    assert_eq!(third["previouslyErasedAt"], first["erasedAt"], "{third}");
    let (status, body) = call(
        &app,
        Method::GET,
        "/api/v1/suppressions/john%40example.com",
        Some(&read),
    )
    .await;
    assert_error(
        status,
        &body,
        404,
        "not_suppressed",
        "after keepSuppression=false",
    );
    let (status, history) = call(
        &app,
        Method::GET,
        "/api/v1/suppressions/john%40example.com/history",
        Some(&read),
    )
    .await;
    assert_eq!(status, 200, "{history}");
    assert_eq!(history, json!({"items": []}));
    let rows = erasures(&app);
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_never_named(&rows, JOHN);
    assert_eq!(rows[1]["address_hash"], JOHN_HASH);
    assert!(is_true(&rows[1]["suppression_removed"]), "{rows:?}");
    assert_eq!(rows[1]["history_deleted"], "1", "{rows:?}");
    let fourth = erase(&app, &write, JOHN, "?keepSuppression=false").await;
    assert_eq!(counts(&fourth), (0, 0, false, false, 0), "{fourth}");
    assert_eq!(fourth["erasedAt"], Value::Null, "{fourth}");
    assert_eq!(fourth["previouslyErasedAt"], third["erasedAt"], "{fourth}");
    assert_eq!(erasures(&app).len(), 2);

    // jane, suppression removed at once: her two events; m2's message, which also carried
    // bob's delivery, loses its body too; bob's events stay.
    let jane = erase(&app, &write, "Jane@Example.org", "?keepSuppression=false").await;
    assert_eq!(counts(&jane), (2, 2, true, false, 1), "{jane}");
    assert_eq!(jane["previouslyErasedAt"], Value::Null, "{jane}");
    let rest = all(&app, &read, &[]).await;
    assert_eq!(labels(&rest), ["soft bob m4", "delivered bob m2"]);
    let stored = app.events();
    for item in &rest {
        data.assert_item(item, &stored);
    }
    let (status, _) = call(
        &app,
        Method::GET,
        "/api/v1/suppressions/jane%40example.org",
        Some(&read),
    )
    .await;
    assert_eq!(status, 404, "jane's entry was kept");
    let mut cleared = johns.clone();
    cleared.extend(data.sns_of(M2));
    cleared.extend(data.sns_of(M5));
    for message in app.messages() {
        assert_eq!(
            message.raw_body.is_none(),
            cleared.contains(&message.sns_message_id),
            "raw body of {} ({:?})",
            message.sns_message_id,
            message.ses_type
        );
    }
    let rows = erasures(&app);
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[2]["address_hash"], JANE_HASH);
    assert_never_named(&rows, JANE);
    assert_never_named(&rows, JOHN);

    // Nobody known: nothing done, nothing recorded.
    let nobody = erase(&app, &write, "nobody@example.com", "").await;
    assert_eq!(counts(&nobody), (0, 0, false, false, 0), "{nobody}");
    assert_eq!(nobody["erasedAt"], Value::Null);
    assert_eq!(nobody["previouslyErasedAt"], Value::Null);
    assert_eq!(
        nobody["notice"], "no archived raw body was cleared",
        "{nobody}"
    );

    // Refused requests change nothing.
    for (path, code) in [
        ("/api/v1/recipients/not-an-address", "invalid_address"),
        (
            "/api/v1/recipients/bob%40example.net?keepSuppression=maybe",
            "invalid_parameter",
        ),
        (
            "/api/v1/recipients/bob%40example.net?keep=false",
            "unknown_parameter",
        ),
    ] {
        let (status, body) = call(&app, Method::DELETE, path, Some(&write)).await;
        assert_error(status, &body, 400, code, path);
    }
    assert_eq!(erasures(&app).len(), 3);
    assert_eq!(app.count("email_events"), 2);
}

/// After an erasure no archived raw body names the address: the erasure is the right to
/// erasure, and a raw body kept is the address kept. Here bob has events (m2, m4) and m6 was
/// sent to him, of which only the `Send` record arrived (no event yet).
async fn erasure_leaves_no_raw_body_naming_the_address(backend: Backend) {
    let app = spawn_on(backend, |_| {}).await;
    let write = app.token("crm", Scope::Write).await;
    let data = seed(&app).await;
    let named = |app: &TestApp| -> Vec<String> {
        app.messages()
            .into_iter()
            .filter(|m| {
                m.raw_body
                    .as_deref()
                    .is_some_and(|b| b.to_lowercase().contains(BOB))
            })
            .map(|m| format!("{} ({})", m.sns_message_id, m.ses_type.unwrap_or_default()))
            .collect()
    };
    assert_eq!(named(&app).len(), 3, "bob's messages before: m2, m4, m6");

    let report = erase(&app, &write, BOB, "").await;
    assert_eq!(counts(&report).0, 2, "{report}");

    let left = named(&app);
    assert!(
        left.is_empty(),
        "after erasing {BOB} ({report}), archived raw bodies still name him: {left:?} \
         (m6's Send is {})",
        data.carriers(M6)[0].posted.sns
    );
}

// ---------------------------------------------------------------------------------------------
// 8. The erase command.

/// What a command printed, readable after it ran.
#[derive(Clone, Default)]
struct Output(Arc<Mutex<Vec<u8>>>);

impl Output {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn run_erase(app: &TestApp, address: &str, keep_suppression: bool) -> String {
    let mut out = Output::default();
    app::list_commands::erase(&app.settings, address, keep_suppression, &mut out)
        .await
        .unwrap_or_else(|e| panic!("erase {address}: {e:#}"));
    let printed = out.text();
    let lower = printed.to_lowercase();
    assert!(
        !lower.contains("john") && !lower.contains("example.com"),
        "the command printed the address: {printed}"
    );
    printed
}

async fn the_erase_command_erases_as_the_api_does(backend: Backend) {
    let app = spawn_on(backend, |_| {}).await;
    let read = app.token("reader", Scope::Read).await;
    let data = seed(&app).await;

    let printed = run_erase(&app, "JOHN@example.com", true).await;
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(lines.len(), 5, "{printed}");
    assert!(
        lines[0].starts_with("database: ") && !lines[0].contains("password"),
        "the database it erased in comes first: {printed}"
    );
    assert_eq!(lines[1], "events deleted: 4", "{printed}");
    assert_eq!(
        lines[2], "archived messages cleared: 6 (they can no longer be reprocessed)",
        "{printed}"
    );
    assert!(lines[3].starts_with("suppression entry: kept"), "{printed}");
    assert!(
        lines[4].starts_with("recorded in the erasures table at "),
        "{printed}"
    );

    assert!(
        all(&app, &read, &pairs(&[("recipient", "john@example.com")]))
            .await
            .is_empty()
    );
    assert_eq!(
        all_labels(&app, &read, &[]).await,
        [
            "spam jane m5",
            "soft bob m4",
            "delivered bob m2",
            "delivered jane m2"
        ]
    );
    let mut johns = data.sns_of(M1);
    johns.extend(data.sns_of(M3));
    for message in app.messages() {
        assert_eq!(
            message.raw_body.is_none(),
            johns.contains(&message.sns_message_id),
            "raw body of {}",
            message.sns_message_id
        );
    }
    let (status, _) = call(
        &app,
        Method::GET,
        "/api/v1/suppressions/john%40example.com",
        Some(&read),
    )
    .await;
    assert_eq!(status, 200, "the command removed the suppression entry");
    let rows = erasures(&app);
    assert_eq!(rows.len(), 1);
    assert_never_named(&rows, JOHN);
    assert_eq!(rows[0]["address_hash"], JOHN_HASH);
    assert_eq!(rows[0]["actor"], "command:erase");
    assert_eq!(rows[0]["events_deleted"], "4");
    assert_eq!(rows[0]["messages_cleared"], "6");

    // Again: nothing left.
    let printed = run_erase(&app, "john@example.com", true).await;
    assert!(printed.contains("events deleted: 0\n"), "{printed}");
    assert!(
        printed.contains("archived messages cleared: 0 "),
        "{printed}"
    );
    assert!(
        printed.contains("nothing left to erase; nothing recorded"),
        "{printed}"
    );
    assert!(printed.contains("erased before at "), "{printed}");
    assert_eq!(erasures(&app).len(), 1);

    // --remove-suppression.
    let printed = run_erase(&app, "john@example.com", false).await;
    assert!(
        printed.contains("suppression entry: removed, with 1 history line(s)"),
        "{printed}"
    );
    assert!(
        printed.contains("recorded in the erasures table at "),
        "{printed}"
    );
    let (status, _) = call(
        &app,
        Method::GET,
        "/api/v1/suppressions/john%40example.com",
        Some(&read),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(erasures(&app).len(), 2);

    // Not an address: an error, nothing erased.
    let mut out = Output::default();
    let error = app::list_commands::erase(&app.settings, "not-an-address", true, &mut out)
        .await
        .unwrap_err();
    assert!(!format!("{error:#}").is_empty());
    assert_eq!(erasures(&app).len(), 2);
    assert_eq!(app.count("email_events"), 4);
}

// ---------------------------------------------------------------------------------------------
// 9. Retention.

fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

async fn retention_deletes_old_events_and_messages_and_keeps_suppressions(backend: Backend) {
    let app = spawn_on(backend, |settings| {
        settings.retention.events_days = 1;
        settings.retention.messages_days = 1;
        settings.retention.purge_interval_secs = 1;
    })
    .await;
    let read = app.token("reader", Scope::Read).await;
    let now = Utc::now().trunc_subsecs(3);
    let hours = |h: i64| now - Duration::hours(h);

    // r1: a hard bounce three days old (suppresses old@); r2: a delivery 25 hours old; r3 and
    // r4: deliveries 23 hours and 1 hour old.
    let r1 = Mail::new(
        "0100019a3f2e71c4-5b0c1d3e-8a41-4f7e-9d2b-r1",
        hours(72) - Duration::minutes(1),
        &["old@example.com"],
        "Old",
        tags("Marketing", None),
    );
    let p1 = post(
        &app,
        &r1.record(
            "Bounce",
            "bounce",
            json!({
                "bounceType": "Permanent",
                "bounceSubType": "General",
                "bouncedRecipients": [{"emailAddress": "old@example.com", "status": "5.1.1", "action": "failed"}],
                "timestamp": ms(hours(72)),
                "feedbackId": "fb-r1",
            }),
        ),
        1,
    )
    .await;
    let mut posted = vec![p1];
    for (id, who, h) in [
        ("r2", "edge@example.com", 25),
        ("r3", "fresh@example.com", 23),
        ("r4", "fresh@example.com", 1),
    ] {
        let mail = Mail::new(
            &format!("0100019a3f2e71c4-5b0c1d3e-8a41-4f7e-9d2b-{id}"),
            hours(h) - Duration::minutes(1),
            &[who],
            "Retention",
            tags("Marketing", None),
        );
        posted.push(
            post(
                &app,
                &mail.record(
                    "Delivery",
                    "delivery",
                    delivery(hours(h), &[who], "250 OK", "203.0.113.3", 9),
                ),
                1,
            )
            .await,
        );
    }
    // The archive rows, aged: r1's two days, r3's 25 hours (both go), r2's 23 hours (stays).
    for (index, age) in [
        (0, Duration::days(2)),
        (2, Duration::hours(25)),
        (1, Duration::hours(23)),
    ] {
        app.execute(&format!(
            "UPDATE sns_messages SET received_at = '{}' WHERE sns_message_id = '{}'",
            us(Utc::now() - age),
            posted[index].sns
        ));
    }

    let mut state = (0, 0);
    for _ in 0..150 {
        state = (app.count("email_events"), app.count("sns_messages"));
        if state == (2, 2) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(state, (2, 2), "(events, messages) left after the purge");
    // Two more runs change nothing.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_eq!(
        (app.count("email_events"), app.count("sns_messages")),
        (2, 2)
    );

    assert_eq!(
        all_labels(&app, &read, &[]).await,
        ["delivered fresh r4", "delivered fresh r3"]
    );
    let kept: BTreeSet<String> = app
        .messages()
        .into_iter()
        .map(|m| m.sns_message_id)
        .collect();
    assert_eq!(
        kept,
        BTreeSet::from([posted[1].sns.clone(), posted[3].sns.clone()]),
        "the archive rows left"
    );
    assert!(app.messages().iter().all(|m| m.raw_body.is_some()));
    // r3's event outlives its message; r2's message outlives its event.
    let (events, messages) =
        timeline(&app, &read, "0100019a3f2e71c4-5b0c1d3e-8a41-4f7e-9d2b-r3").await;
    assert_eq!((events.len(), messages.len()), (1, 0));
    let (events, messages) =
        timeline(&app, &read, "0100019a3f2e71c4-5b0c1d3e-8a41-4f7e-9d2b-r2").await;
    assert_eq!((events.len(), messages.len()), (0, 1));
    let (status, body) = call(
        &app,
        Method::GET,
        "/api/v1/messages/0100019a3f2e71c4-5b0c1d3e-8a41-4f7e-9d2b-r1",
        Some(&read),
    )
    .await;
    assert_error(status, &body, 404, "not_found", "r1, all gone");

    // The suppression entry of the old bounce stays.
    let (status, entry) = call(
        &app,
        Method::GET,
        "/api/v1/suppressions/old%40example.com",
        Some(&read),
    )
    .await;
    assert_eq!(
        status, 200,
        "retention removed a suppression entry: {entry}"
    );
    assert_eq!(entry["reason"], "hard_bounce");

    let metrics = app.metrics().await;
    assert_eq!(
        sample(
            &metrics,
            r#"ses_webhook_retention_deleted_total{kind="events"}"#
        ),
        2.0,
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            r#"ses_webhook_retention_deleted_total{kind="messages"}"#
        ),
        2.0,
        "{metrics}"
    );
}

// ---------------------------------------------------------------------------------------------
// 10. Metrics.

async fn erasures_are_counted_in_the_metrics_without_the_address(backend: Backend) {
    let app = spawn_on(backend, |_| {}).await;
    let read = app.token("reader", Scope::Read).await;
    let write = app.token("crm", Scope::Write).await;
    seed(&app).await;

    erase(&app, &write, "john@example.com", "").await;
    let again = erase(&app, &write, "john@example.com", "").await;
    assert_eq!(again["erasedAt"], Value::Null);
    let (status, _) = call(
        &app,
        Method::DELETE,
        "/api/v1/recipients/john%40example.com",
        Some(&read),
    )
    .await;
    assert_eq!(status, 403);
    all(&app, &read, &[]).await;
    let text = app.metrics().await;

    assert_eq!(sample(&text, "ses_webhook_erasures_total"), 1.0, "{text}");
    assert_eq!(
        sample(&text, "ses_webhook_erased_events_total"),
        4.0,
        "{text}"
    );
    let route = |status: u16| {
        format!(
            r#"ses_webhook_api_requests_total{{route="/api/v1/recipients/{{address}}",status="{status}"}}"#
        )
    };
    assert_eq!(sample(&text, &route(200)), 2.0, "{text}");
    assert_eq!(sample(&text, &route(403)), 1.0, "{text}");
    assert_eq!(
        sample(
            &text,
            r#"ses_webhook_api_requests_total{route="/api/v1/events",status="200"}"#
        ),
        1.0,
        "{text}"
    );
    for personal in ["john", "%40", "example.com", "recipients/j"] {
        let labelled: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#') && l.to_lowercase().contains(personal))
            .collect();
        assert!(
            labelled.is_empty(),
            "{personal:?} in a metrics line: {labelled:?}"
        );
    }
}
