//! One check, end to end: lookup → carrier → Jenkins job → artifacts → diagnosis → report.
//!
//! The [`Engine`] runs the runbook for one location against the configured directory, Jenkins
//! and (optionally) IAM, reporting [`Progress`] as it goes, and always ends in a [`Report`]:
//! every failure becomes a verdict with its reason, never a panic or a half-finished state.
//! It does not know about Slack, the store or de-duplication (see [`coordinator`]).

pub mod coordinator;
pub mod parse_pool;
pub mod progress;

use crate::config::{Config, Secrets};
use crate::diagnosis::rules;
use crate::diagnosis::verdict::{next_actions, Report, Step, StepId, StepStatus, VerdictCode};
use crate::directory::{DirectoryClient, DirectoryError};
use crate::domain::{Carrier, CheckKey, Datacenter, Environment, LocationId, Region, Tugboat};
use crate::iam::IamClient;
use crate::jenkins::{
    BuildParams, BuildRef, JenkinsClient, JobError, JobHandle, JobProgress, PollPolicy,
};
use crate::metrics::{Metrics, VerdictLabel};
use crate::net::{Net, NetError};
use parse_pool::{ParsePool, PoolError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

/// The artifact holding the storage secret (`slclient.toml`).
pub const API_KEY_ARTIFACT: &str = "connector_getConnectorAPIKey.log";
/// The artifact holding the satellite-link ConfigMap.
pub const CONFIGMAP_ARTIFACT: &str = "connector_sl_configMap.log";

/// The span every log line of one check carries: its location and environment, its id in
/// the store (`check_id`, when the coordinator drives it) and its Jenkins build number
/// (`build`, recorded by the engine once known). A root span: a check outlives the envelope
/// that asked for it, and may be joined by many more.
pub fn check_span(key: &CheckKey, check_id: Option<i64>) -> tracing::Span {
    let span = tracing::info_span!(
        parent: None,
        "check",
        location = %key.location,
        environment = %key.environment,
        check_id = tracing::field::Empty,
        build = tracing::field::Empty,
    );
    if let Some(id) = check_id {
        span.record("check_id", id);
    }
    // Whoever asked (an envelope's span, when there is one) is linked, not a parent.
    span.follows_from(tracing::Span::current());
    span
}

/// Where a check has got to, for live progress (the Slack message edited in place).
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    /// Asking the directory.
    LookingUp,
    /// The tugboat and carrier are known; the job is being triggered.
    Triggering {
        /// The tugboat.
        tugboat: Tugboat,
        /// The carrier.
        carrier: Carrier,
        /// The name of the job triggered (the last part of `jenkins_job`).
        job: String,
    },
    /// The job is known: persist this to resume after a restart.
    Job(ResumePoint),
    /// Jenkins' queue or build moved on.
    Jenkins(JobProgress),
    /// The build finished; its artifacts are being read.
    ReadingArtifacts,
}

/// Everything needed to pick a check up again after a restart, stored as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResumePoint {
    /// The tugboat (dotted).
    pub tugboat: String,
    /// The carrier passed to Jenkins.
    pub carrier: String,
    /// The queue item or build.
    pub job: JobHandle,
}

/// The clients of one environment.
#[derive(Clone)]
struct EnvClients {
    directory: DirectoryClient,
    jenkins: JenkinsClient,
    /// The job's name, shown while it is triggered: the last part of its configured path.
    job_name: String,
    branch: String,
    env_branch: String,
}

