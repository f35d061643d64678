//! Domain values parsed at the boundary: once one exists, it is valid.
//!
//! Every value that comes from a person (a Slack message, a CLI argument) or from another
//! system (the cluster directory) is parsed into one of these newtypes before anything acts on
//! it. Their fields are private; the only constructors are the parsers. This module does no I/O.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// Why a value could not be parsed; the message is fit to show a user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// A location id that is not 20 characters of `0-9a-v`.
    #[error("`{0}` is not a location id: a location id is 20 characters of 0-9 and a-v, e.g. `c1hk4ek107l5au5mq8hg`")]
    LocationId(String),
    /// An environment other than prod or stage.
    #[error("`{0}` is not an environment: use `prod` or `stage`")]
    Environment(String),
    /// A tugboat name that is not `<env>-<datacenter>.<carrier>`.
    #[error("`{0}` is not a tugboat name: expected `<env>-<datacenter>.<carrier>`, e.g. `prod-wdc04.carrier107`")]
    Tugboat(String),
    /// A datacenter that is not three letters and two digits.
    #[error("`{0}` is not a datacenter: expected three letters and two digits, e.g. `wdc04`")]
    Datacenter(String),
    /// A region that is not `<geo>-<name>`.
    #[error("`{0}` is not a region: expected e.g. `us-east`")]
    Region(String),
    /// A carrier name with characters other than `a-z 0-9 -`.
    #[error("`{0}` is not a carrier name: expected e.g. `prod-wdc04-carrier2`")]
    Carrier(String),
    /// A datacenter with no known region.
    #[error("no region is known for datacenter `{0}`: add `{0} = \"<region>\"` under `[regions]` in bot.toml")]
    UnknownDatacenter(String),
    /// A service base URL that is not an absolute http(s) URL with a host.
    #[error("`{0}` must be an http(s) URL with a host, e.g. `https://example.com/api`")]
    BaseUrl(String),
    /// A Slack channel id that is not `C…`/`G…` and upper-case letters and digits.
    #[error("`{0}` is not a channel id (e.g. `C0ONCALL`)")]
    SlackChannel(String),
    /// A GitHub repository that is not `owner/repo` by GitHub's naming rules.
    #[error("`{0}` must be `owner/repo`")]
    GithubRepo(String),
}

/// Keeps at most `max` characters of untrusted input for an error message, without control characters.
fn shown(input: &str, max: usize) -> String {
    let cleaned: String = input
        .chars()
        .filter(|c| !c.is_control())
        .take(max)
        .collect();
    if input.chars().count() > max {
        format!("{cleaned}…")
    } else {
        cleaned
    }
}

macro_rules! string_newtype {
    ($name:ident) => {
        impl $name {
            /// The value as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }
        impl FromStr for $name {
            type Err = DomainError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $name::parse(s)
            }
        }
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                $name::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

/// A Satellite location id: 20 characters of `0-9a-v` (e.g. `c1hk4ek107l5au5mq8hg`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LocationId(String);
string_newtype!(LocationId);

/// Strips what Slack adds around words: `<…>` links (keeping the label after `|`), `*bold*`,
/// `_italic_`, `~strike~` and backticks; then trims.
pub fn strip_slack_formatting(input: &str) -> String {
    let mut s = input.trim();
    if let Some(inner) = s.strip_prefix('<').and_then(|x| x.strip_suffix('>')) {
        s = match inner.split_once('|') {
            Some((_, label)) => label,
            None => inner,
        };
    }
    s.trim_matches(|c: char| matches!(c, '*' | '_' | '~' | '`' | '"' | '\'') || c.is_whitespace())
        .to_string()
}

impl LocationId {
    /// Parses a location id from user input: Slack formatting stripped, trimmed, lower-cased.
    pub fn parse(input: &str) -> Result<Self, DomainError> {
        let s = strip_slack_formatting(input).to_ascii_lowercase();
        // A Slack link to a URL (e.g. `<http://c1…>`) leaves the scheme behind: refuse it.
        let ok = s.len() == 20
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'v').contains(&b));
        if ok {
            Ok(LocationId(s))
        } else {
            Err(DomainError::LocationId(shown(input.trim(), 40)))
        }
    }
}

