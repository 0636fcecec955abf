//! The [`Cluster`] lookups against the Kubernetes API, by metadata only: directly
//! ([`KubeCluster`]) or from watched caches ([`CachedCluster`]).

use crate::{
    admission::{BoxFuture, Cluster, LookupError},
    inject::Owner,
};
use futures::StreamExt;
use k8s_openapi::{
    api::{apps::v1::ReplicaSet, batch::v1::Job, core::v1::Namespace},
    apimachinery::pkg::apis::meta::v1::OwnerReference,
};
use kube::{
    Api, Client, Resource,
    core::PartialObjectMeta,
    runtime::{
        WatchStreamExt,
        reflector::{self, ObjectRef, Store},
        watcher::{self, watcher},
    },
};
use std::{collections::BTreeMap, future::Future};
use tokio::task::JoinHandle;

/// Looks namespaces and owners up with metadata GETs.
#[derive(Clone)]
pub struct KubeCluster {
    client: Client,
}

impl KubeCluster {
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// The controller of a namespaced object of kind `K`, or `None` when the object is gone
    /// or has no controller.
    async fn controller_of<K>(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<OwnerReference>, LookupError>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + std::fmt::Debug
            + serde::de::DeserializeOwned,
        K::DynamicType: Default,
    {
        let api: Api<K> = Api::namespaced(self.client.clone(), namespace);
        match api.get_metadata_opt(name).await {
            Ok(Some(meta)) => Ok(meta
                .metadata
                .owner_references
                .unwrap_or_default()
                .into_iter()
                .find(|r| r.controller == Some(true))),
            Ok(None) => Ok(None),
            Err(e) => Err(LookupError(format!(
                "getting {} {namespace}/{name}: {e}",
                K::kind(&K::DynamicType::default())
            ))),
        }
    }
}

impl Cluster for KubeCluster {
    fn servers<'a>(
        &'a self,
        namespace: &'a str,
    ) -> BoxFuture<'a, Result<Vec<oxlink_crds::policy::Server>, LookupError>> {
        Box::pin(async move {
            let api: Api<oxlink_crds::policy::Server> =
                Api::namespaced(self.client.clone(), namespace);
            api.list(&Default::default())
                .await
                .map(|list| list.items)
                .map_err(|e| LookupError(format!("listing Servers in {namespace}: {e}")))
        })
    }

    fn namespace_annotations<'a>(
        &'a self,
        namespace: &'a str,
    ) -> BoxFuture<'a, Result<BTreeMap<String, String>, LookupError>> {
        Box::pin(async move {
            let api: Api<Namespace> = Api::all(self.client.clone());
            let meta = api
                .get_metadata(namespace)
                .await
                .map_err(|e| LookupError(format!("getting namespace {namespace}: {e}")))?;
            Ok(meta.metadata.annotations.unwrap_or_default())
        })
    }

    fn owner<'a>(
        &'a self,
        namespace: &'a str,
        controller: &'a OwnerReference,
    ) -> BoxFuture<'a, Result<Owner, LookupError>> {
        Box::pin(async move {
            let parent = match controller.kind.as_str() {
                "ReplicaSet" => {
                    self.controller_of::<ReplicaSet>(namespace, &controller.name)
                        .await?
                }
                "Job" => {
                    self.controller_of::<Job>(namespace, &controller.name)
                        .await?
                }
                _ => None,
            };
            Ok(resolve(controller, parent))
        })
    }
}

/// The workload to name: the controller's Deployment or CronJob if it has one, else itself.
fn resolve(controller: &OwnerReference, parent: Option<OwnerReference>) -> Owner {
    let owner = match parent {
        Some(p) if matches!(p.kind.as_str(), "Deployment" | "CronJob") => p,
        _ => controller.clone(),
    };
    Owner {
        kind: owner.kind,
        name: owner.name,
    }
}

fn controller_ref(meta: &kube::api::ObjectMeta) -> Option<OwnerReference> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
        .cloned()
}

/// Namespaces, ReplicaSets and Jobs by metadata, kept by watches, so that a review needs no
/// API call; an object the cache does not have yet (a ReplicaSet created a moment ago) is
/// fetched directly.
#[derive(Clone)]
pub struct CachedCluster {
    namespaces: Store<PartialObjectMeta<Namespace>>,
    replicasets: Store<PartialObjectMeta<ReplicaSet>>,
    jobs: Store<PartialObjectMeta<Job>>,
    api: KubeCluster,
}

