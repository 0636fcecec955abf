//! ExternalWorkloads as inbound policy sees them: the labels that Servers'
//! `externalWorkloadSelector`s match, the named ports Servers may name, and the same
//! default-policy, require-identity and opaque-ports annotations as a pod's. They have no probes.

use super::{PodPolicy, PolicyIndex};
use crate::{index::ObjKey, ports::PortSet};
use oxlink_crds::{ExternalWorkload, names::annotations};
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ExternalPolicy {
    pub(crate) labels: BTreeMap<String, String>,
    /// The workload's `ports` that have a name.
    pub(crate) named_ports: Vec<(String, u16)>,
    /// `config.linkerd.io/opaque-ports`, if set (else the cluster's default opaque ports).
    pub(crate) opaque_ports: Option<PortSet>,
    pub(crate) policy: PodPolicy,
}

impl ExternalPolicy {
    fn from_workload(obj: &ExternalWorkload) -> Self {
        let named_ports: Vec<(String, u16)> = obj
            .spec
            .ports
            .iter()
            .filter_map(|p| Some((p.name.clone()?, u16::try_from(p.port).ok()?)))
            .collect();
        let named_port = |name: &str| {
            named_ports
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, port)| *port)
        };
        let annotations = obj.metadata.annotations.as_ref();
        let opaque_ports = annotations
            .and_then(|a| a.get(annotations::OPAQUE_PORTS))
            .map(|list| PortSet::parse(list, named_port));
        let policy = PodPolicy::from_annotations(annotations, named_port);
        Self {
            labels: obj.metadata.labels.clone().unwrap_or_default(),
            named_ports,
            opaque_ports,
            policy,
        }
    }
}

impl PolicyIndex {
    /// Applies an ExternalWorkload: its inbound policies change if what policy reads from it did.
    pub(crate) fn apply_external(&mut self, key: &ObjKey, obj: &ExternalWorkload) {
        let info = ExternalPolicy::from_workload(obj);
        if self.externals.get(key) == Some(&info) {
            return;
        }
        self.externals.insert(key.clone(), info);
        self.dirty_externals.insert(key.clone());
    }

    /// Forgets an ExternalWorkload: its inbound streams end.
    pub(crate) fn delete_external(&mut self, key: &ObjKey) {
        if self.externals.remove(key).is_some() {
            self.dirty_externals.insert(key.clone());
        }
    }
}