/// What one check is of, and what "one check at a time" is keyed on: a location in an
/// environment. The request a person makes, the row the store claims and the span the logs
/// carry all use this one value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct CheckKey {
    /// Which directory and Jenkins.
    pub environment: Environment,
    /// The Satellite location.
    pub location: LocationId,
}

/// Which directory and Jenkins a check goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    /// Production (`@xo cluster`).
    Prod,
    /// Staging (`@Armada Xo - Stage cluster`).
    Stage,
}

impl Environment {
    /// Parses `prod`/`production` or `stage`/`staging`, case-insensitively.
    pub fn parse(input: &str) -> Result<Self, DomainError> {
        match strip_slack_formatting(input).to_ascii_lowercase().as_str() {
            "prod" | "production" => Ok(Environment::Prod),
            "stage" | "staging" => Ok(Environment::Stage),
            _ => Err(DomainError::Environment(shown(input.trim(), 20))),
        }
    }

    /// The lower-case name used in config keys and output.
    pub fn as_str(&self) -> &'static str {
        match self {
            Environment::Prod => "prod",
            Environment::Stage => "stage",
        }
    }

    /// Both environments, prod first.
    pub const ALL: [Environment; 2] = [Environment::Prod, Environment::Stage];
}

impl fmt::Display for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Environment {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Environment::parse(s)
    }
}

/// A datacenter: three letters and two digits (`wdc04`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Datacenter(String);
string_newtype!(Datacenter);

impl Datacenter {
    /// Parses a datacenter name, trimmed and lower-cased.
    pub fn parse(input: &str) -> Result<Self, DomainError> {
        let s = input.trim().to_ascii_lowercase();
        let b = s.as_bytes();
        let ok = b.len() == 5
            && b[..3].iter().all(u8::is_ascii_lowercase)
            && b[3..].iter().all(u8::is_ascii_digit);
        if ok {
            Ok(Datacenter(s))
        } else {
            Err(DomainError::Datacenter(shown(input.trim(), 20)))
        }
    }
}

/// An IBM Cloud region (`us-east`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Region(String);
string_newtype!(Region);

impl Region {
    /// Parses a region: lower-case letters, one or more `-`-separated parts, at least two.
    pub fn parse(input: &str) -> Result<Self, DomainError> {
        let s = input.trim().to_ascii_lowercase();
        let parts: Vec<&str> = s.split('-').collect();
        let ok = s.len() <= 32
            && parts.len() >= 2
            && parts.iter().all(|p| {
                !p.is_empty()
                    && p.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            });
        if ok {
            Ok(Region(s))
        } else {
            Err(DomainError::Region(shown(input.trim(), 40)))
        }
    }
}

/// A carrier name as Jenkins' `CARRIER_NAME` wants it (`prod-wdc04-carrier2`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Carrier(String);
string_newtype!(Carrier);

impl Carrier {
    /// Parses a carrier name: 1–63 characters of `a-z 0-9 - .`, starting with a letter or digit.
    pub fn parse(input: &str) -> Result<Self, DomainError> {
        let s = input.trim().to_ascii_lowercase();
        let ok = !s.is_empty()
            && s.len() <= 63
            && s.as_bytes()[0].is_ascii_alphanumeric()
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if ok {
            Ok(Carrier(s))
        } else {
            Err(DomainError::Carrier(shown(input.trim(), 40)))
        }
    }
}

/// A tugboat (the location's control-plane cluster), `<env>-<datacenter>.<carrier>`.
///
/// The directory gives it dotted (`prod-wdc04.carrier107`); Jenkins wants it in kebab case
/// (`prod-wdc04-carrier107`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Tugboat {
    prefix: String,
    datacenter: Datacenter,
    carrier: String,
}

