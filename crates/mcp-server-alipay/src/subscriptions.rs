//! Who wants to hear about which order: MCP clients subscribed to `alipay://orders/{outTradeNo}`,
//! either through `resources/subscribe` (sessions before 2026-07-28) or a `subscriptions/listen`
//! stream (2026-07-28). Kept in the shared `App`, because over HTTP the MCP handler is created per
//! session or per request.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use rmcp::RoleServer;
use rmcp::model::ResourceUpdatedNotificationParam;
use rmcp::service::{Peer, SubscriptionSink};

/// A legacy subscriber: its session key and its peer.
type Subscriber = (String, Peer<RoleServer>);

#[derive(Default)]
pub struct Subscriptions {
    /// uri → subscribers.
    legacy: Mutex<HashMap<String, Vec<Subscriber>>>,
    streams: Mutex<HashMap<u64, SubscriptionSink>>,
    next_stream: AtomicU64,
}

/// A panic elsewhere cannot leave these maps half-written: take them as they are.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Subscriptions {
    pub fn subscribe(&self, uri: &str, session: String, peer: Peer<RoleServer>) {
        let mut legacy = lock(&self.legacy);
        let peers = legacy.entry(uri.to_string()).or_default();
        peers.retain(|(s, p)| *s != session && !p.is_transport_closed());
        peers.push((session, peer));
    }

    pub fn unsubscribe(&self, uri: &str, session: &str) {
        if let Some(peers) = lock(&self.legacy).get_mut(uri) {
            peers.retain(|(s, _)| s != session);
        }
    }

    /// Register a listen stream; returns its id for [`Self::remove_stream`].
    pub fn add_stream(&self, sink: SubscriptionSink) -> u64 {
        let id = self.next_stream.fetch_add(1, Ordering::Relaxed);
        lock(&self.streams).insert(id, sink);
        id
    }

    pub fn remove_stream(&self, id: u64) {
        lock(&self.streams).remove(&id);
    }

    /// Send `notifications/resources/updated` for `uri` to everyone subscribed to it.
    pub async fn resource_updated(&self, uri: &str) -> usize {
        let peers: Vec<Peer<RoleServer>> = {
            let mut legacy = lock(&self.legacy);
            let peers = legacy.entry(uri.to_string()).or_default();
            peers.retain(|(_, p)| !p.is_transport_closed());
            peers.iter().map(|(_, p)| p.clone()).collect()
        };
        let sinks: Vec<SubscriptionSink> = lock(&self.streams).values().cloned().collect();
        let mut sent = 0;
        for peer in peers {
            if peer
                .notify_resource_updated(ResourceUpdatedNotificationParam::new(uri))
                .await
                .is_ok()
            {
                sent += 1;
            }
        }
        for sink in sinks {
            let wanted = sink
                .accepted()
                .resource_subscriptions
                .as_ref()
                .is_some_and(|uris| uris.iter().any(|u| u == uri));
            if wanted && sink.notify_resource_updated(uri).await.is_ok() {
                sent += 1;
            }
        }
        sent
    }
}
