//! Routes and handlers.

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use domain::{Dependency, Ingest, IngestFailure, IngestOutcome};
use futures::StreamExt;
use serde::Serialize;

use crate::error::{ApiError, RequestFailure};

/// Where SNS delivers.
pub const WEBHOOK_PATH: &str = "/api/rpc/webhooks/aws/ses";

/// SNS messages are at most 256 KiB of payload; the envelope adds escaping and signature.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

/// How long a client may take to send the whole body. actix times out only the request head;
/// without this a client that stalls mid-body would hold its connection for ever.
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(15);

/// Settings of the HTTP adapter.
#[derive(Debug, Clone, Copy)]
pub struct HttpSettings {
    pub max_body_bytes: usize,
    pub body_read_timeout: Duration,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            body_read_timeout: DEFAULT_BODY_READ_TIMEOUT,
        }
    }
}

/// What a webhook request came to, attached to its response's extensions so that middleware
/// (metrics, access logs) can read it without parsing the body, and match on types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookResult {
    /// Acknowledged with 200.
    Acknowledged(IngestOutcome),
    /// Refused or failed: what kind of failure ([`RequestFailure::code`] is the body's `error`).
    Failed(RequestFailure),
}

/// The body of a successful delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngestResponse {
    pub success: bool,
    pub processed: usize,
    pub duplicates: usize,
    pub errors: usize,
    pub subscription_confirmed: bool,
}

impl From<&IngestOutcome> for IngestResponse {
    fn from(outcome: &IngestOutcome) -> Self {
        Self {
            success: true,
            processed: outcome.processed,
            duplicates: outcome.duplicates,
            errors: outcome.errors,
            subscription_confirmed: outcome.subscription_confirmed,
        }
    }
}

/// Registers the webhook and health routes, handing deliveries to `ingest` (the inbound port of
/// the ingest use case). Another method on one of these paths is answered 405 with `Allow` and
/// a JSON error body; a path no route serves (in the whole app) 404 with a JSON error body.
pub fn configure(cfg: &mut web::ServiceConfig, ingest: Arc<dyn Ingest>, settings: HttpSettings) {
    cfg.app_data(web::Data::new(settings)).service(
        web::resource(WEBHOOK_PATH)
            .route(web::post().to(ses_webhook))
            .default_service(web::to(|| {
                refuse(ApiError::MethodNotAllowed { allow: "POST" })
            })),
    );
    configure_health(cfg, ingest);
}

/// Registers the health routes alone (`/healthz`, `/readyz`), for a process that takes SNS
/// deliveries from SQS queues only (`serve --no-http`); a path no route serves is answered 404
/// with a JSON error body. Readiness asks `ingest` whether the store is ready, and the
/// [`QueueStates`] in the app data, if any, about the queues.
pub fn configure_health(cfg: &mut web::ServiceConfig, ingest: Arc<dyn Ingest>) {
    cfg.app_data(web::Data::from(ingest))
        .service(
            web::resource("/healthz")
                .route(web::get().to(healthz))
                .route(web::head().to(healthz))
                .default_service(web::to(|| {
                    refuse(ApiError::MethodNotAllowed { allow: GET })
                })),
        )
        .service(
            web::resource("/readyz")
                .route(web::get().to(readyz))
                .route(web::head().to(readyz))
                .default_service(web::to(|| {
                    refuse(ApiError::MethodNotAllowed { allow: GET })
                })),
        )
        .default_service(web::to(|| refuse(ApiError::NotFound)));
}

/// The methods of the health routes (HEAD answers like GET, without the body).
const GET: &str = "GET, HEAD";

/// Answers with `error` (its status and JSON body).
async fn refuse(error: ApiError) -> Result<HttpResponse, ApiError> {
    Err(error)
}

