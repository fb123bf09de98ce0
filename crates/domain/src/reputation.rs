//! Sending reputation: bounce and complaint rates as Amazon SES counts them, per configuration
//! set, from hourly counts kept at ingest.
//!
//! # What is counted
//!
//! The store keeps, per UTC hour and configuration set (the `ses:configuration-set` mail tag;
//! none for identity notifications), how many recipients were sent to (SES `Send` records,
//! `mail.destination`), delivered, hard-bounced, soft-bounced and complained, how many messages
//! were rejected (`Reject`), how many recipients were delayed (`DeliveryDelay`), and how many
//! opens and clicks arrived. Event counts are taken from the events the store newly inserted, so
//! a duplicate never counts; `Send`, `Reject` and `DeliveryDelay` records are counted once per
//! [`RecordTally::record_key`].
//!
//! # How a rate is computed
//!
//! As the SES developer guide describes its reputation metrics ("Reputation metrics" and
//! "Sending review process FAQs"): the bounce rate is hard-bounced recipients over sent
//! recipients (soft bounces do not count), the complaint rate complained recipients over sent
//! recipients, both over a window of recent days. When no `Send` record was counted in the window
//! (identity notifications only), the denominator is delivered plus bounced (hard and soft)
//! recipients, and [`Denominator`] says so. With sends, a configuration set's window starts at
//! its first hour with a send, so that bounces of sends the window does not hold are not
//! divided by the window's sends. AWS reviews an account at a 5% bounce or a 0.1%
//! complaint rate and may pause it at 10% or 0.5%: the defaults of [`ReputationPolicy`].

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Days, NaiveDate, TimeZone, Utc};
use sha2::{Digest, Sha256};

use crate::ports::{Clock, StoreError};

/// The SES records with no platform event that are counted: what a [`RecordTally`] counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordKind {
    /// `Send`: the recipients in `mail.destination`.
    Send,
    /// `Reject`: one message.
    Reject,
    /// `DeliveryDelay`: the recipients in `deliveryDelay.delayedRecipients`.
    DeliveryDelay,
}

impl RecordKind {
    /// The stored name: `send`, `reject`, `delivery_delay`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Send => "send",
            Self::Reject => "reject",
            Self::DeliveryDelay => "delivery_delay",
        }
    }
}

/// What one SES `Send`, `Reject` or `DeliveryDelay` record adds to the counts, with the key
/// that makes it count once however often it arrives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordTally {
    /// Lowercase hex SHA-256 of `v1`, the kind's name, `mail.messageId` and, for a
    /// `DeliveryDelay`, its `timestamp` (RFC 3339, milliseconds, `Z`), each preceded by its byte
    /// length as an 8-byte big-endian integer (see [`record_key`]). A `Send` counts once per SES
    /// message, a delay once per delay record.
    pub record_key: String,
    pub kind: RecordKind,
    /// When it happened: `mail.timestamp` for `Send` and `Reject`, `deliveryDelay.timestamp`
    /// (else `mail.timestamp`) for `DeliveryDelay`. The hour it is counted in.
    pub at: DateTime<Utc>,
    /// The `ses:configuration-set` mail tag.
    pub configuration_set: Option<String>,
    /// Recipients (`Send`: distinct `mail.destination` addresses; `DeliveryDelay`: delayed
    /// recipients) or 1 (`Reject`).
    pub count: u32,
}

