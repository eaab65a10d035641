//! Agents' presence: what they say they are doing (idle, busy, on break,
//! offline), their console's heartbeat, and what follows from both.
//!
//! [`Presence::set`] stores the status with the time the agent was seen,
//! updates this instance's [`Router`](crate::routing::Router) at once and
//! announces [`Event::AgentPresence`] so the other instances' routers follow
//! (the pipeline's worker applies remote ones). Going idle wakes the queue
//! drain; going offline re-routes every conversation the agent holds
//! ([`Trigger::AgentReleased`], actor `presence`).
//!
//! A console that stops sending heartbeats ([`Presence::heartbeat`]) for
//! `routing.presence_grace_secs` makes its agent offline, with the same
//! effects ([`Presence::expire`], run by a worker). Agents never seen by a
//! console (status set by an admin or the CRM) do not expire. Heartbeats are
//! written together, every sixth of the grace period (1 to 5 s): thousands
//! of consoles cost one statement, not one transaction each. Another worker
//! reloads the router from the database every `routing.reconcile_secs`,
//! correcting whatever an instance missed.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use super::AgentStatus;
use super::queue::Drainer;
use crate::bus::Event;
use crate::conversation::pipeline::Pipeline;
use crate::conversation::state::{ReleaseReason, Trigger};
use crate::ids::AgentId;
use crate::store::StoreError;
use crate::workers::{Shutdown, Workers};

/// Why a presence change was refused.
#[derive(Debug, thiserror::Error)]
pub enum PresenceError {
    #[error("no such agent")]
    UnknownAgent,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The presence service (cheap to clone; one per instance).
#[derive(Clone)]
pub struct Presence {
    pipeline: Pipeline,
    drainer: Drainer,
    /// Agents whose heartbeat is not written yet.
    seen: Arc<Mutex<HashSet<AgentId>>>,
}

impl Presence {
    pub fn new(pipeline: Pipeline, drainer: Drainer) -> Self {
        Self {
            pipeline,
            drainer,
            seen: Arc::default(),
        }
    }

    /// How often heartbeats are written: a sixth of the grace period, so a
    /// live console is never taken for gone.
    fn flush_every(&self) -> Duration {
        Duration::from_secs(self.pipeline.settings().presence_grace_secs / 6)
            .clamp(Duration::from_secs(1), Duration::from_secs(5))
    }

    fn grace(&self) -> TimeDelta {
        TimeDelta::seconds(
            i64::try_from(self.pipeline.settings().presence_grace_secs).unwrap_or(i64::MAX / 1000),
        )
    }

    /// The agent says what they are doing (see the module documentation).
    pub async fn set(&self, agent: AgentId, status: AgentStatus) -> Result<(), PresenceError> {
        let now = Utc::now();
        if !self
            .pipeline
            .store()
            .set_agent_presence(agent, status, now)
            .await?
        {
            return Err(PresenceError::UnknownAgent);
        }
        tracing::info!(agent = %agent, status = ?status, "presence set");
        self.announce(agent, status).await;
        Ok(())
    }

    /// The agent's console is still there. Returns their status (a heartbeat
    /// does not change it: an agent made offline sets their presence again).
    /// Written with the next flush ([`Presence::flush`]).
    pub async fn heartbeat(&self, agent: AgentId) -> Result<AgentStatus, PresenceError> {
        let now = Utc::now();
        let Some((status, seen)) = self.pipeline.store().agent_presence(agent).await? else {
            return Err(PresenceError::UnknownAgent);
        };
        if let Ok(mut pending) = self.seen.lock() {
            pending.insert(agent);
        }
        // Back after a gap (a console reconnecting): their free slots may
        // take from the queue.
        let sweep = TimeDelta::seconds(
            i64::try_from(self.pipeline.settings().queue_sweep_secs).unwrap_or(i64::MAX / 1000),
        );
        if status == AgentStatus::Idle && seen.is_none_or(|s| now - s >= sweep) {
            self.drainer.signal();
        }
        Ok(status)
    }

    /// Writes the heartbeats received since the last flush, as seen now.
    pub async fn flush(&self) -> Result<(), PresenceError> {
        let pending: Vec<AgentId> = match self.seen.lock() {
            Ok(mut p) => p.drain().collect(),
            Err(_) => return Ok(()),
        };
        if pending.is_empty() {
            return Ok(());
        }
        if let Err(e) = self
            .pipeline
            .store()
            .touch_agents(&pending, Utc::now())
            .await
        {
            // Kept for the next flush.
            if let Ok(mut p) = self.seen.lock() {
                p.extend(pending);
            }
            return Err(e.into());
        }
        Ok(())
    }

