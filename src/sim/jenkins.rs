//! A simulated Jenkins on 127.0.0.1:0 that walks a triggered job through queue → build →
//! artifacts, speaking real Jenkins' URLs and JSON shapes (`_class`, `why`, `executable`,
//! `cancelled`, `artifacts[].relativePath`, `estimatedDuration` in ms).
//!
//! Progress is driven by time (`tokio::time::Instant`) from each trigger, with the behaviour
//! chosen per `CLUSTERID`. Failures on demand: refused triggers, 5xx polls, crumbs, basic auth,
//! cancelled queue items, forgotten (404) queue items, failed builds, and an outage window in
//! which every request gets the same error (a reverse proxy's 502 while Jenkins restarts).
//! Records every request and counts them by kind (item, queue listing, build, job-level poll…).
//!
//! The job-level poll (`{job}api/json?tree=builds[…]{M,N}` or `allBuilds[…]`) and the queue
//! listing (`queue/api/json?tree=items[…]`) are answered as Jenkins does: the `tree` keeps the
//! properties it names (and `_class`), silently ignores names an object does not have, and cuts
//! lists by range; `builds` holds only the newest 100 (`allBuilds` all); the queue lists only
//! items still waiting. A `tree` the simulator cannot parse is refused (400), not guessed at.
//! Only for the demo and the tests: it keeps everything in memory and never persists anything.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::Notify;
use tokio::time::Instant;
use url::Url;

/// How the simulated Jenkins treats a triggered job.
#[derive(Debug, Clone)]
pub struct Behaviour {
    /// How long the item waits in the queue.
    pub queue_time: Duration,
    /// How long the build runs.
    pub build_time: Duration,
    /// `estimatedDuration` reported while it runs (zero: `-1`, no history).
    pub estimated: Duration,
    /// The build's result (`SUCCESS`, `FAILURE`, `ABORTED`, …).
    pub result: String,
    /// Archived artifacts: relative path and content.
    pub artifacts: Vec<(String, Vec<u8>)>,
    /// Cancel the item when its queue time is up instead of starting a build.
    pub cancel_in_queue: bool,
    /// Answer the trigger with this status instead of accepting it.
    pub refuse_status: Option<u16>,
    /// Answer this many queue/build polls of the job with 503 first.
    pub fail_first_polls_with_5xx: u32,
    /// Answer a POST without a valid crumb (and its session cookie) with 403 "No valid crumb".
    pub require_crumb: bool,
    /// The console text (`consoleText`); empty: a generated one ending `Finished: <result>`.
    pub console: String,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            queue_time: Duration::from_millis(100),
            build_time: Duration::from_millis(300),
            estimated: Duration::from_millis(300),
            result: "SUCCESS".to_string(),
            artifacts: Vec::new(),
            cancel_in_queue: false,
            refuse_status: None,
            fail_first_polls_with_5xx: 0,
            require_crumb: false,
            console: String::new(),
        }
    }
}

struct Item {
    id: u64,
    created: Instant,
    behaviour: Behaviour,
    build: Option<u64>,
    failures_left: u32,
}

struct Build {
    number: u64,
    queue_id: u64,
    started: Instant,
    started_ms: i64,
    behaviour: Behaviour,
}

#[derive(Default)]
struct Inner {
    default: Behaviour,
    per_cluster: HashMap<String, Behaviour>,
    /// Every queue item ever created, so forgotten ones still turn into builds.
    items: BTreeMap<u64, Item>,
    /// Queue items that answer 404.
    forgotten: BTreeSet<u64>,
    builds: BTreeMap<u64, Build>,
    next_queue_id: u64,
    next_build: u64,
    triggers: Vec<BTreeMap<String, String>>,
    counts: BTreeMap<String, u64>,
    requests: Vec<String>,
    auth: Option<(String, String)>,
    crumb: Option<(String, String)>,
    reported_root: Option<Url>,
    /// While set, every request is answered with this status (see [`SimJenkins::start_outage`]).
    outage: Option<u16>,
    /// How many requests the outage answered.
    outage_answers: u64,
    /// When set, the outage ends by itself after answering this many more requests.
    outage_left: Option<u64>,
    /// How long each artifact download takes (a slow network or a big file); zero: no wait.
    artifact_delay: Duration,
}

/// Artifact downloads under way, and the most there ever were at once.
#[derive(Debug, Default)]
struct Downloads {
    now: std::sync::atomic::AtomicUsize,
    most: std::sync::atomic::AtomicUsize,
}

