//! The reprocess use case: archived notifications that produced no events, or errors, go
//! through the current verifier and parser again (after a parser fix, say). Idempotent: events
//! already stored are duplicates, so running it twice adds nothing.

use std::sync::Arc;

use async_trait::async_trait;

use crate::ingest::classify;
use crate::mapping;
use crate::ports::{
    Clock, MessageArchive, MessageOutcome, MessageVerifier, Reprocess, ReprocessFilter,
    ReprocessProgress, Reprocessed, StoreError, VerifyFailure,
};
use crate::sns::SnsMessageType;

/// What happened to one archived message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReprocessLine {
    pub sns_message_id: String,
    pub before: MessageOutcome,
    /// `None` when the message could not be processed again (see `problem`).
    pub after: Option<MessageOutcome>,
    pub processed: usize,
    pub duplicates: usize,
    pub errors: usize,
    pub problem: Option<String>,
    /// Skipped only because its signing certificate could not be obtained now: running
    /// reprocess again later (or with the certificate pinned) may succeed.
    pub retry_later: bool,
}

/// What a reprocess run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReprocessReport {
    pub lines: Vec<ReprocessLine>,
}

impl ReprocessReport {
    /// Messages examined.
    #[must_use]
    pub fn examined(&self) -> usize {
        self.lines.len()
    }

    /// Platform events newly stored by this run.
    #[must_use]
    pub fn events_stored(&self) -> usize {
        self.lines.iter().map(|l| l.processed).sum()
    }

    /// Messages that could not be processed again (verification failed, certificate
    /// unavailable, not a notification).
    #[must_use]
    pub fn skipped(&self) -> usize {
        self.lines.iter().filter(|l| l.after.is_none()).count()
    }

    /// The messages skipped because their signing certificate was unavailable.
    pub fn retry_later(&self) -> impl Iterator<Item = &ReprocessLine> {
        self.lines.iter().filter(|l| l.retry_later)
    }
}

/// Why a run stopped early. Messages handled before it are committed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReprocessError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// `--sns-message-id` names no archived notification that still has its raw body.
    #[error(
        "no archived notification with SNS MessageId `{0}` and its raw body (unknown, a \
         subscription message, or its body was purged by retention or cleared by an erasure)"
    )]
    UnknownMessage(String),
}

/// Runs archived messages through the current parser again.
#[derive(Clone)]
pub struct ReprocessService {
    verifier: Arc<dyn MessageVerifier>,
    archive: Arc<dyn MessageArchive>,
    clock: Arc<dyn Clock>,
    /// `retention.events_days`: events older than this are not stored again.
    events_retention: Option<chrono::Duration>,
}

impl std::fmt::Debug for ReprocessService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReprocessService").finish_non_exhaustive()
    }
}

/// Messages read from the archive per query.
const PAGE: usize = 200;

impl ReprocessService {
    #[must_use]
    pub fn new(
        verifier: Arc<dyn MessageVerifier>,
        archive: Arc<dyn MessageArchive>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            verifier,
            archive,
            clock,
            events_retention: None,
        }
    }

    /// Leaves out the events older than `days` (`retention.events_days`; 0 keeps all): they
    /// were or will be deleted by retention, and storing them again would count them again in
    /// the reputation counts each time.
    #[must_use]
    pub fn with_events_retention(mut self, days: u32) -> Self {
        self.events_retention = (days > 0).then(|| chrono::Duration::days(i64::from(days)));
        self
    }
}

/// Each message is verified again (certificates are checked at the message's own timestamp, so
/// old messages still verify) and committed on its own.
#[async_trait]
impl Reprocess for ReprocessService {
    async fn run(
        &self,
        filter: &ReprocessFilter,
        progress: Arc<dyn ReprocessProgress>,
    ) -> Result<ReprocessReport, ReprocessError> {
        let mut report = ReprocessReport::default();
        let mut after_id = 0;
        loop {
            let page = self
                .archive
                .reprocess_candidates(filter, after_id, PAGE)
                .await?;
            let Some(last) = page.last() else { break };
            after_id = last.id;
            for stored in page {
                let crate::ports::StoredMessage {
                    sns_message_id,
                    outcome: before,
                    raw_body,
                    ..
                } = stored;
                let line = match self.verifier.verify(raw_body.into_bytes()).await {
                    Err(VerifyFailure::Unavailable(detail)) => ReprocessLine {
                        retry_later: true,
                        ..skipped(
                            sns_message_id,
                            before,
                            format!("signing certificate unavailable: {detail}"),
                        )
                    },
                    Err(failure) => skipped(
                        sns_message_id,
                        before,
                        format!("does not verify: {failure}"),
                    ),
                    Ok(message) if message.message_type != SnsMessageType::Notification => skipped(
                        sns_message_id,
                        before,
                        format!("is a {}", message.message_type),
                    ),
                    Ok(message) => {
                        let mut mapped = mapping::map_message(&message.message);
                        if let Some(retention) = self.events_retention {
                            let cutoff = self.clock.now() - retention;
                            mapped.events.retain(|event| event.event_time >= cutoff);
                        }
                        let (outcome, error_count, error_detail) = classify(&mapped);
                        let errors = mapped.errors.len();
                        let update = Reprocessed {
                            sns_message_id: sns_message_id.clone(),
                            ses_type: mapped.ses_type,
                            ses_message_id: mapped.ses_message_id,
                            outcome,
                            error_count,
                            error_detail,
                            at: self.clock.now(),
                            tally: mapped.tally,
                        };
                        let stored_report = self
                            .archive
                            .store_reprocessed(update, mapped.events)
                            .await?;
                        ReprocessLine {
                            sns_message_id,
                            before,
                            after: Some(outcome),
                            processed: stored_report.events_inserted,
                            duplicates: stored_report.events_duplicate,
                            errors,
                            problem: None,
                            retry_later: false,
                        }
                    }
                };
                progress.handled(&line);
                report.lines.push(line);
            }
        }
        if let Some(id) = &filter.sns_message_id
            && report.lines.is_empty()
        {
            return Err(ReprocessError::UnknownMessage(id.clone()));
        }
        Ok(report)
    }
}

