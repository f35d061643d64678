//! The silence workflow: silencing the alert of one location in Alertmanager from its Slack
//! thread, unsilencing it, and expiring linkbot's silences when their incident resolves — the
//! decisions in order, over the store and the Alertmanager clients (one per environment with an
//! `alertmanager_url`).
//!
//! [`Silences::silence`] creates an API v2 silence with exactly two matchers (`alertname` = the
//! alert's name, `cluster_id` = the location, both `isEqual: true, isRegex: false`), `startsAt`
//! now, `endsAt` per the choice ("until resolved" is at most [`UNTIL_RESOLVED_MAX`]),
//! `createdBy` = "<Slack name> (<user id>)" and a comment carrying the thread's permalink; then,
//! and only once Alertmanager accepted it, records it in the store — when the store fails, the
//! silence is expired again in Alertmanager and the outcome says so (nothing half-recorded);
//! then writes the audit entry and shows it in the thread (through [`SilenceChannel`]).
//! [`Silences::unsilence`] expires one (`DELETE`), once across replicas (the store's
//! `expire_silence`); [`Silences::expire_for_incident`] expires every active one of a resolved
//! incident. Every attempt is audited (`silence` / `unsilence`, failures with their reason).
//!
//! This module must NOT import slack-morphism, render Slack text or import `config` (the
//! clients are handed in), and must NOT decide who may silence: the Slack layer authorizes the
//! click (on-call members only, only as the message offered it) before calling.

use crate::alertmanager::{AlertmanagerClient, AlertmanagerError, Matcher, NewSilence, SilenceId};
use crate::domain::Environment;
use crate::store::{AuditEntry, AuditKind, CheckKey, IncidentId, MessageRef, SilenceRecord, Store};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::sync::Arc;

/// How long "until resolved" silences at most: linkbot expires it at resolution, and a silence
/// never outlives a week should the resolution never come.
pub const UNTIL_RESOLVED_MAX: chrono::Duration = chrono::Duration::days(7);

/// Who expired a silence when its incident resolved (in the store and the audit log).
pub const EXPIRED_BY_LINKBOT: &str = "linkbot";

/// How long a silence lasts, as offered by the "Silence…" select.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SilenceFor {
    /// One hour.
    OneHour,
    /// Four hours.
    FourHours,
    /// A day.
    OneDay,
    /// Until the incident resolves (linkbot expires it then), at most 7 days.
    UntilResolved,
}

impl SilenceFor {
    /// Every choice, in the order offered.
    pub const ALL: [SilenceFor; 4] = [
        SilenceFor::OneHour,
        SilenceFor::FourHours,
        SilenceFor::OneDay,
        SilenceFor::UntilResolved,
    ];

    /// The short code carried by the select's option (`1h`, `4h`, `24h`, `resolved`).
    pub fn as_str(self) -> &'static str {
        match self {
            SilenceFor::OneHour => "1h",
            SilenceFor::FourHours => "4h",
            SilenceFor::OneDay => "24h",
            SilenceFor::UntilResolved => "resolved",
        }
    }

    /// The choice a code names.
    pub fn parse(s: &str) -> Option<SilenceFor> {
        SilenceFor::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// What people read in the select.
    pub fn label(self) -> &'static str {
        match self {
            SilenceFor::OneHour => "1 hour",
            SilenceFor::FourHours => "4 hours",
            SilenceFor::OneDay => "24 hours",
            SilenceFor::UntilResolved => "Until resolved (at most 7 days)",
        }
    }

    /// How long the silence is created for.
    pub fn duration(self) -> chrono::Duration {
        match self {
            SilenceFor::OneHour => chrono::Duration::hours(1),
            SilenceFor::FourHours => chrono::Duration::hours(4),
            SilenceFor::OneDay => chrono::Duration::hours(24),
            SilenceFor::UntilResolved => UNTIL_RESOLVED_MAX,
        }
    }

    /// Whether linkbot expires it when the incident resolves.
    pub fn until_resolved(self) -> bool {
        self == SilenceFor::UntilResolved
    }
}

/// One silence asked for (already authorized by the caller).
#[derive(Debug, Clone, Copy)]
pub struct Asked<'a> {
    /// Who (Slack user id).
    pub actor: &'a str,
    /// Their Slack name (for `createdBy`).
    pub actor_name: &'a str,
    /// The location and environment to silence.
    pub key: &'a CheckKey,
    /// The alert's name (the `alertname` matcher).
    pub alert_name: &'a str,
    /// For how long.
    pub choice: SilenceFor,
    /// The thread it was asked from (channel and thread `ts`).
    pub thread: &'a MessageRef,
}

