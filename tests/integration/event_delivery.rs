//! Event delivery end to end: the real server stores SES events and delivers every stored event
//! and suppression-list change to its sinks through the outbox (`docs/delivery.md`).
//!
//! The webhook receiver here checks every request as a Standard Webhooks consumer must (the
//! HMAC-SHA256 of `id.timestamp.body` written out below, keyed with the base64-decoded part of
//! the secret after `whsec_`; the timestamp within five minutes), records what it took, and can
//! be made to fail or to hold its answers. Each test checks that every entry reaches the sink at
//! least once and that every copy of an entry carries the same id and the same envelope.
//! Waits poll with a deadline; no test asserts a timing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use adapters_store::testing::{TestDatabase, TestSqliteFile};
use app::settings::{SinkSecret, SinkSettings};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use diesel::prelude::*;
use diesel::sql_types::{Integer, Text};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use test_support::{Backend, Scope, TOPIC, TestApp, spawn_app_with, spawn_on};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// How long a test waits for what the relays do before it fails.
const DEADLINE: Duration = Duration::from_secs(20);

/// The signing key of every test sink (32 bytes).
const KEY: &[u8; 32] = b"event-delivery-tests-signing-key";

/// The sinks' secret as configured: `whsec_` and the key in standard base64.
fn secret() -> String {
    format!("whsec_{}", STANDARD.encode(KEY))
}

// ---------------------------------------------------------------------------------------------
// The receiver.

/// HMAC-SHA256 (RFC 2104) over SHA-256 with its 64-byte block.
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let padded = |byte: u8| block.map(|b| b ^ byte);
    let inner = Sha256::new()
        .chain_update(padded(0x36))
        .chain_update(message)
        .finalize();
    let outer = Sha256::new()
        .chain_update(padded(0x5c))
        .chain_update(inner)
        .finalize();
    let mut mac = [0u8; 32];
    mac.copy_from_slice(&outer);
    mac
}

