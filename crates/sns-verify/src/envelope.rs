//! The SNS envelope: strict parsing of the HTTP(S) delivery body and the
//! string-to-sign exactly as Amazon SNS builds it.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::de::{self, Deserializer as _, IgnoredAny, MapAccess, Visitor};

use crate::error::VerifyError;

/// The `Type` of an SNS envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// A message published to the topic (for SES: one event record in `Message`).
    Notification,
    /// Sent once when the endpoint is subscribed; carries `SubscribeURL` and `Token`.
    SubscriptionConfirmation,
    /// Sent when the endpoint is unsubscribed; carries `SubscribeURL` and `Token`.
    UnsubscribeConfirmation,
}

impl MessageType {
    /// The wire value of `Type`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Notification => "Notification",
            Self::SubscriptionConfirmation => "SubscriptionConfirmation",
            Self::UnsubscribeConfirmation => "UnsubscribeConfirmation",
        }
    }

    fn from_wire(s: &str) -> Option<Self> {
        match s {
            "Notification" => Some(Self::Notification),
            "SubscriptionConfirmation" => Some(Self::SubscriptionConfirmation),
            "UnsubscribeConfirmation" => Some(Self::UnsubscribeConfirmation),
            _ => None,
        }
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The signature scheme named by `SignatureVersion`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignatureVersion {
    /// `"1"`: RSASSA-PKCS1-v1_5 with SHA-1.
    V1,
    /// `"2"`: RSASSA-PKCS1-v1_5 with SHA-256.
    V2,
}

impl SignatureVersion {
    /// Parses the wire value. There is no default and no fallback.
    ///
    /// # Errors
    /// [`VerifyError::UnsupportedVersion`] for anything but `"1"` or `"2"`.
    pub fn parse(s: &str) -> Result<Self, VerifyError> {
        match s {
            "1" => Ok(Self::V1),
            "2" => Ok(Self::V2),
            other => Err(VerifyError::UnsupportedVersion(other.to_owned())),
        }
    }

    /// The wire value (`"1"` or `"2"`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V1 => "1",
            Self::V2 => "2",
        }
    }

    /// The version number (1 or 2).
    #[must_use]
    pub fn number(self) -> u8 {
        match self {
            Self::V1 => 1,
            Self::V2 => 2,
        }
    }
}

impl std::str::FromStr for SignatureVersion {
    type Err = VerifyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for SignatureVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One SNS message as delivered over HTTP(S), with every value exactly as received.
///
/// Only the top-level keys of the body are read; nothing inside `Message` or
/// `MessageAttributes` can influence these fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// `Type`.
    pub message_type: MessageType,
    /// `MessageId` (stable across SNS retries).
    pub message_id: String,
    /// `TopicArn`.
    pub topic_arn: String,
    /// `Subject`; `None` when absent or `null`.
    pub subject: Option<String>,
    /// `Message`: for SES notifications a JSON document in a string.
    pub message: String,
    /// `Timestamp`, exactly as received (it is signed byte for byte).
    pub timestamp: String,
    /// `SignatureVersion`, as received; see [`Envelope::signature_version`].
    pub signature_version: String,
    /// `Signature` (base64), as received.
    pub signature: String,
    /// `SigningCertURL` (or the Lambda spelling `SigningCertUrl`).
    pub signing_cert_url: String,
    /// `UnsubscribeURL` (or `UnsubscribeUrl`); not signed.
    pub unsubscribe_url: Option<String>,
    /// `SubscribeURL`; present (and signed) on both confirmation types.
    pub subscribe_url: Option<String>,
    /// `Token`; present (and signed) on both confirmation types.
    pub token: Option<String>,
}

impl Envelope {
    /// Parses the raw request body, whatever its `Content-Type`.
    ///
    /// # Errors
    /// [`VerifyError::Malformed`] when the body is not UTF-8, not a single JSON
    /// object, has a duplicate key, a non-string value where a string is
    /// required, a missing required key or an unknown `Type`;
    /// [`VerifyError::RawMessageDelivery`] when it is a bare SES record (raw
    /// message delivery).
    pub fn parse(bytes: &[u8]) -> Result<Self, VerifyError> {
        Self::parse_str(utf8(bytes)?)
    }

