//! Nodes: their zones, for topology-aware endpoint filtering.

use super::{Index, IndexResource, ObjKey};
use k8s_openapi::api::core::v1::Node;
use oxlink_crds::names::labels::TOPOLOGY_ZONE;

pub(crate) fn zone(node: &Node) -> Option<String> {
    node.metadata.labels.as_ref()?.get(TOPOLOGY_ZONE).cloned()
}

impl Index {
    /// Marks every Service with subscribers on `node`, whose zone filtering may change.
    pub(super) fn mark_node_services(&mut self, node: &str) {
        for (svc, subs) in &self.endpoint_subs {
            if subs.keys().any(|f| f.node.as_deref() == Some(node)) {
                self.dirty_services.insert(svc.clone());
            }
        }
    }
}

impl IndexResource for Node {
    fn apply(index: &mut Index, obj: &Self) {
        let Some(name) = obj.metadata.name.clone() else {
            return;
        };
        let zone = zone(obj);
        if index.nodes.get(&name) == Some(&zone) {
            return;
        }
        index.nodes.insert(name.clone(), zone);
        index.mark_node_services(&name);
    }

    fn delete(index: &mut Index, key: &ObjKey) {
        if index.nodes.remove(&key.name).is_some() {
            index.mark_node_services(&key.name);
        }
    }

    fn keys(index: &Index) -> Vec<ObjKey> {
        index.nodes.keys().map(|n| ObjKey::new("", n)).collect()
    }
}
