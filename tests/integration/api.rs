//! The authenticated API under `/api/v1` against the real server, on both backends where it is
//! about storage: every endpoint's happy path with its body checked field by field, every
//! documented 4xx, the suppression policy end to end through the webhook, tokens kept out of
//! the logs, and the API's metrics.

use std::collections::BTreeSet;

use base64::Engine as _;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use reqwest::Method;
use serde_json::{Value, json};
use test_support::{
    Backend, LogCapture, Scope, TestApp, assert_error, spawn_app, spawn_app_with, spawn_on,
};

const SUPPRESSIONS: &str = "/api/v1/suppressions";

/// `address` as a path segment: `+` as `%2B`, `@` as `%40`.
fn enc(address: &str) -> String {
    address
        .replace('+', "%2B")
        .replace('@', "%40")
        .replace(' ', "%20")
}

fn entry_path(address: &str) -> String {
    format!("{SUPPRESSIONS}/{}", enc(address))
}

/// Sends `method path` with `token` and an optional JSON body; the status and the JSON body
/// (`Value::Null` for an empty one).
async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut request = app.api(method, path, token);
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.expect("request sent");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    };
    (status, body)
}

fn time(value: &Value) -> DateTime<Utc> {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("not a time: {value}"));
    assert!(text.ends_with('Z'), "not UTC with a Z: {text}");
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

fn millis(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Asserts an entry field by field (`createdAt` only within `written`).
fn assert_entry(
    entry: &Value,
    address: &str,
    reason: &str,
    written: (DateTime<Utc>, DateTime<Utc>),
    expires_at: Option<&str>,
    note: Option<&str>,
) {
    let keys: BTreeSet<&str> = entry
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            "address",
            "reason",
            "createdAt",
            "expiresAt",
            "sesMessageId",
            "eventKey",
            "note"
        ]),
        "{entry}"
    );
    assert_eq!(entry["address"], address, "{entry}");
    assert_eq!(entry["reason"], reason, "{entry}");
    let created = time(&entry["createdAt"]);
    assert!(
        written.0 <= created && created <= written.1,
        "createdAt {created} not within {written:?}: {entry}"
    );
    assert_eq!(entry["expiresAt"], json!(expires_at), "{entry}");
    if reason == "manual" {
        assert_eq!(entry["sesMessageId"], Value::Null, "{entry}");
        assert_eq!(entry["eventKey"], Value::Null, "{entry}");
    }
    assert_eq!(entry["note"], json!(note), "{entry}");
}

/// An SES bounce notification for `recipient` (`Permanent` or `Transient`) at `at`.
fn bounce(ses_message_id: &str, recipient: &str, bounce_type: &str, at: DateTime<Utc>) -> String {
    json!({
        "notificationType": "Bounce",
        "mail": {"timestamp": millis(at - Duration::seconds(1)), "messageId": ses_message_id,
                 "source": "s@example.com", "destination": [recipient]},
        "bounce": {"bounceType": bounce_type, "bounceSubType": "General",
                   "bouncedRecipients": [{"emailAddress": recipient}],
                   "timestamp": millis(at), "feedbackId": format!("fb-{ses_message_id}")}
    })
    .to_string()
}

fn complaint(ses_message_id: &str, recipient: &str, feedback_type: &str) -> String {
    let at = Utc::now();
    json!({
        "notificationType": "Complaint",
        "mail": {"timestamp": millis(at - Duration::seconds(1)), "messageId": ses_message_id,
                 "source": "s@example.com", "destination": [recipient]},
        "complaint": {"complainedRecipients": [{"emailAddress": recipient}],
                      "timestamp": millis(at), "feedbackId": format!("fb-{ses_message_id}"),
                      "complaintFeedbackType": feedback_type}
    })
    .to_string()
}

/// Posts `message` in a fresh signed notification; asserts it was newly stored.
async fn deliver(app: &TestApp, message: &str) -> Value {
    let envelope = app.notification(message);
    let (status, body) = app.post(&envelope).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["processed"], 1, "{body}");
    envelope
}

// ---------------------------------------------------------------------------------------------
// 1. Every endpoint, happy path.