impl Tugboat {
    /// Parses `prod-wdc04.carrier107`, or the kebab form `prod-wdc04-carrier107`.
    pub fn parse(input: &str) -> Result<Self, DomainError> {
        let err = || DomainError::Tugboat(shown(input.trim(), 60));
        let s = input.trim().to_ascii_lowercase();
        let (left, carrier) = match s.split_once('.') {
            Some((l, c)) => (l.to_string(), c.to_string()),
            None => {
                // kebab form: the last `-` part is the carrier
                let (l, c) = s.rsplit_once('-').ok_or_else(err)?;
                (l.to_string(), c.to_string())
            }
        };
        let (prefix, dc) = left.rsplit_once('-').ok_or_else(err)?;
        let token_ok = |t: &str| {
            !t.is_empty()
                && t.len() <= 40
                && t.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        };
        if !token_ok(prefix) || !token_ok(&carrier) {
            return Err(err());
        }
        let datacenter = Datacenter::parse(dc).map_err(|_| err())?;
        Ok(Tugboat {
            prefix: prefix.to_string(),
            datacenter,
            carrier,
        })
    }

    /// The dotted name the directory uses: `prod-wdc04.carrier107`.
    pub fn dotted(&self) -> String {
        format!("{}-{}.{}", self.prefix, self.datacenter, self.carrier)
    }

    /// The kebab-case name Jenkins wants: `prod-wdc04-carrier107`.
    pub fn kebab(&self) -> String {
        format!("{}-{}-{}", self.prefix, self.datacenter, self.carrier)
    }

    /// The datacenter the tugboat resides in.
    pub fn datacenter(&self) -> &Datacenter {
        &self.datacenter
    }
}

impl fmt::Display for Tugboat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.dotted())
    }
}

impl Serialize for Tugboat {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.dotted())
    }
}

impl<'de> Deserialize<'de> for Tugboat {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Tugboat::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// The built-in datacenter → region table (SPEC §6).
const BUILTIN_REGIONS: &[(&str, &[&str])] = &[
    (
        "us-south",
        &[
            "dal10", "dal12", "dal13", "dal14", "hou02", "mex01", "sjc03", "sjc04",
        ],
    ),
    ("us-east", &["wdc04", "wdc06", "wdc07", "mon01"]),
    ("eu-gb", &["lon02", "lon04", "lon05", "lon06"]),
    (
        "eu-de",
        &[
            "fra02", "fra04", "fra05", "ams03", "mil01", "osl01", "par01",
        ],
    ),
    ("eu-es", &["mad02", "mad04", "mad05"]),
    (
        "jp-tok",
        &[
            "tok02", "tok04", "tok05", "che01", "hkg02", "seo01", "sng01",
        ],
    ),
    ("jp-osa", &["osa21", "osa22", "osa23"]),
    ("au-syd", &["syd01", "syd04", "syd05"]),
    ("ca-tor", &["tor01", "tor04", "tor05"]),
    ("br-sao", &["sao01", "sao04", "sao05"]),
];

/// Datacenter → region: the built-in table, with `[regions]` overrides on top.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionTable(BTreeMap<Datacenter, Region>);

impl Default for RegionTable {
    fn default() -> Self {
        let mut map = BTreeMap::new();
        for (region, dcs) in BUILTIN_REGIONS {
            for dc in *dcs {
                map.insert(Datacenter(dc.to_string()), Region(region.to_string()));
            }
        }
        RegionTable(map)
    }
}

impl RegionTable {
    /// The built-in table with `overrides` applied on top.
    pub fn with_overrides(overrides: impl IntoIterator<Item = (Datacenter, Region)>) -> Self {
        let mut table = RegionTable::default();
        table.0.extend(overrides);
        table
    }

    /// The region of a datacenter, or an error naming the `[regions]` key to add. Never a guess.
    pub fn region_of(&self, dc: &Datacenter) -> Result<Region, DomainError> {
        self.0
            .get(dc)
            .cloned()
            .ok_or_else(|| DomainError::UnknownDatacenter(dc.to_string()))
    }
}

/// The base URL of a service (`[environments.*] xo_url`, `[pagerduty] url`, …): absolute,
/// http(s), with a host, and always ending in `/`, so `join("x")` appends instead of replacing
/// the last segment. Clients take this, parsed once in config, never the config module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl(url::Url);

impl BaseUrl {
    /// Parses a URL written by a person (bot.toml).
    pub fn parse(input: &str) -> Result<Self, DomainError> {
        url::Url::parse(input.trim())
            .map_err(|_| DomainError::BaseUrl(shown(input.trim(), 100)))
            .and_then(BaseUrl::new)
    }

