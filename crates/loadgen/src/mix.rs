//! The message mix: which SES records to send (deterministic for a seed), what they look like,
//! and signing them as SNS does.

use std::io::{BufRead, Write};
use std::num::NonZeroUsize;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sns_verify::SignatureVersion;
use sns_verify::testing::TestSigner;

use crate::rng::{SplitMix64, mix};

/// The SNS topic every generated message comes from.
pub const TOPIC_ARN: &str = "arn:aws:sns:us-east-1:123456789012:ses-webhook-loadgen";
/// Most recipients one message can have.
pub const MAX_RECIPIENTS: u8 = 5;
/// First line of a corpus file.
pub const CORPUS_FORMAT: &str = "ses-webhook-loadgen corpus v1";

/// The SES record types the mix draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A `Send` record (event publishing): no platform event, counted as sent recipients.
    Send,
    Delivery,
    BouncePermanent,
    BounceTransient,
    Complaint,
    Open,
    Click,
}

impl Kind {
    /// Every kind, in the order of [`KIND_WEIGHTS`].
    pub const ALL: [Self; 7] = [
        Self::Send,
        Self::Delivery,
        Self::Open,
        Self::Click,
        Self::BouncePermanent,
        Self::BounceTransient,
        Self::Complaint,
    ];

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Send => "send",
            Self::Delivery => "delivery",
            Self::BouncePermanent => "bounce_permanent",
            Self::BounceTransient => "bounce_transient",
            Self::Complaint => "complaint",
            Self::Open => "open",
            Self::Click => "click",
        }
    }

    /// Sends, opens and clicks exist only in configuration-set event publishing.
    #[must_use]
    pub fn publishing_only(self) -> bool {
        matches!(self, Self::Send | Self::Open | Self::Click)
    }
}

/// Relative frequencies of [`Kind::ALL`]: a `Send` for about every delivery, deliveries, then
/// engagement, then bounces and complaints (a busy sender's typical shape, with enough of the
/// rare kinds to matter).
pub const KIND_WEIGHTS: [u32; 7] = [30, 35, 25, 15, 8, 7, 10];
/// Relative frequencies of 1..=5 recipients.
pub const RECIPIENT_WEIGHTS: [u32; 5] = [50, 20, 15, 10, 5];

/// The two SES formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// Identity notifications: `notificationType`.
    Notification,
    /// Configuration-set event publishing: `eventType`.
    EventPublishing,
}

/// What one generated message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    /// Position in the corpus; identifiers derive from it.
    pub seq: u64,
    pub kind: Kind,
    pub format: Format,
    /// Addresses in `mail.destination` (and in the record's recipient list).
    pub recipients: u8,
    pub version: SignatureVersion,
}

impl Spec {
    /// Platform events the server must store for this message: one per recipient for
    /// deliveries, bounces and complaints, one per record for opens and clicks, none for sends.
    #[must_use]
    pub fn expected_events(&self) -> u32 {
        match self.kind {
            Kind::Send => 0,
            Kind::Delivery | Kind::BouncePermanent | Kind::BounceTransient | Kind::Complaint => {
                u32::from(self.recipients)
            }
            Kind::Open | Kind::Click => 1,
        }
    }
}

/// `count` message specs for `seed`, with 1 to `max_recipients` (clamped to 1..=5) recipients.
#[must_use]
pub fn specs(seed: u64, count: usize, max_recipients: u8) -> Vec<Spec> {
    let max_recipients = usize::from(max_recipients.clamp(1, MAX_RECIPIENTS));
    let recipient_weights = &RECIPIENT_WEIGHTS[..max_recipients];
    let mut rng = SplitMix64::new(seed);
    (0..count as u64)
        .map(|seq| {
            let kind = Kind::ALL[rng.weighted(&KIND_WEIGHTS)];
            let format = if kind.publishing_only() || rng.chance(0.5) {
                Format::EventPublishing
            } else {
                Format::Notification
            };
            let recipients = u8::try_from(rng.weighted(recipient_weights) + 1).unwrap_or(1);
            let version = if rng.chance(0.5) {
                SignatureVersion::V1
            } else {
                SignatureVersion::V2
            };
            Spec {
                seq,
                kind,
                format,
                recipients,
                version,
            }
        })
        .collect()
}

