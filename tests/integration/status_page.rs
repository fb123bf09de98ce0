//! The operator's status page, `GET /status`, in a real browser: headless Chromium driven over
//! the DevTools protocol (the `headless_chrome` crate) against the real server on PostgreSQL.
//!
//! The server is seeded through the webhook, as SNS delivers: SES event-publishing records spread
//! over the last ten days for the configuration sets `marketing`, `transactional` and `legacy`
//! and for messages without one, a bounce without recipients (a message that fails mapping), and
//! three subscriptions (confirmed, pending, unsubscribed). The browser then asks for the page
//! three times, answering its Basic challenge (the Fetch domain's `authRequired`) with nothing,
//! with a wrong token and with a `read` token; reads the charts' points, threshold lines and
//! legends and every section's rows through the DOM and compares them with what was posted;
//! checks that nothing broke the page's Content-Security-Policy, that no address shows, that the
//! page reads the same with JavaScript off, and that a 360 px wide phone needs no sideways
//! scrolling; and saves full-page screenshots at 360 and 1440 CSS pixels to
//! `target/status-page-360.png` and `target/status-page-1440.png`.
//!
//! Chromium is `$CHROMIUM`, else `chromium` on `PATH`. Without one the test fails, naming
//! `scripts/ensure-chromium` (which CI runs first); it is never skipped.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration as StdDuration;

use base64::Engine as _;
use chrono::{DateTime, Duration, DurationRound, SecondsFormat, SubsecRound, Utc};
use headless_chrome::protocol::cdp::types::Event;
use headless_chrome::protocol::cdp::{Emulation, Fetch, Network, Page, Runtime};
use headless_chrome::{Browser, LaunchOptions, Tab};
use serde_json::{Value, json};
use sns_verify::SignatureVersion;
use test_support::{Scope, TOPIC, TestApp, spawn_app};
use wiremock::matchers::{method, query_param};
use wiremock::{Mock, ResponseTemplate};

/// The page's realm, as its `WWW-Authenticate` names it.
const REALM: &str = "ses-webhook status";
const WWW_AUTHENTICATE: &str = "Basic realm=\"ses-webhook status\", charset=\"UTF-8\"";

const MARKETING: &str = "marketing";
const TRANSACTIONAL: &str = "transactional";
/// Seen ten days ago only: in the daily rates, not in the seven-day table.
const LEGACY: &str = "legacy";

/// A subscription SNS refuses to confirm (the stand-in answers 404): left pending.
const TOPIC_PENDING: &str = "arn:aws:sns:us-east-1:123456789012:ses-webhook-status-pending";
/// A subscription that was deactivated.
const TOPIC_GONE: &str = "arn:aws:sns:us-east-1:123456789012:ses-webhook-status-gone";
const SUBSCRIBE_TOKEN: &str = "2336412f37fb687f5d51e6e2425dacbba0d8d8f1a6b3e9b7";

const SOURCE: &str = "news@example.com";
/// The series of the events chart.
const EVENT_SERIES: [&str; 5] = [
    "email_delivered",
    "email_bounce",
    "email_spam_report",
    "email_open",
    "email_click",
];
/// The events chart's hours and the rates chart's days.
const HOURS: usize = 48;
const DAYS: usize = 30;
/// The default thresholds: warning (40% of review), review and pause.
const THRESHOLDS: [(&str, f64); 6] = [
    ("bounce_warning", 0.02),
    ("bounce_review", 0.05),
    ("bounce_pause", 0.1),
    ("complaint_warning", 0.0004),
    ("complaint_review", 0.001),
    ("complaint_pause", 0.005),
];

// ---------------------------------------------------------------------------------------------
// What was posted, and what the page must show of it.

/// What one SES record adds to the counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Recipients of a `Send` record.
    Sent,
    Delivered,
    HardBounce,
    SoftBounce,
    Complaint,
    Open,
    Click,
}

/// `n` of `kind` at `at` (the event's time; `mail.timestamp` for a `Send`), whatever the
/// configuration set (the charts sum them all).
#[derive(Debug, Clone)]
struct Counted {
    at: DateTime<Utc>,
    kind: Kind,
    n: u64,
}

#[derive(Debug, Clone, Copy, Default)]
struct Sums {
    sent: u64,
    delivered: u64,
    hard: u64,
    soft: u64,
    complaints: u64,
    opens: u64,
    clicks: u64,
}

impl Sums {
    fn add(&mut self, kind: Kind, n: u64) {
        match kind {
            Kind::Sent => self.sent += n,
            Kind::Delivered => self.delivered += n,
            Kind::HardBounce => self.hard += n,
            Kind::SoftBounce => self.soft += n,
            Kind::Complaint => self.complaints += n,
            Kind::Open => self.opens += n,
            Kind::Click => self.clicks += n,
        }
    }

    /// The rates' denominator as SES counts it: sent recipients, or delivered plus bounced
    /// recipients when nothing was sent (identity notifications only).
    fn volume(&self) -> u64 {
        if self.sent > 0 {
            self.sent
        } else {
            self.delivered + self.hard + self.soft
        }
    }

    /// The value of an events-chart series.
    fn series(&self, series: &str) -> u64 {
        match series {
            "email_delivered" => self.delivered,
            "email_bounce" => self.hard + self.soft,
            "email_spam_report" => self.complaints,
            "email_open" => self.opens,
            "email_click" => self.clicks,
            other => panic!("no series {other}"),
        }
    }
}

/// Per-hour sums over the events chart's 48 hours (every configuration set), oldest first; the
/// last is `now`'s hour.
fn hourly(counted: &[Counted], now: DateTime<Utc>) -> Vec<Sums> {
    let current = now.duration_trunc(Duration::hours(1)).unwrap();
    let first = current - Duration::hours(HOURS as i64 - 1);
    let mut hours = vec![Sums::default(); HOURS];
    for c in counted {
        let hour = c.at.duration_trunc(Duration::hours(1)).unwrap();
        if first <= hour && hour <= current {
            hours[usize::try_from((hour - first).num_hours()).unwrap()].add(c.kind, c.n);
        }
    }
    hours
}

/// Per-day sums over the rates chart's 30 UTC days, oldest first; the last is `now`'s day.
fn daily(counted: &[Counted], now: DateTime<Utc>) -> Vec<Sums> {
    let today = now.date_naive();
    let first = today - Duration::days(DAYS as i64 - 1);
    let mut days = vec![Sums::default(); DAYS];
    for c in counted {
        let day = c.at.date_naive();
        if first <= day && day <= today {
            days[usize::try_from((day - first).num_days()).unwrap()].add(c.kind, c.n);
        }
    }
    days
}

