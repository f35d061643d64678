//! The diagnosis engine against many shapes of the two Jenkins artifacts: the shared fixtures,
//! kubectl YAML and JSON with the noise real logs carry, wrapped base64, broken input of every
//! kind. Every case also checks that no output — findings, explanations, `Debug`, text and JSON
//! renderings — contains the key or any other secret value of the decoded `slclient.toml`.

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine as _;
use linkbot::diagnosis::artifacts::{
    find_api_key, find_region, ApiKeyFinding, KeyTable, MissingKey, MissingRegion, RegionFinding,
    MAX_VALUES,
};
use linkbot::diagnosis::render;
use linkbot::diagnosis::rules::{apply_iam, diagnose, Diagnosis};
use linkbot::diagnosis::verdict::{IamOutcome, Report, StepId, StepStatus, VerdictCode};
use linkbot::domain::Region;
use proptest::prelude::*;
use std::path::PathBuf;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// Secrets and builders

/// A parse that takes this long is stuck (quadratic on hostile input), not slow: speed targets
/// live in `benches/` (BENCHMARKS.md), and a loaded 2-core CI must not fail a test for being slow.
const HANG_GUARD: Duration = Duration::from_secs(30);

/// The API key of the TOML the tests build.
const KEY: &str = "Zx9pQ2wErT5yUiO8aSdF3gHjK6lMnB1vC4xZ7qWeRtY0";
/// Other secret values of that TOML.
const CLIENT_SECRET: &str = "cs-6f1d2a9b8c7e4f30a1b2c3d4e5f60718";
const REFRESH: &str = "rt-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789";
/// The API key of the shared fixtures.
const FIXTURE_KEY: &str = "kq2V8hN0Zt1mWcXb3fLp9RyA6uJdE4sG7oHiQ5vTnB2w";
/// The secret values of the fixtures this repository adds (json-key-present-eu-de, crlf-wrapped-block).
const OWN_FIXTURE_KEY: &str = "Hn4Xq8Wv2Ke6Ry0Tu3Io7Pa1Sd5Fg9Jk2Lz8Xc4Vb";
const OWN_FIXTURE_SECRETS: [&str; 2] = [
    "cs-9Qm2Lx7Rk4Tw1Zp8Vn3Bh6Jd0Fg5Sa",
    "rt-Pl0Ok9Ij8Uh7Yg6Tf5Rd4Es3Wa2Qz1",
];

fn secrets() -> Vec<&'static str> {
    let mut v = vec![KEY, CLIENT_SECRET, REFRESH, FIXTURE_KEY, OWN_FIXTURE_KEY];
    v.extend(OWN_FIXTURE_SECRETS);
    v
}

/// `slclient.toml` as the storage secret holds it, with the key in `[Bluemix]`.
fn toml_bluemix(key_line: &str) -> String {
    format!(
        "[Bluemix]\n\
         iam_url = \"https://iam.cloud.ibm.com\"\n\
         iam_client_id = \"bx\"\n\
         iam_client_secret = \"{CLIENT_SECRET}\"\n\
         {key_line}\n\
         refresh_token = \"{REFRESH}\"\n\
         pay_tier = \"paid\"\n\
         containers_api_route = \"https://us-east.containers.cloud.ibm.com\"\n\
         \n\
         [Softlayer]\n\
         softlayer_datacenter = \"wdc04\"\n"
    )
}

fn good_toml() -> String {
    toml_bluemix(&format!("iam_api_key = \"{KEY}\""))
}

fn b64(s: impl AsRef<[u8]>) -> String {
    STANDARD.encode(s)
}

/// `kubectl get secret … -o yaml` with `data_lines` under `data:` (each already indented).
fn secret_yaml(prefix: &str, data_lines: &str) -> String {
    format!(
        "{prefix}apiVersion: v1\n\
         data:\n\
         {data_lines}\
         kind: Secret\n\
         metadata:\n  creationTimestamp: \"2026-10-02T08:11:52Z\"\n  name: storage-secret-store\n  namespace: kube-system\n  resourceVersion: \"81723\"\n\
         type: Opaque\n"
    )
}

const ECHO_SECRET: &str = "+ kubectl get secret storage-secret-store -n kube-system -o yaml\n";
const ECHO_CM: &str = "+ kubectl get configmap satellite-link-config -n satellite-link -o yaml\n";

/// The usual one-line form, after the echoed command.
fn secret_yaml_one_line(toml: &str) -> String {
    secret_yaml(ECHO_SECRET, &format!("  slclient.toml: {}\n", b64(toml)))
}

/// Lines of at most 76 characters, each with `indent` before it.
fn wrapped(s: &str, indent: &str) -> String {
    s.as_bytes()
        .chunks(76)
        .map(|c| format!("{indent}{}\n", String::from_utf8_lossy(c)))
        .collect()
}

fn secret_json_value(encoded: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "v1",
        "data": { "slclient.toml": encoded },
        "kind": "Secret",
        "metadata": { "name": "storage-secret-store", "namespace": "kube-system" },
        "type": "Opaque"
    })
}

fn configmap_yaml(prefix: &str, region_line: &str) -> String {
    format!(
        "{prefix}apiVersion: v1\n\
         data:\n  location_id: c1hk4ek107l5au5mq8hg\n{region_line}  log_level: info\n\
         kind: ConfigMap\n\
         metadata:\n  name: satellite-link-config\n  namespace: satellite-link\n"
    )
}

fn configmap(region: &str) -> String {
    configmap_yaml(ECHO_CM, &format!("  region: {region}\n"))
}

fn fixture(scenario: &str, file: &str) -> Vec<u8> {
    let path: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "tests",
        "fixtures",
        "artifacts",
        scenario,
        file,
    ]
    .iter()
    .collect();
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn key_fixture(scenario: &str) -> Vec<u8> {
    fixture(scenario, "connector_getConnectorAPIKey.log")
}

fn cm_fixture(scenario: &str) -> Vec<u8> {
    fixture(scenario, "connector_sl_configMap.log")
}

fn region(r: &str) -> Region {
    Region::parse(r).expect("test region")
}

/// A deterministic byte generator for junk (xorshift).
fn junk(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 24) as u8
        })
        .collect()
}

/// Fails if `output` contains any 8-character window of any secret value (the fingerprint shows
/// only the last 4 characters of the key, so a window of 8 means a leak).
fn assert_no_secret(case: &str, output: &str) {
    for secret in secrets() {
        let chars: Vec<char> = secret.chars().collect();
        for window in chars.windows(8) {
            let w: String = window.iter().collect();
            assert!(
                !output.contains(&w),
                "{case}: output leaks part of a secret ({w}):\n{output}"
            );
        }
    }
}

#[test]
#[should_panic(expected = "leaks part of a secret")]
fn the_leak_check_catches_a_fragment_of_the_key() {
    assert_no_secret("self-check", &format!("evidence: {}", &KEY[10..20]));
}

/// Everything a human or a log could see of a diagnosis.
fn all_outputs(d: &Diagnosis, expected: &Region) -> String {
    let report = Report::offline(d, expected);
    format!(
        "{d:?}\n{report:?}\n{}\n{}",
        render::text(&report),
        render::json(&report)
    )
}

// ---------------------------------------------------------------------------------------------
// find_api_key

