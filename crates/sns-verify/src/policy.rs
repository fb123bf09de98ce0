//! Which certificate and subscription URLs are trusted.
//!
//! Every URL is parsed once with the `url` crate, the parsed [`Url`] is what the
//! caller fetches, and the raw string must already be in the canonical form the
//! parser would serialise it to. That one rule rejects whole classes of tricks
//! (surrounding whitespace or newlines, tabs, backslashes, upper case, default
//! ports written out, dot segments, IDN spellings) before the specific checks run.

use url::{Host, Url};

use crate::error::{UntrustedSubscribeUrl, VerifyError};

/// The set of hosts whose certificates and confirmation URLs are trusted.
///
/// [`TrustPolicy::amazon`] (the default) trusts exactly
/// `https://sns.<region>.amazonaws.com` and, for `cn-*` regions,
/// `https://sns.<region>.amazonaws.com.cn`. Development endpoints such as
/// LocalStack can be added with [`TrustPolicy::with_dev_endpoints`].
#[derive(Debug, Clone, Default)]
pub struct TrustPolicy {
    dev_endpoints: Vec<DevEndpoint>,
}

/// A base URL under which certificates and confirmation URLs are also trusted.
#[derive(Debug, Clone)]
struct DevEndpoint {
    scheme: String,
    host: String,
    port: Option<u16>,
    /// Always ends with `/`.
    base_path: String,
}

impl DevEndpoint {
    fn new(base: &Url) -> Option<Self> {
        let host = base.host_str()?.to_owned();
        let mut base_path = base.path().to_owned();
        if !base_path.ends_with('/') {
            base_path.push('/');
        }
        Some(Self {
            scheme: base.scheme().to_owned(),
            host,
            port: base.port_or_known_default(),
            base_path,
        })
    }

    fn matches(&self, url: &Url) -> bool {
        url.scheme() == self.scheme
            && url.host_str() == Some(self.host.as_str())
            && url.port_or_known_default() == self.port
            && url.path().starts_with(&self.base_path)
    }
}

impl TrustPolicy {
    /// Trust only Amazon SNS endpoints (the default).
    #[must_use]
    pub fn amazon() -> Self {
        Self::default()
    }

    /// Also trust URLs under these base URLs (for example LocalStack's
    /// `http://localhost:4566`): same scheme, host and port, path under the base
    /// path. `http` is accepted only for such endpoints. Base URLs that have no
    /// host, carry credentials, a query or a fragment are ignored (and logged).
    #[must_use]
    pub fn with_dev_endpoints(mut self, endpoints: Vec<Url>) -> Self {
        for base in endpoints {
            let usable = matches!(base.scheme(), "http" | "https")
                && base.username().is_empty()
                && base.password().is_none()
                && base.query().is_none()
                && base.fragment().is_none();
            match DevEndpoint::new(&base) {
                Some(ep) if usable => self.dev_endpoints.push(ep),
                _ => tracing::warn!(%base, "ignoring unusable SNS dev endpoint"),
            }
        }
        self
    }

    /// `true` when a development endpoint uses plain `http`.
    #[must_use]
    pub fn allows_http(&self) -> bool {
        self.dev_endpoints.iter().any(|e| e.scheme == "http")
    }

    /// Checks a `SigningCertURL` and returns the parsed URL: the very URL to fetch.
    ///
    /// Requires: canonical form, `https` (or a dev endpoint), no userinfo, no
    /// explicit port (unless the dev endpoint has it), no query, no fragment, a host
    /// that is exactly `sns.<region>.amazonaws.com` / `sns.cn-<...>.amazonaws.com.cn`
    /// (or a dev endpoint), and a path of plain segments whose last ends in `.pem`.
    ///
    /// # Errors
    /// [`VerifyError::UntrustedCertUrl`] naming the failed rule.
    pub fn check_cert_url(&self, raw: &str) -> Result<Url, VerifyError> {
        self.cert_url(raw).map_err(VerifyError::UntrustedCertUrl)
    }

