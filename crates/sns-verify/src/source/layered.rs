//! A pinned directory first, then another source (or nothing: offline).

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use url::Url;

use super::{CertificateSource, PinnedDirSource};
use crate::certificate::SigningCert;
use crate::error::VerifyError;

/// A pinned directory first, then (when fetching is enabled) another source.
///
/// With no fallback the store is offline: a certificate that is not pinned is
/// [`VerifyError::CertUnavailable`] and nothing is fetched.
#[derive(Clone)]
pub struct LayeredSource {
    pinned: Option<PinnedDirSource>,
    fallback: Option<Arc<dyn CertificateSource>>,
}

impl fmt::Debug for LayeredSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LayeredSource")
            .field("pinned", &self.pinned)
            .field("fetch", &self.fallback.is_some())
            .finish()
    }
}

impl LayeredSource {
    /// `pinned` is tried first; `fallback` (if any) only when no pinned file exists.
    #[must_use]
    pub fn new(
        pinned: Option<PinnedDirSource>,
        fallback: Option<Arc<dyn CertificateSource>>,
    ) -> Self {
        Self { pinned, fallback }
    }
}

#[async_trait]
impl CertificateSource for LayeredSource {
    async fn certificate(&self, url: &Url) -> Result<Arc<SigningCert>, VerifyError> {
        if let Some(pinned) = &self.pinned
            && let Some(cert) = pinned.load(url).await?
        {
            return Ok(Arc::new(cert));
        }
        match (&self.fallback, &self.pinned) {
            (Some(fallback), _) => fallback.certificate(url).await,
            (None, Some(pinned)) => Err(VerifyError::CertUnavailable(format!(
                "offline: no pinned certificate for {url}: expected file {}",
                pinned.path_for(url)?.display()
            ))),
            (None, None) => Err(VerifyError::CertUnavailable(format!(
                "offline: certificate fetching is disabled and no pinned directory is set ({url})"
            ))),
        }
    }
}

#[cfg(test)]
#[cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]
mod tests {
    use super::*;
    use crate::source::MockCertificateSource;
    use crate::source::test_support::{NAME, cert_url, test_cert};
    use crate::testing::TestSigner;

    #[tokio::test]
    async fn a_pinned_certificate_wins_without_network() {
        let dir = tempfile::tempdir().unwrap();
        TestSigner::shared().write_pinned(dir.path()).unwrap();
        let mut fallback = MockCertificateSource::new();
        fallback.expect_certificate().times(0);
        let source = LayeredSource::new(
            Some(PinnedDirSource::new(dir.path())),
            Some(Arc::new(fallback)),
        );
        let cert = source.certificate(&cert_url()).await.unwrap();
        assert_eq!(cert.public_key(), test_cert().public_key());
    }

    #[tokio::test]
    async fn a_missing_pinned_file_falls_back_when_fetching_is_on() {
        let dir = tempfile::tempdir().unwrap();
        let cert = test_cert();
        let mut fallback = MockCertificateSource::new();
        fallback
            .expect_certificate()
            .times(1)
            .returning(move |_| Ok(Arc::clone(&cert)));
        let source = LayeredSource::new(
            Some(PinnedDirSource::new(dir.path())),
            Some(Arc::new(fallback)),
        );
        source.certificate(&cert_url()).await.unwrap();
    }

    #[tokio::test]
    async fn a_corrupt_pinned_file_is_invalid_and_does_not_fall_back() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(NAME), "not a certificate").unwrap();
        let mut fallback = MockCertificateSource::new();
        fallback.expect_certificate().times(0);
        let source = LayeredSource::new(
            Some(PinnedDirSource::new(dir.path())),
            Some(Arc::new(fallback)),
        );
        assert!(matches!(
            source.certificate(&cert_url()).await,
            Err(VerifyError::CertInvalid(_))
        ));
    }
}
