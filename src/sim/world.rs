//! A whole simulated world for the demo and the tests: Slack, directory, Jenkins, IAM,
//! PagerDuty, GitHub and Alertmanager (prod only: stage has no `alertmanager_url`) on loopback, a `bot.toml` pointing at them, and one ready-made
//! location per verdict.
//!
//! It only sets the simulators up; it never drives the bot (the demo and tests do that).

use super::alertmanager::AlertmanagerSim;
use super::directory::{ClusterAnswer, SimDirectory};
use super::github::GitHubSim;
use super::iam::SimIam;
use super::jenkins::{Behaviour, SimJenkins};
use super::pagerduty::PagerDutySim;
use super::slack::{SimSlackConfig, SlackSim};
use super::tls::SimTls;
use crate::config::{Config, Secrets};
use crate::diagnosis::verdict::VerdictCode;
use crate::domain::LocationId;
use crate::secret::Secret;
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::time::Duration;

/// The watched on-call channel.
pub const ONCALL_CHANNEL: &str = "C0ONCALL";
/// A channel the bot is in but does not watch.
pub const OTHER_CHANNEL: &str = "C0RANDOM";
/// Alertmanager's bot id (an alert source).
pub const ALERT_BOT: &str = "B0ALERTMANAGER";
/// The on-call user group.
pub const ONCALL_GROUP: &str = "S0ONCALL";
/// An on-call engineer (member of the group).
pub const ENGINEER: &str = "U0ENGINEER";
/// Someone who is not on call.
pub const VISITOR: &str = "U0VISITOR";
/// The Razee team's channel.
pub const RAZEE_CHANNEL: &str = "C0RAZEE";
/// The Satellite Link squad's channel.
pub const SATLINK_CHANNEL: &str = "C0SATLINK";
/// The GitHub repository of the Satellite Link squad.
pub const SATLINK_REPO: &str = "org/satellite-link";
/// The IAM API key in every scenario's artifacts (the key that must never leak).
pub const IAM_KEY: &str = "kq2V8hN0Zt1mWcXb3fLp9RyA6uJdE4sG7oHiQ5vTnB2w";
/// The IAM key of the `api_key_accepted` scenario (IAM accepts it).
pub const GOOD_IAM_KEY: &str = "Zt1mWcXb3fLp9RyA6uJdE4sG7oHiQ5vTnB2wkq2V8hN0";
/// The tugboat every known location lives on.
pub const TUGBOAT: &str = "prod-wdc04.carrier107";

const JOB: [&str; 3] = [
    "Containers-Runtime",
    "armada-cruiser-automated-recovery",
    "armada-ha-master-get-info",
];

/// Every simulator, plus a scratch folder for the store.
pub struct World {
    /// Slack: Web API and Socket Mode.
    pub slack: SlackSim,
    /// The cluster directory.
    pub directory: SimDirectory,
    /// Jenkins.
    pub jenkins: SimJenkins,
    /// IBM Cloud IAM.
    pub iam: SimIam,
    /// PagerDuty Events API v2.
    pub pagerduty: PagerDutySim,
    /// GitHub's issues API.
    pub github: GitHubSim,
    /// Alertmanager's API v2 silences (prod's `alertmanager_url`).
    pub alertmanager: AlertmanagerSim,
    dir: PathBuf,
    xo_token: String,
    jenkins_token: String,
    pd_key: String,
    gh_token: String,
    am_token: String,
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The location id used for a verdict's scenario (`n` tells several apart).
pub fn location_for(verdict: VerdictCode, n: u32) -> LocationId {
    let idx = VerdictCode::ALL
        .iter()
        .position(|v| *v == verdict)
        .unwrap_or(0);
    LocationId::parse(&format!("c1hk4ek1{idx:02}{n:010}")).expect("20 characters of 0-9")
}

/// How [`World::start_with`] starts the simulators: which ones serve HTTPS (and WSS) with
/// which certificate. [`World::config_toml`] then names them with `https://` URLs.
#[derive(Debug, Clone, Default)]
pub struct WorldOptions {
    /// Slack's Web API (HTTPS) and Socket Mode (WSS).
    pub slack_tls: Option<SimTls>,
    /// The cluster directory.
    pub directory_tls: Option<SimTls>,
    /// Jenkins.
    pub jenkins_tls: Option<SimTls>,
}

impl WorldOptions {
    /// Slack, the directory and Jenkins all over TLS with `tls`.
    pub fn tls(tls: &SimTls) -> WorldOptions {
        WorldOptions {
            slack_tls: Some(tls.clone()),
            directory_tls: Some(tls.clone()),
            jenkins_tls: Some(tls.clone()),
        }
    }
}

impl World {
    /// Starts every simulator on loopback, over plain HTTP.
    pub async fn start() -> Result<World> {
        World::start_with(WorldOptions::default()).await
    }