#[test]
fn the_hand_written_hmac_gives_rfc_4231s_values() {
    // RFC 4231, test cases 2 (a short key) and 6 (a key longer than the block).
    let short = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
    assert_eq!(
        hex(&short),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
    let long = hmac_sha256(
        &[0xaa; 131],
        b"Test Using Larger Than Block-Size Key - Hash Key First",
    );
    assert_eq!(
        hex(&long),
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One request the receiver took as genuine.
#[derive(Debug, Clone)]
struct Received {
    /// `webhook-id`.
    id: String,
    /// The body, parsed.
    envelope: Value,
    /// What the receiver answered (200, or 503 while failing).
    status: u16,
}

/// What a receiver does and what it saw, shared with its responder.
#[derive(Default)]
struct Behaviour {
    key: Vec<u8>,
    /// Requests still to fail (503) before the receiver answers 200.
    fail_next: AtomicUsize,
    /// Fails (503) every request while set.
    failing: AtomicBool,
    /// How long each answer is held back, in milliseconds.
    hold_ms: AtomicU64,
    received: Mutex<Vec<Received>>,
    /// Why each request that did not verify was refused.
    refused: Mutex<Vec<String>>,
}

struct Answer(Arc<Behaviour>);

impl Respond for Answer {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let behaviour = &self.0;
        match verify(&behaviour.key, request) {
            Err(why) => {
                behaviour.refused.lock().unwrap().push(why);
                ResponseTemplate::new(401)
            }
            Ok((id, envelope)) => {
                let fail = behaviour.failing.load(Ordering::SeqCst)
                    || behaviour
                        .fail_next
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                        .is_ok();
                let status = if fail { 503 } else { 200 };
                behaviour.received.lock().unwrap().push(Received {
                    id,
                    envelope,
                    status,
                });
                ResponseTemplate::new(status).set_delay(Duration::from_millis(
                    behaviour.hold_ms.load(Ordering::SeqCst),
                ))
            }
        }
    }
}

/// Verifies a request as Standard Webhooks specifies; its id and parsed body.
fn verify(key: &[u8], request: &Request) -> Result<(String, Value), String> {
    let header = |name: &str| {
        request
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| format!("no {name} header"))
    };
    let id = header("webhook-id")?;
    let timestamp = header("webhook-timestamp")?;
    let signatures = header("webhook-signature")?;
    let sent: i64 = timestamp
        .parse()
        .map_err(|_| format!("{id}: webhook-timestamp {timestamp:?} is not a number"))?;
    if (chrono::Utc::now().timestamp() - sent).abs() > 5 * 60 {
        return Err(format!("{id}: webhook-timestamp {sent} is not recent"));
    }
    let mut signed = format!("{id}.{timestamp}.").into_bytes();
    signed.extend_from_slice(&request.body);
    let expected = STANDARD.encode(hmac_sha256(key, &signed));
    if !signatures
        .split(' ')
        .any(|s| s.strip_prefix("v1,") == Some(expected.as_str()))
    {
        return Err(format!("{id}: no signature matches ({signatures})"));
    }
    let content_type = header("content-type")?;
    if content_type != "application/json" {
        return Err(format!("{id}: content-type {content_type}"));
    }
    let envelope = serde_json::from_slice(&request.body)
        .map_err(|e| format!("{id}: the body is not JSON: {e}"))?;
    Ok((id, envelope))
}

/// A webhook receiver on a free loopback port.
struct Receiver {
    server: MockServer,
    behaviour: Arc<Behaviour>,
}

impl Receiver {
    async fn start() -> Self {
        // The key as a consumer gets it: from the secret it was given.
        let key = STANDARD
            .decode(secret().strip_prefix("whsec_").unwrap())
            .unwrap();
        let behaviour = Arc::new(Behaviour {
            key,
            ..Behaviour::default()
        });
        let server = MockServer::builder().start().await;
        Mock::given(wiremock::matchers::any())
            .respond_with(Answer(Arc::clone(&behaviour)))
            .mount(&server)
            .await;
        Self { server, behaviour }
    }

    fn url(&self) -> String {
        format!("{}/hooks/ses", self.server.uri())
    }

    /// Fails the next `n` requests.
    fn fail_next(&self, n: usize) {
        self.behaviour.fail_next.store(n, Ordering::SeqCst);
    }

    fn set_failing(&self, failing: bool) {
        self.behaviour.failing.store(failing, Ordering::SeqCst);
    }

    fn hold(&self, hold: Duration) {
        self.behaviour
            .hold_ms
            .store(u64::try_from(hold.as_millis()).unwrap(), Ordering::SeqCst);
    }

    /// Every genuine request so far, in the order they came.
    fn received(&self) -> Vec<Received> {
        self.behaviour.received.lock().unwrap().clone()
    }

    /// How many times each id was answered 200.
    fn accepted(&self) -> BTreeMap<String, usize> {
        count_accepted(&self.received())
    }

    /// Waits until `done` holds for what was received.
    async fn wait_until(&self, what: &str, done: impl Fn(&[Received]) -> bool) {
        let start = Instant::now();
        while !done(&self.received()) {
            assert!(
                start.elapsed() < DEADLINE,
                "the receiver waited in vain for {what}; it got {:#?}",
                self.received()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Asserts that every request it got was signed and timed as Standard Webhooks requires.
    fn assert_every_request_genuine(&self) {
        let refused = self.behaviour.refused.lock().unwrap();
        assert!(refused.is_empty(), "requests refused: {refused:#?}");
    }
}

fn count_accepted(received: &[Received]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for r in received.iter().filter(|r| r.status == 200) {
        *counts.entry(r.id.clone()).or_default() += 1;
    }
    counts
}

/// Checks every envelope: exactly `id`, `type`, `timestamp` and `data`; its `id` is the
/// `webhook-id`; an event's `data.eventKey` is its id and `data.eventType` its type, a
/// change's id is `suppression-<n>`; and every copy of one id is the same envelope. One envelope
/// per id.
fn check_envelopes(received: &[Received]) -> BTreeMap<String, Value> {
    let mut by_id: BTreeMap<String, Value> = BTreeMap::new();
    for r in received {
        let e = &r.envelope;
        let keys: BTreeSet<&str> = e.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            BTreeSet::from(["data", "id", "timestamp", "type"]),
            "{e}"
        );
        assert_eq!(
            e["id"],
            r.id.as_str(),
            "the envelope's id is the webhook-id"
        );
        let kind = e["type"].as_str().unwrap();
        if kind.starts_with("suppression.") {
            assert!(r.id.starts_with("suppression-"), "{e}");
            assert_eq!(e["timestamp"], e["data"]["createdAt"], "{e}");
        } else {
            assert_eq!(e["data"]["eventKey"], r.id.as_str(), "{e}");
            assert_eq!(e["data"]["eventType"], kind, "{e}");
            assert_eq!(e["timestamp"], e["data"]["eventTime"], "{e}");
        }
        match by_id.get(&r.id) {
            Some(first) => assert_eq!(first, e, "a redelivery of {} differs", r.id),
            None => {
                by_id.insert(r.id.clone(), e.clone());
            }
        }
    }
    by_id
}

// ---------------------------------------------------------------------------------------------
// The server's side.

/// A webhook sink to `url` with the retry `schedule` (short delays for the tests).
fn webhook_sink(name: &str, url: &str, schedule: &[u64]) -> SinkSettings {
    SinkSettings {
        name: name.into(),
        kind: "webhook".into(),
        url: url.into(),
        secret: Some(SinkSecret::from_env(&secret())),
        allow_http: Some(true),
        timeout_secs: Some(5),
        retry_schedule_secs: Some(schedule.to_vec()),
        ..SinkSettings::default()
    }
}

/// A hard bounce of `message_id` to two recipients.
fn bounce(message_id: &str, recipients: [&str; 2]) -> String {
    let bounced: Vec<Value> = recipients
        .iter()
        .map(|r| {
            json!({"emailAddress": r, "action": "failed", "status": "5.1.1",
                        "diagnosticCode": "smtp; 550 5.1.1 user unknown"})
        })
        .collect();
    json!({
        "notificationType": "Bounce",
        "mail": {"timestamp": "2026-11-27T11:59:58.000Z", "messageId": message_id,
                 "source": "s@example.com", "destination": recipients},
        "bounce": {"bounceType": "Permanent", "bounceSubType": "General",
                   "bouncedRecipients": bounced, "timestamp": "2026-11-27T11:59:59.000Z",
                   "feedbackId": format!("fb-{message_id}")}
    })
    .to_string()
}

pub(crate) fn delivery(message_id: &str, recipients: &[&str]) -> String {
    json!({
        "notificationType": "Delivery",
        "mail": {"timestamp": "2026-11-27T11:59:58.000Z", "messageId": message_id,
                 "source": "s@example.com", "destination": recipients},
        "delivery": {"timestamp": "2026-11-27T11:59:59.000Z", "recipients": recipients,
                     "smtpResponse": "250 ok", "processingTimeMillis": 10}
    })
    .to_string()
}

fn complaint(message_id: &str, recipient: &str) -> String {
    json!({
        "notificationType": "Complaint",
        "mail": {"timestamp": "2026-11-27T11:59:58.000Z", "messageId": message_id,
                 "source": "s@example.com", "destination": [recipient]},
        "complaint": {"complainedRecipients": [{"emailAddress": recipient}],
                      "timestamp": "2026-11-27T11:59:59.000Z",
                      "feedbackId": format!("fb-{message_id}"), "complaintFeedbackType": "abuse"}
    })
    .to_string()
}

/// The three messages most tests post: a hard bounce to a@ and b@, a delivery to c@ and a
/// complaint of d@: four events and three addresses put on the suppression list.
fn three_messages() -> [(String, u64); 3] {
    [
        (bounce("m-bounce", ["a@example.com", "b@example.com"]), 2),
        (delivery("m-delivery", &["c@example.com"]), 1),
        (complaint("m-complaint", "d@example.com"), 1),
    ]
}
const EVENTS: usize = 4;
const SUPPRESSED: [&str; 3] = ["a@example.com", "b@example.com", "d@example.com"];
const ENTRIES: usize = EVENTS + SUPPRESSED.len();

/// Posts each message in a fresh notification; asserts each stored its events.
async fn post_all(app: &TestApp, messages: &[(String, u64)]) {
    for (message, events) in messages {
        let (status, body) = app.post(&app.notification(message)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["processed"], *events, "{body}");
    }
}

/// Every entry of `sink` in the outbox (`GET /api/v1/deliveries`), oldest first; `state` too
/// when given.
async fn outbox(app: &TestApp, token: &str, sink: &str, state: Option<&str>) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/api/v1/deliveries?sink={sink}&limit=1000");
        if let Some(state) = state {
            path.push_str(&format!("&state={state}"));
        }
        if let Some(cursor) = &cursor {
            path.push_str(&format!("&cursor={cursor}"));
        }
        let response = app
            .api(reqwest::Method::GET, &path, Some(token))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let page: Value = response.json().await.unwrap();
        items.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return items,
        }
    }
}

