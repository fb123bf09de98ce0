//! `ses-webhook-loadgen`: load generator for the SES webhook. See the crate documentation and
//! `docs/performance.md`.

use std::io::{BufReader, BufWriter};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use diesel::{Connection, PgConnection};
use loadgen::check::{self, CheckReport, Expected, Observed};
use loadgen::mix::{self, CORPUS_FORMAT, CorpusHeader, Signed};
use loadgen::run::{RunOptions, run};
use loadgen::stats::{Summary, summarize};
use loadgen::{guard, plan};
use serde::Serialize;
use sns_verify::testing::TestSigner;

/// Most messages signed or loaded at once (about 3 KB each in memory).
const MAX_MESSAGES: usize = 200_000;
/// Most requests one run sends.
const MAX_REQUESTS: usize = 1_000_000;
/// Messages signed when a run generates its own and nothing says how many.
const DEFAULT_MESSAGES: usize = 20_000;

#[derive(Debug, Parser)]
#[command(
    name = "ses-webhook-loadgen",
    version,
    about = "Signs realistic SNS/SES messages with the test key, posts them to a local \
             ses-webhook, reports throughput and latency, and checks the database"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Sign messages once and save them, with the certificate the server must trust, for runs.
    Generate(GenerateArgs),
    /// Post messages to a server on this machine and report; optionally check its database.
    Run(Box<RunArgs>),
    /// Call POST /api/v1/suppressions/check on a server on this machine and report (or, with
    /// --write-import, write the list to seed it with `ses-webhook suppressions import`).
    CheckSuppressions(CheckArgs),
}

#[derive(Debug, Args)]
struct CheckArgs {
    /// The server's base URL (loopback only).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// An API token with the read scope.
    #[arg(
        long,
        env = "LOADGEN_API_TOKEN",
        required_unless_present = "write_import"
    )]
    token: Option<String>,
    /// Addresses in the population (user0@loadgen.example, user1@...).
    #[arg(long, default_value_t = 1_000_000)]
    population: u64,
    /// Every Nth address of the population is suppressed.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    suppressed_every: u64,
    /// Addresses per call (1 to 1000).
    #[arg(long, default_value_t = 100, value_parser = count_parser(1000))]
    per_call: usize,
    #[arg(long, default_value_t = 16, value_parser = count_parser(1024))]
    concurrency: usize,
    /// Seconds.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
    duration: u64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Write the suppressed addresses as `aws sesv2 list-suppressed-destinations` JSON to this
    /// file and exit.
    #[arg(long)]
    write_import: Option<PathBuf>,
    /// Also write the report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn check_suppressions(args: &CheckArgs) -> anyhow::Result<bool> {
    if let Some(path) = &args.write_import {
        let file =
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        serde_json::to_writer(
            BufWriter::new(file),
            &loadgen::suppressions::import_file(args.population, args.suppressed_every),
        )?;
        return Ok(true);
    }
    let load = loadgen::suppressions::CheckLoad {
        target: guard::loopback_target(&args.url)?,
        token: args.token.clone().unwrap_or_default(),
        population: args.population,
        suppressed_every: args.suppressed_every,
        per_call: args.per_call,
        concurrency: args.concurrency,
        duration: Duration::from_secs(args.duration),
        timeout: Duration::from_secs(30),
        seed: args.seed,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let summary = runtime.block_on(loadgen::suppressions::run_check(load))?;
    print!("{summary}");
    if let Some(path) = &args.json {
        let file =
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        serde_json::to_writer_pretty(BufWriter::new(file), &summary)?;
    }
    Ok(summary.ok > 0 && summary.failed == 0 && summary.wrong == 0)
}

#[derive(Debug, Args)]
struct MixArgs {
    /// Seed of the message mix and of the duplicate choice (same seed, same run).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Most recipients per message (1-5); each count from 1 up to this is drawn.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u8).range(1..=5))]
    max_recipients: u8,
    /// Identifier tag (hex) that makes ids unique to this batch; default: from the clock.
    #[arg(long, value_parser = parse_hex)]
    tag: Option<u64>,
    /// Signing threads; default: one per core.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=64))]
    sign_threads: Option<u16>,
}

