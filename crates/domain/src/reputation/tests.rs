#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use std::collections::BTreeMap;

use chrono::{NaiveDate, TimeZone, Utc};

use super::*;
use crate::mapping::map_message;
use crate::ports::MockClock;

fn policy() -> ReputationPolicy {
    ReputationPolicy::default()
}

fn counts(sent: u64, hard: u64, complaints: u64) -> Counts {
    Counts {
        sent,
        hard_bounces: hard,
        complaints,
        ..Counts::default()
    }
}

#[test]
fn bounce_status_changes_exactly_at_each_threshold() {
    let p = policy();
    // 1000 sent: warning at 20 (2%), review at 50 (5%), pause at 100 (10%).
    let status = |hard| p.assess(counts(1000, hard, 0)).bounce_status;
    assert_eq!(status(0), Status::Ok);
    assert_eq!(status(19), Status::Ok);
    assert_eq!(status(20), Status::Warning);
    assert_eq!(status(49), Status::Warning);
    assert_eq!(status(50), Status::Review);
    assert_eq!(status(99), Status::Review);
    assert_eq!(status(100), Status::PauseRisk);
    assert_eq!(status(1000), Status::PauseRisk);
    // 4 of 200 is 2% although 0.4 * 0.05 is not exactly 0.02 in binary.
    assert_eq!(p.assess(counts(200, 4, 0)).bounce_status, Status::Warning);
    assert_eq!(p.assess(counts(200, 3, 0)).bounce_status, Status::Ok);
}

#[test]
fn complaint_status_changes_exactly_at_each_threshold() {
    let p = policy();
    // 10 000 sent: warning at 4 (0.04%), review at 10 (0.1%), pause at 50 (0.5%).
    let status = |c| p.assess(counts(10_000, 0, c)).complaint_status;
    assert_eq!(status(3), Status::Ok);
    assert_eq!(status(4), Status::Warning);
    assert_eq!(status(9), Status::Warning);
    assert_eq!(status(10), Status::Review);
    assert_eq!(status(49), Status::Review);
    assert_eq!(status(50), Status::PauseRisk);
}

#[test]
fn rates_are_fractions_of_the_sends_and_soft_bounces_do_not_count() {
    let a = policy().assess(Counts {
        sent: 400,
        hard_bounces: 24,
        soft_bounces: 100,
        complaints: 2,
        delivered: 270,
        ..Counts::default()
    });
    assert_eq!(a.denominator, Denominator::Sends);
    assert_eq!(a.volume, 400);
    assert_eq!(a.bounce_rate, Some(0.06));
    assert_eq!(a.complaint_rate, Some(0.005));
    assert_eq!(a.bounce_status, Status::Review);
    assert_eq!(a.complaint_status, Status::PauseRisk);
}

#[test]
fn without_sends_the_denominator_is_deliveries_and_bounces() {
    let a = policy().assess(Counts {
        delivered: 180,
        hard_bounces: 10,
        soft_bounces: 10,
        ..Counts::default()
    });
    assert_eq!(a.denominator, Denominator::DeliveriesAndBounces);
    assert_eq!(a.volume, 200);
    assert_eq!(a.bounce_rate, Some(0.05));
    assert_eq!(a.bounce_status, Status::Review);
}

#[test]
fn below_the_minimum_volume_the_status_is_insufficient_volume() {
    let p = policy();
    let a = p.assess(counts(199, 199, 199));
    assert_eq!(a.bounce_status, Status::InsufficientVolume);
    assert_eq!(a.complaint_status, Status::InsufficientVolume);
    assert_eq!(a.bounce_rate, Some(1.0));
    assert_eq!(p.assess(counts(200, 0, 0)).bounce_status, Status::Ok);
    // Nothing at all: no rate.
    let none = p.assess(Counts::default());
    assert_eq!(none.bounce_rate, None);
    assert_eq!(none.bounce_status, Status::InsufficientVolume);
    // Even with no minimum, no denominator means no status.
    let no_minimum = ReputationPolicy { min_volume: 0, ..p };
    assert_eq!(
        no_minimum.assess(Counts::default()).bounce_status,
        Status::InsufficientVolume
    );
}

#[test]
fn thresholds_are_settings() {
    let strict = ReputationPolicy {
        bounce: Thresholds {
            review: 0.02,
            pause: 0.04,
        },
        warning_fraction: 0.5,
        ..policy()
    };
    assert_eq!(
        strict.assess(counts(1000, 10, 0)).bounce_status,
        Status::Warning
    );
    assert_eq!(
        strict.assess(counts(1000, 40, 0)).bounce_status,
        Status::PauseRisk
    );
}

fn send_record(message_id: &str, destination: &str, tags: &str) -> String {
    format!(
        r#"{{"eventType":"Send","mail":{{"timestamp":"2026-11-30T10:15:00.000Z","messageId":"{message_id}","destination":{destination}{tags}}},"send":{{}}}}"#
    )
}

