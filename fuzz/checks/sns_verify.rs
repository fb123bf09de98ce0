//! Invariants of `sns_verify` under hostile input, shared by the fuzz targets in `fuzz/` and the
//! regression tests in `crates/sns-verify/tests/fuzz_regressions.rs` (both include this file with
//! `#[path]`), so every kept input is checked by exactly the rules the fuzzer checked.
//!
//! Every function panics (assert) when an invariant is broken; "never panics" is checked by the
//! caller simply calling the library.

use serde_json::Value;
use sns_verify::{Envelope, MessageType, TrustPolicy, VerifyError};

/// A development endpoint trusted in addition to Amazon by [`check_url_policy_bytes`].
pub const DEV_ENDPOINT: &str = "http://127.0.0.1:4566/dev/";

/// `Envelope::parse` on arbitrary bytes: only `Malformed` (or `RawMessageDelivery`, for a bare
/// SES record) on failure; on success the
/// string-to-sign carries every signed value in AWS's order, and the values agree with a second
/// parse of the same body by `serde_json::Value`.
pub fn check_envelope_bytes(data: &[u8]) {
    let envelope = match Envelope::parse(data) {
        Ok(envelope) => envelope,
        Err(VerifyError::Malformed(message)) => {
            assert!(!message.is_empty(), "empty Malformed message");
            return;
        }
        Err(VerifyError::RawMessageDelivery) => return,
        Err(other) => panic!("Envelope::parse failed with a non-Malformed error: {other:?}"),
    };
    let text = match std::str::from_utf8(data) {
        Ok(text) => text,
        Err(e) => panic!("a body that is not UTF-8 was accepted: {e}"),
    };

    // Never panics, whatever the values.
    let _ = envelope.signature_version();
    let _ = envelope.parsed_timestamp();

    let string_to_sign = envelope.string_to_sign();
    let confirmation = envelope.message_type != MessageType::Notification;
    if confirmation {
        assert!(
            envelope.subscribe_url.is_some() && envelope.token.is_some(),
            "a confirmation without SubscribeURL or Token was accepted: {envelope:?}"
        );
    }
    let expected = expected_string_to_sign(&SignedFields {
        message_type: envelope.message_type.as_str(),
        message: &envelope.message,
        message_id: &envelope.message_id,
        subject: envelope.subject.as_deref(),
        subscribe_url: envelope.subscribe_url.as_deref(),
        timestamp: &envelope.timestamp,
        token: envelope.token.as_deref(),
        topic_arn: &envelope.topic_arn,
    });
    assert_eq!(string_to_sign, expected, "string-to-sign of {envelope:?}");
    for (key, value) in [
        ("Message", Some(envelope.message.as_str())),
        ("MessageId", Some(envelope.message_id.as_str())),
        ("Timestamp", Some(envelope.timestamp.as_str())),
        ("TopicArn", Some(envelope.topic_arn.as_str())),
        ("Type", Some(envelope.message_type.as_str())),
        (
            "Subject",
            envelope.subject.as_deref().filter(|_| !confirmation),
        ),
        (
            "SubscribeURL",
            envelope.subscribe_url.as_deref().filter(|_| confirmation),
        ),
        ("Token", envelope.token.as_deref().filter(|_| confirmation)),
    ] {
        if let Some(value) = value {
            let line = format!("{key}\n{value}\n");
            assert!(
                string_to_sign.contains(&line),
                "string-to-sign lacks {key}: {string_to_sign:?}"
            );
        }
    }

    // A second, permissive parser must read the same values. It may refuse what the strict one
    // skipped (nesting deeper than its recursion limit or numbers out of range inside unknown
    // keys), but if it reads the body, the values must agree.
    let Ok(Value::Object(object)) = serde_json::from_str::<Value>(text) else {
        return;
    };
    let get = |keys: &[&str]| -> Option<Option<String>> {
        let found: Vec<&Value> = keys.iter().filter_map(|k| object.get(*k)).collect();
        assert!(found.len() <= 1, "both spellings of {keys:?} were accepted");
        found.first().map(|value| match value {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            other => panic!("{keys:?} is {other} but the envelope was accepted"),
        })
    };
    let required = |keys: &[&str]| -> String {
        match get(keys) {
            Some(Some(value)) => value,
            other => panic!("required {keys:?} is {other:?} but the envelope was accepted"),
        }
    };
    assert_eq!(required(&["Type"]), envelope.message_type.as_str());
    assert_eq!(required(&["MessageId"]), envelope.message_id);
    assert_eq!(required(&["TopicArn"]), envelope.topic_arn);
    assert_eq!(required(&["Message"]), envelope.message);
    assert_eq!(required(&["Timestamp"]), envelope.timestamp);
    assert_eq!(required(&["SignatureVersion"]), envelope.signature_version);
    assert_eq!(required(&["Signature"]), envelope.signature);
    assert_eq!(
        required(&["SigningCertURL", "SigningCertUrl"]),
        envelope.signing_cert_url
    );
    assert_eq!(get(&["Subject"]).flatten(), envelope.subject);
    assert_eq!(
        get(&["UnsubscribeURL", "UnsubscribeUrl"]).flatten(),
        envelope.unsubscribe_url
    );
    assert_eq!(get(&["SubscribeURL"]).flatten(), envelope.subscribe_url);
    assert_eq!(get(&["Token"]).flatten(), envelope.token);
}

