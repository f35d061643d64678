//! The ops HTTP server, over a real socket: health, readiness, metrics (parsed by a real
//! OpenMetrics parser), 404s, and shutdown.

use linkbot::config::Config;
use linkbot::domain::Environment;
use linkbot::metrics::{Metrics, VerdictLabel, STORM_SAMPLE};
use linkbot::server::{self, Readiness, ReadyChecks, METRICS_CONTENT_TYPE};
use openmetrics_parser::openmetrics::parse_openmetrics;
use openmetrics_parser::{OpenMetricsType, OpenMetricsValue};
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

const BOUND: Duration = Duration::from_secs(10);

struct Running {
    base: String,
    ready: watch::Sender<Readiness>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn start(metrics: Metrics) -> Running {
    let listener = server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (ready, rx) = watch::channel(Readiness::not_ready("starting"));
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(server::serve(listener, metrics, rx, shutdown.clone()));
    Running {
        base,
        ready,
        shutdown,
        task,
    }
}

async fn get(url: &str) -> (u16, String, String) {
    let resp = tokio::time::timeout(BOUND, reqwest::get(url))
        .await
        .expect("answer in time")
        .unwrap();
    let status = resp.status().as_u16();
    let ctype = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (status, ctype, resp.text().await.unwrap())
}

#[tokio::test]
async fn healthz_answers_ok_while_alive() {
    let s = start(Metrics::new()).await;
    let (status, _, body) = get(&format!("{}/healthz", s.base)).await;
    assert_eq!((status, body.trim()), (200, "ok"));
}

#[tokio::test]
async fn readyz_flips_from_503_with_a_reason_to_200() {
    let s = start(Metrics::new()).await;
    let (status, _, body) = get(&format!("{}/readyz", s.base)).await;
    assert_eq!(status, 503);
    assert_eq!(body.trim(), "not ready: starting");

    let partial = ReadyChecks {
        config_loaded: true,
        store_reachable: true,
        socket_connected: false,
    };
    s.ready.send(partial.readiness()).unwrap();
    let (status, _, body) = get(&format!("{}/readyz", s.base)).await;
    assert_eq!(status, 503);
    assert_eq!(body.lines().count(), 1, "one line: {body:?}");
    assert!(body.contains("Socket Mode not connected"), "{body}");

    s.ready
        .send(
            ReadyChecks {
                socket_connected: true,
                ..partial
            }
            .readiness(),
        )
        .unwrap();
    let (status, _, _) = get(&format!("{}/readyz", s.base)).await;
    assert_eq!(status, 200);

    s.ready
        .send(Readiness::not_ready("store unreachable\nsecond line"))
        .unwrap();
    let (status, _, body) = get(&format!("{}/readyz", s.base)).await;
    assert_eq!(status, 503);
    assert_eq!(
        body.lines().count(),
        1,
        "a reason never spans lines: {body:?}"
    );
}

#[test]
fn ready_checks_name_every_missing_part() {
    assert_eq!(
        ReadyChecks::default().readiness(),
        Readiness::not_ready("config not loaded, store unreachable, Socket Mode not connected")
    );
    let all = ReadyChecks {
        config_loaded: true,
        store_reachable: true,
        socket_connected: true,
    };
    assert!(all.readiness().is_ready());
}

#[tokio::test]
async fn metrics_parse_as_openmetrics_with_the_families_the_spec_names() {
    let metrics = Metrics::new();
    metrics
        .checks
        .get_or_create(&VerdictLabel {
            verdict: "config_missing".into(),
        })
        .inc();
    metrics
        .checks
        .get_or_create(&VerdictLabel {
            verdict: "api_key_invalid".into(),
        })
        .inc_by(2);
    metrics.check_duration.observe(95.0);
    metrics.in_flight.inc();
    Metrics::call(&metrics.jenkins_calls, "queue", "ok");
    Metrics::call(&metrics.jenkins_calls, "build", "http_5xx");
    Metrics::call(&metrics.slack_calls, "chat.update", "ok");
    Metrics::call(&metrics.slack_calls, "chat.postMessage", "ratelimited");
    metrics.ack_latency.observe(0.004);
    // openmetrics-parser 0.5.1 mis-parses a family with no samples followed by another family
    // (its PEG grammar lets the empty family's descriptors swallow the next family's samples),
    // although OpenMetrics allows empty families and Prometheus reads them. So give every
    // family a sample here; everything else about the exposition is checked strictly.
    Metrics::call(&metrics.directory_calls, "cluster", "ok");
    Metrics::call(&metrics.escalations, "pagerduty", "ok");
    metrics.rejected("chat.postEphemeral", "Invalid Blocks!");
    metrics.undelivered.inc();
    metrics
        .time_to_diagnosis
        .observe("prod", "config_missing", 42.0);
    metrics
        .time_to_resolution
        .observe("prod", "config_missing", 1380.0);
    metrics.storm_declared(Environment::Stage);
    metrics.set_storms_active(Environment::Stage, 1);
    metrics.storm_alerts_linked.inc_by(9);
    metrics.storm_checks_started(STORM_SAMPLE, 1);
    metrics.storm_ended(Environment::Prod);
    let s = start(metrics).await;

    let (status, ctype, body) = get(&format!("{}/metrics", s.base)).await;
    assert_eq!(status, 200);
    assert_eq!(ctype, METRICS_CONTENT_TYPE);
    assert!(
        ctype.starts_with("application/openmetrics-text"),
        "prometheus-client writes OpenMetrics text"
    );
    let exposition =
        parse_openmetrics(&body).unwrap_or_else(|e| panic!("not valid OpenMetrics: {e}\n{body}"));
    let family = |name: &str, ty: OpenMetricsType| {
        let f = exposition
            .families
            .get(name)
            .unwrap_or_else(|| panic!("no family {name} in:\n{body}"));
        assert_eq!(f.family_type, ty, "{name}");
        f
    };
    let number = |v: &OpenMetricsValue| match v {
        OpenMetricsValue::Counter(c) => c.value.as_f64(),
        OpenMetricsValue::Gauge(g) => g.as_f64(),
        OpenMetricsValue::Histogram(h) => h.count.unwrap_or(0) as f64,
        other => panic!("unexpected value {other:?}"),
    };
    let value_where = |name: &str, ty: OpenMetricsType, label: &str, want: &str| -> f64 {
        let f = family(name, ty);
        let sample = f
            .iter_samples()
            .find(|s| {
                s.get_labelset()
                    .ok()
                    .and_then(|l| l.get_label_value(label).map(str::to_string))
                    .as_deref()
                    == Some(want)
            })
            .unwrap_or_else(|| panic!("{name}: no sample with {label}={want}"));
        number(&sample.value)
    };
    let only_value = |name: &str, ty: OpenMetricsType| -> f64 {
        let f = family(name, ty);
        let samples: Vec<_> = f.iter_samples().collect();
        assert_eq!(samples.len(), 1, "{name}");
        number(&samples[0].value)
    };

    // Incidents: time to diagnosis and to resolution, by environment and verdict.
    for name in [
        "linkbot_time_to_diagnosis_seconds",
        "linkbot_time_to_resolution_seconds",
    ] {
        assert_eq!(
            value_where(name, OpenMetricsType::Histogram, "environment", "prod"),
            1.0,
            "{name}"
        );
        assert_eq!(
            value_where(
                name,
                OpenMetricsType::Histogram,
                "verdict",
                "config_missing"
            ),
            1.0,
            "{name}"
        );
    }

    // Checks by verdict.
    assert_eq!(
        value_where(
            "linkbot_checks",
            OpenMetricsType::Counter,
            "verdict",
            "config_missing"
        ),
        1.0
    );
    assert_eq!(
        value_where(
            "linkbot_checks",
            OpenMetricsType::Counter,
            "verdict",
            "api_key_invalid"
        ),
        2.0
    );
    // Check duration.
    assert_eq!(
        only_value("linkbot_check_duration_seconds", OpenMetricsType::Histogram),
        1.0
    );
    // Jenkins and Slack call counts and errors.
    assert_eq!(
        value_where(
            "linkbot_jenkins_calls",
            OpenMetricsType::Counter,
            "outcome",
            "http_5xx"
        ),
        1.0
    );
    assert_eq!(
        value_where(
            "linkbot_jenkins_calls",
            OpenMetricsType::Counter,
            "method",
            "queue"
        ),
        1.0
    );
    assert_eq!(
        value_where(
            "linkbot_slack_calls",
            OpenMetricsType::Counter,
            "method",
            "chat.update"
        ),
        1.0
    );
    assert_eq!(
        value_where(
            "linkbot_slack_calls",
            OpenMetricsType::Counter,
            "outcome",
            "ratelimited"
        ),
        1.0
    );
    // In-flight checks.
    assert_eq!(
        only_value("linkbot_checks_in_flight", OpenMetricsType::Gauge),
        1.0
    );
    // Envelope ack latency.
    assert_eq!(
        only_value(
            "linkbot_envelope_ack_latency_seconds",
            OpenMetricsType::Histogram
        ),
        1.0
    );
    // And the rest.
    assert_eq!(
        value_where(
            "linkbot_directory_calls",
            OpenMetricsType::Counter,
            "method",
            "cluster"
        ),
        1.0
    );
    assert_eq!(
        value_where(
            "linkbot_escalations",
            OpenMetricsType::Counter,
            "method",
            "pagerduty"
        ),
        1.0
    );
    assert_eq!(
        only_value("linkbot_socket_reconnects", OpenMetricsType::Counter),
        0.0
    );
    // Requests Slack refused, and messages no thread could be shown.
    // (Slack's code reduced to a safe label value; a message's usual refusals start at 0.)
    assert_eq!(
        value_where(
            "linkbot_slack_rejected",
            OpenMetricsType::Counter,
            "method",
            "chat.postEphemeral"
        ),
        1.0
    );
    assert!(body.contains(
        "linkbot_slack_rejected_total{method=\"chat.postEphemeral\",error=\"invalidblocks\"} 1"
    ));
    assert!(body.contains(
        "linkbot_slack_rejected_total{method=\"chat.update\",error=\"invalid_blocks\"} 0"
    ));
    assert_eq!(
        only_value("linkbot_slack_undelivered", OpenMetricsType::Counter),
        1.0
    );
    // Storms: declared, active and ended by environment (each from 0), alerts linked, and the
    // checks storm mode started by kind.
    for (name, ty, env, want) in [
        (
            "linkbot_storms_declared",
            OpenMetricsType::Counter,
            "stage",
            1.0,
        ),
        (
            "linkbot_storms_declared",
            OpenMetricsType::Counter,
            "prod",
            0.0,
        ),
        ("linkbot_storm_active", OpenMetricsType::Gauge, "stage", 1.0),
        ("linkbot_storm_active", OpenMetricsType::Gauge, "prod", 0.0),
        ("linkbot_storm_ended", OpenMetricsType::Counter, "prod", 1.0),
        (
            "linkbot_storm_ended",
            OpenMetricsType::Counter,
            "stage",
            0.0,
        ),
    ] {
        assert_eq!(
            value_where(name, ty, "environment", env),
            want,
            "{name} {env}"
        );
    }
    assert_eq!(
        only_value("linkbot_storm_alerts_linked", OpenMetricsType::Counter),
        9.0
    );
    for (kind, want) in [("sample", 1.0), ("budget", 0.0)] {
        assert_eq!(
            value_where(
                "linkbot_storm_checks",
                OpenMetricsType::Counter,
                "kind",
                kind
            ),
            want,
            "{kind}"
        );
    }
}

#[tokio::test]
async fn unknown_paths_are_404() {
    let s = start(Metrics::new()).await;
    for path in ["/", "/metricz", "/healthz/extra", "/slack/events"] {
        let (status, _, body) = get(&format!("{}{path}", s.base)).await;
        assert_eq!(status, 404, "{path}");
        assert!(body.contains("/healthz"), "{body}");
    }
}

#[tokio::test]
async fn shutdown_stops_the_server_within_a_bound() {
    let s = start(Metrics::new()).await;
    let (status, _, _) = get(&format!("{}/healthz", s.base)).await;
    assert_eq!(status, 200);
    s.shutdown.cancel();
    let result = tokio::time::timeout(BOUND, s.task)
        .await
        .expect("serve returns after cancel");
    result.unwrap().unwrap();
    let after = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap()
        .get(format!("{}/healthz", s.base))
        .send()
        .await;
    assert!(after.is_err(), "nothing answers after shutdown");
}

#[tokio::test]
async fn binding_a_taken_address_names_it_and_the_config_key() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let err = server::bind(addr).await.unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains(&addr.to_string()) && msg.contains("[server] listen"),
        "{msg}"
    );
}

#[test]
fn the_deployed_config_listens_where_the_probes_look() {
    // manifests/base/bot.toml becomes the ConfigMap: it must be a valid config whose
    // server listens on the port the Deployment probes (8080) on every interface.
    let cfg = Config::parse(include_str!("../../manifests/base/bot.toml"))
        .unwrap_or_else(|problems| panic!("manifests/base/bot.toml is invalid: {problems:?}"));
    assert_eq!(cfg.listen, "0.0.0.0:8080".parse().unwrap());
    assert_eq!(cfg.store_url, "sqlite:///data/linkbot.db");
}
