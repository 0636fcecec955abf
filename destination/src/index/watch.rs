//! One watch task per kind, written once for every kind the index keeps.

use super::{IndexResource, SharedIndex};
use futures::StreamExt;
use kube::{
    Api, Client, ResourceExt,
    api::{ApiResource, DynamicObject},
    runtime::{WatchStreamExt, watcher},
};
use oxlink_admin::Latch;

/// Watches every `K` in the cluster and keeps the index's copy current: a (re)list replaces
/// them all, an event applies or deletes one. `synced` is released after the first list.
///
/// Objects are read as untyped JSON and converted one by one, so an object that does not
/// deserialize is skipped (and logged) instead of stalling the watch.
pub fn spawn_watch<K: IndexResource>(
    client: Client,
    index: SharedIndex,
    synced: Latch,
) -> tokio::task::JoinHandle<()> {
    let kind = K::kind(&()).into_owned();
    let api: Api<DynamicObject> = Api::all_with(client, &ApiResource::erase::<K>(&()));
    tokio::spawn(async move {
        let mut first = true;
        let mut listed: Vec<K> = Vec::new();
        let mut events = watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        while let Some(event) = events.next().await {
            match event {
                Ok(watcher::Event::Init) => listed.clear(),
                Ok(watcher::Event::InitApply(obj)) => listed.extend(typed::<K>(&kind, obj)),
                Ok(watcher::Event::InitDone) => {
                    index.write().reset(&listed);
                    tracing::debug!(%kind, count = listed.len(), "listed");
                    listed = Vec::new();
                    if first {
                        first = false;
                        synced.release();
                        tracing::info!(%kind, "watch synced");
                    }
                }
                Ok(watcher::Event::Apply(obj)) => {
                    if let Some(obj) = typed::<K>(&kind, obj) {
                        index.write().apply(&obj);
                    }
                }
                Ok(watcher::Event::Delete(obj)) => {
                    let ns = obj.namespace().unwrap_or_default();
                    index.write().delete::<K>(&ns, &obj.name_any());
                }
                Err(error) => tracing::warn!(%kind, %error, "watch failed; retrying"),
            }
        }
    })
}

fn typed<K: IndexResource>(kind: &str, obj: DynamicObject) -> Option<K> {
    let name = format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any());
    match serde_json::to_value(obj).and_then(serde_json::from_value::<K>) {
        Ok(obj) => Some(obj),
        Err(error) => {
            tracing::warn!(%kind, %name, %error, "skipping an object that does not deserialize");
            None
        }
    }
}
