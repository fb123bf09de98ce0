//! The `ses-webhook` subcommands.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use adapters_store::{PgStore, PoolOptions};
use anyhow::Context;
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
    let store = PgStore::connect(
        &settings.database.url,
        PoolOptions {
            max_size: 1,
            connection_timeout: Duration::from_secs(settings.database.connect_timeout_secs),
            ..PoolOptions::default()
        },
    )?;
    let applied = store
        .run_migrations()
        .await
        .context("applying database migrations")?;
    println!("{applied} migration(s) applied; the schema is up to date");
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
