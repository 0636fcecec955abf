//! Kubernetes Events identity records: issued leaves and issuer updates.

use k8s_openapi::api::core::v1::ObjectReference;
use oxlink_crds::names::control_plane::{IDENTITY_COMPONENT, IDENTITY_DEPLOYMENT};
use oxlink_kube::events::{Event, Recorder, Reporter};
use parking_lot::Mutex;
use std::sync::Arc;

/// Where events go: the API server, a list (tests), or nowhere.
#[derive(Clone)]
pub struct Events {
    sink: Sink,
}

#[derive(Clone)]
enum Sink {
    Disabled,
    Recorded(Arc<Mutex<Vec<RecordedEvent>>>),
    Kube(Arc<KubeSink>),
}

struct KubeSink {
    recorder: Recorder,
    deployment: ObjectReference,
}

/// An event kept by [`Events::recorded`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedEvent {
    pub warning: bool,
    pub reason: &'static str,
    pub note: String,
    /// `namespace/name` of the object the event is about.
    pub object: String,
}

impl Events {
    pub fn disabled() -> Self {
        Self {
            sink: Sink::Disabled,
        }
    }

    /// Events kept in memory, for tests to inspect.
    pub fn recorded() -> (Self, Arc<Mutex<Vec<RecordedEvent>>>) {
        let list = Arc::new(Mutex::new(Vec::new()));
        (
            Self {
                sink: Sink::Recorded(list.clone()),
            },
            list,
        )
    }

    /// Events published to the API server; issuer events are recorded on the identity
    /// Deployment in `namespace`.
    pub fn kube(client: kube::Client, namespace: &str) -> Self {
        let reporter = Reporter {
            controller: IDENTITY_COMPONENT.to_string(),
            instance: std::env::var("HOSTNAME").ok(),
        };
        Self {
            sink: Sink::Kube(Arc::new(KubeSink {
                recorder: Recorder::new(client, reporter),
                deployment: ObjectReference {
                    api_version: Some("apps/v1".into()),
                    kind: Some("Deployment".into()),
                    name: Some(IDENTITY_DEPLOYMENT.into()),
                    namespace: Some(namespace.into()),
                    ..Default::default()
                },
            })),
        }
    }

    /// Normal `IssuedLeafCertificate` on the ServiceAccount.
    pub fn issued(&self, sa: &str, ns: &str, note: String) {
        let object = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("ServiceAccount".into()),
            name: Some(sa.into()),
            namespace: Some(ns.into()),
            ..Default::default()
        };
        self.publish(
            false,
            "IssuedLeafCertificate",
            "Certify",
            note,
            Some(object),
        );
    }

    /// Normal `IssuerUpdated`.
    pub fn issuer_updated(&self, note: String) {
        self.publish(false, "IssuerUpdated", "Reload", note, None);
    }

    /// Warning `IssuerUpdateSkipped`: a new issuer was refused and the previous one kept.
    pub fn issuer_update_skipped(&self, note: String) {
        self.publish(true, "IssuerUpdateSkipped", "Reload", note, None);
    }

    /// Warning `IssuerValidationFailed`: the loaded issuer can no longer sign.
    pub fn issuer_validation_failed(&self, note: String) {
        self.publish(true, "IssuerValidationFailed", "Certify", note, None);
    }

    fn publish(
        &self,
        warning: bool,
        reason: &'static str,
        action: &'static str,
        note: String,
        object: Option<ObjectReference>,
    ) {
        match &self.sink {
            Sink::Disabled => {}
            Sink::Recorded(list) => {
                let object = object
                    .map(|o| {
                        format!(
                            "{}/{}",
                            o.namespace.unwrap_or_default(),
                            o.name.unwrap_or_default()
                        )
                    })
                    .unwrap_or_else(|| format!("deployment/{IDENTITY_DEPLOYMENT}"));
                list.lock().push(RecordedEvent {
                    warning,
                    reason,
                    note,
                    object,
                });
            }
            Sink::Kube(kube) => {
                let recorder = kube.recorder.clone();
                let object = object.unwrap_or_else(|| kube.deployment.clone());
                let event = Event {
                    warning,
                    reason: reason.into(),
                    action: action.into(),
                    note,
                };
                // Recording an event never delays or fails the work it describes.
                tokio::spawn(async move {
                    if let Err(error) = recorder.publish(&event, &object).await {
                        tracing::warn!(%error, reason = event.reason, "recording an event failed");
                    }
                });
            }
        }
    }
}
