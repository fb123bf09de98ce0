//! The verification pipeline: parse, version, certificate URL policy, certificate,
//! validity at the message's `Timestamp`, RSA signature.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use rsa::pkcs1v15::Signature;
use rsa::signature::Verifier as _;

use crate::certificate::SigningCert;
use crate::envelope::{Envelope, SignatureVersion};
use crate::error::VerifyError;
use crate::policy::TrustPolicy;
use crate::source::CertificateSource;

/// A message whose signature verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The envelope, values exactly as received.
    pub envelope: Envelope,
    /// `Timestamp`, parsed.
    pub timestamp: DateTime<Utc>,
    /// The signature scheme that verified.
    pub version: SignatureVersion,
}

/// Verifies SNS messages: URL policy plus a certificate source.
#[derive(Clone)]
pub struct Verifier {
    policy: TrustPolicy,
    source: Arc<dyn CertificateSource>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier trusting `policy`'s URLs and fetching certificates through `source`.
    #[must_use]
    pub fn new(policy: TrustPolicy, source: Arc<dyn CertificateSource>) -> Self {
        Self { policy, source }
    }

    /// Verifies a raw request body: [`Verifier::verify_str`] after a UTF-8 check.
    ///
    /// # Errors
    /// Any [`VerifyError`]; only [`VerifyError::CertUnavailable`] is transient.
    pub async fn verify(&self, body: &[u8]) -> Result<Verified, VerifyError> {
        self.verify_str(crate::envelope::utf8(body)?).await
    }

    /// Verifies a request body that is already text (see [`crate::envelope::body_text`]).
    ///
    /// In order: parse the envelope; `SignatureVersion`; `Timestamp`; base64 of
    /// `Signature`; the `SigningCertURL` policy; the certificate (through the
    /// source, which fetches exactly the URL the policy returned); the
    /// certificate's validity at the message's `Timestamp` (not the wall
    /// clock, so stored messages can be replayed); the RSA signature over
    /// [`Envelope::string_to_sign`].
    ///
    /// # Errors
    /// Any [`VerifyError`]; only [`VerifyError::CertUnavailable`] is transient.
    pub async fn verify_str(&self, body: &str) -> Result<Verified, VerifyError> {
        let envelope = Envelope::parse_str(body)?;
        let version = envelope.signature_version()?;
        let timestamp = envelope.parsed_timestamp()?;
        let signature = decode_signature(&envelope.signature)?;
        let url = self.policy.check_cert_url(&envelope.signing_cert_url)?;
        let cert = self.source.certificate(&url).await?;
        check_validity(&cert, timestamp)?;
        check_signature(&envelope, version, &signature, &cert)?;
        Ok(Verified {
            envelope,
            timestamp,
            version,
        })
    }
}

/// Verifies an already parsed envelope against a certificate, synchronously.
///
/// Checks the version, the certificate's validity at `Timestamp` and the RSA
/// signature. It does NOT check where the certificate came from: use
/// [`Verifier::verify`] for untrusted input.
///
/// # Errors
/// [`VerifyError::UnsupportedVersion`], [`VerifyError::Malformed`] (timestamp),
/// [`VerifyError::CertInvalid`] (not valid at `Timestamp`) or [`VerifyError::BadSignature`].
pub fn verify_with_cert(envelope: &Envelope, cert: &SigningCert) -> Result<(), VerifyError> {
    let version = envelope.signature_version()?;
    let timestamp = envelope.parsed_timestamp()?;
    let signature = decode_signature(&envelope.signature)?;
    check_validity(cert, timestamp)?;
    check_signature(envelope, version, &signature, cert)
}

fn decode_signature(b64: &str) -> Result<Signature, VerifyError> {
    let bytes = STANDARD
        .decode(b64.as_bytes())
        .map_err(|_| VerifyError::BadSignature)?;
    Signature::try_from(bytes.as_slice()).map_err(|_| VerifyError::BadSignature)
}

