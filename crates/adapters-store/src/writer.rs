//! Group commit: the notifications of concurrent requests are written together, one batch per
//! transaction (on PostgreSQL one statement), instead of one transaction each.
//!
//! A request hands its rows to a bounded queue and waits for its own answer. Each writer thread
//! takes what is queued (at most `write_batch` notifications; it never waits for more, so a lone
//! request is written at once), writes it, and only after the commit answers each request with
//! its own [`StoreReport`]. Nothing is acknowledged before it is committed.
//!
//! - Two deliveries of one SNS message in a batch: the first is written, the others are
//!   duplicates, exactly as if they had come one after the other. An event carried by two
//!   messages of a batch (the two SES formats of one event) belongs to the first.
//! - A batch that fails is written again one notification per transaction, so one notification
//!   the database refuses cannot fail its neighbours. A database that cannot be reached fails
//!   the batch and everything queued behind it at once ([`StoreError::Unavailable`], a 503).
//! - A full queue is answered [`StoreError::Unavailable`] at once, and a notification that
//!   waited longer than the pool's `connection_timeout` when a writer reaches it likewise: SNS
//!   retries, and the queue never grows without bound. A statement waiting on a row lock held
//!   elsewhere fails after the pool's `lock_timeout`, so one blocked notification cannot hold
//!   the queue behind it for long.
//! - A writer keeps its pooled connection while busy (no checkout and no validation round trip
//!   per batch) and gives it back after [`IDLE_RELEASE`] without work, or after any error.

use std::collections::HashSet;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use domain::PlatformEvent;
use domain::ports::{ArchivedMessage, StoreError, StoreReport};
use tokio::sync::oneshot;

use crate::connection::{AnyConnection, on_backend};
use crate::counts::NewRecord;
use crate::error::{from_diesel, pool_unavailable};
use crate::list_statements::{PendingTrigger, PolicyHook};
use crate::rows::{NewEmailEvent, NewSnsMessage};
use crate::statements::{BatchWritten, WriteBatch};
use crate::{AnyPool, AnyPooled, SetupError};

/// How long a writer keeps its connection without work before it goes back to the pool.
pub(crate) const IDLE_RELEASE: Duration = Duration::from_secs(1);

/// One SNS notification's rows.
#[derive(Debug)]
pub(crate) struct Notification {
    pub message: NewSnsMessage,
    /// Its events, in any order.
    pub events: Vec<NewEmailEvent>,
    /// Those of its events that may suppress their recipient.
    pub triggers: Vec<PendingTrigger>,
    /// What its SES record adds to the reputation counts, if anything.
    pub record: Option<NewRecord>,
}

impl Notification {
    /// The rows of one notification, every value moved out of `message` and `events`, and
    /// the triggers of `hook`'s policy among the events.
    pub(crate) fn new(
        mut message: ArchivedMessage,
        events: Vec<PlatformEvent>,
        hook: &PolicyHook,
    ) -> Self {
        let triggers = hook.triggers(&events);
        let record = message.tally.take().map(NewRecord::from);
        let message = NewSnsMessage::from(message);
        let events = events
            .into_iter()
            .map(|event| NewEmailEvent::new(event, &message.sns_message_id))
            .collect();
        Self {
            message,
            events,
            triggers,
            record,
        }
    }
}

/// A notification waiting for a writer, and where its answer goes.
struct Job {
    notification: Notification,
    reply: oneshot::Sender<Result<StoreReport, StoreError>>,
    span: tracing::Span,
    queued_at: Instant,
}

/// Where a job's answer arrives.
type Answer = oneshot::Receiver<Result<StoreReport, StoreError>>;

impl Job {
    /// A job queued now, in the current tracing span.
    fn new(notification: Notification) -> (Self, Answer) {
        let (reply, answer) = oneshot::channel();
        let job = Self {
            notification,
            reply,
            span: tracing::Span::current(),
            queued_at: Instant::now(),
        };
        (job, answer)
    }

