//! Group commit of inbound messages.
//!
//! Request handlers hand a message to [`Ingestor::ingest`] and wait. One
//! writer task takes everything queued at that moment (up to a batch limit),
//! commits it in one transaction, and only then answers each waiting handler
//! — so a callback is never acknowledged before its message is durable, and
//! under load one fsync covers many callbacks. Each newly stored message is
//! announced on the bus as [`Event::MessageStored`] exactly once; a
//! redelivery comes back as [`Inserted::Duplicate`] and announces nothing.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::bus::{Bus, Event};
use crate::store::Store;
use crate::store::messages::{Inserted, NewInbound};
use crate::workers::{Shutdown, Workers};

/// Messages waiting for the writer, at most.
const QUEUE: usize = 65_536;

/// Why a message was not stored.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("the message was not committed within {0:?}")]
    Timeout(Duration),
    #[error("the database refused the batch: {0}")]
    Store(String),
    #[error("the ingest queue is full")]
    Overloaded,
    #[error("Kefu is shutting down")]
    ShuttingDown,
}

struct Job {
    msg: NewInbound,
    done: oneshot::Sender<Result<Inserted, IngestError>>,
}

/// The handle request handlers use.
#[derive(Clone)]
pub struct Ingestor {
    tx: mpsc::Sender<Job>,
}

impl Ingestor {
    /// Starts the writer as a worker.
    pub fn start(store: Store, bus: Bus, max_batch: usize, workers: &mut Workers) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        workers.spawn("ingest", move |shutdown| {
            writer(store, bus, rx, max_batch.max(1), shutdown)
        });
        Self { tx }
    }

    /// Stores `msg`, waiting at most `timeout` for the commit.
    #[tracing::instrument(level = "debug", skip_all, fields(account = %msg.account, sender = %msg.sender, key = %msg.dedup_key))]
    pub async fn ingest(
        &self,
        msg: NewInbound,
        timeout: Duration,
    ) -> Result<Inserted, IngestError> {
        let (done, wait) = oneshot::channel();
        self.tx.try_send(Job { msg, done }).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => IngestError::Overloaded,
            mpsc::error::TrySendError::Closed(_) => IngestError::ShuttingDown,
        })?;
        match tokio::time::timeout(timeout, wait).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(IngestError::ShuttingDown),
            // The batch may still commit; WeChat's retry then finds a duplicate.
            Err(_) => Err(IngestError::Timeout(timeout)),
        }
    }
}

async fn writer(
    store: Store,
    bus: Bus,
    mut rx: mpsc::Receiver<Job>,
    max_batch: usize,
    mut shutdown: Shutdown,
) {
    let mut jobs: Vec<Job> = Vec::with_capacity(max_batch);
    loop {
        tokio::select! {
            biased;
            n = rx.recv_many(&mut jobs, max_batch) => {
                if n == 0 {
                    return;
                }
                commit(&store, &bus, &mut jobs).await;
            }
            _ = shutdown.wait() => {
                // Finish what was accepted before the server stopped.
                rx.close();
                while rx.recv_many(&mut jobs, max_batch).await > 0 {
                    commit(&store, &bus, &mut jobs).await;
                }
                return;
            }
        }
    }
}

async fn commit(store: &Store, bus: &Bus, jobs: &mut Vec<Job>) {
    let (batch, waiting): (Vec<NewInbound>, Vec<_>) =
        jobs.drain(..).map(|j| (j.msg, j.done)).unzip();
    match store.insert_inbound_batch(&batch).await {
        Ok(results) => {
            for ((msg, done), r) in batch.into_iter().zip(waiting).zip(results) {
                if let Inserted::New(id) = r {
                    bus.publish(Event::MessageStored {
                        message_id: id,
                        account: msg.account,
                        sender: msg.sender,
                    });
                }
                let _ = done.send(Ok(r));
            }
        }
        Err(e) => {
            tracing::error!(error = %e, batch = batch.len(), "could not commit inbound messages; callbacks answer 503");
            let reason = e.to_string();
            for done in waiting {
                let _ = done.send(Err(IngestError::Store(reason.clone())));
            }
        }
    }
}