/// A running simulated Jenkins. Stops when dropped.
pub struct SimJenkins {
    base: Url,
    inner: Arc<Mutex<Inner>>,
    downloads: Arc<Downloads>,
    notify: Arc<Notify>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

#[derive(Clone)]
struct AppState {
    inner: Arc<Mutex<Inner>>,
    downloads: Arc<Downloads>,
    notify: Arc<Notify>,
    job: Vec<String>,
    base: Url,
}

fn lock(inner: &Mutex<Inner>) -> std::sync::MutexGuard<'_, Inner> {
    inner.lock().unwrap_or_else(|e| e.into_inner())
}

/// Starts a simulated Jenkins serving the job at `job` (folders then name), with the default
/// [`Behaviour`] for every location.
///
/// # Panics
/// When no loopback port can be bound (the tests and the demo cannot run without one).
pub async fn start(job: &[&str]) -> SimJenkins {
    start_with_tls(job, None).await
}

/// The same, serving HTTPS with `tls` when given.
///
/// # Panics
/// When no loopback port can be bound.
pub async fn start_with_tls(job: &[&str], tls: Option<super::tls::SimTls>) -> SimJenkins {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let inner = Arc::new(Mutex::new(Inner {
        next_queue_id: 101,
        next_build: 1,
        ..Inner::default()
    }));
    let notify = Arc::new(Notify::new());
    let downloads = Arc::new(Downloads::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding 127.0.0.1:0");
    let addr = listener
        .local_addr()
        .expect("a bound socket has an address");
    let base = Url::parse(&format!("{scheme}://{addr}/")).expect("loopback URL");
    let state = AppState {
        inner: inner.clone(),
        downloads: downloads.clone(),
        notify: notify.clone(),
        job: job.iter().map(|s| s.to_string()).collect(),
        base: base.clone(),
    };
    let app = Router::new().fallback(handle).with_state(state);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = super::tls::serve(listener, app, tls, async {
            let _ = rx.await;
        })
        .await;
    });
    SimJenkins {
        base,
        inner,
        downloads,
        notify,
        _shutdown: tx,
    }
}

impl SimJenkins {
    /// The base URL to configure as `jenkins_url`.
    pub fn base_url(&self) -> Url {
        self.base.clone()
    }

    /// How jobs for `cluster_id` (the `CLUSTERID` parameter) behave from the next trigger on.
    pub fn set_behaviour(&self, cluster_id: &str, behaviour: Behaviour) {
        lock(&self.inner)
            .per_cluster
            .insert(cluster_id.to_string(), behaviour);
    }

    /// Makes every artifact download take `delay` before it is answered.
    pub fn set_artifact_delay(&self, delay: Duration) {
        lock(&self.inner).artifact_delay = delay;
    }

