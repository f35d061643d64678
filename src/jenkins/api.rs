//! Parsing Jenkins' answers (queue items, builds, crumbs, `Location`, console text) into typed
//! values at the boundary.
//!
//! Every function takes untrusted bytes and returns a value or a [`JenkinsError::Unexpected`]
//! naming the field that was wrong; none panics. URLs Jenkins reports are never followed: build
//! URLs are built from the configured job URL and the build number, so a Jenkins behind a proxy
//! that reports another host still works. This module does no I/O.

use super::{BuildRef, BuildState, JenkinsError, QueueState};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::time::Duration;
use url::Url;

fn unexpected(method: &'static str, what: impl Into<String>) -> JenkinsError {
    JenkinsError::Unexpected {
        method,
        what: what.into(),
    }
}

fn object<'a>(
    method: &'static str,
    body: &'a Value,
    what: &str,
) -> Result<&'a Map<String, Value>, JenkinsError> {
    body.as_object()
        .ok_or_else(|| unexpected(method, format!("{what} is not a JSON object")))
}

fn parse_json(method: &'static str, body: &[u8], what: &str) -> Result<Value, JenkinsError> {
    serde_json::from_slice(body)
        .map_err(|e| unexpected(method, format!("{what} is not JSON ({e})")))
}

/// A field that must be absent, null, or of one type.
fn optional<'a, T>(
    method: &'static str,
    obj: &'a Map<String, Value>,
    key: &str,
    kind: &str,
    get: impl Fn(&'a Value) -> Option<T>,
) -> Result<Option<T>, JenkinsError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => get(v)
            .map(Some)
            .ok_or_else(|| unexpected(method, format!("`{key}` is not {kind}"))),
    }
}

