//! Where signing certificates come from: a port and its implementations.
//!
//! The usual stack is `CachedSource(LayeredSource(PinnedDirSource, HttpsSource))`,
//! built by [`CertificateStore::builder`]: [`pinned`] (a directory of PEM files), [`https`]
//! (downloads), [`layered`] (pinned first, then downloads or nothing), [`cache`] (bounded,
//! single-flight, observed) and [`builder`] (the assembly).

use std::sync::Arc;

use async_trait::async_trait;
use url::Url;

use crate::certificate::SigningCert;
use crate::error::VerifyError;

pub mod builder;
pub mod cache;
pub mod https;
pub mod layered;
pub mod pinned;

pub use builder::{CertificateStore, CertificateStoreBuilder};
pub use cache::{CachedSource, NoObserver, SourceObserver};
pub use https::HttpsSource;
pub use layered::LayeredSource;
pub use pinned::PinnedDirSource;

/// Default cap on a downloaded certificate (SNS certificates are about 2 KB).
pub const DEFAULT_MAX_CERT_BYTES: usize = 64 * 1024;

/// Port: obtain the parsed certificate for an already policy-checked URL.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait CertificateSource: Send + Sync {
    /// The certificate published at `url`.
    ///
    /// Implementations fetch exactly `url` and never follow redirects; the URL
    /// must already have passed [`crate::TrustPolicy::check_cert_url`].
    ///
    /// # Errors
    /// [`VerifyError::CertUnavailable`] when it cannot be obtained now (network,
    /// HTTP status, no pinned file, offline); [`VerifyError::CertInvalid`] when
    /// what was obtained is not a usable RSA certificate.
    async fn certificate(&self, url: &Url) -> Result<Arc<SigningCert>, VerifyError>;
}

/// An error and its sources, on one line.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
#[cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]
pub(crate) mod test_support {
    use std::sync::Arc;

    use url::Url;

    use crate::certificate::SigningCert;
    use crate::testing::TestSigner;

    pub(crate) const NAME: &str = "SimpleNotificationService-ses-webhook-test.pem";

    pub(crate) fn cert_url() -> Url {
        Url::parse(&TestSigner::shared().cert_url()).unwrap()
    }

    pub(crate) fn test_cert() -> Arc<SigningCert> {
        Arc::new(TestSigner::shared().signing_cert())
    }
}