    /// Makes offline every agent whose console was last seen more than
    /// `routing.presence_grace_secs` before `now` (this instance's pending
    /// heartbeats written first); returns who. Of several instances doing it
    /// at once, one does it for each agent.
    pub async fn expire(&self, now: DateTime<Utc>) -> Result<Vec<AgentId>, PresenceError> {
        self.flush().await?;
        let cutoff = now - self.grace();
        let store = self.pipeline.store();
        let mut expired = Vec::new();
        for agent in store.stale_agents(cutoff).await? {
            if store.expire_agent(agent, cutoff).await? {
                tracing::info!(agent = %agent, "presence expired: agent offline");
                self.announce(agent, AgentStatus::Offline).await;
                expired.push(agent);
            }
        }
        Ok(expired)
    }

    /// After a stored change: the router here, the others through the bus,
    /// then the drain or the re-routing.
    async fn announce(&self, agent: AgentId, status: AgentStatus) {
        let router = self.pipeline.router();
        if !router.set_status(agent, status)
            && let Err(e) = router.reload(self.pipeline.store()).await
        {
            // A new agent: the next reconciliation brings them in.
            tracing::warn!(agent = %agent, error = %e, "could not load a new agent into the router");
        }
        self.pipeline
            .bus()
            .publish(Event::AgentPresence { agent, status });
        match status {
            AgentStatus::Idle => self.drainer.signal(),
            AgentStatus::Offline => {
                self.release_all(agent).await;
            }
            AgentStatus::Busy | AgentStatus::Break => {}
        }
    }

    /// Re-routes every conversation `agent` holds; returns how many moved.
    async fn release_all(&self, agent: AgentId) -> usize {
        let held = match self.pipeline.store().assigned_conversations_of(agent).await {
            Ok(h) => h,
            Err(e) => {
                // The reconciliation does not re-route: the reply timeout
                // will offer them to others.
                tracing::warn!(agent = %agent, error = %e, "could not list an offline agent's conversations");
                return 0;
            }
        };
        let mut moved = 0;
        for conversation in held {
            let trigger = Trigger::AgentReleased {
                agent,
                why: ReleaseReason::Offline,
            };
            match self
                .pipeline
                .trigger(conversation, trigger, "presence")
                .await
            {
                Ok(_) => moved += 1,
                // Closed or moved meanwhile: nothing to do.
                Err(e) => {
                    tracing::info!(conversation = %conversation, error = %e, "not re-routed")
                }
            }
        }
        moved
    }

    /// Starts the heartbeats' writer, the presence expiry and the router's
    /// reconciliation.
    pub fn start(&self, workers: &mut Workers) {
        let me = self.clone();
        workers.spawn("presence-heartbeats", move |shutdown| {
            me.flush_loop(shutdown)
        });
        let me = self.clone();
        workers.spawn("presence-expiry", move |shutdown| me.expire_loop(shutdown));
        let me = self.clone();
        workers.spawn("routing-reconcile", move |shutdown| {
            me.reconcile_loop(shutdown)
        });
    }

    async fn flush_loop(self, mut shutdown: Shutdown) {
        let every = self.flush_every();
        loop {
            let stopping = tokio::select! {
                _ = shutdown.wait() => true,
                _ = tokio::time::sleep(every) => false,
            };
            if let Err(e) = self.flush().await {
                tracing::warn!(error = %e, "heartbeats not written; retrying");
            }
            if stopping {
                return;
            }
        }
    }

    async fn expire_loop(self, mut shutdown: Shutdown) {
        // A third of the grace: an agent is expired at most a third late.
        let every = Duration::from_secs(self.pipeline.settings().presence_grace_secs / 3)
            .clamp(Duration::from_secs(1), Duration::from_secs(30));
        loop {
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = tokio::time::sleep(every) => {}
            }
            if let Err(e) = self.expire(Utc::now()).await {
                tracing::warn!(error = %e, "presence expiry failed");
            }
        }
    }

    async fn reconcile_loop(self, mut shutdown: Shutdown) {
        let every = Duration::from_secs(self.pipeline.settings().reconcile_secs.max(1));
        loop {
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = tokio::time::sleep(every) => {}
            }
            match self.pipeline.router().reload(self.pipeline.store()).await {
                // Corrections may have freed slots.
                Ok(()) => self.drainer.signal(),
                Err(e) => tracing::warn!(error = %e, "router reconciliation failed"),
            }
        }
    }
}
