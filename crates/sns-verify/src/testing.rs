//! Test support (feature `test-util`): a throwaway RSA key and self-signed
//! certificate that sign SNS envelopes exactly as Amazon SNS does.
//!
//! The string-to-sign here is a separate, deliberately simple implementation
//! working on the JSON value, so a bug in [`crate::Envelope::string_to_sign`]
//! cannot hide itself. Helpers panic on failure: they are for tests only.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{Datelike as _, NaiveDate};
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::DecodePrivateKey as _;
use rsa::signature::{SignatureEncoding as _, Signer as _};
use serde_json::{Value, json};
use sha1::Sha1;
use sha2::Sha256;
use url::Url;

use crate::certificate::SigningCert;
use crate::envelope::SignatureVersion;

/// Default `SigningCertURL` of test messages.
pub const DEFAULT_CERT_URL: &str =
    "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-ses-webhook-test.pem";
/// Default `Timestamp` of test messages (note the `.000` that must survive).
pub const DEFAULT_TIMESTAMP: &str = "2026-11-27T12:00:00.000Z";

struct Keys {
    key_pem: String,
    v1: SigningKey<Sha1>,
    v2: SigningKey<Sha256>,
}

/// Signs SNS envelopes with a test key; see the module documentation.
#[derive(Clone)]
pub struct TestSigner {
    keys: Arc<Keys>,
    cert_pem: String,
    cert_url: String,
}

impl fmt::Debug for TestSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestSigner")
            .field("cert_url", &self.cert_url)
            .finish_non_exhaustive()
    }
}