    /// Starts every simulator on loopback, with TLS where `options` say.
    pub async fn start_with(options: WorldOptions) -> Result<World> {
        let slack = SlackSim::start_with_tls(SimSlackConfig::default(), options.slack_tls)
            .await
            .context("starting the Slack simulator")?;
        slack.set_usergroup(ONCALL_GROUP, &[ENGINEER]);
        let directory = SimDirectory::start_with_tls(options.directory_tls)
            .await
            .context("starting the directory simulator")?;
        directory.set_carriers(
            "wdc04",
            &[
                ("prod-wdc04-carrier1", "maintenance"),
                ("prod-wdc04-carrier2", "available"),
            ],
        );
        let xo_token = "xo-sim-token-5d41402abc4b2a76".to_string();
        directory.require_token(&xo_token);
        let jenkins = super::jenkins::start_with_tls(&JOB, options.jenkins_tls).await;
        let jenkins_token = "11a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5".to_string();
        jenkins.set_auth("linkbot", &jenkins_token);
        let iam = super::iam::start(&[GOOD_IAM_KEY]).await;
        let pagerduty = super::pagerduty::start()
            .await
            .context("starting the PagerDuty simulator")?;
        let gh_token = "ghp_simSIMsim0123456789abcdefABCDEF0123".to_string();
        let github = super::github::start(&gh_token, &[SATLINK_REPO])
            .await
            .context("starting the GitHub simulator")?;
        let am_token = "am-sim-bearer-7c9e6679f4d4".to_string();
        let alertmanager = super::alertmanager::start(Some(&am_token))
            .await
            .context("starting the Alertmanager simulator")?;
        let dir = std::env::temp_dir().join(format!(
            "linkbot-world-{}-{:08x}",
            std::process::id(),
            fastrand::u32(..)
        ));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(World {
            slack,
            directory,
            jenkins,
            iam,
            pagerduty,
            github,
            alertmanager,
            dir,
            xo_token,
            jenkins_token,
            pd_key: "R0UTINGKEYsim0123456789abcdef012".to_string(),
            gh_token,
            am_token,
        })
    }

    /// A scratch folder removed with the world.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// A SQLite store URL in the scratch folder (`name` tells several apart).
    pub fn sqlite_url(&self, name: &str) -> String {
        format!("sqlite://{}", self.dir.join(format!("{name}.db")).display())
    }

    /// A `bot.toml` pointing every system at the simulators, with `store_url` as the store.
    pub fn config_toml(&self, store_url: &str) -> String {
        format!(
            r#"[slack]
api_url = "{slack}"
channels = ["{ONCALL_CHANNEL}"]
oncall_usergroup = "{ONCALL_GROUP}"
alert_sources = ["{ALERT_BOT}"]
connections = 2

[check]
default_environment = "prod"
job_timeout_secs = 30
result_ttl_secs = 600
max_concurrent = 16
poll_interval_min_ms = 250

[environments.prod]
xo_url = "{xo}"
jenkins_url = "{jenkins}"
jenkins_job = "{job}"
branch = "master"
env_branch = "master"
alertmanager_url = "{am}"

[environments.stage]
xo_url = "{xo}"
jenkins_url = "{jenkins}"
jenkins_job = "{job}"
branch = "master"
env_branch = "master"

[iam]
verify_key = true
url = "{iam}"

[escalation.razee]
title = "Razee team"
slack_channel = "{RAZEE_CHANNEL}"
owns = ["config_missing", "region_mismatch"]

[escalation.armada_bootstrap]
title = "armada-bootstrap"
slack_channel = "C0BOOTSTRAP"
owns = ["region_mismatch"]

[escalation.satellite_link]
title = "Satellite Link squad"
slack_channel = "{SATLINK_CHANNEL}"
pagerduty = true
github_repo = "{SATLINK_REPO}"
owns = ["api_key_invalid", "api_key_accepted", "iam_unreachable", "unknown_location", "lookup_failed", "job_failed", "artifact_missing"]

[pagerduty]
url = "{pd}"

[github]
api_url = "{gh}"

[server]
listen = "127.0.0.1:0"

[store]
url = "{store_url}"
"#,
            slack = self.slack.base_url(),
            xo = self.directory.base_url(),
            jenkins = self.jenkins.base_url(),
            job = JOB.join("/"),
            iam = self.iam.base_url(),
            pd = self.pagerduty.base_url(),
            gh = self.github.base_url(),
            am = self.alertmanager.base_url(),
        )
    }

    /// The parsed configuration of [`World::config_toml`], polling the simulated Jenkins every
    /// 25 ms: its builds take 300 ms, and a bot.toml may not go below 250 ms (a floor for real
    /// Jenkins), so in-process runs set the field after validation.
    pub fn config(&self, store_url: &str) -> Result<Config> {
        let mut config = Config::parse(&self.config_toml(store_url))
            .map_err(|p| anyhow::anyhow!("simulated bot.toml is invalid: {p:?}"))?;
        config.check.poll_interval_min = std::time::Duration::from_millis(25);
        Ok(config)
    }

