//! Prometheus metrics, in a registry owned by each [`crate::Application`] (no global state, so
//! several servers in one process — the integration suite — each count their own).

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::Error;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web;
use adapters_http::{RequestFailure, WEBHOOK_PATH, WebhookResult};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::ports::{ArchivedMessage, EventStore, StoreError, StoreReport, SubscriptionChange};
use domain::reputation::Reputation;
use domain::status::TopicActivity;
use domain::{Dependency, ForbiddenReason, IngestFailure, PlatformEvent};
use domain::{SnsMessageType, ports::MessageOutcome};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use sns_verify::{SourceObserver, VerifyError};
use url::Url;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    outcome: String,
    status: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventTypeLabels {
    event_type: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApiLabels {
    /// The route's pattern (`/api/v1/suppressions/{address}`), never the address itself.
    route: String,
    status: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 0.5 ms to ~8 s.
    Histogram::new(exponential_buckets(0.000_5, 2.0, 15))
}

/// Every metric the service exports.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_duration: Histogram,
    events_stored: Family<EventTypeLabels, Counter>,
    event_duplicates: Family<EventTypeLabels, Counter>,
    event_errors: Counter,
    messages: Family<ResultLabels, Counter>,
    verification_failures: Family<ReasonLabels, Counter>,
    certificate_cache: Family<ResultLabels, Counter>,
    certificate_fetches: Family<ResultLabels, Counter>,
    subscription_confirmations: Family<ResultLabels, Counter>,
    store_duration: HistogramFamily<OperationLabels>,
    suppressions_added: Family<ReasonLabels, Counter>,
    suppressions_removed: Counter,
    api_requests: Family<ApiLabels, Counter>,
    erasures: Counter,
    erased_events: Counter,
    retention_deleted: Family<KindLabels, Counter>,
    reputation: ReputationGauges,
    seconds_since_notification: Family<TopicLabels, Gauge<f64, AtomicU64>>,
    /// Each topic's last notification, as last read from the store.
    last_notifications: Mutex<Vec<(String, DateTime<Utc>)>>,
    delivery: DeliveryMetrics,
    sqs: SqsMetrics,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabels {
    queue: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueResultLabels {
    queue: String,
    /// `stored`, `duplicate`, `retry` or `refused`.
    result: String,
}

/// Intake from SQS, per queue (by name).
#[derive(Debug, Default)]
struct SqsMetrics {
    received: Family<QueueLabels, Counter>,
    handled: Family<QueueResultLabels, Counter>,
    receive_errors: Family<QueueLabels, Counter>,
    delete_failures: Family<QueueLabels, Counter>,
    seconds_since_message: FloatGauges<QueueLabels>,
    /// Each queue's last message (or when its pollers started), for the gauge.
    last_message: Mutex<Vec<(String, DateTime<Utc>)>>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SinkLabels {
    sink: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AttemptLabels {
    sink: String,
    /// `delivered`, `retried` (failed, due again) or `dead` (failed for the last time).
    result: String,
}

/// Event delivery: attempts counted as the relays make them; the outbox's backlog per sink as
/// last read from the store.
#[derive(Debug, Default)]
struct DeliveryMetrics {
    attempts: Family<AttemptLabels, Counter>,
    pending: Family<SinkLabels, Gauge>,
    dead: Family<SinkLabels, Gauge>,
    oldest_pending_age: FloatGauges<SinkLabels>,
    /// Each sink's oldest pending entry, as last read (the age is computed when rendered).
    oldest_pending: Mutex<Vec<(String, Option<DateTime<Utc>>)>>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SetLabels {
    /// The configuration set; `(none)` for messages without one, `(all)` for every message.
    configuration_set: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TopicLabels {
    topic: String,
}

type FloatGauges<L> = Family<L, Gauge<f64, AtomicU64>>;

/// The reputation gauges over the default window, per configuration set.
#[derive(Debug, Default)]
struct ReputationGauges {
    bounce_rate: FloatGauges<SetLabels>,
    complaint_rate: FloatGauges<SetLabels>,
    volume: Family<SetLabels, Gauge>,
    sent: Family<SetLabels, Gauge>,
    /// The label sets of the last [`Metrics::set_reputation`].
    shown: Mutex<Vec<SetLabels>>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    #[must_use]
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("ses_webhook");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Webhook requests by outcome (the error code, or the archive outcome) and HTTP status",
            requests.clone(),
        );
        let request_duration = latency_histogram();
        registry.register(
            "request_duration_seconds",
            "Time to handle a webhook request, from the first byte of the body to the response",
            request_duration.clone(),
        );
        let events_stored = Family::<EventTypeLabels, Counter>::default();
        registry.register(
            "events_stored",
            "Platform events newly stored, by event type",
            events_stored.clone(),
        );
        let event_duplicates = Family::<EventTypeLabels, Counter>::default();
        registry.register(
            "event_duplicates",
            "Platform events received again and not stored twice, by event type",
            event_duplicates.clone(),
        );
        let event_errors = Counter::default();
        registry.register(
            "event_errors",
            "SES records or recipients recognised but not turned into events",
            event_errors.clone(),
        );
        let messages = Family::<ResultLabels, Counter>::default();
        registry.register(
            "messages",
            "Acknowledged SNS messages by archive outcome",
            messages.clone(),
        );
        let verification_failures = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "verification_failures",
            "Requests refused or not verifiable, by reason",
            verification_failures.clone(),
        );
        let certificate_cache = Family::<ResultLabels, Counter>::default();
        registry.register(
            "certificate_cache",
            "Signing certificate lookups by result (hit, miss)",
            certificate_cache.clone(),
        );
        let certificate_fetches = Family::<ResultLabels, Counter>::default();
        registry.register(
            "certificate_fetches",
            "Signing certificate downloads by result (ok, error)",
            certificate_fetches.clone(),
        );
        // Both results from the start: an alert on `increase(...{result="error"})` sees the
        // first error, which it could not if the series began at 1.
        for result in ["ok", "error"] {
            let _ = certificate_fetches.get_or_create(&ResultLabels {
                result: result.into(),
            });
        }
        let subscription_confirmations = Family::<ResultLabels, Counter>::default();
        registry.register(
            "subscription_confirmations",
            "SubscriptionConfirmation messages by result (confirmed, pending, failed, refused, \
             untrusted)",
            subscription_confirmations.clone(),
        );
        let store_duration: HistogramFamily<OperationLabels> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "store_duration_seconds",
            "Time spent in the event store, by operation",
            store_duration.clone(),
        );
        let suppressions_added = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "suppressions_added",
            "Suppression list entries written by this server (by the policy or a token), by reason",
            suppressions_added.clone(),
        );
        let suppressions_removed = Counter::default();
        registry.register(
            "suppressions_removed",
            "Suppression list entries removed through the API",
            suppressions_removed.clone(),
        );
        let api_requests = Family::<ApiLabels, Counter>::default();
        registry.register(
            "api_requests",
            "Requests to /api/v1 by route pattern and HTTP status",
            api_requests.clone(),
        );
        let erasures = Counter::default();
        registry.register(
            "erasures",
            "Erasures of an address through the API that deleted or cleared something (not the \
             erase command, which runs in its own process)",
            erasures.clone(),
        );
        let erased_events = Counter::default();
        registry.register(
            "erased_events",
            "Events deleted by erasures of addresses",
            erased_events.clone(),
        );
        let retention_deleted = Family::<KindLabels, Counter>::default();
        registry.register(
            "retention_deleted",
            "What retention removed, by kind: events (rows of email_events), messages (rows of \
             sns_messages), raw_bodies (raw bodies cleared), counted_records (keys of counted \
             Send, Reject and DeliveryDelay records)",
            retention_deleted.clone(),
        );
        let reputation = ReputationGauges::default();
        registry.register(
            "reputation_bounce_rate",
            "Hard-bounced recipients over the denominator (sent recipients, or delivered plus \
             bounced without Send records) over reputation.window_days, as a fraction, per \
             configuration set ((none): without one; (all): every message); absent without volume",
            reputation.bounce_rate.clone(),
        );
        registry.register(
            "reputation_complaint_rate",
            "Complained recipients over the denominator over reputation.window_days, as a \
             fraction, per configuration set; absent without volume",
            reputation.complaint_rate.clone(),
        );
        registry.register(
            "reputation_volume",
            "The rates' denominator over reputation.window_days, in recipients, per configuration \
             set (statuses need reputation.min_volume)",
            reputation.volume.clone(),
        );
        registry.register(
            "reputation_sent_recipients",
            "Recipients of SES Send records over reputation.window_days, per configuration set",
            reputation.sent.clone(),
        );
        let seconds_since_notification = Family::<TopicLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "seconds_since_last_notification",
            "Seconds since the last SNS Notification of each topic was received (the silence \
             watchdog), from the archive",
            seconds_since_notification.clone(),
        );
        let delivery = DeliveryMetrics::default();
        registry.register(
            "delivery_attempts",
            "Attempts to deliver outbox entries, by sink and result: delivered, retried (failed, \
             due again on the sink's schedule) or dead (failed for the last time, or its event \
             is gone)",
            delivery.attempts.clone(),
        );
        registry.register(
            "outbox_pending",
            "Outbox entries not yet delivered (due or waiting for their next attempt), per sink, \
             from the store",
            delivery.pending.clone(),
        );
        registry.register(
            "outbox_oldest_pending_age_seconds",
            "Age of the oldest pending outbox entry, per sink (0 when none is pending): the \
             delivery lag",
            delivery.oldest_pending_age.clone(),
        );
        registry.register(
            "outbox_dead",
            "Outbox entries whose retry schedule ran out, per sink (replay them: POST \
             /api/v1/deliveries/replay)",
            delivery.dead.clone(),
        );
        let sqs = SqsMetrics::default();
        registry.register(
            "sqs_messages_received",
            "Messages received from each SQS queue (a message received again after its \
             visibility timeout counts again)",
            sqs.received.clone(),
        );
        registry.register(
            "sqs_messages",
            "Messages handled per SQS queue by result: stored (committed, deleted), duplicate \
             (stored before, deleted), retry (a transient failure; left to reappear after the \
             visibility timeout) or refused (can never succeed; left for the queue's redrive \
             policy)",
            sqs.handled.clone(),
        );
        registry.register(
            "sqs_receive_errors",
            "ReceiveMessage calls that failed, per SQS queue",
            sqs.receive_errors.clone(),
        );
        registry.register(
            "sqs_delete_failures",
            "Stored messages that could not be deleted from their SQS queue (they come back \
             after the visibility timeout, as duplicates)",
            sqs.delete_failures.clone(),
        );
        registry.register(
            "sqs_seconds_since_last_message",
            "Seconds since the last message was received from each SQS queue (since its \
             pollers started, before the first)",
            sqs.seconds_since_message.clone(),
        );
        Self {
            sqs,
            delivery,
            reputation,
            seconds_since_notification,
            last_notifications: Mutex::new(Vec::new()),
            erasures,
            erased_events,
            retention_deleted,
            suppressions_added,
            suppressions_removed,
            api_requests,
            registry,
            requests,
            request_duration,
            events_stored,
            event_duplicates,
            event_errors,
            messages,
            verification_failures,
            certificate_cache,
            certificate_fetches,
            subscription_confirmations,
            store_duration,
        }
    }

    /// The metrics in the Prometheus text exposition format.
    #[must_use]
    pub fn render(&self) -> String {
        let now = Utc::now();
        if let Ok(last) = self.last_notifications.lock() {
            for (topic, at) in last.iter() {
                #[allow(clippy::cast_precision_loss)] // milliseconds far below 2^52
                let seconds = (now - *at).num_milliseconds().max(0) as f64 / 1000.0;
                self.seconds_since_notification
                    .get_or_create(&TopicLabels {
                        topic: topic.clone(),
                    })
                    .set(seconds);
            }
        }
        if let Ok(oldest) = self.delivery.oldest_pending.lock() {
            for (sink, at) in oldest.iter() {
                #[allow(clippy::cast_precision_loss)] // milliseconds far below 2^52
                let seconds = at.map_or(0.0, |at| {
                    (now - at).num_milliseconds().max(0) as f64 / 1000.0
                });
                self.delivery
                    .oldest_pending_age
                    .get_or_create(&SinkLabels { sink: sink.clone() })
                    .set(seconds);
            }
        }
        if let Ok(last) = self.sqs.last_message.lock() {
            for (queue, at) in last.iter() {
                #[allow(clippy::cast_precision_loss)] // milliseconds far below 2^52
                let seconds = (now - *at).num_milliseconds().max(0) as f64 / 1000.0;
                self.sqs
                    .seconds_since_message
                    .get_or_create(&QueueLabels {
                        queue: queue.clone(),
                    })
                    .set(seconds);
            }
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Sets the reputation gauges from `reputation` (the whole, as `(all)`, and each
    /// configuration set), replacing every earlier value: a set no longer in the window goes.
    pub fn set_reputation(&self, reputation: &Reputation) {
        let g = &self.reputation;
        // Set, then remove what is gone: never cleared, so a scrape meanwhile sees every series
        // (an alert's `for` does not restart).
        let Ok(mut shown) = g.shown.lock() else {
            return;
        };
        let mut now_shown = Vec::new();
        let sets = reputation
            .by_configuration_set
            .iter()
            .map(|(set, a)| (set.clone().unwrap_or_else(|| "(none)".into()), a))
            .chain(std::iter::once(("(all)".to_owned(), &reputation.total)));
        for (set, a) in sets {
            let labels = SetLabels {
                configuration_set: set,
            };
            match a.bounce_rate {
                Some(rate) => {
                    g.bounce_rate.get_or_create(&labels).set(rate);
                }
                None => {
                    g.bounce_rate.remove(&labels);
                }
            }
            match a.complaint_rate {
                Some(rate) => {
                    g.complaint_rate.get_or_create(&labels).set(rate);
                }
                None => {
                    g.complaint_rate.remove(&labels);
                }
            }
            g.volume
                .get_or_create(&labels)
                .set(i64::try_from(a.volume).unwrap_or(i64::MAX));
            g.sent
                .get_or_create(&labels)
                .set(i64::try_from(a.counts.sent).unwrap_or(i64::MAX));
            now_shown.push(labels);
        }
        for gone in shown.iter().filter(|l| !now_shown.contains(l)) {
            g.bounce_rate.remove(gone);
            g.complaint_rate.remove(gone);
            g.volume.remove(gone);
            g.sent.remove(gone);
        }
        *shown = now_shown;
    }

    /// Keeps each topic's last notification, for `seconds_since_last_notification` (computed
    /// when the metrics are rendered). Topics that never had one are left out.
    pub fn set_topic_activity(&self, topics: &[TopicActivity]) {
        let last: Vec<(String, DateTime<Utc>)> = topics
            .iter()
            .filter_map(|t| Some((t.topic_arn.clone(), t.last_notification_at?)))
            .collect();
        if let Ok(mut kept) = self.last_notifications.lock() {
            // Under the lock, so that a render cannot bring back a topic being removed.
            self.seconds_since_notification.clear();
            *kept = last;
        }
    }

    /// Counts one relay pass of `sink`.
    pub fn relay_pass(&self, sink: &str, pass: &domain::delivery::RelayPass) {
        for (result, n) in [
            ("delivered", pass.delivered),
            ("retried", pass.retried),
            ("dead", pass.dead),
        ] {
            self.delivery
                .attempts
                .get_or_create(&AttemptLabels {
                    sink: sink.to_owned(),
                    result: result.to_owned(),
                })
                .inc_by(n as u64);
        }
    }

    /// Sets the outbox gauges of each of `sinks` (the configured ones, every one shown, 0 when
    /// it has nothing) from `backlog`, read from the store.
    pub fn set_outbox_backlog(&self, sinks: &[String], backlog: &[domain::delivery::SinkBacklog]) {
        let d = &self.delivery;
        let Ok(mut oldest) = d.oldest_pending.lock() else {
            return;
        };
        oldest.clear();
        for sink in sinks {
            let b = backlog.iter().find(|b| &b.sink == sink);
            let labels = SinkLabels { sink: sink.clone() };
            d.pending
                .get_or_create(&labels)
                .set(b.map_or(0, |b| i64::try_from(b.pending).unwrap_or(i64::MAX)));
            d.dead
                .get_or_create(&labels)
                .set(b.map_or(0, |b| i64::try_from(b.dead).unwrap_or(i64::MAX)));
            oldest.push((sink.clone(), b.and_then(|b| b.oldest_pending)));
            for result in ["delivered", "retried", "dead"] {
                let _ = d.attempts.get_or_create(&AttemptLabels {
                    sink: sink.clone(),
                    result: result.to_owned(),
                });
            }
        }
    }

    /// Records one finished webhook request.
    pub fn observe_request(&self, status: u16, result: Option<&WebhookResult>, elapsed: Duration) {
        self.request_duration.observe(elapsed.as_secs_f64());
        let outcome = match result {
            Some(WebhookResult::Acknowledged(outcome)) => {
                self.observe_outcome(outcome);
                outcome.outcome.as_str()
            }
            Some(WebhookResult::Failed(failure)) => {
                match failure {
                    RequestFailure::Ingest(failure) => self.observe_failure(*failure),
                    // Refused by its header before the use case: counted like a bare record.
                    RequestFailure::RawDelivery => {
                        self.observe_failure(IngestFailure::RawDelivery);
                    }
                    _ => {}
                }
                failure.code()
            }
            None => "unknown",
        };
        self.requests
            .get_or_create(&RequestLabels {
                outcome: outcome.to_owned(),
                status: status.to_string(),
            })
            .inc();
    }

    /// Counts a failure of the use case where it belongs. Exhaustive on purpose: a new kind of
    /// failure must be given its place here.
    fn observe_failure(&self, failure: IngestFailure) {
        match failure {
            IngestFailure::Malformed
            | IngestFailure::RawDelivery
            | IngestFailure::Forbidden(ForbiddenReason::Verification(_))
            | IngestFailure::Unavailable(Dependency::Certificate) => {
                self.verification_failures
                    .get_or_create(&ReasonLabels {
                        reason: failure.code().to_owned(),
                    })
                    .inc();
            }
            IngestFailure::Forbidden(ForbiddenReason::UntrustedSubscribeUrl) => {
                self.confirmation("untrusted");
            }
            IngestFailure::ConfirmationRefused => self.confirmation("refused"),
            IngestFailure::Unavailable(Dependency::SubscriptionConfirmation) => {
                self.confirmation("failed");
            }
            IngestFailure::Forbidden(ForbiddenReason::TopicNotAllowed)
            | IngestFailure::Forbidden(ForbiddenReason::MessageTooOld)
            | IngestFailure::Unavailable(Dependency::Store) => {}
        }
    }

    fn observe_outcome(&self, outcome: &domain::IngestOutcome) {
        self.messages
            .get_or_create(&ResultLabels {
                result: outcome.outcome.as_str().to_owned(),
            })
            .inc();
        if let Some(event_type) = outcome.event_type {
            let labels = EventTypeLabels {
                event_type: event_type.as_str().to_owned(),
            };
            self.events_stored
                .get_or_create(&labels)
                .inc_by(outcome.processed as u64);
            self.event_duplicates
                .get_or_create(&labels)
                .inc_by(outcome.duplicates as u64);
        }
        self.event_errors.inc_by(outcome.errors as u64);
        if outcome.message_type == SnsMessageType::SubscriptionConfirmation
            && outcome.outcome == MessageOutcome::Subscription
        {
            self.confirmation(if outcome.subscription_confirmed {
                "confirmed"
            } else {
                "pending"
            });
        }
    }

    fn confirmation(&self, result: &str) {
        self.subscription_confirmations
            .get_or_create(&ResultLabels {
                result: result.to_owned(),
            })
            .inc();
    }

    fn observe_store(&self, operation: &str, started: Instant) {
        self.store_duration
            .get_or_create(&OperationLabels {
                operation: operation.to_owned(),
            })
            .observe(started.elapsed().as_secs_f64());
    }
}

/// Middleware (registered with [`actix_web::middleware::from_fn`]) that times every webhook
/// request and records it, with the [`WebhookResult`] the handler attached to the response, in
/// the [`Metrics`] found in the app data. Other paths pass through untouched.
///
/// # Errors
/// Only what the wrapped service returns.
pub async fn observe_webhook(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let metrics = (req.path() == WEBHOOK_PATH)
        .then(|| req.app_data::<web::Data<Metrics>>().cloned())
        .flatten();
    let started = Instant::now();
    let response = next.call(req).await?;
    if let Some(metrics) = metrics {
        let extensions = response.response().extensions();
        metrics.observe_request(
            response.status().as_u16(),
            extensions.get::<WebhookResult>(),
            started.elapsed(),
        );
    }
    Ok(response)
}

/// Counts `/api/v1` requests by route pattern and status. A path no route matches is counted
/// under `unmatched`, so that no address (or anything else a client chose) becomes a label.
pub async fn observe_api(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let metrics = req
        .path()
        .starts_with(adapters_http::API_PREFIX)
        .then(|| req.app_data::<web::Data<Metrics>>().cloned())
        .flatten();
    let response = next.call(req).await?;
    if let Some(metrics) = metrics {
        let route = response
            .request()
            .match_pattern()
            .filter(|pattern| pattern.starts_with(adapters_http::API_PREFIX))
            .unwrap_or_else(|| "unmatched".to_owned());
        metrics
            .api_requests
            .get_or_create(&ApiLabels {
                route,
                status: response.status().as_u16().to_string(),
            })
            .inc();
    }
    Ok(response)
}

/// Counts the suppression list's changes.
#[derive(Debug, Clone)]
pub struct SuppressionMetrics(pub Arc<Metrics>);

impl domain::ports::SuppressionObserver for SuppressionMetrics {
    fn added(&self, reason: domain::suppression::SuppressionReason) {
        self.0
            .suppressions_added
            .get_or_create(&ReasonLabels {
                reason: reason.as_str().into(),
            })
            .inc();
    }

    fn removed(&self) {
        self.0.suppressions_removed.inc();
    }
}

/// Counts erasures that changed something, and the events they deleted.
#[derive(Debug, Clone)]
pub struct ErasureMetrics(pub Arc<Metrics>);

impl domain::history::ErasureObserver for ErasureMetrics {
    fn erased(&self, report: &domain::history::ErasureReport) {
        self.0.erasures.inc();
        self.0.erased_events.inc_by(report.events_deleted);
    }
}

impl Metrics {
    /// Counts `count` of `kind` (`events`, `messages`, `raw_bodies`) removed by retention.
    pub fn retention_deleted(&self, kind: &str, count: usize) {
        self.retention_deleted
            .get_or_create(&KindLabels { kind: kind.into() })
            .inc_by(count as u64);
    }
}

/// Counts certificate cache hits and misses and downloads.
#[derive(Debug, Clone)]
pub struct CertificateMetrics(pub Arc<Metrics>);

impl SourceObserver for CertificateMetrics {
    fn cache_hit(&self, _url: &Url) {
        self.0
            .certificate_cache
            .get_or_create(&ResultLabels {
                result: "hit".into(),
            })
            .inc();
    }

    fn cache_miss(&self, _url: &Url) {
        self.0
            .certificate_cache
            .get_or_create(&ResultLabels {
                result: "miss".into(),
            })
            .inc();
    }

    fn fetched(&self, _url: &Url, result: Result<(), &VerifyError>) {
        let result = if result.is_ok() { "ok" } else { "error" };
        self.0
            .certificate_fetches
            .get_or_create(&ResultLabels {
                result: result.into(),
            })
            .inc();
    }
}

/// An [`EventStore`] that times every call of the store it wraps.
#[derive(Debug)]
pub struct MeasuredStore<S> {
    inner: Arc<S>,
    metrics: Arc<Metrics>,
}

impl<S> MeasuredStore<S> {
    pub fn new(inner: Arc<S>, metrics: Arc<Metrics>) -> Self {
        Self { inner, metrics }
    }
}

#[async_trait]
impl<S: EventStore> EventStore for MeasuredStore<S> {
    async fn store_notification(
        &self,
        message: ArchivedMessage,
        events: Vec<PlatformEvent>,
    ) -> Result<StoreReport, StoreError> {
        let started = Instant::now();
        let result = self.inner.store_notification(message, events).await;
        self.metrics.observe_store("store_notification", started);
        result
    }

    async fn record_subscription(
        &self,
        message: ArchivedMessage,
        change: SubscriptionChange,
    ) -> Result<(), StoreError> {
        let started = Instant::now();
        let result = self.inner.record_subscription(message, change).await;
        self.metrics.observe_store("record_subscription", started);
        result
    }

    async fn change_subscription(&self, change: SubscriptionChange) -> Result<(), StoreError> {
        let started = Instant::now();
        let result = self.inner.change_subscription(change).await;
        self.metrics.observe_store("change_subscription", started);
        result
    }

    async fn health_check(&self) -> Result<(), StoreError> {
        let started = Instant::now();
        let result = self.inner.health_check().await;
        self.metrics.observe_store("health_check", started);
        result
    }
}

/// The ingest use case as the SQS pollers call it, counted into the same series as the
/// webhook's requests (`messages_total`, `events_stored_total`, `verification_failures_total`,
/// ...), which the webhook's middleware counts for HTTP.
pub struct MeasuredIngest {
    inner: Arc<dyn domain::Ingest>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for MeasuredIngest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeasuredIngest").finish_non_exhaustive()
    }
}

impl MeasuredIngest {
    #[must_use]
    pub fn new(inner: Arc<dyn domain::Ingest>, metrics: Arc<Metrics>) -> Self {
        Self { inner, metrics }
    }
}

#[async_trait]
impl domain::Ingest for MeasuredIngest {
    async fn ingest(&self, body: Vec<u8>) -> Result<domain::IngestOutcome, domain::IngestError> {
        self.inner.ingest(body).await
    }

    async fn ingest_queued(
        &self,
        queued: domain::QueuedMessage,
    ) -> Result<domain::IngestOutcome, domain::IngestError> {
        let result = self.inner.ingest_queued(queued).await;
        match &result {
            // A subscription message from a queue is only archived: not a confirmation.
            Ok(outcome) if outcome.message_type == SnsMessageType::Notification => {
                self.metrics.observe_outcome(outcome);
            }
            Ok(_) => {}
            Err(error) => self.metrics.observe_failure(error.kind()),
        }
        result
    }

    async fn ready(&self) -> Result<(), StoreError> {
        self.inner.ready().await
    }
}

/// Tells the SQS metrics what the pollers do.
#[derive(Debug, Clone)]
pub struct QueueMetrics(pub Arc<Metrics>);

impl QueueMetrics {
    /// Starts the clock of `queue`'s silence gauge: its pollers start now.
    pub fn started(&self, queue: &str) {
        self.touch(queue);
    }

    fn touch(&self, queue: &str) {
        let Ok(mut last) = self.0.sqs.last_message.lock() else {
            return;
        };
        let now = Utc::now();
        match last.iter_mut().find(|(q, _)| q == queue) {
            Some((_, at)) => *at = now,
            None => last.push((queue.to_owned(), now)),
        }
    }

    fn labels(queue: &str) -> QueueLabels {
        QueueLabels {
            queue: queue.to_owned(),
        }
    }
}

impl adapters_sqs::QueueObserver for QueueMetrics {
    fn received(&self, queue: &str, count: usize) {
        if count > 0 {
            self.0
                .sqs
                .received
                .get_or_create(&Self::labels(queue))
                .inc_by(count as u64);
            self.touch(queue);
        }
    }

    fn handled(&self, queue: &str, handled: adapters_sqs::Handled) {
        self.0
            .sqs
            .handled
            .get_or_create(&QueueResultLabels {
                queue: queue.to_owned(),
                result: handled.as_str().to_owned(),
            })
            .inc();
    }

    fn receive_failed(&self, queue: &str) {
        self.0
            .sqs
            .receive_errors
            .get_or_create(&Self::labels(queue))
            .inc();
    }

    fn delete_failed(&self, queue: &str, count: usize) {
        self.0
            .sqs
            .delete_failures
            .get_or_create(&Self::labels(queue))
            .inc_by(count as u64);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use domain::ports::MockEventStore;
    use domain::{EventType, IngestOutcome};

    use super::*;

    fn outcome(processed: usize, duplicates: usize) -> IngestOutcome {
        IngestOutcome {
            message_type: SnsMessageType::Notification,
            message_id: "m".into(),
            topic_arn: "t".into(),
            outcome: MessageOutcome::Processed,
            ses_type: Some("Bounce".into()),
            event_type: Some(EventType::Bounce),
            processed,
            duplicates,
            errors: 1,
            subscription_confirmed: false,
            redelivery: false,
        }
    }

    #[test]
    fn requests_events_and_failures_are_counted() {
        let metrics = Metrics::new();

        metrics.observe_request(
            200,
            Some(&WebhookResult::Acknowledged(outcome(2, 1))),
            Duration::from_millis(3),
        );
        metrics.observe_request(
            403,
            Some(&WebhookResult::Failed(RequestFailure::Ingest(
                IngestFailure::Forbidden(ForbiddenReason::Verification(
                    domain::ports::RejectReason::BadSignature,
                )),
            ))),
            Duration::from_millis(1),
        );
        let text = metrics.render();

        assert!(
            text.contains(r#"ses_webhook_requests_total{outcome="processed",status="200"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"ses_webhook_requests_total{outcome="bad_signature",status="403"} 1"#)
        );
        assert!(text.contains(r#"ses_webhook_events_stored_total{event_type="email_bounce"} 2"#));
        assert!(
            text.contains(r#"ses_webhook_event_duplicates_total{event_type="email_bounce"} 1"#)
        );
        assert!(text.contains("ses_webhook_event_errors_total 1"));
        assert!(
            text.contains(r#"ses_webhook_verification_failures_total{reason="bad_signature"} 1"#)
        );
        assert!(text.contains("ses_webhook_request_duration_seconds_count 2"));
    }

    #[test]
    fn confirmations_are_counted_by_result() {
        let metrics = Metrics::new();
        let mut confirmed = outcome(0, 0);
        confirmed.message_type = SnsMessageType::SubscriptionConfirmation;
        confirmed.outcome = MessageOutcome::Subscription;
        confirmed.subscription_confirmed = true;

        metrics.observe_request(
            200,
            Some(&WebhookResult::Acknowledged(confirmed)),
            Duration::ZERO,
        );
        metrics.observe_request(
            503,
            Some(&WebhookResult::Failed(RequestFailure::Ingest(
                IngestFailure::Unavailable(Dependency::SubscriptionConfirmation),
            ))),
            Duration::ZERO,
        );
        metrics.observe_request(
            422,
            Some(&WebhookResult::Failed(RequestFailure::Ingest(
                IngestFailure::ConfirmationRefused,
            ))),
            Duration::ZERO,
        );
        metrics.observe_request(
            403,
            Some(&WebhookResult::Failed(RequestFailure::Ingest(
                IngestFailure::Forbidden(ForbiddenReason::UntrustedSubscribeUrl),
            ))),
            Duration::ZERO,
        );
        let text = metrics.render();

        assert!(
            text.contains(r#"ses_webhook_subscription_confirmations_total{result="confirmed"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"ses_webhook_subscription_confirmations_total{result="failed"} 1"#)
        );
        assert!(
            text.contains(r#"ses_webhook_subscription_confirmations_total{result="refused"} 1"#)
        );
        assert!(
            text.contains(r#"ses_webhook_subscription_confirmations_total{result="untrusted"} 1"#)
        );
        assert!(
            text.contains(
                r#"ses_webhook_requests_total{outcome="confirmation_refused",status="422"} 1"#
            ),
            "{text}"
        );
        assert!(!text.contains("verification_failures_total{"), "{text}");
    }

    #[tokio::test]
    async fn the_store_is_timed_per_operation() {
        let metrics = Arc::new(Metrics::new());
        let mut inner = MockEventStore::new();
        inner.expect_health_check().times(1).returning(|| Ok(()));
        let store = MeasuredStore::new(Arc::new(inner), Arc::clone(&metrics));

        store.health_check().await.unwrap();

        assert!(
            metrics.render().contains(
                r#"ses_webhook_store_duration_seconds_count{operation="health_check"} 1"#
            )
        );
    }

    #[test]
    fn reputation_gauges_follow_the_configuration_sets_in_the_window() {
        use domain::reputation::{Counts, ReputationPolicy};
        let policy = ReputationPolicy::default();
        let assess = |sent, hard| {
            policy.assess(Counts {
                sent,
                hard_bounces: hard,
                ..Counts::default()
            })
        };
        let at = chrono::Utc::now();
        let reputation = |sets: Vec<(Option<String>, domain::reputation::Assessment)>| Reputation {
            window_days: 7,
            configuration_set: None,
            from: at,
            to: at,
            total: assess(400, 8),
            by_configuration_set: sets,
        };
        let metrics = Metrics::new();
        metrics.set_reputation(&reputation(vec![
            (None, assess(0, 0)),
            (Some("tx".into()), assess(400, 8)),
        ]));
        let text = metrics.render();
        assert!(
            text.contains(r#"ses_webhook_reputation_bounce_rate{configuration_set="tx"} 0.02"#)
        );
        assert!(
            text.contains(r#"ses_webhook_reputation_bounce_rate{configuration_set="(all)"} 0.02"#)
        );
        assert!(text.contains(r#"ses_webhook_reputation_volume{configuration_set="(none)"} 0"#));
        // No volume, no rate.
        assert!(
            !text.contains(r#"ses_webhook_reputation_bounce_rate{configuration_set="(none)"}"#)
        );
        // A set gone from the window goes from the gauges.
        metrics.set_reputation(&reputation(vec![(None, assess(10, 1))]));
        let text = metrics.render();
        assert!(!text.contains(r#"configuration_set="tx""#), "{text}");
        assert!(
            text.contains(r#"ses_webhook_reputation_bounce_rate{configuration_set="(none)"} 0.1"#)
        );
    }

    #[test]
    fn certificate_lookups_are_counted() {
        let metrics = Arc::new(Metrics::new());
        let observer = CertificateMetrics(Arc::clone(&metrics));
        let url = Url::parse("https://sns.us-east-1.amazonaws.com/a.pem").unwrap();

        observer.cache_miss(&url);
        observer.fetched(&url, Ok(()));
        observer.cache_hit(&url);
        observer.cache_hit(&url);
        let text = metrics.render();

        assert!(
            text.contains(r#"ses_webhook_certificate_cache_total{result="hit"} 2"#),
            "{text}"
        );
        assert!(text.contains(r#"ses_webhook_certificate_cache_total{result="miss"} 1"#));
        assert!(text.contains(r#"ses_webhook_certificate_fetches_total{result="ok"} 1"#));
    }
}
