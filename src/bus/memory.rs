use tokio::sync::broadcast;

use super::{Envelope, Event, EventBus, LOCAL_CAPACITY, new_origin};

/// The in-process bus of a single node.
pub struct MemoryBus {
    origin: String,
    tx: broadcast::Sender<Envelope>,
}

impl MemoryBus {
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(LOCAL_CAPACITY);
        Self {
            origin: new_origin(),
            tx,
        }
    }
}

impl Default for MemoryBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBus for MemoryBus {
    fn publish(&self, event: Event) {
        // No subscriber is not an error.
        let _ = self.tx.send(Envelope {
            origin: self.origin.clone(),
            event,
        });
    }

    fn subscribe(&self) -> broadcast::Receiver<Envelope> {
        self.tx.subscribe()
    }

    fn origin(&self) -> &str {
        &self.origin
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn subscribers_receive_what_is_published_after_they_subscribe() {
        let bus = MemoryBus::new();
        bus.publish(Event::Ping {
            nonce: "before".into(),
        });
        let mut a = bus.subscribe();
        let mut b = bus.subscribe();
        bus.publish(Event::Ping {
            nonce: "after".into(),
        });
        for rx in [&mut a, &mut b] {
            let got = rx.recv().await.unwrap();
            assert_eq!(
                got.event,
                Event::Ping {
                    nonce: "after".into()
                }
            );
            assert_eq!(got.origin, bus.origin());
        }
    }
}
