//! Building and running the server from [`Settings`].

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpResponse, HttpServer, web};
use adapters_http::{ApiPorts, HttpSettings, StatusPorts};
use adapters_store::{Backend, Database, Store};
use anyhow::Context;
use domain::delivery::{Deliveries, DeliveryService, OutboxStore};
use domain::history::HistoryService;
use domain::ports::{HistoryStore, MessageArchive, NoObserver, SuppressionObserver, SystemClock};
use domain::reputation::{CountStore, ReputationQueries, ReputationService};
use domain::status::{StatusQueries, StatusService};
use domain::suppression::SuppressionService;
use domain::token::TokenService;
use domain::{Ingest, IngestPolicy, IngestService};
use sns_verify::{CertificateSource, SourceObserver, TrustPolicy, Verifier};
use tracing_actix_web::TracingLogger;

use crate::telemetry::{RequestSpan, TrustedProxies};

use crate::delivery::{DeliveryTasks, build_sink};
use crate::metrics::{
    CertificateMetrics, ErasureMetrics, MeasuredStore, Metrics, SuppressionMetrics, observe_api,
    observe_webhook,
};
use crate::settings::{Settings, SinkKind, shown};
use crate::sns::{HttpConfirmer, SnsVerifier};
use crate::sqs::SqsIntake;

/// A bound, ready-to-run server (and its separate metrics listener, when configured).
pub struct Application {
    port: u16,
    metrics_port: Option<u16>,
    server: Server,
    metrics_server: Option<Server>,
    retention: Option<tokio::task::JoinHandle<()>>,
    /// The refresh of the reputation and silence gauges.
    gauges: tokio::task::JoinHandle<()>,
    /// The fold of the reputation counts' deltas (PostgreSQL).
    fold: Option<tokio::task::JoinHandle<()>>,
    /// The relays of event delivery, the outbox gauges and purge.
    delivery: DeliveryTasks,
    /// The pollers of the `[[sqs]]` queues.
    sqs: SqsIntake,
    shutdown_timeout: Duration,
    /// Waits for SIGTERM/SIGINT (installed when the server was built) and stops the server.
    stopping: tokio::task::JoinHandle<Stop>,
    /// Set when a signal started the stop.
    signalled: Arc<std::sync::atomic::AtomicBool>,
    /// Held while the server runs, on SQLite: no second server may use the same file.
    _sqlite_lock: Option<std::fs::File>,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

/// The trust policy the settings ask for: Amazon SNS hosts, plus `sns.dev_endpoints`.
///
/// # Errors
/// When a dev endpoint is not a URL (already rejected when settings load).
pub fn trust_policy(settings: &Settings) -> anyhow::Result<TrustPolicy> {
    let dev = settings.dev_endpoint_urls()?;
    if !dev.is_empty() {
        tracing::warn!(
            dev_endpoints = ?settings.sns.dev_endpoints,
            "sns.dev_endpoints is set: certificates and subscribe URLs from these hosts are trusted \
             as if they were Amazon SNS. Never set this in production."
        );
    }
    Ok(TrustPolicy::amazon().with_dev_endpoints(dev))
}

/// The certificate source the settings ask for: pinned directory, then (unless disabled) HTTPS,
/// behind an in-memory cache, reporting cache hits, misses and downloads to `observer`.
#[must_use]
pub fn certificate_source(
    settings: &Settings,
    observer: Arc<dyn SourceObserver>,
) -> Arc<dyn CertificateSource> {
    sns_verify::CertificateStore::builder()
        .pinned_dir(settings.sns.cert_dir.clone())
        .fetch(settings.sns.fetch_certificates)
        .cache_capacity(settings.sns.cert_cache_capacity)
        .observer(observer)
        .build()
}

/// On SQLite, an exclusive lock on `<file>.lock` for as long as the returned file is kept:
/// SQLite lets two servers open one file, and they would then take turns for every write and
/// fight over the write-ahead log; the second is refused instead.
///
/// # Errors
/// When another process holds the lock, or the lock file cannot be created.
fn lock_sqlite_file(database: &Database) -> anyhow::Result<Option<std::fs::File>> {
    let Database::Sqlite { path } = database else {
        return Ok(None);
    };
    // The same file by whatever path (relative, through a symbolic link): the lock sits beside
    // the file in its directory's canonical path.
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.clone());
    let (Some(dir), Some(name)) = (absolute.parent(), absolute.file_name()) else {
        anyhow::bail!("{} names no SQLite file", absolute.display());
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let dir = dir
        .canonicalize()
        .with_context(|| format!("resolving {}", dir.display()))?;
    let file = match std::fs::canonicalize(dir.join(name)) {
        Ok(target) => target,
        Err(_) => dir.join(name),
    };
    let lock_path = file.with_added_extension("lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("creating the lock file {}", lock_path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "another ses-webhook is already using the SQLite file {} (it holds {}): stop it \
             first; to run several instances, use PostgreSQL",
            lock_path.with_extension("").display(),
            lock_path.display()
        ),
        Err(std::fs::TryLockError::Error(error)) => {
            Err(error).with_context(|| format!("locking {}", lock_path.display()))
        }
    }
}

