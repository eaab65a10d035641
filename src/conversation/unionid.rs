//! One customer across WeChat accounts: for each customer newly seen
//! writing to an account with `link_unionid = true`, ask WeChat for their
//! unionid (OA `user/info`, WeCom `kf/customer/batchget`) and join them with
//! the customer who already has it. Their history, dedicated agent and CRM
//! record are then one.
//!
//! Runs beside the pipeline, never in a callback's path: a slow or failing
//! WeChat API delays the join, not the message. Each customer is looked up
//! at most once per [`SEEN_TTL`] on an instance.

use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;
use tokio::sync::{Semaphore, broadcast::error::RecvError, mpsc};

use crate::bus::{Bus, Event};
use crate::channels::Channels;
use crate::config::AccountKind;
use crate::conversation::pipeline::Pipeline;
use crate::ids::CustomerId;
use crate::store::followers::{IdentityKind, UnionLink};
use crate::workers::{Shutdown, Workers};

/// How long a looked-up customer is not looked up again (here).
pub const SEEN_TTL: Duration = Duration::from_secs(6 * 3600);
/// Look-ups waiting; beyond, newcomers wait for their next message.
const QUEUE: usize = 4096;
/// Look-ups in flight at once.
const AT_ONCE: usize = 8;

/// Asks WeChat who new customers are and joins the same person's customers.
#[derive(Clone)]
pub struct UnionidLinker {
    pipeline: Pipeline,
    channels: Arc<Channels>,
    seen: Cache<i64, ()>,
}

impl UnionidLinker {
    pub fn new(pipeline: Pipeline, channels: Arc<Channels>) -> Self {
        Self {
            pipeline,
            channels,
            seen: Cache::builder()
                .max_capacity(200_000)
                .time_to_live(SEEN_TTL)
                .build(),
        }
    }

    /// Whether any configured account asks for unionids.
    pub fn wanted(channels: &Channels) -> bool {
        channels
            .of_kind(AccountKind::OfficialAccount)
            .chain(channels.of_kind(AccountKind::WecomKf))
            .any(|a| a.account.link_unionid)
    }

    /// Listens for customers' messages filed here and looks them up.
    pub fn start(self, bus: &Bus, workers: &mut Workers) {
        let events = bus.subscribe();
        let origin = bus.origin().to_owned();
        let (tx, rx) = mpsc::channel(QUEUE);
        let me = self.clone();
        workers.spawn("unionid-listen", move |shutdown| {
            me.listen(events, origin, tx, shutdown)
        });
        workers.spawn("unionid-link", move |shutdown| self.work(rx, shutdown));
    }

    async fn listen(
        self,
        mut events: tokio::sync::broadcast::Receiver<crate::bus::Envelope>,
        origin: String,
        tx: mpsc::Sender<CustomerId>,
        mut shutdown: Shutdown,
    ) {
        loop {
            let env = tokio::select! {
                _ = shutdown.wait() => return,
                r = events.recv() => match r {
                    Ok(env) => env,
                    // Missed customers are looked up at their next message.
                    Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => return,
                },
            };
            if env.origin != origin {
                continue;
            }
            let Event::MessageFiled {
                customer, message, ..
            } = env.event
            else {
                continue;
            };
            if message.direction != "in" || self.seen.contains_key(&customer.0) {
                continue;
            }
            self.seen.insert(customer.0, ()).await;
            if tx.try_send(customer).is_err() {
                self.seen.invalidate(&customer.0).await;
            }
        }
    }

    async fn work(self, mut rx: mpsc::Receiver<CustomerId>, mut shutdown: Shutdown) {
        let permits = Arc::new(Semaphore::new(AT_ONCE));
        loop {
            let customer = tokio::select! {
                _ = shutdown.wait() => return,
                c = rx.recv() => match c {
                    Some(c) => c,
                    None => return,
                },
            };
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            let me = self.clone();
            tokio::spawn(async move {
                if let Err(e) = me.link(customer).await {
                    tracing::warn!(customer = customer.0, error = %e, "unionid not looked up; retried after a while");
                }
                drop(permit);
            });
        }
    }

    /// Looks the customer up through the first of their identities whose
    /// account links unionids, and joins them. `Ok(None)` when there was
    /// nothing to ask or WeChat gave no unionid.
    pub async fn link(&self, customer: CustomerId) -> Result<Option<UnionLink>, LinkError> {
        let store = self.pipeline.store();
        let ids = store.identities_of(customer).await?;
        if ids.iter().any(|i| i.kind == IdentityKind::UnionId.as_str()) {
            return Ok(None);
        }
        for id in &ids {
            let Some(acc) = self.channels.get_any(&id.account_id) else {
                continue;
            };
            if !acc.account.link_unionid {
                continue;
            }
            let info = match (IdentityKind::parse(&id.kind), acc.account.kind) {
                (Some(IdentityKind::OaOpenId), AccountKind::OfficialAccount) => {
                    Some(acc.api.oa_user_info(&id.value).await?)
                }
                (Some(IdentityKind::WecomExternalUserId), AccountKind::WecomKf) => {
                    acc.api.kf_customer(&id.value).await?
                }
                _ => continue,
            };
            let Some(info) = info else { continue };
            let Some(unionid) = info.unionid.as_deref() else {
                if let Some(nick) = &info.nickname {
                    store.name_if_unnamed(customer, nick).await?;
                }
                continue;
            };
            let nickname = info.nickname.as_deref();
            let outcome = match store.link_unionid(customer, unionid, nickname).await {
                // The same person's other customer took the unionid at
                // this moment (both looked up at once): join them now.
                Err(crate::store::StoreError::Duplicate) => {
                    store.link_unionid(customer, unionid, nickname).await?
                }
                other => other?,
            };
            match &outcome {
                UnionLink::Merged {
                    removed,
                    kept,
                    moved,
                } => {
                    tracing::info!(
                        removed = removed.0,
                        kept = kept.0,
                        "customers joined: the same WeChat user (unionid)"
                    );
                    self.pipeline.forget_merged(&[*removed], moved).await;
                    self.pipeline.bus().publish(Event::CustomersMerged {
                        removed: vec![*removed],
                        identities: moved.clone(),
                    });
                }
                UnionLink::Conflict { other } => tracing::warn!(
                    customer = customer.0,
                    other = other.0,
                    "the same unionid on two CRM customers; not joined (fix it in the CRM)"
                ),
                UnionLink::Added | UnionLink::Already => {}
            }
            return Ok(Some(outcome));
        }
        Ok(None)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error(transparent)]
    Api(#[from] crate::wechat::api::ApiError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}
