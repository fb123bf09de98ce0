//! The error body and the mapping of failures to HTTP status codes.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use domain::IngestError;
use serde::Serialize;

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
    /// The ingest use case refused or could not complete the request.
    #[error(transparent)]
    Ingest(#[from] IngestError),
}

/// The JSON body of every error response.
#[derive(Debug, Serialize)]
pub struct ErrorBody {
    pub success: bool,
    pub error: &'static str,
    pub message: String,
}

impl ApiError {
    /// Stable machine-readable code for the error body, logs and metrics.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "payload_too_large",
            Self::BodyRead(_) => "body_read_failed",
            Self::BodyTimeout { .. } => "request_timeout",
            Self::RawDelivery => "raw_message_delivery",
            Self::Ingest(error) => error.code(),
        }
    }

    fn public_message(&self) -> String {
        match self {
            // Server-side failures say nothing internal; the logs carry the cause.
            Self::Ingest(IngestError::Unavailable { .. }) => {
                "temporarily unavailable; the delivery was not stored and should be retried"
                    .to_owned()
            }
            other => other.to_string(),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            Self::BodyRead(_) | Self::RawDelivery => StatusCode::BAD_REQUEST,
            Self::Ingest(IngestError::Malformed(_)) => StatusCode::BAD_REQUEST,
            Self::Ingest(IngestError::Forbidden { .. }) => StatusCode::FORBIDDEN,
            Self::Ingest(IngestError::Unavailable { .. }) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut builder = HttpResponse::build(self.status_code());
        if matches!(self, Self::TooLarge { .. } | Self::BodyTimeout { .. }) {
            // The rest of the body was never read: close the connection instead of letting the
            // server drain an arbitrarily long (or endless) body to keep it alive.
            builder.force_close();
        }
        let mut response = builder.json(ErrorBody {
            success: false,
            error: self.code(),
            message: self.public_message(),
        });
        response
            .extensions_mut()
            .insert(crate::handler::WebhookResult::Failed { code: self.code() });
        response
    }
}