/// Where signing certificates come from, in words for the start-up log.
fn certificate_source_words(settings: &Settings) -> String {
    let pinned = settings.sns.cert_dir.as_deref().map(shown);
    match (pinned, settings.sns.fetch_certificates) {
        (Some(dir), true) => format!(
            "pinned in {dir}, else downloaded from Amazon SNS (cached, {} at most)",
            settings.sns.cert_cache_capacity
        ),
        (Some(dir), false) => format!("pinned in {dir} only (sns.fetch_certificates is off)"),
        (None, _) => format!(
            "downloaded from Amazon SNS (cached, {} at most)",
            settings.sns.cert_cache_capacity
        ),
    }
}

async fn render_metrics(metrics: web::Data<Metrics>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(metrics.render())
}

fn bind(address: &str) -> anyhow::Result<(TcpListener, u16)> {
    let listener = TcpListener::bind(address).with_context(|| format!("binding {address}"))?;
    let port = listener.local_addr()?.port();
    Ok((listener, port))
}

/// Connects the store `database.url` names, with a pool of at most `max_size` connections
/// (the settings' `database.max_connections` for the server, fewer for commands).
///
/// A database that refuses for good (see `Store::check_not_refused`) is an error here, so
/// that every command stops at once on it.
///
/// # Errors
/// When the URL is invalid, the pool options are inconsistent, the SQLite file's directory
/// cannot be created, a writer thread cannot be started (see `Store::connect`), or the
/// database refuses the connection for good.
pub async fn connect_store(settings: &Settings, max_size: u32) -> anyhow::Result<Store> {
    connect_observed_store(settings, max_size, Arc::new(NoObserver)).await
}

/// [`connect_store`], applying the `suppression` settings' policy to what the store stores and
/// telling `observer` of the entries it writes.
///
/// # Errors
/// As [`connect_store`].
pub async fn connect_observed_store(
    settings: &Settings,
    max_size: u32,
    observer: Arc<dyn SuppressionObserver>,
) -> anyhow::Result<Store> {
    let store = Store::connect_with_policy(
        &settings.database.url,
        settings.pool_options(max_size),
        settings.suppression.policy(),
        observer,
    )
    .context("setting up the database pool")?;
    store.check_not_refused().await?;
    Ok(store)
}

/// One retention job: what it removes, after how many days, and the store call that removes
/// up to a batch of it older than a cutoff.
struct RetentionJob {
    /// The metric's `kind` and the log's name: `raw_bodies`, `events`, `messages`,
    /// `counted_records`.
    kind: &'static str,
    days: u32,
    purge: fn(Arc<Store>, chrono::DateTime<chrono::Utc>, usize) -> PurgeFuture,
}

/// What a retention job's purge returns: rows removed, or why not.
type PurgeFuture = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<usize, domain::ports::StoreError>> + Send>,
>;