/// SES times: milliseconds and `Z`.
fn ms(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Posts SES records through the webhook and keeps what each adds to the counts.
struct Seeder<'a> {
    app: &'a TestApp,
    counted: Vec<Counted>,
    mails: u32,
}

impl<'a> Seeder<'a> {
    fn new(app: &'a TestApp) -> Self {
        Self {
            app,
            counted: Vec::new(),
            mails: 0,
        }
    }

    /// The `mail` object of a new email (a fresh SES message id) sent at `sent` to `to`.
    fn mail(&mut self, sent: DateTime<Utc>, set: Option<&str>, to: &[String]) -> Value {
        self.mails += 1;
        let id = format!(
            "0100019a5e7c4b21-7d3f0c2e-5a1b-4c8d-9e2f-status{:04}",
            self.mails
        );
        let mut tags = json!({
            "ses:from-domain": ["example.com"],
            "ses:caller-identity": ["status-page-test"],
        });
        if let Some(set) = set {
            tags["ses:configuration-set"] = json!([set]);
        }
        json!({
            "timestamp": ms(sent),
            "source": SOURCE,
            "sourceArn": "arn:aws:ses:us-east-1:123456789012:identity/example.com",
            "sendingAccountId": "123456789012",
            "messageId": id,
            "destination": to,
            "headersTruncated": false,
            "headers": [{"name": "From", "value": SOURCE}, {"name": "Subject", "value": "News"}],
            "commonHeaders": {"from": [SOURCE], "to": to, "messageId": id, "subject": "News"},
            "tags": tags,
        })
    }

    /// Posts `record` in a fresh signed notification; asserts the webhook's answer.
    async fn post(&self, record: &Value, processed: u64, errors: u64) {
        let (status, body) = self
            .app
            .post(&self.app.notification(&record.to_string()))
            .await;
        assert_eq!(status, 200, "{record}: {body}");
        assert_eq!(body["processed"], processed, "{record}: {body}");
        assert_eq!(body["errors"], errors, "{record}: {body}");
    }

    fn count(&mut self, at: DateTime<Utc>, kind: Kind, n: u64) {
        self.counted.push(Counted { at, kind, n });
    }

    /// A `Send` record of one email to `recipients` addresses.
    async fn send(&mut self, at: DateTime<Utc>, set: Option<&'static str>, recipients: u64) {
        let mail = self.mail(at, set, &addresses(recipients));
        let record = json!({"eventType": "Send", "mail": mail, "send": {}});
        self.post(&record, 0, 0).await;
        self.count(at, Kind::Sent, recipients);
    }

    /// One `Delivery` record for `n` recipients.
    async fn deliveries(&mut self, at: DateTime<Utc>, set: Option<&'static str>, n: u64) {
        let to = addresses(n);
        let mail = self.mail(at - Duration::seconds(5), set, &to);
        let record = json!({
            "eventType": "Delivery",
            "mail": mail,
            "delivery": {
                "timestamp": ms(at),
                "processingTimeMillis": 812,
                "recipients": to,
                "smtpResponse": "250 2.6.0 Message received",
                "reportingMTA": "a8-70.smtp-out.amazonses.com",
                "remoteMtaIp": "203.0.113.10",
            },
        });
        self.post(&record, n, 0).await;
        self.count(at, Kind::Delivered, n);
    }

    /// One `Bounce` record for `n` recipients: `Permanent` (hard) or `Transient` (soft).
    async fn bounces(
        &mut self,
        at: DateTime<Utc>,
        set: Option<&'static str>,
        permanent: bool,
        n: u64,
    ) {
        let to = addresses(n);
        let mail = self.mail(at - Duration::seconds(5), set, &to);
        let (bounce_type, sub_type, status, kind) = if permanent {
            ("Permanent", "General", "5.1.1", Kind::HardBounce)
        } else {
            ("Transient", "MailboxFull", "4.2.2", Kind::SoftBounce)
        };
        let recipients: Vec<Value> = to
            .iter()
            .map(|address| {
                json!({
                    "emailAddress": address,
                    "action": "failed",
                    "status": status,
                    "diagnosticCode": format!("smtp; {status} {address} rejected"),
                })
            })
            .collect();
        let record = json!({
            "eventType": "Bounce",
            "mail": mail,
            "bounce": {
                "bounceType": bounce_type,
                "bounceSubType": sub_type,
                "bouncedRecipients": recipients,
                "timestamp": ms(at),
                "feedbackId": format!("0100019a-status-fb-{}", self.mails),
                "reportingMTA": "dsn; e226-55.smtp-out.amazonses.com",
            },
        });
        self.post(&record, n, 0).await;
        self.count(at, kind, n);
    }

    async fn complaint(&mut self, at: DateTime<Utc>, set: Option<&'static str>) {
        let to = addresses(1);
        let mail = self.mail(at - Duration::hours(1), set, &to);
        let record = json!({
            "eventType": "Complaint",
            "mail": mail,
            "complaint": {
                "feedbackId": format!("0100019a-status-fb-{}", self.mails),
                "complaintSubType": null,
                "complainedRecipients": [{"emailAddress": to[0]}],
                "timestamp": ms(at),
                "userAgent": "Yahoo!-Mail-Feedback/2.0",
                "complaintFeedbackType": "abuse",
                "arrivalDate": ms(at - Duration::seconds(5)),
            },
        });
        self.post(&record, 1, 0).await;
        self.count(at, Kind::Complaint, 1);
    }

    /// `n` `Open` (or `Click`) records, each of its own email to one recipient.
    async fn engagements(
        &mut self,
        at: DateTime<Utc>,
        set: Option<&'static str>,
        click: bool,
        n: u64,
    ) {
        for _ in 0..n {
            let mail = self.mail(at - Duration::minutes(30), set, &addresses(1));
            let record = if click {
                json!({
                    "eventType": "Click",
                    "mail": mail,
                    "click": {
                        "timestamp": ms(at),
                        "ipAddress": "198.51.100.23",
                        "userAgent": "Mozilla/5.0 (X11; Linux x86_64)",
                        "link": "https://shop.example.com/news",
                        "linkTags": {"campaign": ["news"]},
                    },
                })
            } else {
                json!({
                    "eventType": "Open",
                    "mail": mail,
                    "open": {
                        "timestamp": ms(at),
                        "ipAddress": "192.0.2.1",
                        "userAgent": "Mozilla/5.0 (X11; Linux x86_64)",
                    },
                })
            };
            self.post(&record, 1, 0).await;
        }
        self.count(at, if click { Kind::Click } else { Kind::Open }, n);
    }

