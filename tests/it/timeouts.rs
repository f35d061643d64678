//! Client timeouts come from bot.toml: for each client kind, a server that accepts and never
//! answers (`sim::Stalled`) gives that client's timeout answer once the configured bound passes,
//! not the built-in default. The clients are built from the parsed `Config` exactly as the bot
//! builds them (the engine's directory, Jenkins and IAM through `Engine::new`). Every wait is
//! bounded; nothing sleeps.

use linkbot::check::Engine;
use linkbot::config::{Config, Secrets};
use linkbot::diagnosis::verdict::{IamOutcome, VerdictCode};
use linkbot::directory::{DirectoryClient, DirectoryError};
use linkbot::domain::{BaseUrl, Carrier, CheckKey, Environment, GithubRepo, LocationId, Tugboat};
use linkbot::escalation::{issue_markdown, page_event, GitHubClient, PagerDutyClient, RetryPolicy};
use linkbot::iam::IamClient;
use linkbot::jenkins::{BuildParams, JenkinsClient, JenkinsError, PollPolicy};
use linkbot::metrics::Metrics;
use linkbot::net::Net;
use linkbot::secret::Secret;
use linkbot::sim::Stalled;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The configured bound in every test (the smallest bot.toml accepts).
const CONFIGURED: Duration = Duration::from_secs(1);
/// How late after the bound the answer may come (a loaded machine), still far below every
/// client's default (10 s and more).
const SLACK: Duration = Duration::from_secs(4);

/// A bot.toml whose directory and Jenkins are `stalled`, and every client bounded to 1 s.
fn config(stalled: &Stalled) -> Config {
    let url = stalled.base_url();
    let src = format!(
        "[slack]\nchannels = [\"C0ONCALL\"]\n\
         [environments.prod]\nxo_url = \"{url}\"\njenkins_url = \"{url}\"\n\
         [directory]\nrequest_timeout_secs = 1\n\
         [jenkins]\nrequest_timeout_secs = 1\n\
         [iam]\nverify_key = true\nurl = \"{url}\"\nrequest_timeout_secs = 1\n\
         [pagerduty]\nurl = \"{url}\"\nrequest_timeout_secs = 1\n\
         [github]\napi_url = \"{url}\"\nrequest_timeout_secs = 1\n"
    );
    Config::parse(&src).unwrap_or_else(|p| panic!("{p:?}"))
}

/// Runs `f`, failing the test if it takes longer than the bound plus the slack; returns its
/// answer and how long it took.
async fn timed<T>(f: impl std::future::Future<Output = T>) -> (T, Duration) {
    let started = Instant::now();
    let out = tokio::time::timeout(CONFIGURED + SLACK, f)
        .await
        .expect("the configured timeout fires");
    (out, started.elapsed())
}

fn assert_bounded_by_config(took: Duration) {
    assert!(
        took >= CONFIGURED.mul_f64(0.9) && took < CONFIGURED + SLACK,
        "answered after {took:?}, configured {CONFIGURED:?}"
    );
}

fn location() -> LocationId {
    LocationId::parse("c1hk4ek107l5au5mq8hg").unwrap()
}

#[tokio::test]
async fn a_stalled_directory_ends_the_check_after_the_configured_timeout() {
    let stalled = Stalled::start().await.unwrap();
    let config = config(&stalled);
    assert_eq!(config.timeouts.directory.request, CONFIGURED);
    let engine = Engine::new(
        Arc::new(config),
        &Secrets::default(),
        &Net::direct(),
        Metrics::new(),
    )
    .unwrap();
    let req = CheckKey {
        location: location(),
        environment: Environment::Prod,
    };
    let (report, took) = timed(engine.run(&req, None, &|_| {})).await;
    assert_eq!(report.verdict, VerdictCode::LookupFailed, "{report:?}");
    assert_bounded_by_config(took);
}

