//! The escalation workflow: what happens when someone escalates a check result to a team or
//! pages it, and in what order.
//!
//! [`Workflow::run`] chooses the target (by its `[escalation.<name>]` key), loads the latest
//! finished result of the location from the store, then acts: for a page, it claims the
//! result's one page in the store (`claim_page`, so concurrent clicks on any replica page once),
//! sends the PagerDuty event and records how it went (`page_sent` / `page_failed`); for an
//! escalation, it posts the report to the team's channel (through [`ReportChannel`]) and opens
//! the GitHub issue. Then it writes the audit entry — before anyone is told, so the log has what
//! happened even when telling the thread fails — and returns a typed [`Outcome`].
//!
//! This module must NOT import slack-morphism or render Slack text: Slack is behind
//! [`ReportChannel`], and the Slack layer renders the [`Outcome`]. It must NOT import `config`
//! (the targets and clients are handed in as parsed values), and must NOT decide who may
//! escalate (the Slack layer authorizes the click before calling).

use super::{
    issue_markdown, page_event, EscalationError, GitHubClient, IssueLink, PagerDutyClient,
};
use crate::diagnosis::verdict::{Report, VerdictCode};
use crate::domain::{Environment, GithubRepo, LocationId, SlackChannelId};
use crate::store::{AuditEntry, AuditKind, CheckKey, PageClaim, PageRecord, Store};
use anyhow::{Context, Result};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// How long a page claimed but never reported sent or failed (its replica died mid-page) keeps
/// other clicks away: longer than the PagerDuty client's whole retry budget.
pub const PAGE_CLAIM_STALE: Duration = Duration::from_secs(300);

/// `[escalation.<name>]`: one team that can be escalated to (parsed and validated by config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EscalationTarget {
    /// The table's key (`razee`, `armada_bootstrap`, `satellite_link`, …).
    pub name: String,
    /// What people call the team.
    pub title: String,
    /// The team's channel, to post the diagnosis in.
    pub slack_channel: Option<SlackChannelId>,
    /// Whether escalating pages the team through PagerDuty.
    pub pagerduty: bool,
    /// `owner/repo` to open a GitHub issue in.
    pub github_repo: Option<GithubRepo>,
    /// The verdicts this team owns (`owns`), in the order written.
    pub owns: Vec<VerdictCode>,
    /// Whether the GitHub issue linkbot opened here is closed when its incident resolves
    /// (`close_issue_on_resolve`; otherwise it only gets a comment).
    pub close_issue_on_resolve: bool,
}

/// What follows the team's name in the audit entry's `target` of a Page click
/// (`satellite_link (page)`; an Escalate click's target is the name alone). The report splits
/// on it to count escalations and pages by team.
pub const PAGE_TARGET_SUFFIX: &str = " (page)";

/// The escalation clients that are configured (each needs its secret).
#[derive(Clone, Default)]
pub struct Escalators {
    /// PagerDuty, when `PAGERDUTY_ROUTING_KEY` is set.
    pub pagerduty: Option<PagerDutyClient>,
    /// GitHub, when `GITHUB_TOKEN` is set.
    pub github: Option<GitHubClient>,
}

/// Why a report could not be posted to a team's channel: the sentence for people, and the cause.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct PostFailed {
    /// The short sentence shown to people.
    pub message: String,
    /// The underlying error (for the logs).
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// Who asks for the report to be posted, shown above it in the team's channel.
#[derive(Debug, Clone, Copy)]
pub struct Preface<'a> {
    /// The person who escalated (Slack user id).
    pub requested_by: &'a str,
    /// The target's title.
    pub target_title: &'a str,
    /// The thread the escalation was asked from, when its link is known.
    pub thread_link: Option<&'a str>,
}

/// The chat side of an escalation: where it was asked, and the teams' channels.
#[async_trait::async_trait]
pub trait ReportChannel: Send + Sync {
    /// A link to the thread the escalation was asked from, if the chat gives one.
    async fn thread_link(&self) -> Option<String>;