/// Whether `name` can be an SES configuration set name (1 to 64 ASCII letters, digits, `_` and
/// `-`, per the SES API's `ConfigurationSetName`). The tag comes from the message itself: a name
/// that SES could not have written (an address, markup, anything long) is counted as no
/// configuration set, so it never reaches the status page, the API or a metric label.
#[must_use]
pub fn is_configuration_set_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The key of a counted record: see [`RecordTally::record_key`].
#[must_use]
pub fn record_key(kind: RecordKind, ses_message_id: &str, delay_time: Option<&str>) -> String {
    let mut hasher = Sha256::new();
    for part in [
        "v1",
        kind.as_str(),
        ses_message_id,
        delay_time.unwrap_or_default(),
    ] {
        let len = u64::try_from(part.len()).unwrap_or(u64::MAX);
        hasher.update(len.to_be_bytes());
        hasher.update(part.as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// Counts over some period: recipients unless said otherwise.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Recipients of `Send` records.
    pub sent: u64,
    pub delivered: u64,
    pub hard_bounces: u64,
    pub soft_bounces: u64,
    pub complaints: u64,
    /// Rejected messages (`Reject` records).
    pub rejects: u64,
    /// Delayed recipients (`DeliveryDelay` records).
    pub delivery_delays: u64,
    /// Open events.
    pub opens: u64,
    /// Click events.
    pub clicks: u64,
}

impl Counts {
    /// Adds `other` to these counts (saturating).
    pub fn add(&mut self, other: &Self) {
        self.sent = self.sent.saturating_add(other.sent);
        self.delivered = self.delivered.saturating_add(other.delivered);
        self.hard_bounces = self.hard_bounces.saturating_add(other.hard_bounces);
        self.soft_bounces = self.soft_bounces.saturating_add(other.soft_bounces);
        self.complaints = self.complaints.saturating_add(other.complaints);
        self.rejects = self.rejects.saturating_add(other.rejects);
        self.delivery_delays = self.delivery_delays.saturating_add(other.delivery_delays);
        self.opens = self.opens.saturating_add(other.opens);
        self.clicks = self.clicks.saturating_add(other.clicks);
    }

    /// Whether every count is zero.
    #[must_use]
    pub fn is_zero(&self) -> bool {
        *self == Self::default()
    }
}

/// One hour's counts for one configuration set, as the store keeps them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HourlyCounts {
    /// The start of the UTC hour.
    pub hour: DateTime<Utc>,
    /// `None` for messages without a configuration set.
    pub configuration_set: Option<String>,
    pub counts: Counts,
}

/// What a rate is divided by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denominator {
    /// Sent recipients (`Send` records were counted).
    Sends,
    /// Delivered plus bounced recipients (no `Send` record was counted).
    DeliveriesAndBounces,
}

impl Denominator {
    /// `sends` or `deliveries_and_bounces`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sends => "sends",
            Self::DeliveriesAndBounces => "deliveries_and_bounces",
        }
    }
}

/// Where a rate stands against AWS's thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Status {
    /// Below the warning level.
    Ok,
    /// At or above `warning_fraction` of the review threshold.
    Warning,
    /// At or above the review threshold (5% bounces, 0.1% complaints by default).
    Review,
    /// At or above the pause threshold (10% bounces, 0.5% complaints by default).
    PauseRisk,
    /// Fewer recipients than `min_volume` in the denominator: the rate says little.
    InsufficientVolume,
}

impl Status {
    /// `ok`, `warning`, `review`, `pause_risk`, `insufficient_volume`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Warning => "warning",
            Self::Review => "review",
            Self::PauseRisk => "pause_risk",
            Self::InsufficientVolume => "insufficient_volume",
        }
    }
}

/// The two thresholds of one rate, as fractions (0.05 = 5%).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    pub review: f64,
    pub pause: f64,
}

/// How rates are judged: the thresholds, the warning level and the volume a rate needs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReputationPolicy {
    /// Bounce rate thresholds; AWS's are 5% (review) and 10% (pause).
    pub bounce: Thresholds,
    /// Complaint rate thresholds; AWS's are 0.1% (review) and 0.5% (pause).
    pub complaint: Thresholds,
    /// The warning level as a fraction of the review threshold (0.4: a warning at 2% bounces).
    pub warning_fraction: f64,
    /// Below this many recipients in the denominator, the status is
    /// [`Status::InsufficientVolume`].
    pub min_volume: u64,
    /// The window of [`ReputationQueries::reputation`] when none is asked for, in days.
    pub default_window_days: u32,
}