/// The retention jobs the settings turn on (none by default).
fn retention_jobs(settings: &Settings) -> Vec<RetentionJob> {
    let retention = &settings.retention;
    let jobs = [
        RetentionJob {
            kind: "raw_bodies",
            days: retention.raw_messages_days,
            purge: |store, cutoff, batch| {
                Box::pin(async move { store.purge_raw_bodies(cutoff, batch).await })
            },
        },
        RetentionJob {
            kind: "events",
            days: retention.events_days,
            purge: |store, cutoff, batch| {
                Box::pin(async move { store.purge_events(cutoff, batch).await })
            },
        },
        RetentionJob {
            kind: "messages",
            days: retention.messages_days,
            purge: |store, cutoff, batch| {
                Box::pin(async move { store.purge_messages(cutoff, batch).await })
            },
        },
        RetentionJob {
            kind: "counted_records",
            days: counted_records_days(retention),
            purge: |store, cutoff, batch| {
                Box::pin(async move { store.purge_counted_records(cutoff, batch).await })
            },
        },
    ];
    jobs.into_iter().filter(|job| job.days > 0).collect()
}

/// How long the keys of counted `Send`, `Reject` and `DeliveryDelay` records are kept: as long
/// as `reprocess` could read their archived bodies again (which would count them twice once the
/// key is gone), so [`COUNTED_RECORDS_MARGIN_DAYS`] more than the shorter of the raw-body and
/// message retentions, and forever (0) when both keep forever.
fn counted_records_days(retention: &crate::settings::RetentionSettings) -> u32 {
    [retention.raw_messages_days, retention.messages_days]
        .into_iter()
        .filter(|days| *days > 0)
        .min()
        .map_or(0, |days| days.saturating_add(COUNTED_RECORDS_MARGIN_DAYS))
}

/// How much longer than the archive's bodies the keys of counted records live: a record can
/// reach the archive after its own time (an SNS delivery retried for hours, a late import).
const COUNTED_RECORDS_MARGIN_DAYS: u32 = 3;

/// Reads the reputation over the default window and each topic's last notification every
/// `every`, into the gauges (from the database, so that every server of one database reports
/// the same).
fn spawn_gauges(
    reputation: Arc<dyn ReputationQueries>,
    status: Arc<dyn StatusQueries>,
    metrics: Arc<Metrics>,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(every);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            match reputation.reputation(None, None).await {
                Ok(r) => metrics.set_reputation(&r),
                Err(error) => tracing::warn!(%error, "reading the reputation gauges failed"),
            }
            match status.topic_activity().await {
                Ok(topics) => metrics.set_topic_activity(&topics),
                Err(error) => {
                    tracing::warn!(%error, "reading the topics' last notifications failed")
                }
            }
        }
    })
}

/// Runs the retention jobs every `retention.purge_interval_secs`, each in batches of
/// `retention.purge_batch_size` rows (one short transaction each) until nothing older than its
/// cutoff is left; runs until aborted.
fn spawn_retention(
    store: Arc<Store>,
    settings: &Settings,
    metrics: Arc<Metrics>,
) -> Option<tokio::task::JoinHandle<()>> {
    let jobs = retention_jobs(settings);
    if jobs.is_empty() {
        return None;
    }
    let retention = settings.retention.clone();
    Some(tokio::spawn(async move {
        let mut interval =
            tokio::time::interval(Duration::from_secs(retention.purge_interval_secs));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            for job in &jobs {
                let cutoff = chrono::Utc::now() - chrono::Duration::days(i64::from(job.days));
                let mut purged = 0;
                loop {
                    match (job.purge)(Arc::clone(&store), cutoff, retention.purge_batch_size).await
                    {
                        Ok(n) => {
                            purged += n;
                            metrics.retention_deleted(job.kind, n);
                            if n < retention.purge_batch_size {
                                break;
                            }
                        }
                        Err(error) => {
                            tracing::warn!(%error, kind = job.kind, "retention purge failed; retrying at the next interval");
                            break;
                        }
                    }
                }
                if purged > 0 {
                    tracing::info!(
                        purged,
                        kind = job.kind,
                        cutoff = %cutoff.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                        "retention purge done"
                    );
                }
            }
        }
    }))
}