#[tokio::test]
async fn a_stalled_directory_lookup_is_a_timeout() {
    let stalled = Stalled::start().await.unwrap();
    let config = config(&stalled);
    let client = DirectoryClient::with_timeouts(
        BaseUrl::new(stalled.base_url()).unwrap(),
        None,
        Metrics::new(),
        config.timeouts.directory,
        &Net::direct(),
    )
    .unwrap();
    let (answer, took) = timed(client.cluster(&location())).await;
    match answer {
        Err(DirectoryError::Transport { source, .. }) => {
            assert!(source.is_timeout(), "{source:?}")
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert_bounded_by_config(took);
}

#[tokio::test]
async fn a_stalled_jenkins_trigger_is_a_timeout() {
    let stalled = Stalled::start().await.unwrap();
    let config = config(&stalled);
    let client = JenkinsClient::new(
        BaseUrl::new(stalled.base_url()).unwrap(),
        vec!["job".into()],
        None,
        None,
        PollPolicy {
            min: Duration::from_millis(250),
            max: Duration::from_secs(1),
        },
        Metrics::new(),
        &Net::direct(),
    )
    .unwrap()
    .with_timeouts(config.timeouts.jenkins)
    .unwrap();
    let params = BuildParams {
        branch: "master".into(),
        env_branch: "master".into(),
        cluster_id: location(),
        tugboat: Tugboat::parse("prod-wdc04.carrier107").unwrap(),
        carrier: Carrier::parse("prod-wdc04-carrier2").unwrap(),
    };
    // A trigger is never repeated once it may have reached Jenkins: one timeout, one answer.
    let (answer, took) = timed(client.trigger(&params)).await;
    let e: JenkinsError = answer.unwrap_err();
    assert_eq!(e.kind(), "timeout", "{e:?}");
    assert!(e.user_message().contains("did not answer"), "{e:?}");
    assert_bounded_by_config(took);
}

#[tokio::test]
async fn a_stalled_iam_is_unreachable_after_the_configured_timeout() {
    let stalled = Stalled::start().await.unwrap();
    let config = config(&stalled);
    let client =
        IamClient::with_timeouts(config.iam.url.clone(), config.timeouts.iam, &Net::direct())
            .unwrap();
    let (outcome, took) =
        timed(client.probe(&Secret::new("kq2V8hN0Zt1mWcXb3fLpSECRETIAMKEY"))).await;
    assert_eq!(
        outcome,
        IamOutcome::Unreachable {
            detail: "IAM did not answer in time".to_string()
        }
    );
    assert_bounded_by_config(took);
}

/// A report to escalate: the one a stalled directory gives.
async fn some_report(config: &Config) -> linkbot::diagnosis::verdict::Report {
    let engine = Engine::new(
        Arc::new(config.clone()),
        &Secrets::default(),
        &Net::direct(),
        Metrics::new(),
    )
    .unwrap();
    let req = CheckKey {
        location: location(),
        environment: Environment::Prod,
    };
    timed(engine.run(&req, None, &|_| {})).await.0
}

#[tokio::test]
async fn a_stalled_pagerduty_is_a_timeout() {
    let stalled = Stalled::start().await.unwrap();
    let config = config(&stalled);
    let report = some_report(&config).await;
    let client = PagerDutyClient::new(
        config.pagerduty_url.clone(),
        Secret::new("R0utingKeyR0utingKeyR0utingKey32"),
        Metrics::new(),
        &Net::direct(),
    )
    .unwrap()
    .with_timeouts(config.timeouts.pagerduty)
    .unwrap()
    .with_retry(RetryPolicy {
        attempts: 1,
        first_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(1),
    });
    let (answer, took) = timed(client.trigger(&page_event(&report, "alice", None))).await;
    let e = answer.unwrap_err();
    assert_eq!(e.kind(), "timeout", "{e:?}");
    assert_bounded_by_config(took);
}

#[tokio::test]
async fn a_stalled_github_is_a_timeout() {
    let stalled = Stalled::start().await.unwrap();
    let config = config(&stalled);
    let report = some_report(&config).await;
    let client = GitHubClient::new(
        config.github_api_url.clone(),
        Secret::new("ghp_TestTokenTestTokenTestToken0001"),
        Metrics::new(),
        &Net::direct(),
    )
    .unwrap()
    .with_timeouts(config.timeouts.github)
    .unwrap();
    let repo = GithubRepo::parse("org/satellite-link").unwrap();
    let (answer, took) =
        timed(client.open_issue(&repo, &issue_markdown(&report, "alice", None))).await;
    let e = answer.unwrap_err();
    assert_eq!(e.kind(), "timeout", "{e:?}");
    assert_bounded_by_config(took);
}