impl Default for ReputationPolicy {
    /// AWS's published thresholds (SES developer guide, "Sending review process FAQs"), a
    /// warning at 40% of them, 200 recipients, a 7-day window.
    fn default() -> Self {
        Self {
            bounce: Thresholds {
                review: 0.05,
                pause: 0.10,
            },
            complaint: Thresholds {
                review: 0.001,
                pause: 0.005,
            },
            warning_fraction: 0.4,
            min_volume: 200,
            default_window_days: 7,
        }
    }
}

/// Relative tolerance of a threshold comparison: a rate within it of a threshold is at the
/// threshold (`0.4 * 0.05` is not exactly `0.02` in binary floating point, but 4 of 200 is a
/// 2% rate).
const TOLERANCE: f64 = 1e-9;

fn at_or_above(rate: f64, threshold: f64) -> bool {
    rate >= threshold * (1.0 - TOLERANCE)
}

/// Counts with their rates and statuses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Assessment {
    pub counts: Counts,
    pub denominator: Denominator,
    /// The denominator's value: `sent`, or delivered plus bounced recipients.
    pub volume: u64,
    /// Hard bounces over `volume`; `None` when `volume` is 0.
    pub bounce_rate: Option<f64>,
    /// Complaints over `volume`; `None` when `volume` is 0.
    pub complaint_rate: Option<f64>,
    pub bounce_status: Status,
    pub complaint_status: Status,
}

impl ReputationPolicy {
    /// The warning level of `thresholds`.
    #[must_use]
    pub fn warning(&self, thresholds: Thresholds) -> f64 {
        thresholds.review * self.warning_fraction
    }

    /// The status of `rate` against `thresholds`, given the denominator's `volume`.
    #[must_use]
    pub fn status(&self, rate: Option<f64>, volume: u64, thresholds: Thresholds) -> Status {
        let Some(rate) = rate else {
            return Status::InsufficientVolume;
        };
        if volume < self.min_volume {
            Status::InsufficientVolume
        } else if at_or_above(rate, thresholds.pause) {
            Status::PauseRisk
        } else if at_or_above(rate, thresholds.review) {
            Status::Review
        } else if at_or_above(rate, self.warning(thresholds)) {
            Status::Warning
        } else {
            Status::Ok
        }
    }

    /// The rates and statuses of `counts`.
    #[must_use]
    pub fn assess(&self, counts: Counts) -> Assessment {
        let (denominator, volume) = if counts.sent > 0 {
            (Denominator::Sends, counts.sent)
        } else {
            (
                Denominator::DeliveriesAndBounces,
                counts
                    .delivered
                    .saturating_add(counts.hard_bounces)
                    .saturating_add(counts.soft_bounces),
            )
        };
        let rate = |numerator: u64| {
            #[allow(clippy::cast_precision_loss)] // counts far below 2^52
            (volume > 0).then(|| numerator as f64 / volume as f64)
        };
        let bounce_rate = rate(counts.hard_bounces);
        let complaint_rate = rate(counts.complaints);
        Assessment {
            counts,
            denominator,
            volume,
            bounce_rate,
            complaint_rate,
            bounce_status: self.status(bounce_rate, volume, self.bounce),
            complaint_status: self.status(complaint_rate, volume, self.complaint),
        }
    }
}

/// The reputation over a window: the whole (or one configuration set's) and per configuration
/// set.
#[derive(Debug, Clone, PartialEq)]
pub struct Reputation {
    pub window_days: u32,
    /// The configuration set asked for; `None`: all of them.
    pub configuration_set: Option<String>,
    /// The first instant of the window (midnight UTC, `window_days - 1` days before today).
    pub from: DateTime<Utc>,
    /// The end of the window (now).
    pub to: DateTime<Utc>,
    pub total: Assessment,
    /// One item per configuration set with counts in the window, by name (`None`, messages
    /// without one, first).
    pub by_configuration_set: Vec<(Option<String>, Assessment)>,
}

/// One UTC day's counts and rates.
#[derive(Debug, Clone, PartialEq)]
pub struct DayAssessment {
    pub day: NaiveDate,
    pub assessment: Assessment,
}

