//! The contract of event delivery as consumers read it in `docs/delivery.md`: every envelope
//! the service builds (from the real SES fixtures and from suppression-list changes, through
//! `ApiShapedContents` and `domain::delivery::envelope`) matches `docs/delivery.schema.json`, the
//! schema refuses what the service never sends and agrees with `docs/openapi.json`, the
//! document's examples match the schema and what the service builds, and the verification
//! examples in `docs/examples/` accept a body signed as the webhook sink signs it and refuse
//! tampered, mis-signed and stale ones.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use app::delivery::ApiShapedContents;
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use domain::delivery::{
    ENTRY_TYPES, EntryContent, EntryContents, EntrySource, EntrySources, EntryState,
    MockOutboxStore, OutboxEntry, SUPPRESSION_ADDED, SUPPRESSION_REMOVED, SuppressionChange,
    envelope,
};
use domain::history::{EventPosition, StoredEvent};
use domain::mapping::map_message;
use domain::suppression::{HistoryAction, SuppressionEntry, SuppressionReason};
use serde_json::{Value, json};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn schema() -> Value {
    serde_json::from_str(&read("docs/delivery.schema.json")).unwrap()
}

/// A validator of `docs/delivery.schema.json` that checks formats (`date-time`) too.
fn validator() -> jsonschema::Validator {
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema())
        .unwrap_or_else(|e| panic!("docs/delivery.schema.json is not a valid schema: {e}"))
}

fn errors(validator: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    validator
        .iter_errors(instance)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

/// Every platform event the SES fixtures (whole records) map to, as stored events: row ids from
/// 1, stored a second after they happened. The last bounce's subject is made non-ASCII, so that
/// bodies are signed and verified as bytes, not as ASCII text.
fn stored_events() -> Vec<StoredEvent> {
    let dir = root().join("tests/fixtures/ses");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.ends_with(".json") && !name.contains("fragment")
        })
        .collect();
    files.sort();
    let mut events: Vec<StoredEvent> = files
        .iter()
        .flat_map(|path| map_message(&std::fs::read_to_string(path).unwrap()).events)
        .enumerate()
        .map(|(i, event)| StoredEvent {
            position: EventPosition {
                event_time: event.event_time,
                id: i64::try_from(i).unwrap() + 1,
            },
            sns_message_id: format!("f1c4e4a6-8b3d-5e21-9a7c-{:012x}", i + 1),
            created_at: event.event_time + TimeDelta::seconds(1),
            event,
        })
        .collect();
    let bounce = events
        .iter_mut()
        .rev()
        .find(|e| e.event.event_type.as_str() == "email_bounce")
        .unwrap();
    bounce.event.subject = Some("Ihre Bestellung – Bestätigung 🚚".into());
    events
}

/// Changes to the suppression list: an addition for every reason (with and without expiry,
/// cause and note) and removals.
fn suppression_changes() -> Vec<SuppressionChange> {
    let at = Utc.with_ymd_and_hms(2026, 11, 30, 11, 0, 1).unwrap() + TimeDelta::microseconds(250);
    let policy = |reason, expires_at: Option<DateTime<Utc>>| SuppressionEntry {
        address: "Jane.Doe@example.com".into(),
        reason,
        created_at: at,
        expires_at,
        ses_message_id: Some("010f019a3b8e2b57-6a0d8f8e-2c3b-4d6f-9f51-3c1d0e5f7a2b-000000".into()),
        event_key: Some("9f2c6a51e0b3d4c7a8e1f2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7".into()),
        note: None,
    };
    let by_hand = |reason, note: Option<&str>| SuppressionEntry {
        address: "ops@example.org".into(),
        reason,
        created_at: at,
        expires_at: None,
        ses_message_id: None,
        event_key: None,
        note: note.map(str::to_owned),
    };
    let entries = [
        (
            HistoryAction::Added,
            policy(SuppressionReason::HardBounce, None),
        ),
        (
            HistoryAction::Added,
            policy(SuppressionReason::Complaint, None),
        ),
        (
            HistoryAction::Added,
            policy(
                SuppressionReason::SoftBounce,
                Some(at + TimeDelta::days(30)),
            ),
        ),
        (
            HistoryAction::Added,
            by_hand(
                SuppressionReason::Manual,
                Some("asked by support, ticket 4711"),
            ),
        ),
        (
            HistoryAction::Added,
            by_hand(SuppressionReason::AwsImport, None),
        ),
        (
            HistoryAction::Removed,
            policy(
                SuppressionReason::SoftBounce,
                Some(at + TimeDelta::days(30)),
            ),
        ),
        (
            HistoryAction::Removed,
            by_hand(SuppressionReason::Manual, None),
        ),
    ];
    entries
        .into_iter()
        .enumerate()
        .map(|(i, (action, entry))| SuppressionChange {
            id: i64::try_from(i).unwrap() + 41,
            action,
            entry,
        })
        .collect()
}