    fn cert_url(&self, raw: &str) -> Result<Url, String> {
        let url = self.check_common(raw)?;
        if url.query().is_some() {
            return Err(format!("{raw:?} has a query"));
        }
        let path = url.path();
        let segments: Vec<&str> = path.split('/').skip(1).collect();
        let plain = segments.iter().all(|s| {
            !s.is_empty()
                && !s.starts_with('.')
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        });
        if !plain {
            return Err(format!(
                "{raw:?}: the path must be plain segments of letters, digits, '-', '_' and \
                 '.', not starting with '.'"
            ));
        }
        let file = segments.last().copied().unwrap_or_default();
        if !file.ends_with(".pem") || file.len() <= ".pem".len() {
            return Err(format!("{raw:?}: the path does not end in a .pem file"));
        }
        Ok(url)
    }

    /// Checks a `SubscribeURL` against the signed `TopicArn` and `Token` and
    /// returns the parsed URL: the very URL to visit.
    ///
    /// Same host rules as [`TrustPolicy::check_cert_url`]; the path must be `/`
    /// (or under a dev endpoint) and the query exactly `Action=ConfirmSubscription`,
    /// `TopicArn` and `Token`, each once, equal to the signed values.
    ///
    /// # Errors
    /// [`UntrustedSubscribeUrl`] naming the failed rule.
    pub fn check_subscribe_url(
        &self,
        raw: &str,
        topic_arn: &str,
        token: &str,
    ) -> Result<Url, UntrustedSubscribeUrl> {
        self.subscribe_url(raw, topic_arn, token)
            .map_err(UntrustedSubscribeUrl)
    }

    fn subscribe_url(&self, raw: &str, topic_arn: &str, token: &str) -> Result<Url, String> {
        let url = self.check_common(raw)?;
        if !self.is_dev(&url) && url.path() != "/" {
            return Err(format!("{raw:?}: the path must be \"/\""));
        }
        let (mut action, mut arn, mut tok) = (None, None, None);
        for (key, value) in url.query_pairs() {
            let target = match key.as_ref() {
                "Action" => &mut action,
                "TopicArn" => &mut arn,
                "Token" => &mut tok,
                other => {
                    return Err(format!("{raw:?}: unexpected query parameter {other:?}"));
                }
            };
            if target.replace(value).is_some() {
                return Err(format!("{raw:?}: query parameter {key:?} repeated"));
            }
        }
        if action.as_deref() != Some("ConfirmSubscription") {
            return Err(format!("{raw:?}: Action must be ConfirmSubscription"));
        }
        if arn.as_deref() != Some(topic_arn) {
            return Err(format!(
                "{raw:?}: TopicArn differs from the signed TopicArn"
            ));
        }
        if tok.as_deref() != Some(token) {
            return Err(format!("{raw:?}: Token differs from the signed Token"));
        }
        Ok(url)
    }

    fn is_dev(&self, url: &Url) -> bool {
        self.dev_endpoints.iter().any(|e| e.matches(url))
    }

