//! The queue drain: gives waiting conversations to agents as they free up.
//!
//! The [`Drainer`] runs on a signal — an agent's slot freed up (a close, a
//! release, a transfer away: the `ReleaseAgent` effect), an agent became
//! idle or came back — and on a sweep every `routing.queue_sweep_secs`,
//! which also catches shift starts and anything a signal missed. Signals
//! that arrive during a drain make one more drain, never a pile of them.
//!
//! A drain takes waiting conversations oldest first, a page at a time, only
//! from the queues where the router sees an available agent (a full group's
//! backlog costs nothing) — never one still being routed, which has no place
//! in a queue yet — and offers each to
//! [`Pipeline::try_assign_queued_holding`]: routing on the router, the slot
//! reserved, `queued → assigned` claimed in the database with an optimistic
//! check — two instances draining at once never assign one conversation
//! twice. Within one drain an agent takes at most
//! `routing.queue_batch_limit` conversations ([`queue_take`]'s rule): a fresh
//! login is not flooded; what is left waits for the agent's next freed slot
//! or the next sweep.
//!
//! [`queue_take`]: crate::routing::queue_take

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{Mutex, Notify, watch};

use crate::conversation::pipeline::{Pipeline, PipelineError};
use crate::ids::{AgentId, ConversationId, GroupId};
use crate::workers::{Shutdown, Workers};

/// Waiting conversations read at once.
const PAGE: u64 = 200;
/// Pause before retrying after a database error.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// How long a conversation may sit in `queued` without a place (being
/// routed) before the drain takes it for stranded.
const STRANDED: chrono::TimeDelta = chrono::TimeDelta::minutes(1);

/// The queue drain (cheap to clone; one per instance).
#[derive(Clone)]
pub struct Drainer {
    inner: Arc<Inner>,
}

struct Inner {
    pipeline: Pipeline,
    signal: Arc<Notify>,
    /// One drain at a time on this instance.
    running: Mutex<()>,
    /// Drains completed so far (tests wait on it).
    completed: watch::Sender<u64>,
}

impl Drainer {
    /// A drain for `pipeline`'s queue, woken by its
    /// [`queue_signal`](Pipeline::queue_signal).
    pub fn new(pipeline: Pipeline) -> Self {
        let signal = pipeline.queue_signal().clone();
        Self {
            inner: Arc::new(Inner {
                pipeline,
                signal,
                running: Mutex::new(()),
                completed: watch::Sender::new(0),
            }),
        }
    }

    /// Asks for a drain soon (never blocks; signals coalesce).
    pub fn signal(&self) {
        self.inner.signal.notify_one();
    }

    /// The number of drains completed, as it changes.
    pub fn completed(&self) -> watch::Receiver<u64> {
        self.inner.completed.subscribe()
    }

    /// Starts the drain service: one drain at once (the queue as it was
    /// left), then on every signal and every `routing.queue_sweep_secs`.
    pub fn start(&self, workers: &mut Workers) {
        let me = self.clone();
        workers.spawn("queue-drain", move |shutdown| me.run(shutdown));
    }

    async fn run(self, mut shutdown: Shutdown) {
        let sweep = Duration::from_secs(self.inner.pipeline.settings().queue_sweep_secs.max(1));
        let mut placed: Option<std::time::Instant> = None;
        loop {
            if placed.is_none_or(|t| t.elapsed() >= sweep) {
                self.place_stranded().await;
                placed = Some(std::time::Instant::now());
            }
            match self.drain_now().await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(assigned = n, "queue drained"),
                Err(e) => {
                    tracing::warn!(error = %e, "queue drain failed; retrying");
                    tokio::select! {
                        _ = shutdown.wait() => return,
                        _ = tokio::time::sleep(RETRY_AFTER) => continue,
                    }
                }
            }
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = self.inner.signal.notified() => {}
                _ = tokio::time::sleep(sweep) => {}
            }
        }
    }

    /// Conversations left in `queued` without a place for [`STRANDED`]
    /// (their routing stopped half-way, or they predate places) join the
    /// queue.
    async fn place_stranded(&self) {
        let before = Utc::now() - STRANDED;
        match self
            .inner
            .pipeline
            .store()
            .place_unplaced_queued(before)
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::info!(conversations = n, "stranded conversations joined the queue"),
            Err(e) => tracing::warn!(error = %e, "could not place stranded conversations"),
        }
    }

    /// Drains now (after any drain in progress on this instance); returns how
    /// many conversations were assigned. For the service, tests and the load
    /// tool.
    pub async fn drain_now(&self) -> Result<usize, PipelineError> {
        let _one = self.inner.running.lock().await;
        let done = self.drain().await;
        self.inner.completed.send_modify(|n| *n += 1);
        done
    }

    async fn drain(&self) -> Result<usize, PipelineError> {
        let pipeline = &self.inner.pipeline;
        let router = pipeline.router();
        let limit = pipeline.settings().queue_batch_limit.max(1);
        let mut taken: HashMap<AgentId, u32> = HashMap::new();
        let mut held: HashSet<AgentId> = HashSet::new();
        let mut after: Option<(DateTime<Utc>, ConversationId)> = None;
        let mut assigned = 0;
        let mut open = router.open_scopes(Utc::now(), &held);
        while open.any {
            let groups: Vec<GroupId> = open.groups.iter().copied().collect();
            let page = pipeline
                .store()
                .queue_page(&groups, true, after, PAGE)
                .await?;
            let Some(last) = page.last() else {
                break;
            };
            after = Some((last.queued_at, last.conversation));
            for place in page {
                if !open.admits(place.group) {
                    continue;
                }
                match pipeline
                    .try_assign_queued_holding(place.conversation, &held)
                    .await
                {
                    Ok(Some(agent)) => {
                        assigned += 1;
                        let n = taken.entry(agent).or_default();
                        *n += 1;
                        if *n >= limit {
                            held.insert(agent);
                        }
                    }
                    Ok(None) => {}
                    Err(e) => {
                        // One bad conversation never stalls the others.
                        tracing::warn!(conversation = %place.conversation, error = %e, "queue drain could not offer a conversation");
                    }
                }
                open = router.open_scopes(Utc::now(), &held);
                if !open.any {
                    break;
                }
            }
        }
        Ok(assigned)
    }
}
