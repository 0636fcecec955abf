//! Mesh identity names: `<sa>.<ns>.serviceaccount.identity.<control-ns>.<trust-domain>`.

use oxlink_crds::names::identity::{identity_name, service_account_identity};

/// The control-plane namespace and trust domain that every identity name ends with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityDomain {
    control_namespace: String,
    trust_domain: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NameError {
    #[error("the trust domain {0:?} is not a DNS-1123 subdomain")]
    TrustDomain(String),
    #[error("the control-plane namespace {0:?} is not a DNS-1123 label")]
    Namespace(String),
    #[error("{0:?} is not a ServiceAccount username (system:serviceaccount:<ns>:<sa>)")]
    Username(String),
}

/// Identity names longer than this (a DNS name has at most 253 characters) are cut in logs and
/// error messages: the requested identity is chosen by an unauthenticated caller.
pub(crate) const LOGGED_NAME_CHARS: usize = 253;

/// `name` as logged: at most [`LOGGED_NAME_CHARS`] characters, then `…(N bytes)`.
pub(crate) fn truncated(name: &str) -> std::borrow::Cow<'_, str> {
    match name.char_indices().nth(LOGGED_NAME_CHARS) {
        None => name.into(),
        Some((end, _)) => format!("{}…({} bytes)", &name[..end], name.len()).into(),
    }
}

impl IdentityDomain {
    pub fn new(control_namespace: &str, trust_domain: &str) -> Result<Self, NameError> {
        if !is_dns1123_label(control_namespace) {
            return Err(NameError::Namespace(control_namespace.to_string()));
        }
        if !trust_domain.split('.').all(is_dns1123_label) || trust_domain.len() > 253 {
            return Err(NameError::TrustDomain(trust_domain.to_string()));
        }
        Ok(Self {
            control_namespace: control_namespace.to_string(),
            trust_domain: trust_domain.to_string(),
        })
    }

    /// The identity of ServiceAccount `sa` in namespace `ns`.
    pub fn service_account(&self, sa: &str, ns: &str) -> String {
        service_account_identity(sa, ns, &self.control_namespace, &self.trust_domain)
    }

    /// The identity a TokenReview username proves, with the ServiceAccount's (name, namespace).
    /// The username must be `system:serviceaccount:<ns>:<sa>`, each part a DNS-1123 label.
    pub fn from_username(&self, username: &str) -> Result<(String, String, String), NameError> {
        let bad = || NameError::Username(username.to_string());
        let parts = username.split(':').collect::<Vec<_>>();
        let [system, kind, ns, sa] = parts.as_slice() else {
            return Err(bad());
        };
        if *system != "system" || ![kind, ns, sa].iter().all(|p| is_dns1123_label(p)) {
            return Err(bad());
        }
        // The third label is the username's kind, as Linkerd derives it.
        let identity = identity_name(sa, ns, kind, &self.control_namespace, &self.trust_domain);
        Ok((identity, sa.to_string(), ns.to_string()))
    }

    pub fn control_namespace(&self) -> &str {
        &self.control_namespace
    }

    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }
}

fn is_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_linkerd_identity_names() {
        let d = IdentityDomain::new("linkerd", "cluster.local").unwrap();
        assert_eq!(
            d.service_account("linkerd-identity", "linkerd"),
            "linkerd-identity.linkerd.serviceaccount.identity.linkerd.cluster.local"
        );
        let (id, sa, ns) = d
            .from_username("system:serviceaccount:emojivoto:web")
            .unwrap();
        assert_eq!(
            id,
            "web.emojivoto.serviceaccount.identity.linkerd.cluster.local"
        );
        assert_eq!((sa.as_str(), ns.as_str()), ("web", "emojivoto"));
    }

    #[test]
    fn refuses_bad_usernames_and_domains() {
        let d = IdentityDomain::new("linkerd", "cluster.local").unwrap();
        for u in [
            "admin",
            "system:serviceaccount:ns",
            "system:serviceaccount:ns:sa:extra",
            "user:serviceaccount:ns:sa",
            "system:serviceaccount:NS:sa",
            "system:serviceaccount:ns:",
        ] {
            assert!(d.from_username(u).is_err(), "{u}");
        }
        assert!(IdentityDomain::new("Linkerd", "cluster.local").is_err());
        assert!(IdentityDomain::new("linkerd", "cluster..local").is_err());
        assert!(IdentityDomain::new("linkerd", "").is_err());
    }
}
