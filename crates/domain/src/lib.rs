//! The heart of the SES webhook: what an SNS message and an SES record are, which platform email
//! events they become (and how bounces are classified), the ports the outside world must provide,
//! and the use cases that tie them together (ingest, reprocess), each behind an inbound port
//! ([`Ingest`], [`Reprocess`]) that the driving adapters call. Nothing here knows about HTTP,
//! SQL or TLS.

pub mod delivery;
pub mod event;
pub mod history;
pub mod ingest;
pub mod mapping;
pub mod ports;
pub mod reprocess;
pub mod reputation;
pub mod ses;
pub mod sns;
pub mod status;
pub mod suppression;
pub mod token;

pub use event::{BounceClass, EventType, PlatformEvent};
pub use history::EventHistory;
pub use ingest::{
    Dependency, ForbiddenReason, IngestError, IngestFailure, IngestOutcome, IngestPolicy,
    IngestService, QueuedMessage, RawOrigin,
};
pub use ports::{Authenticate, Ingest, Reprocess, Suppressions};
pub use reprocess::{ReprocessError, ReprocessReport, ReprocessService};
pub use sns::{SnsMessage, SnsMessageType};
