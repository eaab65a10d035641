//! What every handler and worker can reach.

use std::sync::Arc;

use crate::bus::Bus;
use crate::config::Settings;
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
}
