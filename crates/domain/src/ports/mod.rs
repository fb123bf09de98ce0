//! The ports of the domain, in two directions:
//!
//! - **inbound** ([`Ingest`], [`Reprocess`]): what a driving adapter (the HTTP handler, the
//!   command line, later a queue consumer) calls. Adapters depend on these traits, never on the
//!   services behind them, so their tests mock the use case and check only what they own.
//! - **outbound** ([`MessageVerifier`], [`EventStore`], [`MessageArchive`],
//!   [`SubscriptionConfirmer`], [`Clock`]): what the use cases need from the outside world.
//!   Adapters implement them; the use cases' tests mock them.
//!
//! Every port is an object-safe trait (`async_trait` where it does I/O; [`Clock`] is plain),
//! injected as `Arc<dyn Port>`, with a mockall mock (`MockIngest`, `MockEventStore`, ...) under
//! `cfg(test)` or the `mock` feature.

mod inbound;
mod outbound;

pub use inbound::*;
pub use outbound::*;
