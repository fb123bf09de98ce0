//! The `ses-webhook` subcommands.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use domain::Reprocess;
use sns_verify::{CertificateStore, TrustPolicy, Verifier};
use url::Url;

use crate::settings::Settings;
use crate::startup::Application;
use crate::telemetry;

/// `ses-webhook serve`: runs the server until SIGINT/SIGTERM.
///
/// # Errors
/// When settings are invalid or the server cannot start.
pub async fn serve(config_dir: &Path) -> anyhow::Result<()> {
    let settings = Settings::load(config_dir)?;
    telemetry::init(&settings.log)?;
    let app = Application::build(&settings).await?;
    app.run_until_stopped().await?;
    Ok(())
}

/// `ses-webhook migrate`: applies pending database migrations and exits.
///
/// # Errors
/// When settings are invalid or a migration fails.
pub async fn migrate(config_dir: &Path) -> anyhow::Result<()> {
    let settings = Settings::load(config_dir)?;
    telemetry::init(&settings.log)?;
    let store = crate::startup::connect_store(&settings, 1)?;
    let applied = store
        .run_migrations()
        .await
        .with_context(|| format!("applying database migrations to {}", store.database()))?;
    println!(
        "{applied} migration(s) applied; the schema of {} is up to date",
        store.database()
    );
    Ok(())
}

/// Options of `ses-webhook verify`.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    pub cert_dir: Option<PathBuf>,
    pub offline: bool,
    pub dev_endpoints: Vec<Url>,
}

impl VerifyOptions {
    /// These options, completed from `settings` where no flag was given (flags win):
    /// `--cert-dir`, else `sns.cert_dir`; the `--dev-endpoint`s, else `sns.dev_endpoints`;
    /// offline with `--offline`, or when `sns.fetch_certificates` is false.
    ///
    /// # Errors
    /// When `sns.dev_endpoints` holds something that is not a URL (already refused when the
    /// settings load).
    pub fn or_settings(mut self, settings: &Settings) -> anyhow::Result<Self> {
        if self.cert_dir.is_none() {
            self.cert_dir.clone_from(&settings.sns.cert_dir);
        }
        if self.dev_endpoints.is_empty() {
            self.dev_endpoints = settings.dev_endpoint_urls()?;
        }
        self.offline |= !settings.sns.fetch_certificates;
        Ok(self)
    }
}

/// `ses-webhook verify`: verifies saved SNS messages, printing one line per file to `out`.
/// Returns `true` only when every file verified.
///
/// # Errors
/// When the options are contradictory or `out` cannot be written.
pub async fn verify(
    files: &[PathBuf],
    options: &VerifyOptions,
    out: &mut dyn Write,
) -> anyhow::Result<bool> {
    if options.offline && options.cert_dir.is_none() {
        anyhow::bail!(
            "--offline needs --cert-dir: without the network, certificates come only from there"
        );
    }
    let source = CertificateStore::builder()
        .pinned_dir(options.cert_dir.clone())
        .fetch(!options.offline)
        .cache_capacity(64)
        .build();
    let verifier = Verifier::new(
        TrustPolicy::amazon().with_dev_endpoints(options.dev_endpoints.clone()),
        source,
    );
    let mut all_ok = true;
    for file in files {
        let line = match std::fs::read(file) {
            Err(error) => {
                all_ok = false;
                format!("FAIL: cannot read: {error}")
            }
            Ok(body) => match verifier.verify(&body).await {
                Ok(verified) => format!(
                    "ok ({}, v{})",
                    verified.envelope.message_type.as_str(),
                    verified.version.number()
                ),
                Err(error) => {
                    all_ok = false;
                    format!("FAIL: {error}")
                }
            },
        };
        writeln!(out, "{}: {line}", file.display())?;
    }
    Ok(all_ok)
}

/// Options of `ses-webhook reprocess`.
#[derive(Debug, Clone, Default)]
pub struct ReprocessOptions {
    /// Only messages received at or after this time.
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// Only this SNS message, whatever its outcome.
    pub sns_message_id: Option<String>,
}

/// `ses-webhook reprocess`: runs archived messages that failed or produced no events through
/// the current verifier and parser again, printing one line per message and a summary to `out`.
///
/// # Errors
/// When the store cannot be reached, a certificate is unavailable, or `out` cannot be written.
pub async fn reprocess(
    settings: &Settings,
    options: &ReprocessOptions,
    out: &mut dyn Write,
) -> anyhow::Result<domain::ReprocessReport> {
    let store = Arc::new(crate::startup::connect_store(settings, 2)?);
    let verifier = Verifier::new(
        crate::startup::trust_policy(settings)?,
        crate::startup::certificate_source(settings, Arc::new(sns_verify::NoObserver)),
    );
    let service = domain::ReprocessService::new(
        Arc::new(crate::sns::SnsVerifier::new(verifier)),
        store,
        Arc::new(domain::ports::SystemClock),
    );
    run_reprocess(&service, options, out).await
}

