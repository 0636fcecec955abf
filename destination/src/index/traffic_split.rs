//! TrafficSplits (`split.smi-spec.io`): the apex Service's traffic shared between backend
//! Services, served as the profile's `dstOverrides` and as the weighted backends of the default
//! outbound route, as Linkerd's SMI extension does through the ServiceProfile it writes.
//!
//! Backends are checked when the index publishes, so a split follows its Services: a backend
//! whose Service does not exist, or whose weight does not parse, is skipped (and logged once per
//! change); a split left with no backend, or only zero weights, is ignored and the apex served
//! as if there were none.

use super::{Index, IndexResource, ObjKey, profile};
use oxlink_crds::TrafficSplit;
use std::collections::{BTreeSet, HashMap};

/// A TrafficSplit as the index keeps it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct SplitInfo {
    /// The apex Service, in the split's namespace.
    apex: ObjKey,
    /// Creation time in seconds: the oldest split of an apex wins.
    created: Option<i64>,
    /// Each backend Service (in the split's namespace) and its weight in the profile's scale
    /// (ten thousand per unit), `None` if the weight does not parse.
    backends: Vec<(ObjKey, Option<u32>)>,
    /// Why backends were skipped when last checked; `None` until checked.
    problems: Option<Vec<String>>,
}

impl SplitInfo {
    fn from_split(key: &ObjKey, split: &TrafficSplit) -> Self {
        Self {
            apex: ObjKey::new(&key.ns, &split.spec.service),
            created: split
                .metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0.as_second()),
            backends: split
                .spec
                .backends
                .iter()
                .map(|b| (ObjKey::new(&key.ns, &b.service), profile::weight(&b.weight)))
                .collect(),
            problems: None,
        }
    }

    /// The Services this split names: its apex and its backends.
    fn services(&self) -> impl Iterator<Item = &ObjKey> {
        std::iter::once(&self.apex).chain(self.backends.iter().map(|(svc, _)| svc))
    }

    /// Whether the split has a backend a request can be sent to.
    fn is_valid(&self, index: &Index) -> bool {
        self.valid_backends(index).any(|(_, w)| w > 0)
    }

    fn valid_backends<'a>(&'a self, index: &'a Index) -> impl Iterator<Item = (&'a ObjKey, u32)> {
        self.backends
            .iter()
            .filter(|(svc, _)| index.services.contains_key(svc))
            .filter_map(|(svc, w)| Some((svc, (*w)?)))
    }

    /// What is wrong with the split, in words; empty if nothing is.
    fn problems(&self, index: &Index) -> Vec<String> {
        let mut problems: Vec<String> = self
            .backends
            .iter()
            .filter_map(|(svc, w)| match w {
                _ if !index.services.contains_key(svc) => {
                    Some(format!("backend Service {} not found", svc.name))
                }
                None => Some(format!("backend {} has an invalid weight", svc.name)),
                Some(_) => None,
            })
            .collect();
        if !self.is_valid(index) {
            problems.push("no backend with a weight above zero; the apex is served".into());
        }
        problems
    }
}

/// The TrafficSplits in the cluster, and which of them name each Service.
#[derive(Debug, Default)]
pub(crate) struct Splits {
    splits: HashMap<ObjKey, SplitInfo>,
    /// The splits naming each Service, as apex or backend.
    by_service: HashMap<ObjKey, BTreeSet<ObjKey>>,
}

impl Splits {
    pub(crate) fn len(&self) -> usize {
        self.splits.len()
    }

    /// Splits that have a backend to skip or are ignored, as last checked.
    pub(crate) fn invalid(&self) -> usize {
        self.splits
            .values()
            .filter(|s| s.problems.as_ref().is_some_and(|p| !p.is_empty()))
            .count()
    }

    fn remove(&mut self, key: &ObjKey) -> Option<SplitInfo> {
        let old = self.splits.remove(key)?;
        for svc in old.services() {
            if let Some(keys) = self.by_service.get_mut(svc) {
                keys.remove(key);
                if keys.is_empty() {
                    self.by_service.remove(svc);
                }
            }
        }
        Some(old)
    }

    fn insert(&mut self, key: ObjKey, info: SplitInfo) {
        for svc in info.services() {
            self.by_service
                .entry(svc.clone())
                .or_default()
                .insert(key.clone());
        }
        self.splits.insert(key, info);
    }
}

impl Index {
    /// Checks the splits that name a changed Service (or changed themselves), logs what
    /// changed in their problems, and marks their apexes when the outcome may have changed.
    pub(super) fn refresh_splits(&mut self) {
        let keys: BTreeSet<ObjKey> = self
            .dirty_services
            .iter()
            .filter_map(|svc| self.splits.by_service.get(svc))
            .flatten()
            .cloned()
            .collect();
        for key in keys {
            let Some(split) = self.splits.splits.get(&key) else {
                continue;
            };
            let problems = split.problems(self);
            if split.problems.as_ref() == Some(&problems) {
                continue;
            }
            let apex = split.apex.clone();
            if problems.is_empty() {
                if split.problems.is_some() {
                    tracing::info!(split = %format!("{}/{}", key.ns, key.name), "every backend found");
                }
            } else {
                for problem in &problems {
                    tracing::warn!(split = %format!("{}/{}", key.ns, key.name), "{problem}");
                }
            }
            if let Some(split) = self.splits.splits.get_mut(&key) {
                split.problems = Some(problems);
            }
            self.dirty_services.insert(apex);
        }
    }

    /// The weighted backends (ten thousand per unit of weight) the apex Service's traffic goes
    /// to, from its oldest valid TrafficSplit, if it has one.
    pub(crate) fn split_backends(&self, apex: &ObjKey) -> Option<Vec<(&ObjKey, u32)>> {
        let split = self
            .splits
            .by_service
            .get(apex)?
            .iter()
            .filter_map(|key| Some((key, self.splits.splits.get(key)?)))
            .filter(|(_, s)| s.apex == *apex && s.is_valid(self))
            .min_by_key(|(key, s)| (s.created.is_none(), s.created, *key))?
            .1;
        Some(split.valid_backends(self).collect())
    }

    /// The authority of a Service port, as profiles and outbound backends name it.
    pub(crate) fn service_authority(&self, svc: &ObjKey, port: u16) -> String {
        format!(
            "{}.{}.svc.{}:{port}",
            svc.name, svc.ns, self.config.cluster_domain
        )
    }
}

impl IndexResource for TrafficSplit {
    fn apply(index: &mut Index, obj: &Self) {
        let Some(key) = ObjKey::of(&obj.metadata) else {
            return;
        };
        let mut info = SplitInfo::from_split(&key, obj);
        if let Some(old) = index.splits.splits.get(&key) {
            info.problems.clone_from(&old.problems);
            if *old == info {
                return;
            }
        }
        if let Some(old) = index.splits.remove(&key) {
            index.dirty_services.insert(old.apex);
        }
        // Checked afresh at the flush: the apex is dirty, and the split names it.
        info.problems = None;
        index.dirty_services.insert(info.apex.clone());
        index.splits.insert(key, info);
    }

    fn delete(index: &mut Index, key: &ObjKey) {
        if let Some(old) = index.splits.remove(key) {
            index.dirty_services.insert(old.apex);
        }
    }

    fn keys(index: &Index) -> Vec<ObjKey> {
        index.splits.splits.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests;