/// The chat side of a silence: the thread's permalink, and the message showing a silence.
#[async_trait::async_trait]
pub trait SilenceChannel: Send + Sync {
    /// A link to the thread, if the chat gives one (it goes into the silence's comment).
    async fn thread_link(&self) -> Option<String>;

    /// Shows `silence` in its thread: a new message when it has none yet (returns its `ts`),
    /// else that message edited (returns its `ts` again). Unsilence is offered only on a
    /// message the store already knows (`silence.message` is set).
    async fn show(&self, silence: &SilenceRecord) -> anyhow::Result<String>;
}

/// What a silence request did.
#[derive(Debug)]
pub enum Silenced {
    /// The environment has no `alertmanager_url`: nothing was done.
    NotConfigured,
    /// Alertmanager took it; it is recorded and audited (and shown, unless Slack failed: logged).
    Created(Box<SilenceRecord>),
    /// Alertmanager refused it, failed, or could not be reached: no silence was created.
    Failed(AlertmanagerError),
    /// Alertmanager took it but the store could not record it, so it was expired again
    /// (`expired` says whether that worked).
    NotRecorded {
        /// Alertmanager's id of the silence.
        silence_id: SilenceId,
        /// Expiring it again.
        expired: Result<(), AlertmanagerError>,
    },
}

/// What an unsilence request did.
#[derive(Debug)]
pub enum Unsilenced {
    /// It was expired in Alertmanager and recorded (and its message shown again).
    Expired(SilenceRecord),
    /// It had already been expired (by someone, or at resolution): nothing was done.
    AlreadyExpired(SilenceRecord),
    /// The environment no longer has an `alertmanager_url`: nothing was done.
    NotConfigured(SilenceRecord),
    /// Alertmanager did not expire it: it is still in force.
    Failed(SilenceRecord, AlertmanagerError),
    /// Expired in Alertmanager, but the store could not record it (the message still offers
    /// Unsilence; a second click expires it again harmlessly).
    NotRecorded(SilenceRecord),
}

/// What resolving an incident did to its silences.
#[derive(Debug, Default)]
pub struct ResolvedSilences {
    /// Silences expired (as now recorded).
    pub expired: Vec<SilenceRecord>,
    /// Silences that could not be expired, each with the sentence saying why.
    pub failed: Vec<(String, String)>,
}

impl ResolvedSilences {
    /// Whether there was nothing to do.
    pub fn is_empty(&self) -> bool {
        self.expired.is_empty() && self.failed.is_empty()
    }
}

/// The silence workflow over the store and the Alertmanager clients. Cheap to clone.
#[derive(Clone)]
pub struct Silences {
    store: Arc<dyn Store>,
    clients: Arc<BTreeMap<Environment, AlertmanagerClient>>,
}

/// The comment of a silence linkbot creates: why, by whom, and the thread.
pub fn comment(asked: &Asked<'_>, thread_link: Option<&str>) -> String {
    let base = format!(
        "Silenced from Slack with linkbot by {} while the on-call works on {} ({}): {}.",
        asked.actor_name,
        asked.key.location,
        asked.key.environment,
        match asked.choice {
            SilenceFor::UntilResolved => "until the incident resolves".to_string(),
            other => format!("for {}", other.label()),
        }
    );
    match thread_link {
        Some(link) => format!("{base} Thread: {link}"),
        None => format!("{base} (Slack gave no link to the thread.)"),
    }
}

/// The link to a silence in Alertmanager's UI (`{url}#/silences/{id}`).
pub fn ui_link(base: &crate::domain::BaseUrl, id: &str) -> String {
    format!("{}#/silences/{id}", base.as_str())
}

/// `now`, cut to whole milliseconds (what the store keeps), so what Alertmanager is sent and
/// what is recorded are the same times.
fn now_ms() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now)
}

impl Silences {
    /// A workflow over `clients` (one per environment with an `alertmanager_url`).
    pub fn new(store: Arc<dyn Store>, clients: BTreeMap<Environment, AlertmanagerClient>) -> Self {
        Silences {
            store,
            clients: Arc::new(clients),
        }
    }

    /// Whether silences can be created for `environment` (it has an `alertmanager_url`).
    pub fn offered(&self, environment: Environment) -> bool {
        self.clients.contains_key(&environment)
    }

    /// The link to silence `id` of `environment` in Alertmanager's UI.
    pub fn link(&self, environment: Environment, id: &str) -> Option<String> {
        self.clients
            .get(&environment)
            .map(|c| ui_link(c.base_url(), id))
    }