/// Why an [`Engine`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A client could not be built (trust or proxy settings).
    #[error(transparent)]
    Net(#[from] NetError),
    /// The parse threads could not be started.
    #[error("starting the artifact parse threads")]
    ParsePool(#[source] std::io::Error),
}

/// Runs checks. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    config: Arc<Config>,
    envs: BTreeMap<Environment, EnvClients>,
    iam: Option<IamClient>,
    /// IAM's token endpoint for a storm's one health probe (no key is sent).
    iam_health: IamClient,
    metrics: Metrics,
    /// Where artifacts are parsed: cores − 1 (at least 1) low-priority threads. Parsing two
    /// 4 MiB artifacts is CPU work that must not hold the async workers acking envelopes.
    parse_pool: ParsePool,
    /// Turns for the artifact step (download both, parse, diagnose): [`ARTIFACT_TURNS_PER_THREAD`]
    /// per parse thread. Without it, 1,000 builds ending at once would hold 2,000 artifacts
    /// (up to `artifact_max_bytes` each) in memory while they wait for the parse pool.
    artifact_turns: Arc<tokio::sync::Semaphore>,
}

/// How many checks per parse thread may hold their artifacts at once: one parsing, the others
/// downloading theirs so the thread never waits for the network.
pub const ARTIFACT_TURNS_PER_THREAD: usize = 2;

/// A report under construction: the context every verdict carries.
struct Draft {
    location: LocationId,
    environment: Environment,
    tugboat: Option<Tugboat>,
    carrier: Option<Carrier>,
    region_expected: Option<Region>,
    build_url: Option<String>,
    steps: Vec<Step>,
}

impl Draft {
    fn finish(self, verdict: VerdictCode, summary: String, console_tail: Option<String>) -> Report {
        Report {
            verdict,
            confirmed: false,
            summary,
            location: Some(self.location),
            environment: Some(self.environment),
            tugboat: self.tugboat,
            carrier: self.carrier,
            next_actions: next_actions(verdict, self.region_expected.as_ref()),
            region_expected: self.region_expected,
            region_found: None,
            build_url: self.build_url,
            console_tail,
            key_fingerprint: None,
            steps: self.steps,
            checked_at: chrono::Utc::now(),
        }
    }

    /// The lookup step failed (a datacenter with no region, …): `lookup_failed` with the reason.
    fn fail_lookup(self, msg: String) -> Report {
        self.fail(
            StepId::Lookup,
            VerdictCode::LookupFailed,
            format!("{msg}."),
            vec![msg],
        )
    }

    fn fail(
        mut self,
        step: StepId,
        verdict: VerdictCode,
        summary: String,
        evidence: Vec<String>,
    ) -> Report {
        self.steps
            .push(Step::new(step, StepStatus::Failed, evidence));
        self.finish(verdict, summary, None)
    }
}

impl Engine {
    /// Builds the clients of every configured environment.
    pub fn new(
        config: Arc<Config>,
        secrets: &Secrets,
        net: &Net,
        metrics: Metrics,
    ) -> Result<Engine, EngineError> {
        let policy = PollPolicy::with_min(config.check.poll_interval_min);
        let envs = config
            .environments
            .iter()
            .map(|(env, ec)| {
                let clients = EnvClients {
                    directory: DirectoryClient::with_timeouts(
                        ec.xo_url.clone(),
                        secrets.xo_token.clone(),
                        metrics.clone(),
                        config.timeouts.directory,
                        net,
                    )?,
                    jenkins: JenkinsClient::new(
                        ec.jenkins_url.clone(),
                        ec.jenkins_job.clone(),
                        secrets.jenkins_user.clone(),
                        secrets.jenkins_api_token.clone(),
                        policy,
                        metrics.clone(),
                        net,
                    )?
                    .with_timeouts(config.timeouts.jenkins)?,
                    job_name: ec.jenkins_job.last().cloned().unwrap_or_default(),
                    branch: ec.branch.clone(),
                    env_branch: ec.env_branch.clone(),
                };
                Ok((*env, clients))
            })
            .collect::<Result<_, NetError>>()?;
        let iam = config
            .iam
            .verify_key
            .then(|| IamClient::with_timeouts(config.iam.url.clone(), config.timeouts.iam, net))
            .transpose()?;
        let iam_health =
            IamClient::with_timeouts(config.iam.url.clone(), config.timeouts.iam, net)?;
        // One core is left to the async workers: with every core parsing, acks queued behind
        // the parses for the CPU (p99 166 ms on 2 cores in the `parse` bench); the pool's
        // threads also run niced, so the workers win most of the core they share.
        let parse_pool = ParsePool::for_this_machine().map_err(EngineError::ParsePool)?;
        let artifact_turns = Arc::new(tokio::sync::Semaphore::new(
            parse_pool.threads() * ARTIFACT_TURNS_PER_THREAD,
        ));
        Ok(Engine {
            config,
            envs,
            iam,
            iam_health,
            metrics,
            parse_pool,
            artifact_turns,
        })
    }

