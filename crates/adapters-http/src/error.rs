//! The error body and the mapping of failures to HTTP status codes: the one place where a
//! failure becomes a status.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use domain::{IngestError, IngestFailure};
use serde::Serialize;

use crate::handler::WebhookResult;

/// Every way a webhook request can fail, with the status SNS must see.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body exceeds the configured limit.
    #[error("request body larger than {limit} bytes")]
    TooLarge { limit: usize },
    /// The client did not send the whole body in time.
    #[error("the request body did not arrive within {} s", after.as_secs())]
    BodyTimeout { after: std::time::Duration },
    /// The body could not be read from the connection.
    #[error("could not read the request body: {0}")]
    BodyRead(String),
    /// Raw message delivery is on: the body is unsigned and can never be authenticated.
    #[error(
        "raw message delivery is enabled on this subscription; SNS does not sign raw deliveries, \
         so they cannot be authenticated: turn RawMessageDelivery off"
    )]
    RawDelivery,
    /// The path exists, but not for this method (`GET` on the webhook, say).
    #[error("this path answers {allow} only")]
    MethodNotAllowed {
        /// The methods the path answers, as the `Allow` header lists them.
        allow: &'static str,
    },
    /// No route serves this path.
    #[error("no such path; SNS delivers to POST /api/rpc/webhooks/aws/ses")]
    NotFound,
    /// The ingest use case refused or could not complete the request.
    #[error(transparent)]
    Ingest(#[from] IngestError),
}

/// What kind of failure an [`ApiError`] is, without its detail: `Copy`, attached to the
/// response (inside [`WebhookResult::Failed`]) so that middleware matches on it, never on the
/// error code's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestFailure {
    /// 413 `payload_too_large`.
    TooLarge,
    /// 408 `request_timeout`.
    BodyTimeout,
    /// 400 `body_read_failed`.
    BodyRead,
    /// 400 `raw_message_delivery`.
    RawDelivery,
    /// 405 `method_not_allowed`, with `Allow`.
    MethodNotAllowed,
    /// 404 `not_found`.
    NotFound,
    /// What the ingest use case answered: 400, 403, 422 or 503.
    Ingest(IngestFailure),
}

impl RequestFailure {
    /// Stable machine-readable code of the error body, logs and metrics.
    #[must_use]
    pub fn code(self) -> &'static str {
        match self {
            Self::TooLarge => "payload_too_large",
            Self::BodyRead => "body_read_failed",
            Self::BodyTimeout => "request_timeout",
            Self::RawDelivery => "raw_message_delivery",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::NotFound => "not_found",
            Self::Ingest(failure) => failure.code(),
        }
    }

    /// The status SNS sees: 4xx for what can never succeed (SNS does not retry it), 503 for
    /// what may succeed later (SNS retries).
    #[must_use]
    pub fn status(self) -> StatusCode {
        match self {
            Self::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::BodyRead
            | Self::RawDelivery
            | Self::Ingest(IngestFailure::Malformed | IngestFailure::RawDelivery) => {
                StatusCode::BAD_REQUEST
            }
            Self::Ingest(IngestFailure::Forbidden(_)) => StatusCode::FORBIDDEN,
            Self::Ingest(IngestFailure::ConfirmationRefused) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Ingest(IngestFailure::Unavailable(_)) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// The JSON body of every error response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Always `false`.
    pub success: bool,
    /// A stable code naming the problem.
    #[schema(value_type = crate::openapi::ErrorCode)]
    pub error: &'static str,
    /// One sentence for a person; it may change. For 5xx it says nothing internal.
    pub message: String,
}

impl ApiError {
    /// What kind of failure this is.
    #[must_use]
    pub fn kind(&self) -> RequestFailure {
        match self {
            Self::TooLarge { .. } => RequestFailure::TooLarge,
            Self::BodyRead(_) => RequestFailure::BodyRead,
            Self::BodyTimeout { .. } => RequestFailure::BodyTimeout,
            Self::RawDelivery => RequestFailure::RawDelivery,
            Self::MethodNotAllowed { .. } => RequestFailure::MethodNotAllowed,
            Self::NotFound => RequestFailure::NotFound,
            Self::Ingest(error) => RequestFailure::Ingest(error.kind()),
        }
    }

    /// Stable machine-readable code for the error body, logs and metrics.
    #[must_use]
    pub fn code(&self) -> &'static str {
        self.kind().code()
    }

    fn public_message(&self) -> String {
        match self {
            // Server-side failures say nothing internal; the logs carry the cause.
            Self::Ingest(IngestError::Unavailable { .. }) => {
                "temporarily unavailable; the delivery was not stored and should be retried"
                    .to_owned()
            }
            Self::Ingest(IngestError::ConfirmationRefused { detail }) => format!(
                "SNS refused to confirm the subscription ({detail}); the token may have expired \
                 or been used already: request a new confirmation from SNS"
            ),
            other => other.to_string(),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.kind().status()
    }

    fn error_response(&self) -> HttpResponse {
        let mut builder = HttpResponse::build(self.status_code());
        if matches!(self, Self::TooLarge { .. } | Self::BodyTimeout { .. }) {
            // The rest of the body was never read: close the connection instead of letting the
            // server drain an arbitrarily long (or endless) body to keep it alive.
            builder.force_close();
        }
        if let Self::MethodNotAllowed { allow } = self {
            builder.insert_header((actix_web::http::header::ALLOW, *allow));
        }
        let mut response = builder.json(ErrorBody {
            success: false,
            error: self.code(),
            message: self.public_message(),
        });
        response
            .extensions_mut()
            .insert(WebhookResult::Failed(self.kind()));
        response
    }
}
