//! Recognises the IAM-token alert in a channel message, in both forms it arrives in.
//!
//! The seed's text form (`Labels:\n - alertname = …\n - cluster_id = …`) and Alertmanager's
//! Slack attachments (`title` `[FIRING:n] …`, `text`, `fields`) are read into label pairs; a
//! message naming the alert (as `alertname` or `alert_situation`) with a `cluster_id` is a
//! firing alert, or a resolved one when it says `[RESOLVED]` (or `status = resolved`). Both name
//! their locations, so a grouped notification fires or resolves several at once. The firing time
//! is read from a `startsAt` label when the template carries one (the earliest, for a group).
//! Pure: no I/O, and it does not decide who may post alerts (the bot filters on the sender
//! first) nor what a resolution does (that is the incident workflow's).

use crate::domain::{strip_slack_formatting, Environment, LocationId};
use chrono::{DateTime, Utc};

/// The alert this bot answers.
pub const ALERT_NAME: &str = "SatelliteLinkConnectorDeployCannotgetIAMTokenFromIAMServer";

/// One Slack attachment's text parts (Alertmanager's `attachment` struct, the parts we read).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttachmentText {
    /// `title`.
    pub title: Option<String>,
    /// `pretext`.
    pub pretext: Option<String>,
    /// `text`.
    pub text: Option<String>,
    /// `fallback`.
    pub fallback: Option<String>,
    /// `fields[]` as (title, value).
    pub fields: Vec<(String, String)>,
}

/// What a message is, as far as the alert goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Alert {
    /// The alert is firing for these locations (a grouped notification may name several).
    Firing {
        /// The locations, de-duplicated, in order of appearance.
        locations: Vec<LocationId>,
        /// The environment, when a label names it.
        environment: Option<Environment>,
        /// When the alert started firing (`startsAt`), when the message says; otherwise the
        /// message's own time stands for it.
        starts_at: Option<DateTime<Utc>>,
    },
    /// The alert resolved for these locations (possibly none readable): no new check.
    Resolved {
        /// The locations, de-duplicated, in order of appearance; invalid ones are left out.
        locations: Vec<LocationId>,
        /// The environment, when a label names it.
        environment: Option<Environment>,
    },
    /// The alert is named but no valid `cluster_id` was found (the text says why).
    NoLocation(String),
    /// Some other message.
    NotOurs,
}

/// The largest message read; the rest of a huge message is ignored.
const MAX_SCAN_BYTES: usize = 64 * 1024;

fn cut(s: &str) -> &str {
    if s.len() <= MAX_SCAN_BYTES {
        return s;
    }
    let mut end = MAX_SCAN_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Every `key = value` / `key: value` pair found in `text` (keys lower-cased).
fn labels(text: &str, out: &mut Vec<(String, String)>) {
    for line in cut(text).lines() {
        for segment in line.split([',', '{', '}', '(', ')']) {
            let seg = segment
                .trim()
                .trim_start_matches(['-', '•', '*', '>', ' ', '\t'])
                .trim();
            let Some(idx) = seg.find(['=', ':']) else {
                continue;
            };
            let key = strip_slack_formatting(&seg[..idx]);
            if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                continue;
            }
            let value =
                strip_slack_formatting(seg[idx + 1..].trim().trim_start_matches(['=', ':']));
            if !value.is_empty() {
                out.push((key.to_ascii_lowercase(), value));
            }
        }
    }
}