fn check_validity(cert: &SigningCert, at: DateTime<Utc>) -> Result<(), VerifyError> {
    if cert.valid_at(at) {
        Ok(())
    } else {
        Err(VerifyError::CertInvalid(format!(
            "the certificate is valid from {} to {}, not at the message Timestamp {}",
            cert.not_before(),
            cert.not_after(),
            at
        )))
    }
}

fn check_signature(
    envelope: &Envelope,
    version: SignatureVersion,
    signature: &Signature,
    cert: &SigningCert,
) -> Result<(), VerifyError> {
    let message = envelope.string_to_sign();
    let outcome = match version {
        SignatureVersion::V1 => cert.v1().verify(message.as_bytes(), signature),
        SignatureVersion::V2 => cert.v2().verify(message.as_bytes(), signature),
    };
    // Any error from the rsa crate is a failure; only `Ok(())` passes.
    outcome.map_err(|_| VerifyError::BadSignature)
}

#[cfg(test)]
#[cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]
mod tests {
    use super::*;
    use crate::envelope::MessageType;
    use crate::source::MockCertificateSource;
    use crate::testing::{DEFAULT_CERT_URL, TestSigner};
    use chrono::NaiveDate;
    use serde_json::{Value, json};

    const ARN: &str = "arn:aws:sns:us-east-1:123456789012:ses-events";
    const TOKEN: &str = "2336412f37fb687f5d51e6e241d09c805a5a57b30d712f794cc5f6a988666d92";
    const SES: &str = r#"{"notificationType":"Delivery","mail":{"messageId":"0100"}}"#;

    /// A verifier whose source serves `signer`'s certificate for exactly its URL.
    fn verifier_for(signer: &TestSigner) -> Verifier {
        let cert = Arc::new(signer.signing_cert());
        let expected = signer.cert_url();
        let mut source = MockCertificateSource::new();
        source
            .expect_certificate()
            .withf(move |url| url.as_str() == expected)
            .returning(move |_| Ok(Arc::clone(&cert)));
        Verifier::new(TrustPolicy::amazon(), Arc::new(source))
    }

    /// A verifier whose source must never be called.
    fn verifier_without_fetch() -> Verifier {
        let mut source = MockCertificateSource::new();
        source.expect_certificate().times(0);
        Verifier::new(TrustPolicy::amazon(), Arc::new(source))
    }

    async fn verify(verifier: &Verifier, v: &Value) -> Result<Verified, VerifyError> {
        verifier.verify(v.to_string().as_bytes()).await
    }

    fn all_messages(signer: &TestSigner) -> Vec<(Value, SignatureVersion)> {
        let sub = signer.subscribe_url(ARN, TOKEN);
        let mut out = Vec::new();
        for version in [SignatureVersion::V1, SignatureVersion::V2] {
            out.push((
                signer.notification(
                    ARN,
                    "n-subject",
                    SES,
                    Some("Amazon SES Email Event Notification"),
                    version,
                ),
                version,
            ));
            out.push((
                signer.notification(ARN, "n-plain", SES, None, version),
                version,
            ));
            out.push((
                signer.subscription_confirmation(ARN, "s", &sub, TOKEN, version),
                version,
            ));
            out.push((
                signer.unsubscribe_confirmation(ARN, "u", &sub, TOKEN, version),
                version,
            ));
        }
        out
    }

    #[tokio::test]
    async fn every_type_and_version_verifies() {
        let signer = TestSigner::shared();
        let verifier = verifier_for(signer);
        for (v, version) in all_messages(signer) {
            let verified = verify(&verifier, &v)
                .await
                .unwrap_or_else(|e| panic!("{v}: {e}"));
            assert_eq!(verified.version, version);
            assert_eq!(
                verified.envelope.message_id,
                v["MessageId"].as_str().unwrap()
            );
            assert_eq!(verified.envelope.timestamp, "2026-11-27T12:00:00.000Z");
            assert_eq!(verified.timestamp.to_rfc3339(), "2026-11-27T12:00:00+00:00");
        }
    }

