//! The webhook sink: one signed `POST` per entry.

use std::time::Duration;

use async_trait::async_trait;
use domain::delivery::{OutboundMessage, SinkClient};
use futures::StreamExt as _;
use standardwebhooks::{
    HEADER_WEBHOOK_ID, HEADER_WEBHOOK_SIGNATURE, HEADER_WEBHOOK_TIMESTAMP, Webhook,
};
use url::Url;

/// The prefix of a Standard Webhooks secret; the rest is the key in standard base64.
const SECRET_PREFIX: &str = "whsec_";

/// How a webhook sink is reached.
#[derive(Clone)]
pub struct WebhookSettings {
    /// Where entries are posted. `https` unless [`WebhookSettings::allow_http`].
    pub url: Url,
    /// The signing secret, `whsec_` and the key in standard base64 (at least 16 bytes of key).
    /// Never logged.
    pub secret: String,
    /// How long one request may take, connection included.
    pub timeout: Duration,
    /// Whether an `http` URL is accepted (tests, private networks).
    pub allow_http: bool,
    /// How many requests may be in flight at once.
    pub concurrency: usize,
}

impl std::fmt::Debug for WebhookSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSettings")
            .field("url", &crate::shown_url(&self.url))
            .field("secret", &"<redacted>")
            .field("timeout", &self.timeout)
            .field("allow_http", &self.allow_http)
            .field("concurrency", &self.concurrency)
            .finish()
    }
}

/// Why a webhook sink could not be set up; each names what is wrong, never the secret.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WebhookSetupError {
    #[error("the URL must be https (or set allow_http = true), not {0}")]
    NotHttps(String),
    #[error("the secret must be `whsec_` followed by the key in standard base64")]
    SecretFormat,
    #[error("the secret's key must be at least 16 bytes long (it is {0})")]
    SecretTooShort(usize),
    #[error("concurrency must be at least 1")]
    NoConcurrency,
    #[error("the HTTP client could not be built: {0}")]
    Client(String),
}

/// A webhook sink: posts each entry's envelope to one URL, signed, with the entry id as
/// `webhook-id` (the same on every attempt) and the attempt's time as `webhook-timestamp`.
/// Any 2xx is delivered; any other status, a redirect (never followed), a timeout or a
/// connection error is a failure to retry.
pub struct WebhookSink {
    url: Url,
    signer: Webhook,
    client: reqwest::Client,
    timeout: Duration,
    concurrency: usize,
}

impl std::fmt::Debug for WebhookSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSink")
            .field("url", &crate::shown_url(&self.url))
            .field("timeout", &self.timeout)
            .field("concurrency", &self.concurrency)
            .finish_non_exhaustive()
    }
}

impl WebhookSink {
    /// A sink for `settings`.
    ///
    /// # Errors
    /// [`WebhookSetupError`] when the URL is not https (without `allow_http`), the secret is
    /// not a `whsec_` secret of at least 16 bytes, the concurrency is 0, or the HTTP client
    /// cannot be built.
    pub fn new(settings: WebhookSettings) -> Result<Self, WebhookSetupError> {
        match settings.url.scheme() {
            "https" => {}
            "http" if settings.allow_http => {}
            other => return Err(WebhookSetupError::NotHttps(format!("{other}:"))),
        }
        let key = settings
            .secret
            .strip_prefix(SECRET_PREFIX)
            .ok_or(WebhookSetupError::SecretFormat)?;
        let signer = Webhook::new(key).map_err(|_| WebhookSetupError::SecretFormat)?;
        let decoded_len = key.trim_end_matches('=').len() * 3 / 4;
        if decoded_len < 16 {
            return Err(WebhookSetupError::SecretTooShort(decoded_len));
        }
        if settings.concurrency == 0 {
            return Err(WebhookSetupError::NoConcurrency);
        }
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(settings.timeout)
            .user_agent(concat!("ses-webhook/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| WebhookSetupError::Client(e.to_string()))?;
        Ok(Self {
            url: settings.url,
            signer,
            client,
            timeout: settings.timeout,
            concurrency: settings.concurrency,
        })
    }

    /// Posts one message; what went wrong, if anything, in words fit for `last_error` (the
    /// status, a timeout, a connection failure: never the URL's query or the secret).
    async fn post(&self, message: OutboundMessage) -> Result<(), String> {
        let timestamp = chrono::Utc::now().timestamp();
        let signature = self
            .signer
            .sign(&message.entry_id, timestamp, &message.body)
            .map_err(|e| format!("could not sign: {e}"))?;
        let response = self
            .client
            .post(self.url.clone())
            .header(HEADER_WEBHOOK_ID, &message.entry_id)
            .header(HEADER_WEBHOOK_TIMESTAMP, timestamp.to_string())
            .header(HEADER_WEBHOOK_SIGNATURE, signature)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(message.body)
            .send()
            .await
            .map_err(|e| self.describe(&e))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else if status.is_redirection() {
            Err(format!("HTTP {status} (redirects are not followed)"))
        } else {
            Err(format!("HTTP {status}"))
        }
    }

    fn describe(&self, error: &reqwest::Error) -> String {
        if error.is_timeout() {
            format!("timed out after {} s", self.timeout.as_secs_f64())
        } else if error.is_connect() {
            "could not connect".to_owned()
        } else {
            // Without the URL, which may hold a token in its query.
            let mut e = error.to_string();
            if let Some(url) = error.url() {
                e = e.replace(url.as_str(), "the sink's URL");
            }
            format!("request failed: {e}")
        }
    }
}

#[async_trait]
impl SinkClient for WebhookSink {
    async fn deliver(&self, messages: Vec<OutboundMessage>) -> Vec<Result<(), String>> {
        futures::stream::iter(messages)
            .map(|m| self.post(m))
            .buffered(self.concurrency)
            .collect()
            .await
    }
}
