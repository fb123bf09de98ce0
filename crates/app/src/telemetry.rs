//! Tracing setup: human-readable lines by default, JSON with `log.format = "json"`, at the level
//! `log.level` or `RUST_LOG` gives. A filter that is not one (`warning`, `verbose`, an empty
//! `RUST_LOG`) stops start-up instead of silently turning every log line off.

use std::io::IsTerminal;
use std::net::IpAddr;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::{Error, HttpMessage, web};
use tracing::Span;
use tracing_actix_web::{RequestId, RootSpanBuilder};
use tracing_subscriber::EnvFilter;

use crate::settings::{LogFormat, LogSettings};

/// The environment variable that overrides `log.level`.
pub const RUST_LOG: &str = "RUST_LOG";

/// The level names a filter may use, alone or after `target=`.
const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];

/// Checks a log filter: comma-separated directives, each a level (`info`) or `target=level`
/// (`adapters_store=debug`, `ses_webhook[span{field=value}]=trace`), levels being `trace`,
/// `debug`, `info`, `warn`, `error` or `off` in any case. A bare word that is not a level is
/// refused: tracing would read `warning` as a target, enable nothing else, and every log line
/// (security warnings included) would silently disappear.
///
/// # Errors
/// A sentence naming the offending directive and what is accepted.
pub fn check_filter(filter: &str) -> Result<(), String> {
    if filter.trim().is_empty() {
        return Err(format!(
            "is empty; use one of {} or target=level directives",
            LEVELS.join(", ")
        ));
    }
    for directive in filter.split(',').map(str::trim) {
        let level = match directive.rsplit_once('=') {
            Some((target, level)) if !target.trim().is_empty() => level,
            Some(_) => directive,
            None => directive,
        };
        if !LEVELS.iter().any(|l| l.eq_ignore_ascii_case(level.trim())) {
            return Err(format!(
                "`{directive}` is not a log level or a target=level directive; use one of {} \
                 (for example `info` or `info,adapters_store=debug`)",
                LEVELS.join(", ")
            ));
        }
    }
    EnvFilter::try_new(filter)
        .map(drop)
        .map_err(|error| format!("`{filter}` is not a valid filter: {error}"))
}

/// The filter to log with: `RUST_LOG` when it is set (`rust_log`), else `level`.
///
/// # Errors
/// A message naming `RUST_LOG` or `log.level`, whichever is invalid.
pub fn filter(rust_log: Option<&str>, level: &str) -> Result<EnvFilter, String> {
    let (value, name) = match rust_log {
        Some(value) => (value, RUST_LOG),
        None => (level, "log.level"),
    };
    check_filter(value).map_err(|reason| format!("invalid {name}: {reason}"))?;
    EnvFilter::try_new(value).map_err(|error| format!("invalid {name}: {error}"))
}

/// Installs the global subscriber, writing to stderr. `RUST_LOG` overrides `log.level`.
/// Calling it twice is harmless.
///
/// # Errors
/// When `RUST_LOG` (if set) or `log.level` is not a valid filter, naming which; nothing is
/// installed then.
pub fn init(settings: &LogSettings) -> anyhow::Result<()> {
    let rust_log = std::env::var(RUST_LOG).ok();
    let filter = filter(rust_log.as_deref(), &settings.level).map_err(anyhow::Error::msg)?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours for a person at a terminal, never as escape codes in a file or a journal.
        .with_ansi(std::io::stderr().is_terminal());
    let _already_set = match settings.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    Ok(())
}

/// An IP address range in CIDR notation (`10.0.0.0/16`, `fd00::/8`); a bare address is the
/// range of that one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRange {
    network: IpAddr,
    prefix: u8,
}

impl IpRange {
    /// Parses `10.0.0.5`, `10.0.0.0/16` or `::1/128`; `None` for anything else.
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix.parse::<u8>().ok()?)),
            None => (text, None),
        };
        let network: IpAddr = address.parse().ok()?;
        let bits = if network.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(bits);
        (prefix <= bits).then_some(Self { network, prefix })
    }

    /// Whether `address` is in the range (IPv4 and IPv6 ranges never contain each other's
    /// addresses; an IPv4-mapped IPv6 address counts as its IPv4 address).
    #[must_use]
    pub fn contains(&self, address: IpAddr) -> bool {
        let address = match address {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
            v4 @ IpAddr::V4(_) => v4,
        };
        match (self.network, address) {
            (IpAddr::V4(network), IpAddr::V4(address)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(network) & mask == u32::from(address) & mask
            }
            (IpAddr::V6(network), IpAddr::V6(address)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(network) & mask == u128::from(address) & mask
            }
            _ => false,
        }
    }
}

/// The proxies whose `X-Forwarded-For` is logged (`server.trusted_proxies`), as app data.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(pub Vec<IpRange>);

