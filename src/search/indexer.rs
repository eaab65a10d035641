//! The search indexer: follows the messages table by id and stores each
//! message's words. It runs beside the pipeline, never in a callback's
//! path; a search sees a message within about a second of its storing.
//! Several instances may run it at once (PostgreSQL): rows are written
//! once and the cursor only moves forward.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;

use crate::store::search::IndexRow;
use crate::store::{Store, StoreError};
use crate::workers::{Shutdown, Workers};

/// Messages read and indexed per transaction. Small: on SQLite the index
/// shares the one writer connection with the callbacks' group commit, and
/// a long index transaction would hold their messages back. (Measured: at
/// 1,000 messages/s indexing does not move the console's p99; see
/// BENCHMARKS.md, console realtime.)
const BATCH: u64 = 200;
/// How often the indexer looks for new messages.
const EVERY: Duration = Duration::from_secs(1);
/// How far behind the cursor late commits are looked for (PostgreSQL).
const LATE_WINDOW: i64 = 20_000;

/// Keeps the search index up to date.
#[derive(Clone)]
pub struct SearchIndex {
    store: Store,
    /// One pass at a time here (the worker and [`SearchIndex::drain`]).
    pass: Arc<Mutex<()>>,
}

impl SearchIndex {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            pass: Arc::new(Mutex::new(())),
        }
    }

    /// Indexes new messages every second until shutdown.
    pub fn start(&self, workers: &mut Workers) {
        let me = self.clone();
        workers.spawn("search-index", move |shutdown| me.run(shutdown));
    }

    async fn run(self, mut shutdown: Shutdown) {
        // Segmenting the first message would otherwise load jieba's
        // dictionary on a runtime thread.
        let _ = tokio::task::spawn_blocking(super::warm_up).await;
        loop {
            if let Err(e) = self.drain().await {
                tracing::warn!(error = %e, "search indexing failed; retrying");
            }
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = tokio::time::sleep(EVERY) => {}
            }
        }
    }

    /// Indexes every message stored so far; returns how many were read.
    pub async fn drain(&self) -> Result<u64, StoreError> {
        let _pass = self.pass.lock().await;
        let mut done = 0;
        let mut cursor = self.store.index_cursor().await?;
        let late = self.store.texts_missed(cursor, LATE_WINDOW, BATCH).await?;
        if !late.is_empty() {
            tracing::debug!(n = late.len(), "indexing messages committed late");
            done += late.len() as u64;
            self.store
                .write_index(&segment(late).await?, cursor)
                .await?;
        }
        loop {
            let texts = self.store.texts_after(cursor, BATCH).await?;
            let Some(last) = texts.last().map(|t| t.0) else {
                return Ok(done);
            };
            let n = texts.len() as u64;
            self.store.write_index(&segment(texts).await?, last).await?;
            done += n;
            cursor = last;
            if n < BATCH {
                return Ok(done);
            }
        }
    }
}

/// Cuts the texts into words off the runtime's threads.
async fn segment(texts: Vec<(i64, Option<String>)>) -> Result<Vec<IndexRow>, StoreError> {
    let cut = move || {
        texts
            .into_iter()
            .map(|(id, text)| IndexRow {
                id,
                terms: text.as_deref().map(super::index_terms).unwrap_or_default(),
            })
            .collect::<Vec<_>>()
    };
    tokio::task::spawn_blocking(cut)
        .await
        .map_err(|e| StoreError::Db(sea_orm::DbErr::Custom(format!("segmenting failed: {e}"))))
}