impl TestSigner {
    /// One signer per process (2048-bit key generation is slow), certificate
    /// valid 2020-01-01 to 2040-01-01, URL [`DEFAULT_CERT_URL`].
    #[must_use]
    pub fn shared() -> &'static TestSigner {
        static SHARED: OnceLock<TestSigner> = OnceLock::new();
        SHARED.get_or_init(TestSigner::generate)
    }

    /// A signer with a fresh key (for "signed by another key" tests).
    ///
    /// # Panics
    /// When key or certificate generation fails.
    #[must_use]
    #[expect(
        clippy::expect_used,
        reason = "test helper: failing loudly is the point"
    )]
    pub fn generate() -> TestSigner {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256)
            .expect("generate a 2048-bit RSA test key");
        let private = rsa::PrivateKey::from_pkcs8_der(key.serialized_der())
            .expect("load the test key into the rsa crate");
        let keys = Arc::new(Keys {
            key_pem: key.serialize_pem(),
            v1: SigningKey::new(private.clone()),
            v2: SigningKey::new(private),
        });
        let start = NaiveDate::from_ymd_opt(2020, 1, 1).unwrap_or_default();
        let end = NaiveDate::from_ymd_opt(2040, 1, 1).unwrap_or_default();
        TestSigner {
            cert_pem: make_cert(&keys.key_pem, start, end),
            keys,
            cert_url: DEFAULT_CERT_URL.to_owned(),
        }
    }

    /// The same key with a new certificate valid from `not_before` to
    /// `not_after` (midnight UTC), for expiry tests.
    #[must_use]
    pub fn with_validity(&self, not_before: NaiveDate, not_after: NaiveDate) -> TestSigner {
        TestSigner {
            keys: Arc::clone(&self.keys),
            cert_pem: make_cert(&self.keys.key_pem, not_before, not_after),
            cert_url: self.cert_url.clone(),
        }
    }

    /// The same key and certificate published under another URL (for example
    /// a LocalStack-style dev endpoint).
    #[must_use]
    pub fn with_cert_url(&self, url: impl Into<String>) -> TestSigner {
        TestSigner {
            cert_url: url.into(),
            ..self.clone()
        }
    }

    /// The certificate, PEM.
    #[must_use]
    pub fn cert_pem(&self) -> String {
        self.cert_pem.clone()
    }

    /// The certificate, parsed.
    ///
    /// # Panics
    /// Never for certificates this type generated.
    #[must_use]
    #[expect(
        clippy::expect_used,
        reason = "test helper: failing loudly is the point"
    )]
    pub fn signing_cert(&self) -> SigningCert {
        SigningCert::from_pem(self.cert_pem.as_bytes()).expect("parse the test certificate")
    }

    /// The `SigningCertURL` put into messages.
    #[must_use]
    pub fn cert_url(&self) -> String {
        self.cert_url.clone()
    }

    /// Writes the PEM into `dir` under the URL's last path segment, as a
    /// [`crate::PinnedDirSource`] expects it.
    ///
    /// # Errors
    /// I/O errors, or `InvalidInput` when the URL has no file name.
    pub fn write_pinned(&self, dir: &Path) -> io::Result<PathBuf> {
        let name = Url::parse(&self.cert_url)
            .ok()
            .and_then(|u| u.path_segments()?.next_back().map(str::to_owned))
            .filter(|n| !n.is_empty())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name in URL"))?;
        let path = dir.join(name);
        std::fs::write(&path, &self.cert_pem)?;
        Ok(path)
    }

    /// A valid `SubscribeURL` on the certificate URL's origin for this topic and token.
    ///
    /// # Panics
    /// When the certificate URL is not a URL.
    #[must_use]
    #[expect(
        clippy::expect_used,
        reason = "test helper: failing loudly is the point"
    )]
    pub fn subscribe_url(&self, topic_arn: &str, token: &str) -> String {
        let mut url = Url::parse(&self.cert_url).expect("the cert URL is a URL");
        url.set_path("/");
        url.set_query(None);
        url.query_pairs_mut()
            .append_pair("Action", "ConfirmSubscription")
            .append_pair("TopicArn", topic_arn)
            .append_pair("Token", token);
        url.into()
    }

    /// A signed `Notification` with [`DEFAULT_TIMESTAMP`].
    #[must_use]
    pub fn notification(
        &self,
        topic_arn: &str,
        message_id: &str,
        message: &str,
        subject: Option<&str>,
        version: SignatureVersion,
    ) -> Value {
        self.notification_at(
            topic_arn,
            message_id,
            message,
            subject,
            version,
            DEFAULT_TIMESTAMP,
        )
    }

    /// A signed `Notification` with the given `Timestamp` (used verbatim).
    #[must_use]
    pub fn notification_at(
        &self,
        topic_arn: &str,
        message_id: &str,
        message: &str,
        subject: Option<&str>,
        version: SignatureVersion,
        timestamp: &str,
    ) -> Value {
        let mut v = json!({
            "Type": "Notification",
            "MessageId": message_id,
            "TopicArn": topic_arn,
            "Message": message,
            "Timestamp": timestamp,
            "UnsubscribeURL": self.unsubscribe_url(topic_arn),
        });
        if let (Some(subject), Some(obj)) = (subject, v.as_object_mut()) {
            obj.insert("Subject".into(), Value::String(subject.to_owned()));
        }
        self.sign_value(&mut v, version);
        v
    }

    /// A signed `SubscriptionConfirmation`.
    #[must_use]
    pub fn subscription_confirmation(
        &self,
        topic_arn: &str,
        message_id: &str,
        subscribe_url: &str,
        token: &str,
        version: SignatureVersion,
    ) -> Value {
        let message = format!(
            "You have chosen to subscribe to the topic {topic_arn}.\n\
             To confirm the subscription, visit the SubscribeURL included in this message."
        );
        self.confirmation(
            "SubscriptionConfirmation",
            &message,
            topic_arn,
            message_id,
            subscribe_url,
            token,
            version,
        )
    }

    /// A signed `UnsubscribeConfirmation`.
    #[must_use]
    pub fn unsubscribe_confirmation(
        &self,
        topic_arn: &str,
        message_id: &str,
        subscribe_url: &str,
        token: &str,
        version: SignatureVersion,
    ) -> Value {
        let message = format!(
            "You have chosen to deactivate subscription {topic_arn}:0f1e2d3c.\n\
             To cancel this operation and restore the subscription, visit the SubscribeURL \
             included in this message."
        );
        self.confirmation(
            "UnsubscribeConfirmation",
            &message,
            topic_arn,
            message_id,
            subscribe_url,
            token,
            version,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn confirmation(
        &self,
        kind: &str,
        message: &str,
        topic_arn: &str,
        message_id: &str,
        subscribe_url: &str,
        token: &str,
        version: SignatureVersion,
    ) -> Value {
        let mut v = json!({
            "Type": kind,
            "MessageId": message_id,
            "Token": token,
            "TopicArn": topic_arn,
            "Message": message,
            "SubscribeURL": subscribe_url,
            "Timestamp": DEFAULT_TIMESTAMP,
        });
        self.sign_value(&mut v, version);
        v
    }

    /// Fills `SignatureVersion`, `SigningCertURL` (or `SigningCertUrl` when that
    /// spelling is already present) and `Signature` of a hand-made envelope.
    ///
    /// # Panics
    /// When `envelope` is not a JSON object.
    pub fn sign_value(&self, envelope: &mut Value, version: SignatureVersion) {
        let Some(obj) = envelope.as_object_mut() else {
            panic!("sign_value needs a JSON object");
        };
        obj.insert("SignatureVersion".into(), version.as_str().into());
        let url_key = if obj.contains_key("SigningCertUrl") {
            "SigningCertUrl"
        } else {
            "SigningCertURL"
        };
        obj.insert(url_key.into(), self.cert_url.clone().into());
        let signature = self.sign(reference_string_to_sign(envelope).as_bytes(), version);
        if let Some(obj) = envelope.as_object_mut() {
            obj.insert("Signature".into(), signature.into());
        }
    }

    /// Base64 RSASSA-PKCS1-v1_5 signature of `data` with the version's hash.
    #[must_use]
    pub fn sign(&self, data: &[u8], version: SignatureVersion) -> String {
        let bytes = match version {
            SignatureVersion::V1 => self.keys.v1.sign(data).to_vec(),
            SignatureVersion::V2 => self.keys.v2.sign(data).to_vec(),
        };
        STANDARD.encode(bytes)
    }

    fn unsubscribe_url(&self, topic_arn: &str) -> String {
        let origin = Url::parse(&self.cert_url)
            .map(|u| u.origin().ascii_serialization())
            .unwrap_or_default();
        format!("{origin}/?Action=Unsubscribe&SubscriptionArn={topic_arn}:0f1e2d3c")
    }
}

/// An independent string-to-sign over the JSON value, written as plainly as
/// the AWS documentation states it.
fn reference_string_to_sign(envelope: &Value) -> String {
    let keys: &[&str] = if envelope.get("Type").and_then(Value::as_str) == Some("Notification") {
        &[
            "Message",
            "MessageId",
            "Subject",
            "Timestamp",
            "TopicArn",
            "Type",
        ]
    } else {
        &[
            "Message",
            "MessageId",
            "SubscribeURL",
            "Timestamp",
            "Token",
            "TopicArn",
            "Type",
        ]
    };
    let mut out = String::new();
    for key in keys {
        if let Some(Value::String(value)) = envelope.get(*key) {
            out.push_str(&format!("{key}\n{value}\n"));
        }
    }
    out
}

#[expect(
    clippy::expect_used,
    reason = "test helper: failing loudly is the point"
)]
fn make_cert(key_pem: &str, not_before: NaiveDate, not_after: NaiveDate) -> String {
    let key = rcgen::KeyPair::from_pem(key_pem).expect("reload the test key");
    let mut params = rcgen::CertificateParams::new(vec!["sns.amazonaws.com".to_owned()])
        .expect("certificate parameters");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "sns.amazonaws.com");
    let ymd = |d: NaiveDate| {
        rcgen::date_time_ymd(
            d.year(),
            u8::try_from(d.month()).unwrap_or(1),
            u8::try_from(d.day()).unwrap_or(1),
        )
    };
    params.not_before = ymd(not_before);
    params.not_after = ymd(not_after);
    params
        .self_signed(&key)
        .expect("self-sign the test certificate")
        .pem()
}