/// How often the counts' deltas are folded into `email_counts` (see [`spawn_fold`]).
const FOLD_INTERVAL: Duration = Duration::from_secs(1);

/// How many deltas one fold statement moves at most: a backlog (after folds failed for a
/// while) drains in short statements, each well within `statement_timeout`.
const FOLD_BATCH: usize = 10_000;

/// Every [`FOLD_INTERVAL`], folds the reputation counts' deltas (what PostgreSQL's batch
/// statement appends) into `email_counts` (`Store::fold_count_deltas`, in statements of up to
/// [`FOLD_BATCH`] until none is left), so that the readers, who sum both, find few deltas. A
/// failure is logged when it starts and when it ends (a database that is down fails every
/// second); nothing is lost meanwhile, the deltas wait.
/// `None` on SQLite, whose writer adds to `email_counts` directly.
fn spawn_fold(store: Arc<Store>) -> Option<tokio::task::JoinHandle<()>> {
    if store.backend() != Backend::Postgres {
        return None;
    }
    Some(tokio::spawn(async move {
        let mut interval = tokio::time::interval(FOLD_INTERVAL);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            interval.tick().await;
            let mut folded = store.fold_count_deltas(FOLD_BATCH).await;
            while matches!(folded, Ok(n) if n == FOLD_BATCH) {
                folded = store.fold_count_deltas(FOLD_BATCH).await;
            }
            match folded {
                Ok(_) if failing => {
                    failing = false;
                    tracing::info!("folding the reputation counts' deltas works again");
                }
                Ok(_) => {}
                Err(error) if !failing => {
                    failing = true;
                    tracing::warn!(%error, "folding the reputation counts' deltas failed; retrying every second (readers still see them)");
                }
                Err(_) => {}
            }
        }
    }))
}

/// Registers the configured sinks in the store (so that every transaction writes their
/// entries), builds their adapters and starts their relays; the deliveries port for the API.
async fn start_delivery(
    store: &Arc<Store>,
    settings: &Settings,
    metrics: &Arc<Metrics>,
) -> anyhow::Result<(DeliveryTasks, Arc<dyn Deliveries>)> {
    let configs = settings.sink_configs()?;
    let outbox: Arc<dyn OutboxStore> = Arc::clone(store) as _;
    let filters: Vec<_> = configs.iter().map(|c| c.filter.clone()).collect();
    // A database that is down does not stop the server (it answers 503 until the database
    // is back): the sinks are registered as soon as it can be reached.
    let registering = match register_sinks(&outbox, filters.clone()).await {
        Ok(()) => None,
        Err(error) => {
            tracing::warn!(%error, "registering the sinks in the database failed; retrying every 5 s");
            let outbox = Arc::clone(&outbox);
            Some(tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    if register_sinks(&outbox, filters.clone()).await.is_ok() {
                        tracing::info!("sinks registered in the database");
                        return;
                    }
                }
            }))
        }
    };
    let mut sinks = Vec::new();
    for config in configs {
        let client = build_sink(&config).await?;
        let (kind, target) = match &config.kind {
            SinkKind::Webhook(w) => (
                "webhook",
                format!(
                    "{}://{}",
                    w.url.scheme(),
                    w.url.host_str().unwrap_or_default()
                ),
            ),
            SinkKind::Nats(n) => ("nats", format!("stream {}", n.stream)),
        };
        tracing::info!(
            sink = config.name(),
            kind,
            target = %target,
            event_types = %config
                .filter
                .entry_types
                .as_ref()
                .map_or_else(|| "all".to_owned(), |t| t.join(",")),
            attempts = config.schedule.attempts(),
            "delivering to sink"
        );
        sinks.push((config, client));
    }
    let names: Vec<String> = sinks.iter().map(|(c, _)| c.name().to_owned()).collect();
    let deliveries: Arc<dyn Deliveries> = Arc::new(DeliveryService::new(
        Arc::clone(&outbox),
        names,
        Arc::new(SystemClock),
    ));
    let mut tasks = DeliveryTasks::start(
        outbox,
        sinks,
        &settings.outbox,
        Arc::clone(metrics),
        Duration::from_secs(settings.retention.purge_interval_secs),
        settings.retention.purge_batch_size,
    );
    if let Some(task) = registering {
        tasks.add_background(task);
    }
    Ok((tasks, deliveries))
}

