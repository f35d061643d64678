//! Configuration: `bot.toml` for everything that is not a secret, the environment for secrets.
//!
//! This is the only module that reads the process environment. `bot.toml` is parsed strictly
//! (unknown keys are errors) and validated into typed values; every problem names the file,
//! the line, the key and what is wrong. Secrets never come from `bot.toml`: they come from
//! `NAME` or `NAME_FILE` and are wrapped in [`Secret`] at once.

use crate::diagnosis::verdict::VerdictCode;
use crate::domain::{
    BaseUrl, Carrier, Datacenter, Environment, GithubRepo, Region, RegionTable, SlackChannelId,
};
use crate::net::Timeouts;
use crate::report::weekly::WeeklyAt;
use crate::secret::Secret;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use url::Url;

/// One thing wrong with a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line in the file, when known.
    pub line: Option<usize>,
    /// The key, as `table.key`.
    pub key: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// Why a configuration could not be loaded: the file and every problem found in it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file was read but is not a valid configuration.
    #[error("{}", render_problems(path, problems))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, in file order.
        problems: Vec<Problem>,
    },
    /// A secret's `NAME_FILE` could not be read.
    #[error("cannot read {var}_FILE ({path}): {source}")]
    SecretFile {
        /// The variable.
        var: String,
        /// The file it names.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A secret's `NAME_FILE` names something that cannot be a secret file.
    #[error("{var}_FILE ({path}) {reason}")]
    SecretFileRefused {
        /// The variable.
        var: String,
        /// The file it names.
        path: PathBuf,
        /// What is wrong and the fix.
        reason: String,
    },
    /// Both `NAME` and `NAME_FILE` are set: which one is meant cannot be told.
    #[error("{var} and {var}_FILE are both set: keep one (unset {var} to use the mounted file, or unset {var}_FILE)")]
    SecretTwice {
        /// The variable.
        var: String,
    },
}

/// The largest secret file read (`NAME_FILE`): a token is under 1 KiB, a store URL a few hundred bytes.
pub const SECRET_FILE_MAX_BYTES: u64 = 64 * 1024;
/// The default `[check] artifact_max_bytes`: the largest artifact read, downloaded from Jenkins
/// or from a folder by `linkbot diagnose`.
pub const DEFAULT_ARTIFACT_MAX_BYTES: u64 = 4 * 1024 * 1024;
/// The shortest `poll_interval_min_ms` accepted: denser polling only loads Jenkins.
pub const POLL_INTERVAL_FLOOR_MS: u64 = 250;

