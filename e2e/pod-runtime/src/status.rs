//! A pod's status from what its processes are doing, in the shape kubelet writes.

use k8s_openapi::api::core::v1::{Container, Pod};
use parking_lot::Mutex;
use serde_json::{Value, json};
use std::{collections::BTreeMap, sync::Arc, time::SystemTime};

/// What one container's process is doing.
#[derive(Clone, Debug, Default)]
pub struct ContainerState {
    pub started_at: Option<SystemTime>,
    pub running: bool,
    /// Exit code, reason and times of the last run, if it ended.
    pub terminated: Option<Terminated>,
    pub last_terminated: Option<Terminated>,
    pub restarts: u32,
    /// The startup probe passed (or there is none) while running.
    pub started: bool,
    pub ready: bool,
    pub waiting: Option<String>,
    pub pid: Option<u32>,
}

#[derive(Clone, Debug)]
pub struct Terminated {
    pub exit_code: i32,
    pub reason: String,
    pub started_at: SystemTime,
    pub finished_at: SystemTime,
}

pub type Shared = Arc<Mutex<ContainerState>>;

/// The kind of a container in the pod's start order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An init container that runs to completion.
    Init,
    /// An init container with `restartPolicy: Always`: a native sidecar.
    Sidecar,
    Main,
}

/// One container of the pod and its state.
#[derive(Clone, Debug)]
pub struct Tracked {
    pub spec: Container,
    pub kind: Kind,
    pub state: Shared,
}

fn time(t: SystemTime) -> String {
    oxlink_tls::utc_rfc3339(t)
}

fn terminated(t: &Terminated) -> Value {
    json!({"terminated": {
        "exitCode": t.exit_code, "reason": t.reason,
        "startedAt": time(t.started_at), "finishedAt": time(t.finished_at),
    }})
}

fn container_status(uid: &str, t: &Tracked) -> Value {
    let s = t.state.lock();
    let state = if s.running {
        json!({"running": {"startedAt": s.started_at.map(time)}})
    } else if let Some(term) = &s.terminated {
        terminated(term)
    } else {
        json!({"waiting": {"reason": s.waiting.clone().unwrap_or_else(|| "PodInitializing".into())}})
    };
    let image = t.spec.image.clone().unwrap_or_default();
    json!({
        "name": t.spec.name,
        "image": image,
        "imageID": image,
        "containerID": format!("localkube://{uid}/{}", t.spec.name),
        "ready": s.ready,
        "started": s.running && s.started,
        "restartCount": s.restarts,
        "state": state,
        "lastState": s.last_terminated.as_ref().map(terminated).unwrap_or_else(|| json!({})),
    })
}

/// The pod's phase from its containers.
pub fn phase(containers: &[Tracked], restart_always: bool, initialized: bool) -> &'static str {
    let mains: Vec<_> = containers.iter().filter(|c| c.kind == Kind::Main).collect();
    let states: Vec<_> = mains.iter().map(|c| c.state.lock().clone()).collect();
    if !initialized || states.iter().any(|s| !s.running && s.terminated.is_none()) {
        return "Pending";
    }
    if !restart_always && !states.is_empty() && states.iter().all(|s| !s.running) {
        let failed = states
            .iter()
            .any(|s| s.terminated.as_ref().is_some_and(|t| t.exit_code != 0));
        return if failed { "Failed" } else { "Succeeded" };
    }
    "Running"
}

/// Keeps condition transition times stable across writes.
#[derive(Default)]
pub struct Conditions {
    since: BTreeMap<&'static str, (bool, SystemTime)>,
}

impl Conditions {
    fn condition(&mut self, kind: &'static str, value: bool, now: SystemTime) -> Value {
        let entry = self.since.entry(kind).or_insert((value, now));
        if entry.0 != value {
            *entry = (value, now);
        }
        json!({"type": kind, "status": if value { "True" } else { "False" }, "lastTransitionTime": time(entry.1)})
    }
}

/// Everything the status needs besides the containers.
pub struct PodFacts<'a> {
    pub pod: &'a Pod,
    pub pod_ip: String,
    pub host_ip: String,
    pub start_time: SystemTime,
    pub initialized: bool,
    pub message: Option<String>,
}

