//! SES record → platform events: the mapping and one-event-per-recipient rules.

use crate::event::PlatformEvent;

/// What an SNS `Message` turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MappedKind {
    /// Not an SES record: plain text, `AmazonSnsSubscriptionSucceeded`, unrelated JSON.
    NotSes,
    /// An SES record of a type that has no platform event (Send, Reject, DeliveryDelay,
    /// Rendering Failure, Subscription, or a type we do not know yet).
    NoPlatformEvent,
    /// An SES record of a type that maps to platform events.
    Events,
}

/// The result of mapping one SNS `Message`.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapped {
    pub kind: MappedKind,
    /// SES `eventType` (preferred) or `notificationType`, as received.
    pub ses_type: Option<String>,
    pub events: Vec<PlatformEvent>,
    /// SES records or recipients that were recognised but could not become events.
    pub errors: Vec<String>,
}

/// Maps the `Message` of a verified SNS notification. Never fails: whatever cannot be mapped is
/// reported in [`Mapped::errors`] or [`MappedKind`].
#[must_use]
pub fn map_message(message: &str) -> Mapped {
    let _ = message;
    todo!("helper fills this in")
}
