//! Parsers for the two Jenkins artifacts the runbook reads (SPEC §1 steps 3 and 4).
//!
//! `connector_getConnectorAPIKey.log` is `kubectl get secret storage-secret-store -o yaml|json`
//! output: [`find_api_key`] finds the base64 `slclient.toml` under `data`, decodes it, parses it
//! as TOML and finds a non-empty `iam_api_key`. `connector_sl_configMap.log` is `kubectl get
//! configmap satellite-link-config -o yaml|json` output: [`find_region`] finds `data.region`.
//!
//! Both artifacts vary: an echoed command line or warnings before the document, CRLF line
//! endings, values wrapped over several lines, kubectl errors, garbage. A real YAML/JSON parse is
//! tried first; a tolerant line scan is the fallback for what real parsers refuse.
//!
//! **Only the live object is read.** The parsers take `data` of the object itself (and
//! `metadata.name` to pick an item of a `List`) and never look inside `metadata.annotations`:
//! `kubectl.kubernetes.io/last-applied-configuration` holds an *older* copy of the object, and a
//! key or region found there would be a stale verdict. Before any document start is searched or
//! any line is scanned, every annotation block is blanked out of the text (same offsets, spaces).
//!
//! Deliberate choices about what else the artifact may hold:
//! - **A second document is not read.** The job prints one object; once a kubectl object
//!   (`apiVersion`/`kind`) has been parsed to its end, a later YAML document (after `---`) or a
//!   later JSON value is ignored, even when the first object has no `data`. Later starts are
//!   only tried when the first document could not be parsed to its end (noise inside it).
//! - **A `kind: List`** is read through the item whose `metadata.name` is the expected object
//!   (`storage-secret-store`, `satellite-link-config`), else through its only item. A List of
//!   several other objects is ambiguous and reported as such, never guessed from.
//! - **Invisible values are missing.** A value made only of whitespace or invisible characters
//!   (NBSP, zero-width space, BOM, …) counts as empty: `config_missing`, never a key.
//! - **One parse is bounded.** `slclient.toml` decodes to at most [`MAX_TOML_BYTES`] and holds at
//!   most [`MAX_TOML_ENTRIES`] keys/tables (a real one is ~1 KiB with ~15 keys); more is refused
//!   before the TOML parser allocates for it. The YAML/JSON tree holds at most [`MAX_VALUES`]
//!   values (scalars, keys and containers; a real Secret or ConfigMap has a few dozen): past
//!   that the artifact is refused as not kubectl output, without a line scan. The tree is built
//!   straight from the parsers' events (JSON through a `serde` visitor, YAML through yaml-rust2's
//!   event parser), never through an intermediate `serde_json::Value`.
//!
//! This module does no I/O and must never panic on its input. The decoded `slclient.toml` is
//! itself secret (it also holds `iam_client_secret` and `refresh_token`): no value from it may
//! reach a message, a `Debug` output or an error. Findings carry key *names*, byte counts and
//! positions only; the API key itself is held in a [`Secret`].

use crate::secret::Secret;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use std::fmt;
use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::TScalarStyle;

/// The secret key holding the connector's client configuration.
const SLCLIENT_KEY: &str = "slclient.toml";
/// How deep a YAML/JSON document may nest before it is refused (real ones nest 3 levels).
const MAX_DEPTH: usize = 64;
/// How many values (scalars, map keys, sequences and maps) one YAML/JSON document may hold
/// before the artifact is refused. `kubectl get secret|configmap -o yaml|json` of one object
/// holds a few dozen (more with `managedFields`); 100 000 is a wide margin that still bounds
/// the tree to about 10 MiB, whatever the shape of a 4 MiB artifact (BENCHMARKS.md section 5).
pub const MAX_VALUES: usize = 100_000;
/// How many key or table names a finding lists at most.
const MAX_NAMES: usize = 24;
/// How many characters of one name a finding keeps at most.
const MAX_NAME_CHARS: usize = 64;
/// How many characters a normalised region keeps at most.
const MAX_REGION_CHARS: usize = 64;
/// How many document starts are tried before giving up on a structured parse.
const MAX_CANDIDATES: usize = 4;
/// The largest decoded `slclient.toml` that is parsed (a real one is about 1 KiB).
pub const MAX_TOML_BYTES: usize = 64 * 1024;
/// The most keys, tables and arrays (counted as `=`, `[` and `{` characters, an upper bound) a
/// `slclient.toml` may hold before it is refused unparsed (a real one has about 15).
pub const MAX_TOML_ENTRIES: usize = 1024;
/// The object the API key artifact must describe.
const SECRET_NAME: &str = "storage-secret-store";
/// The object the region artifact must describe.
const CONFIGMAP_NAME: &str = "satellite-link-config";

/// Standard base64 alphabet, padding optional, trailing bits tolerated.
const LENIENT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Where in `slclient.toml` the `iam_api_key` was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyTable {
    /// In the `[Bluemix]` table (any case), where the storage secret keeps it.
    Bluemix,
    /// At the top level of the TOML document.
    TopLevel,
}

impl KeyTable {
    /// How the location is named in evidence: `[Bluemix]` or `top-level`.
    pub fn label(&self) -> &'static str {
        match self {
            KeyTable::Bluemix => "[Bluemix]",
            KeyTable::TopLevel => "top-level",
        }
    }
}

/// What [`find_api_key`] found in `connector_getConnectorAPIKey.log`.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiKeyFinding {
    /// A non-empty `iam_api_key` string.
    Present {
        /// The key itself; shown at most as its fingerprint.
        key: Secret,
        /// Where it was found.
        table: KeyTable,
        /// The size of the decoded `slclient.toml`.
        toml_bytes: usize,
    },
    /// No usable key, and why.
    Missing(MissingKey),
}