    #[tokio::test]
    async fn null_subject_and_lambda_key_spellings_verify() {
        let signer = TestSigner::shared();
        let verifier = verifier_for(signer);
        for version in [SignatureVersion::V1, SignatureVersion::V2] {
            let mut v = json!({
                "Type": "Notification",
                "MessageId": "lambda-1",
                "TopicArn": ARN,
                "Subject": null,
                "Message": SES,
                "Timestamp": "2026-11-27T12:00:00.000Z",
                "SigningCertUrl": "",
                "UnsubscribeUrl": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
                "MessageAttributes": {"Test": {"Type": "String", "Value": "TestString"}}
            });
            signer.sign_value(&mut v, version);
            assert_eq!(v["SigningCertUrl"], DEFAULT_CERT_URL);
            let verified = verify(&verifier, &v).await.unwrap();
            assert_eq!(verified.envelope.subject, None);
        }
    }

    #[tokio::test]
    async fn verify_with_cert_agrees() {
        let signer = TestSigner::shared();
        let cert = signer.signing_cert();
        for (v, _) in all_messages(signer) {
            let env = Envelope::parse(v.to_string().as_bytes()).unwrap();
            verify_with_cert(&env, &cert).unwrap();
            let mut tampered = env.clone();
            tampered.message_id.push('x');
            assert_eq!(
                verify_with_cert(&tampered, &cert),
                Err(VerifyError::BadSignature)
            );
        }
    }

    #[tokio::test]
    async fn tampering_with_any_signed_field_fails() {
        let signer = TestSigner::shared();
        let verifier = verifier_for(signer);
        let sub = signer.subscribe_url(ARN, TOKEN);
        for version in [SignatureVersion::V1, SignatureVersion::V2] {
            let notification = signer.notification(ARN, "n", SES, Some("subject"), version);
            let confirmation = signer.subscription_confirmation(ARN, "s", &sub, TOKEN, version);
            let unsubscribe = signer.unsubscribe_confirmation(ARN, "u", &sub, TOKEN, version);
            let cases: Vec<(&Value, &str, Value)> = vec![
                (
                    &notification,
                    "Message",
                    json!(SES.replace("Delivery", "Bounce")),
                ),
                (&notification, "MessageId", json!("n2")),
                (&notification, "Subject", json!("other")),
                (&notification, "Subject", Value::Null),
                (&notification, "Timestamp", json!("2026-11-27T12:00:00Z")),
                (
                    &notification,
                    "Timestamp",
                    json!("2026-11-27T12:00:01.000Z"),
                ),
                (&notification, "TopicArn", json!(format!("{ARN}2"))),
                (&confirmation, "Message", json!("x")),
                (&confirmation, "MessageId", json!("s2")),
                (
                    &confirmation,
                    "SubscribeURL",
                    json!(signer.subscribe_url(ARN, "ffff")),
                ),
                (&confirmation, "Token", json!("ffff")),
                (&confirmation, "Type", json!("UnsubscribeConfirmation")),
                (&unsubscribe, "Token", json!("ffff")),
                (
                    &unsubscribe,
                    "SubscribeURL",
                    json!(signer.subscribe_url(ARN, "ffff")),
                ),
                (&unsubscribe, "Type", json!("SubscriptionConfirmation")),
            ];
            for (original, key, value) in cases {
                let mut v = original.clone();
                v[key] = value.clone();
                assert_eq!(
                    verify(&verifier, &v).await.map(|_| ()),
                    Err(VerifyError::BadSignature),
                    "{version:?}: {key} = {value}"
                );
            }
            // Removing the Subject changes the string to sign, too.
            let mut v = notification.clone();
            v.as_object_mut().unwrap().remove("Subject");
            assert_eq!(
                verify(&verifier, &v).await.map(|_| ()),
                Err(VerifyError::BadSignature)
            );
            // A Notification turned into a confirmation cannot verify either.
            let mut v = notification.clone();
            v["Type"] = json!("SubscriptionConfirmation");
            v["SubscribeURL"] = json!(sub);
            v["Token"] = json!(TOKEN);
            assert_eq!(
                verify(&verifier, &v).await.map(|_| ()),
                Err(VerifyError::BadSignature)
            );
        }
    }