#[derive(Debug, Args)]
struct GenerateArgs {
    #[command(flatten)]
    mix: MixArgs,
    /// Messages to sign (at most 200000).
    #[arg(long, default_value_t = DEFAULT_MESSAGES, value_parser = count_parser(MAX_MESSAGES))]
    count: usize,
    /// Corpus file to write (JSON lines), for `run`.
    #[arg(long, required_unless_present = "files")]
    out: Option<PathBuf>,
    /// Directory to write each message into as a file of its own (`00001-bounce.json`, ...):
    /// exactly the request body SNS would send, for `curl --data-binary @FILE` and
    /// `ses-webhook verify`.
    #[arg(long)]
    files: Option<PathBuf>,
    /// Directory to write the signing certificate into: the server's `sns.cert_dir`.
    #[arg(long)]
    cert_dir: PathBuf,
}

#[derive(Debug, Args)]
#[allow(clippy::struct_excessive_bools)]
struct RunArgs {
    /// Webhook URL; only 127.0.0.0/8, [::1] and localhost are accepted.
    #[arg(long, default_value = "http://127.0.0.1:8080/api/rpc/webhooks/aws/ses")]
    url: String,
    /// Closed loop: parallel workers. Open loop (--rate): most requests in flight.
    #[arg(long, default_value_t = 16, value_parser = count_parser(1024))]
    concurrency: usize,
    /// Seconds after which no new request starts (at most 600).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
    duration: u64,
    /// Most requests to send (at most 1000000); default: every planned request.
    #[arg(long, value_parser = count_parser(MAX_REQUESTS))]
    requests: Option<usize>,
    /// Open loop: start this many requests per second (at most 50000), whatever the answers do;
    /// latency then counts from each request's intended start.
    #[arg(long, value_parser = parse_rate)]
    rate: Option<f64>,
    /// Fraction of requests (0-0.5) that re-send a recent message, as an SNS retry would.
    #[arg(long, default_value_t = 0.0, value_parser = parse_fraction)]
    duplicates: f64,
    /// Messages from a corpus written by `generate` (no signing during the run).
    #[arg(long, conflicts_with_all = ["messages", "cert_dir"])]
    corpus: Option<PathBuf>,
    /// Without --corpus: messages to sign before the run (at most 200000; default: enough for
    /// --requests or --rate x --duration, else 20000).
    #[arg(long, value_parser = count_parser(MAX_MESSAGES))]
    messages: Option<usize>,
    /// Without --corpus: directory to write the signing certificate into (the server's
    /// `sns.cert_dir`, read when the first message arrives).
    #[arg(long, required_unless_present = "corpus")]
    cert_dir: Option<PathBuf>,
    #[command(flatten)]
    mix: MixArgs,
    /// PostgreSQL database of the server, on this machine: checked after the run.
    #[arg(long, env = "LOADGEN_DATABASE_URL")]
    database_url: Option<String>,
    /// Write the summary (and the check) as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Seconds before a request is abandoned (1-120).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=120))]
    timeout: u64,
    /// Threads of the HTTP client runtime (1-8).
    #[arg(long, default_value_t = 1, value_parser = count_parser(8))]
    client_threads: usize,
}

fn count_parser(max: usize) -> impl Fn(&str) -> Result<usize, String> + Clone {
    move |s: &str| {
        let n: usize = s.parse().map_err(|e| format!("{e}"))?;
        if (1..=max).contains(&n) {
            Ok(n)
        } else {
            Err(format!("must be between 1 and {max}"))
        }
    }
}

fn parse_hex(s: &str) -> Result<u64, String> {
    u64::from_str_radix(s.trim_start_matches("0x"), 16).map_err(|e| format!("not hex: {e}"))
}