/// A millisecond count, as Jenkins gives durations and timestamps (integers; tolerate floats).
fn millis(v: &Value) -> Option<i64> {
    v.as_i64()
        .or_else(|| v.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
}

/// `{job_url}{number}/`: the build's URL under the configured base.
pub fn build_url(job_url: &Url, number: u64) -> Result<Url, JenkinsError> {
    job_url.join(&format!("{number}/")).map_err(|e| {
        unexpected(
            "build",
            format!("cannot form the URL of build #{number} ({e})"),
        )
    })
}

/// `{base}queue/item/{id}/`: the queue item's URL under the configured base.
pub fn queue_url(base: &Url, id: u64) -> Result<Url, JenkinsError> {
    base.join(&format!("queue/item/{id}/")).map_err(|e| {
        unexpected(
            "queue",
            format!("cannot form the URL of queue item {id} ({e})"),
        )
    })
}

/// The queue item id in a trigger's `Location` (`…/queue/item/N/`), whatever host it names.
pub fn parse_queue_location(location: &str) -> Result<u64, JenkinsError> {
    let path = match Url::parse(location) {
        Ok(u) => u.path().to_string(),
        Err(_) => location.split(['?', '#']).next().unwrap_or("").to_string(),
    };
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    segments
        .windows(3)
        .rev()
        .find(|w| w[0] == "queue" && w[1] == "item")
        .and_then(|w| w[2].parse::<u64>().ok())
        .ok_or(JenkinsError::NoLocation)
}

/// A queue item (`GET queue/item/N/api/json`): waiting, started (with the build under
/// `job_url`), or cancelled.
pub fn parse_queue_item(body: &[u8], job_url: &Url) -> Result<QueueState, JenkinsError> {
    const M: &str = "queue";
    let json = parse_json(M, body, "the queue item")?;
    let obj = object(M, &json, "the queue item")?;
    queue_state_of(M, obj, job_url)
}

fn queue_state_of(
    method: &'static str,
    obj: &Map<String, Value>,
    job_url: &Url,
) -> Result<QueueState, JenkinsError> {
    // `why` is only ever shown: anything but a string is no reason.
    let why = obj.get("why").and_then(Value::as_str).map(str::to_string);
    if optional(method, obj, "cancelled", "true or false", Value::as_bool)? == Some(true) {
        return Ok(QueueState::Cancelled { why });
    }
    match obj.get("executable") {
        None | Some(Value::Null) => Ok(QueueState::Waiting { why }),
        Some(exe) => {
            let exe = object(method, exe, "`executable`")?;
            let number = optional(method, exe, "number", "a build number", Value::as_u64)?
                .ok_or_else(|| unexpected(method, "`executable` has no `number`"))?;
            Ok(QueueState::Started(BuildRef {
                number,
                url: build_url(job_url, number)?,
            }))
        }
    }
}

/// The whole queue (`GET queue/api/json?tree=items[id,why,…]`): every item still in it, of any
/// job, by id. Items that left the queue are not listed (Jenkins keeps those only under
/// `queue/item/N/`).
pub fn parse_queue_listing(
    body: &[u8],
    job_url: &Url,
) -> Result<BTreeMap<u64, QueueState>, JenkinsError> {
    const M: &str = "queue";
    let json = parse_json(M, body, "the queue")?;
    let obj = object(M, &json, "the queue")?;
    let mut out = BTreeMap::new();
    for item in optional(M, obj, "items", "a list", Value::as_array)?.unwrap_or(&Vec::new()) {
        let item = object(M, item, "a queue item")?;
        let id = optional(M, item, "id", "a queue item id", Value::as_u64)?
            .ok_or_else(|| unexpected(M, "a queue item has no `id`"))?;
        out.insert(id, queue_state_of(M, item, job_url)?);
    }
    Ok(out)
}

/// A build (`GET {build}api/json?tree=…`).
pub fn parse_build(body: &[u8]) -> Result<BuildState, JenkinsError> {
    const M: &str = "build";
    let json = parse_json(M, body, "the build")?;
    let obj = object(M, &json, "the build")?;
    build_state_of(M, obj)
}

fn build_state_of(
    method: &'static str,
    obj: &Map<String, Value>,
) -> Result<BuildState, JenkinsError> {
    let m = method;
    let building = optional(m, obj, "building", "true or false", Value::as_bool)?
        .ok_or_else(|| unexpected(m, "the build has no `building` field"))?;
    let result = optional(m, obj, "result", "a string", Value::as_str)?.map(str::to_string);
    let positive = |ms: Option<i64>| {
        ms.filter(|ms| *ms > 0)
            .map(|ms| Duration::from_millis(ms.unsigned_abs()))
    };
    let estimated = positive(optional(
        m,
        obj,
        "estimatedDuration",
        "a number of milliseconds",
        millis,
    )?);
    let duration = positive(optional(
        m,
        obj,
        "duration",
        "a number of milliseconds",
        millis,
    )?);
    let started_at_ms =
        optional(m, obj, "timestamp", "a number of milliseconds", millis)?.filter(|t| *t > 0);
    let mut artifacts = Vec::new();
    if let Some(list) = optional(m, obj, "artifacts", "a list", Value::as_array)? {
        for entry in list {
            let entry = object(m, entry, "an artifact")?;
            let path = optional(m, entry, "relativePath", "a string", Value::as_str)?
                .ok_or_else(|| unexpected(m, "an artifact has no `relativePath`"))?;
            artifacts.push(path.to_string());
        }
    }
    Ok(BuildState {
        building,
        result,
        estimated,
        started_at_ms,
        duration,
        artifacts,
    })
}

/// One build in the job-level poll: its number, the queue item it came from, its state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobBuild {
    /// The build number.
    pub number: u64,
    /// `queueId`, when Jenkins gave it.
    pub queue_id: Option<u64>,
    /// `building`, `result`, durations, `timestamp`, artifacts.
    pub state: BuildState,
}

/// The job-level poll (`GET {job}api/json?tree=builds[number,queueId,building,…]{0,N}`, or
/// `allBuilds[…]` past Jenkins' 100 newest): the builds listed, newest first as Jenkins lists
/// them.
pub fn parse_job_builds(body: &[u8]) -> Result<Vec<JobBuild>, JenkinsError> {
    const M: &str = "builds";
    let json = parse_json(M, body, "the job")?;
    let obj = object(M, &json, "the job")?;
    let list = match optional(M, obj, "builds", "a list", Value::as_array)? {
        Some(l) => Some(l),
        None => optional(M, obj, "allBuilds", "a list", Value::as_array)?,
    };
    let mut out = Vec::new();
    for b in list.unwrap_or(&Vec::new()) {
        let b = object(M, b, "a build")?;
        let number = optional(M, b, "number", "a build number", Value::as_u64)?
            .ok_or_else(|| unexpected(M, "a build has no `number`"))?;
        let queue_id = optional(M, b, "queueId", "a queue id", Value::as_u64)?;
        out.push(JobBuild {
            number,
            queue_id,
            state: build_state_of(M, b)?,
        });
    }
    Ok(out)
}

