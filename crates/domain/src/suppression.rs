//! The suppression list: addresses a sender must not mail any more, and the policy that puts
//! bounced and complaining recipients on it.
//!
//! The policy ([`SuppressionPolicy::decide`]) is a pure function of an address's stored facts,
//! so the store can apply it inside the transaction that stores the events (on both backends,
//! inside group commit), `suppressions rebuild` can apply it to the whole event history, and the
//! rules are tested here without a database. `docs/suppressions.md` states the rules in words.

use chrono::{DateTime, TimeDelta, Utc};

use crate::event::{BounceClass, EventType, PlatformEvent};

mod service;

pub use service::{
    AwsSuppressed, ImportReport, MAX_CHECK, MAX_PAGE, ManualSuppression, PutOutcome,
    SuppressionError, SuppressionPage, SuppressionService,
};

/// The longest address accepted, in bytes (RFC 5321's path limit of 256 octets, less the angle
/// brackets).
pub const MAX_ADDRESS_LEN: usize = 254;

/// Why an address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid email address: {0}")]
pub struct InvalidAddress(pub &'static str);

/// An email address as the suppression list knows it: the form given (trimmed) and the key it
/// is matched by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    shown: String,
    key: String,
}

impl Address {
    /// Parses `raw`, a bare address (`User@Example.COM`, surrounding whitespace ignored).
    ///
    /// # Errors
    /// [`InvalidAddress`] when it is empty, longer than [`MAX_ADDRESS_LEN`], holds whitespace,
    /// control characters, angle brackets or commas, or is not `local@domain` with both parts
    /// present and a domain without empty labels.
    pub fn parse(raw: &str) -> Result<Self, InvalidAddress> {
        let shown = trim(raw);
        if shown.is_empty() {
            return Err(InvalidAddress("the address is empty"));
        }
        if shown.len() > MAX_ADDRESS_LEN {
            return Err(InvalidAddress("the address is longer than 254 bytes"));
        }
        if shown
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | ';'))
        {
            return Err(InvalidAddress(
                "the address holds a space, a control character or one of < > , ;",
            ));
        }
        let Some((local, domain)) = shown.rsplit_once('@') else {
            return Err(InvalidAddress("the address has no @"));
        };
        let quoted = local.len() >= 2 && local.starts_with('"') && local.ends_with('"');
        if local.contains('@') && !quoted {
            return Err(InvalidAddress("the address has more than one @"));
        }
        if local.is_empty() || local.len() > 64 {
            return Err(InvalidAddress(
                "the part before the @ is empty or longer than 64 bytes",
            ));
        }
        if domain.is_empty()
            || domain.contains('@')
            || domain.split('.').any(str::is_empty)
            || domain.starts_with('-')
        {
            return Err(InvalidAddress(
                "the domain after the @ is not a domain name",
            ));
        }
        Ok(Self {
            key: address_key(shown),
            shown: shown.to_owned(),
        })
    }

    /// The address as given, trimmed: `User@Example.COM`.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.shown
    }

    /// The key it is matched by: see [`address_key`].
    #[must_use]
    pub fn key(&self) -> &str {
        &self.key
    }
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

fn trim(raw: &str) -> &str {
    raw.trim_matches(|c: char| c.is_ascii_whitespace())
}

/// The key an address is matched by: ASCII whitespace trimmed, ASCII letters lower-cased
/// (`" User@Example.COM "` -> `user@example.com`). Letters outside ASCII are compared as they
/// are, so that the key computed here and the one the database migration computed in SQL for
/// stored events (`lower()` on ASCII) are always equal.
#[must_use]
pub fn address_key(raw: &str) -> String {
    trim(raw).to_ascii_lowercase()
}

/// Why an address is on the list. The names are part of the API and the data contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SuppressionReason {
    /// An SES `Permanent` bounce.
    HardBounce,
    /// A complaint whose feedback type is not `not-spam`.
    Complaint,
    /// Repeated soft bounces (see [`SuppressionPolicy`]).
    SoftBounce,
    /// Put by an API token.
    Manual,
    /// Imported from the SES account-level suppression list.
    AwsImport,
}