    fn answer(self, result: Result<StoreReport, StoreError>) {
        self.span.in_scope(|| match &result {
            Ok(report) => tracing::debug!(
                sns_message_id = %self.notification.message.sns_message_id,
                message_was_new = report.message_was_new,
                events_inserted = report.events_inserted,
                events_duplicate = report.events_duplicate,
                "notification stored"
            ),
            Err(error) => tracing::debug!(
                sns_message_id = %self.notification.message.sns_message_id,
                error = %error,
                "notification not stored"
            ),
        });
        // The request may have gone (client disconnected): what is committed stays committed,
        // and SNS's retry will find it as a duplicate.
        let _ = self.reply.send(result);
    }
}

/// How the writers run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WriterSettings {
    pub threads: u32,
    pub max_batch: usize,
    pub queue_capacity: usize,
    /// The longest a notification may wait in the queue for a writer.
    pub max_wait: Duration,
}

/// The request side of the writers. Dropping it (with the last [`Store`](crate::Store) clone)
/// lets the writer threads finish what is queued and exit.
#[derive(Debug)]
pub(crate) struct Writer {
    queue: Sender<Job>,
    queue_capacity: usize,
}

impl Writer {
    /// Starts `settings.threads` writer threads on `pool`, applying `hook`'s policy.
    pub(crate) fn start(
        pool: &AnyPool,
        settings: WriterSettings,
        hook: &PolicyHook,
    ) -> Result<Self, SetupError> {
        let (queue, jobs) = crossbeam_channel::bounded(settings.queue_capacity);
        for index in 0..settings.threads {
            let pool = pool.clone();
            let jobs = jobs.clone();
            let hook = hook.clone();
            thread::Builder::new()
                .name(format!("store-writer-{index}"))
                .spawn(move || run(&pool, &jobs, settings, &hook))
                .map_err(|e| SetupError::WriterThread(e.to_string()))?;
        }
        Ok(Self {
            queue,
            queue_capacity: settings.queue_capacity,
        })
    }

    /// Queues `notification` and waits until it is committed (or could not be).
    pub(crate) async fn write(
        &self,
        notification: Notification,
    ) -> Result<StoreReport, StoreError> {
        let (job, answer) = Job::new(notification);
        self.queue.try_send(job).map_err(|e| match e {
            TrySendError::Full(_) => StoreError::Unavailable(format!(
                "the write queue is full ({} notifications waiting for the database)",
                self.queue_capacity
            )),
            TrySendError::Disconnected(_) => {
                StoreError::Failed("the store's writers have stopped".into())
            }
        })?;
        answer
            .await
            .map_err(|_| StoreError::Failed("the store's writer stopped before answering".into()))?
    }
}