    /// Posts `report` to `channel` under `preface`; returns the message's permalink when the
    /// chat gives one (the post itself succeeded either way).
    async fn post_report(
        &self,
        channel: &SlackChannelId,
        report: &Report,
        preface: Preface<'_>,
    ) -> Result<Option<String>, PostFailed>;
}

/// Escalate to a team (its channel and GitHub), or page it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Post to the team's channel and open the GitHub issue, as configured.
    Escalate,
    /// Page the team through PagerDuty, once per result.
    Page,
}

/// One escalation asked for (already authorized by the caller).
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// Who asked (Slack user id).
    pub actor: &'a str,
    /// Where (Slack channel id).
    pub channel: &'a str,
    /// The location whose latest result is escalated.
    pub location: &'a LocationId,
    /// Its environment.
    pub environment: Environment,
    /// The target's `[escalation.<name>]` key, as the button named it.
    pub target: Option<&'a str>,
    /// Escalate or page.
    pub action: Action,
}

/// What an escalation did.
#[derive(Debug)]
pub enum Outcome {
    /// The target is not (or no longer) configured: nothing was done.
    UnknownTarget,
    /// The location has no finished check yet: nothing was done.
    NoResult,
    /// This result was already paged, or is being paged: nothing was done.
    AlreadyPaged(PageRecord),
    /// The store did not answer the page claim: nothing was paged.
    StoreUnavailable,
    /// The actions were tried and audited.
    Escalated(Escalated),
}

/// What was tried for an escalation or a page, each action's result.
#[derive(Debug)]
pub struct Escalated {
    /// The target's title.
    pub target_title: String,
    /// What went through, in the order it was done.
    pub done: Vec<Done>,
    /// What did not.
    pub failed: Vec<Failed>,
}

/// One action that went through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Done {
    /// PagerDuty took the event.
    Paged {
        /// The incident's dedup key.
        dedup_key: String,
    },
    /// The report was posted to the team's channel.
    Posted {
        /// The channel.
        channel: SlackChannelId,
        /// The message's permalink, when the chat gave one.
        link: Option<String>,
    },
    /// The GitHub issue was opened.
    IssueOpened {
        /// The repository.
        repo: GithubRepo,
        /// The issue.
        issue: IssueLink,
    },
}

impl Done {
    /// What the audit log links for this action.
    pub fn link(&self) -> Option<String> {
        match self {
            Done::Paged { dedup_key } => Some(format!("pagerduty:{dedup_key}")),
            Done::Posted { link, .. } => link.clone(),
            Done::IssueOpened { issue, .. } => Some(issue.html_url.to_string()),
        }
    }
}

/// One action that did not go through.
#[derive(Debug)]
pub enum Failed {
    /// PagerDuty refused the event or could not be reached.
    PagerDuty(EscalationError),
    /// The target does not page, or no routing key is set.
    PagerDutyNotConfigured {
        /// The target's title.
        target_title: String,
    },
    /// The report could not be posted to the team's channel.
    Channel {
        /// The channel.
        channel: SlackChannelId,
        /// Why.
        error: PostFailed,
    },
    /// GitHub did not open the issue.
    GitHub {
        /// The repository.
        repo: GithubRepo,
        /// Why.
        error: EscalationError,
    },
    /// No GitHub token is set.
    GitHubNotConfigured,
}

/// Plain text, for the audit log (the Slack layer renders its own, escaped).
impl fmt::Display for Failed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failed::PagerDuty(e) => write!(f, "PagerDuty: {}", e.user_message()),
            Failed::PagerDutyNotConfigured { target_title } => {
                write!(f, "PagerDuty is not configured for {target_title}")
            }
            Failed::Channel { channel, error } => write!(f, "#{channel}: {}", error.message),
            Failed::GitHub { repo, error } => write!(f, "GitHub {repo}: {}", error.user_message()),
            Failed::GitHubNotConfigured => f.write_str("GitHub is not configured (GITHUB_TOKEN)"),
        }
    }
}

/// The escalation workflow over the store, the clients and the configured targets.
/// Cheap to clone.
#[derive(Clone)]
pub struct Workflow {
    store: Arc<dyn Store>,
    escalators: Escalators,
    targets: Arc<[EscalationTarget]>,
}