/// Identifiers of one message, unique for a (tag, seq) pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ids {
    pub sns_message_id: String,
    pub ses_message_id: String,
    pub feedback_id: String,
}

impl Ids {
    /// `mix` is a bijection, so distinct sequence numbers give distinct SNS message ids.
    #[must_use]
    pub fn new(tag: u64, seq: u64) -> Self {
        let a = mix(tag.wrapping_add(seq.wrapping_mul(0x9E37_79B9_7F4A_7C15)));
        let b = mix(a ^ 0x5E5_10AD);
        let c = mix(b);
        Self {
            sns_message_id: format!(
                "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
                a >> 32,
                (a >> 16) & 0xffff,
                a & 0xfff,
                0x8000 | (b >> 48 & 0x3fff),
                b & 0xffff_ffff_ffff
            ),
            ses_message_id: format!(
                "0100{:012x}-{:08x}-{:04x}-{:04x}-{:04x}-{:012x}-000000",
                b >> 16,
                a >> 32,
                (a >> 16) & 0xffff,
                a & 0xffff,
                c >> 48,
                c & 0xffff_ffff_ffff
            ),
            feedback_id: format!(
                "0100{:012x}-{:08x}-{:04x}-{:04x}-{:04x}-{:012x}-000000",
                c >> 16,
                b >> 32,
                (b >> 16) & 0xffff,
                b & 0xffff,
                a >> 48,
                a & 0xffff_ffff_ffff
            ),
        }
    }
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The SES record (the SNS `Message`) for `spec`, as SES would publish it at `now`.
#[must_use]
pub fn ses_message(spec: &Spec, ids: &Ids, now: DateTime<Utc>) -> String {
    let seq = spec.seq;
    let sent = now - TimeDelta::milliseconds(2_500);
    let event_at = now - TimeDelta::milliseconds(400);
    let recipients: Vec<String> = (1..=spec.recipients)
        .map(|i| format!("user{seq}.{i}@example.net"))
        .collect();
    let to_header = recipients
        .iter()
        .enumerate()
        .map(|(i, r)| format!("\"Recipient {}\" <{r}>", i + 1))
        .collect::<Vec<_>>()
        .join(", ");
    let subject = format!("Your order #{seq} has shipped");
    let date_header = sent.format("%a, %d %b %Y %H:%M:%S +0000").to_string();
    let mut mail = json!({
        "timestamp": stamp(sent),
        "source": "Shop <orders@example.com>",
        "sourceArn": "arn:aws:ses:us-east-1:123456789012:identity/example.com",
        "sourceIp": "192.0.2.10",
        "sendingAccountId": "123456789012",
        "callerIdentity": "ses-webhook-loadgen",
        "messageId": ids.ses_message_id,
        "destination": recipients,
        "headersTruncated": false,
        "headers": [
            {"name": "From", "value": "Shop <orders@example.com>"},
            {"name": "To", "value": to_header},
            {"name": "Message-ID", "value": format!("<order-{seq}@example.com>")},
            {"name": "Subject", "value": subject},
            {"name": "MIME-Version", "value": "1.0"},
            {"name": "Content-Type", "value": "multipart/alternative; boundary=\"b1\""},
            {"name": "Date", "value": date_header},
        ],
        "commonHeaders": {
            "from": ["Shop <orders@example.com>"],
            "to": [to_header],
            "date": date_header,
            "messageId": format!("<order-{seq}@example.com>"),
            "subject": subject,
        },
    });
    if spec.format == Format::EventPublishing
        && let Some(obj) = mail.as_object_mut()
    {
        obj.insert(
            "tags".into(),
            json!({
                "ses:configuration-set": ["loadgen"],
                "ses:source-ip": ["192.0.2.10"],
                "ses:from-domain": ["example.com"],
                "campaign": [format!("c{}", seq % 10)],
            }),
        );
    }
    let t = stamp(event_at);
    let (type_name, key, body) = match spec.kind {
        Kind::Send => ("Send", "send", json!({})),
        Kind::Delivery => (
            "Delivery",
            "delivery",
            json!({
                "timestamp": t,
                "recipients": recipients,
                "processingTimeMillis": 1_000 + seq % 1_000,
                "reportingMTA": "a8-70.smtp-out.amazonses.com",
                "smtpResponse": "250 2.0.0 OK  1700000000 x1si1234567qkb.42 - gsmtp",
                "remoteMtaIp": "198.51.100.7",
            }),
        ),
        Kind::BouncePermanent | Kind::BounceTransient => {
            let permanent = spec.kind == Kind::BouncePermanent;
            let (status, code, sub) = if permanent {
                ("5.1.1", "smtp; 550 5.1.1 user unknown", "General")
            } else {
                ("4.2.2", "smtp; 452 4.2.2 mailbox full", "MailboxFull")
            };
            let bounced: Vec<Value> = recipients
                .iter()
                .map(|r| {
                    json!({
                        "emailAddress": r,
                        "action": "failed",
                        "status": status,
                        "diagnosticCode": code,
                    })
                })
                .collect();
            (
                "Bounce",
                "bounce",
                json!({
                    "bounceType": if permanent { "Permanent" } else { "Transient" },
                    "bounceSubType": sub,
                    "bouncedRecipients": bounced,
                    "timestamp": t,
                    "feedbackId": ids.feedback_id,
                    "reportingMTA": "dns; a8-70.smtp-out.amazonses.com",
                    "remoteMtaIp": "198.51.100.7",
                }),
            )
        }
        Kind::Complaint => {
            let complained: Vec<Value> = recipients
                .iter()
                .map(|r| json!({ "emailAddress": r }))
                .collect();
            (
                "Complaint",
                "complaint",
                json!({
                    "userAgent": "ExampleCorp Feedback Loop (V0.01)",
                    "complainedRecipients": complained,
                    "complaintFeedbackType": "abuse",
                    "arrivalDate": t,
                    "timestamp": t,
                    "feedbackId": ids.feedback_id,
                }),
            )
        }
        Kind::Open => (
            "Open",
            "open",
            json!({
                "ipAddress": "203.0.113.9",
                "timestamp": t,
                "userAgent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
            }),
        ),
        Kind::Click => (
            "Click",
            "click",
            json!({
                "ipAddress": "203.0.113.9",
                "timestamp": t,
                "userAgent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
                "link": format!("https://www.example.com/orders/{seq}?utm_source=email"),
                "linkTags": { "campaign": [format!("c{}", seq % 10)] },
            }),
        ),
    };
    let type_field = match spec.format {
        Format::Notification => "notificationType",
        Format::EventPublishing => "eventType",
    };
    json!({ type_field: type_name, "mail": mail, key: body }).to_string()
}

/// One signed SNS delivery, ready to post.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signed {
    pub sns_message_id: String,
    pub kind: Kind,
    /// Events the server must report as processed (first time) or duplicate (again).
    pub events: u32,
    /// The request body: the SNS envelope as JSON.
    pub body: String,
}