/// Why no usable `iam_api_key` was found. Carries names, counts and positions, never a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MissingKey {
    /// The artifact is empty (or only whitespace).
    EmptyArtifact,
    /// kubectl said the secret does not exist (`Error from server (NotFound)`).
    NotFound,
    /// kubectl printed another error instead of the secret (e.g. `Forbidden`, `Unauthorized`).
    KubectlError {
        /// kubectl's error line, cleaned and shortened.
        message: String,
    },
    /// Neither YAML nor JSON kubectl output, nor anything recognisable.
    Unreadable,
    /// The secret has no `slclient.toml` key.
    NoSlclientToml {
        /// The data keys that were there (names only).
        keys: Vec<String>,
    },
    /// The `slclient.toml` value is not valid base64.
    BadBase64 {
        /// What is wrong, without the value (e.g. `invalid character at position 12`).
        detail: String,
    },
    /// The decoded `slclient.toml` is not UTF-8 text.
    NotUtf8 {
        /// How many bytes it decoded to.
        bytes: usize,
    },
    /// The decoded `slclient.toml` is not valid TOML.
    BadToml {
        /// How many bytes it decoded to.
        bytes: usize,
        /// 1-based line of the error, when known.
        line: Option<usize>,
        /// 1-based column of the error, when known.
        column: Option<usize>,
        /// The parser's message with every quoted fragment of content replaced by `…`.
        message: String,
    },
    /// The TOML has no `iam_api_key` in `[Bluemix]` nor at the top level.
    NoIamApiKey {
        /// How many bytes `slclient.toml` decoded to.
        toml_bytes: usize,
        /// The tables the TOML has (names only).
        tables: Vec<String>,
        /// A table where an `iam_api_key` sits that the connector does not read, if any.
        misplaced_in: Option<String>,
    },
    /// `iam_api_key` is there but empty (or only whitespace).
    EmptyIamApiKey {
        /// How many bytes `slclient.toml` decoded to.
        toml_bytes: usize,
        /// Where the empty key is.
        table: KeyTable,
    },
    /// `iam_api_key` is there but is not a string.
    IamApiKeyNotString {
        /// How many bytes `slclient.toml` decoded to.
        toml_bytes: usize,
        /// Where the key is.
        table: KeyTable,
    },
    /// `slclient.toml` is larger than [`MAX_TOML_BYTES`]: refused before parsing.
    TomlTooLarge {
        /// How many bytes it decodes to (at least).
        bytes: usize,
    },
    /// `slclient.toml` holds more than [`MAX_TOML_ENTRIES`] keys/tables: refused before parsing.
    TomlTooManyEntries {
        /// How many bytes `slclient.toml` decoded to.
        toml_bytes: usize,
        /// How many `=`, `[` and `{` it holds.
        entries: usize,
    },
    /// A `kind: List` of several objects, none of them `storage-secret-store`.
    AmbiguousList {
        /// How many items the List holds.
        items: usize,
    },
    /// A YAML/JSON document of more than [`MAX_VALUES`] values: refused, not read further.
    TooManyValues,
}

impl MissingKey {
    /// One human sentence saying what is wrong. Never contains a secret.
    pub fn explain(&self) -> String {
        match self {
            MissingKey::EmptyArtifact => {
                "connector_getConnectorAPIKey.log is empty: the job printed no secret.".into()
            }
            MissingKey::NotFound => "kubectl found no secret `storage-secret-store` in `kube-system` (NotFound).".into(),
            MissingKey::KubectlError { message } => {
                format!("kubectl failed instead of printing the secret: {message}")
            }
            MissingKey::Unreadable => {
                "connector_getConnectorAPIKey.log is neither kubectl YAML nor JSON output: no secret could be read from it.".into()
            }
            MissingKey::NoSlclientToml { keys } if keys.is_empty() => {
                "The secret has no `slclient.toml` key (it has no data keys at all).".into()
            }
            MissingKey::NoSlclientToml { keys } => format!(
                "The secret has no `slclient.toml` key (its data keys: {}).",
                quoted_list(keys)
            ),
            MissingKey::BadBase64 { detail } => {
                format!("The `slclient.toml` value is not valid base64 ({detail}).")
            }
            MissingKey::NotUtf8 { bytes } => {
                format!("slclient.toml decodes to {bytes} bytes that are not UTF-8 text.")
            }
            MissingKey::BadToml { bytes, line, column, message } => {
                let at = match (line, column) {
                    (Some(l), Some(c)) => format!(" at line {l}, column {c}"),
                    (Some(l), None) => format!(" at line {l}"),
                    _ => String::new(),
                };
                format!("slclient.toml ({bytes} bytes) is not valid TOML: {message}{at}.")
            }
            MissingKey::NoIamApiKey { toml_bytes, tables, misplaced_in } => {
                let tables = if tables.is_empty() {
                    "it has no tables".to_string()
                } else {
                    format!(
                        "its tables: {}",
                        tables.iter().map(|t| format!("[{t}]")).collect::<Vec<_>>().join(", ")
                    )
                };
                let misplaced = match misplaced_in {
                    Some(t) => format!("; there is one in [{t}], where the connector does not read it"),
                    None => String::new(),
                };
                format!(
                    "slclient.toml ({toml_bytes} bytes) has no `iam_api_key` in [Bluemix] or at the top level ({tables}){misplaced}."
                )
            }
            MissingKey::EmptyIamApiKey { table, .. } => {
                format!("The {} `iam_api_key` in slclient.toml is empty.", table.label())
            }
            MissingKey::IamApiKeyNotString { table, .. } => {
                format!("The {} `iam_api_key` in slclient.toml is not a string.", table.label())
            }
            MissingKey::TomlTooLarge { bytes } => format!(
                "slclient.toml decodes to {bytes} bytes, more than the {MAX_TOML_BYTES} bytes linkbot parses: it is not a client configuration."
            ),
            MissingKey::TomlTooManyEntries { toml_bytes, entries } => format!(
                "slclient.toml ({toml_bytes} bytes) has {entries} keys/tables, more than the {MAX_TOML_ENTRIES} linkbot parses: it is not a client configuration."
            ),
            MissingKey::AmbiguousList { items } => format!(
                "connector_getConnectorAPIKey.log is a List of {items} objects, none named `{SECRET_NAME}`: linkbot does not guess which one is the secret."
            ),
            MissingKey::TooManyValues => format!(
                "connector_getConnectorAPIKey.log has more than {MAX_VALUES} YAML/JSON values: it is not kubectl output of one secret, and linkbot does not read it further."
            ),
        }
    }

    /// The size of the decoded `slclient.toml`, when decoding got that far.
    pub fn toml_bytes(&self) -> Option<usize> {
        match self {
            MissingKey::NotUtf8 { bytes } | MissingKey::BadToml { bytes, .. } => Some(*bytes),
            MissingKey::NoIamApiKey { toml_bytes, .. }
            | MissingKey::EmptyIamApiKey { toml_bytes, .. }
            | MissingKey::IamApiKeyNotString { toml_bytes, .. }
            | MissingKey::TomlTooManyEntries { toml_bytes, .. } => Some(*toml_bytes),
            _ => None,
        }
    }
}

impl fmt::Display for MissingKey {
    /// The same sentence as [`MissingKey::explain`], for logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.explain())
    }
}

/// What [`find_region`] found in `connector_sl_configMap.log`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegionFinding {
    /// The region, trimmed, lower-cased, control characters removed, at most 64 characters.
    Found(String),
    /// No region, and why.
    Absent(MissingRegion),
}