    async fn audit(
        &self,
        kind: AuditKind,
        actor: &str,
        channel: &str,
        key: &CheckKey,
        what: AuditWhat,
    ) {
        let entry = AuditEntry {
            at: Utc::now(),
            kind,
            actor: Some(actor.to_string()),
            channel: Some(channel.to_string()),
            location: key.location.clone(),
            environment: key.environment,
            verdict: None,
            target: what.target,
            link: what.link,
            detail: what.detail.map(|d| crate::format::clip(&d, 1000)),
        };
        if let Err(e) = self.store.append_audit(&entry).await {
            tracing::error!(error = %e, kind = kind.as_str(), "could not write a silence to the audit log");
        }
    }

    async fn timeline(&self, incident: Option<IncidentId>, kind: &str, actor: &str, detail: &str) {
        if let Some(id) = incident {
            if let Err(e) = self
                .store
                .add_incident_event(id, kind, Some(actor), Some(detail))
                .await
            {
                tracing::warn!(error = %e, kind, "cannot record a silence on the incident");
            }
        }
    }

    /// Creates the silence asked for, records it, audits it and shows it: see the module docs.
    pub async fn silence(&self, asked: &Asked<'_>, chat: &dyn SilenceChannel) -> Silenced {
        let Some(client) = self.clients.get(&asked.key.environment) else {
            return Silenced::NotConfigured;
        };
        let incident = match self.store.open_incident(asked.key).await {
            Ok(found) => found.map(|i| i.id),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the open incident of a silence");
                None
            }
        };
        let thread_link = chat.thread_link().await;
        let starts_at = now_ms();
        let ends_at = starts_at + asked.choice.duration();
        let new = NewSilence {
            matchers: vec![
                Matcher::equal("alertname", asked.alert_name),
                Matcher::equal("cluster_id", asked.key.location.as_str()),
            ],
            starts_at,
            ends_at,
            created_by: format!("{} ({})", asked.actor_name, asked.actor),
            comment: comment(asked, thread_link.as_deref()),
        };
        let channel = asked.thread.channel.as_str();
        let id = match client.create(&new).await {
            Ok(id) => id,
            Err(e) => {
                tracing::warn!(error = %e, kind = %e.kind(), "Alertmanager did not create the silence");
                let what = AuditWhat {
                    target: Some(asked.choice.as_str().into()),
                    link: None,
                    detail: Some(format!("failed: {}", e.user_message())),
                };
                self.audit(AuditKind::Silence, asked.actor, channel, asked.key, what)
                    .await;
                return Silenced::Failed(e);
            }
        };
        let mut record = SilenceRecord {
            silence_id: id.to_string(),
            key: asked.key.clone(),
            incident_id: incident,
            created_by: asked.actor.to_string(),
            created_by_name: asked.actor_name.to_string(),
            starts_at,
            ends_at,
            until_resolved: asked.choice.until_resolved(),
            thread: asked.thread.clone(),
            message: None,
            active: true,
            expired_by: None,
            expired_at: None,
        };
        if let Err(e) = self.store.record_silence(&record).await {
            tracing::error!(
                error = format!("{:#}", anyhow::Error::new(e)),
                silence = %id,
                "Alertmanager took a silence the store cannot record: expiring it again"
            );
            let expired = client.expire(&id).await;
            if let Err(e) = &expired {
                tracing::error!(error = %e, silence = %id, "could not expire the unrecorded silence");
            }
            let what = AuditWhat {
                target: Some(asked.choice.as_str().into()),
                link: Some(ui_link(client.base_url(), id.as_str())),
                detail: Some(match &expired {
                    Ok(()) => "not recorded (store failed): expired again".into(),
                    Err(e) => format!(
                        "not recorded (store failed), and expiring it again failed: {}",
                        e.user_message()
                    ),
                }),
            };
            self.audit(AuditKind::Silence, asked.actor, channel, asked.key, what)
                .await;
            return Silenced::NotRecorded {
                silence_id: id,
                expired,
            };
        }
        let until = format!(
            "{} until {} UTC",
            asked.choice.as_str(),
            ends_at.format("%Y-%m-%d %H:%M")
        );
        let what = AuditWhat {
            target: Some(asked.choice.as_str().into()),
            link: Some(ui_link(client.base_url(), id.as_str())),
            detail: Some(format!("until {} UTC", ends_at.format("%Y-%m-%d %H:%M"))),
        };
        self.audit(AuditKind::Silence, asked.actor, channel, asked.key, what)
            .await;
        self.timeline(incident, "silence", asked.actor, &format!("{id} {until}"))
            .await;
        // Shown first without Unsilence; once the store knows the message (so a click on it can
        // be authorized), shown again with it.
        match chat.show(&record).await {
            Ok(ts) => match self.store.set_silence_message(id.as_str(), &ts).await {
                Ok(_) => {
                    record.message = Some(MessageRef {
                        channel: record.thread.channel.clone(),
                        ts,
                    });
                    if let Err(e) = chat.show(&record).await {
                        tracing::error!(error = format!("{e:#}"), silence = %id, "could not offer Unsilence on a silence's message");
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, silence = %id, "cannot record the message showing a silence: it offers no Unsilence")
                }
            },
            Err(e) => {
                tracing::error!(error = format!("{e:#}"), silence = %id, "could not show a silence in its thread")
            }
        }
        Silenced::Created(Box::new(record))
    }

    /// Expires `silence` (the one the clicked message shows) for `actor`: see the module docs.
    pub async fn unsilence(
        &self,
        silence: &SilenceRecord,
        actor: &str,
        chat: &dyn SilenceChannel,
    ) -> Unsilenced {
        if !silence.active {
            return Unsilenced::AlreadyExpired(silence.clone());
        }
        let Some(client) = self.clients.get(&silence.key.environment) else {
            return Unsilenced::NotConfigured(silence.clone());
        };
        let channel = silence.thread.channel.as_str();
        let link = Some(ui_link(client.base_url(), &silence.silence_id));
        if let Err(e) = self
            .expire_in_alertmanager(client, &silence.silence_id)
            .await
        {
            let what = AuditWhat {
                target: None,
                link,
                detail: Some(format!("failed: {}", e.user_message())),
            };
            self.audit(AuditKind::Unsilence, actor, channel, &silence.key, what)
                .await;
            return Unsilenced::Failed(silence.clone(), e);
        }
        match self.store.expire_silence(&silence.silence_id, actor).await {
            Ok(Some(expired)) => {
                let what = AuditWhat {
                    target: None,
                    link,
                    detail: Some("expired".into()),
                };
                self.audit(AuditKind::Unsilence, actor, channel, &silence.key, what)
                    .await;
                self.timeline(expired.incident_id, "unsilence", actor, &expired.silence_id)
                    .await;
                if let Err(e) = chat.show(&expired).await {
                    tracing::warn!(
                        error = format!("{e:#}"),
                        "could not show an expired silence"
                    );
                }
                Unsilenced::Expired(expired)
            }
            Ok(None) => {
                // Another click or the resolution got there first.
                match self.store.silence(&silence.silence_id).await {
                    Ok(Some(now)) => Unsilenced::AlreadyExpired(now),
                    _ => Unsilenced::AlreadyExpired(silence.clone()),
                }
            }
            Err(e) => {
                tracing::error!(
                    error = format!("{:#}", anyhow::Error::new(e)),
                    "expired a silence the store cannot mark expired"
                );
                let what = AuditWhat {
                    target: None,
                    link,
                    detail: Some("expired, not recorded (store failed)".into()),
                };
                self.audit(AuditKind::Unsilence, actor, channel, &silence.key, what)
                    .await;
                Unsilenced::NotRecorded(silence.clone())
            }
        }
    }

    /// Expires silence `id` in Alertmanager; one it no longer knows (404) counts as expired.
    async fn expire_in_alertmanager(
        &self,
        client: &AlertmanagerClient,
        id: &str,
    ) -> Result<(), AlertmanagerError> {
        let Some(parsed) = SilenceId::parse(id) else {
            return Err(AlertmanagerError::NotFound { id: id.to_string() });
        };
        match client.expire(&parsed).await {
            Ok(()) | Err(AlertmanagerError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The incident `id` of `key` resolved: expires each of its active silences (and the "until
    /// resolved" ones of `key` made while no incident was open, e.g. from a mention) in
    /// Alertmanager and in the store (by [`EXPIRED_BY_LINKBOT`]), auditing each. Failures are
    /// returned, never dropped: the resolve reply says them.
    pub async fn expire_for_incident(&self, id: IncidentId, key: &CheckKey) -> ResolvedSilences {
        let mut done = ResolvedSilences::default();
        let active = match self.store.active_silences(id, key).await {
            Ok(active) => active,
            Err(e) => {
                tracing::error!(error = %e, incident = %id, "cannot read the incident's silences");
                done.failed.push((
                    "?".into(),
                    "linkbot's store did not say which silences to expire; expire them in Alertmanager's UI.".into(),
                ));
                return done;
            }
        };
        for silence in active {
            let channel = silence.thread.channel.clone();
            let Some(client) = self.clients.get(&silence.key.environment) else {
                done.failed.push((
                    silence.silence_id.clone(),
                    format!(
                        "the {} environment no longer has an alertmanager_url.",
                        silence.key.environment
                    ),
                ));
                continue;
            };
            let link = Some(ui_link(client.base_url(), &silence.silence_id));
            if let Err(e) = self
                .expire_in_alertmanager(client, &silence.silence_id)
                .await
            {
                let what = AuditWhat {
                    target: None,
                    link,
                    detail: Some(format!("at resolution, failed: {}", e.user_message())),
                };
                self.audit(
                    AuditKind::Unsilence,
                    EXPIRED_BY_LINKBOT,
                    &channel,
                    &silence.key,
                    what,
                )
                .await;
                done.failed
                    .push((silence.silence_id.clone(), e.user_message()));
                continue;
            }
            match self
                .store
                .expire_silence(&silence.silence_id, EXPIRED_BY_LINKBOT)
                .await
            {
                Ok(Some(expired)) => {
                    let what = AuditWhat {
                        target: None,
                        link,
                        detail: Some("expired at resolution".into()),
                    };
                    self.timeline(
                        expired.incident_id,
                        "unsilence",
                        EXPIRED_BY_LINKBOT,
                        &expired.silence_id,
                    )
                    .await;
                    self.audit(
                        AuditKind::Unsilence,
                        EXPIRED_BY_LINKBOT,
                        &channel,
                        &silence.key,
                        what,
                    )
                    .await;
                    done.expired.push(expired);
                }
                // Someone's Unsilence got there first: it is expired either way.
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(error = %e, "expired a silence the store cannot mark expired");
                    let mut shown = silence.clone();
                    shown.active = false;
                    done.expired.push(shown);
                }
            }
        }
        done
    }
}

/// What an audit entry of a silence names.
struct AuditWhat {
    target: Option<String>,
    link: Option<String>,
    detail: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::LocationId;

    #[test]
    fn choices_round_trip_and_last_as_offered() {
        for c in SilenceFor::ALL {
            assert_eq!(SilenceFor::parse(c.as_str()), Some(c));
            assert!(c.label().chars().count() <= 75);
        }
        assert_eq!(SilenceFor::parse("2h"), None);
        assert_eq!(SilenceFor::parse("RESOLVED"), None);
        let hours: Vec<i64> = SilenceFor::ALL
            .iter()
            .map(|c| c.duration().num_hours())
            .collect();
        assert_eq!(hours, [1, 4, 24, 168]);
        assert!(SilenceFor::UntilResolved.until_resolved());
        assert!(!SilenceFor::OneDay.until_resolved());
    }

    #[test]
    fn the_comment_names_who_where_how_long_and_links_the_thread() {
        let key = CheckKey {
            location: LocationId::parse("c1hk4ek107l5au5mq8hg").unwrap(),
            environment: Environment::Prod,
        };
        let thread = MessageRef {
            channel: "C0ONCALL".into(),
            ts: "1.2".into(),
        };
        let asked = Asked {
            actor: "U0ALICE",
            actor_name: "alice",
            key: &key,
            alert_name: "A",
            choice: SilenceFor::FourHours,
            thread: &thread,
        };
        assert_eq!(
            comment(&asked, Some("https://x.slack.com/archives/C0ONCALL/p12")),
            "Silenced from Slack with linkbot by alice while the on-call works on c1hk4ek107l5au5mq8hg (prod): for 4 hours. Thread: https://x.slack.com/archives/C0ONCALL/p12"
        );
        let asked = Asked {
            choice: SilenceFor::UntilResolved,
            ..asked
        };
        assert!(comment(&asked, None).contains("until the incident resolves"));
        assert!(comment(&asked, None).ends_with("(Slack gave no link to the thread.)"));
    }

    #[test]
    fn the_ui_link_points_at_the_silence() {
        let base = crate::domain::BaseUrl::parse("https://am.example/am").unwrap();
        assert_eq!(
            ui_link(&base, "0b5e5b23-6f7b-4d0e-9d8a-5a1f0c3e2b11"),
            "https://am.example/am/#/silences/0b5e5b23-6f7b-4d0e-9d8a-5a1f0c3e2b11"
        );
    }
}