/// Runs `service` (the inbound port of the reprocess use case) with `options` and prints its
/// report to `out`: one line per message, then a summary.
///
/// # Errors
/// When the run fails or `out` cannot be written.
pub async fn run_reprocess(
    service: &dyn Reprocess,
    options: &ReprocessOptions,
    out: &mut dyn Write,
) -> anyhow::Result<domain::ReprocessReport> {
    let filter = domain::ports::ReprocessFilter {
        since: options.since,
        sns_message_id: options.sns_message_id.clone(),
    };
    let report = service.run(&filter).await?;
    for line in &report.lines {
        match (&line.after, &line.problem) {
            (Some(after), _) => writeln!(
                out,
                "{}: {} -> {}: {} stored, {} duplicates, {} errors",
                line.sns_message_id,
                line.before.as_str(),
                after.as_str(),
                line.processed,
                line.duplicates,
                line.errors
            )?,
            (None, problem) => writeln!(
                out,
                "{}: skipped: {}",
                line.sns_message_id,
                problem.as_deref().unwrap_or("not processed")
            )?,
        }
    }
    writeln!(
        out,
        "reprocess: {} message(s) examined, {} event(s) newly stored, {} skipped",
        report.examined(),
        report.events_stored(),
        report.skipped()
    )?;
    Ok(report)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use domain::ports::{MessageOutcome, MockReprocess};

    #[test]
    fn verify_takes_what_the_flags_do_not_say_from_the_settings() {
        let mut settings = Settings::default();
        settings.sns.cert_dir = Some(PathBuf::from("/etc/ses-webhook/certs"));
        settings.sns.dev_endpoints = vec!["http://localhost:4566".into()];
        settings.sns.fetch_certificates = false;

        let from_settings = VerifyOptions::default().or_settings(&settings).unwrap();
        let flags = VerifyOptions {
            cert_dir: Some(PathBuf::from("pinned")),
            offline: false,
            dev_endpoints: vec![Url::parse("http://127.0.0.1:9911").unwrap()],
        }
        .or_settings(&Settings::default())
        .unwrap();

        assert_eq!(
            from_settings.cert_dir.as_deref(),
            Some(std::path::Path::new("/etc/ses-webhook/certs"))
        );
        assert_eq!(
            from_settings.dev_endpoints[0].as_str(),
            "http://localhost:4566/"
        );
        assert!(from_settings.offline);
        assert_eq!(
            flags.cert_dir.as_deref(),
            Some(std::path::Path::new("pinned"))
        );
        assert_eq!(flags.dev_endpoints[0].as_str(), "http://127.0.0.1:9911/");
        assert!(!flags.offline);
    }
    use domain::reprocess::ReprocessLine;

    use super::*;

    #[tokio::test]
    async fn reprocess_passes_the_filter_and_prints_a_line_per_message_and_a_summary() {
        let since = chrono::DateTime::parse_from_rfc3339("2026-11-01T00:00:00Z")
            .unwrap()
            .to_utc();
        let mut service = MockReprocess::new();
        service
            .expect_run()
            .withf(move |filter| {
                filter.since == Some(since) && filter.sns_message_id.as_deref() == Some("m-1")
            })
            .times(1)
            .returning(|_| {
                Ok(domain::ReprocessReport {
                    lines: vec![
                        ReprocessLine {
                            sns_message_id: "m-1".into(),
                            before: MessageOutcome::Failed,
                            after: Some(MessageOutcome::Processed),
                            processed: 2,
                            duplicates: 1,
                            errors: 0,
                            problem: None,
                        },
                        ReprocessLine {
                            sns_message_id: "m-2".into(),
                            before: MessageOutcome::NotSes,
                            after: None,
                            processed: 0,
                            duplicates: 0,
                            errors: 0,
                            problem: Some("does not verify: bad_signature".into()),
                        },
                    ],
                })
            });
        let options = ReprocessOptions {
            since: Some(since),
            sns_message_id: Some("m-1".into()),
        };
        let mut out = Vec::new();

        let report = run_reprocess(&service, &options, &mut out).await.unwrap();

        assert_eq!(report.skipped(), 1);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "m-1: failed -> processed: 2 stored, 1 duplicates, 0 errors\n\
             m-2: skipped: does not verify: bad_signature\n\
             reprocess: 2 message(s) examined, 2 event(s) newly stored, 1 skipped\n"
        );
    }
}