/// The builds of a job with the queue item each came from
/// (`GET {job}api/json?tree=builds[number,queueId]`): `(number, queue id)` pairs.
pub fn parse_builds(body: &[u8]) -> Result<Vec<(u64, u64)>, JenkinsError> {
    const M: &str = "builds";
    let json = parse_json(M, body, "the job")?;
    let obj = object(M, &json, "the job")?;
    let mut out = Vec::new();
    for b in optional(M, obj, "builds", "a list", Value::as_array)?.unwrap_or(&Vec::new()) {
        let b = object(M, b, "a build")?;
        let number = optional(M, b, "number", "a build number", Value::as_u64)?;
        let queue = optional(M, b, "queueId", "a queue id", Value::as_u64)?;
        if let (Some(n), Some(q)) = (number, queue) {
            out.push((n, q));
        }
    }
    Ok(out)
}

/// A crumb (`GET crumbIssuer/api/json`): the header name and its value.
pub fn parse_crumb(body: &[u8]) -> Result<(String, String), JenkinsError> {
    const M: &str = "crumb";
    let json = parse_json(M, body, "the crumb")?;
    let obj = object(M, &json, "the crumb")?;
    let field = optional(M, obj, "crumbRequestField", "a string", Value::as_str)?
        .filter(|f| !f.is_empty())
        .ok_or_else(|| unexpected(M, "the crumb has no `crumbRequestField`"))?;
    let crumb = optional(M, obj, "crumb", "a string", Value::as_str)?
        .filter(|c| !c.is_empty())
        .ok_or_else(|| unexpected(M, "the crumb has no `crumb`"))?;
    Ok((field.to_string(), crumb.to_string()))
}

/// Whether a 403's body asks for a crumb (Jenkins: "No valid crumb was included in the request").
pub fn asks_for_crumb(body: &[u8]) -> bool {
    String::from_utf8_lossy(body)
        .to_ascii_lowercase()
        .contains("crumb")
}

/// The URL path of an artifact under a build: each segment of `relative_path` percent-encoded;
/// refuses empty, absolute and `..` paths.
pub fn artifact_url(build: &Url, relative_path: &str) -> Result<Url, JenkinsError> {
    let bad = || {
        unexpected(
            "artifact",
            format!("`{}` is not an artifact path", shown(relative_path)),
        )
    };
    let segments: Vec<&str> = relative_path.split('/').collect();
    if relative_path.is_empty()
        || segments
            .iter()
            .any(|s| s.is_empty() || *s == "." || *s == "..")
    {
        return Err(bad());
    }
    let mut url = build.clone();
    {
        let mut path = url.path_segments_mut().map_err(|_| bad())?;
        path.pop_if_empty().push("artifact");
        for s in segments {
            path.push(s);
        }
    }
    Ok(url)
}

/// At most 80 characters of untrusted text, without control characters.
pub(crate) fn shown(s: &str) -> String {
    let mut out: String = s.chars().filter(|c| !c.is_control()).take(80).collect();
    if s.chars().count() > 80 {
        out.push('…');
    }
    out
}

/// Words after which a console line is likely to carry a secret value.
const SECRET_WORDS: [&str; 7] = [
    "apikey",
    "api_key",
    "api-key",
    "token",
    "password",
    "secret",
    "slclient.toml",
];