fn render_problems(path: &Path, problems: &[Problem]) -> String {
    let mut out = String::new();
    for (i, p) in problems.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        match p.line {
            Some(line) => out.push_str(&format!(
                "{}:{}: {}: {}",
                path.display(),
                line,
                p.key,
                p.message
            )),
            None => out.push_str(&format!("{}: {}: {}", path.display(), p.key, p.message)),
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The file as written.

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    slack: RawSlack,
    #[serde(default)]
    check: RawCheck,
    #[serde(default)]
    environments: BTreeMap<String, RawEnvironment>,
    #[serde(default)]
    carriers: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    regions: BTreeMap<String, String>,
    #[serde(default)]
    directory: RawTimeouts,
    #[serde(default)]
    jenkins: RawTimeouts,
    #[serde(default)]
    iam: RawIam,
    #[serde(default)]
    escalation: BTreeMap<String, RawEscalation>,
    #[serde(default)]
    pagerduty: RawUrlTable,
    #[serde(default)]
    github: RawGithub,
    #[serde(default)]
    alertmanager: RawTimeouts,
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    store: RawStore,
    #[serde(default)]
    tls: RawTls,
    report: Option<RawReport>,
    #[serde(default)]
    storm: RawStorm,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSlack {
    api_url: Option<String>,
    #[serde(default)]
    channels: Vec<String>,
    oncall_usergroup: Option<String>,
    #[serde(default)]
    alert_sources: Vec<String>,
    connections: Option<usize>,
    request_timeout_secs: Option<u64>,
    connect_timeout_secs: Option<u64>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    default_environment: Option<String>,
    job_timeout_secs: Option<u64>,
    result_ttl_secs: Option<u64>,
    max_concurrent: Option<usize>,
    runbook_url: Option<String>,
    artifact_max_bytes: Option<u64>,
    poll_interval_min_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnvironment {
    xo_url: Option<String>,
    jenkins_url: Option<String>,
    jenkins_job: Option<String>,
    branch: Option<String>,
    env_branch: Option<String>,
    alertmanager_url: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawIam {
    verify_key: Option<bool>,
    url: Option<String>,
    request_timeout_secs: Option<u64>,
    connect_timeout_secs: Option<u64>,
}

/// `[storm]` (optional).
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawStorm {
    enabled: Option<bool>,
    threshold: Option<u64>,
    window_secs: Option<u64>,
    sample: Option<u64>,
    max_builds_per_minute: Option<u64>,
}

/// `[directory]`, `[jenkins]` and `[alertmanager]`: the bounds on one request (their URLs are per environment).
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTimeouts {
    request_timeout_secs: Option<u64>,
    connect_timeout_secs: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEscalation {
    title: Option<String>,
    slack_channel: Option<String>,
    #[serde(default)]
    pagerduty: bool,
    github_repo: Option<String>,
    owns: Option<Vec<String>>,
    #[serde(default)]
    close_issue_on_resolve: bool,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawUrlTable {
    url: Option<String>,
    request_timeout_secs: Option<u64>,
    connect_timeout_secs: Option<u64>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawGithub {
    api_url: Option<String>,
    request_timeout_secs: Option<u64>,
    connect_timeout_secs: Option<u64>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<String>,
    unhealthy_after_disconnected_secs: Option<u64>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawStore {
    url: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTls {
    ca_file: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawReport {
    channel: Option<String>,
    weekly_at: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// The validated configuration.

/// `[slack]`.
#[derive(Debug, Clone)]
pub struct SlackConfig {
    /// Base URL of the Web API, ending in `/api/` (tests point it at a local fake).
    pub api_url: Url,
    /// Channel ids where checks may run and alerts are watched.
    pub channels: Vec<SlackChannelId>,
    /// The user group whose members may escalate and re-run (none: anyone in the channels).
    pub oncall_usergroup: Option<String>,
    /// Bot ids or app ids whose messages are alerts.
    pub alert_sources: Vec<String>,
    /// Socket Mode connections to keep open.
    pub connections: usize,
    /// The bound on one Web API call (`request_timeout_secs`, default 10 s).
    pub request_timeout: Duration,
    /// The bound on the Socket Mode WebSocket handshake and its `hello`
    /// (`connect_timeout_secs`, default 10 s).
    pub connect_timeout: Duration,
}

/// `[check]`.
#[derive(Debug, Clone)]
pub struct CheckConfig {
    /// The environment when a request names none.
    pub default_environment: Environment,
    /// How long a Jenkins job may take, queue included.
    pub job_timeout: Duration,
    /// How long a finished result is reused.
    pub result_ttl: Duration,
    /// How many checks may run at once.
    pub max_concurrent: usize,
    /// Link to the runbook shown with every verdict.
    pub runbook_url: String,
    /// The largest artifact downloaded, in bytes.
    pub artifact_max_bytes: u64,
    /// The shortest wait between two Jenkins polls (polling is sparse early, dense near the
    /// build's expected end, never denser than this).
    pub poll_interval_min: Duration,
}

/// `[environments.<env>]`: where the directory and Jenkins are for one environment.
#[derive(Debug, Clone)]
pub struct EnvironmentConfig {
    /// Base URL of the cluster directory.
    pub xo_url: BaseUrl,
    /// Base URL of Jenkins.
    pub jenkins_url: BaseUrl,
    /// The job's path, folders separated by `/`.
    pub jenkins_job: Vec<String>,
    /// `BRANCH`.
    pub branch: String,
    /// `ENV_Branch`.
    pub env_branch: String,
    /// Alertmanager's base URL (`alertmanager_url`, optional): with it, diagnoses offer
    /// "Silence…" (Alertmanager API v2 silences); without it, they do not.
    pub alertmanager_url: Option<BaseUrl>,
}

/// `[iam]`.
#[derive(Debug, Clone)]
pub struct IamConfig {
    /// Whether to ask IAM whether it accepts the key.
    pub verify_key: bool,
    /// IAM's base URL.
    pub url: BaseUrl,
}

/// The bounds on one HTTP request of each client, from `request_timeout_secs` and
/// `connect_timeout_secs` in the client's table (defaults: the client's `TIMEOUTS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientTimeouts {
    /// `[directory]` (default 20 s, 5 s to connect).
    pub directory: Timeouts,
    /// `[jenkins]` (default 30 s, 10 s to connect).
    pub jenkins: Timeouts,
    /// `[iam]` (default 15 s, 5 s to connect).
    pub iam: Timeouts,
    /// `[pagerduty]` (default 10 s, 10 s to connect).
    pub pagerduty: Timeouts,
    /// `[github]` (default 10 s, 10 s to connect).
    pub github: Timeouts,
    /// `[alertmanager]` (default 10 s, 5 s to connect).
    pub alertmanager: Timeouts,
}

/// The longest `request_timeout_secs` / `connect_timeout_secs` accepted for a client, in seconds.
pub const CLIENT_TIMEOUT_MAX_SECS: u64 = 300;

/// `[escalation.<name>]`: one team that can be escalated to (the escalation workflow's type).
pub use crate::escalation::EscalationTarget;

/// `[report]`: the weekly report's channel and time (optional: no weekly post without it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportConfig {
    /// Where the weekly report is posted.
    pub channel: SlackChannelId,
    /// When (UTC); `Mon 09:00` unless `weekly_at` says otherwise.
    pub weekly_at: WeeklyAt,
}

/// The `weekly_at` of a `[report]` table that does not set it.
pub const DEFAULT_WEEKLY_AT: &str = "Mon 09:00";

/// The whole validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// `[slack]`.
    pub slack: SlackConfig,
    /// `[check]`.
    pub check: CheckConfig,
    /// `[environments.*]`.
    pub environments: BTreeMap<Environment, EnvironmentConfig>,
    /// `[carriers]`: fallback carriers per datacenter, in preference order.
    pub carriers: BTreeMap<Datacenter, Vec<Carrier>>,
    /// Built-in regions with `[regions]` on top.
    pub regions: RegionTable,
    /// `[iam]`.
    pub iam: IamConfig,
    /// `[escalation.*]`, in key order.
    pub escalation: Vec<EscalationTarget>,
    /// For each verdict, the names of the targets that own it, in the order their tables
    /// appear in bot.toml (most relevant first). Every verdict has one when any target exists.
    owners: HashMap<VerdictCode, Vec<String>>,
    /// `[pagerduty] url`.
    pub pagerduty_url: BaseUrl,
    /// `[github] api_url`.
    pub github_api_url: BaseUrl,
    /// The bounds on each client's requests (`request_timeout_secs`, `connect_timeout_secs`).
    pub timeouts: ClientTimeouts,
    /// `[server] listen`.
    pub listen: SocketAddr,
    /// `[server] unhealthy_after_disconnected_secs`: `/healthz` fails once Socket Mode has been
    /// disconnected this long (default 300 s), so the orchestrator restarts a wedged process.
    pub unhealthy_after_disconnected: Duration,
    /// `[store] url` (before `LINKBOT_STORE_URL` overrides it).
    pub store_url: String,
    /// `[tls] ca_file`: a PEM bundle trusted on top of the platform store and `SSL_CERT_FILE`
    /// (read when the bot starts; see [`crate::net`]).
    pub tls_ca_file: Option<PathBuf>,
    /// `[report]`: the weekly report, when configured.
    pub report: Option<ReportConfig>,
    /// `[storm]`: when many locations fire at once (the storm workflow's type).
    pub storm: StormSettings,
}

/// `[storm]`: the storm workflow's settings (defaults when the table is left out).
pub use crate::storm::StormSettings;

struct Validator<'a> {
    source: &'a str,
    problems: Vec<Problem>,
}

impl<'a> Validator<'a> {
    fn problem(&mut self, table: &str, key: &str, message: impl Into<String>) {
        let full = if table.is_empty() {
            key.to_string()
        } else {
            format!("{table}.{key}")
        };
        self.problems.push(Problem {
            line: find_line(self.source, table, key),
            key: full,
            message: message.into(),
        });
    }

    /// `[table] request_timeout_secs` / `connect_timeout_secs`: each between 1 and
    /// [`CLIENT_TIMEOUT_MAX_SECS`], `default` for a key left out.
    fn timeouts(
        &mut self,
        table: &str,
        request: Option<u64>,
        connect: Option<u64>,
        default: Timeouts,
    ) -> Timeouts {
        let mut bound = |key: &str, secs: Option<u64>, default: Duration| match secs {
            None => default,
            Some(s) if (1..=CLIENT_TIMEOUT_MAX_SECS).contains(&s) => Duration::from_secs(s),
            Some(s) => {
                self.problem(
                    table,
                    key,
                    format!(
                        "{s} s: must be between 1 and {CLIENT_TIMEOUT_MAX_SECS} seconds (the default is {})",
                        default.as_secs()
                    ),
                );
                default
            }
        };
        Timeouts::new(
            bound("request_timeout_secs", request, default.request),
            bound("connect_timeout_secs", connect, default.connect),
        )
    }

    /// `[storm]`: every key optional, each within its bounds; the sample no larger than the
    /// threshold (the locations of a storm's first window are the ones it samples from).
    fn storm(&mut self, raw: &RawStorm) -> StormSettings {
        let d = StormSettings::default();
        let mut bounded = |key: &str,
                           value: Option<u64>,
                           range: std::ops::RangeInclusive<u64>,
                           default: u64| match value {
            None => default,
            Some(n) if range.contains(&n) => n,
            Some(n) => {
                self.problem(
                    "storm",
                    key,
                    format!(
                        "{n}: must be between {} and {} (the default is {default})",
                        range.start(),
                        range.end()
                    ),
                );
                default
            }
        };
        let threshold = bounded(
            "threshold",
            raw.threshold,
            1..=100_000,
            u64::from(d.threshold),
        );
        let window = bounded(
            "window_secs",
            raw.window_secs,
            1..=86_400,
            d.window.as_secs(),
        );
        let sample = bounded("sample", raw.sample, 1..=50, u64::from(d.sample));
        let per_minute = bounded(
            "max_builds_per_minute",
            raw.max_builds_per_minute,
            1..=600,
            u64::from(d.max_builds_per_minute),
        );
        if sample > threshold {
            self.problem(
                "storm",
                "sample",
                format!("{sample}: must not exceed `threshold` ({threshold}): the sample is drawn from the locations that declared the storm"),
            );
        }
        StormSettings {
            enabled: raw.enabled.unwrap_or(d.enabled),
            threshold: threshold as u32,
            window: Duration::from_secs(window),
            sample: sample as u32,
            max_builds_per_minute: per_minute as u32,
        }
    }

    fn url(
        &mut self,
        table: &str,
        key: &str,
        value: Option<&str>,
        default: Option<&str>,
    ) -> BaseUrl {
        let fallback = || BaseUrl::parse("http://invalid.invalid/").expect("static URL");
        let Some(v) = value.or(default) else {
            self.problem(table, key, "is required (a URL)");
            return fallback();
        };
        // A URL is echoed in a problem only when it cannot hold credentials (no `@`).
        let shown = if v.contains('@') {
            "the value (not shown: it may hold credentials)".to_string()
        } else {
            format!("`{v}`")
        };
        match Url::parse(v) {
            Ok(u) if has_credentials(&u) => {
                self.problem(table, key, CREDENTIALS_IN_URL);
                fallback()
            }
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
                BaseUrl::new(u).unwrap_or_else(|_| fallback())
            }
            Ok(_) => {
                self.problem(table, key, format!("{shown} must be an http(s) URL"));
                fallback()
            }
            Err(e) => {
                self.problem(table, key, format!("{shown} is not a URL ({e})"));
                fallback()
            }
        }
    }
}

/// What a URL key holding `user:password@` is told (never its value).
const CREDENTIALS_IN_URL: &str = "holds credentials (`user:password@`): remove them from the URL; linkbot sends its credentials from the environment (SPEC §6)";

/// Whether a URL carries a user name or a password.
fn has_credentials(url: &Url) -> bool {
    !url.username().is_empty() || url.password().is_some()
}

/// The 1-based line where `key` is set inside `[table]` (or the table header for an empty key).
fn find_line(source: &str, table: &str, key: &str) -> Option<usize> {
    let mut current = String::new();
    let mut header_line = None;
    for (i, raw) in source.lines().enumerate() {
        let line = raw.trim();
        if let Some(h) = line.strip_prefix('[').and_then(|l| l.split(']').next()) {
            current = h.trim().trim_start_matches('[').trim().to_string();
            if current == table {
                header_line = Some(i + 1);
            }
            continue;
        }
        if current == table && !key.is_empty() {
            let k = line
                .split('=')
                .next()
                .unwrap_or("")
                .trim()
                .trim_matches('"');
            if k == key && line.contains('=') {
                return Some(i + 1);
            }
        }
    }
    header_line
}

impl Config {
    /// Reads and validates a `bot.toml`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let source = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&source).map_err(|problems| ConfigError::Invalid {
            path: path.to_path_buf(),
            problems,
        })
    }

    /// Parses and validates configuration text; every problem found, in file order.
    pub fn parse(source: &str) -> Result<Config, Vec<Problem>> {
        let raw: RawConfig = toml::from_str(source).map_err(|e| {
            let line = e
                .span()
                .map(|s| source[..s.start.min(source.len())].lines().count().max(1));
            vec![Problem {
                line,
                key: "toml".into(),
                message: e.message().trim().to_string(),
            }]
        })?;
        let mut v = Validator {
            source,
            problems: Vec::new(),
        };

        // [slack]
        let mut slack = SlackConfig {
            api_url: v
                .url(
                    "slack",
                    "api_url",
                    raw.slack.api_url.as_deref(),
                    Some("https://slack.com/api/"),
                )
                .into_url(),
            channels: Vec::new(),
            oncall_usergroup: raw.slack.oncall_usergroup.clone().filter(|s| !s.is_empty()),
            alert_sources: raw.slack.alert_sources.clone(),
            connections: raw.slack.connections.unwrap_or(2),
            request_timeout: Duration::from_secs(raw.slack.request_timeout_secs.unwrap_or(10)),
            connect_timeout: Duration::from_secs(raw.slack.connect_timeout_secs.unwrap_or(10)),
        };
        for (key, secs) in [
            ("request_timeout_secs", raw.slack.request_timeout_secs),
            ("connect_timeout_secs", raw.slack.connect_timeout_secs),
        ] {
            if secs.is_some_and(|s| !(1..=300).contains(&s)) {
                v.problem("slack", key, "must be between 1 and 300 seconds");
            }
        }
        if raw.slack.channels.is_empty() {
            v.problem(
                "slack",
                "channels",
                "lists no channel: add the on-call channel ids, e.g. `channels = [\"C0ONCALL\"]`",
            );
        }
        if raw
            .slack
            .oncall_usergroup
            .as_deref()
            .is_some_and(str::is_empty)
        {
            v.problem(
                "slack",
                "oncall_usergroup",
                "is empty: set a user group id (e.g. `S0ONCALL`), or leave the key out to let everyone in the channels escalate",
            );
        }
        for c in &raw.slack.channels {
            match SlackChannelId::parse(c) {
                Ok(c) => slack.channels.push(c),
                Err(e) => v.problem("slack", "channels", e.to_string()),
            }
        }
        if let Some(g) = &slack.oncall_usergroup {
            if !is_slack_id(g, &['S']) {
                v.problem(
                    "slack",
                    "oncall_usergroup",
                    format!("`{g}` is not a user group id (e.g. `S0ONCALL`)"),
                );
            }
        }
        for s in &slack.alert_sources {
            if !is_slack_id(s, &['B', 'A']) {
                v.problem(
                    "slack",
                    "alert_sources",
                    format!("`{s}` is not a bot id (B…) or app id (A…)"),
                );
            }
        }
        if !(1..=10).contains(&slack.connections) {
            v.problem("slack", "connections", "must be between 1 and 10");
        }

        // [check]
        let default_environment = match raw.check.default_environment.as_deref() {
            None => Environment::Prod,
            Some(s) => Environment::parse(s).unwrap_or_else(|e| {
                v.problem("check", "default_environment", e.to_string());
                Environment::Prod
            }),
        };
        let job_timeout_secs = raw.check.job_timeout_secs.unwrap_or(1800);
        if !(10..=6 * 3600).contains(&job_timeout_secs) {
            v.problem(
                "check",
                "job_timeout_secs",
                "must be between 10 and 21600 seconds",
            );
        }
        let max_concurrent = raw.check.max_concurrent.unwrap_or(16);
        if !(1..=1000).contains(&max_concurrent) {
            v.problem("check", "max_concurrent", "must be between 1 and 1000");
        }
        let artifact_max_bytes = raw
            .check
            .artifact_max_bytes
            .unwrap_or(DEFAULT_ARTIFACT_MAX_BYTES);
        if !(1024..=256 * 1024 * 1024).contains(&artifact_max_bytes) {
            v.problem(
                "check",
                "artifact_max_bytes",
                "must be between 1024 and 268435456",
            );
        }
        // runbook_url is shown in every verdict: it must not carry credentials either.
        if let Some(u) = raw.check.runbook_url.as_deref() {
            match Url::parse(u) {
                Ok(u) if has_credentials(&u) => {
                    v.problem("check", "runbook_url", CREDENTIALS_IN_URL)
                }
                Ok(_) => {}
                Err(e) => v.problem("check", "runbook_url", format!("is not a URL ({e})")),
            }
        }
        let poll_interval_min_ms = raw.check.poll_interval_min_ms.unwrap_or(1000);
        if poll_interval_min_ms < POLL_INTERVAL_FLOOR_MS {
            v.problem(
                "check",
                "poll_interval_min_ms",
                format!("{poll_interval_min_ms} ms polls Jenkins too often: use at least {POLL_INTERVAL_FLOOR_MS} (the default is 1000)"),
            );
        }
        let check = CheckConfig {
            default_environment,
            job_timeout: Duration::from_secs(job_timeout_secs),
            result_ttl: Duration::from_secs(raw.check.result_ttl_secs.unwrap_or(600)),
            max_concurrent,
            runbook_url: raw
                .check
                .runbook_url
                .clone()
                .unwrap_or_else(|| crate::diagnosis::verdict::RUNBOOK_URL.to_string()),
            artifact_max_bytes,
            poll_interval_min: Duration::from_millis(poll_interval_min_ms),
        };

        // [environments.*]
        let mut environments = BTreeMap::new();
        for (name, env) in &raw.environments {
            let table = format!("environments.{name}");
            let Ok(e) = Environment::parse(name) else {
                v.problem(
                    "",
                    &table,
                    format!("`{name}` is not an environment: use `prod` or `stage`"),
                );
                continue;
            };
            let xo_url = v.url(&table, "xo_url", env.xo_url.as_deref(), None);
            let jenkins_url = v.url(&table, "jenkins_url", env.jenkins_url.as_deref(), None);
            let job = env.jenkins_job.clone().unwrap_or_else(|| {
                "Containers-Runtime/armada-cruiser-automated-recovery/armada-ha-master-get-info"
                    .into()
            });
            let jenkins_job: Vec<String> = job.split('/').map(|s| s.trim().to_string()).collect();
            if jenkins_job
                .iter()
                .any(|s| s.is_empty() || s == "job" || s == "." || s == "..")
            {
                v.problem(
                    &table,
                    "jenkins_job",
                    format!(
                        "`{job}` must be folder names separated by `/`, e.g. `Folder/Sub/job-name`"
                    ),
                );
            }
            // Optional: no silence control where it is absent.
            let alertmanager_url = env
                .alertmanager_url
                .as_deref()
                .map(|u| v.url(&table, "alertmanager_url", Some(u), None));
            environments.insert(
                e,
                EnvironmentConfig {
                    xo_url,
                    jenkins_url,
                    jenkins_job,
                    branch: env.branch.clone().unwrap_or_else(|| "master".into()),
                    env_branch: env.env_branch.clone().unwrap_or_else(|| "master".into()),
                    alertmanager_url,
                },
            );
        }
        if environments.is_empty() {
            v.problem(
                "",
                "environments",
                "at least one of `[environments.prod]` or `[environments.stage]` is required",
            );
        } else if !environments.contains_key(&check.default_environment) {
            v.problem(
                "check",
                "default_environment",
                format!(
                    "`{}` has no `[environments.{}]` table",
                    check.default_environment, check.default_environment
                ),
            );
        }

        // [carriers]
        let mut carriers = BTreeMap::new();
        for (dc, names) in &raw.carriers {
            let Ok(d) = Datacenter::parse(dc) else {
                v.problem(
                    "carriers",
                    dc,
                    format!("`{dc}` is not a datacenter (e.g. `wdc04`)"),
                );
                continue;
            };
            let mut list = Vec::new();
            for n in names {
                match Carrier::parse(n) {
                    Ok(c) => list.push(c),
                    Err(e) => v.problem("carriers", dc, e.to_string()),
                }
            }
            carriers.insert(d, list);
        }

        // [regions]
        let mut overrides = Vec::new();
        for (dc, region) in &raw.regions {
            match (Datacenter::parse(dc), Region::parse(region)) {
                (Ok(d), Ok(r)) => overrides.push((d, r)),
                (Err(e), _) => v.problem("regions", dc, e.to_string()),
                (_, Err(e)) => v.problem("regions", dc, e.to_string()),
            }
        }

        // [iam]
        let iam = IamConfig {
            verify_key: raw.iam.verify_key.unwrap_or(false),
            url: v.url(
                "iam",
                "url",
                raw.iam.url.as_deref(),
                Some("https://iam.cloud.ibm.com"),
            ),
        };

        // [escalation.*]
        let mut escalation = Vec::new();
        for (name, t) in &raw.escalation {
            let table = format!("escalation.{name}");
            if t.slack_channel.is_none() && !t.pagerduty && t.github_repo.is_none() {
                v.problem(&table, "slack_channel", "a target needs at least one of `slack_channel`, `pagerduty = true` or `github_repo`");
            }
            let slack_channel = t.slack_channel.as_deref().and_then(|c| {
                SlackChannelId::parse(c)
                    .map_err(|e| v.problem(&table, "slack_channel", e.to_string()))
                    .ok()
            });
            let github_repo = t.github_repo.as_deref().and_then(|r| {
                GithubRepo::parse(r)
                    .map_err(|e| v.problem(&table, "github_repo", e.to_string()))
                    .ok()
            });
            if t.close_issue_on_resolve && t.github_repo.is_none() {
                v.problem(
                    &table,
                    "close_issue_on_resolve",
                    "`close_issue_on_resolve = true` needs a `github_repo` to close issues in",
                );
            }
            let mut owns = Vec::new();
            for code in t.owns.iter().flatten() {
                match VerdictCode::parse(code) {
                    Some(c) if owns.contains(&c) => {
                        v.problem(&table, "owns", format!("`{code}` is listed twice"))
                    }
                    Some(c) => owns.push(c),
                    None => v.problem(
                        &table,
                        "owns",
                        format!(
                            "`{code}` is not a verdict; use one of: {}",
                            VerdictCode::ALL.map(|c| c.as_str()).join(", ")
                        ),
                    ),
                }
            }
            escalation.push(EscalationTarget {
                name: name.clone(),
                title: t.title.clone().unwrap_or_else(|| name.replace('_', " ")),
                slack_channel,
                pagerduty: t.pagerduty,
                github_repo,
                owns,
                close_issue_on_resolve: t.close_issue_on_resolve,
            });
        }
        let owners = owners_in_file_order(&mut v, &escalation);

        let pagerduty_url = v.url(
            "pagerduty",
            "url",
            raw.pagerduty.url.as_deref(),
            Some("https://events.pagerduty.com"),
        );
        let github_api_url = v.url(
            "github",
            "api_url",
            raw.github.api_url.as_deref(),
            Some("https://api.github.com"),
        );
        let timeouts = ClientTimeouts {
            directory: v.timeouts(
                "directory",
                raw.directory.request_timeout_secs,
                raw.directory.connect_timeout_secs,
                crate::directory::TIMEOUTS,
            ),
            jenkins: v.timeouts(
                "jenkins",
                raw.jenkins.request_timeout_secs,
                raw.jenkins.connect_timeout_secs,
                crate::jenkins::TIMEOUTS,
            ),
            iam: v.timeouts(
                "iam",
                raw.iam.request_timeout_secs,
                raw.iam.connect_timeout_secs,
                crate::iam::TIMEOUTS,
            ),
            pagerduty: v.timeouts(
                "pagerduty",
                raw.pagerduty.request_timeout_secs,
                raw.pagerduty.connect_timeout_secs,
                crate::escalation::TIMEOUTS,
            ),
            github: v.timeouts(
                "github",
                raw.github.request_timeout_secs,
                raw.github.connect_timeout_secs,
                crate::escalation::TIMEOUTS,
            ),
            alertmanager: v.timeouts(
                "alertmanager",
                raw.alertmanager.request_timeout_secs,
                raw.alertmanager.connect_timeout_secs,
                crate::alertmanager::TIMEOUTS,
            ),
        };
        let listen_s = raw
            .server
            .listen
            .clone()
            .unwrap_or_else(|| "0.0.0.0:8080".into());
        let listen = listen_s.parse().unwrap_or_else(|_| {
            v.problem(
                "server",
                "listen",
                format!("`{listen_s}` is not an address:port (e.g. `0.0.0.0:8080`)"),
            );
            SocketAddr::from(([127, 0, 0, 1], 0))
        });
        let unhealthy_after = raw.server.unhealthy_after_disconnected_secs.unwrap_or(300);
        if !(1..=86_400).contains(&unhealthy_after) {
            v.problem(
                "server",
                "unhealthy_after_disconnected_secs",
                "must be between 1 and 86400 seconds",
            );
        }
        let store_url = raw
            .store
            .url
            .clone()
            .unwrap_or_else(|| "sqlite://linkbot.db".into());
        if !(store_url.starts_with("sqlite:")
            || store_url.starts_with("postgres://")
            || store_url.starts_with("postgresql://"))
        {
            v.problem("store", "url", "must start with `sqlite:` or `postgres://`");
        }
        if let Ok(u) = Url::parse(&store_url) {
            if u.password().is_some() {
                v.problem("store", "url", "holds a password: put the URL in LINKBOT_STORE_URL (or LINKBOT_STORE_URL_FILE) instead");
            }
        }

        let tls_ca_file = match raw.tls.ca_file.as_deref().map(str::trim) {
            None => None,
            Some("") => {
                v.problem(
                    "tls",
                    "ca_file",
                    "is empty: give the path of a PEM file of CA certificates, or remove the key",
                );
                None
            }
            Some(path) => Some(PathBuf::from(path)),
        };

        // [report]
        let report = raw.report.as_ref().and_then(|r| {
            let channel = match r.channel.as_deref() {
                None => {
                    v.problem(
                        "report",
                        "channel",
                        "is required in [report]: the channel id the weekly report is posted to (e.g. \"C0ONCALL\"), or remove [report]",
                    );
                    None
                }
                Some(c) => SlackChannelId::parse(c)
                    .map_err(|e| v.problem("report", "channel", e.to_string()))
                    .ok(),
            };
            let weekly_at = WeeklyAt::parse(r.weekly_at.as_deref().unwrap_or(DEFAULT_WEEKLY_AT))
                .map_err(|e| v.problem("report", "weekly_at", e.to_string()))
                .ok();
            Some(ReportConfig {
                channel: channel?,
                weekly_at: weekly_at?,
            })
        });
        let storm = v.storm(&raw.storm);

        if !v.problems.is_empty() {
            v.problems.sort_by_key(|p| p.line.unwrap_or(usize::MAX));
            return Err(v.problems);
        }
        Ok(Config {
            slack,
            check,
            environments,
            carriers,
            regions: RegionTable::with_overrides(overrides),
            iam,
            escalation,
            owners,
            pagerduty_url,
            github_api_url,
            timeouts,
            listen,
            unhealthy_after_disconnected: Duration::from_secs(unhealthy_after),
            store_url,
            tls_ca_file,
            report,
            storm,
        })
    }

    /// The environment table, or an error naming the missing table.
    pub fn environment(&self, env: Environment) -> anyhow::Result<&EnvironmentConfig> {
        self.environments
            .get(&env)
            .ok_or_else(|| anyhow::anyhow!("bot.toml has no [environments.{env}] table"))
    }

    /// The store URL to open: `LINKBOT_STORE_URL` when set (it may hold a password), else
    /// `[store] url`. Only [`crate::store::open`] should receive it; its errors redact it.
    pub fn resolved_store_url(&self, secrets: &Secrets) -> String {
        secrets
            .store_url
            .as_ref()
            .map(|s| s.expose().to_string())
            .unwrap_or_else(|| self.store_url.clone())
    }

    /// The targets that own `verdict` (`owns` in bot.toml), most relevant first: in the order
    /// their `[escalation.*]` tables appear in the file. Empty only when there are no targets.
    pub fn owners(&self, verdict: VerdictCode) -> impl Iterator<Item = &EscalationTarget> {
        self.owners
            .get(&verdict)
            .into_iter()
            .flatten()
            .filter_map(|name| self.escalation_target(name))
    }

    /// The escalation target called `name`.
    pub fn escalation_target(&self, name: &str) -> Option<&EscalationTarget> {
        self.escalation.iter().find(|t| t.name == name)
    }
}

/// Which targets own each verdict, ordered by where their tables are in the file. When any
/// target exists, every verdict must have an owner (else a click on a report could not say whom
/// it concerns): a missing one is a problem naming the verdicts and the `owns` key.
fn owners_in_file_order(
    v: &mut Validator<'_>,
    targets: &[EscalationTarget],
) -> HashMap<VerdictCode, Vec<String>> {
    let mut ordered: Vec<&EscalationTarget> = targets.iter().collect();
    ordered.sort_by_key(|t| find_line(v.source, &format!("escalation.{}", t.name), ""));
    let mut owners: HashMap<VerdictCode, Vec<String>> = HashMap::new();
    for t in ordered {
        for code in &t.owns {
            owners.entry(*code).or_default().push(t.name.clone());
        }
    }
    let unowned: Vec<&str> = VerdictCode::ALL
        .iter()
        .filter(|c| !owners.contains_key(c))
        .map(|c| c.as_str())
        .collect();
    if !targets.is_empty() && !unowned.is_empty() {
        // Point at the first target's table: that is where an operator adds `owns`.
        let first = targets
            .iter()
            .min_by_key(|t| find_line(v.source, &format!("escalation.{}", t.name), ""))
            .map(|t| format!("escalation.{}", t.name))
            .unwrap_or_default();
        v.problem(
            &first,
            "owns",
            format!(
                "no `[escalation.*]` target owns {}: add each to the `owns = [...]` list of the team that should be offered (and paged) first",
                unowned.join(", ")
            ),
        );
    }
    owners
}

fn is_slack_id(s: &str, prefixes: &[char]) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if prefixes.contains(&c))
        && s.len() >= 2
        && s.len() <= 24
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

// ---------------------------------------------------------------------------------------------
// Secrets.

/// Every secret the bot may use, each from `NAME` or `NAME_FILE`.
#[derive(Debug, Clone, Default)]
pub struct Secrets {
    /// `SLACK_BOT_TOKEN` (`xoxb-…`).
    pub slack_bot_token: Option<Secret>,
    /// `SLACK_APP_TOKEN` (`xapp-…`).
    pub slack_app_token: Option<Secret>,
    /// `XO_TOKEN`, the directory's bearer token.
    pub xo_token: Option<Secret>,
    /// `JENKINS_USER` (not secret in itself, but kept with its token).
    pub jenkins_user: Option<String>,
    /// `JENKINS_API_TOKEN`.
    pub jenkins_api_token: Option<Secret>,
    /// `PAGERDUTY_ROUTING_KEY`.
    pub pagerduty_routing_key: Option<Secret>,
    /// `GITHUB_TOKEN`.
    pub github_token: Option<Secret>,
    /// `ALERTMANAGER_TOKEN`: sent as `Authorization: Bearer` to Alertmanager (optional).
    pub alertmanager_token: Option<Secret>,
    /// `LINKBOT_STORE_URL`, which overrides `[store] url`.
    pub store_url: Option<Secret>,
    /// `SSL_CERT_FILE`, `SSL_CERT_DIR`, the proxy variables (which may hold a password).
    pub net: NetEnv,
}

/// The environment of outbound connections: extra CAs and the egress proxy. Read here (the only
/// module that reads the environment) and handed to [`crate::net`], which builds the TLS and
/// proxy settings of every client from it.
#[derive(Clone, Default)]
pub struct NetEnv {
    /// `SSL_CERT_FILE`: a PEM bundle trusted on top of the platform store.
    pub ssl_cert_file: Option<PathBuf>,
    /// `SSL_CERT_DIR`: directories (`:`-separated) whose files are PEM certificates to trust.
    pub ssl_cert_dir: Vec<PathBuf>,
    /// `https_proxy` / `HTTPS_PROXY`: the proxy for `https://` and `wss://` (may hold
    /// `user:password@`, hence a [`Secret`]).
    pub https_proxy: Option<Secret>,
    /// `http_proxy` / `HTTP_PROXY`: the proxy for `http://` and `ws://`.
    pub http_proxy: Option<Secret>,
    /// `no_proxy` / `NO_PROXY`: comma-separated hosts, `host:port`, domain suffixes, IPs,
    /// CIDRs, or `*`, reached directly.
    pub no_proxy: Option<String>,
}

impl fmt::Debug for NetEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NetEnv")
            .field("ssl_cert_file", &self.ssl_cert_file)
            .field("ssl_cert_dir", &self.ssl_cert_dir)
            .field("https_proxy", &self.https_proxy.as_ref().map(|_| "<set>"))
            .field("http_proxy", &self.http_proxy.as_ref().map(|_| "<set>"))
            .field("no_proxy", &self.no_proxy)
            .finish()
    }
}