/// What a case expects of [`find_api_key`].
enum K {
    /// The key of the tests' TOML (or the given one), in this table.
    Present(&'static str, KeyTable),
    /// Missing, for a reason the predicate accepts.
    Missing(fn(&MissingKey) -> bool),
}

fn api_key_cases() -> Vec<(&'static str, Vec<u8>, K)> {
    let good = good_toml();
    let enc = b64(&good);
    let json_compact = serde_json::to_string(&secret_json_value(&enc)).expect("json");
    let json_pretty = serde_json::to_string_pretty(&secret_json_value(&enc)).expect("json");
    let list = serde_json::json!({
        "apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""},
        "items": [secret_json_value(&enc)]
    });
    let annotation_toml = toml_bluemix("");
    let annotated = format!(
        "{ECHO_SECRET}apiVersion: v1\ndata:\n  slclient.toml: {enc}\nkind: Secret\nmetadata:\n  annotations:\n    kubectl.kubernetes.io/last-applied-configuration: |\n      {{\"apiVersion\":\"v1\",\"data\":{{\"slclient.toml\":\"{}\"}},\"kind\":\"Secret\"}}\n  name: storage-secret-store\ntype: Opaque\n",
        b64(&annotation_toml)
    );
    // A Secret of `keys` data keys and no `slclient.toml` (each key is 2 YAML values).
    let many_keys = |keys: usize| {
        let mut s = String::from("apiVersion: v1\ndata:\n");
        for i in 0..keys {
            s.push_str(&format!("  key{i}: value-{i}\n"));
        }
        s.push_str("kind: Secret\n");
        s
    };
    // The most keys that stay within MAX_VALUES: root map, `apiVersion` (2), `data` (2),
    // `kind` (2), then 2 per data key.
    let most_keys = many_keys((MAX_VALUES - 7) / 2);
    // 4 MiB of keys: about 340 000 values, refused (MAX_VALUES) instead of read.
    let big_configmap_like = {
        let mut s = String::from("apiVersion: v1\ndata:\n");
        let mut i = 0;
        while s.len() < 4 * 1024 * 1024 {
            s.push_str(&format!("  key{i}: value-{i}\n"));
            i += 1;
        }
        s.push_str("kind: Secret\n");
        s
    };

    vec![
        // The shared fixtures.
        ("fixture key-present-region-ok", key_fixture("key-present-region-ok"), K::Present(FIXTURE_KEY, KeyTable::Bluemix)),
        ("fixture region-wrong", key_fixture("region-wrong"), K::Present(FIXTURE_KEY, KeyTable::Bluemix)),
        (
            "fixture key-missing",
            key_fixture("key-missing"),
            K::Missing(|m| matches!(m, MissingKey::NoIamApiKey { tables, misplaced_in: None, .. } if tables == &["Bluemix", "Softlayer"])),
        ),
        // This repository's own fixtures.
        ("fixture json-key-present-eu-de", key_fixture("json-key-present-eu-de"), K::Present(OWN_FIXTURE_KEY, KeyTable::Bluemix)),
        ("fixture crlf-wrapped-block", key_fixture("crlf-wrapped-block"), K::Present(OWN_FIXTURE_KEY, KeyTable::Bluemix)),
        ("fixture not-found", key_fixture("not-found"), K::Missing(|m| *m == MissingKey::NotFound)),
        // YAML with and without noise before the document.
        ("yaml with + echo", secret_yaml_one_line(&good).into_bytes(), K::Present(KEY, KeyTable::Bluemix)),
        ("yaml without echo", secret_yaml("", &format!("  slclient.toml: {enc}\n")).into_bytes(), K::Present(KEY, KeyTable::Bluemix)),
        (
            "yaml with $ echo",
            secret_yaml("$ kubectl get secret storage-secret-store -n kube-system -o yaml\n", &format!("  slclient.toml: {enc}\n")).into_bytes(),
            K::Present(KEY, KeyTable::Bluemix),
        ),
        (
            "yaml after Warning: lines",
            secret_yaml(
                &format!("Warning: policy/v1beta1 PodSecurityPolicy is deprecated in v1.21+\nWarning: use a kubeconfig\n{ECHO_SECRET}"),
                &format!("  slclient.toml: {enc}\n"),
            )
            .into_bytes(),
            K::Present(KEY, KeyTable::Bluemix),
        ),
        (
            "yaml after klog and shell noise",
            secret_yaml(
                "Started by timer\n[Pipeline] sh\nW1002 08:11:52.123456   40312 warnings.go:70] unknown field\n+ set -x\n",
                &format!("  slclient.toml: {enc}\n"),
            )
            .into_bytes(),
            K::Present(KEY, KeyTable::Bluemix),
        ),
        (
            "yaml with trailing noise after the document",
            format!("{}+ set +x\nFinished: SUCCESS\n[Pipeline] }}\n", secret_yaml_one_line(&good)).into_bytes(),
            K::Present(KEY, KeyTable::Bluemix),
        ),
        (
            "yaml with a noise line inside the document",
            secret_yaml(ECHO_SECRET, &format!("  a.conf: eA==\n+ echo interleaved\n  slclient.toml: {enc}\n")).into_bytes(),
            K::Present(KEY, KeyTable::Bluemix),
        ),
        ("yaml with CRLF", secret_yaml_one_line(&good).replace('\n', "\r\n").into_bytes(), K::Present(KEY, KeyTable::Bluemix)),
        ("yaml with a BOM", format!("\u{feff}{}", secret_yaml("", &format!("  slclient.toml: {enc}\n"))).into_bytes(), K::Present(KEY, KeyTable::Bluemix)),
        (
            "yaml wrapped at 76 as a plain multi-line scalar",
            secret_yaml(ECHO_SECRET, &format!("  slclient.toml:\n{}", wrapped(&enc, "    "))).into_bytes(),
            K::Present(KEY, KeyTable::Bluemix),
        ),
        (
            "yaml wrapped at 76 after the key on the same line",
            secret_yaml(ECHO_SECRET, &format!("  slclient.toml: {}", wrapped(&enc, "    ").trim_start())).into_bytes(),
            K::Present(KEY, KeyTable::Bluemix),
        ),
        (
            "yaml wrapped at 76 in a | block",
            secret_yaml(ECHO_SECRET, &format!("  slclient.toml: |\n{}", wrapped(&enc, "    "))).into_bytes(),
            K::Present(KEY, KeyTable::Bluemix),
        ),
        (
            "yaml wrapped at 76 in a |- block with CRLF",
            secret_yaml(ECHO_SECRET, &format!("  slclient.toml: |-\n{}", wrapped(&enc, "    "))).replace('\n', "\r\n").into_bytes(),
            K::Present(KEY, KeyTable::Bluemix),
        ),
        (
            "yaml wrapped at 76 in a > block",
            secret_yaml(ECHO_SECRET, &format!("  slclient.toml: >\n{}", wrapped(&enc, "    "))).into_bytes(),
            K::Present(KEY, KeyTable::Bluemix),
        ),
        ("yaml double-quoted", secret_yaml(ECHO_SECRET, &format!("  slclient.toml: \"{enc}\"\n")).into_bytes(), K::Present(KEY, KeyTable::Bluemix)),
        ("yaml single-quoted", secret_yaml(ECHO_SECRET, &format!("  slclient.toml: '{enc}'\n")).into_bytes(), K::Present(KEY, KeyTable::Bluemix)),
        ("yaml quoted key", secret_yaml(ECHO_SECRET, &format!("  \"slclient.toml\": {enc}\n")).into_bytes(), K::Present(KEY, KeyTable::Bluemix)),
        (
            "yaml double-quoted wrapped over lines",
            secret_yaml(ECHO_SECRET, &format!("  slclient.toml: \"{}\"\n", wrapped(&enc, "    ").trim())).into_bytes(),
            K::Present(KEY, KeyTable::Bluemix),
        ),
        (
            "yaml base64 without padding",
            secret_yaml(ECHO_SECRET, &format!("  slclient.toml: {}\n", STANDARD_NO_PAD.encode(&good))).into_bytes(),
            K::Present(KEY, KeyTable::Bluemix),
        ),
        (
            "yaml reads data, not the last-applied annotation",
            annotated.into_bytes(),
            K::Present(KEY, KeyTable::Bluemix),
        ),
        // JSON.
        ("json compact", json_compact.clone().into_bytes(), K::Present(KEY, KeyTable::Bluemix)),
        (
            "json pretty after + kubectl -o json",
            format!("+ kubectl get secret storage-secret-store -n kube-system -o json\n{json_pretty}\n").into_bytes(),
            K::Present(KEY, KeyTable::Bluemix),
        ),
        (
            "json compact with trailing noise",
            format!("+ kubectl get secret storage-secret-store -o json\n{json_compact}\n+ set +x\n").into_bytes(),
            K::Present(KEY, KeyTable::Bluemix),
        ),
        ("json pretty with CRLF", json_pretty.replace('\n', "\r\n").into_bytes(), K::Present(KEY, KeyTable::Bluemix)),
        ("json List of one secret", serde_json::to_vec(&list).expect("json"), K::Present(KEY, KeyTable::Bluemix)),
        (
            "json truncated after the value",
            json_pretty.get(..json_pretty.find("\"kind\"").expect("kind")).expect("cut").as_bytes().to_vec(),
            K::Present(KEY, KeyTable::Bluemix),
        ),
        // The TOML inside.
        (
            "iam_api_key top-level",
            secret_yaml_one_line(&format!("iam_api_key = \"{KEY}\"\n[Bluemix]\niam_client_secret = \"{CLIENT_SECRET}\"\n")).into_bytes(),
            K::Present(KEY, KeyTable::TopLevel),
        ),
        (
            "[bluemix] lower-case table",
            secret_yaml_one_line(&good.replace("[Bluemix]", "[bluemix]")).into_bytes(),
            K::Present(KEY, KeyTable::Bluemix),
        ),
        (
            "[BLUEMIX] upper-case table and key",
            secret_yaml_one_line(&good.replace("[Bluemix]", "[BLUEMIX]").replace("iam_api_key", "IAM_API_KEY")).into_bytes(),
            K::Present(KEY, KeyTable::Bluemix),
        ),
        (
            "TOML with CRLF",
            secret_yaml_one_line(&good.replace('\n', "\r\n")).into_bytes(),
            K::Present(KEY, KeyTable::Bluemix),
        ),
        (
            "empty iam_api_key",
            secret_yaml_one_line(&toml_bluemix("iam_api_key = \"\"")).into_bytes(),
            K::Missing(|m| matches!(m, MissingKey::EmptyIamApiKey { table: KeyTable::Bluemix, .. })),
        ),
        (
            "blank iam_api_key",
            secret_yaml_one_line(&toml_bluemix("iam_api_key = \"   \"")).into_bytes(),
            K::Missing(|m| matches!(m, MissingKey::EmptyIamApiKey { .. })),
        ),
        (
            "iam_api_key not a string",
            secret_yaml_one_line(&toml_bluemix("iam_api_key = 12345")).into_bytes(),
            K::Missing(|m| matches!(m, MissingKey::IamApiKeyNotString { table: KeyTable::Bluemix, .. })),
        ),
        (
            "missing iam_api_key",
            secret_yaml_one_line(&toml_bluemix("")).into_bytes(),
            K::Missing(|m| matches!(m, MissingKey::NoIamApiKey { tables, misplaced_in: None, .. } if tables == &["Bluemix", "Softlayer"])),
        ),
        (
            "iam_api_key only in [Softlayer]",
            secret_yaml_one_line(&format!("{}iam_api_key = \"{KEY}\"\n", toml_bluemix(""))).into_bytes(),
            K::Missing(|m| matches!(m, MissingKey::NoIamApiKey { misplaced_in: Some(t), .. } if t == "Softlayer")),
        ),
        (
            "empty slclient.toml value",
            secret_yaml(ECHO_SECRET, "  slclient.toml: \"\"\n").into_bytes(),
            K::Missing(|m| matches!(m, MissingKey::NoIamApiKey { toml_bytes: 0, .. })),
        ),
        (
            "slclient.toml with no value at all",
            secret_yaml(ECHO_SECRET, "  slclient.toml:\n").into_bytes(),
            K::Missing(|m| matches!(m, MissingKey::NoIamApiKey { toml_bytes: 0, .. })),
        ),
        (
            "undecodable base64",
            secret_yaml(ECHO_SECRET, &format!("  slclient.toml: {}*!{}\n", &enc[..20], &enc[20..])).into_bytes(),
            K::Missing(|m| matches!(m, MissingKey::BadBase64 { detail } if detail.contains("position 21"))),
        ),
        (
            "base64 of a non-UTF-8 blob",
            secret_yaml(ECHO_SECRET, &format!("  slclient.toml: {}\n", b64([0xff, 0xfe, 0x00, 0x80, 0xc3, 0x28]))).into_bytes(),
            K::Missing(|m| *m == MissingKey::NotUtf8 { bytes: 6 }),
        ),
        (
            "base64 of invalid TOML holding secrets",
            secret_yaml_one_line(&format!("[Bluemix]\niam_client_secret = \"{CLIENT_SECRET}\"\niam_api_key = {KEY}\nrefresh_token = \"{REFRESH}\"\n")).into_bytes(),
            K::Missing(|m| matches!(m, MissingKey::BadToml { line: Some(3), .. })),
        ),
        (
            "duplicate iam_api_key",
            secret_yaml_one_line(&format!("[Bluemix]\niam_api_key = \"{KEY}\"\niam_api_key = \"{REFRESH}\"\n")).into_bytes(),
            K::Missing(|m| matches!(m, MissingKey::BadToml { line: Some(3), .. })),
        ),
        // Secrets without slclient.toml.
        (
            "other keys but no slclient.toml",
            secret_yaml(ECHO_SECRET, "  ca.crt: LS0tLS1CRUdJTg==\n  other.conf: eA==\n").into_bytes(),
            K::Missing(|m| matches!(m, MissingKey::NoSlclientToml { keys } if keys == &["ca.crt", "other.conf"])),
        ),
        (
            "secret without data",
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: storage-secret-store\ntype: Opaque\n".as_bytes().to_vec(),
            K::Missing(|m| matches!(m, MissingKey::NoSlclientToml { keys } if keys.is_empty())),
        ),
        (
            "json secret with other keys",
            br#"{"apiVersion":"v1","data":{"token":"eA=="},"kind":"Secret"}"#.to_vec(),
            K::Missing(|m| matches!(m, MissingKey::NoSlclientToml { keys } if keys == &["token"])),
        ),
        // kubectl errors and garbage.
        (
            "kubectl NotFound",
            format!("{ECHO_SECRET}Error from server (NotFound): secrets \"storage-secret-store\" not found\n").into_bytes(),
            K::Missing(|m| *m == MissingKey::NotFound),
        ),
        (
            "kubectl NotFound with CRLF and no echo",
            b"Error from server (NotFound): secrets \"storage-secret-store\" not found\r\n".to_vec(),
            K::Missing(|m| *m == MissingKey::NotFound),
        ),
        (
            "kubectl Forbidden",
            format!("{ECHO_SECRET}Error from server (Forbidden): secrets \"storage-secret-store\" is forbidden: User \"jenkins\" cannot get resource\n").into_bytes(),
            K::Missing(|m| matches!(m, MissingKey::KubectlError { message } if message.contains("Forbidden"))),
        ),
        (
            "kubectl cannot connect",
            b"The connection to the server localhost:8080 was refused - did you specify the right host or port?\n".to_vec(),
            K::Missing(|m| matches!(m, MissingKey::KubectlError { .. })),
        ),
        ("empty file", Vec::new(), K::Missing(|m| *m == MissingKey::EmptyArtifact)),
        ("whitespace only", b" \r\n\t\n".to_vec(), K::Missing(|m| *m == MissingKey::EmptyArtifact)),
        ("only the echoed command", ECHO_SECRET.as_bytes().to_vec(), K::Missing(|m| *m == MissingKey::Unreadable)),
        ("binary garbage", junk(4096, 7), K::Missing(|m| *m == MissingKey::Unreadable)),
        ("plain prose", b"the job ran but printed nothing useful\n".to_vec(), K::Missing(|m| *m == MissingKey::Unreadable)),
        ("4 MiB of junk", junk(4 * 1024 * 1024, 42), K::Missing(|m| *m == MissingKey::Unreadable)),
        (
            "secret of 49 996 keys without slclient.toml",
            most_keys.into_bytes(),
            K::Missing(|m| matches!(m, MissingKey::NoSlclientToml { keys } if keys.len() == 25 && keys.last().map(String::as_str) == Some("…"))),
        ),
        (
            "4 MiB secret without slclient.toml",
            big_configmap_like.into_bytes(),
            K::Missing(|m| *m == MissingKey::TooManyValues),
        ),
    ]
}

#[test]
fn find_api_key_handles_every_variant() {
    let cases = api_key_cases();
    assert!(cases.len() >= 50, "{} cases", cases.len());
    for (name, log, expect) in &cases {
        let started = Instant::now();
        let found = find_api_key(log);
        assert!(
            started.elapsed() < HANG_GUARD,
            "{name}: took {:?}",
            started.elapsed()
        );
        match (expect, &found) {
            (
                K::Present(key, table),
                ApiKeyFinding::Present {
                    key: got,
                    table: got_table,
                    toml_bytes,
                },
            ) => {
                assert_eq!(got.expose(), *key, "{name}");
                assert_eq!(got_table, table, "{name}");
                assert!(*toml_bytes > 0, "{name}");
            }
            (K::Missing(ok), ApiKeyFinding::Missing(why)) => {
                assert!(ok(why), "{name}: unexpected reason {why:?}");
                let explained = why.explain();
                assert!(
                    explained.ends_with('.') || explained.contains("kubectl"),
                    "{name}: {explained}"
                );
                assert_no_secret(name, &explained);
            }
            (_, other) => panic!("{name}: unexpected {other:?}"),
        }
        assert_no_secret(name, &format!("{found:?}"));
    }
}

#[test]
fn a_toml_error_says_where_without_echoing_the_line() {
    let log = secret_yaml_one_line(&format!(
        "[Bluemix]\niam_client_secret = \"{CLIENT_SECRET}\"\niam_api_key = {KEY}\n"
    ));
    let ApiKeyFinding::Missing(why) = find_api_key(log.as_bytes()) else {
        panic!("expected a TOML error")
    };
    let explained = why.explain();
    assert!(explained.contains("line 3"), "{explained}");
    assert!(explained.contains("not valid TOML"), "{explained}");
    assert_no_secret("toml error", &explained);
}

#[test]
fn missing_key_explanations_name_what_was_there() {
    let ApiKeyFinding::Missing(why) = find_api_key(&key_fixture("key-missing")) else {
        panic!("key-missing has a key")
    };
    let explained = why.explain();
    assert!(
        explained.contains("[Bluemix]") && explained.contains("[Softlayer]"),
        "{explained}"
    );
    let log = secret_yaml(ECHO_SECRET, "  ca.crt: LS0tLS1CRUdJTg==\n");
    let ApiKeyFinding::Missing(why) = find_api_key(log.as_bytes()) else {
        panic!("no slclient.toml")
    };
    assert!(why.explain().contains("`ca.crt`"), "{}", why.explain());
    assert!(!why.explain().contains("LS0t"), "{}", why.explain());
}

// ---------------------------------------------------------------------------------------------
// The live object only: annotations, second documents, Lists, invisible values, size caps

/// The storage secret whose `metadata.annotations` hold a last-applied copy with the tests' good
/// key, while the live `data` holds `data_lines` (already indented; empty for no `data:`).
fn secret_yaml_with_stale_annotation(prefix: &str, data_lines: &str, suffix: &str) -> String {
    let data = if data_lines.is_empty() {
        String::new()
    } else {
        format!("data:\n{data_lines}")
    };
    format!(
        "{prefix}apiVersion: v1\n{data}kind: Secret\nmetadata:\n  annotations:\n    kubectl.kubernetes.io/last-applied-configuration: |\n      {{\"apiVersion\":\"v1\",\"data\":{{\"slclient.toml\":\"{}\"}},\"kind\":\"Secret\",\"metadata\":{{\"name\":\"storage-secret-store\"}}}}\n  name: storage-secret-store\n  namespace: kube-system\ntype: Opaque\n{suffix}",
        b64(good_toml())
    )
}

/// The same in `-o json` form: the annotation is a JSON string holding the old object.
fn secret_json_with_stale_annotation(data: serde_json::Value) -> serde_json::Value {
    let old = serde_json::json!({
        "apiVersion": "v1", "kind": "Secret",
        "data": {"slclient.toml": b64(good_toml())},
        "metadata": {"name": "storage-secret-store"}
    });
    let mut v = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": format!("{old}\n")
            },
            "name": "storage-secret-store",
            "namespace": "kube-system"
        },
        "type": "Opaque"
    });
    if !data.is_null() {
        v["data"] = data;
    }
    v
}

