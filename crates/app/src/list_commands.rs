//! The `api-token` and `suppressions` subcommands: managing API tokens, rebuilding the
//! suppression list from stored events, importing SES's account-level list.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, SecondsFormat, Utc};
use domain::ports::{NoObserver, SystemClock};
use domain::suppression::{Address, AwsSuppressed, SuppressionService};
use domain::token::{CreateTokenError, Scope, TokenService};
use serde::Deserialize;

use crate::commands::connect_migrated;
use crate::settings::{Settings, shown};

fn when(at: Option<DateTime<Utc>>) -> String {
    at.map_or_else(
        || "-".to_owned(),
        |at| at.to_rfc3339_opts(SecondsFormat::Secs, true),
    )
}

/// `ses-webhook api-token create --name NAME --scope SCOPE`: prints the new token once.
///
/// # Errors
/// When the name is invalid or taken, or the store fails.
pub async fn create_token(
    settings: &Settings,
    name: &str,
    scope: Scope,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let store = Arc::new(connect_migrated(settings, 1).await?);
    let service = TokenService::new(store, Arc::new(SystemClock));
    let (secret, token) = service.create(name, scope).await.map_err(|e| match e {
        CreateTokenError::Store(e) => anyhow::Error::new(e).context("storing the token"),
        other => anyhow::anyhow!(other),
    })?;
    writeln!(out, "{}", secret.expose())?;
    writeln!(
        out,
        "# token {:?} (scope {}) created; this is the only time it is shown: keep it as a secret",
        token.name,
        token.scope.as_str()
    )?;
    Ok(())
}

/// `ses-webhook api-token list`: name, scope, created, last used, revoked; never the token.
///
/// # Errors
/// When the store fails.
pub async fn list_tokens(settings: &Settings, out: &mut dyn Write) -> anyhow::Result<()> {
    let store = Arc::new(connect_migrated(settings, 1).await?);
    let tokens = TokenService::new(store, Arc::new(SystemClock))
        .list()
        .await?;
    writeln!(out, "NAME\tSCOPE\tCREATED\tLAST USED\tREVOKED")?;
    for token in tokens {
        writeln!(
            out,
            "{}\t{}\t{}\t{}\t{}",
            token.name,
            token.scope.as_str(),
            when(Some(token.created_at)),
            when(token.last_used_at),
            when(token.revoked_at)
        )?;
    }
    Ok(())
}

/// `ses-webhook api-token revoke NAME`.
///
/// # Errors
/// When no active token has the name, or the store fails.
pub async fn revoke_token(
    settings: &Settings,
    name: &str,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let store = Arc::new(connect_migrated(settings, 1).await?);
    if !TokenService::new(store, Arc::new(SystemClock))
        .revoke(name)
        .await?
    {
        anyhow::bail!("no active token is named {name:?} (see `ses-webhook api-token list`)");
    }
    writeln!(out, "token {name:?} revoked")?;
    Ok(())
}

fn service(store: Arc<adapters_store::Store>) -> SuppressionService {
    SuppressionService::new(store, Arc::new(SystemClock), Arc::new(NoObserver))
}

/// `ses-webhook suppressions rebuild`: applies the policy to every stored bounce and complaint.
///
/// # Errors
/// When the store fails (what was written until then stays).
pub async fn rebuild(settings: &Settings, out: &mut dyn Write) -> anyhow::Result<()> {
    let store = Arc::new(connect_migrated(settings, 1).await?);
    let report = service(store)
        .rebuild(settings.suppression.policy())
        .await
        .context("rebuilding the suppression list")?;
    writeln!(
        out,
        "addresses with bounces or complaints: {}; entries written: {}",
        report.addresses, report.written
    )?;
    Ok(())
}

/// The JSON `aws sesv2 list-suppressed-destinations` prints.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SuppressedDestinations {
    suppressed_destination_summaries: Vec<SuppressedDestination>,
    /// Present when the file holds one page of several.
    #[serde(default)]
    next_token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SuppressedDestination {
    email_address: String,
    reason: String,
    #[serde(default)]
    last_update_time: Option<serde_json::Value>,
}

/// `LastUpdateTime`: ISO 8601 text (the AWS CLI's default) or seconds since the epoch.
fn aws_time(value: Option<&serde_json::Value>) -> Option<DateTime<Utc>> {
    match value? {
        serde_json::Value::String(text) => DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|at| at.with_timezone(&Utc)),
        serde_json::Value::Number(seconds) => {
            let seconds = seconds.as_f64()?;
            #[allow(clippy::cast_possible_truncation)]
            DateTime::from_timestamp_millis((seconds * 1000.0) as i64)
        }
        _ => None,
    }
}

