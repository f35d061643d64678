//! Escalation end to end against the PagerDuty and GitHub sims: what goes on the wire, what comes
//! back as errors, and that no secret travels anywhere it should not.

use linkbot::diagnosis::verdict::{next_actions, Report, Step, StepId, StepStatus, VerdictCode};
use linkbot::domain::{BaseUrl, Carrier, Environment, GithubRepo, LocationId, Region, Tugboat};
use linkbot::escalation::{
    issue_markdown, page_event, EscalationError, GitHubClient, NewIssue, PagerDutyClient,
    RetryPolicy, PAGE_SUMMARY_MAX_CHARS, USER_AGENT,
};
use linkbot::metrics::Metrics;
use linkbot::net::Net;
use linkbot::secret::Secret;
use linkbot::sim;
use proptest::prelude::*;
use std::time::Duration;

const ROUTING_KEY: &str = "R0utingKeyR0utingKeyR0utingKey32";
const GH_TOKEN: &str = "ghp_TestTokenTestTokenTestToken0001";
/// The IAM key the report's fingerprint came from: it must never appear anywhere.
const IAM_KEY: &str = "kq2V8hN0Zt1mWcXb3fLpSECRETIAMKEY";
const REPO: &str = "org/satellite-link";
const THREAD: &str = "https://example.slack.com/archives/C0ONCALL/p1700000000000100";
const WAIT: Duration = Duration::from_secs(10);

fn fast_retry(attempts: u32) -> RetryPolicy {
    RetryPolicy {
        attempts,
        first_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
    }
}

fn report(location: &str, verdict: VerdictCode) -> Report {
    let region = Region::parse("us-east").unwrap();
    Report {
        verdict,
        confirmed: false,
        summary: "slclient.toml has no iam_api_key: the connector cannot get an IAM token.".into(),
        location: Some(LocationId::parse(location).unwrap()),
        environment: Some(Environment::Prod),
        tugboat: Some(Tugboat::parse("prod-wdc04.carrier107").unwrap()),
        carrier: Some(Carrier::parse("prod-wdc04-carrier2").unwrap()),
        region_expected: Some(region.clone()),
        region_found: Some("us-south".into()),
        build_url: Some(
            "https://jenkins.example.internal/job/A/job/B/job/armada-ha-master-get-info/4242/"
                .into(),
        ),
        console_tail: Some(
            "+ kubectl get secret\n```\nnot a fence breaker\nFinished: SUCCESS\n".into(),
        ),
        key_fingerprint: Some(Secret::new(IAM_KEY).fingerprint()),
        steps: vec![
            Step::new(
                StepId::Lookup,
                StepStatus::Ok,
                vec!["ActualDatacenterCluster = prod-wdc04.carrier107".into()],
            ),
            Step::new(
                StepId::Carrier,
                StepStatus::Ok,
                vec!["first available carrier: prod-wdc04-carrier2".into()],
            ),
            Step::new(
                StepId::Job,
                StepStatus::Ok,
                vec!["build #4242 SUCCESS in 3m12s".into()],
            ),
            Step::new(
                StepId::ApiKey,
                StepStatus::Failed,
                vec![
                    "slclient.toml decoded (212 bytes), [Bluemix] table present".into(),
                    "iam_api_key is empty".into(),
                ],
            ),
            Step::new(
                StepId::Region,
                StepStatus::Skipped,
                vec!["not reached: the key is missing".into()],
            ),
        ],
        next_actions: next_actions(verdict, Some(&region)),
        checked_at: chrono::Utc::now(),
    }
}

fn pd_client(sim: &sim::pagerduty::PagerDutySim, key: &str, metrics: &Metrics) -> PagerDutyClient {
    PagerDutyClient::new(
        BaseUrl::new(sim.base_url()).unwrap(),
        Secret::new(key),
        metrics.clone(),
        &Net::direct(),
    )
    .unwrap()
    .with_retry(fast_retry(3))
}

fn repo(s: &str) -> GithubRepo {
    GithubRepo::parse(s).unwrap()
}