/// Why the ConfigMap gave no region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MissingRegion {
    /// The artifact is empty (or only whitespace).
    EmptyArtifact,
    /// kubectl said the ConfigMap does not exist.
    NotFound,
    /// kubectl printed another error instead of the ConfigMap.
    KubectlError {
        /// kubectl's error line, cleaned and shortened.
        message: String,
    },
    /// The ConfigMap has no `region` key.
    NoRegionKey {
        /// The data keys that were there (names only).
        keys: Vec<String>,
    },
    /// `region` is there but empty.
    EmptyRegion,
    /// Neither YAML nor JSON kubectl output, nor anything recognisable.
    Unreadable,
    /// A `kind: List` of several objects, none of them `satellite-link-config`.
    AmbiguousList {
        /// How many items the List holds.
        items: usize,
    },
    /// A YAML/JSON document of more than [`MAX_VALUES`] values: refused, not read further.
    TooManyValues,
}

impl MissingRegion {
    /// One human sentence saying what is wrong.
    pub fn explain(&self) -> String {
        match self {
            MissingRegion::EmptyArtifact => {
                "connector_sl_configMap.log is empty: the job printed no ConfigMap.".into()
            }
            MissingRegion::NotFound => "kubectl found no ConfigMap `satellite-link-config` in `satellite-link` (NotFound).".into(),
            MissingRegion::KubectlError { message } => {
                format!("kubectl failed instead of printing the ConfigMap: {message}")
            }
            MissingRegion::NoRegionKey { keys } if keys.is_empty() => {
                "The ConfigMap has no `region` key (it has no data keys at all).".into()
            }
            MissingRegion::NoRegionKey { keys } => format!(
                "The ConfigMap has no `region` key (its data keys: {}).",
                quoted_list(keys)
            ),
            MissingRegion::EmptyRegion => "The ConfigMap's `region` is empty.".into(),
            MissingRegion::Unreadable => {
                "connector_sl_configMap.log is neither kubectl YAML nor JSON output: no ConfigMap could be read from it.".into()
            }
            MissingRegion::AmbiguousList { items } => format!(
                "connector_sl_configMap.log is a List of {items} objects, none named `{CONFIGMAP_NAME}`: linkbot does not guess which one is the ConfigMap."
            ),
            MissingRegion::TooManyValues => format!(
                "connector_sl_configMap.log has more than {MAX_VALUES} YAML/JSON values: it is not kubectl output of one ConfigMap, and linkbot does not read it further."
            ),
        }
    }
}

impl fmt::Display for MissingRegion {
    /// The same sentence as [`MissingRegion::explain`], for logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.explain())
    }
}

/// Finds a non-empty `iam_api_key` in the `slclient.toml` of the storage secret printed by kubectl.
pub fn find_api_key(log: &[u8]) -> ApiKeyFinding {
    let from_failure = |f: Failure| {
        ApiKeyFinding::Missing(match f {
            Failure::Empty => MissingKey::EmptyArtifact,
            Failure::NotFound => MissingKey::NotFound,
            Failure::Kubectl(message) => MissingKey::KubectlError { message },
            Failure::Unreadable => MissingKey::Unreadable,
            Failure::AmbiguousList(items) => MissingKey::AmbiguousList { items },
            Failure::TooManyValues => MissingKey::TooManyValues,
        })
    };
    let doc = match locate(log, SECRET_NAME) {
        Located::Failed(f) => return from_failure(f),
        Located::Fallback(text) => match line_lookup(&text, SLCLIENT_KEY) {
            Some(v) => return decode_slclient(&DataValue::Text(v)),
            None => return from_failure(failure_of(&text)),
        },
        Located::Doc(doc) => doc,
    };
    if let Some(v) = doc.get(SLCLIENT_KEY) {
        return decode_slclient(v);
    }
    if !doc.complete {
        if let Some(v) = line_lookup(&doc.text, SLCLIENT_KEY) {
            return decode_slclient(&DataValue::Text(v));
        }
    }
    ApiKeyFinding::Missing(MissingKey::NoSlclientToml {
        keys: doc.key_names(),
    })
}

/// Finds `data.region` in the satellite-link ConfigMap printed by kubectl.
pub fn find_region(log: &[u8]) -> RegionFinding {
    let from_failure = |f: Failure| {
        RegionFinding::Absent(match f {
            Failure::Empty => MissingRegion::EmptyArtifact,
            Failure::NotFound => MissingRegion::NotFound,
            Failure::Kubectl(message) => MissingRegion::KubectlError { message },
            Failure::Unreadable => MissingRegion::Unreadable,
            Failure::AmbiguousList(items) => MissingRegion::AmbiguousList { items },
            Failure::TooManyValues => MissingRegion::TooManyValues,
        })
    };
    let doc = match locate(log, CONFIGMAP_NAME) {
        Located::Failed(f) => return from_failure(f),
        Located::Fallback(text) => match line_lookup(&text, "region") {
            Some(v) => return normalise_region(&DataValue::Text(v)),
            None => return from_failure(failure_of(&text)),
        },
        Located::Doc(doc) => doc,
    };
    if let Some(v) = doc.get("region") {
        return normalise_region(v);
    }
    if !doc.complete {
        if let Some(v) = line_lookup(&doc.text, "region") {
            return normalise_region(&DataValue::Text(v));
        }
    }
    RegionFinding::Absent(MissingRegion::NoRegionKey {
        keys: doc.key_names(),
    })
}

/// Whether a character shows nothing: whitespace (NBSP and the other Unicode spaces included),
/// control characters, and the zero-width and filler characters that render as nothing.
fn is_invisible(c: char) -> bool {
    c.is_whitespace()
        || c.is_control()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{034F}'
                | '\u{115F}'
                | '\u{1160}'
                | '\u{180E}'
                | '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{2069}'
                | '\u{2800}'
                | '\u{3164}'
                | '\u{FEFF}'
                | '\u{FFA0}'
        )
}

/// Whether `s` is empty or shows nothing at all (see [`is_invisible`]).
fn is_blank(s: &str) -> bool {
    s.chars().all(is_invisible)
}

// ---------------------------------------------------------------------------------------------
// slclient.toml