/// A writer thread: takes batches off the queue until every [`Writer`] is gone.
fn run(pool: &AnyPool, jobs: &Receiver<Job>, settings: WriterSettings, hook: &PolicyHook) {
    let mut conn: Option<AnyPooled> = None;
    loop {
        let first = match jobs.recv_timeout(IDLE_RELEASE) {
            Ok(job) => job,
            Err(RecvTimeoutError::Timeout) => {
                conn = None;
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let mut batch = vec![first];
        while batch.len() < settings.max_batch {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let (batch, stale): (Vec<Job>, Vec<Job>) = batch
            .into_iter()
            .partition(|job| job.queued_at.elapsed() <= settings.max_wait);
        if !stale.is_empty() {
            tracing::warn!(
                notifications = stale.len(),
                max_wait_ms = settings.max_wait.as_millis(),
                "notifications waited too long for a database writer; answering 503"
            );
        }
        for job in stale {
            let waited = job.queued_at.elapsed();
            job.answer(Err(StoreError::Unavailable(format!(
                "waited {} ms for a database writer",
                waited.as_millis()
            ))));
        }
        if batch.is_empty() {
            continue;
        }

        let mut connection = match conn.take() {
            Some(connection) => connection,
            None => match pool.get() {
                Ok(connection) => connection,
                Err(e) => {
                    let error = pool_unavailable(&e);
                    tracing::warn!(error = %error, queued = jobs.len(), "database unavailable: failing the queued writes");
                    for job in batch.into_iter().chain(jobs.try_iter()) {
                        job.answer(Err(error.clone()));
                    }
                    continue;
                }
            },
        };
        // A panic drops the batch's reply channels (each request then gets a 503) and the
        // connection; the writer goes on.
        let healthy = catch_unwind(AssertUnwindSafe(|| {
            write_jobs(&mut connection, batch, hook)
        }))
        .unwrap_or_else(|_| {
            tracing::error!("a store writer panicked while writing a batch");
            false
        });
        if healthy {
            conn = Some(connection);
        }
    }
}

/// Writes `batch`, answers every job, and tells whether the connection is worth keeping (only
/// when nothing failed).
fn write_jobs(conn: &mut AnyConnection, batch: Vec<Job>, hook: &PolicyHook) -> bool {
    let notifications: Vec<&Notification> = batch.iter().map(|job| &job.notification).collect();
    match write_notifications(conn, &notifications, hook) {
        Ok(reports) => {
            for (job, report) in batch.into_iter().zip(reports) {
                job.answer(Ok(report));
            }
            true
        }
        // Any failed write gives its connection back: r2d2 discards it if it is broken.
        Err(error) if batch.len() == 1 || matches!(error, StoreError::Unavailable(_)) => {
            for job in batch {
                job.answer(Err(error.clone()));
            }
            false
        }
        Err(error) => {
            tracing::warn!(
                error = %error,
                notifications = batch.len(),
                "a batch write failed; writing its notifications one by one"
            );
            for job in batch {
                let result =
                    write_notifications(conn, &[&job.notification], hook).and_then(|reports| {
                        reports
                            .into_iter()
                            .next()
                            .ok_or_else(|| StoreError::Failed("the store wrote no report".into()))
                    });
                job.answer(result);
            }
            false
        }
    }
}

/// Writes `notifications` as one batch, as a writer does (one by one if the batch fails), and
/// returns each one's answer, in order.
#[cfg(feature = "test-util")]
pub(crate) fn write_as_one_batch(
    conn: &mut AnyConnection,
    notifications: Vec<Notification>,
    hook: &PolicyHook,
) -> Vec<Result<StoreReport, StoreError>> {
    let (jobs, mut answers): (Vec<Job>, Vec<_>) = notifications.into_iter().map(Job::new).unzip();
    write_jobs(conn, jobs, hook);
    answers
        .iter_mut()
        .map(|answer| {
            answer
                .try_recv()
                .unwrap_or_else(|_| Err(StoreError::Failed("no answer".into())))
        })
        .collect()
}

/// Writes `notifications` atomically, with the suppression entries their new events cause;
/// one report each, in order. A batch without a trigger stays one statement on PostgreSQL.
fn write_notifications(
    conn: &mut AnyConnection,
    notifications: &[&Notification],
    hook: &PolicyHook,
) -> Result<Vec<StoreReport>, StoreError> {
    let plan = Plan::new(notifications);
    let (written, added) = if plan.triggers.is_empty() {
        let written =
            on_backend!(conn, c => c.write_batch(&plan.messages, &plan.events, &plan.records));
        (written.map_err(|e| from_diesel(&e))?, Vec::new())
    } else {
        let triggers = plan.triggers.clone();
        on_backend!(conn, c => c.write_batch_suppressing(&plan.messages, &plan.events, &plan.records, triggers, &hook.policy))
            .map_err(|e| from_diesel(&e))?
    };
    hook.written(&added);
    Ok(plan.reports(notifications, &written))
}

/// The rows a batch writes: every distinct message and every distinct event once, sorted.
struct Plan<'a> {
    messages: Vec<&'a NewSnsMessage>,
    events: Vec<&'a NewEmailEvent>,
    /// The counted records, once each (by key), sorted.
    records: Vec<&'a NewRecord>,
    /// The triggers of the events written, once each.
    triggers: Vec<PendingTrigger>,
    /// Per notification: whether an earlier one in the batch carries the same SNS message.
    repeated: Vec<bool>,
}

impl<'a> Plan<'a> {
    fn new(notifications: &[&'a Notification]) -> Self {
        let mut seen_messages = HashSet::new();
        let mut seen_events = HashSet::new();
        let mut messages = Vec::with_capacity(notifications.len());
        let mut events = Vec::new();
        let mut triggers = Vec::new();
        let mut seen_triggers = HashSet::new();
        let mut records = Vec::new();
        let mut seen_records = HashSet::new();
        let mut repeated = Vec::with_capacity(notifications.len());
        for notification in notifications {
            let first = seen_messages.insert(notification.message.sns_message_id.as_str());
            repeated.push(!first);
            if !first {
                continue;
            }
            messages.push(&notification.message);
            if let Some(record) = &notification.record
                && seen_records.insert(record.record_key.as_str())
            {
                records.push(record);
            }
            for event in &notification.events {
                if seen_events.insert(event.event_key.as_str()) {
                    events.push(event);
                }
            }
            for trigger in &notification.triggers {
                if seen_triggers.insert(trigger.trigger.event_key.as_str()) {
                    triggers.push(trigger.clone());
                }
            }
        }
        messages.sort_by(|a, b| a.sns_message_id.cmp(&b.sns_message_id));
        events.sort_by(|a, b| a.event_key.cmp(&b.event_key));
        records.sort_by(|a, b| a.record_key.cmp(&b.record_key));
        Self {
            messages,
            events,
            records,
            triggers,
            repeated,
        }
    }

    /// What each notification stored, from what the batch inserted. The events inserted under
    /// a message's id are those it carried first in the batch and that were not stored yet.
    fn reports(&self, notifications: &[&Notification], written: &BatchWritten) -> Vec<StoreReport> {
        let new_messages: HashSet<&str> = written.messages.iter().map(String::as_str).collect();
        let inserted = written.events_per_message();
        notifications
            .iter()
            .zip(&self.repeated)
            .map(|(notification, &repeated)| {
                let id = notification.message.sns_message_id.as_str();
                let events_inserted = if repeated {
                    0
                } else {
                    inserted.get(id).copied().unwrap_or(0)
                };
                StoreReport {
                    message_was_new: !repeated && new_messages.contains(id),
                    events_inserted,
                    events_duplicate: notification.events.len().saturating_sub(events_inserted),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use domain::ports::{ArchivedMessage, MessageOutcome};
    use domain::{EventType, PlatformEvent, SnsMessageType};

    use super::*;

    fn notification(sns_message_id: &str, event_keys: &[&str]) -> Notification {
        let at = Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap();
        let message = ArchivedMessage {
            sns_message_id: sns_message_id.to_owned(),
            message_type: SnsMessageType::Notification,
            topic_arn: "arn:aws:sns:us-east-1:123456789012:ses".to_owned(),
            sns_timestamp: at,
            received_at: at,
            ses_type: Some("Open".to_owned()),
            ses_message_id: None,
            outcome: MessageOutcome::Processed,
            error_count: 0,
            error_detail: None,
            raw_body: String::new(),
            tally: None,
        };
        let events: Vec<PlatformEvent> = event_keys
            .iter()
            .map(|key| PlatformEvent {
                event_key: (*key).to_owned(),
                ..PlatformEvent::new(EventType::Open, "ses-id", at)
            })
            .collect();
        Notification::new(message, events, &PolicyHook::default())
    }

    #[test]
    fn a_plan_writes_each_message_and_event_once_in_one_global_order() {
        let batch = [
            notification("m-2", &["k-3", "k-1"]),
            notification("m-1", &["k-1", "k-2"]),
            notification("m-2", &["k-3", "k-1"]),
        ];
        let refs: Vec<&Notification> = batch.iter().collect();

        let plan = Plan::new(&refs);

        let messages: Vec<&str> = plan
            .messages
            .iter()
            .map(|m| m.sns_message_id.as_str())
            .collect();
        let events: Vec<(&str, &str)> = plan
            .events
            .iter()
            .map(|e| (e.event_key.as_str(), e.sns_message_id.as_str()))
            .collect();
        assert_eq!(messages, ["m-1", "m-2"]);
        assert_eq!(events, [("k-1", "m-2"), ("k-2", "m-1"), ("k-3", "m-2")]);
        assert_eq!(plan.repeated, [false, false, true]);
    }
}
