//! Group commit of the hot-path writes: inbound messages, and outbound
//! messages accepted into the outbox.
//!
//! Request handlers hand a message to [`Ingestor::ingest`] (inbound) or
//! [`Ingestor::enqueue`] (outbound) and wait. One writer task takes
//! everything queued at that moment (up to a batch limit), commits it in one
//! transaction, and only then answers each waiting caller — so nothing is
//! acknowledged before it is durable, and under load one fsync covers many
//! requests. Each newly stored inbound message is announced on the bus as
//! [`Event::MessageStored`] exactly once (a redelivery comes back as
//! [`Inserted::Duplicate`] and announces nothing); each newly queued
//! outbound message wakes the outbox sender.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{Notify, mpsc, oneshot};

use crate::bus::{Bus, Event};
use crate::store::Store;
use crate::store::StoreError;
use crate::store::conversations::{MessageLink, OpenRequest, Opened, StateChange};
use crate::store::messages::{Committed, Deliver, Inserted, NewInbound, Work};
use crate::store::outbox::{Enqueued, NewOutbound};
use crate::workers::{Shutdown, Workers};

/// Writes waiting for the writer, at most.
const QUEUE: usize = 65_536;

/// Why a message was not stored.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("the message was not committed within {0:?}")]
    Timeout(Duration),
    #[error("the database refused the batch: {0}")]
    Store(String),
    #[error("the write queue is full")]
    Overloaded,
    #[error("Kefu is shutting down")]
    ShuttingDown,
    /// A work of [`Ingestor::in_commit`] failed (undone alone; the rest of
    /// the batch committed).
    #[error(transparent)]
    Work(StoreError),
}

type Reply<T> = oneshot::Sender<Result<T, IngestError>>;

enum Job {
    Inbound(NewInbound, Reply<Inserted>),
    Outbound(Box<NewOutbound>, Reply<Enqueued>),
    Link(MessageLink, Reply<bool>),
    State(Box<StateChange>, Reply<Option<i64>>),
    Open(Box<OpenRequest>, Reply<Opened>),
    Work(Work, Reply<()>),
}

/// The handle request handlers use.
#[derive(Clone)]
pub struct Ingestor {
    /// Requests waiting on an answer: callbacks, accepted replies.
    tx: mpsc::Sender<Job>,
    /// The pipeline's writes (links, state changes, newcomers): they yield
    /// to the hot path under load.
    background: mpsc::Sender<Job>,
}