impl Workflow {
    /// A workflow choosing among `targets` (config's `[escalation.*]`, in order).
    pub fn new(
        store: Arc<dyn Store>,
        escalators: Escalators,
        targets: Vec<EscalationTarget>,
    ) -> Self {
        Workflow {
            store,
            escalators,
            targets: targets.into(),
        }
    }

    /// Runs one escalation: target, result, actions, audit entry, in that order. An error
    /// means the store could not say which result to escalate (nothing was done).
    pub async fn run(&self, req: &Request<'_>, chat: &dyn ReportChannel) -> Result<Outcome> {
        let Some(target) = req
            .target
            .and_then(|name| self.targets.iter().find(|t| t.name == name))
        else {
            return Ok(Outcome::UnknownTarget);
        };
        let key = CheckKey {
            environment: req.environment,
            location: req.location.clone(),
        };
        let latest = self
            .store
            .latest_finished(&key)
            .await
            .context("reading the result to escalate")?;
        let Some((check_id, report)) = latest.and_then(|done| {
            let report = serde_json::from_value::<Report>(done.report).ok()?;
            Some((done.check_id, report))
        }) else {
            return Ok(Outcome::NoResult);
        };
        let thread_link = chat.thread_link().await;
        let mut done = Vec::new();
        let mut failed = Vec::new();

        match req.action {
            Action::Page => match (&self.escalators.pagerduty, target.pagerduty) {
                (Some(pd), true) => {
                    // One page per incident: the latest result of this location, claimed in the
                    // store so concurrent clicks on any replica page once.
                    let claim = match self
                        .store
                        .claim_page(check_id, &key, &target.name, req.actor, PAGE_CLAIM_STALE)
                        .await
                    {
                        Ok(PageClaim::Claimed { claim }) => claim,
                        Ok(PageClaim::Taken(record)) => return Ok(Outcome::AlreadyPaged(record)),
                        Err(e) => {
                            tracing::error!(
                                error = format!("{:#}", anyhow::Error::new(e)),
                                "could not claim a page in the store"
                            );
                            return Ok(Outcome::StoreUnavailable);
                        }
                    };
                    let ev = page_event(&report, req.actor, thread_link.as_deref());
                    let sent = pd.trigger(&ev).await;
                    let recorded = match &sent {
                        Ok(receipt) => {
                            let link = format!("pagerduty:{}", receipt.dedup_key);
                            self.store.page_sent(check_id, &claim, &link).await
                        }
                        Err(_) => self.store.page_failed(check_id, &claim).await,
                    };
                    if let Err(e) = recorded {
                        tracing::error!(error = %e, "could not record how a page went in the store");
                    }
                    match sent {
                        Ok(receipt) => done.push(Done::Paged {
                            dedup_key: receipt.dedup_key,
                        }),
                        Err(e) => failed.push(Failed::PagerDuty(e)),
                    }
                }
                _ => failed.push(Failed::PagerDutyNotConfigured {
                    target_title: target.title.clone(),
                }),
            },
            Action::Escalate => {
                if let Some(channel) = &target.slack_channel {
                    let preface = Preface {
                        requested_by: req.actor,
                        target_title: &target.title,
                        thread_link: thread_link.as_deref(),
                    };
                    match chat.post_report(channel, &report, preface).await {
                        Ok(link) => done.push(Done::Posted {
                            channel: channel.clone(),
                            link,
                        }),
                        Err(error) => failed.push(Failed::Channel {
                            channel: channel.clone(),
                            error,
                        }),
                    }
                }
                if let Some(repo) = &target.github_repo {
                    match &self.escalators.github {
                        Some(gh) => {
                            let issue = issue_markdown(&report, req.actor, thread_link.as_deref());
                            match gh.open_issue(repo, &issue).await {
                                Ok(issue) => done.push(Done::IssueOpened {
                                    repo: repo.clone(),
                                    issue,
                                }),
                                Err(error) => failed.push(Failed::GitHub {
                                    repo: repo.clone(),
                                    error,
                                }),
                            }
                        }
                        None => failed.push(Failed::GitHubNotConfigured),
                    }
                }
            }
        }

        // The open incident of this location remembers what linkbot did for it, so its
        // resolution resolves the page and comments on the issue (and its timeline shows them).
        for d in &done {
            let recorded = match d {
                Done::Paged { dedup_key } => {
                    self.store.incident_paged(&key, dedup_key, req.actor).await
                }
                Done::IssueOpened { repo, issue } => {
                    let number = i64::try_from(issue.number).unwrap_or(i64::MAX);
                    self.store
                        .incident_issue(&key, repo.as_str(), number, req.actor)
                        .await
                }
                Done::Posted { .. } => Ok(false),
            };
            if let Err(e) = recorded {
                tracing::error!(error = %e, "could not record an escalation on the incident");
            }
        }

        // Record before anyone is told: the page, issue or post already happened, so the audit
        // log must have it even when telling the thread fails.
        let links: Vec<String> = done.iter().filter_map(Done::link).collect();
        let failures: Vec<String> = failed.iter().map(ToString::to_string).collect();
        let entry = AuditEntry {
            at: chrono::Utc::now(),
            kind: AuditKind::Escalation,
            actor: Some(req.actor.to_string()),
            channel: Some(req.channel.to_string()),
            location: req.location.clone(),
            environment: req.environment,
            verdict: Some(report.verdict.as_str().to_string()),
            target: Some(match req.action {
                Action::Page => format!("{}{PAGE_TARGET_SUFFIX}", target.name),
                Action::Escalate => target.name.clone(),
            }),
            link: (!links.is_empty()).then(|| links.join(" ")),
            detail: (!failures.is_empty()).then(|| failures.join("; ")),
        };
        if let Err(e) = self.store.append_audit(&entry).await {
            tracing::error!(error = %e, "could not record an escalation in the audit log");
        }
        Ok(Outcome::Escalated(Escalated {
            target_title: target.title.clone(),
            done,
            failed,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnosis::verdict::{next_actions, Step, StepId, StepStatus};
    use crate::store::{Claim, RequestSource, Requester};
    use std::sync::Mutex;

    const LOCATION: &str = "c1hk4ek107l5au5mq8hg";
    const TEAM_CHANNEL: &str = "C0TEAM";
    const POSTED: &str = "https://slack.example/archives/C0TEAM/p1";

    fn location() -> LocationId {
        LocationId::parse(LOCATION).expect("a location")
    }

    fn report() -> Report {
        Report {
            verdict: VerdictCode::ConfigMissing,
            confirmed: false,
            summary: "the ConfigMap is missing".into(),
            location: Some(location()),
            environment: Some(Environment::Prod),
            tugboat: None,
            carrier: None,
            region_expected: None,
            region_found: None,
            build_url: None,
            console_tail: None,
            key_fingerprint: None,
            steps: vec![Step::new(StepId::Job, StepStatus::Ok, vec![])],
            next_actions: next_actions(VerdictCode::ConfigMissing, None),
            checked_at: chrono::Utc::now(),
        }
    }

    fn target() -> EscalationTarget {
        EscalationTarget {
            name: "razee".into(),
            title: "Razee".into(),
            slack_channel: Some(SlackChannelId::parse(TEAM_CHANNEL).expect("a channel")),
            pagerduty: true,
            github_repo: Some(GithubRepo::parse("razee-io/razee").expect("a repo")),
            owns: vec![VerdictCode::ConfigMissing],
            close_issue_on_resolve: false,
        }
    }

    /// A store holding one finished check of [`LOCATION`] in prod (when `finished`).
    async fn store(finished: bool) -> Arc<dyn Store> {
        let store = crate::store::open("sqlite::memory:")
            .await
            .expect("an in-memory store");
        if finished {
            let key = CheckKey {
                environment: Environment::Prod,
                location: location(),
            };
            let requester = Requester {
                user: Some("U0ASKER".into()),
                channel: Some("C0ONCALL".into()),
                source: RequestSource::Mention,
            };
            let long = Duration::from_secs(600);
            let Claim::Started(id) = store
                .claim_check(&key, "test", long, long, &requester)
                .await
                .expect("a claim")
            else {
                panic!("a new check should start");
            };
            let report = serde_json::to_value(report()).expect("a report as JSON");
            store
                .finish_check(id, "test", "config_missing", &report, None)
                .await
                .expect("the check finishes");
        }
        store
    }

    /// The escalations in the audit log.
    async fn escalations(store: &Arc<dyn Store>) -> Vec<AuditEntry> {
        let all = store.audit(None, None, 100).await.expect("the audit log");
        all.into_iter()
            .filter(|e| e.kind == AuditKind::Escalation)
            .collect()
    }

    /// A chat that records what it was asked, and how many escalations the audit log held then.
    struct FakeChat {
        store: Arc<dyn Store>,
        refuse: bool,
        calls: Mutex<Vec<String>>,
    }

    impl FakeChat {
        fn new(store: &Arc<dyn Store>, refuse: bool) -> Self {
            FakeChat {
                store: store.clone(),
                refuse,
                calls: Mutex::new(Vec::new()),
            }
        }

        fn calls(&self) -> Vec<String> {
            self.calls.lock().expect("the call log").clone()
        }
    }

    #[async_trait::async_trait]
    impl ReportChannel for FakeChat {
        async fn thread_link(&self) -> Option<String> {
            self.calls
                .lock()
                .expect("the call log")
                .push("thread_link".into());
            Some("https://slack.example/archives/C0ONCALL/p9".into())
        }

        async fn post_report(
            &self,
            channel: &SlackChannelId,
            report: &Report,
            preface: Preface<'_>,
        ) -> Result<Option<String>, PostFailed> {
            let audited = escalations(&self.store).await.len();
            self.calls.lock().expect("the call log").push(format!(
                "post_report {channel} {} by {} for {} from {:?}, audited {audited}",
                report.verdict.as_str(),
                preface.requested_by,
                preface.target_title,
                preface.thread_link
            ));
            if self.refuse {
                return Err(PostFailed {
                    message: "Slack said channel_not_found.".into(),
                    source: "channel_not_found".into(),
                });
            }
            Ok(Some(POSTED.into()))
        }
    }

    fn request<'a>(location: &'a LocationId, target: &'a str, action: Action) -> Request<'a> {
        Request {
            actor: "U0ENGINEER",
            channel: "C0ONCALL",
            location,
            environment: Environment::Prod,
            target: Some(target),
            action,
        }
    }

    #[tokio::test]
    async fn an_escalation_acts_then_audits_what_happened_before_returning() {
        let store = store(true).await;
        let workflow = Workflow::new(store.clone(), Escalators::default(), vec![target()]);
        let chat = FakeChat::new(&store, false);
        let loc = location();
        let outcome = workflow
            .run(&request(&loc, "razee", Action::Escalate), &chat)
            .await
            .expect("the workflow runs");
        // The thread link is asked for once the result is known, then the report is posted,
        // with nothing audited yet: the audit entry records what the actions did.
        assert_eq!(
            chat.calls(),
            [
                "thread_link".to_string(),
                format!(
                    "post_report {TEAM_CHANNEL} config_missing by U0ENGINEER for Razee from Some(\"https://slack.example/archives/C0ONCALL/p9\"), audited 0"
                )
            ]
        );
        let Outcome::Escalated(done) = outcome else {
            panic!("expected an escalation, got {outcome:?}");
        };
        assert_eq!(done.target_title, "Razee");
        assert_eq!(
            done.done,
            [Done::Posted {
                channel: SlackChannelId::parse(TEAM_CHANNEL).expect("a channel"),
                link: Some(POSTED.into()),
            }]
        );
        assert!(
            matches!(done.failed[..], [Failed::GitHubNotConfigured]),
            "{:?}",
            done.failed
        );
        // By the time the outcome is back (and the thread can be told), the audit log has it.
        let audit = escalations(&store).await;
        assert_eq!(audit.len(), 1, "{audit:#?}");
        let entry = &audit[0];
        assert_eq!(entry.actor.as_deref(), Some("U0ENGINEER"));
        assert_eq!(entry.channel.as_deref(), Some("C0ONCALL"));
        assert_eq!(entry.target.as_deref(), Some("razee"));
        assert_eq!(entry.verdict.as_deref(), Some("config_missing"));
        assert_eq!(entry.link.as_deref(), Some(POSTED));
        assert_eq!(
            entry.detail.as_deref(),
            Some("GitHub is not configured (GITHUB_TOKEN)")
        );
    }

    #[tokio::test]
    async fn a_refused_post_is_a_failure_in_the_outcome_and_the_audit_log() {
        let store = store(true).await;
        let workflow = Workflow::new(store.clone(), Escalators::default(), vec![target()]);
        let chat = FakeChat::new(&store, true);
        let loc = location();
        let outcome = workflow
            .run(&request(&loc, "razee", Action::Escalate), &chat)
            .await
            .expect("the workflow runs");
        let Outcome::Escalated(done) = outcome else {
            panic!("expected an escalation, got {outcome:?}");
        };
        assert!(done.done.is_empty(), "{:?}", done.done);
        assert!(
            matches!(
                &done.failed[..],
                [Failed::Channel { .. }, Failed::GitHubNotConfigured]
            ),
            "{:?}",
            done.failed
        );
        let audit = escalations(&store).await;
        assert_eq!(audit.len(), 1, "{audit:#?}");
        assert_eq!(audit[0].link, None);
        assert_eq!(
            audit[0].detail.as_deref(),
            Some("#C0TEAM: Slack said channel_not_found.; GitHub is not configured (GITHUB_TOKEN)")
        );
    }

    #[tokio::test]
    async fn a_page_without_pagerduty_claims_nothing_and_is_audited_as_a_page() {
        let store = store(true).await;
        let workflow = Workflow::new(store.clone(), Escalators::default(), vec![target()]);
        let chat = FakeChat::new(&store, false);
        let loc = location();
        let outcome = workflow
            .run(&request(&loc, "razee", Action::Page), &chat)
            .await
            .expect("the workflow runs");
        let Outcome::Escalated(done) = outcome else {
            panic!("expected an escalation, got {outcome:?}");
        };
        assert!(done.done.is_empty());
        assert!(
            matches!(&done.failed[..], [Failed::PagerDutyNotConfigured { target_title }] if target_title == "Razee"),
            "{:?}",
            done.failed
        );
        // Nothing is posted for a page.
        assert_eq!(chat.calls(), ["thread_link"]);
        let audit = escalations(&store).await;
        assert_eq!(audit.len(), 1);
        assert_eq!(audit[0].target.as_deref(), Some("razee (page)"));
        assert_eq!(
            audit[0].detail.as_deref(),
            Some("PagerDuty is not configured for Razee")
        );
    }

    #[tokio::test]
    async fn nothing_happens_without_a_target_or_a_result() {
        let store = store(true).await;
        let workflow = Workflow::new(store.clone(), Escalators::default(), vec![target()]);
        let chat = FakeChat::new(&store, false);
        let loc = location();
        let outcome = workflow
            .run(&request(&loc, "gone", Action::Escalate), &chat)
            .await
            .expect("the workflow runs");
        assert!(matches!(outcome, Outcome::UnknownTarget), "{outcome:?}");

        let empty = store_without_result().await;
        let workflow = Workflow::new(empty.clone(), Escalators::default(), vec![target()]);
        let outcome = workflow
            .run(&request(&loc, "razee", Action::Page), &chat)
            .await
            .expect("the workflow runs");
        assert!(matches!(outcome, Outcome::NoResult), "{outcome:?}");

        assert!(chat.calls().is_empty(), "{:?}", chat.calls());
        assert!(escalations(&store).await.is_empty());
        assert!(escalations(&empty).await.is_empty());
    }

    async fn store_without_result() -> Arc<dyn Store> {
        store(false).await
    }
}
