//! Intake from Amazon SQS in the server: the pollers of the `[[sqs]]` queues, their shutdown,
//! and what readiness says of the queues.

use std::sync::Arc;
use std::time::Duration;

use adapters_http::{QueueState, QueueStates};
use adapters_sqs::{Poller, Queue, QueueHealth, QueueSettings};
use anyhow::Context;
use domain::Ingest;
use tokio::sync::watch;

use crate::metrics::{MeasuredIngest, Metrics, QueueMetrics};

/// The pollers of every configured queue, running until [`SqsIntake::stop`].
#[derive(Debug)]
pub struct SqsIntake {
    stop: watch::Sender<bool>,
    pollers: Vec<tokio::task::JoinHandle<()>>,
    health: Vec<(String, Arc<QueueHealth>)>,
}

impl SqsIntake {
    /// Builds each queue's client and starts its `concurrency` pollers. A queue that cannot be
    /// reached does not stop start-up: its pollers retry, and readiness reports it.
    ///
    /// # Errors
    /// When a queue's URL names no queue or no AWS region is known for it.
    pub async fn start(
        queues: Vec<QueueSettings>,
        ingest: &Arc<dyn Ingest>,
        metrics: &Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        let (stop, stopped) = watch::channel(false);
        let metrics_of_queues = QueueMetrics(Arc::clone(metrics));
        let observer: Arc<dyn adapters_sqs::QueueObserver> = Arc::new(metrics_of_queues.clone());
        let ingest: Arc<dyn Ingest> =
            Arc::new(MeasuredIngest::new(Arc::clone(ingest), Arc::clone(metrics)));
        let mut pollers = Vec::new();
        let mut health = Vec::new();
        for settings in queues {
            let url = settings.queue_url.clone();
            let queue = Queue::connect(settings)
                .await
                .with_context(|| format!("setting up the SQS queue {url}"))?;
            let s = queue.settings();
            tracing::info!(
                queue = queue.name(),
                queue_url = %s.queue_url,
                pollers = s.concurrency,
                max_messages = s.max_messages,
                wait_secs = s.wait_secs,
                raw = s.raw,
                "reading SNS deliveries from an SQS queue"
            );
            if s.raw {
                tracing::warn!(
                    queue = queue.name(),
                    "raw = true: bare SES records from this queue are stored UNVERIFIED (no SNS \
                     signature to check); the queue's access policy is all that keeps forged \
                     events out, so let only your SES topic send to it"
                );
            }
            metrics_of_queues.started(queue.name());
            health.push((queue.name().to_owned(), queue.health()));
            for _ in 0..s.concurrency {
                let poller = Poller::new(queue.clone(), Arc::clone(&ingest), Arc::clone(&observer));
                pollers.push(tokio::spawn(poller.run(stopped.clone())));
            }
        }
        Ok(Self {
            stop,
            pollers,
            health,
        })
    }

    /// What stops the pollers when `true` is sent: given to the signal handler, so that they
    /// stop receiving on the first signal, while the HTTP server drains.
    #[must_use]
    pub fn stopper(&self) -> watch::Sender<bool> {
        self.stop.clone()
    }

    /// Whether any queue is configured.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.health.is_empty()
    }

    /// The queues' states for readiness; `queues_only` when the webhook is not served.
    #[must_use]
    pub fn states(&self, queues_only: bool) -> Arc<dyn QueueStates> {
        Arc::new(IntakeStates {
            health: self.health.clone(),
            queues_only,
        })
    }

    /// Stops the pollers: a `ReceiveMessage` waiting is abandoned, a batch being handled is
    /// finished (committed and deleted) first, waiting at most `timeout`; then they are aborted
    /// (what they had not deleted reappears in the queue after its visibility timeout).
    pub async fn stop(mut self, timeout: Duration) {
        let pollers = std::mem::take(&mut self.pollers);
        if pollers.is_empty() {
            return;
        }
        let _ = self.stop.send(true);
        let aborts: Vec<_> = pollers.iter().map(|p| p.abort_handle()).collect();
        if tokio::time::timeout(timeout, futures::future::join_all(pollers))
            .await
            .is_err()
        {
            tracing::warn!(
                "SQS pollers still busy when the shutdown timeout ran out: stopped; messages \
                 not yet deleted reappear in their queue after its visibility timeout"
            );
            for abort in aborts {
                abort.abort();
            }
        } else {
            tracing::info!("SQS pollers stopped; their last batches finished");
        }
    }
}

impl Drop for SqsIntake {
    fn drop(&mut self) {
        for poller in &self.pollers {
            poller.abort();
        }
    }
}

struct IntakeStates {
    health: Vec<(String, Arc<QueueHealth>)>,
    queues_only: bool,
}

impl QueueStates for IntakeStates {
    fn queues(&self) -> Vec<QueueState> {
        self.health
            .iter()
            .map(|(queue, health)| QueueState {
                queue: queue.clone(),
                reachable: health.reachable(),
            })
            .collect()
    }

    fn queues_only(&self) -> bool {
        self.queues_only
    }
}
