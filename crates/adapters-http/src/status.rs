//! `GET /status`: the operator's status page, server-rendered HTML with inline SVG charts, no
//! script and no asset from outside the response. HTTP Basic authentication (any user name, an
//! API token as the password) so that a browser asks for it. Never an address: the texts taken
//! from payloads reach the page through `domain::status::redact_addresses`.

mod chart;

use std::fmt::Write as _;
use std::sync::LazyLock;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use domain::reputation::{Assessment, ReputationPolicy, Status};
use domain::status::{STATUS_DAYS, STATUS_HOURS, StatusQueries, StatusReport};
use domain::{Authenticate, token::AuthError};
use sha2::{Digest, Sha256};

use chart::{Chart, Series, Threshold, YFormat, escape, format_value};

/// Where the page is served.
pub const STATUS_PATH: &str = "/status";

/// The realm the browser shows when it asks for credentials.
const REALM: &str = "Basic realm=\"ses-webhook status\", charset=\"UTF-8\"";

/// What the page handler calls.
#[derive(Clone)]
pub struct StatusPorts {
    pub auth: std::sync::Arc<dyn Authenticate>,
    pub status: std::sync::Arc<dyn StatusQueries>,
}

impl std::fmt::Debug for StatusPorts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatusPorts").finish_non_exhaustive()
    }
}

/// Registers `GET /status`.
pub fn configure_status(cfg: &mut web::ServiceConfig, ports: StatusPorts) {
    cfg.app_data(web::Data::new(ports))
        .service(web::resource(STATUS_PATH).route(web::get().to(status_page)));
}

const STYLE: &str = "\
:root{color-scheme:light dark;--fg:#1d2330;--bg:#fff;--muted:#5b6475;--line:#d5d9e0}\
@media (prefers-color-scheme:dark){:root{--fg:#e6e9ef;--bg:#15181e;--muted:#9aa3b2;--line:#343a46}}\
*{box-sizing:border-box}\
body{margin:0;font:15px/1.45 system-ui,sans-serif;color:var(--fg);background:var(--bg)}\
header,main{max-width:1400px;margin:0 auto;padding:0 16px}\
h1{font-size:1.4rem;margin:16px 0 4px}h2{font-size:1.1rem;margin:28px 0 8px}\
p.meta{color:var(--muted);margin:0 0 8px}\
.chart-wrap{overflow-x:auto}.chart{min-width:540px;max-width:1100px;display:block}\
.scroll{overflow-x:auto}\
table{border-collapse:collapse;font-size:.9rem;min-width:100%}\
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid var(--line);white-space:nowrap}\
td.num,th.num{text-align:right}td.reason{white-space:normal;min-width:16em}\
details{margin:6px 0}summary{cursor:pointer;color:var(--muted)}\
.status{display:inline-block;padding:1px 8px;border-radius:10px;font-weight:600;font-size:.85rem}\
.status-ok{background:#d8f3dc;color:#1b5e20}.status-warning{background:#fff3bf;color:#7a5b00}\
.status-review{background:#ffd8a8;color:#8a3b00}.status-pause_risk{background:#ffc9c9;color:#8b0000}\
.status-insufficient_volume{background:#e9ecef;color:#495057}\
.empty{color:var(--muted)}";

/// `Content-Security-Policy`: nothing but the page's own stylesheet (by its hash) and inline
/// SVG; no script, no frame, no form.
static CSP: LazyLock<String> = LazyLock::new(|| {
    let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(STYLE));
    format!(
        "default-src 'none'; style-src 'sha256-{hash}'; img-src 'none'; base-uri 'none'; \
         form-action 'none'; frame-ancestors 'none'"
    )
});

fn secured(mut builder: actix_web::HttpResponseBuilder) -> actix_web::HttpResponseBuilder {
    builder
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP.as_str()))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .content_type("text/html; charset=utf-8");
    builder
}

fn small_page(status: StatusCode, title: &str, text: &str) -> HttpResponse {
    let mut builder = secured(HttpResponse::build(status));
    if status == StatusCode::UNAUTHORIZED {
        builder.insert_header((header::WWW_AUTHENTICATE, REALM));
    }
    builder.body(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\
         <style>{STYLE}</style></head><body><main><h1>{}</h1><p>{}</p></main></body></html>",
        escape(title),
        escape(title),
        escape(text)
    ))
}

/// The password of a Basic `Authorization` header (RFC 7617): the API token.
fn basic_password(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (_, password) = text.split_once(':')?;
    (!password.is_empty()).then(|| password.to_owned())
}