    /// The configuration the engine runs with.
    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    /// Where `req`'s location is: one directory lookup (no build), its datacenter and that
    /// datacenter's region. Nothing when the lookup fails (a storm counts it as unlocated).
    pub async fn locate(&self, req: &CheckKey) -> (Option<Datacenter>, Option<Region>) {
        let Some(clients) = self.envs.get(&req.environment) else {
            return (None, None);
        };
        match clients.directory.cluster(&req.location).await {
            Ok(info) => {
                let dc = info.tugboat.datacenter().clone();
                let region = self.config.regions.region_of(&dc).ok();
                (Some(dc), region)
            }
            Err(e) => {
                tracing::info!(location = %req.location, error = %e, "storm: cannot locate");
                (None, None)
            }
        }
    }

    /// IAM's token endpoint: reachable (`Ok`), or why not. One request, no key.
    pub async fn iam_health(&self) -> Result<(), String> {
        self.iam_health.health().await
    }

    /// Runs one check to a report, from the start or from a [`ResumePoint`]. Run it inside
    /// its [`check_span`]: the engine records the build number there once it is known.
    pub async fn run(
        &self,
        req: &CheckKey,
        resume: Option<ResumePoint>,
        progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> Report {
        let started = Instant::now();
        self.metrics.in_flight.inc();
        let report = Box::pin(self.run_inner(req, resume, progress)).await;
        self.metrics.in_flight.dec();
        self.metrics
            .checks
            .get_or_create(&VerdictLabel {
                verdict: report.verdict.as_str().to_string(),
            })
            .inc();
        self.metrics
            .check_duration
            .observe(started.elapsed().as_secs_f64());
        tracing::info!(
            verdict = report.verdict.as_str(),
            confirmed = report.confirmed,
            build_url = report.build_url.as_deref().unwrap_or(""),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "check finished"
        );
        report
    }

    async fn run_inner(
        &self,
        req: &CheckKey,
        resume: Option<ResumePoint>,
        progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> Report {
        // The check's span (the caller's), taken before any client enters a span of its own.
        let span = tracing::Span::current();
        let mut draft = Draft {
            location: req.location.clone(),
            environment: req.environment,
            tugboat: None,
            carrier: None,
            region_expected: None,
            build_url: None,
            steps: Vec::new(),
        };
        let Some(clients) = self.envs.get(&req.environment) else {
            let msg = format!("bot.toml has no [environments.{}] table.", req.environment);
            return draft.fail(
                StepId::Lookup,
                VerdictCode::LookupFailed,
                msg.clone(),
                vec![msg],
            );
        };

        // Steps 1 and 2a: tugboat and carrier (skipped when resuming: they were persisted).
        let (tugboat, carrier, start) = match resume.and_then(|r| {
            Some((
                Tugboat::parse(&r.tugboat).ok()?,
                Carrier::parse(&r.carrier).ok()?,
                r.job,
            ))
        }) {
            Some((t, c, job)) => {
                draft.steps.push(Step::new(
                    StepId::Lookup,
                    StepStatus::Ok,
                    vec![format!(
                        "ActualDatacenterCluster `{}` (kebab: `{}`), resumed after a restart",
                        t.dotted(),
                        t.kebab()
                    )],
                ));
                draft.steps.push(Step::new(
                    StepId::Carrier,
                    StepStatus::Ok,
                    vec![format!("`{c}` (resumed)")],
                ));
                (t, c, Some(job))
            }
            None => {
                progress(Progress::LookingUp);
                let info = match Box::pin(clients.directory.cluster(&req.location)).await {
                    Ok(info) => info,
                    Err(e) => {
                        tracing::warn!(error = %e, "directory lookup failed");
                        let verdict = match e {
                            DirectoryError::UnknownLocation(_) => VerdictCode::UnknownLocation,
                            _ => VerdictCode::LookupFailed,
                        };
                        let msg = e.user_message();
                        return draft.fail(StepId::Lookup, verdict, msg.clone(), vec![msg]);
                    }
                };
                let tugboat = info.tugboat.clone();
                let mut evidence = vec![format!(
                    "ActualDatacenterCluster `{}` (kebab: `{}`)",
                    tugboat.dotted(),
                    tugboat.kebab()
                )];
                for k in ["Name", "State"] {
                    if let Some(v) = info.fields.get(k) {
                        evidence.push(format!("{k}: {v}"));
                    }
                }
                draft.tugboat = Some(tugboat.clone());
                match self.config.regions.region_of(tugboat.datacenter()) {
                    Ok(r) => {
                        evidence.push(format!(
                            "datacenter `{}` is in region `{r}`",
                            tugboat.datacenter()
                        ));
                        draft.region_expected = Some(r);
                    }
                    Err(e) => return draft.fail_lookup(e.to_string()),
                }
                draft
                    .steps
                    .push(Step::new(StepId::Lookup, StepStatus::Ok, evidence));

                let carrier = match Box::pin(self.choose_carrier(clients, &tugboat)).await {
                    Ok((c, evidence)) => {
                        draft
                            .steps
                            .push(Step::new(StepId::Carrier, StepStatus::Ok, evidence));
                        c
                    }
                    Err(evidence) => {
                        let summary = evidence.first().cloned().unwrap_or_default();
                        return draft.fail(
                            StepId::Carrier,
                            VerdictCode::LookupFailed,
                            summary,
                            evidence,
                        );
                    }
                };
                (tugboat, carrier, None)
            }
        };
        draft.tugboat = Some(tugboat.clone());
        draft.carrier = Some(carrier.clone());
        // Resumed checks did not go through the lookup: their region is derived here.
        let region = match draft.region_expected.clone() {
            Some(r) => r,
            None => match self.config.regions.region_of(tugboat.datacenter()) {
                Ok(r) => {
                    draft.region_expected = Some(r.clone());
                    r
                }
                Err(e) => return draft.fail_lookup(e.to_string()),
            },
        };

        // Step 2b: the Jenkins job.
        let job_started = Instant::now();
        let start = match start {
            Some(job) => job,
            None => {
                progress(Progress::Triggering {
                    tugboat: tugboat.clone(),
                    carrier: carrier.clone(),
                    job: clients.job_name.clone(),
                });
                let params = BuildParams {
                    branch: clients.branch.clone(),
                    env_branch: clients.env_branch.clone(),
                    cluster_id: req.location.clone(),
                    tugboat: tugboat.clone(),
                    carrier: carrier.clone(),
                };
                match Box::pin(clients.jenkins.trigger(&params)).await {
                    Ok(q) => JobHandle::Queued(q),
                    Err(e) => {
                        tracing::warn!(error = %e, "Jenkins refused the job");
                        let msg = format!("Jenkins refused the job: {}", e.user_message());
                        return draft.fail(
                            StepId::Job,
                            VerdictCode::JobFailed,
                            msg.clone(),
                            vec![msg],
                        );
                    }
                }
            }
        };
        progress(Progress::Job(ResumePoint {
            tugboat: tugboat.dotted(),
            carrier: carrier.to_string(),
            job: start.clone(),
        }));
        if let JobHandle::Build(b) = &start {
            span.record("build", b.number);
            draft.build_url = Some(b.url.to_string());
        }
        let resume_tugboat = tugboat.dotted();
        let resume_carrier = carrier.to_string();
        let build_announced =
            std::sync::atomic::AtomicBool::new(matches!(start, JobHandle::Build(_)));
        let on_job = |p: &JobProgress| {
            if let JobProgress::Running { build, .. } = p {
                if build_announced.swap(true, std::sync::atomic::Ordering::Relaxed) {
                    progress(Progress::Jenkins(p.clone()));
                    return;
                }
                // The build number is now known: persist it so a restart finds the build directly.
                span.record("build", build.number);
                progress(Progress::Job(ResumePoint {
                    tugboat: resume_tugboat.clone(),
                    carrier: resume_carrier.clone(),
                    job: JobHandle::Build(build.clone()),
                }));
            }
            progress(Progress::Jenkins(p.clone()));
        };
        let finished = match clients
            .jenkins
            .wait(start, self.config.check.job_timeout, &on_job)
            .await
        {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(error = %e.user_message(), "Jenkins job did not succeed");
                let build = e.build().cloned();
                if let Some(b) = &build {
                    span.record("build", b.number);
                }
                draft.build_url = build
                    .as_ref()
                    .map(|b| b.url.to_string())
                    .or(draft.build_url);
                let tail = match &e {
                    JobError::Failed { console_tail, .. } => console_tail.clone(),
                    _ => None,
                };
                let msg = e.user_message();
                draft.steps.push(Step::new(
                    StepId::Job,
                    StepStatus::Failed,
                    vec![msg.clone()],
                ));
                return draft.finish(VerdictCode::JobFailed, msg, tail);
            }
        };
        span.record("build", finished.build.number);
        draft.build_url = Some(finished.build.url.to_string());
        draft.steps.push(Step::new(
            StepId::Job,
            StepStatus::Ok,
            vec![
                format!(
                    "build #{} {} after {}",
                    finished.build.number,
                    finished.result,
                    crate::format::human(job_started.elapsed())
                ),
                format!(
                    "parameters: CLUSTERID={} TUGBOAT={} CARRIER_NAME={}",
                    req.location,
                    tugboat.kebab(),
                    carrier
                ),
            ],
        ));

        // Steps 3 and 4: the artifacts, a few checks at a time (the turn is held until the
        // artifacts are parsed and dropped).
        progress(Progress::ReadingArtifacts);
        let turn = match self.artifact_turns.acquire().await {
            Ok(turn) => turn,
            Err(_) => {
                let msg = "The artifacts could not be read: linkbot is stopping.".to_string();
                return draft.fail(StepId::Job, VerdictCode::JobFailed, msg.clone(), vec![msg]);
            }
        };
        let (api_key_log, configmap_log) =
            match Box::pin(self.artifacts(clients, &finished.build, &finished.artifacts)).await {
                Ok(pair) => pair,
                Err((verdict, msg)) => {
                    let step = if verdict == VerdictCode::ArtifactMissing {
                        StepId::ApiKey
                    } else {
                        StepId::Job
                    };
                    return draft.fail(step, verdict, msg.clone(), vec![msg]);
                }
            };
        let mut diagnosis = match Box::pin(self.diagnose(api_key_log, configmap_log, &region)).await
        {
            Ok(d) => d,
            Err(msg) => {
                tracing::error!(error = %msg, "artifact parsing failed");
                return draft.fail(
                    StepId::ApiKey,
                    VerdictCode::ArtifactMissing,
                    msg.clone(),
                    vec![msg],
                );
            }
        };

        // The artifacts are parsed and dropped: the next check may download its own.
        drop(turn);

        // Step 5 (optional): ask IAM.
        if let (Some(iam), VerdictCode::ApiKeyInvalid, Some(key)) =
            (&self.iam, diagnosis.verdict, diagnosis.key.clone())
        {
            let outcome = Box::pin(iam.probe(&key)).await;
            diagnosis = rules::apply_iam(diagnosis, &outcome);
        }

        let mut report = draft.finish(diagnosis.verdict, diagnosis.summary.clone(), None);
        report.confirmed = diagnosis.confirmed;
        report.region_found = diagnosis.region_found.clone();
        report.key_fingerprint = diagnosis.key_fingerprint.clone();
        report.steps.extend(diagnosis.steps.iter().cloned());
        report
    }

    /// Parses both artifacts and applies the runbook on the low-priority parse pool, at most
    /// one parse per pool thread at a time; the artifacts are dropped there. A parse that
    /// panicked (it must not) ends as a sentence for `artifact_missing`, never as a lost check.
    async fn diagnose(
        &self,
        api_key_log: Vec<u8>,
        configmap_log: Vec<u8>,
        region: &Region,
    ) -> Result<rules::Diagnosis, String> {
        let region = region.clone();
        self.parse_pool
            .run(move || rules::diagnose(&api_key_log, &configmap_log, &region))
            .await
            .map_err(|e| match e {
                // The panic's message is not shown: it could quote the secret being parsed.
                PoolError::Panicked => {
                    "The artifacts could not be parsed (internal error in the parser).".to_string()
                }
                PoolError::Stopped => {
                    "The artifacts could not be parsed: linkbot is stopping.".to_string()
                }
            })
    }

    /// The first available carrier in the tugboat's datacenter: from the directory, else `[carriers]`.
    async fn choose_carrier(
        &self,
        clients: &EnvClients,
        tugboat: &Tugboat,
    ) -> Result<(Carrier, Vec<String>), Vec<String>> {
        let dc = tugboat.datacenter();
        match clients.directory.carriers(dc).await {
            Ok(Some(list)) if !list.is_empty() => {
                let seen: Vec<String> = list.iter().map(|c| format!("{} ({})", c.name, c.status)).collect();
                match list.iter().find(|c| c.is_available()) {
                    Some(c) => Ok((
                        c.name.clone(),
                        vec![format!("`{}`, first available in `{dc}` of: {}", c.name, seen.join(", "))],
                    )),
                    None => Err(vec![format!(
                        "No carrier in `{dc}` is available: the directory lists {}.",
                        seen.join(", ")
                    )]),
                }
            }
            Ok(_) => match self.config.carriers.get(dc).and_then(|l| l.first()) {
                Some(c) => Ok((
                    c.clone(),
                    vec![format!("`{c}`, first of `[carriers] {dc}` in bot.toml (the directory lists no carriers)")],
                )),
                None => Err(vec![format!(
                    "The directory lists no carriers for `{dc}` and bot.toml has none: add `{dc} = [\"…\"]` under `[carriers]`."
                )]),
            },
            Err(e) => {
                tracing::warn!(datacenter = %dc, error = %e, "carrier lookup failed");
                Err(vec![e.user_message()])
            }
        }
    }

    /// Downloads both artifacts, or says which is missing.
    async fn artifacts(
        &self,
        clients: &EnvClients,
        build: &BuildRef,
        available: &[String],
    ) -> Result<(Vec<u8>, Vec<u8>), (VerdictCode, String)> {
        let mut out = Vec::with_capacity(2);
        for name in [API_KEY_ARTIFACT, CONFIGMAP_ARTIFACT] {
            let path = available
                .iter()
                .find(|p| p.rsplit('/').next() == Some(name))
                .ok_or_else(|| {
                    let listed = if available.is_empty() {
                        "none".to_string()
                    } else {
                        available.join(", ")
                    };
                    (
                        VerdictCode::ArtifactMissing,
                        format!(
                            "Build #{} has no `{name}` (its artifacts: {listed}).",
                            build.number
                        ),
                    )
                })?;
            let bytes = clients
                .jenkins
                .artifact(build, path, self.config.check.artifact_max_bytes)
                .await
                .map_err(|e| {
                    tracing::warn!(artifact = name, error = %e, "artifact download failed");
                    (
                        VerdictCode::JobFailed,
                        format!("Could not download `{name}`: {}", e.user_message()),
                    )
                })?;
            out.push(bytes);
        }
        let configmap = out.pop().unwrap_or_default();
        let api_key = out.pop().unwrap_or_default();
        Ok((api_key, configmap))
    }
}