impl NetEnv {
    /// Reads the variables through `lookup` (the environment in production, a map in tests).
    /// The lowercase proxy names win over the uppercase ones, as in curl and Python; an empty
    /// value counts as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> NetEnv {
        let get = |names: &[&str]| {
            names
                .iter()
                .find_map(|n| lookup(n).filter(|v| !v.trim().is_empty()))
        };
        NetEnv {
            ssl_cert_file: get(&["SSL_CERT_FILE"]).map(PathBuf::from),
            ssl_cert_dir: get(&["SSL_CERT_DIR"])
                .map(|dirs| {
                    std::env::split_paths(&dirs)
                        .filter(|p| !p.as_os_str().is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            https_proxy: get(&["https_proxy", "HTTPS_PROXY"]).map(Secret::new),
            http_proxy: get(&["http_proxy", "HTTP_PROXY"]).map(Secret::new),
            no_proxy: get(&["no_proxy", "NO_PROXY"]),
        }
    }
}

/// The names of the secret variables, in the order of SPEC §6.
pub const SECRET_VARS: [&str; 9] = [
    "SLACK_BOT_TOKEN",
    "SLACK_APP_TOKEN",
    "XO_TOKEN",
    "JENKINS_USER",
    "JENKINS_API_TOKEN",
    "PAGERDUTY_ROUTING_KEY",
    "GITHUB_TOKEN",
    "ALERTMANAGER_TOKEN",
    "LINKBOT_STORE_URL",
];

impl Secrets {
    /// Reads every secret from the process environment.
    pub fn from_env() -> Result<Secrets, ConfigError> {
        Secrets::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads every secret through `lookup` (the environment in production, a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Secrets, ConfigError> {
        let get = |var: &str| -> Result<Option<String>, ConfigError> {
            let direct = lookup(var).filter(|v| !v.is_empty());
            let file = lookup(&format!("{var}_FILE")).filter(|p| !p.is_empty());
            match (direct, file) {
                (Some(_), Some(_)) => Err(ConfigError::SecretTwice {
                    var: var.to_string(),
                }),
                (Some(v), None) => Ok(Some(v)),
                (None, None) => Ok(None),
                (None, Some(path)) => read_secret_file(var, Path::new(&path)).map(|s| {
                    Some(s.trim_end_matches(['\n', '\r']).to_string()).filter(|s| !s.is_empty())
                }),
            }
        };
        let secret = |var: &str| get(var).map(|o| o.map(Secret::new));
        Ok(Secrets {
            slack_bot_token: secret("SLACK_BOT_TOKEN")?,
            slack_app_token: secret("SLACK_APP_TOKEN")?,
            xo_token: secret("XO_TOKEN")?,
            jenkins_user: get("JENKINS_USER")?,
            jenkins_api_token: secret("JENKINS_API_TOKEN")?,
            pagerduty_routing_key: secret("PAGERDUTY_ROUTING_KEY")?,
            github_token: secret("GITHUB_TOKEN")?,
            alertmanager_token: secret("ALERTMANAGER_TOKEN")?,
            store_url: secret("LINKBOT_STORE_URL")?,
            net: NetEnv::from_lookup(&lookup),
        })
    }
}

/// Reads a secret file: a regular file (symlinks followed, as Kubernetes mounts them) of at most
/// [`SECRET_FILE_MAX_BYTES`], checked before reading; and never more than that cap plus one byte
/// is read, should the file grow in between (`/dev/zero`, a FIFO or a directory never get read).
fn read_secret_file(var: &str, path: &Path) -> Result<String, ConfigError> {
    use std::io::Read as _;
    let io_error = |source| ConfigError::SecretFile {
        var: var.to_string(),
        path: path.to_path_buf(),
        source,
    };
    let refused = |reason: String| ConfigError::SecretFileRefused {
        var: var.to_string(),
        path: path.to_path_buf(),
        reason,
    };
    let too_large = || {
        refused(format!(
            "is larger than {SECRET_FILE_MAX_BYTES} bytes: point it at the file holding only the secret"
        ))
    };
    let meta = std::fs::metadata(path).map_err(io_error)?;
    if !meta.is_file() {
        return Err(refused(
            "is not a regular file: point it at the file holding the secret (e.g. a mounted Kubernetes Secret key)".into(),
        ));
    }
    if meta.len() > SECRET_FILE_MAX_BYTES {
        return Err(too_large());
    }
    let file = std::fs::File::open(path).map_err(io_error)?;
    let mut bytes = Vec::new();
    file.take(SECRET_FILE_MAX_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io_error)?;
    if bytes.len() as u64 > SECRET_FILE_MAX_BYTES {
        return Err(too_large());
    }
    String::from_utf8(bytes)
        .map_err(|_| refused("is not UTF-8 text: a secret file holds the token as text".into()))
}

/// How logs are written: `LINKBOT_LOG_FORMAT=json` for JSON lines, anything else for text.
pub fn log_format_is_json() -> bool {
    std::env::var("LINKBOT_LOG_FORMAT")
        .map(|v| v.eq_ignore_ascii_case("json"))
        .unwrap_or(false)
}

/// A name for this process in the store's leases: `$HOSTNAME` (the pod name) plus a random
/// suffix, so a restarted pod never mistakes its predecessor's leases for its own.
pub fn instance_name() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "linkbot".into());
    format!("{host}-{:08x}", fastrand::u32(..))
}

/// The log filter from `RUST_LOG`, or `default` when it is not set.
pub fn log_filter(default: &str) -> String {
    std::env::var("RUST_LOG").unwrap_or_else(|_| default.into())
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "line {l}: {}: {}", self.key, self.message),
            None => write!(f, "{}: {}", self.key, self.message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../bot.toml");

    #[test]
    fn the_shipped_example_is_valid() {
        let c = Config::parse(EXAMPLE).unwrap_or_else(|p| panic!("{p:?}"));
        assert_eq!(c.check.default_environment, Environment::Prod);
        assert!(c.environments.contains_key(&Environment::Prod));
        assert_eq!(
            c.environment(Environment::Prod).unwrap().jenkins_job.len(),
            3
        );
        assert!(c.escalation_target("razee").is_some());
    }

    #[test]
    fn problems_name_the_line_and_key() {
        let src = "[slack]\nchannels = [\"C1\"]\n\n[environments.prod]\nxo_url = \"not a url\"\njenkins_url = \"http://127.0.0.1:1\"\n";
        let problems = Config::parse(src).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].line, Some(5));
        assert_eq!(problems[0].key, "environments.prod.xo_url");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        let cases = [
            ("[slack]\nchanels = []\n", "unknown field"),
            ("[environments.dev]\nxo_url = \"http://a\"\n", "not an environment"),
            ("[environments.prod]\nxo_url=\"http://a\"\njenkins_url=\"http://b\"\n[regions]\nxyz = \"us-east\"\n", "not a datacenter"),
            ("[environments.prod]\nxo_url=\"http://a\"\njenkins_url=\"http://b\"\n[store]\nurl = \"postgres://u:pw@db/x\"\n", "LINKBOT_STORE_URL"),
            ("[environments.prod]\nxo_url=\"http://a\"\njenkins_url=\"http://b\"\n[escalation.x]\ntitle = \"X\"\n", "at least one"),
            ("", "at least one of"),
            ("[slack\n", "toml"),
            ("[slack]\nrequest_timeout_secs = 0\n", "request_timeout_secs must be between 1 and 300"),
            ("[slack]\nconnect_timeout_secs = 301\n", "connect_timeout_secs must be between 1 and 300"),
            ("[server]\nunhealthy_after_disconnected_secs = 0\n", "unhealthy_after_disconnected_secs must be between"),
        ];
        for (src, expect) in cases {
            let problems = Config::parse(src).unwrap_err();
            let text = problems
                .iter()
                .map(|p| format!("{} {}", p.key, p.message))
                .collect::<Vec<_>>()
                .join("\n");
            assert!(text.contains(expect), "{src:?} gave {text}");
        }
    }