    /// The most artifact downloads that were ever under way at once.
    pub fn most_downloads_at_once(&self) -> usize {
        self.downloads
            .most
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// How jobs for any other location behave from the next trigger on.
    pub fn set_default_behaviour(&self, behaviour: Behaviour) {
        lock(&self.inner).default = behaviour;
    }

    /// Requires HTTP basic auth with this user and token on every request (401 otherwise).
    pub fn set_auth(&self, user: &str, token: &str) {
        lock(&self.inner).auth = Some((user.to_string(), token.to_string()));
    }

    /// Reports `Location`, `executable.url` and build `url`s under this root instead of the real
    /// address, like a Jenkins behind a proxy whose root URL names another host.
    pub fn set_reported_root(&self, root: Url) {
        lock(&self.inner).reported_root = Some(root);
    }

    /// Forgets every queue item (as Jenkins does about 5 minutes after an item left the queue):
    /// their URLs answer 404 from now on. Builds already started, or due to start, remain.
    pub fn forget_queue_items(&self) {
        let mut inner = lock(&self.inner);
        let ids: Vec<u64> = inner.items.keys().copied().collect();
        inner.forgotten.extend(ids);
    }

    /// Deletes a build (a build discarder, or someone deleting it by hand): it is no longer
    /// listed and its URLs answer 404.
    pub fn delete_build(&self, number: u64) {
        lock(&self.inner).builds.remove(&number);
    }

    /// Starts an outage: from now on every request, of any kind, is answered with `status` (e.g.
    /// 502, as the reverse proxy in front of a restarting Jenkins answers), before
    /// authentication and without any effect (no trigger is accepted, no queue item advances),
    /// until [`SimJenkins::end_outage`]. The requests are still recorded and counted.
    pub fn start_outage(&self, status: u16) {
        let mut inner = lock(&self.inner);
        inner.outage = Some(status);
        inner.outage_left = None;
    }

    /// A short outage: the next `requests` requests are answered with `status` (as by
    /// [`SimJenkins::start_outage`]), then Jenkins serves again by itself — a blip measured in
    /// requests, so a test needs no clock to end it.
    pub fn start_outage_for(&self, status: u16, requests: u64) {
        let mut inner = lock(&self.inner);
        inner.outage = (requests > 0).then_some(status);
        inner.outage_left = (requests > 0).then_some(requests);
    }

    /// Ends the outage started by [`SimJenkins::start_outage`]: requests are served again.
    pub fn end_outage(&self) {
        let mut inner = lock(&self.inner);
        inner.outage = None;
        inner.outage_left = None;
    }

    /// How many requests an outage answered with its error status.
    pub fn outage_answers(&self) -> u64 {
        lock(&self.inner).outage_answers
    }

    /// The form parameters of each accepted trigger, in order.
    pub fn triggers(&self) -> Vec<BTreeMap<String, String>> {
        lock(&self.inner).triggers.clone()
    }

    /// Waits until at least `n` triggers were accepted, or `timeout` passes; true when they were.
    pub async fn wait_for_triggers(&self, n: usize, timeout: Duration) -> bool {
        tokio::time::timeout(timeout, async {
            loop {
                let notified = self.notify.notified();
                if lock(&self.inner).triggers.len() >= n {
                    return;
                }
                notified.await;
            }
        })
        .await
        .is_ok()
    }

    /// How many requests were served, of any kind.
    pub fn request_count(&self) -> u64 {
        lock(&self.inner).counts.values().sum()
    }

    /// How many requests of one kind were served: `trigger`, `queue` (one item), `queue_list`
    /// (the whole queue), `build` (one build), `artifact`, `console`, `crumb`, `builds` (the
    /// job-level poll: the job's build list), `other`.
    pub fn count(&self, kind: &str) -> u64 {
        lock(&self.inner).counts.get(kind).copied().unwrap_or(0)
    }

    /// Every request as `METHOD path?query`, in order.
    pub fn requests(&self) -> Vec<String> {
        lock(&self.inner).requests.clone()
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Percent-decodes one path segment (invalid escapes are kept as they are).
fn decode(segment: &str) -> String {
    let b = segment.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b.get(i),
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (Some(b'%'), Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (Some(c), _, _) => {
                out.push(*c);
                i += 1;
            }
            (None, _, _) => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Moves every item whose queue time is up into a build (or leaves it cancelled).
fn advance(inner: &mut Inner) {
    let now = Instant::now();
    let due: Vec<u64> = inner
        .items
        .values()
        .filter(|i| {
            i.build.is_none()
                && !i.behaviour.cancel_in_queue
                && now >= i.created + i.behaviour.queue_time
        })
        .map(|i| i.id)
        .collect();
    for id in due {
        let number = inner.next_build;
        inner.next_build += 1;
        let Some(item) = inner.items.get_mut(&id) else {
            continue;
        };
        item.build = Some(number);
        let started = item.created + item.behaviour.queue_time;
        let started_ms = now_ms() - ms(now.saturating_duration_since(started));
        inner.builds.insert(
            number,
            Build {
                number,
                queue_id: id,
                started,
                started_ms,
                behaviour: item.behaviour.clone(),
            },
        );
    }
}

/// What a request is, by its (decoded) path.
enum Route {
    Trigger,
    Queue(u64),
    Build(u64),
    Artifact(u64, String),
    Console(u64),
    Builds,
    QueueList,
    Crumb,
    Other,
}

fn route(job: &[String], method: &Method, path: &str) -> Route {
    let segments: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(decode)
        .collect();
    let seg: Vec<&str> = segments.iter().map(String::as_str).collect();
    match (method, seg.as_slice()) {
        (&Method::GET, ["queue", "item", id, "api", "json"]) => {
            return id.parse().map(Route::Queue).unwrap_or(Route::Other)
        }
        (&Method::GET, ["crumbIssuer", "api", "json"]) => return Route::Crumb,
        (&Method::GET, ["queue", "api", "json"]) => return Route::QueueList,
        _ => {}
    }
    let mut rest = seg.as_slice();
    for name in job {
        match rest {
            ["job", n, tail @ ..] if n == name => rest = tail,
            _ => return Route::Other,
        }
    }
    match (method, rest) {
        (&Method::POST, ["buildWithParameters"]) => Route::Trigger,
        (&Method::GET, ["api", "json"]) => Route::Builds,
        (&Method::GET, [n, "api", "json"]) => n.parse().map(Route::Build).unwrap_or(Route::Other),
        (&Method::GET, [n, "consoleText"]) => n.parse().map(Route::Console).unwrap_or(Route::Other),
        (&Method::GET, [n, "artifact", path @ ..]) if !path.is_empty() => n
            .parse()
            .map(|n| Route::Artifact(n, path.join("/")))
            .unwrap_or(Route::Other),
        _ => Route::Other,
    }
}

fn kind(r: &Route) -> &'static str {
    match r {
        Route::Trigger => "trigger",
        Route::Queue(_) => "queue",
        Route::Build(_) => "build",
        Route::Artifact(..) => "artifact",
        Route::Console(_) => "console",
        Route::Builds => "builds",
        Route::QueueList => "queue_list",
        Route::Crumb => "crumb",
        Route::Other => "other",
    }
}

fn json_response(v: Value) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json;charset=utf-8")],
        v.to_string(),
    )
        .into_response()
}

fn status(code: u16, body: &str) -> Response {
    (
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        body.to_string(),
    )
        .into_response()
}

/// What nginx, the usual reverse proxy in front of Jenkins, answers while Jenkins is down.
fn outage_page(code: u16) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_GATEWAY);
    let title = format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error")
    );
    (
        status,
        [(header::CONTENT_TYPE, "text/html")],
        format!(
            "<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
        ),
    )
        .into_response()
}