#[cfg(test)]
#[cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]
mod tests {
    use super::*;
    use crate::envelope::Envelope;

    const ARN: &str = "arn:aws:sns:us-east-1:123456789012:ses-events";

    #[test]
    fn the_reference_string_to_sign_agrees_with_the_envelope() {
        let s = TestSigner::shared();
        let url = s.subscribe_url(ARN, "tok");
        for v in [
            s.notification(ARN, "m1", "hello", Some("subj"), SignatureVersion::V1),
            s.notification(ARN, "m2", "hello", None, SignatureVersion::V2),
            s.subscription_confirmation(ARN, "m3", &url, "tok", SignatureVersion::V1),
            s.unsubscribe_confirmation(ARN, "m4", &url, "tok", SignatureVersion::V2),
        ] {
            let env = Envelope::parse(v.to_string().as_bytes()).unwrap();
            assert_eq!(env.string_to_sign(), reference_string_to_sign(&v));
        }
    }

    #[test]
    fn messages_carry_the_default_timestamp_verbatim() {
        let v = TestSigner::shared().notification(ARN, "m", "x", None, SignatureVersion::V1);
        assert_eq!(v["Timestamp"], DEFAULT_TIMESTAMP);
        assert_eq!(v["SigningCertURL"], DEFAULT_CERT_URL);
        assert_eq!(v["SignatureVersion"], "1");
    }

    #[test]
    fn write_pinned_uses_the_last_url_segment() {
        let dir = tempfile::tempdir().unwrap();
        let signer = TestSigner::shared().with_cert_url("http://localhost:4566/_aws/sns/Local.pem");
        let path = signer.write_pinned(dir.path()).unwrap();
        assert_eq!(path, dir.path().join("Local.pem"));
        assert_eq!(std::fs::read_to_string(path).unwrap(), signer.cert_pem());
    }

    #[test]
    fn subscribe_url_follows_the_cert_url_origin() {
        let s = TestSigner::shared().with_cert_url("http://localhost:4566/_aws/sns/x.pem");
        let url = s.subscribe_url(ARN, "t");
        assert!(url.starts_with("http://localhost:4566/?Action=ConfirmSubscription&TopicArn="));
    }
}