fn configmap_yaml_with_stale_annotation(data_lines: &str, suffix: &str) -> String {
    let data = if data_lines.is_empty() {
        String::new()
    } else {
        format!("data:\n{data_lines}")
    };
    format!(
        "{ECHO_CM}apiVersion: v1\n{data}kind: ConfigMap\nmetadata:\n  annotations:\n    kubectl.kubernetes.io/last-applied-configuration: |\n      {{\"apiVersion\":\"v1\",\"data\":{{\"location_id\":\"c1\",\"region\":\"us-east\"}},\"kind\":\"ConfigMap\"}}\n  name: satellite-link-config\n  namespace: satellite-link\n{suffix}"
    )
}

fn live_object_key_cases() -> Vec<(&'static str, Vec<u8>, K)> {
    let enc = b64(good_toml());
    let old_enc = b64(toml_bluemix(&format!("iam_api_key = \"{REFRESH}\"")));
    let pretty = |v: &serde_json::Value| serde_json::to_string_pretty(v).expect("json");
    let no_data =
        |m: &MissingKey| matches!(m, MissingKey::NoSlclientToml { keys } if keys.is_empty());
    let only_ca =
        |m: &MissingKey| matches!(m, MissingKey::NoSlclientToml { keys } if keys == &["ca.crt"]);
    let empty_toml = |m: &MissingKey| matches!(m, MissingKey::NoIamApiKey { toml_bytes: 0, .. });
    let empty_key = |m: &MissingKey| {
        matches!(
            m,
            MissingKey::EmptyIamApiKey {
                table: KeyTable::Bluemix,
                ..
            }
        )
    };
    let too_large = |m: &MissingKey| matches!(m, MissingKey::TomlTooLarge { .. });
    let huge_toml: String = {
        let mut t = String::new();
        let mut i = 0;
        while t.len() < 3 * 1024 * 1024 {
            t.push_str(&format!("[t{i}]\n"));
            i += 1;
        }
        t
    };
    let many_tables: String = (0..4000).map(|i| format!("[t{i}]\n")).collect();
    let list_of = |items: Vec<serde_json::Value>| {
        serde_json::to_vec(&serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items}))
            .expect("json")
    };
    let other_secret = |name: &str, enc: &str| serde_json::json!({"apiVersion": "v1", "kind": "Secret", "data": {"slclient.toml": enc}, "metadata": {"name": name}});
    vec![
        (
            "yaml, no data, stale annotation",
            secret_yaml_with_stale_annotation(ECHO_SECRET, "", "").into_bytes(),
            K::Missing(no_data),
        ),
        (
            "yaml, other keys, stale annotation, trailing noise",
            secret_yaml_with_stale_annotation(ECHO_SECRET, "  ca.crt: LS0tLS1CRUdJTg==\n", "+ set +x\nFinished: SUCCESS\n").into_bytes(),
            K::Missing(only_ca),
        ),
        (
            "yaml, no data, stale annotation, trailing noise",
            secret_yaml_with_stale_annotation("", "", "[Pipeline] }\n+ set +x\n").into_bytes(),
            K::Missing(no_data),
        ),
        (
            "yaml, noise inside the document, stale annotation",
            secret_yaml_with_stale_annotation(ECHO_SECRET, "  ca.crt: LS0tLS1CRUdJTg==\n+ echo interleaved\n", "").into_bytes(),
            K::Missing(only_ca),
        ),
        (
            "yaml, annotation as a one-line quoted value",
            format!(
                "{ECHO_SECRET}apiVersion: v1\nkind: Secret\nmetadata:\n  annotations: {{kubectl.kubernetes.io/last-applied-configuration: '{{\"data\":{{\"slclient.toml\":\"{enc}\"}}}}'}}\n  name: storage-secret-store\n+ set +x\n"
            )
            .into_bytes(),
            K::Missing(no_data),
        ),
        (
            "yaml, live wrapped base64 wins over a stale annotation",
            secret_yaml_with_stale_annotation(ECHO_SECRET, &format!("  slclient.toml: |\n{}", wrapped(&old_enc, "    ")), "+ set +x\n").into_bytes(),
            K::Present(REFRESH, KeyTable::Bluemix),
        ),
        (
            "json pretty, no data, stale annotation",
            format!("+ kubectl get secret storage-secret-store -o json\n{}\n", pretty(&secret_json_with_stale_annotation(serde_json::Value::Null))).into_bytes(),
            K::Missing(no_data),
        ),
        (
            "json pretty, other keys, stale annotation, truncated",
            {
                let p = pretty(&secret_json_with_stale_annotation(serde_json::json!({"ca.crt": "LS0tLS1CRUdJTg=="})));
                p.get(..p.find("\"name\"").expect("name")).expect("cut").as_bytes().to_vec()
            },
            K::Missing(|m| matches!(m, MissingKey::NoSlclientToml { .. } | MissingKey::Unreadable)),
        ),
        (
            "json compact, no data, stale annotation",
            serde_json::to_vec(&secret_json_with_stale_annotation(serde_json::Value::Null)).expect("json"),
            K::Missing(no_data),
        ),
        // A second document is another object: never read.
        (
            "second yaml document is not read",
            format!("{}---\n{}", secret_yaml("", ""), secret_yaml("", &format!("  slclient.toml: {enc}\n"))).into_bytes(),
            K::Missing(no_data),
        ),
        (
            "second json value is not read",
            format!(
                "{}\n{}\n",
                serde_json::json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "storage-secret-store"}}),
                serde_json::to_string(&secret_json_value(&enc)).expect("json")
            )
            .into_bytes(),
            K::Missing(no_data),
        ),
        // Lists: the item with the expected name, else the only item, else refused.
        (
            "List: the item named storage-secret-store",
            list_of(vec![other_secret("other", &old_enc), other_secret("storage-secret-store", &enc)]),
            K::Present(KEY, KeyTable::Bluemix),
        ),
        (
            "List: several other objects are ambiguous",
            list_of(vec![other_secret("a", &enc), other_secret("b", &old_enc)]),
            K::Missing(|m| *m == MissingKey::AmbiguousList { items: 2 }),
        ),
        // Invisible or whitespace-only values.
        ("iam_api_key of a zero-width space", secret_yaml_one_line(&toml_bluemix("iam_api_key = \"\u{200b}\"")).into_bytes(), K::Missing(empty_key)),
        ("iam_api_key of NBSPs", secret_yaml_one_line(&toml_bluemix("iam_api_key = \"\u{a0}\u{a0}\"")).into_bytes(), K::Missing(empty_key)),
        ("iam_api_key of a BOM and an ideographic space", secret_yaml_one_line(&toml_bluemix("iam_api_key = \"\u{feff}\u{3000}\"")).into_bytes(), K::Missing(empty_key)),
        ("iam_api_key escaped zero-width joiner", secret_yaml_one_line(&toml_bluemix("iam_api_key = \"\\u200D\"")).into_bytes(), K::Missing(empty_key)),
        ("yaml slclient.toml of a zero-width space", secret_yaml(ECHO_SECRET, "  slclient.toml: \"\u{200b}\"\n").into_bytes(), K::Missing(empty_toml)),
        ("yaml slclient.toml of NBSP", secret_yaml(ECHO_SECRET, "  slclient.toml: \u{a0}\n").into_bytes(), K::Missing(empty_toml)),
        ("json slclient.toml of NBSP", serde_json::to_vec(&secret_json_value("\u{a0}")).expect("json"), K::Missing(empty_toml)),
        // One parse is bounded.
        ("3 MiB TOML of 500k tables", secret_yaml_one_line(&huge_toml).into_bytes(), K::Missing(too_large)),
        (
            "4000 tables in 40 KiB",
            secret_yaml_one_line(&many_tables).into_bytes(),
            K::Missing(|m| matches!(m, MissingKey::TomlTooManyEntries { entries: 4000, .. })),
        ),
    ]
}