/// Polls the sink's outbox until `done` holds for its entries; the entries.
async fn wait_for_outbox(
    app: &TestApp,
    token: &str,
    sink: &str,
    what: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let entries = outbox(app, token, sink, None).await;
        if done(&entries) {
            return entries;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "{sink}: waited in vain for {what}; the outbox: {entries:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn all_in(state: &'static str) -> impl Fn(&[Value]) -> bool {
    move |entries| !entries.is_empty() && entries.iter().all(|e| e["state"] == state)
}

fn ids_of(entries: &[Value]) -> BTreeSet<String> {
    entries
        .iter()
        .map(|e| e["eventId"].as_str().unwrap().to_owned())
        .collect()
}

/// Polls `/metrics` until it has the line `line`.
async fn wait_for_metric(app: &TestApp, line: &str) {
    let start = Instant::now();
    loop {
        let metrics = app.metrics().await;
        if metrics.lines().any(|l| l == line) {
            return;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "no `{line}` in the metrics: {}",
            metrics
                .lines()
                .filter(|l| l.contains("outbox") || l.contains("delivery"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn fast(settings: &mut app::Settings) {
    settings.outbox.poll_interval_ms = 50;
}

// ---------------------------------------------------------------------------------------------
// One server.

on_both_backends!(
    every_stored_event_and_suppression_reaches_the_webhook_once,
    each_sink_gets_exactly_the_types_it_takes,
    a_sink_down_for_its_first_attempts_gets_everything_on_the_retries,
    dead_entries_are_visible_and_a_replay_delivers_them_with_the_same_ids,
    an_event_erased_before_its_delivery_is_never_delivered,
);

async fn every_stored_event_and_suppression_reaches_the_webhook_once(backend: Backend) {
    let receiver = Receiver::start().await;
    let app = spawn_on(backend, |s| {
        s.sinks = vec![webhook_sink("crm", &receiver.url(), &[1, 1])];
        fast(s);
    })
    .await;
    let token = app.token("ops", Scope::Write).await;

    let messages = three_messages();
    post_all(&app, &messages).await;
    // SNS delivers the bounce again, and SES the same bounce under another SNS message: both
    // are duplicates, stored once, and add nothing to deliver.
    let again = app.notification(&messages[0].0);
    for _ in 0..2 {
        let (status, body) = app.post(&again).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["duplicates"], 2, "{body}");
    }

    let entries = wait_for_outbox(
        &app,
        &token,
        "crm",
        "every entry delivered",
        all_in("delivered"),
    )
    .await;
    assert_eq!(entries.len(), ENTRIES, "{entries:#?}");
    let stored: BTreeSet<String> = app.events().into_iter().map(|e| e.event_key).collect();
    assert_eq!(stored.len(), EVENTS);
    let received = receiver.received();
    let envelopes = check_envelopes(&received);
    assert_eq!(
        envelopes.keys().cloned().collect::<BTreeSet<_>>(),
        ids_of(&entries)
    );
    assert!(
        receiver.accepted().values().all(|n| *n == 1),
        "each entry once to a healthy receiver: {:?}",
        receiver.accepted()
    );
    assert_eq!(received.len(), ENTRIES, "no failed attempt");
    // One envelope per stored event, its data as the events API lists it.
    let listed: Value = app
        .api(
            reqwest::Method::GET,
            "/api/v1/events?limit=1000",
            Some(&token),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let listed = listed["items"].as_array().unwrap();
    assert_eq!(listed.len(), EVENTS);
    for event in listed {
        let key = event["eventKey"].as_str().unwrap();
        assert!(stored.contains(key));
        assert_eq!(&envelopes[key]["data"], event, "{key}");
    }
    // And one suppression.added per address the bounce and the complaint suppressed.
    let mut added: Vec<(String, String)> = envelopes
        .values()
        .filter(|e| e["type"] != "email_bounce" && e["type"].as_str().unwrap().contains('.'))
        .map(|e| {
            assert_eq!(e["type"], "suppression.added", "{e}");
            (
                e["data"]["address"].as_str().unwrap().to_owned(),
                e["data"]["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    added.sort();
    assert_eq!(
        added,
        [
            ("a@example.com".into(), "hard_bounce".into()),
            ("b@example.com".into(), "hard_bounce".into()),
            ("d@example.com".into(), "complaint".into()),
        ]
    );
    receiver.assert_every_request_genuine();
}

async fn each_sink_gets_exactly_the_types_it_takes(backend: Backend) {
    let bounces = Receiver::start().await;
    let suppressions = Receiver::start().await;
    let everything = Receiver::start().await;
    let app = spawn_on(backend, |s| {
        let mut only_bounces = webhook_sink("bounces", &bounces.url(), &[1]);
        only_bounces.event_types = Some(vec!["email_bounce".into()]);
        let mut only_changes = webhook_sink("suppressions", &suppressions.url(), &[1]);
        only_changes.event_types = Some(vec![
            "suppression.added".into(),
            "suppression.removed".into(),
        ]);
        s.sinks = vec![
            only_bounces,
            only_changes,
            webhook_sink("everything", &everything.url(), &[1]),
        ];
        fast(s);
    })
    .await;
    let token = app.token("ops", Scope::Write).await;

    post_all(&app, &three_messages()).await;
    // An operator takes the complainer off the list: a suppression.removed.
    let response = app
        .api(
            reqwest::Method::DELETE,
            "/api/v1/suppressions/d@example.com",
            Some(&token),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);

    let mut by_sink = BTreeMap::new();
    for (sink, receiver) in [
        ("bounces", &bounces),
        ("suppressions", &suppressions),
        ("everything", &everything),
    ] {
        let entries = wait_for_outbox(
            &app,
            &token,
            sink,
            "every entry delivered",
            all_in("delivered"),
        )
        .await;
        let envelopes = check_envelopes(&receiver.received());
        assert_eq!(
            envelopes.keys().cloned().collect::<BTreeSet<_>>(),
            ids_of(&entries),
            "{sink}"
        );
        assert!(receiver.accepted().values().all(|n| *n == 1), "{sink}");
        receiver.assert_every_request_genuine();
        let types: Vec<String> = envelopes
            .values()
            .map(|e| e["type"].as_str().unwrap().to_owned())
            .collect();
        by_sink.insert(sink, types);
    }
    assert_eq!(by_sink["bounces"], ["email_bounce", "email_bounce"]);
    let mut changes = by_sink["suppressions"].clone();
    changes.sort();
    assert_eq!(
        changes,
        [
            "suppression.added",
            "suppression.added",
            "suppression.added",
            "suppression.removed"
        ]
    );
    let removed: Vec<Value> = check_envelopes(&suppressions.received())
        .into_values()
        .filter(|e| e["type"] == "suppression.removed")
        .collect();
    assert_eq!(removed[0]["data"]["address"], "d@example.com");
    assert_eq!(removed[0]["data"]["reason"], "complaint");
    let mut all = by_sink["everything"].clone();
    all.sort();
    assert_eq!(
        all,
        [
            "email_bounce",
            "email_bounce",
            "email_delivered",
            "email_spam_report",
            "suppression.added",
            "suppression.added",
            "suppression.added",
            "suppression.removed"
        ]
    );
    // The events the bounce sink got are the stored bounces.
    let stored_bounces: BTreeSet<String> = app
        .events()
        .into_iter()
        .filter(|e| e.event_type == "email_bounce")
        .map(|e| e.event_key)
        .collect();
    assert_eq!(
        bounces.accepted().keys().cloned().collect::<BTreeSet<_>>(),
        stored_bounces
    );
}

async fn a_sink_down_for_its_first_attempts_gets_everything_on_the_retries(backend: Backend) {
    let receiver = Receiver::start().await;
    let failures = 3;
    receiver.fail_next(failures);
    let app = spawn_on(backend, |s| {
        s.sinks = vec![webhook_sink("crm", &receiver.url(), &[1, 1, 1, 1])];
        fast(s);
    })
    .await;
    let token = app.token("ops", Scope::Write).await;

    post_all(&app, &three_messages()).await;

    let entries = wait_for_outbox(
        &app,
        &token,
        "crm",
        "every entry delivered",
        all_in("delivered"),
    )
    .await;
    assert_eq!(entries.len(), ENTRIES);
    let received = receiver.received();
    let envelopes = check_envelopes(&received);
    assert_eq!(
        envelopes.keys().cloned().collect::<BTreeSet<_>>(),
        ids_of(&entries)
    );
    assert!(receiver.accepted().values().all(|n| *n == 1));
    assert_eq!(
        received.iter().filter(|r| r.status == 503).count(),
        failures
    );
    // Every attempt is in the outbox: one per request, one more for each failure, and each
    // entry that failed says why.
    let attempts: Vec<u64> = entries
        .iter()
        .map(|e| e["attempts"].as_u64().unwrap())
        .collect();
    assert_eq!(attempts.iter().sum::<u64>(), received.len() as u64);
    assert_eq!(
        attempts.iter().map(|a| a - 1).sum::<u64>(),
        failures as u64,
        "{entries:#?}"
    );
    for entry in entries.iter().filter(|e| e["attempts"].as_u64() > Some(1)) {
        let error = entry["lastError"].as_str().unwrap();
        assert!(error.contains("503"), "{entry}");
    }
    wait_for_metric(
        &app,
        &format!(
            "ses_webhook_delivery_attempts_total{{sink=\"crm\",result=\"retried\"}} {failures}"
        ),
    )
    .await;
    wait_for_metric(
        &app,
        &format!(
            "ses_webhook_delivery_attempts_total{{sink=\"crm\",result=\"delivered\"}} {ENTRIES}"
        ),
    )
    .await;
    receiver.assert_every_request_genuine();
}

async fn dead_entries_are_visible_and_a_replay_delivers_them_with_the_same_ids(backend: Backend) {
    let receiver = Receiver::start().await;
    receiver.set_failing(true);
    let app = spawn_on(backend, |s| {
        s.sinks = vec![webhook_sink("crm", &receiver.url(), &[1])];
        fast(s);
    })
    .await;
    let token = app.token("ops", Scope::Write).await;

    post_all(&app, &three_messages()).await;

    let entries = wait_for_outbox(&app, &token, "crm", "every entry dead", all_in("dead")).await;
    assert_eq!(entries.len(), ENTRIES);
    for entry in &entries {
        assert_eq!(entry["attempts"], 2, "{entry}");
        assert!(
            entry["lastError"].as_str().unwrap().contains("503"),
            "{entry}"
        );
    }
    let dead = outbox(&app, &token, "crm", Some("dead")).await;
    assert_eq!(ids_of(&dead), ids_of(&entries));
    assert!(
        outbox(&app, &token, "crm", Some("pending"))
            .await
            .is_empty()
    );
    // The gauge, once the backlog was read again (every 10 seconds).
    wait_for_metric(
        &app,
        &format!("ses_webhook_outbox_dead{{sink=\"crm\"}} {ENTRIES}"),
    )
    .await;
    assert!(receiver.accepted().is_empty());
    let failed = receiver.received();
    assert_eq!(failed.len(), 2 * ENTRIES);

    // The receiver is healed; the operator replays what died.
    receiver.set_failing(false);
    let response = app
        .api(
            reqwest::Method::POST,
            "/api/v1/deliveries/replay",
            Some(&token),
        )
        .json(&json!({"sink": "crm", "state": "dead"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({"replayed": ENTRIES, "notFound": []}));

    let entries = wait_for_outbox(
        &app,
        &token,
        "crm",
        "every entry delivered",
        all_in("delivered"),
    )
    .await;
    assert_eq!(ids_of(&entries), ids_of(&dead));
    let accepted = receiver.accepted();
    assert_eq!(
        accepted.keys().cloned().collect::<BTreeSet<_>>(),
        ids_of(&dead)
    );
    assert!(accepted.values().all(|n| *n == 1), "{accepted:?}");
    // The replayed copies are the envelopes that failed, id for id.
    check_envelopes(&receiver.received());

    // One entry again by its id; an id that names nothing is reported.
    let one = ids_of(&dead).into_iter().next().unwrap();
    let response = app
        .api(
            reqwest::Method::POST,
            "/api/v1/deliveries/replay",
            Some(&token),
        )
        .json(&json!({"sink": "crm", "eventIds": [one, "no-such-event"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({"replayed": 1, "notFound": ["no-such-event"]}));
    receiver
        .wait_until("the entry replayed by id", |r| {
            count_accepted(r).get(&one) == Some(&2)
        })
        .await;
    check_envelopes(&receiver.received());
    receiver.assert_every_request_genuine();
}

async fn an_event_erased_before_its_delivery_is_never_delivered(backend: Backend) {
    let receiver = Receiver::start().await;
    receiver.set_failing(true);
    let app = spawn_on(backend, |s| {
        s.sinks = vec![webhook_sink("crm", &receiver.url(), &[1, 1, 1, 1, 1])];
        fast(s);
    })
    .await;
    let token = app.token("ops", Scope::Write).await;
    post_all(&app, &three_messages()).await;
    let erased = app
        .events()
        .into_iter()
        .find(|e| e.recipient.as_deref() == Some("c@example.com"))
        .unwrap()
        .event_key;

    // The delivery's recipient is erased while the sink is down; then the sink comes back.
    let response = app
        .api(
            reqwest::Method::DELETE,
            "/api/v1/recipients/c@example.com",
            Some(&token),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    receiver.set_failing(false);

    let entries = wait_for_outbox(&app, &token, "crm", "every entry settled", |entries| {
        !entries.is_empty() && entries.iter().all(|e| e["state"] != "pending")
    })
    .await;
    assert_eq!(entries.len(), ENTRIES);
    for entry in &entries {
        let dead = entry["eventId"] == erased.as_str();
        assert_eq!(
            entry["state"],
            if dead { "dead" } else { "delivered" },
            "{entry}"
        );
    }
    let accepted = receiver.accepted();
    assert!(!accepted.contains_key(&erased), "{accepted:?}");
    assert_eq!(accepted.len(), ENTRIES - 1);
    assert!(accepted.values().all(|n| *n == 1), "{accepted:?}");
    check_envelopes(&receiver.received());
    receiver.assert_every_request_genuine();
}

// ---------------------------------------------------------------------------------------------
// Several servers, and start-up.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_sharing_postgresql_deliver_each_entry_exactly_once() {
    let receiver = Receiver::start().await;
    let app = spawn_app_with(|s| {
        s.sinks = vec![webhook_sink("crm", &receiver.url(), &[1, 1])];
        fast(s);
    })
    .await;
    let second = app.second_server().await;
    let token = app.token("ops", Scope::Write).await;

    // Deliveries to three recipients each, half of them through each server.
    let messages = 16;
    for i in 0..messages {
        let recipients = [0, 1, 2].map(|r| format!("r{r}-{i}@example.com"));
        let message = delivery(
            &format!("two-servers-{i}"),
            &recipients.each_ref().map(String::as_str),
        );
        let body = app.notification(&message).to_string();
        let target = if i % 2 == 0 {
            app.webhook_url()
        } else {
            second.clone()
        };
        let response = app
            .client
            .post(target)
            .header("content-type", "text/plain; charset=UTF-8")
            .header("x-amz-sns-message-type", "Notification")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }

    let entries = wait_for_outbox(
        &app,
        &token,
        "crm",
        "every entry delivered",
        all_in("delivered"),
    )
    .await;
    assert_eq!(entries.len(), 3 * messages);
    let stored: BTreeSet<String> = app.events().into_iter().map(|e| e.event_key).collect();
    assert_eq!(ids_of(&entries), stored);
    let received = receiver.received();
    let envelopes = check_envelopes(&received);
    assert_eq!(envelopes.keys().cloned().collect::<BTreeSet<_>>(), stored);
    let accepted = receiver.accepted();
    assert!(
        accepted.values().all(|n| *n == 1),
        "an entry delivered twice: {:?}",
        accepted.iter().filter(|(_, n)| **n > 1).collect::<Vec<_>>()
    );
    assert_eq!(received.len(), 3 * messages);
    receiver.assert_every_request_genuine();
}

#[tokio::test]
async fn an_invalid_sink_stops_start_up_naming_its_key() {
    // In the server: an event type that does not exist.
    let file = TestSqliteFile::new();
    let mut settings = app::Settings::default();
    settings.server.host = "127.0.0.1".into();
    settings.server.port = 0;
    settings.database.url = file.url().to_owned();
    let mut sink = webhook_sink("crm", "https://crm.example.com/hooks", &[1]);
    sink.event_types = Some(vec!["email_bounced".into()]);
    settings.sinks = vec![sink];
    let Err(error) = app::Application::build(&settings).await else {
        panic!("the server started with an unknown event type");
    };
    let error = format!("{error:#}");
    assert!(error.contains("sinks.crm.event_types"), "{error}");

    // The binary, configured in a file: an http URL without allow_http.
    let binary = server_binary().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("default.toml"),
        format!(
            "[database]\nurl = \"sqlite://{}/ses-webhook.db\"\n\n\
             [[sinks]]\nname = \"crm\"\ntype = \"webhook\"\nurl = \"http://crm.example.com/hooks\"\n\
             secret = \"{}\"\n",
            dir.path().display(),
            secret()
        ),
    )
    .unwrap();
    let mut child = server_command(&binary, dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            panic!("the server started with an http sink URL and no allow_http");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success());
    assert!(stderr.contains("sinks.crm.url"), "{stderr}");
    assert!(stderr.contains("allow_http"), "{stderr}");
}

#[tokio::test]
async fn an_unreachable_nats_server_does_not_stop_the_server() {
    let nobody = free_port();
    let app = spawn_app_with(|s| {
        s.sinks = vec![SinkSettings {
            name: "events".into(),
            kind: "nats".into(),
            url: format!("nats://127.0.0.1:{nobody}"),
            stream: Some("SES_EVENTS_UNREACHABLE".into()),
            timeout_secs: Some(1),
            retry_schedule_secs: Some(vec![1, 1, 1, 1, 1]),
            ..SinkSettings::default()
        }];
        fast(s);
    })
    .await;
    let token = app.token("ops", Scope::Write).await;

    assert_eq!(app.get("/healthz").await.status(), 200);
    post_all(&app, &[(delivery("m-nats", &["c@example.com"]), 1)]).await;
    // Its entry waits, failed attempts and all, for the server to come.
    let entries = wait_for_outbox(&app, &token, "events", "a failed attempt", |entries| {
        entries.len() == 1 && entries[0]["attempts"].as_u64() > Some(0)
    })
    .await;
    assert_eq!(entries[0]["state"], "pending", "{entries:#?}");
    assert!(entries[0]["lastError"].is_string(), "{entries:#?}");
    assert_eq!(app.get("/healthz").await.status(), 200);
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

// ---------------------------------------------------------------------------------------------
// The real binary, killed mid-delivery.

/// The `ses-webhook` binary, built once per test run (cargo does nothing when it is up to
/// date): the integration suite is another package, so cargo does not build it for us.
pub(crate) async fn server_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    tokio::task::spawn_blocking(|| BINARY.get_or_init(build_server_binary).clone())
        .await
        .unwrap()
}

fn build_server_binary() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .args([
            "build",
            "--offline",
            "--package",
            "ses-webhook-app",
            "--bin",
            "ses-webhook",
            "--message-format=json",
        ])
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "building ses-webhook failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "ses-webhook")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .expect("cargo names the built ses-webhook")
}

/// `ses-webhook` (serving) with the configuration in `config_dir` and none from the
/// environment.
pub(crate) fn server_command(binary: &Path, config_dir: &Path) -> Command {
    let mut command = Command::new(binary);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("SES_WEBHOOK") {
            command.env_remove(name);
        }
    }
    command
        .env("SES_WEBHOOK_CONFIG_DIR", config_dir)
        .current_dir(config_dir);
    command
}

/// A `ses-webhook` process; killed when dropped.
struct RealServer {
    child: Child,
    address: String,
}

impl RealServer {
    /// Writes `default.toml` (a webhook sink `crm` to `sink_url`) in `dir` and starts the
    /// server on a free port; returns once it answers `/healthz`.
    async fn start(binary: &Path, dir: &Path, database_url: &str, sink_url: &str) -> Self {
        let port = free_port();
        let certs = dir.join("certs");
        std::fs::create_dir_all(&certs).unwrap();
        sns_verify::testing::TestSigner::shared()
            .write_pinned(&certs)
            .unwrap();
        // The claim of a webhook sink's pass lasts (ceil(relay_batch / concurrency) + 1) x
        // timeout_secs + 10 s = 14 s here: as short as the settings allow.
        let config = format!(
            "[server]\nhost = \"127.0.0.1\"\nport = {port}\nworkers = 1\n\n\
             [database]\nurl = \"{database_url}\"\nconnect_timeout_secs = 2\n\n\
             [sns]\ncert_dir = \"{}\"\nfetch_certificates = false\n\n\
             [log]\nlevel = \"warn\"\n\n\
             [outbox]\npoll_interval_ms = 50\nrelay_batch = 20\n\n\
             [[sinks]]\nname = \"crm\"\ntype = \"webhook\"\nurl = \"{sink_url}\"\n\
             secret = \"{}\"\nallow_http = true\ntimeout_secs = 2\nconcurrency = 20\n\
             retry_schedule_secs = [1, 1, 1, 1]\n",
            certs.display(),
            secret()
        );
        std::fs::write(dir.join("default.toml"), config).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("server.log"))
            .unwrap();
        let child = server_command(binary, dir)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut server = Self {
            child,
            address: format!("http://127.0.0.1:{port}"),
        };
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let start = Instant::now();
        loop {
            if let Some(status) = server.child.try_wait().unwrap() {
                panic!(
                    "ses-webhook exited ({status}): {}",
                    std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
                );
            }
            let healthy = client
                .get(format!("{}/healthz", server.address))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200);
            if healthy {
                return server;
            }
            assert!(start.elapsed() < DEADLINE, "ses-webhook did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Posts `message` as SNS does; asserts it stored `events` events.
    async fn post(&self, message: &str, events: u64) {
        let envelope = sns_verify::testing::TestSigner::shared().notification(
            TOPIC,
            &uuid::Uuid::new_v4().to_string(),
            message,
            None,
            sns_verify::SignatureVersion::V2,
        );
        let response = reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .post(format!("{}/api/rpc/webhooks/aws/ses", self.address))
            .header("content-type", "text/plain; charset=UTF-8")
            .header("x-amz-sns-message-type", "Notification")
            .body(envelope.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["processed"], events, "{body}");
    }

    /// SIGKILL: no shutdown, no settlement of what is in flight.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for RealServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(QueryableByName, Debug)]
struct OutboxRow {
    #[diesel(sql_type = Text)]
    entry_id: String,
    #[diesel(sql_type = Text)]
    state: String,
    #[diesel(sql_type = Integer)]
    attempts: i32,
}

fn outbox_rows(database_url: &str) -> Vec<OutboxRow> {
    diesel::sql_query("SELECT entry_id, state, attempts FROM outbox WHERE sink = 'crm' ORDER BY id")
        .load(&mut PgConnection::establish(database_url).unwrap())
        .unwrap()
}

/// This test waits for the killed server's claims to run out: 14 s at the least (the lease is
/// `(ceil(relay_batch / concurrency) + 1) x timeout_secs + 10 s`, and the 10 s are not
/// configurable), so it is the slowest of the module; the others take a few seconds each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_delivery_delivers_everything_again_after_a_restart() {
    let binary = server_binary().await;
    let db = TestDatabase::from_env();
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start().await;
    // Nothing is answered before the kill: every request is still in flight.
    receiver.hold(Duration::from_secs(120));
    let server = RealServer::start(&binary, dir.path(), db.url(), &receiver.url()).await;
    for (message, events) in three_messages() {
        server.post(&message, events).await;
    }
    receiver
        .wait_until("every entry in flight", |r| {
            r.iter().map(|r| &r.id).collect::<BTreeSet<_>>().len() == ENTRIES
        })
        .await;
    server.kill();
    let before_kill = receiver.received();
    let in_flight: BTreeSet<String> = before_kill.iter().map(|r| r.id.clone()).collect();
    assert!(
        outbox_rows(db.url())
            .iter()
            .all(|row| row.state == "pending"),
        "nothing was acknowledged before the kill"
    );

    // Started again on the same database, the receiver now answering at once.
    receiver.hold(Duration::ZERO);
    let server = RealServer::start(&binary, dir.path(), db.url(), &receiver.url()).await;
    // What is stored after the restart is delivered too.
    server
        .post(&delivery("m-after-restart", &["e@example.com"]), 1)
        .await;

    let start = Instant::now();
    // The lease (14 s) and then some.
    let deadline = Duration::from_secs(14) + DEADLINE;
    let rows = loop {
        let rows = outbox_rows(db.url());
        if rows.len() == ENTRIES + 1 && rows.iter().all(|r| r.state == "delivered") {
            break rows;
        }
        assert!(
            start.elapsed() < deadline,
            "not everything was delivered after the restart: {rows:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    drop(server);

    let all: BTreeSet<String> = rows.iter().map(|r| r.entry_id.clone()).collect();
    let received = receiver.received();
    let after_restart = &received[before_kill.len()..];
    let accepted = count_accepted(after_restart);
    assert_eq!(
        accepted.keys().cloned().collect::<BTreeSet<_>>(),
        all,
        "every entry delivered after the restart"
    );
    assert!(
        in_flight.iter().all(|id| accepted.contains_key(id)),
        "what was in flight at the kill is delivered again"
    );
    assert!(rows.iter().all(|r| r.attempts >= 1), "{rows:#?}");
    // Every copy, before and after the kill, is the same envelope under the same id.
    let envelopes = check_envelopes(&received);
    assert_eq!(envelopes.keys().cloned().collect::<BTreeSet<_>>(), all);
    receiver.assert_every_request_genuine();
}