    #[test]
    fn storm_is_optional_with_defaults_and_validated_with_line_numbers() {
        let base = with(OK_SLACK, "", OK_ENV, "");
        let c = Config::parse(&base).expect("valid without [storm]");
        assert_eq!(c.storm, StormSettings::default());
        assert_eq!(
            (
                c.storm.threshold,
                c.storm.window.as_secs(),
                c.storm.sample,
                c.storm.max_builds_per_minute
            ),
            (20, 300, 3, 10)
        );
        let set = with(
            OK_SLACK,
            "",
            OK_ENV,
            "[storm]\nthreshold = 50\nwindow_secs = 120\nsample = 5\nmax_builds_per_minute = 4\nenabled = false\n",
        );
        let c = Config::parse(&set).expect("valid [storm]");
        assert_eq!(
            c.storm,
            StormSettings {
                enabled: false,
                threshold: 50,
                window: Duration::from_secs(120),
                sample: 5,
                max_builds_per_minute: 4,
            }
        );
        // (table tail, key, message part)
        let bad = [
            (
                "[storm]\nthreshold = 0\n",
                "storm.threshold",
                "between 1 and 100000",
            ),
            (
                "[storm]\nwindow_secs = 0\n",
                "storm.window_secs",
                "between 1 and 86400",
            ),
            ("[storm]\nsample = 0\n", "storm.sample", "between 1 and 50"),
            (
                "[storm]\nmax_builds_per_minute = 601\n",
                "storm.max_builds_per_minute",
                "between 1 and 600",
            ),
            (
                "[storm]\nthreshold = 2\nsample = 3\n",
                "storm.sample",
                "must not exceed `threshold`",
            ),
            ("[storm]\nthreshhold = 2\n", "toml", "unknown field"),
        ];
        for (tail, key, message) in bad {
            let src = with(OK_SLACK, "", OK_ENV, tail);
            let problems = Config::parse(&src).unwrap_err();
            assert_eq!(problems.len(), 1, "{tail}: {problems:?}");
            assert_eq!(problems[0].key, key, "{tail}");
            assert!(
                problems[0].message.contains(message),
                "{tail}: {}",
                problems[0].message
            );
            if key == "toml" {
                continue; // toml names the line of the table holding the unknown key
            }
            let k = key.trim_start_matches("storm.");
            let want = src.lines().position(|l| l.starts_with(k));
            assert_eq!(problems[0].line, want.map(|i| i + 1), "{tail}");
        }
    }