async fn every_endpoint_answers_with_the_documented_bodies(backend: Backend) {
    let app = spawn_on(backend, |_| {}).await;
    let write = app.token("crm", Scope::Write).await;
    let read = app.token("mailer", Scope::Read).await;
    let hard_at = Utc::now();
    deliver(
        &app,
        &bounce("m-list-hard", "hard@example.com", "Permanent", hard_at),
    )
    .await;

    // PUT creates (201), keeping the address as given.
    let before = Utc::now();
    let (status, created) = call(
        &app,
        Method::PUT,
        &format!("{SUPPRESSIONS}/User%2Btag@Example.com"),
        Some(&write),
        Some(&json!({"note": "asked to stop"})),
    )
    .await;
    let after = Utc::now();
    assert_eq!(status, 201, "{created}");
    assert_entry(
        &created,
        "User+tag@Example.com",
        "manual",
        (before, after),
        None,
        Some("asked to stop"),
    );

    // PUT again under another case replaces (200), keeping the form first seen.
    let before = Utc::now();
    let (status, replaced) = call(
        &app,
        Method::PUT,
        &format!("{SUPPRESSIONS}/user%2Btag%40example.com"),
        Some(&write),
        Some(&json!({"note": "again", "expiresAt": "2099-01-01T00:00:00Z"})),
    )
    .await;
    let after = Utc::now();
    assert_eq!(status, 200, "{replaced}");
    assert_entry(
        &replaced,
        "User+tag@Example.com",
        "manual",
        (before, after),
        Some("2099-01-01T00:00:00.000000Z"),
        Some("again"),
    );

    // GET (a read token) gives the entry as the PUT answered it.
    let (status, got) = call(
        &app,
        Method::GET,
        &entry_path("USER+TAG@example.COM"),
        Some(&read),
        None,
    )
    .await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got, replaced);
    let (status, body) = call(
        &app,
        Method::GET,
        &entry_path("nobody@example.com"),
        Some(&read),
        None,
    )
    .await;
    assert_error(
        status,
        &body,
        404,
        "not_suppressed",
        "GET of an address never listed",
    );

    // check: only the suppressed ones, matched without regard to case or spaces, once each.
    let (status, checked) = call(
        &app,
        Method::POST,
        &format!("{SUPPRESSIONS}/check"),
        Some(&read),
        Some(&json!({"addresses": ["USER+TAG@example.com", "nobody@example.com", " user+tag@EXAMPLE.com ", "Hard@Example.COM"]})),
    )
    .await;
    assert_eq!(status, 200, "{checked}");
    assert_eq!(checked.as_object().unwrap().len(), 1, "{checked}");
    let mut suppressed: Vec<Value> = checked["suppressed"].as_array().unwrap().clone();
    suppressed.sort_by_key(|e| e["address"].as_str().unwrap().to_ascii_lowercase());
    assert_eq!(suppressed.len(), 2, "{checked}");
    assert_eq!(suppressed[1], replaced);
    assert_eq!(suppressed[0]["address"], "hard@example.com");
    assert_eq!(suppressed[0]["reason"], "hard_bounce");

    // The list, newest first.
    for address in ["a@example.com", "b@example.com", "c@example.com"] {
        let (status, body) = call(
            &app,
            Method::PUT,
            &entry_path(address),
            Some(&write),
            Some(&json!({})),
        )
        .await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, page) = call(&app, Method::GET, SUPPRESSIONS, Some(&read), None).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page.as_object().unwrap().len(), 2, "{page}");
    assert_eq!(page["nextCursor"], Value::Null, "{page}");
    let listed: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["address"].as_str().unwrap())
        .collect();
    let all = [
        "c@example.com",
        "b@example.com",
        "a@example.com",
        "User+tag@Example.com",
        "hard@example.com",
    ];
    assert_eq!(listed, all);
    assert_eq!(page["items"][3], replaced);
    let times: Vec<DateTime<Utc>> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| time(&e["createdAt"]))
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "{times:?}");

    // limit, and paging by cursor while new entries are written between pages.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            None => format!("{SUPPRESSIONS}?limit=2"),
            Some(c) => format!("{SUPPRESSIONS}?limit=2&cursor={c}"),
        };
        let (status, page) = call(&app, Method::GET, &path, Some(&read), None).await;
        assert_eq!(status, 200, "{page}");
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2, "{page}");
        seen.extend(
            items
                .iter()
                .map(|e| e["address"].as_str().unwrap().to_owned()),
        );
        pages += 1;
        assert!(pages < 10, "paging does not end: {seen:?}");
        let new = format!("new{pages}@example.com");
        let (status, _) = call(
            &app,
            Method::PUT,
            &entry_path(&new),
            Some(&write),
            Some(&json!({})),
        )
        .await;
        assert_eq!(status, 201);
        match page["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, all, "a page repeated or skipped an entry");
    assert!(pages >= 3, "limit=2 over 5 entries took {pages} pages");

    // reason filter.
    let (status, page) = call(
        &app,
        Method::GET,
        &format!("{SUPPRESSIONS}?reason=hard_bounce"),
        Some(&read),
        None,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{page}");
    assert_eq!(items[0]["address"], "hard@example.com");
    assert_eq!(items[0]["reason"], "hard_bounce");
    let (status, page) = call(
        &app,
        Method::GET,
        &format!("{SUPPRESSIONS}?reason=manual&limit=1000"),
        Some(&read),
        None,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["reason"] == "manual"),
        "{page}"
    );
    assert_eq!(page["items"].as_array().unwrap().len(), 4 + pages, "{page}");

    // since filter: entries written at or after b's.
    let (_, b) = call(
        &app,
        Method::GET,
        &entry_path("b@example.com"),
        Some(&read),
        None,
    )
    .await;
    let since = b["createdAt"].as_str().unwrap();
    let (status, page) = call(
        &app,
        Method::GET,
        &format!("{SUPPRESSIONS}?since={since}"),
        Some(&read),
        None,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    let listed: BTreeSet<String> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["address"].as_str().unwrap().to_owned())
        .collect();
    let mut expected: BTreeSet<String> =
        (1..=pages).map(|p| format!("new{p}@example.com")).collect();
    expected.insert("b@example.com".into());
    expected.insert("c@example.com".into());
    assert_eq!(listed, expected);

    // DELETE: 204 with no body, then the entry is gone, and a second DELETE is a 404.
    let (status, body) = call(
        &app,
        Method::DELETE,
        &entry_path("user+TAG@example.com"),
        Some(&write),
        None,
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(body, Value::Null);
    let (status, body) = call(
        &app,
        Method::GET,
        &entry_path("User+tag@Example.com"),
        Some(&read),
        None,
    )
    .await;
    assert_error(status, &body, 404, "not_suppressed", "GET after DELETE");
    let (status, body) = call(
        &app,
        Method::DELETE,
        &entry_path("User+tag@Example.com"),
        Some(&write),
        None,
    )
    .await;
    assert_error(status, &body, 404, "not_suppressed", "second DELETE");

    // history: added, added, removed, by the token, oldest first.
    let (status, history) = call(
        &app,
        Method::GET,
        &format!("{}/history", entry_path("user+tag@example.com")),
        Some(&read),
        None,
    )
    .await;
    assert_eq!(status, 200, "{history}");
    assert_eq!(history.as_object().unwrap().len(), 1, "{history}");
    let items = history["items"].as_array().unwrap();
    assert_eq!(items.len(), 3, "{history}");
    let actions: Vec<&str> = items
        .iter()
        .map(|i| i["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["added", "added", "removed"]);
    for item in items {
        assert_eq!(item["by"], "token:crm", "{item}");
        assert_eq!(item["reason"], "manual", "{item}");
        assert_eq!(item["sesMessageId"], Value::Null, "{item}");
        assert_eq!(item["eventKey"], Value::Null, "{item}");
        let keys: BTreeSet<&str> = item
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            BTreeSet::from([
                "action",
                "reason",
                "by",
                "at",
                "expiresAt",
                "sesMessageId",
                "eventKey",
                "note"
            ]),
            "{item}"
        );
    }
    assert_eq!(items[0]["note"], "asked to stop");
    assert_eq!(items[0]["expiresAt"], Value::Null);
    assert_eq!(items[0]["at"], created["createdAt"]);
    assert_eq!(items[1]["note"], "again");
    assert_eq!(items[1]["expiresAt"], "2099-01-01T00:00:00.000000Z");
    assert_eq!(items[1]["at"], replaced["createdAt"]);
    let at: Vec<DateTime<Utc>> = items.iter().map(|i| time(&i["at"])).collect();
    assert!(at[0] < at[1] && at[1] < at[2], "{history}");
    let (status, empty) = call(
        &app,
        Method::GET,
        &format!("{}/history", entry_path("never@example.com")),
        Some(&read),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(empty, json!({"items": []}));
}

#[tokio::test]
async fn every_endpoint_answers_with_the_documented_bodies_on_postgres() {
    every_endpoint_answers_with_the_documented_bodies(Backend::Postgres).await;
}

#[tokio::test]
async fn every_endpoint_answers_with_the_documented_bodies_on_sqlite() {
    every_endpoint_answers_with_the_documented_bodies(Backend::Sqlite).await;
}

// ---------------------------------------------------------------------------------------------
// 2. Every documented 4xx.

async fn assert_unauthorized(app: &TestApp, request: reqwest::RequestBuilder, what: &str) {
    let _ = app;
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body: Value = response.json().await.unwrap();
    assert_error(status, &body, 401, "unauthorized", what);
    assert!(
        challenge.starts_with("Bearer"),
        "{what}: WWW-Authenticate {challenge:?}"
    );
}

#[tokio::test]
async fn no_or_bad_tokens_are_401_with_a_bearer_challenge() {
    let app = spawn_app().await;
    let write = app.token("crm", Scope::Write).await;
    let revoked = app.token("old", Scope::Write).await;
    let (status, _) = call(
        &app,
        Method::PUT,
        &entry_path("x@example.com"),
        Some(&revoked),
        Some(&json!({})),
    )
    .await;
    assert_eq!(status, 201, "the token works before it is revoked");
    app.revoke_token("old").await;
    let unknown = format!("sesw_{}", "A".repeat(43));
    let path = entry_path("x@example.com");
    let url = format!("{}{path}", app.address);

    assert_unauthorized(&app, app.client.get(&url), "no header").await;
    assert_unauthorized(
        &app,
        app.client
            .get(&url)
            .header("authorization", format!("Basic {write}")),
        "another scheme",
    )
    .await;
    assert_unauthorized(
        &app,
        app.client.get(&url).bearer_auth("not-a-token"),
        "malformed",
    )
    .await;
    assert_unauthorized(
        &app,
        app.client.get(&url).bearer_auth(&write[..write.len() - 1]),
        "truncated",
    )
    .await;
    assert_unauthorized(&app, app.client.get(&url).bearer_auth(&unknown), "unknown").await;
    assert_unauthorized(&app, app.client.get(&url).bearer_auth(&revoked), "revoked").await;
    assert_unauthorized(
        &app,
        app.client.delete(&url).bearer_auth(&revoked),
        "revoked, DELETE",
    )
    .await;
    assert_unauthorized(
        &app,
        app.client
            .post(format!("{}{SUPPRESSIONS}/check", app.address))
            .bearer_auth(&unknown)
            .json(&json!({"addresses": ["x@example.com"]})),
        "unknown, check",
    )
    .await;
    assert_unauthorized(
        &app,
        app.client.get(format!("{}{SUPPRESSIONS}", app.address)),
        "no header, list",
    )
    .await;
    assert_unauthorized(
        &app,
        app.client.get(format!("{url}/history")),
        "no header, history",
    )
    .await;
    // The good token still works, and the revoked one changed nothing.
    let (status, entry) = call(&app, Method::GET, &path, Some(&write), None).await;
    assert_eq!(status, 200, "{entry}");
    assert_eq!(entry["address"], "x@example.com");
}

#[tokio::test]
async fn every_documented_4xx_is_answered_with_its_code() {
    let app = spawn_app().await;
    let write = app.token("crm", Scope::Write).await;
    let read = app.token("mailer", Scope::Read).await;
    let check = format!("{SUPPRESSIONS}/check");
    for address in ["a@example.com", "b@example.com", "c@example.com"] {
        assert_eq!(
            call(
                &app,
                Method::PUT,
                &entry_path(address),
                Some(&write),
                Some(&json!({}))
            )
            .await
            .0,
            201
        );
    }

    // 403: a read token on PUT and DELETE, changing nothing.
    let (status, body) = call(
        &app,
        Method::PUT,
        &entry_path("new@example.com"),
        Some(&read),
        Some(&json!({})),
    )
    .await;
    assert_error(status, &body, 403, "forbidden", "read token PUT");
    let (status, body) = call(
        &app,
        Method::DELETE,
        &entry_path("a@example.com"),
        Some(&read),
        None,
    )
    .await;
    assert_error(status, &body, 403, "forbidden", "read token DELETE");
    assert_eq!(
        call(
            &app,
            Method::GET,
            &entry_path("new@example.com"),
            Some(&read),
            None
        )
        .await
        .0,
        404
    );
    assert_eq!(
        call(
            &app,
            Method::GET,
            &entry_path("a@example.com"),
            Some(&read),
            None
        )
        .await
        .0,
        200
    );

    // 400 invalid_address: in the path (every endpoint that takes one), and inside a check.
    for (method, path) in [
        (Method::GET, format!("{SUPPRESSIONS}/not-an-address")),
        (
            Method::DELETE,
            format!("{SUPPRESSIONS}/a%20b%40example.com"),
        ),
        (
            Method::GET,
            format!("{SUPPRESSIONS}/%40example.com/history"),
        ),
    ] {
        let (status, body) = call(&app, method.clone(), &path, Some(&write), None).await;
        assert_error(
            status,
            &body,
            400,
            "invalid_address",
            &format!("{method} {path}"),
        );
    }
    let (status, body) = call(
        &app,
        Method::PUT,
        &format!("{SUPPRESSIONS}/nope"),
        Some(&write),
        Some(&json!({})),
    )
    .await;
    assert_error(
        status,
        &body,
        400,
        "invalid_address",
        "PUT of an invalid address",
    );
    let (status, body) = call(
        &app,
        Method::POST,
        &check,
        Some(&read),
        Some(&json!({"addresses": ["ok@example.com", "bad"]})),
    )
    .await;
    assert_error(status, &body, 400, "invalid_address", "check");
    assert!(
        body["message"].as_str().unwrap().contains("addresses[1]"),
        "{body}"
    );

    // 400 invalid_cursor: tampered, and not base64 at all.
    let (_, page) = call(
        &app,
        Method::GET,
        &format!("{SUPPRESSIONS}?limit=1"),
        Some(&read),
        None,
    )
    .await;
    let cursor = page["nextCursor"].as_str().unwrap();
    let plain = String::from_utf8(
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(cursor)
            .unwrap(),
    )
    .unwrap();
    let (prefix, _) = plain.rsplit_once('.').unwrap();
    let tampered_id =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{prefix}.x1"));
    let tampered_version =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(plain.replacen("v1", "v9", 1));
    let mut flipped = cursor.to_owned();
    flipped.push('A');
    for bad in [
        tampered_id.as_str(),
        tampered_version.as_str(),
        flipped.as_str(),
        "%21%21%21",
        "djE",
    ] {
        let (status, body) = call(
            &app,
            Method::GET,
            &format!("{SUPPRESSIONS}?cursor={bad}"),
            Some(&read),
            None,
        )
        .await;
        assert_error(
            status,
            &body,
            400,
            "invalid_cursor",
            &format!("cursor {bad}"),
        );
    }
    let (status, _) = call(
        &app,
        Method::GET,
        &format!("{SUPPRESSIONS}?cursor={cursor}"),
        Some(&read),
        None,
    )
    .await;
    assert_eq!(status, 200, "the untampered cursor is accepted");

    // 400 invalid_time.
    let (status, body) = call(
        &app,
        Method::GET,
        &format!("{SUPPRESSIONS}?since=yesterday"),
        Some(&read),
        None,
    )
    .await;
    assert_error(status, &body, 400, "invalid_time", "since garbage");
    for expires in [
        json!("2000-01-01T00:00:00Z"),
        json!(millis(Utc::now() - Duration::seconds(5))),
        json!("tomorrow"),
    ] {
        let (status, body) = call(
            &app,
            Method::PUT,
            &entry_path("timed@example.com"),
            Some(&write),
            Some(&json!({"expiresAt": expires})),
        )
        .await;
        assert_error(
            status,
            &body,
            400,
            "invalid_time",
            &format!("expiresAt {expires}"),
        );
    }
    assert_eq!(
        call(
            &app,
            Method::GET,
            &entry_path("timed@example.com"),
            Some(&read),
            None
        )
        .await
        .0,
        404
    );

    // 400 invalid_reason, invalid_limit.
    let (status, body) = call(
        &app,
        Method::GET,
        &format!("{SUPPRESSIONS}?reason=bogus"),
        Some(&read),
        None,
    )
    .await;
    assert_error(status, &body, 400, "invalid_reason", "reason bogus");
    for limit in ["0", "1001", "abc", "-1"] {
        let (status, body) = call(
            &app,
            Method::GET,
            &format!("{SUPPRESSIONS}?limit={limit}"),
            Some(&read),
            None,
        )
        .await;
        assert_error(
            status,
            &body,
            400,
            "invalid_limit",
            &format!("limit {limit}"),
        );
    }
    let (status, page) = call(
        &app,
        Method::GET,
        &format!("{SUPPRESSIONS}?limit=1000"),
        Some(&read),
        None,
    )
    .await;
    assert_eq!(status, 200, "limit 1000 is allowed: {page}");

    // 400 too_many_addresses, no_addresses.
    let many: Vec<String> = (0..1001).map(|i| format!("u{i}@example.com")).collect();
    let (status, body) = call(
        &app,
        Method::POST,
        &check,
        Some(&read),
        Some(&json!({"addresses": many})),
    )
    .await;
    assert_error(status, &body, 400, "too_many_addresses", "1001 addresses");
    let (status, body) = call(
        &app,
        Method::POST,
        &check,
        Some(&read),
        Some(&json!({"addresses": many[..1000]})),
    )
    .await;
    assert_eq!(status, 200, "1000 addresses are allowed: {body}");
    let (status, body) = call(
        &app,
        Method::POST,
        &check,
        Some(&read),
        Some(&json!({"addresses": []})),
    )
    .await;
    assert_error(status, &body, 400, "no_addresses", "no addresses");

    // 400 invalid_json: malformed, an unknown field, the wrong shape.
    // Sends `body` as `content_type` and checks the error status and code.
    let refused = |method: Method, path: String, content_type: &'static str, body: Vec<u8>| {
        let request = app
            .api(method.clone(), &path, Some(&write))
            .header("content-type", content_type)
            .body(body);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let json: Value = response.json().await.unwrap();
            (status, json, format!("{method} {path}"))
        }
    };
    for (method, path, body) in [
        (Method::POST, check.clone(), "{\"addresses\": [".to_owned()),
        (
            Method::POST,
            check.clone(),
            "{\"addresses\": \"a@example.com\"}".to_owned(),
        ),
        (
            Method::POST,
            check.clone(),
            "{\"addresses\": [], \"more\": 1}".to_owned(),
        ),
        (
            Method::PUT,
            entry_path("j@example.com"),
            "{\"note\": \"x\", \"reason\": \"manual\"}".to_owned(),
        ),
        (
            Method::PUT,
            entry_path("j@example.com"),
            "not json".to_owned(),
        ),
        (Method::PUT, entry_path("j@example.com"), "   ".to_owned()),
    ] {
        let (status, json, what) =
            refused(method, path, "application/json", body.clone().into_bytes()).await;
        assert_error(
            status,
            &json,
            400,
            "invalid_json",
            &format!("{what} {body:?}"),
        );
    }
    assert_eq!(
        call(
            &app,
            Method::GET,
            &entry_path("j@example.com"),
            Some(&read),
            None
        )
        .await
        .0,
        404
    );

    // 413: a body over 1 MiB.
    let padding = " ".repeat(1024 * 1024);
    for (method, path) in [
        (Method::POST, check.clone()),
        (Method::PUT, entry_path("big@example.com")),
    ] {
        let body = format!("{{\"addresses\": [\"a@example.com\"]}}{padding}");
        let (status, json, what) =
            refused(method, path, "application/json", body.into_bytes()).await;
        assert_error(status, &json, 413, "payload_too_large", &what);
    }

    // 415: not application/json.
    for (method, path, body) in [
        (Method::PUT, entry_path("plain@example.com"), "{}"),
        (
            Method::POST,
            check.clone(),
            "{\"addresses\": [\"a@example.com\"]}",
        ),
    ] {
        let (status, json, what) =
            refused(method, path, "text/plain", body.as_bytes().to_vec()).await;
        assert_error(status, &json, 415, "unsupported_media_type", &what);
    }
    assert_eq!(
        call(
            &app,
            Method::GET,
            &entry_path("plain@example.com"),
            Some(&read),
            None
        )
        .await
        .0,
        404
    );

    // 405 with Allow.
    for (method, path, allow) in [
        (Method::POST, SUPPRESSIONS.to_owned(), "GET"),
        (Method::GET, check.clone(), "POST"),
        (
            Method::PATCH,
            entry_path("a@example.com"),
            "GET, PUT, DELETE",
        ),
        (
            Method::DELETE,
            format!("{}/history", entry_path("a@example.com")),
            "GET",
        ),
        (Method::POST, "/api/v1/openapi.json".to_owned(), "GET"),
    ] {
        let response = app
            .api(method.clone(), &path, Some(&write))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let allowed = response
            .headers()
            .get("allow")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let json: Value = response.json().await.unwrap();
        assert_error(
            status,
            &json,
            405,
            "method_not_allowed",
            &format!("{method} {path}"),
        );
        assert_eq!(allowed.as_deref(), Some(allow), "{method} {path}");
    }
    assert_eq!(
        call(
            &app,
            Method::GET,
            &entry_path("a@example.com"),
            Some(&read),
            None
        )
        .await
        .0,
        200,
        "PATCH changed nothing"
    );

    // 404 not_found under the prefix.
    for path in [
        "/api/v1/nope",
        "/api/v1/suppressions/a%40example.com/history/more",
        "/api/v1",
    ] {
        let (status, body) = call(&app, Method::GET, path, Some(&read), None).await;
        assert_error(status, &body, 404, "not_found", path);
    }
}

#[tokio::test]
async fn the_openapi_document_is_served_without_a_token_as_committed() {
    let app = spawn_app().await;
    let committed = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.json"),
    )
    .unwrap();

    let response = app.get("/api/v1/openapi.json").await;

    assert_eq!(response.status().as_u16(), 200);
    let content_type = response
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let served = response.text().await.unwrap();
    assert!(
        served == committed,
        "GET /api/v1/openapi.json differs from docs/openapi.json: regenerate it with \
         `cargo run -q -- openapi > docs/openapi.json`"
    );
    let spec: Value = serde_json::from_str(&served).unwrap();
    assert!(spec["paths"]["/api/v1/suppressions/{address}"]["put"].is_object());
}

