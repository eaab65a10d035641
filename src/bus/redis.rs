use std::sync::Mutex;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;

use super::{Envelope, Event, EventBus, LOCAL_CAPACITY, new_origin};
use crate::config::redact_url;

/// Events published by this instance waiting to reach Redis.
const OUTBOUND_CAPACITY: usize = 16_384;

/// The bus of a cluster: events go to local subscribers at once and to every
/// other instance through one Redis pub/sub channel.
pub struct RedisBus {
    origin: String,
    channel: String,
    local: broadcast::Sender<Envelope>,
    outbound: mpsc::Sender<String>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

/// Redis could not be reached or refused.
#[derive(Debug, thiserror::Error)]
#[error("Redis at {url}: {reason}")]
pub struct RedisBusError {
    pub url: String,
    pub reason: String,
}

impl RedisBus {
    /// Connects, subscribes, and returns once the subscription is live, so
    /// nothing published by another instance after this returns is missed.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, RedisBusError> {
        let err = |e: ::redis::RedisError| RedisBusError {
            url: redact_url(url),
            reason: e.to_string(),
        };
        let client = ::redis::Client::open(url).map_err(err)?;
        let channel = format!("{prefix}:events");
        let origin = new_origin();
        let (local, _) = broadcast::channel(LOCAL_CAPACITY);

        let connect = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            let publisher = ::redis::aio::ConnectionManager::new(client.clone()).await?;
            Ok::<_, ::redis::RedisError>((pubsub, publisher))
        };
        let (pubsub, publisher) = tokio::time::timeout(Duration::from_secs(5), connect)
            .await
            .map_err(|_| RedisBusError {
                url: redact_url(url),
                reason: "no answer within 5 s".into(),
            })?
            .map_err(err)?;

        let (outbound, rx) = mpsc::channel(OUTBOUND_CAPACITY);
        let sub_task = tokio::spawn(receive_loop(
            client,
            pubsub,
            channel.clone(),
            origin.clone(),
            local.clone(),
        ));
        let pub_task = tokio::spawn(publish_loop(publisher, channel.clone(), rx));
        Ok(Self {
            origin,
            channel,
            local,
            outbound,
            tasks: Mutex::new(vec![sub_task, pub_task]),
        })
    }

    pub fn channel(&self) -> &str {
        &self.channel
    }
}

async fn publish_loop(
    mut conn: ::redis::aio::ConnectionManager,
    channel: String,
    mut rx: mpsc::Receiver<String>,
) {
    while let Some(payload) = rx.recv().await {
        let sent: Result<i64, _> = ::redis::cmd("PUBLISH")
            .arg(&channel)
            .arg(&payload)
            .query_async(&mut conn)
            .await;
        if let Err(e) = sent {
            tracing::warn!(error = %e, "bus: could not publish an event to Redis; other instances miss it");
        }
    }
}

async fn receive_loop(
    client: ::redis::Client,
    mut pubsub: ::redis::aio::PubSub,
    channel: String,
    origin: String,
    local: broadcast::Sender<Envelope>,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        {
            let mut stream = pubsub.on_message();
            while let Some(msg) = stream.next().await {
                let Ok(payload) = msg.get_payload::<String>() else {
                    continue;
                };
                match serde_json::from_str::<Envelope>(&payload) {
                    Ok(env) if env.origin == origin => {}
                    Ok(env) => {
                        let _ = local.send(env);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "bus: ignoring an undecodable event from Redis")
                    }
                }
            }
        }
        tracing::warn!("bus: Redis subscription lost; reconnecting");
        loop {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(10));
            let again = async {
                let mut p = client.get_async_pubsub().await?;
                p.subscribe(&channel).await?;
                Ok::<_, ::redis::RedisError>(p)
            };
            match again.await {
                Ok(p) => {
                    pubsub = p;
                    backoff = Duration::from_millis(100);
                    tracing::info!("bus: Redis subscription restored");
                    break;
                }
                Err(e) => tracing::warn!(error = %e, "bus: Redis still unreachable"),
            }
        }
    }
}

impl EventBus for RedisBus {
    fn publish(&self, event: Event) {
        let env = Envelope {
            origin: self.origin.clone(),
            event,
        };
        match serde_json::to_string(&env) {
            Ok(payload) => {
                if self.outbound.try_send(payload).is_err() {
                    tracing::warn!(
                        "bus: outbound queue to Redis full; event dropped for other instances"
                    );
                }
            }
            Err(e) => tracing::error!(error = %e, "bus: cannot encode event"),
        }
        let _ = self.local.send(env);
    }

    fn subscribe(&self) -> broadcast::Receiver<Envelope> {
        self.local.subscribe()
    }

    fn origin(&self) -> &str {
        &self.origin
    }

    fn shutdown(&self) {
        if let Ok(mut tasks) = self.tasks.lock() {
            for t in tasks.drain(..) {
                t.abort();
            }
        }
    }
}

impl Drop for RedisBus {
    fn drop(&mut self) {
        self.shutdown();
    }
}