    /// A valid configuration with `extra` lines appended into the right tables.
    fn with(slack: &str, check: &str, env: &str, tail: &str) -> String {
        format!("[slack]\n{slack}\n[check]\n{check}\n[environments.prod]\n{env}\n{tail}")
    }

    const OK_SLACK: &str = "channels = [\"C0ONCALL\"]";
    const OK_ENV: &str = "xo_url = \"http://127.0.0.1:1\"\njenkins_url = \"http://127.0.0.1:2\"";

    #[test]
    fn client_timeouts_default_to_the_clients_own_bounds() {
        let c = Config::parse(&with(OK_SLACK, "", OK_ENV, "")).unwrap();
        assert_eq!(
            c.timeouts,
            ClientTimeouts {
                directory: crate::directory::TIMEOUTS,
                jenkins: crate::jenkins::TIMEOUTS,
                iam: crate::iam::TIMEOUTS,
                pagerduty: crate::escalation::TIMEOUTS,
                github: crate::escalation::TIMEOUTS,
                alertmanager: crate::alertmanager::TIMEOUTS,
            }
        );
        assert_eq!(c.timeouts.jenkins.request, Duration::from_secs(30));
        assert_eq!(c.timeouts.jenkins.connect, Duration::from_secs(10));
        let set = with(
            OK_SLACK,
            "",
            OK_ENV,
            "[directory]\nrequest_timeout_secs = 3\nconnect_timeout_secs = 1\n\
             [jenkins]\nrequest_timeout_secs = 300\nconnect_timeout_secs = 2\n\
             [iam]\nrequest_timeout_secs = 4\n\
             [pagerduty]\nconnect_timeout_secs = 5\n\
             [github]\nrequest_timeout_secs = 6\nconnect_timeout_secs = 6\n",
        );
        let t = Config::parse(&set)
            .unwrap_or_else(|p| panic!("{p:?}"))
            .timeouts;
        let secs = |r, c| Timeouts::new(Duration::from_secs(r), Duration::from_secs(c));
        assert_eq!(t.directory, secs(3, 1));
        assert_eq!(t.jenkins, secs(300, 2));
        assert_eq!(t.iam, secs(4, 5));
        assert_eq!(t.pagerduty, secs(10, 5));
        assert_eq!(t.github, secs(6, 6));
    }

