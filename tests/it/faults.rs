//! Fault injection, end to end: the real bot ([`linkbot::app::start`]) and the real binary
//! against the simulated world ([`World`]) on loopback, with one dependency broken on purpose.
//!
//! - **PostgreSQL restarts mid-check**: a private PostgreSQL server (initdb into a temporary
//!   folder, `pg_ctl` from `/usr/lib/postgresql/*/bin`, run as the `postgres` user when we are
//!   root) is stopped with `-m immediate` while a Jenkins build runs and started again once the
//!   build is over. The check still ends with its verdict in its thread, an envelope pushed
//!   during the outage is acked and answered, and `/readyz` says 503 during the outage and 200
//!   after. Without the binaries the test says why and is skipped, or fails with
//!   `LINKBOT_REQUIRE_POSTGRES=1`.
//! - **SQLite on a full disk / a read-only file system**: the store lives on a tiny tmpfs
//!   mounted for the test (we are root in the test sandbox; without `mount` the test says why
//!   and is skipped). Root ignores permission bits, so "read-only" is a read-only remount of that
//!   tmpfs (EROFS), which is what a read-only volume gives the bot in production.
//! - **Jenkins answers 502 for a while**: the simulated Jenkins' outage window (a reverse proxy's
//!   502 to every request) is turned on mid-build and before the trigger. Mid-build, the bot
//!   keeps polling through it, backing off, for the outage budget (30 × `poll_interval_min`),
//!   then answers `job_failed` naming Jenkins and the 502, after a bounded number of requests
//!   (counted in the simulator); a blip shorter than the budget (two failed polls) is ridden out
//!   and the check ends with its diagnosis. "For a minute" needs no minute: the budget follows
//!   `poll_interval_min`, which in-process runs of the simulated world set to 25 ms. A trigger
//!   answered 502 is never repeated.
//!
//! The numbers measured (outage to `/readyz` 503, restart to 200 and to the verdict, requests
//! made) are printed; run with `--nocapture` to see them. Nothing here asserts a duration. No
//! sleep is used as synchronisation: every wait is on a condition, bounded by a timeout.

use linkbot::app::{self, Options, RunningBot};
use linkbot::diagnosis::verdict::VerdictCode;
use linkbot::domain::LocationId;
use linkbot::sim::slack::{self as fake, SimMessage};
use linkbot::sim::world::{self, World, ENGINEER, ONCALL_CHANNEL};
use linkbot::store::{AuditKind, Store};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long any one condition is waited for.
const WAIT: Duration = Duration::from_secs(20);
/// How long a whole test may take.
const TEST_BOUND: Duration = Duration::from_secs(120);

// ---- helpers -----------------------------------------------------------------------------

/// Runs a test body bounded in time.
async fn bounded<F: Future<Output = ()>>(body: F) {
    crate::common::logs();
    if tokio::time::timeout(TEST_BOUND, body).await.is_err() {
        panic!("test did not finish within {TEST_BOUND:?}");
    }
}

fn options(instance: &str) -> Options {
    crate::common::restart_options(instance)
}

/// Starts a bot on `store_url` and waits until both its Socket Mode connections are up.
async fn start_bot(world: &World, store_url: &str) -> RunningBot {
    let config = Arc::new(
        world
            .config(store_url)
            .expect("the world's bot.toml parses"),
    );
    let bot = app::start(config, world.secrets(), options("faults"))
        .await
        .unwrap_or_else(|e| panic!("the bot did not start: {e:#}"));
    assert!(
        bot.wait_connected(2, WAIT).await,
        "the bot did not open its Socket Mode connections"
    );
    bot
}

/// `@linkbot check <loc>` by an engineer in the on-call channel; returns (ts, envelope id).
async fn mention(world: &World, loc: &LocationId, n: u32) -> (String, String) {
    let ts = World::user_ts(n);
    let text = format!("<@{}> check {loc}", fake::SIM_BOT_USER_ID);
    let envelope = world
        .slack
        .push(fake::app_mention(ONCALL_CHANNEL, ENGINEER, &text, &ts))
        .await
        .expect("the mention reaches a bot");
    (ts, envelope)
}

