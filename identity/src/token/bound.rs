//! The objects a token is bound to (its ServiceAccount and Pod), from metadata-only watches:
//! name → UID of every live object, and the UIDs of recently deleted ones.

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use kube::{
    Api, Resource,
    core::PartialObjectMeta,
    runtime::{WatchStreamExt, watcher},
};
use parking_lot::{Mutex, RwLock};
use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

/// How many deleted UIDs each kind remembers (a forgotten one sends its tokens to the API
/// server, which refuses them).
const TOMBSTONES: usize = 16 * 1024;

/// What the cache knows about an object a token names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bound {
    /// It exists with this UID and is not being deleted.
    Live,
    /// An object with this UID existed and was deleted.
    Gone,
    /// Not known (not synced yet, recreated with a UID the cache has not seen, terminating):
    /// only the API server can tell.
    Unknown,
}

/// The live objects of one kind, by `(namespace, name)`.
#[derive(Default)]
pub(crate) struct Objects {
    live: RwLock<HashMap<(String, String), Entry>>,
    gone: Mutex<Tombstones>,
    synced: AtomicBool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    uid: String,
    terminating: bool,
}

#[derive(Default)]
struct Tombstones {
    set: HashSet<String>,
    order: VecDeque<String>,
}

/// ServiceAccounts and Pods.
#[derive(Default)]
pub struct BoundObjects {
    pub(crate) service_accounts: Objects,
    pub(crate) pods: Objects,
}

// === impl BoundObjects ===

impl BoundObjects {
    /// Watches ServiceAccounts and Pods of every namespace (metadata only); the two tasks, each
    /// with its name.
    pub fn spawn(
        self: &Arc<Self>,
        client: kube::Client,
    ) -> [(&'static str, tokio::task::JoinHandle<()>); 2] {
        let sas = self.clone();
        let pods = self.clone();
        let c = client.clone();
        [
            (
                "the ServiceAccount metadata watch",
                tokio::spawn(async move {
                    sas.service_accounts
                        .run(Api::<PartialObjectMeta<ServiceAccount>>::all(c))
                        .await
                }),
            ),
            (
                "the Pod metadata watch",
                tokio::spawn(async move {
                    pods.pods
                        .run(Api::<PartialObjectMeta<Pod>>::all(client))
                        .await
                }),
            ),
        ]
    }

    /// Both watches have listed once.
    pub fn synced(&self) -> bool {
        self.service_accounts.synced.load(Ordering::Acquire)
            && self.pods.synced.load(Ordering::Acquire)
    }
}

// === impl Objects ===

impl Objects {
    pub(crate) fn check(&self, ns: &str, name: &str, uid: &str) -> Bound {
        let key = (ns.to_string(), name.to_string());
        if let Some(e) = self.live.read().get(&key)
            && e.uid == uid
        {
            return if e.terminating {
                Bound::Unknown
            } else {
                Bound::Live
            };
        }
        if self.gone.lock().set.contains(uid) {
            Bound::Gone
        } else {
            Bound::Unknown
        }
    }

    pub(crate) fn apply(&self, ns: &str, name: &str, uid: &str, terminating: bool) {
        let entry = Entry {
            uid: uid.to_string(),
            terminating,
        };
        let old = self
            .live
            .write()
            .insert((ns.to_string(), name.to_string()), entry);
        if let Some(old) = old
            && old.uid != uid
        {
            self.bury(old.uid);
        }
    }

    pub(crate) fn delete(&self, ns: &str, name: &str, uid: &str) {
        let key = (ns.to_string(), name.to_string());
        let old = self.live.write().remove(&key);
        if let Some(old) = old
            && old.uid != uid
        {
            self.bury(old.uid);
        }
        self.bury(uid.to_string());
    }

    /// Replaces every object after a (re)list; those that disappeared are deleted.
    fn reset(&self, objects: HashMap<(String, String), Entry>) {
        let old = std::mem::replace(&mut *self.live.write(), objects);
        let live = self.live.read();
        for (key, entry) in old {
            if live.get(&key).is_none_or(|e| e.uid != entry.uid) {
                self.bury(entry.uid);
            }
        }
    }

    fn bury(&self, uid: String) {
        let mut gone = self.gone.lock();
        if gone.set.insert(uid.clone()) {
            gone.order.push_back(uid);
        }
        while gone.order.len() > TOMBSTONES {
            if let Some(oldest) = gone.order.pop_front() {
                gone.set.remove(&oldest);
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.live.read().len()
    }

    /// Follows `api` (metadata only) until the stream ends (never, in practice).
    async fn run<K>(&self, api: Api<PartialObjectMeta<K>>)
    where
        K: Resource<DynamicType = ()> + Clone + std::fmt::Debug + Send + Sync + 'static,
    {
        let kind = K::kind(&()).to_string();
        let mut stream = watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        let mut listing: Option<HashMap<(String, String), Entry>> = None;
        while let Some(event) = stream.next().await {
            let parts = |m: &PartialObjectMeta<K>| {
                let meta = &m.metadata;
                Some((
                    meta.namespace.clone()?,
                    meta.name.clone()?,
                    meta.uid.clone()?,
                    meta.deletion_timestamp.is_some(),
                ))
            };
            match event {
                Ok(watcher::Event::Init) => listing = Some(HashMap::new()),
                Ok(watcher::Event::InitApply(m)) => {
                    if let (Some(list), Some((ns, name, uid, terminating))) =
                        (listing.as_mut(), parts(&m))
                    {
                        list.insert((ns, name), Entry { uid, terminating });
                    }
                }
                Ok(watcher::Event::InitDone) => {
                    if let Some(list) = listing.take() {
                        self.reset(list);
                    }
                    self.synced.store(true, Ordering::Release);
                    tracing::debug!(%kind, objects = self.len(), "bound-object cache synced");
                }
                Ok(watcher::Event::Apply(m)) => {
                    if let Some((ns, name, uid, terminating)) = parts(&m) {
                        self.apply(&ns, &name, &uid, terminating);
                    }
                }
                Ok(watcher::Event::Delete(m)) => {
                    if let Some((ns, name, uid, _)) = parts(&m) {
                        self.delete(&ns, &name, &uid);
                    }
                }
                Err(error) => tracing::warn!(%error, %kind, "watching bound objects"),
            }
        }
    }
}