/// The ingest use case the settings ask for (verifier, certificate source, topic allow-list,
/// confirmations), storing through `store` and measured into `metrics`: the webhook's and the
/// SQS pollers'.
///
/// # Errors
/// When a dev endpoint is not a URL, or the HTTP client for confirmations cannot be built.
pub fn build_ingest(
    settings: &Settings,
    store: &Arc<Store>,
    metrics: &Arc<Metrics>,
) -> anyhow::Result<Arc<dyn Ingest>> {
    let policy = trust_policy(settings)?;
    let verifier = Verifier::new(
        policy.clone(),
        certificate_source(settings, Arc::new(CertificateMetrics(Arc::clone(metrics)))),
    );
    let client = sns_verify::confirm::try_http_client()
        .context("building the HTTP client for subscription confirmations")?;
    let confirmer = HttpConfirmer::new(policy, client);
    if settings.sns.allowed_topic_arns.is_empty() {
        tracing::warn!(
            "sns.allowed_topic_arns is empty: messages from ANY SNS topic are accepted, \
             including topics in other AWS accounts. Set it to your SES topics."
        );
    }
    Ok(Arc::new(IngestService::new(
        Arc::new(SnsVerifier::new(verifier)),
        Arc::new(MeasuredStore::new(Arc::clone(store), Arc::clone(metrics))),
        Arc::new(confirmer),
        Arc::new(SystemClock),
        IngestPolicy {
            allowed_topic_arns: settings.sns.allowed_topic_arns.clone(),
            auto_confirm: settings.sns.auto_confirm,
            max_message_age: settings.max_message_age(),
        },
    )))
}

/// How `serve` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeOptions {
    /// Serve the webhook, the API and the status page. `false` (`serve --no-http`): the
    /// listener serves `/healthz`, `/readyz` and `/metrics` only, and SNS deliveries come from
    /// the `[[sqs]]` queues alone.
    pub http: bool,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self { http: true }
    }
}

/// Makes `sinks` the ones every transaction writes outbox entries for.
async fn register_sinks(
    outbox: &Arc<dyn OutboxStore>,
    sinks: Vec<domain::delivery::SinkFilter>,
) -> Result<(), domain::ports::StoreError> {
    let synced = outbox.sync_sinks(sinks).await?;
    if !synced.removed.is_empty() {
        tracing::warn!(
            removed = %synced.removed.join(", "),
            "sinks no longer configured: nothing is written or delivered for them any more; \
             their entries stay in the outbox until the delivered ones are purged"
        );
    }
    Ok(())
}

