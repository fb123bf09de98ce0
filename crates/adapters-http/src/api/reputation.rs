//! `GET /api/v1/reputation` and `GET /api/v1/reputation/daily`: bounce and complaint rates as
//! SES counts them (see `domain::reputation` and `docs/reputation.md`).

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::NaiveDate;
use domain::reputation::{
    Assessment, DailyReputation, Denominator, MAX_DAILY_DAYS, MAX_WINDOW_DAYS, Reputation,
    ReputationPolicy, Status,
};
use domain::token::Scope;
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use super::{ApiPorts, V1Error, authorize, only_parameters, rfc3339};
use crate::error::ErrorBody;

/// What a rate is divided by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DenominatorDto {
    /// Sent recipients (SES `Send` records).
    Sends,
    /// Delivered plus bounced recipients (no `Send` record was counted).
    DeliveriesAndBounces,
}

impl From<Denominator> for DenominatorDto {
    fn from(d: Denominator) -> Self {
        match d {
            Denominator::Sends => Self::Sends,
            Denominator::DeliveriesAndBounces => Self::DeliveriesAndBounces,
        }
    }
}

/// Where a rate stands against the thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StatusDto {
    Ok,
    Warning,
    Review,
    PauseRisk,
    InsufficientVolume,
}

impl From<Status> for StatusDto {
    fn from(s: Status) -> Self {
        match s {
            Status::Ok => Self::Ok,
            Status::Warning => Self::Warning,
            Status::Review => Self::Review,
            Status::PauseRisk => Self::PauseRisk,
            Status::InsufficientVolume => Self::InsufficientVolume,
        }
    }
}

/// Counts (recipients unless said otherwise) and the rates and statuses they give.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AssessmentDto {
    /// What the rates are divided by.
    pub denominator: DenominatorDto,
    /// The denominator's value: `sent`, or `delivered + hardBounces + softBounces`.
    pub volume: u64,
    /// Recipients of SES `Send` records.
    pub sent: u64,
    pub delivered: u64,
    pub hard_bounces: u64,
    /// Reported, but not part of the bounce rate (as SES counts it).
    pub soft_bounces: u64,
    pub complaints: u64,
    /// Rejected messages (SES `Reject` records).
    pub rejects: u64,
    /// Delayed recipients (SES `DeliveryDelay` records).
    pub delivery_delays: u64,
    /// Open events.
    pub opens: u64,
    /// Click events.
    pub clicks: u64,
    /// `hardBounces / volume` as a fraction (0.05 = 5%); `null` when `volume` is 0.
    pub bounce_rate: Option<f64>,
    /// `complaints / volume` as a fraction (0.001 = 0.1%); `null` when `volume` is 0.
    pub complaint_rate: Option<f64>,
    pub bounce_status: StatusDto,
    pub complaint_status: StatusDto,
}

impl From<&Assessment> for AssessmentDto {
    fn from(a: &Assessment) -> Self {
        Self {
            denominator: a.denominator.into(),
            volume: a.volume,
            sent: a.counts.sent,
            delivered: a.counts.delivered,
            hard_bounces: a.counts.hard_bounces,
            soft_bounces: a.counts.soft_bounces,
            complaints: a.counts.complaints,
            rejects: a.counts.rejects,
            delivery_delays: a.counts.delivery_delays,
            opens: a.counts.opens,
            clicks: a.counts.clicks,
            bounce_rate: a.bounce_rate,
            complaint_rate: a.complaint_rate,
            bounce_status: a.bounce_status.into(),
            complaint_status: a.complaint_status.into(),
        }
    }
}

/// One configuration set's counts and rates over the window.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigurationSetReputationDto {
    /// The SES configuration set; `null` for messages sent without one (and identity
    /// notifications, which carry no configuration set).
    pub configuration_set: Option<String>,
    #[serde(flatten)]
    pub assessment: AssessmentDto,
}

/// The thresholds of one rate, as fractions.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ThresholdsDto {
    /// `reputation.warning_fraction` of `review`.
    pub warning: f64,
    pub review: f64,
    pub pause: f64,
}

/// The thresholds the statuses are judged by (the `reputation.*` settings).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyDto {
    pub bounce: ThresholdsDto,
    pub complaint: ThresholdsDto,
    /// Below this `volume` the status is `insufficient_volume`.
    pub min_volume: u64,
}