/// Per-day counts and rates, oldest first, every day of the range listed (zeros included).
#[derive(Debug, Clone, PartialEq)]
pub struct DailyReputation {
    pub days: u32,
    pub configuration_set: Option<String>,
    pub items: Vec<DayAssessment>,
}

/// Per-hour counts of every configuration set together, oldest first, every hour listed.
#[derive(Debug, Clone, PartialEq)]
pub struct HourlyActivity {
    /// (start of the UTC hour, counts).
    pub hours: Vec<(DateTime<Utc>, Counts)>,
}

/// The longest window of [`ReputationQueries::reputation`], in days.
pub const MAX_WINDOW_DAYS: u32 = 90;
/// The most days [`ReputationQueries::daily`] lists.
pub const MAX_DAILY_DAYS: u32 = 366;

/// Inbound port: the reputation API.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait ReputationQueries: Send + Sync {
    /// The reputation over the last `window_days` UTC days, today included (the policy's
    /// default window when `None`), of `configuration_set` or of every one.
    ///
    /// # Errors
    /// [`StoreError`] when the counts cannot be read.
    async fn reputation(
        &self,
        window_days: Option<u32>,
        configuration_set: Option<String>,
    ) -> Result<Reputation, StoreError>;

    /// Counts and rates of each of the last `days` UTC days, today included.
    ///
    /// # Errors
    /// [`StoreError`] when the counts cannot be read.
    async fn daily(
        &self,
        days: u32,
        configuration_set: Option<String>,
    ) -> Result<DailyReputation, StoreError>;

    /// Counts of each of the last `hours` hours, the current one included, every configuration
    /// set together.
    ///
    /// # Errors
    /// [`StoreError`] when the counts cannot be read.
    async fn hourly(&self, hours: u32) -> Result<HourlyActivity, StoreError>;

    /// The policy the statuses are judged by.
    fn policy(&self) -> ReputationPolicy;
}

/// Outbound port: the hourly counts.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait CountStore: Send + Sync {
    /// The counts of every hour in `[from, to)` (hour starts), per configuration set (only
    /// `configuration_set` when given), summed over however the store keeps them (rows, shards,
    /// deltas); hours without counts are left out. In any order.
    ///
    /// # Errors
    /// [`StoreError`] when the counts cannot be read.
    async fn hourly_counts(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        configuration_set: Option<String>,
    ) -> Result<Vec<HourlyCounts>, StoreError>;

    /// Per configuration set (only `configuration_set` when given), the counts of the hours in
    /// `[from, to)`; for a set with a send in that range, only from its first hour with one
    /// (see [`ReputationQueries::reputation`]). Sets without counts are left out. In any order.
    ///
    /// # Errors
    /// [`StoreError`] when the counts cannot be read.
    async fn window_counts(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        configuration_set: Option<String>,
    ) -> Result<Vec<(Option<String>, Counts)>, StoreError>;

    /// Per UTC day, the counts of the hours in `[from, to)` of every configuration set together
    /// (only `configuration_set` when given). Days without counts are left out. In any order.
    ///
    /// # Errors
    /// [`StoreError`] when the counts cannot be read.
    async fn daily_counts(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        configuration_set: Option<String>,
    ) -> Result<Vec<(NaiveDate, Counts)>, StoreError>;

    /// Forgets up to `batch` counted records (the keys that make a `Send`, `Reject` or
    /// `DeliveryDelay` count once) counted at an `at` before `cutoff`; returns how many. Only
    /// safe once no archived body of that age can be processed again.
    ///
    /// # Errors
    /// [`StoreError`] when nothing could be committed.
    async fn purge_counted_records(
        &self,
        cutoff: DateTime<Utc>,
        batch: usize,
    ) -> Result<usize, StoreError>;
}

/// The reputation use case.
pub struct ReputationService {
    store: Arc<dyn CountStore>,
    clock: Arc<dyn Clock>,
    policy: ReputationPolicy,
}