fn decode_slclient(value: &DataValue) -> ApiKeyFinding {
    let missing = ApiKeyFinding::Missing;
    let encoded: String = match value {
        DataValue::Text(s) if is_blank(s) => String::new(),
        DataValue::Text(s) => s.chars().filter(|c| !c.is_ascii_whitespace()).collect(),
        DataValue::Null => String::new(),
        DataValue::Other => {
            return missing(MissingKey::BadBase64 {
                detail: "the value is not a string".into(),
            })
        }
    };
    // Refused before decoding: base64 holds 3 bytes in 4 characters.
    let at_least = encoded.trim_end_matches('=').len() / 4 * 3;
    if at_least > MAX_TOML_BYTES {
        return missing(MissingKey::TomlTooLarge { bytes: at_least });
    }
    let decoded = match LENIENT_BASE64.decode(encoded.as_bytes()) {
        Ok(d) => d,
        Err(e) => {
            return missing(MissingKey::BadBase64 {
                detail: base64_detail(&e),
            })
        }
    };
    drop(encoded);
    let bytes = decoded.len();
    if bytes > MAX_TOML_BYTES {
        return missing(MissingKey::TomlTooLarge { bytes });
    }
    let text = match String::from_utf8(decoded) {
        Ok(t) => t,
        Err(_) => return missing(MissingKey::NotUtf8 { bytes }),
    };
    let entries = text
        .bytes()
        .filter(|b| matches!(b, b'=' | b'[' | b'{'))
        .count();
    if entries > MAX_TOML_ENTRIES {
        return missing(MissingKey::TomlTooManyEntries {
            toml_bytes: bytes,
            entries,
        });
    }
    let table: toml::Table = match text.parse() {
        Ok(t) => t,
        Err(e) => {
            let (line, column) = match e.span() {
                Some(span) => line_col(&text, span.start),
                None => (None, None),
            };
            return missing(MissingKey::BadToml {
                bytes,
                line,
                column,
                message: redact_message(e.message()),
            });
        }
    };
    drop(text);
    find_key_in_table(&table, bytes)
}

/// What one candidate `iam_api_key` entry holds.
enum KeyValue<'a> {
    NonEmpty(&'a str),
    Empty,
    NotString,
}

fn key_value(t: &toml::Table) -> Option<KeyValue<'_>> {
    let v = t
        .iter()
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("iam_api_key"))
        .map(|(_, v)| v)?;
    Some(match v {
        toml::Value::String(s) if is_blank(s) => KeyValue::Empty,
        toml::Value::String(s) => KeyValue::NonEmpty(s),
        _ => KeyValue::NotString,
    })
}

fn find_key_in_table(root: &toml::Table, toml_bytes: usize) -> ApiKeyFinding {
    let bluemix = root
        .iter()
        .filter(|(k, _)| k.trim().eq_ignore_ascii_case("bluemix"))
        .find_map(|(_, v)| v.as_table());
    let in_bluemix = bluemix.and_then(key_value);
    let top = key_value(root);
    for (found, table) in [(&in_bluemix, KeyTable::Bluemix), (&top, KeyTable::TopLevel)] {
        if let Some(KeyValue::NonEmpty(k)) = found {
            return ApiKeyFinding::Present {
                key: Secret::new(*k),
                table,
                toml_bytes,
            };
        }
    }
    for (found, table) in [(&in_bluemix, KeyTable::Bluemix), (&top, KeyTable::TopLevel)] {
        match found {
            Some(KeyValue::Empty) => {
                return ApiKeyFinding::Missing(MissingKey::EmptyIamApiKey { toml_bytes, table })
            }
            Some(KeyValue::NotString) => {
                return ApiKeyFinding::Missing(MissingKey::IamApiKeyNotString { toml_bytes, table })
            }
            _ => {}
        }
    }
    let tables: Vec<&String> = root
        .iter()
        .filter(|(_, v)| v.is_table())
        .map(|(k, _)| k)
        .collect();
    let misplaced_in = root
        .iter()
        .filter(|(k, _)| !k.trim().eq_ignore_ascii_case("bluemix"))
        .filter_map(|(k, v)| v.as_table().map(|t| (k, t)))
        .find(|(_, t)| key_value(t).is_some())
        .map(|(k, _)| clean(k, MAX_NAME_CHARS));
    ApiKeyFinding::Missing(MissingKey::NoIamApiKey {
        toml_bytes,
        tables: names(tables.into_iter().map(String::as_str)),
        misplaced_in,
    })
}

fn base64_detail(e: &base64::DecodeError) -> String {
    match e {
        base64::DecodeError::InvalidByte(at, _) => {
            format!("invalid character at position {}", at + 1)
        }
        base64::DecodeError::InvalidLength(n) => format!("invalid length: {n} base64 characters"),
        base64::DecodeError::InvalidLastSymbol(at, _) => {
            format!("invalid last character at position {}", at + 1)
        }
        base64::DecodeError::InvalidPadding => "invalid padding".into(),
    }
}

/// 1-based line and column (in characters) of byte offset `at` in `text`.
fn line_col(text: &str, at: usize) -> (Option<usize>, Option<usize>) {
    let mut at = at.min(text.len());
    while at > 0 && !text.is_char_boundary(at) {
        at -= 1;
    }
    let before = text.get(..at).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let column = before.get(line_start..).map(|s| s.chars().count() + 1);
    (Some(line), column)
}

/// A parser message with every backtick- or quote-delimited fragment replaced by `…`, so no
/// content of the secret TOML is echoed; control characters removed, one line, shortened.
fn redact_message(msg: &str) -> String {
    let mut out = String::new();
    let mut inside: Option<char> = None;
    for c in msg.chars() {
        match inside {
            Some(close) if c == close => {
                out.push('…');
                out.push(close);
                inside = None;
            }
            Some(_) => {}
            None if matches!(c, '`' | '"' | '\'') => {
                out.push(c);
                inside = Some(c);
            }
            None if c == '\n' => out.push_str("; "),
            None if c.is_control() => {}
            None => out.push(c),
        }
    }
    if inside.is_some() {
        out.push('…');
    }
    let out = clean(out.trim().trim_end_matches([';', ' ']), 120);
    if out.is_empty() {
        "parse error".into()
    } else {
        out
    }
}

// ---------------------------------------------------------------------------------------------
// region

fn normalise_region(value: &DataValue) -> RegionFinding {
    let raw = match value {
        DataValue::Text(s) => s.as_str(),
        DataValue::Null | DataValue::Other => "",
    };
    let raw = strip_quotes(raw.trim());
    if is_blank(raw) {
        return RegionFinding::Absent(MissingRegion::EmptyRegion);
    }
    let cleaned: String = raw
        .chars()
        .filter(|c| !is_invisible(*c) || *c == ' ')
        .collect::<String>()
        .trim()
        .to_lowercase()
        .chars()
        .take(MAX_REGION_CHARS)
        .collect();
    if cleaned.is_empty() {
        RegionFinding::Absent(MissingRegion::EmptyRegion)
    } else {
        RegionFinding::Found(cleaned)
    }
}

fn strip_quotes(s: &str) -> &str {
    for q in ['"', '\''] {
        if let Some(inner) = s.strip_prefix(q).and_then(|x| x.strip_suffix(q)) {
            return inner;
        }
    }
    s
}

// ---------------------------------------------------------------------------------------------
// locating the document

