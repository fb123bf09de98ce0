//! The inbound HTTP adapter: the actix-web handler for `POST /api/rpc/webhooks/aws/ses`, the
//! health endpoints, the response and error bodies, and the one place where ingest outcomes
//! become HTTP status codes ([`RequestFailure::status`]). It reads the raw body whatever the
//! content type (SNS sends `text/plain`), enforces a body size limit and a read timeout, refuses
//! raw message delivery, and hands the bytes to the domain's inbound port
//! [`Ingest`](domain::Ingest): it depends on no use case, only on that trait.

mod api;
mod error;
mod handler;
mod openapi;
mod status;

pub use api::deliveries::{DeliveryDto, DeliveryPageDto, ReplayResponse};
pub use api::events::{
    CSV_COLUMNS, EXPORT_PAGE, EventDto, decode_event_cursor, encode_event_cursor,
};
pub use api::{
    API_PREFIX, ApiPorts, DEFAULT_PAGE, MAX_API_BODY_BYTES, SuppressionDto, V1Error, configure_api,
    decode_cursor, encode_cursor,
};
pub use openapi::{openapi, openapi_json};
pub use status::{STATUS_PATH, StatusPorts, configure_status, render as render_status};

pub use error::{ApiError, RequestFailure};
pub use handler::{
    DEFAULT_BODY_READ_TIMEOUT, DEFAULT_MAX_BODY_BYTES, HttpSettings, IngestResponse, QueueState,
    QueueStates, WEBHOOK_PATH, WebhookResult, configure, configure_health,
};

#[cfg(test)]
mod tests;
