//! The OpenAPI description of the whole service, generated from the code: the `/api/v1`
//! handlers' annotations and DTOs, and the webhook, health and metrics routes described here.
//! Served at `GET /api/v1/openapi.json`; `docs/openapi.json` is the committed copy (a test keeps
//! them identical; `ses-webhook openapi > docs/openapi.json` regenerates it).

use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::api::deliveries::{
    DeliveryDto, DeliveryPageDto, DeliveryStateDto, ReplayRequest, ReplayResponse,
};
use crate::api::events::{
    CarrierDto, ErasureDto, EventDto, EventPageDto, MessageTimelineDto, OutcomeDto,
};
use crate::api::reputation::{
    AssessmentDto, ConfigurationSetReputationDto, DailyReputationDto, DayDto, DenominatorDto,
    PolicyDto, ReputationDto, StatusDto, ThresholdsDto,
};
use crate::api::{
    ActionDto, CheckRequest, CheckResponse, HistoryDto, HistoryItemDto, PutRequest, ReasonDto,
    SuppressionDto, SuppressionPageDto,
};
use crate::error::ErrorBody;
use crate::handler::IngestResponse;

/// Every `error` code of the service's error bodies, the webhook's and the API's.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub(crate) enum ErrorCode {
    MalformedMessage,
    RawMessageDelivery,
    BodyReadFailed,
    BadSignature,
    UnsupportedSignatureVersion,
    UntrustedCertificateUrl,
    CertificateInvalid,
    TopicNotAllowed,
    MessageTooOld,
    UntrustedSubscribeUrl,
    ConfirmationRefused,
    PayloadTooLarge,
    RequestTimeout,
    MethodNotAllowed,
    NotFound,
    StoreUnavailable,
    CertificateUnavailable,
    ConfirmationFailed,
    Unauthorized,
    Forbidden,
    InvalidAddress,
    InvalidCursor,
    InvalidTime,
    InvalidReason,
    InvalidLimit,
    TooManyAddresses,
    NoAddresses,
    InvalidJson,
    UnsupportedMediaType,
    NotSuppressed,
    InvalidMessageId,
    InvalidType,
    InvalidBounceType,
    InvalidTag,
    UnknownParameter,
    InvalidParameter,
    NotAcceptable,
    UnknownSink,
    InvalidState,
    InvalidEventIds,
}

/// `GET /healthz` body.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Health {
    /// Always `ok`.
    status: String,
}

/// `GET /readyz` body.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Readiness {
    /// `ready` or `unavailable`.
    status: String,
    /// When not ready: `store_unavailable`, or `queue_unreachable` (a process reading SQS
    /// queues only, `serve --no-http`, one of whose queues cannot be reached).
    #[schema(nullable = false)]
    error: Option<String>,
    /// The SQS queues this process reads, when it reads any.
    #[schema(nullable = false)]
    queues: Option<Vec<QueueReadiness>>,
}

/// One SQS queue in `GET /readyz`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct QueueReadiness {
    /// The queue's name (the last segment of its URL).
    queue: String,
    /// `reachable` (its last ReceiveMessage answered), `unreachable` (it failed) or `unknown`
    /// (none has answered yet).
    status: String,
}

#[utoipa::path(
    post,
    path = "/api/rpc/webhooks/aws/ses",
    tag = "webhook",
    operation_id = "receiveSnsDelivery",
    summary = "An Amazon SNS delivery: Notification, SubscriptionConfirmation or UnsubscribeConfirmation",
    description = "The body is read as raw bytes whatever the content type. It is verified (SignatureVersion 1 or 2, signing certificate from an Amazon SNS host), authorised (topic allow-list, optional maximum age), then processed. Request headers are never trusted; only the signed body counts. Every status is part of the contract with SNS: 2xx only after the events (and the suppression entries they cause) are committed; 4xx is final (SNS does not retry); 5xx makes SNS retry.",
    request_body(content = String, content_type = "text/plain", description = "An SNS message envelope (JSON text) exactly as SNS sends it."),
    responses(
        (status = 200, description = "Verified and committed. For notifications the counts say what became of the platform events; subscription confirmations say whether the subscription was confirmed.", body = IngestResponse),
        (status = 400, description = "Not an SNS message (malformed body or envelope, invalid UTF-8), or raw message delivery is enabled. Final.", body = ErrorBody),
        (status = 403, description = "Not authentic or not authorised: bad signature, unsupported signature version, untrusted or invalid certificate, topic not allowed, message too old (nothing was stored); or an untrusted SubscribeURL (the SubscriptionConfirmation is archived and left pending, the URL never visited). Final.", body = ErrorBody),
        (status = 408, description = "The client did not send the whole body within server.body_read_timeout_secs.", body = ErrorBody),
        (status = 413, description = "The body is larger than server.max_body_bytes.", body = ErrorBody),
        (status = 422, description = "A verified, allowed SubscriptionConfirmation whose SubscribeURL Amazon SNS refused (a 4xx other than 408 and 429 from SNS: the token expired or was already used, the topic was deleted). The subscription stays pending. Final: request a new confirmation from SNS.", body = ErrorBody),
        (status = 503, description = "The store, the signing certificate or the SNS confirmation call is unavailable. Nothing was acknowledged; SNS retries.", body = ErrorBody),
    )
)]
#[allow(dead_code)]
fn webhook() {}

