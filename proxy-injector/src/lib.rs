//! The admission webhook that puts `linkerd2-proxy` into pods.
//!
//! This crate owns the proxy-injector: an HTTPS admission server whose mutating route
//! (`/inject`) adds the proxy (and its init container or native sidecar) to pods of annotated
//! workloads and namespaces, and the default opaque ports to Services. The injection itself is
//! the `oxlink-inject` crate's pure function from pod, namespace, owner and configuration to the
//! injected pod template ([`inject_template`]), turned into a JSON patch by [`patch::diff`];
//! the `oxlink inject` command calls the same crate, so the webhook and the CLI cannot
//! disagree. The server keeps its own serving certificate in a Secret and publishes it as the
//! webhook's `caBundle` ([`cert`]), answers namespace and owner lookups from metadata caches
//! ([`cluster`]), and records events and metrics. The same server validates ServiceProfiles
//! and the policy resources ([`validate`]), as Linkerd's `sp-validator` and policy admission
//! controller do.

pub mod admission;
mod args;
pub mod cert;
pub mod cluster;
pub mod events;
pub mod metrics;
pub mod serve;
pub mod server;
pub mod validate;

pub use self::args::Args;
pub use oxlink_inject::{
    AnnotationAt, InjectContext, Injection, Origin, Owner, PatchOp, SkipReason, Values,
    check_injectable, diff, differing_overrides, has_udp_ports, inheritable, inject,
    inject_template, patch, service_opaque_ports, service_patch, values, workload,
};