    /// [`Envelope::parse`] for a body already known to be UTF-8 (see [`body_text`]).
    ///
    /// # Errors
    /// As [`Envelope::parse`], but for the UTF-8 check.
    pub fn parse_str(text: &str) -> Result<Self, VerifyError> {
        if text.bytes().all(|b| b.is_ascii_whitespace()) {
            return Err(malformed("the body is empty"));
        }
        let mut de = serde_json::Deserializer::from_str(text);
        let raw = de
            .deserialize_map(RawVisitor)
            .map_err(|e| malformed(format!("invalid JSON envelope: {e}")))?;
        de.end()
            .map_err(|e| malformed(format!("invalid JSON envelope: {e}")))?;
        raw.into_envelope()
    }

    /// The exact string SNS signed: `Key\nValue\n` for each signed key, in AWS's order.
    ///
    /// `Notification`: Message, MessageId, Subject (only if present and not
    /// null), Timestamp, TopicArn, Type. Both confirmation types: Message,
    /// MessageId, SubscribeURL, Timestamp, Token, TopicArn, Type.
    #[must_use]
    pub fn string_to_sign(&self) -> String {
        let mut pairs: Vec<(&str, &str)> = Vec::with_capacity(7);
        pairs.push(("Message", &self.message));
        pairs.push(("MessageId", &self.message_id));
        match self.message_type {
            MessageType::Notification => {
                if let Some(subject) = &self.subject {
                    pairs.push(("Subject", subject));
                }
                pairs.push(("Timestamp", &self.timestamp));
            }
            MessageType::SubscriptionConfirmation | MessageType::UnsubscribeConfirmation => {
                pairs.push(("SubscribeURL", self.subscribe_url.as_deref().unwrap_or("")));
                pairs.push(("Timestamp", &self.timestamp));
                pairs.push(("Token", self.token.as_deref().unwrap_or("")));
            }
        }
        pairs.push(("TopicArn", &self.topic_arn));
        pairs.push(("Type", self.message_type.as_str()));

        let len = pairs.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
        let mut out = String::with_capacity(len);
        for (key, value) in pairs {
            out.push_str(key);
            out.push('\n');
            out.push_str(value);
            out.push('\n');
        }
        out
    }

    /// `Timestamp` parsed as RFC 3339 (the raw string stays untouched for signing).
    ///
    /// # Errors
    /// [`VerifyError::Malformed`] when `Timestamp` is not RFC 3339.
    pub fn parsed_timestamp(&self) -> Result<DateTime<Utc>, VerifyError> {
        DateTime::parse_from_rfc3339(&self.timestamp)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| {
                malformed(format!(
                    "Timestamp {:?} is not RFC 3339: {e}",
                    self.timestamp
                ))
            })
    }

    /// `SignatureVersion` as an enum.
    ///
    /// # Errors
    /// [`VerifyError::UnsupportedVersion`] for anything but `"1"` or `"2"`.
    pub fn signature_version(&self) -> Result<SignatureVersion, VerifyError> {
        SignatureVersion::parse(&self.signature_version)
    }
}

/// The request body as text, checked as UTF-8 once and without a copy, for
/// [`Envelope::parse_str`] and [`crate::Verifier::verify_str`] (and for keeping it, as received).
///
/// # Errors
/// [`VerifyError::Malformed`] naming the offset of the first invalid byte.
pub fn body_text(body: Vec<u8>) -> Result<String, VerifyError> {
    String::from_utf8(body).map_err(|e| invalid_utf8(&e.utf8_error()))
}

pub(crate) fn utf8(bytes: &[u8]) -> Result<&str, VerifyError> {
    std::str::from_utf8(bytes).map_err(|e| invalid_utf8(&e))
}

fn invalid_utf8(error: &std::str::Utf8Error) -> VerifyError {
    malformed(format!(
        "the body is not valid UTF-8 (invalid byte at offset {})",
        error.valid_up_to()
    ))
}

fn malformed(msg: impl Into<String>) -> VerifyError {
    VerifyError::Malformed(msg.into())
}

/// Top-level keys as found; `Some(None)` means present but `null`.
#[derive(Default)]
struct RawEnvelope {
    message_type: Option<Option<String>>,
    message_id: Option<Option<String>>,
    topic_arn: Option<Option<String>>,
    subject: Option<Option<String>>,
    message: Option<Option<String>>,
    timestamp: Option<Option<String>>,
    signature_version: Option<Option<String>>,
    signature: Option<Option<String>>,
    signing_cert_url: Option<Option<String>>,
    unsubscribe_url: Option<Option<String>>,
    subscribe_url: Option<Option<String>>,
    token: Option<Option<String>>,
    /// A key of a bare SES record (`notificationType`, `eventType`, `mail`) was seen.
    looks_like_ses_record: bool,
}