#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    operation_id = "health",
    summary = "Liveness: the process is running",
    responses((status = 200, description = "Alive.", body = Health))
)]
#[allow(dead_code)]
fn healthz() {}

#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    operation_id = "ready",
    summary = "Readiness: the store is reachable and its migrations are applied",
    responses(
        (status = 200, description = "Ready to take deliveries. The SQS queues the process reads, if any, are listed with their state; with the webhook served, a queue that cannot be reached is reported but does not make the process unready.", body = Readiness),
        (status = 503, description = "The store is unreachable or its schema is not up to date; or the process reads SQS queues only (serve --no-http) and one of them cannot be reached.", body = Readiness),
    )
)]
#[allow(dead_code)]
fn readyz() {}

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "health",
    operation_id = "metrics",
    summary = "Prometheus metrics (on the main port unless metrics.bind sets a separate listener)",
    responses((status = 200, description = "Metrics in the OpenMetrics text format.", body = String, content_type = "application/openmetrics-text"))
)]
#[allow(dead_code)]
fn metrics() {}

/// The bearer token scheme of `/api/v1`.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API token (`sesw_...`) from `ses-webhook api-token create`. Scopes: \
                         `read`, `write` (includes read).",
                    ))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "ses-webhook",
        description = "Receives Amazon SES events delivered by Amazon SNS, stores them as platform email events, keeps the suppression list they imply, and serves their history. The webhook is called by SNS; the API under /api/v1 by the sender's systems, with a bearer token. Errors always have the shape {\"success\": false, \"error\": code, \"message\": text}."
    ),
    paths(
        webhook,
        healthz,
        readyz,
        metrics,
        crate::api::openapi_document,
        crate::api::check,
        crate::api::list,
        crate::api::get,
        crate::api::put,
        crate::api::delete,
        crate::api::history,
        crate::api::events::events,
        crate::api::events::message,
        crate::api::events::erase,
        crate::api::reputation::reputation,
        crate::api::reputation::daily,
        crate::api::deliveries::list,
        crate::api::deliveries::replay,
    ),
    components(schemas(
        IngestResponse,
        ErrorBody,
        ErrorCode,
        Health,
        Readiness,
        QueueReadiness,
        SuppressionDto,
        ReasonDto,
        CheckRequest,
        CheckResponse,
        SuppressionPageDto,
        PutRequest,
        HistoryDto,
        HistoryItemDto,
        ActionDto,
        EventDto,
        EventPageDto,
        MessageTimelineDto,
        CarrierDto,
        OutcomeDto,
        ErasureDto,
        ReputationDto,
        ConfigurationSetReputationDto,
        AssessmentDto,
        DenominatorDto,
        StatusDto,
        PolicyDto,
        ThresholdsDto,
        DailyReputationDto,
        DayDto,
        DeliveryDto,
        DeliveryPageDto,
        DeliveryStateDto,
        ReplayRequest,
        ReplayResponse,
    )),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

/// The OpenAPI document.
#[must_use]
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The OpenAPI document as pretty-printed JSON with a final newline: what `docs/openapi.json`
/// holds.
#[must_use]
pub fn openapi_json() -> String {
    let mut json = openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    json.push('\n');
    json
}