/// The values SNS signs, for [`expected_string_to_sign`].
#[derive(Debug, Clone, Copy)]
pub struct SignedFields<'a> {
    pub message_type: &'a str,
    pub message: &'a str,
    pub message_id: &'a str,
    pub subject: Option<&'a str>,
    pub subscribe_url: Option<&'a str>,
    pub timestamp: &'a str,
    pub token: Option<&'a str>,
    pub topic_arn: &'a str,
}

/// The string-to-sign, built independently of `Envelope::string_to_sign` from AWS's documented
/// rules (keys in order, `Key\nValue\n`, Subject only when present and not null).
#[must_use]
pub fn expected_string_to_sign(f: &SignedFields<'_>) -> String {
    let mut out = format!("Message\n{}\nMessageId\n{}\n", f.message, f.message_id);
    if f.message_type == "Notification" {
        if let Some(subject) = f.subject {
            out += &format!("Subject\n{subject}\n");
        }
        out += &format!("Timestamp\n{}\n", f.timestamp);
    } else {
        out += &format!(
            "SubscribeURL\n{}\nTimestamp\n{}\nToken\n{}\n",
            f.subscribe_url.unwrap_or_default(),
            f.timestamp,
            f.token.unwrap_or_default()
        );
    }
    out += &format!("TopicArn\n{}\nType\n{}\n", f.topic_arn, f.message_type);
    out
}

/// One string-to-sign case: `body` must be refused as `Malformed` when `expected` is `None`,
/// else parse and give exactly `expected`.
pub fn check_string_to_sign_case(body: &str, expected: Option<&str>) {
    let parsed = Envelope::parse(body.as_bytes());
    match (parsed, expected) {
        (Ok(envelope), Some(expected)) => {
            assert_eq!(
                envelope.string_to_sign(),
                expected,
                "string-to-sign of {body}"
            );
        }
        (Err(VerifyError::Malformed(_)), None) => {}
        (Ok(envelope), None) => panic!("{body} should be refused, parsed as {envelope:?}"),
        (Err(e), _) => panic!("{body} should parse (expected {expected:?}), got {e:?}"),
    }
    // Whatever the case, the generic invariants hold too.
    check_envelope_bytes(body.as_bytes());
}

/// `TrustPolicy::check_cert_url` / `check_subscribe_url` on arbitrary bytes (read as UTF-8,
/// lossily): never panics, and anything accepted satisfies the policy's invariants, checked on
/// the raw string without the `url` crate. The whole text is tried as a certificate URL; then
/// its first three lines are tried as (URL, TopicArn, Token), for both URL kinds, against the
/// Amazon policy and against one with a development endpoint.
pub fn check_url_policy_bytes(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let amazon = TrustPolicy::amazon();
    let dev = match DEV_ENDPOINT.parse() {
        Ok(base) => TrustPolicy::amazon().with_dev_endpoints(vec![base]),
        Err(e) => panic!("{DEV_ENDPOINT}: {e}"),
    };
    let mut lines = text.splitn(3, '\n');
    let raw = lines.next().unwrap_or_default();
    let topic = lines.next().unwrap_or_default();
    let token = lines.next().unwrap_or_default();

    for candidate in [text.as_ref(), raw] {
        if let Ok(url) = amazon.check_cert_url(candidate) {
            assert_amazon_cert_url(candidate, url.as_str());
        }
        if let Ok(url) = dev.check_cert_url(candidate) {
            assert_eq!(url.as_str(), candidate);
            if candidate.starts_with("https://") {
                assert_amazon_cert_url(candidate, url.as_str());
            } else {
                assert_dev_url(candidate);
                assert!(!candidate.contains('?'), "query accepted: {candidate:?}");
                assert!(ends_in_pem(candidate), "not a .pem accepted: {candidate:?}");
            }
        }
    }
    if let Ok(url) = amazon.check_subscribe_url(raw, topic, token) {
        assert_amazon_subscribe_url(raw, url.as_str());
        assert_query(raw, url.query_pairs(), topic, token);
    }
    if let Ok(url) = dev.check_subscribe_url(raw, topic, token) {
        assert_eq!(url.as_str(), raw);
        if raw.starts_with("https://") {
            assert_amazon_subscribe_url(raw, url.as_str());
        } else {
            assert_dev_url(raw);
        }
        assert_query(raw, url.query_pairs(), topic, token);
    }
}