/// Which slot of [`RawEnvelope`] a top-level key fills.
fn slot<'a>(raw: &'a mut RawEnvelope, key: &str) -> Option<&'a mut Option<Option<String>>> {
    Some(match key {
        "Type" => &mut raw.message_type,
        "MessageId" => &mut raw.message_id,
        "TopicArn" => &mut raw.topic_arn,
        "Subject" => &mut raw.subject,
        "Message" => &mut raw.message,
        "Timestamp" => &mut raw.timestamp,
        "SignatureVersion" => &mut raw.signature_version,
        "Signature" => &mut raw.signature,
        "SigningCertURL" | "SigningCertUrl" => &mut raw.signing_cert_url,
        "UnsubscribeURL" | "UnsubscribeUrl" => &mut raw.unsubscribe_url,
        "SubscribeURL" => &mut raw.subscribe_url,
        "Token" => &mut raw.token,
        _ => return None,
    })
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = RawEnvelope;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an SNS envelope (a JSON object)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawEnvelope, A::Error> {
        let mut raw = RawEnvelope::default();
        while let Some(key) = map.next_key::<String>()? {
            if let Some(slot) = slot(&mut raw, &key) {
                if slot.is_some() {
                    return Err(de::Error::custom(format!(
                        "duplicate key `{key}` (or its alternative spelling)"
                    )));
                }
                let value = map
                    .next_value::<Option<String>>()
                    .map_err(|e| de::Error::custom(format!("`{key}` must be a string: {e}")))?;
                *slot = Some(value);
            } else {
                if matches!(key.as_str(), "notificationType" | "eventType" | "mail") {
                    raw.looks_like_ses_record = true;
                }
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(raw)
    }
}

impl RawEnvelope {
    fn into_envelope(self) -> Result<Envelope, VerifyError> {
        if self.message_type.is_none() && self.signature.is_none() && self.looks_like_ses_record {
            return Err(VerifyError::RawMessageDelivery);
        }
        let type_str = required(self.message_type, "Type")?;
        let message_type = MessageType::from_wire(&type_str)
            .ok_or_else(|| malformed(format!("unknown Type {type_str:?}")))?;
        let (subscribe_url, token) = match message_type {
            MessageType::Notification => (flatten(self.subscribe_url), flatten(self.token)),
            MessageType::SubscriptionConfirmation | MessageType::UnsubscribeConfirmation => (
                Some(required(self.subscribe_url, "SubscribeURL")?),
                Some(required(self.token, "Token")?),
            ),
        };
        Ok(Envelope {
            message_type,
            message_id: required(self.message_id, "MessageId")?,
            topic_arn: required(self.topic_arn, "TopicArn")?,
            subject: flatten(self.subject),
            message: required(self.message, "Message")?,
            timestamp: required(self.timestamp, "Timestamp")?,
            signature_version: required(self.signature_version, "SignatureVersion")?,
            signature: required(self.signature, "Signature")?,
            signing_cert_url: required(self.signing_cert_url, "SigningCertURL")?,
            unsubscribe_url: flatten(self.unsubscribe_url),
            subscribe_url,
            token,
        })
    }
}

fn required(value: Option<Option<String>>, key: &str) -> Result<String, VerifyError> {
    match value {
        Some(Some(v)) => Ok(v),
        Some(None) => Err(malformed(format!("`{key}` is null"))),
        None => Err(malformed(format!("missing key `{key}`"))),
    }
}

fn flatten(value: Option<Option<String>>) -> Option<String> {
    value.flatten()
}

#[cfg(test)]
#[cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn notification_json() -> Value {
        json!({
            "Type": "Notification",
            "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
            "TopicArn": "arn:aws:sns:us-west-2:123456789012:MyTopic",
            "Subject": "My First Message",
            "Message": "Hello world!",
            "Timestamp": "2012-05-02T00:54:06.000Z",
            "SignatureVersion": "1",
            "Signature": "EXAMPLEw6JRN...",
            "SigningCertURL": "https://sns.us-west-2.amazonaws.com/SimpleNotificationService-f3ecfb7224c7233fe7bb5f59f96de52f.pem",
            "UnsubscribeURL": "https://sns.us-west-2.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=arn:aws:sns:us-west-2:123456789012:MyTopic:c9135db0-26c4-47ec-8998-413945fb5a96"
        })
    }

    fn confirmation_json(kind: &str) -> Value {
        json!({
            "Type": kind,
            "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
            "Token": "2336412f37fb687f5d51e6e241d09c805a5a57b30d712f794cc5f6a988666d92768dd60a747ba6f3beb71854e285d6ad02428b09ceece29417f1f02d609c582afbacc99c583a916b9981dd2728f4ae6fdb82efd087cc3b7849e05798d2d2785c03b0879594eeac82c01f235d0e717736",
            "TopicArn": "arn:aws:sns:us-west-2:123456789012:MyTopic",
            "Message": "You have chosen to subscribe to the topic arn:aws:sns:us-west-2:123456789012:MyTopic.\nTo confirm the subscription, visit the SubscribeURL included in this message.",
            "SubscribeURL": "https://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription&TopicArn=arn:aws:sns:us-west-2:123456789012:MyTopic&Token=2336412f37",
            "Timestamp": "2012-04-26T20:45:04.751Z",
            "SignatureVersion": "1",
            "Signature": "EXAMPLEpH+DcEwjAPg8O9mY8dReBSwksfg2S7WKQcikcNKWLQjwu6A4VbeS0QHVCkhRS7fUQvi2egU3N858fiTDN6bkkOxYDVrY0Ad8L10Hs3zH81mtnPk5uvvolIC1CXGu43obcgFxeL3khZl8IKvO61GWB6jI9b5+gLPoBc1Q=",
            "SigningCertURL": "https://sns.us-west-2.amazonaws.com/SimpleNotificationService-f3ecfb7224c7233fe7bb5f59f96de52f.pem"
        })
    }

    fn parse_value(v: &Value) -> Result<Envelope, VerifyError> {
        Envelope::parse(v.to_string().as_bytes())
    }

    fn malformed_message(bytes: &[u8]) -> String {
        match Envelope::parse(bytes) {
            Err(VerifyError::Malformed(m)) => m,
            other => panic!("expected Malformed for {bytes:?}, got {other:?}"),
        }
    }

    #[test]
    fn parses_the_aws_example_notification() {
        let env = parse_value(&notification_json()).unwrap();
        assert_eq!(env.message_type, MessageType::Notification);
        assert_eq!(env.message_id, "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324");
        assert_eq!(env.subject.as_deref(), Some("My First Message"));
        assert_eq!(env.timestamp, "2012-05-02T00:54:06.000Z");
        assert!(env.unsubscribe_url.is_some());
        assert_eq!(env.subscribe_url, None);
        assert_eq!(env.signature_version().unwrap(), SignatureVersion::V1);
    }

    #[test]
    fn string_to_sign_of_a_notification_with_subject_is_exact() {
        let env = parse_value(&notification_json()).unwrap();
        assert_eq!(
            env.string_to_sign(),
            "Message\nHello world!\n\
             MessageId\n22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324\n\
             Subject\nMy First Message\n\
             Timestamp\n2012-05-02T00:54:06.000Z\n\
             TopicArn\narn:aws:sns:us-west-2:123456789012:MyTopic\n\
             Type\nNotification\n"
        );
    }

    #[test]
    fn string_to_sign_omits_absent_and_null_subject_but_keeps_empty_subject() {
        let mut v = notification_json();
        v.as_object_mut().unwrap().remove("Subject");
        let expected = "Message\nHello world!\n\
             MessageId\n22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324\n\
             Timestamp\n2012-05-02T00:54:06.000Z\n\
             TopicArn\narn:aws:sns:us-west-2:123456789012:MyTopic\n\
             Type\nNotification\n";
        assert_eq!(parse_value(&v).unwrap().string_to_sign(), expected);

        v["Subject"] = Value::Null;
        let env = parse_value(&v).unwrap();
        assert_eq!(env.subject, None);
        assert_eq!(env.string_to_sign(), expected);

        v["Subject"] = json!("");
        assert!(
            parse_value(&v)
                .unwrap()
                .string_to_sign()
                .contains("MessageId\n22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324\nSubject\n\nTimestamp")
        );
    }

    #[test]
    fn string_to_sign_of_both_confirmation_types_includes_subscribe_url_and_token() {
        for kind in ["SubscriptionConfirmation", "UnsubscribeConfirmation"] {
            let v = confirmation_json(kind);
            let env = parse_value(&v).unwrap();
            let expected = format!(
                "Message\n{}\nMessageId\n{}\nSubscribeURL\n{}\nTimestamp\n{}\nToken\n{}\nTopicArn\n{}\nType\n{}\n",
                v["Message"].as_str().unwrap(),
                v["MessageId"].as_str().unwrap(),
                v["SubscribeURL"].as_str().unwrap(),
                v["Timestamp"].as_str().unwrap(),
                v["Token"].as_str().unwrap(),
                v["TopicArn"].as_str().unwrap(),
                kind
            );
            assert_eq!(env.string_to_sign(), expected, "{kind}");
        }
    }

    #[test]
    fn a_notification_ignores_subscribe_url_and_token_in_the_string_to_sign() {
        let mut v = notification_json();
        v["Token"] = json!("abc");
        v["SubscribeURL"] = json!("https://sns.us-west-2.amazonaws.com/");
        let env = parse_value(&v).unwrap();
        assert!(!env.string_to_sign().contains("Token"));
        assert!(!env.string_to_sign().contains("SubscribeURL"));
    }

    #[test]
    fn values_are_decoded_json_strings_including_surrogate_pairs() {
        let body = notification_json()
            .to_string()
            .replace("Hello world!", r#"caf\u00e9 \ud83d\ude00 \"q\" \n\/"#);
        let env = Envelope::parse(body.as_bytes()).unwrap();
        assert_eq!(env.message, "café 😀 \"q\" \n/");
        assert!(
            env.string_to_sign()
                .starts_with("Message\ncafé 😀 \"q\" \n/\nMessageId\n")
        );
    }

    #[test]
    fn timestamp_is_kept_exactly_and_parsed_separately() {
        let env = parse_value(&notification_json()).unwrap();
        assert_eq!(env.timestamp, "2012-05-02T00:54:06.000Z");
        let t = env.parsed_timestamp().unwrap();
        assert_eq!(t.to_rfc3339(), "2012-05-02T00:54:06+00:00");
        assert!(env.string_to_sign().contains("2012-05-02T00:54:06.000Z"));

        let mut bad = env.clone();
        bad.timestamp = "2012-05-02 00:54:06".into();
        assert!(matches!(
            bad.parsed_timestamp(),
            Err(VerifyError::Malformed(_))
        ));
    }

    #[test]
    fn lambda_key_spellings_and_null_subject_are_accepted() {
        let mut v = notification_json();
        let obj = v.as_object_mut().unwrap();
        let cert = obj.remove("SigningCertURL").unwrap();
        let unsub = obj.remove("UnsubscribeURL").unwrap();
        obj.insert("SigningCertUrl".into(), cert.clone());
        obj.insert("UnsubscribeUrl".into(), unsub.clone());
        obj.insert("Subject".into(), Value::Null);
        obj.insert(
            "MessageAttributes".into(),
            json!({"Type": {"Type": "String", "Value": "x"}}),
        );
        let env = parse_value(&v).unwrap();
        assert_eq!(env.signing_cert_url, cert.as_str().unwrap());
        assert_eq!(env.unsubscribe_url.as_deref(), unsub.as_str());
        assert_eq!(env.subject, None);
    }

    #[test]
    fn keys_inside_message_or_message_attributes_are_never_read() {
        let mut v = notification_json();
        v["Message"] = json!(r#"{"Type":"SubscriptionConfirmation","MessageId":"evil"}"#);
        v["MessageAttributes"] = json!({"Type": "SubscriptionConfirmation", "MessageId": "evil"});
        let env = parse_value(&v).unwrap();
        assert_eq!(env.message_type, MessageType::Notification);
        assert_eq!(env.message_id, "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324");
    }

    #[test]
    fn message_type_and_version_round_trip() {
        for t in [
            MessageType::Notification,
            MessageType::SubscriptionConfirmation,
            MessageType::UnsubscribeConfirmation,
        ] {
            assert_eq!(MessageType::from_wire(t.as_str()), Some(t));
        }
        assert_eq!(SignatureVersion::parse("1").unwrap(), SignatureVersion::V1);
        assert_eq!(
            "2".parse::<SignatureVersion>().unwrap(),
            SignatureVersion::V2
        );
        for bad in ["", "0", "3", " 1", "1 ", "01", "v2", "2.0"] {
            assert_eq!(
                SignatureVersion::parse(bad),
                Err(VerifyError::UnsupportedVersion(bad.into())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn malformed_bodies_are_rejected_without_panicking() {
        let good = notification_json().to_string();
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("empty", b"".to_vec()),
            ("whitespace", b" \n\t".to_vec()),
            ("invalid utf-8", b"{\"Type\":\"Notification\xff\"}".to_vec()),
            (
                "latin-1 body",
                good.replace("Hello world!", "caf\u{e9}")
                    .encode_utf16()
                    .flat_map(u16::to_le_bytes)
                    .collect(),
            ),
            ("json array", b"[\"Notification\",\"id\"]".to_vec()),
            ("json string", b"\"Notification\"".to_vec()),
            ("json null", b"null".to_vec()),
            ("json number", b"42".to_vec()),
            ("not json", b"Type=Notification".to_vec()),
            ("truncated", good.as_bytes()[..good.len() - 5].to_vec()),
            ("trailing data", format!("{good}{good}").into_bytes()),
            (
                "lone surrogate",
                good.replace("Hello world!", r"\ud83d").into_bytes(),
            ),
        ];
        for (name, body) in cases {
            let result = Envelope::parse(&body);
            assert!(
                matches!(result, Err(VerifyError::Malformed(_))),
                "{name}: {result:?}"
            );
        }
    }

    #[test]
    fn wrong_types_are_rejected_with_the_key_name() {
        for (key, value) in [
            ("MessageId", json!(5)),
            ("Message", json!({"a": 1})),
            ("Timestamp", json!(1_335_920_046)),
            ("Subject", json!(true)),
            ("Type", json!(["Notification"])),
            ("SignatureVersion", json!(1)),
            ("SigningCertURL", json!(null)),
            ("Signature", json!(null)),
        ] {
            let mut v = notification_json();
            v[key] = value;
            let msg = malformed_message(v.to_string().as_bytes());
            assert!(msg.contains(key), "{key}: {msg}");
        }
    }

    #[test]
    fn duplicate_keys_are_rejected() {
        let good = notification_json().to_string();
        let body = good.replacen('{', r#"{"Type":"SubscriptionConfirmation","#, 1);
        assert!(malformed_message(body.as_bytes()).contains("duplicate key `Type`"));
        let body = good.replacen('{', r#"{"Message":"other","#, 1);
        assert!(malformed_message(body.as_bytes()).contains("duplicate"));
        // Both spellings of the certificate URL count as the same key.
        let body = good.replacen('{', r#"{"SigningCertUrl":"https://evil.example/x.pem","#, 1);
        assert!(malformed_message(body.as_bytes()).contains("duplicate"));
        // Escaped key names are the same key after decoding.
        let body = good.replacen('{', r#"{"T\u0079pe":"Notification","#, 1);
        assert!(malformed_message(body.as_bytes()).contains("duplicate"));
    }

    #[test]
    fn missing_required_keys_are_rejected_by_name() {
        for key in [
            "Type",
            "MessageId",
            "TopicArn",
            "Message",
            "Timestamp",
            "SignatureVersion",
            "Signature",
            "SigningCertURL",
        ] {
            let mut v = notification_json();
            v.as_object_mut().unwrap().remove(key);
            let msg = malformed_message(v.to_string().as_bytes());
            assert!(msg.contains(key), "{key}: {msg}");
        }
        for kind in ["SubscriptionConfirmation", "UnsubscribeConfirmation"] {
            for key in ["SubscribeURL", "Token"] {
                let mut v = confirmation_json(kind);
                v.as_object_mut().unwrap().remove(key);
                let msg = malformed_message(v.to_string().as_bytes());
                assert!(msg.contains(key), "{kind}/{key}: {msg}");
            }
        }
    }

    #[test]
    fn unknown_type_is_rejected() {
        for t in ["notification", "Notification ", "SubscriptionConfirmed", ""] {
            let mut v = notification_json();
            v["Type"] = json!(t);
            let msg = malformed_message(v.to_string().as_bytes());
            assert!(msg.contains("unknown Type"), "{t:?}: {msg}");
        }
    }

    #[test]
    fn raw_message_delivery_bodies_get_an_actionable_message() {
        for body in [
            json!({"notificationType": "Bounce", "bounce": {}, "mail": {"messageId": "x"}}),
            json!({"eventType": "Delivery", "delivery": {}, "mail": {"messageId": "x"}}),
            json!({"eventType": "Open", "open": {}, "mail": {}}),
        ] {
            let error = Envelope::parse(body.to_string().as_bytes()).unwrap_err();
            assert_eq!(error, VerifyError::RawMessageDelivery);
            let msg = error.to_string();
            assert!(msg.contains("raw message delivery"), "{msg}");
            assert!(msg.contains("turn it off"), "{msg}");
        }
        // An unrelated JSON object is just a missing Type.
        let msg = malformed_message(br#"{"hello":"world"}"#);
        assert!(msg.contains("missing key `Type`"), "{msg}");
    }
}