/// Why no document could be located.
enum Failure {
    Empty,
    NotFound,
    Kubectl(String),
    Unreadable,
    /// A `List` of this many items, none with the expected name.
    AmbiguousList(usize),
    /// A document of more than [`MAX_VALUES`] values.
    TooManyValues,
}

/// A value under `data`.
#[derive(Debug)]
enum DataValue {
    /// A scalar, as text.
    Text(String),
    /// An explicit null / empty value.
    Null,
    /// A mapping or sequence.
    Other,
}

/// The recognised kubectl object: its `data` entries and the text it came from.
struct Doc {
    data: Vec<(String, DataValue)>,
    /// False when the structured parse stopped early and only part of the object was read.
    complete: bool,
    /// The normalised artifact text, for the line fallback.
    text: String,
}

impl Doc {
    fn get(&self, key: &str) -> Option<&DataValue> {
        self.data
            .iter()
            .find(|(k, _)| k.trim().eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    }

    fn key_names(&self) -> Vec<String> {
        names(self.data.iter().map(|(k, _)| k.as_str()))
    }
}

enum Located {
    Failed(Failure),
    /// No structured document; the normalised text for the line scan.
    Fallback(String),
    Doc(Doc),
}

/// Normalises the bytes (lossy UTF-8, no BOM, LF line endings) and finds the kubectl object
/// named `name` (or the only one). Annotation blocks are blanked first: no document start and no
/// line inside an annotation is ever read (see the module doc).
fn locate(log: &[u8], name: &str) -> Located {
    let original = normalise(log);
    if original.trim().is_empty() {
        return Located::Failed(Failure::Empty);
    }
    // Document starts and the line scan see the blanked text; the parsers read the original
    // (same offsets) and take only the root's `data`, so an annotation is never read either way.
    let text = blank_annotations(&original);
    let mut partial: Option<Doc> = None;
    let starts: Vec<(usize, Candidate)> = candidates(&text).take(MAX_CANDIDATES).collect();
    for (offset, kind) in starts {
        let rest = original.get(offset..).unwrap_or("");
        let parsed = match kind {
            Candidate::Json => parse_json(rest).map(|n| n.map(|n| (n, true))),
            Candidate::Yaml => parse_yaml(rest),
        };
        let parsed = match parsed {
            Ok(parsed) => parsed,
            // Not kubectl output: neither another start nor the line scan is tried.
            Err(TooManyValues) => return Located::Failed(Failure::TooManyValues),
        };
        let Some((root, complete)) = parsed else {
            continue;
        };
        let data = match object_data(&root, name) {
            ObjectData::NotObject => continue,
            ObjectData::Ambiguous(items) => return Located::Failed(Failure::AmbiguousList(items)),
            ObjectData::Data(d) => d,
        };
        // A whole kubectl object is the answer, with or without data: a later document is
        // another object and is not read (module doc).
        let whole_object = complete
            && partial.is_none()
            && (root.get("kind").is_some() || root.get("apiVersion").is_some());
        if complete && (!data.is_empty() || whole_object) {
            drop(original);
            return Located::Doc(Doc {
                data,
                complete,
                text,
            });
        }
        // Partial, or without data (perhaps a noise line like `data: 3 files`): keep looking.
        if partial
            .as_ref()
            .is_none_or(|p| p.data.is_empty() && !data.is_empty())
        {
            partial = Some(Doc {
                data,
                complete,
                text: String::new(),
            });
        }
    }
    drop(original);
    match partial {
        Some(mut doc) => {
            doc.text = text;
            Located::Doc(doc)
        }
        None => Located::Fallback(text),
    }
}

/// `text` with every `annotations:` block (and any `…last-applied-configuration` entry) replaced
/// by spaces, keeping every offset and line break: the key line itself and every following line
/// indented deeper than it (blank lines included). Covers kubectl's YAML (`annotations:` then
/// indented entries, a `|` block holding JSON) and pretty JSON (`"annotations": {` then deeper
/// lines; the closing brace, at the key's own indent, stays). In compact JSON the annotation is
/// an escaped string, which neither the parsers nor the line scan read as keys.
fn blank_annotations(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut inside: Option<usize> = None;
    for line in text.split_inclusive('\n') {
        let body = line.trim_start();
        let indent = line.len() - body.len();
        if let Some(key_indent) = inside {
            if body.trim().is_empty() || indent > key_indent {
                blank_into(&mut out, line);
                continue;
            }
            inside = None;
        }
        let key = body
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .trim_matches(|c| c == '"' || c == '\'');
        if body.contains(':')
            && (key.eq_ignore_ascii_case("annotations")
                || key.ends_with("last-applied-configuration"))
        {
            inside = Some(indent);
            blank_into(&mut out, line);
            continue;
        }
        out.push_str(line);
    }
    out
}

/// Appends `line` to `out` with every character but the line break replaced by spaces (as many
/// bytes as the character had, so byte offsets stay the same).
fn blank_into(out: &mut String, line: &str) {
    for c in line.chars() {
        if c == '\n' {
            out.push('\n');
        } else {
            out.extend(std::iter::repeat_n(' ', c.len_utf8()));
        }
    }
}

fn normalise(log: &[u8]) -> String {
    let text = String::from_utf8_lossy(log);
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    if text.contains('\r') {
        text.replace("\r\n", "\n").replace('\r', "\n")
    } else {
        text.to_string()
    }
}

/// What a text with no document says about why.
fn failure_of(text: &str) -> Failure {
    let mut kubectl: Option<String> = None;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with("Error from server (NotFound)") {
            return Failure::NotFound;
        }
        if kubectl.is_none()
            && (t.starts_with("Error from server")
                || t.starts_with("error:")
                || t.starts_with("Unable to connect to the server")
                || t.starts_with("The connection to the server"))
        {
            kubectl = Some(clean(t, 200));
        }
    }
    match kubectl {
        Some(m) => Failure::Kubectl(m),
        None => Failure::Unreadable,
    }
}

#[derive(Clone, Copy)]
enum Candidate {
    Json,
    Yaml,
}

/// Byte offsets of lines where a kubectl object may start, in order.
fn candidates(text: &str) -> impl Iterator<Item = (usize, Candidate)> + '_ {
    let mut offset = 0;
    text.split_inclusive('\n').filter_map(move |line| {
        let start = offset;
        offset += line.len();
        let t = line.trim();
        if t.starts_with('{') {
            return Some((start, Candidate::Json));
        }
        // kubectl's YAML never quotes these keys; a quoted one is a JSON line.
        let key = t.split(':').next().unwrap_or("");
        let yaml_start = t == "---"
            || (t.contains(':')
                && ["apiVersion", "kind", "data", "metadata", "items"].contains(&key));
        yaml_start.then_some((start, Candidate::Yaml))
    })
}