    #[test]
    fn client_timeouts_out_of_range_are_refused_with_line_and_key() {
        // `with` puts the tail from line 8 on: the table header, then the key on line 9.
        for table in [
            "directory",
            "jenkins",
            "iam",
            "pagerduty",
            "github",
            "alertmanager",
        ] {
            for key in ["request_timeout_secs", "connect_timeout_secs"] {
                for (value, shown) in [("0", "0 s"), ("301", "301 s"), ("86400", "86400 s")] {
                    let src = with(
                        OK_SLACK,
                        "",
                        OK_ENV,
                        &format!("[{table}]\n{key} = {value}\n"),
                    );
                    let problems = Config::parse(&src).unwrap_err();
                    assert_eq!(problems.len(), 1, "{src}: {problems:?}");
                    assert_eq!(problems[0].key, format!("{table}.{key}"), "{src}");
                    assert_eq!(problems[0].line, Some(9), "{src}: {problems:?}");
                    assert!(
                        problems[0].message.starts_with(&format!(
                            "{shown}: must be between 1 and 300 seconds (the default is "
                        )),
                        "{src}: {problems:?}"
                    );
                }
                // A negative or fractional number is not a count of seconds: refused by TOML.
                for value in ["-1", "1.5", "\"10\""] {
                    let src = with(
                        OK_SLACK,
                        "",
                        OK_ENV,
                        &format!("[{table}]\n{key} = {value}\n"),
                    );
                    let problems = Config::parse(&src).unwrap_err();
                    assert_eq!(problems[0].line, Some(9), "{src}: {problems:?}");
                }
                let edge = with(OK_SLACK, "", OK_ENV, &format!("[{table}]\n{key} = 1\n"));
                assert!(Config::parse(&edge).is_ok(), "{edge}");
            }
        }
        let unknown = with(OK_SLACK, "", OK_ENV, "[jenkins]\ntimeout_secs = 5\n");
        let problems = Config::parse(&unknown).unwrap_err();
        assert!(
            problems[0].message.contains("unknown field"),
            "{problems:?}"
        );
    }

    #[test]
    fn configs_that_cannot_be_right_are_refused_with_line_key_and_fix() {
        assert!(Config::parse(&with(OK_SLACK, "", OK_ENV, "")).is_ok());
        let cases = [
            (
                with(
                    "channels = [\"C0ONCALL\"]\noncall_usergroup = \"\"",
                    "",
                    OK_ENV,
                    "",
                ),
                3,
                "slack.oncall_usergroup",
                "leave the key out",
            ),
            (
                with("channels = []", "", OK_ENV, ""),
                2,
                "slack.channels",
                "add the on-call channel",
            ),
            (
                with(OK_SLACK, "poll_interval_min_ms = 0", OK_ENV, ""),
                4,
                "check.poll_interval_min_ms",
                "at least 250",
            ),
            (
                with(OK_SLACK, "poll_interval_min_ms = 249", OK_ENV, ""),
                4,
                "check.poll_interval_min_ms",
                "at least 250",
            ),
        ];
        for (src, line, key, fix) in cases {
            let problems = Config::parse(&src).unwrap_err();
            assert_eq!(problems.len(), 1, "{src}: {problems:?}");
            assert_eq!(problems[0].line, Some(line), "{src}: {problems:?}");
            assert_eq!(problems[0].key, key, "{src}");
            assert!(problems[0].message.contains(fix), "{src}: {problems:?}");
        }
        assert!(Config::parse(&with(OK_SLACK, "poll_interval_min_ms = 250", OK_ENV, "")).is_ok());
        // No `[slack]` channels at all is the same mistake.
        let problems = Config::parse(&format!("[environments.prod]\n{OK_ENV}\n")).unwrap_err();
        assert_eq!(problems[0].key, "slack.channels", "{problems:?}");
    }

