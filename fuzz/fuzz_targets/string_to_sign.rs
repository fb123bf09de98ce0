//! Structured: an SNS envelope built from arbitrary strings (every key optional, both key
//! spellings, `null`s, unknown keys with arbitrary JSON, keys in any order), serialised with
//! serde_json, parsed, and its string-to-sign compared with an independent construction; a body
//! that lacks a required key must be refused.
//!
//! To keep a crash as a regression test, reproduce it with `FUZZ_PRINT_CASE=1`: the body and
//! the expected string-to-sign are printed as a JSON case, the format of
//! `fuzz/regressions/string_to_sign/*.json`.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

#[path = "../checks/sns_verify.rs"]
#[allow(dead_code)]
mod checks;

#[derive(Arbitrary, Debug)]
enum Field {
    Absent,
    Null,
    Value(String),
}

#[derive(Arbitrary, Debug)]
enum Extra {
    Null,
    Bool(bool),
    Number(f64),
    Text(String),
    List(Vec<String>),
    Object(Vec<(String, String)>),
}

#[derive(Arbitrary, Debug)]
struct Input {
    /// 0 Notification, 1 SubscriptionConfirmation, 2 UnsubscribeConfirmation, else a string.
    kind: u8,
    other_kind: String,
    message: Field,
    message_id: Field,
    topic_arn: Field,
    subject: Field,
    timestamp: Field,
    signature_version: Field,
    signature: Field,
    signing_cert_url: Field,
    lambda_spelling: bool,
    unsubscribe_url: Field,
    subscribe_url: Field,
    token: Field,
    extras: Vec<(String, Extra)>,
    /// Seeds the order of keys in the body.
    order: u64,
}

const KNOWN: [&str; 14] = [
    "Type",
    "MessageId",
    "TopicArn",
    "Subject",
    "Message",
    "Timestamp",
    "SignatureVersion",
    "Signature",
    "SigningCertURL",
    "SigningCertUrl",
    "UnsubscribeURL",
    "UnsubscribeUrl",
    "SubscribeURL",
    "Token",
];

fn field_value(field: &Field) -> Option<Value> {
    match field {
        Field::Absent => None,
        Field::Null => Some(Value::Null),
        Field::Value(s) => Some(Value::String(s.clone())),
    }
}

fn extra_value(extra: &Extra) -> Value {
    match extra {
        Extra::Null => Value::Null,
        Extra::Bool(b) => json!(b),
        Extra::Number(n) => json!(n),
        Extra::Text(s) => json!(s),
        Extra::List(items) => json!(items),
        Extra::Object(pairs) => Value::Object(
            pairs
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect(),
        ),
    }
}

fn text(field: &Field) -> Option<&str> {
    match field {
        Field::Value(s) => Some(s),
        Field::Absent | Field::Null => None,
    }
}

fuzz_target!(|input: Input| {
    let kind = match input.kind % 4 {
        0 => "Notification",
        1 => "SubscriptionConfirmation",
        2 => "UnsubscribeConfirmation",
        _ => input.other_kind.as_str(),
    };
    let cert_key = if input.lambda_spelling {
        "SigningCertUrl"
    } else {
        "SigningCertURL"
    };
    let unsub_key = if input.lambda_spelling {
        "UnsubscribeUrl"
    } else {
        "UnsubscribeURL"
    };
    let mut pairs: Vec<(String, Value)> = vec![("Type".to_owned(), json!(kind))];
    for (key, field) in [
        ("MessageId", &input.message_id),
        ("TopicArn", &input.topic_arn),
        ("Subject", &input.subject),
        ("Message", &input.message),
        ("Timestamp", &input.timestamp),
        ("SignatureVersion", &input.signature_version),
        ("Signature", &input.signature),
        (cert_key, &input.signing_cert_url),
        (unsub_key, &input.unsubscribe_url),
        ("SubscribeURL", &input.subscribe_url),
        ("Token", &input.token),
    ] {
        if let Some(value) = field_value(field) {
            pairs.push((key.to_owned(), value));
        }
    }
    // Unknown keys, never one of ours (that would be a duplicate), nor one that makes the body
    // look like raw message delivery (Type is always present, so it could not anyway).
    let mut seen = std::collections::BTreeSet::new();
    for (key, extra) in &input.extras {
        if KNOWN.contains(&key.as_str()) || !seen.insert(key.clone()) {
            continue;
        }
        pairs.push((key.clone(), extra_value(extra)));
    }
    // Shuffle deterministically.
    let mut state = input.order | 1;
    for i in (1..pairs.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let j = usize::try_from(state % (i as u64 + 1)).unwrap_or(0);
        pairs.swap(i, j);
    }
    let members: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}:{}", Value::String(k.clone()), v))
        .collect();
    let body = format!("{{{}}}", members.join(","));

    let confirmation = kind != "Notification";
    let known_type = matches!(
        kind,
        "Notification" | "SubscriptionConfirmation" | "UnsubscribeConfirmation"
    );
    let required = [
        &input.message_id,
        &input.topic_arn,
        &input.message,
        &input.timestamp,
        &input.signature_version,
        &input.signature,
        &input.signing_cert_url,
    ];
    let complete = known_type
        && required.iter().all(|f| matches!(f, Field::Value(_)))
        && (!confirmation
            || (matches!(input.subscribe_url, Field::Value(_))
                && matches!(input.token, Field::Value(_))));
    let expected = complete.then(|| {
        checks::expected_string_to_sign(&checks::SignedFields {
            message_type: kind,
            message: text(&input.message).unwrap_or_default(),
            message_id: text(&input.message_id).unwrap_or_default(),
            subject: text(&input.subject),
            subscribe_url: text(&input.subscribe_url),
            timestamp: text(&input.timestamp).unwrap_or_default(),
            token: text(&input.token),
            topic_arn: text(&input.topic_arn).unwrap_or_default(),
        })
    });
    run_case(&body, expected.as_deref());
});

/// Runs the check. With `FUZZ_PRINT_CASE` set (when reproducing a crash:
/// `FUZZ_PRINT_CASE=1 cargo fuzz run string_to_sign <artifact>`), first prints the case as a
/// regression file (libFuzzer aborts on a panic, so it cannot be printed afterwards).
fn run_case(body: &str, expected: Option<&str>) {
    static PRINT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if *PRINT.get_or_init(|| std::env::var_os("FUZZ_PRINT_CASE").is_some()) {
        eprintln!(
            "regression case: {}",
            json!({"body": body, "expected": expected})
        );
    }
    checks::check_string_to_sign_case(body, expected);
}
