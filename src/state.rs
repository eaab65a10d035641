//! What every handler and worker can reach.

use std::sync::Arc;

use crate::bus::Bus;
use crate::channels::Channels;
use crate::channels::kf_sync::KfSync;
use crate::config::Settings;
use crate::conversation::ingest::Ingestor;
use crate::conversation::outbox::Outbox;
use crate::metrics::Metrics;
use crate::store::Store;

/// Shared application state, cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub bus: Bus,
    pub settings: Arc<Settings>,
    pub metrics: Arc<Metrics>,
    /// For outbound calls; every request has a timeout.
    pub http: reqwest::Client,
    /// Configured WeChat accounts: crypto and API clients.
    pub channels: Arc<Channels>,
    /// Group commit of inbound messages.
    pub ingest: Ingestor,
    /// WeCom Customer Service message pull.
    pub kf_sync: KfSync,
    /// Everything sent to customers: stored first, then sent.
    pub outbox: Outbox,
    /// Media kept forever: the store, downloads, uploads.
    pub media: crate::media::Media,
    /// IP address → region (ip2region), loaded once; empty when the file is absent.
    pub regions: Arc<crate::routing::region::RegionResolver>,
    /// Agents' presence, load and shifts in memory: routing decisions.
    pub router: crate::routing::Router,
    /// The conversation pipeline: agents, supervisors and timers move
    /// conversations through it too ([`Pipeline::trigger`]).
    ///
    /// [`Pipeline::trigger`]: crate::conversation::pipeline::Pipeline::trigger
    pub pipeline: crate::conversation::pipeline::Pipeline,
    /// The queue drain: waiting conversations to agents as they free up.
    pub queue: crate::routing::queue::Drainer,
    /// Agents' presence: status, heartbeats, expiry.
    pub presence: crate::routing::presence::Presence,
    /// The console's realtime channel: per-user event sequences and sockets.
    pub hub: crate::console::realtime::Hub,
    /// Signed CRM calls seen lately (replays are refused).
    pub crm_replays: crate::crm::Replays,
    /// Keeps the history search's word index up to date.
    pub search: crate::search::SearchIndex,
    /// The web chat visitors' sockets on this instance.
    pub widget: crate::channels::web::WidgetHub,
    /// Delivers CRM events by webhook.
    pub crm_webhook: crate::crm::webhook::Webhook,
}