// ---------------------------------------------------------------------------------------------
// 3. The policy, end to end through the webhook.

async fn the_policy_applies_through_the_webhook(backend: Backend) {
    let app = spawn_on(backend, |_| {}).await;
    let write = app.token("crm", Scope::Write).await;
    let now = Utc::now();

    // A Permanent bounce: readable as soon as SNS has its 200.
    let envelope = deliver(
        &app,
        &bounce("m-hard-1", "Hard@Example.com", "Permanent", now),
    )
    .await;
    let (status, entry) = call(
        &app,
        Method::GET,
        &entry_path("hard@example.com"),
        Some(&write),
        None,
    )
    .await;
    assert_eq!(
        status, 200,
        "the entry is not readable once SNS has its 200: {entry}"
    );
    let events = app.events();
    assert_eq!(events.len(), 1);
    assert_eq!(entry["address"], "Hard@Example.com");
    assert_eq!(entry["reason"], "hard_bounce");
    assert_eq!(entry["expiresAt"], Value::Null);
    assert_eq!(entry["sesMessageId"], "m-hard-1");
    assert_eq!(entry["eventKey"], events[0].event_key.as_str());
    assert_eq!(entry["note"], Value::Null);
    let (_, history) = call(
        &app,
        Method::GET,
        &format!("{}/history", entry_path("hard@example.com")),
        Some(&write),
        None,
    )
    .await;
    assert_eq!(history["items"].as_array().unwrap().len(), 1, "{history}");
    assert_eq!(history["items"][0]["by"], "policy");
    assert_eq!(history["items"][0]["action"], "added");

    // A complaint: not-spam does not suppress, abuse does.
    deliver(&app, &complaint("m-c-1", "happy@example.com", "not-spam")).await;
    let (status, body) = call(
        &app,
        Method::GET,
        &entry_path("happy@example.com"),
        Some(&write),
        None,
    )
    .await;
    assert_error(status, &body, 404, "not_suppressed", "a not-spam complaint");
    deliver(&app, &complaint("m-c-2", "angry@example.com", "abuse")).await;
    let (status, body) = call(
        &app,
        Method::GET,
        &entry_path("angry@example.com"),
        Some(&write),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["reason"], "complaint");
    assert_eq!(body["sesMessageId"], "m-c-2");

    // Three Transient bounces of distinct messages within 7 days: the third suppresses until
    // 30 days after the newest.
    let soft = "soft@example.com";
    let times = [
        now - Duration::days(6),
        now - Duration::hours(2),
        now - Duration::days(3),
    ];
    for (i, at) in times.iter().enumerate() {
        let (status, body) = call(&app, Method::GET, &entry_path(soft), Some(&write), None).await;
        assert_error(
            status,
            &body,
            404,
            "not_suppressed",
            &format!("after {i} soft bounces"),
        );
        deliver(
            &app,
            &bounce(&format!("m-soft-{i}"), soft, "Transient", *at),
        )
        .await;
    }
    let (status, entry) = call(&app, Method::GET, &entry_path(soft), Some(&write), None).await;
    assert_eq!(status, 200, "three soft bounces do not suppress: {entry}");
    assert_eq!(entry["reason"], "soft_bounce");
    let newest = DateTime::parse_from_rfc3339(&millis(times[1]))
        .unwrap()
        .with_timezone(&Utc);
    assert_eq!(
        time(&entry["expiresAt"]),
        newest + Duration::days(30),
        "{entry}"
    );
    // The entry names the newest soft bounce of the window (by event time), not the last stored.
    assert_eq!(entry["sesMessageId"], "m-soft-1", "{entry}");

    // DELETE; the same SNS message again does not bring the address back; a new bounce does.
    let (status, _) = call(
        &app,
        Method::DELETE,
        &entry_path("hard@example.com"),
        Some(&write),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (status, body) = app.post(&envelope).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["duplicates"], 1, "{body}");
    let (status, body) = call(
        &app,
        Method::GET,
        &entry_path("hard@example.com"),
        Some(&write),
        None,
    )
    .await;
    assert_error(
        status,
        &body,
        404,
        "not_suppressed",
        "a redelivery after DELETE",
    );
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    deliver(
        &app,
        &bounce("m-hard-2", "hard@example.com", "Permanent", Utc::now()),
    )
    .await;
    let (status, entry) = call(
        &app,
        Method::GET,
        &entry_path("hard@example.com"),
        Some(&write),
        None,
    )
    .await;
    assert_eq!(status, 200, "a new bounce after DELETE: {entry}");
    assert_eq!(entry["sesMessageId"], "m-hard-2");
    assert_eq!(
        entry["address"], "hard@example.com",
        "a new entry takes the form seen now"
    );
    let (_, history) = call(
        &app,
        Method::GET,
        &format!("{}/history", entry_path("hard@example.com")),
        Some(&write),
        None,
    )
    .await;
    let lines: Vec<(String, String)> = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["action"].as_str().unwrap().to_owned(),
                i["by"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        lines,
        [
            ("added".to_owned(), "policy".to_owned()),
            ("removed".to_owned(), "token:crm".to_owned()),
            ("added".to_owned(), "policy".to_owned())
        ]
    );
}