impl SuppressionReason {
    pub const ALL: [Self; 5] = [
        Self::HardBounce,
        Self::Complaint,
        Self::SoftBounce,
        Self::Manual,
        Self::AwsImport,
    ];

    /// The stored name: `hard_bounce`, `complaint`, `soft_bounce`, `manual`, `aws_import`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HardBounce => "hard_bounce",
            Self::Complaint => "complaint",
            Self::SoftBounce => "soft_bounce",
            Self::Manual => "manual",
            Self::AwsImport => "aws_import",
        }
    }

    /// Parses a stored name.
    #[must_use]
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == value)
    }
}

/// One entry of the suppression list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuppressionEntry {
    /// The address as first seen by the list.
    pub address: String,
    pub reason: SuppressionReason,
    /// When this entry was written.
    pub created_at: DateTime<Utc>,
    /// When it stops applying; `None` for good.
    pub expires_at: Option<DateTime<Utc>>,
    /// SES `mail.messageId` of the message whose event caused it, for policy entries.
    pub ses_message_id: Option<String>,
    /// `event_key` of the event that caused it, for policy entries.
    pub event_key: Option<String>,
    pub note: Option<String>,
}

impl SuppressionEntry {
    /// Whether the entry applies at `now` (an expired entry reads as absent).
    #[must_use]
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_none_or(|at| at > now)
    }
}

/// Who changed the list: the policy, or an API token (by name), or a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    Policy,
    Token(String),
    /// A command run by the operator (`suppressions import`, `suppressions rebuild`).
    Command(&'static str),
}

impl Actor {
    /// As stored in the history's `by` column: `policy`, `token:NAME`, `command:import`.
    #[must_use]
    pub fn label(&self) -> String {
        match self {
            Self::Policy => "policy".to_owned(),
            Self::Token(name) => format!("token:{name}"),
            Self::Command(name) => format!("command:{name}"),
        }
    }
}

/// One line of an address's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryItem {
    pub action: HistoryAction,
    pub reason: SuppressionReason,
    /// [`Actor::label`].
    pub by: String,
    pub at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub ses_message_id: Option<String>,
    pub event_key: Option<String>,
    pub note: Option<String>,
}

/// What happened to an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HistoryAction {
    /// Written (new, or replacing an entry).
    Added,
    Removed,
}

impl HistoryAction {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "added",
            Self::Removed => "removed",
        }
    }

    /// Parses a stored name.
    #[must_use]
    pub fn parse(value: &str) -> Option<Self> {
        [Self::Added, Self::Removed]
            .into_iter()
            .find(|a| a.as_str() == value)
    }
}

/// A newly stored event that may suppress its recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trigger {
    pub kind: TriggerKind,
    pub event_key: String,
    pub ses_message_id: String,
    pub event_time: DateTime<Utc>,
}

/// What kind of event a [`Trigger`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TriggerKind {
    HardBounce,
    SoftBounce,
    /// A complaint whose feedback type is not `not-spam`.
    Complaint,
}

impl TriggerKind {
    /// The reason of the entry a trigger of this kind leads to.
    #[must_use]
    pub fn reason(self) -> SuppressionReason {
        match self {
            Self::HardBounce => SuppressionReason::HardBounce,
            Self::SoftBounce => SuppressionReason::SoftBounce,
            Self::Complaint => SuppressionReason::Complaint,
        }
    }
}

/// A stored soft bounce of an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoftBounce {
    pub event_key: String,
    pub ses_message_id: String,
    pub event_time: DateTime<Utc>,
}

/// What the store knows of one address when the policy decides.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressFacts {
    /// Event time of its latest stored `email_delivered`.
    pub last_delivered: Option<DateTime<Utc>>,
    /// Its stored soft bounces, at least those within the window of every soft trigger
    /// ([`SuppressionPolicy::soft_bounce_span`]); the triggers' own may be included or not.
    pub soft_bounces: Vec<SoftBounce>,
    /// Its entry, expired or not.
    pub entry: Option<SuppressionEntry>,
}

/// The entry the policy writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub reason: SuppressionReason,
    pub expires_at: Option<DateTime<Utc>>,
    pub ses_message_id: String,
    pub event_key: String,
}

