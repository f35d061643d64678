//! The command line: `run`, `check`, `diagnose`, `demo`, `config check`, `audit`, `report`,
//! `status`.
//!
//! Each subcommand parses its arguments into domain values, calls the library, and prints.
//! A command exits 0 when it reached a verdict (whatever the verdict) or did what was asked,
//! and non-zero with a one-line reason otherwise. No business logic lives here.

use crate::check::{check_span, Engine};
use crate::config::{Config, Secrets};
use crate::diagnosis::verdict::{Report, Step, StepId, StepStatus, VerdictCode};
use crate::diagnosis::{render, rules};
use crate::domain::{CheckKey, Environment, LocationId, Region};
use crate::metrics::Metrics;
use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use tracing::Instrument;

/// linkbot: from a Satellite Link "cannot get IAM token" alert to a diagnosis in one Slack thread.
#[derive(Debug, Parser)]
#[command(name = "linkbot", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Output format of a verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    /// Readable text.
    #[default]
    Text,
    /// One JSON object (SPEC §4 fields).
    Json,
}

/// Output format of `linkbot report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum ReportFormat {
    /// Readable text, with the per-day bar chart.
    #[default]
    Text,
    /// One JSON object (durations in milliseconds).
    Json,
    /// Markdown tables.
    Markdown,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the Slack bot (Socket Mode).
    Run {
        /// The configuration file.
        #[arg(long, default_value = "bot.toml")]
        config: PathBuf,
    },
    /// Run one check from a terminal: directory → Jenkins → artifacts → verdict.
    Check {
        /// The location id (20 characters of 0-9a-v).
        location: String,
        /// prod or stage (default: `[check] default_environment`).
        #[arg(long = "env")]
        environment: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
        /// The configuration file.
        #[arg(long, default_value = "bot.toml")]
        config: PathBuf,
    },
    /// Diagnose artifacts already downloaded (the two .log files in one folder).
    Diagnose {
        /// The folder holding connector_getConnectorAPIKey.log and connector_sl_configMap.log.
        #[arg(long)]
        dir: PathBuf,
        /// The tugboat's region, e.g. us-east.
        #[arg(long)]
        region: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// The whole flow with no credentials: simulated Slack, directory and Jenkins, in process.
    Demo,
    /// Configuration tools.
    Config {
        /// What to do with the configuration.
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// The audit log: checks and escalations.
    Audit {
        /// The configuration file (for `[store] url`).
        #[arg(long, default_value = "bot.toml")]
        config: PathBuf,
        /// Only entries at or after this time (RFC 3339, e.g. 2026-11-28T00:00:00Z, or a duration like 24h).
        #[arg(long)]
        since: Option<String>,
        /// Only this location.
        #[arg(long)]
        location: Option<String>,
        /// With `--location`: the timeline of the location's newest incident (fired, check,
        /// verdict, repeats, escalations, pages, re-runs, fixed, resolved) with durations.
        #[arg(long, requires = "location")]
        timeline: bool,
        /// Output format of `--timeline`.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// The report of a period: incidents, verdict mix, time to diagnosis and resolution,
    /// pages and escalations, top locations, Jenkins job failures, feedback precision, per day.
    Report {
        /// The configuration file (for `[store] url`).
        #[arg(long, default_value = "bot.toml")]
        config: PathBuf,
        /// Where the period starts: a duration back from now (30m, 24h, 7d) or an RFC 3339 time.
        /// At most 92 days.
        #[arg(long, default_value = "7d")]
        since: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: ReportFormat,
    },
    /// The checks in flight.
    Status {
        /// The configuration file (for `[store] url`).
        #[arg(long, default_value = "bot.toml")]
        config: PathBuf,
    },
}

/// `linkbot config …`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate a configuration and say what is wrong, with line and key.
    Check {
        /// The file to check.
        file: PathBuf,
    },
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Run { config } => {
            let config = Config::load(&config)?;
            let secrets = Secrets::from_env()?;
            crate::app::run(Arc::new(config), secrets).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Check {
            location,
            environment,
            format,
            config,
        } => {
            let location = LocationId::parse(&location)?;
            let config = Config::load(&config)?;
            let environment = match environment {
                Some(e) => Environment::parse(&e)?,
                None => config.check.default_environment,
            };
            config.environment(environment)?;
            let secrets = Secrets::from_env()?;
            crate::app::rustls_provider();
            let net = crate::net::Net::for_bot(&config, &secrets)?;
            let engine = Engine::new(Arc::new(config), &secrets, &net, Metrics::new())?;
            let req = CheckKey {
                location,
                environment,
            };
            let report = engine
                .run(
                    &req,
                    None,
                    &|p| tracing::info!(progress = ?p, "check progress"),
                )
                .instrument(check_span(&req, None))
                .await;
            print_report(&report, format);
            Ok(ExitCode::SUCCESS)
        }
        Command::Diagnose {
            dir,
            region,
            format,
        } => {
            let region = Region::parse(&region)?;
            let report = diagnose_dir(&dir, &region)?;
            print_report(&report, format);
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo => {
            crate::demo::run(&mut std::io::stdout()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Config {
            command: ConfigCommand::Check { file },
        } => match Config::load(&file) {
            Ok(c) => {
                println!(
                    "{}: ok ({} environment(s), {} channel(s), {} escalation target(s))",
                    file.display(),
                    c.environments.len(),
                    c.slack.channels.len(),
                    c.escalation.len()
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                eprintln!("{e}");
                Ok(ExitCode::from(1))
            }
        },
        Command::Audit {
            config,
            since,
            location,
            timeline,
            format,
        } => {
            let config = Config::load(&config)?;
            let since = since.map(|s| parse_since(&s)).transpose()?;
            let location = location.map(|l| LocationId::parse(&l)).transpose()?;
            let store = crate::store::open(&config.resolved_store_url(&Secrets::from_env()?))
                .await
                .context("cannot open the store")?;
            if let (true, Some(location)) = (timeline, &location) {
                let Some(timeline) = crate::incident::timeline(&*store, location).await? else {
                    eprintln!("No incident for {location}.");
                    return Ok(ExitCode::FAILURE);
                };
                match format {
                    Format::Json => println!("{}", serde_json::to_string_pretty(&timeline)?),
                    Format::Text => print!("{}", crate::audit_table::render_timeline(&timeline)),
                }
                return Ok(ExitCode::SUCCESS);
            }
            let entries = store.audit(since, location.as_ref(), 1000).await?;
            print!("{}", crate::audit_table::render_audit(&entries));
            Ok(ExitCode::SUCCESS)
        }
        Command::Report {
            config,
            since,
            format,
        } => {
            let config = Config::load(&config)?;
            let since = crate::report::period::Since::parse(&since)?;
            let period = crate::report::period::Period::up_to(since, chrono::Utc::now())?;
            let store = crate::store::open(&config.resolved_store_url(&Secrets::from_env()?))
                .await
                .context("cannot open the store")?;
            let report = crate::report::gather(&*store, period)
                .await
                .context("cannot read the report's rows from the store")?;
            store.close().await;
            use crate::report::render;
            match format {
                ReportFormat::Text => print!("{}", render::text(&report)),
                ReportFormat::Json => println!("{}", render::json(&report)),
                ReportFormat::Markdown => print!("{}", render::markdown(&report)),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { config } => {
            let config = Config::load(&config)?;
            let store = crate::store::open(&config.resolved_store_url(&Secrets::from_env()?))
                .await
                .context("cannot open the store")?;
            let checks = store.in_flight().await?;
            print!("{}", render_in_flight(&checks, chrono::Utc::now()));
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Parses `--since`: RFC 3339, or a duration back from now (`30m`, `24h`, `7d`); the one
/// parser, shared with `linkbot report` and `/linkbot report` ([`crate::report::period`]).
pub fn parse_since(s: &str) -> Result<chrono::DateTime<chrono::Utc>> {
    Ok(crate::report::period::parse_since(s, chrono::Utc::now())?)
}

/// Diagnoses the two artifacts in `dir` against `region`. A missing file is `artifact_missing`.
pub fn diagnose_dir(dir: &std::path::Path, region: &Region) -> Result<Report> {
    if !dir.is_dir() {
        anyhow::bail!("{} is not a folder", dir.display());
    }
    let mut logs = Vec::new();
    for name in [
        crate::check::API_KEY_ARTIFACT,
        crate::check::CONFIGMAP_ARTIFACT,
    ] {
        let path = dir.join(name);
        match read_capped(&path, crate::config::DEFAULT_ARTIFACT_MAX_BYTES) {
            Ok(Some(bytes)) => logs.push(bytes),
            Ok(None) => {
                let msg = format!("`{name}` is not in {}.", dir.display());
                let d = rules::diagnose(b"", b"", region);
                let mut report = Report::offline(&d, region);
                report.verdict = VerdictCode::ArtifactMissing;
                report.confirmed = false;
                report.summary = msg.clone();
                report.key_fingerprint = None;
                report.region_found = None;
                report.steps = vec![Step::new(StepId::ApiKey, StepStatus::Failed, vec![msg])];
                report.next_actions = crate::diagnosis::verdict::next_actions(
                    VerdictCode::ArtifactMissing,
                    Some(region),
                );
                return Ok(report);
            }
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }
    let d = rules::diagnose(&logs[0], &logs[1], region);
    Ok(Report::offline(&d, region))
}

/// Reads a file of at most `max` bytes; `None` when it does not exist.
/// Reads at most `max` bytes of a regular file (`None` when there is none). Anything else (a FIFO,
/// a device, a folder) is refused from its metadata before it is opened: opening a FIFO would
/// wait for a writer forever, and a device may never end. Checked again on the open file.
fn read_capped(path: &std::path::Path, max: u64) -> std::io::Result<Option<Vec<u8>>> {
    use std::io::Read;
    let not_regular = || {
        std::io::Error::other("not a regular file: copy the downloaded artifact into the folder")
    };
    let too_large = || {
        std::io::Error::other(format!(
            "larger than {max} bytes (artifact_max_bytes, the cap of the Jenkins download)"
        ))
    };
    match std::fs::metadata(path) {
        Ok(m) if !m.is_file() => return Err(not_regular()),
        Ok(m) if m.len() > max => return Err(too_large()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    }
    let file = std::fs::File::open(path)?;
    if !file.metadata()?.is_file() {
        return Err(not_regular());
    }
    let mut buf = Vec::new();
    file.take(max + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > max {
        return Err(too_large());
    }
    Ok(Some(buf))
}

/// The checks in flight as a table.
pub fn render_in_flight(
    checks: &[crate::store::InFlight],
    now: chrono::DateTime<chrono::Utc>,
) -> String {
    if checks.is_empty() {
        return "No checks in flight.\n".into();
    }
    let mut out = String::from("LOCATION               ENV    STAGE        RUNNING  SOURCE   OWNER                WAITERS\n");
    for c in checks {
        let secs = (now - c.started_at).num_seconds().max(0);
        out.push_str(&format!(
            "{:<22} {:<6} {:<12} {:>5}s   {:<8} {:<20} {}\n",
            c.key.location,
            c.key.environment,
            c.stage,
            secs,
            c.requested_by.source.as_str(),
            c.owner,
            c.waiters.len()
        ));
    }
    out
}

fn print_report(report: &Report, format: Format) {
    match format {
        Format::Text => print!("{}", render::text(report)),
        Format::Json => println!("{}", render::json(report)),
    }
}