impl Ingestor {
    /// Starts the writer as a worker. `outbound_ready` is notified after
    /// outbound messages were committed.
    pub fn start(
        store: Store,
        bus: Bus,
        max_batch: usize,
        outbound_ready: Arc<Notify>,
        workers: &mut Workers,
    ) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        let (background, bg_rx) = mpsc::channel(QUEUE);
        let writer = Writer {
            store,
            bus,
            outbound_ready,
            max_batch: max_batch.max(1),
        };
        workers.spawn("ingest", move |shutdown| writer.run(rx, bg_rx, shutdown));
        Self { tx, background }
    }

    /// Stores an inbound message, waiting at most `timeout` for the commit.
    #[tracing::instrument(level = "debug", skip_all, fields(account = %msg.account, key = %msg.dedup_key))]
    pub async fn ingest(
        &self,
        msg: NewInbound,
        timeout: Duration,
    ) -> Result<Inserted, IngestError> {
        let (done, wait) = oneshot::channel();
        self.submit(Job::Inbound(msg, done))?;
        await_commit(wait, timeout).await
    }

    /// Stores an outbound message and its outbox row, waiting at most
    /// `timeout` for the commit.
    #[tracing::instrument(level = "debug", skip_all, fields(account = %msg.account, recipient = %msg.recipient))]
    pub async fn enqueue(
        &self,
        msg: NewOutbound,
        timeout: Duration,
    ) -> Result<Enqueued, IngestError> {
        let (done, wait) = oneshot::channel();
        self.submit(Job::Outbound(Box::new(msg), done))?;
        await_commit(wait, timeout).await
    }

    /// Links a stored message to its customer and conversation (the
    /// pipeline's claim), committed with the next batch; `true` when this
    /// call linked it.
    pub async fn link(&self, link: MessageLink, timeout: Duration) -> Result<bool, IngestError> {
        let (done, wait) = oneshot::channel();
        self.submit(Job::Link(link, done))?;
        await_commit(wait, timeout).await
    }

    /// Applies a conversation's state change with its optimistic check (see
    /// `Store::apply_state_change`), committed with the next batch: the
    /// transition's id, or `None` when the conversation changed first.
    pub async fn change_state(
        &self,
        change: StateChange,
        timeout: Duration,
    ) -> Result<Option<i64>, IngestError> {
        let (done, wait) = oneshot::channel();
        self.submit(Job::State(Box::new(change), done))?;
        await_commit(wait, timeout).await
    }

    /// Finds or creates a channel identity's customer and finds or opens
    /// their conversation (see `store::conversations::open_in`), committed
    /// with the next batch.
    pub async fn open(&self, req: OpenRequest, timeout: Duration) -> Result<Opened, IngestError> {
        let (done, wait) = oneshot::channel();
        self.submit(Job::Open(Box::new(req), done))?;
        await_commit(wait, timeout).await
    }

    /// Runs `f` inside the next group commit's transaction (under a
    /// savepoint) and returns its value once the commit is durable: a write
    /// of the pipeline's effects (a ticket, a queue place) without a commit
    /// of its own.
    pub async fn in_commit<T, F>(&self, f: F, timeout: Duration) -> Result<T, IngestError>
    where
        T: Send + 'static,
        F: for<'t> FnOnce(
                &'t sea_orm::DatabaseTransaction,
            )
                -> futures_util::future::BoxFuture<'t, Result<T, StoreError>>
            + Send
            + 'static,
    {
        let (value_tx, value_rx) = oneshot::channel();
        let work: Work = Box::new(move |txn| {
            Box::pin(async move {
                let value = f(txn).await?;
                Ok(Box::new(move || {
                    let _ = value_tx.send(value);
                }) as Deliver)
            })
        });
        let (done, wait) = oneshot::channel();
        self.submit(Job::Work(work, done))?;
        await_commit(wait, timeout).await?;
        value_rx.await.map_err(|_| IngestError::ShuttingDown)
    }

    fn submit(&self, job: Job) -> Result<(), IngestError> {
        let queue = match job {
            Job::Inbound(..) | Job::Outbound(..) => &self.tx,
            Job::Link(..) | Job::State(..) | Job::Open(..) | Job::Work(..) => &self.background,
        };
        queue.try_send(job).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => IngestError::Overloaded,
            mpsc::error::TrySendError::Closed(_) => IngestError::ShuttingDown,
        })
    }
}

async fn await_commit<T>(
    wait: oneshot::Receiver<Result<T, IngestError>>,
    timeout: Duration,
) -> Result<T, IngestError> {
    match tokio::time::timeout(timeout, wait).await {
        Ok(Ok(r)) => r,
        Ok(Err(_)) => Err(IngestError::ShuttingDown),
        // The batch may still commit; a retry then finds the message stored.
        Err(_) => Err(IngestError::Timeout(timeout)),
    }
}

/// Pipeline writes added to a commit of waiting requests.
const BACKGROUND_WHEN_BUSY: usize = 16;

/// Moves up to `limit` jobs that are ready now from `rx` to `jobs`.
fn take_ready(rx: &mut mpsc::Receiver<Job>, jobs: &mut Vec<Job>, limit: usize) {
    for _ in 0..limit {
        match rx.try_recv() {
            Ok(job) => jobs.push(job),
            Err(_) => return,
        }
    }
}

struct Writer {
    store: Store,
    bus: Bus,
    outbound_ready: Arc<Notify>,
    max_batch: usize,
}

