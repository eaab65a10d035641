//! The visitors' sockets on this instance, by customer: every message filed
//! in a visitor's conversation, and every change of its state, reaches
//! their open tabs. Nothing is kept here that the database does not have: a
//! tab that reconnects asks for what came after the last message it saw.

use std::collections::{HashMap, HashSet};
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
    /// Connected customers whose conversation waits in a queue: they hear
    /// when someone ahead of them leaves it.
    queued: HashSet<CustomerId>,
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
            core.queued.insert(customer);
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

    /// Follows the bus, and forgets used login nonces once they expire.
    pub fn start(&self, bus: &Bus, workers: &mut Workers) {
        let hub = self.clone();
        let mut rx = bus.subscribe();
        workers.spawn("widget-hub", move |mut shutdown| async move {
            let mut purge = tokio::time::interval(PURGE_EVERY);
            loop {
                tokio::select! {
                    () = shutdown.wait() => return,
                    _ = purge.tick() => {
                        if let Err(e) = hub.store.purge_login_nonces(chrono::Utc::now()).await {
                            tracing::warn!(error = %e, "expired login nonces not purged; next time");
                        }
                    }
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
                let tabs = self.tabs_of(*customer, None);
                if tabs.is_empty() {
                    return;
                }
                // The site: the message's conversation's account.
                let Ok(m) = self.store.message(message.id).await else {
                    return;
                };
                let tabs = self.tabs_of(*customer, Some(&m.account_id));
                let frame =
                    json!({"type": "message", "message": view::message(&m, &self.names).await});
                self.send_all(*customer, &tabs, &frame);
            }
            Event::ConversationChanged {
                conversation,
                customer,
                account,
                state,
                ..
            } => {
                let tabs = self.tabs_of(*customer, Some(account));
                if !tabs.is_empty() {
                    {
                        let mut core = self.core();
                        if state == "queued" {
                            core.queued.insert(*customer);
                        } else {
                            core.queued.remove(customer);
                        }
                    }
                    if let Ok(c) = self.store.conversation(*conversation).await {
                        let frame = json!({"type": "conversation", "conversation": view::conversation(&self.store, &c, &self.names).await});
                        self.send_all(*customer, &tabs, &frame);
                    }
                }
                // Someone left a queue: those waiting behind may move up.
                if state != "queued" {
                    self.refresh_queued(*customer).await;
                }
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
            _ => {}
        }
    }

    /// Sends fresh queue positions to the tabs of the other connected
    /// visitors waiting in a queue.
    async fn refresh_queued(&self, except: CustomerId) {
        let customers: Vec<(CustomerId, String)> = {
            let core = self.core();
            core.queued
                .iter()
                .filter(|c| **c != except)
                .filter_map(|c| {
                    core.tabs
                        .get(c)
                        .and_then(|l| l.first().map(|(_, s, _)| (*c, s.clone())))
                })
                .collect()
        };
        for (customer, site) in customers {
            let Ok(site_id) = crate::ids::AccountId::parse(&site) else {
                continue;
            };
            let Ok(Some(c)) = self.store.open_conversation_of(customer, &site_id).await else {
                continue;
            };
            if c.state != "queued" {
                continue;
            }
            let frame = json!({"type": "conversation", "conversation": view::conversation(&self.store, &c, &self.names).await});
            self.send_all(customer, &self.tabs_of(customer, Some(&site)), &frame);
        }
    }
}

/// How often expired login nonces are deleted (a token lives 24 h at most).
const PURGE_EVERY: Duration = Duration::from_secs(3600);

/// How long agents' names are kept before they are read again.
pub const NAMES_FOR: Duration = Duration::from_secs(300);
