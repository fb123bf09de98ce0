//! Assembling the usual certificate source from a few choices.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use url::Url;

use super::cache::ObservedFetch;
use super::{
    CachedSource, CertificateSource, DEFAULT_MAX_CERT_BYTES, HttpsSource, LayeredSource,
    NoObserver, PinnedDirSource, SourceObserver, error_chain,
};
use crate::certificate::SigningCert;
use crate::error::VerifyError;

/// Entry point of [`CertificateStoreBuilder`].
#[derive(Debug, Clone, Copy)]
pub struct CertificateStore;

impl CertificateStore {
    /// Starts a builder: no pinned directory, fetching on, 64 entries, 24 h TTL.
    #[must_use]
    pub fn builder() -> CertificateStoreBuilder {
        CertificateStoreBuilder::default()
    }
}

/// Builds the usual `CachedSource(LayeredSource(PinnedDirSource, HttpsSource))`.
#[derive(Clone)]
pub struct CertificateStoreBuilder {
    pinned_dir: Option<PathBuf>,
    fetch: bool,
    cache_capacity: u64,
    time_to_live: Duration,
    max_cert_bytes: usize,
    client: Option<reqwest::Client>,
    fallback: Option<Arc<dyn CertificateSource>>,
    observer: Arc<dyn SourceObserver>,
}

impl fmt::Debug for CertificateStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateStoreBuilder")
            .field("pinned_dir", &self.pinned_dir)
            .field("fetch", &self.fetch)
            .field("cache_capacity", &self.cache_capacity)
            .field("time_to_live", &self.time_to_live)
            .field("max_cert_bytes", &self.max_cert_bytes)
            .field("custom_fallback", &self.fallback.is_some())
            .finish_non_exhaustive()
    }
}

impl Default for CertificateStoreBuilder {
    fn default() -> Self {
        Self {
            pinned_dir: None,
            fetch: true,
            cache_capacity: 64,
            time_to_live: Duration::from_secs(24 * 3600),
            max_cert_bytes: DEFAULT_MAX_CERT_BYTES,
            client: None,
            fallback: None,
            observer: Arc::new(NoObserver),
        }
    }
}

impl CertificateStoreBuilder {
    /// A directory of pinned PEM files, consulted before any fetch.
    #[must_use]
    pub fn pinned_dir(mut self, dir: Option<PathBuf>) -> Self {
        self.pinned_dir = dir;
        self
    }

    /// Whether certificates may be downloaded; `false` = offline (pinned only).
    #[must_use]
    pub fn fetch(mut self, fetch: bool) -> Self {
        self.fetch = fetch;
        self
    }

    /// Maximum number of cached certificates.
    #[must_use]
    pub fn cache_capacity(mut self, capacity: u64) -> Self {
        self.cache_capacity = capacity;
        self
    }

    /// How long a cached certificate is kept.
    #[must_use]
    pub fn time_to_live(mut self, ttl: Duration) -> Self {
        self.time_to_live = ttl;
        self
    }

    /// Size cap on downloaded certificates.
    #[must_use]
    pub fn max_cert_bytes(mut self, max: usize) -> Self {
        self.max_cert_bytes = max;
        self
    }

    /// Use this HTTP client instead of building one.
    #[must_use]
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.client = Some(client);
        self
    }

    /// Use this source instead of [`HttpsSource`] when fetching is enabled
    /// (tests, or a custom transport). Ignored when `fetch(false)`.
    #[must_use]
    pub fn fallback_source(mut self, source: Arc<dyn CertificateSource>) -> Self {
        self.fallback = Some(source);
        self
    }

    /// Reports cache hits and misses and downloads to `observer` (metrics).
    #[must_use]
    pub fn observer(mut self, observer: Arc<dyn SourceObserver>) -> Self {
        self.observer = observer;
        self
    }

    /// Builds the source. If the HTTP client cannot be built (broken TLS
    /// backend), the error is logged and every download answers
    /// [`VerifyError::CertUnavailable`] naming it; pinned certificates still work.
    #[must_use]
    pub fn build(self) -> Arc<dyn CertificateSource> {
        let fallback = if self.fetch {
            Some(self.fetch_source().unwrap_or_else(|e| {
                let msg = format!("the HTTP client could not be built: {}", error_chain(&e));
                tracing::error!(error = %msg, "SNS certificate downloads are disabled");
                let unavailable: Arc<dyn CertificateSource> = Arc::new(Unavailable(msg));
                unavailable
            }))
        } else {
            None
        };
        self.assemble(fallback)
    }

    /// Like [`CertificateStoreBuilder::build`] but fails when the HTTP client
    /// cannot be built.
    ///
    /// # Errors
    /// When the TLS backend cannot be initialised.
    pub fn try_build(self) -> Result<Arc<dyn CertificateSource>, reqwest::Error> {
        let fallback = if self.fetch {
            Some(self.fetch_source()?)
        } else {
            None
        };
        Ok(self.assemble(fallback))
    }

    fn fetch_source(&self) -> Result<Arc<dyn CertificateSource>, reqwest::Error> {
        if let Some(custom) = &self.fallback {
            return Ok(Arc::clone(custom));
        }
        let client = match &self.client {
            Some(client) => client.clone(),
            None => crate::confirm::try_http_client()?,
        };
        Ok(Arc::new(
            HttpsSource::new(client).with_max_bytes(self.max_cert_bytes),
        ))
    }

    fn assemble(self, fallback: Option<Arc<dyn CertificateSource>>) -> Arc<dyn CertificateSource> {
        let observer = self.observer;
        let fallback = fallback.map(|inner| {
            let observed: Arc<dyn CertificateSource> = Arc::new(ObservedFetch {
                inner,
                observer: Arc::clone(&observer),
            });
            observed
        });
        let layered = LayeredSource::new(self.pinned_dir.map(PinnedDirSource::new), fallback);
        Arc::new(
            CachedSource::new(Arc::new(layered), self.cache_capacity, self.time_to_live)
                .with_observer(observer),
        )
    }
}