/// A bounded tree of what the parsers read: enough for `data`, `kind`, `items`.
#[derive(Debug, PartialEq)]
enum Node {
    Scalar(String),
    Null,
    Map(Vec<(Option<String>, Node)>),
    Seq(Vec<Node>),
}

impl Node {
    fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.as_deref().map(str::trim) == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }
}

/// What [`object_data`] read from a parsed root.
enum ObjectData {
    /// The root is not a kubectl object.
    NotObject,
    /// A `List` of this many items, none named as expected and not just one.
    Ambiguous(usize),
    /// The `data` entries (empty when the object has none).
    Data(Vec<(String, DataValue)>),
}

/// The `data` entries of a kubectl object, read from the object itself only (never from its
/// annotations). For a `List`: the item whose `metadata.name` is `name`, else its only item.
fn object_data(root: &Node, name: &str) -> ObjectData {
    let Node::Map(entries) = root else {
        return ObjectData::NotObject;
    };
    let recognised = entries.iter().any(|(k, _)| {
        matches!(
            k.as_deref().map(str::trim),
            Some("apiVersion" | "kind" | "data" | "metadata" | "items")
        )
    });
    if !recognised {
        return ObjectData::NotObject;
    }
    let data_of = |obj: &Node| -> Vec<(String, DataValue)> {
        match obj.get("data") {
            Some(Node::Map(entries)) => entries
                .iter()
                .filter_map(|(k, v)| {
                    let value = match v {
                        Node::Scalar(s) => DataValue::Text(s.clone()),
                        Node::Null => DataValue::Null,
                        Node::Map(_) | Node::Seq(_) => DataValue::Other,
                    };
                    k.clone().map(|k| (k, value))
                })
                .collect(),
            _ => Vec::new(),
        }
    };
    if root.get("data").is_some() {
        return ObjectData::Data(data_of(root));
    }
    if let Some(Node::Seq(items)) = root.get("items") {
        let named = |item: &&Node| match item.get("metadata").and_then(|m| m.get("name")) {
            Some(Node::Scalar(n)) => n.trim() == name,
            _ => false,
        };
        return match (items.iter().find(named), items.as_slice()) {
            (Some(item), _) | (None, [item]) => ObjectData::Data(data_of(item)),
            (None, []) => ObjectData::Data(Vec::new()),
            (None, many) => ObjectData::Ambiguous(many.len()),
        };
    }
    ObjectData::Data(Vec::new())
}

/// A document held more than [`MAX_VALUES`] values: the parse was abandoned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TooManyValues;

/// How many more values the tree being built may take (see [`MAX_VALUES`]).
struct Budget {
    left: usize,
    exhausted: bool,
}

impl Budget {
    fn new() -> Self {
        Budget {
            left: MAX_VALUES,
            exhausted: false,
        }
    }

    /// Takes one value; false (and remembered) once more than [`MAX_VALUES`] were taken.
    fn take(&mut self) -> bool {
        match self.left.checked_sub(1) {
            Some(left) => {
                self.left = left;
                true
            }
            None => {
                self.exhausted = true;
                false
            }
        }
    }
}

/// Parses the first JSON value at the start of `text`, ignoring what follows it. The tree is
/// built by [`JsonNode`] straight from the deserializer: no `serde_json::Value` in between.
fn parse_json(text: &str) -> Result<Option<Node>, TooManyValues> {
    use serde::de::DeserializeSeed as _;
    let mut budget = Budget::new();
    let mut de = serde_json::Deserializer::from_str(text);
    let parsed = JsonNode {
        depth: 0,
        budget: &mut budget,
    }
    .deserialize(&mut de);
    match parsed {
        _ if budget.exhausted => Err(TooManyValues),
        Ok(node) => Ok(Some(node)),
        Err(_) => Ok(None),
    }
}

/// Builds one [`Node`] from a JSON value. Deeper than [`MAX_DEPTH`] the value is read and
/// dropped (`Null`) without allocating or counting; it is still read through `deserialize_any`
/// (not `IgnoredAny`, which serde_json skips without a depth check), so serde_json's own
/// recursion limit (128) refuses deeper input as before. Objects keep serde_json's map semantics
/// (keys sorted, the last duplicate wins).
struct JsonNode<'b> {
    depth: usize,
    budget: &'b mut Budget,
}

