//! The validating routes of the admission server: `/validate/serviceprofile` (Linkerd's
//! `linkerd-sp-validator`) and `/validate/policy` (Linkerd's `linkerd-policy-validator`).
//!
//! They deny what the CRD schemas cannot express — a path regex the proxy cannot compile, a
//! retry budget the proxy would discard, a Server with both or neither selectors, an
//! AuthorizationPolicy aimed at a kind nothing enforces — each with a message that names the
//! resource and the field. Everything else, other kinds and operations included, is allowed.
//! The checks are pure functions of the object, but for one: like Linkerd's, the policy webhook
//! refuses a Server that overlaps another of its namespace (same port, selectors that select a
//! common pod), listing the namespace's Servers from the API server ([`Webhook::review_in`]).

mod policy;
mod service_profile;

use crate::admission::{self, Cluster, ReviewError};
use serde_json::Value;

/// Which validating webhook a review arrived on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Webhook {
    /// ServiceProfiles (`linkerd.io`).
    ServiceProfile,
    /// The policy resources (`policy.linkerd.io`).
    Policy,
}

/// What was decided for one review.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A kind or operation this webhook does not check.
    Ignored,
    Allowed,
    /// Denied, with the message the API server shows.
    Denied(String),
}

/// The answer to one review and what was decided.
#[derive(Debug)]
pub struct Validated {
    pub body: Vec<u8>,
    /// The reviewed object's kind.
    pub kind: String,
    pub verdict: Verdict,
}

// === impl Webhook ===

impl Webhook {
    /// The label value in metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ServiceProfile => "serviceprofile",
            Self::Policy => "policy",
        }
    }

    /// Answers one review body with the checks of the object alone.
    pub fn review(self, body: &[u8]) -> Result<Validated, ReviewError> {
        let request = admission::decode(body)?;
        let verdict = self.verdict(&request);
        Self::answer(request, verdict)
    }

    /// Answers one review body: the checks of the object, then, for a Server that passes them,
    /// whether it overlaps another Server of its namespace in `cluster`. A failed lookup denies.
    pub async fn review_in(
        self,
        body: &[u8],
        cluster: &dyn Cluster,
    ) -> Result<Validated, ReviewError> {
        let request = admission::decode(body)?;
        let mut verdict = self.verdict(&request);
        let is_server = request.kind.group == oxlink_crds::names::groups::POLICY
            && request.kind.kind == <oxlink_crds::policy::Server as kube::Resource>::kind(&());
        if self == Self::Policy && is_server && verdict == Verdict::Allowed {
            verdict = Self::server_overlaps(&request, cluster).await;
        }
        Self::answer(request, verdict)
    }

    /// Linkerd's overlap check of an (otherwise valid) Server against its namespace's Servers.
    async fn server_overlaps(request: &admission::Request, cluster: &dyn Cluster) -> Verdict {
        let object: Value = match request
            .object
            .as_deref()
            .map(|raw| serde_json::from_str(raw.get()))
        {
            Some(Ok(object)) => object,
            _ => return Verdict::Allowed,
        };
        let Ok(spec) = serde_json::from_value(object["spec"].clone()) else {
            return Verdict::Allowed;
        };
        let name = request
            .name
            .as_deref()
            .or_else(|| object.pointer("/metadata/name").and_then(Value::as_str))
            .unwrap_or_default();
        let ns = request
            .namespace
            .as_deref()
            .or_else(|| {
                object
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
            })
            .unwrap_or_default();
        match cluster.servers(ns).await {
            // Linkerd's message, as it is: it names the other Server and the port.
            Ok(servers) => match policy::overlapping_server(ns, name, &spec, &servers) {
                Ok(()) => Verdict::Allowed,
                Err(message) => Verdict::Denied(message),
            },
            Err(e) => Verdict::Denied(format!("Server {name:?}: {e}")),
        }
    }

    fn answer(request: admission::Request, verdict: Verdict) -> Result<Validated, ReviewError> {
        let response = match &verdict {
            Verdict::Ignored | Verdict::Allowed => admission::allow(&request.uid, &[]),
            Verdict::Denied(message) => admission::deny(&request.uid, 400, message.clone()),
        };
        Ok(Validated {
            body: admission::encode(response)?,
            kind: request.kind.kind,
            verdict,
        })
    }

    fn verdict(self, request: &admission::Request) -> Verdict {
        if !matches!(request.operation.as_str(), "CREATE" | "UPDATE") {
            return Verdict::Ignored;
        }
        let (group, kind) = (request.kind.group.as_str(), request.kind.kind.as_str());
        let object = match request
            .object
            .as_deref()
            .map(|raw| serde_json::from_str(raw.get()))
        {
            None => Value::Null,
            Some(Ok(object)) => object,
            Some(Err(e)) => return Verdict::Denied(format!("the object does not parse: {e}")),
        };
        let object = &object;
        let name = request
            .name
            .as_deref()
            .or_else(|| object.pointer("/metadata/name").and_then(Value::as_str))
            .unwrap_or_default();
        let checked = match self {
            Self::ServiceProfile if group == oxlink_crds::names::groups::LINKERD => match kind {
                "ServiceProfile" => service_profile::validate(name, object),
                _ => return Verdict::Ignored,
            },
            Self::Policy if group == oxlink_crds::names::groups::POLICY => {
                match policy::validate(kind, object) {
                    Some(result) => result,
                    None => return Verdict::Ignored,
                }
            }
            _ => return Verdict::Ignored,
        };
        match checked {
            Ok(()) => Verdict::Allowed,
            Err(reason) => Verdict::Denied(format!("{kind} {name:?}: {reason}")),
        }
    }
}

#[cfg(test)]
mod tests;
