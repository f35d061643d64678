//! The Jenkins client against the simulated Jenkins on loopback, and its parsers against real
//! Jenkins JSON (fixtures) and odd JSON.

use linkbot::domain::{BaseUrl, Carrier, LocationId, Tugboat};
use linkbot::jenkins::api::{parse_build, parse_crumb, parse_queue_item};
use linkbot::jenkins::{
    BuildParams, JenkinsClient, JenkinsError, JobError, JobHandle, JobProgress, PollPolicy,
    QueueState,
};
use linkbot::metrics::Metrics;
use linkbot::net::Net;
use linkbot::secret::Secret;
use linkbot::sim::jenkins::{self as sim, Behaviour, SimJenkins};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use url::Url;

const JOB: [&str; 3] = [
    "Containers-Runtime",
    "armada-cruiser-automated-recovery",
    "armada-ha-master-get-info",
];
const LOC: &str = "c1hk4ek107l5au5mq8hg";

async fn bounded<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .expect("the test took longer than 20 s")
}

fn fast() -> PollPolicy {
    PollPolicy {
        min: Duration::from_millis(20),
        max: Duration::from_millis(200),
    }
}

fn params(location: &str) -> BuildParams {
    BuildParams {
        branch: "master".to_string(),
        env_branch: "master-env".to_string(),
        cluster_id: LocationId::parse(location).unwrap(),
        tugboat: Tugboat::parse("prod-wdc04.carrier107").unwrap(),
        carrier: Carrier::parse("prod-wdc04-carrier2").unwrap(),
    }
}

fn client_for(sim: &SimJenkins, job: &[&str], metrics: &Metrics) -> JenkinsClient {
    JenkinsClient::new(
        BaseUrl::new(sim.base_url()).unwrap(),
        job.iter().map(|s| s.to_string()).collect(),
        None,
        None,
        fast(),
        metrics.clone(),
        &Net::direct(),
    )
    .unwrap()
    .with_request_timeout(Duration::from_secs(5))
    .unwrap()
}

fn client(sim: &SimJenkins) -> JenkinsClient {
    client_for(sim, &JOB, &Metrics::new())
}

/// Collects every progress report.
#[derive(Clone, Default)]
struct Progress(Arc<Mutex<Vec<JobProgress>>>);

impl Progress {
    fn hook(&self) -> impl Fn(&JobProgress) + Send + Sync {
        let seen = self.0.clone();
        move |p: &JobProgress| seen.lock().unwrap().push(p.clone())
    }
    fn all(&self) -> Vec<JobProgress> {
        self.0.lock().unwrap().clone()
    }
}

async fn run(
    c: &JenkinsClient,
    location: &str,
    timeout: Duration,
) -> (Result<linkbot::jenkins::FinishedBuild, JobError>, Progress) {
    let q = c
        .trigger(&params(location))
        .await
        .expect("trigger accepted");
    let progress = Progress::default();
    let hook = progress.hook();
    let r = c.wait(JobHandle::Queued(q), timeout, &hook).await;
    (r, progress)
}

