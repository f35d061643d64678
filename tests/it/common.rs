//! Test support shared by the integration tests: a PostgreSQL schema of its own per test, the
//! one log capture of the test binary, a test bot's options, and reading its `/metrics`.
//!
//! All integration tests run in one process (`tests/it`), and a process has one global tracing
//! subscriber: [`logs`] installs it, once, and every test that searches logs for what must never
//! be there (secrets, proxy passwords) reads the same buffer, which holds the logs of every test
//! that ran so far. Nothing here may start a bot or a simulator.

use sqlx::Connection;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// What the capture keeps: everything at debug, where a credential in a URL or header would
/// surface (slack-morphism, reqwest and hyper log requests at debug).
const CAPTURE_FILTER: &str = "debug";

/// The test binary's log buffer, every test's lines, installing the subscriber on first use.
/// With `LINKBOT_TEST_LOG=1` the lines are also printed (shown for failing tests).
pub fn logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = buf.clone();
        let echo = std::env::var("LINKBOT_TEST_LOG").as_deref() == Ok("1");
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(CAPTURE_FILTER))
            .with_ansi(false)
            .with_writer(move || LogWriter {
                buf: writer.clone(),
                echo,
            })
            .finish();
        tracing::subscriber::set_global_default(subscriber)
            .expect("another global tracing subscriber was installed: use common::logs()");
        buf
    })
}

/// Everything logged so far by every test in this binary.
/// Never empty: a search of an empty capture would pass for the wrong reason.
pub fn all_logs() -> String {
    let text =
        String::from_utf8_lossy(&logs().lock().unwrap_or_else(|e| e.into_inner())).into_owned();
    assert!(
        text.contains("linkbot"),
        "the log capture holds no line of linkbot's: is another subscriber installed?"
    );
    text
}

struct LogWriter {
    buf: Arc<Mutex<Vec<u8>>>,
    echo: bool,
}

impl Write for LogWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        if self.echo {
            // `print!` goes through the test harness's capture: shown only for failing tests.
            print!("{}", String::from_utf8_lossy(b));
        }
        self.buf
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A fresh schema in `LINKBOT_TEST_DATABASE_URL`, and a URL whose `search_path` points at it.
pub struct TestSchema {
    /// The database URL with `options=-c search_path=<schema>` added.
    pub url: String,
    schema: String,
    admin: sqlx::PgConnection,
}

/// Creates a schema for one test. `None` when `LINKBOT_TEST_DATABASE_URL` is not set (the test
/// is skipped), unless `LINKBOT_REQUIRE_POSTGRES=1`, which makes that a failure.
pub async fn postgres_schema(wait: Duration) -> Option<TestSchema> {
    let Ok(base) = std::env::var("LINKBOT_TEST_DATABASE_URL") else {
        if std::env::var("LINKBOT_REQUIRE_POSTGRES").as_deref() == Ok("1") {
            panic!("LINKBOT_REQUIRE_POSTGRES=1 but LINKBOT_TEST_DATABASE_URL is not set: point it at a PostgreSQL database, e.g. postgres://postgres@127.0.0.1:5432/test");
        }
        eprintln!("skipped: LINKBOT_TEST_DATABASE_URL not set");
        return None;
    };
    let schema = format!("linkbot_test_{}", uuid::Uuid::new_v4().simple());
    let admin = async {
        let mut conn = sqlx::PgConnection::connect(&base).await?;
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&mut conn)
            .await?;
        Ok::<_, sqlx::Error>(conn)
    };
    let admin = tokio::time::timeout(wait, admin)
        .await
        .expect("connecting to LINKBOT_TEST_DATABASE_URL timed out")
        .expect("cannot create a test schema in LINKBOT_TEST_DATABASE_URL");
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
    Some(TestSchema { url, schema, admin })
}

impl TestSchema {
    /// Drops the schema and everything in it.
    pub async fn drop_schema(mut self, wait: Duration) {
        let sql = format!("DROP SCHEMA {} CASCADE", self.schema);
        tokio::time::timeout(wait, sqlx::query(&sql).execute(&mut self.admin))
            .await
            .expect("dropping the test schema timed out")
            .expect("dropping the test schema");
    }
}

/// The options of a bot under test against the simulated world: a 10 s lease, orphans looked
/// for every 2 s, 5 s to shut down, the ops server on an ephemeral loopback port, and Slack
/// unpaced (the simulator answers at once; the edit-budget tests set `slack_edits`).
pub fn bot_options(instance: &str) -> linkbot::app::Options {
    linkbot::app::Options {
        lease: std::time::Duration::from_secs(10),
        resume_every: std::time::Duration::from_secs(2),
        shutdown_bound: std::time::Duration::from_secs(5),
        listen: Some(([127, 0, 0, 1], 0).into()),
        instance: instance.into(),
        pace_slack: false,
        slack_edits: None,
    }
}

/// [`bot_options`] for tests that kill, restart or break a bot: orphans are looked for every
/// 200 ms and shutdown may take 6 s.
pub fn restart_options(instance: &str) -> linkbot::app::Options {
    linkbot::app::Options {
        resume_every: std::time::Duration::from_millis(200),
        shutdown_bound: std::time::Duration::from_secs(6),
        ..bot_options(instance)
    }
}

/// The sum of the `name{labels} value` samples of a Prometheus exposition whose labels include
/// every one of `labels` (`environment="prod"`), or 0.
pub fn metric(exposition: &str, name: &str, labels: &[&str]) -> f64 {
    exposition
        .lines()
        .filter(|l| l.starts_with(name) && labels.iter().all(|want| l.contains(want)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Scrapes `http://{ops}/metrics` as Prometheus would, until `done` holds of the exposition or
/// `wait` passes; returns the last exposition either way (the caller asserts on it).
pub async fn scrape_until(
    ops: std::net::SocketAddr,
    wait: Duration,
    done: impl Fn(&str) -> bool,
) -> String {
    let url = format!("http://{ops}/metrics");
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let body = match tokio::time::timeout(wait, reqwest::get(&url)).await {
            Ok(Ok(resp)) => {
                assert_eq!(resp.status().as_u16(), 200, "{url} did not answer 200");
                resp.text().await.unwrap_or_default()
            }
            Ok(Err(e)) => panic!("{url} did not answer: {e}"),
            Err(_) => panic!("{url} did not answer within {wait:?}"),
        };
        if done(&body) || tokio::time::Instant::now() >= deadline {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