#[test]
fn find_api_key_reads_the_live_object_only() {
    for (name, log, expect) in live_object_key_cases() {
        let found = find_api_key(&log);
        match (&expect, &found) {
            (
                K::Present(key, table),
                ApiKeyFinding::Present {
                    key: got,
                    table: got_table,
                    ..
                },
            ) => {
                assert_eq!(got.expose(), *key, "{name}");
                assert_eq!(got_table, table, "{name}");
            }
            (K::Missing(ok), ApiKeyFinding::Missing(why)) => {
                assert!(ok(why), "{name}: unexpected reason {why:?}");
                assert_no_secret(name, &why.explain());
                // Whatever the reason, the runbook calls it `config_missing`.
                let d = diagnose(&log, configmap("us-east").as_bytes(), &region("us-east"));
                assert_eq!(d.verdict, VerdictCode::ConfigMissing, "{name}");
                assert_eq!(d.key_fingerprint, None, "{name}");
            }
            (_, other) => panic!("{name}: unexpected {other:?}"),
        }
        assert_no_secret(name, &format!("{found:?}"));
    }
}

/// A region artifact and a predicate on why it gives no region.
type RegionCase = (&'static str, String, fn(&MissingRegion) -> bool);

#[test]
fn find_region_reads_the_live_object_only() {
    let cm_json = |data: serde_json::Value| {
        let mut v = serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"data\":{\"region\":\"us-east\"}}\n"},
                "name": "satellite-link-config"
            }
        });
        if !data.is_null() {
            v["data"] = data;
        }
        serde_json::to_string_pretty(&v).expect("json")
    };
    let no_keys =
        |m: &MissingRegion| matches!(m, MissingRegion::NoRegionKey { keys } if keys.is_empty());
    let only_id = |m: &MissingRegion| matches!(m, MissingRegion::NoRegionKey { keys } if keys == &["location_id"]);
    let cases: Vec<RegionCase> = vec![
        (
            "yaml, no data, stale annotation",
            configmap_yaml_with_stale_annotation("", ""),
            no_keys,
        ),
        (
            "yaml, no data, stale annotation, trailing noise",
            configmap_yaml_with_stale_annotation("", "+ set +x\n"),
            no_keys,
        ),
        (
            "yaml, other key, stale annotation, trailing noise",
            configmap_yaml_with_stale_annotation(
                "  location_id: c1\n",
                "+ set +x\nFinished: SUCCESS\n",
            ),
            only_id,
        ),
        (
            "json pretty, no data, stale annotation",
            cm_json(serde_json::Value::Null),
            no_keys,
        ),
        (
            "json pretty, other key, stale annotation, echoed",
            format!(
                "+ kubectl get cm -o json\n{}",
                cm_json(serde_json::json!({"location_id": "c1"}))
            ),
            only_id,
        ),
        (
            "region of a zero-width space",
            configmap("\"\u{200b}\""),
            |m| *m == MissingRegion::EmptyRegion,
        ),
        ("region of NBSPs", configmap("\"\u{a0}\u{a0}\""), |m| {
            *m == MissingRegion::EmptyRegion
        }),
        (
            "region of a word joiner, plain",
            configmap("\u{2060}"),
            |m| *m == MissingRegion::EmptyRegion,
        ),
        (
            "List of several ConfigMaps",
            serde_json::json!({"kind": "List", "apiVersion": "v1", "items": [
                {"kind": "ConfigMap", "data": {"region": "us-east"}, "metadata": {"name": "a"}},
                {"kind": "ConfigMap", "data": {"region": "eu-de"}, "metadata": {"name": "b"}}
            ]})
            .to_string(),
            |m| *m == MissingRegion::AmbiguousList { items: 2 },
        ),
    ];
    for (name, log, ok) in cases {
        match find_region(log.as_bytes()) {
            RegionFinding::Absent(why) => assert!(ok(&why), "{name}: unexpected reason {why:?}"),
            other => panic!("{name}: expected no region, got {other:?}"),
        }
    }
    let listed = serde_json::json!({"kind": "List", "apiVersion": "v1", "items": [
        {"kind": "ConfigMap", "data": {"region": "eu-de"}, "metadata": {"name": "other"}},
        {"kind": "ConfigMap", "data": {"region": "us-east"}, "metadata": {"name": "satellite-link-config"}}
    ]});
    assert_eq!(
        find_region(listed.to_string().as_bytes()),
        RegionFinding::Found("us-east".into())
    );
}

