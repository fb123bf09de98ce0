//! The `ses-webhook` subcommands.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use domain::Reprocess;
use domain::ports::ReprocessProgress;
use domain::reprocess::ReprocessLine;
use sns_verify::{CertificateStore, TrustPolicy, Verifier};
use url::Url;

use crate::settings::Settings;
use crate::startup::Application;
use crate::telemetry;

/// The configuration directory: `given` (by `--config-dir` or `SES_WEBHOOK_CONFIG_DIR`), which
/// must exist, else `config` (which may be missing: then built-in defaults and the
/// environment are the settings).
///
/// # Errors
/// When `given` is not a directory.
pub fn config_dir(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    match given {
        Some(dir) if dir.is_dir() => Ok(dir),
        Some(dir) => anyhow::bail!(
            "the configuration directory {} (--config-dir or SES_WEBHOOK_CONFIG_DIR) does not \
             exist",
            crate::settings::shown(&dir)
        ),
        None => Ok(PathBuf::from("config")),
    }
}

/// `ses-webhook serve`: runs the server until SIGINT/SIGTERM.
///
/// # Errors
/// When settings are invalid or the server cannot start.
pub async fn serve(config_dir: &Path, options: crate::ServeOptions) -> anyhow::Result<()> {
    let settings = Settings::load(config_dir)?;
    telemetry::init(&settings.log)?;
    let app = Application::build_with(&settings, options).await?;
    app.run_until_stopped().await?;
    Ok(())
}

/// Options of `ses-webhook sqs drain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrainOptions {
    pub queue_url: String,
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
    pub raw: bool,
    pub wait_secs: i32,
}

/// `ses-webhook sqs drain`: processes a queue until a receive brings nothing new, then prints a
/// summary. The queue's `[[sqs]]` table, when it has one, gives the settings the flags do not.
/// `Ok(false)` when messages were left in the queue (refused, or to be retried).
///
/// # Errors
/// When the store cannot be reached or is not migrated, the queue settings are invalid, or a
/// `ReceiveMessage` fails.
pub async fn drain(
    settings: &Settings,
    options: DrainOptions,
    out: &mut dyn Write,
) -> anyhow::Result<bool> {
    let configured = settings
        .queue_settings()?
        .into_iter()
        .find(|q| q.queue_url == options.queue_url.trim());
    let table = crate::settings::SqsSettings {
        queue_url: options.queue_url.clone(),
        region: options
            .region
            .or_else(|| configured.as_ref().and_then(|q| q.region.clone())),
        endpoint_url: options
            .endpoint_url
            .or_else(|| configured.as_ref().and_then(|q| q.endpoint_url.clone())),
        max_messages: 10,
        wait_secs: i64::from(options.wait_secs),
        visibility_timeout_secs: configured
            .as_ref()
            .and_then(|q| q.visibility_timeout_secs)
            .map(i64::from),
        concurrency: 1,
        raw: options.raw || configured.as_ref().is_some_and(|q| q.raw),
    };
    let queue_settings = table.resolved(0).map_err(|error| {
        let mut message = error.to_string();
        for (key, flag) in [
            ("`sqs[0].queue_url`", "--queue-url"),
            ("`sqs[0].region`", "--region"),
            ("`sqs[0].endpoint_url`", "--endpoint-url"),
            ("`sqs[0].wait_secs`", "--wait-secs"),
            ("`sqs[0].", "`"),
        ] {
            message = message.replace(key, flag);
        }
        anyhow::anyhow!(message)
    })?;
    let store = Arc::new(connect_migrated(settings, 4).await?);
    let metrics = Arc::new(crate::metrics::Metrics::new());
    let ingest = crate::startup::build_ingest(settings, &store, &metrics)?;
    let queue = adapters_sqs::Queue::connect(queue_settings).await?;
    if queue.settings().raw {
        writeln!(
            out,
            "raw: bare SES records from {} are stored unverified",
            queue.name()
        )?;
    }
    let drained = adapters_sqs::drain(
        &queue,
        ingest,
        Arc::new(adapters_sqs::NoObserver),
        options.wait_secs,
    )
    .await;
    let summary = match &drained {
        Ok(summary) => summary,
        Err(stopped) => &stopped.summary,
    };
    writeln!(out, "{}: {}", queue.name(), drain_summary(summary))?;
    match drained {
        Ok(summary) => Ok(summary.left() == 0 && summary.delete_failures == 0),
        Err(stopped) => Err(anyhow::Error::new(stopped.error)
            .context("the drain stopped early (what the summary counts is stored and deleted)")),
    }
}