impl Decision {
    /// The entry this decision writes for `address` (the form first seen: the existing entry's,
    /// when there is one) at `now`.
    #[must_use]
    pub fn into_entry(
        self,
        address: &str,
        existing: Option<&SuppressionEntry>,
        now: DateTime<Utc>,
    ) -> SuppressionEntry {
        SuppressionEntry {
            address: existing.map_or_else(|| address.to_owned(), |e| e.address.clone()),
            reason: self.reason,
            created_at: now,
            expires_at: self.expires_at,
            ses_message_id: Some(self.ses_message_id),
            event_key: Some(self.event_key),
            note: None,
        }
    }
}

/// The suppression policy and its settings (`suppression.*`).
///
/// - An SES `Permanent` bounce suppresses its recipient for good (`hard_bounce`).
/// - A complaint suppresses each complained recipient for good (`complaint`), unless its
///   `complaintFeedbackType` is `not-spam`.
/// - Soft bounces (`Transient`, `Undetermined`) suppress an address (`soft_bounce`) once it has
///   [`soft_bounce_limit`](Self::soft_bounce_limit) of them from distinct SES messages, each
///   later (by event time) than its latest `email_delivered`,
///   all within [`soft_bounce_window`](Self::soft_bounce_window) of the newest of them; the entry
///   expires [`soft_bounce_suppression`](Self::soft_bounce_suppression) after that newest one.
/// - Only newly stored events trigger a decision: a duplicate (an SNS retry, the other SES
///   format, a second topic) never does, so an entry removed by hand does not come back with an
///   old bounce delivered again, while a new bounce (or soft bounce completing the limit) brings
///   it back.
/// - An active entry that is permanent is never replaced by the policy; a temporary one is
///   replaced by a permanent decision or by a soft-bounce decision that expires later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SuppressionPolicy {
    /// `suppression.enabled`: whether new events change the list at all.
    pub enabled: bool,
    /// `suppression.soft_bounce_limit`: soft bounces from distinct messages that suppress (at
    /// least 1).
    pub soft_bounce_limit: u32,
    /// `suppression.soft_bounce_window_days`: how close together they must be.
    pub soft_bounce_window: TimeDelta,
    /// `suppression.soft_bounce_suppression_days`: how long a soft-bounce entry lasts after the
    /// newest soft bounce.
    pub soft_bounce_suppression: TimeDelta,
}

impl Default for SuppressionPolicy {
    fn default() -> Self {
        Self {
            enabled: true,
            soft_bounce_limit: 3,
            soft_bounce_window: TimeDelta::days(7),
            soft_bounce_suppression: TimeDelta::days(30),
        }
    }
}

/// The value of `complaintFeedbackType` that does not suppress (RFC 5965 `not-spam`).
const NOT_SPAM: &str = "not-spam";

impl SuppressionPolicy {
    /// Whether `event` (just stored) may suppress its recipient, and as what; `None` for
    /// events the policy ignores (deliveries, opens, clicks, `not-spam` complaints, events
    /// without a recipient), and for every event when the policy is disabled.
    #[must_use]
    pub fn trigger(&self, event: &PlatformEvent) -> Option<Trigger> {
        if !self.enabled {
            return None;
        }
        event.recipient.as_ref()?;
        let kind = match (event.event_type, event.bounce_type) {
            (EventType::Bounce, Some(BounceClass::Hard)) => TriggerKind::HardBounce,
            (EventType::Bounce, _) => TriggerKind::SoftBounce,
            (EventType::SpamReport, _) => {
                let not_spam = event
                    .complaint_feedback_type
                    .as_deref()
                    .is_some_and(|t| t.trim().eq_ignore_ascii_case(NOT_SPAM));
                if not_spam {
                    return None;
                }
                TriggerKind::Complaint
            }
            _ => return None,
        };
        Some(Trigger {
            kind,
            event_key: event.event_key.clone(),
            ses_message_id: event.ses_message_id.clone(),
            event_time: event.event_time,
        })
    }