/// The `SigningCertURL` for a run tag: one file name per signing key, so a server that cached
/// another run's certificate still finds this one.
#[must_use]
pub fn cert_url(tag: u64) -> String {
    format!("https://sns.us-east-1.amazonaws.com/SimpleNotificationService-loadgen-{tag:016x}.pem")
}

/// Signs one message.
#[must_use]
pub fn sign_one(signer: &TestSigner, spec: &Spec, tag: u64, now: DateTime<Utc>) -> Signed {
    let ids = Ids::new(tag, spec.seq);
    let message = ses_message(spec, &ids, now);
    let envelope = signer.notification_at(
        TOPIC_ARN,
        &ids.sns_message_id,
        &message,
        None,
        spec.version,
        &stamp(now),
    );
    Signed {
        sns_message_id: ids.sns_message_id,
        kind: spec.kind,
        events: spec.expected_events(),
        body: envelope.to_string(),
    }
}

/// Signs every spec, on `threads` threads (RSA signing is the slow part: do it before the clock
/// starts).
#[must_use]
pub fn sign_all(
    signer: &TestSigner,
    specs: &[Spec],
    tag: u64,
    now: DateTime<Utc>,
    threads: NonZeroUsize,
) -> Vec<Signed> {
    let chunk = specs.len().div_ceil(threads.get()).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = specs
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|spec| sign_one(signer, spec, tag, now))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    })
}

/// The first line of a corpus file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorpusHeader {
    pub corpus: String,
    pub seed: u64,
    pub tag: String,
    pub cert_url: String,
    pub count: usize,
}