    /// Rules shared by certificate and subscribe URLs.
    fn check_common(&self, raw: &str) -> Result<Url, String> {
        if raw.bytes().any(|b| !b.is_ascii_graphic()) {
            return Err(format!(
                "{raw:?} contains whitespace, control or non-ASCII characters"
            ));
        }
        let url = Url::parse(raw).map_err(|e| format!("{raw:?} is not a URL: {e}"))?;
        if url.as_str() != raw {
            return Err(format!(
                "{raw:?} is not in canonical form (it parses as {:?})",
                url.as_str()
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(format!("{raw:?} carries credentials"));
        }
        if url.fragment().is_some() {
            return Err(format!("{raw:?} has a fragment"));
        }
        if self.is_dev(&url) {
            return Ok(url);
        }
        if url.scheme() != "https" {
            return Err(format!("{raw:?}: the scheme must be https"));
        }
        if url.port().is_some() || raw_has_port(raw) {
            return Err(format!("{raw:?} has an explicit port"));
        }
        match url.host() {
            Some(Host::Domain(host)) if is_sns_host(host) => Ok(url),
            _ => Err(format!("{raw:?}: the host is not an Amazon SNS endpoint")),
        }
    }
}

/// The url crate drops a default port (`:443`) when parsing, so canonical-form
/// equality already rejects it; this is a second, explicit guard.
fn raw_has_port(raw: &str) -> bool {
    raw.strip_prefix("https://")
        .and_then(|rest| rest.split('/').next())
        .is_some_and(|authority| authority.contains(':'))
}

/// `sns.<region>.amazonaws.com`, or `sns.cn-<...>.amazonaws.com.cn`; whole host.
fn is_sns_host(host: &str) -> bool {
    let Some(rest) = host.strip_prefix("sns.") else {
        return false;
    };
    if let Some(region) = rest.strip_suffix(".amazonaws.com") {
        is_region(region) && !region.starts_with("cn-")
    } else if let Some(region) = rest.strip_suffix(".amazonaws.com.cn") {
        is_region(region) && region.starts_with("cn-")
    } else {
        false
    }
}

/// A region name: two lowercase letters, one or more `-letters` parts, then
/// `-digits` (1-2): `us-east-1`, `us-gov-west-1`, `cn-north-1`, `ap-southeast-4`.
/// This cannot match `s3-us-east-1`, `s3`, `xn--...` or anything with a dot.
fn is_region(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    let [first, middle @ .., last] = parts.as_slice() else {
        return false;
    };
    let letters = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase());
    first.len() == 2
        && letters(first)
        && !middle.is_empty()
        && middle.iter().all(|p| letters(p))
        && (1..=2).contains(&last.len())
        && last.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
#[cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]
mod tests {
    use super::*;

    const PEM: &str = "SimpleNotificationService-9c6465fa7f48f5cacd23014631ec1136.pem";

    #[test]
    fn accepts_real_sns_certificate_urls() {
        let policy = TrustPolicy::amazon();
        for raw in [
            format!("https://sns.us-east-1.amazonaws.com/{PEM}"),
            format!("https://sns.eu-central-2.amazonaws.com/{PEM}"),
            format!("https://sns.ap-southeast-4.amazonaws.com/{PEM}"),
            format!("https://sns.us-gov-west-1.amazonaws.com/{PEM}"),
            format!("https://sns.cn-north-1.amazonaws.com.cn/{PEM}"),
            format!("https://sns.cn-northwest-1.amazonaws.com.cn/{PEM}"),
            format!("https://sns.il-central-1.amazonaws.com/{PEM}"),
        ] {
            let url = policy
                .check_cert_url(&raw)
                .unwrap_or_else(|e| panic!("{raw}: {e}"));
            // What is returned is exactly what will be fetched.
            assert_eq!(url.as_str(), raw);
        }
    }

    #[test]
    fn rejects_every_known_certificate_url_bypass() {
        let policy = TrustPolicy::amazon();
        let cases = [
            // scheme
            format!("http://sns.us-east-1.amazonaws.com/{PEM}"),
            format!("HTTPS://sns.us-east-1.amazonaws.com/{PEM}"),
            format!("ftp://sns.us-east-1.amazonaws.com/{PEM}"),
            format!("//sns.us-east-1.amazonaws.com/{PEM}"),
            // suffix tricks (django-ses CVE-2023-33185) and S3 buckets
            format!("https://evil.s3.amazonaws.com/{PEM}"),
            format!("https://sns.us-east-1.amazonaws.com.evil.com/{PEM}"),
            format!("https://evilsns.us-east-1.amazonaws.com/{PEM}"),
            format!("https://x.sns.us-east-1.amazonaws.com/{PEM}"),
            format!("https://sns.s3-us-east-1.amazonaws.com/{PEM}"),
            format!("https://sns.s3.us-east-1.amazonaws.com/{PEM}"),
            format!("https://sns.s3.amazonaws.com/{PEM}"),
            format!("https://sns.amazonaws.com/{PEM}"),
            format!("https://sns..amazonaws.com/{PEM}"),
            format!("https://sns.us-east-1..amazonaws.com/{PEM}"),
            format!("https://sns.us-east-1.amazonaws.com./{PEM}"),
            format!("https://sns.us-east-1.amazonaws.co/{PEM}"),
            format!("https://sns.us-east-1.amazonaws.com.cn/{PEM}"),
            format!("https://sns.cn-north-1.amazonaws.com/{PEM}"),
            format!("https://sns.us-east.amazonaws.com/{PEM}"),
            format!("https://sns.useast-1.amazonaws.com/{PEM}"),
            format!("https://sns.us-east-123.amazonaws.com/{PEM}"),
            format!("https://sns.u-east-1.amazonaws.com/{PEM}"),
            format!("https://sns.us-east-1a.amazonaws.com/{PEM}"),
            format!("https://sns.us--east-1.amazonaws.com/{PEM}"),
            format!("https://sns.xn--us-east-1-.amazonaws.com/{PEM}"),
            format!("https://sns.us_east-1.amazonaws.com/{PEM}"),
            format!("https://sns-us-east-1.amazonaws.com/{PEM}"),
            format!("https://sqs.us-east-1.amazonaws.com/{PEM}"),
            // .pem must be the path, not the query or fragment
            "https://sns.us-east-1.amazonaws.com/?x=.pem".to_owned(),
            "https://sns.us-east-1.amazonaws.com/cert?x=.pem".to_owned(),
            format!("https://sns.us-east-1.amazonaws.com/{PEM}?x=1"),
            format!("https://sns.us-east-1.amazonaws.com/{PEM}?"),
            "https://sns.us-east-1.amazonaws.com/cert#.pem".to_owned(),
            format!("https://sns.us-east-1.amazonaws.com/{PEM}#frag"),
            format!("https://sns.us-east-1.amazonaws.com/{PEM}#"),
            "https://sns.us-east-1.amazonaws.com/cert.txt".to_owned(),
            "https://sns.us-east-1.amazonaws.com/.pem".to_owned(),
            "https://sns.us-east-1.amazonaws.com/".to_owned(),
            "https://sns.us-east-1.amazonaws.com".to_owned(),
            format!("https://sns.us-east-1.amazonaws.com/{PEM}/"),
            // whitespace and control characters ($ before a trailing newline)
            format!("https://sns.us-east-1.amazonaws.com/{PEM}\n"),
            format!("https://sns.us-east-1.amazonaws.com/{PEM}\r\n"),
            format!(" https://sns.us-east-1.amazonaws.com/{PEM}"),
            format!("https://sns.us-east-1.amazonaws.com/{PEM} "),
            format!("https://sns.us-east-1.amazonaws.com/\t{PEM}"),
            format!("https://sns.us-east-1.amazonaws.com\n.evil.com/{PEM}"),
            format!("https://sns.us-east-1.amazonaws.com/{PEM}\0"),
            // userinfo
            format!("https://evil.com@sns.us-east-1.amazonaws.com/{PEM}"),
            format!("https://user:pw@sns.us-east-1.amazonaws.com/{PEM}"),
            format!("https://sns.us-east-1.amazonaws.com@evil.com/{PEM}"),
            format!("https://@sns.us-east-1.amazonaws.com/{PEM}"),
            // explicit ports, even the default one
            format!("https://sns.us-east-1.amazonaws.com:443/{PEM}"),
            format!("https://sns.us-east-1.amazonaws.com:8443/{PEM}"),
            format!("https://sns.us-east-1.amazonaws.com:/{PEM}"),
            // case tricks
            format!("https://SNS.US-EAST-1.AMAZONAWS.COM/{PEM}"),
            format!(
                "https://sns.us-east-1.amazonaws.com/{}",
                PEM.replace(".pem", ".PEM")
            ),
            // IDN / punycode / percent-encoded hosts
            format!("https://sns.us-east-1.amazonaws.com\u{3002}evil.com/{PEM}"),
            format!("https://sns.us-east-1.\u{0430}mazonaws.com/{PEM}"),
            format!("https://sns.us-east-1.xn--mazonaws-2fg.com/{PEM}"),
            format!("https://sns.us%2Deast-1.amazonaws.com/{PEM}"),
            format!("https://\u{ff53}ns.us-east-1.amazonaws.com/{PEM}"),
            // IP literals
            format!("https://127.0.0.1/{PEM}"),
            format!("https://[::1]/{PEM}"),
            format!("https://2130706433/{PEM}"),
            format!("https://0x7f.1/{PEM}"),
            // backslashes, dot segments, double slashes, odd path characters
            format!("https://sns.us-east-1.amazonaws.com\\@evil.com/{PEM}"),
            format!("https://evil.com\\@sns.us-east-1.amazonaws.com/{PEM}"),
            format!("https://sns.us-east-1.amazonaws.com\\{PEM}"),
            format!("https://sns.us-east-1.amazonaws.com/a/../{PEM}"),
            format!("https://sns.us-east-1.amazonaws.com/a/%2e%2e/{PEM}"),
            format!("https://sns.us-east-1.amazonaws.com/../{PEM}"),
            format!("https://sns.us-east-1.amazonaws.com/./{PEM}"),
            format!("https://sns.us-east-1.amazonaws.com//{PEM}"),
            "https://sns.us-east-1.amazonaws.com/..%2F..%2Fetc%2Fpasswd.pem".to_owned(),
            "https://sns.us-east-1.amazonaws.com/a%20b.pem".to_owned(),
            "https://sns.us-east-1.amazonaws.com/...pem".to_owned(),
            // not a URL at all
            String::new(),
            PEM.to_owned(),
            "https:/sns.us-east-1.amazonaws.com/x.pem".to_owned(),
            "https:sns.us-east-1.amazonaws.com/x.pem".to_owned(),
            "javascript:alert(1)//.pem".to_owned(),
            format!("file:///etc/{PEM}"),
        ];
        for raw in &cases {
            match policy.check_cert_url(raw) {
                Err(VerifyError::UntrustedCertUrl(_)) => {}
                other => panic!("{raw:?} should be rejected, got {other:?}"),
            }
        }
    }

    #[test]
    fn dev_endpoints_are_trusted_only_under_their_base() {
        let policy = TrustPolicy::amazon()
            .with_dev_endpoints(vec![Url::parse("http://localhost:4566").unwrap()]);
        assert!(policy.allows_http());
        let ok = format!("http://localhost:4566/_aws/sns/{PEM}");
        assert_eq!(policy.check_cert_url(&ok).unwrap().as_str(), ok);
        // Amazon stays trusted.
        policy
            .check_cert_url(&format!("https://sns.us-east-1.amazonaws.com/{PEM}"))
            .unwrap();
        for raw in [
            format!("http://localhost:4567/{PEM}"),
            format!("https://localhost:4566/{PEM}"),
            format!("http://localhost/{PEM}"),
            format!("http://127.0.0.1:4566/{PEM}"),
            format!("http://localhost.evil.com:4566/{PEM}"),
            format!("http://user@localhost:4566/{PEM}"),
            format!("http://localhost:4566/{PEM}?x=1"),
            format!("http://localhost:4566/{PEM}#x"),
            "http://localhost:4566/cert.txt".to_owned(),
            format!("http://sns.us-east-1.amazonaws.com/{PEM}"),
        ] {
            assert!(
                matches!(
                    policy.check_cert_url(&raw),
                    Err(VerifyError::UntrustedCertUrl(_))
                ),
                "{raw}"
            );
        }

        let scoped = TrustPolicy::amazon()
            .with_dev_endpoints(vec![Url::parse("https://dev.example.test/sns").unwrap()]);
        assert!(!scoped.allows_http());
        scoped
            .check_cert_url(&format!("https://dev.example.test/sns/{PEM}"))
            .unwrap();
        for raw in [
            format!("https://dev.example.test/{PEM}"),
            format!("https://dev.example.test/snsx/{PEM}"),
            format!("https://dev.example.test/sns/../{PEM}"),
            format!("https://dev.example.test:443/sns/{PEM}"),
        ] {
            assert!(scoped.check_cert_url(&raw).is_err(), "{raw}");
        }
    }

    #[test]
    fn unusable_dev_endpoints_are_ignored() {
        let policy = TrustPolicy::amazon().with_dev_endpoints(vec![
            Url::parse("http://user:pw@localhost:4566").unwrap(),
            Url::parse("http://localhost:4566/?q=1").unwrap(),
            Url::parse("file:///tmp").unwrap(),
        ]);
        assert!(!policy.allows_http());
        assert!(
            policy
                .check_cert_url(&format!("http://localhost:4566/{PEM}"))
                .is_err()
        );
    }

    const ARN: &str = "arn:aws:sns:us-west-2:123456789012:MyTopic";
    const TOKEN: &str = "2336412f37fb687f5d51e6e241d09c805a5a57b30d712f794cc5f6a988666d92";

    fn sub_url(host: &str, query: &str) -> String {
        format!("https://{host}/?{query}")
    }

    fn good_query() -> String {
        format!("Action=ConfirmSubscription&TopicArn={ARN}&Token={TOKEN}")
    }

    #[test]
    fn accepts_real_subscribe_urls() {
        let policy = TrustPolicy::amazon();
        for host in [
            "sns.us-west-2.amazonaws.com",
            "sns.us-gov-east-1.amazonaws.com",
            "sns.cn-north-1.amazonaws.com.cn",
        ] {
            let raw = sub_url(host, &good_query());
            assert_eq!(
                policy
                    .check_subscribe_url(&raw, ARN, TOKEN)
                    .unwrap()
                    .as_str(),
                raw
            );
        }
        // Parameter order does not matter; percent-encoded values are compared decoded.
        let raw = sub_url(
            "sns.us-west-2.amazonaws.com",
            &format!(
                "Token={TOKEN}&TopicArn=arn%3Aaws%3Asns%3Aus-west-2%3A123456789012%3AMyTopic&Action=ConfirmSubscription"
            ),
        );
        policy.check_subscribe_url(&raw, ARN, TOKEN).unwrap();
    }

    #[test]
    fn rejects_subscribe_url_bypasses() {
        let policy = TrustPolicy::amazon();
        let q = good_query();
        let cases = [
            format!("http://sns.us-west-2.amazonaws.com/?{q}"),
            format!("https://sns.us-west-2.amazonaws.com:443/?{q}"),
            format!("https://evil.com@sns.us-west-2.amazonaws.com/?{q}"),
            format!("https://sns.us-west-2.amazonaws.com.evil.com/?{q}"),
            format!("https://sns.s3-us-west-2.amazonaws.com/?{q}"),
            format!("https://evil.s3.amazonaws.com/?{q}"),
            format!("https://127.0.0.1/?{q}"),
            format!("https://169.254.169.254/?{q}"),
            format!("https://sns.us-west-2.amazonaws.com/?{q}#x"),
            format!("https://sns.us-west-2.amazonaws.com/?{q}\n"),
            format!("https://sns.us-west-2.amazonaws.com/other?{q}"),
            format!("https://sns.us-west-2.amazonaws.com\\?{q}"),
            format!("https://SNS.us-west-2.amazonaws.com/?{q}"),
            // query content
            "https://sns.us-west-2.amazonaws.com/".to_owned(),
            format!(
                "https://sns.us-west-2.amazonaws.com/?Action=Unsubscribe&TopicArn={ARN}&Token={TOKEN}"
            ),
            format!(
                "https://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription&TopicArn={ARN}:Other&Token={TOKEN}"
            ),
            format!(
                "https://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription&TopicArn={ARN}&Token=ffff"
            ),
            format!(
                "https://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription&TopicArn={ARN}"
            ),
            format!(
                "https://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription&Token={TOKEN}"
            ),
            format!("https://sns.us-west-2.amazonaws.com/?{q}&Action=ConfirmSubscription"),
            format!("https://sns.us-west-2.amazonaws.com/?{q}&Token=other"),
            format!("https://sns.us-west-2.amazonaws.com/?{q}&Endpoint=https://evil.com"),
            format!(
                "https://sns.us-west-2.amazonaws.com/?action=ConfirmSubscription&TopicArn={ARN}&Token={TOKEN}"
            ),
        ];
        for raw in &cases {
            match policy.check_subscribe_url(raw, ARN, TOKEN) {
                Err(UntrustedSubscribeUrl(_)) => {}
                other => panic!("{raw:?} should be rejected, got {other:?}"),
            }
        }
    }

    #[test]
    fn subscribe_urls_on_dev_endpoints() {
        let policy = TrustPolicy::amazon()
            .with_dev_endpoints(vec![Url::parse("http://localhost:4566").unwrap()]);
        let raw = format!("http://localhost:4566/?{}", good_query());
        policy.check_subscribe_url(&raw, ARN, TOKEN).unwrap();
        let wrong_port = format!("http://localhost:4567/?{}", good_query());
        assert!(policy.check_subscribe_url(&wrong_port, ARN, TOKEN).is_err());
        let wrong_token =
            format!("http://localhost:4566/?Action=ConfirmSubscription&TopicArn={ARN}&Token=x");
        assert!(
            policy
                .check_subscribe_url(&wrong_token, ARN, TOKEN)
                .is_err()
        );
    }

    #[test]
    fn region_grammar() {
        for ok in [
            "us-east-1",
            "us-gov-west-1",
            "cn-north-1",
            "eu-central-2",
            "ap-southeast-4",
            "ca-west-10",
        ] {
            assert!(is_region(ok), "{ok}");
        }
        for bad in [
            "",
            "us",
            "us-east",
            "us-1",
            "s3-us-east-1",
            "us-east-1-",
            "-us-east-1",
            "US-east-1",
            "us-east-1a",
            "use-east-1",
            "us-east-001",
            "us.east-1",
            "us--east-1",
        ] {
            assert!(!is_region(bad), "{bad}");
        }
    }
}
