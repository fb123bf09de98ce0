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
    telemetry::init(&settings.log);
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
    telemetry::init(&settings.log);
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
    let service: Arc<dyn Reprocess> = Arc::new(domain::ReprocessService::new(
        Arc::new(crate::sns::SnsVerifier::new(verifier)),
        store,
        Arc::new(domain::ports::SystemClock),
    ));
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