#[test]
fn a_send_counts_its_distinct_recipients_once_per_ses_message() {
    let record = send_record(
        "m-1",
        r#"["A <a@example.com>", "a@EXAMPLE.com", "b@example.com"]"#,
        r#","tags":{"ses:configuration-set":["marketing"]}"#,
    );
    let tally = map_message(&record).tally.unwrap();
    assert_eq!(tally.kind, RecordKind::Send);
    assert_eq!(tally.count, 2);
    assert_eq!(tally.configuration_set.as_deref(), Some("marketing"));
    assert_eq!(
        tally.at,
        Utc.with_ymd_and_hms(2026, 11, 30, 10, 15, 0).unwrap()
    );
    // The same message published twice has the same key; another message another one.
    let again = map_message(&send_record("m-1", r#"["b@example.com"]"#, ""))
        .tally
        .unwrap();
    assert_eq!(again.record_key, tally.record_key);
    let other = map_message(&send_record("m-2", r#"["b@example.com"]"#, ""))
        .tally
        .unwrap();
    assert_ne!(other.record_key, tally.record_key);
    assert_eq!(other.configuration_set, None);
    // A tag SES could not have written is no configuration set.
    for name in ["a@example.com", "<b>", "", &"x".repeat(65)] {
        let tags = format!(r#","tags":{{"ses:configuration-set":["{name}"]}}"#);
        let odd = map_message(&send_record("m-3", r#"["b@example.com"]"#, &tags));
        assert_eq!(odd.tally.unwrap().configuration_set, None, "{name}");
    }
    assert!(is_configuration_set_name("Marketing_EU-2"));
}

#[test]
fn rejects_and_delays_are_tallied_and_other_records_are_not() {
    let reject = r#"{"eventType":"Reject","mail":{"timestamp":"2026-11-30T10:15:00Z","messageId":"m-3","destination":["a@example.com"]},"reject":{"reason":"Bad content"}}"#;
    let tally = map_message(reject).tally.unwrap();
    assert_eq!((tally.kind, tally.count), (RecordKind::Reject, 1));
    let delay = |at: &str| {
        format!(
            r#"{{"eventType":"DeliveryDelay","mail":{{"timestamp":"2026-11-30T10:15:00Z","messageId":"m-4"}},"deliveryDelay":{{"timestamp":"{at}","delayType":"MailboxFull","delayedRecipients":[{{"emailAddress":"a@example.com"}},{{"emailAddress":"b@example.com"}}]}}}}"#
        )
    };
    let first = map_message(&delay("2026-11-30T11:00:00.000Z"))
        .tally
        .unwrap();
    let second = map_message(&delay("2026-11-30T12:00:00.000Z"))
        .tally
        .unwrap();
    assert_eq!((first.kind, first.count), (RecordKind::DeliveryDelay, 2));
    assert_eq!(
        first.at,
        Utc.with_ymd_and_hms(2026, 11, 30, 11, 0, 0).unwrap()
    );
    assert_ne!(first.record_key, second.record_key);
    let delivery = r#"{"eventType":"Delivery","mail":{"timestamp":"2026-11-30T10:15:00Z","messageId":"m-5","destination":["a@example.com"]},"delivery":{"timestamp":"2026-11-30T10:16:00Z","recipients":["a@example.com"]}}"#;
    assert_eq!(map_message(delivery).tally, None);
    // A Send without a message id cannot be counted once: it is not counted.
    let no_id = r#"{"eventType":"Send","mail":{"timestamp":"2026-11-30T10:15:00Z","destination":["a@example.com"]},"send":{}}"#;
    assert_eq!(map_message(no_id).tally, None);
}

struct Rows(Vec<HourlyCounts>);

#[async_trait::async_trait]
impl CountStore for Rows {
    async fn hourly_counts(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        configuration_set: Option<String>,
    ) -> Result<Vec<HourlyCounts>, StoreError> {
        Ok(self
            .0
            .iter()
            .filter(|r| r.hour >= from && r.hour < to)
            .filter(|r| {
                configuration_set
                    .as_ref()
                    .is_none_or(|s| r.configuration_set.as_deref().unwrap_or("") == s)
            })
            .cloned()
            .collect())
    }

    async fn window_counts(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        configuration_set: Option<String>,
    ) -> Result<Vec<(Option<String>, Counts)>, StoreError> {
        // The store's rule, written out: from each set's first hour with a send.
        let rows = self.hourly_counts(from, to, configuration_set).await?;
        let mut sets: BTreeMap<Option<String>, Counts> = BTreeMap::new();
        for row in &rows {
            let first = rows
                .iter()
                .filter(|r| r.configuration_set == row.configuration_set && r.counts.sent > 0)
                .map(|r| r.hour)
                .min();
            if first.is_none_or(|first| row.hour >= first) {
                sets.entry(row.configuration_set.clone())
                    .or_default()
                    .add(&row.counts);
            }
        }
        Ok(sets.into_iter().collect())
    }

    async fn daily_counts(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        configuration_set: Option<String>,
    ) -> Result<Vec<(NaiveDate, Counts)>, StoreError> {
        let mut days: BTreeMap<NaiveDate, Counts> = BTreeMap::new();
        for row in self.hourly_counts(from, to, configuration_set).await? {
            days.entry(row.hour.date_naive())
                .or_default()
                .add(&row.counts);
        }
        Ok(days.into_iter().collect())
    }

    async fn purge_counted_records(
        &self,
        _cutoff: DateTime<Utc>,
        _batch: usize,
    ) -> Result<usize, StoreError> {
        Ok(0)
    }
}

fn service(rows: Vec<HourlyCounts>) -> ReputationService {
    let mut clock = MockClock::new();
    clock
        .expect_now()
        .returning(|| Utc.with_ymd_and_hms(2026, 11, 30, 15, 30, 0).unwrap());
    ReputationService::new(Arc::new(Rows(rows)), Arc::new(clock), policy())
}

fn row(day: u32, hour: u32, set: Option<&str>, c: Counts) -> HourlyCounts {
    HourlyCounts {
        hour: Utc.with_ymd_and_hms(2026, 11, day, hour, 0, 0).unwrap(),
        configuration_set: set.map(str::to_owned),
        counts: c,
    }
}

#[tokio::test]
async fn the_window_counts_whole_utc_days_up_to_now_per_configuration_set() {
    let s = service(vec![
        row(23, 23, Some("tx"), counts(1000, 1000, 0)), // 8 days ago: outside 7 days
        row(24, 0, Some("tx"), counts(300, 6, 0)),
        row(30, 15, Some("tx"), counts(100, 4, 1)),
        row(30, 15, None, counts(50, 0, 0)),
    ]);
    let r = s.reputation(None, None).await.unwrap();
    assert_eq!(r.window_days, 7);
    assert_eq!(r.from, Utc.with_ymd_and_hms(2026, 11, 24, 0, 0, 0).unwrap());
    assert_eq!(r.total.counts.sent, 450);
    assert_eq!(r.total.counts.hard_bounces, 10);
    assert_eq!(r.by_configuration_set.len(), 2);
    assert_eq!(r.by_configuration_set[0].0, None);
    assert_eq!(r.by_configuration_set[1].0.as_deref(), Some("tx"));
    assert_eq!(r.by_configuration_set[1].1.counts.sent, 400);
    assert_eq!(r.by_configuration_set[1].1.bounce_rate, Some(0.025));
    let eight = s.reputation(Some(8), Some("tx".into())).await.unwrap();
    assert_eq!(eight.total.counts.sent, 1400);
    assert_eq!(eight.by_configuration_set.len(), 1);
}

#[tokio::test]
async fn daily_lists_every_day_oldest_first_zeros_included() {
    let s = service(vec![
        row(28, 1, Some("tx"), counts(100, 1, 0)),
        row(28, 20, None, counts(100, 3, 0)),
        row(30, 0, None, counts(10, 0, 0)),
    ]);
    let d = s.daily(5, None).await.unwrap();
    let days: Vec<NaiveDate> = d.items.iter().map(|i| i.day).collect();
    assert_eq!(days.len(), 5);
    assert_eq!(days[0], NaiveDate::from_ymd_opt(2026, 11, 26).unwrap());
    assert_eq!(days[4], NaiveDate::from_ymd_opt(2026, 11, 30).unwrap());
    assert_eq!(d.items[2].assessment.counts.sent, 200);
    assert_eq!(d.items[2].assessment.bounce_rate, Some(0.02));
    assert_eq!(d.items[3].assessment.bounce_rate, None);
    let hourly = s.hourly(48).await.unwrap();
    assert_eq!(hourly.hours.len(), 48);
    assert_eq!(
        hourly.hours[47].0,
        Utc.with_ymd_and_hms(2026, 11, 30, 15, 0, 0).unwrap()
    );
    assert_eq!(
        hourly.hours[0].0,
        Utc.with_ymd_and_hms(2026, 11, 28, 16, 0, 0).unwrap()
    );
    assert_eq!(hourly.hours[47 - 15].1.sent, 10);
}

#[tokio::test]
async fn with_sends_a_window_starts_at_its_first_hour_with_a_send() {
    // Bounces of earlier sends (before Send publishing began, or before an upgrade) in the
    // first hours: not divided by the later sends.
    let s = service(vec![
        row(27, 8, Some("tx"), counts(0, 50, 0)),
        row(29, 9, Some("tx"), counts(1000, 10, 0)),
        row(30, 9, Some("tx"), counts(0, 5, 0)),
        row(28, 1, None, counts(0, 3, 0)),
        row(
            28,
            2,
            None,
            Counts {
                delivered: 300,
                ..Counts::default()
            },
        ),
    ]);
    let r = s.reputation(None, None).await.unwrap();
    let tx = &r.by_configuration_set[1].1;
    assert_eq!(tx.counts.hard_bounces, 15);
    assert_eq!(tx.bounce_rate, Some(0.015));
    // Without sends, nothing is left out.
    let none = &r.by_configuration_set[0].1;
    assert_eq!(none.counts.hard_bounces, 3);
    assert_eq!(none.volume, 303);
    assert_eq!(r.total.counts.hard_bounces, 18);
}
