//! The SNS signing certificate: parsed once, RSA key extracted once.

use std::fmt;

use chrono::{DateTime, Utc};
use rsa::pkcs1v15::VerifyingKey;
use rsa::pkcs8::DecodePublicKey;
use sha1::Sha1;
use sha2::Sha256;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::error::VerifyError;

/// A parsed leaf certificate with its RSA public key ready for both signature versions.
///
/// SNS serves only the leaf certificate, so no chain is built: trust comes from
/// the URL policy (where the certificate was fetched from) and, optionally, a
/// pinned directory. Validity is checked against the message's `Timestamp`.
#[derive(Clone)]
pub struct SigningCert {
    v1: VerifyingKey<Sha1>,
    v2: VerifyingKey<Sha256>,
    public_key: rsa::PublicKey,
    not_before: DateTime<Utc>,
    not_after: DateTime<Utc>,
}

impl SigningCert {
    /// Parses the first `CERTIFICATE` block of a PEM document.
    ///
    /// # Errors
    /// [`VerifyError::CertInvalid`] when there is no PEM certificate, the X.509
    /// structure does not parse, or the key is not RSA.
    pub fn from_pem(bytes: &[u8]) -> Result<Self, VerifyError> {
        let blocks = pem::parse_many(bytes)
            .map_err(|e| VerifyError::CertInvalid(format!("not a PEM document: {e}")))?;
        let block = blocks
            .iter()
            .find(|b| b.tag() == "CERTIFICATE")
            .ok_or_else(|| VerifyError::CertInvalid("no CERTIFICATE block in the PEM".into()))?;
        Self::from_der(block.contents())
    }

    /// Parses a DER-encoded X.509 certificate.
    ///
    /// # Errors
    /// [`VerifyError::CertInvalid`] when the certificate does not parse or the key is not RSA.
    pub fn from_der(der: &[u8]) -> Result<Self, VerifyError> {
        let (_, cert) = X509Certificate::from_der(der)
            .map_err(|e| VerifyError::CertInvalid(format!("not an X.509 certificate: {e}")))?;
        let spki = cert.public_key();
        let public_key = rsa::PublicKey::from_public_key_der(spki.raw).map_err(|e| {
            VerifyError::CertInvalid(format!(
                "the certificate key is not a usable RSA key (algorithm {}): {e}",
                spki.algorithm.algorithm
            ))
        })?;
        let validity = cert.validity();
        let time = |t: i64| {
            DateTime::<Utc>::from_timestamp(t, 0)
                .ok_or_else(|| VerifyError::CertInvalid("certificate validity out of range".into()))
        };
        Ok(Self {
            v1: VerifyingKey::new(public_key.clone()),
            v2: VerifyingKey::new(public_key.clone()),
            public_key,
            not_before: time(validity.not_before.timestamp())?,
            not_after: time(validity.not_after.timestamp())?,
        })
    }

    /// `true` when `at` lies within `[not_before, not_after]`.
    #[must_use]
    pub fn valid_at(&self, at: DateTime<Utc>) -> bool {
        self.not_before <= at && at <= self.not_after
    }

    /// Start of the validity period.
    #[must_use]
    pub fn not_before(&self) -> DateTime<Utc> {
        self.not_before
    }

    /// End of the validity period.
    #[must_use]
    pub fn not_after(&self) -> DateTime<Utc> {
        self.not_after
    }

    /// The RSA public key.
    #[must_use]
    pub fn public_key(&self) -> &rsa::PublicKey {
        &self.public_key
    }

    pub(crate) fn v1(&self) -> &VerifyingKey<Sha1> {
        &self.v1
    }

    pub(crate) fn v2(&self) -> &VerifyingKey<Sha256> {
        &self.v2
    }
}

impl fmt::Debug for SigningCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningCert")
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
#[cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]
mod tests {
    use super::*;
    use crate::testing::TestSigner;
    use chrono::{NaiveDate, TimeZone as _};

    #[test]
    fn parses_the_test_certificate_and_keeps_its_validity() {
        let cert = TestSigner::shared().signing_cert();
        assert_eq!(
            cert.not_before(),
            Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).unwrap()
        );
        assert_eq!(
            cert.not_after(),
            Utc.with_ymd_and_hms(2040, 1, 1, 0, 0, 0).unwrap()
        );
        assert!(cert.valid_at(Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0).unwrap()));
    }

    #[test]
    fn validity_bounds_are_inclusive_and_enforced() {
        let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day).unwrap();
        let cert = TestSigner::shared()
            .with_validity(d(2020, 1, 1), d(2021, 1, 1))
            .signing_cert();
        let start = Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).unwrap();
        let end = Utc.with_ymd_and_hms(2021, 1, 1, 0, 0, 0).unwrap();
        assert!(cert.valid_at(start));
        assert!(cert.valid_at(end));
        assert!(!cert.valid_at(start - chrono::Duration::seconds(1)));
        assert!(!cert.valid_at(end + chrono::Duration::seconds(1)));
        assert!(!cert.valid_at(Utc::now()));
    }

    #[test]
    fn garbage_is_cert_invalid() {
        for bytes in [
            b"".as_slice(),
            b"hello",
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
            b"<html>Access Denied</html>",
        ] {
            assert!(
                matches!(
                    SigningCert::from_pem(bytes),
                    Err(VerifyError::CertInvalid(_))
                ),
                "{bytes:?}"
            );
        }
    }

    #[test]
    fn a_non_rsa_certificate_is_rejected() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let pem = rcgen::CertificateParams::new(vec!["sns.amazonaws.com".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap()
            .pem();
        match SigningCert::from_pem(pem.as_bytes()) {
            Err(VerifyError::CertInvalid(m)) => assert!(m.contains("RSA"), "{m}"),
            other => panic!("expected CertInvalid, got {other:?}"),
        }
    }

    #[test]
    fn the_first_certificate_block_is_used_after_other_blocks() {
        let signer = TestSigner::shared();
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n{}",
            signer.cert_pem()
        );
        let cert = SigningCert::from_pem(pem.as_bytes()).unwrap();
        assert_eq!(cert.public_key(), signer.signing_cert().public_key());
    }
}