    /// The event times whose soft bounces [`decide`](Self::decide) needs to see for
    /// `triggers`: from the earliest soft trigger less the window to the latest plus the
    /// window. `None` when no trigger is a soft bounce.
    #[must_use]
    pub fn soft_bounce_span(&self, triggers: &[Trigger]) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let times = triggers
            .iter()
            .filter(|t| t.kind == TriggerKind::SoftBounce)
            .map(|t| t.event_time);
        let earliest = times.clone().min()?;
        let latest = times.max()?;
        Some((
            earliest - self.soft_bounce_window,
            latest + self.soft_bounce_window,
        ))
    }

    /// The entry to write for one address, given the events of it just stored (`triggers`)
    /// and what the store knows of it (`facts`), at `now`; `None` when the list stays as it is.
    #[must_use]
    pub fn decide(
        &self,
        triggers: &[Trigger],
        facts: &AddressFacts,
        now: DateTime<Utc>,
    ) -> Option<Decision> {
        let triggers: Vec<&Trigger> = triggers.iter().collect();
        let permanent = triggers
            .iter()
            .filter(|t| t.kind != TriggerKind::SoftBounce)
            .min_by(|a, b| (a.event_time, &a.event_key).cmp(&(b.event_time, &b.event_key)))
            .map(|t| Decision {
                reason: t.kind.reason(),
                expires_at: None,
                ses_message_id: t.ses_message_id.clone(),
                event_key: t.event_key.clone(),
            });
        let candidate = permanent.or_else(|| self.soft_bounce_decision(&triggers, facts))?;
        if candidate.expires_at.is_some_and(|at| at <= now) {
            // It would read as absent already (old events processed late).
            return None;
        }
        match facts.entry.as_ref().filter(|e| e.is_active(now)) {
            None => Some(candidate),
            Some(SuppressionEntry {
                expires_at: None, ..
            }) => None,
            Some(SuppressionEntry {
                expires_at: Some(current),
                ..
            }) => match candidate.expires_at {
                None => Some(candidate),
                Some(new) if new > *current => Some(candidate),
                Some(_) => None,
            },
        }
    }

    /// The soft-bounce entry that the newly stored soft bounces among `triggers` complete, if
    /// any: of the windows that end at a soft bounce, hold at least the limit of distinct SES
    /// messages and include a trigger, the one that ends last.
    fn soft_bounce_decision(
        &self,
        triggers: &[&Trigger],
        facts: &AddressFacts,
    ) -> Option<Decision> {
        let new: Vec<&Trigger> = triggers
            .iter()
            .copied()
            .filter(|t| t.kind == TriggerKind::SoftBounce)
            .collect();
        if new.is_empty() {
            return None;
        }
        let reset = facts.last_delivered;
        let mut bounces: Vec<SoftBounce> = facts
            .soft_bounces
            .iter()
            .cloned()
            .chain(new.iter().map(|t| SoftBounce {
                event_key: t.event_key.clone(),
                ses_message_id: t.ses_message_id.clone(),
                event_time: t.event_time,
            }))
            .filter(|b| reset.is_none_or(|r| b.event_time > r))
            .collect();
        bounces.sort_by(|a, b| (a.event_time, &a.event_key).cmp(&(b.event_time, &b.event_key)));
        bounces.dedup_by(|a, b| a.event_key == b.event_key);
        let limit = usize::try_from(self.soft_bounce_limit.max(1)).unwrap_or(usize::MAX);
        let is_new = |key: &str| new.iter().any(|t| t.event_key == key);
        let mut best: Option<&SoftBounce> = None;
        for (end, newest) in bounces.iter().enumerate() {
            let window: Vec<&SoftBounce> = bounces[..=end]
                .iter()
                .filter(|b| newest.event_time - b.event_time <= self.soft_bounce_window)
                .collect();
            let mut messages: Vec<&str> =
                window.iter().map(|b| b.ses_message_id.as_str()).collect();
            messages.sort_unstable();
            messages.dedup();
            if messages.len() >= limit && window.iter().any(|b| is_new(&b.event_key)) {
                best = Some(newest);
            }
        }
        best.map(|newest| Decision {
            reason: SuppressionReason::SoftBounce,
            expires_at: Some(newest.event_time + self.soft_bounce_suppression),
            ses_message_id: newest.ses_message_id.clone(),
            event_key: newest.event_key.clone(),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