fn not_found() -> Response {
    status(
        404,
        "<html><body><h2>HTTP ERROR 404 Not Found</h2></body></html>",
    )
}

/// Answers a request; an artifact download is counted while under way and takes the
/// configured delay first.
async fn handle(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    use std::sync::atomic::Ordering::SeqCst;
    if !matches!(route(&state.job, &method, uri.path()), Route::Artifact(..)) {
        return answer(state, method, uri, headers, body).await;
    }
    /// Counts the download as over however it ends (a client may give up mid-way).
    struct UnderWay(Arc<Downloads>);
    impl Drop for UnderWay {
        fn drop(&mut self) {
            self.0.now.fetch_sub(1, SeqCst);
        }
    }
    let under_way = UnderWay(state.downloads.clone());
    let now = under_way.0.now.fetch_add(1, SeqCst) + 1;
    under_way.0.most.fetch_max(now, SeqCst);
    let delay = lock(&state.inner).artifact_delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    answer(state, method, uri, headers, body).await
}

async fn answer(
    state: AppState,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let route = route(&state.job, &method, uri.path());
    let mut inner = lock(&state.inner);
    *inner.counts.entry(kind(&route).to_string()).or_default() += 1;
    let line = match uri.query() {
        Some(q) => format!("{method} {}?{q}", uri.path()),
        None => format!("{method} {}", uri.path()),
    };
    inner.requests.push(line);
    if let Some(code) = inner.outage {
        // The proxy answers; Jenkins never sees the request.
        inner.outage_answers += 1;
        if let Some(left) = inner.outage_left.as_mut() {
            *left = left.saturating_sub(1);
            if *left == 0 {
                inner.outage = None;
                inner.outage_left = None;
            }
        }
        state.notify.notify_waiters();
        return outage_page(code);
    }
    state.notify.notify_waiters();
    if let Some((user, token)) = &inner.auth {
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{token}"))
        );
        let got = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if got != Some(expected.as_str()) {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Basic realm=\"Jenkins\"")],
                "Invalid password/token for user",
            )
                .into_response();
        }
    }
    advance(&mut inner);
    let root = inner
        .reported_root
        .clone()
        .unwrap_or_else(|| state.base.clone());
    let job_path: String = state
        .job
        .iter()
        .map(|j| format!("job/{}/", url_segment(j)))
        .collect();
    let job_url = format!("{root}{job_path}");
    match route {
        Route::Trigger => trigger(&mut inner, &state, &headers, &body, &root),
        Route::Crumb => {
            let crumb = format!("{:032x}", fastrand::u128(..));
            let session = format!("node0{:016x}", fastrand::u64(..));
            inner.crumb = Some((crumb.clone(), session.clone()));
            (
                [(
                    header::SET_COOKIE,
                    format!("JSESSIONID.sim={session}; Path=/; HttpOnly"),
                )],
                json_response(json!({
                    "_class": "hudson.security.csrf.DefaultCrumbIssuer",
                    "crumb": crumb,
                    "crumbRequestField": "Jenkins-Crumb",
                })),
            )
                .into_response()
        }
        Route::Queue(id) => {
            if inner.forgotten.contains(&id) {
                return not_found();
            }
            let Some(item) = inner.items.get_mut(&id) else {
                return not_found();
            };
            if item.failures_left > 0 {
                item.failures_left -= 1;
                return status(503, "Service Unavailable");
            }
            json_response(queue_value(item, &job_url, &state.job))
        }
        Route::Build(n) => {
            let Some(b) = inner.builds.get(&n) else {
                return not_found();
            };
            let queue_id = b.queue_id;
            if let Some(item) = inner
                .items
                .get_mut(&queue_id)
                .filter(|i| i.failures_left > 0)
            {
                item.failures_left -= 1;
                return status(503, "Service Unavailable");
            }
            match inner.builds.get(&n) {
                Some(b) => json_response(build_value(b, &job_url, &state.job)),
                None => not_found(),
            }
        }
        Route::Artifact(n, path) => {
            let found = inner
                .builds
                .get(&n)
                .filter(|b| b.started + b.behaviour.build_time <= Instant::now())
                .and_then(|b| {
                    b.behaviour
                        .artifacts
                        .iter()
                        .find(|(p, _)| *p == path)
                        .map(|(_, c)| c.clone())
                });
            match found {
                Some(content) => (
                    [(header::CONTENT_TYPE, "application/octet-stream")],
                    content,
                )
                    .into_response(),
                None => not_found(),
            }
        }
        Route::Console(n) => match inner.builds.get(&n) {
            Some(b) => {
                let text = if b.behaviour.console.is_empty() {
                    let done = b.started + b.behaviour.build_time <= Instant::now();
                    let mut t = "Started by user linkbot\nRunning as SYSTEM\nBuilding in workspace /var/jenkins_home/workspace/armada-ha-master-get-info\n".to_string();
                    if done {
                        t.push_str(&format!("Finished: {}\n", b.behaviour.result));
                    }
                    t
                } else {
                    b.behaviour.console.clone()
                };
                ([(header::CONTENT_TYPE, "text/plain;charset=utf-8")], text).into_response()
            }
            None => not_found(),
        },
        Route::Builds => {
            let Some(tree) = query_param(&uri, "tree") else {
                // No `tree`: the old shape, number, queue item and URL of every build.
                let builds: Vec<Value> = inner
                    .builds
                    .values()
                    .rev()
                    .map(|b| {
                        json!({
                            "_class": "org.jenkinsci.plugins.workflow.job.WorkflowRun",
                            "number": b.number,
                            "queueId": b.queue_id,
                            "url": format!("{job_url}{}/", b.number),
                        })
                    })
                    .collect();
                return json_response(json!({
                    "_class": "org.jenkinsci.plugins.workflow.job.WorkflowJob",
                    "builds": builds,
                }));
            };
            let tree = match tree::parse(&tree) {
                Ok(t) => t,
                Err(why) => return refuse_tree(&why),
            };
            // Only what the tree reaches is built (and counts for injected failures).
            let wants = |name: &str| tree.iter().find(|n| n.name == name);
            let newest: Vec<u64> = inner.builds.keys().rev().copied().collect();
            let pick = |node: Option<&tree::Node>, cap: Option<usize>| -> Vec<u64> {
                let Some(node) = node else { return Vec::new() };
                let list: Vec<u64> = newest
                    .iter()
                    .copied()
                    .take(cap.unwrap_or(usize::MAX))
                    .collect();
                tree::range(&list, node.range).to_vec()
            };
            // Jenkins lists at most the 100 newest builds under `builds`; `allBuilds` has all.
            let listed = pick(wants("builds"), Some(JENKINS_BUILDS_LIMIT));
            let all_listed = pick(wants("allBuilds"), None);
            let failing = listed
                .iter()
                .chain(&all_listed)
                .filter_map(|n| inner.builds.get(n).map(|b| b.queue_id))
                .find(|q| inner.items.get(q).is_some_and(|i| i.failures_left > 0));
            if let Some(q) = failing {
                if let Some(item) = inner.items.get_mut(&q) {
                    item.failures_left -= 1;
                }
                return status(503, "Service Unavailable");
            }
            let full = |numbers: &[u64]| -> Value {
                Value::Array(
                    numbers
                        .iter()
                        .filter_map(|n| inner.builds.get(n))
                        .map(|b| build_value(b, &job_url, &state.job))
                        .collect(),
                )
            };
            let mut job = json!({
                "_class": "org.jenkinsci.plugins.workflow.job.WorkflowJob",
                "name": state.job.last().cloned().unwrap_or_default(),
                "url": job_url,
            });
            // The range was applied while listing; the filter keeps the fields asked for.
            job["builds"] = full(&listed);
            job["allBuilds"] = full(&all_listed);
            json_response(tree::filter_unranged(&job, &tree))
        }
        Route::QueueList => {
            let tree = match query_param(&uri, "tree").map(|t| tree::parse(&t)) {
                Some(Ok(t)) => Some(t),
                Some(Err(why)) => return refuse_tree(&why),
                None => None,
            };
            let now = Instant::now();
            // Only items still in the queue are listed: started, cancelled and forgotten ones
            // have left it (Jenkins keeps left items only under queue/item/N/).
            let waiting: Vec<u64> = inner
                .items
                .values()
                .filter(|i| {
                    i.build.is_none()
                        && !inner.forgotten.contains(&i.id)
                        && !(i.behaviour.cancel_in_queue
                            && now >= i.created + i.behaviour.queue_time)
                })
                .map(|i| i.id)
                .collect();
            if let Some(id) = waiting
                .iter()
                .copied()
                .find(|id| inner.items.get(id).is_some_and(|i| i.failures_left > 0))
            {
                if let Some(item) = inner.items.get_mut(&id) {
                    item.failures_left -= 1;
                }
                return status(503, "Service Unavailable");
            }
            let items: Vec<Value> = waiting
                .iter()
                .filter_map(|id| inner.items.get(id))
                .map(|i| queue_value(i, &job_url, &state.job))
                .collect();
            let queue =
                json!({"_class": "hudson.model.Queue", "discoverableItems": [], "items": items});
            match tree {
                Some(t) => json_response(tree::filter(&queue, &t)),
                None => json_response(queue),
            }
        }
        Route::Other => not_found(),
    }
}

