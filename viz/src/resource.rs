//! Linkerd's resource words: `deploy/web`, `deployments`, `po`, `ns/todo`, `svc/backend`.

/// A kind of resource `viz` reports on, with the label the relabelled proxy metrics carry for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Namespace,
    Deployment,
    StatefulSet,
    DaemonSet,
    ReplicaSet,
    Job,
    Pod,
    Service,
    Authority,
}

/// What went wrong with a resource word.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResourceError {
    #[error("cannot find Kubernetes canonical name from friendly name [{0}]")]
    UnknownKind(String),
    #[error("invalid resource {0:?}: expected TYPE or TYPE/NAME")]
    Malformed(String),
    #[error("{0} is only supported as a --to resource")]
    OnlyTo(&'static str),
}

const WORDS: &[(Kind, &[&str])] = &[
    (Kind::Namespace, &["ns", "namespace", "namespaces"]),
    (Kind::Deployment, &["deploy", "deployment", "deployments"]),
    (Kind::StatefulSet, &["sts", "statefulset", "statefulsets"]),
    (Kind::DaemonSet, &["ds", "daemonset", "daemonsets"]),
    (Kind::ReplicaSet, &["rs", "replicaset", "replicasets"]),
    (Kind::Job, &["job", "jobs"]),
    (Kind::Pod, &["po", "pod", "pods"]),
    (Kind::Service, &["svc", "service", "services"]),
    (Kind::Authority, &["au", "authority", "authorities"]),
];

impl Kind {
    /// The kind named by a Linkerd word (singular, plural or short).
    pub fn parse(word: &str) -> Result<Self, ResourceError> {
        let lower = word.to_ascii_lowercase();
        WORDS
            .iter()
            .find(|(_, words)| words.contains(&lower.as_str()))
            .map(|(k, _)| *k)
            .ok_or_else(|| ResourceError::UnknownKind(word.to_string()))
    }

    /// The singular name, as in `-o json`'s `kind`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Namespace => "namespace",
            Kind::Deployment => "deployment",
            Kind::StatefulSet => "statefulset",
            Kind::DaemonSet => "daemonset",
            Kind::ReplicaSet => "replicaset",
            Kind::Job => "job",
            Kind::Pod => "pod",
            Kind::Service => "service",
            Kind::Authority => "authority",
        }
    }

    /// The label of the source's series (`deployment="web"`), as the viz relabelling names it.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Job => "k8s_job",
            other => other.name(),
        }
    }

    /// The label of the destination in outbound series (`dst_deployment="web"`).
    pub fn dst_label(self) -> String {
        match self {
            Kind::Job => "dst_k8s_job".into(),
            other => format!("dst_{}", other.name()),
        }
    }
}

// Kinds travel as their singular names (`"deployment"`), in the metrics API's JSON.
impl serde::Serialize for Kind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for Kind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let word = String::deserialize(d)?;
        Kind::parse(&word).map_err(serde::de::Error::custom)
    }
}

/// A resource: a kind, maybe a name, maybe a namespace (`-n`, or the target's).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resource {
    pub kind: Kind,
    pub name: Option<String>,
    pub namespace: Option<String>,
}

impl Resource {
    /// Parses `TYPE` or `TYPE/NAME`.
    pub fn parse(word: &str) -> Result<Self, ResourceError> {
        let (kind, name) = match word.split_once('/') {
            Some((k, n)) if !n.is_empty() && !n.contains('/') => (k, Some(n.to_string())),
            Some(_) => return Err(ResourceError::Malformed(word.to_string())),
            None => (word, None),
        };
        Ok(Self {
            kind: Kind::parse(kind)?,
            name,
            namespace: None,
        })
    }

    /// The resource(s) of a command line: `TYPE`, `TYPE NAME…`, `TYPE/NAME…`.
    pub fn parse_args(args: &[String]) -> Result<Vec<Self>, ResourceError> {
        match args {
            [] => Err(ResourceError::Malformed(String::new())),
            [first, rest @ ..] if !first.contains('/') && !rest.is_empty() => {
                let kind = Kind::parse(first)?;
                Ok(rest
                    .iter()
                    .map(|n| Self {
                        kind,
                        name: Some(n.clone()),
                        namespace: None,
                    })
                    .collect())
            }
            all => all.iter().map(|a| Self::parse(a)).collect(),
        }
    }

    /// `deploy/web` → `deployment/web`, as Linkerd prints it in messages.
    pub fn display(&self) -> String {
        match &self.name {
            Some(n) => format!("{}/{n}", self.kind.name()),
            None => self.kind.name().to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linkerds_words_name_kinds() {
        for (word, kind) in [
            ("deploy", Kind::Deployment),
            ("deployments", Kind::Deployment),
            ("po", Kind::Pod),
            ("NS", Kind::Namespace),
            ("svc", Kind::Service),
            ("sts", Kind::StatefulSet),
        ] {
            assert_eq!(Kind::parse(word), Ok(kind), "{word}");
        }
        assert_eq!(
            Kind::parse("widgets").unwrap_err().to_string(),
            "cannot find Kubernetes canonical name from friendly name [widgets]"
        );
        assert_eq!(Kind::Job.label(), "k8s_job");
        assert_eq!(Kind::Deployment.dst_label(), "dst_deployment");
    }

    #[test]
    fn resources_parse_in_both_shapes() {
        let r = Resource::parse("deploy/web").unwrap();
        assert_eq!((r.kind, r.name.as_deref()), (Kind::Deployment, Some("web")));
        assert_eq!(Resource::parse("ns").unwrap().name, None);
        assert!(Resource::parse("deploy/").is_err());
        assert!(Resource::parse("deploy/a/b").is_err());
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let two = Resource::parse_args(&args(&["deploy", "a", "b"])).unwrap();
        assert_eq!(two.len(), 2);
        assert_eq!(two[1].name.as_deref(), Some("b"));
        let mixed = Resource::parse_args(&args(&["deploy/a", "po/b"])).unwrap();
        assert_eq!(mixed[1].kind, Kind::Pod);
        assert!(Resource::parse_args(&[]).is_err());
    }
}