/// `^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$`, written out.
#[must_use]
pub fn is_sns_host(host: &str) -> bool {
    let Some(rest) = host.strip_prefix("sns.") else {
        return false;
    };
    let middle = rest
        .strip_suffix(".amazonaws.com.cn")
        .or_else(|| rest.strip_suffix(".amazonaws.com"));
    middle.is_some_and(|m| {
        !m.is_empty()
            && m.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    })
}

/// Splits `https://authority/rest` of an accepted Amazon URL, checking scheme and authority.
fn amazon_authority_and_rest(raw: &str) -> &str {
    let Some(after_scheme) = raw.strip_prefix("https://") else {
        panic!("accepted without the https scheme: {raw:?}");
    };
    let Some(slash) = after_scheme.find('/') else {
        panic!("accepted without a path: {raw:?}");
    };
    let (authority, rest) = after_scheme.split_at(slash);
    assert!(!authority.contains('@'), "userinfo accepted: {raw:?}");
    assert!(!authority.contains(':'), "port accepted: {raw:?}");
    assert!(
        is_sns_host(authority),
        "host {authority:?} accepted: {raw:?}"
    );
    assert!(!raw.contains('#'), "fragment accepted: {raw:?}");
    assert!(
        raw.bytes().all(|b| b.is_ascii_graphic()),
        "whitespace, control or non-ASCII accepted: {raw:?}"
    );
    rest
}

fn assert_amazon_cert_url(raw: &str, parsed: &str) {
    assert_eq!(parsed, raw, "the URL to fetch differs from the one checked");
    let path = amazon_authority_and_rest(raw);
    assert!(!raw.contains('?'), "query accepted: {raw:?}");
    assert!(ends_in_pem(path), "path {path:?} accepted: {raw:?}");
    assert_no_dot_segments(path, raw);
}

fn assert_amazon_subscribe_url(raw: &str, parsed: &str) {
    assert_eq!(parsed, raw, "the URL to visit differs from the one checked");
    let rest = amazon_authority_and_rest(raw);
    assert!(
        rest.starts_with("/?"),
        "path other than / accepted: {raw:?}"
    );
}

/// Under [`DEV_ENDPOINT`], with no userinfo, fragment or dot segment.
fn assert_dev_url(raw: &str) {
    let Some(path) = raw.strip_prefix("http://127.0.0.1:4566/") else {
        panic!("accepted outside the dev endpoint: {raw:?}");
    };
    assert!(
        path.starts_with("dev/"),
        "accepted outside the dev base path: {raw:?}"
    );
    assert!(!raw.contains('#'), "fragment accepted: {raw:?}");
    assert!(!raw.contains('@'), "userinfo accepted: {raw:?}");
    assert_no_dot_segments(path, raw);
}

fn ends_in_pem(path: &str) -> bool {
    path.rsplit('/')
        .next()
        .is_some_and(|file| file.len() > ".pem".len() && file.ends_with(".pem"))
}

fn assert_no_dot_segments(path: &str, raw: &str) {
    let path = path.split(['?', '#']).next().unwrap_or_default();
    for segment in path.split('/') {
        let lower = segment.to_ascii_lowercase().replace("%2e", ".");
        assert!(
            lower != "." && lower != "..",
            "dot segment accepted: {raw:?}"
        );
    }
}

fn assert_query<'a>(
    raw: &str,
    pairs: impl Iterator<Item = (std::borrow::Cow<'a, str>, std::borrow::Cow<'a, str>)>,
    topic: &str,
    token: &str,
) {
    let mut pairs: Vec<(String, String)> = pairs
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    pairs.sort();
    let mut expected = vec![
        ("Action".to_owned(), "ConfirmSubscription".to_owned()),
        ("Token".to_owned(), token.to_owned()),
        ("TopicArn".to_owned(), topic.to_owned()),
    ];
    expected.sort();
    assert_eq!(
        pairs, expected,
        "query of an accepted subscribe URL {raw:?}"
    );
}