fn parse_rate(s: &str) -> Result<f64, String> {
    let rate: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if (1.0..=50_000.0).contains(&rate) {
        Ok(rate)
    } else {
        Err("must be between 1 and 50000 requests/s".into())
    }
}

fn parse_fraction(s: &str) -> Result<f64, String> {
    let f: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if (0.0..=0.5).contains(&f) {
        Ok(f)
    } else {
        Err("must be between 0 and 0.5".into())
    }
}

fn default_tag() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    #[allow(
        clippy::cast_possible_truncation,
        reason = "any 64 bits of the clock do"
    )]
    loadgen::rng::mix(nanos as u64 ^ u64::from(std::process::id()))
}

fn threads(requested: Option<u16>) -> NonZeroUsize {
    requested
        .and_then(|n| NonZeroUsize::new(usize::from(n)))
        .or_else(|| std::thread::available_parallelism().ok())
        .unwrap_or(NonZeroUsize::MIN)
}

/// Signs `count` messages and writes the certificate into `cert_dir`.
fn sign(mix_args: &MixArgs, count: usize, cert_dir: &Path) -> anyhow::Result<CorpusHeader> {
    std::fs::create_dir_all(cert_dir)
        .with_context(|| format!("creating {}", cert_dir.display()))?;
    let tag = mix_args.tag.unwrap_or_else(default_tag);
    let cert_url = mix::cert_url(tag);
    eprintln!("loadgen: generating the test signing key");
    let signer = TestSigner::shared().with_cert_url(&cert_url);
    let path = signer
        .write_pinned(cert_dir)
        .with_context(|| format!("writing the certificate into {}", cert_dir.display()))?;
    eprintln!("loadgen: certificate written to {}", path.display());
    Ok(CorpusHeader {
        corpus: CORPUS_FORMAT.to_owned(),
        seed: mix_args.seed,
        tag: format!("{tag:016x}"),
        cert_url,
        count,
    })
}

fn sign_messages(mix_args: &MixArgs, header: &CorpusHeader) -> anyhow::Result<Vec<Signed>> {
    let tag = parse_hex(&header.tag).map_err(anyhow::Error::msg)?;
    let signer = TestSigner::shared().with_cert_url(&header.cert_url);
    let specs = mix::specs(header.seed, header.count, mix_args.max_recipients);
    let threads = threads(mix_args.sign_threads);
    eprintln!(
        "loadgen: signing {} messages on {threads} threads",
        header.count
    );
    let began = Instant::now();
    let messages = mix::sign_all(&signer, &specs, tag, chrono::Utc::now(), threads);
    eprintln!("loadgen: signed in {:.1} s", began.elapsed().as_secs_f64());
    Ok(messages)
}

fn generate(args: &GenerateArgs) -> anyhow::Result<()> {
    let header = sign(&args.mix, args.count, &args.cert_dir)?;
    let messages = sign_messages(&args.mix, &header)?;
    if let Some(out) = &args.out {
        let file =
            std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
        mix::write_corpus(&mut BufWriter::new(file), &header, &messages)?;
        eprintln!(
            "loadgen: wrote {} messages to {}",
            messages.len(),
            out.display()
        );
    }
    if let Some(dir) = &args.files {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        for (index, message) in messages.iter().enumerate() {
            let path = dir.join(format!("{:05}-{}.json", index + 1, message.kind.as_str()));
            std::fs::write(&path, &message.body)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        eprintln!(
            "loadgen: wrote {} message files to {}",
            messages.len(),
            dir.display()
        );
    }
    Ok(())
}

#[derive(Debug, Serialize)]
struct Report<'a> {
    summary: &'a Summary,
    check: Option<&'a CheckReport>,
}

fn connect(url: &str) -> anyhow::Result<PgConnection> {
    PgConnection::establish(url).map_err(|e| anyhow::anyhow!("connecting to the database: {e}"))
}