/// The outbox entry the triggers would write for `source`.
fn entry(id: i64, entry_id: String, entry_type: &str, source: EntrySource) -> OutboxEntry {
    let at = Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap();
    OutboxEntry {
        id,
        sink: "crm".into(),
        entry_id,
        entry_type: entry_type.into(),
        source,
        state: EntryState::Pending,
        attempts: 0,
        created_at: at,
        next_attempt_at: at,
        last_error: None,
        settled_at: None,
        lease_until: Some(at + TimeDelta::minutes(5)),
    }
}

/// The bodies the relay would send for every fixture event and every change: the content read
/// through `ApiShapedContents` (over a mocked store), wrapped by `envelope`.
async fn envelopes() -> Vec<Vec<u8>> {
    let events = stored_events();
    let changes = suppression_changes();
    let mut entries = Vec::new();
    for stored in &events {
        entries.push(entry(
            i64::try_from(entries.len()).unwrap() + 1,
            stored.event.event_key.clone(),
            stored.event.event_type.as_str(),
            EntrySource::Event(stored.position.id),
        ));
    }
    for change in &changes {
        let entry_type = match change.action {
            HistoryAction::Added => SUPPRESSION_ADDED,
            HistoryAction::Removed => SUPPRESSION_REMOVED,
        };
        entries.push(entry(
            i64::try_from(entries.len()).unwrap() + 1,
            format!("suppression-{}", change.id),
            entry_type,
            EntrySource::SuppressionChange(change.id),
        ));
    }
    let mut store = MockOutboxStore::new();
    store.expect_entry_sources().return_once(move |_, _| {
        Ok(EntrySources {
            events,
            changes,
            unreadable: Vec::new(),
        })
    });
    let contents = ApiShapedContents::new(Arc::new(store))
        .entry_data(&entries)
        .await
        .unwrap();
    assert_eq!(contents.len(), entries.len());
    entries
        .iter()
        .zip(contents)
        .map(|(entry, content)| {
            let EntryContent::Data(data) = content else {
                panic!("{}: no content: {content:?}", entry.entry_id);
            };
            envelope(entry, &data).unwrap()
        })
        .collect()
}

fn parsed(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap()
}

/// The first envelope of `entry_type`.
async fn one_of(entry_type: &str) -> Value {
    envelopes()
        .await
        .iter()
        .map(|b| parsed(b))
        .find(|e| e["type"] == entry_type)
        .unwrap_or_else(|| panic!("no {entry_type} envelope"))
}

