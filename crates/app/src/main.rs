//! `ses-webhook`: the Amazon SES event webhook server and its operator commands.

use std::path::PathBuf;
use std::process::ExitCode;

use app::commands::{self, ReprocessOptions, VerifyOptions};
use app::list_commands;
use clap::{Parser, Subcommand};
use url::Url;

#[derive(Debug, Parser)]
#[command(
    name = "ses-webhook",
    version,
    about = "Receives Amazon SES events through Amazon SNS"
)]
struct Cli {
    /// Directory holding default.toml and <SES_WEBHOOK_ENV>.toml [default: config, which may
    /// be missing; a directory given here or in SES_WEBHOOK_CONFIG_DIR must exist].
    #[arg(long, env = "SES_WEBHOOK_CONFIG_DIR", global = true)]
    config_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the webhook server (the default), and the pollers of the [[sqs]] queues.
    Serve {
        /// Take SNS deliveries from the [[sqs]] queues only: no webhook, API or status page;
        /// the listener serves /healthz, /readyz and /metrics.
        #[arg(long)]
        no_http: bool,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Run stored SNS messages that failed or produced no events through the current parser
    /// again (idempotent); prints what it did.
    Reprocess {
        /// Only messages received at or after this time (RFC 3339, e.g. 2026-11-01T00:00:00Z).
        #[arg(long, value_parser = rfc3339)]
        since: Option<chrono::DateTime<chrono::Utc>>,
        /// Only this SNS message, whatever its outcome.
        #[arg(long)]
        sns_message_id: Option<String>,
    },
    /// Verify saved SNS message files; prints `FILE: ok (<Type>, v<N>)` or `FILE: FAIL: <reason>`.
    Verify {
        /// Directory of pinned signing certificates (file name = last segment of SigningCertURL);
        /// default: sns.cert_dir.
        #[arg(long)]
        cert_dir: Option<PathBuf>,
        /// Never touch the network: certificates come only from --cert-dir (implied when
        /// sns.fetch_certificates is false).
        #[arg(long)]
        offline: bool,
        /// Extra trusted base URL (for example a LocalStack endpoint); repeatable; default:
        /// sns.dev_endpoints.
        #[arg(long = "dev-endpoint")]
        dev_endpoints: Vec<Url>,
        /// SNS message files (the request bodies as received).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Manage the API tokens of /api/v1 (stored hashed in the database).
    #[command(subcommand)]
    ApiToken(TokenCommand),
    /// Maintain the suppression list.
    #[command(subcommand)]
    Suppressions(SuppressionsCommand),
    /// Erase what is stored about an address (its events, the raw bodies of the SNS messages
    /// about them); keeps its suppression entry unless --remove-suppression. Idempotent; prints
    /// counts.
    Erase {
        /// The address (case-insensitive).
        address: String,
        /// Also remove the address's suppression entry and its history (mail to it is then no
        /// longer stopped).
        #[arg(long)]
        remove_suppression: bool,
    },
    /// Event delivery: list the outbox, deliver entries to a sink again.
    #[command(subcommand)]
    Deliveries(DeliveriesCommand),
    /// Intake from Amazon SQS.
    #[command(subcommand)]
    Sqs(SqsCommand),
    /// Print the OpenAPI description of the service (what GET /api/v1/openapi.json serves, and
    /// docs/openapi.json holds).
    Openapi,
}

#[derive(Debug, Subcommand)]
enum SqsCommand {
    /// Process a queue (an SNS subscription's dead-letter queue, say) until it is empty, then
    /// print a summary. Messages are stored and deleted as `serve` does; those that fail stay
    /// in the queue. Exits 1 when any message was left.
    Drain {
        /// The queue's URL. When it is one of the [[sqs]] queues, that table's settings apply.
        #[arg(long)]
        queue_url: String,
        /// The AWS region (default: the [[sqs]] table's, AWS_REGION, the profile's, the URL's).
        #[arg(long)]
        region: Option<String>,
        /// An endpoint instead of the regional one (LocalStack, moto, a VPC endpoint).
        #[arg(long)]
        endpoint_url: Option<String>,
        /// The queue has raw message delivery: accept bare SES records, unverified.
        #[arg(long)]
        raw: bool,
        /// Seconds a ReceiveMessage waits for a message (1 to 20: long polling, so that an empty
        /// answer means an empty queue); the drain ends at the first that brings nothing new.
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(i32).range(1..=20))]
        wait_secs: i32,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Create a token and print it (the only time it is shown).
    Create {
        /// A name for the token: who or what uses it (1 to 64 of A-Z a-z 0-9 . _ -).
        #[arg(long)]
        name: String,
        /// `read`, or `write` (which includes read).
        #[arg(long, default_value = "read", value_parser = scope)]
        scope: domain::token::Scope,
    },
    /// List the tokens: name, scope, created, last used, revoked (never the token).
    List,
    /// Revoke the active token NAME: requests with it are refused from now on.
    Revoke {
        /// The token's name.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
enum SuppressionsCommand {
    /// Apply the suppression policy to every stored bounce and complaint (after upgrading from
    /// a version without the list); running it again changes nothing.
    Rebuild,
    /// Import the JSON of `aws sesv2 list-suppressed-destinations` (reason aws_import);
    /// idempotent; prints counts.
    Import {
        /// The file holding that JSON.
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum DeliveriesCommand {
    /// Outbox entries, oldest first (what GET /api/v1/deliveries lists).
    List {
        /// Only this sink's entries.
        #[arg(long)]
        sink: Option<String>,
        /// Only entries in this state: pending, delivered or dead.
        #[arg(long, value_parser = entry_state)]
        state: Option<domain::delivery::EntryState>,
        /// At most this many, 1 to 1000.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u16).range(1..=1000))]
        limit: u16,
    },
    /// Deliver entries to a sink again, now, with its whole retry schedule (what POST
    /// /api/v1/deliveries/replay does); exits 1 when an event id names nothing.
    Replay {
        /// The sink.
        #[arg(long)]
        sink: String,
        /// Every entry in this state: dead or delivered.
        #[arg(long, value_parser = entry_state, conflicts_with = "event_ids", required_unless_present = "event_ids")]
        state: Option<domain::delivery::EntryState>,
        /// With --state: only entries written at or after this time (RFC 3339).
        #[arg(long, value_parser = rfc3339, requires = "state")]
        since: Option<chrono::DateTime<chrono::Utc>>,
        /// These entries (the envelope's id: an eventKey or suppression-N); repeatable.
        #[arg(long = "event-id")]
        event_ids: Vec<String>,
    },
}

/// `--state`: pending, delivered or dead.
fn entry_state(value: &str) -> Result<domain::delivery::EntryState, String> {
    domain::delivery::EntryState::parse(value.trim())
        .ok_or_else(|| "use pending, delivered or dead".to_owned())
}

/// `--scope`: read or write.
fn scope(value: &str) -> Result<domain::token::Scope, String> {
    domain::token::Scope::parse(value.trim()).ok_or_else(|| "use read or write".to_owned())
}

/// `--since`: an RFC 3339 time, with the format in the error.
fn rfc3339(value: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(value.trim())
        .map(|time| time.to_utc())
        .map_err(|error| {
            format!(
                "{error}: expected an RFC 3339 time with a time zone, such as \
                 2026-11-01T00:00:00Z or 2026-11-01T09:30:00+02:00"
            )
        })
}

async fn run_reprocess(
    config_dir: &std::path::Path,
    options: ReprocessOptions,
) -> anyhow::Result<bool> {
    let settings = app::Settings::load(config_dir)?;
    app::telemetry::init(&settings.log)?;
    let report = commands::reprocess(&settings, &options, Box::new(std::io::stdout())).await?;
    Ok(report.skipped() == 0)
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match commands::config_dir(cli.config_dir) {
        Ok(config_dir) => {
            run(
                &config_dir,
                cli.command.unwrap_or(Command::Serve { no_http: false }),
            )
            .await
        }
        Err(error) => Err(error),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("ses-webhook: {error:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs `command`; `Ok(false)` when it ran but something failed (a file that does not
/// verify, a message reprocess skipped).
async fn run(config_dir: &std::path::Path, command: Command) -> anyhow::Result<bool> {
    match command {
        Command::Serve { no_http } => {
            commands::serve(config_dir, app::ServeOptions { http: !no_http })
                .await
                .map(|()| true)
        }
        Command::Sqs(SqsCommand::Drain {
            queue_url,
            region,
            endpoint_url,
            raw,
            wait_secs,
        }) => {
            let settings = operator_settings(config_dir)?;
            let options = commands::DrainOptions {
                queue_url,
                region,
                endpoint_url,
                raw,
                wait_secs,
            };
            commands::drain(&settings, options, &mut std::io::stdout()).await
        }
        Command::Migrate => commands::migrate(config_dir).await.map(|()| true),
        Command::Reprocess {
            since,
            sns_message_id,
        } => {
            run_reprocess(
                config_dir,
                ReprocessOptions {
                    since,
                    sns_message_id,
                },
            )
            .await
        }
        Command::Verify {
            cert_dir,
            offline,
            dev_endpoints,
            files,
        } => {
            let flags = VerifyOptions {
                cert_dir,
                offline,
                dev_endpoints,
            };
            let options = flags.with_settings_from(config_dir)?;
            commands::verify(&files, &options, &mut std::io::stdout()).await
        }
        Command::Openapi => {
            print!("{}", adapters_http::openapi_json());
            Ok(true)
        }
        Command::ApiToken(command) => {
            let settings = operator_settings(config_dir)?;
            let out = &mut std::io::stdout();
            match command {
                TokenCommand::Create { name, scope } => {
                    list_commands::create_token(&settings, &name, scope, out).await?;
                }
                TokenCommand::List => list_commands::list_tokens(&settings, out).await?,
                TokenCommand::Revoke { name } => {
                    list_commands::revoke_token(&settings, &name, out).await?;
                }
            }
            Ok(true)
        }
        Command::Erase {
            address,
            remove_suppression,
        } => {
            let settings = operator_settings(config_dir)?;
            list_commands::erase(
                &settings,
                &address,
                !remove_suppression,
                &mut std::io::stdout(),
            )
            .await?;
            Ok(true)
        }
        Command::Deliveries(command) => {
            let settings = operator_settings(config_dir)?;
            let out = &mut std::io::stdout();
            match command {
                DeliveriesCommand::List { sink, state, limit } => {
                    list_commands::list_deliveries(&settings, sink, state, limit.into(), out)
                        .await?;
                    Ok(true)
                }
                DeliveriesCommand::Replay {
                    sink,
                    state,
                    since,
                    event_ids,
                } => {
                    use domain::delivery::ReplayScope;
                    let scope = match state {
                        Some(state) => ReplayScope::State { sink, state, since },
                        None => ReplayScope::Entries {
                            sink,
                            entry_ids: event_ids,
                        },
                    };
                    list_commands::replay_deliveries(&settings, scope, out).await
                }
            }
        }
        Command::Suppressions(command) => {
            let settings = operator_settings(config_dir)?;
            let out = &mut std::io::stdout();
            match command {
                SuppressionsCommand::Rebuild => list_commands::rebuild(&settings, out).await?,
                SuppressionsCommand::Import { file } => {
                    list_commands::import(&settings, &file, out).await?;
                }
            }
            Ok(true)
        }
    }
}

/// The settings of an operator command, with logging to stderr as configured.
fn operator_settings(config_dir: &std::path::Path) -> anyhow::Result<app::Settings> {
    let settings = app::Settings::load(config_dir)?;
    app::telemetry::init(&settings.log)?;
    Ok(settings)
}
