//! Structured: an SES-shaped record (a known or arbitrary type, under `eventType` or
//! `notificationType`, with `mail` and the type's object built from arbitrary JSON that favours
//! the keys and values SES uses) serialised to text and mapped with `map_message`. Same
//! invariants as `ses_record` (see `checks/domain.rs`).
//!
//! To keep a crash as a regression test, reproduce it with `FUZZ_PRINT_CASE=1`: the `Message`
//! text is printed; save it under `fuzz/regressions/ses_record/`.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

#[path = "../checks/domain.rs"]
#[allow(dead_code)]
mod checks;

const KEYS: [&str; 36] = [
    "eventType",
    "notificationType",
    "mail",
    "messageId",
    "timestamp",
    "destination",
    "source",
    "commonHeaders",
    "subject",
    "tags",
    "bounce",
    "bounceType",
    "bounceSubType",
    "bouncedRecipients",
    "emailAddress",
    "action",
    "status",
    "diagnosticCode",
    "feedbackId",
    "complaint",
    "complainedRecipients",
    "complaintFeedbackType",
    "complaintSubType",
    "delivery",
    "recipients",
    "processingTimeMillis",
    "smtpResponse",
    "reportingMTA",
    "remoteMtaIp",
    "open",
    "click",
    "link",
    "linkTags",
    "ipAddress",
    "userAgent",
    "arrivalDate",
];

const STRINGS: [&str; 30] = [
    "Bounce",
    "Complaint",
    "Delivery",
    "Open",
    "Click",
    "Send",
    "Reject",
    "Rendering Failure",
    "DeliveryDelay",
    "AmazonSnsSubscriptionSucceeded",
    "Permanent",
    "permanent",
    "Transient",
    "Undetermined",
    "2016-01-27T14:05:45.000Z",
    "2018-10-08T14:05:45 +0000",
    "2017-08-09 22:00:19.652 UTC",
    "2009-12-03T04:24:21.000-05:00",
    "+262143-12-31T23:59:59Z",
    "9999-12-31T23:59:59.999999999+23:59",
    "0000-01-01T00:00:00-23:59",
    "a@example.com",
    "John <john@example.com>",
    "\"Some, Service\" <a@b>",
    "<>",
    " ",
    "",
    "\u{0}",
    "0000000000000000-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee-000000",
    "é<ü@例え.jp>",
];

#[derive(Arbitrary, Debug)]
enum Key {
    Known(u8),
    Other(String),
}

#[derive(Arbitrary, Debug)]
enum Json {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Known(u8),
    Text(String),
    Array(Vec<Json>),
    Object(Vec<(Key, Json)>),
}

#[derive(Arbitrary, Debug)]
struct Record {
    /// Index into the SES types of `STRINGS` (mod 10), else `other_type`.
    ses_type: u8,
    other_type: String,
    event_publishing: bool,
    both_type_keys: bool,
    mail: Json,
    message_id: Option<Json>,
    mail_timestamp: Option<Json>,
    body: Json,
    recipients: Option<Vec<Json>>,
    body_timestamp: Option<Json>,
    extras: Vec<(Key, Json)>,
}

const MAX_DEPTH: usize = 8;

fn key(k: &Key) -> String {
    match k {
        Key::Known(i) => KEYS[usize::from(*i) % KEYS.len()].to_owned(),
        Key::Other(s) => s.clone(),
    }
}

fn value(j: &Json, depth: usize) -> Value {
    if depth > MAX_DEPTH {
        return Value::Null;
    }
    match j {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Int(i) => Value::from(*i),
        Json::Float(f) => Value::from(*f),
        Json::Known(i) => Value::String(STRINGS[usize::from(*i) % STRINGS.len()].to_owned()),
        Json::Text(s) => Value::String(s.clone()),
        Json::Array(items) => Value::Array(items.iter().map(|i| value(i, depth + 1)).collect()),
        Json::Object(pairs) => Value::Object(object(pairs, depth + 1)),
    }
}

fn object(pairs: &[(Key, Json)], depth: usize) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| (key(k), value(v, depth)))
        .collect()
}

fn body_key(ses_type: &str) -> &'static str {
    match ses_type {
        "Bounce" => "bounce",
        "Complaint" => "complaint",
        "Delivery" => "delivery",
        "Open" => "open",
        "Click" => "click",
        _ => "send",
    }
}

fn recipients_key(ses_type: &str) -> &'static str {
    match ses_type {
        "Bounce" => "bouncedRecipients",
        "Complaint" => "complainedRecipients",
        _ => "recipients",
    }
}

fuzz_target!(|record: Record| {
    let ses_type = match usize::from(record.ses_type) % 12 {
        i @ 0..10 => STRINGS[i],
        _ => record.other_type.as_str(),
    };
    let mut top = object(&record.extras, 1);
    let type_key = if record.event_publishing {
        "eventType"
    } else {
        "notificationType"
    };
    top.insert(type_key.to_owned(), Value::String(ses_type.to_owned()));
    if record.both_type_keys {
        top.insert(
            "notificationType".to_owned(),
            Value::String("Bounce".to_owned()),
        );
    }

    let mut mail = match value(&record.mail, 1) {
        Value::Object(map) => map,
        other => {
            top.insert("mail".to_owned(), other);
            Map::new()
        }
    };
    if let Some(id) = &record.message_id {
        mail.insert("messageId".to_owned(), value(id, 2));
    }
    if let Some(ts) = &record.mail_timestamp {
        mail.insert("timestamp".to_owned(), value(ts, 2));
    }
    if !mail.is_empty() {
        top.insert("mail".to_owned(), Value::Object(mail));
    }

    let mut body = match value(&record.body, 1) {
        Value::Object(map) => map,
        other => {
            top.insert(body_key(ses_type).to_owned(), other);
            Map::new()
        }
    };
    if let Some(recipients) = &record.recipients {
        let list = recipients.iter().map(|r| value(r, 3)).collect();
        body.insert(recipients_key(ses_type).to_owned(), Value::Array(list));
    }
    if let Some(ts) = &record.body_timestamp {
        body.insert("timestamp".to_owned(), value(ts, 2));
    }
    if !body.is_empty() {
        top.insert(body_key(ses_type).to_owned(), Value::Object(body));
    }

    let message = Value::Object(top).to_string();
    static PRINT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if *PRINT.get_or_init(|| std::env::var_os("FUZZ_PRINT_CASE").is_some()) {
        eprintln!("regression case (Message): {message}");
    }
    checks::check_message(&message);
});