/// Percent-encodes a job name as one URL path segment.
fn url_segment(s: &str) -> String {
    let mut u = Url::parse("http://x/").expect("static URL");
    if let Ok(mut p) = u.path_segments_mut() {
        p.pop_if_empty().push(s);
    }
    u.path().trim_start_matches('/').to_string()
}

const PARAMS: [&str; 5] = [
    "BRANCH",
    "ENV_Branch",
    "CLUSTERID",
    "TUGBOAT",
    "CARRIER_NAME",
];

fn trigger(
    inner: &mut Inner,
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
    root: &Url,
) -> Response {
    let form: BTreeMap<String, String> = url::form_urlencoded::parse(body).into_owned().collect();
    let behaviour = form
        .get("CLUSTERID")
        .and_then(|c| inner.per_cluster.get(c))
        .unwrap_or(&inner.default)
        .clone();
    if behaviour.require_crumb {
        let crumb_ok = inner.crumb.as_ref().is_some_and(|(crumb, session)| {
            let header_ok =
                headers.get("Jenkins-Crumb").and_then(|v| v.to_str().ok()) == Some(crumb.as_str());
            let cookie_ok = headers
                .get(header::COOKIE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|c| {
                    c.split(';')
                        .any(|kv| kv.trim() == format!("JSESSIONID.sim={session}"))
                });
            header_ok && cookie_ok
        });
        if !crumb_ok {
            return status(
                403,
                "<html><body><h2>HTTP ERROR 403 No valid crumb was included in the request</h2></body></html>",
            );
        }
    }
    if let Some(code) = behaviour.refuse_status {
        return status(
            code,
            "<html><body><h2>Refused by the simulator</h2></body></html>",
        );
    }
    let missing: Vec<&str> = PARAMS
        .iter()
        .copied()
        .filter(|p| form.get(*p).is_none_or(|v| v.is_empty()))
        .collect();
    if !missing.is_empty() {
        return status(
            400,
            &format!(
                "<html><body><h2>HTTP ERROR 400 Missing parameters: {}</h2></body></html>",
                missing.join(", ")
            ),
        );
    }
    let id = inner.next_queue_id;
    inner.next_queue_id += 1;
    let failures_left = behaviour.fail_first_polls_with_5xx;
    inner.items.insert(
        id,
        Item {
            id,
            created: Instant::now(),
            behaviour,
            build: None,
            failures_left,
        },
    );
    inner.triggers.push(form);
    state.notify.notify_waiters();
    (
        StatusCode::CREATED,
        [(header::LOCATION, format!("{root}queue/item/{id}/"))],
        "",
    )
        .into_response()
}

