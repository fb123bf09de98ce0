//! The certificate cache (bounded, single flight, failures never cached) and the observers
//! that metrics hang on.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use url::Url;

use super::CertificateSource;
use crate::certificate::SigningCert;
use crate::error::VerifyError;

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
pub(super) struct ObservedFetch {
    pub(super) inner: Arc<dyn CertificateSource>,
    pub(super) observer: Arc<dyn SourceObserver>,
}

#[async_trait]
impl CertificateSource for ObservedFetch {
    async fn certificate(&self, url: &Url) -> Result<Arc<SigningCert>, VerifyError> {
        let result = self.inner.certificate(url).await;
        self.observer.fetched(url, result.as_ref().map(|_| ()));
        result
    }
}

#[cfg(test)]
#[cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]
mod tests {
    use super::*;
    use crate::source::MockCertificateSource;
    use crate::source::test_support::{cert_url, test_cert};
    use std::sync::atomic::{AtomicUsize, Ordering};

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
}