fn run_command(args: &RunArgs) -> anyhow::Result<bool> {
    let target = guard::loopback_target(&args.url)?;
    let database = args
        .database_url
        .as_deref()
        .map(guard::loopback_database)
        .transpose()?;

    let messages = match (&args.corpus, &args.cert_dir) {
        (Some(path), _) => {
            let file =
                std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
            let (header, messages) = mix::read_corpus(BufReader::new(file))?;
            eprintln!(
                "loadgen: {} messages from {} (seed {}, tag {})",
                messages.len(),
                path.display(),
                header.seed,
                header.tag
            );
            messages
        }
        (None, Some(cert_dir)) => {
            let wanted = args.messages.unwrap_or_else(|| {
                let by_rate = args.rate.map(|r| {
                    #[allow(
                        clippy::cast_possible_truncation,
                        clippy::cast_sign_loss,
                        clippy::cast_precision_loss,
                        reason = "bounded: rate <= 50000, duration <= 600"
                    )]
                    let n = (r * args.duration as f64).ceil() as usize;
                    n
                });
                args.requests.or(by_rate).unwrap_or(DEFAULT_MESSAGES)
            });
            let header = sign(&args.mix, wanted.clamp(1, MAX_MESSAGES), cert_dir)?;
            sign_messages(&args.mix, &header)?
        }
        (None, None) => anyhow::bail!("give --corpus or --cert-dir"),
    };

    let max_requests = args.requests.unwrap_or(MAX_REQUESTS);
    let window = (args.concurrency * 2).max(16);
    let planned = plan::plan(
        args.mix.seed,
        messages.len(),
        max_requests,
        args.duplicates,
        window,
    );
    let duplicate_sends = planned.duplicates;
    let plan_len = planned.order.len();

    let mut db = match &database {
        Some(url) => Some(connect(url.as_str())?),
        None => None,
    };
    let before = match db.as_mut() {
        Some(conn) => Some(check::counts(conn).context("counting rows before the run")?),
        None => None,
    };

    let options = RunOptions {
        target,
        concurrency: args.concurrency,
        duration: Duration::from_secs(args.duration),
        rate: args.rate,
        timeout: Duration::from_secs(args.timeout),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.client_threads)
        .enable_all()
        .build()?;
    let messages = Arc::new(messages);
    let plan = Arc::new(planned.order);
    eprintln!(
        "loadgen: {} requests planned ({duplicate_sends} duplicate sends) to {}",
        plan_len, options.target.url
    );
    let result = runtime.block_on(run(Arc::clone(&messages), plan, &options))?;

    let ended_by = if result.started < plan_len {
        "duration"
    } else if args.requests == Some(plan_len) {
        "count"
    } else {
        "messages_exhausted"
    };
    let mode = if args.rate.is_some() {
        "open"
    } else {
        "closed"
    };
    let planned_dups = duplicate_sends.min(result.started);
    let summary = summarize(
        &result.tally,
        result.elapsed,
        mode,
        args.concurrency,
        args.rate,
        planned_dups,
        ended_by,
    );
    print!("{summary}");

    let report = match (db.as_mut(), before) {
        (Some(conn), Some(before)) => {
            let (expected, ids) = Expected::from_tally(&result.tally, &messages);
            let (acked_events, acked_messages) =
                check::rows_for(conn, &ids).context("counting acknowledged rows")?;
            let after = check::counts(conn).context("counting rows after the run")?;
            let observed = Observed {
                before,
                after,
                acked_events,
                acked_messages,
            };
            let report = check::evaluate(&expected, &observed);
            print!("{report}");
            Some(report)
        }
        _ => None,
    };

    if let Some(path) = &args.json {
        let file =
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        serde_json::to_writer_pretty(
            BufWriter::new(file),
            &Report {
                summary: &summary,
                check: report.as_ref(),
            },
        )?;
    }
    Ok(report.is_none_or(|r| r.passed) && summary.ok > 0)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Generate(args) => generate(args).map(|()| true),
        Command::Run(args) => run_command(args),
        Command::CheckSuppressions(args) => check_suppressions(args),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("ses-webhook-loadgen: {error:#}");
            ExitCode::from(2)
        }
    }
}