#[tokio::test]
async fn the_policy_applies_through_the_webhook_on_postgres() {
    the_policy_applies_through_the_webhook(Backend::Postgres).await;
}

#[tokio::test]
async fn the_policy_applies_through_the_webhook_on_sqlite() {
    the_policy_applies_through_the_webhook(Backend::Sqlite).await;
}

// ---------------------------------------------------------------------------------------------
// 4. Tokens (and addresses) never in logs.

#[tokio::test]
async fn tokens_are_never_logged() {
    let app = spawn_app().await;
    let write = app.token("logcheck", Scope::Write).await;
    let unknown = format!("sesw_{}", "Q".repeat(43));
    let capture = LogCapture::start();

    let (status, _) = call(
        &app,
        Method::PUT,
        &entry_path("logs@example.com"),
        Some(&write),
        Some(&json!({})),
    )
    .await;
    assert_eq!(status, 201);
    let (status, _) = call(
        &app,
        Method::GET,
        "/api/v1/suppressions/logs%40example.com",
        Some(&write),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = call(
        &app,
        Method::GET,
        "/api/v1/suppressions?limit=1",
        Some(&unknown),
        None,
    )
    .await;
    assert_eq!(status, 401);
    let (status, _) = call(
        &app,
        Method::DELETE,
        "/api/v1/suppressions/logs%40example.com",
        Some("sesw_short"),
        None,
    )
    .await;
    assert_eq!(status, 401);
    // The request spans close after the response is sent.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let logs = capture.text();

    // The requests were seen (their spans closed with their statuses): otherwise this test
    // would prove nothing.
    for status in ["201", "200", "401"] {
        assert!(
            logs.lines().any(|l| l.contains("/api/v1/suppressions")
                && l.contains(&format!("status_code={status}"))),
            "the API requests were not captured, so this test proves nothing:\n{logs}"
        );
    }
    for secret in [write.as_str(), unknown.as_str(), "sesw_short"] {
        assert!(!logs.contains(secret), "a token was logged");
        let random = secret.trim_start_matches("sesw_");
        // Not even in part: no 12 characters of its random part.
        for window in random.as_bytes().windows(12) {
            let part = std::str::from_utf8(window).unwrap();
            if part.bytes().all(|b| b == b'Q') && !secret.starts_with("sesw_Q") {
                continue;
            }
            assert!(!logs.contains(part), "part of a token ({part}) was logged");
        }
    }
    assert!(
        !logs.to_ascii_lowercase().contains("bearer "),
        "an Authorization header was logged"
    );
}

/// The conventions keep addresses out of logs at info level and above: a request that fails
/// (a 503 is logged at warn, with its request span) must not carry the address in the line.
#[tokio::test]
async fn addresses_are_not_logged_at_info_or_above() {
    let down = spawn_app_with(|settings| {
        settings.database.url = "postgres://postgres@127.0.0.1:1/nowhere".into();
        settings.database.migrate_on_start = false;
        settings.database.connect_timeout_secs = 1;
    })
    .await;
    let token = format!("sesw_{}", "Z".repeat(43));
    let capture = LogCapture::start();

    let (status, body) = call(
        &down,
        Method::GET,
        &entry_path("secret.person@example.com"),
        Some(&token),
        None,
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let logs = capture.text();

    assert_error(status, &body, 503, "store_unavailable", "store down");
    let warned: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR ") || l.contains(" INFO "))
        .collect();
    assert!(
        warned.iter().any(|l| l.contains("store unavailable")),
        "the 503 was not logged, so this test proves nothing:\n{logs}"
    );
    for line in warned {
        assert!(
            !line.contains("secret.person") && !line.contains("secret.person%40example.com"),
            "an address was logged at info or above: {line}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 5. Metrics.

fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn api_requests_and_additions_are_counted_without_addresses() {
    let app = spawn_app().await;
    let write = app.token("crm", Scope::Write).await;
    let read = app.token("mailer", Scope::Read).await;

    assert_eq!(
        call(
            &app,
            Method::PUT,
            &entry_path("metric.person@example.com"),
            Some(&write),
            Some(&json!({}))
        )
        .await
        .0,
        201
    );
    assert_eq!(
        call(
            &app,
            Method::PUT,
            &entry_path("metric.person@example.com"),
            Some(&write),
            Some(&json!({}))
        )
        .await
        .0,
        200
    );
    assert_eq!(
        call(
            &app,
            Method::GET,
            &entry_path("metric.person@example.com"),
            Some(&read),
            None
        )
        .await
        .0,
        200
    );
    assert_eq!(
        call(
            &app,
            Method::GET,
            &entry_path("other.person@example.com"),
            Some(&read),
            None
        )
        .await
        .0,
        404
    );
    assert_eq!(
        call(
            &app,
            Method::DELETE,
            &entry_path("metric.person@example.com"),
            Some(&read),
            None
        )
        .await
        .0,
        403
    );
    assert_eq!(
        call(
            &app,
            Method::GET,
            &entry_path("metric.person@example.com"),
            None,
            None
        )
        .await
        .0,
        401
    );
    assert_eq!(
        call(
            &app,
            Method::GET,
            "/api/v1/secret.path%40example.com",
            Some(&read),
            None
        )
        .await
        .0,
        404
    );
    assert_eq!(
        call(&app, Method::GET, SUPPRESSIONS, Some(&read), None)
            .await
            .0,
        200
    );
    deliver(
        &app,
        &bounce(
            "m-metrics",
            "bounced.person@example.com",
            "Permanent",
            Utc::now(),
        ),
    )
    .await;
    let text = app.metrics().await;

    let route = |status: u16| {
        format!(
            r#"ses_webhook_api_requests_total{{route="/api/v1/suppressions/{{address}}",status="{status}"}}"#
        )
    };
    assert_eq!(sample(&text, &route(201)), 1.0, "{text}");
    assert_eq!(sample(&text, &route(200)), 2.0, "{text}");
    assert_eq!(sample(&text, &route(404)), 1.0, "{text}");
    assert_eq!(sample(&text, &route(403)), 1.0, "{text}");
    assert_eq!(sample(&text, &route(401)), 1.0, "{text}");
    assert_eq!(
        sample(
            &text,
            r#"ses_webhook_api_requests_total{route="/api/v1/suppressions",status="200"}"#
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"ses_webhook_suppressions_added_total{reason="hard_bounce"}"#
        ),
        1.0,
        "{text}"
    );
    for personal in ["person", "%40", "example.com", "secret.path"] {
        let labelled: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#') && l.contains(personal))
            .collect();
        assert!(
            labelled.is_empty(),
            "{personal:?} in a metrics label: {labelled:?}"
        );
    }
}