impl Application {
    /// Connects the store, applies migrations when asked to, wires the ports and binds the
    /// listener (port 0 picks a free port).
    ///
    /// # Errors
    /// When the listener cannot be bound, the signal handlers cannot be installed, the store
    /// cannot be set up or migrations fail.
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        Self::build_with(settings, ServeOptions::default()).await
    }

    /// [`build`](Self::build), as `options` ask (`serve --no-http`: health, readiness and
    /// metrics only on the listener, deliveries from the queues).
    ///
    /// # Errors
    /// As [`build`](Self::build); with `options.http` off, also when no `[[sqs]]` queue is
    /// configured (the process would take nothing in).
    pub async fn build_with(settings: &Settings, options: ServeOptions) -> anyhow::Result<Self> {
        if !options.http && settings.sqs.is_empty() {
            anyhow::bail!(
                "--no-http takes SNS deliveries from [[sqs]] queues only, and none is configured"
            );
        }
        let files: Vec<String> = settings.files_read.iter().map(|f| shown(f)).collect();
        tracing::info!(
            files = %if files.is_empty() { "none".to_owned() } else { files.join(", ") },
            "configuration read (then SES_WEBHOOK__* environment variables)"
        );
        tracing::info!(source = %certificate_source_words(settings), "signing certificates");
        // Before connecting: a second server must not even open the file.
        let sqlite_lock = lock_sqlite_file(&Database::parse(&settings.database.url)?)?;
        let metrics = Arc::new(Metrics::new());
        let store = connect_observed_store(
            settings,
            settings.database.max_connections,
            Arc::new(SuppressionMetrics(Arc::clone(&metrics))),
        )
        .await?;
        tracing::info!(
            database = %store.database(),
            backend = store.backend().as_str(),
            max_connections = store.max_connections(),
            "event store"
        );
        if store.backend() == Backend::Sqlite {
            tracing::warn!(
                "storing events in an SQLite file: fine for one instance; for production, and for \
                 several instances behind a load balancer, set database.url to PostgreSQL"
            );
        }
        if settings.database.migrate_on_start {
            store
                .run_migrations()
                .await
                .context("applying database migrations")?;
        }
        let store = Arc::new(store);
        let (delivery, deliveries) = start_delivery(&store, settings, &metrics).await?;
        let retention = spawn_retention(Arc::clone(&store), settings, Arc::clone(&metrics));
        let window_days = settings.suppression.soft_bounce_window_days;
        if settings.retention.events_days > 0 && settings.retention.events_days <= window_days {
            tracing::warn!(
                events_days = settings.retention.events_days,
                soft_bounce_window_days = window_days,
                "retention.events_days is not longer than suppression.soft_bounce_window_days: \
                 soft bounces are deleted before the policy can count them all"
            );
        }
        let ingest = build_ingest(settings, &store, &metrics)?;
        let sqs = SqsIntake::start(settings.queue_settings()?, &ingest, &metrics).await?;
        let queue_states = (!sqs.is_empty()).then(|| sqs.states(!options.http));
        let reputation: Arc<dyn ReputationQueries> = Arc::new(ReputationService::new(
            Arc::clone(&store) as _,
            Arc::new(SystemClock),
            settings.reputation.policy(),
        ));
        let status: Arc<dyn StatusQueries> = Arc::new(StatusService::new(
            Arc::clone(&reputation),
            Arc::clone(&store) as _,
            Arc::new(SystemClock),
        ));
        let fold = spawn_fold(Arc::clone(&store));
        let gauges = spawn_gauges(
            Arc::clone(&reputation),
            Arc::clone(&status),
            Arc::clone(&metrics),
            Duration::from_secs(settings.reputation.refresh_secs),
        );
        let auth: Arc<dyn domain::Authenticate> = Arc::new(TokenService::new(
            Arc::clone(&store) as _,
            Arc::new(SystemClock),
        ));
        let status_ports = StatusPorts {
            auth: Arc::clone(&auth),
            status,
        };
        let api = ApiPorts {
            auth,
            reputation,
            deliveries,
            suppressions: Arc::new(SuppressionService::new(
                Arc::clone(&store) as _,
                Arc::new(SystemClock),
                Arc::new(SuppressionMetrics(Arc::clone(&metrics))),
            )),
            history: Arc::new(HistoryService::new(
                Arc::clone(&store) as _,
                Arc::new(SystemClock),
                Arc::new(ErasureMetrics(Arc::clone(&metrics))),
            )),
        };
        let http = HttpSettings {
            max_body_bytes: settings.server.max_body_bytes,
            body_read_timeout: Duration::from_secs(settings.server.body_read_timeout_secs),
        };
        let address = format!("{}:{}", settings.server.host, settings.server.port);
        let (listener, port) = bind(&address)?;
        let separate_metrics = !settings.metrics.bind.trim().is_empty();
        let metrics_on_main = settings.metrics.enabled && !separate_metrics;
        let metrics_data = web::Data::from(Arc::clone(&metrics));
        let trusted_proxies = web::Data::new(TrustedProxies(settings.trusted_proxy_addresses()?));
        let queue_data = queue_states.map(web::Data::from);
        let ingest_for_http = Arc::clone(&ingest);
        let mut server = HttpServer::new(move || {
            let mut app = App::new()
                .app_data(metrics_data.clone())
                .app_data(trusted_proxies.clone())
                .wrap(from_fn(observe_webhook))
                .wrap(from_fn(observe_api))
                .wrap(TracingLogger::<RequestSpan>::new());
            if let Some(queues) = &queue_data {
                app = app.app_data(queues.clone());
            }
            let mut app = if options.http {
                app.configure(|cfg| adapters_http::configure_api(cfg, api.clone()))
                    .configure(|cfg| adapters_http::configure_status(cfg, status_ports.clone()))
                    .configure(|cfg| {
                        adapters_http::configure(cfg, Arc::clone(&ingest_for_http), http);
                    })
            } else {
                app.configure(|cfg| {
                    adapters_http::configure_health(cfg, Arc::clone(&ingest_for_http));
                })
            };
            if metrics_on_main {
                app = app.route("/metrics", web::get().to(render_metrics));
            }
            app
        })
        .shutdown_timeout(settings.server.shutdown_timeout_secs)
        // Signals are ours (`stop_on_signals`): actix would stop at once on SIGINT.
        .disable_signals()
        .listen(listener)?;
        if settings.server.workers > 0 {
            server = server.workers(settings.server.workers);
        }
        let server = server.run();
        // Before "listening": a signal sent as soon as the server says it listens must find
        // the handlers (else SIGTERM's default action kills the process).
        let shutdown_timeout = Duration::from_secs(settings.server.shutdown_timeout_secs);
        let signalled = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopping = tokio::spawn(stop_on_signals(
            server.handle(),
            shutdown_timeout,
            Arc::clone(&signalled),
            sqs.stopper(),
        )?);
        if options.http {
            tracing::info!(%address, port, "listening");
        } else {
            tracing::info!(
                %address,
                port,
                "listening for /healthz, /readyz and /metrics only (--no-http: no webhook, API \
                 or status page)"
            );
        }

        let (metrics_server, metrics_port) = if settings.metrics.enabled && separate_metrics {
            let (listener, metrics_port) = bind(settings.metrics.bind.trim())?;
            let data = web::Data::from(Arc::clone(&metrics));
            let server = HttpServer::new(move || {
                App::new()
                    .app_data(data.clone())
                    .route("/metrics", web::get().to(render_metrics))
            })
            .workers(1)
            .shutdown_timeout(settings.server.shutdown_timeout_secs)
            .disable_signals()
            .listen(listener)?
            .run();
            tracing::info!(bind = %settings.metrics.bind, port = metrics_port, "metrics listening");
            (Some(server), Some(metrics_port))
        } else {
            (None, None)
        };
        Ok(Self {
            port,
            metrics_port,
            server,
            stopping,
            signalled,
            metrics_server,
            retention,
            gauges,
            fold,
            delivery,
            sqs,
            shutdown_timeout,
            _sqlite_lock: sqlite_lock,
        })
    }

    /// The bound port.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port of the separate metrics listener, when `metrics.bind` is set.
    #[must_use]
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics_port
    }

    /// Serves until SIGTERM or SIGINT (Ctrl-C), which stop it gracefully: it stops accepting,
    /// lets in-flight requests finish (at most `server.shutdown_timeout_secs`), then drops the
    /// database pool. A second signal during that wait stops it at once. The last log line says
    /// which of these happened.
    ///
    /// # Errors
    /// When the server fails.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let (stopping, signalled) = (self.stopping, self.signalled);
        let result = match self.metrics_server {
            Some(metrics) => {
                let metrics_handle = metrics.handle();
                let metrics_task = tokio::spawn(metrics);
                let result = self.server.await;
                metrics_handle.stop(true).await;
                let _ = metrics_task.await;
                result
            }
            None => self.server.await,
        };
        // Their batches in flight are committed and deleted before the store goes.
        self.sqs.stop(self.shutdown_timeout).await;
        if let Some(retention) = self.retention {
            retention.abort();
        }
        self.gauges.abort();
        if let Some(fold) = self.fold {
            fold.abort();
        }
        // After the HTTP server: what it committed in its last moments is in the outbox,
        // delivered by the next server if not by this one.
        self.delivery.stop(self.shutdown_timeout).await;
        result?;
        // Without a signal the server was stopped some other way: nothing to wait for.
        let stop = if signalled.load(std::sync::atomic::Ordering::SeqCst) {
            stopping.await.ok()
        } else {
            stopping.abort();
            None
        };
        match stop {
            Some(Stop::Graceful) => {
                tracing::info!("server stopped; in-flight requests finished");
            }
            Some(Stop::TimedOut) => tracing::warn!(
                "server stopped when server.shutdown_timeout_secs ran out; requests still in \
                 flight then, if any, were dropped unanswered (SNS retries them)"
            ),
            Some(Stop::Forced) => tracing::warn!(
                "server stopped at once on a second signal; requests in flight were dropped \
                 unanswered (SNS retries them)"
            ),
            None => tracing::info!("server stopped"),
        }
        Ok(())
    }
}

