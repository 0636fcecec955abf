//! Kubernetes Events on the workload a pod belongs to: `Injected`, and `InjectionSkipped` when
//! injection was asked for but could not be done.

use crate::{
    admission::{Decision, Reviewed},
    inject::{Owner, SkipReason},
};
use k8s_openapi::api::core::v1::ObjectReference;
use oxlink_kube::events::{Event, Recorder, Reporter};

/// Publishes injection events through the API server.
#[derive(Clone)]
pub struct Events {
    recorder: Recorder,
}

/// The API version of an owner kind, for the event's object reference.
fn api_version(kind: &str) -> &'static str {
    match kind {
        "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet" => "apps/v1",
        "Job" | "CronJob" => "batch/v1",
        _ => "v1",
    }
}

// === impl Events ===

impl Events {
    pub fn new(client: kube::Client) -> Self {
        let reporter = Reporter {
            controller: oxlink_crds::names::control_plane::PROXY_INJECTOR_SERVICE.to_string(),
            instance: std::env::var("HOSTNAME").ok(),
        };
        Self {
            recorder: Recorder::new(client, reporter),
        }
    }

    /// The event for a review, if it deserves one: pods with an owner that were injected, or
    /// skipped although injection was asked for.
    pub fn event_for(reviewed: &Reviewed) -> Option<(Event, ObjectReference)> {
        let owner: &Owner = reviewed.owner.as_ref()?;
        let (reason, note) = match &reviewed.decision {
            Decision::Injected => ("Injected", "Linkerd sidecar proxy injected".to_string()),
            Decision::Skipped(reason) if *reason != SkipReason::NotEnabled => (
                "InjectionSkipped",
                format!("Linkerd sidecar proxy injection skipped: {reason}"),
            ),
            _ => return None,
        };
        let event = Event {
            warning: false,
            reason: reason.into(),
            action: "Inject".into(),
            note,
        };
        let object = ObjectReference {
            api_version: Some(api_version(&owner.kind).into()),
            kind: Some(owner.kind.clone()),
            name: Some(owner.name.clone()),
            namespace: Some(reviewed.namespace.clone()),
            ..Default::default()
        };
        Some((event, object))
    }

    /// Records the review's event in the background; never delays the response.
    pub fn record(&self, reviewed: &Reviewed) {
        let Some((event, object)) = Self::event_for(reviewed) else {
            return;
        };
        let recorder = self.recorder.clone();
        tokio::spawn(async move {
            if let Err(error) = recorder.publish(&event, &object).await {
                tracing::warn!(%error, reason = event.reason, "recording an event failed");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reviewed(decision: Decision, owner: Option<Owner>) -> Reviewed {
        Reviewed {
            body: Vec::new(),
            decision,
            owner,
            namespace: "shop".into(),
        }
    }

    fn deployment() -> Option<Owner> {
        Some(Owner {
            kind: "Deployment".into(),
            name: "cart".into(),
        })
    }

    #[test]
    fn injected_and_skipped_pods_get_events_on_their_workload() {
        let (event, object) =
            Events::event_for(&reviewed(Decision::Injected, deployment())).unwrap();
        assert_eq!(event.reason, "Injected");
        assert_eq!(object.api_version.as_deref(), Some("apps/v1"));
        assert_eq!(object.name.as_deref(), Some("cart"));
        assert_eq!(object.namespace.as_deref(), Some("shop"));

        let skipped = reviewed(Decision::Skipped(SkipReason::HostNetwork), deployment());
        let (event, _) = Events::event_for(&skipped).unwrap();
        assert_eq!(event.reason, "InjectionSkipped");
        assert_eq!(
            event.note,
            "Linkerd sidecar proxy injection skipped: hostNetwork is enabled"
        );
    }

    #[test]
    fn pods_nobody_asked_to_inject_and_ownerless_pods_get_none() {
        let not_asked = reviewed(Decision::Skipped(SkipReason::NotEnabled), deployment());
        assert!(Events::event_for(&not_asked).is_none());
        assert!(Events::event_for(&reviewed(Decision::Injected, None)).is_none());
        assert!(Events::event_for(&reviewed(Decision::Ignored, deployment())).is_none());
    }
}