impl JsonNode<'_> {
    fn child(&mut self) -> JsonNode<'_> {
        JsonNode {
            depth: self.depth + 1,
            budget: self.budget,
        }
    }

    /// Whether this value is kept (not deeper than [`MAX_DEPTH`]).
    fn keep(&self) -> bool {
        self.depth <= MAX_DEPTH
    }

    /// Counts `node` (a `Null` just below [`MAX_DEPTH`], which its parent keeps, counts too).
    fn value<E: serde::de::Error>(self, node: Node) -> Result<Node, E> {
        if self.depth > MAX_DEPTH + 1 {
            // Inside a dropped value: nothing is kept.
            Ok(Node::Null)
        } else if self.budget.take() {
            let node = if self.keep() { node } else { Node::Null };
            Ok(node)
        } else {
            Err(E::custom("too many values"))
        }
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for JsonNode<'_> {
    type Value = Node;

    fn deserialize<D: serde::Deserializer<'de>>(self, de: D) -> Result<Node, D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for JsonNode<'_> {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Node, E> {
        self.value(Node::Null)
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Node, E> {
        self.value(Node::Scalar(v.to_string()))
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Node, E> {
        self.value(Node::Scalar(serde_json::Number::from(v).to_string()))
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Node, E> {
        self.value(Node::Scalar(serde_json::Number::from(v).to_string()))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Node, E> {
        // As `serde_json::Value` holds it (a non-finite float is its `Null`).
        match serde_json::Number::from_f64(v) {
            Some(n) => self.value(Node::Scalar(n.to_string())),
            None => self.value(Node::Null),
        }
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Node, E> {
        self.value(Node::Scalar(v.to_string()))
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Node, E> {
        self.value(Node::Scalar(v))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(mut self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self.child())? {
            if self.keep() {
                items.push(item);
            }
        }
        self.value(Node::Seq(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(mut self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = std::collections::BTreeMap::new();
        if !self.keep() {
            while map.next_key::<serde::de::IgnoredAny>()?.is_some() {
                map.next_value_seed(self.child())?;
            }
            return self.value(Node::Null);
        }
        while let Some(key) = map.next_key::<String>()? {
            if !self.budget.take() {
                return Err(serde::de::Error::custom("too many values"));
            }
            let value = map.next_value_seed(self.child())?;
            entries.insert(key, value);
        }
        let entries = entries.into_iter().map(|(k, v)| (Some(k), v)).collect();
        self.value(Node::Map(entries))
    }
}

/// A container being built from YAML events.
enum Frame {
    Map {
        entries: Vec<(Option<String>, Node)>,
        key: Option<Option<String>>,
    },
    Seq(Vec<Node>),
}

impl Frame {
    fn into_node(self) -> Node {
        match self {
            Frame::Map { entries, .. } => Node::Map(entries),
            Frame::Seq(items) => Node::Seq(items),
        }
    }

    /// Adds a finished node as a key, a value or an item.
    fn push(&mut self, node: Node) {
        match self {
            Frame::Seq(items) => items.push(node),
            Frame::Map { entries, key } => match key.take() {
                None => {
                    *key = Some(match node {
                        Node::Scalar(s) => Some(s),
                        _ => None,
                    })
                }
                Some(k) => entries.push((k, node)),
            },
        }
    }
}

/// Parses the first YAML document at the start of `text` with an explicit, depth-bounded stack
/// (the library's own loader recurses without bound). On a syntax error, returns what was read
/// so far with `complete == false`: trailing log noise after the object is such an error.
/// More than [`MAX_VALUES`] values (containers, scalars, keys, aliases) refuse the document.
fn parse_yaml(text: &str) -> Result<Option<(Node, bool)>, TooManyValues> {
    // yaml-rust2 is fuzzed, but a panic inside it must not take the bot down.
    std::panic::catch_unwind(|| parse_yaml_events(text)).unwrap_or(Ok(None))
}

fn parse_yaml_events(text: &str) -> Result<Option<(Node, bool)>, TooManyValues> {
    let mut parser = Parser::new_from_str(text);
    let mut stack: Vec<Frame> = Vec::new();
    let mut budget = Budget::new();
    while let Ok((event, _)) = parser.next_token() {
        if matches!(
            event,
            Event::Alias(_)
                | Event::Scalar(..)
                | Event::SequenceStart(..)
                | Event::MappingStart(..)
        ) && !budget.take()
        {
            return Err(TooManyValues);
        }
        let finished = match event {
            Event::Nothing | Event::StreamStart | Event::DocumentStart => continue,
            Event::DocumentEnd | Event::StreamEnd => break,
            Event::Alias(_) => Node::Null,
            Event::Scalar(value, style, _, _) => {
                let null = matches!(style, TScalarStyle::Plain)
                    && matches!(value.as_str(), "" | "~" | "null" | "Null" | "NULL");
                if null {
                    Node::Null
                } else {
                    Node::Scalar(value)
                }
            }
            Event::SequenceStart(..) | Event::MappingStart(..) => {
                if stack.len() >= MAX_DEPTH {
                    break;
                }
                stack.push(if matches!(event, Event::SequenceStart(..)) {
                    Frame::Seq(Vec::new())
                } else {
                    Frame::Map {
                        entries: Vec::new(),
                        key: None,
                    }
                });
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => match stack.pop() {
                Some(frame) => frame.into_node(),
                None => break,
            },
        };
        match stack.last_mut() {
            Some(parent) => parent.push(finished),
            None => return Ok(Some((finished, true))),
        }
    }
    // Stopped early: close what is open, keeping every finished entry.
    let Some(frame) = stack.pop() else {
        return Ok(None);
    };
    let mut node = frame.into_node();
    while let Some(mut parent) = stack.pop() {
        parent.push(node);
        node = parent.into_node();
    }
    Ok(Some((node, false)))
}

// ---------------------------------------------------------------------------------------------
// line fallback

/// Finds `key: value` in text no parser accepts: YAML-ish lines (plain, quoted, `|`/`>` block,
/// wrapped over indented lines) or JSON-ish `"key": "value"` anywhere.
/// Walks the lines lazily (no index of all lines: a 4 MiB artifact may hold millions).
fn line_lookup(text: &str, key: &str) -> Option<String> {
    let mut next = 0;
    for raw in text.split_inclusive('\n') {
        next += raw.len();
        // The same lines as `str::lines`: without `\n` or `\r\n`.
        let line = match raw.strip_suffix('\n') {
            Some(l) => l.strip_suffix('\r').unwrap_or(l),
            None => raw,
        };
        let body = line.trim_start();
        let indent = line.len() - body.len();
        let Some(rest) = strip_key(body, key) else {
            continue;
        };
        let rest = rest.trim();
        let following = || text.get(next..).unwrap_or("").lines();
        let more = || {
            following()
                .take_while(move |l| l.trim().is_empty() || indent_of(l) > indent)
                .map(|l| l.trim())
        };
        if let Some(q) = rest.chars().next().filter(|c| *c == '"' || *c == '\'') {
            let after = rest.get(1..).unwrap_or("");
            if let Some(end) = after.find(q) {
                return after.get(..end).map(str::to_string);
            }
            // A quoted scalar wrapped over the following lines.
            let mut value = after.to_string();
            for l in following() {
                match l.find(q) {
                    Some(end) => {
                        value.push(' ');
                        value.push_str(l.get(..end).unwrap_or("").trim());
                        return Some(value);
                    }
                    None => {
                        value.push(' ');
                        value.push_str(l.trim());
                    }
                }
            }
            return Some(value);
        }
        let rest = rest.trim_end_matches(',');
        if rest.is_empty() || rest.starts_with('|') || rest.starts_with('>') {
            return Some(more().collect::<Vec<_>>().join("\n"));
        }
        let mut value = rest.to_string();
        for l in more() {
            value.push(' ');
            value.push_str(l);
        }
        return Some(value);
    }
    json_lookup(text, key)
}

fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// `body` without the leading key (bare or quoted, any case) and its colon.
fn strip_key<'a>(body: &'a str, key: &str) -> Option<&'a str> {
    let (name, rest) = match body.chars().next() {
        Some(q @ ('"' | '\'')) => {
            let inner = body.get(1..)?;
            let end = inner.find(q)?;
            (inner.get(..end)?, inner.get(end + 1..)?)
        }
        _ => {
            let end = body.find(':')?;
            (body.get(..end)?, body.get(end..)?)
        }
    };
    if !name.trim().eq_ignore_ascii_case(key) {
        return None;
    }
    rest.trim_start().strip_prefix(':')
}

/// Finds `"key" : "value"` anywhere (compact or broken JSON).
fn json_lookup(text: &str, key: &str) -> Option<String> {
    let needle = format!("\"{key}\"");
    let lower = text.to_ascii_lowercase();
    let mut from = 0;
    while let Some(found) = lower.get(from..)?.find(&needle) {
        let after = from + found + needle.len();
        from = after;
        let rest = text.get(after..)?.trim_start();
        let Some(rest) = rest.strip_prefix(':') else {
            continue;
        };
        let Some(rest) = rest.trim_start().strip_prefix('"') else {
            continue;
        };
        let end = rest.find('"')?;
        return rest.get(..end).map(str::to_string);
    }
    None
}

// ---------------------------------------------------------------------------------------------
// shared helpers

/// At most `max` characters of `s` without control characters, `…` when cut.
fn clean(s: &str, max: usize) -> String {
    let mut out: String = s.chars().filter(|c| !c.is_control()).take(max).collect();
    if s.chars().filter(|c| !c.is_control()).nth(max).is_some() {
        out.push('…');
    }
    out
}

/// Names for a finding: cleaned, at most [`MAX_NAMES`] of them (then `…`).
fn names<'a>(it: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (i, n) in it.enumerate() {
        if i == MAX_NAMES {
            out.push("…".into());
            break;
        }
        out.push(clean(n.trim(), MAX_NAME_CHARS));
    }
    out
}

fn quoted_list(names: &[String]) -> String {
    names
        .iter()
        .map(|n| {
            if n == "…" {
                n.clone()
            } else {
                format!("`{n}`")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_messages_never_echo_quoted_content() {
        assert_eq!(
            redact_message("duplicate key `iam_api_key` in table \"Bluemix\""),
            "duplicate key `…` in table \"…\""
        );
        assert_eq!(redact_message("unterminated `abc"), "unterminated `…");
        assert_eq!(redact_message(""), "parse error");
    }

    #[test]
    fn line_and_column_are_one_based_and_safe_on_any_offset() {
        assert_eq!(line_col("ab\ncd", 4), (Some(2), Some(2)));
        assert_eq!(line_col("ab", 0), (Some(1), Some(1)));
        assert_eq!(line_col("é", 1), (Some(1), Some(1)));
        assert_eq!(line_col("ab", 99), (Some(1), Some(3)));
    }

    #[test]
    fn deep_yaml_nesting_is_refused_without_recursion() {
        let deep = format!("data: {}", "[".repeat(200_000));
        assert!(matches!(
            find_region(deep.as_bytes()),
            RegionFinding::Absent(_)
        ));
        let deep_block: String = (0..5_000)
            .map(|i| format!("{}- \n", " ".repeat(i)))
            .collect();
        assert!(matches!(
            find_region(deep_block.as_bytes()),
            RegionFinding::Absent(_)
        ));
    }

    #[test]
    fn the_line_fallback_reads_wrapped_and_quoted_values() {
        let text = "junk: [\n  slclient.toml: |\n    QUJD\n    REVG\nkind: Secret\n";
        assert_eq!(
            line_lookup(text, "slclient.toml").as_deref(),
            Some("QUJD\nREVG")
        );
        let text = "  \"region\": \"us-east\",\n";
        assert_eq!(line_lookup(text, "region").as_deref(), Some("us-east"));
        let text = "x {\"data\":{\"Region\" : \"eu-de\"";
        assert_eq!(line_lookup(text, "region").as_deref(), Some("eu-de"));
        let text = "  region: \"us-\n    east\"\n";
        assert_eq!(line_lookup(text, "region").as_deref(), Some("us- east"));
    }

    /// The tree the parser built before, through `serde_json::Value` (kept here as the oracle).
    fn via_value(text: &str) -> Option<Node> {
        fn node(v: &serde_json::Value, depth: usize) -> Node {
            use serde_json::Value as J;
            if depth > MAX_DEPTH {
                return Node::Null;
            }
            match v {
                J::Null => Node::Null,
                J::String(s) => Node::Scalar(s.clone()),
                J::Bool(b) => Node::Scalar(b.to_string()),
                J::Number(n) => Node::Scalar(n.to_string()),
                J::Array(a) => Node::Seq(a.iter().map(|x| node(x, depth + 1)).collect()),
                J::Object(o) => Node::Map(
                    o.iter()
                        .map(|(k, x)| (Some(k.clone()), node(x, depth + 1)))
                        .collect(),
                ),
            }
        }
        let mut stream = serde_json::Deserializer::from_str(text).into_iter::<serde_json::Value>();
        Some(node(&stream.next()?.ok()?, 0))
    }

    #[test]
    fn the_json_tree_is_the_one_serde_json_value_gave() {
        let deep_ok = format!("{{\"a\":{}1{}}}", "[".repeat(100), "]".repeat(100));
        let too_deep = format!("{{\"a\":{}1{}}}", "[".repeat(200), "]".repeat(200));
        for text in [
            r#"{"kind":"Secret","data":{"b":"2","a":"1"," data ":{}},"data":{"x":null}} trailing"#,
            r#"{"n":[1,-2,3.5,1e20,18446744073709551615,-0.0,true,false,null,"s\u00e9"]}"#,
            r#"{"z":1,"a":{"z":[],"a":{}},"m":"é"}{"second":1}"#,
            "  {\"a\": 1}\n",
            r#"{"a": [1, 2"#,
            "{}",
            "[1,2]",
            "not json",
            "",
            deep_ok.as_str(),
            too_deep.as_str(),
        ] {
            assert_eq!(parse_json(text), Ok(via_value(text)), "{text}");
        }
    }

    #[test]
    fn the_value_budget_counts_every_scalar_key_and_container() {
        // 1 root map + 1 key + 1 sequence + n items.
        let doc = |n: usize| format!("{{\"a\":[{}]}}", vec!["0"; n].join(","));
        assert!(matches!(parse_json(&doc(MAX_VALUES - 3)), Ok(Some(_))));
        assert_eq!(parse_json(&doc(MAX_VALUES - 2)), Err(TooManyValues));
        let yaml = |n: usize| format!("a: [{}]\n", vec!["0"; n].join(","));
        assert!(matches!(
            parse_yaml(&yaml(MAX_VALUES - 3)),
            Ok(Some((_, true)))
        ));
        assert_eq!(
            parse_yaml(&yaml(MAX_VALUES - 2)).map(|_| ()),
            Err(TooManyValues)
        );
        // Values deeper than MAX_DEPTH are read without being kept, so they cost nothing.
        let deep = format!(
            "{{\"a\":{}[{}]{}}}",
            "[".repeat(MAX_DEPTH),
            vec!["0"; MAX_VALUES].join(","),
            "]".repeat(MAX_DEPTH)
        );
        assert!(matches!(parse_json(&deep), Ok(Some(_))));
    }

    #[test]
    fn names_are_capped_and_cleaned() {
        let many: Vec<String> = (0..40).map(|i| format!("k{i}\u{7}")).collect();
        let out = names(many.iter().map(String::as_str));
        assert_eq!(out.len(), MAX_NAMES + 1);
        assert_eq!(out[0], "k0");
        assert_eq!(out[MAX_NAMES], "…");
    }
}