/// Writes a corpus: a header line, then one [`Signed`] per line.
///
/// # Errors
/// I/O and serialisation errors.
pub fn write_corpus(
    out: &mut impl Write,
    header: &CorpusHeader,
    messages: &[Signed],
) -> anyhow::Result<()> {
    serde_json::to_writer(&mut *out, header)?;
    out.write_all(b"\n")?;
    for message in messages {
        serde_json::to_writer(&mut *out, message)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

/// Reads a corpus written by [`write_corpus`].
///
/// # Errors
/// I/O errors, a missing or foreign header, a malformed line, or a count that does not match.
pub fn read_corpus(input: impl BufRead) -> anyhow::Result<(CorpusHeader, Vec<Signed>)> {
    let mut lines = input.lines();
    let first = lines
        .next()
        .ok_or_else(|| anyhow::anyhow!("empty corpus file"))??;
    let header: CorpusHeader = serde_json::from_str(&first)
        .map_err(|e| anyhow::anyhow!("not a loadgen corpus (bad header: {e})"))?;
    if header.corpus != CORPUS_FORMAT {
        anyhow::bail!("unknown corpus format `{}`", header.corpus);
    }
    let mut messages = Vec::with_capacity(header.count);
    for (n, line) in lines.enumerate() {
        let line = line?;
        if line.is_empty() {
            continue;
        }
        let message: Signed = serde_json::from_str(&line)
            .map_err(|e| anyhow::anyhow!("corpus line {}: {e}", n + 2))?;
        messages.push(message);
    }
    if messages.len() != header.count {
        anyhow::bail!(
            "corpus says {} messages but holds {}",
            header.count,
            messages.len()
        );
    }
    Ok((header, messages))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-27T12:00:00.123Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn the_mix_is_deterministic_for_a_seed() {
        assert_eq!(specs(9, 500, 5), specs(9, 500, 5));
        assert_ne!(specs(9, 500, 5), specs(10, 500, 5));
        let a = ses_message(&specs(9, 1, 5)[0], &Ids::new(1, 0), now());
        let b = ses_message(&specs(9, 1, 5)[0], &Ids::new(1, 0), now());
        assert_eq!(a, b);
    }

    #[test]
    fn the_mix_covers_every_kind_both_formats_and_one_to_five_recipients() {
        let all = specs(1, 5_000, 5);
        let mut kinds: HashMap<Kind, usize> = HashMap::new();
        for s in &all {
            *kinds.entry(s.kind).or_default() += 1;
        }
        let total: u32 = KIND_WEIGHTS.iter().sum();
        for (kind, weight) in Kind::ALL.iter().zip(KIND_WEIGHTS) {
            let share = kinds.get(kind).copied().unwrap_or(0) as f64 / 5_000.0;
            let expected = f64::from(weight) / f64::from(total);
            assert!(
                (share - expected).abs() < 0.03,
                "{kind:?}: {share} vs {expected}"
            );
        }
        let recipients: HashSet<u8> = all.iter().map(|s| s.recipients).collect();
        assert_eq!(recipients, (1..=5).collect());
        for kind in [
            Kind::Delivery,
            Kind::BouncePermanent,
            Kind::BounceTransient,
            Kind::Complaint,
        ] {
            let formats: HashSet<_> = all
                .iter()
                .filter(|s| s.kind == kind)
                .map(|s| s.format as u8)
                .collect();
            assert_eq!(formats.len(), 2, "{kind:?} uses only one format");
        }
        assert!(
            all.iter()
                .filter(|s| s.kind.publishing_only())
                .all(|s| s.format == Format::EventPublishing)
        );
        let versions: HashSet<_> = all.iter().map(|s| s.version.as_str()).collect();
        assert_eq!(versions.len(), 2);
    }

    #[test]
    fn max_recipients_is_honoured() {
        assert!(specs(1, 1_000, 1).iter().all(|s| s.recipients == 1));
        assert!(specs(1, 1_000, 2).iter().all(|s| s.recipients <= 2));
        assert!(specs(1, 1_000, 200).iter().all(|s| s.recipients <= 5));
    }

    #[test]
    fn expected_events_follow_the_mapping_rules() {
        let spec = |kind, recipients| Spec {
            seq: 0,
            kind,
            format: Format::EventPublishing,
            recipients,
            version: SignatureVersion::V2,
        };
        assert_eq!(spec(Kind::Delivery, 3).expected_events(), 3);
        assert_eq!(spec(Kind::BouncePermanent, 2).expected_events(), 2);
        assert_eq!(spec(Kind::BounceTransient, 5).expected_events(), 5);
        assert_eq!(spec(Kind::Complaint, 4).expected_events(), 4);
        assert_eq!(spec(Kind::Open, 4).expected_events(), 1);
        assert_eq!(spec(Kind::Click, 2).expected_events(), 1);
    }

    #[test]
    fn identifiers_are_unique_and_differ_between_tags() {
        let ids: HashSet<String> = (0..10_000)
            .map(|seq| Ids::new(77, seq).sns_message_id)
            .collect();
        assert_eq!(ids.len(), 10_000);
        assert_ne!(Ids::new(1, 5), Ids::new(2, 5));
        let id = Ids::new(1, 5).sns_message_id;
        assert_eq!(id.len(), 36, "{id}");
    }

    #[test]
    fn records_have_the_shape_ses_sends() {
        for (kind, format, type_field, object, list) in [
            (
                Kind::Delivery,
                Format::Notification,
                "notificationType",
                "delivery",
                "/delivery/recipients",
            ),
            (
                Kind::BouncePermanent,
                Format::EventPublishing,
                "eventType",
                "bounce",
                "/bounce/bouncedRecipients",
            ),
            (
                Kind::Complaint,
                Format::Notification,
                "notificationType",
                "complaint",
                "/complaint/complainedRecipients",
            ),
        ] {
            let spec = Spec {
                seq: 3,
                kind,
                format,
                recipients: 4,
                version: SignatureVersion::V1,
            };
            let record: Value =
                serde_json::from_str(&ses_message(&spec, &Ids::new(1, 3), now())).unwrap();
            assert!(record.get(type_field).is_some(), "{kind:?}");
            assert!(record.get(object).is_some(), "{kind:?}");
            assert_eq!(record.pointer(list).unwrap().as_array().unwrap().len(), 4);
            assert_eq!(
                record.pointer("/mail/destination").unwrap(),
                &json!([
                    "user3.1@example.net",
                    "user3.2@example.net",
                    "user3.3@example.net",
                    "user3.4@example.net"
                ])
            );
        }
        let bounce = Spec {
            seq: 1,
            kind: Kind::BounceTransient,
            format: Format::Notification,
            recipients: 1,
            version: SignatureVersion::V1,
        };
        let record: Value =
            serde_json::from_str(&ses_message(&bounce, &Ids::new(1, 1), now())).unwrap();
        assert_eq!(record["bounce"]["bounceType"], "Transient");
        let click = Spec {
            kind: Kind::Click,
            format: Format::EventPublishing,
            ..bounce
        };
        let record: Value =
            serde_json::from_str(&ses_message(&click, &Ids::new(1, 1), now())).unwrap();
        assert_eq!(record["eventType"], "Click");
        assert!(
            record["click"]["link"]
                .as_str()
                .unwrap()
                .starts_with("https://")
        );
    }

    #[test]
    fn signed_messages_verify_and_corpora_round_trip() {
        let signer = TestSigner::shared().with_cert_url(cert_url(0xabc));
        let all = specs(4, 6, 5);
        let signed = sign_all(&signer, &all, 0xabc, now(), NonZeroUsize::MIN);
        assert_eq!(signed.len(), 6);
        let cert = signer.signing_cert();
        for (message, spec) in signed.iter().zip(&all) {
            assert_eq!(message.events, spec.expected_events());
            let envelope = sns_verify::Envelope::parse(message.body.as_bytes()).unwrap();
            assert_eq!(envelope.message_id, message.sns_message_id);
            sns_verify::verify_with_cert(&envelope, &cert).unwrap();
        }

        let header = CorpusHeader {
            corpus: CORPUS_FORMAT.into(),
            seed: 4,
            tag: "abc".into(),
            cert_url: cert_url(0xabc),
            count: signed.len(),
        };
        let mut buffer = Vec::new();
        write_corpus(&mut buffer, &header, &signed).unwrap();
        let (read_header, read) = read_corpus(buffer.as_slice()).unwrap();
        assert_eq!(read_header, header);
        assert_eq!(read, signed);

        let truncated = &buffer[..buffer.len() - signed[5].body.len()];
        assert!(read_corpus(truncated).is_err());
        assert!(read_corpus(&b"{\"x\":1}\n"[..]).is_err());
    }
}