    /// A `Bounce` without bounced recipients: recognised, but no event can be made of it, so
    /// the message is archived as failed.
    async fn unmappable_bounce(&mut self, at: DateTime<Utc>) {
        let mail = self.mail(at - Duration::seconds(5), Some(MARKETING), &addresses(1));
        let record = json!({
            "eventType": "Bounce",
            "mail": mail,
            "bounce": {
                "bounceType": "Permanent",
                "bounceSubType": "General",
                "bouncedRecipients": [],
                "timestamp": ms(at),
                "feedbackId": "0100019a-status-fb-unmappable",
            },
        });
        self.post(&record, 0, 1).await;
    }
}

/// `n` distinct recipient addresses.
fn addresses(n: u64) -> Vec<String> {
    (0..n)
        .map(|i| format!("reader{i:03}@example.com"))
        .collect()
}

fn subscribe_url(app: &TestApp, topic: &str) -> String {
    format!(
        "{}/?Action=ConfirmSubscription&TopicArn={topic}&Token={SUBSCRIBE_TOKEN}",
        app.sns.uri()
    )
}

/// `TOPIC` confirmed (SNS's stand-in accepts its `SubscribeURL`), `TOPIC_PENDING` pending (the
/// stand-in refuses it), `TOPIC_GONE` unsubscribed.
async fn subscribe(app: &TestApp) {
    Mock::given(method("GET"))
        .and(query_param("Action", "ConfirmSubscription"))
        .and(query_param("TopicArn", TOPIC))
        .respond_with(ResponseTemplate::new(200).set_body_string(
            "<ConfirmSubscriptionResponse><ConfirmSubscriptionResult><SubscriptionArn>arn\
             </SubscriptionArn></ConfirmSubscriptionResult></ConfirmSubscriptionResponse>",
        ))
        .expect(1)
        .mount(&app.sns)
        .await;
    let confirmation = |topic: &str| {
        app.signer.subscription_confirmation(
            topic,
            &uuid::Uuid::new_v4().to_string(),
            &subscribe_url(app, topic),
            SUBSCRIBE_TOKEN,
            SignatureVersion::V1,
        )
    };
    let (status, body) = app.post(&confirmation(TOPIC)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["subscriptionConfirmed"], true, "{body}");
    let (status, body) = app.post(&confirmation(TOPIC_PENDING)).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"], "confirmation_refused", "{body}");
    let (status, body) = app
        .post(&app.signer.unsubscribe_confirmation(
            TOPIC_GONE,
            &uuid::Uuid::new_v4().to_string(),
            &subscribe_url(app, TOPIC_GONE),
            SUBSCRIBE_TOKEN,
            SignatureVersion::V1,
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    let states: BTreeMap<String, String> = app
        .subscriptions()
        .into_iter()
        .map(|s| (s.topic_arn, s.state))
        .collect();
    assert_eq!(
        states,
        BTreeMap::from([
            (TOPIC.to_owned(), "confirmed".to_owned()),
            (TOPIC_GONE.to_owned(), "unsubscribed".to_owned()),
            (TOPIC_PENDING.to_owned(), "pending".to_owned()),
        ])
    );
}

/// Posts the dataset; returns what it counts. Hours before now, and what the seven-day table
/// must say (statuses need 200 recipients; warning at 40% of the review threshold):
///
/// - `marketing`: a Send to 200 (3 h), 4 delivered (2 h 10), 6 Permanent bounces (2 h), a
///   complaint (1 h 20), 3 opens (1 h 10), 2 clicks (1 h), 2 Transient bounces (26 h).
///   Bounces 6/200 = 3%: warning; complaints 1/200 = 0.5%: pause risk.
/// - `transactional`: a Send to 300 (4 h), 5 delivered (3 h 50). 0% and 0%: ok, ok.
/// - no configuration set: 2 Sends to 1 (5 h), 3 delivered (4 h 50), a Transient bounce
///   (4 h 40), a Permanent bounce (30 h), 10 delivered (72 h). 2 sent: insufficient volume.
/// - `legacy`: a Send to 50 and 5 Permanent bounces (240 h): in the daily rates only.
/// - all of them: bounces 7/502 = 1.4%: ok; complaints 1/502 = 0.2%: review.
/// - a Bounce without recipients (20 minutes): failed.
async fn seed(app: &TestApp) -> Vec<Counted> {
    let now = Utc::now().trunc_subsecs(3);
    let ago = |hours: i64, minutes: i64| now - Duration::hours(hours) - Duration::minutes(minutes);
    let mut seed = Seeder::new(app);
    let (marketing, transactional, legacy) = (Some(MARKETING), Some(TRANSACTIONAL), Some(LEGACY));

    seed.send(ago(3, 0), marketing, 200).await;
    seed.deliveries(ago(2, 10), marketing, 4).await;
    seed.bounces(ago(2, 0), marketing, true, 6).await;
    seed.complaint(ago(1, 20), marketing).await;
    seed.engagements(ago(1, 10), marketing, false, 3).await;
    seed.engagements(ago(1, 0), marketing, true, 2).await;
    seed.bounces(ago(26, 0), marketing, false, 2).await;

    seed.send(ago(4, 0), transactional, 300).await;
    seed.deliveries(ago(3, 50), transactional, 5).await;

    seed.send(ago(5, 0), None, 1).await;
    seed.send(ago(5, 0), None, 1).await;
    seed.deliveries(ago(4, 50), None, 3).await;
    seed.bounces(ago(4, 40), None, false, 1).await;
    seed.bounces(ago(30, 0), None, true, 1).await;
    seed.deliveries(ago(72, 0), None, 10).await;

    seed.send(ago(240, 0), legacy, 50).await;
    seed.bounces(ago(240, 0), legacy, true, 5).await;

    seed.unmappable_bounce(ago(0, 20)).await;
    seed.counted
}

// ---------------------------------------------------------------------------------------------
// The browser.

/// Where Chromium is: `$CHROMIUM`, else `chromium` on `PATH`.
fn chromium() -> PathBuf {
    const HOW: &str = "run scripts/ensure-chromium (it installs Debian's chromium when missing and \
                       prints its path), then export CHROMIUM=<that path> or put chromium on PATH";
    if let Some(path) = std::env::var_os("CHROMIUM").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "CHROMIUM={} is not a file: {HOW}",
            path.display()
        );
        return path;
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join("chromium"))
                .find(|path| path.is_file())
        })
        .unwrap_or_else(|| panic!("the status page test needs a headless Chromium: {HOW}"))
}