// ---------------------------------------------------------------------------------------------
// find_region

/// What a case expects of [`find_region`]: the region, or a predicate on the reason.
type R = Result<&'static str, fn(&MissingRegion) -> bool>;

fn region_cases() -> Vec<(&'static str, Vec<u8>, R)> {
    let cm_json = serde_json::json!({
        "apiVersion": "v1",
        "data": {"location_id": "c1hk4ek107l5au5mq8hg", "region": "us-east"},
        "kind": "ConfigMap",
        "metadata": {"name": "satellite-link-config", "namespace": "satellite-link"}
    });
    let long = "x".repeat(500);
    let long_cm: &'static str = Box::leak(configmap(&long).into_boxed_str());
    vec![
        ("fixture key-present-region-ok", cm_fixture("key-present-region-ok"), Ok("us-east")),
        ("fixture key-missing", cm_fixture("key-missing"), Ok("us-east")),
        ("fixture region-wrong", cm_fixture("region-wrong"), Ok("us-south")),
        ("fixture json-key-present-eu-de", cm_fixture("json-key-present-eu-de"), Ok("eu-de")),
        ("fixture crlf-wrapped-block", cm_fixture("crlf-wrapped-block"), Ok("eu-de")),
        ("fixture not-found", cm_fixture("not-found"), Err(|m| *m == MissingRegion::NotFound)),
        ("plain", configmap("us-east").into_bytes(), Ok("us-east")),
        ("no echo", configmap_yaml("", "  region: us-east\n").into_bytes(), Ok("us-east")),
        ("double-quoted", configmap("\"us-east\"").into_bytes(), Ok("us-east")),
        ("single-quoted", configmap("'us-east'").into_bytes(), Ok("us-east")),
        ("odd case and spaces, quoted", configmap("\" US-East \"").into_bytes(), Ok("us-east")),
        ("odd case, plain", configmap("US-East   ").into_bytes(), Ok("us-east")),
        ("upper-case key", configmap_yaml(ECHO_CM, "  REGION: us-east\n").into_bytes(), Ok("us-east")),
        ("control characters removed", configmap("\"us-\\aeast\"").into_bytes(), Ok("us-east")),
        ("CRLF", configmap("us-east").replace('\n', "\r\n").into_bytes(), Ok("us-east")),
        ("after Warning: lines", configmap_yaml(&format!("Warning: deprecated API\n{ECHO_CM}"), "  region: jp-osa\n").into_bytes(), Ok("jp-osa")),
        ("json pretty after + kubectl", format!("+ kubectl get configmap satellite-link-config -o json\n{}", serde_json::to_string_pretty(&cm_json).expect("json")).into_bytes(), Ok("us-east")),
        ("json compact", serde_json::to_vec(&cm_json).expect("json"), Ok("us-east")),
        ("trailing noise", format!("{}+ set +x\n", configmap("eu-gb")).into_bytes(), Ok("eu-gb")),
        ("capped at 64 characters", long_cm.as_bytes().to_vec(), Ok("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx")),
        (
            "no region key",
            configmap_yaml(ECHO_CM, "").into_bytes(),
            Err(|m| matches!(m, MissingRegion::NoRegionKey { keys } if keys == &["location_id", "log_level"])),
        ),
        ("empty region", configmap("\"\"").into_bytes(), Err(|m| *m == MissingRegion::EmptyRegion)),
        ("null region", configmap_yaml(ECHO_CM, "  region:\n").into_bytes(), Err(|m| *m == MissingRegion::EmptyRegion)),
        (
            "kubectl NotFound",
            format!("{ECHO_CM}Error from server (NotFound): configmaps \"satellite-link-config\" not found\n").into_bytes(),
            Err(|m| *m == MissingRegion::NotFound),
        ),
        ("kubectl error:", b"error: You must be logged in to the server (Unauthorized)\n".to_vec(), Err(|m| matches!(m, MissingRegion::KubectlError { message } if message.contains("Unauthorized")))),
        ("empty file", Vec::new(), Err(|m| *m == MissingRegion::EmptyArtifact)),
        ("binary garbage", junk(2048, 3), Err(|m| *m == MissingRegion::Unreadable)),
        ("4 MiB of junk", junk(4 * 1024 * 1024, 99), Err(|m| *m == MissingRegion::Unreadable)),
    ]
}

