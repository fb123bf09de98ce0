//! The error types: one for message verification, one for the `SubscribeURL` check.

/// Why a message was not accepted as a genuine SNS message.
///
/// Every variant except [`VerifyError::CertUnavailable`] is final: the same
/// request will never verify, so an HTTP endpoint answers 4xx and SNS stops
/// retrying. [`VerifyError::CertUnavailable`] is transient (answer 503 so that
/// SNS retries); see [`VerifyError::is_transient`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The body is not a well-formed SNS envelope.
    #[error("malformed SNS message: {0}")]
    Malformed(String),
    /// The body is a bare SES record, not an SNS envelope: raw message delivery is enabled on
    /// the subscription, and such a body carries no signature. Final: the subscription must be
    /// changed (`RawMessageDelivery=false`).
    #[error(
        "the body is a bare SES record without an SNS envelope: raw message delivery is enabled \
         on the SNS subscription; turn it off (RawMessageDelivery=false), unsigned messages \
         cannot be authenticated"
    )]
    RawMessageDelivery,
    /// `SignatureVersion` is neither "1" nor "2".
    #[error("unsupported SNS SignatureVersion {0:?} (only \"1\" and \"2\" are accepted)")]
    UnsupportedVersion(String),
    /// `SigningCertURL` does not point at an SNS certificate we trust.
    #[error("untrusted SigningCertURL: {0}")]
    UntrustedCertUrl(String),
    /// The signing certificate could not be obtained right now (network, HTTP
    /// status, missing pinned file). Transient: the caller should answer 503.
    #[error("signing certificate unavailable: {0}")]
    CertUnavailable(String),
    /// The signing certificate is unusable: unparsable, not RSA, too large, or
    /// not valid at the message's `Timestamp`.
    #[error("invalid signing certificate: {0}")]
    CertInvalid(String),
    /// The signature is not valid base64 or does not verify.
    #[error("the SNS signature does not verify")]
    BadSignature,
}

impl VerifyError {
    /// `true` when retrying the same request later may succeed (only
    /// [`VerifyError::CertUnavailable`]); callers map this to HTTP 503 so SNS retries.
    #[must_use]
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::CertUnavailable(_))
    }
}

/// Why a `SubscribeURL` will not be visited: it is not a confirmation URL of a trusted SNS
/// endpoint for the signed topic and token. Final; returned by
/// [`TrustPolicy::check_subscribe_url`](crate::TrustPolicy::check_subscribe_url). The text
/// names the rule that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("untrusted SubscribeURL: {0}")]
pub struct UntrustedSubscribeUrl(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_cert_unavailable_is_transient() {
        assert!(VerifyError::CertUnavailable("x".into()).is_transient());
        for e in [
            VerifyError::Malformed("x".into()),
            VerifyError::RawMessageDelivery,
            VerifyError::UnsupportedVersion("3".into()),
            VerifyError::UntrustedCertUrl("x".into()),
            VerifyError::CertInvalid("x".into()),
            VerifyError::BadSignature,
        ] {
            assert!(!e.is_transient(), "{e:?}");
        }
    }
}