    #[tokio::test]
    async fn tampering_with_the_signature_or_version_fails() {
        let signer = TestSigner::shared();
        let verifier = verifier_for(signer);
        let v1 = signer.notification(ARN, "n", SES, None, SignatureVersion::V1);
        let v2 = signer.notification(ARN, "n", SES, None, SignatureVersion::V2);

        // The same message signed with the other hash.
        let mut v = v1.clone();
        v["SignatureVersion"] = json!("2");
        assert_eq!(
            verify(&verifier, &v).await.map(|_| ()),
            Err(VerifyError::BadSignature)
        );
        let mut v = v2.clone();
        v["SignatureVersion"] = json!("1");
        assert_eq!(
            verify(&verifier, &v).await.map(|_| ()),
            Err(VerifyError::BadSignature)
        );

        // Unknown versions never fall back to SHA-1.
        for bad in ["3", "", "1.0"] {
            let mut v = v1.clone();
            v["SignatureVersion"] = json!(bad);
            assert_eq!(
                verify(&verifier_without_fetch(), &v).await.map(|_| ()),
                Err(VerifyError::UnsupportedVersion(bad.into()))
            );
        }

        // Signature bytes flipped, truncated, extended, emptied, not base64.
        let sig = v2["Signature"].as_str().unwrap().to_owned();
        let mut flipped = sig.clone().into_bytes();
        flipped[10] = if flipped[10] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        let other_message = signer.notification(ARN, "other", SES, None, SignatureVersion::V2);
        for bad in [
            flipped,
            sig[..sig.len() - 4].to_owned(),
            format!("{sig}AAAA"),
            String::new(),
            "not base64!".to_owned(),
            sig.replace('+', "-").replace('/', "_"),
            other_message["Signature"].as_str().unwrap().to_owned(),
            "A".repeat(2000),
        ] {
            if bad == sig {
                continue;
            }
            let mut v = v2.clone();
            v["Signature"] = json!(bad);
            assert_eq!(
                verify(&verifier, &v).await.map(|_| ()),
                Err(VerifyError::BadSignature),
                "{bad}"
            );
        }
    }

    #[tokio::test]
    async fn a_certificate_with_another_key_fails() {
        let signer = TestSigner::shared();
        let impostor = TestSigner::generate();
        // The message is signed by the impostor, the certificate served is ours.
        let v = impostor.notification(ARN, "n", SES, None, SignatureVersion::V2);
        assert_eq!(
            verify(&verifier_for(signer), &v).await.map(|_| ()),
            Err(VerifyError::BadSignature)
        );
        // And the other way round.
        let v = signer.notification(ARN, "n", SES, None, SignatureVersion::V1);
        assert_eq!(
            verify(&verifier_for(&impostor), &v).await.map(|_| ()),
            Err(VerifyError::BadSignature)
        );
    }

    #[tokio::test]
    async fn unsigned_keys_may_change_freely() {
        let signer = TestSigner::shared();
        let verifier = verifier_for(signer);
        let mut v = signer.notification(ARN, "n", SES, Some("s"), SignatureVersion::V1);
        v["MessageAttributes"] =
            json!({"Type": {"Type": "String", "Value": "SubscriptionConfirmation"}});
        v["UnsubscribeURL"] = json!("https://example.com/anything");
        v["Token"] = json!("not signed for notifications");
        v["SomethingNew"] = json!([1, 2, 3]);
        let verified = verify(&verifier, &v).await.unwrap();
        assert_eq!(verified.envelope.message_type, MessageType::Notification);
    }