/// What an AWS list file holds: the addresses, the invalid ones (with why), and whether it is
/// one page of several (it carries a `NextToken`).
#[derive(Debug)]
pub struct AwsList {
    pub valid: Vec<AwsSuppressed>,
    pub invalid: Vec<String>,
    pub partial: bool,
}

/// The addresses of `json`, and the invalid ones (with why).
///
/// # Errors
/// When `json` is not the output of `aws sesv2 list-suppressed-destinations`.
pub fn parse_aws_list(json: &str) -> anyhow::Result<AwsList> {
    let list: SuppressedDestinations = serde_json::from_str(json).context(
        "expected the JSON of `aws sesv2 list-suppressed-destinations` \
         ({\"SuppressedDestinationSummaries\": [{\"EmailAddress\", \"Reason\", \"LastUpdateTime\"}]})",
    )?;
    let mut valid = Vec::new();
    let mut invalid = Vec::new();
    for item in list.suppressed_destination_summaries {
        match Address::parse(&item.email_address) {
            Ok(address) => valid.push(AwsSuppressed {
                address,
                aws_reason: item.reason.trim().to_ascii_uppercase(),
                last_update: aws_time(item.last_update_time.as_ref()),
            }),
            Err(e) => invalid.push(format!("{:?}: {e}", item.email_address)),
        }
    }
    Ok(AwsList {
        valid,
        invalid,
        partial: list.next_token.is_some_and(|t| !t.is_empty()),
    })
}

/// `ses-webhook suppressions import FILE`.
///
/// # Errors
/// When the file cannot be read or parsed (nothing is written), or the store fails (what was
/// committed until then stays; running the import again completes it).
pub async fn import(settings: &Settings, file: &Path, out: &mut dyn Write) -> anyhow::Result<()> {
    let json = std::fs::read_to_string(file).with_context(|| format!("reading {}", shown(file)))?;
    let AwsList {
        valid: items,
        invalid,
        partial,
    } = parse_aws_list(&json).with_context(|| format!("reading {}", shown(file)))?;
    if partial {
        writeln!(
            out,
            "note: the file has a NextToken, so it holds only one page of the list; import the \
             other pages too (the AWS CLI pages through all of them unless --max-items or \
             --no-paginate is given)"
        )?;
    }
    let store = Arc::new(connect_migrated(settings, 1).await?);
    let report = service(store)
        .import(items)
        .await
        .context("importing the suppression list")?;
    for line in &invalid {
        writeln!(out, "skipped, not an address: {line}")?;
    }
    writeln!(
        out,
        "added: {}; already suppressed (or repeated in the file): {}; invalid: {}",
        report.added,
        report.already_suppressed,
        invalid.len()
    )?;
    Ok(())
}

/// `ses-webhook erase ADDRESS [--remove-suppression]`: what `DELETE
/// /api/v1/recipients/{address}` does, as `command:erase`; prints the counts (never the
/// address).
///
/// # Errors
/// When the address is invalid or the store fails (nothing is then erased).
pub async fn erase(
    settings: &Settings,
    address: &str,
    keep_suppression: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    use domain::EventHistory as _;
    use domain::history::{ErasureRequest, HistoryService, NoErasureObserver};

    let address = Address::parse(address).map_err(|e| anyhow::anyhow!(e))?;
    let store = Arc::new(connect_migrated(settings, 1).await?);
    writeln!(out, "database: {}", store.database())?;
    let report = HistoryService::new(store, Arc::new(SystemClock), Arc::new(NoErasureObserver))
        .erase(
            &address,
            ErasureRequest { keep_suppression },
            domain::suppression::Actor::Command("erase"),
        )
        .await
        .context("erasing the address did not finish (some raw bodies may already be cleared; run it again)")?;
    writeln!(out, "events deleted: {}", report.events_deleted)?;
    writeln!(
        out,
        "archived messages cleared: {} (they can no longer be reprocessed)",
        report.messages_cleared
    )?;
    let suppression = if report.suppression_removed {
        format!("removed, with {} history line(s)", report.history_deleted)
    } else if report.suppression_kept {
        "kept (it goes on stopping mail to the address; --remove-suppression removes it)".to_owned()
    } else if report.history_deleted > 0 {
        format!(
            "none ({} history line(s) of an earlier entry deleted)",
            report.history_deleted
        )
    } else {
        "none".to_owned()
    };
    writeln!(out, "suppression entry: {suppression}")?;
    match report.recorded_at {
        Some(at) => writeln!(out, "recorded in the erasures table at {}", when(Some(at)))?,
        None => writeln!(out, "nothing left to erase; nothing recorded")?,
    }
    if let Some(at) = report.previously_erased_at {
        writeln!(out, "erased before at {}", when(Some(at)))?;
    }
    Ok(())
}