#[test]
fn find_region_handles_every_variant() {
    for (name, log, expect) in region_cases() {
        let started = Instant::now();
        let found = find_region(&log);
        assert!(
            started.elapsed() < HANG_GUARD,
            "{name}: took {:?}",
            started.elapsed()
        );
        match (expect, &found) {
            (Ok(want), RegionFinding::Found(got)) => assert_eq!(got, want, "{name}"),
            (Err(ok), RegionFinding::Absent(why)) => {
                assert!(ok(why), "{name}: unexpected reason {why:?}");
                assert!(!why.explain().is_empty(), "{name}");
            }
            (_, other) => panic!("{name}: unexpected {other:?}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// diagnose and apply_iam

struct DiagCase {
    name: &'static str,
    key_log: Vec<u8>,
    cm_log: Vec<u8>,
    expected: &'static str,
    verdict: VerdictCode,
    key_status: StepStatus,
    region_status: StepStatus,
    /// Texts the evidence of the region step must contain.
    region_evidence: &'static [&'static str],
}

fn diag_cases() -> Vec<DiagCase> {
    let good = secret_yaml_one_line(&good_toml()).into_bytes();
    let no_key = secret_yaml_one_line(&toml_bluemix("")).into_bytes();
    vec![
        DiagCase {
            name: "fixtures: key present, region ok",
            key_log: key_fixture("key-present-region-ok"),
            cm_log: cm_fixture("key-present-region-ok"),
            expected: "us-east",
            verdict: VerdictCode::ApiKeyInvalid,
            key_status: StepStatus::Ok,
            region_status: StepStatus::Ok,
            region_evidence: &["`us-east`"],
        },
        DiagCase {
            name: "fixtures: key missing",
            key_log: key_fixture("key-missing"),
            cm_log: cm_fixture("key-missing"),
            expected: "us-east",
            verdict: VerdictCode::ConfigMissing,
            key_status: StepStatus::Failed,
            region_status: StepStatus::Ok,
            region_evidence: &["`us-east`"],
        },
        DiagCase {
            name: "fixtures: region wrong",
            key_log: key_fixture("region-wrong"),
            cm_log: cm_fixture("region-wrong"),
            expected: "us-east",
            verdict: VerdictCode::RegionMismatch,
            key_status: StepStatus::Ok,
            region_status: StepStatus::Failed,
            region_evidence: &["ConfigMap region `us-south`", "tugboat's region `us-east`"],
        },
        DiagCase {
            name: "fixtures: json, eu-de",
            key_log: key_fixture("json-key-present-eu-de"),
            cm_log: cm_fixture("json-key-present-eu-de"),
            expected: "eu-de",
            verdict: VerdictCode::ApiKeyInvalid,
            key_status: StepStatus::Ok,
            region_status: StepStatus::Ok,
            region_evidence: &["`eu-de`"],
        },
        DiagCase {
            name: "fixtures: crlf wrapped, expected us-east",
            key_log: key_fixture("crlf-wrapped-block"),
            cm_log: cm_fixture("crlf-wrapped-block"),
            expected: "us-east",
            verdict: VerdictCode::RegionMismatch,
            key_status: StepStatus::Ok,
            region_status: StepStatus::Failed,
            region_evidence: &["ConfigMap region `eu-de`", "tugboat's region `us-east`"],
        },
        DiagCase {
            name: "fixtures: both NotFound",
            key_log: key_fixture("not-found"),
            cm_log: cm_fixture("not-found"),
            expected: "us-east",
            verdict: VerdictCode::ConfigMissing,
            key_status: StepStatus::Failed,
            region_status: StepStatus::Failed,
            region_evidence: &["NotFound", "tugboat's region `us-east`"],
        },
        DiagCase {
            name: "key missing and region wrong: both facts reported",
            key_log: no_key.clone(),
            cm_log: configmap("us-south").into_bytes(),
            expected: "us-east",
            verdict: VerdictCode::ConfigMissing,
            key_status: StepStatus::Failed,
            region_status: StepStatus::Failed,
            region_evidence: &["ConfigMap region `us-south`", "tugboat's region `us-east`"],
        },
        DiagCase {
            name: "key present, region absent",
            key_log: good.clone(),
            cm_log: configmap_yaml(ECHO_CM, "").into_bytes(),
            expected: "us-east",
            verdict: VerdictCode::RegionMismatch,
            key_status: StepStatus::Ok,
            region_status: StepStatus::Failed,
            region_evidence: &["no `region` key", "tugboat's region `us-east`"],
        },
        DiagCase {
            name: "key present, configmap empty",
            key_log: good.clone(),
            cm_log: Vec::new(),
            expected: "us-east",
            verdict: VerdictCode::RegionMismatch,
            key_status: StepStatus::Ok,
            region_status: StepStatus::Failed,
            region_evidence: &["empty", "tugboat's region `us-east`"],
        },
        DiagCase {
            name: "key present, region odd-cased but right",
            key_log: good.clone(),
            cm_log: configmap("\" US-East \"").into_bytes(),
            expected: "us-east",
            verdict: VerdictCode::ApiKeyInvalid,
            key_status: StepStatus::Ok,
            region_status: StepStatus::Ok,
            region_evidence: &["`us-east`"],
        },
        DiagCase {
            name: "garbage secret, region ok",
            key_log: junk(10_000, 5),
            cm_log: configmap("us-east").into_bytes(),
            expected: "us-east",
            verdict: VerdictCode::ConfigMissing,
            key_status: StepStatus::Failed,
            region_status: StepStatus::Ok,
            region_evidence: &["`us-east`"],
        },
        DiagCase {
            name: "bad TOML, region wrong",
            key_log: secret_yaml_one_line(&format!(
                "[Bluemix]\niam_api_key = {KEY}\nrefresh_token = \"{REFRESH}\"\n"
            ))
            .into_bytes(),
            cm_log: configmap("eu-de").into_bytes(),
            expected: "us-east",
            verdict: VerdictCode::ConfigMissing,
            key_status: StepStatus::Failed,
            region_status: StepStatus::Failed,
            region_evidence: &["ConfigMap region `eu-de`", "tugboat's region `us-east`"],
        },
    ]
}

#[test]
fn diagnose_applies_the_runbook_and_reports_both_steps() {
    for case in diag_cases() {
        let expected = region(case.expected);
        let d = diagnose(&case.key_log, &case.cm_log, &expected);
        let name = case.name;
        assert_eq!(d.verdict, case.verdict, "{name}: {}", d.summary);
        assert!(!d.confirmed, "{name}");
        let ids: Vec<StepId> = d.steps.iter().map(|s| s.id).collect();
        assert_eq!(ids, [StepId::ApiKey, StepId::Region], "{name}");
        assert_eq!(
            d.steps[0].status, case.key_status,
            "{name}: {:?}",
            d.steps[0]
        );
        assert_eq!(
            d.steps[1].status, case.region_status,
            "{name}: {:?}",
            d.steps[1]
        );
        let region_evidence = d.steps[1].evidence.join("\n");
        for needle in case.region_evidence {
            assert!(
                region_evidence.contains(needle),
                "{name}: `{needle}` not in {region_evidence}"
            );
        }
        assert_eq!(d.key.is_some(), case.key_status == StepStatus::Ok, "{name}");
        assert_eq!(d.key_fingerprint.is_some(), d.key.is_some(), "{name}");
        if case.verdict == VerdictCode::RegionMismatch
            || (case.verdict == VerdictCode::ConfigMissing
                && case.region_status == StepStatus::Failed)
        {
            assert!(
                d.summary.contains(&format!("`{}`", case.expected)),
                "{name}: {}",
                d.summary
            );
        }
        assert_no_secret(name, &all_outputs(&d, &expected));
    }
}

#[test]
fn key_step_evidence_shows_size_and_fingerprint_only() {
    let d = diagnose(
        &key_fixture("key-present-region-ok"),
        &cm_fixture("key-present-region-ok"),
        &region("us-east"),
    );
    assert_eq!(
        d.steps[0].evidence,
        [
            "slclient.toml decoded (302 bytes)",
            "[Bluemix] iam_api_key present (…nB2w)"
        ]
    );
    assert_eq!(d.key_fingerprint.as_deref(), Some("…nB2w"));
    assert_eq!(d.key.as_ref().map(|k| k.expose()), Some(FIXTURE_KEY));
    assert_eq!(d.region_found.as_deref(), Some("us-east"));
    assert!(d.summary.contains("likely bad"), "{}", d.summary);
}

#[test]
fn iam_outcomes_refine_only_a_likely_bad_key() {
    let expected = region("us-east");
    let likely = diagnose(
        &key_fixture("key-present-region-ok"),
        &cm_fixture("key-present-region-ok"),
        &expected,
    );

    let rejected = apply_iam(
        likely.clone(),
        &IamOutcome::Rejected {
            detail: "BXNIM0415E: Provided API key could not be found".into(),
        },
    );
    assert_eq!(rejected.verdict, VerdictCode::ApiKeyInvalid);
    assert!(rejected.confirmed);
    let probe = rejected.steps.last().expect("probe step");
    assert_eq!(
        (probe.id, probe.status),
        (StepId::IamProbe, StepStatus::Failed)
    );
    assert!(probe.evidence.join(" ").contains("BXNIM0415E"));

    let accepted = apply_iam(likely.clone(), &IamOutcome::Accepted);
    assert_eq!(accepted.verdict, VerdictCode::ApiKeyAccepted);
    assert_eq!(
        accepted.steps.last().map(|s| (s.id, s.status)),
        Some((StepId::IamProbe, StepStatus::Ok))
    );

    let down = apply_iam(
        likely.clone(),
        &IamOutcome::Unreachable {
            detail: "HTTP 503 from IAM".into(),
        },
    );
    assert_eq!(down.verdict, VerdictCode::IamUnreachable);
    assert!(!down.confirmed);
    assert_eq!(down.steps.len(), 3);

    // The key leaks into no output of the refined diagnoses either.
    for d in [&rejected, &accepted, &down] {
        assert_no_secret("iam", &all_outputs(d, &expected));
    }

    // Other verdicts are left as they are.
    for scenario in ["key-missing", "region-wrong"] {
        let d = diagnose(&key_fixture(scenario), &cm_fixture(scenario), &expected);
        for outcome in [
            IamOutcome::Accepted,
            IamOutcome::Rejected { detail: "x".into() },
        ] {
            assert_eq!(apply_iam(d.clone(), &outcome), d, "{scenario}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Rendering

#[test]
fn text_render_shows_verdict_steps_regions_and_actions() {
    let expected = region("us-east");
    let d = diagnose(
        &key_fixture("region-wrong"),
        &cm_fixture("region-wrong"),
        &expected,
    );
    let text = render::text(&Report::offline(&d, &expected));
    let first = text.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("region_mismatch — Improper region config"),
        "{text}"
    );
    assert!(text.contains("Tugboat region:   us-east"), "{text}");
    assert!(text.contains("ConfigMap region: us-south"), "{text}");
    assert!(text.contains("✅ IAM API key in slclient.toml"), "{text}");
    assert!(
        text.contains("❌ Region in the satellite-link ConfigMap"),
        "{text}"
    );
    assert!(
        text.contains("       ConfigMap region `us-south`, tugboat's region `us-east`"),
        "{text}"
    );
    assert!(text.contains("Next actions:"), "{text}");
    assert!(text.contains("cluster-updater"), "{text}");
    assert!(
        !text.contains("Location:"),
        "offline has no location: {text}"
    );
    assert!(!text.contains("Build:"), "offline has no build: {text}");
    assert!(text.contains("Key fingerprint:  …nB2w"), "{text}");
    assert_no_secret("text", &text);

    let confirmed = apply_iam(
        diagnose(
            &key_fixture("key-present-region-ok"),
            &cm_fixture("key-present-region-ok"),
            &expected,
        ),
        &IamOutcome::Rejected {
            detail: "BXNIM0415E".into(),
        },
    );
    let text = render::text(&Report::offline(&confirmed, &expected));
    assert!(
        text.starts_with("api_key_invalid — Bad IAM API key (confirmed by IAM)"),
        "{text}"
    );
    assert!(
        text.contains("ibmcloud ks api-key reset --region us-east"),
        "{text}"
    );
}

#[test]
fn text_render_shows_full_context_and_a_clean_console_tail() {
    use linkbot::domain::{Carrier, Environment, LocationId, Tugboat};
    let expected = region("us-east");
    let d = diagnose(
        &key_fixture("key-missing"),
        &cm_fixture("key-missing"),
        &expected,
    );
    let mut report = Report::offline(&d, &expected);
    report.location = Some(LocationId::parse("c1hk4ek107l5au5mq8hg").expect("id"));
    report.environment = Some(Environment::Prod);
    report.tugboat = Some(Tugboat::parse("prod-wdc04.carrier107").expect("tugboat"));
    report.carrier = Some(Carrier::parse("prod-wdc04-carrier2").expect("carrier"));
    report.build_url = Some("https://jenkins.example/job/x/42/".into());
    let console: Vec<String> = (1..=100)
        .map(|i| format!("\u{1b}[32mline {i}\u{1b}[0m"))
        .collect();
    report.console_tail = Some(console.join("\n"));
    let text = render::text(&report);
    for needle in [
        "Location:         c1hk4ek107l5au5mq8hg",
        "Environment:      prod",
        "Tugboat:          prod-wdc04.carrier107 (Jenkins: prod-wdc04-carrier107)",
        "Carrier:          prod-wdc04-carrier2",
        "Build:            https://jenkins.example/job/x/42/",
        "Console tail (last 30 lines):",
        "    line 100",
        "    line 71",
    ] {
        assert!(text.contains(needle), "`{needle}` missing:\n{text}");
    }
    assert!(!text.contains("line 70\n"), "{text}");
    assert!(
        !text.contains('\u{1b}'),
        "escape sequences reach the terminal"
    );
    assert!(
        !text.contains("Key fingerprint:"),
        "no key was found: {text}"
    );
}

#[test]
fn json_render_has_the_contract_fields() {
    let expected = region("us-east");
    let d = diagnose(
        &key_fixture("region-wrong"),
        &cm_fixture("region-wrong"),
        &expected,
    );
    let v = render::json(&Report::offline(&d, &expected));
    assert_eq!(v["verdict"], "region_mismatch");
    assert_eq!(v["title"], "Improper region config");
    assert_eq!(v["confirmed"], false);
    assert_eq!(v["region_expected"], "us-east");
    assert_eq!(v["region_found"], "us-south");
    assert_eq!(v["key_fingerprint"], "…nB2w");
    for absent in [
        "location",
        "environment",
        "tugboat",
        "tugboat_kebab",
        "carrier",
        "build_url",
        "console_tail",
    ] {
        assert!(
            v.get(absent).is_some_and(serde_json::Value::is_null),
            "{absent}: {v}"
        );
    }
    let steps = v["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 2);
    assert_eq!(steps[0]["id"], "api_key");
    assert_eq!(steps[0]["status"], "ok");
    assert_eq!(steps[1]["id"], "region");
    assert_eq!(steps[1]["status"], "failed");
    assert!(steps[1]["title"]
        .as_str()
        .is_some_and(|t| t.contains("ConfigMap")));
    assert!(steps[1]["evidence"][0]
        .as_str()
        .is_some_and(|e| e.contains("us-south") && e.contains("us-east")));
    assert!(v["next_actions"].as_array().is_some_and(|a| !a.is_empty()));
    assert!(v["summary"]
        .as_str()
        .is_some_and(|s| s.contains("us-south")));
    let checked_at = v["checked_at"].as_str().expect("checked_at");
    assert!(
        chrono::DateTime::parse_from_rfc3339(checked_at).is_ok(),
        "{checked_at}"
    );

    use linkbot::domain::Tugboat;
    let mut report = Report::offline(&d, &expected);
    report.tugboat = Some(Tugboat::parse("prod-wdc04.carrier107").expect("tugboat"));
    let v = render::json(&report);
    assert_eq!(v["tugboat"], "prod-wdc04.carrier107");
    assert_eq!(v["tugboat_kebab"], "prod-wdc04-carrier107");
}

#[test]
fn no_output_of_any_case_contains_a_secret() {
    let expected = region("us-east");
    let cm = configmap("us-east").into_bytes();
    for (name, log, _) in api_key_cases() {
        let d = diagnose(&log, &cm, &expected);
        assert_no_secret(name, &all_outputs(&d, &expected));
        for outcome in [
            IamOutcome::Accepted,
            IamOutcome::Rejected {
                detail: "BXNIM0415E".into(),
            },
            IamOutcome::Unreachable {
                detail: "timeout".into(),
            },
        ] {
            assert_no_secret(
                name,
                &all_outputs(&apply_iam(d.clone(), &outcome), &expected),
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// One parse is bounded: at most MAX_VALUES values in the YAML/JSON tree

/// A Secret (`configmap == false`, its `slclient.toml` the good TOML) or ConfigMap (`region`
/// us-east) holding exactly `values` YAML/JSON values (scalars, keys, maps and sequences), in
/// JSON or YAML (block mappings, a flow `junk` sequence of zeros padding it to the count).
/// Both shapes hold 15 values before the padding: the root map, 5 keys (`apiVersion`, `kind`,
/// `metadata`, `data`, `junk`), 2 scalars, `metadata` (map, key, value), `data` (map, key,
/// value) and the `junk` sequence itself.
fn counted_doc(json: bool, configmap: bool, values: usize) -> String {
    const FIXED: usize = 15;
    let (kind, name, key, value) = if configmap {
        (
            "ConfigMap",
            "satellite-link-config",
            "region",
            "us-east".to_string(),
        )
    } else {
        (
            "Secret",
            "storage-secret-store",
            "slclient.toml",
            b64(good_toml()),
        )
    };
    let zeros = vec!["0"; values.saturating_sub(FIXED)].join(",");
    if json {
        format!(
            "{{\"apiVersion\":\"v1\",\"kind\":\"{kind}\",\"metadata\":{{\"name\":\"{name}\"}},\"data\":{{\"{key}\":\"{value}\"}},\"junk\":[{zeros}]}}\n"
        )
    } else {
        format!(
            "apiVersion: v1\nkind: {kind}\nmetadata:\n  name: {name}\ndata:\n  {key}: {value}\njunk: [{zeros}]\n"
        )
    }
}

#[test]
fn a_document_of_more_than_max_values_is_refused() {
    let started = Instant::now();
    for json in [true, false] {
        let format = if json { "json" } else { "yaml" };
        // (values in the document, whether it is read)
        for (values, read) in [(16, true), (MAX_VALUES, true), (MAX_VALUES + 1, false)] {
            let case = format!("{format}, {values} values");
            let secret = counted_doc(json, false, values);
            let configmap = counted_doc(json, true, values);
            let key = find_api_key(secret.as_bytes());
            let region_found = find_region(configmap.as_bytes());
            if read {
                assert!(
                    matches!(&key, ApiKeyFinding::Present { key, table: KeyTable::Bluemix, .. } if key.expose() == KEY),
                    "{case}: {key:?}"
                );
                assert_eq!(
                    region_found,
                    RegionFinding::Found("us-east".into()),
                    "{case}"
                );
            } else {
                assert_eq!(
                    key,
                    ApiKeyFinding::Missing(MissingKey::TooManyValues),
                    "{case}"
                );
                assert_eq!(
                    region_found,
                    RegionFinding::Absent(MissingRegion::TooManyValues),
                    "{case}"
                );
                let d = diagnose(secret.as_bytes(), configmap.as_bytes(), &region("us-east"));
                assert_eq!(d.verdict, VerdictCode::ConfigMissing, "{case}");
                let sentence = format!("has more than {MAX_VALUES} YAML/JSON values");
                assert!(d.summary.contains(&sentence), "{case}: {}", d.summary);
                assert_no_secret(&case, &all_outputs(&d, &region("us-east")));
            }
        }
    }
    assert!(started.elapsed() < HANG_GUARD, "{:?}", started.elapsed());
}

#[test]
fn too_many_values_is_explained_without_content() {
    let key = MissingKey::TooManyValues.explain();
    assert!(key.contains("connector_getConnectorAPIKey.log"), "{key}");
    assert!(key.contains(&MAX_VALUES.to_string()), "{key}");
    let region = MissingRegion::TooManyValues.explain();
    assert!(region.contains("connector_sl_configMap.log"), "{region}");
    assert!(region.contains(&MAX_VALUES.to_string()), "{region}");
}

/// A Secret whose `junk` holds `width` items, each `depth` levels of `[` (or `{"k":`) deep,
/// in JSON or YAML flow: the deep and wide shapes a hostile artifact can take.
fn nested_doc(json: bool, maps: bool, depth: usize, width: usize) -> String {
    let (open, close) = match (maps, json) {
        (false, _) => ("[".to_string(), "]"),
        (true, true) => ("{\"k\":".to_string(), "}"),
        (true, false) => ("{k: ".to_string(), "}"),
    };
    let item = format!("{}0{}", open.repeat(depth), close.repeat(depth));
    let items = vec![item.as_str(); width].join(",");
    if json {
        format!("{{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"data\":{{}},\"junk\":[{items}]}}")
    } else {
        format!("apiVersion: v1\nkind: Secret\ndata: {{}}\njunk: [{items}]\n")
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn deep_and_wide_documents_never_panic_and_stay_capped(
        json in any::<bool>(),
        maps in any::<bool>(),
        depth in 0usize..160,
        width in prop_oneof![0usize..64, 1_000usize..300_000],
        cut in any::<prop::sample::Index>(),
    ) {
        // At most ~600 KB of text (enough for 2x MAX_VALUES at the narrowest item).
        let item_chars = depth * if maps { 6 } else { 2 } + 2;
        let width = width.min(600_000 / item_chars);
        let doc = nested_doc(json, maps, depth, width);
        // Values per item: `depth` containers (+ `depth` keys for maps) and the scalar.
        let per_item = depth * if maps { 2 } else { 1 } + 1;
        let started = Instant::now();
        let key = find_api_key(doc.as_bytes());
        let region_found = find_region(doc.as_bytes());
        prop_assert!(started.elapsed() < HANG_GUARD);
        if width * per_item > MAX_VALUES + 64 && depth <= 60 {
            prop_assert_eq!(&key, &ApiKeyFinding::Missing(MissingKey::TooManyValues));
            prop_assert_eq!(&region_found, &RegionFinding::Absent(MissingRegion::TooManyValues));
        } else {
            prop_assert!(matches!(key, ApiKeyFinding::Missing(_)), "{:?}", key);
            prop_assert!(matches!(region_found, RegionFinding::Absent(_)), "{:?}", region_found);
        }
        // Cut anywhere: still no panic.
        let mut at = cut.index(doc.len() + 1);
        while !doc.is_char_boundary(at) {
            at -= 1;
        }
        let _ = find_api_key(&doc.as_bytes()[..at]);
        let _ = find_region(&doc.as_bytes()[..at]);
    }
}

// ---------------------------------------------------------------------------------------------
// Bad input never panics

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = find_api_key(&bytes);
        let _ = find_region(&bytes);
        let d = diagnose(&bytes, &bytes, &region("us-east"));
        let _ = render::text(&Report::offline(&d, &region("us-east")));
    }

    #[test]
    fn arbitrary_text_never_panics(s in "\\PC{0,512}") {
        let _ = find_api_key(s.as_bytes());
        let _ = find_region(s.as_bytes());
        let _ = diagnose(s.as_bytes(), s.as_bytes(), &region("us-east"));
    }

    #[test]
    fn yaml_like_text_never_panics(s in "([ \\-:|>\"'{}\\[\\],#&*!?a-z0-9.=\n]){0,400}") {
        let doc = format!("apiVersion: v1\ndata:\n{s}");
        let _ = find_api_key(doc.as_bytes());
        let _ = find_region(doc.as_bytes());
        let json = format!("{{\"data\": {s}");
        let _ = find_api_key(json.as_bytes());
    }

    #[test]
    fn text_spliced_into_valid_artifacts_never_panics(
        at in 0usize..2000,
        insert in "\\PC{0,64}|[\n\r :\"'|>\\-{}\\[\\]]{0,16}",
    ) {
        for (name, base) in [
            ("secret yaml", secret_yaml_one_line(&good_toml())),
            ("secret json", serde_json::to_string_pretty(&secret_json_value(&b64(good_toml()))).unwrap_or_default()),
            ("configmap", configmap("us-east")),
        ] {
            let mut at = at.min(base.len());
            while !base.is_char_boundary(at) {
                at -= 1;
            }
            let spliced = format!("{}{insert}{}", &base[..at], &base[at..]);
            let d = diagnose(spliced.as_bytes(), spliced.as_bytes(), &region("us-east"));
            let report = Report::offline(&d, &region("us-east"));
            let _ = render::text(&report);
            let _ = render::json(&report);
            let _ = find_region(spliced.as_bytes());
            prop_assert!(!d.summary.is_empty(), "{}", name);
        }
    }
}