/// The status object to write.
pub fn build(facts: &PodFacts<'_>, containers: &[Tracked], conds: &mut Conditions) -> Value {
    let uid = facts.pod.metadata.uid.clone().unwrap_or_default();
    let restart_always = facts
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .is_none_or(|p| p == "Always");
    let phase = phase(containers, restart_always, facts.initialized);
    let ready = facts.initialized
        && containers
            .iter()
            .filter(|c| c.kind != Kind::Init)
            .all(|c| c.state.lock().ready);
    let now = SystemTime::now();
    let conditions = vec![
        conds.condition("PodScheduled", true, facts.start_time),
        conds.condition("Initialized", facts.initialized, now),
        conds.condition("ContainersReady", ready, now),
        conds.condition("Ready", ready, now),
    ];
    let statuses = |init: bool| -> Vec<Value> {
        containers
            .iter()
            .filter(|c| (c.kind != Kind::Main) == init)
            .map(|c| container_status(&uid, c))
            .collect()
    };
    json!({
        "phase": phase,
        "hostIP": facts.host_ip,
        "hostIPs": [{"ip": facts.host_ip}],
        "podIP": facts.pod_ip,
        "podIPs": [{"ip": facts.pod_ip}],
        "startTime": time(facts.start_time),
        "conditions": conditions,
        "initContainerStatuses": statuses(true),
        "containerStatuses": statuses(false),
        "message": facts.message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracked(kind: Kind, state: ContainerState) -> Tracked {
        Tracked {
            spec: Container {
                name: "c".into(),
                image: Some("i".into()),
                ..Default::default()
            },
            kind,
            state: Arc::new(Mutex::new(state)),
        }
    }

    fn exited(code: i32) -> ContainerState {
        let t = SystemTime::now();
        ContainerState {
            terminated: Some(Terminated {
                exit_code: code,
                reason: "Error".into(),
                started_at: t,
                finished_at: t,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn phases_follow_the_containers() {
        let running = ContainerState {
            running: true,
            ..Default::default()
        };
        assert_eq!(
            phase(&[tracked(Kind::Main, running.clone())], true, false),
            "Pending"
        );
        assert_eq!(
            phase(&[tracked(Kind::Main, running)], true, true),
            "Running"
        );
        assert_eq!(
            phase(&[tracked(Kind::Main, exited(0))], false, true),
            "Succeeded"
        );
        assert_eq!(
            phase(
                &[
                    tracked(Kind::Main, exited(0)),
                    tracked(Kind::Main, exited(2))
                ],
                false,
                true
            ),
            "Failed"
        );
        assert_eq!(
            phase(
                &[tracked(Kind::Main, ContainerState::default())],
                true,
                true
            ),
            "Pending"
        );
    }

    #[test]
    fn a_pod_is_ready_when_its_sidecars_and_containers_are() {
        let pod: Pod =
            serde_json::from_value(json!({"metadata": {"uid": "u"}, "spec": {"containers": []}}))
                .unwrap();
        let facts = PodFacts {
            pod: &pod,
            pod_ip: "10.244.0.2".into(),
            host_ip: "172.30.0.10".into(),
            start_time: SystemTime::now(),
            initialized: true,
            message: None,
        };
        let sidecar = tracked(
            Kind::Sidecar,
            ContainerState {
                running: true,
                started: true,
                ready: false,
                ..Default::default()
            },
        );
        let main = tracked(
            Kind::Main,
            ContainerState {
                running: true,
                started: true,
                ready: true,
                ..Default::default()
            },
        );
        let containers = [tracked(Kind::Init, exited(0)), sidecar.clone(), main];
        let mut conds = Conditions::default();
        let s = build(&facts, &containers, &mut conds);
        assert_eq!(
            s["conditions"][3],
            json!({"type": "Ready", "status": "False", "lastTransitionTime": s["conditions"][3]["lastTransitionTime"]})
        );
        assert_eq!(s["initContainerStatuses"].as_array().unwrap().len(), 2);
        assert_eq!(
            s["initContainerStatuses"][0]["state"]["terminated"]["exitCode"],
            0
        );
        sidecar.state.lock().ready = true;
        let s = build(&facts, &containers, &mut conds);
        assert_eq!(s["conditions"][3]["status"], "True");
        assert_eq!(s["containerStatuses"][0]["containerID"], "localkube://u/c");
    }
}