fn queue_value(item: &Item, job_url: &str, job: &[String]) -> Value {
    let name = job.last().cloned().unwrap_or_default();
    let task = json!({
        "_class": "org.jenkinsci.plugins.workflow.job.WorkflowJob",
        "name": name,
        "url": job_url,
        "color": "blue_anime",
    });
    let in_queue_since = now_ms() - ms(item.created.elapsed());
    let common = |class: &str| {
        json!({
            "_class": class,
            "actions": [{"_class": "hudson.model.CauseAction", "causes": [{"_class": "hudson.model.Cause$UserIdCause", "shortDescription": "Started by user linkbot", "userId": "linkbot", "userName": "linkbot"}]}],
            "blocked": false,
            "buildable": false,
            "id": item.id,
            "inQueueSince": in_queue_since,
            "params": "",
            "stuck": false,
            "task": task,
            "url": format!("queue/item/{}/", item.id),
        })
    };
    let queue_over = item.created.elapsed() >= item.behaviour.queue_time;
    let v = if let Some(number) = item.build {
        let mut v = common("hudson.model.Queue$LeftItem");
        v["why"] = Value::Null;
        v["cancelled"] = json!(false);
        v["executable"] = json!({
            "_class": "org.jenkinsci.plugins.workflow.job.WorkflowRun",
            "number": number,
            "url": format!("{job_url}{number}/"),
        });
        v
    } else if item.behaviour.cancel_in_queue && queue_over {
        let mut v = common("hudson.model.Queue$LeftItem");
        v["why"] = Value::Null;
        v["cancelled"] = json!(true);
        v["executable"] = Value::Null;
        v
    } else {
        let mut v = common("hudson.model.Queue$BuildableItem");
        v["buildable"] = json!(true);
        v["why"] = json!("Waiting for next available executor on ‘armada-worker’");
        v["buildableStartMilliseconds"] = json!(in_queue_since);
        v["pending"] = json!(false);
        v
    };
    v
}

