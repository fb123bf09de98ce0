//! Certificates pinned in a directory, for offline verification and certificate pinning.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use url::Url;

use super::CertificateSource;
use crate::certificate::SigningCert;
use crate::error::VerifyError;

/// Certificates pinned in a directory: the file name is the URL's last path segment.
#[derive(Debug, Clone)]
pub struct PinnedDirSource {
    dir: PathBuf,
}

impl PinnedDirSource {
    /// Reads certificates from `dir`.
    #[must_use]
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The directory read.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The pinned file for `url`, `Ok(None)` when there is none.
    pub(super) async fn load(&self, url: &Url) -> Result<Option<SigningCert>, VerifyError> {
        let path = self.path_for(url)?;
        match tokio::fs::read(&path).await {
            Ok(bytes) => {
                let cert = SigningCert::from_pem(&bytes).map_err(|e| {
                    VerifyError::CertInvalid(format!("pinned file {}: {e}", path.display()))
                })?;
                Ok(Some(cert))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(VerifyError::CertUnavailable(format!(
                "cannot read pinned certificate {}: {e}",
                path.display()
            ))),
        }
    }

    pub(super) fn path_for(&self, url: &Url) -> Result<PathBuf, VerifyError> {
        let name = url
            .path_segments()
            .and_then(|mut s| s.next_back())
            .filter(|n| {
                !n.is_empty()
                    && !n.starts_with('.')
                    && n.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            })
            .ok_or_else(|| {
                VerifyError::UntrustedCertUrl(format!("{url}: no usable file name in the path"))
            })?;
        Ok(self.dir.join(name))
    }
}

#[async_trait]
impl CertificateSource for PinnedDirSource {
    async fn certificate(&self, url: &Url) -> Result<Arc<SigningCert>, VerifyError> {
        match self.load(url).await? {
            Some(cert) => Ok(Arc::new(cert)),
            None => Err(VerifyError::CertUnavailable(format!(
                "no pinned certificate for {url}: expected file {}",
                self.path_for(url)?.display()
            ))),
        }
    }
}

#[cfg(test)]
#[cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]
mod tests {
    use super::*;
    use crate::source::test_support::{NAME, cert_url};

    #[tokio::test]
    async fn pinned_dir_source_reports_the_expected_file() {
        let dir = tempfile::tempdir().unwrap();
        let source = PinnedDirSource::new(dir.path());
        match source.certificate(&cert_url()).await {
            Err(VerifyError::CertUnavailable(m)) => assert!(m.contains(NAME), "{m}"),
            other => panic!("{other:?}"),
        }
        // A hostile file name cannot escape the directory.
        let hostile = Url::parse("https://sns.us-east-1.amazonaws.com/..").unwrap();
        assert!(source.certificate(&hostile).await.is_err());
    }
}