    /// The secrets the simulators accept.
    pub fn secrets(&self) -> Secrets {
        Secrets {
            slack_bot_token: Some(self.slack.bot_token()),
            slack_app_token: Some(self.slack.app_token()),
            xo_token: Some(Secret::new(self.xo_token.clone())),
            jenkins_user: Some("linkbot".into()),
            jenkins_api_token: Some(Secret::new(self.jenkins_token.clone())),
            pagerduty_routing_key: Some(Secret::new(self.pd_key.clone())),
            github_token: Some(Secret::new(self.gh_token.clone())),
            alertmanager_token: Some(Secret::new(self.am_token.clone())),
            store_url: None,
            net: Default::default(),
        }
    }

    /// The same secrets as environment variables, for running the `linkbot` binary.
    pub fn secret_env(&self) -> Vec<(&'static str, String)> {
        let s = self.secrets();
        vec![
            (
                "SLACK_BOT_TOKEN",
                s.slack_bot_token
                    .map(|t| t.expose().to_string())
                    .unwrap_or_default(),
            ),
            (
                "SLACK_APP_TOKEN",
                s.slack_app_token
                    .map(|t| t.expose().to_string())
                    .unwrap_or_default(),
            ),
            ("XO_TOKEN", self.xo_token.clone()),
            ("JENKINS_USER", "linkbot".into()),
            ("JENKINS_API_TOKEN", self.jenkins_token.clone()),
            ("PAGERDUTY_ROUTING_KEY", self.pd_key.clone()),
            ("GITHUB_TOKEN", self.gh_token.clone()),
            ("ALERTMANAGER_TOKEN", self.am_token.clone()),
        ]
    }

    /// Every secret value in the world, for "never leaks" assertions.
    pub fn all_secret_values(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .secret_env()
            .into_iter()
            .map(|(_, s)| s)
            .filter(|s| s.len() > 8)
            .collect();
        v.push(IAM_KEY.to_string());
        v.push(GOOD_IAM_KEY.to_string());
        v
    }

    /// Sets the simulators up so that checking the returned location ends in `verdict`.
    /// For `iam_unreachable` the caller also makes IAM unavailable (`world.iam.set_unavailable(true)`),
    /// which affects every location of this world.
    pub fn scenario(&self, verdict: VerdictCode, n: u32) -> LocationId {
        self.scenario_with(verdict, n, Behaviour::default())
    }

    /// Like [`World::scenario`], with the Jenkins timing (and other fields) of `base`.
    pub fn scenario_with(&self, verdict: VerdictCode, n: u32, base: Behaviour) -> LocationId {
        let loc = location_for(verdict, n);
        self.set_scenario(&loc, verdict, base, n % 2 == 0);
        loc
    }

    /// Makes the next check of `loc` (any location) end in `verdict`, as [`World::scenario`]
    /// would set it up: e.g. a location whose key was fixed now ends in `api_key_accepted`.
    /// The directory answers in JSON when `json`, else in XO's text form.
    pub fn set_scenario(
        &self,
        loc: &LocationId,
        verdict: VerdictCode,
        base: Behaviour,
        json: bool,
    ) {
        let l = loc.as_str();
        let artifacts = |key: Option<&str>, region: Option<&str>| {
            vec![
                (
                    "logs/connector_getConnectorAPIKey.log".to_string(),
                    super::artifacts::api_key_log(key),
                ),
                (
                    "logs/connector_sl_configMap.log".to_string(),
                    super::artifacts::configmap_log(l, region),
                ),
            ]
        };
        let mut b = base;
        match verdict {
            VerdictCode::UnknownLocation => return,
            VerdictCode::LookupFailed => {
                self.directory
                    .set_cluster(l, ClusterAnswer::Raw(500, "internal error".into()));
                return;
            }
            VerdictCode::ConfigMissing => b.artifacts = artifacts(None, Some("us-east")),
            VerdictCode::RegionMismatch => b.artifacts = artifacts(Some(IAM_KEY), Some("us-south")),
            VerdictCode::ApiKeyInvalid | VerdictCode::IamUnreachable => {
                b.artifacts = artifacts(Some(IAM_KEY), Some("us-east"))
            }
            VerdictCode::ApiKeyAccepted => {
                b.artifacts = artifacts(Some(GOOD_IAM_KEY), Some("us-east"))
            }
            VerdictCode::JobFailed => {
                b.result = "FAILURE".into();
                b.console = "Started by user linkbot\n+ kubectl --context prod-wdc04-carrier107 get secret storage-secret-store\nerror: You must be logged in to the server (Unauthorized)\nFinished: FAILURE\n".into();
            }
            VerdictCode::ArtifactMissing => {
                let mut a = artifacts(Some(IAM_KEY), Some("us-east"));
                a.truncate(1);
                b.artifacts = a;
            }
        }
        let answer = if json {
            ClusterAnswer::Json(TUGBOAT.into())
        } else {
            ClusterAnswer::Text(TUGBOAT.into())
        };
        self.directory.set_cluster(l, answer);
        self.jenkins.set_behaviour(l, b);
    }