fn build_value(b: &Build, job_url: &str, job: &[String]) -> Value {
    let elapsed = b.started.elapsed();
    let building = elapsed < b.behaviour.build_time;
    let estimated = if b.behaviour.estimated.is_zero() {
        -1
    } else {
        ms(b.behaviour.estimated)
    };
    let artifacts: Vec<Value> = if building {
        Vec::new()
    } else {
        b.behaviour
            .artifacts
            .iter()
            .map(|(p, _)| {
                let file = p.rsplit('/').next().unwrap_or(p);
                json!({"displayPath": file, "fileName": file, "relativePath": p})
            })
            .collect()
    };
    let name = job.join(" » ");
    json!({
        "_class": "org.jenkinsci.plugins.workflow.job.WorkflowRun",
        "artifacts": artifacts,
        "building": building,
        "description": null,
        "displayName": format!("#{}", b.number),
        "duration": if building { 0 } else { ms(b.behaviour.build_time) },
        "estimatedDuration": estimated,
        "fullDisplayName": format!("{name} #{}", b.number),
        "id": b.number.to_string(),
        "number": b.number,
        "queueId": b.queue_id,
        "result": if building { Value::Null } else { json!(b.behaviour.result) },
        "timestamp": b.started_ms,
        "url": format!("{job_url}{}/", b.number),
    })
}

/// How many builds Jenkins lists under a job's `builds` (`Job.getNewBuilds`: the newest 100).
const JENKINS_BUILDS_LIMIT: usize = 100;

