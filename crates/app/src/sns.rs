//! Adapters from `sns-verify` and reqwest to the domain's outbound ports
//! [`MessageVerifier`] and [`SubscriptionConfirmer`].

use async_trait::async_trait;
use domain::ports::{
    ConfirmError, MessageVerifier, RejectReason, SubscriptionConfirmer, VerifyFailure,
};
use domain::{SnsMessage, SnsMessageType};
use sns_verify::{MessageType, TrustPolicy, UntrustedSubscribeUrl, Verifier, VerifyError};

/// [`MessageVerifier`] backed by [`sns_verify::Verifier`].
#[derive(Debug)]
pub struct SnsVerifier {
    inner: Verifier,
}

impl SnsVerifier {
    #[must_use]
    pub fn new(inner: Verifier) -> Self {
        Self { inner }
    }
}

/// Translates a verification error into the domain's terms.
#[must_use]
pub fn verify_failure(error: VerifyError) -> VerifyFailure {
    let rejected = |reason| VerifyFailure::Rejected {
        reason,
        detail: error.to_string(),
    };
    match &error {
        VerifyError::Malformed(detail) => VerifyFailure::Malformed(detail.clone()),
        VerifyError::RawMessageDelivery => VerifyFailure::RawDelivery(error.to_string()),
        VerifyError::UnsupportedVersion(_) => rejected(RejectReason::UnsupportedSignatureVersion),
        VerifyError::UntrustedCertUrl(_) => rejected(RejectReason::UntrustedCertificateUrl),
        VerifyError::CertInvalid(_) => rejected(RejectReason::CertificateInvalid),
        VerifyError::BadSignature => rejected(RejectReason::BadSignature),
        VerifyError::CertUnavailable(detail) => VerifyFailure::Unavailable(detail.clone()),
    }
}

fn message_type(value: MessageType) -> SnsMessageType {
    match value {
        MessageType::Notification => SnsMessageType::Notification,
        MessageType::SubscriptionConfirmation => SnsMessageType::SubscriptionConfirmation,
        MessageType::UnsubscribeConfirmation => SnsMessageType::UnsubscribeConfirmation,
    }
}

#[async_trait]
impl MessageVerifier for SnsVerifier {
    async fn verify(&self, body: Vec<u8>) -> Result<SnsMessage, VerifyFailure> {
        // Checked as UTF-8 here, once; the same buffer becomes the archived body.
        let raw = sns_verify::envelope::body_text(body).map_err(verify_failure)?;
        let verified = self.inner.verify_str(&raw).await.map_err(verify_failure)?;
        let envelope = verified.envelope;
        Ok(SnsMessage {
            message_type: message_type(envelope.message_type),
            message_id: envelope.message_id,
            topic_arn: envelope.topic_arn,
            timestamp: verified.timestamp,
            subject: envelope.subject,
            message: envelope.message,
            subscribe_url: envelope.subscribe_url,
            token: envelope.token,
            raw,
        })
    }
}

/// [`SubscriptionConfirmer`] that visits the `SubscribeURL` once it passes the trust policy.
/// It logs nothing: the request's one log line (the HTTP adapter's) carries the outcome
/// (`subscription_confirmed`, or the error code and its detail).
#[derive(Debug, Clone)]
pub struct HttpConfirmer {
    policy: TrustPolicy,
    client: reqwest::Client,
}

impl HttpConfirmer {
    #[must_use]
    pub fn new(policy: TrustPolicy, client: reqwest::Client) -> Self {
        Self { policy, client }
    }
}

#[async_trait]
impl SubscriptionConfirmer for HttpConfirmer {
    async fn confirm(&self, message: &SnsMessage) -> Result<(), ConfirmError> {
        let (Some(raw_url), Some(token)) = (&message.subscribe_url, &message.token) else {
            return Err(ConfirmError::UntrustedUrl(
                "SubscriptionConfirmation without SubscribeURL or Token".into(),
            ));
        };
        let url = self
            .policy
            .check_subscribe_url(raw_url, &message.topic_arn, token)
            .map_err(|UntrustedSubscribeUrl(rule)| ConfirmError::UntrustedUrl(rule))?;
        sns_verify::confirm_subscription(&self.client, &url)
            .await
            .map_err(|error| match error {
                sns_verify::ConfirmError::Refused(status) => {
                    ConfirmError::Refused(format!("HTTP {status}"))
                }
                sns_verify::ConfirmError::Transient(detail) => ConfirmError::Unavailable(detail),
            })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use chrono::Utc;
    use wiremock::matchers::{method, query_param};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::*;

    const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:ses-events";

    /// A confirmer trusting `server` as a development endpoint, and a confirmation whose
    /// `SubscribeURL` points at it.
    async fn confirmation_answered_with(
        status: u16,
        calls: u64,
    ) -> (MockServer, HttpConfirmer, SnsMessage) {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(query_param("Action", "ConfirmSubscription"))
            .respond_with(ResponseTemplate::new(status))
            .expect(calls)
            .mount(&server)
            .await;
        let base = url::Url::parse(&server.uri()).unwrap();
        let policy = TrustPolicy::amazon().with_dev_endpoints(vec![base]);
        let confirmer = HttpConfirmer::new(policy, sns_verify::try_http_client().unwrap());
        let message = SnsMessage {
            message_type: SnsMessageType::SubscriptionConfirmation,
            message_id: "m".into(),
            topic_arn: TOPIC.into(),
            timestamp: Utc::now(),
            subject: None,
            message: String::new(),
            subscribe_url: Some(format!(
                "{}/?Action=ConfirmSubscription&TopicArn={TOPIC}&Token=t",
                server.uri()
            )),
            token: Some("t".into()),
            raw: String::new(),
        };
        (server, confirmer, message)
    }

    #[tokio::test]
    async fn a_client_error_from_sns_is_a_final_refusal() {
        for status in [400, 403, 404] {
            let (_server, confirmer, message) = confirmation_answered_with(status, 1).await;

            let error = confirmer.confirm(&message).await.unwrap_err();

            assert_eq!(error, ConfirmError::Refused(format!("HTTP {status}")));
        }
    }

    #[tokio::test]
    async fn a_server_error_or_throttling_is_transient() {
        for status in [500, 503, 429] {
            let (_server, confirmer, message) = confirmation_answered_with(status, 1).await;

            let error = confirmer.confirm(&message).await.unwrap_err();

            assert!(
                matches!(error, ConfirmError::Unavailable(_)),
                "{status}: {error:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_2xx_confirms() {
        let (_server, confirmer, message) = confirmation_answered_with(200, 1).await;

        confirmer.confirm(&message).await.unwrap();
    }

    #[tokio::test]
    async fn a_subscribe_url_for_another_token_is_never_visited() {
        let (_server, confirmer, mut message) = confirmation_answered_with(200, 0).await;
        message.token = Some("another-token".into());

        let error = confirmer.confirm(&message).await.unwrap_err();

        assert!(matches!(error, ConfirmError::UntrustedUrl(_)), "{error:?}");
    }
}
