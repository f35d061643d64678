//! The `linkbot` binary from a terminal: `check` end to end against the simulated directory,
//! Jenkins and IAM for every verdict, `diagnose` on artifact folders, `config check`, and
//! clear refusals. Each test runs the real binary as a subprocess; the simulators run here.

use linkbot::diagnosis::verdict::VerdictCode;
use linkbot::sim::world::{self, World};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_linkbot");
const LIMIT: Duration = Duration::from_secs(60);

pub(crate) async fn linkbot(args: &[&str], env: &[(&str, String)]) -> Output {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(args)
        .env_remove("RUST_LOG")
        .env_remove("LINKBOT_LOG_FORMAT");
    for var in linkbot::config::SECRET_VARS {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.kill_on_drop(true);
    tokio::time::timeout(LIMIT, cmd.output())
        .await
        .expect("linkbot did not finish in time")
        .expect("linkbot could not be run")
}

fn write_config(world: &World) -> PathBuf {
    let path = world.dir().join("bot.toml");
    std::fs::write(&path, world.config_toml(&world.sqlite_url("cli"))).unwrap();
    path
}

pub(crate) fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reaches_every_verdict_from_a_terminal() {
    let world = World::start().await.unwrap();
    let config = write_config(&world);
    let config = config.to_str().unwrap();
    let env = world.secret_env();
    for verdict in VerdictCode::ALL {
        // iam_unreachable needs IAM down; every other verdict needs it up.
        world
            .iam
            .set_unavailable(verdict == VerdictCode::IamUnreachable);
        let loc = world.scenario(verdict, 1);
        let out = linkbot(
            &[
                "check",
                loc.as_str(),
                "--config",
                config,
                "--format",
                "json",
            ],
            &env,
        )
        .await;
        assert!(out.status.success(), "{verdict}: {}", text(&out));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{verdict}: {e}: {}", text(&out)));
        assert_eq!(json["verdict"], verdict.as_str(), "{}", text(&out));
        assert_eq!(json["location"], loc.as_str());
        assert_eq!(json["environment"], "prod");
        assert!(json["steps"].as_array().is_some_and(|s| !s.is_empty()));
        for secret in world.all_secret_values() {
            assert!(
                !text(&out).contains(&secret),
                "{verdict}: a secret reached the terminal"
            );
        }
        match verdict {
            VerdictCode::RegionMismatch => {
                assert_eq!(json["region_expected"], "us-east");
                assert_eq!(json["region_found"], "us-south");
            }
            VerdictCode::ApiKeyInvalid => assert_eq!(json["confirmed"], true),
            VerdictCode::JobFailed => assert!(json["console_tail"]
                .as_str()
                .unwrap_or("")
                .contains("Finished: FAILURE")),
            VerdictCode::UnknownLocation | VerdictCode::LookupFailed => {
                assert!(json["build_url"].is_null())
            }
            _ => assert!(json["build_url"]
                .as_str()
                .unwrap_or("")
                .contains("/job/armada-ha-master-get-info/")),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jenkins_gets_exactly_the_parameters_the_runbook_names() {
    let world = World::start().await.unwrap();
    let config = write_config(&world);
    let loc = world.scenario(VerdictCode::RegionMismatch, 2);
    let out = linkbot(
        &["check", loc.as_str(), "--config", config.to_str().unwrap()],
        &world.secret_env(),
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("region_mismatch")
            && stdout.contains("us-south")
            && stdout.contains("us-east"),
        "{stdout}"
    );
    let triggers = world.jenkins.triggers();
    assert_eq!(triggers.len(), 1);
    let params: Vec<(&str, &str)> = triggers[0]
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        params,
        vec![
            ("BRANCH", "master"),
            ("CARRIER_NAME", "prod-wdc04-carrier2"),
            ("CLUSTERID", loc.as_str()),
            ("ENV_Branch", "master"),
            ("TUGBOAT", "prod-wdc04-carrier107"),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_refuses_bad_input_with_one_line_and_triggers_nothing() {
    let world = World::start().await.unwrap();
    let config = write_config(&world);
    let config = config.to_str().unwrap();
    let env = world.secret_env();
    let cases: [(&[&str], &str); 4] = [
        (
            &["check", "not-a-location", "--config", config],
            "20 characters",
        ),
        (
            &[
                "check",
                "c1hk4ek107l5au5mq8hg",
                "--env",
                "dev",
                "--config",
                config,
            ],
            "prod",
        ),
        (
            &[
                "check",
                "c1hk4ek107l5au5mq8hg",
                "--config",
                "/nonexistent/bot.toml",
            ],
            "cannot read",
        ),
        (
            &["diagnose", "--dir", "/nonexistent", "--region", "us-east"],
            "not a folder",
        ),
    ];
    for (args, expect) in cases {
        let out = linkbot(args, &env).await;
        assert!(!out.status.success(), "{args:?} should fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expect), "{args:?}: {err}");
        assert_eq!(
            err.trim().lines().count(),
            1,
            "{args:?}: one line, got {err}"
        );
    }
    assert!(world.jenkins.triggers().is_empty());
    assert!(world.directory.requests().is_empty());
}

fn fixtures(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/artifacts")
        .join(name)
}

#[tokio::test]
async fn diagnose_reads_downloaded_artifacts() {
    let cases = [
        ("key-present-region-ok", "us-east", "api_key_invalid"),
        ("key-missing", "us-east", "config_missing"),
        ("region-wrong", "us-east", "region_mismatch"),
        ("key-present-region-ok", "eu-de", "region_mismatch"),
    ];
    for (dir, region, verdict) in cases {
        let d = fixtures(dir);
        let out = linkbot(
            &[
                "diagnose",
                "--dir",
                d.to_str().unwrap(),
                "--region",
                region,
                "--format",
                "json",
            ],
            &[],
        )
        .await;
        assert!(out.status.success(), "{}", text(&out));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(json["verdict"], verdict, "{dir} {region}");
        // The fixtures hold the same key as the simulated world: it must never be printed.
        assert!(
            !text(&out).contains(world::IAM_KEY),
            "{dir}: the key was printed"
        );
    }
    // A folder with only one of the two files: artifact_missing, still a verdict.
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixtures("key-missing").join("connector_getConnectorAPIKey.log"),
        tmp.path().join("connector_getConnectorAPIKey.log"),
    )
    .unwrap();
    let out = linkbot(
        &[
            "diagnose",
            "--dir",
            tmp.path().to_str().unwrap(),
            "--region",
            "us-east",
        ],
        &[],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("artifact_missing"));
}

#[tokio::test]
async fn config_check_names_the_line_and_key() {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("bot.toml");
    let out = linkbot(&["config", "check", shipped.to_str().unwrap()], &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok"));

    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bot.toml");
    std::fs::write(&bad, "[slack]\nchannels = [\"C0ONCALL\"]\n\n[environments.prod]\nxo_url = \"nope\"\njenkins_url = \"http://127.0.0.1:1\"\n").unwrap();
    let out = linkbot(&["config", "check", bad.to_str().unwrap()], &[]).await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bot.toml:5:") && err.contains("environments.prod.xo_url"),
        "{err}"
    );
}

#[tokio::test]
async fn every_subcommand_has_help() {
    for sub in [
        "run", "check", "diagnose", "demo", "config", "audit", "status",
    ] {
        let out = linkbot(&[sub, "--help"], &[]).await;
        assert!(out.status.success(), "{sub}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Usage"),
            "{sub}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_surprises_end_in_lookup_failed_with_the_reason() {
    use linkbot::sim::directory::ClusterAnswer;
    let world = World::start().await.unwrap();
    let config = write_config(&world);
    let config = config.to_str().unwrap();
    world.directory.set_carriers(
        "dal10",
        &[
            ("prod-dal10-carrier1", "maintenance"),
            ("prod-dal10-carrier2", "draining"),
        ],
    );
    world.directory.set_carriers_raw("tok02", 500, "oops");
    let cases: [(&str, ClusterAnswer, &str); 5] = [
        (
            "c0000000000000000001",
            ClusterAnswer::Json("prod-xyz01.carrier1".into()),
            "[regions]",
        ),
        (
            "c0000000000000000002",
            ClusterAnswer::Json("prod-dal10.carrier4".into()),
            "No carrier in `dal10` is available",
        ),
        (
            "c0000000000000000003",
            ClusterAnswer::Json("prod-tok02.carrier2".into()),
            "HTTP 500",
        ),
        (
            "c0000000000000000004",
            ClusterAnswer::Raw(200, "<html>maintenance</html>".into()),
            "ActualDatacenterCluster",
        ),
        (
            "c0000000000000000005",
            ClusterAnswer::Json("not a tugboat".into()),
            "not a tugboat",
        ),
    ];
    for (loc, answer, expect) in cases {
        world.directory.set_cluster(loc, answer);
        let out = linkbot(
            &["check", loc, "--config", config, "--format", "json"],
            &world.secret_env(),
        )
        .await;
        assert!(out.status.success(), "{loc}: {}", text(&out));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(json["verdict"], "lookup_failed", "{loc}");
        assert!(
            json["summary"].as_str().unwrap_or("").contains(expect),
            "{loc}: {}",
            json["summary"]
        );
    }
    assert!(
        world.jenkins.triggers().is_empty(),
        "nothing may be triggered after a failed lookup"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_exits_non_zero_with_one_line_when_slack_refuses_a_token() {
    let world = World::start().await.unwrap();
    let config = write_config(&world);
    let config = config.to_str().unwrap();
    // The app token refused by apps.connections.open (after start), the bot token by auth.test.
    for (var, wrong, method) in [
        (
            "SLACK_APP_TOKEN",
            "xapp-1-refused-app-token",
            "apps.connections.open",
        ),
        ("SLACK_BOT_TOKEN", "xoxb-refused-bot-token", "auth.test"),
    ] {
        let env: Vec<(&str, String)> = world
            .secret_env()
            .into_iter()
            .map(|(k, v)| {
                if k == var {
                    (k, wrong.to_string())
                } else {
                    (k, v)
                }
            })
            .collect();
        // `linkbot` bounds the run by LIMIT: a process that never exits fails the test.
        let out = linkbot(&["run", "--config", config], &env).await;
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(!out.status.success(), "{var}: exited 0:\n{stderr}");
        let last = stderr.lines().last().unwrap_or("");
        assert!(
            last.starts_with("linkbot: ")
                && last.contains(method)
                && last.contains("invalid_auth")
                && last.contains(var),
            "{var}: the last line does not name the cause: {last:?}\n{stderr}"
        );
        for secret in world
            .all_secret_values()
            .iter()
            .map(String::as_str)
            .chain([wrong])
        {
            assert!(
                !text(&out).contains(secret),
                "{var}: a token reached the terminal"
            );
        }
    }
}

#[tokio::test]
async fn diagnose_refuses_what_is_not_a_regular_file_and_caps_the_size() {
    let configmap = fixtures("key-missing").join("connector_sl_configMap.log");
    let run = |dir: PathBuf| async move {
        linkbot(
            &[
                "diagnose",
                "--dir",
                dir.to_str().unwrap(),
                "--region",
                "us-east",
            ],
            &[],
        )
        .await
    };
    // A FIFO with no writer: opening it would block forever.
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(&configmap, tmp.path().join("connector_sl_configMap.log")).unwrap();
    let fifo = tmp.path().join("connector_getConnectorAPIKey.log");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let out = run(tmp.path().to_path_buf()).await;
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("connector_getConnectorAPIKey.log")
            && text(&out).contains("not a regular file"),
        "{}",
        text(&out)
    );

    // A folder in place of the file.
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(&configmap, tmp.path().join("connector_sl_configMap.log")).unwrap();
    std::fs::create_dir(tmp.path().join("connector_getConnectorAPIKey.log")).unwrap();
    let out = run(tmp.path().to_path_buf()).await;
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("not a regular file"), "{}", text(&out));

    // artifact_max_bytes (4 MiB, as for the Jenkins download): at the cap it is read, one byte
    // more is refused.
    let cap = linkbot::config::DEFAULT_ARTIFACT_MAX_BYTES as usize;
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(&configmap, tmp.path().join("connector_sl_configMap.log")).unwrap();
    let key_log = tmp.path().join("connector_getConnectorAPIKey.log");
    std::fs::write(&key_log, vec![b'x'; cap]).unwrap();
    let out = run(tmp.path().to_path_buf()).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("config_missing"),
        "{}",
        text(&out)
    );
    std::fs::write(&key_log, vec![b'x'; cap + 1]).unwrap();
    let out = run(tmp.path().to_path_buf()).await;
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("larger than {cap} bytes")),
        "{}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_url_with_credentials_is_refused_and_never_logged() {
    const PASSWORD: &str = "Pa55w0rdInUrl";
    let world = World::start().await.unwrap();
    let good = world.config_toml(&world.sqlite_url("cli"));
    let mut env = world.secret_env();
    env.push(("RUST_LOG", "trace".to_string()));
    // Each URL key of bot.toml, given credentials in turn.
    let urls: Vec<(String, &str)> = good
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(" = ")?;
            let v = v.trim_matches('"');
            (v.starts_with("http://") && k != "listen").then(|| (l.to_string(), k))
        })
        .map(|(line, k)| (line, if k == "url" { "url" } else { k }))
        .collect();
    assert!(urls.len() >= 6, "{urls:?}");
    let dir = tempfile::tempdir().unwrap();
    for (line, key) in &urls {
        let with_creds = line.replace("http://", &format!("http://linkbot:{PASSWORD}@"));
        let path = dir.path().join("bot.toml");
        std::fs::write(&path, good.replacen(line, &with_creds, 1)).unwrap();
        for args in [
            vec!["run", "--config", path.to_str().unwrap()],
            vec![
                "check",
                "c1hk4ek107l5au5mq8hg",
                "--config",
                path.to_str().unwrap(),
            ],
            vec!["config", "check", path.to_str().unwrap()],
        ] {
            let out = linkbot(&args, &env).await;
            let all = text(&out);
            assert!(!out.status.success(), "{args:?} {line}: {all}");
            assert!(
                all.contains("holds credentials") && all.contains(key),
                "{args:?} {line}: {all}"
            );
            assert!(
                !all.contains(PASSWORD),
                "{args:?} {line}: the password was printed: {all}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_timeline_prints_one_incident_in_order_as_text_and_json() {
    use linkbot::domain::Environment;
    use linkbot::store::{CheckKey, Fired, MessageRef};
    let world = World::start().await.expect("world");
    let config = write_config(&world);
    let loc = world::location_for(VerdictCode::ApiKeyInvalid, 0);
    let key = CheckKey {
        environment: Environment::Prod,
        location: loc.clone(),
    };
    {
        let store = linkbot::store::open(&world.sqlite_url("cli"))
            .await
            .expect("store");
        let alert = |ts: &str| MessageRef {
            channel: "C0ALERTS".into(),
            ts: ts.into(),
        };
        let fired_at = chrono::Utc::now() - chrono::Duration::minutes(5);
        let Fired::Opened(incident) = store
            .fire_incident(&key, &alert("1.1"), fired_at)
            .await
            .expect("fire")
        else {
            panic!("opened");
        };
        store
            .incident_verdict(incident.id, "api_key_invalid")
            .await
            .expect("verdict");
        store
            .fire_incident(&key, &alert("1.2"), chrono::Utc::now())
            .await
            .expect("repeat");
        store
            .incident_paged(&key, "dk-1", "U0BOB")
            .await
            .expect("page");
        store
            .incident_fixed(incident.id, "was api_key_invalid, now api_key_accepted")
            .await
            .expect("fixed");
        store
            .resolve_incident(&key, &alert("1.3"))
            .await
            .expect("resolve");
        store.close().await;
    }
    let cfg = config.to_str().expect("utf-8 path");
    let env = world.secret_env();
    let args = [
        "audit",
        "--config",
        cfg,
        "--location",
        loc.as_str(),
        "--timeline",
    ];
    let out = linkbot(&args, &env).await;
    assert!(out.status.success(), "{}", text(&out));
    let shown = text(&out);
    for kind in ["fired", "verdict", "repeat", "page", "fixed", "resolved"] {
        assert!(shown.contains(kind), "{kind} missing:\n{shown}");
    }
    assert!(shown.contains("+FIRED"), "{shown}");
    let mut json_args = args.to_vec();
    json_args.extend(["--format", "json"]);
    let out = linkbot(&json_args, &env).await;
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    let kinds: Vec<&str> = v["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert_eq!(
        kinds,
        ["fired", "verdict", "repeat", "page", "fixed", "resolved"]
    );
    assert_eq!(v["events"][0]["since_fired_ms"], 0);
    assert!(v["events"][5]["since_fired_ms"].as_i64().expect("ms") >= 299_000);
    assert_eq!(v["incident"]["pagerduty_dedup_key"], "dk-1");
    // A location with no incident says so and fails.
    let other = world::location_for(VerdictCode::ConfigMissing, 0);
    let out = linkbot(
        &[
            "audit",
            "--config",
            cfg,
            "--location",
            other.as_str(),
            "--timeline",
        ],
        &env,
    )
    .await;
    assert!(!out.status.success());
    assert!(text(&out).contains("No incident"), "{}", text(&out));
}