/// One Basic challenge the browser met, and how it was answered.
#[derive(Debug, Clone)]
struct Challenge {
    request: String,
    url: String,
    source: Option<Fetch::AuthChallengeSource>,
    scheme: String,
    realm: String,
    answer: Fetch::AuthChallengeResponseResponse,
}

/// A document the browser received: its status and headers (names in lowercase).
#[derive(Debug, Clone)]
struct Document {
    url: String,
    status: u32,
    headers: BTreeMap<String, String>,
}

/// What the event listener shares with the test.
#[derive(Debug, Default)]
struct Seen {
    /// Whether a challenge is answered with the credentials given to `Tab::authenticate`;
    /// else it is cancelled, as a person closing the browser's prompt does.
    with_credentials: bool,
    /// Requests whose challenge was answered with credentials: a second challenge for one of
    /// them means the credentials were refused, and is cancelled (else Chromium asks forever).
    answered: HashSet<String>,
    challenges: Vec<Challenge>,
    documents: Vec<Document>,
    /// DevTools errors met by the listener.
    errors: Vec<String>,
}

/// The lock, even after a panic elsewhere (the test's own messages read it).
fn lock(seen: &Mutex<Seen>) -> MutexGuard<'_, Seen> {
    seen.lock().unwrap_or_else(PoisonError::into_inner)
}

struct Driver {
    // Dropping the browser ends Chromium and removes its fresh profile directory.
    _browser: Browser,
    tab: Arc<Tab>,
    seen: Arc<Mutex<Seen>>,
    scripts_disabled: Cell<bool>,
}

/// The script run before any of the page's own: it records every Content-Security-Policy
/// violation (a style or script the policy blocked) in `window.__cspViolations`.
const RECORD_CSP_VIOLATIONS: &str = "window.__cspViolations = [];\
    document.addEventListener('securitypolicyviolation', e => window.__cspViolations.push(\
    `${e.violatedDirective} ${e.blockedURI} ${e.sample}`));";