fn gh_client(sim: &sim::github::GitHubSim, token: &str, metrics: &Metrics) -> GitHubClient {
    GitHubClient::new(
        BaseUrl::new(sim.base_url()).unwrap(),
        Secret::new(token),
        metrics.clone(),
        &Net::direct(),
    )
    .unwrap()
}

/// Every way an error can be shown: none may hold `secret`.
fn assert_error_is_clean(err: &EscalationError, secret: &str) {
    let mut shown = vec![err.to_string(), format!("{err:?}"), err.user_message()];
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        shown.push(s.to_string());
        source = s.source();
    }
    for s in shown {
        assert!(!s.contains(secret), "secret leaked into {s:?}");
    }
}

#[tokio::test]
async fn a_page_carries_the_events_api_v2_shape() {
    let pd = sim::pagerduty::start().await.unwrap();
    let metrics = Metrics::new();
    let client = pd_client(&pd, ROUTING_KEY, &metrics);
    let r = report("c1hk4ek107l5au5mq8hg", VerdictCode::ConfigMissing);
    let receipt = client
        .trigger(&page_event(&r, "U0ALICE (alice)", Some(THREAD)))
        .await
        .unwrap();
    assert_eq!(receipt.status, "success");
    assert_eq!(receipt.message, "Event processed");
    assert_eq!(receipt.dedup_key, "linkbot-prod-c1hk4ek107l5au5mq8hg");

    let reqs = pd.wait_for_requests(1, WAIT).await.expect("one request");
    assert_eq!(reqs[0].path, "/v2/enqueue");
    assert_eq!(reqs[0].header("user-agent"), Some(USER_AGENT));
    assert_eq!(reqs[0].header("content-type"), Some("application/json"));
    let body = reqs[0].json().expect("JSON body");
    assert_eq!(body["routing_key"], ROUTING_KEY);
    assert_eq!(body["event_action"], "trigger");
    assert_eq!(body["dedup_key"], "linkbot-prod-c1hk4ek107l5au5mq8hg");
    let p = &body["payload"];
    assert_eq!(p["severity"], "critical");
    assert_eq!(p["source"], "prod-wdc04.carrier107");
    assert_eq!(p["class"], "config_missing");
    assert_eq!(p["group"], "prod-wdc04.carrier107");
    let summary = p["summary"].as_str().unwrap();
    assert!(
        summary.contains("c1hk4ek107l5au5mq8hg") && summary.contains("Missing config"),
        "{summary}"
    );
    let d = &p["custom_details"];
    assert_eq!(d["verdict"], "config_missing");
    assert_eq!(d["tugboat"], "prod-wdc04.carrier107");
    assert_eq!(d["region_expected"], "us-east");
    assert_eq!(d["region_found"], "us-south");
    assert_eq!(d["build_url"], r.build_url.clone().unwrap());
    assert_eq!(d["requested_by"], "U0ALICE (alice)");
    assert_eq!(d["steps"].as_array().unwrap().len(), r.steps.len());
    assert_eq!(d["steps"][3]["status"], "failed");
    assert_eq!(d["steps"][3]["evidence"][1], "iam_api_key is empty");
    let links: Vec<(&str, &str)> = body["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["text"].as_str().unwrap(), l["href"].as_str().unwrap()))
        .collect();
    assert!(
        links.contains(&("Jenkins build", r.build_url.as_deref().unwrap())),
        "{links:?}"
    );
    assert!(links.contains(&("Slack thread", THREAD)), "{links:?}");
    assert!(
        links
            .iter()
            .any(|(t, h)| *t == "Runbook" && h.starts_with("https://")),
        "{links:?}"
    );
    assert!(metrics
        .render()
        .contains(r#"linkbot_escalations_total{method="pagerduty",outcome="ok"} 1"#));
}

#[tokio::test]
async fn repeated_pages_for_one_location_share_a_dedup_key() {
    let pd = sim::pagerduty::start().await.unwrap();
    let client = pd_client(&pd, ROUTING_KEY, &Metrics::new());
    let a = report("c1hk4ek107l5au5mq8hg", VerdictCode::ConfigMissing);
    let mut a_later = report("c1hk4ek107l5au5mq8hg", VerdictCode::RegionMismatch);
    a_later.summary = "a later check, another verdict".into();
    let b = report("c2aaaaaaaaaaaaaaaaaa", VerdictCode::ConfigMissing);
    for r in [&a, &a_later, &b] {
        client.trigger(&page_event(r, "alice", None)).await.unwrap();
    }
    let reqs = pd.wait_for_requests(3, WAIT).await.unwrap();
    let keys: Vec<String> = reqs
        .iter()
        .map(|r| r.json().unwrap()["dedup_key"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        keys[0], keys[1],
        "two pages about one location update one incident"
    );
    assert_ne!(keys[0], keys[2], "another location is another incident");
    let mut stage = a.clone();
    stage.environment = Some(Environment::Stage);
    assert_ne!(page_event(&stage, "alice", None).dedup_key, keys[0]);
}

#[tokio::test]
async fn a_huge_summary_is_capped_and_still_accepted() {
    let pd = sim::pagerduty::start().await.unwrap();
    let client = pd_client(&pd, ROUTING_KEY, &Metrics::new());
    let mut r = report("c1hk4ek107l5au5mq8hg", VerdictCode::JobFailed);
    r.summary = "é".repeat(5000);
    let ev = page_event(&r, "alice", None);
    assert_eq!(ev.payload.summary.chars().count(), PAGE_SUMMARY_MAX_CHARS);
    assert_eq!(ev.payload.severity, linkbot::escalation::Severity::Error);
    client
        .trigger(&ev)
        .await
        .expect("the sim refuses summaries over 1024 characters");
}

#[tokio::test]
async fn pagerduty_400_is_a_clear_error_without_the_key() {
    let pd = sim::pagerduty::start().await.unwrap();
    let metrics = Metrics::new();
    // A routing key of the wrong length: PagerDuty answers 400 "Event object is invalid".
    let bad_key = "short-but-secret-routing-key";
    let client = pd_client(&pd, bad_key, &metrics);
    let err = client
        .trigger(&page_event(
            &report("c1hk4ek107l5au5mq8hg", VerdictCode::ConfigMissing),
            "alice",
            None,
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(err, EscalationError::Rejected { status: 400, .. }),
        "{err:?}"
    );
    let msg = err.user_message();
    assert!(msg.contains("PagerDuty refused the page"), "{msg}");
    assert!(
        msg.contains("routing_key"),
        "PagerDuty's own words are kept: {msg}"
    );
    assert_error_is_clean(&err, bad_key);
    assert_eq!(pd.requests().len(), 1, "a 400 is not retried");
    assert!(metrics
        .render()
        .contains(r#"linkbot_escalations_total{method="pagerduty",outcome="http_400"} 1"#));
}

#[tokio::test]
async fn pagerduty_429_and_5xx_are_retried_then_succeed() {
    let pd = sim::pagerduty::start().await.unwrap();
    let metrics = Metrics::new();
    let client = pd_client(&pd, ROUTING_KEY, &metrics);
    pd.fail_next(1, 429);
    pd.fail_next(1, 503);
    client
        .trigger(&page_event(
            &report("c1hk4ek107l5au5mq8hg", VerdictCode::ConfigMissing),
            "alice",
            None,
        ))
        .await
        .unwrap();
    assert_eq!(pd.requests().len(), 3);
    let bodies: Vec<_> = pd.requests().iter().map(|r| r.json().unwrap()).collect();
    assert!(
        bodies.windows(2).all(|w| w[0] == w[1]),
        "every retry sends the same event"
    );
    let text = metrics.render();
    for outcome in ["http_429", "http_503", "ok"] {
        assert!(
            text.contains(&format!(
                r#"linkbot_escalations_total{{method="pagerduty",outcome="{outcome}"}} 1"#
            )),
            "{outcome}: {text}"
        );
    }
}

#[tokio::test]
async fn pagerduty_retries_are_bounded() {
    let pd = sim::pagerduty::start().await.unwrap();
    let client = pd_client(&pd, ROUTING_KEY, &Metrics::new());
    pd.fail_next(100, 500);
    let err = tokio::time::timeout(
        WAIT,
        client.trigger(&page_event(
            &report("c1hk4ek107l5au5mq8hg", VerdictCode::ConfigMissing),
            "alice",
            None,
        )),
    )
    .await
    .expect("bounded in time")
    .unwrap_err();
    assert!(
        matches!(err, EscalationError::Exhausted { attempts: 3, .. }),
        "{err:?}"
    );
    assert_eq!(pd.requests().len(), 3, "exactly `attempts` requests");
    let msg = err.user_message();
    assert!(
        msg.contains("3 attempts") && msg.contains("HTTP 500"),
        "{msg}"
    );
    assert_error_is_clean(&err, ROUTING_KEY);
}

#[tokio::test]
async fn an_unanswered_request_times_out() {
    let pd = sim::pagerduty::start().await.unwrap();
    let client = pd_client(&pd, ROUTING_KEY, &Metrics::new())
        .with_timeout(Duration::from_millis(200))
        .unwrap()
        .with_retry(fast_retry(1));
    pd.stall_next(1);
    let err = tokio::time::timeout(
        WAIT,
        client.trigger(&page_event(
            &report("c1hk4ek107l5au5mq8hg", VerdictCode::ConfigMissing),
            "alice",
            None,
        )),
    )
    .await
    .expect("the per-request timeout fires")
    .unwrap_err();
    assert_eq!(err.kind(), "timeout", "{err:?}");
    assert!(
        err.user_message().contains("did not answer in time"),
        "{}",
        err.user_message()
    );
}

#[tokio::test]
async fn nothing_listening_is_a_connect_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let client = PagerDutyClient::new(
        BaseUrl::parse(&format!("http://{addr}/")).unwrap(),
        Secret::new(ROUTING_KEY),
        Metrics::new(),
        &Net::direct(),
    )
    .unwrap()
    .with_retry(fast_retry(2));
    let err = client
        .trigger(&page_event(
            &report("c1hk4ek107l5au5mq8hg", VerdictCode::ConfigMissing),
            "alice",
            None,
        ))
        .await
        .unwrap_err();
    match &err {
        EscalationError::Exhausted {
            last, attempts: 2, ..
        } => assert_eq!(last.kind(), "connect", "{err:?}"),
        other => panic!("unexpected {other:?}"),
    }
    assert!(
        err.user_message().contains("PagerDuty"),
        "{}",
        err.user_message()
    );
    assert_error_is_clean(&err, ROUTING_KEY);
}

#[tokio::test]
async fn an_issue_goes_out_with_githubs_headers_and_every_step() {
    let gh = sim::github::start(GH_TOKEN, &[REPO]).await.unwrap();
    let metrics = Metrics::new();
    let client = gh_client(&gh, GH_TOKEN, &metrics);
    let r = report("c1hk4ek107l5au5mq8hg", VerdictCode::ConfigMissing);
    let issue = issue_markdown(&r, "alice", Some(THREAD));
    let link = client.open_issue(&repo(REPO), &issue).await.unwrap();
    assert_eq!(link.number, 1);
    assert!(
        link.html_url.ends_with("/org/satellite-link/issues/1"),
        "{}",
        link.html_url
    );
    let second = client.open_issue(&repo(REPO), &issue).await.unwrap();
    assert_eq!(second.number, 2);

    let reqs = gh.wait_for_requests(2, WAIT).await.unwrap();
    let req = &reqs[0];
    assert_eq!(req.path, "/repos/org/satellite-link/issues");
    assert_eq!(req.header("user-agent"), Some(USER_AGENT));
    assert!(USER_AGENT.starts_with("linkbot/"));
    assert_eq!(
        req.header("authorization"),
        Some(format!("Bearer {GH_TOKEN}").as_str())
    );
    assert_eq!(req.header("accept"), Some("application/vnd.github+json"));
    assert_eq!(req.header("x-github-api-version"), Some("2022-11-28"));
    let body = req.json().unwrap();
    assert_eq!(
        body["title"],
        "[linkbot] config_missing on c1hk4ek107l5au5mq8hg (prod-wdc04.carrier107)"
    );
    assert_eq!(
        body["labels"],
        serde_json::json!(["linkbot", "config_missing"])
    );
    let md = body["body"].as_str().unwrap();
    for step in &r.steps {
        assert!(md.contains(&step.title), "step {:?} missing", step.title);
        for e in &step.evidence {
            assert!(
                md.contains(e.as_str()),
                "evidence {e:?} missing from:\n{md}"
            );
        }
    }
    for needle in [
        "| Location | `c1hk4ek107l5au5mq8hg` |",
        "| Environment | prod |",
        "| Tugboat | `prod-wdc04.carrier107` |",
        "| Carrier | `prod-wdc04-carrier2` |",
        "| Region expected | us-east |",
        "| Region found | us-south |",
        "— failed",
        "— skipped",
        "## Next actions",
        "cluster-updater",
        "## Console tail",
        "````text\n", // a fence longer than the ``` inside the console
        "Finished: SUCCESS",
        THREAD,
        "jenkins.example.internal/job/A/job/B/job/armada-ha-master-get-info/4242/",
    ] {
        assert!(md.contains(needle), "{needle:?} missing from:\n{md}");
    }
    assert_eq!(gh.issues().len(), 2);
    assert!(metrics
        .render()
        .contains(r#"linkbot_escalations_total{method="github",outcome="ok"} 2"#));
}

#[tokio::test]
async fn github_errors_are_clear_and_hold_no_token() {
    let gh = sim::github::start(GH_TOKEN, &[REPO]).await.unwrap();
    let metrics = Metrics::new();
    let issue = issue_markdown(
        &report("c1hk4ek107l5au5mq8hg", VerdictCode::ConfigMissing),
        "alice",
        None,
    );
    let wrong_token = "ghp_WrongTokenWrongTokenWrongToken99";
    let cases: Vec<(&str, &str, NewIssue, u16, &str)> = vec![
        (wrong_token, REPO, issue.clone(), 401, "GITHUB_TOKEN"),
        (
            GH_TOKEN,
            "org/no-such-repo",
            issue.clone(),
            404,
            "does not exist",
        ),
        (
            GH_TOKEN,
            REPO,
            NewIssue {
                title: "  ".into(),
                ..issue.clone()
            },
            422,
            "title",
        ),
    ];
    for (token, repo, issue, status, hint) in cases {
        let err = gh_client(&gh, token, &metrics)
            .open_issue(&GithubRepo::parse(repo).unwrap(), &issue)
            .await
            .unwrap_err();
        match &err {
            EscalationError::Rejected { status: s, .. } => assert_eq!(*s, status, "{err:?}"),
            other => panic!("{repo}: unexpected {other:?}"),
        }
        let msg = err.user_message();
        assert!(
            msg.contains(&format!("HTTP {status}")) && msg.contains(hint),
            "{msg}"
        );
        assert_error_is_clean(&err, token);
        assert_error_is_clean(&err, GH_TOKEN);
    }
    assert!(metrics
        .render()
        .contains(r#"linkbot_escalations_total{method="github",outcome="http_422"} 1"#));
}

#[tokio::test]
async fn github_refuses_a_request_without_user_agent_like_the_real_api() {
    let gh = sim::github::start(GH_TOKEN, &[REPO]).await.unwrap();
    // reqwest sends no User-Agent of its own (SPEC §8): this is why the client sets one.
    let resp = reqwest::Client::new()
        .post(
            gh.base_url()
                .join("repos/org/satellite-link/issues")
                .unwrap(),
        )
        .bearer_auth(GH_TOKEN)
        .json(&serde_json::json!({"title": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert!(resp.text().await.unwrap().contains("User-Agent"));
    let no_auth = reqwest::Client::new()
        .post(
            gh.base_url()
                .join("repos/org/satellite-link/issues")
                .unwrap(),
        )
        .header("user-agent", "test")
        .json(&serde_json::json!({"title": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(no_auth.status(), 401);
    assert!(gh.issues().is_empty());
}

#[tokio::test]
async fn github_5xx_is_not_retried_because_an_issue_is_not_idempotent() {
    let gh = sim::github::start(GH_TOKEN, &[REPO]).await.unwrap();
    gh.fail_next(1, 502);
    let issue = issue_markdown(
        &report("c1hk4ek107l5au5mq8hg", VerdictCode::ConfigMissing),
        "alice",
        None,
    );
    let err = gh_client(&gh, GH_TOKEN, &Metrics::new())
        .open_issue(&repo(REPO), &issue)
        .await
        .unwrap_err();
    assert!(
        matches!(err, EscalationError::Unavailable { status: 502, .. }),
        "{err:?}"
    );
    assert_eq!(gh.requests().len(), 1);
}

#[tokio::test]
async fn a_malformed_repo_cannot_reach_the_client() {
    // The client takes a parsed `GithubRepo`: a malformed one is refused at parsing (in config,
    // with its line), so no request can carry it.
    for bad in ["org", "org/repo/extra", "../x", "org/re po", ""] {
        let err = GithubRepo::parse(bad).unwrap_err();
        assert!(err.to_string().contains("owner/repo"), "{bad}: {err}");
    }
}

#[tokio::test]
async fn no_secret_travels_anywhere_it_does_not_belong() {
    let pd = sim::pagerduty::start().await.unwrap();
    let gh = sim::github::start(GH_TOKEN, &[REPO]).await.unwrap();
    let metrics = Metrics::new();
    let r = report("c1hk4ek107l5au5mq8hg", VerdictCode::ApiKeyInvalid);
    pd_client(&pd, ROUTING_KEY, &metrics)
        .trigger(&page_event(&r, "alice", Some(THREAD)))
        .await
        .unwrap();
    gh_client(&gh, GH_TOKEN, &metrics)
        .open_issue(&repo(REPO), &issue_markdown(&r, "alice", Some(THREAD)))
        .await
        .unwrap();

    let pd_req = &pd.requests()[0];
    let gh_req = &gh.requests()[0];
    // The IAM key: nowhere at all; its fingerprint may be shown.
    for dump in [pd_req.dump(), gh_req.dump()] {
        assert!(!dump.contains(IAM_KEY), "the IAM key leaked");
        assert!(
            !dump.contains(&IAM_KEY[..IAM_KEY.len() - 4]),
            "most of the IAM key leaked"
        );
    }
    assert!(gh_req.body.contains(&Secret::new(IAM_KEY).fingerprint()));
    // The routing key: only in `routing_key`; never to GitHub.
    let mut pd_body = pd_req.json().unwrap();
    assert_eq!(pd_body["routing_key"], ROUTING_KEY);
    pd_body.as_object_mut().unwrap().remove("routing_key");
    assert!(!pd_body.to_string().contains(ROUTING_KEY));
    assert!(!pd_req
        .headers
        .iter()
        .any(|(_, v)| v.to_str().unwrap_or("").contains(ROUTING_KEY)));
    assert!(!gh_req.dump().contains(ROUTING_KEY));
    // The token: only in Authorization; never to PagerDuty.
    assert!(!gh_req.body.contains(GH_TOKEN));
    let token_headers: Vec<_> = gh_req
        .headers
        .iter()
        .filter(|(_, v)| v.to_str().unwrap_or("").contains(GH_TOKEN))
        .map(|(k, _)| k.as_str())
        .collect();
    assert_eq!(token_headers, vec!["authorization"]);
    assert!(!pd_req.dump().contains(GH_TOKEN));
    // Nor in metrics, nor in the clients' Debug.
    let text = metrics.render();
    assert!(!text.contains(ROUTING_KEY) && !text.contains(GH_TOKEN));
    let debug = format!(
        "{:?} {:?}",
        pd_client(&pd, ROUTING_KEY, &metrics),
        gh_client(&gh, GH_TOKEN, &metrics)
    );
    assert!(
        !debug.contains(ROUTING_KEY) && !debug.contains(GH_TOKEN),
        "{debug}"
    );
}

#[test]
fn hostile_evidence_cannot_ping_people_or_break_the_table() {
    let mut r = report("c1hk4ek107l5au5mq8hg", VerdictCode::RegionMismatch);
    r.region_found = Some("us-south | injected | cell\n## Heading".into());
    r.steps[4].evidence = vec!["region = @everyone please look\nsecond line".into()];
    let issue = issue_markdown(&r, "@channel", None);
    assert!(
        !issue.body.contains("@everyone") && !issue.body.contains("@channel"),
        "{}",
        issue.body
    );
    let row = issue
        .body
        .lines()
        .find(|l| l.starts_with("| Region found |"))
        .unwrap();
    assert_eq!(
        row,
        r"| Region found | us-south \| injected \| cell ## Heading |"
    );
    assert!(!issue.body.contains("\n## Heading"));
    assert!(issue
        .body
        .contains("(none: escalated from the command line)"));
}

#[test]
fn a_report_without_location_still_renders() {
    let mut r = report("c1hk4ek107l5au5mq8hg", VerdictCode::ArtifactMissing);
    r.location = None;
    r.environment = None;
    r.tugboat = None;
    r.steps.clear();
    r.console_tail = None;
    let ev = page_event(&r, "cli", None);
    assert_eq!(ev.dedup_key, "linkbot-offline-artifact_missing");
    assert_eq!(ev.payload.source, "linkbot");
    let issue = issue_markdown(&r, "cli", None);
    assert!(issue.body.contains("No step was reached"));
    assert!(!issue.body.contains("## Console tail"));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn any_text_renders_within_the_apis_limits(
        summary in ".{0,3000}",
        evidence in proptest::collection::vec(".{0,400}", 0..20),
        console in ".{0,5000}",
        who in ".{0,200}",
    ) {
        let mut r = report("c1hk4ek107l5au5mq8hg", VerdictCode::JobFailed);
        r.summary = summary;
        r.steps[2].evidence = evidence;
        r.console_tail = Some(console);
        let ev = page_event(&r, &who, Some(THREAD));
        prop_assert!(ev.payload.summary.chars().count() <= PAGE_SUMMARY_MAX_CHARS);
        prop_assert!(!ev.payload.summary.contains('\n'));
        let issue = issue_markdown(&r, &who, Some(THREAD));
        prop_assert!(issue.title.chars().count() <= 256);
        prop_assert!(issue.body.chars().count() <= 65_536);
        prop_assert!(!issue.title.contains('\n'));
    }
}

// ---- what follows an incident's resolution (issue 10's building blocks) ----------------------

#[tokio::test]
async fn a_resolve_carries_the_trigger_dedup_key_and_no_payload() {
    let pd = sim::pagerduty::start().await.unwrap();
    let metrics = Metrics::new();
    let client = pd_client(&pd, ROUTING_KEY, &metrics);
    let r = report("c1hk4ek107l5au5mq8hg", VerdictCode::ConfigMissing);
    let trigger = client
        .trigger(&page_event(&r, "alice", Some(THREAD)))
        .await
        .unwrap();
    let resolve = client.resolve(&trigger.dedup_key).await.unwrap();
    assert_eq!(resolve.dedup_key, trigger.dedup_key);
    assert_eq!(resolve.status, "success");

    let reqs = pd.wait_for_requests(2, WAIT).await.expect("two requests");
    let body = reqs[1].json().expect("JSON body");
    assert_eq!(body["event_action"], "resolve");
    assert_eq!(body["routing_key"], ROUTING_KEY);
    assert_eq!(body["dedup_key"], "linkbot-prod-c1hk4ek107l5au5mq8hg");
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        ["dedup_key", "event_action", "routing_key"],
        "a resolve carries only what PagerDuty reads: {body}"
    );
    assert!(metrics
        .render()
        .contains(r#"linkbot_escalations_total{method="pagerduty",outcome="ok"} 2"#));
}

#[tokio::test]
async fn a_resolve_without_a_dedup_key_is_refused_like_pagerduty_does() {
    let pd = sim::pagerduty::start().await.unwrap();
    let client = pd_client(&pd, ROUTING_KEY, &Metrics::new());
    let err = client
        .resolve("")
        .await
        .expect_err("PagerDuty needs the key");
    assert!(
        err.to_string().contains("dedup_key"),
        "the error says what is missing: {err}"
    );
    assert_error_is_clean(&err, ROUTING_KEY);
}

#[tokio::test]
async fn an_issue_is_commented_on_and_closed_with_githubs_headers() {
    let gh = sim::github::start(GH_TOKEN, &[REPO]).await.unwrap();
    let metrics = Metrics::new();
    let client = gh_client(&gh, GH_TOKEN, &metrics);
    let r = report("c1hk4ek107l5au5mq8hg", VerdictCode::ConfigMissing);
    let issue = client
        .open_issue(&repo(REPO), &issue_markdown(&r, "alice", Some(THREAD)))
        .await
        .unwrap();
    let text = format!("Resolved at 03:41 UTC, open 23 min. Thread: {THREAD}");
    let comment = client
        .comment(&repo(REPO), issue.number, &text)
        .await
        .unwrap();
    assert!(
        comment.html_url.contains(&format!(
            "/org/satellite-link/issues/{}#issuecomment-",
            issue.number
        )),
        "{}",
        comment.html_url
    );
    client.close(&repo(REPO), issue.number).await.unwrap();
    // Closing twice is what a second replica might do: GitHub answers 200 again.
    client.close(&repo(REPO), issue.number).await.unwrap();

    let issues = gh.issues();
    assert_eq!(issues[0].comments, vec![text]);
    assert_eq!(issues[0].state, "closed");
    let reqs = gh.wait_for_requests(4, WAIT).await.unwrap();
    assert_eq!(reqs[1].method.as_str(), "POST");
    assert_eq!(reqs[1].path, "/repos/org/satellite-link/issues/1/comments");
    assert_eq!(reqs[2].method.as_str(), "PATCH");
    assert_eq!(reqs[2].path, "/repos/org/satellite-link/issues/1");
    let patch = reqs[2].json().unwrap();
    assert_eq!(patch["state"], "closed");
    assert_eq!(patch["state_reason"], "completed");
    for req in &reqs[1..] {
        assert_eq!(req.header("user-agent"), Some(USER_AGENT));
        assert_eq!(req.header("x-github-api-version"), Some("2022-11-28"));
        assert_eq!(
            req.header("authorization"),
            Some(format!("Bearer {GH_TOKEN}").as_str())
        );
    }
    assert!(metrics
        .render()
        .contains(r#"linkbot_escalations_total{method="github",outcome="ok"} 4"#));
}

#[tokio::test]
async fn comments_on_an_unknown_issue_or_with_no_text_are_clear_errors() {
    let gh = sim::github::start(GH_TOKEN, &[REPO]).await.unwrap();
    let client = gh_client(&gh, GH_TOKEN, &Metrics::new());
    let unknown = client
        .comment(&repo(REPO), 41, "resolved")
        .await
        .expect_err("no issue 41");
    assert!(unknown.to_string().contains("404"), "{unknown}");
    let closing = client
        .close(&repo(REPO), 41)
        .await
        .expect_err("no issue 41");
    assert!(closing.to_string().contains("404"), "{closing}");

    let r = report("c1hk4ek107l5au5mq8hg", VerdictCode::ConfigMissing);
    let issue = client
        .open_issue(&repo(REPO), &issue_markdown(&r, "alice", None))
        .await
        .unwrap();
    let blank = client
        .comment(&repo(REPO), issue.number, "  ")
        .await
        .expect_err("GitHub refuses a blank comment");
    assert!(
        blank.to_string().contains("422") && blank.user_message().contains("body"),
        "{blank} / {}",
        blank.user_message()
    );
    let wrong = gh_client(&gh, "ghp_WrongTokenWrongTokenWrongToken99", &Metrics::new());
    let refused = wrong
        .comment(&repo(REPO), issue.number, "resolved")
        .await
        .expect_err("bad credentials");
    assert_error_is_clean(&refused, "ghp_WrongTokenWrongTokenWrongToken99");
    assert!(gh.issues()[0].comments.is_empty());
}