fn skipped(sns_message_id: String, before: MessageOutcome, problem: String) -> ReprocessLine {
    ReprocessLine {
        sns_message_id,
        before,
        after: None,
        processed: 0,
        duplicates: 0,
        errors: 0,
        problem: Some(problem),
        retry_later: false,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use chrono::{TimeZone, Utc};
    use mockall::predicate::eq;

    use super::*;
    use crate::event::EventType;
    use crate::ports::{
        MockClock, MockMessageArchive, MockMessageVerifier, StoreReport, StoredMessage,
    };
    use crate::sns::SnsMessage;

    fn stored(id: i64, sns_message_id: &str) -> StoredMessage {
        StoredMessage {
            id,
            sns_message_id: sns_message_id.into(),
            outcome: MessageOutcome::Failed,
            raw_body: format!("raw-{sns_message_id}"),
        }
    }

    fn verified(message_type: SnsMessageType, message: &str) -> SnsMessage {
        SnsMessage {
            message_type,
            message_id: "m".into(),
            topic_arn: "arn:aws:sns:us-east-1:123456789012:t".into(),
            timestamp: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
            subject: None,
            message: message.into(),
            subscribe_url: None,
            token: None,
            raw: String::new(),
        }
    }

    fn bounce() -> String {
        serde_json::json!({
            "notificationType": "Bounce",
            "mail": {"timestamp": "2026-01-01T00:00:00.000Z", "messageId": "ses-1", "destination": ["a@x.io", "b@x.io"]},
            "bounce": {"bounceType": "Permanent", "timestamp": "2026-01-01T00:00:01.000Z", "feedbackId": "f",
                       "bouncedRecipients": [{"emailAddress": "a@x.io"}, {"emailAddress": "b@x.io"}]}
        })
        .to_string()
    }

    fn service(verifier: MockMessageVerifier, archive: MockMessageArchive) -> ReprocessService {
        let mut clock = MockClock::new();
        clock
            .expect_now()
            .returning(|| Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0).unwrap());
        ReprocessService::new(Arc::new(verifier), Arc::new(archive), Arc::new(clock))
    }

    #[tokio::test]
    async fn events_older_than_their_retention_are_not_stored_again() {
        // The bounce is of 2026-01-01, the clock at 2026-11-27: outside 30 days, inside 365.
        for (days, expected) in [(30, 0), (365, 2), (0, 2)] {
            let mut archive = MockMessageArchive::new();
            archive
                .expect_reprocess_candidates()
                .with(eq(ReprocessFilter::default()), eq(0), eq(PAGE))
                .returning(|_, _, _| Ok(vec![stored(3, "a")]));
            archive
                .expect_reprocess_candidates()
                .with(eq(ReprocessFilter::default()), eq(3), eq(PAGE))
                .returning(|_, _, _| Ok(Vec::new()));
            archive
                .expect_store_reprocessed()
                .withf(move |_, events| events.len() == expected)
                .times(1)
                .returning(|_, _| Ok(StoreReport::default()));
            let mut verifier = MockMessageVerifier::new();
            verifier
                .expect_verify()
                .returning(|_| Ok(verified(SnsMessageType::Notification, &bounce())));
            service(verifier, archive)
                .with_events_retention(days)
                .run(&ReprocessFilter::default(), Arc::new(Recorded::default()))
                .await
                .unwrap();
        }
    }

    #[tokio::test]
    async fn candidates_are_verified_mapped_and_stored_page_by_page() {
        let mut archive = MockMessageArchive::new();
        archive
            .expect_reprocess_candidates()
            .with(eq(ReprocessFilter::default()), eq(0), eq(PAGE))
            .times(1)
            .returning(|_, _, _| Ok(vec![stored(3, "a"), stored(7, "b")]));
        archive
            .expect_reprocess_candidates()
            .with(eq(ReprocessFilter::default()), eq(7), eq(PAGE))
            .times(1)
            .returning(|_, _, _| Ok(Vec::new()));
        archive
            .expect_store_reprocessed()
            .withf(|update, events| {
                update.outcome == MessageOutcome::Processed
                    && update.ses_type.as_deref() == Some("Bounce")
                    && events.len() == 2
                    && events.iter().all(|e| e.event_type == EventType::Bounce)
            })
            .times(2)
            .returning(|_, _| {
                Ok(StoreReport {
                    message_was_new: false,
                    events_inserted: 2,
                    events_duplicate: 0,
                })
            });
        let mut verifier = MockMessageVerifier::new();
        verifier
            .expect_verify()
            .times(2)
            .returning(|_| Ok(verified(SnsMessageType::Notification, &bounce())));

        let report = service(verifier, archive)
            .run(&ReprocessFilter::default(), Arc::new(Recorded::default()))
            .await
            .unwrap();

        assert_eq!(report.examined(), 2);
        assert_eq!(report.events_stored(), 4);
        assert_eq!(report.lines[0].before, MessageOutcome::Failed);
        assert_eq!(report.lines[0].after, Some(MessageOutcome::Processed));
    }

    #[tokio::test]
    async fn a_message_that_no_longer_verifies_is_skipped_not_stored() {
        let mut archive = MockMessageArchive::new();
        let mut pages = vec![Vec::new(), vec![stored(1, "a")]];
        archive
            .expect_reprocess_candidates()
            .returning(move |_, _, _| Ok(pages.pop().unwrap()));
        archive.expect_store_reprocessed().times(0);
        let mut verifier = MockMessageVerifier::new();
        verifier.expect_verify().returning(|_| {
            Err(VerifyFailure::Rejected {
                reason: crate::ports::RejectReason::BadSignature,
                detail: "x".into(),
            })
        });

        let report = service(verifier, archive)
            .run(&ReprocessFilter::default(), Arc::new(Recorded::default()))
            .await
            .unwrap();

        assert_eq!(report.skipped(), 1);
        assert!(
            report.lines[0]
                .problem
                .as_deref()
                .unwrap()
                .contains("does not verify")
        );
    }

    /// Remembers the ids of the lines a run reported, in order.
    #[derive(Default)]
    struct Recorded(std::sync::Mutex<Vec<String>>);

    impl ReprocessProgress for Recorded {
        fn handled(&self, line: &ReprocessLine) {
            self.0.lock().unwrap().push(line.sns_message_id.clone());
        }
    }

    #[tokio::test]
    async fn an_unavailable_certificate_skips_that_message_and_the_run_goes_on() {
        let mut archive = MockMessageArchive::new();
        let mut pages = vec![Vec::new(), vec![stored(1, "a"), stored(2, "b")]];
        archive
            .expect_reprocess_candidates()
            .returning(move |_, _, _| Ok(pages.pop().unwrap()));
        archive
            .expect_store_reprocessed()
            .withf(|update, _| update.sns_message_id == "b")
            .times(1)
            .returning(|_, _| Ok(StoreReport::default()));
        let mut verifier = MockMessageVerifier::new();
        verifier.expect_verify().returning(|body| {
            if body == b"raw-a" {
                Err(VerifyFailure::Unavailable("offline".into()))
            } else {
                Ok(verified(SnsMessageType::Notification, &bounce()))
            }
        });
        let progress = Arc::new(Recorded::default());

        let report = service(verifier, archive)
            .run(&ReprocessFilter::default(), progress.clone())
            .await
            .unwrap();

        assert_eq!(*progress.0.lock().unwrap(), ["a", "b"]);
        assert_eq!(report.skipped(), 1);
        let later: Vec<&str> = report
            .retry_later()
            .map(|l| l.sns_message_id.as_str())
            .collect();
        assert_eq!(later, ["a"]);
        assert_eq!(report.lines[1].after, Some(MessageOutcome::Processed));
    }

    #[tokio::test]
    async fn an_sns_message_id_that_names_no_candidate_is_an_error() {
        let mut archive = MockMessageArchive::new();
        archive
            .expect_reprocess_candidates()
            .returning(|_, _, _| Ok(Vec::new()));
        let filter = ReprocessFilter {
            sns_message_id: Some("nope".into()),
            ..ReprocessFilter::default()
        };

        let error = service(MockMessageVerifier::new(), archive)
            .run(&filter, Arc::new(Recorded::default()))
            .await
            .unwrap_err();

        assert_eq!(error, ReprocessError::UnknownMessage("nope".into()));
        assert!(error.to_string().contains("`nope`"));
    }
}
