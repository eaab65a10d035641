//! The visitors' sockets on this instance, by customer: every message filed
//! in a visitor's conversation, and every change of its state, reaches
//! their open tabs. Nothing is kept here that the database does not have: a
//! tab that reconnects asks for what came after the last message it saw.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

use super::client_ip::TrustedProxies;
use super::limits::RateLimiter;
use super::view::{self, Names};
use crate::bus::{Bus, Event};
use crate::config::WidgetSettings;
use crate::ids::CustomerId;
use crate::store::Store;
use crate::workers::Workers;

/// Frames queued for one tab before it counts as stuck and is closed.
pub const SOCKET_QUEUE: usize = 256;

/// A tab's queue of frames (JSON text).
pub type Frames = mpsc::Sender<Arc<str>>;

#[derive(Default)]
struct Core {
    next: u64,
    /// Each connected customer's tabs: (tab id, site, queue).
    tabs: HashMap<CustomerId, Vec<(u64, String, Frames)>>,
    /// Connected customers whose conversation waits in a queue, with the
    /// position they were last told: they hear when it changes.
    queued: HashMap<CustomerId, Option<u64>>,
    /// Someone joined or left a queue since the positions were last sent.
    queue_moved: bool,
}

/// What keeps visitors honest: whose `X-Forwarded-For` is believed, and
/// the rate limits.
#[derive(Clone)]
pub struct Guards {
    pub proxies: TrustedProxies,
    /// Messages per visitor.
    pub messages: RateLimiter,
    /// Sessions started per IP address.
    pub sessions: RateLimiter,
}

impl Guards {
    /// From `[widget]` (checked when the configuration was read).
    pub fn new(s: &WidgetSettings) -> Self {
        Self {
            proxies: TrustedProxies::new(&s.trusted_proxies).unwrap_or_default(),
            messages: RateLimiter::new(
                s.visitor_messages_per_minute,
                s.visitor_messages_per_minute,
                100_000,
            ),
            sessions: RateLimiter::new(s.ip_sessions_per_minute, s.ip_sessions_per_minute, 100_000),
        }
    }
}

/// The widget's realtime hub, cheap to clone.
#[derive(Clone)]
pub struct WidgetHub {
    core: Arc<Mutex<Core>>,
    store: Store,
    names: Names,
    guards: Guards,
}

impl WidgetHub {
    pub fn new(store: Store, settings: &WidgetSettings) -> Self {
        Self {
            core: Arc::default(),
            names: Names::new(store.clone()),
            store,
            guards: Guards::new(settings),
        }
    }

    pub fn guards(&self) -> &Guards {
        &self.guards
    }

    fn core(&self) -> MutexGuard<'_, Core> {
        self.core.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Agents' display names (cached briefly).
    pub fn names(&self) -> &Names {
        &self.names
    }

    /// Registers a tab; frames for the customer's conversations on `site`
    /// go to `tx` until [`WidgetHub::detach`]. `queued`: their conversation
    /// waits in a queue now.
    pub fn attach(&self, customer: CustomerId, site: &str, tx: Frames, queued: bool) -> u64 {
        let mut core = self.core();
        if queued {
            core.queued.insert(customer, None);
            core.queue_moved = true;
        }
        core.next += 1;
        let id = core.next;
        core.tabs
            .entry(customer)
            .or_default()
            .push((id, site.to_owned(), tx));
        id
    }

    pub fn detach(&self, customer: CustomerId, tab: u64) {
        let mut core = self.core();
        if let Some(list) = core.tabs.get_mut(&customer) {
            list.retain(|(id, _, _)| *id != tab);
            if list.is_empty() {
                core.tabs.remove(&customer);
                core.queued.remove(&customer);
            }
        }
    }