/// The path as logged: under `/api/v1` the route pattern instead (paths there carry email
/// addresses, which are personal data and stay out of the logs), else the path itself.
fn logged_target(path: &str, route: &str) -> String {
    if path.starts_with(adapters_http::API_PREFIX) {
        if route.is_empty() {
            format!("{}/…", adapters_http::API_PREFIX)
        } else {
            route.to_owned()
        }
    } else {
        path.to_owned()
    }
}

/// The root span of every HTTP request, for `tracing_actix_web::TracingLogger`: method, path,
/// route, request id, the peer's address as the connection gives it (`client.address`), and
/// `X-Forwarded-For` as sent (`forwarded_for`) only when the peer is one of the
/// [`TrustedProxies`]; anyone can send that header, so from anyone else it is never logged. At
/// the end it records the status, and nothing else: the handler logs the outcome, once.
#[derive(Debug, Clone, Copy)]
pub struct RequestSpan;

impl RootSpanBuilder for RequestSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let request_id = request
            .extensions()
            .get::<RequestId>()
            .map(ToString::to_string)
            .unwrap_or_default();
        let peer = request.peer_addr().map(|address| address.ip());
        let route = request.match_pattern().unwrap_or_default();
        let span = tracing::info_span!(
            "HTTP request",
            http.method = %request.method(),
            http.target = %logged_target(request.path(), &route),
            http.route = route,
            client.address = peer.map(|ip| ip.to_string()).unwrap_or_default(),
            forwarded_for = tracing::field::Empty,
            request_id = %request_id,
            http.status_code = tracing::field::Empty,
        );
        let trusted = request
            .app_data::<web::Data<TrustedProxies>>()
            .is_some_and(|proxies| {
                peer.is_some_and(|ip| proxies.0.iter().any(|range| range.contains(ip)))
            });
        if trusted
            && let Some(forwarded) = request
                .headers()
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
        {
            span.record("forwarded_for", forwarded);
        }
        span
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        let status = match outcome {
            Ok(response) => response.status(),
            Err(error) => error.as_response_error().status_code(),
        };
        span.record("http.status_code", status.as_u16());
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn api_paths_are_logged_as_their_route_never_with_the_address() {
        assert_eq!(
            logged_target(
                "/api/v1/suppressions/a%40example.com",
                "/api/v1/suppressions/{address}"
            ),
            "/api/v1/suppressions/{address}"
        );
        assert_eq!(logged_target("/api/v1/x@example.com/nope", ""), "/api/v1/…");
        assert_eq!(
            logged_target("/api/rpc/webhooks/aws/ses", ""),
            "/api/rpc/webhooks/aws/ses"
        );
    }

    #[test]
    fn ip_ranges_contain_what_their_prefix_says() {
        let range = |text| IpRange::parse(text).unwrap();
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();

        assert!(range("10.0.0.0/16").contains(ip("10.0.255.7")));
        assert!(!range("10.0.0.0/16").contains(ip("10.1.0.1")));
        assert!(range("10.0.0.5").contains(ip("10.0.0.5")));
        assert!(!range("10.0.0.5").contains(ip("10.0.0.6")));
        assert!(range("0.0.0.0/0").contains(ip("203.0.113.9")));
        assert!(range("fd00::/8").contains(ip("fd12::1")));
        assert!(!range("fd00::/8").contains(ip("fe80::1")));
        assert!(range("127.0.0.1").contains(ip("::ffff:127.0.0.1")));
        assert!(!range("::/0").contains(ip("10.0.0.1")));
        for bad in ["10.0.0.0/33", "fd00::/129", "10.0.0", "x/8", "10.0.0.0/"] {
            assert_eq!(IpRange::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn levels_and_directives_are_accepted() {
        for good in [
            "info",
            "WARN",
            "off",
            "info,adapters_store=debug",
            "ses_webhook=trace",
            "app[ses_webhook{sns_message_id=x}]=debug",
        ] {
            assert_eq!(check_filter(good), Ok(()), "{good}");
        }
    }

    #[test]
    fn words_that_are_not_levels_are_refused() {
        for bad in [
            "warning",
            "verbose",
            "inf",
            "",
            " ",
            "info,verbose",
            "app=loud",
            "=info",
        ] {
            let error = check_filter(bad).unwrap_err();
            assert!(
                error.contains("trace, debug, info, warn, error, off"),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn the_error_names_rust_log_when_it_is_set_and_log_level_otherwise() {
        let from_env = filter(Some(""), "info").unwrap_err();
        let from_settings = filter(None, "warning").unwrap_err();

        assert!(from_env.starts_with("invalid RUST_LOG:"), "{from_env}");
        assert!(
            from_settings.starts_with("invalid log.level:"),
            "{from_settings}"
        );
        assert!(filter(Some("debug"), "warning").is_ok(), "RUST_LOG wins");
    }
}
