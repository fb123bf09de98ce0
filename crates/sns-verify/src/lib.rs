//! Verification of Amazon SNS messages delivered over HTTP(S): strict envelope
//! parsing, the string-to-sign exactly as SNS builds it, RSA PKCS#1 v1.5
//! signatures with SHA-1 (`SignatureVersion` 1) and SHA-256 (2), an anchored
//! policy for `SigningCertURL` and `SubscribeURL`, and certificate sources
//! (pinned directory, HTTPS download with timeouts, size cap and no redirects,
//! a bounded single-flight cache). It knows nothing about SES or storage.
//!
//! ```no_run
//! # async fn run(body: &[u8]) -> Result<(), Box<dyn std::error::Error>> {
//! use sns_verify::{CertificateStore, TrustPolicy, Verifier};
//!
//! let source = CertificateStore::builder().build();
//! let verifier = Verifier::new(TrustPolicy::amazon(), source);
//! let verified = verifier.verify(body).await?;
//! println!("{} from {}", verified.envelope.message_id, verified.envelope.topic_arn);
//! # Ok(())
//! # }
//! ```
//!
//! A valid signature proves only that SNS sent the message: callers must still
//! check `TopicArn` against an allow-list before acting on it.

pub mod certificate;
pub mod confirm;
pub mod envelope;
pub mod error;
pub mod policy;
pub mod source;
#[cfg(any(test, feature = "test-util"))]
pub mod testing;
pub mod verify;

pub use certificate::SigningCert;
pub use confirm::{ConfirmError, confirm_subscription, try_http_client};
pub use envelope::{Envelope, MessageType, SignatureVersion};
pub use error::{UntrustedSubscribeUrl, VerifyError};
pub use policy::TrustPolicy;
#[cfg(any(test, feature = "mock"))]
pub use source::MockCertificateSource;
pub use source::{
    CachedSource, CertificateSource, CertificateStore, CertificateStoreBuilder, HttpsSource,
    LayeredSource, NoObserver, PinnedDirSource, SourceObserver,
};
pub use verify::{Verified, Verifier, verify_with_cert};
