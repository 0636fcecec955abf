//! The admission webhook that puts `linkerd2-proxy` into pods, and the one inject function.
//!
//! This crate owns the proxy-injector: an HTTPS admission server whose mutating route
//! (`/inject`) adds the proxy (and its init container or native sidecar) to pods of annotated
//! workloads and namespaces, and the default opaque ports to Services. The injection itself is
//! a pure function from pod, namespace, owner and configuration to the injected pod template
//! ([`inject_template`]), turned into a JSON patch by [`patch::diff`]; the `oxlink inject`
//! command calls the same function through [`workload`], so the webhook and the CLI cannot
//! disagree. The server keeps its own serving certificate in a Secret and publishes it as the
//! webhook's `caBundle` ([`cert`]), answers namespace and owner lookups from metadata caches
//! ([`cluster`]), and records events and metrics. The same server validates ServiceProfiles
//! and the policy resources ([`validate`]), as Linkerd's `sp-validator` and policy admission
//! controller do.

pub mod admission;
mod args;
pub mod cert;
pub mod cluster;
mod config;
pub mod events;
mod inject;
pub mod metrics;

mod parse;
pub mod patch;
mod render;
pub mod serve;
pub mod server;
pub mod validate;
pub mod values;
pub mod workload;

pub use self::{
    args::Args,
    config::differing_overrides,
    inject::{
        AnnotationAt, InjectContext, Injection, Origin, Owner, SkipReason, check_injectable,
        has_udp_ports, inheritable, inject_template, service_opaque_ports, service_patch,
    },
    patch::{PatchOp, diff},
    values::Values,
};
