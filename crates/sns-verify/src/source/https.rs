//! Downloading certificates: short timeouts, no redirects, a size cap.

use std::sync::Arc;

use async_trait::async_trait;
use url::Url;

use super::{CertificateSource, DEFAULT_MAX_CERT_BYTES, error_chain};
use crate::certificate::SigningCert;
use crate::error::VerifyError;

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

#[cfg(test)]
#[cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]
mod tests {
    use super::*;
    use crate::source::DEFAULT_MAX_CERT_BYTES;
    use crate::source::test_support::{NAME, test_cert};
    use crate::testing::TestSigner;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

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