impl std::fmt::Debug for ReputationService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReputationService")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl ReputationService {
    #[must_use]
    pub fn new(
        store: Arc<dyn CountStore>,
        clock: Arc<dyn Clock>,
        policy: ReputationPolicy,
    ) -> Self {
        Self {
            store,
            clock,
            policy,
        }
    }

    /// Midnight UTC `days - 1` days before `now`'s day.
    fn first_day(now: DateTime<Utc>, days: u32) -> NaiveDate {
        now.date_naive()
            .checked_sub_days(Days::new(u64::from(days.max(1) - 1)))
            .unwrap_or(NaiveDate::MIN)
    }
}

fn midnight(day: NaiveDate) -> DateTime<Utc> {
    Utc.from_utc_datetime(&day.and_time(chrono::NaiveTime::MIN))
}

#[async_trait]
impl ReputationQueries for ReputationService {
    async fn reputation(
        &self,
        window_days: Option<u32>,
        configuration_set: Option<String>,
    ) -> Result<Reputation, StoreError> {
        let window_days = window_days
            .unwrap_or(self.policy.default_window_days)
            .clamp(1, MAX_WINDOW_DAYS);
        let now = self.clock.now();
        let from = midnight(Self::first_day(now, window_days));
        // With sends, a set's window starts at its first hour with a send: bounces before it
        // belong to sends the window does not hold, and divided by the window's sends they would
        // read high (right after an upgrade, or after Send publishing is turned on).
        let rows = self
            .store
            .window_counts(from, now, configuration_set.clone())
            .await?;
        let mut sets: BTreeMap<Option<String>, Counts> = BTreeMap::new();
        let mut total = Counts::default();
        for (set, counts) in rows {
            total.add(&counts);
            sets.entry(set).or_default().add(&counts);
        }
        Ok(Reputation {
            window_days,
            configuration_set,
            from,
            to: now,
            total: self.policy.assess(total),
            by_configuration_set: sets
                .into_iter()
                .map(|(set, counts)| (set, self.policy.assess(counts)))
                .collect(),
        })
    }

    async fn daily(
        &self,
        days: u32,
        configuration_set: Option<String>,
    ) -> Result<DailyReputation, StoreError> {
        let days = days.clamp(1, MAX_DAILY_DAYS);
        let now = self.clock.now();
        let first = Self::first_day(now, days);
        let rows = self
            .store
            .daily_counts(midnight(first), now, configuration_set.clone())
            .await?;
        let mut per_day: BTreeMap<NaiveDate, Counts> = BTreeMap::new();
        for (day, counts) in rows {
            per_day.entry(day).or_default().add(&counts);
        }
        let items = first
            .iter_days()
            .take_while(|day| *day <= now.date_naive())
            .map(|day| DayAssessment {
                day,
                assessment: self
                    .policy
                    .assess(per_day.get(&day).copied().unwrap_or_default()),
            })
            .collect();
        Ok(DailyReputation {
            days,
            configuration_set,
            items,
        })
    }

    async fn hourly(&self, hours: u32) -> Result<HourlyActivity, StoreError> {
        let now = self.clock.now();
        let current = now
            .date_naive()
            .and_hms_opt(chrono::Timelike::hour(&now), 0, 0)
            .map_or(now, |t| Utc.from_utc_datetime(&t));
        let first = current - chrono::Duration::hours(i64::from(hours.max(1)) - 1);
        let rows = self.store.hourly_counts(first, now, None).await?;
        let mut per_hour: BTreeMap<DateTime<Utc>, Counts> = BTreeMap::new();
        for row in rows {
            per_hour.entry(row.hour).or_default().add(&row.counts);
        }
        let hours = (0..i64::from(hours.max(1)))
            .map(|i| {
                let hour = first + chrono::Duration::hours(i);
                (hour, per_hour.get(&hour).copied().unwrap_or_default())
            })
            .collect();
        Ok(HourlyActivity { hours })
    }

    fn policy(&self) -> ReputationPolicy {
        self.policy
    }
}

#[cfg(test)]
mod tests;
