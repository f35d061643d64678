//! Who may escalate, page and re-run: the members of the on-call user group, when one is
//! configured, fetched from Slack and trusted for [`ONCALL_CACHE`].
//!
//! This module must NOT decide anything else about a click (whether its message offered it is
//! `button.rs`'s job); without a configured group everyone in a watched channel may act.

use super::web::SlackWeb;
use anyhow::Result;
use std::collections::HashSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long the on-call group's member list is trusted before it is fetched again.
const ONCALL_CACHE: Duration = Duration::from_secs(300);

/// The on-call group's members and when they were fetched.
type OncallMembers = (Instant, HashSet<String>);

/// The on-call check and its cache.
pub struct Oncall {
    web: SlackWeb,
    group: Option<String>,
    members: Mutex<Option<OncallMembers>>,
}

impl Oncall {
    /// The check for the user group `group` (everyone may act when `None`).
    pub fn new(web: SlackWeb, group: Option<String>) -> Self {
        Oncall {
            web,
            group,
            members: Mutex::new(None),
        }
    }

    /// Whether `user` may escalate and re-run.
    pub async fn may_act(&self, user: &str) -> Result<bool> {
        let Some(group) = &self.group else {
            return Ok(true);
        };
        {
            let cached = self.members.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((at, members)) = cached.as_ref() {
                if at.elapsed() < ONCALL_CACHE {
                    return Ok(members.contains(user));
                }
            }
        }
        let members: HashSet<String> = self
            .web
            .usergroup_members(group)
            .await?
            .into_iter()
            .collect();
        let ok = members.contains(user);
        *self.members.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), members));
        Ok(ok)
    }
}