/// The bot's (non-ephemeral) messages in `thread`.
fn bot_messages(world: &World, thread: &str) -> Vec<SimMessage> {
    world
        .thread(ONCALL_CHANNEL, thread)
        .into_iter()
        .filter(|m| m.ephemeral_to.is_none())
        .collect()
}

/// Waits until the thread's progress message shows the Jenkins build running.
async fn wait_build_running(world: &World, thread: &str) {
    let ok = world
        .slack
        .wait_until(
            |s| {
                s.thread(ONCALL_CHANNEL, thread)
                    .into_iter()
                    .any(|m| world::render_message(m).contains("Build #"))
            },
            WAIT,
        )
        .await;
    assert!(
        ok,
        "the build never showed as running: {:#?}",
        world.thread(ONCALL_CHANNEL, thread)
    );
}

/// Waits for the verdict in `thread`; returns the one bot message there, which must be it.
async fn wait_verdict(world: &World, thread: &str) -> SimMessage {
    if world
        .wait_verdicts(ONCALL_CHANNEL, thread, 1, WAIT)
        .await
        .is_none()
    {
        panic!(
            "no verdict in thread {thread} within {WAIT:?}: {:#?}",
            world.thread(ONCALL_CHANNEL, thread)
        );
    }
    let msgs = bot_messages(world, thread);
    assert_eq!(msgs.len(), 1, "one bot message in the thread: {msgs:#?}");
    msgs[0].clone()
}

/// Waits until some bot message in `thread` satisfies `pred`; returns it.
async fn wait_message(
    world: &World,
    thread: &str,
    what: &str,
    pred: impl Fn(&SimMessage) -> bool,
) -> SimMessage {
    let ok = world
        .slack
        .wait_until(
            |s| s.thread(ONCALL_CHANNEL, thread).into_iter().any(&pred),
            WAIT,
        )
        .await;
    assert!(
        ok,
        "{what}: not in thread {thread} within {WAIT:?}: {:#?}",
        world.thread(ONCALL_CHANNEL, thread)
    );
    bot_messages(world, thread)
        .into_iter()
        .find(|m| pred(m))
        .expect("the message just seen")
}

/// Every envelope pushed so far is acked (waited for, bounded).
async fn assert_all_acked(world: &World) {
    let ok = world
        .slack
        .wait_until(
            |s| {
                !s.pushed().is_empty()
                    && s.pushed()
                        .iter()
                        .all(|id| s.acks().iter().any(|a| &a.envelope_id == id))
            },
            WAIT,
        )
        .await;
    assert!(ok, "an envelope was never acked: {:#?}", world.slack.acks());
}

/// The audit log has the check of `loc` exactly once, with verdict `want`.
async fn assert_audited_once(store: &Arc<dyn Store>, loc: &LocationId, want: VerdictCode) {
    let entries = store
        .audit(None, Some(loc), 100)
        .await
        .expect("the audit log reads");
    let checks: Vec<_> = entries
        .iter()
        .filter(|e| e.kind == AuditKind::Check)
        .collect();
    assert_eq!(checks.len(), 1, "the check is audited once: {entries:#?}");
    assert_eq!(checks[0].verdict.as_deref(), Some(want.as_str()));
}