async fn status_page(req: HttpRequest, ports: web::Data<StatusPorts>) -> HttpResponse {
    let unauthorized = || {
        small_page(
            StatusCode::UNAUTHORIZED,
            "Sign in",
            "Sign in with any user name and an API token (read or write scope) as the password.",
        )
    };
    let Some(token) = basic_password(&req) else {
        return unauthorized();
    };
    // Any token of the service reads: `read` is the lowest scope.
    match ports.auth.authenticate(&token).await {
        Ok(_) => {}
        Err(AuthError::Unauthorized) => return unauthorized(),
        Err(AuthError::Unavailable(error)) => {
            tracing::warn!(error = %error, "status page: store unavailable");
            return small_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Unavailable",
                "The store is unavailable; reload in a moment.",
            );
        }
    }
    match ports.status.status().await {
        Ok(report) => secured(HttpResponse::Ok()).body(render(&report)),
        Err(error) => {
            tracing::warn!(error = %error, "status page: store unavailable");
            small_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Unavailable",
                "The store is unavailable; reload in a moment.",
            )
        }
    }
}

/// The event types charted per hour: (series key, label, colour, count).
const EVENT_SERIES: [(&str, &str, &str); 5] = [
    ("email_delivered", "Delivered", "#2b8a3e"),
    ("email_bounce", "Bounces", "#e8590c"),
    ("email_spam_report", "Complaints", "#c92a2a"),
    ("email_open", "Opens", "#1971c2"),
    ("email_click", "Clicks", "#7048e8"),
];

fn status_words(status: Status) -> &'static str {
    match status {
        Status::Ok => "OK",
        Status::Warning => "Warning",
        Status::Review => "Review",
        Status::PauseRisk => "Pause risk",
        Status::InsufficientVolume => "Insufficient volume",
    }
}

fn status_badge(status: Status) -> String {
    format!(
        "<span class=\"status status-{}\">{}</span>",
        status.as_str(),
        status_words(status)
    )
}