/// Stands in for the download source when it could not be created.
struct Unavailable(String);

#[async_trait]
impl CertificateSource for Unavailable {
    async fn certificate(&self, url: &Url) -> Result<Arc<SigningCert>, VerifyError> {
        Err(VerifyError::CertUnavailable(format!("{url}: {}", self.0)))
    }
}

#[cfg(test)]
#[cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]
mod tests {
    use super::*;
    use crate::source::MockCertificateSource;
    use crate::source::test_support::{NAME, cert_url, test_cert};
    use crate::testing::TestSigner;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Default)]
    struct Counting {
        hits: AtomicUsize,
        misses: AtomicUsize,
        fetched_ok: AtomicUsize,
        fetched_err: AtomicUsize,
    }

    impl SourceObserver for Counting {
        fn cache_hit(&self, _url: &Url) {
            self.hits.fetch_add(1, Ordering::SeqCst);
        }
        fn cache_miss(&self, _url: &Url) {
            self.misses.fetch_add(1, Ordering::SeqCst);
        }
        fn fetched(&self, _url: &Url, result: Result<(), &VerifyError>) {
            let counter = if result.is_ok() {
                &self.fetched_ok
            } else {
                &self.fetched_err
            };
            counter.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn the_observer_sees_hits_misses_and_downloads() {
        let cert = test_cert();
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&calls);
        let mut download = MockCertificateSource::new();
        download.expect_certificate().times(2).returning(move |_| {
            if counter.fetch_add(1, Ordering::SeqCst) == 0 {
                Err(VerifyError::CertUnavailable("blip".into()))
            } else {
                Ok(Arc::clone(&cert))
            }
        });
        let observer = Arc::new(Counting::default());
        let source = CertificateStore::builder()
            .fallback_source(Arc::new(download))
            .observer(Arc::clone(&observer) as Arc<dyn SourceObserver>)
            .build();

        assert!(source.certificate(&cert_url()).await.is_err());
        for _ in 0..3 {
            source.certificate(&cert_url()).await.unwrap();
        }

        assert_eq!(observer.misses.load(Ordering::SeqCst), 2);
        assert_eq!(observer.hits.load(Ordering::SeqCst), 2);
        assert_eq!(observer.fetched_err.load(Ordering::SeqCst), 1);
        assert_eq!(observer.fetched_ok.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn pinned_certificates_are_not_counted_as_downloads() {
        let dir = tempfile::tempdir().unwrap();
        TestSigner::shared().write_pinned(dir.path()).unwrap();
        let mut download = MockCertificateSource::new();
        download.expect_certificate().times(0);
        let observer = Arc::new(Counting::default());
        let source = CertificateStore::builder()
            .pinned_dir(Some(dir.path().to_path_buf()))
            .fallback_source(Arc::new(download))
            .observer(Arc::clone(&observer) as Arc<dyn SourceObserver>)
            .build();

        source.certificate(&cert_url()).await.unwrap();
        source.certificate(&cert_url()).await.unwrap();

        assert_eq!(observer.misses.load(Ordering::SeqCst), 1);
        assert_eq!(observer.hits.load(Ordering::SeqCst), 1);
        assert_eq!(observer.fetched_ok.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn offline_never_calls_the_fallback_and_names_the_expected_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut fallback = MockCertificateSource::new();
        fallback.expect_certificate().times(0);
        let store = CertificateStore::builder()
            .pinned_dir(Some(dir.path().to_path_buf()))
            .fetch(false)
            .fallback_source(Arc::new(fallback))
            .build();
        match store.certificate(&cert_url()).await {
            Err(VerifyError::CertUnavailable(m)) => {
                assert!(m.contains("offline"), "{m}");
                assert!(m.contains(NAME), "{m}");
            }
            other => panic!("expected CertUnavailable, got {other:?}"),
        }
        // Once the file is pinned, the same store serves it (failures were not cached).
        TestSigner::shared().write_pinned(dir.path()).unwrap();
        store.certificate(&cert_url()).await.unwrap();
    }

    #[tokio::test]
    async fn offline_without_a_pinned_dir_is_unavailable() {
        let store = CertificateStore::builder().fetch(false).build();
        let err = store.certificate(&cert_url()).await.unwrap_err();
        assert!(err.is_transient());
    }

    #[tokio::test]
    async fn the_builder_uses_the_custom_fallback_and_caches() {
        let cert = test_cert();
        let mut fallback = MockCertificateSource::new();
        fallback
            .expect_certificate()
            .times(1)
            .returning(move |_| Ok(Arc::clone(&cert)));
        let store = CertificateStore::builder()
            .fallback_source(Arc::new(fallback))
            .try_build()
            .unwrap();
        for _ in 0..3 {
            store.certificate(&cert_url()).await.unwrap();
        }
    }
}
