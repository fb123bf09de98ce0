//! Tracing setup: human-readable lines by default, JSON with `log.format = "json"`, at the level
//! `log.level` or `RUST_LOG` gives. A filter that is not one (`warning`, `verbose`, an empty
//! `RUST_LOG`) stops start-up instead of silently turning every log line off.

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
        .with_writer(std::io::stderr);
    let _already_set = match settings.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

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
