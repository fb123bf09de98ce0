//! The sinks of event delivery: where the relay (`domain::delivery::Relay`) sends the
//! outbox's entries. Each implements the domain's `SinkClient` port.
//!
//! - [`WebhookSink`]: an HTTP `POST` per entry, signed as the Standard Webhooks specification
//!   says (`webhook-id`, `webhook-timestamp`, `webhook-signature`), with the
//!   `standardwebhooks` crate.

mod webhook;

pub use webhook::{WebhookSettings, WebhookSetupError, WebhookSink};