#[tokio::test]
async fn trigger_sends_exactly_the_five_parameters_on_the_nested_job_path() {
    bounded(async {
        let job = ["Containers Runtime", "armada-cruiser-automated-recovery", "armada-ha-master-get-info"];
        let sim = sim::start(&job).await;
        let c = client_for(&sim, &job, &Metrics::new());
        let q = c.trigger(&params(LOC)).await.unwrap();
        assert!(sim.wait_for_triggers(1, Duration::from_secs(5)).await);
        let expected: BTreeMap<String, String> = [
            ("BRANCH", "master"),
            ("ENV_Branch", "master-env"),
            ("CLUSTERID", LOC),
            ("TUGBOAT", "prod-wdc04-carrier107"),
            ("CARRIER_NAME", "prod-wdc04-carrier2"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(sim.triggers(), vec![expected]);
        assert_eq!(
            sim.requests(),
            vec!["POST /job/Containers%20Runtime/job/armada-cruiser-automated-recovery/job/armada-ha-master-get-info/buildWithParameters".to_string()]
        );
        assert_eq!(q.url, sim.base_url().join(&format!("queue/item/{}/", q.id)).unwrap());
    })
    .await;
}

#[tokio::test]
async fn happy_path_walks_queue_build_and_downloads_artifacts_behind_a_proxy() {
    bounded(async {
        let sim = sim::start(&JOB).await;
        // Jenkins' root URL names a host the bot cannot reach: the client must not follow it.
        sim.set_reported_root(Url::parse("http://jenkins.behind-proxy.invalid:8080/").unwrap());
        sim.set_default_behaviour(Behaviour {
            artifacts: vec![
                ("connector_getConnectorAPIKey.log".to_string(), b"slclient.toml: abc".to_vec()),
                ("logs/connector_sl_configMap.log".to_string(), b"region: us-east".to_vec()),
            ],
            ..Behaviour::default()
        });
        let metrics = Metrics::new();
        let c = client_for(&sim, &JOB, &metrics);
        let (r, progress) = run(&c, LOC, Duration::from_secs(10)).await;
        let done = r.unwrap();
        assert_eq!(done.result, "SUCCESS");
        assert_eq!(done.artifacts, vec!["connector_getConnectorAPIKey.log", "logs/connector_sl_configMap.log"]);
        assert!(done.build.url.as_str().starts_with(sim.base_url().as_str()), "{}", done.build.url);
        assert!(done.build.url.as_str().ends_with(&format!("/job/armada-ha-master-get-info/{}/", done.build.number)));
        let a = c.artifact(&done.build, &done.artifacts[0], 1024).await.unwrap();
        assert_eq!(a, b"slclient.toml: abc");
        let b = c.artifact(&done.build, &done.artifacts[1], 1024).await.unwrap();
        assert_eq!(b, b"region: us-east");
        let seen = progress.all();
        assert!(matches!(seen.first(), Some(JobProgress::Queued { .. })), "{seen:?}");
        assert!(seen.iter().any(|p| matches!(p, JobProgress::Running { build, .. } if *build == done.build)), "{seen:?}");
        assert!(matches!(seen.last(), Some(JobProgress::Finished { result, .. }) if result == "SUCCESS"), "{seen:?}");
        let text = metrics.render();
        // Builds are followed by the job-level poll (`builds`), never one by one (`build`).
        assert!(!text.contains("method=\"build\""), "{text}");
        for method in ["trigger", "queue", "builds", "artifact"] {
            assert!(text.contains(&format!("method=\"{method}\",outcome=\"ok\"")), "{method} not counted:\n{text}");
        }
    })
    .await;
}

#[tokio::test]
async fn a_cancelled_queue_item_says_why_it_was_waiting() {
    bounded(async {
        let sim = sim::start(&JOB).await;
        sim.set_behaviour(
            LOC,
            Behaviour {
                queue_time: Duration::from_millis(200),
                cancel_in_queue: true,
                ..Behaviour::default()
            },
        );
        let (r, _) = run(&client(&sim), LOC, Duration::from_secs(10)).await;
        match r {
            Err(e @ JobError::Cancelled { .. }) => {
                let JobError::Cancelled { why, .. } = &e else {
                    unreachable!()
                };
                assert!(
                    why.as_deref()
                        .unwrap_or("")
                        .contains("Waiting for next available executor"),
                    "{why:?}"
                );
                assert!(
                    e.user_message().contains("cancelled"),
                    "{}",
                    e.user_message()
                );
                assert!(e.build().is_none());
            }
            other => panic!("expected Cancelled, got {other:?}"),
        }
        assert_eq!(sim.count("build"), 0);
    })
    .await;
}

#[tokio::test]
async fn failed_and_aborted_builds_carry_the_console_tail_without_secrets() {
    bounded(async {
        for result in ["FAILURE", "ABORTED", "NOT_BUILT"] {
            let sim = sim::start(&JOB).await;
            let mut console: String = (1..=60).map(|i| format!("step {i}\n")).collect();
            console.push_str("iam_api_key = \"kq2V8hN0Zt1mWcXb3fLp\"\n");
            console.push_str(&format!("Finished: {result}\n"));
            sim.set_default_behaviour(Behaviour {
                result: result.to_string(),
                console,
                ..Behaviour::default()
            });
            let (r, _) = run(&client(&sim), LOC, Duration::from_secs(10)).await;
            let err = r.unwrap_err();
            let JobError::Failed {
                build,
                result: got,
                console_tail,
            } = &err
            else {
                panic!("{result}: {err:?}")
            };
            assert_eq!(got, result);
            let tail = console_tail.as_deref().expect("a console tail");
            let lines: Vec<&str> = tail.lines().collect();
            assert_eq!(lines.len(), 30, "{tail}");
            assert_eq!(
                lines.last().copied(),
                Some(format!("Finished: {result}").as_str())
            );
            assert_eq!(lines.first().copied(), Some("step 33"));
            assert!(!tail.contains("kq2V8hN0Zt1mWcXb3fLp"), "{tail}");
            assert_eq!(err.build(), Some(build));
            assert!(
                err.user_message().contains(result),
                "{}",
                err.user_message()
            );
        }
    })
    .await;
}

#[tokio::test]
async fn a_job_that_overruns_the_timeout_times_out_with_its_handle() {
    bounded(async {
        let sim = sim::start(&JOB).await;
        sim.set_behaviour(
            LOC,
            Behaviour {
                queue_time: Duration::from_millis(50),
                build_time: Duration::from_secs(60),
                estimated: Duration::from_secs(60),
                ..Behaviour::default()
            },
        );
        let other = "a1hk4ek107l5au5mq8hg";
        sim.set_behaviour(
            other,
            Behaviour {
                queue_time: Duration::from_secs(60),
                ..Behaviour::default()
            },
        );
        let c = client(&sim);
        let (r, _) = run(&c, LOC, Duration::from_millis(800)).await;
        match r {
            Err(JobError::TimedOut {
                handle: JobHandle::Build(b),
                waited,
            }) => {
                assert!(
                    waited >= Duration::from_millis(800) && waited < Duration::from_secs(3),
                    "{waited:?}"
                );
                assert_eq!(b.number, 1);
            }
            other => panic!("expected TimedOut in the build, got {other:?}"),
        }
        let (r, _) = run(&c, other, Duration::from_millis(500)).await;
        let err = r.unwrap_err();
        assert!(
            matches!(
                err,
                JobError::TimedOut {
                    handle: JobHandle::Queued(_),
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(
            err.user_message().contains("still queued"),
            "{}",
            err.user_message()
        );
    })
    .await;
}

#[tokio::test]
async fn a_403_asking_for_a_crumb_is_retried_once_with_the_crumb_and_session() {
    bounded(async {
        let sim = sim::start(&JOB).await;
        sim.set_default_behaviour(Behaviour {
            require_crumb: true,
            ..Behaviour::default()
        });
        let c = client(&sim);
        c.trigger(&params(LOC)).await.unwrap();
        assert_eq!((sim.count("trigger"), sim.count("crumb")), (2, 1));
        // The crumb is kept for the next trigger.
        c.trigger(&params(LOC)).await.unwrap();
        assert_eq!((sim.count("trigger"), sim.count("crumb")), (3, 1));
        assert_eq!(sim.triggers().len(), 2);
    })
    .await;
}

#[tokio::test]
async fn polls_answered_5xx_are_retried_and_the_job_still_finishes() {
    bounded(async {
        let sim = sim::start(&JOB).await;
        sim.set_default_behaviour(Behaviour {
            fail_first_polls_with_5xx: 3,
            ..Behaviour::default()
        });
        let metrics = Metrics::new();
        let c = client_for(&sim, &JOB, &metrics);
        let (r, _) = run(&c, LOC, Duration::from_secs(10)).await;
        assert_eq!(r.unwrap().result, "SUCCESS");
        assert!(
            metrics
                .render()
                .contains("method=\"queue\",outcome=\"http_503\"} 3"),
            "{}",
            metrics.render()
        );
    })
    .await;
}

#[tokio::test]
async fn polls_answered_5xx_forever_fail_after_a_bounded_number_of_tries() {
    bounded(async {
        let sim = sim::start(&JOB).await;
        sim.set_default_behaviour(Behaviour {
            fail_first_polls_with_5xx: u32::MAX,
            ..Behaviour::default()
        });
        let (r, _) = run(&client(&sim), LOC, Duration::from_secs(15)).await;
        let err = r.unwrap_err();
        // The queue listing fails while the item waits, then the job-level builds poll once it
        // left the queue: either way a 503, polled again through the outage budget, then given
        // up — after at least the minimum number of failed polls, and fewer than 30 + that
        // many (the waits start at `min` and double, within a budget of 30 × `min`).
        let JobError::Api {
            source: JenkinsError::Http { status: 503, .. },
            failed_polls,
            failing_for,
            ..
        } = &err
        else {
            panic!("{err:?}")
        };
        let min_polls = linkbot::jenkins::MIN_FAILED_POLLS;
        assert!(
            (min_polls..30 + min_polls).contains(failed_polls),
            "{failed_polls} failed polls"
        );
        assert!(*failing_for >= fast().outage_budget(), "{failing_for:?}");
        // Each failed poll was one shared request with the client's three retries: the 503s
        // answered are whole multiples of that, and no item was polled on its own.
        let attempts = linkbot::jenkins::MAX_RETRIES + 1;
        let answered_503 = sim
            .requests()
            .iter()
            .filter(|r| r.contains("/queue/api/json") || r.contains("/api/json?tree=builds"))
            .count();
        assert!(
            answered_503 as u32 >= failed_polls * attempts,
            "{answered_503} polls for {failed_polls} failed polls"
        );
        assert_eq!(sim.count("queue"), 0);
        assert!(
            err.user_message().contains("HTTP 503")
                && err.user_message().contains("polls in a row"),
            "{}",
            err.user_message()
        );
    })
    .await;
}

#[tokio::test]
async fn refused_triggers_say_why_and_are_not_retried() {
    bounded(async {
        let sim = sim::start(&JOB).await;
        // An unknown job.
        let c = client_for(
            &sim,
            &["Containers-Runtime", "no-such-job"],
            &Metrics::new(),
        );
        let e = c.trigger(&params(LOC)).await.unwrap_err();
        assert_eq!(e.status(), Some(404));
        assert!(
            e.user_message().contains("jenkins_job"),
            "{}",
            e.user_message()
        );
        // Parameters refused, and a 500: one request each, never a second build.
        for (status, words) in [(400, "parameters"), (500, "HTTP 500")] {
            sim.set_default_behaviour(Behaviour {
                refuse_status: Some(status),
                ..Behaviour::default()
            });
            let before = sim.count("trigger");
            let e = client(&sim).trigger(&params(LOC)).await.unwrap_err();
            assert_eq!(e.status(), Some(status));
            assert!(e.user_message().contains(words), "{}", e.user_message());
            assert_eq!(sim.count("trigger") - before, 1);
            let job_error = JobError::Refused(e);
            assert!(job_error
                .user_message()
                .starts_with("Jenkins did not start the job."));
        }
        assert!(sim.triggers().is_empty());
    })
    .await;
}

#[tokio::test]
async fn the_simulator_refuses_a_trigger_missing_a_parameter() {
    bounded(async {
        let sim = sim::start(&JOB).await;
        let url = sim
            .base_url()
            .join("job/Containers-Runtime/job/armada-cruiser-automated-recovery/job/armada-ha-master-get-info/buildWithParameters")
            .unwrap();
        let form = [("BRANCH", "master"), ("ENV_Branch", "master"), ("CLUSTERID", LOC), ("TUGBOAT", "prod-wdc04-carrier107")];
        let resp = reqwest::Client::new().post(url).form(&form).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 400);
        assert!(resp.text().await.unwrap().contains("CARRIER_NAME"));
        assert!(sim.triggers().is_empty());
    })
    .await;
}

#[tokio::test]
async fn a_queue_item_that_disappears_before_its_build_is_lost() {
    bounded(async {
        let sim = sim::start(&JOB).await;
        sim.set_default_behaviour(Behaviour {
            queue_time: Duration::from_secs(60),
            ..Behaviour::default()
        });
        let c = client(&sim);
        let q = c.trigger(&params(LOC)).await.unwrap();
        assert!(matches!(
            c.queue_state(&q).await.unwrap(),
            QueueState::Waiting { why: Some(_) }
        ));
        sim.forget_queue_items();
        let err = c
            .wait(
                JobHandle::Queued(q.clone()),
                Duration::from_secs(10),
                &|_| {},
            )
            .await
            .unwrap_err();
        match &err {
            JobError::Lost { handle, detail } => {
                assert_eq!(handle, &JobHandle::Queued(q));
                assert!(detail.contains("queue item"), "{detail}");
            }
            other => panic!("expected Lost, got {other:?}"),
        }
        assert!(
            err.user_message().contains("lost track"),
            "{}",
            err.user_message()
        );
    })
    .await;
}

#[tokio::test]
async fn a_forgotten_queue_item_whose_build_started_is_found_among_the_builds() {
    bounded(async {
        let sim = sim::start(&JOB).await;
        sim.set_default_behaviour(Behaviour {
            queue_time: Duration::from_millis(50),
            build_time: Duration::from_millis(400),
            ..Behaviour::default()
        });
        let c = client(&sim);
        let first = c.trigger(&params(LOC)).await.unwrap();
        let q = c.trigger(&params(LOC)).await.unwrap();
        // Let both builds start, then let Jenkins forget the queue (a long bot restart).
        let started = async {
            loop {
                if let QueueState::Started(_) = c.queue_state(&q).await.unwrap() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        bounded(started).await;
        sim.forget_queue_items();
        let done = c
            .wait(JobHandle::Queued(q), Duration::from_secs(10), &|_| {})
            .await
            .unwrap();
        assert_eq!(
            done.build.number, 2,
            "the build of the second item, not of {first:?}"
        );
        assert!(sim.count("builds") >= 1);
    })
    .await;
}

#[tokio::test]
async fn an_artifact_over_the_limit_is_refused() {
    bounded(async {
        let sim = sim::start(&JOB).await;
        sim.set_default_behaviour(Behaviour {
            artifacts: vec![("big.log".to_string(), vec![b'x'; 100_000])],
            ..Behaviour::default()
        });
        let metrics = Metrics::new();
        let c = client_for(&sim, &JOB, &metrics);
        let (r, _) = run(&c, LOC, Duration::from_secs(10)).await;
        let done = r.unwrap();
        let e = c
            .artifact(&done.build, "big.log", 10_000)
            .await
            .unwrap_err();
        assert!(
            matches!(
                e,
                JenkinsError::TooLarge {
                    limit: 10_000,
                    size: Some(100_000)
                }
            ),
            "{e:?}"
        );
        assert!(
            e.user_message().contains("10000 bytes"),
            "{}",
            e.user_message()
        );
        assert_eq!(
            c.artifact(&done.build, "big.log", 100_000)
                .await
                .unwrap()
                .len(),
            100_000
        );
        let missing = c.artifact(&done.build, "nope.log", 100).await.unwrap_err();
        assert_eq!(missing.status(), Some(404));
        assert!(c.artifact(&done.build, "../../secrets", 100).await.is_err());
        assert!(metrics
            .render()
            .contains("method=\"artifact\",outcome=\"too_large\"} 1"));
    })
    .await;
}

#[tokio::test]
async fn basic_auth_is_sent_and_the_token_never_shows() {
    bounded(async {
        const TOKEN: &str = "11aa22bb33cc44dd55ee66ff77889900aa";
        let sim = sim::start(&JOB).await;
        sim.set_auth("linkbot", TOKEN);
        let job: Vec<String> = JOB.iter().map(|s| s.to_string()).collect();
        let good = JenkinsClient::new(
            BaseUrl::new(sim.base_url()).unwrap(),
            job.clone(),
            Some("linkbot".into()),
            Some(Secret::new(TOKEN)),
            fast(),
            Metrics::new(),
            &Net::direct(),
        )
        .unwrap();
        let (r, _) = run(&good, LOC, Duration::from_secs(10)).await;
        assert_eq!(r.unwrap().result, "SUCCESS");
        assert!(!format!("{good:?}").contains(TOKEN));

        // Credentials in the URL are moved out of it, and still work.
        let mut in_url = sim.base_url();
        in_url.set_username("linkbot").unwrap();
        in_url.set_password(Some(TOKEN)).unwrap();
        let from_url = JenkinsClient::new(
            BaseUrl::new(in_url).unwrap(),
            job.clone(),
            None,
            None,
            fast(),
            Metrics::new(),
            &Net::direct(),
        )
        .unwrap();
        assert!(!from_url.job_url().as_str().contains(TOKEN));
        from_url.trigger(&params(LOC)).await.unwrap();

        let wrong_token = "99zz88yy77xx66ww55vv44uu33tt22ss11";
        let bad = JenkinsClient::new(
            BaseUrl::new(sim.base_url()).unwrap(),
            job,
            Some("linkbot".into()),
            Some(Secret::new(wrong_token)),
            fast(),
            Metrics::new(),
            &Net::direct(),
        )
        .unwrap();
        let e = bad.trigger(&params(LOC)).await.unwrap_err();
        assert_eq!(e.status(), Some(401));
        assert!(e.user_message().contains("JENKINS_API_TOKEN"));
        let mut shown = format!("{e} {e:?} {} {bad:?}", e.user_message());
        let err = bad
            .wait(
                JobHandle::Queued(linkbot::jenkins::QueueRef {
                    id: 1,
                    url: sim.base_url().join("queue/item/1/").unwrap(),
                }),
                Duration::from_secs(5),
                &|_| {},
            )
            .await
            .unwrap_err();
        shown.push_str(&format!("{err} {err:?} {}", err.user_message()));
        // Transport errors (here: a closed port) too.
        let closed = closed_port_url().await;
        let e = JenkinsClient::new(
            BaseUrl::new(closed).unwrap(),
            JOB.iter().map(|s| s.to_string()).collect(),
            Some("linkbot".into()),
            Some(Secret::new(TOKEN)),
            fast(),
            Metrics::new(),
            &Net::direct(),
        )
        .unwrap()
        .trigger(&params(LOC))
        .await
        .unwrap_err();
        assert!(matches!(e, JenkinsError::Transport { .. }), "{e:?}");
        let mut chain = String::new();
        let mut source: Option<&dyn std::error::Error> = Some(&e);
        while let Some(s) = source {
            chain.push_str(&format!("{s} / {s:?}\n"));
            source = s.source();
        }
        shown.push_str(&chain);
        assert!(
            !shown.contains(TOKEN) && !shown.contains(wrong_token),
            "{shown}"
        );
    })
    .await;
}

async fn closed_port_url() -> Url {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    Url::parse(&format!("http://{addr}/")).unwrap()
}

#[tokio::test]
async fn a_restarted_bot_resumes_from_a_build_or_a_queue_item() {
    bounded(async {
        let sim = sim::start(&JOB).await;
        sim.set_default_behaviour(Behaviour {
            queue_time: Duration::from_millis(100),
            build_time: Duration::from_millis(400),
            ..Behaviour::default()
        });
        let first = client(&sim);
        let q = first.trigger(&params(LOC)).await.unwrap();
        // The handle went through the store as JSON.
        let stored = serde_json::to_string(&JobHandle::Queued(q.clone())).unwrap();
        drop(first);
        let restarted = client(&sim);
        let handle: JobHandle = serde_json::from_str(&stored).unwrap();
        let done = restarted
            .wait(handle, Duration::from_secs(10), &|_| {})
            .await
            .unwrap();
        assert_eq!(done.result, "SUCCESS");

        let q2 = restarted.trigger(&params(LOC)).await.unwrap();
        let build = loop {
            if let QueueState::Started(b) = restarted.queue_state(&q2).await.unwrap() {
                break b;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let stored = serde_json::to_string(&JobHandle::Build(build.clone())).unwrap();
        let again = client(&sim);
        let queue_polls = sim.count("queue") + sim.count("queue_list");
        let done = again
            .wait(
                serde_json::from_str(&stored).unwrap(),
                Duration::from_secs(10),
                &|_| {},
            )
            .await
            .unwrap();
        assert_eq!(done.build, build);
        assert_eq!(
            sim.count("queue") + sim.count("queue_list"),
            queue_polls,
            "resuming a build does not poll the queue"
        );
    })
    .await;
}

#[tokio::test]
async fn polling_a_build_near_its_estimate_stays_within_budget() {
    bounded(async {
        let sim = sim::start(&JOB).await;
        let build_time = Duration::from_millis(2000);
        sim.set_default_behaviour(Behaviour {
            queue_time: Duration::from_millis(100),
            build_time,
            estimated: build_time,
            ..Behaviour::default()
        });
        let policy = PollPolicy {
            min: Duration::from_millis(50),
            max: Duration::from_secs(1),
        };
        let c = JenkinsClient::new(
            BaseUrl::new(sim.base_url()).unwrap(),
            JOB.iter().map(|s| s.to_string()).collect(),
            None,
            None,
            policy,
            Metrics::new(),
            &Net::direct(),
        )
        .unwrap();
        let started = tokio::time::Instant::now();
        let (r, _) = run(&c, LOC, Duration::from_secs(10)).await;
        let took = started.elapsed();
        assert_eq!(r.unwrap().result, "SUCCESS");
        // The build is followed by the job-level poll (one request for every build in flight),
        // on the same adaptive schedule: polling every `min` would cost 40 polls, the schedule
        // about 15. No build is polled on its own.
        let build_polls = sim.count("builds");
        assert!(
            (3..=22).contains(&build_polls),
            "{build_polls} job-level polls"
        );
        assert_eq!(sim.count("build"), 0);
        assert!(
            sim.count("queue_list") <= 6,
            "{} queue polls",
            sim.count("queue_list")
        );
        // The end is seen soon after it happens (slack for a loaded machine).
        assert!(
            took < Duration::from_millis(2100) + Duration::from_millis(900),
            "took {took:?}"
        );
        eprintln!(
            "job-level polls: {build_polls}, queue polls: {}, took {took:?}",
            sim.count("queue_list")
        );
    })
    .await;
}

// ---- parsing: fixtures recorded from real Jenkins, and odd JSON ----

fn job_url() -> Url {
    Url::parse("https://jenkins.example.internal/job/folder/job/pipeline/").unwrap()
}

#[test]
fn real_queue_items_parse() {
    let cases: [(&[u8], QueueState); 6] = [
        (
            include_bytes!("../fixtures/jenkins/queue-item-waiting.api4jenkins.json"),
            QueueState::Waiting {
                why: Some("In the quiet period. Expires in 4.6 sec".into()),
            },
        ),
        (
            include_bytes!("../fixtures/jenkins/queue-item-blocked.api4jenkins.json"),
            QueueState::Waiting {
                why: Some("Build #168 is already in progress (ETA:N/A)".into()),
            },
        ),
        (
            include_bytes!("../fixtures/jenkins/queue-item-buildable-stuck.api4jenkins.json"),
            QueueState::Waiting {
                why: Some("There are no nodes with the label ‘xxxx’".into()),
            },
        ),
        (
            include_bytes!("../fixtures/jenkins/queue-item-left-cancelled.jenkins-rest.json"),
            QueueState::Cancelled { why: None },
        ),
        (
            include_bytes!("../fixtures/jenkins/queue-item-left-executable.api4jenkins.json"),
            QueueState::Started(linkbot::jenkins::BuildRef {
                number: 54,
                url: job_url().join("54/").unwrap(),
            }),
        ),
        (
            include_bytes!("../fixtures/jenkins/queue-item-left-running.jenkins-rest.json"),
            QueueState::Started(linkbot::jenkins::BuildRef {
                number: 14,
                url: job_url().join("14/").unwrap(),
            }),
        ),
    ];
    for (json, expected) in cases {
        assert_eq!(parse_queue_item(json, &job_url()).unwrap(), expected);
    }
}

#[test]
fn real_builds_and_crumbs_parse() {
    let ok = parse_build(include_bytes!(
        "../fixtures/jenkins/build-success-with-artifact.jenkins-rest.json"
    ))
    .unwrap();
    assert!(!ok.building);
    assert_eq!(ok.result.as_deref(), Some("SUCCESS"));
    assert_eq!(ok.artifacts, vec!["fish.txt"]);
    assert_eq!(ok.estimated, Some(Duration::from_millis(60258)));
    assert_eq!(ok.duration, Some(Duration::from_millis(60750)));
    assert_eq!(ok.started_at_ms, Some(1461091892486));
    let failed = parse_build(include_bytes!(
        "../fixtures/jenkins/build-workflowrun-failure-folder.api4jenkins.json"
    ))
    .unwrap();
    assert_eq!(failed.result.as_deref(), Some("FAILURE"));
    assert!(failed.artifacts.is_empty());
    assert_eq!(
        parse_crumb(include_bytes!("../fixtures/jenkins/crumb.api4jenkins.json")).unwrap(),
        ("mock-crumb-id".to_string(), "mock-crumb".to_string())
    );
}

#[test]
fn odd_build_json_is_a_clear_error_or_a_sensible_value() {
    let errors: [(&str, &str); 9] = [
        ("", "not JSON"),
        ("{\"building\": fal", "not JSON"),
        ("[]", "not a JSON object"),
        ("null", "not a JSON object"),
        ("{}", "no `building`"),
        (
            "{\"building\": \"false\"}",
            "`building` is not true or false",
        ),
        (
            "{\"building\": false, \"result\": 3}",
            "`result` is not a string",
        ),
        (
            "{\"building\": false, \"artifacts\": [{\"fileName\": \"x\"}]}",
            "no `relativePath`",
        ),
        (
            "{\"building\": false, \"estimatedDuration\": \"soon\"}",
            "`estimatedDuration` is not a number",
        ),
    ];
    for (json, words) in errors {
        let e = parse_build(json.as_bytes()).unwrap_err();
        assert!(
            matches!(
                e,
                JenkinsError::Unexpected {
                    method: "build",
                    ..
                }
            ),
            "{json}: {e:?}"
        );
        assert!(e.to_string().contains(words), "{json}: {e}");
    }
    let running = parse_build(br#"{"building": true, "result": null, "estimatedDuration": -1, "timestamp": null, "artifacts": null, "duration": 0}"#).unwrap();
    assert!(
        running.building
            && running.result.is_none()
            && running.estimated.is_none()
            && running.artifacts.is_empty()
    );
    assert_eq!(running.duration, None);
}

#[test]
fn odd_queue_json_is_a_clear_error_or_a_sensible_value() {
    let errors: [(&str, &str); 6] = [
        ("<html>", "not JSON"),
        ("\"queued\"", "not a JSON object"),
        (
            "{\"cancelled\": \"true\"}",
            "`cancelled` is not true or false",
        ),
        (
            "{\"executable\": {\"url\": \"http://x/job/a/3/\"}}",
            "no `number`",
        ),
        (
            "{\"executable\": {\"number\": -3}}",
            "`number` is not a build number",
        ),
        ("{\"executable\": 12}", "`executable` is not a JSON object"),
    ];
    for (json, words) in errors {
        let e = parse_queue_item(json.as_bytes(), &job_url()).unwrap_err();
        assert!(e.to_string().contains(words), "{json}: {e}");
    }
    assert_eq!(
        parse_queue_item(b"{}", &job_url()).unwrap(),
        QueueState::Waiting { why: None }
    );
    assert_eq!(
        parse_queue_item(br#"{"why": 5, "executable": null}"#, &job_url()).unwrap(),
        QueueState::Waiting { why: None }
    );
    assert_eq!(
        parse_queue_item(br#"{"cancelled": false, "why": "x"}"#, &job_url()).unwrap(),
        QueueState::Waiting {
            why: Some("x".into())
        }
    );
}

proptest::proptest! {
    #[test]
    fn parsers_never_panic_on_any_text(s in "\\PC{0,200}") {
        let _ = parse_build(s.as_bytes());
        let _ = parse_queue_item(s.as_bytes(), &job_url());
        let _ = parse_crumb(s.as_bytes());
        let _ = linkbot::jenkins::api::parse_queue_location(&s);
        let _ = linkbot::jenkins::api::console_tail_of(s.as_bytes(), 5);
    }

    #[test]
    fn parsers_never_panic_on_cut_or_bent_fixtures(cut in 0usize..2000, byte in proptest::num::u8::ANY, at in 0usize..2000) {
        for fixture in [
            &include_bytes!("../fixtures/jenkins/build-success-with-artifact.jenkins-rest.json")[..],
            &include_bytes!("../fixtures/jenkins/queue-item-left-executable.api4jenkins.json")[..],
        ] {
            let mut bent = fixture[..cut.min(fixture.len())].to_vec();
            if !bent.is_empty() {
                let i = at % bent.len();
                bent[i] = byte;
            }
            let _ = parse_build(&bent);
            let _ = parse_queue_item(&bent, &job_url());
        }
    }
}

#[tokio::test]
async fn an_endless_artifact_without_a_length_is_cut_off_at_the_limit() {
    bounded(async {
        // A server that streams an artifact chunk by chunk, forever, without Content-Length.
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let server = tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            s.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                .await
                .unwrap();
            let chunk = format!("{:x}\r\n{}\r\n", 1024, "y".repeat(1024));
            let mut sent = 0u64;
            while s.write_all(chunk.as_bytes()).await.is_ok() {
                sent += 1024;
            }
            sent
        });
        let sim = sim::start(&JOB).await;
        let c = client(&sim);
        let build = linkbot::jenkins::BuildRef {
            number: 1,
            url: Url::parse(&format!("http://{addr}/job/x/1/")).unwrap(),
        };
        let e = c
            .artifact(&build, "endless.log", 64 * 1024)
            .await
            .unwrap_err();
        assert!(
            matches!(
                e,
                JenkinsError::TooLarge {
                    limit: 65536,
                    size: None
                }
            ),
            "{e:?}"
        );
        let sent = server.await.unwrap();
        assert!(
            sent < 64 * 1024 * 1024,
            "the client kept reading: {sent} bytes"
        );
    })
    .await;
}

// ---- the follower: one job-level poll for every build in flight (issue 12, part 2) ----

/// A location id for build `i` (distinct per build, valid as a `LocationId`).
fn loc(i: usize) -> String {
    format!("c{i:04}k4ek107l5au5mq8")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_builds_in_flight_cost_one_job_level_poll_per_tick_not_two_hundred() {
    bounded(async {
        let sim = sim::start(&JOB).await;
        let build_time = Duration::from_millis(1500);
        sim.set_default_behaviour(Behaviour {
            queue_time: Duration::from_millis(100),
            build_time,
            estimated: build_time,
            ..Behaviour::default()
        });
        let c = client(&sim);
        let mut queued = Vec::new();
        for i in 0..200 {
            queued.push(c.trigger(&params(&loc(i))).await.unwrap());
        }
        let mut checks = tokio::task::JoinSet::new();
        for q in queued {
            let c = c.clone();
            checks.spawn(async move {
                c.wait(JobHandle::Queued(q), Duration::from_secs(15), &|_| {})
                    .await
            });
        }
        let mut numbers = std::collections::BTreeSet::new();
        while let Some(done) = checks.join_next().await {
            let done = done.unwrap().expect("every build's end is seen");
            assert_eq!(done.result, "SUCCESS");
            numbers.insert(done.build.number);
        }
        assert_eq!(numbers.len(), 200, "each check followed its own build");
        let (job_polls, listings) = (sim.count("builds"), sim.count("queue_list"));
        // No build and no queue item was polled on its own.
        assert_eq!((sim.count("build"), sim.count("queue")), (0, 0));
        // One job-level poll per tick (a tick is at least `min` = 20 ms apart; the builds run
        // ~1.6 s): far fewer than one per build, let alone one per build per tick.
        assert!(job_polls >= 2, "{job_polls} job-level polls");
        assert!(job_polls < 200, "{job_polls} job-level polls for 200 builds");
        // The queue is listed only in ticks that had a queued item: never more than the ticks.
        assert!(listings >= 1 && listings <= job_polls, "{listings} listings, {job_polls} polls");
        // Past Jenkins' 100 newest `builds`, the window asks `allBuilds` with a range.
        let requests = sim.requests();
        assert!(
            requests.iter().any(|r| r.contains("allBuilds[") && r.contains("%7B0,")
                || r.contains("allBuilds[") && r.contains("{0,")),
            "{:?}",
            requests.iter().filter(|r| r.contains("api/json?tree=")).take(3).collect::<Vec<_>>()
        );
        eprintln!("200 builds: {job_polls} job-level polls, {listings} queue listings, {} requests in all", sim.request_count());
    })
    .await;
}

#[tokio::test]
async fn a_build_that_vanishes_ends_its_check_as_lost() {
    bounded(async {
        let sim = sim::start(&JOB).await;
        sim.set_default_behaviour(Behaviour {
            queue_time: Duration::from_millis(20),
            build_time: Duration::from_secs(60),
            estimated: Duration::from_secs(60),
            ..Behaviour::default()
        });
        let c = client(&sim);
        let q = c.trigger(&params(LOC)).await.unwrap();
        let progress = Progress::default();
        let hook = progress.hook();
        let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel();
        let on_progress = move |p: &JobProgress| {
            hook(p);
            if let JobProgress::Running { build, .. } = p {
                let _ = seen_tx.send(build.number);
            }
        };
        let waiting = c.wait(JobHandle::Queued(q), Duration::from_secs(15), &on_progress);
        tokio::pin!(waiting);
        // Once the build is seen running, it is deleted in Jenkins.
        let number = tokio::select! {
            n = seen_rx.recv() => n.unwrap(),
            r = &mut waiting => panic!("ended before running: {r:?}"),
        };
        sim.delete_build(number);
        let err = waiting.await.unwrap_err();
        match &err {
            JobError::Lost {
                handle: JobHandle::Build(b),
                detail,
            } => {
                assert_eq!(b.number, number);
                assert!(detail.contains(&format!("build #{number}")), "{detail}");
            }
            other => panic!("expected Lost with the build, got {other:?}"),
        }
        assert!(
            err.user_message().contains("lost track"),
            "{}",
            err.user_message()
        );
        // The verdict still links the build it lost.
        assert_eq!(err.build().map(|b| b.number), Some(number));
    })
    .await;
}

#[tokio::test]
async fn a_restarted_bot_resumes_queued_and_running_jobs_together_with_one_poll() {
    bounded(async {
        let sim = sim::start(&JOB).await;
        sim.set_default_behaviour(Behaviour {
            queue_time: Duration::from_millis(300),
            build_time: Duration::from_millis(500),
            ..Behaviour::default()
        });
        let first = client(&sim);
        let running = first.trigger(&params(&loc(1))).await.unwrap();
        let build = loop {
            if let QueueState::Started(b) = first.queue_state(&running).await.unwrap() {
                break b;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let queued = first.trigger(&params(&loc(2))).await.unwrap();
        // The handles went through the store as JSON; the first process is gone.
        let stored = [
            serde_json::to_string(&JobHandle::Build(build.clone())).unwrap(),
            serde_json::to_string(&JobHandle::Queued(queued.clone())).unwrap(),
        ];
        drop(first);
        let (item_polls, build_polls) = (sim.count("queue"), sim.count("build"));
        let restarted = client(&sim);
        let mut resumed = tokio::task::JoinSet::new();
        for s in stored {
            let c = restarted.clone();
            let handle: JobHandle = serde_json::from_str(&s).unwrap();
            resumed.spawn(async move { c.wait(handle, Duration::from_secs(10), &|_| {}).await });
        }
        let mut done = Vec::new();
        while let Some(r) = resumed.join_next().await {
            done.push(r.unwrap().expect("both resumed jobs finish").build.number);
        }
        done.sort_unstable();
        assert_eq!(done, vec![build.number, build.number + 1]);
        // Followed together by the job-level poll; nothing asked item by item or build by build.
        assert_eq!(
            (sim.count("queue"), sim.count("build")),
            (item_polls, build_polls)
        );
        assert!(sim.count("builds") >= 1);
    })
    .await;
}
