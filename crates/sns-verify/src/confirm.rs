//! Confirming a subscription by visiting its (already checked) `SubscribeURL`,
//! and the HTTP client shared with [`crate::HttpsSource`] ([`try_http_client`]).

use std::time::Duration;

use url::Url;

/// Connect timeout of [`try_http_client`].
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Total request timeout of [`try_http_client`].
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a confirmation did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfirmError {
    /// The call failed (network, timeout) or SNS answered anything but a 2xx or a final
    /// client error (5xx, 408, 429, an unexpected 1xx or 3xx): worth retrying.
    #[error("could not confirm the subscription: {0}")]
    Transient(String),
    /// SNS answered with a client error (4xx other than 408 and 429: an expired or reused
    /// token, a deleted topic): final.
    #[error("SNS refused the subscription confirmation: HTTP {0}")]
    Refused(u16),
}

impl ConfirmError {
    /// `true` for [`ConfirmError::Transient`].
    #[must_use]
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient(_))
    }
}

fn builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .user_agent(concat!(
            "ses-webhook-sns-verify/",
            env!("CARGO_PKG_VERSION")
        ))
}

/// The client for certificate downloads and confirmations: 2 s connect
/// timeout, 5 s total, redirects disabled, no proxy.
///
/// It fetches whatever URL it is given: the scheme is decided by
/// [`crate::TrustPolicy`], which admits plain `http` only for configured
/// development endpoints. With redirects disabled, a response cannot move the
/// request to another scheme or host.
///
/// # Errors
/// When the TLS backend cannot be initialised (for example no usable root store).
pub fn try_http_client() -> Result<reqwest::Client, reqwest::Error> {
    builder().build()
}

/// Visits `url` with GET. Pass only a URL returned by
/// [`crate::TrustPolicy::check_subscribe_url`], and only after the message
/// verified and its topic is allowed. Never call this for `UnsubscribeConfirmation`.
/// It logs nothing: the caller reports the outcome once.
///
/// # Errors
/// [`ConfirmError::Refused`] for a 4xx other than 408 and 429;
/// [`ConfirmError::Transient`] when the call failed or SNS answered anything else that is
/// not a 2xx.
pub async fn confirm_subscription(client: &reqwest::Client, url: &Url) -> Result<(), ConfirmError> {
    let response = client
        .get(url.clone())
        .send()
        .await
        .map_err(|e| ConfirmError::Transient(e.to_string()))?;
    let status = response.status();
    let retry_later = [
        reqwest::StatusCode::REQUEST_TIMEOUT,
        reqwest::StatusCode::TOO_MANY_REQUESTS,
    ];
    if status.is_success() {
        Ok(())
    } else if status.is_client_error() && !retry_later.contains(&status) {
        Err(ConfirmError::Refused(status.as_u16()))
    } else {
        Err(ConfirmError::Transient(format!("HTTP {status}")))
    }
}

#[cfg(test)]
#[cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]
mod tests {
    use super::*;
    use wiremock::matchers::{method, query_param};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    async fn server_answering(status: u16) -> (MockServer, Url) {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(query_param("Action", "ConfirmSubscription"))
            .and(query_param("Token", "tok"))
            .respond_with(ResponseTemplate::new(status))
            .expect(1)
            .mount(&server)
            .await;
        let url = Url::parse(&format!(
            "{}/?Action=ConfirmSubscription&TopicArn=arn:aws:sns:us-east-1:1:t&Token=tok",
            server.uri()
        ))
        .unwrap();
        (server, url)
    }

    #[tokio::test]
    async fn a_2xx_confirms() {
        let (_server, url) = server_answering(200).await;
        confirm_subscription(&try_http_client().unwrap(), &url)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn client_errors_are_refusals_and_server_errors_transient() {
        for (status, expected) in [
            (400, ConfirmError::Refused(400)),
            (403, ConfirmError::Refused(403)),
            (404, ConfirmError::Refused(404)),
            (302, ConfirmError::Transient("HTTP 302 Found".into())),
            (
                408,
                ConfirmError::Transient("HTTP 408 Request Timeout".into()),
            ),
            (
                500,
                ConfirmError::Transient("HTTP 500 Internal Server Error".into()),
            ),
            (
                429,
                ConfirmError::Transient("HTTP 429 Too Many Requests".into()),
            ),
        ] {
            let (_server, url) = server_answering(status).await;
            let err = confirm_subscription(&try_http_client().unwrap(), &url)
                .await
                .unwrap_err();
            assert_eq!(err, expected);
            assert_eq!(
                err.is_transient(),
                matches!(expected, ConfirmError::Transient(_))
            );
        }
    }

    #[tokio::test]
    async fn unreachable_is_transient() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let url = Url::parse(&format!("http://{addr}/?Action=ConfirmSubscription")).unwrap();
        let err = confirm_subscription(&try_http_client().unwrap(), &url)
            .await
            .unwrap_err();
        assert!(err.is_transient());
    }
}