/// The deliveries use case over the store, for the sinks these settings configure.
async fn deliveries(settings: &Settings) -> anyhow::Result<domain::delivery::DeliveryService> {
    let store = Arc::new(connect_migrated(settings, 1).await?);
    let names = settings.sink_names();
    Ok(domain::delivery::DeliveryService::new(
        store,
        names,
        Arc::new(SystemClock),
    ))
}

/// `ses-webhook deliveries list [--sink NAME] [--state STATE] [--limit N]`: outbox entries,
/// oldest first, one per line (tab-separated: event id, type, sink, state, attempts, created,
/// next attempt, last error). No address is printed.
///
/// # Errors
/// When the sink is not configured or the store fails.
pub async fn list_deliveries(
    settings: &Settings,
    sink: Option<String>,
    state: Option<domain::delivery::EntryState>,
    limit: usize,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    use domain::delivery::{Deliveries, EntryQuery, EntryState};
    let service = deliveries(settings).await?;
    let entries = service
        .entries(EntryQuery {
            sink,
            state,
            after_id: None,
            limit,
        })
        .await?;
    writeln!(
        out,
        "EVENT ID\tTYPE\tSINK\tSTATE\tATTEMPTS\tCREATED\tNEXT ATTEMPT\tLAST ERROR"
    )?;
    for e in entries {
        writeln!(
            out,
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            e.entry_id,
            e.entry_type,
            e.sink,
            e.state.as_str(),
            e.attempts,
            when(Some(e.created_at)),
            when((e.state == EntryState::Pending).then_some(e.next_attempt_at)),
            e.last_error.as_deref().unwrap_or("-"),
        )?;
    }
    Ok(())
}

/// `ses-webhook deliveries replay --sink NAME (--state dead [--since TIME] | --event-id ID...)`:
/// makes the entries due now with the sink's whole schedule; prints how many, and the ids
/// that name nothing the sink can be sent. Whether every id was found.
///
/// # Errors
/// When the sink is not configured, the state cannot be replayed, the ids are too many, or
/// the store fails.
pub async fn replay_deliveries(
    settings: &Settings,
    scope: domain::delivery::ReplayScope,
    out: &mut dyn Write,
) -> anyhow::Result<bool> {
    use domain::delivery::Deliveries;
    let sink = scope.sink().to_owned();
    let outcome = deliveries(settings).await?.replay(scope).await?;
    writeln!(
        out,
        "{} entries of sink {sink:?} are due again now",
        outcome.replayed
    )?;
    for id in &outcome.not_found {
        writeln!(out, "not found: {id}")?;
    }
    Ok(outcome.not_found.is_empty())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_aws_cli_output_is_read_with_its_times_and_bad_addresses_are_set_aside() {
        let json = r#"{
            "SuppressedDestinationSummaries": [
                {"EmailAddress": "bounced@example.com", "Reason": "BOUNCE", "LastUpdateTime": "2024-03-01T12:00:00.123000+00:00"},
                {"EmailAddress": "Complained@Example.com", "Reason": "COMPLAINT", "LastUpdateTime": 1709294400.5},
                {"EmailAddress": "not an address", "Reason": "BOUNCE"}
            ],
            "NextToken": "abc"
        }"#;
        let AwsList {
            valid: items,
            invalid,
            partial,
        } = parse_aws_list(json).unwrap();
        assert!(partial, "it has a NextToken");
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].address.key(), "bounced@example.com");
        assert_eq!(items[0].aws_reason, "BOUNCE");
        assert_eq!(
            items[0].last_update.map(|t| t.to_rfc3339()),
            Some("2024-03-01T12:00:00.123+00:00".into())
        );
        assert_eq!(items[1].address.as_str(), "Complained@Example.com");
        assert_eq!(
            items[1].last_update.map(|t| t.timestamp()),
            Some(1_709_294_400)
        );
        assert_eq!(invalid.len(), 1);
        assert!(parse_aws_list(r#"{"Items": []}"#).is_err());
    }
}