    #[tokio::test]
    async fn an_untrusted_cert_url_is_rejected_before_any_fetch() {
        let signer = TestSigner::shared().with_cert_url(
            "https://sns.s3-us-east-1.amazonaws.com/SimpleNotificationService-x.pem",
        );
        let v = signer.notification(ARN, "n", SES, None, SignatureVersion::V2);
        assert!(matches!(
            verify(&verifier_without_fetch(), &v).await,
            Err(VerifyError::UntrustedCertUrl(_))
        ));
    }

    #[tokio::test]
    async fn dev_endpoints_verify_when_trusted() {
        let signer = TestSigner::shared()
            .with_cert_url("http://localhost:4566/_aws/sns/SimpleNotificationService-local.pem");
        let v = signer.notification(ARN, "n", SES, None, SignatureVersion::V1);
        assert!(matches!(
            verify(&verifier_without_fetch(), &v).await,
            Err(VerifyError::UntrustedCertUrl(_))
        ));
        let cert = Arc::new(signer.signing_cert());
        let mut source = MockCertificateSource::new();
        source
            .expect_certificate()
            .times(1)
            .returning(move |_| Ok(Arc::clone(&cert)));
        let verifier = Verifier::new(
            TrustPolicy::amazon()
                .with_dev_endpoints(vec![url::Url::parse("http://localhost:4566").unwrap()]),
            Arc::new(source),
        );
        verify(&verifier, &v).await.unwrap();
    }

    #[tokio::test]
    async fn certificate_validity_is_judged_at_the_message_timestamp() {
        let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day).unwrap();
        // Valid during 2020 only: expired now.
        let signer = TestSigner::shared().with_validity(d(2020, 1, 1), d(2021, 1, 1));
        let verifier = verifier_for(&signer);

        let then = signer.notification_at(
            ARN,
            "n",
            SES,
            None,
            SignatureVersion::V2,
            "2020-06-01T08:30:00.000Z",
        );
        let verified = verify(&verifier, &then).await.unwrap();
        assert_eq!(verified.envelope.timestamp, "2020-06-01T08:30:00.000Z");

        for outside in ["2026-11-27T12:00:00.000Z", "2019-12-31T23:59:59.000Z"] {
            let v = signer.notification_at(ARN, "n", SES, None, SignatureVersion::V2, outside);
            assert!(
                matches!(
                    verify(&verifier, &v).await,
                    Err(VerifyError::CertInvalid(_))
                ),
                "{outside}"
            );
        }
    }

    #[tokio::test]
    async fn an_unparsable_timestamp_is_malformed() {
        let signer = TestSigner::shared();
        let v = signer.notification_at(ARN, "n", SES, None, SignatureVersion::V2, "yesterday");
        assert!(matches!(
            verify(&verifier_without_fetch(), &v).await,
            Err(VerifyError::Malformed(_))
        ));
    }

    #[tokio::test]
    async fn source_failures_propagate_and_stay_transient() {
        let mut source = MockCertificateSource::new();
        source
            .expect_certificate()
            .times(1)
            .returning(|_| Err(VerifyError::CertUnavailable("timeout".into())));
        let verifier = Verifier::new(TrustPolicy::amazon(), Arc::new(source));
        let v = TestSigner::shared().notification(ARN, "n", SES, None, SignatureVersion::V1);
        let err = verify(&verifier, &v).await.unwrap_err();
        assert!(err.is_transient(), "{err:?}");
    }

    #[tokio::test]
    async fn malformed_bodies_never_reach_the_source() {
        let verifier = verifier_without_fetch();
        for body in [
            b"".as_slice(),
            b"\xff\xfe",
            b"[]",
            br#"{"notificationType":"Bounce","mail":{}}"#,
        ] {
            assert!(matches!(
                verifier.verify(body).await,
                Err(VerifyError::Malformed(_) | VerifyError::RawMessageDelivery)
            ));
        }
    }
}