impl Writer {
    async fn run(
        self,
        mut rx: mpsc::Receiver<Job>,
        mut bg: mpsc::Receiver<Job>,
        mut shutdown: Shutdown,
    ) {
        let mut jobs: Vec<Job> = Vec::with_capacity(self.max_batch);
        let mut background: Vec<Job> = Vec::with_capacity(self.max_batch);
        loop {
            tokio::select! {
                biased;
                n = rx.recv_many(&mut jobs, self.max_batch) => {
                    if n == 0 {
                        return;
                    }
                    // Requests are waiting: the pipeline's writes take only
                    // a small share of the commit, so a flood of callbacks
                    // is answered first and the pipeline catches up after.
                    take_ready(&mut bg, &mut jobs, BACKGROUND_WHEN_BUSY);
                    self.commit(&mut jobs).await;
                }
                n = bg.recv_many(&mut background, self.max_batch) => {
                    if n == 0 {
                        return;
                    }
                    self.commit(&mut background).await;
                }
                _ = shutdown.wait() => {
                    // Finish what was accepted before the server stopped.
                    rx.close();
                    bg.close();
                    while rx.recv_many(&mut jobs, self.max_batch).await > 0 {
                        self.commit(&mut jobs).await;
                    }
                    while bg.recv_many(&mut jobs, self.max_batch).await > 0 {
                        self.commit(&mut jobs).await;
                    }
                    return;
                }
            }
        }
    }

    async fn commit(&self, jobs: &mut Vec<Job>) {
        let mut inbound = Vec::new();
        let mut inbound_done = Vec::new();
        let mut outbound = Vec::new();
        let mut outbound_done = Vec::new();
        let mut links = Vec::new();
        let mut links_done = Vec::new();
        let mut changes = Vec::new();
        let mut changes_done = Vec::new();
        let mut opens = Vec::new();
        let mut opens_done = Vec::new();
        let mut works = Vec::new();
        let mut works_done = Vec::new();
        for job in jobs.drain(..) {
            match job {
                Job::Inbound(m, d) => {
                    inbound.push(m);
                    inbound_done.push(d);
                }
                Job::Outbound(m, d) => {
                    outbound.push(*m);
                    outbound_done.push(d);
                }
                Job::Link(l, d) => {
                    links.push(l);
                    links_done.push(d);
                }
                Job::State(c, d) => {
                    changes.push(*c);
                    changes_done.push(d);
                }
                Job::Open(r, d) => {
                    opens.push(*r);
                    opens_done.push(d);
                }
                Job::Work(w, d) => {
                    works.push(w);
                    works_done.push(d);
                }
            }
        }
        match self
            .store
            .commit_batch(
                &inbound,
                &outbound,
                &links,
                &changes,
                &opens,
                works,
                Utc::now(),
            )
            .await
        {
            Ok(Committed {
                inserted,
                enqueued,
                linked,
                changed,
                opened,
                worked,
            }) => {
                for ((msg, done), r) in inbound.into_iter().zip(inbound_done).zip(inserted) {
                    if let Inserted::New(id) = r {
                        self.bus.publish(Event::MessageStored {
                            message_id: id,
                            account: msg.account,
                            sender: msg.sender,
                        });
                    }
                    let _ = done.send(Ok(r));
                }
                if enqueued.iter().any(|e| !e.existing) {
                    self.outbound_ready.notify_one();
                }
                for (done, r) in outbound_done.into_iter().zip(enqueued) {
                    let _ = done.send(Ok(r));
                }
                for (done, r) in links_done.into_iter().zip(linked) {
                    let _ = done.send(Ok(r));
                }
                for (done, r) in changes_done.into_iter().zip(changed) {
                    let _ = done.send(Ok(r));
                }
                for (done, r) in opens_done.into_iter().zip(opened) {
                    let _ = done.send(Ok(r));
                }
                for (done, r) in works_done.into_iter().zip(worked) {
                    let _ = done.send(match r {
                        Ok(deliver) => {
                            deliver();
                            Ok(())
                        }
                        Err(e) => Err(IngestError::Work(e)),
                    });
                }
            }
            Err(e) => {
                tracing::error!(error = %e, inbound = inbound.len(), outbound = outbound.len(),
                    "could not commit a batch; callers are told it was not stored");
                let reason = e.to_string();
                for done in inbound_done {
                    let _ = done.send(Err(IngestError::Store(reason.clone())));
                }
                for done in outbound_done {
                    let _ = done.send(Err(IngestError::Store(reason.clone())));
                }
                for done in links_done {
                    let _ = done.send(Err(IngestError::Store(reason.clone())));
                }
                for done in changes_done {
                    let _ = done.send(Err(IngestError::Store(reason.clone())));
                }
                for done in opens_done {
                    let _ = done.send(Err(IngestError::Store(reason.clone())));
                }
                for done in works_done {
                    let _ = done.send(Err(IngestError::Store(reason.clone())));
                }
            }
        }
    }
}