/// How the server came to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// Every in-flight request finished.
    Graceful,
    /// The shutdown timeout ran out first.
    TimedOut,
    /// A second signal asked to stop at once.
    Forced,
}

/// Installs SIGTERM and SIGINT handlers now, and returns the task that waits for them: the
/// first sets `signalled`, tells the SQS pollers to stop (`pollers`) and stops `server`
/// gracefully, a second (either signal) during the
/// wait stops it at once.
fn stop_on_signals(
    server: actix_web::dev::ServerHandle,
    timeout: Duration,
    signalled: Arc<std::sync::atomic::AtomicBool>,
    pollers: tokio::sync::watch::Sender<bool>,
) -> std::io::Result<impl std::future::Future<Output = Stop>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        let name = tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
        };
        tracing::info!(
            signal = name,
            timeout_secs = timeout.as_secs(),
            "stopping: no new connections; in-flight requests may finish (a second signal \
             stops at once)"
        );
        signalled.store(true, std::sync::atomic::Ordering::SeqCst);
        // The SQS pollers stop receiving now and finish their batches while the server drains.
        let _ = pollers.send(true);
        let started = std::time::Instant::now();
        let graceful = server.stop(true);
        tokio::select! {
            () = graceful => if started.elapsed() >= timeout {
                Stop::TimedOut
            } else {
                Stop::Graceful
            },
            _ = terminate.recv() => forced(&server).await,
            _ = interrupt.recv() => forced(&server).await,
        }
    })
}