/// `value` to 12 significant digits: `0.4 * 0.05` is `0.020000000000000004` in binary, and a
/// client reading the thresholds should see `0.02`.
fn tidy(value: f64) -> f64 {
    if value == 0.0 || !value.is_finite() {
        return value;
    }
    #[allow(clippy::cast_possible_truncation)] // a small exponent
    let digits = 11 - value.abs().log10().floor() as i32;
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}

impl From<&ReputationPolicy> for PolicyDto {
    fn from(p: &ReputationPolicy) -> Self {
        Self {
            bounce: ThresholdsDto {
                warning: tidy(p.warning(p.bounce)),
                review: p.bounce.review,
                pause: p.bounce.pause,
            },
            complaint: ThresholdsDto {
                warning: tidy(p.warning(p.complaint)),
                review: p.complaint.review,
                pause: p.complaint.pause,
            },
            min_volume: p.min_volume,
        }
    }
}

/// The reputation over a window of days.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReputationDto {
    /// UTC days counted, today included.
    pub window_days: u32,
    /// The configuration set asked for; `null`: every message.
    pub configuration_set: Option<String>,
    /// The start of the window: midnight UTC, `windowDays - 1` days ago (RFC 3339).
    pub from: String,
    /// The end of the window: now (RFC 3339).
    pub to: String,
    #[serde(flatten)]
    pub total: AssessmentDto,
    /// Per configuration set, by name (`null` first).
    pub by_configuration_set: Vec<ConfigurationSetReputationDto>,
    pub thresholds: PolicyDto,
}

/// One UTC day's counts and rates.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DayDto {
    /// The UTC day, `YYYY-MM-DD`.
    pub day: String,
    #[serde(flatten)]
    pub assessment: AssessmentDto,
}

/// Counts and rates per UTC day, oldest first, every day listed.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DailyReputationDto {
    pub days: u32,
    /// The configuration set asked for; `null`: every message.
    pub configuration_set: Option<String>,
    pub items: Vec<DayDto>,
    pub thresholds: PolicyDto,
}

/// The query of `GET /api/v1/reputation`.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // documents the parameters; the handler reads the query itself
pub(crate) struct ReputationParams {
    /// UTC days counted, today included: 1 to 90 (default `reputation.window_days`, 7).
    #[param(rename = "windowDays", value_type = Option<u32>, minimum = 1, maximum = 90)]
    window_days: Option<String>,
    /// Only this configuration set (empty: every message).
    #[param(rename = "configurationSet")]
    configuration_set: Option<String>,
}

/// The query of `GET /api/v1/reputation/daily`.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // documents the parameters; the handler reads the query itself
pub(crate) struct DailyParams {
    /// UTC days listed, today included: 1 to 366 (default 30).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 366)]
    days: Option<String>,
    /// Only this configuration set (empty: every message).
    #[param(rename = "configurationSet")]
    configuration_set: Option<String>,
}

/// `name` as a whole number from 1 to `max`.
fn whole_days(name: &str, value: &str, max: u32) -> Result<u32, V1Error> {
    value
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|n| (1..=max).contains(n))
        .ok_or_else(|| {
            V1Error::InvalidParameter(format!("{name} must be a whole number from 1 to {max}"))
        })
}

/// The query's `(days parameter, configurationSet)`.
fn read_query(
    req: &HttpRequest,
    days_name: &str,
    max: u32,
) -> Result<(Option<u32>, Option<String>), V1Error> {
    only_parameters(req, &[days_name, "configurationSet"])?;
    let pairs = web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .map_err(|e| V1Error::InvalidParameter(format!("the query string cannot be read: {e}")))?
        .into_inner();
    let mut days = None;
    let mut set = None;
    for (key, value) in pairs {
        if key == days_name {
            days = Some(whole_days(days_name, &value, max)?);
        } else if !value.trim().is_empty() {
            let name = value.trim();
            if name.len() > 256 || name.chars().any(char::is_control) {
                return Err(V1Error::InvalidParameter(
                    "configurationSet must be 1 to 256 bytes without control characters".into(),
                ));
            }
            set = Some(name.to_owned());
        }
    }
    Ok((days, set))
}