    /// Follows the bus, tells waiting visitors their place, and forgets used
    /// login nonces once they expire.
    pub fn start(&self, bus: &Bus, workers: &mut Workers) {
        let hub = self.clone();
        let mut rx = bus.subscribe();
        workers.spawn("widget-hub", move |mut shutdown| async move {
            let mut purge = tokio::time::interval(PURGE_EVERY);
            let mut places = tokio::time::interval(PLACES_EVERY);
            places.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = shutdown.wait() => return,
                    _ = purge.tick() => {
                        if let Err(e) = hub.store.purge_login_nonces(chrono::Utc::now()).await {
                            tracing::warn!(error = %e, "expired login nonces not purged; next time");
                        }
                    }
                    _ = places.tick() => hub.send_places().await,
                    got = rx.recv() => match got {
                        Ok(env) => hub.fan_out(&env.event).await,
                        Err(RecvError::Lagged(n)) => {
                            // Every tab reconnects and asks for what it missed.
                            tracing::warn!(missed = n, "the widget hub lagged behind the bus; tabs reconnect");
                            let mut core = hub.core();
                            core.tabs.clear();
                            core.queued.clear();
                        }
                        Err(RecvError::Closed) => return,
                    }
                }
            }
        });
    }

    /// The customer's tabs on `site` (all sites when `None`).
    fn tabs_of(&self, customer: CustomerId, site: Option<&str>) -> Vec<(u64, Frames)> {
        self.core()
            .tabs
            .get(&customer)
            .map(|l| {
                l.iter()
                    .filter(|(_, s, _)| site.is_none_or(|x| x == s))
                    .map(|(id, _, tx)| (*id, tx.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Queues a frame for each tab. A tab whose queue is full is dropped:
    /// its socket sees the queue end, closes, and the tab reconnects asking
    /// the database for what it missed.
    fn send_all(&self, customer: CustomerId, tabs: &[(u64, Frames)], frame: &Value) {
        let text: Arc<str> = frame.to_string().into();
        for (id, tx) in tabs {
            if tx.try_send(text.clone()).is_err() {
                self.detach(customer, *id);
            }
        }
    }

    /// One event to the tabs it concerns. Messages and changes carry what
    /// the visitor sees, so this reads nothing, except the place of a
    /// conversation that has just joined a queue.
    async fn fan_out(&self, event: &Event) {
        match event {
            Event::MessageFiled {
                customer, message, ..
            } => {
                if !matches!(message.direction.as_str(), "in" | "out")
                    || message.msg_type == "event"
                {
                    return;
                }
                let tabs = self.tabs_of(*customer, Some(&message.account));
                if tabs.is_empty() {
                    return;
                }
                let frame =
                    json!({"type": "message", "message": view::filed(message, &self.names).await});
                self.send_all(*customer, &tabs, &frame);
            }
            Event::ConversationChanged {
                conversation,
                customer,
                account,
                state,
                agent,
                ..
            } => {
                let tabs = self.tabs_of(*customer, Some(account));
                if !tabs.is_empty() {
                    let place = if state == "queued" {
                        view::queue_place(&self.store, *conversation).await
                    } else {
                        None
                    };
                    {
                        let mut core = self.core();
                        if state == "queued" {
                            core.queued.insert(*customer, place);
                        } else {
                            core.queued.remove(customer);
                        }
                    }
                    let frame = json!({"type": "conversation", "conversation": view::state(conversation.0, state, *agent, place, &self.names).await});
                    self.send_all(*customer, &tabs, &frame);
                }
                // Someone joined or left a queue: others' places may move.
                self.core().queue_moved = true;
            }
            // The serving agent types: the visitor's tabs show it.
            Event::Typing {
                customer,
                account,
                agent: Some(agent),
                ..
            } => {
                let tabs = self.tabs_of(*customer, Some(account));
                if !tabs.is_empty() {
                    let frame =
                        json!({"type": "typing", "agent_name": self.names.of(*agent).await});
                    self.send_all(*customer, &tabs, &frame);
                }
            }
            // The serving agent read the visitor's messages: 已读.
            Event::Read {
                customer,
                account,
                agent: Some(_),
                up_to,
                ..
            } => {
                let tabs = self.tabs_of(*customer, Some(account));
                if !tabs.is_empty() {
                    self.send_all(*customer, &tabs, &json!({"type": "read", "up_to": up_to}));
                }
            }
            _ => {}
        }
    }

    /// Tells the connected visitors who wait in a queue their new place,
    /// when the queues moved since the last time: one read of every queue's
    /// order, however many wait or moved.
    async fn send_places(&self) {
        {
            let mut core = self.core();
            if !core.queue_moved || core.queued.is_empty() {
                return;
            }
            core.queue_moved = false;
        }
        let order = match self.store.queue_order().await {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(error = %e, "queue places not read; next time");
                self.core().queue_moved = true;
                return;
            }
        };
        let mut ahead = 0u64;
        let mut queue = None;
        for (i, (conversation, customer, account, group)) in order.iter().enumerate() {
            if i == 0 || queue != Some(*group) {
                queue = Some(*group);
                ahead = 0;
            }
            let place = ahead;
            ahead += 1;
            let changed = {
                let mut core = self.core();
                match core.queued.get_mut(customer) {
                    Some(told) if *told != Some(place) => {
                        *told = Some(place);
                        true
                    }
                    _ => false,
                }
            };
            if !changed {
                continue;
            }
            let tabs = self.tabs_of(*customer, Some(account));
            let frame = json!({"type": "conversation", "conversation": view::state(conversation.0, "queued", None, Some(place), &self.names).await});
            self.send_all(*customer, &tabs, &frame);
        }
    }
}

/// How often waiting visitors' places are brought up to date (at most).
const PLACES_EVERY: Duration = Duration::from_secs(1);

/// How often expired login nonces are deleted (a token lives 24 h at most).
const PURGE_EVERY: Duration = Duration::from_secs(3600);

/// How long agents' names are kept before they are read again.
pub const NAMES_FOR: Duration = Duration::from_secs(300);