fn time_text(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// `seconds` as "2 d 3 h", "3 h 5 min", "4 min 10 s" or "12 s".
fn duration_text(seconds: i64) -> String {
    let s = seconds.max(0);
    let (d, h, m) = (s / 86_400, (s % 86_400) / 3_600, (s % 3_600) / 60);
    if d > 0 {
        format!("{d} d {h} h")
    } else if h > 0 {
        format!("{h} h {m} min")
    } else if m > 0 {
        format!("{m} min {} s", s % 60)
    } else {
        format!("{s} s")
    }
}

fn rate_text(rate: Option<f64>) -> String {
    rate.map_or_else(|| "–".to_owned(), |r| format_value(r, YFormat::Percent))
}

/// The whole page.
#[must_use]
pub fn render(report: &StatusReport) -> String {
    let mut html = String::with_capacity(64 * 1024);
    let policy = &report.policy;
    let _ = write!(
        html,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"referrer\" content=\"no-referrer\">\
         <title>ses-webhook status</title><style>{STYLE}</style></head><body>\
         <header><h1>ses-webhook status</h1><p class=\"meta\">Generated {}. Times are UTC. \
         Rates as SES counts them: hard bounces and complaints over sent recipients \
         (see docs/reputation.md).</p></header><main>",
        time_text(report.generated_at)
    );
    events_section(&mut html, report);
    rates_section(&mut html, report, policy);
    sets_section(&mut html, report);
    subscriptions_section(&mut html, report);
    topics_section(&mut html, report);
    failures_section(&mut html, report);
    html.push_str("</main></body></html>");
    html
}

fn events_section(html: &mut String, report: &StatusReport) {
    let hours = &report.hourly.hours;
    let x_labels: Vec<String> = hours
        .iter()
        .map(|(hour, _)| hour.format("%d %H:00").to_string())
        .collect();
    let value = |key: &str, c: &domain::reputation::Counts| -> u64 {
        match key {
            "email_delivered" => c.delivered,
            "email_bounce" => c.hard_bounces.saturating_add(c.soft_bounces),
            "email_spam_report" => c.complaints,
            "email_open" => c.opens,
            _ => c.clicks,
        }
    };
    #[allow(clippy::cast_precision_loss)] // counts far below 2^52
    let series = EVENT_SERIES
        .iter()
        .map(|(key, label, color)| Series {
            key: (*key).to_owned(),
            label: (*label).to_owned(),
            color,
            values: hours
                .iter()
                .map(|(_, c)| Some(value(key, c) as f64))
                .collect(),
        })
        .collect();
    let chart = Chart {
        id: "events-chart".into(),
        title: format!("Events per hour by type, last {STATUS_HOURS} hours"),
        x_labels: x_labels.clone(),
        x_tick_every: 6,
        y_format: YFormat::Count,
        series,
        thresholds: Vec::new(),
    };
    let _ = write!(
        html,
        "<section id=\"events-per-hour\"><h2>Events per hour, last {STATUS_HOURS} hours</h2>\
         <div class=\"chart-wrap\">{}</div><details><summary>The numbers</summary>\
         <div class=\"scroll\"><table class=\"chart-data\"><thead><tr><th>Hour (UTC)</th>",
        chart::render(&chart)
    );
    for (_, label, _) in EVENT_SERIES {
        let _ = write!(html, "<th class=\"num\">{label}</th>");
    }
    html.push_str("</tr></thead><tbody>");
    for ((hour, counts), label) in hours.iter().zip(&x_labels) {
        let _ = write!(
            html,
            "<tr data-hour=\"{}\"><td>{}</td>",
            hour.format("%Y-%m-%dT%H:00:00Z"),
            escape(label)
        );
        for (key, _, _) in EVENT_SERIES {
            let _ = write!(html, "<td class=\"num\">{}</td>", value(key, counts));
        }
        html.push_str("</tr>");
    }
    html.push_str("</tbody></table></div></details></section>");
}

fn rates_section(html: &mut String, report: &StatusReport, policy: &ReputationPolicy) {
    let days = &report.daily.items;
    let x_labels: Vec<String> = days
        .iter()
        .map(|d| d.day.format("%m-%d").to_string())
        .collect();
    let series = vec![
        Series {
            key: "bounce_rate".into(),
            label: "Bounce rate".into(),
            color: "#e8590c",
            values: days.iter().map(|d| d.assessment.bounce_rate).collect(),
        },
        Series {
            key: "complaint_rate".into(),
            label: "Complaint rate".into(),
            color: "#c92a2a",
            values: days.iter().map(|d| d.assessment.complaint_rate).collect(),
        },
    ];
    let thresholds = vec![
        threshold(
            "bounce_warning",
            "Bounce warning",
            "#f59f00",
            policy.warning(policy.bounce),
        ),
        threshold(
            "bounce_review",
            "Bounce review",
            "#e8590c",
            policy.bounce.review,
        ),
        threshold(
            "bounce_pause",
            "Bounce pause",
            "#862e9c",
            policy.bounce.pause,
        ),
        threshold(
            "complaint_warning",
            "Complaint warning",
            "#fab005",
            policy.warning(policy.complaint),
        ),
        threshold(
            "complaint_review",
            "Complaint review",
            "#c92a2a",
            policy.complaint.review,
        ),
        threshold(
            "complaint_pause",
            "Complaint pause",
            "#5f3dc4",
            policy.complaint.pause,
        ),
    ];
    let chart = Chart {
        id: "rates-chart".into(),
        title: format!("Bounce and complaint rate per day, last {STATUS_DAYS} days"),
        x_labels,
        x_tick_every: 5,
        y_format: YFormat::Percent,
        series,
        thresholds,
    };
    let _ = write!(
        html,
        "<section id=\"rates-per-day\"><h2>Bounce and complaint rate per day, last {STATUS_DAYS} \
         days</h2><p class=\"meta\">Dashed lines: the warning, review and pause thresholds. A day \
         without sends or deliveries has no point.</p><div class=\"chart-wrap\">{}</div>\
         <details><summary>The numbers</summary><div class=\"scroll\">\
         <table class=\"chart-data\"><thead><tr><th>Day</th><th class=\"num\">Volume</th>\
         <th class=\"num\">Hard bounces</th><th class=\"num\">Complaints</th>\
         <th class=\"num\">Bounce rate</th><th class=\"num\">Complaint rate</th></tr></thead><tbody>",
        chart::render(&chart)
    );
    for day in days {
        let a = &day.assessment;
        let _ = write!(
            html,
            "<tr data-day=\"{}\"><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            day.day,
            day.day,
            a.volume,
            a.counts.hard_bounces,
            a.counts.complaints,
            rate_text(a.bounce_rate),
            rate_text(a.complaint_rate)
        );
    }
    html.push_str("</tbody></table></div></details></section>");
}

fn threshold(key: &str, label: &str, color: &'static str, value: f64) -> Threshold {
    Threshold {
        key: key.into(),
        label: label.into(),
        color,
        value,
    }
}

fn set_row(html: &mut String, key: &str, name: &str, a: &Assessment) {
    let _ = write!(
        html,
        "<tr data-configuration-set=\"{}\"><th scope=\"row\">{}</th><td>{}</td>\
         <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
         <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
         <td class=\"num\">{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
        escape(key),
        escape(name),
        a.denominator.as_str(),
        a.volume,
        a.counts.sent,
        a.counts.delivered,
        a.counts.hard_bounces,
        a.counts.soft_bounces,
        a.counts.complaints,
        rate_text(a.bounce_rate),
        status_badge(a.bounce_status),
        rate_text(a.complaint_rate),
        status_badge(a.complaint_status),
    );
}

fn sets_section(html: &mut String, report: &StatusReport) {
    let r = &report.reputation;
    let _ = write!(
        html,
        "<section id=\"configuration-sets\"><h2>Configuration sets, last {} days</h2>\
         <p class=\"meta\">Statuses need at least {} recipients in the denominator.</p>\
         <div class=\"scroll\"><table><thead><tr><th>Configuration set</th><th>Denominator</th>\
         <th class=\"num\">Volume</th><th class=\"num\">Sent</th><th class=\"num\">Delivered</th>\
         <th class=\"num\">Hard</th><th class=\"num\">Soft</th><th class=\"num\">Complaints</th>\
         <th class=\"num\">Bounce rate</th><th>Bounce status</th><th class=\"num\">Complaint \
         rate</th><th>Complaint status</th></tr></thead><tbody>",
        r.window_days, report.policy.min_volume
    );
    for (set, a) in &r.by_configuration_set {
        match set {
            Some(name) => set_row(html, name, name, a),
            None => set_row(html, "", "(none)", a),
        }
    }
    set_row(html, "(all)", "All messages", &r.total);
    html.push_str("</tbody></table></div></section>");
}

fn subscriptions_section(html: &mut String, report: &StatusReport) {
    html.push_str(
        "<section id=\"subscriptions\"><h2>SNS subscriptions</h2><div class=\"scroll\"><table>\
         <thead><tr><th>Topic</th><th>State</th><th>Since</th></tr></thead><tbody>",
    );
    if report.subscriptions.is_empty() {
        html.push_str(
            "<tr class=\"empty\"><td colspan=\"3\">No subscription recorded yet.</td></tr>",
        );
    }
    for s in &report.subscriptions {
        let _ = write!(
            html,
            "<tr data-topic=\"{}\"><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&s.topic_arn),
            escape(&s.topic_arn),
            s.state.as_str(),
            time_text(s.updated_at)
        );
    }
    html.push_str("</tbody></table></div></section>");
}

fn topics_section(html: &mut String, report: &StatusReport) {
    html.push_str(
        "<section id=\"topics\"><h2>Last notification per topic</h2><div class=\"scroll\"><table>\
         <thead><tr><th>Topic</th><th>Last notification</th><th class=\"num\">Ago</th></tr>\
         </thead><tbody>",
    );
    if report.topics.is_empty() {
        html.push_str("<tr class=\"empty\"><td colspan=\"3\">No message received yet.</td></tr>");
    }
    for t in &report.topics {
        let (at, ago) = match t.last_notification_at {
            Some(at) => (
                time_text(at),
                duration_text((report.generated_at - at).num_seconds()),
            ),
            None => ("never".to_owned(), "–".to_owned()),
        };
        let _ = write!(
            html,
            "<tr data-topic=\"{}\"><td>{}</td><td>{at}</td><td class=\"num\">{ago}</td></tr>",
            escape(&t.topic_arn),
            escape(&t.topic_arn),
        );
    }
    html.push_str("</tbody></table></div></section>");
}

fn failures_section(html: &mut String, report: &StatusReport) {
    html.push_str(
        "<section id=\"failures\"><h2>Recent failures</h2><p class=\"meta\">The last 20 \
         messages that could not become events (archived with outcome <code>failed</code>; \
         <code>ses-webhook reprocess</code> tries them again).</p><div class=\"scroll\"><table>\
         <thead><tr><th>Received</th><th>SES type</th><th>Reason</th></tr></thead><tbody>",
    );
    if report.failures.is_empty() {
        html.push_str("<tr class=\"empty\"><td colspan=\"3\">None.</td></tr>");
    }
    for f in &report.failures {
        let _ = write!(
            html,
            "<tr class=\"failure\"><td>{}</td><td>{}</td><td class=\"reason\">{}</td></tr>",
            time_text(f.received_at),
            escape(f.ses_type.as_deref().unwrap_or("–")),
            escape(f.reason.as_deref().unwrap_or("–")),
        );
    }
    html.push_str("</tbody></table></div></section>");
}

#[cfg(test)]
mod tests;