fn reputation_dto(r: &Reputation, policy: &ReputationPolicy) -> ReputationDto {
    ReputationDto {
        window_days: r.window_days,
        configuration_set: r.configuration_set.clone(),
        from: rfc3339(r.from),
        to: rfc3339(r.to),
        total: (&r.total).into(),
        by_configuration_set: r
            .by_configuration_set
            .iter()
            .map(|(set, a)| ConfigurationSetReputationDto {
                configuration_set: set.clone(),
                assessment: a.into(),
            })
            .collect(),
        thresholds: policy.into(),
    }
}

fn day_text(day: NaiveDate) -> String {
    day.format("%Y-%m-%d").to_string()
}

fn daily_dto(d: &DailyReputation, policy: &ReputationPolicy) -> DailyReputationDto {
    DailyReputationDto {
        days: d.days,
        configuration_set: d.configuration_set.clone(),
        items: d
            .items
            .iter()
            .map(|item| DayDto {
                day: day_text(item.day),
                assessment: (&item.assessment).into(),
            })
            .collect(),
        thresholds: policy.into(),
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/reputation",
    tag = "reputation",
    operation_id = "reputation",
    summary = "Bounce and complaint rates over recent days, as SES counts them, per configuration set",
    description = "`bounceRate` is hard-bounced recipients over sent recipients (SES `Send` records), `complaintRate` complained recipients over sent recipients, over the last `windowDays` UTC days (today included). Soft bounces are reported but do not count. When no `Send` record was counted (identity notifications only), the denominator is delivered plus bounced recipients, and `denominator` says so. Statuses: `ok`, `warning` (at or above `reputation.warning_fraction` of the review threshold), `review` (5% / 0.1% by default), `pause_risk` (10% / 0.5%), `insufficient_volume` (fewer than `reputation.min_volume` recipients in the denominator). See docs/reputation.md.",
    security(("bearer" = ["read"])),
    params(ReputationParams),
    responses(
        (status = 200, description = "The rates.", body = ReputationDto),
        (status = 400, description = "`invalid_parameter` (`windowDays` not 1 to 90, a bad `configurationSet`, a parameter given twice), `unknown_parameter`.", body = ErrorBody),
        (status = 401, description = "`unauthorized`.", body = ErrorBody),
        (status = 503, description = "`store_unavailable`.", body = ErrorBody),
    )
)]
pub(crate) async fn reputation(
    req: HttpRequest,
    ports: web::Data<ApiPorts>,
) -> Result<HttpResponse, V1Error> {
    authorize(&req, &ports, Scope::Read).await?;
    let (window, set) = read_query(&req, "windowDays", MAX_WINDOW_DAYS)?;
    let r = ports.reputation.reputation(window, set).await?;
    let policy = ports.reputation.policy();
    Ok(HttpResponse::Ok().json(reputation_dto(&r, &policy)))
}

#[utoipa::path(
    get,
    path = "/api/v1/reputation/daily",
    tag = "reputation",
    operation_id = "reputationDaily",
    summary = "Counts and rates per UTC day, oldest first",
    description = "Every day of the range is listed, days without counts included (their rates `null`). Each day's rates are computed as `GET /api/v1/reputation` computes a window's.",
    security(("bearer" = ["read"])),
    params(DailyParams),
    responses(
        (status = 200, description = "The days.", body = DailyReputationDto),
        (status = 400, description = "`invalid_parameter` (`days` not 1 to 366, a bad `configurationSet`, a parameter given twice), `unknown_parameter`.", body = ErrorBody),
        (status = 401, description = "`unauthorized`.", body = ErrorBody),
        (status = 503, description = "`store_unavailable`.", body = ErrorBody),
    )
)]
pub(crate) async fn daily(
    req: HttpRequest,
    ports: web::Data<ApiPorts>,
) -> Result<HttpResponse, V1Error> {
    authorize(&req, &ports, Scope::Read).await?;
    let (days, set) = read_query(&req, "days", MAX_DAILY_DAYS)?;
    let d = ports.reputation.daily(days.unwrap_or(30), set).await?;
    let policy = ports.reputation.policy();
    Ok(HttpResponse::Ok().json(daily_dto(&d, &policy)))
}
