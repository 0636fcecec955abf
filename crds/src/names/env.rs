//! Environment variables of the injected `linkerd2-proxy` and `proxy-init` containers.