/// Polls `cond` every 20 ms until it holds; fails the test after `wait`.
async fn poll(wait: Duration, what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + wait;
    while !cond() {
        assert!(Instant::now() < deadline, "{what}: not within {wait:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls the store's in-flight checks until `pred` holds (bounded by [`WAIT`]).
async fn wait_store(
    store: &Arc<dyn Store>,
    what: &str,
    pred: impl Fn(&[linkbot::store::InFlight]) -> bool,
) {
    let deadline = Instant::now() + WAIT;
    loop {
        let running = store.in_flight().await;
        if running.as_deref().is_ok_and(&pred) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {WAIT:?}; last: {running:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `GET url` → (status, body).
async fn get(url: &str) -> Result<(u16, String), reqwest::Error> {
    let resp = reqwest::Client::new()
        .get(url)
        .timeout(Duration::from_secs(5))
        .send()
        .await?;
    let status = resp.status().as_u16();
    Ok((status, resp.text().await?))
}

/// Polls `url` until `pred(status, body)` holds (bounded by `wait`); returns the last answer.
async fn poll_until(url: &str, wait: Duration, pred: impl Fn(u16, &str) -> bool) -> (u16, String) {
    let deadline = Instant::now() + wait;
    loop {
        let answer = get(url).await;
        if let Ok((status, body)) = &answer {
            if pred(*status, body) {
                return (*status, body.clone());
            }
        }
        assert!(
            Instant::now() < deadline,
            "{url} never gave the expected answer within {wait:?}; last: {answer:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Skips the test with a reason, or fails it when `LINKBOT_REQUIRE_<what>=1` asks for it.
fn skip(require_var: &str, why: &str) {
    if std::env::var(require_var).as_deref() == Ok("1") {
        panic!("{require_var}=1 but {why}");
    }
    eprintln!("skipped: {why}");
}

// ---- Jenkins answering 502 -----------------------------------------------------------------

/// The retries the Jenkins client makes for one idempotent request, plus the first attempt.
const ATTEMPTS_PER_REQUEST: u64 = linkbot::jenkins::MAX_RETRIES as u64 + 1;

/// The poll policy of the simulated world's in-process bot (`World::config`).
fn world_policy(world: &World) -> linkbot::jenkins::PollPolicy {
    let config = world
        .config("sqlite::memory:")
        .expect("the world's bot.toml parses");
    linkbot::jenkins::PollPolicy::with_min(config.check.poll_interval_min)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jenkins_502_mid_build_is_retried_a_bounded_number_of_times_then_job_failed() {
    bounded(async {
        let world = World::start().await.expect("the simulated world starts");
        let loc = world.scenario_with(
            VerdictCode::ApiKeyInvalid,
            1,
            World::timing(Duration::from_secs(2)),
        );
        let bot = start_bot(&world, &world.sqlite_url("jenkins502")).await;

        let (thread, _) = mention(&world, &loc, 1).await;
        wait_build_running(&world, &thread).await;
        let before = world.jenkins.request_count();
        let outage = Instant::now();
        world.jenkins.start_outage(502);

        let verdict = wait_verdict(&world, &thread).await;
        let to_verdict = outage.elapsed();
        let answered = world.jenkins.outage_answers();
        world.jenkins.end_outage();
        let text = world::render_message(&verdict);
        assert_eq!(
            world::verdict_code(&verdict),
            Some(VerdictCode::JobFailed),
            "{text}"
        );
        assert!(
            text.contains("Jenkins") && text.contains("502"),
            "the reason names Jenkins and the 502: {text}"
        );
        // The build still runs in Jenkins: the verdict links it.
        assert!(
            text.contains("/job/armada-ha-master-get-info/1/"),
            "the verdict links the build it could not follow: {text}"
        );
        // It polled through the outage for its budget, then gave up: at least the minimum
        // number of failed polls (each with the client's retries), and not a poll loop: the
        // waits between failed polls start at `min` and double, so the budget of 30 × `min`
        // holds fewer than 30 + MIN_FAILED_POLLS polls.
        let policy = world_policy(&world);
        let min_polls = u64::from(linkbot::jenkins::MIN_FAILED_POLLS);
        assert!(
            answered >= min_polls * ATTEMPTS_PER_REQUEST,
            "gave up after {answered} requests, before {min_polls} failed polls"
        );
        assert!(
            answered <= (30 + min_polls) * ATTEMPTS_PER_REQUEST,
            "{answered} requests during the outage: {:#?}",
            &world.jenkins.requests()[before as usize..]
        );
        assert!(
            to_verdict >= policy.outage_budget(),
            "job_failed {to_verdict:?} after the outage began, before the budget of {:?}",
            policy.outage_budget()
        );
        assert!(
            text.contains("polls in a row"),
            "the reason says the polls kept failing: {text}"
        );

        // Once Jenkins is back, asking again runs a new build and gets the diagnosis.
        let (again, _) = mention(&world, &loc, 2).await;
        let verdict = wait_verdict(&world, &again).await;
        assert_eq!(
            world::verdict_code(&verdict),
            Some(VerdictCode::ApiKeyInvalid)
        );
        assert_eq!(world.jenkins.triggers().len(), 2);

        bot.stop().await;
        // Stopped: nothing kept polling the dead Jenkins after the verdict.
        assert_eq!(world.jenkins.outage_answers(), answered);
        assert_all_acked(&world).await;
        println!(
            "jenkins 502 mid-build: {answered} requests answered 502, job_failed {to_verdict:?} after the outage began\n{text}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jenkins_blip_shorter_than_the_outage_budget_is_ridden_out() {
    bounded(async {
        let world = World::start().await.expect("the simulated world starts");
        let loc = world.scenario_with(
            VerdictCode::ApiKeyInvalid,
            1,
            World::timing(Duration::from_secs(2)),
        );
        let bot = start_bot(&world, &world.sqlite_url("jenkins-blip")).await;

        let (thread, _) = mention(&world, &loc, 1).await;
        wait_build_running(&world, &thread).await;
        // Two whole polls fail (each with the client's retries), then Jenkins is back: before
        // this change the first failed poll ended the check with job_failed.
        let blip = 2 * ATTEMPTS_PER_REQUEST;
        world.jenkins.start_outage_for(502, blip);

        let verdict = wait_verdict(&world, &thread).await;
        let text = world::render_message(&verdict);
        assert_eq!(
            world.jenkins.outage_answers(),
            blip,
            "the blip was seen whole"
        );
        assert_eq!(
            world::verdict_code(&verdict),
            Some(VerdictCode::ApiKeyInvalid),
            "a blip of {blip} requests answered 502 does not fail the check: {text}"
        );
        assert_eq!(world.jenkins.triggers().len(), 1, "no second build");
        bot.stop().await;
        assert_all_acked(&world).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jenkins_502_on_the_trigger_is_not_retried_and_answers_job_failed() {
    bounded(async {
        let world = World::start().await.expect("the simulated world starts");
        let loc = world.scenario(VerdictCode::ApiKeyInvalid, 1);
        let bot = start_bot(&world, &world.sqlite_url("trigger502")).await;
        world.jenkins.start_outage(502);

        let (thread, _) = mention(&world, &loc, 1).await;
        let verdict = wait_verdict(&world, &thread).await;
        let text = world::render_message(&verdict);
        assert_eq!(
            world::verdict_code(&verdict),
            Some(VerdictCode::JobFailed),
            "{text}"
        );
        assert!(
            text.contains("Jenkins") && text.contains("502"),
            "the reason names Jenkins and the 502: {text}"
        );
        bot.stop().await;
        // A POST that may have reached Jenkins is never repeated: a 502 from a proxy does not
        // say whether the build was queued, and two builds must never run for one check.
        assert_eq!(
            world.jenkins.outage_answers(),
            1,
            "{:#?}",
            world.jenkins.requests()
        );
        assert_eq!(world.jenkins.count("trigger"), 1);
        assert!(world.jenkins.triggers().is_empty());
        assert_all_acked(&world).await;
    })
    .await;
}

// ---- a private PostgreSQL server ----------------------------------------------------------

/// A PostgreSQL server of this test's own, in a temporary folder, on a free loopback port.
/// Stopped (immediately) and removed when dropped.
struct PrivatePostgres {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    as_postgres: bool,
}

impl PrivatePostgres {
    /// initdb + start. `Err` says why a server cannot be had here (no binaries, no `postgres`
    /// user while root); a failure of the tools themselves panics with their output.
    async fn start() -> Result<PrivatePostgres, String> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .map_err(|e| format!("no PostgreSQL binaries in /usr/lib/postgresql ({e})"))?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|b| b.join("pg_ctl").is_file() && b.join("initdb").is_file())
            .max()
            .ok_or("no /usr/lib/postgresql/*/bin with initdb and pg_ctl")?;
        // PostgreSQL refuses to run as root: run its tools as `postgres` then.
        let as_postgres = std::fs::metadata("/proc/self")
            .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
            .unwrap_or(false);
        let dir = tempfile::Builder::new()
            .prefix("linkbot-pg-")
            .tempdir()
            .map_err(|e| format!("cannot create a temporary folder ({e})"))?;
        if as_postgres {
            let out = std::process::Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .output()
                .map_err(|e| format!("cannot run chown ({e})"))?;
            if !out.status.success() {
                return Err(format!(
                    "cannot give the folder to the postgres user: {}",
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(|e| format!("no free loopback port ({e})"))?;
        let pg = PrivatePostgres {
            bin,
            dir,
            port,
            as_postgres,
        };
        let data = pg.data();
        pg.tool(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "-A",
                "trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        )
        .await;
        pg.start_server().await;
        Ok(pg)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    /// The URL the bot uses.
    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Runs one of the server's tools (as `postgres` when we are root), bounded; panics with its
    /// output when it fails.
    async fn tool(&self, name: &str, args: &[&str]) {
        let exe = self.bin.join(name);
        let mut cmd = if self.as_postgres {
            let mut c = tokio::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            tokio::process::Command::new(&exe)
        };
        cmd.args(args).kill_on_drop(true);
        let out = tokio::time::timeout(WAIT * 3, cmd.output())
            .await
            .unwrap_or_else(|_| panic!("{name} {args:?} did not finish"))
            .unwrap_or_else(|e| panic!("cannot run {name}: {e}"));
        assert!(
            out.status.success(),
            "{name} {args:?} failed: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
        );
    }

    /// Starts the server and waits until it accepts connections (`pg_ctl -w`).
    async fn start_server(&self) {
        let socket_dir = self.dir.path().display().to_string();
        let opts = format!(
            "-p {} -k {socket_dir} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port
        );
        let log = self.dir.path().join("server.log").display().to_string();
        self.tool(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-o",
                &opts,
                "-l",
                &log,
                "-w",
                "-t",
                "60",
                "start",
            ],
        )
        .await;
    }

    /// Stops the server as a crash would: `pg_ctl stop -m immediate` (no shutdown checkpoint,
    /// every connection cut).
    async fn kill(&self) {
        self.tool(
            "pg_ctl",
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        )
        .await;
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let data = self.data();
        let exe = self.bin.join("pg_ctl");
        let mut cmd = if self.as_postgres {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            std::process::Command::new(&exe)
        };
        let _ = cmd
            .args(["-D", &data, "-m", "immediate", "-w", "stop"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

// ---- PostgreSQL restarting mid-check ------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarting_mid_check_loses_nothing_and_readyz_shows_the_outage() {
    bounded(async {
        let pg = match PrivatePostgres::start().await {
            Ok(pg) => pg,
            Err(why) => return skip("LINKBOT_REQUIRE_POSTGRES", &why),
        };
        let world = World::start().await.expect("the simulated world starts");
        let slow = world.scenario_with(
            VerdictCode::ApiKeyInvalid,
            1,
            World::timing(Duration::from_secs(3)),
        );
        let quick = world.scenario(VerdictCode::RegionMismatch, 2);
        let bot = start_bot(&world, &pg.url()).await;
        let readyz = format!("http://{}/readyz", bot.ops_addr);
        poll_until(&readyz, WAIT, |s, _| s == 200).await;

        let (thread, _) = mention(&world, &slow, 1).await;
        wait_build_running(&world, &thread).await;

        // The store goes away while the build runs.
        pg.kill().await;
        let down = Instant::now();
        let (_, body) = poll_until(&readyz, WAIT, |s, _| s == 503).await;
        let to_503 = down.elapsed();
        assert!(body.contains("store"), "/readyz names the store: {body}");

        // A request arrives while the store is down: acked at once, answered later.
        let (second, envelope) = mention(&world, &quick, 2).await;
        assert!(
            world.slack.wait_ack(&envelope, WAIT).await.is_some(),
            "the envelope pushed during the outage was not acked"
        );
        // The build finishes and its artifacts are read while the store is still down: the
        // result must wait for the store, not be lost.
        poll(WAIT, "the bot reading the build's artifacts", || {
            world.jenkins.count("artifact") >= 2
        })
        .await;
        assert_eq!(
            poll_until(&readyz, WAIT, |_, _| true).await.0,
            503,
            "still down"
        );

        pg.start_server().await;
        let up = Instant::now();
        poll_until(&readyz, WAIT, |s, _| s == 200).await;
        let to_200 = up.elapsed();

        let first = wait_verdict(&world, &thread).await;
        let to_verdict = up.elapsed();
        assert_eq!(world::verdict_code(&first), Some(VerdictCode::ApiKeyInvalid));
        let other = wait_verdict(&world, &second).await;
        assert_eq!(world::verdict_code(&other), Some(VerdictCode::RegionMismatch));
        assert_all_acked(&world).await;
        assert_eq!(world.jenkins.triggers().len(), 2, "one build per location");

        let store = bot.store.clone();
        assert_audited_once(&store, &slow, VerdictCode::ApiKeyInvalid).await;
        assert_audited_once(&store, &quick, VerdictCode::RegionMismatch).await;
        let running = store.in_flight().await.expect("in-flight checks read");
        assert!(running.is_empty(), "nothing left in flight: {running:#?}");
        bot.stop().await;
        println!(
            "postgres restart: /readyz 503 {to_503:?} after the kill; 200 {to_200:?} after the restart; verdict {to_verdict:?} after the restart"
        );
    })
    .await;
}

// ---- SQLite on a full disk and on a read-only volume ----------------------------------------

/// A tmpfs of `size` mounted on a temporary folder for one test: a volume that can fill up or
/// turn read-only without touching the machine's disks. Unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts it; `Err` says why it cannot be done here (not root, no `mount`).
    fn mount(size: &str) -> Result<Tmpfs, String> {
        let dir = tempfile::Builder::new()
            .prefix("linkbot-tmpfs-")
            .tempdir()
            .map_err(|e| format!("cannot create a temporary folder ({e})"))?;
        let out = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount ({e})"))?;
        if !out.status.success() {
            return Err(format!(
                "cannot mount a tmpfs (root needed): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Remounts it read-only (`true`) or read-write; panics if `mount` refuses.
    fn set_read_only(&self, read_only: bool) {
        let opts = if read_only {
            "remount,ro"
        } else {
            "remount,rw"
        };
        // A file of the volume still open for writing makes the remount "busy" (e.g. a child
        // process another test forks holds copies of our files until it execs). Retried,
        // bounded.
        let deadline = Instant::now() + WAIT;
        loop {
            let out = std::process::Command::new("mount")
                .args(["-o", opts])
                .arg(self.path())
                .output()
                .expect("running mount");
            if out.status.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "mount -o {opts}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Fills it up with a file (written until the volume says ENOSPC); returns the file, whose
    /// removal gives the space back.
    fn fill(&self) -> PathBuf {
        use std::io::Write as _;
        let path = self.path().join("filler");
        let mut f = std::fs::File::create(&path).expect("creating the filler");
        let block = vec![0u8; 4096];
        loop {
            match f.write(&block) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(28) => break,
                Err(e) => panic!("filling the tmpfs: {e}"),
            }
        }
        let _ = f.sync_all();
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// A connection of the test's own to the SQLite store, to look at it as an operator would.
async fn sqlite_conn(url: &str) -> sqlx::SqliteConnection {
    use sqlx::Connection as _;
    tokio::time::timeout(WAIT, sqlx::SqliteConnection::connect(url))
        .await
        .expect("connecting to the SQLite store timed out")
        .expect("connecting to the SQLite store")
}

/// Empties the WAL (`wal_checkpoint(TRUNCATE)`), so that the store's next write has to grow a
/// file; retried (bounded) while a writer of the bot is busy.
async fn truncate_wal(conn: &mut sqlx::SqliteConnection) {
    let deadline = Instant::now() + WAIT;
    loop {
        let (busy, _, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
            .fetch_one(&mut *conn)
            .await
            .expect("checkpointing the WAL");
        if busy == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "the WAL stayed busy");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `PRAGMA integrity_check` says `ok`, no check is half-done (running with no owner's work
/// behind it, or finished without its audit entry).
async fn assert_consistent(conn: &mut sqlx::SqliteConnection) {
    let integrity: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut *conn)
        .await
        .expect("integrity_check runs");
    assert_eq!(integrity, "ok");
    let running: i64 = sqlx::query_scalar("SELECT count(*) FROM checks WHERE state = 'running'")
        .fetch_one(&mut *conn)
        .await
        .expect("counting running checks");
    assert_eq!(running, 0, "no check left running");
    let unaudited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM checks c WHERE c.state = 'finished' AND NOT EXISTS \
         (SELECT 1 FROM audit a WHERE a.check_id = c.id AND a.kind = 'check')",
    )
    .fetch_one(&mut *conn)
    .await
    .expect("counting unaudited checks");
    assert_eq!(unaudited, 0, "every finished check has its audit entry");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_on_a_full_disk_answers_clearly_and_keeps_a_consistent_store() {
    bounded(async {
        let volume = match Tmpfs::mount("4m") {
            Ok(v) => v,
            Err(why) => return skip("LINKBOT_REQUIRE_TMPFS", &why),
        };
        let world = World::start().await.expect("the simulated world starts");
        let url = format!("sqlite://{}", volume.path().join("linkbot.db").display());
        let before = world.scenario(VerdictCode::ApiKeyInvalid, 1);
        let refused = world.scenario(VerdictCode::RegionMismatch, 2);
        let mid = world.scenario_with(
            VerdictCode::ConfigMissing,
            3,
            World::timing(Duration::from_secs(2)),
        );
        let bot = start_bot(&world, &url).await;
        let mut conn = sqlite_conn(&url).await;

        let (thread, _) = mention(&world, &before, 1).await;
        wait_verdict(&world, &thread).await;

        // Full disk before a request: the thread says so, no check is started.
        truncate_wal(&mut conn).await;
        let filler = volume.fill();
        let (thread, envelope) = mention(&world, &refused, 2).await;
        let answer = wait_message(&world, &thread, "an answer naming the full disk", |m| {
            world::render_message(m).contains("out of disk space")
        })
        .await;
        assert!(
            world::render_message(&answer).contains("could not be started"),
            "{}",
            world::render_message(&answer)
        );
        assert!(world.slack.wait_ack(&envelope, WAIT).await.is_some());
        assert_eq!(world.jenkins.triggers().len(), 1, "no build for the refused check");
        std::fs::remove_file(&filler).expect("freeing the space");

        // Full disk while a check runs: the verdict is shown anyway, and recorded once space
        // is back.
        let (thread, _) = mention(&world, &mid, 3).await;
        wait_build_running(&world, &thread).await;
        truncate_wal(&mut conn).await;
        let filler = volume.fill();
        let full = Instant::now();
        let verdict = wait_verdict(&world, &thread).await;
        let to_verdict = full.elapsed();
        assert_eq!(world::verdict_code(&verdict), Some(VerdictCode::ConfigMissing));
        let store = bot.store.clone();
        let running = store.in_flight().await.expect("reading works on a full disk");
        assert_eq!(
            running.len(),
            1,
            "the result could not be recorded while the disk was full: {running:#?}"
        );
        std::fs::remove_file(&filler).expect("freeing the space");
        let freed = Instant::now();
        wait_store(&store, "the result recorded after space came back", |running| {
            running.is_empty()
        })
        .await;
        let to_record = freed.elapsed();
        assert_audited_once(&store, &mid, VerdictCode::ConfigMissing).await;
        assert_audited_once(&store, &before, VerdictCode::ApiKeyInvalid).await;
        assert_all_acked(&world).await;
        bot.stop().await;
        assert_consistent(&mut conn).await;
        println!(
            "sqlite full disk: verdict shown {to_verdict:?} after the disk filled; recorded {to_record:?} after space came back"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_on_a_read_only_volume_stops_the_bot_at_start_with_one_line() {
    bounded(async {
        let volume = match Tmpfs::mount("4m") {
            Ok(v) => v,
            Err(why) => return skip("LINKBOT_REQUIRE_TMPFS", &why),
        };
        let world = World::start().await.expect("the simulated world starts");
        let url = format!("sqlite://{}", volume.path().join("linkbot.db").display());
        // A store the bot used before: created and migrated by `linkbot audit`, a process that
        // has ended (so no file of the volume is still open for writing, which `mount` needs).
        let config = world.dir().join("bot.toml");
        std::fs::write(&config, world.config_toml(&url)).expect("writing bot.toml");
        let mut audit = tokio::process::Command::new(env!("CARGO_BIN_EXE_linkbot"));
        audit
            .args(["audit", "--config"])
            .arg(&config)
            .env_clear()
            .kill_on_drop(true);
        let out = tokio::time::timeout(WAIT, audit.output())
            .await
            .expect("linkbot audit did not finish")
            .expect("the linkbot binary runs");
        assert!(
            out.status.success(),
            "linkbot audit: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        volume.set_read_only(true);

        let line = bot_refuses_to_start(&world, &url).await;
        assert!(
            line.contains("store") && line.contains("read-only"),
            "the line names the store and why: {line}"
        );
        assert_eq!(
            world.slack.connection_count(),
            0,
            "it never connected to Slack"
        );

        volume.set_read_only(false);
        let mut conn = sqlite_conn(&url).await;
        assert_consistent(&mut conn).await;
    })
    .await;
}

/// Runs `linkbot run` on the world's `bot.toml` with the store at `url`, which must make it exit
/// non-zero, bounded, with exactly one `linkbot:` line on stderr; returns that line.
async fn bot_refuses_to_start(world: &World, url: &str) -> String {
    let config = world.dir().join("bot.toml");
    std::fs::write(&config, world.config_toml(url)).expect("writing bot.toml");
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_linkbot"));
    cmd.args(["run", "--config"])
        .arg(&config)
        .env_clear()
        .envs(world.secret_env())
        .kill_on_drop(true);
    let out = tokio::time::timeout(WAIT, cmd.output())
        .await
        .expect("the bot kept running on a store it cannot write")
        .expect("the linkbot binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "exit status {:?}: {stderr}",
        out.status
    );
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("linkbot:"))
        .collect();
    assert_eq!(lines.len(), 1, "one line names the problem: {stderr}");
    lines[0].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_on_a_full_volume_stops_a_new_bot_at_start_with_one_line() {
    bounded(async {
        let volume = match Tmpfs::mount("1m") {
            Ok(v) => v,
            Err(why) => return skip("LINKBOT_REQUIRE_TMPFS", &why),
        };
        let world = World::start().await.expect("the simulated world starts");
        let url = format!("sqlite://{}", volume.path().join("linkbot.db").display());
        let filler = volume.fill();
        let line = bot_refuses_to_start(&world, &url).await;
        assert!(
            line.contains("store") && line.contains("disk is full"),
            "the line names the store and why: {line}"
        );
        assert_eq!(
            world.slack.connection_count(),
            0,
            "it never connected to Slack"
        );
        // Space back: the same store opens, whole.
        std::fs::remove_file(&filler).expect("freeing the space");
        let store = linkbot::store::open(&url).await.expect("the store opens");
        store.close().await;
        let mut conn = sqlite_conn(&url).await;
        assert_consistent(&mut conn).await;
    })
    .await;
}