    #[test]
    fn credentials_in_any_url_are_refused_without_echoing_them() {
        const PASSWORD: &str = "hunter2Secret";
        let cred = format!("http://bot:{PASSWORD}@127.0.0.1:9/");
        let user_only = "https://token-abc123@127.0.0.1:9/".to_string();
        let broken = format!("http://bot:{PASSWORD}@127.0.0.1:99999999/");
        for url in [&cred, &user_only, &broken] {
            let cases = [
                (
                    with(&format!("{OK_SLACK}\napi_url = \"{url}\""), "", OK_ENV, ""),
                    "slack.api_url",
                ),
                (
                    with(
                        OK_SLACK,
                        "",
                        &format!("xo_url = \"{url}\"\njenkins_url = \"http://127.0.0.1:2\""),
                        "",
                    ),
                    "environments.prod.xo_url",
                ),
                (
                    with(
                        OK_SLACK,
                        "",
                        &format!("xo_url = \"http://127.0.0.1:1\"\njenkins_url = \"{url}\""),
                        "",
                    ),
                    "environments.prod.jenkins_url",
                ),
                (
                    with(OK_SLACK, &format!("runbook_url = \"{url}\""), OK_ENV, ""),
                    "check.runbook_url",
                ),
                (
                    with(OK_SLACK, "", OK_ENV, &format!("[iam]\nurl = \"{url}\"\n")),
                    "iam.url",
                ),
                (
                    with(
                        OK_SLACK,
                        "",
                        OK_ENV,
                        &format!("[pagerduty]\nurl = \"{url}\"\n"),
                    ),
                    "pagerduty.url",
                ),
                (
                    with(
                        OK_SLACK,
                        "",
                        OK_ENV,
                        &format!("[github]\napi_url = \"{url}\"\n"),
                    ),
                    "github.api_url",
                ),
                (
                    with(
                        OK_SLACK,
                        "",
                        &format!("{OK_ENV}\nalertmanager_url = \"{url}\""),
                        "",
                    ),
                    "environments.prod.alertmanager_url",
                ),
            ];
            for (src, key) in cases {
                let problems = Config::parse(&src).unwrap_err();
                assert_eq!(problems.len(), 1, "{src}: {problems:?}");
                assert_eq!(problems[0].key, key, "{src}");
                assert!(problems[0].line.is_some(), "{src}");
                let shown = ConfigError::Invalid {
                    path: "bot.toml".into(),
                    problems,
                }
                .to_string();
                assert!(
                    !shown.contains(PASSWORD) && !shown.contains("abc123"),
                    "{shown}"
                );
                if url != &broken {
                    assert!(shown.contains("holds credentials"), "{shown}");
                }
            }
        }
    }

    #[test]
    fn alertmanager_url_is_optional_per_environment_and_parsed_like_every_url() {
        let none = Config::parse(&with(OK_SLACK, "", OK_ENV, "")).unwrap();
        assert_eq!(none.environments[&Environment::Prod].alertmanager_url, None);
        let set = Config::parse(&with(
            OK_SLACK,
            "",
            &format!("{OK_ENV}\nalertmanager_url = \"https://am.example.internal/am\""),
            "[alertmanager]\nrequest_timeout_secs = 7\nconnect_timeout_secs = 3\n",
        ))
        .unwrap_or_else(|p| panic!("{p:?}"));
        assert_eq!(
            set.environments[&Environment::Prod]
                .alertmanager_url
                .as_ref()
                .map(|u| u.as_str()),
            Some("https://am.example.internal/am/")
        );
        assert_eq!(
            set.timeouts.alertmanager,
            Timeouts::new(Duration::from_secs(7), Duration::from_secs(3))
        );
        for (bad, fix) in [
            ("ftp://am.example/", "must be an http(s) URL"),
            ("not a url", "is not a URL"),
        ] {
            let problems = Config::parse(&with(
                OK_SLACK,
                "",
                &format!("{OK_ENV}\nalertmanager_url = \"{bad}\""),
                "",
            ))
            .unwrap_err();
            assert_eq!(problems.len(), 1, "{problems:?}");
            assert_eq!(problems[0].key, "environments.prod.alertmanager_url");
            assert_eq!(problems[0].line, Some(8), "{problems:?}");
            assert!(problems[0].message.contains(fix), "{problems:?}");
        }
    }