/// One console line made safe to show: control characters (ANSI colours) dropped, the value after
/// a secret-looking key and any long base64-looking run replaced by `[redacted]`.
pub fn redact_console_line(line: &str) -> String {
    let clean: String = strip_ansi(line)
        .chars()
        .filter(|c| *c == '\t' || !c.is_control())
        .collect();
    let lower = clean.to_ascii_lowercase();
    if let Some(pos) = SECRET_WORDS
        .iter()
        .filter_map(|w| lower.find(w).map(|p| p + w.len()))
        .min()
    {
        // Keep the key and its separator; hide everything after it.
        if let Some(rest) = clean.get(pos..) {
            let sep_len = rest.len()
                - rest
                    .trim_start_matches(['"', '\'', ':', '=', ' ', '\t'])
                    .len();
            if rest.len() > sep_len {
                let keep = clean.get(..pos + sep_len).unwrap_or("");
                return format!("{keep}[redacted]");
            }
        }
    }
    redact_long_runs(&clean)
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for n in chars.by_ref() {
                if n.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Replaces runs of 32 or more base64 characters (an encoded secret or token) by `[redacted]`.
fn redact_long_runs(s: &str) -> String {
    let is_b64 = |c: char| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=' | '_' | '-');
    let mut out = String::with_capacity(s.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        // Paths and URLs are long runs too: only redact runs that mix letters and digits.
        let mixed =
            run.chars().any(|c| c.is_ascii_digit()) && run.chars().any(|c| c.is_ascii_alphabetic());
        if run.len() >= 32 && mixed && !run.contains("//") {
            out.push_str("[redacted]");
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in s.chars() {
        if is_b64(c) {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

/// The last `max_lines` lines of console text, each made safe with [`redact_console_line`].
pub fn console_tail_of(text: &[u8], max_lines: usize) -> String {
    let text = String::from_utf8_lossy(text);
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(max_lines);
    lines
        .get(from..)
        .unwrap_or(&[])
        .iter()
        .map(|l| redact_console_line(l))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_name_their_queue_item_whatever_the_host() {
        assert_eq!(
            parse_queue_location("http://jenkins:8080/queue/item/42/").unwrap(),
            42
        );
        assert_eq!(
            parse_queue_location("https://x/jenkins/queue/item/7").unwrap(),
            7
        );
        assert_eq!(parse_queue_location("/queue/item/9/").unwrap(), 9);
        for bad in [
            "",
            "http://x/queue/item/",
            "http://x/queue/item/abc/",
            "http://x/job/a/1/",
        ] {
            assert!(
                matches!(parse_queue_location(bad), Err(JenkinsError::NoLocation)),
                "{bad}"
            );
        }
    }

    #[test]
    fn artifact_paths_are_encoded_and_never_climb() {
        let b = Url::parse("http://j/job/a%20b/3/").unwrap();
        assert_eq!(
            artifact_url(&b, "logs/connector sl.log").unwrap().as_str(),
            "http://j/job/a%20b/3/artifact/logs/connector%20sl.log"
        );
        for bad in ["", "../x", "a/../../b", "/etc/passwd", "a//b"] {
            assert!(artifact_url(&b, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn console_lines_hide_secret_values_and_colours() {
        assert_eq!(
            redact_console_line("iam_api_key = \"abc\""),
            "iam_api_key = \"[redacted]"
        );
        assert_eq!(
            redact_console_line("  slclient.toml: W0JsdWVtaXhdCmlhbV9hcGlfa2V5"),
            "  slclient.toml: [redacted]"
        );
        assert_eq!(
            redact_console_line("data W0JsdWVtaXhdCmlhbV9hcGlfa2V5ID0gImtxMlY4aE4wWnQxbVdj end"),
            "data [redacted] end"
        );
        assert_eq!(
            redact_console_line("\u{1b}[31mERROR\u{1b}[0m: exit 1"),
            "ERROR: exit 1"
        );
        assert_eq!(
            redact_console_line("Finished: FAILURE"),
            "Finished: FAILURE"
        );
        assert_eq!(
            redact_console_line("/var/jenkins_home/workspace/armada-ha-master-get-info"),
            "/var/jenkins_home/workspace/armada-ha-master-get-info"
        );
    }

    #[test]
    fn the_console_tail_keeps_the_last_lines() {
        let text: String = (1..=100).map(|i| format!("line {i}\n")).collect();
        let tail = console_tail_of(text.as_bytes(), 3);
        assert_eq!(tail, "line 98\nline 99\nline 100");
        assert_eq!(console_tail_of(b"", 30), "");
        assert_eq!(console_tail_of(b"only\n", 30), "only");
    }
}
