//! The sinks of event delivery: where the relay (`domain::delivery::Relay`) sends the
//! outbox's entries. Each implements the domain's `SinkClient` port.
//!
//! - [`WebhookSink`]: an HTTP `POST` per entry, signed as the Standard Webhooks specification
//!   says (`webhook-id`, `webhook-timestamp`, `webhook-signature`), with the
//!   `standardwebhooks` crate.
//! - [`NatsSink`]: a message per entry on a NATS JetStream stream (`Nats-Msg-Id` = the entry
//!   id), delivered once JetStream acknowledged it, with the `async-nats` crate; the stream is
//!   created when missing, and a server that is down does not stop the service (see
//!   [`NatsSink`]).

mod nats;
mod webhook;

pub use nats::{
    DEFAULT_SUBJECT, EVENT_TYPE_PLACEHOLDER, NatsSettings, NatsSetupError, NatsSink, stream_subject,
};
pub use webhook::{WebhookSettings, WebhookSetupError, WebhookSink};

/// A sink's URL as `Debug`, logs and messages show it: scheme, host, port and path, without
/// what may be secret in it (user, password, query, fragment).
#[must_use]
pub fn shown_url(url: &url::Url) -> String {
    let mut url = url.clone();
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.set_query(None);
    url.set_fragment(None);
    url.into()
}