    /// Checks an already-parsed URL and adds the trailing `/`.
    pub fn new(url: url::Url) -> Result<Self, DomainError> {
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(DomainError::BaseUrl(shown(url.as_str(), 100)));
        }
        let mut u = url;
        if !u.path().ends_with('/') {
            let p = format!("{}/", u.path());
            u.set_path(&p);
        }
        Ok(BaseUrl(u))
    }

    /// The URL, to read (`join`, `as_str`, …).
    pub fn url(&self) -> &url::Url {
        &self.0
    }

    /// The URL itself, for a client that changes it (e.g. moves credentials out).
    pub fn into_url(self) -> url::Url {
        self.0
    }
}

impl std::ops::Deref for BaseUrl {
    type Target = url::Url;
    fn deref(&self) -> &url::Url {
        &self.0
    }
}

impl fmt::Display for BaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// A Slack channel id: `C…` (public) or `G…` (private), upper-case letters and digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SlackChannelId(String);
string_newtype!(SlackChannelId);

impl SlackChannelId {
    /// Parses a channel id as Slack writes it (`C0ONCALL`).
    pub fn parse(input: &str) -> Result<Self, DomainError> {
        let mut chars = input.chars();
        let ok = matches!(chars.next(), Some('C' | 'G'))
            && (2..=24).contains(&input.len())
            && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
        if ok {
            Ok(SlackChannelId(input.to_string()))
        } else {
            Err(DomainError::SlackChannel(shown(input, 40)))
        }
    }
}

impl std::ops::Deref for SlackChannelId {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

/// A GitHub repository, `owner/repo`, checked against GitHub's naming rules (owner: letters,
/// digits and `-`, not starting with `-`, at most 39; name: letters, digits, `-_.`, at most
/// 100, not `.` or `..`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GithubRepo(String);
string_newtype!(GithubRepo);

impl GithubRepo {
    /// Parses `owner/repo`.
    pub fn parse(input: &str) -> Result<Self, DomainError> {
        let invalid = || DomainError::GithubRepo(shown(input, 100));
        let (owner, name) = input.trim().split_once('/').ok_or_else(invalid)?;
        let owner_ok = !owner.is_empty()
            && owner.len() <= 39
            && owner
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !owner.starts_with('-');
        let name_ok = !name.is_empty()
            && name.len() <= 100
            && name != "."
            && name != ".."
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if owner_ok && name_ok {
            Ok(GithubRepo(format!("{owner}/{name}")))
        } else {
            Err(invalid())
        }
    }

    /// The owner (user or organisation).
    pub fn owner(&self) -> &str {
        self.0.split_once('/').map(|(o, _)| o).unwrap_or(&self.0)
    }