#[tokio::test]
async fn every_envelope_the_service_builds_matches_the_schema() {
    let validator = validator();

    let bodies = envelopes().await;

    // What each body was built from, in the order `envelopes` builds them: every fixture
    // event, then every change.
    let micros = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let events = stored_events();
    let changes = suppression_changes();
    let mut expected: Vec<(String, &str, String)> = events
        .iter()
        .map(|e| {
            (
                e.event.event_key.clone(),
                e.event.event_type.as_str(),
                micros(e.event.event_time),
            )
        })
        .collect();
    expected.extend(changes.iter().map(|c| {
        let entry_type = match c.action {
            HistoryAction::Added => SUPPRESSION_ADDED,
            HistoryAction::Removed => SUPPRESSION_REMOVED,
        };
        (
            format!("suppression-{}", c.id),
            entry_type,
            micros(c.entry.created_at),
        )
    }));
    assert_eq!(bodies.len(), expected.len(), "one envelope per entry");

    let mut types = BTreeSet::new();
    for (body, (id, entry_type, timestamp)) in bodies.iter().zip(&expected) {
        let envelope = parsed(body);
        let problems = errors(&validator, &envelope);
        assert!(
            problems.is_empty(),
            "{envelope:#}\ndoes not match docs/delivery.schema.json: {problems:#?}"
        );
        // What docs/delivery.md promises beyond the schema: the id is the event key, or
        // `suppression-` and the change's number; the timestamp is the event's time, or the
        // change's (`data.createdAt`).
        assert_eq!(envelope["id"], *id, "{envelope:#}");
        assert_eq!(envelope["type"], *entry_type, "{envelope:#}");
        assert_eq!(envelope["timestamp"], *timestamp, "{envelope:#}");
        let data = &envelope["data"];
        if id.starts_with("suppression-") {
            assert_eq!(data["createdAt"], *timestamp, "{envelope:#}");
        } else {
            assert_eq!(data["eventKey"], *id, "{envelope:#}");
            assert_eq!(data["eventType"], *entry_type, "{envelope:#}");
            assert_eq!(data["eventTime"], *timestamp, "{envelope:#}");
        }
        types.insert((*entry_type).to_owned());
    }
    let every: BTreeSet<String> = ENTRY_TYPES.iter().map(|t| (*t).to_owned()).collect();
    assert_eq!(types, every, "the fixtures cover every entry type");
    assert!(bodies.len() > 30, "only {} envelopes", bodies.len());
}

#[tokio::test]
async fn the_schema_refuses_what_the_service_never_sends() {
    let validator = validator();
    let bounce = one_of("email_bounce").await;
    let added = one_of(SUPPRESSION_ADDED).await;
    assert!(errors(&validator, &bounce).is_empty());
    assert!(errors(&validator, &added).is_empty());
    let with = |base: &Value, change: &dyn Fn(&mut Value)| {
        let mut v = base.clone();
        change(&mut v);
        v
    };

    let wrong = [
        (
            "an unknown type",
            with(&bounce, &|v| v["type"] = json!("email_bounced")),
        ),
        (
            "a type its data is not",
            with(&bounce, &|v| v["type"] = json!("email_open")),
        ),
        (
            "an event as a suppression change",
            with(&bounce, &|v| v["type"] = json!(SUPPRESSION_ADDED)),
        ),
        (
            "an entry as an event",
            with(&added, &|v| v["type"] = json!("email_bounce")),
        ),
        (
            "no timestamp",
            with(&bounce, &|v| {
                v.as_object_mut().unwrap().remove("timestamp");
            }),
        ),
        (
            "no id",
            with(&added, &|v| {
                v.as_object_mut().unwrap().remove("id");
            }),
        ),
        (
            "a timestamp without microseconds",
            with(&bounce, &|v| {
                v["timestamp"] = json!("2026-11-30T11:00:01Z");
            }),
        ),
        (
            "a timestamp that is no time",
            with(&bounce, &|v| {
                v["timestamp"] = json!("2026-13-45T11:00:01.000000Z");
            }),
        ),
        ("a field more", with(&bounce, &|v| v["attempt"] = json!(2))),
        (
            "a field more in data",
            with(&bounce, &|v| v["data"]["extra"] = json!(1)),
        ),
        (
            "a bounce without its class",
            with(&bounce, &|v| v["data"]["bounceType"] = Value::Null),
        ),
        (
            "a bounce class that is not one",
            with(&bounce, &|v| v["data"]["bounceType"] = json!("Permanent")),
        ),
        (
            "an unknown reason",
            with(&added, &|v| v["data"]["reason"] = json!("bounce")),
        ),
        (
            "a change id that is not one",
            with(&added, &|v| v["id"] = json!("41")),
        ),
        (
            "tags that are not string lists",
            with(&bounce, &|v| v["data"]["tags"] = json!({"a": "b"})),
        ),
    ];
    for (what, envelope) in &wrong {
        assert!(
            !errors(&validator, envelope).is_empty(),
            "the schema accepts {what}: {envelope:#}"
        );
    }
    for base in [&bounce, &added] {
        for field in base["data"].as_object().unwrap().keys() {
            let missing = with(base, &|v| {
                v["data"].as_object_mut().unwrap().remove(field);
            });
            assert!(
                !errors(&validator, &missing).is_empty(),
                "the schema accepts a {} without data.{field}",
                base["type"]
            );
        }
    }
}

