//! TLS with a company CA and an egress proxy, end to end: the real bot (`app::start`) against
//! simulators serving HTTPS/WSS with a CA made here at test time (rcgen; nothing committed),
//! and an in-process HTTP CONNECT proxy.
//!
//! The environment values (`SSL_CERT_FILE`, `HTTPS_PROXY`, …) go through
//! `Secrets::from_lookup`, as `linkbot run` reads them, so no test touches the process
//! environment. Every wait is bounded.

use crate::common::{all_logs, logs};
use linkbot::app::{self, Options, RunningBot};
use linkbot::config::{Config, NetEnv, Secrets};
use linkbot::diagnosis::verdict::VerdictCode;
use linkbot::domain::BaseUrl;
use linkbot::net::Net;
use linkbot::sim::proxy::SimProxy;
use linkbot::sim::slack as fake;
use linkbot::sim::tls::SimTls;
use linkbot::sim::world::{self, World, WorldOptions, ENGINEER, ONCALL_CHANNEL};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

/// The sentence an untrusted certificate must produce (the host is the simulators').
const UNTRUSTED: &str = "the certificate of 127.0.0.1 is not trusted (UnknownIssuer): add its CA with SSL_CERT_FILE or [tls] ca_file";

// ---------------------------------------------------------------------------------------------
// Setup

/// A CA made now, and a server identity for 127.0.0.1 and localhost signed by it.
struct TestCa {
    pem: String,
    server: SimTls,
}

fn test_ca(name: &str) -> TestCa {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, format!("{name} test CA"));
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
    let leaf_key = KeyPair::generate().expect("server key");
    let mut leaf = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .expect("server params");
    leaf.distinguished_name
        .push(DnType::CommonName, format!("{name} simulators"));
    let leaf_cert = leaf
        .signed_by(&leaf_key, &ca_cert, &ca_key)
        .expect("server certificate");
    let chain: Vec<CertificateDer<'static>> = vec![leaf_cert.der().clone()];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    TestCa {
        pem: ca_cert.pem(),
        server: SimTls::new(chain, key).expect("server TLS config"),
    }
}