/// Stops at once. actix acts on the first stop command only, and a graceful stop is already
/// under way, so asking it again changes nothing: after a moment the process exits, with
/// status 1. Nothing acknowledged is lost: a 2xx goes out only after its commit, and SNS
/// retries what was cut off.
async fn forced(server: &actix_web::dev::ServerHandle) -> Stop {
    if tokio::time::timeout(FORCED_STOP_GRACE, server.stop(false))
        .await
        .is_err()
    {
        tracing::warn!(
            "server stopped at once on a second signal; requests in flight were dropped \
             unanswered (SNS retries them)"
        );
        std::process::exit(1);
    }
    Stop::Forced
}

/// How long a forced stop waits for actix before the process exits.
const FORCED_STOP_GRACE: Duration = Duration::from_millis(500);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::RetentionSettings;

    #[test]
    fn counted_records_live_as_long_as_an_archived_body_can_be_processed_again() {
        let days = |raw_messages_days, messages_days| {
            counted_records_days(&RetentionSettings {
                raw_messages_days,
                messages_days,
                events_days: 3,
                ..RetentionSettings::default()
            })
        };
        assert_eq!(days(0, 0), 0, "bodies kept forever: keys kept forever");
        assert_eq!(days(30, 0), 33);
        assert_eq!(days(0, 90), 93);
        assert_eq!(days(30, 10), 13);
    }
}