impl Driver {
    /// Starts the Chromium at `path` with a fresh profile, and opens a tab.
    fn launch(path: &Path) -> Self {
        // The machine's network is closed: without these, Chromium keeps trying to reach
        // Google's services, and can hang. A fresh profile directory comes from the crate.
        let args: Vec<&OsStr> = [
            "--disable-quic",
            "--disable-component-update",
            "--disable-background-networking",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
        ]
        .iter()
        .map(OsStr::new)
        .collect();
        let options = LaunchOptions::default_builder()
            .path(Some(path.to_path_buf()))
            .headless(true)
            .sandbox(false)
            .enable_gpu(false)
            .window_size(Some((1440, 900)))
            .args(args)
            .idle_browser_timeout(StdDuration::from_secs(180))
            .build()
            .expect("launch options");
        let browser = Browser::new(options)
            .unwrap_or_else(|e| panic!("Chromium ({}) does not start: {e:#}", path.display()));
        let tab = browser.new_tab().expect("a tab");
        tab.set_default_timeout(StdDuration::from_secs(30));
        let seen = Arc::new(Mutex::new(Seen::default()));

        let listener_seen = Arc::clone(&seen);
        let weak_tab = Arc::downgrade(&tab);
        tab.add_event_listener(Arc::new(move |event: &Event| match event {
            Event::FetchAuthRequired(event) => {
                let params = &event.params;
                let answer = {
                    let mut seen = lock(&listener_seen);
                    let first = seen.answered.insert(params.request_id.clone());
                    let answer = if seen.with_credentials && first {
                        Fetch::AuthChallengeResponseResponse::ProvideCredentials
                    } else {
                        Fetch::AuthChallengeResponseResponse::CancelAuth
                    };
                    seen.challenges.push(Challenge {
                        request: params.request_id.clone(),
                        url: params.request.url.clone(),
                        source: params.auth_challenge.source.clone(),
                        scheme: params.auth_challenge.scheme.clone(),
                        realm: params.auth_challenge.realm.clone(),
                        answer: answer.clone(),
                    });
                    answer
                };
                // The crate answers every challenge itself, after its listeners: with the
                // credentials given to `Tab::authenticate`, else with "Default" (which fails the
                // navigation). It is left to provide the credentials; a challenge to be
                // cancelled is answered here first, and the crate's answer after it is refused
                // by Chromium (the request is no longer waiting).
                if answer == Fetch::AuthChallengeResponseResponse::CancelAuth
                    && let Some(tab) = weak_tab.upgrade()
                {
                    let cancelled = tab.call_method(Fetch::ContinueWithAuth {
                        request_id: params.request_id.clone(),
                        auth_challenge_response: Fetch::AuthChallengeResponse {
                            response: answer,
                            username: None,
                            password: None,
                        },
                    });
                    if let Err(error) = cancelled {
                        lock(&listener_seen).errors.push(format!("{error:#}"));
                    }
                }
            }
            Event::NetworkResponseReceived(event)
                if event.params.Type == Network::ResourceType::Document =>
            {
                let response = &event.params.response;
                let headers = response
                    .headers
                    .0
                    .as_ref()
                    .and_then(Value::as_object)
                    .map(|headers| {
                        headers
                            .iter()
                            .map(|(k, v)| {
                                (k.to_lowercase(), v.as_str().unwrap_or_default().to_owned())
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                lock(&listener_seen).documents.push(Document {
                    url: response.url.clone(),
                    status: response.status,
                    headers,
                });
            }
            _ => {}
        }))
        .expect("event listener");
        tab.call_method(Network::Enable {
            max_total_buffer_size: None,
            max_resource_buffer_size: None,
            max_post_data_size: None,
            report_direct_socket_traffic: None,
            enable_durable_messages: None,
        })
        .expect("Network.enable");
        // Every request pauses (the crate continues it) and Basic challenges reach the listener.
        tab.enable_fetch(None, Some(true)).expect("Fetch.enable");
        tab.call_method(Page::AddScriptToEvaluateOnNewDocument {
            source: RECORD_CSP_VIOLATIONS.to_owned(),
            world_name: None,
            include_command_line_api: None,
            run_immediately: None,
        })
        .expect("Page.addScriptToEvaluateOnNewDocument");
        Self {
            _browser: browser,
            tab,
            seen,
            scripts_disabled: Cell::new(false),
        }
    }

    /// Loads `url`, answering a Basic challenge with `credentials` (`None`: cancelling it);
    /// returns the challenges met and the documents received on the way.
    fn visit(
        &self,
        url: &str,
        credentials: Option<(&str, &str)>,
    ) -> (Vec<Challenge>, Vec<Document>) {
        if let Some((user, password)) = credentials {
            self.tab
                .authenticate(Some(user.to_owned()), Some(password.to_owned()))
                .expect("credentials set");
        }
        {
            let mut seen = lock(&self.seen);
            seen.with_credentials = credentials.is_some();
            seen.challenges.clear();
            seen.documents.clear();
        }
        self.tab
            .navigate_to(url)
            .and_then(|tab| tab.wait_until_navigated())
            .unwrap_or_else(|e| panic!("loading {url}: {e:#}; {:?}", lock(&self.seen)));
        self.settle();
        let seen = lock(&self.seen);
        assert_eq!(seen.errors, Vec::<String>::new(), "answering a challenge");
        (seen.challenges.clone(), seen.documents.clone())
    }

    /// The value of a JavaScript expression (awaited when it is a promise), as JSON.
    fn eval(&self, expression: &str) -> Value {
        let result = self
            .tab
            .call_method(Runtime::Evaluate {
                expression: expression.to_owned(),
                object_group: None,
                include_command_line_api: None,
                silent: None,
                context_id: None,
                return_by_value: Some(true),
                generate_preview: None,
                user_gesture: None,
                await_promise: Some(true),
                throw_on_side_effect: None,
                timeout: None,
                disable_breaks: None,
                repl_mode: None,
                allow_unsafe_eval_blocked_by_csp: None,
                unique_context_id: None,
                serialization_options: None,
            })
            .unwrap_or_else(|e| panic!("Runtime.evaluate: {e:#}"));
        if let Some(details) = result.exception_details {
            panic!("the page's JavaScript threw: {details:?}\n{expression}");
        }
        result.result.value.unwrap_or(Value::Null)
    }

    /// Emulates a screen `width` CSS pixels wide (a phone when `mobile`: the page's viewport
    /// meta tag then decides its layout width).
    fn resize(&self, width: u32, mobile: bool) {
        self.tab
            .call_method(Emulation::SetDeviceMetricsOverride {
                width,
                height: if mobile { 740 } else { 900 },
                device_scale_factor: 1.0,
                mobile,
                scale: None,
                screen_width: None,
                screen_height: None,
                position_x: None,
                position_y: None,
                dont_set_visible_size: None,
                screen_orientation: None,
                viewport: None,
                display_feature: None,
                device_posture: None,
            })
            .expect("Emulation.setDeviceMetricsOverride");
        self.settle();
    }

    /// Waits until the document is loaded and, when scripts run, laid out and painted.
    fn settle(&self) {
        for _ in 0..400 {
            if self.eval("document.readyState") == "complete" {
                break;
            }
            std::thread::sleep(StdDuration::from_millis(25));
        }
        // Animation frames need scripts; without them, evaluating waits for nothing.
        if !self.scripts_disabled.get() {
            self.eval(
                "new Promise(done => requestAnimationFrame(() => requestAnimationFrame(() => \
                 done(true))))",
            );
        }
    }

    /// Turns the page's scripts off (`Emulation.setScriptExecutionDisabled`).
    fn disable_scripts(&self) {
        self.tab
            .call_method(Emulation::SetScriptExecutionDisabled { value: true })
            .expect("Emulation.setScriptExecutionDisabled");
        self.scripts_disabled.set(true);
    }

    /// A PNG of the whole page, `width` by the document's height, saved to `path`; returns
    /// the page's widths and height as the browser lays it out.
    fn screenshot(&self, width: u32, path: &Path) -> Value {
        let layout = self.eval(LAYOUT);
        let height = layout["height"].as_f64().expect("document height");
        let data = self
            .tab
            .call_method(Page::CaptureScreenshot {
                format: Some(Page::CaptureScreenshotFormatOption::Png),
                quality: None,
                clip: Some(Page::Viewport {
                    x: 0.0,
                    y: 0.0,
                    width: f64::from(width),
                    height,
                    scale: 1.0,
                }),
                from_surface: Some(true),
                capture_beyond_viewport: Some(true),
                optimize_for_speed: None,
            })
            .expect("Page.captureScreenshot")
            .data;
        let png = base64::engine::general_purpose::STANDARD
            .decode(data)
            .expect("base64 PNG");
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
        let png_width = u32::from_be_bytes(png[16..20].try_into().unwrap());
        assert_eq!(png_width, width, "screenshot width");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, &png).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        layout
    }
}

/// How the page is laid out: the layout viewport's width, the document's width and height,
/// the elements reaching past the viewport's right edge, and the boxes whose content scrolls
/// sideways inside them (each named by tag, id, class and section).
const LAYOUT: &str = r#"(() => {
  const name = e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') +
    (typeof e.className === 'string' && e.className ? '.' + e.className.trim().split(/\s+/).join('.') : '') +
    (e.closest('section[id]') ? ` in #${e.closest('section[id]').id}` : '');
  const shown = [...document.body.querySelectorAll('*')].filter(e => !e.closest('details:not([open])'));
  return {
    innerWidth,
    clientWidth: document.documentElement.clientWidth,
    scrollWidth: document.documentElement.scrollWidth,
    height: document.documentElement.scrollHeight,
    overflowing: shown.filter(e => e.getBoundingClientRect().right > innerWidth + 1)
      .slice(0, 8).map(e => `${name(e)} ${Math.round(e.getBoundingClientRect().right)}`),
    scrolledInside: shown.filter(e => e.scrollWidth > e.clientWidth + 1 &&
        ['auto', 'scroll'].includes(getComputedStyle(e).overflowX))
      .map(e => `${name(e)} ${e.scrollWidth}/${e.clientWidth}`),
  };
})()"#;

/// Everything the test reads of the page, in one JSON value.
const SNAPSHOT: &str = r#"(() => {
  const text = el => el ? el.textContent.replace(/\s+/g, ' ').trim() : null;
  const section = id => document.querySelector(`section#${id}`);
  const chart = id => {
    const s = section(id);
    if (!s) return null;
    const svg = s.querySelector('svg.chart');
    const all = sel => svg ? [...svg.querySelectorAll(sel)] : [];
    return {
      charts: s.querySelectorAll('svg.chart').length,
      points: all('circle.point').map(p => ({
        series: p.getAttribute('data-series'), index: p.getAttribute('data-index'),
        x: p.getAttribute('data-x'), value: p.getAttribute('data-value')})),
      thresholds: all('line.threshold').map(l => ({
        key: l.getAttribute('data-threshold'), value: l.getAttribute('data-value')})),
      legend: all('g.legend g.legend-item').map(g => g.getAttribute('data-key')),
      tables: [...s.querySelectorAll('table.chart-data')].map(t => ({
        inDetails: !!t.closest('details'),
        rows: t.querySelectorAll('tbody tr').length})),
    };
  };
  const rows = (id, selector, attribute) => {
    const s = section(id);
    return s ? [...s.querySelectorAll(selector)].map(r => ({
      key: attribute ? r.getAttribute(attribute) : null,
      statuses: [...r.querySelectorAll('span.status')].map(span =>
        [...span.classList].filter(c => c.startsWith('status-')).map(c => c.slice(7)).join(' ')),
      text: text(r)})) : null;
  };
  const addresses = [];
  const walker = document.createTreeWalker(document.documentElement, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode;
    if (node.parentElement && node.parentElement.closest('style, script')) continue;
    if (node.nodeValue.includes('@')) addresses.push(node.nodeValue.trim().slice(0, 120));
  }
  for (const el of document.querySelectorAll('*'))
    for (const a of el.attributes)
      if (a.value.includes('@')) addresses.push(`${el.tagName}[${a.name}]=${a.value.slice(0, 120)}`);
  return {
    contentType: document.contentType,
    title: document.title,
    sections: [...document.querySelectorAll('section[id]')].map(s => ({
      id: s.id, heading: text(s.querySelector('h2'))})),
    charts: document.querySelectorAll('svg.chart').length,
    bodyText: document.body ? document.body.innerText.slice(0, 400) : '',
    events: chart('events-per-hour'),
    rates: chart('rates-per-day'),
    configurationSets: rows('configuration-sets', 'tr[data-configuration-set]', 'data-configuration-set'),
    subscriptions: rows('subscriptions', 'tr[data-topic]', 'data-topic'),
    topics: rows('topics', 'tr[data-topic]', 'data-topic'),
    failures: rows('failures', 'tr.failure', null),
    addresses,
    cspViolations: window.__cspViolations === undefined ? null : window.__cspViolations,
  };
})()"#;