/// The value of one query parameter, percent-decoded.
fn query_param(uri: &Uri, name: &str) -> Option<String> {
    url::form_urlencoded::parse(uri.query()?.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// A `tree` the simulator cannot read. Real Jenkins refuses a malformed `tree` with an error
/// too; the simulator does not guess what it would have returned.
fn refuse_tree(why: &str) -> Response {
    status(
        400,
        &format!("<html><body><h2>HTTP ERROR 400 the simulator cannot read this tree: {why}</h2></body></html>"),
    )
}

/// Jenkins' `tree` query parameter (remote access API, "Controlling the amount of data you
/// fetch"): `a,b[c,d[e]]{M,N}`. Properties named are kept, properties not named are dropped,
/// and a name the object does not have is silently ignored (Jenkins exports only what exists);
/// `_class` is always kept. A range applies to a list: `{M,N}` from M (inclusive) to N
/// (exclusive), `{M,}` from M, `{,N}` the first N, `{N}` only the Nth.
mod tree {
    use serde_json::{Map, Value};

    /// One property in a tree.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Node {
        pub name: String,
        pub children: Option<Vec<Node>>,
        pub range: Option<(Option<usize>, Option<usize>)>,
    }

    pub fn parse(s: &str) -> Result<Vec<Node>, String> {
        let chars: Vec<char> = s.chars().collect();
        let mut at = 0;
        let nodes = list(&chars, &mut at)?;
        if at != chars.len() {
            return Err(format!("unexpected `{}` at {at}", chars[at]));
        }
        Ok(nodes)
    }

    fn list(c: &[char], at: &mut usize) -> Result<Vec<Node>, String> {
        let mut out = Vec::new();
        loop {
            let start = *at;
            while *at < c.len() && (c[*at].is_alphanumeric() || c[*at] == '_' || c[*at] == '$') {
                *at += 1;
            }
            if *at == start {
                return Err(format!("a property name expected at {start}"));
            }
            let name: String = c[start..*at].iter().collect();
            let mut children = None;
            if c.get(*at) == Some(&'[') {
                *at += 1;
                children = Some(list(c, at)?);
                if c.get(*at) != Some(&']') {
                    return Err(format!("`]` expected at {at}"));
                }
                *at += 1;
            }
            let mut range = None;
            if c.get(*at) == Some(&'{') {
                let close = c[*at..]
                    .iter()
                    .position(|x| *x == '}')
                    .ok_or("an unclosed `{`")?;
                let inner: String = c[*at + 1..*at + close].iter().collect();
                *at += close + 1;
                range = Some(parse_range(&inner)?);
            }
            out.push(Node {
                name,
                children,
                range,
            });
            if c.get(*at) == Some(&',') {
                *at += 1;
                continue;
            }
            return Ok(out);
        }
    }

    fn parse_range(s: &str) -> Result<(Option<usize>, Option<usize>), String> {
        let num = |t: &str| -> Result<Option<usize>, String> {
            let t = t.trim();
            if t.is_empty() {
                Ok(None)
            } else {
                t.parse()
                    .map(Some)
                    .map_err(|_| format!("`{t}` is not a range bound"))
            }
        };
        match s.split_once(',') {
            Some((m, n)) => Ok((num(m)?, num(n)?)),
            None => {
                let n = num(s)?.ok_or("an empty range")?;
                Ok((Some(n), Some(n + 1)))
            }
        }
    }

    /// The part of `list` a range selects.
    pub fn range<T>(list: &[T], r: Option<(Option<usize>, Option<usize>)>) -> &[T] {
        let Some((m, n)) = r else { return list };
        let from = m.unwrap_or(0).min(list.len());
        let to = n.unwrap_or(list.len()).min(list.len()).max(from);
        &list[from..to]
    }

    /// Keeps what `tree` names, applying ranges to lists.
    pub fn filter(v: &Value, tree: &[Node]) -> Value {
        apply(v, tree, true)
    }

    /// The same, for top-level lists whose range was already applied.
    pub fn filter_unranged(v: &Value, tree: &[Node]) -> Value {
        apply(v, tree, false)
    }

    fn apply(v: &Value, tree: &[Node], top_ranges: bool) -> Value {
        match v {
            Value::Object(obj) => {
                let mut out = Map::new();
                if let Some(c) = obj.get("_class") {
                    out.insert("_class".to_string(), c.clone());
                }
                for node in tree {
                    let Some(value) = obj.get(&node.name) else {
                        continue;
                    };
                    let value = match value {
                        Value::Array(items) => {
                            let items = if top_ranges {
                                range(items, node.range)
                            } else {
                                items.as_slice()
                            };
                            Value::Array(
                                items
                                    .iter()
                                    .map(|i| match &node.children {
                                        Some(ch) => apply(i, ch, true),
                                        None => i.clone(),
                                    })
                                    .collect(),
                            )
                        }
                        other => match &node.children {
                            Some(ch) => apply(other, ch, true),
                            None => other.clone(),
                        },
                    };
                    out.insert(node.name.clone(), value);
                }
                Value::Object(out)
            }
            other => other.clone(),
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use serde_json::json;

        #[test]
        fn trees_keep_what_they_name_and_ranges_cut_lists() {
            let t = parse("builds[number,queueId,nope]{1,3},x").unwrap();
            let v = json!({"_class": "J", "y": 1, "builds": [
                {"number": 4, "queueId": 9, "url": "u"}, {"number": 3, "queueId": 8},
                {"number": 2}, {"number": 1}]});
            assert_eq!(
                filter(&v, &t),
                json!({"_class": "J", "builds": [{"number": 3, "queueId": 8}, {"number": 2}]})
            );
            assert_eq!(parse("a{2}").unwrap()[0].range, Some((Some(2), Some(3))));
            assert_eq!(parse("a{,5}").unwrap()[0].range, Some((None, Some(5))));
            for bad in ["", "a[", "a[b", "a{x}", "a{", "a,,b", "a]"] {
                assert!(parse(bad).is_err(), "{bad}");
            }
        }
    }
}