    /// A Jenkins behaviour whose build takes `build` (queue 50 ms), estimated exactly.
    pub fn timing(build: Duration) -> Behaviour {
        Behaviour {
            queue_time: Duration::from_millis(50),
            build_time: build,
            estimated: build,
            ..Behaviour::default()
        }
    }
}

/// Whether a bot message is a finished verdict (it has a header block).
pub fn is_verdict(m: &super::slack::SimMessage) -> bool {
    m.blocks
        .as_ref()
        .and_then(|b| b.as_array())
        .is_some_and(|blocks| blocks.iter().any(|b| b["type"] == "header"))
}

/// The verdict code a verdict message shows (`config_missing`, …).
pub fn verdict_code(m: &super::slack::SimMessage) -> Option<VerdictCode> {
    let blocks = m.blocks.as_ref()?.as_array()?;
    blocks.iter().find_map(|b| {
        let t = b["text"]["text"].as_str()?;
        let code = t.strip_prefix("*`")?.split('`').next()?;
        VerdictCode::parse(code)
    })
}

/// mrkdwn's three entities as Slack shows them (`&lt;` reads `<`), for transcripts.
fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// A Slack message as a person reads it: Block Kit flattened, buttons in brackets, mrkdwn
/// entities shown as the characters they stand for.
pub fn render_message(m: &super::slack::SimMessage) -> String {
    unescape(&render_raw(m))
}

fn render_raw(m: &super::slack::SimMessage) -> String {
    let Some(blocks) = m.blocks.as_ref().and_then(|b| b.as_array()) else {
        return m.text.clone().unwrap_or_default();
    };
    let mut out = Vec::new();
    for b in blocks {
        match b["type"].as_str().unwrap_or("") {
            "header" => out.push(format!("## {}", b["text"]["text"].as_str().unwrap_or(""))),
            "section" => {
                if let Some(text) = b["text"]["text"].as_str() {
                    out.push(text.to_string());
                }
                // Fields (e.g. the report's numbers), one per line.
                for f in b["fields"].as_array().into_iter().flatten() {
                    out.push(f["text"].as_str().unwrap_or("").replace('\n', ": "));
                }
            }
            "context" => {
                let parts: Vec<&str> = b["elements"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|e| e["text"].as_str())
                    .collect();
                out.push(format!("  ({})", parts.join(" ")));
            }
            "divider" => out.push("  ----".into()),
            "actions" => {
                let buttons: Vec<String> = b["elements"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|e| match e["type"].as_str() {
                        // A select shows its placeholder until something is chosen.
                        Some("static_select") => {
                            format!("[{} ▾]", e["placeholder"]["text"].as_str().unwrap_or("?"))
                        }
                        _ => format!("[{}]", e["text"]["text"].as_str().unwrap_or("?")),
                    })
                    .collect();
                out.push(buttons.join(" "));
            }
            other => out.push(format!("<{other} block>")),
        }
    }
    out.join("\n")
}

impl World {
    /// A fresh `ts` for a message a person (or Alertmanager) posts.
    pub fn user_ts(n: u32) -> String {
        format!("1800000000.{:06}", n)
    }

    /// Waits until the thread `thread_ts` of `channel` holds `n` verdict messages; returns them.
    pub async fn wait_verdicts(
        &self,
        channel: &str,
        thread_ts: &str,
        n: usize,
        timeout: Duration,
    ) -> Option<Vec<super::slack::SimMessage>> {
        let ok = self
            .slack
            .wait_until(
                |s| {
                    s.thread(channel, thread_ts)
                        .into_iter()
                        .filter(|m| is_verdict(m))
                        .count()
                        >= n
                },
                timeout,
            )
            .await;
        ok.then(|| {
            self.slack
                .messages()
                .into_iter()
                .filter(|m| {
                    m.channel == channel
                        && m.thread_ts.as_deref() == Some(thread_ts)
                        && is_verdict(m)
                })
                .collect()
        })
    }

    /// Every message the bot posted in a thread, in order.
    pub fn thread(&self, channel: &str, thread_ts: &str) -> Vec<super::slack::SimMessage> {
        self.slack
            .messages()
            .into_iter()
            .filter(|m| m.channel == channel && m.thread_ts.as_deref() == Some(thread_ts))
            .collect()
    }
}
