//! Building and running the server from [`Settings`].

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{App, HttpServer};
use adapters_http::HttpSettings;
use adapters_store::{PgStore, PoolOptions};
use anyhow::Context;
use domain::ports::SystemClock;
use domain::{IngestPolicy, IngestService};
use sns_verify::{CertificateSource, TrustPolicy, Verifier};
use tracing_actix_web::TracingLogger;

use crate::settings::Settings;
use crate::sns::{HttpConfirmer, SnsVerifier};

/// A bound, ready-to-run server.
pub struct Application {
    port: u16,
    server: Server,
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
/// behind an in-memory cache.
#[must_use]
pub fn certificate_source(settings: &Settings) -> Arc<dyn CertificateSource> {
    sns_verify::CertificateStore::builder()
        .pinned_dir(settings.sns.cert_dir.clone())
        .fetch(settings.sns.fetch_certificates)
        .cache_capacity(settings.sns.cert_cache_capacity)
        .build()
}

impl Application {
    /// Connects the store, applies migrations when asked to, wires the ports and binds the
    /// listener (port 0 picks a free port).
    ///
    /// # Errors
    /// When the listener cannot be bound, the store cannot be set up or migrations fail.
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        let store = PgStore::connect(
            &settings.database.url,
            PoolOptions {
                max_size: settings.database.max_connections,
                connection_timeout: Duration::from_secs(settings.database.connect_timeout_secs),
                ..PoolOptions::default()
            },
        )
        .context("setting up the database pool")?;
        if settings.database.migrate_on_start {
            store
                .run_migrations()
                .await
                .context("applying database migrations")?;
        }
        let policy = trust_policy(settings)?;
        let verifier = Verifier::new(policy.clone(), certificate_source(settings));
        let confirmer = HttpConfirmer::new(policy, sns_verify::confirm::http_client());
        if settings.sns.allowed_topic_arns.is_empty() {
            tracing::warn!(
                "sns.allowed_topic_arns is empty: messages from ANY SNS topic are accepted, \
                 including topics in other AWS accounts. Set it to your SES topics."
            );
        }
        let service = IngestService::new(
            Arc::new(SnsVerifier::new(verifier)),
            Arc::new(store),
            Arc::new(confirmer),
            Arc::new(SystemClock),
            IngestPolicy {
                allowed_topic_arns: settings.sns.allowed_topic_arns.clone(),
                auto_confirm: settings.sns.auto_confirm,
                max_message_age: settings.max_message_age(),
            },
        );
        let http = HttpSettings {
            max_body_bytes: settings.server.max_body_bytes,
        };
        let address = format!("{}:{}", settings.server.host, settings.server.port);
        let listener = TcpListener::bind(&address).with_context(|| format!("binding {address}"))?;
        let port = listener.local_addr()?.port();
        let mut server = HttpServer::new(move || {
            App::new()
                .wrap(TracingLogger::default())
                .configure(|cfg| adapters_http::configure(cfg, service.clone(), http))
        })
        .shutdown_timeout(30)
        .listen(listener)?;
        if settings.server.workers > 0 {
            server = server.workers(settings.server.workers);
        }
        tracing::info!(%address, port, "listening");
        Ok(Self {
            port,
            server: server.run(),
        })
    }

    /// The bound port.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until the server is stopped (SIGINT/SIGTERM stop it gracefully).
    ///
    /// # Errors
    /// When the server fails.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}