fn header_str<'r>(req: &'r HttpRequest, name: &str) -> &'r str {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// The whole body, into one buffer that is then handed on by value (never copied again): the
/// webhook's and the API's.
pub(crate) async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<Vec<u8>, ApiError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(ApiError::TooLarge { limit });
    }
    let mut body = Vec::with_capacity(declared.unwrap_or(8 * 1024).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::BodyRead(e.to_string()))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[tracing::instrument(
    name = "ses_webhook",
    skip_all,
    fields(
        sns_message_id = header_str(&req, "x-amz-sns-message-id"),
        sns_topic_arn = header_str(&req, "x-amz-sns-topic-arn"),
        sns_message_type = header_str(&req, "x-amz-sns-message-type"),
    )
)]
async fn ses_webhook(
    req: HttpRequest,
    payload: web::Payload,
    ingest: web::Data<dyn Ingest>,
    settings: web::Data<HttpSettings>,
) -> Result<HttpResponse, ApiError> {
    let result = handle(&req, payload, ingest.get_ref(), &settings).await;
    match &result {
        Ok(outcome) => tracing::info!(
            outcome = outcome.outcome.as_str(),
            message_id = %outcome.message_id,
            topic_arn = %outcome.topic_arn,
            message_type = outcome.message_type.as_str(),
            ses_type = outcome.ses_type.as_deref().unwrap_or_default(),
            processed = outcome.processed,
            duplicates = outcome.duplicates,
            errors = outcome.errors,
            subscription_confirmed = outcome.subscription_confirmed,
            "delivery acknowledged"
        ),
        Err(error) if error.kind().status().is_server_error() => {
            tracing::error!(error = %error, code = error.code(), "delivery not stored; SNS will retry");
        }
        Err(error) => tracing::warn!(error = %error, code = error.code(), "delivery refused"),
    }
    let outcome = result?;
    let mut response = HttpResponse::Ok().json(IngestResponse::from(&outcome));
    response
        .extensions_mut()
        .insert(WebhookResult::Acknowledged(outcome));
    Ok(response)
}

async fn handle(
    req: &HttpRequest,
    payload: web::Payload,
    ingest: &dyn Ingest,
    settings: &HttpSettings,
) -> Result<IngestOutcome, ApiError> {
    if header_str(req, "x-amz-sns-rawdelivery").eq_ignore_ascii_case("true") {
        return Err(ApiError::RawDelivery);
    }
    let body = tokio::time::timeout(
        settings.body_read_timeout,
        read_body(req, payload, settings.max_body_bytes),
    )
    .await
    .map_err(|_| ApiError::BodyTimeout {
        after: settings.body_read_timeout,
    })??;
    Ok(ingest.ingest(body).await?)
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// One intake queue's state, as `GET /readyz` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueState {
    /// The queue's name.
    pub queue: String,
    /// `Some(true)`: its last `ReceiveMessage` answered; `Some(false)`: it failed; `None`: none
    /// has answered yet.
    pub reachable: Option<bool>,
}

/// The intake queues of this process, for readiness: registered with
/// `app_data(web::Data::from(Arc<dyn QueueStates>))` when there are queues.
pub trait QueueStates: Send + Sync {
    /// Every queue, in the configuration's order.
    fn queues(&self) -> Vec<QueueState>;
    /// `true` when the process takes SNS deliveries from its queues only (no webhook): a queue
    /// that cannot be reached then makes it not ready. Otherwise queues are only reported.
    fn queues_only(&self) -> bool;
}

async fn readyz(
    ingest: web::Data<dyn Ingest>,
    queues: Option<web::Data<dyn QueueStates>>,
) -> HttpResponse {
    let states = queues.as_ref().map(|q| q.queues()).unwrap_or_default();
    let listed: Vec<serde_json::Value> = states
        .iter()
        .map(|q| {
            let status = match q.reachable {
                Some(true) => "reachable",
                Some(false) => "unreachable",
                None => "unknown",
            };
            serde_json::json!({ "queue": q.queue, "status": status })
        })
        .collect();
    let mut body = match ingest.ready().await {
        Ok(()) => serde_json::json!({ "status": "ready" }),
        Err(error) => {
            tracing::warn!(error = %error, "not ready");
            serde_json::json!({
                "status": "unavailable",
                "error": IngestFailure::Unavailable(Dependency::Store).code(),
            })
        }
    };
    let queues_only = queues.as_ref().is_some_and(|q| q.queues_only());
    if body["status"] == "ready" && queues_only && states.iter().any(|q| q.reachable == Some(false))
    {
        body = serde_json::json!({ "status": "unavailable", "error": "queue_unreachable" });
    }
    if !listed.is_empty() {
        body["queues"] = serde_json::Value::Array(listed);
    }
    if body["status"] == "ready" {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}