    /// The repository's name.
    pub fn name(&self) -> &str {
        self.0.split_once('/').map(|(_, n)| n).unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn location_ids_are_normalised_from_slack_formatting() {
        let cases = [
            ("c1hk4ek107l5au5mq8hg", true),
            ("  C1HK4EK107L5AU5MQ8HG ", true),
            ("*c1hk4ek107l5au5mq8hg*", true),
            ("`c1hk4ek107l5au5mq8hg`", true),
            ("<http://c1hk4ek107l5au5mq8hg|c1hk4ek107l5au5mq8hg>", true),
            ("c1hk4ek107l5au5mq8h", false),   // 19 characters
            ("c1hk4ek107l5au5mq8hgg", false), // 21
            ("c1hk4ek107l5au5mq8hw", false),  // w is outside 0-9a-v
            ("c1hk4ek107-5au5mq8hg", false),
            ("", false),
            ("<http://c1hk4ek107l5au5mq8hg>", false),
            ("c1hk4ek107l5au5mq8hé", false),
        ];
        for (input, ok) in cases {
            assert_eq!(LocationId::parse(input).is_ok(), ok, "{input:?}");
        }
        assert_eq!(
            LocationId::parse("*C1HK4EK107L5AU5MQ8HG*")
                .unwrap()
                .as_str(),
            "c1hk4ek107l5au5mq8hg"
        );
    }

    #[test]
    fn a_bad_location_id_says_what_a_good_one_looks_like() {
        let msg = LocationId::parse("nope").unwrap_err().to_string();
        assert!(msg.contains("20 characters"), "{msg}");
        assert!(msg.contains("c1hk4ek107l5au5mq8hg"), "{msg}");
    }

    #[test]
    fn tugboats_convert_between_dotted_and_kebab() {
        let t = Tugboat::parse("prod-wdc04.carrier107").unwrap();
        assert_eq!(t.kebab(), "prod-wdc04-carrier107");
        assert_eq!(t.dotted(), "prod-wdc04.carrier107");
        assert_eq!(t.datacenter().as_str(), "wdc04");
        assert_eq!(Tugboat::parse("prod-wdc04-carrier107").unwrap(), t);
        assert_eq!(
            Tugboat::parse("stage-dal10.carrier3").unwrap().kebab(),
            "stage-dal10-carrier3"
        );
        for bad in [
            "",
            "prod",
            "prod-wdc4.carrier1",
            "wdc04.carrier1",
            "prod-wdc04.",
            "prod-wdc04.carrier 1",
            "prod-wdc04.a.b",
        ] {
            assert!(Tugboat::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn regions_come_from_the_builtin_table_and_overrides() {
        let table = RegionTable::default();
        let region = |dc: &str| {
            table
                .region_of(&Datacenter::parse(dc).unwrap())
                .map(|r| r.to_string())
        };
        assert_eq!(region("wdc04").unwrap(), "us-east");
        assert_eq!(region("osa22").unwrap(), "jp-osa");
        assert_eq!(region("par01").unwrap(), "eu-de");
        let err = region("xyz01").unwrap_err().to_string();
        assert!(err.contains("[regions]") && err.contains("xyz01"), "{err}");
        let over = RegionTable::with_overrides([(
            Datacenter::parse("xyz01").unwrap(),
            Region::parse("us-east").unwrap(),
        )]);
        assert_eq!(
            over.region_of(&Datacenter::parse("xyz01").unwrap())
                .unwrap()
                .as_str(),
            "us-east"
        );
    }

    #[test]
    fn environments_parse() {
        assert_eq!(Environment::parse("PROD").unwrap(), Environment::Prod);
        assert_eq!(Environment::parse("staging").unwrap(), Environment::Stage);
        assert!(Environment::parse("dev").is_err());
    }

    proptest! {
        #[test]
        fn parsers_never_panic(s in "\\PC{0,64}") {
            let _ = LocationId::parse(&s);
            let _ = Tugboat::parse(&s);
            let _ = Datacenter::parse(&s);
            let _ = Region::parse(&s);
            let _ = Carrier::parse(&s);
            let _ = Environment::parse(&s);
        }

        #[test]
        fn valid_location_ids_round_trip(s in "[0-9a-v]{20}") {
            let id = LocationId::parse(&s.to_uppercase()).unwrap();
            prop_assert_eq!(id.as_str(), s.as_str());
        }
    }

    #[test]
    fn base_urls_end_in_a_slash_and_are_http() {
        let u = BaseUrl::parse("https://xo.example/api").unwrap();
        assert_eq!(u.as_str(), "https://xo.example/api/");
        assert_eq!(
            u.join("cluster/x").unwrap().as_str(),
            "https://xo.example/api/cluster/x"
        );
        assert_eq!(BaseUrl::parse("http://a").unwrap().as_str(), "http://a/");
        for bad in ["", "not a url", "ftp://a/", "mailto:x@y", "file:///etc"] {
            assert!(BaseUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn channels_and_repos_are_parsed_once() {
        for ok in ["C0ONCALL", "G12345"] {
            assert_eq!(SlackChannelId::parse(ok).unwrap().as_str(), ok);
        }
        for bad in ["", "C", "c0oncall", "U0PERSON", "C0 ONCALL", "#oncall"] {
            assert!(SlackChannelId::parse(bad).is_err(), "{bad}");
        }
        for ok in ["org/satellite-link", "ibm-argonauts/runbooks", "a/b.c_d-e"] {
            let r = GithubRepo::parse(ok).unwrap();
            assert_eq!(format!("{}/{}", r.owner(), r.name()), ok);
        }
        for bad in [
            "",
            "org",
            "org/",
            "/repo",
            "org/repo/issues",
            "org/..",
            "-org/x",
            "org/re po",
            "o?x/y",
        ] {
            assert!(GithubRepo::parse(bad).is_err(), "{bad}");
        }
    }
}