/// Classifies a message from an alert source.
pub fn classify(text: &str, attachments: &[AttachmentText]) -> Alert {
    let mut blobs: Vec<&str> = vec![text];
    let mut pairs = Vec::new();
    for a in attachments {
        blobs.extend(
            [&a.title, &a.pretext, &a.text, &a.fallback]
                .into_iter()
                .flatten()
                .map(String::as_str),
        );
        for (k, v) in &a.fields {
            pairs.push((
                strip_slack_formatting(k).to_ascii_lowercase(),
                strip_slack_formatting(v),
            ));
        }
    }
    for b in &blobs {
        labels(b, &mut pairs);
    }
    let named = pairs.iter().any(|(k, v)| {
        (k == "alertname" || k == "alert_situation") && v.eq_ignore_ascii_case(ALERT_NAME)
    }) || attachments
        .iter()
        .filter_map(|a| a.title.as_deref())
        .any(|t| cut(t).contains(ALERT_NAME));
    if !named {
        return Alert::NotOurs;
    }
    let resolved = blobs.iter().any(|b| {
        let b = cut(b);
        b.contains("[RESOLVED") || b.contains("[Resolved") || b.contains("[resolved")
    }) || pairs
        .iter()
        .any(|(k, v)| k == "status" && v.eq_ignore_ascii_case("resolved"));
    let mut locations: Vec<LocationId> = Vec::new();
    let mut bad = None;
    for (k, v) in &pairs {
        if k == "cluster_id" || k == "clusterid" || k == "location_id" {
            match LocationId::parse(v) {
                Ok(l) if !locations.contains(&l) => locations.push(l),
                Ok(_) => {}
                Err(e) => bad = Some(super::mrkdwn::domain_error(&e)),
            }
        }
    }
    let environment = pairs
        .iter()
        .filter(|(k, _)| k == "environment" || k == "env")
        .find_map(|(_, v)| Environment::parse(v).ok());
    if resolved {
        return Alert::Resolved {
            locations,
            environment,
        };
    }
    if locations.is_empty() {
        return Alert::NoLocation(
            bad.unwrap_or_else(|| "the alert carries no `cluster_id` label".into()),
        );
    }
    let starts_at = pairs
        .iter()
        .filter(|(k, _)| k == "startsat" || k == "starts_at")
        .filter_map(|(_, v)| DateTime::parse_from_rfc3339(v.trim_matches(['"', '`'])).ok())
        .map(|t| t.with_timezone(&Utc))
        .min();
    Alert::Firing {
        locations,
        environment,
        starts_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LOC: &str = "c1hk4ek107l5au5mq8hg";

    fn firing(locs: &[&str]) -> Alert {
        Alert::Firing {
            locations: locs.iter().map(|l| LocationId::parse(l).unwrap()).collect(),
            environment: None,
            starts_at: None,
        }
    }

    fn resolved(locs: &[&str]) -> Alert {
        Alert::Resolved {
            locations: locs.iter().map(|l| LocationId::parse(l).unwrap()).collect(),
            environment: None,
        }
    }

    #[test]
    fn the_seed_text_form_is_recognised() {
        let text = format!(
            "Labels:\n - alertname = {ALERT_NAME}\n - alert_situation = {ALERT_NAME}\n - service = satellite-link\n - severity = critical\n - cluster_id = {LOC}\n - namespace = satellite-link\nAnnotations:\n - summary = \"Link connector is rebooting : no IAM Token can be retrieved from IAM Server\"\n"
        );
        assert_eq!(classify(&text, &[]), firing(&[LOC]));
    }

    #[test]
    fn alertmanager_attachments_are_recognised() {
        let a = AttachmentText {
            title: Some(format!("[FIRING:1] {ALERT_NAME} (critical satellite-link)")),
            text: Some(format!("*Alert:* Link connector is rebooting\n*Details:*\n  • *alertname:* `{ALERT_NAME}`\n  • *cluster_id:* `{LOC}`\n  • *severity:* `critical`")),
            ..Default::default()
        };
        assert_eq!(classify("", &[a]), firing(&[LOC]));

        let fields = AttachmentText {
            title: Some(format!("[FIRING:2] {ALERT_NAME}")),
            fields: vec![
                ("cluster_id".into(), LOC.into()),
                ("cluster_id".into(), "c2hk4ek107l5au5mq8hg".into()),
                ("environment".into(), "stage".into()),
            ],
            ..Default::default()
        };
        assert_eq!(
            classify("", &[fields]),
            Alert::Firing {
                locations: vec![
                    LocationId::parse(LOC).unwrap(),
                    LocationId::parse("c2hk4ek107l5au5mq8hg").unwrap()
                ],
                environment: Some(Environment::Stage),
                starts_at: None,
            }
        );

        let labelset = AttachmentText {
            fallback: Some(format!(
                "{{alertname=\"{ALERT_NAME}\", cluster_id=\"{LOC}\"}}"
            )),
            ..Default::default()
        };
        assert_eq!(classify("", &[labelset]), firing(&[LOC]));
    }

    #[test]
    fn resolved_other_and_broken_alerts_start_nothing() {
        let resolved = AttachmentText {
            title: Some(format!("[RESOLVED] {ALERT_NAME}")),
            text: Some(format!("cluster_id = {LOC}")),
            ..Default::default()
        };
        assert_eq!(classify("", &[resolved]), self::resolved(&[LOC]));
        assert_eq!(
            classify(
                &format!("[RESOLVED]\nalertname = {ALERT_NAME}\ncluster_id = {LOC}"),
                &[]
            ),
            self::resolved(&[LOC])
        );
        assert_eq!(
            classify(&format!("alertname = OtherAlert\ncluster_id = {LOC}"), &[]),
            Alert::NotOurs
        );
        assert_eq!(classify("hello team", &[]), Alert::NotOurs);
        assert!(matches!(
            classify(&format!("alertname = {ALERT_NAME}"), &[]),
            Alert::NoLocation(_)
        ));
        assert!(matches!(
            classify(&format!("alertname = {ALERT_NAME}\ncluster_id = xxxxxxxxxxx"), &[]),
            Alert::NoLocation(m) if m.contains("20 characters")
        ));
    }

    #[test]
    fn a_grouped_resolve_names_every_location_and_a_bad_one_is_left_out() {
        let grouped = AttachmentText {
            title: Some(format!("[RESOLVED] {ALERT_NAME} (critical)")),
            fields: vec![
                ("cluster_id".into(), LOC.into()),
                ("cluster_id".into(), "c2hk4ek107l5au5mq8hg".into()),
                ("cluster_id".into(), "not a location".into()),
                ("cluster_id".into(), LOC.into()),
                ("environment".into(), "stage".into()),
            ],
            ..Default::default()
        };
        assert_eq!(
            classify("", &[grouped]),
            Alert::Resolved {
                locations: vec![
                    LocationId::parse(LOC).unwrap(),
                    LocationId::parse("c2hk4ek107l5au5mq8hg").unwrap()
                ],
                environment: Some(Environment::Stage),
            }
        );
        // `status = resolved` (a JSON-ish template) counts too; no location is an empty resolve.
        assert_eq!(
            classify(&format!("alertname = {ALERT_NAME}\nstatus = resolved"), &[]),
            resolved(&[])
        );
    }

    #[test]
    fn starts_at_is_read_when_the_template_carries_it_and_the_earliest_wins() {
        let text = format!(
            "alertname = {ALERT_NAME}\ncluster_id = {LOC}\nstartsAt = 2026-11-30T03:12:00Z\nstartsAt: 2026-11-30T03:10:30+00:00"
        );
        let Alert::Firing { starts_at, .. } = classify(&text, &[]) else {
            panic!("not firing");
        };
        assert_eq!(
            starts_at.map(|t| t.to_rfc3339()).as_deref(),
            Some("2026-11-30T03:10:30+00:00")
        );
        // Garbage in startsAt is ignored: the message time stands for it.
        let text = format!("alertname = {ALERT_NAME}\ncluster_id = {LOC}\nstartsAt = yesterday");
        assert_eq!(classify(&text, &[]), firing(&[LOC]));
    }

    proptest! {
        #[test]
        fn any_message_classifies_without_panicking(s in "\\PC{0,400}", t in "\\PC{0,100}") {
            let a = AttachmentText { title: Some(t.clone()), text: Some(s.clone()), fields: vec![(t, s.clone())], ..Default::default() };
            let _ = classify(&s, &[a]);
        }
    }
}
