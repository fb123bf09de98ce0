//! Where signing certificates come from: a port and its implementations.
//!
//! The usual stack is `CachedSource(LayeredSource(PinnedDirSource, HttpsSource))`,
//! built by [`CertificateStore::builder`].

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use url::Url;

use crate::certificate::SigningCert;
use crate::error::VerifyError;

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
    async fn load(&self, url: &Url) -> Result<Option<SigningCert>, VerifyError> {
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

    fn path_for(&self, url: &Url) -> Result<PathBuf, VerifyError> {
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

/// Downloads certificates with a short-timeout, no-redirect client and a size cap.
#[derive(Debug, Clone)]
pub struct HttpsSource {
    client: reqwest::Client,
    max_bytes: usize,
}

impl HttpsSource {
    /// Uses `client` (build it with [`crate::confirm::try_http_client`]: timeouts,
    /// no redirects, no proxy) and caps bodies at [`DEFAULT_MAX_CERT_BYTES`].
    /// It fetches exactly the URL it is given; [`crate::TrustPolicy`] decides
    /// which URLs (and so which schemes) those may be.
    #[must_use]
    pub fn new(client: reqwest::Client) -> Self {
        Self {
            client,
            max_bytes: DEFAULT_MAX_CERT_BYTES,
        }
    }

    /// Changes the body size cap.
    #[must_use]
    pub fn with_max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes;
        self
    }
}

#[async_trait]
impl CertificateSource for HttpsSource {
    async fn certificate(&self, url: &Url) -> Result<Arc<SigningCert>, VerifyError> {
        let unavailable = |e: reqwest::Error| {
            VerifyError::CertUnavailable(format!("fetching {url}: {}", error_chain(&e)))
        };
        tracing::debug!(%url, "fetching SNS signing certificate");
        let mut response = self
            .client
            .get(url.clone())
            .send()
            .await
            .map_err(unavailable)?;
        let status = response.status();
        if !status.is_success() {
            return Err(VerifyError::CertUnavailable(format!(
                "fetching {url}: HTTP {status}"
            )));
        }
        let too_large = || {
            VerifyError::CertInvalid(format!(
                "{url}: the certificate is larger than {} bytes",
                self.max_bytes
            ))
        };
        if response
            .content_length()
            .is_some_and(|len| len > self.max_bytes as u64)
        {
            return Err(too_large());
        }
        let mut body = Vec::with_capacity(4096);
        while let Some(chunk) = response.chunk().await.map_err(unavailable)? {
            if body.len() + chunk.len() > self.max_bytes {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        let cert = SigningCert::from_pem(&body)
            .map_err(|e| VerifyError::CertInvalid(format!("{url}: {e}")))?;
        Ok(Arc::new(cert))
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

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

/// Told what the certificate cache and downloads do, for metrics. Every method has an empty
/// default, so an observer implements only what it records.
pub trait SourceObserver: Send + Sync {
    /// A lookup was answered from the cache.
    fn cache_hit(&self, _url: &Url) {}
    /// A lookup was not in the cache and was loaded (or failed to load) from the sources below.
    fn cache_miss(&self, _url: &Url) {}
    /// A download from the network finished, successfully or not.
    fn fetched(&self, _url: &Url, _result: Result<(), &VerifyError>) {}
}

/// The observer used when none is given.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoObserver;

impl SourceObserver for NoObserver {}

/// A bounded, thread-safe cache of parsed certificates keyed by URL.
///
/// Concurrent misses for one URL make exactly one call to the inner source
/// (moka's entry API coalesces them); failures are never cached.
#[derive(Clone)]
pub struct CachedSource {
    inner: Arc<dyn CertificateSource>,
    cache: moka::future::Cache<String, Arc<SigningCert>>,
    observer: Arc<dyn SourceObserver>,
}

impl fmt::Debug for CachedSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedSource")
            .field("entries", &self.cache.entry_count())
            .finish_non_exhaustive()
    }
}

impl CachedSource {
    /// Caches up to `capacity` certificates, each for at most `time_to_live`.
    #[must_use]
    pub fn new(inner: Arc<dyn CertificateSource>, capacity: u64, time_to_live: Duration) -> Self {
        let cache = moka::future::Cache::builder()
            .max_capacity(capacity)
            .time_to_live(time_to_live)
            .build();
        Self {
            inner,
            cache,
            observer: Arc::new(NoObserver),
        }
    }

    /// Reports hits and misses to `observer`.
    #[must_use]
    pub fn with_observer(mut self, observer: Arc<dyn SourceObserver>) -> Self {
        self.observer = observer;
        self
    }
}

#[async_trait]
impl CertificateSource for CachedSource {
    async fn certificate(&self, url: &Url) -> Result<Arc<SigningCert>, VerifyError> {
        let entry = self
            .cache
            .entry(url.as_str().to_owned())
            .or_try_insert_with(async { self.inner.certificate(url).await })
            .await;
        match entry {
            Ok(entry) if !entry.is_fresh() => {
                self.observer.cache_hit(url);
                Ok(entry.into_value())
            }
            Ok(entry) => {
                self.observer.cache_miss(url);
                Ok(entry.into_value())
            }
            Err(error) => {
                self.observer.cache_miss(url);
                Err((*error).clone())
            }
        }
    }
}

/// Reports every download of the wrapped source to an observer.
struct ObservedFetch {
    inner: Arc<dyn CertificateSource>,
    observer: Arc<dyn SourceObserver>,
}

#[async_trait]
impl CertificateSource for ObservedFetch {
    async fn certificate(&self, url: &Url) -> Result<Arc<SigningCert>, VerifyError> {
        let result = self.inner.certificate(url).await;
        self.observer.fetched(url, result.as_ref().map(|_| ()));
        result
    }
}

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
    use crate::testing::TestSigner;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    const NAME: &str = "SimpleNotificationService-ses-webhook-test.pem";

    fn cert_url() -> Url {
        Url::parse(&TestSigner::shared().cert_url()).unwrap()
    }

    fn test_cert() -> Arc<SigningCert> {
        Arc::new(TestSigner::shared().signing_cert())
    }

    /// Delays before delegating so that concurrent misses really overlap.
    struct Slow(MockCertificateSource);

    #[async_trait]
    impl CertificateSource for Slow {
        async fn certificate(&self, url: &Url) -> Result<Arc<SigningCert>, VerifyError> {
            tokio::time::sleep(Duration::from_millis(100)).await;
            self.0.certificate(url).await
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_misses_make_exactly_one_inner_call() {
        let cert = test_cert();
        let mut inner = MockCertificateSource::new();
        inner
            .expect_certificate()
            .times(1)
            .returning(move |_| Ok(Arc::clone(&cert)));
        let cached = Arc::new(CachedSource::new(
            Arc::new(Slow(inner)),
            16,
            Duration::from_secs(60),
        ));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..50 {
            let cached = Arc::clone(&cached);
            tasks.spawn(async move { cached.certificate(&cert_url()).await });
        }
        let mut ok = 0;
        while let Some(result) = tasks.join_next().await {
            result.unwrap().unwrap();
            ok += 1;
        }
        assert_eq!(ok, 50);
        // A later call is a hit too (the mock would panic on a second call).
        cached.certificate(&cert_url()).await.unwrap();
    }

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
    async fn failures_are_not_cached() {
        let mut inner = MockCertificateSource::new();
        inner
            .expect_certificate()
            .times(2)
            .returning(|_| Err(VerifyError::CertUnavailable("down".into())));
        let cached = CachedSource::new(Arc::new(inner), 16, Duration::from_secs(60));
        for _ in 0..2 {
            assert_eq!(
                cached.certificate(&cert_url()).await.unwrap_err(),
                VerifyError::CertUnavailable("down".into())
            );
        }
    }

    #[tokio::test]
    async fn a_failure_then_a_success_is_cached_from_then_on() {
        let cert = test_cert();
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&calls);
        let mut inner = MockCertificateSource::new();
        inner.expect_certificate().times(2).returning(move |_| {
            if counter.fetch_add(1, Ordering::SeqCst) == 0 {
                Err(VerifyError::CertUnavailable("blip".into()))
            } else {
                Ok(Arc::clone(&cert))
            }
        });
        let cached = CachedSource::new(Arc::new(inner), 16, Duration::from_secs(60));
        assert!(cached.certificate(&cert_url()).await.is_err());
        for _ in 0..3 {
            cached.certificate(&cert_url()).await.unwrap();
        }
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn different_urls_are_cached_separately() {
        let cert = test_cert();
        let mut inner = MockCertificateSource::new();
        inner
            .expect_certificate()
            .times(2)
            .returning(move |_| Ok(Arc::clone(&cert)));
        let cached = CachedSource::new(Arc::new(inner), 16, Duration::from_secs(60));
        let other = Url::parse("https://sns.eu-west-1.amazonaws.com/Other.pem").unwrap();
        for _ in 0..2 {
            cached.certificate(&cert_url()).await.unwrap();
            cached.certificate(&other).await.unwrap();
        }
    }

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

    fn https_source() -> HttpsSource {
        // Plain http to the local mock server: the source fetches whatever URL
        // it is given; the policy decides which URLs that may be.
        HttpsSource::new(crate::confirm::try_http_client().unwrap())
    }

    #[tokio::test]
    async fn https_source_fetches_and_parses() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path(format!("/{NAME}")))
            .respond_with(
                ResponseTemplate::new(200).set_body_string(TestSigner::shared().cert_pem()),
            )
            .expect(1)
            .mount(&server)
            .await;
        let url = Url::parse(&format!("{}/{NAME}", server.uri())).unwrap();
        let cert = https_source().certificate(&url).await.unwrap();
        assert_eq!(cert.public_key(), test_cert().public_key());
    }

    #[tokio::test]
    async fn https_source_maps_statuses_and_garbage() {
        let server = MockServer::start().await;
        for (p, status, body) in [
            ("/404.pem", 404, "nope"),
            ("/500.pem", 500, "oops"),
            ("/503.pem", 503, ""),
            ("/garbage.pem", 200, "<html>hello</html>"),
        ] {
            Mock::given(method("GET"))
                .and(path(p))
                .respond_with(ResponseTemplate::new(status).set_body_string(body))
                .mount(&server)
                .await;
        }
        let source = https_source();
        let get = |p: &str| Url::parse(&format!("{}{p}", server.uri())).unwrap();
        for p in ["/404.pem", "/500.pem", "/503.pem"] {
            assert!(
                matches!(
                    source.certificate(&get(p)).await,
                    Err(VerifyError::CertUnavailable(_))
                ),
                "{p}"
            );
        }
        assert!(matches!(
            source.certificate(&get("/garbage.pem")).await,
            Err(VerifyError::CertInvalid(_))
        ));
    }

    #[tokio::test]
    async fn https_source_does_not_follow_redirects() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/moved.pem"))
            .respond_with(
                ResponseTemplate::new(302)
                    .insert_header("Location", format!("{}/{NAME}", server.uri())),
            )
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path(format!("/{NAME}")))
            .respond_with(
                ResponseTemplate::new(200).set_body_string(TestSigner::shared().cert_pem()),
            )
            .expect(0)
            .mount(&server)
            .await;
        let url = Url::parse(&format!("{}/moved.pem", server.uri())).unwrap();
        assert!(matches!(
            https_source().certificate(&url).await,
            Err(VerifyError::CertUnavailable(_))
        ));
    }

    #[tokio::test]
    async fn https_source_caps_the_size_by_content_length() {
        let server = MockServer::start().await;
        let mut big = TestSigner::shared().cert_pem();
        big.push_str(&"A".repeat(DEFAULT_MAX_CERT_BYTES));
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_body_string(big))
            .mount(&server)
            .await;
        let url = Url::parse(&format!("{}/{NAME}", server.uri())).unwrap();
        match https_source().certificate(&url).await {
            Err(VerifyError::CertInvalid(m)) => assert!(m.contains("larger than"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    /// A server that streams an endless chunked body with no Content-Length.
    async fn endless_chunked_server() -> (Url, tokio::task::JoinHandle<usize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let handle = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = [0_u8; 4096];
            let _ = socket.read(&mut request).await;
            let head = "HTTP/1.1 200 OK\r\nContent-Type: application/x-pem-file\r\nTransfer-Encoding: chunked\r\n\r\n";
            if socket.write_all(head.as_bytes()).await.is_err() {
                return 0;
            }
            let chunk = format!("{:x}\r\n{}\r\n", 8192, "A".repeat(8192));
            let mut sent = 0;
            // Up to 16 MiB; the client must hang up long before.
            for _ in 0..2048 {
                if socket.write_all(chunk.as_bytes()).await.is_err() {
                    break;
                }
                sent += 8192;
            }
            sent
        });
        (
            Url::parse(&format!("http://{addr}/{NAME}")).unwrap(),
            handle,
        )
    }

    #[tokio::test]
    async fn https_source_caps_the_size_while_streaming() {
        let (url, server) = endless_chunked_server().await;
        match https_source().certificate(&url).await {
            Err(VerifyError::CertInvalid(m)) => assert!(m.contains("larger than"), "{m}"),
            other => panic!("{other:?}"),
        }
        let sent = server.await.unwrap();
        assert!(sent < 16 * 1024 * 1024, "the client read the whole stream");
    }

    #[tokio::test]
    async fn https_source_reports_connection_failures_as_unavailable() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let url = Url::parse(&format!("http://{addr}/{NAME}")).unwrap();
        let err = https_source().certificate(&url).await.unwrap_err();
        assert!(err.is_transient(), "{err:?}");
    }
}