fn write_file(world: &World, name: &str, text: &str) -> String {
    let path = world.dir().join(name);
    std::fs::File::create(&path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .expect("writing a test file");
    path.display().to_string()
}

/// The world's secrets plus `env`, read as `linkbot run` reads the environment.
fn secrets_with(world: &World, env: &[(&str, String)]) -> Secrets {
    let mut vars: BTreeMap<String, String> = world
        .secret_env()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    for (k, v) in env {
        vars.insert(k.to_string(), v.clone());
    }
    Secrets::from_lookup(|k| vars.get(k).cloned()).expect("secrets")
}

fn options(instance: &str) -> Options {
    crate::common::bot_options(instance)
}

async fn start_bot(world: &World, config: Config, secrets: Secrets) -> anyhow::Result<RunningBot> {
    let connections = config.slack.connections;
    let bot = tokio::time::timeout(WAIT, app::start(Arc::new(config), secrets, options("net")))
        .await
        .expect("app::start answers in time")?;
    assert!(
        bot.wait_connected(connections, WAIT).await,
        "the bot did not open {connections} Socket Mode connections; Slack sim has {}",
        world.slack.connection_count()
    );
    Ok(bot)
}

/// Mentions the bot about `loc` and waits for the verdict message in its thread.
async fn check(world: &World, loc: &linkbot::domain::LocationId, n: u32) -> fake::SimMessage {
    let ts = World::user_ts(n);
    let text = format!("<@{}> check {loc}", fake::SIM_BOT_USER_ID);
    world
        .slack
        .push(fake::app_mention(ONCALL_CHANNEL, ENGINEER, &text, &ts))
        .await
        .expect("a live Socket Mode connection");
    match world.wait_verdicts(ONCALL_CHANNEL, &ts, 1, WAIT).await {
        Some(mut v) => v.pop().expect("one verdict"),
        None => panic!(
            "no verdict within {WAIT:?}; the thread holds:\n{}",
            world
                .thread(ONCALL_CHANNEL, &ts)
                .iter()
                .map(world::render_message)
                .collect::<Vec<_>>()
                .join("\n---\n")
        ),
    }
}

async fn metrics_text(bot: &RunningBot) -> String {
    reqwest::get(format!("http://{}/metrics", bot.ops_addr))
        .await
        .expect("/metrics answers")
        .text()
        .await
        .expect("/metrics body")
}

fn port_of(url: &url::Url) -> u16 {
    url.port().expect("the simulators have explicit ports")
}

// ---------------------------------------------------------------------------------------------
// TLS

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_company_ca_in_ssl_cert_file_every_connection_is_tls_and_a_verdict_arrives() {
    logs();
    let ca = test_ca("company");
    let world = World::start_with(WorldOptions::tls(&ca.server))
        .await
        .expect("world");
    let config = world.config(&world.sqlite_url("bot")).expect("config");
    assert_eq!(config.slack.api_url.scheme(), "https");
    for ec in config.environments.values() {
        assert_eq!(ec.xo_url.scheme(), "https");
        assert_eq!(ec.jenkins_url.scheme(), "https");
    }
    let ca_file = write_file(&world, "company-ca.pem", &ca.pem);
    let secrets = secrets_with(&world, &[("SSL_CERT_FILE", ca_file)]);
    let bot = start_bot(&world, config, secrets)
        .await
        .expect("the bot starts");

    let loc = world.scenario(VerdictCode::ApiKeyInvalid, 0);
    let v = check(&world, &loc, 1).await;
    assert_eq!(world::verdict_code(&v), Some(VerdictCode::ApiKeyInvalid));
    assert_eq!(world.jenkins.triggers().len(), 1);
    // Socket Mode went over wss:// (the sim hands out wss URLs when it serves TLS).
    assert!(world.slack.connection_count() >= 1);
    assert_eq!(ca.server.failed_handshakes(), 0);
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ca_can_come_from_bot_toml_tls_ca_file_instead() {
    logs();
    let ca = test_ca("config");
    let world = World::start_with(WorldOptions::tls(&ca.server))
        .await
        .expect("world");
    let ca_file = write_file(&world, "ca-from-config.pem", &ca.pem);
    let toml = format!(
        "{}\n[tls]\nca_file = \"{ca_file}\"\n",
        world.config_toml(&world.sqlite_url("bot"))
    );
    let config = Config::parse(&toml).expect("config with [tls]");
    let bot = start_bot(&world, config, world.secrets())
        .await
        .expect("the bot starts");
    let loc = world.scenario(VerdictCode::ConfigMissing, 0);
    let v = check(&world, &loc, 1).await;
    assert_eq!(world::verdict_code(&v), Some(VerdictCode::ConfigMissing));
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_directory_certificate_is_named_in_the_verdict_and_no_build_is_triggered() {
    logs();
    let unknown = test_ca("unknown");
    // Slack is plain HTTP here so the bot starts; the directory and Jenkins use a CA the bot
    // was not given.
    let world = World::start_with(WorldOptions {
        slack_tls: None,
        directory_tls: Some(unknown.server.clone()),
        jenkins_tls: Some(unknown.server.clone()),
    })
    .await
    .expect("world");
    let config = world.config(&world.sqlite_url("bot")).expect("config");
    let bot = start_bot(&world, config, world.secrets())
        .await
        .expect("the bot starts");

    let loc = world.scenario(VerdictCode::ApiKeyInvalid, 0);
    let v = check(&world, &loc, 1).await;
    assert_eq!(world::verdict_code(&v), Some(VerdictCode::LookupFailed));
    let shown = world::render_message(&v);
    assert!(shown.contains(UNTRUSTED), "{shown}");
    assert!(world.jenkins.triggers().is_empty(), "a build was triggered");
    assert!(unknown.server.failed_handshakes() >= 1);
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_slack_certificate_ends_start_with_the_sentence() {
    logs();
    let unknown = test_ca("unknown-slack");
    let world = World::start_with(WorldOptions::tls(&unknown.server))
        .await
        .expect("world");
    let config = world.config(&world.sqlite_url("bot")).expect("config");
    let err = tokio::time::timeout(
        WAIT,
        app::start(Arc::new(config), world.secrets(), options("net-untrusted")),
    )
    .await
    .expect("app::start answers in time")
    .err()
    .expect("the bot must not start against an untrusted Slack");
    let shown = format!("{err:#}");
    assert!(shown.contains("auth.test"), "{shown}");
    assert!(shown.contains(UNTRUSTED), "{shown}");
}

#[test]
fn a_missing_or_empty_ca_file_is_a_clear_startup_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").expect("write");
    let missing = dir.path().join("missing.pem");
    let env = |file: &std::path::Path| NetEnv {
        ssl_cert_file: Some(file.to_path_buf()),
        ..NetEnv::default()
    };
    let e = Net::new(None, &env(&missing)).unwrap_err().to_string();
    assert!(
        e.contains("SSL_CERT_FILE") && e.contains("missing.pem") && e.contains("cannot be read"),
        "{e}"
    );
    let e = Net::new(None, &env(&empty)).unwrap_err().to_string();
    assert!(
        e.contains("SSL_CERT_FILE") && e.contains("no certificate"),
        "{e}"
    );
    let e = Net::new(Some(&missing), &NetEnv::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("[tls] ca_file") && e.contains("missing.pem"),
        "{e}"
    );
    let e = Net::new(
        None,
        &NetEnv {
            ssl_cert_dir: vec![missing.clone()],
            ..NetEnv::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("SSL_CERT_DIR"), "{e}");
}

#[test]
fn the_extra_ca_is_added_to_the_platform_store_not_instead_of_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = test_ca("extra");
    let file = dir.path().join("ca.pem");
    std::fs::write(&file, &ca.pem).expect("write");
    let plain = Net::direct();
    let with_ca = Net::new(
        None,
        &NetEnv {
            ssl_cert_file: Some(file.clone()),
            ssl_cert_dir: vec![dir.path().to_path_buf()],
            ..NetEnv::default()
        },
    )
    .expect("net");
    assert_eq!(with_ca.summary().extra, 1, "{:?}", with_ca.summary());
    assert_eq!(with_ca.summary().platform, plain.summary().platform);
}

// ---------------------------------------------------------------------------------------------
// Proxy

const PROXY_USER: &str = "linkbot";
const PROXY_PASSWORD: &str = "pr0xy-Pa55w0rd-never-shown";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_carries_slack_the_websocket_the_directory_and_jenkins_and_no_proxy_goes_direct()
{
    logs();
    let ca = test_ca("proxied");
    let world = World::start_with(WorldOptions::tls(&ca.server))
        .await
        .expect("world");
    let proxy = SimProxy::start().await.expect("proxy");
    proxy.require_basic(PROXY_USER, PROXY_PASSWORD);
    let config = world.config(&world.sqlite_url("bot")).expect("config");
    let iam_port = port_of(&config.iam.url);
    let secrets = secrets_with(
        &world,
        &[
            ("SSL_CERT_FILE", write_file(&world, "ca.pem", &ca.pem)),
            ("HTTPS_PROXY", proxy.url_with(PROXY_USER, PROXY_PASSWORD)),
            ("http_proxy", proxy.url_with(PROXY_USER, PROXY_PASSWORD)),
            (
                "NO_PROXY",
                format!("example.internal, 127.0.0.1:{iam_port}"),
            ),
        ],
    );
    let slack_port = port_of(&config.slack.api_url);
    let xo_port = port_of(&config.environments.values().next().unwrap().xo_url);
    let jenkins_port = port_of(&config.environments.values().next().unwrap().jenkins_url);
    let bot = start_bot(&world, config, secrets)
        .await
        .expect("the bot starts");

    let loc = world.scenario(VerdictCode::ApiKeyInvalid, 0);
    let v = check(&world, &loc, 1).await;
    // api_key_invalid needs IAM's answer: IAM was reached, directly.
    assert_eq!(world::verdict_code(&v), Some(VerdictCode::ApiKeyInvalid));
    assert!(world.iam.request_count() >= 1);

    let requests = proxy.requests();
    let expected_auth = format!(
        "Basic {}",
        base64_encode(&format!("{PROXY_USER}:{PROXY_PASSWORD}"))
    );
    assert!(!requests.is_empty());
    for r in &requests {
        assert_eq!(r.method, "CONNECT", "{r:?}");
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(
            r.proxy_authorization.as_deref(),
            Some(expected_auth.as_str())
        );
    }
    let tunnels = proxy.tunnels();
    let through = |port: u16| tunnels.iter().any(|t| t == &format!("127.0.0.1:{port}"));
    assert!(
        through(slack_port),
        "Slack Web API not proxied: {tunnels:?}"
    );
    assert!(through(xo_port), "directory not proxied: {tunnels:?}");
    assert!(through(jenkins_port), "Jenkins not proxied: {tunnels:?}");
    let ws_port = tunnels
        .iter()
        .filter_map(|t| t.rsplit_once(':')?.1.parse::<u16>().ok())
        .find(|p| ![slack_port, xo_port, jenkins_port, iam_port].contains(p));
    assert!(
        ws_port.is_some(),
        "the WebSocket was not proxied: {tunnels:?}"
    );
    assert!(
        !through(iam_port),
        "NO_PROXY host:port went through the proxy"
    );

    let metrics = metrics_text(&bot).await;
    bot.stop().await;
    for (what, text) in [("metrics", metrics), ("logs", all_logs())] {
        assert!(
            !text.contains(PROXY_PASSWORD),
            "the proxy password is in the {what}"
        );
        assert!(
            !text.contains(&expected_auth),
            "the proxy credentials are in the {what}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_407_from_the_proxy_names_the_proxy_and_never_the_password() {
    logs();
    let ca = test_ca("refused");
    let world = World::start_with(WorldOptions::tls(&ca.server))
        .await
        .expect("world");
    let proxy = SimProxy::start().await.expect("proxy");
    proxy.require_basic(PROXY_USER, "the-right-one");
    let config = world.config(&world.sqlite_url("bot")).expect("config");
    let secrets = secrets_with(
        &world,
        &[
            ("SSL_CERT_FILE", write_file(&world, "ca.pem", &ca.pem)),
            ("https_proxy", proxy.url_with(PROXY_USER, PROXY_PASSWORD)),
        ],
    );
    let err = tokio::time::timeout(
        WAIT,
        app::start(Arc::new(config), secrets, options("net-407")),
    )
    .await
    .expect("app::start answers in time")
    .err()
    .expect("the bot must not start when the proxy refuses it");
    let shown = format!("{err:#} {err:?}");
    assert!(
        shown.contains(&format!("the proxy {}", proxy.url())) && shown.contains("407"),
        "{shown}"
    );
    assert!(shown.contains("HTTPS_PROXY"), "{shown}");
    assert!(!shown.contains(PROXY_PASSWORD), "{shown}");
    assert_eq!(proxy.requests().len(), 1);
    assert_eq!(proxy.requests()[0].status, 407);
    assert!(!all_logs().contains(PROXY_PASSWORD));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_407_on_the_directory_becomes_a_lookup_failed_verdict_about_the_proxy() {
    logs();
    let ca = test_ca("dir-407");
    let world = World::start_with(WorldOptions::tls(&ca.server))
        .await
        .expect("world");
    let proxy = SimProxy::start().await.expect("proxy");
    proxy.require_basic(PROXY_USER, "the-right-one");
    let mut config = world.config(&world.sqlite_url("bot")).expect("config");
    // The directory is named `localhost` (its certificate covers it) so that NO_PROXY can send
    // Slack (127.0.0.1) direct while the directory goes to the refusing proxy.
    for ec in config.environments.values_mut() {
        let mut url = ec.xo_url.clone().into_url();
        url.set_host(Some("localhost")).expect("host");
        ec.xo_url = BaseUrl::new(url).expect("a base URL");
    }
    let secrets = secrets_with(
        &world,
        &[
            ("SSL_CERT_FILE", write_file(&world, "ca.pem", &ca.pem)),
            ("HTTPS_PROXY", proxy.url_with(PROXY_USER, PROXY_PASSWORD)),
            ("NO_PROXY", "127.0.0.1".to_string()),
        ],
    );
    let bot = start_bot(&world, config, secrets)
        .await
        .expect("the bot starts");
    let loc = world.scenario(VerdictCode::ApiKeyInvalid, 0);
    let v = check(&world, &loc, 1).await;
    assert_eq!(world::verdict_code(&v), Some(VerdictCode::LookupFailed));
    let shown = world::render_message(&v);
    assert!(
        shown.contains(&format!(
            "the proxy {} refused to open a tunnel to localhost with 407 Proxy Authentication Required: check the user and password in HTTPS_PROXY",
            proxy.url()
        )),
        "{shown}"
    );
    assert!(!shown.contains(PROXY_PASSWORD), "{shown}");
    assert!(world.jenkins.triggers().is_empty(), "a build was triggered");
    assert!(proxy.requests().iter().all(|r| r.status == 407));
    bot.stop().await;
    assert!(!all_logs().contains(PROXY_PASSWORD));
}

fn base64_encode(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jenkins_behind_an_untrusted_certificate_says_so_at_once_without_retrying() {
    use linkbot::domain::{Carrier, LocationId, Tugboat};
    use linkbot::jenkins::{BuildParams, JenkinsClient, PollPolicy};
    let unknown = test_ca("jenkins");
    let job = [
        "Containers-Runtime",
        "armada-cruiser-automated-recovery",
        "armada-ha-master-get-info",
    ];
    let sim = linkbot::sim::jenkins::start_with_tls(&job, Some(unknown.server.clone())).await;
    let metrics = linkbot::metrics::Metrics::new();
    let client = JenkinsClient::new(
        BaseUrl::new(sim.base_url()).expect("a base URL"),
        job.iter().map(|s| s.to_string()).collect(),
        None,
        None,
        PollPolicy {
            min: Duration::from_millis(20),
            max: Duration::from_millis(200),
        },
        metrics.clone(),
        &Net::direct(),
    )
    .expect("client");
    let params = BuildParams {
        branch: "master".into(),
        env_branch: "master".into(),
        cluster_id: LocationId::parse("c1hk4ek107l5au5mq8hg").expect("location"),
        tugboat: Tugboat::parse("prod-wdc04.carrier107").expect("tugboat"),
        carrier: Carrier::parse("prod-wdc04-carrier2").expect("carrier"),
    };
    let e = tokio::time::timeout(WAIT, client.trigger(&params))
        .await
        .expect("trigger answers in time")
        .expect_err("an untrusted certificate must fail");
    assert!(e.user_message().contains(UNTRUSTED), "{}", e.user_message());
    // One attempt: a certificate problem is not retried (each retry counts one more).
    let attempts = metrics
        .jenkins_calls
        .get_or_create(&linkbot::metrics::CallLabel {
            method: "trigger".into(),
            outcome: "transport".into(),
        })
        .get();
    assert_eq!(attempts, 1);
    assert!(sim.triggers().is_empty());
}