    #[test]
    fn alertmanager_token_comes_from_the_environment_or_a_file_once() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("am");
        std::fs::write(&file, "am-token-from-file\n").unwrap();
        let file_s = file.display().to_string();
        let s = Secrets::from_lookup(|k| (k == "ALERTMANAGER_TOKEN_FILE").then(|| file_s.clone()))
            .unwrap();
        assert_eq!(
            s.alertmanager_token.map(|t| t.expose().to_string()),
            Some("am-token-from-file".to_string())
        );
        let s = Secrets::from_lookup(|k| (k == "ALERTMANAGER_TOKEN").then(|| "am-direct".into()))
            .unwrap();
        assert_eq!(s.alertmanager_token.unwrap().expose(), "am-direct");
        assert!(Secrets::from_lookup(|_| None)
            .unwrap()
            .alertmanager_token
            .is_none());
        let err = Secrets::from_lookup(|k| match k {
            "ALERTMANAGER_TOKEN_FILE" => Some(file_s.clone()),
            "ALERTMANAGER_TOKEN" => Some("am-direct".into()),
            _ => None,
        })
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("ALERTMANAGER_TOKEN and ALERTMANAGER_TOKEN_FILE are both set"),
            "{err}"
        );
        assert!(!err.to_string().contains("am-direct"), "{err}");
        let err = Secrets::from_lookup(|k| {
            (k == "ALERTMANAGER_TOKEN_FILE").then(|| dir.path().display().to_string())
        })
        .unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
    }

    #[test]
    fn secret_files_are_capped_and_must_be_regular_files() {
        let dir = tempfile::tempdir().unwrap();
        let lookup_file =
            |path: String| move |k: &str| (k == "SLACK_BOT_TOKEN_FILE").then(|| path.clone());
        // A directory, a device and a FIFO are not secret files; none is read.
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        for path in [dir.path().to_path_buf(), "/dev/zero".into(), fifo] {
            let err = Secrets::from_lookup(lookup_file(path.display().to_string())).unwrap_err();
            assert!(
                matches!(&err, ConfigError::SecretFileRefused { var, .. } if var == "SLACK_BOT_TOKEN"),
                "{path:?}: {err:?}"
            );
            assert!(err.to_string().contains("not a regular file"), "{err}");
        }
        // The cap: 64 KiB passes, one byte more is refused.
        let at_cap = dir.path().join("at-cap");
        std::fs::write(&at_cap, "x".repeat(SECRET_FILE_MAX_BYTES as usize)).unwrap();
        let s = Secrets::from_lookup(lookup_file(at_cap.display().to_string())).unwrap();
        assert_eq!(s.slack_bot_token.unwrap().expose().len(), 64 * 1024);
        let over = dir.path().join("over");
        std::fs::write(&over, "x".repeat(SECRET_FILE_MAX_BYTES as usize + 1)).unwrap();
        let err = Secrets::from_lookup(lookup_file(over.display().to_string())).unwrap_err();
        assert!(err.to_string().contains("larger than 65536 bytes"), "{err}");
    }

    #[test]
    fn a_secret_set_twice_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "xoxb-from-file\n").unwrap();
        let file_s = file.display().to_string();
        let err = Secrets::from_lookup(|k| match k {
            "SLACK_BOT_TOKEN_FILE" => Some(file_s.clone()),
            "SLACK_BOT_TOKEN" => Some("xoxb-direct".into()),
            _ => None,
        })
        .unwrap_err();
        let shown = err.to_string();
        assert!(
            shown.contains("SLACK_BOT_TOKEN and SLACK_BOT_TOKEN_FILE are both set"),
            "{shown}"
        );
        assert!(!shown.contains("xoxb-"), "{shown}");
        // An empty NAME is unset: the file is used.
        let s = Secrets::from_lookup(|k| match k {
            "SLACK_BOT_TOKEN_FILE" => Some(file_s.clone()),
            "SLACK_BOT_TOKEN" => Some(String::new()),
            _ => None,
        })
        .unwrap();
        assert_eq!(s.slack_bot_token.unwrap().expose(), "xoxb-from-file");
    }

    #[test]
    fn tls_ca_file_and_the_network_environment_are_read() {
        let base = "[slack]\nchannels=[\"C0ONCALL\"]\n[environments.prod]\nxo_url=\"https://a\"\njenkins_url=\"https://b\"\n";
        let c = Config::parse(&format!("{base}[tls]\nca_file = \"/etc/ca.pem\"\n")).unwrap();
        assert_eq!(c.tls_ca_file.as_deref(), Some(Path::new("/etc/ca.pem")));
        let p = Config::parse(&format!("{base}[tls]\nca_file = \"\"\n")).unwrap_err();
        assert_eq!(p[0].key, "tls.ca_file");
        assert!(Config::parse(&format!("{base}[tls]\ncafile = \"x\"\n")).is_err());

        let env = NetEnv::from_lookup(|k| match k {
            "SSL_CERT_FILE" => Some("/ca.pem".into()),
            "SSL_CERT_DIR" => Some("/a:/b".into()),
            "HTTPS_PROXY" => Some("http://upper:3128".into()),
            "https_proxy" => Some("http://u:hunter2@lower:3128".into()),
            "HTTP_PROXY" => Some("http://only-upper:3128".into()),
            "NO_PROXY" => Some(" ".into()),
            _ => None,
        });
        assert_eq!(env.ssl_cert_file, Some(PathBuf::from("/ca.pem")));
        assert_eq!(
            env.ssl_cert_dir,
            vec![PathBuf::from("/a"), PathBuf::from("/b")]
        );
        assert_eq!(
            env.https_proxy.as_ref().unwrap().expose(),
            "http://u:hunter2@lower:3128"
        );
        assert_eq!(
            env.http_proxy.as_ref().unwrap().expose(),
            "http://only-upper:3128"
        );
        assert_eq!(env.no_proxy, None);
        assert!(!format!("{env:?}").contains("hunter2"));
    }

    #[test]
    fn owners_come_from_owns_in_file_order() {
        let c = Config::parse(EXAMPLE).unwrap();
        let names = |v| c.owners(v).map(|t| t.name.as_str()).collect::<Vec<_>>();
        assert_eq!(names(VerdictCode::ConfigMissing), ["razee"]);
        assert_eq!(
            names(VerdictCode::RegionMismatch),
            ["razee", "armada_bootstrap"]
        );
        for v in VerdictCode::ALL {
            assert!(c.owners(v).next().is_some(), "{v} has no owner");
        }
        // File order, not key order, decides who comes first.
        let src = EXAMPLE.replace(
            "[escalation.razee]",
            "[escalation.zeta]\ntitle = \"Zeta\"\nslack_channel = \"C0ZETA\"\nowns = [\"region_mismatch\"]\n\n[escalation.razee]",
        );
        let c = Config::parse(&src).unwrap();
        let names = c
            .owners(VerdictCode::RegionMismatch)
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>();
        assert_eq!(names, ["zeta", "razee", "armada_bootstrap"]);
    }

    #[test]
    fn close_issue_on_resolve_is_read_and_needs_a_repo() {
        let config = Config::parse(EXAMPLE).expect("the example parses");
        assert!(config.escalation.iter().all(|t| !t.close_issue_on_resolve));
        let on = EXAMPLE.replace(
            "close_issue_on_resolve = false",
            "close_issue_on_resolve = true",
        );
        let config = Config::parse(&on).expect("parses");
        let satlink = config
            .escalation
            .iter()
            .find(|t| t.name == "satellite_link")
            .expect("the satellite_link target");
        assert!(satlink.close_issue_on_resolve);
        // Without a repository there is no issue to close: refused with its key.
        let no_repo = EXAMPLE.replace(
            "[escalation.razee]\n",
            "[escalation.razee]\nclose_issue_on_resolve = true\n",
        );
        let p = Config::parse(&no_repo).unwrap_err();
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].key, "escalation.razee.close_issue_on_resolve");
        assert!(p[0].message.contains("github_repo"), "{p:?}");
    }

    #[test]
    fn owns_is_validated_with_its_line() {
        let line_of =
            |src: &str, needle: &str| src.lines().position(|l| l.contains(needle)).unwrap() + 1;
        let typo = EXAMPLE.replace(
            "owns = [\"region_mismatch\"]",
            "owns = [\"region_mismatch\", \"region_mismach\"]",
        );
        let p = Config::parse(&typo).unwrap_err();
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].key, "escalation.armada_bootstrap.owns");
        assert_eq!(p[0].line, Some(line_of(&typo, "region_mismach")));
        assert!(p[0].message.contains("`region_mismach` is not a verdict"));

        let twice = EXAMPLE.replace(
            "owns = [\"region_mismatch\"]",
            "owns = [\"region_mismatch\", \"region_mismatch\"]",
        );
        let p = Config::parse(&twice).unwrap_err();
        assert!(p[0].message.contains("listed twice"), "{p:?}");

        // A verdict nobody owns names itself and the key to add.
        let unowned = EXAMPLE.replace("\"job_failed\", ", "");
        let p = Config::parse(&unowned).unwrap_err();
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].key, "escalation.razee.owns");
        assert_eq!(
            p[0].line,
            Some(line_of(&unowned, "owns = [\"config_missing\""))
        );
        assert!(p[0].message.contains("owns job_failed"), "{p:?}");

        // No `owns` anywhere: refused, naming every verdict; no targets at all: fine.
        let none: String = EXAMPLE
            .lines()
            .filter(|l| !l.starts_with("owns"))
            .collect::<Vec<_>>()
            .join("\n");
        let p = Config::parse(&none).unwrap_err();
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].message.contains("config_missing"), "{p:?}");
        assert!(p[0].message.contains("artifact_missing"), "{p:?}");
        assert_eq!(p[0].line, Some(line_of(&none, "[escalation.razee]")));
        let src = "[slack]\nchannels=[\"C0ONCALL\"]\n[environments.prod]\nxo_url=\"http://a\"\njenkins_url=\"http://b\"\n";
        assert!(Config::parse(src).is_ok());
    }

    #[test]
    fn secrets_come_from_the_environment_or_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "xoxb-from-file\n").unwrap();
        let file_s = file.display().to_string();
        let s = Secrets::from_lookup(|k| match k {
            "SLACK_BOT_TOKEN_FILE" => Some(file_s.clone()),
            "SLACK_APP_TOKEN" => Some("xapp-direct".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(s.slack_bot_token.unwrap().expose(), "xoxb-from-file");
        assert_eq!(s.slack_app_token.unwrap().expose(), "xapp-direct");
        assert!(s.xo_token.is_none());
        let err =
            Secrets::from_lookup(|k| (k == "XO_TOKEN_FILE").then(|| "/nonexistent/x".to_string()))
                .unwrap_err();
        assert!(err.to_string().contains("XO_TOKEN_FILE"));
    }

    #[test]
    fn report_is_optional_and_its_keys_are_checked_with_line_and_fix() {
        let report = |tail: &str| with(OK_SLACK, "", OK_ENV, &format!("[report]\n{tail}"));
        assert_eq!(
            Config::parse(&with(OK_SLACK, "", OK_ENV, ""))
                .unwrap()
                .report,
            None
        );
        let c = Config::parse(&report("channel = \"C0ONCALL\"")).unwrap();
        let r = c.report.expect("[report] is read");
        assert_eq!(r.channel.as_str(), "C0ONCALL");
        assert_eq!(r.weekly_at.to_string(), DEFAULT_WEEKLY_AT);
        let c =
            Config::parse(&report("channel = \"C0ONCALL\"\nweekly_at = \"fri 17:30\"")).unwrap();
        assert_eq!(c.report.unwrap().weekly_at.to_string(), "Fri 17:30");
        // [report] starts on line 8 of `with(…)`.
        let cases = [
            (
                "channel = \"C0ONCALL\"\nweekly_at = \"Mon 9am\"",
                10,
                "report.weekly_at",
                "HH:MM",
            ),
            (
                "channel = \"C0ONCALL\"\nweekly_at = \"Monday\"",
                10,
                "report.weekly_at",
                "\"Mon 09:00\"",
            ),
            (
                "channel = \"C0ONCALL\"\nweekly_at = \"Lun 09:00\"",
                10,
                "report.weekly_at",
                "Mon, Tue",
            ),
            (
                "channel = \"#oncall\"",
                9,
                "report.channel",
                "not a channel id",
            ),
            (
                "weekly_at = \"Mon 09:00\"",
                8,
                "report.channel",
                "is required",
            ),
        ];
        for (tail, line, key, fix) in cases {
            let src = report(tail);
            let problems = Config::parse(&src).unwrap_err();
            assert_eq!(problems.len(), 1, "{src}: {problems:?}");
            assert_eq!(problems[0].line, Some(line), "{src}: {problems:?}");
            assert_eq!(problems[0].key, key, "{src}");
            assert!(problems[0].message.contains(fix), "{src}: {problems:?}");
        }
        let problems = Config::parse(&report("channel = \"C0ONCALL\"\nday = \"Mon\"")).unwrap_err();
        assert!(
            problems[0].message.contains("unknown field"),
            "{problems:?}"
        );
    }
}