fn str_of<'v>(value: &'v Value, key: &str) -> &'v str {
    value[key]
        .as_str()
        .unwrap_or_else(|| panic!("no string {key} in {value}"))
}

/// A `data-value`: a number as `f64`'s `Display` writes it.
fn number(text: &str, what: &str) -> f64 {
    text.parse()
        .unwrap_or_else(|e| panic!("{what}: data-value {text:?} is not a number ({e})"))
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * a.abs().max(b.abs()).max(1e-300)
}

/// `points` of `series` as (index, x label, value), by index.
fn series_points(chart: &Value, series: &str) -> Vec<(usize, String, f64)> {
    let mut points: Vec<(usize, String, f64)> = chart["points"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["series"] == series)
        .map(|p| {
            let index = str_of(p, "index")
                .parse()
                .unwrap_or_else(|e| panic!("{series}: data-index of {p} ({e})"));
            let x = p["x"].as_str().unwrap_or_default().to_owned();
            (index, x, number(str_of(p, "value"), series))
        })
        .collect();
    points.sort_by_key(|p| p.0);
    points
}

/// A status page's sections, rows and charts against what [`seed`] posted; `now` is when the
/// page was rendered (its hour and day give the charts' positions).
fn assert_page(page: &Value, counted: &[Counted], now: DateTime<Utc>) {
    assert_eq!(page["contentType"], "text/html", "{}", page["bodyText"]);
    let sections: BTreeMap<&str, &str> = page["sections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (str_of(s, "id"), s["heading"].as_str().unwrap_or_default()))
        .collect();
    for id in [
        "events-per-hour",
        "rates-per-day",
        "configuration-sets",
        "subscriptions",
        "topics",
        "failures",
    ] {
        let heading = sections
            .get(id)
            .unwrap_or_else(|| panic!("no <section id={id}>: {sections:?}"));
        assert!(!heading.is_empty(), "section {id} has no <h2>");
    }

    // Events per hour: 48 points per series, zeros included, each hour's count.
    let events = &page["events"];
    assert_eq!(events["charts"], 1, "one svg.chart in #events-per-hour");
    let hours = hourly(counted, now);
    let mut labels: Option<Vec<String>> = None;
    for series in EVENT_SERIES {
        let points = series_points(events, series);
        let got: Vec<(usize, f64)> = points.iter().map(|p| (p.0, p.2)).collect();
        let expected: Vec<(usize, f64)> = hours
            .iter()
            .enumerate()
            .map(|(i, sums)| (i, sums.series(series) as f64))
            .collect();
        assert_points(&format!("events per hour, {series}"), &got, &expected, now);
        let these: Vec<String> = points.into_iter().map(|p| p.1).collect();
        assert!(
            these.iter().all(|x| !x.is_empty()),
            "{series}: a point without data-x"
        );
        match &labels {
            None => labels = Some(these),
            Some(labels) => assert_eq!(&these, labels, "{series}: data-x differs"),
        }
    }
    let first_hour =
        now.duration_trunc(Duration::hours(1)).unwrap() - Duration::hours(HOURS as i64 - 1);
    for (index, label) in labels.unwrap().iter().enumerate() {
        let hour = (first_hour + Duration::hours(i64::try_from(index).unwrap())).format("%-H");
        assert!(
            label.contains(&hour.to_string()),
            "the hour at index {index} is labelled {label:?}, not as {hour} h UTC"
        );
    }
    let total_points = events["points"].as_array().unwrap().len();
    assert_eq!(
        total_points,
        EVENT_SERIES.len() * HOURS,
        "no points of other series"
    );
    let legend: BTreeSet<&str> = events["legend"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(legend, BTreeSet::from(EVENT_SERIES), "events legend");
    assert_chart_table(events, "events-per-hour", HOURS, HOURS);

    // Rates per day: a point on each day with a denominator; the thresholds.
    let rates = &page["rates"];
    assert_eq!(rates["charts"], 1, "one svg.chart in #rates-per-day");
    let days = daily(counted, now);
    for (series, numerator) in [
        ("bounce_rate", (|s: &Sums| s.hard) as fn(&Sums) -> u64),
        ("complaint_rate", |s: &Sums| s.complaints),
    ] {
        let expected: Vec<(usize, f64)> = days
            .iter()
            .enumerate()
            .filter(|(_, sums)| sums.volume() > 0)
            .map(|(i, sums)| (i, numerator(sums) as f64 / sums.volume() as f64))
            .collect();
        let got: Vec<(usize, f64)> = series_points(rates, series)
            .into_iter()
            .map(|p| (p.0, p.2))
            .collect();
        assert_points(&format!("rates per day, {series}"), &got, &expected, now);
    }
    let first_day = now.date_naive() - Duration::days(DAYS as i64 - 1);
    for (index, label, _) in series_points(rates, "bounce_rate") {
        let day = (first_day + Duration::days(i64::try_from(index).unwrap())).format("%-d");
        assert!(
            label.contains(&day.to_string()),
            "the day at index {index} is labelled {label:?}, not as day {day}"
        );
    }
    let thresholds: BTreeMap<&str, f64> = rates["thresholds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (str_of(t, "key"), number(str_of(t, "value"), "threshold")))
        .collect();
    assert_eq!(
        thresholds.keys().copied().collect::<BTreeSet<_>>(),
        THRESHOLDS.iter().map(|t| t.0).collect(),
        "threshold lines: {thresholds:?}"
    );
    for (key, value) in THRESHOLDS {
        assert!(
            close(thresholds[key], value),
            "{key}: {} is not {value}",
            thresholds[key]
        );
    }
    let legend: BTreeSet<&str> = rates["legend"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let expected_legend: BTreeSet<&str> = ["bounce_rate", "complaint_rate"]
        .into_iter()
        .chain(THRESHOLDS.iter().map(|t| t.0))
        .collect();
    assert_eq!(legend, expected_legend, "rates legend");
    let days_with_data = days.iter().filter(|d| d.volume() > 0).count();
    assert_chart_table(rates, "rates-per-day", days_with_data, DAYS);

    // Configuration sets over the last 7 days: `legacy` (10 days ago) is not among them.
    let sets: BTreeMap<String, (Vec<String>, String)> = page["configurationSets"]
        .as_array()
        .expect("#configuration-sets")
        .iter()
        .map(|row| {
            let statuses = row["statuses"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_owned())
                .collect();
            (
                str_of(row, "key").to_owned(),
                (statuses, str_of(row, "text").to_owned()),
            )
        })
        .collect();
    let expected_sets: BTreeMap<&str, [&str; 2]> = BTreeMap::from([
        (MARKETING, ["warning", "pause_risk"]),
        (TRANSACTIONAL, ["ok", "ok"]),
        ("", ["insufficient_volume", "insufficient_volume"]),
        ("(all)", ["ok", "review"]),
    ]);
    assert_eq!(
        sets.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        expected_sets.keys().copied().collect(),
        "configuration set rows: {sets:?}"
    );
    for (set, [bounce, complaint]) in &expected_sets {
        let (statuses, text) = &sets[*set];
        assert_eq!(
            statuses,
            &[bounce.to_string(), complaint.to_string()],
            "configuration set {set:?}: the bounce and complaint statuses ({text})"
        );
    }

    // Subscriptions and topics.
    let subscriptions: BTreeMap<String, String> = page["subscriptions"]
        .as_array()
        .expect("#subscriptions")
        .iter()
        .map(|row| {
            (
                str_of(row, "key").to_owned(),
                str_of(row, "text").to_lowercase(),
            )
        })
        .collect();
    for (topic, state) in [
        (TOPIC, "confirmed"),
        (TOPIC_PENDING, "pending"),
        (TOPIC_GONE, "unsubscribed"),
    ] {
        let text = subscriptions
            .get(topic)
            .unwrap_or_else(|| panic!("no subscription row for {topic}: {subscriptions:?}"));
        assert!(text.contains(state), "{topic} is not shown {state}: {text}");
    }
    let topics: Vec<&str> = page["topics"]
        .as_array()
        .expect("#topics")
        .iter()
        .map(|row| str_of(row, "key"))
        .collect();
    assert!(
        topics.contains(&TOPIC),
        "no topic row for {TOPIC}: {topics:?}"
    );

    // The one message that failed.
    let failures = page["failures"].as_array().expect("#failures");
    assert_eq!(failures.len(), 1, "failure rows: {failures:?}");
    assert!(
        str_of(&failures[0], "text").contains("Bounce"),
        "the failure row does not name its SES type: {}",
        failures[0]
    );

    // No address anywhere: neither in the text nor in an attribute.
    assert_eq!(page["addresses"], json!([]), "the page shows an address");
}

/// A series' points, (index, value) by index, against the expected ones: the same indices,
/// and values equal but for the last bits of a division. A failure lists the points that
/// differ, and the expected non-zero ones.
fn assert_points(what: &str, got: &[(usize, f64)], expected: &[(usize, f64)], now: DateTime<Utc>) {
    let got: BTreeMap<usize, f64> = got.iter().copied().collect();
    let expected: BTreeMap<usize, f64> = expected.iter().copied().collect();
    let differ: Vec<String> = got
        .keys()
        .chain(expected.keys())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter(|i| match (got.get(i), expected.get(i)) {
            (Some(g), Some(e)) => !close(*g, *e),
            _ => true,
        })
        .map(|i| format!("{i}: {:?} for {:?}", got.get(i), expected.get(i)))
        .collect();
    assert!(
        differ.is_empty() && got.len() == expected.len(),
        "{what} (page rendered {now}), index: got for expected: {differ:?}; expected non-zero: \
         {:?}",
        expected
            .iter()
            .filter(|(_, v)| **v != 0.0)
            .collect::<Vec<_>>()
    );
}

/// A chart's `table.chart-data`: inside a `<details>`, with `min..=max` body rows.
fn assert_chart_table(chart: &Value, id: &str, min: usize, max: usize) {
    let tables = chart["tables"].as_array().unwrap();
    assert_eq!(tables.len(), 1, "#{id}: table.chart-data: {tables:?}");
    assert_eq!(
        tables[0]["inDetails"], true,
        "#{id}: the table is not in a <details>"
    );
    let rows = usize::try_from(tables[0]["rows"].as_u64().unwrap()).unwrap();
    assert!(
        (min..=max).contains(&rows),
        "#{id}: the table has {rows} rows, not {min} to {max}"
    );
}

/// The page when the challenge was not answered with a good token: a 401 with the page's
/// challenge, and nothing of the page.
fn assert_refused(what: &str, page: &Value, documents: &[Document]) {
    let document = documents
        .last()
        .unwrap_or_else(|| panic!("{what}: no document received"));
    assert_eq!(document.status, 401, "{what}: {document:?}");
    assert_eq!(
        document.headers.get("www-authenticate").map(String::as_str),
        Some(WWW_AUTHENTICATE),
        "{what}: {document:?}"
    );
    assert_eq!(
        page["sections"],
        json!([]),
        "{what}: the 401 shows sections"
    );
    assert_eq!(page["charts"], 0, "{what}: the 401 shows a chart");
    let text = str_of(page, "bodyText");
    assert!(
        !text.contains(MARKETING) && !text.contains(TOPIC),
        "{what}: the 401 shows the page's data: {text}"
    );
}

fn assert_challenged(what: &str, challenge: &Challenge, url: &str) {
    assert_eq!(challenge.url, url, "{what}: {challenge:?}");
    assert_eq!(
        challenge.source,
        Some(Fetch::AuthChallengeSource::Server),
        "{what}: {challenge:?}"
    );
    assert!(
        challenge.scheme.eq_ignore_ascii_case("basic"),
        "{what}: {challenge:?}"
    );
    assert_eq!(challenge.realm, REALM, "{what}: {challenge:?}");
}

/// The page's hour and day stay put while it is read: `before` and `after` bracket a load.
fn same_hour(before: DateTime<Utc>, after: DateTime<Utc>) -> bool {
    before.duration_trunc(Duration::hours(1)).unwrap()
        == after.duration_trunc(Duration::hours(1)).unwrap()
}

fn workspace_target() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target")
}

/// Everything done in the browser (the Chromium at `chromium`), with the server at `address`
/// and a `read` token.
fn browse(chromium: &Path, address: &str, token: &str, counted: &[Counted]) {
    let url = format!("{address}/status");
    let driver = Driver::launch(chromium);

    // (a) No credentials: the challenge is cancelled, as a person closing the prompt does.
    let (challenges, documents) = driver.visit(&url, None);
    let page = driver.eval(SNAPSHOT);
    assert_eq!(challenges.len(), 1, "no credentials: {challenges:?}");
    assert_challenged("no credentials", &challenges[0], &url);
    assert_refused("no credentials", &page, &documents);

    // (b) A wrong token, shaped like a real one: asked again, then cancelled.
    let mut wrong = token.to_owned();
    let last = wrong.pop().unwrap();
    wrong.push(if last == 'a' { 'b' } else { 'a' });
    let (challenges, documents) = driver.visit(&url, Some(("operator", &wrong)));
    let page = driver.eval(SNAPSHOT);
    assert!(
        challenges.len() == 2
            && challenges[0].answer == Fetch::AuthChallengeResponseResponse::ProvideCredentials
            && challenges[1].answer == Fetch::AuthChallengeResponseResponse::CancelAuth
            && challenges[0].request == challenges[1].request,
        "a wrong token is asked again: {challenges:?}"
    );
    assert_challenged("a wrong token", &challenges[1], &url);
    assert_refused("a wrong token", &page, &documents);

    // (c) The read token: the page. Read again if the hour turned while it loaded, since the
    // expected positions depend on it.
    let mut loaded = None;
    for _ in 0..3 {
        let before = Utc::now();
        let (challenges, documents) = driver.visit(&url, Some(("operator", token)));
        let page = driver.eval(SNAPSHOT);
        let after = Utc::now();
        if same_hour(before, after) {
            loaded = Some((challenges, documents, page, after));
            break;
        }
    }
    let (challenges, documents, page, now) = loaded.expect("three loads, each across an hour");
    assert!(
        challenges.len() <= 1
            && challenges
                .iter()
                .all(|c| c.answer == Fetch::AuthChallengeResponseResponse::ProvideCredentials),
        "the read token: {challenges:?}"
    );
    let document = documents.last().expect("a document");
    assert_eq!(document.url, url, "the read token: {document:?}");
    assert_eq!(
        document.status, 200,
        "the read token: {document:?}\n{}",
        page["bodyText"]
    );
    let header = |name: &str| document.headers.get(name).map_or("", String::as_str);
    assert!(header("cache-control").contains("no-store"), "{document:?}");
    assert!(
        header("content-security-policy").contains("default-src 'none'"),
        "{document:?}"
    );
    assert_eq!(header("x-content-type-options"), "nosniff", "{document:?}");

    // Screenshots before the content is judged, so that a failure can be looked at.
    let target = workspace_target();
    let mut layouts = Vec::new();
    for (width, mobile) in [(1440, false), (360, true)] {
        driver.resize(width, mobile);
        driver.visit(&url, Some(("operator", token)));
        let path = target.join(format!("status-page-{width}.png"));
        layouts.push((width, driver.screenshot(width, &path)));
    }

    assert_eq!(
        page["cspViolations"],
        json!([]),
        "the Content-Security-Policy blocked part of the page"
    );
    assert_page(&page, counted, now);
    for (width, layout) in &layouts {
        let width = *width;
        let inner = layout["innerWidth"].as_f64().unwrap();
        let scroll = layout["scrollWidth"].as_f64().unwrap();
        assert!(
            inner <= f64::from(width) + 1.0 && scroll <= f64::from(width) + 1.0,
            "at {width} px the page is {scroll} px wide (layout viewport {inner} px): it \
             scrolls sideways; wider than the screen: {}",
            layout["overflowing"]
        );
    }

    // Without JavaScript the page reads the same.
    driver.disable_scripts();
    driver.resize(1440, false);
    driver.visit(&url, Some(("operator", token)));
    let without_js = driver.eval(SNAPSHOT);
    // The same hour: the same charts. Rows are compared by key (their texts tell times).
    if same_hour(now, Utc::now()) {
        for key in ["sections", "events", "rates"] {
            assert_eq!(without_js[key], page[key], "without JavaScript: {key}");
        }
    }
    for key in ["configurationSets", "subscriptions", "topics", "failures"] {
        let keys = |page: &Value| -> Vec<Value> {
            page[key]
                .as_array()
                .map(|rows| rows.iter().map(|r| r["key"].clone()).collect())
                .unwrap_or_default()
        };
        assert_eq!(keys(&without_js), keys(&page), "without JavaScript: {key}");
    }
}

#[tokio::test]
async fn the_status_page_in_a_browser_shows_what_was_posted_to_a_read_token_only() {
    let chromium = chromium();
    let app = spawn_app().await;
    subscribe(&app).await;
    let counted = seed(&app).await;
    let token = app.token("status-page", Scope::Read).await;

    let address = app.address.clone();
    tokio::task::spawn_blocking(move || browse(&chromium, &address, &token, &counted))
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
}
