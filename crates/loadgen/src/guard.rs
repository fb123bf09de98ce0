//! The loopback-only guard: load is only ever sent to this machine, and the database checked is
//! only ever a local one.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use url::{Host, Url};

/// Why a target was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardError {
    /// Not a URL at all.
    #[error("not a URL: {0}")]
    NotAUrl(String),
    /// A scheme we do not speak.
    #[error("unsupported scheme `{0}`")]
    Scheme(String),
    /// A host that is not the loopback interface.
    #[error("refusing host `{0}`: only 127.0.0.0/8, [::1] and localhost are allowed")]
    NotLoopback(String),
    /// Connection parameters that could send libpq elsewhere.
    #[error("refusing the `{0}` parameter: the host must be in the URL itself")]
    HostParameter(String),
}

/// Whether `ip` is on the loopback interface (IPv4-mapped IPv6 included).
#[must_use]
pub fn is_loopback_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// Whether `host` is this machine's loopback interface.
#[must_use]
pub fn is_loopback_host(host: &Host<&str>) -> bool {
    match host {
        // Non-special schemes (`postgres://`) leave IP addresses unparsed.
        Host::Domain(name) => {
            name.eq_ignore_ascii_case("localhost")
                || name
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<IpAddr>()
                    .is_ok_and(is_loopback_ip)
        }
        Host::Ipv4(ip) => is_loopback_ip(IpAddr::V4(*ip)),
        Host::Ipv6(ip) => is_loopback_ip(IpAddr::V6(*ip)),
    }
}

/// A checked load target: an `http(s)` URL on the loopback interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The URL to post to.
    pub url: Url,
    /// Where `localhost` must resolve to (pinned, so no resolver can send load elsewhere).
    pub localhost_pin: Option<SocketAddr>,
}

/// The host of `url`, when its scheme is one of `schemes` and the host is the loopback
/// interface.
fn loopback_host<'u>(url: &'u Url, schemes: &[&str]) -> Result<Host<&'u str>, GuardError> {
    if !schemes.contains(&url.scheme()) {
        return Err(GuardError::Scheme(url.scheme().to_owned()));
    }
    let host = url
        .host()
        .ok_or_else(|| GuardError::NotLoopback(String::new()))?;
    if !is_loopback_host(&host) {
        return Err(GuardError::NotLoopback(host.to_string()));
    }
    Ok(host)
}

/// Checks that `raw` is an `http`/`https` URL whose host is the loopback interface.
///
/// # Errors
/// [`GuardError`] naming why the target was refused.
pub fn loopback_target(raw: &str) -> Result<Target, GuardError> {
    let url = Url::parse(raw).map_err(|e| GuardError::NotAUrl(format!("{raw}: {e}")))?;
    let host = loopback_host(&url, &["http", "https"])?;
    let localhost_pin = match host {
        Host::Domain(_) => Some(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            url.port_or_known_default().unwrap_or(80),
        )),
        Host::Ipv4(_) | Host::Ipv6(_) => None,
    };
    Ok(Target { url, localhost_pin })
}

/// Checks that `raw` is a `postgres://` URL naming a loopback host explicitly (an empty host
/// would let libpq pick one from the environment) and no `host`/`hostaddr` parameter.
///
/// # Errors
/// [`GuardError`] naming why the database was refused.
pub fn loopback_database(raw: &str) -> Result<Url, GuardError> {
    // Never echo a password back.
    let url = Url::parse(raw).map_err(|e| GuardError::NotAUrl(e.to_string()))?;
    loopback_host(&url, &["postgres", "postgresql"])?;
    if let Some((name, _)) = url
        .query_pairs()
        .find(|(k, _)| k.eq_ignore_ascii_case("host") || k.eq_ignore_ascii_case("hostaddr"))
    {
        return Err(GuardError::HostParameter(name.into_owned()));
    }
    Ok(url)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn loopback_targets_are_accepted() {
        for raw in [
            "http://127.0.0.1:8080/api/rpc/webhooks/aws/ses",
            "http://127.1.2.3/",
            "https://localhost:9443/x",
            "http://LOCALHOST:1/",
            "http://[::1]:8080/",
            "http://[::ffff:127.0.0.1]:8080/",
        ] {
            assert!(loopback_target(raw).is_ok(), "{raw} refused");
        }
    }

    #[test]
    fn localhost_is_pinned_to_127_0_0_1() {
        let target = loopback_target("http://localhost:8123/x").unwrap();
        assert_eq!(
            target.localhost_pin,
            Some("127.0.0.1:8123".parse().unwrap())
        );
        assert_eq!(
            loopback_target("http://127.0.0.1:8123/x")
                .unwrap()
                .localhost_pin,
            None
        );
    }

    #[test]
    fn other_hosts_are_refused() {
        for raw in [
            "http://10.0.0.1:8080/",
            "http://192.168.1.10/",
            "http://172.16.0.1/",
            "http://8.8.8.8/",
            "http://example.com/",
            "http://localhost.example.com/",
            "http://127.0.0.1.nip.io/",
            "http://[::2]/",
            "http://0.0.0.0:8080/",
            "http://[::ffff:10.0.0.1]/",
        ] {
            assert!(
                matches!(loopback_target(raw), Err(GuardError::NotLoopback(_))),
                "{raw} accepted"
            );
        }
    }

    #[test]
    fn other_schemes_and_garbage_are_refused() {
        assert!(matches!(
            loopback_target("ftp://127.0.0.1/"),
            Err(GuardError::Scheme(_))
        ));
        assert!(matches!(
            loopback_target("not a url"),
            Err(GuardError::NotAUrl(_))
        ));
    }

    #[test]
    fn only_local_databases_are_checked() {
        assert!(loopback_database("postgres://postgres@127.0.0.1:5432/perf").is_ok());
        assert!(loopback_database("postgresql://u:p@localhost/perf").is_ok());
        assert!(loopback_database("postgres://postgres@[::1]:5432/perf").is_ok());
        for raw in [
            "postgres://postgres@10.1.2.3:5432/perf",
            "postgres://postgres@db.example.com/perf",
            "postgres:///perf",
            "postgres://postgres@127.0.0.1.example.com/perf",
            "postgres://postgres@[::2]/perf",
        ] {
            assert!(
                matches!(loopback_database(raw), Err(GuardError::NotLoopback(_))),
                "{raw} accepted"
            );
        }
        assert!(matches!(
            loopback_database("postgres://127.0.0.1/perf?host=10.0.0.1"),
            Err(GuardError::HostParameter(_))
        ));
        assert!(matches!(
            loopback_database("mysql://127.0.0.1/perf"),
            Err(GuardError::Scheme(_))
        ));
    }
}
