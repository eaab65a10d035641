//! Background workers: loops around a single step, stopped together on
//! shutdown.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

/// A signal that shutdown has begun.
#[derive(Clone)]
pub struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    /// Resolves when shutdown begins.
    pub async fn wait(&mut self) {
        while !*self.0.borrow() {
            if self.0.changed().await.is_err() {
                return;
            }
        }
    }

    pub fn is_set(&self) -> bool {
        *self.0.borrow()
    }
}

/// The set of running workers.
pub struct Workers {
    tx: watch::Sender<bool>,
    set: JoinSet<()>,
}

impl Workers {
    pub fn new() -> Self {
        let (tx, _) = watch::channel(false);
        Self {
            tx,
            set: JoinSet::new(),
        }
    }

    /// Starts a worker; it gets a [`Shutdown`] to watch.
    pub fn spawn<F, Fut>(&mut self, name: &'static str, f: F)
    where
        F: FnOnce(Shutdown) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let fut = f(Shutdown(self.tx.subscribe()));
        self.set.spawn(async move {
            fut.await;
            tracing::debug!(worker = name, "worker stopped");
        });
    }

    pub fn len(&self) -> usize {
        self.set.len()
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// Signals every worker and waits for them to finish their current step,
    /// at most `grace`; the rest are aborted.
    pub async fn shutdown(mut self, grace: Duration) {
        let _ = self.tx.send(true);
        let drain = async { while self.set.join_next().await.is_some() {} };
        if tokio::time::timeout(grace, drain).await.is_err() {
            tracing::warn!("workers did not stop within {:?}; aborting them", grace);
            self.set.abort_all();
        }
    }
}

impl Default for Workers {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[tokio::test]
    async fn shutdown_lets_workers_finish_their_step() {
        let done = Arc::new(AtomicBool::new(false));
        let mut w = Workers::new();
        let d = done.clone();
        w.spawn("test", move |mut s| async move {
            s.wait().await;
            d.store(true, Ordering::SeqCst);
        });
        assert_eq!(w.len(), 1);
        w.shutdown(Duration::from_secs(5)).await;
        assert!(done.load(Ordering::SeqCst));
    }
}