/// A drain's summary in one line: received, stored, duplicates, refused and left for a retry
/// (with their codes), not deleted.
fn drain_summary(summary: &adapters_sqs::DrainSummary) -> String {
    let counted = |list: &[(&str, usize)], what: &str| {
        let total: usize = list.iter().map(|(_, n)| n).sum();
        if list.is_empty() {
            format!("{total} {what}")
        } else {
            let codes: Vec<String> = list
                .iter()
                .map(|(code, n)| format!("{code}: {n}"))
                .collect();
            format!("{total} {what} ({})", codes.join(", "))
        }
    };
    format!(
        "{} received, {} stored ({} new events), {} duplicates, {}, {}, {} not deleted",
        summary.received,
        summary.stored,
        summary.events,
        summary.duplicates,
        counted(&summary.refused, "refused"),
        counted(&summary.left_for_retry, "left for a retry"),
        summary.delete_failures,
    )
}

/// `ses-webhook migrate`: applies pending database migrations and exits.
///
/// # Errors
/// When settings are invalid or a migration fails.
pub async fn migrate(config_dir: &Path) -> anyhow::Result<()> {
    let settings = Settings::load(config_dir)?;
    telemetry::init(&settings.log)?;
    let store = crate::startup::connect_store(&settings, 1).await?;
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
    /// The options for `verify`: these flags, completed from the settings in `config_dir`. The
    /// flags are applied before the settings are checked, so a setting they override (an
    /// `sns.cert_dir` missing on this machine, say) cannot stop `verify`. Development endpoints
    /// taken from the settings are announced on standard error, as the server warns of them.
    ///
    /// # Errors
    /// When the settings, with the flags applied, are invalid.
    pub fn with_settings_from(self, config_dir: &Path) -> anyhow::Result<Self> {
        let mut env: std::collections::HashMap<String, String> = std::env::vars().collect();
        if let Some(dir) = &self.cert_dir {
            env.insert(
                "SES_WEBHOOK__SNS__CERT_DIR".into(),
                dir.to_string_lossy().into_owned(),
            );
        }
        // Offline without a directory is left to `verify` to refuse in the flags' words.
        if self.offline && self.cert_dir.is_some() {
            env.insert(
                "SES_WEBHOOK__SNS__FETCH_CERTIFICATES".into(),
                "false".into(),
            );
        }
        if !self.dev_endpoints.is_empty() {
            let urls: Vec<&str> = self.dev_endpoints.iter().map(Url::as_str).collect();
            env.insert("SES_WEBHOOK__SNS__DEV_ENDPOINTS".into(), urls.join(","));
        }
        let settings = Settings::load_from(config_dir, Some(env))?;
        let flagged_endpoints = !self.dev_endpoints.is_empty();
        let options = self.or_settings(&settings)?;
        if !flagged_endpoints && !options.dev_endpoints.is_empty() {
            eprintln!(
                "ses-webhook: warning: trusting sns.dev_endpoints from the settings as if they \
                 were Amazon SNS: {}",
                settings.sns.dev_endpoints.join(", ")
            );
        }
        Ok(options)
    }

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
            "--offline needs --cert-dir (or sns.cert_dir in the settings): without the network, \
             certificates come only from there"
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
/// the current verifier and parser again, printing to `out` one line per message as it is
/// handled, then a summary.
///
/// # Errors
/// When the store cannot be reached, `--sns-message-id` names no archived notification, or
/// `out` cannot be written.
pub async fn reprocess(
    settings: &Settings,
    options: &ReprocessOptions,
    out: Box<dyn Write + Send>,
) -> anyhow::Result<domain::ReprocessReport> {
    let store = connect_migrated(settings, 2).await?;
    let store = Arc::new(store);
    let verifier = Verifier::new(
        crate::startup::trust_policy(settings)?,
        crate::startup::certificate_source(settings, Arc::new(sns_verify::NoObserver)),
    );
    let service = domain::ReprocessService::new(
        Arc::new(crate::sns::SnsVerifier::new(verifier)),
        store,
        Arc::new(domain::ports::SystemClock),
    )
    .with_events_retention(settings.retention.events_days);
    run_reprocess(&service, options, out).await
}

/// Connects the store (a pool of at most `max_size`, applying the settings' suppression
/// policy) and checks that its schema is up to date.
///
/// # Errors
/// When the store cannot be reached or migrations are pending (the message says to run
/// `ses-webhook migrate`).
pub async fn connect_migrated(
    settings: &Settings,
    max_size: u32,
) -> anyhow::Result<adapters_store::Store> {
    let store = crate::startup::connect_store(settings, max_size).await?;
    let pending = store
        .pending_migrations()
        .await
        .with_context(|| format!("reading the schema of {}", store.database()))?;
    if !pending.is_empty() {
        anyhow::bail!(
            "the schema of {} is not up to date ({} migration(s) pending): run `ses-webhook \
             migrate` (or start the server once) first",
            store.database(),
            pending.len()
        );
    }
    Ok(store)
}

/// Prints each reprocessed message as it is handled; remembers the first write error.
struct Printer {
    out: Mutex<Box<dyn Write + Send>>,
    failed: Mutex<Option<std::io::Error>>,
}

impl Printer {
    fn print(&self, text: std::fmt::Arguments<'_>) {
        let mut out = self
            .out
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Err(error) = out.write_fmt(text).and_then(|()| out.flush()) {
            self.failed
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get_or_insert(error);
        }
    }
}

impl ReprocessProgress for Printer {
    fn handled(&self, line: &ReprocessLine) {
        match (&line.after, &line.problem) {
            (Some(after), _) => self.print(format_args!(
                "{}: {} -> {}: {} stored, {} duplicates, {} errors\n",
                line.sns_message_id,
                line.before.as_str(),
                after.as_str(),
                line.processed,
                line.duplicates,
                line.errors
            )),
            (None, problem) => self.print(format_args!(
                "{}: skipped: {}\n",
                line.sns_message_id,
                problem.as_deref().unwrap_or("not processed")
            )),
        }
    }
}

/// Runs `service` (the inbound port of the reprocess use case) with `options`, printing to
/// `out` each message as it is handled, then a summary and the messages to try again later.
///
/// # Errors
/// When the run fails or `out` cannot be written.
pub async fn run_reprocess(
    service: &dyn Reprocess,
    options: &ReprocessOptions,
    out: Box<dyn Write + Send>,
) -> anyhow::Result<domain::ReprocessReport> {
    let filter = domain::ports::ReprocessFilter {
        since: options.since,
        sns_message_id: options.sns_message_id.clone(),
    };
    let printer = Arc::new(Printer {
        out: Mutex::new(out),
        failed: Mutex::new(None),
    });
    let report = service.run(&filter, printer.clone()).await?;
    printer.print(format_args!(
        "reprocess: {} message(s) examined, {} event(s) newly stored, {} skipped\n",
        report.examined(),
        report.events_stored(),
        report.skipped()
    ));
    let later: Vec<&str> = report
        .retry_later()
        .map(|line| line.sns_message_id.as_str())
        .collect();
    if !later.is_empty() {
        printer.print(format_args!(
            "reprocess: {} message(s) skipped because their signing certificate was \
             unavailable; run reprocess again when it can be fetched, or pin it in \
             sns.cert_dir: {}\n",
            later.len(),
            later.join(", ")
        ));
    }
    let failed = printer
        .failed
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    match failed {
        Some(error) => Err(anyhow::Error::from(error).context("writing the reprocess report")),
        None => Ok(report),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use domain::ports::{MessageOutcome, MockReprocess};

    use super::*;

    /// A `Write` whose bytes the test can read afterwards.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn reprocess_prints_each_line_as_handled_a_summary_and_what_to_retry() {
        let since = chrono::DateTime::parse_from_rfc3339("2026-11-01T00:00:00Z")
            .unwrap()
            .to_utc();
        let out = Shared::default();
        let seen_while_running = Shared::default();
        let (watch, during) = (out.clone(), seen_while_running.clone());
        let mut service = MockReprocess::new();
        service
            .expect_run()
            .withf(move |filter, _| {
                filter.since == Some(since) && filter.sns_message_id.as_deref() == Some("m-1")
            })
            .times(1)
            .returning(move |_, progress| {
                let lines = vec![
                    ReprocessLine {
                        sns_message_id: "m-1".into(),
                        before: MessageOutcome::Failed,
                        after: Some(MessageOutcome::Processed),
                        processed: 2,
                        duplicates: 1,
                        errors: 0,
                        problem: None,
                        retry_later: false,
                    },
                    ReprocessLine {
                        sns_message_id: "m-2".into(),
                        before: MessageOutcome::NotSes,
                        after: None,
                        processed: 0,
                        duplicates: 0,
                        errors: 0,
                        problem: Some("signing certificate unavailable: offline".into()),
                        retry_later: true,
                    },
                ];
                for line in &lines {
                    progress.handled(line);
                }
                // Printed already, before the run returns.
                let printed = watch.0.lock().unwrap().clone();
                during.0.lock().unwrap().extend_from_slice(&printed);
                Ok(domain::ReprocessReport { lines })
            });
        let options = ReprocessOptions {
            since: Some(since),
            sns_message_id: Some("m-1".into()),
        };

        let report = run_reprocess(&service, &options, Box::new(out.clone()))
            .await
            .unwrap();

        assert_eq!(report.skipped(), 1);
        let printed = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = printed.lines().collect();
        assert_eq!(
            lines[..3],
            [
                "m-1: failed -> processed: 2 stored, 1 duplicates, 0 errors",
                "m-2: skipped: signing certificate unavailable: offline",
                "reprocess: 2 message(s) examined, 2 event(s) newly stored, 1 skipped",
            ]
        );
        assert!(
            lines[3].contains("signing certificate was unavailable"),
            "{printed}"
        );
        assert!(lines[3].ends_with(": m-2"), "{printed}");
        let during = String::from_utf8(seen_while_running.0.lock().unwrap().clone()).unwrap();
        assert_eq!(
            during.lines().count(),
            2,
            "lines are printed as they are handled"
        );
    }

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
}
