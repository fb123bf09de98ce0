//! The heart of the SES webhook: what an SNS message and an SES record are, which platform email
//! events they become (and how bounces are classified), the ports the outside world must provide,
//! and the ingest use case that ties them together. Nothing here knows about HTTP, SQL or TLS.

pub mod event;
pub mod ingest;
pub mod mapping;
pub mod ports;
pub mod reprocess;
pub mod ses;
pub mod sns;

pub use event::{BounceClass, EventType, PlatformEvent};
pub use ingest::{IngestError, IngestOutcome, IngestPolicy, IngestService};
pub use reprocess::{ReprocessError, ReprocessReport, ReprocessService};
pub use sns::{SnsMessage, SnsMessageType};
