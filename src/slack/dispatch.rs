//! Envelope dispatch: which acked envelopes are handled now, and which wait their turn.
//!
//! Every envelope is acked by the transport as it arrives; handling it (posting a reply, asking
//! the store, starting a check) takes Slack calls that Slack paces (`chat.postMessage` about one
//! a second per channel). One task per envelope with no bound would, in a burst of 1,000
//! mentions or an alert storm without storm mode, hold 1,000 handler futures, each with the
//! state of a Slack call waiting its turn. Here envelopes are grouped into *lanes* — a channel
//! and a kind (alert message, mention, slash command, interaction) — and at most
//! [`PER_LANE`] handlers run per lane; the rest wait, in order, as the parsed envelope only.
//! Lanes are independent: a storm of alerts in one channel does not delay a mention there, a
//! click on the storm's Stop button, or anything in another channel.
//!
//! Shutdown: the caller drains with [`Dispatcher::join_next`] within its bound; envelopes still
//! waiting then are counted by [`Dispatcher::waiting`] (acked, so Slack will not redeliver them:
//! the caller logs them as an error, never silently).
//!
//! It must not decide what an envelope means (that is [`Handler`]'s) or call Slack itself.

use crate::slack::handler::Handler;
use crate::slack::transport::Inbound;
use futures_util::FutureExt;
use slack_morphism::events::{SlackEventCallbackBody, SlackInteractionEvent};
use std::collections::{HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use tokio::task::JoinSet;
use tracing::Instrument;

/// How many envelopes of one lane are handled at once.
pub const PER_LANE: usize = 16;

/// What kind of envelope a lane carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LaneKind {
    /// A channel message (alerts).
    Message,
    /// An `@linkbot` mention.
    Mention,
    /// Any other event.
    OtherEvent,
    /// A slash command.
    Command,
    /// A button, a select or a form's submission.
    Interaction,
}

/// A channel (empty when the envelope names none) and a kind.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Lane {
    channel: String,
    kind: LaneKind,
}

impl Lane {
    /// The lane of `inbound`.
    pub fn of(inbound: &Inbound) -> Lane {
        let (channel, kind) = match inbound {
            Inbound::Event { event, .. } => match &event.event {
                SlackEventCallbackBody::AppMention(m) => (m.channel.to_string(), LaneKind::Mention),
                SlackEventCallbackBody::Message(m) => (
                    m.origin
                        .channel
                        .as_ref()
                        .map(|c| c.to_string())
                        .unwrap_or_default(),
                    LaneKind::Message,
                ),
                _ => (String::new(), LaneKind::OtherEvent),
            },
            Inbound::Command { command, .. } => (command.channel_id.to_string(), LaneKind::Command),
            Inbound::Interaction { interaction, .. } => {
                let channel = match &**interaction {
                    SlackInteractionEvent::BlockActions(b) => b
                        .channel
                        .as_ref()
                        .map(|c| c.id.to_string())
                        .unwrap_or_default(),
                    _ => String::new(),
                };
                (channel, LaneKind::Interaction)
            }
        };
        Lane { channel, kind }
    }
}

/// Runs handlers for envelopes, at most [`PER_LANE`] per lane, the rest waiting in order.
pub struct Dispatcher {
    handler: Handler,
    tasks: JoinSet<Lane>,
    running: HashMap<Lane, usize>,
    queued: HashMap<Lane, VecDeque<Inbound>>,
}

impl Dispatcher {
    /// A dispatcher handing envelopes to `handler`, [`PER_LANE`] at a time per lane.
    pub fn new(handler: Handler) -> Dispatcher {
        Dispatcher {
            handler,
            tasks: JoinSet::new(),
            running: HashMap::new(),
            queued: HashMap::new(),
        }
    }

    /// Handles `inbound` now, or after the envelopes of its lane before it.
    pub fn offer(&mut self, inbound: Inbound) {
        let lane = Lane::of(&inbound);
        let running = self.running.entry(lane.clone()).or_insert(0);
        if *running < PER_LANE {
            *running += 1;
            self.start(lane, inbound);
        } else {
            self.queued.entry(lane).or_default().push_back(inbound);
        }
    }

    fn start(&mut self, lane: Lane, inbound: Inbound) {
        let handler = self.handler.clone();
        let span = inbound.span();
        self.tasks.spawn(
            async move {
                // A handler that panics (a bug) still frees its lane's turn.
                if AssertUnwindSafe(handler.handle(inbound))
                    .catch_unwind()
                    .await
                    .is_err()
                {
                    tracing::error!("handling a Slack envelope panicked (a bug in linkbot)");
                }
                lane
            }
            .instrument(span),
        );
    }

    /// Waits for one handler to end and starts the next envelope of its lane. `None` when no
    /// handler runs.
    pub async fn join_next(&mut self) -> Option<()> {
        let lane = match self.tasks.join_next().await? {
            Ok(lane) => lane,
            // Aborted (shutdown): nothing is started after it.
            Err(_) => return Some(()),
        };
        match self.queued.get_mut(&lane).and_then(VecDeque::pop_front) {
            Some(next) => {
                if self.queued.get(&lane).is_some_and(VecDeque::is_empty) {
                    self.queued.remove(&lane);
                }
                self.start(lane, next);
            }
            None => {
                if let Some(n) = self.running.get_mut(&lane) {
                    *n -= 1;
                    if *n == 0 {
                        self.running.remove(&lane);
                    }
                }
            }
        }
        Some(())
    }

    /// Whether no handler runs (then none waits either).
    pub fn is_idle(&self) -> bool {
        self.tasks.is_empty()
    }

    /// How many envelopes wait for their lane.
    pub fn waiting(&self) -> usize {
        self.queued.values().map(VecDeque::len).sum()
    }
}
