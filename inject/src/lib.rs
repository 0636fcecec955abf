//! Proxy injection as pure functions: what `linkerd2-proxy` looks like in a pod, and how a pod
//! gets there.
//!
//! The chart values the control plane stores in `linkerd-config` ([`values`]) and a pod's
//! `config.linkerd.io/*` annotations resolve to one proxy configuration (`config`); rendering
//! (`render`) turns only that resolved configuration into the proxy container, its init
//! container or native sidecar, and volumes. [`inject_template`] puts them into a pod template,
//! [`patch::diff`] turns the change into a JSON patch, and [`workload`] finds the pod templates
//! inside any workload manifest. No server, no cluster access: the proxy-injector's admission
//! webhook and the `oxlink inject` command both call these functions, so they cannot disagree.

mod config;
pub mod inject;
mod parse;
pub mod patch;
mod render;
pub mod values;
pub mod workload;

pub use self::{
    config::differing_overrides,
    inject::{
        AnnotationAt, InjectContext, Injection, Origin, Owner, SkipReason, check_injectable,
        has_udp_ports, inheritable, inject_template, service_opaque_ports, service_patch,
    },
    patch::{PatchOp, diff},
    values::Values,
};