impl CachedCluster {
    /// Starts the watches. The future resolves once every cache has its first full list; the
    /// watch tasks, by name, are for the caller to keep an eye on (they never end by themselves).
    pub fn spawn(
        client: Client,
    ) -> (
        Self,
        impl Future<Output = ()> + Send + 'static,
        [(&'static str, JoinHandle<()>); 3],
    ) {
        let (namespaces, n) = watch::<Namespace>(&client, true);
        let (replicasets, r) = watch::<ReplicaSet>(&client, false);
        let (jobs, j) = watch::<Job>(&client, false);
        let tasks = [
            ("the Namespace metadata watch", n),
            ("the ReplicaSet metadata watch", r),
            ("the Job metadata watch", j),
        ];
        let synced = {
            let (n, r, j) = (namespaces.clone(), replicasets.clone(), jobs.clone());
            async move {
                let _ = n.wait_until_ready().await;
                let _ = r.wait_until_ready().await;
                let _ = j.wait_until_ready().await;
            }
        };
        let cache = Self {
            namespaces,
            replicasets,
            jobs,
            api: KubeCluster::new(client),
        };
        (cache, synced, tasks)
    }

    /// Objects in the caches: namespaces, ReplicaSets, Jobs.
    pub fn sizes(&self) -> (usize, usize, usize) {
        (
            self.namespaces.state().len(),
            self.replicasets.state().len(),
            self.jobs.state().len(),
        )
    }
}

/// Drops the metadata no lookup reads before it is cached: managed fields (most of the bytes of
/// a typical object's metadata), labels, and annotations unless `keep_annotations` (namespaces
/// keep theirs; ReplicaSets and Jobs are only asked for their controller).
pub fn trim<K>(object: &mut PartialObjectMeta<K>, keep_annotations: bool) {
    let meta = &mut object.metadata;
    meta.managed_fields = None;
    meta.labels = None;
    meta.finalizers = None;
    if !keep_annotations {
        meta.annotations = None;
    }
}

/// A metadata reflector for `K`, driven by a background task.
fn watch<K>(
    client: &Client,
    keep_annotations: bool,
) -> (Store<PartialObjectMeta<K>>, JoinHandle<()>)
where
    K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone + Send + Sync,
{
    let api: Api<PartialObjectMeta<K>> = Api::all(client.clone());
    let (store, writer) = reflector::store();
    let events = watcher(api, watcher::Config::default())
        .modify(move |object| trim(object, keep_annotations));
    let stream = reflector::reflector(writer, events).default_backoff();
    let task = tokio::spawn(async move {
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            if let Err(error) = event {
                tracing::warn!(%error, kind = %K::kind(&K::DynamicType::default()), "metadata watch");
            }
        }
    });
    (store, task)
}

impl Cluster for CachedCluster {
    /// Never from a cache: see [`Cluster::servers`].
    fn servers<'a>(
        &'a self,
        namespace: &'a str,
    ) -> BoxFuture<'a, Result<Vec<oxlink_crds::policy::Server>, LookupError>> {
        self.api.servers(namespace)
    }

    fn namespace_annotations<'a>(
        &'a self,
        namespace: &'a str,
    ) -> BoxFuture<'a, Result<BTreeMap<String, String>, LookupError>> {
        match self.namespaces.get(&ObjectRef::new(namespace)) {
            Some(ns) => {
                let annotations = ns.metadata.annotations.clone().unwrap_or_default();
                Box::pin(async move { Ok(annotations) })
            }
            None => self.api.namespace_annotations(namespace),
        }
    }

    fn owner<'a>(
        &'a self,
        namespace: &'a str,
        controller: &'a OwnerReference,
    ) -> BoxFuture<'a, Result<Owner, LookupError>> {
        let cached = match controller.kind.as_str() {
            "ReplicaSet" => self
                .replicasets
                .get(&ObjectRef::new(&controller.name).within(namespace))
                .map(|rs| controller_ref(&rs.metadata)),
            "Job" => self
                .jobs
                .get(&ObjectRef::new(&controller.name).within(namespace))
                .map(|job| controller_ref(&job.metadata)),
            _ => Some(None),
        };
        match cached {
            Some(parent) => {
                let owner = resolve(controller, parent);
                Box::pin(async move { Ok(owner) })
            }
            None => self.api.owner(namespace, controller),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trimming_keeps_what_lookups_read() {
        let meta = serde_json::json!({
            "apiVersion": "meta.k8s.io/v1",
            "kind": "PartialObjectMetadata",
            "metadata": {
                "name": "web-5d8f", "namespace": "shop",
                "labels": {"app": "web"},
                "annotations": {"deployment.kubernetes.io/revision": "1"},
                "finalizers": ["x"],
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
                    "name": "web", "uid": "1", "controller": true}],
                "managedFields": [{"manager": "kube-controller-manager", "operation": "Update"}],
            },
        });
        let mut rs: PartialObjectMeta<ReplicaSet> = serde_json::from_value(meta.clone()).unwrap();
        trim(&mut rs, false);
        assert_eq!(rs.metadata.name.as_deref(), Some("web-5d8f"));
        assert_eq!(
            controller_ref(&rs.metadata).map(|r| r.name),
            Some("web".to_string())
        );
        assert!(rs.metadata.managed_fields.is_none());
        assert!(rs.metadata.labels.is_none());
        assert!(rs.metadata.annotations.is_none());
        assert!(rs.metadata.finalizers.is_none());
        let mut ns: PartialObjectMeta<Namespace> = serde_json::from_value(meta).unwrap();
        trim(&mut ns, true);
        assert_eq!(
            ns.metadata.annotations.unwrap()["deployment.kubernetes.io/revision"],
            "1"
        );
        assert!(ns.metadata.managed_fields.is_none());
    }
}
