//! The admission webhook that puts `linkerd2-proxy` into pods, and the one inject function.
//!
//! This crate owns the proxy-injector: an HTTPS admission server whose mutating route adds the
//! proxy (and its init container or native sidecar) to pods of annotated workloads and
//! namespaces, and whose validating routes reject broken ServiceProfiles and policy resources.
//! The injection itself is a pure function from pod, namespace and configuration to a JSON patch;
//! the `oxlink inject` command calls the same function, so the webhook and the CLI cannot
//! disagree. The server also mints, stores and renews its own serving certificate.