#[tokio::test]
async fn the_schema_agrees_with_the_openapi_description() {
    let schema = schema();
    let validator = validator();
    let openapi: Value = serde_json::from_str(&read("docs/openapi.json")).unwrap();
    let components = &openapi["components"]["schemas"];
    // A delivered event: its bounce class may be null, like every nullable field.
    let delivered = one_of("email_delivered").await;
    let added = one_of(SUPPRESSION_ADDED).await;

    let types: Vec<&str> = schema["properties"]["type"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(types, ENTRY_TYPES, "the envelope's types");
    for (dto, def, base) in [
        ("EventDto", "event", &delivered),
        ("SuppressionDto", "suppressionEntry", &added),
    ] {
        let api = &components[dto];
        let ours = &schema["$defs"][def];
        // As sets: serde_json's maps are sorted by key, and the order of `required` means
        // nothing.
        let names = |list: &Value| -> BTreeSet<String> {
            list.as_array()
                .unwrap()
                .iter()
                .map(|n| n.as_str().unwrap().to_owned())
                .collect()
        };
        let keys = |schema: &Value| -> BTreeSet<String> {
            schema["properties"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect()
        };
        assert_eq!(keys(ours), keys(api), "{dto}'s fields");
        assert_eq!(
            names(&ours["required"]),
            names(&api["required"]),
            "{dto}'s required fields"
        );
        // Every field is always present (null when it has no value).
        assert_eq!(
            names(&ours["required"]),
            keys(ours),
            "{def}: every field required"
        );
        // A field may be null in a delivery exactly when the API's description says so.
        for (field, described) in api["properties"].as_object().unwrap() {
            let nullable = described["type"]
                .as_array()
                .is_some_and(|t| t.contains(&json!("null")));
            let mut envelope = base.clone();
            envelope["data"][field] = Value::Null;
            assert_eq!(
                errors(&validator, &envelope).is_empty(),
                nullable,
                "{dto}.{field}: nullable in docs/openapi.json: {nullable}"
            );
        }
    }
    let reasons = &components["ReasonDto"]["enum"];
    assert_eq!(
        schema["$defs"]["suppressionEntry"]["properties"]["reason"]["enum"],
        *reasons
    );
    assert_eq!(
        schema["$defs"]["event"]["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect::<BTreeSet<_>>(),
        adapters_http::CSV_COLUMNS
            .iter()
            .copied()
            .collect::<BTreeSet<_>>(),
        "the events API's fields"
    );
}

/// The ` ```json ` blocks of `docs/delivery.md` (line endings as LF).
fn json_blocks(doc: &str) -> Vec<String> {
    let doc = doc.replace("\r\n", "\n");
    doc.split("```json\n")
        .skip(1)
        .map(|block| {
            block
                .split_once("\n```")
                .unwrap_or_else(|| panic!("docs/delivery.md: a ```json block is not closed"))
                .0
                .to_owned()
        })
        .collect()
}

#[tokio::test]
async fn the_examples_in_delivery_md_match_the_schema_and_the_service() {
    let validator = validator();
    let doc = read("docs/delivery.md");
    let built: Vec<Value> = envelopes().await.iter().map(|b| parsed(b)).collect();

    let mut examples: Vec<Value> = Vec::new();
    for text in json_blocks(&doc) {
        let value: Value = serde_json::from_str(&text).unwrap_or_else(|e| {
            panic!("a ```json block of docs/delivery.md is not JSON: {e}\n{text}")
        });
        if value.get("data").is_none() {
            continue;
        }
        let problems = errors(&validator, &value);
        assert!(
            problems.is_empty(),
            "an example in docs/delivery.md does not match the schema: {problems:#?}\n{text}"
        );
        examples.push(value);
    }
    let example = |kind: &str| {
        let types: Vec<&Value> = examples.iter().map(|e| &e["type"]).collect();
        examples
            .iter()
            .find(|e| e["type"] == kind)
            .unwrap_or_else(|| panic!("docs/delivery.md has no {kind} example (found {types:?})"))
    };
    let bounce = example("email_bounce");
    let added = example(SUPPRESSION_ADDED);

    // The bounce is the one the service builds from an SES example (but for the SNS message
    // id, which the tests make up).
    let mut service = built
        .iter()
        .find(|e| e["id"] == bounce["id"])
        .unwrap_or_else(|| {
            panic!(
                "docs/delivery.md's bounce {} is not one the service builds from the SES examples",
                bounce["id"]
            )
        })
        .clone();
    service["data"]["snsMessageId"] = bounce["data"]["snsMessageId"].clone();
    assert_eq!(*bounce, service, "docs/delivery.md's bounce");
    // The entry is the one "put on the suppression list by that bounce".
    assert_eq!(added["data"]["reason"], "hard_bounce");
    assert_eq!(added["data"]["eventKey"], bounce["id"]);
    assert_eq!(
        added["data"]["sesMessageId"],
        bounce["data"]["sesMessageId"]
    );
    assert_eq!(added["data"]["address"], bounce["data"]["recipient"]);
}

/// The secret of the tests' sink, and another one.
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const OTHER_SECRET: &str = "whsec_3gV9qGzWcN0c7YkJ2bq4e3xwZq1v8Yt6";

/// `webhook-signature` as the webhook sink makes it (`adapters_sinks::WebhookSink`: the
/// `standardwebhooks` crate with the key after `whsec_`).
fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
    let key = secret.strip_prefix("whsec_").unwrap();
    standardwebhooks::Webhook::new(key)
        .unwrap()
        .sign(id, timestamp, body)
        .unwrap()
}

/// One delivery as a receiver gets it: the secret it checks with, the three `webhook-*` headers
/// and the body.
struct Delivery<'a> {
    secret: &'a str,
    id: &'a str,
    timestamp: &'a str,
    signature: &'a str,
    body: &'a [u8],
}

/// One of the verification examples and how to run it.
struct Example {
    /// The interpreter, found on `PATH`.
    program: &'static str,
    /// The Debian package that installs it.
    package: &'static str,
    script: &'static str,
}

const PYTHON: Example = Example {
    program: "python3",
    package: "python3",
    script: "docs/examples/verify-webhook.py",
};

const NODE: Example = Example {
    program: "node",
    package: "nodejs",
    script: "docs/examples/verify-webhook.mjs",
};

impl Example {
    /// Runs the example on one delivery: the secret and headers in its environment, the body
    /// on its standard input.
    fn run(&self, secret: &str, id: &str, timestamp: &str, signature: &str, body: &[u8]) -> Output {
        let mut child = Command::new(self.program)
            .arg(root().join(self.script))
            .env("WEBHOOK_SECRET", secret)
            .env("WEBHOOK_ID", id)
            .env("WEBHOOK_TIMESTAMP", timestamp)
            .env("WEBHOOK_SIGNATURE", signature)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    panic!(
                        "`{}` was not found on PATH: {} needs it; install Debian's package `{}` \
                         (apt-get install {})",
                        self.program, self.script, self.package, self.package
                    );
                }
                panic!("{} could not be started: {e}", self.program);
            });
        child.stdin.take().unwrap().write_all(body).unwrap();
        child.wait_with_output().unwrap()
    }

    /// Checks that the example accepts genuine deliveries and refuses the others.
    async fn check(&self) {
        // A bounce whose subject is not ASCII: signed as bytes.
        let bounce = envelopes()
            .await
            .into_iter()
            .find(|b| parsed(b)["data"]["subject"] == "Ihre Bestellung – Bestätigung 🚚")
            .unwrap();
        let envelope = parsed(&bounce);
        let id = envelope["id"].as_str().unwrap();
        let now = Utc::now().timestamp();
        let signed_at = |t: i64| (t.to_string(), sign(SECRET, id, t, &bounce));
        let (ts, signature) = signed_at(now);
        let what = self.script;

        let genuine = self.run(SECRET, id, &ts, &signature, &bounce);
        assert_eq!(
            genuine.status.code(),
            Some(0),
            "{what} refused a genuine delivery: {}",
            String::from_utf8_lossy(&genuine.stderr)
        );
        assert_eq!(
            String::from_utf8(genuine.stdout).unwrap().trim(),
            format!("{id} email_bounce")
        );

        // While a secret is rotated, several signatures; one valid is enough.
        let rotating = format!("{} {signature}", sign(OTHER_SECRET, id, now, &bounce));
        let (earlier, earlier_signature) = signed_at(now - 240);
        let accepted: [(&str, &str, &str); 2] = [
            ("several signatures", rotating.as_str(), ts.as_str()),
            ("a timestamp 4 minutes old", &earlier_signature, &earlier),
        ];
        for (case, signature, ts) in accepted {
            let out = self.run(SECRET, id, ts, signature, &bounce);
            assert_eq!(
                out.status.code(),
                Some(0),
                "{what} refused {case}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }

        // The bounce's class changed, hard for soft or soft for hard.
        let text = String::from_utf8(bounce.clone()).unwrap();
        let (hard, soft) = ("\"bounceType\":\"hard\"", "\"bounceType\":\"soft\"");
        let tampered = if text.contains(hard) {
            text.replacen(hard, soft, 1)
        } else {
            text.replacen(soft, hard, 1)
        };
        assert_ne!(tampered.as_bytes(), bounce, "the body was changed");
        let (stale, stale_signature) = signed_at(now - 6 * 60);
        let (future, future_signature) = signed_at(now + 6 * 60);
        let wrong_secret = sign(OTHER_SECRET, id, now, &bounce);
        let refused = [
            (
                "a tampered body",
                Delivery {
                    secret: SECRET,
                    id,
                    timestamp: &ts,
                    signature: &signature,
                    body: tampered.as_bytes(),
                },
            ),
            (
                "a wrong secret's signature",
                Delivery {
                    secret: SECRET,
                    id,
                    timestamp: &ts,
                    signature: &wrong_secret,
                    body: &bounce,
                },
            ),
            (
                "the right signature checked with another secret",
                Delivery {
                    secret: OTHER_SECRET,
                    id,
                    timestamp: &ts,
                    signature: &signature,
                    body: &bounce,
                },
            ),
            (
                "a stale timestamp (6 minutes old)",
                Delivery {
                    secret: SECRET,
                    id,
                    timestamp: &stale,
                    signature: &stale_signature,
                    body: &bounce,
                },
            ),
            (
                "a timestamp 6 minutes ahead",
                Delivery {
                    secret: SECRET,
                    id,
                    timestamp: &future,
                    signature: &future_signature,
                    body: &bounce,
                },
            ),
            (
                "another webhook-id",
                Delivery {
                    secret: SECRET,
                    id: "suppression-1",
                    timestamp: &ts,
                    signature: &signature,
                    body: &bounce,
                },
            ),
            (
                "no signature",
                Delivery {
                    secret: SECRET,
                    id,
                    timestamp: &ts,
                    signature: "",
                    body: &bounce,
                },
            ),
        ];
        for (case, d) in refused {
            let out = self.run(d.secret, d.id, d.timestamp, d.signature, d.body);
            assert_eq!(
                out.status.code(),
                Some(1),
                "{what} did not refuse {case} with exit 1: stdout {:?}, stderr {:?}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(out.stdout.is_empty(), "{what} printed for {case}");
            assert!(!out.stderr.is_empty(), "{what} gave no reason for {case}");
        }
    }
}

#[tokio::test]
async fn the_python_example_accepts_genuine_deliveries_and_refuses_the_others() {
    PYTHON.check().await;
}

#[tokio::test]
async fn the_node_example_accepts_genuine_deliveries_and_refuses_the_others() {
    NODE.check().await;
}
