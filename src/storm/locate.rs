//! Where the locations that join a storm after it was declared are: one directory lookup each
//! ([`Survey::locate`], no build), made by one small worker per storm on this replica, at most
//! [`LOCATE_AT_ONCE`] at a time, so a storm of thousands of locations never floods the
//! directory. Each place found is recorded on the storm and its message refreshed, so the
//! datacenter and region counts cover every location, not only those known at declaration.
//!
//! This module must NOT sit on an alert's answer path: a joining alert only queues its location
//! (a message on a channel) and gets its pointer reply at once; the lookup comes later.

use super::{lock, StormChannel, Storms, Survey, LOCATE_AT_ONCE};
use crate::domain::CheckKey;
use crate::store::StormId;
use futures_util::StreamExt;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// The lookup queues of this replica's storms: one worker per storm drains its queue.
#[derive(Default)]
pub(super) struct Locators {
    queues: Mutex<HashMap<StormId, mpsc::UnboundedSender<CheckKey>>>,
}

impl Locators {
    /// Queues `key` on storm `id`'s worker; the receiver when no worker runs for it yet (the
    /// caller starts one with it).
    fn queue(&self, id: StormId, key: CheckKey) -> Option<mpsc::UnboundedReceiver<CheckKey>> {
        let mut queues = lock(&self.queues);
        let key = match queues.get(&id) {
            Some(tx) => match tx.send(key) {
                Ok(()) => return None,
                // Its worker ended: a new one looks it up.
                Err(mpsc::error::SendError(k)) => k,
            },
            None => key,
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let _ = tx.send(key);
        queues.insert(id, tx);
        Some(rx)
    }

    /// Storm `id` ended here: its worker looks up what is queued, then ends.
    pub(super) fn forget(&self, id: StormId) {
        lock(&self.queues).remove(&id);
    }
}

impl Storms {
    /// Looks up where `key` (which just joined storm `id`) is, later: queued on the storm's
    /// worker, never awaited by the alert's answer.
    pub(super) fn locate_joined(&self, id: StormId, key: &CheckKey, chat: Arc<dyn StormChannel>) {
        let Some(queue) = self.local.locators.queue(id, key.clone()) else {
            return;
        };
        let this = self.clone();
        self.spawn(async move { this.locate_queued(id, queue, chat).await });
    }

    /// Storm `id`'s worker: at most [`LOCATE_AT_ONCE`] lookups at a time, each place recorded
    /// and the message refreshed (coalesced), until the storm ends here and the queue is empty.
    async fn locate_queued(
        &self,
        id: StormId,
        queue: mpsc::UnboundedReceiver<CheckKey>,
        chat: Arc<dyn StormChannel>,
    ) {
        let keys =
            futures_util::stream::unfold(
                queue,
                |mut q| async move { q.recv().await.map(|k| (k, q)) },
            );
        let survey: &dyn Survey = self.survey.as_ref();
        keys.map(|key| async move {
            let at = survey.locate(&key).await;
            (key, at)
        })
        .buffer_unordered(LOCATE_AT_ONCE)
        .for_each(|(key, at)| {
            let chat = chat.clone();
            async move {
                if at.datacenter.is_none() && at.region.is_none() {
                    // Not found (logged by the lookup): it stays counted as not located.
                    return;
                }
                match self
                    .store
                    .set_storm_whereabouts(id, &key.location, &at)
                    .await
                {
                    Ok(()) => self.refresh(id, chat),
                    Err(e) => {
                        tracing::warn!(error = %e, location = %key.location, "cannot record where a storm location is")
                    }
                }
            }
        })
        .await;
    }
}
