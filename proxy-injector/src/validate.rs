//! The validating routes of the admission server: `/validate/serviceprofile` (Linkerd's
//! `linkerd-sp-validator`) and `/validate/policy` (Linkerd's `linkerd-policy-validator`).
//!
//! They deny what the CRD schemas cannot express — a path regex the proxy cannot compile, a
//! retry budget the proxy would discard, a Server with both or neither selectors, an
//! AuthorizationPolicy aimed at a kind nothing enforces — each with a message that names the
//! resource and the field. Everything else, other kinds and operations included, is allowed.
//! The checks are pure functions of the object; no cluster lookup is made.

mod net;
mod policy;
mod service_profile;

use crate::admission::{self, ReviewError};
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

    /// Answers one review body.
    pub fn review(self, body: &[u8]) -> Result<Validated, ReviewError> {
        let request = admission::decode(body)?;
        let verdict = self.verdict(&request);
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
