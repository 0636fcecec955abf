//! Subscriptions that give their key back: a key of the index (a Service port and filter, a
//! profile target, a workload port, an outbound target) lives exactly as long as a stream holds
//! it.
//!
//! A [`Subscription`] is a `watch` receiver of one key's channel and a release guard shared by
//! the subscription's clones. When the last clone drops, every receiver it held is gone, and the
//! guard looks the key up: if no receiver of its channel is left anywhere, it removes the key
//! under the write lock, checking again there. A new subscriber joins a key only under a lock
//! (the read lock for an existing channel, the write lock for a new one) and holds its receiver
//! before the lock is released, so the check under the write lock sees it, and a key is never
//! removed under a subscriber: either the new subscriber joined first and the key stays, or the
//! key went first and the new subscriber makes a fresh one.
//!
//! This bounds the index by its subscribers, whatever they ask for: a `GetProfile` for a name
//! no Service has, or for any IP, gets its default profile and leaves nothing behind once its
//! stream ends.

use super::{EndpointsFilter, Index, ObjKey, ProfileSubKey, ProfileTarget, policy::PolicyKey};
use parking_lot::RwLock;
use std::{
    collections::HashMap,
    hash::Hash,
    net::IpAddr,
    ops::{Deref, DerefMut},
    sync::{Arc, Weak},
};
use tokio::sync::watch;

/// A receiver of one key's latest state; the key is dropped from the index once no
/// subscription holds it any more.
pub struct Subscription<T> {
    // Dropped before `release` (fields drop in order), so the release check never counts it.
    rx: watch::Receiver<T>,
    release: Arc<Release>,
}

/// The key of one subscription channel in the index.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum SubKey {
    Endpoints(ObjKey, EndpointsFilter),
    ServiceProfile(ObjKey, ProfileSubKey),
    AddrProfile(IpAddr, ProfileSubKey),
    Policy(PolicyKey),
}

/// Drops its key from the index, if unheld, when the last clone of a subscription drops.
struct Release {
    index: Weak<RwLock<Index>>,
    key: SubKey,
}

// === impl SubKey ===

impl SubKey {
    /// The key of a profile subscription.
    pub(crate) fn profile(target: &ProfileTarget, client_ns: Option<&str>) -> Self {
        let sub = ProfileSubKey::new(target, client_ns);
        match target {
            ProfileTarget::Service(svc, _) | ProfileTarget::Pod { service: svc, .. } => {
                Self::ServiceProfile(svc.clone(), sub)
            }
            ProfileTarget::Addr(addr) => Self::AddrProfile(addr.ip(), sub),
        }
    }
}

// === impl Subscription ===

impl<T> Subscription<T> {
    /// Wraps a receiver of `key`'s channel in `index`.
    pub(crate) fn new(rx: watch::Receiver<T>, index: &Arc<RwLock<Index>>, key: SubKey) -> Self {
        Self {
            rx,
            release: Arc::new(Release {
                index: Arc::downgrade(index),
                key,
            }),
        }
    }
}

impl<T> Clone for Subscription<T> {
    fn clone(&self) -> Self {
        Self {
            rx: self.rx.clone(),
            release: self.release.clone(),
        }
    }
}

impl<T> Deref for Subscription<T> {
    type Target = watch::Receiver<T>;

    fn deref(&self) -> &Self::Target {
        &self.rx
    }
}

impl<T> DerefMut for Subscription<T> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.rx
    }
}

impl<T> std::fmt::Debug for Subscription<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("key", &self.release.key)
            .finish_non_exhaustive()
    }
}

// === impl Release ===

impl Drop for Release {
    fn drop(&mut self) {
        let Some(index) = self.index.upgrade() else {
            return;
        };
        // Most ends leave other subscribers of the key: a read lock tells.
        if index.read().unheld(&self.key) {
            index.write().drop_unheld(&self.key);
        }
    }
}

// === impl Index ===

impl Index {
    /// Whether `key` has a channel that no receiver holds.
    fn unheld(&self, key: &SubKey) -> bool {
        match key {
            SubKey::Endpoints(svc, filter) => unheld(&self.endpoint_subs, svc, filter),
            SubKey::ServiceProfile(svc, sub) => unheld(&self.service_profile_subs, svc, sub),
            SubKey::AddrProfile(ip, sub) => unheld(&self.addr_profile_subs, ip, sub),
            SubKey::Policy(key) => self.policy.unheld(key),
        }
    }

    /// Removes `key` if no receiver holds its channel (checked again under the write lock).
    fn drop_unheld(&mut self, key: &SubKey) {
        match key {
            SubKey::Endpoints(svc, filter) => drop_unheld(&mut self.endpoint_subs, svc, filter),
            SubKey::ServiceProfile(svc, sub) => {
                drop_unheld(&mut self.service_profile_subs, svc, sub)
            }
            SubKey::AddrProfile(ip, sub) => drop_unheld(&mut self.addr_profile_subs, ip, sub),
            SubKey::Policy(key) => self.policy.drop_unheld(key),
        }
    }
}

/// Whether `outer`/`inner` has a channel without receivers.
pub(super) fn unheld<K: Eq + Hash, S: Eq + Hash, T>(
    subs: &HashMap<K, HashMap<S, watch::Sender<T>>>,
    outer: &K,
    inner: &S,
) -> bool {
    subs.get(outer)
        .and_then(|s| s.get(inner))
        .is_some_and(watch::Sender::is_closed)
}

/// Removes `outer`/`inner` if its channel has no receivers, and `outer` once it holds nothing.
pub(super) fn drop_unheld<K: Eq + Hash, S: Eq + Hash, T>(
    subs: &mut HashMap<K, HashMap<S, watch::Sender<T>>>,
    outer: &K,
    inner: &S,
) {
    let Some(inners) = subs.get_mut(outer) else {
        return;
    };
    if inners.get(inner).is_some_and(watch::Sender::is_closed) {
        inners.remove(inner);
    }
    if inners.is_empty() {
        subs.remove(outer);
    }
}
