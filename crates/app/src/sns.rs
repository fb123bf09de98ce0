//! Adapters from `sns-verify` and reqwest to the domain's ports.

use async_trait::async_trait;
use domain::ports::{
    ConfirmError, MessageVerifier, RejectReason, SubscriptionConfirmer, VerifyFailure,
};
use domain::{SnsMessage, SnsMessageType};
use sns_verify::{MessageType, TrustPolicy, Verifier, VerifyError};

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
        VerifyError::UnsupportedVersion(_) => rejected(RejectReason::UnsupportedSignatureVersion),
        VerifyError::UntrustedCertUrl(_) | VerifyError::UntrustedSubscribeUrl(_) => {
            rejected(RejectReason::UntrustedCertificateUrl)
        }
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
    async fn verify(&self, body: &[u8]) -> Result<SnsMessage, VerifyFailure> {
        let verified = self.inner.verify(body).await.map_err(verify_failure)?;
        let raw = String::from_utf8(body.to_vec())
            .map_err(|_| VerifyFailure::Malformed("body is not UTF-8".into()))?;
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
            .map_err(|e| ConfirmError::UntrustedUrl(e.to_string()))?;
        sns_verify::confirm::confirm_subscription(&self.client, &url)
            .await
            .map_err(|e| ConfirmError::Failed(e.to_string()))?;
        tracing::info!(topic_arn = %message.topic_arn, "subscription confirmed");
        Ok(())
    }
}
